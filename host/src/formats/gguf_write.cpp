// GGUF writing: refuses anything the reader would refuse, then writes the
// whole file through write_file_atomic.
#include <bit>
#include <cstring>
#include <set>

#include "gguf_internal.hpp"
#include "vkquant/atomic_file.hpp"

namespace vkq {

namespace {

class Out {
 public:
  template <typename T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s.append(b, sizeof(T));
  }
  void str(std::string_view v) {
    put(std::uint64_t(v.size()));
    s.append(v);
  }
  void pad_to(std::uint64_t alignment) { s.append((alignment - s.size() % alignment) % alignment, '\0'); }
  std::string s;
};

void put_scalar(Out& o, GgufType t, std::uint64_t u, std::int64_t i, double d) {
  switch (t) {
    case GgufType::u8: o.put(std::uint8_t(u)); break;
    case GgufType::u16: o.put(std::uint16_t(u)); break;
    case GgufType::u32: o.put(std::uint32_t(u)); break;
    case GgufType::u64: o.put(std::uint64_t(u)); break;
    case GgufType::i8: o.put(std::int8_t(i)); break;
    case GgufType::i16: o.put(std::int16_t(i)); break;
    case GgufType::i32: o.put(std::int32_t(i)); break;
    case GgufType::i64: o.put(std::int64_t(i)); break;
    case GgufType::f32: o.put(float(d)); break;
    case GgufType::f64: o.put(d); break;
    default: break;
  }
}

// Writes a value already checked by check_value().
void put_value(Out& o, const GgufValue& v) {
  o.put(std::uint32_t(v.type));
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::uint64_t>) put_scalar(o, v.type, x, 0, 0);
        else if constexpr (std::is_same_v<T, std::int64_t>) put_scalar(o, v.type, 0, x, 0);
        else if constexpr (std::is_same_v<T, double>) put_scalar(o, v.type, 0, 0, x);
        else if constexpr (std::is_same_v<T, bool>) o.put(std::uint8_t(x ? 1 : 0));
        else if constexpr (std::is_same_v<T, std::string>) o.str(x);
        else {
          o.put(std::uint32_t(v.elem));
          o.put(std::uint64_t(x.size()));
          for (const auto& e : x) {
            using E = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<E, std::uint64_t>) put_scalar(o, v.elem, e, 0, 0);
            else if constexpr (std::is_same_v<E, std::int64_t>) put_scalar(o, v.elem, 0, e, 0);
            else if constexpr (std::is_same_v<E, double>) put_scalar(o, v.elem, 0, 0, e);
            else if constexpr (std::is_same_v<E, std::string>) o.str(e);
            else o.put(std::uint8_t(e ? 1 : 0));  // vector<bool>'s proxy
          }
        }
      },
      v.v);
}

}  // namespace

void write_gguf(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorWrite>& tensors, std::uint32_t alignment, std::uint32_t version) {
  using namespace gguf_detail;
  auto fail = [&](const std::string& what) { return Error(path.string() + ": " + what); };
  if (version != 2 && version != 3) throw fail("GGUF version " + std::to_string(version) + " cannot be written (2 or 3)");
  if (alignment == 0 || !std::has_single_bit(alignment) || alignment > (1u << 30))
    throw fail("alignment " + std::to_string(alignment) + " is not a power of two up to 2^30");

  std::set<std::string, std::less<>> keys;
  bool has_alignment = false;
  for (const auto& [key, v] : metadata) {
    if (key.empty() || key.size() > GgufFile::kMaxKey || key.find('\0') != std::string::npos)
      throw fail("metadata key " + quote_name(key) + " is empty, longer than 65535 bytes or holds a NUL byte");
    if (!keys.insert(key).second) throw fail("metadata key " + quote_name(key) + " given twice");
    if (const std::string why = check_value(v); !why.empty()) throw fail("metadata key " + quote_name(key) + ": " + why);
    if (key == "general.alignment") {
      const auto* a = std::get_if<std::uint64_t>(&v.v);
      if (!a || *a != alignment)
        throw fail("metadata general.alignment (" + gguf_value_summary(v) + ") disagrees with the alignment " + std::to_string(alignment));
      has_alignment = true;
    }
  }
  const bool add_alignment = !has_alignment && alignment != GgufFile::kDefaultAlignment;

  Out o;
  o.s.append(kMagic, 4);
  o.put(version);
  o.put(std::uint64_t(tensors.size()));
  o.put(std::uint64_t(metadata.size() + (add_alignment ? 1 : 0)));
  for (const auto& [key, v] : metadata) {
    o.str(key);
    put_value(o, v);
  }
  if (add_alignment) {
    o.str("general.alignment");
    put_value(o, gguf_uint(alignment, GgufType::u32));
  }

  std::set<std::string, std::less<>> names;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::string tw = "tensor " + quote_name(t.name);
    if (t.name.empty() || t.name.size() > GgufFile::kMaxTensorName || t.name.find('\0') != std::string::npos)
      throw fail(tw + ": the name is empty, longer than " + std::to_string(GgufFile::kMaxTensorName) + " bytes or holds a NUL byte");
    if (!names.insert(t.name).second) throw fail(tw + " given twice");
    if (t.ne.size() > GgufFile::kMaxDims) throw fail(tw + ": " + std::to_string(t.ne.size()) + " dimensions, more than 4");
    std::uint64_t bytes = 0;
    std::string why;
    if (!tensor_bytes(t.type, t.ne, bytes, why)) throw fail(tw + ": " + why);
    if (bytes != t.data.size())
      throw fail(tw + " has " + std::to_string(t.data.size()) + " bytes, its type and shape need " + std::to_string(bytes));
    o.str(t.name);
    o.put(std::uint32_t(t.ne.size()));
    for (auto d : t.ne) o.put(d);
    o.put(t.type);
    o.put(offset);
    offset += (bytes + alignment - 1) / alignment * alignment;
  }
  o.pad_to(alignment);
  o.s.reserve(o.s.size() + offset);
  for (const auto& t : tensors) {
    o.s.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    o.pad_to(alignment);
  }
  write_file_atomic(path, o.s);
}

}  // namespace vkq
