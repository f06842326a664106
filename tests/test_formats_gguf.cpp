// GGUF reading and writing: round trips of every metadata and tensor type,
// ggml's quantization layouts checked against hand-computed blocks, one test
// per hostile header, and the bundled kjv-llama GGUF files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include "vkquant/gguf.hpp"
#include "vkquant/half.hpp"
#include "vkquant/quant.hpp"

namespace {

namespace fs = std::filesystem;
using vkq::GgmlType;
using vkq::GgufType;
using vkq::GgufValue;

fs::path temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vkq_gguf_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

// Raw little-endian bytes for hand-made (hostile) files.
struct Raw {
  std::string s;
  Raw& u8(std::uint8_t v) { return put(v); }
  Raw& u32(std::uint32_t v) { return put(v); }
  Raw& u64(std::uint64_t v) { return put(v); }
  Raw& str(std::string_view v) {
    u64(v.size());
    s.append(v);
    return *this;
  }
  Raw& head(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv) {
    s = "GGUF";
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Raw& kv_u32(std::string_view key, std::uint32_t v) {
    str(key);
    u32(4);
    return u32(v);
  }
  Raw& tensor(std::string_view name, std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset) {
    str(name);
    u32(std::uint32_t(ne.size()));
    for (auto d : ne) u64(d);
    u32(type);
    return u64(offset);
  }
  Raw& pad(std::size_t a = 32) {
    s.append((a - s.size() % a) % a, '\0');
    return *this;
  }
  Raw& zeros(std::size_t n) {
    s.append(n, '\0');
    return *this;
  }
  template <typename T>
  Raw& put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s.append(b, sizeof(T));
    return *this;
  }
  fs::path write(const std::string& name) const {
    const fs::path p = temp_path(name);
    std::ofstream(p, std::ios::binary).write(s.data(), std::streamsize(s.size()));
    return p;
  }
};

// Expects open() to throw a FormatError naming the file and holding `fragment`
// (and, when given, reporting byte offset `at`).
void expect_refused(const fs::path& p, const std::string& fragment, std::uint64_t at = vkq::FormatError::kNoOffset) {
  try {
    (void)vkq::GgufFile::open(p);
    ADD_FAILURE() << p << " was accepted";
  } catch (const vkq::FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(p.string()), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << "wanted \"" << fragment << "\" in: " << what;
    if (at != vkq::FormatError::kNoOffset) {
      EXPECT_EQ(e.offset(), at) << what;
    }
  }
}

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// --- round trips -------------------------------------------------------------

class GgufVersion : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(GgufVersion, EveryMetadataTypeRoundTrips) {
  const std::uint32_t version = GetParam();
  const std::vector<std::pair<std::string, GgufValue>> md{
      {"general.architecture", vkq::gguf_string("llama")},
      {"t.u8", vkq::gguf_uint(255, GgufType::u8)},
      {"t.i8", vkq::gguf_int(-128, GgufType::i8)},
      {"t.u16", vkq::gguf_uint(65535, GgufType::u16)},
      {"t.i16", vkq::gguf_int(-32768, GgufType::i16)},
      {"t.u32", vkq::gguf_uint(4096, GgufType::u32)},
      {"t.i32", vkq::gguf_int(std::numeric_limits<std::int32_t>::min(), GgufType::i32)},
      {"t.u64", vkq::gguf_uint(std::numeric_limits<std::uint64_t>::max(), GgufType::u64)},
      {"t.i64", vkq::gguf_int(std::numeric_limits<std::int64_t>::min(), GgufType::i64)},
      {"t.f32", vkq::gguf_float(1e-5, GgufType::f32)},
      {"t.f64", vkq::gguf_float(3.141592653589793, GgufType::f64)},
      {"t.true", vkq::gguf_bool(true)},
      {"t.false", vkq::gguf_bool(false)},
      {"t.empty", vkq::gguf_string("")},
      {"t.utf8", vkq::gguf_string("Ünïcödé ✓\n")},
      {"a.strings", vkq::gguf_string_array({"<unk>", "<s>", "", "é"})},
      {"a.u8", vkq::gguf_uint_array({0, 7, 255}, GgufType::u8)},
      {"a.u64", vkq::gguf_uint_array({1, std::numeric_limits<std::uint64_t>::max()}, GgufType::u64)},
      {"a.i16", vkq::gguf_int_array({-5, 32767}, GgufType::i16)},
      {"a.i32", vkq::gguf_int_array({-1, 2, -3}, GgufType::i32)},
      {"a.f32", vkq::gguf_float_array({0.5, -2.25}, GgufType::f32)},
      {"a.f64", vkq::gguf_float_array({1e300}, GgufType::f64)},
      {"a.bool", vkq::gguf_bool_array({true, false, true})},
      {"a.empty", vkq::gguf_int_array({}, GgufType::i32)},
  };
  const fs::path p = temp_path("meta_v" + std::to_string(version) + ".gguf");
  vkq::write_gguf(p, md, {}, 32, version);
  const auto f = vkq::GgufFile::open(p);
  EXPECT_EQ(f.version(), version);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_TRUE(f.tensors().empty());
  ASSERT_EQ(f.metadata().size(), md.size());
  for (std::size_t i = 0; i < md.size(); ++i) {
    const auto& [key, v] = f.metadata()[i];
    EXPECT_EQ(key, md[i].first);
    EXPECT_EQ(v.type, md[i].second.type) << key;
    if (v.type == GgufType::array) {
      EXPECT_EQ(v.elem, md[i].second.elem) << key;
    }
    if (md[i].first == "t.f32" || md[i].first == "a.f32")
      EXPECT_EQ(vkq::gguf_value_summary(v), vkq::gguf_value_summary(md[i].second)) << key;  // stored as float: compare as float
    else
      EXPECT_TRUE(v.v == md[i].second.v) << key << ": " << vkq::gguf_value_summary(v);
  }
  EXPECT_EQ(std::get<double>(f.find("t.f32")->v), double(1e-5f));
  // Typed getters.
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("t.u32"), 4096u);
  EXPECT_EQ(f.get_uint("t.u8"), 255u);
  EXPECT_EQ(f.get_float("t.u32"), 4096.0);
  EXPECT_EQ(f.get_float("t.f32"), double(1e-5f));
  EXPECT_EQ(f.get_bool("t.true"), true);
  EXPECT_EQ(f.get_bool("t.false"), false);
  EXPECT_EQ(f.get_strings("a.strings"), (std::vector<std::string>{"<unk>", "<s>", "", "é"}));
  EXPECT_EQ(f.get_ints("a.i32"), (std::vector<std::int64_t>{-1, 2, -3}));
  EXPECT_EQ(f.get_ints("a.u8"), (std::vector<std::int64_t>{0, 7, 255}));
  EXPECT_EQ(f.get_floats("a.i16"), (std::vector<double>{-5, 32767}));
  EXPECT_EQ(f.get_floats("a.f32"), (std::vector<double>{0.5, -2.25}));
  EXPECT_EQ(f.get_uint("absent"), std::nullopt);
  EXPECT_EQ(f.get_strings("absent"), std::nullopt);
  EXPECT_THROW((void)f.get_uint("t.i8"), vkq::FormatError);  // negative
  EXPECT_THROW((void)f.get_ints("a.u64"), vkq::FormatError);  // 2^64-1 does not fit int64
  EXPECT_THROW((void)f.get_floats("a.strings"), vkq::FormatError);
  try {
    (void)f.get_string("t.u32");
    ADD_FAILURE() << "a u32 read as a string";
  } catch (const vkq::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'t.u32'"), std::string::npos) << e.what();
    EXPECT_NE(e.offset(), vkq::FormatError::kNoOffset);
  }
  // Summaries.
  EXPECT_EQ(vkq::gguf_value_summary(*f.find("general.architecture")), "llama");
  EXPECT_EQ(vkq::gguf_value_summary(*f.find("t.u32")), "4096");
  EXPECT_EQ(vkq::gguf_value_summary(*f.find("t.f32")), "1e-05");
  EXPECT_EQ(vkq::gguf_value_summary(*f.find("a.strings"), 2), "[string × 4: \"<unk>\", \"<s>\", ...]");
  EXPECT_EQ(vkq::gguf_value_summary(*f.find("a.bool")), "[bool × 3: true, false, true]");
  EXPECT_EQ(vkq::gguf_value_summary(*f.find("t.utf8")), "Ünïcödé ✓\\x0a");
}

INSTANTIATE_TEST_SUITE_P(Gguf, GgufVersion, ::testing::Values(2u, 3u), [](const auto& p) { return "v" + std::to_string(p.param); });

class GgufAlignment : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(GgufAlignment, EveryTensorTypeRoundTrips) {
  const std::uint32_t alignment = GetParam();
  // Values exact in fp16 and bf16 (small integers over powers of two).
  std::vector<float> exact(96);
  for (std::size_t i = 0; i < exact.size(); ++i) exact[i] = float(int(i % 17) - 8) / 4.0f;
  const auto x = random_floats(64 * 3, 7);
  const auto f16 = vkq::to_f16_bytes(exact), bf16 = vkq::to_bf16_bytes(exact);
  const auto q8 = vkq::quantize_q8_0(x), q4 = vkq::quantize_q4_0(x);
  const std::vector<float> scalar{42.0f};
  const fs::path p = temp_path("tensors_a" + std::to_string(alignment) + ".gguf");
  vkq::write_gguf(p, {{"general.architecture", vkq::gguf_string("test")}},
                  {{"f32", 0, {3, 32}, std::as_bytes(std::span(exact)).first(96 * 4)},
                   {"f16", 1, {96}, f16},
                   {"bf16", 30, {2, 3, 4, 4}, bf16},
                   {"q8", 8, {64, 3}, q8},
                   {"q4", 2, {64, 3}, q4},
                   {"scalar", 0, {}, std::as_bytes(std::span(scalar))}},
                  alignment);
  const auto f = vkq::GgufFile::open(p);
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.find("general.alignment") != nullptr, alignment != 32);
  ASSERT_EQ(f.tensors().size(), 6u);
  for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % alignment, 0u) << t.name;
  const auto* t32 = f.find_tensor("f32");
  ASSERT_NE(t32, nullptr);
  EXPECT_EQ(t32->ne, (std::vector<std::uint64_t>{3, 32}));
  EXPECT_EQ(t32->elements(), 96u);
  EXPECT_EQ(f.to_float(*t32), exact);
  EXPECT_EQ(f.to_float(*f.find_tensor("f16")), exact);
  EXPECT_EQ(f.to_float(*f.find_tensor("bf16")), exact);
  EXPECT_EQ(f.to_float(*f.find_tensor("scalar")), scalar);
  const auto& tq8 = *f.find_tensor("q8");
  const auto& tq4 = *f.find_tensor("q4");
  EXPECT_EQ(tq8.bytes, 6u * 34);
  EXPECT_EQ(tq4.bytes, 6u * 18);
  EXPECT_TRUE(std::equal(q8.begin(), q8.end(), f.data(tq8).begin(), f.data(tq8).end()));
  const auto d8 = f.to_float(tq8), d4 = f.to_float(tq4);
  ASSERT_EQ(d8.size(), x.size());
  ASSERT_EQ(d4.size(), x.size());
  // Error bounds per block: Q8_0 rounds to d/2 with d = amax/127, Q4_0 to d
  // with d = amax/8 (d/2, except +8 clamps to 7); plus fp16 rounding of d.
  for (std::size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (std::size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    for (std::size_t j = 0; j < 32; ++j) {
      const std::size_t i = 32 * b + j;
      EXPECT_LE(std::fabs(d8[i] - x[i]), amax / 127.0f * 0.5f + amax * 1e-3f) << "q8 element " << i;
      EXPECT_LE(std::fabs(d4[i] - x[i]), amax / 8.0f + amax * 1e-3f) << "q4 element " << i;
    }
  }
  EXPECT_THROW((void)vkq::quantize_q8_0(std::span(x).first(31)), vkq::Error);
}

INSTANTIATE_TEST_SUITE_P(Gguf, GgufAlignment, ::testing::Values(32u, 64u), [](const auto& p) { return "align" + std::to_string(p.param); });

TEST(GgufQuant, Q8_0MatchesHandComputedBlock) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;  // amax: d = 1
  x[1] = -63.4f;  // -> -63
  x[2] = 0.5f;    // ties round away from zero (roundf): 1
  x[31] = -2.5f;  // -> -3
  const auto q = vkq::quantize_q8_0(x);
  ASSERT_EQ(q.size(), 34u);
  std::vector<std::uint8_t> want(34, 0);
  want[0] = 0x00, want[1] = 0x3c;  // fp16 1.0
  want[2] = 127, want[3] = std::uint8_t(-63), want[4] = 1, want[33] = std::uint8_t(-3);
  for (std::size_t i = 0; i < 34; ++i) EXPECT_EQ(std::uint8_t(q[i]), want[i]) << "byte " << i;
  const fs::path p = temp_path("q8_block.gguf");
  vkq::write_gguf(p, {}, {{"w", std::uint32_t(GgmlType::Q8_0), {32}, q}});
  const auto f = vkq::GgufFile::open(p);
  const auto y = f.to_float(f.tensors()[0]);
  std::vector<float> expect(32, 0.0f);
  expect[0] = 127, expect[1] = -63, expect[2] = 1, expect[31] = -3;
  EXPECT_EQ(y, expect);
}

TEST(GgufQuant, Q4_0MatchesHandComputedBlock) {
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;   // largest magnitude, negative: d = -8 / -8 = 1; q = 0
  x[1] = 7.0f;    // q = 15
  x[2] = -0.6f;   // 7.9 -> 7
  x[16] = 3.0f;   // 11.5 -> 11 (truncation after + 8.5)
  x[17] = 7.9f;   // 16.4 -> clamped to 15
  const auto q = vkq::quantize_q4_0(x);
  ASSERT_EQ(q.size(), 18u);
  std::vector<std::uint8_t> want(18, 0x88);  // zeros quantize to 8 in both nibbles
  want[0] = 0x00, want[1] = 0x3c;            // fp16 1.0
  want[2] = 0xb0;                            // element 0 low (0), element 16 high (11)
  want[3] = 0xff;                            // element 1 (15), element 17 (15)
  want[4] = 0x87;                            // element 2 (7), element 18 (8)
  for (std::size_t i = 0; i < 18; ++i) EXPECT_EQ(std::uint8_t(q[i]), want[i]) << "byte " << i;
  const fs::path p = temp_path("q4_block.gguf");
  vkq::write_gguf(p, {}, {{"w", std::uint32_t(GgmlType::Q4_0), {32}, q}});
  const auto f = vkq::GgufFile::open(p);
  const auto y = f.to_float(f.tensors()[0]);
  std::vector<float> expect(32, 0.0f);
  expect[0] = -8, expect[1] = 7, expect[2] = -1, expect[16] = 3, expect[17] = 7;
  EXPECT_EQ(y, expect);
}

// K-quant tensors written with quant::quantize read back through to_float
// exactly as quant::dequantize decodes them, and close to the source.
TEST(GgufQuant, KQuantTensorsRoundTrip) {
  const auto x = random_floats(512 * 3, 9);
  auto quantized = [&](vkq::quant::Type t) {
    std::vector<std::byte> b(vkq::quant::row_bytes(t, x.size()));
    vkq::quant::quantize(t, x, b);
    return b;
  };
  const auto q4k = quantized(vkq::quant::Type::q4_k), q6k = quantized(vkq::quant::Type::q6_k);
  const fs::path p = temp_path("kquants.gguf");
  vkq::write_gguf(p, {{"general.architecture", vkq::gguf_string("test")}},
                  {{"blk.0.ffn_down.weight", std::uint32_t(GgmlType::Q4_K), {512, 3}, q4k},
                   {"blk.0.attn_v.weight", std::uint32_t(GgmlType::Q6_K), {512, 3}, q6k}});
  const auto f = vkq::GgufFile::open(p);
  const auto& t4 = *f.find_tensor("blk.0.ffn_down.weight");
  const auto& t6 = *f.find_tensor("blk.0.attn_v.weight");
  EXPECT_EQ(t4.bytes, 6u * 144);
  EXPECT_EQ(t6.bytes, 6u * 210);
  EXPECT_STREQ(vkq::ggml_type_name(t4.type), "Q4_K");
  for (const auto* t : {&t4, &t6}) {
    const auto type = vkq::quant::find(t->type)->type;
    const auto y = f.to_float(*t);
    std::vector<float> want(x.size());
    vkq::quant::dequantize(type, f.data(*t), want);
    EXPECT_EQ(y, want) << t->name;
    double err = 0.0, ref = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      err += double(y[i] - x[i]) * double(y[i] - x[i]);
      ref += double(x[i]) * x[i];
    }
    EXPECT_LE(std::sqrt(err / ref), type == vkq::quant::Type::q4_k ? 0.1 : 0.025) << t->name;
  }
}

TEST(GgufWrite, RefusesWhatAReaderWouldRefuse) {
  const std::vector<float> v(32, 1.0f);
  const auto bytes = std::as_bytes(std::span(v));
  const fs::path p = temp_path("refused.gguf");
  EXPECT_THROW(vkq::write_gguf(p, {}, {{"a", 0, {31}, bytes}}), vkq::Error);                        // size mismatch
  EXPECT_THROW(vkq::write_gguf(p, {}, {{"a", 0, {32}, bytes}, {"a", 0, {32}, bytes}}), vkq::Error);  // duplicate
  EXPECT_THROW(vkq::write_gguf(p, {}, {{"a", 8, {16}, bytes.first(17)}}), vkq::Error);             // ne[0] not a block multiple
  EXPECT_THROW(vkq::write_gguf(p, {}, {{"a", 0, {1, 1, 1, 2, 16}, bytes}}), vkq::Error);            // 5 dims
  EXPECT_THROW(vkq::write_gguf(p, {}, {{"a", 0, {32}, bytes}}, 48), vkq::Error);                    // alignment
  EXPECT_THROW(vkq::write_gguf(p, {}, {}, 32, 1), vkq::Error);                                       // v1
  EXPECT_THROW(vkq::write_gguf(p, {{"k", vkq::gguf_uint(256, GgufType::u8)}}, {}), vkq::Error);     // does not fit
  EXPECT_THROW(vkq::write_gguf(p, {{"k", vkq::gguf_uint(1)}, {"k", vkq::gguf_uint(2)}}, {}), vkq::Error);
  EXPECT_THROW(vkq::write_gguf(p, {{"k", GgufValue{GgufType::string, GgufType::u8, std::uint64_t(3)}}}, {}), vkq::Error);
  EXPECT_FALSE(fs::exists(p));
}

// --- hostile files -----------------------------------------------------------

// A valid file: two keys, two tensors (the second one block-quantized).
std::string valid_file() {
  const auto x = random_floats(64, 3);
  const fs::path p = temp_path("valid.gguf");
  vkq::write_gguf(p, {{"general.architecture", vkq::gguf_string("llama")}, {"a.strings", vkq::gguf_string_array({"x", "yy"})}},
                  {{"w", 0, {64}, std::as_bytes(std::span(x))}, {"q", 8, {64}, vkq::quantize_q8_0(x)}});
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(GgufHostile, TruncatedAtSeveralPoints) {
  const std::string full = valid_file();
  const auto f = vkq::GgufFile::open(Raw{full}.write("full.gguf"));
  ASSERT_EQ(f.tensors().size(), 2u);
  const auto& w = f.tensors()[0];
  const auto& q = f.tensors()[1];
  // Inside the magic, the version, the counts, keys, the string array, the
  // tensor infos, the padding before the data and both tensors' data.
  for (const std::uint64_t cut : {std::uint64_t(0), std::uint64_t(2), std::uint64_t(6), std::uint64_t(20), std::uint64_t(30),
                                  std::uint64_t(45), std::uint64_t(70), std::uint64_t(95), std::uint64_t(120), w.offset - 1,
                                  w.offset + 10, q.offset + q.bytes - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const fs::path p = Raw{full.substr(0, cut)}.write("trunc_" + std::to_string(cut) + ".gguf");
    try {
      (void)vkq::GgufFile::open(p);
      ADD_FAILURE() << "a file truncated to " << cut << " bytes was accepted";
    } catch (const vkq::FormatError& e) {
      const std::string m = e.what();
      EXPECT_TRUE(m.find("truncated") != std::string::npos || m.find("past the end") != std::string::npos ||
                  m.find("cannot fit") != std::string::npos)
          << m;
    }
  }
  // The padding after the last tensor is optional.
  EXPECT_NO_THROW((void)vkq::GgufFile::open(Raw{full.substr(0, q.offset + q.bytes)}.write("trunc_tail.gguf")));
}

TEST(GgufHostile, BadMagic) { expect_refused(Raw{"GGML" + valid_file().substr(4)}.write("magic.gguf"), "not a GGUF file", 0); }

TEST(GgufHostile, Version1Refused) {
  // Its own message (why: 32-bit counts), not the generic unknown-version one.
  expect_refused(Raw{}.head(1, 0, 0).write("v1.gguf"), "GGUF version 1 (32-bit counts) is not supported", 4);
}

TEST(GgufHostile, BigEndianRefused) {
  Raw r;
  r.s = "GGUF";
  r.s += std::string("\0\0\0\3", 4);  // version 3 written big-endian
  r.u64(0).u64(0);
  expect_refused(r.write("be.gguf"), "big-endian GGUF (version reads as 0x03000000)", 4);
}

TEST(GgufHostile, UnknownVersionRefused) { expect_refused(Raw{}.head(4, 0, 0).write("v4.gguf"), "unsupported GGUF version 4", 4); }

TEST(GgufHostile, HugeTensorCount) {
  expect_refused(Raw{}.head(3, std::uint64_t(1) << 63, 0).write("nt63.gguf"), "cannot fit", 8);
  expect_refused(Raw{}.head(3, ~std::uint64_t(0), 0).write("nt64.gguf"), "cannot fit", 8);
}

TEST(GgufHostile, HugeKeyCount) {
  expect_refused(Raw{}.head(3, 0, std::uint64_t(1) << 63).kv_u32("a", 1).write("nkv63.gguf"), "cannot fit", 8);
  expect_refused(Raw{}.head(3, 0, ~std::uint64_t(0)).kv_u32("a", 1).write("nkv64.gguf"), "cannot fit", 8);
  expect_refused(Raw{}.head(3, 0, 2).kv_u32("a", 1).write("nkv2.gguf"), "cannot fit", 8);
}

TEST(GgufHostile, HugeArrayLength) {
  for (const std::uint64_t n : {std::uint64_t(1) << 63, ~std::uint64_t(0)}) {
    Raw r;
    r.head(3, 0, 1).str("arr").u32(9).u32(8).u64(n).str("x");  // array of strings
    expect_refused(r.write("arr_s.gguf"), "cannot fit", 24 + 8 + 3 + 4 + 4);
    Raw u;
    u.head(3, 0, 1).str("arr").u32(9).u32(4).u64(n).u32(1);  // array of u32
    expect_refused(u.write("arr_u.gguf"), "cannot fit", 24 + 8 + 3 + 4 + 4);
  }
}

TEST(GgufHostile, HugeStringLength) {
  for (const std::uint64_t n : {std::uint64_t(1) << 63, ~std::uint64_t(0)}) {
    Raw k;
    k.head(3, 0, 1).u64(n).s += "abcdefghijklmn";
    expect_refused(k.write("key_len.gguf"), "exceeds the 65535-byte limit", 24);
    Raw r;
    r.head(3, 0, 1).str("s").u32(8).u64(n).s += "abc";
    expect_refused(r.write("str_len.gguf"), "truncated: key 's' string value", 24 + 8 + 1 + 4 + 8);
    Raw t;
    t.head(3, 1, 0).u64(n).zeros(40);
    expect_refused(t.write("name_len.gguf"), "tensor #0 name length", 24);
  }
}

TEST(GgufHostile, FiveDimensions) {
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {1, 1, 1, 1, 32}, 0, 0).pad().zeros(128).write("dims5.gguf"),
                 "tensor 't': 5 dimensions", 24 + 9);
}

TEST(GgufHostile, ZeroDimension) {
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {4, 0}, 0, 0).pad().zeros(32).write("dim0.gguf"), "dimension 1 of ne [4, 0] is zero");
}

TEST(GgufHostile, OverflowingShape) {
  const std::uint64_t big = std::uint64_t(1) << 32;
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {big, big}, 0, 0).pad().zeros(32).write("ovf_elems.gguf"), "overflows 64 bits");
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {std::uint64_t(1) << 62}, 0, 0).pad().zeros(32).write("ovf_bytes.gguf"),
                 "overflows 64 bits in F32 bytes");
  // 2^62 elements fit, a 2^33-byte row fits, 2^31 such rows do not.
  const std::uint64_t half = std::uint64_t(1) << 31;
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {half, half}, 0, 0).pad().zeros(32).write("ovf_rows.gguf"),
                 "overflows 64 bits in F32 bytes");
}

TEST(GgufHostile, BlockTypeWithPartialBlock) {
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {48}, 8, 0).pad().zeros(64).write("partial.gguf"), "Q8_0 needs ne[0] a multiple of 32");
}

TEST(GgufHostile, UnalignedOffset) {
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {4}, 0, 16).pad().zeros(64).write("unaligned.gguf"),
                 "tensor 't': data offset 16 is not a multiple of the alignment 32", 24 + 9 + 4 + 8 + 4);
}

TEST(GgufHostile, OverlappingTensors) {
  expect_refused(Raw{}.head(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {16}, 0, 32).pad().zeros(128).write("overlap.gguf"),
                 "tensor 'b' overlaps tensor 'a'");
}

TEST(GgufHostile, TensorPastTheEnd) {
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {16}, 0, 0).pad().zeros(63).write("past.gguf"), "runs past the end");
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {16}, 0, ~std::uint64_t(31)).pad().zeros(64).write("past_ovf.gguf"), "runs past the end");
}

TEST(GgufHostile, UnknownValueType) {
  expect_refused(Raw{}.head(3, 0, 1).str("k").u32(13).u32(0).write("vtype.gguf"), "key 'k': unknown value type 13", 24 + 9);
  expect_refused(Raw{}.head(3, 0, 1).str("k").u32(9).u32(77).u64(0).write("etype.gguf"), "unknown array element type 77");
}

TEST(GgufHostile, NestedArrayRefused) {
  expect_refused(Raw{}.head(3, 0, 1).str("k").u32(9).u32(9).u64(0).write("nested.gguf"), "nested arrays are not supported");
}

TEST(GgufHostile, BoolOtherThanZeroOrOne) {
  expect_refused(Raw{}.head(3, 0, 1).str("k").u32(7).u8(2).zeros(8).write("bool.gguf"), "bool byte is 2", 24 + 9 + 4);
}

TEST(GgufHostile, UnknownGgmlType) {
  // At the type field (after the 24-byte header, the 9-byte name, the dimension
  // count and one dimension), not at the dimensions the size check reports.
  expect_refused(Raw{}.head(3, 1, 0).tensor("t", {32}, 99, 0).pad().zeros(256).write("gtype.gguf"), "tensor 't': unknown ggml type 99",
                 24 + 9 + 4 + 8);
}

TEST(GgufHostile, KnownButUnsupportedTypeToFloat) {
  // IQ2_XXS (id 16): 256 elements per 66-byte block; listed and sized, not converted.
  const fs::path p =
      Raw{}.head(3, 2, 0).tensor("blk.0.ffn_up.weight", {256, 2}, 16, 0).tensor("x", {32}, 0, 160).pad().zeros(288).write("iq2.gguf");
  const auto f = vkq::GgufFile::open(p);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].bytes, 132u);
  EXPECT_STREQ(vkq::ggml_type_name(f.tensors()[0].type), "IQ2_XXS");
  EXPECT_EQ(f.to_float(f.tensors()[1]), std::vector<float>(32, 0.0f));  // the file's other tensors still read
  try {
    (void)f.to_float(f.tensors()[0]);
    ADD_FAILURE() << "IQ2_XXS converted";
  } catch (const vkq::FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(p.string()), std::string::npos) << what;
    EXPECT_NE(what.find("tensor 'blk.0.ffn_up.weight': type IQ2_XXS is not supported (vkquant reads F32, F16, Q4_0, "),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("Q4_K"), std::string::npos) << what;
  }
}

TEST(GgufHostile, KQuantWithPartialSuperBlock) {
  // Q6_K rows hold whole 256-element super-blocks; the size check names the tensor.
  expect_refused(Raw{}.head(3, 1, 0).tensor("blk.3.attn_v.weight", {128, 4}, 14, 0).pad().zeros(512).write("q6k_partial.gguf"),
                 "tensor 'blk.3.attn_v.weight': Q6_K needs ne[0] a multiple of 256, got 128");
}

TEST(GgufHostile, NamesWithNul) {
  expect_refused(Raw{}.head(3, 1, 0).tensor(std::string("a\0b", 3), {4}, 0, 0).pad().zeros(32).write("nul_t.gguf"),
                 "tensor #0 name 'a\\x00b' contains a NUL byte", 24);
  expect_refused(Raw{}.head(3, 0, 1).kv_u32(std::string("k\0", 2), 1).write("nul_k.gguf"), "contains a NUL byte", 24);
}

TEST(GgufHostile, OverlongTensorName) {
  const std::string name(vkq::GgufFile::kMaxTensorName + 1, 'n');
  expect_refused(Raw{}.head(3, 1, 0).tensor(name, {4}, 0, 0).pad().zeros(32).write("long.gguf"), "exceeds the 256-byte limit", 24);
}

TEST(GgufHostile, DuplicateKey) {
  expect_refused(Raw{}.head(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2).write("dupkey.gguf"), "duplicate metadata key 'k'", 24 + 17);
}

TEST(GgufHostile, DuplicateTensor) {
  expect_refused(Raw{}.head(3, 2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64).write("dupt.gguf"),
                 "duplicate tensor name 't'");
}

TEST(GgufHostile, AlignmentNotAPowerOfTwo) {
  expect_refused(Raw{}.head(3, 0, 1).kv_u32("general.alignment", 48).write("align48.gguf"), "not a power of two", 24 + 8 + 17 + 4);
  expect_refused(Raw{}.head(3, 0, 1).kv_u32("general.alignment", 0).write("align0.gguf"), "not a power of two");
  expect_refused(Raw{}.head(3, 0, 1).str("general.alignment").u32(8).str("32").write("align_s.gguf"), "must be an unsigned integer");
}

// --- the bundled model --------------------------------------------------------

fs::path models_dir() { return fs::path(__FILE__).parent_path().parent_path() / "models"; }

TEST(GgufModels, KjvLlamaF32AndF16Agree) {
  const fs::path f32_path = models_dir() / "kjv-llama.gguf", f16_path = models_dir() / "kjv-llama-f16.gguf";
  ASSERT_TRUE(fs::exists(f32_path)) << f32_path;
  ASSERT_TRUE(fs::exists(f16_path)) << f16_path;
  const auto a = vkq::GgufFile::open(f32_path);
  const auto b = vkq::GgufFile::open(f16_path);
  EXPECT_EQ(a.get_string("general.architecture"), "llama");
  EXPECT_EQ(b.get_string("general.architecture"), "llama");
  EXPECT_EQ(a.version(), 3u);
  ASSERT_TRUE(a.get_uint("llama.block_count").has_value());
  EXPECT_GT(*a.get_uint("llama.block_count"), 0u);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  ASSERT_NE(a.find_tensor("token_embd.weight"), nullptr);
  std::size_t f16_tensors = 0;
  for (const auto& ta : a.tensors()) {
    const auto* tb = b.find_tensor(ta.name);
    ASSERT_NE(tb, nullptr) << ta.name;
    EXPECT_EQ(ta.ne, tb->ne) << ta.name;
    EXPECT_EQ(ta.type, std::uint32_t(GgmlType::F32)) << ta.name;
    f16_tensors += tb->type == std::uint32_t(GgmlType::F16);
    const auto va = a.to_float(ta), vb = b.to_float(*tb);
    ASSERT_EQ(va.size(), vb.size()) << ta.name;
    for (std::size_t i = 0; i < va.size(); ++i)
      ASSERT_LE(std::fabs(va[i] - vb[i]), std::fabs(va[i]) * 0x1p-11f + 0x1p-24f) << ta.name << "[" << i << "]";
  }
  EXPECT_GT(f16_tensors, 0u);
}

}  // namespace
