// `vkquant quantize`'s writer (vkquant/gguf_quantize.hpp): a GGUF or
// safetensors model to a GGUF file, one tensor read, quantized and appended
// at a time through GgufStreamWriter. The types come from
// quant_tensor_types() (gguf_quant_rules.cpp).
#include <algorithm>
#include <cmath>
#include <exception>
#include <thread>
#include <tuple>

#include "vkquant/error.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/gguf_convert.hpp"
#include "vkquant/gguf_quantize.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/tensor_stream.hpp"

namespace vkq {

namespace {

constexpr std::uint64_t kChunkFloats = std::uint64_t(1) << 22;  // rows converted per piece: about 16 MiB of fp32

// What a source tensor offers: its stored bytes (GGUF) or its values (safetensors).
struct Source {
  QuantTensor tensor;
  std::uint64_t bytes_in = 0;
  const GgufTensorInfo* gguf = nullptr;   // GGUF input
  const GgufTensorPlan* plan = nullptr;   // safetensors input
};

std::uint64_t elements(const std::vector<std::uint64_t>& ne) {
  std::uint64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

// Bytes one element of a safetensors dtype takes.
std::uint64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  return 1;
}

std::string type_name(std::uint32_t t) { return quant::ggml_type_name(t); }

std::uint64_t count_nonfinite(std::span<const float> v) {
  return std::uint64_t(std::count_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); }));
}

// NaN and Inf are refused by tensor name (docs/design.md §8), never carried into a block's scale or a copy.
void refuse_nonfinite(const ModelFile& model, const std::string& name, std::uint64_t bad, std::uint64_t total) {
  if (bad)
    throw FormatError(model.path(), "tensor '" + name + "': " + std::to_string(bad) + " of " + std::to_string(total) +
                                        " values are NaN or Inf");
}

// Encodes `values` (whole rows of `ne0`) as `type` and appends them, a piece
// at a time, each piece's rows split among the CPU's threads (blocks are
// independent: the bytes do not depend on the split).
void write_converted(GgufStreamWriter& w, quant::Type type, std::span<const float> values, std::uint64_t ne0,
                     std::vector<std::byte>& buf) {
  const std::uint64_t rows = values.size() / ne0, per = std::max<std::uint64_t>(1, kChunkFloats / ne0);
  const std::uint64_t threads = std::clamp<std::uint64_t>(std::thread::hardware_concurrency(), 1, 16);
  const std::uint64_t row_bytes = quant::row_bytes(type, ne0);
  for (std::uint64_t r = 0; r < rows; r += per) {
    const std::uint64_t n = std::min(per, rows - r), share = (n + threads - 1) / threads;
    buf.resize(n * row_bytes);
    std::vector<std::exception_ptr> errors((n + share - 1) / share);
    {
      std::vector<std::jthread> pool;
      for (std::uint64_t a = 0; a < n; a += share)
        pool.emplace_back([&, a] {
          const std::uint64_t m = std::min(share, n - a);
          try {
            quant::quantize(type, values.subspan((r + a) * ne0, m * ne0), std::span(buf).subspan(a * row_bytes, m * row_bytes));
          } catch (...) {
            errors[a / share] = std::current_exception();
          }
        });
    }  // joined
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    w.write(buf);
  }
}

// A matrix of a safetensors model, from its stored bytes (mapped, or gathered
// for an expert bank), a piece of rows at a time: each GGUF row decoded from
// its part's row (q/k rows permuted for llama), then quantized.
void write_from_stored(const ModelFile& model, const GgufTensorPlan& t, quant::Type type, GgufStreamWriter& w,
                       std::vector<std::byte>& buf) {
  std::vector<StoredWeight> parts;
  std::vector<std::uint64_t> first;  // the tensor row each part starts at
  std::uint64_t rows = 0;
  for (const auto& [role, layer] : t.parts) {
    parts.push_back(model.load_stored(role, layer));
    first.push_back(rows);
    rows += parts.back().rows();
  }
  const std::uint64_t ne0 = t.ne[0], per = std::max<std::uint64_t>(1, kChunkFloats / ne0);
  std::vector<float> v;
  std::uint64_t bad = 0;
  for (std::uint64_t r = 0; r < rows; r += per) {
    const std::uint64_t n = std::min(per, rows - r);
    v.resize(n * ne0);
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t row = t.permute_heads ? gguf_permuted_source_row(r + i, rows, t.permute_heads) : r + i;
      const std::size_t p = std::size_t(std::upper_bound(first.begin(), first.end(), row) - first.begin() - 1);
      const std::uint64_t rb = quant::row_bytes(parts[p].type, ne0);
      quant::dequantize(parts[p].type, parts[p].bytes.subspan((row - first[p]) * rb, rb), std::span(v).subspan(i * ne0, ne0));
    }
    bad += count_nonfinite(v);
    if (!bad) write_converted(w, type, v, ne0, buf);
  }
  for (const StoredWeight& p : parts) model.drop_pages(p);  // resident memory follows one tensor
  refuse_nonfinite(model, t.name, bad, rows * ne0);
}

}  // namespace

QuantizeSummary quantize_to_gguf(const ModelFile& model, const std::filesystem::path& out, QuantMix mix,
                                 const QuantizeProgress& progress) {
  const QuantMixInfo& m = quant_mix_info(mix);
  const ModelConfig& c = model.config();
  const bool from_gguf = model.format() == Format::gguf;

  // ---- the input's tensors and metadata ----
  std::optional<GgufFile> g;
  std::vector<GgufTensorPlan> plan;
  std::vector<Source> src;
  GgufKeys kv;
  std::uint32_t alignment = 32;
  if (from_gguf) {
    g = GgufFile::open(model.path());
    alignment = std::uint32_t(g->alignment());
    for (const auto& t : g->tensors()) src.push_back({{t.name, t.ne, t.type}, t.bytes, &t, nullptr});
    kv = g->metadata();
  } else {
    plan = gguf_tensor_plan(c);
    for (const auto& t : plan) {
      std::uint64_t in = 0;
      for (const auto& [role, layer] : t.parts) in += elements(role_shape(c, role)) * dtype_bytes(model.dtype(role, layer));
      src.push_back({{t.name, t.ne, std::uint32_t(quant::Type::f32)}, t.parts.empty() ? 0 : in, nullptr, &t});
    }
    kv = gguf_metadata_from_hf(model, m.file_type);
  }
  // llama.cpp sets both keys on the copy (gguf_set_val_u32 replaces a value).
  auto set = [&](const std::string& key, std::uint32_t v) {
    for (auto& [k, val] : kv)
      if (k == key) {
        val = gguf_uint(v);
        return;
      }
    kv.emplace_back(key, gguf_uint(v));
  };
  set("general.file_type", m.file_type);
  set("general.quantization_version", kGgufQuantizationVersion);

  // ---- the types, and every refusal before anything is written ----
  QuantModelFacts facts{gguf_architecture(c), c.layers, c.experts, c.heads, c.kv_heads};
  std::vector<QuantTensor> tensors;
  for (const auto& s : src) tensors.push_back(s.tensor);
  const auto types = quant_tensor_types(facts, tensors, mix);
  QuantizeSummary sum;
  std::vector<GgufSpec> specs;
  std::map<std::tuple<std::uint32_t, std::uint64_t, std::uint32_t>, std::size_t> fallbacks;
  for (std::size_t i = 0; i < src.size(); ++i) {
    const QuantTensor& t = src[i].tensor;
    const std::uint32_t to = types[i].type;
    if (to != t.type) {
      const quant::TypeInfo* from_info = quant::find(t.type);
      if (!from_info)
        throw Error("tensor '" + t.name + "': its type " + type_name(t.type) + " cannot be read (vkquant reads F32, F16, BF16 and " +
                    "the ggml types of vkquant/quant.hpp), so it cannot become " + type_name(to));
      const quant::TypeInfo* to_info = quant::find(to);
      if (!to_info || !quant::can_quantize(to_info->type))
        throw Error("tensor '" + t.name + "': cannot write " + type_name(to) + " (no quantizer for it)");
    }
    if (types[i].wanted != to) ++fallbacks[{types[i].wanted, t.ne[0], to}];
    specs.push_back({t.name, to, t.ne});
    ++sum.tensors_per_type[to];
    sum.weights += elements(t.ne);
    sum.bytes_in += src[i].bytes_in;
  }
  for (const auto& [key, n] : fallbacks) {
    const auto& [wanted, ne0, to] = key;
    sum.fallbacks.push_back(std::to_string(n) + (n == 1 ? " tensor" : " tensors") + " with rows of " + std::to_string(ne0) + ": " +
                            type_name(wanted) + " -> " + type_name(to));
  }
  sum.tensors = src.size();

  // ---- one tensor at a time ----
  auto w = GgufStreamWriter::open(out, kv, std::move(specs), alignment);
  std::vector<std::byte> buf;
  for (std::size_t i = 0; i < src.size(); ++i) {
    const Source& s = src[i];
    const QuantTensor& t = s.tensor;
    const std::uint32_t to = types[i].type;
    if (progress) progress(i, src.size(), t.name, to);
    const auto layout = ggml_block_layout(to);
    sum.bytes_out += layout ? elements(t.ne) / layout->first * layout->second : 0;
    if (s.plan && (s.plan->parts.empty() || t.ne.size() < 2)) {  // RoPE factors, 1-D weights: small, whole
      const std::vector<float> v = gguf_tensor_values(model, *s.plan);
      refuse_nonfinite(model, t.name, count_nonfinite(v), v.size());
      write_converted(w, quant::find(to)->type, v, t.ne[0], buf);
      continue;
    }
    if (s.plan) {
      write_from_stored(model, *s.plan, quant::find(to)->type, w, buf);
      continue;
    }
    // A piece of whole rows at a time: decoded (to check it, or to re-encode it),
    // then copied byte for byte when already in its type, else quantized.
    const auto bytes = g->data(*s.gguf);
    const quant::TypeInfo* from = quant::find(t.type);
    const bool copy = to == t.type;
    sum.copied += copy;
    if (copy && !from) {  // a type vkquant cannot decode: copied unchecked
      w.write(bytes);
      g->mapping().drop_pages(bytes);
      continue;
    }
    const std::uint64_t ne0 = t.ne[0], rows = elements(t.ne) / ne0, per = std::max<std::uint64_t>(1, kChunkFloats / ne0);
    const std::uint64_t in_row = quant::row_bytes(from->type, ne0);
    std::vector<float> v;
    std::uint64_t bad = 0;
    for (std::uint64_t r = 0; r < rows; r += per) {
      const std::uint64_t n = std::min(per, rows - r);
      const auto piece = bytes.subspan(r * in_row, n * in_row);
      v.resize(n * ne0);
      quant::dequantize(from->type, piece, v);
      bad += count_nonfinite(v);
      if (copy) w.write(piece);
      else if (!bad) write_converted(w, quant::find(to)->type, v, ne0, buf);
      g->mapping().drop_pages(piece);  // resident memory follows one piece, not the model
    }
    refuse_nonfinite(model, t.name, bad, rows * ne0);
  }
  w.commit();
  sum.file_bytes = w.file_bytes();
  return sum;
}

}  // namespace vkq
