#!/usr/bin/env python3
"""Independent check of the exported files: parses GGUF and safetensors with
numpy only, runs a plain numpy forward pass from each (GGUF: llama.cpp
conventions -- interleaved-pair RoPE for "llama", NEOX for "olmoe"; safetensors:
HF conventions) and compares with tests/data/<name>.logits.json
(models/<name>/reference-logits.json for the fine-tuned kjv-llama-2k).

    python3 tools/train/check_export.py kjv-llama [kjv-olmoe kjv-llama-2k ...]
"""
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def read_gguf(path):
    buf = open(path, "rb").read()
    o = 0

    def rd(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, buf, o)
        o += struct.calcsize("<" + fmt)
        return v[0]

    def rs():
        nonlocal o
        n = rd("Q")
        s = buf[o:o + n].decode()
        o += n
        return s
    sc = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def rv(t):
        if t == 8:
            return rs()
        if t == 9:
            et, n = rd("I"), rd("Q")
            return [rv(et) for _ in range(n)]
        return rd(sc[t])
    assert buf[:4] == b"GGUF"
    o = 4
    ver, nt, nkv = rd("I"), rd("Q"), rd("Q")
    kv = {}
    for _ in range(nkv):
        k = rs()
        kv[k] = rv(rd("I"))
    infos = []
    for _ in range(nt):
        name = rs()
        nd = rd("I")
        dims = [rd("Q") for _ in range(nd)]
        infos.append((name, dims, rd("I"), rd("Q")))
    al = kv.get("general.alignment", 32)
    base = (o + al - 1) // al * al
    t = {}
    for name, dims, typ, off in infos:
        dt = {0: np.float32, 1: np.float16}[typ]
        n = int(np.prod(dims))
        t[name] = np.frombuffer(buf, dt, n, base + off).reshape(list(reversed(dims))).astype(np.float32)
    return ver, kv, t


def read_safetensors(path):
    buf = open(path, "rb").read()
    n = struct.unpack_from("<Q", buf)[0]
    h = json.loads(buf[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(buf[8 + n + a:8 + n + b], {"F32": np.float32, "F16": np.float16}[v["dtype"]]).reshape(v["shape"]).astype(np.float32)
    return out


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, theta, interleaved):
    T, H, D = x.shape
    inv = 1.0 / theta ** (np.arange(0, D, 2) / D)
    ang = np.arange(T)[:, None] * inv[None]          # (T, D/2)
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    y = x.copy()
    if interleaved:   # GGML normal: pairs (2i, 2i+1)
        a, b = x[..., 0::2], x[..., 1::2]
        y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
    else:             # NEOX / HF rotate_half: pairs (i, i + D/2)
        a, b = x[..., :D // 2], x[..., D // 2:]
        y[..., :D // 2], y[..., D // 2:] = a * c - b * s, a * s + b * c
    return y


def silu(x):
    return x / (1 + np.exp(-x))


def forward(ids, g, cfg, interleaved):
    """g: dict with GGUF-style names (HF tensors are renamed before the call)."""
    L, nh, nkv, hd = cfg["layers"], cfg["nh"], cfg["nkv"], cfg["hd"]
    eps, th = cfg["eps"], cfg["theta"]
    x = g["token_embd.weight"][ids].astype(np.float64)
    T = len(ids)
    for i in range(L):
        p = f"blk.{i}."
        h = rms(x, g[p + "attn_norm.weight"], eps)
        q, k, v = h @ g[p + "attn_q.weight"].T, h @ g[p + "attn_k.weight"].T, h @ g[p + "attn_v.weight"].T
        if p + "attn_q_norm.weight" in g:
            q, k = rms(q, g[p + "attn_q_norm.weight"], eps), rms(k, g[p + "attn_k_norm.weight"], eps)
        q = rope(q.reshape(T, nh, hd), th, interleaved)
        k = rope(k.reshape(T, nkv, hd), th, interleaved)
        v = v.reshape(T, nkv, hd)
        o = np.zeros((T, nh, hd))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            s = q[:, hh] @ k[:, kv].T / np.sqrt(hd)
            s = np.where(np.tril(np.ones((T, T))) > 0, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            o[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + o.reshape(T, nh * hd) @ g[p + "attn_output.weight"].T
        h = rms(x, g[p + "ffn_norm.weight"], eps)
        if p + "ffn_gate_inp.weight" in g:
            lg = h @ g[p + "ffn_gate_inp.weight"].T
            pr = np.exp(lg - lg.max(-1, keepdims=True))
            pr /= pr.sum(-1, keepdims=True)
            y = np.zeros_like(x)
            for t in range(T):
                for e in np.argsort(-pr[t], kind="stable")[:cfg["k"]]:
                    gt = g[p + "ffn_gate_exps.weight"][e] @ h[t]
                    up = g[p + "ffn_up_exps.weight"][e] @ h[t]
                    y[t] += pr[t, e] * (g[p + "ffn_down_exps.weight"][e] @ (silu(gt) * up))
            x = x + y
        else:
            x = x + (silu(h @ g[p + "ffn_gate.weight"].T) * (h @ g[p + "ffn_up.weight"].T)) @ g[p + "ffn_down.weight"].T
    return rms(x, g["output_norm.weight"], eps) @ g["output.weight"].T


def hf_to_gguf_names(st, c):
    g = {"token_embd.weight": st["model.embed_tokens.weight"], "output_norm.weight": st["model.norm.weight"],
         "output.weight": st["lm_head.weight"]}
    m = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
         "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm", "mlp.gate_proj": "ffn_gate",
         "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "mlp.gate": "ffn_gate_inp"}
    for i in range(c["num_hidden_layers"]):
        for a, b in m.items():
            k = f"model.layers.{i}.{a}.weight"
            if k in st:
                g[f"blk.{i}.{b}.weight"] = st[k]
        if c["model_type"] == "olmoe":
            for a, b in (("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"), ("down_proj", "ffn_down_exps")):
                g[f"blk.{i}.{b}.weight"] = np.stack([st[f"model.layers.{i}.mlp.experts.{e}.{a}.weight"]
                                                     for e in range(c["num_experts"])])
    return g


def nmse(a, b):
    return float(((a - b) ** 2).sum() / (b ** 2).sum())


def reference_path(name):
    """tests/data/<name>.logits.json for the models trained from scratch;
    a fine-tuned model (kjv-llama-2k) keeps its own in models/<name>/."""
    p = os.path.join(ROOT, "tests", "data", f"{name}.logits.json")
    return p if os.path.exists(p) else os.path.join(ROOT, "models", name, "reference-logits.json")


def sample_bpb(text, g, cfg, interleaved, ctx):
    """The bits-per-byte protocol (README), chunks of ctx bytes."""
    docs = [d for d in text.rstrip(b"\n").split(b"\n\n") if d]
    bits = nbytes = 0
    for d in docs:
        for s0 in range(0, len(d), ctx):
            c = list(d[s0:s0 + ctx])
            lg = forward([256] + c[:-1], g, cfg, interleaved)
            lg = lg - lg.max(-1, keepdims=True)
            lp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
            bits -= lp[np.arange(len(c)), c].sum() / np.log(2)
            nbytes += len(c)
    return bits / nbytes, nbytes


def check(name):
    ref = json.load(open(reference_path(name)))
    c = json.load(open(os.path.join(ROOT, "models", name, "config.json")))
    cfg = dict(layers=c["num_hidden_layers"], nh=c["num_attention_heads"], nkv=c["num_key_value_heads"],
               hd=c["head_dim"], eps=c["rms_norm_eps"], theta=c["rope_theta"], k=c.get("num_experts_per_tok", 0))
    st = hf_to_gguf_names(read_safetensors(os.path.join(ROOT, "models", name, "model.safetensors")), c)
    files = [("safetensors", st, False)]
    for fn in sorted(os.listdir(os.path.join(ROOT, "models"))):
        if fn in (f"{name}.gguf", f"{name}-f16.gguf"):
            ver, kv, t = read_gguf(os.path.join(ROOT, "models", fn))
            assert ver == 3 and kv["general.architecture"] == c["model_type"]
            assert len(kv["tokenizer.ggml.tokens"]) == c["vocab_size"]
            files.append((fn, t, kv["general.architecture"] == "llama"))
    ok = True
    # ppl protocol, re-implemented independently (see README): ppl-sample.txt through the first GGUF
    text = open(os.path.join(ROOT, "tests", "data", "ppl-sample.txt"), "rb").read()
    for ctx, key in [(256, "ppl_sample_bits_per_byte")] + (
            [(ref["eval_ctx"], f"ppl_sample_bits_per_byte_ctx{ref['eval_ctx']}")] if "eval_ctx" in ref else []):
        bpb, nbytes = sample_bpb(text, files[1][1], cfg, files[1][2], ctx)
        want = ref[key]
        ok &= abs(bpb - want) <= 1e-3 * want
        print(f"{name} ppl-sample.txt via {files[1][0]}, ctx {ctx}: {bpb:.5f} bits/byte over {nbytes} bytes "
              f"(reference {want:.5f})")
    for fn, g, inter in files:
        for p in ref["prompts"]:
            out = forward(p["ids"], g, cfg, inter)
            e = nmse(out[-1], np.array(p["last_logits"]))
            if "all_logits" in p:
                e = max(e, nmse(out, np.array(p["all_logits"])))
            lim = 1e-4 if "f16" not in fn else 1e-2
            ok &= e <= lim
            print(f"{name} {fn:24s} {p['text']!r:34s} nmse {e:.2e} {'ok' if e <= lim else 'FAIL'}")
    return ok


if __name__ == "__main__":
    res = [check(n) for n in sys.argv[1:]]
    sys.exit(0 if all(res) else 1)
