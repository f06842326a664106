// The 1-bit MLP matmul of docs/design.md §3 at the model level: per-matrix input
// rotations (calibration), their artifact tensors, a CPU reference of the
// whole matrix codec, and the device-side matrix the forward pass calls.
//
// For W (out, in) and a rotation R of the (zero-padded) input:
//   W x = (W Rᵀ)(R x),  W' = W Rᵀ: row i of W' is R w_i,
//   y_i ≈ c_i Σ_j x'_j + alpha_i Σ_j B_ij x'_j,  x' = R pad(x),
// with c_i = mean(w'_i), alpha_i = mean|w'_i - c_i|, B_ij = sign(w'_ij - c_i)
// (kernels::bgemv_encode). Rotations:
//   none        R = I, width in (no padding)
//   srht        R = H D / sqrt(P): the seeded SRHT (kernels::fwht), width P
//   dense       a learned P×P R from the SRHT start, width P: rot::learn_rotation
//               (Procrustes/RAdam) when the training rows number >= P; with
//               fewer rows (w_down: out < P) an alternating Procrustes on
//               the rows' span (no P×P SVD per step; the complement keeps
//               the SRHT's map)
//   structured  R = blockdiag(B_0 .. B_{P/block-1}) · H D / sqrt(P): SRHT then
//               learned block×block blocks, width P
// P = padded_in = max(64, next power of two >= in) (the FWHT's smallest size);
// pad(x) appends P - in zeros, which leaves W x unchanged.
//
// Mixture-of-experts models: expert banks stay fp16 (docs/design.md §3's default
// policy), so calibrate_mlp returns a calibration with no layers for them.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/kernels/bgemv.hpp"
#include "vkquant/model/artifact.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/safetensors.hpp"
#include "vkquant/stream.hpp"

namespace vkq {

enum class MlpRotation { none, srht, dense, structured };
const char* mlp_rotation_name(MlpRotation r);
// "none", "srht", "dense", "structured"; nullopt for anything else.
std::optional<MlpRotation> mlp_rotation_from_name(std::string_view name);

enum class MlpMatrix { gate, up, down };
inline constexpr std::array<MlpMatrix, 3> kMlpMatrices = {MlpMatrix::gate, MlpMatrix::up, MlpMatrix::down};
const char* mlp_matrix_name(MlpMatrix m);  // "gate", "up", "down"
Role mlp_matrix_role(MlpMatrix m);         // w_gate, w_up, w_down

// Mean cos1b of W' rows after per-row mean removal (what the codec keeps).
struct MlpCos {
  double train = 0, heldout = 0;
};

// One matrix's calibration.
struct MlpMatrixCalib {
  std::uint32_t out = 0, in = 0;
  std::uint32_t padded_in = 0;   // P
  std::uint32_t seed = 0;        // SRHT seed (D = srht_sign(seed, .))
  std::uint32_t block = 0;       // structured block size (power of two, divides P)
  std::vector<float> dense_rot;  // (P, P): x' = R pad(x)
  std::vector<float> blocks;     // (P/block, block, block): x' = blockdiag(blocks) SRHT(pad(x))
  // cos1b of the W' rows (held-out rows are never fitted).
  MlpCos none, srht, dense, structured;
  // The same learners on Gaussian rows of W's shape, mean and covariance
  // (rot::gaussian_like): the lift over these is structure, not fitting.
  MlpCos null_dense, null_structured;
  double seconds = 0;  // calibration time of this matrix
};

struct MlpLayerCalib {
  std::array<MlpMatrixCalib, 3> m;  // indexed by MlpMatrix
  MlpMatrixCalib& operator[](MlpMatrix k) { return m[std::size_t(k)]; }
  const MlpMatrixCalib& operator[](MlpMatrix k) const { return m[std::size_t(k)]; }
};

struct MlpCalibration {
  std::uint32_t seed = 0, block = 0;
  std::string solver;                 // procrustes or radam (the dense R)
  double heldout_fraction = 0;        // of each matrix's rows
  std::vector<MlpLayerCalib> layers;  // empty for MoE models
};

struct MlpCalibrateOptions {
  std::uint32_t seed = 0;
  std::uint32_t block = 64;           // structured block (power of two; clamped to P)
  int iters = 0;                      // 0: 30 (procrustes) or 200 (radam) for dense, 30 for the blocks
  std::string solver = "procrustes";  // dense R, rows >= P: procrustes or radam (else, blocks: Procrustes)
  double heldout = 0.1;               // fraction of rows held out
  int warm_start = 0;                 // FastICA warm-start iterations of the dense solver (0: none)
  bool null_control = true;
};

// Calibrates one matrix W (out, in) (rows are the vectors). Throws vkq::Error
// on bad sizes, options or a matrix with fewer than 2 rows.
MlpMatrixCalib calibrate_mlp_matrix(std::span<const float> w, std::uint32_t out, std::uint32_t in,
                                    const MlpCalibrateOptions& o);

// Calibrates w_gate, w_up and w_down of every layer of a dense model (no
// layers for an MoE model). `progress(done, total)` after each matrix.
MlpCalibration calibrate_mlp(const ModelFile& model, const MlpCalibrateOptions& o,
                             const std::function<void(std::size_t, std::size_t)>& progress = {});

// ---- artifact ------------------------------------------------------------------------------
// Tensors: layers.{i}.mlp.{gate,up,down}.rot        (P, P)                  fp32
//          layers.{i}.mlp.{gate,up,down}.rot_blocks (P/block, block, block) fp32
// __metadata__: mlp_layers, mlp_seed, mlp_block, mlp_solver, mlp_heldout, and
// mlp_cos1b (JSON: per layer, per matrix {none, srht, dense, structured,
// null_dense, null_structured} each [train, heldout]). mlp_layers = "0": none.
// Tensors are written and read through model/artifact.hpp, as the K-cache's are.

// Appends the MLP tensors (views into `m`, which must outlive the write) and
// metadata entries for write_safetensors.
void append_mlp_artifact(const MlpCalibration& m, std::vector<TensorWrite>& tensors,
                         std::map<std::string, std::string>& metadata);
// Reads the MLP part of an artifact, checking shapes and values against `c`;
// nullopt when the file carries no MLP calibration (no mlp_layers key).
// Throws FormatError naming the file and the tensor or key.
std::optional<MlpCalibration> read_mlp_artifact(const SafetensorsFile& f, const ModelConfig& c);
// The same, noting the tensors it reads in `reads` (read_kcache_artifact's whole-file reader).
std::optional<MlpCalibration> read_mlp_artifact(ArtifactReads& reads, const ModelConfig& c);

// ---- CPU reference of the codec ------------------------------------------------------------

// Width of x' and W' rows: in for none, else padded_in.
std::uint32_t mlp_rotated_width(std::uint32_t in, MlpRotation r);
// P for a given in: max(64, next power of two >= in).
std::uint32_t mlp_padded_in(std::uint32_t in);

// x' = R pad(x) for each row of x (rows, in) -> (rows, width) (fp64 sums for
// the dense and block products). `calib` may be null for none and srht (seed
// 0).
std::vector<float> mlp_rotate_rows(std::span<const float> x, std::uint32_t rows, std::uint32_t in,
                                   const MlpMatrixCalib* calib, MlpRotation r);

// W' = W Rᵀ encoded as bgemv's binary rows (out, width).
kernels::BinaryRows mlp_encode(std::span<const float> w, std::uint32_t out, std::uint32_t in,
                               const MlpMatrixCalib* calib, MlpRotation r);

// y (n, out) (+)= decode(code) · (R pad(x)) for x (n, in).
void mlp_reference(const kernels::BinaryRows& code, const MlpMatrixCalib* calib, MlpRotation r,
                   std::span<const float> x, std::span<float> y, std::uint32_t n, std::uint32_t in, bool accumulate);

// ---- device --------------------------------------------------------------------------------

// One 1-bit weight matrix on a device: the encoded W' = W Rᵀ, its rotation,
// and scratch for batches of up to max_batch rows per pass (bigger batches
// run in passes).
class OneBitMatrix {
 public:
  // w (out, in) fp32. `calib` must describe an (out, in) matrix for dense and
  // structured; it may be null for none and srht (then seed 0).
  OneBitMatrix(Device& device, std::span<const float> w, std::uint32_t out, std::uint32_t in,
               const MlpMatrixCalib* calib, MlpRotation rotation, std::uint32_t max_batch = 64);

  // Records y (n, out) = Ŵ x for x (n, in) (accumulate: y += Ŵ x). x and y
  // are fp32 and must not alias.
  void apply(Stream& s, const Buffer& x, Buffer& y, std::uint32_t n, bool accumulate);

  std::uint32_t out() const { return out_; }
  std::uint32_t in() const { return in_; }
  std::uint32_t width() const { return width_; }  // columns of W' (in, or P)
  MlpRotation rotation() const { return rotation_; }
  std::uint64_t weight_bytes() const;    // bits + c + alpha
  std::uint64_t rotation_bytes() const;  // dense R or the blocks (fp32); 0 for none and srht
  std::uint64_t bytes() const { return weight_bytes() + rotation_bytes(); }
  // Stored bits per weight of the original (out, in) matrix.
  double bits_per_weight() const { return double(bytes()) * 8.0 / (double(out_) * double(in_)); }

 private:
  // Records x' (m, width) of rows [r0, r0 + m) of x into a scratch buffer;
  // returns it.
  const Buffer& rotate_input(Stream& s, const Buffer& x, std::uint32_t r0, std::uint32_t m);

  std::uint32_t out_ = 0, in_ = 0, width_ = 0, seed_ = 0, block_ = 0, chunk_ = 0;
  MlpRotation rotation_ = MlpRotation::none;
  Buffer bits_, c_, alpha_, rot_;  // (out, words) u32, (out), (out), R (dense or blocks)
  Buffer xp_, xr_, yt_, ya_;       // scratch: (chunk, width) x2, (chunk, out) x2
};

}  // namespace vkq
