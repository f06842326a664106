// linear cases: the transformer's matmuls on Llama-8B-like shapes (4096×4096
// attention projection; 14336×4096 MLP up) at decode (batch 1) and prefill
// (batch 64, weights read once per batch tile) in f16 and f32 (and, where the
// default is rows_shared_x, f16 with the plain rows variant beside it); every stored
// weight type the model reads (f16, q8_0, q4_0, q4_k, q6_k) on a 2048×8192 MLP
// down projection (2048×2048 under --quick), decode and prefill, dequantized
// in registers; and linear_id on an OLMoE-like expert bank (64 experts of
// 1024×2048, top-8) for decode and a 64-token prefill. Each verifies rows at
// both ends of y against the CPU reference on the same weight bytes; the
// runner reports bytes/s against the read roofline measured in the same run.
#include <algorithm>
#include <memory>
#include <random>
#include <string>

#include "bench.hpp"
#include "vkquant/kernels/linear.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/reference/linear.hpp"

namespace vkq::bench {
namespace {

using kernels::WeightType;

constexpr std::uint32_t kCheckRows = 32;  // rows verified at each end of y

std::vector<float> uniform(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::string nmse_message(double num, double den) {
  const double e = num / std::max(den, 1e-30);
  return e <= 1e-9 ? "" : "NMSE " + std::to_string(e) + " vs the CPU reference";
}

struct Problem {
  std::uint32_t out, in, batch, experts = 1, k = 1;
  WeightType type;
  std::vector<std::uint32_t> packed;  // (experts, out) rows of linear_row_bytes(in, type)
  std::vector<float> x;               // (batch, in)
  std::vector<std::uint32_t> ids;     // (batch, k)
  Buffer wb, xb, yb, ib;

  ref::TypedRows rows() const {
    return {std::as_bytes(std::span(packed)), type, kernels::linear_row_bytes(in, type)};
  }
};

// Weights: f32/f16 from uniform floats, other types random blocks (every
// code and moderate scales; the timing does not depend on the values).
std::shared_ptr<Problem> make(Device& d, std::uint32_t out, std::uint32_t in, std::uint32_t batch, WeightType t,
                              std::uint32_t experts = 1, std::uint32_t k = 1) {
  auto p = std::make_shared<Problem>();
  p->out = out, p->in = in, p->batch = batch, p->type = t, p->experts = experts, p->k = k;
  const std::uint32_t rows = experts * out;
  if (t == WeightType::f32 || t == WeightType::f16) {
    p->packed = kernels::linear_pack(uniform(std::size_t(rows) * in, 1), rows, in, t);
  } else {
    std::vector<std::byte> raw(rows * quant::row_bytes(t, in));
    quant::fill_random_blocks(t, raw, 1);
    p->packed = kernels::linear_pack_raw(raw, rows, in, t);
  }
  p->x = uniform(std::size_t(batch) * in, 2);
  p->wb = Buffer::create(d, p->packed.size() * 4);
  p->wb.upload(p->packed.data(), p->packed.size() * 4);
  p->xb = Buffer::create(d, p->x.size() * 4);
  p->xb.upload(p->x.data(), p->x.size() * 4);
  p->yb = Buffer::create(d, std::uint64_t(batch) * k * out * 4);
  if (experts > 1) {
    std::mt19937 rng(3);
    p->ids.resize(std::size_t(batch) * k);
    for (std::uint32_t t0 = 0; t0 < batch; ++t0) {
      std::vector<std::uint32_t> perm(experts);
      for (std::uint32_t e = 0; e < experts; ++e) perm[e] = e;
      std::shuffle(perm.begin(), perm.end(), rng);
      for (std::uint32_t j = 0; j < k; ++j) p->ids[std::size_t(t0) * k + j] = perm[j];
    }
    p->ib = Buffer::create(d, p->ids.size() * 4);
    p->ib.upload(p->ids.data(), p->ids.size() * 4);
  }
  return p;
}

// Rows [0, c) and [out - c, out) of every y row vs the reference on those rows.
std::string verify_rows(const Problem& p) {
  const std::size_t yrows = std::size_t(p.batch) * p.k;
  std::vector<float> got(yrows * p.out);
  p.yb.download(got.data(), got.size() * 4);
  const std::uint32_t c = std::min(kCheckRows, p.out);
  double num = 0, den = 0;
  for (std::size_t s = 0; s < yrows; ++s) {
    const std::uint32_t e = p.experts > 1 ? p.ids[s] : 0;
    const std::size_t xrow = p.experts > 1 ? s / p.k : s;
    for (std::uint32_t first : {0u, p.out - c}) {
      const auto w = ref::dequantize_rows(p.rows(), e * p.out + first, c, p.in);
      std::vector<float> ref(c);
      ref::linear(w, std::span(p.x).subspan(xrow * p.in, p.in), ref, c, p.in, 1);
      for (std::uint32_t i = 0; i < c; ++i) {
        const double dlt = double(got[s * p.out + first + i]) - ref[i];
        num += dlt * dlt;
        den += double(ref[i]) * ref[i];
      }
    }
  }
  return nmse_message(num, den);
}

std::string dims(const Problem& p) {
  return std::to_string(p.out) + "x" + std::to_string(p.in) + "/b" + std::to_string(p.batch);
}

// `v` other than automatic is named in the case ("linear/f16/rows/...").
void add_linear(std::vector<Case>& cases, Device& d, std::uint32_t out, std::uint32_t in, std::uint32_t batch,
                WeightType t, kernels::LinearVariant v = kernels::LinearVariant::automatic) {
  auto p = make(d, out, in, batch, t);
  const double wbytes = double(out) * kernels::linear_row_bytes(in, t);
  auto rec = [p, v](Stream& s) {
    kernels::linear(s, {&p->wb, p->type, p->out, p->in, 1}, p->xb, p->yb, p->batch, false, {.variant = v});
  };
  const std::string variant = v == kernels::LinearVariant::automatic ? "" : kernels::linear_variant_name(v) + std::string("/");
  cases.push_back({std::string("linear/") + kernels::weight_type_name(t) + "/" + variant + dims(*p), "linear", Roof::read,
                   wbytes + double(batch) * in * 4, double(batch) * out * 4, 2.0 * out * in * batch, "", rec,
                   [p, &d, rec]() {
                     Stream s = Stream::create(d);
                     rec(s);
                     s.submit_and_wait();
                     return verify_rows(*p);
                   }});
}

void add_linear_id(std::vector<Case>& cases, Device& d, std::uint32_t experts, std::uint32_t out, std::uint32_t in,
                   std::uint32_t n, std::uint32_t k, WeightType t) {
  auto p = make(d, out, in, n, t, experts, k);
  // Bytes of the experts the ids touch (each read at least once).
  std::vector<bool> used(experts);
  for (auto e : p->ids) used[e] = true;
  const double touched = double(std::count(used.begin(), used.end(), true));
  const double wbytes = touched * out * kernels::linear_row_bytes(in, t);
  auto rec = [p](Stream& s) {
    kernels::linear_id(s, {&p->wb, p->type, p->out, p->in, p->experts}, p->ib, p->xb, false, p->yb, p->batch, p->k);
  };
  cases.push_back({std::string("linear/id/") + kernels::weight_type_name(t) + "/e" + std::to_string(experts) + "k" +
                       std::to_string(k) + "/" + dims(*p),
                   "linear", Roof::read, wbytes + double(n) * in * 4 + double(n) * k * 4, double(n) * k * out * 4,
                   2.0 * out * in * n * k, "", rec, [p, &d, rec]() {
                     Stream s = Stream::create(d);
                     rec(s);
                     s.submit_and_wait();
                     return verify_rows(*p);
                   }});
}

std::vector<Case> linear_cases(Device& d, const Options& o) {
  std::vector<Case> cases;
  add_linear(cases, d, 4096, 4096, 1, WeightType::f16);
  add_linear(cases, d, 4096, 4096, 64, WeightType::f16);
  add_linear(cases, d, 4096, 4096, 1, WeightType::f32);
  // Where the default is rows_shared_x (CPU devices), the plain rows variant
  // beside it in the same run: what loading x once per subgroup buys.
  if (kernels::linear_default_variant(d, 64, false, WeightType::f16) == kernels::LinearVariant::rows_shared_x)
    for (const std::uint32_t batch : {1u, 64u}) add_linear(cases, d, 4096, 4096, batch, WeightType::f16, kernels::LinearVariant::rows);
  if (!o.quick) {
    add_linear(cases, d, 14336, 4096, 1, WeightType::f16);
    add_linear(cases, d, 4096, 4096, 256, WeightType::f16);
    add_linear(cases, d, 4096, 4096, 64, WeightType::f32);
  }
  // Stored weight types, dequantized in registers: decode and prefill.
  const std::uint32_t qin = o.quick ? 2048 : 8192;
  for (const WeightType t : {WeightType::f16, WeightType::q8_0, WeightType::q4_0, WeightType::q4_k, WeightType::q6_k})
    for (const std::uint32_t batch : {1u, 64u}) add_linear(cases, d, 2048, qin, batch, t);
  // Every other stored type (full runs): decode and prefill at the same shape.
  if (!o.quick)
    for (const WeightType t : {WeightType::bf16, WeightType::q4_1, WeightType::q5_0, WeightType::q5_1, WeightType::q2_k,
                               WeightType::q3_k, WeightType::q5_k, WeightType::iq4_nl, WeightType::iq4_xs})
      for (const std::uint32_t batch : {1u, 64u}) add_linear(cases, d, 2048, qin, batch, t);
  add_linear_id(cases, d, 64, 1024, 2048, 1, 8, WeightType::f16);
  add_linear_id(cases, d, 64, 1024, 2048, 64, 8, WeightType::f16);
  return cases;
}

}  // namespace

VKQ_BENCH_CASES(linear, linear_cases);

}  // namespace vkq::bench
