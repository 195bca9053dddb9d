# Sourced by jobs/ntkmem.sbatch and jobs/sweep-array.sbatch inside a SLURM
# batch job: pick the MPI launcher, run one ntkmem sweep with --resume, turn
# SLURM's warning signal into a graceful stop, and requeue the job when the
# sweep was stopped before it finished.  See jobs/README.md.
#
# Environment (all optional):
#   NTKMEM            the ntkmem binary (default: `ntkmem` on PATH, else
#                     build/ntkmem beside this jobs/ directory in a checkout,
#                     else bin/ntkmem of the prefix it was installed in)
#   NTKMEM_LAUNCHER   auto (default) | srun | mpirun
#   NTKMEM_SRUN_MPI   the srun --mpi plugin (default pmix)
#   NTKMEM_REQUEUE    1 (default): after a stop by SIGUSR1 (SLURM's warning
#                     before the time limit), requeue this job so it
#                     continues with --resume; 0: just exit 0.  A stop by
#                     SIGTERM (scancel) never requeues.
#   NTKMEM_MAX_RESTARTS  stop requeueing after this many restarts (default 20)

nm_log() { echo "[ntkmem-job] $(date '+%F %T') $*"; }

# The binary.  $0 of a batch script is SLURM's copy in the spool directory,
# so the jobs/ directory comes from the job's Command= (the submitted path).
nm_job_binary() {
    if [ -n "${NTKMEM:-}" ]; then :
    elif command -v ntkmem >/dev/null; then NTKMEM=$(command -v ntkmem)
    elif [ -x "$NTKMEM_JOBS/../build/ntkmem" ]; then NTKMEM=$NTKMEM_JOBS/../build/ntkmem
    else NTKMEM=$NTKMEM_JOBS/../../../bin/ntkmem # PREFIX/share/ntkmem/jobs
    fi
    [ -x "$NTKMEM" ] || { nm_log "error: no ntkmem binary at '$NTKMEM' (set NTKMEM=...)"; exit 2; }
}

# Which launcher starts MPI ranks here?  `srun --mpi=pmix` is the native way,
# but it only works when the MPI library was built with the PMI flavour
# SLURM offers (Debian's Open MPI: pmix yes, pmi2/none no).  The probe is
# `ntkmem validate` on all ranks: it initialises MPI exactly like the real run
# and checks the sweep against the memory guard for this P, in about a second.
# If srun fails and mpirun (which reads the allocation itself) works, mpirun is
# used; if both fail the error is shown and the job ends before wasting time.
# Ranks per node as SLURM placed them: the largest count of
# SLURM_TASKS_PER_NODE ("2(x3),1" = 2,2,2,1), else --ntasks-per-node, else 1.
# They share the node's memory (SLURM_MEM_PER_NODE, or SLURM_MEM_PER_CPU x
# CPUs, else MemTotal): `ntkmem validate --ranks-per-node N` checks N x the
# per-rank estimate against it.
nm_job_ranks_per_node() {
    local t c n=0
    for t in ${SLURM_TASKS_PER_NODE//,/ }; do
        c=${t%%(*}
        case $c in '' | *[!0-9]*) continue ;; esac
        [ "$c" -gt "$n" ] && n=$c
    done
    [ "$n" -gt 0 ] || n=${SLURM_NTASKS_PER_NODE:-1}
    echo "$n"
}

nm_job_launcher() { # CONFIG
    local cfg=$1 np=${SLURM_NTASKS:-1} mode=${NTKMEM_LAUNCHER:-auto}
    local mpi=${NTKMEM_SRUN_MPI:-pmix} log rpn
    rpn=$(nm_job_ranks_per_node)
    local probe=("$NTKMEM" validate "$cfg" --ranks "$np" --ranks-per-node "$rpn")
    log=$(mktemp "${TMPDIR:-/tmp}/ntkmem-probe.XXXXXX")
    LAUNCH=()
    if [ "$mode" != mpirun ]; then
        if srun --mpi="$mpi" -n "$np" "${probe[@]}" >"$log" 2>&1; then
            LAUNCH=(srun --mpi="$mpi" -n "$np" --kill-on-bad-exit=1)
        elif grep -q '^ntkmem: error:' "$log"; then
            # ntkmem ran and refused the sweep (config, memory): no fallback
            cat "$log"; rm -f "$log"
            nm_log "error: ntkmem refused the sweep on $np ranks, $rpn per node (above)"; exit 2
        elif [ "$mode" = srun ]; then
            cat "$log"; rm -f "$log"
            nm_log "error: srun --mpi=$mpi could not start ntkmem (NTKMEM_LAUNCHER=srun)"; exit 2
        else
            nm_log "srun --mpi=$mpi could not start MPI ranks; trying mpirun inside the allocation:"
            sed 's/^/    | /' "$log" | tail -n 8
        fi
    fi
    if [ ${#LAUNCH[@]} -eq 0 ]; then
        if mpirun -np "$np" "${probe[@]}" >"$log" 2>&1; then
            LAUNCH=(mpirun -np "$np")
        else
            cat "$log"; rm -f "$log"
            nm_log "error: neither srun --mpi=$mpi nor mpirun could run '$NTKMEM validate $cfg'" \
                "(output above: a config error, or no working MPI launcher)"
            exit 2
        fi
    fi
    grep -E '^(sweep|memory per node|largest estimate|warning)' "$log"
    NTKMEM_OUTPUT=$(sed -n 's/^output: //p' "$log")
    rm -f "$log"
    nm_log "launcher: ${LAUNCH[*]}"
}

# Run `ntkmem run CONFIG --resume ARGS...` and wait for it.  SLURM's
# `--signal=B:USR1@T` reaches only this batch shell, so the trap forwards it
# to the launcher (srun and mpirun both pass SIGUSR1 on to the ranks); TERM
# (scancel, or the time limit without a warning) is forwarded as USR1 too,
# because mpirun answers TERM by killing the ranks instead of passing it on.
# ntkmem finishes the current evaluation, flushes the CSV and exits 0.
nm_job_signal() { # USR1|TERM
    signalled=$1
    if [ -n "$child" ]; then
        nm_log "got SIG$1: asking ntkmem to stop after the current evaluation"
        kill -USR1 "$child" 2>/dev/null
    else
        nm_log "got SIG$1 before ntkmem started: not starting it"
    fi
}

# The launcher can return before its ranks are gone (mpirun killed, or its
# answer to SIGTERM); they hold the CSV's lock (flock on OUT.lock) until they
# exit.  Wait for it -- bounded by NTKMEM_LOCK_WAIT seconds (default 60) --
# before requeueing or exiting, so the next --resume is not refused or raced.
nm_job_wait_ranks() { # ARGS...
    local out w=${NTKMEM_LOCK_WAIT:-60}
    out=$(nm_job_out "$@")
    [ -n "$out" ] && [ -e "$out.lock" ] || return 0
    flock -w "$w" "$out.lock" true 2>/dev/null ||
        nm_log "warning: ranks still hold $out.lock after ${w} s"
}

# The sweep's CSV: --out FILE among ARGS, else the sweep's output: (from
# the probe).
nm_job_out() { # ARGS...
    local out=${NTKMEM_OUTPUT:-}
    while [ $# -gt 1 ]; do [ "$1" = --out ] && out=$2; shift; done
    echo "$out"
}

# Runs of the CSV that finished not_converged, over every restart (the
# final launch's exit status counts only its own runs).
nm_job_not_converged() { # CSV
    [ -f "$1" ] || { echo 0; return; }
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "status") s = i; if ($i == "final") f = i }
                       next }
             s && f && $s == "not_converged" && $f == "1" { c++ }
             END { print c + 0 }' "$1"
}

nm_job_run() { # CONFIG ARGS...
    local cfg=$1 rc=0
    child='' signalled=''
    shift
    # from here on a signal must not end this shell (bash's default)
    trap 'nm_job_signal USR1' USR1
    trap 'nm_job_signal TERM' TERM
    NTKMEM_JOBS=${NTKMEM_JOBS:-${SLURM_SUBMIT_DIR:-.}/jobs}
    nm_job_binary
    # one BLAS thread per CPU of the task; ranks = SLURM tasks
    export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$OPENBLAS_NUM_THREADS}
    nm_log "job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0})" \
        "on ${SLURM_JOB_NODELIST:-?}:" \
        "${SLURM_NTASKS:-1} ranks (${SLURM_TASKS_PER_NODE:-?} per node)," \
        "$OPENBLAS_NUM_THREADS BLAS threads each; $NTKMEM"
    nm_job_launcher "$cfg"
    if [ -z "$signalled" ]; then
        nm_log "running: ${LAUNCH[*]} $NTKMEM run $cfg --resume $*"
        "${LAUNCH[@]}" "$NTKMEM" run "$cfg" --resume "$@" &
        child=$!
        # wait returns early (status > 128) whenever a trapped signal
        # arrives: keep waiting until the launcher itself has exited
        while :; do
            rc=0; wait "$child" || rc=$?
            kill -0 "$child" 2>/dev/null || break
        done
        nm_job_wait_ranks "$@"
    fi
    trap - USR1 TERM
    nm_job_finish "$rc" "$@"
}

# What a finished launcher's status means for the job (signalled: the signal
# that arrived, or empty).  ntkmem exits 0 when every run was ok or a signal
# stopped it, 1 when a run failed, 2 when it refused the sweep, and 3 when
# nothing failed but a run ended not_converged (its values are nan; a rerun
# gives the same, so it is no reason to retry).  A stop by the warning
# signal requeues after 0 or 3 alike: the runs left still have to run.
# Returns ntkmem's status, so the job's own exit code carries the 3 too --
# also when the runs that did not converge ran before a requeue (counted in
# the CSV).
nm_job_finish() { # RC ARGS...
    local rc=$1 nc
    shift
    # a signal and exit 0 or 3: stopped early (or just done -- then the
    # requeued job finds every run finished and ends in seconds)
    if [ -n "$signalled" ] && { [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ]; }; then
        nm_log "ntkmem stopped early on SIG${signalled:-USR1} with its CSV flushed (exit $rc)"
        # only the warning signal requeues: TERM is scancel (the user wants
        # the job gone) or a time limit reached without the warning
        if [ "$signalled" = USR1 ] && [ "${NTKMEM_REQUEUE:-1}" = 1 ] &&
            [ -n "${SLURM_JOB_ID:-}" ] &&
            [ "${SLURM_RESTART_COUNT:-0}" -lt "${NTKMEM_MAX_RESTARTS:-20}" ]; then
            nm_log "requeueing job $SLURM_JOB_ID: it continues with --resume when it starts again"
            scontrol requeue "$SLURM_JOB_ID" ||
                nm_log "requeue refused: resubmit this script to continue"
        else
            nm_log "not requeued: resubmit this script (it passes --resume) to continue"
        fi
    elif [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ]; then
        nc=$(nm_job_not_converged "$(nm_job_out "$@")")
        if [ "$nc" -gt 0 ] || [ "$rc" -eq 3 ]; then
            rc=3
            nm_log "sweep finished, but ${nc/#0/some} run(s) did not converge (status" \
                "not_converged, values nan; exit 3): see the CSV's status column"
        else
            nm_log "sweep finished"
        fi
    else
        nm_log "ntkmem exited with status $rc"
    fi
    return "$rc"
}
