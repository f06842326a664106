// `vkquant bench`: kernel cases and their registry.
//
// A kernel family contributes cases from its own tools/bench/cases_<family>.cpp
// through VKQ_BENCH_CASES. Each case owns its buffers (captured in the
// lambdas), first proves its output against the CPU reference (`verify`), and
// then is timed by the runner: `record` is called several times per submit
// between timestamps, interleaved with the roofline yardstick named by `roof`
// over the same byte volume.
#pragma once

#include <functional>
#include <string>
#include <vector>

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

}  // namespace vkq::bench
