#!/usr/bin/env bash
# The fit's and predict's per-row outputs, end to end at one rank count:
#  - fit --residuals: R's residuals(fit, type = deviance/pearson/working/response), the
#    fitted mean and the linear predictor (offset included), row by row, against R
#    (tests/fixtures/glm/NAME.residuals.csv, from tests/peers/residuals_reference.R);
#  - predict --se: se_eta and se_mu against R's predict.glm(se.fit = TRUE) on the link and
#    response scales; --model given the fit's --out directory; no covariance: the message;
#  - predict by name: a CSV with the columns reordered, an extra text column and no label
#    gives the same predictions as the fit's own file;
#  - the intercept default (R's): fit has one unless --no-intercept; both flags refused;
#    the note naming the predictors when no --columns / --formula named them.
# Usage: run_outputs_tests.sh NATGRAD NP WORKDIR [MPIEXEC]
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once
FIX=$(cd "$(dirname "$0")/../fixtures/glm" && pwd)

# compare_cols A B "COLS_A" "COLS_B" TOL: the CSV files A and B (header lines skipped)
# have the same number of lines, and column COLS_A[k] of A equals COLS_B[k] of B to
# |a - b| <= TOL (1 + |b|) on every line. Prints the first difference.
compare_cols() {
  awk -F, -v ca="$3" -v cb="$4" -v tol="$5" '
    BEGIN { na = split(ca, A, " "); split(cb, B, " ") }
    NR == FNR { if (FNR > 1) line[FNR] = $0; n = FNR; next }
    FNR > 1 {
      m = FNR; split(line[FNR], a, ",")
      for (k = 1; k <= na; k++) {
        x = a[A[k]] + 0; y = $(B[k]) + 0; d = x - y; if (d < 0) d = -d; s = y < 0 ? -y : y
        if (a[A[k]] == "" || d > tol * (1 + s)) { printf "line %d column %d: %s vs %s\n", FNR, A[k], a[A[k]], $(B[k]); bad = 1; exit 1 }
      }
    }
    END { if (!bad && m != n) { printf "%d lines vs %d\n", n, m; exit 1 } }' "$1" "$2"
}

# --- fit --residuals and predict --se against R ----------------------------------------
outcase() {  # outcase NAME FAMILY LINK [extra fit args]
  local name=$1 fam=$2 link=$3; shift 3
  local ref=$FIX/$name.residuals.csv why
  run "$name" fit --data "$FIX/$name.csv" --label-column y --family "$fam" --link "$link" --tol 1e-12 \
    --covariance --quiet --out "$W/$name" --residuals "$W/$name.res.csv" "$@"
  if [ "$RC" -ne 0 ]; then bad "$name residuals" "exit $RC: $(tail_of "$ALL" 2)"; return; fi
  begin_check "$name: --residuals equals R's residuals(), fitted() and linear.predictors"
  [ "$(head -1 "$W/$name.res.csv")" = "row,y,mu,eta,deviance,pearson,working,response" ] || fail "header $(head -1 "$W/$name.res.csv")"
  why=$(compare_cols "$W/$name.res.csv" "$ref" "1 2 3 4 5 6 7 8" "1 2 3 4 5 6 7 8" 1e-7) || fail "$why"
  end_check
  # predict with --model DIR (the fit's --out), standard errors on both scales
  run "$name.pred" predict --model "$W/$name" --data "$FIX/$name.csv" --out "$W/$name.pred.csv" --se
  begin_check "$name: predict --se gives R's se.fit on the link and the response scale"
  [ "$RC" -eq 0 ] || fail "exit $RC: $(tail_of "$ALL" 2)"
  [ "$(head -1 "$W/$name.pred.csv")" = "eta,mu,se_eta,se_mu" ] || fail "header $(head -1 "$W/$name.pred.csv")"
  why=$(compare_cols "$W/$name.pred.csv" "$ref" "1 2 3 4" "4 3 9 10" 1e-6) || fail "$why"
  end_check
}
outcase poisson_log_seatbelts_offset poisson log --offset-column offset
outcase binomial_logit_esoph_weighted binomial logit --weight-column w
outcase gamma_log_trees gamma log
outcase binomial_probit_infert binomial probit

# residuals written by every rank in row order: the row column is 1..n
if awk -F, 'NR > 1 && $1 != NR - 1 { exit 1 }' "$W/binomial_probit_infert.res.csv"; then
  ok "residuals: one line per data row, rows 1..n in order"
else bad "residuals row order" "$(head -3 "$W/binomial_probit_infert.res.csv" | tr '\n' '|')"; fi

# multinomial: the observed class and the class probabilities, as predict gives them
run mn fit --data "$FIX/multinomial_wine_scaled.csv" --label-column y --family multinomial --quiet \
  --out "$W/mn" --residuals "$W/mn.res.csv"
run mn.pred predict --model "$W/mn/model.json" --data "$FIX/multinomial_wine_scaled.csv" --out "$W/mn.pred.csv"
begin_check "multinomial --residuals: row, observed class, p0..p2 (= predict's)"
[ "$(head -1 "$W/mn.res.csv")" = "row,y,p0,p1,p2" ] || fail "header $(head -1 "$W/mn.res.csv")"
why=$(compare_cols "$W/mn.res.csv" "$W/mn.pred.csv" "3 4 5" "3 4 5" 1e-12) || fail "$why"
why=$(compare_cols "$W/mn.res.csv" "$FIX/multinomial_wine_scaled.csv" "2" "1" 0) || fail "label: $why"
end_check

# --se on a model without a covariance: the message says how to get one
run nocov fit --data "$FIX/gamma_log_trees.csv" --label-column y --family gamma --link log --quiet --out "$W/nocov"
run nocov.se predict --model "$W/nocov" --data "$FIX/gamma_log_trees.csv" --out "$W/nocov.csv" --se
begin_check "predict --se without a covariance: one error saying to refit with --covariance"
[ "$RC" -eq 1 ] || fail "exit $RC"
need_one_error "$ALL" "no covariance matrix" "refit with --covariance"
[ ! -e "$W/nocov.csv" ] || fail "wrote $W/nocov.csv"
end_check

# --- predict by name ----------------------------------------------------------------------
# gamma_log_trees.csv is y,Girth,Height: the same rows as "note,Height,Girth" (no label,
# an extra text column first) must give the same predictions.
awk -F, 'NR == 1 { print "note,Height,Girth"; next } { print "tree" NR - 1 "," $3 "," $2 }' \
  "$FIX/gamma_log_trees.csv" >"$W/trees_reordered.csv"
run byname predict --model "$W/gamma_log_trees/model.json" --data "$W/trees_reordered.csv" --out "$W/byname.csv" --se
begin_check "predict by name: reordered columns, an extra text column and no label give the same predictions"
[ "$RC" -eq 0 ] || fail "exit $RC: $(tail_of "$ALL" 2)"
grep -q "columns matched by header name" "$OUT" || fail "no 'matched by header name' in the output"
why=$(compare_cols "$W/byname.csv" "$W/gamma_log_trees.pred.csv" "1 2 3 4" "1 2 3 4" 1e-14) || fail "$why"
end_check
# the label kept when the header has it (here last), with an extra numeric column
awk -F, 'NR == 1 { print "Height,extra,Girth,y"; next } { print $3 "," NR "," $2 "," $1 }' \
  "$FIX/gamma_log_trees.csv" >"$W/trees_label_last.csv"
run byname2 predict --model "$W/gamma_log_trees" --data "$W/trees_label_last.csv" --out "$W/byname2.csv"
begin_check "predict by name: label found by its name, extra numeric column ignored"
[ "$RC" -eq 0 ] || fail "exit $RC: $(tail_of "$ALL" 2)"
why=$(compare_cols "$W/byname2.csv" "$W/gamma_log_trees.pred.csv" "1 2" "1 2" 1e-14) || fail "$why"
end_check
# a model column missing from the header: the old message (matched by position)
awk -F, '{ print $1 "," $2 }' "$FIX/gamma_log_trees.csv" >"$W/trees_no_height.csv"
run byname3 predict --model "$W/gamma_log_trees" --data "$W/trees_no_height.csv" --out "$W/byname3.csv"
begin_check "predict: a model column missing from the data is one error naming both column lists"
[ "$RC" -eq 1 ] || fail "exit $RC"
need_one_error "$ALL" "do not match the model's" "Girth, Height"
end_check

# --- the intercept default ------------------------------------------------------------------
run icpt fit --data "$FIX/gamma_log_trees.csv" --family gamma --link log --quiet --out "$W/icpt"
begin_check "fit: an intercept by default (R's), and the note naming the predictors"
[ "$RC" -eq 0 ] || fail "exit $RC"
grep -q '"(Intercept)"' "$W/icpt/model.json" || fail "no (Intercept) in model.json"
coefs_close "$W/icpt/model.json" "$FIX/gamma_log_trees.json" 1e-6 || fail "coefficients differ from R's glm(y ~ Girth + Height)"
grep -qF "note: predictors (all columns but the label): Girth, Height; name them with --columns or --formula" "$OUT" ||
  fail "no predictors note: $(grep note "$OUT")"
end_check
run noicpt fit --data "$FIX/gamma_log_trees.csv" --family gamma --link log --no-intercept --columns Girth,Height \
  --quiet --out "$W/noicpt"
begin_check "fit --no-intercept: no intercept; --columns: no predictors note"
[ "$RC" -eq 0 ] || fail "exit $RC"
grep -q '"(Intercept)"' "$W/noicpt/model.json" && fail "(Intercept) in model.json"
grep -q '"intercept": *false' "$W/noicpt/model.json" || fail "model.json does not say intercept false"
grep -q "note: predictors" "$OUT" && fail "a predictors note although --columns named them"
end_check
run both fit --data "$FIX/gamma_log_trees.csv" --family gamma --link log --intercept --no-intercept
begin_check "fit --intercept --no-intercept: refused"
[ "$RC" -eq 1 ] || fail "exit $RC"
need_one_error "$ALL" "--intercept and --no-intercept exclude each other"
end_check
# many predictors: the first 12, then the count
awk 'BEGIN { srand(3); printf "y"; for (j = 1; j <= 15; j++) printf ",c%d", j; print "";
  for (i = 0; i < 60; i++) { printf "%d", i % 2; for (j = 1; j <= 15; j++) printf ",%.3f", rand(); print "" } }' >"$W/wide.csv"
run wide fit --data "$W/wide.csv" --quiet --max-iter 3
begin_check "predictors note: the first 12 names, then the count"
grep -qF "note: predictors (all columns but the label): c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, ... (15 in all)" "$OUT" ||
  fail "$(grep note "$OUT")"
end_check

finish
