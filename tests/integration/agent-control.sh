#!/bin/bash
# agent-control.sh HACD HACTL: hacd's control socket and config handling, end to end.
#
# Starts hacd on a temp config (state_dir and control_socket in a mkdtemp dir), then:
# status --json is valid JSON naming the services; garbage, unknown and oversized
# requests get error replies and hacd keeps serving; a status_group member reads the
# status but may not reload; anyone else is refused and logged; SIGHUP with a broken
# config keeps the running one; hacd -t exits 78 with file:line; SIGTERM exits 0 and
# removes the socket; sd_notify datagrams reach an abstract NOTIFY_SOCKET.
set -euo pipefail

HACD=$1
HACTL=$2
T=$(mktemp -d /tmp/hacd-it.XXXXXX)
# nobody must reach the socket's directory; the socket itself decides.
chmod 755 "$T"
SOCK=$T/run/hactl.sock
CONF=$T/hacd.conf
LOG=$T/hacd.log
PID=

fail() {
	echo "FAIL: $*" >&2
	echo "--- hacd log:" >&2
	cat "$LOG" >&2 || true
	exit 1
}

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" || true
	fi
	if [ -n "${NPID:-}" ] && kill -0 "$NPID" 2>/dev/null; then
		kill -KILL "$NPID" || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

write_conf() {
	cat > "$CONF" <<CONF
node = "alpha"
state_dir = "$T/state"
control_socket = "$SOCK"
status_group = "nogroup"
service "cache" {
  command = "/bin/sleep 1000"
  interval = "1s"
  keep = 5
}
service "web" {
  pidfile = "/run/web-it.pid"
  interval = "250ms"
}
CONF
}

# send_raw HEX...: one packet per argument to the socket, prints each reply's bytes
# (repr) on one line. The request encodings are written by hand: field 1 (version) is
# 08 NN, field 2 (type) is 10 NN.
send_raw() {
	${PY:-python3} - "$SOCK" "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
s.connect(sys.argv[1])
for arg in sys.argv[2:]:
    data = bytes(100000) if arg == "big" else bytes.fromhex(arg)
    s.send(data)
    print(repr(s.recv(65536)))
PY
}

wait_socket() {
	for _ in $(seq 100); do
		[ -S "$SOCK" ] && return 0
		kill -0 "$PID" 2>/dev/null || fail "hacd exited at start"
		sleep 0.05
	done
	fail "no socket at $SOCK"
}

status_ok() {
	"$HACTL" status -s "$SOCK" --json > "$T/status.json" || fail "status: exit $?"
	python3 -m json.tool "$T/status.json" > /dev/null || fail "status: not JSON"
	grep -q '"api_version":1' "$T/status.json" || fail "status: no api_version"
	grep -q '"name":"cache"' "$T/status.json" || fail "status: no service cache"
	grep -q '"name":"web"' "$T/status.json" || fail "status: no service web"
}

# sd_notify listener on an abstract socket ('@' in NOTIFY_SOCKET): one line per
# datagram, newlines inside it shown as '|'.
NOTIFY=hacd-it-$$
python3 - "$NOTIFY" "$T/notify" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "a") as f:
    while True:
        msg = s.recv(4096).decode()
        f.write(msg.replace("\n", "|") + "\n")
        f.flush()
        if msg.startswith("STOPPING=1"):
            break
PY
NPID=$!
for _ in $(seq 100); do [ -e "$T/notify.ready" ] && break; sleep 0.05; done

write_conf
"$HACD" -t -f "$CONF" > /dev/null || fail "hacd -t on a good config"
NOTIFY_SOCKET=@$NOTIFY WATCHDOG_USEC=200000 "$HACD" -f "$CONF" 2> "$LOG" &
PID=$!
wait_socket
[ "$(stat -c %a:%G "$SOCK")" = "660:nogroup" ] || fail "socket mode $(stat -c %a:%G "$SOCK")"
echo "ok - hacd started, socket 0660 root:nogroup"

status_ok
"$HACTL" status -s "$SOCK" | grep -q 'interval:250ms' || fail "text status"
HACD_SOCKET=$SOCK "$HACTL" status cache | grep -q 'cache:command' || fail "HACD_SOCKET"
"$HACTL" status -f "$CONF" web | grep -q 'web:pidfile' || fail "socket from the config"
echo "ok - status (json and text)"

out=$(send_raw ffffffff 08011063 080110 big 08011001)
[ "$(echo "$out" | wc -l)" = 5 ] || fail "missing replies: $out"
echo "$out" | sed -n 1p | grep -q 'not a CtlRequest' || fail "garbage: $out"
echo "$out" | sed -n 2p | grep -q 'unknown type 99' || fail "unknown type: $out"
echo "$out" | sed -n 3p | grep -q 'not a CtlRequest' || fail "truncated: $out"
echo "$out" | sed -n 4p | grep -q 'too large' || fail "oversized: $out"
echo "$out" | sed -n 5p | grep -q 'alpha' || fail "status after garbage: $out"
status_ok
echo "ok - malformed requests get error replies, hacd keeps serving"

# A status_group member: status yes, reload no.
setpriv --reuid=nobody --regid=nogroup --clear-groups "$HACTL" status -s "$SOCK" \
	| grep -q cache || fail "status_group member cannot read status"
# python3 from the system: a pyenv shim under /root is not nobody's to run.
out=$(PY="setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3" \
	send_raw 08011002)
echo "$out" | grep -q 'root only' || fail "status_group member may reload: $out"
echo "ok - status_group member reads the status, may not reload"

# Anyone else: the socket's mode already keeps them out; with CAP_DAC_OVERRIDE kept
# over the uid change they get through it, and SO_PEERCRED must refuse them.
rc=0
setpriv --reuid=nobody --regid=daemon --clear-groups --inh-caps=+dac_override \
	--ambient-caps=+dac_override "$HACTL" status -s "$SOCK" 2> "$T/err" || rc=$?
[ "$rc" = 1 ] || fail "outsider: exit $rc"
grep -q 'permission denied' "$T/err" || fail "outsider: $(cat "$T/err")"
grep -q 'refused uid 65534 pid' "$LOG" || fail "no log line for the refusal"
rc=0
setpriv --reuid=nobody --regid=daemon --clear-groups "$HACTL" status -s "$SOCK" \
	2> /dev/null || rc=$?
[ "$rc" = 69 ] || fail "outsider through the socket mode: exit $rc"
echo "ok - others are refused and logged"

cp "$CONF" "$T/good.conf"
printf 'node = "alpha"\nbogus_key = 1\n' > "$CONF"
rc=0
"$HACD" -t -f "$CONF" 2> "$T/err" || rc=$?
[ "$rc" = 78 ] || fail "hacd -t on a bad config: exit $rc"
grep -q "$CONF:2:" "$T/err" || fail "hacd -t: no file:line: $(cat "$T/err")"
echo "ok - hacd -t: 78 and file:line"

kill -HUP "$PID"
for _ in $(seq 100); do
	grep -q 'reload refused' "$LOG" && break
	sleep 0.05
done
grep -q "reload refused.*$CONF:2:" "$LOG" || fail "bad reload not logged with file:line"
status_ok
cp "$T/good.conf" "$CONF"
sed -i 's/keep = 5/keep = 7/' "$CONF"
kill -HUP "$PID"
for _ in $(seq 100); do
	grep -q '"keep":7' <("$HACTL" status -s "$SOCK" --json) && break
	sleep 0.05
done
grep -q '"keep":7' <("$HACTL" status -s "$SOCK" --json) || fail "good reload not applied"
echo "ok - SIGHUP: a bad config is refused, a good one applied"

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc"
[ ! -e "$SOCK" ] || fail "socket left behind"
rc=0
"$HACTL" status -s "$SOCK" 2> /dev/null || rc=$?
[ "$rc" = 3 ] || fail "status without hacd: exit $rc, not 3 (not running)"
echo "ok - SIGTERM: exit 0, socket removed, hactl exits 3"

wait "$NPID" || fail "notify listener"
for state in 'READY=1|STATUS=node alpha, 2 service' 'RELOADING=1|MONOTONIC_USEC=' \
	     'WATCHDOG=1' 'STOPPING=1'; do
	grep -q "^$state" "$T/notify" || fail "sd_notify: no $state in $(cat "$T/notify")"
done
echo "ok - sd_notify: READY, RELOADING, WATCHDOG, STOPPING"
