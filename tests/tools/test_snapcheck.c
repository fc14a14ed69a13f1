/* SPDX-License-Identifier: Apache-2.0 */
/* keel-snapcheck's checker on hand-made histories: every legal outcome is
 * accepted and every violation (lost, future, backwards, unknown, bad
 * block) is found, so the checker can fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/tools/sc_check.h"

/* A snapshot requested at 100 and returned at 200. */
static const struct sc_snap snap = {.ts_ns = 100, .te_ns = 200};

static enum sc_verdict chk(const struct sc_write *w, size_t n, enum sc_found found, uint64_t seq,
			   size_t floor, struct sc_result *r)
{
	return sc_check_block(w, n, &snap, found, seq, floor, r);
}

static void test_never_written(void **state)
{
	struct sc_result r;

	assert_int_equal(chk(NULL, 0, SC_FOUND_ZERO, 0, 0, &r), SC_OK);
	assert_int_equal(r.visible, 0);
	assert_int_equal(r.must, 0);
	/* Data in a block never written is no write of it. */
	assert_int_equal(chk(NULL, 0, SC_FOUND_DATA, 5, 0, &r), SC_UNKNOWN);
}

static void test_completed_before(void **state)
{
	const struct sc_write w[] = {{.seq = 7, .start_ns = 10, .end_ns = 20}};
	struct sc_result r;

	assert_int_equal(chk(w, 1, SC_FOUND_DATA, 7, 0, &r), SC_OK);
	assert_int_equal(r.visible, 1);
	assert_int_equal(r.must, 1);
	/* The acknowledged write is missing from the snapshot. */
	assert_int_equal(chk(w, 1, SC_FOUND_ZERO, 0, 0, &r), SC_LOST);
	assert_int_equal(r.must, 1);
}

static void test_superseded_by_inflight(void **state)
{
	/* w1 completed before Ts; w2 was issued during the request and is
	 * in the snapshot or not: both legal. */
	const struct sc_write w[] = {{.seq = 1, .start_ns = 10, .end_ns = 20},
				     {.seq = 9, .start_ns = 150, .end_ns = 260}};
	struct sc_result r;

	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 1, 0, &r), SC_OK);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 9, 0, &r), SC_OK);
	assert_int_equal(r.visible, 2);
	assert_int_equal(r.must, 1);
	assert_int_equal(chk(w, 2, SC_FOUND_ZERO, 0, 0, &r), SC_LOST);
}

static void test_stale_in_snapshot(void **state)
{
	/* Both completed before Ts: the older one alone is a lost write. */
	const struct sc_write w[] = {{.seq = 1, .start_ns = 10, .end_ns = 20},
				     {.seq = 2, .start_ns = 30, .end_ns = 40}};
	struct sc_result r;

	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 1, 0, &r), SC_LOST);
	assert_int_equal(r.visible, 1);
	assert_int_equal(r.must, 2);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 2, 0, &r), SC_OK);
}

static void test_completed_during_request(void **state)
{
	/* Completed between Ts and Te (or after): optional. */
	const struct sc_write w[] = {{.seq = 3, .start_ns = 90, .end_ns = 120},
				     {.seq = 4, .start_ns = 130, .end_ns = 400}};
	struct sc_result r;

	assert_int_equal(chk(w, 2, SC_FOUND_ZERO, 0, 0, &r), SC_OK);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 3, 0, &r), SC_OK);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 4, 0, &r), SC_OK);
	/* Completed exactly at Ts: not before it. */
	{
		const struct sc_write e[] = {{.seq = 5, .start_ns = 50, .end_ns = 100}};

		assert_int_equal(chk(e, 1, SC_FOUND_ZERO, 0, 0, &r), SC_OK);
	}
}

static void test_future(void **state)
{
	const struct sc_write w[] = {{.seq = 1, .start_ns = 10, .end_ns = 20},
				     {.seq = 2, .start_ns = 250, .end_ns = 300}};
	const struct sc_write at_te[] = {{.seq = 3, .start_ns = 200, .end_ns = 210}};
	const struct sc_write never[] = {{.seq = 4, .start_ns = 150, .end_ns = SC_NEVER},
					 {.seq = 5, .start_ns = 201, .end_ns = SC_NEVER}};
	struct sc_result r;

	/* Issued after the snapshot returned: must not be in it. */
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 2, 0, &r), SC_FUTURE);
	assert_int_equal(r.visible, 2);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 1, 0, &r), SC_OK);
	/* Issued at the instant the reply was seen: after it. */
	assert_int_equal(chk(at_te, 1, SC_FOUND_DATA, 3, 0, &r), SC_FUTURE);
	/* A write that never completed may be anywhere it could have landed. */
	assert_int_equal(chk(never, 2, SC_FOUND_DATA, 4, 0, &r), SC_OK);
	assert_int_equal(r.must, 0);
	assert_int_equal(chk(never, 2, SC_FOUND_DATA, 5, 0, &r), SC_FUTURE);
	assert_int_equal(chk(never, 2, SC_FOUND_ZERO, 0, 0, &r), SC_OK);
}

static void test_backwards(void **state)
{
	/* Both written during the request: either may be in this snapshot,
	 * but not an older one than the previous snapshot showed. */
	const struct sc_write w[] = {{.seq = 1, .start_ns = 105, .end_ns = 110},
				     {.seq = 2, .start_ns = 120, .end_ns = 130}};
	struct sc_result r;

	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 1, 1, &r), SC_OK);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 1, 2, &r), SC_BACKWARDS);
	assert_int_equal(chk(w, 2, SC_FOUND_ZERO, 0, 1, &r), SC_BACKWARDS);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 2, 2, &r), SC_OK);
}

static void test_bad_blocks(void **state)
{
	const struct sc_write w[] = {{.seq = 1, .start_ns = 10, .end_ns = 20}};
	struct sc_result r;

	assert_int_equal(chk(w, 1, SC_FOUND_TORN, 1, 0, &r), SC_BAD_BLOCK);
	assert_int_equal(chk(w, 1, SC_FOUND_MISPLACED, 1, 0, &r), SC_BAD_BLOCK);
	assert_int_equal(chk(w, 1, SC_FOUND_GARBAGE, 0, 0, &r), SC_BAD_BLOCK);
	assert_int_equal(r.must, 1);
	/* A valid pattern of this block with a sequence number it never got. */
	assert_int_equal(chk(w, 1, SC_FOUND_DATA, 99, 0, &r), SC_UNKNOWN);
}

/* A longer history: the rule picks the right L among many writes. */
static void test_many_writes(void **state)
{
	struct sc_write w[40];
	struct sc_result r;

	/* write i: issued at 10i, completed at 10i + 5; Ts = 100, Te = 200. */
	for (size_t i = 0; i < 40; i++) {
		w[i] = (struct sc_write){.seq = 1000 + i, .start_ns = 10 * i, .end_ns = 10 * i + 5};
	}
	/* Last completed before 100: i = 9 (end 95). Last issued before 200:
	 * i = 19 (start 190). */
	for (size_t i = 0; i < 40; i++) {
		enum sc_verdict want = i < 9 ? SC_LOST : i <= 19 ? SC_OK : SC_FUTURE;

		assert_int_equal(chk(w, 40, SC_FOUND_DATA, 1000 + i, 0, &r), want);
		assert_int_equal(r.must, 10);
	}
}

static void test_report(void **state)
{
	const struct sc_write w[] = {{.seq = 1, .start_ns = 10, .end_ns = 20},
				     {.seq = 2, .start_ns = 30, .end_ns = 40}};
	struct sc_result r;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	assert_int_equal(chk(w, 2, SC_FOUND_DATA, 1, 0, &r), SC_LOST);
	sc_report(f, 42, "vol@s3", &snap, w, 2, SC_FOUND_DATA, 1, &r, 0);
	fclose(f);
	assert_non_null(strstr(text, "VIOLATION (lost): block 42 of snapshot vol@s3"));
	assert_non_null(strstr(text, "seq 1 issued 0.000 ms, completed 0.000 ms  <- visible"));
	assert_non_null(strstr(text, "#2 seq 2"));
	assert_non_null(strstr(text, "must be visible"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_never_written),
		cmocka_unit_test(test_completed_before),
		cmocka_unit_test(test_superseded_by_inflight),
		cmocka_unit_test(test_stale_in_snapshot),
		cmocka_unit_test(test_completed_during_request),
		cmocka_unit_test(test_future),
		cmocka_unit_test(test_backwards),
		cmocka_unit_test(test_bad_blocks),
		cmocka_unit_test(test_many_writes),
		cmocka_unit_test(test_report),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
