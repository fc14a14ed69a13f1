/* SPDX-License-Identifier: Apache-2.0 */
#include "reactor.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/*
 * Completions handled before what they queued is sent (see reap()). 8: one
 * server's 4 KiB reads at QD32 went from 62-69k to 69-70k IOPS; 4 sent too
 * often (64-66k), 16 gained less (docs/benchmarks.md, "The disk completes
 * in rounds"). The first batch of a turn is a single completion: its reply
 * starts the peer's turnaround while this thread handles the rest (one
 * server, QD32 reads on one vCPU: 60k to 65k IOPS, same section).
 */
#define REACTOR_CQE_BATCH 8

struct reactor {
	struct io_uring ring;
	bool stop;
	uint64_t poll_ns; /* busy-poll the CQ this long before sleeping */
	unsigned int pending_sqes;

	struct reactor_defer *defer_head;
	struct reactor_defer **defer_tail;

	struct iovec bufs[REACTOR_BUFS]; /* registered regions; iov_base NULL: free */
	bool bufs_registered;		 /* the (sparse) buffer table exists */

	/* Cross-thread messages: a locked list plus an eventfd read that is
	 * always in flight while the reactor runs. */
	pthread_mutex_t msg_lock;
	struct reactor_msg *msg_head;
	struct reactor_msg **msg_tail;
	int msg_efd;
	uint64_t msg_efd_val;
	struct reactor_op msg_op;
	bool msg_armed;
};

uint64_t reactor_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ring setup flags, most preferred first (see reactor_create()). */
static const unsigned int setup_flags[] = {
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER |
		IORING_SETUP_DEFER_TASKRUN,
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	0,
};

int reactor_create(unsigned int entries, struct reactor **out)
{
	struct io_uring_params p;
	struct reactor *r;
	unsigned int i;
	int ret = -EINVAL;

	if (entries < 8 || entries > 32768 || (entries & (entries - 1)))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/*
	 * The CQ is four times the SQ, so it does not overflow (and the kernel
	 * keeps overflowed CQEs anyway: IORING_FEAT_NODROP). One thread owns
	 * the ring, so completions need not interrupt it: COOP_TASKRUN posts
	 * them without an IPI to a running reactor (TASKRUN_FLAG tells it to
	 * collect them), and DEFER_TASKRUN runs them only when the reactor
	 * asks for events. On a VM an IPI is an exit on both vCPUs; fio sets
	 * the same flags. Kernels before 6.1 get the flags they know.
	 */
	for (i = 0; i < sizeof(setup_flags) / sizeof(setup_flags[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE | setup_flags[i];
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, &r->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0)
		goto out_free;
	r->defer_tail = &r->defer_head;
	r->msg_tail = &r->msg_head;
	pthread_mutex_init(&r->msg_lock, NULL);
	r->msg_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->msg_efd < 0) {
		ret = -errno;
		goto out_exit_ring;
	}
	*out = r;
	return 0;

out_exit_ring:
	io_uring_queue_exit(&r->ring);
out_free:
	free(r);
	return ret;
}

void reactor_destroy(struct reactor *r)
{
	if (!r)
		return;
	io_uring_queue_exit(&r->ring);
	close(r->msg_efd);
	pthread_mutex_destroy(&r->msg_lock);
	free(r);
}

int reactor_submit(struct reactor *r)
{
	int ret;

	if (!r->pending_sqes)
		return 0;
	do {
		ret = io_uring_submit(&r->ring);
	} while (ret == -EINTR);
	if (ret >= 0)
		r->pending_sqes = 0;
	return ret;
}

struct io_uring_sqe *reactor_sqe(struct reactor *r)
{
	struct io_uring_sqe *sqe;

	sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		int ret = reactor_submit(r);

		if (ret < 0 && ret != -EBUSY && ret != -EAGAIN)
			log_fatal("io_uring_submit failed: %s", strerror(-ret));
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			log_fatal("no io_uring SQE available after submit");
	}
	r->pending_sqes++;
	return sqe;
}

void reactor_defer(struct reactor *r, struct reactor_defer *d)
{
	d->next = NULL;
	*r->defer_tail = d;
	r->defer_tail = &d->next;
}

static int run_deferred(struct reactor *r)
{
	struct reactor_defer *d;
	int n = 0;

	/* Detach the list: calls queued while running go to the next turn,
	 * so a callback that re-defers itself cannot starve the ring. */
	d = r->defer_head;
	r->defer_head = NULL;
	r->defer_tail = &r->defer_head;
	while (d) {
		struct reactor_defer *next = d->next;

		d->fn(d);
		d = next;
		n++;
	}
	return n;
}

static void timer_done(struct reactor_op *op, int res)
{
	struct reactor_timer *t = container_of(op, struct reactor_timer, op);
	bool fire = !t->cancelled && (res == -ETIME || res == 0);

	(void)res;
	t->armed = false;
	if (fire)
		t->fn(t);
}

int reactor_timer_start(struct reactor *r, struct reactor_timer *t, uint64_t ns,
			void (*fn)(struct reactor_timer *t))
{
	struct io_uring_sqe *sqe;

	if (t->armed)
		return -EBUSY;
	t->fn = fn;
	t->cancelled = false;
	t->armed = true;
	t->ts.tv_sec = (long long)(ns / 1000000000ull);
	t->ts.tv_nsec = (long long)(ns % 1000000000ull);
	sqe = reactor_sqe(r);
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
	reactor_sqe_set_op(sqe, &t->op, timer_done);
	return 0;
}

static void timer_cancel_done(struct reactor_op *op, int res)
{
	(void)res;
	free(op);
}

void reactor_timer_cancel(struct reactor *r, struct reactor_timer *t)
{
	struct io_uring_sqe *sqe;
	struct reactor_op *op;

	if (!t->armed || t->cancelled)
		return;
	t->cancelled = true;
	op = malloc(sizeof(*op));
	if (!op)
		return; /* the timer still expires; cancelled keeps fn from firing */
	sqe = reactor_sqe(r);
	io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&t->op, 0);
	reactor_sqe_set_op(sqe, op, timer_cancel_done);
}

bool reactor_timer_idle(const struct reactor_timer *t)
{
	return !t->armed;
}

static void msg_arm(struct reactor *r);

static int run_msgs(struct reactor *r)
{
	struct reactor_msg *m;
	int n = 0;

	pthread_mutex_lock(&r->msg_lock);
	m = r->msg_head;
	r->msg_head = NULL;
	r->msg_tail = &r->msg_head;
	pthread_mutex_unlock(&r->msg_lock);
	while (m) {
		struct reactor_msg *next = m->next;

		m->fn(m);
		m = next;
		n++;
	}
	return n;
}

static void msg_efd_done(struct reactor_op *op, int res)
{
	struct reactor *r = container_of(op, struct reactor, msg_op);

	r->msg_armed = false;
	if (res < 0 && res != -EAGAIN && res != -EINTR)
		log_error("reactor eventfd read failed: %s", strerror(-res));
	run_msgs(r);
	msg_arm(r);
}

static void msg_arm(struct reactor *r)
{
	struct io_uring_sqe *sqe;

	if (r->msg_armed)
		return;
	r->msg_armed = true;
	sqe = reactor_sqe(r);
	io_uring_prep_read(sqe, r->msg_efd, &r->msg_efd_val, sizeof(r->msg_efd_val), 0);
	reactor_sqe_set_op(sqe, &r->msg_op, msg_efd_done);
}

void reactor_post(struct reactor *r, struct reactor_msg *m)
{
	uint64_t one = 1;
	ssize_t n;

	m->next = NULL;
	pthread_mutex_lock(&r->msg_lock);
	*r->msg_tail = m;
	r->msg_tail = &m->next;
	pthread_mutex_unlock(&r->msg_lock);
	n = write(r->msg_efd, &one, sizeof(one));
	(void)n; /* EAGAIN means the counter is already non-zero: still woken */
}

/*
 * Run the completions: first one, then REACTOR_CQE_BATCH at a time. When
 * more are waiting after a batch, what the batch queued (its replies) goes
 * out first: the peer, often on the other core, starts on them while this
 * thread handles the rest, instead of both waiting for the whole round in
 * turn. The first reply of a round is the one the peer waits for longest.
 */
static int reap(struct reactor *r)
{
	struct io_uring_cqe *cqes[REACTOR_CQE_BATCH];
	unsigned int i, n, want = 1;
	int total = 0;

	for (;;) {
		n = io_uring_peek_batch_cqe(&r->ring, cqes, want);
		if (!n)
			break;
		for (i = 0; i < n; i++) {
			struct reactor_op *op = io_uring_cqe_get_data(cqes[i]);
			int res = cqes[i]->res;

			op->cqe_flags = cqes[i]->flags;
			/* Advance before the callback: it may queue and submit
			 * more work, and the CQ slot is free to reuse. */
			io_uring_cqe_seen(&r->ring, cqes[i]);
			op->cb(op, res);
		}
		total += (int)n;
		if (n < want)
			break;
		want = REACTOR_CQE_BATCH;
		if (io_uring_cq_ready(&r->ring)) {
			run_deferred(r);
			(void)reactor_submit(r);
		}
	}
	return total;
}

void reactor_set_poll_us(struct reactor *r, unsigned int us)
{
	r->poll_ns = (uint64_t)us * 1000;
}

/*
 * Completions the kernel holds as task work (COOP_TASKRUN, DEFER_TASKRUN)
 * reach the CQ only when the ring is entered for events; the kernel flags
 * the SQ ring when there are some (TASKRUN_FLAG), or when CQEs overflowed.
 */
static void collect(struct reactor *r)
{
	if (IO_URING_READ_ONCE(*r->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))
		(void)io_uring_get_events(&r->ring);
}

/*
 * Adaptive busy-poll: after submitting, spin on the CQ for up to poll_ns
 * before sleeping in io_uring_enter. At low queue depth the completion
 * usually arrives within a few microseconds, and a sleep + wakeup (a
 * reschedule, on a VM an IPI and an exit) costs more than the spin.
 */
static bool poll_cq(struct reactor *r)
{
	uint64_t deadline;

	if (!r->poll_ns) {
		return false;
	}
	if (reactor_submit(r) < 0) {
		return false;
	}
	deadline = reactor_now_ns() + r->poll_ns;
	do {
		collect(r);
		if (io_uring_cq_ready(&r->ring)) {
			return true;
		}
		__builtin_ia32_pause();
	} while (reactor_now_ns() < deadline);
	return false;
}

/*
 * One iteration. @settle: deferred calls that ran count as progress only if
 * they queued more deferred work; otherwise the iteration goes on to submit
 * what they queued and wait, in one io_uring_enter. Only reactor_run() may
 * settle: it re-checks nothing between iterations but r->stop, whereas a
 * reactor_poll() caller may be waiting for exactly what a deferred call did.
 */
static int turn(struct reactor *r, bool wait, bool settle)
{
	int ret, n = 0;

	msg_arm(r);
	n += run_deferred(r);
	if (wait && (settle ? !r->stop : !n) && !r->defer_head && !poll_cq(r)) {
		do {
			ret = io_uring_submit_and_wait(&r->ring, 1);
		} while (ret == -EINTR);
		if (ret < 0 && ret != -EBUSY && ret != -ETIME)
			return ret;
		r->pending_sqes = 0;
	} else {
		ret = reactor_submit(r);
		if (ret < 0 && ret != -EBUSY)
			return ret;
		collect(r);
	}
	n += reap(r);
	return n;
}

int reactor_poll(struct reactor *r, bool wait)
{
	return turn(r, wait, false);
}

int reactor_run(struct reactor *r)
{
	int ret;

	r->stop = false;
	while (!r->stop) {
		ret = turn(r, true, true);
		if (ret < 0) {
			log_error("reactor: fatal ring error: %s", strerror(-ret));
			return ret;
		}
	}
	/* Flush what the last iteration queued (e.g. final replies). */
	reactor_submit(r);
	return 0;
}

void reactor_stop(struct reactor *r)
{
	r->stop = true;
}

int reactor_buf_add(struct reactor *r, void *base, size_t len)
{
	struct iovec iov = {.iov_base = base, .iov_len = len};
	unsigned int i;
	int ret;

	if (!base || !len)
		return -EINVAL;
	if (!r->bufs_registered) {
		ret = io_uring_register_buffers_sparse(&r->ring, REACTOR_BUFS);
		if (ret < 0)
			return ret;
		r->bufs_registered = true;
	}
	for (i = 0; i < REACTOR_BUFS && r->bufs[i].iov_base; i++)
		;
	if (i == REACTOR_BUFS)
		return -ENOSPC;
	ret = io_uring_register_buffers_update_tag(&r->ring, i, &iov, NULL, 1);
	if (ret < 0)
		return ret;
	r->bufs[i] = iov;
	return (int)i;
}

void reactor_buf_remove(struct reactor *r, int idx)
{
	struct iovec none = {.iov_base = NULL, .iov_len = 0};

	if (idx < 0 || idx >= REACTOR_BUFS || !r->bufs[idx].iov_base)
		return;
	(void)io_uring_register_buffers_update_tag(&r->ring, (unsigned int)idx, &none, NULL, 1);
	r->bufs[idx] = none;
}

int reactor_buf_find(const struct reactor *r, const void *buf, size_t len)
{
	uintptr_t a = (uintptr_t)buf;
	int i;

	for (i = 0; i < REACTOR_BUFS; i++) {
		uintptr_t b = (uintptr_t)r->bufs[i].iov_base;

		if (b && a >= b && a - b <= r->bufs[i].iov_len &&
		    len <= r->bufs[i].iov_len - (a - b))
			return i;
	}
	return -1;
}

int reactor_register_files(struct reactor *r, const int *fds, unsigned int n)
{
	return io_uring_register_files(&r->ring, fds, n);
}

int reactor_unregister_files(struct reactor *r)
{
	return io_uring_unregister_files(&r->ring);
}
