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
};

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

void calibrate(const CalibrateFlags& f) {
  const auto t0 = Clock::now();
  const auto model = ModelFile::open(f.model, ModelOpenOptions{.allow_nonfinite = f.allow_nonfinite, .warn = {}});
  const ModelConfig& c = model.config();
  KeyCaptureOptions ko;
  ko.tokens = f.tokens;
  ko.ctx = context_for(c, f.ctx);
  ko.weights = f.weights.type();
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
  bar.update("learning key rotations (0 / " + std::to_string(std::size_t(c.layers) * c.kv_heads * 3) + ")", 0.0);
  auto k = calibrate_keys(c, keys.pre, keys.post, keys.positions, f.opt, [&](std::size_t done, std::size_t total) {
    const double spent = seconds_since(t_keys), left = spent / double(done) * double(total - done);
    bar.update(fmt::format("learning key rotations ({} / {}, {:.0f} s left)", done, total, left),
               double(done) / double(total));
  });
  const double key_seconds = seconds_since(t_keys);
  // The dense MLP matrices' rotations (weights only; MoE experts stay fp16).
  const auto t_mlp = Clock::now();
  if (mlp.learn) {
    if (!c.moe()) bar.update("learning MLP rotations (0 / " + std::to_string(std::size_t(c.layers) * 3) + ")", 0.0);
    MlpCalibrateOptions mo;
    mo.seed = f.opt.seed;
    mo.block = f.mlp_block;
    k.mlp = calibrate_mlp(model, mo, [&](std::size_t done, std::size_t total) {
      const double spent = seconds_since(t_mlp), left = spent / double(done) * double(total - done);
      bar.update(fmt::format("learning MLP rotations ({} / {}, {:.0f} s left)", done, total, left),
                 double(done) / double(total));
    });
  }
  const double mlp_seconds = seconds_since(t_mlp);
  k.model_sha256 = keys.model_sha256;  // taken while the weights were uploaded
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
  fmt::print("{:<19} {:9.1f}  {} tokens, {:.1f} tokens/s\n", "capturing keys", capture_seconds, keys.tokens,
             capture_seconds > 0 ? double(keys.tokens) / capture_seconds : 0.0);
  fmt::print("{:<19} {:9.1f}  {} layers x {} KV heads x 3 codecs\n", "key rotations", key_seconds, k.layers, k.kv_heads);
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
  cmd->add_option("--rank", f->opt.rank, "residual basis rank stored per (layer, KV head)")->check(CLI::Range(0u, 256u));
  cmd->add_option("--solver", f->opt.solver, "learned-rotation solver")->check(CLI::IsMember({"procrustes", "radam"}));
  cmd->add_option("--iters", f->opt.iters, "solver iterations (0: the solver's default)")->check(CLI::Range(0, 100000));
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
  cmd->add_option("--device", f->device.device, "Vulkan device index (see `vkquant devices`)");
  cmd->callback([f] { calibrate(*f); });
}

}  // namespace vkq::cli
