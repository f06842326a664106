// bgemv cases: the 1-bit MLP matmul on Llama-7B/8B-like MLP shapes (out × in:
// 4096×4096, 4096×14336 gate/up, 14336×4096 down), batch 1 and 16, each
// against the fp16 matmul the model runs on the same weights
// (`bgemv/f16/linear/...`: kernels::linear with f16 weights, its default
// variant on the device). Full runs also time every other variant of both
// kernels; --quick only the defaults.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "bench.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/bgemv.hpp"
#include "vkquant/kernels/linear.hpp"
#include "vkquant/reference/bgemv.hpp"
#include "vkquant/reference/linear.hpp"

namespace vkq::bench {
namespace {

using kernels::GemvVariant;
using kernels::LinearVariant;

constexpr std::uint32_t kCheckRows = 48;  // rows verified at each end of y

std::vector<float> gaussian(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Rows [0, k) and [out - k, out) of y (batch, out) vs a reference evaluated
// on just those rows by `ref_rows(first, count, y_sub)`.
template <class RefRows>
std::string check_rows(const Buffer& y, std::uint32_t out, std::uint32_t batch, RefRows&& ref_rows) {
  std::vector<float> got(std::size_t(batch) * out);
  y.download(got.data(), got.size() * 4);
  const std::uint32_t k = std::min(kCheckRows, out);
  double num = 0, den = 0;
  for (std::uint32_t first : {0u, out - k}) {
    std::vector<float> ref(std::size_t(batch) * k);
    ref_rows(first, k, ref);
    for (std::uint32_t b = 0; b < batch; ++b)
      for (std::uint32_t i = 0; i < k; ++i) {
        const double d = double(got[std::size_t(b) * out + first + i]) - ref[std::size_t(b) * k + i];
        num += d * d;
        den += double(ref[std::size_t(b) * k + i]) * ref[std::size_t(b) * k + i];
      }
  }
  const double e = num / std::max(den, 1e-30);
  return e <= 1e-9 ? "" : "NMSE " + std::to_string(e) + " vs the CPU reference";
}

// One MLP-shaped weight in both codings, its input and outputs.
struct Problem {
  std::uint32_t out, in, batch;
  kernels::BinaryRows rows;
  std::vector<float> w16_rounded;  // (out, in) the fp16 weights as floats (kernels::linear's f16 rows)
  std::vector<float> x;            // (batch, in)
  Buffer bits, c, alpha, w16, xb, y, y16;
};

std::string shape_name(const Problem& p) {
  return "o" + std::to_string(p.out) + "_i" + std::to_string(p.in) + "/b" + std::to_string(p.batch);
}

// The fp16 baseline case's name: kernels::linear, automatic variant.
std::string f16_name(LinearVariant v, const std::string& shape) {
  return std::string("bgemv/f16/linear") + (v == LinearVariant::automatic ? "" : std::string("_") + kernels::linear_variant_name(v)) +
         "/" + shape;
}

void add_cases(std::vector<Case>& cases, Device& d, std::uint32_t out, std::uint32_t in, std::uint32_t batch,
               const std::vector<GemvVariant>& variants, const std::vector<LinearVariant>& f16_variants) {
  auto p = std::make_shared<Problem>();
  p->out = out;
  p->in = in;
  p->batch = batch;
  {
    const auto w = gaussian(std::size_t(out) * in, out ^ in);
    p->rows = kernels::bgemv_encode(w, out, in);
    const auto packed = kernels::linear_pack(w, out, in, kernels::WeightType::f16);
    p->w16 = Buffer::create(d, packed.size() * 4);
    p->w16.upload(packed.data(), packed.size() * 4);
    p->w16_rounded = round_to_half(w);
  }
  p->x = gaussian(std::size_t(batch) * in, 3 + batch);
  auto make = [&](const auto& v) {
    Buffer b = Buffer::create(d, v.size() * sizeof(v[0]));
    b.upload(v.data(), v.size() * sizeof(v[0]));
    return b;
  };
  p->bits = make(p->rows.bits);
  p->c = make(p->rows.c);
  p->alpha = make(p->rows.alpha);
  p->xb = make(p->x);
  p->y = Buffer::create(d, std::uint64_t(batch) * out * 4);
  p->y16 = Buffer::create(d, std::uint64_t(batch) * out * 4);

  const double x_bytes = 4.0 * batch * in, y_bytes = 4.0 * batch * out, ops = 2.0 * out * in * batch;
  const std::string shape = shape_name(*p);
  const std::string base = f16_name(LinearVariant::automatic, shape);
  for (LinearVariant v16 : f16_variants) {
    auto run = [p, v16](Stream& s) {
      kernels::linear(s, {&p->w16, kernels::WeightType::f16, p->out, p->in, 1}, p->xb, p->y16, p->batch, false,
                      {.variant = v16});
    };
    cases.push_back({f16_name(v16, shape), "bgemv", Roof::read,
                     double(p->w16.size()) + x_bytes, y_bytes, ops, "", run, [p, run, &d] {
                       Stream s = Stream::create(d);
                       run(s);
                       s.submit_and_wait();
                       return check_rows(p->y16, p->out, p->batch, [&](std::uint32_t first, std::uint32_t k, auto& ref) {
                         ref::linear(std::span(p->w16_rounded).subspan(std::size_t(first) * p->in, std::size_t(k) * p->in),
                                     p->x, ref, k, p->in, p->batch);
                       });
                     }});
  }
  for (GemvVariant v : variants) {
    const kernels::BinaryLinear w{&p->bits, &p->c, &p->alpha, nullptr, nullptr, out, in, 0};
    auto run = [p, w, v](Stream& s) { kernels::bgemv(s, w, p->xb, p->y, p->batch, nullptr, {.variant = v}); };
    cases.push_back({std::string("bgemv/") + kernels::variant_name(v) + "/" + shape, "bgemv", Roof::read,
                     double(p->bits.size()) + x_bytes + 8.0 * out, y_bytes, ops, base, run, [p, run, &d] {
                       Stream s = Stream::create(d);
                       run(s);
                       s.submit_and_wait();
                       const std::uint32_t words = p->rows.words;
                       return check_rows(p->y, p->out, p->batch, [&](std::uint32_t first, std::uint32_t k, auto& ref) {
                         ref::bgemv(std::span(p->rows.bits).subspan(std::size_t(first) * words, std::size_t(k) * words),
                                    std::span(p->rows.c).subspan(first, k), std::span(p->rows.alpha).subspan(first, k),
                                    {}, {}, p->x, ref, k, p->in, words, 0, p->batch);
                       });
                     }});
  }
}

std::vector<Case> bgemv_cases(Device& d, const Options& o) {
  std::vector<GemvVariant> all;
  for (GemvVariant v : {GemvVariant::rows, GemvVariant::bcast, GemvVariant::subgroup})
    if (kernels::variant_supported(d, v)) all.push_back(v);
  std::vector<LinearVariant> all16{LinearVariant::automatic};
  for (LinearVariant v : {LinearVariant::rows, LinearVariant::rows_shared_x, LinearVariant::subgroup})
    if (kernels::linear_variant_supported(d, v)) all16.push_back(v);
  // Quick runs time the default variants only; full runs every variant on
  // three of the shapes (the baseline stays linear's default variant).
  const std::vector<GemvVariant> def{kernels::default_variant(d)};
  const std::vector<LinearVariant> def16{LinearVariant::automatic};
  std::vector<Case> cases;
  add_cases(cases, d, 4096, 4096, 1, o.quick ? def : all, o.quick ? def16 : all16);
  add_cases(cases, d, 4096, 14336, 1, o.quick ? def : all, o.quick ? def16 : all16);
  add_cases(cases, d, 14336, 4096, 1, def, def16);
  add_cases(cases, d, 4096, 4096, 16, o.quick ? def : all, o.quick ? def16 : all16);
  return cases;
}

}  // namespace

VKQ_BENCH_CASES(bgemv, bgemv_cases);

}  // namespace vkq::bench
