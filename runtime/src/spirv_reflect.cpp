#include "spirv_reflect.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <spirv/unified1/spirv.hpp>

#include "vkquant/error.hpp"

namespace vkq::detail {

namespace {

// The instructions the interface is read from, by result id.
struct Module {
  struct Type {
    spv::Op op = spv::OpNop;
    std::vector<std::uint32_t> operands;  // the instruction's words after its result id
  };
  std::map<std::uint32_t, Type> types;                 // OpTypeInt/Float/Vector/Array/Struct/Pointer
  std::map<std::uint32_t, std::uint32_t> constants;    // OpConstant / OpSpecConstant: 32-bit value
  std::map<std::uint32_t, std::vector<std::uint32_t>> composites;  // Op(Spec)ConstantComposite constituents
  std::map<std::uint32_t, std::uint32_t> binding, set, spec_id, array_stride;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> member_offset;  // (struct, member)
  struct Variable {
    std::uint32_t pointer_type, storage;
  };
  std::map<std::uint32_t, Variable> variables;
  std::optional<std::uint32_t> workgroup_size;  // the id decorated BuiltIn WorkgroupSize
  std::optional<std::array<std::uint32_t, 3>> local_size;     // ExecutionMode LocalSize: sizes
  std::optional<std::array<std::uint32_t, 3>> local_size_id;  // ExecutionMode LocalSizeId: constant ids
};

[[noreturn]] void bad(std::string_view name, const std::string& what) {
  throw Error("shader " + std::string(name) + ": " + what);
}

Module parse(std::span<const std::uint32_t> code, std::string_view name) {
  if (code.size() < 5 || code[0] != spv::MagicNumber) bad(name, "not a SPIR-V module");
  Module m;
  for (std::size_t at = 5; at < code.size();) {
    const std::uint32_t words = code[at] >> 16;
    const auto op = spv::Op(code[at] & 0xffffu);
    if (words == 0 || at + words > code.size()) bad(name, "truncated instruction at word " + std::to_string(at));
    const std::span<const std::uint32_t> w = code.subspan(at + 1, words - 1);  // operands
    auto need = [&](std::size_t n) {
      if (w.size() < n) bad(name, "instruction " + std::to_string(op) + " has too few operands");
    };
    switch (op) {
      case spv::OpDecorate:
        need(2);
        if (w[1] == spv::DecorationBinding && w.size() >= 3) m.binding[w[0]] = w[2];
        if (w[1] == spv::DecorationDescriptorSet && w.size() >= 3) m.set[w[0]] = w[2];
        if (w[1] == spv::DecorationSpecId && w.size() >= 3) m.spec_id[w[0]] = w[2];
        if (w[1] == spv::DecorationArrayStride && w.size() >= 3) m.array_stride[w[0]] = w[2];
        if (w[1] == spv::DecorationBuiltIn && w.size() >= 3 && w[2] == spv::BuiltInWorkgroupSize) m.workgroup_size = w[0];
        break;
      case spv::OpMemberDecorate:
        need(3);
        if (w[2] == spv::DecorationOffset && w.size() >= 4) m.member_offset[{w[0], w[1]}] = w[3];
        break;
      case spv::OpExecutionMode:
        need(2);
        if (w[1] == spv::ExecutionModeLocalSize) {
          need(5);
          m.local_size = std::array<std::uint32_t, 3>{w[2], w[3], w[4]};
        } else if (w[1] == spv::ExecutionModeLocalSizeId) {
          need(5);
          m.local_size_id = std::array<std::uint32_t, 3>{w[2], w[3], w[4]};
        }
        break;
      case spv::OpTypeInt:  // the types a push-constant block is sized from (others are refused there)
      case spv::OpTypeFloat:
      case spv::OpTypeVector:
      case spv::OpTypeArray:
      case spv::OpTypeStruct:
      case spv::OpTypePointer:
        need(1);
        m.types[w[0]] = {op, std::vector<std::uint32_t>(w.begin() + 1, w.end())};
        break;
      case spv::OpConstant:
      case spv::OpSpecConstant:
        need(3);
        m.constants[w[1]] = w[2];  // the low word: every size read here is 32-bit
        break;
      case spv::OpConstantComposite:
      case spv::OpSpecConstantComposite:
        need(2);
        m.composites[w[1]] = std::vector<std::uint32_t>(w.begin() + 2, w.end());
        break;
      case spv::OpVariable:
        need(3);
        m.variables[w[1]] = {w[0], w[2]};
        break;
      default:
        break;
    }
    at += words;
  }
  return m;
}

// Bytes a push-constant member of type `id` occupies (std430-style explicit layout).
std::uint32_t type_bytes(const Module& m, std::uint32_t id, std::string_view name, int depth = 0) {
  const auto t = m.types.find(id);
  if (t == m.types.end() || depth > 8) bad(name, "push constants use a type it cannot size (id " + std::to_string(id) + ")");
  const auto& o = t->second.operands;
  switch (t->second.op) {
    case spv::OpTypeInt:
    case spv::OpTypeFloat:
      return o.at(0) / 8;
    case spv::OpTypeVector:
      return o.at(1) * type_bytes(m, o.at(0), name, depth + 1);
    case spv::OpTypeArray: {
      const auto len = m.constants.find(o.at(1));
      const auto stride = m.array_stride.find(id);
      if (len == m.constants.end() || stride == m.array_stride.end())
        bad(name, "a push-constant array without a constant length and an ArrayStride");
      return len->second * stride->second;
    }
    case spv::OpTypeStruct: {
      std::uint32_t end = 0;
      for (std::uint32_t i = 0; i < o.size(); ++i) {
        const auto off = m.member_offset.find({id, i});
        if (off == m.member_offset.end()) bad(name, "a push-constant member without an Offset");
        end = std::max(end, off->second + type_bytes(m, o[i], name, depth + 1));
      }
      return end;
    }
    default:
      bad(name, "push constants use a type it cannot size (opcode " + std::to_string(t->second.op) + ")");
  }
}

}  // namespace

ShaderInterface reflect_shader(std::span<const std::uint32_t> code, std::string_view name) {
  const Module m = parse(code, name);
  ShaderInterface out;

  std::set<std::uint32_t> bindings;
  bool push_seen = false;
  for (const auto& [id, v] : m.variables) {
    const bool descriptor = v.storage == spv::StorageClassStorageBuffer || v.storage == spv::StorageClassUniform ||
                            v.storage == spv::StorageClassUniformConstant;
    if (v.storage == spv::StorageClassPushConstant) {
      if (push_seen) bad(name, "more than one push-constant block");
      push_seen = true;
      const auto p = m.types.find(v.pointer_type);
      if (p == m.types.end() || p->second.op != spv::OpTypePointer || p->second.operands.size() < 2)
        bad(name, "a push-constant variable without a pointer type");
      out.push_bytes = type_bytes(m, p->second.operands[1], name);
    } else if (descriptor) {
      const auto b = m.binding.find(id);
      if (b == m.binding.end()) continue;  // not a resource the pipeline binds
      if (v.storage != spv::StorageClassStorageBuffer)
        bad(name, "binding " + std::to_string(b->second) + " is not a storage buffer (the only descriptor kernels take)");
      const auto s = m.set.find(id);
      if (s != m.set.end() && s->second != 0)
        bad(name, "binding " + std::to_string(b->second) + " is in descriptor set " + std::to_string(s->second) +
                      ", kernels use set 0 only");
      bindings.insert(b->second);
    }
  }
  if (!bindings.empty()) {
    out.bindings = *bindings.rbegin() + 1;
    for (std::uint32_t i = 0; i < out.bindings; ++i)
      if (!bindings.count(i)) bad(name, "binding " + std::to_string(i) + " is not declared (bindings must be 0..n-1)");
  }

  for (const auto& [id, sid] : m.spec_id) out.spec_ids.push_back(sid);
  std::sort(out.spec_ids.begin(), out.spec_ids.end());
  out.spec_ids.erase(std::unique(out.spec_ids.begin(), out.spec_ids.end()), out.spec_ids.end());

  // The size of each dimension: a constant, which a specialization constant id may set.
  auto dims = [&](const std::array<std::uint32_t, 3>& ids) {
    for (int d = 0; d < 3; ++d) {
      if (const auto s = m.spec_id.find(ids[d]); s != m.spec_id.end()) out.local_size_id[d] = s->second;
      const auto v = m.constants.find(ids[d]);
      if (v == m.constants.end()) bad(name, "workgroup size component " + std::to_string(d) + " is not a constant");
      out.local_size[d] = v->second;
    }
  };
  if (m.workgroup_size) {  // the BuiltIn WorkgroupSize overrides any execution mode
    const auto c = m.composites.find(*m.workgroup_size);
    if (c == m.composites.end() || c->second.size() != 3) bad(name, "WorkgroupSize is not a 3-component constant");
    dims({c->second[0], c->second[1], c->second[2]});
  } else if (m.local_size_id) {
    dims(*m.local_size_id);
  } else if (m.local_size) {
    out.local_size = *m.local_size;
  } else {
    bad(name, "no workgroup size (neither WorkgroupSize nor ExecutionMode LocalSize)");
  }
  return out;
}

}  // namespace vkq::detail
