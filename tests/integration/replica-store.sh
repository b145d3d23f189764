#!/bin/bash
# replica-store.sh DRIVER HACTL VICTIM: page-store generations replicated (issue 7, v3).
#
# Alpha's generations are real incremental checkpoints (`hactl dump --track`) of a
# victim into alpha's page store, recorded in alpha's catalog with their store number;
# beta assembles them into its own store with the same numbers. On loopback, one
# machine, two state directories and certificates of one CA.
#
#  1. Generation 1 (the whole memory) with a bandwidth cap; the sender is killed -9
#     mid-pack: beta has nothing consistent, keeps the partial pack, and a new sender
#     sends only the tail (bytes sent < the pack).
#  2. Generation 2 ships only its own pack and the metadata that changed: bytes sent
#     against the pack sizes (the figure full vs incremental).
#  3. A bit flipped in pack 3 in flight (the sender's hook) is refused with a log line
#     naming the pack; beta's catalog and store hold generations 1 and 2 only.
#  4. Divergence: beta takes a generation 3 of its own (another process, tracked into
#     its store, in its catalog). Alpha's generation 3 retires it (catalog: pruned, a
#     "diverged" event; store: gone, its pack too) and beta then holds alpha's pack 3
#     byte for byte.
#  5. Alpha's victim is killed; beta's generation 3 is verified (`hactl image verify`)
#     and restored: the victim checks every word of its memory there.
set -euo pipefail
. "$(dirname "$0")/replica-lib.sh"

DRV=$(realpath "$1")
HACTL=$(realpath "$2")
VICTIM=$(realpath "$3")
rep_init repst
SERVE_PID=
PUSH_PID=
VPID=
V2PID=
MIB=${REP_MIB:-32}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
	rep_kill "$PUSH_PID" "$SERVE_PID" "$VPID" "$V2PID"
	rm -rf "$T"
}
trap cleanup EXIT

rep_certs

# conf NODE STATE [BANDWIDTH]
conf() {
	rep_drv_conf "$1" "$2" "$1" 127.0.0.1:1 "127.0.0.1:$PORT" /run/hacd-repst-victim.pid \
		"${3:-}"
}
conf alpha a > "$T/alpha.conf"
conf alpha a 4M > "$T/alpha-slow.conf"
conf beta b > "$T/beta.conf"
AST=$T/a/services/victim/store
BST=$T/b/services/victim/store

A() { "$DRV" -f "$T/$1.conf" "${@:2}"; }
B() { "$DRV" -f "$T/beta.conf" "$@"; }
size() { stat -c %s "$1"; }
pack() { printf '%s/packs/pack-%08u.pack' "$1" "$2"; }
gendir() { printf '%s/gen-%08u' "$1" "$2"; }
sent() { sed -n 's/^sent \([0-9]*\) bytes.*/\1/p' "$1"; }

# --- alpha: three incremental generations of a real process ----------------------------
rep_victim VPID "$T/result" "$MIB"
mkdir -p "$T/a/services/victim"
chmod -R 700 "$T/a"
"$HACTL" dump -t "$VPID" -D "$AST" --track --count 3 --interval 300 --leave-running \
	> "$T/track.out" 2> "$T/track.log" || fail "hactl dump --track: $(tail -3 "$T/track.log")"
[ -d "$(gendir "$AST" 3)" ] || fail "alpha's store has no generation 3"
P1=$(size "$(pack "$AST" 1)")
P2=$(size "$(pack "$AST" 2)")
P3=$(size "$(pack "$AST" 3)")
echo "alpha's packs: 1: $P1 bytes, 2: $P2, 3: $P3"

# --- 1. killed mid-pack, resumed from the tail -------------------------------------------
A alpha add-store victim 1 > /dev/null || fail "add-store 1"
rep_start_beta ""
"$DRV" -f "$T/alpha-slow.conf" push beta --once > "$T/slow.out" 2> "$T/slow.log" &
PUSH_PID=$!
part=
for _ in $(seq 400); do
	part=$(find "$BST/packs" -name '.recv-00000001-*' 2>/dev/null | head -1 || true)
	[ -n "$part" ] && [ "$(size "$part")" -gt $((P1 / 4)) ] && break
	sleep 0.05
done
[ -n "$part" ] || fail "no partial pack 1 on beta"
kill -KILL "$PUSH_PID"
wait "$PUSH_PID" 2>/dev/null || true
PUSH_PID=
for _ in $(seq 100); do
	[ "$(B count victim)" = "complete 0 pending 0" ] && break
	sleep 0.1
done
[ "$(B count victim)" = "complete 0 pending 0" ] || fail "beta after the kill: $(B count victim)"
# Beta wrote what had reached it before it saw the connection end: final now.
held=$(size "$part")
[ "$held" -lt "$P1" ] || fail "pack 1 complete before the kill ($held bytes): raise REP_MIB"
A alpha push beta --once > "$T/push1.out" 2> "$T/push1.log" || fail "resumed push of 1"
grep -q "ack victim 1 ok" "$T/push1.out" || fail "generation 1 not acknowledged"
s1=$(sent "$T/push1.out")
[ "$s1" -lt "$P1" ] || fail "the resumed push sent $s1 bytes, pack 1 has $P1: not a resume"
[ "$s1" -ge $((P1 - held)) ] || fail "the resumed push sent $s1 bytes, $((P1 - held)) were missing"
cmp -s "$(pack "$AST" 1)" "$(pack "$BST" 1)" || fail "pack 1 differs on beta"
echo "resume: $held of $P1 bytes held at the kill, then $(grep "^sent" "$T/push1.out")"

# --- 2. an incremental generation ships its pack and changed metadata only --------------
A alpha add-store victim 2 > /dev/null
A alpha push beta --once > "$T/push2.out" 2> "$T/push2.log" || fail "push of 2"
s2=$(sent "$T/push2.out")
meta=$(du -cb "$(gendir "$AST" 2)"/* | tail -1 | cut -f1)
[ "$s2" -ge "$P2" ] || fail "generation 2: $s2 bytes sent; its pack alone has $P2"
[ "$s2" -le $((P2 + meta)) ] ||
	fail "generation 2: $s2 bytes sent; its pack has $P2, its metadata $meta"
[ "$(B count victim)" = "complete 2 pending 0" ] || fail "beta: $(B count victim)"
for f in "$(gendir "$AST" 2)"/*; do
	cmp -s "$f" "$(gendir "$BST" 2)/$(basename "$f")" || fail "$f differs on beta"
done
echo "bytes shipped: generation 1 (full) $P1 + metadata; generation 2 (incremental) $s2" \
	"(pack $P2, metadata up to $meta)"

# --- 3. a damaged pack byte is refused ----------------------------------------------------
A alpha add-store victim 3 > /dev/null
# In a store generation the hook hits packs only: past pack 3's header, in its blobs.
at=$((P3 - 100))
A alpha push beta --once --fail-fast --corrupt-at "$at" > "$T/corrupt.out" \
	2> "$T/corrupt.log" && fail "a damaged pack was acknowledged"
grep -q "Data for pack 3 at offset [0-9]*: checksum mismatch (damaged in transit)" "$T/beta.log" ||
	fail "no refusal naming pack 3 in beta's log"
[ "$(B count victim)" = "complete 2 pending 0" ] || fail "beta after the damage: $(B count victim)"
[ ! -e "$(gendir "$BST" 3)" ] || fail "beta has a generation 3 after the damage"
[ ! -e "$(pack "$BST" 3)" ] || fail "beta has a pack 3 after the damage"

# --- 4. divergence: beta's own generation 3 -----------------------------------------------
rep_victim V2PID "$T/result2" 4
"$HACTL" dump -t "$V2PID" -D "$BST" --track --count 1 --leave-running > "$T/track2.out" \
	2> "$T/track2.log" || fail "hactl dump --track into beta's store: $(tail -3 "$T/track2.log")"
[ -d "$(gendir "$BST" 3)" ] || fail "beta's own generation is not number 3: $(ls "$BST")"
B add-store victim 3 > /dev/null
kill -KILL "$V2PID"
wait "$V2PID" 2>/dev/null || true
V2PID=
cmp -s "$(pack "$AST" 3)" "$(pack "$BST" 3)" && fail "beta's own pack 3 equals alpha's"
A alpha push beta --once > "$T/push3.out" 2> "$T/push3.log" || fail "push of 3 after divergence"
grep -q "ack victim 3 ok" "$T/push3.out" || fail "generation 3 not acknowledged"
grep -q "is not in peer alpha's history: retired" "$T/beta.log" || fail "no retirement logged"
B events victim | grep -q "^diverged generation [0-9]* retired: diverged: peer alpha" ||
	fail "no diverged event in beta's catalog: $(B events victim | head -3)"
read -r _ b3dir origin ogen <<< "$(B newest victim)"
[ "$origin $ogen" = "alpha 3" ] || fail "beta's newest is $origin $ogen"
[ "$b3dir" = "$(gendir "$BST" 3)" ] || fail "beta's newest is at $b3dir"
cmp -s "$(pack "$AST" 3)" "$(pack "$BST" 3)" || fail "pack 3 differs on beta"
[ -z "$(find "$BST/packs" -name '.recv-*')" ] || fail "partial packs left on beta: $(ls -a "$BST/packs")"
s3=$(sent "$T/push3.out")
echo "divergence: beta's own generation 3 retired; $s3 bytes sent for alpha's (pack $P3)"

# --- 5. beta's generation restores --------------------------------------------------------
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=
"$HACTL" image verify -D "$BST" --generation 3 > "$T/verify.log" 2>&1 ||
	fail "hactl image verify of beta's generation 3: $(tail -3 "$T/verify.log")"
kill -KILL "$VPID"
wait "$VPID" 2>/dev/null || true
VPID=
rm -f "$T/result"
"$HACTL" restore -D "$BST" --generation 3 --detach > "$T/restore.log" 2>&1 ||
	fail "hactl restore of beta's generation 3: $(tail -3 "$T/restore.log")"
VPID=$(pgrep -f "^$VICTIM $T/result " | head -1 || true)
[ -n "$VPID" ] || fail "restored victim not found"
kill -TERM "$VPID"
rep_victim_ok "$T/result" "after restore on beta"
echo "PASS: restored on beta from its store generation 3: $(cat "$T/result")"
