#!/bin/sh
# rpm-build.sh SRC VERSION: the RPM spec really builds, with `rpmbuild -bb`, from a
# tarball of the tree, and the package holds what it should (rpm -qlp, modes, config
# files, scriptlets).
#
# This machine is Debian: rpmbuild runs with --nodeps because the spec's BuildRequires
# name Fedora packages (pkgconfig(...) provides, cmake-rpm-macros, systemd-rpm-macros)
# that no rpm database here provides, while the libraries themselves are installed by
# tests/deps.sh. Debian's rpm lacks Fedora's %cmake macros: the spec defines them when
# they are missing. It lacks the systemd scriptlet macros too: this test loads small
# stand-ins (below), so the scriptlets are real shell; on Fedora the real ones serve.
set -eu
SRC=$1
VERSION=$2
if ! command -v rpmbuild > /dev/null; then
	echo "SKIP: rpmbuild missing (apt-get install rpm)"
	exit 0
fi
T=$(mktemp -d /tmp/hacd-rpmb.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

mkdir -p "$T/rpmbuild/SOURCES"
"$(dirname "$0")/copy-tree.sh" "$SRC" "$T/hacd-$VERSION" || fail "copying the tree"
tar czf "$T/rpmbuild/SOURCES/hacd-$VERSION.tar.gz" -C "$T" "hacd-$VERSION"

# Stand-ins for systemd-rpm-macros (not on Debian): what they do on first install,
# on removal and after an upgrade, minus the presets machinery.
cat > "$T/macros.systemd" <<'EOF'
%systemd_requires %{nil}
%systemd_post() if [ $1 -eq 1 ]; then systemctl --no-reload preset %{?*} >/dev/null 2>&1 || :; fi
%systemd_preun() if [ $1 -eq 0 ]; then systemctl --no-reload disable --now %{?*} >/dev/null 2>&1 || :; fi
%systemd_postun() systemctl daemon-reload >/dev/null 2>&1 || :
EOF

start=$(date +%s)
rpmbuild -bb --nodeps --load "$T/macros.systemd" --define "_topdir $T/rpmbuild" \
	--define "_smp_mflags -j2" "$SRC/packaging/rpm/hacd.spec" > "$T/build.log" 2>&1 ||
	{ tail -n 40 "$T/build.log" >&2; fail "rpmbuild -bb"; }
rpm=$(find "$T/rpmbuild/RPMS" -name "hacd-$VERSION-1*.x86_64.rpm" | head -n 1)
[ -n "$rpm" ] || fail "no hacd-$VERSION RPM: $(find "$T/rpmbuild/RPMS" -type f)"
echo "ok - rpmbuild -bb --nodeps: $(basename "$rpm") in $(($(date +%s) - start)) s"

rpm -qlp "$rpm" > "$T/files" 2>/dev/null
for f in /usr/sbin/hacd /usr/sbin/hactl /usr/lib/systemd/system/hacd.service \
	/usr/lib/ocf/resource.d/hacd/hacd /usr/lib/hacd/hacd-notify \
	/etc/hacd/hacd.conf /etc/hacd/conf.d /etc/logrotate.d/hacd /var/lib/hacd \
	/usr/share/doc/hacd/cluster.md /usr/share/doc/hacd/examples/hacd.conf.example; do
	grep -qx "$f" "$T/files" || fail "$f not in the RPM: $(cat "$T/files")"
done
for m in man8/hacd.8 man8/hactl.8 man5/hacd.conf.5; do
	grep -q "^/usr/share/man/$m\(\.gz\)\?$" "$T/files" || fail "no $m man page: $(cat "$T/files")"
done
echo "ok - rpm -qlp: binaries, unit, OCF agent, keepalived script, man pages, config example"

# Modes and owners (--dump: path size mtime digest mode owner group ...).
rpm -qp --dump "$rpm" > "$T/dump" 2>/dev/null
mode() { awk -v f="$1" '$1 == f { print $5 }' "$T/dump"; }
[ "$(mode /var/lib/hacd)" = 040700 ] || fail "/var/lib/hacd mode $(mode /var/lib/hacd), not 0700"
for x in /usr/sbin/hacd /usr/sbin/hactl /usr/lib/ocf/resource.d/hacd/hacd /usr/lib/hacd/hacd-notify; do
	[ "$(mode "$x")" = 0100755 ] || fail "$x mode $(mode "$x"), not 0755"
done
awk '$6 != "root" || $7 != "root" { print; bad = 1 } END { exit bad }' "$T/dump" > "$T/owners" ||
	fail "files not owned by root: $(cat "$T/owners")"
rpm -qcp "$rpm" > "$T/conf" 2>/dev/null
grep -qx /etc/hacd/hacd.conf "$T/conf" || fail "hacd.conf is not a config file: $(cat "$T/conf")"
grep -qx /etc/logrotate.d/hacd "$T/conf" || fail "the logrotate file is not a config file"
rpm -qp --scripts "$rpm" > "$T/scripts" 2>/dev/null
grep -q '%' "$T/scripts" && fail "an unexpanded macro in the scriptlets: $(cat "$T/scripts")"
grep -q 'systemctl' "$T/scripts" || fail "no systemctl in the scriptlets: $(cat "$T/scripts")"
echo "ok - modes (0700 state dir, 0755 programs), root-owned, config files, scriptlets"

# The unit points at the installed binary; the binaries run.
mkdir "$T/root"
(cd "$T/root" && rpm2cpio "$rpm" | cpio -idm --quiet) || fail "rpm2cpio"
grep -q '^ExecStart=/usr/sbin/hacd' "$T/root/usr/lib/systemd/system/hacd.service" ||
	fail "unit: $(grep Exec "$T/root/usr/lib/systemd/system/hacd.service")"
"$T/root/usr/sbin/hactl" help > "$T/help" 2>&1 || fail "the packaged hactl: $(cat "$T/help")"
"$T/root/usr/sbin/hacd" -t -f "$T/root/etc/hacd/hacd.conf" > "$T/t" 2>&1 ||
	fail "the packaged hacd -t on the packaged config: $(cat "$T/t")"
echo "ok - packaged unit runs /usr/sbin/hacd; packaged hactl and hacd -t work"
