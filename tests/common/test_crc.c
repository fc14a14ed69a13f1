/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/crc.h"

static void test_check_value(void **state)
{
	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c(0, "", 0), 0);
}

static void test_chaining(void **state)
{
	static const char msg[] = "The quick brown fox jumps over the lazy dog";
	size_t len = sizeof(msg) - 1;
	uint32_t whole = crc32c(0, msg, len);

	for (size_t split = 0; split <= len; split++) {
		uint32_t part = crc32c(0, msg, split);

		assert_int_equal(crc32c(part, msg + split, len - split), whole);
	}
}

static void test_blocks(void **state)
{
	uint8_t *buf = malloc(3 * KEEL_BLOCK_SIZE);
	uint32_t out[3];

	assert_non_null(buf);
	for (size_t i = 0; i < 3 * KEEL_BLOCK_SIZE; i++) {
		buf[i] = (uint8_t)(i * 7 + i / 4096);
	}
	crc32c_blocks(buf, 3 * KEEL_BLOCK_SIZE, out);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(out[i], crc32c(0, buf + i * KEEL_BLOCK_SIZE, KEEL_BLOCK_SIZE));
	}
	assert_int_not_equal(out[0], out[1]);
	free(buf);
}

static void test_zero_block(void **state)
{
	uint8_t *zero = calloc(1, KEEL_BLOCK_SIZE);

	assert_non_null(zero);
	assert_int_equal(crc32c_zero_block(), crc32c(0, zero, KEEL_BLOCK_SIZE));
	/* Cached value stays the same on later calls. */
	assert_int_equal(crc32c_zero_block(), crc32c(0, zero, KEEL_BLOCK_SIZE));
	assert_int_not_equal(crc32c_zero_block(), 0);
	free(zero);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_chaining),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_zero_block),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
