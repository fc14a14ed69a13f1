/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk_qos: the limiter in front of a blk_dev, on a real reactor over a fake
 * inner device (completes on the next loop turn; can refuse with -EAGAIN or
 * fail a request): pass-through when unlimited, a burst then the rest
 * released by the timer in arrival order at the rate, flush not limited,
 * discards cost no bytes, a read-only device refuses writes at once, the
 * inner device's -EAGAIN and errors on released requests, lifting the
 * limits releases everything, destroy with the timer still armed.
 * Exits 77 (skip) without io_uring.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/blk_qos.h"
#include "common/log.h"
#include "common/reactor.h"

#define NREQ 256

static struct reactor *r;

struct fake_done {
	struct reactor_defer df;
	blk_io_cb cb;
	void *arg;
	int res;
	bool busy;
};

struct fake_dev {
	struct blk_dev dev;
	struct fake_done done[NREQ];
	unsigned int submitted, flushes, discards;
	unsigned int order[NREQ]; /* request ids in submission order */
	unsigned int eagain_left; /* refuse this many submissions */
	unsigned int fail_id;	  /* complete the request of this id with -EIO */
	bool destroyed;
};

static struct fake_dev fake;

/* One request of the test: its id, its completion. */
struct t_req {
	unsigned int id;
	int res;
	unsigned int calls;
	uint64_t done_ns;
	struct iovec iov;
};

static struct t_req reqs[NREQ];
static char buf[NREQ][4096];

static void fake_fire(struct reactor_defer *df)
{
	struct fake_done *d = container_of(df, struct fake_done, df);

	d->busy = false;
	d->cb(d->arg, d->res);
}

static int fake_submit(struct blk_dev *dev, blk_io_cb cb, void *arg)
{
	struct fake_dev *f = container_of(dev, struct fake_dev, dev);

	if (f->eagain_left) {
		f->eagain_left--;
		return -EAGAIN;
	}
	for (unsigned int i = 0; i < NREQ; i++) {
		struct fake_done *d = &f->done[i];

		if (!d->busy) {
			d->busy = true;
			d->cb = cb;
			d->arg = arg;
			d->res = ((struct t_req *)arg)->id == f->fail_id ? -EIO : 0;
			d->df.fn = fake_fire;
			reactor_defer(r, &d->df);
			if (cb != NULL && f->submitted < NREQ) {
				f->order[f->submitted] = ((struct t_req *)arg)->id;
			}
			f->submitted++;
			return 0;
		}
	}
	return -EAGAIN;
}

static int fake_readv(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t off,
		      blk_io_cb cb, void *arg)
{
	(void)iov, (void)iovcnt, (void)off;
	return fake_submit(d, cb, arg);
}

static int fake_flush(struct blk_dev *d, blk_io_cb cb, void *arg)
{
	fake.flushes++;
	(void)d;
	return fake_submit(d, cb, arg);
}

static int fake_discard(struct blk_dev *d, uint64_t off, uint64_t len, blk_io_cb cb, void *arg)
{
	fake.discards++;
	(void)off, (void)len;
	return fake_submit(d, cb, arg);
}

static void fake_destroy(struct blk_dev *d)
{
	container_of(d, struct fake_dev, dev)->destroyed = true;
}

static const struct blk_dev_ops fake_ops = {
	.readv = fake_readv,
	.writev = fake_readv,
	.flush = fake_flush,
	.discard = fake_discard,
	.write_zeroes = fake_discard,
	.destroy = fake_destroy,
};

static void t_done(void *arg, int res)
{
	struct t_req *q = arg;

	q->res = res;
	q->calls++;
	q->done_ns = reactor_now_ns();
}

static void pump_ms(unsigned int ms)
{
	uint64_t until = reactor_now_ns() + (uint64_t)ms * 1000000;

	do {
		for (int i = 0; i < 4; i++) {
			reactor_poll(r, false);
		}
		usleep(100);
	} while (reactor_now_ns() < until);
}

static unsigned int ndone(unsigned int n)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < n; i++) {
		k += reqs[i].calls;
	}
	return k;
}

/* Pump until @n requests completed, for at most @ms. */
static void pump_until(unsigned int n, unsigned int ms)
{
	uint64_t until = reactor_now_ns() + (uint64_t)ms * 1000000;

	while (ndone(n) < n && reactor_now_ns() < until) {
		pump_ms(1);
	}
}

static int t_read(struct blk_dev *d, unsigned int i)
{
	reqs[i].iov.iov_base = buf[i];
	reqs[i].iov.iov_len = 4096;
	return d->ops->readv(d, &reqs[i].iov, 1, (uint64_t)i * 4096, t_done, &reqs[i]);
}

static struct blk_dev *dev;

static int setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	fake.fail_id = UINT32_MAX;
	memset(reqs, 0, sizeof(reqs));
	for (unsigned int i = 0; i < NREQ; i++) {
		reqs[i].id = i;
	}
	fake.dev.ops = &fake_ops;
	fake.dev.size = 1 << 30;
	fake.dev.block_size = BLK_DEV_BLOCK;
	fake.dev.queue_depth = NREQ;
	assert_int_equal(blk_qos_create(r, &fake.dev, &dev), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dev->ops->destroy(dev);
	assert_true(fake.destroyed);
	pump_ms(60); /* a timer still armed frees the device (BQ_MAX_SLEEP_NS) */
	return 0;
}

static void test_unlimited_passthrough(void **state)
{
	(void)state;
	assert_int_equal(dev->size, 1 << 30);
	for (unsigned int i = 0; i < 100; i++) {
		assert_int_equal(t_read(dev, i), 0);
	}
	assert_int_equal(fake.submitted, 100); /* all at once, nothing held */
	pump_until(100, 1000);
	for (unsigned int i = 0; i < 100; i++) {
		assert_int_equal(reqs[i].calls, 1);
		assert_int_equal(reqs[i].res, 0);
	}
	blk_qos_set_size(dev, 2 << 20);
	assert_int_equal(dev->size, 2 << 20);
	assert_int_equal(fake.dev.size, 2 << 20);
}

/* 200 IOPS: a burst of 20 goes at once, the other 40 at the rate, in
 * order, each completing once. */
static void test_iops_rate_and_order(void **state)
{
	uint64_t t0;

	(void)state;
	blk_qos_set_limits(dev, 200, 0);
	t0 = reactor_now_ns();
	for (unsigned int i = 0; i < 60; i++) {
		assert_int_equal(t_read(dev, i), 0);
	}
	assert_int_equal(fake.submitted, 20);
	pump_until(60, 3000);
	assert_int_equal(ndone(60), 60);
	for (unsigned int i = 0; i < 60; i++) {
		assert_int_equal(reqs[i].calls, 1);
		assert_int_equal(fake.order[i], i);
	}
	/* 40 more at 200/s: 200 ms, less the part of a request's tokens
	 * that accrued while the first ones were submitted. */
	assert_true(reqs[59].done_ns - t0 >= 190ull * 1000000);
	/* A flush is not limited: it goes while reads wait. */
	blk_qos_set_limits(dev, 1, 0); /* the same (empty) level: at most one goes */
	for (unsigned int i = 60; i < 80; i++) {
		assert_int_equal(t_read(dev, i), 0);
	}
	assert_true(fake.submitted <= 61);
	assert_int_equal(dev->ops->flush(dev, t_done, &reqs[200]), 0);
	assert_int_equal(fake.flushes, 1);
	blk_qos_set_limits(dev, 0, 0); /* lifted: every waiting read goes now */
	assert_int_equal(fake.submitted, 81);
	pump_until(80, 1000);
	assert_int_equal(ndone(80), 80);
}

/* A bandwidth limit: discards cost no bytes; a write larger than the
 * burst goes on a full bucket (debt), the next waits; read-only devices
 * refuse writes without waiting. */
static void test_bytes_discard_debt(void **state)
{
	(void)state;
	blk_qos_set_limits(dev, 0, 4096); /* one block a second, burst 4096 */
	reqs[0].iov.iov_base = buf[0];
	reqs[0].iov.iov_len = 4096;
	assert_int_equal(dev->ops->discard(dev, 0, 1 << 20, t_done, &reqs[1]), 0);
	assert_int_equal(dev->ops->write_zeroes(dev, 0, 1 << 20, t_done, &reqs[2]), 0);
	assert_int_equal(fake.discards, 2);  /* not held: no bytes */
	assert_int_equal(t_read(dev, 3), 0); /* goes: the bucket was full */
	assert_int_equal(t_read(dev, 4), 0); /* waits about a second */
	assert_int_equal(fake.submitted, 3);
	assert_int_equal(dev->ops->discard(dev, 0, 4096, t_done, &reqs[5]), 0);
	assert_int_equal(fake.submitted, 3); /* behind the waiting read: FIFO */
	pump_ms(20);
	assert_int_equal(fake.submitted, 3);
	blk_qos_set_limits(dev, 0, 0);
	assert_int_equal(fake.submitted, 5);
	pump_until(6, 1000);
	assert_int_equal(reqs[4].calls, 1);
	assert_int_equal(reqs[5].calls, 1);
	dev->read_only = true;
	assert_int_equal(dev->ops->writev(dev, &reqs[0].iov, 1, 0, t_done, &reqs[6]), -EROFS);
	assert_int_equal(dev->ops->discard(dev, 0, 4096, t_done, &reqs[6]), -EROFS);
	assert_int_equal(t_read(dev, 7), 0);
	pump_until(8, 1000);
	assert_int_equal(reqs[6].calls, 0);
	assert_int_equal(reqs[7].calls, 1);
}

/* The inner device refuses a released request (-EAGAIN): it stays first
 * and goes on a retry; one it fails gets its callback with the error. */
static void test_inner_eagain_and_error(void **state)
{
	(void)state;
	blk_qos_set_limits(dev, 100, 0); /* burst 10 */
	for (unsigned int i = 0; i < 14; i++) {
		assert_int_equal(t_read(dev, i), 0);
	}
	assert_int_equal(fake.submitted, 10);
	fake.eagain_left = 3; /* the first release is refused three times */
	fake.fail_id = 11;
	pump_until(14, 2000);
	assert_int_equal(ndone(14), 14);
	assert_int_equal(reqs[11].res, -EIO);
	for (unsigned int i = 0; i < 14; i++) {
		assert_int_equal(reqs[i].calls, 1);
		assert_int_equal(fake.order[i], i);
	}
	/* One waiting when the limit is lifted: released at once, with the
	 * timer still armed for it when teardown destroys the device. */
	blk_qos_set_limits(dev, 1, 0);
	assert_int_equal(t_read(dev, 20), 0);
	assert_int_equal(t_read(dev, 21), 0);
	blk_qos_set_limits(dev, 0, 0);
	pump_ms(2);
	assert_int_equal(reqs[20].calls + reqs[21].calls, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unlimited_passthrough, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iops_rate_and_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bytes_discard_debt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inner_eagain_and_error, setup, teardown),
	};
	int ret;

	klog_set_level(KLOG_ERROR);
	if (reactor_create(256, &r)) {
		return 77; /* no io_uring here */
	}
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	pump_ms(60);
	reactor_destroy(r);
	return ret;
}
