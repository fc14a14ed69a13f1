/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: virtio_blk_parse() on arbitrary request layouts.
 * Input: byte 0 = readable entries (0..15), byte 1 = writable entries
 * (0..15), then one length byte pair per entry, then the bytes the
 * entries cover (the readable ones get the input's contents). Checks the
 * parser's promises: a parsed request only points inside the buffers,
 * reads/writes are aligned and inside the capacity, the status byte is in
 * a writable entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/virtio_blk.h"

#define FZ_CAP (64ull << 20)
#define FZ_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(int ok)
{
	if (!ok) {
		abort();
	}
}

static int fz_inside(const struct iovec *v, const uint8_t *lo, const uint8_t *hi)
{
	return (const uint8_t *)v->iov_base >= lo &&
	       (const uint8_t *)v->iov_base + v->iov_len <= hi;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct virtio_blk_geom g = {
		.capacity = FZ_CAP, .flush = true, .discard = true, .write_zeroes = true};
	struct iovec iov[2 * FZ_MAX];
	struct virtio_blk_req req;
	unsigned int out, in, n;
	size_t pos, total = 0;
	uint8_t *buf;

	if (size < 2) {
		return 0;
	}
	out = data[0] % FZ_MAX;
	in = data[1] % FZ_MAX;
	n = out + in;
	pos = 2;
	if (size < pos + 2 * n) {
		return 0;
	}
	for (unsigned int i = 0; i < n; i++) {
		iov[i].iov_len = (size_t)data[pos] | (size_t)(data[pos + 1] & 0x3f) << 8;
		pos += 2;
		total += iov[i].iov_len;
	}
	buf = malloc(total + 1);
	if (!buf) {
		return 0;
	}
	memset(buf, 0xa5, total + 1);
	memcpy(buf, data + pos, size - pos < total ? size - pos : total);
	total = 0;
	for (unsigned int i = 0; i < n; i++) {
		iov[i].iov_base = buf + total;
		total += iov[i].iov_len;
	}
	if (!virtio_blk_parse(&g, iov, out, in, &req)) {
		const uint8_t *lo = buf, *hi = buf + total;

		fz_check(req.status_ptr >= lo && req.status_ptr < hi);
		switch (req.op) {
		case VIRTIO_BLK_OP_READ:
		case VIRTIO_BLK_OP_WRITE: {
			uint64_t len = 0;

			fz_check(req.ndata > 0 && req.ndata <= BLK_DEV_IOV_MAX);
			for (int i = 0; i < req.ndata; i++) {
				fz_check(fz_inside(&req.data[i], lo, hi));
				len += req.data[i].iov_len;
			}
			fz_check(len == req.length);
			fz_check(req.offset % BLK_DEV_BLOCK == 0 &&
				 req.length % BLK_DEV_BLOCK == 0);
			fz_check(req.length && req.offset + req.length <= FZ_CAP);
			break;
		}
		case VIRTIO_BLK_OP_GET_ID:
			virtio_blk_fill_id(&req, "fuzz-serial-0123456789");
			break;
		case VIRTIO_BLK_OP_DISCARD:
		case VIRTIO_BLK_OP_WRITE_ZEROES:
			fz_check(req.nsegs >= 1 && req.nsegs <= VIRTIO_BLK_MAX_DWZ_SEGS);
			for (uint32_t i = 0; i < req.nsegs; i++) {
				fz_check(req.segs[i].length &&
					 req.segs[i].offset + req.segs[i].length <= FZ_CAP);
			}
			break;
		case VIRTIO_BLK_OP_NONE:
			fz_check(req.status == VIRTIO_BLK_S_IOERR ||
				 req.status == VIRTIO_BLK_S_UNSUPP);
			break;
		case VIRTIO_BLK_OP_FLUSH:
			break;
		}
		*req.status_ptr = 0;
	}
	free(buf);
	return 0;
}
