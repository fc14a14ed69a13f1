/* SPDX-License-Identifier: Apache-2.0 */
/* Blockstore basics on the "ram" and "sim" devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bs_test_util.h"

#define DEV (16ull << 20)
#define OBJ (64u << 10)
#define JRN (2ull << 20)

static int setup(void **state)
{
	struct tenv *e = calloc(1, sizeof(*e));
	int ret = tenv_setup(e, *state, DEV, OBJ, JRN);

	if (ret < 0) {
		return -1;
	}
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct tenv *e = *state;

	tenv_teardown(e);
	free(e);
	return 0;
}

static void test_rw_discard(void **state)
{
	struct tenv *e = *state;
	struct bs_obj_stat os;
	struct bs_stat st;
	uint64_t ver = 0;
	uint32_t crcs[16];

	/* an object never written reads as zeroes with the zero crc */
	assert_int_equal(tenv_io(e, BS_OP_READ, 1, 0, 0, 16384, e->buf, crcs, &ver), 0);
	for (int i = 0; i < 16384; i++) {
		assert_int_equal(e->buf[i], 0);
	}
	assert_int_equal(crcs[0], crc32c_zero_block());
	assert_int_equal(ver, 0);
	assert_int_equal(bs_stat_object(e->bs, 1, 0, &os), -ENOENT);

	tenv_fill(e, 7, 8192);
	ver = 0;
	assert_int_equal(tenv_io(e, BS_OP_WRITE, 1, 0, 4096, 8192, e->buf, e->crcs, &ver), 0);
	assert_int_equal(ver, 1);
	assert_int_equal(tenv_check(e, 1, 0, 4096, 8192, 7), 0);
	assert_int_equal(tenv_check(e, 1, 0, 0, 4096, 0), 0);
	assert_int_equal(tenv_check(e, 1, 0, 12288, 4096, 0), 0);
	assert_int_equal(bs_stat_object(e->bs, 1, 0, &os), 0);
	assert_int_equal(os.blocks_mapped, 2);
	assert_int_equal(os.version, 1);

	/* discard one block: it reads as zeroes, the other keeps its data */
	assert_int_equal(tenv_io(e, BS_OP_DISCARD, 1, 0, 4096, 4096, NULL, NULL, NULL), 0);
	assert_int_equal(tenv_check(e, 1, 0, 4096, 4096, 0), 0);
	assert_int_equal(bs_stat_object(e->bs, 1, 0, &os), 0);
	assert_int_equal(os.blocks_mapped, 1);
	assert_int_equal(os.version, 2);
	bs_stat(e->bs, &st);
	assert_int_equal(st.objects_used, 1);

	/* write-zeroes of the last mapped block frees the object */
	assert_int_equal(tenv_io(e, BS_OP_WRITE_ZEROES, 1, 0, 8192, 4096, NULL, NULL, NULL), 0);
	assert_int_equal(bs_stat_object(e->bs, 1, 0, &os), -ENOENT);
	assert_int_equal(tenv_check(e, 1, 0, 0, OBJ, 0), 0);
	bs_stat(e->bs, &st);
	assert_int_equal(st.objects_used, 0);

	/* discard of an object that does not exist is fine */
	assert_int_equal(tenv_io(e, BS_OP_DISCARD, 9, 9, 0, OBJ, NULL, NULL, NULL), 0);
	assert_int_equal(tenv_io(e, BS_OP_SYNC, 0, 0, 0, 0, NULL, NULL, NULL), 0);

	bs_stat(e->bs, &st);
	assert_int_equal(st.object_size, OBJ);
	assert_true(st.objects_total > 100);
	assert_true(st.writes >= 1 && st.reads >= 1);
	assert_int_equal(st.crc_errors, 0);
	assert_true(st.index_bytes > 0);
	assert_int_equal(st.flush_always, !strcmp(e->backend, "sim"));
}

static bool cb_fired;

static void never_cb(struct bs_req *req, int res)
{
	cb_fired = true;
}

static void test_bad_requests(void **state)
{
	struct tenv *e = *state;
	struct bs_req req;
	uint32_t crcs[256];

	cb_fired = false;
	memset(&req, 0, sizeof(req));
	req.op = BS_OP_WRITE;
	req.inode = 1;
	req.buf = e->buf;
	req.crcs = crcs;
	req.cb = never_cb;
	tenv_fill(e, 3, 1u << 20);
	memcpy(crcs, e->crcs, sizeof(crcs));

	req.offset = 100;
	req.length = 4096;
	assert_int_equal(bs_submit(e->bs, &req), -EINVAL);
	req.offset = 0;
	req.length = 0;
	assert_int_equal(bs_submit(e->bs, &req), -EINVAL);
	req.length = 4000;
	assert_int_equal(bs_submit(e->bs, &req), -EINVAL);
	req.offset = OBJ - 4096;
	req.length = 8192;
	assert_int_equal(bs_submit(e->bs, &req), -ERANGE);
	req.offset = 0;
	req.length = OBJ + 4096;
	assert_int_equal(bs_submit(e->bs, &req), -ERANGE);
	req.op = BS_OP_READ;
	req.offset = 0;
	req.length = 4096;
	req.buf = e->buf + 1;
	assert_int_equal(bs_submit(e->bs, &req), -EINVAL);
	req.buf = e->buf;
	req.op = 77;
	assert_int_equal(bs_submit(e->bs, &req), -EINVAL);
	req.op = BS_OP_DISCARD;
	req.offset = 4096 * 3;
	req.length = OBJ;
	assert_int_equal(bs_submit(e->bs, &req), -ERANGE);

	/* wrong end-to-end crc: -EBADMSG and nothing stored */
	req.op = BS_OP_WRITE;
	req.offset = 0;
	req.length = 8192;
	crcs[1] ^= 1;
	assert_int_equal(bs_submit(e->bs, &req), -EBADMSG);
	for (int i = 0; i < 1000; i++) {
		reactor_poll(e->r, false);
	}
	assert_false(cb_fired);
	assert_int_equal(tenv_check(e, 1, 0, 0, 8192, 0), 0);

	/* stale caller versions */
	uint64_t v = 10;
	assert_int_equal(tenv_write(e, 2, 0, 0, 4096, 5), 0);
	tenv_fill(e, 6, 4096);
	assert_int_equal(tenv_io(e, BS_OP_WRITE, 2, 0, 0, 4096, e->buf, e->crcs, &v), 0);
	assert_int_equal(v, 10);
	v = 10;
	assert_int_equal(tenv_io(e, BS_OP_WRITE, 2, 0, 0, 4096, e->buf, e->crcs, &v), -ESTALE);
	v = 0;
	assert_int_equal(tenv_io(e, BS_OP_WRITE, 2, 0, 4096, 4096, e->buf, e->crcs, &v), 0);
	assert_int_equal(v, 11);
	assert_int_equal(tenv_check(e, 2, 0, 0, 4096, 6), 0);
}

static void test_enospc(void **state)
{
	struct tenv *e = *state;
	struct bs_stat st;
	uint64_t i, n;

	bs_stat(e->bs, &st);
	n = st.objects_total;
	for (i = 0; i < n; i++) {
		assert_int_equal(tenv_write(e, 5, i, (uint32_t)(i % 16) * 4096, 4096, 100 + i), 0);
	}
	bs_stat(e->bs, &st);
	assert_int_equal(st.objects_used, n);
	/* a new object fails and changes nothing; existing ones still work */
	assert_int_equal(tenv_write(e, 6, 0, 0, 4096, 999), -ENOSPC);
	assert_int_equal(bs_stat_object(e->bs, 6, 0, &(struct bs_obj_stat){0}), -ENOENT);
	assert_int_equal(tenv_write(e, 5, 0, 8192 * 4, 8192, 555), 0);
	assert_int_equal(tenv_check(e, 5, 0, 8192 * 4, 8192, 555), 0);
	/* discard frees a slot: the new object fits */
	assert_int_equal(tenv_io(e, BS_OP_DISCARD, 5, 3, 0, OBJ, NULL, NULL, NULL), 0);
	assert_int_equal(tenv_write(e, 6, 0, 0, 4096, 999), 0);
	assert_int_equal(tenv_write(e, 6, 1, 0, 4096, 998), -ENOSPC);
	for (i = 0; i < n; i++) {
		if (i == 3) {
			assert_int_equal(tenv_check(e, 5, i, 0, OBJ, 0), 0);
			continue;
		}
		assert_int_equal(tenv_check(e, 5, i, (uint32_t)(i % 16) * 4096, 4096, 100 + i), 0);
	}
	assert_int_equal(tenv_check(e, 6, 0, 0, 4096, 999), 0);
	assert_int_equal(tenv_reopen(e), 0);
	assert_int_equal(tenv_check(e, 6, 0, 0, 4096, 999), 0);
	assert_int_equal(tenv_check(e, 5, 7, 7 * 4096, 4096, 107), 0);
	assert_int_equal(tenv_check(e, 5, 0, 8192 * 4, 8192, 555), 0);
}

static void test_reopen_and_list(void **state)
{
	struct tenv *e = *state;
	struct bs_obj_stat out[4];
	uint64_t ci = 0, co = 0, i;
	unsigned int n, total = 0;
	bool first = true;

	for (i = 0; i < 10; i++) {
		assert_int_equal(tenv_write(e, 3 - i % 3, 100 - i, 0, 8192, 40 + i), 0);
	}
	assert_int_equal(tenv_reopen(e), 0);
	for (i = 0; i < 10; i++) {
		assert_int_equal(tenv_check(e, 3 - i % 3, 100 - i, 0, 8192, 40 + i), 0);
	}
	/* every object, in (inode, objno) order, 4 at a time */
	uint64_t pi = 0, po = 0;
	while ((n = bs_list(e->bs, UINT64_MAX, &first, &ci, &co, out, 4)) > 0) {
		for (unsigned int k = 0; k < n; k++) {
			assert_true(total == 0 || out[k].inode > pi ||
				    (out[k].inode == pi && out[k].objno > po));
			pi = out[k].inode;
			po = out[k].objno;
			assert_int_equal(out[k].blocks_mapped, 2);
			total++;
		}
	}
	assert_int_equal(total, 10);
	/* one inode only */
	first = true;
	ci = co = 0;
	total = 0;
	while ((n = bs_list(e->bs, 2, &first, &ci, &co, out, 4)) > 0) {
		for (unsigned int k = 0; k < n; k++) {
			assert_int_equal(out[k].inode, 2);
		}
		total += n;
	}
	assert_int_equal(total, 3);
}

static void test_overlap_order(void **state)
{
	struct tenv *e = *state;
	struct treq t[8];
	uint8_t *bufs = NULL;
	uint32_t crcs[8][4];
	int i;

	/* QD 8 on overlapping extents of one object: completion in order,
	 * a read sees exactly the writes submitted before it */
	assert_int_equal(posix_memalign((void **)&bufs, 4096, 8 * 16384), 0);
	memset(t, 0, sizeof(t));
	for (i = 0; i < 8; i++) {
		t[i].req.inode = 4;
		t[i].req.offset = (uint32_t)(i % 3) * 4096;
		t[i].req.length = 8192;
		t[i].req.buf = bufs + i * 16384;
		t[i].req.crcs = crcs[i];
		t[i].req.cb = treq_cb;
		t[i].req.op = i % 2 ? BS_OP_READ : BS_OP_WRITE;
		if (i == 6) {
			t[i].req.op = BS_OP_DISCARD;
		}
		memset(t[i].req.buf, 'a' + i, 8192);
		crc32c_blocks(t[i].req.buf, 8192, crcs[i]);
		assert_int_equal(bs_submit(e->bs, &t[i].req), 0);
	}
	for (i = 0; i < 8; i++) {
		assert_int_equal(tenv_poll_until(e, &t[i].done), 0);
		assert_int_equal(t[i].res, 0);
	}
	/* read 1 (blocks 1-2) after write 0 (blocks 0-1) */
	assert_int_equal(bufs[1 * 16384], 'a');
	assert_int_equal(bufs[1 * 16384 + 4096], 0);
	/* read 3 (blocks 0-1) after write 2 (blocks 2-3) and write 0 */
	assert_int_equal(bufs[3 * 16384], 'a');
	/* read 5 (blocks 2-3) after write 4 (blocks 1-2) */
	assert_int_equal(bufs[5 * 16384], 'e');
	assert_int_equal(bufs[5 * 16384 + 4096], 'c');
	/* read 7 (blocks 1-2) after discard 6 (blocks 0-1) */
	assert_int_equal(bufs[7 * 16384], 0);
	assert_int_equal(bufs[7 * 16384 + 4096], 'e');
	free(bufs);
}

/* More metadata blocks than the cache holds: eviction, reloads, dirty
 * blocks pinned until checkpoints, on a cold cache after reopen. */
static void test_meta_cache_eviction(void **state)
{
	struct tenv e;
	struct bs_opts o = {.meta_cache_mb = 1};
	struct bs_stat st;
	uint64_t i, n;

	assert_int_equal(tenv_setup(&e, *state, 320ull << 20, OBJ, JRN), 0);
	bs_close(e.bs);
	assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);
	bs_stat(e.bs, &st);
	n = st.objects_total;
	/* 16 entries per 64 KiB object: 16 objects per meta block */
	assert_true(n / 16 > 256 + 16);
	assert_true(st.meta_cache_bytes < (2u << 20));
	for (i = 0; i < n; i += 5) {
		assert_int_equal(tenv_write(&e, 8, i, (uint32_t)(i % 16) * 4096, 4096, i + 1), 0);
	}
	for (i = 0; i < n; i += 5) {
		assert_int_equal(tenv_check(&e, 8, i, (uint32_t)(i % 16) * 4096, 4096, i + 1), 0);
	}
	bs_close(e.bs);
	assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);
	for (i = n; i-- > 0;) {
		if (i % 5 == 0) {
			assert_int_equal(
				tenv_check(&e, 8, i, (uint32_t)(i % 16) * 4096, 4096, i + 1), 0);
		}
	}
	bs_stat(e.bs, &st);
	assert_int_equal(st.objects_used, (n + 4) / 5);
	assert_true(st.index_bytes < 2 * 32 * n + 65536);
	tenv_teardown(&e);
}

/* Read with the present bitmap: submit and wait. */
static int read_present(struct tenv *e, uint64_t inode, uint64_t objno, uint32_t off,
			uint32_t len, uint64_t *present)
{
	struct treq t;
	int ret;

	memset(&t, 0, sizeof(t));
	t.req.op = BS_OP_READ;
	t.req.inode = inode;
	t.req.objno = objno;
	t.req.offset = off;
	t.req.length = len;
	t.req.buf = e->buf;
	t.req.crcs = e->crcs;
	t.req.present = present;
	t.req.cb = treq_cb;
	ret = bs_submit(e->bs, &t.req);
	if (ret < 0) {
		return ret;
	}
	ret = tenv_poll_until(e, &t.done);
	return ret < 0 ? ret : t.res;
}

/* bs_req.present: bit i iff block i of the extent is mapped (a written
 * block of zeroes too); every other bit of the words is cleared. */
static void test_present(void **state)
{
	struct tenv *e = *state;
	uint64_t present[2], ver = 0;

	/* absent object: all clear */
	memset(present, 0xff, sizeof(present));
	assert_int_equal(read_present(e, 5, 0, 0, OBJ, present), 0);
	assert_int_equal(present[0], 0);
	assert_int_equal(present[1], ~0ull); /* beyond BS_PRESENT_WORDS(OBJ): untouched */

	tenv_fill(e, 3, 8192);
	assert_int_equal(tenv_io(e, BS_OP_WRITE, 5, 0, 4096, 8192, e->buf, e->crcs, &ver), 0);
	memset(e->buf, 0, 4096);
	e->crcs[0] = crc32c_zero_block();
	ver = 0;
	assert_int_equal(tenv_io(e, BS_OP_WRITE, 5, 0, 5 * 4096, 4096, e->buf, e->crcs, &ver), 0);
	/* mapped: 1, 2, 5 */
	memset(present, 0xff, sizeof(present));
	assert_int_equal(read_present(e, 5, 0, 0, OBJ, present), 0);
	assert_int_equal(present[0], (1ull << 1) | (1ull << 2) | (1ull << 5));
	/* unmapping block 1 clears its bit; relative to the extent's start */
	ver = 0;
	assert_int_equal(tenv_io(e, BS_OP_WRITE_ZEROES, 5, 0, 4096, 4096, NULL, NULL, &ver), 0);
	memset(present, 0xff, sizeof(present));
	assert_int_equal(read_present(e, 5, 0, 2 * 4096, 4 * 4096, present), 0);
	assert_int_equal(present[0], (1ull << 0) | (1ull << 3));
	/* an extent without a mapped block (object exists) */
	memset(present, 0xff, sizeof(present));
	assert_int_equal(read_present(e, 5, 0, 6 * 4096, 4 * 4096, present), 0);
	assert_int_equal(present[0], 0);
	/* NULL: not wanted, reads as before */
	assert_int_equal(read_present(e, 5, 0, 0, OBJ, NULL), 0);
}

/* Extents of more than 64 blocks use several words. */
static void test_present_words(void **state)
{
	struct tenv e;
	uint64_t present[4], ver;
	uint32_t blks[] = {0, 63, 64, 130, 255};

	assert_int_equal(tenv_setup(&e, *state, 64ull << 20, 1u << 20, JRN), 0);
	for (unsigned int i = 0; i < sizeof(blks) / sizeof(blks[0]); i++) {
		tenv_fill(&e, i + 1, 4096);
		ver = 0;
		assert_int_equal(tenv_io(&e, BS_OP_WRITE, 9, 2, blks[i] * 4096, 4096, e.buf,
					 e.crcs, &ver),
				 0);
	}
	memset(present, 0xff, sizeof(present));
	assert_int_equal(BS_PRESENT_WORDS(1u << 20), 4);
	assert_int_equal(read_present(&e, 9, 2, 0, 1u << 20, present), 0);
	assert_int_equal(present[0], 1ull | (1ull << 63));
	assert_int_equal(present[1], 1ull);
	assert_int_equal(present[2], 1ull << 2);
	assert_int_equal(present[3], 1ull << 63);
	tenv_teardown(&e);
}

/* The blockstore's stats once the reactor has nothing left to run now. */
static struct bs_stat held_stat(struct tenv *e)
{
	struct bs_stat st;
	int idle = 0;

	while (idle < 3) {
		idle = reactor_poll(e->r, false) > 0 ? 0 : idle + 1;
	}
	bs_stat(e->bs, &st);
	return st;
}

/* Poll until no acknowledged write waits for its in-place copy; false if
 * that takes more than a second. */
static bool applies_drain(struct tenv *e)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (held_stat(e).applies_pending) {
		reactor_poll(e->r, false);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 1) {
			return false;
		}
	}
	return true;
}

/*
 * Held in-place applies (bs_opts.apply_batch, journal not flushed): held
 * until the batch is full, or something needs them (a read that needs the
 * device, a discard of the blocks, a later write of the same block), or
 * the delay passes; at close; after a crash the journal brings them back
 * (with flushes, see test_applies_after_journal). Reads of their blocks
 * alone come from the journal mirror.
 */
static void test_held_applies(void **state)
{
	struct bs_opts o = {.flush_mode = BS_FLUSH_NONE, .apply_batch = 4};
	static uint8_t want[12288] __attribute__((aligned(4096)));
	uint64_t present[1], reads_journal, crc_errors;
	uint32_t rcrcs[1];
	struct treq tw, tr;
	struct tenv e;
	int i;

	assert_int_equal(tenv_setup(&e, *state, DEV, OBJ, JRN), 0);
	bs_close(e.bs);
	assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);

	/* three held; the fourth fills the batch and all four go */
	for (i = 0; i < 3; i++) {
		assert_int_equal(tenv_write(&e, 3, (uint64_t)i, 4096, 4096, 10 + i), 0);
	}
	assert_int_equal(held_stat(&e).applies_held, 3);
	assert_int_equal(held_stat(&e).applies_pending, 3);
	assert_int_equal(tenv_write(&e, 3, 3, 4096, 4096, 13), 0);
	assert_int_equal(held_stat(&e).applies_held, 0);
	assert_true(applies_drain(&e));
	for (i = 0; i < 4; i++) {
		assert_int_equal(tenv_check(&e, 3, (uint64_t)i, 4096, 4096, 10 + i), 0);
	}

	/* a read of held writes' blocks comes from the journal mirror, block by
	 * block from the write that has it, and the batch stays held */
	reads_journal = held_stat(&e).reads_journal;
	assert_int_equal(tenv_write(&e, 4, 0, 0, 4096, 20), 0);
	assert_int_equal(held_stat(&e).applies_held, 1); /* held before the next comes */
	assert_int_equal(tenv_write(&e, 4, 0, 4096, 4096, 21), 0);
	assert_int_equal(held_stat(&e).applies_held, 2);
	assert_int_equal(tenv_check(&e, 4, 0, 0, 4096, 20), 0);
	tenv_fill(&e, 21, 4096);
	memcpy(want + 4096, e.buf, 4096);
	tenv_fill(&e, 20, 4096);
	memcpy(want, e.buf, 4096);
	present[0] = 0;
	assert_int_equal(read_present(&e, 4, 0, 0, 8192, present), 0);
	assert_memory_equal(e.buf, want, 8192);
	assert_int_equal(e.crcs[1], crc32c(0, want + 4096, 4096));
	assert_int_equal(present[0], 3);
	assert_int_equal(held_stat(&e).reads_journal, reads_journal + 2);
	assert_int_equal(held_stat(&e).applies_held, 2);
	/* one that also needs the device releases the batch and waits */
	memset(want + 8192, 0, 4096);
	assert_int_equal(read_present(&e, 4, 0, 0, 12288, present), 0);
	assert_memory_equal(e.buf, want, 12288);
	assert_int_equal(present[0], 3);
	assert_int_equal(held_stat(&e).reads_journal, reads_journal + 2);
	assert_int_equal(held_stat(&e).applies_held, 0);
	assert_true(applies_drain(&e));

	/* a read behind a write still in the journal: served from the mirror
	 * once the write is acknowledged */
	tenv_fill(&e, 25, 4096);
	memcpy(want, e.buf, 4096);
	memset(&tw, 0, sizeof(tw));
	tw.req = (struct bs_req){.op = BS_OP_WRITE,
				 .inode = 4,
				 .objno = 2,
				 .length = 4096,
				 .buf = want,
				 .crcs = e.crcs,
				 .cb = treq_cb};
	memset(&tr, 0, sizeof(tr));
	tr.req = (struct bs_req){.op = BS_OP_READ,
				 .inode = 4,
				 .objno = 2,
				 .length = 4096,
				 .buf = e.buf,
				 .crcs = rcrcs,
				 .cb = treq_cb};
	assert_int_equal(bs_submit(e.bs, &tw.req), 0);
	assert_int_equal(bs_submit(e.bs, &tr.req), 0);
	assert_int_equal(tenv_poll_until(&e, &tr.done), 0);
	assert_true(tw.done);
	assert_int_equal(tw.res, 0);
	assert_int_equal(tr.res, 0);
	assert_memory_equal(e.buf, want, 4096);
	assert_int_equal(held_stat(&e).reads_journal, reads_journal + 3);
	assert_true(applies_drain(&e));

	/* a copy in the mirror that fails its record's crc is never returned:
	 * the read takes the device path, where the apply wrote the same bad
	 * copy, and fails its crc there too (-EIO, not data) */
	assert_int_equal(tenv_write(&e, 4, 3, 0, 4096, 26), 0);
	assert_int_equal(held_stat(&e).applies_held, 1);
	crc_errors = held_stat(&e).crc_errors;
	assert_int_equal(bs_test_mirror_flip(e.bs, 100, 0x10), 0);
	assert_int_equal(tenv_check(&e, 4, 3, 0, 4096, 26), -EIO);
	assert_int_equal(held_stat(&e).crc_errors, crc_errors + 2);
	assert_int_equal(held_stat(&e).reads_journal, reads_journal + 3);
	assert_true(applies_drain(&e));
	assert_int_equal(tenv_write(&e, 4, 3, 0, 4096, 27), 0);
	assert_int_equal(tenv_check(&e, 4, 3, 0, 4096, 27), 0);

	/* the same with an earlier held write of the object ahead of it: its
	 * apply finishing wakes the read before the damaged one's is done,
	 * and the read does not try the mirror again (one error logged and
	 * counted for the copy, one for the device read) */
	i = held_stat(&e).applies_held;
	assert_int_equal(tenv_write(&e, 4, 6, 4096, 4096, 28), 0);
	assert_int_equal(held_stat(&e).applies_held, i + 1); /* before the next */
	assert_int_equal(tenv_write(&e, 4, 6, 0, 4096, 29), 0);
	assert_int_equal(held_stat(&e).applies_held, i + 2);
	crc_errors = held_stat(&e).crc_errors;
	assert_int_equal(bs_test_mirror_flip(e.bs, 200, 0x01), 0);
	assert_int_equal(tenv_check(&e, 4, 6, 0, 4096, 29), -EIO);
	assert_int_equal(held_stat(&e).crc_errors, crc_errors + 2);
	assert_true(applies_drain(&e));
	assert_int_equal(tenv_check(&e, 4, 6, 4096, 4096, 28), 0);

	/* a later write of a held block releases the batch; the last write
	 * wins, and is held itself (its read came from the mirror) */
	assert_int_equal(tenv_write(&e, 5, 0, 0, 4096, 30), 0);
	assert_int_equal(held_stat(&e).applies_held, 1);
	assert_int_equal(tenv_write(&e, 5, 0, 0, 4096, 31), 0);
	assert_int_equal(held_stat(&e).applies_held, 1);
	assert_int_equal(tenv_check(&e, 5, 0, 0, 4096, 31), 0);
	assert_int_equal(held_stat(&e).applies_held, 1);
	assert_int_equal(held_stat(&e).reads_journal, reads_journal + 5);

	/* a discard behind held writes */
	assert_int_equal(tenv_write(&e, 6, 0, 0, 4096, 40), 0);
	assert_int_equal(held_stat(&e).applies_held, 2);
	assert_int_equal(tenv_io(&e, BS_OP_DISCARD, 6, 0, 0, OBJ, NULL, NULL, NULL), 0);
	assert_int_equal(tenv_check(&e, 6, 0, 0, 4096, 0), 0);
	assert_true(applies_drain(&e));

	/* held at close: written in place before the store closes */
	assert_int_equal(tenv_write(&e, 7, 0, 0, 4096, 50), 0);
	assert_int_equal(held_stat(&e).applies_held, 1);
	bs_close(e.bs);
	assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);
	assert_int_equal(tenv_check(&e, 7, 0, 0, 4096, 50), 0);

	/* with a delay: held until it has passed, then the next apply or
	 * bs_tick() sends the batch */
	bs_close(e.bs);
	o.apply_batch = 16;
	o.apply_delay_us = 2000;
	assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);
	assert_int_equal(tenv_write(&e, 9, 0, 0, 4096, 70), 0);
	bs_tick(e.bs);
	assert_int_equal(held_stat(&e).applies_held, 1);
	usleep(3000);
	assert_int_equal(held_stat(&e).applies_held, 1);
	bs_tick(e.bs);
	assert_int_equal(held_stat(&e).applies_held, 0);
	assert_true(applies_drain(&e));
	assert_int_equal(tenv_write(&e, 9, 1, 0, 4096, 71), 0);
	assert_int_equal(tenv_write(&e, 9, 2, 0, 4096, 72), 0);
	assert_int_equal(held_stat(&e).applies_held, 2);
	usleep(3000);
	assert_int_equal(tenv_write(&e, 9, 3, 0, 4096, 73), 0);
	assert_int_equal(held_stat(&e).applies_held, 0);
	assert_true(applies_drain(&e));
	for (i = 0; i < 4; i++) {
		assert_int_equal(tenv_check(&e, 9, (uint64_t)i, 0, 4096, 70 + i), 0);
	}
	tenv_teardown(&e);
}

/*
 * With a flush per journal write, apply_batch is not used: a write's apply
 * is held until the next journal write has gone to the device and follows
 * it; the delay and everything that releases a batch still do. On "sim" a
 * crash drops every unflushed device write, so the held and the released
 * but unflushed applies come back from the journal.
 */
static void test_applies_after_journal(void **state)
{
	struct bs_opts o = {
		.flush_mode = BS_FLUSH_ALWAYS, .apply_batch = 4, .apply_delay_us = 2000};
	struct bs_stat st;
	struct tenv e;
	int i;

	assert_int_equal(tenv_setup(&e, *state, DEV, OBJ, JRN), 0);
	bs_close(e.bs);
	assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);
	st = held_stat(&e);
	assert_true(st.flush_always);

	/* each write's journal write releases the one held before it */
	assert_int_equal(tenv_write(&e, 3, 0, 0, 4096, 10), 0);
	assert_int_equal(held_stat(&e).applies_held, 1);
	for (i = 1; i < 6; i++) {
		assert_int_equal(tenv_write(&e, 3, (uint64_t)i, 0, 4096, 10 + i), 0);
		st = held_stat(&e);
		assert_int_equal(st.applies_held, 1);
		assert_int_equal(st.applies_pending, 1);
	}
	/* the last one goes once the delay has passed */
	usleep(3000);
	bs_tick(e.bs);
	assert_int_equal(held_stat(&e).applies_held, 0);
	assert_true(applies_drain(&e));
	for (i = 0; i < 6; i++) {
		assert_int_equal(tenv_check(&e, 3, (uint64_t)i, 0, 4096, 10 + i), 0);
	}

	/* held at a crash: replay writes it, and the one released before */
	if (!strcmp(e.backend, "sim")) {
		assert_int_equal(tenv_write(&e, 8, 0, 0, 4096, 60), 0);
		assert_int_equal(tenv_write(&e, 8, 1, 0, 4096, 61), 0);
		assert_int_equal(held_stat(&e).applies_held, 1);
		bs_abandon(e.bs);
		bs_sim_crash(e.dev);
		assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);
		assert_int_equal(tenv_check(&e, 8, 0, 0, 4096, 60), 0);
		assert_int_equal(tenv_check(&e, 8, 1, 0, 4096, 61), 0);
	}

	/* held at close: written in place before the store closes */
	assert_int_equal(tenv_write(&e, 9, 0, 0, 4096, 70), 0);
	assert_int_equal(held_stat(&e).applies_held, 1);
	bs_close(e.bs);
	assert_int_equal(bs_open(e.dev, &o, &e.bs), 0);
	assert_int_equal(tenv_check(&e, 9, 0, 0, 4096, 70), 0);
	tenv_teardown(&e);
}

#define BOTH(fn)                                                                                   \
	{#fn "/ram", fn, setup, teardown, (void *)"ram"},                                          \
	{                                                                                          \
#fn "/sim", fn, setup, teardown, (void *)"sim"                                     \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_rw_discard),
		BOTH(test_bad_requests),
		BOTH(test_enospc),
		BOTH(test_reopen_and_list),
		BOTH(test_overlap_order),
		BOTH(test_present),
		{"test_held_applies/ram", test_held_applies, NULL, NULL, "ram"},
		{"test_held_applies/sim", test_held_applies, NULL, NULL, "sim"},
		{"test_applies_after_journal/ram", test_applies_after_journal, NULL, NULL, "ram"},
		{"test_applies_after_journal/sim", test_applies_after_journal, NULL, NULL, "sim"},
		{"test_present_words/ram", test_present_words, NULL, NULL, "ram"},
		{"test_meta_cache_eviction/ram", test_meta_cache_eviction, NULL, NULL, "ram"},
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
