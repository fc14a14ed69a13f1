/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-server connections: accept, authenticate (kp_conn), request slots,
 * replies, refcounted teardown and graceful drain. Opcode handlers live in
 * srv_ops.c.
 */
#include "server/srv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static void srv_conn_put(struct srv_conn *c)
{
	struct srv *s = c->srv;

	kassert(c->refs > 0);
	if (--c->refs) {
		return;
	}
	kassert(!c->kc && !c->in_use);
	if (c->prev) {
		c->prev->next = c->next;
	} else {
		s->conns = c->next;
	}
	if (c->next) {
		c->next->prev = c->prev;
	}
	if (c->counted) {
		s->nconns--;
	}
	free(c);
	if (s->stopping && !s->conns) {
		log_info("all connections closed");
		reactor_stop(s->r);
	}
}

/* ---- request slots ---- */

static struct srv_req *srv_req_get(struct srv_conn *c)
{
	struct srv_req *req = c->free_reqs;

	if (!req) {
		return NULL;
	}
	c->free_reqs = req->next_free;
	c->in_use++;
	c->refs++;
	return req;
}

static void srv_req_put(struct srv_req *req)
{
	struct srv_conn *c = req->conn;

	if (req->buf) {
		bufpool_put(req->pool, req->buf);
		req->buf = NULL;
		req->pool = NULL;
	}
	req->state = SRV_REQ_FREE;
	req->next_free = c->free_reqs;
	c->free_reqs = req;
	c->in_use--;
	srv_conn_put(c);
}

int srv_req_get_buf(struct srv_req *req, uint32_t len)
{
	struct srv *s = req->conn->srv;
	struct bufpool *p = len <= SRV_SMALL_BUF ? s->small : s->large;

	kassert(!req->buf && len <= SRV_LARGE_BUF);
	req->buf = bufpool_get(p);
	if (!req->buf) {
		s->ctr.busy_rejects++;
		return -EBUSY;
	}
	req->pool = p;
	return 0;
}

static void srv_reply_done(struct kp_msg *m, int res)
{
	struct srv_req *req = container_of(m, struct srv_req, reply);

	srv_req_put(req);
}

void srv_req_finish(struct srv_req *req, int res)
{
	struct srv_conn *c = req->conn;
	struct srv *s = c->srv;
	struct kp_msg *m = &req->reply;
	uint16_t op = req->hdr.opcode;
	int ret;

	if (req->state == SRV_REQ_BS) {
		kassert(s->bs_inflight > 0);
		s->bs_inflight--;
	}
	if (res) {
		s->ctr.errors[op]++;
		log_debug("%s %s inode %llu objno %llu off %u len %u: %s", c->peer,
			  kp_opcode_name(op), (unsigned long long)req->hdr.inode,
			  (unsigned long long)req->hdr.objno, req->hdr.offset, req->hdr.length,
			  strerror(-res));
	} else if (op == KP_OP_READ) {
		s->ctr.bytes_read += req->hdr.length;
	} else if (op == KP_OP_WRITE) {
		s->ctr.bytes_written += req->hdr.length;
	}
	if (c->internal_done) {
		c->internal_done(req, res);
		return;
	}
	if (!c->kc) {
		/* The peer is gone: nobody to answer. */
		srv_req_put(req);
		return;
	}
	m->hdr.version = KP_VERSION;
	m->hdr.opcode = op;
	m->hdr.flags = KP_F_REPLY;
	m->hdr.status = kp_status_from_errno(res);
	m->hdr.req_id = req->hdr.req_id;
	m->hdr.epoch = req->hdr.epoch;
	m->hdr.inode = req->hdr.inode;
	m->hdr.objno = req->hdr.objno;
	m->hdr.gen = req->hdr.gen;
	m->hdr.offset = req->hdr.offset;
	m->hdr.length = req->hdr.length;
	if (res) {
		m->hdr.meta_len = 0;
		m->hdr.data_len = 0;
		m->meta = NULL;
		m->data = NULL;
		m->crcs = NULL;
	}
	m->done = srv_reply_done;
	m->arg = req;
	req->state = SRV_REQ_REPLYING;
	ret = kp_conn_send(c->kc, m);
	if (ret) {
		if (ret != -ENOTCONN) {
			log_error("%s: cannot send %s reply: %s", c->peer, kp_opcode_name(op),
				  strerror(-ret));
		}
		srv_req_put(req);
	}
}

/* ---- rejects: header-only EBUSY replies when every slot is busy ---- */

static void srv_reject_done(struct kp_msg *m, int res)
{
	struct srv_conn *c = m->arg;
	unsigned int i = (unsigned int)(m - c->rejects);

	c->reject_busy &= ~(1u << i);
	srv_conn_put(c);
}

static void srv_reject(struct srv_conn *c, const struct kp_hdr *h, int err)
{
	struct kp_msg *m;
	unsigned int i;

	c->srv->ctr.busy_rejects++;
	for (i = 0; i < SRV_REJECT_SLOTS; i++) {
		if (!(c->reject_busy & (1u << i))) {
			break;
		}
	}
	if (i == SRV_REJECT_SLOTS) {
		kp_conn_close(c->kc, -EBUSY, "queue depth exceeded");
		return;
	}
	m = &c->rejects[i];
	memset(&m->hdr, 0, sizeof(m->hdr));
	m->hdr.version = KP_VERSION;
	m->hdr.opcode = h->opcode;
	m->hdr.flags = KP_F_REPLY;
	m->hdr.status = kp_status_from_errno(err);
	m->hdr.req_id = h->req_id;
	m->hdr.epoch = h->epoch;
	m->hdr.inode = h->inode;
	m->hdr.objno = h->objno;
	m->hdr.offset = h->offset;
	m->hdr.length = h->length;
	m->meta = NULL;
	m->data = NULL;
	m->crcs = NULL;
	m->done = srv_reject_done;
	m->arg = c;
	c->reject_busy |= 1u << i;
	c->refs++;
	if (kp_conn_send(c->kc, m)) {
		c->reject_busy &= ~(1u << i);
		c->refs--;
	}
}

/* ---- kp_conn callbacks ---- */

static void srv_on_ready(struct kp_conn *kc)
{
	struct srv_conn *c = kp_conn_arg(kc);

	/* kp_conn logs the authenticated client's name. */
	if (c) {
		log_debug("%s: ready", c->peer);
	}
}

static void srv_on_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
		       const uint8_t *data, const uint32_t *crcs)
{
	struct srv_conn *c = kp_conn_arg(kc);
	struct srv_req *req;

	if (!c) {
		return;
	}
	if (h->flags & KP_F_REPLY) {
		kp_conn_close(kc, -EPROTO, "reply frame sent to the server");
		return;
	}
	c->requests++;
	req = srv_req_get(c);
	if (!req) {
		srv_reject(c, h, -EBUSY);
		return;
	}
	req->hdr = *h;
	memset(&req->reply, 0, sizeof(req->reply));
	if (c->srv->stopping) {
		srv_req_finish(req, -EAGAIN);
		return;
	}
	srv_dispatch(req, meta, data, crcs);
}

static void srv_on_close(struct kp_conn *kc, int err, const char *reason)
{
	struct srv_conn *c = kp_conn_arg(kc);

	if (!c) {
		return;
	}
	/* kp_conn has logged the reason (once); add what only we know. */
	c->srv->ctr.conns_closed++;
	if (c->in_use) {
		log_info("%s: %u requests still in flight, their replies will be dropped", c->peer,
			 c->in_use);
	}
	log_debug("%s: closed after %llu requests", c->peer, (unsigned long long)c->requests);
	c->kc = NULL;
	srv_conn_put(c);
}

static const struct kp_conn_cbs srv_conn_cbs = {
	.on_ready = srv_on_ready,
	.on_msg = srv_on_msg,
	.on_close = srv_on_close,
};

static void srv_refused_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
			    const uint8_t *data, const uint32_t *crcs)
{
}

static void srv_refused_close(struct kp_conn *kc, int err, const char *reason)
{
}

/* A refused connection is closed at once; its callbacks do nothing. */
static const struct kp_conn_cbs srv_refused_cbs = {
	.on_msg = srv_refused_msg,
	.on_close = srv_refused_close,
};

static void srv_on_accept(struct xport_listener *l, struct xport_conn *xc, void *arg)
{
	struct srv *s = arg;
	struct srv_conn *c;
	struct kp_conn *kc;
	int ret;

	if (s->stopping || s->nconns >= s->max_connections) {
		s->ctr.conns_refused++;
		log_warn("%s: connection refused: %s", xc->ops->peer(xc),
			 s->stopping ? "server shutting down" : "max_connections reached");
		if (!kp_conn_server(xc, s->key, &srv_refused_cbs, NULL, &kc)) {
			kp_conn_close(kc, 0, "connection refused");
		} else {
			xc->ops->close(xc, -EBUSY);
		}
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("%s: out of memory for a connection", xc->ops->peer(xc));
		xc->ops->close(xc, -ENOMEM);
		return;
	}
	c->srv = s;
	snprintf(c->peer, sizeof(c->peer), "%s", xc->ops->peer(xc));
	for (int i = SRV_QUEUE_DEPTH - 1; i >= 0; i--) {
		c->reqs[i].conn = c;
		c->reqs[i].next_free = c->free_reqs;
		c->free_reqs = &c->reqs[i];
	}
	ret = kp_conn_server(xc, s->key, &srv_conn_cbs, c, &kc);
	if (ret) {
		log_error("%s: cannot start connection: %s", c->peer, strerror(-ret));
		free(c);
		xc->ops->close(xc, ret);
		return;
	}
	c->kc = kc;
	kp_conn_set_fault(kc, s->fault);
	c->refs = 1;
	c->counted = true;
	s->nconns++;
	s->ctr.conns_accepted++;
	c->next = s->conns;
	if (s->conns) {
		s->conns->prev = c;
	}
	s->conns = c;
	log_info("%s: connection accepted (%u open)", c->peer, s->nconns);
}

#define SRV_AUTH_TICK_NS (100ull * 1000 * 1000)

/* Requests in flight longer than slow_ns are logged once each (with what
 * they wait for): the first thing to look at when I/O stalls. */
static void srv_check_slow(struct srv *s, struct srv_conn *c, uint64_t now)
{
	char what[160];

	for (unsigned int i = 0; i < SRV_QUEUE_DEPTH; i++) {
		struct srv_req *req = &c->reqs[i];

		if (req->state != SRV_REQ_BS && req->state != SRV_REQ_CLUSTER) {
			continue;
		}
		if (req->slow_logged || now - req->start_ns < s->slow_ns) {
			continue;
		}
		req->slow_logged = true;
		s->slow_requests++;
		if (req->state == SRV_REQ_CLUSTER) {
			srv_repl_describe(req, what, sizeof(what));
		} else {
			snprintf(what, sizeof(what), "in the blockstore");
		}
		log_warn("slow request: %s %s %llu:%llu off %u len %u in flight %.1f s: %s",
			 c->peer, kp_opcode_name(req->hdr.opcode),
			 (unsigned long long)req->hdr.inode, (unsigned long long)req->hdr.objno,
			 req->hdr.offset, req->hdr.length, (double)(now - req->start_ns) / 1e9,
			 what);
	}
}

/*
 * Housekeeping every 100 ms. A peer that connects and never finishes the
 * handshake would hold a connection slot forever (max_connections is the
 * only bound): close it. The blockstore's held in-place applies that have
 * waited long enough (bs_tick). Every second: slow requests.
 */
static void srv_auth_tick(struct reactor_timer *t)
{
	struct srv *s = container_of(t, struct srv, auth_timer);
	uint64_t now = reactor_now_ns();
	bool slow = s->slow_ns && ++s->ticks % 10 == 0;
	struct srv_conn *c, *next;

	if (s->stopping) {
		return;
	}
	bs_tick(s->bs);
	for (c = s->conns; c; c = c->next) {
		c->refs++;
	}
	for (c = s->conns; c; c = c->next) {
		if (c->kc) {
			kp_conn_check_auth_timeout(c->kc, now, s->auth_timeout_ns);
		}
		if (slow) {
			srv_check_slow(s, c, now);
		}
	}
	for (c = s->conns; c; c = next) {
		next = c->next;
		srv_conn_put(c);
	}
	reactor_timer_start(s->r, t, SRV_AUTH_TICK_NS, srv_auth_tick);
}

int srv_start(struct srv *s, struct reactor *r, struct bs *bs, const struct kp_key *key,
	      const struct xport_ops *xops, const char *addr, uint32_t max_connections,
	      uint32_t auth_timeout_ms)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->small_buf = s->large_buf = -1;
	s->r = r;
	s->bs = bs;
	s->key = key;
	s->xops = xops;
	s->max_connections = max_connections;
	s->auth_timeout_ns = (uint64_t)auth_timeout_ms * 1000 * 1000;
	s->started_ns = reactor_now_ns();
	ret = bufpool_create(SRV_SMALL_BUF, SRV_SMALL_BUFS, &s->small);
	if (ret) {
		log_error("cannot allocate %u x %u KiB buffers: %s", SRV_SMALL_BUFS,
			  SRV_SMALL_BUF / 1024, strerror(-ret));
		return ret;
	}
	ret = bufpool_create(SRV_LARGE_BUF, SRV_LARGE_BUFS, &s->large);
	if (ret) {
		log_error("cannot allocate %u x %u KiB buffers: %s", SRV_LARGE_BUFS,
			  SRV_LARGE_BUF / 1024, strerror(-ret));
		goto out_destroy_small;
	}
	/* Read replies and replica writes go from these buffers: with RDMA the
	 * peer reads them in place. Reads from the drive go into them:
	 * registered with io_uring, their pages are pinned once. Both optional. */
	bufpool_zero_copy(s->small);
	bufpool_zero_copy(s->large);
	s->small_buf = bufpool_register(s->small, r);
	s->large_buf = bufpool_register(s->large, r);
	ret = s->xops->listen(r, addr, &s->listener);
	if (ret) {
		log_error("cannot listen on %s: %s", addr, strerror(-ret));
		goto out_destroy_large;
	}
	ret = s->xops->accept_start(s->listener, srv_on_accept, s);
	if (ret) {
		log_error("cannot accept on %s: %s", addr, strerror(-ret));
		goto out_close_listener;
	}
	reactor_timer_start(r, &s->auth_timer, SRV_AUTH_TICK_NS, srv_auth_tick);
	/* The bound address, with the port the kernel chose for port 0: tests
	 * read it from this line. */
	log_info("listening on %s (%s), queue depth %u per connection, max %u connections",
		 s->xops->listen_addr ? s->xops->listen_addr(s->listener) : addr, s->xops->name,
		 SRV_QUEUE_DEPTH, max_connections);
	return 0;

out_close_listener:
	s->xops->listen_close(s->listener);
	s->listener = NULL;
out_destroy_large:
	reactor_buf_remove(r, s->small_buf);
	reactor_buf_remove(r, s->large_buf);
	bufpool_destroy(s->large);
	s->large = NULL;
out_destroy_small:
	bufpool_destroy(s->small);
	s->small = NULL;
	return ret;
}

static void srv_close_all(struct srv *s)
{
	struct srv_conn *c, *next;

	srv_cluster_stop(s);
	if (!s->conns) {
		reactor_stop(s->r);
		return;
	}
	/* Closing may free a conn (its last reference): hold one each. */
	for (c = s->conns; c; c = c->next) {
		c->refs++;
	}
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (c->kc) {
			kp_conn_close(c->kc, 0, "server shutting down");
		}
	}
	for (c = s->conns; c; c = next) {
		next = c->next;
		srv_conn_put(c);
	}
}

static void srv_drain_tick(struct reactor_timer *t)
{
	struct srv *s = container_of(t, struct srv, drain_timer);

	if ((s->bs_inflight || (s->cl && s->cl->client_inflight)) &&
	    reactor_now_ns() < s->drain_deadline) {
		reactor_timer_start(s->r, t, 10 * 1000 * 1000, srv_drain_tick);
		return;
	}
	if (s->bs_inflight) {
		log_warn("drain timed out with %u blockstore requests in flight", s->bs_inflight);
	} else {
		log_info("drained: no requests in flight");
	}
	srv_close_all(s);
}

void srv_shutdown(struct srv *s)
{
	if (s->stopping) {
		return;
	}
	s->stopping = true;
	log_info("shutting down: stop accepting, draining %u requests on %u connections",
		 s->bs_inflight, s->nconns);
	if (s->listener) {
		s->xops->listen_close(s->listener);
		s->listener = NULL;
	}
	s->drain_deadline = reactor_now_ns() + SRV_DRAIN_TIMEOUT_NS;
	reactor_timer_start(s->r, &s->drain_timer, 0, srv_drain_tick);
}

void srv_destroy(struct srv *s)
{
	if (s->listener) {
		s->xops->listen_close(s->listener);
		s->listener = NULL;
	}
	reactor_buf_remove(s->r, s->small_buf);
	reactor_buf_remove(s->r, s->large_buf);
	bufpool_destroy(s->large);
	bufpool_destroy(s->small);
	s->large = NULL;
	s->small = NULL;
}
