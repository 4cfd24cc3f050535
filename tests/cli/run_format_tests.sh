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
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
RUN_KILL_AFTER=5
export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-0}

echo "# natgrad input formats: $EXE, $NP rank(s), work dir $W"
SPEC=gen:logit:rows=3000,cols=6,seed=11
run_np gen-csv 1 generate --data "$SPEC" --out "$W/d.csv"
run_np gen-npy 1 generate --data "$SPEC" --out "$W/d.npy"
FORMATS="csv npy libsvm"
if run_np gen-h5 1 generate --data "$SPEC" --out "$W/d.h5" && [ "$RC" -eq 0 ]; then
  FORMATS="$FORMATS hdf5"
elif grep -q "not available in this build" "$ERR"; then
  skip hdf5 "this build has no parallel HDF5"
else
  report "generate hdf5" "exit status $RC: $(head -c 300 "$ERR")"
fi
# LIBSVM: label, then index:value for the non-zero features (1-based).
awk -F, 'NR > 1 { s = $1; for (j = 2; j <= NF; j++) if ($j + 0 != 0) s = s " " (j - 1) ":" $j; print s }' \
  "$W/d.csv" >"$W/d.svm"

run_np ref 1 fit --data "$W/d.csv" --intercept --quiet --no-inference --out "$W/ref"
REF=$(json_coefs "$W/ref/model.json")
[ -n "$REF" ] || report "reference fit (1 rank, CSV)" "no coefficients (exit $RC)"

for f in $FORMATS; do
  case $f in csv) file=d.csv ;; npy) file=d.npy ;; libsvm) file=d.svm ;; hdf5) file=d.h5 ;; esac
  run "fit-$f" fit --data "$W/$file" --intercept --quiet --no-inference --out "$W/fit-$f"
  got=$(json_coefs "$W/fit-$f/model.json")
  why=""
  [ "$RC" -eq 0 ] || why="exit status $RC: $(grep -m1 'natgrad: error' "$ERR")"
  [ -z "$why" ] && ! lists_close "$got" "$REF" 1e-9 && why="coefficients [$got] vs 1-rank CSV [$REF]"
  report "$f at $NP rank(s) fits the 1-rank CSV coefficients" "$why"
done

# predict without labels: same predictions as with them.
cut -d, -f2- "$W/d.csv" >"$W/nolabel.csv"
run pred-label predict --model "$W/ref/model.json" --data "$W/d.csv" --out "$W/p1.csv"
run pred-none predict --model "$W/ref/model.json" --data "$W/nolabel.csv" --label-column none \
  --out "$W/p2.csv"
why=""
[ "$RC" -eq 0 ] || why="exit status $RC: $(grep -m1 'natgrad: error' "$ERR")"
[ -z "$why" ] && { [ -s "$W/p1.csv" ] && cmp -s "$W/p1.csv" "$W/p2.csv"; } ||
  why="${why:-predictions differ from those of the labelled CSV}"
report "predict --label-column none on a CSV without labels" "$why"
n=$(awk 'NR > 1' "$W/p2.csv" 2>/dev/null | wc -l)
[ "$n" -eq 3000 ] && report "3000 predictions" "" || report "3000 predictions" "$n lines"

finish
