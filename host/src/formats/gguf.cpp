// GGUF types, values, block layouts, quantizers and dequantization.
#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "gguf_internal.hpp"
#include "vkquant/half.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq {

namespace {

void require_finite(std::span<const float> x, const char* who) {
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x[i])) throw Error(std::string(who) + ": value " + std::to_string(i) + " is not finite");
}

struct GgmlRow {
  std::uint32_t id;
  const char* name;
  std::uint32_t block;  // elements per block
  std::uint32_t size;   // bytes per block
};
// ggml.h / ggml-common.h block layouts; ids 4, 5 and 31..33, 36..38 were removed from ggml.
constexpr std::array<GgmlRow, 33> kGgml{{
    {0, "F32", 1, 4},         {1, "F16", 1, 2},        {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},     {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},  {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},  {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},        {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},       {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},  {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},
    {~0u, "unknown", 0, 0},
}};

const GgmlRow* ggml_row(std::uint32_t type) {
  for (const auto& r : kGgml)
    if (r.id == type && r.block != 0) return &r;
  return nullptr;
}

constexpr std::array<const char*, 13> kTypeNames{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

std::string number(double v, bool single) {
  char buf[64];
  const auto r = single ? std::to_chars(buf, buf + sizeof buf, float(v)) : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Escapes control bytes, quotes and backslashes; cuts after `limit` bytes.
std::string escaped(std::string_view s, std::size_t limit) {
  std::string out;
  const std::size_t n = std::min(s.size(), limit);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t(h) << 16); }

std::uint16_t load_u16(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

const char* ggml_type_name(std::uint32_t type) {
  const auto* r = ggml_row(type);
  return r ? r->name : "unknown";
}

std::optional<std::pair<std::uint32_t, std::uint32_t>> ggml_block_layout(std::uint32_t type) {
  const auto* r = ggml_row(type);
  if (!r) return std::nullopt;
  return std::pair{r->block, r->size};
}

const char* gguf_type_name(GgufType type) {
  const auto t = std::uint32_t(type);
  return t < kTypeNames.size() ? kTypeNames[t] : "unknown";
}

// --- values -----------------------------------------------------------------

GgufValue gguf_uint(std::uint64_t v, GgufType type) { return {type, GgufType::u8, v}; }
GgufValue gguf_int(std::int64_t v, GgufType type) { return {type, GgufType::u8, v}; }
GgufValue gguf_float(double v, GgufType type) { return {type, GgufType::u8, v}; }
GgufValue gguf_bool(bool v) { return {GgufType::boolean, GgufType::u8, v}; }
GgufValue gguf_string(std::string v) { return {GgufType::string, GgufType::u8, std::move(v)}; }
GgufValue gguf_uint_array(std::vector<std::uint64_t> v, GgufType elem) { return {GgufType::array, elem, std::move(v)}; }
GgufValue gguf_int_array(std::vector<std::int64_t> v, GgufType elem) { return {GgufType::array, elem, std::move(v)}; }
GgufValue gguf_float_array(std::vector<double> v, GgufType elem) { return {GgufType::array, elem, std::move(v)}; }
GgufValue gguf_bool_array(std::vector<bool> v) { return {GgufType::array, GgufType::boolean, std::move(v)}; }
GgufValue gguf_string_array(std::vector<std::string> v) { return {GgufType::array, GgufType::string, std::move(v)}; }

std::string gguf_value_summary(const GgufValue& v, std::size_t max_items) {
  const bool single = v.elem == GgufType::f32 || v.type == GgufType::f32;
  auto item = [&](const auto& x, bool in_array) -> std::string {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, std::string>) return in_array ? "\"" + escaped(x, 64) + "\"" : escaped(x, 200);
    else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
    else if constexpr (std::is_same_v<T, double>) return number(x, single);
    else return std::to_string(x);
  };
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::vector<bool>>) {
          std::string out = "[bool × " + std::to_string(x.size()) + ":";
          for (std::size_t i = 0; i < x.size() && i < max_items; ++i) out += std::string(i ? ", " : " ") + (x[i] ? "true" : "false");
          return out + (x.size() > max_items ? ", ...]" : "]");
        } else if constexpr (requires { x.begin(); } && !std::is_same_v<T, std::string>) {
          std::string out = std::string("[") + gguf_type_name(v.elem) + " × " + std::to_string(x.size()) + ":";
          for (std::size_t i = 0; i < x.size() && i < max_items; ++i) out += (i ? ", " : " ") + item(x[i], true);
          return out + (x.size() > max_items ? ", ...]" : "]");
        } else {
          return item(x, false);
        }
      },
      v.v);
}

std::uint64_t GgufTensorInfo::elements() const {
  std::uint64_t n = 1;
  for (auto d : ne) n *= d;  // validated at load: cannot overflow
  return n;
}

namespace gguf_detail {

std::string quote_name(std::string_view s, std::size_t limit) { return "'" + escaped(s, limit) + "'"; }

bool tensor_bytes(std::uint32_t type, const std::vector<std::uint64_t>& ne, std::uint64_t& bytes, std::string& why) {
  const auto* r = ggml_row(type);
  if (!r) {
    why = "unknown ggml type " + std::to_string(type);
    return false;
  }
  std::string dims;
  for (std::size_t i = 0; i < ne.size(); ++i) dims += (i ? ", " : "") + std::to_string(ne[i]);
  dims = "[" + dims + "]";
  std::uint64_t rows = 1;
  for (std::size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] == 0) {
      why = "dimension " + std::to_string(i) + " of ne " + dims + " is zero";
      return false;
    }
    if (i > 0 && !checked_mul(rows, ne[i], rows)) {
      why = "ne " + dims + " overflows 64 bits";
      return false;
    }
  }
  const std::uint64_t ne0 = ne.empty() ? 1 : ne[0];
  if (ne0 % r->block != 0) {
    why = std::string(r->name) + " needs ne[0] a multiple of " + std::to_string(r->block) + ", got " + std::to_string(ne0);
    return false;
  }
  std::uint64_t elements = 0, row_bytes = 0;
  if (!checked_mul(ne0, rows, elements) || !checked_mul(ne0 / r->block, r->size, row_bytes) || !checked_mul(row_bytes, rows, bytes)) {
    why = "ne " + dims + " overflows 64 bits in " + std::string(r->name) + " bytes";
    return false;
  }
  return true;
}

std::string check_value(const GgufValue& v) {
  auto fits_uint = [](GgufType t, std::uint64_t x) {
    const std::uint32_t s = scalar_size(t);
    return s == 8 || x < (std::uint64_t(1) << (8 * s));
  };
  auto fits_int = [](GgufType t, std::int64_t x) {
    const std::uint32_t s = scalar_size(t);
    if (s == 8) return true;
    const std::int64_t lim = std::int64_t(1) << (8 * s - 1);
    return x >= -lim && x < lim;
  };
  const GgufType t = v.type == GgufType::array ? v.elem : v.type;
  if (!is_known(std::uint32_t(v.type)) || !is_known(std::uint32_t(t))) return "unknown value type";
  if (v.type == GgufType::array && v.elem == GgufType::array) return "nested arrays are not supported";
  const bool arr = v.type == GgufType::array;
  if (is_unsigned(t)) {
    if (!arr) {
      const auto* x = std::get_if<std::uint64_t>(&v.v);
      if (!x) return std::string(gguf_type_name(t)) + " value does not hold an unsigned integer";
      return fits_uint(t, *x) ? "" : std::to_string(*x) + " does not fit " + gguf_type_name(t);
    }
    const auto* x = std::get_if<std::vector<std::uint64_t>>(&v.v);
    if (!x) return std::string(gguf_type_name(t)) + " array does not hold unsigned integers";
    for (auto e : *x)
      if (!fits_uint(t, e)) return std::to_string(e) + " does not fit " + gguf_type_name(t);
    return "";
  }
  if (is_signed(t)) {
    if (!arr) {
      const auto* x = std::get_if<std::int64_t>(&v.v);
      if (!x) return std::string(gguf_type_name(t)) + " value does not hold a signed integer";
      return fits_int(t, *x) ? "" : std::to_string(*x) + " does not fit " + gguf_type_name(t);
    }
    const auto* x = std::get_if<std::vector<std::int64_t>>(&v.v);
    if (!x) return std::string(gguf_type_name(t)) + " array does not hold signed integers";
    for (auto e : *x)
      if (!fits_int(t, e)) return std::to_string(e) + " does not fit " + gguf_type_name(t);
    return "";
  }
  auto holds = [&]<typename T>() { return arr ? std::holds_alternative<std::vector<T>>(v.v) : std::holds_alternative<T>(v.v); };
  const bool ok = is_float(t) ? holds.template operator()<double>()
                  : t == GgufType::boolean ? holds.template operator()<bool>()
                                           : holds.template operator()<std::string>();
  return ok ? "" : std::string(gguf_type_name(t)) + (arr ? " array" : " value") + " holds the wrong representation";
}

}  // namespace gguf_detail

// --- tensor data -------------------------------------------------------------

std::span<const std::byte> GgufFile::data(const GgufTensorInfo& t) const { return file_.bytes().subspan(t.offset, t.bytes); }

std::vector<float> GgufFile::to_float(const GgufTensorInfo& t) const {
  const auto src = data(t);
  const std::uint64_t n = t.elements();
  const std::byte* p = src.data();
  std::vector<float> out;
  switch (GgmlType(t.type)) {
    case GgmlType::F32:
      out.resize(n);
      std::memcpy(out.data(), p, n * 4);
      break;
    case GgmlType::F16:
      out.resize(n);
      for (std::uint64_t i = 0; i < n; ++i) out[i] = from_half(load_u16(p + 2 * i));
      break;
    case GgmlType::BF16:
      out.resize(n);
      for (std::uint64_t i = 0; i < n; ++i) out[i] = bf16_to_float(load_u16(p + 2 * i));
      break;
    case GgmlType::Q8_0:
      out.resize(n);
      for (std::uint64_t b = 0; b < n / 32; ++b) {
        const std::byte* blk = p + 34 * b;  // fp16 d, int8 q[32]
        const float d = from_half(load_u16(blk));
        for (int j = 0; j < 32; ++j) out[32 * b + std::uint64_t(j)] = d * float(std::int8_t(blk[2 + j]));
      }
      break;
    case GgmlType::Q4_0:
      out.resize(n);
      for (std::uint64_t b = 0; b < n / 32; ++b) {
        const std::byte* blk = p + 18 * b;  // fp16 d, nibbles: element j low, element j+16 high
        const float d = from_half(load_u16(blk));
        for (int j = 0; j < 16; ++j) {
          const auto q = std::uint8_t(blk[2 + j]);
          out[32 * b + std::uint64_t(j)] = d * float(int(q & 0x0f) - 8);
          out[32 * b + std::uint64_t(j) + 16] = d * float(int(q >> 4) - 8);
        }
      }
      break;
    default:
      throw FormatError(path(), "tensor " + gguf_detail::quote_name(t.name) + ": ggml type " + ggml_type_name(t.type) + " (" +
                                    std::to_string(t.type) + ") cannot be converted to floats (F32, F16, BF16, Q8_0 and Q4_0 can)",
                        t.offset);
  }
  return out;
}

// --- quantizers --------------------------------------------------------------

std::vector<std::byte> quantize_q8_0(std::span<const float> x) {
  if (x.size() % 32 != 0) throw Error("quantize_q8_0: " + std::to_string(x.size()) + " values is not a multiple of 32");
  require_finite(x, "quantize_q8_0");
  std::vector<std::byte> out(x.size() / 32 * 34);
  for (std::size_t b = 0; b < x.size() / 32; ++b) {
    const float* v = x.data() + 32 * b;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    std::byte* blk = out.data() + 34 * b;
    const half_bits h = to_half(d);
    std::memcpy(blk, &h, 2);
    for (int j = 0; j < 32; ++j) blk[2 + j] = std::byte(std::uint8_t(std::int8_t(std::lround(v[j] * id))));
  }
  return out;
}

std::vector<std::byte> quantize_q4_0(std::span<const float> x) {
  if (x.size() % 32 != 0) throw Error("quantize_q4_0: " + std::to_string(x.size()) + " values is not a multiple of 32");
  require_finite(x, "quantize_q4_0");
  std::vector<std::byte> out(x.size() / 32 * 18);
  for (std::size_t b = 0; b < x.size() / 32; ++b) {
    const float* v = x.data() + 32 * b;
    float amax = 0.0f, max = 0.0f;  // the signed value of largest magnitude maps to -8
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(v[j])) {
        amax = std::fabs(v[j]);
        max = v[j];
      }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    std::byte* blk = out.data() + 18 * b;
    const half_bits h = to_half(d);
    std::memcpy(blk, &h, 2);
    for (int j = 0; j < 16; ++j) {
      const auto q0 = std::uint8_t(std::min(15, int(std::int8_t(v[j] * id + 8.5f))));
      const auto q1 = std::uint8_t(std::min(15, int(std::int8_t(v[j + 16] * id + 8.5f))));
      blk[2 + j] = std::byte(std::uint8_t(q0 | (q1 << 4)));
    }
  }
  return out;
}

std::vector<std::byte> to_f16_bytes(std::span<const float> x) {
  std::vector<std::byte> out(2 * x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const half_bits h = to_half(x[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

std::vector<std::byte> to_bf16_bytes(std::span<const float> x) {
  std::vector<std::byte> out(2 * x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x[i]);
    const std::uint16_t h = std::isnan(x[i]) ? std::uint16_t((u >> 16) | 0x40u)  // keep NaNs quiet
                                             : std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

}  // namespace vkq
