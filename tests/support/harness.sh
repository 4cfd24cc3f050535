# Shared harness of the script tests (tests/cli, tests/corpus, tests/install, tests/slurm).
# Sourced, never run:  . "$(dirname "$0")/../support/harness.sh"
#
# One convention for every script: a line "ok - NAME" or "not ok - NAME: why" per check
# ("ok - NAME # SKIP why" for a check this build cannot make), then the closing line
# "N passed, M failed" from finish, which exits non-zero if a check failed or none passed.
#
# Checks:  ok NAME | bad NAME WHY | report NAME WHY ("" = ok) | skip NAME WHY, or a check
#          that collects reasons: begin_check NAME; fail WHY ...; end_check.
# Setup:   rank_script_args "$@" (NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]), or need_args,
#          use_exe and use_workdir; reap_at_once (no kill grace after a failing run).
# Runs:    run NAME ARGS... (EXE under "$MPIEXEC -n $NP --oversubscribe", bounded by
#          timeout) or run_np NAME NP ARGS...; RC, OUT, ERR, ALL and SECS describe the run.
# Reading: json_array FILE KEY, json_coefs FILE, json_num FILE KEY, tail_of FILE [LINES].
# Numbers: close_to A B RELTOL, lists_close A B TOL, coefs_close A.json B.json TOL.
# Only bash, coreutils, grep, sed and awk are used. Callers keep `set -u`.

PASSED=0
FAILED=0
SKIPPED=0

# need_args MIN "USAGE" "$@": exits 2 with the usage line when fewer than MIN arguments.
need_args() {
  local min=$1 usage=$2
  shift 2
  [ $# -ge "$min" ] || { echo "usage: $0 $usage" >&2; exit 2; }
}
# use_exe PATH: sets EXE to PATH made absolute; exits 2 when it is not an executable.
use_exe() {
  EXE=$1
  case $EXE in /*) ;; *) EXE=$(cd "$(dirname "$EXE")" && pwd)/$(basename "$EXE") ;; esac
  [ -x "$EXE" ] || { echo "natgrad executable '$EXE' not found or not executable" >&2; exit 2; }
}
# use_workdir DIR: wipes DIR (even a tree a test left unreadable), makes DIR/logs; sets W
# (absolute) and LOGS, where run keeps each invocation's output.
use_workdir() {
  if [ -d "$1" ]; then chmod -R u+rwx "$1" 2>/dev/null; fi
  rm -rf "$1"
  mkdir -p "$1/logs" || exit 2
  W=$(cd "$1" && pwd)
  LOGS=$W/logs
}

# reap_at_once: Open MPI's mpirun waits odls_base_sigkill_timeout (1 s, 2 s in practice)
# after a rank exits non-zero before it reaps the others, on every failing run. For
# scripts whose runs all end by themselves (natgrad's errors end every rank through the
# collective path), not for those that test mpirun's signal handling and its kill grace
# (tests/cli/run_checkpoint_tests.sh, tests/reliability/resources.sh). An
# OMPI_MCA_odls_base_sigkill_timeout already in the environment is kept.
reap_at_once() { export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-0}; }

# rank_script_args "$@": the arguments of a script that natgrad_add_script_test runs at
# one rank count (RANKS), NATGRAD_EXE NRANKS WORKDIR [MPIEXEC] [...]: sets EXE, NP, MPIEXEC
# (default mpiexec), W and LOGS.
rank_script_args() {
  need_args 3 "NATGRAD_EXE NRANKS WORKDIR [MPIEXEC] ..." "$@"
  use_exe "$1"
  NP=$2
  MPIEXEC=${4:-mpiexec}
  use_workdir "$3"
}

# ---------------------------------------------------------------------------
# Reporting.

ok() { echo "ok - $1"; PASSED=$((PASSED + 1)); }
bad() { echo "not ok - $1: $2"; FAILED=$((FAILED + 1)); }
# report NAME WHY: ok when WHY is empty, else not ok with WHY.
report() { if [ -z "$2" ]; then ok "$1"; else bad "$1" "$2"; fi; }
skip() { echo "ok - $1 # SKIP $2"; SKIPPED=$((SKIPPED + 1)); }

# A check that collects reasons for failure (fail, need) and reports them in end_check.
begin_check() { CHECK=$1; WHY=""; }
fail() { WHY="${WHY:+$WHY; }$1"; }
# need DESCRIPTION COMMAND...: fails the current check with DESCRIPTION if COMMAND fails.
need() {
  local desc=$1
  shift
  "$@" || fail "$desc"
}
end_check() { report "$CHECK" "$WHY"; }

# finish: the closing line; exits 0 only when no check failed and at least one passed.
finish() {
  [ "$SKIPPED" -eq 0 ] || echo "# $SKIPPED skipped"
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
  exit $?
}

# The last LINES (3) lines of a file on one line, for failure details.
tail_of() { tail -n "${2:-3}" "$1" 2>/dev/null | tr '\n' '|' | cut -c1-500; }

# ---------------------------------------------------------------------------
# Running natgrad under MPI.

# A script sets EXE (use_exe), NP, MPIEXEC and LOGS (use_workdir), and may change these:
RUN_TIMEOUT=120   # seconds before timeout stops a run (status 124)
RUN_KILL_AFTER=10 # then SIGKILL after this many more (status 137)
RUN_AS=()         # a command prefix for the run (e.g. setpriv ...)

# run_np NAME NP ARGS...: `$MPIEXEC -n NP --oversubscribe $EXE ARGS` under timeout, stdin
# closed. Sets RC (124 or 137: timed out), OUT and ERR ($LOGS/NAME.out, .err), ALL
# ($LOGS/NAME.all: both) and SECS (wall seconds, also logged in $LOGS/timings.txt).
run_np() {
  local name=$1 np=$2
  shift 2
  OUT=$LOGS/$name.out
  ERR=$LOGS/$name.err
  ALL=$LOGS/$name.all
  local t0
  t0=$(date +%s.%N)
  timeout -k "$RUN_KILL_AFTER" "$RUN_TIMEOUT" ${RUN_AS[@]+"${RUN_AS[@]}"} \
    "$MPIEXEC" -n "$np" --oversubscribe "$EXE" "$@" >"$OUT" 2>"$ERR" </dev/null
  RC=$?
  SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  echo "$name rc=$RC ${SECS}s" >>"$LOGS/timings.txt"
  cat "$OUT" "$ERR" >"$ALL"
  return "$RC"
}
# run NAME ARGS...: run_np at the script's rank count $NP.
run() {
  local name=$1
  shift
  run_np "$name" "$NP" "$@"
}
# timed_out: the last run was stopped by timeout.
timed_out() { [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; }

# expect NAME STATUS FRAGMENT...: reports check NAME on the last run: it exited with
# STATUS and its output holds every FRAGMENT (fixed strings).
expect() {
  local name=$1 want=$2 frag
  shift 2
  if [ "$RC" -ne "$want" ]; then bad "$name" "exit $RC, expected $want: $(tail_of "$ALL")"; return; fi
  for frag in "$@"; do
    if ! grep -qF -- "$frag" "$ALL"; then bad "$name" "no '$frag' in output"; return; fi
  done
  ok "$name"
}
# need_one_error FILE FRAGMENT...: fails the current check unless FILE holds
# "natgrad: error" exactly once, on a line holding every FRAGMENT; sets MSG to that line.
need_one_error() {
  local file=$1 n f
  shift
  n=$(grep -o 'natgrad: error' "$file" | wc -l)
  MSG=$(grep -m1 'natgrad: error' "$file")
  [ "$n" -eq 1 ] || fail "'natgrad: error' printed $n times (expected once; first: $MSG)"
  if [ -z "$MSG" ]; then
    fail "no error message (stderr: $(tail_of "$ERR"))"
    return
  fi
  for f in "$@"; do
    case $MSG in *"$f"*) ;; *) fail "message lacks '$f': $(printf '%s' "$MSG" | cut -c1-300)" ;; esac
  done
}

# ---------------------------------------------------------------------------
# Reading JSON (natgrad's own model.json, truth.json, checkpoints and fixtures).

# json_array FILE KEY: the array "KEY": [...] (flat), on one line without blanks.
json_array() { tr -d ' \t\r\n' 2>/dev/null <"$1" | sed -n "s/.*\"$2\":\\[\\([^]]*\\)\\].*/\\1/p"; }
json_coefs() { json_array "$1" coefficients; }
# json_num FILE KEY: the number after the first "KEY": in FILE.
json_num() { sed -n "s/.*\"$2\": *\\(-\\{0,1\\}[0-9.eE+-]*\\).*/\\1/p" "$1" 2>/dev/null | head -n 1; }

# ---------------------------------------------------------------------------
# Numbers (awk).

# close_to A B RELTOL: |A - B| <= RELTOL * |B|.
close_to() {
  awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b; exit !(d <= t * s) }'
}
# lists_close A B TOL: comma-separated lists of one non-zero length whose elements agree
# to TOL relative to max(|b|, 1).
lists_close() {
  awk -v e="$1" -v t="$2" -v tol="$3" 'BEGIN {
      ne = split(e, a, ","); nt = split(t, b, ",");
      if (ne != nt || ne == 0) exit 1
      for (i = 1; i <= ne; i++) { d = a[i] - b[i]; m = b[i] < 0 ? -b[i] : b[i];
        if ((d < 0 ? -d : d) > tol * (m > 1 ? m : 1)) exit 1 } }'
}
# coefs_close A.json B.json TOL: max |a - b| <= TOL * max |a| over the coefficients;
# prints why not.
coefs_close() {
  local a b
  a=$(json_coefs "$1") b=$(json_coefs "$2")
  [ -n "$a" ] && [ -n "$b" ] || { echo "coefficients missing in $1 or $2"; return 1; }
  awk -v a="$a" -v b="$b" -v tol="$3" 'BEGIN {
    n = split(a, x, ","); m = split(b, y, ",");
    if (n != m) { print "lengths " n " vs " m; exit 1 }
    d = 0; s = 0
    for (i = 1; i <= n; i++) { e = x[i] - y[i]; if (e < 0) e = -e; if (e > d) d = e; v = x[i] < 0 ? -x[i] : x[i]; if (v > s) s = v }
    if (d > tol * s) { printf "max difference %.3g > %g x max |coefficient| %.6g\n", d, tol, s; exit 1 } }'
}
