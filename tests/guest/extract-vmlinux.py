#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""extract-vmlinux.py BZIMAGE OUT: write the kernel ELF inside an x86 bzImage.

QEMU boots an uncompressed ELF vmlinux directly through its PVH entry point
(-kernel vmlinux, no firmware, no decompressor), which under TCG is several
times faster than a bzImage through SeaBIOS. The bzImage's setup header says
where the compressed payload is (boot protocol 2.08+: payload_offset and
payload_length, relative to the protected-mode code that starts after the
setup sectors); the payload's magic says how it is compressed. Python's
standard library handles xz, lzma, gzip and bzip2; zstd goes through the
zstd command. The result must be a 64-bit x86 ELF with a PVH entry note
(Xen ELF note 18, XEN_ELFNOTE_PHYS32_ENTRY), else QEMU cannot boot it.
Exit status 0 on success, 1 with a message otherwise.
"""
import bz2
import lzma
import os
import struct
import subprocess
import sys
import zlib

XEN_ELFNOTE_PHYS32_ENTRY = 18


def fail(msg):
    sys.stderr.write("extract-vmlinux: %s\n" % msg)
    sys.exit(1)


def payload_of(img):
    if len(img) < 0x260 or img[0x202:0x206] != b"HdrS":
        fail("not a bzImage (no HdrS setup header)")
    version = struct.unpack_from("<H", img, 0x206)[0]
    if version < 0x208:
        fail("boot protocol %#x has no payload_offset" % version)
    setup_sects = img[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", img, 0x248)
    start = pm_start + off
    if length == 0 or start + length > len(img):
        fail("payload %d+%d out of the image (%d bytes)" % (start, length, len(img)))
    return img[start:start + length]


def decompress(p):
    if p.startswith(b"\xfd7zXZ\x00"):
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return "xz", d.decompress(p)
    if p.startswith(b"\x5d\x00\x00"):
        d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        return "lzma", d.decompress(p)
    if p.startswith(b"\x1f\x8b"):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return "gzip", d.decompress(p)
    if p.startswith(b"BZh"):
        return "bzip2", bz2.BZ2Decompressor().decompress(p)
    if p.startswith(b"\x28\xb5\x2f\xfd"):
        # The payload ends with the 4-byte uncompressed size, which zstd
        # would take for a truncated next frame: ask for the first frame.
        r = subprocess.run(["zstd", "-dcq"], input=p, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if not r.stdout:
            fail("zstd failed: %s" % r.stderr.decode(errors="replace").strip())
        return "zstd", r.stdout
    fail("unknown payload compression (magic %s)" % p[:6].hex())


def check_elf(elf):
    if elf[:4] != b"\x7fELF":
        fail("decompressed payload is not an ELF file")
    if elf[4] != 2 or elf[5] != 1:
        fail("not a 64-bit little-endian ELF")
    e_machine = struct.unpack_from("<H", elf, 18)[0]
    if e_machine != 62:
        fail("ELF machine %d is not x86-64" % e_machine)
    e_phoff = struct.unpack_from("<Q", elf, 32)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", elf, 54)
    for i in range(e_phnum):
        ph = e_phoff + i * e_phentsize
        p_type = struct.unpack_from("<I", elf, ph)[0]
        if p_type != 4:  # PT_NOTE
            continue
        p_offset = struct.unpack_from("<Q", elf, ph + 8)[0]
        p_filesz = struct.unpack_from("<Q", elf, ph + 32)[0]
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    fail("ELF has no PVH entry note (kernel built without CONFIG_PVH?)")


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: extract-vmlinux.py BZIMAGE OUT\n")
        sys.exit(2)
    with open(sys.argv[1], "rb") as f:
        img = f.read()
    kind, elf = decompress(payload_of(img))
    check_elf(elf)
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(elf)
    os.rename(tmp, sys.argv[2])
    print("extract-vmlinux: %s payload, %d bytes of ELF" % (kind, len(elf)))


main()
