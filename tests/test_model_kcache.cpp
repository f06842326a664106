// The 1-bit K-cache end to end on a small random model: keys captured from
// the Vulkan forward, the codec learned (calibrate_keys), the artifact written
// and read back, and the Vulkan forward with coded keys against the CPU
// reference running the same codec; bits stored per key coordinate from the
// buffers' sizes.
#include <gtest/gtest.h>

#include "format_error.hpp"
#include "model_data.hpp"
#include "vk_test.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/cpu_forward.hpp"
#include "vkquant/model/kcache.hpp"
#include "vkquant/model/vk_forward.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq::test {
namespace {

using kernels::WeightType;

// head_dim 32 (the codec packs 32 coordinates per word), GQA 4/2.
TinyModel kcache_model() { return TinyModel{.vocab = 300, .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 32, .ffn = 48, .ctx = 96}; }

std::vector<std::int32_t> tokens(std::size_t n, std::uint32_t seed, std::uint32_t vocab) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> t(n);
  for (auto& x : t) x = std::int32_t(rng() % vocab);
  return t;
}

// Keys of 24 random sequences of 96 tokens, calibrated with rank 4.
const KCalibration& calibration(Device& dev, const ModelFile& f) {
  static std::optional<KCalibration> cal;
  if (cal) return *cal;
  const ModelConfig& c = f.config();
  std::vector<std::vector<float>> pre(c.layers), post(c.layers);
  std::vector<std::uint32_t> positions;
  VkForwardOptions o;
  o.weights = WeightType::f32;
  o.max_batch = 40;  // several steps per sequence: positions come from position()
  const VkForward* running = nullptr;
  o.key_tap = [&](std::uint32_t l, const float* p, const float* q, std::uint32_t n) {
    pre[l].insert(pre[l].end(), p, p + std::size_t(n) * c.kv_dim());
    post[l].insert(post[l].end(), q, q + std::size_t(n) * c.kv_dim());
    if (l == 0)
      for (std::uint32_t t = 0; t < n; ++t) positions.push_back(running->position() + t);
  };
  VkForward fwd(dev, f, o);
  running = &fwd;
  for (std::uint32_t s = 0; s < 24; ++s) {
    fwd.reset();
    fwd.forward(tokens(96, s, c.vocab));
  }
  EXPECT_EQ(post[0].size(), std::size_t(24) * 96 * c.kv_dim());
  EXPECT_EQ(positions[95], 95u);
  EXPECT_EQ(positions[96], 0u);
  cal = calibrate_keys(c, pre, post, positions, CalibrateOptions{.rank = 4, .solver = "procrustes", .seed = 1, .iters = 10, .warm_start = 20});
  cal->model_sha256 = model_sha256(f);
  return *cal;
}

struct KCase {
  const char* name;
  KCacheConfig k;
  double nmse;  // bound on the logits' NMSE against the CPU codec
  VType v = VType::f16;
};

class ModelKCache : public VulkanTest, public ::testing::WithParamInterface<KCase> {};

TEST_P(ModelKCache, VulkanMatchesCpuCodec) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, kcache_model());
  const auto f = ModelFile::open(dir);
  const auto& cal = calibration(dev(), f);
  const KCacheConfig& k = GetParam().k;
  const auto host = load_host_weights(f);
  CpuForward cpu(host, 0, /*fp16_kv=*/true);
  const VType v = GetParam().v;
  cpu.set_kcache(k, &cal, v);
  VkForward gpu(dev(), f,
                VkForwardOptions{.weights = WeightType::f32, .ctx = 0, .max_batch = 16, .kcache = k, .vcache = v, .calibration = &cal});
  const auto ids = tokens(70, 99, 300);
  const std::span<const std::int32_t> prompt(ids.data(), 50), rest(ids.data() + 50, 20);
  // Sign bits of near-zero coordinates may differ between fp32 and fp64 codes.
  const double bound = GetParam().nmse;
  EXPECT_TRUE(nmse(cpu.forward(prompt), gpu.forward(prompt, true), bound));
  for (std::int32_t id : rest) {
    const std::span<const std::int32_t> one(&id, 1);
    ASSERT_TRUE(nmse(cpu.forward(one), gpu.forward(one), bound)) << "position " << gpu.position();
  }
  // Bits stored per key coordinate, from the buffers' sizes: 1 + 16/d for the
  // signs and the fp16 alpha, + 16 r/d for the coefficients, + the front's fp16.
  const double d = 32, ctx = 96;
  const double want = k.one_bit ? 1.0 + 16.0 / d + 16.0 * k.rank / d + 16.0 * k.protect_front / ctx : 16.0;
  EXPECT_NEAR(gpu.key_bits_per_coordinate(), want, 1e-9);
  // Per value coordinate: 16 (fp16); q8 8 + one 32-bit word of fp16 scales per
  // row of 32 (rows are whole words); q4 4 + a (scale, min) word per 32.
  const double want_v = v == VType::f16 ? 16.0 : v == VType::q8 ? 8.0 + 32.0 / d : 4.0 + 32.0 / 32.0;
  EXPECT_NEAR(gpu.value_bits_per_coordinate(), want_v, 1e-9);
}

// Post-RoPE keys are scored in place, in fp32 (query_bits 0) or by popcount
// over the quantized rotated query, which the CPU reference quantizes the same
// way; a query level can still round the other way (fp32 vs fp64 rotation),
// hence the looser bound of the popcount cases.
INSTANTIATE_TEST_SUITE_P(
    Codec, ModelKCache,
    ::testing::Values(KCase{"none_post", KCacheConfig{true, KRope::post, KRotation::none, 0, 0, 0, 0}, 1e-5},
                      KCase{"srht_post", KCacheConfig{true, KRope::post, KRotation::srht, 0, 0, 3, 0}, 1e-5},
                      KCase{"learned_post", KCacheConfig{true, KRope::post, KRotation::learned, 0, 0, 0, 0}, 1e-5},
                      KCase{"learned_post_front5", KCacheConfig{true, KRope::post, KRotation::learned, 0, 5, 0, 0}, 1e-5},
                      KCase{"learned_post_r4", KCacheConfig{true, KRope::post, KRotation::learned, 4, 0, 0, 0}, 1e-5},
                      KCase{"learned_post_pop8", KCacheConfig{true, KRope::post, KRotation::learned, 0, 0, 0, 8}, 1e-4},
                      KCase{"srht_post_pop4_front3", KCacheConfig{true, KRope::post, KRotation::srht, 0, 3, 5, 4}, 1e-4},
                      KCase{"learned_ropemean", KCacheConfig{true, KRope::ropemean, KRotation::learned, 0, 0, 0, 0}, 1e-5},
                      KCase{"learned_ropemean_r4_front2", KCacheConfig{true, KRope::ropemean, KRotation::learned, 4, 2, 0, 0}, 1e-5},
                      KCase{"learned_ropemean_pop8", KCacheConfig{true, KRope::ropemean, KRotation::learned, 0, 0, 0, 8}, 1e-4},
                      KCase{"srht_pre", KCacheConfig{true, KRope::pre, KRotation::srht, 0, 0, 0}, 1e-5},
                      KCase{"learned_pre_r2_front2", KCacheConfig{true, KRope::pre, KRotation::learned, 2, 2, 0}, 1e-5},
                      // Quantized values, alone and beside 1-bit keys (the CPU packs them as the device does).
                      KCase{"fp16_keys_q8_values", KCacheConfig{}, 1e-5, VType::q8},
                      KCase{"fp16_keys_q4_values", KCacheConfig{}, 1e-5, VType::q4},
                      KCase{"learned_pre_q4_values", KCacheConfig{true, KRope::pre, KRotation::learned, 0, 0, 0}, 1e-5, VType::q4},
                      KCase{"learned_ropemean_pop8_q4_values", KCacheConfig{true, KRope::ropemean, KRotation::learned, 0, 0, 0, 8}, 1e-4,
                            VType::q4}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// The spec's rules, one wording each, before any weight is uploaded.
TEST_F(VulkanTest, ModelKvSpecRefusesByName) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, TinyModel{.vocab = 300, .dim = 64, .layers = 1, .heads = 4, .kv_heads = 2, .head_dim = 16, .ffn = 48, .ctx = 32});
  const auto f = ModelFile::open(dir);
  auto refused = [&](const VkForwardOptions& o, const std::string& what) {
    try {
      VkForward gpu(dev(), f, o);
      ADD_FAILURE() << "accepted; expected: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  refused(VkForwardOptions{.vcache = VType::q4}, "--vcache q4: head_dim 16 is not a multiple of 32");
  refused(VkForwardOptions{.kcache = KCacheConfig{true, KRope::post, KRotation::srht, 0, 0, 0}},
          "head_dim 16 is not supported by the 1-bit key codec");
  refused(VkForwardOptions{.kcache = KCacheConfig{false, KRope::pre, KRotation::srht, 0, 0, 0}},
          "--kcache-rope pre|post-ropemean apply to --kcache 1bit");
  EXPECT_EQ((KCacheConfig{true, KRope::ropemean, KRotation::learned, 8, 4, 0, 4}.label()), "1bit learned post-ropemean r8 front4 pop4");
  EXPECT_EQ((KCacheConfig{true, KRope::pre, KRotation::srht, 0, 0, 0}.label()), "1bit srht pre");
  EXPECT_EQ(KCacheConfig{}.label(), "fp16");
}

TEST_F(VulkanTest, ModelKCacheFp16KeysAre16Bits) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, kcache_model());
  VkForward gpu(dev(), ModelFile::open(dir));
  EXPECT_DOUBLE_EQ(gpu.key_bits_per_coordinate(), 16.0);
}

TEST_F(VulkanTest, ModelKCacheArtifact) {
  const auto dir = temp_dir("m");
  write_tiny_model(dir, kcache_model());
  const auto f = ModelFile::open(dir);
  const auto& cal = calibration(dev(), f);
  // Learned rotations fit better than SRHT and no rotation on held-out keys (mean over layers and heads).
  double none = 0, srht = 0, learned = 0;
  for (const auto& L : cal.post)
    for (std::size_t h = 0; h < L.cos_none.size(); ++h) none += L.cos_none[h], srht += L.cos_srht[h], learned += L.cos_learned[h];
  EXPECT_GT(learned, srht);
  EXPECT_GT(learned, none);
  const auto path = dir / "m.vkq.safetensors";
  write_kcache_artifact(path, cal, "test");
  const auto back = read_kcache_artifact(path, f);
  EXPECT_EQ(back.rank, 4u);
  EXPECT_EQ(back.post[1].rot, cal.post[1].rot);
  EXPECT_EQ(back.pre[0].basis, cal.pre[0].basis);
  EXPECT_EQ(back.pre[1].mean, cal.pre[1].mean);
  // Bound to its model: another model (other weights, same shapes) is refused.
  const auto other = temp_dir("other");
  auto m2 = kcache_model();
  m2.seed = 2;
  write_tiny_model(other, m2);
  try {
    (void)read_kcache_artifact(path, ModelFile::open(other));
    FAIL() << "artifact accepted for another model";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("calibrated on another model"), std::string::npos) << e.what();
  }
  // A count past 32 bits in the metadata is refused, not truncated.
  {
    const auto f2 = SafetensorsFile::open(path);
    std::vector<std::vector<float>> values;
    std::vector<TensorWrite> t;
    for (const auto& info : f2.tensors()) values.push_back(f2.to_float(info));
    for (std::size_t i = 0; i < values.size(); ++i) t.push_back(f32_tensor(f2.tensors()[i].name, f2.tensors()[i].shape, values[i]));
    auto meta = f2.metadata();
    meta["layers"] = "4294967298";  // 2 + 2^32
    const auto bad = dir / "bad.vkq.safetensors";
    write_safetensors(bad, t, meta);
    try {
      (void)read_kcache_artifact(bad, f);
      FAIL() << "layers = 2^32 + 2 accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("__metadata__.layers"), std::string::npos) << e.what();
    }
  }
  // Not an artifact at all: the model's own weights file.
  EXPECT_THROW((void)read_kcache_artifact(dir / "model.safetensors", f), FormatError);
}

// ---- hostile artifacts (no device needed): one test per case, each error
// naming the artifact, the key or tensor, and the byte offset where known ----

class KCacheArtifactHostile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(temp_dir("kcache_hostile"));
    write_tiny_model(*dir_, kcache_model());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static ModelFile model() { return ModelFile::open(*dir_); }
  // A valid artifact for the model (identity rotations, zero means, rank 0;
  // all three codecs) after `mutate` had a go at its tensors and metadata.
  static std::filesystem::path artifact(
      const std::string& name,
      const std::function<void(std::map<std::string, std::pair<std::vector<std::uint64_t>, std::vector<float>>>&,
                               std::map<std::string, std::string>&)>& mutate = {}) {
    const auto f = model();
    const ModelConfig& c = f.config();
    KCalibration k;
    k.layers = c.layers, k.kv_heads = c.kv_heads, k.head_dim = c.head_dim, k.rank = 0, k.tokens = 10, k.seed = 1;
    k.solver = "procrustes";
    k.model_sha256 = model_sha256(f);
    const std::size_t kv = c.kv_heads, hd = c.head_dim;
    KLayerCalib L;
    L.mean.assign(kv * hd, 0.0f);
    L.rot.assign(kv * hd * hd, 0.0f);
    for (std::size_t h = 0; h < kv; ++h)
      for (std::size_t i = 0; i < hd; ++i) L.rot[(h * hd + i) * hd + i] = 1.0f;
    L.cos_none = L.cos_srht = L.cos_learned_train = L.cos_learned = L.cos_eff = std::vector<double>(kv, 0.5);
    k.post = k.pre = k.ropemean = std::vector<KLayerCalib>(c.layers, L);
    const auto path = *dir_ / name;
    write_kcache_artifact(path, k, "test");
    if (!mutate) return path;
    const auto st = SafetensorsFile::open(path);
    std::map<std::string, std::pair<std::vector<std::uint64_t>, std::vector<float>>> tensors;
    for (const auto& t : st.tensors()) tensors[t.name] = {t.shape, st.to_float(t)};
    auto meta = st.metadata();
    mutate(tensors, meta);
    std::vector<TensorWrite> w;
    for (const auto& [n, t] : tensors) w.push_back(f32_tensor(n, t.first, t.second));
    write_safetensors(path, w, meta);
    return path;
  }
  // read_kcache_artifact(`path`) throws a FormatError for `path` holding
  // `fragment` and `key` at byte `at` (kNoOffset: none known).
  static void expect_refused(const std::filesystem::path& path, const std::string& fragment, const std::string& key,
                             std::uint64_t at = FormatError::kNoOffset) {
    expect_format_error([&] { (void)read_kcache_artifact(path, model()); }, path, fragment, key, at);
  }
  // The file offset of tensor `name` in `path`.
  static std::uint64_t offset_of(const std::filesystem::path& path, const std::string& name) {
    return SafetensorsFile::open(path).at(name).offset;
  }
  static std::filesystem::path* dir_;
};
std::filesystem::path* KCacheArtifactHostile::dir_ = nullptr;

TEST_F(KCacheArtifactHostile, ValidOneIsRead) {
  const auto k = read_kcache_artifact(artifact("ok.vkq.safetensors"), model());
  EXPECT_EQ(k.layers, 2u);
  EXPECT_EQ(k.ropemean.size(), 2u);
  EXPECT_EQ(k.post[1].rot[33], 1.0f);  // head 0, row 1, column 1
}

TEST_F(KCacheArtifactHostile, Truncated) {
  const auto path = artifact("trunc.vkq.safetensors");
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 100);
  // The last tensor in the data (8 KiB) loses its end; found from the header alone.
  expect_refused(path, "run past the end of the data", "tensor \"layers.1.k_rm_rot\"", FormatError::kNoOffset);
}

TEST_F(KCacheArtifactHostile, HeaderLengthPastTheEnd) {
  const auto path = artifact("hdr.vkq.safetensors");
  std::filesystem::resize_file(path, 64);
  expect_refused(path, "runs past the end of the 64-byte file", "header length", 0);
}

TEST_F(KCacheArtifactHostile, UnsupportedFormatVersion) {
  const auto path = artifact("v3.vkq.safetensors", [](auto&, auto& m) { m["format_version"] = "3"; });
  expect_refused(path, "3 is not supported", "__metadata__.format_version");
}

TEST_F(KCacheArtifactHostile, NotAnArtifact) {
  const auto path = artifact("fmt.vkq.safetensors", [](auto&, auto& m) { m["format"] = "gguf"; });
  expect_refused(path, "'gguf' is not vkquant-kcache", "__metadata__.format");
}

TEST_F(KCacheArtifactHostile, CountOf2To64Minus1) {
  const auto path = artifact("u64max.vkq.safetensors", [](auto&, auto& m) { m["kv_heads"] = "18446744073709551615"; });
  expect_refused(path, "18446744073709551615 is out of range", "__metadata__.kv_heads");
}

TEST_F(KCacheArtifactHostile, CountOf2To64) {
  const auto path = artifact("u64over.vkq.safetensors", [](auto&, auto& m) { m["head_dim"] = "18446744073709551616"; });
  expect_refused(path, "'18446744073709551616' is not a number", "__metadata__.head_dim");
}

TEST_F(KCacheArtifactHostile, CountOf2To63) {
  const auto path = artifact("tok63.vkq.safetensors", [](auto&, auto& m) { m["seed"] = "9223372036854775808"; });
  expect_refused(path, "9223372036854775808 is out of range", "__metadata__.seed");
}

TEST_F(KCacheArtifactHostile, NegativeCountRefused) {
  // std::stoull reads "-1" as 2^64 - 1: a negative token count must not wrap.
  const auto path = artifact("neg.vkq.safetensors", [](auto&, auto& m) { m["tokens"] = "-1"; });
  expect_refused(path, "'-1' is not a number", "__metadata__.tokens");
}

TEST_F(KCacheArtifactHostile, ShapeContradictingTheModel) {
  const auto path = artifact("shape.vkq.safetensors", [](auto& t, auto&) { t["layers.0.k_rot"].first = {64, 32}; });
  expect_refused(path, "shape [64, 32], expected [2, 32, 32]", "tensor 'layers.0.k_rot'", offset_of(path, "layers.0.k_rot"));
}

TEST_F(KCacheArtifactHostile, NonfiniteValuesCounted) {
  const auto path = artifact("nan.vkq.safetensors", [](auto& t, auto&) {
    auto& v = t["layers.1.k_pre_rot"].second;
    v[0] = std::nanf("");
    v[100] = INFINITY;
  });
  expect_refused(path, "2 of 2048 values are NaN or Inf", "tensor 'layers.1.k_pre_rot'", offset_of(path, "layers.1.k_pre_rot"));
}

TEST_F(KCacheArtifactHostile, WrongDtypeNamesTheTensor) {
  // Was read through to_float (F16 and BF16 converted); the artifact is F32, as the MLP part always checked.
  const auto path = artifact("f16.vkq.safetensors");
  {
    const auto st = SafetensorsFile::open(path);
    std::vector<std::vector<float>> values;
    for (const auto& t : st.tensors()) values.push_back(st.to_float(t));
    std::vector<TensorWrite> w;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto& t = st.tensors()[i];
      w.push_back(f32_tensor(t.name, t.shape, values[i]));
      if (t.name == "layers.1.k_rot") {
        w.back().dtype = DType::F16;
        w.back().data = w.back().data.first(w.back().data.size() / 2);
      }
    }
    write_safetensors(path, w, st.metadata());  // atomic: the mapping keeps the old file
  }
  expect_refused(path, "dtype F16, expected F32", "tensor 'layers.1.k_rot'", offset_of(path, "layers.1.k_rot"));
}

TEST_F(KCacheArtifactHostile, MissingTensor) {
  const auto path = artifact("missing.vkq.safetensors", [](auto& t, auto&) { t.erase("layers.1.k_pre_mean"); });
  expect_refused(path, "no tensor named", "\"layers.1.k_pre_mean\"");
}

}  // namespace
}  // namespace vkq::test
