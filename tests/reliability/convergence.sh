#!/usr/bin/env bash
# Never a wrong answer with exit 0: non-convergence and divergence through the CLI at one
# rank count. A fit that runs away (a fixed step too long, any method, any family) ends
# with a "diverged" reason and exit 2, without shortening the fixed step; a fit stopped
# at the iteration limit exits 0 but says "did not converge" on stderr and at the top of
# summary.txt; multinomial labels with an empty class are refused with the remedy; a
# 2-class multinomial fit is the binomial logit fit.
# Usage: convergence.sh NATGRAD NP WORKDIR [MPIEXEC]
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once
FIX=$(cd "$(dirname "$0")/../fixtures/glm" && pwd)
RUN_TIMEOUT=60

# diverged NAME DIR: the last run ended diverged, as a diverged fit must report it.
diverged() {
  local name=$1 dir=$2
  begin_check "$name"
  [ "$RC" -eq 2 ] || fail "exit $RC, expected 2: $(tail_of "$ALL")"
  grep -q "^natgrad: fit diverged: " "$ERR" || fail "no 'natgrad: fit diverged' on stderr: $(tail_of "$ERR")"
  [ "$(head -n 1 "$dir/summary.txt" 2>/dev/null | cut -c1-28)" = "did not converge: diverged: " ] ||
    fail "summary.txt does not start with 'did not converge: diverged: ' ($(head -n 1 "$dir/summary.txt" 2>/dev/null))"
  grep -q '"converged": false' "$dir/model.json" 2>/dev/null || fail "model.json does not say converged false"
  grep -q 'Std. Error' "$dir/summary.txt" 2>/dev/null && fail "standard errors printed for a diverged estimate"
  # --step fixed: every step taken has the length asked for (history.csv column 7), unless
  # a note says it was retreated from an unusable Fisher; never from a non-finite loss
  local short
  short=$(awk -F, 'NR > 2 && $7 != 1000000 { print "iteration " $1 ": step " $7; exit }' "$dir/history.csv" 2>/dev/null)
  if [ -n "$short" ] && ! grep -q "Fisher singular; halving the step" "$OUT"; then
    fail "the fixed step was shortened without a note: $short"
  fi
  grep -q "non-finite loss; halving the step" "$ALL" && fail "the fixed step was halved after a non-finite loss"
  end_check
}

# --- a fixed step of 1e6: every method, the families measured ------------------------
run gd_logit fit --data "$FIX/binomial_logit_infert.csv" --intercept --method gd --step fixed --lr 1e6 \
  --max-iter 300 --quiet --out "$W/gd_logit"
diverged "gd, binomial, --step fixed --lr 1e6: diverged, exit 2" "$W/gd_logit"
run ngd_logit fit --data "$FIX/binomial_logit_infert.csv" --intercept --step fixed --lr 1e6 \
  --max-iter 300 --quiet --out "$W/ngd_logit"
diverged "ngd, binomial, --step fixed --lr 1e6: diverged, exit 2" "$W/ngd_logit"
run diag_poisson fit --data "$FIX/poisson_log_warpbreaks.csv" --intercept --family poisson --method diag \
  --step fixed --lr 1e6 --max-iter 300 --quiet --out "$W/diag_poisson"
diverged "diag, poisson, --step fixed --lr 1e6: diverged, exit 2" "$W/diag_poisson"
run ngd_poisson fit --data "$FIX/poisson_log_warpbreaks.csv" --intercept --family poisson \
  --step fixed --lr 1e6 --max-iter 300 --quiet --out "$W/ngd_poisson"
diverged "ngd, poisson, --step fixed --lr 1e6: diverged, exit 2" "$W/ngd_poisson"
run ngd_gauss fit --data "$FIX/gaussian_identity_mtcars.csv" --intercept --family gaussian --start zero \
  --step fixed --lr 1e6 --max-iter 300 --quiet --out "$W/ngd_gauss"
diverged "ngd, gaussian, --step fixed --lr 1e6: diverged, exit 2" "$W/ngd_gauss"
run gd_gauss fit --data "$FIX/gaussian_identity_mtcars.csv" --intercept --family gaussian --start zero \
  --method gd --step fixed --lr 1e6 --max-iter 300 --quiet --out "$W/gd_gauss"
diverged "gd, gaussian, --step fixed --lr 1e6: diverged, exit 2" "$W/gd_gauss"

# a fixed step into a non-finite loss (gamma/inverse: mu = 1/eta, eta <= 0 has none) ends
# the fit at once, naming the cause; it used to be halved silently until the limit, exit 0
run overflow fit --data "$FIX/gamma_inverse_trees.csv" --intercept --family gamma --link inverse --step fixed \
  --lr 10 --quiet --out "$W/overflow"
begin_check "--step fixed into a non-finite loss: non_finite, exit 2, the cause named"
[ "$RC" -eq 2 ] || fail "exit $RC, expected 2: $(tail_of "$ALL")"
grep -q "^natgrad: fit diverged: loss or gradient not finite" "$ERR" || fail "stderr: $(tail_of "$ERR")"
grep -q "non-finite loss after a fixed step of length 10 (--step fixed never shortens a step" "$OUT" ||
  fail "no note naming the fixed step: $(tail_of "$ALL")"
grep -q "halving the step" "$ALL" && fail "the fixed step was halved"
grep -q '"reason_code": -2' "$W/overflow/model.json" 2>/dev/null || fail "reason_code is not -2 (non_finite)"
end_check

# the same data with a line search converge: the data are fine, the step was not
run armijo_poisson fit --data "$FIX/poisson_log_warpbreaks.csv" --intercept --family poisson --quiet
expect "the same poisson fit with --step armijo converges (exit 0)" 0 "converged"
run armijo_gamma fit --data "$FIX/gamma_inverse_trees.csv" --intercept --family gamma --link inverse --quiet
expect "the same gamma fit with --step armijo converges (exit 0)" 0 "converged"
run kl_gauss fit --data "$FIX/gaussian_identity_mtcars.csv" --intercept --family gaussian --start zero \
  --step kl --kl 1e6 --quiet
expect "the same gaussian fit from zero with --step kl converges (exit 0)" 0 "converged"

# --- the iteration limit: exit 0, but never silently -----------------------------------
run limit fit --data "$FIX/binomial_logit_infert.csv" --intercept --start zero --max-iter 2 --quiet --out "$W/limit"
begin_check "iteration limit: exit 0, a warning on stderr and at the top of summary.txt"
[ "$RC" -eq 0 ] || fail "exit $RC, expected 0: $(tail_of "$ALL")"
grep -q "^natgrad: warning: did not converge: iteration limit 2 reached (max |gradient| [0-9.e+-]*)" "$ERR" ||
  fail "no warning on stderr: $(tail_of "$ERR")"
head -n 1 "$W/limit/summary.txt" 2>/dev/null | grep -q "^did not converge: iteration limit 2 reached (max |gradient| " ||
  fail "summary.txt starts with '$(head -n 1 "$W/limit/summary.txt" 2>/dev/null)'"
grep -q "^did not converge: iteration limit 2 reached" "$OUT" || fail "the printed summary does not say so"
grep -q '"converged": false' "$W/limit/model.json" 2>/dev/null || fail "model.json does not say converged false"
end_check
run converged fit --data "$FIX/binomial_logit_infert.csv" --intercept --quiet --out "$W/converged"
begin_check "a converged fit: exit 0, nothing on stderr, summary.txt starts with Call:"
[ "$RC" -eq 0 ] || fail "exit $RC: $(tail_of "$ALL")"
[ -s "$ERR" ] && fail "stderr: $(tail_of "$ERR")"
[ "$(head -n 1 "$W/converged/summary.txt" 2>/dev/null)" = "Call:" ] || fail "summary.txt starts otherwise"
end_check

# --- multinomial labels ----------------------------------------------------------------
awk -F, 'NR == 1 { print; next } { $1 = $1 + 1; print }' OFS=, "$FIX/multinomial_wine_scaled.csv" >"$W/codes.csv"
run codes fit --data "$W/codes.csv" --intercept --family multinomial --out "$W/codes"
begin_check "labels 1..3 (R factor codes): refused, class 0 named, the remedy given"
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1"
need_one_error "$ERR" "class 0 has no rows (labels found: 1..3" "y - 1"
[ -e "$W/codes/model.json" ] && fail "model.json written"
end_check
run given fit --data "$FIX/multinomial_wine_scaled.csv" --intercept --family multinomial --classes 4
begin_check "--classes 4 on labels 0..2: refused, class 3 named, --classes 3 suggested"
[ "$RC" -eq 1 ] || fail "exit $RC, expected 1"
need_one_error "$ERR" "class 3 has no rows" "from --classes" "set --classes 3"
end_check

# 2 classes: the binomial logit fit (class 1 against class 0)
run binom fit --data "$FIX/binomial_logit_infert.csv" --intercept --tol 1e-10 --quiet --out "$W/binom"
run multi2 fit --data "$FIX/binomial_logit_infert.csv" --intercept --family multinomial --tol 1e-10 --quiet \
  --out "$W/multi2"
begin_check "2-class multinomial equals the binomial logit fit (coefficients, deviance)"
[ "$RC" -eq 0 ] || fail "exit $RC: $(tail_of "$ALL")"
why=$(coefs_close "$W/multi2/model.json" "$W/binom/model.json" 1e-8) || fail "coefficients: $why"
why=$(coefs_close "$W/multi2/model.json" "$FIX/binomial_logit_infert.json" 1e-6) || fail "against R: $why"
close_to "$(json_num "$W/multi2/model.json" deviance)" "$(json_num "$W/binom/model.json" deviance)" 1e-8 ||
  fail "deviance $(json_num "$W/multi2/model.json" deviance) vs $(json_num "$W/binom/model.json" deviance)"
close_to "$(json_num "$W/multi2/model.json" null_deviance)" "$(json_num "$FIX/binomial_logit_infert.json" null_deviance)" 1e-8 ||
  fail "null deviance $(json_num "$W/multi2/model.json" null_deviance)"
[ "$(json_num "$W/multi2/model.json" n_classes)" = 2 ] || fail "n_classes is not 2"
end_check

finish
