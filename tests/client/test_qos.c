/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qos: keel-client's token buckets and FIFO (client/qos.h) on made-up
 * times: refill, burst, debt, FIFO order, a rate change, unlimited, and a
 * long simulated run whose rate must match the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client/qos.h"

#define MS (1000ull * 1000)
#define S  (1000ull * MS)
#define T0 (1000 * S) /* an arbitrary start: monotonic time is not 0 */

/* Requests of @bytes that go at once from @now, queueing none. */
static unsigned int drain_now(struct qos_limiter *l, uint64_t bytes, uint64_t now)
{
	unsigned int n = 0;

	while (qos_may_pass(l, bytes, now) && n < 1000000) {
		qos_charge(l, bytes, now);
		n++;
	}
	return n;
}

static void test_unlimited(void **state)
{
	struct qos_limiter l;
	struct qos_req r = {.bytes = 1 << 20};

	(void)state;
	qos_init(&l);
	assert_false(qos_limited(&l));
	assert_int_equal(drain_now(&l, 1 << 20, T0), 1000000);
	/* A queued request goes at once too (after a change to unlimited). */
	qos_enqueue(&l, &r);
	assert_false(qos_may_pass(&l, 4096, T0)); /* behind the queued one */
	assert_ptr_equal(qos_ready(&l, T0), &r);
	assert_ptr_equal(qos_dequeue(&l, T0), &r);
	assert_int_equal(qos_next_ns(&l), UINT64_MAX);
}

/* A full bucket lets a burst of 100 ms worth go at once, then refills at
 * the rate. */
static void test_burst_refill(void **state)
{
	struct qos_limiter l;

	(void)state;
	qos_init(&l);
	qos_set_limits(&l, 1000, 0, T0);
	assert_true(qos_limited(&l));
	assert_int_equal(drain_now(&l, 4096, T0), 100); /* the burst */
	assert_false(qos_may_pass(&l, 4096, T0));
	/* 1000 IOPS: one more every 1 ms. */
	assert_false(qos_may_pass(&l, 4096, T0 + MS - 1));
	assert_int_equal(drain_now(&l, 4096, T0 + MS), 1);
	assert_int_equal(drain_now(&l, 4096, T0 + 11 * MS), 10);
	/* Idle for long: never more than the burst. */
	assert_int_equal(drain_now(&l, 4096, T0 + 10 * S), 100);
}

static void test_bytes_bucket(void **state)
{
	struct qos_limiter l;

	(void)state;
	qos_init(&l);
	qos_set_limits(&l, 0, 10 << 20, T0); /* 10 MiB/s: burst 1 MiB */
	assert_int_equal(drain_now(&l, 65536, T0), 16);
	/* 64 KiB takes 6.25 ms to refill. */
	assert_false(qos_may_pass(&l, 65536, T0 + 6 * MS));
	assert_int_equal(drain_now(&l, 65536, T0 + 6250 * 1000), 1);
	/* Both limits: the tighter one decides. */
	qos_init(&l);
	qos_set_limits(&l, 5, 10 << 20, T0); /* 5 IOPS: burst 1 request */
	assert_int_equal(drain_now(&l, 4096, T0), 1);
	assert_false(qos_may_pass(&l, 4096, T0 + 199 * MS));
	assert_int_equal(drain_now(&l, 4096, T0 + 200 * MS), 1);
}

/* A request larger than the burst goes when the bucket is full and leaves
 * it in debt; the next waits until the debt is paid. */
static void test_debt(void **state)
{
	struct qos_limiter l;

	(void)state;
	qos_init(&l);
	qos_set_limits(&l, 0, 1 << 20, T0);	    /* 1 MiB/s: burst 104857 bytes */
	assert_true(qos_may_pass(&l, 4 << 20, T0)); /* full: it goes */
	qos_charge(&l, 4 << 20, T0);
	/* 4 MiB of debt: nothing for 4 s less what a 4 KiB request needs
	 * below the burst. */
	assert_false(qos_may_pass(&l, 4096, T0 + 3 * S));
	assert_true(qos_may_pass(&l, 4096, T0 + 4 * S));
	/* A second big one only once the bucket is full again. */
	assert_false(qos_may_pass(&l, 4 << 20, T0 + 4 * S - 1));
	assert_true(qos_may_pass(&l, 4 << 20, T0 + 4 * S + 100 * MS));
}

/* Waiting requests leave in arrival order; a small one that would fit
 * does not overtake a big one that waits. */
static void test_fifo_order(void **state)
{
	struct qos_limiter l;
	struct qos_req big = {.bytes = 1 << 20}, small1 = {.bytes = 4096}, small2 = {.bytes = 4096};
	uint64_t t;

	(void)state;
	qos_init(&l);
	qos_set_limits(&l, 0, 1 << 20, T0);
	qos_charge(&l, 100000, T0); /* nearly empty */
	assert_false(qos_may_pass(&l, 1 << 20, T0));
	qos_enqueue(&l, &big);
	/* 4 KiB would fit the bucket, but something waits: it queues. */
	assert_true(qos_ready(&l, T0) == NULL);
	assert_false(qos_may_pass(&l, 4096, T0));
	qos_enqueue(&l, &small1);
	qos_enqueue(&l, &small2);
	assert_int_equal(l.queued, 3);
	t = qos_next_ns(&l);
	assert_true(t > T0);
	assert_null(qos_ready(&l, t - 1));
	assert_ptr_equal(qos_ready(&l, t), &big);
	assert_ptr_equal(qos_dequeue(&l, t), &big);
	/* The big one emptied (and overdrew) it: the small ones wait. */
	assert_null(qos_ready(&l, t));
	t = qos_next_ns(&l);
	assert_ptr_equal(qos_dequeue(&l, t), &small1);
	t = qos_next_ns(&l) > t ? qos_next_ns(&l) : t;
	assert_ptr_equal(qos_dequeue(&l, t), &small2);
	assert_int_equal(l.queued, 0);
	assert_int_equal(qos_next_ns(&l), UINT64_MAX);
	assert_true(qos_may_pass(&l, 4096, t + S));
}

/* A change keeps the level (a debt stays a debt) and applies the new rate
 * from then on; unlimited and back starts full. */
static void test_rate_change(void **state)
{
	struct qos_limiter l;

	(void)state;
	qos_init(&l);
	qos_set_limits(&l, 100, 0, T0); /* burst 10 */
	assert_int_equal(drain_now(&l, 0, T0), 10);
	qos_set_limits(&l, 1000, 0, T0); /* empty stays empty */
	assert_false(qos_may_pass(&l, 0, T0));
	assert_int_equal(drain_now(&l, 0, T0 + 10 * MS), 10); /* 1 ms each now */
	/* Lowered: empty stays empty, refills at 10/s. */
	qos_set_limits(&l, 10, 0, T0 + 10 * MS);
	assert_false(qos_may_pass(&l, 0, T0 + 100 * MS));
	assert_int_equal(drain_now(&l, 0, T0 + 110 * MS), 1);
	/* A full bucket stays full when the burst grows. */
	qos_set_limits(&l, 100, 0, T0 + 10 * S);
	assert_int_equal(drain_now(&l, 0, T0 + 10 * S), 10);
	/* Unlimited, then limited again: starts full. */
	qos_set_limits(&l, 0, 0, T0 + 10 * S);
	assert_false(qos_limited(&l));
	qos_set_limits(&l, 200, 0, T0 + 10 * S);
	assert_int_equal(drain_now(&l, 0, T0 + 10 * S), 20);
	/* A debt carries over a change. */
	qos_init(&l);
	qos_set_limits(&l, 0, 1 << 20, T0);
	qos_charge(&l, 8 << 20, T0);	    /* 8 s of debt at 1 MiB/s */
	qos_set_limits(&l, 0, 2 << 20, T0); /* the same 8 MiB owed: 4 s */
	assert_false(qos_may_pass(&l, 4096, T0 + 3 * S));
	assert_true(qos_may_pass(&l, 4096, T0 + 4 * S));
}

/* A simulated device: requests of mixed sizes always offered, released
 * at each wakeup; over 60 s the rate matches the limit to 1%. */
static void test_long_run_rate(void **state)
{
	static struct qos_req reqs[64];
	static const uint64_t sizes[] = {4096, 65536, 4096, 131072, 8192, 1 << 20};
	struct qos_limiter l;
	uint64_t t = T0, ops = 0, bytes = 0;
	unsigned int next = 0;

	(void)state;
	qos_init(&l);
	qos_set_limits(&l, 0, 8 << 20, T0);
	for (unsigned int i = 0; i < 64; i++) {
		reqs[i].bytes = sizes[i % 6];
		qos_enqueue(&l, &reqs[i]);
	}
	while (t < T0 + 60 * S) {
		struct qos_req *r;

		while ((r = qos_ready(&l, t))) {
			qos_dequeue(&l, t);
			ops++;
			bytes += r->bytes;
			r->bytes = sizes[next++ % 6];
			qos_enqueue(&l, r); /* the client sends another */
		}
		t = qos_next_ns(&l) + 300 * 1000; /* a late timer */
	}
	/* Minus the initial burst, over the elapsed time. */
	assert_true(bytes - (8 << 20) / 10 <= (uint64_t)(60.0 * (8 << 20) * 1.01));
	assert_true(bytes >= (uint64_t)(60.0 * (8 << 20) * 0.99));
	assert_true(ops > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unlimited),     cmocka_unit_test(test_burst_refill),
		cmocka_unit_test(test_bytes_bucket),  cmocka_unit_test(test_debt),
		cmocka_unit_test(test_fifo_order),    cmocka_unit_test(test_rate_change),
		cmocka_unit_test(test_long_run_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
