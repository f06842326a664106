// Roofline kernels vs the CPU on awkward sizes, a buffer past
// maxStorageBufferRange (binding chunking) and > 65535 workgroups (dispatch
// chunking).
#include <cstring>

#include "vk_test.hpp"
#include "vkquant/roofline.hpp"

namespace vkq::test {
namespace {

constexpr std::uint32_t kPoison = 0x7fc00bad;  // a NaN no kernel writes

class Roofline : public VulkanTest, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(Roofline, Copy) {
  const std::uint64_t n = GetParam();
  auto host = random_floats(n, 1);
  Buffer src = upload(dev(), host);
  Buffer dst = Buffer::create(dev(), n * 4 + 64);
  dst.fill(kPoison);
  Stream s = Stream::create(dev());
  roofline::copy(s, src, dst, n);
  s.submit_and_wait();
  auto got = download<float>(dst, n);
  EXPECT_EQ(std::memcmp(got.data(), host.data(), n * 4), 0) << "copy of " << n << " floats differs";
  std::uint32_t tail[16];
  dst.download(tail, sizeof tail, n * 4);
  for (auto t : tail) EXPECT_EQ(t, kPoison) << "copy wrote past n";
}

TEST_P(Roofline, Fill) {
  const std::uint64_t n = GetParam();
  Buffer dst = Buffer::create(dev(), n * 4 + 64);
  dst.fill(kPoison);
  Stream s = Stream::create(dev());
  roofline::fill(s, dst, n, 2.5f);
  s.submit_and_wait();
  auto got = download<float>(dst, n);
  std::vector<float> ref(n, 2.5f);
  EXPECT_TRUE(exact<float>(ref, got));
  std::uint32_t tail[16];
  dst.download(tail, sizeof tail, n * 4);
  for (auto t : tail) EXPECT_EQ(t, kPoison) << "fill wrote past n";
}

TEST_P(Roofline, ReadReduce) {
  const std::uint64_t n = GetParam();
  auto host = random_floats(n, 2, 0.f, 1.f);
  Buffer src = upload(dev(), host);
  const std::uint64_t np = roofline::read_partial_count(n);
  Buffer partials = Buffer::create(dev(), np * 4);
  partials.fill(kPoison);
  Stream s = Stream::create(dev());
  roofline::read(s, src, n, partials);
  s.submit_and_wait();
  auto got = download<float>(partials, np);
  double sum = 0, ref = 0;
  for (float p : got) sum += p;
  for (float x : host) ref += x;
  // fp32 partial sums of <= 1024 non-negative terms: relative error well below 1e-5.
  EXPECT_NEAR(sum, ref, 1e-5 * ref + 1e-6) << "n=" << n;
}

INSTANTIATE_TEST_SUITE_P(Sizes, Roofline, ::testing::Values(1, 13, 127, 1024, 65537),
                         [](const auto& p) { return "n" + std::to_string(p.param); });

// One buffer larger than maxStorageBufferRange: the wrappers must bind it in
// chunks, and every element must still be copied exactly once.
TEST_F(VulkanTest, CopyPastMaxStorageBufferRange) {
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint64_t n = std::min<std::uint64_t>(range / 4 + range / 8 + 13, (std::uint64_t(1) << 30) / 4);
  if (n * 4 <= range) GTEST_SKIP() << "maxStorageBufferRange too large to exceed in a test";
  std::vector<float> host(n);
  for (std::uint64_t i = 0; i < n; ++i) host[i] = float(i % 1000003);
  Buffer src = upload(dev(), host);
  Buffer dst = Buffer::create(dev(), n * 4);
  dst.fill(kPoison);
  Stream s = Stream::create(dev());
  roofline::copy(s, src, dst, n);
  EXPECT_GE(s.recorded_dispatches(), 2u) << "expected the copy to be split across bindings";
  s.submit_and_wait();
  auto got = download<float>(dst, n);
  EXPECT_EQ(std::memcmp(got.data(), host.data(), n * 4), 0);

  const std::uint64_t np = roofline::read_partial_count(n);
  Buffer partials = Buffer::create(dev(), np * 4);
  roofline::read(s, src, n, partials);
  s.submit_and_wait();
  double sum = 0, ref = 0;
  for (float p : download<float>(partials, np)) sum += p;
  for (float x : host) ref += x;
  EXPECT_NEAR(sum, ref, 1e-6 * ref);
}

// More than 65535 workgroups in x: the dispatch verb must split the groups
// (vkCmdDispatchBase) and cover every element.
TEST_F(VulkanTest, DispatchPastMaxWorkgroupCount) {
  const std::uint64_t max_groups = dev().info().max_workgroup_count[0];
  const roofline::Tuning t{.local = 32, .items = 1};
  const std::uint64_t n = (max_groups + 1000) * t.local * 4 + 7;  // 4 floats (one vec4) per invocation
  if (n * 4 > dev().binding_chunk_bytes()) GTEST_SKIP() << "maxComputeWorkGroupCount too large to exceed in a test";
  Buffer dst = Buffer::create(dev(), n * 4);
  dst.fill(kPoison);
  Stream s = Stream::create(dev());
  roofline::fill(s, dst, n, -1.f, t);
  EXPECT_EQ(s.recorded_dispatches(), 2u);
  s.submit_and_wait();
  auto got = download<float>(dst, n);
  std::uint64_t wrong = 0;
  for (float x : got) wrong += x != -1.f;
  EXPECT_EQ(wrong, 0u);
}

}  // namespace
}  // namespace vkq::test
