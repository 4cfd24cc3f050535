#!/usr/bin/env bash
# Parse speed of the readers (docs/readers.md, "Parse speed", reports its output).
#
# usage: bash tests/bench/parse_bench.sh NATGRAD_EXE [ROWS] [COLS] [DATA_DIR] [MPIEXEC]
#   ROWS, COLS  the generated table: gen:logit:rows=ROWS,cols=COLS (default 400000 x 16),
#               a label column and COLS features, written by `natgrad generate` as CSV
#               (17 significant digits) and NPY (float64), converted to LIBSVM by awk
#               (zeros left out; gen:logit has none) and, when the build reads HDF5, as .h5
#   DATA_DIR    where the files go (default /tmp/natgrad-parse-bench; deleted at the end)
#   REPEAT=n    (environment) timed runs per case, the fastest kept (default 3)
#
# Each case runs `natgrad fit --data FILE --max-iter 0 --no-inference --quiet` under
# `MPIEXEC -n RANKS` with --threads THREADS, for 1 x 1, 1 x 2 and 2 x 1 (ranks x threads),
# and reads the "read:" line natgrad logs after loading: the wall time of load_shard on
# rank 0 (open, parse, column roles, agreement across ranks) and the file's size. The
# file is read once before the timed runs, so the page cache holds it: the numbers are
# parse speed, not disk speed. Prints one line per case and a Markdown table:
# MB/s, and MB/s per core (cores = ranks x threads); NPY and HDF5 in GB/s.
set -euo pipefail

if [ $# -lt 1 ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
fi
EXE=$1
ROWS=${2:-400000}
COLS=${3:-16}
DATA=${4:-/tmp/natgrad-parse-bench}
MPIEXEC=${5:-mpiexec}
REPEAT=${REPEAT:-3}
case $EXE in /*) ;; *) EXE=$(cd "$(dirname "$EXE")" && pwd)/$(basename "$EXE") ;; esac
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
# OpenMPI binds a rank to one core when it runs 2 ranks or fewer: its threads would share it.
export OMPI_MCA_hwloc_base_binding_policy=${OMPI_MCA_hwloc_base_binding_policy:-none}

rm -rf "$DATA"
mkdir -p "$DATA"
trap 'rm -rf "$DATA"' EXIT
SPEC=gen:logit:rows=$ROWS,cols=$COLS,seed=5
echo "# natgrad parse benchmark: $SPEC; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')); load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$EXE" generate --data "$SPEC" --out "$DATA/d.csv" >/dev/null
"$EXE" generate --data "$SPEC" --out "$DATA/d.npy" >/dev/null
awk -F, 'NR > 1 { s = $1; for (j = 2; j <= NF; j++) if ($j + 0 != 0) s = s " " (j - 1) ":" $j; print s }' \
  "$DATA/d.csv" >"$DATA/d.svm"
FILES="d.csv d.svm d.npy"
if "$EXE" generate --data "$SPEC" --out "$DATA/d.h5" >/dev/null 2>&1; then FILES="$FILES d.h5"; fi

# read_seconds FILE RANKS THREADS: the fastest "read:" time of REPEAT runs (after one
# untimed run that fills the page cache).
read_seconds() {
  local file=$1 np=$2 nt=$3 best="" k t
  for ((k = 0; k <= REPEAT; k++)); do
    t=$(OMP_NUM_THREADS=$nt "$MPIEXEC" -n "$np" "$EXE" fit --no-intercept --data "$DATA/$file" --max-iter 0 --no-inference \
      --quiet --threads "$nt" 2>&1 | sed -n 's/^read: \([0-9.]*\) s.*/\1/p')
    [ -n "$t" ] || { echo "parse_bench: no 'read:' line for $file at $np x $nt" >&2; exit 1; }
    [ "$k" -eq 0 ] && continue
    if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
  done
  echo "$best"
}

TABLE="| format | file MB | ranks x threads | read s | speed | per core |
|---|---|---|---|---|---|"
for f in $FILES; do
  mb=$(awk -v b="$(stat -c %s "$DATA/$f")" 'BEGIN { printf "%.1f", b / 1e6 }')
  case $f in *.csv) fmt=CSV ;; *.svm) fmt=LIBSVM ;; *.npy) fmt=NPY ;; *.h5) fmt=HDF5 ;; esac
  for layout in 1x1 1x2 2x1; do
    np=${layout%x*}
    nt=${layout#*x}
    s=$(read_seconds "$f" "$np" "$nt")
    line=$(awk -v mb="$mb" -v s="$s" -v c=$((np * nt)) -v fmt="$fmt" 'BEGIN {
        r = mb / s; if (fmt == "NPY" || fmt == "HDF5") printf "%.2f GB/s | %.2f GB/s", r / 1000, r / 1000 / c;
        else printf "%.0f MB/s | %.0f MB/s", r, r / c }')
    echo "$fmt $f ${mb} MB, $np rank(s) x $nt thread(s): read ${s} s, $line" | sed 's/ | /, per core /'
    TABLE="$TABLE
| $fmt | $mb | $np x $nt | $s | $line |"
  done
done
echo
echo "$TABLE"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
