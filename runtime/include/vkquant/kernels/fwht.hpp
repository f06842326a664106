// Batched orthonormal fast Walsh–Hadamard transform and SRHT (docs/design.md §1, §4).
//
// Data: rows of n fp32, (rows, n) row-major, n = 2^k with 64 <= n <= 16384.
//   forward: y = H · D · x / sqrt(n)       inverse: x = D · H · y / sqrt(n)
// H[i][j] = (-1)^popcount(i & j) (Sylvester order, symmetric, H·H = n·I);
// D = diag(srht_sign(seed, i)) with `srht`, else the identity. Forward and
// inverse are each other's inverse for the same seed.
#pragma once

#include <cstdint>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

enum class FwhtVariant {
  automatic,  // picked per device (fwht_auto_variant)
  thread,     // one invocation per row, register passes; no shared memory (CPU devices)
  group,      // workgroup per row in shared memory; a column pre/post pass where a row does not fit (GPUs)
  lanes,      // neighbouring subgroup lanes per row, whole row in registers (CPU devices); falls back to
              // thread where the device lacks subgroup shuffles or a row is too long
};

struct FwhtOptions {
  bool srht = false;      // fuse the random ±1 diagonal D
  std::uint32_t seed = 0;  // D's seed (with srht)
  bool inverse = false;   // D·H·y/sqrt(n) instead of H·D·x/sqrt(n)
  std::uint64_t offset = 0;      // byte offset of row 0 in src (and in data, in place); multiple of 16
  std::uint64_t dst_offset = 0;  // byte offset of row 0 in dst (src -> dst form); multiple of 16
  FwhtVariant variant = FwhtVariant::automatic;
  std::uint64_t max_binding_bytes = 0;  // 0: the device limit; smaller values force binding chunks (tests)
};

// D[i][i] for column i: +1.0f or -1.0f (the function every kernel uses).
float srht_sign(std::uint32_t seed, std::uint32_t i);

// The variant `automatic` resolves to on `device`.
FwhtVariant fwht_auto_variant(const Device& device);
const char* fwht_variant_name(FwhtVariant v);
// Every forceable variant (tests and bench iterate over them).
std::vector<FwhtVariant> fwht_variants();

// dst (rows, n) = transform of src (rows, n); src and dst may be the same
// buffer with equal offsets (in place). Throws vkq::Error on bad arguments.
void fwht(Stream& s, const Buffer& src, Buffer& dst, std::uint64_t rows, std::uint32_t n,
          const FwhtOptions& opts = {});

// In-place transform of data (rows, n) from byte `opts.offset`.
void fwht(Stream& s, Buffer& data, std::uint64_t rows, std::uint32_t n, const FwhtOptions& opts = {});

}  // namespace vkq::kernels
