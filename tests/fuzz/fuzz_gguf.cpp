// libFuzzer: a GGUF file through GgufFile::open, every typed metadata getter
// on every key, config_from_gguf, and to_float of every small tensor.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.hpp"
#include "vkquant/error.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/model/config.hpp"

namespace {

// Runs one getter; type mismatches throw vkq::FormatError, which is fine.
template <class F>
void probe(F&& f) {
  try {
    f();
  } catch (const vkq::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = vkq_fuzz::write_input("input.gguf", data, size);
  try {
    const auto f = vkq::GgufFile::open(path);
    volatile std::uint64_t sink = f.version() + f.alignment();
    for (const auto& kv : f.metadata()) {
      const std::string& key = kv.first;
      sink = sink + vkq::gguf_value_summary(kv.second, 4).size();
      probe([&] { sink = sink + f.get_uint(key).value_or(0); });
      probe([&] { sink = sink + std::uint64_t(f.get_float(key).value_or(0.0) != 0.0); });
      probe([&] { sink = sink + f.get_bool(key).value_or(false); });
      probe([&] { sink = sink + f.get_string(key).value_or("").size(); });
      probe([&] { sink = sink + f.get_strings(key).value_or(std::vector<std::string>{}).size(); });
      probe([&] { sink = sink + f.get_floats(key).value_or(std::vector<double>{}).size(); });
      probe([&] { sink = sink + f.get_ints(key).value_or(std::vector<std::int64_t>{}).size(); });
    }
    probe([&] { sink = sink + vkq::config_from_gguf(f).vocab; });
    for (const auto& t : f.tensors()) {
      sink = sink + std::uint64_t(vkq::ggml_type_name(t.type)[0]);
      if (f.find_tensor(t.name) != &t) __builtin_trap();
      const auto bytes = f.data(t);
      if (bytes.size() != t.bytes) __builtin_trap();
      // Larger tensors only cost time: the decoders' bounds are what is under test.
      if (t.bytes <= (1u << 16)) probe([&] { sink = sink + f.to_float(t).size(); });
    }
  } catch (const vkq::Error&) {
  }
  return 0;
}
