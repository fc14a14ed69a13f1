/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/reactor.h"

static struct reactor *r;

static int setup(void **state)
{
	int ret = reactor_create(8, &r);

	if (ret == -ENOSYS || ret == -EPERM) {
		skip();
	}
	return ret;
}

static int teardown(void **state)
{
	reactor_destroy(r);
	r = NULL;
	return 0;
}

static void test_create_invalid(void **state)
{
	struct reactor *x;

	assert_int_equal(reactor_create(4, &x), -EINVAL);
	assert_int_equal(reactor_create(12, &x), -EINVAL);
	assert_int_equal(reactor_create(65536, &x), -EINVAL);
}

/* --- deferred calls --- */

struct rec_defer {
	struct reactor_defer d;
	char name;
};

static char order[16];
static int norder;
static struct rec_defer late = {.name = 'D'};

static void rec_defer_fn(struct reactor_defer *d)
{
	struct rec_defer *rd = container_of(d, struct rec_defer, d);

	order[norder++] = rd->name;
	if (rd->name == 'B') {
		late.d.fn = rec_defer_fn;
		reactor_defer(r, &late.d);
	}
}

static void test_defer_order(void **state)
{
	struct rec_defer a = {.d.fn = rec_defer_fn, .name = 'A'};
	struct rec_defer b = {.d.fn = rec_defer_fn, .name = 'B'};
	struct rec_defer c = {.d.fn = rec_defer_fn, .name = 'C'};

	norder = 0;
	memset(order, 0, sizeof(order));
	reactor_defer(r, &a.d);
	reactor_defer(r, &b.d);
	reactor_defer(r, &c.d);
	assert_int_equal(norder, 0); /* nothing runs inline */
	assert_int_equal(reactor_poll(r, false), 3);
	/* D was queued by B while the list ran: it belongs to the next turn. */
	assert_string_equal(order, "ABC");
	assert_int_equal(reactor_poll(r, false), 1);
	assert_string_equal(order, "ABCD");
	assert_int_equal(reactor_poll(r, false), 0);
}

/* --- NOPs and SQE overflow --- */

struct nop {
	struct reactor_op op;
	int calls;
	int res;
};

static int nops_done;

static void nop_done(struct reactor_op *op, int res)
{
	struct nop *n = container_of(op, struct nop, op);

	n->calls++;
	n->res = res;
	nops_done++;
}

static void run_nops(unsigned int count)
{
	struct nop *nops = calloc(count, sizeof(*nops));

	assert_non_null(nops);
	nops_done = 0;
	for (unsigned int i = 0; i < count; i++) {
		struct io_uring_sqe *sqe = reactor_sqe(r);

		assert_non_null(sqe);
		io_uring_prep_nop(sqe);
		reactor_sqe_set_op(sqe, &nops[i].op, nop_done);
		nops[i].res = -1;
	}
	while (nops_done < (int)count) {
		assert_true(reactor_poll(r, true) >= 0);
	}
	for (unsigned int i = 0; i < count; i++) {
		assert_int_equal(nops[i].calls, 1);
		assert_int_equal(nops[i].res, 0);
	}
	assert_int_equal(nops_done, count);
	free(nops);
}

static void test_nop(void **state)
{
	run_nops(3);
}

/* The ring has 8 SQEs and a 32-entry CQ: 1000 NOPs need both to recycle. */
static void test_many_sqes(void **state)
{
	run_nops(1000);
}

/* --- timers --- */

static int timer_fired;

static void timer_fn(struct reactor_timer *t)
{
	timer_fired++;
}

static void test_timer_fires(void **state)
{
	struct reactor_timer t = {0};
	uint64_t start = reactor_now_ns();

	timer_fired = 0;
	assert_int_equal(reactor_timer_start(r, &t, 2000000, timer_fn), 0);
	assert_false(reactor_timer_idle(&t));
	assert_int_equal(reactor_timer_start(r, &t, 2000000, timer_fn), -EBUSY);
	while (!reactor_timer_idle(&t)) {
		assert_true(reactor_poll(r, true) >= 0);
	}
	assert_int_equal(timer_fired, 1);
	assert_true(reactor_now_ns() - start >= 2000000);
	/* Re-arming after it fired works. */
	assert_int_equal(reactor_timer_start(r, &t, 1000, timer_fn), 0);
	while (!reactor_timer_idle(&t)) {
		assert_true(reactor_poll(r, true) >= 0);
	}
	assert_int_equal(timer_fired, 2);
}

static void test_timer_cancel(void **state)
{
	struct reactor_timer t = {0};
	uint64_t start = reactor_now_ns();

	timer_fired = 0;
	assert_int_equal(reactor_timer_start(r, &t, 5000000000ull, timer_fn), 0);
	assert_int_equal(reactor_poll(r, false), 0); /* the timeout is now in the kernel */
	reactor_timer_cancel(r, &t);
	reactor_timer_cancel(r, &t); /* no-op the second time */
	while (!reactor_timer_idle(&t)) {
		assert_true(reactor_poll(r, true) >= 0);
	}
	assert_int_equal(timer_fired, 0);
	/* Idle because the removal completed, not because 5 s went by. */
	assert_true(reactor_now_ns() - start < 2000000000ull);
	reactor_timer_cancel(r, &t); /* not armed: no-op */
}

/* --- cross-thread messages --- */

struct post_arg {
	struct reactor_msg msgs[100];
	int seen[100];
	int nseen;
	pthread_t reactor_thread;
	bool wrong_thread;
};

static struct post_arg post;

static void msg_fn(struct reactor_msg *m)
{
	int i = (int)(m - post.msgs);

	if (!pthread_equal(pthread_self(), post.reactor_thread)) {
		post.wrong_thread = true;
	}
	post.seen[post.nseen++] = i;
	if (i == 99) {
		reactor_stop(r);
	}
}

static void *poster(void *arg)
{
	struct timespec ts = {.tv_nsec = 50 * 1000 * 1000};

	/* Let the reactor block in io_uring_enter() first. */
	nanosleep(&ts, NULL);
	for (int i = 0; i < 100; i++) {
		post.msgs[i].fn = msg_fn;
		reactor_post(r, &post.msgs[i]);
	}
	return NULL;
}

static void test_post_wakes_run(void **state)
{
	pthread_t th;

	memset(&post, 0, sizeof(post));
	post.reactor_thread = pthread_self();
	alarm(20); /* a lost wakeup hangs reactor_run(): fail instead */
	assert_int_equal(pthread_create(&th, NULL, poster, NULL), 0);
	assert_int_equal(reactor_run(r), 0);
	alarm(0);
	pthread_join(th, NULL);
	assert_int_equal(post.nseen, 100);
	assert_false(post.wrong_thread);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(post.seen[i], i);
	}
}

/* The registered-buffer table: lookups by address range, a full table, a
 * freed slot reused. */
static void test_buf_table(void **state)
{
	static uint8_t mem[REACTOR_BUFS + 1][8192] __attribute__((aligned(4096)));
	int i, idx[REACTOR_BUFS];

	assert_int_equal(reactor_buf_add(r, NULL, 4096), -EINVAL);
	for (i = 0; i < REACTOR_BUFS; i++) {
		idx[i] = reactor_buf_add(r, mem[i], sizeof(mem[i]));
		assert_int_equal(idx[i], i);
	}
	assert_int_equal(reactor_buf_add(r, mem[REACTOR_BUFS], 4096), -ENOSPC);
	assert_int_equal(reactor_buf_find(r, mem[3], 8192), idx[3]);
	assert_int_equal(reactor_buf_find(r, mem[3] + 4096, 4096), idx[3]);
	assert_int_equal(reactor_buf_find(r, mem[3] + 4096, 4097), -1);
	assert_int_equal(reactor_buf_find(r, mem[REACTOR_BUFS], 4096), -1);
	reactor_buf_remove(r, idx[5]);
	assert_int_equal(reactor_buf_find(r, mem[5], 4096), -1);
	assert_int_equal(reactor_buf_add(r, mem[REACTOR_BUFS], 4096), idx[5]);
	assert_int_equal(reactor_buf_find(r, mem[REACTOR_BUFS], 4096), idx[5]);
	reactor_buf_remove(r, -1); /* no-op */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_invalid),
		cmocka_unit_test_setup_teardown(test_defer_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_sqes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_fires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_wakes_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buf_table, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
