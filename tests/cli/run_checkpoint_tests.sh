#!/usr/bin/env bash
# Checkpoint, signal and restart tests of `natgrad fit`, and the failed-rank test.
#
# usage: bash tests/cli/run_checkpoint_tests.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
#
# Checks (each natgrad run under `timeout`, so a hang is a failure):
#  - periodic checkpoints, then --resume with a higher --max-iter: the same coefficients
#    as one uninterrupted fit (1e-12 relative; in practice bit for bit);
#  - SIGUSR1 to mpirun mid-fit: exit status 3, checkpoint written, resume gives the
#    uninterrupted answer; resume at another rank count agrees to 1e-10;
#  - SIGTERM to one non-root rank only: every rank stops together (the flag travels in
#    the iteration's reduction), exit status 3;
#  - a checkpoint of other options / other data / not a checkpoint / edited by hand (its
#    checksum) / of data whose labels were swapped: one clear error; the same data under
#    another path resumes;
#  - kill -9 of one non-root rank mid-fit: the job exits non-zero within 30 s.
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed".
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
# The other rank count for the cross-layout resume.
if [ "$NP" -gt 1 ]; then NP_OTHER=1; else NP_OTHER=2; fi

# Foreground runs: run_np (tests/support/harness.sh); stdout and stderr apart in OUT and
# ERR, since mpirun may interleave the two streams mid-line.

# start NAME NP ARGS...: natgrad under MPI in the background, without a timeout (the
# waits below bound it); sets BG (the mpirun pid) and ALL (stdout and stderr).
start() {
  local name=$1 np=$2
  shift 2
  ALL=$LOGS/$name.all
  "$MPIEXEC" -n "$np" --oversubscribe "$EXE" "$@" >"$ALL" 2>&1 </dev/null &
  BG=$!
}
# wait_line FILE TEXT SECONDS: until FILE contains TEXT.
wait_line() {
  local n=0
  while [ $n -lt $(($3 * 10)) ]; do
    grep -qF -e "$2" "$1" 2>/dev/null && return 0
    kill -0 "$BG" 2>/dev/null || return 1
    sleep 0.1
    n=$((n + 1))
  done
  return 1
}
# wait_bg SECONDS: waits for BG at most SECONDS, then kills it; sets RC (124: timed out).
wait_bg() {
  local n=0
  while kill -0 "$BG" 2>/dev/null && [ $n -lt $(($1 * 10)) ]; do
    sleep 0.1
    n=$((n + 1))
  done
  if kill -0 "$BG" 2>/dev/null; then
    kill -KILL "$BG" 2>/dev/null
    pkill -KILL -P "$BG" 2>/dev/null
    wait "$BG" 2>/dev/null
    RC=124
  else
    wait "$BG"
    RC=$?
  fi
}
# rank_pid R: the pid of rank R among BG's children (Open MPI sets OMPI_COMM_WORLD_RANK).
rank_pid() {
  local c
  for c in $(pgrep -P "$BG"); do
    if tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
ckpt_iteration() { sed -n 's/^ *"iteration": *\([0-9]*\).*/\1/p' "$1" | head -n 1; }

echo "# natgrad checkpoint tests: $EXE, $NP rank(s), work dir $W"
FIXED=(--step fixed --lr 0.5 --tol 0)  # never converges early: every run takes all its iterations

# ---------------------------------------------------------------------------
begin_check "periodic checkpoints, resume with a higher --max-iter = one uninterrupted fit"
D=gen:logit:rows=20000,cols=8
run ref12 fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter 12 --out "$W/ref12" --quiet
[ "$RC" -eq 0 ] || fail "reference fit: exit $RC ($(tail_of "$ERR"))"
run part7 fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter 7 --out "$W/part7" --checkpoint "$W/p.json" --checkpoint-every 3
[ "$RC" -eq 0 ] || fail "checkpointing fit: exit $RC ($(tail_of "$ERR"))"
[ "$(grep -c '^checkpoint: iteration' "$OUT")" -eq 2 ] || fail "expected checkpoints at iterations 3 and 6: $(grep '^checkpoint' "$OUT" | tr '\n' '|')"
[ "$(ckpt_iteration "$W/p.json")" = 6 ] || fail "checkpoint iteration $(ckpt_iteration "$W/p.json"), expected 6"
run resume12 fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter 12 --out "$W/res12" --resume "$W/p.json" --quiet
[ "$RC" -eq 0 ] || fail "resumed fit: exit $RC ($(tail_of "$ERR"))"
grep -q 'resuming from .* at iteration 6' "$OUT" || fail "no 'resuming from ... at iteration 6' line"
why=$(coefs_close "$W/ref12/model.json" "$W/res12/model.json" 1e-12) || fail "resumed vs uninterrupted: $why"
[ "$(json_coefs "$W/ref12/model.json")" = "$(json_coefs "$W/res12/model.json")" ] || fail "not bit-identical (allowed, but unexpected at the same layout)"
grep -q '"iterations": *12' "$W/res12/model.json" || fail "resumed model.json: iterations is not 12"
[ "$(awk 'NR > 1' "$W/res12/history.csv" | wc -l)" -eq 13 ] || fail "resumed history.csv does not hold rows 0..12"
cut -d, -f1-7 "$W/ref12/history.csv" >"$W/h1" && cut -d, -f1-7 "$W/res12/history.csv" >"$W/h2"
cmp -s "$W/h1" "$W/h2" || fail "history.csv (without seconds) differs from the uninterrupted fit"
t=$(find "$W" -maxdepth 1 -name 'p.json.tmp.*' | head -n 1)
[ -z "$t" ] || fail "temporary checkpoint file left: $t"
end_check

# ---------------------------------------------------------------------------
begin_check "SIGUSR1 to mpirun: checkpoint, exit status 3, resume = uninterrupted"
D=gen:logit:rows=100000,cols=16
start sig "$NP" fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter 100000 --out "$W/sig" --checkpoint "$W/s.json" --checkpoint-every 1000
if wait_line "$ALL" "iter    3" 60; then
  kill -USR1 "$BG"
  wait_bg 60
  [ "$RC" -eq 3 ] || fail "exit status $RC, expected 3 ($(tail_of "$ALL"))"
  grep -q 'stopped on a signal at iteration' "$ALL" || fail "no 'stopped on a signal' line"
else
  fail "no progress line 'iter    3' within 60 s ($(tail_of "$ALL"))"
  kill -KILL "$BG" 2>/dev/null
  wait_bg 5
fi
K=$(ckpt_iteration "$W/s.json" 2>/dev/null)
if [ -n "$K" ]; then
  M=$((K + 4))
  run sigref fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter "$M" --out "$W/sigref" --quiet --no-inference
  [ "$RC" -eq 0 ] || fail "reference: exit $RC"
  run sigres fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter "$M" --out "$W/sigres" --quiet --no-inference --resume "$W/s.json"
  [ "$RC" -eq 0 ] || fail "resume: exit $RC ($(tail_of "$ERR"))"
  why=$(coefs_close "$W/sigref/model.json" "$W/sigres/model.json" 1e-12) || fail "resumed after the signal vs uninterrupted: $why"
else
  fail "no checkpoint written"
fi
end_check

begin_check "resume at $NP_OTHER rank(s) x 2 threads instead of $NP x 1 agrees to 1e-10"
if [ -n "${K:-}" ] && [ -f "$W/sigref/model.json" ]; then
  run_np sigother "$NP_OTHER" fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter "$M" --out "$W/sigother" --quiet --no-inference \
    --threads 2 --resume "$W/s.json"
  [ "$RC" -eq 0 ] || fail "resume: exit $RC ($(tail_of "$ERR"))"
  why=$(coefs_close "$W/sigref/model.json" "$W/sigother/model.json" 1e-10) || fail "$why"
else
  fail "no checkpoint from the previous check"
fi
end_check

# ---------------------------------------------------------------------------
if [ "$NP" -gt 1 ]; then
  begin_check "SIGTERM to rank 1 only: all ranks stop together with status 3"
  start term "$NP" fit --no-intercept --data "$D" "${FIXED[@]}" --max-iter 100000 --out "$W/term" --checkpoint "$W/t.json"
  if wait_line "$ALL" "iter    2" 60 && pid=$(rank_pid 1); then
    kill -TERM "$pid"
    wait_bg 60
    [ "$RC" -eq 3 ] || fail "exit status $RC, expected 3 ($(tail_of "$ALL"))"
    [ -f "$W/t.json" ] || fail "no checkpoint"
  else
    fail "fit did not start or rank 1 not found ($(tail_of "$ALL"))"
    kill -KILL "$BG" 2>/dev/null
    wait_bg 5
  fi
  end_check
fi

# ---------------------------------------------------------------------------
# bad_resume NAME FRAGMENT ARGS...: natgrad must fail with one message holding FRAGMENT.
bad_resume() {
  local name=$1 frag=$2
  shift 2
  begin_check "refuses $name"
  run "bad-$name" "$@"
  [ "$RC" -ne 0 ] || fail "exit status 0"
  ! timed_out || fail "timed out (hang)"
  need_one_error "$ERR" "$frag"
  end_check
}
D=gen:logit:rows=20000,cols=8
bad_resume "a checkpoint of other options" "'lr' is 0.5 in the checkpoint and 0.25 now" \
  fit --no-intercept --data "$D" --step fixed --lr 0.25 --tol 0 --max-iter 12 --resume "$W/p.json"
# The data's path is not compared (its content is): here the row count differs first.
bad_resume "a checkpoint of other data" "'n_rows' is 20000 in the checkpoint and 20001 now" \
  fit --no-intercept --data gen:logit:rows=20001,cols=8 "${FIXED[@]}" --max-iter 12 --resume "$W/p.json"
printf 'not json\n' >"$W/junk.json"
bad_resume "a file that is not a checkpoint" "invalid checkpoint" \
  fit --no-intercept --data "$D" "${FIXED[@]}" --resume "$W/junk.json"
bad_resume "a missing checkpoint" "cannot read the checkpoint" \
  fit --no-intercept --data "$D" "${FIXED[@]}" --resume "$W/none.json"
# Same path, changed content: the column sums catch it.
run_np gen-csv 1 generate --data gen:logit:rows=500,cols=3 --out "$W/d.csv"
run csv-ck fit --no-intercept --data "$W/d.csv" "${FIXED[@]}" --max-iter 3 --checkpoint "$W/c.json" --checkpoint-every 2 --quiet
awk -F, 'NR == 10 { $2 = $2 + 1 } { print }' OFS=, "$W/d.csv" >"$W/d2.csv" && mv "$W/d2.csv" "$W/d.csv"
bad_resume "a CSV whose content changed" "the data differ" \
  fit --no-intercept --data "$W/d.csv" "${FIXED[@]}" --max-iter 5 --resume "$W/c.json"

# The fingerprint follows the data's content, not its path: an identical copy under
# another name resumes; two labels swapped in place (same column sums) are refused.
run_np gen-csv2 1 generate --data gen:logit:rows=500,cols=3,seed=5 --out "$W/e.csv"
run csv-ck2 fit --no-intercept --data "$W/e.csv" "${FIXED[@]}" --max-iter 3 --checkpoint "$W/e.json" --checkpoint-every 2 --quiet
mkdir -p "$W/elsewhere" && cp "$W/e.csv" "$W/elsewhere/copy of e.csv"
begin_check "resumes with the same data under another path"
run copy-resume fit --no-intercept --data "$W/elsewhere/copy of e.csv" "${FIXED[@]}" --max-iter 5 --resume "$W/e.json" --quiet
[ "$RC" -eq 0 ] || fail "exit $RC ($(tail_of "$ERR"))"
grep -q 'resuming from .* at iteration 2' "$OUT" || fail "no 'resuming from ... at iteration 2' line"
end_check
# Swap the labels of the first data rows with labels 0 and 1: the same multiset of values.
awk -F, -v OFS=, 'NR > 1 && a == 0 && $1 + 0 == 0 { a = NR } NR > 1 && b == 0 && $1 + 0 == 1 { b = NR }
  { line[NR] = $0; lab[NR] = $1 } END {
    for (i = 1; i <= NR; i++) { if (i == a || i == b) { n = split(line[i], f, ","); f[1] = (i == a ? lab[b] : lab[a]);
        s = f[1]; for (k = 2; k <= n; k++) s = s "," f[k]; print s } else print line[i] } }' "$W/e.csv" >"$W/e2.csv"
begin_check "the label swap keeps every column's values and changes two rows"
[ "$(diff "$W/e.csv" "$W/e2.csv" | grep -c '^>')" -eq 2 ] || fail "not exactly two rows changed"
cut -d, -f1 "$W/e.csv" | sort | uniq -c >"$W/l1" && cut -d, -f1 "$W/e2.csv" | sort | uniq -c >"$W/l2"
cmp -s "$W/l1" "$W/l2" || fail "the label counts changed"
end_check
mv "$W/e2.csv" "$W/e.csv"
bad_resume "data with two labels swapped in place" "the data differ" \
  fit --no-intercept --data "$W/e.csv" "${FIXED[@]}" --max-iter 5 --resume "$W/e.json"
# A checkpoint edited by hand (one coefficient changed) fails its checksum.
awk '/"theta": \[/ { t = 1; print; next }
  t && !done && match($0, /-?[0-9][0-9.eE+-]*/) {
    v = substr($0, RSTART, RLENGTH) + 0
    $0 = substr($0, 1, RSTART - 1) sprintf("%.17g", v * 1.35 + 0.01) substr($0, RSTART + RLENGTH); done = 1 }
  { print }' "$W/p.json" >"$W/edited.json"
begin_check "the edited checkpoint differs from the original in one number"
[ "$(diff "$W/p.json" "$W/edited.json" | grep -c '^>')" -eq 1 ] || fail "edit did not change exactly one line"
end_check
bad_resume "a checkpoint with an edited coefficient" "checksum does not match" \
  fit --no-intercept --data gen:logit:rows=20000,cols=8 "${FIXED[@]}" --max-iter 12 --resume "$W/edited.json"

# ---------------------------------------------------------------------------
# A rank that dies (kill -9, as the out-of-memory killer does) must end the job promptly.
if [ "$NP" -gt 1 ]; then
  begin_check "kill -9 of rank 1 mid-fit: non-zero exit within 30 s"
  start kill9 "$NP" fit --no-intercept --data gen:logit:rows=600000,cols=32 --max-iter 1000 --tol 0 --step fixed --out "$W/kill9"
  if wait_line "$ALL" "iter    1" 120 && pid=$(rank_pid 1); then
    t0=$SECONDS
    kill -KILL "$pid"
    wait_bg 30
    dt=$((SECONDS - t0))
    if [ "$RC" -eq 124 ]; then fail "still running 30 s after the kill (hang)"; fi
    [ "$RC" -ne 0 ] || fail "exit status 0"
    echo "# kill -9 of rank 1: job ended after ${dt}s with status $RC"
  else
    fail "fit did not start or rank 1 not found ($(tail_of "$ALL"))"
    kill -KILL "$BG" 2>/dev/null
    wait_bg 5
  fi
  end_check
fi

finish
