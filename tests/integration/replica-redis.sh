#!/bin/bash
# replica-redis.sh HACD HACTL DRIVER: the failover scenario of issue 7, with redis.
#
# Nodes alpha and beta are network namespaces joined by a veth pair (replica-lib.sh),
# each with its own hacd, config, state directory and certificate. Run it in a pid
# namespace of its own (ctest does: unshare --pid --fork --mount-proc), where this script
# is init and reaps what a kill -9 orphans, so that redis's pid is free on beta at once.
# Generations are incremental (page store) unless HACD_CHECKPOINT=full.
#  1. hacd on alpha launches redis-server (`hactl promote --force`: the first start of
#     a new cluster); 100,000 keys are loaded and a writer adds keys one by one, logging
#     when redis acknowledged each. alpha checkpoints every second and its generations
#     replicate to beta (standby); the lag is sampled from `hactl status` on both.
#  2. The link is cut (veth down) for 10 s while beta receives a generation: nothing
#     partial is consistent on beta, and it catches up once the link is back.
#  3. Everything on alpha is killed -9 (hacd, its worker, redis, the writer). `hactl
#     failover` on beta restores the newest generation beta holds: redis answers PING
#     on beta, holds all 100,000 keys and every key the writer saw acknowledged before
#     that generation was taken (its start time in alpha's catalog; the keys written
#     after it are lost with alpha, and counted).
#  4. alpha's hacd comes back: its catalog says it was active, beta reports the service
#     active, so alpha comes back standby, and beta's generations flow to alpha.
# Prints the figures: lag (generations, seconds), failover time to PING, link-cut
# catch-up time, replication bytes. Fails on wrong behaviour, never on timings.
set -euo pipefail
. "$(dirname "$0")/replica-lib.sh"

HACD=$(realpath "$1")
HACTL=$(realpath "$2")
DRV=$(realpath "$3")
PY=$(realpath "$(dirname "$0")/replica-redis.py")
REDIS=$(command -v redis-server || true)
KEYS=${REDIS_KEYS:-100000}
rep_init rr
PORT=6391
APID=
BPID=
WPID=

[ -n "$REDIS" ] || { echo "SKIP: redis-server not installed"; exit 77; }

trap 'rep_teardown "${REDIS_KEEP:-}"' EXIT

now_us() { echo $(( $(date +%s%N) / 1000 )); }
phase() { echo "[$SECONDS s] $*"; }

rep_setup 10.79.0

mkdir -m 700 "$T/redis"
cat > "$T/redis.conf" <<EOF
port $PORT
bind 127.0.0.1
protected-mode no
save ""
appendonly no
daemonize no
dir $T/redis
EOF
for n in alpha beta; do
	rep_conf "$n" 10.79.0 7790
	cat >> "$T/$n.conf" <<EOF
service "redis" {
  command = "$REDIS $T/redis.conf"
  interval = "1s"
  keep = 4
  stop_timeout = "2s"
  checkpoint = "${HACD_CHECKPOINT:-incremental}"
}
EOF
done

ctl() { # ctl NODE ARGS...
	local ns=$NSA
	[ "$1" = beta ] && ns=$NSB
	ip netns exec "$ns" "$HACTL" -s "$T/$1.sock" "${@:2}"
}
# newest generation of alpha's that NODE holds consistent ("" if none)
holds() {
	"$DRV" -f "$T/$1.conf" newest redis 2>/dev/null | awk -v o="$2" '$3 == o { print $4 }'
}
json() { # json NODE JQ-FILTER on hactl status redis --json (jq, not python: fast)
	"$HACTL" -s "$T/$1.sock" status redis --json | jq -r "$2"
}

# --- 1. alpha runs redis, generations flow to beta ------------------------------------------
start_hacd beta "$NSB"
start_hacd alpha "$NSA"
[ "$(json alpha '.services[0].role')" = standby ] || fail "alpha did not start standby"
ctl alpha promote redis > "$T/promote0.out" 2>&1 &&
	fail "promote without a generation succeeded"
ctl alpha promote redis --force > "$T/promote0.out" 2>&1 ||
	fail "promote --force on alpha: $(cat "$T/promote0.out")"
for _ in $(seq 100); do
	ip netns exec "$NSA" python3 "$PY" ping $PORT && break
	sleep 0.1
done
ip netns exec "$NSA" python3 "$PY" ping $PORT || fail "redis does not answer on alpha"
t0=$(now_us)
# redis-cli --pipe: python would take seconds to start and send them under load
awk -v n="$KEYS" 'BEGIN { for (i = 0; i < n; i++) { k = "k:" i; v = "v" i
	printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' |
	ip netns exec "$NSA" redis-cli -p $PORT --pipe > "$T/load.out" 2>&1 ||
	fail "loading $KEYS keys: $(cat "$T/load.out")"
grep -q "errors: 0, replies: $KEYS" "$T/load.out" || fail "loading: $(cat "$T/load.out")"
echo "loaded $KEYS keys in $(( ($(now_us) - t0) / 1000 )) ms"
ip netns exec "$NSA" python3 "$PY" write $PORT "$T/writer.acks" 2> "$T/writer.log" &
WPID=$!
[ "$(json alpha '.services[0] | "\(.role) \(.state)"')" = "active running" ] ||
	fail "alpha: $(json alpha '.services[0] | "\(.role) \(.state)"')"

phase "writer running"
# lag under the writer, from both sides, for ~6 s
: > "$T/lag"
for _ in $(seq 6); do
	echo "$(json alpha '"\(.services[0].lag_generations) \(.services[0].lag_seconds) \(.peers[0].bytes_sent)"') \
$(json beta '.services[0] | "\(.lag_generations) \(.lag_seconds) \(.disk)"')" >> "$T/lag"
	sleep 0.5
done
kill -0 "$WPID" || fail "the writer stopped: $(cat "$T/writer.log")"
g=$(holds beta alpha)
[ -n "$g" ] || fail "beta holds no generation of alpha's"
python3 - "$T/lag" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 6]
ag = [int(r[0]) for r in rows]; asec = [float(r[1]) for r in rows]
bg = [int(r[3]) for r in rows]; bsec = [float(r[4]) for r in rows]
sent = int(rows[-1][2]) - int(rows[0][2])
print("lag under the writer (%d samples, 0.5 s apart): active side max %d generation(s) "
      "/ %.2f s, mean %.2f s; standby side max %d / %.2f s; disk on beta: %s; "
      "%.1f MiB shipped in %.1f s" % (len(rows), max(ag), max(asec), sum(asec) / len(asec),
      max(bg), max(bsec), ",".join(sorted(set(r[5] for r in rows))),
      sent / 1048576, (len(rows) - 1) * 0.5))
PY

phase "link cut"
# --- 2. the link cut for 10 s while beta receives ---------------------------------------------
for _ in $(seq 200); do
	compgen -G "$T/beta/services/redis/.*.part" > /dev/null && break
	sleep 0.02
done
before=$(holds beta alpha)
ip -n "$NSA" link set va down
sleep 10
ip -n "$NSA" link set va up
tup=$(now_us)
[ "$(json alpha '.services[0].peers[0].connection')" = Connected ] &&
	echo "(alpha still calls beta Connected right after the cut: TCP has not noticed)"
for _ in $(seq 600); do
	after=$(holds beta alpha)
	[ -n "$after" ] && [ "$after" -gt "$before" ] && break
	sleep 0.1
done
{ [ -n "$after" ] && [ "$after" -gt "$before" ]; } ||
	fail "beta did not catch up after the link cut (holds $after, had $before)"
echo "link cut 10 s: beta held generation $before, caught up with $after" \
	"$(( ($(now_us) - tup) / 1000 )) ms after the link came back"
grep -c "connection lost while receiving" "$T/beta.log" > /dev/null ||
	echo "(the cut fell between two transfers)"

# keep = 4 on beta too: its store holds exactly the generations its catalog still calls
# complete (the receiver deletes what retention pruned), a handful, not all received.
if [ "${HACD_CHECKPOINT:-incremental}" = incremental ]; then
	beta_rows() {
		python3 - "$T/beta/catalog.db" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(" ".join(str(r[0]) for r in db.execute(
    "SELECT g.store_gen FROM generation g JOIN service s ON s.id = g.service WHERE "
    "s.name = 'redis' AND g.state = 'complete' AND g.store_gen IS NOT NULL ORDER BY 1")))
PYEOF
	}
	beta_dirs() {
		find "$T/beta/services/redis/store" -maxdepth 1 -name 'gen-*' -printf '%f\n' |
			sed 's/^gen-0*//' | sort -n | tr '\n' ' ' | sed 's/ $//'
	}
	for _ in $(seq 100); do
		rows=$(beta_rows)
		dirs=$(beta_dirs)
		[ "$rows" = "$dirs" ] && break
		sleep 0.1
	done
	[ "$rows" = "$dirs" ] || fail "beta's store ($dirs) is not its complete generations ($rows)"
	[ "$(echo "$dirs" | wc -w)" -le 6 ] || fail "beta's store keeps pruned generations: $dirs"
	echo "beta's store holds its complete generations only: $dirs"
fi

phase "kill alpha"
# --- 3. alpha dies; failover on beta --------------------------------------------------------
# caught up: beta at most one generation behind as alpha counts it (beta's own count is
# as last heard, stale after a cut), as before the cut; or 20 s
for _ in $(seq 200); do
	[ "$(json alpha '.services[0].lag_generations')" -le 1 ] && break
	sleep 0.1
done
for p in $(ip netns pids "$NSA"); do
	kill -KILL "$p" 2>/dev/null || true
done
tkill=$(now_us)
wait "$APID" 2>/dev/null || true
wait "$WPID" 2>/dev/null || true
APID=
WPID=
# beta may still be receiving: its newest consistent one is what it can restore
sleep 0.5
g=$(holds beta alpha)
cut=$(python3 "$PY" started "$T/alpha/catalog.db" "$g")
[ -n "$cut" ] || fail "alpha's catalog has no generation $g"
compgen -G "$T/beta/services/redis/.*.part" > /dev/null &&
	echo "(beta was receiving when alpha died: that partial generation is dropped)"
# The pinger starts first (it is a python process), then the command.
ip netns exec "$NSB" python3 "$PY" waitping $PORT 30 > "$T/ping.out" &
PINGER=$!
sleep 0.3
t0=$(now_us)
ctl beta failover redis > "$T/failover.out" 2> "$T/failover.err" ||
	fail "hactl failover on beta: $(cat "$T/failover.err")"
t1=$(now_us)
wait "$PINGER" || fail "redis does not answer on beta"
t2=$(cat "$T/ping.out")
[ "$t2" -gt "$t0" ] || t2=$t0
cat "$T/failover.out"
echo "failover: hactl failover took $(( (t1 - t0) / 1000 )) ms; redis answered PING" \
	"$(( (t2 - t0) / 1000 )) ms after the command (5 ms polling), $(( (t2 - tkill) / 1000 ))" \
	"ms after alpha was killed; generation $g of alpha's, begun $(( (tkill - cut) / 1000 ))" \
	"ms before the kill"
ip netns exec "$NSB" python3 "$PY" check $PORT "$KEYS" "$T/writer.acks" "$cut" ||
	fail "keys acknowledged before generation $g are missing on beta"
[ "$(json beta '.services[0] | "\(.role) \(.state)"')" = "active running" ] ||
	fail "beta after the failover: $(json beta '.services[0] | "\(.role) \(.state)"')"

phase "alpha returns"
# --- 4. alpha returns as standby, generations flow beta -> alpha ------------------------------
start_hacd alpha "$NSA"
for _ in $(seq 300); do
	back=$(holds alpha beta)
	[ -n "$back" ] && break
	sleep 0.1
done
[ -n "$back" ] || fail "alpha received nothing from beta"
grep -q "peer beta runs it now: this node comes back standby" "$T/alpha.log" ||
	fail "alpha did not come back standby"
[ "$(json alpha '.services[0] | "\(.role) \(.state)"')" = "standby stopped" ] ||
	fail "alpha: $(json alpha '.services[0] | "\(.role) \(.state)"')"
ip netns exec "$NSA" python3 "$PY" ping $PORT && fail "redis runs on alpha too"
echo "alpha back as standby: holds beta's generation $back"
ctl beta status redis
rep_hacds_stop alpha beta
rep_catalogs_verify alpha beta
echo "PASS: redis failed over from alpha to beta with every acknowledged key up to" \
	"generation $g; alpha came back standby"
