/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RDMA transport's driver (common/xport_rdma.c) on a fake device
 * (fake_verbs.c): rdma_cm, verbs and the reactor, with both ends of each
 * connection in this process and one reactor. Each case asserts through the
 * xport API (connect/listen/accept_start/start/send/close, the callbacks and
 * the counters) and ends with every fake object released, no fd leaked and
 * no violation of the verbs rules the fake checks (RNR, protection, queue
 * and CQ sizes, destroy order, unacknowledged events).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/xport.h"
#include "common/xrdma_core.h"
#include "fake_verbs.h"

#define LADDR	  "192.0.2.1:7471"
#define RX_SIZE	  1115224u /* KP_CONN's: the largest frame (docs/wire-format.md) */
#define STREAM	  (4u << 20)
#define PUMP_NS	  10000000000ull
#define MAX_ACC	  8
#define READ_MIN  8192u /* the production geometry: a piece this long goes by RDMA READ */
#define SLOTS	  32u	/* receive slots per connection (credits) */
#define N_QUEUED  100
#define SEND_SIZE 4000u

static const struct xport_ops *ops = &xport_rdma_ops;
static struct reactor *r;
static struct xport_listener *lis;
static struct xport_conn *accepted[MAX_ACC];
static int naccepted;
static bool accept_off_thread;
static bool listen_close_in_accept;
static pthread_t main_thread;
static int events; /* order of callbacks */
static int fds_base;
static struct xport_stats st0;
static uint8_t *stream[2];
static uint64_t case_seed;

/* --- the loop: the fake wire, then the reactor, never blocking --- */

static void pump_once(void)
{
	unsigned int ran = fake_wire_run();
	int n = reactor_poll(r, false);

	assert_true(n >= 0);
	if (!ran && !n) {
		usleep(50);
	}
}

#define pump_until(cond)                                                                           \
	do {                                                                                       \
		uint64_t deadline_ = reactor_now_ns() + PUMP_NS;                                   \
		while (!(cond)) {                                                                  \
			if (reactor_now_ns() > deadline_) {                                        \
				fail_msg("timed out waiting for %s", #cond);                       \
			}                                                                          \
			pump_once();                                                               \
		}                                                                                  \
	} while (0)

/* Run the loop for @ms, and at least 10 turns: lets stray work show up. */
static void pump_ms(unsigned int ms)
{
	uint64_t end = reactor_now_ns() + ms * 1000000ull;

	for (int i = 0; i < 10 || reactor_now_ns() < end; i++) {
		pump_once();
	}
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d)) {
		n++;
	}
	closedir(d);
	return n;
}

/* --- endpoints: the owner of one started connection --- */

struct ep {
	struct xport_conn *c;
	int closes, close_err, close_event;
	int recvs, last_recv_event;
	ssize_t recv_err;   /* on_recv returns this when set */
	bool close_in_recv; /* on_recv closes the connection (and consumes) */
	uint8_t *rx;
	size_t rx_len;
};

static ssize_t ep_on_recv(struct xport_conn *c, const uint8_t *data, size_t len)
{
	struct ep *ep = c->arg;

	assert_ptr_equal(ep->c, c);
	assert_int_equal(ep->closes, 0);
	assert_true(pthread_equal(pthread_self(), main_thread));
	assert_true(len > 0);
	if (ep->recv_err) {
		return ep->recv_err;
	}
	assert_true(ep->rx_len + len <= STREAM);
	memcpy(ep->rx + ep->rx_len, data, len);
	ep->rx_len += len;
	ep->recvs++;
	ep->last_recv_event = events++;
	if (ep->close_in_recv) {
		ops->close(c, 0);
	}
	return (ssize_t)len;
}

static void ep_on_close(struct xport_conn *c, int err)
{
	struct ep *ep = c->arg;

	assert_ptr_equal(ep->c, c);
	assert_true(pthread_equal(pthread_self(), main_thread));
	ep->closes++;
	ep->close_err = err;
	ep->close_event = events++;
}

static const struct xport_conn_cbs ep_cbs = {
	.on_recv = ep_on_recv,
	.on_close = ep_on_close,
};

static void ep_start(struct ep *ep, struct xport_conn *c)
{
	memset(ep, 0, sizeof(*ep));
	ep->c = c;
	ep->rx = malloc(STREAM);
	assert_non_null(ep->rx);
	assert_int_equal(ops->start(c, &ep_cbs, RX_SIZE, ep), 0);
}

static void ep_free(struct ep *ep)
{
	free(ep->rx);
	ep->rx = NULL;
}

/* --- sends with a record of their callbacks --- */

struct tsend {
	struct xport_send s;
	int calls, res, event;
	struct xport_conn *close_conn; /* the callback closes it with close_err */
	int close_err;
};

static void tsend_cb(struct xport_send *s, int res)
{
	struct tsend *t = container_of(s, struct tsend, s);

	assert_true(pthread_equal(pthread_self(), main_thread));
	t->calls++;
	t->res = res;
	t->event = events++;
	if (t->close_conn) {
		ops->close(t->close_conn, t->close_err);
	}
}

/* @t as one send of [p, p + len), not queued yet. */
static void tsend_init(struct tsend *t, const uint8_t *p, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->s.iov[0] = (struct iovec){(void *)p, len};
	t->s.iovcnt = 1;
	t->s.cb = tsend_cb;
}

/* Queue @len bytes of @src from *@off as one send (@pieces iovecs: a
 * 16-byte head, the middle, a 4-byte tail, like a frame). */
static void send_piece(struct xport_conn *c, struct tsend *t, const uint8_t *src, size_t *off,
		       size_t len, int pieces)
{
	tsend_init(t, src + *off, len);
	if (pieces > 1) {
		t->s.iov[0].iov_len = 16;
		t->s.iov[1] = (struct iovec){(void *)(src + *off + 16), len - 20};
		t->s.iov[2] = (struct iovec){(void *)(src + *off + len - 4), 4};
		t->s.iovcnt = 3;
	}
	assert_int_equal(ops->send(c, &t->s), 0);
	*off += len;
}

static bool all_called(const struct tsend *t, int n)
{
	for (int i = 0; i < n; i++) {
		if (!t[i].calls) {
			return false;
		}
	}
	return true;
}

/* How many of @t, from the first, have completed (the ones copied). */
static int prefix_done(const struct tsend *t, int n)
{
	int i = 0;

	while (i < n && t[i].calls) {
		assert_int_equal(t[i].calls, 1);
		assert_int_equal(t[i].res, 0);
		i++;
	}
	for (int j = i; j < n; j++) {
		assert_int_equal(t[j].calls, 0);
	}
	return i;
}

/* Sends [from, n) were cancelled: once each with @err, before on_close. */
static void assert_cancelled(const struct tsend *t, int from, int n, int err, const struct ep *ep)
{
	for (int i = 0; i < n; i++) {
		assert_int_equal(t[i].calls, 1);
		if (i < from) {
			assert_int_equal(t[i].res, 0);
			continue;
		}
		assert_int_equal(t[i].res, err);
		assert_true(t[i].event < ep->close_event);
	}
}

/* --- listener, connections --- */

static void on_accept(struct xport_listener *l, struct xport_conn *c, void *arg)
{
	assert_ptr_equal(l, lis);
	assert_ptr_equal(arg, &naccepted);
	if (!pthread_equal(pthread_self(), main_thread)) {
		accept_off_thread = true;
	}
	assert_true(naccepted < MAX_ACC);
	accepted[naccepted++] = c;
	if (listen_close_in_accept) {
		ops->listen_close(lis);
		lis = NULL;
	}
}

static void listen_start(void)
{
	assert_int_equal(ops->listen(r, LADDR, &lis), 0);
	assert_string_equal(ops->listen_addr(lis), LADDR);
	assert_int_equal(ops->accept_start(lis, on_accept, &naccepted), 0);
	assert_int_equal(ops->accept_start(lis, on_accept, &naccepted), -EBUSY);
}

/* Connect to the listener (started if needed); wait for the accept. */
static struct xport_conn *connect_one(struct xport_conn **server)
{
	struct xport_conn *c = NULL;
	int want = naccepted + 1;

	if (!lis) {
		listen_start();
	}
	assert_int_equal(ops->connect(r, LADDR, &c), 0);
	assert_non_null(c);
	pump_until(naccepted == want);
	assert_false(accept_off_thread);
	*server = accepted[want - 1];
	return c;
}

static void pair_up(struct ep *cl, struct ep *sv)
{
	struct xport_conn *c, *s;

	c = connect_one(&s);
	ep_start(cl, c);
	ep_start(sv, s);
}

static void assert_closed(const struct ep *ep, int err)
{
	assert_int_equal(ep->closes, 1);
	assert_int_equal(ep->close_err, err);
}

/* Every fake object released, no fd left over, no violation seen. */
static void assert_nothing_live(void)
{
	for (int k = 0; k < FAKE_KINDS; k++) {
		if (fake_live((enum fake_kind)k)) {
			fail_msg("%u %s not released (%u created)", fake_live((enum fake_kind)k),
				 fake_kind_name((enum fake_kind)k),
				 fake_created((enum fake_kind)k));
		}
	}
	assert_int_equal(fake_violations(), 0);
	assert_int_equal(count_fds(), fds_base);
}

/* Close the listener, let the closes finish: nothing may be left. */
static void assert_released(void)
{
	if (lis) {
		ops->listen_close(lis);
		lis = NULL;
	}
	pump_ms(5);
	assert_nothing_live();
}

/* Both ends closed, once each, with these errors. */
static void wait_closed(struct ep *cl, int cl_err, struct ep *sv, int sv_err)
{
	pump_until(cl->closes && sv->closes);
	pump_ms(5);
	assert_closed(cl, cl_err);
	assert_closed(sv, sv_err);
}

static void free_pair(struct ep *cl, struct ep *sv)
{
	ep_free(cl);
	ep_free(sv);
	assert_released();
}

static uint64_t delta(const uint64_t *now, const uint64_t *then)
{
	return __atomic_load_n(now, __ATOMIC_RELAXED) - *then;
}

#define STAT(f) delta(&ops->stats->f, &st0.f)

/* --- streams both ways, inline and by RDMA READ --- */

static const size_t stream_sizes[] = {1,    100, 4096,	   8191,  8192,	  65536,
				      3000, 17,	 1u << 20, 65536, 200000, 7};
#define N_STREAM (sizeof(stream_sizes) / sizeof(stream_sizes[0]))

static void test_stream_both_ways(void **state)
{
	static struct tsend tc[N_STREAM + 1], ts[N_STREAM + 1];
	struct ep cl, sv;
	struct fake_stats fs;
	size_t oc = 0, os = 0, total, by_read = 0;

	pair_up(&cl, &sv);
	assert_string_equal(ops->peer(cl.c), LADDR);
	assert_memory_equal(ops->peer(sv.c), "192.0.2.100:", 12);
	assert_int_equal(STAT(conns), 2);

	for (size_t i = 0; i < N_STREAM; i++) {
		send_piece(cl.c, &tc[i], stream[0], &oc, stream_sizes[i], 1);
		send_piece(sv.c, &ts[i], stream[1], &os, stream_sizes[i], 1);
		by_read += stream_sizes[i] >= READ_MIN ? stream_sizes[i] : 0;
	}
	/* a frame: head and tail inline, the 64 KiB between by READ */
	send_piece(cl.c, &tc[N_STREAM], stream[0], &oc, 65536 + 20, 3);
	send_piece(sv.c, &ts[N_STREAM], stream[1], &os, 65536 + 20, 3);
	by_read += 65536;
	total = oc;
	assert_int_equal(os, total);

	pump_until(cl.rx_len == total && sv.rx_len == total && all_called(tc, N_STREAM + 1) &&
		   all_called(ts, N_STREAM + 1));
	assert_memory_equal(sv.rx, stream[0], total);
	assert_memory_equal(cl.rx, stream[1], total);
	for (size_t i = 0; i <= N_STREAM; i++) {
		assert_int_equal(tc[i].calls, 1);
		assert_int_equal(tc[i].res, 0);
		assert_int_equal(ts[i].calls, 1);
		assert_int_equal(ts[i].res, 0);
	}
	pump_until(fake_quiet()); /* READ_DONEs and credits settled */

	assert_int_equal(cl.c->bytes_out, total);
	assert_int_equal(cl.c->bytes_in, total);
	assert_int_equal(sv.c->bytes_out, total);
	assert_int_equal(sv.c->bytes_in, total);
	assert_int_equal(STAT(bytes_out), 2 * total);
	assert_int_equal(STAT(bytes_in), 2 * total);
	assert_int_equal(STAT(rdma_read_bytes), 2 * by_read);
	fake_get_stats(&fs);
	assert_int_equal(fs.read_bytes, 2 * by_read);
	/* 1 MiB goes by READs of the 256 KiB buffers (4), the other 5 pieces
	 * by one READ at least */
	assert_true(fs.reads >= 2 * 9);
	assert_int_equal(STAT(msgs_out), fs.sends);
	assert_int_equal(STAT(msgs_in), fs.sends);
	/* credits make an RNR a bug: it must fail the connection, not stall it */
	assert_int_equal(fs.connect_rnr_retry, 0);
	assert_int_equal(fs.accept_rnr_retry, 0);

	ops->close(cl.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* --- credits: a receiver that does not poll stops the sender, no RNR --- */

static void test_credits_slow_receiver(void **state)
{
	enum { N = 64 };
	static struct tsend t[N];
	struct ep cl, sv;
	size_t off = 0;

	pair_up(&cl, &sv);
	fake_cq_mute(FAKE_PASSIVE, true); /* its receives complete, nobody looks */
	for (int i = 0; i < N; i++) {
		/* 7000-byte sends fill 31 messages long before the last ones
		 * (by RDMA READ) */
		send_piece(cl.c, &t[i], stream[0], &off, i < N - 4 ? 7000 : 300000, 1);
	}
	/* one credit is kept for CREDIT messages: slots - 1 SENDs, one receive
	 * left, and no more */
	pump_until(fake_qp_sends(FAKE_ACTIVE) == SLOTS - 1);
	pump_ms(20);
	assert_int_equal(fake_qp_sends(FAKE_ACTIVE), SLOTS - 1);
	assert_int_equal(fake_qp_recvs_posted(FAKE_PASSIVE), 1);
	assert_int_equal(t[N - 1].calls, 0);
	assert_int_equal(sv.rx_len, 0);
	assert_int_equal(fake_violations(), 0);

	fake_cq_mute(FAKE_PASSIVE, false);
	pump_until(sv.rx_len == off && all_called(t, N));
	assert_memory_equal(sv.rx, stream[0], off);
	assert_int_equal(prefix_done(t, N), N);
	assert_int_equal(fake_violations(), 0);

	ops->close(sv.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* --- zero copy: sends from memory registered with xport_mem_register() --- */

static void test_zero_copy(void **state)
{
	static const size_t sizes[] = {8192, 100, 1u << 20, 200000, 17, 2u << 20};
	static struct tsend t[8];
	uint64_t zc = 0, zc0, rd0;
	struct ep cl, sv;
	size_t off = 0, soff = 0, want;
	unsigned int mr0;

	pair_up(&cl, &sv);
	mr0 = fake_live(FAKE_MR);
	assert_int_equal(xport_mem_register(stream[0], STREAM), 0);

	/* A piece read in place holds its callback until the peer has read
	 * it, and so does a copied one (stream[1] is not registered): until
	 * then the peer does not have the bytes. */
	fake_cq_mute(FAKE_PASSIVE, true);
	send_piece(cl.c, &t[0], stream[0], &off, 65536, 1);
	zc += 65536;
	send_piece(cl.c, &t[1], stream[1], &soff, 65536, 1);
	pump_ms(20);
	assert_int_equal(t[0].calls, 0);
	assert_int_equal(t[1].calls, 0);
	assert_int_equal(fake_live(FAKE_MR), mr0 + 1); /* registered on first use */
	fake_cq_mute(FAKE_PASSIVE, false);
	pump_until(t[0].calls && t[1].calls && sv.rx_len == 2 * 65536);
	assert_int_equal(t[0].res, 0);
	assert_int_equal(t[1].res, 0);
	assert_memory_equal(sv.rx, stream[0], 65536);
	assert_memory_equal(sv.rx + 65536, stream[1], 65536);
	sv.rx_len = 0;

	/* a stream from it: the large pieces read in place (the 2 MiB one in
	 * bites, as the receiver's buffer frees up), one registration */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		send_piece(cl.c, &t[2 + i], stream[0], &off, sizes[i], 1);
		zc += sizes[i] >= READ_MIN ? sizes[i] : 0;
	}
	want = off - 65536;
	pump_until(sv.rx_len == want && all_called(t, 8));
	assert_memory_equal(sv.rx, stream[0] + 65536, want);
	assert_int_equal(STAT(zero_copy_bytes), zc);
	assert_int_equal(STAT(rdma_read_bytes), zc + 65536);
	assert_int_equal(fake_live(FAKE_MR), mr0 + 1);

	/* the other side registers it with its own PD when it sends from it */
	soff = 0;
	send_piece(sv.c, &t[0], stream[0], &soff, 1u << 20, 1);
	pump_until(cl.rx_len == soff && t[0].calls);
	assert_memory_equal(cl.rx, stream[0], soff);
	assert_int_equal(fake_live(FAKE_MR), mr0 + 2);

	/* unregistered on the connections' thread: each drops its
	 * registration at once, and sends from that memory are copied again */
	pump_until(fake_quiet());
	xport_mem_unregister(stream[0]);
	assert_int_equal(fake_live(FAKE_MR), mr0);
	zc0 = STAT(zero_copy_bytes);
	rd0 = STAT(rdma_read_bytes);
	soff = 0;
	send_piece(cl.c, &t[0], stream[0], &soff, 65536, 1);
	send_piece(sv.c, &t[1], stream[0], &soff, 100, 1);
	pump_until(fake_live(FAKE_MR) == mr0 && all_called(t, 2) && cl.rx_len == (1u << 20) + 100);
	pump_until(sv.rx_len == want + 65536);
	assert_memory_equal(sv.rx + want, stream[0], 65536);
	assert_int_equal(STAT(zero_copy_bytes), zc0);
	assert_int_equal(STAT(rdma_read_bytes), rd0 + 65536);

	ops->close(cl.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* The owner closes while the peer has not read a piece yet: the callback
 * gets the error (the caller's memory is free again only then), and the
 * peer never reads the memory after that (our QP is in error before). */
static void test_zero_copy_close_while_read(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	pair_up(&cl, &sv);
	assert_int_equal(xport_mem_register(stream[0], STREAM), 0);
	fake_cq_mute(FAKE_PASSIVE, true);
	send_piece(cl.c, &t, stream[0], &off, 1u << 20, 1);
	pump_until(fake_qp_sends(FAKE_ACTIVE) == 1 && !fake_wire_run());
	assert_int_equal(t.calls, 0);
	ops->close(cl.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, -ECANCELED);
	assert_true(t.event < cl.close_event);
	assert_true(sv.rx_len < off);
	xport_mem_unregister(stream[0]);
	free_pair(&cl, &sv);
}

/* ibv_reg_mr fails (the memlock limit): sends from the memory are copied,
 * and the connection does not try again. */
static void test_zero_copy_reg_fails(void **state)
{
	struct tsend t[2];
	struct ep cl, sv;
	size_t off = 0;
	unsigned int mrs;

	pair_up(&cl, &sv);
	assert_int_equal(xport_mem_register(stream[0], STREAM), 0);
	mrs = fake_created(FAKE_MR);
	fake_fail_reg_mr(ENOMEM);
	send_piece(cl.c, &t[0], stream[0], &off, 65536, 1);
	send_piece(cl.c, &t[1], stream[0], &off, 1u << 20, 1);
	pump_until(sv.rx_len == off && all_called(t, 2));
	assert_memory_equal(sv.rx, stream[0], off);
	assert_int_equal(t[0].res, 0);
	assert_int_equal(t[1].res, 0);
	assert_int_equal(STAT(zero_copy_bytes), 0);
	assert_int_equal(STAT(rdma_read_bytes), off);
	assert_int_equal(fake_created(FAKE_MR), mrs);
	xport_mem_unregister(stream[0]);
	ops->close(cl.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* --- fault injection: xport_send.delay_ms --- */

/* A delayed send holds this side's stream output; what the peer needs to
 * go on (READ_DONE for its zero-copy piece, credits) still flows. */
static void test_delay_holds_output(void **state)
{
	struct tsend t[2];
	struct ep cl, sv;
	size_t off = 0, soff = 0;

	pair_up(&cl, &sv);
	assert_int_equal(xport_mem_register(stream[1], STREAM), 0);
	tsend_init(&t[0], stream[0], 100);
	t[0].s.delay_ms = 500;
	assert_int_equal(ops->send(cl.c, &t[0].s), 0);
	off = 100;
	send_piece(sv.c, &t[1], stream[1], &soff, 65536, 1);
	pump_until(t[1].calls && cl.rx_len == soff);
	assert_int_equal(t[1].res, 0);
	assert_int_equal(STAT(zero_copy_bytes), soff);
	assert_int_equal(sv.rx_len, 0);
	pump_until(sv.rx_len == off && t[0].calls);
	assert_memory_equal(sv.rx, stream[0], off);
	xport_mem_unregister(stream[1]);
	ops->close(cl.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* --- argument checks --- */

static void test_bad_arguments(void **state)
{
	struct xport_send empty = {.iovcnt = 0, .cb = tsend_cb};
	struct xport_conn *c, *s;
	struct ep cl, sv;

	c = connect_one(&s);
	assert_int_equal(ops->start(c, &ep_cbs, RX_SIZE * 2, &cl), -EMSGSIZE);
	assert_int_equal(ops->start(c, &ep_cbs, 0, &cl), -EINVAL);
	ep_start(&cl, c);
	ep_start(&sv, s);
	assert_int_equal(ops->start(c, &ep_cbs, RX_SIZE, &cl), -EALREADY);
	assert_int_equal(ops->send(c, &empty), -EINVAL);
	ops->close(c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* --- a work request fails (QP error) --- */

/* Queue N_QUEUED sends of SEND_SIZE from @ep with the wire held: some are
 * copied and posted (credits), the rest wait; none completes, since the peer
 * has none of them. Returns how many completed (0). */
static int queue_held(struct ep *ep, struct tsend *t, const uint8_t *src)
{
	size_t off = 0;
	int copied;

	for (int i = 0; i < N_QUEUED; i++) {
		send_piece(ep->c, &t[i], src, &off, SEND_SIZE, 1);
	}
	pump_ms(20);
	copied = prefix_done(t, N_QUEUED);
	assert_int_equal(copied, 0);
	return copied;
}

static void test_qp_error(void **state)
{
	static struct tsend t[N_QUEUED];
	struct fake_stats fs;
	struct ep cl, sv;
	int copied;

	pair_up(&cl, &sv);
	fake_wire_hold(true);
	copied = queue_held(&cl, t, stream[0]);
	fake_fail_next_wr(FAKE_ACTIVE, IBV_WC_RETRY_EXC_ERR);
	fake_wire_hold(false);
	/* the peer sees our disconnect */
	wait_closed(&cl, -EIO, &sv, 0);
	assert_cancelled(t, copied, N_QUEUED, -EIO, &cl);
	/* the first SEND failed and the rest flushed: nothing arrived */
	assert_int_equal(sv.rx_len, 0);
	fake_get_stats(&fs);
	assert_true(fs.flushed >= SLOTS);
	free_pair(&cl, &sv);
}

/* --- flushed work requests we did not cause --- */

static void test_flush_not_ours(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	pair_up(&cl, &sv);
	send_piece(cl.c, &t, stream[0], &off, 100, 1);
	pump_until(sv.rx_len == 100);
	fake_qp_to_error(FAKE_PASSIVE);
	wait_closed(&cl, 0, &sv, -ECONNRESET);
	assert_int_equal(t.res, 0);
	free_pair(&cl, &sv);
}

/* --- the CQ overruns (ibv_poll_cq < 0) --- */

static void test_cq_overrun(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	pair_up(&cl, &sv);
	fake_cq_overrun(FAKE_ACTIVE);
	send_piece(sv.c, &t, stream[1], &off, 100, 1); /* wakes the client's CQ */
	wait_closed(&cl, -EIO, &sv, 0);
	assert_int_equal(cl.rx_len, 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(fake_violations(), 0);
	free_pair(&cl, &sv);
}

/* --- the peer disconnects after sending --- */

static void test_remote_disconnect_after_data(void **state)
{
	static const size_t sizes[] = {100, 4000, 7000};
	struct tsend t[3];
	struct ep cl, sv;
	size_t off = 0;

	pair_up(&cl, &sv);
	/* The server's completions wait in its CQ: only DISCONNECTED wakes it,
	 * so its handler must take them before closing. */
	fake_cq_mute(FAKE_PASSIVE, true);
	for (int i = 0; i < 3; i++) {
		send_piece(cl.c, &t[i], stream[0], &off, sizes[i], 1);
	}
	pump_until(all_called(t, 3) && !fake_wire_run());
	assert_int_equal(sv.rx_len, 0);
	ops->close(cl.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	assert_int_equal(sv.rx_len, off);
	assert_memory_equal(sv.rx, stream[0], off);
	assert_true(sv.last_recv_event < sv.close_event);
	free_pair(&cl, &sv);
}

/* The peer sends and leaves before our owner starts the connection: the
 * owner gets the bytes, then the end, like TCP's EOF. */
static void test_remote_disconnect_before_start(void **state)
{
	struct xport_conn *c, *s;
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	c = connect_one(&s);
	ep_start(&cl, c);
	send_piece(c, &t, stream[0], &off, 5000, 1);
	pump_until(t.calls && !fake_wire_run());
	ops->close(c, 0);
	pump_until(cl.closes && !fake_cm_pending(FAKE_PASSIVE)); /* seen, unstarted */
	ep_start(&sv, s);
	pump_until(sv.closes);
	assert_closed(&sv, 0);
	assert_int_equal(sv.rx_len, 5000);
	assert_memory_equal(sv.rx, stream[0], 5000);
	assert_true(sv.last_recv_event < sv.close_event);
	free_pair(&cl, &sv);
}

/* --- rdma_cm reports the connection broken --- */

/* Device removal, connect error...: closed with -ECONNRESET. */
static void test_cm_error_event(void **state)
{
	struct ep cl, sv;

	pair_up(&cl, &sv);
	fake_cm_event(FAKE_ACTIVE, RDMA_CM_EVENT_DEVICE_REMOVAL);
	wait_closed(&cl, -ECONNRESET, &sv, 0);
	free_pair(&cl, &sv);
}

/* The same before the owner starts the connection it holds: the connection
 * must stay until the owner starts it (then it closes) or closes it (a
 * regression test: xr_cm_event() used to close, and so free, an RC_IDLE
 * connection on these events, under its owner). */
static void test_cm_error_event_before_start(void **state)
{
	struct xport_conn *c, *s;
	struct ep cl, sv;

	c = connect_one(&s);
	ep_start(&cl, c);
	fake_cm_event(FAKE_PASSIVE, RDMA_CM_EVENT_DEVICE_REMOVAL);
	pump_ms(10);
	/* the owner still holds s: nothing of it may be gone */
	assert_int_equal(fake_live(FAKE_QP), 2);
	ep_start(&sv, s);
	wait_closed(&cl, 0, &sv, -ECONNRESET);
	free_pair(&cl, &sv);
}

/* --- a post fails --- */

static void test_post_send_fails(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	pair_up(&cl, &sv);
	fake_fail_post(FAKE_ACTIVE, true, ENOMEM);
	send_piece(cl.c, &t, stream[0], &off, 100, 1);
	wait_closed(&cl, -ENOMEM, &sv, 0);
	assert_int_equal(t.calls, 1);
	assert_true(t.event < cl.close_event);
	free_pair(&cl, &sv);
}

static void test_post_recv_fails(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	pair_up(&cl, &sv);
	fake_fail_post(FAKE_PASSIVE, false, EINVAL); /* its repost after the message */
	send_piece(cl.c, &t, stream[0], &off, 100, 1);
	wait_closed(&cl, 0, &sv, -EINVAL);
	free_pair(&cl, &sv);
}

/* Posting the receives fails while a connection is set up: on the
 * connecting side connect() fails with the error, on the accepting side
 * the request is rejected. */
static void test_post_fails_at_setup(void **state)
{
	struct xport_conn *c = NULL;
	struct fake_stats fs;

	listen_start();
	fake_fail_post(FAKE_ACTIVE, false, ENOMEM);
	assert_int_equal(ops->connect(r, LADDR, &c), -ENOMEM);
	assert_null(c);

	fake_fail_post(FAKE_PASSIVE, false, ENOMEM);
	assert_int_equal(ops->connect(r, LADDR, &c), -ECONNREFUSED);
	assert_null(c);
	fake_get_stats(&fs);
	assert_int_equal(fs.rejects, 1);
	pump_until(fake_live(FAKE_QP) == 0); /* the accept thread frees it */
	assert_int_equal(naccepted, 0);
	assert_released();
}

/* --- connect errors --- */

static void test_connect_errors(void **state)
{
	static const struct {
		int on_addr, on_route, on_connect;
		int err;
		bool set_up; /* got as far as creating the QP */
	} cases[] = {
		{FAKE_NORMAL, FAKE_NORMAL, FAKE_NORMAL, -ECONNREFUSED, true}, /* no listener */
		{FAKE_NORMAL, FAKE_NORMAL, RDMA_CM_EVENT_REJECTED, -ECONNREFUSED, true},
		{RDMA_CM_EVENT_ADDR_ERROR, FAKE_NORMAL, FAKE_NORMAL, -EADDRNOTAVAIL, false},
		{FAKE_NORMAL, RDMA_CM_EVENT_ROUTE_ERROR, FAKE_NORMAL, -EHOSTUNREACH, false},
		{FAKE_NORMAL, FAKE_NORMAL, RDMA_CM_EVENT_UNREACHABLE, -EHOSTUNREACH, true},
		{FAKE_NORMAL, FAKE_NORMAL, RDMA_CM_EVENT_CONNECT_ERROR, -ECONNRESET, true},
		{FAKE_NORMAL, FAKE_NORMAL, FAKE_SILENT, -ETIMEDOUT, true},
	};
	struct xport_conn *c = NULL;
	unsigned int qps = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_script(cases[i].on_addr, cases[i].on_route, cases[i].on_connect);
		assert_int_equal(ops->connect(r, LADDR, &c), cases[i].err);
		assert_null(c);
		qps += cases[i].set_up;
		assert_int_equal(fake_created(FAKE_QP), qps);
		assert_nothing_live();
	}
	fake_script(FAKE_NORMAL, FAKE_NORMAL, FAKE_NORMAL);
	assert_int_equal(ops->connect(r, "192.0.2.1", &c), -EINVAL);
	assert_int_equal(ops->connect(r, "[::1]:x", &c), -EINVAL);
	assert_null(c);

	/* no device: connect and listen say so, and leave nothing behind */
	fake_set_devices(0);
	assert_int_equal(ops->connect(r, LADDR, &c), -ENODEV);
	assert_null(c);
	assert_int_equal(ops->listen(r, LADDR, &lis), -ENODEV);
	assert_null(lis);
	assert_int_equal(STAT(conns), 0);
	assert_released();
}

/* --- the accepting side --- */

static void cm_params(uint8_t *pd, uint16_t version, uint16_t slots, uint32_t slot_size)
{
	struct xrdma_cm_params p = {.version = version, .slots = slots, .slot_size = slot_size};

	xrdma_cm_encode(&p, pd);
}

static void test_accept(void **state)
{
	uint8_t bad[6][XRDMA_CM_SIZE], good[XRDMA_CM_SIZE];
	static const uint8_t bad_len[6] = {
		XRDMA_CM_SIZE, XRDMA_CM_SIZE, XRDMA_CM_SIZE, XRDMA_CM_SIZE, 4, 0};
	struct xport_listener *l2 = NULL;
	struct fake_stats fs;
	struct ep cl, sv;

	listen_start();
	assert_int_equal(ops->listen(r, LADDR, &l2), -EADDRINUSE);
	assert_null(l2);
	cm_params(bad[0], XRDMA_VERSION, 32, 8192);
	bad[0][0] ^= 0xff; /* magic */
	cm_params(bad[1], XRDMA_VERSION + 1, 32, 8192);
	cm_params(bad[2], XRDMA_VERSION, 1, 8192);
	cm_params(bad[3], XRDMA_VERSION, 32, 100);
	cm_params(bad[4], XRDMA_VERSION, 32, 8192);
	cm_params(bad[5], XRDMA_VERSION, 32, 8192);
	for (int i = 0; i < 6; i++) {
		fake_connect_request(bad[i], bad_len[i]);
	}
	pump_until((fake_get_stats(&fs), fs.rejects == 6) && fake_live(FAKE_ID) == 1);
	pump_ms(10);
	assert_int_equal(naccepted, 0);
	assert_int_equal(fake_created(FAKE_QP), 0);
	assert_int_equal(fake_violations(), 0);

	/* a good one, handed to the accept callback on the reactor thread */
	pair_up(&cl, &sv);
	assert_int_equal(naccepted, 1);

	/* a good request from no one: accepted all the same; the owner
	 * closes it unstarted, which frees it without on_close */
	cm_params(good, XRDMA_VERSION, 16, 4096);
	fake_connect_request(good, sizeof(good));
	pump_until(naccepted == 2);
	assert_false(accept_off_thread);
	assert_memory_equal(ops->peer(accepted[1]), "192.0.2.101:", 12);
	ops->close(accepted[1], 0);
	pump_until(fake_live(FAKE_QP) == 2);
	assert_int_equal(STAT(conns), 3);

	ops->close(sv.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* --- the listener closes while connections are on their way --- */

/* Wait (without running the reactor) for the accept thread. */
#define wait_thread(cond)                                                                          \
	do {                                                                                       \
		uint64_t deadline_ = reactor_now_ns() + PUMP_NS;                                   \
		while (!(cond)) {                                                                  \
			if (reactor_now_ns() > deadline_) {                                        \
				fail_msg("timed out waiting for %s", #cond);                       \
			}                                                                          \
			usleep(100);                                                               \
		}                                                                                  \
	} while (0)

static void test_listen_close_in_flight(void **state)
{
	struct xport_conn *c = NULL;
	struct ep cl;

	/* Established and handed to the reactor, not yet received: closed
	 * there (no accept callback), the client sees the disconnect. */
	listen_start();
	assert_int_equal(ops->connect(r, LADDR, &c), 0);
	ep_start(&cl, c);
	wait_thread(fake_passive_migrated());
	ops->listen_close(lis);
	lis = NULL;
	pump_until(cl.closes);
	assert_closed(&cl, 0);
	assert_int_equal(naccepted, 0);
	ep_free(&cl);
	assert_released();

	/* Accepted, not established: the accept thread frees it as it stops. */
	fake_hold_established(true);
	listen_start();
	assert_int_equal(ops->connect(r, LADDR, &c), 0);
	ep_start(&cl, c);
	ops->listen_close(lis);
	lis = NULL;
	pump_until(cl.closes);
	assert_closed(&cl, 0);
	assert_int_equal(naccepted, 0);
	ep_free(&cl);
	assert_released();
}

/* The owner closes the listener from its accept callback, and keeps the
 * connection it was given. */
static void test_listen_close_in_accept(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	listen_start();
	listen_close_in_accept = true;
	pair_up(&cl, &sv);
	assert_null(lis);
	send_piece(cl.c, &t, stream[0], &off, 70000, 1);
	pump_until(sv.rx_len == off);
	assert_memory_equal(sv.rx, stream[0], off);
	ops->close(cl.c, 0);
	wait_closed(&cl, 0, &sv, 0);
	free_pair(&cl, &sv);
}

/* The client leaves while its connection is accepted and not yet
 * established: the accept thread drops it, the owner never hears of it. */
static void test_pending_peer_leaves(void **state)
{
	struct xport_conn *c = NULL;
	struct ep cl;

	fake_hold_established(true);
	listen_start();
	assert_int_equal(ops->connect(r, LADDR, &c), 0);
	ep_start(&cl, c);
	ops->close(c, 0);
	pump_until(cl.closes && fake_live(FAKE_QP) == 0);
	assert_closed(&cl, 0);
	pump_ms(10);
	assert_int_equal(naccepted, 0);
	ep_free(&cl);
	assert_released();
}

/* --- the owner closes with sends queued --- */

static void test_close_with_queued_sends(void **state)
{
	static struct tsend tc[N_QUEUED], ts[N_QUEUED];
	struct ep cl, sv;
	struct tsend late = {.s = {.iov = {{"x", 1}}, .iovcnt = 1, .cb = tsend_cb}};
	int copied_c, copied_s;

	pair_up(&cl, &sv);
	fake_wire_hold(true);
	copied_c = queue_held(&cl, tc, stream[0]);
	copied_s = queue_held(&sv, ts, stream[1]);
	ops->close(cl.c, 0);
	ops->close(cl.c, -EIO); /* idempotent: the first stands */
	ops->close(sv.c, -EBADMSG);
	assert_int_equal(ops->send(cl.c, &late.s), -EPIPE);
	assert_int_equal(cl.closes, 0); /* on_close is deferred */
	wait_closed(&cl, 0, &sv, -EBADMSG);
	assert_cancelled(tc, copied_c, N_QUEUED, -ECANCELED, &cl);
	assert_cancelled(ts, copied_s, N_QUEUED, -EBADMSG, &sv);
	assert_int_equal(late.calls, 0);
	free_pair(&cl, &sv);
}

/* The owner closes once its last message is out (proto/conn.c's
 * conn_reject() answers with an error reply, then closes from the reply's
 * callback "so the peer learns why"). The peer must get those bytes, then
 * the end, as over TCP (shutdown(2) sends what was written, then FIN).
 * A regression test: the send callback used to fire once the bytes were
 * copied into registered memory, and xr_close() moves the QP to error at
 * once, which flushed the SEND just posted (and freed a READ_REQ's buffer
 * before the peer read it): the peer saw a clean close and nothing of the
 * message. Now the callback waits until the peer has the bytes. */
static void test_close_after_send_delivers(void **state)
{
	static const size_t sizes[] = {100, 65536};
	struct ep cl, sv;
	struct tsend t;

	for (int i = 0; i < 2; i++) {
		pair_up(&cl, &sv);
		tsend_init(&t, stream[0], sizes[i]);
		t.close_conn = cl.c;
		t.close_err = -EPROTO;
		assert_int_equal(ops->send(cl.c, &t.s), 0);
		wait_closed(&cl, -EPROTO, &sv, 0);
		assert_int_equal(sv.rx_len, sizes[i]);
		assert_memory_equal(sv.rx, stream[0], sizes[i]);
		free_pair(&cl, &sv);
	}
}

/* --- the owner refuses what it received --- */

static void test_recv_error_closes(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	pair_up(&cl, &sv);
	sv.recv_err = -EPROTO;
	send_piece(cl.c, &t, stream[0], &off, 100, 1);
	wait_closed(&cl, 0, &sv, -EPROTO);
	free_pair(&cl, &sv);
}

static void test_close_in_recv(void **state)
{
	struct ep cl, sv;
	struct tsend t;
	size_t off = 0;

	pair_up(&cl, &sv);
	sv.close_in_recv = true;
	send_piece(cl.c, &t, stream[0], &off, 100, 1);
	wait_closed(&cl, 0, &sv, 0);
	assert_int_equal(sv.recvs, 1);
	assert_int_equal(sv.rx_len, 100);
	free_pair(&cl, &sv);
}

/* --- fixtures --- */

static int setup(void **state)
{
	fake_reset(++case_seed);
	naccepted = 0;
	accept_off_thread = false;
	listen_close_in_accept = false;
	events = 0;
	lis = NULL;
	if (reactor_create(64, &r)) {
		return -1;
	}
	fds_base = count_fds();
	memcpy(&st0, ops->stats, sizeof(st0));
	return 0;
}

static int teardown(void **state)
{
	if (lis) { /* a failed case */
		ops->listen_close(lis);
		lis = NULL;
	}
	reactor_destroy(r);
	r = NULL;
	fake_reset(0);
	xport_mem_unregister(stream[0]); /* a failed zero-copy case */
	xport_mem_unregister(stream[1]);
	return 0;
}

static uint8_t pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed * 0xbf58476d1ce4e5b9ull;

	return (uint8_t)(x >> 29 ^ x >> 43);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stream_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credits_slow_receiver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_copy_close_while_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_copy_reg_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_holds_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qp_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_not_ours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cq_overrun, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_disconnect_after_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_disconnect_before_start, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cm_error_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cm_error_event_before_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_send_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_recv_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_fails_at_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_close_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_close_in_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_peer_leaves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_with_queued_sends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_after_send_delivers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recv_error_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_in_recv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	};
	int ret;

	main_thread = pthread_self();
	/* KEEL_TEST_SEED varies the order the fake wire runs queue pairs in */
	if (getenv("KEEL_TEST_SEED")) {
		case_seed = strtoull(getenv("KEEL_TEST_SEED"), NULL, 0) * 1000;
	}
	for (int s = 0; s < 2; s++) {
		stream[s] = malloc(STREAM);
		assert_non_null(stream[s]);
		for (uint64_t i = 0; i < STREAM; i++) {
			stream[s][i] = pattern((uint64_t)s + 1, i);
		}
	}
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	free(stream[0]);
	free(stream[1]);
	return ret;
}
