// Shared test fixture and the tolerance policy (STYLE §7).
//
// Every Vulkan test runs on one process-wide instance created with
// VK_LAYER_KHRONOS_validation required; a test fails if the layer reported any
// error while it ran. Select the device with VKQ_TEST_DEVICE (default: the
// instance's default choice). A missing device feature is a GTEST_SKIP.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/instance.hpp"
#include "vkquant/kernels/rope_freqs.hpp"
#include "vkquant/rope.hpp"
#include "vkquant/stream.hpp"

namespace vkq::test {

// The process-wide validated instance and device.
Instance& instance();
Device& device();
// The same device opened again with DeviceOptions::attention_group_heads = 1:
// the attention kernels' one-head-per-invocation layout (a GPU's) on any device.
Device& one_head_device();

class VulkanTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;  // fails the test on any validation error
  Device& dev() { return device(); }
};

// A RoPE frequency table for kernel tests: YaRN-scaled (frequencies that are
// not a geometric series, attention factor != 1) so the table path is
// exercised, not just plain theta^(-2i/hd); and its device copy.
struct TestRope {
  RopeTable host;
  kernels::DeviceRope dev;
  kernels::RopeFreqs freqs() const { return dev.freqs(); }
};
inline TestRope test_rope(Device& d, std::uint32_t hd, float theta = 10000.f) {
  RopeScaling s;
  s.type = RopeType::yarn;
  s.factor = 4.0;
  s.original_ctx = 256;
  TestRope r;
  r.host = rope_table(theta, hd, s, 0);
  r.dev = kernels::DeviceRope::create(d, r.host);
  return r;
}

// ---- tolerance policy ------------------------------------------------------
// Bits, counts and integer results: exact.
template <class T>
::testing::AssertionResult exact(std::span<const T> ref, std::span<const T> got);
// Elementwise |got - ref| <= atol + rtol * |ref|; names the first mismatches
// and the max error.
::testing::AssertionResult close(std::span<const float> ref, std::span<const float> got, double atol, double rtol);
// Normalised mean squared error sum((got-ref)^2) / sum(ref^2) <= max_nmse (GEMM-like outputs).
::testing::AssertionResult nmse(std::span<const float> ref, std::span<const float> got, double max_nmse);

// Fixed-seed test data.
std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float lo = -1.f, float hi = 1.f);

// Buffer helpers.
template <class T>
Buffer upload(Device& d, const std::vector<T>& host, Memory m = Memory::device) {
  Buffer b = Buffer::create(d, std::max<std::uint64_t>(host.size() * sizeof(T), 4), m);
  if (!host.empty()) b.upload(host.data(), host.size() * sizeof(T));
  return b;
}
template <class T>
std::vector<T> download(const Buffer& b, std::size_t count) {
  std::vector<T> out(count);
  if (count) b.download(out.data(), count * sizeof(T));
  return out;
}

// ---- implementation of the template --------------------------------------
template <class T>
::testing::AssertionResult exact(std::span<const T> ref, std::span<const T> got) {
  if (ref.size() != got.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != reference " << ref.size();
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (ref[i] == got[i]) continue;
    if (++bad <= 5) first += " [" + std::to_string(i) + "] " + std::to_string(got[i]) + " != " + std::to_string(ref[i]);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << ref.size() << " differ:" << first;
}

}  // namespace vkq::test
