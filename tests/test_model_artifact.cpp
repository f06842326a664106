// The calibration artifact's one tensor writer and reader (model/artifact.hpp),
// which the K-cache and MLP parts share: every refusal names the file, the
// tensor and its offset; the writer refuses what the reader would.
#include <gtest/gtest.h>

#include <cmath>

#include "format_error.hpp"
#include "model_data.hpp"
#include "vkquant/model/artifact.hpp"

namespace vkq::test {
namespace {

// A file holding "a" (2, 3) F32 = 0..5, "h" (2, 3) F16 and "n" (4) F32 with one NaN and one Inf.
std::filesystem::path sample_file() {
  static const std::filesystem::path path = [] {
    const auto p = temp_dir("artifact_tensors") / "t.vkq.safetensors";
    static const std::vector<float> a{0, 1, 2, 3, 4, 5}, n{1, NAN, INFINITY, 2};
    static const std::vector<std::uint16_t> h(6, 0x3c00);  // 1.0 in fp16
    write_safetensors(p, {f32_tensor("a", {2, 3}, a), {"h", DType::F16, {2, 3}, std::as_bytes(std::span(h))},
                          f32_tensor("n", {4}, n)});
    return p;
  }();
  return path;
}

std::uint64_t offset_of(const std::string& name) { return SafetensorsFile::open(sample_file()).at(name).offset; }

void expect_refused(const std::string& name, const std::vector<std::uint64_t>& shape, const std::string& fragment,
                    std::uint64_t at) {
  const auto path = sample_file();
  expect_format_error([&] { (void)read_artifact_tensor(SafetensorsFile::open(path), name, shape); }, path, fragment,
                      "tensor '" + name + "'", at);
}

TEST(ArtifactTensor, ReadsF32OfTheExpectedShape) {
  const auto f = SafetensorsFile::open(sample_file());
  EXPECT_EQ(read_artifact_tensor(f, "a", {2, 3}), (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

TEST(ArtifactTensor, MissingNamesTheTensor) {
  const auto path = sample_file();
  expect_format_error([&] { (void)read_artifact_tensor(SafetensorsFile::open(path), "b", {2, 3}); }, path,
                      "no tensor named", "\"b\"");
}

TEST(ArtifactTensor, ShapeNamesTheTensor) { expect_refused("a", {3, 2}, "shape [2, 3], expected [3, 2]", offset_of("a")); }

TEST(ArtifactTensor, DtypeF16Refused) { expect_refused("h", {2, 3}, "dtype F16, expected F32", offset_of("h")); }

TEST(ArtifactTensor, F16ReadWhereAllowed) {
  const auto f = SafetensorsFile::open(sample_file());
  EXPECT_EQ(read_artifact_tensor(f, "h", {2, 3}, ArtifactDtype::f16), std::vector<float>(6, 1.0f));
  EXPECT_EQ(read_artifact_tensor(f, "a", {2, 3}, ArtifactDtype::f16), (std::vector<float>{0, 1, 2, 3, 4, 5}));  // F32 too
  const auto path = sample_file();
  expect_format_error([&] { (void)read_artifact_tensor(f, "n", {4}, ArtifactDtype::f16); }, path,
                      "2 of 4 values are NaN or Inf", "tensor 'n'", offset_of("n"));
}

TEST(ArtifactTensor, NonfiniteCounted) { expect_refused("n", {4}, "2 of 4 values are NaN or Inf", offset_of("n")); }

// The writer: nothing the reader would refuse.
TEST(ArtifactTensor, WriterRefusesCountAndNonfinite) {
  std::vector<TensorWrite> t;
  const std::vector<float> six(6, 1.0f), bad{1, NAN};
  add_artifact_tensor(t, "ok", {2, 3}, six);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].dtype, DType::F32);
  EXPECT_EQ(t[0].data.size(), 24u);
  auto message = [&](const std::string& name, std::vector<std::uint64_t> shape, std::span<const float> v) -> std::string {
    try {
      add_artifact_tensor(t, name, std::move(shape), v);
    } catch (const Error& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_NE(message("w", {4}, six).find("'w': 6 values for shape [4]"), std::string::npos) << message("w", {4}, six);
  EXPECT_NE(message("v", {2}, bad).find("'v': 1 of 2 values are NaN or Inf"), std::string::npos) << message("v", {2}, bad);
  EXPECT_NE(message("o", {1ull << 40, 1ull << 40}, six).find("'o': shape [1099511627776, 1099511627776] overflows"),
            std::string::npos);
  EXPECT_EQ(t.size(), 1u);  // nothing refused was added
}

// F16: the writer rounds (nearest even) into bytes it owns, refuses what fp16
// cannot hold, and the reader gives back exactly the rounded values.
TEST(ArtifactTensor, WriterF16RoundsAndOwnsItsBytes) {
  std::vector<TensorWrite> t;
  {
    const std::vector<float> v{0.1f, -1.0f, 1.0f / 3, 65504.f, 1e-8f, 0.f};
    add_artifact_tensor(t, "r", {2, 3}, v, ArtifactDtype::f16);
  }  // v is gone: the write must not view it
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].dtype, DType::F16);
  EXPECT_EQ(t[0].data.size(), 12u);
  const auto path = temp_dir("artifact_f16") / "r.vkq.safetensors";
  write_safetensors(path, t);
  const auto back = read_artifact_tensor(SafetensorsFile::open(path), "r", {2, 3}, ArtifactDtype::f16);
  EXPECT_EQ(back, (std::vector<float>{0.0999755859375f, -1.0f, 0.333251953125f, 65504.f, 0.f, 0.f}));
  expect_format_error([&] { (void)read_artifact_tensor(SafetensorsFile::open(path), "r", {2, 3}); }, path,
                      "dtype F16, expected F32", "tensor 'r'", SafetensorsFile::open(path).at("r").offset);
  try {
    const std::vector<float> big{1.f, -70000.f};
    add_artifact_tensor(t, "big", {2}, big, ArtifactDtype::f16);
    ADD_FAILURE() << "70000 accepted as fp16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'big': 1 of 2 values are beyond fp16's range"), std::string::npos) << e.what();
  }
  EXPECT_EQ(t.size(), 1u);
}

}  // namespace
}  // namespace vkq::test
