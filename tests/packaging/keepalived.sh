#!/bin/sh
# keepalived.sh HACD HACTL SCRIPT: the keepalived notify script.
#
# VRRP states map to the right hactl calls with the right arguments (checked through
# a fake hactl that records its argv, one argument a line, so a socket path with a
# blank stays one argument); bad input exits 64 without calling hactl; a failing
# hactl makes it exit 1 with the reason logged. Then against a real hacd: MASTER
# reaches hacd through the real hactl (today's hactl lacks promote: the script must
# say so; a newer one must answer for an unknown service with an error).
set -eu

HACD=$1
HACTL=$2
SCRIPT=$3
T=$(mktemp -d /tmp/hacd-ka.XXXXXX)
PID=

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
cleanup() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

cat > "$T/hactl" <<FAKE
#!/bin/sh
for a in "\$@"; do echo "\$a"; done >> "$T/calls"
echo -- >> "$T/calls"
[ -e "$T/fail" ] && { echo "hactl: peer beta reports it active" >&2; exit 1; }
exit 0
FAKE
chmod 755 "$T/hactl"

# expect "ARGS..." -- EXPECTED-RC EXPECTED-CALLS (argv lines, '--' after each call)
expect() {
	args=
	while [ "$1" != -- ]; do args="$args$1
"; shift; done
	shift
	: > "$T/calls"
	rc=0
	# shellcheck disable=SC2086 # split on newlines only, on purpose
	(IFS='
'; set -f; exec "$SCRIPT" --hactl "$T/hactl" $args) > "$T/out" 2>&1 || rc=$?
	[ "$rc" = "$1" ] || fail "$(echo "$args" | tr '\n' ' '): exit $rc, expected $1: $(cat "$T/out")"
	[ "$(cat "$T/calls")" = "$2" ] ||
		fail "$(echo "$args" | tr '\n' ' '): calls $(cat "$T/calls"), expected $2"
}

expect --service cache --service web --socket "$T/a b.sock" INSTANCE VI_1 MASTER 100 -- 0 \
"-s
$T/a b.sock
promote
cache
--
-s
$T/a b.sock
promote
web
--"
expect --service cache --force GROUP G1 BACKUP 50 -- 0 "demote
cache
--"
expect --service cache --config /etc/hacd/x.conf FAULT -- 0 "-f
/etc/hacd/x.conf
demote
cache
--"
expect --service cache --force MASTER -- 0 "promote
cache
--force
--"
expect --service cache INSTANCE VI_1 STOP 100 -- 0 ""
echo "ok - MASTER promotes, BACKUP/FAULT demote (never forced), STOP does nothing"

expect --service cache INSTANCE VI_1 WEIRD 100 -- 64 ""
expect MASTER -- 64 ""
expect --service ../etc MASTER -- 64 ""
expect --service cache INSTANCE MASTER -- 64 ""
expect --service cache --bogus MASTER -- 64 ""
echo "ok - unknown state, no service, a bad name, bad arguments: 64, hactl not run"

touch "$T/fail"
expect --service cache --service web MASTER -- 1 "promote
cache
--
promote
web
--"
grep -q 'cache: hactl promote failed (exit 1): hactl: peer beta reports it active' "$T/out" ||
	fail "no reason logged: $(cat "$T/out")"
rm "$T/fail"
echo "ok - a failing hactl: exit 1, every service still tried, the reason logged"

cat > "$T/hacd.conf" <<CONF
node = "alpha"
state_dir = "$T/state"
control_socket = "$T/run/hactl.sock"
service "cache" {
  command = "/bin/sleep 1000"
}
CONF
"$HACD" -f "$T/hacd.conf" 2> "$T/hacd.log" &
PID=$!
for _ in $(seq 100); do [ -S "$T/run/hactl.sock" ] && break; sleep 0.05; done
"$HACTL" status -s "$T/run/hactl.sock" > /dev/null || fail "hacd does not answer"
rc=0
"$SCRIPT" --hactl "$HACTL" --socket "$T/run/hactl.sock" --service nosuch \
	INSTANCE VI_1 MASTER 100 > "$T/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "real hactl, unknown service: exit $rc: $(cat "$T/out")"
if "$HACTL" help | grep -q '^  promote'; then
	grep -q 'nosuch: hactl promote failed' "$T/out" || fail "real hactl: $(cat "$T/out")"
	echo "ok - with the real hacd and hactl: an unknown service is refused, exit 1"
else
	grep -q 'has no promote command' "$T/out" || fail "real hactl: $(cat "$T/out")"
	echo "ok - with the real hactl (no promote yet): exit 1, says so"
fi
kill -TERM "$PID"
wait "$PID" || fail "hacd exit $?"
PID=
