#!/bin/sh
# Compares the two learned-rotation solvers of `vkquant gauge` on 65,536
# planted keys and on 65,536 correlated Gaussian keys (d = 128), with and
# without the FastICA warm start; prints one table row per run (docs/gauge.md).
# Usage: scripts/gauge-compare.sh [BUILD_DIR]   (default: build)
set -eu
build=${1:-build}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$build/tests/vkq_make_keys" "$dir/planted.safetensors" --kind planted --rows 65536 --d 128 --seed 1
"$build/tests/vkq_make_keys" "$dir/gaussian.safetensors" --kind gaussian --rows 65536 --d 128 --seed 1
printf '| keys | solver | warm start | SRHT | learned train | learned held-out | null held-out | iterations | learn s | gauge s (wall) |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for keys in planted gaussian; do
  for solver in procrustes radam; do
    for warm in 100 0; do
      start=$(date +%s.%N)
      "$build/tools/vkquant" gauge "$dir/$keys.safetensors" --json --solver "$solver" --warm-start "$warm" --backend cpu > "$dir/out.json"
      end=$(date +%s.%N)
      python3 - "$dir/out.json" "$keys" "$solver" "$warm" "$start" "$end" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))[0]
keys, solver, warm, start, end = sys.argv[2:7]
print(f"| {keys} | {solver} | {'on' if warm != '0' else 'off'} | {g['srht']['cos1b']:.4f} | "
      f"{g['learned_train']['cos1b']:.4f} | {g['learned_heldout']['cos1b']:.4f} | "
      f"{g['null_control']['heldout']:.4f} | {g['iters']} | {g['learn_seconds']:.1f} | {float(end) - float(start):.1f} |")
PY
    done
  done
done
