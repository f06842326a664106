# ops: the transformer's non-matmul reference ops (embedding, RMSNorm, RoPE,
# SwiGLU, residual add, bias, MoE routing and combine).
vkq_shader(ops_embed_f32 ops_embed.comp)
vkq_shader(ops_embed_f16 ops_embed.comp DEFINES TABLE_F16)
vkq_shader(ops_rmsnorm ops_rmsnorm.comp)
vkq_shader(ops_rope ops_rope.comp)
vkq_shader(ops_swiglu ops_eltwise.comp DEFINES MODE_SWIGLU)
vkq_shader(ops_add ops_eltwise.comp DEFINES MODE_ADD)
vkq_shader(ops_add_bias ops_eltwise.comp DEFINES MODE_BIAS)
vkq_shader(ops_moe_route ops_moe_route.comp)
vkq_shader(ops_moe_combine ops_moe_combine.comp)
