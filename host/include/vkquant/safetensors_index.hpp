// A safetensors model that may be split into shards: model.safetensors, or
// model.safetensors.index.json whose "weight_map" maps each tensor name to
// the shard file holding it (Hugging Face's layout). The index is validated
// strictly: shard names are plain file names in the index's directory (no
// "." or "..", no '/', '\\', ':' or NUL), every mapped tensor is in its
// shard, no tensor is in two shards and every shard tensor is listed.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vkquant/safetensors.hpp"

namespace vkq {

class SafetensorsModel {
 public:
  // `path` is a .safetensors file, an index .json, or a directory holding
  // model.safetensors.index.json or model.safetensors (else the only
  // *.safetensors.index.json or the only *.safetensors there). Throws
  // vkq::FormatError naming the file, tensor or shard.
  static SafetensorsModel open(const std::filesystem::path& path);

  const std::vector<SafetensorsFile>& shards() const { return shards_; }  // sorted by file name
  // The tensor `name` in whichever shard holds it (and that shard); nullptr when absent.
  const TensorInfo* find(std::string_view name, const SafetensorsFile** shard = nullptr) const;
  std::vector<std::string> tensor_names() const;  // sorted
  // The tensor as fp32; FormatError naming the tensor and the model file when absent.
  std::vector<float> to_float(std::string_view name) const;
  const std::filesystem::path& directory() const { return directory_; }
  // The file opened: the index .json or the single .safetensors.
  const std::filesystem::path& source() const { return source_; }

 private:
  std::filesystem::path directory_, source_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, std::pair<std::size_t, std::size_t>, std::less<>> index_;  // name -> (shard, tensor)
};

}  // namespace vkq
