#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ and runs each for a bounded time.
#
# usage: fuzz/run_fuzz.sh [SECONDS_PER_TARGET] [BUILD_DIR] [TARGET...]
#   SECONDS_PER_TARGET  default 20 (-max_total_time of each fuzzer)
#   BUILD_DIR           default build/fuzz (the "fuzz" preset's folder)
#   TARGET              default: fuzz_csv fuzz_libsvm
# Environment: NATGRAD_FUZZ_CXX (default clang++).
#
# Configures BUILD_DIR with -DNATGRAD_FUZZ=ON (only fuzz/ and the reader sources, with
# ASan + UBSan + libFuzzer), builds, then runs each target on its corpus folder
# BUILD_DIR/corpus/TARGET (kept between runs, so coverage accumulates) seeded from
# tests/corpus/data (*.csv for fuzz_csv, *.svm for fuzz_libsvm; each seed prefixed with the
# two option bytes the targets decode). A crash, sanitizer report or failed property
# makes the run fail: the input is saved as BUILD_DIR/artifacts/TARGET-crash-* and the
# script prints how to replay it. Exit status 0 when every target ran clean.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET=${1:-20}
BUILD=${2:-$ROOT/build/fuzz}
shift $(($# < 2 ? $# : 2))
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_csv fuzz_libsvm)
CXX=${NATGRAD_FUZZ_CXX:-clang++}
JOBS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 2)

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "run_fuzz.sh: $CXX not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
echo "# configure $BUILD with $CXX"
cmake -S "$ROOT" -B "$BUILD" -DNATGRAD_FUZZ=ON -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 ||
  { tail -n 20 "$BUILD/configure.log" >&2; exit 2; }
echo "# build ${TARGETS[*]}"
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >"$BUILD/build.log" 2>&1 ||
  { tail -n 30 "$BUILD/build.log" >&2; exit 2; }

# seeds TARGET: the stored corpus files of the target's format, with option bytes.
seeds() {
  local t=$1 dir=$BUILD/seeds/$1 ext f k=0
  case $t in fuzz_csv) ext=csv ;; fuzz_libsvm) ext=svm ;; *) ext=none ;; esac
  rm -rf "$dir"
  mkdir -p "$dir"
  for f in "$ROOT"/tests/corpus/data/*."$ext"; do
    [ -f "$f" ] || continue
    # option bytes: delimiter ',' / header auto / label 0, then 2 to 5 virtual ranks
    { printf "\\$(printf '%03o' $((k % 4 == 0 ? 0 : 64)))\\$(printf '%03o' $((k % 4)))"; head -c 6000 "$f"; } \
      >"$dir/$(basename "$f")"
    k=$((k + 1))
  done
  echo "$dir"
}

status=0
mkdir -p "$BUILD/artifacts"
# report TARGET RC: the target's verdict from its exit status and log.
report() {
  local t=$1 rc=$2 log=$BUILD/$1.log runs a
  if [ "$rc" -eq 0 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "ok - $t: ${runs:-?} inputs in ${SECONDS_PER_TARGET}s, no failure ($(ls "$BUILD/corpus/$t" | wc -l) in corpus)"
  else
    status=1
    echo "not ok - $t: see $log"
    grep -E 'ERROR|natgrad fuzz:|SUMMARY|Test unit written' "$log" | head -n 8 || tail -n 20 "$log"
    for a in "$BUILD"/artifacts/"$t"-*; do
      [ -f "$a" ] && echo "  replay: $BUILD/$t $a"
    done
  fi
}
# The targets run side by side, up to one per core (JOBS): each fuzzer is one process on
# one core, so each still gets SECONDS_PER_TARGET of fuzzing, in less wall time.
batch=()
pids=()
flush() {
  local i rc
  for i in "${!batch[@]}"; do
    rc=0
    wait "${pids[i]}" || rc=$?
    report "${batch[i]}" "$rc"
  done
  batch=()
  pids=()
}
for t in "${TARGETS[@]}"; do
  corpus=$BUILD/corpus/$t
  mkdir -p "$corpus"
  seed_dir=$(seeds "$t")
  log=$BUILD/$t.log
  echo "# $t: ${SECONDS_PER_TARGET}s, corpus $corpus, seeds $seed_dir"
  "$BUILD/$t" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" "$corpus" "$seed_dir" >"$log" 2>&1 &
  batch+=("$t")
  pids+=($!)
  [ ${#batch[@]} -lt "$JOBS" ] || flush
done
[ ${#batch[@]} -eq 0 ] || flush
exit $status
