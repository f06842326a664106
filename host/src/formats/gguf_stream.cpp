// Streaming GGUF writer: metadata and tensor infos first, then each tensor's
// bytes appended in order with the alignment padding between them. Refuses
// anything the reader would refuse; write_gguf (gguf_write.cpp) is built on it.
#include <bit>
#include <cstring>
#include <set>

#include "gguf_internal.hpp"
#include "vkquant/error.hpp"
#include "vkquant/tensor_stream.hpp"

namespace vkq {

namespace {

struct Buf {
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
  std::string s;
};

void scalar(Buf& o, GgufType t, std::uint64_t u, std::int64_t i, double d) {
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
void value(Buf& o, const GgufValue& v) {
  o.put(std::uint32_t(v.type));
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::uint64_t>) scalar(o, v.type, x, 0, 0);
        else if constexpr (std::is_same_v<T, std::int64_t>) scalar(o, v.type, 0, x, 0);
        else if constexpr (std::is_same_v<T, double>) scalar(o, v.type, 0, 0, x);
        else if constexpr (std::is_same_v<T, bool>) o.put(std::uint8_t(x ? 1 : 0));
        else if constexpr (std::is_same_v<T, std::string>) o.str(x);
        else {
          o.put(std::uint32_t(v.elem));
          o.put(std::uint64_t(x.size()));
          for (const auto& e : x) {
            using E = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<E, std::uint64_t>) scalar(o, v.elem, e, 0, 0);
            else if constexpr (std::is_same_v<E, std::int64_t>) scalar(o, v.elem, 0, e, 0);
            else if constexpr (std::is_same_v<E, double>) scalar(o, v.elem, 0, 0, e);
            else if constexpr (std::is_same_v<E, std::string>) o.str(e);
            else o.put(std::uint8_t(e ? 1 : 0));
          }
        }
      },
      v.v);
}

}  // namespace

GgufStreamWriter GgufStreamWriter::open(const std::filesystem::path& path,
                                        const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                        std::vector<GgufSpec> tensors, std::uint32_t alignment, std::uint32_t version) {
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

  Buf o;
  o.s.append(kMagic, 4);
  o.put(version);
  o.put(std::uint64_t(tensors.size()));
  o.put(std::uint64_t(metadata.size() + (add_alignment ? 1 : 0)));
  for (const auto& [key, v] : metadata) {
    o.str(key);
    value(o, v);
  }
  if (add_alignment) {
    o.str("general.alignment");
    value(o, gguf_uint(alignment, GgufType::u32));
  }
  GgufStreamWriter w(AtomicFile::open(path));
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
    o.str(t.name);
    o.put(std::uint32_t(t.ne.size()));
    for (auto d : t.ne) o.put(d);
    o.put(t.type);
    o.put(offset);
    w.begins_.push_back(offset);
    w.sizes_.push_back(bytes);
    const std::uint64_t padded = (bytes + alignment - 1) / alignment * alignment;
    if (padded < bytes || !checked_add(offset, padded, offset)) throw fail(tw + ": file size overflows");
  }
  o.s.append((alignment - o.s.size() % alignment) % alignment, '\0');
  w.file_.write(o.s);
  w.tensors_ = std::move(tensors);
  w.alignment_ = alignment;
  w.data_start_ = o.s.size();
  w.data_bytes_ = offset;
  return w;
}

void GgufStreamWriter::write(std::span<const std::byte> bytes) {
  static const std::string zeros(4096, '\0');
  while (!bytes.empty()) {
    if (cur_ >= tensors_.size())
      throw Error(file_.path().string() + ": " + std::to_string(bytes.size()) + " bytes written past the last tensor");
    const std::uint64_t n = std::min<std::uint64_t>(bytes.size(), sizes_[cur_] - cur_done_);
    file_.write(std::string_view(reinterpret_cast<const char*>(bytes.data()), n));
    cur_done_ += n;
    bytes = bytes.subspan(n);
    if (cur_done_ == sizes_[cur_]) {  // the padding up to the next tensor (or the end)
      std::uint64_t pad = (alignment_ - sizes_[cur_] % alignment_) % alignment_;
      for (; pad > 0; pad -= std::min<std::uint64_t>(pad, zeros.size()))
        file_.write(std::string_view(zeros.data(), std::min<std::uint64_t>(pad, zeros.size())));
      ++cur_;
      cur_done_ = 0;
    }
  }
}

std::size_t GgufStreamWriter::current() const { return cur_; }

void GgufStreamWriter::commit() {
  // Tensors of zero bytes do not exist (ggml refuses a zero dim), so cur_ reaches the end.
  if (cur_ != tensors_.size())
    throw Error(file_.path().string() + ": tensor " + gguf_detail::quote_name(tensors_[cur_].name) + " is incomplete (" +
                std::to_string(sizes_[cur_] - cur_done_) + " of its bytes missing)");
  file_.commit();
}

}  // namespace vkq
