#!/usr/bin/env bash
# The benchmark suite in one command (docs/performance.md reports its output).
#
# usage: bash tests/bench/run.sh BUILD_DIR [--quick] [--out DIR] [--data-dir DIR]
#                          [--skip-peers] [--skip-kernels] [--no-install]
#
#   BUILD_DIR     a Release build holding natgrad and natgrad_bench (this script builds
#                 nothing: cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release && cmake --build build/rel)
#   --quick       smaller sizes (kernels up to d = 1024, 200k x 128 data): a few minutes
#   --out DIR     results directory (default tests/bench/results); files written there:
#                   kernels.csv    DGEMM roofline, Fisher pass, SYRK, loss pass, Cholesky per d,
#                                  with natgrad's kernel ISA and OpenBLAS's core per record
#                   iteration.csv  one iteration's phases at 1 and 2 ranks (strong, weak scaling)
#                   e2e.csv        time to the answer, natgrad at 1 and 2 ranks and the peers
#                   projection.csv the fitted cost model projected to 64 nodes (nodes of
#                                  this machine's cores; projection-64core.csv: 64 per node)
#                   bench-kernels.png, bench-e2e.png, machine.txt, logs/
#                   e2e-all-runs.csv every end-to-end run (e2e.csv keeps the fastest)
#   --data-dir D  where the generated NPY goes (default /tmp/natgrad-bench; 2 GB full size).
#                 It is deleted at the end unless --keep-data.
#   --skip-peers / --skip-kernels   leave a part out
#   --no-install  do not apt-get the peers (python3-sklearn, python3-statsmodels,
#                 r-base-core, time) when missing; a missing peer is then skipped
#   REPEAT=n      (environment) runs of each fast end-to-end case, default 2
#   SAMPLE=f      (environment) --fisher-sample of the natgrad-ngd-sampled runs, default 0.0625
#
# Timings are wall-clock, plus CPU seconds (and, for the kernels, a 1-thread run timed by
# its CPU clock) so that results stay readable on a shared machine; the machine and its
# load are recorded in machine.txt and per run. Peers run as one process with all cores
# (OMP_NUM_THREADS = cores), natgrad at 1 rank x all cores and at 2 ranks.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage 0 ;; esac
ARGS="$*"
BUILD=$(cd "$1" && pwd); shift
HERE=$(cd "$(dirname "$0")" && pwd)
QUICK=0 OUT=$HERE/results DATA=/tmp/natgrad-bench PEERS=1 KERNELS=1 INSTALL=1 KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --data-dir) DATA=$2; shift ;;
    --skip-peers) PEERS=0 ;;
    --skip-kernels) KERNELS=0 ;;
    --no-install) INSTALL=0 ;;
    --keep-data) KEEP=1 ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
  shift
done
NATGRAD=$BUILD/natgrad
BENCH=$BUILD/natgrad_bench
for x in "$NATGRAD" "$BENCH"; do
  [ -x "$x" ] || { echo "run.sh: $x not found: build first (see the usage)" >&2; exit 2; }
done
mkdir -p "$OUT/logs" "$DATA"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/logs
CORES=$(nproc)
PY=/usr/bin/python3   # Debian's python, where python3-sklearn/statsmodels install

# Sizes. Full: the issue's 1,000,000 x 256. R's glm.fit (LINPACK QR, level-1 BLAS) and
# statsmodels (lstsq on a weighted copy: about 12x the data in memory, which would not fit
# in 24 GiB at full size) get the first rows only; their times are scaled linearly in the
# rows (every solver here costs O(N d^2) per iteration) in the plot and the summary, and
# the CSV keeps the measured rows next to the full count.
if [ $QUICK = 1 ]; then
  ROWS=200000 COLS=128 R_ROWS=10000 SM_ROWS=50000 LBFGS_ITER=100 ITER_ROWS=131072 KFLAG=--quick
else
  ROWS=1000000 COLS=256 R_ROWS=25000 SM_ROWS=100000 LBFGS_ITER=100 ITER_ROWS=524288 KFLAG=
fi
SPEC="gen:logit:rows=$ROWS,cols=$COLS,cond=1000,rho=0.9,seed=1"
NPY=$DATA/logit-${ROWS}x${COLS}.npy

# OpenMPI as root in containers, and no oversubscription surprises.
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=${MPIEXEC:-mpirun}

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

# ---- peers: install what is missing (Debian packages only) --------------------------
have_py() { "$PY" -c "import $1" >/dev/null 2>&1; }
need=()
[ -x /usr/bin/time ] || need+=(time)
if [ $PEERS = 1 ]; then
  have_py sklearn || need+=(python3-sklearn)
  have_py statsmodels || need+=(python3-statsmodels)
  command -v Rscript >/dev/null || need+=(r-base-core)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ $INSTALL = 1 ] && [ "$(id -u)" = 0 ]; then
    log "installing ${need[*]} (apt-get)"
    apt-get update -qq >"$LOGS/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$LOGS/apt.log" 2>&1 ||
      log "apt-get failed (see $LOGS/apt.log); missing peers are skipped"
  else
    log "missing: ${need[*]} (not installing); those parts are skipped"
  fi
fi
[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time is needed for peak memory (apt-get install time)" >&2; exit 2; }

# ---- the machine ---------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(hostname)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $CORES cores, $(lscpu | sed -n 's/^L3 cache: *//p') L3"
  echo "cpu family/model/stepping: $(lscpu | sed -n 's/^CPU family: *//p')/$(lscpu | sed -n 's/^Model: *//p')/$(lscpu | sed -n 's/^Stepping: *//p') ($(lscpu | sed -n 's/^Vendor ID: *//p'))"
  # natgrad's view (issue 15): the CPU's ISA family, OpenBLAS's core (OPENBLAS_VERBOSE=2
  # prints "Core: <name>" as it loads; OPENBLAS_CORETYPE is left as the caller set it), natgrad's
  # kernel family, and one DGEMM against the peak; a BLAS on an older family is named.
  OPENBLAS_VERBOSE=2 "$NATGRAD" selftest --threads "$CORES" >"$LOGS/selftest.log" 2>&1 || true
  echo "openblas: $(sed -n 's/^Core: *//p' "$LOGS/selftest.log" | head -1) (OPENBLAS_VERBOSE=2), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
  echo "natgrad header: $(sed -n 's/^natgrad selftest: //p' "$LOGS/selftest.log" | head -1)"
  echo "cpu and blas core: $(sed -n 's/^\(PASS\|WARN\)  OpenBLAS core fits the CPU.*  (\(.*\))$/\1 \2/p' "$LOGS/selftest.log")"
  echo "dgemm vs peak: $(sed -n 's/^PASS  DGEMM n=1024 rate vs peak  (\(.*\))$/\1/p' "$LOGS/selftest.log")"
  if grep -q '^WARN  OpenBLAS core' "$LOGS/selftest.log"; then
    echo "WARNING: OpenBLAS runs an older kernel family than this CPU: the DGEMM of kernels.csv"
    echo "  (best_dgemm_gflops, pct_of_dgemm) is not the best this machine can run; rerun with the"
    echo "  OPENBLAS_CORETYPE the line above names for the reference (docs/cluster.md)"
  fi
  echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "mpi: $($MPIRUN --version 2>/dev/null | head -1)"
  echo "natgrad: $(git -C "$HERE/.." describe --always --dirty 2>/dev/null || echo unknown)"
  echo "python: $($PY --version 2>&1), sklearn $($PY -c 'import sklearn; print(sklearn.__version__)' 2>/dev/null || echo -), statsmodels $($PY -c 'import statsmodels; print(statsmodels.__version__)' 2>/dev/null || echo -), numpy $($PY -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo -)"
  echo "R: $(Rscript --version 2>&1 | head -1)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: tests/bench/run.sh $ARGS"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

# ---- 1. kernels: the roofline and the Fisher pass ------------------------------------
if [ $KERNELS = 1 ]; then
  # Twice: one core timed by its CPU clock (the kernel's efficiency, unaffected by other
  # work on a shared machine), and all cores by the wall clock (the machine's rate).
  rm -f "$OUT/kernels.csv"
  log "kernels, 1 thread, CPU clock (DGEMM roofline, Fisher pass, SYRK, loss pass, Cholesky)"
  OMP_NUM_THREADS=1 "$BENCH" kernels $KFLAG --threads 1 --clock cpu --tiles 256 --csv "$OUT/kernels.csv" | tee "$LOGS/kernels.log"
  log "kernels, $CORES threads, wall clock"
  OMP_NUM_THREADS=$CORES "$BENCH" kernels $KFLAG --threads "$CORES" --tiles 256 --csv "$OUT/kernels.csv" | tee -a "$LOGS/kernels.log"
fi

# ---- 2. one iteration's phases; strong and weak scaling at 1 and 2 ranks -------------
log "iteration phases (Reduce+Bcast vs Allreduce) and scaling at 1 and 2 ranks"
rm -f "$OUT/iteration.csv"
it() {  # tag ranks threads bind args...
  local tag=$1 np=$2 th=$3 bind=$4; shift 4
  OMP_NUM_THREADS=$th "$MPIRUN" -n "$np" --bind-to "$bind" "$BENCH" iteration --threads "$th" --tag "$tag" \
    --csv "$OUT/iteration.csv" "$@" | tee -a "$LOGS/iteration.log"
}
it machine 1 "$CORES" none --cols "$COLS" --rows "$ITER_ROWS"
it strong 1 1 core --cols "$COLS" --rows "$ITER_ROWS"
it strong 2 1 core --cols "$COLS" --rows "$ITER_ROWS"
it weak 1 1 core --cols "$COLS" --rows-per-rank $((ITER_ROWS / 2))
it weak 2 1 core --cols "$COLS" --rows-per-rank $((ITER_ROWS / 2))

# ---- 3. the dataset -------------------------------------------------------------------
if [ ! -s "$NPY" ]; then
  log "generating $SPEC -> $NPY"
  "$NATGRAD" generate --data "$SPEC" --out "$NPY" --threads "$CORES" | tee "$LOGS/generate.log"
fi

E2E=$OUT/e2e.csv
ALL=$OUT/e2e-all-runs.csv
cat "$NPY" >/dev/null  # every solver starts with the file in the page cache
# wall_s: the whole process (start-up, reading, fit, natgrad's checks and inference);
# fit_s: the solver's own timer; cpu_s: user + system CPU seconds (on a shared machine a
# measure of the work that load does not inflate); load1: the 1-minute load average
# just before the run.
# The fast runs are repeated (REPEAT, default 2) and e2e.csv keeps the fastest of each;
# e2e-all-runs.csv has every run.
REPEAT=${REPEAT:-2}
echo "solver,ranks,threads,rows,rows_full,cols,wall_s,fit_s,load_s,cpu_s,iterations,grad_max,peak_rss_mib,shard_mib,mem_target_mib,load1,note" >"$ALL"

# ---- 4. natgrad at 1 and 2 ranks (strong scaling of the whole fit) --------------------
natgrad_fit() {  # label ranks threads bind data [extra fit options]
  local label=$1 np=$2 th=$3 bind=$4 data=$5; shift 5
  local tag=$LOGS/$label-np$np
  rm -rf "$tag".time.* "$tag.out"
  log "natgrad fit $label: $np rank(s) x $th thread(s)"
  local load1
  load1=$(cut -d' ' -f1 /proc/loadavg)
  OMP_NUM_THREADS=$th "$MPIRUN" -n "$np" --bind-to "$bind" \
    bash -c 'exec /usr/bin/time -f "%e %M %U %S" -o "$0.time.$OMPI_COMM_WORLD_RANK" "$@"' "$tag" \
    "$NATGRAD" fit --no-intercept --data "$data" --threads "$th" --tol 1e-8 --out "$tag.out" "$@" >"$tag.log" 2>&1 ||
    { log "natgrad fit failed (see $tag.log)"; tail -5 "$tag.log"; return 0; }
  local wall rss rows cols iters gmax fit_s cpu read_s
  wall=$(cat "$tag".time.* | awk '{ if ($1 > m) m = $1 } END { print m }')
  cpu=$(cat "$tag".time.* | awk '{ c += $3 + $4 } END { printf "%.2f", c }')
  read_s=$(sed -n 's/^read: \([0-9.]*\) s.*/\1/p' "$tag.log" | head -1)
  rss=$(cat "$tag".time.* | awk '{ if ($2 > m) m = $2 } END { printf "%.1f", m / 1024 }')
  rows=$(sed -n 's/^data: .*, \([0-9]*\) rows x \([0-9]*\) columns.*/\1/p' "$tag.log")
  cols=$(sed -n 's/^data: .*, \([0-9]*\) rows x \([0-9]*\) columns.*/\2/p' "$tag.log")
  iters=$(sed -n 's/^Number of iterations: \([0-9]*\).*/\1/p' "$tag.log")
  gmax=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; ++i) h[$i] = i; next } { g = $h["grad_norm"]; s = $h["seconds"] } END { print g "," s }' "$tag.out/history.csv")
  fit_s=${gmax#*,}
  gmax=${gmax%,*}
  rm -f "$tag.out/model.json" "$tag.out/summary.txt"  # the log has the summary; keep history.csv
  # Per rank: the largest shard (rows / ranks rounded up) of label + features, float64.
  local shard target
  shard=$(awk -v n="$rows" -v p="$np" -v d="$cols" 'BEGIN { printf "%.1f", int((n + p - 1) / p) * (d + 1) * 8 / 1048576 }')
  target=$(awk -v s="$shard" -v d="$cols" 'BEGIN { printf "%.1f", 1.25 * s + 3 * d * d * 8 / 1048576 }')
  echo "natgrad-$label,$np,$th,$rows,$rows,$cols,$wall,$fit_s,$read_s,$cpu,$iters,$gmax,$rss,$shard,$target,$load1," >>"$ALL"
  log "  wall ${wall}s, fit() ${fit_s}s, $iters iterations, |g| $gmax, peak RSS ${rss} MiB/rank (target <= ${target})"
}
# Three natgrad runs: the default (the answer plus standard errors, robust standard
# errors, deviances, AIC/BIC); -no-inference (the maximum-likelihood answer only, what the
# peers compute); -sampled (the same with the Fisher from a fraction SAMPLE of the rows:
# the same answer to the same 1e-8 gradient tolerance, in cheaper iterations); -f32 (the
# answer only, the steps' Fisher summed in float32: --fisher-precision float32).
SAMPLE=${SAMPLE:-0.0625}
HALF=$((CORES / 2 > 0 ? CORES / 2 : 1))
for _ in $(seq "$REPEAT"); do
  natgrad_fit ngd 1 "$CORES" none "$NPY"
  natgrad_fit ngd 2 "$HALF" core "$NPY"
  natgrad_fit ngd-no-inference 1 "$CORES" none "$NPY" --no-inference
  natgrad_fit ngd-no-inference 2 "$HALF" core "$NPY" --no-inference
  natgrad_fit ngd-sampled 1 "$CORES" none "$NPY" --no-inference --fisher-sample "$SAMPLE"
  natgrad_fit ngd-sampled 2 "$HALF" core "$NPY" --no-inference --fisher-sample "$SAMPLE"
  natgrad_fit ngd-f32 1 "$CORES" none "$NPY" --no-inference --fisher-precision float32
  natgrad_fit ngd-f32 2 "$HALF" core "$NPY" --no-inference --fisher-precision float32
done
# One core each (natgrad and scikit-learn below): single-threaded processes, so that
# CPU seconds are the work done even when other jobs share the machine.
natgrad_fit ngd-1core 1 1 core "$NPY"
natgrad_fit ngd-no-inference-1core 1 1 core "$NPY" --no-inference
natgrad_fit ngd-sampled-1core 1 1 core "$NPY" --no-inference --fisher-sample "$SAMPLE"
natgrad_fit ngd-f32-1core 1 1 core "$NPY" --no-inference --fisher-precision float32

# ---- 5. the peers on the same file ----------------------------------------------------
peer() {  # name command...   (PEER_THREADS: threads, default all cores)
  local name=$1; shift
  local th=${PEER_THREADS:-$CORES}
  log "peer $name ($th threads)"
  local tag=$LOGS/peer-$name load1
  load1=$(cut -d' ' -f1 /proc/loadavg)
  if ! OMP_NUM_THREADS=$th OPENBLAS_NUM_THREADS=$th /usr/bin/time -f "%e %M %U %S" -o "$tag.time" "$@" >"$tag.log" 2>"$tag.err"; then
    log "  $name failed (see $tag.err)"; tail -3 "$tag.err"; return 0
  fi
  local rec wall rss cpu
  rec=$(grep -E '^[a-z.-]+,[0-9]+,' "$tag.log" | tail -1)
  wall=$(awk '{ print $1 }' "$tag.time")
  rss=$(awk '{ printf "%.1f", $2 / 1024 }' "$tag.time")
  cpu=$(awk '{ printf "%.2f", $3 + $4 }' "$tag.time")
  # rec: solver,rows,cols,load_s,fit_s,iterations,grad_max,loss,note
  echo "$rec" | awk -F, -v w="$wall" -v r="$rss" -v c="$cpu" -v full="$ROWS" -v th="$th" -v l1="$load1" -v suf="${PEER_SUFFIX:-}" \
    'BEGIN { OFS = "," } { sh = $2 * ($3 + 1) * 8 / 1048576; print $1 suf, 1, th, $2, full, $3, w, $5, $4, c, $6, $7, r, sprintf("%.1f", sh), "", l1, $9 }' >>"$ALL"
  log "  $(tail -1 "$ALL")"
}
if [ $PEERS = 1 ]; then
  if have_py sklearn; then
    for _ in $(seq "$REPEAT"); do
      peer sklearn-newton-cholesky "$PY" "$HERE/peers.py" sklearn-newton-cholesky "$NPY" --tol 1e-8
    done
    PEER_THREADS=1 PEER_SUFFIX=-1core peer sklearn-newton-cholesky-1core "$PY" "$HERE/peers.py" sklearn-newton-cholesky "$NPY" --tol 1e-8
    peer sklearn-lbfgs "$PY" "$HERE/peers.py" sklearn-lbfgs "$NPY" --tol 1e-8 --max-iter "$LBFGS_ITER"
  fi
  have_py statsmodels && peer statsmodels-irls "$PY" "$HERE/peers.py" statsmodels-irls "$NPY" --tol 1e-8 --rows "$SM_ROWS"
  command -v Rscript >/dev/null && peer r-glm.fit Rscript "$HERE/peer_glm.R" "$NPY" "$R_ROWS"
fi

# The fastest run of each (solver, ranks), in the order first run.
awk -F, 'NR == 1 { print; next } { k = $1 "," $2; if (!(k in best) || $7 < w[k]) { best[k] = $0; w[k] = $7 }; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
  END { for (i = 1; i <= n; ++i) print best[order[i]] }' "$ALL" >"$E2E"

# ---- 6. cost model, plots, summary ----------------------------------------------------
if [ -s "$OUT/kernels.csv" ]; then
  "$BENCH" project --kernels "$OUT/kernels.csv" --dims "256,4096" --cores-per-node "$CORES" \
    --csv "$OUT/projection.csv" | tee "$LOGS/projection.log"
  # The same cores, 64 to a node (a common cluster node), where communication matters more.
  "$BENCH" project --kernels "$OUT/kernels.csv" --dims "256,4096" --cores-per-node 64 \
    --csv "$OUT/projection-64core.csv" | tee "$LOGS/projection-64core.log"
  "$BENCH" plot --kernels "$OUT/kernels.csv" --e2e "$E2E" --out "$OUT/bench"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
[ $KEEP = 1 ] || rm -f "$NPY"
log "results in $OUT"
echo
echo "time to the answer (wall and CPU seconds; ratio = solver / scikit-learn newton-cholesky with the"
echo "same cores: the -1core rows against its -1core run; R and statsmodels scaled linearly to the full rows):"
awk -F, 'NR == 1 { next } { k = ($1 ~ /-1core$/) ? "1" : "all"; name[NR] = $1; grp[NR] = k; w[NR] = $7 * ($5 / $4); c[NR] = $10 * ($5 / $4)
    np[NR] = $2; g[NR] = $12; m[NR] = $13; if ($1 ~ /^sklearn-newton-cholesky/) { ref[k] = w[NR]; cref[k] = c[NR] } }
  END { for (i = 2; i <= NR; ++i) { k = grp[i]; printf "  %-32s ranks %s  wall %8.2f s  cpu %8.2f s  |g| %-10.3g  peak %8s MiB/rank%s\n",
        name[i], np[i], w[i], c[i], g[i], m[i], (ref[k] > 0 ? sprintf("  %.3fx wall, %.3fx cpu", w[i] / ref[k], c[i] / cref[k]) : "") } }' "$E2E"
