// GGUF v2/v3 model files (ggml's format, docs/gguf.md of ggml-org/ggml): a
// header (magic "GGUF", version, tensor and key counts), typed metadata
// key/value pairs, tensor infos (name, ggml-order dims, ggml type, offset),
// padding to the alignment, then the tensors' bytes. Little-endian only.
//
// Reading maps the file and validates every count, length, dimension and
// offset with overflow-safe arithmetic before anything is allocated or read
// (docs/design.md §8): a count is refused unless the bytes left in the file could
// hold that many items, so what a file makes us allocate is a small constant
// multiple of its size. Refused with vkq::FormatError(file, what, offset):
// GGUF v1 (32-bit counts), big-endian files, nested arrays, unknown value or
// ggml types, bools other than 0/1, empty keys or keys over 65535 bytes,
// tensor names empty, over kMaxTensorName bytes or holding NUL, duplicate
// keys or tensor names, more than 4 dims, a zero dim, shapes whose element
// or byte count overflows 64 bits, block types whose ne[0] is not a multiple
// of the block, offsets not a multiple of the alignment, tensors overlapping
// or running past the end, and an alignment that is not a power of two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "vkquant/mapped_file.hpp"

namespace vkq {

enum class GgufType : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12
};

// A few ggml type ids by name, for writers and tests. The full list, and
// which of them to_float() decodes, is vkq::quant (quant::Type, quant::find):
// F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS.
// open() accepts every type ggml defines (IQ2_XXS, TQ1_0, ...) so tools can
// list such files; to_float() refuses the ones vkquant does not read.
enum class GgmlType : std::uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30 };

// "F32", "Q4_K", "IQ2_XXS", ...; "type 77" for an id ggml does not define
// (quant::ggml_type_name).
const char* ggml_type_name(std::uint32_t type);
// Elements per block and bytes per block of a ggml type; nullopt when unknown
// (quant::ggml_block_layout).
std::optional<std::pair<std::uint32_t, std::uint32_t>> ggml_block_layout(std::uint32_t type);
// "u8", "string", "array", ...; "unknown" for an undefined id.
const char* gguf_type_name(GgufType type);

// One metadata value. Scalars: unsigned types (u8..u64) hold uint64_t, signed
// types int64_t, f32/f64 double, boolean bool, string std::string. Arrays
// (type == array) hold the vector of `elem`'s scalar representation; nested
// arrays are refused (ggml's own reader refuses them too).
struct GgufValue {
  GgufType type = GgufType::u8;
  GgufType elem = GgufType::u8;  // arrays only
  std::variant<std::uint64_t, std::int64_t, double, bool, std::string, std::vector<std::uint64_t>, std::vector<std::int64_t>,
               std::vector<double>, std::vector<std::string>, std::vector<bool>>
      v;
};

// Value builders for writers (the type picks the width written).
GgufValue gguf_uint(std::uint64_t v, GgufType type = GgufType::u32);
GgufValue gguf_int(std::int64_t v, GgufType type = GgufType::i32);
GgufValue gguf_float(double v, GgufType type = GgufType::f32);
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
GgufValue gguf_uint_array(std::vector<std::uint64_t> v, GgufType elem = GgufType::u32);
GgufValue gguf_int_array(std::vector<std::int64_t> v, GgufType elem = GgufType::i32);
GgufValue gguf_float_array(std::vector<double> v, GgufType elem = GgufType::f32);
GgufValue gguf_bool_array(std::vector<bool> v);
GgufValue gguf_string_array(std::vector<std::string> v);

// One line for listings: a top-level string as is (control bytes escaped,
// long strings cut with "..."), numbers in shortest round-trip form, arrays
// as `[string × 32000: "<unk>", "<s>", ...]` showing at most max_items.
std::string gguf_value_summary(const GgufValue& v, std::size_t max_items = 8);

struct GgufTensorInfo {
  std::string name;
  std::uint32_t type = 0;         // ggml type id
  std::vector<std::uint64_t> ne;  // ggml order: ne[0] is the innermost (contiguous) dimension
  std::uint64_t offset = 0;       // absolute file offset of the data
  std::uint64_t bytes = 0;
  std::uint64_t elements() const;
};

class GgufFile {
 public:
  static constexpr std::uint32_t kMaxDims = 4;             // GGML_MAX_DIMS
  static constexpr std::size_t kMaxTensorName = 256;       // the spec says 64; some converters exceed it
  static constexpr std::size_t kMaxKey = 65535;            // the spec's limit
  static constexpr std::uint64_t kDefaultAlignment = 32;

  // Maps and validates `path`; throws vkq::FormatError naming the file, the
  // key or tensor and the byte offset (vkq::Error when it cannot be opened).
  static GgufFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  const MappedFile& mapping() const { return file_; }
  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }  // file order
  const GgufValue* find(std::string_view key) const;

  // Typed getters: nullopt when the key is absent; FormatError naming the key
  // when present with an incompatible type. Integers of any width convert
  // when the value fits; get_float accepts any numeric scalar.
  std::optional<std::uint64_t> get_uint(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<std::vector<std::string>> get_strings(std::string_view key) const;
  std::optional<std::vector<double>> get_floats(std::string_view key) const;       // any numeric array
  std::optional<std::vector<std::int64_t>> get_ints(std::string_view key) const;   // any integer array

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // file order
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping.
  std::span<const std::byte> data(const GgufTensorInfo& t) const;
  // Dequantized to fp32 in storage order, bit-identical with ggml's
  // to_float (quant::dequantize); FormatError naming the tensor and its type
  // for a type vkquant does not read (quant::find returns nullptr).
  std::vector<float> to_float(const GgufTensorInfo& t) const;

 private:
  [[noreturn]] void type_error(std::string_view key, const GgufValue& v, const char* wanted) const;
  std::uint64_t value_offset(std::string_view key) const;

  MappedFile file_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = kDefaultAlignment;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<std::uint64_t> value_offsets_;  // byte offset of each metadata value
  std::map<std::string, std::size_t, std::less<>> key_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

// A tensor to write: data must hold exactly the bytes its type and ne need.
struct GgufTensorWrite {
  std::string name;
  std::uint32_t type = 0;
  std::vector<std::uint64_t> ne;  // ggml order
  std::span<const std::byte> data;
};

// Writes a GGUF file (version 2 or 3; same layout) atomically (temp file,
// fsync, rename). Tensor data is placed at multiples of `alignment` (a power
// of two); general.alignment is added when alignment ≠ 32 and is not given
// (a given one must agree). Throws vkq::Error on anything a reader refuses.
void write_gguf(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorWrite>& tensors, std::uint32_t alignment = 32, std::uint32_t version = 3);

// quant::quantize into a new buffer, for writers and tests: Q8_0 and Q4_0
// blocks as ggml's reference quantizers write them (x.size() a multiple of
// 32, every value finite; vkq::Error otherwise).
std::vector<std::byte> quantize_q8_0(std::span<const float> x);
std::vector<std::byte> quantize_q4_0(std::span<const float> x);
// fp32 → IEEE fp16 / bfloat16 bytes (round to nearest even, as ggml).
std::vector<std::byte> to_f16_bytes(std::span<const float> x);
std::vector<std::byte> to_bf16_bytes(std::span<const float> x);

}  // namespace vkq
