/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libkeel without a network: the splitter and router (offset -> objects ->
 * PGs -> primary) against a hand-built cluster map, the crc path, and the
 * retry state machine driven through a fake transport (kl_net_ops) on a
 * real reactor: stale epochs, inactive PGs, lost connections, timeouts,
 * busy servers and permanent errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/kl_int.h"
#include "common/crc.h"
#include "common/log.h"

#define OBJ_SIZE (64u * 1024)
#define POOL	 1
#define NPG	 8

/* ---- splitter / router / helpers ---- */

static uint64_t rng = 88172645463325252ull;

static uint64_t xrand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_split_property(void **state)
{
	static const uint32_t osizes[] = {4096, 65536, 4u << 20, 8u << 20};

	for (int it = 0; it < 20000; it++) {
		uint32_t os = osizes[it % 4];
		uint64_t off = (xrand() % (1u << 20)) * KP_BLOCK;
		uint64_t len = (1 + xrand() % 4096) * KP_BLOCK;
		uint64_t pos = off, end = off + len;

		while (pos < end) {
			struct kl_extent e;

			kl_split_next(pos, end, os, &e);
			assert_true(e.len > 0 && e.len <= KP_MAX_DATA);
			assert_true(e.len % KP_BLOCK == 0);
			assert_int_equal(e.objno, pos / os);
			assert_int_equal(e.obj_off, pos % os);
			assert_true((uint64_t)e.obj_off + e.len <= os);
			/* A piece ends at the request end, an object end or 1 MiB. */
			assert_true(pos + e.len == end || e.obj_off + e.len == os ||
				    e.len == KP_MAX_DATA);
			pos += e.len;
		}
		assert_int_equal(pos, end);
	}
}

static struct cmap *make_map(uint64_t epoch, uint32_t primary_all, uint32_t pg_override,
			     uint32_t primary_override)
{
	struct cmap *m = cmap_new(epoch);
	struct cmap_pool p = {.id = POOL, .replicas = 3, .min_replicas = 2, .pg_count = NPG};

	assert_non_null(m);
	for (uint32_t id = 1; id <= 3; id++) {
		struct cmap_server s = {.id = id, .weight = 1, .up = true, .in = true};

		snprintf(s.addr, sizeof(s.addr), "127.0.0.%u:7000", id);
		snprintf(s.host, sizeof(s.host), "h%u", id);
		assert_int_equal(cmap_add_server(m, &s), 0);
	}
	snprintf(p.name, sizeof(p.name), "default");
	assert_int_equal(cmap_add_pool(m, &p), 0);
	for (uint32_t pg = 0; pg < NPG; pg++) {
		struct cmap_pg *g = (struct cmap_pg *)cmap_pg(m, POOL, pg);

		g->nmembers = 3;
		g->members[0] = 1;
		g->members[1] = 2;
		g->members[2] = 3;
		g->in_sync = 7;
		g->primary = pg == pg_override ? primary_override : primary_all;
		g->interval = epoch;
	}
	return m;
}

static void test_route(void **state)
{
	struct cmap *m = make_map(5, 2, 3, 0);
	struct kl_route rt;
	uint64_t inode = (77ull << 16);
	int inactive = 0;

	for (uint64_t objno = 0; objno < 200; objno++) {
		uint32_t pg = cmap_object_pg(inode, objno, NPG);
		int ret = kl_route_object(m, POOL, inode, objno, &rt);

		assert_int_equal(rt.pgid, KP_PGID(POOL, pg));
		if (pg == 3) {
			assert_int_equal(ret, -EAGAIN); /* inactive PG */
			inactive++;
			continue;
		}
		assert_int_equal(ret, 0);
		assert_int_equal(rt.server, 2);
		assert_string_equal(rt.addr, "127.0.0.2:7000");
	}
	assert_true(inactive > 0 && inactive < 200);
	assert_int_equal(kl_route_object(m, 9, inode, 0, &rt), -ENOENT);
	assert_int_equal(kl_route_object(NULL, POOL, inode, 0, &rt), -ENOENT);
	cmap_free(m);
}

static void test_classify_backoff(void **state)
{
	int s;

	assert_int_equal(kl_classify(KP_OP_WRITE, 0, &s), KL_V_OK);
	assert_int_equal(kl_classify(KP_OP_WRITE, -ESTALE, &s), KL_V_RETRY_MAP);
	assert_int_equal(kl_classify(KP_OP_READ, -EAGAIN, &s), KL_V_RETRY_BACKOFF);
	assert_int_equal(kl_classify(KP_OP_READ, -EBUSY, &s), KL_V_RETRY_BACKOFF);
	assert_int_equal(kl_classify(KP_OP_WRITE, -ENOSPC, &s), KL_V_FAIL);
	assert_int_equal(s, -ENOSPC);
	assert_int_equal(kl_classify(KP_OP_WRITE, -EPERM, &s), KL_V_FAIL);
	assert_int_equal(s, -EPERM);
	assert_int_equal(kl_classify(KP_OP_READ, -EIO, &s), KL_V_FAIL);
	assert_int_equal(s, -EIO);
	assert_int_equal(kl_classify(KP_OP_READ, -EPROTO, &s), KL_V_FAIL);
	assert_int_equal(s, -EIO);
	assert_int_equal(kl_classify(KP_OP_DISCARD, -ENOENT, &s), KL_V_OK);
	assert_int_equal(kl_backoff_next(0), KL_BACKOFF_MIN_NS);
	assert_int_equal(kl_backoff_next(KL_BACKOFF_MIN_NS), 2 * KL_BACKOFF_MIN_NS);
	assert_int_equal(kl_backoff_next(KL_BACKOFF_MAX_NS), KL_BACKOFF_MAX_NS);
	assert_int_equal(kl_backoff_next(150ull * 1000 * 1000), KL_BACKOFF_MAX_NS);
}

static void test_iov(void **state)
{
	uint8_t m[64], *a = m, *b = m + 32, out[16];
	struct iovec iov[2] = {{a, 10}, {b, 6}};
	struct iovec adj[3] = {{m, 10}, {m + 10, 6}, {m + 16, 4}};

	for (int i = 0; i < 16; i++) {
		out[i] = (uint8_t)i;
	}
	kl_iov_from_buf(iov, 2, 0, out, 16);
	assert_int_equal(a[9], 9);
	assert_int_equal(b[0], 10);
	memset(out, 0, sizeof(out));
	kl_iov_to_buf(iov, 2, 8, out, 5);
	assert_memory_equal(out, "\x08\x09\x0a\x0b\x0c", 5);
	assert_ptr_equal(kl_iov_contig(iov, 2, 2, 8), a + 2);
	assert_null(kl_iov_contig(iov, 2, 8, 4));
	assert_ptr_equal(kl_iov_contig(iov, 2, 11, 5), b + 1);
	/* vectors adjacent in memory are one range */
	assert_ptr_equal(kl_iov_contig(adj, 3, 8, 4), m + 8);
	assert_ptr_equal(kl_iov_contig(adj, 3, 2, 18), m + 2);
	assert_null(kl_iov_contig(adj, 3, 2, 19));
	assert_null(kl_iov_contig(adj, 2, 8, 9));
	assert_int_equal(kl_iov_len(iov, 2), 16);
}

/* ---- fake transport ---- */

#define MAXSENT 256

struct fake_ev {
	struct reactor_defer d;
	struct kl_srv *srv;
	struct kp_msg *m;
	int kind; /* 0 ready, 1 send done, 2 close */
	int err;
};

struct sent_msg {
	struct kl_srv *srv;
	struct kp_msg *m;
	struct kp_hdr h;
	uint8_t *data; /* copy of the payload */
	bool answered;
};

static struct reactor *r;
static struct fake_ev evs[4096];
static unsigned int nev;
static struct sent_msg sent[MAXSENT];
static unsigned int nsent, nconnects, ncloses;
static bool refuse_connect;

static void fake_ev_fn(struct reactor_defer *d)
{
	struct fake_ev *e = container_of(d, struct fake_ev, d);

	switch (e->kind) {
	case 0:
		kl_srv_on_ready(e->srv);
		break;
	case 1:
		e->m->done(e->m, e->err);
		break;
	case 2:
		kl_srv_on_close(e->srv, e->err, "fake close");
		break;
	}
}

static void fake_event(int kind, struct kl_srv *s, struct kp_msg *m, int err)
{
	struct fake_ev *e = &evs[nev++ % 4096];

	e->kind = kind;
	e->srv = s;
	e->m = m;
	e->err = err;
	e->d.fn = fake_ev_fn;
	reactor_defer(r, &e->d);
}

static int fake_connect(struct kl_srv *s)
{
	nconnects++;
	if (refuse_connect) {
		return -ECONNREFUSED;
	}
	s->conn = s;
	fake_event(0, s, NULL, 0);
	return 0;
}

static int fake_send(struct kl_srv *s, struct kp_msg *m)
{
	struct sent_msg *x = &sent[nsent++ % MAXSENT];

	free(x->data);
	x->srv = s;
	x->m = m;
	x->h = m->hdr;
	x->answered = false;
	x->data = NULL;
	if (m->hdr.data_len) {
		x->data = malloc(m->hdr.data_len);
		memcpy(x->data, m->data, m->hdr.data_len);
		assert_true(kp_data_verify(m->data, m->hdr.data_len, m->crcs));
	}
	fake_event(1, s, m, 0);
	return 0;
}

static void fake_close(struct kl_srv *s, int err, const char *why)
{
	ncloses++;
	fake_event(2, s, NULL, err);
}

static const struct kl_net_ops fake_net = {
	.connect = fake_connect,
	.send = fake_send,
	.close = fake_close,
};

static void pump_ms(unsigned int ms)
{
	uint64_t until = reactor_now_ns() + (uint64_t)ms * 1000000;

	do {
		/* Several turns: deferred calls queued by a turn run on the next. */
		for (int i = 0; i < 4; i++) {
			reactor_poll(r, false);
		}
		usleep(200);
	} while (reactor_now_ns() < until);
}

/* Pump until @n messages were sent (a resend after a backoff timer), for
 * at most a second: a loaded machine may run the timer late. */
static void pump_until_sent(unsigned int n)
{
	uint64_t until = reactor_now_ns() + 1000ull * 1000000;

	while (nsent < n && reactor_now_ns() < until) {
		pump_ms(1);
	}
}

/* Reply to sent message @i with @status (and read data for READ). */
static void reply(unsigned int i, int status, const uint8_t *data)
{
	struct sent_msg *x = &sent[i % MAXSENT];
	struct kp_hdr h = {0};
	uint32_t crcs[KP_MAX_DATA / KP_BLOCK];

	assert_false(x->answered);
	x->answered = true;
	h.flags = KP_F_REPLY;
	h.opcode = x->h.opcode;
	h.req_id = x->h.req_id;
	h.status = status;
	if (!status && x->h.opcode == KP_OP_READ) {
		h.data_len = x->h.length;
		crc32c_blocks(data, h.data_len, crcs);
	}
	kl_srv_on_msg(x->srv, &h, h.data_len ? data : NULL, h.data_len ? crcs : NULL);
}

struct io_result {
	int calls, res;
};

static void io_cb(void *arg, int res)
{
	struct io_result *ir = arg;

	ir->calls++;
	ir->res = res;
}

struct fixture {
	struct keel_cluster *c;
	struct keel_volume *v;
};

static int setup(void **state)
{
	static struct fixture f;
	struct keel_cluster_opts o = {.io_timeout_ms = 40};
	struct keel_volume_info vi = {.id = 77, .inode = 77ull << 16, .size = 64ull << 20,
				      .object_size = OBJ_SIZE, .pool = POOL};
	int ret;

	ret = reactor_create(256, &r);
	if (ret) {
		return ret;
	}
	nsent = nconnects = ncloses = 0;
	refuse_connect = false;
	assert_int_equal(kl_cluster_create(r, &o, &fake_net, &f.c), 0);
	assert_int_equal(kl_volume_create(f.c, &vi, &f.v), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bool freed = false;

	f->c->freed_flag = &freed;
	keel_volume_close(f->v);
	keel_cluster_close(f->c);
	for (int i = 0; i < 2000 && !freed; i++) {
		pump_ms(1);
	}
	assert_true(freed);
	reactor_destroy(r);
	for (unsigned int i = 0; i < MAXSENT; i++) {
		free(sent[i].data);
		sent[i].data = NULL;
	}
	return 0;
}

static void test_write_split_bounce_crc(void **state)
{
	struct fixture *f = *state;
	static uint8_t a[12288], b[36864];
	struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
	struct io_result ir = {0};
	uint64_t inode = f->v->info.inode;

	for (size_t i = 0; i < sizeof(a); i++) {
		a[i] = (uint8_t)(i * 7);
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		b[i] = (uint8_t)(i * 13 + 1);
	}
	kl_cluster_set_map(f->c, make_map(10, 1, NPG, 0));
	/* 48 KiB at 40 KiB: object 0 [40K, 64K) and object 1 [0, 24K); the
	 * first piece spans both iovecs (bounce), the second lies in b. */
	assert_int_equal(keel_writev(f->v, iov, 2, 40960, io_cb, &ir), 0);
	pump_ms(2);
	assert_int_equal(nsent, 2);
	assert_int_equal(sent[0].h.objno, 0);
	assert_int_equal(sent[0].h.offset, 40960);
	assert_int_equal(sent[0].h.length, 24576);
	assert_int_equal(sent[1].h.objno, 1);
	assert_int_equal(sent[1].h.offset, 0);
	assert_int_equal(sent[1].h.length, 24576);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sent[i].h.epoch, 10);
		assert_int_equal(sent[i].h.inode, inode);
		assert_int_equal(sent[i].h.pgid,
				 KP_PGID(POOL, cmap_object_pg(inode, sent[i].h.objno, NPG)));
		assert_ptr_equal(sent[i].srv, f->c->srv_by_id[1]);
	}
	assert_memory_equal(sent[0].data, a, sizeof(a));
	assert_memory_equal(sent[0].data + sizeof(a), b, 24576 - sizeof(a));
	assert_memory_equal(sent[1].data, b + (24576 - sizeof(a)), 24576);
	reply(0, KP_S_OK, NULL);
	assert_int_equal(ir.calls, 0);
	reply(1, KP_S_OK, NULL);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, 0);
	assert_int_equal(nconnects, 1);
}

static void test_read_copies_and_checks(void **state)
{
	struct fixture *f = *state;
	static uint8_t data[8192], out[8192];
	struct iovec iov = {out, sizeof(out)};
	struct io_result ir = {0};

	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)(i ^ 0x5a);
	}
	kl_cluster_set_map(f->c, make_map(10, 2, NPG, 0));
	assert_int_equal(keel_readv(f->v, &iov, 1, OBJ_SIZE * 3, io_cb, &ir), 0);
	pump_ms(2);
	assert_int_equal(nsent, 1);
	assert_int_equal(sent[0].h.opcode, KP_OP_READ);
	assert_int_equal(sent[0].h.objno, 3);
	reply(0, KP_S_OK, data);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, 0);
	assert_memory_equal(out, data, sizeof(data));
}

static void test_stale_epoch_new_primary(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[4096];
	struct iovec iov = {buf, sizeof(buf)};
	struct io_result ir = {0};
	struct keel_volume_stats st;

	kl_cluster_set_map(f->c, make_map(10, 1, NPG, 0));
	assert_int_equal(keel_writev(f->v, &iov, 1, 0, io_cb, &ir), 0);
	pump_ms(2);
	assert_int_equal(nsent, 1);
	reply(0, KP_S_ESTALE, NULL);
	pump_ms(2);
	/* Parked: the backoff resends to the same primary at the same epoch. */
	pump_until_sent(2);
	assert_true(nsent >= 2);
	assert_int_equal(sent[1].h.epoch, 10);
	reply(1, KP_S_ESTALE, NULL);
	/* A newer map moves the primary: the request follows at once. */
	kl_cluster_set_map(f->c, make_map(11, 3, NPG, 0));
	pump_ms(2);
	assert_int_equal(sent[nsent - 1].h.epoch, 11);
	assert_ptr_equal(sent[nsent - 1].srv, f->c->srv_by_id[3]);
	assert_int_equal(ir.calls, 0);
	reply(nsent - 1, KP_S_OK, NULL);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, 0);
	keel_volume_stats(f->v, &st);
	assert_int_equal(st.stale_epochs, 2);
	assert_true(st.retries >= 2);
	assert_true(st.max_stall_ns >= 5ull * 1000 * 1000);
	/* An older map is ignored. */
	assert_false(kl_cluster_set_map(f->c, make_map(9, 1, NPG, 0)));
	assert_int_equal(keel_cluster_epoch(f->c), 11);
}

static void test_inactive_pg_waits_for_map(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[4096];
	struct iovec iov = {buf, sizeof(buf)};
	struct io_result ir = {0};
	uint64_t inode = f->v->info.inode;
	uint32_t pg = cmap_object_pg(inode, 5, NPG);

	kl_cluster_set_map(f->c, make_map(20, 1, pg, 0));
	assert_int_equal(keel_writev(f->v, &iov, 1, 5ull * OBJ_SIZE, io_cb, &ir), 0);
	pump_ms(30);
	assert_int_equal(nsent, 0); /* nothing to send to */
	assert_int_equal(ir.calls, 0);
	kl_cluster_set_map(f->c, make_map(21, 1, pg, 2));
	pump_ms(2);
	assert_int_equal(nsent, 1);
	assert_ptr_equal(sent[0].srv, f->c->srv_by_id[2]);
	reply(0, KP_S_OK, NULL);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, 0);
}

static void test_conn_loss_and_timeout(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[4096];
	struct iovec iov = {buf, sizeof(buf)};
	struct io_result ir = {0};
	struct keel_volume_stats st;
	unsigned int n;

	kl_cluster_set_map(f->c, make_map(30, 1, NPG, 0));
	assert_int_equal(keel_writev(f->v, &iov, 1, 0, io_cb, &ir), 0);
	pump_ms(2);
	assert_int_equal(nsent, 1);
	/* The connection dies: the write is resent on a new connection. */
	kl_srv_close(f->c->srv_by_id[1], -ECONNRESET, "test");
	pump_ms(25);
	assert_int_equal(nsent, 2);
	assert_int_equal(nconnects, 2);
	assert_int_equal(sent[1].h.req_id & 0xffff, sent[0].h.req_id & 0xffff);
	assert_true(sent[1].h.req_id != sent[0].h.req_id);
	/* No reply within io_timeout (40 ms): the conn is closed, retried. */
	pump_ms(150);
	assert_true(ncloses >= 2);
	assert_true(nsent >= 3);
	assert_int_equal(ir.calls, 0);
	/* Answer a fresh attempt (an older one's conn may be closing). */
	n = nsent;
	for (int i = 0; i < 500 && nsent == n; i++) {
		pump_ms(1);
	}
	assert_int_equal(nsent, n + 1);
	reply(nsent - 1, KP_S_OK, NULL);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, 0);
	keel_volume_stats(f->v, &st);
	assert_true(st.reconnects >= 2);
	assert_true(st.max_stall_ns >= 40ull * 1000 * 1000);
}

/* full_policy wait (the map's default): ENOSPC (a full pool) is retried
 * until the write goes. */
static void test_enospc_waits(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[4096];
	struct iovec iov = {buf, sizeof(buf)};
	struct io_result ir = {0};
	struct keel_volume_stats st;

	kl_cluster_set_map(f->c, make_map(40, 1, NPG, 0));
	assert_int_equal(keel_writev(f->v, &iov, 1, 0, io_cb, &ir), 0);
	pump_ms(2);
	reply(0, KP_S_ENOSPC, NULL);
	pump_until_sent(2);
	assert_int_equal(ir.calls, 0);
	reply(1, KP_S_ENOSPC, NULL);
	pump_until_sent(3);
	assert_int_equal(ir.calls, 0);
	reply(2, KP_S_OK, NULL);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, 0);
	keel_volume_stats(f->v, &st);
	assert_int_equal(st.full_waits, 2);
}

static void test_busy_then_permanent(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[4096];
	struct iovec iov = {buf, sizeof(buf)};
	struct io_result ir = {0}, ir2 = {0};
	struct cmap *m = make_map(40, 1, NPG, 0);

	m->full_fail = true; /* full_policy fail: ENOSPC is final */
	kl_cluster_set_map(f->c, m);
	assert_int_equal(keel_writev(f->v, &iov, 1, 0, io_cb, &ir), 0);
	pump_ms(2);
	reply(0, KP_S_EBUSY, NULL);
	pump_until_sent(2);
	assert_int_equal(nsent, 2);
	reply(1, KP_S_EAGAIN, NULL);
	pump_until_sent(3);
	assert_int_equal(nsent, 3);
	reply(2, KP_S_ENOSPC, NULL);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, -ENOSPC);
	assert_int_equal(keel_readv(f->v, &iov, 1, 4096, io_cb, &ir2), 0);
	pump_ms(2);
	reply(3, KP_S_EIO, NULL);
	assert_int_equal(ir2.res, -EIO);
	/* Bad requests never reach the wire. */
	assert_int_equal(keel_writev(f->v, &iov, 1, 100, io_cb, &ir), -EINVAL);
	assert_int_equal(keel_writev(f->v, &iov, 1, 64ull << 20, io_cb, &ir), -ERANGE);
}

static void test_flush_and_cancel(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[4096];
	struct iovec iov = {buf, sizeof(buf)};
	struct io_result ir = {0}, fl = {0};
	uint64_t inode = f->v->info.inode;
	uint32_t pg = cmap_object_pg(inode, 0, NPG);

	/* Flush with no connection: completes later, not inline. */
	assert_int_equal(keel_flush(f->v, io_cb, &fl), 0);
	assert_int_equal(fl.calls, 0);
	pump_ms(1);
	assert_int_equal(fl.calls, 1);
	assert_int_equal(fl.res, 0);
	kl_cluster_set_map(f->c, make_map(50, 2, NPG, 0));
	assert_int_equal(keel_writev(f->v, &iov, 1, 0, io_cb, &ir), 0);
	pump_ms(2);
	reply(0, KP_S_OK, NULL);
	memset(&fl, 0, sizeof(fl));
	assert_int_equal(keel_flush(f->v, io_cb, &fl), 0);
	pump_ms(2);
	assert_int_equal(nsent, 2);
	assert_int_equal(sent[1].h.opcode, KP_OP_SYNC);
	reply(1, KP_S_OK, NULL);
	assert_int_equal(fl.res, 0);
	assert_int_equal(fl.calls, 1);
	/* A request parked on an inactive PG is cancelled by close. */
	kl_cluster_set_map(f->c, make_map(51, 2, pg, 0));
	memset(&ir, 0, sizeof(ir));
	assert_int_equal(keel_writev(f->v, &iov, 1, 0, io_cb, &ir), 0);
	pump_ms(10);
	keel_volume_close(f->v);
	assert_int_equal(ir.calls, 1);
	assert_int_equal(ir.res, -ECANCELED);
	f->v = NULL;
}

static int teardown_nov(void **state)
{
	struct fixture *f = *state;

	if (!f->v) {
		struct keel_volume_info vi = {.id = 1, .inode = 1ull << 16, .size = 1 << 20,
					      .object_size = OBJ_SIZE, .pool = POOL};

		assert_int_equal(kl_volume_create(f->c, &vi, &f->v), 0);
	}
	return teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_property),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_classify_backoff),
		cmocka_unit_test(test_iov),
		cmocka_unit_test_setup_teardown(test_write_split_bounce_crc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_copies_and_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_epoch_new_primary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inactive_pg_waits_for_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_loss_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_then_permanent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_and_cancel, setup, teardown_nov),
	};

	klog_set_level(KLOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
