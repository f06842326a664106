// safetensors reading and writing; hostile headers are refused with an error
// naming the file and the problem (the hardening issue adds the full sweep).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "vkquant/half.hpp"
#include "vkquant/safetensors.hpp"

namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vkq_st_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

// A file made of a raw 8-byte length, a header text and `data_bytes` zeros.
fs::path raw_file(const std::string& name, std::uint64_t length, const std::string& header, std::size_t data_bytes) {
  const fs::path p = temp_path(name);
  std::ofstream f(p, std::ios::binary);
  for (int i = 0; i < 8; ++i) f.put(char((length >> (8 * i)) & 0xff));
  f << header << std::string(data_bytes, '\0');
  return p;
}

fs::path with_header(const std::string& name, const std::string& header, std::size_t data_bytes) {
  return raw_file(name, header.size(), header, data_bytes);
}

void expect_refused(const fs::path& p, const std::string& fragment) {
  try {
    (void)vkq::SafetensorsFile::open(p);
    ADD_FAILURE() << p << " was accepted";
  } catch (const vkq::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << "wanted \"" << fragment << "\" in: " << e.what();
  }
}

TEST(Safetensors, RoundTripKeepsDtypesShapesAndMetadata) {
  const std::vector<float> a{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
  std::vector<std::uint16_t> h(3), bf(2);
  for (int i = 0; i < 3; ++i) h[std::size_t(i)] = vkq::to_half(a[std::size_t(i)]);
  bf[0] = std::uint16_t(std::bit_cast<std::uint32_t>(1.5f) >> 16);
  bf[1] = std::uint16_t(std::bit_cast<std::uint32_t>(-2.0f) >> 16);
  const fs::path p = temp_path("rt.safetensors");
  vkq::write_safetensors(p,
                         {vkq::f32_tensor("a", {2, 3}, a),
                          {"h", vkq::DType::F16, {3}, std::as_bytes(std::span(h))},
                          {"b", vkq::DType::BF16, {1, 2}, std::as_bytes(std::span(bf))}},
                         {{"format", "test"}});
  const auto f = vkq::SafetensorsFile::open(p);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.metadata().at("format"), "test");
  EXPECT_EQ(f.at("a").shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(f.to_float(f.at("a")), a);
  EXPECT_EQ(f.to_float(f.at("h")), (std::vector<float>{1.5f, -2.0f, 3.25f}));
  EXPECT_EQ(f.to_float(f.at("b")), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f.header_bytes() % 8, 0u);
  EXPECT_THROW((void)f.at("missing"), vkq::FormatError);
}

TEST(Safetensors, RefusesBrokenHeaders) {
  {
    const fs::path p = temp_path("tiny");
    std::ofstream(p, std::ios::binary) << "abc";
    expect_refused(p, "truncated");
  }
  expect_refused(raw_file("zero", 0, "", 4), "too small");
  expect_refused(raw_file("huge", 200'000'000, "{}", 0), "exceeds");
  expect_refused(raw_file("past", 64, "{}", 0), "past the end");
  expect_refused(raw_file("max", ~std::uint64_t(0), "{}", 0), "exceeds");
  expect_refused(with_header("array", "[1,2]", 0), "not a JSON object");
  expect_refused(with_header("syntax", "{\"a\":", 0), "invalid JSON");
  expect_refused(with_header("utf8", "{\"\xff\":{}}", 0), "invalid JSON");
  expect_refused(with_header("dup", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4),
                 "duplicate JSON key");
  expect_refused(with_header("deep", std::string(10000, '[') + std::string(10000, ']'), 0), "nested deeper");
  // Found by tests/fuzz: a number beyond double's range escaped as nlohmann's out_of_range.
  expect_refused(with_header("overflow", R"({"t":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})", 4),
                 "invalid JSON: number overflow");
}

TEST(Safetensors, RefusesBadTensorEntries) {
  auto one = [](const std::string& name, const std::string& entry, std::size_t data) {
    return with_header(name, "{\"t\":" + entry + "}", data);
  };
  expect_refused(one("dtype", R"({"dtype":"F33","shape":[1],"data_offsets":[0,4]})", 4), "unknown dtype");
  expect_refused(one("neg", R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", 4), "non-negative");
  expect_refused(one("ovf", R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})", 4), "overflows");
  expect_refused(one("ovf2", R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]})", 4), "overflows");
  expect_refused(one("len", R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})", 4), "needs 8");
  expect_refused(one("end", R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 4), "past the end");
  expect_refused(one("order", R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})", 4), "end before");
  expect_refused(one("align", R"({"dtype":"F32","shape":[1],"data_offsets":[2,6]})", 6), "not aligned");
  expect_refused(one("gap", R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})", 8), "gap");
  expect_refused(one("tail", R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})", 8), "belong to no tensor");
  expect_refused(with_header("overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                 "overlaps");
  expect_refused(with_header("nul", std::string("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"), 4), "NUL");
  expect_refused(with_header("meta", R"({"__metadata__":{"k":1}})", 0), "not a string");
}

}  // namespace
