#!/usr/bin/env bash
# Writes the wide/sparse benchmark's datasets (issue 13) as LIBSVM files into a cache
# directory outside the repository; tests/bench/wide/run.sh calls it for what is missing.
#
# usage: bash tests/bench/wide/prepare.sh [--data-dir DIR] [--no-install] [--force] [DATASET...]
#
#   DATASET       any of the names below (default: all four)
#                   synth-5k-20k      5,000 x 20,000, 30 nonzeros per row   (wide.py generate)
#                   synth-100k-200k   100,000 x 200,000, 40 nonzeros per row (wide.py generate)
#                   movielens         dslabs::movielens: rating >= 4 ~ user + movie, one-hot
#                   insteval          lme4::InstEval: y >= 4 ~ student + lecturer, one-hot
#                   smoke             200 x 500, 10 nonzeros per row (the ctest smoke variant)
#                   synth-1m-1m       optional, only when named: 1,000,000 x 1,000,000, 40 nonzeros
#                                     per row (issue 13's 'Done when'), from `natgrad generate
#                                     gen:sparse-logit:rows=1000000,cols=1000000,nnz=40` (labels
#                                     0/1 rewritten as -1/+1): 270 MB, ~40 s; needs --natgrad
#   --data-dir D  default ${NATGRAD_BENCH_DATA:-$HOME/.cache/natgrad-bench}/wide
#   --natgrad N   the natgrad binary that writes synth-1m-1m (run.sh passes its build's)
#   --no-install  do not apt-get what is missing (python3-scipy, python3-sklearn, r-base-core,
#                 r-cran-dslabs, r-cran-lme4); a dataset whose tools are missing is skipped
#   --force       rewrite files that exist
#
# Each DATA.svm comes with DATA.svm.meta (rows, cols, nnz, source). The synthetic files
# are deterministic (tests/bench/wide/wide.py generate, numpy's default_rng, seed 1); the
# generator is meant to be replaced by `natgrad generate gen:sparse-logit:...` once that
# writes LIBSVM. The labels are -1/+1, the indices 1-based, no intercept column.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
DATA=${NATGRAD_BENCH_DATA:-$HOME/.cache/natgrad-bench}/wide
FORCE=0 NATGRAD_BIN=
sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) DATA=$2; shift ;;
    --no-install) WIDE_INSTALL=0 ;;
    --force) FORCE=1 ;;
    --natgrad) NATGRAD_BIN=$2; shift ;;
    -h|--help) wide_usage "$0" 0 ;;
    -*) echo "prepare.sh: unknown option $1" >&2; wide_usage "$0" 2 ;;
    *) sets+=("$1") ;;
  esac
  shift
done
[ ${#sets[@]} -gt 0 ] || sets=(synth-5k-20k synth-100k-200k movielens insteval)
mkdir -p "$DATA"

need_py=0 need_r=0
for s in "${sets[@]}"; do
  case $s in
    synth-1m-1m) need_py=1 ;;
    synth-*|smoke) need_py=1 ;;
    movielens|insteval) need_r=1 ;;
    *) echo "prepare.sh: unknown dataset $s" >&2; exit 2 ;;
  esac
done
[ $need_py = 1 ] && wide_need_python
[ $need_r = 1 ] && wide_need_r

have() { [ $FORCE = 0 ] && [ -s "$DATA/$1.svm" ] && [ -s "$DATA/$1.svm.meta" ]; }
gen() {  # name rows cols nnz
  have "$1" && { wide_log "$DATA/$1.svm exists"; return 0; }
  wide_have_python || { wide_log "skipping $1: /usr/bin/python3 lacks numpy/scipy/sklearn"; return 0; }
  wide_log "generating $1 ($2 x $3, $4 nonzeros per row)"
  "$WIDE_PY" "$HERE/wide.py" generate "$DATA/$1.svm.tmp" --rows "$2" --cols "$3" --nnz "$4" --seed 1
  mv "$DATA/$1.svm.tmp.meta" "$DATA/$1.svm.meta"
  mv "$DATA/$1.svm.tmp" "$DATA/$1.svm"
}
gen_natgrad() {  # name rows cols nnz: natgrad's gen:sparse-logit written as LIBSVM
  have "$1" && { wide_log "$DATA/$1.svm exists"; return 0; }
  [ -n "$NATGRAD_BIN" ] && [ -x "$NATGRAD_BIN" ] || { wide_log "skipping $1: needs --natgrad (a natgrad binary)"; return 0; }
  wide_have_python || { wide_log "skipping $1: /usr/bin/python3 lacks numpy/scipy/sklearn"; return 0; }
  local spec="gen:sparse-logit:rows=$2,cols=$3,nnz=$4"
  wide_log "generating $1 ($spec)"
  OMP_NUM_THREADS=2 "$NATGRAD_BIN" generate --data "$spec" --out "$DATA/$1.tmp.svm" >&2
  sed -i 's/^0 /-1 /' "$DATA/$1.tmp.svm"  # labels -1/+1, as LIBLINEAR's files and wide.py's
  "$WIDE_PY" "$HERE/wide.py" meta "$DATA/$1.tmp.svm" --source "natgrad generate --data $spec" >&2
  mv "$DATA/$1.tmp.svm.meta" "$DATA/$1.svm.meta"
  mv "$DATA/$1.tmp.svm" "$DATA/$1.svm"
}
for s in "${sets[@]}"; do
  case $s in
    synth-1m-1m) gen_natgrad "$s" 1000000 1000000 40 ;;
    synth-5k-20k) gen "$s" 5000 20000 30 ;;
    synth-100k-200k) gen "$s" 100000 200000 40 ;;
    smoke) gen "$s" 200 500 10 ;;
    movielens|insteval)
      if have "$s"; then wide_log "$DATA/$s.svm exists"
      elif wide_have_r "$s"; then wide_log "writing $s from R"; Rscript "$HERE/r_datasets.R" "$DATA" "$s"
      else wide_log "skipping $s: Rscript or its R package is missing"; fi ;;
  esac
done
