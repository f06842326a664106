#include "model_flags.hpp"

#include <algorithm>

#include <unistd.h>

#include <charconv>
#include <climits>
#include <cmath>

#include <fmt/format.h>

#include "vkquant/error.hpp"

namespace vkq::cli {

std::filesystem::path default_model_path() {
  std::error_code ec;
  char self[PATH_MAX] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    const auto installed = std::filesystem::path(std::string(self, std::size_t(n))).parent_path().parent_path() /
                           "share" / "vkquant" / "models" / "kjv-llama";
    if (std::filesystem::is_directory(installed, ec)) return installed;
  }
  const std::filesystem::path source = std::filesystem::path(VKQ_SOURCE_MODELS) / "kjv-llama";
  if (std::filesystem::is_directory(source, ec)) return source;
  throw Error("the bundled model is not installed (looked in <prefix>/share/vkquant/models/kjv-llama and " +
              source.string() + "); name a model file");
}

CLI::Validator number_in(double lo, double hi, bool open_low) {
  const std::string range = (open_low ? "(" : "[") + fmt::format("{}, {}]", lo, hi);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || std::isnan(v))
          return "'" + s + "' is not a number";
        if (v < lo || v > hi || (open_low && v == lo)) return "'" + s + "' is not in " + range;
        return {};
      },
      "NUMBER in " + range);
}

CLI::Validator unsigned64() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        std::uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || ec != std::errc() || end != s.data() + s.size())
          return "'" + s + "' is not a whole number from 0 to 18446744073709551615";
        return {};
      },
      "UINT64");
}

namespace {

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::error_code ec;
  return std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec) && std::filesystem::equivalent(a, b, ec);
}

}  // namespace

void refuse_overwriting_inputs(const std::filesystem::path& out, const std::string& flag, const ModelFile& model,
                               const std::vector<std::pair<std::string, std::filesystem::path>>& inputs) {
  for (const auto& file : model.files())
    if (same_file(out, file))
      throw Error(flag + " " + out.string() + ": refusing to overwrite " + file.string() + ", a file of the model being read");
  for (const auto& [input_flag, file] : inputs)
    if (!file.empty() && same_file(out, file))
      throw Error(flag + " " + out.string() + ": refusing to overwrite the " + input_flag + " input");
}

std::uint32_t context_for(const ModelConfig& c, std::uint32_t requested) {
  if (requested > c.ctx)
    throw Error("--ctx: " + std::to_string(requested) + " is longer than the model's context of " + std::to_string(c.ctx));
  if (requested) return c.context_in_use(requested);
  return std::min(c.context_in_use(0), kDefaultContext);
}

void WeightFlag::add(CLI::App* cmd) {
  cmd->add_option("--weights", value,
                  "matrix storage on the device: stored (default: as the file stores each, F32/F16/BF16 or a ggml "
                  "block type, dequantized in registers), or every matrix converted to f16 or f32 on load")
      ->check(CLI::IsMember({"stored", "f16", "f32"}));
}

void QuantFlags::add(CLI::App* cmd) {
  cmd->add_option("--kcache", kcache,
                  "key cache: fp16, 1bit (docs/design.md §2) or tc (the transform code: 4/3/2/1-bit coefficients per head "
                  "from the artifact's plan at --kv-budget, no sign bits; §2.9)")
      ->check(CLI::IsMember({"fp16", "1bit", "tc"}));
  rotation_given = cmd->add_option("--rotation", rotation, "1-bit keys: rotation before the sign: none, srht or learned (needs --rotations)")
      ->check(CLI::IsMember({"none", "srht", "learned"}));
  cmd->add_option("--rotations", rotations, "calibration artifact from `vkquant calibrate` (means, rotations, residual bases)");
  cmd->add_option("--residual-rank", rank, "1-bit keys: rank-r residual correction (learned rotation)")->check(CLI::Range(0u, 256u));
  cmd->add_option("--residual-bits", residual_bits,
                  "1-bit keys: residual coefficients in fp16 (16), int8 / int4 with a per-token fp16 scale (8, 4), or "
                  "4-, 2- or 1-bit codes relative to the key's alpha with the artifact's per-column steps (a4, a2, a1)")
      ->check(CLI::IsMember({"16", "8", "4", "a4", "a2", "a1"}));
  cmd->add_option("--kv-budget", kv_budget,
                  "1-bit keys: per-(layer, KV head) residual rank and bits from the artifact's precision policy "
                  "(calibrate --kv-budget; --kcache tc: each head's 4/3/2/1-bit coefficients from its transform-code "
                  "table): the plan at BITS mean bits per key coordinate, or `artifact` for the plan calibrate stored")
      ->check([](const std::string& v) -> std::string {
        if (v == "artifact") return {};
        double b = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), b);
        if (ec != std::errc() || end != v.data() + v.size() || !(b > 0.0 && b <= 64.0))
          return "'" + v + "' is not `artifact` or a number of bits in (0, 64]";
        return {};
      });
  cmd->add_option("--protect-front", protect_front, "1-bit keys: keep the first N positions exact in fp16")
      ->check(CLI::Range(0u, 1u << 20));
  cmd->add_option("--kcache-rope", kcache_rope,
                  "1-bit keys: code them after RoPE (post), before (pre: decoded, then rotated), or after RoPE less the "
                  "rotated pre-RoPE mean (post-ropemean)")
      ->check(CLI::IsMember({"post", "pre", "post-ropemean"}));
  kscore_given = cmd->add_option("--kscore", kscore, "1-bit post-RoPE keys: score them by popcount over a quantized query, or in float")
      ->check(CLI::IsMember({"popcount", "float"}));
  kscore_bits_given = cmd->add_option("--kscore-bits", kscore_bits, "bit planes of the quantized query for --kscore popcount: 1, 4 or 8")
      ->check(CLI::IsMember({1u, 4u, 8u}));
  cmd->add_option("--vcache", vcache,
                  "value cache: fp16, q8 (int8 blocks of 32, fp16 scale: 8.5 bits) or q4 (4-bit blocks of 32, fp16 "
                  "scale and min: 5 bits), read in place by the attention kernels")
      ->check(CLI::IsMember({"fp16", "q8", "q4"}));
  cmd->add_option("--mlp", mlp, "dense MLP matrices: fp16 or 1bit (sign rows of W Rᵀ, docs/design.md §3; MoE experts stay fp16)")
      ->check(CLI::IsMember({"fp16", "1bit"}));
  mlp_rotation_given = cmd->add_option("--mlp-rotation", mlp_rotation,
                                       "--mlp 1bit: input rotation R: none, srht, dense or structured (Hadamard then learned "
                                       "blocks); dense and structured need --rotations")
                           ->check(CLI::IsMember({"none", "srht", "dense", "structured"}));
}

KCacheConfig QuantFlags::config() const {
  KCacheConfig k;
  k.one_bit = kcache == "1bit" || kcache == "tc";
  k.transform = kcache == "tc";
  k.rope = kcache_rope == "pre" ? KRope::pre : kcache_rope == "post-ropemean" ? KRope::ropemean : KRope::post;
  k.query_bits = kscore == "float" ? 0 : kscore_bits;
  k.rotation = rotation == "none" ? KRotation::none : rotation == "learned" ? KRotation::learned : KRotation::srht;
  k.rank = rank;
  k.coef_arel = residual_bits.front() == 'a';
  k.coef_bits = std::uint32_t(std::stoul(residual_bits.substr(k.coef_arel ? 1 : 0)));
  if (kv_budget == "artifact") k.budget = KCacheConfig::kBudgetArtifact;
  else if (!kv_budget.empty()) std::from_chars(kv_budget.data(), kv_budget.data() + kv_budget.size(), k.budget);
  k.protect_front = protect_front;
  const bool scoring_flags = (kscore_given && kscore_given->count() > 0) || (kscore_bits_given && kscore_bits_given->count() > 0);
  if (scoring_flags && (!k.one_bit || k.rope == KRope::pre))
    throw Error("--kscore and --kscore-bits apply to --kcache 1bit with post-RoPE keys (--kcache-rope pre decodes keys to fp16)");
  if (kscore == "float" && kscore_bits_given && kscore_bits_given->count() > 0)
    throw Error("--kscore-bits applies to --kscore popcount");
  if (k.transform) {
    if (scoring_flags) throw Error("--kscore and --kscore-bits apply to --kcache 1bit (--kcache tc scores its codes in fp32)");
    k.query_bits = 0;
    // The transform code is learned: --rotation learned is implied, another refused.
    if (rotation_given && rotation_given->count() > 0 && k.rotation != KRotation::learned)
      throw Error("--kcache tc: its bases are learned (--rotation " + rotation + " does not apply)");
    k.rotation = KRotation::learned;
  }
  return k;
}

MlpConfig QuantFlags::mlp_config() const {
  MlpConfig m;
  m.one_bit = mlp == "1bit";
  m.rotation = *mlp_rotation_from_name(mlp_rotation);
  if (!m.one_bit && mlp_rotation_given && mlp_rotation_given->count() > 0) throw Error("--mlp-rotation applies to --mlp 1bit");
  return m;
}

std::optional<KCalibration> QuantFlags::calibration(const ModelFile& model) const {
  if (rotations.empty()) return std::nullopt;
  return read_kcache_artifact(rotations, model, /*deferred_binding=*/true);  // VkForward checks the hash it takes while loading
}

std::string QuantFlags::label() const {
  const std::string v = vcache != "fp16" ? " + v " + vcache : "";
  const std::string m = mlp == "1bit" ? " + mlp 1bit " + mlp_rotation : "";
  return config().label() + v + m;
}

}  // namespace vkq::cli
