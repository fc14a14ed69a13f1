#!/bin/bash
# QEMU 7.2 (TCG) guest checks for the vhost-user-blk backend.
#
#   tests/vhost/qemu-guest.sh prepare      kernel (Debian's, decompressed) + busybox initramfs
#   tests/vhost/qemu-guest.sh basic        guest writes 4 MiB, reads it back; host compares
#   tests/vhost/qemu-guest.sh mq           the same with 2 queues and 2 vCPUs
#   tests/vhost/qemu-guest.sh reboot       guest reboots (QEMU stops and restarts the rings)
#                                          and finds its data
#   tests/vhost/qemu-guest.sh reconnect [N]  4 parallel guest writers; keel-export is
#                                          SIGSTOPped + SIGKILLed N times (default 3) and
#                                          restarted; QEMU reconnects (reconnect=1) and
#                                          every guest verify must pass
#   tests/vhost/qemu-guest.sh reconnect-mq [N]  the same with 2 queues and 2 vCPUs
#
# Environment: VH_GUEST_DIR (kernel, initramfs; default /tmp/vh-guest),
# KEEL_EXPORT (default build/tests/keel-export), VH_WORK (temp dir).
# Exit status 0 = pass, 1 = fail (a missing tool or kernel is a failure).
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
G=${VH_GUEST_DIR:-/tmp/vh-guest}
EXP=${KEEL_EXPORT:-$src/build/tests/keel-export}
W=${VH_WORK:-$(mktemp -d /tmp/vh-qemu.XXXXXX)}
mkdir -p "$W"
SOCK=$W/vh.sock
IMG=$W/vh.img
MODS="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"
EXP_PID=
QEMU_PID=

fail() { echo "qemu-guest: FAIL: $*" >&2; cleanup; exit 1; }
cleanup() {
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
	[ -n "$EXP_PID" ] && kill "$EXP_PID" 2>/dev/null
	wait 2>/dev/null
	QEMU_PID= EXP_PID=
}
trap cleanup EXIT

prepare() {
	mkdir -p "$G" && cd "$G" || fail "cannot use $G"
	if [ ! -f vmlinux ]; then
		pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
		[ -n "$pkg" ] || fail "no linux-image package found"
		apt-get download "$pkg" >/dev/null 2>&1 || fail "apt-get download $pkg"
		rm -rf x && dpkg-deb -x "$pkg"_*.deb x || fail "dpkg-deb"
		/usr/bin/python3 - x/boot/vmlinuz-* vmlinux <<'EOF' || fail "cannot decompress the kernel"
import sys, lzma, zlib
data = open(sys.argv[1], 'rb').read()
for magic, kind in ((b'\xfd7zXZ\x00', 'xz'), (b'\x1f\x8b\x08', 'gz')):
    i = data.find(magic)
    while i >= 0:
        try:
            out = (lzma.LZMADecompressor().decompress(data[i:]) if kind == 'xz'
                   else zlib.decompressobj(31).decompress(data[i:]))
            if out[:4] == b'\x7fELF':
                open(sys.argv[2], 'wb').write(out)
                sys.exit(0)
        except Exception:
            pass
        i = data.find(magic, i + 1)
sys.exit(1)
EOF
	fi
	K=$(ls x/lib/modules)
	R=$G/root
	rm -rf "$R" && mkdir -p "$R"/{bin,proc,sys,dev,mods,tmp}
	cp /usr/bin/busybox "$R/bin/busybox" || fail "busybox-static missing"
	for a in sh mount insmod dd cmp cat echo sleep poweroff seq head sed sync ls wc blkdiscard reboot printf; do
		ln -s busybox "$R/bin/$a"
	done
	for m in $MODS; do cp "$(find x/lib/modules/$K -name "$m.ko")" "$R/mods/" || fail "$m.ko"; done
	cat > "$R/init" <<'EOT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do insmod /mods/$m.ko; done
mode=$(sed -n 's/.*vhmode=\([a-z]*\).*/\1/p' /proc/cmdline)
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
echo "VH: size $(cat /sys/block/vda/size) lbs $(cat /sys/block/vda/queue/logical_block_size) mq $(ls /sys/block/vda/mq | wc -l)"
seq 1 1000000 | head -c 4194304 > /tmp/pat
case "$mode" in
basic)
  dd if=/tmp/pat of=/dev/vda bs=64k seek=16 conv=fsync 2>/dev/null
  echo 3 > /proc/sys/vm/drop_caches
  dd if=/dev/vda of=/tmp/rb bs=64k skip=16 count=64 iflag=direct 2>/dev/null
  cmp /tmp/pat /tmp/rb && echo "VH: RESULT PASS" || echo "VH: RESULT FAIL"
  blkdiscard -o 0 -l 1048576 /dev/vda && echo "VH: DISCARD OK"
  # past the end must fail, not wrap
  dd if=/dev/vda of=/dev/null bs=4096 skip=$(( $(cat /sys/block/vda/size) / 8 )) count=1 iflag=direct 2>/dev/null
  echo "VH: past-end read copied $(dd if=/dev/vda bs=4096 skip=$(( $(cat /sys/block/vda/size) / 8 )) count=1 iflag=direct 2>/dev/null | wc -c) bytes"
  ;;
reboot)
  # first boot: write, mark, reboot (QEMU stops and restarts the rings);
  # second boot: the data must be there and I/O must still work
  if [ "$(dd if=/dev/vda bs=8 count=1 iflag=direct 2>/dev/null)" = "REBOOTED" ]; then
    dd if=/dev/vda of=/tmp/rb bs=64k skip=16 count=64 iflag=direct 2>/dev/null
    cmp /tmp/pat /tmp/rb && echo "VH: RESULT PASS" || echo "VH: RESULT FAIL"
  else
    dd if=/tmp/pat of=/dev/vda bs=64k seek=16 oflag=direct 2>/dev/null
    printf REBOOTED | dd of=/dev/vda bs=4096 conv=sync,fsync 2>/dev/null
    echo "VH: rebooting"
    reboot -f
  fi
  ;;
loop)
  w() {
    k=$1; n=0; fail=0; off=$(( 256 + k * 64 ))
    while [ $n -lt 12 ]; do
      dd if=/tmp/pat of=/dev/vda bs=64k seek=$off oflag=direct 2>/dev/null || { echo "VH: w$k write error $n"; fail=1; }
      dd if=/dev/vda of=/tmp/rb$k bs=64k skip=$off count=64 iflag=direct 2>/dev/null || { echo "VH: w$k read error $n"; fail=1; }
      cmp -s /tmp/pat /tmp/rb$k || { echo "VH: w$k mismatch $n"; fail=1; }
      n=$((n+1)); echo "VH: w$k iter $n"
    done
    echo "VH: w$k done fail=$fail"
  }
  w 0 & w 1 & w 2 & w 3 &
  wait
  ;;
esac
sync
poweroff -f
EOT
	chmod +x "$R/init"
	(cd "$R" && find . | cpio -o -H newc 2>/dev/null) > "$G/initrd.cpio" || fail "cpio"
	echo "qemu-guest: prepared $G/vmlinux $G/initrd.cpio"
}

start_export() { # queues
	"$EXP" --file "$IMG" --size 256M --vhost "$SOCK" --queues "$1" >> "$W/export.log" 2>&1 &
	EXP_PID=$!
	for i in $(seq 1 50); do [ -S "$SOCK" ] && return; sleep 0.1; done
	fail "keel-export did not start (see $W/export.log)"
}

run_qemu() { # mode queues smp reconnect timeout
	local chardev="socket,id=c0,path=$SOCK"
	[ "$4" = 1 ] && chardev="$chardev,reconnect=1"
	timeout "$5" qemu-system-x86_64 -M q35 -m 512M \
		-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
		-accel tcg,thread=multi $3 -nographic ${VH_NO_REBOOT--no-reboot} \
		-kernel "$G/vmlinux" -initrd "$G/initrd.cpio" \
		-append "console=ttyS0 quiet panic=-1 vhmode=$1" \
		-chardev "$chardev" -device vhost-user-blk-pci,chardev=c0,num-queues="$2" \
		> "$W/qemu.log" 2>&1
}

check_prereq() {
	for t in qemu-system-x86_64 busybox cpio; do command -v $t >/dev/null || fail "$t missing"; done
	[ -x "$EXP" ] || fail "$EXP missing (build first)"
	[ -f "$G/vmlinux" ] && [ -f "$G/initrd.cpio" ] || fail "no guest in $G: run '$0 prepare'"
}

basic() { # queues smp
	check_prereq
	rm -f "$IMG"
	start_export "$1"
	run_qemu basic "$1" "$2" 0 180
	grep "VH:" "$W/qemu.log"
	grep -q "VH: RESULT PASS" "$W/qemu.log" || fail "guest check (see $W/qemu.log)"
	grep -q "mq $1" "$W/qemu.log" || fail "guest does not see $1 queues"
	grep -q "size 524288 lbs 4096" "$W/qemu.log" || fail "wrong geometry"
	grep -q "VH: DISCARD OK" "$W/qemu.log" || fail "guest discard failed"
	grep -q "past-end read copied 0 bytes" "$W/qemu.log" || fail "read past the end"
	seq 1 1000000 | head -c 4194304 | cmp - <(dd if="$IMG" bs=64k skip=16 count=64 2>/dev/null) \
		|| fail "host copy differs from what the guest wrote"
	kill "$EXP_PID"; wait "$EXP_PID"; EXP_PID=
	grep "vhost:" "$W/export.log" | tail -1
	grep -q "discards [1-9]" "$W/export.log" || fail "no discard reached the backend"
	grep -q "bad_requests 0 io_errors 0 protocol_errors 0" "$W/export.log" || fail "errors counted"
	echo "qemu-guest: PASS ($W)"
}

# Requests marked in flight in the inflight region keel-export @1 maps.
inflight_count() {
	/usr/bin/python3 - "$1" <<'EOF'
import sys, struct
pid = sys.argv[1]
n = 0
try:
    for line in open(f"/proc/{pid}/maps"):
        if "keel-vhost-inflight" not in line:
            continue
        rng = line.split()[0]
        data = open(f"/proc/{pid}/map_files/{rng}", "rb").read()
        num = struct.unpack_from("<H", data, 10)[0]
        n += sum(1 for i in range(num) if 16 + 16 * i < len(data) and data[16 + 16 * i] == 1)
except OSError:
    pass
print(n)
EOF
}

reconnect() { # kills queues smp
	check_prereq
	caught=0
	rm -f "$IMG"
	start_export "$2"
	run_qemu loop "$2" "$3" 1 400 &
	QEMU_PID=$!
	for k in $(seq 1 "$1"); do
		for i in $(seq 1 200); do
			[ "$(grep -c iter "$W/qemu.log" 2>/dev/null)" -ge $((k * 10)) ] && break
			sleep 0.3
		done
		# Stop it when the shared inflight region shows requests taken
		# but not answered (retry a while), so the restart must resubmit.
		n=0
		for try in $(seq 1 60); do
			kill -STOP "$EXP_PID"
			n=$(inflight_count "$EXP_PID")
			[ "$n" -gt 0 ] && break
			kill -CONT "$EXP_PID"
			sleep 0.0$((RANDOM % 9 + 1))
		done
		caught=$((caught + n))
		kill -KILL "$EXP_PID"; wait "$EXP_PID" 2>/dev/null
		echo "qemu-guest: keel-export killed with $n requests in flight after $(grep -c iter "$W/qemu.log") guest iterations"
		sleep 1
		rm -f "$SOCK"
		start_export "$2"
	done
	wait "$QEMU_PID"; QEMU_PID=
	grep -E "done fail|error|mismatch" "$W/qemu.log"
	grep -E "resubmitting" "$W/export.log"
	[ "$(grep -c 'done fail=0' "$W/qemu.log")" = 4 ] || fail "guest writers failed (see $W/qemu.log)"
	resub=$(sed -n 's/.*resubmitting \([0-9]*\) in-flight.*/\1/p' "$W/export.log" | awk '{s+=$1} END {print s+0}')
	echo "qemu-guest: $caught requests in flight at the kills, $resub resubmitted"
	# (a request caught between its used-ring update and the region update
	# is done, not resubmitted: count only that some were)
	[ "$caught" -gt 0 ] || fail "no kill caught a request in flight"
	[ "$resub" -gt 0 ] || fail "nothing resubmitted after the restarts"
	kill "$EXP_PID"; wait "$EXP_PID"; EXP_PID=
	echo "qemu-guest: PASS ($W)"
}

reboot_check() {
	check_prereq
	rm -f "$IMG"
	start_export 1
	VH_NO_REBOOT= run_qemu reboot 1 "-smp 1,maxcpus=2" 0 240
	grep "VH:" "$W/qemu.log"
	grep -q "VH: rebooting" "$W/qemu.log" || fail "first boot did not reboot"
	grep -q "VH: RESULT PASS" "$W/qemu.log" || fail "data lost across the guest reboot"
	kill "$EXP_PID"; wait "$EXP_PID"; EXP_PID=
	grep -q "protocol_errors 0" "$W/export.log" || fail "protocol errors"
	echo "qemu-guest: PASS ($W)"
}

case "${1:-}" in
prepare) prepare ;;
reboot) reboot_check ;;
basic) basic 1 "-smp 1,maxcpus=2" ;;
mq) basic 2 "-smp 2" ;;
reconnect) reconnect "${2:-3}" 1 "-smp 1,maxcpus=2" ;;
reconnect-mq) reconnect "${2:-3}" 2 "-smp 2" ;;
*) sed -n '2,19p' "$0"; exit 2 ;;
esac
