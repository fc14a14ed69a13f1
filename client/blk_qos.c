/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk_qos: QoS limits in front of a blk_dev (blk_qos.h). A request that
 * fits the buckets goes straight to the inner device with the caller's
 * callback (nothing of ours on its completion path); one that does not
 * takes a preallocated slot and waits in the limiter's FIFO for the timer.
 */
#include "client/blk_qos.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/qos.h"
#include "common/log.h"

/* The timer sleeps at least this long (a few requests go per wakeup at
 * high rates instead of one wakeup each; the burst is far larger, so the
 * rate does not suffer) and at most this long (so a raised limit, or a
 * device being destroyed, never waits on an old long sleep). */
#define BQ_MIN_SLEEP_NS (250ull * 1000)
#define BQ_MAX_SLEEP_NS (50ull * 1000 * 1000)
#define BQ_RETRY_NS	(1000ull * 1000) /* the inner device said -EAGAIN */
#define BQ_SLOTS_CHUNK	256u		 /* waiting slots allocated at once */

enum bq_op {
	BQ_READ,
	BQ_WRITE,
	BQ_DISCARD,
	BQ_WRITE_ZEROES,
};

struct bq_slot {
	struct qos_req q;
	struct bq_slot *next_free;
	enum bq_op op;
	const struct iovec *iov;
	int iovcnt;
	uint64_t offset, length;
	blk_io_cb cb;
	void *arg;
};

/* Slots come in chunks: one at creation, more only when a burst of
 * waiting requests outgrows them (kept until the device goes). */
struct bq_chunk {
	struct bq_chunk *next;
	struct bq_slot slots[BQ_SLOTS_CHUNK];
};

struct blk_qos {
	struct blk_dev dev;
	struct reactor *r;
	struct blk_dev *inner;
	struct qos_limiter lim;
	struct bq_chunk *chunks;
	struct bq_slot *free;
	struct reactor_timer timer;
	bool inner_busy; /* the head got -EAGAIN from the inner device */
	bool dead;	 /* destroyed while the timer was armed: it frees us */
};

static struct blk_qos *bq_of(struct blk_dev *d)
{
	return container_of(d, struct blk_qos, dev);
}

static int bq_start(struct blk_qos *bq, enum bq_op op, const struct iovec *iov, int iovcnt,
		    uint64_t offset, uint64_t length, blk_io_cb cb, void *arg)
{
	struct blk_dev *in = bq->inner;

	switch (op) {
	case BQ_READ:
		return in->ops->readv(in, iov, iovcnt, offset, cb, arg);
	case BQ_WRITE:
		return in->ops->writev(in, iov, iovcnt, offset, cb, arg);
	case BQ_DISCARD:
		return in->ops->discard(in, offset, length, cb, arg);
	case BQ_WRITE_ZEROES:
		return in->ops->write_zeroes(in, offset, length, cb, arg);
	}
	kassert(!"bq_op");
	return -EINVAL;
}

static void bq_release(struct blk_qos *bq);

static void bq_timer_fired(struct reactor_timer *t)
{
	struct blk_qos *bq = container_of(t, struct blk_qos, timer);

	if (bq->dead) {
		free(bq);
		return;
	}
	bq->inner_busy = false;
	bq_release(bq);
}

/* Wake up when the head may go (bounded, see BQ_*_SLEEP_NS). An armed
 * timer is left alone: it fires within BQ_MAX_SLEEP_NS and looks again. */
static void bq_arm(struct blk_qos *bq, uint64_t now)
{
	uint64_t next, delay;

	if (!bq->lim.head || bq->timer.armed) {
		return;
	}
	next = qos_next_ns(&bq->lim);
	delay = next > now ? next - now : 0;
	if (bq->inner_busy && delay < BQ_RETRY_NS) {
		delay = BQ_RETRY_NS;
	}
	delay = delay < BQ_MIN_SLEEP_NS ? BQ_MIN_SLEEP_NS : delay;
	delay = delay > BQ_MAX_SLEEP_NS ? BQ_MAX_SLEEP_NS : delay;
	reactor_timer_start(bq->r, &bq->timer, delay, bq_timer_fired);
}

/* Start every waiting request the limits allow now, oldest first. */
static void bq_release(struct blk_qos *bq)
{
	uint64_t now = reactor_now_ns();
	struct qos_req *q;

	while (!bq->inner_busy && (q = qos_ready(&bq->lim, now))) {
		struct bq_slot *s = container_of(q, struct bq_slot, q);
		blk_io_cb cb = s->cb;
		void *arg = s->arg;
		int rc;

		rc = bq_start(bq, s->op, s->iov, s->iovcnt, s->offset, s->length, cb, arg);
		if (rc == -EAGAIN) {
			bq->inner_busy = true; /* stays at the head: order kept */
			break;
		}
		qos_dequeue(&bq->lim, now);
		s->next_free = bq->free;
		bq->free = s;
		if (rc) {
			cb(arg, rc); /* we answered 0: the callback is owed */
		}
	}
	bq_arm(bq, now);
}

/* More waiting slots. Rare: only when more requests wait than ever before.
 * Returning -EAGAIN instead would stall an export that has nothing else in
 * flight on the device (vhost-user retries only on its own completions). */
static int bq_grow(struct blk_qos *bq)
{
	struct bq_chunk *c = calloc(1, sizeof(*c));

	if (!c) {
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < BQ_SLOTS_CHUNK; i++) {
		c->slots[i].next_free = bq->free;
		bq->free = &c->slots[i];
	}
	c->next = bq->chunks;
	bq->chunks = c;
	return 0;
}

static int bq_submit(struct blk_dev *d, enum bq_op op, const struct iovec *iov, int iovcnt,
		     uint64_t offset, uint64_t length, blk_io_cb cb, void *arg)
{
	struct blk_qos *bq = bq_of(d);
	uint64_t bytes = op == BQ_READ || op == BQ_WRITE ? length : 0;
	uint64_t now;
	struct bq_slot *s;
	int rc;

	if (op != BQ_READ && d->read_only) {
		return -EROFS; /* not worth a wait */
	}
	if (!qos_limited(&bq->lim) && !bq->lim.head) {
		return bq_start(bq, op, iov, iovcnt, offset, length, cb, arg);
	}
	now = reactor_now_ns();
	if (qos_may_pass(&bq->lim, bytes, now)) {
		rc = bq_start(bq, op, iov, iovcnt, offset, length, cb, arg);
		if (!rc) {
			qos_charge(&bq->lim, bytes, now);
		}
		return rc;
	}
	if (!bq->free && bq_grow(bq)) {
		return -EAGAIN; /* out of memory: the caller retries after a completion */
	}
	s = bq->free;
	bq->free = s->next_free;
	s->op = op;
	s->iov = iov;
	s->iovcnt = iovcnt;
	s->offset = offset;
	s->length = length;
	s->cb = cb;
	s->arg = arg;
	s->q.bytes = bytes;
	qos_enqueue(&bq->lim, &s->q);
	bq_arm(bq, now);
	return 0;
}

static uint64_t bq_iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t n = 0;

	for (int i = 0; i < iovcnt; i++) {
		n += iov[i].iov_len;
	}
	return n;
}

static int bq_readv(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		    blk_io_cb cb, void *arg)
{
	return bq_submit(d, BQ_READ, iov, iovcnt, offset, bq_iov_len(iov, iovcnt), cb, arg);
}

static int bq_writev(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		     blk_io_cb cb, void *arg)
{
	return bq_submit(d, BQ_WRITE, iov, iovcnt, offset, bq_iov_len(iov, iovcnt), cb, arg);
}

static int bq_flush(struct blk_dev *d, blk_io_cb cb, void *arg)
{
	struct blk_dev *in = bq_of(d)->inner;

	return in->ops->flush(in, cb, arg);
}

static int bq_discard(struct blk_dev *d, uint64_t offset, uint64_t length, blk_io_cb cb, void *arg)
{
	return bq_submit(d, BQ_DISCARD, NULL, 0, offset, length, cb, arg);
}

static int bq_write_zeroes(struct blk_dev *d, uint64_t offset, uint64_t length, blk_io_cb cb,
			   void *arg)
{
	return bq_submit(d, BQ_WRITE_ZEROES, NULL, 0, offset, length, cb, arg);
}

static void bq_destroy(struct blk_dev *d)
{
	struct blk_qos *bq = bq_of(d);

	/* blk_dev.h: no request in flight, so none waits here either. */
	kassert(!bq->lim.head);
	bq->inner->ops->destroy(bq->inner);
	while (bq->chunks) {
		struct bq_chunk *c = bq->chunks;

		bq->chunks = c->next;
		free(c);
	}
	if (bq->timer.armed) {
		bq->dead = true; /* bq_timer_fired() frees it */
		return;
	}
	free(bq);
}

static const struct blk_dev_ops blk_qos_ops = {
	.readv = bq_readv,
	.writev = bq_writev,
	.flush = bq_flush,
	.discard = bq_discard,
	.write_zeroes = bq_write_zeroes,
	.destroy = bq_destroy,
};

int blk_qos_create(struct reactor *r, struct blk_dev *inner, struct blk_dev **out)
{
	struct blk_qos *bq = calloc(1, sizeof(*bq));

	if (!bq) {
		return -ENOMEM;
	}
	if (bq_grow(bq)) {
		free(bq);
		return -ENOMEM;
	}
	bq->r = r;
	bq->inner = inner;
	qos_init(&bq->lim);
	bq->dev = *inner;
	bq->dev.ops = &blk_qos_ops;
	*out = &bq->dev;
	return 0;
}

void blk_qos_set_limits(struct blk_dev *d, uint64_t iops, uint64_t bps)
{
	struct blk_qos *bq = bq_of(d);

	qos_set_limits(&bq->lim, iops, bps, reactor_now_ns());
	bq_release(bq); /* unlimited now: everything waiting goes, in order */
}

void blk_qos_set_size(struct blk_dev *d, uint64_t size)
{
	struct blk_qos *bq = bq_of(d);

	bq->dev.size = size;
	bq->inner->size = size;
}
