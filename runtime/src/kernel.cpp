#include "vkquant/kernel.hpp"

#include <algorithm>
#include <vector>

#include "shader_registry.hpp"
#include "spirv_reflect.hpp"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"

namespace vkq {

std::string KernelDesc::key() const {
  std::string k = shader;
  for (std::uint32_t v : {local_size[0], local_size[1], local_size[2], required_subgroup_size,
                          std::uint32_t(full_subgroups)}) {
    k += ':';
    k += std::to_string(v);
  }
  for (std::uint32_t c : constants) {
    k += ',';
    k += std::to_string(c);
  }
  return k;
}

Kernel::Kernel(Device& device, const KernelDesc& desc) : device_(device), desc_(desc) {
  const auto* blob = detail::find_shader(desc.shader);
  if (!blob) throw Error("no embedded shader named '" + desc.shader + "'");
  const detail::ShaderInterface iface = detail::reflect_shader({blob->code, blob->words}, desc.shader);
  bindings_ = iface.bindings;
  push_bytes_ = iface.push_bytes;
  // What the desc sets must reach the shader: each workgroup dimension through
  // its specialization constant id (or equal to the size the shader fixes),
  // each kernel constant through an id the shader declares.
  for (std::uint32_t d = 0; d < 3; ++d) {
    const std::uint32_t id = iface.local_size_id[d];
    if (id == detail::ShaderInterface::kNoId ? desc.local_size[d] != iface.local_size[d] : id != d)
      throw Error("kernel " + desc.shader + ": workgroup size " + std::to_string(d) + " is " +
                  (id == detail::ShaderInterface::kNoId
                       ? "fixed at " + std::to_string(iface.local_size[d]) + " in the shader, not " +
                             std::to_string(desc.local_size[d])
                       : "set by constant id " + std::to_string(id) + ", not id " + std::to_string(d)));
  }
  for (std::uint32_t i = 0; i < desc.constants.size(); ++i)
    if (!std::binary_search(iface.spec_ids.begin(), iface.spec_ids.end(), 3 + i))
      throw Error("kernel " + desc.shader + ": constant " + std::to_string(i) + " (id " + std::to_string(3 + i) +
                  ") is given, the shader declares no such constant");
  const auto& info = device.info();
  if (push_bytes_ > info.max_push_constants)
    throw Error("kernel " + desc.shader + ": push constants of " + std::to_string(push_bytes_) +
                " bytes exceed the device's " + std::to_string(info.max_push_constants));
  const std::uint64_t invocations = std::uint64_t(desc.local_size[0]) * desc.local_size[1] * desc.local_size[2];
  if (invocations == 0 || invocations > info.max_workgroup_invocations)
    throw Error("kernel " + desc.shader + ": workgroup of " + std::to_string(invocations) +
                " invocations is outside the device's limit " + std::to_string(info.max_workgroup_invocations));
  const auto& vk = device.vk();
  VkDevice dev = device.handle();

  // A throwing constructor runs no destructor: release what was made by hand.
  try {
    VkShaderModuleCreateInfo smci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    smci.codeSize = blob->words * sizeof(std::uint32_t);
    smci.pCode = blob->code;
    check(vk.vkCreateShaderModule(dev, &smci, nullptr, &module_), "vkCreateShaderModule");

    std::vector<VkDescriptorSetLayoutBinding> b(bindings_);
    for (std::uint32_t i = 0; i < bindings_; ++i)
      b[i] = {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
    VkDescriptorSetLayoutCreateInfo dslci{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    dslci.bindingCount = bindings_;
    dslci.pBindings = b.data();
    check(vk.vkCreateDescriptorSetLayout(dev, &dslci, nullptr, &set_layout_), "vkCreateDescriptorSetLayout");

    VkPushConstantRange pcr{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes_};
    VkPipelineLayoutCreateInfo plci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    plci.setLayoutCount = 1;
    plci.pSetLayouts = &set_layout_;
    plci.pushConstantRangeCount = push_bytes_ ? 1 : 0;
    plci.pPushConstantRanges = &pcr;
    check(vk.vkCreatePipelineLayout(dev, &plci, nullptr, &layout_), "vkCreatePipelineLayout");

    std::vector<std::uint32_t> values{desc.local_size[0], desc.local_size[1], desc.local_size[2]};
    values.insert(values.end(), desc.constants.begin(), desc.constants.end());
    std::vector<VkSpecializationMapEntry> entries(values.size());
    for (std::uint32_t i = 0; i < values.size(); ++i) entries[i] = {i, std::uint32_t(i * 4), 4};
    VkSpecializationInfo spec{std::uint32_t(entries.size()), entries.data(), values.size() * 4, values.data()};

    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rss{
        VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO};
    VkComputePipelineCreateInfo cpci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    cpci.flags = VK_PIPELINE_CREATE_DISPATCH_BASE_BIT;
    cpci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
    cpci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    cpci.stage.module = module_;
    cpci.stage.pName = "main";
    cpci.stage.pSpecializationInfo = &spec;
    if (desc.required_subgroup_size) {
      if (!info.subgroup_size_control)
        throw Error("kernel " + desc.shader + " needs subgroup size control, which this device lacks");
      rss.requiredSubgroupSize = desc.required_subgroup_size;
      cpci.stage.pNext = &rss;
      cpci.stage.flags = VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT;
    } else if (desc.full_subgroups) {
      if (!info.subgroup_size_control)
        throw Error("kernel " + desc.shader + " needs full subgroups (computeFullSubgroups), which this device lacks");
      if (info.max_subgroup_size == 0 || desc.local_size[0] % info.max_subgroup_size != 0)
        throw Error("kernel " + desc.shader + ": full subgroups need a workgroup width (" +
                    std::to_string(desc.local_size[0]) + ") that is a multiple of the largest subgroup (" +
                    std::to_string(info.max_subgroup_size) + ")");
      cpci.stage.flags = VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT;
    }
    cpci.layout = layout_;
    check(vk.vkCreateComputePipelines(dev, VK_NULL_HANDLE, 1, &cpci, nullptr, &pipeline_), "vkCreateComputePipelines");
  } catch (...) {
    release();
    throw;
  }
}

Kernel::~Kernel() { release(); }

void Kernel::release() noexcept {
  if (device_.abandoned()) return;  // late work may still use the pipeline (Device::abandon)
  const auto& vk = device_.vk();
  VkDevice dev = device_.handle();
  if (pipeline_) vk.vkDestroyPipeline(dev, pipeline_, nullptr);
  if (layout_) vk.vkDestroyPipelineLayout(dev, layout_, nullptr);
  if (set_layout_) vk.vkDestroyDescriptorSetLayout(dev, set_layout_, nullptr);
  if (module_) vk.vkDestroyShaderModule(dev, module_, nullptr);
  pipeline_ = VK_NULL_HANDLE;
  layout_ = VK_NULL_HANDLE;
  set_layout_ = VK_NULL_HANDLE;
  module_ = VK_NULL_HANDLE;
}

}  // namespace vkq
