#!/bin/bash
# agent-load.sh HACD HACTL COUNTER: one hacd guarding 20 services at 1 s intervals.
#
# Runs for HACD_LOAD_SECONDS (default 30), then checks that every service got
# generations and was never left without a checkpoint for more than twice its interval
# plus a second of slack per missed tick... it does not: timings are printed, never
# asserted (the machine is shared). What is asserted is what a correct scheduler always
# gives: every service has complete generations, at least a third of its ticks
# completed, no two checkpoints of one service overlapped (one worker request at a
# time), no failed generation, and the catalog is consistent. Printed: pause p50/p99,
# scheduling lateness p50/p99, the longest gap between two generations of a service,
# status latency, and hacd's RSS at start and end.
set -euo pipefail

HACD=$1
HACTL=$2
COUNTER=$3
N=${HACD_LOAD_SERVICES:-20}
SECS=${HACD_LOAD_SECONDS:-30}
# checkpoint = incremental (page store) unless HACD_CHECKPOINT=full
MODE=${HACD_CHECKPOINT:-incremental}
T=$(mktemp -d /tmp/hacd-load.XXXXXX)
SOCK=$T/hactl.sock
CONF=$T/hacd.conf
LOG=$T/hacd.log
PID=

fail() {
	echo "FAIL: $*" >&2
	tail -30 "$LOG" >&2 || true
	exit 1
}
cleanup() {
	if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	rm -rf "$T"
}
trap cleanup EXIT

{
	echo "node = \"alpha\""
	echo "state_dir = \"$T/state\""
	echo "control_socket = \"$SOCK\""
	echo "log_level = \"notice\""
	for i in $(seq -w 1 "$N"); do
		printf 'service "c%s" {\n  command = "%s"\n  interval = "1s"\n  keep = 5\n  checkpoint = "%s"\n}\n' \
			"$i" "$COUNTER" "$MODE"
	done
} > "$CONF"

"$HACD" -f "$CONF" 2> "$LOG" &
PID=$!
for _ in $(seq 100); do
	"$HACTL" -s "$SOCK" status > /dev/null 2>&1 && break
	kill -0 "$PID" 2>/dev/null || fail "hacd exited at start"
	sleep 0.05
done
sleep 2
rss0=$(awk '/^VmRSS/ {print $2}' /proc/$PID/status)
START=$(date +%s%N)
# The status latency as hacd gives it: a status request on the socket every 100 ms,
# timed from connect to reply, by one long-lived process (timing a fork and exec of
# hactl at load 20 measured the scheduler, not hacd). hactl status itself is checked
# every 5 s, and its RSS sampled for the trend.
python3 "$(dirname "$0")/status-probe.py" "$T/stop" "$T/status_ms" alpha="$SOCK" &
PROBE=$!
: > "$T/rss"
end=$((SECONDS + SECS))
while [ $SECONDS -lt $end ]; do
	"$HACTL" -s "$SOCK" status > /dev/null || fail "status failed under load"
	awk '/^VmRSS/ {print $2}' /proc/$PID/status >> "$T/rss"
	sleep 5
done
touch "$T/stop"
wait "$PROBE" || fail "status probe"
rss1=$(awk '/^VmRSS/ {print $2}' /proc/$PID/status)
"$HACTL" -s "$SOCK" --json status > "$T/status.json"
for i in $(seq -w 1 "$N"); do
	"$HACTL" -s "$SOCK" --json list "c$i" > "$T/list-c$i.json"
done
"$HACTL" catalog verify "$T/state/catalog.db" > /dev/null || fail "catalog"

python3 - "$T" "$N" "$SECS" "$START" "$rss0" "$rss1" <<'PY'
import glob, json, os, sys
t, n, secs, start, rss0, rss1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]) // 1000, int(sys.argv[5]), int(sys.argv[6])

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, len(v) * p // 100)] if v else 0

st = json.load(open(t + "/status.json"))
pauses, gaps, bad = [], [], []
for s in st["services"]:
    gens = json.load(open("%s/list-%s.json" % (t, s["name"])))["generations"]
    failed = [g["id"] for g in gens if g["state"] == "failed"]
    if failed:
        bad.append("%s: failed generations %s" % (s["name"], failed))
    done = sorted(g["committed_us"] for g in gens if "committed_us" in g)
    pauses += [g["pause_us"] for g in gens if "pause_us" in g]
    mine = [c for c in done if c >= start]
    gaps += [b - a for a, b in zip(mine, mine[1:])]
    # Ticks during the measured window: at least a third must have completed.
    if s.get("checkpoints", 0) < secs // 3 or not done:
        bad.append("%s: %s checkpoints in %d s" % (s["name"], s.get("checkpoints"), secs))
    if s.get("state") != "running":
        bad.append("%s: state %s" % (s["name"], s.get("state")))
# hacd spreads the first ticks of services started together over their interval
# (svc_first_tick): with 20 at 1 s, the widest-gap placement leaves at least 31 ms
# between any two. Their phases are in the status, one snapshot for all.
phases = sorted(s["next_checkpoint_ms"] % 1000 for s in st["services"]
                if "next_checkpoint_ms" in s)
spread = min([b - a for a, b in zip(phases, phases[1:])] +
             [phases[0] + 1000 - phases[-1]] if len(phases) > 1 else [1000])
if len(phases) != n:
    bad.append("%d of %d services have a next checkpoint" % (len(phases), n))
elif spread < 1000 // (4 * n):
    bad.append("ticks not spread: two services are due %d ms apart (phases %s)" %
               (spread, phases))
late50 = sorted(s.get("late_p50_us", 0) for s in st["services"])
late99 = max(s.get("late_p99_us", 0) for s in st["services"])
missed = sum(s.get("missed", 0) for s in st["services"])
total = sum(s.get("checkpoints", 0) for s in st["services"])
sms = [int(x) for x in open(t + "/status_ms.alpha").read().split()]
print("load: %d services at 1 s for %d s: %d checkpoints, %d ticks missed (previous "
      "one still running)" % (n, secs, total, missed))
print("load: pause p50 %.1f ms, p99 %.1f ms" % (pct(pauses, 50) / 1e3, pct(pauses, 99) / 1e3))
print("load: scheduling lateness p50 %.1f ms (median over services), p99 %.1f ms (worst "
      "service)" % (pct(late50, 50) / 1e3, late99 / 1e3))
print("load: ticks spread over the interval: the closest two services are %d ms apart" %
      spread)
print("load: gap between generations p50 %.0f ms, max %.0f ms" %
      (pct(gaps, 50) / 1e3, max(gaps or [0]) / 1e3))
print("load: status on the socket: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms, "
      "%d over 50 ms" % (len(sms), pct(sms, 50) / 1e3, pct(sms, 99) / 1e3, max(sms) / 1e3,
                         sum(1 for x in sms if x > 50000)))
# hacd logs each loop callback that held its loop 20 ms or more (hacd-log.c): the
# status requests that waited are explained by these.
held, lines = {}, []
for line in open(t + "/hacd.log", errors="replace"):
    if "loop held " in line:
        ms = float(line.split("loop held ")[1].split()[0])
        what = line.split(" by ", 1)[1].split(":")[0].strip()
        held.setdefault(what, []).append(ms)
        lines.append((ms, line.strip()))
print("load: loop held 20 ms or more: %s" % (", ".join(
    "%s %d times (max %.1f ms)" % (k, len(v), max(v)) for k, v in sorted(held.items()))
    or "never"))
for ms, line in sorted(lines, reverse=True)[:5]:
    print("load:   %s" % line)
rss = [int(x) for x in open(t + "/rss").read().split()]
q = max(1, len(rss) // 4)
print("load: hacd RSS %d KiB -> %d KiB (min %d, max %d over %d samples; max of each "
      "quarter of the run: %s)" % (rss0, rss1, min(rss or [0]), max(rss or [0]), len(rss),
                                  [max(rss[i:i + q]) for i in range(0, len(rss), q)]))
# The bars of the 10-minute run (HACD_LOAD_STRICT=1): not asserted by default, as CI
# shares its cores with everything else and timings are not what a test may assert.
if os.environ.get("HACD_LOAD_STRICT") == "1":
    if missed:
        bad.append("%d ticks missed" % missed)
    if pct(sms, 99) > 50000:
        bad.append("status p99 %.1f ms" % (pct(sms, 99) / 1e3))
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
PY
echo "ok - $N services guarded at 1 s for $SECS s"
