#include "vkquant/cpu/kernels.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include "vkquant/error.hpp"

namespace vkq::cpu {

namespace generic { const Kernels* table(); }
namespace avx2 { const Kernels* table(); }
namespace avx512 { const Kernels* table(); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out{Isa::generic};
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // What isa_avx2.cpp and isa_avx512.cpp are compiled for (host/CMakeLists.txt).
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) out.push_back(Isa::avx2);
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    out.push_back(Isa::avx512);
#endif
  return out;
}

Isa parse_isa(const char* value, std::span<const Isa> have) {
  if (!value || !*value) return have.back();
  std::optional<Isa> named;
  for (Isa i : {Isa::generic, Isa::avx2, Isa::avx512})
    if (std::string_view(value) == isa_name(i)) named = i;
  if (!named) throw UsageError(std::string("VKQ_CPU_ISA=") + value + ": not an instruction set (generic, avx2 or avx512)");
  if (std::find(have.begin(), have.end(), *named) == have.end())
    throw UsageError(std::string("VKQ_CPU_ISA=") + value + ": this CPU (or build) does not support it");
  return *named;
}

Isa active_isa() {
  static const Isa isa = parse_isa(std::getenv("VKQ_CPU_ISA"), supported_isas());
  return isa;
}

const Kernels& kernels(Isa isa) {
  switch (isa) {
    case Isa::generic: return *generic::table();
    case Isa::avx2: return *avx2::table();
    case Isa::avx512: return *avx512::table();
  }
  throw Error("cpu::kernels: unknown instruction set");
}

namespace {
thread_local bool t_nested = false;
// Marks this thread as inside a parallel_for while it lives.
struct NestedScope {
  bool was = t_nested;
  NestedScope() { t_nested = true; }
  ~NestedScope() { t_nested = was; }
};
}  // namespace

bool nested() { return t_nested; }

std::size_t thread_count() { return std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 16); }

void parallel_for(std::size_t n, const std::function<void(std::size_t)>& f, std::size_t threads) {
  if (threads == 0) threads = thread_count();
  threads = std::min(threads, n);
  if (t_nested) threads = 1;
  NestedScope scope;
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex m;
  auto work = [&] {
    NestedScope worker;
    for (std::size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        f(i);
      } catch (...) {
        std::lock_guard lock(m);
        if (!error) error = std::current_exception();
        next.store(n);  // the others stop at their next index
      }
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace vkq::cpu
