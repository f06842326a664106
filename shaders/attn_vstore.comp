// Quantizes rows of src (n, n_kv * HD) f32 into the q8 or q4 value cache
// (layouts in vkquant/kernels/attn.hpp), one invocation per cached row
// (position, KV head): per block of 32 coordinates,
//   q8: d = fp16(max|x| / 127), code = clamp(roundEven(x / d), -127, 127)
//   q4: m = fp16(min x), d = fp16((max x - min x) / 15),
//       code = clamp(roundEven((x - m) / d), 0, 15)
// (codes 0 where d is 0), exactly as vkq::ref::vcache_pack. A row owns whole
// code and scale words, so invocations never share a word.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "attn.h"
#include "half.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 3) const uint HD = 128;     // head dimension (a multiple of 32)
layout(constant_id = 4) const uint VT = VKQ_V_Q8;  // VKQ_V_Q8 or VKQ_V_Q4
layout(push_constant) uniform PC { VStoreParams p; };

layout(std430, set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Codes { uint codes[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Scales { uint scales[]; };

const uint BLOCKS = HD / VKQ_V_BLOCK;

void main() {
  const uint r = gl_GlobalInvocationID.x;
  if (r >= p.rows) return;
  const uint row = p.row0 + r, sbase = r * HD;
  if (VT == VKQ_V_Q8) {
    const uint sw = (HD + 63) / 64;
    uint pending = 0;
    [[unroll]] for (uint b = 0; b < BLOCKS; ++b) {
      float amax = 0.0;
      for (uint i = 0; i < 32; ++i) amax = max(amax, abs(src[sbase + b * 32 + i]));
      const uint dh = to_half(amax / 127.0);
      const float d = unpackHalf2x16(dh).x;
      for (uint w = 0; w < 8; ++w) {
        uint word = 0;
        for (uint k = 0; k < 4; ++k) {
          const float x = src[sbase + b * 32 + w * 4 + k];
          const int c = d > 0.0 ? int(clamp(roundEven(x / d), -127.0, 127.0)) : 0;
          word |= (uint(c) & 0xffu) << (8 * k);
        }
        codes[row * (HD / 4) + b * 8 + w - p.code_base] = word;
      }
      if (b % 2 == 0) pending = dh;
      else scales[row * sw + b / 2 - p.scale_base] = pending | (dh << 16);
      if (b % 2 == 0 && b + 1 == BLOCKS) scales[row * sw + b / 2 - p.scale_base] = pending;
    }
  } else {
    [[unroll]] for (uint b = 0; b < BLOCKS; ++b) {
      float lo = src[sbase + b * 32], hi = lo;
      for (uint i = 1; i < 32; ++i) {
        const float x = src[sbase + b * 32 + i];
        lo = min(lo, x);
        hi = max(hi, x);
      }
      const uint mh = to_half(lo), dh = to_half((hi - lo) / 15.0);
      const float m = unpackHalf2x16(mh).x, d = unpackHalf2x16(dh).x;
      for (uint w = 0; w < 4; ++w) {
        uint word = 0;
        for (uint k = 0; k < 8; ++k) {
          const float x = src[sbase + b * 32 + w * 8 + k];
          const uint c = d > 0.0 ? uint(clamp(roundEven((x - m) / d), 0.0, 15.0)) : 0u;
          word |= c << (4 * k);
        }
        codes[row * (HD / 8) + b * 4 + w - p.code_base] = word;
      }
      scales[row * BLOCKS + b - p.scale_base] = dh | (mh << 16);
    }
  }
}
