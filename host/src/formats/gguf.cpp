// GGUF value types and values, tensor sizes, and tensor data as floats (the
// block formats themselves live in runtime/src/quant.cpp).
#include <algorithm>
#include <array>
#include <charconv>

#include "gguf_internal.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq {

namespace {

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

}  // namespace

const char* ggml_type_name(std::uint32_t type) { return quant::ggml_type_name(type); }

std::optional<std::pair<std::uint32_t, std::uint32_t>> ggml_block_layout(std::uint32_t type) {
  const auto r = quant::ggml_block_layout(type);
  if (!r) return std::nullopt;
  return std::pair{r->block, r->bytes};
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
  const auto r = quant::ggml_block_layout(type);
  if (!r) {
    why = "unknown ggml type " + std::to_string(type);
    return false;
  }
  const std::string name = quant::ggml_type_name(type);
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
    why = name + " needs ne[0] a multiple of " + std::to_string(r->block) + ", got " + std::to_string(ne0);
    return false;
  }
  std::uint64_t elements = 0, row_bytes = 0;
  if (!checked_mul(ne0, rows, elements) || !checked_mul(ne0 / r->block, r->bytes, row_bytes) || !checked_mul(row_bytes, rows, bytes)) {
    why = "ne " + dims + " overflows 64 bits in " + name + " bytes";
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
  const quant::TypeInfo* ti = quant::find(t.type);
  if (!ti)
    throw FormatError(path(), "tensor " + gguf_detail::quote_name(t.name) + ": type " + quant::ggml_type_name(t.type) +
                                  " is not supported (vkquant reads " + quant::supported_names() + ")",
                      t.offset);
  std::vector<float> out(t.elements());
  quant::dequantize(ti->type, data(t), out);  // sizes were checked at open()
  return out;
}

// --- writers' helpers: the block formats of quant::quantize -------------------------

namespace {

std::vector<std::byte> quantized(quant::Type type, std::span<const float> x) {
  std::vector<std::byte> out(quant::row_bytes(type, x.size()));
  quant::quantize(type, x, out);
  return out;
}

}  // namespace

std::vector<std::byte> quantize_q8_0(std::span<const float> x) { return quantized(quant::Type::q8_0, x); }
std::vector<std::byte> quantize_q4_0(std::span<const float> x) { return quantized(quant::Type::q4_0, x); }
std::vector<std::byte> to_f16_bytes(std::span<const float> x) { return quantized(quant::Type::f16, x); }
std::vector<std::byte> to_bf16_bytes(std::span<const float> x) { return quantized(quant::Type::bf16, x); }

}  // namespace vkq
