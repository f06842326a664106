#!/usr/bin/env python3
"""Train the bundled byte-level KJV models (seeded, single thread).

    tools/train/train.sh llama|olmoe      (wrapper: sets LD_LIBRARY_PATH for OpenBLAS)

Writes models/kjv-heldout.txt, models/<name>/{model.safetensors,config.json},
models/<name>.gguf, tests/data/<name>.logits.json, tests/data/ppl-sample.txt.
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

RECIPES = {
    # name: (config fn, steps, batch, peak lr, seed)
    "llama": ("kjv-llama", llama_config, 550, 16, 2e-3, 1234),
    "olmoe": ("kjv-olmoe", olmoe_config, 650, 16, 2e-3, 4321),
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
def bits_per_byte(model, docs, batch=64):
    model.eval()
    chunks = eval_chunks(docs)
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
    reset to 0 (the chapter start).  Window = [BOS] + chapter[off:off+CTX]."""

    def __init__(self, docs, seed):
        self.docs = [torch.tensor(list(d.encode("utf-8")), dtype=torch.long) for d in docs]
        lens = torch.tensor([len(d) for d in self.docs])
        self.cum = torch.cumsum(lens, 0)
        self.total = int(self.cum[-1])
        self.g = torch.Generator().manual_seed(seed)

    def batch(self, B):
        pos = torch.randint(0, self.total, (B,), generator=self.g)
        start = torch.rand(B, generator=self.g) < 0.25
        inp = torch.zeros(B, CTX, dtype=torch.long)
        tgt = torch.full((B, CTX), -100, dtype=torch.long)
        for j in range(B):
            di = int(torch.searchsorted(self.cum, pos[j], right=True))
            base = int(self.cum[di]) - len(self.docs[di])
            off = 0 if start[j] else int(pos[j]) - base
            c = self.docs[di][off:off + CTX]
            inp[j, 0] = BOS
            inp[j, 1:len(c)] = c[:-1]
            tgt[j, :len(c)] = c
        return inp, tgt


@torch.no_grad()
def greedy(model, ids, n):
    ids = list(ids)
    for _ in range(n):
        logits = model(torch.tensor([ids[-CTX:]]))
        ids.append(int(logits[0, -1].argmax()))
    return ids


def fl(x):
    return [float(f"{v:.9g}") for v in x.tolist()]


@torch.no_grad()
def reference_logits(model, name, bpb, sample_bpb, heldout_bytes):
    model.eval()
    out = {"model": name, "bos_token_id": 256, "eos_token_id": 257, "vocab_size": 258,
           "heldout_bits_per_byte": bpb, "heldout_bytes": heldout_bytes,
           "ppl_sample_bits_per_byte": sample_bpb, "prompts": []}
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
    path = os.path.join(ROOT, "tests", "data", f"{name}.logits.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=sorted(RECIPES))
    ap.add_argument("--steps", type=int, default=None, help="override (smoke tests only)")
    ap.add_argument("--no-write", action="store_true", help="smoke test: write nothing")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    name, cfg_fn, steps, B, lr, seed = RECIPES[a.which]
    if a.steps is not None:
        steps = a.steps
    torch.manual_seed(seed)

    docs = kjv_text.chapters()
    train_docs, held_docs = kjv_text.train_heldout(docs, 0.05)
    print(f"chapters {len(docs)} train {len(train_docs)} held-out {len(held_docs)} "
          f"({sum(map(len, held_docs))} bytes)", flush=True)
    if not a.no_write:
        with open(os.path.join(ROOT, "models", "kjv-heldout.txt"), "w") as f:
            f.write("\n\n".join(held_docs) + "\n")
        # ppl sample: leading lines of the held-out file, about 4 KB
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
        sample_docs = kjv_text.split_docs("\n".join(lines) + "\n")

    cfg = cfg_fn()
    model = CausalLM(cfg)
    nparam = sum(p.numel() for p in model.parameters())
    print(f"{name}: {nparam} parameters, steps {steps}, batch {B}x{CTX}", flush=True)
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

    sampler = Sampler(train_docs, seed + 1)
    t0 = time.time()
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        inp, tgt = sampler.batch(B)
        logits = model(inp)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1), ignore_index=-100)
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
        torch.save({"state_dict": model.state_dict(), "config": cfg, "train_seconds": train_s},
                   os.path.join(ckdir, f"{name}.pt"))
    if a.no_write:
        return
    bpb, nb = bits_per_byte(model, held_docs)
    print(f"held-out bits/byte {bpb:.4f} over {nb} bytes", flush=True)
    sample_bpb, _ = bits_per_byte(model, sample_docs)
    print(f"ppl-sample bits/byte {sample_bpb:.4f}", flush=True)
    import export
    export.export(model, cfg, name, {"heldout_bits_per_byte": bpb, "train_seconds": train_s,
                                     "steps": steps, "batch": B, "seed": seed,
                                     "parameters": nparam})
    reference_logits(model, name, bpb, sample_bpb, nb)


if __name__ == "__main__":
    main()
