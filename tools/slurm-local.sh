#!/usr/bin/env bash
# slurm-local.sh: a throwaway single-machine Slurm cluster, for the tests of
# gst-generative-batch and for trying --engine slurm without a cluster.
#
#   eval "$(tools/slurm-local.sh start)"   # prints "export SLURM_CONF=..." lines
#   sinfo; sbatch ...                       # talk to it
#   tools/slurm-local.sh stop               # jobs, daemons and the folder go
#
#   start [DIR]   starts munged, slurmctld and two slurmd (two emulated nodes
#                 on this host; one when the second will not start) with
#                 everything in DIR (default: a new temporary folder): the
#                 config, munge's key and socket, state, spool, logs.  Nothing
#                 in /etc, no systemd; the daemons run as the current user.
#                 Prints the export lines of SLURM_CONF and SLURM_LOCAL_DIR.
#                 Starting again while the cluster of $SLURM_LOCAL_DIR runs
#                 prints its lines again.
#   stop [DIR]    cancels every job, kills what is left of them (slurmstepd
#                 runs each job in a session of its own, so the daemons' end
#                 does not end the jobs), then the daemons, and removes DIR
#                 (default: $SLURM_LOCAL_DIR).  Stopping a cluster that is not
#                 there is no error.
#   status [DIR]  exits 0 when the cluster answers.
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge (tools/deps.sh).
# Slurm 22.05 without an accounting daemon: no sacct; per-task states and
# exit codes come from squeue -t all and scontrol show job.
set -euo pipefail

me=$(basename "$0")
die() { echo "$me: $*" >&2; exit 1; }

# Processes of the cluster in @dir, read from /proc: its daemons (started
# with SLURM_CONF and SLURM_LOCAL_DIR in their environment; slurmstepd gets
# SLURM_CONF from slurmd), its jobs (SLURM_JOB_ID and this SLURM_CONF: a
# shell that only talks to the cluster has no SLURM_JOB_ID) and every
# descendant of its slurmstepd (each job runs in a session of its own, and
# may have cleaned its environment).
procs_of() {
  python3 - "$1" <<'PY'
import os, sys
d = sys.argv[1]
conf = ("SLURM_CONF=%s/slurm.conf" % d).encode()
mark = ("SLURM_LOCAL_DIR=%s" % d).encode()
daemons = {"slurmctld", "slurmd", "slurmstepd", "slurmscriptd", "munged"}
me = {os.getpid(), os.getppid()}
found, children = set(), {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    pid = int(p)
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode(errors="replace")
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(pid)
        with open("/proc/%d/environ" % pid, "rb") as f:
            env = set(f.read().split(b"\0"))
    except (OSError, ValueError, IndexError):
        continue
    ours = conf in env or mark in env
    job = any(e.startswith(b"SLURM_JOB_ID=") for e in env)
    if ours and (comm in daemons or job):
        found.add(pid)
todo = list(found)
while todo:
    for c in children.get(todo.pop(), []):
        if c not in found:
            found.add(c)
            todo.append(c)
for pid in sorted(found - me):
    print(pid)
PY
}

# True while @pid is a live process (a zombie is not: kill -0 succeeds on
# one, but it runs nothing and only waits for its parent).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

pid_from() { [[ -s $1 ]] && tr -dc 0-9 <"$1"; }

# A port nothing listens on now (the kernel's pick of an ephemeral port).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

env_of() {
  local dir=$1
  echo "export SLURM_CONF=$dir/slurm.conf"
  echo "export SLURM_LOCAL_DIR=$dir"
}

# The cluster of @dir answers as itself: the controller is up and reports
# this cluster's name, so a port taken by another cluster cannot pass
# (munge's key alone would not show it: a foreign controller just fails).
answers() {
  local dir=$1 name
  [[ -f $dir/slurm.conf ]] || return 1
  name=$(sed -n 's/^ClusterName=//p' "$dir/slurm.conf")
  # (read whole: grep -q quitting early would fail scontrol under pipefail)
  local conf
  conf=$(SLURM_CONF=$dir/slurm.conf timeout 5 scontrol show config 2>/dev/null) || return 1
  grep -Eq "^ClusterName +=  *$name\$" <<<"$conf"
}

# Writes the config with free ports and starts the controller and the two
# slurmd; fails when they do not come up (a port taken meanwhile).
launch() {
  local dir=$1 name=$2 user=$3 cpus=$4 port_ctl port_n1 port_n2
  port_ctl=$(free_port)
  port_n1=$(free_port)
  port_n2=$(free_port)
  while [[ $port_n1 == "$port_ctl" ]]; do port_n1=$(free_port); done
  while [[ $port_n2 == "$port_ctl" || $port_n2 == "$port_n1" ]]; do port_n2=$(free_port); done
  cat >"$dir/slurm.conf" <<EOF
# Written by tools/slurm-local.sh: a cluster of one machine, for tests.
ClusterName=$name
SlurmctldHost=localhost
SlurmctldPort=$port_ctl
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
TmpFS=$dir/tmp
# No cgroups and no systemd: processes are tracked by their parents.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# Start jobs as soon as they can run (a test cluster has no load to batch).
SchedulerParameters=batch_sched_delay=0,sched_interval=1,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=2
MinJobAge=600
MailProg=/bin/true
SlurmctldDebug=info
SlurmdDebug=info
NodeName=n1 NodeHostname=localhost Port=$port_n1 CPUs=$cpus State=UNKNOWN
NodeName=n2 NodeHostname=localhost Port=$port_n2 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  slurmctld -i </dev/null >>"$dir/log/slurmctld.out" 2>&1 || return 1
  slurmd -N n1 </dev/null >>"$dir/log/slurmd-n1.out" 2>&1 || return 1
  two=1
  if ! slurmd -N n2 </dev/null >>"$dir/log/slurmd-n2.out" 2>&1; then
    two=0
  fi

  # Ready: the controller answers as this cluster (not another one on a
  # port taken since it was picked) and the nodes are idle.
  local t want idle
  want=$((two ? 2 : 1))
  for ((t = 0; t < 150; t++)); do
    if answers "$dir"; then
      idle=$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle$' || true)
      if ((idle >= want)); then
        break
      fi
    fi
    sleep 0.1
  done
  ((t < 150))
}

# Kills the Slurm daemons of @dir (not munged) and forgets their state.
kill_daemons() {
  local dir=$1 f p
  for f in "$dir"/run/*.pid; do
    p=$(pid_from "$f" || true)
    [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true
  done
  sleep 0.5
  rm -rf "$dir"/run/* "$dir"/state/* "$dir"/spool/*
}

start() {
  local dir=${1:-}
  if [[ -z $dir && -n ${SLURM_LOCAL_DIR:-} && -f ${SLURM_LOCAL_DIR}/.slurm-local ]] \
    && answers "$SLURM_LOCAL_DIR"; then
    env_of "$SLURM_LOCAL_DIR"
    return 0
  fi
  local b
  for b in slurmctld slurmd sinfo sbatch squeue scontrol scancel munged; do
    command -v "$b" >/dev/null || [[ -x /usr/sbin/$b ]] \
      || die "$b is missing (apt-get install --no-install-recommends slurmctld slurmd slurm-client munge)"
  done
  export PATH=$PATH:/usr/sbin
  if [[ -z $dir ]]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/slurm-local.XXXXXX")
  else
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -f $dir/.slurm-local ]] && answers "$dir"; then
      env_of "$dir"
      return 0
    fi
  fi
  touch "$dir/.slurm-local"
  # munged refuses folders that others may write to.
  chmod 0755 "$dir"
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/run" "$dir/tmp"
  chmod 0700 "$dir/munge"
  export SLURM_LOCAL_DIR=$dir SLURM_CONF=$dir/slurm.conf

  # If anything below fails, what did start is stopped again.
  trap 'stop "$SLURM_LOCAL_DIR" >/dev/null 2>&1 || true' ERR

  local user ncpu cpus name
  user=$(id -un)
  ncpu=$(nproc)
  # Two emulated nodes share the machine's cores.
  cpus=$((ncpu / 2 > 0 ? ncpu / 2 : 1))
  name=gl$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  # A munge key of its own: jobs of this cluster cannot be forged by, nor
  # sent to, another munged on the machine.
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" \
    --socket="$dir/munge/munge.socket.2" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
    </dev/null >>"$dir/log/munged.log" 2>&1 \
    || die "munged did not start: $(tail -3 "$dir/log/munged.log")"

  local attempt two=1
  for attempt in 1 2 3; do
    if launch "$dir" "$name" "$user" "$cpus"; then
      break
    fi
    kill_daemons "$dir"
    ((attempt < 3)) || die "the cluster in $dir did not come up (3 tries); see $dir/log/"
    echo "$me: the cluster did not come up; trying other ports" >&2
  done
  if ((!two)); then
    # This Slurm was built without multiple-slurmd: one node it is.
    scontrol update NodeName=n2 State=DOWN Reason=single-slurmd >/dev/null 2>&1 || true
    echo "$me: only one slurmd runs here (no multiple-slurmd support)" >&2
  fi
  trap - ERR
  env_of "$dir"
}

stop() {
  local dir=${1:-${SLURM_LOCAL_DIR:-}}
  [[ -n $dir ]] || return 0
  [[ -d $dir ]] || return 0
  [[ -f $dir/.slurm-local ]] || die "$dir is not a slurm-local.sh folder"
  export SLURM_CONF=$dir/slurm.conf
  export PATH=$PATH:/usr/sbin
  # The controller first (it schedules no more), then the slurmd (they
  # launch no more), then the jobs and munged.  SIGKILL throughout: this is
  # a test cluster, and its state goes with the folder.
  local p f round t
  for f in "$dir/run/slurmctld.pid" "$dir"/run/slurmd-*.pid; do
    p=$(pid_from "$f" || true)
    [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true
  done
  for ((round = 0; round < 10; round++)); do
    local pids=()
    p=$(pid_from "$dir/munge/munged.pid" || true)
    [[ -n $p ]] && alive "$p" && pids+=("$p")
    while read -r p; do
      [[ -n $p ]] && alive "$p" && pids+=("$p")
    done < <(procs_of "$dir")
    ((${#pids[@]})) || break
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for ((t = 0; t < 20; t++)); do
      local left=0
      for p in "${pids[@]}"; do
        if alive "$p"; then left=1; fi
      done
      ((left)) || break
      sleep 0.1
    done
  done
  rm -rf "$dir"
}

status() {
  local dir=${1:-${SLURM_LOCAL_DIR:-}}
  [[ -n $dir ]] && answers "$dir"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  status) shift; status "$@" ;;
  *) echo "usage: $me start [DIR] | stop [DIR] | status [DIR]" >&2; exit 2 ;;
esac
