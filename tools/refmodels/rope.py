"""RoPE as Hugging Face transformers computes it (modeling_rope_utils.py and
each model's RotaryEmbedding), written out per rope type.

Every rule returns (inv_freq[head_dim / 2], attention_factor).  The model
multiplies cos and sin by attention_factor (both q and k, so scores scale by
its square), with rotate_half pairs (i, i + head_dim / 2):
    emb = cat(pos * inv_freq, pos * inv_freq);  q' = q cos + rotate_half(q) sin

Where transformers versions disagree, the rule of transformers main after
PR #40320 (2025-08) is the one written here, and the cases avoid the
disagreement (see README.md).  Math in float64: HF's float32 rounding of
inv_freq moves the logits by far less than the tests' tolerances.
"""
import math

import torch


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def rope_type(cfg):
    rs = cfg.get("rope_scaling")
    if not rs:
        return "default"
    return rs.get("rope_type", rs.get("type"))  # "type" is the older key (Llama 2, Qwen2.5)


def default_inv_freq(theta, dim):
    # inv_freq[i] = theta^(-2i / dim), i = 0 .. dim/2 - 1
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def linear(cfg, dim):
    # Position interpolation: every frequency divided by `factor`.
    return default_inv_freq(cfg["rope_theta"], dim) / cfg["rope_scaling"]["factor"], 1.0


def llama3(cfg, dim):
    # Llama 3.1: wavelengths shorter than orig/high_freq_factor are kept,
    # longer than orig/low_freq_factor divided by `factor`, and those between
    # blended by smooth = (orig / wavelen - low) / (high - low).
    rs = cfg["rope_scaling"]
    inv = default_inv_freq(cfg["rope_theta"], dim)
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    orig = rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = orig / low, orig / high
    wavelen = 2 * math.pi / inv
    for w in wavelen.tolist():  # keep every wavelength clear of the borders (no float32/64 ambiguity)
        assert abs(w - low_wavelen) > 1e-3 * low_wavelen and abs(w - high_wavelen) > 1e-3 * high_wavelen
    out = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (orig / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, out), 1.0


def yarn_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn(cfg, dim):
    # YaRN (NTK-by-parts): dimensions that turn fewer than beta_slow times
    # over the original context are interpolated (divided by factor), more
    # than beta_fast times extrapolated (kept), a linear ramp between.
    rs = cfg["rope_scaling"]
    base, factor = cfg["rope_theta"], rs["factor"]
    orig = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
    attention_factor = rs.get("attention_factor")
    mscale, mscale_all_dim = rs.get("mscale"), rs.get("mscale_all_dim")
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
        else:
            attention_factor = yarn_mscale(factor)
    beta_fast = rs.get("beta_fast") or 32
    beta_slow = rs.get("beta_slow") or 1
    truncate = rs.get("truncate", True)

    def correction_dim(rotations):  # the dimension that turns `rotations` times over `orig` positions
        return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if truncate:
        for v in (low, high):  # floor/ceil must not hinge on rounding
            assert v < 0 or abs(v - round(v)) > 1e-3, v
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp  # 1: keep the frequency, 0: divide it by factor
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    inv = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv, attention_factor


def longrope(cfg, dim, ctx):
    # Phi-3.5: per-frequency divisors, long_factor when the context in use
    # exceeds original_max_position_embeddings (HF: the sequence length seen so
    # far), else short_factor; attention factor from s = max / original.
    rs = cfg["rope_scaling"]
    if "original_max_position_embeddings" in cfg:
        orig = cfg["original_max_position_embeddings"]
        factor = cfg["max_position_embeddings"] / orig
    else:
        orig = cfg["max_position_embeddings"]
        factor = rs.get("factor")
    attention_factor = rs.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
    ext = torch.tensor(rs["long_factor"] if ctx > orig else rs["short_factor"], dtype=torch.float64)
    assert ext.numel() == dim // 2
    return 1.0 / (ext * cfg["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)), attention_factor


def rope_parameters(cfg, ctx):
    """(inv_freq, attention_factor) of `cfg` when `ctx` positions are in use."""
    dim = head_dim(cfg)
    t = rope_type(cfg)
    if t == "default":
        return default_inv_freq(cfg["rope_theta"], dim), 1.0
    if t == "linear":
        return linear(cfg, dim)
    if t == "llama3":
        return llama3(cfg, dim)
    if t == "yarn":
        return yarn(cfg, dim)
    if t == "longrope":
        return longrope(cfg, dim, ctx)
    raise ValueError(f"rope type {t!r} has no reference here")


def cos_sin(cfg, n, ctx):
    """cos, sin (n, head_dim) for positions 0 .. n-1, attention factor applied."""
    inv, attention_factor = rope_parameters(cfg, ctx)
    freqs = torch.outer(torch.arange(n, dtype=torch.float64), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos() * attention_factor, emb.sin() * attention_factor


def gguf_rope_freqs(cfg):
    """Llama 3.1's per-frequency divisors as convert_hf_to_gguf.py writes
    them (rope_freqs.weight): inv_freq_gguf[i] = inv_freq_default[i] / d[i]."""
    dim = head_dim(cfg)
    inv, _ = llama3(cfg, dim)
    return default_inv_freq(cfg["rope_theta"], dim) / inv
