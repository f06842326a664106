// safetensors files: an 8-byte little-endian header length, a JSON header
// mapping tensor names to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" string map), then the tensors' bytes. Reading maps the file
// and validates every field before any tensor byte is touched (docs/design.md §8).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vkquant/mapped_file.hpp"

namespace vkq {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

const char* dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
std::uint32_t dtype_size(DType t);  // bytes per element

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
  std::uint64_t offset = 0;  // from the start of the file
  std::uint64_t bytes = 0;
  std::uint64_t elements() const;
};

class SafetensorsFile {
 public:
  // Header length caps (the format's own reference implementation uses 100 MB).
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  // Maps and validates `path`; throws vkq::FormatError naming the file, the
  // tensor or key and the byte offset.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file order
  const TensorInfo* find(std::string_view name) const;
  const TensorInfo& at(std::string_view name) const;  // throws FormatError when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::span<const std::byte> data(const TensorInfo& t) const { return file_.bytes().subspan(t.offset, t.bytes); }
  const MappedFile& mapping() const { return file_; }
  // The tensor converted to fp32 (F64, F32, F16 and BF16 only).
  std::vector<float> to_float(const TensorInfo& t) const;
  std::uint64_t header_bytes() const { return header_bytes_; }

 private:
  MappedFile file_;
  std::uint64_t header_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: its bytes must hold elements(shape) * dtype_size(dtype).
struct TensorWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
  std::span<const std::byte> data;
  // Holds the bytes `data` views when they were made for the write (a
  // conversion, as f16_tensor's); null when `data` views the caller's memory.
  std::shared_ptr<const std::vector<std::byte>> owned;
};

// Writes a safetensors file atomically (temp file, fsync, rename); tensors
// keep the given order. Throws vkq::Error on an inconsistent tensor.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Convenience for fp32 tensors (viewing `values`, which must outlive the write).
TensorWrite f32_tensor(std::string name, std::vector<std::uint64_t> shape, std::span<const float> values);

// `values` rounded to fp16 (nearest even), owned by the returned TensorWrite.
TensorWrite f16_tensor(std::string name, std::vector<std::uint64_t> shape, std::span<const float> values);

// Checked arithmetic for sizes read from files: false on overflow.
bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out);
bool checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out);

}  // namespace vkq
