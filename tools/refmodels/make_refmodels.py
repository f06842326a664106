#!/usr/bin/env python3
"""Writes the PyTorch-checked tiny models of tests/data/refmodels/: one
directory per case with config.json + model.safetensors, for some cases a
<case>.gguf beside them (same weights, llama.cpp names and metadata), and
logits.json: the token ids fed from position 0, the context in use, and the
logits of every position computed by model.py in float64.  Also config-only
refusal cases (refuse-*/config.json) that the tests pair with llama-plain's
weights.  Deterministic: rerunning rewrites identical files.

    python3 tools/refmodels/make_refmodels.py [--out tests/data/refmodels]

Needs python3-torch and python3-numpy (Debian), only to regenerate.
"""
import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import forward  # noqa: E402
from rope import gguf_rope_freqs, head_dim  # noqa: E402
from writers import round_weights, write_gguf, write_safetensors  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SEQ = 48  # tokens fed; the scaled cases' original contexts are 32 (or 64) positions

# ------------------------------------------------------------------ configs
COMMON = {
    "vocab_size": 300, "hidden_size": 64, "intermediate_size": 88, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "silu",
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
    "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False, "use_cache": True,
}


def llama(**kw):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **COMMON, "head_dim": 16,
            "attention_bias": False, "mlp_bias": False, **kw}


def mistral(**kw):
    return {"architectures": ["MistralForCausalLM"], "model_type": "mistral", **COMMON, "head_dim": 16,
            "sliding_window": 64, **kw}


def qwen2(**kw):  # Qwen2/2.5: q/k/v bias; the sliding window only with use_sliding_window
    return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", **COMMON, "rms_norm_eps": 1e-6,
            "use_sliding_window": False, "sliding_window": 32, "max_window_layers": 2, **kw}


def qwen3(**kw):  # per-head q/k RMSNorm, head_dim explicit (4 x 32 != 64)
    return {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", **COMMON, "head_dim": 32,
            "rms_norm_eps": 1e-6, "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
            "max_window_layers": 2, **kw}


def phi3(**kw):  # fused qkv_proj and gate_up_proj; head_dim = hidden / heads
    return {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", **COMMON, "attention_bias": False,
            "original_max_position_embeddings": 128, "sliding_window": 64, **kw}


SHORT = [1.0, 1.05, 1.2, 1.6, 2.2, 3.0, 3.5, 4.0]  # longrope short_factor (head_dim 16: 8 frequencies)
LONG = [1.0, 1.3, 2.0, 3.5, 6.0, 9.0, 12.0, 16.0]

# Each case: name, config, safetensors dtype, seed, optional GGUF (arch, dtype),
# and contrasts: configs whose logits must differ clearly from the case's
# (each feature visibly changes the logits within the sequence).
CASES = [
    dict(name="llama-plain", cfg=llama(), dtype="F32", seed=11),
    dict(name="llama-linear", cfg=llama(rope_scaling={"type": "linear", "factor": 2.0}, head_dim=None),
         dtype="BF16", seed=12, gguf=("llama", "F32"), contrasts={"default_rope": {"rope_scaling": None}}),
    dict(name="llama3-rope",
         cfg=llama(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
         dtype="BF16", seed=13, gguf=("llama", "F16"), contrasts={"default_rope": {"rope_scaling": None}}),
    dict(name="yarn",  # Qwen2.5 style
         cfg=qwen2(rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}),
         dtype="F32", seed=14, gguf=("qwen2", "BF16"), contrasts={"default_rope": {"rope_scaling": None}}),
    dict(name="yarn-attn-factor",
         cfg=llama(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                                 "attention_factor": 0.8}),
         dtype="BF16", seed=15,
         contrasts={"default_rope": {"rope_scaling": None},
                    "default_attention_factor": {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                                  "original_max_position_embeddings": 32}}}),
    dict(name="yarn-mscale",  # DeepSeek-V2 style mscale = mscale_all_dim: attention factor 1
         cfg=llama(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                                 "mscale": 0.707, "mscale_all_dim": 0.707}),
         dtype="BF16", seed=16,
         contrasts={"default_attention_factor": {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                                  "original_max_position_embeddings": 32}}}),
    dict(name="longrope-phi3",  # Phi-3.5 style, context in use 48 <= original 64: short factors
         cfg=phi3(rope_scaling={"type": "longrope", "short_factor": SHORT, "long_factor": LONG},
                  max_position_embeddings=256, original_max_position_embeddings=64, sliding_window=262144),
         dtype="BF16", seed=17, gguf=("phi3", "BF16"),
         contrasts={"default_rope": {"rope_scaling": None}, "long_factors": {"original_max_position_embeddings": 32}}),
    dict(name="longrope-phi3-long",  # context in use 48 > original 32: long factors
         cfg=phi3(rope_scaling={"type": "longrope", "short_factor": SHORT, "long_factor": LONG},
                  max_position_embeddings=128, original_max_position_embeddings=32, sliding_window=262144),
         dtype="BF16", seed=18,
         contrasts={"default_rope": {"rope_scaling": None}, "short_factors": {"original_max_position_embeddings": 64}}),
    dict(name="mistral", cfg=mistral(), dtype="F16", seed=19),
    dict(name="qwen2", cfg=qwen2(tie_word_embeddings=True), dtype="F32", seed=20),
    dict(name="qwen3", cfg=qwen3(tie_word_embeddings=True), dtype="BF16", seed=21, gguf=("qwen3", "F16")),
    dict(name="phi3", cfg=phi3(hidden_size=96, num_attention_heads=1, num_key_value_heads=1, intermediate_size=72),
         dtype="BF16", seed=22, gguf=("phi3", "F16")),
]

# Config-only cases: llama-plain's config changed; the tests add llama-plain's weights.
REFUSALS = {
    "refuse-rope-dynamic": {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}},
    "refuse-rope-unknown": {"rope_scaling": {"rope_type": "nonesuch", "factor": 2.0}},
    "refuse-sliding-window": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "sliding_window": 16},
}

DTYPE_NAME = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def clean(cfg):
    return {k: v for k, v in cfg.items() if not (k == "head_dim" and v is None)}


# ------------------------------------------------------------------ weights
def make_weights(cfg, seed):
    """HF-named float32 weights, rounded to values F32/F16/BF16 all hold."""
    rng = np.random.default_rng(seed)
    d, V, f = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    arch = cfg["model_type"]

    def mat(rows, cols, gain=1.0):  # unit-variance outputs for unit-RMS inputs
        return rng.normal(0.0, gain / np.sqrt(cols), (rows, cols))

    def norm(n):
        return 1.0 + 0.2 * rng.normal(size=n)

    W = {"model.embed_tokens.weight": rng.normal(size=(V, d))}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = norm(d)
        q, k, v = mat(H * hd, d, 1.5), mat(KV * hd, d, 1.5), mat(KV * hd, d)  # q/k gain: peakier attention
        if arch == "phi3":
            W[p + "self_attn.qkv_proj.weight"] = np.concatenate([q, k, v])
        else:
            W[p + "self_attn.q_proj.weight"], W[p + "self_attn.k_proj.weight"], W[p + "self_attn.v_proj.weight"] = q, k, v
        if arch == "qwen2":
            for n, rows in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
                W[p + f"self_attn.{n}_proj.bias"] = 0.5 * rng.normal(size=rows)
        if arch == "qwen3":
            W[p + "self_attn.q_norm.weight"] = norm(hd)
            W[p + "self_attn.k_norm.weight"] = norm(hd)
        W[p + "self_attn.o_proj.weight"] = mat(d, H * hd)
        W[p + "post_attention_layernorm.weight"] = norm(d)
        gate, up = mat(f, d), mat(f, d)
        if arch == "phi3":
            W[p + "mlp.gate_up_proj.weight"] = np.concatenate([gate, up])
        else:
            W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"] = gate, up
        W[p + "mlp.down_proj.weight"] = mat(d, f)
    W["model.norm.weight"] = norm(d)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = mat(V, d)
    return {n: round_weights(a.astype(np.float32)) for n, a in W.items()}


def token_ids(vocab, seed):
    ids = np.random.default_rng(seed + 1000).integers(0, vocab, SEQ)
    ids[7] = vocab - 1  # the last row of the embedding and the head
    return [int(i) for i in ids]


def logits_of(cfg, W, ids, ctx):
    Wt = {n: torch.from_numpy(a).double() for n, a in W.items()}
    return forward(cfg, Wt, ids, ctx)


def nmse(a, b):
    return float(((a - b) ** 2).sum() / (b ** 2).sum())


# --------------------------------------------------------------------- GGUF
def permute(w, heads):
    """convert_hf_to_gguf.py's q/k row order for llama (adjacent-pair RoPE)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_model_gguf(path, cfg, W, arch, dtype):
    """The model as convert_hf_to_gguf.py would write it: matrices as `dtype`,
    norms and rope factor tensors F32, no tokenizer."""
    L, H, KV, hd = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    rs = cfg.get("rope_scaling") or {}
    rtype = rs.get("rope_type", rs.get("type"))
    meta = [("general.architecture", arch), ("general.name", os.path.basename(path)),
            (f"{arch}.context_length", cfg["max_position_embeddings"]),
            (f"{arch}.embedding_length", cfg["hidden_size"]), (f"{arch}.block_count", L),
            (f"{arch}.feed_forward_length", cfg["intermediate_size"]),
            (f"{arch}.attention.head_count", H), (f"{arch}.attention.head_count_kv", KV),
            (f"{arch}.attention.layer_norm_rms_epsilon", float(cfg["rms_norm_eps"])),
            (f"{arch}.rope.freq_base", float(cfg["rope_theta"])), (f"{arch}.rope.dimension_count", hd)]
    if arch == "llama":
        meta.append(("llama.vocab_size", cfg["vocab_size"]))
    if arch == "qwen3":
        meta += [("qwen3.attention.key_length", hd), ("qwen3.attention.value_length", hd)]
    if rtype == "linear":
        meta += [(f"{arch}.rope.scaling.type", "linear"), (f"{arch}.rope.scaling.factor", float(rs["factor"]))]
    if rtype == "yarn":
        meta += [(f"{arch}.rope.scaling.type", "yarn"), (f"{arch}.rope.scaling.factor", float(rs["factor"])),
                 (f"{arch}.rope.scaling.original_context_length", rs["original_max_position_embeddings"])]
    extra = []
    if rtype == "llama3":  # no scaling keys: the per-frequency divisors carry it
        extra.append(("rope_freqs.weight", gguf_rope_freqs(cfg).float().numpy(), "F32"))
    if arch == "phi3":
        orig = cfg["original_max_position_embeddings"]
        meta += [("phi3.rope.scaling.original_context_length", orig),
                 ("phi3.attention.sliding_window", cfg["sliding_window"])]
        if rtype == "longrope":
            s = cfg["max_position_embeddings"] / orig
            meta.append(("phi3.rope.scaling.attn_factor", float(np.sqrt(1 + np.log(s) / np.log(orig)))))
            extra += [("rope_factors_long.weight", np.array(rs["long_factor"], np.float32), "F32"),
                      ("rope_factors_short.weight", np.array(rs["short_factor"], np.float32), "F32")]

    t = [("token_embd.weight", W["model.embed_tokens.weight"], dtype)]
    for l in range(L):
        p, g = f"model.layers.{l}.", f"blk.{l}."
        t.append((g + "attn_norm.weight", W[p + "input_layernorm.weight"], "F32"))
        if arch == "phi3":
            t.append((g + "attn_qkv.weight", W[p + "self_attn.qkv_proj.weight"], dtype))
        else:
            q, k = W[p + "self_attn.q_proj.weight"], W[p + "self_attn.k_proj.weight"]
            if arch == "llama":
                q, k = permute(q, H), permute(k, KV)
            t += [(g + "attn_q.weight", q, dtype), (g + "attn_k.weight", k, dtype),
                  (g + "attn_v.weight", W[p + "self_attn.v_proj.weight"], dtype)]
        if arch == "qwen2":
            for n in "qkv":
                t.append((g + f"attn_{n}.bias", W[p + f"self_attn.{n}_proj.bias"], "F32"))
        if arch == "qwen3":
            t += [(g + "attn_q_norm.weight", W[p + "self_attn.q_norm.weight"], "F32"),
                  (g + "attn_k_norm.weight", W[p + "self_attn.k_norm.weight"], "F32")]
        t.append((g + "attn_output.weight", W[p + "self_attn.o_proj.weight"], dtype))
        t.append((g + "ffn_norm.weight", W[p + "post_attention_layernorm.weight"], "F32"))
        if arch == "phi3":  # gate rows then up rows, under llama.cpp's name ffn_up
            t.append((g + "ffn_up.weight", W[p + "mlp.gate_up_proj.weight"], dtype))
        else:
            t += [(g + "ffn_gate.weight", W[p + "mlp.gate_proj.weight"], dtype),
                  (g + "ffn_up.weight", W[p + "mlp.up_proj.weight"], dtype)]
        t.append((g + "ffn_down.weight", W[p + "mlp.down_proj.weight"], dtype))
    t.append(("output_norm.weight", W["model.norm.weight"], "F32"))
    if not cfg["tie_word_embeddings"]:
        t.append(("output.weight", W["lm_head.weight"], dtype))
    write_gguf(path, meta, extra + t)


# --------------------------------------------------------------------- main
def write_case(out, case):
    name, cfg = case["name"], clean(case["cfg"])
    cfg["torch_dtype"] = DTYPE_NAME[case["dtype"]]
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    W = make_weights(cfg, case["seed"])
    ids = token_ids(cfg["vocab_size"], case["seed"])
    ctx = SEQ  # the context in use: the sequence's length
    logits = logits_of(cfg, W, ids, ctx)
    contrasts = {}
    for label, change in case.get("contrasts", {}).items():
        other = {**copy.deepcopy(cfg), **change}
        contrasts[label] = nmse(logits_of(other, W, ids, ctx), logits)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(d, "model.safetensors"), sorted(W.items()), case["dtype"])
    if "gguf" in case:
        write_model_gguf(os.path.join(d, name + ".gguf"), cfg, W, *case["gguf"])
    rows = ",\n  ".join("[" + ",".join(f"{v:.7g}" for v in row) + "]" for row in logits.float().tolist())
    meta = {"case": name, "vocab_size": cfg["vocab_size"], "ctx": ctx, "ids": ids,
            "nmse_of_contrasts": contrasts}
    with open(os.path.join(d, "logits.json"), "w") as f:
        f.write(json.dumps(meta, indent=1)[:-2] + ',\n "logits": [\n  ' + rows + "\n ]\n}\n")
    files = sorted(os.listdir(d))
    sizes = ", ".join(f"{n} {os.path.getsize(os.path.join(d, n)) // 1024} KiB" for n in files)
    print(f"{name}: {sizes}; contrasts {', '.join(f'{k} {v:.3g}' for k, v in contrasts.items()) or '-'}")


def write_refusal(out, name, change):
    cfg = {**clean(llama()), **change, "torch_dtype": "float32"}
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print(f"{name}: config.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "refmodels"))
    args = ap.parse_args()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    torch.set_num_threads(1)
    for case in CASES:
        write_case(args.out, case)
    for name, change in REFUSALS.items():
        write_refusal(args.out, name, change)


if __name__ == "__main__":
    main()
