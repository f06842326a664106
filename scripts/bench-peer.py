#!/usr/bin/env python3
"""vkquant against llama.cpp on the same GGUF files: prefill and decode speed.

For each model, R rounds; each round runs, one after the other (interleaved,
so a noisy shared machine slows all three alike):

  vkquant            build/tools/vkquant run MODEL --prompt TEXT -n GEN+1 --temp 0 --warmup
                     (--warmup: the prompt and one decode step untimed first, as
                     vkq-peer warms up: both compile their pipelines untimed)
                     (a fresh process; its stderr `prefill:` / `decode:` lines)
  llama.cpp-vulkan   build/tools/peer/vkq-peer bench ... --backend vulkan, the
                     Vulkan library, GGML_VK_VISIBLE_DEVICES=N (ggml-vulkan
                     skips CPU devices such as lavapipe without it)
  llama.cpp-cpu      vkq-peer bench ... --backend cpu, the CPU-only library

The prompt is the same PROMPT_TOKENS ids for all three: a prefix of --text
cut so that `vkquant tokenize` (BOS first where the model adds one) gives
exactly that many, and those ids passed to vkq-peer. Both engines then run
GEN single-token greedy decodes (vkquant samples its first token from the
prefill's logits, so -n GEN+1). vkq-peer runs one untimed warm-up round in
each process (ggml-vulkan builds its pipelines on first use); vkquant's
figures come from the first forward of a fresh process.

Reported: medians over rounds of prefill and decode tokens/s per engine; the
ratios vkquant / llama.cpp (median over rounds of the per-round ratio); and
decode bytes/s = the GGUF file's tensor bytes (its data section) x decode
tokens/s, as a fraction of the read roofline that
`vkquant bench --quick --filter roofline` measures before and after the rounds
(their mean). A model vkquant refuses is reported as "refused: <its error
line>" and the others carry on.

At a context depth (--depth N): both engines start with N positions in their
caches, filled without a prefill (hours at 32k on lavapipe): vkquant
`run --depth N` stores seeded random keys and values through its own codecs;
vkq-peer `bench --depth N` repeats the prompt's own prefilled cells to N
through llama.cpp's sequence-state format. The work per token is that of a
real context of that depth; the generated text is not compared. The cache
types: --vkquant-args (e.g. "--kcache 1bit --vcache q4") and --cache-type-k/-v,
--flash-attn for llama.cpp; each engine's K+V bytes are reported.

usage: scripts/bench-peer.py [MODEL.gguf ...] [--rounds 5] [--prompt-tokens 64]
       [--gen 32] [--threads T] [--json OUT.json] [--markdown OUT.md]
       [--depth N] [--vkquant-args ARGS] [--cache-type-k T] [--cache-type-v T] [--flash-attn on|off|auto]
       (default models: models/kjv-llama.gguf models/kjv-llama-f16.gguf;
       source scripts/lavapipe-env.sh first to run on lavapipe)
"""
import argparse
import json
import os
import platform
import re
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ("vkquant", "llama.cpp-vulkan", "llama.cpp-cpu")
PEERS = {"llama.cpp-vulkan": ("vulkan", "vulkan"), "llama.cpp-cpu": ("cpu", "cpu")}  # engine: (lib folder, backend)

# ggml type ids (ggml.h, enum ggml_type) -> names, for the table only.
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
              11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
              19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
              27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"}


class Failed(Exception):
    """A step that failed: its one-line reason."""


# --- GGUF: the tensor types and the data section's size ---------------------

def gguf_weights(path):
    """(bytes of the data section, {type name: tensor count}) of a GGUF file."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # the header; large vocabularies stay well under this
        size = os.fstat(f.fileno()).st_size
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n]
        pos += n
        return s.decode("utf-8", "replace")

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise Failed(f"{path}: GGUF value type {t} unknown")

    try:
        if data[:4] != b"GGUF":
            raise Failed(f"{path}: not a GGUF file")
        pos = 4
        version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
        if version < 2:
            raise Failed(f"{path}: GGUF v{version}, v2+ expected")
        alignment = 32
        for _ in range(n_kv):
            key, t = string(), take("I")
            v = value(t)
            if key == "general.alignment":
                alignment = v
        types = {}
        for _ in range(n_tensors):
            string()
            n_dims = take("I")
            pos += 8 * n_dims
            t = take("I")
            take("Q")
            name = GGML_TYPES.get(t, f"type{t}")
            types[name] = types.get(name, 0) + 1
        start = (pos + alignment - 1) // alignment * alignment
    except struct.error:
        raise Failed(f"{path}: GGUF header cut short (or over 64 MiB)")
    return size - start, types


# --- running the engines -----------------------------------------------------

def last_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def run(cmd, env=None, timeout=3600):
    """(returncode, stdout, stderr) as text; bytes that are not UTF-8 kept as surrogates."""
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    dec = lambda b: b.decode("utf-8", "surrogateescape")
    return p.returncode, dec(p.stdout), dec(p.stderr)


def tokenize(vkq, model, text, bos):
    cmd = [vkq, "tokenize", model, "--prompt", text, "--json"] + (["--bos"] if bos else [])
    rc, out, err = run(cmd)
    if rc != 0:
        raise Failed(last_line(err))
    return json.loads(out)["ids"]


def make_prompt(vkq, model, source, n):
    """(text, ids): a prefix of `source` that vkquant turns into exactly n ids,
    BOS first where the model has one (as `vkquant run` feeds it)."""
    try:
        tokenize(vkq, model, "a", True)
        bos = True
    except Failed as e:
        if "BOS" not in str(e) and "bos" not in str(e):
            raise
        bos = False
    count = lambda k: len(tokenize(vkq, model, source[:k], bos))
    lo, hi = 1, min(len(source), 64 * n)
    if count(hi) < n:
        raise Failed(f"--text gives fewer than {n} tokens in {hi} characters")
    while lo < hi:  # the shortest prefix with at least n tokens
        mid = (lo + hi) // 2
        if count(mid) >= n:
            hi = mid
        else:
            lo = mid + 1
    for k in range(lo, min(lo + 16, len(source)) + 1):  # a merge can overshoot: look a little further
        ids = tokenize(vkq, model, source[:k], bos)
        if len(ids) == n:
            return source[:k], ids
    raise Failed(f"no prefix of --text is exactly {n} tokens")


RE_PREFILL = re.compile(r"^prefill: (\d+) tokens in ([\d.]+) s \(([\d.]+|inf) tokens/s\)", re.M)
RE_DECODE = re.compile(r"^decode: (\d+) tokens in ([\d.]+) s \(([\d.]+|inf) tokens/s\)\s*\[(.*)\]", re.M)
RE_DEVICE_WEIGHTS = re.compile(r"device bytes: weights (\d+)")
RE_DEVICE_KV = re.compile(r"keys (\d+) \(([\d.]+) bits/coordinate\), values (\d+) \(([\d.]+) bits/coordinate\)")


def vkquant_round(a, model, prompt):
    cmd = [a.vkquant, "run", model, "--prompt", prompt, "-n", str(a.gen + 1), "--temp", "0", "--warmup"]
    if a.depth:
        cmd += ["--depth", str(a.depth), "--ctx", str(a.depth + a.prompt_tokens + a.gen + 1)]
    cmd += shlex.split(a.vkquant_args)
    rc, out, err = run(cmd, timeout=a.timeout)
    if rc != 0:
        raise Failed("refused: " + last_line(err).removeprefix("vkquant: "))
    p, d = RE_PREFILL.search(err), RE_DECODE.search(err)
    if not p or not d:
        raise Failed("no prefill:/decode: lines on stderr: " + last_line(err))
    r = {"prefill_tokens": int(p[1]), "prefill_s": float(p[2]), "prefill_tokens_per_s": float(p[3]),
         "decode_tokens": int(d[1]), "decode_s": float(d[2]), "decode_tokens_per_s": float(d[3]),
         "label": d[4]}
    if w := RE_DEVICE_WEIGHTS.search(err):
        r["device_weight_bytes"] = int(w[1])
    if kv := RE_DEVICE_KV.search(err):
        r["kv_bytes"] = int(kv[1]) + int(kv[3])
        r["kv_bits"] = [float(kv[2]), float(kv[4])]
    text = out[len(prompt):] if out.startswith(prompt) else out
    r["generated_text"] = text[:-1] if text.endswith("\n") else text
    return r


def peer_round(a, engine, model, ids):
    libdir, backend = PEERS[engine]
    cmd = [a.peer, "bench", model, "--lib", os.path.join(a.lib, libdir), "--backend", backend,
           "--prompt-tokens", str(a.prompt_tokens), "--gen", str(a.gen), "--rounds", "1", "--warmup", "1",
           "--threads", str(a.threads), "--cache-type-k", a.cache_type_k, "--cache-type-v", a.cache_type_v,
           "--flash-attn", a.flash_attn]
    if a.depth:
        cmd += ["--depth", str(a.depth)]
    if ids:
        cmd += ["--tokens", ",".join(map(str, ids))]
    env = dict(os.environ)
    if backend == "vulkan":
        env["GGML_VK_VISIBLE_DEVICES"] = str(a.vk_device)
    rc, out, err = run(cmd, env=env, timeout=a.timeout)
    if rc != 0:
        raise Failed("failed: " + last_line(err))
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    load = next(l for l in lines if l.get("event") == "load")
    r = next(l for l in lines if l.get("event") == "round")
    r["device"] = load["device"]
    if "kv_bytes" in load:
        r["kv_bytes"] = load["kv_bytes"]
    return r


def roofline(a):
    """The read roofline in GB/s (vkquant bench's roofline/read case), and the device."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "roofline.json")
        rc, _, err = run([a.vkquant, "bench", "--quick", "--filter", "roofline", "--json", path], timeout=a.timeout)
        if rc != 0:
            raise Failed("vkquant bench: " + last_line(err))
        with open(path) as f:
            dev = json.load(f)["devices"][0]
    for c in dev["cases"]:
        if c["name"].startswith("roofline/read/") and c.get("ok"):
            return c["gb_per_s"], dev["device"].get("name", "?")
    raise Failed("vkquant bench: no roofline/read case")


# --- summary -------------------------------------------------------------------

def median(xs):
    return statistics.median(xs) if xs else None


def summarize(setup, models, results):
    roof_gbps = setup.get("read_roofline_gb_per_s")
    out = []
    for m in models:
        res = results[m["path"]]
        row = {"model": m["path"], "file_weight_bytes": m.get("weight_bytes"), "types": m.get("types"),
               "prompt_tokens": setup["prompt_tokens"], "gen": setup["gen"], "engines": {},
               "rounds_flat": [r for e in ENGINES for r in res[e]["rounds"]]}
        if "error" in m:
            row["error"] = m["error"]
        for e in ENGINES:
            rounds = res[e]["rounds"]
            s = {"rounds": len(rounds)}
            if res[e].get("error"):
                s["error"] = res[e]["error"]
            if rounds:
                s["prefill_tokens_per_s"] = median([r["prefill_tokens_per_s"] for r in rounds])
                s["decode_tokens_per_s"] = median([r["decode_tokens_per_s"] for r in rounds])
                for k in ("prefill", "decode"):
                    v = [r[k + "_tokens_per_s"] for r in rounds]
                    s[k + "_tokens_per_s_range"] = [min(v), max(v)]
                if m.get("weight_bytes"):
                    gbps = m["weight_bytes"] * s["decode_tokens_per_s"] / 1e9
                    s["decode_weight_gb_per_s"] = gbps
                    if roof_gbps:
                        s["of_read_roofline"] = gbps / roof_gbps
                if "greedy_match" in res[e]:
                    s["greedy_match"] = res[e]["greedy_match"]
                if "device_weight_bytes" in rounds[0]:  # vkquant's own count (its `load:` line)
                    s["device_weight_bytes"] = rounds[0]["device_weight_bytes"]
                if "kv_bytes" in rounds[0]:  # K+V cache bytes for the context each engine allocated
                    s["kv_bytes"] = rounds[0]["kv_bytes"]
            row["engines"][e] = s
        # vkquant / peer, paired by round (both ran in the same stretch of time).
        row["ratios"] = {}
        vk = {r["round"]: r for r in res["vkquant"]["rounds"]}
        for e in PEERS:
            pe = {r["round"]: r for r in res[e]["rounds"]}
            both = sorted(set(vk) & set(pe))
            if both:
                row["ratios"]["vkquant/" + e] = {
                    k: median([vk[i][k + "_tokens_per_s"] / pe[i][k + "_tokens_per_s"] for i in both])
                    for k in ("prefill", "decode")}
        out.append(row)
    return out


def without_rounds(summary):
    return [{k: v for k, v in row.items() if k != "rounds_flat"} for row in summary]


def fmt(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def markdown(setup, summary):
    L = []
    roof = setup.get("read_roofline_gb_per_s")
    if setup.get("depth"):
        L.append(f"At a context depth of {setup['depth']} positions (filled without a prefill: see the script's "
                 f"header); vkquant {setup.get('vkquant_args') or '(defaults)'}; llama.cpp K {setup['cache_type_k']}, "
                 f"V {setup['cache_type_v']}, flash attention {setup['flash_attn']}.")
    L.append(f"Prompt {setup['prompt_tokens']} tokens, {setup['gen']} greedy decodes, {setup['rounds']} interleaved "
             f"rounds, {setup['threads']} CPU threads for llama.cpp; medians over rounds (min to max in brackets).")
    L.append(f"Devices: vkquant on {setup.get('vkquant_device', '(not run)')}; llama.cpp Vulkan on "
             f"{setup.get('llama_vulkan_device', '(not run)')}. Read roofline (vkquant bench, roofline/read): "
             + (f"{roof:.2f} GB/s (before {setup['roofline_before']:.2f}, after {setup['roofline_after']:.2f})."
                if roof else "not measured."))
    loads = [r["loadavg_1min"] for row in summary for r in row["rounds_flat"]]
    if loads:
        L.append(f"1-minute load average after each run: {min(loads):.2f} to {max(loads):.2f} "
                 f"on {setup.get('cpus', '?')} CPUs (other work on the machine).")
    L.append("")
    L.append("| model | weights in file | engine | prefill tok/s | decode tok/s | decode GB/s | × read roofline |"
             " greedy tokens = vkquant's | K+V bytes |")
    L.append("|---|---|---|---:|---:|---:|---:|---|---:|")
    for row in summary:
        name = os.path.basename(row["model"])
        types = "+".join(sorted(row["types"] or {}, key=lambda t: -row["types"][t])) if row.get("types") else "?"
        wb = f"{row['file_weight_bytes'] / 1e6:.1f} MB {types}" if row.get("file_weight_bytes") else "?"
        for i, e in enumerate(ENGINES):
            s = row["engines"][e]
            first = f"{name} | {wb}" if i == 0 else " | "
            if "prefill_tokens_per_s" not in s:
                L.append(f"| {first} | {e} | {s.get('error', row.get('error', 'not run'))} | | | | |")
                continue
            frac = s.get("of_read_roofline")
            spread = lambda k: (f"{fmt(s[k + '_tokens_per_s'])} "
                                f"({fmt(s[k + '_tokens_per_s_range'][0], 0)} to {fmt(s[k + '_tokens_per_s_range'][1], 0)})")
            L.append(f"| {first} | {e} | {spread('prefill')} | {spread('decode')} | "
                     f"{fmt(s.get('decode_weight_gb_per_s'), 2)} | {fmt(frac, 2)} | "
                     f"{'-' if setup.get('depth') else s.get('greedy_match', '(reference)' if e == 'vkquant' else '-')} | "
                     f"{fmt(s.get('kv_bytes'), 0)} |")
    for row in summary:
        dev = row["engines"]["vkquant"].get("device_weight_bytes")
        if dev and row.get("file_weight_bytes") and abs(dev / row["file_weight_bytes"] - 1) > 0.01:
            L.append(f"\n{os.path.basename(row['model'])}: vkquant holds {dev / 1e6:.1f} MB of weights on the device, "
                     f"not the file's {row['file_weight_bytes'] / 1e6:.1f} MB (its GB/s above count the file's).")
    L.append("")
    L.append("| model | prefill vkquant / llama.cpp-vulkan | decode vkquant / llama.cpp-vulkan |"
             " prefill vkquant / llama.cpp-cpu | decode vkquant / llama.cpp-cpu |")
    L.append("|---|---:|---:|---:|---:|")
    for row in summary:
        r = row["ratios"]
        cell = lambda e, k: fmt(r[e][k], 2) + "×" if e in r else "-"
        L.append(f"| {os.path.basename(row['model'])} | {cell('vkquant/llama.cpp-vulkan', 'prefill')} | "
                 f"{cell('vkquant/llama.cpp-vulkan', 'decode')} | {cell('vkquant/llama.cpp-cpu', 'prefill')} | "
                 f"{cell('vkquant/llama.cpp-cpu', 'decode')} |")
    return "\n".join(L) + "\n"


# --- main ------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="GGUF files (default: the bundled kjv-llama F32 and F16)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="llama.cpp's CPU threads")
    ap.add_argument("--text", default=os.path.join(ROOT, "models/kjv-heldout.txt"), help="where the prompt is cut from")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "third_party/llamacpp/lib"), help="holds vulkan/ and cpu/")
    ap.add_argument("--vk-device", type=int, default=0, help="GGML_VK_VISIBLE_DEVICES for llama.cpp's Vulkan backend")
    ap.add_argument("--engines", default=",".join(ENGINES), help="a subset of " + ",".join(ENGINES))
    ap.add_argument("--no-roofline", action="store_true")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per process")
    ap.add_argument("--json", help="write every round and the summary here")
    ap.add_argument("--markdown", help="write the tables here (they are printed anyway)")
    ap.add_argument("--depth", type=int, default=0, help="positions in both caches before the prompt (no prefill)")
    ap.add_argument("--vkquant-args", default="", help="more `vkquant run` flags, e.g. \"--kcache 1bit --vcache q4\"")
    ap.add_argument("--cache-type-k", default="f16", help="llama.cpp's K cache type (vkq-peer --cache-type-k)")
    ap.add_argument("--cache-type-v", default="f16", help="llama.cpp's V cache type")
    ap.add_argument("--flash-attn", default="auto", choices=("on", "off", "auto"), help="llama.cpp's flash attention")
    ap.add_argument("--from-json", help="print the tables of an earlier run's --json file; run nothing")
    a = ap.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            saved = json.load(f)
        a.json = None
        report(a, saved["setup"], saved["models"], saved["rounds"])
        return
    a.models = a.models or [os.path.join(ROOT, "models/kjv-llama.gguf"), os.path.join(ROOT, "models/kjv-llama-f16.gguf")]
    a.vkquant = os.path.join(a.build, "tools/vkquant")
    a.peer = os.path.join(a.build, "tools/peer/vkq-peer")
    engines = [e for e in a.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"bench-peer: --engines: {e} is not one of {', '.join(ENGINES)}")
    if a.rounds < 1 or a.prompt_tokens < 1 or a.gen < 1:
        sys.exit("bench-peer: --rounds, --prompt-tokens and --gen must be at least 1")
    for exe, why in ((a.vkquant, "scripts/build.sh"), (a.peer, "scripts/fetch-peer.sh, then scripts/build.sh")):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench-peer: {exe} missing ({why})")
    with open(a.text, encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    t_start = time.time()

    setup = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs", "argv": sys.argv[1:],
             "cpus": os.cpu_count(), "rounds": a.rounds, "prompt_tokens": a.prompt_tokens, "gen": a.gen,
             "threads": a.threads, "depth": a.depth, "vkquant_args": a.vkquant_args, "cache_type_k": a.cache_type_k,
             "cache_type_v": a.cache_type_v, "flash_attn": a.flash_attn}
    roof = []
    if not a.no_roofline:
        try:
            gbps, dev = roofline(a)
            roof.append(gbps)
            setup["vkquant_device"] = dev
            print(f"read roofline: {gbps:.2f} GB/s on {dev}", file=sys.stderr)
        except Failed as e:
            print(f"bench-peer: roofline: {e}", file=sys.stderr)

    models, results = [], {}
    for path in a.models:
        m = {"path": path}
        models.append(m)
        results[path] = {e: {"rounds": []} for e in ENGINES}
        try:
            m["weight_bytes"], m["types"] = gguf_weights(path)
        except (OSError, Failed) as e:
            m["error"] = str(e)
        try:
            m["prompt_text"], m["prompt_ids"] = make_prompt(a.vkquant, path, source, a.prompt_tokens)
        except Failed as e:
            m["prompt_error"] = str(e)  # vkquant will refuse it; the peers use vkq-peer's fixed pattern
            m["prompt_text"], m["prompt_ids"] = source[: a.prompt_tokens], None
        for rnd in range(1, a.rounds + 1):
            for e in engines:
                res = results[path][e]
                if res.get("error"):
                    continue  # refused once: refused every round
                t0 = time.time()
                try:
                    if e == "vkquant":
                        if "prompt_error" in m:
                            raise Failed("refused: " + m["prompt_error"])
                        r = vkquant_round(a, path, m["prompt_text"])
                        if d := re.search(r"bits/coordinate\), (.*)$", r["label"]):
                            setup.setdefault("vkquant_device", d[1])
                    else:
                        r = peer_round(a, e, path, m["prompt_ids"])
                        if e == "llama.cpp-vulkan":
                            setup.setdefault("llama_vulkan_device", r["device"])
                except Failed as x:
                    res["error"] = str(x)
                    print(f"{os.path.basename(path)} round {rnd} {e}: {x}", file=sys.stderr)
                    continue
                except subprocess.TimeoutExpired:
                    res["error"] = f"failed: over --timeout {a.timeout} s"
                    continue
                r["round"] = rnd
                r["loadavg_1min"] = os.getloadavg()[0]
                res["rounds"].append(r)
                print(f"{os.path.basename(path)} round {rnd} {e}: prefill {r['prefill_tokens_per_s']:.1f} tok/s, "
                      f"decode {r['decode_tokens_per_s']:.1f} tok/s ({time.time() - t0:.1f} s)", file=sys.stderr)
        # Same greedy tokens as vkquant's (first round): both ran the same work.
        vk = results[path]["vkquant"]["rounds"]
        if vk and m["prompt_ids"]:
            try:
                want = tokenize(a.vkquant, path, vk[0]["generated_text"], False) if vk[0]["generated_text"] else []
            except Failed:
                want = None
            for e in PEERS:
                pr = results[path][e]["rounds"]
                if pr and want is not None:
                    got = pr[0]["generated"]
                    n = min(len(want), len(got))
                    same = next((i for i in range(n) if want[i] != got[i]), n)
                    results[path][e]["greedy_match"] = f"{same}/{n}"

    if not a.no_roofline:
        try:
            gbps, _ = roofline(a)
            roof.append(gbps)
            print(f"read roofline (after): {gbps:.2f} GB/s", file=sys.stderr)
        except Failed as e:
            print(f"bench-peer: roofline: {e}", file=sys.stderr)
    if len(roof) == 2:
        setup["roofline_before"], setup["roofline_after"] = roof
        setup["read_roofline_gb_per_s"] = statistics.mean(roof)
    setup["seconds"] = round(time.time() - t_start, 1)

    report(a, setup, models, results)


def report(a, setup, models, results):
    summary = summarize(setup, models, results)
    table = markdown(setup, summary)
    print(table)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(table)
    if a.json:
        for m in models:
            m.pop("prompt_text", None)
        with open(a.json, "w") as f:
            json.dump({"setup": setup, "models": models, "summary": without_rounds(summary), "rounds": results}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
