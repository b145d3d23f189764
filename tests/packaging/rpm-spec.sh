#!/bin/sh
# rpm-spec.sh SRC VERSION: the RPM spec parses (rpmspec -P, no warning), and the
# version in it, in packaging/debian/changelog and in CMakeLists.txt (VERSION) agree.
set -eu
SRC=$1
VERSION=$2
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
deb=$(sed -n '1s/^hacd (\([^)-]*\).*/\1/p' "$SRC/packaging/debian/changelog")
[ "$deb" = "$VERSION" ] || fail "debian/changelog says $deb, CMakeLists.txt $VERSION"
if ! command -v rpmspec > /dev/null; then
	echo "SKIP: rpmspec missing (apt-get install rpm); versions agree ($VERSION)"
	exit 0
fi
T=$(mktemp -d /tmp/hacd-rpm.XXXXXX)
trap 'rm -rf "$T"' EXIT
rpmspec -P "$SRC/packaging/rpm/hacd.spec" > "$T/out" 2> "$T/err" || fail "rpmspec -P: $(cat "$T/err")"
[ ! -s "$T/err" ] || fail "rpmspec -P warns: $(cat "$T/err")"
rpm=$(rpmspec -q --srpm --qf '%{version}' "$SRC/packaging/rpm/hacd.spec")
[ "$rpm" = "$VERSION" ] || fail "hacd.spec says $rpm, CMakeLists.txt $VERSION"
grep -q '^%config(noreplace) /etc/hacd/hacd.conf$' "$T/out" || fail "hacd.conf is not a config file"
grep -q '^%dir %attr(0700,root,root) /var/lib/hacd$' "$T/out" || fail "no 0700 /var/lib/hacd"
echo "ok - hacd.spec parses; version $VERSION in the spec, debian/changelog and CMakeLists.txt"
