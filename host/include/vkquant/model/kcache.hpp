// The 1-bit K-cache of DESIGN §2 at the model level: what the forward pass
// is told (KCacheConfig), the calibration that measures keys and learns
// rotations, and the versioned artifact (*.vkq.safetensors) that carries them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vkquant/model/model_file.hpp"

namespace vkq {

enum class KRope { post, pre };                 // which key is coded: after RoPE, or before (decoded then rotated)
enum class KRotation { none, srht, learned };

// How the forward pass stores keys.
struct KCacheConfig {
  bool one_bit = false;          // false: fp16 keys
  KRope rope = KRope::post;
  KRotation rotation = KRotation::srht;
  std::uint32_t rank = 0;        // residual rank r (learned rotation only)
  std::uint32_t protect_front = 0;  // first positions kept exact in fp16
  std::uint32_t srht_seed = 0;
};
const char* krope_name(KRope r);
const char* krotation_name(KRotation r);

// One rope mode's calibration of one layer: every KV head's mean, learned
// rotation and residual basis.
struct KLayerCalib {
  std::vector<float> mean;   // (kv_heads, hd)
  std::vector<float> rot;    // (kv_heads, hd, hd) learned R (v -> R v)
  std::vector<float> basis;  // (kv_heads, hd, rank) for the learned rotation
  // cos1b per head (held-out unless named train): centered (no rotation), SRHT, learned.
  std::vector<double> cos_none, cos_srht, cos_learned_train, cos_learned;
  std::vector<double> cos_eff;  // learned + residual, measured
};

struct KCalibration {
  std::uint32_t layers = 0, kv_heads = 0, head_dim = 0, rank = 0;
  std::uint64_t tokens = 0;
  std::string solver, model_sha256;
  std::uint32_t seed = 0;
  std::vector<KLayerCalib> post, pre;  // per layer
};

// SHA-256 over the model's canonical fp32 tensors (role order): the same
// for one model in safetensors and in F32 GGUF; an F16 copy differs.
std::string model_sha256(const ModelFile& f);

struct CalibrateOptions {
  std::uint32_t rank = 8;
  std::string solver = "procrustes";  // or radam
  std::uint32_t seed = 0;
  int iters = 0;
  int warm_start = 100;  // most FastICA warm-start iterations (0: none)
};
// Learns the codec from captured keys: `pre[l]`, `post[l]` are (tokens,
// kv_heads * hd) for layer l. `progress(done, total)` after each (layer, head, mode).
KCalibration calibrate_keys(const ModelConfig& c, const std::vector<std::vector<float>>& pre,
                            const std::vector<std::vector<float>>& post, const CalibrateOptions& o,
                            const std::function<void(std::size_t, std::size_t)>& progress = {});

// Writes the artifact atomically (safetensors; tensors layers.{i}.k_mean,
// k_rot, k_resid_basis and the k_pre_* twins; __metadata__ with the format
// version, producer, method, per-head cos1b and the model's SHA-256).
void write_kcache_artifact(const std::filesystem::path& path, const KCalibration& k, const std::string& producer);
// Reads and checks an artifact against `model` (format, version, shapes,
// SHA-256); throws FormatError naming the file and the problem.
KCalibration read_kcache_artifact(const std::filesystem::path& path, const ModelFile& model);

}  // namespace vkq
