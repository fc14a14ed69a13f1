/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_blk: a blk_dev as a vhost-user-blk backend (see vhost_blk.h and
 * docs/vhost-user.md). Three layers, each in its own file:
 * vhost_user.c checks every message, vhost_vring.c walks rings in the
 * frontend's memory, virtio_blk.c parses requests. This file is the glue:
 * the listening socket, one connection's message loop, queue start/stop,
 * eventfds, and request slots running on the blk_dev.
 *
 * Lifetimes. A connection (struct vhost_conn) is refcounted by everything
 * that can still call back into it: its socket operations, each eventfd
 * watcher with an operation queued, each request slot in use, the signal
 * deferral. Killing a connection (EOF, protocol error, close) cancels what
 * it can and forgets the rings; requests still on the device finish
 * against guest memory that stays mapped (memory tables are refcounted
 * too) and their completions go nowhere. The last reference frees it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/vhost_blk.h"
#include "client/vhost_user.h"
#include "client/vhost_vring.h"
#include "client/virtio_blk.h"
#include "common/log.h"
#include "common/xport.h"

#define VHOST_BLK_QUEUE_REQS 128u /* request slots per queue (in flight at once) */

#define VHOST_BLK_FEATURES                                                                         \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |                 \
	 (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX) |               \
	 (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                        \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |                          \
	 (1ull << VIRTIO_BLK_F_TOPOLOGY) | (1ull << VIRTIO_BLK_F_MQ) |                             \
	 (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES))

#define VHOST_BLK_PROTOCOL_FEATURES                                                                \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |          \
	 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |    \
	 (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD))

/* A handler's verdict beyond 0 / -errno (which closes the connection). */
#define VH_SOFT_FAIL 1 /* refused, connection stays: REPLY_ACK says so */
#define VH_DEFER     2 /* reply later (GET_VRING_BASE waits for its requests) */

struct vhost_conn;
struct vhost_queue;

/* A kick (read) or call (write) eventfd and its one io_uring operation. */
struct vhost_efd {
	struct reactor_op op;
	struct vhost_conn *c;
	struct vhost_queue *q;
	int fd;
	uint64_t val;
	bool busy;  /* an operation is queued */
	bool dead;  /* replaced or connection gone: close when idle */
	bool again; /* call: signal once more after this write */
};

enum vhost_req_state {
	VREQ_FREE = 0,
	VREQ_WAIT_DEV, /* the device said -EAGAIN: on vb->wait list */
	VREQ_RUNNING,  /* on the device */
};

struct vhost_req {
	struct vhost_queue *q;
	struct vhost_mem *mem; /* reference: the buffers stay mapped */
	enum vhost_req_state state;
	uint16_t head;
	uint32_t gen; /* queue generation at pop: a restarted ring drops us */
	uint32_t seg;
	uint64_t start_ns;	/* taken off the ring */
	struct vhost_req *next; /* free list or wait list */
	struct virtio_blk_req br;
	struct iovec iov[VHOST_VRING_MAX_IOV];
};

struct vhost_queue {
	struct vhost_conn *c;
	unsigned int idx;
	struct vhost_vring vr;
	struct vhost_user_vring_addr addr;
	bool num_set, addr_set;
	bool started; /* kick received, rings translated */
	bool enabled; /* SET_VRING_ENABLE 0 pauses (see docs) */
	bool processing, signal_pending, draining;
	uint32_t gen;
	struct vhost_efd *kick, *call;
	struct vhost_req *reqs, *free;
	unsigned int nreqs, inflight;
	uint16_t *resubmit;
	unsigned int nresubmit, resubmit_pos;
};

enum vhost_rx_state {
	VRX_HDR = 0,
	VRX_PAYLOAD,
	VRX_REPLY, /* sending a reply (or waiting to): not reading */
};

struct vhost_conn {
	struct vhost_blk *vb;
	int fd;
	unsigned int refs;
	bool dead;
	enum vhost_rx_state rx;
	bool rx_busy, tx_busy, hup_busy;
	struct reactor_op rx_op, tx_op, hup_op; /* hup: watch for EOF while not reading */
	struct msghdr rx_mh;
	struct iovec rx_iov;
	union {
		char buf[64]; /* >= CMSG_SPACE(8 ints), checked at create */
		size_t align; /* cmsghdr alignment (it ends in a flexible array) */
	} rx_cbuf;
	struct vhost_user_msg msg;
	size_t got;
	int fds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	struct vhost_user_msg reply;
	uint8_t tx_buf[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
	struct msghdr tx_mh;
	struct iovec tx_iov;
	union {
		char buf[32]; /* >= CMSG_SPACE(one int) */
		size_t align; /* cmsghdr alignment (it ends in a flexible array) */
	} tx_cbuf;
	size_t tx_len, tx_done;
	int tx_fd; /* sent with the reply, closed once sent */
	uint64_t features, protocol_features;
	struct vhost_mem *mem;
	void *inflight_map;
	size_t inflight_len;
	uint16_t inflight_nq, inflight_qs;
	int backend_fd;
	bool be_busy;
	struct reactor_op be_op;
	struct vhost_user_hdr be_msg;
	struct reactor_defer signal_defer;
	bool signal_scheduled;
	int drain_q; /* queue whose GET_VRING_BASE reply waits, or -1 */
	struct vhost_queue q[VHOST_BLK_MAX_QUEUES];
};

struct vhost_blk {
	struct reactor *r;
	struct blk_dev *dev;
	struct vhost_blk_opts opts;
	char *path;
	int listen_fd;
	bool accept_busy;
	struct reactor_op accept_op;
	struct vhost_conn *conn; /* the active one, or NULL */
	unsigned int nconns;	 /* allocated, dead ones included */
	unsigned int dev_inflight;
	struct vhost_req *wait_head, *wait_tail;
	struct virtio_blk_geom geom;
	struct vhost_blk_stats stats;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	struct reactor_defer close_defer;
};

static void noop_cb(struct reactor_op *op, int res)
{
	(void)op, (void)res;
}

static struct reactor_op vhost_cancel_op = {.cb = noop_cb};

static void cancel_op(struct reactor *r, struct reactor_op *op)
{
	struct io_uring_sqe *sqe = reactor_sqe(r);

	io_uring_prep_cancel(sqe, op, 0);
	reactor_sqe_set_op(sqe, &vhost_cancel_op, noop_cb);
}

/* ---- memory tables ---- */

static void mem_put(struct vhost_mem *m)
{
	if (!m || --m->refs) {
		return;
	}
	for (unsigned int i = 0; i < m->nregions; i++) {
		if (m->r[i].zero_copy) {
			xport_mem_unregister(m->r[i].host);
		}
		if (m->r[i].map_base) {
			munmap(m->r[i].map_base, m->r[i].map_len);
		}
	}
	free(m);
}

static struct vhost_mem *mem_get(struct vhost_mem *m)
{
	m->refs++;
	return m;
}

/* ---- connection lifetime ---- */

static void vb_maybe_closed(struct vhost_blk *vb);
static void queue_process(struct vhost_queue *q);
static void conn_kill(struct vhost_conn *c, bool protocol_error);

static void conn_get(struct vhost_conn *c)
{
	c->refs++;
}

static void conn_put(struct vhost_conn *c)
{
	struct vhost_blk *vb = c->vb;

	kassert(c->refs > 0);
	if (--c->refs) {
		return;
	}
	kassert(c->dead);
	for (unsigned int i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		free(c->q[i].reqs);
		free(c->q[i].resubmit);
	}
	mem_put(c->mem);
	if (c->inflight_map) {
		munmap(c->inflight_map, c->inflight_len);
	}
	if (c->backend_fd >= 0) {
		close(c->backend_fd);
	}
	if (c->fd >= 0) {
		close(c->fd);
	}
	if (c->tx_fd >= 0) {
		close(c->tx_fd);
	}
	free(c);
	vb->nconns--;
	vb_maybe_closed(vb);
}

/* The socket closes once nothing queued on it can still run (an
 * unsubmitted SQE would otherwise name a reused descriptor number). */
static void conn_sock_close(struct vhost_conn *c)
{
	if (c->dead && c->fd >= 0 && !c->rx_busy && !c->tx_busy && !c->hup_busy) {
		close(c->fd);
		c->fd = -1;
	}
}

/* ---- eventfds ---- */

static void efd_done(struct reactor_op *op, int res);

static struct vhost_efd *efd_new(struct vhost_conn *c, struct vhost_queue *q, int fd)
{
	struct vhost_efd *e = calloc(1, sizeof(*e));

	if (!e) {
		return NULL;
	}
	e->c = c;
	e->q = q;
	e->fd = fd;
	conn_get(c);
	return e;
}

static void efd_free(struct vhost_efd *e)
{
	struct vhost_conn *c = e->c;

	close(e->fd);
	free(e);
	conn_put(c);
}

static void efd_kill(struct vhost_efd *e, bool cancel)
{
	if (!e) {
		return;
	}
	e->dead = true;
	if (!e->busy) {
		efd_free(e);
	} else if (cancel) {
		cancel_op(e->c->vb->r, &e->op);
	}
}

static void kick_arm(struct vhost_efd *e)
{
	struct io_uring_sqe *sqe = reactor_sqe(e->c->vb->r);

	e->busy = true;
	io_uring_prep_read(sqe, e->fd, &e->val, sizeof(e->val), 0);
	reactor_sqe_set_op(sqe, &e->op, efd_done);
}

static void call_write(struct vhost_efd *e)
{
	struct io_uring_sqe *sqe;

	if (e->busy) {
		e->again = true;
		return;
	}
	e->val = 1;
	e->busy = true;
	sqe = reactor_sqe(e->c->vb->r);
	io_uring_prep_write(sqe, e->fd, &e->val, sizeof(e->val), 0);
	reactor_sqe_set_op(sqe, &e->op, efd_done);
}

static void efd_done(struct reactor_op *op, int res)
{
	struct vhost_efd *e = container_of(op, struct vhost_efd, op);

	e->busy = false;
	if (e->dead) {
		efd_free(e);
		return;
	}
	if (e->q->kick == e) {
		if (res < 0 && res != -EAGAIN && res != -EINTR) {
			log_warn("vhost queue %u: kick read failed: %s", e->q->idx, strerror(-res));
			return; /* stays idle until the frontend sends a new kick fd */
		}
		kick_arm(e);
		queue_process(e->q);
		return;
	}
	if (res < 0) {
		log_warn("vhost queue %u: call write failed: %s", e->q->idx, strerror(-res));
	}
	if (e->again) {
		e->again = false;
		call_write(e);
	}
}

/* ---- signalling (batched per loop turn) ---- */

static void signal_run(struct reactor_defer *d)
{
	struct vhost_conn *c = container_of(d, struct vhost_conn, signal_defer);

	c->signal_scheduled = false;
	for (unsigned int i = 0; i < VHOST_BLK_MAX_QUEUES && !c->dead; i++) {
		struct vhost_queue *q = &c->q[i];

		if (!q->signal_pending) {
			continue;
		}
		q->signal_pending = false;
		if (q->call && q->vr.used && vhost_vring_need_signal(&q->vr)) {
			call_write(q->call);
		}
	}
	conn_put(c);
}

static void signal_schedule(struct vhost_queue *q)
{
	struct vhost_conn *c = q->c;

	q->signal_pending = true;
	if (!c->signal_scheduled) {
		c->signal_scheduled = true;
		conn_get(c);
		c->signal_defer.fn = signal_run;
		reactor_defer(c->vb->r, &c->signal_defer);
	}
}

/* ---- requests ---- */

static void reply_send(struct vhost_conn *c);
static void drain_reply(struct vhost_conn *c, struct vhost_queue *q);

static bool req_live(const struct vhost_req *rq)
{
	return !rq->q->c->dead && rq->q->gen == rq->gen && rq->q->vr.used;
}

/* Answer the guest (when it can still hear us) and free the slot. */
static void req_finish(struct vhost_req *rq, int status, uint32_t len)
{
	struct vhost_queue *q = rq->q;
	struct vhost_conn *c = q->c;

	if (req_live(rq)) {
		if (status >= 0) {
			*rq->br.status_ptr = (uint8_t)status;
		}
		vhost_vring_push(&q->vr, rq->head, len);
		signal_schedule(q);
	}
	mem_put(rq->mem);
	rq->mem = NULL;
	rq->state = VREQ_FREE;
	rq->next = q->free;
	q->free = rq;
	q->inflight--;
	if (!c->dead) {
		if (q->draining && !q->inflight) {
			drain_reply(c, q);
		} else if (!q->processing) {
			queue_process(q);
		}
	}
	conn_put(c);
}

static void req_complete(struct vhost_req *rq, int res)
{
	struct vhost_blk_stats *st = &rq->q->c->vb->stats;
	uint8_t status = virtio_blk_status(res);

	if (res) {
		st->io_errors++;
		log_debug("vhost request on queue %u failed: %s", rq->q->idx, strerror(-res));
	} else {
		switch (rq->br.op) {
		case VIRTIO_BLK_OP_READ:
			st->reads++;
			st->bytes_read += rq->br.length;
			st->read_ns += reactor_now_ns() - rq->start_ns;
			break;
		case VIRTIO_BLK_OP_WRITE:
			st->writes++;
			st->bytes_written += rq->br.length;
			st->write_ns += reactor_now_ns() - rq->start_ns;
			break;
		case VIRTIO_BLK_OP_FLUSH:
			st->flushes++;
			break;
		case VIRTIO_BLK_OP_DISCARD:
			st->discards++;
			break;
		case VIRTIO_BLK_OP_WRITE_ZEROES:
			st->write_zeroes++;
			break;
		default:
			break;
		}
	}
	req_finish(rq, status, status == VIRTIO_BLK_S_OK ? rq->br.in_len : 1);
}

static void dev_done(void *arg, int res);

/* One step on the device: 0 (callback later), -EAGAIN, or -errno. */
static int req_submit(struct vhost_req *rq)
{
	struct blk_dev *d = rq->q->c->vb->dev;
	struct virtio_blk_req *b = &rq->br;

	switch (b->op) {
	case VIRTIO_BLK_OP_READ:
		return d->ops->readv(d, b->data, b->ndata, b->offset, dev_done, rq);
	case VIRTIO_BLK_OP_WRITE:
		return d->ops->writev(d, b->data, b->ndata, b->offset, dev_done, rq);
	case VIRTIO_BLK_OP_FLUSH:
		return d->ops->flush(d, dev_done, rq);
	case VIRTIO_BLK_OP_DISCARD:
		return d->ops->discard(d, b->segs[rq->seg].offset, b->segs[rq->seg].length,
				       dev_done, rq);
	case VIRTIO_BLK_OP_WRITE_ZEROES:
		return d->ops->write_zeroes(d, b->segs[rq->seg].offset, b->segs[rq->seg].length,
					    dev_done, rq);
	default:
		kassert(0);
		return -EINVAL;
	}
}

/* Hand @rq to the device: -EAGAIN (device full, nothing changed) or 0
 * (running, or already answered). */
static int req_try(struct vhost_req *rq)
{
	struct vhost_blk *vb = rq->q->c->vb;
	int rc;

	if (rq->q->c->dead) {
		req_finish(rq, -1, 0); /* nobody to answer: do not touch the device */
		return 0;
	}
	rc = req_submit(rq);
	if (rc == -EAGAIN) {
		return rc;
	}
	if (rc) {
		req_complete(rq, rc);
		return 0;
	}
	rq->state = VREQ_RUNNING;
	vb->dev_inflight++;
	return 0;
}

/* Start @rq, or queue it behind those already waiting for the device
 * (one FIFO per export, so the device sees requests in arrival order). */
static void req_start(struct vhost_req *rq)
{
	struct vhost_blk *vb = rq->q->c->vb;

	if (!vb->wait_head && req_try(rq) != -EAGAIN) {
		return;
	}
	rq->state = VREQ_WAIT_DEV;
	rq->next = NULL;
	if (vb->wait_tail) {
		vb->wait_tail->next = rq;
	} else {
		vb->wait_head = rq;
	}
	vb->wait_tail = rq;
}

/* A device slot freed: retry what waits, oldest first, until -EAGAIN again. */
static void vb_run_waiters(struct vhost_blk *vb)
{
	struct vhost_req *rq;

	while ((rq = vb->wait_head)) {
		vb->wait_head = rq->next;
		if (!vb->wait_head) {
			vb->wait_tail = NULL;
		}
		if (req_try(rq) == -EAGAIN) {
			rq->next = vb->wait_head; /* back at the head: order kept */
			vb->wait_head = rq;
			if (!vb->wait_tail) {
				vb->wait_tail = rq;
			}
			return;
		}
	}
}

static void dev_done(void *arg, int res)
{
	struct vhost_req *rq = arg;
	struct vhost_blk *vb = rq->q->c->vb;

	vb->dev_inflight--;
	if (!res &&
	    (rq->br.op == VIRTIO_BLK_OP_DISCARD || rq->br.op == VIRTIO_BLK_OP_WRITE_ZEROES) &&
	    ++rq->seg < rq->br.nsegs) {
		req_start(rq);
	} else {
		req_complete(rq, res);
	}
	vb_run_waiters(vb);
	vb_maybe_closed(vb);
}

/* Take one request at @head: walk, parse, start or answer at once. */
static void req_begin(struct vhost_queue *q, uint16_t head)
{
	struct vhost_conn *c = q->c;
	struct vhost_blk *vb = c->vb;
	struct vhost_req *rq = q->free;
	unsigned int out_num, in_num;
	int rc;

	q->free = rq->next;
	q->inflight++;
	conn_get(c);
	rq->state = VREQ_RUNNING;
	rq->head = head;
	rq->gen = q->gen;
	rq->seg = 0;
	rq->start_ns = reactor_now_ns();
	rq->mem = mem_get(c->mem);
	rc = vhost_vring_walk(&q->vr, c->mem, head, rq->iov, VHOST_VRING_MAX_IOV, &out_num,
			      &in_num);
	if (!rc) {
		rc = virtio_blk_parse(&vb->geom, rq->iov, out_num, in_num, &rq->br);
	}
	if (rc) {
		/* No status byte we may write: a chain outside guest memory,
		 * a loop, a bad indirect table, no header or no status. The
		 * guest broke the ring protocol, as QEMU's virtio_error()
		 * would say: the connection goes (the device is broken for
		 * this guest only), instead of a used entry without a status
		 * that a driver could take for success. */
		vb->stats.bad_requests++;
		log_warn("vhost queue %u: bad descriptor chain at %u (%s): closing the connection",
			 q->idx, head, strerror(-rc));
		conn_kill(c, true);
		req_finish(rq, -1, 0); /* not pushed: the connection is gone */
		return;
	}
	switch (rq->br.op) {
	case VIRTIO_BLK_OP_NONE:
		vb->stats.bad_requests++;
		req_finish(rq, rq->br.status, 1);
		return;
	case VIRTIO_BLK_OP_GET_ID: {
		uint32_t n = virtio_blk_fill_id(&rq->br, vb->dev->serial);

		vb->stats.get_ids++;
		req_finish(rq, VIRTIO_BLK_S_OK, n + 1);
		return;
	}
	default:
		req_start(rq);
	}
}

static void queue_process(struct vhost_queue *q)
{
	struct vhost_conn *c = q->c;

	if (q->processing) {
		return;
	}
	conn_get(c); /* a protocol error below may drop the last other reference */
	q->processing = true;
	while (!c->dead && q->started && q->enabled && !q->draining && q->free) {
		uint16_t head;
		int rc;

		if (q->resubmit_pos < q->nresubmit) {
			head = q->resubmit[q->resubmit_pos++];
			c->vb->stats.resubmitted++;
			req_begin(q, head);
			continue;
		}
		vhost_vring_disable_notify(&q->vr);
		rc = vhost_vring_pop(&q->vr, &head);
		if (rc < 0) {
			/* An avail index that jumps past the ring or a head out
			 * of range: nothing on this ring can be trusted, and a
			 * stopped queue would hang the guest. */
			log_warn("vhost queue %u: guest broke the avail ring: closing the connection",
				 q->idx);
			c->vb->stats.bad_requests++;
			conn_kill(c, true);
			break;
		}
		if (!rc) {
			if (vhost_vring_enable_notify(&q->vr)) {
				continue;
			}
			break;
		}
		req_begin(q, head);
	}
	q->processing = false;
	conn_put(c);
}

/* ---- queues ---- */

static int queue_map_rings(struct vhost_queue *q)
{
	struct vhost_mem *m = q->c->mem;
	struct vhost_vring *vr = &q->vr;

	vr->desc = NULL;
	vr->avail = NULL;
	vr->used = NULL;
	if (!m || !q->num_set || !q->addr_set) {
		return -EINVAL;
	}
	vr->desc = vhost_mem_uva_to_host(m, q->addr.desc_uva, VRING_DESC_SIZE(vr->num));
	vr->avail = vhost_mem_uva_to_host(m, q->addr.avail_uva, VRING_AVAIL_SIZE(vr->num));
	vr->used = vhost_mem_uva_to_host(m, q->addr.used_uva, VRING_USED_SIZE(vr->num));
	if (!vr->desc || !vr->avail || !vr->used || (uintptr_t)vr->desc % 16 ||
	    (uintptr_t)vr->avail % 2 || (uintptr_t)vr->used % 4) {
		vr->desc = NULL;
		vr->avail = NULL;
		vr->used = NULL;
		return -EFAULT;
	}
	return 0;
}

/* Stop taking requests; the ones running finish (answered if gen matches). */
static void queue_stop(struct vhost_queue *q, bool forget)
{
	q->started = false;
	efd_kill(q->kick, true);
	q->kick = NULL;
	q->nresubmit = 0;
	q->resubmit_pos = 0;
	if (forget) {
		q->gen++;
		efd_kill(q->call, true);
		q->call = NULL;
		q->num_set = false;
		q->addr_set = false;
		q->vr.desc = NULL;
		q->vr.avail = NULL;
		q->vr.used = NULL;
		q->vr.inflight = NULL;
	}
}

static int queue_start(struct vhost_queue *q)
{
	struct vhost_conn *c = q->c;
	struct vhost_vring *vr = &q->vr;
	int rc;

	if (!vr->used) {
		return -EINVAL;
	}
	if (!q->reqs) {
		/* No more slots than the device takes at once: beyond its
		 * depth requests would only wait on the -EAGAIN list. */
		uint32_t depth = c->vb->dev->queue_depth;

		q->nreqs = depth && depth < VHOST_BLK_QUEUE_REQS ? depth : VHOST_BLK_QUEUE_REQS;
		q->reqs = calloc(q->nreqs, sizeof(*q->reqs));
		if (!q->reqs) {
			return -ENOMEM;
		}
		for (unsigned int i = 0; i < q->nreqs; i++) {
			q->reqs[i].q = q;
			q->reqs[i].next = q->free;
			q->free = &q->reqs[i];
		}
	}
	vr->event_idx = c->features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	vr->indirect = c->features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	vr->used_idx = __atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE);
	vr->signalled_valid = false;
	vr->inflight = NULL;
	q->nresubmit = 0;
	q->resubmit_pos = 0;
	if (c->inflight_map && q->idx < c->inflight_nq) {
		if (c->inflight_qs != vr->num) {
			log_error("vhost queue %u: inflight region for %u entries, ring has %u",
				  q->idx, c->inflight_qs, vr->num);
			return -EINVAL;
		}
		vr->inflight = (struct vhost_inflight_queue *)((uint8_t *)c->inflight_map +
							       q->idx * vhost_inflight_queue_size(
										vr->num));
		if (!q->resubmit) {
			q->resubmit = calloc(VHOST_BLK_MAX_QUEUE_SIZE, sizeof(uint16_t));
			if (!q->resubmit) {
				return -ENOMEM;
			}
		}
		rc = vhost_vring_inflight_recover(vr, q->resubmit);
		if (rc < 0) {
			return rc;
		}
		q->nresubmit = (unsigned int)rc;
		if (rc) {
			log_info("vhost queue %u: resubmitting %d in-flight requests", q->idx, rc);
		}
	}
	q->started = true;
	log_debug("vhost queue %u started: num %u avail %u used %u", q->idx, vr->num,
		  vr->last_avail, vr->used_idx);
	return 0;
}

/* ---- messages ---- */

static int take_fd(struct vhost_conn *c, unsigned int i)
{
	int fd = c->fds[i];

	c->fds[i] = -1;
	return fd;
}

static void reply_u64(struct vhost_conn *c, uint64_t v)
{
	c->reply.hdr.size = sizeof(uint64_t);
	c->reply.p.u64 = v;
}

static int msg_set_mem_table(struct vhost_conn *c)
{
	const struct vhost_user_mem *um = &c->msg.p.mem;
	struct vhost_mem *m = calloc(1, sizeof(*m));
	int rc = 0;

	if (!m) {
		return -ENOMEM;
	}
	m->refs = 1;
	for (uint32_t i = 0; i < um->nregions; i++) {
		const struct vhost_user_region *ur = &um->regions[i];
		struct vhost_mem_region *r = &m->r[i];
		int fd = take_fd(c, i);
		struct stat st;
		void *p;

		if (fstat(fd, &st) || (uint64_t)st.st_size < ur->mmap_offset + ur->size) {
			log_error("vhost: memory region %u past the end of its file", i);
			close(fd);
			rc = -EINVAL;
			goto out_put;
		}
		p = mmap(NULL, ur->mmap_offset + ur->size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE, fd, 0);
		close(fd);
		if (p == MAP_FAILED) {
			rc = -errno;
			log_error("vhost: mapping memory region %u: %s", i, strerror(-rc));
			goto out_put;
		}
		r->map_base = p;
		r->map_len = ur->mmap_offset + ur->size;
		r->host = (uint8_t *)p + ur->mmap_offset;
		r->gpa = ur->gpa;
		r->size = ur->size;
		r->uva = ur->uva;
		m->nregions = i + 1;
		/* Guest buffers are sent from directly on RDMA (write payloads
		 * the servers read in place). Requests hold the table, so no
		 * send from a region is in flight when mem_put() drops it. */
		r->zero_copy = !xport_mem_register(r->host, r->size);
		log_debug("vhost: region %u gpa 0x%lx size 0x%lx uva 0x%lx off 0x%lx", i, ur->gpa,
			  ur->size, ur->uva, ur->mmap_offset);
	}
	mem_put(c->mem);
	c->mem = m;
	/* The frontend may replace the table under running rings (memory
	 * hotplug): find the rings again in the new mappings. */
	for (unsigned int i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct vhost_queue *q = &c->q[i];

		if (q->addr_set && queue_map_rings(q)) {
			log_warn("vhost queue %u: rings outside the new memory table", i);
			queue_stop(q, true);
		}
	}
	return 0;
out_put:
	mem_put(m);
	return rc;
}

static int msg_vring_fd(struct vhost_conn *c, struct vhost_queue *q)
{
	uint64_t v = c->msg.p.u64;
	int fd = (v & VHOST_USER_VRING_NOFD) ? -1 : take_fd(c, 0);
	struct vhost_efd *e = NULL;
	int rc;

	switch (c->msg.hdr.request) {
	case VHOST_USER_SET_VRING_ERR:
		if (fd >= 0) {
			close(fd); /* we never report ring errors this way */
		}
		return 0;
	case VHOST_USER_SET_VRING_CALL:
		efd_kill(q->call, true);
		q->call = NULL;
		if (fd >= 0) {
			q->call = efd_new(c, q, fd);
			if (!q->call) {
				close(fd);
				return -ENOMEM;
			}
			/* Completions pushed while there was no call fd (QEMU
			 * sends it after the kick, and resubmitted requests may
			 * finish in between) were never signalled: one spurious
			 * interrupt is harmless, a lost one hangs the guest. */
			if (q->started) {
				call_write(q->call);
			}
		}
		return 0;
	default: /* SET_VRING_KICK: the ring starts */
		queue_stop(q, false);
		if (fd < 0) {
			return -EOPNOTSUPP; /* polling without a kick fd: not offered */
		}
		e = efd_new(c, q, fd);
		if (!e) {
			close(fd);
			return -ENOMEM;
		}
		q->kick = e;
		rc = queue_start(q);
		if (rc) {
			return rc;
		}
		kick_arm(e);
		queue_process(q);
		return 0;
	}
}

static void drain_reply(struct vhost_conn *c, struct vhost_queue *q)
{
	if (c->hup_busy) {
		cancel_op(c->vb->r, &c->hup_op);
	}
	q->draining = false;
	c->drain_q = -1;
	c->reply.hdr.size = sizeof(struct vhost_user_vring_state);
	c->reply.p.state.index = q->idx;
	c->reply.p.state.num = q->vr.last_avail;
	q->gen++;
	reply_send(c);
}

static int msg_get_inflight(struct vhost_conn *c)
{
	const struct vhost_user_inflight *in = &c->msg.p.inflight;
	uint64_t qsz = vhost_inflight_queue_size(in->queue_size);
	size_t len = (size_t)(qsz * in->num_queues);
	uint8_t *p;
	int fd, rc;

	fd = memfd_create("keel-vhost-inflight", MFD_CLOEXEC);
	if (fd < 0) {
		return -errno;
	}
	if (ftruncate(fd, (off_t)len)) {
		rc = -errno;
		goto out_close;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto out_close;
	}
	for (uint16_t i = 0; i < in->num_queues; i++) {
		struct vhost_inflight_queue *iq = (struct vhost_inflight_queue *)(p + i * qsz);

		iq->desc_num = in->queue_size; /* version 0: initialised at ring start */
	}
	munmap(p, len);
	c->reply.hdr.size = sizeof(struct vhost_user_inflight);
	c->reply.p.inflight = (struct vhost_user_inflight){
		.mmap_size = len,
		.mmap_offset = 0,
		.num_queues = in->num_queues,
		.queue_size = in->queue_size,
	};
	c->tx_fd = fd;
	return 0;
out_close:
	close(fd);
	return rc;
}

static int msg_set_inflight(struct vhost_conn *c)
{
	const struct vhost_user_inflight *in = &c->msg.p.inflight;
	int fd = take_fd(c, 0);
	struct stat st;
	void *p;
	int rc = 0;

	for (unsigned int i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		if (c->q[i].inflight || c->q[i].started) {
			rc = -EBUSY; /* only between ring stop and start */
			goto out_close;
		}
	}
	if (in->mmap_size < vhost_inflight_queue_size(in->queue_size) * in->num_queues ||
	    fstat(fd, &st) || (uint64_t)st.st_size < in->mmap_offset + in->mmap_size ||
	    in->mmap_offset % (uint64_t)sysconf(_SC_PAGESIZE)) {
		rc = -EINVAL;
		goto out_close;
	}
	p = mmap(NULL, in->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)in->mmap_offset);
	if (p == MAP_FAILED) {
		rc = -errno;
		goto out_close;
	}
	if (c->inflight_map) {
		munmap(c->inflight_map, c->inflight_len);
	}
	c->inflight_map = p;
	c->inflight_len = in->mmap_size;
	c->inflight_nq = in->num_queues;
	c->inflight_qs = in->queue_size;
out_close:
	close(fd);
	return rc;
}

static int msg_get_config(struct vhost_conn *c)
{
	struct vhost_user_config *req = &c->msg.p.config, *out = &c->reply.p.config;
	uint8_t space[VHOST_USER_CONFIG_MAX] = {0};
	struct virtio_blk_config cfg;

	c->vb->geom.capacity = c->vb->dev->size;
	virtio_blk_fill_config(&c->vb->geom, c->vb->opts.num_queues, &cfg);
	memcpy(space, &cfg, sizeof(cfg));
	out->offset = req->offset;
	out->size = req->size;
	out->flags = 0;
	memcpy(out->data, space + req->offset, req->size);
	c->reply.hdr.size = 12 + req->size;
	return 0;
}

/* Returns 0, VH_SOFT_FAIL, VH_DEFER, or -errno (close the connection). */
static int msg_dispatch(struct vhost_conn *c)
{
	struct vhost_user_msg *m = &c->msg;
	struct vhost_blk *vb = c->vb;
	struct vhost_queue *q =
		&c->q[m->p.state.index < VHOST_BLK_MAX_QUEUES ? m->p.state.index : 0];

	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES: {
		uint64_t f = VHOST_BLK_FEATURES;

		if (vb->dev->read_only) {
			f |= 1ull << VIRTIO_BLK_F_RO;
		}
		reply_u64(c, f);
		return 0;
	}
	case VHOST_USER_SET_FEATURES:
		if (m->p.u64 & ~(VHOST_BLK_FEATURES | (1ull << VIRTIO_BLK_F_RO))) {
			return -EINVAL;
		}
		c->features = m->p.u64;
		log_debug("vhost: features 0x%lx", c->features);
		return 0;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		reply_u64(c, VHOST_BLK_PROTOCOL_FEATURES);
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (m->p.u64 & ~VHOST_BLK_PROTOCOL_FEATURES) {
			return -EINVAL;
		}
		c->protocol_features = m->p.u64;
		log_debug("vhost: protocol features 0x%lx", c->protocol_features);
		return 0;
	case VHOST_USER_GET_QUEUE_NUM:
		reply_u64(c, vb->opts.num_queues);
		return 0;
	case VHOST_USER_SET_OWNER:
		return 0;
	case VHOST_USER_RESET_OWNER:
		for (unsigned int i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
			queue_stop(&c->q[i], true);
		}
		c->features = 0;
		return 0;
	case VHOST_USER_SET_MEM_TABLE:
		return msg_set_mem_table(c);
	case VHOST_USER_SET_VRING_NUM:
		if (q->started || m->p.state.index >= vb->opts.num_queues) {
			return -EINVAL;
		}
		q->vr.num = (uint16_t)m->p.state.num;
		q->num_set = true;
		q->addr_set = false;
		q->vr.used = NULL;
		return 0;
	case VHOST_USER_SET_VRING_ADDR:
		if (q->started || m->p.state.index >= vb->opts.num_queues) {
			return -EINVAL;
		}
		q->addr = m->p.addr;
		q->addr_set = true;
		return queue_map_rings(q);
	case VHOST_USER_SET_VRING_BASE:
		if (q->started) {
			return -EINVAL;
		}
		q->vr.last_avail = (uint16_t)m->p.state.num;
		return 0;
	case VHOST_USER_GET_VRING_BASE:
		queue_stop(q, false);
		if (q->inflight) {
			q->draining = true;
			c->drain_q = (int)q->idx;
			return VH_DEFER;
		}
		c->reply.hdr.size = sizeof(struct vhost_user_vring_state);
		c->reply.p.state.index = q->idx;
		c->reply.p.state.num = q->vr.last_avail;
		q->gen++;
		return 0;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		if ((m->p.u64 & VHOST_USER_VRING_IDX_MASK) >= vb->opts.num_queues) {
			return -EINVAL;
		}
		return msg_vring_fd(c, &c->q[m->p.u64 & VHOST_USER_VRING_IDX_MASK]);
	case VHOST_USER_SET_VRING_ENABLE:
		q->enabled = m->p.state.num;
		queue_process(q);
		return 0;
	case VHOST_USER_SET_BACKEND_REQ_FD:
		if (c->backend_fd >= 0) {
			close(c->backend_fd);
		}
		c->backend_fd = take_fd(c, 0);
		return 0;
	case VHOST_USER_GET_CONFIG:
		return msg_get_config(c);
	case VHOST_USER_SET_CONFIG:
		return VH_SOFT_FAIL; /* nothing writable (no CONFIG_WCE) */
	case VHOST_USER_GET_INFLIGHT_FD:
		return msg_get_inflight(c);
	case VHOST_USER_SET_INFLIGHT_FD:
		return msg_set_inflight(c);
	default:
		return -EOPNOTSUPP;
	}
}

/* ---- socket I/O ---- */

static void rx_arm(struct vhost_conn *c);

static void tx_done(struct reactor_op *op, int res)
{
	struct vhost_conn *c = container_of(op, struct vhost_conn, tx_op);

	c->tx_busy = false;
	conn_sock_close(c);
	if (c->tx_fd >= 0) {
		close(c->tx_fd); /* the frontend holds its copy now (or never will) */
		c->tx_fd = -1;
	}
	if (!c->dead) {
		if (res <= 0) {
			conn_kill(c, false);
		} else if ((c->tx_done += (size_t)res) < c->tx_len) {
			c->tx_iov.iov_base = c->tx_buf + c->tx_done;
			c->tx_iov.iov_len = c->tx_len - c->tx_done;
			c->tx_mh.msg_control = NULL;
			c->tx_mh.msg_controllen = 0;
			struct io_uring_sqe *sqe = reactor_sqe(c->vb->r);

			c->tx_busy = true;
			conn_get(c);
			io_uring_prep_sendmsg(sqe, c->fd, &c->tx_mh, MSG_NOSIGNAL);
			reactor_sqe_set_op(sqe, &c->tx_op, tx_done);
		} else {
			rx_arm(c);
		}
	}
	conn_put(c);
}

static void reply_send(struct vhost_conn *c)
{
	struct io_uring_sqe *sqe;

	c->reply.hdr.request = c->msg.hdr.request;
	c->reply.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
	c->tx_len = VHOST_USER_HDR_SIZE + c->reply.hdr.size;
	c->tx_done = 0;
	memcpy(c->tx_buf, &c->reply.hdr, VHOST_USER_HDR_SIZE);
	memcpy(c->tx_buf + VHOST_USER_HDR_SIZE, &c->reply.p, c->reply.hdr.size);
	c->tx_iov.iov_base = c->tx_buf;
	c->tx_iov.iov_len = c->tx_len;
	memset(&c->tx_mh, 0, sizeof(c->tx_mh));
	c->tx_mh.msg_iov = &c->tx_iov;
	c->tx_mh.msg_iovlen = 1;
	if (c->tx_fd >= 0) {
		struct cmsghdr *cm;

		c->tx_mh.msg_control = c->tx_cbuf.buf;
		c->tx_mh.msg_controllen = sizeof(c->tx_cbuf.buf);
		cm = CMSG_FIRSTHDR(&c->tx_mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &c->tx_fd, sizeof(int));
	}
	c->tx_busy = true;
	conn_get(c);
	sqe = reactor_sqe(c->vb->r);
	io_uring_prep_sendmsg(sqe, c->fd, &c->tx_mh, MSG_NOSIGNAL);
	reactor_sqe_set_op(sqe, &c->tx_op, tx_done);
}

static void hup_done(struct reactor_op *op, int res)
{
	struct vhost_conn *c = container_of(op, struct vhost_conn, hup_op);

	c->hup_busy = false;
	if (!c->dead && res > 0 && (res & (POLLRDHUP | POLLHUP | POLLERR))) {
		conn_kill(c, false);
	}
	conn_sock_close(c);
	conn_put(c);
}

static void hup_arm(struct vhost_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->hup_busy) {
		return; /* the previous watch is still being cancelled */
	}
	sqe = reactor_sqe(c->vb->r);
	c->hup_busy = true;
	conn_get(c);
	io_uring_prep_poll_add(sqe, c->fd, POLLRDHUP);
	reactor_sqe_set_op(sqe, &c->hup_op, hup_done);
}

static void close_fds(struct vhost_conn *c)
{
	for (unsigned int i = 0; i < c->nfds; i++) {
		if (c->fds[i] >= 0) {
			close(c->fds[i]);
		}
	}
	c->nfds = 0;
}

static void msg_handle(struct vhost_conn *c)
{
	struct vhost_user_msg *m = &c->msg;
	bool need_ack;
	int rc;

	rc = vhost_user_check_msg(m, c->nfds, VHOST_BLK_MAX_QUEUES);
	log_debug("vhost: %s (%u) size %u fds %u%s", vhost_user_req_name(m->hdr.request),
		  m->hdr.request, m->hdr.size, c->nfds, rc ? " (malformed)" : "");
	if (!rc) {
		memset(&c->reply, 0, sizeof(c->reply.hdr));
		rc = msg_dispatch(c);
	}
	close_fds(c);
	if (rc < 0) {
		log_error("vhost: %s from the frontend refused (%s): closing the connection",
			  vhost_user_req_name(m->hdr.request), strerror(-rc));
		conn_kill(c, true);
		return;
	}
	c->rx = VRX_REPLY;
	if (rc == VH_DEFER) {
		hup_arm(c); /* not reading meanwhile: still notice a hangup */
		return;
	}
	need_ack = (m->hdr.flags & VHOST_USER_NEED_REPLY) &&
		   (c->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	if (vhost_user_has_reply(m->hdr.request)) {
		reply_send(c);
	} else if (need_ack) {
		reply_u64(c, rc == VH_SOFT_FAIL);
		reply_send(c);
	} else {
		rx_arm(c);
	}
}

static void rx_done(struct reactor_op *op, int res);

static void rx_arm(struct vhost_conn *c)
{
	struct io_uring_sqe *sqe = reactor_sqe(c->vb->r);

	memset(&c->rx_mh, 0, sizeof(c->rx_mh));
	if (c->rx != VRX_PAYLOAD) {
		if (c->rx == VRX_REPLY) {
			c->rx = VRX_HDR;
			c->got = 0;
			c->nfds = 0;
		}
		c->rx_iov.iov_base = (uint8_t *)&c->msg.hdr + c->got;
		c->rx_iov.iov_len = VHOST_USER_HDR_SIZE - c->got;
		c->rx_mh.msg_control = c->rx_cbuf.buf;
		c->rx_mh.msg_controllen = sizeof(c->rx_cbuf.buf);
	} else {
		c->rx_iov.iov_base = (uint8_t *)&c->msg.p + c->got;
		c->rx_iov.iov_len = c->msg.hdr.size - c->got;
	}
	c->rx_mh.msg_iov = &c->rx_iov;
	c->rx_mh.msg_iovlen = 1;
	c->rx_busy = true;
	conn_get(c);
	io_uring_prep_recvmsg(sqe, c->fd, &c->rx_mh, MSG_CMSG_CLOEXEC);
	reactor_sqe_set_op(sqe, &c->rx_op, rx_done);
}

/* Collect SCM_RIGHTS descriptors; false on a truncated or foreign cmsg. */
static bool rx_take_fds(struct vhost_conn *c)
{
	bool ok = !(c->rx_mh.msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&c->rx_mh); cm; cm = CMSG_NXTHDR(&c->rx_mh, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			ok = false;
			continue;
		}
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->nfds < VHOST_USER_MAX_FDS) {
				c->fds[c->nfds++] = fd;
			} else {
				close(fd);
				ok = false;
			}
		}
	}
	return ok;
}

static void rx_done(struct reactor_op *op, int res)
{
	struct vhost_conn *c = container_of(op, struct vhost_conn, rx_op);
	int rc;

	c->rx_busy = false;
	if (c->rx == VRX_HDR && res > 0 && !rx_take_fds(c)) {
		res = -EPROTO;
	}
	if (c->dead) {
		close_fds(c);
		conn_sock_close(c);
		goto out_put;
	}
	if (res <= 0) {
		if (res < 0) {
			log_warn("vhost: frontend connection: %s", strerror(-res));
		}
		conn_kill(c, res == -EPROTO);
		goto out_put;
	}
	c->got += (size_t)res;
	if (c->rx == VRX_HDR) {
		if (c->got < VHOST_USER_HDR_SIZE) {
			rx_arm(c);
			goto out_put;
		}
		rc = vhost_user_check_hdr(&c->msg.hdr);
		if (rc) {
			log_error("vhost: bad message header (request %u flags 0x%x size %u): %s",
				  c->msg.hdr.request, c->msg.hdr.flags, c->msg.hdr.size,
				  strerror(-rc));
			close_fds(c);
			conn_kill(c, true);
			goto out_put;
		}
		memset(&c->msg.p, 0, sizeof(c->msg.p));
		c->got = 0;
		if (c->msg.hdr.size) {
			c->rx = VRX_PAYLOAD;
			rx_arm(c);
			goto out_put;
		}
	} else if (c->got < c->msg.hdr.size) {
		rx_arm(c);
		goto out_put;
	}
	msg_handle(c);
out_put:
	conn_put(c);
}

static void conn_kill(struct vhost_conn *c, bool protocol_error)
{
	struct vhost_blk *vb = c->vb;

	if (c->dead) {
		return;
	}
	c->dead = true;
	if (protocol_error) {
		vb->stats.protocol_errors++;
	}
	log_info("vhost: frontend disconnected%s", protocol_error ? " (protocol error)" : "");
	if (c->rx_busy) {
		cancel_op(vb->r, &c->rx_op);
	}
	if (c->tx_busy) {
		cancel_op(vb->r, &c->tx_op);
	}
	if (c->be_busy) {
		cancel_op(vb->r, &c->be_op);
	}
	if (c->hup_busy) {
		cancel_op(vb->r, &c->hup_op);
	}
	for (unsigned int i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct vhost_queue *q = &c->q[i];

		queue_stop(q, true);
		q->draining = false;
	}
	conn_sock_close(c);
	if (vb->conn == c) {
		vb->conn = NULL;
	}
	conn_put(c); /* the connection's own reference */
}

/* ---- listening ---- */

static void accept_arm(struct vhost_blk *vb);

static bool peer_allowed(const struct vhost_blk *vb, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len)) {
		return false;
	}
	if (cr.uid == 0 || cr.uid == geteuid() ||
	    (vb->opts.allow_uid != (uid_t)-1 && cr.uid == vb->opts.allow_uid) ||
	    (vb->opts.allow_gid != (gid_t)-1 && cr.gid == vb->opts.allow_gid)) {
		return true;
	}
	log_warn("vhost: refusing frontend pid %d uid %u gid %u", cr.pid, cr.uid, cr.gid);
	return false;
}

static void conn_start(struct vhost_blk *vb, int fd)
{
	struct vhost_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		log_error("vhost: no memory for a connection");
		close(fd);
		return;
	}
	c->vb = vb;
	c->fd = fd;
	c->refs = 1;
	c->backend_fd = -1;
	c->tx_fd = -1;
	c->drain_q = -1;
	c->rx = VRX_REPLY; /* rx_arm starts a fresh header */
	for (unsigned int i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		c->q[i].c = c;
		c->q[i].idx = i;
		c->q[i].enabled = true;
	}
	vb->conn = c;
	vb->nconns++;
	vb->stats.connections++;
	log_info("vhost: frontend connected");
	rx_arm(c);
}

static void accept_done(struct reactor_op *op, int res)
{
	struct vhost_blk *vb = container_of(op, struct vhost_blk, accept_op);

	vb->accept_busy = false;
	if (vb->closing) {
		if (res >= 0) {
			close(res);
		}
		vb_maybe_closed(vb);
		return;
	}
	if (res >= 0) {
		if (vb->conn) {
			log_warn("vhost: a frontend is already connected: refusing another");
			close(res);
		} else if (!peer_allowed(vb, res)) {
			close(res);
		} else {
			conn_start(vb, res);
		}
	} else if (res != -EINTR && res != -ECONNABORTED) {
		log_error("vhost: accept: %s", strerror(-res));
	}
	accept_arm(vb);
}

static void accept_arm(struct vhost_blk *vb)
{
	struct io_uring_sqe *sqe = reactor_sqe(vb->r);

	vb->accept_busy = true;
	io_uring_prep_accept(sqe, vb->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	reactor_sqe_set_op(sqe, &vb->accept_op, accept_done);
}

/* The socket file is mode 0660; it belongs to @uid / @gid when those are
 * set (-1: unchanged), so the QEMU user or group can connect at all: the
 * SO_PEERCRED check on accept then decides per connection. */
static int listen_unix(const char *path, uid_t uid, gid_t gid, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		return -EINVAL;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	if (unlink(path) && errno != ENOENT) {
		rc = -errno;
		goto out_close;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0660) ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid)) || listen(fd, 8)) {
		rc = -errno;
		goto out_close;
	}
	*out = fd;
	return 0;
out_close:
	close(fd);
	return rc;
}

int vhost_blk_create(struct reactor *r, struct blk_dev *dev, const struct vhost_blk_opts *opts,
		     struct vhost_blk **out)
{
	struct vhost_blk *vb;
	int rc;

	if (!opts || !opts->socket_path || !*opts->socket_path ||
	    opts->num_queues > VHOST_BLK_MAX_QUEUES || !dev || dev->block_size != BLK_DEV_BLOCK ||
	    !dev->size || dev->size % BLK_DEV_BLOCK) {
		return -EINVAL;
	}
	kassert(CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS) <=
		sizeof(((struct vhost_conn *)0)->rx_cbuf.buf));
	kassert(CMSG_SPACE(sizeof(int)) <= sizeof(((struct vhost_conn *)0)->tx_cbuf.buf));
	vb = calloc(1, sizeof(*vb));
	if (!vb) {
		return -ENOMEM;
	}
	vb->r = r;
	vb->dev = dev;
	vb->opts = *opts;
	if (!vb->opts.num_queues) {
		vb->opts.num_queues = 1;
	}
	vb->path = strdup(opts->socket_path);
	if (!vb->path) {
		rc = -ENOMEM;
		goto out_free;
	}
	vb->opts.socket_path = vb->path;
	vb->geom = (struct virtio_blk_geom){
		.capacity = dev->size,
		.read_only = dev->read_only,
		.flush = true,
		.discard = true,
		.write_zeroes = true,
	};
	rc = listen_unix(vb->path, opts->allow_uid, opts->allow_gid, &vb->listen_fd);
	if (rc) {
		goto out_free;
	}
	accept_arm(vb);
	log_info("vhost-user-blk listening on %s (%u queues)", vb->path, vb->opts.num_queues);
	*out = vb;
	return 0;
out_free:
	free(vb->path);
	free(vb);
	return rc;
}

static void close_run(struct reactor_defer *d)
{
	struct vhost_blk *vb = container_of(d, struct vhost_blk, close_defer);
	void (*cb)(void *arg) = vb->close_cb;
	void *arg = vb->close_arg;

	free(vb->path);
	free(vb);
	if (cb) {
		cb(arg);
	}
}

static void vb_maybe_closed(struct vhost_blk *vb)
{
	if (!vb->closing || vb->accept_busy || vb->nconns || vb->dev_inflight || vb->wait_head ||
	    vb->listen_fd < 0) {
		return;
	}
	close(vb->listen_fd);
	vb->listen_fd = -1;
	vb->close_defer.fn = close_run;
	reactor_defer(vb->r, &vb->close_defer);
}

void vhost_blk_close(struct vhost_blk *vb, void (*cb)(void *arg), void *arg)
{
	kassert(!vb->closing);
	vb->closing = true;
	vb->close_cb = cb;
	vb->close_arg = arg;
	unlink(vb->path);
	if (vb->accept_busy) {
		cancel_op(vb->r, &vb->accept_op);
	}
	if (vb->conn) {
		conn_kill(vb->conn, false);
	}
	vb_maybe_closed(vb);
}

static void be_done(struct reactor_op *op, int res)
{
	struct vhost_conn *c = container_of(op, struct vhost_conn, be_op);

	c->be_busy = false;
	if (res < 0 && !c->dead) {
		log_warn("vhost: config-change notification failed: %s", strerror(-res));
	}
	conn_put(c);
}

void vhost_blk_resize(struct vhost_blk *vb)
{
	struct vhost_conn *c = vb->conn;
	struct io_uring_sqe *sqe;
	const uint64_t need = (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ) |
			      (1ull << VHOST_USER_PROTOCOL_F_CONFIG);

	vb->geom.capacity = vb->dev->size;
	if (!c || c->dead || c->backend_fd < 0 || (c->protocol_features & need) != need ||
	    c->be_busy) {
		return;
	}
	c->be_msg = (struct vhost_user_hdr){
		.request = VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
		.flags = VHOST_USER_VERSION,
		.size = 0,
	};
	c->be_busy = true;
	conn_get(c);
	sqe = reactor_sqe(vb->r);
	io_uring_prep_send(sqe, c->backend_fd, &c->be_msg, sizeof(c->be_msg), MSG_NOSIGNAL);
	reactor_sqe_set_op(sqe, &c->be_op, be_done);
}

void vhost_blk_get_stats(const struct vhost_blk *vb, struct vhost_blk_stats *out)
{
	*out = vb->stats;
}

int vhost_blk_format_stats(const struct vhost_blk_stats *s, char *buf, size_t len)
{
	return snprintf(buf, len,
			"connections %" PRIu64 " reads %" PRIu64 " writes %" PRIu64
			" flushes %" PRIu64 " discards %" PRIu64 " write_zeroes %" PRIu64
			" bad_requests %" PRIu64 " io_errors %" PRIu64 " protocol_errors %" PRIu64
			" resubmitted %" PRIu64 " get_ids %" PRIu64 " bytes_read %" PRIu64
			" bytes_written %" PRIu64 " read_us %" PRIu64 " write_us %" PRIu64,
			s->connections, s->reads, s->writes, s->flushes, s->discards,
			s->write_zeroes, s->bad_requests, s->io_errors, s->protocol_errors,
			s->resubmitted, s->get_ids, s->bytes_read, s->bytes_written,
			s->read_ns / 1000, s->write_ns / 1000);
}
