#!/bin/bash
# A one-node Slurm cluster on this machine, for tests and trials: slurm-up.sh [STATE_DIR]
#
#   scripts/cluster/slurm-up.sh /tmp/slurm        # prints: export SLURM_CONF=/tmp/slurm/etc/slurm.conf
#   export SLURM_CONF=/tmp/slurm/etc/slurm.conf
#   sinfo; sbatch ...; squeue
#   scripts/cluster/slurm-down.sh /tmp/slurm      # or: slurm-up.sh down /tmp/slurm
#
# Needs root (it installs packages and runs the daemons as root); no systemd: munged,
# slurmctld and slurmd are started directly, their pid files, logs, spool and state all
# under STATE_DIR (default /tmp/seisstore-slurm), with their own munge key and socket and
# two free TCP ports, so it leaves /etc alone and does not clash with a site's Slurm.
#
# - installs slurm-wlm and munge from the distribution (apt-get, non-interactive) if missing;
# - one node with 2 CPUs (SLURM_UP_CPUS) and two partitions over it: `main` (default,
#   PriorityTier=10) and `besteffort` (PriorityTier=1); PreemptType=preempt/partition_prio
#   with PreemptMode=REQUEUE, so a `main` job requeues the `besteffort` jobs it needs the
#   cores of, as an OAR/CiGri best-effort cluster does;
# - no accounting daemon (slurmdbd needs a MySQL/MariaDB server): AccountingStorageType=
#   accounting_storage/none and JobAcctGatherType=jobacct_gather/none, so `sacct` has
#   nothing; `squeue --states=all` shows finished jobs for MinJobAge (600 s);
# - proctrack/linuxproc and task/none: no cgroups needed inside a container.
#
# Exit codes: 0 up (the node is idle in sinfo), 1 bad usage or environment (not root, no
# apt-get, a daemon did not start: the last lines of its log are printed).
set -euo pipefail

usage() { echo "usage: $0 [up|down] [STATE_DIR]" >&2; exit 1; }
action=up
case "${1:-}" in
    up|down) action="$1"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
esac
[ "$#" -le 1 ] || usage
STATE="${1:-${SLURM_UP_STATE:-/tmp/seisstore-slurm}}"
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
CPUS="${SLURM_UP_CPUS:-2}"
NODE=seisnode

die() { echo "slurm-up: $*" >&2; exit 1; }

stop_pidfile() {   # stop_pidfile FILE NAME: TERM, then KILL after 10 s
    local file="$1" pid
    [ -s "$file" ] || return 0
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$file"
}

if [ "$action" = down ]; then
    [ -d "$STATE" ] || exit 0
    # cancel what still runs, so that no slurmstepd outlives its slurmd
    if [ -s "$STATE/run/slurmctld.pid" ] && kill -0 "$(cat "$STATE/run/slurmctld.pid")" 2>/dev/null; then
        jobs="$(SLURM_CONF="$STATE/etc/slurm.conf" squeue -h -t RUNNING,PENDING,COMPLETING -o %A 2>/dev/null)" || true
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            SLURM_CONF="$STATE/etc/slurm.conf" scancel --full $jobs 2>/dev/null || true
            for _ in $(seq 50); do
                [ -z "$(SLURM_CONF="$STATE/etc/slurm.conf" squeue -h -t RUNNING,COMPLETING 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    stop_pidfile "$STATE/run/slurmd.pid"
    stop_pidfile "$STATE/run/slurmctld.pid"
    stop_pidfile "$STATE/run/munged.pid"
    echo "slurm-down: stopped the daemons of $STATE"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (installs slurm-wlm and munge, runs slurmd)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get to install it"
    echo "slurm-up: installing slurm-wlm and munge (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # the package lists may be missing on a fresh machine: update once if the install fails
    apt-get install -y -q --no-install-recommends slurm-wlm munge >"${TMPDIR:-/tmp}/slurm-up.apt.log" 2>&1 || {
        apt-get update -q >>"${TMPDIR:-/tmp}/slurm-up.apt.log" 2>&1
        apt-get install -y -q --no-install-recommends slurm-wlm munge >>"${TMPDIR:-/tmp}/slurm-up.apt.log" 2>&1
    } || { tail -n 20 "${TMPDIR:-/tmp}/slurm-up.apt.log" >&2; die "apt-get install slurm-wlm munge failed"; }
fi

# A previous run in the same directory: stop what is left, keep nothing of its state.
"$0" down "$STATE" >/dev/null
rm -rf "${STATE:?}"/{etc,run,log,ctld,spool,munge}   # only what this script made
mkdir -p "$STATE"/{etc,run,log,ctld,spool,munge}
chmod 700 "$STATE/munge"

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    else
        echo "$1"
    fi
}
CTLD_PORT="${SLURM_UP_CTLD_PORT:-$(free_port 6817)}"
SLURMD_PORT="${SLURM_UP_SLURMD_PORT:-$(free_port 6818)}"
HOST="$(hostname -s)"

# munge: its own key and socket (root runs it, hence --force)
dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$STATE/munge/munge.key"
SOCKET="$STATE/munge/munge.socket"
munged --force --key-file="$STATE/munge/munge.key" --socket="$SOCKET" --pid-file="$STATE/run/munged.pid" \
    --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed" \
    || { tail -n 5 "$STATE/log/munged.log" >&2 || true; die "munged did not start"; }

cat >"$STATE/etc/slurm.conf" <<EOF
# one-node cluster written by scripts/cluster/slurm-up.sh
ClusterName=seisstore
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits cred_expire + 1 s before it may start again (default 120)
AuthInfo=socket=$SOCKET,cred_expire=${SLURM_UP_CRED_EXPIRE:-10}
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
# the main scheduling loop every 2 s (default 60): requeued jobs start as soon as they may
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# no slurmdbd: no accounting (sacct has nothing); finished jobs stay in squeue --states=all
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
# best effort: a job of a higher PriorityTier partition requeues the besteffort jobs in its way
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=1
MaxArraySize=10001
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$NODE NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES PriorityTier=10 MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=besteffort Nodes=$NODE PriorityTier=1 PreemptMode=REQUEUE MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF="$STATE/etc/slurm.conf"

slurmctld -i -f "$SLURM_CONF" \
    || { tail -n 10 "$STATE/log/slurmctld.log" >&2 || true; die "slurmctld did not start"; }
slurmd -N "$NODE" -f "$SLURM_CONF" \
    || { tail -n 10 "$STATE/log/slurmd.log" >&2 || true; die "slurmd did not start"; }

for _ in $(seq 300); do
    if [ "$(sinfo -h -n "$NODE" -o %t 2>/dev/null | sort -u)" = idle ]; then
        echo "slurm-up: node $NODE idle ($CPUS CPUs, partitions main and besteffort), state in $STATE" >&2
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
sinfo >&2 || true
tail -n 10 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
die "node $NODE not idle after 60 s"
