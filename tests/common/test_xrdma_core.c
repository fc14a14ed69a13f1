/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xrdma_core without verbs: two cores joined by a simulated RC wire. A
 * SEND lands in the receive the peer posted first (none posted = RNR, a
 * test failure), completes the sender's slot, and an RDMA READ copies from
 * the peer's memory (same process). The pump delivers in random order per
 * direction-independent queue, as completions may interleave on real
 * hardware, while each direction stays in order as RC guarantees.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/xrdma_core.h"

#define T_MAXQ	 512
#define T_STREAM (4u << 20)

struct t_msg {
	uint32_t slot, len;
	uint8_t bytes[1u << 16];
};

struct t_side {
	struct xrdma_core k;
	struct t_side *peer;
	/* receives posted, in order */
	uint32_t recvq[T_MAXQ];
	unsigned int recv_head, recv_count;
	/* SENDs on the wire towards the peer, in order */
	struct t_msg *wire[T_MAXQ];
	unsigned int wire_head, wire_count;
	unsigned int max_wire; /* most SENDs in flight at once */
	/* one READ in flight */
	bool rd;
	uint64_t rd_addr;
	uint32_t rd_len;
	size_t rd_off;
	/* what the owner received */
	uint8_t *got;
	size_t got_len;
	/* consumer policy: consume at most this much per call (0: nothing) */
	size_t consume_max;
	unsigned int deliveries;
	/* fault injection */
	int fail_send, fail_recv, fail_read;
	unsigned int rnr;
	/* zero copy: the owner's registered memory (mem_key says yes inside) */
	const uint8_t *zc_base;
	size_t zc_len;
	uint32_t zc_rkey;
	unsigned int zc_reads; /* READs here that came from the peer's zc memory */
};

static int t_post_recv(struct xrdma_core *k, uint32_t slot)
{
	struct t_side *s = k->ctx;

	if (s->fail_recv) {
		return s->fail_recv;
	}
	assert_true(s->recv_count < T_MAXQ);
	s->recvq[(s->recv_head + s->recv_count++) % T_MAXQ] = slot;
	return 0;
}

static int t_post_send(struct xrdma_core *k, uint32_t slot, uint32_t len)
{
	struct t_side *s = k->ctx;
	struct t_msg *m;

	if (s->fail_send) {
		return s->fail_send;
	}
	assert_true(len <= k->peer_slot_size);
	m = malloc(sizeof(*m));
	assert_non_null(m);
	m->slot = slot;
	m->len = len;
	memcpy(m->bytes, k->tx_slots + (size_t)slot * k->g.slot_size, len);
	assert_true(s->wire_count < T_MAXQ);
	s->wire[(s->wire_head + s->wire_count++) % T_MAXQ] = m;
	if (s->wire_count > s->max_wire) {
		s->max_wire = s->wire_count;
	}
	return 0;
}

static int t_post_read(struct xrdma_core *k, uint64_t raddr, uint32_t rkey, uint32_t len,
		       size_t rx_off)
{
	struct t_side *s = k->ctx;

	if (s->fail_read) {
		return s->fail_read;
	}
	assert_false(s->rd);
	assert_true(rx_off + len <= k->g.rx_size);
	if (s->peer->zc_len && rkey == s->peer->zc_rkey) {
		/* straight from the peer's registered memory */
		assert_true(raddr >= (uintptr_t)s->peer->zc_base);
		assert_true(raddr + len <= (uintptr_t)s->peer->zc_base + s->peer->zc_len);
		s->zc_reads++;
	} else {
		/* else one of its large buffers, being read */
		assert_int_equal(rkey, s->peer->k.big_rkey);
		assert_true(raddr >= (uintptr_t)s->peer->k.big);
		assert_true(raddr + len <=
			    (uintptr_t)s->peer->k.big +
				    (size_t)s->peer->k.g.big_count * s->peer->k.g.big_size);
	}
	s->rd = true;
	s->rd_addr = raddr;
	s->rd_len = len;
	s->rd_off = rx_off;
	return 0;
}

static ssize_t t_deliver(struct xrdma_core *k, const uint8_t *data, size_t len)
{
	struct t_side *s = k->ctx;
	size_t n = len < s->consume_max ? len : s->consume_max;

	s->deliveries++;
	assert_true(s->got_len + n <= T_STREAM);
	memcpy(s->got + s->got_len, data, n);
	s->got_len += n;
	return (ssize_t)n;
}

static int t_mem_key(struct xrdma_core *k, const void *addr, size_t len, uint32_t *rkey)
{
	struct t_side *s = k->ctx;
	uintptr_t a = (uintptr_t)addr, base = (uintptr_t)s->zc_base;

	if (!s->zc_len || a < base || a + len > base + s->zc_len) {
		return -ENOENT;
	}
	*rkey = s->zc_rkey;
	return 0;
}

static const struct xrdma_verbs t_verbs = {
	.post_recv = t_post_recv,
	.post_send = t_post_send,
	.post_read = t_post_read,
	.deliver = t_deliver,
	.mem_key = t_mem_key,
};

static void t_geom_small(struct xrdma_geom *g)
{
	g->slots = 4;
	g->slot_size = 256;
	g->big_count = 2;
	g->big_size = 4096;
	g->read_min = 512;
	g->rx_size = 8192;
}

static void t_pair_init(struct t_side *a, struct t_side *b, const struct xrdma_geom *ga,
			const struct xrdma_geom *gb)
{
	struct xrdma_cm_params pa, pb;

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	assert_int_equal(xrdma_core_init(&a->k, ga, &t_verbs, a), 0);
	assert_int_equal(xrdma_core_init(&b->k, gb, &t_verbs, b), 0);
	a->peer = b;
	b->peer = a;
	a->k.big_rkey = 0x1111;
	b->k.big_rkey = 0x2222;
	a->zc_rkey = 0x3333;
	b->zc_rkey = 0x4444;
	a->got = malloc(T_STREAM);
	b->got = malloc(T_STREAM);
	a->consume_max = b->consume_max = SIZE_MAX;
	pa = (struct xrdma_cm_params){XRDMA_VERSION, (uint16_t)ga->slots, ga->slot_size};
	pb = (struct xrdma_cm_params){XRDMA_VERSION, (uint16_t)gb->slots, gb->slot_size};
	xrdma_core_set_peer(&a->k, &pb);
	xrdma_core_set_peer(&b->k, &pa);
	assert_int_equal(xrdma_core_post_all_recvs(&a->k), 0);
	assert_int_equal(xrdma_core_post_all_recvs(&b->k), 0);
}

static void t_side_fini(struct t_side *s)
{
	while (s->wire_count) {
		free(s->wire[s->wire_head]);
		s->wire_head = (s->wire_head + 1) % T_MAXQ;
		s->wire_count--;
	}
	xrdma_core_fini(&s->k);
	free(s->got);
}

/* Deliver the oldest SEND of @s to its peer. Returns the peer core's result. */
static int t_wire_one(struct t_side *s)
{
	struct t_side *p = s->peer;
	struct t_msg *m = s->wire[s->wire_head];
	uint32_t slot;
	int ret;

	s->wire_head = (s->wire_head + 1) % T_MAXQ;
	s->wire_count--;
	if (!p->recv_count) {
		p->rnr++;
		free(m);
		fail_msg("RNR: a SEND found no posted receive");
	}
	slot = p->recvq[p->recv_head];
	p->recv_head = (p->recv_head + 1) % T_MAXQ;
	p->recv_count--;
	memcpy(p->k.rx_slots + (size_t)slot * p->k.g.slot_size, m->bytes, m->len);
	ret = xrdma_core_recv_done(&p->k, slot, m->len);
	assert_int_equal(xrdma_core_send_done(&s->k, m->slot), 0);
	free(m);
	return ret;
}

static int t_read_one(struct t_side *s)
{
	memcpy(s->k.rx_buf + s->rd_off, (const void *)(uintptr_t)s->rd_addr, s->rd_len);
	s->rd = false;
	return xrdma_core_read_done(&s->k);
}

/* One random step; false when nothing was left to do. */
static bool t_step(struct t_side *a, struct t_side *b, unsigned int *seed)
{
	struct t_side *sides[2] = {a, b};

	for (int tries = 0; tries < 8; tries++) {
		struct t_side *s = sides[rand_r(seed) & 1];

		switch (rand_r(seed) % 3) {
		case 0:
			if (s->wire_count) {
				assert_int_equal(t_wire_one(s), 0);
				return true;
			}
			break;
		case 1:
			if (s->rd) {
				assert_int_equal(t_read_one(s), 0);
				return true;
			}
			break;
		default:
			assert_int_equal(xrdma_core_process(&s->k), 0);
			break;
		}
	}
	assert_int_equal(xrdma_core_process(&a->k), 0);
	assert_int_equal(xrdma_core_process(&b->k), 0);
	return a->wire_count || b->wire_count || a->rd || b->rd;
}

static void t_run(struct t_side *a, struct t_side *b, unsigned int *seed)
{
	unsigned int guard = 0;

	while (t_step(a, b, seed)) {
		assert_true(++guard < 10000000);
	}
}

/* --- sends --- */

struct t_send {
	struct xport_send s;
	int res;
	bool done;
};

static void t_send_cb(struct xport_send *s, int res)
{
	struct t_send *t = container_of(s, struct t_send, s);

	assert_false(t->done);
	t->done = true;
	t->res = res;
}

static uint8_t *t_pattern(size_t len, unsigned int seed)
{
	uint8_t *p = malloc(len);

	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(rand_r(&seed) >> 8);
	}
	return p;
}

/* Queue @n sends cutting @src[0..len) into random iovecs. */
static struct t_send *t_queue(struct t_side *s, const uint8_t *src, size_t len, unsigned int n,
			      unsigned int *seed, size_t max_piece)
{
	struct t_send *ts = calloc(n, sizeof(*ts));
	size_t off = 0;

	for (unsigned int i = 0; i < n; i++) {
		size_t left = len - off;
		size_t want = i == n - 1 ? left : left / (n - i);
		int cnt = 0;

		while (want && cnt < XPORT_MAX_IOV) {
			size_t piece =
				cnt == XPORT_MAX_IOV - 1 ? want : 1 + rand_r(seed) % max_piece;

			piece = piece < want ? piece : want;
			ts[i].s.iov[cnt].iov_base = (void *)(src + off);
			ts[i].s.iov[cnt].iov_len = piece;
			cnt++;
			off += piece;
			want -= piece;
		}
		ts[i].s.iovcnt = cnt;
		ts[i].s.cb = t_send_cb;
		assert_int_equal(xrdma_core_send(&s->k, &ts[i].s), 0);
	}
	assert_int_equal(off, len);
	return ts;
}

static void t_check_all_done(struct t_send *ts, unsigned int n, int res)
{
	for (unsigned int i = 0; i < n; i++) {
		assert_true(ts[i].done);
		assert_int_equal(ts[i].res, res);
	}
}

/* Both directions at once, random iovec shapes and completion order; the
 * receiver consumes in random-sized bites. Streams arrive exact. */
static void t_bidir(const struct xrdma_geom *g, unsigned int seed, size_t len, unsigned int n,
		    size_t max_piece, size_t bite, bool zc)
{
	struct t_side a, b;
	uint8_t *pa = t_pattern(len, seed), *pb = t_pattern(len, seed + 1);
	struct t_send *ta, *tb;

	t_pair_init(&a, &b, g, g);
	if (zc) {
		a.zc_base = pa;
		a.zc_len = len;
		b.zc_base = pb;
		b.zc_len = len;
	}
	a.consume_max = bite;
	b.consume_max = bite;
	ta = t_queue(&a, pa, len, n, &seed, max_piece);
	tb = t_queue(&b, pb, len, n, &seed, max_piece);
	t_run(&a, &b, &seed);
	/* A consumer that took a bite gets more only when bytes arrive: keep
	 * offering what is left (conn.c consumes every whole frame). */
	for (int i = 0; i < 100000 && (a.got_len < len || b.got_len < len); i++) {
		a.k.rx_fresh = b.k.rx_fresh = true;
		assert_int_equal(xrdma_core_process(&a.k), 0);
		assert_int_equal(xrdma_core_process(&b.k), 0);
		t_run(&a, &b, &seed);
	}
	assert_int_equal(b.got_len, len);
	assert_int_equal(a.got_len, len);
	assert_memory_equal(b.got, pa, len);
	assert_memory_equal(a.got, pb, len);
	t_check_all_done(ta, n, 0);
	t_check_all_done(tb, n, 0);
	/* never an RNR (t_wire_one fails on one), never more SENDs in flight
	 * than the peer had receives posted */
	assert_true(a.max_wire <= g->slots);
	assert_true(b.max_wire <= g->slots);
	/* every large buffer came back, every credit too */
	assert_int_equal(a.k.big_busy, 0);
	assert_int_equal(b.k.big_busy, 0);
	assert_int_equal(a.k.st.bytes_out, len);
	assert_int_equal(b.k.st.bytes_in, len);
	assert_int_equal(a.k.st.inline_bytes_out + a.k.st.read_bytes_out, len);
	assert_int_equal(a.k.zc_busy, 0);
	assert_int_equal(b.k.zc_busy, 0);
	if (zc) {
		/* every large piece was read in place, or copied only when the
		 * peer was reading XRDMA_MAX_ZC pieces already */
		assert_true(a.k.st.zc_bytes_out == a.k.st.read_bytes_out ||
			    a.k.st.zc_exhausted > 0);
		assert_true(b.k.st.zc_bytes_out == b.k.st.read_bytes_out ||
			    b.k.st.zc_exhausted > 0);
		assert_true(a.k.st.zc_bytes_out > 0);
		assert_true(b.k.st.zc_bytes_out > 0);
	} else {
		assert_int_equal(a.k.st.zc_bytes_out, 0);
	}
	free(ta);
	free(tb);
	free(pa);
	free(pb);
	t_side_fini(&a);
	t_side_fini(&b);
}

static void test_cm_params(void **state)
{
	struct xrdma_cm_params p = {XRDMA_VERSION, 32, 8192}, q;
	uint8_t buf[XRDMA_CM_SIZE + 4] = {0};

	xrdma_cm_encode(&p, buf);
	assert_int_equal(xrdma_cm_decode(buf, sizeof(buf), &q), 0);
	assert_int_equal(q.slots, 32);
	assert_int_equal(q.slot_size, 8192);
	assert_int_equal(xrdma_cm_decode(buf, XRDMA_CM_SIZE - 1, &q), -EPROTO);
	assert_int_equal(xrdma_cm_decode(NULL, 0, &q), -EPROTO);
	p.version = 2;
	xrdma_cm_encode(&p, buf);
	assert_int_equal(xrdma_cm_decode(buf, XRDMA_CM_SIZE, &q), -EPROTONOSUPPORT);
	p = (struct xrdma_cm_params){XRDMA_VERSION, 1, 8192};
	xrdma_cm_encode(&p, buf);
	assert_int_equal(xrdma_cm_decode(buf, XRDMA_CM_SIZE, &q), -EPROTO);
	p = (struct xrdma_cm_params){XRDMA_VERSION, 32, 100};
	xrdma_cm_encode(&p, buf);
	assert_int_equal(xrdma_cm_decode(buf, XRDMA_CM_SIZE, &q), -EPROTO);
	buf[0] ^= 1;
	assert_int_equal(xrdma_cm_decode(buf, XRDMA_CM_SIZE, &q), -EPROTO);
}

static void test_geom(void **state)
{
	struct xrdma_geom g;

	xrdma_geom_default(&g, 1 << 20);
	assert_int_equal(xrdma_geom_check(&g), 0);
	g.slots = 1;
	assert_int_equal(xrdma_geom_check(&g), -EINVAL);
	xrdma_geom_default(&g, 1 << 20);
	g.big_count = XRDMA_MAX_BIG + 1;
	assert_int_equal(xrdma_geom_check(&g), -EINVAL);
	xrdma_geom_default(&g, 100);
	assert_int_equal(xrdma_geom_check(&g), -EINVAL);
}

/* Production sizes: frames like conn.c's (88-byte header, meta, data, crcs). */
static void test_stream_default(void **state)
{
	struct xrdma_geom g;

	xrdma_geom_default(&g, 1115224 + 4096);
	t_bidir(&g, 1, 3u << 20, 200, 70000, SIZE_MAX, false);
	t_bidir(&g, 2, 3u << 20, 200, 70000, SIZE_MAX, true);
}

/* Tiny geometry: every limit is hit often. */
static void test_stream_small_random(void **state)
{
	struct xrdma_geom g;

	t_geom_small(&g);
	for (unsigned int seed = 1; seed <= 40; seed++) {
		t_bidir(&g, seed, 60000 + seed * 997, 50 + seed, 2000, 1 + seed * 37, seed & 1);
	}
}

/* Framing across SEND and READ: small pieces inline, large by READ, in order. */
static void test_framing_send_and_read(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(20000, 7);
	struct t_send ts = {0};
	unsigned int seed = 3;

	t_geom_small(&g);
	g.rx_size = 65536;
	t_pair_init(&a, &b, &g, &g);
	/* header 88 inline, 10000 by READ (3 big buffers' worth: 4096 each),
	 * 100 inline, 9812 by READ */
	ts.s.iov[0] = (struct iovec){p, 88};
	ts.s.iov[1] = (struct iovec){p + 88, 10000};
	ts.s.iov[2] = (struct iovec){p + 10088, 100};
	ts.s.iov[3] = (struct iovec){p + 10188, 9812};
	ts.s.iovcnt = 4;
	ts.s.cb = t_send_cb;
	assert_int_equal(xrdma_core_send(&a.k, &ts.s), 0);
	t_run(&a, &b, &seed);
	assert_true(ts.done);
	assert_int_equal(ts.res, 0);
	assert_int_equal(b.got_len, 20000);
	assert_memory_equal(b.got, p, 20000);
	assert_int_equal(a.k.st.inline_bytes_out, 188);
	assert_int_equal(a.k.st.read_bytes_out, 19812);
	assert_int_equal(b.k.st.read_bytes_in, 19812);
	assert_int_equal(b.k.st.reads, 6);
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* Credits: with the receiver stalled, the sender posts no more SENDs than
 * receives were posted, keeps the last credit, and resumes after credits. */
static void test_credits_backpressure(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(30000, 9);
	struct t_send *ts;
	unsigned int seed = 5;

	t_geom_small(&g);
	t_pair_init(&a, &b, &g, &g);
	ts = t_queue(&a, p, 30000, 30, &seed, 200);
	/* B's reactor does not get to run: its receives complete (the HCA)
	 * but nothing is processed, so no slot is reposted */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(xrdma_core_process(&a.k), 0);
		while (a.wire_count) {
			assert_int_equal(t_wire_one(&a), 0);
		}
	}
	assert_int_equal(b.got_len, 0);
	assert_true(a.k.st.credit_stalls > 0);
	assert_int_equal(a.k.peer_credits, 1); /* the last one is kept */
	assert_int_equal(b.k.rxq_count, g.slots - 1);
	assert_int_equal(b.rnr, 0);
	/* B runs: everything flows */
	t_run(&a, &b, &seed);
	assert_int_equal(b.got_len, 30000);
	assert_memory_equal(b.got, p, 30000);
	t_check_all_done(ts, 30, 0);
	/* credits came back through CREDIT messages (B had nothing to send) */
	assert_true(b.k.st.credit_msgs_out > 0);
	assert_int_equal(b.k.st.bytes_out, 0);
	free(ts);
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* A receiver slower on slot size than the sender: the sender cuts DATA to
 * the peer's slot size. */
static void test_peer_slot_size(void **state)
{
	struct xrdma_geom ga, gb;

	t_geom_small(&ga);
	t_geom_small(&gb);
	ga.slot_size = 1024;
	gb.slot_size = 256;
	{
		struct t_side a, b;
		uint8_t *p = t_pattern(5000, 11);
		struct t_send *ts;
		unsigned int seed = 1;

		t_pair_init(&a, &b, &ga, &gb);
		assert_int_equal(a.k.peer_slot_size, 256);
		assert_int_equal(b.k.peer_slot_size, 256);
		ts = t_queue(&a, p, 5000, 20, &seed, 400);
		t_run(&a, &b, &seed);
		assert_int_equal(b.got_len, 5000);
		assert_memory_equal(b.got, p, 5000);
		free(ts);
		free(p);
		t_side_fini(&a);
		t_side_fini(&b);
	}
}

/* Message larger than the receive buffer the owner never consumes. */
static void test_rx_overflow(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(9000, 13);
	struct t_send ts = {0};
	int ret = 0;

	t_geom_small(&g);
	t_pair_init(&a, &b, &g, &g);
	b.consume_max = 0;
	ts.s.iov[0] = (struct iovec){p, 9000};
	ts.s.iovcnt = 1;
	ts.s.cb = t_send_cb;
	assert_int_equal(xrdma_core_send(&a.k, &ts.s), 0);
	for (int i = 0; i < 1000 && !ret; i++) {
		assert_int_equal(xrdma_core_process(&a.k), 0);
		if (a.wire_count) {
			assert_int_equal(t_wire_one(&a), 0);
		}
		if (b.rd) {
			assert_int_equal(t_read_one(&b), 0);
		}
		ret = xrdma_core_process(&b.k);
	}
	assert_int_equal(ret, -EMSGSIZE);
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* Hand-made messages into B's next posted receive. */
static int t_inject(struct t_side *b, const uint8_t *m, uint32_t len)
{
	uint32_t slot = b->recvq[b->recv_head];

	b->recv_head = (b->recv_head + 1) % T_MAXQ;
	b->recv_count--;
	memcpy(b->k.rx_slots + (size_t)slot * b->k.g.slot_size, m, len);
	return xrdma_core_recv_done(&b->k, slot, len);
}

static void t_hdr(uint8_t *m, uint8_t type, uint16_t credits, uint32_t len)
{
	m[0] = type;
	m[1] = XRDMA_VERSION;
	m[2] = (uint8_t)credits;
	m[3] = (uint8_t)(credits >> 8);
	m[4] = (uint8_t)len;
	m[5] = (uint8_t)(len >> 8);
	m[6] = (uint8_t)(len >> 16);
	m[7] = (uint8_t)(len >> 24);
}

static void test_hostile_messages(void **state)
{
	static const struct {
		uint8_t type, version;
		uint16_t credits;
		uint32_t hdr_len, byte_len;
	} cases[] = {
		{XRDMA_MSG_DATA, XRDMA_VERSION, 0, 10, 4},	/* shorter than a header */
		{XRDMA_MSG_DATA, 9, 0, 10, 18},			/* version */
		{XRDMA_MSG_DATA, XRDMA_VERSION, 0, 11, 18},	/* length mismatch */
		{XRDMA_MSG_DATA, XRDMA_VERSION, 0, 0, 8},	/* empty DATA */
		{77, XRDMA_VERSION, 0, 0, 8},			/* unknown type */
		{XRDMA_MSG_CREDIT, XRDMA_VERSION, 1, 0, 8},	/* credits beyond the slots */
		{XRDMA_MSG_CREDIT, XRDMA_VERSION, 0, 4, 12},	/* CREDIT with a body */
		{XRDMA_MSG_READ_DONE, XRDMA_VERSION, 0, 4, 12}, /* buffer not being read */
		{XRDMA_MSG_READ_DONE, XRDMA_VERSION, 0, 3, 11}, /* short READ_DONE */
		{XRDMA_MSG_READ_REQ, XRDMA_VERSION, 0, 20, 28}, /* READ of 0 bytes */
		{XRDMA_MSG_READ_REQ, XRDMA_VERSION, 0, 19, 27}, /* short READ_REQ */
		{XRDMA_MSG_DATA, XRDMA_VERSION, 0, 300, 308},	/* bigger than a slot */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xrdma_geom g;
		struct t_side a, b;
		uint8_t m[512] = {0};

		t_geom_small(&g);
		t_pair_init(&a, &b, &g, &g);
		t_hdr(m, cases[i].type, cases[i].credits, cases[i].hdr_len);
		m[1] = cases[i].version;
		if (cases[i].type == XRDMA_MSG_READ_DONE) {
			m[8] = 1; /* buffer 1: not busy */
		}
		if (cases[i].byte_len > g.slot_size) {
			/* a real HCA fails such a receive; the core checks too */
			assert_int_equal(
				xrdma_core_recv_done(&b.k, b.recvq[b.recv_head], cases[i].byte_len),
				-EPROTO);
		} else {
			assert_int_equal(t_inject(&b, m, cases[i].byte_len), -EPROTO);
		}
		t_side_fini(&a);
		t_side_fini(&b);
	}
}

/* Error paths: a failed post (QP in error), stop with sends queued (remote
 * disconnect, CQ overflow: the verbs layer stops the core with the error),
 * flushed completions after the stop. */
static void test_error_paths(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(4000, 15);
	struct t_send *ts;
	unsigned int seed = 1;

	t_geom_small(&g);
	t_pair_init(&a, &b, &g, &g);
	a.fail_send = -EIO;
	ts = t_queue(&a, p, 4000, 4, &seed, 100);
	assert_int_equal(xrdma_core_process(&a.k), -EIO);
	xrdma_core_stop(&a.k, -ECONNRESET);
	/* the first send's bytes were copied before the failed post: done (0);
	 * the others fail with the stop's error */
	assert_true(ts[0].done);
	for (int i = 1; i < 4; i++) {
		assert_true(ts[i].done);
	}
	assert_int_equal(ts[3].res, -ECONNRESET);
	assert_int_equal(xrdma_core_send(&a.k, &ts[0].s), -EPIPE);
	/* flushed receives after the stop: accepted, nothing delivered */
	assert_int_equal(xrdma_core_recv_done(&a.k, a.recvq[a.recv_head], 0), 0);
	assert_int_equal(a.deliveries, 0);
	free(ts);

	/* a failed repost (QP gone) fails processing on the receiver */
	a.fail_send = 0;
	b.fail_recv = -EIO;
	{
		struct t_side c, d;
		struct t_send t1 = {0};

		t_pair_init(&c, &d, &g, &g);
		t1.s.iov[0] = (struct iovec){p, 100};
		t1.s.iovcnt = 1;
		t1.s.cb = t_send_cb;
		assert_int_equal(xrdma_core_send(&c.k, &t1.s), 0);
		assert_int_equal(xrdma_core_process(&c.k), 0);
		d.fail_recv = -EIO;
		assert_int_equal(t_wire_one(&c), 0);
		assert_int_equal(xrdma_core_process(&d.k), -EIO);
		/* a failed READ post */
		t_side_fini(&c);
		t_side_fini(&d);
		t_pair_init(&c, &d, &g, &g);
		memset(&t1, 0, sizeof(t1));
		t1.s.iov[0] = (struct iovec){p, 4000};
		t1.s.iovcnt = 1;
		t1.s.cb = t_send_cb;
		assert_int_equal(xrdma_core_send(&c.k, &t1.s), 0);
		assert_int_equal(xrdma_core_process(&c.k), 0);
		d.fail_read = -EIO;
		assert_int_equal(t_wire_one(&c), 0);
		assert_int_equal(xrdma_core_process(&d.k), -EIO);
		t_side_fini(&c);
		t_side_fini(&d);
	}
	/* bad sends */
	{
		struct xport_send s = {0};

		s.cb = t_send_cb;
		assert_int_equal(xrdma_core_send(&b.k, &s), -EINVAL);
		s.iovcnt = 1;
		assert_int_equal(xrdma_core_send(&b.k, &s), -EINVAL); /* 0 bytes */
	}
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

static bool t_all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i]) {
			return false;
		}
	}
	return true;
}

/* Zero copy: a large piece of registered memory is read by the peer from
 * the caller's buffer itself (never copied into a large buffer), and the
 * send's callback waits for the peer's READ_DONE, since until then the
 * caller's memory is still being read. */
static void test_zero_copy_callback(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(10088, 17);
	struct t_send ts = {0};
	unsigned int seed = 1;

	t_geom_small(&g);
	g.rx_size = 65536;
	t_pair_init(&a, &b, &g, &g);
	a.zc_base = p;
	a.zc_len = 10088;
	ts.s.iov[0] = (struct iovec){p, 88};
	ts.s.iov[1] = (struct iovec){p + 88, 10000};
	ts.s.iovcnt = 2;
	ts.s.cb = t_send_cb;
	assert_int_equal(xrdma_core_send(&a.k, &ts.s), 0);
	assert_int_equal(xrdma_core_process(&a.k), 0); /* DATA (88) + READ_REQ (10000) */
	assert_int_equal(a.wire_count, 2);
	assert_false(ts.done);
	assert_int_equal(t_wire_one(&a), 0);
	assert_int_equal(t_wire_one(&a), 0);
	assert_int_equal(xrdma_core_process(&b.k), 0);
	assert_true(b.rd);
	assert_int_equal(b.rd_addr, (uintptr_t)(p + 88)); /* the caller's own bytes */
	assert_int_equal(b.rd_len, 10000);
	assert_int_equal(xrdma_core_process(&a.k), 0);
	assert_false(ts.done); /* still being read */
	assert_int_equal(t_read_one(&b), 0);
	assert_int_equal(xrdma_core_process(&b.k), 0); /* READ_DONE out */
	assert_false(ts.done);
	while (b.wire_count) {
		assert_int_equal(t_wire_one(&b), 0);
	}
	assert_int_equal(xrdma_core_process(&a.k), 0);
	assert_true(ts.done);
	assert_int_equal(ts.res, 0);
	t_run(&a, &b, &seed);
	assert_int_equal(b.got_len, 10088);
	assert_memory_equal(b.got, p, 10088);
	assert_int_equal(a.k.st.zc_bytes_out, 10000);
	assert_int_equal(a.k.st.inline_bytes_out, 88);
	assert_int_equal(b.zc_reads, 1);
	assert_true(t_all_zero(a.k.big, (size_t)g.big_count * g.big_size)); /* no copy */
	assert_int_equal(a.k.zc_busy, 0);
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* Only part of the memory registered: what is in it goes in place, the
 * rest through the large buffers; the stream is the same. */
static void test_zero_copy_partial(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(40000, 19);
	struct t_send ts[4] = {0};
	unsigned int seed = 7;

	t_geom_small(&g);
	g.rx_size = 65536;
	t_pair_init(&a, &b, &g, &g);
	a.zc_base = p;
	a.zc_len = 20000;
	for (int i = 0; i < 4; i++) {
		ts[i].s.iov[0] = (struct iovec){p + i * 10000, 10000};
		ts[i].s.iovcnt = 1;
		ts[i].s.cb = t_send_cb;
		assert_int_equal(xrdma_core_send(&a.k, &ts[i].s), 0);
	}
	t_run(&a, &b, &seed);
	t_check_all_done(ts, 4, 0);
	assert_int_equal(b.got_len, 40000);
	assert_memory_equal(b.got, p, 40000);
	assert_int_equal(a.k.st.zc_bytes_out, 20000);
	assert_int_equal(a.k.st.read_bytes_out, 40000);
	assert_false(t_all_zero(a.k.big, (size_t)g.big_count * g.big_size));
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* Stop while the peer reads in place: each send's callback fires exactly
 * once, with the error, whether it was fully queued or not. */
static void test_zero_copy_stop(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(30000, 21);
	struct t_send ts[2] = {0};

	t_geom_small(&g);
	t_pair_init(&a, &b, &g, &g);
	a.zc_base = p;
	a.zc_len = 30000;
	ts[0].s.iov[0] = (struct iovec){p, 10000};
	ts[0].s.iovcnt = 1;
	ts[0].s.cb = t_send_cb;
	/* two large pieces: only the first goes out (one credit to spend) */
	ts[1].s.iov[0] = (struct iovec){p + 10000, 10000};
	ts[1].s.iov[1] = (struct iovec){p + 20000, 10000};
	ts[1].s.iovcnt = 2;
	ts[1].s.cb = t_send_cb;
	assert_int_equal(xrdma_core_send(&a.k, &ts[0].s), 0);
	assert_int_equal(xrdma_core_send(&a.k, &ts[1].s), 0);
	a.k.peer_credits = 3;
	assert_int_equal(xrdma_core_process(&a.k), 0);
	assert_int_equal(a.wire_count, 2);
	assert_int_equal(__builtin_popcount(a.k.zc_busy), 2);
	assert_false(ts[0].done);
	assert_false(ts[1].done);
	xrdma_core_stop(&a.k, -ECONNRESET);
	assert_true(ts[0].done);
	assert_true(ts[1].done);
	assert_int_equal(ts[0].res, -ECONNRESET);
	assert_int_equal(ts[1].res, -ECONNRESET);
	assert_int_equal(a.k.zc_busy, 0);
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* A peer that asks for more RDMA READs than any well-behaved sender has in
 * flight while withholding the credits the READ_DONEs need: EPROTO, not a
 * crash; and a READ_DONE for a zero-copy id not being read. */
static void test_hostile_reads(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t m[64] = {0};
	int ret = 0;
	unsigned int n;

	t_geom_small(&g);
	t_pair_init(&a, &b, &g, &g);
	b.k.peer_credits = 0; /* B may not send: READ_DONEs pile up */
	for (n = 0; n < 2 * XRDMA_MAX_READS && !ret; n++) {
		t_hdr(m, XRDMA_MSG_READ_REQ, 0, XRDMA_READ_REQ_BODY);
		for (int i = 0; i < 8; i++) {
			m[8 + i] = (uint8_t)((uint64_t)(uintptr_t)a.k.big >> (8 * i));
		}
		m[16] = 0x11;
		m[17] = 0x11; /* A's big rkey */
		m[20] = 16;   /* 16 bytes */
		m[24] = 0;    /* buffer 0 */
		assert_int_equal(t_inject(&b, m, XRDMA_HDR_SIZE + XRDMA_READ_REQ_BODY), 0);
		assert_int_equal(xrdma_core_process(&b.k), 0);
		assert_true(b.rd);
		ret = t_read_one(&b);
	}
	assert_int_equal(ret, -EPROTO);
	assert_int_equal(n, XRDMA_MAX_READS + 1);
	t_side_fini(&a);
	t_side_fini(&b);

	t_pair_init(&a, &b, &g, &g);
	t_hdr(m, XRDMA_MSG_READ_DONE, 0, XRDMA_READ_DONE_BODY);
	m[8] = 0;
	m[9] = 0;
	m[10] = 1; /* XRDMA_ZC_ID0 */
	m[11] = 0;
	assert_int_equal(t_inject(&b, m, XRDMA_HDR_SIZE + XRDMA_READ_DONE_BODY), -EPROTO);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* A send completes when the peer has it: an inline one when the SEND with
 * its last byte completed, one with a copied large piece at its READ_DONE
 * (an owner may close from the callback without losing the message). */
static void test_callback_when_delivered(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(5000, 25);
	struct t_send t1 = {0}, t2 = {0};
	unsigned int seed = 3;

	t_geom_small(&g);
	t_pair_init(&a, &b, &g, &g);
	t1.s.iov[0] = (struct iovec){p, 100};
	t1.s.iovcnt = 1;
	t1.s.cb = t_send_cb;
	assert_int_equal(xrdma_core_send(&a.k, &t1.s), 0);
	assert_int_equal(xrdma_core_process(&a.k), 0);
	assert_int_equal(a.wire_count, 1);
	assert_false(t1.done); /* posted, not yet completed */
	assert_int_equal(t_wire_one(&a), 0);
	assert_false(t1.done);
	assert_int_equal(xrdma_core_process(&a.k), 0);
	assert_true(t1.done);
	/* a copied large piece: not at the copy, not at the SEND, at READ_DONE */
	t2.s.iov[0] = (struct iovec){p + 100, 4000};
	t2.s.iovcnt = 1;
	t2.s.cb = t_send_cb;
	assert_int_equal(xrdma_core_send(&a.k, &t2.s), 0);
	assert_int_equal(xrdma_core_process(&a.k), 0);
	assert_int_equal(t_wire_one(&a), 0);
	assert_int_equal(xrdma_core_process(&a.k), 0);
	assert_false(t2.done);
	t_run(&a, &b, &seed);
	assert_true(t2.done);
	assert_int_equal(b.got_len, 4100);
	assert_memory_equal(b.got, p, 4100);
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

/* Fault injection: while tx_hold is set (xport_send.delay_ms) no stream
 * byte goes out, while control messages still do; then everything flows. */
static void test_tx_hold(void **state)
{
	struct xrdma_geom g;
	struct t_side a, b;
	uint8_t *p = t_pattern(3000, 23);
	struct t_send *ts;
	unsigned int seed = 9;

	t_geom_small(&g);
	t_pair_init(&a, &b, &g, &g);
	a.k.tx_hold = true;
	ts = t_queue(&a, p, 3000, 5, &seed, 300);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(xrdma_core_process(&a.k), 0);
	}
	assert_int_equal(a.wire_count, 0);
	assert_false(ts[0].done);
	a.k.tx_hold = false;
	t_run(&a, &b, &seed);
	assert_int_equal(b.got_len, 3000);
	assert_memory_equal(b.got, p, 3000);
	t_check_all_done(ts, 5, 0);
	free(ts);
	free(p);
	t_side_fini(&a);
	t_side_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cm_params),
		cmocka_unit_test(test_geom),
		cmocka_unit_test(test_framing_send_and_read),
		cmocka_unit_test(test_credits_backpressure),
		cmocka_unit_test(test_peer_slot_size),
		cmocka_unit_test(test_rx_overflow),
		cmocka_unit_test(test_hostile_messages),
		cmocka_unit_test(test_error_paths),
		cmocka_unit_test(test_zero_copy_callback),
		cmocka_unit_test(test_zero_copy_partial),
		cmocka_unit_test(test_zero_copy_stop),
		cmocka_unit_test(test_hostile_reads),
		cmocka_unit_test(test_tx_hold),
		cmocka_unit_test(test_callback_when_delivered),
		cmocka_unit_test(test_stream_small_random),
		cmocka_unit_test(test_stream_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
