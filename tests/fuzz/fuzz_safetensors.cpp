// libFuzzer: a .safetensors file through SafetensorsFile::open, then every
// tensor's bytes and (for float dtypes) its fp32 conversion.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.hpp"
#include "vkquant/error.hpp"
#include "vkquant/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = vkq_fuzz::write_input("input.safetensors", data, size);
  try {
    const auto f = vkq::SafetensorsFile::open(path);
    volatile std::uint64_t sink = f.metadata().size();
    for (const auto& t : f.tensors()) {
      const auto bytes = f.data(t);
      if (!bytes.empty()) sink = sink + std::uint64_t(bytes.front()) + std::uint64_t(bytes.back());
      try {
        const auto v = f.to_float(t);
        sink = sink + v.size();
      } catch (const vkq::Error&) {
      }
      (void)f.at(t.name);
    }
  } catch (const vkq::Error&) {
  }
  return 0;
}
