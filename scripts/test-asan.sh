#!/usr/bin/env bash
# Builds vkquant with AddressSanitizer + UndefinedBehaviorSanitizer into
# ./build-asan (RelWithDebInfo) and runs the whole ctest suite on lavapipe.
# Any sanitizer report fails the test that triggered it: UBSan halts on the
# first error, LSan checks every process for leaks at exit. tests/lsan.supp
# silences leaks inside the Vulkan loader and the Mesa driver only.
# Extra arguments go to ctest (e.g. -R Safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lavapipe-env.sh
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_C_FLAGS=$san" "-DCMAKE_CXX_FLAGS=$san" \
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null
cmake --build build-asan -j"$(nproc)"
echo "test-asan.sh: build took ${SECONDS} s"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
start=$SECONDS
(cd build-asan && ctest --output-on-failure -j"$(nproc)" "$@")
echo "test-asan.sh: suite took $((SECONDS - start)) s"
