# bgemv / bgemm: the 1-bit-weight matmul, its residual prepass, and the fp16
# GEMV baseline (declared here so that VKQ_ONLY_FAMILIES=bgemv builds it too).
# Variants: rows (no subgroup ops), bcast (CPU devices), subgroup (GPUs).
vkq_shader(bgemv_rows bgemv.comp DEFINES VARIANT_ROWS)
vkq_shader(bgemv_bcast bgemv.comp DEFINES VARIANT_BCAST)
vkq_shader(bgemv_subgroup bgemv.comp DEFINES VARIANT_SUBGROUP)
vkq_shader(bgemv_qt bgemv_qt.comp)
vkq_shader(gemv_f16_rows gemv_f16.comp DEFINES VARIANT_ROWS)
vkq_shader(gemv_f16_bcast gemv_f16.comp DEFINES VARIANT_BCAST)
vkq_shader(gemv_f16_subgroup gemv_f16.comp DEFINES VARIANT_SUBGROUP)
