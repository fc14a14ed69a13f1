/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RDMA transport: librdmacm connection setup, one RC queue pair per
 * connection, the message logic in xrdma_core.c. docs/rdma.md explains the
 * design; this file only does verbs, rdma_cm and the reactor.
 *
 * Completions: the CQ is polled on the reactor (a deferred call after every
 * post and completion); when a poll finds nothing the CQ is armed and its
 * completion channel fd waits in an io_uring POLL_ADD, so an idle
 * connection costs no CPU. rdma_cm events (disconnect, establishment of an
 * accepted connection) come through a per-connection event channel, polled
 * the same way.
 */
#include "xport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xrdma_core.h"

#define XR_BACKLOG     128
#define XR_ADDR_LEN    (INET6_ADDRSTRLEN + 8)
#define XR_WC_BATCH    32
#define XR_RESOLVE_MS  500
#define XR_WR_RECV     1ull
#define XR_WR_SEND     2ull
#define XR_WR_READ     3ull
#define XR_WR_ID(t, s) ((t) << 32 | (s))
#define XR_MR_CACHE    32

/* A registered region (xport_mem_register) this connection's peer may read:
 * registered with the connection's PD the first time it is sent from. */
struct xr_mr {
	struct xport_mem_region reg; /* reg.id 0: free entry */
	struct ibv_mr *mr;	     /* NULL: registration failed, send by copy */
};

enum xr_conn_state {
	RC_IDLE,    /* connected or accepting, not yet started */
	RC_OPEN,    /* started */
	RC_CLOSING, /* close() called: waiting for flushed work requests */
	RC_CLOSED,  /* finish queued */
};

struct xr_listener;

struct xr_conn {
	struct xport_conn base;
	enum xr_conn_state state;
	struct rdma_cm_id *id;
	struct rdma_event_channel *ech;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cch;
	struct ibv_cq *cq;
	struct ibv_mr *mr_rx_slots, *mr_tx_slots, *mr_big, *mr_rx_buf;
	struct xr_mr mrs[XR_MR_CACHE]; /* zero-copy regions */
	uint64_t mem_gen;	       /* xport_mem_gen() the cache was checked at */
	/* On its reactor thread's list (xr_thread_conns) once handed over. */
	struct xr_conn *tnext, **tprev;
	struct xrdma_core k;
	const struct xport_conn_cbs *cbs;
	unsigned int outstanding; /* posted work requests not completed */
	unsigned int refs;	  /* poll SQEs and deferred calls in flight */
	bool established;	  /* accepted side: ESTABLISHED seen */
	bool peer_gone;		  /* gone before start(): close once started */
	int gone_err;		  /* peer_gone: close with this (0: like EOF) */
	bool cq_poll_armed, cm_poll_armed, cq_deferred, notify_armed;
	int close_err;
	/* An injected delay (xport_send.delay_ms) holds the stream output
	 * until tx_hold_until_ns; the armed timer owns a reference. */
	uint64_t tx_hold_until_ns;
	struct reactor_timer tx_hold;
	struct xr_listener *listener; /* accepted: until handed to the owner */
	struct xr_conn *pending_next; /* the listener's pending list */
	struct reactor_msg accept_msg;
	struct reactor_op cq_op, cm_op, cancel_cq_op, cancel_cm_op;
	struct reactor_defer cq_defer, close_defer;
	char peer[XR_ADDR_LEN];
};

/*
 * rdma_cm needs the passive side to call rdma_accept() from user space,
 * and xport connects block their reactor (bounded): two servers connecting
 * to each other at once would each wait for the other's reactor. So
 * connection requests are accepted on a thread of the listener's own (the
 * kernel's listen backlog, in TCP terms), and each established connection is
 * handed to the reactor with reactor_post().
 */
struct xr_listener {
	struct xport_listener base;
	struct rdma_event_channel *ech;
	struct rdma_cm_id *id;
	pthread_t thread;
	bool thread_started;
	int stop_fd;		 /* eventfd: stops the accept thread */
	unsigned int refs;	 /* atomic: the owner's + connections posted, not yet received */
	bool closing;		 /* reactor thread */
	struct xr_conn *pending; /* accept thread: accepted, not yet established */
	void (*cb)(struct xport_listener *l, struct xport_conn *c, void *arg);
	void *arg;
	char addr[XR_ADDR_LEN];
};

static struct xport_stats xr_stats;
/* The connections of the reactor running on this thread: an unregister
 * made on that thread drops their registrations at once (xr_mem_changed()),
 * other threads' on their next turn. */
static __thread struct xr_conn *xr_thread_conns;
static void xr_close(struct xport_conn *xc, int err);
static void xr_cq_kick(struct xr_conn *c);
static void xr_cm_arm(struct xr_conn *c);

static struct xr_conn *xr_conn(const struct xport_conn *xc)
{
	return container_of(xc, struct xr_conn, base);
}

static int xr_set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		return -errno;
	}
	return 0;
}

/* --- the verbs the core asks for --- */

static int xr_post_recv(struct xrdma_core *k, uint32_t slot)
{
	struct xr_conn *c = k->ctx;
	struct ibv_sge sge = {
		.addr = (uintptr_t)(k->rx_slots + (size_t)slot * k->g.slot_size),
		.length = k->g.slot_size,
		.lkey = c->mr_rx_slots->lkey,
	};
	struct ibv_recv_wr wr = {.wr_id = XR_WR_ID(XR_WR_RECV, slot),
				 .sg_list = &sge,
				 .num_sge = 1},
			   *bad;
	int ret = ibv_post_recv(c->id->qp, &wr, &bad);

	if (ret) {
		return -ret;
	}
	c->outstanding++;
	return 0;
}

static int xr_post_send(struct xrdma_core *k, uint32_t slot, uint32_t len)
{
	struct xr_conn *c = k->ctx;
	struct ibv_sge sge = {
		.addr = (uintptr_t)(k->tx_slots + (size_t)slot * k->g.slot_size),
		.length = len,
		.lkey = c->mr_tx_slots->lkey,
	};
	struct ibv_send_wr wr = {.wr_id = XR_WR_ID(XR_WR_SEND, slot),
				 .sg_list = &sge,
				 .num_sge = 1,
				 .opcode = IBV_WR_SEND,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad;
	int ret = ibv_post_send(c->id->qp, &wr, &bad);

	if (ret) {
		return -ret;
	}
	c->outstanding++;
	__atomic_fetch_add(&xr_stats.msgs_out, 1, __ATOMIC_RELAXED);
	return 0;
}

static int xr_post_read(struct xrdma_core *k, uint64_t raddr, uint32_t rkey, uint32_t len,
			size_t rx_off)
{
	struct xr_conn *c = k->ctx;
	struct ibv_sge sge = {
		.addr = (uintptr_t)(k->rx_buf + rx_off),
		.length = len,
		.lkey = c->mr_rx_buf->lkey,
	};
	struct ibv_send_wr wr = {.wr_id = XR_WR_ID(XR_WR_READ, 0),
				 .sg_list = &sge,
				 .num_sge = 1,
				 .opcode = IBV_WR_RDMA_READ,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad;
	int ret;

	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	ret = ibv_post_send(c->id->qp, &wr, &bad);
	if (ret) {
		return -ret;
	}
	c->outstanding++;
	return 0;
}

static ssize_t xr_deliver(struct xrdma_core *k, const uint8_t *data, size_t len)
{
	struct xr_conn *c = k->ctx;
	ssize_t n = c->cbs->on_recv(&c->base, data, len);

	if (n > 0) {
		c->base.bytes_in += (uint64_t)n;
		__atomic_fetch_add(&xr_stats.bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
	}
	return n;
}

/* Drop the registrations of regions no longer registered (their memory
 * may be unmapped and mapped again as something else). */
static void xr_mr_sweep(struct xr_conn *c)
{
	uint64_t gen = xport_mem_gen();

	if (gen == c->mem_gen) {
		return;
	}
	c->mem_gen = gen;
	for (int i = 0; i < XR_MR_CACHE; i++) {
		struct xr_mr *m = &c->mrs[i];

		if (m->reg.id && !xport_mem_live(m->reg.id)) {
			if (m->mr) {
				ibv_dereg_mr(m->mr);
			}
			memset(m, 0, sizeof(*m));
		}
	}
}

static int xr_mem_key(struct xrdma_core *k, const void *addr, size_t len, uint32_t *rkey)
{
	struct xr_conn *c = k->ctx;
	struct xr_mr *m = NULL;

	xr_mr_sweep(c);
	for (int i = 0; i < XR_MR_CACHE; i++) {
		struct xr_mr *e = &c->mrs[i];

		if (e->reg.id && xport_mem_holds(&e->reg, (uintptr_t)addr, len)) {
			if (!e->mr) {
				return -ENOMEM;
			}
			*rkey = e->mr->rkey;
			return 0;
		}
		if (!e->reg.id && !m) {
			m = e;
		}
	}
	if (!m || xport_mem_find(addr, len, &m->reg)) {
		return -ENOENT;
	}
	/* Remote read only: the peer may read the region, never write it.
	 * Once per region and connection, on the reactor: pinning a large
	 * region (a guest's memory) takes a while the first time. */
	m->mr = ibv_reg_mr(c->pd, (void *)m->reg.addr, m->reg.len, IBV_ACCESS_REMOTE_READ);
	if (!m->mr) {
		log_warn("rdma: %s: cannot register %zu bytes at %p for zero-copy sends: %s; "
			 "sending from it by copy (docs/rdma.md: memlock limit)",
			 c->peer, m->reg.len, (void *)m->reg.addr, strerror(errno));
		return -ENOMEM;
	}
	log_debug("rdma: %s: registered %zu bytes at %p for zero-copy sends", c->peer, m->reg.len,
		  (void *)m->reg.addr);
	*rkey = m->mr->rkey;
	return 0;
}

/* xport_mem_watch(): a range was unregistered on this thread. */
static void xr_mem_changed(void)
{
	for (struct xr_conn *c = xr_thread_conns; c; c = c->tnext) {
		xr_mr_sweep(c);
	}
}

static const struct xrdma_verbs xr_verbs = {
	.post_recv = xr_post_recv,
	.post_send = xr_post_send,
	.post_read = xr_post_read,
	.deliver = xr_deliver,
	.mem_key = xr_mem_key,
};

/* --- resources --- */

static void xr_thread_add(struct xr_conn *c)
{
	xport_mem_watch(xr_mem_changed);
	c->tnext = xr_thread_conns;
	if (c->tnext) {
		c->tnext->tprev = &c->tnext;
	}
	c->tprev = &xr_thread_conns;
	xr_thread_conns = c;
}

static void xr_conn_free(struct xr_conn *c)
{
	if (c->tprev) {
		*c->tprev = c->tnext;
		if (c->tnext) {
			c->tnext->tprev = c->tprev;
		}
	}
	if (c->id && c->id->qp) {
		rdma_destroy_qp(c->id);
	}
	if (c->mr_rx_slots) {
		ibv_dereg_mr(c->mr_rx_slots);
	}
	if (c->mr_tx_slots) {
		ibv_dereg_mr(c->mr_tx_slots);
	}
	if (c->mr_big) {
		ibv_dereg_mr(c->mr_big);
	}
	if (c->mr_rx_buf) {
		ibv_dereg_mr(c->mr_rx_buf);
	}
	for (int i = 0; i < XR_MR_CACHE; i++) {
		if (c->mrs[i].mr) {
			ibv_dereg_mr(c->mrs[i].mr);
		}
	}
	if (c->cq) {
		ibv_destroy_cq(c->cq);
	}
	if (c->cch) {
		ibv_destroy_comp_channel(c->cch);
	}
	if (c->pd) {
		ibv_dealloc_pd(c->pd);
	}
	if (c->id) {
		rdma_destroy_id(c->id);
	}
	if (c->ech) {
		rdma_destroy_event_channel(c->ech);
	}
	xrdma_core_fini(&c->k);
	free(c);
}

/* PD, CQ, QP, the core's memory registered, every receive posted. The
 * stream buffer is sized by KP_CONN's rx size, known only at start():
 * connections are made for the framed protocol, whose largest frame
 * (docs/wire-format.md) bounds it. */
#define XR_RX_SIZE (1115224u + 4096u)

static int xr_conn_setup(struct xr_conn *c)
{
	struct xrdma_geom g;
	struct ibv_qp_init_attr qa;
	int ret;

	xrdma_geom_default(&g, XR_RX_SIZE);
	ret = xrdma_core_init(&c->k, &g, &xr_verbs, c);
	if (ret) {
		return ret;
	}
	c->pd = ibv_alloc_pd(c->id->verbs);
	if (!c->pd) {
		return -errno ?: -ENOMEM;
	}
	c->cch = ibv_create_comp_channel(c->id->verbs);
	if (!c->cch) {
		return -errno ?: -ENOMEM;
	}
	ret = xr_set_nonblock(c->cch->fd);
	if (ret) {
		return ret;
	}
	/* Every posted work request has room for its completion: a CQ
	 * overflow is a bug, reported through the async event. */
	c->cq = ibv_create_cq(c->id->verbs, (int)(2 * g.slots + 8), c, c->cch, 0);
	if (!c->cq) {
		return -errno ?: -ENOMEM;
	}
	memset(&qa, 0, sizeof(qa));
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = g.slots + 2;
	qa.cap.max_recv_wr = g.slots;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(c->id, c->pd, &qa)) {
		return -errno ?: -ENOMEM;
	}
	c->mr_rx_slots = ibv_reg_mr(c->pd, c->k.rx_slots, (size_t)g.slots * g.slot_size,
				    IBV_ACCESS_LOCAL_WRITE);
	c->mr_tx_slots = ibv_reg_mr(c->pd, c->k.tx_slots, (size_t)g.slots * g.slot_size, 0);
	c->mr_big = ibv_reg_mr(c->pd, c->k.big, (size_t)g.big_count * g.big_size,
			       IBV_ACCESS_REMOTE_READ);
	c->mr_rx_buf = ibv_reg_mr(c->pd, c->k.rx_buf, g.rx_size, IBV_ACCESS_LOCAL_WRITE);
	if (!c->mr_rx_slots || !c->mr_tx_slots || !c->mr_big || !c->mr_rx_buf) {
		return -errno ?: -ENOMEM;
	}
	c->k.big_rkey = c->mr_big->rkey;
	return xrdma_core_post_all_recvs(&c->k);
}

static struct xr_conn *xr_conn_new(struct reactor *r)
{
	struct xr_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		return NULL;
	}
	c->base.ops = &xport_rdma_ops;
	c->base.r = r;
	c->state = RC_IDLE;
	return c;
}

static void xr_cm_params(struct xr_conn *c, uint8_t *pd, struct rdma_conn_param *p)
{
	struct xrdma_cm_params mine = {
		.version = XRDMA_VERSION,
		.slots = (uint16_t)c->k.g.slots,
		.slot_size = c->k.g.slot_size,
	};

	xrdma_cm_encode(&mine, pd);
	memset(p, 0, sizeof(*p));
	p->private_data = pd;
	p->private_data_len = XRDMA_CM_SIZE;
	p->responder_resources = 1;
	p->initiator_depth = 1;
	p->retry_count = 7;
	/* Credits mean a SEND always finds a receive: an RNR is a bug and
	 * must fail the connection rather than stall it. */
	p->rnr_retry_count = 0;
}

/* --- completions --- */

static int xr_handle_wc(struct xr_conn *c, const struct ibv_wc *wc)
{
	uint64_t type = wc->wr_id >> 32;
	uint32_t slot = (uint32_t)wc->wr_id;

	kassert(c->outstanding > 0);
	c->outstanding--;
	if (wc->status != IBV_WC_SUCCESS) {
		if (c->state >= RC_CLOSING) {
			return 0;
		}
		if (wc->status == IBV_WC_WR_FLUSH_ERR) {
			return -ECONNRESET;
		}
		log_warn("rdma: %s: work request failed: %s", c->peer,
			 ibv_wc_status_str(wc->status));
		return -EIO;
	}
	if (c->state >= RC_CLOSING) {
		return 0;
	}
	switch (type) {
	case XR_WR_RECV:
		__atomic_fetch_add(&xr_stats.msgs_in, 1, __ATOMIC_RELAXED);
		return xrdma_core_recv_done(&c->k, slot, wc->byte_len);
	case XR_WR_SEND:
		return xrdma_core_send_done(&c->k, slot);
	case XR_WR_READ:
		__atomic_fetch_add(&xr_stats.rdma_read_bytes, c->k.rd_len, __ATOMIC_RELAXED);
		return xrdma_core_read_done(&c->k);
	default:
		return -EIO;
	}
}

static void xr_conn_put(struct xr_conn *c);

/* Poll the CQ empty, run the core, and arm the channel when idle. */
static void xr_cq_run(struct xr_conn *c)
{
	struct ibv_wc wc[XR_WC_BATCH];
	uint64_t out0 = c->k.st.bytes_out, zc0 = c->k.st.zc_bytes_out;
	int n, ret = 0;

	xr_mr_sweep(c); /* also when idle: unpin unregistered memory */
	for (;;) {
		n = ibv_poll_cq(c->cq, XR_WC_BATCH, wc);
		if (n < 0) {
			ret = -EIO;
			break;
		}
		/* Every completion is counted, even after one failed. */
		for (int i = 0; i < n; i++) {
			int r = xr_handle_wc(c, &wc[i]);

			if (r && c->state < RC_CLOSING) {
				xr_close(&c->base, r);
			}
		}
		if (c->state == RC_OPEN) {
			ret = xrdma_core_process(&c->k);
			if (ret) {
				break;
			}
			if (c->peer_gone && !c->k.rxq_count && !c->k.rd_inflight) {
				xr_close(&c->base, c->gone_err);
			}
		}
		if (n > 0) {
			continue;
		}
		if (c->state >= RC_CLOSING) {
			break;
		}
		if (!c->notify_armed) {
			/* Arm, then poll once more: a completion that came in
			 * between would raise no event. */
			if (ibv_req_notify_cq(c->cq, 0)) {
				ret = -EIO;
				break;
			}
			c->notify_armed = true;
			continue;
		}
		if (!c->cq_poll_armed) {
			xr_cq_kick(c);
		}
		break;
	}
	if (c->k.st.bytes_out > out0) {
		c->base.bytes_out += c->k.st.bytes_out - out0;
		__atomic_fetch_add(&xr_stats.bytes_out, c->k.st.bytes_out - out0, __ATOMIC_RELAXED);
	}
	if (c->k.st.zc_bytes_out > zc0) {
		__atomic_fetch_add(&xr_stats.zero_copy_bytes, c->k.st.zc_bytes_out - zc0,
				   __ATOMIC_RELAXED);
	}
	if (ret && c->state < RC_CLOSING) {
		xr_close(&c->base, ret);
		xr_cq_run(c); /* collect the flushed work requests */
	}
}

static void xr_cq_event(struct reactor_op *op, int res)
{
	struct xr_conn *c = container_of(op, struct xr_conn, cq_op);
	struct ibv_cq *cq;
	void *ctx;

	c->cq_poll_armed = false;
	if (c->state < RC_CLOSED) {
		while (!ibv_get_cq_event(c->cch, &cq, &ctx)) {
			ibv_ack_cq_events(cq, 1);
			c->notify_armed = false;
		}
		xr_cq_run(c);
	}
	xr_conn_put(c);
}

/* Wait for the completion channel (the CQ is armed). */
static void xr_cq_kick(struct xr_conn *c)
{
	struct io_uring_sqe *sqe;

	c->cq_poll_armed = true;
	c->refs++;
	sqe = reactor_sqe(c->base.r);
	io_uring_prep_poll_add(sqe, c->cch->fd, POLLIN);
	reactor_sqe_set_op(sqe, &c->cq_op, xr_cq_event);
}

static void xr_cq_deferred(struct reactor_defer *d)
{
	struct xr_conn *c = container_of(d, struct xr_conn, cq_defer);

	c->cq_deferred = false;
	if (c->state < RC_CLOSED) {
		xr_cq_run(c);
	}
	xr_conn_put(c);
}

/* Run the CQ and the core on the next loop turn. */
static void xr_cq_schedule(struct xr_conn *c)
{
	if (c->cq_deferred) {
		return;
	}
	c->cq_deferred = true;
	c->refs++;
	c->cq_defer.fn = xr_cq_deferred;
	reactor_defer(c->base.r, &c->cq_defer);
}

/* --- rdma_cm events of a connection --- */

static void xr_cm_event(struct reactor_op *op, int res)
{
	struct xr_conn *c = container_of(op, struct xr_conn, cm_op);
	struct rdma_cm_event *ev;

	c->cm_poll_armed = false;
	while (c->state < RC_CLOSED && !rdma_get_cm_event(c->ech, &ev)) {
		enum rdma_cm_event_type type = ev->event;

		rdma_ack_cm_event(ev);
		log_debug("rdma: %s: %s", c->peer, rdma_event_str(type));
		if (c->state >= RC_CLOSING) {
			continue;
		}
		switch (type) {
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
			if (c->state == RC_IDLE && !c->listener) {
				/* The owner holds it unstarted: like TCP, it
				 * sees EOF once it starts. */
				c->peer_gone = true;
				break;
			}
			/* Take what arrived before the peer left, then close as
			 * TCP does at EOF. */
			if (c->state == RC_OPEN) {
				xr_cq_run(c);
			}
			if (c->state < RC_CLOSING) {
				xr_close(&c->base, c->state == RC_OPEN ? 0 : -ECONNRESET);
			}
			break;
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
		case RDMA_CM_EVENT_CONNECT_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
		case RDMA_CM_EVENT_REJECTED:
			if (c->state == RC_IDLE && !c->listener) {
				/* Its owner holds it unstarted: closing now would
				 * free it under the owner. Closed once started. */
				c->peer_gone = true;
				c->gone_err = -ECONNRESET;
				break;
			}
			xr_close(&c->base, -ECONNRESET);
			break;
		default:
			break;
		}
	}
	if (c->state < RC_CLOSING) {
		xr_cm_arm(c);
	}
	xr_conn_put(c);
}

static void xr_cm_arm(struct xr_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->cm_poll_armed || c->state >= RC_CLOSING) {
		return; /* a cancelled poll must not come back: close waits for it */
	}
	c->cm_poll_armed = true;
	c->refs++;
	sqe = reactor_sqe(c->base.r);
	io_uring_prep_poll_add(sqe, c->ech->fd, POLLIN);
	reactor_sqe_set_op(sqe, &c->cm_op, xr_cm_event);
}

/* --- connection lifetime --- */

static void xr_conn_finish(struct reactor_defer *d)
{
	struct xr_conn *c = container_of(d, struct xr_conn, close_defer);

	xrdma_core_stop(&c->k, c->close_err < 0 ? c->close_err : -ECANCELED);
	if (c->cbs) {
		c->cbs->on_close(&c->base, c->close_err);
	}
	xr_conn_free(c);
}

/* A poll_remove holds its own reference: its completion may come after the
 * cancelled poll's, and the op lives in the conn. The cancelled poll
 * completes (and puts) on its own. */
static void xr_cancel_cq_done(struct reactor_op *op, int res)
{
	(void)res;
	xr_conn_put(container_of(op, struct xr_conn, cancel_cq_op));
}

static void xr_cancel_cm_done(struct reactor_op *op, int res)
{
	(void)res;
	xr_conn_put(container_of(op, struct xr_conn, cancel_cm_op));
}

/* Cancel the armed poll @poll through @cancel; the cancel holds a
 * reference until @done puts it, the poll's own callback puts the poll's. */
static void xr_poll_cancel(struct xr_conn *c, bool *armed, struct reactor_op *poll,
			   struct reactor_op *cancel, reactor_cb done)
{
	struct io_uring_sqe *sqe;

	if (!*armed) {
		return;
	}
	c->refs++;
	sqe = reactor_sqe(c->base.r);
	io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)poll);
	reactor_sqe_set_op(sqe, cancel, done);
	*armed = false;
}

static void xr_conn_put(struct xr_conn *c)
{
	kassert(c->refs > 0);
	c->refs--;
	if (c->state != RC_CLOSING) {
		return;
	}
	xr_poll_cancel(c, &c->cq_poll_armed, &c->cq_op, &c->cancel_cq_op, xr_cancel_cq_done);
	xr_poll_cancel(c, &c->cm_poll_armed, &c->cm_op, &c->cancel_cm_op, xr_cancel_cm_done);
	if (c->refs) {
		return;
	}
	c->state = RC_CLOSED;
	c->close_defer.fn = xr_conn_finish;
	reactor_defer(c->base.r, &c->close_defer);
}

static void xr_close(struct xport_conn *xc, int err)
{
	struct xr_conn *c = xr_conn(xc);

	if (c->state >= RC_CLOSING) {
		return;
	}
	log_debug("rdma: %s: closing (%s)", c->peer, err ? strerror(-err) : "no error");
	c->state = RC_CLOSING;
	c->close_err = err;
	c->k.stopped = true; /* sends are failed in finish, not from inside close() */
	/* Tell the peer (DREQ) and stop the QP. Posted work requests are not
	 * waited for: rxe in Linux 6.1 does not always flush posted receives,
	 * and destroying the QP (in finish, before the memory is freed) is
	 * what guarantees the device no longer touches our buffers. */
	rdma_disconnect(c->id);
	if (c->id->qp) {
		struct ibv_qp_attr qa = {.qp_state = IBV_QPS_ERR};

		ibv_modify_qp(c->id->qp, &qa, IBV_QP_STATE);
	}
	xr_cq_schedule(c);
}

static int xr_start(struct xport_conn *xc, const struct xport_conn_cbs *cbs, size_t rx_size,
		    void *arg)
{
	struct xr_conn *c = xr_conn(xc);

	if (c->state != RC_IDLE) {
		return c->state == RC_OPEN ? -EALREADY : -EPIPE;
	}
	if (!rx_size || !cbs || !cbs->on_recv || !cbs->on_close) {
		return -EINVAL;
	}
	if (rx_size > c->k.g.rx_size) {
		return -EMSGSIZE;
	}
	c->cbs = cbs;
	c->base.arg = arg;
	c->state = RC_OPEN;
	xr_cq_schedule(c);
	return 0;
}

static void xr_tx_hold_done(struct reactor_timer *t)
{
	struct xr_conn *c = container_of(t, struct xr_conn, tx_hold);
	uint64_t now = reactor_now_ns();

	if (c->state < RC_CLOSING && now < c->tx_hold_until_ns) {
		/* extended by a later delayed send: the reference stays */
		reactor_timer_start(c->base.r, &c->tx_hold, c->tx_hold_until_ns - now,
				    xr_tx_hold_done);
		return;
	}
	c->k.tx_hold = false;
	if (c->state == RC_OPEN) {
		xr_cq_schedule(c);
	}
	xr_conn_put(c);
}

/* Fault injection, as TCP: hold this send and all after it @delay_ms. */
static void xr_tx_hold(struct xr_conn *c, uint32_t delay_ms)
{
	uint64_t ns = (uint64_t)delay_ms * 1000000ull;
	uint64_t until = reactor_now_ns() + ns;

	if (until > c->tx_hold_until_ns) {
		c->tx_hold_until_ns = until;
	}
	if (c->k.tx_hold) {
		return;
	}
	c->k.tx_hold = true;
	c->refs++;
	reactor_timer_start(c->base.r, &c->tx_hold, ns, xr_tx_hold_done);
}

static int xr_send(struct xport_conn *xc, struct xport_send *s)
{
	struct xr_conn *c = xr_conn(xc);
	int ret;

	if (c->state >= RC_CLOSING) {
		return -EPIPE;
	}
	ret = xrdma_core_send(&c->k, s);
	if (!ret && s->delay_ms) {
		xr_tx_hold(c, s->delay_ms);
	}
	if (!ret && c->state == RC_OPEN) {
		xr_cq_schedule(c);
	}
	return ret;
}

static const char *xr_peer(const struct xport_conn *xc)
{
	return xr_conn(xc)->peer;
}

/* --- connect: bounded, on the caller's thread --- */

static uint64_t xr_now_ms(void)
{
	return reactor_now_ns() / 1000000u;
}

/* Wait for the next event on @ech until @deadline_ms; it must be @want.
 * Copies the peer's private data (ESTABLISHED) into @peer. */
static int xr_wait_event(struct rdma_event_channel *ech, enum rdma_cm_event_type want,
			 uint64_t deadline_ms, struct xrdma_cm_params *peer)
{
	struct pollfd pfd = {.fd = ech->fd, .events = POLLIN};
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type type;
	int n, status, ret = 0;

	for (;;) {
		uint64_t now = xr_now_ms();

		if (now >= deadline_ms) {
			return -ETIMEDOUT;
		}
		n = poll(&pfd, 1, (int)(deadline_ms - now));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -errno;
		}
		if (!n) {
			return -ETIMEDOUT;
		}
		if (!rdma_get_cm_event(ech, &ev)) {
			break;
		}
		if (errno != EAGAIN) {
			return -errno;
		}
	}
	type = ev->event;
	status = ev->status;
	if (type == want && want == RDMA_CM_EVENT_ESTABLISHED) {
		ret = xrdma_cm_decode(ev->param.conn.private_data, ev->param.conn.private_data_len,
				      peer);
	}
	rdma_ack_cm_event(ev);
	if (type == want) {
		return ret;
	}
	log_debug("rdma: expected %s, got %s (status %d)", rdma_event_str(want),
		  rdma_event_str(type), status);
	switch (type) {
	case RDMA_CM_EVENT_REJECTED:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_ADDR_ERROR:
		return -EADDRNOTAVAIL;
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
		return -EHOSTUNREACH;
	default:
		return -ECONNRESET;
	}
}

static int xr_connect(struct reactor *r, const char *addr, struct xport_conn **out)
{
	uint64_t deadline = xr_now_ms() + XPORT_RDMA_CONNECT_TIMEOUT_MS;
	struct xrdma_cm_params peer;
	struct rdma_conn_param param;
	uint8_t pd[XRDMA_CM_SIZE];
	struct addrinfo *res;
	struct xr_conn *c;
	int ret;

	ret = xport_resolve("rdma", addr, false, &res);
	if (ret) {
		return ret;
	}
	c = xr_conn_new(r);
	if (!c) {
		freeaddrinfo(res);
		return -ENOMEM;
	}
	xport_addr_text(res->ai_addr, c->peer, sizeof(c->peer));
	c->ech = rdma_create_event_channel();
	if (!c->ech || xr_set_nonblock(c->ech->fd) ||
	    rdma_create_id(c->ech, &c->id, c, RDMA_PS_TCP)) {
		ret = -errno ?: -ENODEV;
		freeaddrinfo(res);
		goto out_free;
	}
	ret = rdma_resolve_addr(c->id, NULL, res->ai_addr, XR_RESOLVE_MS) ? -errno : 0;
	freeaddrinfo(res);
	if (!ret) {
		ret = xr_wait_event(c->ech, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, NULL);
	}
	if (!ret) {
		ret = rdma_resolve_route(c->id, XR_RESOLVE_MS) ? -errno : 0;
	}
	if (!ret) {
		ret = xr_wait_event(c->ech, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, NULL);
	}
	if (!ret) {
		ret = xr_conn_setup(c);
	}
	if (!ret) {
		xr_cm_params(c, pd, &param);
		ret = rdma_connect(c->id, &param) ? -errno : 0;
	}
	if (!ret) {
		ret = xr_wait_event(c->ech, RDMA_CM_EVENT_ESTABLISHED, deadline, &peer);
	}
	if (ret) {
		log_debug("rdma: cannot connect to %s: %s", addr, strerror(-ret));
		goto out_free;
	}
	xrdma_core_set_peer(&c->k, &peer);
	c->established = true;
	__atomic_fetch_add(&xr_stats.conns, 1, __ATOMIC_RELAXED);
	xr_thread_add(c);
	xr_cm_arm(c);
	*out = &c->base;
	return 0;

out_free:
	xr_conn_free(c);
	return ret;
}

/* --- listener --- */

static void xr_listener_put(struct xr_listener *l)
{
	if (__atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL)) {
		return;
	}
	rdma_destroy_id(l->id);
	rdma_destroy_event_channel(l->ech);
	if (l->stop_fd >= 0) {
		close(l->stop_fd);
	}
	free(l);
}

/* Reactor thread: an accepted connection is established. */
static void xr_accept_msg(struct reactor_msg *m)
{
	struct xr_conn *c = container_of(m, struct xr_conn, accept_msg);
	struct xr_listener *l = c->listener;

	c->listener = NULL;
	c->established = true;
	xr_thread_add(c);
	xr_cm_arm(c);
	if (l->closing) {
		xr_close(&c->base, -ECONNABORTED);
	} else {
		__atomic_fetch_add(&xr_stats.conns, 1, __ATOMIC_RELAXED);
		l->cb(&l->base, &c->base, l->arg);
	}
	xr_listener_put(l);
}

/* Accept thread: resources, accept. The connection is handed over once
 * ESTABLISHED (xr_accept_event). */
static void xr_accept_one(struct xr_listener *l, struct rdma_cm_id *id,
			  const struct xrdma_cm_params *peer)
{
	struct rdma_conn_param param;
	uint8_t pd[XRDMA_CM_SIZE];
	struct xr_conn *c;
	int ret = -ENOMEM;

	c = xr_conn_new(l->base.r);
	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	xport_addr_text(rdma_get_peer_addr(id), c->peer, sizeof(c->peer));
	c->id = id;
	id->context = c;
	c->ech = rdma_create_event_channel();
	if (!c->ech || xr_set_nonblock(c->ech->fd)) {
		ret = -errno ?: -ENOMEM;
		goto out_reject;
	}
	ret = xr_conn_setup(c);
	if (ret) {
		goto out_reject;
	}
	xrdma_core_set_peer(&c->k, peer);
	xr_cm_params(c, pd, &param);
	if (rdma_accept(id, &param)) {
		ret = -errno;
		goto out_reject;
	}
	c->listener = l;
	c->pending_next = l->pending;
	l->pending = c;
	return;

out_reject:
	log_warn("rdma: %s: cannot accept %s: %s", l->addr, c->peer, strerror(-ret));
	rdma_reject(id, NULL, 0);
	xr_conn_free(c); /* destroys the id */
}

static bool xr_pending_remove(struct xr_listener *l, struct xr_conn *c)
{
	for (struct xr_conn **pp = &l->pending; *pp; pp = &(*pp)->pending_next) {
		if (*pp == c) {
			*pp = c->pending_next;
			return true;
		}
	}
	return false;
}

static void xr_accept_event(struct xr_listener *l, struct rdma_cm_event *ev)
{
	enum rdma_cm_event_type type = ev->event;
	struct rdma_cm_id *id = ev->id;
	struct xrdma_cm_params peer;
	struct xr_conn *c;
	int ret;

	if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		ret = xrdma_cm_decode(ev->param.conn.private_data, ev->param.conn.private_data_len,
				      &peer);
		rdma_ack_cm_event(ev);
		if (ret) {
			log_warn("rdma: %s: refusing a connection: %s", l->addr,
				 ret == -EPROTONOSUPPORT ? "unsupported version"
							 : "bad connection parameters");
			rdma_reject(id, NULL, 0);
			rdma_destroy_id(id);
			return;
		}
		xr_accept_one(l, id, &peer);
		return;
	}
	c = id && id != l->id ? id->context : NULL;
	rdma_ack_cm_event(ev);
	if (!c || !xr_pending_remove(l, c)) {
		return;
	}
	if (type == RDMA_CM_EVENT_ESTABLISHED && !rdma_migrate_id(id, c->ech)) {
		__atomic_add_fetch(&l->refs, 1, __ATOMIC_ACQ_REL);
		c->accept_msg.fn = xr_accept_msg;
		reactor_post(l->base.r, &c->accept_msg);
		return;
	}
	log_debug("rdma: %s: connection from %s failed: %s", l->addr, c->peer,
		  rdma_event_str(type));
	xr_conn_free(c);
}

static void *xr_accept_thread(void *arg)
{
	struct xr_listener *l = arg;
	struct pollfd pfd[2] = {{.fd = l->ech->fd, .events = POLLIN},
				{.fd = l->stop_fd, .events = POLLIN}};
	struct rdma_cm_event *ev;

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			log_error("rdma: %s: poll: %s", l->addr, strerror(errno));
			break;
		}
		if (pfd[1].revents) {
			break;
		}
		while (!rdma_get_cm_event(l->ech, &ev)) {
			xr_accept_event(l, ev);
		}
	}
	while (l->pending) {
		struct xr_conn *c = l->pending;

		l->pending = c->pending_next;
		xr_conn_free(c);
	}
	return NULL;
}

/* Is there an RDMA device at all? A clear error instead of rdma_cm's. */
static int xr_check_device(void)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);

	if (list) {
		ibv_free_device_list(list);
	}
	if (n <= 0) {
		log_error("rdma: no RDMA device (ibv_get_device_list found none); "
			  "see docs/rdma.md");
		return -ENODEV;
	}
	return 0;
}

static int xr_listen(struct reactor *r, const char *addr, struct xport_listener **out)
{
	struct addrinfo *res;
	struct xr_listener *l;
	int ret;

	ret = xr_check_device();
	if (ret) {
		return ret;
	}
	ret = xport_resolve("rdma", addr, true, &res);
	if (ret) {
		return ret;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		freeaddrinfo(res);
		return -ENOMEM;
	}
	l->base.ops = &xport_rdma_ops;
	l->base.r = r;
	l->refs = 1;
	l->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (l->stop_fd < 0) {
		ret = -errno;
		l->stop_fd = -1;
		goto out_free;
	}
	l->ech = rdma_create_event_channel();
	if (!l->ech || xr_set_nonblock(l->ech->fd) ||
	    rdma_create_id(l->ech, &l->id, l, RDMA_PS_TCP)) {
		ret = -errno ?: -ENODEV;
		goto out_free;
	}
	if (rdma_bind_addr(l->id, res->ai_addr) || rdma_listen(l->id, XR_BACKLOG)) {
		ret = -errno;
		goto out_free;
	}
	freeaddrinfo(res);
	res = NULL;
	xport_addr_text(rdma_get_local_addr(l->id), l->addr, sizeof(l->addr));
	*out = &l->base;
	return 0;

out_free:
	log_error("rdma: cannot listen on %s: %s", addr, strerror(-ret));
	if (res) {
		freeaddrinfo(res);
	}
	if (l->id) {
		rdma_destroy_id(l->id);
	}
	if (l->ech) {
		rdma_destroy_event_channel(l->ech);
	}
	if (l->stop_fd >= 0) {
		close(l->stop_fd);
	}
	free(l);
	return ret;
}

static int xr_accept_start(struct xport_listener *xl,
			   void (*cb)(struct xport_listener *l, struct xport_conn *c, void *arg),
			   void *arg)
{
	struct xr_listener *l = container_of(xl, struct xr_listener, base);
	int ret;

	if (l->cb) {
		return -EBUSY;
	}
	l->cb = cb;
	l->arg = arg;
	ret = pthread_create(&l->thread, NULL, xr_accept_thread, l);
	if (ret) {
		l->cb = NULL;
		return -ret;
	}
	l->thread_started = true;
	return 0;
}

static void xr_listen_close(struct xport_listener *xl)
{
	struct xr_listener *l = container_of(xl, struct xr_listener, base);
	uint64_t one = 1;

	if (l->closing) {
		return;
	}
	l->closing = true;
	if (l->thread_started) {
		if (write(l->stop_fd, &one, sizeof(one)) != sizeof(one)) {
			log_error("rdma: %s: cannot stop the accept thread: %s", l->addr,
				  strerror(errno));
		}
		pthread_join(l->thread, NULL);
	}
	/* Connections already posted to the reactor still hold it. */
	xr_listener_put(l);
}

static const char *xr_listen_addr(const struct xport_listener *xl)
{
	return container_of(xl, struct xr_listener, base)->addr;
}

const struct xport_ops xport_rdma_ops = {
	.name = "rdma",
	.listen = xr_listen,
	.accept_start = xr_accept_start,
	.listen_close = xr_listen_close,
	.listen_addr = xr_listen_addr,
	.connect = xr_connect,
	.start = xr_start,
	.send = xr_send,
	.close = xr_close,
	.peer = xr_peer,
	.stats = &xr_stats,
};
