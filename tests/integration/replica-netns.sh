#!/bin/bash
# replica-netns.sh DRIVER HACTL VICTIM: replication between two nodes, end to end.
#
# Node alpha (active) and node beta (standby) are two network namespaces joined by a
# veth pair; addresses exist only inside them, and both are deleted at the end. Each node
# has its own config, state directory (catalog + generations) and certificate, made here
# with `openssl req` from a CA made here (no key is ever committed).
#
#  1. A real victim is dumped by `hactl dump` (generation 1) and shipped to beta: beta's
#     catalog holds it consistent; the throughput is printed.
#  2. A sender with a certificate from another CA, and one with a certificate of the right
#     CA for a node beta does not know (mallory), are refused with a clear log line;
#     beta's catalog is untouched.
#  2b. Hand-written frames from alpha's certificate: a path-traversal file name, an
#     oversized length field, a frame that does not decode, a transfer cut inside a frame,
#     a page-store offer naming a pack numbered above its generation:
#     each refused with a log line naming it; beta's catalog untouched.
#  3. A byte flipped in flight (the sender's test hook, after checksumming) is refused:
#     nothing new is marked consistent, no .part directory remains.
#  4. Generations 2..4 (the last dump kills the victim), sent with a bandwidth cap; the
#     sender is killed -9 mid-transfer: beta keeps generation 1 consistent and nothing
#     else. A new sender catches up, skipping the superseded 2 and 3.
#  4b. The link is cut (veth down) for 10 s mid-transfer: the transfer resumes or starts
#     over by itself, beta ends with it consistent and nothing pending.
#  5. `hactl restore` of beta's newest generation: the victim checks its memory there.
set -euo pipefail
. "$(dirname "$0")/replica-lib.sh"

DRV=$(realpath "$1")
HACTL=$(realpath "$2")
VICTIM=$(realpath "$3")
rep_init rep
SERVE_PID=
PUSH_PID=
VPID=
MIB=${REP_MIB:-64}

cleanup() {
	rep_kill "$PUSH_PID" "$SERVE_PID" "$VPID"
	rep_nodes_del "$NSA" "$NSB"
	rm -rf "$T"
}
trap cleanup EXIT

# --- two nodes, their certificates and those of the intruders --------------------------
rep_setup 10.77.0
rep_ca "$T/tls" evilca
rep_cert "$T/tls" mallory ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=alpha" \
	-keyout "$T/tls/evil.key" -out "$T/tls/evil.csr" 2>/dev/null
openssl x509 -req -in "$T/tls/evil.csr" -CA "$T/tls/evilca.crt" -CAkey "$T/tls/evilca.key" \
	-CAcreateserial -days 1 -extfile "$T/tls/alpha.ext" -out "$T/tls/evil.crt" 2>/dev/null

# conf NODE STATE CERT [BANDWIDTH]
conf() {
	rep_drv_conf "$1" "$2" "$3" 10.77.0.1:7788 10.77.0.2:7788 /run/hacd-rep-victim.pid "${4:-}"
}
conf alpha a alpha > "$T/alpha.conf"
conf alpha a alpha 8M > "$T/alpha-slow.conf"
conf beta b beta > "$T/beta.conf"
conf mallory m mallory > "$T/mallory.conf"
conf alpha e alpha > "$T/evil.conf"
sed -i "s|$T/tls/ca.crt|$T/tls/evilca.crt|; s|$T/tls/alpha\.|$T/tls/evil.|g" "$T/evil.conf"

A() { ip netns exec "$NSA" "$DRV" -f "$T/$1.conf" "${@:2}"; }
B() { ip netns exec "$NSB" "$DRV" -f "$T/beta.conf" "$@"; }

# --- 1. a real generation reaches beta -----------------------------------------------------
rep_victim VPID "$T/result" "$MIB"
g1=$(rep_dump --leave-running)
rep_start_beta "$NSB"
A alpha push beta --once > "$T/push1.out" 2> "$T/push1.log" || fail "first push"
grep -q "ack victim $g1 ok" "$T/push1.out" || fail "generation $g1 not acknowledged"
echo "replication, ${MIB} MiB victim: $(grep sent "$T/push1.out")"
[ "$(B count victim)" = "complete 1 pending 0" ] || fail "beta: $(B count victim)"
read -r _ b1dir origin ogen <<< "$(B newest victim)"
[ "$origin $ogen" = "alpha $g1" ] || fail "beta's newest is $origin $ogen"
for f in "$T/a/services/victim/gen-$g1"/*; do
	cmp -s "$f" "$b1dir/$(basename "$f")" || fail "$f differs on beta"
done
[ "$(stat -c %a "$b1dir")" = 700 ] || fail "generation directory mode"

# --- 2. wrong certificates ----------------------------------------------------------------
# each sender needs a generation of its own to offer
for who in evil mallory; do
	cp -r "$T/a/services/victim/gen-$g1" "$T/$who.dump"
	ip netns exec "$NSA" "$DRV" -f "$T/$who.conf" add victim "$T/$who.dump" > /dev/null
done
timeout 3 ip netns exec "$NSA" "$DRV" -f "$T/evil.conf" push beta --once \
	> /dev/null 2> "$T/evil.log" && fail "the evil sender succeeded"
grep -q "refused replication connection from 10.77.0.1.*TLS handshake failed" "$T/beta.log" ||
	fail "no refusal of a certificate from another CA in beta's log"
timeout 3 ip netns exec "$NSA" "$DRV" -f "$T/mallory.conf" push beta --once \
	> /dev/null 2> "$T/mallory.log" && fail "mallory's sender succeeded"
grep -q "certificate /CN=mallory names no configured peer" "$T/beta.log" ||
	fail "no refusal of an unknown peer in beta's log"
[ "$(B count victim)" = "complete 1 pending 0" ] || fail "beta after refusals: $(B count victim)"

# --- 2b. hostile frames from an authenticated peer ---------------------------------------------
# alpha's own certificate, but frames written by hand: each case on its own connection.
ip netns exec "$NSA" python3 - "$T/tls" <<'PY' || fail "hostile client"
import socket, ssl, struct, sys, time
tls = sys.argv[1]
def varint(n):
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])
def f(num, val):
    if isinstance(val, int):
        return varint(num << 3) + varint(val)
    if isinstance(val, str):
        val = val.encode()
    return varint(num << 3 | 2) + varint(len(val)) + val
def frame(p):
    return struct.pack('>I', len(p)) + p
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(tls + '/alpha.crt', tls + '/alpha.key')
ctx.load_verify_locations(tls + '/ca.crt')
def session(payload):
    s = ctx.wrap_socket(socket.create_connection(('10.77.0.2', 7788), 5), server_hostname='beta')
    s.sendall(frame(f(1, f(1, 3) + f(2, 'alpha') + f(3, f(1, 'victim')))))  # protocol v3
    n = struct.unpack('>I', s.recv(4))[0]
    while n:
        n -= len(s.recv(n))
    s.sendall(payload)
    time.sleep(0.3)
    s.close()
good_file = f(1, 'pages-1.img') + f(2, 1000) + f(3, 7)
session(frame(f(2, f(1, 'victim') + f(2, 99) + f(7, f(1, '../../etc/passwd') + f(2, 1) + f(3, 1)))))
session(struct.pack('>I', 0x7fffffff) + b'\0' * 64)
session(frame(b'\xff' * 40))
session(frame(f(7, f(1, f(1, 'victim') + f(3, 9)))))
session(frame(f(2, f(1, 'victim') + f(2, 98) + f(7, good_file))) +
        frame(f(4, f(1, 0) + f(2, 0) + f(3, b'x' * 300) + f(4, 1)))[:120])
# a page-store generation naming a pack above its own number (it becomes a file name)
session(frame(f(2, f(1, 'victim') + f(2, 97) + f(7, good_file) + f(12, 4) +
                f(13, f(1, 12345678) + f(2, 4096) + f(3, 1)))))
PY
sleep 0.3
for why in "bad message: Offer: files.name is not a plain name" \
	   "bad message: length field says 2147483647 bytes" \
	   "bad message: frame of 40 bytes does not decode" \
	   "bad message: Roles: services\[0\].role is 9, not a role" \
	   "connection lost while receiving service victim generation 98" \
	   "bad message: Offer: packs\[0\]: number 12345678 not in 1..store_gen (4)"; do
	grep -q "$why" "$T/beta.log" || fail "beta did not log: $why"
done
[ "$(B count victim)" = "complete 1 pending 0" ] || fail "beta after hostile frames: $(B count victim)"
compgen -G "$T/b/services/victim/.*.part" > /dev/null && fail "a .part directory remains"

# --- 3. a byte damaged in flight ------------------------------------------------------------
g2=$(rep_dump --leave-running)
A alpha push beta --once --fail-fast --corrupt-at 5000 > "$T/corrupt.out" \
	2> "$T/corrupt.log" && fail "a damaged generation was acknowledged"
grep -q "checksum mismatch (damaged in transit)" "$T/beta.log" ||
	fail "no refusal of damaged data in beta's log"
grep -q "beta refused service victim generation $g2" "$T/corrupt.log" ||
	fail "the sender did not report the refusal"
sleep 0.2
[ "$(B count victim)" = "complete 1 pending 0" ] || fail "beta after damage: $(B count victim)"
compgen -G "$T/b/services/victim/.*.part" > /dev/null && fail "a .part directory remains"

# --- 4. sender killed mid-transfer, then catch-up ----------------------------------------------
g3=$(rep_dump --leave-running)
g4=$(rep_dump)
# hactl dump killed it; reap it so that its pid is free for the restore
wait "$VPID" 2>/dev/null || true
VPID_DEAD=$VPID
VPID=
ip netns exec "$NSA" "$DRV" -f "$T/alpha-slow.conf" push beta --once > "$T/slow.out" \
	2> "$T/slow.log" &
PUSH_PID=$!
for _ in $(seq 100); do
	ls -d "$T"/b/services/victim/.*.part > /dev/null 2>&1 && break
	sleep 0.05
done
sleep 1
kill -KILL "$PUSH_PID"
wait "$PUSH_PID" 2>/dev/null || true
PUSH_PID=
grep -q "superseded by $g4" "$T/slow.log" || fail "generations $g2 and $g3 were not skipped"
for _ in $(seq 100); do
	grep -q "connection lost while receiving service victim generation $g4" "$T/beta.log" &&
		break
	sleep 0.05
done
grep -q "connection lost while receiving service victim generation $g4" "$T/beta.log" ||
	fail "beta did not see the transfer cut"
# The line is logged just before the pending generation is failed in the catalog.
for _ in $(seq 50); do
	[ "$(B count victim)" = "complete 1 pending 0" ] && break
	sleep 0.1
done
[ "$(B count victim)" = "complete 1 pending 0" ] || fail "beta after the cut: $(B count victim)"
read -r _ _ origin ogen <<< "$(B newest victim)"
[ "$ogen" = "$g1" ] || fail "beta's newest after the cut is $ogen"
A alpha push beta --once > "$T/catchup.out" 2> "$T/catchup.log" || fail "catch-up push"
grep -q "ack victim $g4 ok" "$T/catchup.out" || fail "generation $g4 not acknowledged"
echo "catch-up: $(grep sent "$T/catchup.out")"
grep -q "consistent victim [0-9]* from alpha $g4; status: connected 1 held $g4 (here [0-9]*) active_newest $g4 lag_generations 0 lag_seconds 0.000" "$T/beta.out" ||
	fail "beta's status after the catch-up: $(tail -n1 "$T/beta.out")"
read -r _ b4dir origin ogen <<< "$(B newest victim)"
[ "$origin $ogen" = "alpha $g4" ] || fail "beta's newest is $origin $ogen, not alpha $g4"

# beta restarted: nothing to send, the handshake says it holds g4 already
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "beta did not exit cleanly"
rep_start_beta "$NSB"
A alpha push beta --once > "$T/again.out" 2> "$T/again.log" || fail "push after restart"
grep -q "^sent 0 bytes" "$T/again.out" || fail "beta was sent again what it holds"

# --- 4b. the link cut for 10 s mid-transfer -------------------------------------------------
# A generation whose pages differ from beta's newest (generation 3's images, re-added).
cp -r "$T/a/services/victim/gen-$g3" "$T/dump"
g5=$(A alpha add victim "$T/dump")
ip netns exec "$NSA" "$DRV" -f "$T/alpha-slow.conf" push beta --once > "$T/cut.out" \
	2> "$T/cut.log" &
PUSH_PID=$!
sleep 2
ip -n "$NSA" link set va down
sleep 10
ip -n "$NSA" link set va up
t0=$(date +%s)
wait "$PUSH_PID" || fail "push across the cut link failed"
PUSH_PID=
grep -q "ack victim $g5 ok" "$T/cut.out" || fail "generation $g5 not acknowledged"
echo "link cut 10 s: acknowledged $(( $(date +%s) - t0 )) s after the link came back"
grep -E "lost|cannot connect|connected" "$T/cut.log" | cut -d" " -f2- | sed "s/^/  sender: /" || true
[ "$(B count victim)" = "complete 3 pending 0" ] || fail "beta after the cut: $(B count victim)"
read -r _ _ origin ogen <<< "$(B newest victim)"
[ "$origin $ogen" = "alpha $g5" ] || fail "beta's newest is $origin $ogen, not alpha $g5"

# --- 5. restore on beta ---------------------------------------------------------------------
rm -f "$T/result"
ip netns exec "$NSB" "$HACTL" restore -D "$b4dir" --detach > "$T/restore.log" 2>&1 ||
	fail "hactl restore of beta's generation: $(cat "$T/restore.log")"
VPID=$VPID_DEAD
sleep 0.3
kill -TERM "$VPID" || fail "restored victim is not running"
rep_victim_ok "$T/result" "after restore on beta"
VPID=
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || fail "beta did not exit cleanly"
SERVE_PID=
for n in a b; do
	"$HACTL" catalog verify "$T/$n/catalog.db" > "$T/verify.log" 2>&1 ||
		fail "catalog $n: $(cat "$T/verify.log")"
done
echo "PASS: restored on beta: $(cat "$T/result")"
