#!/bin/bash
# agent-redis.sh HACD HACTL: hacd guarding redis-server and a python service (kv.py),
# both at 1 s, with real data (issue 6's must-show).
#
#  - redis-server --save '' --appendonly no (nothing on disk: what comes back comes from
#    the checkpoint) gets 100,000 keys from redis-cli --pipe; kv.py gets a few keys.
#  - hactl checkpoint of each, with the data's fingerprint taken just before (redis:
#    DEBUG DIGEST of the whole dataset; kv: a dump of its dict). Nothing writes between
#    the fingerprint and the checkpoint, so that generation holds exactly that data.
#  - HACD_REDIS_SECONDS (default 15) of scheduled checkpoints: hactl list shows complete
#    generations with pause times for both.
#  - kill -9 of both services right after a checkpoint: hacd restores each from its
#    newest generation (in new namespaces, same pid inside), and the data is exactly
#    what was written before it.
#  - hactl rollback of each to its first generation gives exactly that generation's
#    data (the 100,000 keys, without the ones written after).
# Run as pid 1 of its own pid namespace (CMakeLists.txt), like agent-guard.sh.
set -euo pipefail
. "$(dirname "$0")/agent-lib.sh"

agent_init redis "redis kv" "$@"
SECS=${HACD_REDIS_SECONDS:-15}
REDIS=$(command -v redis-server || true)
[ -n "$REDIS" ] && command -v redis-cli > /dev/null || { echo "redis missing (tests/deps.sh)"; exit 1; }

RPORT=$(free_port)
KPORT=$(free_port)
{
	conf_head
	conf_service redis "$REDIS --port $RPORT --bind 127.0.0.1 --save '' --appendonly no --enable-debug-command local" 1s 60
	conf_service kv "$HERE/kv.py $KPORT" 1s 60
} > "$CONF"

rcli() { redis-cli -p "$RPORT" "$@"; }
# kv LINE: one request to kv.py, its answer on stdout.
kv() { "$HERE/kv.py" client "$KPORT" "$1"; }
answers() { [ "$(rcli PING 2>/dev/null)" = PONG ] && [ "$(kv "get x" 2>/dev/null)" = "(nil)" ]; }
wait_up() { wait_until 200 0.05 answers || fail "redis or kv not answering"; }

start_hacd
wait_up
T0=$SECONDS

python3 -c '
import sys
out = sys.stdout.buffer
for i in range(100000):
    k, v = b"key:%d" % i, b"v%d-%x" % (i, i * 2654435761 % 4294967296)
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' | rcli --pipe > "$T/pipe" || fail "redis-cli --pipe: $(cat "$T/pipe")"
[ "$(rcli DBSIZE)" = 100000 ] || fail "redis: $(rcli DBSIZE) keys loaded"
[ "$(kv "set a 1")" = ok ] || fail "kv: set"
D1=$(rcli DEBUG DIGEST)
S1=$(kv dump)
G1R=$(ckpt redis)
G1K=$(ckpt kv)
[ -n "$G1R" ] && [ -n "$G1K" ] || fail "no generation ids"
echo "ok - redis: 100000 keys, generation $G1R (digest $D1); kv: $S1, generation $G1K"

rcli SET marker:2 two > /dev/null
[ "$(kv "set b 2")" = ok ] || fail "kv: set"

# Scheduled checkpoints for the rest of the time.
while [ $((SECONDS - T0)) -lt "$SECS" ]; do sleep 0.5; done
for s in redis kv; do
	"$HACTL" -s "$SOCK" list "$s" --json | python3 -c '
import json, sys
g = [x for x in json.load(sys.stdin)["generations"] if x["state"] == "complete"]
p = sorted(x["pause_us"] for x in g)
if len(g) < 3 or not all(x > 0 for x in p) or not all(x["bytes_total"] > 0 for x in g):
    sys.exit("%s: %d complete generations, pauses %s" % (sys.argv[1], len(g), p))
print("ok - %s: %d complete generations in %s s, pause p50 %.1f ms, max %.1f ms" %
      (sys.argv[1], len(g), sys.argv[2], p[len(p) // 2] / 1e3, p[-1] / 1e3))
' "$s" "$SECS" || fail "list $s"
done
"$HACTL" -s "$SOCK" list redis | grep -q complete || fail "text list"

# kill -9 right after a checkpoint: nothing is written in between, so the newest
# generation (that one, or a scheduled one after it) holds exactly this data.
rcli SET marker:3 three > /dev/null
[ "$(kv "set c 3")" = ok ] || fail "kv: set"
D3=$(rcli DEBUG DIGEST)
S3=$(kv dump)
G3R=$(ckpt redis)
G3K=$(ckpt kv)
RP=$(svc_pid redis)
KP=$(svc_pid kv)
[ "$RP" -gt 0 ] && [ "$KP" -gt 0 ] || fail "no service pids ($RP, $KP)"
IRP=$(inner_pid "$RP")
IKP=$(inner_pid "$KP")
[ -n "$IRP" ] && [ -n "$IKP" ] || fail "no pids inside ($RP, $KP)"
kill -KILL "$RP" "$KP"
# Both back with their pids inside, and both restores logged as done.
restored() { [ "$(inner_pid "$(svc_pid redis)")" = "$IRP" ] && [ "$(inner_pid "$(svc_pid kv)")" = "$IKP" ] &&
	[ "$("$HACTL" -s "$SOCK" log redis | grep -c "restore of generation.*done")" -ge 1 ] &&
	[ "$("$HACTL" -s "$SOCK" log kv | grep -c "restore of generation.*done")" -ge 1 ]; }
wait_until 300 0.1 restored || fail "not restored with the same pids inside after kill -9"
wait_up
[ "$(rcli DEBUG DIGEST)" = "$D3" ] || fail "redis restored with other data: $(rcli DBSIZE) keys"
[ "$(rcli DBSIZE)" = 100002 ] && [ "$(rcli GET marker:3)" = three ] || fail "redis: marker:3"
[ "$(kv dump)" = "$S3" ] || fail "kv restored with $(kv dump), not $S3"
echo "ok - kill -9: both restored (same pids inside, $IRP and $IKP) from generations >= $G3R, $G3K, with exactly the data written before"

# Rollback to the first generations: exactly their data.
for s in redis kv; do
	g=$G1R; [ $s = kv ] && g=$G1K
	out=$("$HACTL" -s "$SOCK" rollback "$s" -g "$g") || fail "rollback $s: $out"
	echo "$out" | grep -q "rolled back to generation $g" || fail "rollback $s: $out"
done
wait_up
[ "$(rcli DEBUG DIGEST)" = "$D1" ] && [ "$(rcli DBSIZE)" = 100000 ] ||
	fail "redis after rollback to $G1R: $(rcli DBSIZE) keys, digest $(rcli DEBUG DIGEST), not $D1"
[ "$(rcli GET marker:2)" = "" ] || fail "redis after rollback: marker:2 is there"
[ "$(kv dump)" = "$S1" ] || fail "kv after rollback to $G1K: $(kv dump), not $S1"
rcli SET after:rollback yes > /dev/null && [ "$(rcli GET after:rollback)" = yes ] ||
	fail "redis does not take writes after the rollback"
echo "ok - rollback: redis to $G1R (100000 keys, digest $D1), kv to $G1K ($S1), exactly"

"$HACTL" catalog verify "$T/state/catalog.db" > /dev/null || fail "catalog"
kill -TERM "$PID"
wait "$PID" || fail "SIGTERM: exit $?"
PID=
echo "ok - catalog consistent, SIGTERM stops both"
