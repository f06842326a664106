// A compute pipeline built from an embedded shader. Workgroup size travels as
// specialization constants 0..2 (local_size_{x,y,z}_id); kernel-specific
// constants follow from id 3. Push constants carry what changes per call.
// The storage-buffer bindings and the push-constant size are read from the
// shader's SPIR-V (Kernel::bindings, Kernel::push_bytes), never written twice;
// a constant or a workgroup size the shader cannot take is refused by name.
#pragma once

#include <volk.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vkq {

class Device;

struct KernelDesc {
  std::string shader;                        // name given to vkq_shader() in shaders/CMakeLists.txt
  std::array<std::uint32_t, 3> local_size{64, 1, 1};
  std::vector<std::uint32_t> constants;      // specialization constants 3, 4, ...
  std::uint32_t required_subgroup_size = 0;  // 0: let the driver choose
  // Every subgroup full (REQUIRE_FULL_SUBGROUPS): needs subgroup size control
  // with computeFullSubgroups and local_size[0] a multiple of maxSubgroupSize.
  bool full_subgroups = false;

  std::string key() const;
};

class Kernel {
 public:
  Kernel(Device& device, const KernelDesc& desc);
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;
  ~Kernel();

  const KernelDesc& desc() const { return desc_; }
  std::uint32_t bindings() const { return bindings_; }      // storage buffers at set 0, bindings 0..n-1
  std::uint32_t push_bytes() const { return push_bytes_; }  // the push-constant block's size (0: none)
  VkPipeline pipeline() const { return pipeline_; }
  VkPipelineLayout layout() const { return layout_; }
  VkDescriptorSetLayout set_layout() const { return set_layout_; }

 private:
  void release() noexcept;

  Device& device_;
  KernelDesc desc_;
  std::uint32_t bindings_ = 0, push_bytes_ = 0;
  VkShaderModule module_ = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
};

}  // namespace vkq
