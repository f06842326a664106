#include "vkquant/reference/linear.hpp"

#include <cstddef>
#include <string>

#include "vkquant/error.hpp"

namespace vkq::ref {

namespace {
// out_row (out) = w (out, in) · x_row (in), or += with `accumulate`.
void matvec(const float* w, const float* x_row, float* out_row, std::uint32_t out, std::uint32_t in,
            bool accumulate) {
  for (std::uint32_t i = 0; i < out; ++i) {
    double sum = accumulate ? out_row[i] : 0.0;
    const float* row = w + std::size_t(i) * in;
    for (std::uint32_t j = 0; j < in; ++j) sum += double(row[j]) * x_row[j];
    out_row[i] = float(sum);
  }
}
}  // namespace

void linear(std::span<const float> w, std::span<const float> x, std::span<float> y, std::uint32_t out,
            std::uint32_t in, std::uint32_t batch, bool accumulate) {
  if (w.size() < std::size_t(out) * in || x.size() < std::size_t(batch) * in || y.size() < std::size_t(batch) * out)
    throw Error("ref::linear: span sizes do not match out, in, batch");
  for (std::uint32_t b = 0; b < batch; ++b)
    matvec(w.data(), &x[std::size_t(b) * in], &y[std::size_t(b) * out], out, in, accumulate);
}

void linear_id(std::span<const float> w, std::span<const std::uint32_t> ids, std::span<const float> x,
               bool x_per_slot, std::span<float> y, std::uint32_t experts, std::uint32_t out, std::uint32_t in,
               std::uint32_t n, std::uint32_t k) {
  const std::size_t slots = std::size_t(n) * k;
  if (w.size() < std::size_t(experts) * out * in || ids.size() < slots ||
      x.size() < (x_per_slot ? slots : n) * std::size_t(in) || y.size() < slots * out)
    throw Error("ref::linear_id: span sizes do not match experts, out, in, n, k");
  for (std::size_t s = 0; s < slots; ++s) {
    float* y_row = &y[s * out];  // (out)
    const std::uint32_t e = ids[s];
    if (e >= experts) {
      for (std::uint32_t i = 0; i < out; ++i) y_row[i] = 0.f;
      continue;
    }
    const float* x_row = &x[(x_per_slot ? s : s / k) * in];  // (in)
    matvec(&w[std::size_t(e) * out * in], x_row, y_row, out, in, false);
  }
}

std::vector<float> dequantize_rows(const TypedRows& w, std::uint32_t first, std::uint32_t count, std::uint32_t in) {
  const std::uint64_t stored = quant::row_bytes(w.type, in);
  if (w.stride < stored || w.bytes.size() < (std::uint64_t(first) + count) * w.stride)
    throw Error("ref::dequantize_rows: " + std::to_string(w.bytes.size()) + " bytes do not hold rows " +
                std::to_string(first) + " .. " + std::to_string(first + count) + " of " + std::to_string(w.stride) +
                " bytes");
  std::vector<float> out(std::size_t(count) * in);
  for (std::uint32_t r = 0; r < count; ++r)
    quant::dequantize(w.type, w.bytes.subspan((std::uint64_t(first) + r) * w.stride, stored),
                      std::span(out).subspan(std::size_t(r) * in, in));
  return out;
}

void linear(const TypedRows& w, std::span<const float> x, std::span<float> y, std::uint32_t out, std::uint32_t in,
            std::uint32_t batch, bool accumulate) {
  linear(dequantize_rows(w, 0, out, in), x, y, out, in, batch, accumulate);
}

void linear_id(const TypedRows& w, std::span<const std::uint32_t> ids, std::span<const float> x, bool x_per_slot,
               std::span<float> y, std::uint32_t experts, std::uint32_t out, std::uint32_t in, std::uint32_t n,
               std::uint32_t k) {
  linear_id(dequantize_rows(w, 0, experts * out, in), ids, x, x_per_slot, y, experts, out, in, n, k);
}

}  // namespace vkq::ref
