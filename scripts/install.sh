#!/bin/bash
# make install / make uninstall (the variables come from make; docs/install.md):
#   scripts/install.sh install     PREFIX/bin/{ntkmem,ntkmem-plot},
#                                  PREFIX/share/ntkmem/{README.md,configs,jobs,analysis,docs},
#                                  MODULEFILES/ntkmem/MODULE_VERSION.lua (Lmod)
#   scripts/install.sh uninstall   removes exactly the files the install listed
#                                  in PREFIX/share/ntkmem/installed-files
# Every path is written below $DESTDIR (staged installs, packages); the files
# themselves name the final PREFIX.
set -eu
: "${PREFIX:?}" "${MODULEFILES:?}" "${VERSION:?}" "${MODULE_VERSION:?}" "${NTKMEM_BIN:?}"
DESTDIR=${DESTDIR:-}
case $PREFIX in /*) ;; *) echo "install: PREFIX must be an absolute path (got '$PREFIX')" >&2; exit 2 ;; esac
case $MODULEFILES in /*) ;; *) echo "install: MODULEFILES must be an absolute path" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
share=$PREFIX/share/ntkmem
modfile=$MODULEFILES/ntkmem/$MODULE_VERSION.lua
manifest=$share/installed-files

uninstall() {
    local m=$DESTDIR$manifest f d files
    [ -f "$m" ] || { echo "uninstall: nothing installed in $DESTDIR$PREFIX (no $m)" >&2; exit 1; }
    mapfile -t files <"$m"
    for f in "${files[@]}"; do rm -f "$DESTDIR$f"; done
    rm -rf "$DESTDIR$share/analysis/__pycache__" # a Python run without -B
    # then the directories, where now empty (share/ntkmem is ntkmem's own)
    [ -d "$DESTDIR$share" ] && find "$DESTDIR$share" -depth -type d -empty -delete
    for d in "$share" "$PREFIX/share" "$PREFIX/bin" "$MODULEFILES/ntkmem" "$MODULEFILES" "$PREFIX"; do
        rmdir "$DESTDIR$d" 2>/dev/null || true
    done
    echo "uninstalled ntkmem from $DESTDIR$PREFIX"
}

installed=()
put() { # MODE SOURCE DEST (DEST is a final path; written below DESTDIR)
    install -D -m "$1" "$2" "$DESTDIR$3"
    installed+=("$3")
}

# the Python for ntkmem-plot: $PYTHON if make was given one, else the first
# python3 here that has numpy and matplotlib (Debian: /usr/bin/python3)
pick_python() {
    local p
    [ -n "${PYTHON:-}" ] && { echo "$PYTHON"; return; }
    for p in python3 /usr/bin/python3; do
        p=$(command -v "$p") || continue
        "$p" -c 'import numpy, matplotlib' 2>/dev/null && { echo "$p"; return; }
    done
    echo python3
}

do_install() {
    local f py
    [ -x "$NTKMEM_BIN" ] || { echo "install: $NTKMEM_BIN is not built" >&2; exit 1; }
    t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
    put 755 "$NTKMEM_BIN" "$PREFIX/bin/ntkmem"
    py=$(pick_python)
    cat >"$t/ntkmem-plot" <<EOF
#!/bin/sh
# ntkmem-plot: the figures of ntkmem $VERSION (analysis/plot.py; see
# $share/analysis/README.md).  NTKMEM_PYTHON picks another Python 3 with numpy and matplotlib.
py=\${NTKMEM_PYTHON:-$py}
"\$py" -c 'import numpy, matplotlib' 2>/dev/null || {
    echo "ntkmem-plot: '\$py' cannot import numpy and matplotlib: set NTKMEM_PYTHON to a Python 3 that can (or load its module)" >&2
    exit 2
}
# -B: no __pycache__ written into the (maybe shared, read-only) prefix
exec "\$py" -B "$share/analysis/plot.py" "\$@"
EOF
    put 755 "$t/ntkmem-plot" "$PREFIX/bin/ntkmem-plot"
    put 644 README.md "$share/README.md"
    for f in configs/*.yaml analysis/*.py analysis/columns.json analysis/README.md jobs/README.md; do
        case $f in analysis/test_*) continue ;; esac
        put 644 "$f" "$share/$f"
    done
    put 755 jobs/ntkmem-job.sh "$share/jobs/ntkmem-job.sh"
    # the job scripts: the site-setup hint names this module
    for f in jobs/*.sbatch; do
        sed "s|^# module load gcc openmpi openblas scalapack libyaml\$|# module load ntkmem/$MODULE_VERSION  (or submit with it loaded: sbatch passes your environment on)|" \
            "$f" >"$t/${f#jobs/}"
        put 755 "$t/${f#jobs/}" "$share/$f"
    done
    while IFS= read -r f; do put 644 "$f" "$share/$f"; done < <(find docs -type f | sort)

    # Lmod modulefile: PATH, the share directory, and the modules this build
    # was linked against (MODULE_DEPS, default: the ones loaded now), so
    # `module load ntkmem` brings its MPI and libraries along
    {
        echo "-- ntkmem $VERSION (make install; docs in $share)"
        echo "whatis(\"Name: ntkmem\")"
        echo "whatis(\"Version: $VERSION\")"
        echo "whatis(\"Description: memorization and neural-tangent-kernel experiments on depth-two networks (C + MPI)\")"
        echo "help([[ntkmem $VERSION"
        echo "  mpirun -np 4 ntkmem run \$NTKMEM_SHARE/configs/demo.yaml --out demo.csv"
        echo "  ntkmem-plot collapse demo.csv -o demo.png"
        echo "  sbatch -n 16 \$NTKMEM_JOBS/ntkmem.sbatch sweep.yaml results.csv"
        echo "Documentation: $share/README.md, $share/docs, $share/jobs/README.md]])"
        local m
        for m in ${MODULE_DEPS//:/ }; do
            case $m in ntkmem | ntkmem/*) continue ;; esac
            echo "depends_on(\"$m\")"
        done
        echo "local prefix = \"$PREFIX\""
        echo "prepend_path(\"PATH\", pathJoin(prefix, \"bin\"))"
        echo "setenv(\"NTKMEM_PREFIX\", prefix)"
        echo "setenv(\"NTKMEM_SHARE\", pathJoin(prefix, \"share/ntkmem\"))"
        echo "-- the job scripts source ntkmem-job.sh from here, also from a copy in your directory"
        echo "setenv(\"NTKMEM_JOBS\", pathJoin(prefix, \"share/ntkmem/jobs\"))"
    } >"$t/module.lua"
    put 644 "$t/module.lua" "$modfile"
    installed+=("$manifest")
    mkdir -p "$DESTDIR$share"
    printf '%s\n' "${installed[@]}" >"$DESTDIR$manifest"
    echo "installed ntkmem $VERSION in $DESTDIR$PREFIX (${#installed[@]} files); modulefile $DESTDIR$modfile"
    echo "  module use $MODULEFILES && module load ntkmem/$MODULE_VERSION"
}

case ${1:-} in
install) do_install ;;
uninstall) uninstall ;;
*) echo "usage: $0 install|uninstall" >&2; exit 2 ;;
esac
