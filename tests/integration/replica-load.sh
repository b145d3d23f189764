#!/bin/bash
# replica-load.sh HACD HACTL DRIVER COUNTER: the standby's side of the load bar.
#
# Nodes alpha and beta are network namespaces joined by a veth pair (replica-lib.sh),
# each with its own hacd. Alpha guards HACD_LOAD_SERVICES (default 20) counters at 1 s
# (incremental unless HACD_CHECKPOINT=full) and replicates every generation to beta,
# whose hacd receives them in its event loop: each commit there fsyncs packs,
# directories and the catalog's WAL before its Ack, in the loop that also answers
# `hactl status`. Runs HACD_LOAD_SECONDS (default 20; 600 for the 10-minute bar).
#
# Printed, for each node: status latency on its control socket (one long-lived
# process, SOCK_SEQPACKET, as agent-load.sh), p50/p99/max and the count over 50 ms;
# the loop callbacks that held its loop 20 ms or more, by kind; its RSS. And the
# replication lag as alpha's `hactl --json status` reports it every 2 s (complete
# generations newer than the newest one beta acknowledged, and how much older that
# one is). HACD_LOOP_HELD_MS=1 makes both hacds log every callback of 1 ms or more,
# for the distribution of their times. Timings are printed, never asserted. Asserted is what a correct system
# always gives: every service runs on alpha and is standby on beta, alpha committed
# generations of each and beta acknowledged newer ones of each during the run, no
# generation failed, both catalogs verify, and beta's newest generation of each
# service verifies (`hactl image verify`, every pack blob it uses).
set -euo pipefail
. "$(dirname "$0")/replica-lib.sh"

# shellcheck disable=SC2034  # read by start_hacd (replica-lib.sh)
HACD=$(realpath "$1")
HACTL=$(realpath "$2")
DRV=$(realpath "$3")
COUNTER=$(realpath "$4")
N=${HACD_LOAD_SERVICES:-20}
SECS=${HACD_LOAD_SECONDS:-20}
rep_init repload
APID=
BPID=
PROBE=

cleanup() {
	rep_kill "$PROBE"
	rep_teardown "${HACD_LOAD_KEEP:-}"
}
trap cleanup EXIT

rep_setup 10.82.0
for n in alpha beta; do
	rep_conf "$n" 10.82.0 7792
	{
		echo 'log_level = "notice"'
		for i in $(seq -w 1 "$N"); do
			printf 'service "c%s" {\n  command = "%s"\n  interval = "1s"\n  keep = 5\n  checkpoint = "%s"\n}\n' \
				"$i" "$COUNTER" "${HACD_CHECKPOINT:-incremental}"
		done
	} >> "$T/$n.conf"
done
# Alpha was the active node of every service: it runs them once beta reports standby.
for i in $(seq -w 1 "$N"); do
	"$DRV" -f "$T/alpha.conf" role "c$i" active > /dev/null || fail "role c$i"
done

st() { "$HACTL" -s "$T/$1.sock" --json status; }
start_hacd beta "$NSB"
start_hacd alpha "$NSA"
# Every service running on alpha and one generation of each consistent on beta.
ready=
deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ]; do
	if st alpha > "$T/a0.json" 2>/dev/null && st beta > "$T/b0.json" 2>/dev/null &&
		python3 - "$T/a0.json" "$T/b0.json" "$N" <<'PY'
import json, sys
a, b, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
ok = [s for s in a["services"] if s.get("role") == "active" and s.get("state") == "running"
      and s.get("newest_consistent_generation", 0) > 0]
held = [s for s in b["services"] if s.get("newest_consistent_generation", 0) > 0]
sys.exit(0 if len(ok) == n and len(held) == n else 1)
PY
	then
		ready=1
		break
	fi
	kill -0 "$APID" && kill -0 "$BPID" || fail "a hacd exited"
	sleep 0.2
done
[ -n "$ready" ] || fail "not every service runs on alpha with a generation on beta: $(cat "$T/a0.json")"
echo "[$SECONDS s] $N services run on alpha, each with a generation consistent on beta"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
arss0=$(rss "$APID")
brss0=$(rss "$BPID")
# Status latency on both control sockets (status-probe.py, as agent-load.sh): one process,
# one request on each socket every 100 ms, timed from connect to reply.
python3 "$(dirname "$0")/status-probe.py" "$T/stop" "$T/status_ms" \
	alpha="$T/alpha.sock" beta="$T/beta.sock" &
PROBE=$!
: > "$T/lag"
: > "$T/rss"
st alpha > "$T/a1.json" || fail "hactl status alpha"
end=$((SECONDS + SECS))
while [ $SECONDS -lt $end ]; do
	st alpha >> "$T/lag" || fail "hactl status alpha under load"
	st beta > /dev/null || fail "hactl status beta under load"
	echo "$(rss "$APID") $(rss "$BPID")" >> "$T/rss"
	sleep 2
done
touch "$T/stop"
wait "$PROBE" || fail "status probe"
PROBE=
arss1=$(rss "$APID")
brss1=$(rss "$BPID")
st alpha > "$T/a2.json" || fail "hactl status alpha"
st beta > "$T/b2.json" || fail "hactl status beta"
for i in $(seq -w 1 "$N"); do
	"$HACTL" -s "$T/alpha.sock" --json list "c$i" > "$T/list-c$i.json" || fail "list c$i"
done
rep_hacds_stop alpha beta
rep_catalogs_verify alpha beta
# Beta's newest generation of each service, whole: page map, packs, every blob it uses.
for i in $(seq -w 1 "$N"); do
	read -r _ dir _ < <("$DRV" -f "$T/beta.conf" newest "c$i") || fail "beta holds no c$i"
	case $dir in
	*/store/gen-*) "$HACTL" image verify -D "${dir%/gen-*}" \
		--generation "$((10#${dir##*/gen-}))" > "$T/verify-c$i.out" 2>&1 ;;
	*) "$HACTL" image verify "$dir" > "$T/verify-c$i.out" 2>&1 ;;
	esac || fail "beta's newest generation of c$i ($dir): $(tail -3 "$T/verify-c$i.out")"
done

python3 - "$T" "$N" "$SECS" "$arss0" "$arss1" "$brss0" "$brss1" <<'PY'
import json, os, sys
t, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
arss0, arss1, brss0, brss1 = map(int, sys.argv[4:8])

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, len(v) * p // 100)] if v else 0

bad = []
a1 = {s["name"]: s for s in json.load(open(t + "/a1.json"))["services"]}
a2 = {s["name"]: s for s in json.load(open(t + "/a2.json"))["services"]}
b2 = {s["name"]: s for s in json.load(open(t + "/b2.json"))["services"]}
if len(a2) != n or len(b2) != n:
    bad.append("%d services on alpha, %d on beta, %d configured" % (len(a2), len(b2), n))
for name, s in sorted(a2.items()):
    if s.get("role") != "active" or s.get("state") != "running":
        bad.append("%s on alpha: %s %s" % (name, s.get("role"), s.get("state")))
    if s.get("last_generation", 0) <= a1[name].get("last_generation", 0):
        bad.append("%s: no generation committed on alpha during the run" % name)
    # Acks arrived: the newest generation beta acknowledged moved on.
    if s.get("newest_consistent_generation", 0) <= a1[name].get("newest_consistent_generation", 0):
        bad.append("%s: beta acknowledged nothing newer than generation %s during the run" %
                   (name, a1[name].get("newest_consistent_generation")))
    gens = json.load(open("%s/list-%s.json" % (t, name)))["generations"]
    failed = [g["id"] for g in gens if g["state"] == "failed"]
    if failed:
        bad.append("%s: failed generations %s" % (name, failed))
    b = b2.get(name, {})
    if b.get("role") != "standby" or b.get("newest_consistent_generation", 0) <= 0:
        bad.append("%s on beta: role %s, newest %s" % (name, b.get("role"),
                                                      b.get("newest_consistent_generation")))
total = sum(s.get("checkpoints", 0) for s in a2.values())
print("replica-load: %d services at 1 s for %d s: %d checkpoints on alpha, %d ticks missed"
      % (n, secs, total, sum(s.get("missed", 0) for s in a2.values())))
lg, ls = [], []
for line in open(t + "/lag"):
    for s in json.loads(line)["services"]:
        lg.append(s.get("lag_generations", 0))
        ls.append(s.get("lag_seconds", 0.0))
print("replica-load: lag (complete generations on alpha newer than the newest beta "
      "acknowledged; %d samples of %d services): p50 %d, p99 %d, max %d; in seconds: "
      "p50 %.2f, p99 %.2f, max %.2f" % (len(lg) // max(n, 1), n, pct(lg, 50), pct(lg, 99),
                                        max(lg or [0]), pct(ls, 50), pct(ls, 99),
                                        max(ls or [0])))
for node, r0, r1 in (("alpha", arss0, arss1), ("beta", brss0, brss1)):
    sms = [int(x) for x in open("%s/status_ms.%s" % (t, node)).read().split()]
    print("replica-load: %s: status on the socket: %d requests, p50 %.1f ms, p99 %.1f ms, "
          "max %.1f ms, %d over 50 ms" % (node, len(sms), pct(sms, 50) / 1e3,
                                          pct(sms, 99) / 1e3, max(sms or [0]) / 1e3,
                                          sum(1 for x in sms if x > 50000)))
    held = {}
    for line in open("%s/%s.log" % (t, node), errors="replace"):
        if "loop held " in line:
            ms = float(line.split("loop held ")[1].split()[0])
            what = line.split(" by ", 1)[1].split(":")[0].strip()
            held.setdefault(what, []).append(ms)
    print("replica-load: %s: loop held %s ms or more: %s" % (
        node, os.environ.get("HACD_LOOP_HELD_MS", "20"), ", ".join(
            "%s %d times (p50 %.1f, p99 %.1f, max %.1f ms)" % (
                k, len(v), pct(v, 50), pct(v, 99), max(v)) for k, v in sorted(held.items()))
        or "never"))
    print("replica-load: %s: hacd RSS %d KiB -> %d KiB" % (node, r0, r1))
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
PY
echo "ok - $N services at 1 s replicated from alpha to beta for $SECS s"
