# bgemv / bgemm: the 1-bit-weight matmul and its residual prepass.
# Variants: rows (no subgroup ops), bcast (CPU devices), subgroup (GPUs).
vkq_shader(bgemv_rows bgemv.comp DEFINES VARIANT_ROWS)
vkq_shader(bgemv_bcast bgemv.comp DEFINES VARIANT_BCAST)
vkq_shader(bgemv_subgroup bgemv.comp DEFINES VARIANT_SUBGROUP)
vkq_shader(bgemv_qt bgemv_qt.comp)
