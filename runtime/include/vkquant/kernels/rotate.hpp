// Learned-rotation GEMM: Y = X Rᵀ (each row y = R x) with R a dense d×d
// matrix in fp32 or fp16 storage and fp32 accumulation. Layouts
// (shaders/include/rotate.h):
//   X  (rows, d)          fp32
//   R  (blocks, d, d)     fp32, or (blocks, d, ceil(d/2)) uint32 words of two
//                         fp16 halves, lower half = even column (pack_rotation_fp16)
//   Y  (rows, d)          fp32, Y[t][i] = sum_j R[t % blocks][i][j] X[t][j]
// blocks > 1 is a block-diagonal rotation: X (n, blocks*d) seen as
// (n*blocks, d) rows, block b rotating columns [b*d, (b+1)*d) of every row.
// X and Y may exceed maxStorageBufferRange: they are bound in row chunks.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels {

enum class RotateVariant {
  automatic,  // registers on CPU devices, tiled elsewhere
  registers,  // register tile per invocation, no shared memory (lavapipe)
  tiled,      // shared-memory tiled GEMM (GPUs)
};

struct RotateOptions {
  bool fp16_r = false;  // R is in the fp16 layout of pack_rotation_fp16
  RotateVariant variant = RotateVariant::automatic;
  // Rows x outputs per invocation, each 1..32 (0: the variant's default,
  // shrunk for small batches). tiled: per invocation of a 16x16 group.
  std::uint32_t tile_rows = 0, tile_outputs = 0;
  // Caps the rows of X/Y per binding below what maxStorageBufferRange allows
  // (0: no cap). For tests of the chunking path.
  std::uint64_t max_chunk_rows = 0;
  // Rotation blocks in R (>= 1): row t uses block t % blocks; rows must be
  // a multiple of blocks.
  std::uint32_t blocks = 1;
};

// Largest d accepted (R must also fit in one storage-buffer binding).
inline constexpr std::uint32_t kRotateMaxD = 16384;

// The variant `automatic` picks on `device`.
RotateVariant rotate_default_variant(const Device& device);

// Bytes of R for size d: blocks*d*d*4 (fp32) or blocks*d*ceil(d/2)*4 (fp16).
std::uint64_t rotation_bytes(std::uint32_t d, bool fp16, std::uint32_t blocks = 1);

// Packs (blocks, d, d) row-major floats (blocks >= 1, from r.size()) into the
// fp16 layout: (blocks, d, ceil(d/2)) words, round-to-nearest-even, padding
// half zero.
std::vector<std::uint32_t> pack_rotation_fp16(std::span<const float> r, std::uint32_t d);
// The (blocks, d, d) floats an fp16-layout R holds (what the kernel multiplies by).
std::vector<float> unpack_rotation_fp16(std::span<const std::uint32_t> words, std::uint32_t d);

// Records y = x·Rᵀ for `rows` rows of size d (1 <= d <= kRotateMaxD), row t
// by block t % options.blocks of R. y must be a different buffer from x and
// r. Throws vkq::Error on bad arguments.
void rotate(Stream& s, const Buffer& x, const Buffer& r, Buffer& y, std::uint64_t rows, std::uint32_t d,
            const RotateOptions& options = {});

// Records y (rows, dout) = rows [x_row0, x_row0 + rows) of x (., din), each
// zero-padded to dout >= din columns (the input of a rotation of padded
// width). x and y must not alias; both bindings must fit maxStorageBufferRange.
void pad_rows(Stream& s, const Buffer& x, std::uint64_t x_row0, Buffer& y, std::uint32_t rows, std::uint32_t din,
              std::uint32_t dout);

}  // namespace vkq::kernels
