// libFuzzer: model.safetensors.index.json through SafetensorsModel::open on a
// directory that also holds two small valid shards (a.safetensors and
// b.safetensors, written once per process), then every tensor as fp32.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_common.hpp"
#include "vkquant/error.hpp"
#include "vkquant/safetensors.hpp"
#include "vkquant/safetensors_index.hpp"

namespace {

void write_shards() {
  static const bool done = [] {
    const std::vector<float> a{1, 2, 3, 4, 5, 6}, b{7, 8}, c{9};
    vkq::write_safetensors(vkq_fuzz::scratch_dir() / "a.safetensors",
                           {vkq::f32_tensor("x.weight", {2, 3}, a), vkq::f32_tensor("y.bias", {2}, b)});
    vkq::write_safetensors(vkq_fuzz::scratch_dir() / "b.safetensors", {vkq::f32_tensor("z", {1}, c)});
    return true;
  }();
  (void)done;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  write_shards();
  vkq_fuzz::write_input("model.safetensors.index.json", data, size);
  try {
    const auto m = vkq::SafetensorsModel::open(vkq_fuzz::scratch_dir());
    volatile std::size_t sink = m.shards().size();
    for (const auto& name : m.tensor_names()) {
      const vkq::SafetensorsFile* shard = nullptr;
      if (!m.find(name, &shard) || !shard) __builtin_trap();
      sink = sink + m.to_float(name).size();
    }
  } catch (const vkq::Error&) {
  }
  return 0;
}
