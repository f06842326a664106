#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang-14, ASan + UBSan) in
# ./build-asan (scripts/asan-build.sh), replays each committed seed corpus,
# then fuzzes each target:
#   scripts/fuzz.sh [smoke]               60 s per target (CI)
#   scripts/fuzz.sh long SECONDS          SECONDS per target
#   scripts/fuzz.sh runs N [TARGET...]    N executions per target
# Prints the executions and exec/s per target. Exits non-zero on any crash,
# leak, timeout (25 s per input: generous, for loaded machines) or input
# using over 2 GiB; the offending input is kept as
# build-asan/fuzz/artifacts/<target>-crash-... (add it to the corpus with the
# fix). New inputs found go to build-asan/fuzz/corpus/<target>, never into the
# committed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/fuzz.sh [smoke | long SECONDS | runs N [TARGET...]]"
targets=(safetensors gguf config tokenizer sharded kcache)
case "${1:-smoke}" in
  smoke) limit=(-max_total_time=60); what="in 60 s" ;;
  long) limit=(-max_total_time="${2:?$usage}"); what="in $2 s" ;;
  runs)
    limit=(-runs="${2:?$usage}"); what=""
    shift 2
    [ $# -eq 0 ] || targets=("$@") ;;
  *) echo "$usage" >&2; exit 2 ;;
esac

scripts/asan-build.sh "${targets[@]/#/fuzz_}"

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
out=build-asan/fuzz
mkdir -p $out/artifacts
# One target: replay, then fuzz; its report goes to $out/fuzz_<t>.report, and
# the function fails if the target did.
fuzz_one() {
  local t=$1 bin=build-asan/tests/fuzz/fuzz_$1 seeds=tests/fuzz/corpus/$1 log=$out/fuzz_$1.log report=$out/fuzz_$1.report
  local opts=(-rss_limit_mb=2048 -timeout=25 -max_len="${max_len[$t]}" -artifact_prefix="$out/artifacts/$t-")
  [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")
  # Replay: every committed input once (the regression inputs included).
  if ! "$bin" "${opts[@]}" -runs=0 "$seeds" >"$log" 2>&1; then
    { echo "fuzz_$t: replaying $seeds FAILED"; tail -n 40 "$log"; } >"$report"
    return 1
  fi
  mkdir -p "$out/corpus/$t"
  local start=$SECONDS result=ok
  "$bin" "${opts[@]}" "${limit[@]}" -print_final_stats=1 "$out/corpus/$t" "$seeds" >"$log" 2>&1 || result=FAILED
  local runs rate
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  echo "fuzz_$t: $result, ${runs:-?} executions ${what:-in $((SECONDS - start)) s} (${rate:-?} exec/s)" >"$report"
  [ "$result" = ok ] || { tail -n 60 "$log" >>"$report"; return 1; }
}

for t in "${targets[@]}"; do
  [ -x "build-asan/tests/fuzz/fuzz_$t" ] || { echo "fuzz.sh: no target '$t' ($usage)" >&2; exit 2; }
done
# The targets run side by side, one per core (each is one process, one
# thread); the reports are printed in the targets' order.
jobs=$(nproc)
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  rm -f "$out/fuzz_$t.report" "$out/fuzz_$t.ok"
  (fuzz_one "$t" && touch "$out/fuzz_$t.ok") &
done
wait
status=0
for t in "${targets[@]}"; do
  cat "$out/fuzz_$t.report" 2>/dev/null || echo "fuzz_$t: no report"
  [ -f "$out/fuzz_$t.ok" ] || status=1
done
exit $status
