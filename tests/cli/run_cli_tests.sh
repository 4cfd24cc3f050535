#!/usr/bin/env bash
# End-to-end tests of the natgrad command line, run under MPI.
#
# usage: bash tests/cli/run_cli_tests.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
#
# Every natgrad invocation goes through `MPIEXEC -n NRANKS --oversubscribe natgrad ...`
# under `timeout 120`, so a hang is a failure rather than a stuck test. Prints one line
# per check ("ok - NAME" / "not ok - NAME: details"), then "N passed, M failed"; exits 1
# if any check failed. WORKDIR is wiped and reused; each invocation's stdout/stderr are
# kept in WORKDIR/logs/ for inspection. Only coreutils, grep, awk and sed are used.
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once
NUM_RE='^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$'

# ---------------------------------------------------------------------------
# Helpers (run, checks, JSON and numbers: tests/support/harness.sh).

# need_rc0: the last run exited 0.
need_rc0() {
  [ "$RC" -eq 0 ] && return 0
  local why
  why=$(grep -m1 "natgrad: error" "$ALL")
  [ -n "$why" ] || why="stderr: $(tail_of "$ERR")"
  fail "exit status $RC ($why)"
}
# contains FILE TEXT: fixed-string search.
contains() { grep -qF -e "$2" "$1"; }
need_text() { contains "$1" "$2" || fail "'$2' not in $(basename "$1")"; }
# count of lines of FILE starting with PREFIX (fixed string)
count_prefix() { awk -v p="$2" 'index($0, p) == 1 { n++ } END { print n + 0 }' "$1"; }
# data rows of a CSV file with a header line
data_rows() { awk 'NR > 1 && NF { n++ } END { print n + 0 }' "$1"; }
# the coefficient table printed after "coefficient  estimate" on stdout
coef_table() {
  # the rows of the R-style table between "Coefficients:" and the "---" line
  awk -v re="$NUM_RE" '/^Coefficients:/ { on = 1; next }
    on && /Estimate/ { next }
    on && NF >= 2 && $2 ~ re { print; next }
    on { exit }' "$1"
}
# first hex bytes of a file
magic() { head -c "$2" "$1" | od -An -tx1 | tr -d ' \n'; }
# temporary files left by write_atomically (NAME.tmp.PID) under a directory
tmp_files() { find "$1" -name '*.tmp.*' 2>/dev/null | head -n 3 | tr '\n' ' '; }
# a < b as numbers
less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

# need_help TOPIC-WORDS...: the last run printed help once (rank 0 only), exit 0.
need_help() {
  if [ "$RC" -ne 0 ]; then
    need_rc0
    return
  fi
  local w missing=""
  for w in "$@"; do contains "$OUT" "$w" || missing="$missing $w"; done
  [ -z "$missing" ] || fail "help lacks:$missing"
  local n
  n=$(grep -c 'usage: natgrad' "$OUT")
  [ "$n" -eq 1 ] || fail "'usage: natgrad' printed $n times (expected once, by rank 0)"
  if grep -q 'natgrad: error' "$ALL"; then fail "error printed: $(grep -m1 'natgrad: error' "$ALL")"; fi
}

# bad_run NAME OUTPATH FRAGMENT... -- ARGS...: natgrad ARGS must fail: non-zero exit
# within the timeout, exactly one "natgrad: error" over the combined output of all
# ranks, the message holding every FRAGMENT, and OUTPATH (a --out directory or file, or
# "-") left without results or temporary files.
bad_run() {
  local name=$1 outpath=$2
  shift 2
  local frags=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    frags+=("$1")
    shift
  done
  shift
  begin_check "rejects $name"
  run "bad-$name" "$@"
  if timed_out; then
    fail "timed out after 120 s (hang)"
  elif [ "$RC" -eq 0 ]; then
    fail "exit status 0"
  fi
  need_one_error "$ALL" "${frags[@]}"
  if [ "$outpath" != "-" ]; then
    if [ -d "$outpath" ]; then
      [ ! -e "$outpath/model.json" ] || fail "$outpath/model.json written"
      [ ! -e "$outpath/history.csv" ] || fail "$outpath/history.csv written"
      local t
      t=$(tmp_files "$outpath")
      [ -z "$t" ] || fail "temporary files left: $t"
    else
      [ ! -e "$outpath" ] || fail "$outpath written"
      local t
      t=$(tmp_files "$(dirname "$outpath")")
      [ -z "$t" ] || fail "temporary files left: $t"
    fi
  fi
  end_check
}

echo "# natgrad CLI tests: $EXE, $NP rank(s), work dir $W, launcher $MPIEXEC"

# ---------------------------------------------------------------------------
# 1. Help.

begin_check "natgrad --help"
run help --help
need_help fit generate demo selftest
end_check

begin_check "natgrad fit --help"
run fit-help fit --help
need_help --data --out --method --fisher --step --lr --kl --damping --max-iter --tol \
  --intercept --header --label-column --delimiter --config --threads
end_check

begin_check "natgrad generate --help"
run generate-help generate --help
need_help --data --out --format --truth
end_check

begin_check "natgrad demo --help"
run demo-help demo --help
need_help --repetitions --iterations --lr --seed --out
end_check

begin_check "natgrad selftest --help"
run selftest-help selftest --help
need_help --threads
end_check

# ---------------------------------------------------------------------------
# 2. Selftest.

begin_check "natgrad selftest"
run selftest selftest
need_rc0
n=$(grep -c '^PASS' "$OUT")
[ "$n" -ge 1 ] || fail "no PASS lines"
if grep -q 'FAIL' "$ALL"; then fail "FAIL printed: $(grep -m1 FAIL "$ALL")"; fi
# The CPU and OpenBLAS's core (PASS, or WARN when the core is of an older family: not a
# failure), and one DGEMM against the peak.
grep -Eq '^(PASS|WARN)  OpenBLAS core fits the CPU' "$OUT" || fail "no OpenBLAS core line"
grep -Eq '^PASS  DGEMM n=1024 rate vs peak  \(1 thread [0-9.]+ GFLOP/s = ' "$OUT" || fail "no DGEMM rate line"
grep -Eq '^[0-9]+ passed, 0 failed' "$OUT" || fail "no count line"
end_check

# ---------------------------------------------------------------------------
# 3. Demo (the seed's experiment).

begin_check "natgrad demo"
D=$W/demo
run demo demo --repetitions 20 --out "$D"
need_rc0
need_text "$OUT" "Natural Gradient Descent"
need_text "$OUT" "Vanilla Gradient Descent"
first_num() {
  awk -v l="$2" -v re="$NUM_RE" 'index($0, l) == 1 {
      for (i = 1; i <= NF; i++) if ($i ~ re) { print $i; exit } }' "$1"
}
ngd=$(first_num "$OUT" "Natural Gradient Descent")
gd=$(first_num "$OUT" "Vanilla Gradient Descent")
if [ -z "$ngd" ] || [ -z "$gd" ]; then
  fail "mean losses not found in the table"
else
  less_than "$ngd" "$gd" || fail "NGD mean loss $ngd is not below GD mean loss $gd"
fi
if [ -f "$D/curves.csv" ]; then
  [ "$(data_rows "$D/curves.csv")" -eq 6 ] || fail "curves.csv has $(data_rows "$D/curves.csv") data rows, expected 6"
  head -n 1 "$D/curves.csv" | grep -q '^iter,' || fail "curves.csv header: $(head -n 1 "$D/curves.csv")"
else
  fail "no $D/curves.csv"
fi
if [ -f "$D/curves.png" ]; then
  [ "$(magic "$D/curves.png" 8)" = 89504e470d0a1a0a ] || fail "curves.png lacks the PNG signature"
else
  fail "no $D/curves.png"
fi
t=$(tmp_files "$D")
[ -z "$t" ] || fail "temporary files left: $t"
end_check

# ---------------------------------------------------------------------------
# 4. generate, then fit the CSV.

begin_check "generate CSV with truth"
run gen-csv generate --data gen:logit:rows=3000,cols=4,seed=3 --out "$W/d.csv" --truth "$W/truth.json"
need_rc0
if [ -f "$W/d.csv" ]; then
  [ "$(head -n 1 "$W/d.csv")" = "y,x1,x2,x3,x4" ] || fail "d.csv header: $(head -n 1 "$W/d.csv")"
  [ "$(data_rows "$W/d.csv")" -eq 3000 ] || fail "d.csv has $(data_rows "$W/d.csv") rows, expected 3000"
else
  fail "no d.csv"
fi
if [ -f "$W/truth.json" ]; then need_text "$W/truth.json" '"coefficients"'; else fail "no truth.json"; fi
t=$(tmp_files "$W")
[ -z "$t" ] || fail "temporary files left: $t"
end_check

begin_check "fit CSV"
run fit-csv fit --data "$W/d.csv" --intercept --out "$W/fit"
need_rc0
if [ -f "$W/fit/model.json" ]; then
  grep -q '"converged": *true' "$W/fit/model.json" || fail "model.json lacks \"converged\": true"
  need_text "$W/fit/model.json" '"coefficients"'
  [ -n "$(json_coefs "$W/fit/model.json")" ] || fail "empty coefficients in model.json"
  need_text "$W/fit/model.json" '"(Intercept)"'
else
  fail "no model.json"
fi
H=$W/fit/history.csv
if [ -f "$H" ]; then
  [ "$(head -n 1 "$H")" = "iter,loss,grad_norm,step_norm,kl,damping,step_length,seconds" ] ||
    fail "history.csv header: $(head -n 1 "$H")"
  rows=$(data_rows "$H")
  [ "$rows" -ge 2 ] || fail "history.csv has $rows rows, expected >= 2"
  iters=$(count_prefix "$OUT" "iter ")
  [ "$iters" -eq "$rows" ] || fail "$iters progress lines for $rows history rows"
else
  fail "no history.csv"
fi
n0=$(count_prefix "$ALL" "iter    0")
[ "$n0" -eq 1 ] || fail "'iter    0' printed $n0 times (expected once, by rank 0)"
t=$(tmp_files "$W/fit")
[ -z "$t" ] || fail "temporary files left: $t"
end_check

begin_check "fit recovers the generating coefficients"
# 3000 rows: loose agreement with truth.json (the same sign and within 50% + 0.5).
if [ -f "$W/fit/model.json" ] && [ -f "$W/truth.json" ]; then
  est=$(json_coefs "$W/fit/model.json")
  tru=$(json_coefs "$W/truth.json")
  awk -v e="$est" -v t="$tru" 'BEGIN {
      ne = split(e, a, ","); nt = split(t, b, ",");
      if (ne != nt || ne == 0) { print "lengths " ne " vs " nt; exit 1 }
      for (i = 1; i <= ne; i++) {
        d = a[i] - b[i]; if (d < 0) d = -d; m = b[i]; if (m < 0) m = -m;
        if (d > 0.5 * m + 0.5) { print "coefficient " i ": " a[i] " vs true " b[i]; exit 1 }
      } }' >"$LOGS/truth-compare.txt" || fail "$(cat "$LOGS/truth-compare.txt")"
else
  fail "model.json or truth.json missing"
fi
end_check

begin_check "generate NPY"
run gen-npy generate --data gen:mixture:rows=50 --out "$W/m.npy"
need_rc0
if [ -f "$W/m.npy" ]; then
  [ "$(magic "$W/m.npy" 6)" = 934e554d5059 ] || fail "m.npy does not start with \\x93NUMPY"
else
  fail "no m.npy"
fi
end_check

# ---------------------------------------------------------------------------
# 5. The same fit from a config file.

begin_check "fit from --config matches the command line"
cat >"$W/fit.cfg" <<EOF
# natgrad fit options
data = $W/d.csv
intercept = true
max-iter = 50
out = $W/fitcfg
EOF
run fit-config fit --config "$W/fit.cfg"
need_rc0
if [ -f "$W/fitcfg/model.json" ] && [ -f "$W/fit/model.json" ]; then
  c1=$(json_coefs "$W/fit/model.json")
  c2=$(json_coefs "$W/fitcfg/model.json")
  [ -n "$c2" ] && [ "$c1" = "$c2" ] || fail "coefficients differ: [$c1] vs [$c2]"
  grep -q '"max-iter": *50' "$W/fitcfg/model.json" || fail "max-iter = 50 not in model.json options"
else
  fail "model.json missing"
fi
t1=$(coef_table "$LOGS/fit-csv.out")
t2=$(coef_table "$OUT")
[ -n "$t2" ] && [ "$t1" = "$t2" ] || fail "printed coefficient tables differ"
end_check

begin_check "command line wins over --config"
run fit-config-override fit --config "$W/fit.cfg" --max-iter 1 --tol 0 --out "$W/fitcfg1"
need_rc0
if [ -f "$W/fitcfg1/history.csv" ]; then
  [ "$(data_rows "$W/fitcfg1/history.csv")" -eq 2 ] ||
    fail "history.csv has $(data_rows "$W/fitcfg1/history.csv") rows, expected 2 (--max-iter 1)"
else
  fail "no $W/fitcfg1/history.csv (--out on the command line ignored?)"
fi
end_check

# ---------------------------------------------------------------------------
# 6. A generated problem (small stand-in for gen:logit:rows=1000000,cols=64).

begin_check "fit gen:logit:rows=20000,cols=16"
run fit-gen fit --no-intercept --data gen:logit:rows=20000,cols=16 --out "$W/g" --quiet
need_rc0
if [ -f "$W/g/model.json" ]; then
  grep -q '"converged": *true' "$W/g/model.json" || fail "not converged: $(grep '"reason"' "$W/g/model.json")"
  grep -q '"n_obs": *20000' "$W/g/model.json" || fail "n_obs is not 20000"
else
  fail "no model.json"
fi
n=$(count_prefix "$OUT" "iter ")
[ "$n" -eq 0 ] || fail "--quiet still printed $n progress lines"
end_check

begin_check "fit gen: same result at any rank count"
# The generator's rows depend only on (seed, row), so the fit must not depend on the
# rank count: compare the loss with a reference taken from a 1-rank run.
if [ -f "$W/g/model.json" ]; then
  loss=$(json_num "$W/g/model.json" loss)
  run_np fit-gen-np1 1 fit --no-intercept --data gen:logit:rows=20000,cols=16 --out "$W/g1" --quiet
  if [ -f "$W/g1/model.json" ]; then
    loss1=$(json_num "$W/g1/model.json" loss)
    close_to "$loss" "$loss1" 1e-10 ||
      fail "loss $loss at $NP rank(s) vs $loss1 at 1 rank"
  else
    fail "1-rank reference run failed (exit $RC)"
  fi
else
  fail "no model.json"
fi
end_check

# ---------------------------------------------------------------------------
# 7. The seed's settings, one flag each.

begin_check "fit with the seed's settings"
run fit-seed fit --no-intercept --data gen:mixture:rows=150 --method ngd --fisher empirical-centered --step fixed \
  --lr 1 --max-iter 5 --tol 0 --out "$W/seed"
need_rc0
if [ -f "$W/seed/history.csv" ]; then
  rows=$(data_rows "$W/seed/history.csv")
  [ "$rows" -eq 6 ] || fail "history.csv has $rows rows, expected 6"
else
  fail "no history.csv"
fi
if [ -f "$W/seed/model.json" ]; then
  grep -q '"iterations": *5' "$W/seed/model.json" || fail "model.json: iterations is not 5"
  grep -q '"fisher": *"empirical-centered"' "$W/seed/model.json" || fail "model.json: fisher option not recorded"
else
  fail "no model.json"
fi
end_check

# ---------------------------------------------------------------------------
# 8. Bad input: one clear error, non-zero exit, no hang, nothing half-written.

# A small valid CSV, then broken copies of it.
{
  echo "y,a,b"
  i=1
  while [ $i -le 40 ]; do
    echo "$((i % 2)),$i.5,-$i"
    i=$((i + 1))
  done
} >"$W/good.csv"
# line 5 (header = line 1) has too few fields
awk 'NR == 5 { print "1,2.5"; next } { print }' "$W/good.csv" >"$W/ragged.csv"
# a longer file broken near its end (line 250 of 401), so that at several ranks the bad
# line belongs to a later rank and its number must be computed across ranks
{
  echo "y,a,b"
  i=1
  while [ $i -le 400 ]; do
    if [ $i -eq 249 ]; then echo "1,2,3,4"; else echo "$((i % 2)),$i.25,$((i * 3))"; fi
    i=$((i + 1))
  done
} >"$W/ragged-late.csv"
awk 'NR == 9 { print "0,abc1x,3"; next } { print }' "$W/good.csv" >"$W/nonnumeric.csv"
# data row 7 (file line 8) has label 2
awk 'NR == 8 { print "2,1.5,-7"; next } { print }' "$W/good.csv" >"$W/label2.csv"

bad_run "missing file" "$W/bad-missing" no-such-file.csv -- \
  fit --data "$W/no-such-file.csv" --out "$W/bad-missing"
bad_run "ragged CSV row" "$W/bad-ragged" ":5:" "fields" -- \
  fit --data "$W/ragged.csv" --out "$W/bad-ragged"
bad_run "ragged CSV row late in the file" "$W/bad-ragged-late" ":250:" -- \
  fit --data "$W/ragged-late.csv" --out "$W/bad-ragged-late"
bad_run "non-numeric field" "$W/bad-nonnumeric" "abc1x" ":9:" -- \
  fit --data "$W/nonnumeric.csv" --out "$W/bad-nonnumeric"
bad_run "unknown option" "$W/bad-option" "bogus" -- \
  fit --data "$W/good.csv" --bogus --out "$W/bad-option"
bad_run "--step kl with --method gd" "$W/bad-kl" "kl" -- \
  fit --data "$W/good.csv" --step kl --method gd --out "$W/bad-kl"
bad_run "binomial label 2" "$W/bad-label" "label" "row 7" -- \
  fit --data "$W/label2.csv" --out "$W/bad-label"
bad_run "--header maybe" "$W/bad-header" "header" "maybe" -- \
  fit --data "$W/good.csv" --header maybe --out "$W/bad-header"
bad_run "generate to .txt" "$W/x.txt" "extension" -- \
  generate --data gen:mixture:rows=20 --out "$W/x.txt"
bad_run "unknown generator in generate" "$W/foo.csv" "foo" -- \
  generate --data gen:foo --out "$W/foo.csv"
bad_run "unknown generator in fit" "$W/bad-gen" "foo" -- \
  fit --data gen:foo --out "$W/bad-gen"
bad_run "missing --config file" "$W/bad-config" "no-such.cfg" -- \
  fit --config "$W/no-such.cfg" --out "$W/bad-config"
bad_run "unknown command" "-" "frobnicate" -- frobnicate

# ---------------------------------------------------------------------------
# 9. No command.

begin_check "natgrad without a command"
run no-command
if [ "$RC" -eq 0 ]; then fail "exit status 0"; fi
if timed_out; then fail "timed out"; fi
need_text "$OUT" "usage: natgrad"
n=$(grep -c 'usage: natgrad' "$OUT")
[ "$n" -le 1 ] || fail "usage printed $n times (expected once, by rank 0)"
end_check

finish
