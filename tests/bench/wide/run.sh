#!/usr/bin/env bash
# Wide and sparse data (issue 13): natgrad against LIBLINEAR and scikit-learn on L2-
# regularised logistic regression, same objective, one thread each.
#
# usage: bash tests/bench/wide/run.sh BUILD_DIR [options] [DATASET...]
#
#   BUILD_DIR         a Release build holding natgrad; '-' leaves natgrad out
#   DATASET           synth-5k-20k synth-100k-200k movielens insteval (default: all four;
#                     smoke: 200 x 500; synth-1m-1m: 1e6 x 1e6, 40 per row, only when
#                     named, minutes per tool), written by prepare.sh into the data
#                     directory when missing
#   --data-dir D      default ${NATGRAD_BENCH_DATA:-$HOME/.cache/natgrad-bench}/wide
#   --out DIR         results (default tests/bench/results/wide): wide.md (the tables),
#                     wide.csv (one record per run), machine.txt, logs/
#   --timeout S       wall-clock limit of each run (default 300): a run still going is
#                     killed (timeout -k 10) and recorded as "timeout", never waited for
#   --mem-limit-gib G address-space limit of each run (ulimit -v; default 12, 0: none), so
#                     that a dense p x p allocation fails instead of taking the machine
#   --C C             LIBLINEAR's cost (default 1); natgrad gets --l2 1/C
#   --tools LIST      comma-separated, of liblinear,sklearn-lbfgs,sklearn-newton-cholesky,
#                     natgrad (default all)
#   --no-install      do not apt-get what is missing (liblinear-tools, python3-sklearn,
#                     python3-scipy, r-base-core, r-cran-dslabs, r-cran-lme4, time); a tool
#                     or dataset that is missing is then skipped
#   --keep-models     keep the fitted models under logs/ (deleted once evaluated otherwise)
#
# Environment (each has a default; set to adjust without editing):
#   NATGRAD_ARGS   natgrad fit options besides --data/--l2/--out
#                  (default: --format libsvm --family binomial --solver cg --threads 1 --no-inference)
#   NATGRAD_RANKS  rank counts to run natgrad at (default "1"; e.g. "1 2": mpirun -n 2
#                  --bind-to core, 1 thread each: the issue's 2 ranks x 1 thread target)
#   NATGRAD_TOLS   natgrad --tol values, one run each per rank count (default "default":
#                  natgrad's own, 1e-8 on the Newton decrement; e.g. "default 1e-5"; a run
#                  with --tol T is named natgrad-npN-tolT)
#   LIBLINEAR_EPS  one `liblinear-train -s 0 -e EPS` run per value (default "0.01 0.0001 1e-8":
#                  LIBLINEAR's default, and tighter ones, to see time against accuracy)
#   REFERENCE      the tool the time ratios are taken against (default liblinear-e0.0001, the
#                  fastest LIBLINEAR run that reaches the issue's 1e-8 relative objective on
#                  these datasets: see docs/performance.md)
#   SKLEARN_TOL    scikit-learn's tol (default 1e-8; max-iter 10000)
#
# Every run is one single-threaded process (OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1) timed
# whole, reading its file included, by /usr/bin/time -v (wall seconds, max RSS). Its
# answer is then evaluated, outside the timing, by one piece of code for every tool
# (wide.py objective): f(w) = 0.5 w^T w + C sum_i log(1 + exp(-y_i w^T x_i)) on the same
# file, no intercept (LIBLINEAR without -B; natgrad without --intercept; scikit-learn
# fit_intercept=False). natgrad minimises sum_i nll_i + l2/2 |theta|^2 = f / C.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
[ $# -ge 1 ] || wide_usage "$0"
case $1 in -h|--help) wide_usage "$0" 0 ;; esac
ARGS="$*"
BUILD=$1; shift
NATGRAD=
if [ "$BUILD" != - ]; then
  NATGRAD=$(cd "$BUILD" && pwd)/natgrad
  [ -x "$NATGRAD" ] || { echo "run.sh: $NATGRAD not found: build first, or pass '-'" >&2; exit 2; }
fi
DATA=${NATGRAD_BENCH_DATA:-$HOME/.cache/natgrad-bench}/wide
OUT=$HERE/../results/wide
TIMEOUT=300 MEM_GIB=12 C=1 TOOLS=liblinear,sklearn-lbfgs,sklearn-newton-cholesky,natgrad KEEP=0
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) DATA=$2; shift ;;
    --out) OUT=$2; shift ;;
    --timeout) TIMEOUT=$2; shift ;;
    --mem-limit-gib) MEM_GIB=$2; shift ;;
    --C) C=$2; shift ;;
    --tools) TOOLS=$2; shift ;;
    --no-install) WIDE_INSTALL=0 ;;
    --keep-models) KEEP=1 ;;
    -h|--help) wide_usage "$0" 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; wide_usage "$0" ;;
    *) sets+=("$1") ;;
  esac
  shift
done
[ ${#sets[@]} -gt 0 ] || sets=(synth-5k-20k synth-100k-200k movielens insteval)
NATGRAD_ARGS=${NATGRAD_ARGS:---format libsvm --family binomial --solver cg --threads 1 --no-inference}
NATGRAD_RANKS=${NATGRAD_RANKS:-1}
NATGRAD_TOLS=${NATGRAD_TOLS:-default}
LIBLINEAR_EPS=${LIBLINEAR_EPS:-0.01 0.0001 1e-8}
REFERENCE=${REFERENCE:-liblinear-e0.0001}
SKLEARN_TOL=${SKLEARN_TOL:-1e-8}
L2=$(awk -v c="$C" 'BEGIN { printf "%.17g", 1 / c }')
tool_on() { case ",$TOOLS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/logs
CSV=$OUT/wide.csv

# ---- what is needed -----------------------------------------------------------------
wide_need_tools
wide_need_python
[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; }
wide_have_python || { echo "run.sh: /usr/bin/python3 with numpy, scipy and sklearn is needed to evaluate the objectives" >&2; exit 2; }
flags=()
[ "$WIDE_INSTALL" = 1 ] || flags+=(--no-install)
[ -z "$NATGRAD" ] || flags+=(--natgrad "$NATGRAD")
bash "$HERE/prepare.sh" --data-dir "$DATA" "${flags[@]}" "${sets[@]}"
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1

# ---- the machine ----------------------------------------------------------------------
blas_core() {  # OpenBLAS's core, from natgrad's layout line (natgrad ... ; <BLAS>; hosts)
  [ -n "$NATGRAD" ] || { echo "-"; return; }
  local d
  d=$(mktemp -d)
  printf '1 1:1\n-1 2:1\n1 1:1 2:1\n-1 2:0.5\n' >"$d/t.svm"
  OMP_NUM_THREADS=1 timeout 60 "$NATGRAD" fit --no-intercept --data "$d/t.svm" --format libsvm --threads 1 --l2 1 \
    --max-iter 0 --no-inference 2>&1 | sed -n 's/^natgrad fit: [^;]*; \([^;]*\);.*/\1/p' | head -1
  rm -rf "$d"
}
MACHINE=$OUT/machine.txt
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc) cores, $(lscpu | sed -n 's/^L3 cache: *//p') L3"
  echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "natgrad: $(git -C "$HERE" describe --always --dirty 2>/dev/null || echo unknown)${NATGRAD:+ ($NATGRAD)}"
  echo "blas (natgrad's layout line): $(blas_core)"
  echo "liblinear: $(dpkg-query -W -f '${Package} ${Version}' liblinear-tools 2>/dev/null || echo -)"
  echo "python: $($WIDE_PY -c 'import sys, numpy, scipy, sklearn; print(sys.version.split()[0], "sklearn", sklearn.__version__, "scipy", scipy.__version__, "numpy", numpy.__version__)' 2>/dev/null || echo -)"
  echo "timeout: $TIMEOUT s per run; address-space limit: $([ "$MEM_GIB" = 0 ] && echo none || echo "$MEM_GIB GiB") per process"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: tests/bench/wide/run.sh $ARGS"
  echo "NATGRAD_ARGS=$NATGRAD_ARGS"
  echo "NATGRAD_RANKS=$NATGRAD_RANKS NATGRAD_TOLS=$NATGRAD_TOLS LIBLINEAR_EPS=$LIBLINEAR_EPS REFERENCE=$REFERENCE SKLEARN_TOL=$SKLEARN_TOL"
} >"$MACHINE"
cat "$MACHINE" >&2

echo "dataset,rows,cols,nnz,C,l2,tool,status,wall_s,cpu_s,max_rss_mib,timeout_s,objective,grad_inf,load1,note,command" >"$CSV"

# ---- one timed run --------------------------------------------------------------------
# run_tool DATASET TOOL CMD...: sets STATUS (ok | timeout | failed | memory) and writes
# $LOGS/DATASET.TOOL.{log,time}.
csv_field() { printf '"%s"' "${1//\"/\"\"}"; }
run_tool() {
  local ds=$1 tool=$2; shift 2
  local tag=$LOGS/$ds.$tool
  wide_log "$ds: $tool"
  local load1 rc=0
  load1=$(cut -d' ' -f1 /proc/loadavg)
  (
    [ "$MEM_GIB" = 0 ] || ulimit -v $((MEM_GIB * 1024 * 1024))
    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
    exec /usr/bin/time -v -o "$tag.time" timeout -k 10 "$TIMEOUT" "$@"
  ) >"$tag.log" 2>&1 </dev/null || rc=$?
  # natgrad prints one line per coefficient: keep the logs small (first 60 and last 20
  # lines of a long one).
  local nl
  nl=$(wc -l <"$tag.log")
  if [ "$nl" -gt 100 ]; then
    { head -n 60 "$tag.log"; echo "... ($((nl - 80)) lines left out by run.sh)"; tail -n 20 "$tag.log"; } >"$tag.log.short"
    mv "$tag.log.short" "$tag.log"
  fi
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; ++i) s = s * 60 + t[i]; printf "%.2f", s }' "$tag.time" 2>/dev/null)
  RSS=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$tag.time" 2>/dev/null)
  CPU=$(awk -F': ' '/(User|System) time \(seconds\)/ { c += $2 } END { printf "%.2f", c }' "$tag.time" 2>/dev/null)
  NOTE=
  case $rc in
    0) STATUS=ok ;;
    124|137) STATUS=timeout; NOTE="did not finish in $TIMEOUT s" ;;
    *) STATUS=failed
       NOTE="exit $rc: $(grep -v '^\s*$' "$tag.log" | grep -iv 'warning' | tail -1 | awk '{ print (length($0) > 200 ? substr($0, 1, 120) " ... " substr($0, length($0) - 70) : $0) }')"
       grep -qiE 'bad_alloc|MemoryError|Unable to allocate|cannot allocate|out of memory|not enough memory' "$tag.log" &&
         STATUS=memory NOTE="exit $rc: out of memory (address-space limit $MEM_GIB GiB): $(grep -iE -m1 'bad_alloc|MemoryError|Unable to allocate|cannot allocate|out of memory|not enough memory' "$tag.log" | cut -c1-160)" ;;
  esac
  LOAD1=$load1
  wide_log "  $STATUS, ${WALL:-?} s (CPU ${CPU:-?} s), ${RSS:-?} MiB${NOTE:+ ($NOTE)}"
}
# record DATASET TOOL OBJECTIVE_ARGS... (evaluates the answer when the run was ok)
record() {
  local ds=$1 tool=$2 cmd=$3; shift 3
  local obj="" gi=""
  if [ "$STATUS" = ok ] && [ $# -gt 0 ]; then
    local line
    if line=$("$WIDE_PY" "$HERE/wide.py" objective "$DATA/$ds.svm" --C "$C" "$@" 2>"$LOGS/$ds.$tool.objective.err"); then
      obj=$(sed -n 's/.*objective=\([^ ]*\).*/\1/p' <<<"$line")
      gi=$(sed -n 's/.*grad_inf=\([^ ]*\).*/\1/p' <<<"$line")
      rm -f "$LOGS/$ds.$tool.objective.err"
    else
      NOTE="${NOTE:+$NOTE; }no objective: $(tail -1 "$LOGS/$ds.$tool.objective.err")"
    fi
  fi
  local m
  m=$(cat "$DATA/$ds.svm.meta")
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$ds" \
    "$(sed -n 's/^rows=//p' <<<"$m")" "$(sed -n 's/^cols=//p' <<<"$m")" "$(sed -n 's/^nnz=//p' <<<"$m")" \
    "$C" "$L2" "$tool" "$STATUS" "${WALL:-}" "${CPU:-}" "${RSS:-}" "$TIMEOUT" "$obj" "$gi" "$LOAD1" \
    "$(csv_field "$NOTE")" "$(csv_field "$cmd")" >>"$CSV"
}
short() { sed "s|$DATA/|\$DATA/|g; s|$LOGS/|\$LOGS/|g; s|$HERE/|tests/bench/wide/|g; s|${NATGRAD:-@@}|natgrad|g" <<<"$*"; }

# ---- the runs -------------------------------------------------------------------------
for ds in "${sets[@]}"; do
  f=$DATA/$ds.svm
  [ -s "$f" ] && [ -s "$f.meta" ] || { wide_log "$ds: no data ($f), skipped"; continue; }
  cat "$f" >/dev/null  # every tool starts with the file in the page cache
  if tool_on liblinear; then
    if command -v liblinear-train >/dev/null; then
      for e in $LIBLINEAR_EPS; do
        t=liblinear-e$e model=$LOGS/$ds.$t.model
        cmd=(liblinear-train -s 0 -c "$C" -e "$e" "$f" "$model")
        run_tool "$ds" "$t" "${cmd[@]}"
        record "$ds" "$t" "$(short "${cmd[*]}")" --liblinear "$model"
        [ $KEEP = 1 ] || rm -f "$model"
      done
    else wide_log "liblinear-train missing: skipped"; fi
  fi
  for s in lbfgs newton-cholesky; do
    tool_on "sklearn-$s" || continue
    t=sklearn-$s coef=$LOGS/$ds.$t.npy
    cmd=("$WIDE_PY" "$HERE/wide.py" sklearn "$f" --solver "$s" --C "$C" --tol "$SKLEARN_TOL" --max-iter 10000 --coef "$coef")
    run_tool "$ds" "$t" "${cmd[@]}"
    [ "$STATUS" != ok ] || NOTE=$(grep -E '^load_s=' "$LOGS/$ds.$t.log" | tail -1)
    record "$ds" "$t" "$(short "${cmd[*]}")" --npy "$coef"
    [ $KEEP = 1 ] || rm -f "$coef"
  done
  if tool_on natgrad && [ -n "$NATGRAD" ]; then
    for np in $NATGRAD_RANKS; do
     for tol in $NATGRAD_TOLS; do
      t=natgrad-np$np tolarg=()
      [ "$tol" = default ] || { t=$t-tol$tol; tolarg=(--tol "$tol"); }
      dir=$LOGS/$ds.$t.out
      rm -rf "$dir"
      # shellcheck disable=SC2206
      cmd=("$NATGRAD" fit --no-intercept --data "$f" --l2 "$L2" $NATGRAD_ARGS "${tolarg[@]}" --out "$dir")
      [ "$np" = 1 ] || cmd=("${MPIEXEC:-mpirun}" -n "$np" --bind-to core "${cmd[@]}")
      run_tool "$ds" "$t" "${cmd[@]}"
      if [ "$STATUS" = ok ]; then
        NOTE="$(sed -n 's/.*"reason": "\([^"]*\)".*/reason \1/p' "$dir/model.json" | head -1), $(sed -n 's/.*"iterations": \([0-9]*\).*/\1 iterations/p' "$dir/model.json" | head -1)"
      fi
      record "$ds" "$t" "$(short "${cmd[*]}")" --natgrad "$dir/model.json"
      [ $KEEP = 1 ] || rm -f "$dir/model.json" "$dir/summary.txt"
     done
    done
  fi
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$MACHINE"

# ---- the tables -----------------------------------------------------------------------
{
  echo "# Wide and sparse data: natgrad against LIBLINEAR and scikit-learn (issue 13)"
  echo
  echo "Written by \`tests/bench/wide/run.sh\`. One thread per run; wall and CPU (user + system) seconds"
  echo "of the whole process (start-up and reading the LIBSVM file included; on a shared machine the CPU"
  echo "seconds are the steadier measure, load1 the 1-minute load average before the run); f(w) = 0.5 w^T w + C sum log(1 + exp(-y w^T x)) evaluated"
  echo "for every tool by \`wide.py objective\`; the gap is relative to the smallest f of the dataset;"
  echo "time ratios against \`$REFERENCE\`."
  echo
  echo '```'
  cat "$MACHINE"
  echo '```'
  "$WIDE_PY" "$HERE/wide.py" table "$CSV" --reference "$REFERENCE"
} >"$OUT/wide.md"
cat "$OUT/wide.md"
