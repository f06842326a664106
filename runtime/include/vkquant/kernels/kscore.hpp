// kscore: query heads against N 1-bit keys (docs/design.md §2) — a float path, a
// popcount path over b-bit planes of the integer-quantized rotated query
// (b = 1, 4, 8), and the fp16 q·Kᵀ baseline. All of them score a whole GQA
// group per pass over the keys: query head h uses KV head h / group.
//
// Layouts (shaders/include/kscore.h has the full list), for the defaults
// (key-major keys, one query row):
//   bits   (kv_heads, N, ceil(d/32)) uint32   alpha (kv_heads, N) fp16 (flat, two per word)
//   c      residual records (KResidualView)  U     (kv_heads, d, R) fp32
//   q      (q_heads, d) fp32 (rotated)       qmu   (q_heads) fp32
//   scores (q_heads, N) fp32                 K     (kv_heads, N, ceil(d/2)) fp16
// KscoreShape::layout = position_major swaps the first two dimensions of
// bits, alpha and K; the residual records sit where KscoreShape::residual
// says (KResidualView::head_major or position_major); several query rows add a leading row dimension to the
// query-side arrays and to scores.
// Key-side buffers and scores may exceed maxStorageBufferRange: they are bound
// in key chunks. Query-side buffers must fit in one binding.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/kresidual.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

// Where key t of KV head kv sits in bits / alpha (and K of kscore_f16).
enum class KscoreLayout {
  key_major,       // row kv*N + t: (kv_heads, N, ...)
  position_major,  // row t*kv_heads + kv: (N, kv_heads, ...), the kcodec cache
};

// The shape of one scoring call.
struct KscoreShape {
  std::uint32_t d = 0;         // head dimension, 1..1024 (kernels unroll over it)
  std::uint32_t kv_heads = 0;  // KV heads
  std::uint32_t group = 1;     // query heads per KV head
  std::uint64_t keys = 0;      // N keys per KV head
  KResidualView residual;      // per KV head: rank, coefficient bits, where its records sit in c; empty: none
  KscoreLayout layout = KscoreLayout::key_major;
  // Query rows: the call scores query rows query0 .. query0+queries-1 of the
  // query-side buffers (q, qmu, uq, planes, qconst: (rows, q_heads, ...)) into
  // scores (queries, q_heads, N).
  std::uint32_t queries = 1, query0 = 0;
  // Causal: query row y of the call writes scores of keys t < causal_keys + y
  // only; the rest of its score row is left untouched.
  bool causal = false;
  std::uint64_t causal_keys = 0;

  std::uint32_t q_heads() const { return group * kv_heads; }                    // query heads per query row
  std::uint64_t query_rows() const { return std::uint64_t(query0) + queries; }  // rows the query-side buffers hold
  std::uint32_t words() const { return (d + 31) / 32; }                        // W: uint32 words per key
};

// The 1-bit keys.
struct KscoreKeys {
  const Buffer* bits = nullptr;   // (kv_heads, N, W) uint32
  const Buffer* alpha = nullptr;  // (kv_heads, N) fp16
  const Buffer* c = nullptr;      // residual records (shape.residual); required iff a head has rank > 0
};

// The rotated queries and their per-head extras.
struct KscoreQuery {
  const Buffer* q = nullptr;      // (rows, q_heads, d) fp32, q' = R q
  const Buffer* qmu = nullptr;    // (rows, q_heads) fp32 q·mu, or null
  const Buffer* basis = nullptr;  // (kv_heads, d, R) fp32 U_R (R = residual.basis_cols); required iff a residual
  Buffer* uq = nullptr;           // (rows, q_heads, R) fp32 scratch for U_Rᵀ q'; required iff a residual
  const Buffer* levels = nullptr; // kscore_tc: (kv_heads, R, kTcLevels) fp32 calibrated levels (kresidual.hpp), or null: uniform
};

// A query quantized by kscore_quantize_query.
struct KscoreQuantized {
  std::uint32_t bits = 8;         // b: 1, 4 or 8 planes
  const Buffer* planes = nullptr; // (rows, q_heads, b, W) uint32
  const Buffer* qconst = nullptr; // (rows, q_heads) gpu::KscoreQueryConst (16 bytes each)
};

// Launch choices; the defaults suit every device (the per-path row blocks and
// keys per invocation were measured on lavapipe; kscore.cpp).
struct KscoreTuning {
  std::uint32_t local = 64;               // invocations per workgroup (each scores K keys)
  std::uint32_t max_heads_per_pass = 8;   // query heads scored per key read (a divisor of group is used)
  std::uint32_t max_rows_per_pass = 0;    // query rows scored per key read, one dispatch per block; 0: per path
  std::uint32_t keys_per_invocation = 0;  // K: keys each query load serves, 1..8; 0: per path
  std::uint64_t max_binding_bytes = 0;    // 0: the device limit; tests lower it to force key chunking
};

// Bytes of the planes / qconst buffers for `shape` at b bits (query_rows() rows).
std::uint64_t kscore_planes_bytes(const KscoreShape& shape, std::uint32_t b);
std::uint64_t kscore_qconst_bytes(const KscoreShape& shape);

// scores = qmu + alpha·(q'·s) + Σ_{i<r_kv} (U_Rᵀ q')_i ĉ_i, q'·s in fp32 (sign-flip accumulate).
void kscore_float(Stream& s, const KscoreShape& shape, const KscoreKeys& keys, const KscoreQuery& query,
                  Buffer& scores, const KscoreTuning& tuning = {});

// Quantizes q' to b bit-planes plus per-head Δ, z, 1/Δ, Σ Q (one workgroup per
// head), for query rows query0 .. query0+queries-1.
void kscore_quantize_query(Stream& s, const KscoreShape& shape, std::uint32_t b, const Buffer& q, Buffer& planes,
                           Buffer& qconst);

// scores = qmu + alpha·Δ(Σ s_i Q_i - z Σ s_i) + Σ_i (U_Rᵀ q')_i ĉ_i from popcounts of the
// quantized query's planes; query.q feeds only the residual term.
void kscore_popcount(Stream& s, const KscoreShape& shape, const KscoreKeys& keys, const KscoreQuery& query,
                     const KscoreQuantized& qq, Buffer& scores, const KscoreTuning& tuning = {});

// The transform code (every head of shape.residual transform-coded,
// kresidual.hpp; no sign bits, no alpha): scores = qmu + Σ_i (U_Rᵀ q)_i ĉ_i,
// ĉ_i = code_i + 1/2, or query.levels' level of the code, from the keys'
// records in c (nullptr when every head's code is empty); keys.bits and
// keys.alpha are not read.
void kscore_tc(Stream& s, const KscoreShape& shape, const Buffer* c, const KscoreQuery& query, Buffer& scores,
               const KscoreTuning& tuning = {});

// sums (queries, q_heads, N) int32 = Σ_i s_i Q_i exactly: the popcount path's integer core.
void kscore_popcount_sums(Stream& s, const KscoreShape& shape, const Buffer& bits, const KscoreQuantized& qq,
                          Buffer& sums, const KscoreTuning& tuning = {});

// fp16 baseline: scores (queries, q_heads, N) = q · K[h / group]ᵀ with K (kv_heads, N, ceil(d/2)) fp16
// (or (N, kv_heads, ceil(d/2)) position-major).
void kscore_f16(Stream& s, const KscoreShape& shape, const Buffer& k, const Buffer& q, Buffer& scores,
                const KscoreTuning& tuning = {});

}  // namespace vkq::kernels
