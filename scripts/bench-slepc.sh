#!/bin/bash
# Optional benchmark, not part of make check: lambda_min of the matrix-free
# NTK Gram matrix by SLEPc's eigensolvers (Krylov-Schur, Lanczos, LOBPCG,
# GD, JD on a MATSHELL of nm_ntkop_apply), products with K counted, against
# our own thick-restart Lanczos ("ours").  It answers whether SLEPc would
# need fewer products than our code (tests/bench_slepc.c says what each
# column means).  SLEPc is not a dependency of ntkmem: without the Debian
# package libslepc-real3.18-dev this script says so and exits 0.
#
# Usage: scripts/bench-slepc.sh [METHOD[:key=value,...] ...] [-eps_... PETSc options]
#   default methods: krylovschur, krylovschur:ncv=2000, lanczos, lobpcg, gd, jd
#   environment: NM_BENCH_SLEPC_M (3000), _D (64), _Q (1024), _SEED (1: the
#   `seed:` of an ntkmem config), _TOL (1e-10), _CAP (20000 products per
#   solve), _REF (reference lambda_min), _MONITOR (progress every N
#   products), NM_BENCH_SLEPC_NP (2 ranks).
# Example: the m = 3000 point whose dense lambda_min is 0.068471198784745085
#   NM_BENCH_SLEPC_REF=0.068471198784745085 scripts/bench-slepc.sh ours krylovschur:ncv=500
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/env.sh

# Debian installs SLEPc and PETSc under their own prefixes (and links the
# default version's .pc files into pkg-config's path): the prefixes are
# searched too, for a setup without those links
for dir in /usr/lib/slepcdir/slepc-real/lib/pkgconfig /usr/lib/petscdir/petsc-real/lib/pkgconfig; do
    if [ -d "$dir" ]; then PKG_CONFIG_PATH=$dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}; fi
done
export PKG_CONFIG_PATH=${PKG_CONFIG_PATH:-}
if ! pkg-config --exists slepc 2>/dev/null; then
    echo "SLEPc not installed: skipped (apt-get install libslepc-real3.18-dev to run it)"
    exit 0
fi

# the library and the flags of the project's own benches (the Makefile's
# rule for build/bench_nystrom, printed by make -B -n even when it is built),
# plus SLEPc's; Debian's PETSc is built with
# mpicc, the same Open MPI as ours
make -s build/libntkmem.a
flags=$(make -s -B -n build/bench_nystrom 2>/dev/null | grep -- '-o build/bench_nystrom' | tail -n 1 || true)
if [ -z "$flags" ]; then
    echo "bench-slepc: cannot read the link line of build/bench_nystrom from make -n" >&2
    exit 1
fi
# keep the compile and link options, drop the sources and the output
read -r -a words <<<"$flags"
opts=()
for w in "${words[@]:1}"; do
    case $w in
        *.c | *.o | *.a | -o | build/bench_nystrom | -DNM_VERSION=*) ;;
        *) opts+=("$w") ;;
    esac
done
# shellcheck disable=SC2046  # pkg-config's words are separate options
mpicc "${opts[@]}" $(pkg-config --cflags slepc) tests/bench_slepc.c build/libntkmem.a \
    $(pkg-config --libs slepc) "${opts[@]}" -o build/bench_slepc

# the machine may be shared: nice keeps other work's timings fair; the
# product counts, not the seconds, are the result
np=${NM_BENCH_SLEPC_NP:-2}
nice -n 10 mpirun -np "$np" --oversubscribe build/bench_slepc "$@"
