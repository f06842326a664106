# Learned-rotation GEMM Y = X Rᵀ: a register-tile variant for CPU-like devices
# and a shared-memory tiled variant for GPUs, each with fp32 or fp16 R.
vkq_shader(rotate_reg_f32 rotate_reg.comp)
vkq_shader(rotate_reg_f16 rotate_reg.comp DEFINES FP16_R)
vkq_shader(rotate_tiled_f32 rotate_tiled.comp)
vkq_shader(rotate_tiled_f16 rotate_tiled.comp DEFINES FP16_R)
# Zero-padding row copy (rotations of a padded width: SRHT of non-power-of-two rows).
vkq_shader(rotate_pad rotate_pad.comp)
