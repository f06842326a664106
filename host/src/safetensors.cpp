#include "vkquant/safetensors.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "vkquant/atomic_file.hpp"
#include "vkquant/half.hpp"
#include "vkquant/json_strict.hpp"

namespace vkq {

namespace {
struct DTypeRow {
  DType type;
  const char* name;
  std::uint32_t size;
};
constexpr std::array<DTypeRow, 15> kDTypes{{
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4},         {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8},         {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},   {DType::I8, "I8", 1},           {DType::U64, "U64", 8},
    {DType::U32, "U32", 4},   {DType::U16, "U16", 2},         {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
}};
constexpr std::size_t kMaxNameBytes = 4096;
constexpr std::size_t kMaxRank = 16;
}  // namespace

const char* dtype_name(DType t) { return kDTypes[std::size_t(t)].name; }
std::uint32_t dtype_size(DType t) { return kDTypes[std::size_t(t)].size; }
std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& row : kDTypes)
    if (name == row.name) return row.type;
  return std::nullopt;
}

bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
bool checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }

std::uint64_t TensorInfo::elements() const {
  std::uint64_t n = 1;
  for (auto s : shape) n *= s;  // validated at load: cannot overflow
  return n;
}

// --- reading ----------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const auto bytes = f.file_.bytes();
  const std::uint64_t size = bytes.size();
  auto fail = [&](const std::string& what, std::uint64_t at = FormatError::kNoOffset) -> FormatError {
    return FormatError(path, what, at);
  };
  if (size < 8) throw fail("truncated safetensors file: " + std::to_string(size) + " bytes, the header length alone needs 8");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::uint64_t(bytes[std::size_t(i)]);
  if (n < 2) throw fail("safetensors header length " + std::to_string(n) + " is too small for a JSON object", 0);
  if (n > kMaxHeaderBytes)
    throw fail("safetensors header length " + std::to_string(n) + " exceeds the " + std::to_string(kMaxHeaderBytes) + "-byte cap", 0);
  if (n > size - 8)
    throw fail("safetensors header length " + std::to_string(n) + " runs past the end of the " + std::to_string(size) +
                   "-byte file", 0);
  f.header_bytes_ = n;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, std::size_t(n));
  const nlohmann::json header = parse_json_strict(path, text, 8);
  if (!header.is_object()) throw fail("safetensors header is not a JSON object", 8);

  const std::uint64_t data_start = 8 + n, data_size = size - data_start;
  struct Span {
    std::uint64_t begin, end;
    std::size_t index;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("\"__metadata__\" is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw fail("\"__metadata__\" value of \"" + k + "\" is not a string");
        f.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    // init-capture: clang < 16 cannot capture a structured binding
    auto tfail = [&, &tname = name](const std::string& what) { return fail("tensor \"" + tname + "\": " + what); };
    if (name.empty()) throw fail("a tensor has an empty name");
    if (name.size() > kMaxNameBytes) throw fail("a tensor name is " + std::to_string(name.size()) + " bytes long (limit " + std::to_string(kMaxNameBytes) + ")");
    if (name.find('\0') != std::string::npos) throw fail("a tensor name contains a NUL byte");
    if (!entry.is_object()) throw tfail("entry is not an object");
    const auto dt = entry.find("dtype");
    const auto sh = entry.find("shape");
    const auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) throw tfail("missing or non-string \"dtype\"");
    if (sh == entry.end() || !sh->is_array()) throw tfail("missing or non-array \"shape\"");
    if (off == entry.end() || !off->is_array() || off->size() != 2) throw tfail("\"data_offsets\" is not a [begin, end] pair");
    TensorInfo t;
    t.name = name;
    const auto type = dtype_from_name(dt->get<std::string>());
    if (!type) throw tfail("unknown dtype \"" + dt->get<std::string>() + "\"");
    t.dtype = *type;
    if (sh->size() > kMaxRank) throw tfail("rank " + std::to_string(sh->size()) + " exceeds " + std::to_string(kMaxRank));
    std::uint64_t elements = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) throw tfail("shape entries must be non-negative integers, got " + d.dump());
      const auto v = d.get<std::uint64_t>();
      if (!checked_mul(elements, v, elements)) throw tfail("shape " + sh->dump() + " overflows 64 bits");
      t.shape.push_back(v);
    }
    std::uint64_t want = 0;
    if (!checked_mul(elements, dtype_size(t.dtype), want)) throw tfail("shape " + sh->dump() + " overflows 64 bits in bytes");
    for (const auto& o : *off)
      if (!o.is_number_unsigned()) throw tfail("data_offsets must be non-negative integers, got " + off->dump());
    const auto begin = (*off)[0].get<std::uint64_t>(), end = (*off)[1].get<std::uint64_t>();
    if (begin > end) throw tfail("data_offsets " + off->dump() + " end before they begin");
    if (end > data_size)
      throw tfail("data_offsets " + off->dump() + " run past the end of the data (" + std::to_string(data_size) + " bytes)");
    if (end - begin != want)
      throw tfail("data_offsets " + off->dump() + " span " + std::to_string(end - begin) + " bytes but " + dt->get<std::string>() +
                  " " + sh->dump() + " needs " + std::to_string(want));
    if (begin % dtype_size(t.dtype) != 0)
      throw tfail("data offset " + std::to_string(begin) + " is not aligned to its " + std::to_string(dtype_size(t.dtype)) + "-byte elements");
    t.offset = data_start + begin;
    t.bytes = want;
    spans.push_back({begin, end, f.tensors_.size()});
    f.tensors_.push_back(std::move(t));
  }
  // The data section must be covered exactly: no overlap, no gap, no tail.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  std::uint64_t cursor = 0;
  for (const auto& s : spans) {
    const auto& t = f.tensors_[s.index];
    if (s.begin < cursor) throw fail("tensor \"" + t.name + "\" overlaps the previous tensor's bytes", data_start + s.begin);
    if (s.begin > cursor) throw fail("gap of " + std::to_string(s.begin - cursor) + " bytes before tensor \"" + t.name + "\"", data_start + cursor);
    cursor = s.end;
  }
  if (cursor != data_size)
    throw fail(std::to_string(data_size - cursor) + " bytes after the last tensor belong to no tensor", data_start + cursor);
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) { return a.offset < b.offset; });
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& SafetensorsFile::at(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw FormatError(path(), "no tensor named \"" + std::string(name) + "\"");
}

std::vector<float> SafetensorsFile::to_float(const TensorInfo& t) const {
  const auto src = data(t);
  const std::uint64_t n = t.elements();
  std::vector<float> out(n);
  switch (t.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out.data(), src.data(), n * 4);  // an empty vector's data() may be null
      break;
    case DType::F64:
      for (std::uint64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, src.data() + 8 * i, 8);
        out[i] = float(v);
      }
      break;
    case DType::F16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src.data() + 2 * i, 2);
        out[i] = from_half(h);
      }
      break;
    case DType::BF16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src.data() + 2 * i, 2);
        out[i] = std::bit_cast<float>(std::uint32_t(h) << 16);
      }
      break;
    default:
      throw FormatError(path(), "tensor \"" + t.name + "\": dtype " + dtype_name(t.dtype) + " cannot be read as floats");
  }
  return out;
}

// --- writing ----------------------------------------------------------------

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::uint64_t n = 1;
    for (auto s : t.shape) n *= s;
    if (n * dtype_size(t.dtype) != t.data.size())
      throw Error(path.string() + ": tensor \"" + t.name + "\" has " + std::to_string(t.data.size()) + " bytes, its shape needs " +
                  std::to_string(n * dtype_size(t.dtype)));
    if (header.contains(t.name)) throw Error(path.string() + ": tensor \"" + t.name + "\" given twice");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  std::string out;
  out.reserve(8 + json.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(char((std::uint64_t(json.size()) >> (8 * i)) & 0xff));
  out += json;
  for (const auto& t : tensors) out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  write_file_atomic(path, out);
}

TensorWrite f32_tensor(std::string name, std::vector<std::uint64_t> shape, std::span<const float> values) {
  return {std::move(name), DType::F32, std::move(shape), std::as_bytes(values)};
}

TensorWrite f16_tensor(std::string name, std::vector<std::uint64_t> shape, std::span<const float> values) {
  auto bytes = std::make_shared<std::vector<std::byte>>(values.size() * 2);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const half_bits h = to_half(values[i]);
    std::memcpy(bytes->data() + 2 * i, &h, 2);
  }
  const std::span<const std::byte> view(*bytes);  // the heap bytes stay put when the pointer moves
  return {std::move(name), DType::F16, std::move(shape), view, std::move(bytes)};
}

}  // namespace vkq
