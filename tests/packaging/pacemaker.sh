#!/bin/sh
# pacemaker.sh HACD AGENT HACTL DRIVER: a real single-node Pacemaker cluster (corosync
# and pacemakerd in the foreground, no systemd) runs the OCF agent as a promotable clone.
#
# Everything runs inside new mount, network and pid namespaces: the cluster's state
# directories, /run and /dev/shm are tmpfs there, its IPC (abstract sockets) and
# totem traffic stay on the namespace's own loopback, and when the test ends the
# namespace's init dies and takes every daemon with it. The agent starts and stops a
# real hacd and switches roles with the real hactl (a wrapper records each promote and
# demote with its exit status). hacd's node has a peer that never answers, so it starts
# standby. Shown: Pacemaker starts the clone unpromoted; while the score is 0 (no
# consistent generation) its promote attempts are refused, with hacd's reason in the
# failed actions; once the node holds one (a real `hactl dump` of a sleep, put in its
# catalog with the replica driver) the monitor raises the score and Pacemaker
# promotes it: hactl promote restores the sleep under hacd. Killed, the service is
# "failed" (restart = none): the monitor returns 9 and Pacemaker recovers it (demote,
# stop, start, promote: restored again).
# shellcheck disable=SC2317 # promoted, unpromoted, called: run through wait_for
set -eu

fail() {
	echo "FAIL: $*" >&2
	crm_mon -1 -A >&2 2>&1 || true
	exit 1
}

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds.
wait_for() {
	n=$1
	what=$2
	shift 2
	while ! "$@" > /dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || fail "timed out waiting for $what"
		sleep 1
	done
}

promoted() { crm_mon -1 | grep -q 'Promoted: \[ node1 \]'; }
unpromoted() { crm_mon -1 | grep -q 'Unpromoted: \[ node1 \]'; }
called() { grep -q "$1" "$T/calls"; }

inside() {
	ip link set lo up
	for d in /var/lib/pacemaker /var/log/pacemaker /var/lib/corosync /var/log/corosync \
		/run /dev/shm; do
		mount -t tmpfs tmpfs "$d"
	done
	chmod 1777 /dev/shm
	mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine \
		/var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
	chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
	# The agent as an installed provider "hacd", next to the stock ones.
	cp -a /usr/lib/ocf/resource.d "$T/rd"
	mkdir -p "$T/rd/hacd"
	cp "$AGENT" "$T/rd/hacd/hacd"
	mount --bind "$T/rd" /usr/lib/ocf/resource.d

	cat > "$T/corosync.conf" <<CONF
totem {
	version: 2
	cluster_name: hacdtest
	crypto_cipher: none
	crypto_hash: none
}
logging {
	to_stderr: yes
	to_logfile: no
	to_syslog: no
}
quorum {
	provider: corosync_votequorum
}
nodelist {
	node {
		name: node1
		nodeid: 1
		ring0_addr: 127.0.0.1
	}
}
CONF
	# shellcheck source=/dev/null # tests/integration/replica-lib.sh
	. "$HERE/../integration/replica-lib.sh"
	rep_ca "$T/tls" ca
	rep_cert "$T/tls" alpha ca
	cat > "$T/hacd.conf" <<CONF
node = "alpha"
state_dir = "$T/state"
control_socket = "$T/run/hactl.sock"
listen = "127.0.0.1:7795"
tls { ca = "$T/tls/ca.crt"; cert = "$T/tls/alpha.crt"; key = "$T/tls/alpha.key" }
peer "beta" { address = "127.0.0.2:7795" }
service "cache" {
  command = "/bin/sleep 1000"
  interval = "1h"
  restart = "none"
}
CONF
	cat > "$T/hactl" <<WRAP
#!/bin/sh
"$HACTL" "\$@"
rc=\$?
case " \$* " in *" promote "*|*" demote "*) echo "\$* rc=\$rc" >> "$T/calls" ;; esac
exit \$rc
WRAP
	chmod 755 "$T/hactl"
	: > "$T/calls"

	corosync -f -c "$T/corosync.conf" > "$T/corosync.log" 2>&1 &
	sleep 1
	PCMK_logfile=$T/pacemaker.log pacemakerd -f > "$T/pacemakerd.out" 2>&1 &
	# No fencing device in a test: the documentation says why a real cluster needs one.
	wait_for 60 "the CIB" cibadmin -Q
	wait_for 30 "stonith-enabled=false" crm_attribute -n stonith-enabled -v false
	wait_for 30 "no-quorum-policy=ignore" crm_attribute -n no-quorum-policy -v ignore
	wait_for 90 "node1 online" sh -c 'crm_mon -1 | grep -q "Online: \[ node1 \]"'
	echo "ok - corosync and pacemakerd up in the foreground, node1 online"

	cibadmin -C -o resources -X "
<clone id=\"hacd-clone\">
  <meta_attributes id=\"hacd-clone-meta\">
    <nvpair id=\"hacd-clone-promotable\" name=\"promotable\" value=\"true\"/>
    <nvpair id=\"hacd-clone-promoted-max\" name=\"promoted-max\" value=\"1\"/>
    <nvpair id=\"hacd-clone-notify\" name=\"notify\" value=\"true\"/>
  </meta_attributes>
  <primitive id=\"hacd\" class=\"ocf\" provider=\"hacd\" type=\"hacd\">
    <instance_attributes id=\"hacd-params\">
      <nvpair id=\"hacd-config\" name=\"config\" value=\"$T/hacd.conf\"/>
      <nvpair id=\"hacd-hacd\" name=\"hacd\" value=\"$HACD\"/>
      <nvpair id=\"hacd-hactl\" name=\"hactl\" value=\"$T/hactl\"/>
      <nvpair id=\"hacd-pidfile\" name=\"pidfile\" value=\"$T/hacd.pid\"/>
      <nvpair id=\"hacd-logfile\" name=\"logfile\" value=\"$T/hacd.log\"/>
    </instance_attributes>
    <operations>
      <op id=\"hacd-mon-p\" name=\"monitor\" interval=\"2s\" role=\"Promoted\" timeout=\"20s\"/>
      <op id=\"hacd-mon-u\" name=\"monitor\" interval=\"3s\" role=\"Unpromoted\" timeout=\"20s\"/>
    </operations>
  </primitive>
</clone>" || fail "cibadmin: resource not created"

	wait_for 60 "the clone to start" unpromoted
	pid=$(cat "$T/hacd.pid")
	[ "$(cat "/proc/$pid/comm")" = hacd ] || fail "no hacd behind the pid file"
	# Score 0 is the lowest a node can have and still be promoted: alone, it is, and
	# hactl promote refuses for want of a consistent generation.
	wait_for 60 "a promotion attempt" called "promote cache rc=1"
	promoted && fail "promoted without a consistent generation"
	called "promote cache rc=0" && fail "hactl promote succeeded without a generation"
	wait_for 30 "the refusal in the failed actions" sh -c \
		"crm_mon -1 | grep -q 'no consistent generation of cache on this node'"
	# The query itself can fail for a moment while attrd writes the attribute (seen
	# once under ASan): only a score read and not 0 is a failure.
	for _ in $(seq 50); do
		score=$(crm_attribute -N node1 -n master-hacd -l reboot -G -q 2> /dev/null) || score='?'
		[ "$score" = '?' ] || break
		sleep 0.2
	done
	[ "$score" = 0 ] || fail "promotion score '$score', expected 0"
	echo "ok - started (hacd $pid), score 0 without a consistent generation:"
	echo "     promote attempts refused with hacd's reason, not promoted"

	# A generation of the service: a sleep with no inherited descriptors, dumped (it
	# exits) and put in hacd's catalog as the replica driver puts received ones.
	python3 -c 'import os; os.closerange(3, 65536); os.execv("/bin/sleep", ["sleep", "1000"])' \
		< /dev/null > /dev/null 2>&1 &
	spid=$!
	sleep 0.3
	"$HACTL" dump -t "$spid" -D "$T/dump" > "$T/dump.log" 2>&1 ||
		fail "hactl dump of the sleep: $(cat "$T/dump.log")"
	wait "$spid" 2> /dev/null || true
	"$DRV" -f "$T/hacd.conf" add cache "$T/dump" > /dev/null || fail "adding the generation"
	wait_for 60 "the promotion" promoted
	called "promote cache rc=0" || fail "promoted without hactl promote: $(cat "$T/calls")"
	kill -0 "$spid" 2> /dev/null || fail "the sleep was not restored by the promotion"
	"$HACTL" -s "$T/run/hactl.sock" status cache --json | grep -q '"role":"active"' ||
		fail "hacd does not say active: $("$HACTL" -s "$T/run/hactl.sock" status cache)"
	echo "ok - a consistent generation raises the score; Pacemaker promotes (hactl promote"
	echo "     restored the service)"

	kill -KILL "$spid"
	wait_for 60 "the demotion of the failed master" called "demote cache rc=0"
	wait_for 60 "the new promotion" sh -c "[ \$(grep -c 'promote cache rc=0' '$T/calls') -ge 2 ]"
	wait_for 30 "promoted again" promoted
	kill -0 "$spid" 2> /dev/null || fail "the sleep was not restored again"
	grep -q 'active service(s) failed: cache' "$T/pacemaker.log" ||
		fail "the failure reason did not reach Pacemaker"
	echo "ok - a failed active service: monitor 9, Pacemaker demotes and promotes again"
	echo "   calls: $(tr '\n' ';' < "$T/calls")"
}

if [ "${1:-}" = --inside ]; then
	inside
	exit 0
fi

HACD=$1
AGENT=$2
HACTL=$3
DRV=$4
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in corosync pacemakerd crm_mon cibadmin crm_attribute; do
	command -v $tool > /dev/null || {
		echo "SKIP: $tool missing (apt-get install pacemaker corosync)"
		exit 0
	}
done
[ -r /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] || {
	echo "SKIP: resource-agents missing"
	exit 0
}
T=$(mktemp -d /tmp/hacd-pcmk.XXXXXX)
chmod 755 "$T"
trap 'rm -rf "$T"' EXIT
export HACD AGENT HACTL DRV HERE T
rc=0
unshare --mount --net --pid --fork --mount-proc --propagation private \
	sh "$HERE/pacemaker.sh" --inside || rc=$?
if [ $rc != 0 ]; then
	for f in corosync.log pacemaker.log hacd.log; do
		echo "--- $f (tail)" >&2
		tail -n 40 "$T/$f" >&2 || true
	done
fi
exit $rc
