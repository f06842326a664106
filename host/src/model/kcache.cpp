#include "vkquant/model/kcache.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <nlohmann/json.hpp>

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
    if (rank > 0 || protect_front > 0 || rotation == KRotation::learned || rope != KRope::post)
      throw Error("--residual-rank, --protect-front, --rotation learned and --kcache-rope pre|post-ropemean apply to "
                  "--kcache 1bit");
    return;
  }
  const std::uint32_t hd = c.head_dim;
  if (hd != 32 && hd != 64 && hd != 96 && hd != 128 && hd != 256)
    throw Error("--kcache 1bit: head_dim " + std::to_string(hd) + " is not supported by the 1-bit key codec (32, 64, 96, "
                "128 or 256)");
  if (rope != KRope::pre && query_bits != 0 && query_bits != 1 && query_bits != 4 && query_bits != 8)
    throw Error("--kscore-bits: " + std::to_string(query_bits) + " is not 1, 4 or 8");
  if (rotation == KRotation::learned && !calibration)
    throw Error("--rotation learned needs --rotations FILE (vkquant calibrate)");
  if (rank > 0 && (rotation != KRotation::learned || !calibration || calibration->rank < rank))
    throw Error("--residual-rank " + std::to_string(rank) +
                " needs --rotation learned and an artifact calibrated with --rank >= " + std::to_string(rank));
  if (rank > hd) throw Error("--residual-rank " + std::to_string(rank) + " exceeds head_dim " + std::to_string(hd));
  if (calibration) (void)calibration->mode(rope);  // the artifact has this mode (its means center the keys)
}

std::string KCacheConfig::label() const {
  if (!one_bit) return "fp16";
  std::string s = std::string("1bit ") + krotation_name(rotation) + " " + krope_name(rope);
  if (rank) s += " r" + std::to_string(rank);
  if (protect_front) s += " front" + std::to_string(protect_front);
  if (rope != KRope::pre) s += query_bits == 0 ? " float" : " pop" + std::to_string(query_bits);
  return s;
}

double KCacheConfig::bits_per_coordinate(std::uint32_t hd) const {
  if (!one_bit) return 16.0;
  return 1.0 + 16.0 / hd + 16.0 * rank / hd;
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

}  // namespace

KCalibration calibrate_keys(const ModelConfig& c, const std::vector<std::vector<float>>& pre,
                            const std::vector<std::vector<float>>& post, const std::vector<std::uint32_t>& positions,
                            const CalibrateOptions& o, const std::function<void(std::size_t, std::size_t)>& progress) {
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
  const std::size_t total = std::size_t(c.layers) * c.kv_heads * 3;
  std::size_t done = 0;
  for (const ModeTag& mt : kModes) {
    auto& dst = mode_of(k, mt.rope);
    const RopeTable rope = c.rope_table(c.context_in_use(0));
    const auto& src = mt.rope == KRope::post ? post : pre;
    dst.resize(c.layers);
    for (std::uint32_t l = 0; l < c.layers; ++l) {
      KLayerCalib& L = dst[l];
      L.mean.assign(std::size_t(kvd), 0.0f);
      L.rot.assign(std::size_t(c.kv_heads) * hd * hd, 0.0f);
      L.basis.assign(std::size_t(c.kv_heads) * hd * o.rank, 0.0f);
      for (auto* v : {&L.cos_none, &L.cos_srht, &L.cos_learned_train, &L.cos_learned, &L.cos_eff})
        v->assign(c.kv_heads, 0.0);
      for (std::uint32_t h = 0; h < c.kv_heads; ++h) {
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
        if (o.rank > 0) {
          const rot::RowMat y = v * learned.r.cast<float>().transpose();
          const auto basis = rot::residual_basis(y, int(o.rank), split.train, split.heldout);
          L.cos_eff[h] = basis.cos1b_eff;
          for (std::uint32_t i = 0; i < hd; ++i)
            for (std::uint32_t j = 0; j < o.rank; ++j)
              L.basis[(std::size_t(h) * hd + i) * o.rank + j] = basis.u(Eigen::Index(i), Eigen::Index(j));
        } else {
          L.cos_eff[h] = learned.heldout;
        }
        if (progress) progress(++done, total);
      }
    }
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
  for (const ModeTag& mt : kModes) {
    if (v1 && mt.rope == KRope::ropemean) continue;
    auto& dst = mode_of(k, mt.rope);
    const std::string tag = mt.tag;
    dst.resize(k.layers);
    for (std::uint32_t l = 0; l < k.layers; ++l) {
      const std::string p = "layers." + std::to_string(l) + "." + tag;
      dst[l].mean = mt.rope == KRope::ropemean ? k.pre[l].mean : read_artifact_tensor(f, p + "mean", {kv, hd});
      dst[l].rot = read_artifact_tensor(f, p + "rot", {kv, hd, hd});
      if (k.rank > 0) dst[l].basis = read_artifact_tensor(f, p + "resid_basis", {kv, hd, k.rank});
    }
  }
  k.mlp = read_mlp_artifact(f, c);
  return k;
}

}  // namespace vkq
