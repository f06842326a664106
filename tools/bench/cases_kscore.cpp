// kscore bench cases: 32 query heads sharing 8 KV heads (group 4), d = 128.
// One decode step at 4 k and 32 k keys: the fp16 q·Kᵀ baseline, the float
// path and the popcount path at b = 1, 4, 8; and a causal prefill block of 16
// query rows over 4 k keys (fp16, float, popcount b = 8), the several-rows
// path attention takes. Each 1-bit case names its fp16 twin as baseline.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <span>
#include <string>

#include "bench/bench.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/kscore.hpp"
#include "vkquant/reference/kscore.hpp"

namespace vkq::bench {
namespace {

using kernels::KscoreShape;

// Buffers of one problem size, shared by its cases.
struct Problem {
  Device* device = nullptr;
  KscoreShape shape;  // queries rows; causal when several (the last row reaches every key)
  ref::KscoreDims dims;
  std::vector<std::uint32_t> bits;  // (kv_heads, N, W)
  std::vector<half_bits> alpha;     // (kv_heads, N)
  std::vector<half_bits> k;         // (kv_heads, N, d) fp16 baseline keys
  std::vector<float> q, qmu;        // (rows, q_heads, d), (rows, q_heads)
  Buffer bits_b, alpha_b, k_b, q_b, qmu_b, scores_b, planes_b[3], qconst_b[3];
};

std::shared_ptr<Problem> make_problem(Device& d, std::uint64_t keys, std::uint32_t rows) {
  auto p = std::make_shared<Problem>();
  p->device = &d;
  p->shape = {128, 8, 4, keys, {}};
  p->shape.queries = rows;
  if (rows > 1) {
    p->shape.causal = true;
    p->shape.causal_keys = keys - rows + 1;
  }
  p->dims = {128, 8, 4, keys, {}};
  const std::uint64_t kv_rows = p->shape.kv_heads * keys, dd = p->shape.d;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  std::vector<float> v(kv_rows * dd), alpha(kv_rows);
  for (auto& e : v) e = normal(rng);
  for (std::uint64_t r = 0; r < kv_rows; ++r) {
    double l1 = 0;
    for (std::uint64_t i = 0; i < dd; ++i) l1 += std::fabs(v[r * dd + i]);
    alpha[r] = float(l1 / double(dd));
  }
  p->bits = ref::kscore_pack_signs(v, kv_rows, p->shape.d);
  p->alpha = to_half(std::span<const float>(alpha));
  p->k = to_half(std::span<const float>(v));
  p->q.resize(std::size_t(rows) * p->shape.q_heads() * dd);
  for (auto& e : p->q) e = normal(rng);
  p->qmu.resize(std::size_t(rows) * p->shape.q_heads());
  for (auto& e : p->qmu) e = normal(rng);
  auto up = [&](const auto& host) {
    Buffer b = Buffer::create(d, host.size() * sizeof(host[0]));
    b.upload(host.data(), host.size() * sizeof(host[0]));
    return b;
  };
  p->bits_b = up(p->bits);
  p->alpha_b = up(p->alpha);  // kv_rows is even: whole words
  p->k_b = up(p->k);
  p->q_b = up(p->q);
  p->qmu_b = up(p->qmu);
  p->scores_b = Buffer::create(d, std::uint64_t(rows) * p->shape.q_heads() * keys * 4);
  const std::uint32_t bs[3] = {1, 4, 8};
  for (int i = 0; i < 3; ++i) {
    p->planes_b[i] = Buffer::create(d, kernels::kscore_planes_bytes(p->shape, bs[i]));
    p->qconst_b[i] = Buffer::create(d, kernels::kscore_qconst_bytes(p->shape));
  }
  return p;
}

// verify() compares the first keys of every head and row (all inside every
// row's causal reach).
constexpr std::uint64_t kCheckKeys = 2048;

// The first `keys` keys of every KV head of `p`, as reference inputs.
struct Subset {
  ref::KscoreDims dims;
  std::vector<std::uint32_t> bits;
  std::vector<half_bits> alpha, k;
};

Subset subset(const Problem& p, std::uint64_t keys) {
  Subset s;
  s.dims = p.dims;
  s.dims.keys = keys;
  const std::uint64_t w = p.shape.words(), d = p.shape.d;
  for (std::uint64_t kv = 0; kv < p.shape.kv_heads; ++kv) {
    const std::uint64_t row = kv * p.shape.keys;
    s.bits.insert(s.bits.end(), p.bits.begin() + std::ptrdiff_t(row * w), p.bits.begin() + std::ptrdiff_t((row + keys) * w));
    s.alpha.insert(s.alpha.end(), p.alpha.begin() + std::ptrdiff_t(row), p.alpha.begin() + std::ptrdiff_t(row + keys));
    s.k.insert(s.k.end(), p.k.begin() + std::ptrdiff_t(row * d), p.k.begin() + std::ptrdiff_t((row + keys) * d));
  }
  return s;
}

// Query row y of a (rows, q_heads, per_head) array.
template <class T>
std::span<const T> row_of(const std::vector<T>& v, const Problem& p, std::uint32_t y) {
  const std::size_t n = v.size() / p.shape.queries;
  return std::span<const T>(v).subspan(y * n, n);
}

// Runs `rec` once and compares the first keys of every head of every row with
// `make_ref(sub, y)` (q_heads, keys).
template <class Rec, class Ref>
std::string verify_scores(Problem& p, Rec&& rec, Ref&& make_ref) {
  Stream s = Stream::create(*p.device);
  rec(s);
  s.submit_and_wait();
  const Subset sub = subset(p, std::min(kCheckKeys, p.shape.keys));
  const std::uint64_t keys = sub.dims.keys, qh = p.shape.q_heads(), n = p.shape.queries * qh * p.shape.keys;
  std::vector<float> got(n);
  p.scores_b.download(got.data(), n * 4);
  std::uint64_t bad = 0;
  double max_err = 0;
  for (std::uint32_t y = 0; y < p.shape.queries; ++y) {
    const std::vector<float> ref = make_ref(sub, y);
    for (std::uint64_t h = 0; h < qh; ++h)
      for (std::uint64_t t = 0; t < keys; ++t) {
        const double r = ref[h * keys + t], err = std::fabs(double(got[(y * qh + h) * p.shape.keys + t]) - r);
        max_err = std::max(max_err, err);
        if (!(err <= 2e-3 + 1e-4 * std::fabs(r))) ++bad;
      }
  }
  if (bad == 0) return "";
  return std::to_string(bad) + " scores differ from the CPU reference, max error " + std::to_string(max_err);
}

// The cases of one problem: fp16, float and the popcount path at each of `bits`.
void add_cases(std::vector<Case>& out, const std::shared_ptr<Problem>& p, const std::string& tag,
               std::initializer_list<std::uint32_t> bits) {
  const std::string base = "kscore/f16" + tag;
  const double rows = p->shape.queries, keys = double(p->shape.keys);
  const double scores_bytes = rows * p->shape.q_heads() * keys * 4;
  const double q_bytes = double(p->q.size()) * 4;
  // ops: the multiply-adds of the equivalent dense q·Kᵀ (2 per coordinate, query head and row) for every
  // path, so GOP/s compares across paths.
  const double macs = rows * p->shape.q_heads() * keys * p->shape.d;
  const double onebit_bytes = double(p->bits.size()) * 4 + double(p->alpha.size()) * 2 + q_bytes;

  auto f16 = [p](Stream& s) { kernels::kscore_f16(s, p->shape, p->k_b, p->q_b, p->scores_b); };
  out.push_back({base, "kscore", Roof::read, double(p->k.size()) * 2 + q_bytes, scores_bytes, 2 * macs, "", f16,
                 [p, f16] {
                   return verify_scores(*p, f16, [&](const Subset& sub, std::uint32_t y) {
                     return ref::kscore_f16(sub.k, row_of(p->q, *p, y), sub.dims);
                   });
                 }});

  auto flt = [p](Stream& s) {
    kernels::kscore_float(s, p->shape, {&p->bits_b, &p->alpha_b, nullptr}, {&p->q_b, &p->qmu_b, nullptr, nullptr},
                          p->scores_b);
  };
  out.push_back({"kscore/float" + tag, "kscore", Roof::read, onebit_bytes, scores_bytes, 2 * macs, base, flt,
                 [p, flt] {
                   return verify_scores(*p, flt, [&](const Subset& sub, std::uint32_t y) {
                     return ref::kscore_float({sub.bits, sub.alpha, {}, {}, row_of(p->q, *p, y), row_of(p->qmu, *p, y)},
                                              sub.dims);
                   });
                 }});

  for (std::uint32_t b : bits) {
    const int i = b == 1 ? 0 : b == 4 ? 1 : 2;
    // One step: quantize the query heads of every row, then score every key.
    auto pop = [p, b, i](Stream& s) {
      kernels::kscore_quantize_query(s, p->shape, b, p->q_b, p->planes_b[i], p->qconst_b[i]);
      kernels::kscore_popcount(s, p->shape, {&p->bits_b, &p->alpha_b, nullptr}, {&p->q_b, &p->qmu_b, nullptr, nullptr},
                               {b, &p->planes_b[i], &p->qconst_b[i]}, p->scores_b);
    };
    out.push_back({"kscore/popcount" + std::to_string(b) + tag, "kscore", Roof::read, onebit_bytes, scores_bytes,
                   2 * macs, base, pop, [p, pop, b, i] {
                     return verify_scores(*p, pop, [&](const Subset& sub, std::uint32_t y) {
                       const std::uint64_t heads = p->shape.q_heads(), per_head = b * p->shape.words();
                       std::vector<std::uint32_t> planes(kernels::kscore_planes_bytes(p->shape, b) / 4);
                       p->planes_b[i].download(planes.data(), planes.size() * 4);
                       std::vector<ref::KscoreQueryConst> consts(p->shape.queries * heads);  // the device's layout
                       p->qconst_b[i].download(consts.data(), consts.size() * sizeof(consts[0]));
                       ref::KscoreQuantized qq;
                       qq.bits = b;
                       qq.planes.assign(planes.begin() + std::ptrdiff_t(y * heads * per_head),
                                        planes.begin() + std::ptrdiff_t((y + 1) * heads * per_head));
                       qq.consts.assign(consts.begin() + std::ptrdiff_t(y * heads),
                                        consts.begin() + std::ptrdiff_t((y + 1) * heads));
                       return ref::kscore_popcount(
                           {sub.bits, sub.alpha, {}, {}, row_of(p->q, *p, y), row_of(p->qmu, *p, y)}, sub.dims, qq);
                     });
                   }});
  }
}

std::vector<Case> cases(Device& d, const Options&) {
  std::vector<Case> out;
  for (std::uint64_t keys : {std::uint64_t(4096), std::uint64_t(32768)})  // small enough for --quick too
    add_cases(out, make_problem(d, keys, 1), "/d128/n" + std::to_string(keys / 1024) + "k/q32kv8", {1, 4, 8});
  add_cases(out, make_problem(d, 4096, 16), "/d128/n4k/q32kv8/rows16", {8});
  return out;
}

}  // namespace

VKQ_BENCH_CASES(kscore, cases);

}  // namespace vkq::bench
