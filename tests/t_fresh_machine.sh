#!/bin/bash
# README's quick start (make demo) on a machine that has nothing: pkg-config and
# dpkg-query answer "missing" until install-deps has called apt-get (a stand-in
# here, which records the call and then lets the real tools answer).  The first
# `make demo` in a copy of the tree must install, build, link and run -- no
# second try.  (The Makefile used to read pkg-config at parse time, before deps
# ran, and failed at link on a fresh machine.)
set -eu
. "$(dirname "$0")/env.sh"
nm_once_per_suite
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
command -v git >/dev/null && git -C "$NTKMEM_ROOT" rev-parse --git-dir >/dev/null 2>&1 || { echo "SKIPPED: not a git clone"; exit 77; }
# README's Debian path: root (or sudo) on Debian; a cluster user's is t_site_install
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || { echo "SKIPPED: not Debian (the Debian path's test)"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: the Debian path installs packages as root"; exit 77; }
mkdir -p "$T/bin" "$T/repo"
(cd "$NTKMEM_ROOT" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$T/repo"
real_dpkg=$(command -v dpkg-query); real_pc=$(command -v pkg-config)
cat >"$T/bin/dpkg-query" <<EOS
#!/bin/sh
[ -f "$T/installed" ] && exec "$real_dpkg" "\$@"
echo "dpkg-query: no packages found matching \$*" >&2; exit 1
EOS
cat >"$T/bin/pkg-config" <<EOS
#!/bin/sh
[ -f "$T/installed" ] && exec "$real_pc" "\$@"
exit 1
EOS
cat >"$T/bin/apt-get" <<EOS
#!/bin/sh
echo "apt-get \$*" >>"$T/apt.log"; touch "$T/installed"
EOS
chmod +x "$T/bin/"*
PATH="$T/bin:$PATH" NTKMEM_DEMO_OUT="$T/demo.csv" make -C "$T/repo" -j2 demo >"$T/log" 2>&1 ||
    { tail -n 30 "$T/log"; echo "FAILED: the first make demo on a fresh machine"; exit 1; }
grep -q "apt-get install" "$T/apt.log" || { echo "FAILED: install-deps did not call apt-get"; exit 1; }
rows=$(($(wc -l <"$T/demo.csv") - 1))
[ "$rows" -gt 0 ] || { echo "FAILED: the demo wrote no rows"; exit 1; }
grep -q "runs:.* 0 failed" "$T/log" || { tail -n 5 "$T/log"; echo "FAILED: demo runs failed"; exit 1; }
echo "fresh machine: apt-get called ($(grep -c . "$T/apt.log") times), demo built and wrote $rows rows"
