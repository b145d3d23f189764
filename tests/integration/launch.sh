#!/bin/bash
# launch.sh HACTL: `hactl run` (eng_launch), the way hacd starts a guarded service.
#
# With --pidns the service is pid 2 under our init (pid 1) in new pid, ipc and uts
# namespaces; it holds only stdin (/dev/null) and stdout/stderr (the log), whatever
# hactl had open; --wait exits with the service's status; a missing program and an
# unknown user fail with the step named and leave nothing running.
set -euo pipefail

HACTL=$1
T=$(mktemp -d /tmp/hacd-launch.XXXXXX)
INIT=
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
	[ -n "$INIT" ] && kill -KILL "$INIT" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT

# An extra fd the service must not inherit.
exec 7>"$T/leak"
out=$("$HACTL" run --pidns --log "$T/svc.log" -- /bin/sh -c \
	'echo pid=$$; ls /proc/self/fd; echo started; exec sleep 30')
INIT=$(echo "$out" | awk '{print $2}')
SVC=$(echo "$out" | awk '{print $4}')
[ "$INIT" -gt 0 ] && [ "$SVC" -gt 0 ] && [ "$INIT" != "$SVC" ] || fail "pids: $out"
for i in $(seq 200); do grep -q started "$T/svc.log" 2>/dev/null && break; sleep 0.1; done
grep -qx 'pid=2' "$T/svc.log" || fail "service is not pid 2 inside: $(cat "$T/svc.log")"
grep -q "^NSpid:[[:space:]]*$SVC[[:space:]]*2\$" /proc/$SVC/status || fail "NSpid: $(grep NSpid /proc/$SVC/status)"
# ls itself opens fd 3 for /proc/self/fd: 0 1 2 3 and nothing else.
fds=$(grep -x '[0-9]*' "$T/svc.log" | tr '\n' ' ')
[ "$fds" = "0 1 2 3 " ] || fail "service fds: $fds"
[ "$(readlink /proc/$SVC/fd/0)" = /dev/null ] || fail "stdin not /dev/null"
[ "$(ls /proc/$INIT/fd | wc -l)" = 0 ] || fail "init holds fds: $(ls -l /proc/$INIT/fd)"
for ns in pid ipc uts; do
	[ "$(readlink /proc/$SVC/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] || fail "$ns ns shared"
done
[ "$(readlink /proc/$SVC/ns/net)" = "$(readlink /proc/self/ns/net)" ] || fail "net ns not shared"
[ "$(cat /proc/$INIT/comm)" = hacd-init ] || fail "init comm $(cat /proc/$INIT/comm)"
kill -KILL "$INIT"
INIT=

# --wait: the init exits with the service's status.
set +e
"$HACTL" run --pidns --wait -- /bin/sh -c 'exit 7' >/dev/null
rc=$?
set -e
[ $rc = 7 ] || fail "--wait exit status $rc, not 7"

# Failures name the step; nothing stays behind.
set +e
err=$("$HACTL" run --pidns -- /nonexistent/prog 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$err" | grep -q "execve: No such file" || fail "missing program: $rc $err"
set +e
err=$("$HACTL" run --user no-such-user-hacd -- /bin/true 2>&1)
rc=$?
set -e
[ $rc = 1 ] && echo "$err" | grep -q "user no-such-user-hacd" || fail "unknown user: $rc $err"
err=$("$HACTL" run -- relative/prog 2>&1) && fail "relative program accepted"
echo "$err" | grep -q "absolute path" || fail "relative program: $err"
# --user: the service runs with nobody's ids.
out=$("$HACTL" run --user nobody --log "$T/u.log" --wait -- /usr/bin/id -u)
grep -qx "$(id -u nobody)" "$T/u.log" || fail "--user: $(cat "$T/u.log")"
echo "launch: ok"
