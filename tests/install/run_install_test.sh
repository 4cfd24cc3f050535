#!/usr/bin/env bash
# Installs natgrad from BUILD_DIR into a temporary prefix, then checks what a user of the
# installation gets: the executable runs, the headers and the CMake package are there,
# and tests/install_consumer (find_package(natgrad), natgrad::fit_glm with its own
# communicator) configures, builds and runs under MPIEXEC -n 2, giving the CLI's numbers.
#
# usage: run_install_test.sh BUILD_DIR SOURCE_DIR WORK_DIR [MPIEXEC]
set -u
. "$(dirname "$0")/../support/harness.sh"
need_args 3 "BUILD_DIR SOURCE_DIR WORK_DIR [MPIEXEC]" "$@"
B=$1 S=$2 W=$3 MPIEXEC=${4:-mpiexec}
rm -rf "$W" && mkdir -p "$W" || exit 2
trap 'rm -rf "$W"' EXIT  # the prefix and the consumer's build go when the test ends
P=$W/prefix

if timeout 120 cmake --install "$B" --prefix "$P" >"$W/install.log" 2>&1; then ok "cmake --install"; else
  bad "cmake --install" "$(tail -n 5 "$W/install.log")"; finish; fi

missing=""
for f in bin/natgrad include/natgrad/core/solver.hpp include/natgrad/core/communicator.hpp \
  include/natgrad/core/glm_fit.hpp include/natgrad/io/reader.hpp lib/libnatgrad_core.a lib/libnatgrad_io.a \
  lib/cmake/natgrad/natgradConfig.cmake lib/cmake/natgrad/natgradConfigVersion.cmake \
  lib/cmake/natgrad/natgradTargets.cmake lib/cmake/natgrad/FindNatgradOpenBLAS.cmake; do
  [ -e "$P/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && ok "installed files" || bad "installed files" "missing:$missing"
# Only the public API is installed: no private header (kernels, SIMD switch, reader internals).
private=$(cd "$P/include" && find natgrad -name 'kernels.hpp' -o -name 'simd.hpp' -o -name 'reader_detail.hpp' -o -name '*detail*')
[ -z "$private" ] && ok "no private headers installed" || bad "no private headers installed" "found: $private"

# The installed executable runs from the prefix (single-node mode, no mpirun).
if out=$(cd "$W" && timeout 60 "$P/bin/natgrad" fit --no-intercept --data gen:logit:rows=2000,cols=3 --quiet 2>&1) &&
  echo "$out" | grep -q 'converged'; then ok "installed natgrad fits"; else bad "installed natgrad fits" "$(echo "$out" | tail -n 3)"; fi

if timeout 300 cmake -S "$S/tests/install_consumer" -B "$W/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$P" >"$W/consumer-config.log" 2>&1; then ok "consumer: find_package(natgrad)"; else
  bad "consumer: find_package(natgrad)" "$(grep -m3 -i error "$W/consumer-config.log")"; finish; fi
if timeout 300 cmake --build "$W/consumer" >"$W/consumer-build.log" 2>&1; then ok "consumer builds against natgrad::natgrad"; else
  bad "consumer builds" "$(grep -m3 -i error "$W/consumer-build.log")"; finish; fi
if timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$W/consumer/consumer" >"$W/consumer-run.log" 2>&1 &&
  grep -q 'consumer: 2 rank(s), converged' "$W/consumer-run.log"; then ok "consumer runs natgrad::fit_glm on 2 ranks"; else
  bad "consumer runs natgrad::fit_glm on 2 ranks" "$(tail -n 4 "$W/consumer-run.log" | tr '\n' '|')"; fi
# The library call gives what the command line gives: the same coefficients and standard
# errors as `natgrad fit` on the same data at the same rank count (same iterates: equal to
# the last digits; 1e-12 relative allows only for the text round trip).
if timeout 120 "$MPIEXEC" -n 2 --oversubscribe "$P/bin/natgrad" fit --data gen:logit:rows=4000,cols=5,seed=7 \
  --intercept --threads 1 --quiet --out "$W/cli" >"$W/cli.log" 2>&1 &&
  python3 - "$W/cli/model.json" "$W/consumer-run.log" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
rows = [l.split() for l in open(sys.argv[2]) if l.startswith("coef ")]
assert [r[1] for r in rows] == m["names"], (rows, m["names"])
for r, b, s in zip(rows, m["coefficients"], m["std_errors"]):
    for a, c in ((float(r[2]), b), (float(r[3]), s)):
        assert abs(a - c) <= 1e-12 * max(1.0, abs(c)), (r, b, s)
PY
then ok "fit_glm gives the CLI's coefficients and standard errors"; else
  bad "fit_glm gives the CLI's coefficients and standard errors" "$(tail -n 3 "$W/cli.log" | tr '\n' '|')"; fi
cat "$W/consumer-run.log"
finish
