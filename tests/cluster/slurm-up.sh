#!/usr/bin/env bash
# A one-node SLURM on this machine for the `slurm` tests (pytest -m slurm) and the SLURM
# benchmark: real munged, slurmctld and slurmd daemons, real jobs.
#
#   tests/cluster/slurm-up.sh        install (Debian, as root) if missing, write the config,
#                                    start the daemons, wait until `sinfo` shows the node idle
#   tests/cluster/slurm-up.sh down   stop the daemons this script started (by their pid files)
#   tests/cluster/slurm-up.sh status sinfo and squeue
#
# Made for containers and CI machines without systemd: the daemons are started directly.
# The node is this machine at 127.0.0.1 with all its CPUs. No cgroups (proctrack/linuxproc,
# task/none), no accounting storage (no slurmdbd: `sacct` reports accounting disabled; use
# `squeue` and `scontrol show job`). Partitions: `debug` (the default) and `accounts`, which
# allows the account `isct` only; without an accounting database slurmctld knows no account,
# so it keeps every job there pending ("Job's account not known, so it can't use this
# partition"): a refused account, for the tests, without slurmdbd.
#
# It never overwrites a slurm.conf it did not write: on a machine with a real SLURM, use that.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by isct tests/cluster/slurm-up.sh"
STATE=/var/lib/slurm-isct
LOGS=/var/log/slurm-isct
RUN=/run/slurm-isct
NODE=isctnode
PARTITION=debug
WAIT_S=${SLURM_UP_WAIT_S:-60}

say() { echo "slurm-up: $*" >&2; }
die() { say "$*"; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || die "SLURM is not installed and this is not root: cannot apt-get install"
    command -v apt-get >/dev/null || die "SLURM is not installed and there is no apt-get"
    say "installing slurmctld slurmd slurm-client munge (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged answers already
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged did not answer (see /var/log/munge/munged.log)"
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not overwriting a real SLURM config"
    fi
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS" "$RUN"
    cat >"$CONF" <<EOF
$MARK
ClusterName=isct
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=accounts Nodes=$NODE Default=NO MaxTime=INFINITE State=UP AllowAccounts=isct
EOF
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_slurm() {
    if ! alive "$RUN/slurmctld.pid"; then
        # -c: start with no saved jobs (a test cluster starts clean)
        /usr/sbin/slurmctld -c
    fi
    if ! alive "$RUN/slurmd.pid"; then
        /usr/sbin/slurmd -N "$NODE"
    fi
}

wait_idle() {
    local state=""
    for _ in $(seq $((WAIT_S * 2))); do
        state=$(sinfo -h -N -n "$NODE" -p "$PARTITION" -o %T 2>/dev/null | head -n 1 || true)
        case "$state" in
            idle | mixed | allocated) say "node $NODE is $state (partition $PARTITION)"; return 0 ;;
            down* | drain*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    die "node $NODE not idle after ${WAIT_S}s (state: ${state:-none}); logs in $LOGS"
}

stop_pid() {  # stop the daemon whose pid file is $1, wait for it to exit
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
}

down() {
    if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF" && alive "$RUN/slurmctld.pid"; then
        scancel --state=PENDING,RUNNING --full 2>/dev/null || true  # the test cluster's jobs
    fi
    stop_pid "$RUN/slurmd.pid"
    stop_pid "$RUN/slurmctld.pid"
    stop_pid /run/munge/munged.pid
    say "stopped"
}

case "${1:-up}" in
    up)
        install_packages
        start_munge
        write_config
        start_slurm
        wait_idle
        ;;
    down) down ;;
    status) sinfo; squeue ;;
    *) die "usage: $0 [up|down|status]" ;;
esac
