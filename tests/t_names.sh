#!/bin/bash
# Name = room: every function a source file exports carries its file's name,
# nm_<file>_... (src/exp/exp_*.c: nm_exp_...), so a name says where to look.
# Read from the symbols the compiler wrote (nm on build/obj), not from the
# text, so macros and comments cannot fool it.  Data (tables such as
# nm_settings) is not checked: only functions (nm type T).
#
# The exceptions, each with its reason:
#   main       src/main.c: the program's entry point.
#   nm_fail    src/base/err.c: the error rule's two verbs, called in nearly
#   nm_calloc  every function of every layer (about 290 lines); a prefix
#              would lengthen all of them and tell nothing.
set -u
. "$(dirname "$0")/env.sh"
cd "$NTKMEM_ROOT" || exit 1
OBJ=$NTKMEM_BUILD/obj
[ -d "$OBJ" ] || { echo "SKIPPED: no objects in $OBJ (make all first)"; exit 77; }
EXCEPT=" main nm_fail nm_calloc "
bad=0 n=0
while read -r o; do
    f=$(basename "$o" .o)
    case $f in exp_*) pre=nm_exp ;; *) pre=nm_$f ;; esac
    for s in $(nm --defined-only -g "$o" | awk '$2 == "T" {print $3}'); do
        n=$((n + 1))
        case $s in "$pre" | "$pre"_*) continue ;; esac
        case $EXCEPT in *" $s "*) continue ;; esac
        echo "t_names: ${o#"$OBJ"/}: $s does not carry the file's prefix $pre"
        bad=$((bad + 1))
    done
done < <(find "$OBJ" -name '*.o' | sort)
[ "$n" -gt 100 ] || { echo "t_names: only $n exported functions found in $OBJ"; exit 1; }
[ "$bad" -eq 0 ] || { echo "t_names: $bad of $n exported functions lack their file's prefix"; exit 1; }
echo "t_names: all $n exported functions carry their file's prefix (exceptions:$EXCEPT)"
