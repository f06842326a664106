// The calibration artifact's tensors (*.vkq.safetensors, docs/design.md §5): one
// writer and one reader shared by the K-cache and MLP codecs, so both parts
// of the file hold the same rules (F32, exact shape, finite values).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vkquant/safetensors.hpp"

namespace vkq {

// Appends an F32 tensor `name` of `shape` viewing `values` (which must
// outlive the write). Throws vkq::Error naming the tensor when the count of
// values is not the shape's, or a value is NaN or Inf: nothing is written
// that read_artifact_tensor would refuse.
void add_artifact_tensor(std::vector<TensorWrite>& tensors, std::string name, std::vector<std::uint64_t> shape,
                         std::span<const float> values);

// Tensor `name` of `f`: present, of exactly `shape`, F32, every value finite.
// Throws FormatError naming f's file, the tensor and its byte offset.
std::vector<float> read_artifact_tensor(const SafetensorsFile& f, const std::string& name,
                                        const std::vector<std::uint64_t>& shape);

}  // namespace vkq
