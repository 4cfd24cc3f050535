#!/usr/bin/env bash
# A real single-node Slurm for the tests: munge + slurmctld + slurmd on this host,
# everything (keys, state, spool, logs, sockets) under one directory.
#
# usage: slurm_harness.sh start DIR     install missing packages (Debian), write DIR/slurm.conf,
#                                       start munged, slurmctld, slurmd; wait until the node is idle
#        slurm_harness.sh stop DIR      cancel jobs, stop the daemons (SIGTERM, then SIGKILL)
#        slurm_harness.sh run DIR CMD.. CMD with SLURM_CONF pointing at DIR/slurm.conf
#        slurm_harness.sh env DIR       prints "export SLURM_CONF=..." for eval
#
# Written for running as root in a container (the CI machine: Debian 12, 2 cores):
# SlurmUser=root, SlurmdUser=root, ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
# no accounting database, no cgroups. The ports are picked free at start, so several
# harnesses (or a system Slurm) can run side by side. Every wait is bounded: a daemon
# that does not come up is a failure with its log printed, never a hang.
set -u

die() {
  echo "slurm_harness: $*" >&2
  exit 1
}

[ $# -ge 2 ] || die "usage: $0 start|stop|run|env DIR [CMD...]"
ACTION=$1
D=$2
shift 2

# Packages: Debian's slurm-wlm 22.05 (bookworm) and munge.
PKGS=(slurmctld slurmd slurm-client munge)

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (SlurmUser=root in this harness)"; }

install_missing() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get to install them"
  echo "slurm_harness: installing ${missing[*]}"
  # Keep the packages' init scripts from starting system daemons (the Debian way:
  # policy-rc.d exit 101), unless the image already has a policy.
  local policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local ok=0
  timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >"$D/apt.log" 2>&1 && ok=1
  if [ $ok -eq 0 ]; then
    timeout 300 apt-get update -q >>"$D/apt.log" 2>&1
    timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$D/apt.log" 2>&1 && ok=1
  fi
  [ $policy_added -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $ok -eq 1 ] || { tail -n 20 "$D/apt.log" >&2; die "apt-get install ${missing[*]} failed (log: $D/apt.log)"; }
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

pick_ports() {
  local base tries=0
  while [ $tries -lt 50 ]; do
    base=$((20000 + (RANDOM % 2000) * 10))
    if port_free $base && port_free $((base + 1)); then
      CTLD_PORT=$base
      SLURMD_PORT=$((base + 1))
      return 0
    fi
    tries=$((tries + 1))
  done
  die "no free port pair found"
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.5 s.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  while [ $SECONDS -lt $end ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

show_logs() {
  local f
  for f in "$D"/log/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 25 lines)" >&2
    tail -n 25 "$f" >&2
  done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
  local host cpus mem_kb mem_mb
  host=$(hostname -s)
  # nproc honours OMP_NUM_THREADS (set to 1 by the MPI tests' environment): not here.
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
  mem_mb=$((mem_kb / 1024 * 9 / 10))  # below the detected size, or slurmd drains the node
  cat >"$D/slurm.conf" <<EOF
# Written by tests/slurm/slurm_harness.sh for a single-node test cluster.
ClusterName=natgradtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/slurmd-%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=3600
SlurmctldTimeout=300
SlurmdTimeout=300
MessageTimeout=60
BatchStartTimeout=60
KillWait=10
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  need_root
  mkdir -p "$D" || die "cannot create $D"
  D=$(cd "$D" && pwd)
  install_missing
  for b in munged slurmctld slurmd sbatch srun scontrol sinfo squeue; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not found after installing ${PKGS[*]}"
  done
  export PATH="$PATH:/usr/sbin"
  mkdir -p "$D"/{munge,state,spool,run,log} || die "cannot create directories under $D"
  chmod 700 "$D/munge"
  # munge: a key made here (1024 random bytes), its socket under D.
  head -c 1024 /dev/urandom >"$D/munge/munge.key" && chmod 600 "$D/munge/munge.key" || die "cannot write munge key"
  munged --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.socket" \
    --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/munged.seed" \
    >>"$D/log/munged.log" 2>&1 || { show_logs; die "munged failed to start"; }
  wait_for 20 munge alive "$D/run/munged.pid" || { show_logs; die "munged is not running"; }
  if command -v munge >/dev/null && command -v unmunge >/dev/null; then
    wait_for 20 "munge round trip" sh -c "munge -S '$D/munge/munge.socket' -n | unmunge -S '$D/munge/munge.socket'" ||
      { show_logs; die "munge credential round trip failed"; }
  fi
  pick_ports
  write_conf
  export SLURM_CONF="$D/slurm.conf"
  # -i: ignore saved state (a fresh cluster each time).
  slurmctld -i -f "$SLURM_CONF" >>"$D/log/slurmctld.out" 2>&1 || { show_logs; die "slurmctld failed to start"; }
  wait_for 30 slurmctld scontrol ping || { show_logs; die "slurmctld did not answer 'scontrol ping' within 30 s"; }
  slurmd -f "$SLURM_CONF" >>"$D/log/slurmd.out" 2>&1 || { show_logs; die "slurmd failed to start"; }
  if ! wait_for 60 "idle node" sh -c "sinfo -h -N -o %T | grep -qx idle"; then
    sinfo -N -l >&2
    show_logs
    die "the node did not become idle within 60 s"
  fi
  echo "slurm_harness: up: $(sinfo -h -N -o '%N %T cpus=%c mem=%m') (SLURM_CONF=$SLURM_CONF, ports $CTLD_PORT/$SLURMD_PORT)"
}

stop() {
  [ -d "$D" ] || return 0
  export PATH="$PATH:/usr/sbin"
  if [ -f "$D/slurm.conf" ] && alive "$D/run/slurmctld.pid"; then
    SLURM_CONF="$D/slurm.conf" timeout 20 scancel --quiet --user=root 2>/dev/null
    sleep 1
  fi
  local pf pid n
  for pf in slurmd slurmctld munged; do
    [ -f "$D/run/$pf.pid" ] || continue
    pid=$(cat "$D/run/$pf.pid")
    kill -TERM "$pid" 2>/dev/null || continue
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 40 ]; do
      sleep 0.25
      n=$((n + 1))
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  # slurmstepd processes of this cluster (their command lines name the spool dir).
  local p
  for p in $(pgrep -f "slurmstepd" 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$p/environ" 2>/dev/null | grep -qF "$D/slurm.conf"; then kill -KILL "$p" 2>/dev/null; fi
  done
  return 0
}

case $ACTION in
  start) start ;;
  stop) stop ;;
  env) D=$(cd "$D" && pwd) && echo "export SLURM_CONF=$D/slurm.conf PATH=\$PATH:/usr/sbin" ;;
  run)
    D=$(cd "$D" && pwd) || exit 1
    SLURM_CONF="$D/slurm.conf" PATH="$PATH:/usr/sbin" exec "$@"
    ;;
  *) die "unknown action '$ACTION' (start, stop, run, env)" ;;
esac
