#!/bin/bash
# replica-hacd.sh HACD HACTL DRIVER VICTIM: replication run by hacd itself on both nodes.
#
# Nodes alpha and beta are network namespaces joined by a veth pair, each with its own
# hacd, config, state directory and certificate (made here with openssl). hacd does not
# take checkpoints by itself yet, so alpha's generations are real `hactl dump`s put in
# its catalog with the driver before hacd starts, and alpha's catalog says it was the
# active node (beta, with a fresh catalog, starts standby); then:
#  1. hacd on alpha ships its backlog to hacd on beta; beta's catalog holds the newest
#     consistent, alpha logs it consistent on beta and records the peer state.
#  2. A reload (SIGHUP) of alpha restarts replication without shipping anything again.
#  3. hacd on beta is killed -9 and restarted: the next generation added on alpha is
#     shipped once alpha's hacd is restarted (backlog at start); beta's retention
#     (keep = 2) prunes the oldest received one and GC removes its directory.
#  4. `hactl promote` on beta is refused while alpha's hacd is connected and reports the
#     service active; alpha is killed; `hactl failover` on beta restores the newest
#     consistent generation under beta's hacd; alpha's hacd comes back, hears beta
#     active and stays standby (its catalog said active); a checkpoint on beta reaches
#     alpha (B -> A); the victim checks its memory. hacd's own checkpoints are
#     incremental (page store) unless HACD_CHECKPOINT=full.
set -euo pipefail
. "$(dirname "$0")/replica-lib.sh"

# shellcheck disable=SC2034  # read by start_hacd (replica-lib.sh)
HACD=$(realpath "$1")
HACTL=$(realpath "$2")
DRV=$(realpath "$3")
VICTIM=$(realpath "$4")
rep_init reph
APID=
BPID=
VPID=

cleanup() {
	rep_kill "$APID" "$BPID" "$VPID"
	rep_nodes_del "$NSA" "$NSB"
	rm -rf "$T"
}
trap cleanup EXIT

rep_setup 10.78.0

# Both nodes listen and name each other: replication can run either way.
for n in alpha beta; do
	rep_conf "$n" 10.78.0 7789
	cat >> "$T/$n.conf" <<EOF
service "victim" {
  pidfile = "/run/hacd-reph-victim.pid"
  interval = "1h"
  restart = "none"
  keep = 2
  replication = "sync"
  checkpoint = "${HACD_CHECKPOINT:-incremental}"
}
EOF
done

# wait_beta_holds GEN: beta's newest consistent generation is alpha's GEN
wait_beta_holds() {
	for _ in $(seq 300); do
		[ "$("$DRV" -f "$T/beta.conf" newest victim 2>/dev/null | cut -d' ' -f3-)" = "alpha $1" ] &&
			return 0
		sleep 0.1
	done
	fail "beta does not hold alpha's generation $1: $("$DRV" -f "$T/beta.conf" newest victim || true)"
}

rep_victim VPID "$T/result" 16

# --- 1. backlog shipped by hacd ---------------------------------------------------------
g1=$(rep_dump --leave-running)
g2=$(rep_dump --leave-running)
"$DRV" -f "$T/alpha.conf" role victim active
start_hacd beta "$NSB"
start_hacd alpha "$NSA"
wait_beta_holds "$g2"
for _ in $(seq 50); do
	grep -q "generation $g2 consistent on peer beta" "$T/alpha.log" && break
	sleep 0.1
done
grep -q "generation $g2 consistent on peer beta" "$T/alpha.log" || fail "alpha did not log the ack"
[ "$("$DRV" -f "$T/beta.conf" count victim)" = "complete 2 pending 0" ] ||
	fail "beta: $("$DRV" -f "$T/beta.conf" count victim)"

# hactl status on both sides: the link, the newest consistent generation, the lag
"$HACTL" status -s "$T/alpha.sock" --json > "$T/alpha-status.json" || fail "hactl status alpha"
"$HACTL" status -s "$T/beta.sock" --json > "$T/beta-status.json" || fail "hactl status beta"
read -r blocal _ <<< "$("$DRV" -f "$T/beta.conf" newest victim)"
python3 - "$T" "$g2" "$blocal" <<'PY' || fail "hactl status: $(cat "$T"/*-status.json)"
import json, sys
t, g2, blocal = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = json.load(open(t + '/alpha-status.json'))
b = json.load(open(t + '/beta-status.json'))
pa, sa = a['peers'][0], a['services'][0]
assert pa['name'] == 'beta' and pa['connection'] == 'Connected', pa
assert pa['acked_generation'] == g2 and pa['queued'] == 0, pa
assert sa['newest_consistent_generation'] == g2 and sa['lag_generations'] == 0, sa
assert sa['role'] == 'active' and sa['disk'] == 'UpToDate', sa
assert sa['replication'] == 'sync' and sa['safe_generation'] == g2, sa
assert sa['sync_state'] == 'in sync', sa
assert sa['peers'] == [{'name': 'beta', 'connection': 'Connected', 'role': 'standby',
                        'peer_disk': 'UpToDate'}], sa
pb, sb = b['peers'][0], b['services'][0]
assert pb['name'] == 'alpha' and pb['standby_of'] is True, pb
assert sb['newest_consistent_generation'] == blocal and sb['lag_generations'] == 0, sb
assert sb['role'] == 'standby' and sb['state'] == 'stopped' and sb['disk'] == 'UpToDate', sb
assert sb['peers'][0]['role'] == 'active' and sb['peers'][0]['connection'] == 'Connected', sb
PY
"$HACTL" status -s "$T/alpha.sock" | grep -q "peer beta 10.78.0.2:7789 connection:Connected" ||
	fail "hactl status text: $("$HACTL" status -s "$T/alpha.sock")"

# --- 2. reload ----------------------------------------------------------------------------
kill -HUP "$APID"
for _ in $(seq 100); do
	[ "$(grep -c "replica: peer beta: connected" "$T/alpha.log")" -ge 2 ] && break
	sleep 0.1
done
[ "$(grep -c "replica: peer beta: connected" "$T/alpha.log")" -ge 2 ] ||
	fail "alpha did not reconnect after the reload"
[ "$("$DRV" -f "$T/beta.conf" count victim)" = "complete 2 pending 0" ] ||
	fail "beta after the reload: $("$DRV" -f "$T/beta.conf" count victim)"

# --- 3. beta killed; a new generation reaches it after both restart ------------------------
kill -KILL "$BPID"
wait "$BPID" 2>/dev/null || true
BPID=
# sync: without its standby, alpha says so and holds what is not acknowledged
for _ in $(seq 100); do
	"$HACTL" status -s "$T/alpha.sock" victim --json | grep -q '"sync_state":"1 peer(s) not connected' &&
		break
	sleep 0.1
done
"$HACTL" status -s "$T/alpha.sock" victim --json | grep -q '"sync_state":"1 peer(s) not connected' ||
	fail "alpha's status without beta: $("$HACTL" status -s "$T/alpha.sock" victim)"
g3=$(rep_dump)
wait "$VPID" 2>/dev/null || true
VDEAD=$VPID
VPID=
kill -TERM "$APID"
wait "$APID" || fail "hacd alpha did not stop cleanly"
APID=
start_hacd beta "$NSB"
start_hacd alpha "$NSA"
wait_beta_holds "$g3"
# keep = 2: beta's retention pruned the first generation, GC removed its directory
for _ in $(seq 50); do
	[ "$(find "$T/beta/services/victim" -maxdepth 1 -name 'gen-*' | wc -l)" = 2 ] && break
	sleep 0.1
done
[ "$("$DRV" -f "$T/beta.conf" count victim)" = "complete 2 pending 0" ] ||
	fail "beta's retention: $("$DRV" -f "$T/beta.conf" count victim)"
[ "$(find "$T/beta/services/victim" -maxdepth 1 -name 'gen-*' | wc -l)" = 2 ] ||
	fail "beta's GC: $(ls "$T/beta/services/victim")"

# --- 4. failover to beta, then generations flow back to alpha ------------------------------
ip netns exec "$NSB" "$HACTL" -s "$T/beta.sock" promote victim > "$T/promote.out" 2>&1 &&
	fail "promote succeeded while alpha is connected and active"
grep -q "peer alpha is connected and reports victim active.*cluster manager's job" \
	"$T/promote.out" || fail "promote refusal: $(cat "$T/promote.out")"
ip netns exec "$NSB" "$HACTL" -s "$T/beta.sock" checkpoint victim > "$T/ckpt.out" 2>&1 &&
	fail "a checkpoint of a standby service succeeded"
kill -KILL "$APID"
wait "$APID" 2>/dev/null || true
APID=
for _ in $(seq 100); do
	grep -q "replica: peer alpha .* disconnected" "$T/beta.log" && break
	sleep 0.05
done
rm -f "$T/result"
ip netns exec "$NSB" "$HACTL" -s "$T/beta.sock" failover victim > "$T/failover.out" 2>&1 ||
	fail "hactl failover on beta: $(cat "$T/failover.out")"
cat "$T/failover.out"
kill -0 "$VDEAD" || fail "victim not running on beta after the failover"
gb=$(ip netns exec "$NSB" "$HACTL" -s "$T/beta.sock" checkpoint victim | sed -n 's/.*checkpointed as generation \([0-9]*\).*/\1/p')
[ -n "$gb" ] || fail "no checkpoint on beta after the failover"
start_hacd alpha "$NSA"
for _ in $(seq 300); do
	[ "$("$DRV" -f "$T/alpha.conf" newest victim 2>/dev/null | cut -d' ' -f3-)" = "beta $gb" ] &&
		break
	sleep 0.1
done
grep -q "peer beta runs it now: this node comes back standby" "$T/alpha.log" ||
	fail "alpha did not come back standby"
"$HACTL" status -s "$T/alpha.sock" victim --json | grep -q '"role":"standby"' ||
	fail "alpha's status: $("$HACTL" status -s "$T/alpha.sock" victim)"
[ "$("$DRV" -f "$T/alpha.conf" newest victim | cut -d' ' -f3-)" = "beta $gb" ] ||
	fail "alpha did not receive beta's generation $gb: $("$DRV" -f "$T/alpha.conf" newest victim)"
kill -TERM "$VDEAD" || fail "restored victim is not running"
rep_victim_ok "$T/result" "after failover to beta"
rep_hacds_stop alpha beta
rep_catalogs_verify alpha beta
echo "PASS: generations $g1..$g3 replicated by hacd, failed over to beta, $gb back to alpha: $(cat "$T/result")"
