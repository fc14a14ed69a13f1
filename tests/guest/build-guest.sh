#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# build-guest.sh OUTDIR: build the test guest for the vhost-user-blk tests.
#
# OUTDIR/vmlinux          Debian 12's kernel as a plain ELF (QEMU boots it
#                         through its PVH entry: -kernel vmlinux)
# OUTDIR/initramfs.cpio   uncompressed newc cpio: busybox-static, the virtio
#                         modules, fio with its libraries, tests/guest/init
#
# The kernel package (linux-image-amd64's current dependency) is fetched
# with `apt-get download` into the cache directory ($KEEL_GUEST_CACHE,
# default OUTDIR/cache) and unpacked with dpkg-deb; nothing is installed on
# the host. Cached: when both outputs exist and OUTDIR/inputs.stamp matches
# the inputs (kernel package, these scripts, busybox, fio and its
# libraries), nothing is rebuilt. Safe to run concurrently (flock).
set -eu

if [ $# -ne 1 ]; then
	echo "usage: build-guest.sh OUTDIR" >&2
	exit 2
fi
OUT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${KEEL_GUEST_CACHE:-$OUT/cache}
mkdir -p "$CACHE"

for tool in apt-get apt-cache dpkg-deb cpio flock ldd /usr/bin/python3 /bin/busybox /usr/bin/fio; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "build-guest: missing $tool (scripts/install-deps.sh)" >&2
		exit 1
	fi
done

exec 9>"$OUT/.lock"
flock 9

# The kernel package linux-image-amd64 points at today.
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ] && ! ls "$CACHE"/linux-image-[0-9]*_amd64.deb >/dev/null 2>&1 &&
	[ "$(id -u)" -eq 0 ]; then
	# A fresh machine may have no package lists yet.
	echo "build-guest: apt-get update (no package lists)" >&2
	apt-get update -qq >&2 || true
	pkg=$(kernel_pkg)
fi
deb=""
if [ -n "$pkg" ]; then
	deb=$(ls "$CACHE/${pkg}"_*_amd64.deb 2>/dev/null | tail -1 || true)
	if [ -z "$deb" ]; then
		echo "build-guest: downloading $pkg" >&2
		(cd "$CACHE" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
		deb=$(ls "$CACHE/${pkg}"_*_amd64.deb | tail -1)
		# Older kernels' packages are of no further use (70 MB each).
		for old in "$CACHE"/linux-image-[0-9]*_amd64.deb; do
			[ "$old" = "$deb" ] || rm -f "$old"
		done
	fi
else
	# No package lists (apt-get update never ran): use what the cache has.
	deb=$(ls "$CACHE"/linux-image-[0-9]*_amd64.deb 2>/dev/null | tail -1 || true)
	if [ -z "$deb" ]; then
		echo "build-guest: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
		exit 1
	fi
fi

# Host files copied into the guest: busybox, fio, every library fio needs
# (ldd), libgcc_s (glibc dlopens it for pthread_cancel/unwinding) and the
# dynamic loader.
libs=$(ldd /usr/bin/fio | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
libgcc=$(ls /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 2>/dev/null | head -1)
hostfiles="/bin/busybox /usr/bin/fio $libs $libgcc"

stamp=$( {
	echo "format 1"
	basename "$deb"
	cat "$HERE/build-guest.sh" "$HERE/init" "$HERE/extract-vmlinux.py"
	for f in $hostfiles; do
		ls -lL --time-style=+%s "$f"
	done
} | sha256sum | cut -d' ' -f1)

if [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initramfs.cpio" ] &&
	[ "$(cat "$OUT/inputs.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "build-guest: $OUT up to date ($(basename "$deb"))" >&2
	exit 0
fi

work=$(mktemp -d "$OUT/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-guest: building from $(basename "$deb")" >&2

dpkg-deb -x "$deb" "$work/deb"
kver=$(ls "$work/deb/lib/modules" | head -1)
/usr/bin/python3 "$HERE/extract-vmlinux.py" "$work/deb/boot/vmlinuz-$kver" "$work/vmlinux" >&2

root=$work/root
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/lib/modules" \
	"$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
	ko=$(find "$work/deb/lib/modules/$kver" -name "$m.ko*" | head -1)
	if [ -z "$ko" ]; then
		echo "build-guest: module $m not in $(basename "$deb")" >&2
		exit 1
	fi
	case "$ko" in
	*.ko) cp "$ko" "$root/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$ko" >"$root/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -dcq "$ko" >"$root/lib/modules/$m.ko" ;;
	*) echo "build-guest: cannot unpack $ko" >&2; exit 1 ;;
	esac
done
cp /usr/bin/fio "$root/usr/bin/fio"
for f in $libs $libgcc; do
	# Same path as on the host (the loader's search path and fio's RUNPATH
	# then just work); symlinked names resolve to the real file's bytes.
	mkdir -p "$root$(dirname "$f")"
	cp -L "$f" "$root$f"
done
# Debian's loader path /lib64/ld-linux-x86-64.so.2 is a symlink on the
# host; cp -L made it a file. /lib and /usr/lib are real dirs in the guest.
cp "$HERE/init" "$root/init"
chmod 755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

mv "$work/vmlinux" "$OUT/vmlinux"
mv "$work/initramfs.cpio" "$OUT/initramfs.cpio"
echo "$stamp" >"$OUT/inputs.stamp"
echo "build-guest: $OUT/vmlinux $OUT/initramfs.cpio ($kver, initramfs $(du -m "$OUT/initramfs.cpio" | cut -f1) MiB)" >&2
