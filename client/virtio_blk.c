/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio_blk: request parsing (see virtio_blk.h). The guest owns the
 * buffers and may rewrite them while we look: fields are copied into local
 * structures once and only the copies are checked and used.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "client/virtio_blk.h"

/* Copy @len bytes from the front of iov[*idx..n) into @buf, consuming them
 * (entries are advanced in place). false when the entries hold fewer. */
static bool iov_take(struct iovec *iov, unsigned int n, unsigned int *idx, void *buf, size_t len)
{
	uint8_t *dst = buf;

	while (len) {
		size_t k;

		if (*idx >= n) {
			return false;
		}
		k = iov[*idx].iov_len < len ? iov[*idx].iov_len : len;
		memcpy(dst, iov[*idx].iov_base, k);
		dst += k;
		len -= k;
		iov[*idx].iov_base = (uint8_t *)iov[*idx].iov_base + k;
		iov[*idx].iov_len -= k;
		if (!iov[*idx].iov_len) {
			(*idx)++;
		}
	}
	return true;
}

/* Drop empty entries of iov[start..start+n) in place; returns how many
 * remain (or -E2BIG past BLK_DEV_IOV_MAX) and their byte total. */
static int iov_compact(struct iovec *iov, unsigned int start, unsigned int n, uint64_t *total)
{
	unsigned int w = start;

	*total = 0;
	for (unsigned int i = start; i < start + n; i++) {
		if (!iov[i].iov_len) {
			continue;
		}
		if (w - start >= BLK_DEV_IOV_MAX) {
			return -E2BIG;
		}
		if (iov[i].iov_len > UINT64_MAX - *total) {
			return -E2BIG;
		}
		*total += iov[i].iov_len;
		iov[w++] = iov[i];
	}
	return (int)(w - start);
}

static uint64_t iov_bytes(const struct iovec *iov, unsigned int start, unsigned int end)
{
	uint64_t t = 0;

	for (unsigned int i = start; i < end; i++) {
		t += iov[i].iov_len;
	}
	return t;
}

/* A byte range given in sectors: aligned to the block and inside the
 * device, with no overflow on the way. */
static bool range_ok(const struct virtio_blk_geom *g, uint64_t sector, uint64_t bytes)
{
	uint64_t off;

	if (sector > UINT64_MAX / VIRTIO_BLK_SECTOR) {
		return false;
	}
	off = sector * VIRTIO_BLK_SECTOR;
	if (!bytes || off % BLK_DEV_BLOCK || bytes % BLK_DEV_BLOCK) {
		return false;
	}
	return off <= g->capacity && bytes <= g->capacity - off;
}

static int refuse(struct virtio_blk_req *req, uint8_t status)
{
	req->op = VIRTIO_BLK_OP_NONE;
	req->status = status;
	req->in_len = 1;
	return 0;
}

static int parse_data(const struct virtio_blk_geom *g, struct iovec *iov, unsigned int start,
		      unsigned int n, uint64_t sector, struct virtio_blk_req *req)
{
	uint64_t total;
	int cnt = iov_compact(iov, start, n, &total);

	if (cnt <= 0 || !range_ok(g, sector, total)) {
		return refuse(req, VIRTIO_BLK_S_IOERR);
	}
	req->data = &iov[start];
	req->ndata = cnt;
	req->offset = sector * VIRTIO_BLK_SECTOR;
	req->length = total;
	return 0;
}

static int parse_dwz(const struct virtio_blk_geom *g, struct iovec *iov, unsigned int idx,
		     unsigned int out_num, uint64_t out_rest, bool wz, struct virtio_blk_req *req)
{
	uint64_t n;

	if (!out_rest || out_rest % sizeof(struct virtio_blk_dwz_seg)) {
		return refuse(req, VIRTIO_BLK_S_IOERR);
	}
	n = out_rest / sizeof(struct virtio_blk_dwz_seg);
	if (n > VIRTIO_BLK_MAX_DWZ_SEGS) {
		return refuse(req, VIRTIO_BLK_S_UNSUPP);
	}
	for (uint32_t i = 0; i < n; i++) {
		struct virtio_blk_dwz_seg s;
		uint32_t allowed = wz ? VIRTIO_BLK_WZ_F_UNMAP : 0;

		if (!iov_take(iov, out_num, &idx, &s, sizeof(s))) {
			return refuse(req, VIRTIO_BLK_S_IOERR); /* buffers shrank under us */
		}
		if (s.flags & ~allowed) {
			return refuse(req, VIRTIO_BLK_S_UNSUPP);
		}
		if (s.num_sectors > VIRTIO_BLK_MAX_DWZ_SECTORS ||
		    !range_ok(g, s.sector, (uint64_t)s.num_sectors * VIRTIO_BLK_SECTOR)) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		req->segs[i].offset = s.sector * VIRTIO_BLK_SECTOR;
		req->segs[i].length = (uint64_t)s.num_sectors * VIRTIO_BLK_SECTOR;
	}
	req->nsegs = (uint32_t)n;
	return 0;
}

int virtio_blk_parse(const struct virtio_blk_geom *g, struct iovec *iov, unsigned int out_num,
		     unsigned int in_num, struct virtio_blk_req *req)
{
	struct virtio_blk_outhdr hdr;
	unsigned int last, idx = 0, n = out_num + in_num;
	uint64_t out_rest, in_rest;

	memset(req, 0, offsetof(struct virtio_blk_req, segs));
	req->nsegs = 0;
	/* The status byte: the last byte of the last non-empty writable entry. */
	last = n;
	while (last > out_num && !iov[last - 1].iov_len) {
		last--;
	}
	if (last == out_num) {
		return -EINVAL;
	}
	iov[last - 1].iov_len--;
	req->status_ptr = (uint8_t *)iov[last - 1].iov_base + iov[last - 1].iov_len;
	in_num = last - out_num;

	if (!iov_take(iov, out_num, &idx, &hdr, sizeof(hdr))) {
		return refuse(req, VIRTIO_BLK_S_IOERR);
	}
	out_rest = iov_bytes(iov, idx, out_num);
	in_rest = iov_bytes(iov, out_num, out_num + in_num);

	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
		if (out_rest) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		req->op = VIRTIO_BLK_OP_READ;
		parse_data(g, iov, out_num, in_num, hdr.sector, req);
		if (req->op == VIRTIO_BLK_OP_READ) {
			req->in_len =
				req->length < UINT32_MAX ? (uint32_t)req->length + 1 : UINT32_MAX;
		}
		return 0;
	case VIRTIO_BLK_T_OUT:
		if (in_rest) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		if (g->read_only) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		req->op = VIRTIO_BLK_OP_WRITE;
		req->in_len = 1;
		return parse_data(g, iov, idx, out_num - idx, hdr.sector, req);
	case VIRTIO_BLK_T_FLUSH:
		if (!g->flush) {
			return refuse(req, VIRTIO_BLK_S_UNSUPP);
		}
		if (out_rest || in_rest) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		req->op = VIRTIO_BLK_OP_FLUSH;
		req->in_len = 1;
		return 0;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t total;
		int cnt;

		if (out_rest) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		cnt = iov_compact(iov, out_num, in_num, &total);
		if (cnt <= 0) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		req->op = VIRTIO_BLK_OP_GET_ID;
		req->data = &iov[out_num];
		req->ndata = cnt;
		req->length = total;
		req->in_len = (uint32_t)((total < BLK_DEV_ID_LEN ? total : BLK_DEV_ID_LEN) + 1);
		return 0;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool wz = hdr.type == VIRTIO_BLK_T_WRITE_ZEROES;

		if (!(wz ? g->write_zeroes : g->discard)) {
			return refuse(req, VIRTIO_BLK_S_UNSUPP);
		}
		if (g->read_only || in_rest) {
			return refuse(req, VIRTIO_BLK_S_IOERR);
		}
		req->op = wz ? VIRTIO_BLK_OP_WRITE_ZEROES : VIRTIO_BLK_OP_DISCARD;
		req->in_len = 1;
		return parse_dwz(g, iov, idx, out_num, out_rest, wz, req);
	}
	default:
		return refuse(req, VIRTIO_BLK_S_UNSUPP);
	}
}

uint32_t virtio_blk_fill_id(struct virtio_blk_req *req, const char *serial)
{
	char id[BLK_DEV_ID_LEN] = {0};
	uint32_t done = 0;
	size_t want;

	memcpy(id, serial, strnlen(serial, sizeof(id)));
	want = req->length < sizeof(id) ? (size_t)req->length : sizeof(id);
	for (int i = 0; i < req->ndata && done < want; i++) {
		size_t k = req->data[i].iov_len < want - done ? req->data[i].iov_len : want - done;

		memcpy(req->data[i].iov_base, id + done, k);
		done += (uint32_t)k;
	}
	return done;
}

void virtio_blk_fill_config(const struct virtio_blk_geom *g, unsigned int num_queues,
			    struct virtio_blk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = g->capacity / VIRTIO_BLK_SECTOR;
	cfg->size_max = VIRTIO_BLK_SIZE_MAX;
	cfg->seg_max = VIRTIO_BLK_SEG_MAX;
	cfg->blk_size = BLK_DEV_BLOCK;
	cfg->physical_block_exp = 0; /* physical == logical == 4096 */
	cfg->min_io_size = BLK_DEV_BLOCK / VIRTIO_BLK_SECTOR;
	cfg->opt_io_size = 0;
	cfg->num_queues = (uint16_t)num_queues;
	cfg->max_discard_sectors = VIRTIO_BLK_MAX_DWZ_SECTORS;
	cfg->max_discard_seg = VIRTIO_BLK_MAX_DWZ_SEGS;
	cfg->discard_sector_alignment = BLK_DEV_BLOCK / VIRTIO_BLK_SECTOR;
	cfg->max_write_zeroes_sectors = VIRTIO_BLK_MAX_DWZ_SECTORS;
	cfg->max_write_zeroes_seg = VIRTIO_BLK_MAX_DWZ_SEGS;
	cfg->write_zeroes_may_unmap = 1;
}

uint8_t virtio_blk_status(int res)
{
	return res ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}
