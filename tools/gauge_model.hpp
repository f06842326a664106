// `vkquant gauge MODEL`: the gauge of docs/design.md §1 on a whole model — keys per
// (layer, KV head) captured from the fp16 forward pass, before and after
// RoPE, and the rows of every MLP matrix and MoE expert bank (docs/design.md §3) —
// each learned figure beside its Gaussian null control, with a verdict.
#pragma once

#include <Eigen/Core>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "vkquant/model/kcache.hpp"
#include "vkquant/model/key_capture.hpp"
#include "vkquant/rotation/learn.hpp"

namespace vkq {
class Device;
}

namespace vkq::cli {

// Verdict thresholds on held-out cos1b (docs/design.md §1, issue 6): a layer or
// matrix whose learned cos1b reaches `ok` codes in 1 bit; one that reaches
// `floor` and whose predicted cos1b_eff (rank r) reaches `residual` needs the
// residual; anything else stays fp16.
struct Thresholds {
  double floor = 0.85, residual = 0.90, ok = 0.92;
};
std::string verdict(double learned, double eff_pred, const Thresholds& t);
std::string verdict_rule(const Thresholds& t, int rank);

// How a vector set is centered before it is coded.
enum class Centering {
  columns,  // keys: the per-(layer, head) mean over tokens (DC-mean centering)
  rows,     // MLP rows: each row minus its own mean (the codec's c_i)
};

// A learned rotation given from outside (the --rotations artifact) instead
// of the solver's: v -> R (v - mean).
struct FixedRotation {
  Eigen::VectorXf mean;  // (d)
  Eigen::MatrixXd r;     // (d, d)
};

struct SetOptions {
  rot::LearnOptions learn;  // solver, iterations, warm start, seed, held-out fraction, backend
  int rank = 8;             // residual rank r (clamped to d)
};

// Every figure of one vector set.
struct SetFigures {
  std::size_t rows = 0, d = 0;
  rot::SetStats raw, centered, srht;       // all rows
  rot::SetStats learned_fit, learned;      // the rotation's fit rows and the held-out rows
  double null_fit = 0, null = 0;           // learned cos1b on the Gaussian control: fit and held-out rows
  std::string learned_from = "solver";     // or "artifact"
  rot::Moments moments;                    // this set's G term
  int rank = 0;
  double gamma = 0, cos1b_eff_pred = 0, cos1b_eff = 0;  // residual basis fitted on the fit rows, on held-out rows
  int iters = 0;
  double seconds = 0;
};

// Gauges the rows of `v` (rows, d). With `fixed`, the learned figures use
// that rotation and mean; the null control is learned on Gaussian rows of the
// same shape, mean and covariance either way.
SetFigures gauge_set(const rot::RowMat& v, Centering centering, const SetOptions& o, const FixedRotation* fixed = nullptr);
nlohmann::ordered_json figures_json(const SetFigures& f);

struct ModelGaugeOptions {
  std::filesystem::path model, text, rotations;
  std::uint64_t tokens = 8192;   // keys captured (only that many tokens are run)
  std::uint32_t ctx = 0;         // --ctx: chunk and KV-cache length (0: the model's context up to 4096)
  SetOptions keys, mlp;
  std::size_t mlp_rows = 0;      // most rows per MLP matrix (a seeded subsample; 0: all)
  std::uint32_t experts = 0;     // per-expert figures for the first N experts of a bank (0: all)
  bool gauge_keys = true, gauge_mlp = true;
  Thresholds thresholds;
  std::string solver_name = "procrustes";
  KeyCaptureOptions::On capture = KeyCaptureOptions::On::automatic;  // --capture
};

// The whole gauge as JSON (the --json output; the HTML report draws it).
// With --rotations of an artifact calibrated with a precision policy
// (docs/design.md §2.8), keys.policy = {"objective", "budget", "modes":
// {"<post|pre|post-ropemean>": {"bits", "loss", "plan", "curve", "uniform"}}}:
// the stored plan per (layer, KV head) ({"rank", "bits", "head_bits",
// "loss", "kl_alone"}; only with a budget; kl_alone: the measured
// sensitivity, null when not measured), the policy's predicted loss at
// budgets from the 1-bit code (1 + 16/d) to 4 bits in steps of 1/8
// ({"budget", "bits", "loss"}), and every option taken by every head
// ({"rank", "bits", "head_bits", "loss"}; losses summed over heads). Losses
// are weighted by the measured sensitivity where there is one
// (KPolicyTable::weight).
// `device` runs the forward pass; `progress(label, fraction)` reports stages.
nlohmann::ordered_json gauge_model(Device& device, const ModelGaugeOptions& o,
                                   const std::function<void(const std::string&, double)>& progress = {});

// One head's residual setting as tables name it: "1-bit" (rank 0), "r8 int4", "r64 fp16".
// "1-bit", "r8 fp16", "r8 int4", "r8 a4" (alpha-relative).
std::string residual_setting(std::uint32_t rank, std::uint32_t bits, bool arel = false);

// Terminal tables of gauge_model's JSON.
void print_model_gauge(const nlohmann::ordered_json& g);

}  // namespace vkq::cli
