#include "vk_test.hpp"

#include <cstdlib>
#include <memory>
#include <optional>

namespace vkq::test {

namespace {
struct Globals {
  Instance instance;
  std::optional<Device> device, one_head;
};

Globals& globals() {
  static std::unique_ptr<Globals> g = [] {
    InstanceOptions opts;
    opts.require_validation = std::getenv("VKQ_TEST_NO_VALIDATION") == nullptr;
    opts.validation = true;
    opts.sync_validation = std::getenv("VKQ_SYNC_VALIDATION") != nullptr;
    Instance inst = Instance::create(opts);
    int index = -1;
    if (const char* e = std::getenv("VKQ_TEST_DEVICE")) index = std::atoi(e);
    auto p = std::unique_ptr<Globals>(new Globals{std::move(inst), std::nullopt});
    p->device.emplace(Device::create(p->instance, index));
    return p;
  }();
  return *g;
}
}  // namespace

Instance& instance() { return globals().instance; }
Device& device() { return *globals().device; }
Device& one_head_device() {
  Globals& g = globals();
  if (!g.one_head) {
    int index = -1;
    if (const char* e = std::getenv("VKQ_TEST_DEVICE")) index = std::atoi(e);
    g.one_head.emplace(Device::create(g.instance, index, DeviceOptions{.attention_group_heads = 1}));
  }
  return *g.one_head;
}

void VulkanTest::SetUp() { instance().reset_validation_counts(); }

void VulkanTest::TearDown() {
  const auto errors = instance().validation_errors();
  EXPECT_EQ(errors, 0u) << "validation errors during the test; first: "
                        << (instance().validation_messages().empty() ? "" : instance().validation_messages()[0]);
}

::testing::AssertionResult close(std::span<const float> ref, std::span<const float> got, double atol, double rtol) {
  if (ref.size() != got.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != reference " << ref.size();
  std::size_t bad = 0;
  double max_err = 0;
  std::string first;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(double(got[i]) - double(ref[i]));
    const bool ok = err <= atol + rtol * std::fabs(double(ref[i]));  // false for NaN too
    if (!(err <= max_err)) max_err = err;
    if (ok) continue;
    if (++bad <= 5) first += " [" + std::to_string(i) + "] " + std::to_string(got[i]) + " vs " + std::to_string(ref[i]);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << ref.size() << " outside atol " << atol << " + rtol " << rtol
                                       << ", max error " << max_err << ":" << first;
}

::testing::AssertionResult nmse(std::span<const float> ref, std::span<const float> got, double max_nmse) {
  if (ref.size() != got.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != reference " << ref.size();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = double(got[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  const double e = den > 0 ? num / den : num;
  if (e <= max_nmse) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "NMSE " << e << " > " << max_nmse;
}

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace vkq::test
