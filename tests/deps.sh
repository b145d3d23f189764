#!/bin/sh
# Installs everything hacd needs to build and test on Debian 12 (run as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential cmake pkg-config git ca-certificates python3 jq \
	libevent-dev libsqlite3-dev libprotobuf-c-dev protobuf-c-compiler libcap-dev \
	libnl-3-dev libnl-route-3-dev libnl-idiag-3-dev libconfuse-dev libzstd-dev \
	libxxhash-dev libssl-dev libcmocka-dev clang libclang-rt-14-dev iproute2 procps \
	resource-agents libxml2-utils shellcheck systemd go-md2man man-db groff-base \
	openssl \
	debhelper rpm cpio pacemaker corosync pacemaker-cli-utils keepalived \
	redis-server redis-tools curl nginx-light \
	>/dev/null
