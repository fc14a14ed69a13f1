/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Journal replay: acked writes survive a crash before any checkpoint; the
 * ring wraps many times with checkpoints; a corrupt record ends replay
 * exactly there; a torn batch (tail blocks never written) is ignored;
 * batches in flight together are acked in ring order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bs_test_util.h"

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
		cmocka_unit_test(test_replay_after_crash), cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_corrupt_record),	   cmocka_unit_test(test_torn_batch),
		cmocka_unit_test(test_not_formatted),	   cmocka_unit_test(test_pipelined_acks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
