# Shared by tests/bench/wide/prepare.sh and run.sh (sourced): logging, usage, and the
# Debian packages each part needs, installed with apt-get when missing (as root, unless
# WIDE_INSTALL=0), as tests/bench/run.sh does for its peers.
WIDE_PY=/usr/bin/python3   # Debian's python, where python3-sklearn/python3-scipy install
WIDE_INSTALL=${WIDE_INSTALL:-1}

wide_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
wide_usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"; exit "${2:-2}"; }

wide_apt() {  # package...
  if [ "$WIDE_INSTALL" != 1 ] || [ "$(id -u)" != 0 ]; then
    wide_log "missing: $* (not installing: run as root without --no-install, or apt-get install them)"
    return 0
  fi
  wide_log "installing $* (apt-get)"
  local log=${TMPDIR:-/tmp}/natgrad-bench-wide-apt.log
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
    >"$log" 2>&1 || wide_log "apt-get failed (see $log); what is missing is skipped"
}
wide_have_python() {  # the answer is kept (exported) for the scripts this one calls
  [ "${WIDE_PY_OK:-}" = 1 ] && return 0
  "$WIDE_PY" -c 'import numpy, scipy, sklearn' >/dev/null 2>&1 || return 1
  export WIDE_PY_OK=1
}
wide_have_r() {  # movielens|insteval
  command -v Rscript >/dev/null || return 1
  local pkg=dslabs
  [ "$1" = insteval ] && pkg=lme4
  Rscript -e "quit(status = !requireNamespace('$pkg', quietly = TRUE))" >/dev/null 2>&1
}
wide_need_python() { wide_have_python || wide_apt python3-numpy python3-scipy python3-sklearn; }
wide_need_r() {
  { wide_have_r movielens && wide_have_r insteval; } || wide_apt r-base-core r-cran-dslabs r-cran-lme4
}
wide_need_tools() {  # time, liblinear-train
  local need=()
  [ -x /usr/bin/time ] || need+=(time)
  command -v liblinear-train >/dev/null || need+=(liblinear-tools)
  [ ${#need[@]} -eq 0 ] || wide_apt "${need[@]}"
}
