// `vkquant gauge MODEL|KEYS.safetensors`: docs/design.md §1's gauge. A model (GGUF,
// safetensors with config.json beside it, an index .json or a Hugging Face
// directory) is gauged whole — keys captured from its forward pass, MLP rows,
// expert banks (tools/gauge_model.hpp) — with terminal tables, --json or a
// self-contained --html report; any other safetensors file is read as sets of
// vectors, one per 2-D tensor.
#include <fmt/core.h>
#include <unistd.h>

#include <climits>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "gauge_html.hpp"
#include "gauge_model.hpp"
#include "model_flags.hpp"
#include "progress.hpp"
#include "vkquant/atomic_file.hpp"
#include "vkquant/device.hpp"
#include "vkquant/instance.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/model_file.hpp"
#include "vkquant/rotation/gauge.hpp"
#include "vkquant/safetensors.hpp"

namespace vkq::cli {

namespace {

struct GaugeFlags {
  std::string file;
  bool json = false;
  std::string solver = "procrustes";
  int iters = 0;
  int rank = 8;
  int warm_start = 100;
  std::uint32_t seed = 0;
  std::string backend = "auto";
  DeviceFlags device;
  // Models only.
  bool as_keys = false, no_keys = false, no_mlp = false;
  std::string text, rotations, html, fidelity;
  std::uint64_t tokens = 8192;
  std::uint32_t ctx = 0;
  int mlp_iters = 8;
  int mlp_warm_start = 10;
  std::size_t mlp_rows = 0;
  std::uint32_t experts = 0;
  std::string capture = "auto";
  std::vector<CLI::Option*> model_only;  // refused for a plain vector file
};

// The bundled calibration text: installed beside the binary
// (<prefix>/share/vkquant/models/kjv-calib.txt) or in the source tree.
std::filesystem::path default_text_path() {
  std::error_code ec;
  char self[PATH_MAX] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    const auto installed = std::filesystem::path(std::string(self, std::size_t(n))).parent_path().parent_path() / "share" /
                           "vkquant" / "models" / "kjv-calib.txt";
    if (std::filesystem::is_regular_file(installed, ec)) return installed;
  }
  const std::filesystem::path source = std::filesystem::path(VKQ_SOURCE_MODELS) / "kjv-calib.txt";
  if (std::filesystem::is_regular_file(source, ec)) return source;
  throw Error("--text: the bundled calibration text is not installed (looked in <prefix>/share/vkquant/models and " +
              source.parent_path().string() + "); name a text file");
}

// A model rather than a plain file of vectors: a directory, a .gguf, an
// index .json, or a .safetensors with config.json beside it.
bool is_model(const std::filesystem::path& p) {
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) return true;
  const std::string ext = p.extension().string();
  if (ext == ".gguf" || ext == ".json") return true;
  return ext == ".safetensors" && std::filesystem::exists(p.parent_path() / "config.json", ec);
}

nlohmann::ordered_json stats_json(const rot::SetStats& s) { return {{"cos1b", s.cos1b}, {"beta", s.beta}, {"energy_kept", s.energy_kept}}; }

nlohmann::ordered_json report_json(const rot::GaugeReport& g) {
  return {{"tensor", g.name},
          {"rows", g.rows},
          {"d", g.d},
          {"raw", stats_json(g.raw)},
          {"centered", stats_json(g.centered)},
          {"srht", stats_json(g.srht)},
          {"learned_train", stats_json(g.learned_train)},
          {"learned_heldout", stats_json(g.learned_heldout)},
          {"null_control", {{"train", g.null_train}, {"heldout", g.null_heldout}}},
          {"lift_over_null", g.learned_heldout.cos1b - g.null_heldout},
          {"G", g.moments.gauge},
          {"variance", g.moments.variance},
          {"excess_kurtosis", g.moments.excess_kurtosis},
          {"rank", g.rank},
          {"gamma_r", g.residual.gamma},
          {"cos1b_eff_predicted", g.residual.cos1b_eff_pred},
          {"cos1b_eff_measured", g.residual.cos1b_eff},
          {"iters", g.learn.iters},
          {"warm_start_gain", g.learn.warm_start_gain},
          {"curve", {{"iter", g.learn.curve_iters}, {"train", g.learn.train_curve}, {"heldout", g.learn.heldout_curve}}},
          {"learn_seconds", g.learn.seconds},
          {"seconds", g.seconds}};
}

void print_report(const rot::GaugeReport& g) {
  fmt::print("{}  rows {}  d {}\n", g.name, g.rows, g.d);
  fmt::print("  {:<18} {:>7} {:>7}\n", "", "cos1b", "beta");
  auto row = [](const char* label, const rot::SetStats& s) { fmt::print("  {:<18} {:7.4f} {:7.4f}\n", label, s.cos1b, s.beta); };
  row("raw", g.raw);
  row("centered", g.centered);
  row("srht", g.srht);
  row("learned (train)", g.learned_train);
  row("learned (held-out)", g.learned_heldout);
  fmt::print("  {:<18} {:7.4f}          (train {:.4f}; lift over null {:+.4f})\n", "null control", g.null_heldout,
             g.null_train, g.learned_heldout.cos1b - g.null_heldout);
  fmt::print("  G {:.4g} (kurtosis {:.3f}, variance {:.4g})  rank {}: gamma_r {:.4f}  cos1b_eff {:.4f} predicted, {:.4f} measured\n",
             g.moments.gauge, g.moments.excess_kurtosis, g.moments.variance, g.rank, g.residual.gamma,
             g.residual.cos1b_eff_pred, g.residual.cos1b_eff);
  fmt::print("  {} iterations, learned in {:.2f} s, gauged in {:.2f} s\n\n", g.learn.iters, g.learn.seconds, g.seconds);
}

rot::LearnOptions learn_options(const GaugeFlags& f, int iters, int warm_start) {
  rot::LearnOptions o;
  o.solver = f.solver == "radam" ? rot::Solver::radam : rot::Solver::procrustes;
  o.iters = iters;
  o.seed = f.seed;
  o.warm_start_iters = warm_start;
  return o;
}

void run_model_gauge(const GaugeFlags& f) {
  // Everything that can be refused is refused before the long work.
  if (f.no_keys && f.no_mlp) throw Error("--no-keys and --no-mlp together leave nothing to gauge");
  if (f.no_keys && !f.rotations.empty()) throw Error("--rotations: applies to the keys, which --no-keys skips");
  if (f.no_keys && f.ctx) throw Error("--ctx: applies to the keys, which --no-keys skips");
  if (!f.fidelity.empty() && f.html.empty()) throw Error("--fidelity: needs --html OUT (the plot is drawn there)");
  std::optional<AtomicFile> html;  // opened now: an unwritable path fails before the work
  if (!f.html.empty()) {
    html = AtomicFile::open(f.html, "--html");
    refuse_overwriting_inputs(f.html, "--html", ModelFile::open(f.file),
                              {{"--text", f.text}, {"--rotations", f.rotations}, {"--fidelity", f.fidelity}});
  }
  std::optional<nlohmann::json> fidelity;
  if (!f.fidelity.empty()) fidelity = read_fidelity(f.fidelity);
  ModelGaugeOptions o;
  o.model = f.file;
  o.text = f.text.empty() ? (f.no_keys ? std::filesystem::path() : default_text_path()) : std::filesystem::path(f.text);
  if (!f.no_keys) MappedFile::open(o.text);  // readable, or one clear error now
  o.rotations = f.rotations;
  o.tokens = f.tokens;
  o.ctx = f.ctx;
  o.keys.learn = learn_options(f, f.iters, f.warm_start);
  o.keys.rank = f.rank;
  o.mlp.learn = learn_options(f, f.mlp_iters, f.mlp_warm_start);
  o.mlp.rank = f.rank;
  o.mlp_rows = f.mlp_rows;
  o.experts = f.experts;
  o.gauge_keys = !f.no_keys;
  o.gauge_mlp = !f.no_mlp;
  o.solver_name = f.solver;
  o.capture = capture_on(f.capture);

  Instance instance = Instance::create(InstanceOptions::from_env());
  Device device = Device::create(instance, f.device.device);
  std::unique_ptr<rot::RowRotator> rotator;
  if (f.backend == "device" || (f.backend == "auto" && device.info().type != VK_PHYSICAL_DEVICE_TYPE_CPU)) {
    rotator = rot::device_rotator(device);
    o.keys.learn.backend = rotator.get();
    o.mlp.learn.backend = rotator.get();
  }
  Progress bar;
  const auto g = gauge_model(device, o, [&](const std::string& label, double frac) { bar.update(label, frac); });
  bar.clear();
  if (html) {
    html->write(gauge_html(g, fidelity));
    html->commit();
  }
  if (f.json)
    std::printf("%s\n", g.dump(2).c_str());
  else
    print_model_gauge(g);
  if (!f.html.empty() && !f.json) fmt::print("report: {}\n", f.html);
}

void run_gauge(const GaugeFlags& f) {
  std::error_code ec;
  if (!std::filesystem::exists(f.file, ec)) throw Error(f.file + ": no such file or directory");
  if (!f.as_keys && is_model(f.file)) {
    run_model_gauge(f);
    return;
  }
  for (const CLI::Option* opt : f.model_only)
    if (opt->count() > 0)
      throw Error(opt->get_name() + ": applies to a model; " + f.file + " is gauged as a file of vectors");
  const auto file = SafetensorsFile::open(f.file);
  // Every set's width is checked before any is read or gauged: a learned
  // rotation's memory grows with d^2, not with the file's size.
  for (const auto& t : file.tensors()) {
    if (t.shape.size() != 2) continue;
    try {
      rot::check_learned_dim(std::size_t(t.shape[1]));
    } catch (const Error& e) {
      throw FormatError(file.path(), "tensor \"" + t.name + "\": " + e.what());
    }
  }
  rot::GaugeOptions o;
  o.learn.solver = f.solver == "radam" ? rot::Solver::radam : rot::Solver::procrustes;
  o.learn.iters = f.iters;
  o.learn.seed = f.seed;
  o.learn.warm_start_iters = f.warm_start;
  o.rank = f.rank;

  // The device takes the rotation GEMMs when asked, or by default when it is
  // a real GPU; on a CPU device (lavapipe) the host's Eigen path is faster.
  std::optional<Instance> instance;
  std::optional<Device> device;
  std::unique_ptr<rot::RowRotator> rotator;
  if (f.backend != "cpu") {
    try {
      instance.emplace(Instance::create(InstanceOptions::from_env()));
      device.emplace(Device::create(*instance, f.device.device));
      if (f.backend == "device" || device->info().type != VK_PHYSICAL_DEVICE_TYPE_CPU) {
        rotator = rot::device_rotator(*device);
        o.learn.backend = rotator.get();
      }
    } catch (const NoDeviceError&) {
      if (f.backend == "device") throw;
    }
  }

  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  std::size_t gauged = 0;
  Progress bar;
  for (const auto& t : file.tensors()) {
    if (t.shape.size() != 2) continue;
    if (t.shape[0] < 2 || t.shape[1] == 0)
      throw FormatError(file.path(), "tensor \"" + t.name + "\" has too few rows or columns to gauge");
    const auto values = file.to_float(t);
    const rot::RowMat v = Eigen::Map<const rot::RowMat>(values.data(), Eigen::Index(t.shape[0]), Eigen::Index(t.shape[1]));
    const auto g = rot::gauge_vectors(t.name, v, o, [&](const char* stage, double frac) {
      bar.update(fmt::format("{} ({})", t.name, stage), frac);
    });
    bar.clear();
    ++gauged;
    if (f.json)
      out.push_back(report_json(g));
    else
      print_report(g);
  }
  if (gauged == 0) throw FormatError(file.path(), "no 2-D tensor to gauge");
  if (f.json) std::printf("%s\n", out.dump(2).c_str());
}

}  // namespace

void add_gauge(CLI::App& app) {
  auto f = std::make_shared<GaugeFlags>();
  auto* cmd = app.add_subcommand(
      "gauge", "How well 1-bit codes fit a model's keys and MLP rows, or each 2-D tensor of a file: raw, centered, SRHT, learned");
  cmd->add_option("file", f->file,
                  "a model (.gguf, .safetensors with config.json beside it, index .json, Hugging Face directory): its keys "
                  "and MLP rows; or any other safetensors file: each 2-D tensor is a set of vectors (its rows)")
      ->required();
  cmd->add_flag("--json", f->json, "print JSON instead of tables");
  f->model_only = {
      cmd->add_flag("--no-keys", f->no_keys, "model: skip the keys (no forward pass)"),
      cmd->add_flag("--no-mlp", f->no_mlp, "model: skip the MLP matrices and expert banks"),
      cmd->add_option("--text", f->text, "model: text the keys are captured on (default: the bundled models/kjv-calib.txt)"),
      cmd->add_option("--tokens", f->tokens, "model: tokens of keys to capture (only that many are run through the model)")
          ->check(CLI::Range(std::uint64_t(2), std::uint64_t(1) << 32)),
      cmd->add_option("--ctx", f->ctx,
                      "model: tokens per independent chunk of --text, and the KV-cache length (default: the model's "
                      "context up to 4096, as llama.cpp)")
          ->check(CLI::Range(2u, 1u << 22)),
      cmd->add_option("--capture", f->capture, std::string("model: ") + kCaptureHelp)
          ->check(CLI::IsMember({"auto", "cpu", "device"})),
      cmd->add_option("--rotations", f->rotations,
                      "model: calibration artifact (`vkquant calibrate`); the learned key figures use its rotations and means, "
                      "and its precision policy (calibrate --kv-budget) is reported: plan per KV head, loss against bits"),
      cmd->add_option("--html", f->html, "model: also write a self-contained HTML report (tables and plots) here"),
      cmd->add_option("--fidelity", f->fidelity,
                      "model: JSON of `vkquant ppl MODEL --text FILE --compare --json` for the report's bits-vs-perplexity and "
                      "bits-vs-KL plots"),
      cmd->add_option("--mlp-iters", f->mlp_iters, "model: solver iterations for MLP rows (0: the solver's default)")
          ->check(CLI::Range(0, 100000)),
      cmd->add_option("--mlp-warm-start", f->mlp_warm_start, "model: most FastICA warm-start iterations for MLP rows")
          ->check(CLI::Range(0, 10000)),
      cmd->add_option("--mlp-rows", f->mlp_rows, "model: most rows per MLP set, a seeded subsample (0: all)"),
      cmd->add_option("--experts", f->experts, "model: per-expert figures for the first N experts of each bank (0: all)"),
  };
  cmd->add_flag("--as-keys", f->as_keys, "read FILE as a file of vectors even when config.json sits beside it");
  cmd->add_option("--solver", f->solver, "learned-rotation solver")->check(CLI::IsMember({"procrustes", "radam"}));
  cmd->add_option("--iters", f->iters, "solver iterations (0: the solver's default: procrustes 30, radam 200); keys for a model")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--warm-start", f->warm_start, "most kurtosis fixed-point (FastICA) iterations before the solver; 0: none")
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--rank", f->rank, "residual rank r")->check(CLI::Range(0, 65536));
  cmd->add_option("--seed", f->seed, "seed of the SRHT start, the split and the null control");
  cmd->add_option("--backend", f->backend, "where the rotation GEMMs run: auto (a GPU if present), cpu, device")
      ->check(CLI::IsMember({"auto", "cpu", "device"}));
  cmd->add_option("--device", f->device.device, "Vulkan device index (see `vkquant devices`)");
  cmd->callback([f] { run_gauge(*f); });
}

}  // namespace vkq::cli
