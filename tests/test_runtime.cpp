// Runtime core: device selection, error mapping, binding checks, timestamps.
#include <cstdlib>

#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernel.hpp"
#include "vkquant/roofline.hpp"

namespace vkq::test {
namespace {

TEST(ErrorMapping, TypedErrorsPerResult) {
  EXPECT_THROW(throw_vulkan_error(VK_ERROR_OUT_OF_DEVICE_MEMORY, "vkAllocateMemory"), OutOfMemoryError);
  EXPECT_THROW(throw_vulkan_error(VK_ERROR_OUT_OF_HOST_MEMORY, "vkCreateBuffer"), OutOfMemoryError);
  EXPECT_THROW(throw_vulkan_error(VK_ERROR_DEVICE_LOST, "vkQueueSubmit"), DeviceLostError);
  EXPECT_THROW(throw_vulkan_error(VK_TIMEOUT, "vkWaitForFences"), TimeoutError);
  EXPECT_THROW(throw_vulkan_error(VK_ERROR_INITIALIZATION_FAILED, "vkCreateDevice"), VulkanError);
  EXPECT_NO_THROW(check(VK_SUCCESS, "x"));
  EXPECT_NO_THROW(check(VK_INCOMPLETE, "x"));
  try {
    check(VK_ERROR_DEVICE_LOST, "vkQueueSubmit");
    FAIL() << "no throw";
  } catch (const DeviceLostError& e) {
    EXPECT_STREQ(e.call(), "vkQueueSubmit");
    EXPECT_EQ(e.result(), VK_ERROR_DEVICE_LOST);
    EXPECT_NE(std::string(e.what()).find("vkQueueSubmit failed: VK_ERROR_DEVICE_LOST"), std::string::npos) << e.what();
  }
  // Device loss is not "out of memory", and both are vkq::Error.
  try {
    throw_vulkan_error(VK_ERROR_DEVICE_LOST, "x");
  } catch (const OutOfMemoryError&) {
    FAIL() << "device lost mapped to out of memory";
  } catch (const Error&) {
  }
}

TEST_F(VulkanTest, DefaultDevicePrefersDiscreteOverCpu) {
  const auto& devs = instance().devices();
  const auto& chosen = devs[instance().default_device()];
  EXPECT_TRUE(chosen.usable());
  auto rank = [](VkPhysicalDeviceType t) {
    switch (t) {
      case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
      case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
      case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
      case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
      default: return 0;
    }
  };
  for (const auto& d : devs) {
    if (!d.usable()) continue;
    EXPECT_LE(rank(d.type), rank(chosen.type)) << d.name << " outranks " << chosen.name;
  }
}

TEST_F(VulkanTest, DeviceByIndexAndOutOfRange) {
  const auto n = instance().devices().size();
  Device d0 = Device::create(instance(), 0);
  EXPECT_EQ(d0.info().index, 0u);
  EXPECT_THROW(Device::create(instance(), int(n)), NoDeviceError);
  EXPECT_THROW(Device::create(instance(), 1000), NoDeviceError);
}

TEST_F(VulkanTest, DeviceInfoIsSane) {
  const auto& i = dev().info();
  EXPECT_GE(i.api_version, VK_API_VERSION_1_2);
  EXPECT_GE(i.subgroup_size, 1u);
  EXPECT_GE(i.max_storage_buffer_range, 1u << 20);
  EXPECT_GE(i.max_workgroup_count[0], 65535u);
  EXPECT_FALSE(i.driver_name.empty());
  EXPECT_FALSE(i.type_name().empty());
  EXPECT_EQ(dev().binding_chunk_bytes() % std::max<std::uint64_t>(i.min_storage_buffer_offset_alignment, 1), 0u);
}

TEST_F(VulkanTest, BindingChecks) {
  Buffer a = Buffer::create(dev(), 1024), b = Buffer::create(dev(), 1024);
  Stream s = Stream::create(dev());
  const Kernel& k = dev().kernel({.shader = "roofline_copy", .constants = {1}});
  struct P {
    std::uint32_t n, base;
    float v;
    std::uint32_t pad;
  } p{4, 0, 0, 0};
  EXPECT_THROW(s.dispatch(k, {{a}}, p, {4}), Error);                   // wrong binding count
  EXPECT_THROW(s.dispatch(k, {{a}, {b, 0, 2048}}, p, {4}), Error);     // range past the end
  EXPECT_THROW(s.dispatch(k, {{a}, {b, 3, 16}}, p, {4}), Error);       // unaligned offset
  EXPECT_THROW(s.dispatch(k, {{a}, {b}}, &p, 8, {4}), Error);          // push size mismatch
  EXPECT_THROW(dev().kernel({.shader = "no_such_shader"}), Error);
  EXPECT_THROW(Buffer::create(dev(), 0), Error);
  EXPECT_THROW(a.upload(&p, sizeof p, 1020), Error);
  s.dispatch(k, {{a}, {b}}, p, {4});
  s.submit_and_wait();
}

TEST_F(VulkanTest, HugeAllocationIsOutOfMemory) {
  // Past maxMemoryAllocationSize / maxBufferSize: refused with a typed error
  // before Vulkan is asked (asking would be a validation error).
  EXPECT_THROW(Buffer::create(dev(), std::uint64_t(1) << 62), OutOfMemoryError);
}

TEST_F(VulkanTest, TimestampsAreMonotonic) {
  if (dev().info().timestamp_valid_bits == 0) GTEST_SKIP() << "no timestamps on this queue";
  TimestampPool pool = TimestampPool::create(dev(), 2);
  Buffer b = Buffer::create(dev(), 1 << 20);
  Stream s = Stream::create(dev());
  s.reset_queries(pool);
  s.timestamp(pool, 0);
  roofline::fill(s, b, (1 << 20) / 4, 1.f);
  s.timestamp(pool, 1);
  s.submit_and_wait();
  auto ns = pool.read_ns();
  EXPECT_GE(ns[1], ns[0]);
}

TEST_F(VulkanTest, StreamIsReusableAfterSubmit) {
  Buffer b = Buffer::create(dev(), 4096);
  Stream s = Stream::create(dev());
  for (int round = 0; round < 3; ++round) {
    roofline::fill(s, b, 1024, float(round));
    s.submit_and_wait();
    EXPECT_EQ(download<float>(b, 1)[0], float(round));
  }
  s.submit_and_wait();  // nothing recorded: a no-op
}


}  // namespace
}  // namespace vkq::test

namespace vkq::test {
namespace {
// The messenger must really count: provoke one error, see it, then clear it
// so this test's TearDown passes.
TEST_F(VulkanTest, ValidationLayerCountsErrors) {
  if (!instance().validation_enabled()) GTEST_SKIP() << "validation layer not enabled";
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = 64;
  bci.usage = 0;  // VUID-VkBufferCreateInfo-usage-requiredbitmask
  VkBuffer b = VK_NULL_HANDLE;
  if (dev().vk().vkCreateBuffer(dev().handle(), &bci, nullptr, &b) == VK_SUCCESS)
    dev().vk().vkDestroyBuffer(dev().handle(), b, nullptr);
  EXPECT_GE(instance().validation_errors(), 1u);
  instance().reset_validation_counts();
}
}  // namespace
}  // namespace vkq::test
