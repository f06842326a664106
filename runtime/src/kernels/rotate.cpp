#include "vkquant/kernels/rotate.hpp"

#include <algorithm>
#include <numeric>
#include <string>

#include "rotate.h"
#include "vkquant/chunk.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"

namespace vkq::kernels {

static_assert(sizeof(gpu::RotateParams) == 16);
static_assert(sizeof(gpu::RotatePadParams) == 16);

namespace {

constexpr std::uint32_t kRegLocal = 64;                   // registers: invocations per workgroup
constexpr std::uint32_t kRegRows = 16, kRegOutputs = 16;  // loads are the cost on lavapipe: see rotate_reg.comp
constexpr std::uint32_t kTiledLocal = 16;                 // tiled: 16x16 invocations
constexpr std::uint32_t kTiledRows = 4, kTiledOutputs = 4;
constexpr std::uint32_t kMaxTile = 32;                    // per dimension: TR*TO accumulators per invocation

[[noreturn]] void fail(const std::string& what) { throw Error("rotate: " + what); }

// Rows per binding chunk of X/Y: within maxStorageBufferRange, chunk offsets
// on minStorageBufferOffsetAlignment and on a multiple of `blocks` rows (so
// row t of a chunk keeps block t % blocks), and at most the caller's cap.
std::uint64_t chunk_rows(const Device& dev, std::uint32_t d, std::uint32_t blocks, std::uint64_t cap) {
  const std::uint64_t row_bytes = std::uint64_t(d) * 4;
  const std::uint64_t align = std::max<std::uint64_t>(dev.info().min_storage_buffer_offset_alignment, 1);
  const std::uint64_t granule = std::lcm(align / std::gcd(align, row_bytes), std::uint64_t(blocks));
  std::uint64_t rows = rows_per_binding(dev, row_bytes, granule);
  if (cap) rows = std::min(rows, std::max(cap / granule, std::uint64_t(1)) * granule);
  return rows;
}

}  // namespace

RotateVariant rotate_default_variant(const Device& device) {
  return device.info().type == VK_PHYSICAL_DEVICE_TYPE_CPU ? RotateVariant::registers : RotateVariant::tiled;
}

std::uint64_t rotation_bytes(std::uint32_t d, bool fp16, std::uint32_t blocks) {
  return std::uint64_t(blocks) * (fp16 ? std::uint64_t(d) * ((d + 1) / 2) * 4 : std::uint64_t(d) * d * 4);
}

std::vector<std::uint32_t> pack_rotation_fp16(std::span<const float> r, std::uint32_t d) {
  const std::uint64_t dd = std::uint64_t(d) * d;
  if (d == 0 || r.empty() || r.size() % dd) fail("pack_rotation_fp16: matrix is not (blocks, d, d)");
  const std::uint64_t rows = r.size() / d;  // blocks * d
  const std::uint32_t words = (d + 1) / 2;
  std::vector<std::uint32_t> out(rows * words);  // (blocks * d, ceil(d/2))
  for (std::uint64_t i = 0; i < rows; ++i)
    for (std::uint32_t j = 0; j < d; ++j)
      out[i * words + j / 2] |= std::uint32_t(to_half(r[i * d + j])) << (16 * (j & 1));
  return out;
}

std::vector<float> unpack_rotation_fp16(std::span<const std::uint32_t> words, std::uint32_t d) {
  const std::uint32_t w = (d + 1) / 2;
  const std::uint64_t per_block = std::uint64_t(d) * w;
  if (d == 0 || words.empty() || words.size() % per_block)
    fail("unpack_rotation_fp16: not (blocks, d, ceil(d/2)) words");
  const std::uint64_t rows = words.size() / w;  // blocks * d
  std::vector<float> out(rows * d);  // (blocks * d, d)
  for (std::uint64_t i = 0; i < rows; ++i)
    for (std::uint32_t j = 0; j < d; ++j)
      out[i * d + j] = from_half(half_bits(words[i * w + j / 2] >> (16 * (j & 1))));
  return out;
}

void rotate(Stream& s, const Buffer& x, const Buffer& r, Buffer& y, std::uint64_t rows, std::uint32_t d,
            const RotateOptions& o) {
  Device& dev = s.device();
  if (d == 0 || d > kRotateMaxD)
    fail("d = " + std::to_string(d) + " is outside [1, " + std::to_string(kRotateMaxD) + "]");
  if (!x || !r || !y) fail("a buffer is empty");
  if (x.handle() == y.handle() || r.handle() == y.handle()) fail("y must not alias x or r");
  const std::uint64_t row_bytes = std::uint64_t(d) * 4;
  if (rows > x.size() / row_bytes) fail(std::to_string(rows) + " rows of d = " + std::to_string(d) + " exceed x");
  if (rows > y.size() / row_bytes) fail(std::to_string(rows) + " rows of d = " + std::to_string(d) + " exceed y");
  if (o.blocks == 0) fail("blocks must be >= 1");
  const std::uint64_t rbytes = rotation_bytes(d, o.fp16_r, o.blocks);
  if (r.size() < rbytes)
    fail("r holds " + std::to_string(r.size()) + " bytes, " + std::to_string(o.blocks) + " " +
         (o.fp16_r ? "fp16" : "fp32") + " R of d = " + std::to_string(d) + " need " + std::to_string(rbytes));
  if (rbytes > dev.info().max_storage_buffer_range)
    fail(std::to_string(o.blocks) + " R of d = " + std::to_string(d) + " do not fit in one storage-buffer binding");
  if (o.tile_rows > kMaxTile || o.tile_outputs > kMaxTile)
    fail("tile above " + std::to_string(kMaxTile) + " per dimension");
  if (rows % o.blocks)
    fail(std::to_string(rows) + " rows are not a multiple of blocks = " + std::to_string(o.blocks));
  if (rows == 0) return;

  const RotateVariant v = o.variant == RotateVariant::automatic ? rotate_default_variant(dev) : o.variant;
  const bool reg = v == RotateVariant::registers;
  std::uint32_t tr = o.tile_rows ? o.tile_rows : reg ? kRegRows : kTiledRows;
  const std::uint32_t to = o.tile_outputs ? o.tile_outputs : reg ? kRegOutputs : kTiledOutputs;
  // Small batches: fewer rows per workgroup, so few rows do not pay for a
  // whole tile of clamped duplicates (decode rotates one or a few rows).
  // A workgroup covers rows of one block only, so per-block rows count.
  const std::uint64_t block_rows = rows / o.blocks;
  std::uint32_t local = reg ? kRegLocal : kTiledLocal;
  if (reg) {
    const std::uint32_t lanes = std::clamp<std::uint32_t>(dev.info().subgroup_size, 1, kRegLocal);
    while (local > lanes && std::uint64_t(local / 2) * tr >= block_rows) local /= 2;
    if (!o.tile_rows)
      while (tr > 1 && std::uint64_t(local) * (tr / 2) >= block_rows) tr /= 2;
  } else if (!o.tile_rows) {
    while (tr > 1 && std::uint64_t(kTiledLocal) * (tr / 2) >= block_rows) tr /= 2;
  }
  const std::string shader = std::string(reg ? "rotate_reg" : "rotate_tiled") + (o.fp16_r ? "_f16" : "_f32");
  const Kernel& k = dev.kernel({.shader = shader,
                                .local_size = {local, reg ? 1 : kTiledLocal, 1},
                                .constants = {d, tr, to}});

  for_each_chunk(rows, chunk_rows(dev, d, o.blocks, o.max_chunk_rows), [&](std::uint64_t first, std::uint64_t count) {
    const gpu::RotateParams p{std::uint32_t(count), o.blocks, 0, 0};
    const std::uint64_t per_block = count / o.blocks;  // rows of each block in this chunk
    const Binding bx{x, first * row_bytes, count * row_bytes}, br{r, 0, rbytes},
        by{y, first * row_bytes, count * row_bytes};
    if (reg) {
      // x: one workgroup per output tile (fastest varying); y: row tiles; z: the rotation block.
      s.dispatch(k, {bx, br, by}, p,
                 Threads{div_up(d, to) * local, div_up(per_block, std::uint64_t(local) * tr), o.blocks});
    } else {
      s.dispatch(k, {bx, br, by}, p,
                 Threads{div_up(d, kTiledLocal * to) * kTiledLocal, div_up(per_block, kTiledLocal * tr) * kTiledLocal,
                         o.blocks});
    }
  });
}

void pad_rows(Stream& s, const Buffer& x, std::uint64_t x_row0, Buffer& y, std::uint32_t rows, std::uint32_t din,
              std::uint32_t dout) {
  Device& dev = s.device();
  if (din == 0 || dout < din) fail("pad_rows: need 1 <= din <= dout (din " + std::to_string(din) + ", dout " +
                                   std::to_string(dout) + ")");
  if (!x || !y) fail("pad_rows: a buffer is empty");
  if (x.handle() == y.handle()) fail("pad_rows: y must not alias x");
  const std::uint64_t in_row = std::uint64_t(din) * 4, out_row = std::uint64_t(dout) * 4;
  if (x_row0 > x.size() / in_row || rows > x.size() / in_row - x_row0)
    fail("pad_rows: rows [" + std::to_string(x_row0) + ", " + std::to_string(x_row0 + rows) + ") of " +
         std::to_string(din) + " floats exceed x");
  if (rows > y.size() / out_row) fail("pad_rows: " + std::to_string(rows) + " rows of " + std::to_string(dout) +
                                       " floats exceed y");
  if (rows == 0) return;
  // Bind x from the aligned offset at or below its first row.
  const std::uint64_t align = std::max<std::uint64_t>(dev.info().min_storage_buffer_offset_alignment, 4);
  const std::uint64_t start = x_row0 * in_row, base = start / align * align;
  const std::uint64_t xbytes = start - base + rows * in_row, ybytes = rows * out_row;
  if (xbytes > dev.info().max_storage_buffer_range || ybytes > dev.info().max_storage_buffer_range)
    fail("pad_rows: " + std::to_string(rows) + " rows exceed maxStorageBufferRange");
  constexpr std::uint32_t kLocal = 64;
  const Kernel& k = dev.kernel({.shader = "rotate_pad",
                                .local_size = {kLocal, 1, 1},
                                .constants = {}});
  const gpu::RotatePadParams p{rows, din, dout, std::uint32_t((start - base) / 4)};
  s.dispatch(k, {Binding{x, base, xbytes}, Binding{y, 0, ybytes}}, p, Threads{dout, rows});
}

}  // namespace vkq::kernels
