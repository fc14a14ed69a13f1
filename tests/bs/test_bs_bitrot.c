/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bit rot: a flipped bit in a stored data block, or in a block's metadata
 * entry (mapped or not), makes reads of that block fail with -EIO (counted
 * in crc_errors); other blocks still read fine; rewriting heals it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bs_test_util.h"

#define DEV (16ull << 20)
#define OBJ (64u << 10)
#define JRN (2ull << 20)

static void put_blocks(struct tenv *e, uint32_t n)
{
	for (uint32_t b = 0; b < n; b++) {
		assert_int_equal(tenv_write(e, 9, 1, b * 4096, 4096, 70 + b), 0);
	}
	/* close applies and checkpoints; the reopened cache is cold */
	assert_int_equal(tenv_reopen(e), 0);
}

static void test_data_bit(void **state)
{
	struct tenv *e = *state;
	struct bs_stat st;
	uint64_t doff, moff;

	put_blocks(e, 4);
	assert_int_equal(bs_test_block_offsets(e->bs, 9, 1, 2, &doff, &moff), 0);
	bs_sim_flip_bit(e->dev, doff + 1234, 5);
	assert_int_equal(tenv_check(e, 9, 1, 2 * 4096, 4096, 72), -EIO);
	assert_int_equal(tenv_check(e, 9, 1, 0, 4 * 4096, 0), -EIO);
	for (uint32_t b = 0; b < 4; b++) {
		if (b != 2) {
			assert_int_equal(tenv_check(e, 9, 1, b * 4096, 4096, 70 + b), 0);
		}
	}
	bs_stat(e->bs, &st);
	assert_int_equal(st.crc_errors, 2);
	/* a rewrite heals the block */
	assert_int_equal(tenv_write(e, 9, 1, 2 * 4096, 4096, 99), 0);
	assert_int_equal(tenv_check(e, 9, 1, 2 * 4096, 4096, 99), 0);
	assert_int_equal(tenv_reopen(e), 0);
	assert_int_equal(tenv_check(e, 9, 1, 2 * 4096, 4096, 99), 0);
}

static void meta_case(struct tenv *e, uint32_t blk, unsigned int byte, unsigned int bit)
{
	uint64_t doff, moff;

	put_blocks(e, 4);
	assert_int_equal(bs_test_block_offsets(e->bs, 9, 1, blk, &doff, &moff), 0);
	bs_close(e->bs);
	e->bs = NULL;
	bs_sim_flip_bit(e->dev, moff + byte, bit);
	assert_int_equal(bs_open(e->dev, NULL, &e->bs), 0);
	assert_int_equal(tenv_check(e, 9, 1, blk * 4096, 4096, blk < 4 ? 70 + blk : 0), -EIO);
	for (uint32_t b = 0; b < 4; b++) {
		if (b != blk) {
			assert_int_equal(tenv_check(e, 9, 1, b * 4096, 4096, 70 + b), 0);
		}
	}
}

static void test_meta_version_bit(void **state)
{
	meta_case(*state, 1, 0, 0); /* version field */
}

static void test_meta_crc_bit(void **state)
{
	meta_case(*state, 3, 9, 7); /* data crc field */
}

static void test_meta_unmapped_bit(void **state)
{
	meta_case(*state, 10, 4, 2); /* an unmapped block must not read as zeroes */
}

static int setup(void **state)
{
	struct tenv *e = calloc(1, sizeof(*e));

	if (tenv_setup(e, "sim", DEV, OBJ, JRN) < 0) {
		return -1;
	}
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	tenv_teardown(*state);
	free(*state);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_data_bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_version_bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_crc_bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_unmapped_bit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
