#!/usr/bin/env python3
"""Export a trained model as Hugging Face safetensors + config.json and as
GGUF v3 (llama.cpp names and metadata).  Self-contained writers: no
`safetensors` / `gguf` Python packages needed.

Standalone (re-export from a checkpoint saved by train.py with VKQ_TRAIN_CKPT):
    python3 tools/train/export.py /work/train-logs/kjv-llama.pt
"""
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


# ---------------------------------------------------------------- safetensors
def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, np.ndarray float32/float16), written in order."""
    header, off, blobs = {}, 0, []
    for name, a in tensors:
        a = np.ascontiguousarray(a)
        dt = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------- GGUF
GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STR, GT_ARR = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_F16 = 0, 1
ALIGN = 32


def _s(x):
    b = x.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _kv(key, typ, val):
    out = _s(key) + struct.pack("<I", typ)
    if typ == GT_U32:
        return out + struct.pack("<I", val)
    if typ == GT_I32:
        return out + struct.pack("<i", val)
    if typ == GT_F32:
        return out + struct.pack("<f", val)
    if typ == GT_BOOL:
        return out + struct.pack("<B", 1 if val else 0)
    if typ == GT_STR:
        return out + _s(val)
    if typ == GT_ARR:
        et, items = val
        out += struct.pack("<IQ", et, len(items))
        for it in items:
            out += {GT_STR: lambda v: _s(v), GT_I32: lambda v: struct.pack("<i", v),
                    GT_F32: lambda v: struct.pack("<f", v)}[et](it)
        return out
    raise ValueError(typ)


def write_gguf(path, kvs, tensors):
    """kvs: list of (key, type, value); tensors: list of (name, np.ndarray).
    GGUF dims are ggml order (ne[0] = innermost/contiguous), i.e. the numpy
    shape reversed: a PyTorch Linear weight (out, in) gets ne = [in, out]."""
    kvs = list(kvs) + [("general.alignment", GT_U32, ALIGN)]
    infos, datas, off = b"", [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a)
        gt = {np.dtype(np.float32): GGML_F32, np.dtype(np.float16): GGML_F16}[a.dtype]
        dims = list(reversed(a.shape))
        infos += _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", gt, off)
        b = a.tobytes()
        pad = (ALIGN - len(b) % ALIGN) % ALIGN
        datas.append(b + b"\0" * pad)
        off += len(b) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(_kv(*kv) for kv in kvs) + infos
    head += b"\0" * ((ALIGN - len(head) % ALIGN) % ALIGN)
    with open(path, "wb") as f:
        f.write(head)
        for d in datas:
            f.write(d)


def permute_qk(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute: HF rotate_half layout
    (pairs (i, i+hd/2)) -> GGML 'normal' RoPE layout (adjacent pairs (2i, 2i+1)).
    Row r = h*hd + 2*i + j of the result is row h*hd + j*hd/2 + i of the input."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


def byte_vocab():
    """258 tokens for a SentencePiece-type ("llama") GGUF vocabulary that makes
    llama.cpp tokenize text into exactly its bytes: byte b -> "<0xBB>" (type
    BYTE=6) except the space, which llama.cpp's SPM tokenizer first rewrites to
    U+2581, so id 32 is the NORMAL token "\u2581"; 256 "<s>" and 257 "</s>"
    are CONTROL (3)."""
    toks, types = [], []
    for b in range(256):
        if b == 0x20:
            toks.append("\u2581"); types.append(1)
        else:
            toks.append(f"<0x{b:02X}>"); types.append(6)
    toks += ["<s>", "</s>"]
    types += [3, 3]
    return toks, types


def gguf_kvs(cfg, name, f16):
    arch = cfg["model_type"]
    p = arch + "."
    toks, types = byte_vocab()
    kv = [
        ("general.architecture", GT_STR, arch),
        ("general.name", GT_STR, name),
        ("general.file_type", GT_U32, 1 if f16 else 0),
        ("general.license", GT_STR, "public-domain text; model weights: see repository"),
        (p + "vocab_size", GT_U32, cfg["vocab_size"]),
        (p + "context_length", GT_U32, cfg["max_position_embeddings"]),
        (p + "embedding_length", GT_U32, cfg["hidden_size"]),
        (p + "block_count", GT_U32, cfg["num_hidden_layers"]),
        (p + "feed_forward_length", GT_U32, cfg["intermediate_size"]),
        (p + "attention.head_count", GT_U32, cfg["num_attention_heads"]),
        (p + "attention.head_count_kv", GT_U32, cfg["num_key_value_heads"]),
        (p + "attention.key_length", GT_U32, cfg["head_dim"]),
        (p + "attention.value_length", GT_U32, cfg["head_dim"]),
        (p + "rope.dimension_count", GT_U32, cfg["head_dim"]),
        (p + "rope.freq_base", GT_F32, cfg["rope_theta"]),
        (p + "attention.layer_norm_rms_epsilon", GT_F32, cfg["rms_norm_eps"]),
    ]
    if arch == "olmoe":
        kv += [(p + "expert_count", GT_U32, cfg["num_experts"]),
               (p + "expert_used_count", GT_U32, cfg["num_experts_per_tok"]),
               (p + "expert_feed_forward_length", GT_U32, cfg["intermediate_size"]),
               (p + "expert_weights_norm", GT_BOOL, cfg["norm_topk_prob"])]
    kv += [
        ("tokenizer.ggml.model", GT_STR, "llama"),
        ("tokenizer.ggml.tokens", GT_ARR, (GT_STR, toks)),
        ("tokenizer.ggml.scores", GT_ARR, (GT_F32, [0.0] * len(toks))),
        ("tokenizer.ggml.token_type", GT_ARR, (GT_I32, types)),
        ("tokenizer.ggml.bos_token_id", GT_U32, 256),
        ("tokenizer.ggml.eos_token_id", GT_U32, 257),
        ("tokenizer.ggml.add_bos_token", GT_BOOL, True),
        ("tokenizer.ggml.add_eos_token", GT_BOOL, False),
        ("tokenizer.ggml.add_space_prefix", GT_BOOL, False),
        ("vkquant.tokenizer", GT_STR, "bytes"),
    ]
    return kv


def gguf_tensors(sd, cfg, f16):
    arch = cfg["model_type"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    g = lambda k: sd[k].float().numpy()  # noqa: E731

    def mat(a):  # 2-D and 3-D weights may be F16; 1-D norms stay F32 (llama.cpp convention)
        return a.astype(np.float16) if f16 and a.ndim >= 2 else a.astype(np.float32)

    out = [("token_embd.weight", mat(g("model.embed_tokens.weight")))]
    for i in range(cfg["num_hidden_layers"]):
        hp, bp = f"model.layers.{i}.", f"blk.{i}."
        q, k = g(hp + "self_attn.q_proj.weight"), g(hp + "self_attn.k_proj.weight")
        if arch == "llama":  # LLAMA_ROPE_TYPE_NORM in llama.cpp -> permute like convert_hf_to_gguf.py
            q, k = permute_qk(q, nh), permute_qk(k, nkv)
        out += [(bp + "attn_norm.weight", mat(g(hp + "input_layernorm.weight"))),
                (bp + "attn_q.weight", mat(q)), (bp + "attn_k.weight", mat(k)),
                (bp + "attn_v.weight", mat(g(hp + "self_attn.v_proj.weight"))),
                (bp + "attn_output.weight", mat(g(hp + "self_attn.o_proj.weight")))]
        if arch == "olmoe":  # NEOX rope in llama.cpp: no permutation, q/k norms as-is
            out += [(bp + "attn_q_norm.weight", mat(g(hp + "self_attn.q_norm.weight"))),
                    (bp + "attn_k_norm.weight", mat(g(hp + "self_attn.k_norm.weight")))]
        out.append((bp + "ffn_norm.weight", mat(g(hp + "post_attention_layernorm.weight"))))
        if arch == "llama":
            for hf, gg in (("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down")):
                out.append((bp + gg + ".weight", mat(g(hp + f"mlp.{hf}.weight"))))
        else:
            E = cfg["num_experts"]
            out.append((bp + "ffn_gate_inp.weight", mat(g(hp + "mlp.gate.weight"))))
            for hf, gg in (("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"),
                           ("down_proj", "ffn_down_exps")):
                st = np.stack([g(hp + f"mlp.experts.{e}.{hf}.weight") for e in range(E)])
                out.append((bp + gg + ".weight", mat(st)))
    out += [("output_norm.weight", mat(g("model.norm.weight"))),
            ("output.weight", mat(g("lm_head.weight")))]
    return out


def export(model, cfg, name, meta, f16_only=False):
    """f16_only: the matrices are stored F16 (norms F32) in both the safetensors
    and <name>.gguf, and no F32 GGUF is written (keeps a model's files < 15 MB)."""
    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    d = os.path.join(ROOT, "models", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    def st(a):
        return a.astype(np.float16) if f16_only and a.ndim >= 2 else a
    write_safetensors(os.path.join(d, "model.safetensors"),
                      [(k, st(sd[k].numpy())) for k in sorted(sd)],
                      {"format": "pt", **{k: v for k, v in meta.items()}})
    write_gguf(os.path.join(ROOT, "models", f"{name}.gguf"), gguf_kvs(cfg, name, f16_only),
               gguf_tensors(sd, cfg, f16_only))
    if cfg["model_type"] == "llama" and not f16_only:
        write_gguf(os.path.join(ROOT, "models", f"{name}-f16.gguf"), gguf_kvs(cfg, name, True),
                   gguf_tensors(sd, cfg, True))
    for fn in sorted(os.listdir(os.path.join(ROOT, "models"))):
        p = os.path.join(ROOT, "models", fn)
        print("  ", p, os.path.getsize(p) if os.path.isfile(p) else "(dir)", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    from model import CausalLM
    ck = torch.load(sys.argv[1])
    m = CausalLM(ck["config"])
    m.load_state_dict(ck["state_dict"])
    name = ck.get("name") or ("kjv-llama" if ck["config"]["model_type"] == "llama" else "kjv-olmoe")
    if ck.get("f16"):  # what train.py evaluated and exported
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() >= 2:
                    p.copy_(p.half().float())
    export(m, ck["config"], name, {"train_seconds": ck["train_seconds"]}, f16_only=bool(ck.get("f16")))
