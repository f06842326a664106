// Streaming safetensors/GGUF writers (host/src/formats/*_stream.cpp): the
// same bytes as the whole-tensor writers for the same tensors, fed in awkward
// pieces; a file whose tensors did not get all their bytes is never committed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "vkquant/tensor_stream.hpp"

namespace {

namespace fs = std::filesystem;

fs::path test_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vkq_stream_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// 1..n as floats; sizes chosen so no tensor ends on a piece boundary.
std::vector<float> ramp(std::size_t n, float base) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = base + float(i);
  return v;
}

// Feeds `bytes` to `write` in pieces of 1, 7, 13, 1, 7, 13, ... bytes.
template <typename W>
void feed(W& w, std::span<const std::byte> bytes) {
  const std::size_t steps[] = {1, 7, 13};
  for (std::size_t at = 0, k = 0; at < bytes.size(); ++k) {
    const std::size_t n = std::min(steps[k % 3], bytes.size() - at);
    w.write(bytes.subspan(at, n));
    at += n;
  }
}

TEST(SynthStream, SafetensorsSameBytesAsWholeTensorWriter_3tensors_pieces1_7_13) {
  const auto dir = test_dir("st_same");
  const auto a = ramp(15, 1), b = ramp(3, -5), c = ramp(37, 0.5f);
  vkq::write_safetensors(dir / "whole.safetensors",
                         {vkq::f32_tensor("a", {3, 5}, a), vkq::f32_tensor("b", {3}, b), vkq::f32_tensor("c", {37}, c)},
                         {{"format", "pt"}});
  auto w = vkq::SafetensorsStreamWriter::open(dir / "stream.safetensors",
                                              {{"a", vkq::DType::F32, {3, 5}}, {"b", vkq::DType::F32, {3}}, {"c", vkq::DType::F32, {37}}},
                                              {{"format", "pt"}});
  std::vector<float> all(a);
  all.insert(all.end(), b.begin(), b.end());
  all.insert(all.end(), c.begin(), c.end());
  feed(w, std::as_bytes(std::span(all)));
  EXPECT_EQ(w.current(), 3u);
  w.commit();
  EXPECT_EQ(slurp(dir / "stream.safetensors"), slurp(dir / "whole.safetensors"));
  EXPECT_EQ(w.file_bytes(), fs::file_size(dir / "whole.safetensors"));
  EXPECT_EQ(vkq::safetensors_header_bytes({{"a", vkq::DType::F32, {3, 5}}, {"b", vkq::DType::F32, {3}}, {"c", vkq::DType::F32, {37}}},
                                          {{"format", "pt"}}),
            w.file_bytes() - all.size() * 4);
}

TEST(SynthStream, GgufSameBytesAsWholeTensorWriter_align32_and_64) {
  for (std::uint32_t align : {32u, 64u}) {
    const auto dir = test_dir("gguf_same_" + std::to_string(align));
    const auto a = ramp(15, 1), b = ramp(3, -5), c = ramp(37, 0.5f);
    const std::vector<std::pair<std::string, vkq::GgufValue>> kv = {{"general.architecture", vkq::gguf_string("llama")},
                                                                    {"x.list", vkq::gguf_string_array({"p", "q"})}};
    vkq::write_gguf(dir / "whole.gguf", kv,
                    {{"a", 0, {5, 3}, std::as_bytes(std::span(a))}, {"b", 0, {3}, std::as_bytes(std::span(b))},
                     {"c", 0, {37}, std::as_bytes(std::span(c))}},
                    align);
    auto w = vkq::GgufStreamWriter::open(dir / "stream.gguf", kv, {{"a", 0, {5, 3}}, {"b", 0, {3}}, {"c", 0, {37}}}, align);
    std::vector<float> all(a);
    all.insert(all.end(), b.begin(), b.end());
    all.insert(all.end(), c.begin(), c.end());
    feed(w, std::as_bytes(std::span(all)));
    w.commit();
    EXPECT_EQ(slurp(dir / "stream.gguf"), slurp(dir / "whole.gguf")) << "alignment " << align;
    EXPECT_EQ(w.file_bytes(), fs::file_size(dir / "whole.gguf"));
  }
}

TEST(SynthStream, IncompleteTensorNotCommitted_safetensors_and_gguf) {
  const auto dir = test_dir("incomplete");
  const auto v = ramp(4, 0);
  {
    auto w = vkq::SafetensorsStreamWriter::open(dir / "x.safetensors", {{"a", vkq::DType::F32, {2}}, {"b", vkq::DType::F32, {3}}});
    w.write(std::as_bytes(std::span(v)));  // a, and two of b's three values
    EXPECT_EQ(w.current(), 1u);
    try {
      w.commit();
      FAIL() << "committed an incomplete file";
    } catch (const vkq::Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor \"b\" is incomplete (4 bytes"), std::string::npos) << e.what();
    }
  }
  {
    auto w = vkq::GgufStreamWriter::open(dir / "x.gguf", {}, {{"a", 0, {2}}, {"b", 0, {3}}});
    w.write(std::as_bytes(std::span(v)));
    EXPECT_THROW(w.commit(), vkq::Error);
  }
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "x.gguf"));
}

TEST(SynthStream, BytesPastTheLastTensorRefused_safetensors_and_gguf) {
  const auto dir = test_dir("past");
  const auto v = ramp(3, 0);
  auto s = vkq::SafetensorsStreamWriter::open(dir / "x.safetensors", {{"a", vkq::DType::F32, {2}}});
  EXPECT_THROW(s.write(std::as_bytes(std::span(v))), vkq::Error);
  auto g = vkq::GgufStreamWriter::open(dir / "x.gguf", {}, {{"a", 0, {2}}});
  EXPECT_THROW(g.write(std::as_bytes(std::span(v))), vkq::Error);
}

TEST(SynthStream, DuplicateNamesRefusedBeforeAnyFile_safetensors_and_gguf) {
  const auto dir = test_dir("dup");
  EXPECT_THROW(vkq::SafetensorsStreamWriter::open(dir / "x.safetensors", {{"a", vkq::DType::F32, {2}}, {"a", vkq::DType::F32, {2}}}),
               vkq::Error);
  EXPECT_THROW(vkq::GgufStreamWriter::open(dir / "x.gguf", {}, {{"a", 0, {2}}, {"a", 0, {2}}}), vkq::Error);
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "x.gguf"));
}

}  // namespace
