# kscore: 1-bit key scoring (float and popcount paths), the query quantizer,
# the residual's query side, and the fp16 q·Kᵀ baseline.
vkq_shader(kscore_float kscore.comp DEFINES MODE_FLOAT)
vkq_shader(kscore_popcount kscore.comp DEFINES MODE_POPCOUNT)
vkq_shader(kscore_popcount_sums kscore.comp DEFINES MODE_POPCOUNT SUMS)
vkq_shader(kscore_f16 kscore.comp DEFINES MODE_F16)
vkq_shader(kscore_quantize kscore_quantize.comp)
vkq_shader(kscore_uq kscore_uq.comp)
vkq_shader(kscore_tc kscore.comp DEFINES MODE_TC)
vkq_shader(kscore_tc_lv kscore.comp DEFINES MODE_TC TC_LEVELS)
