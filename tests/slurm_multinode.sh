# Sourced (after tests/slurm_local.sh) by tests/t_multinode.sh and
# scripts/bench-multinode.sh: a throw-away two-node SLURM cluster on this one
# machine, in network namespaces (docs/usage.md, "Running under SLURM").
#
#   netns HEAD (slurmctld, clients; bridge)  netns NODE1 (slurmd)  netns NODE2 (slurmd)
#     br0 10.A.B.254 ---------------------- eth0 10.A.B.1     --- eth0 10.A.B.2
#
# Each "node" is a network namespace plus, for every process started on it,
# a private UTS namespace (hostname head/node1/node2) and a private mount
# namespace in which DIR/hosts is bound over /etc/hosts and, on the compute
# nodes, DIR/tmp-nodeN over /tmp (a node-local /tmp: `srun --mpi=pmix` needs
# it).  Ranks on different nodes talk TCP over the veths.  Nothing is
# configured in the root namespace and nothing under /etc or /run is written
# except our three /run/netns entries.  Namespace names (nm<ID>h, nm<ID>n1,
# nm<ID>n2) and the subnet 10.A.B.0/24 come from MN_ID (default: the
# caller's PID), so two runs (or tests/t_slurm.sh) cannot collide.  munged,
# slurmctld and both slurmd run in the foreground: their PIDs are ours.
#
#   mn_unavailable          prints why the cluster cannot be had here (empty:
#                           it can); needs root, ip, nsenter, unshare, slurm
#   mn_start DIR            bring it up under DIR (must not be under /tmp:
#                           the nodes do not see the real /tmp); exports
#                           SLURM_CONF, MN_NET (10.A.B), MN_HEAD, MN_NODE1..
#   mn_exec NODE CMD...     run CMD on head|node1|node2 (within
#                           $MN_EXEC_TIMEOUT seconds if set)
#   mn_stop                 cancel our jobs, stop our daemons by PID, kill
#                           what is left in our namespaces, delete them
#   mn_reap ID              the same for a run that was itself killed: kill
#                           what runs in namespaces nm<ID>*, delete them
# slurm_wait_job, slurm_logs, slurm_cmd (= mn_exec head) work as for the
# one-node cluster.

MN_NS=() MN_NET= MN_DIR=

mn_unavailable() {
    [ "$(id -u)" -eq 0 ] || { echo "network namespaces need root"; return; }
    local c
    for c in ip nsenter unshare mount; do
        command -v $c >/dev/null || { echo "$c not installed (scripts/install-deps.sh --with-slurm)"; return; }
    done
    command -v slurmctld >/dev/null || { echo "slurm not installed (scripts/install-deps.sh --with-slurm)"; return; }
    # can this machine (container) create a network namespace at all?
    local probe=nm$$probe
    if ! ip netns add $probe 2>/dev/null; then
        echo "cannot create network namespaces here (ip netns add failed)"; return
    fi
    if ! nsenter --net=/run/netns/$probe -- unshare --uts --mount --propagation slave -- true 2>/dev/null; then
        ip netns del $probe 2>/dev/null
        echo "cannot enter a network namespace with private UTS/mount namespaces here"; return
    fi
    ip netns del $probe
}

mn_exec() { # NODE CMD...
    local ns h=$1 tmp=
    case $1 in
    head) ns=${MN_NS[0]} ;;
    node1) ns=${MN_NS[1]} tmp=$MN_DIR/tmp-node1 ;;
    node2) ns=${MN_NS[2]} tmp=$MN_DIR/tmp-node2 ;;
    *) echo "mn_exec: unknown node '$1'" >&2; return 255 ;;
    esac
    shift
    # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup
    # file system slurmd needs.  Every exec keeps the PID: $! of a `mn_exec
    # ... &` is the daemon itself.
    ${MN_EXEC_TIMEOUT:+timeout $MN_EXEC_TIMEOUT} nsenter --net=/run/netns/"$ns" -- unshare --uts --mount --propagation slave -- /bin/sh -c '
        hostname "$0" && mount --bind "$1" /etc/hosts || exit 255
        if [ -n "$2" ]; then mount --bind "$2" /tmp || exit 255; fi
        shift 2; exec "$@"' "$h" "$MN_DIR/hosts" "$tmp" "$@"
}

mn_start() { # DIR
    MN_DIR=$1 SLURM_DIR=$1
    case $MN_DIR/ in /tmp/*) echo "mn_start: $MN_DIR is under /tmp, which the nodes do not see"; return 1 ;; esac
    local id=${MN_ID:-$$} i
    MN_NET=10.$(((id >> 8) % 200 + 20)).$((id % 250 + 1))
    MN_NS=(nm${id}h nm${id}n1 nm${id}n2)
    mkdir -p "$MN_DIR"/{state,log,spool-node1,spool-node2,tmp-node1,tmp-node2}
    chmod 1777 "$MN_DIR"/tmp-node1 "$MN_DIR"/tmp-node2
    printf '127.0.0.1 localhost\n%s.254 head\n%s.1 node1\n%s.2 node2\n' $MN_NET $MN_NET $MN_NET >"$MN_DIR/hosts"
    # the network: a bridge in HEAD, a veth from it into each node
    for i in 0 1 2; do
        ip netns add "${MN_NS[$i]}" || { echo "ip netns add ${MN_NS[$i]} failed"; return 1; }
        ip -n "${MN_NS[$i]}" link set lo up
    done
    ip -n "${MN_NS[0]}" link add br0 type bridge &&
        ip -n "${MN_NS[0]}" addr add $MN_NET.254/24 dev br0 &&
        ip -n "${MN_NS[0]}" link set br0 up || return 1
    for i in 1 2; do
        ip -n "${MN_NS[$i]}" link add eth0 type veth peer name p$i netns "${MN_NS[0]}" &&
            ip -n "${MN_NS[0]}" link set p$i master br0 up &&
            ip -n "${MN_NS[$i]}" addr add $MN_NET.$i/24 dev eth0 &&
            ip -n "${MN_NS[$i]}" link set eth0 up || return 1
    done
    # munged in the root namespace: its socket is a file, every node uses it
    _slurm_munge_start || return 1
    _slurm_conf head $MN_NET.254 6817 6818 \
        "NodeName=node1 NodeAddr=$MN_NET.1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=8000 State=UNKNOWN
NodeName=node2 NodeAddr=$MN_NET.2 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=8000 State=UNKNOWN"
    SLURM_EXEC="mn_exec head"
    mn_exec head slurmctld -D -c -i </dev/null >>"$MN_DIR/log/slurmctld.out" 2>&1 &
    SLURM_PIDS="$SLURM_PIDS $!"
    for i in 1 2; do
        mn_exec node$i slurmd -D -N node$i </dev/null >>"$MN_DIR/log/slurmd-node$i.out" 2>&1 &
        SLURM_PIDS="$SLURM_PIDS $!"
    done
    for i in $(seq 150); do
        [ "$(slurm_cmd sinfo -h -N -o %T 2>/dev/null | sort -u)" = idle ] &&
            [ "$(slurm_cmd sinfo -h -N -o %N 2>/dev/null | wc -l)" = 2 ] && return 0
        sleep 0.2
    done
    echo "the two nodes did not become idle within 30 s:"; slurm_cmd sinfo -N 2>&1
    return 1
}

mn_stop() { # best effort, also under set -e in an EXIT trap
    [ ${#MN_NS[@]} -gt 0 ] || return 0
    local e=$- p i
    set +e
    # our jobs first, so slurmd takes their slurmstepd processes down (a
    # client retries for long when slurmctld is gone: at most 3 s each)
    MN_EXEC_TIMEOUT=3 slurm_cmd scancel --user=root --full 2>/dev/null
    for i in $(seq 15); do
        [ -z "$(MN_EXEC_TIMEOUT=3 slurm_cmd squeue -h 2>&1)" ] && break
        sleep 0.2
    done
    # all daemons at once (a state save is not needed), KILL after 3 s
    for p in $SLURM_PIDS; do kill -TERM "$p" 2>/dev/null; done
    for i in $(seq 30); do
        # (an exited daemon is our zombie until waited for: not alive)
        for p in $SLURM_PIDS; do
            case $(ps -o stat= -p "$p" 2>/dev/null) in '' | Z*) p= ;; *) break ;; esac
        done
        [ -z "$p" ] && break
        sleep 0.1
    done
    for p in $SLURM_PIDS; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    SLURM_PIDS=
    mn_reap "${MN_NS[0]%h}"
    MN_NS=()
    case $e in *e*) set -e ;; esac
    return 0
}

mn_reap() { # ID: whatever still runs in namespaces nmIDh/n1/n2 (a
    # slurmstepd, an orphaned rank) was started by that cluster
    local ns p id=${1#nm}
    for ns in nm${id}h nm${id}n1 nm${id}n2; do
        [ -e /run/netns/"$ns" ] || continue
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    return 0
}
