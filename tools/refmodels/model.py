"""The forward pass of the reference architectures, as Hugging Face
transformers computes them (eager attention), in float64 on CPU.

Weights are a dict of Hugging Face tensor names -> float64 tensors. One
function serves Llama (1-3.x), Mistral, Qwen2/2.5, Qwen3 and Phi-3/3.5;
what differs is read from the config and the names present:
  q/k/v bias           Qwen2 (self_attn.{q,k,v}_proj.bias)
  per-head q/k RMSNorm Qwen3 (self_attn.{q,k}_norm.weight, shape [head_dim],
                       applied to each head before RoPE)
  fused projections    Phi-3 (self_attn.qkv_proj.weight = [q; k; v] rows,
                       mlp.gate_up_proj.weight = [gate; up] rows)
  tied embeddings      tie_word_embeddings (logits use embed_tokens)
"""
import math

import torch
import torch.nn.functional as F

from rope import cos_sin, head_dim


def rms_norm(x, w, eps):
    # HF RMSNorm: x * rsqrt(mean(x^2) + eps) in fp32 (here fp64), then * weight
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def attention(cfg, W, p, x, cos, sin):
    """x (T, dim) -> (T, dim) for the layer whose names start with `p`."""
    T = x.shape[0]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    if p + "self_attn.qkv_proj.weight" in W:  # Phi-3: rows [0, H hd) q, then KV hd k, then KV hd v
        qkv = x @ W[p + "self_attn.qkv_proj.weight"].T
        q, k, v = qkv.split([H * hd, KV * hd, KV * hd], dim=-1)
    else:
        q, k, v = (x @ W[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        if p + "self_attn.q_proj.bias" in W:  # Qwen2
            q = q + W[p + "self_attn.q_proj.bias"]
            k = k + W[p + "self_attn.k_proj.bias"]
            v = v + W[p + "self_attn.v_proj.bias"]
    q = q.view(T, H, hd)
    k = k.view(T, KV, hd)
    v = v.view(T, KV, hd)
    if p + "self_attn.q_norm.weight" in W:  # Qwen3: RMSNorm over each head's head_dim values
        q = rms_norm(q, W[p + "self_attn.q_norm.weight"], cfg["rms_norm_eps"])
        k = rms_norm(k, W[p + "self_attn.k_norm.weight"], cfg["rms_norm_eps"])
    q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # (heads, T, hd)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    rep = H // KV  # HF repeat_kv: query head h reads key/value head h // rep
    k = k.repeat_interleave(rep, dim=0)
    v = v.repeat_interleave(rep, dim=0)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = F.softmax(scores, dim=-1) @ v  # (H, T, hd)
    return y.transpose(0, 1).reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T


def mlp(cfg, W, p, x):
    if p + "mlp.gate_up_proj.weight" in W:  # Phi-3: gate is the first half of the rows
        gate, up = (x @ W[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
    else:
        gate, up = x @ W[p + "mlp.gate_proj.weight"].T, x @ W[p + "mlp.up_proj.weight"].T
    return (F.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T


def forward(cfg, W, ids, ctx):
    """Logits (len(ids), vocab) for `ids` at positions 0.. with `ctx`
    positions in use (longrope picks its factors by it)."""
    T, eps = len(ids), cfg["rms_norm_eps"]
    window = sliding_window(cfg)
    assert window is None or window >= T, "the reference does not mask a sliding window"
    cos, sin = cos_sin(cfg, T, ctx)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        x = x + attention(cfg, W, p, rms_norm(x, W[p + "input_layernorm.weight"], eps), cos, sin)
        x = x + mlp(cfg, W, p, rms_norm(x, W[p + "post_attention_layernorm.weight"], eps))
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return rms_norm(x, W["model.norm.weight"], eps) @ head.T


def sliding_window(cfg):
    """The attention window HF applies, or None (Qwen2/3 only with use_sliding_window)."""
    if "use_sliding_window" in cfg and not cfg["use_sliding_window"]:
        return None
    return cfg.get("sliding_window")
