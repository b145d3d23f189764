#!/bin/sh
# A zombie cannot be dumped: hactl says so and exits 1, cleanly (under the sanitizers a
# zombie root once reached the release of processes that were never prepared).
# usage: refuse-zombie.sh HACTL
set -u
hactl=$1
dir=$(mktemp -d /tmp/hacd-zombie.XXXXXX)
trap 'rm -rf "$dir"' EXIT
# The background sleep's parent execs into a sleep that never reaps it.
sh -c 'sleep 0.05 & echo $! > "$1"; exec sleep 5' sh "$dir/pid" &
holder=$!
i=0
while [ ! -s "$dir/pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
z=$(cat "$dir/pid")
i=0
while [ "$(cut -d' ' -f3 /proc/"$z"/stat 2>/dev/null)" != Z ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
"$hactl" dump -t "$z" -D "$dir/img" 2> "$dir/err"
rc=$?
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
cat "$dir/err"
[ $rc -eq 1 ] || { echo "FAIL: exit $rc, not 1"; exit 1; }
grep -q "pid $z is a zombie" "$dir/err" || { echo "FAIL: no 'pid $z is a zombie'"; exit 1; }
! grep -q "runtime error\|AddressSanitizer" "$dir/err" || { echo "FAIL: sanitizer report"; exit 1; }
[ ! -e "$dir/img" ] || { echo "FAIL: an image directory was left"; exit 1; }
echo "ok - zombie refused"
