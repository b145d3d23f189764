#!/bin/bash
# hacd's checkpoints, full against incremental, on two services guarded at 1 s: redis
# with 100,000 keys and a writer setting a few keys a second, and heap.py (64 MiB of
# random bytes, 8 pages rewritten a second). Prints per service and mode the pause
# p50/p99/max, the bytes each generation stored (p50, and the first one), what each
# refers to, and hacd's missed ticks. Nothing asserted. Run as root from the tree:
#   bash tests/bench/agent-incremental.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${1:-30}
BUILD=${2:-$HERE/../../build}
HACD=$BUILD/agent/hacd
HACTL=$BUILD/agent/hactl
PY=$(command -v /usr/bin/python3 || command -v python3)
REDIS=$(command -v redis-server)
T=$(mktemp -d /tmp/hacd-bench.XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	[ -n "${WP:-}" ] && kill "$WP" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() {
	local mode=$1 rport hport sock=$T/$1.sock
	rport=$(port)
	hport=$(port)
	cat > "$T/$mode.conf" <<CONF
node = "alpha"
state_dir = "$T/$mode"
control_socket = "$sock"
log_level = "notice"
service "redis" {
  command = "$REDIS --port $rport --bind 127.0.0.1 --save '' --appendonly no"
  interval = "1s"
  keep = 1000
  checkpoint = "$mode"
}
service "heap" {
  command = "$HERE/../integration/heap.py $hport 64"
  interval = "1s"
  keep = 1000
  checkpoint = "$mode"
}
CONF
	"$HACD" -f "$T/$mode.conf" 2> "$T/$mode.log" &
	PID=$!
	for _ in $(seq 200); do
		[ "$(redis-cli -p "$rport" PING 2>/dev/null)" = PONG ] && break
		sleep 0.1
	done
	"$PY" -c '
import sys
out = sys.stdout.buffer
for i in range(100000):
    k, v = b"key:%d" % i, b"v%d-%x" % (i, i * 2654435761 % 4294967296)
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' | redis-cli -p "$rport" --pipe > /dev/null
	# The writers: a few redis keys and 8 heap pages a second.
	"$PY" -c '
import socket, sys, time
rp, hp, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
end, i = time.time() + secs, 0
while time.time() < end:
    try:
        r = socket.create_connection(("127.0.0.1", rp), timeout=5)
        r.sendall(b"SET w:%d %d\r\n" % (i % 1000, i)); r.recv(100); r.close()
        h = socket.create_connection(("127.0.0.1", hp), timeout=5)
        h.sendall(b"touch 8\n"); h.recv(100); h.close()
    except OSError:
        pass
    i += 1
    time.sleep(0.2)
' "$rport" "$hport" "$SECS" &
	WP=$!
	wait "$WP" || true
	WP=
	for s in redis heap; do
		"$HACTL" -s "$sock" list "$s" --json > "$T/$mode-$s.json"
	done
	"$HACTL" -s "$sock" --json status > "$T/$mode-status.json"
	kill -TERM "$PID"
	wait "$PID" || true
	PID=
	for s in redis heap; do
		"$PY" - "$T/$mode-$s.json" "$T/$mode-status.json" "$mode" "$s" <<'PY'
import json, sys
g = sorted((x for x in json.load(open(sys.argv[1]))["generations"] if "committed_us" in x),
           key=lambda x: x["id"])
st = [x for x in json.load(open(sys.argv[2]))["services"] if x["name"] == sys.argv[4]][0]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0
# The first generation (taken while the data was still loading, and full in both
# modes) apart: the steady state is what follows.
p = [x["pause_us"] / 1e3 for x in g[1:]]
later = [x["bytes_new"] / 2**20 for x in g[1:]]
print("%-11s %-5s %3d gens  pause p50 %6.1f  p99 %6.1f  max %6.1f ms (first %6.1f)  "
      "stored/gen p50 %8.3f MiB (first %6.1f)  refers to %6.1f MiB  missed %d" %
      (sys.argv[3], sys.argv[4], len(g), pct(p, .5), pct(p, .99), max(p or [0]),
       g[0]["pause_us"] / 1e3 if g else 0, pct(later, .5),
       g[0]["bytes_new"] / 2**20 if g else 0,
       g[-1]["bytes_total"] / 2**20 if g else 0, st.get("missed", 0)))
PY
	done
}

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), ${SECS}s per mode"
run full
run incremental
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
