# attn: the fp16 KV cache (store) and causal GQA attention over it, with a
# split-K partial pass and its combine (flash-decoding).
vkq_shader(attn_kv_store attn_kv_store.comp)
vkq_shader(attn_fwd attn.comp)
vkq_shader(attn_combine attn_combine.comp)
# The q8 / q4 value cache: quantizing store (the attention kernels read it in place).
vkq_shader(attn_vstore attn_vstore.comp)
