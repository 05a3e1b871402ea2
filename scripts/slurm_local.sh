#!/usr/bin/env bash
# A real single-node SLURM cluster on this host, for the SLURM tests (issue 3) and for trying the
# slurm profile on a laptop or CI machine. Needs root (it installs Debian packages and writes
# /etc/slurm/slurm.conf) and no systemd.
#
#   scripts/slurm_local.sh start    install slurm-wlm + munge if missing, write the config, start
#                                   munged, slurmctld and slurmd; wait until the node is idle
#   scripts/slurm_local.sh stop     stop the three daemons (by the PIDs they wrote)
#   scripts/slurm_local.sh status   show the node and the partition
#
# No accounting daemon: `sacct` is unavailable, so the profile override the tests use sets the
# executor's status command to `squeue`; MinJobAge=600 keeps finished jobs visible to `squeue -t all`
# and `scontrol show job` for ten minutes. State, spool and logs live in $SLURM_LOCAL_DIR.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/repro-slurm}"
CONF=/etc/slurm/slurm.conf
PARTITION="${SLURM_LOCAL_PARTITION:-repro}"

log() { echo "slurm_local: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
        return
    fi
    log "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_config() {
    local host cpus mem
    host="$(hostname -s)"
    cpus="$(nproc)"
    # leave 2 GB to the system; slurmd refuses a node that claims more than it has
    mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 2048 ))
    mkdir -p "$DIR/state" "$DIR/spool" /etc/slurm
    cat > "$CONF" <<EOF
# written by scripts/slurm_local.sh: one node, no cgroups, no accounting
ClusterName=repro-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- munged
}

wait_idle() {
    local host="$1" i state
    for i in $(seq 1 60); do
        state="$(sinfo -h -n "$host" -o %t 2>/dev/null || true)"
        case "$state" in
            idle|mix|alloc) log "node $host is $state (after ${i}x0.5 s)"; return 0 ;;
            drain*|down*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    log "node $host did not become idle; see $DIR/slurmctld.log and $DIR/slurmd.log"
    return 1
}

stop_pidfile() {
    local f="$1" pid
    [ -f "$f" ] || return 0
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
    fi
    rm -f "$f"
}

case "${1:-}" in
    start)
        [ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
        t0=$(date +%s)
        install_packages
        write_config
        start_munge
        stop_pidfile "$DIR/slurmd.pid"
        stop_pidfile "$DIR/slurmctld.pid"
        slurmctld -i
        slurmd
        wait_idle "$(hostname -s)"
        log "cluster up in $(( $(date +%s) - t0 )) s (partition $PARTITION, config $CONF, state $DIR)"
        ;;
    stop)
        stop_pidfile "$DIR/slurmd.pid"
        stop_pidfile "$DIR/slurmctld.pid"
        stop_pidfile /run/munge/munged.pid
        log "stopped"
        ;;
    status)
        sinfo
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
