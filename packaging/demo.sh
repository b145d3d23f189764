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
trap 'kill -9 $svc 2>/dev/null || true; rm -rf "$work"' EXIT

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
