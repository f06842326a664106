# linear / linear_id: the transformer's matmuls. Variants: rows (any device,
# no subgroup ops), rows_shared_x (rows with x loaded once per subgroup and
# broadcast: CPU devices; f32/f16/bf16 only), subgroup (GPUs), tiled
# (shared-memory GEMM for large batches on GPUs; f32/f16/bf16 only); _id:
# the MoE form. One pipeline per
# weight type: f32, f16, bf16, and every ggml block type of quant.h (WQUANT
# with Q_<TYPE>, dequantized in registers).
foreach(wt f32 f16 bf16)
  string(TOUPPER "W${wt}" wdef)
  if(wt STREQUAL "f32")
    set(wdef W32)
  endif()
  vkq_shader(linear_rows_${wt} linear.comp DEFINES VARIANT_ROWS ${wdef})
  vkq_shader(linear_rows_shared_x_${wt} linear.comp DEFINES VARIANT_ROWS SHARED_X ${wdef})
  vkq_shader(linear_subgroup_${wt} linear.comp DEFINES VARIANT_SUBGROUP ${wdef})
  vkq_shader(linear_tiled_${wt} linear_tiled.comp DEFINES ${wdef})
  vkq_shader(linear_id_rows_${wt} linear.comp DEFINES VARIANT_ROWS ID ${wdef})
  vkq_shader(linear_id_rows_shared_x_${wt} linear.comp DEFINES VARIANT_ROWS SHARED_X ID ${wdef})
  vkq_shader(linear_id_subgroup_${wt} linear.comp DEFINES VARIANT_SUBGROUP ID ${wdef})
endforeach()
foreach(qt IN LISTS VKQ_QUANT_TYPES)
  string(TOUPPER "Q_${qt}" qdef)
  vkq_shader(linear_rows_${qt} linear.comp DEFINES VARIANT_ROWS WQUANT ${qdef})
  vkq_shader(linear_subgroup_${qt} linear.comp DEFINES VARIANT_SUBGROUP WQUANT ${qdef})
  vkq_shader(linear_id_rows_${qt} linear.comp DEFINES VARIANT_ROWS ID WQUANT ${qdef})
  vkq_shader(linear_id_subgroup_${qt} linear.comp DEFINES VARIANT_SUBGROUP ID WQUANT ${qdef})
endforeach()
