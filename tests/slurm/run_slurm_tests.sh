#!/usr/bin/env bash
# The jobs/ scripts on a real single-node Slurm (tests/slurm/slurm_harness.sh): each is
# submitted with sbatch and its results are compared with a plain mpirun run of the same
# fit.
#
# usage: bash tests/slurm/run_slurm_tests.sh NATGRAD_EXE SOURCE_DIR WORKDIR [MPIEXEC]
#
# Checks:
#  - jobs/fit.sbatch, LAUNCHER=mpirun and LAUNCHER=srun (--mpi=pmix): COMPLETED, exit 0,
#    the layout line, coefficients equal to `mpirun -n 2 natgrad fit` of the same fit;
#  - jobs/fit.sbatch interrupted as Slurm does before the time limit (`scancel --signal=USR1
#    --batch`, what `#SBATCH --signal=B:USR1@120` sends): natgrad checkpoints and exits 3,
#    the script requeues the job, the second run resumes, and the result equals the
#    uninterrupted mpirun fit;
#  - jobs/strong_scaling.sbatch and jobs/weak_scaling.sbatch: a CSV row per rank count and
#    a PNG.
# If Slurm cannot be started here, that is a failure (with the daemons' logs), not a skip.
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed". Every wait is bounded.
set -u
. "$(dirname "$0")/../support/harness.sh"
need_args 3 "NATGRAD_EXE SOURCE_DIR WORKDIR [MPIEXEC]" "$@"
use_exe "$1"
SRC=$(cd "$2" && pwd) MPIEXEC=${4:-mpiexec}
HARNESS=$SRC/tests/slurm/slurm_harness.sh
use_workdir "$3"
# The cluster's own directory: short (the munge socket path must fit in 108 bytes).
C=$(mktemp -d /tmp/natgrad-slurm.XXXXXX) || exit 2
cleanup() {
  bash "$HARNESS" stop "$C"
  cp -r "$C/log" "$W/slurm-logs" 2>/dev/null
  rm -rf "$C"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# natgrad Slurm tests: $EXE, cluster dir $C, work dir $W"
begin_check "start a single-node Slurm (munge, slurmctld, slurmd)"
if ! timeout 1200 bash "$HARNESS" start "$C" >"$W/harness.log" 2>&1; then
  fail "$(tail_of "$W/harness.log" 40)"
  end_check
  cat "$W/harness.log"
  finish
fi
end_check
# If this script is killed outright (ctest's timeout), a watchdog still stops the daemons.
(
  while kill -0 $$ 2>/dev/null; do sleep 2; done
  bash "$HARNESS" stop "$C"
  rm -rf "$C"
) </dev/null >/dev/null 2>&1 &
export SLURM_CONF=$C/slurm.conf PATH=$PATH:/usr/sbin

# Open MPI as root on a 2-core machine, passed through the job scripts' documented hooks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export NATGRAD_MPIRUN_FLAGS="--oversubscribe --bind-to core:overload-allowed"
export NATGRAD=$EXE
SB=(--nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=10)

# job_field ID KEY: a field of `scontrol show job`.
job_field() { scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# wait_job ID SECONDS: until the job is in a final state; prints it (TIMEOUT_WAIT if not).
wait_job() {
  local end=$((SECONDS + $2)) st
  while [ $SECONDS -lt $end ]; do
    st=$(job_field "$1" JobState)
    case $st in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$st"
        return 0 ;;
      PENDING)
        # A request this cluster can never satisfy: say so now rather than after the wait.
        case $(job_field "$1" Reason) in
          PartitionConfig | PartitionNodeLimit | PartitionTimeLimit | ReqNodeNotAvail | BadConstraints)
            echo "UNSCHEDULABLE($(job_field "$1" Reason); node: $(sinfo -h -N -o '%N cpus=%c mem=%m %T'))"
            scancel "$1" 2>/dev/null
            return 0 ;;
        esac ;;
    esac
    sleep 1
  done
  scancel "$1" 2>/dev/null
  echo "TIMEOUT_WAIT(last state ${st:-unknown})"
}
# slurm_log_lines ID: what slurmctld and slurmd logged about job ID (for a failure message).
slurm_log_lines() {
  grep -h -E "JobId=$1( |$)|job $1( |$)|\[$1\.batch\]" "$C/log/slurmctld.log" "$C/log/slurmd.log" 2>/dev/null |
    tail -n 20 | tr '\n' '|'
}
# submit NAME SCRIPT [sbatch args]: prints the job id; the log is $W/NAME.out.
submit() {
  local name=$1 script=$2
  shift 2
  (cd "$W" && sbatch --parsable "${SB[@]}" --job-name="$name" --output="$W/$name.out" "$@" "$SRC/jobs/$script") 2>"$W/$name.sbatch.err"
}

# ---------------------------------------------------------------------------
# The reference: the same fit started by mpirun outside Slurm.
DATA=gen:logit:rows=20000,cols=8,seed=5
ARGS="--intercept --max-iter 25"
begin_check "reference fit with mpirun -n 2"
timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$EXE" fit --data "$DATA" $ARGS --threads 1 --out "$W/ref" --quiet \
  >"$W/ref.log" 2>&1 </dev/null || fail "exit $? ($(tail_of "$W/ref.log"))"
end_check

check_fit_job() {
  local launcher=$1
  begin_check "sbatch jobs/fit.sbatch (LAUNCHER=$launcher) = mpirun result"
  local id st
  id=$(DATA=$DATA OUT=$W/fit-$launcher FIT_ARGS=$ARGS LAUNCHER=$launcher submit "fit-$launcher" fit.sbatch)
  if [ -z "$id" ]; then
    fail "sbatch failed: $(tail_of "$W/fit-$launcher.sbatch.err")"
  else
    st=$(wait_job "$id" 180)
    [ "$st" = COMPLETED ] || fail "job $id: $st, exit $(job_field "$id" ExitCode) ($(tail_of "$W/fit-$launcher.out" 6))"
    grep -q 'natgrad fit: 2 rank(s) on 1 node(s), 1 OpenMP thread(s) per rank' "$W/fit-$launcher.out" ||
      fail "no layout line for 2 ranks x 1 thread in the job log"
    local why
    why=$(coefs_close "$W/ref/model.json" "$W/fit-$launcher/model.json" 1e-12) || fail "$why"
  fi
  end_check
}
check_fit_job mpirun
check_fit_job srun

# ---------------------------------------------------------------------------
# Interrupted as at the time limit, requeued, resumed.
# The signal must land before the fit's last iteration: the path from scancel to the ranks
# (slurmctld, slurmd, the batch shell's trap, mpirun or srun) takes seconds on a loaded
# machine, and fast iterations (40 in about a second) lost that race. --block-rows 1 makes
# each iteration about 0.2 s on the 2-core VM, so the fit runs about 8 s after its first
# iteration, when the signal is sent.
DATA2=gen:logit:rows=200000,cols=16,seed=2
ARGS2="--no-intercept --step fixed --lr 0.5 --tol 0 --max-iter 40 --no-inference --block-rows 1"
begin_check "fit.sbatch stopped by Slurm's signal: checkpoint, requeue, resume = uninterrupted"
# KILL_GRACE=2: natgrad's ranks stop by themselves with status 3, but mpirun, seeing the
# first non-zero exit, still sleeps 2 x KILL_GRACE before it reaps the others (20 s of
# the test's wall time at the default 10); the grace itself is checked by
# reliability_resources.
id=$(DATA=$DATA2 OUT=$W/requeue FIT_ARGS=$ARGS2 CHECKPOINT_EVERY=1000 KILL_GRACE=2 submit requeue fit.sbatch)
if [ -z "$id" ]; then
  fail "sbatch failed: $(tail_of "$W/requeue.sbatch.err")"
else
  n=0
  until grep -q '^iter    1' "$W/requeue.out" 2>/dev/null || [ $n -ge 1800 ]; do sleep 0.1; n=$((n + 1)); done
  if [ $n -ge 1800 ]; then
    fail "no 'iter    1' in the job log within 180 s ($(tail_of "$W/requeue.out"))"
    scancel "$id"
  else
    scancel --signal=USR1 --batch "$id" || fail "scancel --signal=USR1 --batch failed"
    # Slurm holds a requeued batch job back for about two minutes (its begin time);
    # the test lets it start at once, the rest is as in production.
    n=0
    until [ "$(job_field "$id" Restarts)" = 1 ] && [ "$(job_field "$id" JobState)" = PENDING ] || [ $n -ge 360 ]; do
      sleep 0.5
      n=$((n + 1))
    done
    # Not in the second of the requeue, though: slurmd revoked the killed run's job
    # credential with a time stamp in whole seconds, and a credential made in that same
    # second counts as revoked too, so the rerun would be refused ("Killing non-startable
    # batch JobId=N: Job credential revoked") and the job would end FAILED without a second
    # run. Slurm's own hold exists for this; the test waits for the next second instead.
    t=$(date +%s)
    while [ "$(date +%s)" -le "$t" ]; do sleep 0.05; done
    scontrol update JobId="$id" StartTime=now 2>/dev/null
    st=$(wait_job "$id" 300)
    [ "$st" = COMPLETED ] || fail "job $id: $st ($(tail_of "$W/requeue.out" 6)); daemons: $(slurm_log_lines "$id")"
    [ "$(job_field "$id" Restarts)" = 1 ] || fail "Restarts=$(job_field "$id" Restarts), expected 1"
    grep -q 'natgrad exited with status 3' "$W/requeue.out" || fail "no 'natgrad exited with status 3' in the log"
    grep -q 'requeueing job' "$W/requeue.out" || fail "no 'requeueing job' in the log"
    grep -q 'resuming from .*checkpoint.json at iteration' "$W/requeue.out" || fail "the second run did not resume"
    timeout 300 "$MPIEXEC" -n 2 --oversubscribe "$EXE" fit --data "$DATA2" $ARGS2 --threads 1 --out "$W/ref2" --quiet \
      >"$W/ref2.log" 2>&1 </dev/null || fail "reference: exit $?"
    why=$(coefs_close "$W/ref2/model.json" "$W/requeue/model.json" 1e-12) || fail "$why"
    grep -q '"iterations": *40' "$W/requeue/model.json" || fail "the resumed fit did not reach 40 iterations"
  fi
fi
end_check

# ---------------------------------------------------------------------------
check_study() {
  local kind=$1
  shift
  begin_check "sbatch jobs/${kind}_scaling.sbatch: CSV and plot"
  local id st csv png
  id=$(export OUT="$W/$kind" ITERS=3 "$@" && submit "$kind" "${kind}_scaling.sbatch")
  if [ -z "$id" ]; then
    fail "sbatch failed: $(tail_of "$W/$kind.sbatch.err")"
  else
    st=$(wait_job "$id" 240)
    [ "$st" = COMPLETED ] || fail "job $id: $st ($(tail_of "$W/$kind.out" 6))"
    csv=$W/$kind/${kind}_scaling.csv png=$W/$kind/${kind}_scaling.png
    if [ -f "$csv" ]; then
      head -n 1 "$csv" | grep -q '^ranks,threads,rows,cols,seconds,seconds_per_iteration,iterations' ||
        fail "CSV header: $(head -n 1 "$csv")"
      [ "$(awk -F, 'NR > 1 { print $1 }' "$csv" | tr '\n' ' ')" = "1 2 " ] || fail "rank counts: $(awk -F, 'NR > 1 { print $1 }' "$csv" | tr '\n' ' ')"
      awk -F, 'NR > 1 && !($5 > 0 && $6 > 0 && $7 == 3) { bad = 1 } END { exit bad }' "$csv" || fail "bad rows: $(tr '\n' '|' <"$csv")"
    else
      fail "no $csv"
    fi
    [ "$(head -c 4 "$png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e47 ] || fail "no PNG at $png"
  fi
  end_check
}
check_study strong DATA=gen:logit:rows=40000,cols=8
check_study weak ROWS_PER_RANK=20000 COLS=8

finish
