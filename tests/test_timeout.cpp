// Fence timeouts against work that is really in flight (the spin kernel keeps
// the queue busy for as long as asked), not an injected VK_TIMEOUT: the error
// must surface as TimeoutError while nothing the late work uses is freed under
// it. The validation layer reports a buffer, pipeline or descriptor set
// destroyed while a submitted command buffer still uses it (and ASan the heap
// damage that follows), so these tests fail if the unwinding frees too early.
// Also: the spin kernel against its CPU twin, and VKQ_FENCE_TIMEOUT_MS parsing.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/spin.hpp"

namespace vkq::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- the spin kernel ----------------------------------------------------------

class Spin : public VulkanTest, public ::testing::WithParamInterface<std::uint32_t> {};

TEST_P(Spin, MatchesReference) {
  // n: one output, a workgroup's worth minus one, several groups plus one;
  // iters up to the cap (16 * 4096 steps: past llvmpipe's 65535-trip limit
  // had they been trips).
  const std::uint32_t n = GetParam(), iters = n < 100 ? spin::kMaxIters : 37, seed = 0x9e3779b9u;
  Buffer out = Buffer::create(dev(), std::uint64_t(n) * 4 + 64);
  out.fill(0xdeadbeefu);
  Stream s = Stream::create(dev());
  spin::record(s, out, n, iters, seed);
  s.submit_and_wait();
  const auto got = download<std::uint32_t>(out, n + 16);
  const auto ref = spin::reference(n, iters, seed);
  EXPECT_TRUE(exact<std::uint32_t>(ref, std::span(got).first(n)));
  for (std::uint32_t i = n; i < n + 16; ++i) EXPECT_EQ(got[i], 0xdeadbeefu) << "written past n at " << i;
  EXPECT_THROW(spin::record(s, out, n, spin::kMaxIters + 1, seed), Error);
}
INSTANTIATE_TEST_SUITE_P(Sizes, Spin, ::testing::Values(1u, 63u, 4097u),
                         [](const auto& p) { return "n" + std::to_string(p.param); });

// ---- real in-flight work against a short fence timeout ----------------------------

constexpr std::uint32_t kIters = spin::kMaxIters;
constexpr std::uint32_t kChecked = 8;  // outputs checked against the CPU twin (it is slow)

// The first kChecked outputs of `out` match the CPU twin.
::testing::AssertionResult spun(const Buffer& out, std::uint32_t iters, std::uint32_t seed) {
  return exact<std::uint32_t>(spin::reference(kChecked, iters, seed), download<std::uint32_t>(out, kChecked));
}

// Spin outputs (invocations of kIters trips) that keep the queue busy for
// about `target`, measured on the suite's shared device (same driver, the
// default fence timeout).
std::uint32_t threads_for(std::chrono::milliseconds target) {
  constexpr std::uint32_t kMax = 1u << 24;
  Device& d = device();
  Buffer out = Buffer::create(d, std::uint64_t(kMax) * 4);
  Stream s = Stream::create(d);
  spin::record(s, out, kChecked, 1, 1);  // builds the pipeline: not part of the timing
  s.submit_and_wait();
  for (std::uint32_t n = 256;; n *= 4) {
    const auto t0 = Clock::now();
    spin::record(s, out, n, kIters, 1);
    s.submit_and_wait();
    const auto took = Clock::now() - t0;
    if (took >= 30ms || n >= kMax) {
      const double scale = std::chrono::duration<double>(target) / std::chrono::duration<double>(took);
      const auto threads = std::uint32_t(std::clamp(double(n) * scale, double(kChecked), double(kMax)));
      std::printf("spin: %u outputs took %.1f ms; %u for %lld ms\n", n,
                  std::chrono::duration<double, std::milli>(took).count(), threads, (long long)target.count());
      return threads;
    }
  }
}

// A private validated Instance + Device with the given timeouts, so an
// abandoned device never touches the suite's shared one.
struct Private {
  Instance inst;
  std::optional<Device> dev;
  Private(std::chrono::milliseconds fence, std::chrono::milliseconds drain) : inst(make_instance()) {
    dev.emplace(Device::create(inst, -1, DeviceOptions{.fence_timeout = fence, .drain_timeout = drain}));
  }
  static Instance make_instance() {
    InstanceOptions io;
    io.validation = true;
    io.require_validation = std::getenv("VKQ_TEST_NO_VALIDATION") == nullptr;
    io.sync_validation = std::getenv("VKQ_SYNC_VALIDATION") != nullptr;
    return Instance::create(io);
  }
  std::string first_validation_error() const {
    const auto m = inst.validation_messages();
    return m.empty() ? "" : m[0];
  }
};

// The late work finishes within the drain timeout: TimeoutError, then every
// buffer, stream and the device are freed as the error unwinds (after the
// work, so the validation layer sees nothing in use), and the work's result
// is complete. The stream that timed out records and runs again.
TEST(RealTimeout, LateWorkFinishesThenTimeoutError) {
  Private p(20ms, 30s);
  const std::uint32_t n = threads_for(400ms);
  {
    Buffer out = Buffer::create(*p.dev, std::uint64_t(n) * 4);
    Stream s = Stream::create(*p.dev);
    spin::record(s, out, n, kIters, 7);
    try {
      s.submit_and_wait();
      ADD_FAILURE() << "no TimeoutError: the spin of " << n << " outputs ended within 20 ms";
    } catch (const TimeoutError& e) {
      EXPECT_STREQ(e.call(), "vkWaitForFences");
      EXPECT_NE(std::string(e.what()).find("fence timeout of 20 ms"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("finished since"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(p.dev->abandoned());
    EXPECT_TRUE(spun(out, kIters, 7));
    spin::record(s, out, kChecked, 10, 3);  // the same stream, reused
    s.submit_and_wait();
    EXPECT_TRUE(spun(out, 10, 3));
  }
  // The unwinding case of a model pass: the buffers die with the exception.
  try {
    Buffer out = Buffer::create(*p.dev, std::uint64_t(n) * 4);
    Stream s = Stream::create(*p.dev);
    spin::record(s, out, n, kIters, 9);
    s.submit_and_wait();
    ADD_FAILURE() << "no TimeoutError";
  } catch (const TimeoutError&) {
  }
  EXPECT_EQ(p.inst.validation_errors(), 0u) << p.first_validation_error();
  p.dev.reset();
  EXPECT_EQ(p.inst.validation_errors(), 0u) << p.first_validation_error();
}

// The late work outlasts the drain timeout too: TimeoutError saying the
// device was abandoned; from then on its submits fail as lost, and destroying
// its buffers, streams, kernels, the device and the instance frees nothing the
// work still uses (they are kept until exit). A new Instance + Device works.
TEST(RealTimeout, WorkPastTheDrainAbandonsTheDevice) {
  {
    Private p(20ms, 50ms);
    const std::uint32_t n = threads_for(1500ms);
    const auto t0 = Clock::now();
    try {
      Buffer out = Buffer::create(*p.dev, std::uint64_t(n) * 4);
      Stream s = Stream::create(*p.dev);
      spin::record(s, out, n, kIters, 11);
      try {
        s.submit_and_wait();
        ADD_FAILURE() << "no TimeoutError";
      } catch (const TimeoutError& e) {
        EXPECT_NE(std::string(e.what()).find("device was abandoned"), std::string::npos) << e.what();
        EXPECT_LT(Clock::now() - t0, 1000ms) << "the waits were not bounded by 20 + 50 ms";
      }
      EXPECT_TRUE(p.dev->abandoned());
      spin::record(s, out, kChecked, 10, 3);
      EXPECT_THROW(s.submit_and_wait(), DeviceLostError);  // the stream's own late work
      Stream fresh = Stream::create(*p.dev);
      spin::record(fresh, out, kChecked, 10, 3);
      EXPECT_THROW(fresh.submit_and_wait(), DeviceLostError);
      throw std::runtime_error("unwind");  // buffers and streams die while the spin runs
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(p.inst.validation_errors(), 0u) << p.first_validation_error();
  }  // device and instance destroyed (kept) while the spin still runs
  Private again(20s, 10s);
  Buffer out = Buffer::create(*again.dev, kChecked * 4);
  Stream s = Stream::create(*again.dev);
  spin::record(s, out, kChecked, 100, 5);
  s.submit_and_wait();
  EXPECT_TRUE(spun(out, 100, 5));
  EXPECT_EQ(again.inst.validation_errors(), 0u) << again.first_validation_error();
}

// ---- VKQ_FENCE_TIMEOUT_MS -----------------------------------------------------------

struct EnvGuard {
  std::optional<std::string> old;
  EnvGuard() {
    if (const char* v = std::getenv("VKQ_FENCE_TIMEOUT_MS")) old = v;
  }
  ~EnvGuard() {
    if (old) setenv("VKQ_FENCE_TIMEOUT_MS", old->c_str(), 1);
    else unsetenv("VKQ_FENCE_TIMEOUT_MS");
  }
};

TEST(FenceTimeoutEnv, StrictWholeMilliseconds) {
  EnvGuard guard;
  unsetenv("VKQ_FENCE_TIMEOUT_MS");
  EXPECT_EQ(fence_timeout_from_env().count(), 0);
  for (auto [text, ms] : {std::pair{"1", 1}, {"250", 250}, {"86400000", 86400000}}) {
    setenv("VKQ_FENCE_TIMEOUT_MS", text, 1);
    EXPECT_EQ(fence_timeout_from_env().count(), ms) << text;
  }
  for (const char* bad : {"abc", "", "1e20", "-1", "0", "+5", " 5", "5 ", "5ms", "86400001", "18446744073709551616",
                          "1.5", "0x10"}) {
    setenv("VKQ_FENCE_TIMEOUT_MS", bad, 1);
    try {
      (void)fence_timeout_from_env();
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("VKQ_FENCE_TIMEOUT_MS=" + std::string(bad) + ": expected a whole number"),
                std::string::npos)
          << e.what();
    }
  }
}

// Device::create refuses a bad value instead of running with ~0 ms.
TEST(FenceTimeoutEnv, DeviceCreateRefusesBadValue) {
  EnvGuard guard;
  setenv("VKQ_FENCE_TIMEOUT_MS", "abc", 1);
  EXPECT_THROW(Device::create(instance()), UsageError);
  setenv("VKQ_FENCE_TIMEOUT_MS", "1234", 1);
  EXPECT_EQ(Device::create(instance()).fence_timeout().count(), 1234);
}

}  // namespace
}  // namespace vkq::test
