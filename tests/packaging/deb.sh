#!/bin/sh
# deb.sh SRC: the Debian package builds from a copy of the tree with
# `dpkg-buildpackage -b -us -uc` (debian/ being packaging/debian), holds what it
# should (dpkg-deb -c), marks /etc/hacd/hacd.conf a conffile, and, when no hacd
# package is installed on this machine already, installs, works (hacd -t on the
# installed config, hactl help, /var/lib/hacd 0700) and purges cleanly.
# Needs debhelper (a full build takes a few minutes on two cores).
set -eu
SRC=$1
if ! command -v dpkg-buildpackage > /dev/null || ! command -v dh > /dev/null; then
	echo "SKIP: dpkg-buildpackage or debhelper missing (apt-get install dpkg-dev debhelper)"
	exit 0
fi
T=$(mktemp -d /tmp/hacd-deb.XXXXXX)
installed=
cleanup() {
	[ -n "$installed" ] && dpkg_locked -P hacd
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

"$(dirname "$0")/copy-tree.sh" "$SRC" "$T/hacd-0.1.0" || fail "copying the tree"
cp -r "$T/hacd-0.1.0/packaging/debian" "$T/hacd-0.1.0/debian"
start=$(date +%s)
(cd "$T/hacd-0.1.0" && dpkg-buildpackage -b -us -uc -j2) > "$T/build.log" 2>&1 ||
	{ tail -n 40 "$T/build.log" >&2; fail "dpkg-buildpackage"; }
deb=$(ls "$T"/hacd_*_amd64.deb)
echo "ok - dpkg-buildpackage -b: $(basename "$deb") in $(($(date +%s) - start)) s"

dpkg-deb -c "$deb" > "$T/list"
awk '{ print $6 }' "$T/list" | sed 's|^\./|/|' > "$T/files"
for f in /usr/sbin/hacd /usr/sbin/hactl /lib/systemd/system/hacd.service \
	/etc/hacd/hacd.conf /etc/hacd/conf.d/ /etc/logrotate.d/hacd /usr/lib/ocf/resource.d/hacd/hacd \
	/usr/lib/hacd/hacd-notify /usr/share/man/man8/hacd.8.gz /usr/share/man/man8/hactl.8.gz \
	/usr/share/man/man5/hacd.conf.5.gz /usr/share/doc/hacd/cluster.md.gz \
	/usr/share/doc/hacd/copyright; do
	grep -qx "$f" "$T/files" || fail "$f not in the package: $(cat "$T/files")"
done
grep -q '^/usr/lib/systemd' "$T/files" && fail "unit under /usr/lib/systemd too"
grep -q '^-rwxr-xr-x .*/usr/lib/ocf/resource.d/hacd/hacd$' "$T/list" ||
	fail "OCF agent not executable"
dpkg-deb -e "$deb" "$T/control"
grep -qx /etc/hacd/hacd.conf "$T/control/conffiles" || fail "hacd.conf is not a conffile"
grep -qx /etc/logrotate.d/hacd "$T/control/conffiles" || fail "logrotate file is not a conffile"
grep -q 'install -d -m 0700' "$T/control/postinst" || fail "postinst does not create /var/lib/hacd"
grep -q 'Depends:.*libevent' "$T/control/control" || fail "no shlibs dependencies"
echo "ok - contents: binaries, unit in /lib/systemd/system, conffile, OCF agent, man pages"

# One install at a time on this machine: tests of several trees may run at once.
exec 9> /tmp/hacd-deb-install.lock
flock -w 900 9 || fail "waiting for /tmp/hacd-deb-install.lock"
if dpkg -s hacd > /dev/null 2>&1; then
	echo "# skipped: install (a hacd package is installed here already)"
	exit 0
fi
# dpkg ARGS...: waiting (2 min at most) while another dpkg or apt holds its lock.
dpkg_locked() {
	n=120
	while ! dpkg "$@" > "$T/dpkg.log" 2>&1; do
		grep -q 'lock' "$T/dpkg.log" && [ $n -gt 0 ] || return 1
		n=$((n - 1))
		sleep 1
	done
}
installed=1
dpkg_locked -i "$deb" || { cat "$T/dpkg.log" >&2; fail "dpkg -i"; }
[ "$(stat -c %a /var/lib/hacd)" = 700 ] || fail "/var/lib/hacd mode $(stat -c %a /var/lib/hacd)"
/usr/sbin/hacd -t -f /etc/hacd/hacd.conf > /dev/null || fail "installed config does not pass hacd -t"
/usr/sbin/hactl help | grep -q status || fail "installed hactl"
man -w hacd.conf > /dev/null 2>&1 || fail "man hacd.conf not found"
dpkg_locked -P hacd || { cat "$T/dpkg.log" >&2; fail "dpkg -P"; }
installed=
for f in /usr/sbin/hacd /etc/hacd /etc/logrotate.d/hacd /var/lib/hacd /lib/systemd/system/hacd.service; do
	[ ! -e "$f" ] || fail "purge left $f behind"
done
echo "ok - dpkg -i: /var/lib/hacd 0700, config valid, man page found; dpkg -P removes all"
