#!/usr/bin/env bash
# Scale invariance through the CLI (the issue's cases): 500-row logistic data with one
# column multiplied by 1e8, 1e12 or 1e-10 gives the unscaled fit, that coefficient and its
# standard error divided by the factor, with the Newton-decrement stop, exit 0; the
# gradient rule stays available (--stop gradient); a column of 1e-300s is refused with
# one message naming it, not called "all zero".
# Usage: numerics.sh NATGRAD NP WORKDIR [MPIEXEC]
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
reap_at_once

run gen generate --data gen:logit:rows=500,cols=3,seed=1 --out "$W/d.csv"
[ "$RC" -eq 0 ] || { bad "generate" "exit $RC: $(tail_of "$ALL")"; finish; }
# scale COLUMN FACTOR OUT: the CSV with column COLUMN (1-based, header kept) times FACTOR.
scale() {
  awk -F, -v c="$1" -v f="$2" 'BEGIN { OFS = "," } NR == 1 { print; next } { $c = sprintf("%.17g", $c * f); print }' \
    "$W/d.csv" >"$3"
}
# nth LIST N: the N-th (1-based) element of a comma-separated list.
nth() { printf '%s\n' "$1" | cut -d, -f"$2"; }

fitd() {  # fitd NAME FILE [args]
  local name=$1 file=$2
  shift 2
  run "$name" fit --data "$file" --label-column y --intercept --quiet --out "$W/$name" "$@"
}

fitd base "$W/d.csv"
expect "unscaled fit converges on the decrement" 0 "converged: Newton decrement below tol"
B=$W/base/model.json
bc=$(json_coefs "$B") bse=$(json_array "$B" std_errors) bdev=$(json_num "$B" deviance)

# x2 is CSV column 3 (y first) and parameter 3 (the intercept first).
for f in 1e8 1e12 1e-10; do
  scale 3 "$f" "$W/d_$f.csv"
  fitd "s$f" "$W/d_$f.csv"
  begin_check "column x2 times $f: the unscaled fit, x2's coefficient and standard error divided by $f"
  [ "$RC" -eq 0 ] || fail "exit $RC: $(tail_of "$ALL")"
  grep -qF "converged: Newton decrement below tol" "$ALL" || fail "not converged on the decrement: $(tail_of "$ALL")"
  M=$W/s$f/model.json
  c=$(json_coefs "$M") se=$(json_array "$M" std_errors)
  for j in 1 2 3 4; do
    k=1; [ "$j" -eq 3 ] && k=$f
    cj=$(awk -v a="$(nth "$c" "$j")" -v k="$k" 'BEGIN { printf "%.17g", a * k }')
    sj=$(awk -v a="$(nth "$se" "$j")" -v k="$k" 'BEGIN { printf "%.17g", a * k }')
    close_to "$cj" "$(nth "$bc" "$j")" 1e-8 || fail "coefficient $j: $cj (rescaled) vs $(nth "$bc" "$j")"
    close_to "$sj" "$(nth "$bse" "$j")" 1e-8 || fail "standard error $j: $sj (rescaled) vs $(nth "$bse" "$j")"
  done
  close_to "$(json_num "$M" deviance)" "$bdev" 1e-10 || fail "deviance $(json_num "$M" deviance) vs $bdev"
  end_check
done

# The gradient rule on request, and it says which rule stopped the fit.
fitd grad "$W/d_1e-10.csv" --stop gradient
expect "--stop gradient is the gradient max-norm rule" 0 "converged: gradient max-norm below tol"
run bad_stop fit --data "$W/d.csv" --label-column y --intercept --quiet --out "$W/bad_stop" --stop newton
begin_check "--stop with an unknown rule is refused"
[ "$RC" -ne 0 ] || fail "exit 0"
need_one_error "$ALL" "stop"
end_check

# A column of 1e-300s: named, one message, exit 1, no outputs (not "linearly dependent").
scale 3 1e-300 "$W/d_tiny.csv"
fitd tiny "$W/d_tiny.csv"
begin_check "a column of 1e-300s is refused with one message naming it"
[ "$RC" -eq 1 ] || fail "exit $RC"
need_one_error "$ALL" "column(s) x2" "values so small or so large"
grep -qF "linearly dependent" "$ALL" && fail "called linearly dependent"
[ -e "$W/tiny/model.json" ] && fail "model.json written"
end_check

finish
