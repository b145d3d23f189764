# shellcheck shell=bash
# agent-lib.sh: sourced by the one-node agent scenarios (agent-guard.sh, agent-store.sh,
# agent-redis.sh, agent-stuck.sh), which begin with agent_init.
#
#   agent_init NAME SERVICES HACD HACTL
#                     HACD and HACTL (the binaries), SERVICES (the names of the services
#                     the scenario configures), HERE (the scenarios' folder), T (a new
#                     /tmp/hacd-NAME.XXXXXX), SOCK (hacd's control_socket), CONF (its
#                     config) and LOG (its stderr) in T, PID empty, MODE the checkpoint
#                     kind (incremental unless HACD_CHECKPOINT=full); agent_cleanup
#                     trapped on EXIT
#   fail MSG...       FAIL: MSG, the tail of hacd's log and hactl list of each service;
#                     exit 1 (hacd continued first: a test may have stopped it)
#   agent_cleanup     hacd (PID) stopped and reaped, every service killed, T removed
#   conf_head         a config's first lines: node alpha, state_dir and control_socket in T
#   conf_service NAME COMMAND INTERVAL KEEP [LINE...]
#                     a service block, restarted by restore, checkpoint = MODE, and LINEs
#   free_port         a free TCP port of 127.0.0.1
#   wait_until TRIES STEP CMD...
#                     CMD until it succeeds, at most TRIES times STEP seconds apart;
#                     returns 1 when it never did
#   start_hacd        hacd -f $CONF in the background, its pid in PID; returns once it
#                     answers hactl status
#   svc_pid SERVICE   the service's pid as hactl status shows it, 0 when none
#   inner_pid PID     its pid inside its own pid namespace (hacd launches each service
#                     in one), which every restore keeps, while the one status shows
#                     is new each time
#   ckpt SERVICE      a checkpoint now; its generation on stdout
#   gens SERVICE STATE   ids of SERVICE's generations in STATE, newest first
#   newer SERVICE STATE ID   SERVICE has a generation in STATE newer than ID
#   last_value, lines, values_after N
#                     counter.py's output (OUT): the last value, the number of lines,
#                     the values after line N
#   kill_restored SERVICE PID
#                     kill -9 of SERVICE's process PID, then until hacd has restored it
#                     and it has counted on (30 s at most): BEFORE the last value it
#                     printed before, FIRST the first one after the restore
#   start_time PID    its start time (/proc/PID/stat), empty when it is gone
#   tracer PID        its TracerPid (0: not traced), "gone" when it is gone

agent_init() {
	SERVICES=$2
	HACD=$3
	HACTL=$4
	HERE=$(cd "$(dirname "$0")" && pwd)
	T=$(mktemp -d "/tmp/hacd-$1.XXXXXX")
	SOCK=$T/hactl.sock
	CONF=$T/hacd.conf
	LOG=$T/hacd.log
	PID=
	MODE=${HACD_CHECKPOINT:-incremental}
	trap agent_cleanup EXIT
}

fail() {
	local s
	echo "FAIL: $*" >&2
	[ -n "$PID" ] && kill -CONT "$PID" 2>/dev/null || true
	echo "--- hacd log (tail):" >&2
	tail -40 "$LOG" >&2 || true
	for s in ${SERVICES:-}; do "$HACTL" -s "$SOCK" list "$s" >&2 || true; done
	exit 1
}

agent_cleanup() {
	local s p
	[ -n "$PID" ] && kill -CONT "$PID" 2>/dev/null || true
	[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	for s in ${SERVICES:-}; do
		p=$(cut -d" " -f1 "$T/state/services/$s/service.pid" 2>/dev/null || true)
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}

conf_head() {
	printf 'node = "alpha"\nstate_dir = "%s"\ncontrol_socket = "%s"\n' "$T/state" "$SOCK"
}

conf_service() {
	local l
	printf 'service "%s" {\n  command = "%s"\n  interval = "%s"\n  keep = %s\n' "$1" "$2" "$3" "$4"
	printf '  restart = "restore"\n  checkpoint = "%s"\n' "$MODE"
	shift 4
	for l in "$@"; do printf '  %s\n' "$l"; done
	echo "}"
}

free_port() {
	"${PY:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_until() {
	local n=$1 step=$2
	shift 2
	for _ in $(seq "$n"); do
		"$@" && return 0
		sleep "$step"
	done
	return 1
}

start_hacd() {
	"$HACD" -f "$CONF" 2>> "$LOG" &
	PID=$!
	for _ in $(seq 100); do
		[ -S "$SOCK" ] && "$HACTL" -s "$SOCK" status >/dev/null 2>&1 && return 0
		kill -0 "$PID" 2>/dev/null || fail "hacd exited at start"
		sleep 0.05
	done
	fail "no socket at $SOCK"
}

# No python here: its start takes a second at load 20, and this runs often.
svc_pid() { local p; p=$("$HACTL" -s "$SOCK" --json status "$1" 2>/dev/null |
	sed -n 's/.*"services":\[{[^]]*"pid":\([0-9]*\).*/\1/p') || true; echo "${p:-0}"; }

inner_pid() { awk '/^NSpid:/ {print $NF}' "/proc/$1/status" 2>/dev/null || true; }

ckpt() { local out; out=$("$HACTL" -s "$SOCK" checkpoint "$1") || fail "checkpoint $1: $out"
	echo "$out" | sed -n 's/.*checkpointed as generation \([0-9]*\).*/\1/p'; }

gens() { "$HACTL" -s "$SOCK" list "$1" --json | python3 -c 'import json, sys
for g in json.load(sys.stdin)["generations"]:
    if g["state"] == sys.argv[1]: print(g["id"])' "$2"; }

newer() { [ "$(gens "$1" "$2" | sed -n 1p)" -gt "$3" ] 2>/dev/null; }

start_time() { cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null || true; }

tracer() { awk '/^TracerPid:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo gone; }

last_value() { tail -n 1 "$OUT" | tr -dc 0-9; }
lines() { wc -l < "$OUT"; }
values_after() { tail -n +"$(($1 + 1))" "$OUT" | grep -x '[0-9]*' || true; }

restored_from() { local s; s=$(svc_pid "$1"); [ "$s" -gt 0 ] && [ "$s" != "$2" ] && [ -n "$(values_after "$3")" ]; }
kill_restored() {
	local mark
	kill -KILL "$2"
	# Read after the kill (a restore takes longer than a count): the last value printed.
	BEFORE=$(last_value)
	mark=$(lines)
	wait_until 600 0.05 restored_from "$1" "$2" "$mark" ||
		fail "not restored after kill -9: $("$HACTL" -s "$SOCK" status)"
	FIRST=$(values_after "$mark" | sed -n 1p)
}
