// The 1-bit K-cache of docs/design.md §2 at the model level: what the forward pass
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

#include "vkquant/kresidual.hpp"
#include "vkquant/model/kv_policy.hpp"
#include "vkquant/model/mlp1bit.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/sha256.hpp"
#include "vkquant/vtype.hpp"

namespace vkq {

// Which key is coded: after RoPE (centered by the post-RoPE mean), before
// RoPE (decoded, then rotated), or after RoPE centered by the rotated
// pre-RoPE mean RoPE_p(mu_pre) (docs/design.md §2's variant; q·RoPE_p(mu_pre) is
// added back to each score).
enum class KRope { post, pre, ropemean };
enum class KRotation { none, srht, learned };

struct KCalibration;

// How the forward pass stores keys: the key-cache spec. It owns the mode's
// rules (validate) and its label; the forward passes build their key caches
// from it (model/kv_cache.hpp, model/kv_host.hpp) and know no modes.
struct KCacheConfig {
  bool one_bit = false;          // false: fp16 keys
  KRope rope = KRope::post;
  KRotation rotation = KRotation::srht;
  std::uint32_t rank = 0;        // residual rank r (learned rotation only)
  std::uint32_t protect_front = 0;  // first positions kept exact in fp16
  std::uint32_t srht_seed = 0;
  // Post-RoPE codes are scored in place by the kscore kernels: in fp32
  // (sign-select, query_bits 0) or by popcounts over query_bits (1, 4 or 8)
  // planes of the quantized rotated query. Pre-RoPE codes are decoded to fp16.
  std::uint32_t query_bits = 8;
  // Residual coefficient bits of every head: 16 (fp16), 8 or 4 (integers
  // with a per-token fp16 scale; kresidual.hpp). Rank 8 bits needs an even
  // rank, 4 bits a multiple of 4.
  std::uint32_t coef_bits = 16;
  // The transform code (--kcache tc, docs/design.md §2.9): no sign code; each
  // head's coefficients at 4, 3, 2 and 1 bits as the artifact's transform plan
  // at `budget` says. Needs an artifact calibrated with --kv-budget and a
  // budget; rank, coef_bits, coef_arel and query_bits stay at 0/16/false/0.
  bool transform = false;
  // Alpha-relative codes of coef_bits 4, 2 or 1 (no per-token scale; the
  // step per basis column and width comes from the artifact, kresidual.hpp).
  bool coef_arel = false;
  // Per-(layer, KV head) precision (docs/design.md §2.8): > 0, the plan of the
  // artifact's policy table at this many mean bits per key coordinate;
  // kBudgetArtifact, the plan `calibrate --kv-budget` stored; 0, none (every
  // head takes rank and coef_bits).
  double budget = 0;
  static constexpr double kBudgetArtifact = -1;

  // Throws vkq::Error naming the flag when this spec cannot run on a model
  // of config `c` with `calibration` (nullptr: none): options that need 1-bit
  // keys, a learned rotation without an artifact, a residual rank the
  // artifact lacks, query bits other than 0/1/4/8, a head size the codec
  // lacks (32, 64, 96, 128, 256).
  void validate(const ModelConfig& c, const KCalibration* calibration) const;
  // "fp16", or "1bit learned post r8 front4 pop8"-style (rotation, rope,
  // rank, front, scoring) for tables and reports.
  std::string label() const;
  // Each layer's residual per KV head: the uniform (rank, coef_bits), or the
  // policy plan (budget). Call after validate.
  std::vector<std::vector<KResidual>> residual_plan(const ModelConfig& c, const KCalibration* calibration) const;
  // Bits per key coordinate of the stored code, averaged over every (layer,
  // KV head) (16 for fp16; 1 + 16/hd plus each head's residual record for
  // 1-bit; the protected front not included). Call after validate.
  double bits_per_coordinate(const ModelConfig& c, const KCalibration* calibration) const;
};
const char* krope_name(KRope r);  // "post", "pre", "post-ropemean"
const char* krotation_name(KRotation r);

// Throws vkq::Error naming --vcache when values of type `v` cannot be stored
// for a model of config `c` (q8 and q4 need head_dim % 32 == 0).
void validate_vcache(VType v, const ModelConfig& c);

// One rope mode's calibration of one layer: every KV head's mean, learned
// rotation and residual basis.
struct KLayerCalib {
  std::vector<float> mean;   // (kv_heads, hd)
  std::vector<float> rot;    // (kv_heads, hd, hd) learned R (v -> R v)
  std::vector<float> basis;  // (kv_heads, hd, rank) for the learned rotation: the decoder's B
  // (kv_heads, hd, rank): the encoder's A (c = Aᵀ e) of a query-weighted pair
  // (docs/design.md §2.8); empty: basis (orthonormal principal directions).
  std::vector<float> enc_basis;
  // (kv_heads, rank): the alpha-relative step of each basis column, in units
  // of the key's alpha (kresidual.hpp), for 4-bit codes (step), 2-bit and
  // 1-bit codes; each empty in artifacts before it.
  std::vector<float> step, step_a2, step_a1;
  // The steps of `bits`-bit alpha-relative codes (4, 2 or 1).
  const std::vector<float>& arel_step(std::uint32_t bits) const;
  std::vector<float>& arel_step(std::uint32_t bits);
  // The transform code (docs/design.md §2.9; tc_fit in the unrotated
  // centered space of the mode): encoder and decoder (kv_heads, hd, hd), and
  // each column's absolute step at 4, 3, 2 and 1 bits (kv_heads, hd); empty
  // unless calibrated with --kv-budget.
  std::vector<float> tc_enc, tc_dec, tc_step4, tc_step3, tc_step2, tc_step1;
  const std::vector<float>& tc_step(std::uint32_t bits) const;
  std::vector<float>& tc_step(std::uint32_t bits);
  // Each column's calibrated levels at 4, 3 and 2 bits, in units of its
  // step, indexed by the code's bits (kv_heads, hd, 16), (kv_heads, hd, 8)
  // and (kv_heads, hd, 4) (kresidual.hpp; 1-bit codes keep the uniform ±1/2).
  std::vector<float> tc_lv4, tc_lv3, tc_lv2;
  const std::vector<float>& tc_levels(std::uint32_t bits) const;
  // cos1b per head (held-out unless named train): centered (no rotation), SRHT, learned.
  std::vector<double> cos_none, cos_srht, cos_learned_train, cos_learned;
  std::vector<double> cos_eff;  // learned + residual, measured
};

struct KCalibration {
  std::uint32_t layers = 0, kv_heads = 0, head_dim = 0, rank = 0;
  std::uint64_t tokens = 0;
  std::string solver, model_sha256;
  std::filesystem::path source;  // the artifact file (read_kcache_artifact)
  std::uint32_t seed = 0;
  // Per layer. ropemean: mean = the pre-RoPE mean, rotation and basis learned
  // on RoPE_p(k_pre - mu_pre); empty in artifacts of format version 1.
  std::vector<KLayerCalib> post, pre, ropemean;
  // The calibration of one rope mode (throws when the artifact lacks it).
  const std::vector<KLayerCalib>& mode(KRope r) const;
  // Learned rotations of the dense MLP matrices (docs/design.md §3); absent in
  // artifacts calibrated before them.
  std::optional<MlpCalibration> mlp;
  // The precision policy (docs/design.md §2.8): per rope mode, each (layer,
  // head, option)'s measured loss; empty unless calibrated with --kv-budget
  // or --kv-target-kl. `budget` is what calibrate was asked for (0: none) and
  // `plans` the plan it chose per mode ((layers, kv_heads) each).
  std::map<KRope, KPolicyTable> policy;
  double budget = 0;
  std::map<KRope, std::vector<KResidual>> plans;
  // The transform code's tables and plans per rope mode (options tc_options;
  // head_kl: the sign code's sensitivity rescaled so that both tables weigh
  // a head alike, KL per unit of predicted loss).
  std::map<KRope, KPolicyTable> tc_policy;
  std::map<KRope, std::vector<KResidual>> tc_plans;
  // The table of one rope mode (throws naming --kv-budget when absent);
  // transform: the transform code's.
  const KPolicyTable& policy_table(KRope r, bool transform = false) const;
};

// SHA-256 over the model's weights as stored (ModelFile::for_each_stored
// order; each weight's ggml type id as 4 little-endian bytes, then its bytes
// in canonical row order). Reads the file's bytes, converts nothing; VkForward
// takes the same hash while uploading (VkForward::model_sha256), so loading
// a model with an artifact reads the weights once. A copy of the model in
// another storage type (F16 of a BF16 checkpoint, GGUF of safetensors)
// hashes differently.
std::string model_sha256(const ModelFile& f);
// Updates `h` with one stored weight as model_sha256 does.
void model_sha256_update(Sha256& h, const StoredWeight& w);
// Throws FormatError naming k.source unless the artifact was calibrated on
// the model whose model_sha256 is `sha`.
void check_model_binding(const KCalibration& k, const std::string& sha);

struct CalibrateOptions {
  std::uint32_t rank = 8;
  // The precision policy: measure every head's options (needs `rank` =
  // head_dim for the full-rank options) and choose the plan at `budget`
  // mean bits per key coordinate (0: measure only).
  bool policy = false;
  double budget = 0;
  KPolicyObjective objective = KPolicyObjective::query;
  std::string solver = "procrustes";  // or radam
  std::uint32_t seed = 0;
  int iters = 0;
  int warm_start = 100;  // most FastICA warm-start iterations (0: none)
};
// Learns the codec from captured keys: `pre[l]`, `post[l]` are (tokens,
// kv_heads * hd) for layer l; `positions` (tokens) the position of each.
// `progress(done, total)` after each (layer, head, mode).
// With o.policy, q2_pre / q2_post are the queries' second moments per layer
// (CapturedKeys::q2_pre, q2_post; needed by the query objective).
KCalibration calibrate_keys(const ModelConfig& c, const std::vector<std::vector<float>>& pre,
                            const std::vector<std::vector<float>>& post, const std::vector<std::uint32_t>& positions,
                            const CalibrateOptions& o,
                            const std::function<void(std::size_t, std::size_t)>& progress = {},
                            const std::vector<std::vector<double>>* q2_pre = nullptr,
                            const std::vector<std::vector<double>>* q2_post = nullptr);

// Writes the artifact atomically (safetensors; tensors layers.{i}.k_mean,
// k_rot, k_resid_basis, the k_pre_* twins and k_rm_rot, k_rm_resid_basis; __metadata__ with the format
// version, producer, method, per-head cos1b and the model's SHA-256).
void write_kcache_artifact(const std::filesystem::path& path, const KCalibration& k, const std::string& producer);
// Reads and checks an artifact against `model` (format, version; tensors F32,
// of their shapes and finite, as model/artifact.hpp reads them;
// SHA-256 unless `deferred_binding`: then VkForward checks it against the
// hash it takes while uploading the weights, so the file is read once);
// throws FormatError naming the file and the problem.
KCalibration read_kcache_artifact(const std::filesystem::path& path, const ModelFile& model, bool deferred_binding = false);

}  // namespace vkq
