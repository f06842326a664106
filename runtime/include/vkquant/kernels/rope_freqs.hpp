// A RoPE frequency table (vkquant/rope.hpp) as the kernels read it: the
// (hd/2) fp32 inverse frequencies in a device buffer and the attention factor.
#pragma once

#include <cstdint>

#include "vkquant/buffer.hpp"
#include "vkquant/rope.hpp"

namespace vkq::kernels {

struct RopeFreqs {
  const Buffer* inv_freq = nullptr;  // (hd/2) f32
  std::uint32_t hd = 0;
  float scale = 1.f;  // cos and sin are multiplied by it
};

// A device copy of `t` (its buffer, and the view kernels take).
struct DeviceRope {
  Buffer buffer;
  std::uint32_t hd = 0;
  float scale = 1.f;
  static DeviceRope create(Device& d, const RopeTable& t);
  RopeFreqs freqs() const { return RopeFreqs{&buffer, hd, scale}; }
};

}  // namespace vkq::kernels
