#!/usr/bin/env bash
# One dataset in every input format fits to the same coefficients, through the CLI.
#
# usage: bash tests/cli/run_format_tests.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
#
# `natgrad generate` writes gen:logit rows as CSV, NPY and (when the build has parallel
# HDF5) HDF5; awk turns the CSV into LIBSVM (zeros left out). Each file is fitted under
# `MPIEXEC -n NRANKS` (binomial, intercept) and a 1-rank CSV fit is the reference: every
# format at every rank count must give its coefficients to 1e-9 relative. Then predict
# on the CSV without its label column (--label-column none) must give the predictions
# of the labelled CSV. Prints "ok - NAME" / "not ok - NAME: why"; exits 1 on a failure.
set -u

if [ $# -lt 3 ]; then
  echo "usage: $0 NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]" >&2
  exit 2
fi
EXE=$1
NP=$2
W=$3
MPIEXEC=${4:-mpiexec}
case $EXE in /*) ;; *) EXE=$(cd "$(dirname "$EXE")" && pwd)/$(basename "$EXE") ;; esac
rm -rf "$W"
mkdir -p "$W/logs" || exit 2
W=$(cd "$W" && pwd)
export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-0}
PASSED=0
FAILED=0

# run NAME NP ARGS...: natgrad under MPI with NP ranks; sets RC; output in logs/NAME.*.
run() {
  local name=$1 np=$2
  shift 2
  timeout -k 5 120 "$MPIEXEC" -n "$np" --oversubscribe "$EXE" "$@" >"$W/logs/$name.out" \
    2>"$W/logs/$name.err" </dev/null
  RC=$?
}
report() {
  if [ -z "$2" ]; then
    echo "ok - $1"
    PASSED=$((PASSED + 1))
  else
    echo "not ok - $1: $2"
    FAILED=$((FAILED + 1))
  fi
}
coefs() { tr -d ' \t\r\n' <"$1" 2>/dev/null | sed -n 's/.*"coefficients":\[\([^]]*\)\].*/\1/p'; }
# same_numbers A B TOL: two comma-separated lists agree to TOL relative.
same_numbers() {
  awk -v e="$1" -v t="$2" -v tol="$3" 'BEGIN {
      ne = split(e, a, ","); nt = split(t, b, ",");
      if (ne != nt || ne == 0) exit 1
      for (i = 1; i <= ne; i++) { d = a[i] - b[i]; m = b[i] < 0 ? -b[i] : b[i];
        if ((d < 0 ? -d : d) > tol * (m > 1 ? m : 1)) exit 1 } }'
}

echo "# natgrad input formats: $EXE, $NP rank(s), work dir $W"
SPEC=gen:logit:rows=3000,cols=6,seed=11
run gen-csv 1 generate --data "$SPEC" --out "$W/d.csv"
run gen-npy 1 generate --data "$SPEC" --out "$W/d.npy"
FORMATS="csv npy libsvm"
if run gen-h5 1 generate --data "$SPEC" --out "$W/d.h5" && [ "$RC" -eq 0 ]; then
  FORMATS="$FORMATS hdf5"
elif grep -q "not available in this build" "$W/logs/gen-h5.err"; then
  echo "ok - hdf5 # SKIP this build has no parallel HDF5"
else
  report "generate hdf5" "exit status $RC: $(head -c 300 "$W/logs/gen-h5.err")"
fi
# LIBSVM: label, then index:value for the non-zero features (1-based).
awk -F, 'NR > 1 { s = $1; for (j = 2; j <= NF; j++) if ($j + 0 != 0) s = s " " (j - 1) ":" $j; print s }' \
  "$W/d.csv" >"$W/d.svm"

run ref 1 fit --data "$W/d.csv" --intercept --quiet --no-inference --out "$W/ref"
REF=$(coefs "$W/ref/model.json")
[ -n "$REF" ] || report "reference fit (1 rank, CSV)" "no coefficients (exit $RC)"

for f in $FORMATS; do
  case $f in csv) file=d.csv ;; npy) file=d.npy ;; libsvm) file=d.svm ;; hdf5) file=d.h5 ;; esac
  run "fit-$f" "$NP" fit --data "$W/$file" --intercept --quiet --no-inference --out "$W/fit-$f"
  got=$(coefs "$W/fit-$f/model.json")
  why=""
  [ "$RC" -eq 0 ] || why="exit status $RC: $(grep -m1 'natgrad: error' "$W/logs/fit-$f.err")"
  [ -z "$why" ] && ! same_numbers "$got" "$REF" 1e-9 && why="coefficients [$got] vs 1-rank CSV [$REF]"
  report "$f at $NP rank(s) fits the 1-rank CSV coefficients" "$why"
done

# predict without labels: same predictions as with them.
cut -d, -f2- "$W/d.csv" >"$W/nolabel.csv"
run pred-label "$NP" predict --model "$W/ref/model.json" --data "$W/d.csv" --out "$W/p1.csv"
run pred-none "$NP" predict --model "$W/ref/model.json" --data "$W/nolabel.csv" --label-column none \
  --out "$W/p2.csv"
why=""
[ "$RC" -eq 0 ] || why="exit status $RC: $(grep -m1 'natgrad: error' "$W/logs/pred-none.err")"
[ -z "$why" ] && { [ -s "$W/p1.csv" ] && cmp -s "$W/p1.csv" "$W/p2.csv"; } ||
  why="${why:-predictions differ from those of the labelled CSV}"
report "predict --label-column none on a CSV without labels" "$why"
n=$(awk 'NR > 1' "$W/p2.csv" 2>/dev/null | wc -l)
[ "$n" -eq 3000 ] && report "3000 predictions" "" || report "3000 predictions" "$n lines"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
