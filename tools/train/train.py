#!/usr/bin/env python3
"""Train the bundled byte-level KJV models (seeded, single thread).

    tools/train/train.sh llama|olmoe|llama-2k   (wrapper: sets LD_LIBRARY_PATH for OpenBLAS)

llama / olmoe train from scratch at a context of 256 and write
models/kjv-heldout.txt, models/<name>/{model.safetensors,config.json},
models/<name>.gguf, tests/data/<name>.logits.json, tests/data/ppl-sample.txt.
llama-2k fine-tunes the committed models/kjv-llama at a context of 2,048 and
writes only models/kjv-llama-2k/{model.safetensors,config.json,reference-logits.json}
and models/kjv-llama-2k.gguf (F16 matrices, F32 norms).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import kjv_text  # noqa: E402
from model import BOS, CausalLM, llama_config, olmoe_config  # noqa: E402

CTX = 256
PROMPTS = ["In the beginning", "And the LORD said unto Moses", "Blessed are the"]


def llama_2k_config():
    return {**llama_config(), "max_position_embeddings": 2048, "torch_dtype": "float16"}


# ctx: window length; init: committed safetensors to start from (None: N(0, 0.02));
# fill: clamp window offsets so a window is as long as its chapter allows;
# f16: round the matrices to fp16 before evaluating and export F16 files only.
RECIPES = {
    "llama": dict(name="kjv-llama", cfg=llama_config, steps=550, batch=16, lr=2e-3, seed=1234,
                  ctx=CTX, init=None, fill=False, f16=False),
    "olmoe": dict(name="kjv-olmoe", cfg=olmoe_config, steps=650, batch=16, lr=2e-3, seed=4321,
                  ctx=CTX, init=None, fill=False, f16=False),
    "llama-2k": dict(name="kjv-llama-2k", cfg=llama_2k_config, steps=200, batch=2, lr=1e-3,
                     seed=2048, ctx=2048, init="models/kjv-llama/model.safetensors", fill=True, f16=True),
}


def eval_chunks(docs, ctx=CTX):
    """Protocol: every document (chapter) is cut into consecutive chunks of at
    most `ctx` bytes starting at byte 0; chunk c is scored with input
    [BOS] + c[:-1] and targets c (positions start at 0 in every chunk)."""
    out = []
    for d in docs:
        b = d.encode("utf-8")
        for s in range(0, len(b), ctx):
            out.append(b[s:s + ctx])
    return out


@torch.no_grad()
def bits_per_byte(model, docs, ctx=CTX):
    model.eval()
    chunks = eval_chunks(docs, ctx)
    batch = 64 if ctx <= CTX else 2  # bounds the T x T attention memory
    tot_bits, tot_bytes = 0.0, 0
    for i in range(0, len(chunks), batch):
        cs = chunks[i:i + batch]
        L = max(len(c) for c in cs)
        inp = torch.zeros(len(cs), L, dtype=torch.long)
        tgt = torch.full((len(cs), L), -100, dtype=torch.long)
        for j, c in enumerate(cs):
            t = torch.tensor(list(c), dtype=torch.long)
            inp[j, 0] = BOS
            inp[j, 1:len(c)] = t[:-1]
            tgt[j, :len(c)] = t
        logits = model(inp).float()
        nll = F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1),
                              ignore_index=-100, reduction="sum")
        tot_bits += nll.item() / math.log(2)
        tot_bytes += sum(len(c) for c in cs)
    model.train()
    return tot_bits / tot_bytes, tot_bytes


class Sampler:
    """Deterministic window sampler: a byte position uniform over the training
    bytes picks a chapter and an offset; with probability 1/4 the offset is
    reset to 0 (the chapter start).  Window = [BOS] + chapter[off:off+ctx].
    fill: the offset is then clamped to max(0, len - ctx), so a window is as
    long as its chapter allows, and the batch is cut to its longest window."""

    def __init__(self, docs, seed, ctx=CTX, fill=False):
        self.ctx, self.fill = ctx, fill
        self.docs = [torch.tensor(list(d.encode("utf-8")), dtype=torch.long) for d in docs]
        lens = torch.tensor([len(d) for d in self.docs])
        self.cum = torch.cumsum(lens, 0)
        self.total = int(self.cum[-1])
        self.g = torch.Generator().manual_seed(seed)

    def batch(self, B):
        pos = torch.randint(0, self.total, (B,), generator=self.g)
        start = torch.rand(B, generator=self.g) < 0.25
        ctx = self.ctx
        inp = torch.zeros(B, ctx, dtype=torch.long)
        tgt = torch.full((B, ctx), -100, dtype=torch.long)
        longest = 0
        for j in range(B):
            di = int(torch.searchsorted(self.cum, pos[j], right=True))
            base = int(self.cum[di]) - len(self.docs[di])
            off = 0 if start[j] else int(pos[j]) - base
            if self.fill:
                off = min(off, max(0, len(self.docs[di]) - ctx))
            c = self.docs[di][off:off + ctx]
            inp[j, 0] = BOS
            inp[j, 1:len(c)] = c[:-1]
            tgt[j, :len(c)] = c
            longest = max(longest, len(c))
        if self.fill:
            inp, tgt = inp[:, :longest], tgt[:, :longest]
        return inp, tgt


@torch.no_grad()
def greedy(model, ids, n):
    ids = list(ids)
    ctx = model.c["max_position_embeddings"]
    for _ in range(n):
        logits = model(torch.tensor([ids[-ctx:]]))
        ids.append(int(logits[0, -1].argmax()))
    return ids


def fl(x):
    return [float(f"{v:.9g}") for v in x.tolist()]


@torch.no_grad()
def reference_logits(model, name, bpb, sample_bpb, heldout_bytes, path, extra=None):
    model.eval()
    out = {"model": name, "bos_token_id": 256, "eos_token_id": 257, "vocab_size": 258,
           "heldout_bits_per_byte": bpb, "heldout_bytes": heldout_bytes,
           "ppl_sample_bits_per_byte": sample_bpb, **(extra or {}), "prompts": []}
    shortest = min(range(len(PROMPTS)), key=lambda i: len(PROMPTS[i]))
    for i, p in enumerate(PROMPTS):
        ids = [BOS] + list(p.encode("utf-8"))
        logits = model(torch.tensor([ids]))[0].float()
        g = greedy(model, ids, 32)
        e = {"text": p, "ids": ids, "last_logits": fl(logits[-1]),
             "greedy_ids": g[len(ids):],
             "greedy_text": bytes(t for t in g[len(ids):] if t < 256).decode("utf-8", "replace")}
        if i == shortest:
            e["all_logits"] = [fl(r) for r in logits]
        out["prompts"].append(e)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), flush=True)


def load_init(model, path):
    """Start from committed weights (HF names, F32 or F16 safetensors)."""
    from check_export import read_safetensors
    st = read_safetensors(os.path.join(ROOT, path))
    sd = model.state_dict()
    assert sorted(st) == sorted(sd), f"{path}: tensor names differ from the model's"
    model.load_state_dict({k: torch.from_numpy(st[k].copy()) for k in sd})


@torch.no_grad()
def round_matrices_f16(model):
    """The model evaluated is exactly the one exported: matrices rounded to fp16."""
    for p in model.parameters():
        if p.dim() >= 2:
            p.copy_(p.half().float())


def write_corpus_files(held_docs):
    """models/kjv-heldout.txt and tests/data/ppl-sample.txt (the leading lines
    of the held-out file, about 4 KB); returns the sample's documents."""
    with open(os.path.join(ROOT, "models", "kjv-heldout.txt"), "w") as f:
        f.write("\n\n".join(held_docs) + "\n")
    lines, n = [], 0
    for line in ("\n\n".join(held_docs)).split("\n"):
        if n >= 4000 and line:
            break
        lines.append(line)
        n += len(line) + 1
    while lines and not lines[-1]:
        lines.pop()
    with open(os.path.join(ROOT, "tests", "data", "ppl-sample.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return kjv_text.split_docs("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=sorted(RECIPES))
    ap.add_argument("--steps", type=int, default=None, help="override (smoke tests only)")
    ap.add_argument("--no-write", action="store_true", help="smoke test: write nothing")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    r = RECIPES[a.which]
    name, steps, B, lr, seed, ctx = r["name"], r["steps"], r["batch"], r["lr"], r["seed"], r["ctx"]
    if a.steps is not None:
        steps = a.steps
    torch.manual_seed(seed)

    docs = kjv_text.chapters()
    train_docs, held_docs = kjv_text.train_heldout(docs, 0.05)
    print(f"chapters {len(docs)} train {len(train_docs)} held-out {len(held_docs)} "
          f"({sum(map(len, held_docs))} bytes)", flush=True)
    if r["init"] is None and not a.no_write:
        sample_docs = write_corpus_files(held_docs)
    else:  # a fine-tune reads the committed sample, and writes no shared file
        with open(os.path.join(ROOT, "tests", "data", "ppl-sample.txt")) as f:
            sample_docs = kjv_text.split_docs(f.read())

    cfg = r["cfg"]()
    model = CausalLM(cfg)
    if r["init"]:
        load_init(model, r["init"])
    nparam = sum(p.numel() for p in model.parameters())
    print(f"{name}: {nparam} parameters, steps {steps}, batch {B}x{ctx}"
          + (f", from {r['init']}" if r["init"] else ""), flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8)
    warm = max(1, min(50, steps // 10))

    def lr_at(s):
        if s < warm:
            return lr * (s + 1) / warm
        t = (s - warm) / max(1, steps - warm)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    sampler = Sampler(train_docs, seed + 1, ctx, r["fill"])
    t0 = time.time()
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        inp, tgt = sampler.batch(B)
        logits = model(inp)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        aux, z = model.aux_losses()
        total = loss + cfg.get("router_aux_loss_coef", 0.0) * aux + (0.001 * z if model.moe else 0.0)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s % 25 == 0 or s == steps - 1:
            el = time.time() - t0
            print(f"step {s} loss {loss.item():.4f} bpb {loss.item() / math.log(2):.3f} "
                  f"aux {float(aux):.3f} lr {lr_at(s):.2e} {el:.0f}s ({el / (s + 1):.2f}s/step)", flush=True)
    train_s = time.time() - t0
    print(f"training wall time {train_s:.0f}s", flush=True)
    ckdir = os.environ.get("VKQ_TRAIN_CKPT")
    if ckdir and not a.no_write:
        torch.save({"state_dict": model.state_dict(), "config": cfg, "train_seconds": train_s,
                    "name": name, "f16": r["f16"]},
                   os.path.join(ckdir, f"{name}.pt"))
    if a.no_write:
        return
    if r["f16"]:
        round_matrices_f16(model)
    bpb, nb = bits_per_byte(model, held_docs)
    print(f"held-out bits/byte {bpb:.4f} over {nb} bytes (ctx {CTX})", flush=True)
    sample_bpb, _ = bits_per_byte(model, sample_docs)
    print(f"ppl-sample bits/byte {sample_bpb:.4f} (ctx {CTX})", flush=True)
    meta = {"heldout_bits_per_byte": bpb, "train_seconds": train_s, "steps": steps, "batch": B,
            "seed": seed, "parameters": nparam, "ctx": ctx}
    extra = {}
    if ctx != CTX:  # the same protocol with chunks of ctx bytes
        t1 = time.time()
        bpb_l, _ = bits_per_byte(model, held_docs, ctx)
        sample_l, _ = bits_per_byte(model, sample_docs, ctx)
        print(f"held-out bits/byte {bpb_l:.4f}, ppl-sample {sample_l:.4f} (ctx {ctx}, "
              f"{time.time() - t1:.0f}s)", flush=True)
        extra = {"eval_ctx": ctx, f"heldout_bits_per_byte_ctx{ctx}": bpb_l,
                 f"ppl_sample_bits_per_byte_ctx{ctx}": sample_l}
        meta.update({"init": r["init"], f"heldout_bits_per_byte_ctx{ctx}": bpb_l})
    import export
    export.export(model, cfg, name, meta, f16_only=r["f16"])
    path = (os.path.join(ROOT, "models", name, "reference-logits.json") if r["init"]
            else os.path.join(ROOT, "tests", "data", f"{name}.logits.json"))
    reference_logits(model, name, bpb, sample_bpb, nb, path, extra)


if __name__ == "__main__":
    main()
