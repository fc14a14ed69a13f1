/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the NBD handshake and request parsers (client/nbd_parse.c)
 * on what a hostile client could send. The input is read as a client
 * session: 4 client-flag bytes, then options (a 16-byte header whose
 * length field is honoured up to what the input holds; the magic is taken
 * from the input only when its first byte is odd, so most options get past
 * the magic check), and from the option that starts transmission on,
 * 28-byte request headers. Checks the parsers' promises: option replies
 * never pass the output buffer's end, and a request accepted for service
 * is aligned, inside the export and no larger than NBD_MAX_PAYLOAD.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/nbd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(int ok)
{
	if (!ok) {
		abort();
	}
}

static void fz_request(const struct nbd_export *x, const uint8_t *wire)
{
	struct nbd_req_hdr h;
	uint32_t payload = 0;
	uint64_t end;
	int ret;

	if (nbd_parse_request(wire, &h)) {
		return;
	}
	ret = nbd_check_request(x, &h, &payload);
	fz_check(ret == 0 || ret == -EINVAL || ret == -ENOSPC || ret == -EPERM || ret == -EMSGSIZE);
	fz_check(payload <= NBD_MAX_PAYLOAD);
	fz_check(payload == 0 || (h.type == NBD_CMD_WRITE && payload == h.length));
	if (ret == -EMSGSIZE) {
		fz_check(payload == 0);
	}
	(void)nbd_errno_to_wire(ret);
	if (ret) {
		return;
	}
	end = h.offset + h.length;
	switch (h.type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		fz_check(h.length > 0 && h.length <= NBD_MAX_PAYLOAD);
		/* fall through */
	case NBD_CMD_TRIM:
	case NBD_CMD_WRITE_ZEROES:
		fz_check(end >= h.offset && end <= x->size);
		fz_check(h.offset % NBD_BLOCK_MIN == 0 && h.length % NBD_BLOCK_MIN == 0);
		fz_check(!x->read_only || h.type == NBD_CMD_READ);
		break;
	case NBD_CMD_FLUSH:
	case NBD_CMD_DISC:
		break;
	default:
		fz_check(0); /* nothing else is served */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t obuf[NBD_OBUF_SIZE];
	struct nbd_export x = {
		.name = "vol",
		.description = "fuzz",
		.size = 64ull << 20,
	};
	bool no_zeroes = false, transmit = false;
	size_t at = 4;

	if (size < 5) {
		return 0;
	}
	x.read_only = data[0] & 1; /* the flag bytes double as the mode */
	if (nbd_parse_client_flags(data, &no_zeroes)) {
		return 0;
	}
	while (!transmit && size - at >= 16) {
		uint8_t hdr[16];
		uint32_t option, len;
		struct nbd_obuf out = {.buf = obuf, .cap = sizeof(obuf)};
		enum nbd_opt_action act;

		memcpy(hdr, data + at, sizeof(hdr));
		if (!(hdr[0] & 1)) {
			uint64_t magic = htobe64(NBD_OPTS_MAGIC);

			memcpy(hdr, &magic, sizeof(magic));
		}
		at += sizeof(hdr);
		if (nbd_parse_opt_hdr(hdr, &option, &len)) {
			return 0;
		}
		if (len > NBD_OPT_MAX_LEN) {
			act = nbd_opt_too_big(option, &out);
		} else {
			if (len > size - at) {
				len = (uint32_t)(size - at);
			}
			act = nbd_opt_handle(&x, no_zeroes, option, data + at, len, &out);
			at += len;
		}
		fz_check(out.len <= out.cap);
		fz_check(!out.overflow || act == NBD_OPT_ACT_CLOSE);
		if (act == NBD_OPT_ACT_CLOSE || act == NBD_OPT_ACT_CLOSE_AFTER) {
			return 0;
		}
		transmit = act == NBD_OPT_ACT_TRANSMIT;
	}
	for (; size - at >= 28; at += 28) {
		uint8_t wire[28];

		memcpy(wire, data + at, sizeof(wire));
		if (!(wire[0] & 1)) {
			uint32_t magic = htobe32(NBD_REQUEST_MAGIC);

			memcpy(wire, &magic, sizeof(magic));
		}
		fz_request(&x, wire);
	}
	return 0;
}
