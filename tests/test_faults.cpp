// Vulkan faults injected through the runtime's own dispatch table
// (vkquant/faults.hpp): every allocation of a model's load and forward pass
// failing in turn, device loss at submit and at the fence wait, and a fence
// wait that times out. Each must surface as its typed error naming the call,
// free what was made (the validation layer reports objects still alive when a
// private Device is destroyed; ASan reports host leaks), and leave the runtime
// usable: the same Device after out-of-memory and a timeout, a new
// Instance + Device after device loss.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/faults.hpp"
#include "vkquant/model/vk_forward.hpp"
#include "vkquant/roofline.hpp"

namespace vkq::test {
namespace {

using kernels::WeightType;

// A tiny two-layer model, prefilled in three steps (max_batch 4, 10 tokens)
// so the attention scratch grows between steps.
struct Tiny {
  std::optional<ModelFile> file;
  std::vector<std::int32_t> ids;
  VkForwardOptions opts{.weights = WeightType::f32, .ctx = 32, .max_batch = 4};

  Tiny() {
    const auto dir = temp_dir("faults");
    write_tiny_model(dir, TinyModel{.vocab = 97, .dim = 32, .heads = 4, .kv_heads = 2, .head_dim = 8, .ffn = 24, .ctx = 128});
    file.emplace(ModelFile::open(dir));
    for (int i = 0; i < 10; ++i) ids.push_back((i * 31 + 7) % 97);
  }
  std::vector<float> run(Device& d) const {
    VkForward fwd(d, *file, opts);
    return fwd.forward(ids, /*all_logits=*/true);
  }
};

bool is_allocation(const std::string& call) {
  return call == "vkAllocateMemory" || call == "vkCreateBuffer" || call == "vkCreateDescriptorPool" ||
         call == "vkAllocateDescriptorSets" || call == "vkCreateCommandPool" || call == "vkAllocateCommandBuffers" ||
         call == "vkCreateFence";
}

class Faults : public VulkanTest {};

// ---- out of memory ---------------------------------------------------------------

TEST_F(Faults, BufferCreateOutOfMemoryNamesTheCall) {
  for (auto [call, name] : {std::pair{faults::create_buffer, "vkCreateBuffer"},
                            std::pair{faults::allocate_memory, "vkAllocateMemory"}}) {
    faults::Scope armed(call, 1, VK_ERROR_OUT_OF_DEVICE_MEMORY);
    try {
      Buffer::create(dev(), 4096);
      ADD_FAILURE() << name << ": no throw";
    } catch (const OutOfMemoryError& e) {
      EXPECT_STREQ(e.call(), name);
      EXPECT_EQ(e.result(), VK_ERROR_OUT_OF_DEVICE_MEMORY);
    }
    EXPECT_EQ(faults::fired(), 1u);
  }
  // Disarmed: allocations work again.
  Buffer b = Buffer::create(dev(), 4096);
  EXPECT_EQ(b.size(), 4096u);
}

// For N = 1, 2, ...: the N-th allocation while loading the model and running
// a prefill fails. Until N passes the last allocation the run must throw
// OutOfMemoryError for that call; the same device then gives the unfaulted
// logits. The device is private, so destroying it makes the validation layer
// report every Vulkan object an error path forgot to free.
TEST_F(Faults, OutOfMemorySweepOverModelForward) {
  const Tiny tiny;
  Device d = Device::create(instance());
  const std::vector<float> clean = tiny.run(d);  // also builds the kernels
  ASSERT_EQ(clean.size(), tiny.ids.size() * 97);

  std::uint64_t n = 1, allocations = 0;
  for (;; ++n) {
    ASSERT_LT(n, 5000u) << "the sweep does not end";
    const VkResult want = n % 2 ? VK_ERROR_OUT_OF_DEVICE_MEMORY : VK_ERROR_OUT_OF_HOST_MEMORY;
    std::vector<float> got;
    {
      faults::Scope armed(faults::allocations, n, want);
      try {
        got = tiny.run(d);
      } catch (const OutOfMemoryError& e) {
        ASSERT_EQ(faults::fired(), 1u) << "N=" << n << ": " << e.what();
        EXPECT_EQ(e.result(), want) << "N=" << n;
        EXPECT_STREQ(e.call(), faults::last_call()) << "N=" << n;
        EXPECT_TRUE(is_allocation(e.call())) << "N=" << n << ": " << e.what();
        continue;  // the next N (the Scope disarms first)
      } catch (const std::exception& e) {
        FAIL() << "N=" << n << ": " << faults::last_call() << " failed, then a wrong error: " << e.what();
      }
      allocations = faults::seen();
      ASSERT_EQ(faults::fired(), 0u) << "N=" << n << ": the fault fired, yet the run returned normally";
    }
    EXPECT_EQ(got, clean);
    break;
  }
  // Buffers (2 calls each) for ~30 tensors, the stream's pool, command buffer
  // and fence, descriptor sets for every dispatch.
  EXPECT_EQ(n, allocations + 1);
  EXPECT_GT(allocations, 100u);
  // The same device still runs a whole pass.
  EXPECT_EQ(tiny.run(d), clean);
  ::testing::Test::RecordProperty("allocations", int(allocations));
}

// A failed allocation mid-pass leaves the model's byte count and state as
// they were: the next pass runs and gives the unfaulted logits.
TEST_F(Faults, OutOfMemoryMidPassKeepsTheModelUsable) {
  const Tiny tiny;
  // 70 tokens in steps of 4: past 64 keys attention splits them and the
  // step grows its scratch buffer, the pass's only vkCreateBuffer.
  VkForwardOptions opts = tiny.opts;
  opts.ctx = 128;
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 70; ++i) ids.push_back((i * 13 + 3) % 97);
  VkForward fwd(dev(), *tiny.file, opts);
  const std::uint64_t bytes = fwd.device_bytes();
  {
    faults::Scope armed(faults::create_buffer, 1, VK_ERROR_OUT_OF_DEVICE_MEMORY);
    EXPECT_THROW(fwd.forward(ids, true), OutOfMemoryError);
    EXPECT_EQ(faults::fired(), 1u);
  }
  EXPECT_EQ(fwd.device_bytes(), bytes);
  fwd.reset();
  const auto got = fwd.forward(ids, true);
  EXPECT_GT(fwd.device_bytes(), bytes);  // now with the scratch
  VkForward fresh(dev(), *tiny.file, opts);
  EXPECT_EQ(got, fresh.forward(ids, true));
}

// Building a kernel: each of its four objects failing in turn leaves nothing
// behind, and the next request builds it.
TEST_F(Faults, OutOfMemoryWhileBuildingKernel) {
  Device d = Device::create(instance());
  Buffer buf = Buffer::create(d, 1000 * 4);
  std::uint64_t n = 1;
  for (;; ++n) {
    ASSERT_LT(n, 100u);
    faults::Scope armed(faults::create_pipeline, n, VK_ERROR_OUT_OF_HOST_MEMORY);
    Stream s = Stream::create(d);
    try {
      roofline::fill(s, buf, 1000, 2.5f);
    } catch (const OutOfMemoryError& e) {
      EXPECT_STREQ(e.call(), faults::last_call());
      continue;
    }
    ASSERT_EQ(faults::fired(), 0u);
    s.submit_and_wait();
    break;
  }
  EXPECT_EQ(n, 5u);  // shader module, set layout, pipeline layout, pipeline
  EXPECT_EQ(download<float>(buf, 1000), std::vector<float>(1000, 2.5f));
}

// Kernels refer to their Device: moving a Device that has built kernels must
// not leave them destroying pipelines through the moved-from handle.
TEST_F(Faults, DeviceMoveAfterKernelsBuilt) {
  std::optional<Device> moved;
  {
    Device d = Device::create(instance());
    {
      Buffer b = Buffer::create(d, 64 * 4);
      Stream s = Stream::create(d);
      roofline::fill(s, b, 64, 1.0f);
      s.submit_and_wait();
    }
    moved.emplace(std::move(d));
  }  // the moved-from Device ends here
  {
    Buffer b = Buffer::create(*moved, 64 * 4);
    Stream s = Stream::create(*moved);
    roofline::fill(s, b, 64, 2.0f);
    s.submit_and_wait();
    EXPECT_EQ(download<float>(b, 64), std::vector<float>(64, 2.0f));
  }
  moved.reset();  // destroys the kernels, then the device
}

// ---- timeout -----------------------------------------------------------------

// A fence wait that runs out throws TimeoutError; the late work is waited for
// before the stream records again or is destroyed.
TEST_F(Faults, FenceTimeoutThenStreamReuse) {
  const std::uint64_t n = 1 << 16;
  Buffer a = Buffer::create(dev(), n * 4), b = Buffer::create(dev(), n * 4);
  Stream s = Stream::create(dev());
  roofline::fill(s, a, n, 1.5f);
  {
    faults::Scope armed(faults::wait_for_fences, 1, VK_TIMEOUT);
    try {
      s.submit_and_wait();
      FAIL() << "no throw";
    } catch (const TimeoutError& e) {
      EXPECT_STREQ(e.call(), "vkWaitForFences");
      EXPECT_EQ(e.result(), VK_TIMEOUT);
    }
  }
  // Reuse the stream at once: its command buffer and fence are still pending.
  roofline::copy(s, a, b, n);
  s.submit_and_wait();
  EXPECT_EQ(download<float>(b, n), std::vector<float>(n, 1.5f));

  // Timed out and dropped: the destructor waits rather than freeing under the GPU.
  {
    Stream t = Stream::create(dev());
    roofline::fill(t, b, n, -3.0f);
    faults::Scope armed(faults::wait_for_fences, 1, VK_TIMEOUT);
    EXPECT_THROW(t.submit_and_wait(), TimeoutError);
  }
  EXPECT_EQ(download<float>(b, n), std::vector<float>(n, -3.0f));
}

TEST_F(Faults, FenceTimeoutInModelForward) {
  const Tiny tiny;
  VkForward fwd(dev(), *tiny.file, tiny.opts);
  const auto clean = fwd.forward(tiny.ids, true);
  for (std::uint64_t wait : {1, 2, 3}) {  // each of the three prefill steps
    fwd.reset();
    {
      faults::Scope armed(faults::wait_for_fences, wait, VK_TIMEOUT);
      EXPECT_THROW(fwd.forward(tiny.ids, true), TimeoutError) << "wait " << wait;
      EXPECT_EQ(faults::fired(), 1u);
    }
    fwd.reset();
    EXPECT_EQ(fwd.forward(tiny.ids, true), clean) << "after a timeout at wait " << wait;
  }
}

// ---- device lost ---------------------------------------------------------------

// Device loss on a private Instance + Device (the shared one must survive):
// the pass throws DeviceLostError naming the call, the device stays lost, and
// a new Instance + Device in the same process runs the model again.
void device_lost_case(faults::Call where, const char* name) {
  const Tiny tiny;
  InstanceOptions io;
  io.validation = true;
  io.require_validation = std::getenv("VKQ_TEST_NO_VALIDATION") == nullptr;
  io.sync_validation = std::getenv("VKQ_SYNC_VALIDATION") != nullptr;
  std::vector<float> clean;
  {
    Instance inst = Instance::create(io);
    {
      Device d = Device::create(inst);
      VkForward fwd(d, *tiny.file, tiny.opts);
      clean = fwd.forward(tiny.ids, true);
      fwd.reset();
      {
        faults::Scope armed(where, 2, VK_ERROR_DEVICE_LOST);  // the second prefill step
        try {
          fwd.forward(tiny.ids, true);
          ADD_FAILURE() << "no throw";
        } catch (const DeviceLostError& e) {
          EXPECT_STREQ(e.call(), name);
          EXPECT_EQ(e.result(), VK_ERROR_DEVICE_LOST);
        }
      }
      // Lost for good: disarmed, the next pass fails too, at submit.
      fwd.reset();
      try {
        fwd.forward(tiny.ids, true);
        ADD_FAILURE() << "the lost device ran a pass";
      } catch (const DeviceLostError& e) {
        EXPECT_STREQ(e.call(), "vkQueueSubmit");
      }
      // Allocating and freeing still work on a lost device (the spec allows it).
      Buffer b = Buffer::create(d, 256);
    }
    // Counted after the device is gone: objects left alive are errors too.
    EXPECT_EQ(inst.validation_errors(), 0u) << (inst.validation_messages().empty() ? "" : inst.validation_messages()[0]);
  }
  Instance inst = Instance::create(io);
  {
    Device d = Device::create(inst);
    EXPECT_EQ(tiny.run(d), clean);
  }
  EXPECT_EQ(inst.validation_errors(), 0u) << (inst.validation_messages().empty() ? "" : inst.validation_messages()[0]);
}

TEST(FaultsDeviceLost, AtSubmit) { device_lost_case(faults::queue_submit, "vkQueueSubmit"); }
TEST(FaultsDeviceLost, AtFenceWait) { device_lost_case(faults::wait_for_fences, "vkWaitForFences"); }

}  // namespace
}  // namespace vkq::test
