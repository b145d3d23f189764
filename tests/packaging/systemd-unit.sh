#!/bin/sh
# systemd-unit.sh UNIT HACD: systemd-analyze verify accepts hacd.service without a
# single warning (it only warns, exit 0, on a bad value: any output fails the test).
# The unit names /usr/sbin/hacd, which verify wants to exist: a copy names the built
# one. Works offline: no running systemd is needed.
set -eu
UNIT=$1
HACD=$2
command -v systemd-analyze > /dev/null || {
	echo "SKIP: systemd-analyze missing (apt-get install systemd)"
	exit 0
}
T=$(mktemp -d /tmp/hacd-unit.XXXXXX)
trap 'rm -rf "$T"' EXIT
sed "s|/usr/sbin/hacd|$HACD|g" "$UNIT" > "$T/hacd.service"
grep -q "^ExecStart=$HACD -f /etc/hacd/hacd.conf\$" "$T/hacd.service" || {
	echo "FAIL: ExecStart does not run /usr/sbin/hacd -f /etc/hacd/hacd.conf" >&2
	exit 1
}
rc=0
systemd-analyze verify --man=no "$T/hacd.service" > "$T/out" 2>&1 || rc=$?
if [ "$rc" != 0 ] || [ -s "$T/out" ]; then
	echo "FAIL: systemd-analyze verify (exit $rc):" >&2
	cat "$T/out" >&2
	exit 1
fi
# The same check catches a broken value: make sure it would.
sed 's/^WatchdogSec=.*/WatchdogSec=soon/' "$T/hacd.service" > "$T/bad.service"
systemd-analyze verify --man=no "$T/bad.service" > "$T/out" 2>&1 || true
[ -s "$T/out" ] || { echo "FAIL: verify does not report a bad value" >&2; exit 1; }
echo "ok - systemd-analyze verify: hacd.service clean"
