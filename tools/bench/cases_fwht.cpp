// fwht bench cases: n = 128 and 4096 over 64 MiB of rows (quick too), in
// place, plain and SRHT, the device's automatic variant and every forced one.
// Yardstick: copy of the same bytes (read once, written once).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "bench.hpp"
#include "vkquant/kernels/fwht.hpp"
#include "vkquant/reference/fwht.hpp"

namespace vkq::bench {
namespace {

std::vector<Case> fwht_cases(Device& d, const Options& /*quick: same sizes*/) {
  const std::uint64_t bytes = 64ull << 20;
  std::vector<Case> out;
  for (std::uint32_t n : {128u, 4096u}) {
    const std::uint64_t rows = bytes / (4ull * n);
    auto data = std::make_shared<Buffer>(Buffer::create(d, bytes));
    data->fill(0x3f800000u);  // 1.0f; the transform of ones stays finite under repetition (scale 1/sqrt(n))
    const double log2n = std::log2(double(n));
    struct Config {
      std::string suffix;
      kernels::FwhtOptions opts;
    };
    std::vector<Config> configs = {{"", {}}, {"/srht", {.srht = true, .seed = 1}}};
    for (auto v : kernels::fwht_variants())
      configs.push_back({std::string("/") + kernels::fwht_variant_name(v), {.variant = v}});
    for (const Config& c : configs) {
      const kernels::FwhtOptions opts = c.opts;
      Case k;
      k.name = "fwht/n" + std::to_string(n) + c.suffix;
      k.family = "fwht";
      k.roof = Roof::copy;
      k.bytes_read = double(bytes);
      k.bytes_written = double(bytes);
      k.ops = double(rows) * n * log2n;  // one add or subtract per element per butterfly stage
      k.record = [=](Stream& s) { kernels::fwht(s, *data, rows, n, opts); };
      // Runs once on fresh data and compares every 97th row (and the last) with the reference.
      k.verify = [=, &d]() -> std::string {
        const std::uint64_t check_rows = std::min<std::uint64_t>(rows, 64 * 97);
        std::vector<float> x(check_rows * n);
        for (std::uint64_t i = 0; i < x.size(); ++i) x[i] = float((i * 2654435761u) % 2001) / 1000.f - 1.f;
        Buffer tmp = Buffer::create(d, x.size() * 4);
        tmp.upload(x.data(), x.size() * 4);
        Stream s = Stream::create(d);
        kernels::fwht(s, tmp, check_rows, n, opts);
        s.submit_and_wait();
        std::vector<float> got(x.size()), ref(n);
        tmp.download(got.data(), got.size() * 4);
        std::vector<std::uint64_t> picked;
        for (std::uint64_t r = 0; r < check_rows; r += 97) picked.push_back(r);
        picked.push_back(check_rows - 1);
        double max_err = 0;
        for (std::uint64_t r : picked) {
          ref::fwht(x.data() + r * n, ref.data(), 1, n, opts.srht, opts.seed, opts.inverse);
          for (std::uint32_t i = 0; i < n; ++i)
            max_err = std::max(max_err, std::fabs(double(got[r * n + i]) - double(ref[i])));
        }
        if (!(max_err <= 1e-4)) return "max |error| " + std::to_string(max_err) + " vs the reference";
        return "";
      };
      out.push_back(std::move(k));
    }
  }
  return out;
}

}  // namespace

VKQ_BENCH_CASES(fwht, fwht_cases);

}  // namespace vkq::bench
