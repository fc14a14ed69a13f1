/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The malicious-guest corpus cases: each does one bad thing and returns
 * its outcome (vf_corpus.h); the table gives each its accepted outcomes.
 * Request cases run on a fully set up connection, message cases right
 * after feature negotiation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tests/vfront/vf_corpus.h"

/* ---- request cases ---- */

static enum vf_outcome vf_c_desc_outside(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);

	rd[1].addr = VF_FAR_GPA;
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_desc_in_gap(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);

	/* Between the end of region 0 and region 1 at 4 GiB. */
	rd[1].addr = c->dev.mem.region[0].size + (1u << 20);
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_desc_straddles(struct vf_corpus *c)
{
	const struct vf_mem_region *r = &c->dev.mem.region[c->dev.mem.nregions - 1];
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 8192);

	rd[1].addr = r->gpa + r->size - 4096; /* half inside the last region */
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_straddles_regions(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 8192);

	/* Starts 4 KiB before the end of region 0: contiguous in our address
	 * space, not in guest-physical space. */
	rd[1].addr = c->dev.mem.region[0].size - 4096;
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_write_from_outside(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, 0, 4096);

	rd[1].addr = VF_FAR_GPA;
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_addr_overflow(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);

	rd[1].addr = UINT64_MAX - 2047; /* addr + len wraps to 2047 */
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_hdr_overflow(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);

	rd[0].addr = UINT64_MAX - 7;
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_desc_loop(struct vf_corpus *c)
{
	struct vf_rd rd[3];

	vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	rd[1].next = 0; /* header -> data -> header -> ... */
	return vf_raw(c, 0, rd, 2);
}

static enum vf_outcome vf_c_desc_self_loop(struct vf_corpus *c)
{
	struct vf_rd rd[3];

	vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	rd[1].next = 1;
	return vf_raw(c, 0, rd, 2);
}

static enum vf_outcome vf_c_chain_wraps_queue(struct vf_corpus *c)
{
	struct vf_rd rd[VF_CORPUS_QSIZE];
	unsigned int n = VF_CORPUS_QSIZE;

	vf_std_chain(c, rd, VF_BLK_T_IN, 0, 0);
	for (unsigned int i = 1; i < n; i++) {
		rd[i] = (struct vf_rd){.addr = vf_corpus_gpa(c, c->data) + (i % 16) * 512,
				       .len = 512,
				       .flags = VF_DESC_F_NEXT | VF_DESC_F_WRITE,
				       .next = (uint16_t)(i + 1)};
	}
	rd[n - 1].next = 0; /* every descriptor of the queue, then around again */
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_next_out_of_range(struct vf_corpus *c)
{
	struct vf_rd rd[3];

	vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	rd[1].next = 40000;
	rd[1].abs_next = true;
	return vf_raw(c, 0, rd, 2);
}

static bool vf_need_indirect(struct vf_corpus *c)
{
	if (!(c->dev.features & (1ull << VF_F_RING_INDIRECT_DESC))) {
		vf_corpus_note(c, "INDIRECT_DESC not offered");
		return false;
	}
	return true;
}

static enum vf_outcome vf_c_indirect_too_long(struct vf_corpus *c)
{
	/* header, 256 data descriptors of 512 bytes (a valid 128 KiB read),
	 * status: 258 > queue size 256. The table lives in c->data. */
	unsigned int n = VF_CORPUS_QSIZE + 2;
	struct vf_desc *t = (struct vf_desc *)c->data;
	struct vf_rd rd[3], ring;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	vf_std_chain(c, rd, VF_BLK_T_IN, 0, 0);
	t[0] = (struct vf_desc){.addr = rd[0].addr, .len = 16, .flags = VF_DESC_F_NEXT, .next = 1};
	for (unsigned int i = 1; i + 1 < n; i++) {
		t[i] = (struct vf_desc){.addr = vf_corpus_gpa(c, c->status) + 512,
					.len = 512,
					.flags = VF_DESC_F_NEXT | VF_DESC_F_WRITE,
					.next = (uint16_t)(i + 1)};
	}
	t[n - 1] = (struct vf_desc){.addr = rd[1].addr, .len = 1, .flags = VF_DESC_F_WRITE};
	ring = (struct vf_rd){.addr = vf_corpus_gpa(c, c->data),
			      .len = n * sizeof(struct vf_desc),
			      .flags = VF_DESC_F_INDIRECT};
	return vf_raw(c, 0, &ring, 1);
}

static enum vf_outcome vf_c_indirect_len(struct vf_corpus *c)
{
	struct vf_rd rd[3], ring;
	unsigned int n;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	ring = vf_indirect(c, rd, n, n * 16 - 8);
	return vf_raw(c, 0, &ring, 1);
}

static enum vf_outcome vf_c_indirect_zero(struct vf_corpus *c)
{
	struct vf_rd rd[3], ring;
	unsigned int n;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	ring = vf_indirect(c, rd, n, 0);
	return vf_raw(c, 0, &ring, 1);
}

static enum vf_outcome vf_c_indirect_outside(struct vf_corpus *c)
{
	struct vf_rd rd[3], ring;
	unsigned int n;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	ring = vf_indirect(c, rd, n, n * 16);
	ring.addr = VF_FAR_GPA;
	return vf_raw(c, 0, &ring, 1);
}

static enum vf_outcome vf_c_indirect_huge(struct vf_corpus *c)
{
	struct vf_rd rd[3], ring;
	unsigned int n;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	ring = vf_indirect(c, rd, n, 0xfffffff0u); /* 268 M entries */
	return vf_raw(c, 0, &ring, 1);
}

static enum vf_outcome vf_c_indirect_nested(struct vf_corpus *c)
{
	struct vf_rd rd[3], ring;
	unsigned int n;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	/* The table's data entry is itself indirect, pointing at the table. */
	rd[1] = (struct vf_rd){.addr = vf_corpus_gpa(c, c->itab),
			       .len = n * 16,
			       .flags = VF_DESC_F_INDIRECT | VF_DESC_F_NEXT,
			       .next = 2};
	ring = vf_indirect(c, rd, n, n * 16);
	return vf_raw(c, 0, &ring, 1);
}

static enum vf_outcome vf_c_indirect_and_next(struct vf_corpus *c)
{
	struct vf_rd rd[3], ring[2];
	unsigned int n;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	ring[0] = vf_indirect(c, rd, n, n * 16);
	ring[0].flags |= VF_DESC_F_NEXT; /* both INDIRECT and NEXT */
	ring[0].next = 1;
	ring[1] = rd[2];
	return vf_raw(c, 0, ring, 2);
}

static enum vf_outcome vf_c_indirect_loop(struct vf_corpus *c)
{
	struct vf_rd rd[3], ring;
	unsigned int n;

	if (!vf_need_indirect(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	rd[1].next = 0;
	ring = vf_indirect(c, rd, n, n * 16);
	return vf_raw(c, 0, &ring, 1);
}

static enum vf_outcome vf_c_hdr_short(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, 0, 4096);

	vf_bad_payload(c, 4096);
	rd[0].len = 8; /* type and ioprio, no sector */
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_hdr_writable(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, 0, 4096);

	vf_bad_payload(c, 4096);
	rd[0].flags |= VF_DESC_F_WRITE; /* header device-writable */
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_no_header(struct vf_corpus *c)
{
	struct vf_rd rd[1] = {
		{.addr = vf_corpus_gpa(c, c->status), .len = 1, .flags = VF_DESC_F_WRITE}};

	return vf_raw(c, 0, rd, 1);
}

static enum vf_outcome vf_c_status_zero(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);

	rd[2].len = 0;
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_status_readonly(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);

	rd[2].flags = 0; /* status device-readable */
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_read_into_readonly(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	enum vf_outcome oc;

	memset(c->data, VF_RO_MARKER, 4096);
	rd[1].flags &= (uint16_t)~VF_DESC_F_WRITE;
	oc = vf_raw(c, 0, rd, n);
	for (unsigned int i = 0; i < 4096; i++) {
		if (c->data[i] != VF_RO_MARKER) {
			vf_corpus_note(c, "the device wrote into a device-readable buffer");
			return VF_OC_BAD;
		}
	}
	return oc;
}

static enum vf_outcome vf_c_write_from_writable(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, 0, 4096);

	vf_bad_payload(c, 4096);
	rd[1].flags |= VF_DESC_F_WRITE;
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_sector_overflow(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, UINT64_MAX - 7, 4096);

	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_sector_overflow_write(struct vf_corpus *c)
{
	/* sector * 512 wraps to 0: the canary. */
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, 1ull << 55, 4096);

	vf_bad_payload(c, 4096);
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_sector_wrap_write(struct vf_corpus *c)
{
	/* sector + length wraps past 2^64 sectors. */
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, UINT64_MAX - 3, 4096);

	vf_bad_payload(c, 4096);
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_past_end(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_IN, c->capacity / VF_SECTOR, 4096);

	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_straddles_end(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, c->capacity / VF_SECTOR - 8, 8192);

	vf_bad_payload(c, 8192);
	return vf_raw(c, 0, rd, n);
}

static bool vf_need_4k(struct vf_corpus *c)
{
	if (c->blk_size < 4096) {
		vf_corpus_note(c, "device block size %u: 512-byte I/O is valid", c->blk_size);
		return false;
	}
	return true;
}

static enum vf_outcome vf_c_unaligned_sector(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n;

	if (!vf_need_4k(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_OUT, 1, 4096);
	vf_bad_payload(c, 4096);
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_unaligned_len(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n;

	if (!vf_need_4k(c)) {
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, VF_BLK_T_OUT, 0, 4096 + 512);
	vf_bad_payload(c, 8192);
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_len_not_sector(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, VF_BLK_T_OUT, 0, 4096 + 100);

	vf_bad_payload(c, 8192);
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_unknown_type(struct vf_corpus *c)
{
	struct vf_rd rd[3];
	unsigned int n = vf_std_chain(c, rd, 0x7fff, 0, 4096);

	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_secure_erase(struct vf_corpus *c)
{
	/* Type 14 (secure erase), never negotiated by us. */
	struct vf_rd rd[3];
	unsigned int n;

	c->segs[0] = (struct vf_blk_dwz_seg){.sector = 0, .num_sectors = 8};
	n = vf_std_chain(c, rd, 14, 0, 16);
	rd[1].addr = vf_corpus_gpa(c, c->segs);
	return vf_raw(c, 0, rd, n);
}

/* Discard (@type 11) or write-zeroes (13) with @nseg segments from c->segs
 * (data length @len, default nseg * 16). */
static enum vf_outcome vf_dwz(struct vf_corpus *c, uint32_t type, uint32_t len)
{
	unsigned int bit = type == VF_BLK_T_DISCARD ? VF_F_BLK_DISCARD : VF_F_BLK_WRITE_ZEROES;
	struct vf_rd rd[3];
	unsigned int n;

	if (!(c->dev.features & (1ull << bit))) {
		vf_corpus_note(c, "%s not offered",
			       type == VF_BLK_T_DISCARD ? "DISCARD" : "WRITE_ZEROES");
		return VF_OC_SKIP;
	}
	n = vf_std_chain(c, rd, type, 0, len ? len : 16);
	rd[1].addr = vf_corpus_gpa(c, c->segs);
	if (!len) {
		/* header and status only: no segment at all */
		rd[0].next = 1;
		rd[1] = rd[2];
		n = 2;
	}
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_c_wz_no_segment(struct vf_corpus *c)
{
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 0);
}

static enum vf_outcome vf_c_wz_seg_len(struct vf_corpus *c)
{
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = 0, .num_sectors = 8};
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 20);
}

static enum vf_outcome vf_c_wz_too_many(struct vf_corpus *c)
{
	uint32_t max = c->dev.cfg.max_write_zeroes_seg ? c->dev.cfg.max_write_zeroes_seg : 1;
	uint32_t nseg = max + 1;

	if (nseg > 4096 / sizeof(struct vf_blk_dwz_seg)) {
		vf_corpus_note(c, "max_write_zeroes_seg %u too large to exceed", max);
		return VF_OC_SKIP;
	}
	for (uint32_t i = 0; i < nseg; i++) {
		c->segs[i] = (struct vf_blk_dwz_seg){.sector = i * 8, .num_sectors = 8};
	}
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, nseg * 16);
}

static enum vf_outcome vf_c_wz_past_end(struct vf_corpus *c)
{
	c->segs[0] =
		(struct vf_blk_dwz_seg){.sector = c->capacity / VF_SECTOR - 8, .num_sectors = 16};
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 16);
}

static enum vf_outcome vf_c_wz_wrap(struct vf_corpus *c)
{
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = UINT64_MAX - 7, .num_sectors = 16};
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 16);
}

static enum vf_outcome vf_c_wz_byte_wrap(struct vf_corpus *c)
{
	/* sector * 512 wraps to 0: the canary. */
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = 1ull << 55, .num_sectors = 8};
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 16);
}

static enum vf_outcome vf_c_wz_unknown_flags(struct vf_corpus *c)
{
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = 0, .num_sectors = 8, .flags = 0x80000000u};
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 16);
}

static enum vf_outcome vf_c_wz_too_big(struct vf_corpus *c)
{
	uint32_t max = c->dev.cfg.max_write_zeroes_sectors;

	if (!max || max > UINT32_MAX - 8 || (uint64_t)max + 8 > c->capacity / VF_SECTOR) {
		vf_corpus_note(
			c, "max_write_zeroes_sectors %u cannot be exceeded inside the device", max);
		return VF_OC_SKIP;
	}
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = 0, .num_sectors = (max + 8) & ~7u};
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 16);
}

static enum vf_outcome vf_c_wz_unaligned(struct vf_corpus *c)
{
	if (!vf_need_4k(c)) {
		return VF_OC_SKIP;
	}
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = 1, .num_sectors = 7};
	return vf_dwz(c, VF_BLK_T_WRITE_ZEROES, 16);
}

static enum vf_outcome vf_c_discard_unmap_flag(struct vf_corpus *c)
{
	/* The unmap flag is only defined for write-zeroes. */
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = 0, .num_sectors = 8, .flags = 1};
	return vf_dwz(c, VF_BLK_T_DISCARD, 16);
}

static enum vf_outcome vf_c_discard_past_end(struct vf_corpus *c)
{
	c->segs[0] = (struct vf_blk_dwz_seg){.sector = c->capacity / VF_SECTOR, .num_sectors = 8};
	return vf_dwz(c, VF_BLK_T_DISCARD, 16);
}

static enum vf_outcome vf_c_discard_too_many(struct vf_corpus *c)
{
	uint32_t max = c->dev.cfg.max_discard_seg ? c->dev.cfg.max_discard_seg : 1;
	uint32_t nseg = max + 1;

	if (nseg > 4096 / sizeof(struct vf_blk_dwz_seg)) {
		vf_corpus_note(c, "max_discard_seg %u too large to exceed", max);
		return VF_OC_SKIP;
	}
	for (uint32_t i = 0; i < nseg; i++) {
		c->segs[i] = (struct vf_blk_dwz_seg){.sector = i * 8, .num_sectors = 8};
	}
	return vf_dwz(c, VF_BLK_T_DISCARD, nseg * 16);
}

static enum vf_outcome vf_c_avail_idx_jump(struct vf_corpus *c)
{
	struct vf_vq *vq = &c->dev.vq[0];

	/* More new entries than the queue holds. */
	vq->avail_idx = (uint16_t)(vq->avail_idx + vq->size + 5);
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	vf_vq_kick(vq);
	return vf_raw_wait(c, 0);
}

static enum vf_outcome vf_c_avail_bad_head(struct vf_corpus *c)
{
	struct vf_vq *vq = &c->dev.vq[0];

	vq->avail->ring[vq->avail_idx & (vq->size - 1)] = (uint16_t)(vq->size + 10);
	vq->avail_idx++;
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	vf_vq_kick(vq);
	return vf_raw_wait(c, 0);
}

#define VF_DROP_REQUESTS 32u

static enum vf_outcome vf_c_drop_with_inflight(struct vf_corpus *c)
{
	/* 32 requests in flight on both queues, then the frontend goes away
	 * without waiting: reads of the canary (the device writes guest
	 * memory after we are gone) and 4 KiB writes just past it. Every
	 * request has its own header and status byte. */
	uint8_t *wbuf = (uint8_t *)c->itab;

	memset(wbuf, 0x3c, 4096);
	for (unsigned int i = 0; i < VF_DROP_REQUESTS; i++) {
		struct vf_blk_req_hdr *h = c->hdr + i;
		bool write = i % 2;
		struct vf_rd rd[3] = {
			{.addr = vf_corpus_gpa(c, h),
			 .len = 16,
			 .flags = VF_DESC_F_NEXT,
			 .next = 1},
			{.addr = write ? vf_corpus_gpa(c, wbuf) : vf_corpus_gpa(c, c->data),
			 .len = write ? 4096 : VF_CORPUS_DATA,
			 .flags = VF_DESC_F_NEXT | (write ? 0 : VF_DESC_F_WRITE),
			 .next = 2},
			{.addr = vf_corpus_gpa(c, c->status + 64 + i),
			 .len = 1,
			 .flags = VF_DESC_F_WRITE},
		};
		int ret;

		*h = (struct vf_blk_req_hdr){.type = write ? VF_BLK_T_OUT : VF_BLK_T_IN,
					     .sector = write ? (VF_CANARY_HEAD + 2 + i) *
								       (VF_PAT_BLOCK / VF_SECTOR)
							     : 0};
		ret = vf_raw_submit_nowait(c, i % c->dev.num_queues, rd, 3);
		if (ret) {
			vf_corpus_note(c, "submit: %s", strerror(-ret));
			return ret == -ECONNRESET ? VF_OC_CLOSED : VF_OC_BAD;
		}
	}
	close(c->dev.sock);
	c->dev.sock = -1;
	return VF_OC_CLOSED;
}

/* ---- message cases ---- */

static enum vf_outcome vf_m_mem_zero_regions(struct vf_corpus *c)
{
	return vf_probe_mem_table(c, NULL, 0, 0);
}

static enum vf_outcome vf_m_mem_too_many(struct vf_corpus *c)
{
	struct vf_mem_region r[VF_MAX_REGIONS + 1];
	uint64_t chunk = VF_CORPUS_MEM / (VF_MAX_REGIONS + 1) & ~4095ull;

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	for (unsigned int i = 0; i < VF_MAX_REGIONS + 1; i++) {
		r[i] = (struct vf_mem_region){.gpa = i * chunk,
					      .size = chunk,
					      .uaddr = (uintptr_t)c->dev.mem.base + i * chunk,
					      .mmap_offset = i * chunk};
	}
	return vf_probe_mem_table(c, r, VF_MAX_REGIONS + 1, VF_MAX_REGIONS + 1);
}

static enum vf_outcome vf_m_mem_huge_count(struct vf_corpus *c)
{
	/* nregions far beyond what the payload carries. */
	struct vf_mem_table_hdr h = {.nregions = 0x10000000u};
	int fd;

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	fd = c->dev.mem.fd;
	return vf_probe(c, VF_SET_MEM_TABLE, &h, sizeof(h), &fd, 1);
}

static enum vf_outcome vf_m_mem_size_zero(struct vf_corpus *c)
{
	struct vf_mem_region r = {.gpa = 0, .size = 0, .uaddr = 0x10000000, .mmap_offset = 0};

	return vf_probe_mem_table(c, &r, 1, 1);
}

static enum vf_outcome vf_m_mem_overlap(struct vf_corpus *c)
{
	struct vf_mem_region r[2];

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	r[0] = (struct vf_mem_region){
		.gpa = 0, .size = 32 << 20, .uaddr = (uintptr_t)c->dev.mem.base, .mmap_offset = 0};
	r[1] = (struct vf_mem_region){.gpa = 16 << 20,
				      .size = 32 << 20,
				      .uaddr = (uintptr_t)c->dev.mem.base + (32 << 20),
				      .mmap_offset = 32 << 20};
	return vf_probe_mem_table(c, r, 2, 2);
}

static enum vf_outcome vf_m_mem_offset_past_fd(struct vf_corpus *c)
{
	struct vf_mem_region r = {.gpa = 0,
				  .size = 1 << 20,
				  .uaddr = 0x10000000,
				  .mmap_offset = VF_CORPUS_MEM + (1 << 20)};

	return vf_probe_mem_table(c, &r, 1, 1);
}

static enum vf_outcome vf_m_mem_size_past_fd(struct vf_corpus *c)
{
	/* mmap would succeed; touching the tail would SIGBUS the backend. */
	struct vf_mem_region r = {
		.gpa = 0, .size = VF_CORPUS_MEM * 4, .uaddr = 0x10000000, .mmap_offset = 0};

	return vf_probe_mem_table(c, &r, 1, 1);
}

static enum vf_outcome vf_m_mem_beyond_fd_used(struct vf_corpus *c)
{
	/* Region 1 declared 64 MiB longer than the memfd behind it. If the
	 * backend takes the table, a request whose header lies in that tail
	 * follows: a backend that did not check the region against the
	 * descriptor's size dies of SIGBUS there. */
	struct vf_mem_region r[2];
	enum vf_outcome oc;
	struct vf_rd rd[3];
	unsigned int n;
	uint64_t tail;
	int ret;

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	memcpy(r, c->dev.mem.region, sizeof(r));
	tail = r[1].gpa + r[1].size + (1 << 20);
	r[1].size += 64 << 20;
	oc = vf_probe_mem_table(c, r, 2, 2);
	if (oc != VF_OC_OK) {
		return oc;
	}
	ret = vf_corpus_start_queues(c);
	if (ret) {
		vf_corpus_note(c, "queue setup after the table: %s", strerror(-ret));
		return ret == -ECONNRESET ? VF_OC_CLOSED : VF_OC_BAD;
	}
	/* The header: parsed by the backend's own loads, not by a syscall
	 * that would turn the fault into EFAULT. */
	n = vf_std_chain(c, rd, VF_BLK_T_IN, 0, 4096);
	rd[0].addr = tail;
	return vf_raw(c, 0, rd, n);
}

static enum vf_outcome vf_m_mem_offset_wrap(struct vf_corpus *c)
{
	struct vf_mem_region r = {
		.gpa = 0, .size = 1 << 20, .uaddr = 0x10000000, .mmap_offset = UINT64_MAX - 4095};

	return vf_probe_mem_table(c, &r, 1, 1);
}

static enum vf_outcome vf_m_mem_gpa_wrap(struct vf_corpus *c)
{
	struct vf_mem_region r = {
		.gpa = UINT64_MAX - 4095, .size = 1 << 20, .uaddr = 0x10000000, .mmap_offset = 0};

	return vf_probe_mem_table(c, &r, 1, 1);
}

static enum vf_outcome vf_m_mem_no_fd(struct vf_corpus *c)
{
	struct vf_mem_region r = {.gpa = 0, .size = 1 << 20, .uaddr = 0x10000000};

	return vf_probe_mem_table(c, &r, 1, 0);
}

static enum vf_outcome vf_m_mem_fd_count(struct vf_corpus *c)
{
	struct vf_mem_region r[2] = {
		{.gpa = 0, .size = 1 << 20, .uaddr = 0x10000000},
		{.gpa = 1 << 20, .size = 1 << 20, .uaddr = 0x10100000, .mmap_offset = 1 << 20},
	};

	return vf_probe_mem_table(c, r, 2, 1);
}

static enum vf_outcome vf_m_mem_not_memfd(struct vf_corpus *c)
{
	/* A descriptor that cannot be mapped shared: a pipe. */
	struct {
		struct vf_mem_table_hdr h;
		struct vf_mem_region r;
	} msg = {.h = {.nregions = 1}, .r = {.gpa = 0, .size = 1 << 20, .uaddr = 0x10000000}};
	int p[2];
	enum vf_outcome oc;

	if (pipe(p)) {
		vf_corpus_note(c, "pipe: %s", strerror(errno));
		return VF_OC_BAD;
	}
	oc = vf_probe(c, VF_SET_MEM_TABLE, &msg, sizeof(msg), &p[0], 1);
	close(p[0]);
	close(p[1]);
	return oc;
}

static enum vf_outcome vf_m_mem_size_field(struct vf_corpus *c)
{
	/* The header's size says one region, nregions says two. */
	struct {
		struct vf_mem_table_hdr h;
		struct vf_mem_region r;
	} msg = {.h = {.nregions = 2}, .r = {.gpa = 0, .size = 1 << 20, .uaddr = 0x10000000}};
	int fds[2];

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	fds[0] = fds[1] = c->dev.mem.fd;
	return vf_probe(c, VF_SET_MEM_TABLE, &msg, sizeof(msg), fds, 2);
}

static enum vf_outcome vf_vring_num(struct vf_corpus *c, uint32_t index, uint32_t num)
{
	struct vf_vring_state st = {.index = index, .num = num};

	return vf_probe(c, VF_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
}

static enum vf_outcome vf_m_vring_num_zero(struct vf_corpus *c)
{
	return vf_vring_num(c, 0, 0);
}

static enum vf_outcome vf_m_vring_num_not_pow2(struct vf_corpus *c)
{
	return vf_vring_num(c, 0, 100);
}

static enum vf_outcome vf_m_vring_num_too_large(struct vf_corpus *c)
{
	return vf_vring_num(c, 0, 65536);
}

static enum vf_outcome vf_m_vring_index(struct vf_corpus *c)
{
	return vf_vring_num(c, 1000, 256);
}

/* A good memory table and vring size, then @addr. */
static enum vf_outcome vf_vring_addr(struct vf_corpus *c, const struct vf_vring_addr *addr)
{
	int ret;

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	ret = vf_dev_set_mem_table(&c->dev);
	if (!ret) {
		struct vf_vring_state st = {.index = 0, .num = VF_CORPUS_QSIZE};

		ret = vf_msg_set(&c->dev, VF_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
	}
	if (ret) {
		vf_corpus_note(c, "good setup before the bad address failed: %s", strerror(-ret));
		return ret == -ECONNRESET ? VF_OC_CLOSED : VF_OC_BAD;
	}
	return vf_probe(c, VF_SET_VRING_ADDR, addr, sizeof(*addr), NULL, 0);
}

static enum vf_outcome vf_m_vring_addr_outside(struct vf_corpus *c)
{
	uint8_t *base;
	struct vf_vring_addr a = {.index = 0};

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	base = c->dev.mem.base;
	a.desc_uaddr = 1ull << 60;
	a.avail_uaddr = (uintptr_t)base + 8192;
	a.used_uaddr = (uintptr_t)base + 16384;
	return vf_vring_addr(c, &a);
}

static enum vf_outcome vf_m_vring_used_outside(struct vf_corpus *c)
{
	uint8_t *base;
	struct vf_vring_addr a = {.index = 0};

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	base = c->dev.mem.base;
	a.desc_uaddr = (uintptr_t)base + 4096;
	a.avail_uaddr = (uintptr_t)base + 8192;
	a.used_uaddr = (uintptr_t)base + VF_CORPUS_MEM + (16 << 20);
	return vf_vring_addr(c, &a);
}

static enum vf_outcome vf_m_vring_straddles_end(struct vf_corpus *c)
{
	uint8_t *base;
	struct vf_vring_addr a = {.index = 0};

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	base = c->dev.mem.base;
	/* The 4 KiB descriptor table starts 1 KiB before the end of memory. */
	a.desc_uaddr = (uintptr_t)base + VF_CORPUS_MEM - 1024;
	a.avail_uaddr = (uintptr_t)base + 8192;
	a.used_uaddr = (uintptr_t)base + 16384;
	return vf_vring_addr(c, &a);
}

static enum vf_outcome vf_m_vring_addr_no_mem(struct vf_corpus *c)
{
	/* SET_VRING_ADDR before any memory table. */
	struct vf_vring_addr a = {.index = 0,
				  .desc_uaddr = 0x10000000,
				  .avail_uaddr = 0x10001000,
				  .used_uaddr = 0x10002000};

	return vf_probe(c, VF_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static enum vf_outcome vf_m_vring_kick_index(struct vf_corpus *c)
{
	uint64_t arg = 200; /* queue 200 */
	int fd = eventfd(0, EFD_CLOEXEC);
	enum vf_outcome oc;

	if (fd < 0) {
		vf_corpus_note(c, "eventfd: %s", strerror(errno));
		return VF_OC_BAD;
	}
	oc = vf_probe(c, VF_SET_VRING_KICK, &arg, sizeof(arg), &fd, 1);
	close(fd);
	return oc;
}

static enum vf_outcome vf_m_vring_call_no_fd(struct vf_corpus *c)
{
	uint64_t arg = 0; /* no VF_VRING_NOFD flag, and no descriptor */

	return vf_probe(c, VF_SET_VRING_CALL, &arg, sizeof(arg), NULL, 0);
}

static enum vf_outcome vf_m_unknown_request(struct vf_corpus *c)
{
	uint64_t v = 0;

	return vf_probe(c, 999, &v, sizeof(v), NULL, 0);
}

static enum vf_outcome vf_m_size_too_big(struct vf_corpus *c)
{
	/* The header announces 256 MiB that never come. */
	return vf_probe_msg(c, VF_SET_FEATURES, VF_USER_VERSION, 256u << 20, NULL, 0, NULL, 0);
}

static enum vf_outcome vf_m_truncated(struct vf_corpus *c)
{
	uint32_t index = 0; /* SET_VRING_NUM with 4 of its 8 bytes */

	return vf_probe(c, VF_SET_VRING_NUM, &index, sizeof(index), NULL, 0);
}

static enum vf_outcome vf_m_truncated_addr(struct vf_corpus *c)
{
	struct vf_vring_addr a = {.index = 0};

	return vf_probe(c, VF_SET_VRING_ADDR, &a, 16, NULL, 0);
}

static enum vf_outcome vf_m_features_long(struct vf_corpus *c)
{
	uint64_t v[2] = {c->dev.features, 0};

	return vf_probe(c, VF_SET_FEATURES, v, sizeof(v), NULL, 0);
}

static enum vf_outcome vf_m_bad_version(struct vf_corpus *c)
{
	return vf_probe_msg(c, VF_SET_FEATURES, 0x2, sizeof(c->dev.features), &c->dev.features,
			    sizeof(c->dev.features), NULL, 0);
}

static enum vf_outcome vf_m_features_unoffered(struct vf_corpus *c)
{
	uint64_t v = c->dev.features | (1ull << 63) | (1ull << 40);

	return vf_probe(c, VF_SET_FEATURES, &v, sizeof(v), NULL, 0);
}

static enum vf_outcome vf_m_get_config_huge(struct vf_corpus *c)
{
	struct vf_config_hdr h = {.offset = 0, .size = 0x100000};
	uint8_t reply[VF_MAX_MSG_PAYLOAD];
	uint32_t len;
	int ret;

	if (!vf_has_pf(&c->dev, VF_PF_CONFIG)) {
		vf_corpus_note(c, "CONFIG not negotiated");
		return VF_OC_SKIP;
	}
	/* The size field covers only the header: the config bytes the
	 * request asks for are not there. */
	ret = vf_msg_send_raw(&c->dev, VF_GET_CONFIG, VF_USER_VERSION, sizeof(h), &h, sizeof(h),
			      NULL, 0);
	if (ret == -ECONNRESET) {
		return VF_OC_CLOSED;
	}
	ret = vf_msg_recv_reply(&c->dev, VF_GET_CONFIG, reply, sizeof(reply), &len, NULL);
	switch (ret) {
	case 0: {
		struct vf_config_hdr rh;

		if (len < sizeof(rh)) {
			return VF_OC_REJECTED;
		}
		memcpy(&rh, reply, sizeof(rh));
		/* An empty or error reply is how GET_CONFIG says no. */
		return rh.size == 0 || len == sizeof(rh) ? VF_OC_REJECTED : VF_OC_OK;
	}
	case -ECONNRESET:
		return VF_OC_CLOSED;
	case -ETIMEDOUT:
		return VF_OC_HANG;
	default:
		/* -EPROTO: a reply larger than our buffer, i.e. it tried. */
		vf_corpus_note(c, "reply: %s", strerror(-ret));
		return vf_dev_alive(&c->dev, VF_CLOSE_GRACE_MS) ? VF_OC_OK : VF_OC_CLOSED;
	}
}

static enum vf_outcome vf_m_drop_mid_setup(struct vf_corpus *c)
{
	/* Memory table and half a ring, then gone. */
	struct vf_vring_state st = {.index = 0, .num = VF_CORPUS_QSIZE};
	int ret;

	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	ret = vf_dev_set_mem_table(&c->dev);
	if (!ret) {
		ret = vf_msg_set(&c->dev, VF_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
	}
	if (ret) {
		vf_corpus_note(c, "setup before the drop: %s", strerror(-ret));
		return ret == -ECONNRESET ? VF_OC_CLOSED : VF_OC_BAD;
	}
	close(c->dev.sock);
	c->dev.sock = -1;
	return VF_OC_CLOSED;
}

static enum vf_outcome vf_m_inflight_bad(struct vf_corpus *c)
{
	/* SET_INFLIGHT_FD with a region larger than its descriptor. */
	struct vf_inflight_msg m = {.mmap_size = 1ull << 40, .num_queues = 1, .queue_size = 256};
	int fd;

	if (!vf_has_pf(&c->dev, VF_PF_INFLIGHT_SHMFD)) {
		vf_corpus_note(c, "INFLIGHT_SHMFD not offered");
		return VF_OC_SKIP;
	}
	if (vf_corpus_mem(c)) {
		return VF_OC_BAD;
	}
	fd = c->dev.mem.fd;
	return vf_probe(c, VF_SET_INFLIGHT_FD, &m, sizeof(m), &fd, 1);
}

static enum vf_outcome vf_m_inflight_get_huge(struct vf_corpus *c)
{
	struct vf_inflight_msg m = {.num_queues = 0xffff, .queue_size = 0xffff};
	uint32_t len;
	int fd = -1;
	int ret;

	if (!vf_has_pf(&c->dev, VF_PF_INFLIGHT_SHMFD)) {
		vf_corpus_note(c, "INFLIGHT_SHMFD not offered");
		return VF_OC_SKIP;
	}
	ret = vf_msg_send_raw(&c->dev, VF_GET_INFLIGHT_FD, VF_USER_VERSION, sizeof(m), &m,
			      sizeof(m), NULL, 0);
	if (ret == -ECONNRESET) {
		return VF_OC_CLOSED;
	}
	ret = vf_msg_recv_reply(&c->dev, VF_GET_INFLIGHT_FD, &m, sizeof(m), &len, &fd);
	if (fd >= 0) {
		close(fd);
	}
	switch (ret) {
	case 0:
		/* Queue size 65535 is not a power of two: an fd means it took it. */
		return fd >= 0 ? VF_OC_OK : VF_OC_REJECTED;
	case -ECONNRESET:
		return VF_OC_CLOSED;
	case -ETIMEDOUT:
		return VF_OC_HANG;
	default:
		return vf_dev_alive(&c->dev, VF_CLOSE_GRACE_MS) ? VF_OC_REJECTED : VF_OC_CLOSED;
	}
}

/* ---- the case table ---- */

#define REQ(n, acc, fn, w)                                                                         \
	{                                                                                          \
		.name = n, .accept = acc, .message = false, .run = fn, .what = w                   \
	}
#define MSG(n, acc, fn, w)                                                                         \
	{                                                                                          \
		.name = n, .accept = acc, .message = true, .run = fn, .what = w                    \
	}

const struct vf_case vf_corpus_cases[] = {
	REQ("desc-outside-memory", OC_STATUS_OR_CLOSE, vf_c_desc_outside,
	    "read whose data descriptor is at guest-physical 2^47 (no region)"),
	REQ("desc-in-region-gap", OC_STATUS_OR_CLOSE, vf_c_desc_in_gap,
	    "data descriptor in the hole between region 0 and region 1"),
	REQ("desc-straddles-memory-end", OC_STATUS_OR_CLOSE, vf_c_desc_straddles,
	    "8 KiB data descriptor starting 4 KiB before the end of the last region"),
	REQ("desc-straddles-regions", OC_STATUS_OR_CLOSE, vf_c_straddles_regions,
	    "8 KiB data descriptor running off the end of region 0 (contiguous in the "
	    "frontend's address space, not in guest-physical space)"),
	REQ("write-from-outside-memory", OC_STATUS_OR_CLOSE, vf_c_write_from_outside,
	    "write to sector 0 (canary) whose data descriptor is outside guest memory"),
	REQ("desc-addr-overflow", OC_STATUS_OR_CLOSE, vf_c_addr_overflow,
	    "data descriptor at 2^64 - 2048, length 4096 (addr + len wraps)"),
	REQ("header-addr-overflow", OC_STATUS_OR_CLOSE, vf_c_hdr_overflow,
	    "header descriptor at 2^64 - 8"),
	REQ("desc-loop", OC_NO_STATUS_SLOT, vf_c_desc_loop,
	    "header -> data -> header ...: a chain without end"),
	REQ("desc-self-loop", OC_NO_STATUS_SLOT, vf_c_desc_self_loop,
	    "data descriptor whose next is itself"),
	REQ("chain-wraps-queue", OC_NO_STATUS_SLOT, vf_c_chain_wraps_queue,
	    "all 256 descriptors chained, the last pointing back to the first"),
	REQ("desc-next-out-of-range", OC_NO_STATUS_SLOT, vf_c_next_out_of_range,
	    "next = 40000 in a queue of 256"),
	REQ("indirect-longer-than-queue", OC_ANY_REFUSAL, vf_c_indirect_too_long,
	    "indirect table of 257 chained descriptors (queue size 256)"),
	REQ("indirect-len-not-multiple", OC_ANY_REFUSAL, vf_c_indirect_len,
	    "indirect table length 40 (not a multiple of 16)"),
	REQ("indirect-zero-len", OC_NO_STATUS_SLOT, vf_c_indirect_zero, "indirect table length 0"),
	REQ("indirect-outside-memory", OC_NO_STATUS_SLOT, vf_c_indirect_outside,
	    "indirect table at guest-physical 2^47"),
	REQ("indirect-huge", OC_NO_STATUS_SLOT, vf_c_indirect_huge,
	    "indirect table length 0xfffffff0"),
	REQ("indirect-nested", OC_ANY_REFUSAL, vf_c_indirect_nested,
	    "indirect table holding an INDIRECT descriptor (pointing at itself)"),
	REQ("indirect-with-next", OC_ANY_REFUSAL, vf_c_indirect_and_next,
	    "ring descriptor with both INDIRECT and NEXT"),
	REQ("indirect-loop", OC_NO_STATUS_SLOT, vf_c_indirect_loop,
	    "loop inside an indirect table"),
	REQ("header-short", OC_STATUS_OR_CLOSE, vf_c_hdr_short,
	    "write (to the canary) whose header descriptor is 8 bytes"),
	REQ("header-writable", OC_STATUS_OR_CLOSE, vf_c_hdr_writable,
	    "write (to the canary) whose header is device-writable"),
	REQ("no-header", OC_ANY_REFUSAL, vf_c_no_header,
	    "chain of a single 1-byte writable descriptor"),
	REQ("status-zero-len", OC_NO_STATUS_SLOT, vf_c_status_zero,
	    "read whose status descriptor has length 0"),
	REQ("status-not-writable", OC_NO_STATUS_SLOT, vf_c_status_readonly,
	    "read whose status descriptor is device-readable"),
	REQ("read-into-readonly", OC_STATUS_OR_CLOSE, vf_c_read_into_readonly,
	    "read whose data descriptor is device-readable (the buffer must stay untouched)"),
	REQ("write-from-writable", OC_STATUS_OR_CLOSE, vf_c_write_from_writable,
	    "write (to the canary) whose data descriptor is device-writable"),
	REQ("sector-overflow", OC_STATUS_OR_CLOSE, vf_c_sector_overflow, "read at sector 2^64 - 8"),
	REQ("sector-byte-wrap-write", OC_STATUS_OR_CLOSE, vf_c_sector_overflow_write,
	    "write at sector 2^55 (sector * 512 wraps to 0, the canary)"),
	REQ("sector-wrap-write", OC_STATUS_OR_CLOSE, vf_c_sector_wrap_write,
	    "write at sector 2^64 - 4 (sector + length wraps)"),
	REQ("read-past-end", OC_STATUS_OR_CLOSE, vf_c_past_end, "read at sector == capacity"),
	REQ("write-straddles-end", OC_STATUS_OR_CLOSE, vf_c_straddles_end,
	    "8 KiB write starting 4 KiB before the end"),
	REQ("unaligned-sector", OC_STATUS_OR_CLOSE, vf_c_unaligned_sector,
	    "write at sector 1 on a 4 KiB device (canary)"),
	REQ("unaligned-length", OC_STATUS_OR_CLOSE, vf_c_unaligned_len,
	    "write of 4.5 KiB on a 4 KiB device (canary)"),
	REQ("length-not-sectors", OC_STATUS_OR_CLOSE, vf_c_len_not_sector,
	    "write of 4196 bytes (not a multiple of 512) to the canary"),
	REQ("unknown-type", OC(UNSUPP), vf_c_unknown_type, "request type 0x7fff"),
	REQ("secure-erase-unnegotiated", OC(UNSUPP), vf_c_secure_erase,
	    "secure erase (type 14), never negotiated, over the canary"),
	REQ("write-zeroes-no-segment", OC_STATUS_OR_CLOSE, vf_c_wz_no_segment,
	    "write-zeroes with no segment at all"),
	REQ("write-zeroes-seg-len", OC_STATUS_OR_CLOSE, vf_c_wz_seg_len,
	    "write-zeroes of the canary with 20 bytes of segments (not a multiple of 16)"),
	REQ("write-zeroes-too-many-segs", OC_STATUS_OR_CLOSE, vf_c_wz_too_many,
	    "write-zeroes of the canary with max_write_zeroes_seg + 1 segments"),
	REQ("write-zeroes-past-end", OC_STATUS_OR_CLOSE, vf_c_wz_past_end,
	    "write-zeroes over the end of the device"),
	REQ("write-zeroes-sector-wrap", OC_STATUS_OR_CLOSE, vf_c_wz_wrap,
	    "write-zeroes at sector 2^64 - 8, 16 sectors"),
	REQ("write-zeroes-byte-wrap", OC_STATUS_OR_CLOSE, vf_c_wz_byte_wrap,
	    "write-zeroes at sector 2^55 (wraps to 0, the canary)"),
	REQ("write-zeroes-unknown-flags", OC_STATUS_OR_CLOSE, vf_c_wz_unknown_flags,
	    "write-zeroes of the canary with flag bit 31"),
	REQ("write-zeroes-too-big", OC_STATUS_OR_CLOSE, vf_c_wz_too_big,
	    "write-zeroes from sector 0 longer than max_write_zeroes_sectors"),
	REQ("write-zeroes-unaligned", OC_STATUS_OR_CLOSE, vf_c_wz_unaligned,
	    "write-zeroes of sectors 1-7 on a 4 KiB device"),
	REQ("discard-unmap-flag", OC_STATUS_OR_CLOSE, vf_c_discard_unmap_flag,
	    "discard of the canary with the (write-zeroes only) unmap flag"),
	REQ("discard-past-end", OC_STATUS_OR_CLOSE, vf_c_discard_past_end,
	    "discard at sector == capacity"),
	REQ("discard-too-many-segs", OC_STATUS_OR_CLOSE, vf_c_discard_too_many,
	    "discard of the canary with max_discard_seg + 1 segments"),
	REQ("avail-idx-jump", OC(CLOSED), vf_c_avail_idx_jump,
	    "avail->idx moved by queue size + 5"),
	REQ("avail-head-out-of-range", OC(CLOSED), vf_c_avail_bad_head,
	    "avail ring entry 266 in a queue of 256"),
	REQ("drop-with-inflight", OC(CLOSED), vf_c_drop_with_inflight,
	    "32 reads and writes in flight on every queue, then the frontend disconnects "
	    "(the backend must survive it and serve the next frontend)"),
	MSG("mem-table-zero-regions", OC_MSG_REFUSAL, vf_m_mem_zero_regions,
	    "SET_MEM_TABLE with 0 regions"),
	MSG("mem-table-too-many", OC_MSG_REFUSAL, vf_m_mem_too_many,
	    "SET_MEM_TABLE with 9 regions (baseline limit 8)"),
	MSG("mem-table-huge-count", OC_MSG_REFUSAL, vf_m_mem_huge_count,
	    "SET_MEM_TABLE claiming 2^28 regions in an 8-byte payload"),
	MSG("mem-table-size-zero", OC_MSG_REFUSAL, vf_m_mem_size_zero,
	    "SET_MEM_TABLE with a region of size 0"),
	MSG("mem-table-overlap", OC_MSG_REFUSAL, vf_m_mem_overlap,
	    "SET_MEM_TABLE with overlapping guest-physical ranges"),
	MSG("mem-table-offset-past-fd", OC_MSG_REFUSAL, vf_m_mem_offset_past_fd,
	    "SET_MEM_TABLE with mmap_offset beyond the memfd's size"),
	MSG("mem-table-size-past-fd", OC_MSG_REFUSAL, vf_m_mem_size_past_fd,
	    "SET_MEM_TABLE with a region 4x the memfd (touching it would SIGBUS)"),
	MSG("mem-table-beyond-fd-used", OC_MSG_REFUSAL | OC_STATUS, vf_m_mem_beyond_fd_used,
	    "region 1 declared 64 MiB past its memfd's end, then a read into that tail "
	    "(SIGBUS for a backend that maps without checking)"),
	MSG("mem-table-offset-wrap", OC_MSG_REFUSAL, vf_m_mem_offset_wrap,
	    "SET_MEM_TABLE with mmap_offset 2^64 - 4096"),
	MSG("mem-table-gpa-wrap", OC_MSG_REFUSAL, vf_m_mem_gpa_wrap,
	    "SET_MEM_TABLE with a region at guest-physical 2^64 - 4096, 1 MiB"),
	MSG("mem-table-no-fd", OC_MSG_REFUSAL, vf_m_mem_no_fd,
	    "SET_MEM_TABLE with one region and no descriptor"),
	MSG("mem-table-fd-count", OC_MSG_REFUSAL, vf_m_mem_fd_count,
	    "SET_MEM_TABLE with two regions and one descriptor"),
	MSG("mem-table-not-mappable", OC_MSG_REFUSAL, vf_m_mem_not_memfd,
	    "SET_MEM_TABLE with a pipe as the region's descriptor"),
	MSG("mem-table-size-field", OC_MSG_REFUSAL, vf_m_mem_size_field,
	    "SET_MEM_TABLE saying 2 regions in a payload carrying 1"),
	MSG("vring-num-zero", OC_MSG_REFUSAL, vf_m_vring_num_zero, "SET_VRING_NUM 0"),
	MSG("vring-num-not-pow2", OC_MSG_REFUSAL, vf_m_vring_num_not_pow2, "SET_VRING_NUM 100"),
	MSG("vring-num-too-large", OC_MSG_REFUSAL, vf_m_vring_num_too_large,
	    "SET_VRING_NUM 65536 (> 32768)"),
	MSG("vring-index-out-of-range", OC_MSG_REFUSAL, vf_m_vring_index,
	    "SET_VRING_NUM for queue 1000"),
	MSG("vring-addr-outside", OC_MSG_REFUSAL, vf_m_vring_addr_outside,
	    "SET_VRING_ADDR with the descriptor table at 2^60"),
	MSG("vring-used-outside", OC_MSG_REFUSAL, vf_m_vring_used_outside,
	    "SET_VRING_ADDR with the used ring 16 MiB past the end of memory"),
	MSG("vring-straddles-end", OC_MSG_REFUSAL, vf_m_vring_straddles_end,
	    "SET_VRING_ADDR with the descriptor table 1 KiB before the end of memory"),
	MSG("vring-addr-before-mem-table", OC_MSG_REFUSAL, vf_m_vring_addr_no_mem,
	    "SET_VRING_ADDR before any SET_MEM_TABLE"),
	MSG("vring-kick-index", OC_MSG_REFUSAL, vf_m_vring_kick_index,
	    "SET_VRING_KICK for queue 200"),
	MSG("vring-call-no-fd", OC_MSG_REFUSAL, vf_m_vring_call_no_fd,
	    "SET_VRING_CALL without a descriptor and without the no-fd flag"),
	MSG("msg-unknown-request", OC_MSG_REFUSAL, vf_m_unknown_request, "request id 999"),
	MSG("msg-size-too-big", OC(CLOSED), vf_m_size_too_big,
	    "header size 256 MiB, no payload follows"),
	MSG("msg-truncated-payload", OC_MSG_REFUSAL, vf_m_truncated,
	    "SET_VRING_NUM with a 4-byte payload"),
	MSG("msg-truncated-vring-addr", OC_MSG_REFUSAL, vf_m_truncated_addr,
	    "SET_VRING_ADDR with 16 of its 40 bytes"),
	MSG("msg-payload-too-long", OC_MSG_REFUSAL, vf_m_features_long,
	    "SET_FEATURES with a 16-byte payload"),
	MSG("msg-bad-version", OC_MSG_REFUSAL, vf_m_bad_version,
	    "SET_FEATURES with protocol version 2 in the flags"),
	MSG("features-not-offered", OC_MSG_REFUSAL, vf_m_features_unoffered,
	    "SET_FEATURES with bits 40 and 63, never offered"),
	MSG("get-config-huge", OC_MSG_REFUSAL, vf_m_get_config_huge,
	    "GET_CONFIG asking for 1 MiB of config space"),
	MSG("inflight-size-past-fd", OC_MSG_REFUSAL, vf_m_inflight_bad,
	    "SET_INFLIGHT_FD with mmap_size 1 TiB"),
	MSG("drop-mid-setup", OC(CLOSED), vf_m_drop_mid_setup,
	    "memory table and SET_VRING_NUM, then the frontend disconnects"),
	MSG("inflight-get-bad-geometry", OC_MSG_REFUSAL, vf_m_inflight_get_huge,
	    "GET_INFLIGHT_FD for 65535 queues of 65535 descriptors"),
};

const size_t vf_corpus_ncases = sizeof(vf_corpus_cases) / sizeof(vf_corpus_cases[0]);
