// `vkquant gauge FILE.safetensors`: the gauge of every 2-D tensor, read as a
// set of vectors (its rows). DESIGN §1; a later issue extends it to models.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "progress.hpp"
#include "vkquant/device.hpp"
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
};

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

void run_gauge(const GaugeFlags& f) {
  const auto file = SafetensorsFile::open(f.file);
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
  auto* cmd = app.add_subcommand("gauge", "How well 1-bit codes fit the rows of each 2-D tensor: raw, centered, SRHT, learned");
  cmd->add_option("file", f->file, "a safetensors file; each 2-D tensor is a set of vectors (its rows)")->required();
  cmd->add_flag("--json", f->json, "print JSON instead of tables");
  cmd->add_option("--solver", f->solver, "learned-rotation solver")->check(CLI::IsMember({"procrustes", "radam"}));
  cmd->add_option("--iters", f->iters, "solver iterations (0: the solver's default: procrustes 30, radam 200)")
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
