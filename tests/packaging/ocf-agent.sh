#!/bin/sh
# ocf-agent.sh HACD HACTL AGENT: the OCF resource agent, run as Pacemaker runs it.
#
# 1. meta-data is valid against the OCF RA API DTD (resource-agents' ra-api-1.dtd).
# 2. Against a real hacd on a temp config: validate-all (good, broken, missing config),
#    start (twice), monitor, stop (twice), a hacd killed behind the agent's back, and
#    ocf-tester running the whole agent against the real hacd and hactl (roles,
#    promote --force, demote). An hactl without roles would make monitor say why.
# 3. The score arithmetic against the contract of docs/cluster.md: hactl is replaced
#    by a small script that keeps a role per service in a file and prints the
#    contract's JSON, because the lags and failures it maps to scores and OCF codes
#    cannot be produced on demand by a real pair of nodes in a unit-sized test (hacd
#    itself is still real and started/stopped by the agent).
set -eu

HACD=$1
HACTL=$2
AGENT=$3
T=$(mktemp -d /tmp/hacd-ocf.XXXXXX)
export OCF_ROOT=/usr/lib/ocf

fail() {
	echo "FAIL: $*" >&2
	[ -e "$T/hacd.log" ] && { echo "--- hacd log:" >&2; cat "$T/hacd.log" >&2; }
	exit 1
}

cleanup() {
	if [ -r "$T/hacd.pid" ]; then
		kill -KILL "$(cat "$T/hacd.pid")" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

[ -r "$OCF_ROOT/lib/heartbeat/ocf-shellfuncs" ] || {
	echo "SKIP: resource-agents is not installed (apt-get install resource-agents)"
	exit 0
}

# 1. meta-data
"$AGENT" meta-data > "$T/meta.xml" || fail "meta-data exit $?"
(cd /usr/share/resource-agents && xmllint --noout --valid - < "$T/meta.xml") ||
	fail "meta-data not valid against ra-api-1.dtd"
for a in start stop monitor promote demote notify meta-data validate-all; do
	grep -q "<action name=\"$a\"" "$T/meta.xml" || fail "meta-data lacks action $a"
done
echo "ok - meta-data valid against ra-api-1.dtd, every action listed"

# A node of a two-node cluster, as the agent will find it: a peer (that never
# answers here) with TLS certificates signed by a CA of our own, so that once hactl
# has promote its services start standby (docs/cluster.md) and ocf-tester can run.
mkdir "$T/tls"
(
	cd "$T/tls"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout ca.key -out ca.pem -subj /CN=hacd-test-ca
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout alpha.key -out alpha.csr -subj /CN=alpha
	openssl x509 -req -in alpha.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-out alpha.pem
) > "$T/openssl.log" 2>&1 || fail "openssl: $(cat "$T/openssl.log")"
cat > "$T/hacd.conf" <<CONF
node = "alpha"
state_dir = "$T/state"
control_socket = "$T/run/hactl.sock"
service "cache" {
  command = "/bin/sleep 1000"
}
tls {
  ca = "$T/tls/ca.pem"
  cert = "$T/tls/alpha.pem"
  key = "$T/tls/alpha.key"
}
peer "beta" {
  address = "127.0.0.1:9"
}
CONF
export OCF_RESOURCE_INSTANCE=hacd-test OCF_RESKEY_config="$T/hacd.conf" \
	OCF_RESKEY_hacd="$HACD" OCF_RESKEY_hactl="$HACTL" \
	OCF_RESKEY_pidfile="$T/hacd.pid" OCF_RESKEY_logfile="$T/hacd.log"

# run ACTION EXPECTED-RC: the agent's output in $T/out
run() {
	rc=0
	"$AGENT" "$1" > "$T/out" 2>&1 || rc=$?
	[ "$rc" = "$2" ] || fail "$1: exit $rc, expected $2: $(cat "$T/out")"
}

# 2. real hacd
run validate-all 0
cp "$T/hacd.conf" "$T/good.conf"
printf 'node = "alpha"\nbogus = 1\n' > "$T/hacd.conf"
run validate-all 6
grep -q "hacd.conf:2: unknown key" "$T/out" || fail "validate-all: no file:line: $(cat "$T/out")"
OCF_RESKEY_config=$T/none.conf run validate-all 5
OCF_RESKEY_hacd=$T/no-hacd run validate-all 5
cp "$T/good.conf" "$T/hacd.conf"
echo "ok - validate-all: 0, 6 with hacd -t's file:line, 5 without config or binary"

run monitor 7
OCF_RESKEY_CRM_meta_interval=0 run monitor 7
run start 0
pid=$(cat "$T/hacd.pid")
[ "$(cat "/proc/$pid/comm")" = hacd ] || fail "pid file does not name hacd"
"$HACTL" status -s "$T/run/hactl.sock" > /dev/null || fail "hacd does not answer after start"
run start 0
[ "$(cat "$T/hacd.pid")" = "$pid" ] || fail "second start launched another hacd"
echo "ok - start launches hacd, answers on its socket; start again is a no-op"

ROLES=no
if "$HACTL" status -s "$T/run/hactl.sock" --json | grep -q '"role"'; then
	ROLES=yes
	run monitor 0
	echo "ok - monitor: running, unpromoted"
else
	run monitor 1
	grep -q 'no role for service cache' "$T/out" || fail "monitor without roles: $(cat "$T/out")"
	run promote 1
	echo "ok - monitor/promote without roles in hactl status: error 1, and why"
fi

kill -KILL "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
run monitor 7
run stop 0
[ ! -e "$T/hacd.pid" ] || fail "stop left the pid file"
run start 0
pid=$(cat "$T/hacd.pid")
run stop 0
kill -0 "$pid" 2>/dev/null && fail "hacd $pid still runs after stop"
[ ! -e "$T/run/hactl.sock" ] || fail "hacd did not stop cleanly (socket left)"
run stop 0
run monitor 7
echo "ok - stop: SIGTERM, clean exit; stop again and after a crash: 0; monitor 7"

# ocf-tester needs the whole contract: promote, demote and roles in the status
# (hactl promote came first, with replication; roles and demote come with the agent's
# standby mode).
if command -v ocf-tester > /dev/null && "$HACTL" help | grep -q '^  promote' &&
   "$HACTL" help | grep -q '^  demote' && [ "$ROLES" = yes ]; then
	ocf-tester -n hacd-test -o config="$T/hacd.conf" -o hacd="$HACD" -o hactl="$HACTL" \
		-o pidfile="$T/hacd.pid" -o logfile="$T/hacd.log" -o force_promote=true \
		"$AGENT" > "$T/tester" 2>&1 || fail "ocf-tester with the real hactl: $(cat "$T/tester")"
	echo "ok - ocf-tester with the real hacd and hactl"
else
	echo "# skipped: ocf-tester with the real hactl (no roles in its status or no demote yet)"
fi

# 3. the contract. The fake hactl keeps "role state gen lag_gens lag_secs" per service
# in $T/roles/SERVICE and answers status/promote/demote like docs/cluster.md says
# (contract-hactl).
mkdir "$T/roles"
cp "$(dirname "$0")/contract-hactl" "$T/hactl"
chmod 755 "$T/hactl"
export OCF_RESKEY_hactl="$T/hactl"
echo "standby stopped 7 0 0" > "$T/roles/cache"
echo "standby stopped 7 0 0" > "$T/roles/web"
if command -v ocf-tester > /dev/null; then
	ocf-tester -n hacd-test -o config="$T/hacd.conf" -o hacd="$HACD" -o hactl="$T/hactl" \
		-o pidfile="$T/hacd.pid" -o logfile="$T/hacd.log" \
		"$AGENT" > "$T/tester" 2>&1 || fail "ocf-tester: $(cat "$T/tester")"
	grep -q 'passed all tests' "$T/tester" || fail "ocf-tester: $(cat "$T/tester")"
	echo "ok - ocf-tester passes (roles from the contract's hactl)"
else
	echo "# skipped: ocf-tester (not installed)"
fi

# Scores: printed by ocf_promotion_score through a fake crm_attribute.
mkdir "$T/sbin"
printf '#!/bin/sh\necho "$*" >> %s/scores\n' "$T" > "$T/sbin/crm_attribute"
chmod 755 "$T/sbin/crm_attribute"
export HA_SBIN_DIR="$T/sbin" OCF_RESKEY_crm_feature_set=3.16.2
score() {
	: > "$T/scores"
	run monitor "$1"
	[ "$(tail -n1 "$T/scores")" = "-p -v $2" ] ||
		fail "score: expected $2, got '$(cat "$T/scores")' for $(cat "$T"/roles/*)"
}
echo "standby stopped 0 0 0" > "$T/roles/cache"
echo "standby stopped 0 0 0" > "$T/roles/web"
run start 0
score 0 0
echo "standby stopped 40 0 0" > "$T/roles/cache"
score 0 0
echo "standby stopped 41 0 0" > "$T/roles/web"
score 0 999
echo "standby stopped 41 2 3.2" > "$T/roles/web"
score 0 975
echo "standby stopped 41 500 0" > "$T/roles/web"
score 0 1
echo "ok - scores: 0 without a consistent generation, 999 in sync, less when behind"

echo "standby stopped 0 0 0" > "$T/roles/cache"
run promote 1
grep -q 'no consistent generation of cache here' "$T/out" || fail "promote at gen 0: $(cat "$T/out")"
echo "standby stopped 41 0 0" > "$T/roles/cache"
echo "standby stopped 41 2 3.2" > "$T/roles/web"
echo "ok - no consistent generation: promote refused (hacd's reason shown)"

: > "$T/calls"
run promote 0
[ "$(sort "$T/calls")" = "$(printf 'promote cache \npromote web ')" ] ||
	fail "promote calls: $(cat "$T/calls")"
score 8 1000
echo "active failed 41 0 0" > "$T/roles/web"
run monitor 9
grep -q 'failed: web' "$T/out" || fail "failed master: $(cat "$T/out")"
echo "standby stopped 41 0 0" > "$T/roles/web"
run monitor 9
grep -q 'half promoted' "$T/out" || fail "half promoted: $(cat "$T/out")"
: > "$T/calls"
OCF_RESKEY_services=web OCF_RESKEY_force_promote=true run promote 0
[ "$(cat "$T/calls")" = "promote web 1" ] || fail "force promote: $(cat "$T/calls")"
run demote 0
OCF_RESKEY_services=nosuch run monitor 1
grep -q 'does not guard a service named nosuch' "$T/out" || fail "unknown service: $(cat "$T/out")"
touch "$T/refuse"
run promote 1
grep -q 'hactl promote cache exited 1: hactl: peer beta reports cache active' "$T/out" ||
	fail "refused promote: $(cat "$T/out")"
rm "$T/refuse"
echo "ok - promote/demote every service; failed and half-promoted masters are 9;"
echo "     a refused promote is an error with hactl's reason"

# An hactl without promote (today's) and a refusal: exit 1 with the reason.
# shellcheck disable=SC2016 # $3 and $@ are the fake's own
printf '#!/bin/sh\n[ "$3" = status ] && exec %s "$@"\necho "hactl: unknown command '"'"'$3'"'"'" >&2\nexit 64\n' \
	"$T/hactl" > "$T/old-hactl"
chmod 755 "$T/old-hactl"
OCF_RESKEY_hactl=$T/old-hactl run promote 1
grep -q 'has no promote command' "$T/out" || fail "old hactl: $(cat "$T/out")"
run stop 0
echo "ok - an hactl without promote: error 1 saying so"
