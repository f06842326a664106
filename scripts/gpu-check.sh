#!/usr/bin/env bash
# The checks to run when a machine with a real GPU is lent: the device, the
# long-context goals (a full 32k-token `ppl` chunk and its peak RSS, `calibrate`
# on 32k tokens of a 0.5B-shaped model, on the device and, last, with the host
# capture), one decode step's attention at
# 4k/32k/128k, decode at a 32k context against llama.cpp's Vulkan backend on
# the same file, the kernel tests under validation, and `bench --quick`.
# Needs a built tree (vkquant, vkquant_tests, vkq-synth, vkq-peer), the
# Qwen2.5-0.5B tokenizer package and, for the peer, third_party/llamacpp
# (scripts/gpu-pack.sh packs exactly these for a machine without the build
# dependencies). Every step has a time cap and the whole a budget, so a slow
# or hung step costs its cap, not the lease; each step's output goes to one
# log, its exit status and time to the summary.
#   scripts/gpu-check.sh [OUT_DIR] [BUDGET_SECONDS]   (default build/gpu-check, 540)
# VKQ_CHECK_CTX (default 32768; at least 128, calibrate's minimum for head_dim 64)
# scales the long-context steps down for a smoke run on lavapipe.
# VKQ_CHECK_STEPS (default: all) names the steps to run, e.g. "tests peer-32k"
# (devices and model always run: the others need them).
# Results: OUT_DIR/gpu-check.log (summary and every step's output),
# ppl-32k.json, attn-kv.json, peer-32k.json, bench-quick.json.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/gpu-check}
budget=${2:-540}
mkdir -p "$out"
out=$(cd "$out" && pwd)
end=$((SECONDS + budget))
log="$out/gpu-check.log"
: >"$log"
vkq=build/tools/vkquant
model=build/bench-models/Qwen2.5-0.5B/Qwen2.5-0.5B-Q8_0.gguf
ctx=${VKQ_CHECK_CTX:-32768}
work=$(mktemp -d /tmp/vkq-gpu-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

note() { echo "$*" | tee -a "$log"; }

# step NAME CAP CMD...: CMD with at most CAP seconds (fewer when the budget
# runs out), its output appended to the log, exit status and seconds noted.
step() {
  local name=$1 cap=$2
  shift 2
  if [ -n "${VKQ_CHECK_STEPS:-}" ] && [ "$name" != devices ] && [ "$name" != model ] &&
    [[ " $VKQ_CHECK_STEPS " != *" $name "* ]]; then
    note "== $name: not asked for (VKQ_CHECK_STEPS)"
    return 1
  fi
  local left=$((end - SECONDS - 5))
  ((left < cap)) && cap=$left
  if ((cap < 10)); then
    note "== $name: skipped (budget spent)"
    return 1
  fi
  echo "== $name: $*" >>"$log"
  local t0=$SECONDS rc
  timeout --kill-after=5 "$cap" "$@" >>"$log" 2>&1
  rc=$?
  note "== $name: exit $rc in $((SECONDS - t0)) s (cap $cap s)"
  return $rc
}

note "gpu-check $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(uname -n), $(nproc) CPUs, budget $budget s"
command -v nvidia-smi >/dev/null && nvidia-smi -L >>"$log" 2>&1
step devices 30 "$vkq" devices || { note "no Vulkan device: stopping"; exit 1; }

# Texts without blank lines: one document, so ppl and calibrate cut chunks at --ctx.
sed '/^$/d' models/kjv-heldout.txt >"$work/heldout-long.txt"
cat models/kjv-calib.txt models/kjv-heldout.txt | sed '/^$/d' >"$work/calib-long.txt"

[ -f "$model" ] || step model 120 env VKQ_BENCH_TYPES=q8_0 scripts/make-bench-models.sh build/bench-models Qwen2.5-0.5B

# A full 32k-token chunk: 1-bit K + q4 V; --json carries device bytes and peak RSS.
step ppl-32k 150 sh -c "$vkq ppl $model --text $work/heldout-long.txt --ctx $ctx --chunks 1 \
  --kcache 1bit --vcache q4 --json >$out/ppl-32k.json" && cat "$out/ppl-32k.json" >>"$log"

# Keys of the 0.5B-shaped model on 32k tokens (chunks of 4096), phases timed.
step calibrate-32k 240 "$vkq" calibrate "$model" --text "$work/calib-long.txt" --tokens $ctx --ctx $((ctx < 4096 ? ctx : 4096)) \
  --capture device -o "$work/qwen-32k.vkq.safetensors"

step attn-kv 90 "$vkq" bench --filter attn_kv --repeats 9 --json "$out/attn-kv.json"

if [ -x build/tools/peer/vkq-peer ] && [ -d third_party/llamacpp/lib/vulkan ]; then
  step peer-32k 150 python3 scripts/bench-peer.py "$model" --rounds 3 --prompt-tokens 16 --gen 16 --depth $((ctx - 64)) \
    --vkquant-args "--kcache 1bit --vcache q4" --cache-type-k q4_0 --cache-type-v q4_0 --flash-attn on \
    --engines vkquant,llama.cpp-vulkan --timeout 120 --json "$out/peer-32k.json"
fi

# The kernel families and the forward against the PyTorch references, on this device, under validation.
step tests 120 build/tests/vkquant_tests --gtest_brief=1 \
  '--gtest_filter=Shapes/*:Variants/*:Routing/*:Types/LinearQuant*:Types/EmbedQuant*:Fwht/*:FwhtApi.*:Limits/*:Sizes/*:Tiny/*:Styles/*:Counts/*:RefModels/RefModelVk*:RefModelsVk.*:RotateFixture.*:RotationDevice.*:VulkanTest.*:Isas/CpuKernels.*:Models/HostCapture.*'

step bench-quick 240 "$vkq" bench --quick --json "$out/bench-quick.json"

# The same calibrate with the capture on the host's cores (--capture cpu; on
# a GPU machine auto keeps the device), for the host path's figure there.
step calibrate-32k-cpu 120 "$vkq" calibrate "$model" --text "$work/calib-long.txt" --tokens $ctx \
  --ctx $((ctx < 4096 ? ctx : 4096)) --capture cpu -o "$work/qwen-32k-cpu.vkq.safetensors"
note "gpu-check: done in $SECONDS s"
