#include "gauge_model.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "model_flags.hpp"
#include "vkquant/device.hpp"
#include "vkquant/model/key_capture.hpp"
#include "vkquant/model/kv_policy.hpp"
#include "vkquant/rotation/metrics.hpp"

namespace vkq::cli {

std::string verdict(double learned, double eff_pred, const Thresholds& t) {
  if (learned >= t.ok) return "1-bit ok";
  if (learned >= t.floor && eff_pred >= t.residual) return "needs residual";
  return "keep fp16";
}

std::string verdict_rule(const Thresholds& t, int rank) {
  return fmt::format(
      "held-out learned cos1b >= {:.2f}: \"1-bit ok\"; >= {:.2f} with predicted cos1b_eff (rank {}) >= {:.2f}: \"needs "
      "residual\"; else \"keep fp16\" (keys: the layer's worst KV head)",
      t.ok, t.floor, rank, t.residual);
}

std::string residual_setting(std::uint32_t rank, std::uint32_t bits, bool arel) {
  if (rank == 0) return "1-bit";
  if (arel) return fmt::format("r{} a{}", rank, bits);
  return fmt::format("r{} {}", rank, bits == 16 ? std::string("fp16") : fmt::format("int{}", bits));
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

rot::RowMat center(const rot::RowMat& v, Centering c) {
  if (c == Centering::columns) return rot::centered(v, rot::row_mean(v));
  rot::RowMat out = v;
  for (Eigen::Index r = 0; r < out.rows(); ++r) {
    const double m = out.row(r).cast<double>().mean();
    out.row(r).array() -= float(m);
  }
  return out;
}

rot::RowMat rows_of(const rot::RowMat& v, std::span<const std::uint32_t> rows) {
  rot::RowMat out(Eigen::Index(rows.size()), v.cols());
  for (std::size_t i = 0; i < rows.size(); ++i) out.row(Eigen::Index(i)) = v.row(rows[i]);
  return out;
}

nlohmann::ordered_json stats_json(const rot::SetStats& s) { return {{"cos1b", s.cos1b}, {"beta", s.beta}}; }

// Mean of every figure over sets (the per-expert summary of a bank).
SetFigures mean_figures(const std::vector<SetFigures>& v) {
  SetFigures m;
  if (v.empty()) return m;
  const double n = double(v.size());
  auto add = [&](rot::SetStats& a, const rot::SetStats& b) {
    a.rows += b.rows;
    a.cos1b += b.cos1b / n;
    a.beta += b.beta / n;
    a.energy_kept += b.energy_kept / n;
  };
  m.d = v[0].d;
  m.rank = v[0].rank;
  m.iters = v[0].iters;
  m.learned_from = v[0].learned_from;
  for (const auto& f : v) {
    m.rows += f.rows;
    add(m.raw, f.raw);
    add(m.centered, f.centered);
    add(m.srht, f.srht);
    add(m.learned_fit, f.learned_fit);
    add(m.learned, f.learned);
    m.null_fit += f.null_fit / n;
    m.null += f.null / n;
    m.moments.variance += f.moments.variance / n;
    m.moments.excess_kurtosis += f.moments.excess_kurtosis / n;
    m.moments.gauge += f.moments.gauge / n;
    m.gamma += f.gamma / n;
    m.cos1b_eff_pred += f.cos1b_eff_pred / n;
    m.cos1b_eff += f.cos1b_eff / n;
    m.seconds += f.seconds;
  }
  m.rows /= v.size();
  return m;
}

}  // namespace

SetFigures gauge_set(const rot::RowMat& v, Centering centering, const SetOptions& o, const FixedRotation* fixed) {
  const auto t0 = std::chrono::steady_clock::now();
  SetFigures f;
  f.rows = std::size_t(v.rows());
  f.d = std::size_t(v.cols());
  f.raw = rot::measure(v);
  const rot::RowMat c = center(v, centering);
  f.centered = rot::measure(c);
  f.srht = rot::measure(rot::srht_rows(c, o.learn.seed));
  f.moments = rot::phase_moments(v);

  rot::RowMat y;
  rot::Split split;
  if (fixed) {
    // The artifact's own mean and rotation, scored on the same held-out rows
    // the solver would have held out.
    split = rot::split_rows(f.rows, o.learn.heldout, o.learn.seed);
    y = rot::centered(v, fixed->mean) * fixed->r.cast<float>().transpose();
    f.learned_from = "artifact";
  } else {
    const auto learned = rot::learn_rotation(c, o.learn);
    split = learned.split;
    y = c * learned.r.cast<float>().transpose();
    f.iters = learned.iters;
  }
  f.learned_fit = rot::measure(y, split.train);
  f.learned = rot::measure(y, split.heldout);
  f.rank = std::clamp(o.rank, 0, int(f.d));
  const auto basis = rot::residual_basis(y, f.rank, split.train, split.heldout);
  f.gamma = basis.gamma;
  f.cos1b_eff_pred = basis.cos1b_eff_pred;
  f.cos1b_eff = basis.cos1b_eff;

  // The null control: the same solver on Gaussian rows of this shape, mean
  // and covariance, centered the same way. Only the lift above it is structure.
  const rot::RowMat z = center(rot::gaussian_like(v, o.learn.seed ^ 0x6e756c6cu), centering);
  const auto nl = rot::learn_rotation(z, o.learn);
  f.null_fit = nl.train;
  f.null = nl.heldout;
  if (!fixed) f.iters = nl.iters;
  f.seconds = seconds_since(t0);
  return f;
}

nlohmann::ordered_json figures_json(const SetFigures& f) {
  nlohmann::ordered_json learned = stats_json(f.learned);
  learned["fit_cos1b"] = f.learned_fit.cos1b;
  learned["from"] = f.learned_from;
  return {{"rows", f.rows},
          {"d", f.d},
          {"raw", stats_json(f.raw)},
          {"centered", stats_json(f.centered)},
          {"srht", stats_json(f.srht)},
          {"learned", learned},
          {"null_control", {{"cos1b", f.null}, {"fit_cos1b", f.null_fit}}},
          {"lift_over_null", f.learned.cos1b - f.null},
          {"G_term", f.moments.gauge},
          {"variance", f.moments.variance},
          {"excess_kurtosis", f.moments.excess_kurtosis},
          {"rank", f.rank},
          {"gamma_r", f.gamma},
          {"cos1b_eff_predicted", f.cos1b_eff_pred},
          {"cos1b_eff_measured", f.cos1b_eff},
          {"seconds", f.seconds}};
}

namespace {

rot::RowMat head_keys(const std::vector<float>& layer, std::uint64_t tokens, std::uint32_t kv_dim, std::uint32_t h,
                      std::uint32_t hd) {
  rot::RowMat kh(static_cast<Eigen::Index>(tokens), static_cast<Eigen::Index>(hd));
  for (std::uint64_t t = 0; t < tokens; ++t)
    for (std::uint32_t i = 0; i < hd; ++i) kh(Eigen::Index(t), Eigen::Index(i)) = layer[t * kv_dim + h * hd + i];
  return kh;
}

FixedRotation artifact_rotation(const KLayerCalib& L, std::uint32_t h, std::uint32_t hd) {
  FixedRotation f;
  f.mean.resize(hd);
  f.r.resize(hd, hd);
  for (std::uint32_t i = 0; i < hd; ++i) f.mean[i] = L.mean[std::size_t(h) * hd + i];
  for (std::uint32_t i = 0; i < hd; ++i)
    for (std::uint32_t j = 0; j < hd; ++j) f.r(i, j) = double(L.rot[(std::size_t(h) * hd + i) * hd + j]);
  return f;
}

// The step and the top of the policy curve's budgets (bits per key coordinate).
constexpr double kCurveStep = 0.125, kCurveTop = 4.0;

// keys.policy (gauge_model.hpp): the artifact's precision policy per rope mode.
nlohmann::ordered_json policy_report(const KCalibration& k) {
  nlohmann::ordered_json modes = nlohmann::ordered_json::object();
  for (KRope rope : {KRope::post, KRope::pre, KRope::ropemean}) {
    const auto it = k.policy.find(rope);
    if (it == k.policy.end()) continue;
    const KPolicyTable& t = it->second;
    const std::uint32_t hd = t.head_dim;
    auto setting = [&](const KResidual& r, const nlohmann::ordered_json& loss) {
      return nlohmann::ordered_json{
          {"rank", r.rank}, {"bits", r.bits}, {"arel", r.arel}, {"head_bits", head_bits(r, hd)}, {"loss", loss}};
    };
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    if (const auto p = k.plans.find(rope); p != k.plans.end()) {
      // The stored plan; a head's loss is null if its setting is not one of the table's options.
      nlohmann::ordered_json plan = nlohmann::ordered_json::array();
      double total = 0;
      bool known = true;
      for (std::uint32_t l = 0; l < t.layers; ++l) {
        nlohmann::ordered_json heads = nlohmann::ordered_json::array();
        for (std::uint32_t h = 0; h < t.kv_heads; ++h) {
          const KResidual r = p->second.at(std::size_t(l) * t.kv_heads + h);
          const auto o = std::find(t.options.begin(), t.options.end(), r);
          const std::size_t i = std::size_t(l) * t.kv_heads + h;
          nlohmann::ordered_json loss;
          if (o != t.options.end()) {
            loss = t.at(l, h, std::size_t(o - t.options.begin())) * t.weight(i);
            total += loss.get<double>();
          } else {
            known = false;
          }
          auto head = setting(r, loss);
          head["kl_alone"] = t.head_kl.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(t.head_kl[i]);
          heads.push_back(head);
        }
        plan.push_back(heads);
      }
      m["bits"] = plan_bits(p->second, hd);
      m["loss"] = known ? nlohmann::ordered_json(total) : nlohmann::ordered_json();
      m["plan"] = plan;
    }
    // The policy's Pareto curve: its predicted loss at each budget from the 1-bit code up.
    nlohmann::ordered_json curve = nlohmann::ordered_json::array();
    const double floor_bits = 1.0 + 16.0 / hd;
    for (int i = 0; floor_bits + kCurveStep * i <= kCurveTop + 1e-9; ++i) {
      const double budget = floor_bits + kCurveStep * i;
      const KPolicyPlan p = solve_policy(t, budget);
      curve.push_back({{"budget", budget}, {"bits", p.bits}, {"loss", p.loss}});
    }
    m["curve"] = curve;
    // Each option taken by every head: the uniform settings the policy competes with.
    nlohmann::ordered_json uniform = nlohmann::ordered_json::array();
    for (std::size_t o = 0; o < t.options.size(); ++o) {
      double total = 0;
      for (std::uint32_t l = 0; l < t.layers; ++l)
        for (std::uint32_t h = 0; h < t.kv_heads; ++h) total += t.at(l, h, o) * t.weight(std::size_t(l) * t.kv_heads + h);
      uniform.push_back(setting(t.options[o], total));
    }
    m["uniform"] = uniform;
    // The transform code (docs/design.md §2.9): its plan's predicted loss at
    // each budget, and its stored plan per (layer, KV head).
    if (const auto tc = k.tc_policy.find(rope); tc != k.tc_policy.end()) {
      nlohmann::ordered_json tc_curve = nlohmann::ordered_json::array();
      for (int i = 1; kCurveStep * i <= kCurveTop + 1e-9; ++i) {
        const KPolicyPlan p = solve_policy(tc->second, kCurveStep * i);
        tc_curve.push_back({{"budget", kCurveStep * i}, {"bits", p.bits}, {"loss", p.loss}});
      }
      m["tc_curve"] = tc_curve;
      if (const auto p = k.tc_plans.find(rope); p != k.tc_plans.end()) {
        nlohmann::ordered_json plan = nlohmann::ordered_json::array();
        for (std::uint32_t l = 0; l < t.layers; ++l) {
          nlohmann::ordered_json heads = nlohmann::ordered_json::array();
          for (std::uint32_t h = 0; h < t.kv_heads; ++h) {
            const KResidual r = p->second.at(std::size_t(l) * t.kv_heads + h);
            heads.push_back({{"setting", residual_label(r)}, {"head_bits", head_bits(r, hd)}});
          }
          plan.push_back(heads);
        }
        m["tc_bits"] = plan_bits(p->second, hd);
        m["tc_plan"] = plan;
      }
    }
    modes[krope_name(rope)] = m;
  }
  return {{"objective", kpolicy_objective_name(k.policy.begin()->second.objective)}, {"budget", k.budget}, {"modes", modes}};
}

const char* matrix_name(Role r) {
  switch (r) {
    case Role::w_gate: return "w_gate";
    case Role::w_up: return "w_up";
    case Role::w_down: return "w_down";
    case Role::exp_gate: return "exp_gate";
    case Role::exp_up: return "exp_up";
    case Role::exp_down: return "exp_down";
    default: return role_name(r);
  }
}

}  // namespace

nlohmann::ordered_json gauge_model(Device& device, const ModelGaugeOptions& o,
                                   const std::function<void(const std::string&, double)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto model = ModelFile::open(o.model);
  const ModelConfig& c = model.config();
  const std::uint32_t ctx = context_for(c, o.ctx);
  std::optional<KCalibration> art;
  if (!o.rotations.empty()) {
    if (progress) progress("checking " + o.rotations.filename().string() + " against the model", 0.0);
    art = read_kcache_artifact(o.rotations, model);
  }
  const std::uint32_t hd = c.head_dim, kvd = c.kv_dim();
  // Widths are checked before the long work (the forward pass, earlier sets):
  // a learned rotation's memory grows with d^2.
  if (o.gauge_keys) rot::check_learned_dim(hd);
  if (o.gauge_mlp) {
    const std::vector<Role> mlp_roles = c.moe() ? std::vector<Role>{Role::exp_gate, Role::exp_up, Role::exp_down}
                                                : std::vector<Role>{Role::w_gate, Role::w_up, Role::w_down};
    for (Role r : mlp_roles) {
      try {
        rot::check_learned_dim(std::size_t(role_shape(c, r).back()));
      } catch (const Error& e) {
        throw Error(fmt::format("MLP {} rows: {}; --no-mlp skips the MLP", matrix_name(r), e.what()));
      }
    }
  }
  nlohmann::ordered_json out{{"model", o.model.string()},
                             {"architecture", c.architecture},
                             {"layers", c.layers},
                             {"dim", c.dim},
                             {"heads", c.heads},
                             {"kv_heads", c.kv_heads},
                             {"head_dim", hd},
                             {"ffn", c.ffn},
                             {"experts", c.experts},
                             {"experts_used", c.experts_used},
                             {"device", device.info().name},
                             {"thresholds", {{"floor", o.thresholds.floor}, {"residual", o.thresholds.residual}, {"ok", o.thresholds.ok}}},
                             {"verdict_rule", verdict_rule(o.thresholds, o.keys.rank)}};

  // Work units for the progress bar: key sets, then MLP sets.
  const std::size_t key_sets = o.gauge_keys ? std::size_t(c.layers) * c.kv_heads * 2 : 0;
  const std::uint32_t exp_gauged = c.moe() ? (o.experts ? std::min(o.experts, c.experts) : c.experts) : 0;
  const std::size_t mlp_sets = o.gauge_mlp ? std::size_t(c.layers) * 3 * (c.moe() ? 1 + exp_gauged : 1) : 0;
  const std::size_t total = key_sets + mlp_sets;
  std::size_t done = 0;
  auto step = [&](const std::string& label) {
    if (progress) progress(label, double(done) / double(std::max<std::size_t>(total, 1)));
  };

  if (o.gauge_keys) {
    KeyCaptureOptions ko;
    ko.tokens = o.tokens;
    ko.ctx = ctx;
    ko.on = o.capture;
    const auto keys = capture_keys(device, model, o.text, ko, progress);
    if (keys.tokens < 2 * std::uint64_t(hd))
      throw Error(fmt::format("--tokens: {} keys are too few to gauge head_dim {} (need at least {})", keys.tokens, hd, 2 * hd));
    nlohmann::ordered_json kj{{"text", o.text.string()},
                              {"tokens", keys.tokens},
                              {"ctx", ctx},
                              {"capture_seconds", keys.seconds},
                              {"solver", o.solver_name},
                              {"iters", o.keys.learn.iters},
                              {"warm_start", o.keys.learn.warm_start_iters},
                              {"heldout_fraction", o.keys.learn.heldout},
                              {"rank", o.keys.rank},
                              {"seed", o.keys.learn.seed},
                              {"learned_from", art ? "artifact" : "solver"},
                              {"rotations", art ? nlohmann::ordered_json(o.rotations.string()) : nlohmann::ordered_json()}};
    for (int mode = 0; mode < 2; ++mode) {
      const char* rope = mode == 0 ? "post" : "pre";
      const auto& src = mode == 0 ? keys.post : keys.pre;
      nlohmann::ordered_json layers = nlohmann::ordered_json::array();
      for (std::uint32_t l = 0; l < c.layers; ++l) {
        nlohmann::ordered_json heads = nlohmann::ordered_json::array();
        std::vector<SetFigures> figs;
        for (std::uint32_t h = 0; h < c.kv_heads; ++h) {
          step(fmt::format("keys: layer {} {}-RoPE head {}", l, rope, h));
          const rot::RowMat kh = head_keys(src[l], keys.tokens, kvd, h, hd);
          std::optional<FixedRotation> fixed;
          if (art) fixed = artifact_rotation((mode == 0 ? art->post : art->pre)[l], h, hd);
          figs.push_back(gauge_set(kh, Centering::columns, o.keys, fixed ? &*fixed : nullptr));
          auto hj = figures_json(figs.back());
          hj.erase("rows");
          hj.erase("d");
          nlohmann::ordered_json row{{"head", h}};
          for (const auto& [k, v] : hj.items()) row[k] = v;
          heads.push_back(row);
          ++done;
        }
        double worst = 1, worst_eff = 1;
        for (const auto& f : figs) {
          worst = std::min(worst, f.learned.cos1b);
          worst_eff = std::min(worst_eff, f.cos1b_eff_pred);
        }
        const SetFigures mean = mean_figures(figs);
        layers.push_back({{"layer", l},
                          {"G", mean.moments.gauge},  // G = mean over heads of max(0, kappa_h / sigma_h^2)
                          {"worst_learned", worst},
                          {"worst_cos1b_eff_predicted", worst_eff},
                          {"verdict", verdict(worst, worst_eff, o.thresholds)},
                          {"mean",
                           {{"raw", mean.raw.cos1b},
                            {"centered", mean.centered.cos1b},
                            {"srht", mean.srht.cos1b},
                            {"learned", mean.learned.cos1b},
                            {"null_control", mean.null},
                            {"cos1b_eff_predicted", mean.cos1b_eff_pred}}},
                          {"heads", heads}});
      }
      kj[rope] = layers;
    }
    if (art && !art->policy.empty()) kj["policy"] = policy_report(*art);
    out["keys"] = kj;
  }

  if (o.gauge_mlp) {
    nlohmann::ordered_json mj{{"vectors", "rows of W, each minus its own mean (the codec's c_i, docs/design.md §3)"},
                              {"solver", o.solver_name},
                              {"iters", o.mlp.learn.iters},
                              {"warm_start", o.mlp.learn.warm_start_iters},
                              {"heldout_fraction", o.mlp.learn.heldout},
                              {"rank", o.mlp.rank},
                              {"rows_limit", o.mlp_rows},
                              {"seed", o.mlp.learn.seed}};
    auto limit_rows = [&](const rot::RowMat& w) {
      if (o.mlp_rows == 0 || std::size_t(w.rows()) <= o.mlp_rows) return w;
      const auto pick = rot::split_rows(std::size_t(w.rows()), double(o.mlp_rows) / double(w.rows()), o.mlp.learn.seed ^ 0x726f7773u);
      return rows_of(w, pick.heldout);
    };
    auto matrix_json = [&](const SetFigures& f, std::size_t rows_total) {
      auto j = figures_json(f);
      j["rows_total"] = rows_total;
      j["verdict"] = verdict(f.learned.cos1b, f.cos1b_eff_pred, o.thresholds);
      return j;
    };
    if (!c.moe()) {
      nlohmann::ordered_json mats = nlohmann::ordered_json::array();
      for (std::uint32_t l = 0; l < c.layers; ++l)
        for (Role r : {Role::w_gate, Role::w_up, Role::w_down}) {
          step(fmt::format("MLP: layer {} {}", l, matrix_name(r)));
          const auto shape = role_shape(c, r);
          const auto w = model.load(r, l);
          const rot::RowMat m = Eigen::Map<const rot::RowMat>(w.data(), Eigen::Index(shape[0]), Eigen::Index(shape[1]));
          const SetFigures f = gauge_set(limit_rows(m), Centering::rows, o.mlp);
          nlohmann::ordered_json row{{"layer", l}, {"matrix", matrix_name(r)}};
          const auto mj_row = matrix_json(f, shape[0]);
          for (const auto& [k, v] : mj_row.items()) row[k] = v;
          mats.push_back(row);
          ++done;
        }
      mj["matrices"] = mats;
    } else {
      nlohmann::ordered_json banks = nlohmann::ordered_json::array();
      for (std::uint32_t l = 0; l < c.layers; ++l)
        for (Role r : {Role::exp_gate, Role::exp_up, Role::exp_down}) {
          const auto shape = role_shape(c, r);  // (experts, rows, d)
          const auto w = model.load(r, l);
          const auto per = Eigen::Index(shape[1]), d = Eigen::Index(shape[2]);
          const rot::RowMat stacked = Eigen::Map<const rot::RowMat>(w.data(), Eigen::Index(shape[0]) * per, d);
          step(fmt::format("MLP: layer {} {} (all experts, one rotation)", l, matrix_name(r)));
          const SetFigures shared = gauge_set(limit_rows(stacked), Centering::rows, o.mlp);
          ++done;
          std::vector<SetFigures> each;
          nlohmann::ordered_json per_expert = nlohmann::ordered_json::array();
          for (std::uint32_t e = 0; e < exp_gauged; ++e) {
            step(fmt::format("MLP: layer {} {} expert {}", l, matrix_name(r), e));
            each.push_back(gauge_set(limit_rows(stacked.middleRows(Eigen::Index(e) * per, per)), Centering::rows, o.mlp));
            per_expert.push_back({{"expert", e},
                                  {"learned", each.back().learned.cos1b},
                                  {"null_control", each.back().null},
                                  {"srht", each.back().srht.cos1b}});
            ++done;
          }
          const SetFigures mean = mean_figures(each);
          nlohmann::ordered_json bank{{"layer", l},
                                      {"matrix", matrix_name(r)},
                                      {"experts", shape[0]},
                                      {"experts_gauged", exp_gauged},
                                      {"shared", matrix_json(shared, shape[0] * shape[1])},
                                      {"per_expert_mean", matrix_json(mean, shape[1])},
                                      {"per_expert", per_expert},
                                      // > 0: one shared rotation fits worse than one per expert
                                      {"frustration", mean.learned.cos1b - shared.learned.cos1b},
                                      {"lift_shared", shared.learned.cos1b - shared.null},
                                      {"lift_per_expert", mean.learned.cos1b - mean.null},
                                      {"verdict", verdict(shared.learned.cos1b, shared.cos1b_eff_pred, o.thresholds)}};
          banks.push_back(bank);
        }
      mj["expert_banks"] = banks;
    }
    out["mlp"] = mj;
  }
  out["seconds"] = seconds_since(t0);
  return out;
}

namespace {

double num(const nlohmann::ordered_json& j, const char* a, const char* b = nullptr) {
  const auto& x = b ? j.at(a).at(b) : j.at(a);
  return x.get<double>();
}

// The stored plans of keys.policy: one row per layer, a setting per KV head.
void print_policy(const nlohmann::ordered_json& p) {
  fmt::print("\nprecision policy ({} objective, budget {:g}): residual per KV head of the stored plan, predicted loss\n",
             p["objective"].get<std::string>(), num(p, "budget"));
  for (const auto& [mode, m] : p["modes"].items()) {
    if (!m.contains("plan")) {
      fmt::print("{:>13}: no stored plan (calibrate --kv-budget BITS stores one)\n", mode);
      continue;
    }
    fmt::print("{:>13}: {:.4f} bits per key coordinate, loss {}\n", mode, num(m, "bits"),
               m["loss"].is_null() ? std::string("?") : fmt::format("{:.4g}", num(m, "loss")));
    for (std::size_t l = 0; l < m["plan"].size(); ++l) {
      std::string cells;
      for (const auto& h : m["plan"][l]) cells += fmt::format(" {:>9}", residual_setting(h["rank"].get<std::uint32_t>(), h["bits"].get<std::uint32_t>(), h.value("arel", false)));
      fmt::print("{:>13}  layer {}{}\n", "", l, cells);
    }
  }
}

}  // namespace

void print_model_gauge(const nlohmann::ordered_json& g) {
  fmt::print("{}: {}, {} layers, {} KV heads x {}, ffn {}{}  ({})\n", g["model"].get<std::string>(),
             g["architecture"].get<std::string>(), g["layers"].get<int>(), g["kv_heads"].get<int>(), g["head_dim"].get<int>(),
             g["ffn"].get<int>(),
             g["experts"].get<int>() ? fmt::format(", {} experts (top {})", g["experts"].get<int>(), g["experts_used"].get<int>())
                                     : std::string(),
             g["device"].get<std::string>());
  fmt::print("cos1b: mean over vectors of ||v||_1 / (sqrt(d) ||v||_2); beta: (E|x|)^2 / E[x^2]. null: the learned cos1b of\n"
             "Gaussian vectors of the same shape, mean and covariance (only the lift above it is structure).\n\n");
  if (g.contains("keys")) {
    const auto& k = g["keys"];
    const int rank = k["rank"].get<int>();
    fmt::print("KEYS: {} tokens of {} (chunks of <= {}); learned: {}, held-out {:.0f}% of the keys; residual rank {}\n",
               k["tokens"].get<std::uint64_t>(), k["text"].get<std::string>(), k["ctx"].get<std::uint32_t>(),
               k["learned_from"] == "artifact"
                   ? "the rotations and means of " + k["rotations"].get<std::string>()
                   : fmt::format("{} ({} iterations{}, warm start <= {})", k["solver"].get<std::string>(),
                                 k["iters"].get<int>(), k["iters"].get<int>() == 0 ? " = default" : "", k["warm_start"].get<int>()),
               100 * k["heldout_fraction"].get<double>(), rank);
    fmt::print("{:>18}{:-^42}   {:-^27}\n", "", " cos1b ", " beta ");
    fmt::print("{:>5} {:>4} {:>4} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} | {:>6} {:>6} {:>6} {:>6} | {:>7} {:>6} {:>6}\n", "layer",
               "rope", "head", "raw", "center", "srht", "learn", "null", "lift", "raw", "center", "srht", "learn", "G term",
               "gamma", fmt::format("eff r{}", rank));
    for (const char* rope : {"post", "pre"})
      for (const auto& L : k[rope])
        for (const auto& h : L["heads"])
          fmt::print("{:>5} {:>4} {:>4} | {:6.4f} {:6.4f} {:6.4f} {:6.4f} {:6.4f} {:+7.4f} | {:6.4f} {:6.4f} {:6.4f} {:6.4f} | {:7.3g} "
                     "{:6.4f} {:6.4f}\n",
                     L["layer"].get<int>(), rope, h["head"].get<int>(), num(h, "raw", "cos1b"), num(h, "centered", "cos1b"),
                     num(h, "srht", "cos1b"), num(h, "learned", "cos1b"), num(h, "null_control", "cos1b"), num(h, "lift_over_null"),
                     num(h, "raw", "beta"), num(h, "centered", "beta"), num(h, "srht", "beta"), num(h, "learned", "beta"),
                     num(h, "G_term"), num(h, "gamma_r"), num(h, "cos1b_eff_predicted"));
    fmt::print("\nverdict: {}\n", g["verdict_rule"].get<std::string>());
    fmt::print("{:>5}  {:<40} {:<40}\n", "layer", "post-RoPE (worst head: learned / eff, G)", "pre-RoPE");
    for (std::size_t l = 0; l < k["post"].size(); ++l) {
      auto cell = [&](const nlohmann::ordered_json& L) {
        return fmt::format("{:<15} ({:.3f} / {:.3f}, G {:.3g})", L["verdict"].get<std::string>(), num(L, "worst_learned"),
                           num(L, "worst_cos1b_eff_predicted"), num(L, "G"));
      };
      fmt::print("{:>5}  {:<40} {:<40}\n", l, cell(k["post"][l]), cell(k["pre"][l]));
    }
    if (k.contains("policy")) print_policy(k["policy"]);
    fmt::print("\n");
  }
  if (g.contains("mlp")) {
    const auto& m = g["mlp"];
    const int rank = m["rank"].get<int>();
    fmt::print("MLP: {}; learned: {} ({} iterations{}, warm start <= {}), held-out {:.0f}% of the rows (fit: the other rows){}\n",
               m["vectors"].get<std::string>(), m["solver"].get<std::string>(), m["iters"].get<int>(),
               m["iters"].get<int>() == 0 ? " = default" : "", m["warm_start"].get<int>(), 100 * m["heldout_fraction"].get<double>(),
               m["rows_limit"].get<std::size_t>() ? fmt::format("; at most {} rows per set (seeded subsample)", m["rows_limit"].get<std::size_t>())
                                                  : std::string());
    auto head = [&](const char* what) {
      fmt::print("{:>5} {:<22} {:>11} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} | {:>6} {:>6} | {:>6} {:>6}  {}\n", "layer", what,
                 "rows x d", "raw", "center", "srht", "learn", "null", "lift", "fit", "null", "beta", fmt::format("eff r{}", rank),
                 "verdict");
    };
    auto row = [&](int layer, const std::string& what, const nlohmann::ordered_json& f, const std::string& verdict_text) {
      fmt::print("{:>5} {:<22} {:>11} | {:6.4f} {:6.4f} {:6.4f} {:6.4f} {:6.4f} {:+7.4f} | {:6.4f} {:6.4f} | {:6.4f} {:6.4f}  {}\n",
                 layer, what, fmt::format("{}x{}", f["rows"].get<std::size_t>(), f["d"].get<std::size_t>()), num(f, "raw", "cos1b"),
                 num(f, "centered", "cos1b"), num(f, "srht", "cos1b"), num(f, "learned", "cos1b"), num(f, "null_control", "cos1b"),
                 num(f, "lift_over_null"), num(f, "learned", "fit_cos1b"), num(f, "null_control", "fit_cos1b"),
                 num(f, "learned", "beta"), num(f, "cos1b_eff_predicted"), verdict_text);
    };
    if (m.contains("matrices")) {
      head("matrix");
      for (const auto& r : m["matrices"]) row(r["layer"].get<int>(), r["matrix"].get<std::string>(), r, r["verdict"].get<std::string>());
    }
    if (m.contains("expert_banks")) {
      fmt::print("expert banks: one rotation shared by the rows of all experts, against the mean of one rotation per expert\n"
                 "(frustration = per-expert mean learned - shared learned; compare the lifts, since fewer rows fit more easily)\n");
      head("bank");
      for (const auto& b : m["expert_banks"]) {
        const int l = b["layer"].get<int>();
        const std::string name = b["matrix"].get<std::string>();
        row(l, name + " shared", b["shared"], b["verdict"].get<std::string>());
        row(l, fmt::format("{} per-expert({})", name, b["experts_gauged"].get<int>()), b["per_expert_mean"],
            fmt::format("frustration {:+.4f}, lift shared {:+.4f} vs per-expert {:+.4f}", num(b, "frustration"),
                        num(b, "lift_shared"), num(b, "lift_per_expert")));
      }
    }
    fmt::print("\n");
  }
  fmt::print("({:.1f} s)\n", g["seconds"].get<double>());
}

}  // namespace vkq::cli
