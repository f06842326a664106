# attn: the fp16 KV cache (store) and causal GQA attention over it, with a
# split-K partial pass and its combine (flash-decoding).
vkq_shader(attn_kv_store attn_kv_store.comp)
vkq_shader(attn_fwd attn.comp)
vkq_shader(attn_combine attn_combine.comp)
