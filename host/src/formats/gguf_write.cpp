// GGUF writing of tensors held in memory: the streaming writer
// (formats/gguf_stream.cpp) fed one tensor after another.
#include "gguf_internal.hpp"
#include "vkquant/error.hpp"
#include "vkquant/tensor_stream.hpp"

namespace vkq {

void write_gguf(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorWrite>& tensors, std::uint32_t alignment, std::uint32_t version) {
  std::vector<GgufSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& t : tensors) specs.push_back({t.name, t.type, t.ne});
  // Checks the metadata and every tensor's name, shape and type, opens the temp file.
  GgufStreamWriter w = GgufStreamWriter::open(path, metadata, std::move(specs), alignment, version);
  for (const auto& t : tensors) {
    std::uint64_t bytes = 0;
    std::string why;
    gguf_detail::tensor_bytes(t.type, t.ne, bytes, why);  // known to succeed: open() checked it
    if (bytes != t.data.size())
      throw Error(path.string() + ": tensor " + gguf_detail::quote_name(t.name) + " has " + std::to_string(t.data.size()) +
                  " bytes, its type and shape need " + std::to_string(bytes));
    w.write(t.data);
  }
  w.commit();
}

}  // namespace vkq
