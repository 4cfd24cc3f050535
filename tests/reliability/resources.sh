#!/usr/bin/env bash
# Resource limits and signals of `natgrad fit` (issue 12, items 5 and 6; docs/cluster.md,
# "Memory admission" and "Signals and launchers").
#
# usage: bash tests/reliability/resources.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
#
# Checks (every run bounded by a timeout, so a hang is a failure):
#  - a generator spec whose Fisher cannot fit in this machine: refused before reading,
#    one message with both numbers and the remedies, exit 1, no output directory;
#  - under `ulimit -v`: refused with the process's limit named; with --memory-check off
#    the failed allocation ends through the collective path: one message with its size;
#  - under a memory cgroup made for the test (v1 or v2, when this machine lets us create
#    one; skipped with the reason otherwise): refused, the cgroup named;
#  - at 1 rank (no launcher): SIGTERM in the middle of a slow iteration writes the last
#    completed iteration's checkpoint at once, then the fit stops with exit status 3;
#  - at 4 ranks: `mpirun -n 2` of a fit whose iterations outlast mpirun's kill grace,
#    SIGTERM to mpirun: the checkpoint is there when mpirun has killed the ranks, mpirun
#    exits 1 (Open MPI 4.1: always 1 after SIGTERM), and --resume reaches the same
#    coefficients as an uninterrupted fit; with a longer grace
#    (OMPI_MCA_odls_base_sigkill_timeout, as jobs/fit.sbatch sets) the ranks finish the
#    iteration and stop by themselves (their checkpoint at the stop's iteration, model.json
#    written).
# Every wait is on a condition (a line in the output, the process's exit) with a deadline
# far above the time it takes on the 2-core development VM, so a loaded machine is slower,
# not a failure.
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed".
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
echo "# natgrad resource tests: $EXE, $NP rank(s), work dir $W"
RUN_TIMEOUT=60

# start NAME NP ARGS...: natgrad under MPI in the background (NP 0: natgrad alone, no
# launcher); sets BG (the launcher's pid, or natgrad's), OUT and ALL.
start() {
  local name=$1 np=$2
  shift 2
  OUT=$LOGS/$name.out
  ALL=$LOGS/$name.all
  if [ "$np" -eq 0 ]; then
    "$EXE" "$@" >"$OUT" 2>"$LOGS/$name.err" </dev/null &
  else
    "$MPIEXEC" -n "$np" --oversubscribe "$EXE" "$@" >"$OUT" 2>"$LOGS/$name.err" </dev/null &
  fi
  BG=$!
}
# wait_line FILE TEXT SECONDS: until FILE contains TEXT (fails when BG ended first).
wait_line() {
  local n=0
  while [ $n -lt $(($3 * 20)) ]; do
    grep -qF -e "$2" "$1" 2>/dev/null && return 0
    kill -0 "$BG" 2>/dev/null || return 1
    sleep 0.05
    n=$((n + 1))
  done
  return 1
}
# wait_bg SECONDS: waits for BG at most SECONDS, then kills it; sets RC (124: timed out)
# and ALL (stdout then stderr of the run started last).
wait_bg() {
  local n=0
  while kill -0 "$BG" 2>/dev/null && [ $n -lt $(($1 * 10)) ]; do
    sleep 0.1
    n=$((n + 1))
  done
  if kill -0 "$BG" 2>/dev/null; then
    kill -KILL "$BG" 2>/dev/null
    wait "$BG" 2>/dev/null
    RC=124
  else
    wait "$BG"
    RC=$?
  fi
  cat "$OUT" "${OUT%.out}.err" >"$ALL"
}
ckpt_iteration() { sed -n 's/^ *"iteration": *\([0-9]*\).*/\1/p' "$1" 2>/dev/null | head -n 1; }
# need_message FRAGMENT...: the last run's output holds one "natgrad: error" line (with
# every FRAGMENT) and no per-rank or MPI abort noise.
need_message() {
  need_one_error "$ALL" "$@"
  ! grep -q 'error on rank' "$ALL" || fail "a rank failed on its own: $(grep -m1 'error on rank' "$ALL")"
  ! grep -q 'MPI_ABORT' "$ALL" || fail "MPI_Abort was called"
}

# ---------------------------------------------------------------------------
# Memory admission.

begin_check "a generator whose Fisher exceeds the machine is refused before reading, with both numbers"
run toobig fit --no-intercept --data gen:logit:rows=50,cols=200000 --solver cholesky --out "$W/toobig"
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
need_message "not enough memory" "GiB" "available" "limit:" "fewer --threads" "--fisher-sample does not reduce memory" \
  "--memory-check off"
[ "$(awk -v s="$SECS" 'BEGIN { print (s < 20) }')" = 1 ] || fail "took ${SECS}s: not refused up front"
[ ! -e "$W/toobig" ] || fail "the output directory was created"
! grep -q '^read:' "$OUT" || fail "the data were read before the refusal"
end_check

begin_check "the same fit at the issue's size (cols=40000, Fisher 12.8 GB) is refused at once"
run issue fit --no-intercept --data gen:logit:rows=50,cols=40000 --solver cholesky --out "$W/issue"
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
need_message "not enough memory for this fit"
end_check

# A fit that needs about 4 GiB per rank (8000 parameters: 0.5 GiB per p x p matrix), under
# an address-space limit of 1.5 GB (an MPI rank starts with about 0.5 GB of address space).
begin_check "ulimit -v: refused with the process's limit named, before any p x p buffer"
RUN_AS=(bash -c 'ulimit -v 1500000 && exec "$@"' ulimit)
run ulimit fit --no-intercept --data gen:logit:rows=400,cols=8000 --threads 1 --solver cholesky --out "$W/ulimit"
RUN_AS=()
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
need_message "not enough memory" "available to the process (limit: ulimit -v, RLIMIT_AS)" "rank 0 needs about"
end_check

begin_check "ulimit -v with --memory-check off: the failed allocation ends collectively, with its size"
RUN_AS=(bash -c 'ulimit -v 1500000 && exec "$@"' ulimit)
run ulimit_off fit --no-intercept --data gen:logit:rows=400,cols=12000 --threads 1 --solver cholesky --memory-check off --out "$W/ulimit_off"
RUN_AS=()
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
need_message "out of memory" "12000 parameters" "GiB"
! grep -q 'std::bad_alloc' "$ALL" || fail "a bare std::bad_alloc line: $(grep -m1 bad_alloc "$ALL")"
end_check

# A file's header announces its columns: the Fisher is admitted before the data lines are
# parsed. The CSV's second line is malformed, so a fit that got as far as parsing would
# report that line instead of the memory.
wide_csv() {  # wide_csv FILE COLS: header y,x1..x(COLS-1), then a bad line
  awk -v n="$2" 'BEGIN { printf "y"; for (j = 1; j < n; j++) printf ",x%d", j; printf "\n1,2,not-a-number\n" }' >"$1"
}
begin_check "a CSV whose header announces 40000 columns: refused before its data lines are parsed"
wide_csv "$W/wide.csv" 40000
run widecsv fit --no-intercept --data "$W/wide.csv" --solver cholesky --out "$W/widecsv"
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
need_message "not enough memory for this fit" "GiB" "--solver cg"
! grep -q 'not-a-number\|wide.csv:2' "$ALL" || fail "the data line was parsed before the refusal"
[ ! -e "$W/widecsv" ] || fail "the output directory was created"
end_check

begin_check "the same CSV with --solver cg --no-inference: admitted (no p x p matrix), the bad line reported"
run widecg fit --no-intercept --data "$W/wide.csv" --solver cg --no-inference --out "$W/widecg"
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
need_message "wide.csv:2"
! grep -q 'not enough memory' "$ALL" || fail "refused for memory: $(grep -m1 'not enough memory' "$ALL")"
end_check

begin_check "an NPY file whose header announces 40000 columns: refused before the read"
run widegen generate --data gen:logit:rows=3,cols=39999 --out "$W/wide.npy"
[ "$RC" -eq 0 ] || fail "generate: exit $RC ($(tail_of "$ALL"))"
run widenpy fit --no-intercept --data "$W/wide.npy" --solver cholesky --out "$W/widenpy"
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
need_message "not enough memory for this fit" "GiB"
! grep -q '^read:' "$OUT" || fail "the data were read before the refusal"
end_check

begin_check "--memory-check takes on or off"
run badcheck fit --no-intercept --data gen:logit:rows=100,cols=3 --memory-check maybe
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1"
need_message "--memory-check must be on or off"
end_check

begin_check "a fit that fits passes the check (and --memory-check off changes nothing)"
run fits fit --no-intercept --data gen:logit:rows=2000,cols=5 --out "$W/fits" --quiet
[ "$RC" -eq 0 ] || fail "exit $RC ($(tail_of "$ALL"))"
run fits_off fit --no-intercept --data gen:logit:rows=2000,cols=5 --out "$W/fits_off" --quiet --memory-check off
[ "$RC" -eq 0 ] || fail "exit $RC with the check off ($(tail_of "$ALL"))"
[ "$(json_coefs "$W/fits/model.json")" = "$(json_coefs "$W/fits_off/model.json")" ] || fail "coefficients differ"
end_check

# A memory cgroup of 400 MB made for this test, the launcher moved into it.
cg_dir=""
cg_limit_file=""
own=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup | head -n 1)
if [ -n "$own" ] && [ -d "/sys/fs/cgroup/memory$own" ]; then  # v1
  cg_dir=/sys/fs/cgroup/memory${own%/}/natgrad-test-$$
  cg_limit_file=memory.limit_in_bytes
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # v2
  own=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup | head -n 1)
  cg_dir=/sys/fs/cgroup${own%/}/natgrad-test-$$
  cg_limit_file=memory.max
fi
if [ -z "$cg_dir" ]; then
  skip "memory cgroup: refused, the cgroup named" "no memory cgroup (v1 or v2) found in /proc/self/cgroup"
elif ! mkdir "$cg_dir" 2>/dev/null || ! echo 400000000 >"$cg_dir/$cg_limit_file" 2>/dev/null; then
  rmdir "$cg_dir" 2>/dev/null
  skip "memory cgroup: refused, the cgroup named" "cannot create a memory cgroup under $(dirname "$cg_dir") (not root, or read-only)"
else
  begin_check "memory cgroup of 400 MB: refused before reading, the cgroup's limit named"
  RUN_AS=(bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg_dir")
  run cgroup fit --no-intercept --data gen:logit:rows=400,cols=8000 --threads 1 --solver cholesky --out "$W/cgroup"
  RUN_AS=()
  [ "$RC" -eq 1 ] || fail "exit $RC, expected 1 ($(tail_of "$ALL"))"
  need_message "not enough memory" "cgroup" "natgrad-test-$$ $cg_limit_file" "need about"
  end_check
  n=0
  while ! rmdir "$cg_dir" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
fi

# ---------------------------------------------------------------------------
# Signals. Slow iterations: one rank-1 update per row (--block-rows 1) of 900 columns,
# about 2 s per iteration on the 2-core development VM.
SLOW=(--step fixed --lr 0.5 --tol 0 --threads 1 --block-rows 1 --no-inference)

if [ "$NP" -eq 1 ]; then
  begin_check "SIGTERM at 1 rank: the last iteration's checkpoint at once, then exit 3 after the iteration"
  D=gen:logit:rows=15000,cols=900
  start term1 0 fit --no-intercept --data "$D" "${SLOW[@]}" --max-iter 1000 --out "$W/term1" --checkpoint "$W/t1.json" \
    --checkpoint-every 1000
  if wait_line "$OUT" "iter    1" 180; then
    t0=$(date +%s.%N)
    kill -TERM "$BG"
    # The line comes at once (0.09 s measured): the deadline only bounds a loaded machine.
    if wait_line "$OUT" "signal received: checkpoint of iteration" 30; then
      dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
      echo "# checkpoint line ${dt}s after SIGTERM"
      kill -0 "$BG" 2>/dev/null || fail "natgrad had already exited when the checkpoint line appeared"
      K=$(ckpt_iteration "$W/t1.json")
      [ -n "$K" ] && [ "$K" -ge 1 ] || fail "no valid checkpoint right after the line"
    else
      fail "no 'signal received: checkpoint of iteration' line within 30 s ($(tail_of "$OUT"))"
    fi
    wait_bg 120
    [ "$RC" -eq 3 ] || fail "exit status $RC, expected 3 ($(tail_of "$ALL"))"
    grep -q 'stopped on a signal at iteration' "$ALL" || fail "no 'stopped on a signal' line"
    grep -q '"reason": *"stopped: signal' "$W/term1/model.json" 2>/dev/null || fail "model.json does not say interrupted"
  else
    fail "the fit did not start ($(tail_of "$ALL"))"
    kill -KILL "$BG" 2>/dev/null
    wait_bg 5
  fi
  end_check
fi

if [ "$NP" -gt 1 ]; then
  D=gen:logit:rows=30000,cols=900
  begin_check "SIGTERM to mpirun -n 2, iterations longer than the grace: checkpoint in time, status 1, resume = uninterrupted"
  start termmp 2 fit --no-intercept --data "$D" "${SLOW[@]}" --max-iter 1000 --out "$W/termmp" --checkpoint "$W/tm.json" \
    --checkpoint-every 1000
  if wait_line "$OUT" "iter    1" 180; then
    t0=$(date +%s.%N)
    kill -TERM "$BG"
    wait_bg 90
    dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    echo "# mpirun exited ${dt}s after SIGTERM with status $RC"
    [ "$RC" -eq 1 ] || fail "mpirun exit status $RC, expected 1 (Open MPI 4.1 after SIGTERM)"
    grep -q 'signal received: checkpoint of iteration' "$OUT" || fail "no 'signal received: checkpoint' line ($(tail_of "$ALL"))"
    ! grep -q 'stopped on a signal at iteration' "$OUT" ||
      echo "# (the iteration ended within the grace: the ranks stopped by themselves)"
    K=$(ckpt_iteration "$W/tm.json")
    if [ -n "$K" ] && [ "$K" -ge 1 ]; then
      M=$((K + 1))
      # Slow iterations (about 2 s, ten times that on a loaded machine): the runs are
      # bounded by the test's own timeout rather than a tight one.
      RUN_TIMEOUT=280
      run_np tmref 2 fit --no-intercept --data "$D" "${SLOW[@]}" --max-iter "$M" --out "$W/tmref"
      [ "$RC" -eq 0 ] || fail "reference: exit $RC ($(tail_of "$ALL"))"
      run_np tmres 2 fit --no-intercept --data "$D" "${SLOW[@]}" --max-iter "$M" --out "$W/tmres" --resume "$W/tm.json"
      [ "$RC" -eq 0 ] || fail "resume: exit $RC ($(tail_of "$ALL"))"
      why=$(coefs_close "$W/tmref/model.json" "$W/tmres/model.json" 1e-12) || fail "resumed vs uninterrupted: $why"
      RUN_TIMEOUT=60
    else
      fail "no valid checkpoint after mpirun ended ($(tail_of "$ALL"))"
    fi
  else
    fail "the fit did not start ($(tail_of "$ALL"))"
    kill -KILL "$BG" 2>/dev/null
    wait_bg 5
  fi
  end_check

  # The grace check. mpirun sends the ranks SIGTERM T seconds after its own and SIGKILL T
  # seconds later; the ranks must finish the iteration in progress within those T seconds
  # and stop by themselves. Short iterations (about 0.2 s on the 2-core VM) against T = 4
  # leave a margin of 20 for a loaded machine, and a summary of 150 coefficients fits in
  # the pipe mpirun may no longer read after SIGTERM (docs/cluster.md), so the ranks exit
  # at once instead of waiting for the SIGKILL.
  begin_check "SIGTERM to mpirun with a 4 s kill grace: the ranks finish the iteration and stop by themselves"
  D=gen:logit:rows=20000,cols=150
  OMPI_MCA_odls_base_sigkill_timeout=4 start grace 2 fit --no-intercept --data "$D" "${SLOW[@]}" --max-iter 100000 --out "$W/grace" \
    --checkpoint "$W/g.json" --checkpoint-every 100000
  if wait_line "$OUT" "iter    1" 180; then
    kill -TERM "$BG"
    wait_bg 90
    echo "# mpirun exited with status $RC"
    [ "$RC" -eq 1 ] || fail "mpirun exit status $RC, expected 1 (Open MPI 4.1 after SIGTERM)"
    k=$(sed -n 's/^stopped on a signal at iteration \([0-9]*\).*/\1/p' "$OUT")
    [ -n "$k" ] || fail "the ranks did not stop by themselves ($(tail_of "$ALL"))"
    grep -q 'signal received: checkpoint of iteration' "$OUT" || fail "no 'signal received: checkpoint' line"
    [ -n "$k" ] && [ "$(ckpt_iteration "$W/g.json")" = "$k" ] ||
      fail "checkpoint iteration $(ckpt_iteration "$W/g.json"), expected the stop's iteration $k"
    grep -q '"reason": *"stopped: signal' "$W/grace/model.json" 2>/dev/null ||
      fail "model.json does not say interrupted (the ranks were killed before writing it?)"
  else
    fail "the fit did not start ($(tail_of "$ALL"))"
    kill -KILL "$BG" 2>/dev/null
    wait_bg 5
  fi
  end_check
fi

finish
