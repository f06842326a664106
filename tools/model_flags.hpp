// What `run` and `ppl` share: where the bundled model lives, the --weights
// flag, and opening a device for a model.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "vkquant/cpu/kernels.hpp"
#include "vkquant/kernels/linear.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/key_capture.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::cli {

// The bundled default model: installed beside the binary
// (<prefix>/share/vkquant/models/kjv-llama) or in the source tree it was built from.
std::filesystem::path default_model_path();

// Refuses `out`, the value of `flag`, when it is a file the command reads:
// one of `model`'s files (ModelFile::files()) or one of `inputs` (each with
// its flag, e.g. {"--text", path}). Compared as files (links and relative
// paths included), so nothing being read is ever written over.
void refuse_overwriting_inputs(const std::filesystem::path& out, const std::string& flag, const ModelFile& model,
                               const std::vector<std::pair<std::string, std::filesystem::path>>& inputs = {});

// Flag checks CLI11 lacks (a failed check is a usage error, exit 2).
// A number in [lo, hi], or (lo, hi] with open_low; NaN is refused (CLI::Range
// lets it through: every comparison with NaN is false).
CLI::Validator number_in(double lo, double hi, bool open_low = false);
// A decimal integer from 0 to 2^64 - 1 (CLI11 alone reads -1 as 2^64 - 1 and
// saturates values past it).
CLI::Validator unsigned64();

// --weights f16|f32: how matrices are stored on the device.
struct WeightFlag {
  std::string value = "stored";
  void add(CLI::App* cmd);
  // nullopt: every matrix as the file stores it.
  std::optional<kernels::WeightType> type() const {
    if (value == "stored") return std::nullopt;
    return value == "f32" ? kernels::WeightType::f32 : kernels::WeightType::f16;
  }
};

// --capture auto|cpu|device: where calibrate's and gauge's key capture runs
// its forward passes (KeyCaptureOptions::on).
inline constexpr const char* kCaptureHelp =
    "where the key capture's forward passes run: auto (the host CPU's native kernels when the Vulkan device is a CPU, "
    "e.g. lavapipe; else the device), cpu or device";
// VKQ_CPU_ISA is checked here, before any work, where the host may capture.
inline KeyCaptureOptions::On capture_on(const std::string& flag) {
  if (flag == "device") return KeyCaptureOptions::On::device;
  (void)cpu::active_isa();
  return flag == "cpu" ? KeyCaptureOptions::On::host : KeyCaptureOptions::On::automatic;
}

// The context in use for --ctx `requested`: that many positions (refused past
// the model's context or sliding window, ModelConfig::context_in_use), or by
// default min(the model's context, 4096), as llama.cpp's default context.
std::uint32_t context_for(const ModelConfig& c, std::uint32_t requested);
constexpr std::uint32_t kDefaultContext = 4096;

// The K-cache flags of `run` and `ppl` (docs/design.md §6).
struct QuantFlags {
  std::string kcache = "fp16";
  std::string rotation = "srht";
  std::string rotations;  // artifact file
  std::uint32_t rank = 0;
  std::string residual_bits = "16";  // 16, 8, 4, a4, a2 or a1
  std::string kv_budget;  // BITS or "artifact" (empty: none)
  std::uint32_t protect_front = 0;
  std::string kcache_rope = "post";
  std::string kscore = "popcount";
  std::uint32_t kscore_bits = 8;
  const CLI::Option* kscore_given = nullptr;  // to refuse --kscore* where keys are not scored in place
  const CLI::Option* kscore_bits_given = nullptr;
  const CLI::Option* rotation_given = nullptr;
  std::string vcache = "fp16";
  std::string mlp = "fp16";
  std::string mlp_rotation = "structured";
  const CLI::Option* mlp_rotation_given = nullptr;
  void add(CLI::App* cmd);
  KCacheConfig config() const;
  VType vcache_type() const { return *vtype_from_name(vcache); }
  MlpConfig mlp_config() const;
  // The artifact when --rotations is given (checked against `model`).
  std::optional<KCalibration> calibration(const ModelFile& model) const;
  // "1bit learned post r8 front4 pop8 + v q4 + mlp 1bit structured"-style label for tables.
  std::string label() const;
};

}  // namespace vkq::cli
