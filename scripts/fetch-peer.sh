#!/usr/bin/env bash
# Fetches the peer: llama.cpp's prebuilt libraries (libllama, libggml-base,
# ggml's CPU and Vulkan backends) as node-llama-cpp ships them on the npm
# registry, pinned, and the matching llama.cpp source from the package's git
# bundle (for llama.h/ggml.h, and to read ggml-quants.c). Used by
# tools/peer (the llama.cpp harness of scripts/bench-peer.sh and of the
# tests that check our quantized blocks and GGUF files against ggml's own).
# Installed into third_party/llamacpp (git-ignored):
#   third_party/llamacpp/lib/vulkan   libllama + ggml with the Vulkan backend
#   third_party/llamacpp/lib/cpu      libllama + ggml CPU backends only
#   third_party/llamacpp/src          llama.cpp source at the libraries' tag
set -euo pipefail
cd "$(dirname "$0")/.."
root=third_party/llamacpp
ver=3.22.1
stamp="$root/.fetched-$ver"
if [ -f "$stamp" ]; then exit 0; fi
rm -rf "$root"
mkdir -p "$root"
# --omit=optional: node-llama-cpp lists every platform's binaries (CUDA
# among them, 540 MB) as optional dependencies; only the two named here are kept.
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --no-save --ignore-scripts --omit=optional \
  --prefix "$root/npm" node-llama-cpp@$ver @node-llama-cpp/linux-x64-vulkan@$ver @node-llama-cpp/linux-x64@$ver >/dev/null
mkdir -p "$root/lib"
ln -s ../npm/node_modules/@node-llama-cpp/linux-x64-vulkan/bins/linux-x64-vulkan "$root/lib/vulkan"
ln -s ../npm/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64 "$root/lib/cpu"
git clone -q "$root/npm/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$root/src" 2>/dev/null
test -f "$root/src/include/llama.h"
touch "$stamp"
