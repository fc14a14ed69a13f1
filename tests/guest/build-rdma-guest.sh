#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# build-rdma-guest.sh OUTDIR BUILD_DIR: the guest of the RDMA acceptance test
# (tests/guest/t_guest_rdma.py, docs/rdma.md).
#
# OUTDIR/vmlinux               from build-guest.sh (same kernel, same cache)
# OUTDIR/rdma-initramfs.cpio   busybox, iproute2's ip and rdma, Debian's
#                              rdma_rxe and its dependencies, the virtio
#                              disk modules, rdma-core's rxe provider, the
#                              Keel binaries of BUILD_DIR with every library
#                              they load, and tests/guest/rdma-init as /init
#
# Rebuilt when an input changes (OUTDIR/rdma-inputs.stamp). The kernel
# modules come from the package build-guest.sh downloaded.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: build-rdma-guest.sh OUTDIR BUILD_DIR" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
BUILD=$(cd "$2" && pwd)
CACHE=${KEEL_GUEST_CACHE:-$OUT/cache}

sh "$HERE/build-guest.sh" "$OUT"

for tool in /usr/sbin/ip /usr/bin/rdma ldd cpio; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "build-rdma-guest: missing $tool (iproute2; scripts/install-deps.sh)" >&2
		exit 1
	fi
done
provider=/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so
for f in "$provider" /etc/libibverbs.d/rxe.driver; do
	if [ ! -f "$f" ]; then
		echo "build-rdma-guest: missing $f (ibverbs-providers)" >&2
		exit 1
	fi
done
bins="$BUILD/mgmt/keel-mgmt $BUILD/server/keel-server $BUILD/mgmt/keelctl $BUILD/bench/keel-bench
$BUILD/client/keel-client $BUILD/tests/keel-vfront"
for b in $bins; do
	[ -x "$b" ] || { echo "build-rdma-guest: $b not built" >&2; exit 1; }
done
if ! nm -D "$BUILD/server/keel-server" 2>/dev/null | grep -q rdma_connect &&
	! ldd "$BUILD/server/keel-server" | grep -q librdmacm; then
	echo "build-rdma-guest: $BUILD was built without WITH_RDMA" >&2
	exit 1
fi
deb=$(ls "$CACHE"/linux-image-[0-9]*_amd64.deb | tail -1)
hostbins="/usr/sbin/ip /usr/bin/rdma"
libs=$(for b in $bins $hostbins $provider; do ldd "$b"; done |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
libgcc=$(ls /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 2>/dev/null | head -1)
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
failover net_failover virtio_net
crc32_generic crc32_pclmul ib_core ib_uverbs udp_tunnel ip6_udp_tunnel rdma_rxe ib_cm iw_cm
configfs rdma_cm rdma_ucm"

stamp=$( {
	echo "rdma format 1"
	basename "$deb"
	cat "$HERE/build-rdma-guest.sh" "$HERE/rdma-init"
	for f in /bin/busybox $bins $hostbins $provider $libs $libgcc; do
		ls -lL --time-style=+%s "$f"
	done
} | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/rdma-initramfs.cpio" ] &&
	[ "$(cat "$OUT/rdma-inputs.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "build-rdma-guest: $OUT/rdma-initramfs.cpio up to date" >&2
	exit 0
fi

exec 9>"$OUT/.rdma-lock"
flock 9
work=$(mktemp -d "$OUT/rdma-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/deb"
kver=$(ls "$work/deb/lib/modules" | head -1)
root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/lib/modules" \
	"$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/etc/libibverbs.d" "$root/keel" \
	"$root/run"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
: >"$root/lib/modules/order"
for m in $mods; do
	ko=$(find "$work/deb/lib/modules/$kver" -name "$m.ko*" -o \
		-name "$(echo "$m" | tr _ -).ko*" | head -1)
	if [ -z "$ko" ]; then
		if grep -q "/$m.ko" "$work/deb/lib/modules/$kver/modules.builtin" 2>/dev/null; then
			continue # built into the kernel
		fi
		echo "build-rdma-guest: module $m not in $(basename "$deb")" >&2
		exit 1
	fi
	case "$ko" in
	*.ko) cp "$ko" "$root/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$ko" >"$root/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -dcq "$ko" >"$root/lib/modules/$m.ko" ;;
	esac
	echo "$m" >>"$root/lib/modules/order"
done
for b in $bins; do
	cp "$b" "$root/keel/"
done
cp /usr/sbin/ip "$root/usr/sbin/ip"
cp /usr/bin/rdma "$root/usr/bin/rdma"
for f in $libs $libgcc $provider; do
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
done
cp /etc/libibverbs.d/rxe.driver "$root/etc/libibverbs.d/"
cp "$HERE/rdma-init" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$work/rdma-initramfs.cpio"
mv "$work/rdma-initramfs.cpio" "$OUT/rdma-initramfs.cpio"
echo "$stamp" >"$OUT/rdma-inputs.stamp"
echo "build-rdma-guest: $OUT/rdma-initramfs.cpio ($(du -m "$OUT/rdma-initramfs.cpio" | cut -f1) MiB)" >&2
