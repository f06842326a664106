// Bench cases of the learned-rotation GEMM Y = X Rᵀ: the K-cache encoder shape
// (d = 128, a million keys) and the MLP-input shape (d = 4096, 4 k rows;
// quick: 1 k rows with fp16 R, as 4 k rows take ~5 s a call on lavapipe), fp32 and
// fp16 R, on the device's default variant; full runs add the other variant at
// smaller sizes. Roof: copy (X and R read once, Y written); ops = 2 rows d².
#include <cmath>
#include <memory>
#include <string>

#include "bench/bench.hpp"
#include "vkquant/kernels/rotate.hpp"
#include "vkquant/reference/rotate.hpp"

namespace vkq::bench {
namespace {

using kernels::RotateOptions;
using kernels::RotateVariant;

// Deterministic values in [-scale, scale) without a slow generator (X can be 512 MiB).
std::vector<float> hashed_floats(std::uint64_t n, std::uint64_t seed, float scale) {
  std::vector<float> v(n);
  std::uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& f : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    f = (float(std::uint32_t(s >> 40)) * (1.f / 16777216.f) * 2.f - 1.f) * scale;
  }
  return v;
}

std::string count_name(std::uint64_t n) {
  if (n % (1u << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n % 1024 == 0) return std::to_string(n >> 10) + "k";
  return std::to_string(n);
}

Case make_case(Device& dev, std::uint32_t d, std::uint64_t rows, bool fp16, RotateVariant variant) {
  struct State {
    Buffer x, r, y;
    std::vector<float> r_host;  // (d, d) what the kernel multiplies by
  };
  auto st = std::make_shared<State>();
  st->r_host = hashed_floats(std::uint64_t(d) * d, 1, 1.f / std::sqrt(float(d)));
  if (fp16) {
    const auto words = kernels::pack_rotation_fp16(st->r_host, d);
    st->r_host = kernels::unpack_rotation_fp16(words, d);
    st->r = Buffer::create(dev, words.size() * 4);
    st->r.upload(words.data(), words.size() * 4);
  } else {
    st->r = Buffer::create(dev, st->r_host.size() * 4);
    st->r.upload(st->r_host.data(), st->r_host.size() * 4);
  }
  const std::uint64_t xbytes = rows * d * 4;
  st->x = Buffer::create(dev, xbytes);
  st->y = Buffer::create(dev, xbytes);
  {  // upload X in slices to bound host memory
    const std::uint64_t slice = std::max<std::uint64_t>(1, (64u << 20) / (d * 4));
    for (std::uint64_t first = 0; first < rows; first += slice) {
      const std::uint64_t n = std::min(slice, rows - first);
      const auto part = hashed_floats(n * d, 2 + first, 1.f);
      st->x.upload(part.data(), part.size() * 4, first * d * 4);
    }
  }
  const RotateOptions opt{.fp16_r = fp16, .variant = variant};
  const char* vname = opt.variant == RotateVariant::registers ? "registers" : "tiled";

  Case c;
  c.name = "rotate/d" + std::to_string(d) + "/rows" + count_name(rows) + (fp16 ? "/fp16" : "/fp32") + "/" + vname;
  c.family = "rotate";
  c.roof = Roof::copy;
  c.bytes_read = double(xbytes) + double(kernels::rotation_bytes(d, fp16));
  c.bytes_written = double(xbytes);
  c.ops = 2.0 * double(rows) * double(d) * double(d);
  c.record = [st, rows, d, opt](Stream& s) { kernels::rotate(s, st->x, st->r, st->y, rows, d, opt); };
  c.verify = [st, rows, d, opt, &dev]() -> std::string {
    st->y.fill(0x7fc00badu);
    Stream s = Stream::create(dev);
    kernels::rotate(s, st->x, st->r, st->y, rows, d, opt);
    s.submit_and_wait();
    // 64 rows spread over the batch, the last one included.
    double num = 0, den = 0;
    std::vector<float> x(d), y(d), ref(d);
    for (int k = 0; k < 64; ++k) {
      const std::uint64_t t = k == 63 ? rows - 1 : rows * std::uint64_t(k) / 64;
      st->x.download(x.data(), d * 4, t * d * 4);
      st->y.download(y.data(), d * 4, t * d * 4);
      ref::rotate(x, st->r_host, ref, d);
      for (std::uint32_t i = 0; i < d; ++i) {
        num += (double(y[i]) - ref[i]) * (double(y[i]) - ref[i]);
        den += double(ref[i]) * ref[i];
      }
    }
    const double e = num / den;
    if (!(e <= 1e-10)) return "NMSE " + std::to_string(e) + " over 64 sampled rows (limit 1e-10)";
    return std::string();
  };
  return c;
}

std::vector<Case> rotate_cases(Device& dev, const Options& o) {
  const RotateVariant def = kernels::rotate_default_variant(dev);
  const RotateVariant other = def == RotateVariant::registers ? RotateVariant::tiled : RotateVariant::registers;
  std::vector<Case> cases;
  for (bool fp16 : {false, true}) {
    // The standard sizes, quick too, except fp16 R at d = 4096 (1 k rows):
    // a 4 k-row call takes ~5 s on lavapipe and --quick must stay in 5 min.
    cases.push_back(make_case(dev, 128, 1u << 20, fp16, def));
    cases.push_back(make_case(dev, 4096, o.quick && fp16 ? 1024 : 4096, fp16, def));
    if (!o.quick) {  // the other variant, at sizes it finishes on any device (tiled on lavapipe: ~1 GOP/s)
      cases.push_back(make_case(dev, 128, 64u << 10, fp16, other));
      cases.push_back(make_case(dev, 4096, 256, fp16, other));
    }
  }
  return cases;
}

}  // namespace

VKQ_BENCH_CASES(rotate, rotate_cases);

}  // namespace vkq::bench
