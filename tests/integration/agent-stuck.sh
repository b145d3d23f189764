#!/bin/bash
# agent-stuck.sh HACD HACTL: a checkpoint that never ends (checkpoint_timeout).
#
# The worker's test hook (HACD_TEST_STALL_CHECKPOINT=FILE, hacd-worker.c) holds the
# service seized under ptrace, every thread stopped, as a dump stuck in the engine would,
# for the milliseconds written in FILE. checkpoint_timeout is 3 s, the grace between
# the worker's SIGTERM and its SIGKILL 5 s.
#  1. A stall of 5 s: at 3 s hacd abandons the checkpoint (event), the worker lets the
#     service go when the stall ends and exits without committing (no SIGKILL), the
#     generation is failed, and a new worker takes the next checkpoints.
#  2. A stall with no end: SIGKILL after the grace (event); the kernel detaches the
#     service, which runs on.
# Each time the service is the same process (same pid and start time: never restored),
# no longer traced, and counting on; the catalog verifies, the page store holds exactly
# the complete generations, the newest verifies, and a kill -9 of the service restores
# the newest generation with the counter where it was.
# Run as pid 1 of its own pid namespace (CMakeLists.txt), like agent-guard.sh.
set -euo pipefail

# shellcheck source=agent-lib.sh
. "$(dirname "$0")/agent-lib.sh"

agent_init stuck counter "$@"
OUT=$T/state/services/counter/output.log
STORE=$T/state/services/counter/store
STALL=$T/stall

{ conf_head; conf_service counter "$HERE/counter.py" 500ms 100 'checkpoint_timeout = "3s"'; } > "$CONF"

# The worker's test hook (hacd passes its environment on to its workers).
export HACD_TEST_STALL_CHECKPOINT=$STALL
start_hacd

# wait_newer STATE ID: until a generation newer than ID is in STATE (60 s at most).
wait_newer() { wait_until 600 0.1 newer counter "$1" "$2" || fail "no $1 generation after $2"; }
events() { "$HACTL" -s "$SOCK" log counter -n 200; }
count() { events | grep -c -- "$1" || true; }
# more_events TEXT N: more than N events say TEXT.
more_events() { [ "$(count "$1")" -gt "$2" ]; }
# taken: the worker took the stall file and traces the service (its pid in W).
taken() { W=$(tracer "$P"); [ ! -e "$STALL" ] && [ "$W" != 0 ]; }

wait_newer complete 0
P=$(svc_pid counter)
PST=$(start_time "$P")
[ "$P" -gt 0 ] && [ -n "$PST" ] || fail "no service"

# stuck ROUND MS: one stalled checkpoint, then the checks common to both rounds.
stuck() {
	local round=$1 ms=$2 abandoned killed before v0 v1 g
	abandoned=$(count "abandoned; stopping the worker")
	killed=$(count "stuck in the engine: SIGKILL")
	before=$(gens counter complete | sed -n 1p)
	echo "$ms" > "$STALL.new" && mv "$STALL.new" "$STALL"
	# The stall begins: the file is taken and the service is traced.
	wait_until 200 0.05 taken || true
	[ ! -e "$STALL" ] || fail "$round: the worker did not take $STALL"
	[ "$W" != 0 ] && [ "$W" != gone ] || fail "$round: the service $P was never seen traced ($W)"
	# Abandoned at checkpoint_timeout (an event); failed once the worker is gone.
	wait_until 300 0.1 more_events "abandoned; stopping the worker" "$abandoned" ||
		fail "$round: no timeout event: $(events | head -5)"
	wait_until 300 0.1 newer counter failed "$before" || fail "$round: no failed generation after $before"
	g=$(gens counter failed | sed -n 1p)
	events | grep -q "generation $g failed: abandoned after checkpoint_timeout" ||
		fail "$round: generation $g failed, but not by the timeout: $(events | head -5)"
	# Not by the stopped worker: its successor may already be checkpointing it.
	[ "$(tracer "$P")" != "$W" ] || fail "$round: the service $P is still traced by the stopped worker $W"
	[ "$(svc_pid counter)" = "$P" ] && [ "$(start_time "$P")" = "$PST" ] ||
		fail "$round: the service $P was not left running (now $(svc_pid counter))"
	v0=$(last_value)
	sleep 0.5
	v1=$(last_value)
	[ "$v1" -gt "$v0" ] || fail "$round: the counter stopped at $v0"
	wait_newer complete "$g"
	[ "$(svc_pid counter)" = "$P" ] && [ "$(start_time "$P")" = "$PST" ] ||
		fail "$round: the service was restarted or restored"
	"$HACTL" catalog verify "$T/state/catalog.db" > /dev/null || fail "$round: catalog"
	if more_events "stuck in the engine: SIGKILL" "$killed"; then
		KILLED=yes
	else
		KILLED=no
	fi
	FAILED=$g
}

stuck "stall of 5 s" 5000
[ "$KILLED" = no ] || fail "stall of 5 s: the worker got SIGKILL instead of leaving at the end of the stall"
echo "ok - a checkpoint stalled 5 s is abandoned at 3 s: generation $FAILED failed, the worker" \
	"left once the service was released (no SIGKILL), the service runs on, checkpoints go on"

stuck "endless stall" 0
[ "$KILLED" = yes ] || fail "endless stall: no SIGKILL event: $(events | head -5)"
echo "ok - an endless stall: SIGKILL after the grace, generation $FAILED failed, the service" \
	"was let go by the kernel and runs on, checkpoints go on"

# The store holds exactly the complete generations once the clean-up after the failure
# ran (it follows the next commit); the newest verifies.
if [ "$MODE" = incremental ]; then
	ok=
	for _ in $(seq 100); do
		"$HACTL" -s "$SOCK" list counter --json > "$T/list.json"
		ls "$STORE" > "$T/store.ls"
		if python3 - "$T/list.json" "$T/store.ls" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["generations"]
want = {x["store_gen"] for x in g if x["state"] in ("complete", "pending") and x.get("store_gen")}
done = {x["store_gen"] for x in g if x["state"] == "complete" and x.get("store_gen")}
have = set()
for e in open(sys.argv[2]).read().split():
    if e.startswith(".gen-") or e.startswith(".del-"):
        sys.exit(1)	# being written or deleted: look again
    if e.startswith("gen-"):
        have.add(int(e[4:]))
sys.exit(0 if done <= have <= want else 1)
PY
		then ok=1; break; fi
		sleep 0.1
	done
	[ -n "$ok" ] || fail "store $(tr '\n' ' ' < "$T/store.ls") vs catalog $(cat "$T/list.json")"
	N=$(python3 -c 'import json, sys
g = json.load(open(sys.argv[1]))["generations"]
print(max(x["store_gen"] for x in g if x["state"] == "complete"))' "$T/list.json")
	"$HACTL" image verify -D "$STORE" --generation "$N" > /dev/null ||
		fail "store generation $N does not verify"
	echo "ok - the page store holds exactly the complete generations; the newest ($N) verifies"
fi

# The newest generation restores with the counter where it was.
g=$(gens counter complete | sed -n 1p)
wait_newer complete "$g"
sleep 0.2
kill_restored counter "$P"
before=$BEFORE first=$FIRST
# The newest generation is at most an interval plus a dump old: 50 ms per count.
[ "$first" -le "$((before + 1))" ] && [ "$first" -ge "$((before - 40))" ] ||
	fail "restored counter $first, was $before when killed"
echo "ok - kill -9 after both: the newest generation restores, counter $before -> $first"

kill -TERM "$PID"
wait "$PID" || fail "SIGTERM: exit $?"
PID=
echo "ok - stuck checkpoints recovered"
