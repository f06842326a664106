// Streaming safetensors writer: header from the specs, bytes appended in order.
#include <set>

#include <nlohmann/json.hpp>

#include "vkquant/error.hpp"
#include "vkquant/tensor_stream.hpp"

namespace vkq {

namespace {

// The header JSON (padded with spaces to a multiple of 8, as write_safetensors
// pads it) and each tensor's end offset in the data section.
std::string header_json(const std::filesystem::path& path, const std::vector<SafetensorsSpec>& tensors,
                        const std::map<std::string, std::string>& metadata, std::vector<std::uint64_t>* ends) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::uint64_t n = dtype_size(t.dtype), end = 0;
    for (auto s : t.shape)
      if (!checked_mul(n, s, n)) throw Error(path.string() + ": tensor \"" + t.name + "\": byte count overflows");
    if (!checked_add(offset, n, end)) throw Error(path.string() + ": tensor \"" + t.name + "\": file size overflows");
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      throw Error(path.string() + ": tensor \"" + t.name + "\" given twice or named __metadata__");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
    if (ends) ends->push_back(end);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  return json;
}

}  // namespace

std::uint64_t safetensors_header_bytes(const std::vector<SafetensorsSpec>& tensors,
                                       const std::map<std::string, std::string>& metadata) {
  return 8 + header_json("(size)", tensors, metadata, nullptr).size();
}

SafetensorsStreamWriter SafetensorsStreamWriter::open(const std::filesystem::path& path, std::vector<SafetensorsSpec> tensors,
                                                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::uint64_t> ends;
  const std::string json = header_json(path, tensors, metadata, &ends);
  SafetensorsStreamWriter w(AtomicFile::open(path));
  std::string head;
  for (int i = 0; i < 8; ++i) head.push_back(char((std::uint64_t(json.size()) >> (8 * i)) & 0xff));
  w.file_.write(head);
  w.file_.write(json);
  w.tensors_ = std::move(tensors);
  w.ends_ = std::move(ends);
  w.data_start_ = 8 + json.size();
  w.data_bytes_ = w.ends_.empty() ? 0 : w.ends_.back();
  return w;
}

void SafetensorsStreamWriter::write(std::span<const std::byte> bytes) {
  if (bytes.size() > data_bytes_ - written_)
    throw Error(file_.path().string() + ": " + std::to_string(bytes.size()) + " bytes written past the last tensor (" +
                std::to_string(data_bytes_ - written_) + " left)");
  file_.write(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  written_ += bytes.size();
}

std::size_t SafetensorsStreamWriter::current() const {
  std::size_t i = 0;
  while (i < ends_.size() && ends_[i] <= written_) ++i;
  return i;
}

void SafetensorsStreamWriter::commit() {
  if (written_ != data_bytes_) {
    const std::size_t i = current();
    throw Error(file_.path().string() + ": tensor \"" + tensors_[i].name + "\" is incomplete (" +
                std::to_string(data_bytes_ - written_) + " bytes of the data missing)");
  }
  file_.commit();
}

}  // namespace vkq
