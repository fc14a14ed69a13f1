/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nbd_server: sockets, connections and request slots around nbd_parse.
 *
 * Every socket operation is an io_uring op on the reactor (accept, recv,
 * sendmsg); the only other syscalls are setup (socket/bind/listen), close
 * and shutdown, none of which block.
 *
 * A connection reads into a 64 KiB ring (headers, options, small payloads)
 * and receives the rest of a long WRITE payload straight into the request's
 * buffer. Requests run in parallel, up to NBD_CONN_DEPTH per connection,
 * each with an NBD_MAX_PAYLOAD buffer in the connection's slab (mapped at
 * accept, touched as used); with every slot busy the
 * connection stops reading until a reply has gone out. Replies go out in
 * completion order (NBD matches them by handle), gathered into one sendmsg
 * at a time per connection; a short send resumes where it stopped.
 */
#include <endian.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/nbd_parse.h"
#include "client/nbd_server.h"
#include "common/log.h"
#include "common/xport.h"

#define NBD_CONN_DEPTH	      16u	  /* requests in flight per connection */
#define NBD_RX_SIZE	      (64u << 10) /* receive ring per connection */
#define NBD_TX_IOV	      64	  /* iovecs per sendmsg (two per reply) */
#define NBD_MAX_OPTS	      128u	  /* options per connection before we hang up */
#define NBD_DEFAULT_CONNS     16u
#define NBD_CLOSE_GRACE_NS    (2ull * 1000 * 1000 * 1000)
#define NBD_RETRY_NS	      (1ull * 1000 * 1000)
#define NBD_HANDSHAKE_NS      (10ull * 1000 * 1000 * 1000) /* accept to transmission */
#define NBD_SWEEP_NS	      (1ull * 1000 * 1000 * 1000)
#define NBD_ACCEPT_BACKOFF_NS (100ull * 1000 * 1000)
#define NBD_MAX_LISTENERS     2
#define NBD_SLAB_SIZE	      ((size_t)NBD_CONN_DEPTH * NBD_MAX_PAYLOAD)

enum nbd_conn_state {
	NBD_CONN_OPT_SEND,     /* sending the greeting or option replies */
	NBD_CONN_CLIENT_FLAGS, /* reading the 4 bytes of client flags */
	NBD_CONN_OPT_HDR,      /* reading an option header */
	NBD_CONN_OPT_DATA,     /* reading an option's data */
	NBD_CONN_XMIT_HDR,     /* transmission: reading a request header */
	NBD_CONN_XMIT_PAYLOAD, /* transmission: reading a WRITE payload */
	NBD_CONN_DEAD,	       /* socket shut down; waiting for ops and device callbacks */
};

enum nbd_req_state {
	NBD_REQ_FREE,
	NBD_REQ_PAYLOAD, /* receiving its WRITE payload */
	NBD_REQ_PARKED,	 /* the device said -EAGAIN: on the server's retry list */
	NBD_REQ_DEV,	 /* in the device */
	NBD_REQ_REPLY,	 /* on the connection's reply queue */
};

struct nbd_server;
struct nbd_conn;

struct nbd_req {
	enum nbd_req_state state;
	bool fua_flush; /* the data part succeeded; this is its FUA flush */
	struct nbd_conn *c;
	struct nbd_req *next; /* free list, reply queue or parked list */
	struct nbd_req_hdr h;
	int res;       /* 0 or -errno; nbd_errno_to_wire() makes the reply */
	uint8_t *buf;  /* NBD_MAX_PAYLOAD bytes of the connection's slab */
	uint32_t got;  /* WRITE payload bytes received */
	uint32_t sent; /* reply bytes sent */
	uint64_t start_ns; /* header read */
	struct iovec iov;
	struct nbd_simple_reply reply;
};

struct nbd_conn {
	struct nbd_server *s;
	struct nbd_conn *next, *prev;
	unsigned int id;
	int fd;
	enum nbd_conn_state state;
	enum nbd_conn_state after_send; /* next state once the option send is out */
	bool close_after_send;
	bool no_zeroes;
	bool draining;	 /* reading stopped: finish requests and replies, then close */
	bool rx_blocked; /* every slot busy: reading resumes when one frees */
	bool recv_armed, recv_direct, send_armed, cancel_armed;
	bool free_queued;
	unsigned int ops;    /* our SQEs in flight (recv, send, cancel) */
	unsigned int busy;   /* requests not FREE */
	unsigned int in_dev; /* requests in the device */
	unsigned int nopts;
	uint64_t deadline_ns; /* negotiation must be over by then; 0 once it is */
	uint32_t opt, opt_len;
	uint32_t rx_start, rx_end;
	struct nbd_req *cur; /* the WRITE whose payload is being read */
	struct nbd_req *free_reqs;
	struct nbd_req *txq, **txq_tail;
	size_t otx_len, otx_off;
	struct reactor_op recv_op, send_op, cancel_op;
	struct reactor_defer free_defer;
	struct msghdr tx_msg;
	struct iovec tx_iov[NBD_TX_IOV];
	uint8_t *slab; /* NBD_CONN_DEPTH payload buffers, mapped at accept */
	struct nbd_req reqs[NBD_CONN_DEPTH];
	uint8_t otx[NBD_OBUF_SIZE];
	uint8_t rx[NBD_RX_SIZE];
};

struct nbd_listener {
	struct nbd_server *s;
	int fd;
	bool tcp;
	bool accept_armed;
	struct reactor_op accept_op, backoff_op, cancel_op;
	struct __kernel_timespec backoff_ts;
	char name[128];
};

struct nbd_server {
	struct reactor *r;
	struct blk_dev *dev;
	struct nbd_export exp;
	char desc[96];
	unsigned int max_conns, nconns, next_id;
	struct nbd_conn *conns;
	struct nbd_listener lis[NBD_MAX_LISTENERS];
	unsigned int nlis;
	char *unix_path;
	struct nbd_req *parked, **parked_tail;
	unsigned int dev_inflight;
	unsigned int refs; /* SQEs of listeners and timers, plus one per connection */
	bool closing;
	bool grace_armed, retry_armed, sweep_armed;
	struct reactor_op grace_op, grace_cancel_op, retry_op, sweep_op, sweep_cancel_op;
	struct __kernel_timespec grace_ts, retry_ts, sweep_ts;
	struct reactor_defer done_defer;
	void (*close_cb)(void *arg);
	void *close_arg;
	struct nbd_server_stats stats;
};

static void conn_rx_process(struct nbd_conn *c);
static void conn_kill(struct nbd_conn *c);
static void conn_check_drained(struct nbd_conn *c);
static void req_dispatch(struct nbd_req *q);
static void server_retry_parked(struct nbd_server *s);
static void accept_arm(struct nbd_listener *l);

/* --- server lifetime --- */

static void server_done(struct reactor_defer *d)
{
	struct nbd_server *s = container_of(d, struct nbd_server, done_defer);
	void (*cb)(void *arg) = s->close_cb;
	void *arg = s->close_arg;

	free(s->unix_path);
	free(s);
	if (cb) {
		cb(arg);
	}
}

static void server_put(struct nbd_server *s)
{
	kassert(s->refs > 0);
	if (--s->refs == 0 && s->closing) {
		s->done_defer.fn = server_done;
		reactor_defer(s->r, &s->done_defer);
	}
}

static void grace_cancel_done(struct reactor_op *op, int res)
{
	server_put(container_of(op, struct nbd_server, grace_cancel_op));
}

/* Closing: the last connection is gone, so the grace timer is not needed. */
static void server_conns_gone(struct nbd_server *s)
{
	struct io_uring_sqe *sqe;

	if (!s->closing || s->conns || !s->grace_armed) {
		return;
	}
	s->refs++;
	sqe = reactor_sqe(s->r);
	io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&s->grace_op, 0);
	reactor_sqe_set_op(sqe, &s->grace_cancel_op, grace_cancel_done);
}

static void sweep_arm(struct nbd_server *s);

/* Once a second while connections negotiate: a client that has not reached
 * transmission NBD_HANDSHAKE_NS after connecting loses its connection, so
 * idle sockets cannot hold every max_conns slot. */
static void sweep_done(struct reactor_op *op, int res)
{
	struct nbd_server *s = container_of(op, struct nbd_server, sweep_op);
	uint64_t now = reactor_now_ns();
	struct nbd_conn *c, *next;
	bool pending = false;

	s->sweep_armed = false;
	if (!s->closing) {
		for (c = s->conns; c; c = next) {
			next = c->next;
			if (!c->deadline_ns || c->state == NBD_CONN_DEAD) {
				continue;
			}
			if (now < c->deadline_ns) {
				pending = true;
				continue;
			}
			log_warn("nbd: conn %u: negotiation not finished in %llu s: closing", c->id,
				 NBD_HANDSHAKE_NS / 1000000000ull);
			s->stats.protocol_errors++;
			conn_kill(c);
		}
		if (pending) {
			sweep_arm(s);
		}
	}
	server_put(s);
}

static void sweep_arm(struct nbd_server *s)
{
	struct io_uring_sqe *sqe;

	if (s->sweep_armed || s->closing) {
		return;
	}
	s->sweep_armed = true;
	s->refs++;
	s->sweep_ts.tv_sec = NBD_SWEEP_NS / 1000000000ull;
	s->sweep_ts.tv_nsec = 0;
	sqe = reactor_sqe(s->r);
	io_uring_prep_timeout(sqe, &s->sweep_ts, 0, 0);
	reactor_sqe_set_op(sqe, &s->sweep_op, sweep_done);
}

static void sweep_cancel_done(struct reactor_op *op, int res)
{
	server_put(container_of(op, struct nbd_server, sweep_cancel_op));
}

/* --- requests --- */

static uint32_t req_reply_len(const struct nbd_req *q)
{
	uint32_t n = sizeof(q->reply);

	if (q->h.type == NBD_CMD_READ && !q->res) {
		n += q->h.length;
	}
	return n;
}

static void req_free(struct nbd_req *q)
{
	struct nbd_conn *c = q->c;

	kassert(q->state != NBD_REQ_FREE);
	q->state = NBD_REQ_FREE;
	q->next = c->free_reqs;
	c->free_reqs = q;
	c->busy--;
}

static void conn_tx_kick(struct nbd_conn *c);

/* Queue the simple reply for @q (its result in q->res). */
static void req_reply(struct nbd_req *q)
{
	struct nbd_conn *c = q->c;

	if (c->state == NBD_CONN_DEAD) {
		req_free(q);
		return;
	}
	q->reply.magic = htobe32(NBD_SIMPLE_REPLY_MAGIC);
	q->reply.error = htobe32(nbd_errno_to_wire(q->res));
	q->reply.handle = q->h.handle;
	q->sent = 0;
	q->state = NBD_REQ_REPLY;
	q->next = NULL;
	*c->txq_tail = q;
	c->txq_tail = &q->next;
	conn_tx_kick(c);
}

static void retry_done(struct reactor_op *op, int res)
{
	struct nbd_server *s = container_of(op, struct nbd_server, retry_op);

	s->retry_armed = false;
	server_retry_parked(s);
	server_put(s);
}

/* -EAGAIN with nothing of ours in the device (another export of the same
 * device holds the slots): no callback of ours will wake the parked list. */
static void server_arm_retry(struct nbd_server *s)
{
	struct io_uring_sqe *sqe;

	if (s->retry_armed || s->dev_inflight || !s->parked) {
		return;
	}
	s->retry_armed = true;
	s->refs++;
	s->retry_ts.tv_sec = 0;
	s->retry_ts.tv_nsec = NBD_RETRY_NS;
	sqe = reactor_sqe(s->r);
	io_uring_prep_timeout(sqe, &s->retry_ts, 0, 0);
	reactor_sqe_set_op(sqe, &s->retry_op, retry_done);
}

static void req_dev_done(void *arg, int res)
{
	struct nbd_req *q = arg;
	struct nbd_conn *c = q->c;
	struct nbd_server *s = c->s;

	kassert(q->state == NBD_REQ_DEV);
	c->in_dev--;
	s->dev_inflight--;
	if (!res && !q->fua_flush && (q->h.flags & NBD_CMD_FLAG_FUA) && q->h.type != NBD_CMD_READ &&
	    q->h.type != NBD_CMD_FLUSH) {
		/* FUA on anything that changes data is that + flush: the reply
		 * waits for the flush. */
		q->fua_flush = true;
		req_dispatch(q);
	} else {
		if (res) {
			s->stats.io_errors++;
			log_debug("nbd: conn %u: command %u at %lu+%u: %s", c->id, q->h.type,
				  q->h.offset, q->h.length, strerror(-res));
		} else if (q->h.type == NBD_CMD_READ) {
			s->stats.bytes_read += q->h.length;
			s->stats.read_ns += reactor_now_ns() - q->start_ns;
		} else if (q->h.type == NBD_CMD_WRITE) {
			s->stats.bytes_written += q->h.length;
			s->stats.write_ns += reactor_now_ns() - q->start_ns;
		}
		q->res = res;
		req_reply(q);
	}
	server_retry_parked(s);
	if (c->state == NBD_CONN_DEAD) {
		conn_kill(c); /* frees it once nothing is left in flight */
	} else {
		conn_check_drained(c);
	}
}

/* Hand @q to the device. -EAGAIN: the caller parks it. */
static int req_start(struct nbd_req *q)
{
	struct blk_dev *d = q->c->s->dev;

	if (q->fua_flush || q->h.type == NBD_CMD_FLUSH) {
		return d->ops->flush(d, req_dev_done, q);
	}
	switch (q->h.type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		q->iov.iov_base = q->buf;
		q->iov.iov_len = q->h.length;
		if (q->h.type == NBD_CMD_READ) {
			return d->ops->readv(d, &q->iov, 1, q->h.offset, req_dev_done, q);
		}
		return d->ops->writev(d, &q->iov, 1, q->h.offset, req_dev_done, q);
	case NBD_CMD_TRIM:
		return d->ops->discard(d, q->h.offset, q->h.length, req_dev_done, q);
	case NBD_CMD_WRITE_ZEROES:
		return d->ops->write_zeroes(d, q->h.offset, q->h.length, req_dev_done, q);
	default:
		kassert(!"validated command");
		return -EINVAL;
	}
}

/* Start @q, or answer it when rejected or when the device refuses it. */
static void req_dispatch(struct nbd_req *q)
{
	struct nbd_conn *c = q->c;
	struct nbd_server *s = c->s;
	int rc;

	if (c->state == NBD_CONN_DEAD) {
		req_free(q);
		return;
	}
	if (q->res) {
		req_reply(q);
		return;
	}
	/* Behind requests already waiting for the device: keep arrival order. */
	rc = s->parked ? -EAGAIN : req_start(q);
	if (rc == -EAGAIN) {
		s->stats.parked++;
		q->state = NBD_REQ_PARKED;
		q->next = NULL;
		*s->parked_tail = q;
		s->parked_tail = &q->next;
		server_arm_retry(s);
		return;
	}
	if (rc) {
		s->stats.io_errors++;
		q->res = rc;
		req_reply(q);
		return;
	}
	q->state = NBD_REQ_DEV;
	c->in_dev++;
	s->dev_inflight++;
}

/* A device slot may be free: start parked requests in arrival order. */
static void server_retry_parked(struct nbd_server *s)
{
	struct nbd_req *q;
	int rc;

	while ((q = s->parked)) {
		rc = req_start(q);
		if (rc == -EAGAIN) {
			break;
		}
		s->parked = q->next;
		if (!s->parked) {
			s->parked_tail = &s->parked;
		}
		if (rc) {
			s->stats.io_errors++;
			q->res = rc;
			req_reply(q);
			continue;
		}
		q->state = NBD_REQ_DEV;
		q->c->in_dev++;
		s->dev_inflight++;
	}
	server_arm_retry(s);
}

/* Take @c's requests off the parked list: freed, or (@res) answered. */
static void conn_unpark(struct nbd_conn *c, int res)
{
	struct nbd_server *s = c->s;
	struct nbd_req **pp = &s->parked, *q;

	s->parked_tail = &s->parked;
	while ((q = *pp)) {
		if (q->c != c) {
			s->parked_tail = &q->next;
			pp = &q->next;
			continue;
		}
		*pp = q->next;
		if (res) {
			q->res = res;
			req_reply(q);
		} else {
			req_free(q);
		}
	}
}

/* --- connection: sending --- */

static void conn_tx_done(struct reactor_op *op, int res)
{
	struct nbd_conn *c = container_of(op, struct nbd_conn, send_op);
	uint64_t n = res > 0 ? (uint64_t)res : 0;
	struct nbd_req *q;

	c->send_armed = false;
	c->ops--;
	if (c->state == NBD_CONN_DEAD) {
		conn_kill(c);
		return;
	}
	if (res <= 0) {
		/* 0 from a non-empty stream send would only loop: treat as gone. */
		log_debug("nbd: conn %u: send: %s", c->id, res ? strerror(-res) : "no progress");
		conn_kill(c);
		return;
	}
	while (n && (q = c->txq)) {
		uint32_t rem = req_reply_len(q) - q->sent;

		if (n < rem) {
			q->sent += (uint32_t)n;
			break;
		}
		n -= rem;
		c->txq = q->next;
		if (!c->txq) {
			c->txq_tail = &c->txq;
		}
		req_free(q);
	}
	conn_tx_kick(c);
	if (c->rx_blocked && c->free_reqs) {
		c->rx_blocked = false;
		conn_rx_process(c);
	}
	conn_check_drained(c);
}

/* Send as much of the reply queue as fits one sendmsg. */
static void conn_tx_kick(struct nbd_conn *c)
{
	struct io_uring_sqe *sqe;
	struct nbd_req *q;
	int n = 0;

	if (c->send_armed || !c->txq || c->state == NBD_CONN_DEAD) {
		return;
	}
	for (q = c->txq; q && n + 2 <= NBD_TX_IOV; q = q->next) {
		uint32_t off = q->sent;
		uint32_t data = req_reply_len(q) - (uint32_t)sizeof(q->reply);

		if (off < sizeof(q->reply)) {
			c->tx_iov[n].iov_base = (uint8_t *)&q->reply + off;
			c->tx_iov[n].iov_len = sizeof(q->reply) - off;
			n++;
			off = sizeof(q->reply);
		}
		off -= (uint32_t)sizeof(q->reply);
		if (off < data) {
			c->tx_iov[n].iov_base = q->buf + off;
			c->tx_iov[n].iov_len = data - off;
			n++;
		}
	}
	memset(&c->tx_msg, 0, sizeof(c->tx_msg));
	c->tx_msg.msg_iov = c->tx_iov;
	c->tx_msg.msg_iovlen = (size_t)n;
	c->send_armed = true;
	c->ops++;
	sqe = reactor_sqe(c->s->r);
	io_uring_prep_sendmsg(sqe, c->fd, &c->tx_msg, MSG_NOSIGNAL);
	reactor_sqe_set_op(sqe, &c->send_op, conn_tx_done);
}

static void conn_otx_send(struct nbd_conn *c);

static void conn_otx_done(struct reactor_op *op, int res)
{
	struct nbd_conn *c = container_of(op, struct nbd_conn, send_op);

	c->send_armed = false;
	c->ops--;
	if (c->state == NBD_CONN_DEAD || c->draining) {
		conn_kill(c);
		return;
	}
	if (res <= 0) {
		log_debug("nbd: conn %u: send: %s", c->id, res ? strerror(-res) : "no progress");
		conn_kill(c);
		return;
	}
	c->otx_off += (size_t)res;
	if (c->otx_off < c->otx_len) {
		conn_otx_send(c);
		return;
	}
	if (c->close_after_send) {
		conn_kill(c);
		return;
	}
	c->state = c->after_send;
	if (c->state == NBD_CONN_XMIT_HDR) {
		log_debug("nbd: conn %u: transmission phase", c->id);
		c->deadline_ns = 0;
	}
	conn_rx_process(c);
}

static void conn_otx_send(struct nbd_conn *c)
{
	struct io_uring_sqe *sqe = reactor_sqe(c->s->r);

	c->send_armed = true;
	c->ops++;
	io_uring_prep_send(sqe, c->fd, c->otx + c->otx_off, c->otx_len - c->otx_off, MSG_NOSIGNAL);
	reactor_sqe_set_op(sqe, &c->send_op, conn_otx_done);
}

/* Send what the option phase wrote into c->otx, then act on @act. */
static void conn_opt_reply(struct nbd_conn *c, size_t len, enum nbd_opt_action act)
{
	if (act == NBD_OPT_ACT_CLOSE) {
		log_warn("nbd: conn %u: option %u refused: closing", c->id, c->opt);
		c->s->stats.protocol_errors++;
		conn_kill(c);
		return;
	}
	c->otx_len = len;
	c->otx_off = 0;
	c->close_after_send = act == NBD_OPT_ACT_CLOSE_AFTER;
	c->after_send = act == NBD_OPT_ACT_TRANSMIT ? NBD_CONN_XMIT_HDR : NBD_CONN_OPT_HDR;
	c->state = NBD_CONN_OPT_SEND;
	conn_otx_send(c);
}

/* --- connection: receiving --- */

static void conn_recv_done(struct reactor_op *op, int res)
{
	struct nbd_conn *c = container_of(op, struct nbd_conn, recv_op);

	c->recv_armed = false;
	c->ops--;
	if (c->state == NBD_CONN_DEAD) {
		conn_kill(c);
		return;
	}
	if (c->draining) {
		conn_check_drained(c);
		return;
	}
	if (res <= 0) {
		if (res < 0) {
			log_debug("nbd: conn %u: recv: %s", c->id, strerror(-res));
		}
		/* The client is gone (or broke the stream): nobody reads replies. */
		conn_kill(c);
		return;
	}
	if (c->recv_direct) {
		c->cur->got += (uint32_t)res;
	} else {
		c->rx_end += (uint32_t)res;
	}
	conn_rx_process(c);
}

static void conn_recv_arm(struct nbd_conn *c, void *buf, size_t len, bool direct)
{
	struct io_uring_sqe *sqe = reactor_sqe(c->s->r);

	c->recv_armed = true;
	c->recv_direct = direct;
	c->ops++;
	io_uring_prep_recv(sqe, c->fd, buf, len, 0);
	reactor_sqe_set_op(sqe, &c->recv_op, conn_recv_done);
}

/* True when @need bytes wait at rx_start; else a recv is armed. */
static bool rx_need(struct nbd_conn *c, uint32_t need)
{
	uint32_t have = c->rx_end - c->rx_start;

	if (have >= need) {
		return true;
	}
	if (NBD_RX_SIZE - c->rx_start < need || c->rx_end == NBD_RX_SIZE) {
		memmove(c->rx, c->rx + c->rx_start, have);
		c->rx_start = 0;
		c->rx_end = have;
	}
	conn_recv_arm(c, c->rx + c->rx_end, NBD_RX_SIZE - c->rx_end, false);
	return false;
}

static void rx_consume(struct nbd_conn *c, uint32_t n)
{
	c->rx_start += n;
	if (c->rx_start == c->rx_end) {
		c->rx_start = c->rx_end = 0;
	}
}

static void conn_protocol_error(struct nbd_conn *c, const char *what)
{
	log_warn("nbd: conn %u: %s: closing", c->id, what);
	c->s->stats.protocol_errors++;
	conn_kill(c);
}

/* Count a valid request; a rejected one is a bad request. */
static void count_request(struct nbd_server *s, const struct nbd_req *q)
{
	if (q->res) {
		s->stats.bad_requests++;
		return;
	}
	switch (q->h.type) {
	case NBD_CMD_READ:
		s->stats.reads++;
		break;
	case NBD_CMD_WRITE:
		s->stats.writes++;
		break;
	case NBD_CMD_FLUSH:
		s->stats.flushes++;
		break;
	case NBD_CMD_TRIM:
		s->stats.trims++;
		break;
	case NBD_CMD_WRITE_ZEROES:
		s->stats.write_zeroes++;
		break;
	}
}

static void conn_drain(struct nbd_conn *c);

/* A request header is waiting: take a slot and start it (or its payload). */
static bool conn_rx_request(struct nbd_conn *c)
{
	struct nbd_server *s = c->s;
	struct nbd_req_hdr h;
	struct nbd_req *q;
	uint32_t payload;
	int rc;

	if (nbd_parse_request(c->rx + c->rx_start, &h)) {
		conn_protocol_error(c, "bad request magic");
		return false;
	}
	rx_consume(c, sizeof(struct nbd_request));
	rc = nbd_check_request(&s->exp, &h, &payload);
	if (rc == -EMSGSIZE) {
		conn_protocol_error(c, "write payload over the maximum");
		return false;
	}
	if (h.type == NBD_CMD_DISC) {
		log_debug("nbd: conn %u: disconnect requested", c->id);
		conn_drain(c);
		return false;
	}
	q = c->free_reqs;
	c->free_reqs = q->next;
	c->busy++;
	q->h = h;
	q->res = rc;
	q->fua_flush = false;
	q->got = 0;
	q->start_ns = reactor_now_ns();
	count_request(s, q);
	if (rc) {
		log_debug("nbd: conn %u: command %u flags %#x at %lu+%u rejected: %s", c->id,
			  h.type, h.flags, h.offset, h.length, strerror(-rc));
	}
	if (payload) {
		q->state = NBD_REQ_PAYLOAD;
		c->cur = q;
		c->state = NBD_CONN_XMIT_PAYLOAD;
		return true;
	}
	q->state = NBD_REQ_DEV; /* req_dispatch() decides */
	req_dispatch(q);
	return true;
}

/* Copy buffered payload bytes; true once the payload is complete. */
static bool conn_rx_payload(struct nbd_conn *c)
{
	struct nbd_req *q = c->cur;
	uint32_t avail = c->rx_end - c->rx_start;
	uint32_t n = q->h.length - q->got;

	if (n > avail) {
		n = avail;
	}
	memcpy(q->buf + q->got, c->rx + c->rx_start, n);
	q->got += n;
	rx_consume(c, n);
	if (q->got < q->h.length) {
		/* The ring is empty now: the rest lands in the buffer itself. */
		conn_recv_arm(c, q->buf + q->got, q->h.length - q->got, true);
		return false;
	}
	c->cur = NULL;
	c->state = NBD_CONN_XMIT_HDR;
	req_dispatch(q);
	return true;
}

static void conn_rx_process(struct nbd_conn *c)
{
	struct nbd_server *s = c->s;
	struct nbd_obuf ob = {.buf = c->otx, .cap = sizeof(c->otx)};
	enum nbd_opt_action act;

	for (;;) {
		if (c->recv_armed || c->draining || c->state == NBD_CONN_DEAD) {
			return;
		}
		switch (c->state) {
		case NBD_CONN_CLIENT_FLAGS:
			if (!rx_need(c, 4)) {
				return;
			}
			if (nbd_parse_client_flags(c->rx + c->rx_start, &c->no_zeroes)) {
				conn_protocol_error(c, "unknown client flags");
				return;
			}
			rx_consume(c, 4);
			c->state = NBD_CONN_OPT_HDR;
			break;
		case NBD_CONN_OPT_HDR:
			if (!rx_need(c, sizeof(struct nbd_opt_hdr))) {
				return;
			}
			if (nbd_parse_opt_hdr(c->rx + c->rx_start, &c->opt, &c->opt_len)) {
				conn_protocol_error(c, "bad option magic");
				return;
			}
			rx_consume(c, sizeof(struct nbd_opt_hdr));
			if (++c->nopts > NBD_MAX_OPTS) {
				conn_protocol_error(c, "too many options");
				return;
			}
			log_debug("nbd: conn %u: option %u, %u bytes", c->id, c->opt, c->opt_len);
			if (c->opt_len > NBD_OPT_MAX_LEN) {
				s->stats.protocol_errors++;
				act = nbd_opt_too_big(c->opt, &ob);
				conn_opt_reply(c, ob.len, act);
				return;
			}
			c->state = NBD_CONN_OPT_DATA;
			break;
		case NBD_CONN_OPT_DATA:
			if (!rx_need(c, c->opt_len)) {
				return;
			}
			act = nbd_opt_handle(&s->exp, c->no_zeroes, c->opt, c->rx + c->rx_start,
					     c->opt_len, &ob);
			rx_consume(c, c->opt_len);
			conn_opt_reply(c, ob.len, act);
			return;
		case NBD_CONN_XMIT_HDR:
			if (!c->free_reqs) {
				c->rx_blocked = true;
				return;
			}
			if (!rx_need(c, sizeof(struct nbd_request))) {
				return;
			}
			if (!conn_rx_request(c)) {
				return;
			}
			break;
		case NBD_CONN_XMIT_PAYLOAD:
			if (!conn_rx_payload(c)) {
				return;
			}
			break;
		default:
			return;
		}
	}
}

/* --- connection lifetime --- */

static void conn_cancel_done(struct reactor_op *op, int res)
{
	struct nbd_conn *c = container_of(op, struct nbd_conn, cancel_op);

	c->cancel_armed = false;
	c->ops--;
	if (c->state == NBD_CONN_DEAD) {
		conn_kill(c);
	} else {
		conn_check_drained(c);
	}
}

static void conn_cancel_recv(struct nbd_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed || c->cancel_armed) {
		return;
	}
	c->cancel_armed = true;
	c->ops++;
	sqe = reactor_sqe(c->s->r);
	io_uring_prep_cancel(sqe, &c->recv_op, 0);
	reactor_sqe_set_op(sqe, &c->cancel_op, conn_cancel_done);
}

static void conn_free(struct reactor_defer *d)
{
	struct nbd_conn *c = container_of(d, struct nbd_conn, free_defer);
	struct nbd_server *s = c->s;

	kassert(c->state == NBD_CONN_DEAD && !c->ops && !c->in_dev && !c->busy);
	close(c->fd);
	if (c->prev) {
		c->prev->next = c->next;
	} else {
		s->conns = c->next;
	}
	if (c->next) {
		c->next->prev = c->prev;
	}
	s->nconns--;
	munmap(c->slab, NBD_SLAB_SIZE);
	free(c);
	server_conns_gone(s);
	server_put(s);
}

/*
 * Hard close: shut the socket down, drop queued work; the memory goes once
 * our SQEs and the device's callbacks have all come back (each of those
 * completions calls this again on a dead connection). The free itself is
 * deferred to the next loop turn, so callers may still touch @c.
 */
static void conn_kill(struct nbd_conn *c)
{
	struct nbd_req *q;

	if (c->state != NBD_CONN_DEAD) {
		log_debug("nbd: conn %u: closing", c->id);
		c->state = NBD_CONN_DEAD;
		/* Wakes a pending recv (0) or send (EPIPE); the cancel is for
		 * kernels where a recv does not notice. */
		shutdown(c->fd, SHUT_RDWR);
		conn_cancel_recv(c);
		conn_unpark(c, 0);
		if (c->cur) {
			req_free(c->cur);
			c->cur = NULL;
		}
		while ((q = c->txq)) {
			c->txq = q->next;
			req_free(q);
		}
		c->txq_tail = &c->txq;
	}
	if (c->ops || c->in_dev || c->free_queued) {
		return;
	}
	/* Nothing can be armed on a dead connection any more. */
	c->free_queued = true;
	c->free_defer.fn = conn_free;
	reactor_defer(c->s->r, &c->free_defer);
}

/* Graceful close (NBD_CMD_DISC, server close): read nothing more, finish
 * the requests already read and send their replies, then close. */
static void conn_drain(struct nbd_conn *c)
{
	if (c->state == NBD_CONN_DEAD || c->draining) {
		return;
	}
	if (c->state < NBD_CONN_XMIT_HDR) {
		conn_kill(c); /* nothing is in flight before transmission */
		return;
	}
	c->draining = true;
	conn_cancel_recv(c);
	if (c->cur) {
		req_free(c->cur); /* its payload will never arrive */
		c->cur = NULL;
	}
	if (c->s->closing) {
		conn_unpark(c, -ESHUTDOWN);
	}
	conn_check_drained(c);
}

static void conn_check_drained(struct nbd_conn *c)
{
	if (c->draining && c->state != NBD_CONN_DEAD && !c->busy && !c->send_armed &&
	    !c->recv_armed && !c->cancel_armed) {
		conn_kill(c);
	}
}

static void conn_new(struct nbd_listener *l, int fd)
{
	struct nbd_server *s = l->s;
	struct nbd_greeting g;
	struct nbd_conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (!c) {
		goto out_close;
	}
	/* Buffers are touched only as requests use them. */
	/* Address space only: pages are touched (and count) as requests use
	 * them, and go back to the system when the connection closes. */
	c->slab = mmap(NULL, NBD_SLAB_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->slab == MAP_FAILED) {
		goto out_free;
	}
	if (l->tcp && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
		log_warn("nbd: TCP_NODELAY: %s", strerror(errno));
	}
	c->s = s;
	c->fd = fd;
	c->id = ++s->next_id;
	c->txq_tail = &c->txq;
	c->deadline_ns = reactor_now_ns() + NBD_HANDSHAKE_NS;
	for (unsigned int i = 0; i < NBD_CONN_DEPTH; i++) {
		struct nbd_req *q = &c->reqs[i];

		q->c = c;
		q->buf = c->slab + (size_t)i * NBD_MAX_PAYLOAD;
		q->next = c->free_reqs;
		c->free_reqs = q;
	}
	c->next = s->conns;
	if (s->conns) {
		s->conns->prev = c;
	}
	s->conns = c;
	s->nconns++;
	s->refs++;
	s->stats.connections++;
	log_debug("nbd: conn %u: accepted on %s", c->id, l->name);

	nbd_build_greeting(&g);
	memcpy(c->otx, &g, sizeof(g));
	c->otx_len = sizeof(g);
	c->after_send = NBD_CONN_CLIENT_FLAGS;
	c->state = NBD_CONN_OPT_SEND;
	conn_otx_send(c);
	sweep_arm(s);
	return;

out_free:
	free(c);
out_close:
	log_error("nbd: out of memory for a connection on %s", l->name);
	close(fd);
}

/* --- listeners --- */

static void accept_backoff_done(struct reactor_op *op, int res)
{
	struct nbd_listener *l = container_of(op, struct nbd_listener, backoff_op);
	struct nbd_server *s = l->s;

	if (!s->closing) {
		accept_arm(l);
	}
	server_put(s);
}

static void accept_done(struct reactor_op *op, int res)
{
	struct nbd_listener *l = container_of(op, struct nbd_listener, accept_op);
	struct nbd_server *s = l->s;
	struct io_uring_sqe *sqe;

	l->accept_armed = false;
	if (s->closing) {
		if (res >= 0) {
			close(res);
		}
		goto out_put;
	}
	if (res >= 0) {
		if (s->nconns >= s->max_conns) {
			log_warn("nbd: %s: %u connections already: refusing one", l->name,
				 s->nconns);
			close(res);
		} else {
			conn_new(l, res);
		}
		accept_arm(l);
		goto out_put;
	}
	switch (-res) {
	case EINTR:
	case EAGAIN:
	case ECONNABORTED:
	case EPROTO:
	case EPERM:
		accept_arm(l);
		break;
	default:
		/* EMFILE and friends: try again later rather than spin. */
		log_error("nbd: %s: accept: %s; retrying in 100 ms", l->name, strerror(-res));
		s->refs++;
		l->backoff_ts.tv_sec = 0;
		l->backoff_ts.tv_nsec = NBD_ACCEPT_BACKOFF_NS;
		sqe = reactor_sqe(s->r);
		io_uring_prep_timeout(sqe, &l->backoff_ts, 0, 0);
		reactor_sqe_set_op(sqe, &l->backoff_op, accept_backoff_done);
		break;
	}
out_put:
	server_put(s);
}

static void accept_cancel_done(struct reactor_op *op, int res)
{
	server_put(container_of(op, struct nbd_listener, cancel_op)->s);
}

static void accept_arm(struct nbd_listener *l)
{
	struct io_uring_sqe *sqe = reactor_sqe(l->s->r);

	l->accept_armed = true;
	l->s->refs++;
	io_uring_prep_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	reactor_sqe_set_op(sqe, &l->accept_op, accept_done);
}

static int listen_unix(struct nbd_server *s, const char *path, struct nbd_listener *l)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("nbd: unix socket path too long: %s", path);
		return -EINVAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	s->unix_path = strdup(path);
	if (!s->unix_path) {
		return -ENOMEM;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		log_error("nbd: unlink %s: %s", path, strerror(errno));
		goto out_close;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		log_error("nbd: bind %s: %s", path, strerror(errno));
		goto out_close;
	}
	if (chmod(path, 0660) < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		log_error("nbd: %s: %s", path, strerror(errno));
		goto out_unlink;
	}
	l->fd = fd;
	l->tcp = false;
	snprintf(l->name, sizeof(l->name), "unix:%s", path);
	return 0;

out_unlink:
	unlink(path);
out_close:
	close(fd);
	return rc;
}

static int listen_tcp(const char *addr, struct nbd_listener *l)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE,
	};
	struct addrinfo *res, *ai;
	char host[256], port[16];
	int fd = -1, rc, one = 1;

	if (xport_parse_addr(addr, host, sizeof(host), port, sizeof(port))) {
		log_error("nbd: bad TCP address \"%s\": expected host:port or [v6]:port", addr);
		return -EINVAL;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		log_error("nbd: cannot resolve \"%s\": %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	rc = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
			break;
		}
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_error("nbd: listen on %s: %s", addr, strerror(-rc));
		return rc;
	}
	l->fd = fd;
	l->tcp = true;
	snprintf(l->name, sizeof(l->name), "tcp:%s", addr);
	return 0;
}

/* --- API --- */

int nbd_server_create(struct reactor *r, struct blk_dev *dev, const struct nbd_server_opts *opts,
		      struct nbd_server **out)
{
	struct nbd_server *s;
	int rc;

	if (!opts || (!opts->unix_path && !opts->tcp_addr)) {
		return -EINVAL;
	}
	if (dev->block_size != NBD_BLOCK_MIN || dev->size % NBD_BLOCK_MIN) {
		log_error("nbd: %s: block size %u: only %u is served", dev->name, dev->block_size,
			  NBD_BLOCK_MIN);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->r = r;
	s->dev = dev;
	s->max_conns = opts->max_conns ? opts->max_conns : NBD_DEFAULT_CONNS;
	s->parked_tail = &s->parked;
	snprintf(s->desc, sizeof(s->desc), "Keel volume %s", dev->name);
	s->exp.name = dev->name;
	s->exp.description = s->desc;
	s->exp.size = dev->size;
	s->exp.read_only = dev->read_only;
	if (opts->unix_path) {
		rc = listen_unix(s, opts->unix_path, &s->lis[s->nlis]);
		if (rc) {
			goto out_close;
		}
		s->lis[s->nlis++].s = s;
	}
	if (opts->tcp_addr) {
		rc = listen_tcp(opts->tcp_addr, &s->lis[s->nlis]);
		if (rc) {
			goto out_close;
		}
		s->lis[s->nlis++].s = s;
	}
	for (unsigned int i = 0; i < s->nlis; i++) {
		accept_arm(&s->lis[i]);
	}
	log_info("nbd: serving \"%s\" (%lu bytes%s) on %s%s%s", dev->name, dev->size,
		 dev->read_only ? ", read-only" : "", s->lis[0].name, s->nlis > 1 ? " and " : "",
		 s->nlis > 1 ? s->lis[1].name : "");
	*out = s;
	return 0;

out_close:
	for (unsigned int i = 0; i < s->nlis; i++) {
		close(s->lis[i].fd);
	}
	if (s->nlis && s->unix_path) {
		unlink(s->unix_path);
	}
	free(s->unix_path);
	free(s);
	return rc;
}

static void grace_done(struct reactor_op *op, int res)
{
	struct nbd_server *s = container_of(op, struct nbd_server, grace_op);
	struct nbd_conn *c, *next;

	s->grace_armed = false;
	if (res != -ECANCELED) {
		/* Clients that do not read their replies do not hold us up. */
		for (c = s->conns; c; c = next) {
			next = c->next;
			log_warn("nbd: conn %u: not drained after close: dropping it", c->id);
			conn_kill(c);
		}
	}
	server_put(s);
}

void nbd_server_resize(struct nbd_server *s)
{
	s->exp.size = s->dev->size;
}

void nbd_server_close(struct nbd_server *s, void (*cb)(void *arg), void *arg)
{
	struct io_uring_sqe *sqe;
	struct nbd_conn *c, *next;

	kassert(!s->closing);
	s->closing = true;
	s->close_cb = cb;
	s->close_arg = arg;
	s->refs++; /* held until everything below is issued */
	for (unsigned int i = 0; i < s->nlis; i++) {
		struct nbd_listener *l = &s->lis[i];

		/* An accept holds its own reference to the socket: cancel it. */
		if (l->accept_armed) {
			s->refs++;
			sqe = reactor_sqe(s->r);
			io_uring_prep_cancel(sqe, &l->accept_op, 0);
			reactor_sqe_set_op(sqe, &l->cancel_op, accept_cancel_done);
		}
	}
	for (unsigned int i = 0; i < s->nlis; i++) {
		close(s->lis[i].fd);
	}
	if (s->unix_path) {
		unlink(s->unix_path);
	}
	if (s->sweep_armed) {
		s->refs++;
		sqe = reactor_sqe(s->r);
		io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&s->sweep_op, 0);
		reactor_sqe_set_op(sqe, &s->sweep_cancel_op, sweep_cancel_done);
	}
	if (s->conns) {
		s->grace_armed = true;
		s->refs++;
		s->grace_ts.tv_sec = NBD_CLOSE_GRACE_NS / 1000000000ull;
		s->grace_ts.tv_nsec = 0;
		sqe = reactor_sqe(s->r);
		io_uring_prep_timeout(sqe, &s->grace_ts, 0, 0);
		reactor_sqe_set_op(sqe, &s->grace_op, grace_done);
	}
	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_drain(c);
	}
	server_put(s);
}

void nbd_server_get_stats(const struct nbd_server *s, struct nbd_server_stats *out)
{
	*out = s->stats;
}

int nbd_server_format_stats(const struct nbd_server_stats *st, char *buf, size_t len)
{
	return snprintf(buf, len,
			"connections %" PRIu64 " reads %" PRIu64 " writes %" PRIu64
			" flushes %" PRIu64 " trims %" PRIu64 " write_zeroes %" PRIu64
			" bad_requests %" PRIu64 " io_errors %" PRIu64 " protocol_errors %" PRIu64
			" parked %" PRIu64 " bytes_read %" PRIu64 " bytes_written %" PRIu64
			" read_us %" PRIu64 " write_us %" PRIu64,
			st->connections, st->reads, st->writes, st->flushes, st->trims,
			st->write_zeroes, st->bad_requests, st->io_errors, st->protocol_errors,
			st->parked, st->bytes_read, st->bytes_written, st->read_ns / 1000,
			st->write_ns / 1000);
}
