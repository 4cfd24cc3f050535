#!/usr/bin/env bash
# The bad-input corpus (tests/corpus/cases.txt) through the natgrad command line.
#
# usage: bash tests/corpus/run_corpus.sh NATGRAD_EXE NRANKS WORKDIR [MPIEXEC] [CASE-PATTERN]
#
# Makes the inputs that are not stored in the repository (NPY files, lines of 10 MB, a
# FIFO, a directory, ...) under WORKDIR/gen, fits a small model for the predict cases,
# then runs every case of cases.txt (or those whose name matches the shell pattern
# CASE-PATTERN) as `timeout -k 5 30 MPIEXEC -n NRANKS --oversubscribe natgrad ARGS`, and
# checks: the exit status; for an error, "natgrad: error" exactly once in the combined
# output of all ranks, on one line of at most 400 characters holding every expected
# fragment, and nothing left in the case's --out directory (model.json, history.csv,
# summary.txt, predictions, *.tmp.*); for a success, the fragments in stdout and the
# coefficients; and that each run ended within 10 s. Prints "ok - NAME" / "not ok -
# NAME: why" per case, then "N passed, M failed" (tests/support/harness.sh); exits 1 if
# any case failed.
# Each run's output is kept in WORKDIR/logs/NAME.{out,err}; timings in
# WORKDIR/logs/timings.txt. Needs bash, coreutils, awk, sed, grep, gzip, mkfifo, perl
# (Debian's perl-base, for packing doubles into the NPY files) and, when run as root,
# setpriv (util-linux) for the one case that needs a file root cannot read.
set -u
. "$(dirname "$0")/../support/harness.sh"
rank_script_args "$@"
PATTERN=${5:-*}
HERE=$(cd "$(dirname "$0")" && pwd)
CASES=$HERE/cases.txt
C=$HERE/data
MAX_SECONDS=10
RUN_TIMEOUT=30
RUN_KILL_AFTER=5
# OpenMPI's mpiexec waits odls_base_sigkill_timeout (1 s, 2 s in practice) after a rank
# exits non-zero before it reaps the others; natgrad's ranks all exit by themselves, so
# the tests skip that wait (a user sees it: an error run then takes ~2.5 s, not 0.5 s).
export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-0}
G=$W/gen
mkdir -p "$G" "$W/out"

# ---------------------------------------------------------------------------
# Generated inputs.

# npy FILE DICT [DATA-BYTES-FILE]: an NPY 1.0 file whose header is DICT, padded with
# blanks and a newline to a multiple of 64 bytes as NumPy does, followed by the data.
npy() {
  local file=$1 dict=$2 data=${3:-/dev/null}
  local total=$(((10 + ${#dict} + 1 + 63) / 64 * 64))
  local hlen=$((total - 10))
  {
    printf '\223NUMPY\001\000'
    printf "\\$(printf '%03o' $((hlen % 256)))\\$(printf '%03o' $((hlen / 256)))"
    printf '%s' "$dict"
    printf '%*s' $((hlen - ${#dict} - 1)) ''
    printf '\n'
    cat "$data"
  } >"$file"
}
# doubles FILE V...: the values as little-endian float64 (perl's pack; "nan" is the quiet
# NaN 0x7FF8000000000000).
doubles() {
  local file=$1
  shift
  perl -e 'print map { $_ eq "nan" ? pack("Q<", 0x7FF8000000000000) : pack("d<", $_) } @ARGV' -- "$@" >"$file"
}

make_inputs() {
  # Python's repr of the header dict, built from a template: Q stands for a quote.
  dict() { printf '%s' "$1" | tr Q "'"; }
  doubles "$G/three_rows.bin" 1 0 3 1 5 2
  npy "$G/three_rows.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: False, QshapeQ: (3, 2), }")" "$G/three_rows.bin"
  local v=() i
  for i in $(seq 0 29); do v+=("$((i % 2))"); done
  v[23]=nan # row 7, column 2 of a 10 x 3 array
  doubles "$G/ten_by_three.bin" "${v[@]}"
  npy "$G/nan.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: False, QshapeQ: (10, 3), }")" "$G/ten_by_three.bin"
  head -c 200 "$G/ten_by_three.bin" >"$G/short.bin"
  npy "$G/truncated_data.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: False, QshapeQ: (10, 3), }")" "$G/short.bin"
  npy "$G/float16.npy" "$(dict "{QdescrQ: Q<f2Q, Qfortran_orderQ: False, QshapeQ: (10, 3), }")" "$G/short.bin"
  npy "$G/complex.npy" "$(dict "{QdescrQ: Q<c16Q, Qfortran_orderQ: False, QshapeQ: (2, 3), }")" "$G/short.bin"
  npy "$G/big_endian.npy" "$(dict "{QdescrQ: Q>f8Q, Qfortran_orderQ: False, QshapeQ: (10, 3), }")" "$G/ten_by_three.bin"
  npy "$G/fortran.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: True, QshapeQ: (10, 3), }")" "$G/ten_by_three.bin"
  npy "$G/three_d.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: False, QshapeQ: (2, 2, 2), }")" "$G/short.bin"
  npy "$G/malformed_header.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: Maybe, QshapeQ: (10, 3), }")" "$G/ten_by_three.bin"
  npy "$G/zero_rows.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: False, QshapeQ: (0, 3), }")"
  npy "$G/version9.npy" "$(dict "{QdescrQ: Q<f8Q, Qfortran_orderQ: False, QshapeQ: (10, 3), }")" "$G/ten_by_three.bin"
  printf '\011' | dd of="$G/version9.npy" bs=1 seek=6 conv=notrunc status=none
  head -c 50 "$G/nan.npy" >"$G/truncated_header.npy"
  printf 'y,a\n1,2\n0,3\n' >"$G/bad_magic.npy" # a CSV file named .npy
  : >"$G/empty.npy"
  : >"$G/empty.svm"
  # Lines longer than any buffer of the readers (4 MiB chunks, 64 KiB scans): 10 MB.
  { printf 'y,a,b\n1,2,3\n'; head -c 10000000 /dev/zero | tr '\0' x; printf ',1,2\n0,1,2\n1,4,5\n'; } >"$G/long_line.csv"
  { printf '1 1:2\n1 1:'; head -c 10000000 /dev/zero | tr '\0' y; printf '\n0 1:3\n1 1:4\n'; } >"$G/long_line.svm"
  # A header of 600001 fields (4.6 MB), then a data line of 3 fields.
  { awk 'BEGIN { printf "y"; for (j = 1; j <= 600000; j++) printf ",c%d", j; printf "\n" }'
    printf '1,2,3\n'; } >"$G/long_header.csv"
  # Inputs that cannot be opened or read as files.
  # Compressed files (by their magic bytes, whatever the name says).
  gzip -c "$C/good.csv" >"$G/good.csv.gz"
  cp "$G/good.csv.gz" "$G/gzip_named.csv"
  cp "$G/good.csv.gz" "$G/gzip_named.npy"
  if command -v zstd >/dev/null 2>&1; then
    zstd -q -c "$C/good.csv" >"$G/good.csv.zst"
  else # the frame's magic number is what natgrad looks at
    { printf '\050\265\057\375'; cat "$C/good.csv"; } >"$G/good.csv.zst"
  fi
  mkdir -p "$G/a_directory.csv"
  mkfifo "$G/fifo.csv"
  cp "$C/good.csv" "$G/unreadable.csv"
  chmod 000 "$G/unreadable.csv"
  # HDF5, when the build reads it (else the hdf5-* cases are skipped).
  printf 'y,a\n1,2\n0,3\n' >"$G/not_hdf5.h5"
  HDF5=0
  if "$EXE" generate --data gen:logit:rows=50,cols=3 --out "$G/gen.h5" >"$LOGS/setup-h5.out" 2>&1; then
    HDF5=1
  fi
}
make_inputs

# A model for the predict cases (and for --init / --resume): binomial on good.csv.
MODEL=$W/model/model.json
timeout -k 5 60 "$MPIEXEC" -n "$NP" --oversubscribe "$EXE" fit --no-intercept --data "$C/good.csv" --out "$W/model" \
  --quiet >"$LOGS/setup-model.out" 2>&1 </dev/null
if [ ! -f "$MODEL" ]; then
  bad setup "fitting $C/good.csv failed: $(tail_of "$LOGS/setup-model.out")"
  finish
fi

# ---------------------------------------------------------------------------
# The cases.

# expand TEXT: the placeholders of cases.txt replaced by paths of this run.
expand() {
  local s=$1
  s=${s//@C/$C}
  s=${s//@G/$G}
  s=${s//@O/$OUT_DIR}
  s=${s//@M/$MODEL}
  printf '%s' "$s"
}
# trim TEXT: without blanks at either end.
trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  s=${s%"${s##*[![:space:]]}"}
  printf '%s' "$s"
}
# results or temporary files left under DIR (a directory or a file's directory)
leftovers() {
  [ -e "$1" ] || return 0
  find "$1" \( -name model.json -o -name history.csv -o -name summary.txt -o -name 'p.csv' \
    -o -name '*.tmp.*' \) 2>/dev/null | head -n 3 | tr '\n' ' '
}

echo "# natgrad bad-input corpus: $EXE, $NP rank(s), work dir $W, launcher $MPIEXEC"
# parse_case LINE: sets NAME, WANT, OUT_DIR, ARGS_TEXT, ARGS, FRAGS and RUN_AS from a line
# of cases.txt, and SKIP_WHY when this build or user cannot run the case; returns 1 for a
# comment, a blank line or a case the pattern leaves out.
parse_case() {
  local line=$1 k
  case $line in '' | '#'*) return 1 ;; esac
  # name | status | args | fragments...
  IFS='|' read -r -a fields <<<"$line"
  NAME=$(trim "${fields[0]}")
  # shellcheck disable=SC2254
  case $NAME in $PATTERN) ;; *) return 1 ;; esac
  WANT=$(trim "${fields[1]}")
  OUT_DIR=$W/out/$NAME
  ARGS_TEXT=$(expand "$(trim "${fields[2]}")")
  read -r -a ARGS <<<"$ARGS_TEXT"
  FRAGS=()
  for ((k = 3; k < ${#fields[@]}; k++)); do FRAGS+=("$(expand "$(trim "${fields[k]}")")"); done
  RUN_AS=()
  SKIP_WHY=""
  if [ "$NAME" = data-unreadable ] && [ "$(id -u)" -eq 0 ]; then
    # chmod 000 does not stop root (CAP_DAC_OVERRIDE): run this case as nobody when
    # setpriv can and nobody may run natgrad; else skip it (data-is-directory,
    # data-is-fifo and data-path-through-file still cover failing opens).
    NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)
    if command -v setpriv >/dev/null 2>&1 && "${NOBODY[@]}" test -x "$EXE" -a -d "$G" 2>/dev/null; then
      RUN_AS=("${NOBODY[@]}")
    else
      SKIP_WHY="running as root, which may read any file, and setpriv cannot drop to nobody"
    fi
  fi
  if [ "$HDF5" -eq 0 ] && [ "${NAME#hdf5-}" != "$NAME" ]; then
    SKIP_WHY="this build has no parallel HDF5"
  fi
  return 0
}

# The runs first, PARALLEL at a time (each case has its own --out and logs, and a run is
# mostly mpirun's and the process's start-up, not CPU), each recording its status; then
# every case is judged in the file's order from its logs, as if the runs had been serial.
PARALLEL=${NATGRAD_CORPUS_PARALLEL:-4}
while IFS= read -r line || [ -n "$line" ]; do
  parse_case "$line" || continue
  [ -z "$SKIP_WHY" ] || continue
  if [ ${#RUN_AS[@]} -gt 0 ]; then
    # --out is checked writable before the data are read: let nobody write there.
    mkdir -p "$OUT_DIR" && chmod 777 "$OUT_DIR"
  fi
  # A predictions file inside the case's directory: the directory must exist.
  case $ARGS_TEXT in *"$OUT_DIR/"*) mkdir -p "$OUT_DIR" ;; esac
  # The cases on the inputs of megabytes (long lines, the long header) take CPU: each runs
  # alone, so that its time against MAX_SECONDS is what it was when every run was serial.
  limit=$PARALLEL
  case $ARGS_TEXT in *"$G/long_"*) limit=1 ;; esac
  while [ "$(jobs -rp | wc -l)" -ge "$limit" ]; do wait -n 2>/dev/null || true; done
  (
    run "$NAME" "${ARGS[@]}"
    echo "$RC $SECS" >"$LOGS/$NAME.rc"
  ) </dev/null &
  [ "$limit" -gt 1 ] || wait
done <"$CASES"
wait

while IFS= read -r line || [ -n "$line" ]; do
  parse_case "$line" || continue
  if [ -n "$SKIP_WHY" ]; then
    skip "$NAME" "$SKIP_WHY"
    continue
  fi

  begin_check "$NAME"
  OUT=$LOGS/$NAME.out ERR=$LOGS/$NAME.err ALL=$LOGS/$NAME.all
  read -r RC SECS <"$LOGS/$NAME.rc" 2>/dev/null || { RC=255 SECS=0; fail "the run left no status"; }

  if timed_out; then
    fail "timed out after 30 s (hang)"
  elif awk -v s="$SECS" -v m="$MAX_SECONDS" 'BEGIN { exit !(s > m) }'; then
    fail "took ${SECS}s (more than ${MAX_SECONDS}s)"
  fi
  if [ "$WANT" -eq 0 ]; then
    MSG=$(grep -m1 'natgrad: error' "$ALL")
    [ "$RC" -eq 0 ] || fail "exit status $RC, expected 0 (${MSG:-stderr: $(tail_of "$ERR")})"
    [ -z "$MSG" ] || fail "error printed: $MSG"
    for f in "${FRAGS[@]}"; do
      case $f in
        coef=*)
          got=$(json_coefs "$OUT_DIR/model.json")
          lists_close "$got" "${f#coef=}" 1e-6 || fail "coefficients [$got], expected [${f#coef=}]"
          ;;
        warn=*)
          n=$(grep -F -e "${f#warn=}" "$ALL" | grep -c 'natgrad: warning: ')
          [ "$n" -eq 1 ] || fail "warning '${f#warn=}' printed $n times (expected once)"
          ;;
        *) grep -qF -e "$f" "$OUT" || fail "'$f' not in stdout" ;;
      esac
    done
  else
    if [ "$RC" -ne "$WANT" ]; then fail "exit status $RC, expected $WANT"; fi
    need_one_error "$ALL" "${FRAGS[@]}"
    [ "${#MSG}" -le 400 ] || fail "message of ${#MSG} characters (at most 400)"
    left=$(leftovers "$OUT_DIR")
    [ -z "$left" ] || fail "left behind: $left"
  fi
  [ -n "$WHY" ] || CHECK="$NAME (${SECS}s)"
  end_check
done <"$CASES"

chmod -R u+rwx "$G" 2>/dev/null
finish
