#!/bin/sh
# The test command (README, CI): install dependencies, build twice (plain, and with
# ASan+UBSan on the host side), run every test in both. Run as root: the checkpoint
# tests ptrace, create namespaces and restore PIDs.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run-all.sh: run as root (checkpoint tests need it)" >&2; exit 77; }
[ "${HA_SKIP_DEPS:-}" = 1 ] || sh tests/deps.sh
jobs=$(nproc)
status=0
for variant in plain asan; do
	dir=build-ci-$variant
	san=OFF
	[ $variant = asan ] && san=ON
	echo "=== $variant build ($dir)"
	cmake -S . -B $dir -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHA_SANITIZE=$san >/dev/null
	cmake --build $dir -j "$jobs" >/dev/null
	echo "=== $variant tests"
	(cd $dir && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j1 --timeout 300) || status=1
done
exit $status
