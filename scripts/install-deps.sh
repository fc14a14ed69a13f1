#!/bin/sh
# Install Keel's build and test dependencies from Debian 12's archive.
# Idempotent: does nothing when everything is present. Needs root (or sudo).
# prometheus: for promtool (cluster_ft_t_metrics checks /metrics with it).
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
liburing-dev libprotobuf-c-dev protobuf-c-compiler uuid-dev libcmocka-dev
libibverbs-dev librdmacm-dev libisal-dev libsqlite3-dev libmicrohttpd-dev
libjansson-dev libcurl4-openssl-dev libinih-dev libssl-dev
fio python3 procps iproute2 util-linux mount curl python3-cinderclient python3-openstackclient
qemu-system-x86 qemu-utils qemu-block-extra busybox-static libnbd-bin cpio zstd
prometheus"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing:$missing" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
