#!/bin/bash
# A cluster user installs ntkmem the HPC way: no root, no apt, no pkg-config,
# libraries from environment modules (Lmod) at a non-standard prefix.
#
# The test plays the site: a module tree (Lua modulefiles for Open MPI,
# OpenBLAS, ScaLAPACK, ELPA, arpack-ng, libyaml, check, Random123) whose
# prefixes are directories of symlinks to this machine's libraries, laid out
# and named as Spack builds them (libscalapack.so, include/elpa-<version>/),
# with <NAME>_ROOT set and nothing on LIBRARY_PATH/CPATH -- so the default
# search paths and pkg-config do not find the stack; PATH is a copy of
# /usr/bin without pkg-config, dpkg, apt and the system MPI.  Then, as an
# unprivileged user created here, in a copy of the tracked tree:
#   - a missing library is one line naming the variable to set (no module
#     loaded: MPICC; no config.mk: SCALAPACK_LIBS; scalapack module unloaded
#     with the site config.mk: SCALAPACK_LIBS);
#   - module load the stack; with config.mk (config.mk.example plus one
#     line) `make demo` (its Debian step says it does not apply, then it
#     builds and runs the demo) and `make tests`; run every unit-test
#     program (np 1, the MPI ones also np 2);
#   - make install PREFIX=$HOME/sw/ntkmem (and a DESTDIR staging);
#   - with the checkout moved away: module use $HOME/sw/modulefiles; module
#     load ntkmem (which loads the stack); `ntkmem run` the installed demo
#     config in another directory; ntkmem-plot on its CSV;
#   - where slurm is installed: on the one-node test cluster of
#     tests/slurm_local.sh, sbatch the installed jobs/ntkmem.sbatch as that
#     user (CSV equal to a direct run), then a copy of it in the user's
#     directory (--resume skips every run);
#   - make uninstall leaves nothing; no tracked file was changed.
# Needs root (to create the user) and Lmod; SKIPPED without them.
set -eu
. "$(dirname "$0")/env.sh"
lmod_init=
for f in "${LMOD_PKG:-/nonexistent}/init/bash" /usr/share/lmod/lmod/init/bash; do
    [ -f "$f" ] && { lmod_init=$f; break; }
done
[ -n "$lmod_init" ] || { echo "SKIPPED: Lmod not installed (apt-get install lmod; scripts/install-deps.sh --with-slurm)"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: needs root to create the unprivileged test user"; exit 77; }
nm_once_per_suite
command -v git >/dev/null && git -C "$NTKMEM_ROOT" rev-parse --git-dir >/dev/null 2>&1 ||
    { echo "SKIPPED: not a git clone"; exit 77; }
for c in useradd userdel runuser; do
    command -v $c >/dev/null || { echo "FAILED: root, Lmod, but no $c"; exit 1; }
done

T=$(mktemp -d /tmp/ntkmem-site.XXXXXX)
chmod 755 "$T"
U=ntkmem-site-$$ H=$T/home APPS=$T/apps SYSBIN=$T/sysbin
started_slurm=0
cleanup() {
    trap - ERR
    [ $started_slurm = 1 ] && slurm_stop
    userdel -f "$U" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() {
    trap - ERR
    echo "FAILED: $*"
    [ -f "$T/step.log" ] && { echo "===== last step's log"; tail -n 30 "$T/step.log"; }
    [ $started_slurm = 1 ] && slurm_logs
    exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR
t_all=$SECONDS

# ---- the system the user sees: /usr/bin without pkg-config, dpkg, apt, MPI
mkdir -p "$SYSBIN"
cp -s /usr/bin/* /usr/sbin/* "$SYSBIN"/ 2>/dev/null || true
(cd "$SYSBIN" && rm -f ./*pkg-config* pkgconf* dpkg* apt* mpi* orte* ompi* opal* oshmem* oshrun shmem*)
[ -x "$SYSBIN/make" ] && [ ! -e "$SYSBIN/pkg-config" ] && [ ! -e "$SYSBIN/mpicc" ] ||
    fail "could not build the filtered PATH"

# ---- the site's module tree: software/<name>/<version>, modulefiles/<name>/<version>.lua
arch=$(gcc -print-multiarch)
L=/usr/lib/$arch
lnk() { mkdir -p "$(dirname "$2")"; ln -s "$(readlink -f "$1")" "$2"; }
libs() { # PREFIX NAME...: every lib/libNAME.so* of the system, by its own name
    local p=$1 n f; shift
    for n; do for f in "$L/lib$n".so*; do lnk "$f" "$p/lib/$(basename "$f")"; done; done
}
module_file() { # NAME VERSION VAR [PATH-dirs]: <VAR>=prefix (Spack style), PATH += prefix/bin
    local p=$APPS/software/$1/$2
    mkdir -p "$APPS/modulefiles/$1"
    {
        echo "whatis(\"$1 $2 (test stack: symlinks to the system's)\")"
        echo "local root = \"$p\""
        echo "setenv(\"$3\", root)"
        [ -d "$p/bin" ] && echo "prepend_path(\"PATH\", pathJoin(root, \"bin\"))"
        [ "$1" != openmpi ] && echo "depends_on(\"openmpi\")"
        true
    } >"$APPS/modulefiles/$1/$2.lua"
}
p=$APPS/software/openmpi/4.1.4
for c in mpicc mpirun mpiexec ompi_info; do lnk "$(command -v $c)" "$p/bin/$c"; done
module_file openmpi 4.1.4 OPENMPI_ROOT
p=$APPS/software/openblas/0.3.21
libs "$p" openblas
for f in /usr/include/"$arch"/openblas-pthread/*.h; do lnk "$f" "$p/include/$(basename "$f")"; done
module_file openblas 0.3.21 OPENBLAS_ROOT
p=$APPS/software/scalapack/2.2.1
libs "$p" scalapack-openmpi
lnk "$L/libscalapack-openmpi.so" "$p/lib/libscalapack.so" # Debian's name -> upstream's
module_file scalapack 2.2.1 SCALAPACK_ROOT
p=$APPS/software/elpa/2022.11.001
libs "$p" elpa
lnk /usr/include/elpa "$p/include/elpa-2022.11.001" # holds elpa/elpa.h
module_file elpa 2022.11.001 ELPA_ROOT
p=$APPS/software/arpack-ng/3.8.0
libs "$p" arpack parpack
module_file arpack-ng 3.8.0 ARPACK_NG_ROOT
p=$APPS/software/libyaml/0.2.5
libs "$p" yaml yaml-0
lnk /usr/include/yaml.h "$p/include/yaml.h"
module_file libyaml 0.2.5 LIBYAML_ROOT
p=$APPS/software/check/0.15.2
lnk "$L/libcheck_pic.a" "$p/lib/libcheck.a"
for f in check.h check_stdint.h; do lnk "/usr/include/$f" "$p/include/$f"; done
module_file check 0.15.2 CHECK_ROOT
p=$APPS/software/random123/1.14.0
lnk /usr/include/Random123 "$p/include/Random123"
module_file random123 1.14.0 RANDOM123_ROOT
STACK="openmpi openblas scalapack elpa arpack-ng libyaml check random123"

# ---- the user, and a copy of the tracked tree in its home (a clone)
useradd -M -d "$H" -s /bin/bash "$U" || fail "useradd $U"
mkdir -p "$H/ntkmem"
(cd "$NTKMEM_ROOT" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$H/ntkmem"
(cd "$H/ntkmem" && git -C "$NTKMEM_ROOT" ls-files -z | xargs -0 sha256sum) >"$T/tracked.sha256"
cp "$NTKMEM_ROOT/tests/configs/slurm.yaml" "$H/tiny.yaml"
chown -R "$U:" "$H"

# the user's shell: a login environment of its own, Lmod, the site's modules
cat >"$T/user.sh" <<'EOF'
. "$LMOD_INIT"
set -e # not -u: Lmod's shell functions read unset variables
module use "$APPS/modulefiles"
step=$1; shift
cd ~/ntkmem 2>/dev/null || cd
case $step in
probe-nomodules) make -j2 all ;;
probe-noconfig) module load $STACK; rm -f config.mk; make -j2 all ;;
probe-unloaded)
    module load $STACK; module unload scalapack
    cp ../config.mk .; make -j2 all ;;
build)
    module load $STACK
    for c in pkg-config dpkg dpkg-query apt-get; do
        ! command -v $c || { echo "$c is visible"; exit 1; }
    done
    cp ../config.mk .
    # README's first command: the Debian step notes it does not apply, then
    # the build and configs/demo.yaml on 2 ranks
    OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1 make -j2 demo
    make -j2 tests ;;
unit)
    module load $STACK
    export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 CK_FORK=no
    n=0
    for t in build/test_*; do
        timeout 600 mpirun -np 1 "$t" >"$HOME/unit.log" 2>&1 || { cat "$HOME/unit.log"; echo "$t failed"; exit 1; }
        case $t in build/test_mpi_*)
            timeout 600 mpirun -np 2 "$t" >"$HOME/unit.log" 2>&1 || { cat "$HOME/unit.log"; echo "$t (np 2) failed"; exit 1; }
        esac
        n=$((n + 1))
    done
    echo "$n unit-test programs passed" ;;
install)
    module load $STACK
    make install PREFIX="$HOME/sw/ntkmem"
    make install PREFIX=/opt/ntkmem DESTDIR="$HOME/stage" ;;
run)
    module use "$HOME/sw/modulefiles"
    module load ntkmem
    module list 2>&1
    command -v ntkmem; command -v ntkmem-plot; echo "NTKMEM_SHARE=$NTKMEM_SHARE"
    ldd "$(command -v ntkmem)" | grep -E 'scalapack|elpa|parpack|yaml|openblas'
    mkdir -p ~/run && cd ~/run
    export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
    mpirun -np 2 ntkmem run "$NTKMEM_SHARE/configs/demo.yaml" --out demo.csv
    ntkmem-plot collapse demo.csv -o demo.png ;;
submit) # OUT: the installed job script, from the user's run directory
    module use "$HOME/sw/modulefiles"
    module load ntkmem
    cd ~/run
    if [ "$1" = a ]; then
        OMPI_MCA_rmaps_base_oversubscribe=1 mpirun -np 2 ntkmem run ~/tiny.yaml --out tiny-ref.csv >/dev/null
    fi
    # a: the installed script; b: a user's copy of it (finds ntkmem-job.sh through NTKMEM_JOBS)
    job=$NTKMEM_JOBS/ntkmem.sbatch
    [ "$1" = b ] && { cp "$job" my.sbatch; job=my.sbatch; }
    sbatch --parsable -n 2 -t 5 -o "$HOME/run/job-$1.out" "$job" ~/tiny.yaml job.csv ;;
uninstall) make uninstall PREFIX="$HOME/sw/ntkmem"; make uninstall PREFIX=/opt/ntkmem DESTDIR="$HOME/stage" ;;
esac
EOF
chmod 644 "$T/user.sh"
as_user() { # STEP [ARGS]: the step in a fresh login environment of the user; log in $T/step.log
    # (bounded: a hung step fails the test instead of holding make check)
    timeout 1200 runuser -u "$U" -- env -i HOME="$H" USER="$U" LOGNAME="$U" SHELL=/bin/bash LANG=C.UTF-8 \
        PATH="$SYSBIN" LMOD_INIT="$lmod_init" APPS="$APPS" STACK="$STACK" ${SLURM_CONF:+SLURM_CONF=$SLURM_CONF} \
        bash --noprofile --norc "$T/user.sh" "$@" >"$T/step.log" 2>&1
}
# a missing library: the build stops with one line naming the variable (the
# rest is make's own "***" line), never a compiler's or linker's page
one_line() { # STEP VARIABLE
    local t0=$SECONDS
    ! as_user "$1" || fail "($1) the build succeeded without $2"
    [ "$(grep -c '^ntkmem build:' "$T/step.log")" = 1 ] || fail "($1) not one 'ntkmem build:' line"
    grep '^ntkmem build:' "$T/step.log" | grep -q "set $2 " || fail "($1) the line does not name $2"
    ! grep -v -e '^ntkmem build:' -e '^make\(\[[0-9]*\]\)\{0,1\}: \*\*\*' "$T/step.log" | grep -q . ||
        fail "($1) more output than the one line"
    echo "($1) one line, $((SECONDS - t0)) s: $(grep '^ntkmem build:' "$T/step.log" | cut -c1-150)..."
}

# the site config.mk: the tracked example, plus what this check build needs
cp "$NTKMEM_ROOT/config.mk.example" "$H/config.mk"
echo 'CHECK_LIBS += -lsubunit -lrt -lm -pthread   # this site built check with subunit' >>"$H/config.mk"
chown "$U:" "$H/config.mk"
echo "site: $(echo $STACK | wc -w) modules under $APPS; user $U; set up in $((SECONDS - t_all)) s"

one_line probe-nomodules MPICC
one_line probe-noconfig SCALAPACK_LIBS
one_line probe-unloaded SCALAPACK_LIBS

t0=$SECONDS
as_user build || fail "(build) make demo, make tests with the modules and config.mk"
grep -q '^install-deps: not a Debian system' "$T/step.log" || fail "(build) make demo's deps step did not skip"
grep -q "runs: .* 0 failed" "$T/step.log" || fail "(build) make demo's runs failed"
readelf -d "$H/ntkmem/build/ntkmem" | grep -q "RUNPATH.*$APPS/software/scalapack" ||
    fail "(build) the binary's RUNPATH does not name the module prefix: config.mk not used"
echo "(build) make -j2 demo (the Debian step skipped), make -j2 tests as $U, no pkg-config/dpkg: $((SECONDS - t0)) s"
t0=$SECONDS
as_user unit || fail "(unit) a unit-test program failed"
echo "(unit) $(tail -n 1 "$T/step.log") ($((SECONDS - t0)) s)"

t0=$SECONDS
as_user install || fail "(install) make install"
S=$H/sw/ntkmem
for f in bin/ntkmem bin/ntkmem-plot share/ntkmem/configs/demo.yaml share/ntkmem/jobs/ntkmem.sbatch \
    share/ntkmem/jobs/ntkmem-job.sh share/ntkmem/analysis/plot.py share/ntkmem/analysis/columns.json \
    share/ntkmem/README.md; do
    [ -f "$S/$f" ] || fail "(install) no $f in the prefix"
done
[ -d "$S/share/ntkmem/docs" ] || fail "(install) no share/ntkmem/docs"
M=$H/sw/modulefiles/ntkmem/$(ls "$H/sw/modulefiles/ntkmem")
for m in $STACK; do grep -q "depends_on(\"$m/" "$M" || fail "(install) the modulefile does not load $m"; done
[ -x "$H/stage/opt/ntkmem/bin/ntkmem" ] && grep -q '"/opt/ntkmem"' "$H/stage/opt/modulefiles/ntkmem/"*.lua &&
    ! grep -rq "$H/stage" "$H/stage/opt/modulefiles" "$H/stage/opt/ntkmem/bin/ntkmem-plot" ||
    fail "(install) DESTDIR: not staged, or the staging path leaked into the files"
echo "(install) $(grep -c . "$S/share/ntkmem/installed-files") files in $S, modulefile $M; DESTDIR staging ok ($((SECONDS - t0)) s)"

# from here on there is no checkout
mv "$H/ntkmem" "$H/ntkmem.away"
t0=$SECONDS
as_user run || fail "(run) module load ntkmem; ntkmem run; ntkmem-plot"
grep -qx "$S/bin/ntkmem" "$T/step.log" || fail "(run) ntkmem on PATH is not the installed one"
grep -q "libscalapack-openmpi.so.* => $APPS/software/scalapack" "$T/step.log" ||
    fail "(run) ScaLAPACK not loaded from the module prefix"
grep -q "runs: .* 0 failed" "$T/step.log" || fail "(run) the demo's runs failed"
[ -s "$H/run/demo.png" ] || fail "(run) ntkmem-plot wrote no figure"
echo "(run) module load ntkmem, demo on 2 ranks in ~/run: $(($(wc -l <"$H/run/demo.csv") - 1)) rows;" \
    "ntkmem-plot collapse -> demo.png ($((SECONDS - t0)) s)"

if command -v slurmctld >/dev/null; then
    t0=$SECONDS
    unset $(compgen -e | grep '^SLURM_') 2>/dev/null || true
    . "$NTKMEM_ROOT/tests/slurm_local.sh"
    started_slurm=1
    slurm_start "$T/cluster" || fail "could not start the test cluster"
    chmod 755 "$T/cluster"
    for k in a b; do
        as_user submit $k || fail "(slurm) sbatch of the installed ntkmem.sbatch"
        id=$(tail -n 1 "$T/step.log")
        slurm_wait_job "$id" 90 || fail "(slurm) job $id did not finish"
        st=$(scontrol show job "$id" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1)
        cp "$H/run/job-$k.out" "$T/step.log"
        [ "$st" = COMPLETED ] || fail "(slurm) job $id ended $st"
        grep -q "launcher: " "$T/step.log" && grep -q 'sweep finished' "$T/step.log" ||
            fail "(slurm) job $id: no launcher or no 'sweep finished'"
        grep -q "; $S/bin/ntkmem\$" "$T/step.log" || fail "(slurm) job $id did not run the installed ntkmem"
    done
    /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$H/run/tiny-ref.csv" "$H/run/job.csv" --rtol 0 ||
        fail "(slurm) the job's CSV differs from a direct run"
    n=$(($(wc -l <"$H/run/tiny-ref.csv") - 1))
    grep -q " skipped" "$H/run/job-b.out" || fail "(slurm) the resubmitted job did not skip the finished runs"
    echo "(slurm) installed jobs/ntkmem.sbatch as $U, 2 tasks ($(grep -m1 -o 'launcher: .*' "$H/run/job-a.out")):" \
        "CSV ($n rows) equal to a direct run; a copy resubmitted: $(grep -m1 -o '[0-9]* skipped' "$H/run/job-b.out") ($((SECONDS - t0)) s)"
    slurm_stop; started_slurm=0
else
    echo "(slurm) not installed: the job submission from the prefix is not tested here"
fi

mv "$H/ntkmem.away" "$H/ntkmem"
as_user uninstall || fail "(uninstall) make uninstall"
# (the directories above PREFIX and MODULEFILES are not the install's: stage/opt stays)
left=$(find "$H/sw" "$H/stage" ! -type d 2>/dev/null | head -n 3)
[ ! -e "$H/sw/ntkmem" ] && [ ! -e "$H/sw/modulefiles" ] || left="$left $H/sw/ntkmem or modulefiles"
[ -z "$left" ] || fail "(uninstall) left behind: $left"
(cd "$H/ntkmem" && sha256sum --quiet -c "$T/tracked.sha256") || fail "a tracked file was changed"
echo "(uninstall) nothing left; no tracked file changed; config.mk is untracked; all in $((SECONDS - t_all)) s"
