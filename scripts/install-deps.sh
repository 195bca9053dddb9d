#!/bin/bash
# Install (as root) or check the Debian packages ntkmem needs.
#   scripts/install-deps.sh              build + run + analysis
#   scripts/install-deps.sh --with-slurm also slurm + munge + iproute2 (the SLURM tests)
# Not root: prints the exact apt-get command to run and exits 1 when
# something is missing.  Clusters with environment modules skip this and pass
# MPICC / BLAS_LIBS / SCALAPACK_LIBS / YAML_LIBS to make (README, "On a cluster").
set -eu
pkgs="build-essential pkg-config openmpi-bin libopenmpi-dev libscalapack-openmpi-dev
      libopenblas-dev libelpa-dev libparpack2-dev libarpack2-dev libyaml-dev check
      librandom123-dev python3 python3-numpy python3-matplotlib clang libclang-rt-14-dev"
# iproute2 (ip netns) and util-linux (nsenter, unshare): the two-node test
[ "${1:-}" = "--with-slurm" ] && pkgs="$pkgs slurmctld slurmd slurm-client munge iproute2 util-linux"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all Debian packages present"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-deps: not a Debian system; install the equivalents of:$missing" >&2
    echo "  and build with: make MPICC=... BLAS_LIBS=... SCALAPACK_LIBS=... YAML_LIBS=..." >&2
    exit 1
fi
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "  run as root:  apt-get update && $cmd" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# Debian's postinst scripts try to start slurm/munge services: without
# systemd that fails harmlessly (policy-rc.d), the tests start them by hand.
$cmd
