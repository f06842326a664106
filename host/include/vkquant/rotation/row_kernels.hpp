// The solvers' O(rows d^2) products (learn.cpp), written out instead of
// Eigen's GEMM for two reasons. Speed: the build targets plain x86-64, so
// Eigen runs these at SSE2's 4 lanes; these kernels are compiled for AVX-512,
// AVX2 and the baseline (GCC target_clones) and pick the widest at load time,
// 2-4x faster on the key sets of `vkquant calibrate`. Reproducibility: every
// output element is one fp32 sum in a fixed order with no fused multiply-add,
// so all clones give the same bits.
#pragma once

#include <cstddef>

namespace vkq::rot::kernels {

// y (rows, n) = x (rows, d) · b (d, n), all row-major and dense:
// y[r][j] = (((0 + x[r][0] b[0][j]) + x[r][1] b[1][j]) + ...) in fp32.
void rows_times(const float* x, const float* b, float* y, std::size_t rows, std::size_t d, std::size_t n);

enum class Weight {
  sign,  // +1 where y >= 0, else -1
  cube,  // y * y * y
};

// m (n, d) += sum over the rows r of w(y[r][i]) u[r][j] for y (rows, n) and
// u (rows, d) row-major and dense. Rows are taken in blocks of 128, each
// block's sum kept in fp32 registers (rows in order) and then added to m.
// With Weight::cube, sq (n) += the fp64 sums of y[r][i]^2 (rows in order);
// sq may be null otherwise.
void cross_accumulate(const float* y, const float* u, std::size_t rows, std::size_t n, std::size_t d, Weight w,
                      float* m, double* sq);

}  // namespace vkq::rot::kernels
