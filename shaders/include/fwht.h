// Batched orthonormal fast Walsh–Hadamard transform and SRHT (docs/design.md §1, §4).
//
// Memory layout: rows of n = 2^k fp32 (64 <= n <= 16384), (rows, n)
// row-major, read through vec4 views (a row is n/4 vec4s; row 0 starts at
// vec4 index `src_base` / `dst_base` of its binding).
//   forward: y = H · D · x / sqrt(n)      inverse: x = D · H · y / sqrt(n)
// H is the Sylvester-ordered Walsh–Hadamard matrix, H[i][j] = (-1)^popcount(i & j),
// D = diag(fwht_sign(key, i)) for SRHT, D = I for the plain transform.
//
// The sign function is defined here ONCE for GLSL and C++ (C++ sees
// vkq::gpu::fwht_hash32 / fwht_key / fwht_sign): host code (rotations,
// calibration, references) must produce the very signs the kernels use.
#ifndef VKQ_FWHT_H
#define VKQ_FWHT_H
#include "vkq_shared.h"

#ifdef __cplusplus
#define VKQ_FWHT_FN inline
#else
#define VKQ_FWHT_FN
#endif

// Flags of FwhtParams.
#define FWHT_SIGNS_IN 1u   // multiply by D before the transform (forward SRHT)
#define FWHT_SIGNS_OUT 2u  // multiply by D after the transform (inverse SRHT)

VKQ_GPU_BEGIN
// Push constants of fwht_thread.comp, fwht_group.comp and fwht_col.comp (one
// dispatch covers one binding chunk of rows).
struct FwhtParams {
  uint rows;      // rows (of this kernel's row length) in this dispatch
  uint src_base;  // vec4 index of row 0 in the source binding
  uint dst_base;  // vec4 index of row 0 in the destination binding
  uint key;       // fwht_key(seed): the sign function's hashed seed
  uint flags;     // FWHT_SIGNS_IN | FWHT_SIGNS_OUT
  float scale;    // applied where the transform ends (1/sqrt(n), or 1 for a first pass)
  uint pad0;
  uint pad1;
};

// A 32-bit integer mixer (lowbias32, C. Wellons): every input bit flips
// about half of the output bits.
VKQ_FWHT_FN uint fwht_hash32(uint x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The hashed seed that kernels receive (computed once per call).
VKQ_FWHT_FN uint fwht_key(uint seed) { return fwht_hash32(seed ^ 0x9e3779b9u); }

// D[i][i] for column i: +1 or -1, from the low bit of a hash of (seed, i).
VKQ_FWHT_FN float fwht_sign(uint key, uint i) { return (fwht_hash32(i ^ key) & 1u) != 0u ? -1.0f : 1.0f; }
VKQ_GPU_END

#ifndef __cplusplus
// Two butterfly stages inside a vec4 (bits 0 and 1 of the float index).
vec4 fwht4(vec4 a) {
  const vec4 b = vec4(a.x + a.y, a.x - a.y, a.z + a.w, a.z - a.w);
  return vec4(b.xy + b.zw, b.xy - b.zw);
}

// D for the four columns of vec4 column c4 (floats 4*c4 .. 4*c4+3).
vec4 fwht_signs4(uint key, uint c4) {
  const uint i = c4 * 4u;
  return vec4(fwht_sign(key, i), fwht_sign(key, i + 1u), fwht_sign(key, i + 2u), fwht_sign(key, i + 3u));
}

// Butterflies over the low `bits` bits of the index of the register block
// v[0..M) (M in scope): stage s pairs a and a + 2^s. Trip counts are
// constants after specialization, so compilers unroll these loops and v stays
// in registers ([[unroll]]: drivers' cost limits must not leave v indexed
// dynamically).
#define FWHT_REG(v, bits)                                                     \
  [[unroll]] for (uint s_ = 0u; s_ < (bits); ++s_)                            \
    [[unroll]] for (uint k_ = 0u; k_ < M / 2u; ++k_) {                        \
      const uint a_ = ((k_ >> s_) << (s_ + 1u)) | (k_ & ((1u << s_) - 1u));   \
      const uint b_ = a_ | (1u << s_);                                        \
      const vec4 x_ = v[a_], y_ = v[b_];                                      \
      v[a_] = x_ + y_;                                                        \
      v[b_] = x_ - y_;                                                        \
    }
#endif

#endif
