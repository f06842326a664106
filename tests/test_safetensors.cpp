// safetensors reading and writing; hostile headers are refused with an error
// naming the file and the problem (the hardening issue adds the full sweep).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "format_error.hpp"
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

// Like expect_refused, and the message also names `key` (a tensor or JSON
// key) and the error carries byte offset `at` (kNoOffset: none is known).
void expect_refused_at(const fs::path& p, const std::string& fragment, const std::string& key, std::uint64_t at) {
  vkq::test::expect_format_error([&] { (void)vkq::SafetensorsFile::open(p); }, p, fragment, key, at);
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

// ---- one test per hostile case the sweeps above leave out or check loosely ----

TEST(Safetensors, HeaderLengthOneRefused) {
  expect_refused_at(raw_file("len1", 1, "{", 4), "header length 1 is too small", "header length", 0);
}

TEST(Safetensors, HeaderTruncatedByTheFileEnd) {
  // The length promises 40 header bytes; the file stops 8 bytes into them.
  expect_refused_at(raw_file("trunc_header", 40, R"({"t":{"d)", 0), "header length 40 runs past the end of the 16-byte file",
                    "header length", 0);
}

TEST(Safetensors, OverlongTensorName) {
  const std::string name(4097, 'n');
  expect_refused_at(with_header("longname", "{\"" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4),
                    "a tensor name is 4097 bytes long (limit 4096)", "tensor name", vkq::FormatError::kNoOffset);
}

TEST(Safetensors, ZeroElementShapeMustSpanNoBytes) {
  // A zero in the shape is a legal empty tensor, but then it owns no bytes.
  expect_refused_at(with_header("zero_dim", R"({"z":{"dtype":"F32","shape":[3,0],"data_offsets":[0,4]}})", 4),
                    "span 4 bytes but F32 [3,0] needs 0", "tensor \"z\"", vkq::FormatError::kNoOffset);
  const fs::path ok = with_header("zero_dim_ok", R"({"z":{"dtype":"F32","shape":[3,0],"data_offsets":[0,0]}})", 0);
  const auto f = vkq::SafetensorsFile::open(ok);
  EXPECT_EQ(f.at("z").bytes, 0u);
  EXPECT_EQ(f.to_float(f.at("z")), std::vector<float>{});
}

TEST(Safetensors, NegativeShapeNamesTheTensor) {
  expect_refused_at(with_header("neg_dim", R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", 8),
                    "shape entries must be non-negative integers, got -1", "tensor \"w\"", vkq::FormatError::kNoOffset);
}

TEST(Safetensors, OverflowingShapeNamesTheTensor) {
  // 2^62 F32 elements fit 64 bits; their 2^64 bytes do not.
  expect_refused_at(with_header("ovf_bytes", R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4),
                    "overflows 64 bits in bytes", "tensor \"w\"", vkq::FormatError::kNoOffset);
}

TEST(Safetensors, UnknownDtypeNamesTheTensor) {
  expect_refused_at(with_header("q4", R"({"w":{"dtype":"Q4_0","shape":[32],"data_offsets":[0,18]}})", 18), "unknown dtype \"Q4_0\"",
                    "tensor \"w\"", vkq::FormatError::kNoOffset);
}

TEST(Safetensors, OffsetPastTheEndNamesTheTensor) {
  // Checked from the header alone: the 4 data bytes are never read.
  expect_refused_at(with_header("past_end", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 4),
                    "data_offsets [4,8] run past the end of the data (4 bytes)", "tensor \"b\"", vkq::FormatError::kNoOffset);
  expect_refused_at(with_header("past_end_ovf", R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", 1),
                    "end before they begin", "tensor \"a\"", vkq::FormatError::kNoOffset);
}

TEST(Safetensors, UnalignedOffsetNamesTheTensor) {
  expect_refused_at(with_header("unaligned", R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", 6),
                    "data offset 2 is not aligned to its 4-byte elements", "tensor \"b\"", vkq::FormatError::kNoOffset);
}

// The layout sweep with the file offsets the errors carry: data starts at
// 8 + the header's length.
TEST(Safetensors, OverlapGapAndTailReportTheirFileOffset) {
  const std::string overlap = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_refused_at(with_header("overlap_at", overlap, 8), "overlaps the previous tensor's bytes", "tensor \"b\"", 8 + overlap.size() + 4);
  const std::string gap = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  expect_refused_at(with_header("gap_at", gap, 12), "gap of 4 bytes before tensor", "\"b\"", 8 + gap.size() + 4);
  const std::string tail = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  expect_refused_at(with_header("tail_at", tail, 7), "3 bytes after the last tensor belong to no tensor", "last tensor", 8 + tail.size() + 4);
}

TEST(Safetensors, InvalidUtf8ReportsItsOffset) {
  // The 0xff is header byte 2, file byte 10.
  expect_refused_at(with_header("utf8_at", "{\"\xff\":{}}", 0), "invalid JSON", "syntax error", 10);
}

TEST(Safetensors, DuplicateKeyNamesTheKey) {
  expect_refused_at(with_header("dup_named", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4),
                    "duplicate JSON key", "\"w\"", vkq::FormatError::kNoOffset);
  // Inside a tensor entry too.
  expect_refused_at(with_header("dup_inner", R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4),
                    "duplicate JSON key", "\"dtype\"", vkq::FormatError::kNoOffset);
}

TEST(Safetensors, NestingTenThousandDeepInsideAnEntry) {
  // Deep nesting where a shape belongs, not only at the top level.
  const std::string deep = R"({"w":{"dtype":"F32","shape":)" + std::string(10000, '[') + std::string(10000, ']') + R"(,"data_offsets":[0,4]}})";
  expect_refused_at(with_header("deep_entry", deep, 4), "nested deeper than 64 levels", "JSON", vkq::FormatError::kNoOffset);
}

TEST(Safetensors, NulInNameNamesNoTruncatedTensor) {
  expect_refused_at(with_header("nul_named", std::string("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"), 4),
                    "a tensor name contains a NUL byte", "tensor name", vkq::FormatError::kNoOffset);
}

}  // namespace
