#!/usr/bin/env bash
# Reading from the page cache: natgrad's NPY and HDF5 reads against `cat FILE > /dev/null`
# of the same file in the same run (issue 15, item 5; docs/performance.md, "Reading").
#
# usage: bash tests/bench/read/run.sh BUILD_DIR [--quick] [--rows N] [--cols P]
#                               [--reps R] [--data-dir DIR] [--out DIR] [--baseline NATGRAD]
#
#   BUILD_DIR       a Release build holding natgrad (this script builds nothing)
#   --quick         200k x 64 (about 100 MB) instead of 1M x 256 (2.06 GB): seconds
#   --rows/--cols   the generated table's size (gen:logit; the file has cols + 1 columns)
#   --reps R        reads per case (default 3); the table keeps the fastest, the log all
#   --data-dir D    where the files go (default /tmp/natgrad-read-bench); deleted at the end
#                   unless --keep-data
#   --out DIR       results directory (default tests/bench/results/read): read.csv,
#                   machine.txt and logs/
#   --baseline B    another natgrad binary (e.g. a build of an older commit): its fit's
#                   "read:" line is recorded next to this build's (how = fit-baseline)
#
# The file is generated once per format (`natgrad generate`), then read once with cat so
# that it is in the page cache (nothing is dropped). At 1 rank x 2 threads and at 2 ranks
# x 1 thread, REPS times: `cat FILE > /dev/null`, then `natgrad_bench read` (load_shard as
# `natgrad fit` calls it, the intercept's column included; wall until the last rank is
# done; user and system CPU seconds of the read summed over the ranks: page faults show
# as system time) -> how = bench. Then once `natgrad fit --max-iter 0 --no-inference`,
# whose log line "read: S s, B MB, R MB/s" (load_shard and the memory checks around it)
# -> how = fit-natgrad (and fit-baseline). GB/s are 1e9 bytes of file per second;
# ratio = read time / cat time; cat_cpu_s = cat's user + system seconds. On a shared
# machine the CPU seconds (read: user_s + sys_s) are the figures that the load leaves alone. Output: read.csv (every run), summary.txt (fastest per case).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage 0 ;; esac
ARGS="$*"
BUILD=$(cd "$1" && pwd); shift
HERE=$(cd "$(dirname "$0")" && pwd)
ROWS=1000000 COLS=256 REPS=3 DATA=/tmp/natgrad-read-bench OUT=$HERE/../results/read KEEP=0 BASELINE=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) ROWS=200000 COLS=64 ;;
    --rows) ROWS=$2; shift ;;
    --cols) COLS=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --data-dir) DATA=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep-data) KEEP=1 ;;
    --baseline) BASELINE=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift ;;
    -h|--help) usage 0 ;;
    *) echo "read/run.sh: unknown option $1" >&2; usage ;;
  esac
  shift
done
NATGRAD=$BUILD/natgrad
BENCH=$BUILD/natgrad_bench
for x in "$NATGRAD" "$BENCH"; do
  [ -x "$x" ] || { echo "read/run.sh: $x not found: build first" >&2; exit 2; }
done
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "read/run.sh: $BASELINE is not executable" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "read/run.sh: needs /usr/bin/time (Debian: apt-get install time)" >&2; exit 2; }
mkdir -p "$OUT/logs" "$DATA"
OUT=$(cd "$OUT" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$DATA"; }
trap cleanup EXIT

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname)"
  echo "cpu: $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }') x $(nproc) cores"
  echo "memory: $(free -g | awk '/Mem:/ { print $2 }') GiB"
  echo "kernel: $(uname -r); transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
  echo "natgrad: $(git -C "$HERE" describe --always --dirty 2>/dev/null || echo unknown)"
  [ -z "$BASELINE" ] || echo "baseline: $BASELINE"
  echo "command: tests/bench/read/run.sh $ARGS"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"

formats="npy hdf5"
if ! "$NATGRAD" generate --data "gen:logit:rows=2,cols=2" --out "$DATA/probe.h5" >/dev/null 2>&1; then
  formats="npy"
  echo "read/run.sh: this build has no HDF5: NPY only" >&2
fi

echo "format,how,ranks,threads,rep,file_bytes,cat_s,cat_gbs,cat_cpu_s,read_s,read_gbs,ratio,user_s,sys_s,load1" > "$OUT/read.csv"
# cat FILE > /dev/null, timed: sets CAT_S (wall) and CAT_CPU (user + system seconds).
timed_cat() {
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$DATA/cat.time" cat "$1" > /dev/null
  t1=$(date +%s.%N)
  CAT_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  CAT_CPU=$(awk '{ printf "%.2f", $1 + $2 }' "$DATA/cat.time")
}
# One record: format how ranks threads rep bytes read_s user_s sys_s (after timed_cat)
record() {
  awk -v f="$1" -v b="$2" -v r="$3" -v t="$4" -v k="$5" -v n="$6" -v cs="$CAT_S" -v cc="$CAT_CPU" -v rs="$7" \
      -v us="$8" -v ss="$9" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
      'BEGIN { printf "%s,%s,%d,%d,%d,%d,%.3f,%.2f,%s,%.3f,%.2f,%.2f,%s,%s,%s\n",
               f, b, r, t, k, n, cs, n / cs / 1e9, cc, rs, n / rs / 1e9, rs / cs, us, ss, l }' >> "$OUT/read.csv"
}
for fmt in $formats; do
  ext=$fmt; [ "$fmt" = hdf5 ] && ext=h5
  file=$DATA/read.$ext
  "$NATGRAD" generate --data "gen:logit:rows=$ROWS,cols=$COLS" --out "$file" > "$OUT/logs/generate-$fmt.log"
  bytes=$(stat -c %s "$file")
  cat "$file" > /dev/null  # into the page cache
  for layout in "1 2" "2 1"; do
    set -- $layout; ranks=$1 threads=$2
    # natgrad_bench read: load_shard alone, REPS times in one process; cat before each.
    log=$OUT/logs/$fmt-bench-np$ranks-t$threads.log
    : > "$log"
    for rep in $(seq 1 "$REPS"); do
      timed_cat "$file"
      mpirun -np "$ranks" --bind-to none "$BENCH" read --data "$file" --threads "$threads" --reps 1 >> "$log" 2>&1 ||
        { echo "read/run.sh: natgrad_bench read failed, see $log" >&2; exit 1; }
      line=$(grep '^read 1:' "$log" | tail -1)
      record "$fmt" bench "$ranks" "$threads" "$rep" "$bytes" \
        "$(echo "$line" | sed 's/^read 1: \([0-9.]*\) s wall.*/\1/')" \
        "$(echo "$line" | sed 's/.* \([0-9.]*\) s user.*/\1/')" "$(echo "$line" | sed 's/.* \([0-9.]*\) s sys.*/\1/')"
    done
    # natgrad fit's own "read:" line (load_shard and the memory checks around it), for the
    # build and the baseline: one fit each (--max-iter 0: the rest of the fit is short).
    for bin in natgrad ${BASELINE:+baseline}; do
      exe=$NATGRAD; [ "$bin" = baseline ] && exe=$BASELINE
      log=$OUT/logs/$fmt-fit-$bin-np$ranks-t$threads.log
      timed_cat "$file"
      mpirun -np "$ranks" --bind-to none "$exe" fit --data "$file" --threads "$threads" --max-iter 0 \
        --no-inference --out "$DATA/fit-out" > "$log" 2>&1 || { echo "read/run.sh: natgrad failed, see $log" >&2; exit 1; }
      read_s=$(sed -n 's/^read: \([0-9.]*\) s.*/\1/p' "$log" | head -1)
      [ -n "$read_s" ] || { echo "read/run.sh: no 'read:' line in $log" >&2; exit 1; }
      record "$fmt" "fit-$bin" "$ranks" "$threads" 1 "$bytes" "$read_s" "" ""
    done
  done
  rm -f "$file"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

# The fastest read per case; ratio = natgrad's read time / cat's time of the same file.
echo
cat "$OUT/machine.txt"
echo
{
  printf "%-5s %-14s %5s %7s %8s %8s %8s %8s %9s %6s %7s %7s\n" fmt how ranks threads "cat s" "cat GB/s" "cat cpu" \
    "read s" "read GB/s" ratio "user s" "sys s"
  awk -F, 'NR > 1 { k = $1 "," $2 "," $3 "," $4; if (!(k in best) || $10 < best[k]) { best[k] = $10; row[k] = $0 } }
           END { for (k in row) { split(row[k], v, ",");
                   printf "%-5s %-14s %5d %7d %8.3f %8.2f %8s %8.3f %9.2f %6.2f %7s %7s\n",
                          v[1], v[2], v[3], v[4], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14] } }' "$OUT/read.csv" | sort
} | tee "$OUT/summary.txt"
