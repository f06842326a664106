# attn_kcode: attention over the 1-bit K-cache code. The scores come from the
# kscore kernels (position-major keys, several query rows, causal); these are
# the query preparation, the mean-RoPE table and term, the softmax·V pass
# (exact front keys) and its split-K combine. HD-specialised where loops over
# coordinates are unrolled.
vkq_shader(attn_kcode_query attn_kcode_query.comp)
vkq_shader(attn_kcode_rope_table attn_kcode_rope_table.comp)
vkq_shader(attn_kcode_mrope attn_kcode_mrope.comp)
vkq_shader(attn_kcode_softmax attn_kcode_softmax.comp)
vkq_shader(attn_kcode_combine attn_kcode_combine.comp)
