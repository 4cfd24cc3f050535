#!/usr/bin/env bash
# End-to-end checks of the GLM features through the CLI at one rank count:
# families on real data (fixtures from R / statsmodels), weights, offsets, multinomial,
# predict, L2 (one-hot factors keeping every level fitted under --l2), and the hard cases
# (separation, collinear and constant columns, a
# singular Fisher, a non-finite loss), each with its message and exit status.
# Usage: run_glm_cli_tests.sh NATGRAD NP WORKDIR [MPIEXEC]
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once
FIX=$(cd "$(dirname "$0")/../fixtures/glm" && pwd)

# --- families on real data: deviance and AIC as R computed them ---------------------
fitcase() {  # fitcase NAME FAMILY LINK [extra args]
  local name=$1 fam=$2 link=$3; shift 3
  run "$name" fit --data "$FIX/$name.csv" --label-column y --intercept --family "$fam" --link "$link" \
    --tol 1e-10 --quiet --out "$W/$name" "$@"
  if [ "$RC" -ne 0 ]; then bad "$name" "exit $RC: $(tail_of "$ALL" 2)"; return; fi
  local dev ref aic raic
  dev=$(json_num "$W/$name/model.json" deviance); ref=$(json_num "$FIX/$name.json" deviance)
  aic=$(json_num "$W/$name/model.json" aic); raic=$(json_num "$FIX/$name.json" aic)
  if close_to "$dev" "$ref" 1e-8 && close_to "$aic" "$raic" 1e-8 && [ -s "$W/$name/summary.txt" ]; then
    ok "$name: deviance $dev and AIC match the peer"
  else
    bad "$name" "deviance $dev vs $ref, aic $aic vs $raic"
  fi
}
fitcase binomial_logit_infert binomial logit
fitcase binomial_probit_infert binomial probit
fitcase binomial_cloglog_infert binomial cloglog
fitcase binomial_logit_esoph_weighted binomial logit --weight-column w
fitcase poisson_log_seatbelts_offset poisson log --offset-column offset
fitcase gaussian_identity_mtcars gaussian identity
fitcase gamma_inverse_trees gamma inverse
fitcase gamma_log_trees gamma log
fitcase multinomial_wine_scaled multinomial softmax --covariance

# the summary reads like R's
if grep -q "Pr(>|t|)" "$W/gaussian_identity_mtcars/summary.txt" &&
   grep -q "Dispersion parameter for gaussian family taken to be" "$W/gaussian_identity_mtcars/summary.txt" &&
   grep -q "Residual deviance:" "$W/gaussian_identity_mtcars/summary.txt" &&
   grep -q "Pr(>|z|)" "$W/binomial_logit_infert/summary.txt"; then ok "summary.txt reads like R's summary.glm"
else bad "summary" "missing R-style lines"; fi
for key in coefficients std_errors robust_std_errors log_likelihood deviance null_deviance aic bic dispersion names; do
  grep -q "\"$key\"" "$W/poisson_log_seatbelts_offset/model.json" || { bad "model.json keys" "no $key"; key=; break; }
done
[ -n "${key:-}" ] && ok "model.json has the inference keys"

# --- predict -------------------------------------------------------------------------
run fitcov fit --data "$FIX/gaussian_identity_mtcars.csv" --label-column y --intercept --family gaussian \
  --covariance --quiet --out "$W/fitcov"
run predict predict --model "$W/fitcov/model.json" --data "$FIX/gaussian_identity_mtcars.csv" \
  --out "$W/pred.csv" --se
if [ "$RC" -eq 0 ] && [ "$(head -1 "$W/pred.csv")" = "eta,mu,se_eta,se_mu" ] && [ "$(wc -l <"$W/pred.csv")" -eq 33 ]; then
  # gaussian identity: mu = eta, se_mu = se_eta, and mean of the residuals y - mu is 0 with an intercept
  if awk -F, 'NR==FNR { if (FNR > 1) y[FNR] = $1; next } FNR > 1 { d = $4 - $3; if ($1 != $2 || $3 <= 0 || d > 1e-14 * $3 || -d > 1e-14 * $3) bad = 1; s += y[FNR] - $2 }
              END { if (s < 0) s = -s; exit !(bad == 0 && s < 1e-8) }' "$FIX/gaussian_identity_mtcars.csv" "$W/pred.csv"; then
    ok "predict: one line per row in order, mu = eta, residuals sum to 0, se_mu = se_eta > 0"
  else bad "predict" "values wrong"; fi
else bad "predict" "exit $RC or wrong shape: $(head -2 "$W/pred.csv" 2>/dev/null)"; fi
run predict_mn predict --model "$W/multinomial_wine_scaled/model.json" --data "$FIX/multinomial_wine_scaled.csv" \
  --out "$W/pred_mn.csv"
if [ "$RC" -eq 0 ] && head -1 "$W/pred_mn.csv" | grep -q "eta1,eta2,p0,p1,p2,class" &&
   awk -F, 'NR > 1 { s = $3 + $4 + $5; if (s < 1 - 1e-12 || s > 1 + 1e-12) exit 1 }' "$W/pred_mn.csv"; then
  ok "predict multinomial: class probabilities sum to 1"
else bad "predict multinomial" "exit $RC: $(tail_of "$ALL" 2)"; fi

# --- L2 shrinks the coefficients ---------------------------------------------------------
run ridge fit --data "$FIX/binomial_logit_infert.csv" --label-column y --intercept --l2 50 --quiet --out "$W/ridge"
if [ "$RC" -eq 0 ]; then
  # the sum of squared coefficients, the intercept included
  sumsq() { json_coefs "$1" | awk -F, '{ for (i = 1; i <= NF; i++) s += $i * $i } END { print s }'; }
  a=$(sumsq "$W/binomial_logit_infert/model.json")
  b=$(sumsq "$W/ridge/model.json")
  awk -v a="$a" -v b="$b" 'BEGIN { exit !(b < a) }' && ok "--l2 shrinks the coefficients ($b < $a)" || bad "--l2" "$b >= $a"
else bad "--l2" "exit $RC"; fi

# --- hard cases ---------------------------------------------------------------------------
printf 'y,x\n0,-3\n0,-2\n0,-1\n1,1\n1,2\n1,3\n' >"$W/sep.csv"
run separation fit --data "$W/sep.csv" --intercept --out "$W/sep"
expect separation 2 "separation" "no finite maximum-likelihood estimate"
printf 'y,x1,x2\n0,-3,1\n0,-2,0\n0,-1,2\n1,0,0\n0,0,1\n1,0,2\n1,1,0\n1,2,1\n1,3,1\n' >"$W/quasi.csv"
run quasi fit --data "$W/quasi.csv" --intercept
expect quasi 2 "separation"

"$EXE" generate --data gen:logit:rows=400,cols=3,seed=5 --out "$W/g.csv" >/dev/null 2>&1
awk -F, 'NR == 1 { print $0 ",sum,const"; next } { printf "%s,%.17g,7\n", $0, $2 + 2 * $3 }' "$W/g.csv" >"$W/col.csv"
run collinear fit --data "$W/col.csv" --intercept --out "$W/col"
expect collinear 1 "columns sum, const are linearly dependent" "--drop-collinear"
[ -e "$W/col/model.json" ] && bad "collinear" "model.json written"
run dropped fit --data "$W/col.csv" --intercept --drop-collinear --out "$W/drop"
expect dropped 0 "dropped linearly dependent column(s): sum, const"
if grep -q '"dropped": \[' "$W/drop/model.json" && grep -q 'null' "$W/drop/model.json" &&
   grep -q "NA" "$W/drop/summary.txt"; then ok "dropped columns are NA (null in model.json)"
else bad "dropped" "no NA/null"; fi
awk -F, 'NR == 1 { print $0 ",zero"; next } { print $0 ",0" }' "$W/g.csv" >"$W/zero.csv"
run zero fit --data "$W/zero.csv" --intercept
expect zero 1 "column zero is linearly dependent"

# one-hot factors keeping every level (as LIBSVM files do) after an intercept: refused
# without a penalty; with --l2 only the unpenalised intercept must be independent, so the
# fit runs, with standard errors, to the same estimate by Cholesky (dense) and CG (CSR)
awk 'BEGIN { for (i = 1; i <= 600; i++) {
  a = (7 * i) % 4; b = int(i / 3) % 3; x = sin(i)
  u = 43758.5453 * sin(12.9898 * i); u -= int(u); if (u < 0) u += 1
  eta = 0.5 * x + (a - 1.5) * 0.6 + (b == 1 ? -0.7 : 0.3)
  printf "%d %d:1 %d:1 8:%.17g\n", u < 1 / (1 + exp(-eta)), a + 1, b + 5, x } }' >"$W/onehot.svm"
run onehot fit --data "$W/onehot.svm" --intercept --out "$W/oh0"
expect onehot_refused 1 "columns x4, x7 are linearly dependent"
run onehot_l2 fit --data "$W/onehot.svm" --intercept --l2 1 --solver cholesky --tol 1e-12 --out "$W/oh1"
expect onehot_l2 0 "Number of iterations"
run onehot_l2_cg fit --data "$W/onehot.svm" --intercept --l2 1 --solver cg --layout sparse --tol 1e-12 \
  --drop-collinear --out "$W/oh2"
expect onehot_l2_cg 0 "Number of iterations"
begin_check "one-hot with --l2: Cholesky and CG agree, nothing dropped, standard errors"
need "coefficients differ" coefs_close "$W/oh2/model.json" "$W/oh1/model.json" 1e-6
need "a column dropped" grep -q '"dropped": \[\]' "$W/oh2/model.json"
SE=$(json_array "$W/oh1/model.json" std_errors)
case $SE in *[0-9]*,*) case $SE in *null*) fail "a standard error is null: $SE" ;; esac ;;
  *) fail "no standard errors: '$SE'" ;; esac
end_check

# a start where every row has |eta| > 745: the Fisher is exactly zero while the gradient
# is not (misclassified rows both ways), and no damping makes it usable
printf 'y,x\n0,1\n0,1\n1,1\n1,-1\n0,-1\n1,-1\n' >"$W/mixed.csv"
printf '{"coefficients": [-6667]}\n' >"$W/far.json"
run singular fit --no-intercept --data "$W/mixed.csv" --init "$W/far.json"
expect singular 2 "Fisher singular after raising the damping"
# a step that lands there is retreated from (this fixed huge rate still fails in the end)
run retreat fit --no-intercept --data "$W/mixed.csv" --start zero --step fixed --lr 1e4 --max-iter 50
expect retreat 2 "Fisher singular; halving the step"
# a log-link step so large that the loss overflows: a fixed step is never shortened
# silently, so the fit has diverged (a line search would halve its trial instead)
awk -F, 'NR == 1 { print; next } { $1 = int(($2 + 3) * 20); print }' OFS=, "$W/g.csv" >"$W/counts.csv"
run halving fit --data "$W/counts.csv" --intercept --family poisson --start zero --step fixed --lr 1e6 --max-iter 300 --quiet
expect halving 2 "natgrad: fit diverged"
run halving_armijo fit --data "$W/counts.csv" --intercept --family poisson --start zero --quiet
expect halving_armijo 0 "converged"
# gamma with the inverse link at theta = 0 has mu = 1/0: no finite start
awk -F, 'NR == 1 { print; next } { $1 = $1 + 1; print }' OFS=, "$W/g.csv" >"$W/pos.csv"
run nonfinite fit --data "$W/pos.csv" --intercept --family gamma --link inverse --start zero
expect nonfinite 2 "loss or gradient not finite"
# labels invalid for the family
run badlabel fit --no-intercept --data "$W/g.csv" --family gamma
expect badlabel 1 "invalid for gamma/inverse" "a positive value"
run badlink fit --no-intercept --data "$W/g.csv" --family poisson --link logit
expect badlink 1 "--link logit is not available for family poisson"

finish
