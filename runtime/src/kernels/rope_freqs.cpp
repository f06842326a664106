#include "vkquant/kernels/rope_freqs.hpp"

#include <span>

namespace vkq::kernels {

DeviceRope DeviceRope::create(Device& d, const RopeTable& t) {
  DeviceRope r;
  r.buffer = Buffer::create(d, t.inv_freq.size() * sizeof(float));
  r.buffer.upload(std::span<const float>(t.inv_freq));
  r.hd = t.hd;
  r.scale = t.scale;
  return r;
}

}  // namespace vkq::kernels
