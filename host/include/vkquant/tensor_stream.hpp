// Streaming writers for safetensors and GGUF: the header is written from the
// tensors' names, types and shapes alone, then each tensor's bytes are
// appended in pieces, in the declared order. Memory stays bounded by the
// caller's pieces, not by the model (write_safetensors / write_gguf take whole
// tensors). Both write through AtomicFile: nothing appears at the path until
// commit(), which refuses a file whose tensors did not get all their bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vkquant/atomic_file.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq {

// A safetensors tensor declared before its bytes: shape row-major, outermost first.
struct SafetensorsSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
};

// Bytes a safetensors header takes for `tensors` and `metadata` (the 8-byte
// length included, padded as the writer pads it): the data start offset.
std::uint64_t safetensors_header_bytes(const std::vector<SafetensorsSpec>& tensors,
                                       const std::map<std::string, std::string>& metadata = {});

class SafetensorsStreamWriter {
 public:
  // Opens `path` and writes the header; tensors keep the given order. Throws
  // vkq::Error on a duplicate name or a byte count that overflows.
  static SafetensorsStreamWriter open(const std::filesystem::path& path, std::vector<SafetensorsSpec> tensors,
                                      const std::map<std::string, std::string>& metadata = {});

  // Appends bytes of the tensors in order (a piece may span tensors); throws
  // vkq::Error past the last tensor's end.
  void write(std::span<const std::byte> bytes);
  // Index of the tensor the next byte belongs to (tensors().size() when all are written).
  std::size_t current() const;
  const std::vector<SafetensorsSpec>& tensors() const { return tensors_; }
  // Bytes of the whole file once complete.
  std::uint64_t file_bytes() const { return data_start_ + data_bytes_; }
  // Checks every tensor is complete, then makes the file appear (AtomicFile::commit).
  void commit();

 private:
  SafetensorsStreamWriter(AtomicFile file) : file_(std::move(file)) {}
  AtomicFile file_;
  std::vector<SafetensorsSpec> tensors_;
  std::vector<std::uint64_t> ends_;  // data offset where each tensor ends
  std::uint64_t data_start_ = 0, data_bytes_ = 0, written_ = 0;
};

// A GGUF tensor declared before its bytes: ne in ggml order (ne[0] innermost).
struct GgufSpec {
  std::string name;
  std::uint32_t type = 0;
  std::vector<std::uint64_t> ne;
};

class GgufStreamWriter {
 public:
  // Opens `path`, checks metadata and tensors as write_gguf does and writes
  // everything up to the first tensor's data. Throws vkq::Error.
  static GgufStreamWriter open(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                               std::vector<GgufSpec> tensors, std::uint32_t alignment = 32, std::uint32_t version = 3);

  // Appends bytes of the tensors in order; the padding between tensors is
  // written here. Throws vkq::Error past the last tensor's end.
  void write(std::span<const std::byte> bytes);
  std::size_t current() const;
  const std::vector<GgufSpec>& tensors() const { return tensors_; }
  std::uint64_t file_bytes() const { return data_start_ + data_bytes_; }
  void commit();

 private:
  GgufStreamWriter(AtomicFile file) : file_(std::move(file)) {}
  AtomicFile file_;
  std::vector<GgufSpec> tensors_;
  std::vector<std::uint64_t> begins_, sizes_;  // data offset and byte count of each tensor
  std::uint64_t alignment_ = 32, data_start_ = 0, data_bytes_ = 0;
  std::size_t cur_ = 0;
  std::uint64_t cur_done_ = 0;
};

}  // namespace vkq
