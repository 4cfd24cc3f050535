#!/usr/bin/env bash
# natgrad's penalised logistic fit against LIBLINEAR's -s 0 (L2-regularised logistic
# regression, primal): the same objective to 1e-8 relative and the same coefficients to
# 1e-5, both evaluated by one evaluator (tests/peers/liblinear_objective.py):
#   liblinear-train -s 0 -c C -e 1e-10 [-B 1]   vs
#   natgrad fit --l2 1/C (--no-intercept | --intercept --penalize-intercept)   (at NRANKS ranks)
# on generated sparse data (gen:sparse-logit, --solver cg) and on LIBLINEAR's own
# heart_scale example (Debian's liblinear-tools ships it; --solver auto and cg).
# Skipped (ctest SKIP_REGULAR_EXPRESSION "liblinear parity skipped") without
# liblinear-train. The docs' command pairs: docs/cli.md, "Objective parity with LIBLINEAR".
#
# usage: liblinear_parity.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC]
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
EVAL=$(cd "$(dirname "$0")" && pwd)/liblinear_objective.py

if ! command -v liblinear-train >/dev/null 2>&1; then
  echo "liblinear parity skipped: liblinear-train not found (Debian package liblinear-tools)"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "liblinear parity skipped: python3 not found (the objective evaluator)"
  exit 0
fi

# parity NAME DATA C LIBLINEAR_FLAGS NATGRAD_FLAGS: one LIBLINEAR fit, one natgrad fit at
# NP ranks, both models evaluated and compared.
parity() {
  local name=$1 data=$2 c=$3 ll_flags=$4 ng_flags=$5 l2
  l2=$(awk -v c="$c" 'BEGIN { printf "%.17g", 1 / c }')
  begin_check "$name"
  # shellcheck disable=SC2086
  if ! liblinear-train -s 0 -c "$c" -e 1e-10 $ll_flags "$data" "$W/$name.liblinear" >"$LOGS/$name.liblinear.log" 2>&1; then
    fail "liblinear-train failed: $(tail_of "$LOGS/$name.liblinear.log")"
    end_check
    return
  fi
  # shellcheck disable=SC2086
  run "$name" fit --data "$data" --l2 "$l2" $ng_flags --tol 1e-12 --no-inference --out "$W/$name"
  if [ "$RC" -ne 0 ]; then
    fail "natgrad fit exit $RC: $(tail_of "$ALL")"
    end_check
    return
  fi
  python3 "$EVAL" eval "$data" --C "$c" --liblinear "$W/$name.liblinear" --out "$W/$name.ll.json" \
    >"$LOGS/$name.eval-liblinear.log" 2>&1 ||
    fail "evaluating LIBLINEAR's model: $(tail_of "$LOGS/$name.eval-liblinear.log")"
  python3 "$EVAL" eval "$data" --C "$c" --natgrad "$W/$name/model.json" --out "$W/$name.ng.json" \
    >"$LOGS/$name.eval-natgrad.log" 2>&1 || fail "evaluating natgrad's model: $(tail_of "$LOGS/$name.eval-natgrad.log")"
  if [ -z "$WHY" ]; then
    python3 "$EVAL" compare "$W/$name.ng.json" "$W/$name.ll.json" --obj-rtol 1e-8 --coef-tol 1e-5 \
      >"$LOGS/$name.compare.log" 2>&1 || fail "$(tail_of "$LOGS/$name.compare.log" 2)"
    echo "# $name: $(head -n 1 "$LOGS/$name.compare.log")"
  fi
  end_check
}

# (a) Generated sparse data: 2000 rows x 5000 columns, 20 nonzeros per row (Zipf columns).
run_np generate 1 generate --data gen:sparse-logit:rows=2000,cols=5000,nnz=20 --out "$W/sparse.svm"
expect generate 0 "wrote"
if [ "$RC" -eq 0 ]; then
  parity sparse_c1 "$W/sparse.svm" 1 "" "--solver cg --no-intercept"
  parity sparse_c1_bias "$W/sparse.svm" 1 "-B 1" "--solver cg --intercept --penalize-intercept"
fi

# (b) LIBLINEAR's heart_scale (270 rows, 13 features, labels -1/+1), read by content (no
# extension); p = 13, so --solver auto is Cholesky.
HEART=""
for f in /usr/share/doc/liblinear-tools/examples/heart_scale $(dpkg -L liblinear-tools 2>/dev/null | grep '/heart_scale'); do
  case $f in
    *.gz) [ -f "$f" ] && gzip -dc "$f" >"$W/heart_scale" && HEART=$W/heart_scale ;;
    *) [ -f "$f" ] && HEART=$f ;;
  esac
  [ -n "$HEART" ] && break
done
if [ -z "$HEART" ]; then
  skip heart_scale "LIBLINEAR's heart_scale example not found (dpkg -L liblinear-tools)"
else
  parity heart_c1 "$HEART" 1 "" "--no-intercept"
  parity heart_c1_bias "$HEART" 1 "-B 1" "--intercept --penalize-intercept"
  parity heart_c4_cg "$HEART" 4 "" "--solver cg --no-intercept"
fi

finish
