/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the data-path header decoder (proto/frame.c), which
 * sees every byte a TCP peer sends before authentication. The first 88
 * input bytes are a wire header; unless the input's first byte is odd,
 * magic, version and header crc are set right so the decoder's later
 * checks (opcode, flags, status, sizes, alignment, per-opcode rules) get
 * the fuzzed fields. The rest of the input is the payload. Checks: a
 * header that decodes obeys the limits docs/wire-format.md promises and
 * re-encodes to the same bytes; the payload crc check agrees with crc32c
 * computed here; status mapping round-trips.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(int ok)
{
	if (!ok) {
		abort();
	}
}

static void fz_fixup(uint8_t *w)
{
	uint32_t magic = htole32(KP_MAGIC), crc;
	uint16_t version = htole16(KP_VERSION);

	memcpy(w + offsetof(struct kp_wire_hdr, magic), &magic, sizeof(magic));
	memcpy(w + offsetof(struct kp_wire_hdr, version), &version, sizeof(version));
	memset(w + offsetof(struct kp_wire_hdr, hdr_crc), 0, sizeof(crc));
	crc = htole32(crc32c(0, w, KP_HDR_SIZE));
	memcpy(w + offsetof(struct kp_wire_hdr, hdr_crc), &crc, sizeof(crc));
}

static void fz_payload(const struct kp_hdr *h, const uint8_t *p, size_t n)
{
	const uint8_t *data = p + h->meta_len, *crcs;
	uint32_t nblk = h->data_len / KP_BLOCK, b, want;
	bool ok = true;

	if (n < kp_payload_len(h)) {
		return;
	}
	crcs = data + h->data_len;
	for (b = 0; b < nblk; b++) {
		memcpy(&want, crcs + 4 * b, sizeof(want));
		ok &= crc32c(0, data + (size_t)b * KP_BLOCK, KP_BLOCK) == le32toh(want);
	}
	fz_check(kp_data_verify(data, h->data_len, (const uint32_t *)crcs) == ok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t w[KP_HDR_SIZE], again[KP_HDR_SIZE];
	const char *reason = NULL;
	struct kp_hdr h;
	int ret;

	if (size < KP_HDR_SIZE) {
		return 0;
	}
	memcpy(w, data, KP_HDR_SIZE);
	if (!(w[0] & 1)) {
		fz_fixup(w);
	}
	ret = kp_hdr_decode(w, &h, &reason);
	if (ret) {
		fz_check(ret == -EBADMSG || ret == -EPROTONOSUPPORT || ret == -EPROTO ||
			 ret == -EMSGSIZE || ret == -EINVAL);
		fz_check(reason && *reason);
		return 0;
	}
	fz_check(h.version == KP_VERSION);
	fz_check(h.meta_len <= KP_MAX_META && h.data_len <= KP_MAX_DATA);
	fz_check(h.data_len % KP_BLOCK == 0);
	fz_check(h.offset % KP_BLOCK == 0 && h.length % KP_BLOCK == 0);
	fz_check((uint64_t)h.offset + h.length <= UINT32_MAX);
	fz_check(!(h.flags & ~(uint32_t)KP_F__ALL));
	fz_check(kp_payload_len(&h) <= KP_MAX_META + KP_MAX_DATA + KP_MAX_DATA / KP_BLOCK * 4);
	fz_check(strcmp(kp_opcode_name(h.opcode), "UNKNOWN") != 0);
	if (h.flags & KP_F_REPLY) {
		fz_check(h.status >= KP_S_OK && h.status < KP_S__MAX);
		fz_check(kp_status_from_errno(kp_status_to_errno(h.status)) == h.status);
		fz_check(h.status == KP_S_OK || h.data_len == 0);
	} else {
		fz_check(h.status == KP_S_OK);
		if (h.opcode == KP_OP_WRITE) {
			fz_check(h.data_len == h.length && h.length > 0);
		}
		if (h.opcode == KP_OP_READ) {
			fz_check(h.data_len == 0 && h.length > 0 && h.length <= KP_MAX_DATA);
		}
	}
	kp_hdr_encode(&h, again);
	fz_check(memcmp(again, w, KP_HDR_SIZE) == 0);
	fz_payload(&h, data + KP_HDR_SIZE, size - KP_HDR_SIZE);
	return 0;
}
