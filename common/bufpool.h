/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bufpool: a fixed set of equal-size, 4096-aligned buffers carved from one
 * allocation, for O_DIRECT I/O without malloc on the hot path. Optionally
 * registered with a reactor's io_uring as fixed buffers (one iovec covering
 * the whole arena, buffer index 0).
 *
 * Single-threaded (the owning reactor's thread).
 */
#ifndef KEEL_COMMON_BUFPOOL_H
#define KEEL_COMMON_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/reactor.h"

struct bufpool;

/* @buf_size is rounded up to 4096. -EINVAL for zero sizes/counts, -ENOMEM. */
int bufpool_create(size_t buf_size, unsigned int count, struct bufpool **out);
void bufpool_destroy(struct bufpool *p);

/* Register the arena with @r as a fixed buffer (reactor_buf_add()): its
 * index, or -errno (callers may ignore failure: registration is an
 * optimisation). The pool must outlive the registration or drop it first
 * (reactor_buf_remove()). */
int bufpool_register(struct bufpool *p, struct reactor *r);

/* Let transports send from the pool's buffers without copying them
 * (xport_mem_register(); undone by bufpool_destroy()). 0 or -errno (callers
 * may ignore failure: sends are then copied). */
int bufpool_zero_copy(struct bufpool *p);

/* NULL when the pool is empty (callers queue and retry on put). */
void *bufpool_get(struct bufpool *p);
void bufpool_put(struct bufpool *p, void *buf);

size_t bufpool_buf_size(const struct bufpool *p);
unsigned int bufpool_free_count(const struct bufpool *p);
/* True when @buf is one of the pool's buffers (a pointer bufpool_get() returns). */
int bufpool_owns(const struct bufpool *p, const void *buf);

#endif
