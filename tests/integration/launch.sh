#!/bin/bash
# launch.sh HACTL: `hactl run` (eng_launch), the way hacd starts a guarded service.
#
# With --pidns the service is pid 2 under our init (pid 1) in new pid, ipc, uts and
# mount namespaces (its /proc shows itself as pid 2); it holds only stdin (/dev/null) and stdout/stderr (the log), whatever
# hactl had open; --wait exits with the service's status; a missing program and an
# unknown user fail with the step named and leave nothing running. A launched service is
# dumped through its init and restored into new namespaces with its pids inside; a
# foreign pid namespace, orphans under our init, SysV semaphores in its ipc namespace and
# mounts the service made in its mount namespace
# are refused with the service left running; its SysV shared memory segments (ipcmk)
# come back with their ids, keys, modes and sizes, and dump again from the copy.
set -euo pipefail

HACTL=$1
T=$(mktemp -d /tmp/hacd-launch.XXXXXX)
INIT=
OTHER=
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
	[ -n "$INIT" ] && kill -KILL "$INIT" 2>/dev/null || true
	[ -n "$OTHER" ] && kill -KILL "$OTHER" "${FOREIGN:-$OTHER}" 2>/dev/null || true
	rm -rf "$T"
}
# The pid inside a process's innermost pid namespace.
inner() { awk '/^NSpid:/ {print $NF}' "/proc/$1/status"; }
# Start CMD under our init: sets INIT and SVC, waits for "started" in LOG.
launch() {
	local log=$1 out
	shift
	out=$("$HACTL" run --pidns --log "$log" -- "$@")
	INIT=$(echo "$out" | awk '{print $2}')
	SVC=$(echo "$out" | awk '{print $4}')
	for i in $(seq 200); do grep -q started "$log" 2>/dev/null && break; sleep 0.1; done
	grep -q started "$log" || fail "$* did not start: $(cat "$log")"
}
# hactl restore -D DIR --detach: sets INIT and SVC (the restored init and service) and
# OUT (what it printed).
restore_detached() {
	OUT=$("$HACTL" restore -D "$1" --detach)
	INIT=$(echo "$OUT" | awk '$1 == "restored" {print $3}')
	SVC=$(echo "$OUT" | awk '$4 == "service" {print $5}')
}
trap cleanup EXIT

# An extra fd the service must not inherit.
exec 7>"$T/leak"
out=$("$HACTL" run --pidns --log "$T/svc.log" -- /bin/sh -c \
	'echo pid=$$; read s _ </proc/self/stat; echo self=$s; ls /proc/self/fd; echo started; exec sleep 30')
INIT=$(echo "$out" | awk '{print $2}')
SVC=$(echo "$out" | awk '{print $4}')
[ "$INIT" -gt 0 ] && [ "$SVC" -gt 0 ] && [ "$INIT" != "$SVC" ] || fail "pids: $out"
for i in $(seq 200); do grep -q started "$T/svc.log" 2>/dev/null && break; sleep 0.1; done
grep -qx 'pid=2' "$T/svc.log" || fail "service is not pid 2 inside: $(cat "$T/svc.log")"
grep -qx 'self=2' "$T/svc.log" || fail "the service's /proc/self is not itself: $(cat "$T/svc.log")"
grep -q "^NSpid:[[:space:]]*$SVC[[:space:]]*2\$" /proc/$SVC/status || fail "NSpid: $(grep NSpid /proc/$SVC/status)"
# ls itself opens fd 3 for /proc/self/fd: 0 1 2 3 and nothing else.
fds=$(grep -x '[0-9]*' "$T/svc.log" | tr '\n' ' ')
[ "$fds" = "0 1 2 3 " ] || fail "service fds: $fds"
[ "$(readlink /proc/$SVC/fd/0)" = /dev/null ] || fail "stdin not /dev/null"
[ "$(ls /proc/$INIT/fd | wc -l)" = 0 ] || fail "init holds fds: $(ls -l /proc/$INIT/fd)"
for ns in pid ipc uts mnt; do
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

# Dump through the init, restore without --pidns (the image says so): a new init, the
# service at pid 2 and its child at pid 3 inside, in namespaces that are not ours.
launch "$T/cr.log" /bin/sh -c 'sleep 1000 & echo child=$!; echo started; wait'
grep -qx 'child=3' "$T/cr.log" || fail "child pid inside: $(cat "$T/cr.log")"
"$HACTL" dump -t "$INIT" -D "$T/img" >/dev/null || fail "dump of init $INIT"
INIT=
restore_detached "$T/img"
[ -n "$INIT" ] && [ -n "$SVC" ] || fail "restore: $OUT"
[ "$(cat /proc/$INIT/comm)" = hacd-init ] || fail "restored init comm $(cat /proc/$INIT/comm)"
[ "$(inner "$SVC")" = 2 ] || fail "restored service is pid $(inner "$SVC") inside"
CHILD=$(awk '{print $1}' /proc/$SVC/task/$SVC/children)
[ "$(inner "$CHILD")" = 3 ] || fail "restored child is pid $(inner "$CHILD") inside"
for ns in pid ipc uts mnt; do
	[ "$(readlink /proc/$SVC/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] || fail "restored: $ns ns shared"
done
# Its /proc is its own again: pid 3 inside is its child.
[ "$(awk '{print $2}' /proc/$SVC/root/proc/3/stat 2>/dev/null)" = "(sleep)" ] ||
	fail "restored: the service's /proc does not show its child as pid 3"

# A checkpoint of the restored service, by its own pid this time.
"$HACTL" dump -t "$SVC" -D "$T/img2" --leave-running >/dev/null || fail "dump of the restored service"
kill -0 "$SVC" || fail "the restored service did not survive dump --leave-running"
kill -KILL "$INIT"
INIT=

# Incremental checkpoints of a launched service, by its init's pid: the newest
# generation of the store restores into new namespaces too.
launch "$T/track.log" /bin/sh -c 'echo started; exec sleep 1000'
"$HACTL" dump -t "$INIT" -D "$T/store" --track --count 3 --interval 100 >/dev/null 2>"$T/track.err" ||
	fail "tracked dump of init $INIT: $(cat "$T/track.err")"
kill -KILL "$INIT"
restore_detached "$T/store"
[ -n "$SVC" ] && [ "$(inner "$SVC")" = 2 ] || fail "restore of the store: $OUT"
sleep 0.2
kill -0 "$SVC" || fail "the service restored from the store did not keep running"
kill -KILL "$INIT"
INIT=

# refused TARGET SURVIVOR DIR PATTERN WHAT: hactl dump -t TARGET must fail (rc 1) with an
# error matching PATTERN and leave SURVIVOR running.
refused() {
	set +e
	err=$("$HACTL" dump -t "$1" -D "$3" 2>&1)
	rc=$?
	set -e
	[ $rc = 1 ] && echo "$err" | grep -q "$4" || fail "$5: $rc $err"
	kill -0 "$2" || fail "$5: $2 did not survive the refused dump"
}

# A pid namespace that is not ours: refused, the process left running.
unshare --pid --fork sleep 1000 </dev/null >/dev/null 2>&1 &
OTHER=$!
for i in $(seq 100); do FOREIGN=$(awk '{print $1}' /proc/$OTHER/task/$OTHER/children 2>/dev/null) && [ -n "$FOREIGN" ] && break; sleep 0.05; done
refused "$FOREIGN" "$FOREIGN" "$T/img3" "pid $FOREIGN (sleep) is pid 1 of another pid namespace and not hacd's init" \
	"foreign init"
# The namespace ends with its pid 1, unshare with it.
{ kill -KILL "$FOREIGN"; wait "$OTHER"; } 2>/dev/null || true
OTHER=

# An orphan reparented to our init: refused, naming both children.
launch "$T/orphan.log" /bin/sh -c '/bin/sh -c "sleep 1000 & echo orphan=\$!"; echo started; exec sleep 1000'
refused "$INIT" "$SVC" "$T/img4" "init $INIT .* has 2 children" "orphan under init"
kill -KILL "$INIT"
INIT=

# SysV semaphores in the service's ipc namespace: refused by kind.
launch "$T/ipc.log" /bin/sh -c 'ipcmk -S 1 >/dev/null && echo started; exec sleep 1000'
refused "$INIT" "$SVC" "$T/img5" "holds 1 SysV semaphore sets" "SysV semaphores"
kill -KILL "$INIT"
INIT=

# A mount the service made in its own mount namespace: not checkpointed, so refused,
# naming it (a restore would silently come back without it).
mkdir -p "$T/mnt"
launch "$T/mount.log" /bin/sh -c "mount -t tmpfs svc-tmp '$T/mnt' && echo started; exec sleep 1000"
refused "$INIT" "$SVC" "$T/img6" "$T/mnt (tmpfs) was mounted inside the service's mount namespace" \
	"a mount made by the service"
kill -KILL "$INIT"
INIT=

# SysV shared memory made by ipcmk, attached by nobody: the segments come back in the
# new ipc namespace as ipcs shows them (ids, keys, owner, modes, sizes), and the copy
# dumps again. The segment made and removed first moves the ids off a fresh
# namespace's.
launch "$T/shm.log" /bin/sh -c 'ipcrm -m "$(ipcmk -M 4096 | awk "{print \$NF}")" &&
	ipcmk -M 8192 -p 0640 >/dev/null && ipcmk -M 100 >/dev/null && echo started; exec sleep 1000'
shm_list() { nsenter -t "$1" -i ipcs -m | awk '$2 ~ /^[0-9]+$/'; }
before=$(shm_list "$SVC")
[ "$(echo "$before" | wc -l)" = 2 ] || fail "ipcmk segments: $before"
"$HACTL" dump -t "$INIT" -D "$T/img6" >/dev/null || fail "dump of a service with SysV segments"
INIT=
restore_detached "$T/img6"
[ -n "$SVC" ] || fail "restore with SysV segments: $OUT"
after=$(shm_list "$SVC")
[ "$before" = "$after" ] || fail "SysV segments differ after restore: before
$before
after
$after"
"$HACTL" dump -t "$SVC" -D "$T/img7" --leave-running >/dev/null || fail "dump of the restored SysV segments"
"$HACTL" image verify "$T/img7" >/dev/null || fail "image verify of the restored SysV segments"
# Incremental checkpoints (what hacd takes) keep them too.
"$HACTL" dump -t "$SVC" -D "$T/store2" --track --count 2 --interval 100 >/dev/null 2>"$T/track2.err" ||
	fail "tracked dump of the SysV segments: $(cat "$T/track2.err")"
kill -KILL "$INIT"
restore_detached "$T/store2"
[ -n "$SVC" ] || fail "restore of the store with SysV segments: $OUT"
after=$(shm_list "$SVC")
[ "$before" = "$after" ] || fail "SysV segments differ after restore from the store: before
$before
after
$after"
kill -KILL "$INIT"
INIT=
echo "launch: ok"
