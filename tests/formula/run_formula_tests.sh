#!/usr/bin/env bash
# The formula front door (issue 14) end to end against R: every case of
# tests/fixtures/formula_r (made by make_fixtures.R from real data sets: factors as text,
# missing values left in, interactions, transforms, offsets, text labels, quasi families,
# glm.nb, multinom) fitted by `natgrad fit --data CASE.csv --formula ... --out DIR` at one
# rank count, and model.json compared with R's fit by compare_formula.py:
#   names exactly; coefficients, SEs and Wald confidence intervals to 1e-6; deviance, null
#   deviance, AIC and theta to 1e-8 relative; dispersion; df; rows dropped for NAs
#   (multinomial, against nnet's BFGS: coefficients to 1e-5);
# and birthwt's summary.txt against R's printed summary(): the coefficient table token by
# token as R rounds it, then the dispersion / deviance / AIC lines.
#
# usage: bash tests/formula/run_formula_tests.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
# Environment: FORMULA_CASES=REGEX runs only the matching cases (debugging).
# On a failure each line says what differs; the run's output is in WORKDIR/logs/CASE.all
# and the command to rerun it is printed.
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$(cd "$HERE/../fixtures/formula_r" && pwd)
CMP=("${PYTHON:-python3}" "$HERE/compare_formula.py")
RUN_TIMEOUT=180
echo "# natgrad formula tests against R: $EXE, $NP rank(s), work dir $W, fixtures $FIX"

# The comparison itself first: on R's own numbers it passes, on perturbed copies it fails.
if out=$("${CMP[@]}" selftest "$FIX" 2>&1); then ok "comparison self-test ($out)"
else bad "comparison self-test" "$(printf '%s' "$out" | tr '\n' '|' | cut -c1-2000)"; finish; fi

# indent FILE: the comparison's detail lines, for the log.
show() { sed 's/^/#   /' "$1"; }

while read -r case; do
  [ -n "$case" ] || continue
  if [ -n "${FORMULA_CASES:-}" ] && ! [[ $case =~ $FORMULA_CASES ]]; then continue; fi
  ref=$FIX/$case.json
  args=()
  while IFS= read -r -d '' a; do args+=("$a"); done < <("${CMP[@]}" cli "$ref")
  out_dir=$W/$case
  cmd=(fit --data "$FIX/$case.csv" "${args[@]}" --tol 1e-10 --quiet --out "$out_dir")
  run "$case" "${cmd[@]}"
  if [ "$RC" -ne 0 ]; then
    msg=$(grep -m1 'natgrad: error' "$ALL" | cut -c1-400)
    bad "$case" "natgrad exit $RC: ${msg:-$(tail_of "$ERR" 4)}"
    printf '#   rerun: %s -n %s --oversubscribe %s' "$MPIEXEC" "$NP" "$EXE"; printf " '%s'" "${cmd[@]}"; echo
    continue
  fi
  if "${CMP[@]}" model "$ref" "$out_dir/model.json" >"$LOGS/$case.cmp" 2>&1; then
    ok "$(head -n 1 "$LOGS/$case.cmp")"
  else
    bad "$case" "model.json differs from R ($(($(wc -l <"$LOGS/$case.cmp") - 1)) items; details below)"
    show "$LOGS/$case.cmp"
    printf '#   rerun: %s -n %s --oversubscribe %s' "$MPIEXEC" "$NP" "$EXE"; printf " '%s'" "${cmd[@]}"; echo
  fi
done <"$FIX/cases.txt"

# birthwt: summary.txt against R's printed summary() (the issue's "done when").
if [ -z "${FORMULA_CASES:-}" ] || [[ birthwt =~ $FORMULA_CASES ]]; then
  S=$W/birthwt/summary.txt
  if [ ! -s "$S" ]; then
    bad "birthwt summary.txt" "no $S (the fit above failed?)"
  else
    for part in coef footer; do
      if "${CMP[@]}" summary "$FIX/birthwt_summary.txt" "$FIX/birthwt.json" "$S" --lines "$part" \
        >"$LOGS/summary-$part.cmp" 2>&1; then
        ok "birthwt $(head -n 1 "$LOGS/summary-$part.cmp")"
      else
        bad "birthwt summary.txt ($part)" "differs from R's summary() (details below; R's: $FIX/birthwt_summary.txt, natgrad's: $S)"
        show "$LOGS/summary-$part.cmp"
      fi
    done
  fi
fi
finish
