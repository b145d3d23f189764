#!/bin/bash
# replica-commit.sh DRIVER HACTL VICTIM: a standby's commit runs on the receiver's helper
# thread (replica/receiver.c, invariant 4); what if its connection goes meanwhile?
#
# Alpha's generations are real incremental checkpoints (`hactl dump --track`) of a
# victim, recorded in alpha's catalog with their store numbers; beta is the driver's
# receiver, whose test hooks hold a commit's job (REP_TEST_HOLD_FILES: before its
# fsyncs and renames; REP_TEST_HOLD_SYNC: before the catalog's WAL is synced, after the
# catalog said COMPLETE) while a file exists. On loopback, one CA.
#  1. The sender is killed -9 while generation 1's file job is held: once the job ends,
#     beta has nothing of it (no complete or pending row, no store generation), and a
#     new push ships and commits it.
#  2. The sender is killed while generation 2's sync job is held: the generation stays
#     consistent on beta (its row was COMPLETE), and a new push finds it present (no
#     data sent, acknowledged).
#  3. Beta is stopped (SIGTERM: rep_server_free) while generation 3's file job is held:
#     it waits for the job, exits 0, and nothing of generation 3 is left; restarted, it
#     takes generation 3.
# Each time beta's catalog holds exactly the generations committed, its store exactly
# their directories, and the newest verifies (`hactl image verify`).
set -euo pipefail
. "$(dirname "$0")/replica-lib.sh"

DRV=$(realpath "$1")
HACTL=$(realpath "$2")
VICTIM=$(realpath "$3")
rep_init repcm
SERVE_PID=
PUSH_PID=
VPID=
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
	rep_kill "$PUSH_PID" "$SERVE_PID" "$VPID"
	rm -rf "$T"
}
trap cleanup EXIT

rep_certs
conf() {
	rep_drv_conf "$1" "$2" "$1" 127.0.0.1:1 "127.0.0.1:$PORT" /run/hacd-repcm-victim.pid
}
conf alpha a > "$T/alpha.conf"
conf beta b > "$T/beta.conf"
AST=$T/a/services/victim/store
BST=$T/b/services/victim/store
export REP_TEST_HOLD_FILES=$T/hold-files REP_TEST_HOLD_SYNC=$T/hold-sync

A() { "$DRV" -f "$T/alpha.conf" "$@"; }
B() { "$DRV" -f "$T/beta.conf" "$@"; }
gendir() { printf '%s/gen-%08u' "$1" "$2"; }
sent() { sed -n 's/^sent \([0-9]*\) bytes.*/\1/p' "$1"; }
# beta_holds N: beta's catalog and store hold exactly store generations 1..N
beta_holds() {
	local want
	want=$(seq 1 "$1" | while read -r g; do gendir "$BST" "$g"; echo; done | sed '/^$/d')
	[ "$(B count victim)" = "complete $1 pending 0" ] &&
		[ "$(find "$BST" -maxdepth 1 -name 'gen-*' | sort)" = "$want" ]
}
# held WHAT: the job is waiting on the hook
held() { rep_wait 600 test -e "$T/hold-$1.held" || fail "no commit job held at $1"; }
# push_killed WHAT N: push store generation N, kill -9 the sender while beta's WHAT job
# holds it, let the job go on
lost() { grep -c "connection lost while receiving service victim generation" "$T/beta.log" || true; }
lost_more() { [ "$(lost)" -gt "$1" ]; }
push_killed() {
	local n
	n=$(lost)
	touch "$T/hold-$1"
	# Not through A(): PUSH_PID must be the driver itself.
	"$DRV" -f "$T/alpha.conf" push beta --once > "$T/push-$2.out" 2> "$T/push-$2.log" &
	PUSH_PID=$!
	held "$1"
	kill -KILL "$PUSH_PID"
	wait "$PUSH_PID" 2>/dev/null || true
	PUSH_PID=
	rep_wait 200 lost_more "$n" || fail "beta did not see the connection end"
	rm -f "$T/hold-$1" "$T/hold-$1.held"
}

rep_victim VPID "$T/result" 16
mkdir -p "$T/a/services/victim"
chmod -R 700 "$T/a"
"$HACTL" dump -t "$VPID" -D "$AST" --track --count 3 --interval 200 --leave-running \
	> "$T/track.out" 2> "$T/track.log" || fail "hactl dump --track: $(tail -3 "$T/track.log")"
rep_start_beta ""

# --- 1. the sender killed during the file job ------------------------------------------------
A add-store victim 1 > /dev/null
push_killed files 1
rep_wait 200 beta_holds 0 ||
	fail "beta after the kill: $(B count victim), $(ls -a "$BST" 2>&1 | tr '\n' ' ')"
A push beta --once > "$T/push1.out" 2> "$T/push1.log" || fail "push of 1 after the kill"
grep -q "ack victim 1 ok" "$T/push1.out" || fail "generation 1 not acknowledged"
beta_holds 1 || fail "beta after generation 1: $(B count victim), $(ls "$BST")"
echo "1. sender killed during the file job: nothing left; shipped again: $(grep '^sent' "$T/push1.out")"

# --- 2. the sender killed during the sync job ------------------------------------------------
A add-store victim 2 > /dev/null
push_killed sync 2
rep_wait 200 beta_holds 2 || fail "beta after the kill: $(B count victim), $(ls "$BST")"
A push beta --once > "$T/push2.out" 2> "$T/push2.log" || fail "push of 2 after the kill"
grep -q "ack victim 2 ok" "$T/push2.out" || fail "generation 2 not acknowledged"
[ "$(sent "$T/push2.out")" = 0 ] || fail "generation 2 sent again: $(grep '^sent' "$T/push2.out")"
echo "2. sender killed during the sync job: generation 2 consistent, found present after"

# --- 3. beta stopped during the file job -------------------------------------------------------
A add-store victim 3 > /dev/null
touch "$T/hold-files"
"$DRV" -f "$T/alpha.conf" push beta > "$T/push3.out" 2> "$T/push3.log" &
PUSH_PID=$!
held files
kill -TERM "$SERVE_PID"
sleep 0.2
kill -0 "$SERVE_PID" || fail "beta did not wait for its commit job"
rm -f "$T/hold-files" "$T/hold-files.held"
wait "$SERVE_PID" || fail "beta's exit status $? after a stop during a commit job"
SERVE_PID=
beta_holds 2 || fail "beta after its stop: $(B count victim), $(ls -a "$BST" | tr '\n' ' ')"
rep_kill "$PUSH_PID"
PUSH_PID=
rep_start_beta ""
A push beta --once > "$T/push3.out" 2> "$T/push3.log" || fail "push of 3 after beta's restart"
grep -q "ack victim 3 ok" "$T/push3.out" || fail "generation 3 not acknowledged"
beta_holds 3 || fail "beta after generation 3: $(B count victim), $(ls "$BST")"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "beta's exit status $?"
SERVE_PID=
"$HACTL" image verify -D "$BST" --generation 3 > "$T/verify.log" 2>&1 ||
	fail "hactl image verify of beta's generation 3: $(tail -3 "$T/verify.log")"
echo "PASS: commit jobs outlived their connections and beta's stop; generation 3 verifies"
