// vkq-peer: llama.cpp on the same GGUF files as vkquant, through llama.cpp's
// own prebuilt libraries opened at run time (--lib DIR). `bench` times
// prefill and greedy decode per round; `logits` prints the last position's
// logits for given token ids; `quantize` writes a GGUF file quantized by
// llama.cpp (files in ggml's own block formats, to check vkquant's loaders).
// Output is JSON on stdout, one object a line; an error is one line on
// stderr and a non-zero exit. docs/bench-peer.md.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <thread>
#include <vector>

#include "llama_lib.hpp"
#include "peer_model.hpp"

namespace {

using namespace vkq::peer;
namespace fs = std::filesystem;
using nlohmann::ordered_json;

struct CommonFlags {
  fs::path model;
  fs::path lib;
  std::string backend;  // "" : vulkan when the library folder has ggml's Vulkan backend
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  bool verbose = false;
};

struct BenchFlags {
  std::uint32_t prompt_tokens = 64;
  std::uint32_t gen = 32;
  std::uint32_t rounds = 5;
  std::uint32_t warmup = 1;
  std::string tokens;  // optional: the prompt's ids (else a fixed pattern)
  std::uint32_t depth = 0;  // positions already in the cache when the prompt comes
  std::string type_k = "f16", type_v = "f16", flash_attn = "auto";
};

// The KV cache types llama.cpp's tools accept for --cache-type-k/-v.
const std::map<std::string, ggml_type> kCacheTypes = {
    {"f32", GGML_TYPE_F32},   {"f16", GGML_TYPE_F16},   {"bf16", GGML_TYPE_BF16}, {"q8_0", GGML_TYPE_Q8_0},
    {"q4_0", GGML_TYPE_Q4_0}, {"q4_1", GGML_TYPE_Q4_1}, {"q5_0", GGML_TYPE_Q5_0}, {"q5_1", GGML_TYPE_Q5_1},
    {"iq4_nl", GGML_TYPE_IQ4_NL},
};
const std::map<std::string, llama_flash_attn_type> kFlashAttn = {
    {"auto", LLAMA_FLASH_ATTN_TYPE_AUTO}, {"on", LLAMA_FLASH_ATTN_TYPE_ENABLED}, {"off", LLAMA_FLASH_ATTN_TYPE_DISABLED}};

struct LogitsFlags {
  std::string tokens;
  bool all = false;
};

struct QuantizeFlags {
  fs::path out;
  std::string type = "Q4_K_M";
};

// llama-quantize's names for the file types used here.
const std::map<std::string, llama_ftype> kFileTypes = {
    {"F16", LLAMA_FTYPE_MOSTLY_F16},       {"BF16", LLAMA_FTYPE_MOSTLY_BF16},     {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
    {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},     {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
    {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},     {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K},     {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
    {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S},
    {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Backend backend_of(const CommonFlags& f) {
  if (f.backend == "vulkan") return Backend::vulkan;
  if (f.backend == "cpu") return Backend::cpu;
  std::error_code ec;
  return fs::exists(f.lib / "libggml-vulkan.so", ec) ? Backend::vulkan : Backend::cpu;
}

const char* name_of(Backend b) { return b == Backend::vulkan ? "vulkan" : "cpu"; }

// "1,2,3" -> ids; each must be a token of the model.
std::vector<llama_token> parse_tokens(const std::string& text, std::int32_t n_vocab) {
  std::vector<llama_token> ids;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    std::size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) throw PeerError("--tokens: '" + item + "' is not a token id");
    if (v < 0 || v >= n_vocab)
      throw PeerError("--tokens: " + item + " is not below the vocabulary size " + std::to_string(n_vocab));
    ids.push_back(llama_token(v));
    at = comma + 1;
  }
  return ids;
}

ordered_json setup_json(const CommonFlags& f, const LlamaLib& lib, const PeerModel& m, Backend b) {
  ordered_json j;
  j["engine"] = "llama.cpp";
  j["lib"] = lib.path().string();
  j["backend"] = name_of(b);
  j["device"] = m.gpu() ? m.gpu()->description : "CPU";
  j["model"] = f.model.string();
  j["desc"] = m.desc();
  j["size_bytes"] = m.size_bytes();
  j["n_params"] = m.n_params();
  j["n_vocab"] = m.n_vocab();
  j["n_ctx"] = m.n_ctx();
  j["threads"] = f.threads;
  return j;
}

void print_line(const ordered_json& j) {
  std::fputs((j.dump() + "\n").c_str(), stdout);
  std::fflush(stdout);
}

struct Round {
  double prefill_s = 0, decode_s = 0;
  std::vector<llama_token> generated;
};

// Prefill of `prompt` from an empty cache (or, untimed first, from the
// sequence state `deep` of `depth` cells), then `gen` single-token decodes,
// each fed the argmax of the previous logits (the first from the prefill's).
Round one_round(PeerModel& m, const std::vector<llama_token>& prompt, std::uint32_t gen, std::uint32_t depth = 0,
                std::span<const std::uint8_t> deep = {}) {
  Round r;
  m.clear();
  if (depth > 0) m.load_state(deep);
  const auto t0 = std::chrono::steady_clock::now();
  auto logits = m.decode(prompt, llama_pos(depth));
  r.prefill_s = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  for (std::uint32_t i = 0; i < gen; ++i) {
    const llama_token next = argmax(logits);
    r.generated.push_back(next);
    logits = m.decode(std::span(&next, 1), llama_pos(depth + prompt.size() + i));
  }
  r.decode_s = seconds_since(t1);
  return r;
}

void bench(const CommonFlags& f, const BenchFlags& b) {
  const Backend backend = backend_of(f);
  auto lib = LlamaLib::open(f.lib, f.verbose);
  LoadOptions o;
  o.backend = backend;
  o.n_ctx = b.depth + b.prompt_tokens + b.gen;
  o.n_batch = b.prompt_tokens;
  o.threads = f.threads;
  o.type_k = kCacheTypes.at(b.type_k);
  o.type_v = kCacheTypes.at(b.type_v);
  o.flash_attn = kFlashAttn.at(b.flash_attn);
  const auto t0 = std::chrono::steady_clock::now();
  auto m = PeerModel::load(*lib, f.model, o);
  const double load_s = seconds_since(t0);

  std::vector<llama_token> prompt;
  if (!b.tokens.empty()) {
    prompt = parse_tokens(b.tokens, m->n_vocab());
    if (prompt.size() != b.prompt_tokens)
      throw PeerError("--tokens: " + std::to_string(prompt.size()) + " ids, --prompt-tokens is " + std::to_string(b.prompt_tokens));
  } else {
    for (std::uint32_t i = 0; i < b.prompt_tokens; ++i)  // a fixed pattern, spread over the vocabulary
      prompt.push_back(llama_token((std::int64_t(m->n_vocab()) / 3 + 7919 * std::int64_t(i)) % m->n_vocab()));
  }

  ordered_json setup{{"event", "load"}};
  setup.update(setup_json(f, *lib, *m, backend));
  setup["load_s"] = load_s;
  setup["warmup_rounds"] = b.warmup;
  setup["type_k"] = b.type_k;
  setup["type_v"] = b.type_v;
  setup["flash_attn"] = b.flash_attn;
  // --depth: the prompt's own cells (a real prefill at positions 0 ..),
  // repeated to `depth` cells through llama.cpp's sequence-state format, so
  // the timed prompt and decodes attend over depth positions without hours of
  // prefill (their content does not change the work).
  std::vector<std::uint8_t> deep;
  SeqState one;
  if (b.depth > 0) {
    m->clear();
    m->decode(prompt, 0);
    const auto blob = m->save_state();
    one = SeqState::parse(blob);
    if (one.serialize() != blob) throw PeerError("sequence state: does not write back byte for byte (an unknown layout)");
    deep = one.replicated(b.depth).serialize();
    setup["depth"] = b.depth;
    setup["depth_fill"] = "the prompt's cells repeated";
  }
  if (!one.layers.empty()) {
    setup["kv_bytes_per_position"] = one.kv_bytes_per_cell();
    setup["kv_bytes"] = one.kv_bytes_per_cell() * m->n_ctx();
  }
  print_line(setup);
  // Warm-up rounds (untimed): ggml-vulkan builds its pipelines on first use.
  for (std::uint32_t i = 0; i < b.warmup; ++i) one_round(*m, prompt, b.gen, b.depth, deep);
  for (std::uint32_t i = 0; i < b.rounds; ++i) {
    const Round r = one_round(*m, prompt, b.gen, b.depth, deep);
    ordered_json j;
    j["event"] = "round";
    j["engine"] = "llama.cpp";
    j["backend"] = name_of(backend);
    j["round"] = i + 1;
    j["prompt_tokens"] = b.prompt_tokens;
    j["depth"] = b.depth;
    j["prefill_s"] = r.prefill_s;
    j["prefill_tokens_per_s"] = b.prompt_tokens / r.prefill_s;
    j["gen_tokens"] = b.gen;
    j["decode_s"] = r.decode_s;
    j["decode_tokens_per_s"] = b.gen > 0 ? b.gen / r.decode_s : 0.0;
    j["generated"] = r.generated;
    print_line(j);
  }
}

void logits(const CommonFlags& f, const LogitsFlags& l) {
  const Backend backend = backend_of(f);
  auto lib = LlamaLib::open(f.lib, f.verbose);
  // The ids are checked against the vocabulary once it is known; the batch
  // size needs their count first.
  const auto count = std::count(l.tokens.begin(), l.tokens.end(), ',') + 1;
  LoadOptions o;
  o.backend = backend;
  o.n_ctx = std::uint32_t(count);
  o.n_batch = std::uint32_t(count);
  o.threads = f.threads;
  auto m = PeerModel::load(*lib, f.model, o);
  const auto ids = parse_tokens(l.tokens, m->n_vocab());
  const auto x = m->decode(ids, 0);

  std::vector<llama_token> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  const std::size_t k = std::min<std::size_t>(10, order.size());
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(),
                    [&](llama_token a, llama_token b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  double sum = 0, sum_abs = 0, sum_sq = 0;
  for (const float v : x) {
    sum += v;
    sum_abs += std::fabs(v);
    sum_sq += double(v) * v;
  }
  ordered_json j = setup_json(f, *lib, *m, backend);
  j["tokens"] = ids;
  j["argmax"] = order[0];
  j["top"] = ordered_json::array();
  for (std::size_t i = 0; i < k; ++i) j["top"].push_back({{"id", order[i]}, {"logit", x[order[i]]}});
  j["checksum"] = {{"sum", sum}, {"sum_abs", sum_abs}, {"l2", std::sqrt(sum_sq)}};
  if (l.all) j["logits"] = std::vector<float>(x.begin(), x.end());
  print_line(j);
}

// llama.cpp's own quantizer (its choices per tensor, as llama-quantize makes them).
void quantize(const CommonFlags& f, const QuantizeFlags& q) {
  auto lib = LlamaLib::open(f.lib, f.verbose);
  llama_model_quantize_params p = lib->llama_model_quantize_default_params();
  p.nthread = f.threads;
  p.ftype = kFileTypes.at(q.type);
  lib->take_problems();
  if (lib->llama_model_quantize(f.model.c_str(), q.out.c_str(), &p) != 0)
    throw PeerError(f.model.string() + ": llama_model_quantize failed: " + lib->take_problems());
  print_line({{"engine", "llama.cpp"}, {"quantized", f.model.string()}, {"out", q.out.string()}, {"type", q.type}});
}

void add_common(CLI::App* cmd, CommonFlags& f) {
  cmd->add_option("model", f.model, "GGUF model file")->required();
  cmd->add_option("--lib", f.lib, "folder of llama.cpp's libraries (third_party/llamacpp/lib/vulkan or .../cpu)")->required();
  cmd->add_option("--backend", f.backend,
                  "vulkan (every layer offloaded) or cpu (n_gpu_layers 0); default: vulkan when --lib has libggml-vulkan.so")
      ->check(CLI::IsMember({"vulkan", "cpu"}));
  cmd->add_option("--threads", f.threads, "CPU threads")->check(CLI::Range(1, 1024));
  cmd->add_flag("-v,--verbose", f.verbose, "print llama.cpp's log on stderr");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vkq-peer: llama.cpp's prebuilt libraries on a GGUF file (docs/bench-peer.md)"};
  app.require_subcommand(1);
  CommonFlags common;
  BenchFlags b;
  LogitsFlags l;

  auto* bench_cmd = app.add_subcommand("bench", "time prefill and greedy decode, one JSON line per round");
  add_common(bench_cmd, common);
  bench_cmd->add_option("--prompt-tokens", b.prompt_tokens, "prompt length (one batch)")->check(CLI::Range(1, 1 << 16));
  bench_cmd->add_option("--gen", b.gen, "single-token decodes after the prefill")->check(CLI::Range(0, 1 << 16));
  bench_cmd->add_option("--rounds", b.rounds, "timed rounds")->check(CLI::Range(1, 10000));
  bench_cmd->add_option("--warmup", b.warmup, "untimed rounds first")->check(CLI::Range(0, 100));
  bench_cmd->add_option("--tokens", b.tokens, "the prompt's token ids, comma-separated (default: a fixed pattern)");
  bench_cmd->add_option("--depth", b.depth,
                        "positions in the cache before the prompt: the prompt's own prefilled cells repeated (llama.cpp's "
                        "sequence-state format), so prefill and decode are timed at that context depth")
      ->check(CLI::Range(0, 1 << 24));
  std::vector<std::string> cache_names, fa_names;
  for (const auto& [name, t] : kCacheTypes) cache_names.push_back(name);
  for (const auto& [name, t] : kFlashAttn) fa_names.push_back(name);
  bench_cmd->add_option("--cache-type-k", b.type_k, "K cache type (llama.cpp's -ctk)")->check(CLI::IsMember(cache_names));
  bench_cmd->add_option("--cache-type-v", b.type_v, "V cache type (llama.cpp's -ctv)")->check(CLI::IsMember(cache_names));
  bench_cmd->add_option("--flash-attn", b.flash_attn, "flash attention: on, off or auto (llama.cpp's -fa)")
      ->check(CLI::IsMember(fa_names));

  auto* logits_cmd = app.add_subcommand("logits", "the last position's logits after decoding --tokens, as JSON");
  add_common(logits_cmd, common);
  logits_cmd->add_option("--tokens", l.tokens, "token ids, comma-separated")->required();
  logits_cmd->add_flag("--all", l.all, "every logit, not only the top 10 and checksums");

  QuantizeFlags q;
  auto* quantize_cmd = app.add_subcommand("quantize", "write MODEL quantized by llama.cpp (as llama-quantize does) to --out");
  add_common(quantize_cmd, common);
  quantize_cmd->add_option("--out,-o", q.out, "the GGUF file to write")->required();
  std::vector<std::string> type_names;
  for (const auto& [name, ftype] : kFileTypes) type_names.push_back(name);
  quantize_cmd->add_option("--type", q.type, "file type")->check(CLI::IsMember(type_names));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "vkq-peer: %s\n", e.what());
    return 2;
  }
  try {
    if (bench_cmd->parsed()) bench(common, b);
    if (logits_cmd->parsed()) logits(common, l);
    if (quantize_cmd->parsed()) quantize(common, q);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vkq-peer: %s\n", e.what());
    return 1;
  }
  return 0;
}
