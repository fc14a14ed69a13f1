/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio_blk_parse(): every header, sector, alignment, segment and layout
 * case, on iovecs built in the test (no transport).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/virtio_blk.h"

#define CAP (1024ull * 1024 * 1024) /* 1 GiB */

static const struct virtio_blk_geom geom = {
	.capacity = CAP, .flush = true, .discard = true, .write_zeroes = true};

/* One request under construction: iovecs into a scratch arena. */
struct t_req {
	struct iovec iov[160];
	unsigned int out, in;
	uint8_t arena[1 << 20];
	size_t used;
	uint8_t *status;
};

static struct t_req *T;

static int setup(void **state)
{
	T = calloc(1, sizeof(*T));
	return T ? 0 : -1;
}

static int teardown(void **state)
{
	free(T);
	return 0;
}

static void t_reset(void)
{
	memset(T->iov, 0, sizeof(T->iov));
	T->out = T->in = 0;
	T->used = 0;
	T->status = NULL;
}

static void *t_alloc(size_t len)
{
	void *p = T->arena + T->used;

	assert_true(T->used + len <= sizeof(T->arena));
	T->used += len;
	return p;
}

static void *t_out(const void *data, size_t len)
{
	void *p = t_alloc(len);

	assert_int_equal(T->in, 0);
	if (data) {
		memcpy(p, data, len);
	}
	T->iov[T->out++] = (struct iovec){p, len};
	return p;
}

static void *t_in(size_t len)
{
	void *p = t_alloc(len);

	memset(p, 0xee, len);
	T->iov[T->out + T->in++] = (struct iovec){p, len};
	return p;
}

static void t_hdr(uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};

	t_out(&h, sizeof(h));
}

static void t_status(void)
{
	T->status = t_in(1);
}

static int t_parse_geom(const struct virtio_blk_geom *g, struct virtio_blk_req *r)
{
	return virtio_blk_parse(g, T->iov, T->out, T->in, r);
}

static int t_parse(struct virtio_blk_req *r)
{
	return t_parse_geom(&geom, r);
}

static void assert_refused(uint8_t status)
{
	struct virtio_blk_req r;

	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_NONE);
	assert_int_equal(r.status, status);
	assert_ptr_equal(r.status_ptr, T->status);
}

/* A read of @len bytes at @sector with one data buffer. */
static void t_read(uint64_t sector, size_t len)
{
	t_reset();
	t_hdr(VIRTIO_BLK_T_IN, sector);
	if (len) {
		t_in(len);
	}
	t_status();
}

static void t_write(uint64_t sector, size_t len)
{
	t_reset();
	t_hdr(VIRTIO_BLK_T_OUT, sector);
	if (len) {
		t_out(NULL, len);
	}
	t_status();
}

static void test_read_ok(void **state)
{
	struct virtio_blk_req r;

	t_read(8, 8192);
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_READ);
	assert_int_equal(r.offset, 4096);
	assert_int_equal(r.length, 8192);
	assert_int_equal(r.ndata, 1);
	assert_ptr_equal(r.data[0].iov_base, T->iov[1].iov_base);
	assert_ptr_equal(r.status_ptr, T->status);
	assert_int_equal(r.in_len, 8193);
}

static void test_read_last_block_and_past_end(void **state)
{
	struct virtio_blk_req r;

	t_read(CAP / 512 - 8, 4096);
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_READ);
	t_read(CAP / 512 - 8, 8192); /* runs one block past the end */
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read(CAP / 512, 4096); /* starts at the end */
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read(CAP / 512 + 8, 4096);
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_read_sector_overflow(void **state)
{
	t_read(UINT64_MAX / 512 + 1, 4096); /* sector * 512 overflows */
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read(UINT64_MAX & ~7ull, 4096);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read((UINT64_MAX / 512) & ~7ull, 4096); /* offset + length overflows */
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_read_alignment(void **state)
{
	t_read(1, 4096);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read(4, 4096);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read(8, 512);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read(8, 4096 + 512);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_read(8, 0); /* no data at all */
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_read_with_out_data(void **state)
{
	t_reset();
	t_hdr(VIRTIO_BLK_T_IN, 0);
	t_out(NULL, 4096);
	t_in(4096);
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_write_ok_and_ro(void **state)
{
	struct virtio_blk_geom ro = geom;
	struct virtio_blk_req r;

	t_write(16, 4096);
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_WRITE);
	assert_int_equal(r.offset, 8192);
	assert_int_equal(r.length, 4096);
	assert_int_equal(r.in_len, 1);
	ro.read_only = true;
	t_write(16, 4096);
	assert_int_equal(t_parse_geom(&ro, &r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_NONE);
	assert_int_equal(r.status, VIRTIO_BLK_S_IOERR);
	t_read(16, 4096); /* reads still fine */
	assert_int_equal(t_parse_geom(&ro, &r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_READ);
}

static void test_write_bad(void **state)
{
	t_write(3, 4096);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_write(8, 1000);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_write(CAP / 512, 4096);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_write(8, 0);
	assert_refused(VIRTIO_BLK_S_IOERR);
	/* writable data besides the status byte */
	t_reset();
	t_hdr(VIRTIO_BLK_T_OUT, 0);
	t_out(NULL, 4096);
	t_in(4096);
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_header_split_and_short(void **state)
{
	struct virtio_blk_outhdr h = {.type = VIRTIO_BLK_T_OUT, .sector = 8};
	struct virtio_blk_req r;

	/* header over three buffers, the data sharing the last one */
	t_reset();
	t_out(&h, 5);
	t_out((uint8_t *)&h + 5, 6);
	{
		uint8_t *p = t_out(NULL, 5 + 4096);

		memcpy(p, (uint8_t *)&h + 11, 5);
	}
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_WRITE);
	assert_int_equal(r.offset, 4096);
	assert_int_equal(r.length, 4096);
	assert_int_equal(r.ndata, 1);
	assert_ptr_equal(r.data[0].iov_base, (uint8_t *)T->iov[2].iov_base);
	/* header too short */
	t_reset();
	t_out(&h, 15);
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
	/* no readable buffer at all */
	t_reset();
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_no_status(void **state)
{
	struct virtio_blk_req r;

	t_reset();
	t_hdr(VIRTIO_BLK_T_IN, 0);
	assert_int_equal(t_parse(&r), -EINVAL);
	t_reset();
	t_hdr(VIRTIO_BLK_T_IN, 0);
	t_in(0);
	t_in(0);
	assert_int_equal(t_parse(&r), -EINVAL);
}

static void test_status_shares_data_buffer(void **state)
{
	struct virtio_blk_req r;
	uint8_t *p;

	t_reset();
	t_hdr(VIRTIO_BLK_T_IN, 0);
	p = t_in(4096 + 1);
	t_in(0); /* trailing empty entries are skipped */
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_READ);
	assert_int_equal(r.length, 4096);
	assert_ptr_equal(r.status_ptr, p + 4096);
}

static void test_iov_limits(void **state)
{
	struct virtio_blk_req r;

	/* BLK_DEV_IOV_MAX data buffers fit, one more does not */
	t_reset();
	t_hdr(VIRTIO_BLK_T_IN, 0);
	for (int i = 0; i < BLK_DEV_IOV_MAX; i++) {
		t_in(512);
	}
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_READ);
	assert_int_equal(r.ndata, BLK_DEV_IOV_MAX);
	assert_int_equal(r.length, BLK_DEV_IOV_MAX * 512);

	t_reset();
	t_hdr(VIRTIO_BLK_T_IN, 0);
	for (int i = 0; i < BLK_DEV_IOV_MAX; i++) {
		t_in(512);
	}
	t_in(4096); /* aligned total: only the count is wrong */
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);

	/* empty entries do not count */
	t_reset();
	t_hdr(VIRTIO_BLK_T_OUT, 0);
	for (int i = 0; i < 80; i++) {
		t_out(NULL, i % 2 ? 512 : 0);
	}
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_WRITE);
	assert_int_equal(r.ndata, 40);
	for (int i = 0; i < r.ndata; i++) {
		assert_int_equal(r.data[i].iov_len, 512);
	}
}

static void test_flush(void **state)
{
	struct virtio_blk_geom nf = geom;
	struct virtio_blk_req r;

	t_reset();
	t_hdr(VIRTIO_BLK_T_FLUSH, 0);
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_FLUSH);
	nf.flush = false;
	t_reset(); /* the parser trims the iovecs: build the request again */
	t_hdr(VIRTIO_BLK_T_FLUSH, 0);
	t_status();
	assert_int_equal(t_parse_geom(&nf, &r), 0);
	assert_int_equal(r.status, VIRTIO_BLK_S_UNSUPP);
	t_reset();
	t_hdr(VIRTIO_BLK_T_FLUSH, 0);
	t_in(512);
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_get_id(void **state)
{
	struct virtio_blk_req r;
	uint8_t *buf;

	t_reset();
	t_hdr(VIRTIO_BLK_T_GET_ID, 0);
	buf = t_in(BLK_DEV_ID_LEN);
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_GET_ID);
	assert_int_equal(r.in_len, BLK_DEV_ID_LEN + 1);
	assert_int_equal(virtio_blk_fill_id(&r, "serial-1"), BLK_DEV_ID_LEN);
	assert_memory_equal(buf, "serial-1\0\0\0\0\0\0\0\0\0\0\0\0", BLK_DEV_ID_LEN);
	/* a short buffer gets what fits */
	t_reset();
	t_hdr(VIRTIO_BLK_T_GET_ID, 0);
	buf = t_in(4);
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(virtio_blk_fill_id(&r, "abcdefgh"), 4);
	assert_memory_equal(buf, "abcd", 4);
	assert_int_equal(r.in_len, 5);
	/* a long serial is cut at 20 bytes, no NUL needed */
	t_reset();
	t_hdr(VIRTIO_BLK_T_GET_ID, 0);
	buf = t_in(64);
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(virtio_blk_fill_id(&r, "0123456789abcdefghijXYZ"), BLK_DEV_ID_LEN);
	assert_memory_equal(buf, "0123456789abcdefghij", 20);
	assert_int_equal(buf[20], 0xee);
	/* no buffer */
	t_reset();
	t_hdr(VIRTIO_BLK_T_GET_ID, 0);
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
}

static void test_unknown_types(void **state)
{
	static const uint32_t types[] = {2,  3,	 5,  7,		  9,	       10,
					 12, 14, 15, 0x80000000u, 0x80000001u, UINT32_MAX};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		t_reset();
		t_hdr(types[i], 0);
		t_in(4096);
		t_status();
		assert_refused(VIRTIO_BLK_S_UNSUPP);
	}
}

static void t_dwz(uint32_t type, const struct virtio_blk_dwz_seg *segs, unsigned int n)
{
	t_reset();
	t_hdr(type, 0);
	if (n) {
		t_out(segs, n * sizeof(*segs));
	}
	t_status();
}

static void test_discard_ok(void **state)
{
	struct virtio_blk_dwz_seg s[VIRTIO_BLK_MAX_DWZ_SEGS];
	struct virtio_blk_req r;

	for (unsigned int i = 0; i < VIRTIO_BLK_MAX_DWZ_SEGS; i++) {
		s[i] = (struct virtio_blk_dwz_seg){.sector = i * 64, .num_sectors = 16};
	}
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 1);
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_DISCARD);
	assert_int_equal(r.nsegs, 1);
	assert_int_equal(r.segs[0].offset, 0);
	assert_int_equal(r.segs[0].length, 8192);
	t_dwz(VIRTIO_BLK_T_DISCARD, s, VIRTIO_BLK_MAX_DWZ_SEGS);
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.nsegs, VIRTIO_BLK_MAX_DWZ_SEGS);
	assert_int_equal(r.segs[15].offset, 15 * 64 * 512);
	/* the segment array split over buffers at odd places */
	t_reset();
	t_hdr(VIRTIO_BLK_T_WRITE_ZEROES, 0);
	s[0].flags = VIRTIO_BLK_WZ_F_UNMAP;
	t_out(s, 7);
	t_out((uint8_t *)s + 7, 20);
	t_out((uint8_t *)s + 27, 5);
	t_status();
	assert_int_equal(t_parse(&r), 0);
	assert_int_equal(r.op, VIRTIO_BLK_OP_WRITE_ZEROES);
	assert_int_equal(r.nsegs, 2);
	assert_int_equal(r.segs[1].offset, 64 * 512);
	assert_int_equal(r.segs[1].length, 16 * 512);
}

static void test_discard_bad(void **state)
{
	struct virtio_blk_dwz_seg s[VIRTIO_BLK_MAX_DWZ_SEGS + 1];
	struct virtio_blk_geom g = geom;
	struct virtio_blk_req r;

	for (unsigned int i = 0; i <= VIRTIO_BLK_MAX_DWZ_SEGS; i++) {
		s[i] = (struct virtio_blk_dwz_seg){.sector = i * 8, .num_sectors = 8};
	}
	t_dwz(VIRTIO_BLK_T_DISCARD, s, VIRTIO_BLK_MAX_DWZ_SEGS + 1);
	assert_refused(VIRTIO_BLK_S_UNSUPP);
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 0);
	assert_refused(VIRTIO_BLK_S_IOERR);
	t_reset();
	t_hdr(VIRTIO_BLK_T_DISCARD, 0);
	t_out(s, 24); /* not a multiple of 16 */
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
	/* unmap is for write-zeroes only; unknown flags never */
	s[0].flags = VIRTIO_BLK_WZ_F_UNMAP;
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 1);
	assert_refused(VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 2;
	t_dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 1);
	assert_refused(VIRTIO_BLK_S_UNSUPP);
	s[0].flags = 0x80000000u;
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 1);
	assert_refused(VIRTIO_BLK_S_UNSUPP);
	/* ranges and alignment, also in a later segment */
	s[0] = (struct virtio_blk_dwz_seg){.sector = 1, .num_sectors = 8};
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 1);
	assert_refused(VIRTIO_BLK_S_IOERR);
	s[0] = (struct virtio_blk_dwz_seg){.sector = 0, .num_sectors = 9};
	t_dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 1);
	assert_refused(VIRTIO_BLK_S_IOERR);
	s[0] = (struct virtio_blk_dwz_seg){.sector = 0, .num_sectors = 0};
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 1);
	assert_refused(VIRTIO_BLK_S_IOERR);
	s[0] = (struct virtio_blk_dwz_seg){.sector = 0, .num_sectors = 8};
	s[1] = (struct virtio_blk_dwz_seg){.sector = CAP / 512 - 8, .num_sectors = 16};
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 2);
	assert_refused(VIRTIO_BLK_S_IOERR);
	s[1] = (struct virtio_blk_dwz_seg){.sector = UINT64_MAX - 7, .num_sectors = 8};
	t_dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 2);
	assert_refused(VIRTIO_BLK_S_IOERR);
	s[1] = (struct virtio_blk_dwz_seg){.sector = 0,
					   .num_sectors = VIRTIO_BLK_MAX_DWZ_SECTORS + 8};
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 2);
	assert_refused(VIRTIO_BLK_S_IOERR);
	/* writable data besides the status */
	t_reset();
	t_hdr(VIRTIO_BLK_T_DISCARD, 0);
	t_out(s, 16);
	t_in(512);
	t_status();
	assert_refused(VIRTIO_BLK_S_IOERR);
	/* read-only, not offered */
	s[0] = (struct virtio_blk_dwz_seg){.sector = 0, .num_sectors = 8};
	g.read_only = true;
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 1);
	assert_int_equal(t_parse_geom(&g, &r), 0);
	assert_int_equal(r.status, VIRTIO_BLK_S_IOERR);
	g = geom;
	g.discard = false;
	t_dwz(VIRTIO_BLK_T_DISCARD, s, 1);
	assert_int_equal(t_parse_geom(&g, &r), 0);
	assert_int_equal(r.status, VIRTIO_BLK_S_UNSUPP);
	g = geom;
	g.write_zeroes = false;
	t_dwz(VIRTIO_BLK_T_WRITE_ZEROES, s, 1);
	assert_int_equal(t_parse_geom(&g, &r), 0);
	assert_int_equal(r.status, VIRTIO_BLK_S_UNSUPP);
}

static void test_status_and_config(void **state)
{
	struct virtio_blk_config cfg;

	assert_int_equal(virtio_blk_status(0), VIRTIO_BLK_S_OK);
	assert_int_equal(virtio_blk_status(-EIO), VIRTIO_BLK_S_IOERR);
	assert_int_equal(virtio_blk_status(-ENOSPC), VIRTIO_BLK_S_IOERR);
	virtio_blk_fill_config(&geom, 4, &cfg);
	assert_int_equal(cfg.capacity, CAP / 512);
	assert_int_equal(cfg.blk_size, 4096);
	assert_int_equal(cfg.num_queues, 4);
	assert_int_equal(cfg.seg_max, BLK_DEV_IOV_MAX - 2);
	assert_int_equal(cfg.max_discard_seg, VIRTIO_BLK_MAX_DWZ_SEGS);
	assert_int_equal(cfg.discard_sector_alignment, 8);
	assert_int_equal(offsetof(struct virtio_blk_config, num_queues), 34);
	assert_int_equal(offsetof(struct virtio_blk_config, max_discard_sectors), 36);
	assert_int_equal(offsetof(struct virtio_blk_config, write_zeroes_may_unmap), 56);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_ok),
		cmocka_unit_test(test_read_last_block_and_past_end),
		cmocka_unit_test(test_read_sector_overflow),
		cmocka_unit_test(test_read_alignment),
		cmocka_unit_test(test_read_with_out_data),
		cmocka_unit_test(test_write_ok_and_ro),
		cmocka_unit_test(test_write_bad),
		cmocka_unit_test(test_header_split_and_short),
		cmocka_unit_test(test_no_status),
		cmocka_unit_test(test_status_shares_data_buffer),
		cmocka_unit_test(test_iov_limits),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_get_id),
		cmocka_unit_test(test_unknown_types),
		cmocka_unit_test(test_discard_ok),
		cmocka_unit_test(test_discard_bad),
		cmocka_unit_test(test_status_and_config),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
