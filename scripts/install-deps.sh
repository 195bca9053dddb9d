#!/bin/bash
# Install (as root, or through passwordless sudo) or check the Debian
# packages ntkmem needs.
#   scripts/install-deps.sh              build + run + analysis
#   scripts/install-deps.sh --with-slurm also the cluster tests' packages: slurm,
#                                        munge, iproute2, util-linux, lmod
#   scripts/install-deps.sh --auto       what `make check/demo/...` runs (deps):
#                                        the same where it applies (Debian, and
#                                        root or sudo), else a note and exit 0 --
#                                        the build's own probe then names any
#                                        library still missing
# Not root and no sudo: prints the exact apt-get command and exits 1 when
# something is missing.  Clusters with environment modules do not need this:
# they set the libraries in config.mk (docs/install.md).
set -eu
auto=0
[ "${1:-}" = --auto ] && { auto=1; shift; }
pkgs="build-essential pkg-config openmpi-bin libopenmpi-dev libscalapack-openmpi-dev
      libopenblas-dev libelpa-dev libparpack2-dev libarpack2-dev libyaml-dev check
      librandom123-dev python3 python3-numpy python3-matplotlib clang libclang-rt-14-dev"
# iproute2 (ip netns) and util-linux (nsenter, unshare): the two-node test;
# lmod: t_site_install (a cluster user's modules, build and make install)
[ "${1:-}" = "--with-slurm" ] && pkgs="$pkgs slurmctld slurmd slurm-client munge iproute2 util-linux lmod"
if [ $auto = 1 ] && ! { command -v apt-get && command -v dpkg-query; } >/dev/null; then
    echo "install-deps: not a Debian system: no packages installed; the libraries come from" \
        "config.mk, the make command line or pkg-config (docs/install.md)"
    exit 0
fi
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
sudo=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo="sudo -n DEBIAN_FRONTEND=noninteractive"
    else
        echo "install-deps: missing packages:$missing" >&2
        echo "  run as root:  apt-get update && $cmd" >&2
        [ $auto = 1 ] && echo "  (not root: going on with the libraries there are)" >&2
        exit $((1 - auto))
    fi
fi
echo "install-deps: installing$missing${sudo:+ (through sudo)}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# Debian's postinst scripts try to start slurm/munge services: without
# systemd that fails harmlessly (policy-rc.d), the tests start them by hand.
$sudo $cmd
