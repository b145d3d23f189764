#!/bin/sh
# keepalived-vrrp.sh HACD HACTL DRIVER SCRIPT KV: keepalived really drives hacd.
#
# Nodes alpha and beta are network namespaces joined by a veth pair (replica-lib.sh),
# each with its own hacd (replicating to the other over TLS) and its own keepalived
# (foreground, VRRP-only, its own config and pid files) running one VRRP instance over
# the veth by unicast, with a virtual address; each keepalived's notify is the packaged
# hacd-notify (SCRIPT), calling its own node's hactl.
#  1. keepalived starts on both, hacd standby on both (as at boot): alpha (priority 150)
#     becomes MASTER and takes the virtual address, but its notify's promote is refused:
#     there is no generation anywhere yet; beta becomes BACKUP (demote: a no-op).
#  2. alpha's hacd launches kv.py (`hactl promote --force`: the first start of a new
#     cluster, which VRRP cannot decide); keys are set, a checkpoint taken and its
#     generation replicated to beta.
#  3. Everything on alpha is killed -9 (keepalived, hacd, its worker, the service): beta's
#     keepalived stops hearing adverts and becomes MASTER, takes the virtual address,
#     and its notify runs `hactl promote kv` on beta, which restores the newest
#     generation beta holds: kv answers on beta with the keys set before it.
# Prints the time from the kill to kv answering on beta. Fails on wrong behaviour,
# never on timings. Run it in a pid namespace of its own (ctest does), where this
# script is init and reaps what the kill -9 orphans.
set -eu
# shellcheck source=../integration/replica-lib.sh disable=SC1091
. "$(dirname "$0")/../integration/replica-lib.sh"

# shellcheck disable=SC2034  # read by start_hacd (replica-lib.sh)
HACD=$(realpath "$1")
HACTL=$(realpath "$2")
DRV=$(realpath "$3")
SCRIPT=$(realpath "$4")
KV=$(realpath "$5")
KEEPALIVED=$(command -v keepalived || true)
T=$(mktemp -d /tmp/hacd-vrrp.XXXXXX)
NSA=hacd-vrrp-a-${T##*.}
NSB=hacd-vrrp-b-${T##*.}
NET=10.76.0
PORT=7395
# shellcheck disable=SC2034  # set by start_hacd (replica-lib.sh)
APID=
# shellcheck disable=SC2034
BPID=

[ -n "$KEEPALIVED" ] || { echo "SKIP: keepalived not installed (tests/deps.sh installs it)"; exit 77; }

fail() { rep_fail "$@"; }

trap 'rep_teardown "${VRRP_KEEP:-}"' EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
T_START=$(now_ms)
at() { echo "[$(( ($(now_ms) - T_START) / 1000 )) s]"; }
ns_of() { if [ "$1" = alpha ]; then echo "$NSA"; else echo "$NSB"; fi; }
ctl() { n=$1; shift; "$HACTL" -s "$T/$n.sock" "$@"; }
# kv NODE LINE: one request to kv.py on NODE (its loopback), the answer on stdout.
kv() { ip netns exec "$(ns_of "$1")" "$KV" client "$PORT" "$2"; }
# until SECONDS WHAT CMD...: poll CMD every 0.1 s (never a fixed sleep: load reaches 20)
until_ok() {
	u_s=$1 u_what=$2
	shift 2
	for _ in $(seq $(( u_s * 10 ))); do
		"$@" > /dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "$u_what (waited $u_s s)"
}
role_state() { [ "$(ctl "$1" status kv --json | jq -r '.services[0] | "\(.role) \(.state)"')" = "$2" ]; }
# holds NODE GEN: NODE's newest consistent generation is alpha's GEN or newer
holds() {
	g=$("$DRV" -f "$T/$1.conf" newest kv 2>/dev/null | awk '$3 == "alpha" { print $4 }')
	[ -n "$g" ] && [ "$g" -ge "$2" ]
}
has_line() { grep -q -- "$2" "$1"; }
# has_vip NODE DEV (the addresses seen last are in addr.log, which fail shows)
has_vip() {
	ip -n "$(ns_of "$1")" -o addr show dev "$2" > "$T/addr.log" 2>&1
	grep -q "$NET.100/" "$T/addr.log"
}

rep_setup "$NET"

for n in alpha beta; do
	case $n in alpha) me=1 them=2 dev=va prio=150 ;; beta) me=2 them=1 dev=vb prio=100 ;; esac
	rep_conf "$n" "$NET" 7791
	cat >> "$T/$n.conf" <<EOF
service "kv" {
  command = "$KV $PORT"
  interval = "1h"
  keep = 4
  stop_timeout = "2s"
}
EOF
	# keepalived drops a notify script's output: this wrapper keeps it, and the status.
	cat > "$T/notify-$n" <<EOF
#!/bin/sh
"$SCRIPT" --hactl "$HACTL" --socket "$T/$n.sock" --service kv "\$@" >> "$T/notify-$n.log" 2>&1
echo "notify \$*: exit \$?" >> "$T/notify-$n.log"
EOF
	chmod 700 "$T/notify-$n"
	cat > "$T/keepalived-$n.conf" <<EOF
global_defs {
  router_id hacd_$n
  script_user root
  enable_script_security
}
vrrp_instance hacd_kv {
  state BACKUP
  interface $dev
  virtual_router_id 61
  priority $prio
  advert_int 1
  unicast_src_ip $NET.$me
  unicast_peer {
    $NET.$them
  }
  virtual_ipaddress {
    $NET.100/24 dev $dev
  }
  notify $T/notify-$n
}
EOF
	ip netns exec "$(ns_of $n)" "$KEEPALIVED" -t -f "$T/keepalived-$n.conf" > "$T/kt-$n.out" 2>&1 ||
		fail "keepalived -t $n: $(cat "$T/kt-$n.out")"
	: > "$T/notify-$n.log"
done

start_keepalived() { # start_keepalived NODE
	ip netns exec "$(ns_of "$1")" "$KEEPALIVED" -n -l -D -P -f "$T/keepalived-$1.conf" \
		-p "$T/keepalived-$1.pid" -r "$T/vrrp-$1.pid" -c "$T/checkers-$1.pid" \
		< /dev/null >> "$T/keepalived-$1.log" 2>&1 &
}

# --- 1. keepalived on both: alpha MASTER, beta BACKUP -------------------------------------
# keepalived comes first, as at boot: hacd starts standby on both nodes. alpha's MASTER
# cannot promote yet (no generation anywhere: VRRP cannot tell a new cluster from a lost
# one), beta's BACKUP demotes what is already standby.
start_hacd beta "$NSB"
start_hacd alpha "$NSA"
start_keepalived alpha
until_ok 40 "alpha's keepalived did not become MASTER" has_line "$T/notify-alpha.log" "MASTER.*: exit"
has_line "$T/notify-alpha.log" "no consistent generation of kv" ||
	fail "alpha's promote without a generation: $(cat "$T/notify-alpha.log")"
until_ok 10 "alpha has not the virtual address" has_vip alpha va
start_keepalived beta
until_ok 40 "beta's keepalived did not notify BACKUP" has_line "$T/notify-beta.log" "BACKUP.*: exit 0"
has_vip beta vb && fail "both nodes hold the virtual address"
echo "$(at) ok - keepalived: alpha MASTER (promote refused: no generation yet), beta BACKUP (demote: standby already)"

# --- 2. alpha runs kv; a generation with its keys reaches beta --------------------------
ctl alpha promote kv --force > "$T/promote0.out" 2>&1 ||
	fail "promote --force on alpha: $(cat "$T/promote0.out")"
until_ok 30 "kv does not answer on alpha" kv alpha "get x"
for k in 1 2 3; do
	[ "$(kv alpha "set key$k value$k")" = ok ] || fail "kv set key$k on alpha"
done
KEYS='{"key1": "value1", "key2": "value2", "key3": "value3"}'
[ "$(kv alpha dump)" = "$KEYS" ] || fail "alpha: kv holds $(kv alpha dump)"
out=$(ctl alpha checkpoint kv) || fail "checkpoint on alpha: $out"
G=$(echo "$out" | sed -n 's/.*checkpointed as generation \([0-9]*\).*/\1/p')
[ -n "$G" ] || fail "no generation in: $out"
until_ok 60 "beta does not hold generation $G" holds beta "$G"
role_state alpha "active running" || fail "alpha: $(ctl alpha status kv)"
role_state beta "standby stopped" || fail "beta: $(ctl beta status kv)"
echo "$(at) ok - alpha runs kv (promote --force, the first start), its generation $G (key1..key3) is consistent on beta"

# --- 3. alpha dies: beta's keepalived becomes MASTER and its hacd promotes -----------------
t0=$(now_ms)
for p in $(ip netns pids "$NSA"); do
	kill -KILL "$p" 2>/dev/null || true
done
until_ok 60 "beta's keepalived did not become MASTER" has_line "$T/notify-beta.log" "MASTER"
tm=$(now_ms)
until_ok 60 "beta's notify did not promote" has_line "$T/notify-beta.log" "MASTER.*: exit"
has_line "$T/notify-beta.log" "MASTER.*: exit 0" || fail "promote on beta failed: $(cat "$T/notify-beta.log")"
until_ok 30 "kv does not answer on beta" kv beta "get key1"
ta=$(now_ms)
v=$(kv beta dump)
[ "$v" = "$KEYS" ] || fail "beta: kv holds $v, not $KEYS"
role_state beta "active running" || fail "beta: $(ctl beta status kv)"
until_ok 10 "beta has not the virtual address" has_vip beta vb
grep -q "restoring generation" "$T/beta.log" || fail "beta's hacd did not restore a generation"
# Both catalogs sound: alpha's after the kill -9, beta's after a clean stop.
rep_hacds_stop beta
rep_catalogs_verify alpha beta
echo "$(at) ok - alpha killed: beta MASTER after $(( tm - t0 )) ms, kv answers there with key1..key3" \
	"$(( ta - t0 )) ms after the kill ($(( ta - tm )) ms after MASTER)"
