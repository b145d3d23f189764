#!/bin/sh
# The demo on a fresh Debian 12 machine (as root): install, build, probe the kernel,
# then checkpoint a running service, kill it, and bring it back with its state.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root" >&2; exit 77; }
[ "${HA_SKIP_DEPS:-}" = 1 ] || sh tests/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
hactl=build/agent/hactl
work=$(mktemp -d /tmp/hacd-demo.XXXXXX)
hacd_pid=
trap 'kill -9 $svc 2>/dev/null || true; [ -z "$hacd_pid" ] || kill $hacd_pid 2>/dev/null || true
      wait 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== hactl check: what this kernel offers"
$hactl check

echo
echo "== a stateful service: counts in memory, reports to $work/count.log"
python3 -c '
import os, sys, time
os.closerange(3, 4096)        # pipes inherited from whoever runs the demo are not dumpable yet
n = 0
state = [0] * 100000          # state that lives only in memory
while True:
    n += 1
    state[n % len(state)] = n
    with open(sys.argv[1], "a") as f:
        f.write("%d %d\n" % (n, sum(state) % 1000003))
    time.sleep(0.2)
' "$work/count.log" </dev/null >/dev/null 2>&1 &
svc=$!
sleep 1.5

echo "== parasite injection: seize, run our code inside, cure, release"
$hactl inject "$svc"

echo
echo "== checkpoint (the service is killed once its images are safe)"
$hactl dump -t "$svc" -D "$work/ckpt"
sleep 0.5
echo "   last line before the checkpoint: $(tail -n1 "$work/count.log")"
$hactl image verify "$work/ckpt"

echo "== restore: same pid, same memory, carries on counting"
$hactl restore -D "$work/ckpt" --detach
sleep 1.5
echo "   after restore:                  $(tail -n1 "$work/count.log")"
kill "$svc"

echo
echo "== the agent: hacd guards the counter, checkpointing it every 500 ms"
cat > "$work/hacd.conf" <<CONF
node = "demo"
state_dir = "$work/state"
control_socket = "$work/hactl.sock"
service "counter" {
  command = "$(pwd)/tests/integration/counter.py"
  interval = "500ms"
  keep = 20
  restart = "restore"
  checkpoint = "incremental"
}
CONF
build/agent/hacd -f "$work/hacd.conf" 2>"$work/hacd.log" &
hacd_pid=$!
export HACD_SOCKET="$work/hactl.sock"
out="$work/state/services/counter/output.log"
sleep 3
$hactl list counter -n 5
echo "   counter now: $(tail -n1 "$out")"

echo
echo "== kill -9 the service: hacd restores its newest generation"
pid=$($hactl --json status counter | sed -n 's/.*"pid":\([0-9]*\),"checkpoints".*/\1/p')
kill -9 "$pid"
echo "   killed pid $pid at counter $(tail -n1 "$out")"
sleep 1.5
echo "   counter now: $(tail -n1 "$out") (pid $($hactl --json status counter | sed -n 's/.*"pid":\([0-9]*\),"checkpoints".*/\1/p'))"
$hactl log counter -n 3

echo
echo "== hactl rollback: back to an older generation, and on from there"
old=$($hactl list counter | awk '$2 == "complete" {id = $1} END {print id}')
echo "   counter before: $(tail -n1 "$out")"
$hactl rollback counter -g "$old"
sleep 0.3
echo "   counter after:  $(tail -n1 "$out")"
echo
$hactl status
kill "$hacd_pid"
wait "$hacd_pid" || true
hacd_pid=
