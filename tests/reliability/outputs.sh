#!/usr/bin/env bash
# What natgrad promises about its outputs (docs/cluster.md), checked through the command line.
#
# usage: bash tests/reliability/outputs.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
#
# Checks, each natgrad run under `timeout` (a hang fails):
#  - an --out that cannot be written is refused before the data are read (the data file
#    does not exist, and the message is about --out), one message, exit 1; run as nobody
#    (setpriv) since root may write anywhere; skipped when that is impossible;
#  - two fits started together on one --out: one runs, the other exits 1 at once with one
#    message naming the holder (pid, host, its command); the directory then holds the
#    winner's complete set (model.json, history.csv, summary.txt agree) and nothing else;
#  - a lock left by a killed fit (its pid gone) is taken over, and released at the end;
#  - disk full while writing the outputs (a 64 KiB tmpfs, mounted when root may): exit 1,
#    one message, the previous fit's three files byte for byte, no temporary, no lock;
#    skipped with the reason when no tmpfs can be mounted;
#  - the summary's Call: line, pasted back into a shell (bash -c, after the launcher),
#    runs the same fit: arguments with blanks, quotes, $, ; and brackets are quoted.
# Prints "ok - ..." / "not ok - ..." and "N passed, M failed" (tests/support/harness.sh).
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once
RUN_TIMEOUT=60
echo "# natgrad output discipline: $EXE, $NP rank(s), work dir $W"

# The files of DIR (hidden ones too), sorted, on one line.
listing() { (cd "$1" 2>/dev/null && find . -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | tr '\n' ' '); }
# Leftovers of an interrupted write or of a lock in DIR.
debris() { (cd "$1" 2>/dev/null && find . -maxdepth 1 \( -name '*.tmp.*' -o -name '*.prev.*' -o -name '.natgrad*' \) -printf '%f ' ); }

# ---------------------------------------------------------------------------
begin_check "an unwritable --out is refused before any data is read"
RO=$W/readonly-out
mkdir -p "$RO" && chmod 555 "$RO"
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
  # Root ignores permissions (CAP_DAC_OVERRIDE): run as nobody, as the corpus does.
  NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)
  if command -v setpriv >/dev/null 2>&1 && "${NOBODY[@]}" test -x "$EXE" -a -d "$W" 2>/dev/null; then
    RUN_AS=("${NOBODY[@]}")
  else
    RO=""
  fi
fi
if [ -z "$RO" ]; then
  skip "an unwritable --out is refused before any data is read" "running as root, and setpriv cannot drop to nobody"
else
  run readonly fit --no-intercept --data "$W/no-such-data.csv" --out "$RO"
  [ "$RC" -eq 1 ] || fail "exit status $RC, expected 1"
  need_one_error "$ALL" "--out $RO: cannot write in the output directory" "Permission denied"
  ! grep -q 'no-such-data' "$ALL" || fail "the data were looked at before --out was checked"
  [ -z "$(listing "$RO")" ] || fail "left in $RO: $(listing "$RO")"
  end_check
fi
RUN_AS=()
chmod 755 "$RO" 2>/dev/null

# ---------------------------------------------------------------------------
begin_check "two fits on one --out at once: one runs, the other is refused naming it"
C=$W/shared
SLOW=(--step fixed --lr 0.5 --tol 0 --max-iter 400 --no-inference --quiet --out "$C")
for k in 1 2; do
  timeout -k 10 "$RUN_TIMEOUT" "$MPIEXEC" -n "$NP" --oversubscribe "$EXE" fit \
    --data "gen:logit:rows=200000,cols=24,seed=$k" "${SLOW[@]}" >"$LOGS/race$k.out" 2>"$LOGS/race$k.err" </dev/null &
  eval "PID$k=\$!"
done
wait "$PID1"; RC1=$?
wait "$PID2"; RC2=$?
if [ "$RC1" -eq 0 ] && [ "$RC2" -eq 1 ]; then WIN=1 LOSE=2
elif [ "$RC1" -eq 1 ] && [ "$RC2" -eq 0 ]; then WIN=2 LOSE=1
else WIN="" LOSE=""; fail "exit statuses $RC1 and $RC2, expected 0 and 1 ($(tail_of "$LOGS/race1.err") / $(tail_of "$LOGS/race2.err"))"
fi
if [ -n "$WIN" ]; then
  ERR=$LOGS/race$LOSE.err
  cat "$LOGS/race$LOSE.out" "$LOGS/race$LOSE.err" >"$LOGS/race$LOSE.all"
  need_one_error "$LOGS/race$LOSE.all" "--out $C: in use by another natgrad fit (pid " "on host $(hostname)" \
    "seed=$WIN --step fixed" "$C/.natgrad.lock"
  ! grep -q '^iter\|^Coefficients' "$LOGS/race$LOSE.out" || fail "the refused fit ran"
  # The directory holds the winner's set only, and nothing else.
  [ "$(listing "$C")" = "history.csv model.json summary.txt " ] || fail "directory holds: $(listing "$C")"
  grep -q "\"data\": \"gen:logit:rows=200000,cols=24,seed=$WIN\"" "$C/model.json" || fail "model.json is not the winner's"
  grep -q "seed=$WIN " "$C/summary.txt" || fail "summary.txt is not the winner's"
  its=$(json_num "$C/model.json" iterations)
  [ "$(awk 'NR > 1' "$C/history.csv" | wc -l)" -eq $((its + 1)) ] || fail "history.csv does not hold iterations 0..$its"
fi
end_check

# ---------------------------------------------------------------------------
begin_check "a lock left by a killed fit is taken over and released"
S=$W/stale
mkdir -p "$S"
sh -c 'exit 0' &
DEAD=$!
wait "$DEAD"
printf 'natgrad output lock\nhost: %s\npid: %s\nstarted: 2026-01-01T00:00:00Z\ncommand: natgrad fit (killed)\n' \
  "$(hostname)" "$DEAD" >"$S/.natgrad.lock"
run stale fit --no-intercept --data gen:logit:rows=500,cols=3 --out "$S" --quiet
[ "$RC" -eq 0 ] || fail "exit status $RC ($(tail_of "$ERR"))"
[ "$(listing "$S")" = "history.csv model.json summary.txt " ] || fail "directory holds: $(listing "$S")"
end_check

# ---------------------------------------------------------------------------
# Disk full: a 64 KiB tmpfs holds one small fit's outputs, not a wide fit's model.json.
FULL=$W/full
mkdir -p "$FULL"
MOUNTED=0
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=64k natgrad-test "$FULL" 2>"$LOGS/mount.err"; then
  MOUNTED=1
  trap 'umount "$FULL" 2>/dev/null' EXIT
fi
if [ "$MOUNTED" -eq 0 ]; then
  skip "disk full while writing: the previous set stays whole" \
    "cannot mount a small tmpfs here ($( [ "$(id -u)" -eq 0 ] && tail_of "$LOGS/mount.err" 1 || echo "not root"))"
else
  begin_check "disk full while writing: the previous set stays whole"
  run small fit --no-intercept --data gen:logit:rows=500,cols=2 --out "$FULL/o" --quiet
  [ "$RC" -eq 0 ] || fail "first fit: exit $RC ($(tail_of "$ERR"))"
  mkdir -p "$W/before" && cp "$FULL"/o/* "$W/before/"
  # 60 columns with --covariance: model.json alone is about 90 KB.
  run wide fit --no-intercept --data gen:logit:rows=3000,cols=60 --covariance --out "$FULL/o" --quiet
  [ "$RC" -eq 1 ] || fail "exit status $RC, expected 1"
  need_one_error "$ALL" "$FULL/o/" "No space left on device" "previous outputs in $FULL/o are kept"
  for f in model.json history.csv summary.txt; do
    cmp -s "$W/before/$f" "$FULL/o/$f" || fail "$f changed"
  done
  [ "$(listing "$FULL/o")" = "history.csv model.json summary.txt " ] || fail "directory holds: $(listing "$FULL/o")"
  end_check
fi

# ---------------------------------------------------------------------------
begin_check "the Call: line of summary.txt, pasted into a shell, runs the same fit"
Q=$W/quoting
mkdir -p "$Q"
DATA="$Q/it's a (data) \$file; [x].csv"
run_np make-data 1 generate --data gen:logit:rows=400,cols=3,seed=11 --out "$DATA"
[ "$RC" -eq 0 ] || fail "generate: exit $RC ($(tail_of "$ERR"))"
run quoted fit --no-intercept --data "$DATA" --columns 'x1,x3' --out "$Q/out one" --quiet
[ "$RC" -eq 0 ] || fail "fit: exit $RC ($(tail_of "$ERR"))"
CALL=$(sed -n '/^Call:$/{n;p;q}' "$Q/out one/summary.txt")
case $CALL in
  "natgrad fit --no-intercept --data '$Q/it'\\''s a (data) \$file; [x].csv' --columns x1,x3 --out '$Q/out one' --quiet") ;;
  *) fail "Call: line is [$CALL]" ;;
esac
cp "$Q/out one/model.json" "$Q/first.json"
rm -rf "$Q/out one"
# Under the same launcher and rank count, so that the answer is the same bit for bit.
(cd "$Q" && PATH="$(dirname "$EXE"):$PATH" timeout -k 5 60 bash -c "$MPIEXEC -n $NP --oversubscribe $CALL" \
  >"$LOGS/pasted.out" 2>&1 </dev/null)
RC=$?
[ "$RC" -eq 0 ] || fail "the pasted command: exit $RC ($(tail_of "$LOGS/pasted.out"))"
[ "$(json_coefs "$Q/out one/model.json")" = "$(json_coefs "$Q/first.json")" ] || fail "other coefficients"
[ -n "$(json_coefs "$Q/first.json")" ] || fail "no coefficients"
end_check

finish
