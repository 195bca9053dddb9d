# Sourced by tests/t_slurm.sh: a throw-away one-node SLURM cluster on this
# machine, without systemd and without touching /etc, /run or /var: munged,
# slurmctld and slurmd run as root in the foreground (so their PIDs are ours)
# with every key, config, state file, socket and log under one directory.
# Free TCP ports are picked at start so two test runs cannot collide.
# tests/slurm_multinode.sh builds its two-node cluster from the same pieces.
#   slurm_start DIR [CPUS]   start (CPUS: default nproc, at least 2); exports
#                            SLURM_CONF; returns 1 on failure
#   slurm_stop               cancel our jobs, stop our daemons by PID
#   slurm_logs               print the daemon logs (for failure reports)
#   slurm_wait_job ID SECS   wait until job ID has left the queue
#   slurm_job_state ID       State of a finished job (from the jobcomp file)
#   slurm_cmd CMD...         run a SLURM client (through $SLURM_EXEC, a
#                            command prefix such as a node's namespace, if set)

SLURM_DIR= SLURM_PIDS= SLURM_EXEC=

slurm_cmd() { $SLURM_EXEC "$@"; }

slurm_logs() {
    local f
    for f in "$SLURM_DIR"/log/*.log "$SLURM_DIR"/log/jobcomp.txt; do
        [ -f "$f" ] || continue
        echo "===== $f (last 40 lines)"; tail -n 40 "$f"
    done
}

_free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_slurm_munge_start() { # munged with our own key and socket under $SLURM_DIR
    local i
    # munge: our own key and socket (AuthInfo below points SLURM at it)
    mungekey --create --keyfile="$SLURM_DIR/munge.key" 2>/dev/null ||
        head -c 1024 /dev/urandom >"$SLURM_DIR/munge.key"
    chmod 600 "$SLURM_DIR/munge.key"
    # --force: munged refuses root and a socket outside /run otherwise
    munged -F --force --socket="$SLURM_DIR/munge.sock" --key-file="$SLURM_DIR/munge.key" \
        --log-file="$SLURM_DIR/log/munged.log" --pid-file="$SLURM_DIR/munged.pid" \
        --seed-file="$SLURM_DIR/munged.seed" </dev/null >>"$SLURM_DIR/log/munged.out" 2>&1 &
    SLURM_PIDS="$SLURM_PIDS $!"
    for i in $(seq 50); do
        munge -S "$SLURM_DIR/munge.sock" -n >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -S "$SLURM_DIR/munge.sock" -n >/dev/null || { echo "munged did not start"; return 1; }
}

# slurm.conf for a cluster under $SLURM_DIR: CTLHOST CTLADDR CTLPORT SLURMDPORT
# NODELINES (NodeName=... lines); per-node (%n) spool, pid and log files
_slurm_conf() {
    cat >"$SLURM_DIR/slurm.conf" <<EOF
ClusterName=ntkmemtest
SlurmctldHost=$1($2)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SLURM_DIR/munge.sock
SlurmctldPort=$3
SlurmdPort=$4
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool-%n
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd-%n.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# trust the node line below, not the hardware: a 1-CPU or small-memory CI
# machine must not drain the node
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
EnforcePartLimits=ALL
JobRequeue=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_DIR/log/jobcomp.txt
KillWait=5
MinJobAge=300
InactiveLimit=0
$5
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE OverSubscribe=NO State=UP
EOF
    export SLURM_CONF=$SLURM_DIR/slurm.conf
}

slurm_start() {
    SLURM_DIR=$1
    local cpus=${2:-$(nproc)} host p1 p2 i
    [ "$cpus" -ge 2 ] || cpus=2
    host=$(hostname -s)
    mkdir -p "$SLURM_DIR"/{state,"spool-$host",log}
    _slurm_munge_start || return 1
    p1=$(_free_port); p2=$(_free_port)
    while [ "$p2" = "$p1" ]; do p2=$(_free_port); done
    _slurm_conf "$host" 127.0.0.1 "$p1" "$p2" \
        "NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN"
    # -D: foreground, so $! is the daemon; -c: no saved state; -i: ignore
    # (absent) cached credentials
    # (no daemon may keep the caller's stdout open: a pipe would never end)
    slurmctld -D -c -i </dev/null >>"$SLURM_DIR/log/slurmctld.out" 2>&1 &
    SLURM_PIDS="$SLURM_PIDS $!"
    slurmd -D </dev/null >>"$SLURM_DIR/log/slurmd.out" 2>&1 &
    SLURM_PIDS="$SLURM_PIDS $!"
    for i in $(seq 150); do
        [ "$(slurm_cmd sinfo -h -o %T 2>/dev/null | sort -u)" = idle ] && return 0
        sleep 0.2
    done
    echo "the node did not become idle within 30 s:"; slurm_cmd sinfo 2>&1
    return 1
}

slurm_stop() { # best effort, also under set -e in an EXIT trap
    [ -n "$SLURM_DIR" ] || return 0
    local p i e=$-
    set +e
    # our jobs first, so slurmd takes their slurmstepd processes down
    if [ -n "$SLURM_PIDS" ]; then
        slurm_cmd scancel --user=root --full 2>/dev/null
        for i in $(seq 50); do
            [ -z "$(slurm_cmd squeue -h 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    # slurmd, slurmctld, munged: reverse start order, only our own PIDs
    for p in $(echo "$SLURM_PIDS" | tr ' ' '\n' | tac); do
        kill -TERM "$p" 2>/dev/null || continue
        for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    SLURM_PIDS=
    case $e in *e*) set -e ;; esac
    return 0
}

slurm_wait_job() { # ID SECS
    local t
    for t in $(seq $(($2 * 5))); do
        slurm_cmd squeue -h -j "$1" 2>/dev/null | grep -q . || return 0
        sleep 0.2
    done
    echo "job $1 still in the queue after $2 s:"; slurm_cmd squeue; slurm_cmd scontrol show job "$1"
    return 1
}

slurm_job_state() { # ID: last JobState in the jobcomp file (COMPLETED, FAILED, ...)
    grep "JobId=$1 " "$SLURM_DIR/log/jobcomp.txt" 2>/dev/null | tail -1 |
        sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'
}
