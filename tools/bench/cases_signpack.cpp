// signpack bench cases: d = 128 (a K-cache row) and 4096 (an MLP weight row)
// over 64 MiB of input (16 MiB quick): fp32 with the automatic variant and
// each forced one, centering with the mean written, and fp16 input. Yardstick: read
// of the input bytes (bits + alpha are 1/32 of it, counted as written).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "bench.hpp"
#include "vkquant/half.hpp"
#include "vkquant/kernels/signpack.hpp"
#include "vkquant/reference/signpack.hpp"

namespace vkq::bench {
namespace {

using kernels::SignpackOptions;
using kernels::SignpackVariant;

// Deterministic input value i in [-1, 1), plus a per-row offset so centering matters.
float value(std::uint64_t i, std::uint64_t row) {
  const std::uint32_t h = std::uint32_t(i * 2654435761u) ^ std::uint32_t(i >> 7);
  return float(h >> 8) / float(1u << 23) - 1.f + 0.125f * float(int(row % 5) - 2);
}

struct Outputs {
  Buffer bits, alpha, mean;
};

Case make_case(Device& dev, const std::string& name, std::shared_ptr<Buffer> input, std::uint64_t rows,
               std::uint32_t d, SignpackOptions opts) {
  auto out = std::make_shared<Outputs>();
  out->bits = Buffer::create(dev, kernels::signpack_bits_bytes(rows, d));
  out->alpha = Buffer::create(dev, kernels::signpack_alpha_bytes(rows, opts.alpha_f16));
  if (opts.center) out->mean = Buffer::create(dev, rows * 4);
  Case k;
  k.name = name;
  k.family = "signpack";
  k.roof = Roof::read;
  k.bytes_read = double(rows * kernels::signpack_row_bytes(d, opts.input_f16));
  k.bytes_written = double(kernels::signpack_bits_bytes(rows, d) +
                           kernels::signpack_alpha_bytes(rows, opts.alpha_f16) + (opts.center ? rows * 4 : 0));
  k.record = [=](Stream& s) {
    kernels::signpack(s, *input, out->bits, out->alpha, opts.center ? &out->mean : nullptr, rows, d, opts);
  };
  // Runs once over the whole input and compares every 61st row (and the last)
  // with the reference: bits exact, alpha within fp32 summation error.
  k.verify = [=, &dev]() -> std::string {
    Stream s = Stream::create(dev);
    kernels::signpack(s, *input, out->bits, out->alpha, opts.center ? &out->mean : nullptr, rows, d, opts);
    s.submit_and_wait();
    const std::uint32_t words = kernels::signpack_words(d);
    std::vector<std::uint32_t> bits(rows * words), ref_bits(words);
    std::vector<float> alpha(rows), mean(opts.center ? rows : 0), x(d);
    out->bits.download(bits.data(), bits.size() * 4);
    out->alpha.download(alpha.data(), rows * 4);
    if (opts.center) out->mean.download(mean.data(), rows * 4);
    std::vector<std::uint64_t> picked;
    for (std::uint64_t r = 0; r < rows; r += 61) picked.push_back(r);
    picked.push_back(rows - 1);
    for (std::uint64_t r : picked) {
      for (std::uint32_t c = 0; c < d; ++c) {
        x[c] = value(r * d + c, r);
        if (opts.input_f16) x[c] = from_half(to_half(x[c]));
      }
      float ref_alpha = 0, ref_mean = 0;
      if (opts.center) {
        ref::row_mean(x, 1, d, {&ref_mean, 1});
        if (!(std::fabs(ref_mean - mean[r]) <= 1e-5f)) return "row " + std::to_string(r) + ": mean differs";
      }
      ref::signpack(x, 1, d, opts.center ? std::span<const float>(&mean[r], 1) : std::span<const float>(), ref_bits,
                    {&ref_alpha, 1});
      if (!std::equal(ref_bits.begin(), ref_bits.end(), bits.begin() + r * words))
        return "row " + std::to_string(r) + ": bits differ from the reference";
      if (!(std::fabs(ref_alpha - alpha[r]) <= 1e-4f * ref_alpha + 1e-7f))
        return "row " + std::to_string(r) + ": alpha " + std::to_string(alpha[r]) + " vs " + std::to_string(ref_alpha);
    }
    return "";
  };
  return k;
}

std::vector<Case> signpack_cases(Device& dev, const Options& o) {
  const std::uint64_t bytes = (o.quick ? 16ull : 64ull) << 20;
  std::vector<SignpackVariant> variants = {SignpackVariant::automatic, SignpackVariant::invocation};
  if (kernels::signpack_ballot_supported(dev)) variants.push_back(SignpackVariant::ballot);
  std::vector<Case> out;
  for (std::uint32_t d : {128u, 4096u}) {
    for (bool f16 : {false, true}) {
      const std::uint64_t rows = bytes / kernels::signpack_row_bytes(d, f16);
      std::vector<float> host(rows * d);
      for (std::uint64_t i = 0; i < host.size(); ++i) host[i] = value(i, i / d);
      auto input = std::make_shared<Buffer>(Buffer::create(dev, bytes));
      if (f16) {
        const auto words = ref::pack_half_rows(host, rows, d);
        input->upload(words.data(), words.size() * 4);
      } else {
        input->upload(host.data(), host.size() * 4);
      }
      const std::string base = "signpack/d" + std::to_string(d) + (f16 ? "/f16in" : "");
      if (f16) {
        out.push_back(make_case(dev, base + "/auto", input, rows, d, {.input_f16 = true}));
        continue;
      }
      for (SignpackVariant v : variants)
        out.push_back(make_case(dev, base + "/" + kernels::signpack_variant_name(v), input, rows, d, {.variant = v}));
      if (d == 4096) out.push_back(make_case(dev, base + "/center/auto", input, rows, d, {.center = true}));
    }
  }
  return out;
}

}  // namespace

VKQ_BENCH_CASES(signpack, signpack_cases);

}  // namespace vkq::bench
