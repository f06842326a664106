#include "vkquant/model/artifact.hpp"

#include <algorithm>
#include <cmath>

#include "vkquant/error.hpp"

namespace vkq {

namespace {

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s;
  for (auto d : shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
  return "[" + s + "]";
}

std::size_t nonfinite(std::span<const float> v) {
  return std::size_t(std::count_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); }));
}

}  // namespace

void add_artifact_tensor(std::vector<TensorWrite>& tensors, std::string name, std::vector<std::uint64_t> shape,
                         std::span<const float> values, ArtifactDtype dtype) {
  std::uint64_t n = 1;
  for (auto d : shape)
    if (!checked_mul(n, d, n)) throw Error("artifact tensor '" + name + "': shape " + shape_text(shape) + " overflows");
  if (n != values.size())
    throw Error("artifact tensor '" + name + "': " + std::to_string(values.size()) + " values for shape " + shape_text(shape));
  if (const auto bad = nonfinite(values); bad > 0)
    throw Error("artifact tensor '" + name + "': " + std::to_string(bad) + " of " + std::to_string(values.size()) +
                " values are NaN or Inf");
  if (dtype == ArtifactDtype::f32) {
    tensors.push_back(f32_tensor(std::move(name), std::move(shape), values));
    return;
  }
  constexpr float kHalfMax = 65504.f;
  if (const auto big = std::count_if(values.begin(), values.end(), [](float x) { return std::abs(x) > kHalfMax; }); big > 0)
    throw Error("artifact tensor '" + name + "': " + std::to_string(big) + " of " + std::to_string(values.size()) +
                " values are beyond fp16's range (|x| > 65504)");
  tensors.push_back(f16_tensor(std::move(name), std::move(shape), values));
}

std::vector<float> read_artifact_tensor(const SafetensorsFile& f, const std::string& name,
                                        const std::vector<std::uint64_t>& shape, ArtifactDtype dtype) {
  const TensorInfo& t = f.at(name);
  if (t.shape != shape)
    throw FormatError(f.path(), "tensor '" + name + "': shape " + shape_text(t.shape) + ", expected " + shape_text(shape),
                      t.offset);
  const bool f16_ok = dtype == ArtifactDtype::f16;
  if (t.dtype != DType::F32 && !(f16_ok && t.dtype == DType::F16))
    throw FormatError(f.path(),
                      "tensor '" + name + "': dtype " + dtype_name(t.dtype) + ", expected " + (f16_ok ? "F16 or F32" : "F32"),
                      t.offset);
  auto v = f.to_float(t);
  if (const auto bad = nonfinite(v); bad > 0)
    throw FormatError(f.path(), "tensor '" + name + "': " + std::to_string(bad) + " of " + std::to_string(v.size()) +
                                    " values are NaN or Inf",
                      t.offset);
  return v;
}

std::vector<float> ArtifactReads::tensor(const std::string& name, const std::vector<std::uint64_t>& shape,
                                         ArtifactDtype dtype) {
  read_.insert(name);
  return read_artifact_tensor(*f_, name, shape, dtype);
}

void ArtifactReads::refuse_unread() const {
  for (const TensorInfo& t : f_->tensors())
    if (!read_.count(t.name))
      throw FormatError(f_->path(),
                        "tensor '" + t.name + "': not read (a name this version does not know, or data its metadata does not use)",
                        t.offset);
}

}  // namespace vkq
