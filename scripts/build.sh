#!/usr/bin/env bash
# Configures and builds vkquant into ./build (Release, warnings as errors).
# Extra arguments go to the CMake configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DVKQ_WERROR=ON "$@"
cmake --build build -j"$(nproc)"
