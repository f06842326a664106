#include "model_flags.hpp"

#include <unistd.h>

#include <climits>

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

void WeightFlag::add(CLI::App* cmd) {
  cmd->add_option("--weights", value, "matrix storage on the device: f16 (default) or f32")
      ->check(CLI::IsMember({"f16", "f32"}));
}

void QuantFlags::add(CLI::App* cmd) {
  cmd->add_option("--kcache", kcache, "key cache: fp16 or 1bit (DESIGN §2)")->check(CLI::IsMember({"fp16", "1bit"}));
  cmd->add_option("--rotation", rotation, "1-bit keys: rotation before the sign: none, srht or learned (needs --rotations)")
      ->check(CLI::IsMember({"none", "srht", "learned"}));
  cmd->add_option("--rotations", rotations, "calibration artifact from `vkquant calibrate` (means, rotations, residual bases)");
  cmd->add_option("--residual-rank", rank, "1-bit keys: rank-r residual correction (learned rotation)")->check(CLI::Range(0u, 256u));
  cmd->add_option("--protect-front", protect_front, "1-bit keys: keep the first N positions exact in fp16")
      ->check(CLI::Range(0u, 1u << 20));
  cmd->add_option("--kcache-rope", kcache_rope, "1-bit keys: code them after RoPE (post) or before (pre: decoded, then rotated)")
      ->check(CLI::IsMember({"post", "pre"}));
}

KCacheConfig QuantFlags::config() const {
  KCacheConfig k;
  k.one_bit = kcache == "1bit";
  k.rope = kcache_rope == "pre" ? KRope::pre : KRope::post;
  k.rotation = rotation == "none" ? KRotation::none : rotation == "learned" ? KRotation::learned : KRotation::srht;
  k.rank = rank;
  k.protect_front = protect_front;
  if (!k.one_bit && (rank > 0 || protect_front > 0 || rotation == "learned" || kcache_rope == "pre"))
    throw Error("--residual-rank, --protect-front, --rotation learned and --kcache-rope pre apply to --kcache 1bit");
  return k;
}

std::optional<KCalibration> QuantFlags::calibration(const ModelFile& model) const {
  if (rotations.empty()) return std::nullopt;
  return read_kcache_artifact(rotations, model);
}

std::string QuantFlags::label() const {
  if (kcache != "1bit") return "fp16";
  std::string s = "1bit " + rotation + " " + kcache_rope;
  if (rank) s += " r" + std::to_string(rank);
  if (protect_front) s += " front" + std::to_string(protect_front);
  return s;
}

}  // namespace vkq::cli
