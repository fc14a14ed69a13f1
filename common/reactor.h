/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reactor: a single-threaded event loop on io_uring.
 *
 * One reactor per thread. The owning thread submits work by taking an SQE
 * with reactor_sqe(), filling it, and attaching a struct reactor_op whose
 * callback fires exactly once with the CQE result. SQEs are batched: nothing
 * reaches the kernel until the loop goes around (or the SQ fills up), so
 * callers may queue many operations and pay for one io_uring_enter().
 *
 * Besides raw SQEs the reactor offers deferred calls (run on the next loop
 * turn, no syscall), one-shot timers, and a thread-safe message queue woken
 * through an eventfd: the only way another thread may talk to a reactor.
 *
 * Threading: the thread that creates a reactor is the one that runs it (the
 * ring is set up single-issuer: io_uring_enter() from another thread fails
 * with EEXIST). Every function except reactor_post() must be called from
 * that thread.
 */
#ifndef KEEL_COMMON_REACTOR_H
#define KEEL_COMMON_REACTOR_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct reactor;
struct reactor_op;

/* res is the CQE result: >= 0 on success, -errno on failure. */
typedef void (*reactor_cb)(struct reactor_op *op, int res);

/*
 * One in-flight io_uring operation. Embed it in the request that owns it and
 * recover the request with container_of() in the callback. The op must stay
 * valid until its callback has run, cancelled ops and the ops that cancel
 * them included: deferred calls run between the completions of one turn,
 * so an object freed from one may still have a completion in the ring.
 */
struct reactor_op {
	reactor_cb cb;
	uint32_t cqe_flags; /* flags of the CQE that completed it */
};

/* A call to run on the next loop iteration (or reactor_poll()). */
struct reactor_defer {
	struct reactor_defer *next;
	void (*fn)(struct reactor_defer *d);
};

/* One-shot timer. Re-arm from its callback for periodic work. */
struct reactor_timer {
	struct reactor_op op;
	struct __kernel_timespec ts;
	void (*fn)(struct reactor_timer *t);
	bool armed;
	bool cancelled;
};

/* A message another thread hands to the reactor thread. */
struct reactor_msg {
	struct reactor_msg *next;
	void (*fn)(struct reactor_msg *m);
};

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

/*
 * Create a reactor with a ring of @entries SQEs (power of two, 8..32768).
 * Returns 0 and sets *out, or -EINVAL, -ENOMEM, or the -errno of
 * io_uring_queue_init() (e.g. -ENOSYS when io_uring is unavailable).
 */
int reactor_create(unsigned int entries, struct reactor **out);

/* Destroy a reactor. In-flight operations are abandoned: callers must have
 * drained or closed everything that could still complete. */
void reactor_destroy(struct reactor *r);

/*
 * Get a free SQE. When the submission queue is full the pending SQEs are
 * submitted first. Never returns NULL unless the ring is broken (then the
 * reactor logs and aborts: an SQE shortage is an internal invariant).
 */
struct io_uring_sqe *reactor_sqe(struct reactor *r);

/* Attach @op (with @cb) to @sqe as its user data. */
static inline void reactor_sqe_set_op(struct io_uring_sqe *sqe, struct reactor_op *op,
				      reactor_cb cb)
{
	op->cb = cb;
	op->cqe_flags = 0;
	io_uring_sqe_set_data(sqe, op);
}

/* Submit queued SQEs now. Returns the number submitted or -errno. */
int reactor_submit(struct reactor *r);

/* Queue @d to run on the next loop turn. Never fails. */
void reactor_defer(struct reactor *r, struct reactor_defer *d);

/*
 * Arm @t to fire once after @ns nanoseconds. @t must not already be armed.
 * Returns 0 (the callback fires exactly once unless cancelled first).
 */
int reactor_timer_start(struct reactor *r, struct reactor_timer *t, uint64_t ns,
			void (*fn)(struct reactor_timer *t));

/* Cancel an armed timer: its callback will not fire. No-op if not armed.
 * The timer struct must stay valid until reactor_timer_idle() is true. */
void reactor_timer_cancel(struct reactor *r, struct reactor_timer *t);

/* True once a timer has fired or its cancellation has completed. */
bool reactor_timer_idle(const struct reactor_timer *t);

/* Hand @m to the reactor's thread. Safe from any thread; the callback runs on
 * the reactor thread. @m is owned by the reactor until its callback runs. */
void reactor_post(struct reactor *r, struct reactor_msg *m);

/*
 * Run the loop until reactor_stop(): submit, wait for at least one
 * completion, reap completions in bulk, run deferred calls and messages.
 * Returns 0 after reactor_stop() or -errno on a fatal ring error.
 */
int reactor_run(struct reactor *r);

/* Busy-poll the completion queue for up to @us microseconds before each
 * sleep (0, the default, never spins). Trades CPU for latency at low queue
 * depth; see docs/benchmarks.md. */
void reactor_set_poll_us(struct reactor *r, unsigned int us);

/* Make reactor_run() return after the current iteration. */
void reactor_stop(struct reactor *r);

/*
 * One loop iteration: submit, reap what is ready (waiting for at least one
 * completion if @wait and nothing else is runnable), run deferred calls.
 * Returns the number of callbacks run or -errno. For tests and for loops
 * that interleave other work.
 */
int reactor_poll(struct reactor *r, bool wait);

/*
 * Registered buffers: up to REACTOR_BUFS memory regions (each at most 1 GiB)
 * the kernel keeps pinned, so that I/O on them (the *_FIXED opcodes with the
 * index reactor_buf_find() gives) skips pinning pages per request. Pinned
 * memory counts against RLIMIT_MEMLOCK unless the process has
 * CAP_IPC_LOCK. reactor_buf_add() returns the region's index, or -errno
 * (-ENOSPC when the table is full): callers then do unregistered I/O.
 */
#define REACTOR_BUFS 16
int reactor_buf_add(struct reactor *r, void *base, size_t len);
/* Drop region @idx; I/O still in flight on it completes normally. */
void reactor_buf_remove(struct reactor *r, int idx);
/* Index of the registered region holding [buf, buf + len), or -1. */
int reactor_buf_find(const struct reactor *r, const void *buf, size_t len);

/* Register fixed files once (io_uring_register_files). -errno on failure;
 * callers fall back to plain fds. */
int reactor_register_files(struct reactor *r, const int *fds, unsigned int n);
/* Drop the registered files, so that closing their fds releases them now
 * rather than when the ring is torn down. No I/O on them may be in flight. */
int reactor_unregister_files(struct reactor *r);

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). */
uint64_t reactor_now_ns(void);

#endif
