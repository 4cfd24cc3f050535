#!/usr/bin/env bash
# Failed allocations of `natgrad fit` (issue 12, item 5; docs/cluster.md, "Memory
# admission"): every std::bad_alloc ends through the collective error path.
#
# usage: bash tests/reliability/allocations.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
#
# The executable's test hook (src/cli/test_alloc.cpp, NATGRAD_TEST_ALLOC_FAIL=RANK:BYTES:N) fails the N-th operator-new request of at least BYTES bytes on
# one rank; the sweep makes N = 1, 2, ... fail in turn until a run never reaches the N-th
# (it then completes with exit 0), so every large allocation of that rank's fit is made to
# fail once: the reader's, the start system's, the collinearity check's, the workspace's,
# rank 0's Fisher and direction in the iterations, and inference's. Each failing run must
# end with exit 1, one message naming what could not be allocated and its size (with a
# pointer to this section of docs/cluster.md), no per-rank or MPI_Abort noise, no hang
# (every run is bounded by a timeout). The sweep is made on rank 0 and, with several
# ranks, on the last rank. Prints "ok - ..." / "not ok - ..." and "N passed, M failed".
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once
echo "# natgrad allocation-failure tests: $EXE, $NP rank(s), work dir $W"
RUN_TIMEOUT=60

# need_message FRAGMENT...: the last run's output holds one "natgrad: error" line (with
# every FRAGMENT) and no per-rank or MPI abort noise.
need_message() {
  need_one_error "$ALL" "$@"
  ! grep -q 'error on rank' "$ALL" || fail "a rank failed on its own: $(grep -m1 'error on rank' "$ALL")"
  ! grep -q 'MPI_ABORT' "$ALL" || fail "MPI_Abort was called"
}

# A fit with 300 parameters, two iterations, inference and the covariance in model.json.
OOM_DATA=(fit --no-intercept --data gen:logit:rows=1200,cols=300 --threads 1 --max-iter 2 --tol 0 --quiet --covariance)
OOM_BYTES=720000  # one 300 x 300 matrix of doubles: the p x p allocations and the shard
# Runs of the sweep at once: each is mostly mpirun's and the process's start-up, little CPU.
BATCH=$((NP > 1 ? 2 : 4))
# oom_sweep RANK: the sweep on RANK; fails the current check; sets STAGES (the messages)
# and SWEPT (how many allocations were made to fail). The runs N .. N+BATCH-1 go side by
# side (each has its own --out and logs) and are judged in order of N, as if one by one;
# the runs past the first that does not fire are not judged.
oom_sweep() {
  local rank=$1 n=1 why="" fired ran_out=0 k last
  STAGES=""
  while [ $n -le 60 ] && [ $ran_out -eq 0 ]; do
    last=$((n + BATCH - 1 > 60 ? 60 : n + BATCH - 1))
    for ((k = n; k <= last; k++)); do
      (
        NATGRAD_TEST_ALLOC_FAIL=$rank:$OOM_BYTES:$k run "oom_r${rank}_$k" "${OOM_DATA[@]}" --out "$W/oom_r${rank}_$k"
        echo "$RC" >"$LOGS/oom_r${rank}_$k.rc"
      ) &
    done
    wait
    for ((k = n; k <= last; k++)); do
      OUT=$LOGS/oom_r${rank}_$k.out ERR=$LOGS/oom_r${rank}_$k.err ALL=$LOGS/oom_r${rank}_$k.all
      RC=$(cat "$LOGS/oom_r${rank}_$k.rc" 2>/dev/null || echo 255)
      fired=$(grep -c '^natgrad-test: failing an allocation' "$ERR")
      if [ "$fired" -eq 0 ]; then
        [ "$RC" -eq 0 ] || why="${why:+$why; }N=$k: the hook did not fire, yet exit $RC ($(tail_of "$ALL"))"
        ran_out=1
        break
      fi
      WHY=""
      [ "$RC" -eq 1 ] || fail "N=$k: exit $RC, expected 1 ($(tail_of "$ALL"))"
      need_message "iB)" "could not be allocated" "'Memory admission' in docs/cluster.md"
      [ -z "$WHY" ] || why="${why:+$why; }N=$k: $WHY"
      STAGES="$STAGES|$MSG"
      n=$((k + 1))
    done
  done
  WHY=$why
  [ "$ran_out" -eq 1 ] || fail "more than 60 allocations of at least $OOM_BYTES bytes: the sweep did not end"
  SWEPT=$((n - 1))
}
# need_stage TEXT...: one message of the last sweep holds TEXT.
need_stage() {
  local t
  for t in "$@"; do
    case $STAGES in *"$t"*) ;; *) fail "no failure at '$t' among the $SWEPT swept allocations" ;; esac
  done
}

begin_check "every large allocation of rank 0 made to fail in turn: one collective message with its size each time"
oom_sweep 0
echo "# rank 0: $SWEPT allocations of at least $OOM_BYTES bytes made to fail"
need_stage "start system's p x p Gram" "collinearity check's work matrices" "starting values' work matrices" \
  "the normalised p x p Fisher for 300 parameters" "the direction's work matrices" "covariance and sandwich" \
  "Fisher accumulators" "matrix's accumulators" "rows x 300 features" "the report of 300 coefficients"
end_check

if [ "$NP" -gt 1 ]; then
  begin_check "every large allocation of rank $((NP - 1)) made to fail in turn: the same collective path"
  oom_sweep $((NP - 1))
  echo "# rank $((NP - 1)): $SWEPT allocations of at least $OOM_BYTES bytes made to fail"
  need_stage "out of memory on rank $((NP - 1)): the p x p Fisher accumulators" "rows x 300 features" \
    "matrix's accumulators"
  end_check
fi

finish
