// `vkquant bench`: kernel cases and their registry.
//
// A kernel family contributes cases from its own tools/bench/cases_<family>.cpp
// through VKQ_BENCH_CASES. Each case owns its buffers (captured in the
// lambdas), first proves its output against the CPU reference (`verify`), and
// then is timed by the runner: `record` is called several times per submit
// between timestamps, interleaved with the roofline yardstick named by `roof`
// over the same byte volume.
#pragma once

#include <algorithm>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/stream.hpp"

namespace vkq::bench {

enum class Roof { copy, read, write };

struct Case {
  std::string name;           // "kscore/popcount8/d128/n32768", unique
  std::string family;         // "kscore"
  Roof roof = Roof::read;     // the yardstick this kernel is bounded by
  double bytes_read = 0;      // per recorded call: each input counted once
  double bytes_written = 0;   // per recorded call: each output counted once
  double ops = 0;             // per recorded call (multiply-add = 2); 0 if meaningless
  std::string baseline;       // name of the fp16 case this 1-bit path is compared with, or ""
  std::function<void(Stream&)> record;   // records one call of the kernel
  std::function<std::string()> verify;   // "" when the output matches the CPU reference, else why not
};

struct Options {
  bool quick = false;  // smaller sizes and fewer repeats (the --quick run must finish in 5 min on lavapipe)
};

using CaseFactory = std::vector<Case> (*)(Device&, const Options&);

// Registry of every family's factory (filled at static-initialisation time).
std::vector<std::pair<const char*, CaseFactory>>& registry();

struct Registrar {
  Registrar(const char* family, CaseFactory f) { registry().emplace_back(family, f); }
};

#define VKQ_BENCH_CASES(family, factory) \
  static const ::vkq::bench::Registrar vkq_bench_registrar_##family{#family, factory}

// "" when every got[i] is within atol + rtol·|want[i]| of want[i], else how
// many `what` differ from the CPU reference and the largest error.
std::string differences(std::span<const float> got, std::span<const float> want, double atol, double rtol,
                        const char* what);

// A device buffer holding host's elements (at least 4 bytes).
template <class V>
Buffer upload_host(Device& d, const V& host) {
  Buffer b = Buffer::create(d, std::max<std::uint64_t>(host.size() * sizeof(host[0]), 4));
  if (!host.empty()) b.upload(host.data(), host.size() * sizeof(host[0]));
  return b;
}

// Records `rec` once, runs it, then compares `out` with make_want()'s floats
// (called after the run: a reference may read what the run left on the device).
std::string run_and_compare(Device& d, const std::function<void(Stream&)>& rec, const Buffer& out,
                            const std::function<std::vector<float>()>& make_want, double atol, double rtol,
                            const char* what);

}  // namespace vkq::bench
