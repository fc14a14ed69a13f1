/* SPDX-License-Identifier: Apache-2.0 */
/* The TCP transport over loopback, client and server in one reactor. */
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

#include <cmocka.h>

#include "common/xport.h"

#define BIG_SIZE     (8u << 20)
#define MAX_ACCEPTED 8

static const struct xport_ops *ops = &xport_tcp_ops;
static struct reactor *r;
static struct xport_listener *lis;
static struct xport_conn *accepted[MAX_ACCEPTED];
static int naccepted;
static int events; /* global order of callbacks */

/* --- the event loop, with a deadline so a bug fails instead of hanging --- */

static bool deadline_hit;

static void deadline_fn(struct reactor_timer *t)
{
	deadline_hit = true;
}

static void pump_until(bool (*cond)(void *arg), void *arg)
{
	struct reactor_timer t = {0};

	deadline_hit = false;
	assert_int_equal(reactor_timer_start(r, &t, 10000000000ull, deadline_fn), 0);
	while (!cond(arg) && !deadline_hit) {
		assert_true(reactor_poll(r, true) >= 0);
	}
	assert_false(deadline_hit);
	reactor_timer_cancel(r, &t);
	while (!reactor_timer_idle(&t)) {
		assert_true(reactor_poll(r, true) >= 0);
	}
}

static bool timer_idle(void *arg)
{
	return reactor_timer_idle(arg);
}

/* Run the loop for @ms: lets stray completions (or bugs) show up. */
static void pump_ms(unsigned int ms)
{
	struct reactor_timer t = {0};

	assert_int_equal(reactor_timer_start(r, &t, ms * 1000000ull, deadline_fn), 0);
	while (!timer_idle(&t)) {
		assert_true(reactor_poll(r, true) >= 0);
	}
}

/* --- endpoints: one per started connection --- */

enum ep_mode {
	EP_COLLECT, /* keep everything received */
	EP_ECHO,    /* send back what arrives */
	EP_PROTO,   /* echo, but "X" is a protocol error */
	EP_VERIFY,  /* check the big pattern, consuming 1000-byte chunks only */
	EP_SEQ,	    /* 8-byte records carrying 0, 1, 2, ... */
	EP_STALL,   /* never consume anything */
};

struct endpoint {
	struct xport_conn *c;
	enum ep_mode mode;
	int closes;
	int close_err;
	int close_event;
	uint8_t rx[4096];
	size_t rx_len;
	uint64_t verified;
	bool bad_data;
	uint32_t next_seq;
	uint8_t echo_buf[4096];
	struct xport_send echo_send;
	bool echo_busy;
};

static uint8_t *big;

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13 ^ i >> 20);
}

static void echo_sent(struct xport_send *s, int res)
{
	struct endpoint *ep = container_of(s, struct endpoint, echo_send);

	ep->echo_busy = false;
}

static ssize_t ep_echo(struct endpoint *ep, const uint8_t *data, size_t len)
{
	if (ep->echo_busy) {
		return 0;
	}
	if (len > sizeof(ep->echo_buf)) {
		len = sizeof(ep->echo_buf);
	}
	memcpy(ep->echo_buf, data, len);
	ep->echo_send.iov[0].iov_base = ep->echo_buf;
	ep->echo_send.iov[0].iov_len = len;
	ep->echo_send.iovcnt = 1;
	ep->echo_send.cb = echo_sent;
	assert_int_equal(ops->send(ep->c, &ep->echo_send), 0);
	ep->echo_busy = true;
	return (ssize_t)len;
}

static ssize_t ep_on_recv(struct xport_conn *c, const uint8_t *data, size_t len)
{
	struct endpoint *ep = c->arg;
	size_t n;

	assert_ptr_equal(ep->c, c);
	assert_true(len > 0);
	switch (ep->mode) {
	case EP_COLLECT:
		n = len < sizeof(ep->rx) - ep->rx_len ? len : sizeof(ep->rx) - ep->rx_len;
		memcpy(ep->rx + ep->rx_len, data, n);
		ep->rx_len += n;
		return (ssize_t)len;
	case EP_ECHO:
		return ep_echo(ep, data, len);
	case EP_PROTO:
		if (data[0] == 'X') {
			return -EPROTO;
		}
		return ep_echo(ep, data, len);
	case EP_VERIFY:
		/* Leaving a tail behind exercises keeping and compacting it. */
		n = len - len % 1000;
		if (ep->verified + len == BIG_SIZE) {
			n = len;
		}
		for (size_t i = 0; i < n; i++) {
			if (data[i] != pattern(ep->verified + i)) {
				ep->bad_data = true;
			}
		}
		ep->verified += n;
		return (ssize_t)n;
	case EP_SEQ:
		n = len - len % 8;
		for (size_t i = 0; i < n; i += 8) {
			uint32_t seq;

			memcpy(&seq, data + i, sizeof(seq));
			if (seq != ep->next_seq) {
				ep->bad_data = true;
			}
			ep->next_seq++;
		}
		return (ssize_t)n;
	case EP_STALL:
		return 0;
	}
	return -EINVAL;
}

static void ep_on_close(struct xport_conn *c, int err)
{
	struct endpoint *ep = c->arg;

	ep->closes++;
	ep->close_err = err;
	ep->close_event = events++;
}

static const struct xport_conn_cbs ep_cbs = {
	.on_recv = ep_on_recv,
	.on_close = ep_on_close,
};

static void ep_start(struct endpoint *ep, struct xport_conn *c, enum ep_mode mode, size_t rx)
{
	memset(ep, 0, sizeof(*ep));
	ep->c = c;
	ep->mode = mode;
	assert_int_equal(ops->start(c, &ep_cbs, rx, ep), 0);
}

static bool ep_closed(void *arg)
{
	return ((struct endpoint *)arg)->closes > 0;
}

static bool ep_got(void *arg)
{
	struct endpoint *ep = arg;

	return ep->rx_len > 0 && ep->rx[ep->rx_len - 1] == '\n';
}

/* --- sends with a record of their callbacks --- */

struct tsend {
	struct xport_send s;
	int calls;
	int res;
	int event;
};

static void tsend_done(struct xport_send *s, int res)
{
	struct tsend *t = container_of(s, struct tsend, s);

	t->calls++;
	t->res = res;
	t->event = events++;
}

static int sends_pending;

static bool all_sent(void *arg)
{
	struct tsend *t = arg;

	for (int i = 0; i < sends_pending; i++) {
		if (!t[i].calls) {
			return false;
		}
	}
	return true;
}

/* --- server side --- */

static void on_accept(struct xport_listener *l, struct xport_conn *c, void *arg)
{
	assert_ptr_equal(l, lis);
	assert_ptr_equal(arg, &naccepted);
	assert_true(naccepted < MAX_ACCEPTED);
	accepted[naccepted++] = c;
}

static bool accepted_n(void *arg)
{
	return naccepted >= *(int *)arg;
}

static int setup(void **state)
{
	int ret = reactor_create(64, &r);

	if (ret) {
		return ret;
	}
	naccepted = 0;
	events = 0;
	ret = ops->listen(r, "127.0.0.1:0", &lis);
	if (ret) {
		return ret;
	}
	return ops->accept_start(lis, on_accept, &naccepted);
}

static int teardown(void **state)
{
	ops->listen_close(lis);
	/* The accept's cancellation completes asynchronously. */
	pump_ms(20);
	reactor_destroy(r);
	return 0;
}

/* Connect a client and wait for the server side to be accepted. */
static struct xport_conn *connect_one(struct xport_conn **server)
{
	struct xport_conn *c;
	int want = naccepted + 1;

	assert_int_equal(ops->connect(r, ops->listen_addr(lis), &c), 0);
	pump_until(accepted_n, &want);
	*server = accepted[want - 1];
	return c;
}

static void test_echo_and_peer_close(void **state)
{
	static struct endpoint cl, sv;
	static struct tsend t;
	struct xport_conn *c, *s;
	char want[64];

	c = connect_one(&s);
	snprintf(want, sizeof(want), "%s", ops->listen_addr(lis));
	assert_string_equal(ops->peer(c), want);
	assert_true(!strncmp(ops->peer(s), "127.0.0.1:", 10));
	assert_string_not_equal(ops->peer(s), want);

	ep_start(&sv, s, EP_ECHO, 4096);
	ep_start(&cl, c, EP_COLLECT, 4096);
	assert_int_equal(ops->start(c, &ep_cbs, 4096, &cl), -EALREADY);
	t.s.iov[0].iov_base = "hello, ";
	t.s.iov[0].iov_len = 7;
	t.s.iov[1].iov_base = "world\n";
	t.s.iov[1].iov_len = 6;
	t.s.iovcnt = 2;
	t.s.cb = tsend_done;
	assert_int_equal(ops->send(c, &t.s), 0);
	pump_until(ep_got, &cl);
	assert_int_equal(cl.rx_len, 13);
	assert_memory_equal(cl.rx, "hello, world\n", 13);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, 0);
	assert_int_equal(c->bytes_out, 13);
	assert_int_equal(c->bytes_in, 13);
	assert_int_equal(s->bytes_in, 13);

	/* Client closes: its on_close is deferred, the server sees EOF. */
	ops->close(c, 0);
	ops->close(c, -EIO); /* idempotent: the first error stands */
	assert_int_equal(cl.closes, 0);
	pump_until(ep_closed, &sv);
	pump_until(ep_closed, &cl);
	pump_ms(20);
	assert_int_equal(cl.closes, 1);
	assert_int_equal(cl.close_err, 0);
	assert_int_equal(sv.closes, 1);
	assert_int_equal(sv.close_err, 0);
}

static void fill_big(void)
{
	if (!big) {
		big = malloc(BIG_SIZE);
		assert_non_null(big);
		for (uint64_t i = 0; i < BIG_SIZE; i++) {
			big[i] = pattern(i);
		}
	}
}

/* Queue @n sends covering @size bytes of big, each in three uneven iovecs. */
static void queue_big(struct xport_conn *c, struct tsend *t, int n, size_t size)
{
	size_t per = size / (size_t)n, off = 0;

	memset(t, 0, sizeof(*t) * (size_t)n);
	for (int i = 0; i < n; i++) {
		size_t len = i == n - 1 ? size - off : per;
		size_t a = len / 7, b = len / 3;

		t[i].s.iov[0] = (struct iovec){big + off, a};
		t[i].s.iov[1] = (struct iovec){big + off + a, b};
		t[i].s.iov[2] = (struct iovec){big + off + a + b, len - a - b};
		t[i].s.iovcnt = 3;
		t[i].s.cb = tsend_done;
		assert_int_equal(ops->send(c, &t[i].s), 0);
		off += len;
	}
	sends_pending = n;
}

/* Pump until the client's sendmsg stops making progress (the peer is not reading). */
static void pump_until_stalled(struct xport_conn *c)
{
	uint64_t last;

	do {
		last = c->bytes_out;
		pump_ms(50);
	} while (c->bytes_out != last);
}

static bool verified_all(void *arg)
{
	return ((struct endpoint *)arg)->verified == BIG_SIZE;
}

static void test_big_transfer_partial_sends(void **state)
{
	enum { N = 61 }; /* odd sizes: send boundaries don't line up with buffer sizes */
	static struct tsend t[N];
	static struct endpoint cl, sv;
	struct xport_conn *c, *s;
	size_t per = BIG_SIZE / N;
	bool on_boundary = false;

	fill_big();
	c = connect_one(&s);
	ep_start(&cl, c, EP_COLLECT, 4096);
	queue_big(c, t, N, BIG_SIZE);
	/* The server is not reading yet: the socket buffers fill and a
	 * sendmsg comes back short. */
	pump_until_stalled(c);
	assert_true(c->bytes_out > 0);
	assert_true(c->bytes_out < BIG_SIZE);
	for (int i = 1; i < N; i++) {
		on_boundary |= c->bytes_out == (uint64_t)per * (uint64_t)i;
	}
	assert_false(on_boundary); /* a send was cut short and must be resumed */
	assert_int_equal(t[N - 1].calls, 0);

	ep_start(&sv, s, EP_VERIFY, 64 * 1024 + 17);
	pump_until(verified_all, &sv);
	pump_until(all_sent, t);
	assert_false(sv.bad_data);
	for (int i = 0; i < N; i++) {
		assert_int_equal(t[i].calls, 1);
		assert_int_equal(t[i].res, 0);
		if (i) {
			assert_true(t[i].event > t[i - 1].event);
		}
	}
	assert_int_equal(c->bytes_out, BIG_SIZE);
	assert_int_equal(s->bytes_in, BIG_SIZE);

	ops->close(s, 0);
	pump_until(ep_closed, &cl);
	pump_until(ep_closed, &sv);
	assert_int_equal(sv.close_err, 0);
	assert_int_equal(cl.closes, 1);
}

static bool seq_done(void *arg)
{
	return ((struct endpoint *)arg)->next_seq >= 3000;
}

static void test_many_sends_in_order(void **state)
{
	enum { N = 3000 };
	static uint32_t recs[N][2];
	static struct tsend t[N];
	static struct endpoint cl, sv;
	struct xport_conn *c, *s;

	c = connect_one(&s);
	ep_start(&cl, c, EP_COLLECT, 4096);
	ep_start(&sv, s, EP_SEQ, 1000);
	memset(t, 0, sizeof(t));
	for (uint32_t i = 0; i < N; i++) {
		recs[i][0] = i;
		recs[i][1] = ~i;
		t[i].s.iov[0] = (struct iovec){&recs[i][0], 4};
		t[i].s.iov[1] = (struct iovec){&recs[i][1], 4};
		t[i].s.iovcnt = 2;
		t[i].s.cb = tsend_done;
		assert_int_equal(ops->send(c, &t[i].s), 0);
	}
	sends_pending = N;
	pump_until(all_sent, t);
	for (int i = 0; i < N; i++) {
		assert_int_equal(t[i].calls, 1);
		assert_int_equal(t[i].res, 0);
		assert_int_equal(t[i].event, i);
	}
	pump_until(seq_done, &sv);
	assert_false(sv.bad_data);
	assert_int_equal(sv.next_seq, N);

	ops->close(c, 0);
	pump_until(ep_closed, &sv);
	pump_until(ep_closed, &cl);
}

static void test_close_with_pending_sends(void **state)
{
	enum { N = 16 };
	static struct tsend t[N];
	static struct endpoint cl;
	struct tsend extra = {0};
	struct xport_conn *c, *s;
	int cancelled = 0;

	fill_big();
	c = connect_one(&s);
	ep_start(&cl, c, EP_COLLECT, 4096);
	queue_big(c, t, N, BIG_SIZE);
	pump_until_stalled(c);
	assert_int_equal(t[N - 1].calls, 0);

	ops->close(c, 0);
	/* Nothing fires inline, and the conn takes no more sends. */
	assert_int_equal(cl.closes, 0);
	extra.s.iov[0] = (struct iovec){big, 1};
	extra.s.iovcnt = 1;
	extra.s.cb = tsend_done;
	assert_int_equal(ops->send(c, &extra.s), -EPIPE);
	pump_until(ep_closed, &cl);
	pump_ms(20);
	assert_int_equal(cl.closes, 1);
	assert_int_equal(cl.close_err, 0);
	assert_int_equal(extra.calls, 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(t[i].calls, 1);
		assert_true(t[i].event < cl.close_event);
		if (t[i].res) {
			assert_int_equal(t[i].res, -ECANCELED);
			cancelled++;
		} else {
			assert_int_equal(cancelled, 0); /* completed sends are a prefix */
		}
	}
	assert_true(cancelled > 0);
	ops->close(s, 0); /* never started: freed without on_close */
	pump_ms(20);
}

static void test_proto_error_closes_one(void **state)
{
	static struct endpoint ca, cb, sa, sb;
	static struct tsend ta, tb;
	struct xport_conn *a, *b, *as, *bs;

	a = connect_one(&as);
	b = connect_one(&bs);
	ep_start(&sa, as, EP_PROTO, 4096);
	ep_start(&sb, bs, EP_PROTO, 4096);
	ep_start(&ca, a, EP_COLLECT, 4096);
	ep_start(&cb, b, EP_COLLECT, 4096);

	ta.s.iov[0] = (struct iovec){"Xbad\n", 5};
	ta.s.iovcnt = 1;
	ta.s.cb = tsend_done;
	assert_int_equal(ops->send(a, &ta.s), 0);
	pump_until(ep_closed, &sa);
	assert_int_equal(sa.close_err, -EPROTO);
	pump_until(ep_closed, &ca);
	assert_true(ca.close_err == 0 || ca.close_err == -ECONNRESET);
	assert_int_equal(ca.rx_len, 0);

	tb.s.iov[0] = (struct iovec){"ping\n", 5};
	tb.s.iovcnt = 1;
	tb.s.cb = tsend_done;
	assert_int_equal(ops->send(b, &tb.s), 0);
	pump_until(ep_got, &cb);
	assert_memory_equal(cb.rx, "ping\n", 5);
	assert_int_equal(sb.closes, 0);
	assert_int_equal(cb.closes, 0);
	assert_int_equal(sa.closes, 1);

	ops->close(b, 0);
	pump_until(ep_closed, &sb);
	pump_until(ep_closed, &cb);
}

static void test_message_too_big(void **state)
{
	static struct endpoint cl, sv;
	static struct tsend t;
	static uint8_t msg[32];
	struct xport_conn *c, *s;

	c = connect_one(&s);
	ep_start(&sv, s, EP_STALL, 16);
	ep_start(&cl, c, EP_COLLECT, 4096);
	t.s.iov[0] = (struct iovec){msg, sizeof(msg)};
	t.s.iovcnt = 1;
	t.s.cb = tsend_done;
	assert_int_equal(ops->send(c, &t.s), 0);
	pump_until(ep_closed, &sv);
	assert_int_equal(sv.close_err, -EMSGSIZE);
	pump_until(ep_closed, &cl);
}

static void test_bad_arguments(void **state)
{
	struct xport_listener *l2;
	struct xport_conn *c, *s;
	struct tsend t = {0};
	char addr[64];

	assert_int_equal(ops->listen(r, "no-port", &l2), -EINVAL);
	assert_int_equal(ops->listen(r, "127.0.0.1:http", &l2), -EINVAL);
	assert_int_equal(ops->connect(r, "[::1:5", &c), -EINVAL);
	assert_int_equal(ops->accept_start(lis, on_accept, &naccepted), -EBUSY);

	/* A port nobody listens on any more refuses the connection. */
	assert_int_equal(ops->listen(r, "127.0.0.1:0", &l2), 0);
	snprintf(addr, sizeof(addr), "%s", ops->listen_addr(l2));
	ops->listen_close(l2);
	assert_int_equal(ops->connect(r, addr, &c), -ECONNREFUSED);

	c = connect_one(&s);
	t.s.cb = tsend_done;
	t.s.iovcnt = 0;
	assert_int_equal(ops->send(c, &t.s), -EINVAL);
	t.s.iovcnt = XPORT_MAX_IOV + 1;
	assert_int_equal(ops->send(c, &t.s), -EINVAL);
	t.s.iovcnt = 1;
	t.s.iov[0] = (struct iovec){addr, 0};
	assert_int_equal(ops->send(c, &t.s), -EINVAL);
	assert_int_equal(ops->start(c, &ep_cbs, 0, NULL), -EINVAL);
	ops->close(c, 0);
	ops->close(s, 0);
	pump_ms(20);
	assert_int_equal(t.calls, 0);
}

static struct xport_listener *self_closing;

static void on_accept_close_listener(struct xport_listener *l, struct xport_conn *c, void *arg)
{
	assert_ptr_equal(l, self_closing);
	ops->listen_close(l);
	on_accept(lis, c, arg);
}

static void test_listen_close_in_accept(void **state)
{
	struct xport_conn *c, *c2, *s;
	char addr[64];
	int want = naccepted + 1;

	assert_int_equal(ops->listen(r, "127.0.0.1:0", &self_closing), 0);
	snprintf(addr, sizeof(addr), "%s", ops->listen_addr(self_closing));
	assert_int_equal(ops->accept_start(self_closing, on_accept_close_listener, &naccepted), 0);
	assert_int_equal(ops->connect(r, addr, &c), 0);
	pump_until(accepted_n, &want);
	s = accepted[want - 1];
	pump_ms(20);
	assert_int_equal(naccepted, want);
	assert_int_equal(ops->connect(r, addr, &c2), -ECONNREFUSED);
	ops->close(c, 0);
	ops->close(s, 0);
	pump_ms(20);
}

static void test_ipv6(void **state)
{
	static struct endpoint cl, sv;
	static struct tsend t;
	struct xport_listener *l6;
	struct xport_conn *c, *s;
	int ret;

	ret = ops->listen(r, "[::1]:0", &l6);
	if (ret == -EADDRNOTAVAIL || ret == -EAFNOSUPPORT) {
		skip();
	}
	assert_int_equal(ret, 0);
	assert_true(!strncmp(ops->listen_addr(l6), "[::1]:", 6));
	ops->listen_close(lis);
	lis = l6;
	assert_int_equal(ops->accept_start(lis, on_accept, &naccepted), 0);
	c = connect_one(&s);
	assert_true(!strncmp(ops->peer(s), "[::1]:", 6));
	ep_start(&sv, s, EP_ECHO, 4096);
	ep_start(&cl, c, EP_COLLECT, 4096);
	t.s.iov[0] = (struct iovec){"six\n", 4};
	t.s.iovcnt = 1;
	t.s.cb = tsend_done;
	assert_int_equal(ops->send(c, &t.s), 0);
	pump_until(ep_got, &cl);
	assert_memory_equal(cl.rx, "six\n", 4);
	ops->close(s, -ECONNABORTED);
	pump_until(ep_closed, &sv);
	assert_int_equal(sv.close_err, -ECONNABORTED);
	pump_until(ep_closed, &cl);
}

/* The zero-copy registry transports consult (xport_mem_*). */
static void test_mem_registry(void **state)
{
	static uint8_t mem[(XPORT_MEM_MAX + 4) * 64];
	struct xport_mem_region mr, mr2;
	uint64_t gen = xport_mem_gen();
	int i;

	assert_int_equal(xport_mem_register(mem, 0), -EINVAL);
	assert_int_equal(xport_mem_register(NULL, 64), -EINVAL);
	assert_int_equal(xport_mem_register((void *)(UINTPTR_MAX - 8), 64), -EINVAL);
	assert_int_equal(xport_mem_gen(), gen);
	assert_int_equal(xport_mem_register(mem + 64, 128), 0);
	assert_true(xport_mem_gen() != gen);
	/* overlaps are refused, neighbours are not */
	assert_int_equal(xport_mem_register(mem + 128, 128), -EINVAL);
	assert_int_equal(xport_mem_register(mem, 65), -EINVAL);
	assert_int_equal(xport_mem_register(mem, 64), 0);
	/* find: inside one region only */
	assert_int_equal(xport_mem_find(mem + 64, 128, &mr), 0);
	assert_int_equal(mr.addr, (uintptr_t)(mem + 64));
	assert_int_equal(mr.len, 128);
	assert_int_equal(xport_mem_find(mem + 100, 92, &mr2), 0);
	assert_int_equal(mr2.id, mr.id);
	assert_int_equal(xport_mem_find(mem + 100, 93, &mr2), -ENOENT); /* runs past */
	assert_int_equal(xport_mem_find(mem + 32, 64, &mr2), -ENOENT);	/* straddles two */
	assert_int_equal(xport_mem_find(mem + 192, 1, &mr2), -ENOENT);
	assert_true(xport_mem_live(mr.id));
	gen = xport_mem_gen();
	xport_mem_unregister(mem + 64);
	assert_true(xport_mem_gen() != gen);
	assert_false(xport_mem_live(mr.id));
	assert_int_equal(xport_mem_find(mem + 64, 1, &mr2), -ENOENT);
	/* ids are never reused */
	assert_int_equal(xport_mem_register(mem + 64, 128), 0);
	assert_int_equal(xport_mem_find(mem + 64, 1, &mr2), 0);
	assert_true(mr2.id != mr.id);
	xport_mem_unregister(mem + 64);
	xport_mem_unregister(mem);
	xport_mem_unregister(mem + 256); /* not registered: nothing */
	/* a full table */
	for (i = 0; i < XPORT_MEM_MAX; i++) {
		assert_int_equal(xport_mem_register(mem + i * 64, 64), 0);
	}
	assert_int_equal(xport_mem_register(mem + i * 64, 64), -ENOSPC);
	for (i = 0; i < XPORT_MEM_MAX; i++) {
		xport_mem_unregister(mem + i * 64);
	}
	assert_int_equal(xport_mem_register(mem + i * 64, 64), 0);
	xport_mem_unregister(mem + i * 64);
}

static uint8_t mem_churn_area[64 * 64];
static volatile bool mem_churn_stop;

static void *mem_churn(void *arg)
{
	for (unsigned int i = 0; !mem_churn_stop; i++) {
		uint8_t *p = mem_churn_area + (i % 64) * 64;

		assert_int_equal(xport_mem_register(p, 64), 0);
		xport_mem_unregister(p);
	}
	return NULL;
}

/* Lookups take no lock: with a writer churning the table, a region that
 * stays registered is always found, whole, and a range nobody registered
 * never is. */
static void test_mem_registry_concurrent(void **state)
{
	static uint8_t stay[4096];
	struct xport_mem_region mr;
	pthread_t t;

	assert_int_equal(xport_mem_register(stay, sizeof(stay)), 0);
	mem_churn_stop = false;
	assert_int_equal(pthread_create(&t, NULL, mem_churn, NULL), 0);
	for (int i = 0; i < 200000; i++) {
		assert_int_equal(xport_mem_find(stay + 100, 200, &mr), 0);
		assert_int_equal(mr.addr, (uintptr_t)stay);
		assert_int_equal(mr.len, sizeof(stay));
		assert_int_equal(xport_mem_find(stay + 4000, 200, &mr), -ENOENT);
	}
	mem_churn_stop = true;
	pthread_join(t, NULL);
	xport_mem_unregister(stay);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mem_registry),
		cmocka_unit_test(test_mem_registry_concurrent),
		cmocka_unit_test_setup_teardown(test_echo_and_peer_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_transfer_partial_sends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_sends_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_with_pending_sends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proto_error_closes_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_close_in_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
	};
	int ret;

	ret = cmocka_run_group_tests(tests, NULL, NULL);
	free(big);
	return ret;
}
