#!/bin/sh
# The redis scenario as a benchmark: Debian's redis-server with 100,000 keys (or $1),
# dumped (killed) and restored; prints the load, dump and restore times and the image
# size, after checking every key with redis-cli. Run as root from the source tree:
#   sh tests/bench/redis.sh [KEYS] [BUILD_DIR]
set -eu
here=$(dirname "$0")
exec python3 "$here/../cr/real/redis_cr.py" "${2:-$here/../../build}/agent/hactl" --keys "${1:-100000}" --bench
