// `vkquant calibrate MODEL --text FILE`: runs the model over calibration text,
// captures every layer's keys before and after RoPE, learns the 1-bit K-cache
// codec per (layer, KV head), the dense MLP matrices' rotations where asked
// (model/calibrate_plan.hpp), and writes the artifact atomically; the summary
// gives each phase's time.
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "model_flags.hpp"
#include "progress.hpp"
#include "vkquant/atomic_file.hpp"
#include "vkquant/device.hpp"
#include "vkquant/instance.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/calibrate_plan.hpp"
#include "vkquant/model/key_capture.hpp"
#include "vkquant/model/ppl.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::cli {

namespace {

struct CalibrateFlags {
  std::string model, text, out;
  std::uint64_t tokens = 32768;
  std::uint32_t ctx = 0;  // 0: context_for's default
  bool allow_nonfinite = false;
  CalibrateOptions opt;
  WeightFlag weights;
  DeviceFlags device;
  std::string mlp = "auto";  // auto, on or off (--no-mlp: off)
  bool no_mlp = false;
  std::uint32_t mlp_block = 64;
  double kv_budget = 0;     // --kv-budget (0: none)
  double kv_target_kl = 0;  // --kv-target-kl (0: none)
  std::uint32_t kv_target_chunks = 8;
  std::uint32_t kv_sensitivity_chunks = 4;  // 0: predicted losses only
  bool kv_sensitivity_given = false;
  std::string kv_objective = "query";
  std::string capture = "auto";
};

// The first `chunks` chunks of the calibration text, as ppl scores them.
PplPlan calibration_chunks(const ModelFile& model, const std::string& path, std::uint32_t ctx, std::uint32_t chunks) {
  const auto tok = model.tokenizer();
  const auto text = MappedFile::open(path);
  auto plan = ppl_plan(std::string_view(reinterpret_cast<const char*>(text.bytes().data()), text.size()), *tok, ctx);
  if (plan.chunks.size() > chunks) {
    plan.chunks.resize(chunks);
    plan.tokens = 0;
    for (const auto& ch : plan.chunks) plan.tokens += ch.targets.size();
  }
  return plan;
}

// The measured sensitivity of every (layer, KV head) per codec
// (model/kv_policy.hpp): the KL to fp16 keys of the output on the first
// chunks of the calibration text when only that head is coded (1-bit, no
// residual) and every other head keeps its keys (full-rank fp16 residual).
// Heads are scored in groups beside one fp16-key run, as many at once as
// 1 GiB of device memory holds copies of the model (1 to 8).
void measure_sensitivity(Device& device, const ModelFile& model, const CalibrateFlags& f, KCalibration& k,
                         std::uint32_t ctx, Progress& bar) {
  const PplPlan plan = calibration_chunks(model, f.text, ctx, f.kv_sensitivity_chunks);
  const std::size_t heads = std::size_t(k.layers) * k.kv_heads;
  const KResidual exact{k.head_dim, 16};
  VkForwardOptions o;
  o.ctx = ctx;
  o.weights = f.weights.type();
  o.calibration = &k;
  const std::size_t modes = k.policy.size();
  std::size_t done = 0;
  for (auto& [rope, table] : k.policy) {
    table.head_kl.assign(heads, 0.0);
    for (std::size_t h0 = 0; h0 < heads;) {
      o.calibration = &k;
      o.kcache = KCacheConfig{};
      VkForward base(device, model, o);
      const std::size_t group =
          std::min<std::size_t>(heads - h0, std::clamp<std::uint64_t>((1ull << 30) / std::max<std::uint64_t>(base.device_bytes(), 1), 1, 8));
      std::vector<KCalibration> cals(group, k);
      std::vector<std::unique_ptr<VkForward>> coded;
      std::vector<VkForward*> runs{&base};
      for (std::size_t g = 0; g < group; ++g) {
        auto& heads_plan = cals[g].plans[rope];
        heads_plan.assign(heads, exact);
        heads_plan[h0 + g] = KResidual{0, 16};
        cals[g].budget = plan_bits(heads_plan, k.head_dim);
        o.calibration = &cals[g];
        o.kcache = KCacheConfig{true, rope, KRotation::learned, 0, 0, 0};
        o.kcache.budget = KCacheConfig::kBudgetArtifact;
        coded.push_back(std::make_unique<VkForward>(device, model, o));
        runs.push_back(coded.back().get());
      }
      bar.update(fmt::format("measuring head sensitivity ({} / {})", done, heads * modes),
                 double(done) / double(heads * modes));
      const auto sums = score_ppl(plan, runs);
      for (std::size_t g = 0; g < group; ++g)
        table.head_kl[h0 + g] = sums[1 + g].kl / double(std::max<std::uint64_t>(plan.tokens, 1));
      h0 += group;
      done += group;
    }
  }
}

// --kv-target-kl: per rope mode, the least budget (on a grid of 1/16 bit)
// whose plan's KL to fp16 keys, measured on the first chunks of the
// calibration text, is at most the target; bisection over the grid (the
// measured KL falls with the budget up to noise).
double budget_for_kl(Device& device, const ModelFile& model, const CalibrateFlags& f, const KCalibration& k, KRope rope,
                     std::uint32_t ctx, Progress& bar) {
  const ModelConfig& c = model.config();
  const PplPlan plan = calibration_chunks(model, f.text, ctx, f.kv_target_chunks);
  const double floor_bits = 1.0 + 16.0 / c.head_dim, step = 1.0 / 16;
  const double top = plan_bits(std::vector<KResidual>(1, k.policy_table(rope).options.back()), c.head_dim);
  auto kl_at = [&](double budget) {
    VkForwardOptions o;
    o.ctx = ctx;
    o.weights = f.weights.type();
    o.calibration = &k;
    VkForward base(device, model, o);
    o.kcache = KCacheConfig{true, rope, KRotation::learned, 0, 0, 0};
    o.kcache.budget = budget;
    VkForward coded(device, model, o);
    VkForward* runs[] = {&base, &coded};
    const auto sums = score_ppl(plan, runs);
    const double kl = sums[1].kl / double(std::max<std::uint64_t>(plan.tokens, 1));
    bar.clear();
    fmt::print("--kv-target-kl: {} at {:.4f} bits: KL {:.5f} on {} tokens\n", krope_name(rope), budget, kl, plan.tokens);
    return kl;
  };
  std::int64_t lo = 0, hi = std::int64_t(std::ceil((top - floor_bits) / step));
  if (kl_at(floor_bits + double(hi) * step) > f.kv_target_kl) return floor_bits + double(hi) * step;  // the best there is
  while (lo < hi) {
    const std::int64_t mid = (lo + hi) / 2;
    if (kl_at(floor_bits + double(mid) * step) <= f.kv_target_kl) hi = mid;
    else lo = mid + 1;
  }
  return floor_bits + double(lo) * step;
}

MlpWhen mlp_when(const CalibrateFlags& f) {
  if (f.no_mlp || f.mlp == "off") return MlpWhen::off;
  return f.mlp == "on" ? MlpWhen::on : MlpWhen::automatic;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}

void calibrate(const CalibrateFlags& f, bool rank_given) {
  const auto t0 = Clock::now();
  const auto model = ModelFile::open(f.model, ModelOpenOptions{.allow_nonfinite = f.allow_nonfinite, .warn = {}});
  const ModelConfig& c = model.config();
  KeyCaptureOptions ko;
  ko.tokens = f.tokens;
  ko.ctx = context_for(c, f.ctx);
  ko.weights = f.weights.type();
  ko.queries = (f.kv_budget > 0 || f.kv_target_kl > 0) && f.kv_objective != "key";
  ko.on = capture_on(f.capture);
  std::filesystem::path out = f.out;
  if (out.empty()) out = std::filesystem::path(f.model).filename().replace_extension("").string() + ".vkq.safetensors";
  refuse_overwriting_inputs(out, "-o", model, {{"--text", f.text}});
  // Opened (and dropped) now so that an unwritable -o fails before the work;
  // write_kcache_artifact() then writes through a writer of its own.
  AtomicFile::open(out, "-o");
  MappedFile::open(f.text);  // readable, or one clear error before the device opens
  // Said before the work, which can take hours: what will be learned and why.
  const MlpDecision mlp = decide_mlp(mlp_when(f), c);
  fmt::print("MLP rotations: {}\n", mlp.reason);
  std::fflush(stdout);

  Instance instance = Instance::create(InstanceOptions::from_env());
  Device device = Device::create(instance, f.device.device);
  Progress bar;
  const auto keys = capture_keys(device, model, f.text, ko, [&](const std::string& label, double frac) { bar.update(label, frac); });
  const auto t_keys = Clock::now();
  CalibrateOptions opt = f.opt;
  opt.policy = f.kv_budget > 0 || f.kv_target_kl > 0;
  opt.budget = f.kv_budget;
  opt.objective = f.kv_objective == "key"    ? KPolicyObjective::key
                  : f.kv_objective == "null" ? KPolicyObjective::null
                                             : KPolicyObjective::query;
  if (opt.policy && !rank_given) opt.rank = c.head_dim;  // the options reach full rank
  bar.update("learning key rotations (0 / " + std::to_string(std::size_t(c.layers) * c.kv_heads * 3) + ")", 0.0);
  auto k = calibrate_keys(c, keys.pre, keys.post, keys.positions, opt, [&](std::size_t done, std::size_t total) {
    const double spent = seconds_since(t_keys), left = spent / double(done) * double(total - done);
    bar.update(fmt::format("learning key rotations ({} / {}, {:.0f} s left)", done, total, left),
               double(done) / double(total));
  }, &keys.q2_pre, &keys.q2_post);
  const double key_seconds = seconds_since(t_keys);
  k.model_sha256 = keys.model_sha256;  // taken while the weights were uploaded
  const auto t_sens = Clock::now();
  // The null control keeps its shuffled tables unweighted unless asked: the
  // measurement would put each head's own level back.
  const bool null_control = opt.objective == KPolicyObjective::null && !f.kv_sensitivity_given;
  const bool sensitivity = opt.policy && f.kv_sensitivity_chunks > 0 && k.rank == c.head_dim && !null_control;
  if (opt.policy && null_control) {
    bar.clear();
    fmt::print("precision policy: --kv-objective null: predicted losses only (--kv-sensitivity-chunks N measures)\n");
  }
  if (opt.policy && f.kv_sensitivity_chunks > 0 && k.rank < c.head_dim) {
    if (f.kv_sensitivity_given)
      throw UsageError("--kv-sensitivity-chunks: measuring a head alone keeps the others exact, which needs --rank " +
                       std::to_string(c.head_dim) + " (head_dim), not " + std::to_string(k.rank));
    bar.clear();
    fmt::print("precision policy: predicted losses only (the measured sensitivity needs --rank {})\n", c.head_dim);
  }
  if (sensitivity) {
    measure_sensitivity(device, model, f, k, ko.ctx, bar);
    // The transform code weighs a head alike: its table's head_kl is the sign
    // code's KL per unit of predicted loss times the empty code's loss.
    for (auto& [rope, tc] : k.tc_policy) {
      const KPolicyTable& sign = k.policy_table(rope);
      tc.head_kl.assign(sign.head_kl.size(), 0.0);
      for (std::size_t h = 0; h < sign.head_kl.size(); ++h) tc.head_kl[h] = sign.weight(h) * tc.loss[h * tc.options.size()];
    }
    if (f.kv_budget > 0) {
      for (auto& [rope, table] : k.policy) k.plans[rope] = solve_policy(table, k.budget).heads;
      for (auto& [rope, table] : k.tc_policy) k.tc_plans[rope] = solve_policy(table, k.budget).heads;
    }
  }
  const double sensitivity_seconds = seconds_since(t_sens);
  const auto t_policy = Clock::now();
  if (f.kv_target_kl > 0) {
    // The least budget per codec that reaches the target; the artifact's
    // budget is the largest of them (the plans are per codec).
    for (auto& [rope, table] : k.policy) {
      const double b = budget_for_kl(device, model, f, k, rope, ko.ctx, bar);
      k.plans[rope] = solve_policy(table, b).heads;
      if (k.tc_policy.count(rope)) k.tc_plans[rope] = solve_policy(k.tc_policy.at(rope), b).heads;
      k.budget = std::max(k.budget, b);
      fmt::print("--kv-target-kl {}: {} keys take {:.4f} bits per coordinate\n", f.kv_target_kl, krope_name(rope), b);
    }
  }
  const double policy_seconds = seconds_since(t_policy);
  // The dense MLP matrices' rotations (weights only; MoE experts stay fp16).
  const auto t_mlp = Clock::now();
  if (mlp.learn) {
    if (!c.moe()) bar.update("learning MLP rotations (0 / " + std::to_string(std::size_t(c.layers) * 3) + ")", 0.0);
    MlpCalibrateOptions mo;
    mo.seed = f.opt.seed;
    mo.block = f.mlp_block;
    mo.iters = f.opt.iters;  // 0: each MLP solver's default
    k.mlp = calibrate_mlp(model, mo, [&](std::size_t done, std::size_t total) {
      const double spent = seconds_since(t_mlp), left = spent / double(done) * double(total - done);
      bar.update(fmt::format("learning MLP rotations ({} / {}, {:.0f} s left)", done, total, left),
                 double(done) / double(total));
    });
  }
  const double mlp_seconds = seconds_since(t_mlp);
  bar.clear();
  const auto t_write = Clock::now();
  write_kcache_artifact(out, k, std::string("vkquant ") + VKQ_VERSION);
  const double write_seconds = seconds_since(t_write);

  fmt::print("{}: {} tokens of {} (chunks of <= {}), {} layers x {} KV heads x {}, solver {}, rank {}\n", out.string(),
             k.tokens, f.text, ko.ctx, k.layers, k.kv_heads, k.head_dim, k.solver, k.rank);
  fmt::print("held-out cos1b (mean over KV heads)\n");
  fmt::print("{:>5} {:>13} {:>8} {:>8} {:>8} {:>9}\n", "layer", "keys", "centered", "srht", "learned", "+residual");
  for (KRope mode : {KRope::post, KRope::pre, KRope::ropemean})
    for (std::uint32_t l = 0; l < k.layers; ++l) {
      const auto& L = k.mode(mode)[l];
      fmt::print("{:>5} {:>13} {:8.4f} {:8.4f} {:8.4f} {:9.4f}\n", l, krope_name(mode), mean(L.cos_none),
                 mean(L.cos_srht), mean(L.cos_learned), mean(L.cos_eff));
    }
  if (!k.plans.empty()) {
    fmt::print("precision policy ({} objective): residual rank/bits per KV head\n", kpolicy_objective_name(opt.objective));
    for (const auto& [rope, plan] : k.plans) {
      fmt::print("{:>13} {:.4f} bits per key coordinate (budget {:.4g})\n", krope_name(rope), plan_bits(plan, c.head_dim),
                 k.budget);
      const KPolicyTable& table = k.policy_table(rope);
      for (std::uint32_t l = 0; l < k.layers; ++l) {
        std::string row;
        for (std::uint32_t h = 0; h < k.kv_heads; ++h) {
          const std::size_t i = std::size_t(l) * k.kv_heads + h;
          const KResidual r = plan[i];
          row += " " + residual_label(r);
          if (!table.head_kl.empty()) row += fmt::format(" (KL alone {:.4f})", table.head_kl[i]);
        }
        fmt::print("{:>19}{}\n", fmt::format("layer {}", l), row);
      }
    }
  }
  if (!k.tc_plans.empty()) {
    fmt::print("transform code (--kcache tc): 4/3/2/1-bit coefficients per KV head (n4/n3/n2/n1)\n");
    for (const auto& [rope, plan] : k.tc_plans) {
      fmt::print("{:>13} {:.4f} bits per key coordinate\n", krope_name(rope), plan_bits(plan, c.head_dim));
      for (std::uint32_t l = 0; l < k.layers; ++l) {
        std::string row;
        for (std::uint32_t h = 0; h < k.kv_heads; ++h) row += " " + residual_label(plan[std::size_t(l) * k.kv_heads + h]);
        fmt::print("{:>19}{}\n", fmt::format("layer {}", l), row);
      }
    }
  }
  if (k.mlp && !k.mlp->layers.empty()) {
    fmt::print("MLP matrices: held-out cos1b of W Rᵀ rows (null: the same learner on Gaussian rows)\n");
    fmt::print("{:>5} {:>6} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}\n", "layer", "matrix", "none", "srht", "dense",
               "structured", "null dense", "null struct");
    for (std::size_t l = 0; l < k.mlp->layers.size(); ++l)
      for (MlpMatrix which : kMlpMatrices) {
        const MlpMatrixCalib& m = k.mlp->layers[l][which];
        fmt::print("{:>5} {:>6} {:8.4f} {:8.4f} {:8.4f} {:10.4f} {:10.4f} {:10.4f}\n", l, mlp_matrix_name(which),
                   m.none.heldout, m.srht.heldout, m.dense.heldout, m.structured.heldout, m.null_dense.heldout,
                   m.null_structured.heldout);
      }
  } else if (k.mlp) {
    fmt::print("MLP matrices: none calibrated (MoE experts stay fp16)\n");
  }
  const double capture_seconds = keys.seconds - keys.load_seconds;
  fmt::print("{:<19} {:>9}\n", "phase", "seconds");
  fmt::print("{:<19} {:9.1f}\n", "loading the model", keys.load_seconds);
  fmt::print("{:<19} {:9.1f}  {} tokens, {:.1f} tokens/s, on the {}\n", "capturing keys", capture_seconds, keys.tokens,
             capture_seconds > 0 ? double(keys.tokens) / capture_seconds : 0.0, keys.ran_on);
  fmt::print("{:<19} {:9.1f}  {} layers x {} KV heads x 3 codecs{}\n", "key rotations", key_seconds, k.layers, k.kv_heads,
             opt.policy ? fmt::format(", {} policy options each", policy_options(c.head_dim, opt.rank, opt.rank > 0).size()) : "");
  if (sensitivity)
    fmt::print("{:<19} {:9.1f}  {} heads x {} codecs on {} chunks\n", "head sensitivity", sensitivity_seconds,
               std::size_t(k.layers) * k.kv_heads, k.policy.size(), f.kv_sensitivity_chunks);
  if (f.kv_target_kl > 0) fmt::print("{:<19} {:9.1f}\n", "--kv-target-kl", policy_seconds);
  if (mlp.learn)
    fmt::print("{:<19} {:9.1f}  {} matrices\n", "MLP rotations", mlp_seconds, k.mlp ? k.mlp->layers.size() * 3 : 0);
  else
    fmt::print("{:<19} {:>9}  {}\n", "MLP rotations", "-", mlp.reason);
  fmt::print("{:<19} {:9.1f}\n", "writing", write_seconds);
  fmt::print("{:<19} {:9.1f}\n", "total", seconds_since(t0));
}

}  // namespace

void add_calibrate(CLI::App& app) {
  auto f = std::make_shared<CalibrateFlags>();
  auto* cmd = app.add_subcommand("calibrate", "Learn the 1-bit K-cache codec (means, rotations, residual bases) on a text");
  cmd->add_option("model", f->model, "model: .gguf, .safetensors, index .json or a Hugging Face directory")->required();
  cmd->add_option("--text", f->text, "calibration text (documents split on blank lines)")->required();
  cmd->add_option("-o", f->out, "artifact to write (default: <model>.vkq.safetensors here)");
  cmd->add_option("--tokens", f->tokens, "tokens of keys to capture (only that many are run through the model)")
      ->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 32));
  cmd->add_option("--ctx", f->ctx,
                  "tokens per independent chunk of the text, and the KV-cache length (default: the model's context up "
                  "to 4096, as llama.cpp)")
      ->check(CLI::Range(2u, 1u << 22));
  auto* rank = cmd->add_option("--rank", f->opt.rank,
                               "residual basis rank stored per (layer, KV head) (default 8; head_dim with --kv-budget or "
                               "--kv-target-kl)")
                   ->check(CLI::Range(0u, 256u));
  auto* budget = cmd->add_option("--kv-budget", f->kv_budget,
                                 "precision policy: measure every (layer, KV head)'s residual options (rank, 16/8/4-bit "
                                 "coefficients) and store the plan of least loss at this mean bits per key coordinate "
                                 "(docs/design.md §2.8), and the transform code's tables and plan (--kcache tc, §2.9); "
                                 "run/ppl use them with --kv-budget artifact or BITS")
                     ->check(number_in(1.0, 64.0));
  cmd->add_option("--kv-target-kl", f->kv_target_kl,
                  "precision policy: store, per codec, the plan of the least budget whose KL to fp16 keys on the first "
                  "--kv-target-chunks chunks of --text is at most this (nats per token)")
      ->check(number_in(0.0, 10.0, true))
      ->excludes(budget);
  cmd->add_option("--kv-target-chunks", f->kv_target_chunks, "chunks of --text that --kv-target-kl measures on")
      ->check(CLI::Range(1u, 100000u));
  auto* sens = cmd->add_option("--kv-sensitivity-chunks", f->kv_sensitivity_chunks,
                               "precision policy: measure each (layer, KV head)'s sensitivity, the KL to fp16 keys of "
                               "the output with only that head coded, on this many chunks of --text, and weigh the "
                               "head's losses by it (0: predicted losses only; needs --rank head_dim)")
                   ->check(CLI::Range(0u, 100000u))
                   ->capture_default_str();
  cmd->add_option("--kv-objective", f->kv_objective,
                  "precision policy loss: query (key errors weighted by the calibration queries' second moment: the "
                  "score error E[(q·(k-k̂))²]), key (E‖k-k̂‖²) or null (the query tables dealt to the heads at "
                  "random: the control)")
      ->check(CLI::IsMember({"query", "key", "null"}));
  cmd->add_option("--solver", f->opt.solver, "learned-rotation solver")->check(CLI::IsMember({"procrustes", "radam"}));
  cmd->add_option("--iters", f->opt.iters, "iterations of the key and MLP rotation solvers (0: each solver's default)")->check(CLI::Range(0, 100000));
  cmd->add_option("--seed", f->opt.seed, "seed of the SRHT start and the train/held-out split");
  cmd->add_flag("--allow-nonfinite", f->allow_nonfinite,
                "calibrate a model holding NaN or Inf weights: they read as 0 (a warning names each tensor)");
  cmd->add_option("--mlp-block", f->mlp_block, "block size of the structured MLP rotation (a power of two, 2..1024)")
      ->check(CLI::IsMember({2u, 4u, 8u, 16u, 32u, 64u, 128u, 256u, 512u, 1024u}));
  auto* mlp = cmd->add_option("--mlp", f->mlp,
                              "learn the dense MLP matrices' rotations: auto (only for models of at most 100 M "
                              "parameters: they take far longer than the keys'), on or off")
                  ->check(CLI::IsMember({"auto", "on", "off"}))
                  ->capture_default_str();
  cmd->add_flag("--no-mlp", f->no_mlp, "the same as --mlp off (keys only)")->excludes(mlp);
  f->weights.add(cmd);
  cmd->add_option("--capture", f->capture, kCaptureHelp)->check(CLI::IsMember({"auto", "cpu", "device"}))->capture_default_str();
  cmd->add_option("--device", f->device.device, "Vulkan device index (see `vkquant devices`)");
  cmd->callback([f, rank, sens] {
    f->kv_sensitivity_given = sens->count() > 0;
    calibrate(*f, rank->count() > 0);
  });
}

}  // namespace vkq::cli
