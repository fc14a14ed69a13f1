/* SPDX-License-Identifier: Apache-2.0 */
/* keel-histcheck logic on synthetic histories: each anomaly is detected
 * exactly, each legal interleaving accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tests/tools/kh_check.h"

#define MAXR 32

struct hist {
	struct kh_rec r[MAXR];
	size_t n;
};

static void w(struct hist *h, uint64_t blk, uint64_t wid, uint64_t s, uint64_t e, int res)
{
	h->r[h->n++] = (struct kh_rec){.start_ns = s, .end_ns = e, .block = blk, .wid = wid,
				       .op = KH_OP_WRITE, .result = (int16_t)res};
}

static void rd(struct hist *h, uint64_t blk, uint64_t wid, uint64_t s, uint64_t e,
	       enum kh_found found)
{
	h->r[h->n++] = (struct kh_rec){.start_ns = s, .end_ns = e, .block = blk, .wid = wid,
				       .op = KH_OP_READ, .found = (uint8_t)found};
}

static int check(struct hist *h, struct kh_summary *s)
{
	return kh_check(h->r, h->n, s, NULL, 0);
}

static void test_last_write_ok(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	w(&h, 7, 1, 0, 10, 0);
	w(&h, 7, 2, 20, 30, 0);
	rd(&h, 7, 2, 40, 50, KH_FOUND_DATA);
	assert_int_equal(check(&h, &s), 0);
	assert_int_equal(s.reads_last, 1);
	assert_int_equal(s.violations, 0);
}

static void test_stale_read(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	w(&h, 7, 1, 0, 10, 0);
	w(&h, 7, 2, 20, 30, 0);
	rd(&h, 7, 1, 40, 50, KH_FOUND_DATA); /* old value ... */
	rd(&h, 7, 2, 60, 70, KH_FOUND_DATA); /* ... though the new one is there */
	assert_int_equal(check(&h, &s), 1);
	assert_int_equal(s.stale_reads, 1);
	assert_int_equal(s.lost_writes, 0);
	assert_int_equal(s.violations, 1);
}

static void test_lost_write(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	w(&h, 3, 1, 0, 10, 0);
	w(&h, 3, 2, 20, 30, 0);
	rd(&h, 3, 1, 40, 50, KH_FOUND_DATA);
	rd(&h, 3, 1, 60, 70, KH_FOUND_DATA); /* write 2 never shows up */
	assert_int_equal(check(&h, &s), 1);
	assert_int_equal(s.lost_writes, 1); /* one write lost, seen by two reads */
	assert_int_equal(s.stale_reads, 0);
	assert_int_equal(s.violations, 2);
}

static void test_lost_write_zeroes(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	w(&h, 3, 1, 0, 10, 0);
	rd(&h, 3, 0, 40, 50, KH_FOUND_ZERO);
	assert_int_equal(check(&h, &s), 1);
	assert_int_equal(s.lost_writes, 1);
}

static void test_concurrent_legal(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	w(&h, 5, 1, 0, 10, 0);
	w(&h, 5, 2, 20, 60, 0); /* overlaps both reads */
	rd(&h, 5, 2, 30, 50, KH_FOUND_DATA); /* the concurrent write: legal */
	rd(&h, 5, 1, 31, 51, KH_FOUND_DATA); /* the last completed one: legal */
	assert_int_equal(check(&h, &s), 0);
	assert_int_equal(s.reads_concurrent, 1);
	assert_int_equal(s.reads_last, 1);
	assert_int_equal(s.violations, 0);
}

static void test_overlapping_completed_writes(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	/* 1 and 2 overlap, both done before the reads: either may be last.
	 * 0 finished before both started: superseded. */
	w(&h, 9, 10, 0, 5, 0);
	w(&h, 9, 1, 10, 40, 0);
	w(&h, 9, 2, 20, 30, 0);
	rd(&h, 9, 1, 50, 60, KH_FOUND_DATA);
	rd(&h, 9, 2, 51, 61, KH_FOUND_DATA);
	assert_int_equal(check(&h, &s), 0);
	assert_int_equal(s.reads_last, 2);
	rd(&h, 9, 10, 70, 80, KH_FOUND_DATA);
	assert_int_equal(check(&h, &s), 1);
	assert_int_equal(s.lost_writes, 1);
}

static void test_torn_and_bad_blocks(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	w(&h, 1, 1, 0, 10, 0);
	rd(&h, 1, 1, 20, 30, KH_FOUND_TORN);
	rd(&h, 1, 1, 40, 50, KH_FOUND_MISPLACED);
	rd(&h, 1, 0, 60, 70, KH_FOUND_GARBAGE);
	assert_int_equal(check(&h, &s), 1);
	assert_int_equal(s.torn, 1);
	assert_int_equal(s.misplaced, 1);
	assert_int_equal(s.garbage, 1);
	assert_int_equal(s.violations, 3);
}

static void test_initial_and_future(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	rd(&h, 2, 0, 0, 5, KH_FOUND_ZERO);	     /* nothing written yet */
	rd(&h, 2, 0xabc, 1, 6, KH_FOUND_DATA);	     /* data from an older run */
	w(&h, 2, 1, 20, 30, 0);
	rd(&h, 2, 1, 7, 9, KH_FOUND_DATA); /* sees a write that started later */
	assert_int_equal(check(&h, &s), 1);
	assert_int_equal(s.reads_initial, 2);
	assert_int_equal(s.future_reads, 1);
	assert_int_equal(s.violations, 1);
}

static void test_failed_write_may_land(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	w(&h, 4, 1, 0, 10, 0);
	w(&h, 4, 2, 20, 30, -5); /* failed: may or may not be applied */
	rd(&h, 4, 2, 40, 50, KH_FOUND_DATA);
	rd(&h, 4, 1, 60, 70, KH_FOUND_DATA);
	assert_int_equal(check(&h, &s), 0);
	assert_int_equal(s.writes_failed, 1);
}

static void test_blocks_independent(void **state)
{
	struct hist h = {0};
	struct kh_summary s;

	/* A write id covering two blocks; block 11 read back the value that
	 * was written to block 10 only: misplaced data is not "this" write. */
	w(&h, 10, 1, 0, 10, 0);
	w(&h, 11, 2, 0, 10, 0);
	rd(&h, 10, 1, 20, 30, KH_FOUND_DATA);
	rd(&h, 11, 1, 20, 30, KH_FOUND_DATA);
	assert_int_equal(check(&h, &s), 1);
	assert_int_equal(s.blocks, 2);
	assert_int_equal(s.lost_writes, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_last_write_ok),
		cmocka_unit_test(test_stale_read),
		cmocka_unit_test(test_lost_write),
		cmocka_unit_test(test_lost_write_zeroes),
		cmocka_unit_test(test_concurrent_legal),
		cmocka_unit_test(test_overlapping_completed_writes),
		cmocka_unit_test(test_torn_and_bad_blocks),
		cmocka_unit_test(test_initial_and_future),
		cmocka_unit_test(test_failed_write_may_land),
		cmocka_unit_test(test_blocks_independent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
