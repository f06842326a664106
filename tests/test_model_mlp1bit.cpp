// 1-bit MLP calibration (host): learned rotations beat the SRHT on a planted
// matrix and not on Gaussian rows (null control), the held-out rows are
// never fitted, rotations are orthogonal and preserve W x, calibrate_mlp on
// dense and MoE models, and the artifact tensors' round trip and refusals.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>

#include "format_error.hpp"
#include "model_data.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/fwht.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/mlp1bit.hpp"
#include "vkquant/rotation/learn.hpp"

namespace vkq::test {
namespace {

// Row-wise (out, in) matrix with N(0, 1) entries.
std::vector<float> gaussian(std::uint32_t out, std::uint32_t in, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> w(std::size_t(out) * in);
  for (auto& v : w) v = g(rng);
  return w;
}

// Rows w_i = Qᵀ (s_i + noise), s_i ∈ {±1}^in, Q = B · SRHT(seed) with B
// block-diagonal (blocks of `block`), each block a Cayley rotation of angle
// ~theta: every row is nearly a sign vector after Q. The SRHT alone keeps
// little of it; B lies within reach of both learners' starts.
std::vector<float> planted(std::uint32_t out, std::uint32_t in, std::uint32_t block, std::uint32_t seed, double theta) {
  Eigen::MatrixXd b = Eigen::MatrixXd::Zero(in, in);
  for (std::uint32_t k = 0; k < in / block; ++k) {
    const auto g = gaussian(block, block, seed + 10 + k);
    Eigen::MatrixXd a(block, block);
    for (std::uint32_t i = 0; i < block; ++i)
      for (std::uint32_t j = 0; j < block; ++j) a(i, j) = g[std::size_t(i) * block + j];
    Eigen::MatrixXd sk = a - a.transpose();
    sk *= theta / 2 * std::sqrt(double(block)) / sk.norm();
    const Eigen::MatrixXd id = Eigen::MatrixXd::Identity(block, block);
    b.block(k * block, k * block, block, block) = (id - sk).inverse() * (id + sk);
  }
  const Eigen::MatrixXd q = b * rot::srht_matrix(in, seed);
  std::mt19937 rng(seed + 1);
  std::normal_distribution<double> noise(0, 0.15);
  std::vector<float> w(std::size_t(out) * in);
  Eigen::VectorXd s(in);
  for (std::uint32_t i = 0; i < out; ++i) {
    for (std::uint32_t j = 0; j < in; ++j) s(j) = (rng() & 1 ? 1.0 : -1.0) + noise(rng);
    const Eigen::VectorXd v = q.transpose() * s;
    for (std::uint32_t j = 0; j < in; ++j) w[std::size_t(i) * in + j] = float(v(j));
  }
  return w;
}

// Mean over `rows` of cos1b of the rows of y (., width) after mean removal.
double centered_cos(const std::vector<float>& y, std::uint32_t width, const std::vector<std::uint32_t>& rows) {
  double sum = 0;
  for (auto r : rows) {
    double mean = 0, l1 = 0, l2 = 0;
    for (std::uint32_t j = 0; j < width; ++j) mean += y[std::size_t(r) * width + j];
    mean /= width;
    for (std::uint32_t j = 0; j < width; ++j) {
      const double v = y[std::size_t(r) * width + j] - mean;
      l1 += std::abs(v), l2 += v * v;
    }
    sum += l1 / (std::sqrt(double(width) * l2));
  }
  return sum / double(rows.size());
}

MlpCalibrateOptions fast_options() {
  MlpCalibrateOptions o;
  o.seed = 3;
  o.block = 32;
  o.iters = 15;
  return o;
}

// ---- calibration math ----------------------------------------------------------------------

TEST(MlpCalib, LearnedBeatsSrhtOnPlantedMatrix) {
  const std::uint32_t out = 400, in = 128;
  auto o = fast_options();
  o.block = 64;
  const auto w = planted(out, in, o.block, o.seed, 0.8);
  const MlpMatrixCalib c = calibrate_mlp_matrix(w, out, in, o);
  EXPECT_EQ(c.padded_in, 128u);
  EXPECT_LT(c.srht.heldout, 0.86);
  EXPECT_GT(c.dense.heldout, c.srht.heldout + 0.10);
  EXPECT_GT(c.structured.heldout, c.srht.heldout + 0.10);
  // Gaussian rows of the same covariance: the same learners stay near the
  // floor.
  EXPECT_LT(c.null_dense.heldout, c.dense.heldout - 0.08);
  EXPECT_LT(c.null_structured.heldout, c.structured.heldout - 0.08);
  EXPECT_LT(c.null_dense.heldout, 0.84);
  EXPECT_GT(c.structured.heldout, 0.95);
}

// The structured blocks start from the identity after the SRHT and each is a
// monotone ascent: never below the SRHT on the training rows, any data.
TEST(MlpCalib, StructuredNeverBelowSrhtOnTrain) {
  for (std::uint32_t in : {40u, 200u}) {
    const auto w = gaussian(90, in, in);
    auto o = fast_options();
    o.null_control = false;
    const MlpMatrixCalib c = calibrate_mlp_matrix(w, 90, in, o);
    EXPECT_GE(c.structured.train, c.srht.train - 1e-9) << "in " << in;
    EXPECT_EQ(c.padded_in, in == 40 ? 64u : 256u);
    EXPECT_EQ(c.blocks.size(), std::size_t(c.padded_in) * 32);
  }
}

// Few rows per column: the dense R fits the training rows far above what it
// reaches on rows it never saw, and the reported held-out figure is the one
// recomputed here from the split and the returned R.
TEST(MlpCalib, HeldOutRowsAreNotFitted) {
  const std::uint32_t out = 60, in = 64;
  const auto w = gaussian(out, in, 5);
  const MlpCalibrateOptions o = fast_options();
  const MlpMatrixCalib c = calibrate_mlp_matrix(w, out, in, o);
  const rot::Split split = rot::split_rows(out, o.heldout, o.seed);
  ASSERT_EQ(split.heldout.size(), 6u);
  EXPECT_GT(c.dense.train, c.dense.heldout + 0.03);
  EXPECT_LT(c.dense.heldout, 0.85);

  const std::uint32_t p = c.padded_in;
  for (MlpRotation r : {MlpRotation::none, MlpRotation::srht, MlpRotation::dense, MlpRotation::structured}) {
    const auto wr = mlp_rotate_rows(w, out, in, &c, r);  // rows of W'
    const std::uint32_t width = mlp_rotated_width(in, r);
    const MlpCos want = r == MlpRotation::none    ? c.none
                        : r == MlpRotation::srht  ? c.srht
                        : r == MlpRotation::dense ? c.dense
                                                  : c.structured;
    EXPECT_NEAR(centered_cos(wr, width, split.train), want.train, 1e-5) << mlp_rotation_name(r);
    EXPECT_NEAR(centered_cos(wr, width, split.heldout), want.heldout, 1e-5) << mlp_rotation_name(r);
    EXPECT_EQ(width, r == MlpRotation::none ? in : p);
  }
}

TEST(MlpCalib, RotationsAreOrthogonal) {
  const std::uint32_t out = 50, in = 100;
  const MlpMatrixCalib c = calibrate_mlp_matrix(gaussian(out, in, 9), out, in, fast_options());
  const std::uint32_t p = c.padded_in, b = c.block;
  ASSERT_EQ(p, 128u);
  ASSERT_EQ(b, 32u);
  const Eigen::Map<const Eigen::Matrix<float, -1, -1, Eigen::RowMajor>> r(c.dense_rot.data(), p, p);
  // The dense R is stored (and so rounded) in fp16: orthogonal to fp16's
  // precision, each entry within 2^-12 relative of the learned one.
  EXPECT_LT((r * r.transpose() - Eigen::MatrixXf::Identity(p, p)).cwiseAbs().maxCoeff(), 5e-4);
  EXPECT_GT((r * r.transpose() - Eigen::MatrixXf::Identity(p, p)).cwiseAbs().maxCoeff(), 1e-6);  // it is rounded
  for (std::uint32_t k = 0; k < p / b; ++k) {
    const Eigen::Map<const Eigen::Matrix<float, -1, -1, Eigen::RowMajor>> bk(c.blocks.data() + std::size_t(k) * b * b,
                                                                             b, b);
    EXPECT_LT((bk * bk.transpose() - Eigen::MatrixXf::Identity(b, b)).cwiseAbs().maxCoeff(), 1e-4) << "block " << k;
  }
}

// (R w)·(R x) = w·x for every rotation, padded width included.
TEST(MlpCalib, RotatedRowsPreserveProducts) {
  const std::uint32_t out = 30, in = 40, n = 7;
  const auto w = gaussian(out, in, 1), x = gaussian(n, in, 2);
  const MlpMatrixCalib c = calibrate_mlp_matrix(w, out, in, fast_options());
  for (MlpRotation r : {MlpRotation::none, MlpRotation::srht, MlpRotation::dense, MlpRotation::structured}) {
    const auto wr = mlp_rotate_rows(w, out, in, &c, r), xr = mlp_rotate_rows(x, n, in, &c, r);
    const std::uint32_t width = mlp_rotated_width(in, r);
    double err = 0;
    for (std::uint32_t t = 0; t < n; ++t)
      for (std::uint32_t i = 0; i < out; ++i) {
        double a = 0, b = 0;
        for (std::uint32_t j = 0; j < in; ++j) a += double(w[i * in + j]) * x[t * in + j];
        for (std::uint32_t j = 0; j < width; ++j) b += double(wr[i * width + j]) * xr[t * width + j];
        err = std::max(err, std::abs(a - b));
      }
    // |w·x| ~ 6 here; the dense R, stored in fp16, keeps products to ~1e-3
    // relative (1-bit codes err by ~50 %), the others to fp32 rounding.
    EXPECT_LT(err, r == MlpRotation::dense ? 2e-2 : 1e-4) << mlp_rotation_name(r);
  }
  // The SRHT without a calibration is seed 0, the fwht kernels' signs.
  const auto s0 = mlp_rotate_rows(std::vector<float>(in, 0.f), 1, in, nullptr, MlpRotation::srht);
  EXPECT_EQ(s0.size(), 64u);
  EXPECT_THROW(mlp_rotate_rows(x, n, in, nullptr, MlpRotation::dense), Error);
}

TEST(MlpCalib, RejectsBadOptions) {
  const auto w = gaussian(10, 64, 1);
  auto o = fast_options();
  o.block = 24;
  EXPECT_THROW(calibrate_mlp_matrix(w, 10, 64, o), Error);
  o = fast_options();
  o.solver = "sgd";
  EXPECT_THROW(calibrate_mlp_matrix(w, 10, 64, o), Error);
  EXPECT_THROW(calibrate_mlp_matrix(w, 10, 63, fast_options()),
               Error);  // size mismatch
  EXPECT_THROW(calibrate_mlp_matrix(std::vector<float>(64), 1, 64, fast_options()), Error);
  EXPECT_EQ(mlp_rotation_from_name("structured"), MlpRotation::structured);
  EXPECT_FALSE(mlp_rotation_from_name("learned").has_value());
}

// ---- models --------------------------------------------------------------------------------

TinyModel mlp_model() {
  return TinyModel{
      .vocab = 300, .dim = 48, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 12, .ffn = 40, .ctx = 64};
}

TEST(MlpCalib, CalibratesDenseModelAndSkipsMoe) {
  const auto dir = temp_dir("mlp_dense");
  write_tiny_model(dir, mlp_model());
  const ModelFile f = ModelFile::open(dir);
  std::size_t calls = 0;
  const MlpCalibration m = calibrate_mlp(f, fast_options(), [&](std::size_t done, std::size_t total) {
    EXPECT_EQ(total, 6u);
    EXPECT_EQ(done, ++calls);
  });
  EXPECT_EQ(calls, 6u);
  ASSERT_EQ(m.layers.size(), 2u);
  const MlpMatrixCalib& gate = m.layers[1][MlpMatrix::gate];
  const MlpMatrixCalib& down = m.layers[1][MlpMatrix::down];
  EXPECT_EQ(gate.out, 40u);
  EXPECT_EQ(gate.in, 48u);
  EXPECT_EQ(down.out, 48u);
  EXPECT_EQ(down.in, 40u);
  EXPECT_EQ(down.padded_in, 64u);
  // The same matrix calibrated alone gives the same rotation (deterministic).
  const auto w = f.load(Role::w_down, 1);
  const MlpMatrixCalib again = calibrate_mlp_matrix(w, 48, 40, fast_options());
  EXPECT_EQ(again.dense_rot, down.dense_rot);
  EXPECT_EQ(again.blocks, down.blocks);

  auto moe = mlp_model();
  moe.architecture = "OlmoeForCausalLM";
  moe.experts = 4, moe.experts_used = 2;
  const auto mdir = temp_dir("mlp_moe");
  write_tiny_model(mdir, moe);
  const MlpCalibration none = calibrate_mlp(ModelFile::open(mdir), fast_options());
  EXPECT_TRUE(none.layers.empty());
}

// ---- artifact ------------------------------------------------------------------------------

class MlpArtifact : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(temp_dir("mlp_artifact"));
    write_tiny_model(*dir_, mlp_model());
    calib_ = new MlpCalibration(calibrate_mlp(ModelFile::open(*dir_), fast_options()));
  }
  static void TearDownTestSuite() {
    delete calib_;
    delete dir_;
  }
  ModelConfig config() const { return ModelFile::open(*dir_).config(); }
  // Writes the artifact after `mutate` had a go at its tensors and metadata.
  std::filesystem::path write(
      const std::string& name,
      const std::function<void(std::vector<TensorWrite>&, std::map<std::string, std::string>&)>& mutate = {}) {
    std::vector<TensorWrite> t;
    std::map<std::string, std::string> meta{{"format", "test"}};
    append_mlp_artifact(*calib_, t, meta);
    if (mutate) mutate(t, meta);
    const auto path = *dir_ / name;
    write_safetensors(path, t, meta);
    return path;
  }
  // The FormatError message reading `path` raises.
  std::string error_of(const std::filesystem::path& path) {
    try {
      read_mlp_artifact(SafetensorsFile::open(path), config());
    } catch (const FormatError& e) {
      return e.what();
    }
    return "no error";
  }
  // read_mlp_artifact(`path`) throws a FormatError for `path` holding
  // `fragment` and `key` at byte `at` (kNoOffset: none known).
  void expect_refused(const std::filesystem::path& path, const std::string& fragment, const std::string& key,
                      std::uint64_t at = FormatError::kNoOffset) {
    expect_format_error([&] { (void)read_mlp_artifact(SafetensorsFile::open(path), config()); }, path, fragment, key, at);
  }
  static std::filesystem::path* dir_;
  static MlpCalibration* calib_;
};
std::filesystem::path* MlpArtifact::dir_ = nullptr;
MlpCalibration* MlpArtifact::calib_ = nullptr;

TEST_F(MlpArtifact, RoundTrip) {
  const auto path = write("ok.vkq.safetensors");
  const SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_NE(f.find("layers.0.mlp.gate.rot"), nullptr);
  EXPECT_EQ(f.at("layers.1.mlp.down.rot_blocks").shape, (std::vector<std::uint64_t>{2, 32, 32}));
  const auto back = read_mlp_artifact(f, config());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->seed, calib_->seed);
  EXPECT_EQ(back->block, calib_->block);
  EXPECT_EQ(back->solver, calib_->solver);
  EXPECT_EQ(back->heldout_fraction, calib_->heldout_fraction);
  ASSERT_EQ(back->layers.size(), 2u);
  for (std::size_t l = 0; l < 2; ++l)
    for (MlpMatrix k : kMlpMatrices) {
      const MlpMatrixCalib &a = calib_->layers[l][k], &b = back->layers[l][k];
      EXPECT_EQ(a.out, b.out);
      EXPECT_EQ(a.in, b.in);
      EXPECT_EQ(a.padded_in, b.padded_in);
      EXPECT_EQ(a.block, b.block);
      EXPECT_EQ(a.seed, b.seed);
      EXPECT_EQ(a.dense_rot, b.dense_rot);
      EXPECT_EQ(a.blocks, b.blocks);
      EXPECT_EQ(a.dense.heldout, b.dense.heldout);
      EXPECT_EQ(a.structured.train, b.structured.train);
      EXPECT_EQ(a.null_structured.heldout, b.null_structured.heldout);
      EXPECT_EQ(a.none.train, b.none.train);
    }
  // An artifact without the MLP part.
  write_safetensors(*dir_ / "k_only.vkq.safetensors", {}, {{"format", "test"}});
  EXPECT_FALSE(read_mlp_artifact(SafetensorsFile::open(*dir_ / "k_only.vkq.safetensors"), config()).has_value());
}

TEST_F(MlpArtifact, RefusesBadShape) {
  const auto path = write("bad_shape.vkq.safetensors", [](auto& t, auto&) {
    for (auto& w : t)
      if (w.name == "layers.1.mlp.up.rot_blocks") w.shape = {2, 1024};  // same bytes, wrong shape
  });
  const std::string e = error_of(path);
  EXPECT_NE(e.find("layers.1.mlp.up.rot_blocks"), std::string::npos) << e;
  EXPECT_NE(e.find("expected [2, 32, 32]"), std::string::npos) << e;
}

TEST_F(MlpArtifact, RefusesMissingTensorAndBadMetadata) {
  auto path = write("missing.vkq.safetensors", [](auto& t, auto&) {
    std::erase_if(t, [](const TensorWrite& w) { return w.name == "layers.0.mlp.down.rot"; });
  });
  EXPECT_NE(error_of(path).find("layers.0.mlp.down.rot"), std::string::npos);
  path = write("layers.vkq.safetensors", [](auto&, auto& m) { m["mlp_layers"] = "3"; });
  EXPECT_NE(error_of(path).find("mlp_layers"), std::string::npos);
  path = write("block.vkq.safetensors", [](auto&, auto& m) { m["mlp_block"] = "x"; });
  EXPECT_NE(error_of(path).find("mlp_block"), std::string::npos);
  path = write("cos.vkq.safetensors", [](auto&, auto& m) { m["mlp_cos1b"] = "[]"; });
  EXPECT_NE(error_of(path).find("mlp_cos1b"), std::string::npos);
  path = write("nan.vkq.safetensors", [](auto& t, auto&) {
    static std::vector<std::uint16_t> bad;  // the dense rotation is stored F16
    for (auto& w : t)
      if (w.name == "layers.0.mlp.gate.rot") {
        ASSERT_EQ(w.dtype, DType::F16);
        bad.assign(w.data.size() / 2, 0);
        bad[5] = 0x7e00;  // fp16 NaN
        w.data = std::as_bytes(std::span(bad));
      }
  });
  EXPECT_NE(error_of(path).find("NaN"), std::string::npos);
}

// ---- hostile artifacts: one test per case the tests above leave out ----

TEST_F(MlpArtifact, CosJsonSyntaxErrorNamesTheKey) {
  // The offset inside a metadata string is no file offset: none is claimed.
  const auto path = write("cos_syntax.vkq.safetensors", [](auto&, auto& m) { m["mlp_cos1b"] = "[[{"; });
  expect_refused(path, "invalid JSON", "__metadata__.mlp_cos1b");
}

TEST_F(MlpArtifact, CosJsonNestedTenThousandDeep) {
  const auto path = write("cos_deep.vkq.safetensors",
                          [](auto&, auto& m) { m["mlp_cos1b"] = std::string(10000, '[') + std::string(10000, ']'); });
  expect_refused(path, "nested deeper than 64 levels", "__metadata__.mlp_cos1b");
}

TEST_F(MlpArtifact, CosJsonDuplicateKey) {
  const auto path = write("cos_dup.vkq.safetensors", [](auto&, auto& m) { m["mlp_heldout"] = R"({"a":1,"a":2})"; });
  expect_refused(path, "duplicate JSON key \"a\"", "__metadata__.mlp_heldout");
}

TEST_F(MlpArtifact, NegativeNumberDoesNotWrap) {
  // std::stoul reads "-18446744073709551615" as 1.
  const auto path = write("neg_seed.vkq.safetensors", [](auto&, auto& m) { m["mlp_seed"] = "-18446744073709551615"; });
  expect_refused(path, "'-18446744073709551615' is not a 32-bit number", "__metadata__.mlp_seed");
}

TEST_F(MlpArtifact, CountOf2To64Minus1) {
  const auto path = write("u64max.vkq.safetensors", [](auto&, auto& m) { m["mlp_layers"] = "18446744073709551615"; });
  expect_refused(path, "'18446744073709551615' is not a 32-bit number", "__metadata__.mlp_layers");
}

TEST_F(MlpArtifact, DenseRotationF16OrOlderF32) {
  // Written F16 (half the bytes of the file's largest tensors); an older
  // file's F32 rotation reads back the same values.
  static std::vector<float> f32;
  const auto path = write("f32_rot.vkq.safetensors", [](auto& t, auto&) {
    for (auto& w : t)
      if (w.name == "layers.1.mlp.down.rot") {
        EXPECT_EQ(w.dtype, DType::F16);
        f32 = calib_->layers[1][MlpMatrix::down].dense_rot;
        w.dtype = DType::F32;
        w.data = std::as_bytes(std::span(f32));
        w.owned.reset();
      }
  });
  const auto back = read_mlp_artifact(SafetensorsFile::open(path), config());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->layers[1][MlpMatrix::down].dense_rot, calib_->layers[1][MlpMatrix::down].dense_rot);
  // A BF16 rotation is refused by name: F16 or F32 only.
  const auto bf = write("bf16_rot.vkq.safetensors", [](auto& t, auto&) {
    for (auto& w : t)
      if (w.name == "layers.0.mlp.up.rot") w.dtype = DType::BF16;
  });
  expect_refused(bf, "dtype BF16, expected F16 or F32", "tensor 'layers.0.mlp.up.rot'",
                 SafetensorsFile::open(bf).at("layers.0.mlp.up.rot").offset);
}

TEST_F(MlpArtifact, WrongDtypeNamesTheTensor) {
  // The same shape in F16 (half the bytes): refused, not converted.
  const auto path = write("f16.vkq.safetensors", [](auto& t, auto&) {
    for (auto& w : t)
      if (w.name == "layers.0.mlp.gate.rot_blocks") {
        w.dtype = DType::F16;
        w.data = w.data.first(w.data.size() / 2);
      }
  });
  expect_refused(path, "dtype F16, expected F32", "tensor 'layers.0.mlp.gate.rot_blocks'",
                 SafetensorsFile::open(path).at("layers.0.mlp.gate.rot_blocks").offset);
}

TEST_F(MlpArtifact, NonfiniteValuesCounted) {
  static std::vector<float> bad;
  const auto path = write("nan_count.vkq.safetensors", [](auto& t, auto&) {
    for (auto& w : t)
      if (w.name == "layers.1.mlp.up.rot") {  // written F16; rewritten F32, which is also read
        bad.assign(w.data.size() / 2, 0.f);
        w.dtype = DType::F32;
        w.owned.reset();
        bad[1] = std::nanf("");
        bad[2] = -INFINITY;
        bad[3] = INFINITY;
        w.data = std::as_bytes(std::span(bad));
      }
  });
  expect_refused(path, "3 of " + std::to_string(bad.size()) + " values are NaN or Inf", "tensor 'layers.1.mlp.up.rot'",
                 SafetensorsFile::open(path).at("layers.1.mlp.up.rot").offset);
}

}  // namespace
}  // namespace vkq::test
