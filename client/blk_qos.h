/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk_qos: a blk_dev in front of another one that enforces a volume's QoS
 * limits (IOPS and bytes a second) with a qos_limiter (client/qos.h).
 * keel-client puts one in front of every attached volume, so all its
 * vhost-user queues and NBD connections share the one limiter.
 *
 * What counts (docs/operations.md): a read or a write is one request and
 * its length in bytes; a discard or a write-zeroes is one request and no
 * bytes (no data crosses the network: the servers drop or zero objects);
 * a flush is not limited at all (it moves no data, and holding it back
 * would only stretch the latency of the writes it makes durable, which
 * were already limited).
 *
 * A request that may not go yet waits in the limiter's FIFO and is
 * released by a reactor timer, in arrival order; it is never failed or
 * dropped for being over the limit. The waiting time is part of the
 * request's latency as the export measures it. While it waits the request
 * is in flight for the caller (0 was returned, the callback is to come):
 * the async rule of blk_dev.h holds unchanged, and closing an export
 * waits for it (keel-client lifts the limits when it closes a volume, so
 * that is quick).
 *
 * Requirements on the caller beyond blk_dev.h: the @iov array (not only
 * the buffers) stays valid until the callback, as both exports do (the
 * array lives in their request). Waiting slots are preallocated (256)
 * and grow in chunks when more requests wait at once; -EAGAIN only when
 * that allocation fails, or when the inner device says so. queue_depth is
 * the inner device's.
 *
 * Threading: the reactor thread of @r, like every blk_dev.
 */
#ifndef KEEL_CLIENT_BLK_QOS_H
#define KEEL_CLIENT_BLK_QOS_H

#include <stdint.h>

#include "client/blk_dev.h"
#include "common/reactor.h"

/* Wrap @inner (taken: destroying the result destroys it), unlimited until
 * blk_qos_set_limits(). 0 or -ENOMEM (then @inner is still the caller's). */
int blk_qos_create(struct reactor *r, struct blk_dev *inner, struct blk_dev **out);

/* New limits (0 = unlimited), effective at once: requests that may go
 * under them are released now. @d must come from blk_qos_create(). */
void blk_qos_set_limits(struct blk_dev *d, uint64_t iops, uint64_t bps);

/* The size of @d and of the device behind it (an online resize). */
void blk_qos_set_size(struct blk_dev *d, uint64_t size);

#endif
