// kscore kernels vs their CPU twins: the query quantizer (planes exact), the
// popcount path's integer sums (exact) and scores (close, against a reference
// given the device's quantized query), the float path (close), a sanity NMSE
// of popcount scores against float scores, the fp16 baseline, key chunking,
// several (causal) query rows over key-major and position-major keys in every
// launch shape (row blocks, keys per invocation, vec4 stores), and argument
// rejection. Residuals: uniform fp16 and mixed per-head (rank, bits) layouts
// (int8 / int4 records at odd halves), head-major and position-major.
#include <cstring>
#include <optional>

#include "kscore.h"
#include "vk_test.hpp"
#include "vkquant/error.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/kscore.hpp"
#include "vkquant/reference/kscore.hpp"

namespace vkq::test {
namespace {

using kernels::KscoreShape;

struct Params {
  std::uint32_t d, kv_heads, group;
  std::uint64_t keys;
  std::uint32_t b, rank;  // rank: the basis' columns
  bool qmu;
  std::vector<KResidual> mixed{};  // per KV head (rank, bits); empty: every head at (rank, 16)
};

std::string mix_name(const std::vector<KResidual>& m) {
  std::string s;
  for (const KResidual& r : m) s += "_" + std::to_string(r.rank) + (r.arel ? "a" : "b") + std::to_string(r.bits);
  return s.empty() ? s : "_mix" + s;
}

std::string name(const Params& p) {
  return "d" + std::to_string(p.d) + "_n" + std::to_string(p.keys) + "_kv" + std::to_string(p.kv_heads) + "_g" +
         std::to_string(p.group) + "_b" + std::to_string(p.b) + "_r" + std::to_string(p.rank) + (p.qmu ? "_qmu" : "") +
         mix_name(p.mixed);
}

// The residual layout of a problem (per position or per key).
KResidualLayout layout_of(const Params& p) {
  if (!p.mixed.empty()) return KResidualLayout::make(p.mixed);
  return p.rank ? KResidualLayout::uniform(p.kv_heads, p.rank) : KResidualLayout{};
}

// Host data of one problem, in the kernels' layouts.
struct Data {
  ref::KscoreDims dims;
  std::vector<std::uint32_t> bits;  // (kv_heads, N, W), padding bits random
  std::vector<half_bits> alpha;     // (kv_heads, N), padded to an even count
  KResidualLayout layout;           // the heads' (rank, bits)
  std::vector<half_bits> c;         // head-major records (dims.residual), padded to an even count
  std::vector<float> basis;         // (kv_heads, d, R)
  std::vector<float> q;             // (q_heads, d)
  std::vector<float> qmu;           // (q_heads) or empty

  ref::KscoreInputs inputs() const {
    const std::uint64_t kvn = dims.kv_heads * dims.keys;
    return {bits, std::span(alpha).first(kvn), std::span(c).first(dims.residual.halves(dims.keys)), basis, q, qmu};
  }
};

std::vector<half_bits> halves_even(std::vector<float> v) {
  if (v.size() % 2) v.push_back(0.f);
  if (v.empty()) v.assign(2, 0.f);
  return to_half(std::span<const float>(v));
}

Data make_data(const Params& p, std::uint32_t seed) {
  Data x;
  x.layout = layout_of(p);
  x.dims = {p.d, p.kv_heads, p.group, p.keys, KResidualView::head_major(x.layout, p.keys, p.rank)};
  const std::uint64_t rows = p.kv_heads * p.keys;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(rows * p.d);
  for (auto& e : v) e = normal(rng) + 0.3f;  // an offset: asymmetric queries and keys
  x.bits = ref::kscore_pack_signs(v, rows, p.d);
  const std::uint32_t w = x.dims.words();
  if (p.d % 32)  // garbage in the padding bits: kernels must ignore them
    for (std::uint64_t r = 0; r < rows; ++r) x.bits[r * w + w - 1] |= std::uint32_t(rng()) << (p.d % 32);
  std::vector<float> alpha(rows);
  for (std::uint64_t r = 0; r < rows; ++r) {
    double l1 = 0;
    for (std::uint32_t i = 0; i < p.d; ++i) l1 += std::fabs(v[r * p.d + i]);
    alpha[r] = float(l1 / p.d);
  }
  x.alpha = halves_even(alpha);
  // Residual records of random coefficients in [-0.5, 0.5].
  x.c.assign(std::max<std::uint64_t>((x.dims.residual.halves(p.keys) + 1) / 2 * 2, 2), 0);
  std::uniform_real_distribution<double> coef(-0.5, 0.5);
  std::vector<double> cf(p.rank);
  // Alpha-relative records: codes of 10·c / alpha, spread over the levels
  // (the kernels read only the codes and the key's alpha).
  for (std::uint32_t h = 0; h < x.dims.residual.heads.size(); ++h) {
    const KResidualPlace& pl = x.dims.residual.heads[h];
    for (std::uint64_t t = 0; t < p.keys && pl.code.rank; ++t) {
      for (std::uint32_t i = 0; i < pl.code.rank; ++i) cf[i] = coef(rng) * (pl.code.arel ? 10.0 : 1.0);
      pack_residual(pl.code, cf,
                    std::span(x.c).subspan(pl.offset + t * pl.stride, KResidualLayout::record_halves(pl.code)),
                    double(from_half(x.alpha[std::size_t(h) * p.keys + t])));
    }
  }
  x.basis = random_floats(std::size_t(p.kv_heads) * p.d * p.rank, seed + 2, -0.3f, 0.3f);
  x.q = random_floats(std::size_t(x.dims.q_heads()) * p.d, seed + 3, -1.f, 1.2f);
  if (p.qmu) x.qmu = random_floats(x.dims.q_heads(), seed + 4, -2.f, 2.f);
  return x;
}

// The device side of one problem.
struct DeviceData {
  KscoreShape shape;
  Buffer bits, alpha, c, basis, q, qmu, uq;

  DeviceData(Device& d, const Data& x)
      : shape{x.dims.d, x.dims.kv_heads, x.dims.group, x.dims.keys, x.dims.residual},
        bits(upload(d, x.bits)),
        alpha(upload(d, x.alpha)),
        c(upload(d, x.c)),
        basis(upload(d, x.basis)),
        q(upload(d, x.q)),
        qmu(upload(d, x.qmu)),
        uq(Buffer::create(d, std::max<std::uint64_t>(std::uint64_t(x.dims.q_heads()) * x.dims.residual.basis_cols * 4, 4))) {}

  kernels::KscoreKeys keys() const { return {&bits, &alpha, shape.residual.any() ? &c : nullptr}; }
  kernels::KscoreQuery query(bool with_qmu) {
    const bool r = shape.residual.any();
    return {&q, with_qmu ? &qmu : nullptr, r ? &basis : nullptr, r ? &uq : nullptr};
  }
};

// The device's quantized query, downloaded as a reference-side struct.
ref::KscoreQuantized download_quantized(const Buffer& planes, const Buffer& qconst, const KscoreShape& sh,
                                        std::uint32_t b) {
  ref::KscoreQuantized qq;
  qq.bits = b;
  qq.planes = download<std::uint32_t>(planes, kernels::kscore_planes_bytes(sh, b) / 4);
  const auto raw = download<gpu::KscoreQueryConst>(qconst, sh.query_rows() * sh.q_heads());
  for (const auto& c : raw) qq.consts.push_back({c.delta, c.zero, c.inv_delta, c.sum_q});
  return qq;
}

constexpr std::uint32_t kPoison = 0x7fc00badu;

class Kscore : public VulkanTest, public ::testing::WithParamInterface<Params> {};

TEST_P(Kscore, AllPaths) {
  const Params p = GetParam();
  const Data x = make_data(p, 1234 + p.d + std::uint32_t(p.keys));
  DeviceData g(dev(), x);
  const KscoreShape& sh = g.shape;
  const std::uint64_t nscores = std::uint64_t(sh.q_heads()) * sh.keys;
  Buffer planes = Buffer::create(dev(), kernels::kscore_planes_bytes(sh, p.b));
  Buffer qconst = Buffer::create(dev(), kernels::kscore_qconst_bytes(sh));
  Buffer sums = Buffer::create(dev(), nscores * 4 + 64), pop = Buffer::create(dev(), nscores * 4 + 64),
         flt = Buffer::create(dev(), nscores * 4 + 64);
  for (Buffer* b : {&sums, &pop, &flt}) b->fill(kPoison);

  Stream s = Stream::create(dev());
  kernels::kscore_quantize_query(s, sh, p.b, g.q, planes, qconst);
  const kernels::KscoreQuantized qq{p.b, &planes, &qconst};
  kernels::kscore_popcount_sums(s, sh, g.bits, qq, sums);
  kernels::kscore_popcount(s, sh, g.keys(), g.query(p.qmu), qq, pop);
  kernels::kscore_float(s, sh, g.keys(), g.query(p.qmu), flt);
  s.submit_and_wait();

  // Quantizer: constants close to the host's, planes bit-exact given the device's constants.
  const ref::KscoreQuantized dq = download_quantized(planes, qconst, sh, p.b);
  const ref::KscoreQuantized hq = ref::kscore_quantize_query(x.q, x.dims, p.b);
  std::vector<float> dconst, hconst;
  for (std::uint32_t h = 0; h < sh.q_heads(); ++h) {
    dconst.insert(dconst.end(), {dq.consts[h].delta, dq.consts[h].zero});
    hconst.insert(hconst.end(), {hq.consts[h].delta, hq.consts[h].zero});
  }
  EXPECT_TRUE(close(hconst, dconst, 1e-6, 1e-5)) << "query constants (delta, zero)";
  const ref::KscoreQuantized rq = ref::kscore_quantize_query_with(x.q, x.dims, p.b, dq.consts);
  EXPECT_TRUE(exact<std::uint32_t>(rq.planes, dq.planes)) << "query bit-planes";
  for (std::uint32_t h = 0; h < sh.q_heads(); ++h) EXPECT_EQ(rq.consts[h].sum_q, dq.consts[h].sum_q) << "head " << h;

  // Popcount path: integer sums exact, scores close to a reference with the same quantized query.
  const auto ref_sums = ref::kscore_popcount_sums(x.bits, x.dims, dq);
  EXPECT_TRUE(exact<std::int32_t>(ref_sums, download<std::int32_t>(sums, nscores))) << "sum s_i Q_i";
  const auto ref_pop = ref::kscore_popcount(x.inputs(), x.dims, dq);
  const auto got_pop = download<float>(pop, nscores);
  EXPECT_TRUE(close(ref_pop, got_pop, 2e-3, 1e-4)) << "popcount scores";

  // Float path.
  const auto ref_flt = ref::kscore_float(x.inputs(), x.dims);
  const auto got_flt = download<float>(flt, nscores);
  EXPECT_TRUE(close(ref_flt, got_flt, 2e-3, 1e-4)) << "float scores";

  // Sanity: quantizing the query to 8 (4) bits barely moves the scores.
  if (p.b == 8) {
    EXPECT_TRUE(nmse(got_flt, got_pop, 1e-3)) << "popcount-b8 vs float";
  }
  if (p.b == 4) {
    EXPECT_TRUE(nmse(got_flt, got_pop, 5e-2)) << "popcount-b4 vs float";
  }

  // Nothing written past the scores.
  for (const Buffer* b : {&sums, &pop, &flt}) {
    std::uint32_t tail[16];
    b->download(tail, sizeof tail, nscores * 4);
    for (auto t : tail) EXPECT_EQ(t, kPoison) << "wrote past the scores";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Kscore,
                         ::testing::Values(Params{64, 1, 1, 1, 1, 0, false}, Params{64, 2, 4, 13, 4, 4, true},
                                           Params{64, 1, 4, 4097, 8, 0, true}, Params{64, 2, 1, 127, 8, 16, false},
                                           Params{100, 2, 1, 127, 8, 16, true}, Params{100, 2, 4, 4097, 1, 4, false},
                                           Params{100, 1, 4, 13, 4, 0, false}, Params{128, 2, 4, 4097, 8, 16, true},
                                           Params{128, 1, 1, 127, 1, 0, true}, Params{128, 2, 4, 1, 4, 4, true},
                                           Params{128, 1, 4, 4097, 4, 0, false}, Params{129, 1, 1, 4097, 4, 16, false},
                                           Params{129, 2, 4, 127, 8, 4, true}, Params{129, 2, 1, 13, 1, 16, true},
                                           Params{520, 1, 1, 13, 8, 0, false},
                                           // Per-head residuals: int4 / none / int8, records at odd halves.
                                           Params{64, 3, 2, 301, 8, 8, true, {{8, 4}, {0, 16}, {6, 8}}},
                                           Params{96, 3, 4, 127, 4, 12, false, {{12, 8}, {4, 4}, {7, 16}}},
                                           Params{64, 3, 2, 301, 8, 8, true, {{8, 4, true}, {0, 16}, {4, 4, true}}},
                                           Params{64, 3, 2, 301, 4, 16, false, {{16, 1, true}, {3, 16}, {8, 2, true}}}),
                         [](const auto& tp) { return name(tp.param); });

// ---- fp16 baseline ------------------------------------------------------------

struct F16Params {
  std::uint32_t d, kv_heads, group;
  std::uint64_t keys;
};

class KscoreF16 : public VulkanTest, public ::testing::WithParamInterface<F16Params> {};

// K (kv_heads, N, ceil(d/2) words) with a random padding half for odd d.
std::vector<half_bits> make_k(const ref::KscoreDims& dm, std::uint32_t seed) {
  const std::uint64_t row = (dm.d + 1) / 2 * 2, rows = dm.kv_heads * dm.keys;
  auto k = to_half(std::span<const float>(random_floats(rows * row, seed, -2.f, 2.f)));
  return k;
}

TEST_P(KscoreF16, MatchesReference) {
  const F16Params p = GetParam();
  const ref::KscoreDims dm{p.d, p.kv_heads, p.group, p.keys};
  const auto k = make_k(dm, 7 + p.d);
  const auto q = random_floats(std::size_t(dm.q_heads()) * p.d, 8 + p.d);
  Buffer kb = upload(dev(), k), qb = upload(dev(), q);
  const std::uint64_t n = std::uint64_t(dm.q_heads()) * p.keys;
  Buffer out = Buffer::create(dev(), n * 4 + 64);
  out.fill(kPoison);
  Stream s = Stream::create(dev());
  kernels::kscore_f16(s, {p.d, p.kv_heads, p.group, p.keys}, kb, qb, out);
  s.submit_and_wait();
  EXPECT_TRUE(close(ref::kscore_f16(k, q, dm), download<float>(out, n), 1e-3, 1e-4));
  std::uint32_t tail[16];
  out.download(tail, sizeof tail, n * 4);
  for (auto t : tail) EXPECT_EQ(t, kPoison) << "wrote past the scores";
}

INSTANTIATE_TEST_SUITE_P(Shapes, KscoreF16,
                         ::testing::Values(F16Params{64, 1, 1, 13}, F16Params{100, 2, 4, 127},
                                           F16Params{128, 1, 4, 1}, F16Params{128, 2, 4, 4097},
                                           F16Params{129, 2, 4, 4097}),
                         [](const auto& tp) {
                           const auto& p = tp.param;
                           return "d" + std::to_string(p.d) + "_n" + std::to_string(p.keys) + "_kv" +
                                  std::to_string(p.kv_heads) + "_g" + std::to_string(p.group);
                         });

// ---- key chunking -----------------------------------------------------------

// Binding limits low enough that every path splits its keys into chunks with
// unaligned starts; 40000 bytes also halves the query heads per pass.
class KscoreChunked : public VulkanTest, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(KscoreChunked, MatchesUnchunked) {
  const Params p{128, 2, 4, 4097, 8, 4, true};
  const Data x = make_data(p, 99);
  DeviceData g(dev(), x);
  const KscoreShape& sh = g.shape;
  const std::uint64_t n = std::uint64_t(sh.q_heads()) * sh.keys;
  kernels::KscoreTuning tune;
  tune.max_binding_bytes = GetParam();
  Buffer planes = Buffer::create(dev(), kernels::kscore_planes_bytes(sh, p.b));
  Buffer qconst = Buffer::create(dev(), kernels::kscore_qconst_bytes(sh));
  Buffer sums = Buffer::create(dev(), n * 4), pop = Buffer::create(dev(), n * 4), flt = Buffer::create(dev(), n * 4),
         f16 = Buffer::create(dev(), n * 4);
  const auto k = make_k(x.dims, 5);
  Buffer kb = upload(dev(), k);
  for (Buffer* b : {&sums, &pop, &flt, &f16}) b->fill(kPoison);

  Stream s = Stream::create(dev());
  kernels::kscore_quantize_query(s, sh, p.b, g.q, planes, qconst);
  const kernels::KscoreQuantized qq{p.b, &planes, &qconst};
  kernels::kscore_popcount_sums(s, sh, g.bits, qq, sums, tune);
  const std::uint32_t before = s.recorded_dispatches();
  kernels::kscore_popcount(s, sh, g.keys(), g.query(true), qq, pop, tune);
  EXPECT_GE(s.recorded_dispatches() - before, 5u) << "expected key chunks";
  kernels::kscore_float(s, sh, g.keys(), g.query(true), flt, tune);
  kernels::kscore_f16(s, sh, kb, g.q, f16, tune);
  s.submit_and_wait();

  const ref::KscoreQuantized dq = download_quantized(planes, qconst, sh, p.b);
  EXPECT_TRUE(exact<std::int32_t>(ref::kscore_popcount_sums(x.bits, x.dims, dq), download<std::int32_t>(sums, n)));
  EXPECT_TRUE(close(ref::kscore_popcount(x.inputs(), x.dims, dq), download<float>(pop, n), 2e-3, 1e-4));
  EXPECT_TRUE(close(ref::kscore_float(x.inputs(), x.dims), download<float>(flt, n), 2e-3, 1e-4));
  EXPECT_TRUE(close(ref::kscore_f16(k, x.q, x.dims), download<float>(f16, n), 1e-3, 1e-4));
}

INSTANTIATE_TEST_SUITE_P(Limits, KscoreChunked, ::testing::Values(4096, 40000),
                         [](const auto& tp) { return "limit" + std::to_string(tp.param); });

// ---- query rows, layouts, row blocks, keys per invocation --------------------

// Several query rows (rows query0.. of a multi-row query), key-major or the
// kcodec cache's position-major keys, causal or not, with and without key
// chunking, and the launch shapes the plan picks from: row blocks of Y rows
// (a last block of fewer rows), K keys per invocation (a last invocation of
// fewer keys), vec4 stores (N % 4 == 0 and K = 4) with groups of four cut by
// the causal edge or the chunk end. Every path (popcount sums exact, popcount,
// float, fp16) matches the reference row by row; scores past a row's causal
// end keep their poison.
struct RowsParams {
  std::uint64_t keys;
  std::uint32_t rows, query0;
  std::uint64_t causal;  // causal_keys; 0: not causal
  std::uint64_t limit;   // tuning.max_binding_bytes
  std::uint32_t max_rows, keys_per_invocation;
  bool position_major;
  bool mixed = false;  // per-head residuals (int4, int8: stride 7, records at odd halves)
};

std::string rows_name(const RowsParams& p) {
  return "n" + std::to_string(p.keys) + "_rows" + std::to_string(p.rows) + "_from" + std::to_string(p.query0) +
         (p.causal ? "_causal" + std::to_string(p.causal) : "") + "_limit" + std::to_string(p.limit) + "_y" +
         std::to_string(p.max_rows) + "_k" + std::to_string(p.keys_per_invocation) +
         (p.position_major ? "_posmajor" : "_keymajor") + (p.mixed ? "_mixed" : "");
}

void PrintTo(const RowsParams& p, std::ostream* os) { *os << rows_name(p); }

class KscoreRows : public VulkanTest, public ::testing::WithParamInterface<RowsParams> {};

TEST_P(KscoreRows, EveryPathMatchesReference) {
  const RowsParams rp = GetParam();
  const Params p = rp.mixed ? Params{96, 2, 4, rp.keys, 4, 8, true, {{8, 4}, {6, 8}}} : Params{96, 2, 4, rp.keys, 4, 8, true};
  const Data x = make_data(p, 77);
  const std::uint32_t rows = rp.rows, query0 = rp.query0, all_rows = query0 + rows, kv = p.kv_heads, w = x.dims.words();
  const std::uint64_t n = p.keys, per_row = std::uint64_t(x.dims.q_heads()) * n, dh = (p.d + 1) / 2;
  const std::uint64_t causal = rp.causal ? rp.causal : n;  // row y scores keys < causal + y
  const auto k = make_k(x.dims, 76);                       // fp16 keys, key-major
  // Key-major -> the layout under test.
  std::vector<std::uint32_t> bits(x.bits.size());
  const KResidualView resid =
      rp.position_major ? KResidualView::position_major(x.layout, p.rank) : x.dims.residual;
  std::vector<half_bits> alpha(x.alpha.size()), c((resid.halves(n) + 1) / 2 * 2 + 2), kl(k.size());
  for (std::uint64_t t = 0; t < n; ++t)
    for (std::uint32_t h = 0; h < kv; ++h) {
      const std::uint64_t km = h * n + t, to = rp.position_major ? t * kv + h : km;
      for (std::uint32_t i = 0; i < w; ++i) bits[to * w + i] = x.bits[km * w + i];
      for (std::uint64_t i = 0; i < dh * 2; ++i) kl[to * dh * 2 + i] = k[km * dh * 2 + i];
      alpha[to] = x.alpha[km];
      const KResidualPlace &from = x.dims.residual.heads[h], &dst = resid.heads[h];
      for (std::uint32_t j = 0; j < KResidualLayout::record_halves(from.code); ++j)
        c[dst.offset + t * dst.stride + j] = x.c[from.offset + t * from.stride + j];
    }
  const std::vector<float> q = random_floats(std::size_t(all_rows) * x.dims.q_heads() * p.d, 78, -1.f, 1.2f);
  const std::vector<float> qmu = random_floats(std::size_t(all_rows) * x.dims.q_heads(), 79, -2.f, 2.f);
  Buffer bb = upload(dev(), bits), ab = upload(dev(), alpha), cb = upload(dev(), c), ub = upload(dev(), x.basis),
         qb = upload(dev(), q), mb = upload(dev(), qmu), kb = upload(dev(), kl);
  KscoreShape sh{p.d, p.kv_heads, p.group, n, resid};
  if (rp.position_major) sh.layout = kernels::KscoreLayout::position_major;
  sh.queries = rows;
  sh.query0 = query0;
  sh.causal = rp.causal != 0;
  sh.causal_keys = rp.causal;
  KscoreShape all = sh;  // quantize every row
  all.queries = all_rows;
  all.query0 = 0;
  Buffer uq = Buffer::create(dev(), std::size_t(all_rows) * x.dims.q_heads() * p.rank * 4);
  Buffer planes = Buffer::create(dev(), kernels::kscore_planes_bytes(all, p.b));
  Buffer qconst = Buffer::create(dev(), kernels::kscore_qconst_bytes(all));
  Buffer out[4];  // sums, popcount, float, fp16
  for (Buffer& o : out) {
    o = Buffer::create(dev(), rows * per_row * 4 + 64);
    o.fill(kPoison);
  }
  kernels::KscoreTuning tune;
  tune.max_binding_bytes = rp.limit;
  tune.max_rows_per_pass = rp.max_rows;
  tune.keys_per_invocation = rp.keys_per_invocation;
  Stream s = Stream::create(dev());
  kernels::kscore_quantize_query(s, all, p.b, qb, planes, qconst);
  const kernels::KscoreKeys keys{&bb, &ab, &cb};
  const kernels::KscoreQuery query{&qb, &mb, &ub, &uq};
  const kernels::KscoreQuantized qq{p.b, &planes, &qconst};
  const std::uint32_t before = s.recorded_dispatches();
  kernels::kscore_popcount(s, sh, keys, query, qq, out[1], tune);
  if (rp.limit) {
    EXPECT_GE(s.recorded_dispatches() - before, 2u * kv + 1) << "expected key chunks";
  }
  kernels::kscore_popcount_sums(s, sh, bb, qq, out[0], tune);
  kernels::kscore_float(s, sh, keys, query, out[2], tune);
  kernels::kscore_f16(s, sh, kb, qb, out[3], tune);
  s.submit_and_wait();

  const ref::KscoreQuantized dq = download_quantized(planes, qconst, all, p.b);
  const auto got_sums = download<std::int32_t>(out[0], rows * per_row);
  std::vector<float> got[4];
  for (int i = 1; i < 4; ++i) got[i] = download<float>(out[i], rows * per_row);
  const std::uint32_t qh = x.dims.q_heads(), pw = p.b * w;
  const char* path[4] = {"popcount sums", "popcount", "float", "fp16"};
  for (std::uint32_t y = 0; y < rows; ++y) {
    const std::uint32_t row = query0 + y;
    Data xr = x;
    xr.q.assign(q.begin() + std::size_t(row) * qh * p.d, q.begin() + std::size_t(row + 1) * qh * p.d);
    xr.qmu.assign(qmu.begin() + std::size_t(row) * qh, qmu.begin() + std::size_t(row + 1) * qh);
    ref::KscoreQuantized rq;
    rq.bits = p.b;
    rq.planes.assign(dq.planes.begin() + std::size_t(row) * qh * pw, dq.planes.begin() + std::size_t(row + 1) * qh * pw);
    rq.consts.assign(dq.consts.begin() + std::size_t(row) * qh, dq.consts.begin() + std::size_t(row + 1) * qh);
    const auto want_sums = ref::kscore_popcount_sums(x.bits, x.dims, rq);
    const std::vector<float> want[4] = {{},
                                        ref::kscore_popcount(xr.inputs(), x.dims, rq),
                                        ref::kscore_float(xr.inputs(), x.dims),
                                        ref::kscore_f16(k, xr.q, x.dims)};
    std::vector<std::int32_t> ws, gs;
    std::vector<float> wv[4], gv[4];
    std::size_t untouched_bad = 0;
    for (std::uint32_t h = 0; h < qh; ++h)
      for (std::uint64_t t = 0; t < n; ++t) {
        const std::uint64_t i = (std::uint64_t(y) * qh + h) * n + t;
        if (t >= causal + y) {
          std::uint32_t bits_at[4];
          std::memcpy(&bits_at[0], &got_sums[i], 4);
          for (int o = 1; o < 4; ++o) std::memcpy(&bits_at[o], &got[o][i], 4);
          for (std::uint32_t b : bits_at) untouched_bad += b != kPoison;
          continue;
        }
        ws.push_back(want_sums[h * n + t]);
        gs.push_back(got_sums[i]);
        for (int o = 1; o < 4; ++o) {
          wv[o].push_back(want[o][h * n + t]);
          gv[o].push_back(got[o][i]);
        }
      }
    EXPECT_EQ(untouched_bad, 0u) << "row " << y << " wrote past its causal end";
    EXPECT_TRUE(exact<std::int32_t>(ws, gs)) << path[0] << ", row " << y;
    for (int o = 1; o < 4; ++o)
      EXPECT_TRUE(close(wv[o], gv[o], o == 3 ? 1e-3 : 2e-3, 1e-4)) << path[o] << ", row " << y;
  }
  for (const Buffer& o : out) {  // nothing written past the scores
    std::uint32_t tail[16];
    o.download(tail, sizeof tail, rows * per_row * 4);
    for (auto t : tail) EXPECT_EQ(t, kPoison) << "wrote past the scores";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KscoreRows,
    ::testing::Values(
        // The paths' own row blocks (fp16: 4 + 4 + 1 rows) and keys per invocation
        // (float, popcount: 4, a short last invocation); N % 4 != 0, so no vec4 stores.
        RowsParams{301, 9, 3, 290, 0, 0, 0, true},
        // 33000 bytes: a 4-row block's score window leaves room for 118 of the 301
        // keys per pass (popcount, fp16).
        RowsParams{301, 9, 3, 290, 33000, 0, 0, true},
        // K = 4 with vec4 stores, groups of four cut by each row's causal end.
        RowsParams{512, 7, 2, 498, 0, 1, 4, false},
        // K = 4 with vec4 stores and key chunks of whole vec4s (the limit forces
        // Y = 1 and chunks of 456 keys), not causal.
        RowsParams{512, 5, 0, 0, 8000, 2, 4, true},
        // K = 3 (no vec4 stores): a last invocation of fewer keys; Y = 1.
        RowsParams{300, 4, 1, 297, 0, 1, 3, false},
        // One row, K = 4, vec4 stores, N not reached by the causal edge.
        RowsParams{64, 1, 0, 61, 0, 0, 4, false},
        // Per-head residuals (stride 7) in key chunks whose windows start at odd record halves.
        RowsParams{301, 9, 3, 290, 33000, 0, 0, true, true}),
    [](const auto& tp) { return rows_name(tp.param); });

// fp16 keys past maxStorageBufferRange: the natural limit splits the keys.
TEST_F(VulkanTest, KscoreF16PastMaxStorageBufferRange) {
  const std::uint64_t range = dev().info().max_storage_buffer_range;
  const std::uint32_t d = 128;
  const std::uint64_t keys = range / (d * 2) + 4099;
  if (keys * d * 2 > (std::uint64_t(1) << 30)) GTEST_SKIP() << "maxStorageBufferRange too large to exceed in a test";
  const ref::KscoreDims dm{d, 1, 2, keys};
  std::vector<half_bits> k(keys * d);
  std::uint32_t state = 12345;
  for (auto& h : k) {  // cheap deterministic values in [-2, 2)
    state = state * 1664525u + 1013904223u;
    h = to_half(float(int(state >> 22) - 512) / 256.f);
  }
  const auto q = random_floats(std::size_t(dm.q_heads()) * d, 3);
  Buffer kb = upload(dev(), k), qb = upload(dev(), q);
  const std::uint64_t n = std::uint64_t(dm.q_heads()) * keys;
  Buffer out = Buffer::create(dev(), n * 4);
  Stream s = Stream::create(dev());
  kernels::kscore_f16(s, {d, 1, 2, keys}, kb, qb, out);
  EXPECT_GE(s.recorded_dispatches(), 2u) << "expected the keys to be split across bindings";
  s.submit_and_wait();
  EXPECT_TRUE(close(ref::kscore_f16(k, q, dm), download<float>(out, n), 1e-3, 1e-4));
}

// ---- argument rejection ---------------------------------------------------------

TEST_F(VulkanTest, KscoreRejectsBadArguments) {
  const Params p{64, 2, 4, 13, 8, 4, true};
  const Data x = make_data(p, 5);
  DeviceData g(dev(), x);
  const KscoreShape sh = g.shape;
  Buffer planes = Buffer::create(dev(), kernels::kscore_planes_bytes(sh, 8));
  Buffer qconst = Buffer::create(dev(), kernels::kscore_qconst_bytes(sh));
  Buffer scores = Buffer::create(dev(), std::uint64_t(sh.q_heads()) * sh.keys * 4);
  Buffer small = Buffer::create(dev(), 16);
  const kernels::KscoreQuantized qq{8, &planes, &qconst};
  Stream s = Stream::create(dev());

  auto shape = [&](auto edit) {
    KscoreShape t = sh;
    edit(t);
    return t;
  };
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.d = 0; }), g.keys(), g.query(true), scores), Error);
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.kv_heads = 0; }), g.keys(), g.query(true), scores),
               Error);
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.group = 0; }), g.keys(), g.query(true), scores), Error);
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.keys = std::uint64_t(1) << 31; }), g.keys(),
                                     g.query(true), scores),
               Error);
  EXPECT_THROW(kernels::kscore_float(s, sh, g.keys(), g.query(true), small), Error);  // scores too small
  EXPECT_THROW(kernels::kscore_float(s, sh, {&g.bits, nullptr, &g.c}, g.query(true), scores), Error);
  EXPECT_THROW(kernels::kscore_float(s, sh, {&g.bits, &g.alpha, nullptr}, g.query(true), scores), Error);  // rank, no c
  EXPECT_THROW(kernels::kscore_float(s, sh, g.keys(), {&g.q, nullptr, &g.basis, nullptr}, scores), Error);  // no uq
  EXPECT_THROW(kernels::kscore_float(s, sh, {&g.bits, &g.alpha, &g.c}, {&g.q, nullptr, &g.basis, &g.uq}, g.uq),
               Error);  // output aliases an input
  EXPECT_THROW(kernels::kscore_float(s, sh, {&small, &g.alpha, &g.c}, g.query(true), scores), Error);
  EXPECT_THROW(kernels::kscore_float(s, sh, g.keys(), g.query(true), scores, {.local = 0}), Error);
  EXPECT_THROW(kernels::kscore_float(s, sh, g.keys(), g.query(true), scores, {.max_heads_per_pass = 0}), Error);
  EXPECT_THROW(kernels::kscore_float(s, sh, g.keys(), g.query(true), scores, {.keys_per_invocation = 9}), Error);
  EXPECT_THROW(kernels::kscore_float(s, sh, g.keys(), g.query(true), scores, {.max_binding_bytes = 8}), Error);
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.residual.heads[1].code.bits = 5; }), g.keys(),
                                     g.query(true), scores),
               Error);  // bits 5
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.residual.heads[0].code = {6, 4}; }), g.keys(),
                                     g.query(true), scores),
               Error);  // 4 bits need a rank divisible by 4
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.residual.basis_cols = 2; }), g.keys(), g.query(true),
                                     scores),
               Error);  // rank > basis columns
  EXPECT_THROW(kernels::kscore_float(s, shape([](auto& t) { t.residual.heads.pop_back(); }), g.keys(), g.query(true),
                                     scores),
               Error);  // a residual for fewer KV heads
  EXPECT_THROW(kernels::kscore_quantize_query(s, sh, 3, g.q, planes, qconst), Error);
  EXPECT_THROW(kernels::kscore_quantize_query(s, sh, 8, g.q, small, qconst), Error);
  EXPECT_THROW(kernels::kscore_quantize_query(s, sh, 8, g.q, planes, planes), Error);
  EXPECT_THROW(kernels::kscore_popcount(s, sh, g.keys(), g.query(true), {2, &planes, &qconst}, scores), Error);
  EXPECT_THROW(kernels::kscore_popcount(s, sh, g.keys(), g.query(true), {8, &planes, nullptr}, scores), Error);
  EXPECT_THROW(kernels::kscore_popcount(s, sh, g.keys(), g.query(true), qq, planes), Error);
  EXPECT_THROW(kernels::kscore_popcount_sums(s, sh, g.bits, qq, small), Error);
  EXPECT_THROW(kernels::kscore_f16(s, sh, small, g.q, scores), Error);
  EXPECT_THROW(kernels::kscore_f16(s, sh, g.bits, g.q, scores), Error);  // bits are too small to be fp16 keys
  // The transform code's scorer: sign-coded heads, mixed heads, segments off the halves, no records, no uq.
  EXPECT_THROW(kernels::kscore_tc(s, sh, &g.c, g.query(true), scores), Error);  // sign-coded residual heads
  auto tc_shape = [&](KResidual h0, KResidual h1) {
    return shape([&](auto& t) {
      t.residual.heads[0].code = h0;
      t.residual.heads[1].code = h1;
    });
  };
  EXPECT_THROW(kernels::kscore_tc(s, tc_shape(tc_residual(4, 0, 0, 0), {4, 4}), &g.c, g.query(true), scores), Error);
  EXPECT_THROW(kernels::kscore_tc(s, tc_shape(tc_residual(2, 0, 0, 0), tc_residual(4, 0, 0, 0)), &g.c, g.query(true), scores),
               Error);  // 4-bit codes come 4 a half
  try {  // 3-bit codes come 16 in 3 halves
    kernels::kscore_tc(s, tc_shape(tc_residual(4, 0, 0, 0), tc_residual(0, 8, 0, 0)), &g.c, g.query(true), scores);
    ADD_FAILURE() << "accepted tc0/8/0/0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tc0/8/0/0 does not fill whole halves"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernels::kscore_tc(s, tc_shape(tc_residual(4, 0, 0, 0), tc_residual(0, 0, 8, 0)), nullptr, g.query(true), scores),
               Error);  // records needed
  EXPECT_THROW(kernels::kscore_tc(s, tc_shape(tc_residual(4, 0, 0, 0), tc_residual(0, 0, 8, 0)), &g.c,
                                  {&g.q, nullptr, &g.basis, nullptr}, scores),
               Error);  // no uq
  EXPECT_THROW(kernels::kscore_tc(s, tc_shape(tc_residual(4, 0, 0, 0), tc_residual(0, 0, 8, 0)), &g.c, g.query(true), small),
               Error);  // scores too small
  EXPECT_EQ(s.recorded_dispatches(), 0u) << "a rejected call recorded work";
}

}  // namespace
}  // namespace vkq::test
