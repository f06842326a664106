// Weights kept as stored: ModelFile::load_stored hands out the file's bytes
// (F32/F16/BF16, ggml block types), VkForward uploads them unconverted, hashes
// them in the same pass, and its logits match the CPU reference run on the
// same weights decoded to fp32 (ModelFile::load), for every weight type.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/kernels/linear.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/vk_forward.hpp"
#include "vkquant/quant.hpp"

namespace vkq::test {
namespace {

namespace fs = std::filesystem;

// A copy of the bundled GGUF llama with every matrix stored as `t` (rows that
// are not whole blocks of `t`, the 704-wide ffn_down under the k-quants,
// become Q8_0, as llama.cpp's fallback does for 256-blocks it cannot use).
// Quantized from the F32 values where quant::quantize writes `t`; random
// valid blocks otherwise.
fs::path requantized(quant::Type t, const std::string& model = "kjv-llama") {
  const auto src = GgufFile::open(source_path("models/" + model + ".gguf"));
  const fs::path out = temp_dir("stored") / (model + "-" + quant::info(t).name + ".gguf");
  std::vector<std::vector<std::byte>> data;
  std::vector<GgufTensorWrite> tensors;
  std::uint64_t seed = 1;
  for (const auto& info : src.tensors()) {
    GgufTensorWrite w{info.name, info.type, info.ne, src.data(info)};
    // Matrices and expert banks; the MoE router stays F32 as llama.cpp keeps it.
    if (info.ne.size() >= 2 && info.name.find("ffn_gate_inp") == std::string::npos) {
      quant::Type to = t;
      if (info.ne[0] % quant::info(to).block != 0) to = quant::Type::q8_0;
      const auto values = src.to_float(info);
      auto& bytes = data.emplace_back(quant::row_bytes(to, info.ne[0]) * (info.elements() / info.ne[0]));
      if (quant::can_quantize(to)) {
        quant::quantize(to, values, bytes);
      } else {
        quant::fill_random_blocks(to, bytes, seed++);
      }
      w.type = std::uint32_t(to);
      w.data = bytes;
    }
    tensors.push_back(w);
  }
  write_gguf(out, src.metadata(), tensors, std::uint32_t(src.alignment()));
  return out;
}

class ModelStored : public VulkanTest, public ::testing::WithParamInterface<quant::Type> {};

TEST_P(ModelStored, VulkanMatchesCpuOnTheSameWeights) {
  const quant::Type t = GetParam();
  const auto path = requantized(t);
  const auto file = ModelFile::open(path);
  EXPECT_EQ(file.dtype(Role::wq, 0), quant::info(t).ggml_name);
  const auto host = load_host_weights(file);
  CpuForward cpu(host, 0, /*fp16_kv=*/true);
  VkForward gpu(dev(), file, VkForwardOptions{.ctx = 64, .max_batch = 9});
  // Uploaded as stored: the device holds the file's bytes, each matrix row
  // padded to linear_row_bytes (16 bytes), the norms F32 as in the file.
  std::uint64_t stored = 0, padded = 0, rows = 0;
  file.for_each_stored([&](Role, std::uint32_t, const StoredWeight& w) {
    stored += w.bytes.size();
    if (w.shape.size() == 1) {
      padded += w.bytes.size();
    } else {
      padded += w.rows() * kernels::linear_row_bytes(std::uint32_t(w.cols()), w.type);
      rows += w.rows();
    }
  });
  const auto mem = gpu.memory();
  EXPECT_EQ(mem.file_weights, stored);
  EXPECT_EQ(mem.weights, padded);
  EXPECT_LE(padded - stored, 15 * rows);  // 16-byte rows: at most 15 bytes of padding a row
  EXPECT_EQ(gpu.model_sha256(), model_sha256(file));
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 30; ++i) ids.push_back((i * 41 + 7) % 256);
  const std::span<const std::int32_t> prompt(ids.data(), 20), rest(ids.data() + 20, ids.size() - 20);
  // Same weights, fp32 accumulation in another order: NMSE 1e-7 (as the tiny
  // models' f32 check in test_model_vk.cpp).
  EXPECT_TRUE(nmse(cpu.forward(prompt), gpu.forward(prompt, true), 1e-7));
  for (std::int32_t id : rest) {
    const std::span<const std::int32_t> one(&id, 1);
    ASSERT_TRUE(nmse(cpu.forward(one), gpu.forward(one), 1e-7)) << "position " << gpu.position();
  }
}

INSTANTIATE_TEST_SUITE_P(Types, ModelStored,
                         ::testing::Values(quant::Type::f16, quant::Type::bf16, quant::Type::q8_0, quant::Type::q4_0,
                                           quant::Type::q4_1, quant::Type::q5_0, quant::Type::q5_1, quant::Type::q2_k,
                                           quant::Type::q3_k, quant::Type::q4_k, quant::Type::q5_k, quant::Type::q6_k,
                                           quant::Type::iq4_nl, quant::Type::iq4_xs),
                         [](const auto& param_info) { return std::string(quant::info(param_info.param).name); });

// The MoE expert banks go through the same kernels (linear_id) as stored:
// OLMoE's gate/up banks in the type, its 128-wide down bank Q8_0 under the
// k-quants, the router F32.
class ModelStoredMoe : public VulkanTest, public ::testing::WithParamInterface<quant::Type> {};

TEST_P(ModelStoredMoe, VulkanMatchesCpuOnTheSameWeights) {
  const auto file = ModelFile::open(requantized(GetParam(), "kjv-olmoe"));
  EXPECT_EQ(file.dtype(Role::exp_gate, 0), quant::info(GetParam()).ggml_name);
  const auto host = load_host_weights(file);
  CpuForward cpu(host, 0, /*fp16_kv=*/true);
  VkForward gpu(dev(), file, VkForwardOptions{.ctx = 64, .max_batch = 9});
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 24; ++i) ids.push_back((i * 53 + 3) % 256);
  const std::span<const std::int32_t> prompt(ids.data(), 18), rest(ids.data() + 18, ids.size() - 18);
  EXPECT_TRUE(nmse(cpu.forward(prompt), gpu.forward(prompt, true), 1e-7));
  for (std::int32_t id : rest) {
    const std::span<const std::int32_t> one(&id, 1);
    ASSERT_TRUE(nmse(cpu.forward(one), gpu.forward(one), 1e-7)) << "position " << gpu.position();
  }
}

INSTANTIATE_TEST_SUITE_P(Types, ModelStoredMoe, ::testing::Values(quant::Type::q8_0, quant::Type::q4_k, quant::Type::bf16),
                         [](const auto& param_info) { return std::string(quant::info(param_info.param).name); });

TEST(ModelStoredFile, BytesComeFromTheMappingAndDecodeToLoad) {
  const auto file = ModelFile::open(source_path("models/kjv-llama-f16.gguf"));
  const auto g = GgufFile::open(source_path("models/kjv-llama-f16.gguf"));
  // wv: not permuted, so the stored bytes are the file's own, in its mapping
  // (no copy: `owned` stays empty).
  const auto wv = file.load_stored(Role::wv, 1);
  EXPECT_EQ(wv.type, quant::Type::f16);
  EXPECT_TRUE(wv.owned.empty());
  const auto raw = g.data(*g.find_tensor("blk.1.attn_v.weight"));
  ASSERT_EQ(wv.bytes.size(), raw.size());
  EXPECT_TRUE(std::equal(wv.bytes.begin(), wv.bytes.end(), raw.begin()));
  // wq: GGUF llama rows un-permuted into an owned copy; decoded, it is load().
  for (Role r : {Role::wq, Role::wk, Role::wv, Role::w_down}) {
    const auto s = file.load_stored(r, 2);
    std::vector<float> f(file.load(r, 2).size());
    quant::dequantize(s.type, s.bytes, f);
    EXPECT_EQ(f, file.load(r, 2)) << role_name(r);
  }
  EXPECT_FALSE(file.load_stored(Role::wq, 0).owned.empty());
}

TEST(ModelStoredFile, HashCoversTypeAndBytes) {
  // The F32 and F16 copies of one model hash differently; the same file the same.
  const auto a = ModelFile::open(source_path("models/kjv-llama.gguf"));
  const auto b = ModelFile::open(source_path("models/kjv-llama-f16.gguf"));
  EXPECT_EQ(model_sha256(a), model_sha256(ModelFile::open(source_path("models/kjv-llama.gguf"))));
  EXPECT_NE(model_sha256(a), model_sha256(b));
  EXPECT_EQ(model_sha256(a).size(), 64u);
}

TEST_F(VulkanTest, ModelStoredArtifactBindingIsCheckedWhileLoading) {
  // run/ppl read the artifact without hashing the model (deferred binding);
  // VkForward compares it with the hash it takes while uploading. The bundled
  // artifact is bound to models/kjv-llama (F32 safetensors): its F16 GGUF copy
  // has the same shapes but other stored bytes.
  const auto art = source_path("models/kjv-llama.vkq.safetensors");
  const auto own = ModelFile::open(source_path("models/kjv-llama"));
  const auto k = read_kcache_artifact(art, own, /*deferred_binding=*/true);
  EXPECT_NO_THROW(VkForward(dev(), own, VkForwardOptions{.ctx = 16, .calibration = &k}));
  const auto other = ModelFile::open(source_path("models/kjv-llama-f16.gguf"));
  const auto k2 = read_kcache_artifact(art, other, /*deferred_binding=*/true);
  try {
    VkForward(dev(), other, VkForwardOptions{.ctx = 16, .calibration = &k2});
    FAIL() << "an artifact of another model was accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("calibrated on another model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("kjv-llama.vkq.safetensors"), std::string::npos) << e.what();
  }
  // Not deferred: the reader hashes the model itself.
  EXPECT_THROW((void)read_kcache_artifact(art, other), FormatError);
}

TEST(ModelStoredFile, RefusesAnUnreadableTypeNamingTensorAndType) {
  // ffn_up of layer 0 re-labelled IQ2_XXS (ggml type 16: 256-element blocks
  // of 66 bytes; 256 x 704 needs 704 of them).
  const auto src = GgufFile::open(source_path("models/kjv-llama.gguf"));
  const fs::path out = temp_dir("stored") / "iq2.gguf";
  std::vector<GgufTensorWrite> tensors;
  std::vector<std::byte> iq2;
  for (const auto& info : src.tensors()) {
    GgufTensorWrite w{info.name, info.type, info.ne, src.data(info)};
    if (info.name == "blk.0.ffn_up.weight") {
      iq2.assign(info.ne[1] * info.ne[0] / 256 * 66, std::byte{0});
      w.type = 16;
      w.data = iq2;
    }
    tensors.push_back(w);
  }
  write_gguf(out, src.metadata(), tensors, std::uint32_t(src.alignment()));
  try {
    const auto f = ModelFile::open(out);
    (void)f.load_stored(Role::w_up, 0);
    FAIL() << "an IQ2_XXS tensor was read";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_up.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vkq::test

namespace vkq::test {
namespace {

// Resident bytes of the mapping that holds `p` (/proc/self/smaps "Rss:").
std::uint64_t mapping_rss(const void* p) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const auto a = std::uintptr_t(p);
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    unsigned long kb = 0;
    if (inside && std::sscanf(line.c_str(), "Rss: %lu kB", &kb) == 1) return std::uint64_t(kb) << 10;
  }
  return ~std::uint64_t(0);
}

TEST(MappedFilePages, DropReleasesResidentPagesAndRereadsTheSameBytes) {
  const auto path = temp_dir("pages") / "eight.bin";
  std::vector<std::byte> data(8u << 20);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::byte(i * 131 % 251);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
  }
  const auto f = MappedFile::open(path);
  const auto b = f.bytes();
  ASSERT_TRUE(std::equal(b.begin(), b.end(), data.begin()));  // every page touched
  EXPECT_GE(mapping_rss(b.data()), std::uint64_t(8u << 20));
  f.drop_pages(b.subspan(4096, b.size() - 8192));  // all but the first and last page
  EXPECT_LE(mapping_rss(b.data()), std::uint64_t(64u << 10));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), data.begin()));  // faulted back in from the file
  // Bytes outside the mapping (a heap copy) are never touched.
  const std::vector<std::byte> copy = data;
  f.drop_pages(copy);
  EXPECT_EQ(copy, data);
}

}  // namespace
}  // namespace vkq::test
