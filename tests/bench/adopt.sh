#!/bin/bash
# The first generation after a restore, tracked on from the generation restored
# (hactl restore --track, engine/track-adopt.c) against the old way (a plain restore,
# then a new tracker: its first generation stores every page). bench_incremental_victim
# of MIB MiB dirtying PERMILLE per mille of its pages a second is tracked for 3
# generations, killed, and its newest generation restored both ways, each followed by
# COUNT generations at 1 s. Prints hactl's JSON lines; nothing asserted. As root:
#   bash tests/bench/adopt.sh [MIB] [PERMILLE] [COUNT] [BUILD_DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MIB=${1:-512}
RATE=${2:-10}
COUNT=${3:-3}
BUILD=${4:-$HERE/../../build}
HACTL=$BUILD/agent/hactl
VICTIM=$BUILD/tests/bench/bench_incremental_victim
T=$(mktemp -d /tmp/hacd-adopt.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

# Its fds: stdio only (an inherited odd fd would make it undumpable).
"$VICTIM" "$MIB" "$RATE" "$T/counters" < /dev/null > /dev/null 2>&1 3>&- 4>&- 5>&- &
V=$!
PIDS+=("$V")
sleep 2
echo "# $MIB MiB, $RATE per mille dirtied a second; load $(cut -d' ' -f1-3 /proc/loadavg)"
"$HACTL" dump -t "$V" -D "$T/store" --track --count 3 --interval 1000 > "$T/before.json"
kill -KILL "$V"
wait "$V" 2>/dev/null || true
G=$(ls "$T/store" | sed -n 's/^gen-0*\([0-9][0-9]*\)$/\1/p' | sort -n | tail -1)
cp -a "$T/store" "$T/store2"

for how in adopted plain; do
	s=$T/store
	[ $how = plain ] && s=$T/store2
	start=$(date +%s%N)
	if [ $how = adopted ]; then
		"$HACTL" restore -D "$s" --generation "$G" --pidns --detach --track --count "$COUNT" \
			--interval 1000 > "$T/$how.out"
	else
		"$HACTL" restore -D "$s" --generation "$G" --pidns --detach > "$T/$how.out"
		root=$(sed -n 's/.*service \([0-9]*\).*/\1/p' "$T/$how.out")
		"$HACTL" dump -t "$root" -D "$s" --track --count "$COUNT" --interval 1000 >> "$T/$how.out"
	fi
	init=$(sed -n 's/^restored pid \([0-9]*\).*/\1/p' "$T/$how.out")
	PIDS+=("$init")
	echo "# $how: restore of generation $G and $COUNT generations in $(( ($(date +%s%N) - start) / 1000000 )) ms"
	grep '^{' "$T/$how.out" | sed "s/^/$how /"
	kill -KILL "$init" 2>/dev/null || true
done
