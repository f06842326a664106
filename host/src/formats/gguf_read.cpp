// GGUF reading: every field is bounds- and overflow-checked before use.
#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>

#include "gguf_internal.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq {

using gguf_detail::quote_name;

namespace {

// A little-endian cursor over the mapping; every read checks the bytes left.
class Cursor {
 public:
  Cursor(const std::filesystem::path& file, std::span<const std::byte> bytes) : file_(file), bytes_(bytes) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t left() const { return bytes_.size() - pos_; }

  FormatError error(const std::string& what, std::uint64_t at) const { return FormatError(file_, what, at); }
  FormatError error(const std::string& what) const { return error(what, pos_); }

  void need(std::uint64_t n, const std::string& what) const {
    if (n > left())
      throw error("truncated: " + what + " needs " + std::to_string(n) + " bytes but the file ends " + std::to_string(left()) +
                  " bytes later");
  }
  template <typename T>
  T scalar(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::uint32_t u32(const std::string& what) { return scalar<std::uint32_t>(what); }
  std::uint64_t u64(const std::string& what) { return scalar<std::uint64_t>(what); }

  // A length-prefixed string of at most `max` bytes.
  std::string_view str(const std::string& what, std::uint64_t max) {
    const std::uint64_t at = pos_;
    const std::uint64_t n = u64(what + " length");
    if (n > max) throw error(what + " length " + std::to_string(n) + " exceeds the " + std::to_string(max) + "-byte limit", at);
    need(n, what);
    const std::string_view s(reinterpret_cast<const char*>(bytes_.data() + pos_), std::size_t(n));
    pos_ += n;
    return s;
  }

 private:
  const std::filesystem::path& file_;
  std::span<const std::byte> bytes_;
  std::uint64_t pos_ = 0;
};

// Reads `count` scalars of `t` into the vector representation GgufValue uses.
template <typename Out>
std::vector<Out> read_scalars(Cursor& c, GgufType t, std::uint64_t count, const std::string& what) {
  std::vector<Out> out;
  out.reserve(std::size_t(count));  // the caller checked count * size <= bytes left
  for (std::uint64_t i = 0; i < count; ++i) {
    switch (t) {
      case GgufType::u8: out.push_back(Out(c.scalar<std::uint8_t>(what))); break;
      case GgufType::i8: out.push_back(Out(c.scalar<std::int8_t>(what))); break;
      case GgufType::u16: out.push_back(Out(c.scalar<std::uint16_t>(what))); break;
      case GgufType::i16: out.push_back(Out(c.scalar<std::int16_t>(what))); break;
      case GgufType::u32: out.push_back(Out(c.scalar<std::uint32_t>(what))); break;
      case GgufType::i32: out.push_back(Out(c.scalar<std::int32_t>(what))); break;
      case GgufType::u64: out.push_back(Out(c.scalar<std::uint64_t>(what))); break;
      case GgufType::i64: out.push_back(Out(c.scalar<std::int64_t>(what))); break;
      case GgufType::f32: out.push_back(Out(c.scalar<float>(what))); break;
      case GgufType::f64: out.push_back(Out(c.scalar<double>(what))); break;
      default: break;
    }
  }
  return out;
}

std::vector<bool> read_bools(Cursor& c, std::uint64_t count, const std::string& what) {
  std::vector<bool> out;
  out.reserve(std::size_t(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t at = c.pos();
    const auto b = c.scalar<std::uint8_t>(what);
    if (b > 1) throw c.error(what + ": bool byte is " + std::to_string(b) + ", not 0 or 1", at);
    out.push_back(b == 1);
  }
  return out;
}

// One scalar or array value of type `type` (already read) for key `key`.
GgufValue read_value(Cursor& c, std::uint32_t type, const std::string& key, std::uint64_t type_at) {
  using namespace gguf_detail;
  const std::string what = "key " + quote_name(key);
  if (!is_known(type)) throw c.error(what + ": unknown value type " + std::to_string(type), type_at);
  GgufValue v;
  v.type = GgufType(type);
  if (v.type == GgufType::string) {
    v.v = std::string(c.str(what + " string value", std::numeric_limits<std::uint64_t>::max()));
  } else if (v.type == GgufType::boolean) {
    v.v = read_bools(c, 1, what)[0];
  } else if (is_unsigned(v.type)) {
    v.v = read_scalars<std::uint64_t>(c, v.type, 1, what)[0];
  } else if (is_signed(v.type)) {
    v.v = read_scalars<std::int64_t>(c, v.type, 1, what)[0];
  } else if (is_float(v.type)) {
    v.v = read_scalars<double>(c, v.type, 1, what)[0];
  } else {  // array
    const std::uint64_t elem_at = c.pos();
    const std::uint32_t elem = c.u32(what + " array element type");
    if (elem == std::uint32_t(GgufType::array)) throw c.error(what + ": nested arrays are not supported", elem_at);
    if (!is_known(elem)) throw c.error(what + ": unknown array element type " + std::to_string(elem), elem_at);
    v.elem = GgufType(elem);
    const std::uint64_t len_at = c.pos();
    const std::uint64_t n = c.u64(what + " array length");
    const std::uint64_t min_bytes = v.elem == GgufType::string ? 8 : scalar_size(v.elem);  // a string is at least its length
    if (n > c.left() / min_bytes)
      throw c.error(what + ": array of " + std::to_string(n) + " " + gguf_type_name(v.elem) + " cannot fit in the " +
                        std::to_string(c.left()) + " bytes left in the file",
                    len_at);
    const std::string ewhat = what + " array element";
    if (v.elem == GgufType::string) {
      std::vector<std::string> s;
      s.reserve(std::size_t(n));
      for (std::uint64_t i = 0; i < n; ++i) s.emplace_back(c.str(ewhat + " " + std::to_string(i), std::numeric_limits<std::uint64_t>::max()));
      v.v = std::move(s);
    } else if (v.elem == GgufType::boolean) {
      v.v = read_bools(c, n, ewhat);
    } else if (is_unsigned(v.elem)) {
      v.v = read_scalars<std::uint64_t>(c, v.elem, n, ewhat);
    } else if (is_signed(v.elem)) {
      v.v = read_scalars<std::int64_t>(c, v.elem, n, ewhat);
    } else {
      v.v = read_scalars<double>(c, v.elem, n, ewhat);
    }
  }
  return v;
}

}  // namespace

GgufFile GgufFile::open(const std::filesystem::path& path) {
  using namespace gguf_detail;
  GgufFile f;
  f.file_ = MappedFile::open(path);
  const auto bytes = f.file_.bytes();
  Cursor c(f.file_.path(), bytes);

  // --- header
  c.need(4, "the magic");
  if (std::memcmp(bytes.data(), kMagic, 4) != 0) throw c.error("not a GGUF file (the magic is not \"GGUF\")", 0);
  c.u32("the magic");
  const std::uint32_t version = c.u32("the version");
  if (version == 1) throw c.error("GGUF version 1 (32-bit counts) is not supported; convert the file to v3", 4);
  if (version != 2 && version != 3) {
    const std::uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3)
      throw c.error("big-endian GGUF (version reads as 0x" + [&] {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%08x", version);
        return std::string(buf);
      }() + ") is not supported; only little-endian files are read", 4);
    throw c.error("unsupported GGUF version " + std::to_string(version) + " (2 and 3 are read)", 4);
  }
  f.version_ = version;
  const std::uint64_t n_tensors = c.u64("the tensor count");
  const std::uint64_t n_kv = c.u64("the metadata key count");
  // Each key/value takes at least 14 bytes (length, 1-byte key, type, 1-byte
  // value) and each tensor info at least 25: refuse counts the file cannot hold.
  std::uint64_t min_kv = 0, min_tensors = 0, min_total = 0;
  if (!checked_mul(n_kv, 14, min_kv) || !checked_mul(n_tensors, 25, min_tensors) || !checked_add(min_kv, min_tensors, min_total) ||
      min_total > c.left())
    throw c.error(std::to_string(n_kv) + " metadata keys and " + std::to_string(n_tensors) + " tensors cannot fit in the " +
                      std::to_string(c.left()) + " bytes after the header",
                  8);

  // --- metadata
  f.metadata_.reserve(std::size_t(n_kv));
  f.value_offsets_.reserve(std::size_t(n_kv));
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const std::uint64_t key_at = c.pos();
    const std::string what = "metadata key #" + std::to_string(i);
    std::string key(c.str(what, kMaxKey));
    if (key.empty()) throw c.error(what + " is empty", key_at);
    if (key.find('\0') != std::string::npos) throw c.error(what + " " + quote_name(key) + " contains a NUL byte", key_at);
    if (f.key_index_.count(key)) throw c.error("duplicate metadata key " + quote_name(key), key_at);
    const std::uint64_t type_at = c.pos();
    const std::uint32_t type = c.u32("key " + quote_name(key) + " value type");
    f.value_offsets_.push_back(c.pos());
    GgufValue v = read_value(c, type, key, type_at);
    f.key_index_.emplace(key, f.metadata_.size());
    f.metadata_.emplace_back(std::move(key), std::move(v));
  }
  if (const auto it = f.key_index_.find("general.alignment"); it != f.key_index_.end()) {
    const GgufValue& v = f.metadata_[it->second].second;
    const std::uint64_t at = f.value_offsets_[it->second];
    const auto* a = std::get_if<std::uint64_t>(&v.v);
    if (!a || v.type == GgufType::array)
      throw c.error("key 'general.alignment' must be an unsigned integer, got " + std::string(gguf_type_name(v.type)), at);
    if (*a == 0 || !std::has_single_bit(*a) || *a > (std::uint64_t(1) << 30))
      throw c.error("key 'general.alignment' is " + std::to_string(*a) + ", not a power of two up to 2^30", at);
    f.alignment_ = *a;
  }

  // --- tensor infos
  std::vector<std::uint64_t> offset_at;  // where each tensor's offset field lies
  f.tensors_.reserve(std::size_t(n_tensors));
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    const std::uint64_t name_at = c.pos();
    const std::string what = "tensor #" + std::to_string(i) + " name";
    t.name = std::string(c.str(what, kMaxTensorName));
    if (t.name.empty()) throw c.error(what + " is empty", name_at);
    if (t.name.find('\0') != std::string::npos) throw c.error(what + " " + quote_name(t.name) + " contains a NUL byte", name_at);
    if (f.tensor_index_.count(t.name)) throw c.error("duplicate tensor name " + quote_name(t.name), name_at);
    const std::string tw = "tensor " + quote_name(t.name);
    const std::uint64_t dims_at = c.pos();
    const std::uint32_t n_dims = c.u32(tw + " dimension count");
    if (n_dims > kMaxDims)
      throw c.error(tw + ": " + std::to_string(n_dims) + " dimensions, more than ggml's " + std::to_string(kMaxDims), dims_at);
    for (std::uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(c.u64(tw + " dimension " + std::to_string(d)));
    const std::uint64_t type_at = c.pos();
    t.type = c.u32(tw + " type");
    if (!ggml_block_layout(t.type)) throw c.error(tw + ": unknown ggml type " + std::to_string(t.type), type_at);
    std::string why;
    if (!tensor_bytes(t.type, t.ne, t.bytes, why)) throw c.error(tw + ": " + why, dims_at);
    offset_at.push_back(c.pos());
    t.offset = c.u64(tw + " data offset");
    f.tensor_index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }

  // --- tensor data: aligned, inside the file, not overlapping
  std::uint64_t data_start = 0;
  if (!checked_add(c.pos(), f.alignment_ - 1, data_start)) throw c.error("the data section's start overflows 64 bits");
  data_start &= ~(f.alignment_ - 1);
  const std::uint64_t size = bytes.size();
  if (n_tensors > 0 && data_start > size)
    throw c.error("truncated: the tensor data should start at byte " + std::to_string(data_start) + " but the file has " +
                  std::to_string(size) + " bytes");
  for (std::size_t i = 0; i < f.tensors_.size(); ++i) {
    auto& t = f.tensors_[i];
    const std::string tw = "tensor " + quote_name(t.name);
    if (t.offset % f.alignment_ != 0)
      throw c.error(tw + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(f.alignment_),
                    offset_at[i]);
    std::uint64_t end = 0;
    if (t.offset > size - data_start || !checked_add(t.offset, t.bytes, end) || end > size - data_start)
      throw c.error(tw + ": data [" + std::to_string(t.offset) + ", +" + std::to_string(t.bytes) + ") runs past the end of the " +
                        std::to_string(size - data_start) + "-byte data section",
                    offset_at[i]);
    t.offset += data_start;
  }
  std::vector<std::size_t> order(f.tensors_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return f.tensors_[a].offset < f.tensors_[b].offset; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const auto& prev = f.tensors_[order[k - 1]];
    const auto& t = f.tensors_[order[k]];
    if (t.offset < prev.offset + prev.bytes)
      throw c.error("tensor " + quote_name(t.name) + " overlaps tensor " + quote_name(prev.name) + "'s bytes", offset_at[order[k]]);
  }
  return f;
}

// --- lookups -----------------------------------------------------------------

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::uint64_t GgufFile::value_offset(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? FormatError::kNoOffset : value_offsets_[it->second];
}

void GgufFile::type_error(std::string_view key, const GgufValue& v, const char* wanted) const {
  std::string got = gguf_type_name(v.type);
  if (v.type == GgufType::array) got = std::string("array of ") + gguf_type_name(v.elem);
  throw FormatError(path(), "key " + gguf_detail::quote_name(key) + ": expected " + wanted + ", got " + got + " " + gguf_value_summary(v, 3),
                    value_offset(key));
}

std::optional<std::uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::array) {
    if (const auto* u = std::get_if<std::uint64_t>(&v->v)) return *u;
    if (const auto* s = std::get_if<std::int64_t>(&v->v); s && *s >= 0) return std::uint64_t(*s);
  }
  type_error(key, *v, "a non-negative integer");
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::array) {
    if (const auto* d = std::get_if<double>(&v->v)) return *d;
    if (const auto* u = std::get_if<std::uint64_t>(&v->v)) return double(*u);
    if (const auto* s = std::get_if<std::int64_t>(&v->v)) return double(*s);
  }
  type_error(key, *v, "a number");
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* b = std::get_if<bool>(&v->v)) return *b;
  type_error(key, *v, "a bool");
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(&v->v)) return *s;
  type_error(key, *v, "a string");
}

std::optional<std::vector<std::string>> GgufFile::get_strings(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* s = std::get_if<std::vector<std::string>>(&v->v)) return *s;
  type_error(key, *v, "an array of strings");
}

std::optional<std::vector<double>> GgufFile::get_floats(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* d = std::get_if<std::vector<double>>(&v->v)) return *d;
  if (const auto* u = std::get_if<std::vector<std::uint64_t>>(&v->v)) return std::vector<double>(u->begin(), u->end());
  if (const auto* s = std::get_if<std::vector<std::int64_t>>(&v->v)) return std::vector<double>(s->begin(), s->end());
  type_error(key, *v, "an array of numbers");
}

std::optional<std::vector<std::int64_t>> GgufFile::get_ints(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (const auto* s = std::get_if<std::vector<std::int64_t>>(&v->v)) return *s;
  if (const auto* u = std::get_if<std::vector<std::uint64_t>>(&v->v)) {
    std::vector<std::int64_t> out;
    out.reserve(u->size());
    for (std::size_t i = 0; i < u->size(); ++i) {
      if ((*u)[i] > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
        throw FormatError(path(), "key " + gguf_detail::quote_name(key) + ": element " + std::to_string(i) + " (" + std::to_string((*u)[i]) +
                                      ") does not fit a signed 64-bit integer",
                          value_offset(key));
      out.push_back(std::int64_t((*u)[i]));
    }
    return out;
  }
  type_error(key, *v, "an array of integers");
}

}  // namespace vkq
