"""Reference PyTorch models, numerically equivalent to Hugging Face's
LlamaForCausalLM and OlmoeForCausalLM (eager attention) for the configs used
here.  No `transformers` dependency: Debian's python3-torch only."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

BOS, EOS, VOCAB = 256, 257, 258


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_cos_sin(T, head_dim, theta, device=None):
    # HF LlamaRotaryEmbedding (default rope): inv_freq over even indices,
    # emb = cat(freqs, freqs) -> rotate_half pairs (i, i + head_dim/2).
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    pos = torch.arange(T, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def causal_attention(q, k, v, scale, block=256):
    """Eager causal attention (torch 1.13 has no scaled_dot_product_attention),
    by blocks of `block` query rows, each against keys [0, end of block): the
    same sums, without the masked upper triangle beyond the block (56 % of the
    T x T work at T = 2048).  T <= block is the plain one-block computation.
    q: (B, H, T, hd), k, v: (B, H, T, hd) -> (B, H, T, hd)."""
    T = q.shape[2]
    out = []
    for s in range(0, T, block):
        e = min(T, s + block)
        att = (q[:, :, s:e] @ k[:, :, :e].transpose(-1, -2)) * scale
        mask = torch.ones(e - s, e, dtype=torch.bool).triu(s + 1)
        att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att, dim=-1, dtype=torch.float32).to(q.dtype)
        out.append(att @ v[:, :, :e])
    return out[0] if len(out) == 1 else torch.cat(out, 2)


class Attention(nn.Module):
    def __init__(self, c, qk_norm):
        super().__init__()
        d, hd = c["hidden_size"], c["head_dim"]
        self.nh, self.nkv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], hd
        self.q_proj = nn.Linear(d, self.nh * hd, bias=False)
        self.k_proj = nn.Linear(d, self.nkv * hd, bias=False)
        self.v_proj = nn.Linear(d, self.nkv * hd, bias=False)
        self.o_proj = nn.Linear(self.nh * hd, d, bias=False)
        self.qk_norm = qk_norm
        if qk_norm:  # OLMoE: RMSNorm over the full q / k projection outputs
            self.q_norm = RMSNorm(self.nh * hd, c["rms_norm_eps"])
            self.k_norm = RMSNorm(self.nkv * hd, c["rms_norm_eps"])

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(B, T, self.nh, self.hd).transpose(1, 2)
        k = k.view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = v.view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv  # HF repeat_kv: q head h uses kv head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        y = causal_attention(q, k, v, 1.0 / math.sqrt(self.hd))
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.nh * self.hd))


class MLP(nn.Module):
    def __init__(self, d, ff):
        super().__init__()
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SparseMoe(nn.Module):
    """OlmoeSparseMoeBlock: router logits -> softmax (fp32) -> top-k,
    weights NOT renormalised (norm_topk_prob = false)."""

    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.E, self.k, self.norm_topk = c["num_experts"], c["num_experts_per_tok"], c["norm_topk_prob"]
        self.gate = nn.Linear(d, self.E, bias=False)
        self.experts = nn.ModuleList([MLP(d, c["intermediate_size"]) for _ in range(self.E)])
        self.aux = None

    def forward(self, x):
        B, T, d = x.shape
        xf = x.reshape(-1, d)
        logits = self.gate(xf)
        probs = F.softmax(logits, dim=-1, dtype=torch.float)
        w, sel = torch.topk(probs, self.k, dim=-1)
        if self.norm_topk:
            w = w / w.sum(-1, keepdim=True)
        w = w.to(x.dtype)
        out = torch.zeros_like(xf)
        for e in range(self.E):
            rows, slot = torch.where(sel == e)
            if rows.numel() == 0:
                continue
            out.index_add_(0, rows, self.experts[e](xf[rows]) * w[rows, slot, None])
        if self.training:
            # Switch-style load balancing (as OLMoE / HF load_balancing_loss_func) + router z-loss
            frac = F.one_hot(sel, self.E).float().sum(1).mean(0) / self.k
            self.aux = self.E * (frac * probs.mean(0)).sum()
            self.zloss = torch.logsumexp(logits.float(), -1).pow(2).mean()
        return out.view(B, T, d)


class Block(nn.Module):
    def __init__(self, c, moe):
        super().__init__()
        d = c["hidden_size"]
        self.input_layernorm = RMSNorm(d, c["rms_norm_eps"])
        self.self_attn = Attention(c, qk_norm=moe)
        self.post_attention_layernorm = RMSNorm(d, c["rms_norm_eps"])
        self.mlp = SparseMoe(c) if moe else MLP(d, c["intermediate_size"])

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c, moe):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Block(c, moe) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class CausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.moe = c["model_type"] == "olmoe"
        self.model = Inner(c, self.moe)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        std = c["initializer_range"]
        for n, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * c["num_hidden_layers"]) if n.endswith(("o_proj.weight", "down_proj.weight")) else std
                nn.init.normal_(p, 0.0, s)

    def forward(self, ids):
        T = ids.shape[1]
        cos, sin = rope_cos_sin(T, self.c["head_dim"], self.c["rope_theta"])
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))

    def aux_losses(self):
        if not self.moe:
            return 0.0, 0.0
        a = sum(l.mlp.aux for l in self.model.layers) / len(self.model.layers)
        z = sum(l.mlp.zloss for l in self.model.layers) / len(self.model.layers)
        return a, z


def llama_config():
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": VOCAB, "hidden_size": 256, "intermediate_size": 704,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 64, "hidden_act": "silu", "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
        "tie_word_embeddings": False, "bos_token_id": BOS, "eos_token_id": EOS,
        "pad_token_id": None, "initializer_range": 0.02, "torch_dtype": "float32",
        "use_cache": True,
    }


def olmoe_config():
    return {
        "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe",
        "vocab_size": VOCAB, "hidden_size": 256, "intermediate_size": 128,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 64, "hidden_act": "silu", "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
        "attention_bias": False, "attention_dropout": 0.0, "clip_qkv": None,
        "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": False,
        "output_router_logits": False, "router_aux_loss_coef": 0.01,
        "tie_word_embeddings": False, "bos_token_id": BOS, "eos_token_id": EOS,
        "pad_token_id": None, "initializer_range": 0.02, "torch_dtype": "float32",
        "use_cache": True,
    }
