#!/bin/bash
# agent-store.sh HACD HACTL: hacd's incremental checkpoints into a service's page store
# (checkpoint = "incremental"), with a 64 MiB heap of random bytes (heap.py) of which
# the test rewrites a few pages between checkpoints.
#
#  1. Generations after the first store far less than the first (hactl list --json:
#     bytes_new), each still naming the whole heap (bytes_total).
#  2. kill -9 of the service: hacd restores the newest generation, exactly (SHA-256 of
#     the heap); rollback to an older one gives exactly that one's heap. The restored
#     service stays tracked: the generations after a restore store only what changed,
#     and the first one after the kill -9 rolls back exactly too.
#  3. keep = 3 (reload), ~10 generations: the store holds exactly the catalog's complete
#     generations (hactl image verify of each), and what is on disk (du) stays about one
#     heap: the data of pruned generations is freed.
#  4. hacd stopped while its worker writes a generation, then killed: the store has a
#     generation the catalog never committed. The next hacd deletes it before its first
#     checkpoint; the catalog verifies, and every store generation verifies.
# Run as pid 1 of its own pid namespace (CMakeLists.txt), like agent-guard.sh.
set -euo pipefail
. "$(dirname "$0")/agent-lib.sh"

agent_init store heap "$@"
MODE=incremental	# whatever HACD_CHECKPOINT says: this is the page store's test
MIB=${HACD_STORE_MIB:-64}
# The system's python: a version manager's shim can take seconds to start under load.
PY=$(command -v /usr/bin/python3 || command -v python3)
STORE=$T/state/services/heap/store

PORT=$(free_port)
conf() { { conf_head; conf_service heap "$HERE/heap.py $PORT $MIB" "$1" "$2"; } > "$CONF"; }

# req LINE: one request to heap.py, its answer on stdout (empty when it does not answer).
req() { "$PY" "$HERE/linesrv.py" "$PORT" "$1" 20 || true; }
answers() { [ -n "$(req sum)" ]; }
wait_up() { wait_until 600 0.1 answers || fail "heap.py not answering"; }
list_json() { "$HACTL" -s "$SOCK" list heap --json; }
# Complete generations: "ID STORE_GEN" lines.
complete() { list_json | "$PY" -c 'import json, sys
for g in json.load(sys.stdin)["generations"]:
    if g["state"] == "complete": print(g["id"], g.get("store_gen", 0))'; }
# The same, from the catalog itself (hacd may be stopped).
cat_complete() { "$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for i, g in db.execute("SELECT g.id, IFNULL(g.store_gen, 0) FROM generation g JOIN service s "
                       "ON g.service = s.id WHERE s.name = ? AND g.state = ? ORDER BY g.id DESC",
                       ("heap", "complete")):
    print(i, g)' "$T/state/catalog.db"; }
store_gens() { ls "$STORE" | sed -n 's/^gen-0*\([0-9][0-9]*\)$/\1/p' | sort -n; }
gen_dir() { echo "$STORE/gen-$(printf %08d "$1")"; }
# in_flight: the newest pack's number when its generation is not there yet (it is being
# written now), else nothing.
in_flight() { local n
	n=$(ls "$STORE/packs" | sed -n 's/^pack-0*\([0-9][0-9]*\)\.pack$/\1/p' | sort -n | tail -1)
	if [ -n "$n" ] && [ ! -d "$(gen_dir "$n")" ]; then echo "$n"; fi; }
# newest: the id of the newest complete generation.
newest() { complete | awk '{print $1}' | sort -n | tail -1; }
at_least() { [ "$(complete | wc -l)" -ge "$1" ]; }
wait_complete() { wait_until 600 0.1 at_least "$1" || fail "fewer than $1 complete generations"; }
# The store and the catalog agree: the store holds exactly the complete generations'
# store generations, plus at most the one in flight (newer than all of them, its row
# pending: the worker commits into the store before hacd commits the row). Every one
# verifies. Run with hacd stopped (SIGSTOP): nothing moves meanwhile but the worker.
pending() { "$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(db.execute("SELECT COUNT(*) FROM generation g JOIN service s ON g.service = s.id "
                 "WHERE s.name = ? AND g.state = ?", ("heap", "pending")).fetchone()[0])' \
	"$T/state/catalog.db"; }
agree() {
	local want have extra
	want=$(cat_complete | awk '{print $2}' | sort -n | tr '\n' ' ')
	have=$(store_gens | tr '\n' ' ')
	[ "$want" = "$have" ] && return 0
	extra=${have#"$want"}
	extra=${extra% }
	case $extra in ''|*' '*) return 1;; esac
	[ "$(pending)" -ge 1 ] && [ "$extra" -gt "$(echo "$want" | awk '{print $NF}')" ]
}
# settled_check WHAT [noverify]: noverify skips the (slow, 64 MiB each) image verify.
settled_check() {
	local g
	for _ in $(seq 50); do
		kill -STOP "$PID"
		agree && break
		kill -CONT "$PID"
		sleep 0.2
	done
	agree || fail "$1: store generations [$(store_gens | tr '\n' ' ')], catalog's complete ones [$(cat_complete | awk '{print $2}' | sort -n | tr '\n' ' ')]"
	for g in $(store_gens); do
		[ "${2:-}" = noverify ] && break
		"$HACTL" image verify -D "$STORE" --generation "$g" > "$T/verify" 2>&1 ||
			fail "$1: store generation $g: $(cat "$T/verify")"
	done
	"$HACTL" catalog verify "$T/state/catalog.db" > /dev/null || fail "$1: catalog verify"
	kill -CONT "$PID"
}

# ---- 1. incremental generations ------------------------------------------------------
conf 500ms 20
start_hacd
wait_up
# The heap is whole now (a scheduled generation may have caught it being filled).
G0=$(ckpt heap)
for i in 1 2 3 4 5 6; do req "touch 8" > /dev/null; sleep 0.3; done
N=$(complete | wc -l)
wait_complete $((N + 3))
list_json > "$T/list.json"
"$PY" - "$T/list.json" "$MIB" "$G0" <<'PY' || fail "list: incremental sizes"
import json, sys
# Complete and pruned ones (a pruned row keeps its figures), oldest first.
g = [x for x in json.load(open(sys.argv[1]))["generations"] if "committed_us" in x]
g.sort(key=lambda x: x["id"])
heap, g0 = int(sys.argv[2]) << 20, int(sys.argv[3])
upto, rest = [x for x in g if x["id"] <= g0], [x for x in g if x["id"] > g0]
first = upto[0]
assert len(rest) >= 3, ("too few generations", g)
assert all(x.get("store_gen", 0) > 0 for x in g), ("not store generations", g)
# The first ones store the whole (incompressible) heap, the next ones a few pages each.
assert sum(x["bytes_new"] for x in upto) >= heap * 0.9, ("first generations", upto)
assert all(x["bytes_new"] * 20 < heap for x in rest), ("later ones", rest)
assert all(x["bytes_total"] >= heap for x in rest), ("total", rest)
print("ok - incremental: first generation(s) %.1f MiB new, the next %d %s KiB new each, "
      "each of %.1f MiB; pauses %s ms" % (sum(x["bytes_new"] for x in upto) / 2**20, len(rest),
      "/".join("%.0f" % (x["bytes_new"] / 1024) for x in rest), rest[-1]["bytes_total"] / 2**20,
      "/".join("%.1f" % (x["pause_us"] / 1e3) for x in rest)))
PY
"$HACTL" -s "$SOCK" status heap | grep -q "iB new of [0-9.]* MiB" || fail "status: no new/total"

# ---- 2. exact restore and rollback ----------------------------------------------------
req "touch 16" > /dev/null
S1=$(req sum)
G1=$(ckpt heap)
req "touch 16" > /dev/null
S2=$(req sum)
G2=$(ckpt heap)
[ -n "$G1" ] && [ -n "$G2" ] && [ "$S1" != "$S2" ] || fail "checkpoints $G1 $G2, sums $S1 $S2"
P=$(svc_pid heap)
[ "$P" -gt 0 ] || fail "no service pid"
kill -KILL "$P"
for _ in $(seq 600); do
	p=$(svc_pid heap)
	[ "$p" -gt 0 ] && [ "$p" != "$P" ] && [ -n "$(req sum)" ] && break
	sleep 0.1
done
[ "$(req sum)" = "$S2" ] || fail "after kill -9: heap $(req sum), not $S2 (generation $G2)"
echo "ok - [${SECONDS}s] kill -9: restored with exactly generation $G2's heap"
# The restored service is tracked on from the generation restored (engine/track-adopt.c):
# the generations after it store only what changed, and restore exactly.
req "touch 16" > /dev/null
S3=$(req sum)
GA=$(ckpt heap)
out=$("$HACTL" -s "$SOCK" rollback heap -g "$GA") || fail "rollback to $GA: $out"
wait_up
[ "$(req sum)" = "$S3" ] || fail "after rollback to $GA (after the restore): heap $(req sum), not $S3"
echo "ok - [${SECONDS}s] rollback: exactly generation $GA's heap (the first checkpoint after the restore)"
out=$("$HACTL" -s "$SOCK" rollback heap -g "$G1") || fail "rollback: $out"
wait_up
[ "$(req sum)" = "$S1" ] || fail "after rollback to $G1: heap $(req sum), not $S1"
req "touch 4" > /dev/null || fail "no writes after rollback"
echo "ok - [${SECONDS}s] rollback: exactly generation $G1's heap"
G3=$(ckpt heap)
"$HACTL" -s "$SOCK" log heap > "$T/log"
grep -q "tracked from it" "$T/log" || fail "no restore was tracked from its generation: $(grep restore "$T/log")"
list_json > "$T/list.json"
"$PY" - "$T/list.json" "$MIB" "$G2" <<'PY' || fail "list: generations after the restores"
import json, sys
g = [x for x in json.load(open(sys.argv[1]))["generations"] if "committed_us" in x]
heap, g2 = int(sys.argv[2]) << 20, int(sys.argv[3])
after = sorted((x for x in g if x["id"] > g2), key=lambda x: x["id"])
assert len(after) >= 2, ("too few generations after the restore", after)
# Before adoption, each restore's first generation stored the whole heap again.
assert all(x["bytes_new"] * 20 < heap for x in after), ("a full generation after a restore", after)
print("ok - after a kill -9 restore and two rollbacks: %d generations of %.1f MiB, %s KiB new each "
      "(the first after the restore: %.0f KiB, pause %.1f ms)" % (len(after), after[0]["bytes_total"] / 2**20,
      "/".join("%.0f" % (x["bytes_new"] / 1024) for x in after), after[0]["bytes_new"] / 1024,
      after[0]["pause_us"] / 1e3))
PY

# ---- 3. retention bounds the store ------------------------------------------------------
conf 300ms 3
"$HACTL" -s "$SOCK" reload > /dev/null || fail "reload"
wait_up
N0=$(newest)
for _ in $(seq 100); do
	req "touch 8" > /dev/null
	[ "$(list_json | "$PY" -c 'import json, sys
print(sum(1 for g in json.load(sys.stdin)["generations"]
          if g["state"] in ("complete", "pruned") and g["id"] > int(sys.argv[1])))' "$N0")" -ge 10 ] && break
	sleep 0.2
done
settled_check "keep = 3" noverify
# Retention follows each commit: a fourth may be complete for a moment (while its
# retention round is deferred, or after a failure).
[ "$(complete | wc -l)" -le 7 ] || fail "keep = 3: $(complete | wc -l) complete generations"
DU=$(du -sk --apparent-size "$STORE/packs" | cut -f1)
DUB=$(du -sk "$STORE/packs" | cut -f1)
[ "$DUB" -lt $(((MIB * 1024) * 3 / 2 + 8192)) ] ||
	fail "keep = 3: packs use $DUB KiB on disk for a $MIB MiB heap: pruned data not freed"
echo "ok - [${SECONDS}s] keep = 3: the store holds exactly the catalog's $(complete | wc -l) complete generations; packs ${DUB} KiB on disk (${DU} KiB apparent) for a $MIB MiB heap"

# ---- 4. hacd killed while its worker writes a generation -----------------------------------
# A store generation is in flight for tens of milliseconds of each 300 ms (less since
# the pauses of launched services shrank): polling catches one within a few hundred
# tries, and the loop ends at the first.
ORPHAN=
for _ in $(seq 250); do
	n=$(in_flight)
	if [ -n "$n" ]; then
		kill -STOP "$PID"
		if wait_until 100 0.05 test -d "$(gen_dir "$n")"; then
			ORPHAN=$n
			break
		fi
		kill -CONT "$PID"
	fi
	req "touch 64" > /dev/null
	sleep 0.02
done
[ -n "$ORPHAN" ] || fail "never caught a checkpoint in flight"
W=$(pgrep -P "$PID" -x "hacd-w heap" || true)
kill -KILL "$PID"
wait "$PID" 2>/dev/null || true
PID=
for _ in $(seq 100); do
	[ -z "$W" ] || ! kill -0 "$W" 2>/dev/null && break
	sleep 0.1
done
cat_complete | awk '{print $2}' | grep -qx "$ORPHAN" && fail "store generation $ORPHAN committed in the catalog"
[ -d "$(gen_dir "$ORPHAN")" ] || fail "store generation $ORPHAN vanished"
start_hacd
# (Its number may be taken again by the next generation: the log says it was deleted.)
wait_until 100 0.1 grep -q "worker heap: store generation $ORPHAN deleted" "$LOG" ||
	fail "orphan store generation $ORPHAN not deleted"
# A generation of the new hacd (a count would not do: retention follows each commit, so
# with keep = 3 there are never more than 3).
wait_until 600 0.1 newer heap complete "$(newest)" ||
	fail "no complete generation after the restart: $("$HACTL" -s "$SOCK" list heap)"

settled_check "after the kill"
echo "ok - [${SECONDS}s] hacd killed mid-checkpoint: store generation $ORPHAN (never committed) deleted at restart, catalog and store consistent"
# ---- 5. the worker killed mid-checkpoint --------------------------------------------------
# (If the service was frozen or held the parasite, it dies too and hacd restores it.)
KILLED=
for _ in $(seq 250); do
	if [ -n "$(in_flight)" ]; then
		W=$(pgrep -P "$PID" -x "hacd-w heap" || true)
		[ -n "$W" ] && kill -KILL "$W" && KILLED=$W && break
	fi
	req "touch 64" > /dev/null
	sleep 0.02
done
[ -n "$KILLED" ] || fail "never caught the worker mid-checkpoint"
wait_until 600 0.1 newer heap complete "$(($(newest) + 1))" ||
	fail "no checkpoints after the worker's kill"
wait_up
settled_check "after the worker's kill"
echo "ok - [${SECONDS}s] worker $KILLED killed mid-checkpoint: restarted, checkpoints go on, catalog and store consistent"

# Figures: each launch begins with a full generation (logged at info), and so does a
# restore that could not be tracked on from its generation.
grep -o "generation [0-9]* complete (store generation [0-9]*, full).*" "$LOG" |
	sed 's/^/# /' || true
kill -TERM "$PID"
wait "$PID" || fail "SIGTERM: exit $?"
PID=
echo "ok - [${SECONDS}s] SIGTERM"

# ---- 6. a complete generation whose store generation is gone --------------------------------
# What a power loss can do to the store's last rename: the row stays complete, the data is
# not there. The next hacd prunes the row, with an event, before anything restores it.
read -r LOSTID LOSTSG <<< "$(cat_complete | head -1)"
rm -rf "$(gen_dir "$LOSTSG")"
start_hacd
wait_until 100 0.1 grep -q "generation $LOSTID: its store generation $LOSTSG is missing" "$LOG" ||
	fail "generation $LOSTID (store generation $LOSTSG, removed) not noticed"
[ "$(list_json | "$PY" -c 'import json, sys
print([g["state"] for g in json.load(sys.stdin)["generations"] if g["id"] == int(sys.argv[1])][0])' "$LOSTID")" = pruned ] ||
	fail "generation $LOSTID still listed as complete"
"$HACTL" -s "$SOCK" log heap | grep -q "missing from the page store" || fail "no event for the loss"
"$HACTL" catalog verify "$T/state/catalog.db" > /dev/null || fail "catalog after the loss"
kill -TERM "$PID"
wait "$PID" || fail "SIGTERM: exit $?"
PID=
echo "ok - [${SECONDS}s] a store generation gone missing: its row ($LOSTID) pruned, with an event"
