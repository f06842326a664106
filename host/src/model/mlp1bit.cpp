#include "vkquant/model/mlp1bit.hpp"

#include <Eigen/Dense>
#include <Eigen/SVD>
#include <algorithm>
#include <bit>
#include <chrono>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "vkquant/cpu/kernels.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/kernels/fwht.hpp"
#include "vkquant/kernels/ops.hpp"
#include "vkquant/kernels/rotate.hpp"
#include "vkquant/model/artifact.hpp"
#include "vkquant/reference/bgemv.hpp"
#include "vkquant/reference/rotate.hpp"
#include "vkquant/rotation/learn.hpp"

namespace vkq {

using rot::RowMat;
using rot::unit_rows;

namespace {

[[noreturn]] void fail(const std::string& what) { throw Error("mlp1bit: " + what); }

// W (out, in) as Eigen rows, zero-padded to `width` >= in columns.
RowMat padded_rows(std::span<const float> w, std::uint32_t out, std::uint32_t in, std::uint32_t width) {
  RowMat m = RowMat::Zero(out, width);  // (out, width)
  for (std::uint32_t i = 0; i < out; ++i)
    for (std::uint32_t j = 0; j < in; ++j) m(i, j) = w[std::size_t(i) * in + j];
  return m;
}

// Mean over `rows` of cos1b(y_r - mean(y_r)): what a sign code with a row
// mean (bgemv's c_i) keeps of each row.
double centered_cos(const RowMat& y, std::span<const std::uint32_t> rows) {
  if (rows.empty()) return 0;
  const auto d = y.cols();
  double sum = 0;
  for (auto r : rows) {
    double mean = 0;
    for (Eigen::Index j = 0; j < d; ++j) mean += y(r, j);
    mean /= double(d);
    double l1 = 0, l2 = 0;
    for (Eigen::Index j = 0; j < d; ++j) {
      const double v = double(y(r, j)) - mean;
      l1 += std::abs(v);
      l2 += v * v;
    }
    sum += l2 > 0 ? l1 / (std::sqrt(double(d)) * std::sqrt(l2)) : 0.0;
  }
  return sum / double(rows.size());
}

MlpCos cos_of(const RowMat& y, const rot::Split& s) { return {centered_cos(y, s.train), centered_cos(y, s.heldout)}; }

// y = blockdiag(blocks) applied to each row of s (rows, P): (rows, P).
RowMat apply_blocks(const RowMat& s, const std::vector<float>& blocks, std::uint32_t block) {
  const auto p = std::uint32_t(s.cols());
  RowMat y(s.rows(), p);
  for (std::uint32_t b = 0; b < p / block; ++b) {
    const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> r(
        blocks.data() + std::size_t(b) * block * block, block,
        block);  // (block, block)
    y.middleCols(b * block, block).noalias() = s.middleCols(b * block, block) * r.transpose();
  }
  return y;
}

// Learns the blocks of the structured rotation on the training rows of the
// SRHT'd matrix s (rows, P): one Procrustes per coordinate slice, from the
// identity. Rows are unit-normalised whole, so the slices' objectives
// Σ_t ||B_b v_tb||_1 add up to the whole rows' Σ_t sqrt(P) cos1b(R v_t): each
// block is an exact coordinate ascent of the full objective, and no block
// ends below where it started (the SRHT). Returns (P/block, block, block).
std::vector<float> learn_blocks(const RowMat& s, std::span<const std::uint32_t> train, std::uint32_t block, int iters) {
  const auto p = std::uint32_t(s.cols());
  RowMat v(Eigen::Index(train.size()), p);  // (train, P)
  for (std::size_t t = 0; t < train.size(); ++t) v.row(Eigen::Index(t)) = s.row(train[t]);
  v = unit_rows(v);
  std::vector<float> out(std::size_t(p / block) * block * block);
  for (std::uint32_t b = 0; b < p / block; ++b) {
    const Eigen::MatrixXd vb = v.middleCols(b * block, block).cast<double>();  // (train, block)
    Eigen::MatrixXd r = Eigen::MatrixXd::Identity(block, block), best = r;
    double best_score = -1;
    for (int it = 0; it <= iters; ++it) {
      const Eigen::MatrixXd y = vb * r.transpose();
      const double score = y.cwiseAbs().sum();
      if (score > best_score) best_score = score, best = r;
      if (it == iters) break;
      // Sign step, then the polar factor of M = Σ_t s_t v_tᵀ: neither lowers
      // Σ_t <s_t, R v_t>.
      const Eigen::MatrixXd sg = y.unaryExpr([](double x) { return x >= 0 ? 1.0 : -1.0; });
      r = rot::polar_svd(sg.transpose() * vb);
    }
    for (std::uint32_t i = 0; i < block; ++i)
      for (std::uint32_t j = 0; j < block; ++j) out[(std::size_t(b) * block + i) * block + j] = float(best(i, j));
  }
  return out;
}

// U Vᵀ of the thin SVD of a tall m (rows >= cols): orthonormal columns.
Eigen::MatrixXd thin_polar(const Eigen::MatrixXd& m) {
  Eigen::BDCSVD<Eigen::MatrixXd> svd(m, Eigen::ComputeThinU | Eigen::ComputeThinV);
  return svd.matrixU() * svd.matrixV().transpose();
}

// Alternating Procrustes for a P x P R when the N < P training rows `v`
// (unit, (N, P)) span only N dimensions (w_down: out < padded ffn). The
// objective sees R only on span(v) = range(Q), so the sign and polar steps
// run on A = R Q (P x N): O(P N²) per step instead of a P x P SVD, and each
// step still cannot lower Σ_t <s_t, R v_t>. The complement keeps the start's
// map R0 Q⊥, made orthogonal to the learned part. Returns R (P, P).
Eigen::MatrixXd subspace_procrustes(const RowMat& v, const Eigen::MatrixXd& r0, int iters) {
  const Eigen::Index n = v.rows(), p = v.cols();
  const Eigen::MatrixXd vt = v.cast<double>().transpose();                                 // (P, N)
  const Eigen::MatrixXd qfull = Eigen::HouseholderQR<Eigen::MatrixXd>(vt).householderQ();  // (P, P)
  const Eigen::MatrixXd q = qfull.leftCols(n), qc = qfull.rightCols(p - n);
  const Eigen::MatrixXd c = vt.transpose() * q;  // (N, N): v_t = Q c_t
  Eigen::MatrixXd a = r0 * q, best = a;          // (P, N)
  double best_score = -1;
  for (int it = 0; it <= iters; ++it) {
    const Eigen::MatrixXd y = c * a.transpose();  // (N, P): rows R v_t
    const double score = y.cwiseAbs().sum();
    if (score > best_score) best_score = score, best = a;
    if (it == iters) break;
    const Eigen::MatrixXd sg = y.unaryExpr([](double x) { return x >= 0 ? 1.0 : -1.0; });
    a = thin_polar(sg.transpose() * c);  // polar factor of Σ_t s_t c_tᵀ
  }
  Eigen::MatrixXd rest = r0 * qc;  // (P, P - N)
  rest -= best * (best.transpose() * rest);
  return best * q.transpose() + thin_polar(rest) * qc.transpose();
}

rot::Solver solver_of(const std::string& name) {
  if (name == "procrustes") return rot::Solver::procrustes;
  if (name == "radam") return rot::Solver::radam;
  fail("solver '" + name + "' is not procrustes or radam");
}

// The dense and structured learners on the padded rows `wp` (out, P); fills
// the rotations when `keep`, and the four cos1b figures.
struct Learned {
  std::vector<float> dense, blocks;
  MlpCos dense_cos, structured_cos;
};
Learned learn_both(const RowMat& wp, const rot::Split& split, const MlpCalibrateOptions& o, std::uint32_t block) {
  Learned l;
  Eigen::MatrixXf r;  // (P, P)
  if (split.train.size() < std::size_t(wp.cols())) {
    RowMat v(Eigen::Index(split.train.size()), wp.cols());  // (train, P)
    for (std::size_t t = 0; t < split.train.size(); ++t) v.row(Eigen::Index(t)) = wp.row(split.train[t]);
    r = subspace_procrustes(unit_rows(v), rot::srht_matrix(std::uint32_t(wp.cols()), o.seed),
                            o.iters > 0 ? o.iters : 30)
            .cast<float>();
  } else {
    rot::LearnOptions lo;
    lo.solver = solver_of(o.solver);
    lo.iters = o.iters;
    lo.seed = o.seed;
    lo.heldout = o.heldout;
    lo.warm_start_iters = o.warm_start;
    const rot::LearnResult res = rot::learn_rotation(wp, lo);
    if (res.split.train != split.train || res.split.heldout != split.heldout)
      fail(
          "internal: the solver's train/held-out split differs from the "
          "reported one");
    r = res.r.cast<float>();
  }
  // The artifact stores the dense R in fp16 (P x P is the file's largest
  // tensor; docs/design.md §5), so R is rounded here and the cos1b figures
  // below describe the rotation that is stored and used.
  l.dense.resize(std::size_t(r.rows()) * r.cols());
  for (Eigen::Index i = 0; i < r.rows(); ++i)
    for (Eigen::Index j = 0; j < r.cols(); ++j) {
      r(i, j) = from_half(to_half(r(i, j)));
      l.dense[std::size_t(i * r.cols() + j)] = r(i, j);
    }
  const RowMat wd = wp * r.transpose();
  l.dense_cos = cos_of(wd, split);

  const RowMat s = rot::srht_rows(wp, o.seed);
  l.blocks = learn_blocks(s, split.train, block, o.iters > 0 ? o.iters : 30);
  l.structured_cos = cos_of(apply_blocks(s, l.blocks, block), split);
  return l;
}

}  // namespace

// ---- names ---------------------------------------------------------------------------------

const char* mlp_rotation_name(MlpRotation r) {
  switch (r) {
    case MlpRotation::none:
      return "none";
    case MlpRotation::srht:
      return "srht";
    case MlpRotation::dense:
      return "dense";
    case MlpRotation::structured:
      return "structured";
  }
  return "?";
}

std::optional<MlpRotation> mlp_rotation_from_name(std::string_view name) {
  for (auto r : {MlpRotation::none, MlpRotation::srht, MlpRotation::dense, MlpRotation::structured})
    if (name == mlp_rotation_name(r)) return r;
  return std::nullopt;
}

const char* mlp_matrix_name(MlpMatrix m) { return m == MlpMatrix::gate ? "gate" : m == MlpMatrix::up ? "up" : "down"; }

Role mlp_matrix_role(MlpMatrix m) {
  return m == MlpMatrix::gate ? Role::w_gate : m == MlpMatrix::up ? Role::w_up : Role::w_down;
}

std::uint32_t mlp_padded_in(std::uint32_t in) {
  if (in == 0 || in > kernels::kRotateMaxD) fail("in = " + std::to_string(in) + " is outside [1, 16384]");
  return std::max<std::uint32_t>(64, std::bit_ceil(in));
}

std::uint32_t mlp_rotated_width(std::uint32_t in, MlpRotation r) {
  return r == MlpRotation::none ? in : mlp_padded_in(in);
}

// ---- calibration ---------------------------------------------------------------------------

MlpMatrixCalib calibrate_mlp_matrix(std::span<const float> w, std::uint32_t out, std::uint32_t in,
                                    const MlpCalibrateOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (out < 2) fail("calibration needs at least 2 rows (out = " + std::to_string(out) + ")");
  if (w.size() != std::size_t(out) * in) fail("weights are not out x in");
  const std::uint32_t p = mlp_padded_in(in);
  if (o.block == 0 || !std::has_single_bit(o.block))
    fail("block = " + std::to_string(o.block) + " is not a power of two");
  if (!(o.heldout > 0 && o.heldout < 1)) fail("held-out fraction must be in (0, 1)");
  solver_of(o.solver);  // a bad name fails whichever path the dense R takes
  MlpMatrixCalib c;
  c.out = out, c.in = in, c.padded_in = p, c.seed = o.seed, c.block = std::min(o.block, p);

  const rot::Split split = rot::split_rows(out, o.heldout, o.seed);
  const RowMat wm = padded_rows(w, out, in, in);  // (out, in)
  const RowMat wp = padded_rows(w, out, in, p);   // (out, P)
  c.none = cos_of(wm, split);
  c.srht = cos_of(rot::srht_rows(wp, o.seed), split);
  // The learners on the real rows and the null control's (Gaussian rows of
  // the same shape) are independent. They run side by side when the solvers'
  // row loops would run serially anyway (fewer than 4096 rows): the same
  // results, in about half the time on two cores. Larger matrices keep the
  // cores for their row loops (and one working set at a time).
  Learned l, n;
  const auto learn = [&](std::size_t i) {
    if (i == 0) {
      l = learn_both(wp, split, o, c.block);
      return;
    }
    RowMat gp = RowMat::Zero(out, p);
    gp.leftCols(in) = rot::gaussian_like(wm, o.seed ^ 0x6e756c6cu);  // (out, in)
    n = learn_both(gp, split, o, c.block);
  };
  const std::size_t learners = o.null_control ? 2 : 1;
  if (learners == 2 && !rot::rows_in_parallel(out))
    cpu::parallel_for(learners, learn);
  else
    for (std::size_t i = 0; i < learners; ++i) learn(i);
  c.dense_rot = std::move(l.dense);
  c.blocks = std::move(l.blocks);
  c.dense = l.dense_cos;
  c.structured = l.structured_cos;
  if (o.null_control) {
    c.null_dense = n.dense_cos;
    c.null_structured = n.structured_cos;
  }
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return c;
}

MlpCalibration calibrate_mlp(const ModelFile& model, const MlpCalibrateOptions& o,
                             const std::function<void(std::size_t, std::size_t)>& progress) {
  const ModelConfig& cfg = model.config();
  MlpCalibration m;
  m.seed = o.seed;
  m.block = o.block;
  m.solver = o.solver;
  m.heldout_fraction = o.heldout;
  solver_of(o.solver);      // reject a bad name before any work
  if (cfg.moe()) return m;  // experts stay fp16 (docs/design.md §3)
  const std::size_t total = std::size_t(cfg.layers) * 3;
  std::size_t done = 0;
  m.layers.resize(cfg.layers);
  for (std::uint32_t l = 0; l < cfg.layers; ++l)
    for (MlpMatrix k : kMlpMatrices) {
      const Role role = mlp_matrix_role(k);
      const auto shape = role_shape(cfg, role);  // (out, in)
      const auto w = model.load(role, l);
      m.layers[l][k] = calibrate_mlp_matrix(w, std::uint32_t(shape[0]), std::uint32_t(shape[1]), o);
      if (progress) progress(++done, total);
    }
  return m;
}

// ---- artifact ------------------------------------------------------------------------------

namespace {
std::string tensor_prefix(std::uint32_t layer, MlpMatrix k) {
  return "layers." + std::to_string(layer) + ".mlp." + mlp_matrix_name(k) + ".";
}

nlohmann::ordered_json cos_json(const MlpCos& c) { return nlohmann::ordered_json::array({c.train, c.heldout}); }
}  // namespace

void append_mlp_artifact(const MlpCalibration& m, std::vector<TensorWrite>& tensors,
                         std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json cos = nlohmann::ordered_json::array();
  for (std::uint32_t l = 0; l < m.layers.size(); ++l) {
    nlohmann::ordered_json lj = nlohmann::ordered_json::object();
    for (MlpMatrix k : kMlpMatrices) {
      const MlpMatrixCalib& c = m.layers[l][k];
      const std::uint64_t p = c.padded_in, b = c.block;
      if (b == 0 || p % b || c.dense_rot.size() != p * p || c.blocks.size() != p * b)
        fail("layer " + std::to_string(l) + " " + mlp_matrix_name(k) + ": rotation sizes do not match P and block");
      add_artifact_tensor(tensors, tensor_prefix(l, k) + "rot", {p, p}, c.dense_rot, ArtifactDtype::f16);
      add_artifact_tensor(tensors, tensor_prefix(l, k) + "rot_blocks", {p / b, b, b}, c.blocks);
      lj[mlp_matrix_name(k)] = {{"none", cos_json(c.none)},
                                {"srht", cos_json(c.srht)},
                                {"dense", cos_json(c.dense)},
                                {"structured", cos_json(c.structured)},
                                {"null_dense", cos_json(c.null_dense)},
                                {"null_structured", cos_json(c.null_structured)}};
    }
    cos.push_back(std::move(lj));
  }
  metadata["mlp_layers"] = std::to_string(m.layers.size());
  metadata["mlp_seed"] = std::to_string(m.seed);
  metadata["mlp_block"] = std::to_string(m.block);
  metadata["mlp_solver"] = m.solver;
  metadata["mlp_heldout"] = nlohmann::json(m.heldout_fraction).dump();
  metadata["mlp_cos1b"] = cos.dump();
}

std::optional<MlpCalibration> read_mlp_artifact(const SafetensorsFile& f, const ModelConfig& cfg) {
  ArtifactReads reads(f);
  return read_mlp_artifact(reads, cfg);
}

std::optional<MlpCalibration> read_mlp_artifact(ArtifactReads& reads, const ModelConfig& cfg) {
  const SafetensorsFile& f = reads.file();
  const auto& path = f.path();
  const auto& meta = f.metadata();
  if (!meta.contains("mlp_layers")) return std::nullopt;
  auto text = [&](const char* key) -> const std::string& {
    const auto it = meta.find(key);
    if (it == meta.end()) throw FormatError(path, std::string("__metadata__.") + key + ": missing");
    return it->second;
  };
  auto number = [&](const char* key) -> std::uint32_t {
    const std::string& s = text(key);
    // Digits only (from_chars takes no sign, blank or '+'; stoul wrapped "-18446744073709551615" to 1).
    std::uint32_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
      throw FormatError(path, std::string("__metadata__.") + key + ": '" + s + "' is not a 32-bit number");
    return v;
  };
  MlpCalibration m;
  const std::uint32_t layers = number("mlp_layers");
  m.seed = number("mlp_seed");
  m.block = number("mlp_block");
  m.solver = text("mlp_solver");
  if (layers == 0) return m;
  if (cfg.moe())
    throw FormatError(path,
                      "__metadata__.mlp_layers: an MLP calibration for a "
                      "mixture-of-experts model");
  if (layers != cfg.layers)
    throw FormatError(path, "__metadata__.mlp_layers: " + std::to_string(layers) + " layers, the model has " +
                                std::to_string(cfg.layers));
  if (m.block == 0 || !std::has_single_bit(m.block))
    throw FormatError(path, "__metadata__.mlp_block: " + std::to_string(m.block) + " is not a power of two");
  // JSON held in a metadata string: errors name the key (offsets inside the
  // string are not file offsets).
  auto json_of = [&](const char* key) {
    try {
      return parse_json_strict(path, text(key));
    } catch (const FormatError& e) {
      std::string what = e.what();
      if (const std::string file = path.string() + ": "; what.starts_with(file)) what = what.substr(file.size());
      if (const auto p = what.rfind(" (at byte "); p != std::string::npos) what = what.substr(0, p);
      throw FormatError(path, std::string("__metadata__.") + key + ": " + what);
    }
  };
  const nlohmann::json hj = json_of("mlp_heldout");
  if (!hj.is_number()) throw FormatError(path, "__metadata__.mlp_heldout: not a number");
  m.heldout_fraction = hj.get<double>();
  const nlohmann::json cos = json_of("mlp_cos1b");
  if (!cos.is_array() || cos.size() != layers)
    throw FormatError(path, "__metadata__.mlp_cos1b: not an array of " + std::to_string(layers) + " layers");

  auto read_cos = [&](const nlohmann::json& mj, const char* key, const std::string& where) {
    const auto it = mj.find(key);
    if (it == mj.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_number() || !(*it)[1].is_number())
      throw FormatError(path, "__metadata__.mlp_cos1b" + where + "." + key + ": not [train, heldout]");
    return MlpCos{(*it)[0].get<double>(), (*it)[1].get<double>()};
  };

  m.layers.resize(layers);
  for (std::uint32_t l = 0; l < layers; ++l)
    for (MlpMatrix k : kMlpMatrices) {
      MlpMatrixCalib& c = m.layers[l][k];
      const auto shape = role_shape(cfg, mlp_matrix_role(k));  // (out, in)
      c.out = std::uint32_t(shape[0]);
      c.in = std::uint32_t(shape[1]);
      c.padded_in = mlp_padded_in(c.in);
      c.seed = m.seed;
      c.block = std::min(m.block, c.padded_in);
      const std::uint64_t p = c.padded_in, b = c.block;
      c.dense_rot = reads.tensor(tensor_prefix(l, k) + "rot", {p, p}, ArtifactDtype::f16);
      c.blocks = reads.tensor(tensor_prefix(l, k) + "rot_blocks", {p / b, b, b});
      const std::string where = "[" + std::to_string(l) + "]." + mlp_matrix_name(k);
      const auto mj = cos[l].find(mlp_matrix_name(k));
      if (mj == cos[l].end() || !mj->is_object())
        throw FormatError(path, "__metadata__.mlp_cos1b" + where + ": missing");
      c.none = read_cos(*mj, "none", where);
      c.srht = read_cos(*mj, "srht", where);
      c.dense = read_cos(*mj, "dense", where);
      c.structured = read_cos(*mj, "structured", where);
      c.null_dense = read_cos(*mj, "null_dense", where);
      c.null_structured = read_cos(*mj, "null_structured", where);
    }
  return m;
}

// ---- CPU reference -------------------------------------------------------------------------

namespace {
void check_calib(const MlpMatrixCalib* c, MlpRotation r, std::uint32_t in, std::uint32_t out) {
  if (r == MlpRotation::none || (r == MlpRotation::srht && !c)) return;
  if (!c) fail(std::string("rotation ") + mlp_rotation_name(r) + " needs a calibration");
  const std::uint64_t p = mlp_padded_in(in);
  if (c->in != in || (out && c->out != out) || c->padded_in != p)
    fail("the calibration is for a " + std::to_string(c->out) + " x " + std::to_string(c->in) + " matrix, not " +
         std::to_string(out) + " x " + std::to_string(in));
  if (r == MlpRotation::dense && c->dense_rot.size() != p * p) fail("the dense rotation is not P x P");
  if (r == MlpRotation::structured &&
      (c->block == 0 || !std::has_single_bit(c->block) || p % c->block || c->blocks.size() != p * c->block))
    fail("the rotation blocks are not (P/block, block, block)");
}
}  // namespace

std::vector<float> mlp_rotate_rows(std::span<const float> x, std::uint32_t rows, std::uint32_t in,
                                   const MlpMatrixCalib* calib, MlpRotation r) {
  if (x.size() != std::size_t(rows) * in) fail("mlp_rotate_rows: x is not rows x in");
  check_calib(calib, r, in, 0);
  if (r == MlpRotation::none) return {x.begin(), x.end()};
  const std::uint32_t p = mlp_padded_in(in);
  const RowMat xp = padded_rows(x, rows, in, p);  // (rows, P)
  std::vector<float> y(std::size_t(rows) * p);    // (rows, P)
  if (r == MlpRotation::dense) {
    ref::rotate(std::span(xp.data(), xp.size()), calib->dense_rot, y, p);
    return y;
  }
  const RowMat s = rot::srht_rows(xp, calib ? calib->seed : 0);  // (rows, P)
  if (r == MlpRotation::srht) return {s.data(), s.data() + s.size()};
  const std::uint32_t b = calib->block;  // structured: (rows * P/b, b) rows by block t % (P/b)
  ref::rotate(std::span(s.data(), s.size()), calib->blocks, y, b, 0, ~std::uint64_t(0), p / b);
  return y;
}

kernels::BinaryRows mlp_encode(std::span<const float> w, std::uint32_t out, std::uint32_t in,
                               const MlpMatrixCalib* calib, MlpRotation r) {
  check_calib(calib, r, in, out);
  const auto wr = mlp_rotate_rows(w, out, in, calib, r);  // rows of W' = R w_i: (out, width)
  return kernels::bgemv_encode(wr, out, mlp_rotated_width(in, r));
}

void mlp_reference(const kernels::BinaryRows& code, const MlpMatrixCalib* calib, MlpRotation r,
                   std::span<const float> x, std::span<float> y, std::uint32_t n, std::uint32_t in, bool accumulate) {
  const std::uint32_t width = mlp_rotated_width(in, r);
  if (code.in != width)
    fail("mlp_reference: the code is " + std::to_string(code.in) + " wide, not " + std::to_string(width));
  if (y.size() != std::size_t(n) * code.out) fail("mlp_reference: y is not n x out");
  const auto xr = mlp_rotate_rows(x, n, in, calib, r);  // (n, width)
  std::vector<float> t(y.size());                       // (n, out)
  ref::bgemv(code.bits, code.c, code.alpha, {}, {}, xr, t, code.out, width, code.words, 0, n);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = accumulate ? y[i] + t[i] : t[i];
}

// ---- device --------------------------------------------------------------------------------

OneBitMatrix::OneBitMatrix(Device& device, std::span<const float> w, std::uint32_t out, std::uint32_t in,
                           const MlpMatrixCalib* calib, MlpRotation rotation, std::uint32_t max_batch)
    : out_(out), in_(in), width_(mlp_rotated_width(in, rotation)), rotation_(rotation) {
  if (out == 0) fail("OneBitMatrix: out is 0");
  if (max_batch == 0) fail("OneBitMatrix: max_batch is 0");
  check_calib(calib, rotation, in, out);
  seed_ = calib ? calib->seed : 0;
  block_ = rotation == MlpRotation::structured ? calib->block : 0;
  chunk_ = std::min<std::uint32_t>(max_batch, 64);  // bgemv's batch limit

  const kernels::BinaryRows code = mlp_encode(w, out, in, calib, rotation);
  auto upload = [&](const void* data, std::uint64_t bytes) {
    Buffer b = Buffer::create(device, bytes);
    b.upload(data, bytes);
    return b;
  };
  bits_ = upload(code.bits.data(), code.bits.size() * 4);
  c_ = upload(code.c.data(), code.c.size() * 4);
  alpha_ = upload(code.alpha.data(), code.alpha.size() * 4);
  if (rotation == MlpRotation::dense) rot_ = upload(calib->dense_rot.data(), calib->dense_rot.size() * 4);
  if (rotation == MlpRotation::structured) rot_ = upload(calib->blocks.data(), calib->blocks.size() * 4);
  const std::uint64_t xbytes = std::uint64_t(chunk_) * width_ * 4, ybytes = std::uint64_t(chunk_) * out * 4;
  xp_ = Buffer::create(device,
                       xbytes);  // none: passes past row 0 copy their rows here
  if (rotation != MlpRotation::none) xr_ = Buffer::create(device, xbytes);
  yt_ = Buffer::create(device, ybytes);
  ya_ = Buffer::create(device, ybytes);
}

std::uint64_t OneBitMatrix::weight_bytes() const { return bits_.size() + c_.size() + alpha_.size(); }

std::uint64_t OneBitMatrix::rotation_bytes() const { return rot_ ? rot_.size() : 0; }

const Buffer& OneBitMatrix::rotate_input(Stream& s, const Buffer& x, std::uint32_t r0, std::uint32_t m) {
  const bool padded = in_ != width_;
  switch (rotation_) {
    case MlpRotation::none:
      if (r0 == 0) return x;
      kernels::pad_rows(s, x, r0, xp_, m, in_, in_);
      return xp_;
    case MlpRotation::dense:
      if (r0 != 0 || padded) kernels::pad_rows(s, x, r0, xp_, m, in_, width_);
      kernels::rotate(s, r0 != 0 || padded ? xp_ : x, rot_, xr_, m, width_);
      return xr_;
    case MlpRotation::srht:
    case MlpRotation::structured: {
      const kernels::FwhtOptions fo{.srht = true, .seed = seed_};
      if (padded) {
        kernels::pad_rows(s, x, r0, xp_, m, in_, width_);
        kernels::fwht(s, xp_, xr_, m, width_, fo);
      } else {
        // Rows of x from r0 in place of a copy (in = P: 16-byte aligned rows).
        kernels::FwhtOptions at = fo;
        at.offset = std::uint64_t(r0) * width_ * 4;
        kernels::fwht(s, x, xr_, m, width_, at);
      }
      if (rotation_ == MlpRotation::srht) return xr_;
      const std::uint32_t nb = width_ / block_;
      kernels::rotate(s, xr_, rot_, xp_, std::uint64_t(m) * nb, block_, {.blocks = nb});
      return xp_;
    }
  }
  return x;
}

void OneBitMatrix::apply(Stream& s, const Buffer& x, Buffer& y, std::uint32_t n, bool accumulate) {
  if (x.handle() == y.handle()) fail("OneBitMatrix::apply: y must not alias x");
  if (x.size() / (std::uint64_t(in_) * 4) < n) fail("OneBitMatrix::apply: x holds fewer than n x in floats");
  if (y.size() / (std::uint64_t(out_) * 4) < n) fail("OneBitMatrix::apply: y holds fewer than n x out floats");
  const kernels::BinaryLinear lin{.bits = &bits_, .c = &c_, .alpha = &alpha_, .out = out_, .in = width_};
  const std::uint64_t row_bytes = std::uint64_t(out_) * 4;
  for (std::uint32_t r0 = 0; r0 < n; r0 += chunk_) {
    const std::uint32_t m = std::min(chunk_, n - r0);
    const Buffer& xq = rotate_input(s, x, r0, m);
    const std::uint64_t off = r0 * row_bytes, bytes = m * row_bytes;
    if (r0 == 0 && !accumulate) {
      kernels::bgemv(s, lin, xq, y, m, nullptr);
    } else if (r0 == 0) {
      kernels::bgemv(s, lin, xq, yt_, m, nullptr);
      kernels::add(s, y, yt_, std::uint64_t(m) * out_);
    } else if (!accumulate) {
      kernels::bgemv(s, lin, xq, yt_, m, nullptr);
      s.copy(yt_, y, bytes, 0, off);
    } else {
      // ops::add has no offsets: accumulate in scratch and copy the rows back.
      s.copy(y, ya_, bytes, off, 0);
      kernels::bgemv(s, lin, xq, yt_, m, nullptr);
      kernels::add(s, ya_, yt_, std::uint64_t(m) * out_);
      s.copy(ya_, y, bytes, 0, off);
    }
  }
}

}  // namespace vkq
