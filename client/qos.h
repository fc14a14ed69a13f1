/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qos: the per-volume QoS limiter of keel-client, as pure logic: every
 * function takes the time (@now, CLOCK_MONOTONIC nanoseconds) and nothing
 * here reads a clock, arms a timer or does I/O. blk_qos.c puts it in front
 * of a blk_dev; tests/client/test_qos.c drives it with made-up times.
 *
 * A limiter has two token buckets, requests (IOPS) and bytes (bandwidth),
 * each with a rate in tokens a second (0 = unlimited) and a capacity, the
 * burst: QOS_BURST_NS worth of its rate, at least one token (one request)
 * or QOS_BURST_MIN_BYTES (a block). A bucket refills continuously with time up to
 * its burst. A request costs one request token and its byte count (the
 * caller decides what counts: blk_qos.c counts reads and writes, not
 * discards and write-zeroes, docs/operations.md).
 *
 * A request goes when both buckets hold its cost, or when a bucket it does
 * not fit is full: a request bigger than the burst takes the bucket into
 * debt rather than waiting for ever, and later requests wait until the
 * debt is paid back. Requests that cannot go wait in one FIFO; while any
 * waits, a new one queues behind it even if it would fit, so a large
 * request is never overtaken (starved) by a stream of small ones.
 *
 * Inside, a bucket is kept as the time it will be full again (a "virtual
 * finish time", the GCRA form of a token bucket): one integer, no
 * fractions of tokens, and refill is implicit in comparing it with @now.
 *
 * Not thread-safe: one owner (the reactor thread of the device).
 */
#ifndef KEEL_CLIENT_QOS_H
#define KEEL_CLIENT_QOS_H

#include <stdbool.h>
#include <stdint.h>

#define QOS_BURST_NS	    (100ull * 1000 * 1000) /* 100 ms worth of tokens */
#define QOS_BURST_MIN_BYTES 4096ull		   /* one block */
#define QOS_NS		    1000000000ull

struct qos_bucket {
	uint64_t rate;	  /* tokens a second; 0 = unlimited */
	uint64_t burst;	  /* capacity in tokens */
	uint64_t full_ns; /* when it is full again (<= now: full); past now + burst time: debt */
};

/* A request waiting in the limiter; embed it in the caller's request. */
struct qos_req {
	struct qos_req *next;
	uint64_t bytes; /* what it costs in the bytes bucket */
};

struct qos_limiter {
	struct qos_bucket ops, bytes;
	struct qos_req *head, **tail; /* FIFO of waiting requests */
	uint32_t queued;
};

/* Unlimited, nothing queued. */
void qos_init(struct qos_limiter *l);

/*
 * Set the limits (0 = unlimited) at @now. A bucket keeps its fill level as
 * a fraction of its burst across a change (full stays full, empty stays
 * empty), and a debt stays the same number of tokens owed, paid at the new
 * rate; a bucket that was unlimited starts full. Queued requests
 * stay queued: the caller releases what qos_ready() now allows.
 */
void qos_set_limits(struct qos_limiter *l, uint64_t iops, uint64_t bps, uint64_t now);

/* True when either limit is set. */
bool qos_limited(const struct qos_limiter *l);

/* True when a request of @bytes may go at @now without queueing: nothing
 * waits and both buckets allow it. Changes nothing. */
bool qos_may_pass(const struct qos_limiter *l, uint64_t bytes, uint64_t now);

/* Take a request's tokens (it goes now). */
void qos_charge(struct qos_limiter *l, uint64_t bytes, uint64_t now);

/* Queue @r (r->bytes set) at the tail. */
void qos_enqueue(struct qos_limiter *l, struct qos_req *r);

/* The head if it may go at @now (not dequeued, not charged), else NULL. */
struct qos_req *qos_ready(const struct qos_limiter *l, uint64_t now);

/* Dequeue the head and charge it at @now (after qos_ready() returned it). */
struct qos_req *qos_dequeue(struct qos_limiter *l, uint64_t now);

/* When the head may go (it may be <= now); UINT64_MAX when nothing waits. */
uint64_t qos_next_ns(const struct qos_limiter *l);

#endif
