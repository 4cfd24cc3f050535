#!/usr/bin/env bash
# Checks of tests/support/harness.sh itself: that its helpers can fail. A stand-in for
# natgrad (a small script that prints and exits as told) runs under "mpiexec" (another
# stand-in that drops "-n NP --oversubscribe"), so no MPI and no build are needed.
#
# usage: bash tests/support/harness_selftest.sh WORKDIR
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/harness.sh"
need_args 1 "WORKDIR" "$@"
use_workdir "$1"

# The stand-ins: fake natgrad prints $1 to stdout and $2 to stderr, then exits with $3.
printf '#!/usr/bin/env bash\nprintf "%%b" "$1"; printf "%%b" "$2" >&2; exit "$3"\n' >"$W/natgrad"
printf '#!/usr/bin/env bash\nshift 3\nexec "$@"\n' >"$W/mpiexec"
chmod +x "$W/natgrad" "$W/mpiexec"
use_exe "$W/natgrad"
MPIEXEC=$W/mpiexec NP=2

# each: a helper call must succeed (yes) or fail (no).
each() {
  local want=$1 name=$2
  shift 2
  if "$@" >/dev/null 2>&1; then got=yes; else got=no; fi
  report "$name" "$([ "$got" = "$want" ] || echo "returned $got, expected $want")"
}
# closing CODE / status_of CODE: a fresh harness in a subshell runs CODE; the last line it
# printed / its exit status.
closing() { (. "$HERE/harness.sh" && eval "$1") 2>&1 | tail -n 1; }
status_of() { (. "$HERE/harness.sh" && eval "$1") >/dev/null 2>&1; echo $?; }

# Reporting and the closing line.
[ "$(closing 'ok a; ok b; finish')" = "2 passed, 0 failed" ] && ok "finish counts passes" ||
  bad "finish counts passes" "$(closing 'ok a; ok b; finish')"
[ "$(status_of 'ok a; finish')" = 0 ] && ok "finish: all passed, status 0" || bad "finish status" "not 0"
[ "$(status_of 'ok a; bad b why; finish')" = 1 ] && ok "finish: a failure, status 1" ||
  bad "finish with a failure" "status $(status_of 'ok a; bad b why; finish')"
[ "$(status_of 'finish')" = 1 ] && ok "finish: nothing passed, status 1" || bad "finish, no checks" "status 0"
[ "$(status_of 'begin_check x; fail one; end_check; ok y; finish')" = 1 ] &&
  ok "begin_check/fail/end_check reports a failure" || bad "end_check" "a failed check passed"
[ "$(closing 'report x ""; report y "why"; finish')" = "1 passed, 1 failed" ] &&
  ok "report: empty reason passes, a reason fails" || bad "report" "$(closing 'report x ""; report y "why"; finish')"

# Runs: status, output files, a timeout.
run ok0 "to stdout\n" "to stderr\n" 0
[ "$RC" -eq 0 ] && grep -q 'to stdout' "$OUT" && grep -q 'to stderr' "$ERR" && [ "$(wc -l <"$ALL")" -eq 2 ] &&
  ok "run: RC, OUT, ERR, ALL" || bad "run" "RC $RC, files $(tail_of "$ALL")"
run_np st3 1 "" "natgrad: error: it broke\n" 3
[ "$RC" -eq 3 ] && ok "run_np: the exit status" || bad "run_np" "RC $RC"
RUN_TIMEOUT=1 RUN_KILL_AFTER=1
printf '#!/usr/bin/env bash\nsleep 30\n' >"$W/sleeper"
chmod +x "$W/sleeper"
EXE=$W/sleeper
run hang
timed_out && ok "run: a hang is stopped and seen as a timeout (RC $RC)" || bad "timeout" "RC $RC"
RUN_TIMEOUT=120 RUN_KILL_AFTER=10
use_exe "$W/natgrad"

# expect: status and fragments.
(FAILED=0 PASSED=0; run e "" "natgrad: error: bad data\n" 1; expect e 1 "bad data"; [ "$PASSED" -eq 1 ]) >/dev/null &&
  ok "expect passes the right status and fragment" || bad "expect" "a right run failed"
(FAILED=0; run e "" "natgrad: error: bad data\n" 1; expect e 2 "bad data"; [ "$FAILED" -eq 1 ]) >/dev/null &&
  ok "expect fails a wrong status" || bad "expect" "a wrong status passed"
(FAILED=0; run e "" "natgrad: error: bad data\n" 1; expect e 1 "good data"; [ "$FAILED" -eq 1 ]) >/dev/null &&
  ok "expect fails a missing fragment" || bad "expect" "a missing fragment passed"

# need_one_error: once, with every fragment.
one_error() { run oe "" "$1" 1; begin_check oe; need_one_error "$ALL" "${@:2}"; [ -z "$WHY" ]; }
each yes "need_one_error: one message with the fragments" one_error "natgrad: error: file x:5: bad\n" "x:5" "bad"
each no "need_one_error: a fragment missing" one_error "natgrad: error: file x:5: bad\n" "x:6"
each no "need_one_error: printed twice" one_error "natgrad: error: a\nnatgrad: error: a\n" "a"
each no "need_one_error: no message" one_error "it failed\n" "failed"

# JSON readers.
printf '{\n  "loss": 0.25,\n  "coefficients": [\n    -1.5,\n    2e-3\n  ],\n  "deviance": -3.5e+2\n}\n' >"$W/m.json"
[ "$(json_coefs "$W/m.json")" = "-1.5,2e-3" ] && ok "json_coefs" || bad "json_coefs" "[$(json_coefs "$W/m.json")]"
[ "$(json_num "$W/m.json" loss)" = 0.25 ] && [ "$(json_num "$W/m.json" deviance)" = -3.5e+2 ] && ok "json_num" ||
  bad "json_num" "$(json_num "$W/m.json" loss) $(json_num "$W/m.json" deviance)"
[ -z "$(json_coefs "$W/missing.json")" ] && ok "json_coefs of a missing file is empty" || bad "json_coefs" "not empty"

# Numbers.
each yes "close_to within" close_to 1.0000001 1 1e-6
each no "close_to outside" close_to 1.00001 1 1e-6
each no "close_to of an empty value" close_to "" 1 1e-6
each yes "lists_close within" lists_close "1,-2.0000001,0" "1,-2,0" 1e-6
each no "lists_close outside" lists_close "1,-2.001,0" "1,-2,0" 1e-6
each no "lists_close of other lengths" lists_close "1,2" "1,2,3" 1e-6
each no "lists_close of empty lists" lists_close "" "" 1e-6
printf '{"coefficients": [1, -2, 3]}\n' >"$W/a.json"
printf '{"coefficients": [1, -2, 3.000000001]}\n' >"$W/b.json"
printf '{"coefficients": [1, -2, 3.1]}\n' >"$W/c.json"
each yes "coefs_close within" coefs_close "$W/a.json" "$W/b.json" 1e-6
each no "coefs_close outside" coefs_close "$W/a.json" "$W/c.json" 1e-6
each no "coefs_close of a missing file" coefs_close "$W/a.json" "$W/missing.json" 1e-6

finish
