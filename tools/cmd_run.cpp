// `vkquant run [MODEL]`: generate text from a prompt on a Vulkan device,
// streamed to stdout; prefill and decode speeds on stderr at the end.
// `--chat` renders the model's own chat template around the prompt (one
// turn), or around user turns read line by line from stdin (a conversation
// that keeps its KV cache), and stops at the template's end-of-turn tokens.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include "commands.hpp"
#include "model_flags.hpp"
#include "process_memory.hpp"
#include "progress.hpp"
#include "vkquant/chat.hpp"
#include "vkquant/device.hpp"
#include "vkquant/instance.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::cli {

namespace {

struct RunFlags {
  std::string model;
  std::string prompt;
  const CLI::Option* prompt_given = nullptr;
  int n = 200;
  std::uint32_t ctx = 0;  // 0: context_for's default
  std::uint32_t depth = 0;  // synthetic positions before the prompt (VkForward::fill_synthetic)
  bool warmup = false;
  bool verbose = false;
  bool chat = false;
  std::string system;
  const CLI::Option* system_given = nullptr;
  bool show_prompt = false;
  SamplerOptions sampling;
  WeightFlag weights;
  QuantFlags quant;
  DeviceFlags device;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Ids the sampler may return: a vocabulary padded past the tokenizer (Qwen2.5:
// 151936 embedding rows, 151665 tokens) has rows no text maps to.
std::uint32_t vocab_limit(const Tokenizer& tok, const ModelConfig& c, const std::filesystem::path& path) {
  if (std::uint32_t(tok.vocab_size()) > c.vocab)
    throw Error(path.string() + ": the tokenizer has " + std::to_string(tok.vocab_size()) + " tokens, more than the model's " +
                std::to_string(c.vocab) + " embedding rows");
  return std::uint32_t(tok.vocab_size());
}

// The loaded model on its device, and the timing of the last generation.
struct Session {
  std::filesystem::path path;
  std::optional<ModelFile> model;
  std::unique_ptr<Tokenizer> tok;
  std::optional<Instance> instance;
  std::optional<Device> device;
  std::optional<VkForward> fwd;
  std::vector<std::int32_t> fed;  // tokens in the KV cache, in order
  std::uint64_t prefilled = 0, decoded = 0;
  double prefill_s = 0, decode_s = 0;
  bool hit_context = false;
};

void load(Session& s, const RunFlags& f, const std::optional<KCalibration>& calibration, const KCacheConfig& kcache) {
  s.instance.emplace(Instance::create(InstanceOptions::from_env()));
  s.device.emplace(Device::create(*s.instance, f.device.device));
  VkForwardOptions o;
  o.weights = f.weights.type();
  o.ctx = context_for(s.model->config(), f.ctx);
  o.kcache = kcache;
  o.vcache = f.quant.vcache_type();
  o.mlp = f.quant.mlp_config();
  o.calibration = calibration ? &*calibration : nullptr;
  Progress bar;
  s.fwd.emplace(*s.device, *s.model, o, [&](std::size_t done, std::size_t total) {
    bar.update("loading " + s.path.filename().string(), double(done) / double(total));
  });
}

// Feeds `prompt` (only what follows the cached tokens when they are its
// prefix, else from position 0), then samples up to `n` tokens, streaming
// them, until one of `stop`. Returns the generated ids (the stop token not included).
std::vector<std::int32_t> generate(Session& s, Sampler& sampler, const std::vector<std::int32_t>& prompt, std::uint32_t n,
                                   const std::set<std::int32_t>& stop) {
  const bool reuse = s.fed.size() <= prompt.size() && std::equal(s.fed.begin(), s.fed.end(), prompt.begin());
  if (!reuse) {
    s.fwd->reset();
    s.fed.clear();
  }
  const std::span<const std::int32_t> todo = std::span(prompt).subspan(s.fed.size());
  if (todo.empty()) throw Error("run: nothing new to feed the model");
  const auto t0 = std::chrono::steady_clock::now();
  auto logits = s.fwd->forward(todo);
  s.prefill_s += seconds_since(t0);
  s.prefilled += todo.size();
  s.fed = prompt;

  const std::uint32_t room = s.fwd->ctx() - s.fwd->position();
  s.hit_context = n > room;
  n = std::min(n, room);
  std::vector<std::int32_t> out;
  const auto t1 = std::chrono::steady_clock::now();
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::int32_t next = sampler.sample(logits);
    if (stop.count(next)) break;
    out.push_back(next);
    const std::string piece = s.tok->token_bytes(next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    if (i + 1 < n) {
      logits = s.fwd->forward(std::span<const std::int32_t>(&next, 1));
      s.fed.push_back(next);
      ++s.decoded;  // the first sampled token came from the prefill's logits: decode times the rest
    }
  }
  s.decode_s += seconds_since(t1);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  if (s.hit_context) fmt::print(stderr, "note: stopped at the end of the context, {} tokens (--ctx)\n", s.fwd->ctx());
  return out;
}

// Where the device bytes go: weights, K-cache, V-cache (with bits per
// coordinate), activations; and the process's peak RSS.
void memory_report(const Session& s) {
  const auto mem = s.fwd->memory();
  const auto pm = process_memory();
  fmt::print(stderr,
             "load: {:.2f} s; device bytes: weights {} (stored in the file: {}), keys {} ({:.3f} bits/coordinate), "
             "values {} ({:.2f} bits/coordinate), activations {}, for a context of {}; peak RSS {} (now: anonymous {}, "
             "mapped files {})\n",
             s.fwd->load_seconds(), mem.weights, mem.file_weights, mem.keys, s.fwd->key_bits_per_coordinate(), mem.values,
             s.fwd->value_bits_per_coordinate(), mem.other, s.fwd->ctx(), pm.peak_rss, pm.rss_anon, pm.rss_file);
}

void report(const Session& s, const RunFlags& f) {
  memory_report(s);
  fmt::print(stderr, "prefill: {} tokens in {:.3f} s ({:.1f} tokens/s)\n", s.prefilled, s.prefill_s,
             double(s.prefilled) / s.prefill_s);
  fmt::print(stderr, "decode: {} tokens in {:.3f} s ({:.1f} tokens/s)  [{}, {} weights, keys {} ({:.3f} bits/coordinate), {}]\n",
             s.decoded, s.decode_s, s.decoded > 0 ? double(s.decoded) / s.decode_s : 0.0, s.path.filename().string(),
             f.weights.value, f.quant.label(), s.fwd->key_bits_per_coordinate(), s.device->info().name);
}

// The rendered conversation as ids: BOS first unless the template writes it.
std::vector<std::int32_t> chat_ids(const Session& s, const ChatTemplate& t, const std::vector<ChatMessage>& msgs, bool show) {
  const std::string text = t.render(msgs);
  if (show) fmt::print(stderr, "{}\n", text);
  std::vector<std::int32_t> ids;
  if (const auto bos = s.tok->bos(); bos && !t.writes_bos()) ids.push_back(*bos);
  const auto body = s.tok->encode_special(text);
  ids.insert(ids.end(), body.begin(), body.end());
  if (ids.size() >= s.fwd->ctx())
    throw Error("--chat: the conversation is " + std::to_string(ids.size()) + " tokens, the context is " +
                std::to_string(s.fwd->ctx()) + " (--ctx)");
  return ids;
}

void chat(Session& s, const RunFlags& f, Sampler& sampler, const ChatTemplate& t) {
  std::set<std::int32_t> stop;
  if (const auto eos = s.tok->eos()) stop.insert(*eos);
  for (const auto& piece : t.end_of_turn_pieces())
    if (const auto id = s.tok->find_token(piece)) stop.insert(*id);
  std::vector<ChatMessage> msgs;
  if (f.system_given->count() > 0) msgs.push_back({"system", f.system});
  auto turn = [&](const std::string& user) {
    msgs.push_back({"user", user});
    const auto ids = chat_ids(s, t, msgs, f.show_prompt);
    const auto answer = generate(s, sampler, ids, std::uint32_t(f.n), stop);
    msgs.push_back({"assistant", s.tok->decode(answer)});
  };
  if (f.prompt_given->count() > 0) {
    turn(f.prompt);
    return;
  }
  // User turns, one a line, until EOF; a prompt marker only on a terminal.
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  std::string line;
  for (;;) {
    if (tty) {
      std::fputs("> ", stderr);
      std::fflush(stderr);
    }
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    turn(line);
  }
}

void run(RunFlags f) {
  const KCacheConfig kcache = f.quant.config();  // validates the quantization flags before any heavy work
  Sampler(f.sampling);                           // and the sampling flags
  if (!f.chat && f.system_given->count() > 0) throw UsageError("--system applies to --chat");
  if (!f.chat && f.show_prompt) throw UsageError("--show-prompt applies to --chat");
  if (f.chat && f.depth > 0) throw UsageError("--depth applies to a plain run, not --chat");
  Session s;
  s.path = f.model.empty() ? default_model_path() : std::filesystem::path(f.model);
  s.model.emplace(ModelFile::open(s.path));
  s.tok = s.model->tokenizer();
  const ModelConfig& c = s.model->config();
  f.sampling.vocab_limit = vocab_limit(*s.tok, c, s.path);
  Sampler sampler(f.sampling);
  const auto calibration = f.quant.calibration(*s.model);

  if (f.chat) {
    const auto t = load_chat_template(*s.model);
    if (!t) throw Error(chat_template_location(*s.model) + ": missing, and --chat needs the model's chat template");
    load(s, f, calibration, kcache);
    if (f.verbose) memory_report(s);
    chat(s, f, sampler, *t);
    report(s, f);
    return;
  }

  std::vector<std::int32_t> prompt;
  if (const auto bos = s.tok->bos()) prompt.push_back(*bos);
  const auto text = s.tok->encode(f.prompt);
  prompt.insert(prompt.end(), text.begin(), text.end());
  if (prompt.empty()) throw Error("--prompt: empty, and the model has no BOS token to start from");
  const std::uint32_t ctx = context_for(c, f.ctx);
  if (std::uint64_t(prompt.size()) + f.depth >= ctx)
    throw Error("--prompt: " + std::to_string(prompt.size()) + " tokens" +
                (f.depth ? " after --depth " + std::to_string(f.depth) : std::string()) + " fill the context of " +
                std::to_string(ctx) + " (--ctx; the model's is " + std::to_string(c.ctx) + ")");
  load(s, f, calibration, kcache);
  if (f.verbose) memory_report(s);
  if (f.warmup) {
    // Untimed: the prompt and one decode step, so the timed run finds every
    // pipeline it uses compiled (lavapipe and other drivers compile on first use).
    s.fwd->fill_synthetic(f.depth);
    s.fwd->forward(prompt);
    s.fwd->forward(std::span<const std::int32_t>(prompt.data(), 1));
    s.fwd->reset();
  }
  if (f.depth > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    s.fwd->fill_synthetic(f.depth);
    fmt::print(stderr, "depth: {} synthetic positions in the K/V caches before the prompt ({:.2f} s, untimed; the text "
               "that follows is meaningless)\n", f.depth, seconds_since(t0));
  }
  std::fwrite(f.prompt.data(), 1, f.prompt.size(), stdout);
  std::fflush(stdout);
  std::set<std::int32_t> stop;
  if (const auto eos = s.tok->eos()) stop.insert(*eos);
  generate(s, sampler, prompt, std::uint32_t(f.n), stop);
  report(s, f);
}

}  // namespace

void add_run(CLI::App& app) {
  auto f = std::make_shared<RunFlags>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt (no MODEL: the bundled KJV model)");
  cmd->add_option("model", f->model, "model: .gguf, .safetensors, index .json or a Hugging Face directory");
  f->prompt_given = cmd->add_option("--prompt,-p", f->prompt, "text to continue (--chat: the user's message)");
  cmd->add_option("--ctx,-c", f->ctx,
                  "context (KV-cache) length in tokens (default: the model's context up to 4096, as llama.cpp); "
                  "generation stops at its end")
      ->check(CLI::Range(1u, 1u << 24));
  cmd->add_option("--depth", f->depth,
                  "benchmarks: start at position N, the K/V caches filled with N synthetic positions (pseudo-random keys "
                  "and values stored through the caches' own codecs, untimed; the model does not run on them), so "
                  "prefill and decode are timed at that context depth; the generated text is meaningless")
      ->check(CLI::Range(0u, 1u << 24));
  cmd->add_flag("--warmup", f->warmup,
                "before the timed run, feed the prompt and one decode step once, untimed (pipelines are compiled on first "
                "use; llama.cpp's tools warm up likewise)");
  cmd->add_flag("-v,--verbose", f->verbose,
                "at start, report the device memory (weights, K-cache, V-cache with bits per coordinate, activations) "
                "and peak RSS (run always reports them at the end)");
  cmd->add_option("-n", f->n, "tokens to generate (--chat: at most, per answer)")->check(CLI::Range(0, 1 << 24));
  cmd->add_flag("--chat", f->chat,
                "chat with the model's own template (tokenizer_config.json chat_template or GGUF tokenizer.chat_template): "
                "one answer to --prompt, else user turns read line by line from stdin until EOF");
  f->system_given = cmd->add_option("--system", f->system, "--chat: the system message");
  cmd->add_flag("--show-prompt", f->show_prompt, "--chat: print each rendered prompt to stderr");
  cmd->add_option("--temp", f->sampling.temperature, "sampling temperature (0: greedy)")->check(number_in(0.0, 100.0));
  cmd->add_option("--top-k", f->sampling.top_k, "sample among the K most likely tokens (0: all)");
  cmd->add_option("--top-p", f->sampling.top_p, "nucleus: the smallest set of tokens holding mass P")
      ->check(number_in(0.0, 1.0, /*open_low=*/true));
  cmd->add_option("--seed", f->sampling.seed, "sampling seed")->check(unsigned64());
  f->weights.add(cmd);
  f->quant.add(cmd);
  cmd->add_option("--device", f->device.device, "Vulkan device index (see `vkquant devices`)");
  cmd->callback([f] { run(*f); });
}

}  // namespace vkq::cli
