# linear / linear_id: fp32 and fp16-weight matmuls of the transformer forward
# pass. Variants: rows (any device, no subgroup ops), subgroup (GPUs), tiled
# (shared-memory GEMM for large batches on GPUs); _id: the MoE form.
foreach(wt f32 f16)
  if(wt STREQUAL "f16")
    set(wdef WF16)
  else()
    set(wdef W32)
  endif()
  vkq_shader(linear_rows_${wt} linear.comp DEFINES VARIANT_ROWS ${wdef})
  vkq_shader(linear_subgroup_${wt} linear.comp DEFINES VARIANT_SUBGROUP ${wdef})
  vkq_shader(linear_tiled_${wt} linear_tiled.comp DEFINES ${wdef})
  vkq_shader(linear_id_rows_${wt} linear.comp DEFINES VARIANT_ROWS ID ${wdef})
  vkq_shader(linear_id_subgroup_${wt} linear.comp DEFINES VARIANT_SUBGROUP ID ${wdef})
endforeach()
