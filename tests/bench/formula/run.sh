#!/usr/bin/env bash
# The formula front door against R's glm (issue 14's benchmark): AER's Fertility
# (254,654 rows, factors as text in the CSV), R and natgrad timed in the same run, plus
# lme4's InstEval fitted with its 2,972 student and 1,128 lecturer factors to show it fits.
#
# usage: bash tests/bench/formula/run.sh BUILD_DIR [--out DIR] [--data-dir D] [--reps N]
#                                          [--r-reps N] [--no-install] [--skip-insteval]
#
#   BUILD_DIR       a Release build holding natgrad
#   --out DIR       results (default tests/bench/results/formula): formula.md (the table),
#                   runs.csv (every timed run), machine.txt, logs/
#   --data-dir D    the exported CSVs (default ${NATGRAD_BENCH_DATA:-$HOME/.cache/natgrad-bench}/formula)
#   --reps N        natgrad runs per configuration, the best is reported (default 5)
#   --r-reps N      R runs of each kind, the best is reported (default 3; ~3 s each)
#   --no-install    do not apt-get r-base-core / r-cran-aer / r-cran-lme4 when missing
#   --skip-insteval only Fertility
#
# Environment:
#   NATGRAD_CONFIGS  "RANKSxTHREADS ..." (default "1x2 2x1": one rank with --threads 2, and
#                    two ranks under mpirun with --threads 1 each: both use the 2 cores)
#   MPIEXEC          default mpiexec (as root it needs OMPI_ALLOW_RUN_AS_ROOT=1 and
#                    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, set here when running as root)
#
# What is timed: R: system.time() of glm(morekids ~ gender1 * gender2 + age + afam +
# hispanic + other, family = binomial) on the data frame (data(Fertility): what an R user
# has in memory), and separately of read.csv(fertility.csv, stringsAsFactors = TRUE) + glm;
# R's default glm.control, best of --r-reps. natgrad: `natgrad fit --data fertility.csv
# --formula '...' --family binomial --threads T --quiet --out DIR` end to end (process start,
# MPI start-up, reading and coding the CSV, fitting, inference, writing model.json), wall
# clock, best of --reps. The coefficients must agree with R's (epsilon 1e-12 refit) to 1e-6
# x max(|b|, SE): else the script exits 1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage 0 ;; esac
BUILD=$1; shift
NATGRAD=$(cd "$BUILD" && pwd)/natgrad
[ -x "$NATGRAD" ] || { echo "run.sh: $NATGRAD not found: build first" >&2; exit 2; }
OUT=$HERE/../results/formula
DATA=${NATGRAD_BENCH_DATA:-$HOME/.cache/natgrad-bench}/formula
REPS=5 R_REPS=3 INSTALL=1 INSTEVAL=1
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift ;;
    --data-dir) DATA=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --r-reps) R_REPS=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --skip-insteval) INSTEVAL=0 ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
  shift
done
CONFIGS=${NATGRAD_CONFIGS:-"1x2 2x1"}
MPIEXEC=${MPIEXEC:-mpiexec}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export LC_ALL=C
mkdir -p "$OUT/logs" "$DATA"
OUT=$(cd "$OUT" && pwd)
DATA=$(cd "$DATA" && pwd)
LOGS=$OUT/logs
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
FORMULA='morekids ~ gender1 * gender2 + age + afam + hispanic + other'
IE_FORMULA='y >= 4 ~ factor(s) + factor(d) + factor(studage) + factor(lectage) + service + factor(dept)'

# --- R with AER (and lme4) -----------------------------------------------------------
have_r_pkg() { command -v Rscript >/dev/null && Rscript -e "quit(status = !requireNamespace('$1', quietly = TRUE))" >/dev/null 2>&1; }
need=()
command -v Rscript >/dev/null || need+=(r-base-core)
have_r_pkg AER || need+=(r-cran-aer)
[ "$INSTEVAL" = 0 ] || have_r_pkg lme4 || need+=(r-cran-lme4)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$INSTALL" = 0 ]; then echo "run.sh: missing ${need[*]} (--no-install given)" >&2; exit 2; fi
  SUDO=
  [ "$(id -u)" = 0 ] || SUDO=sudo
  log "installing ${need[*]} (apt-get${SUDO:+ via sudo})"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >"$LOGS/apt.log" 2>&1 ||
    { echo "run.sh: apt-get install ${need[*]} failed (see $LOGS/apt.log)" >&2; exit 2; }
fi

# --- machine -------------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(hostname)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1) x $(nproc) cores, $(lscpu | sed -n 's/^L3 cache: *//p' | head -n 1) L3"
  echo "memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "mpi: $("$MPIEXEC" --version 2>/dev/null | head -n 1)"
  echo "natgrad: $NATGRAD ($(git -C "$HERE" describe --always --dirty 2>/dev/null || echo "no git"))"
  echo "R: $(Rscript --version 2>&1 | head -n 1); AER $(Rscript -e 'cat(format(packageVersion("AER")))' 2>/dev/null)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: tests/bench/formula/run.sh $BUILD --reps $REPS --r-reps $R_REPS (NATGRAD_CONFIGS=\"$CONFIGS\")"
} >"$OUT/machine.txt"

# --- data ----------------------------------------------------------------------------
if [ ! -s "$DATA/fertility.csv" ] || [ ! -s "$DATA/insteval.csv" ]; then
  log "exporting Fertility and InstEval to $DATA"
  Rscript "$HERE/bench.R" export "$DATA" >"$LOGS/export.log" 2>&1 || { cat "$LOGS/export.log" >&2; exit 1; }
fi
[ "$(wc -l <"$DATA/fertility.csv")" -eq 254655 ] || { echo "run.sh: $DATA/fertility.csv is not 254,654 rows + header" >&2; exit 1; }

# --- R -------------------------------------------------------------------------------
log "R: glm on Fertility, $R_REPS runs on the data frame and $R_REPS with read.csv"
Rscript "$HERE/bench.R" time "$DATA" "$R_REPS" "$LOGS/r" >"$LOGS/r.log" 2>&1 || { cat "$LOGS/r.log" >&2; exit 1; }
cat "$LOGS/r.log" >&2
echo "tool,config,rep,seconds" >"$OUT/runs.csv"
tail -n +2 "$LOGS/r.times.csv" | awk -F, '{ print $1 ",R," $2 "," $3 }' >>"$OUT/runs.csv"
best() { awk -F, -v w="$1" '$1 == w && (b == "" || $4 < b) { b = $4 } END { print b }' "$OUT/runs.csv"; }
R_FIT=$(best r-glm-data-frame)
R_READ_FIT=$(best r-read.csv+glm)

# --- natgrad ---------------------------------------------------------------------------
# natgrad_run NAME RANKS THREADS DATA FORMULA [OPTION...]: one end-to-end run; prints its
# wall seconds.
natgrad_run() {
  local name=$1 np=$2 th=$3 data=$4 formula=$5 t0 t1 rc=0
  local cmd=("$NATGRAD" fit --data "$data" --formula "$formula" --family binomial --threads "$th" --quiet
             --out "$LOGS/$name" "${@:6}")
  [ "$np" = 1 ] || cmd=("$MPIEXEC" -n "$np" --oversubscribe --bind-to none "${cmd[@]}")
  t0=$(date +%s.%N)
  "${cmd[@]}" >"$LOGS/$name.out" 2>"$LOGS/$name.err" </dev/null || rc=$?
  t1=$(date +%s.%N)
  if [ $rc -ne 0 ]; then
    echo "run.sh: natgrad failed (exit $rc): ${cmd[*]}" >&2
    grep -m1 'natgrad: error' "$LOGS/$name.err" "$LOGS/$name.out" >&2 || tail -n 5 "$LOGS/$name.err" >&2
    return 1
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
declare -A NG_BEST
for cfg in $CONFIGS; do
  np=${cfg%x*} th=${cfg#*x}
  log "natgrad: $np rank(s) x $th thread(s), $REPS runs"
  for r in $(seq 1 "$REPS"); do
    s=$(natgrad_run "fertility-np$np-t$th" "$np" "$th" "$DATA/fertility.csv" "$FORMULA") || exit 1
    echo "natgrad,$cfg,$r,$s" >>"$OUT/runs.csv"
    log "  run $r: $s s"
  done
  NG_BEST[$cfg]=$(awk -F, -v c="$cfg" '$1 == "natgrad" && $2 == c && (b == "" || $4 < b) { b = $4 } END { print b }' "$OUT/runs.csv")
done

# natgrad's own header line (ranks, threads, the OpenBLAS build and core it runs).
first=${CONFIGS%% *}
echo "natgrad header: $(head -n 1 "$LOGS/fertility-np${first%x*}-t${first#*x}.out")" >>"$OUT/machine.txt"

# --- agreement with R ----------------------------------------------------------------
agree=$(python3 - "$LOGS/r.json" $(for cfg in $CONFIGS; do echo "$LOGS/fertility-np${cfg%x*}-t${cfg#*x}/model.json"; done) <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
worst = 0.0
for path in sys.argv[2:]:
    m = json.load(open(path))
    if m.get("columns") != ref["names"]:
        print("FAIL %s: columns %s, R %s" % (path, m.get("columns"), ref["names"])); sys.exit(1)
    for a, b, se in zip(m["coefficients"], ref["coefficients"], ref["std_errors"]):
        worst = max(worst, abs(a - b) / max(abs(b), se))
print("%.2e" % worst)
sys.exit(0 if worst <= 1e-6 else 1)
PY
) || { echo "run.sh: natgrad's Fertility coefficients differ from R's: $agree" >&2; exit 1; }
log "coefficients agree with R's: max |natgrad - R| / max(|R|, SE) = $agree"

# --- InstEval ------------------------------------------------------------------------
IE_LINE=
if [ "$INSTEVAL" = 1 ]; then
  log "natgrad: InstEval, $IE_FORMULA"
  np=${CONFIGS%%x*} th=${CONFIGS#*x}; th=${th%% *}
  # 29 students and 8 lecturers have every rating on one side of 4: the maximum-likelihood
  # estimate does not exist (quasi-complete separation). natgrad must say so (exit 2,
  # "separation"); with a small ridge (--l2 1e-4) the estimate is unique and the fit converges.
  rc=0
  "$NATGRAD" fit --data "$DATA/insteval.csv" --formula "$IE_FORMULA" --family binomial --threads "$th" --quiet \
    >"$LOGS/insteval-mle.out" 2>"$LOGS/insteval-mle.err" </dev/null || rc=$?
  if [ $rc -ne 2 ] || ! grep -q separation "$LOGS/insteval-mle.err" "$LOGS/insteval-mle.out"; then
    echo "run.sh: InstEval without --l2: expected the separation diagnosis (exit 2), got exit $rc" >&2
    exit 1
  fi
  log "InstEval without a penalty: separation reported (exit 2), as expected"
  s=$(natgrad_run insteval "$np" "$th" "$DATA/insteval.csv" "$IE_FORMULA" --l2 1e-4) || exit 1
  IE_LINE=$(python3 - "$LOGS/insteval/model.json" "$s" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("InstEval (73,421 rows, %d coefficients, --l2 1e-4): %s s end to end, %s iterations, %s Fisher-vector "
      "products, converged %s, deviance %s; without --l2: separation reported (29 students and 8 lecturers "
      "with every rating on one side of 4)"
      % (len(m.get("columns", [])), sys.argv[2], m.get("iterations"), m.get("fisher_products"), m.get("converged"),
         m.get("deviance")))
PY
)
  log "$IE_LINE"
fi

# --- report --------------------------------------------------------------------------
{
  echo "# natgrad --formula against R's glm: AER Fertility"
  echo
  sed 's/^/    /' "$OUT/machine.txt"
  echo
  echo "\`$FORMULA\`, binomial, 254,654 rows; the CSV holds the factors as text."
  echo
  echo "| run | best of | seconds | R glm (data frame) / this | R read.csv + glm / this |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| R glm on the data frame | $R_REPS | $R_FIT | 1.00 | |"
  echo "| R read.csv + glm | $R_REPS | $R_READ_FIT | | 1.00 |"
  for cfg in $CONFIGS; do
    b=${NG_BEST[$cfg]}
    echo "| natgrad fit from the CSV, ${cfg%x*} rank(s) x ${cfg#*x} thread(s) | $REPS | $b | $(awk -v r="$R_FIT" -v b="$b" 'BEGIN { printf "%.1fx", r / b }') | $(awk -v r="$R_READ_FIT" -v b="$b" 'BEGIN { printf "%.1fx", r / b }') |"
  done
  echo
  echo "Coefficients: max |natgrad - R| / max(|R|, SE) = $agree (R refitted at epsilon 1e-12)."
  [ -z "$IE_LINE" ] || { echo; echo "$IE_LINE"; echo "(\`$IE_FORMULA\`, binomial)"; }
  echo
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/formula.md"
cat "$OUT/formula.md"
