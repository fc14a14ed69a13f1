/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/bufpool.h"

static void test_create_invalid(void **state)
{
	struct bufpool *p = NULL;

	assert_int_equal(bufpool_create(0, 4, &p), -EINVAL);
	assert_int_equal(bufpool_create(4096, 0, &p), -EINVAL);
	assert_int_equal(bufpool_create(SIZE_MAX, 1, &p), -EINVAL);
	assert_int_equal(bufpool_create(SIZE_MAX / 2, 4, &p), -ENOMEM);
	assert_null(p);
}

static void test_get_put(void **state)
{
	enum { N = 8 };
	struct bufpool *p;
	void *bufs[N];

	assert_int_equal(bufpool_create(5000, N, &p), 0);
	assert_int_equal(bufpool_buf_size(p), 8192);
	assert_int_equal(bufpool_free_count(p), N);
	for (int i = 0; i < N; i++) {
		bufs[i] = bufpool_get(p);
		assert_non_null(bufs[i]);
		assert_int_equal((uintptr_t)bufs[i] % 4096, 0);
		assert_true(bufpool_owns(p, bufs[i]));
		/* Every buffer is usable over its whole size and distinct. */
		memset(bufs[i], i, 8192);
		for (int j = 0; j < i; j++) {
			uintptr_t a = (uintptr_t)bufs[i], b = (uintptr_t)bufs[j];

			assert_true(a >= b + 8192 || b >= a + 8192);
		}
	}
	assert_int_equal(bufpool_free_count(p), 0);
	assert_null(bufpool_get(p));
	for (int i = 0; i < N; i++) {
		assert_int_equal(((uint8_t *)bufs[i])[8191], i);
	}
	bufpool_put(p, bufs[3]);
	assert_int_equal(bufpool_free_count(p), 1);
	assert_ptr_equal(bufpool_get(p), bufs[3]);
	for (int i = 0; i < N; i++) {
		bufpool_put(p, bufs[i]);
	}
	assert_int_equal(bufpool_free_count(p), N);
	bufpool_destroy(p);
}

static void test_owns(void **state)
{
	struct bufpool *p;
	uint8_t *b;
	int x;

	assert_int_equal(bufpool_create(4096, 2, &p), 0);
	b = bufpool_get(p);
	assert_true(bufpool_owns(p, b));
	assert_false(bufpool_owns(p, b + 1));
	assert_false(bufpool_owns(p, &x));
	assert_false(bufpool_owns(p, b + 2 * 4096 * 2));
	bufpool_put(p, b);
	bufpool_destroy(p);
}

static int read_res;
static bool read_finished;

static void read_done(struct reactor_op *op, int res)
{
	read_res = res;
	read_finished = true;
}

/* A fixed-buffer read into a pool buffer proves the arena is registered as buffer 0. */
static void test_register_read_fixed(void **state)
{
	char path[] = "/tmp/keel-bufpool-XXXXXX";
	struct io_uring_sqe *sqe;
	struct reactor_op op;
	struct reactor *r;
	struct bufpool *p;
	uint8_t data[4096];
	uint8_t *buf;
	int fd, idx;

	assert_int_equal(reactor_create(8, &r), 0);
	assert_int_equal(bufpool_create(4096, 4, &p), 0);
	idx = bufpool_register(p, r);
	assert_true(idx >= 0);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)(i * 13 + 1);
	}
	assert_int_equal(write(fd, data, sizeof(data)), sizeof(data));

	(void)bufpool_get(p);
	buf = bufpool_get(p); /* not the first buffer: its offset in the arena matters */
	memset(buf, 0, 4096);
	sqe = reactor_sqe(r);
	assert_int_equal(reactor_buf_find(r, buf, 4096), idx);
	assert_int_equal(reactor_buf_find(r, buf + 1, 4096 * 4), -1); /* runs past the arena */
	io_uring_prep_read_fixed(sqe, fd, buf, 4096, 0, idx);
	reactor_sqe_set_op(sqe, &op, read_done);
	while (!read_finished) {
		assert_true(reactor_poll(r, true) >= 0);
	}
	assert_int_equal(read_res, 4096);
	assert_memory_equal(buf, data, sizeof(data));
	close(fd);
	reactor_buf_remove(r, idx);
	assert_int_equal(reactor_buf_find(r, buf, 4096), -1);
	bufpool_destroy(p);
	reactor_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_invalid),
		cmocka_unit_test(test_get_put),
		cmocka_unit_test(test_owns),
		cmocka_unit_test(test_register_read_fixed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
