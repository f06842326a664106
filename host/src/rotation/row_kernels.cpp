#include "vkquant/rotation/row_kernels.hpp"

#include <cstring>
#include <vector>

// Three builds of each kernel, chosen once by the CPU (ifunc); fp-contract
// off keeps a * b + c two roundings in all three (AVX2 and AVX-512 would fuse
// them). Clang's sanitizer build and other targets compile the baseline only,
// which rounds the same way.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VKQ_ROW_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("fp-contract=off")))
#else
#define VKQ_ROW_KERNEL
#endif
#if defined(__clang__)
#define VKQ_NO_CONTRACT _Pragma("clang fp contract(off)")
#else
#define VKQ_NO_CONTRACT
#endif

namespace vkq::rot::kernels {

namespace {
// 16 fp32 lanes: one AVX-512 register, two AVX2 or four SSE2 ones. Element-
// wise arithmetic only, so the lane count never changes a result.
typedef float v16 __attribute__((vector_size(64)));
constexpr std::size_t kW = 16;  // lanes
constexpr std::size_t kR = 4;   // rows (of y, or of m) per register tile
constexpr std::size_t kBlock = 128;  // rows of u and w(y) per pass: 2 x 32 KB at d = 64, in L1 and L2

// By reference: a vector returned by value would change the baseline's ABI.
inline void load(v16& v, const float* p) { std::memcpy(&v, p, sizeof v); }
inline void store(float* p, const v16& v) { std::memcpy(p, &v, sizeof v); }
inline void add_to(float* p, const v16& a) {
  v16 v;
  load(v, p);
  v += a;
  store(p, v);
}
}  // namespace

VKQ_ROW_KERNEL
void rows_times(const float* x, const float* b, float* y, std::size_t rows, std::size_t d, std::size_t n) {
  VKQ_NO_CONTRACT
  std::size_t r = 0;
  for (; r + kR <= rows; r += kR) {
    const float *x0 = x + r * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
    std::size_t j = 0;
    for (; j + kW <= n; j += kW) {
      v16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
      for (std::size_t k = 0; k < d; ++k) {
        v16 w;
        load(w, b + k * n + j);
        a0 += x0[k] * w;
        a1 += x1[k] * w;
        a2 += x2[k] * w;
        a3 += x3[k] * w;
      }
      store(y + r * n + j, a0);
      store(y + (r + 1) * n + j, a1);
      store(y + (r + 2) * n + j, a2);
      store(y + (r + 3) * n + j, a3);
    }
    for (; j < n; ++j)
      for (std::size_t i = 0; i < kR; ++i) {
        float s = 0;
        for (std::size_t k = 0; k < d; ++k) s += x[(r + i) * d + k] * b[k * n + j];
        y[(r + i) * n + j] = s;
      }
  }
  for (; r < rows; ++r)
    for (std::size_t j = 0; j < n; ++j) {
      float s = 0;
      for (std::size_t k = 0; k < d; ++k) s += x[r * d + k] * b[k * n + j];
      y[r * n + j] = s;
    }
}

VKQ_ROW_KERNEL
void cross_accumulate(const float* y, const float* u, std::size_t rows, std::size_t n, std::size_t d, Weight w,
                      float* m, double* sq) {
  VKQ_NO_CONTRACT
  std::vector<float> f(kBlock * n);  // (block rows, n): w(y)
  for (std::size_t r0 = 0; r0 < rows; r0 += kBlock) {
    const std::size_t nb = rows - r0 < kBlock ? rows - r0 : kBlock;
    const float* yb = y + r0 * n;
    const float* ub = u + r0 * d;
    if (w == Weight::sign) {
      for (std::size_t e = 0; e < nb * n; ++e) f[e] = yb[e] >= 0 ? 1.0f : -1.0f;
    } else {
      for (std::size_t e = 0; e < nb * n; ++e) f[e] = yb[e] * yb[e] * yb[e];
      if (sq)
        for (std::size_t t = 0; t < nb; ++t)
          for (std::size_t i = 0; i < n; ++i) sq[i] += double(yb[t * n + i]) * double(yb[t * n + i]);
    }
    std::size_t j = 0;
    for (; j + kW <= d; j += kW) {
      std::size_t i = 0;
      for (; i + kR <= n; i += kR) {
        v16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
        for (std::size_t t = 0; t < nb; ++t) {
          v16 uv;
          load(uv, ub + t * d + j);
          const float* ft = f.data() + t * n + i;
          a0 += ft[0] * uv;
          a1 += ft[1] * uv;
          a2 += ft[2] * uv;
          a3 += ft[3] * uv;
        }
        float* mi = m + i * d + j;
        add_to(mi, a0);
        add_to(mi + d, a1);
        add_to(mi + 2 * d, a2);
        add_to(mi + 3 * d, a3);
      }
      for (; i < n; ++i) {
        v16 a = {};
        for (std::size_t t = 0; t < nb; ++t) {
          v16 uv;
          load(uv, ub + t * d + j);
          a += f[t * n + i] * uv;
        }
        add_to(m + i * d + j, a);
      }
    }
    for (; j < d; ++j)
      for (std::size_t i = 0; i < n; ++i) {
        float s = 0;
        for (std::size_t t = 0; t < nb; ++t) s += f[t * n + i] * ub[t * d + j];
        m[i * d + j] += s;
      }
  }
}

}  // namespace vkq::rot::kernels
