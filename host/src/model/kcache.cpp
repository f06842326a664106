#include "vkquant/model/kcache.hpp"

#include <algorithm>
#include <charconv>
#include <random>
#include <utility>
#include <cmath>
#include <cstdio>
#include <mutex>

#include <nlohmann/json.hpp>

#include "vkquant/cpu/kernels.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/model/artifact.hpp"
#include "vkquant/rotation/learn.hpp"
#include "vkquant/rotation/metrics.hpp"
#include "vkquant/safetensors.hpp"
#include "vkquant/sha256.hpp"

namespace vkq {

const char* krope_name(KRope r) { return r == KRope::pre ? "pre" : r == KRope::ropemean ? "post-ropemean" : "post"; }

const std::vector<KLayerCalib>& KCalibration::mode(KRope r) const {
  const auto& m = r == KRope::pre ? pre : r == KRope::ropemean ? ropemean : post;
  if (m.size() != layers)
    throw Error(std::string("the calibration artifact has no --kcache-rope ") + krope_name(r) +
                " codec (written by an older vkquant calibrate; calibrate again)");
  return m;
}
const char* krotation_name(KRotation r) {
  return r == KRotation::none ? "none" : r == KRotation::srht ? "srht" : "learned";
}

void KCacheConfig::validate(const ModelConfig& c, const KCalibration* calibration) const {
  if (!one_bit) {
    if (transform) throw Error("the transform code (--kcache tc) is a coded key cache: one_bit must be set");
    if (rank > 0 || coef_bits != 16 || coef_arel || budget != 0 || protect_front > 0 || rotation == KRotation::learned ||
        rope != KRope::post)
      throw Error("--residual-rank, --residual-bits, --kv-budget, --protect-front, --rotation learned and --kcache-rope "
                  "pre|post-ropemean apply to --kcache 1bit");
    return;
  }
  const std::uint32_t hd = c.head_dim;
  if (transform) {
    if (rank > 0 || coef_bits != 16 || coef_arel)
      throw Error("--kcache tc: each head's coefficients come from the transform plan; drop --residual-rank and --residual-bits");
    if (query_bits != 0) throw Error("--kcache tc scores keys in fp32 from their codes; --kscore and --kscore-bits do not apply");
    if (rotation != KRotation::learned || !calibration)
      throw Error("--kcache tc needs --rotations FILE (an artifact calibrated with --kv-budget)");
    if (budget == 0) throw Error("--kcache tc needs --kv-budget BITS (or artifact): the mean bits per key coordinate");
  }
  if (hd != 32 && hd != 64 && hd != 96 && hd != 128 && hd != 256)
    throw Error("--kcache 1bit: head_dim " + std::to_string(hd) + " is not supported by the 1-bit key codec (32, 64, 96, "
                "128 or 256)");
  if (!transform && rope != KRope::pre && query_bits != 0 && query_bits != 1 && query_bits != 4 && query_bits != 8)
    throw Error("--kscore-bits: " + std::to_string(query_bits) + " is not 1, 4 or 8");
  if (rotation == KRotation::learned && !calibration)
    throw Error("--rotation learned needs --rotations FILE (vkquant calibrate)");
  if (rank > 0 && (rotation != KRotation::learned || !calibration || calibration->rank < rank))
    throw Error("--residual-rank " + std::to_string(rank) +
                " needs --rotation learned and an artifact calibrated with --rank >= " + std::to_string(rank));
  if (rank > hd) throw Error("--residual-rank " + std::to_string(rank) + " exceeds head_dim " + std::to_string(hd));
  if (coef_arel && coef_bits != 4 && coef_bits != 2 && coef_bits != 1)
    throw Error("--residual-bits a" + std::to_string(coef_bits) + ": alpha-relative codes are 4, 2 or 1 bits");
  if (!coef_arel && coef_bits != 16 && coef_bits != 8 && coef_bits != 4)
    throw Error("--residual-bits: " + std::to_string(coef_bits) + " is not 16, 8 or 4");
  const std::string bits_flag = "--residual-bits " + std::string(coef_arel ? "a" : "") + std::to_string(coef_bits);
  if ((coef_bits != 16 || coef_arel) && rank == 0) throw Error("--residual-bits applies to --residual-rank r > 0");
  // Codes per fp16 half: the rank must fill whole halves (int8/int4: whole bytes).
  const std::uint32_t granule = coef_arel ? 16 / coef_bits : coef_bits == 8 ? 2 : coef_bits == 4 ? 4 : 1;
  if (rank % granule)
    throw Error(bits_flag + " needs a --residual-rank that is a multiple of " + std::to_string(granule) +
                " (whole halves of codes per head)");
  if (calibration) (void)calibration->mode(rope);  // the artifact has this mode (its means center the keys)
  // Alpha-relative codes take their steps from the artifact.
  auto need_steps = [&](const std::string& flag, std::uint32_t bits) {
    if (!calibration || calibration->mode(rope).empty() || calibration->mode(rope)[0].arel_step(bits).empty())
      throw Error(flag + ": alpha-relative " + std::to_string(bits) + "-bit residual codes need an artifact with their steps (" +
                  (calibration ? calibration->source.string() + " has none; calibrate again" : "no --rotations") + ")");
  };
  if (coef_arel && rank > 0) need_steps(bits_flag, coef_bits);
  if (budget != 0) {
    if (rank > 0 || coef_bits != 16 || coef_arel)
      throw Error("--kv-budget chooses every head's residual rank and bits; drop --residual-rank and --residual-bits");
    if (rotation != KRotation::learned || !calibration)
      throw Error("--kv-budget needs --rotation learned and an artifact calibrated with --kv-budget");
    const KPolicyTable& t = calibration->policy_table(rope, transform);
    if (budget == kBudgetArtifact) {
      if (!(transform ? calibration->tc_plans : calibration->plans).count(rope))
        throw Error("--kv-budget artifact: " + calibration->source.string() + " holds no stored plan for --kcache-rope " +
                    krope_name(rope) + " (calibrate --kv-budget BITS stores one)");
    } else {
      (void)solve_policy(t, budget);  // refuses budgets below the 1-bit code
    }
    for (const auto& layer : residual_plan(c, calibration))
      for (const KResidual& r : layer)
        if (r.arel) need_steps("--kv-budget", r.bits);
    if (transform)
      for (std::uint32_t l = 0; l < c.layers; ++l)
        if (calibration->mode(rope)[l].tc_enc.empty())
          throw Error("--kcache tc: " + calibration->source.string() + " has no transform code for --kcache-rope " +
                      krope_name(rope) + " (calibrate with --kv-budget)");
  }
}

const std::vector<float>& KLayerCalib::tc_step(std::uint32_t bits) const {
  return by_tc_width(bits, tc_step4, tc_step3, tc_step2, tc_step1, "transform codes");
}
const std::vector<float>& KLayerCalib::tc_levels(std::uint32_t bits) const {
  if (bits == 4) return tc_lv4;
  if (bits == 3) return tc_lv3;
  if (bits == 2) return tc_lv2;
  throw Error("transform codes: calibrated levels exist for 4, 3 and 2 bits, not " + std::to_string(bits));
}
std::vector<float>& KLayerCalib::tc_step(std::uint32_t bits) {
  return const_cast<std::vector<float>&>(std::as_const(*this).tc_step(bits));
}

const std::vector<float>& KLayerCalib::arel_step(std::uint32_t bits) const {
  return by_width(bits, step, step_a2, step_a1, "alpha-relative codes");
}
std::vector<float>& KLayerCalib::arel_step(std::uint32_t bits) {
  return const_cast<std::vector<float>&>(std::as_const(*this).arel_step(bits));
}

namespace {
// The artifact tensor (after "layers.L.k_<mode>_") of `bits`-bit steps.
std::string arel_step_name(std::uint32_t bits) { return bits == 4 ? "resid_step" : "resid_step_a" + std::to_string(bits); }
}  // namespace

const KPolicyTable& KCalibration::policy_table(KRope r, bool transform) const {
  const auto& tables = transform ? tc_policy : policy;
  const auto it = tables.find(r);
  if (it == tables.end())
    throw Error(std::string("--kv-budget: the calibration artifact ") + (source.empty() ? "" : source.string() + " ") +
                "has no " + (transform ? "transform-code" : "precision-policy") + " table for --kcache-rope " + krope_name(r) +
                " (calibrate with --kv-budget)");
  return it->second;
}

std::vector<std::vector<KResidual>> KCacheConfig::residual_plan(const ModelConfig& c, const KCalibration* calibration) const {
  std::vector<std::vector<KResidual>> out(c.layers, std::vector<KResidual>(c.kv_heads, KResidual{rank, coef_bits, coef_arel}));
  if (!one_bit) return out;
  if (budget == 0) return out;
  const std::vector<KResidual> flat = budget == kBudgetArtifact
                                         ? (transform ? calibration->tc_plans : calibration->plans).at(rope)
                                         : solve_policy(calibration->policy_table(rope, transform), budget).heads;
  for (std::uint32_t l = 0; l < c.layers; ++l)
    for (std::uint32_t h = 0; h < c.kv_heads; ++h) out[l][h] = flat.at(std::size_t(l) * c.kv_heads + h);
  return out;
}

std::string KCacheConfig::label() const {
  if (!one_bit) return "fp16";
  std::string s = transform ? std::string("tc ") + krope_name(rope)
                            : std::string("1bit ") + krotation_name(rotation) + " " + krope_name(rope);
  if (rank)
    s += " r" + std::to_string(rank) +
         (coef_arel ? " a" + std::to_string(coef_bits) : coef_bits != 16 ? " int" + std::to_string(coef_bits) : "");
  if (budget == kBudgetArtifact) s += " kv-budget artifact";
  else if (budget > 0) {
    char b[32];
    std::snprintf(b, sizeof b, " kv-budget %g", budget);
    s += b;
  }
  if (protect_front) s += " front" + std::to_string(protect_front);
  if (rope != KRope::pre && !transform) s += query_bits == 0 ? " float" : " pop" + std::to_string(query_bits);
  return s;
}

double KCacheConfig::bits_per_coordinate(const ModelConfig& c, const KCalibration* calibration) const {
  if (!one_bit) return 16.0;
  double sum = 0;
  const auto plan = residual_plan(c, calibration);
  for (const auto& layer : plan) sum += plan_bits(layer, c.head_dim);
  return plan.empty() ? 0.0 : sum / double(plan.size());
}

void validate_vcache(VType v, const ModelConfig& c) {
  if (v != VType::f16 && c.head_dim % kVBlock)
    throw Error(std::string("--vcache ") + vtype_name(v) + ": head_dim " + std::to_string(c.head_dim) +
                " is not a multiple of " + std::to_string(kVBlock) + " (the block of the quantized values)");
}

void model_sha256_update(Sha256& h, const StoredWeight& w) {
  const std::uint32_t id = std::uint32_t(w.type);
  const std::byte tag[4] = {std::byte(id & 0xff), std::byte(id >> 8 & 0xff), std::byte(id >> 16 & 0xff), std::byte(id >> 24)};
  h.update(tag);
  h.update(w.bytes);
}

std::string model_sha256(const ModelFile& f) {
  Sha256 h;
  f.for_each_stored([&](Role, std::uint32_t, const StoredWeight& w) { model_sha256_update(h, w); });
  return h.hex();
}

void check_model_binding(const KCalibration& k, const std::string& sha) {
  if (k.model_sha256 != sha)
    throw FormatError(k.source, "was calibrated on another model (model_sha256 " + k.model_sha256.substr(0, 16) +
                                    "..., this model " + sha.substr(0, 16) + "...)");
}

namespace {

constexpr const char* kFormat = "vkquant-kcache";
constexpr const char* kVersion = "2";  // 2 added the post-ropemean codec; 1 is still read

// The three codecs' tensor-name tags and metadata names, in artifact order.
struct ModeTag {
  KRope rope;
  const char* tag;
  const char* name;
};
constexpr ModeTag kModes[] = {{KRope::post, "k_", "post"}, {KRope::pre, "k_pre_", "pre"}, {KRope::ropemean, "k_rm_", "post-ropemean"}};

std::vector<KLayerCalib>& mode_of(KCalibration& k, KRope r) {
  return r == KRope::pre ? k.pre : r == KRope::ropemean ? k.ropemean : k.post;
}

// __metadata__.kv_policy: {"objective", "options": [[rank, bits], ...],
// "budget", "modes": {"<mode>": {"loss": [(layers, kv_heads, options)],
// "head_kl": [per (layer, head)], "plan": [[rank, bits] per (layer, head)]}}}
// (head_kl only when measured, plan only with a budget).
// __metadata__.kv_policy_tc: the same for the transform code, each option
// [n4, n3, n2, n1, "tc"].
nlohmann::ordered_json policy_json(const KCalibration& k, bool transform) {
  nlohmann::ordered_json j;
  const auto& tables = transform ? k.tc_policy : k.policy;
  const auto& plans = transform ? k.tc_plans : k.plans;
  const KPolicyTable& first = tables.begin()->second;
  j["objective"] = kpolicy_objective_name(first.objective);
  auto pair = [](const KResidual& r) {
    if (r.tc) return nlohmann::ordered_json::array({r.n4, r.n3, r.n2, r.n1(), "tc"});
    return r.arel ? nlohmann::ordered_json::array({r.rank, r.bits, "alpha"}) : nlohmann::ordered_json::array({r.rank, r.bits});
  };
  j["options"] = nlohmann::ordered_json::array();
  for (const KResidual& r : first.options) j["options"].push_back(pair(r));
  j["budget"] = k.budget;
  j["modes"] = nlohmann::ordered_json::object();
  for (const ModeTag& mt : kModes) {
    const auto it = tables.find(mt.rope);
    if (it == tables.end()) continue;
    auto& m = j["modes"][mt.name];
    m["loss"] = it->second.loss;
    if (!it->second.head_kl.empty()) m["head_kl"] = it->second.head_kl;
    const auto plan = plans.find(mt.rope);
    if (plan == plans.end()) continue;
    m["plan"] = nlohmann::ordered_json::array();
    for (const KResidual& r : plan->second) m["plan"].push_back(pair(r));
  }
  return j;
}

void read_policy_json(const std::filesystem::path& path, const std::string& text, KCalibration& k, bool transform) {
  const std::string where = transform ? "__metadata__.kv_policy_tc" : "__metadata__.kv_policy";
  auto fail = [&](const std::string& what) { throw FormatError(path, where + ": " + what); };
  const nlohmann::json j = parse_json_strict(path, text);
  if (!j.is_object()) fail("is not an object");
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) fail(std::string("has no \"") + key + "\"");
    return j.at(key);
  };
  for (const auto& [key, v] : j.items())
    if (key != "objective" && key != "options" && key != "budget" && key != "modes") fail("unknown key \"" + key + "\"");
  const auto& obj = field("objective");
  if (!obj.is_string() || (obj != "query" && obj != "key" && obj != "null")) fail("objective is not \"query\", \"key\" or \"null\"");
  const KPolicyObjective objective =
      obj == "query" ? KPolicyObjective::query : obj == "key" ? KPolicyObjective::key : KPolicyObjective::null;
  auto residual = [&](const nlohmann::json& e, const std::string& what) {
    if (transform) {
      if (!e.is_array() || e.size() != 5 || !e[0].is_number_unsigned() || !e[1].is_number_unsigned() ||
          !e[2].is_number_unsigned() || !e[3].is_number_unsigned() || e[4] != "tc")
        fail(what + " is not an [n4, n3, n2, n1, \"tc\"] quintuple of whole numbers");
      std::uint64_t n[4];
      for (int i = 0; i < 4; ++i) {
        n[i] = e[std::size_t(i)].get<std::uint64_t>();
        if (n[i] > k.head_dim) n[i] = std::uint64_t(k.head_dim) + 1;  // too many either way; no overflow in the sum
      }
      const KResidual code = tc_residual(std::uint32_t(n[0]), std::uint32_t(n[1]), std::uint32_t(n[2]), std::uint32_t(n[3]));
      if (n[0] + n[1] + n[2] + n[3] > k.head_dim || !tc_fills_halves(code))
        fail(what + ": " + std::to_string(e[0].get<std::uint64_t>()) + "/" + std::to_string(e[1].get<std::uint64_t>()) + "/" +
             std::to_string(e[2].get<std::uint64_t>()) + "/" + std::to_string(e[3].get<std::uint64_t>()) +
             " is not a transform code of head_dim " + std::to_string(k.head_dim) +
             " (n4 % 4, n3 % 16, n2 % 8, n1 % 16, sum <= head_dim)");
      return code;
    }
    if (!e.is_array() || (e.size() != 2 && e.size() != 3) || !e[0].is_number_unsigned() || !e[1].is_number_unsigned() ||
        (e.size() == 3 && e[2] != "alpha"))
      fail(what + " is not a [rank, bits] pair of whole numbers or a [rank, bits, \"alpha\"] triple");
    const std::uint64_t r = e[0].get<std::uint64_t>(), b = e[1].get<std::uint64_t>();
    const bool arel = e.size() == 3;
    if (arel && b != 4 && b != 2 && b != 1) fail(what + ": alpha-relative codes are 4, 2 or 1 bits, not " + std::to_string(b));
    if (!arel && b != 16 && b != 8 && b != 4) fail(what + ": bits " + std::to_string(b) + " is not 16, 8 or 4");
    if (r > k.rank) fail(what + ": rank " + std::to_string(r) + " exceeds the basis' " + std::to_string(k.rank) + " columns");
    const std::uint64_t granule = arel ? 16 / b : b == 8 ? 2 : b == 4 ? 4 : 1;
    if (r % granule) fail(what + ": rank " + std::to_string(r) + " does not fit " + std::to_string(b) + "-bit codes");
    return KResidual{std::uint32_t(r), std::uint32_t(b), arel};
  };
  const auto& opts = field("options");
  if (!opts.is_array() || opts.empty() || opts.size() > 4096) fail("options is not a non-empty array");
  std::vector<KResidual> options;
  for (std::size_t i = 0; i < opts.size(); ++i) options.push_back(residual(opts[i], "options[" + std::to_string(i) + "]"));
  const auto& budget = field("budget");
  if (!budget.is_number() || !std::isfinite(budget.get<double>()) || budget.get<double>() < 0) fail("budget is not a number >= 0");
  k.budget = budget.get<double>();
  const auto& modes = field("modes");
  if (!modes.is_object()) fail("modes is not an object");
  const std::size_t heads = std::size_t(k.layers) * k.kv_heads;
  for (const auto& [name, m] : modes.items()) {
    const ModeTag* mt = nullptr;
    for (const ModeTag& t : kModes)
      if (name == t.name) mt = &t;
    if (!mt) fail("modes." + name + " is not a codec (post, pre, post-ropemean)");
    if (!m.is_object() || !m.contains("loss")) fail("modes." + name + " has no loss table");
    for (const auto& [key, v] : m.items())
      if (key != "loss" && key != "head_kl" && key != "plan") fail("modes." + name + ": unknown key \"" + key + "\"");
    const auto& loss = m.at("loss");
    if (!loss.is_array() || loss.size() != heads * options.size())
      fail("modes." + name + ".loss does not hold " + std::to_string(heads * options.size()) + " numbers (layers x KV heads x options)");
    KPolicyTable t{k.layers, k.kv_heads, k.head_dim, objective, options, {}};
    t.loss.reserve(loss.size());
    for (std::size_t i = 0; i < loss.size(); ++i) {
      if (!loss[i].is_number() || !std::isfinite(loss[i].get<double>()) || loss[i].get<double>() < 0)
        fail("modes." + name + ".loss[" + std::to_string(i) + "] is not a finite number >= 0");
      t.loss.push_back(loss[i].get<double>());
    }
    if (m.contains("head_kl")) {
      const auto& kl = m.at("head_kl");
      if (!kl.is_array() || kl.size() != heads)
        fail("modes." + name + ".head_kl does not hold " + std::to_string(heads) + " numbers (layers x KV heads)");
      for (std::size_t i = 0; i < kl.size(); ++i) {
        if (!kl[i].is_number() || !std::isfinite(kl[i].get<double>()) || kl[i].get<double>() < 0)
          fail("modes." + name + ".head_kl[" + std::to_string(i) + "] is not a finite number >= 0");
        t.head_kl.push_back(kl[i].get<double>());
      }
      if (std::none_of(options.begin(), options.end(), [](const KResidual& r) { return r.rank == 0; }))
        fail("modes." + name + ".head_kl needs the rank-0 option among the options");
    }
    (transform ? k.tc_policy : k.policy)[mt->rope] = std::move(t);
    if (transform && (mode_of(k, mt->rope).empty() || mode_of(k, mt->rope)[0].tc_enc.empty()))
      fail("modes." + name + ": a transform-code table, but the artifact has no tc_enc tensors for the codec");
    const auto& cal = mode_of(k, mt->rope);
    for (const KResidual& r : options)
      if (r.arel && (cal.empty() || cal[0].arel_step(r.bits).empty()))
        fail("modes." + name + ": alpha-relative " + std::to_string(r.bits) + "-bit options, but the artifact has no " +
             arel_step_name(r.bits) + " tensors for the codec");
    if (!m.contains("plan")) continue;
    const auto& plan = m.at("plan");
    if (!plan.is_array() || plan.size() != heads)
      fail("modes." + name + ".plan does not hold " + std::to_string(heads) + " [rank, bits] pairs (layers x KV heads)");
    auto& dst = (transform ? k.tc_plans : k.plans)[mt->rope];
    for (std::size_t i = 0; i < plan.size(); ++i) dst.push_back(residual(plan[i], "modes." + name + ".plan[" + std::to_string(i) + "]"));
  }
}

}  // namespace

KCalibration calibrate_keys(const ModelConfig& c, const std::vector<std::vector<float>>& pre,
                            const std::vector<std::vector<float>>& post, const std::vector<std::uint32_t>& positions,
                            const CalibrateOptions& o, const std::function<void(std::size_t, std::size_t)>& progress,
                            const std::vector<std::vector<double>>* q2_pre, const std::vector<std::vector<double>>* q2_post) {
  const std::uint32_t hd = c.head_dim, kvd = c.kv_dim();
  if (pre.size() != c.layers || post.size() != c.layers) throw Error("calibrate: need keys for every layer");
  if (o.rank > hd) throw Error("--rank: " + std::to_string(o.rank) + " exceeds head_dim " + std::to_string(hd));
  KCalibration k;
  k.layers = c.layers, k.kv_heads = c.kv_heads, k.head_dim = hd, k.rank = o.rank;
  k.tokens = post.empty() ? 0 : post[0].size() / kvd;
  if (k.tokens < 2 * std::uint64_t(hd))
    throw Error("calibrate: " + std::to_string(k.tokens) + " tokens are too few for head_dim " + std::to_string(hd) +
                " (need at least " + std::to_string(2 * hd) + ")");
  if (positions.size() != k.tokens)
    throw Error("calibrate: " + std::to_string(positions.size()) + " positions for " + std::to_string(k.tokens) + " keys");
  k.solver = o.solver;
  k.seed = o.seed;
  if (o.policy && o.objective != KPolicyObjective::key &&
      (!q2_pre || !q2_post || q2_pre->size() != c.layers || q2_post->size() != c.layers))
    throw Error("calibrate: the query-weighted policy needs every layer's query moments");
  const auto options = policy_options(hd, o.rank, o.rank > 0);
  const std::size_t total = std::size_t(c.layers) * c.kv_heads * 3;
  std::size_t done = 0;
  std::mutex progress_mutex;
  for (const ModeTag& mt : kModes) {
    auto& dst = mode_of(k, mt.rope);
    const RopeTable rope = c.rope_table(c.context_in_use(0));
    const auto& src = mt.rope == KRope::post ? post : pre;
    dst.resize(c.layers);
    KPolicyTable* table = nullptr;
    KPolicyTable* tc_table = nullptr;
    if (o.policy) {
      table = &k.policy[mt.rope];
      *table = KPolicyTable{c.layers, c.kv_heads, hd, o.objective, options, {}};
      table->loss.assign(std::size_t(c.layers) * c.kv_heads * options.size(), 0.0);
      tc_table = &k.tc_policy[mt.rope];
      *tc_table = KPolicyTable{c.layers, c.kv_heads, hd, o.objective, tc_options(hd), {}};
      tc_table->loss.assign(std::size_t(c.layers) * c.kv_heads * tc_table->options.size(), 0.0);
    }
    for (std::uint32_t l = 0; l < c.layers; ++l) {
      KLayerCalib& L = dst[l];
      L.mean.assign(std::size_t(kvd), 0.0f);
      L.rot.assign(std::size_t(c.kv_heads) * hd * hd, 0.0f);
      L.basis.assign(std::size_t(c.kv_heads) * hd * o.rank, 0.0f);
      if (o.rank > 0)
        for (std::uint32_t b : {4u, 2u, 1u}) L.arel_step(b).assign(std::size_t(c.kv_heads) * o.rank, 0.0f);
      if (o.rank > 0 && o.policy && o.objective != KPolicyObjective::key)
        L.enc_basis.assign(std::size_t(c.kv_heads) * hd * o.rank, 0.0f);
      for (auto* v : {&L.cos_none, &L.cos_srht, &L.cos_learned_train, &L.cos_learned, &L.cos_eff})
        v->assign(c.kv_heads, 0.0);
      if (tc_table) {
        L.tc_enc.assign(std::size_t(c.kv_heads) * hd * hd, 0.0f);
        L.tc_dec.assign(std::size_t(c.kv_heads) * hd * hd, 0.0f);
        for (std::uint32_t b : {4u, 3u, 2u, 1u}) L.tc_step(b).assign(std::size_t(c.kv_heads) * hd, 0.0f);
        L.tc_lv4.assign(std::size_t(c.kv_heads) * hd * 16, 0.0f);
        L.tc_lv3.assign(std::size_t(c.kv_heads) * hd * 8, 0.0f);
        L.tc_lv2.assign(std::size_t(c.kv_heads) * hd * 4, 0.0f);
      }
    }
    // The (layer, KV head) units are independent and write disjoint slices:
    // they run side by side (cpu::parallel_for; nested row loops run serially).
    cpu::parallel_for(std::size_t(c.layers) * c.kv_heads, [&](std::size_t unit) {
      const std::uint32_t l = std::uint32_t(unit / c.kv_heads), h = std::uint32_t(unit % c.kv_heads);
      KLayerCalib& L = dst[l];
      {
        rot::RowMat kh(Eigen::Index(k.tokens), Eigen::Index(hd));
        for (std::uint64_t t = 0; t < k.tokens; ++t)
          for (std::uint32_t i = 0; i < hd; ++i) kh(Eigen::Index(t), Eigen::Index(i)) = src[l][t * kvd + h * hd + i];
        const Eigen::VectorXf mu = rot::row_mean(kh);
        rot::RowMat v = rot::centered(kh, mu);
        // post-ropemean: the post-RoPE key less RoPE_p(mu_pre) = RoPE_p(k_pre - mu_pre).
        if (mt.rope == KRope::ropemean)
          for (std::uint64_t t = 0; t < k.tokens; ++t) rope_apply(rope, v.row(Eigen::Index(t)).data(), positions[t]);
        rot::LearnOptions lo;
        lo.solver = o.solver == "radam" ? rot::Solver::radam : rot::Solver::procrustes;
        lo.iters = o.iters;
        lo.seed = o.seed;
        lo.warm_start_iters = o.warm_start;
        const auto learned = rot::learn_rotation(v, lo);
        const auto split = rot::split_rows(std::size_t(v.rows()), lo.heldout, o.seed);
        L.cos_none[h] = rot::mean_cos1b(v, Eigen::MatrixXd::Identity(hd, hd), split.heldout);
        L.cos_srht[h] = rot::mean_cos1b(v, rot::srht_matrix(hd, o.seed), split.heldout);
        L.cos_learned_train[h] = learned.train;
        L.cos_learned[h] = learned.heldout;
        for (std::uint32_t i = 0; i < hd; ++i) L.mean[std::size_t(h) * hd + i] = mu[Eigen::Index(i)];
        for (std::uint32_t i = 0; i < hd; ++i)
          for (std::uint32_t j = 0; j < hd; ++j)
            L.rot[(std::size_t(h) * hd + i) * hd + j] = float(learned.r(Eigen::Index(i), Eigen::Index(j)));
        // The policy's weight in the rotated space: the score error of
        // k − k̂ is q·e, its variance over the queries eᵀ Σ_q e (Σ_q in the
        // key's space: pre-RoPE queries for pre-RoPE codes), over hd (the
        // logits' scale 1/√hd squared); the identity for the key objective.
        const bool weighted = table && o.objective != KPolicyObjective::key;
        Eigen::MatrixXd weight = Eigen::MatrixXd::Identity(hd, hd);
        if (weighted) {
          const auto& q2 = (mt.rope == KRope::pre ? *q2_pre : *q2_post)[l];
          const Eigen::Map<const Eigen::MatrixXd> sq(q2.data() + std::size_t(h) * hd * hd, hd, hd);
          weight = learned.r * sq * learned.r.transpose() / double(hd);
        }
        if (o.rank > 0) {
          const rot::RowMat y = v * learned.r.cast<float>().transpose();
          const auto basis = rot::residual_basis(y, int(o.rank), split.train, split.heldout);
          L.cos_eff[h] = basis.cos1b_eff;
          rot::RowMat yt(Eigen::Index(split.train.size()), Eigen::Index(hd));
          for (std::size_t i = 0; i < split.train.size(); ++i) yt.row(Eigen::Index(i)) = y.row(Eigen::Index(split.train[i]));
          // With the query objective the residual is coded along the
          // query-weighted pair (encoder A, decoder B), fitted on the
          // training keys; else along the principal directions.
          ResidualPair pair{basis.u.leftCols(Eigen::Index(o.rank)), basis.u.leftCols(Eigen::Index(o.rank))};
          if (weighted) pair = query_weighted_basis(yt, weight, o.rank);
          for (std::uint32_t i = 0; i < hd; ++i)
            for (std::uint32_t j = 0; j < o.rank; ++j) {
              L.basis[(std::size_t(h) * hd + i) * o.rank + j] = pair.dec(Eigen::Index(i), Eigen::Index(j));
              if (weighted) L.enc_basis[(std::size_t(h) * hd + i) * o.rank + j] = pair.enc(Eigen::Index(i), Eigen::Index(j));
            }
          // The alpha-relative steps of each code width, fitted on the training keys.
          for (std::uint32_t b : {4u, 2u, 1u}) {
            const std::vector<double> st = arel_steps(yt, pair.enc, b);
            for (std::uint32_t j = 0; j < o.rank; ++j) L.arel_step(b)[std::size_t(h) * o.rank + j] = float(st[j]);
          }
        } else {
          L.cos_eff[h] = learned.heldout;
        }
        if (table) {
          // Each option's loss on the held-out keys, in the rotated space.
          const Eigen::MatrixXd r = learned.r;
          rot::RowMat y(Eigen::Index(split.heldout.size()), Eigen::Index(hd));
          const Eigen::MatrixXf rf = r.cast<float>();
          for (std::size_t i = 0; i < split.heldout.size(); ++i)
            y.row(Eigen::Index(i)) = v.row(Eigen::Index(split.heldout[i])) * rf.transpose();
          Eigen::MatrixXf u(hd, o.rank), ue(hd, o.rank);
          for (std::uint32_t i = 0; i < hd; ++i)
            for (std::uint32_t j = 0; j < o.rank; ++j) {
              u(i, j) = L.basis[(std::size_t(h) * hd + i) * o.rank + j];
              ue(i, j) = (weighted ? L.enc_basis : L.basis)[(std::size_t(h) * hd + i) * o.rank + j];
            }
          auto head_steps = [&](std::uint32_t b) {
            const auto& all = L.arel_step(b);
            return std::vector<double>(all.begin() + std::ptrdiff_t(std::size_t(h) * o.rank),
                                       all.begin() + std::ptrdiff_t(std::size_t(h + 1) * o.rank));
          };
          const ArelStepSet steps{head_steps(4), head_steps(2), head_steps(1)};
          const auto losses = head_option_losses(y, u, weight, options, steps, &ue);
          std::copy(losses.begin(), losses.end(),
                    table->loss.begin() + std::ptrdiff_t((std::size_t(l) * c.kv_heads + h) * options.size()));
        }
        if (tc_table) {
          // The transform code in the centered (unrotated) space, weighted by
          // the queries' second moment there (the identity for the key objective).
          rot::RowMat vt(Eigen::Index(split.train.size()), Eigen::Index(hd)), vh(Eigen::Index(split.heldout.size()), Eigen::Index(hd));
          for (std::size_t i = 0; i < split.train.size(); ++i) vt.row(Eigen::Index(i)) = v.row(Eigen::Index(split.train[i]));
          for (std::size_t i = 0; i < split.heldout.size(); ++i) vh.row(Eigen::Index(i)) = v.row(Eigen::Index(split.heldout[i]));
          Eigen::MatrixXd wu = Eigen::MatrixXd::Identity(hd, hd);
          if (weighted) {
            const auto& q2 = (mt.rope == KRope::pre ? *q2_pre : *q2_post)[l];
            wu = Eigen::Map<const Eigen::MatrixXd>(q2.data() + std::size_t(h) * hd * hd, hd, hd) / double(hd);
          }
          const TcFit f = tc_fit(vt, vh, wu);
          for (std::uint32_t i = 0; i < hd; ++i)
            for (std::uint32_t j = 0; j < hd; ++j) {
              L.tc_enc[(std::size_t(h) * hd + i) * hd + j] = f.enc(Eigen::Index(i), Eigen::Index(j));
              L.tc_dec[(std::size_t(h) * hd + i) * hd + j] = f.dec(Eigen::Index(i), Eigen::Index(j));
            }
          for (std::uint32_t b : {4u, 3u, 2u, 1u})
            for (std::uint32_t j = 0; j < hd; ++j) L.tc_step(b)[std::size_t(h) * hd + j] = float(f.step(b)[j]);
          std::copy(f.lv4.begin(), f.lv4.end(), L.tc_lv4.begin() + std::ptrdiff_t(std::size_t(h) * hd * 16));
          std::copy(f.lv3.begin(), f.lv3.end(), L.tc_lv3.begin() + std::ptrdiff_t(std::size_t(h) * hd * 8));
          std::copy(f.lv2.begin(), f.lv2.end(), L.tc_lv2.begin() + std::ptrdiff_t(std::size_t(h) * hd * 4));
          const std::size_t n = tc_table->options.size();
          for (std::size_t oi = 0; oi < n; ++oi)
            tc_table->loss[(std::size_t(l) * c.kv_heads + h) * n + oi] = f.loss(tc_table->options[oi]);
        }
        if (progress) {
          std::lock_guard lock(progress_mutex);
          progress(++done, total);
        }
      }
    });
  }
  if (o.objective == KPolicyObjective::null)
    for (auto* tables : {&k.policy, &k.tc_policy})
    for (auto& [rope, t] : *tables) {
      // Each (layer, head)'s row of losses goes to another, in a seeded order.
      const std::size_t heads = std::size_t(t.layers) * t.kv_heads, n = t.options.size();
      std::vector<std::size_t> order(heads);
      for (std::size_t i = 0; i < heads; ++i) order[i] = i;
      std::mt19937 rng(o.seed ^ 0x6e756c6cu);
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<double> dealt(t.loss.size());
      for (std::size_t i = 0; i < heads; ++i)
        std::copy_n(t.loss.begin() + std::ptrdiff_t(order[i] * n), n, dealt.begin() + std::ptrdiff_t(i * n));
      t.loss = std::move(dealt);
    }
  if (o.policy && o.budget > 0) {
    k.budget = o.budget;
    for (const auto& [rope, t] : k.policy) k.plans[rope] = solve_policy(t, o.budget).heads;
    for (const auto& [rope, t] : k.tc_policy) k.tc_plans[rope] = solve_policy(t, o.budget).heads;
  }
  return k;
}

void write_kcache_artifact(const std::filesystem::path& path, const KCalibration& k, const std::string& producer) {
  const std::uint64_t kv = k.kv_heads, hd = k.head_dim;
  std::vector<TensorWrite> t;
  nlohmann::ordered_json cos = nlohmann::ordered_json::object();
  for (const ModeTag& mt : kModes) {
    const auto& src = k.mode(mt.rope);
    const std::string tag = mt.tag;
    auto& mj = cos[mt.name] = nlohmann::ordered_json::array();
    for (std::uint32_t l = 0; l < k.layers; ++l) {
      const std::string p = "layers." + std::to_string(l) + "." + tag;
      // ropemean's mean is the pre-RoPE mean, stored once as k_pre_mean.
      if (mt.rope != KRope::ropemean) add_artifact_tensor(t, p + "mean", {kv, hd}, src[l].mean);
      add_artifact_tensor(t, p + "rot", {kv, hd, hd}, src[l].rot);
      if (k.rank > 0) add_artifact_tensor(t, p + "resid_basis", {kv, hd, k.rank}, src[l].basis);
      for (std::uint32_t b : {4u, 2u, 1u})
        if (k.rank > 0 && !src[l].arel_step(b).empty())
          add_artifact_tensor(t, p + arel_step_name(b), {kv, k.rank}, src[l].arel_step(b));
      if (k.rank > 0 && !src[l].enc_basis.empty())
        add_artifact_tensor(t, p + "resid_enc_basis", {kv, hd, k.rank}, src[l].enc_basis);
      if (!src[l].tc_enc.empty()) {
        add_artifact_tensor(t, p + "tc_enc", {kv, hd, hd}, src[l].tc_enc);
        add_artifact_tensor(t, p + "tc_dec", {kv, hd, hd}, src[l].tc_dec);
        for (std::uint32_t b : {4u, 3u, 2u, 1u})
          add_artifact_tensor(t, p + "tc_step" + std::to_string(b), {kv, hd}, src[l].tc_step(b));
        add_artifact_tensor(t, p + "tc_lv4", {kv, hd, 16}, src[l].tc_lv4);
        add_artifact_tensor(t, p + "tc_lv3", {kv, hd, 8}, src[l].tc_lv3);
        add_artifact_tensor(t, p + "tc_lv2", {kv, hd, 4}, src[l].tc_lv2);
      }
      mj.push_back({{"none", src[l].cos_none},
                    {"srht", src[l].cos_srht},
                    {"learned_train", src[l].cos_learned_train},
                    {"learned_heldout", src[l].cos_learned},
                    {"learned_residual", src[l].cos_eff}});
    }
  }
  std::map<std::string, std::string> meta{
      {"format", kFormat},
      {"format_version", kVersion},
      {"producer", producer},
      {"method", "k-cache: mean-centered keys, learned rotation (" + k.solver + "), rank-" + std::to_string(k.rank) +
                     " residual basis; post-RoPE, pre-RoPE and post-RoPE less RoPE_p(pre-RoPE mean)"},
      {"model_sha256", k.model_sha256},
      {"layers", std::to_string(k.layers)},
      {"kv_heads", std::to_string(k.kv_heads)},
      {"head_dim", std::to_string(k.head_dim)},
      {"rank", std::to_string(k.rank)},
      {"tokens", std::to_string(k.tokens)},
      {"seed", std::to_string(k.seed)},
      {"cos1b_heldout", cos.dump()}};
  if (!k.policy.empty()) meta["kv_policy"] = policy_json(k, false).dump();
  if (!k.tc_policy.empty()) meta["kv_policy_tc"] = policy_json(k, true).dump();
  if (k.mlp) append_mlp_artifact(*k.mlp, t, meta);
  write_safetensors(path, t, meta);
}

KCalibration read_kcache_artifact(const std::filesystem::path& path, const ModelFile& model, bool deferred_binding) {
  const auto f = SafetensorsFile::open(path);
  const auto& m = f.metadata();
  auto meta = [&](const char* key) -> const std::string& {
    const auto it = m.find(key);
    if (it == m.end()) throw FormatError(path, std::string("__metadata__.") + key + ": missing (not a vkquant K-cache artifact)");
    return it->second;
  };
  if (meta("format") != kFormat) throw FormatError(path, "__metadata__.format: '" + meta("format") + "' is not " + kFormat);
  const bool v1 = meta("format_version") == "1";
  if (!v1 && meta("format_version") != kVersion)
    throw FormatError(path, "__metadata__.format_version: " + meta("format_version") + " is not supported (this build reads " +
                                kVersion + ")");
  const ModelConfig& c = model.config();
  auto number = [&](const char* key) -> std::uint64_t {
    const std::string& s = meta(key);
    // Digits only (from_chars takes no sign, blank or '+'; stoull read "-1" as 2^64 - 1).
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
      throw FormatError(path, std::string("__metadata__.") + key + ": '" + s + "' is not a number");
    return v;
  };
  auto small = [&](const char* key) -> std::uint32_t {
    const std::uint64_t v = number(key);
    if (v > 65536) throw FormatError(path, std::string("__metadata__.") + key + ": " + std::to_string(v) + " is out of range");
    return std::uint32_t(v);
  };
  KCalibration k;
  k.layers = small("layers");
  k.kv_heads = small("kv_heads");
  k.head_dim = small("head_dim");
  k.rank = small("rank");
  k.tokens = number("tokens");
  const std::uint64_t seed = number("seed");
  if (seed > 0xffffffffull) throw FormatError(path, "__metadata__.seed: " + std::to_string(seed) + " is out of range");
  k.seed = std::uint32_t(seed);
  k.model_sha256 = meta("model_sha256");
  if (k.layers != c.layers || k.kv_heads != c.kv_heads || k.head_dim != c.head_dim)
    throw FormatError(path, "calibrated for " + std::to_string(k.layers) + " layers x " + std::to_string(k.kv_heads) +
                                " KV heads x " + std::to_string(k.head_dim) + ", not this model's " + std::to_string(c.layers) +
                                " x " + std::to_string(c.kv_heads) + " x " + std::to_string(c.head_dim));
  if (k.rank > k.head_dim) throw FormatError(path, "__metadata__.rank: exceeds head_dim");
  k.source = path;
  if (!deferred_binding) check_model_binding(k, model_sha256(model));
  const std::uint64_t kv = k.kv_heads, hd = k.head_dim;
  ArtifactReads reads(f);
  for (const ModeTag& mt : kModes) {
    if (v1 && mt.rope == KRope::ropemean) continue;
    auto& dst = mode_of(k, mt.rope);
    const std::string tag = mt.tag;
    dst.resize(k.layers);
    for (std::uint32_t l = 0; l < k.layers; ++l) {
      const std::string p = "layers." + std::to_string(l) + "." + tag;
      dst[l].mean = mt.rope == KRope::ropemean ? k.pre[l].mean : reads.tensor(p + "mean", {kv, hd});
      dst[l].rot = reads.tensor(p + "rot", {kv, hd, hd});
      if (k.rank > 0) dst[l].basis = reads.tensor(p + "resid_basis", {kv, hd, k.rank});
      // The alpha-relative steps and the encoder's basis of a query-weighted
      // pair: each in every layer of a mode or in none.
      auto all_or_none = [&](const char* name, bool have_first) {
        const bool has = k.rank > 0 && f.find(p + name) != nullptr;
        if (l > 0 && has != have_first)
          throw FormatError(path, "tensor " + p + name + ": " + (has ? "present" : "absent") + " while layer 0's is " +
                                      (has ? "absent" : "present"));
        return has;
      };
      if (all_or_none("resid_enc_basis", !dst[0].enc_basis.empty()))
        dst[l].enc_basis = reads.tensor(p + "resid_enc_basis", {kv, hd, k.rank});
      // Steps: every element > 0.
      auto steps = [&](const std::string& name, std::vector<std::uint64_t> shape) {
        std::vector<float> st = reads.tensor(name, shape);
        for (std::size_t i = 0; i < st.size(); ++i)
          if (!(st[i] > 0)) throw FormatError(path, "tensor " + name + ": element " + std::to_string(i) + " is not > 0");
        return st;
      };
      // The transform code: all nine tensors in every layer of a mode, or none.
      // Layer 0's tc_enc decides for the others.
      const bool has_tc = l == 0 ? f.find(p + "tc_enc") != nullptr : !dst[0].tc_enc.empty();
      for (const char* name :
           {"tc_enc", "tc_dec", "tc_step4", "tc_step3", "tc_step2", "tc_step1", "tc_lv4", "tc_lv3", "tc_lv2"}) {
        const bool present = f.find(p + name) != nullptr;
        if (present != has_tc)
          throw FormatError(path, "tensor " + p + name + ": " + (present ? "present" : "absent") + " while " +
                                      (l == 0 ? "tc_enc is " : "layer 0's is ") + (present ? "absent" : "present"));
      }
      if (has_tc) {
        dst[l].tc_enc = reads.tensor(p + "tc_enc", {kv, hd, hd});
        dst[l].tc_dec = reads.tensor(p + "tc_dec", {kv, hd, hd});
        for (std::uint32_t b : {4u, 3u, 2u, 1u}) dst[l].tc_step(b) = steps(p + "tc_step" + std::to_string(b), {kv, hd});
        // Levels (finite, as every artifact tensor): a column's ascending in its codes' values.
        auto levels = [&](const std::string& name, std::uint32_t w) {
          const std::uint32_t n = 1u << w;
          std::vector<float> lv = reads.tensor(name, {kv, hd, n});
          for (std::size_t col = 0; col < lv.size() / n; ++col)
            for (int v = -int(n / 2) + 1; v < int(n / 2); ++v)
              if (!(lv[col * n + tc_code_bits(v, w)] > lv[col * n + tc_code_bits(v - 1, w)]))
                throw FormatError(path, "tensor " + name + ": column " + std::to_string(col) +
                                            "'s levels are not ascending in their codes");
          return lv;
        };
        dst[l].tc_lv4 = levels(p + "tc_lv4", 4);
        dst[l].tc_lv3 = levels(p + "tc_lv3", 3);
        dst[l].tc_lv2 = levels(p + "tc_lv2", 2);
      }
      for (std::uint32_t b : {4u, 2u, 1u}) {
        const std::string name = arel_step_name(b);
        if (all_or_none(name.c_str(), !dst[0].arel_step(b).empty())) dst[l].arel_step(b) = steps(p + name, {kv, k.rank});
      }
    }
  }
  if (const auto it = m.find("kv_policy"); it != m.end()) read_policy_json(path, it->second, k, false);
  if (const auto it = m.find("kv_policy_tc"); it != m.end()) read_policy_json(path, it->second, k, true);
  k.mlp = read_mlp_artifact(reads, c);
  reads.refuse_unread();
  return k;
}

}  // namespace vkq
