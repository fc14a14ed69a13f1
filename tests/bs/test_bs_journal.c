/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Journal replay: acked writes survive a crash before any checkpoint; the
 * ring wraps many times with checkpoints; a corrupt record ends replay
 * exactly there; a torn batch (tail blocks never written) is ignored;
 * batches in flight together are acked in ring order; mutations queued
 * together share one group record, replayed whole or not at all; single
 * WRITE / UNMAP records (the format before group records) still replay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bs_test_util.h"
#include "common/crc.h"
#include "server/bs_format.h"

#define DEV (16ull << 20)
#define OBJ (64u << 10)
#define JRN (2ull << 20)

static int sync_dev_write(struct tenv *e, void *buf, size_t len, uint64_t off)
{
	return bs_test_dev_io(e->dev, BS_TEST_IO_WRITE, buf, len, off);
}

static void crash_reopen(struct tenv *e)
{
	bs_abandon(e->bs);
	e->bs = NULL;
	bs_sim_crash(e->dev);
	assert_int_equal(bs_open(e->dev, NULL, &e->bs), 0);
}

static void test_replay_after_crash(void **state)
{
	struct tenv e;
	struct bs_test_journal j0, j1;
	uint64_t i;

	assert_int_equal(tenv_setup(&e, "sim", DEV, OBJ, JRN), 0);
	bs_test_journal_info(e.bs, &j0);
	for (i = 0; i < 20; i++) {
		assert_int_equal(tenv_write(&e, 1, i, (uint32_t)(i % 8) * 4096, 8192, 500 + i), 0);
	}
	assert_int_equal(tenv_io(&e, BS_OP_DISCARD, 1, 3, 0, OBJ, NULL, NULL, NULL), 0);
	bs_test_journal_info(e.bs, &j1);
	assert_int_equal(j1.checkpoints, j0.checkpoints); /* all still in the journal */
	crash_reopen(&e);
	for (i = 0; i < 20; i++) {
		assert_int_equal(
			tenv_check(&e, 1, i, (uint32_t)(i % 8) * 4096, 8192, i == 3 ? 0 : 500 + i),
			0);
	}
	/* and again: replay is idempotent, recovery's own checkpoint holds */
	crash_reopen(&e);
	for (i = 0; i < 20; i++) {
		assert_int_equal(
			tenv_check(&e, 1, i, (uint32_t)(i % 8) * 4096, 8192, i == 3 ? 0 : 500 + i),
			0);
	}
	tenv_teardown(&e);
}

static void test_wraparound(void **state)
{
	struct tenv e;
	struct bs_test_journal j;
	uint64_t tags[16][16] = {{0}}, step, wraps = 0, ckpts = 0;
	uint32_t o, b, n;

	assert_int_equal(tenv_setup(&e, "sim", DEV, OBJ, JRN), 0);
	for (step = 1; step <= 3000; step++) {
		uint8_t *wbuf = e.buf + (512u << 10);
		uint32_t crcs[16];

		o = (uint32_t)(step * 7 % 16);
		b = (uint32_t)(step * 13 % 16);
		n = 1 + (uint32_t)(step % 9);
		if (b + n > 16) {
			n = 16 - b;
		}
		for (uint32_t k = 0; k < n; k++) {
			tenv_fill(&e, step * 16 + b + k, 4096);
			memcpy(wbuf + k * 4096, e.buf, 4096);
			tags[o][b + k] = step * 16 + b + k;
		}
		crc32c_blocks(wbuf, n * 4096, crcs);
		assert_int_equal(
			tenv_io(&e, BS_OP_WRITE, 2, o, b * 4096, n * 4096, wbuf, crcs, NULL), 0);
		if (step % 700 == 0) {
			bs_test_journal_info(e.bs, &j);
			wraps += j.wraps;
			ckpts += j.checkpoints;
			crash_reopen(&e);
		}
	}
	bs_test_journal_info(e.bs, &j);
	wraps += j.wraps;
	ckpts += j.checkpoints;
	/* ~70 MiB through a 2 MiB ring */
	assert_true(wraps >= 20);
	assert_true(ckpts >= 30);
	crash_reopen(&e);
	for (o = 0; o < 16; o++) {
		for (b = 0; b < 16; b++) {
			assert_int_equal(tenv_check(&e, 2, o, b * 4096, 4096, tags[o][b]), 0);
		}
	}
	tenv_teardown(&e);
}

/*
 * Five single-block writes, each its own record. Corrupt record 3 on the
 * device (a data block bit, or make the tail of a batch never written) and
 * crash: records 1-2 replay, 3-5 do not.
 */
static void corrupt_case(bool torn)
{
	struct tenv e;
	struct bs_test_journal j[6];
	struct bs_obj_stat os;
	uint64_t i;
	uint8_t *zero = NULL;
	int ret;

	assert_int_equal(tenv_setup(&e, "sim", DEV, OBJ, JRN), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(tenv_write(&e, 7, 0, (uint32_t)i * 4096, 4096, 100 + i), 0);
	}
	/* checkpointed: all five applied; now overwrite them through the journal */
	assert_int_equal(tenv_reopen(&e), 0);
	for (i = 0; i < 5; i++) {
		bs_test_journal_info(e.bs, &j[i]);
		assert_int_equal(tenv_write(&e, 7, 0, (uint32_t)i * 4096, 4096, 200 + i), 0);
	}
	bs_test_journal_info(e.bs, &j[5]);
	for (i = 0; i < 5; i++) {
		assert_int_equal(j[i + 1].head, j[i].head + 8192); /* no wrap in this test */
	}
	if (!torn) {
		/* one bit of record 3's data block */
		bs_sim_flip_bit(e.dev, j[2].journal_off + j[2].head + 4096 + 100, 3);
	} else {
		/* records 3..5 never reached the media (a torn batch) */
		assert_int_equal(posix_memalign((void **)&zero, 4096, 3 * 8192), 0);
		memset(zero, 0, 3 * 8192);
		assert_int_equal(sync_dev_write(&e, zero, 3 * 8192, j[2].journal_off + j[2].head),
				 0);
		assert_int_equal(bs_test_dev_io(e.dev, BS_TEST_IO_FLUSH, NULL, 0, 0), 0);
		free(zero);
	}
	crash_reopen(&e);
	/* replay stopped right before record 3: the object's version is the
	 * one record 2 gave it (versions 1-5, then 6-10) */
	assert_int_equal(bs_stat_object(e.bs, 7, 0, &os), 0);
	assert_int_equal(os.version, 7);
	for (i = 0; i < 5; i++) {
		ret = tenv_check(&e, 7, 0, (uint32_t)i * 4096, 4096, i < 2 ? 200 + i : 100 + i);
		if (i < 2) {
			assert_int_equal(ret, 0);
		} else {
			/* the lost record may already have been applied in place:
			 * then the block fails its checksum; never the lost data */
			assert_true(ret == 0 || ret == -EIO);
			assert_int_not_equal(
				tenv_check(&e, 7, 0, (uint32_t)i * 4096, 4096, 200 + i), 0);
		}
	}
	/* the store keeps working after it */
	assert_int_equal(tenv_write(&e, 7, 0, 4 * 4096, 4096, 300), 0);
	crash_reopen(&e);
	assert_int_equal(tenv_check(&e, 7, 0, 4 * 4096, 4096, 300), 0);
	assert_int_equal(tenv_check(&e, 7, 0, 0, 4096, 200), 0);
	tenv_teardown(&e);
}

static void test_corrupt_record(void **state)
{
	corrupt_case(false);
}

static void test_torn_batch(void **state)
{
	corrupt_case(true);
}

/*
 * Pipelined group commit: writes submitted one reactor turn apart form
 * batches that are in flight together and that the simulated device
 * completes in random order. Acks must still come in journal order (here the
 * submission order: every meta block is cached, so nothing reorders the
 * writes before the journal), and everything acked survives a crash.
 */
#define PIPE_N 192

static struct treq *pipe_reqs;
static uint32_t pipe_order[PIPE_N], pipe_acked;

static void pipe_cb(struct bs_req *req, int res)
{
	treq_cb(req, res);
	pipe_order[pipe_acked++] = (uint32_t)(container_of(req, struct treq, req) - pipe_reqs);
}

static void test_pipelined_acks(void **state)
{
	struct tenv e;
	struct bs_test_journal j;
	struct treq *p = calloc(PIPE_N, sizeof(*p));
	uint8_t *bufs = NULL;
	uint32_t *crcs = calloc(PIPE_N, sizeof(*crcs));
	uint32_t i, seed;

	assert_non_null(p);
	assert_non_null(crcs);
	pipe_reqs = p;
	assert_int_equal(posix_memalign((void **)&bufs, 4096, (size_t)PIPE_N * 4096), 0);
	for (seed = 1; seed <= 8; seed++) {
		assert_int_equal(tenv_setup(&e, "sim", DEV, OBJ, JRN), 0);
		bs_sim_seed(e.dev, seed);
		for (i = 0; i < 16; i++) {
			assert_int_equal(tenv_write(&e, 1, i, 0, 4096, 1), 0);
		}
		pipe_acked = 0;
		for (i = 0; i < PIPE_N; i++) {
			tenv_fill(&e, 1000 + i, 4096);
			memcpy(bufs + (size_t)i * 4096, e.buf, 4096);
			memset(&p[i], 0, sizeof(p[i]));
			p[i].req.op = BS_OP_WRITE;
			p[i].req.inode = 1;
			p[i].req.objno = i % 16;
			p[i].req.offset = (i / 16 + 1) * 4096;
			p[i].req.length = 4096;
			p[i].req.buf = bufs + (size_t)i * 4096;
			p[i].req.crcs = &crcs[i];
			crcs[i] = e.crcs[0];
			p[i].req.cb = pipe_cb;
			assert_int_equal(bs_submit(e.bs, &p[i].req), 0);
			reactor_poll(e.r, false);
		}
		while (pipe_acked < PIPE_N) {
			reactor_poll(e.r, false);
		}
		for (i = 0; i < PIPE_N; i++) {
			assert_true(p[i].done);
			assert_int_equal(p[i].res, 0);
			assert_int_equal(pipe_order[i], i);
		}
		bs_test_journal_info(e.bs, &j);
		assert_true(j.batches_max > 1);
		crash_reopen(&e);
		for (i = 0; i < PIPE_N; i++) {
			assert_int_equal(
				tenv_check(&e, 1, i % 16, (i / 16 + 1) * 4096, 4096, 1000 + i), 0);
		}
		tenv_teardown(&e);
	}
	free(bufs);
	free(crcs);
	free(p);
}

/*
 * Writes queued in one reactor turn share one group record: one header block
 * for all of them. A group counts whole or not at all: one bad data block in
 * it loses every entry (their blocks read the old data or fail their crc,
 * never the new data) and nothing before it.
 */
#define GRP_N 8

static void group_case(bool corrupt)
{
	struct tenv e;
	struct bs_test_journal j0, j1;
	struct treq *t = calloc(GRP_N, sizeof(*t));
	uint32_t crcs[GRP_N], i;
	uint8_t *bufs = NULL;
	int ret;

	assert_non_null(t);
	assert_int_equal(posix_memalign((void **)&bufs, 4096, GRP_N * 4096), 0);
	assert_int_equal(tenv_setup(&e, "sim", DEV, OBJ, JRN), 0);
	for (i = 0; i < GRP_N; i++) {
		assert_int_equal(tenv_write(&e, 3, 0, i * 4096, 4096, 100 + i), 0);
	}
	assert_int_equal(tenv_reopen(&e), 0); /* checkpointed: the old data is in place */
	assert_int_equal(tenv_write(&e, 3, 1, 0, 4096, 150), 0);
	assert_int_equal(tenv_check(&e, 3, 0, 0, 4096, 100), 0); /* meta block cached */
	bs_test_journal_info(e.bs, &j0);
	for (i = 0; i < GRP_N; i++) {
		tenv_fill(&e, 200 + i, 4096);
		memcpy(bufs + (size_t)i * 4096, e.buf, 4096);
		crcs[i] = e.crcs[0];
		t[i].req.op = BS_OP_WRITE;
		t[i].req.inode = 3;
		t[i].req.objno = 0;
		t[i].req.offset = i * 4096;
		t[i].req.length = 4096;
		t[i].req.buf = bufs + (size_t)i * 4096;
		t[i].req.crcs = &crcs[i];
		t[i].req.cb = treq_cb;
		assert_int_equal(bs_submit(e.bs, &t[i].req), 0);
	}
	for (i = 0; i < GRP_N; i++) {
		assert_int_equal(tenv_poll_until(&e, &t[i].done), 0);
		assert_int_equal(t[i].res, 0);
	}
	bs_test_journal_info(e.bs, &j1);
	assert_int_equal(j1.groups, j0.groups + 1);
	assert_int_equal(j1.entries, j0.entries + GRP_N);
	assert_int_equal(j1.head, j0.head + (1 + GRP_N) * 4096); /* one header block */
	if (corrupt) {
		bs_sim_flip_bit(e.dev, j0.journal_off + j0.head + (1 + GRP_N / 2) * 4096 + 100, 5);
	}
	crash_reopen(&e);
	assert_int_equal(tenv_check(&e, 3, 1, 0, 4096, 150), 0);
	for (i = 0; i < GRP_N; i++) {
		if (!corrupt) {
			assert_int_equal(tenv_check(&e, 3, 0, i * 4096, 4096, 200 + i), 0);
			continue;
		}
		ret = tenv_check(&e, 3, 0, i * 4096, 4096, 100 + i);
		assert_true(ret == 0 || ret == -EIO);
		assert_int_not_equal(tenv_check(&e, 3, 0, i * 4096, 4096, 200 + i), 0);
	}
	tenv_teardown(&e);
	free(bufs);
	free(t);
}

static void test_group(void **state)
{
	group_case(false);
}

static void test_group_corrupt(void **state)
{
	group_case(true);
}

/*
 * A single (pre-group) record of object 5:2 in @blk, block 0 of the extent
 * [offset, offset + 4096), sealed the way the old format did.
 */
static struct bs_jrec *old_rec(uint8_t *blk, uint64_t seq, uint32_t type, uint64_t version,
			       uint64_t slot, uint32_t offset, uint32_t mapped)
{
	struct bs_jrec *h = (struct bs_jrec *)blk;

	memset(blk, 0, 4096);
	h->magic = BS_JREC_MAGIC;
	h->seq = seq;
	h->type = type;
	h->inode = 5;
	h->objno = 2;
	h->version = version;
	h->slot = (uint32_t)slot;
	h->offset = offset;
	h->length = 4096;
	h->mapped = mapped;
	return h;
}

static void old_rec_seal(struct bs_jrec *h)
{
	h->crc = 0;
	h->crc = crc32c(0, h, sizeof(*h));
}

/*
 * A journal written before group records (format version 1) holds single
 * WRITE and UNMAP records; replay must still apply them, and the open must
 * mark the store version 2. Hand-write a WRITE (block 1) and an UNMAP
 * (block 0) of an object at the journal's tail of a version 1 store, then
 * open.
 */
static void test_single_records(void **state)
{
	struct tenv e;
	struct bs_obj_stat os;
	const struct bs_jsb *jsb;
	struct bs_sb sb;
	struct bs_jrec *h;
	uint64_t d0, m0, slot, pos, seq;
	uint8_t *blk = NULL;

	assert_int_equal(posix_memalign((void **)&blk, 4096, 4 * 4096), 0);
	assert_int_equal(tenv_setup(&e, "sim", DEV, OBJ, JRN), 0);
	assert_int_equal(tenv_write(&e, 5, 2, 0, 4096, 40), 0);
	assert_int_equal(bs_stat_object(e.bs, 5, 2, &os), 0);
	assert_int_equal(bs_test_block_offsets(e.bs, 5, 2, 0, &d0, &m0), 0);
	assert_int_equal(tenv_reopen(&e), 0); /* the journal is empty now */
	bs_close(e.bs);
	e.bs = NULL;

	/* superblock (block 0) and the newer journal superblock (2 or 3) */
	assert_int_equal(bs_test_dev_io(e.dev, BS_TEST_IO_READ, blk, 4 * 4096, 0), 0);
	memcpy(&sb, blk, sizeof(sb));
	jsb = (const struct bs_jsb *)(blk + 2 * 4096);
	if (((const struct bs_jsb *)(blk + 3 * 4096))->gen > jsb->gen) {
		jsb = (const struct bs_jsb *)(blk + 3 * 4096);
	}
	slot = (d0 - sb.data_off) / sb.object_size;
	pos = jsb->tail_pos;
	seq = jsb->tail_seq;

	/* a store of format version 1, as the Keel before group records made */
	assert_int_equal(sb.version, BS_FMT_VERSION);
	sb.version = 1;
	sb.crc = 0;
	sb.crc = crc32c(0, &sb, sizeof(sb));
	memset(blk, 0, 4096);
	memcpy(blk, &sb, sizeof(sb));
	assert_int_equal(sync_dev_write(&e, blk, 4096, 0), 0);
	assert_int_equal(sync_dev_write(&e, blk, 4096, 4096), 0);

	/* WRITE block 1: header + one data block */
	h = old_rec(blk, seq, BS_JREC_WRITE, os.version + 1, slot, 4096, 2);
	tenv_fill(&e, 41, 4096);
	memcpy(blk + 4096, e.buf, 4096);
	h->data_crcs[0] = e.crcs[0];
	old_rec_seal(h);
	assert_int_equal(sync_dev_write(&e, blk, 2 * 4096, sb.journal_off + pos), 0);
	/* UNMAP block 0 */
	h = old_rec(blk, seq + 1, BS_JREC_UNMAP, os.version + 2, slot, 0, 1);
	old_rec_seal(h);
	assert_int_equal(sync_dev_write(&e, blk, 4096, sb.journal_off + pos + 2 * 4096), 0);
	assert_int_equal(bs_test_dev_io(e.dev, BS_TEST_IO_FLUSH, NULL, 0, 0), 0);

	assert_int_equal(bs_open(e.dev, NULL, &e.bs), 0);
	assert_int_equal(bs_stat_object(e.bs, 5, 2, &os), 0);
	assert_int_equal(os.version, h->version);
	/* upgraded on open: a Keel that knows only version 1 refuses it now */
	assert_int_equal(bs_test_dev_io(e.dev, BS_TEST_IO_READ, blk, 2 * 4096, 0), 0);
	assert_int_equal(((const struct bs_sb *)blk)->version, BS_FMT_VERSION);
	assert_int_equal(((const struct bs_sb *)(blk + 4096))->version, BS_FMT_VERSION);
	assert_int_equal(tenv_check(&e, 5, 2, 0, 4096, 0), 0);
	assert_int_equal(tenv_check(&e, 5, 2, 4096, 4096, 41), 0);
	/* and the store goes on with group records after them */
	assert_int_equal(tenv_write(&e, 5, 2, 8192, 4096, 42), 0);
	crash_reopen(&e);
	assert_int_equal(tenv_check(&e, 5, 2, 4096, 4096, 41), 0);
	assert_int_equal(tenv_check(&e, 5, 2, 8192, 4096, 42), 0);
	tenv_teardown(&e);
	free(blk);
}

/* A store of a newer format version is refused, not misread. */
static void test_newer_version(void **state)
{
	struct tenv e;
	struct bs_sb sb;
	struct bs *bs;
	uint8_t *blk = NULL;

	assert_int_equal(posix_memalign((void **)&blk, 4096, 4096), 0);
	assert_int_equal(tenv_setup(&e, "sim", DEV, OBJ, JRN), 0);
	assert_int_equal(tenv_write(&e, 5, 0, 0, 4096, 60), 0);
	bs_close(e.bs);
	e.bs = NULL;
	assert_int_equal(bs_test_dev_io(e.dev, BS_TEST_IO_READ, blk, 4096, 0), 0);
	memcpy(&sb, blk, sizeof(sb));
	sb.version = BS_FMT_VERSION + 1;
	sb.crc = 0;
	sb.crc = crc32c(0, &sb, sizeof(sb));
	memcpy(blk, &sb, sizeof(sb));
	assert_int_equal(sync_dev_write(&e, blk, 4096, 0), 0);
	assert_int_equal(sync_dev_write(&e, blk, 4096, 4096), 0);
	assert_int_equal(bs_open(e.dev, NULL, &bs), -EPROTONOSUPPORT);
	tenv_teardown(&e);
	free(blk);
}

static void test_not_formatted(void **state)
{
	struct tenv e;
	struct bs *bs;
	uint8_t *junk = NULL;

	assert_int_equal(tenv_setup(&e, "ram", DEV, OBJ, JRN), 0);
	bs_close(e.bs);
	e.bs = NULL;
	assert_int_equal(posix_memalign((void **)&junk, 4096, 8192), 0);
	memset(junk, 0x5a, 8192);
	/* one superblock copy destroyed: the other one opens */
	assert_int_equal(sync_dev_write(&e, junk, 4096, 0), 0);
	assert_int_equal(bs_open(e.dev, NULL, &bs), 0);
	bs_close(bs);
	/* both: not a blockstore */
	assert_int_equal(sync_dev_write(&e, junk, 8192, 0), 0);
	assert_int_equal(bs_open(e.dev, NULL, &bs), -EUCLEAN);
	free(junk);
	/* bad format options */
	e.fo.journal_size = 4096;
	assert_int_equal(bs_format(e.dev, &e.fo), -EINVAL);
	e.fo.journal_size = JRN;
	e.fo.object_size = 12345;
	assert_int_equal(bs_format(e.dev, &e.fo), -EINVAL);
	e.fo.object_size = OBJ;
	e.fo.journal_size = DEV;
	assert_int_equal(bs_format(e.dev, &e.fo), -EINVAL);
	tenv_teardown(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_after_crash),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_corrupt_record),
		cmocka_unit_test(test_torn_batch),
		cmocka_unit_test(test_not_formatted),
		cmocka_unit_test(test_pipelined_acks),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_group_corrupt),
		cmocka_unit_test(test_single_records),
		cmocka_unit_test(test_newer_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
