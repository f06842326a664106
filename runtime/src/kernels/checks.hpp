// Argument checks the kernel wrappers share (private to runtime/src/kernels).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/error.hpp"
#include "vkquant/kernels/kcodec.hpp"
#include "vkquant/stream.hpp"

namespace vkq::kernels::check {

[[noreturn]] inline void fail(const char* fn, const std::string& what) { throw Error(std::string(fn) + ": " + what); }

// A binding of the first `bytes` of b: present, large enough, within one
// binding (`beyond`, if given, says what happens to larger ranges).
inline Binding need(const char* fn, const Device& d, const char* name, const Buffer* b, std::uint64_t bytes,
                    const char* beyond = nullptr) {
  if (!b || !*b) fail(fn, std::string(name) + " buffer missing");
  if (b->size() < bytes)
    fail(fn, std::string(name) + " holds " + std::to_string(b->size()) + " bytes, needs " + std::to_string(bytes));
  if (bytes > d.info().max_storage_buffer_range)
    fail(fn, std::string(name) + " needs " + std::to_string(bytes) + " bytes in one binding, more than " +
                 "maxStorageBufferRange " + std::to_string(d.info().max_storage_buffer_range) +
                 (beyond ? std::string(" (") + beyond + ")" : std::string()));
  return Binding(*b, 0, std::max<std::uint64_t>(bytes, std::min<std::uint64_t>(4, b->size())));
}

// A RoPE table for heads of hd coordinates: its hd/2 frequencies and a finite scale.
inline Binding rope_freqs(const char* fn, const char* name, const RopeFreqs& f, std::uint32_t hd) {
  if (!f.inv_freq || !*f.inv_freq) fail(fn, std::string(name) + ": RoPE frequency table missing");
  if (f.hd != hd)
    fail(fn, std::string(name) + ": RoPE table for hd = " + std::to_string(f.hd) + ", heads have hd = " + std::to_string(hd));
  if (!std::isfinite(f.scale) || f.scale <= 0.f) fail(fn, std::string(name) + ": RoPE scale must be finite and > 0");
  const std::uint64_t bytes = std::uint64_t(hd / 2) * 4;
  if (f.inv_freq->size() < bytes)
    fail(fn, std::string(name) + ": RoPE table holds " + std::to_string(f.inv_freq->size()) + " bytes, needs " +
                 std::to_string(bytes));
  return Binding(*f.inv_freq, 0, std::max<std::uint64_t>(bytes, 4));
}

// The code-cache geometry kcodec and attn_kcode support.
inline void check_codec(const char* fn, const KCodec& c) {
  constexpr std::uint32_t kMaxNkv = 64;
  const std::uint32_t hd = c.hd;
  if (hd != 32 && hd != 64 && hd != 96 && hd != 128 && hd != 256)
    fail(fn, "hd = " + std::to_string(hd) + " is not supported (32, 64, 96, 128 or 256)");
  if (c.n_kv == 0 || c.n_kv > kMaxNkv)
    fail(fn, "n_kv = " + std::to_string(c.n_kv) + " must be in 1.." + std::to_string(kMaxNkv));
  if (c.basis_cols > hd)
    fail(fn, "basis_cols = " + std::to_string(c.basis_cols) + " exceeds hd = " + std::to_string(hd));
  if (c.residual) {
    const KResidualLayout& l = c.residual->layout();
    if (l.n_kv() != c.n_kv)
      fail(fn, "residual layout for " + std::to_string(l.n_kv()) + " heads, the codec has n_kv = " + std::to_string(c.n_kv));
    l.check_basis(fn, c.basis_cols);
    if (l.stride && l.transform() != c.transform)
      fail(fn, c.transform ? "a transform code needs transform-coded residual heads" : "transform-coded heads need KCodec::transform");
  }
  if (c.transform && c.rot) fail(fn, "the transform code has no rotation (rot must be null)");
  if (c.mean_rope.inv_freq) rope_freqs(fn, "mean_rope", c.mean_rope, hd);
}

}  // namespace vkq::kernels::check
