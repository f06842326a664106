#!/usr/bin/env bash
# Builds vkquant, runs the whole test suite on lavapipe under the Khronos
# validation layer, then installs the package into ./build/install and builds
# and runs examples/minimal against it through find_package(vkquant).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lavapipe-env.sh
# The suite's Vulkan tests run under the validation layer with synchronization
# validation on too (hazards fail the test); it costs ~5-10% of the suite's CPU time.
export VKQ_SYNC_VALIDATION=1
scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)")
cmake --install build --prefix build/install >/dev/null
cmake -S examples/minimal -B build/example -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
cmake --build build/example
VKQ_VALIDATION=1 build/example/vkquant_minimal
