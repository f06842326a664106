// Host CPU kernels for the work that runs on the CPU itself rather than on a
// Vulkan device: the host key capture of `calibrate` and `gauge`
// (KeyCaptureOptions::On::host, model/key_capture.hpp) multiplies every
// captured token through every weight, which on a CPU device (lavapipe) runs
// 6-19x faster natively than through the shaders (docs/design.md §4, "Host
// CPU kernels").
//
// The kernels are Eigen compiled once per instruction set (generic x86-64 or
// other, AVX2+FMA, AVX-512) and picked at run time by what the CPU supports;
// each variant's Eigen lives in its own namespace (the ISA translation units
// rename it), so no Eigen template instance compiled for one set can be
// linked into another's caller (in optimized builds nothing else is left
// out of line either; see isa_impl.inc). Single-threaded: callers split work
// with parallel_for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <span>
#include <string>
#include <vector>

namespace vkq::cpu {

enum class Isa { generic, avx2, avx512 };
const char* isa_name(Isa isa);

// The instruction sets compiled in and supported by this CPU, best last.
std::vector<Isa> supported_isas();
// The set VKQ_CPU_ISA's value names among `have` (supported_isas(), best
// last; null or empty value: the best). Throws vkq::UsageError (exit 2, as a
// bad flag) naming VKQ_CPU_ISA when it names an unknown set or one not in `have`.
Isa parse_isa(const char* value, std::span<const Isa> have);
// The set the kernels use: VKQ_CPU_ISA (generic, avx2 or avx512) when set,
// else the best supported (parse_isa).
Isa active_isa();

struct Kernels {
  Isa isa;
  // C (m, n) = A (m, k) · B (n, k)ᵀ + beta · C, all row-major with leading
  // dimensions (row strides) lda, ldb, ldc; beta 0 or 1 (with 0, C is not read).
  void (*gemm_nt)(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const float* b,
                  std::size_t ldb, float* c, std::size_t ldc, float beta);
  // C (m, n) += A (k, m)ᵀ · B (k, n): float products over blocks of 1,024
  // rows, summed into C in double (a second moment over many rows).
  void (*gemm_tn_acc)(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const float* b,
                      std::size_t ldb, double* c, std::size_t ldc);
  // Causal softmax attention of one sequence and one KV head's group, rows
  // [r0, r1) of the queries: for query row t and head j of the group,
  // out[t, j] = Σ_{s ≤ t} softmax_s(q[t, j]·k[s] · scale) v[s]. q and out hold
  // (rows, group, hd) with row stride ldq (head j at column j·hd), k and v
  // (rows, hd) with row stride ldk; all rows of the sequence start at row 0.
  void (*attend_causal)(std::size_t r0, std::size_t r1, std::size_t group, std::size_t hd, const float* q,
                        std::size_t ldq, const float* k, const float* v, std::size_t ldk, float* out, float scale);
  // g[i] ← silu(g[i]) · u[i], i < n (the gated MLP).
  void (*silu_mul)(std::size_t n, float* g, const float* u);
};
const Kernels& kernels(Isa isa);

// Storage for the kernels' operands: 64-byte aligned. Eigen's AVX-512
// products peel their loops to the operands' alignment, so the same numbers
// at another address mod 64 may round differently (seen: a capture's keys
// differing run to run in the last bits); from aligned buffers at the same
// offsets the results are the same bits every run.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
};
using Buffer = std::vector<float, AlignedAllocator<float>>;
inline const Kernels& kernels() { return kernels(active_isa()); }

// Runs f(i) for i in [0, n) on up to `threads` threads (0: the hardware's,
// at most 16), each taking the next index; returns when all are done. The
// first exception thrown is rethrown after the others finish. Inside f,
// parallel_for runs serially (and nested() is true): the cores are taken.
void parallel_for(std::size_t n, const std::function<void(std::size_t)>& f, std::size_t threads = 0);
// Whether this thread runs inside a parallel_for.
bool nested();
std::size_t thread_count();

}  // namespace vkq::cpu
