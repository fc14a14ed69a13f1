/* SPDX-License-Identifier: Apache-2.0 */
/* qos: two token buckets and a FIFO, pure functions of time (qos.h). */
#include "client/qos.h"

#include <stddef.h>

#include "common/log.h"

/* Nanoseconds @tokens take to refill at @rate (> 0). 128-bit: a byte count
 * times 10^9 overflows 64 bits past 18 GB. */
static uint64_t qos_tokens_ns(uint64_t tokens, uint64_t rate)
{
	unsigned __int128 ns = (unsigned __int128)tokens * QOS_NS / rate;

	return ns > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)ns;
}

static uint64_t qos_burst(uint64_t rate, uint64_t min)
{
	uint64_t b = (uint64_t)((unsigned __int128)rate * QOS_BURST_NS / QOS_NS);

	return b < min ? min : b;
}

/* When a request costing @cost may go: the bucket holds @cost, or (a
 * request bigger than the burst) the bucket is full. 0 when unlimited. */
static uint64_t qos_bucket_ready_ns(const struct qos_bucket *b, uint64_t cost)
{
	uint64_t slack;

	if (!b->rate) {
		return 0;
	}
	if (cost >= b->burst) {
		return b->full_ns;
	}
	slack = qos_tokens_ns(b->burst - cost, b->rate);
	return b->full_ns > slack ? b->full_ns - slack : 0;
}

static void qos_bucket_charge(struct qos_bucket *b, uint64_t cost, uint64_t now)
{
	if (!b->rate) {
		return;
	}
	b->full_ns = (b->full_ns > now ? b->full_ns : now) + qos_tokens_ns(cost, b->rate);
}

static void qos_bucket_set(struct qos_bucket *b, uint64_t rate, uint64_t min_burst, uint64_t now)
{
	uint64_t burst = qos_burst(rate, min_burst);
	unsigned __int128 missing; /* tokens short of full */

	if (rate == b->rate) {
		return;
	}
	if (!rate || !b->rate) {
		b->full_ns = now; /* full */
	} else {
		missing = b->full_ns > now
				  ? (unsigned __int128)(b->full_ns - now) * b->rate / QOS_NS
				  : 0;
		if (missing <= b->burst) {
			/* The same fraction of the new burst: full stays
			 * full, empty stays empty. */
			missing = missing * burst / b->burst;
		} else {
			/* A debt is tokens owed: paid at the new rate, from
			 * an empty bucket. */
			missing = missing - b->burst + burst;
		}
		b->full_ns =
			now +
			qos_tokens_ns(missing > UINT64_MAX ? UINT64_MAX : (uint64_t)missing, rate);
	}
	b->rate = rate;
	b->burst = rate ? burst : 0;
}

void qos_init(struct qos_limiter *l)
{
	l->ops = (struct qos_bucket){0};
	l->bytes = (struct qos_bucket){0};
	l->head = NULL;
	l->tail = &l->head;
	l->queued = 0;
}

void qos_set_limits(struct qos_limiter *l, uint64_t iops, uint64_t bps, uint64_t now)
{
	qos_bucket_set(&l->ops, iops, 1, now);
	qos_bucket_set(&l->bytes, bps, QOS_BURST_MIN_BYTES, now);
}

bool qos_limited(const struct qos_limiter *l)
{
	return l->ops.rate || l->bytes.rate;
}

static uint64_t qos_ready_ns(const struct qos_limiter *l, uint64_t bytes)
{
	uint64_t a = qos_bucket_ready_ns(&l->ops, 1);
	uint64_t b = qos_bucket_ready_ns(&l->bytes, bytes);

	return a > b ? a : b;
}

bool qos_may_pass(const struct qos_limiter *l, uint64_t bytes, uint64_t now)
{
	return !l->head && qos_ready_ns(l, bytes) <= now;
}

void qos_charge(struct qos_limiter *l, uint64_t bytes, uint64_t now)
{
	qos_bucket_charge(&l->ops, 1, now);
	qos_bucket_charge(&l->bytes, bytes, now);
}

void qos_enqueue(struct qos_limiter *l, struct qos_req *r)
{
	r->next = NULL;
	*l->tail = r;
	l->tail = &r->next;
	l->queued++;
}

struct qos_req *qos_ready(const struct qos_limiter *l, uint64_t now)
{
	if (!l->head || qos_ready_ns(l, l->head->bytes) > now) {
		return NULL;
	}
	return l->head;
}

struct qos_req *qos_dequeue(struct qos_limiter *l, uint64_t now)
{
	struct qos_req *r = l->head;

	kassert(r);
	l->head = r->next;
	if (!l->head) {
		l->tail = &l->head;
	}
	l->queued--;
	r->next = NULL;
	qos_charge(l, r->bytes, now);
	return r;
}

uint64_t qos_next_ns(const struct qos_limiter *l)
{
	return l->head ? qos_ready_ns(l, l->head->bytes) : UINT64_MAX;
}
