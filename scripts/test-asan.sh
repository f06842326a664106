#!/usr/bin/env bash
# Builds vkquant with AddressSanitizer + UndefinedBehaviorSanitizer
# (scripts/asan-build.sh: clang-14, ./build-asan) and runs the whole ctest
# suite on lavapipe under the validation layer. Any sanitizer report fails
# the test that triggered it: UBSan halts on the first error, LSan checks
# every process for leaks at exit. tests/lsan.supp silences leaks inside the
# Vulkan loader and the Mesa driver only. Extra arguments go to ctest
# (e.g. -R Safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lavapipe-env.sh
scripts/asan-build.sh
echo "test-asan.sh: build took ${SECONDS} s"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer; fi
start=$SECONDS
(cd build-asan && ctest --output-on-failure -j"$(nproc)" "$@")
echo "test-asan.sh: suite took $((SECONDS - start)) s"
