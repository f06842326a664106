// `vkquant ppl MODEL --text FILE`: perplexity and bits per byte of a text,
// with the protocol of tools/train/README.md (documents split on blank lines,
// independent chunks of --ctx tokens, each starting with BOS). `--compare`
// runs the K-cache configurations side by side and prints the fidelity table.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "model_flags.hpp"
#include "process_memory.hpp"
#include "progress.hpp"
#include "vkquant/device.hpp"
#include "vkquant/instance.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/ppl.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::cli {

namespace {

struct PplFlags {
  std::string model;
  std::string text;
  std::uint32_t ctx = 0;
  std::uint32_t chunks = 0;
  bool json = false;
  bool compare = false;
  std::vector<std::string> rows;  // --rows: keep the table's rows whose label holds one of these
  WeightFlag weights;
  QuantFlags quant;
  DeviceFlags device;
};

// One configuration's running figures.
struct Run {
  std::string label;
  KCacheConfig kcache;
  VType vcache = VType::f16;
  MlpConfig mlp;
  std::unique_ptr<VkForward> fwd;
  PplSums sums;
};

// One row of the fidelity table.
struct TableConfig {
  std::string label;
  KCacheConfig kcache;
  MlpConfig mlp;
  VType vcache = VType::f16;
};

// The configurations of the fidelity table (docs/design.md §2–3, issue 6): keys
// post-RoPE (scored by popcount over 8-bit query planes), post-RoPE less the
// rotated pre-RoPE mean, and pre-RoPE; quantized values (q8, q4) alone and
// with 1-bit keys; then 1-bit MLP matrices (dense models).
// The budgets of the precision-policy rows (bits per key coordinate).
constexpr double kPolicyBudgets[] = {1.25, 1.5, 1.75, 2.0, 2.5};

std::vector<TableConfig> table_configs(const ModelConfig& c, const std::optional<KCalibration>& cal) {
  const bool learned = cal.has_value();
  std::vector<TableConfig> out{{"fp16", KCacheConfig{}, {}}};
  for (KRope rope : {KRope::post, KRope::ropemean, KRope::pre}) {
    if (rope == KRope::ropemean && (!learned || cal->ropemean.empty())) continue;
    const std::string r = std::string(" ") + krope_name(rope);
    for (KRotation rot : {KRotation::none, KRotation::srht, KRotation::learned}) {
      if (rot == KRotation::learned && !learned) continue;
      if (rope == KRope::ropemean && rot != KRotation::learned) continue;  // the variant needs the pre-RoPE mean
      out.push_back({std::string("1bit ") + krotation_name(rot) + r, KCacheConfig{true, rope, rot, 0, 0, 0}, {}});
    }
    if (!learned) continue;
    out.push_back({"1bit learned" + r + " front4", KCacheConfig{true, rope, KRotation::learned, 0, 4, 0}, {}});
    out.push_back({"1bit learned" + r + " r" + std::to_string(c.head_dim / 8),
                   KCacheConfig{true, rope, KRotation::learned, c.head_dim / 8, 0, 0}, {}});
  }
  // The precision policy (docs/design.md §2.8): the plan at each budget beside
  // the uniform settings of the same cost, pre-RoPE and post-ropemean.
  for (KRope rope : {KRope::pre, KRope::ropemean}) {
    if (!learned || !cal->policy.count(rope)) continue;
    const KPolicyTable& t = cal->policy.at(rope);
    const std::string r = std::string(" ") + krope_name(rope);
    for (double budget : kPolicyBudgets) {
      if (budget <= 1.0 + 16.0 / c.head_dim + 1e-9) continue;  // the 1-bit code alone: its row is above
      for (const KResidual& o : t.options) {
        if (o.rank == 0 || std::abs(head_bits(o, c.head_dim) - budget) > 1e-9) continue;
        KCacheConfig k{true, rope, KRotation::learned, o.rank, 0, 0};
        k.coef_bits = o.bits;
        k.coef_arel = o.arel;
        out.push_back({k.label(), k, {}});
      }
      KCacheConfig k{true, rope, KRotation::learned, 0, 0, 0};
      k.budget = budget;
      out.push_back({k.label(), k, {}});
    }
  }
  // The transform code (docs/design.md §2.9) at the same budgets (and at 1
  // bit, below the sign code's floor).
  auto tc_config = [](KRope rope, double budget) {
    KCacheConfig k{true, rope, KRotation::learned, 0, 0, 0, 0};
    k.transform = true;
    k.budget = budget;
    return k;
  };
  for (KRope rope : {KRope::pre, KRope::ropemean}) {
    if (!learned || !cal->tc_policy.count(rope)) continue;
    out.push_back({tc_config(rope, 1.0).label(), tc_config(rope, 1.0), {}});
    for (double budget : kPolicyBudgets) out.push_back({tc_config(rope, budget).label(), tc_config(rope, budget), {}});
  }
  if (learned) out.push_back({"1bit learned post float", KCacheConfig{true, KRope::post, KRotation::learned, 0, 0, 0, 0}, {}});
  if (c.head_dim % kVBlock == 0) {
    for (VType v : {VType::q8, VType::q4})
      out.push_back({std::string("fp16 keys + v ") + vtype_name(v), KCacheConfig{}, {}, v});
    const KRotation rot = learned ? KRotation::learned : KRotation::srht;
    for (KRope rope : {KRope::post, KRope::ropemean, KRope::pre}) {
      if (rope == KRope::ropemean && (!learned || cal->ropemean.empty())) continue;
      out.push_back({std::string("1bit ") + krotation_name(rot) + " " + krope_name(rope) + " + v q4",
                     KCacheConfig{true, rope, rot, 0, 0, 0}, {}, VType::q4});
    }
    for (KRope rope : {KRope::pre, KRope::ropemean}) {
      if (!learned || !cal->policy.count(rope)) continue;
      for (double budget : {1.5, 1.75}) {
        if (budget <= 1.0 + 16.0 / c.head_dim + 1e-9) continue;
        KCacheConfig k{true, rope, KRotation::learned, 0, 0, 0};
        k.budget = budget;
        out.push_back({k.label() + " + v q4", k, {}, VType::q4});
      }
    }
    for (KRope rope : {KRope::pre, KRope::ropemean}) {
      if (!learned || !cal->tc_policy.count(rope)) continue;
      for (double budget : {1.5, 1.75}) out.push_back({tc_config(rope, budget).label() + " + v q4", tc_config(rope, budget), {}, VType::q4});
    }
  }
  if (c.moe()) return out;  // experts stay fp16 (docs/design.md §3)
  const bool mlp_rot = learned && cal->mlp && cal->mlp->layers.size() == c.layers;
  for (MlpRotation m : {MlpRotation::none, MlpRotation::srht, MlpRotation::dense, MlpRotation::structured}) {
    if ((m == MlpRotation::dense || m == MlpRotation::structured) && !mlp_rot) continue;
    out.push_back({std::string("fp16 keys + mlp 1bit ") + mlp_rotation_name(m), KCacheConfig{}, MlpConfig{true, m}});
  }
  if (mlp_rot)
    out.push_back({"1bit learned pre r" + std::to_string(c.head_dim / 8) + " + mlp 1bit structured",
                   KCacheConfig{true, KRope::pre, KRotation::learned, c.head_dim / 8, 0, 0}, MlpConfig{true, MlpRotation::structured}});
  return out;
}

void ppl(const PplFlags& f) {
  const auto model = ModelFile::open(f.model);
  const auto tok = model.tokenizer();
  const ModelConfig& c = model.config();
  const std::uint32_t ctx = context_for(c, f.ctx);
  const KCacheConfig own = f.quant.config();
  const auto calibration = f.quant.calibration(model);
  const auto text_file = MappedFile::open(f.text);
  const auto bytes = text_file.bytes();
  auto plan = ppl_plan(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), *tok, ctx);
  if (f.chunks > 0 && plan.chunks.size() > f.chunks) {
    // The first N chunks; bytes scale with the tokens kept (exact for byte tokenizers).
    plan.chunks.resize(f.chunks);
    std::uint64_t kept = 0;
    for (const auto& ch : plan.chunks) kept += ch.targets.size();
    plan.bytes = std::uint64_t(std::llround(double(plan.bytes) * double(kept) / double(plan.tokens)));
    plan.tokens = kept;
  }
  if (plan.tokens == 0) throw Error(f.text + ": no text to score");
  // Scored ids lie in the tokenizer's vocabulary, never in padded embedding
  // rows past it (Qwen2.5: 151936 rows, 151665 tokens), nor past the rows.
  const std::int64_t limit = std::min<std::int64_t>(tok->vocab_size(), c.vocab);
  for (const PplChunk& ch : plan.chunks)
    for (const auto t : ch.targets)
      if (t < 0 || t >= limit)
        throw Error(f.text + ": token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(limit) +
                    " (tokenizer " + std::to_string(tok->vocab_size()) + ", model " + std::to_string(c.vocab) + " rows)");

  Instance instance = Instance::create(InstanceOptions::from_env());
  Device device = Device::create(instance, f.device.device);
  std::vector<Run> runs;
  const auto configs = f.compare ? table_configs(c, calibration)
                                 : std::vector<TableConfig>{{f.quant.label(), own, f.quant.mlp_config(), f.quant.vcache_type()}};
  if (!f.rows.empty() && !f.compare) throw Error("--rows applies to --compare");
  std::vector<TableConfig> kept;
  for (const TableConfig& t : configs) {
    bool keep = kept.empty();  // fp16, the reference of every KL
    for (const auto& r : f.rows)  // "=LABEL": that label exactly; else any label containing the text
      keep |= r.starts_with('=') ? t.label == std::string_view(r).substr(1) : t.label.find(r) != std::string::npos;
    if (keep || f.rows.empty()) kept.push_back(t);
  }
  if (kept.size() == 1 && f.compare)
    throw Error("--rows: no configuration of the table matches (labels as `ppl --compare` prints them)");
  Progress bar;
  for (const auto& [label, kc, mlp, vc] : kept) {
    VkForwardOptions o;
    o.weights = f.weights.type();
    o.ctx = ctx;
    o.kcache = kc;
    o.vcache = vc;
    o.mlp = mlp;
    o.calibration = calibration ? &*calibration : nullptr;
    Run r;
    r.label = label;
    r.kcache = kc;
    r.vcache = vc;
    r.mlp = mlp;
    r.fwd = std::make_unique<VkForward>(device, model, o, [&bar, name = label](std::size_t done, std::size_t total) {
      bar.update("loading (" + name + ")", double(done) / double(total));
    });
    runs.push_back(std::move(r));
  }

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<VkForward*> fwds;
  for (Run& r : runs) fwds.push_back(r.fwd.get());
  const auto sums = score_ppl(plan, fwds, [&](std::uint64_t scored, const std::vector<PplSums>& so_far) {
    bar.update(fmt::format("{} / {} tokens, {:.4f} bits/byte so far", scored, plan.tokens,
                           so_far[0].bits / double(plan.bytes) * double(plan.tokens) / double(scored)),
               double(scored) / double(plan.tokens));
  });
  for (std::size_t i = 0; i < runs.size(); ++i) runs[i].sums = sums[i];
  bar.clear();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    const double bpt = r.sums.bits / double(plan.tokens);
    nlohmann::ordered_json j{{"config", r.label},
                             {"perplexity", std::exp2(bpt)},
                             {"bits_per_byte", r.sums.bits / double(plan.bytes)},
                             {"bits_per_token", bpt},
                             {"key_bits_per_coordinate", r.fwd->key_bits_per_coordinate()},
                             {"value_bits_per_coordinate", r.fwd->value_bits_per_coordinate()},
                             {"mlp_bits_per_weight", r.fwd->mlp_bits_per_weight()},
                             {"load_seconds", r.fwd->load_seconds()}};
    const auto mem = r.fwd->memory();
    j["device_bytes"] = {{"weights", mem.weights}, {"weights_in_file", mem.file_weights}, {"keys", mem.keys},
                         {"values", mem.values}, {"activations", mem.other}};
    if (f.compare) {
      j["kl_to_fp16"] = i == 0 ? 0.0 : r.sums.kl / double(plan.tokens);
      j["top1_agreement"] = i == 0 ? 1.0 : double(r.sums.agree) / double(plan.tokens);
    }
    rows.push_back(j);
  }
  if (f.json) {
    nlohmann::ordered_json j{{"model", f.model},   {"text", f.text},         {"ctx", ctx},
                             {"weights", f.weights.value}, {"chunks", plan.chunks.size()}, {"tokens", plan.tokens},
                             {"bytes", plan.bytes}, {"seconds", secs},
                             {"tokens_per_second", double(plan.tokens) * double(runs.size()) / secs},
                             {"device", device.info().name}, {"peak_rss_bytes", process_memory().peak_rss}};
    if (f.compare) {
      j["configs"] = rows;
    } else {
      for (const auto& [k, v] : rows[0].items()) j[k] = v;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  fmt::print("{}: {} tokens ({} bytes) in {} chunks of <= {}, {} weights\n", f.text, plan.tokens, plan.bytes,
             plan.chunks.size(), ctx, f.weights.value);
  if (!f.compare) {
    fmt::print("bits/byte {:.4f}   perplexity {:.4f} per token   ({:.1f} s, {:.0f} tokens/s, cache: {}, {:.3f} bits per "
               "key and {:.2f} per value coordinate)\n",
               rows[0]["bits_per_byte"].get<double>(), rows[0]["perplexity"].get<double>(), secs,
               double(plan.tokens) / secs, runs[0].label, runs[0].fwd->key_bits_per_coordinate(),
               runs[0].fwd->value_bits_per_coordinate());
    return;
  }
  fmt::print("| configuration | perplexity | bits/byte | KL to fp16 (nats/token) | top-1 agreement | key bits/coordinate | "
             "value bits/coordinate | MLP bits/weight |\n");
  fmt::print("|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows)
    fmt::print("| {} | {:.4f} | {:.4f} | {:.5f} | {:.4f} | {:.3f} | {:.2f} | {:.2f} |\n", r["config"].get<std::string>(),
               r["perplexity"].get<double>(), r["bits_per_byte"].get<double>(), r["kl_to_fp16"].get<double>(),
               r["top1_agreement"].get<double>(), r["key_bits_per_coordinate"].get<double>(),
               r["value_bits_per_coordinate"].get<double>(), r["mlp_bits_per_weight"].get<double>());
  fmt::print("({:.1f} s)\n", secs);
}

}  // namespace

void add_ppl(CLI::App& app) {
  auto f = std::make_shared<PplFlags>();
  auto* cmd = app.add_subcommand("ppl", "Perplexity and bits per byte of a model on a text");
  cmd->add_option("model", f->model, "model: .gguf, .safetensors, index .json or a Hugging Face directory")->required();
  cmd->add_option("--text", f->text, "text file to score")->required();
  cmd->add_option("--ctx", f->ctx, "tokens per independent chunk (default: the model's context up to 4096, as llama.cpp)")
      ->check(CLI::Range(2u, 1u << 22));
  cmd->add_option("--chunks", f->chunks, "score only the first N chunks (0: all)");
  cmd->add_flag("--compare", f->compare,
                "the fidelity table: fp16 keys and the 1-bit configurations (none/srht/learned, front protection, "
                "residual d/8; post-RoPE, post-ropemean and pre-RoPE), the precision policy at 1.5-2.5 bits beside uniform "
                "residuals of the same cost (artifacts calibrated with --kv-budget), q8/q4 values alone and with 1-bit "
                "keys, and 1-bit MLP matrices (none/srht/dense/structured R) with KL to fp16 and top-1 agreement; learned "
                "rows need --rotations");
  cmd->add_option("--rows", f->rows,
                  "--compare: only the rows whose label contains one of these texts, or is exactly the text after "
                  "a leading '=' (fp16 always: the reference)");
  cmd->add_flag("--json", f->json, "print JSON");
  f->weights.add(cmd);
  f->quant.add(cmd);
  cmd->add_option("--device", f->device.device, "Vulkan device index (see `vkquant devices`)");
  cmd->callback([f] { ppl(*f); });
}

}  // namespace vkq::cli
