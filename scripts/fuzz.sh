#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang-14, ASan + UBSan) into
# ./build-fuzz, replays each committed seed corpus, then fuzzes each target:
#   scripts/fuzz.sh [smoke]         60 s per target (CI)
#   scripts/fuzz.sh long SECONDS    SECONDS per target
# Prints the executions and exec/s per target. Exits non-zero on any crash,
# leak, timeout (25 s per input: generous, for loaded machines) or input
# using over 2 GiB; the offending input is kept as
# build-fuzz/artifacts/<target>-crash-... (add it to the corpus with the fix).
# New inputs found go to build-fuzz/corpus/<target>, never into the committed
# corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-smoke}" in
  smoke) secs=60 ;;
  long) secs=${2:?usage: scripts/fuzz.sh long SECONDS} ;;
  *) echo "usage: scripts/fuzz.sh [smoke | long SECONDS]" >&2; exit 2 ;;
esac

# The whole library (no family filter: the model code links kernels of
# several families), without the tests and the tool.
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKQ_FUZZ=ON \
  -DVKQ_BUILD_TESTS=OFF -DVKQ_BUILD_TOOLS=OFF -DVKQ_ONLY_FAMILIES= \
  -DCMAKE_CXX_FLAGS=-Wno-unknown-warning-option >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_safetensors fuzz_gguf fuzz_config fuzz_tokenizer fuzz_sharded fuzz_kcache

# Each input is written to a file: keep those in memory when possible.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
# libFuzzer may leave a target without running its atexit cleanup: keep every
# target's scratch directory inside one that this script removes.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vkq-fuzz-run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
if [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer; fi

# Per target: the largest input worth trying (the seeds are a few KB).
declare -A max_len=([safetensors]=4096 [gguf]=4096 [config]=2048 [tokenizer]=8192 [sharded]=2048 [kcache]=8192)
mkdir -p build-fuzz/artifacts
status=0
for t in safetensors gguf config tokenizer sharded kcache; do
  bin=build-fuzz/tests/fuzz/fuzz_$t
  seeds=tests/fuzz/corpus/$t
  opts=(-rss_limit_mb=2048 -timeout=25 -max_len="${max_len[$t]}" -artifact_prefix="build-fuzz/artifacts/$t-")
  [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")
  log=build-fuzz/fuzz_$t.log
  # Replay: every committed input once (the regression inputs included).
  if ! "$bin" "${opts[@]}" -runs=0 "$seeds" >"$log" 2>&1; then
    echo "fuzz_$t: replaying $seeds FAILED"; tail -n 40 "$log"; status=1; continue
  fi
  mkdir -p "build-fuzz/corpus/$t"
  if "$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 "build-fuzz/corpus/$t" "$seeds" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED; status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  echo "fuzz_$t: $result, ${runs:-?} executions in ${secs} s (${rate:-?} exec/s)"
  [ "$result" = ok ] || tail -n 60 "$log"
done
exit $status
