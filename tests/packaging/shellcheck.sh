#!/bin/sh
# SRCDIR: every shipped shell script and packaging test passes shellcheck
# (POSIX sh: they run under dash).
set -eu
cd "$1"
command -v shellcheck > /dev/null || {
	echo "SKIP: shellcheck missing (apt-get install shellcheck)"
	exit 0
}
shellcheck -s sh packaging/ocf/hacd packaging/keepalived/hacd-notify tests/packaging/*.sh \
	tests/packaging/contract-hactl
echo "ok - shellcheck: OCF agent, keepalived script, packaging tests"
