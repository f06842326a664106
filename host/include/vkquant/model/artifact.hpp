// The calibration artifact's tensors (*.vkq.safetensors, docs/design.md §5): one
// writer and one reader shared by the K-cache and MLP codecs, so both parts
// of the file hold the same rules (F32, exact shape, finite values).
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "vkquant/safetensors.hpp"

namespace vkq {

// How a tensor is stored: F32, or F16 where the values are bounded and
// fp16's 11 significant bits are plenty (the MLP's dense P x P rotations,
// entries in [-1, 1]); an F16 tensor is also read back as F32 from older files.
enum class ArtifactDtype { f32, f16 };

// Appends tensor `name` of `shape`: F32 viewing `values` (which must outlive
// the write), or F16 holding its own rounded copy. Throws vkq::Error naming
// the tensor when the count of values is not the shape's, or a value is NaN or
// Inf (or beyond fp16's range when stored F16): nothing is written that
// read_artifact_tensor would refuse.
void add_artifact_tensor(std::vector<TensorWrite>& tensors, std::string name, std::vector<std::uint64_t> shape,
                         std::span<const float> values, ArtifactDtype dtype = ArtifactDtype::f32);

// Tensor `name` of `f`: present, of exactly `shape`, F32 (or, with
// ArtifactDtype::f16, F16 or F32), every value finite. Throws FormatError
// naming f's file, the tensor and its byte offset.
std::vector<float> read_artifact_tensor(const SafetensorsFile& f, const std::string& name,
                                        const std::vector<std::uint64_t>& shape,
                                        ArtifactDtype dtype = ArtifactDtype::f32);

// The tensors an artifact's readers take from one file, so that the file's
// other tensors are refused by name: nothing a file holds goes unread.
class ArtifactReads {
 public:
  explicit ArtifactReads(const SafetensorsFile& f) : f_(&f) {}
  const SafetensorsFile& file() const { return *f_; }
  // read_artifact_tensor, noting the name.
  std::vector<float> tensor(const std::string& name, const std::vector<std::uint64_t>& shape,
                            ArtifactDtype dtype = ArtifactDtype::f32);
  // Throws FormatError naming the file's first tensor not read.
  void refuse_unread() const;

 private:
  const SafetensorsFile* f_;
  std::set<std::string> read_;
};

}  // namespace vkq
