// Learned-rotation GEMM Y = X Rᵀ vs the fp64 CPU reference: awkward d and row
// counts, fp32 and fp16 R, every variant forced, odd tiles, block-diagonal R,
// binding chunking (test-only cap and a real X/Y past maxStorageBufferRange),
// bad arguments.
#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>

#include "vk_test.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/rotate.hpp"
#include "vkquant/reference/rotate.hpp"

namespace vkq::test {
namespace {

using kernels::RotateOptions;
using kernels::RotateVariant;

constexpr std::uint32_t kPoison = 0x7fc00bad;  // a NaN no kernel writes
constexpr double kMaxNmse = 1e-10;             // fp32 accumulation vs fp64: ~1e-13 in practice

const char* variant_name(RotateVariant v) {
  return v == RotateVariant::registers ? "registers" : v == RotateVariant::tiled ? "tiled" : "auto";
}

// The R the kernel sees (fp16-rounded when stored as fp16) and its buffer.
struct Rotation {
  std::vector<float> r;  // (d, d)
  Buffer buf;
};

Rotation make_rotation(Device& dev, std::uint32_t d, bool fp16, std::uint32_t seed, std::uint32_t blocks = 1) {
  // Host matrices cached across tests: d = 4096 takes a while to generate and pack.
  struct Host {
    std::vector<float> r, r16;      // (blocks, d, d) as generated, and fp16-rounded
    std::vector<std::uint32_t> w16;  // (blocks, d, ceil(d/2)) packed fp16
  };
  static std::map<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>, Host> cache;
  Host& h = cache[{d, seed, blocks}];
  if (h.r.empty()) {
    const float scale = 1.f / std::sqrt(float(d));  // rows of norm ~0.6, like an orthogonal R
    h.r = random_floats(std::size_t(blocks) * d * d, seed, -scale, scale);
    h.w16 = kernels::pack_rotation_fp16(h.r, d);
    h.r16 = kernels::unpack_rotation_fp16(h.w16, d);
  }
  if (fp16) return {h.r16, upload(dev, h.w16)};
  return {h.r, upload(dev, h.r)};
}

// Runs the kernel on random X and checks every row against the reference and
// the poison past the end of Y.
void check_rotate(Device& dev, std::uint32_t d, std::uint64_t rows, const RotateOptions& o,
                  std::uint32_t min_dispatches = 1) {
  const Rotation rot = make_rotation(dev, d, o.fp16_r, 7 + d, o.blocks);
  const auto x = random_floats(rows * d, 11 + std::uint32_t(rows));
  Buffer bx = upload(dev, x);
  Buffer by = Buffer::create(dev, rows * d * 4 + 64);
  by.fill(kPoison);
  Stream s = Stream::create(dev);
  kernels::rotate(s, bx, rot.buf, by, rows, d, o);
  EXPECT_GE(s.recorded_dispatches(), min_dispatches);
  s.submit_and_wait();

  std::vector<float> ref(rows * d);
  ref::rotate(x, rot.r, ref, d, 0, rows, o.blocks);
  const auto got = download<float>(by, rows * d);
  EXPECT_TRUE(nmse(ref, got, kMaxNmse)) << "d=" << d << " rows=" << rows << " blocks=" << o.blocks << " "
                                        << variant_name(o.variant);
  std::uint32_t tail[16];
  by.download(tail, sizeof tail, rows * d * 4);
  for (auto t : tail) EXPECT_EQ(t, kPoison) << "wrote past the last row";
}

// ---- sizes x storage x variant ------------------------------------------------
using Param = std::tuple<std::uint32_t, std::uint64_t, bool, RotateVariant>;  // d, rows, fp16 R, variant

class Rotate : public VulkanTest, public ::testing::WithParamInterface<Param> {};

TEST_P(Rotate, MatchesReference) {
  const auto [d, rows, fp16, variant] = GetParam();
  check_rotate(dev(), d, rows, {.fp16_r = fp16, .variant = variant});
}

std::string param_name(const ::testing::TestParamInfo<Param>& p) {
  const auto [d, rows, fp16, variant] = p.param;
  return "d" + std::to_string(d) + "_rows" + std::to_string(rows) + (fp16 ? "_f16" : "_f32") + "_" +
         variant_name(variant);
}

const auto kVariants = ::testing::Values(RotateVariant::registers, RotateVariant::tiled);

INSTANTIATE_TEST_SUITE_P(Sizes, Rotate,
                         ::testing::Combine(::testing::Values(32u, 100u, 128u, 129u),
                                            ::testing::Values(1u, 13u, 127u, 4097u), ::testing::Bool(), kVariants),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Tiny, Rotate,
                         ::testing::Combine(::testing::Values(1u, 5u), ::testing::Values(13u), ::testing::Bool(),
                                            kVariants),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Large, Rotate,
                         ::testing::Combine(::testing::Values(4096u), ::testing::Values(3u), ::testing::Bool(),
                                            kVariants),
                         param_name);

class RotateFixture : public VulkanTest {};

// ---- block-diagonal R ---------------------------------------------------------------
using BlockParam = std::tuple<std::uint32_t, std::uint32_t, std::uint64_t, bool, RotateVariant>;  // d, blocks, n, fp16, variant

class RotateBlocks : public VulkanTest, public ::testing::WithParamInterface<BlockParam> {};

// x (n, blocks*d) as (n*blocks, d) rows, row t by block t % blocks.
TEST_P(RotateBlocks, MatchesReference) {
  const auto [d, blocks, n, fp16, variant] = GetParam();
  check_rotate(dev(), d, n * blocks, {.fp16_r = fp16, .variant = variant, .blocks = blocks});
}

std::string block_param_name(const ::testing::TestParamInfo<BlockParam>& p) {
  const auto [d, blocks, n, fp16, variant] = p.param;
  return "d" + std::to_string(d) + "_blocks" + std::to_string(blocks) + "_n" + std::to_string(n) +
         (fp16 ? "_f16" : "_f32") + "_" + variant_name(variant);
}

INSTANTIATE_TEST_SUITE_P(Sizes, RotateBlocks,
                         ::testing::Combine(::testing::Values(64u, 30u), ::testing::Values(1u, 3u, 8u),
                                            ::testing::Values(1u, 13u, 127u), ::testing::Bool(), kVariants),
                         block_param_name);

// A block's matrix really is applied to its own columns only: block-diagonal
// R against one dense (blocks*d)² matrix holding the blocks on its diagonal.
TEST_F(RotateFixture, BlocksEqualBlockDiagonalDense) {
  const std::uint32_t d = 16, blocks = 3, n = 13, wide = d * blocks;
  const Rotation rot = make_rotation(dev(), d, false, 5, blocks);
  std::vector<float> dense(std::size_t(wide) * wide, 0.f);  // (wide, wide)
  for (std::uint32_t b = 0; b < blocks; ++b)
    for (std::uint32_t i = 0; i < d; ++i)
      for (std::uint32_t j = 0; j < d; ++j)
        dense[std::size_t(b * d + i) * wide + b * d + j] = rot.r[(std::size_t(b) * d + i) * d + j];
  const auto x = random_floats(std::size_t(n) * wide, 99);
  std::vector<float> want(x.size());
  ref::rotate(x, dense, want, wide);
  Buffer bx = upload(dev(), x);
  Buffer by = Buffer::create(dev(), x.size() * 4);
  Stream s = Stream::create(dev());
  kernels::rotate(s, bx, rot.buf, by, std::uint64_t(n) * blocks, d, {.blocks = blocks});
  s.submit_and_wait();
  EXPECT_TRUE(nmse(want, download<float>(by, x.size()), kMaxNmse));
}

// Chunks of a multiple of `blocks` rows keep every row on its block.
TEST_F(RotateFixture, BlocksChunked) {
  for (auto variant : {RotateVariant::registers, RotateVariant::tiled})
    for (std::uint32_t blocks : {3u, 8u}) {
      const RotateOptions o{.fp16_r = blocks == 3, .variant = variant, .max_chunk_rows = 100, .blocks = blocks};
      check_rotate(dev(), 64, std::uint64_t(513) * blocks, o, 5);
      check_rotate(dev(), 30, std::uint64_t(1001) * blocks, o, 5);
    }
}

// ---- tiles, default variant, chunking -------------------------------------------

TEST_F(RotateFixture, OddTiles) {
  for (std::uint32_t d : {100u, 129u})
    for (bool fp16 : {false, true}) {
      const auto reg = RotateVariant::registers, tiled = RotateVariant::tiled;
      check_rotate(dev(), d, 127, {.fp16_r = fp16, .variant = reg, .tile_rows = 3, .tile_outputs = 5});
      check_rotate(dev(), d, 127, {.fp16_r = fp16, .variant = reg, .tile_rows = 2, .tile_outputs = 8});
      check_rotate(dev(), d, 127, {.fp16_r = fp16, .variant = tiled, .tile_rows = 2, .tile_outputs = 3});
    }
}

TEST_F(RotateFixture, AutomaticVariant) {
  const auto v = kernels::rotate_default_variant(dev());
  EXPECT_EQ(v, dev().info().type == VK_PHYSICAL_DEVICE_TYPE_CPU ? RotateVariant::registers : RotateVariant::tiled);
  check_rotate(dev(), 128, 13, {});
}

// A test-only row cap splits X/Y into many binding chunks (offsets stay aligned).
TEST_F(RotateFixture, ChunkedRowsCapped) {
  for (auto variant : {RotateVariant::registers, RotateVariant::tiled})
    for (std::uint32_t d : {128u, 129u}) {
      const RotateOptions o{.fp16_r = d == 129, .variant = variant, .max_chunk_rows = 500};
      check_rotate(dev(), d, 4097, o, 5);
    }
}

// X and Y larger than maxStorageBufferRange: bound in real chunks. Checks rows
// around every chunk boundary and a sample elsewhere.
TEST_F(RotateFixture, ChunkedPastMaxStorageBufferRange) {
  const std::uint32_t d = 32;
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint64_t rows = range / (d * 4) + 4097;
  if (rows * d * 4 > (std::uint64_t(1) << 30)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed in a test";
  const Rotation rot = make_rotation(dev(), d, false, 3);
  std::vector<float> x(rows * d);
  for (std::uint64_t i = 0; i < x.size(); ++i)  // cheap values in [-1, 1)
    x[i] = float(std::int32_t(std::uint32_t(i) * 2654435761u) >> 21) / 1024.f;
  Buffer bx = upload(dev(), x);
  Buffer by = Buffer::create(dev(), rows * d * 4);
  by.fill(kPoison);
  Stream s = Stream::create(dev());
  kernels::rotate(s, bx, rot.buf, by, rows, d);
  EXPECT_GE(s.recorded_dispatches(), 2u) << "expected X/Y to be split across bindings";
  s.submit_and_wait();
  const auto got = download<float>(by, rows * d);
  const std::uint64_t chunk = dev().binding_chunk_bytes() / (d * 4);
  std::vector<float> ref_rows, got_rows, out(d);
  std::uint64_t checked = 0;
  for (std::uint64_t t = 0; t < rows; ++t) {
    const bool sampled = t % 97 == 0 || t + 64 >= rows || (t + 64) % chunk < 128;  // and around chunk starts
    if (!sampled) continue;
    ++checked;
    ref::rotate(std::span(x).subspan(t * d, d), rot.r, out, d);
    ref_rows.insert(ref_rows.end(), out.begin(), out.end());
    got_rows.insert(got_rows.end(), got.begin() + std::ptrdiff_t(t * d), got.begin() + std::ptrdiff_t((t + 1) * d));
  }
  EXPECT_GT(checked, rows / 97 + 128);
  EXPECT_TRUE(nmse(ref_rows, got_rows, kMaxNmse));
  std::uint64_t poisoned = 0;  // every row was written
  for (float v : got) poisoned += std::bit_cast<std::uint32_t>(v) == kPoison;
  EXPECT_EQ(poisoned, 0u);
}

// ---- zero-padding row copy --------------------------------------------------------------
// Rows from an unaligned first row, padded (and din == dout, a plain copy).
TEST_F(RotateFixture, PadRows) {
  for (auto [din, dout, row0, rows] : {std::tuple{688u, 1024u, 3u, 13u}, std::tuple{5u, 64u, 1u, 100u},
                                       std::tuple{256u, 256u, 7u, 1u}}) {
    const std::uint32_t total = row0 + rows + 2;
    const auto x = random_floats(std::size_t(total) * din, din + rows);
    Buffer bx = upload(dev(), x);
    Buffer by = Buffer::create(dev(), std::uint64_t(rows) * dout * 4 + 64);
    by.fill(kPoison);
    Stream s = Stream::create(dev());
    kernels::pad_rows(s, bx, row0, by, rows, din, dout);
    s.submit_and_wait();
    std::vector<float> want(std::size_t(rows) * dout, 0.f);  // (rows, dout)
    for (std::uint32_t t = 0; t < rows; ++t)
      for (std::uint32_t j = 0; j < din; ++j) want[std::size_t(t) * dout + j] = x[std::size_t(row0 + t) * din + j];
    EXPECT_TRUE(exact<float>(want, download<float>(by, want.size()))) << din << " -> " << dout;
    std::uint32_t tail[16];
    by.download(tail, sizeof tail, std::uint64_t(rows) * dout * 4);
    for (auto t : tail) EXPECT_EQ(t, kPoison) << "wrote past the last row";
  }
  Buffer x = Buffer::create(dev(), 10 * 32 * 4), y = Buffer::create(dev(), 10 * 64 * 4);
  Stream s = Stream::create(dev());
  EXPECT_THROW(kernels::pad_rows(s, x, 0, y, 10, 64, 32), Error);  // dout < din
  EXPECT_THROW(kernels::pad_rows(s, x, 1, y, 10, 32, 64), Error);  // rows past x
  EXPECT_THROW(kernels::pad_rows(s, x, 0, y, 11, 32, 64), Error);  // rows past x and y
  EXPECT_THROW(kernels::pad_rows(s, x, 0, x, 1, 32, 32), Error);   // aliasing
}

// ---- fp16 layout and arguments ----------------------------------------------------
TEST(RotatePack, Fp16Layout) {
  const std::uint32_t d = 3;
  const std::vector<float> r = {1.f, -2.f, 0.5f, 3.f, 4.f, 5.f, 1e-3f, 65504.f, -0.25f};
  const auto w = kernels::pack_rotation_fp16(r, d);
  ASSERT_EQ(w.size(), 6u);  // (3, 2) words
  EXPECT_EQ(w[0], std::uint32_t(to_half(1.f)) | std::uint32_t(to_half(-2.f)) << 16);
  EXPECT_EQ(w[1], std::uint32_t(to_half(0.5f)));  // padding half is zero
  EXPECT_EQ(w[2], std::uint32_t(to_half(3.f)) | std::uint32_t(to_half(4.f)) << 16);
  const auto back = kernels::unpack_rotation_fp16(w, d);
  const auto rounded = round_to_half(r);
  EXPECT_TRUE(exact<float>(rounded, back));
  EXPECT_EQ(kernels::rotation_bytes(d, true), 24u);
  EXPECT_EQ(kernels::rotation_bytes(d, false), 36u);
  EXPECT_THROW(kernels::pack_rotation_fp16(r, 2), Error);
  EXPECT_THROW(kernels::unpack_rotation_fp16(w, 4), Error);
  // Blocks pack one after another.
  std::vector<float> two(r);
  two.insert(two.end(), r.begin(), r.end());
  const auto w2 = kernels::pack_rotation_fp16(two, d);
  ASSERT_EQ(w2.size(), 12u);
  EXPECT_TRUE(exact<std::uint32_t>(std::span(w2).subspan(6), w));
  EXPECT_EQ(kernels::rotation_bytes(d, false, 2), 72u);
}

TEST_F(RotateFixture, RejectsBadArguments) {
  const std::uint32_t d = 32;
  Buffer x = Buffer::create(dev(), 10 * d * 4), y = Buffer::create(dev(), 10 * d * 4);
  Buffer r = Buffer::create(dev(), d * d * 4), rh = Buffer::create(dev(), d * d * 2);
  Stream s = Stream::create(dev());
  EXPECT_THROW(kernels::rotate(s, x, r, y, 10, 0), Error);
  EXPECT_THROW(kernels::rotate(s, x, r, y, 1, kernels::kRotateMaxD + 1), Error);
  EXPECT_THROW(kernels::rotate(s, x, r, y, 11, d), Error);        // rows past x and y
  EXPECT_THROW(kernels::rotate(s, x, r, y, 5, 2 * d), Error);     // R too small for d
  EXPECT_THROW(kernels::rotate(s, x, rh, y, 10, d), Error);       // fp16-sized R read as fp32
  EXPECT_THROW(kernels::rotate(s, x, r, x, 10, d), Error);        // y aliases x
  EXPECT_THROW(kernels::rotate(s, x, r, r, 1, d), Error);         // y aliases r
  EXPECT_THROW(kernels::rotate(s, x, r, y, 10, d, {.tile_rows = 1000}), Error);
  Buffer small = Buffer::create(dev(), 9 * d * 4);
  EXPECT_THROW(kernels::rotate(s, x, r, small, 10, d), Error);    // rows past y only
  EXPECT_THROW(kernels::rotate(s, small, r, y, 10, d), Error);    // rows past x only
  EXPECT_THROW(kernels::rotate(s, x, r, y, 10, d, {.blocks = 0}), Error);
  EXPECT_THROW(kernels::rotate(s, x, r, y, 10, d, {.blocks = 2}), Error);  // R holds one block
  Buffer r3 = Buffer::create(dev(), 3 * d * d * 4);
  EXPECT_THROW(kernels::rotate(s, x, r3, y, 10, d, {.blocks = 3}), Error);  // 10 rows, 3 blocks
  EXPECT_NO_THROW(kernels::rotate(s, x, rh, y, 10, d, {.fp16_r = true}));
  EXPECT_NO_THROW(kernels::rotate(s, x, r, y, 0, d));              // empty batch: nothing recorded
  EXPECT_EQ(s.recorded_dispatches(), 1u);
  s.submit_and_wait();
}

}  // namespace
}  // namespace vkq::test
