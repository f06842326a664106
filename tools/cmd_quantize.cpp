// `vkquant quantize IN OUT.gguf --type T`: a safetensors or GGUF model to a
// GGUF file of quantized weights, each tensor's type chosen by llama.cpp's
// rules (vkquant/gguf_quantize.hpp), written one tensor at a time and
// atomically.
#include <fmt/core.h>

#include <chrono>
#include <memory>

#include "commands.hpp"
#include "model_flags.hpp"
#include "process_memory.hpp"
#include "progress.hpp"
#include "vkquant/gguf_quantize.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq::cli {

namespace {

struct QuantizeFlags {
  std::string in, out, type;
};

std::string mb(std::uint64_t bytes) { return fmt::format("{:.2f} MB", double(bytes) / 1e6); }

void quantize(const QuantizeFlags& f) {
  const QuantMix mix = *parse_quant_mix(f.type);  // the flag's check let only known names through
  const auto model = ModelFile::open(f.in);
  refuse_overwriting_inputs(f.out, "OUT", model);
  const auto t0 = std::chrono::steady_clock::now();
  Progress bar;
  const QuantizeSummary s =
      quantize_to_gguf(model, f.out, mix, [&](std::size_t i, std::size_t n, const std::string& name, std::uint32_t type) {
        bar.update(fmt::format("{} -> {}", name, quant::ggml_type_name(type)), double(i) / double(n));
      });
  bar.clear();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string per_type;
  for (const auto& [type, n] : s.tensors_per_type)
    per_type += fmt::format("{}{} {}", per_type.empty() ? "" : ", ", quant::ggml_type_name(type), n);
  fmt::print("{}: {}, {} tensors ({}), {} -> {} of tensors, {:.2f} bits per weight ({} weights), {:.1f} s, peak RSS {}\n",
             f.out, quant_mix_info(mix).name, s.tensors, per_type, mb(s.bytes_in), mb(s.bytes_out), s.bits_per_weight(),
             s.weights, secs, mb(process_memory().peak_rss));
  for (const auto& line : s.fallbacks) fmt::print("row-length fallback: {}\n", line);
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto f = std::make_shared<QuantizeFlags>();
  auto* cmd = app.add_subcommand("quantize", "Write a model's weights quantized into a GGUF file (llama.cpp's types and rules)");
  cmd->add_option("in", f->in, "model: .gguf, .safetensors, index .json or a Hugging Face directory")->required();
  cmd->add_option("out", f->out, "GGUF file to write (whole or not at all)")->required();
  cmd->add_option("--type", f->type,
                  "f16, q8_0, q4_0, q6_k, q4_k_m, q5_k_m (llama-quantize's types of those names), q4_k, q5_k (every "
                  "weight that type)")
      ->required()
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            return parse_quant_mix(s) ? std::string() : "'" + s + "' is not a type (" + quant_mix_names() + ")";
          },
          "TYPE"));
  cmd->callback([f] { quantize(*f); });
}

}  // namespace vkq::cli
