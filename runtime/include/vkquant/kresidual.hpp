// Per-KV-head residual coefficients of the 1-bit key code (docs/design.md §2.1):
// head h keeps c = U_{r_h}ᵀ (v − alpha·s) (its r_h leading basis columns) as
// fp16, or int8 / int4 codes with an fp16 scale per (position, head).
//
// Coefficient array: fp16-sized halves, two per uint32 word, low half first.
// The record of (position p, head h) starts at half p·stride + offset[h]:
//   bits 16: halves c_0 .. c_{r-1} (fp16, round to nearest even);
//   bits 8:  half 0 = σ = fp16(max|c_i| / 127); byte i (int8) at half 1 + i/2,
//            byte i%2 of it (low byte first); code = clamp(roundEven(c/σ), ±127);
//   bits 4:  half 0 = σ = fp16(max|c_i| / 7); nibble i (4-bit two's complement)
//            at half 1 + i/4, nibble i%4 (low first); code = clamp(roundEven(c/σ), ±7);
// with σ the fp16-rounded scale (σ = 0: every code 0); ĉ_i = σ·code_i;
//   alpha-relative b = 4, 2 or 1 bits (arel): no scale in the record; code
//            i (b-bit two's complement) at half i/(16/b), bits b·(i%(16/b))
//            (low first), code = clamp(floor(c_i / α), −2^(b−1), 2^(b−1) − 1)
//            with α the key's fp16 alpha; ĉ_i = α·(code_i + ½) (midrise: all
//            2^b levels; b = 1 is a sign: ±α/2). A key of alpha 0 codes 0.
// The arel step lives in the bases: the calibrated step s_i of coefficient i
// (in units of α) divides column i of the encoder's basis and multiplies
// column i of the decoder's (docs/design.md §2.1).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vkquant/half.hpp"

namespace vkq {

// One KV head's residual: rank r_h (0: none) and coefficient bits (16, 8 or
// 4), with a per-key fp16 scale (8, 4) or alpha-relative (arel: 4, 2 or 1 bits).
struct KResidual {
  std::uint32_t rank = 0, bits = 16;
  bool arel = false;
  // A transform-coded head (tc; docs/design.md §2.9): no sign code and no
  // alpha; the key is the mean plus `rank` coefficients along the decoder's
  // columns, the first n4 as 4-bit codes, the next n3 as 3-bit, the next n2
  // as 2-bit, the other n1 = rank - n4 - n3 - n2 as 1-bit codes, each code
  // b-bit two's complement, code = clamp(floor(c_i), -2^(b-1), 2^(b-1) - 1),
  // ĉ_i = code + 1/2 (the calibrated absolute step of each column lives in
  // the bases, as arel's), or, with calibrated levels (below), the nearest
  // level and ĉ_i that level. Record: the 4-bit codes from half 0 (4 a half),
  // then the 3-bit (16 in 3 halves, a code's bits may run into the next
  // half), then the 2-bit (8 a half), then the 1-bit (16 a half), each
  // segment a bit string from its first half's low bit. bits is 0.
  bool tc = false;
  std::uint32_t n4 = 0, n3 = 0, n2 = 0;
  std::uint32_t n1() const { return rank - n4 - n3 - n2; }
  bool operator==(const KResidual&) const = default;
};
// A transform-coded head of n4, n3, n2 and n1 coefficients at 4, 3, 2 and 1 bits.
inline KResidual tc_residual(std::uint32_t n4, std::uint32_t n3, std::uint32_t n2, std::uint32_t n1) {
  KResidual r{n4 + n3 + n2 + n1, 0, false};
  r.tc = true;
  r.n4 = n4;
  r.n3 = n3;
  r.n2 = n2;
  return r;
}
// Where code i of a transform-coded record sits: its width (4, 3, 2 or 1),
// the half holding its low bit and that bit's shift; a 3-bit code with shift
// 14 or 15 runs into the next half.
struct TcSlot {
  std::uint32_t width, half, shift;
};
TcSlot tc_slot(KResidual r, std::uint32_t i);
// A transform code's segments fit its rank and fill whole halves: n4 % 4,
// n3 % 16, n2 % 8 and n1 % 16 == 0 (KResidualLayout::make's rule, which the
// kernels and the record functions check too).
bool tc_fills_halves(KResidual r);
// "r8/a4", "r16/a2", "r8/4", "r8/16", "1bit", "tc16/0/8/16" (n4/n3/n2/n1), "tc0" (the mean alone).
std::string residual_label(KResidual r);

// The per-position record layout of one layer's residual coefficients.
struct KResidualLayout {
  std::vector<KResidual> heads;       // (n_kv)
  std::vector<std::uint32_t> offset;  // (n_kv): first half of each head's record within a position
  std::uint32_t stride = 0;           // halves per position: the sum of the records' halves

  // Validates (bits in {16, 8, 4}; bits 8: even rank; bits 4: rank % 4 == 0;
  // arel: bits in {4, 2, 1}, rank % (16 / bits) == 0; tc: n4 % 4, n3 % 16,
  // n2 % 8 and n1 % 16 == 0, rank < 1024, every head tc or none)
  // and lays the records out in head order; throws vkq::Error naming the head and the rule.
  static KResidualLayout make(std::vector<KResidual> heads);
  // Every one of n_kv heads at (rank, bits).
  static KResidualLayout uniform(std::uint32_t n_kv, std::uint32_t rank, std::uint32_t bits = 16);
  // Halves of one record: 0 at rank 0; bits 16: rank; 8: 1 + rank/2; 4: 1 + rank/4; arel: rank·bits/16;
  // tc: n4/4 + 3·n3/16 + n2/8 + n1/16.
  static std::uint32_t record_halves(KResidual r);

  std::uint32_t n_kv() const { return std::uint32_t(heads.size()); }
  // Every head transform-coded: the cache holds no sign bits and no alphas.
  bool transform() const { return !heads.empty() && heads[0].tc; }
  std::uint32_t max_rank() const;
  // Bytes of ctx positions: ctx·stride halves rounded up to whole uint32 words (0 when stride is 0).
  std::uint64_t bytes(std::uint32_t ctx) const;
  // Throws vkq::Error (prefixed by `fn`) naming the first head whose rank exceeds basis_cols.
  void check_basis(const char* fn, std::uint32_t basis_cols) const;
  bool operator==(const KResidualLayout&) const = default;
};

// A transform-coded head's reconstruction levels (docs/design.md §2.9):
// (rank, kTcLevels) fp32, row i the levels of coefficient i indexed by its
// code's bits u (0 .. 2^width - 1; u's two's-complement value s, uniform
// levels s + 1/2), in units of the column's step. Empty: the uniform midrise
// levels. A code is the level nearest to c (ties to the larger s).
inline constexpr std::uint32_t kTcLevels = 16;
// The uniform level of code bits u at `width` bits: s + 1/2.
double tc_uniform_level(std::uint32_t width, std::uint32_t u);
// The bits u of code value s at `width` bits (two's complement): a level table's index.
inline std::uint32_t tc_code_bits(int s, std::uint32_t width) { return std::uint32_t(s) & ((1u << width) - 1); }

// Writes the record of c (r.rank values) into record (record_halves(r) halves).
// arel: alpha is the key's (fp16-rounded) alpha; unused otherwise. tc: levels
// as above (empty: uniform).
void pack_residual(KResidual r, std::span<const double> c, std::span<half_bits> record, double alpha = 0,
                   std::span<const float> levels = {});
// The decoded coefficients ĉ (r.rank values) of a record (arel: alpha is the key's; tc: levels as above).
std::vector<double> unpack_residual(KResidual r, std::span<const half_bits> record, double alpha = 0,
                                    std::span<const float> levels = {});

// Where a scoring call finds one KV head's records: the record of key t
// starts at half offset + t·stride of the coefficient array.
struct KResidualPlace {
  KResidual code;
  std::uint64_t offset = 0, stride = 0;
};

// The residual records of a scoring call (kscore) and the basis they share.
struct KResidualView {
  std::vector<KResidualPlace> heads;  // (kv_heads); empty: no residual
  std::uint32_t basis_cols = 0;       // R: U is (kv_heads, d, R), uq (rows, q_heads, R)

  // The position-major code cache (N, n_kv, ...): offset[h], the layout's stride.
  static KResidualView position_major(const KResidualLayout& l, std::uint32_t basis_cols);
  // Head-major (kv_heads, N, record): head h's N records back to back after
  // those of heads < h (uniform (r, 16): offset h·N·r, stride r).
  static KResidualView head_major(const KResidualLayout& l, std::uint64_t keys, std::uint32_t basis_cols);
  // Uniform fp16 rank r over kv_heads heads, head-major.
  static KResidualView head_major(std::uint32_t kv_heads, std::uint64_t keys, std::uint32_t rank);

  bool any() const;                // some head has rank > 0
  std::uint32_t max_rank() const;
  // Halves a coefficient array of `keys` keys must hold (0 when none is read).
  std::uint64_t halves(std::uint64_t keys) const;
};

}  // namespace vkq
