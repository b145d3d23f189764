#!/bin/sh
# Replication figures (issue 7), printed, never asserted: run as root from the source
# tree after a (non-sanitized) build:   sh tests/bench/replica.sh [BUILD_DIR] [MIB]
#  - the memcpy reference of this machine (bench_memcpy);
#  - replication throughput over the veth link between two network namespaces: one
#    MIB-MiB generation (default 256) of a real process shipped over TLS 1.3, then the
#    catch-up and link-cut figures (tests/integration/replica-netns.sh);
#  - page-store generations (tests/integration/replica-store.sh): bytes shipped for a
#    full generation and an incremental one, and a transfer resumed after a kill;
#  - the redis scenario: lag under a writer (generations and seconds), catch-up after a
#    10 s link cut, and the failover time from `hactl failover` to redis answering
#    PING (tests/integration/replica-redis.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$here/../../build}" && pwd)
MIB=${2:-256}
"$B/tests/bench/bench_memcpy"
echo "--- one ${MIB} MiB generation over the veth link (TLS 1.3):"
REP_MIB=$MIB sh -c "'$here/../integration/replica-netns.sh' '$B/tests/integration/hacd-replica-test' \
	'$B/agent/hactl' '$B/tests/integration/replica-victim'" 2>&1 |
	grep -E "^(replication|catch-up|link cut)" || echo "(replica-netns.sh failed)"
echo "--- page-store generations of a ${MIB} MiB process (loopback, TLS 1.3):"
REP_MIB=$MIB sh -c "'$here/../integration/replica-store.sh' '$B/tests/integration/hacd-replica-test' \
	'$B/agent/hactl' '$B/tests/integration/replica-victim'" 2>&1 |
	grep -E "^(alpha's packs|resume|bytes shipped|divergence|PASS|FAIL)" || echo "(replica-store.sh failed)"
echo "--- redis, 100,000 keys and a writer, failed over:"
unshare --pid --fork --mount-proc "$here/../integration/replica-redis.sh" "$B/agent/hacd" \
	"$B/agent/hactl" "$B/tests/integration/hacd-replica-test" 2>&1 |
	grep -E "^(loaded|lag|link cut|failover|redis:|keys|alpha back|PASS|FAIL)" || true
