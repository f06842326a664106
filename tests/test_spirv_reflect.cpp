// The kernels' interface (storage-buffer bindings, push-constant size,
// specialization constants, workgroup size) is read from their SPIR-V
// (runtime/src/spirv_reflect.cpp): every embedded shader reflects, a few
// known ones give the sizes their host structs have, hand-assembled modules
// exercise each refusal, and a desc that sets what a shader cannot take is
// refused when its kernel is built.
#include <gtest/gtest.h>

#include <spirv/unified1/spirv.hpp>

#include <string>
#include <vector>

#include "attn_kcode.h"
#include "roofline.h"
#include "shader_registry.hpp"
#include "spirv_reflect.hpp"
#include "vk_test.hpp"
#include "vkquant/error.hpp"

namespace vkq {
namespace {

using detail::reflect_shader;
using detail::ShaderInterface;
using test::VulkanTest;

// A hand-assembled module: the instructions reflect_shader reads, no more
// (it does not validate what it skips).
struct Spirv {
  std::vector<std::uint32_t> words{spv::MagicNumber, 0x00010500u, 0u, 100u, 0u};
  Spirv& op(spv::Op o, std::vector<std::uint32_t> operands) {
    words.push_back(std::uint32_t(operands.size() + 1) << 16 | std::uint32_t(o));
    words.insert(words.end(), operands.begin(), operands.end());
    return *this;
  }
  // id 1: uint; id 2: struct { uint }; id 3: pointer to it in `storage`.
  Spirv& buffer_types(spv::StorageClass storage = spv::StorageClassStorageBuffer) {
    op(spv::OpTypeInt, {1, 32, 0}).op(spv::OpTypeStruct, {2, 1}).op(spv::OpTypePointer, {3, std::uint32_t(storage), 2});
    return *this;
  }
  // A variable `id` of pointer type 3 at (set, binding).
  Spirv& buffer(std::uint32_t id, std::uint32_t set, std::uint32_t binding,
                spv::StorageClass storage = spv::StorageClassStorageBuffer) {
    op(spv::OpDecorate, {id, spv::DecorationDescriptorSet, set}).op(spv::OpDecorate, {id, spv::DecorationBinding, binding});
    return op(spv::OpVariable, {3, id, std::uint32_t(storage)});
  }
  Spirv& local_size(std::uint32_t x) { return op(spv::OpExecutionMode, {99, spv::ExecutionModeLocalSize, x, 1, 1}); }
};

std::string error_of(const std::vector<std::uint32_t>& words) {
  try {
    reflect_shader(words, "test");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SpirvReflect, EveryEmbeddedShader) {
  ASSERT_FALSE(detail::all_shaders().empty());
  for (const detail::ShaderBlob& b : detail::all_shaders()) {
    SCOPED_TRACE(b.name);
    const ShaderInterface s = reflect_shader({b.code, b.words}, b.name);
    EXPECT_GE(s.bindings, 1u);
    EXPECT_EQ(s.push_bytes % 4, 0u);
    for (std::uint32_t d = 0; d < 3; ++d) {
      // The host sets dimension d through constant id d, or leaves it as the shader fixes it.
      if (s.local_size_id[d] != ShaderInterface::kNoId) {
        EXPECT_EQ(s.local_size_id[d], d);
      }
      EXPECT_GE(s.local_size[d], 1u);
    }
  }
}

TEST(SpirvReflect, KnownShaders) {
  const detail::ShaderBlob* softmax = detail::find_shader("attn_kcode_softmax");
  ASSERT_NE(softmax, nullptr);
  const ShaderInterface s = reflect_shader({softmax->code, softmax->words}, softmax->name);
  EXPECT_EQ(s.bindings, 7u);  // 3 is declared twice (uint and uvec4 views): one binding
  EXPECT_EQ(s.push_bytes, sizeof(gpu::AttnKcodeParams));
  EXPECT_EQ(s.spec_ids, (std::vector<std::uint32_t>{0, 3, 4, 5}));
  EXPECT_EQ(s.local_size_id[0], 0u);
  EXPECT_EQ(s.local_size_id[1], ShaderInterface::kNoId);

  const detail::ShaderBlob* copy = detail::find_shader("roofline_copy");
  ASSERT_NE(copy, nullptr);
  const ShaderInterface c = reflect_shader({copy->code, copy->words}, copy->name);
  EXPECT_EQ(c.bindings, 2u);
  EXPECT_EQ(c.push_bytes, sizeof(gpu::RooflineParams));
}

TEST(SpirvReflect, HandAssembled) {
  Spirv ok;
  ok.buffer_types().buffer(10, 0, 0).buffer(11, 0, 1).buffer(12, 0, 1).local_size(32);
  const ShaderInterface s = reflect_shader(ok.words, "ok");
  EXPECT_EQ(s.bindings, 2u);  // 1 declared twice
  EXPECT_EQ(s.push_bytes, 0u);
  EXPECT_EQ(s.local_size[0], 32u);
  EXPECT_EQ(s.local_size_id[0], ShaderInterface::kNoId);

  // Push constants { uint a; uvec2 b (offset 8); float c[3] (offset 16, stride 4) } = 28 bytes.
  Spirv pc;
  pc.buffer_types().buffer(10, 0, 0).local_size(1);
  pc.op(spv::OpTypeVector, {20, 1, 2})
      .op(spv::OpTypeFloat, {21, 32})
      .op(spv::OpConstant, {1, 22, 3})
      .op(spv::OpTypeArray, {23, 21, 22})
      .op(spv::OpDecorate, {23, spv::DecorationArrayStride, 4})
      .op(spv::OpTypeStruct, {24, 1, 20, 23})
      .op(spv::OpMemberDecorate, {24, 0, spv::DecorationOffset, 0})
      .op(spv::OpMemberDecorate, {24, 1, spv::DecorationOffset, 8})
      .op(spv::OpMemberDecorate, {24, 2, spv::DecorationOffset, 16})
      .op(spv::OpTypePointer, {25, spv::StorageClassPushConstant, 24})
      .op(spv::OpVariable, {25, 26, spv::StorageClassPushConstant});
  EXPECT_EQ(reflect_shader(pc.words, "pc").push_bytes, 28u);

  // Workgroup size from spec constants: x by id 0, y fixed at 2 (BuiltIn WorkgroupSize wins over LocalSize).
  Spirv wg;
  wg.buffer_types().buffer(10, 0, 0).local_size(1);
  wg.op(spv::OpSpecConstant, {1, 30, 64})
      .op(spv::OpDecorate, {30, spv::DecorationSpecId, 0})
      .op(spv::OpConstant, {1, 31, 2})
      .op(spv::OpConstant, {1, 32, 1})
      .op(spv::OpSpecConstant, {1, 33, 7})
      .op(spv::OpDecorate, {33, spv::DecorationSpecId, 5})
      .op(spv::OpSpecConstantComposite, {40, 34, 30, 31, 32})
      .op(spv::OpDecorate, {34, spv::DecorationBuiltIn, spv::BuiltInWorkgroupSize});
  const ShaderInterface w = reflect_shader(wg.words, "wg");
  EXPECT_EQ(w.local_size_id[0], 0u);
  EXPECT_EQ(w.local_size[0], 64u);
  EXPECT_EQ(w.local_size_id[1], ShaderInterface::kNoId);
  EXPECT_EQ(w.local_size[1], 2u);
  EXPECT_EQ(w.spec_ids, (std::vector<std::uint32_t>{0, 5}));
}

TEST(SpirvReflect, Refusals) {
  EXPECT_NE(error_of({1, 2, 3}).find("not a SPIR-V module"), std::string::npos);
  {
    Spirv t;
    t.buffer_types().local_size(1);
    t.words.push_back(5u << 16 | spv::OpDecorate);  // says 5 words, has 1
    EXPECT_NE(error_of(t.words).find("truncated instruction"), std::string::npos);
  }
  {
    Spirv t;
    t.buffer_types().buffer(10, 1, 0).local_size(1);
    EXPECT_NE(error_of(t.words).find("descriptor set 1"), std::string::npos);
  }
  {
    Spirv t;
    t.buffer_types().buffer(10, 0, 0).buffer(11, 0, 2).local_size(1);
    EXPECT_NE(error_of(t.words).find("binding 1 is not declared"), std::string::npos);
  }
  {
    Spirv t;
    t.buffer_types(spv::StorageClassUniform).buffer(10, 0, 0, spv::StorageClassUniform).local_size(1);
    EXPECT_NE(error_of(t.words).find("not a storage buffer"), std::string::npos);
  }
  {
    Spirv t;
    t.buffer_types().buffer(10, 0, 0);
    EXPECT_NE(error_of(t.words).find("no workgroup size"), std::string::npos);
  }
  {
    Spirv t;  // a push-constant member without an Offset
    t.buffer_types().buffer(10, 0, 0).local_size(1);
    t.op(spv::OpTypePointer, {25, spv::StorageClassPushConstant, 2}).op(spv::OpVariable, {25, 26, spv::StorageClassPushConstant});
    EXPECT_NE(error_of(t.words).find("without an Offset"), std::string::npos);
  }
}

// A desc that sets what the shader cannot take is refused by name when the kernel is built.
TEST_F(VulkanTest, KernelDescMustReachTheShader) {
  auto message = [&](const KernelDesc& d) -> std::string {
    try {
      dev().kernel(d);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message({.shader = "roofline_copy", .constants = {1}}), "");
  const Kernel& k = dev().kernel({.shader = "roofline_copy", .constants = {1}});
  EXPECT_EQ(k.bindings(), 2u);
  EXPECT_EQ(k.push_bytes(), sizeof(gpu::RooflineParams));
  EXPECT_NE(message({.shader = "roofline_copy", .constants = {1, 2}}).find("id 4"), std::string::npos);
  EXPECT_NE(message({.shader = "roofline_copy", .local_size = {64, 2, 1}, .constants = {1}}).find("fixed at 1"),
            std::string::npos);
}

}  // namespace
}  // namespace vkq
