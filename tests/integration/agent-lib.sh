# shellcheck shell=bash
# agent-lib.sh: sourced by the one-node agent scenarios (agent-guard.sh, agent-store.sh,
# agent-redis.sh, agent-stuck.sh). They set HACD, HACTL, CONF (hacd's config), SOCK (its
# control_socket), LOG (hacd's stderr) and a fail().
#
#   start_hacd        hacd -f $CONF in the background, its pid in PID; returns once it
#                     answers hactl status
#   svc_pid SERVICE   the service's pid as hactl status shows it, 0 when none
#   inner_pid PID     its pid inside its own pid namespace (hacd launches each service
#                     in one), which every restore keeps, while the one status shows
#                     is new each time
#   ckpt SERVICE      a checkpoint now; its generation on stdout

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
