# kcodec: the 1-bit K-cache codec (docs/design.md §2). Encode keys into sign bits,
# alpha and residual coefficients; decode codes back into the fp16 key cache
# (optionally applying RoPE). The _mr encoders subtract the RoPE'd pre-RoPE
# mean (mean-RoPE variant). One variant per head dimension HD, so every
# loop over coordinates has a compile-time trip count and is unrolled.
foreach(hd 32 64 96 128 256)
  vkq_shader(kcodec_encode_d${hd} kcodec_encode.comp DEFINES HD=${hd})
  vkq_shader(kcodec_encode_mr_d${hd} kcodec_encode.comp DEFINES HD=${hd} MEAN_ROPE)
  vkq_shader(kcodec_decode_d${hd} kcodec_decode.comp DEFINES HD=${hd})
endforeach()
