// fp32 -> fp16 bits, round to nearest even on the bits (packHalf2x16's
// rounding mode is implementation-defined): bit-exact with vkq::to_half.
#ifndef VKQ_HALF_H
#define VKQ_HALF_H
uint to_half(float f) {
  const uint x = floatBitsToUint(f);
  const uint sign = (x >> 16) & 0x8000u;
  const uint e8 = (x >> 23) & 0xffu;
  uint mant = x & 0x7fffffu;
  if (e8 == 0xffu) return sign | 0x7c00u | (mant != 0 ? 0x200u : 0u);  // inf / nan
  const int e = int(e8) - 127 + 15;
  if (e >= 31) return sign | 0x7c00u;  // overflow -> inf
  if (e <= 0) {                        // subnormal or zero
    if (e < -10) return sign;
    mant |= 0x800000u;
    const uint shift = uint(14 - e);
    uint h = mant >> shift;
    const uint rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (h & 1u) != 0)) ++h;
    return sign | h;
  }
  uint h = (uint(e) << 10) | (mant >> 13);
  const uint rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0)) ++h;  // a carry into the exponent is still right
  return sign | h;
}
#endif
