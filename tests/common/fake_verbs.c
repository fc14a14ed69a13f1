/* SPDX-License-Identifier: Apache-2.0 */
/* A software RDMA device for unit tests: see fake_verbs.h. */
#include "fake_verbs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

#define FAKE_MAX_SGE	  32
#define FAKE_PDATA_MAX	  196 /* IB CM REP private data */
#define FAKE_REQ_PDATA	  56  /* rdma_cm's limit for a connect request (RDMA_PS_TCP) */
#define FAKE_CCH_EVENTS	  1024
#define FAKE_LOCAL_IP	  0xc0000264u /* 192.0.2.100: every active id's source address */
#define FAKE_REJ_INVALID  8	      /* IB CM reject reason: invalid service ID (no listener) */
#define FAKE_REJ_CONSUMER 28	      /* IB CM reject reason: consumer defined (rdma_reject) */

struct fake_obj {
	enum fake_kind kind;
	bool alive;
	bool counted;
	struct fake_obj *all_next;
};

enum fake_role {
	ROLE_ACTIVE,  /* rdma_create_id() by the user */
	ROLE_PASSIVE, /* made by a connect request to a listener */
	ROLE_LISTEN,
};

struct fake_ech {
	struct fake_obj o;
	struct rdma_event_channel ch;
	struct fake_ev *head, **tail;
};

struct fake_id {
	struct fake_obj o;
	struct rdma_cm_id id;
	enum fake_role role;
	bool bound, accepted, rejected, connected, disconnected;
	struct fake_id *peer;	  /* the other end of the connection */
	struct fake_id *listener; /* passive: the listening id it came to */
	unsigned int unacked;	  /* events taken, not acknowledged */
};

struct fake_ev {
	struct fake_obj o;
	struct rdma_cm_event ev;
	struct fake_id *id;
	struct fake_ev *next;
	bool got, acked;
	uint8_t pdata[FAKE_PDATA_MAX];
};

struct fake_pd {
	struct fake_obj o;
	struct ibv_pd pd;
};

struct fake_mr {
	struct fake_obj o;
	struct ibv_mr mr;
	struct fake_pd *pd;
	unsigned int access;
};

struct fake_cq;

struct fake_cch {
	struct fake_obj o;
	struct ibv_comp_channel ch;
	struct fake_cq *evq[FAKE_CCH_EVENTS];
	unsigned int evh, evn;
};

struct fake_qp;

struct fake_wc {
	struct ibv_wc wc;
	struct fake_qp *qp;
	bool sq;
};

struct fake_cq {
	struct fake_obj o;
	struct ibv_cq cq;
	struct fake_cch *ch;
	struct fake_wc *q;
	unsigned int cap, head, n;
	bool armed, overrun, mute;
	unsigned int unacked; /* events taken, not acknowledged */
};

struct fake_wr {
	uint64_t wr_id;
	enum ibv_wr_opcode opcode;
	bool signaled;
	int nsge;
	struct ibv_sge sge[FAKE_MAX_SGE];
	uint64_t raddr;
	uint32_t rkey;
};

/* Work requests posted and not yet executed, in order. */
struct fake_wq {
	struct fake_wr *w;
	unsigned int cap, head, n;
};

struct fake_qp {
	struct fake_obj o;
	struct ibv_qp qp;
	struct fake_id *fid;
	struct fake_pd *pd;
	struct fake_cq *scq, *rcq;
	struct ibv_qp_cap cap;
	struct fake_wq sq, rq;
	unsigned int sq_used, rq_used; /* posted, completion not yet polled */
	struct fake_qp *peer;
	enum ibv_wc_status fail_next;
	uint64_t sends;
};

static int fake_poll_cq(struct ibv_cq *cq, int num, struct ibv_wc *wc);
static int fake_req_notify_cq(struct ibv_cq *cq, int solicited_only);
static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
static int fake_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);

static struct ibv_device fake_dev = {
	.node_type = IBV_NODE_CA,
	.transport_type = IBV_TRANSPORT_IB,
	.name = "fake0",
	.dev_name = "uverbs0",
};

static struct ibv_context fake_ctx = {
	.device = &fake_dev,
	.ops =
		{
			.poll_cq = fake_poll_cq,
			.req_notify_cq = fake_req_notify_cq,
			.post_send = fake_post_send,
			.post_recv = fake_post_recv,
		},
	.cmd_fd = -1,
	.async_fd = -1,
	.num_comp_vectors = 1,
};

static struct {
	pthread_mutex_t lock;
	struct fake_obj *all; /* newest first */
	unsigned int created[FAKE_KINDS], destroyed[FAKE_KINDS];
	unsigned int violations;
	int ndev;
	int on_addr, on_route, on_connect;
	int fail_post[2][2]; /* [side][send] */
	int fail_reg;
	bool hold, hold_established;
	uint64_t rng;
	uint32_t next_key, next_qpn;
	uint16_t next_port;
	struct fake_stats st;
} F = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const kind_names[FAKE_KINDS] = {
	[FAKE_DEVLIST] = "device list",
	[FAKE_ECH] = "event channel",
	[FAKE_ID] = "cm id",
	[FAKE_EVENT] = "cm event",
	[FAKE_PD] = "PD",
	[FAKE_CCH] = "comp channel",
	[FAKE_CQ] = "CQ",
	[FAKE_QP] = "QP",
	[FAKE_MR] = "MR",
};

static void lock(void)
{
	pthread_mutex_lock(&F.lock);
}

static void unlock(void)
{
	pthread_mutex_unlock(&F.lock);
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void violation(const char *fmt, ...)
{
	va_list ap;

	F.violations++;
	fprintf(stderr, "fake_verbs: VIOLATION: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void *obj_new(size_t size, enum fake_kind kind, bool counted)
{
	struct fake_obj *o = calloc(1, size);

	if (!o) {
		abort();
	}
	o->kind = kind;
	o->alive = true;
	o->counted = counted;
	o->all_next = F.all;
	F.all = o;
	if (counted) {
		F.created[kind]++;
	}
	return o;
}

static void obj_count(struct fake_obj *o)
{
	if (!o->counted) {
		o->counted = true;
		F.created[o->kind]++;
	}
}

static void obj_kill(struct fake_obj *o)
{
	o->alive = false;
	if (o->counted) {
		F.destroyed[o->kind]++;
	}
}

/* A live object of @kind, or a violation naming @what. */
static bool obj_ok(const struct fake_obj *o, enum fake_kind kind, const char *what)
{
	if (!o) {
		violation("%s: NULL %s", what, kind_names[kind]);
		return false;
	}
	if (o->kind != kind) {
		violation("%s: not a %s", what, kind_names[kind]);
		return false;
	}
	if (!o->alive) {
		violation("%s: %s already destroyed", what, kind_names[kind]);
		return false;
	}
	return true;
}

static void efd_raise(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one)) {
		violation("eventfd write: %s", strerror(errno));
	}
}

static void efd_lower(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v)) {
		violation("eventfd read: %s", strerror(errno));
	}
}

static bool fd_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && !(fl & O_NONBLOCK);
}

static uint64_t rng_next(void)
{
	/* xorshift64 */
	F.rng ^= F.rng << 13;
	F.rng ^= F.rng >> 7;
	F.rng ^= F.rng << 17;
	return F.rng;
}

static uint32_t key_next(void)
{
	/* Keys that differ in every byte: a wrong one never matches by luck. */
	F.next_key++;
	return (F.next_key * 0x9e3779b1u) | 1;
}

#define OBJ(type, ptr, member) ((ptr) ? container_of(ptr, type, member) : NULL)
#define OBJ_OK(p, kind, what)  obj_ok((p) ? &(p)->o : NULL, kind, what)

static struct fake_ech *ech_of(struct rdma_event_channel *ch)
{
	return OBJ(struct fake_ech, ch, ch);
}

static struct fake_id *id_of(struct rdma_cm_id *id)
{
	return OBJ(struct fake_id, id, id);
}

static struct fake_pd *pd_of(struct ibv_pd *pd)
{
	return OBJ(struct fake_pd, pd, pd);
}

static struct fake_cq *cq_of(struct ibv_cq *cq)
{
	return OBJ(struct fake_cq, cq, cq);
}

static struct fake_cch *cch_of(struct ibv_comp_channel *ch)
{
	return OBJ(struct fake_cch, ch, ch);
}

static struct fake_qp *qp_of(struct ibv_qp *qp)
{
	return OBJ(struct fake_qp, qp, qp);
}

/* --- rdma_cm events --- */

static void ev_queue(struct fake_id *id, enum rdma_cm_event_type type, int status,
		     const void *pdata, size_t len)
{
	struct fake_ech *ch = ech_of(id->id.channel);
	struct fake_ev *ev;

	if (!ch || !ch->o.alive) {
		violation("event %s for an id whose channel is destroyed", rdma_event_str(type));
		return;
	}
	ev = obj_new(sizeof(*ev), FAKE_EVENT, false);
	ev->id = id;
	ev->ev.id = &id->id;
	ev->ev.listen_id =
		id->listener && type == RDMA_CM_EVENT_CONNECT_REQUEST ? &id->listener->id : NULL;
	ev->ev.event = type;
	ev->ev.status = status;
	if (len > FAKE_PDATA_MAX) {
		len = FAKE_PDATA_MAX;
	}
	if (len) {
		memcpy(ev->pdata, pdata, len);
		ev->ev.param.conn.private_data = ev->pdata;
		ev->ev.param.conn.private_data_len = (uint8_t)len;
	}
	ev->ev.param.conn.responder_resources = 1;
	ev->ev.param.conn.initiator_depth = 1;
	if (!ch->head) {
		efd_raise(ch->ch.fd);
	}
	*ch->tail = ev;
	ch->tail = &ev->next;
}

/* Does @ev belong to @arg (an id)? */
static bool ev_of_id(const struct fake_ev *ev, const void *arg)
{
	return ev->id == arg;
}

/* Is @ev a connection request to the listener @arg? */
static bool ev_request_to(const struct fake_ev *ev, const void *arg)
{
	return ev->ev.event == RDMA_CM_EVENT_CONNECT_REQUEST && ev->id->listener == arg;
}

static bool ev_any(const struct fake_ev *ev, const void *arg)
{
	return true;
}

/* Take the events of @ch not yet taken that @match out of it, keeping their
 * order: onto channel @to, or dropped (as the kernel drops the events of a
 * destroyed id, and the id of a connection request never taken). */
static void ev_move(struct fake_ech *ch, bool (*match)(const struct fake_ev *, const void *),
		    const void *arg, struct fake_ech *to)
{
	struct fake_ev **pp = &ch->head, *ev;
	bool had = ch->head != NULL;

	while ((ev = *pp)) {
		if (!match(ev, arg)) {
			pp = &ev->next;
			continue;
		}
		*pp = ev->next;
		ev->next = NULL;
		if (to) {
			if (!to->head) {
				efd_raise(to->ch.fd);
			}
			*to->tail = ev;
			to->tail = &ev->next;
			continue;
		}
		obj_kill(&ev->o);
		if (ev->ev.event == RDMA_CM_EVENT_CONNECT_REQUEST && !ev->id->o.counted) {
			obj_kill(&ev->id->o);
		}
	}
	ch->tail = pp;
	if (had && !ch->head) {
		efd_lower(ch->ch.fd);
	}
}

/* --- completions --- */

static void cch_raise(struct fake_cch *ch, struct fake_cq *cq)
{
	if (ch->evn == FAKE_CCH_EVENTS) {
		violation("completion channel holds %u events nobody took", ch->evn);
		return;
	}
	if (!ch->evn) {
		efd_raise(ch->ch.fd);
	}
	ch->evq[(ch->evh + ch->evn++) % FAKE_CCH_EVENTS] = cq;
}

static void cq_push(struct fake_cq *cq, struct fake_qp *qp, bool sq, const struct fake_wr *w,
		    enum ibv_wc_status status, enum ibv_wc_opcode opcode, uint32_t len)
{
	struct fake_wc *e;

	if (!cq->o.alive) {
		violation("completion for QP %u on a destroyed CQ", qp->qp.qp_num);
		return;
	}
	if (cq->n == cq->cap) {
		if (!cq->overrun) {
			violation("CQ overrun: %u completions not polled", cq->n);
		}
		cq->overrun = true;
	} else {
		e = &cq->q[(cq->head + cq->n++) % cq->cap];
		memset(e, 0, sizeof(*e));
		e->wc.wr_id = w->wr_id;
		e->wc.status = status;
		e->wc.opcode = opcode;
		e->wc.byte_len = len;
		e->wc.qp_num = qp->qp.qp_num;
		e->qp = qp;
		e->sq = sq;
	}
	if (cq->armed && !cq->mute && cq->ch) {
		cq->armed = false;
		cch_raise(cq->ch, cq);
	}
}

static enum ibv_wc_opcode wc_opcode(enum ibv_wr_opcode op)
{
	switch (op) {
	case IBV_WR_RDMA_READ:
		return IBV_WC_RDMA_READ;
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return IBV_WC_RDMA_WRITE;
	default:
		return IBV_WC_SEND;
	}
}

static void complete_send(struct fake_qp *q, const struct fake_wr *w, enum ibv_wc_status status,
			  uint32_t len)
{
	if (status == IBV_WC_SUCCESS && !w->signaled) {
		q->sq_used--;
		return;
	}
	cq_push(q->scq, q, true, w, status, wc_opcode(w->opcode), len);
}

static void complete_recv(struct fake_qp *q, const struct fake_wr *w, enum ibv_wc_status status,
			  uint32_t len)
{
	cq_push(q->rcq, q, false, w, status, IBV_WC_RECV, len);
}

static void wq_push(struct fake_wq *wq, const struct fake_wr *w)
{
	wq->w[(wq->head + wq->n++) % wq->cap] = *w;
}

static struct fake_wr *wq_pop(struct fake_wq *wq)
{
	struct fake_wr *w = &wq->w[wq->head];

	wq->head = (wq->head + 1) % wq->cap;
	wq->n--;
	return w;
}

/* The QP goes to error: everything posted flushes. */
static void qp_error(struct fake_qp *q)
{
	if (q->qp.state == IBV_QPS_ERR) {
		return;
	}
	q->qp.state = IBV_QPS_ERR;
	while (q->sq.n) {
		complete_send(q, wq_pop(&q->sq), IBV_WC_WR_FLUSH_ERR, 0);
		F.st.flushed++;
	}
	while (q->rq.n) {
		complete_recv(q, wq_pop(&q->rq), IBV_WC_WR_FLUSH_ERR, 0);
		F.st.flushed++;
	}
}

/* --- the wire --- */

/* The live MR of @pd with key @key (lkey, or rkey when @remote) covering
 * [addr, addr + len) with @access. */
static struct fake_mr *mr_find(struct fake_pd *pd, uint32_t key, bool remote, uint64_t addr,
			       uint64_t len, unsigned int access)
{
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		struct fake_mr *mr = (struct fake_mr *)o;

		if (o->kind != FAKE_MR || !o->alive || mr->pd != pd ||
		    (remote ? mr->mr.rkey : mr->mr.lkey) != key) {
			continue;
		}
		if (addr < (uintptr_t)mr->mr.addr ||
		    addr + len > (uintptr_t)mr->mr.addr + mr->mr.length ||
		    (mr->access & access) != access) {
			return NULL;
		}
		return mr;
	}
	return NULL;
}

static bool sges_ok(struct fake_qp *q, const struct fake_wr *w, unsigned int access,
		    const char *what, uint64_t *total)
{
	*total = 0;
	for (int i = 0; i < w->nsge; i++) {
		const struct ibv_sge *s = &w->sge[i];

		if (s->length && !mr_find(q->pd, s->lkey, false, s->addr, s->length, access)) {
			violation("%s on QP %u: %u bytes at %#llx lkey %#x are in no live MR%s",
				  what, q->qp.qp_num, s->length, (unsigned long long)s->addr,
				  s->lkey, access ? " with local write" : "");
			return false;
		}
		*total += s->length;
	}
	return true;
}

static void sge_copy_in(const struct fake_wr *w, const uint8_t *src, uint64_t len)
{
	for (int i = 0; i < w->nsge && len; i++) {
		uint64_t n = w->sge[i].length < len ? w->sge[i].length : len;

		memcpy((void *)(uintptr_t)w->sge[i].addr, src, n);
		src += n;
		len -= n;
	}
}

static void sge_copy_out(const struct fake_wr *w, uint8_t *dst)
{
	for (int i = 0; i < w->nsge; i++) {
		memcpy(dst, (const void *)(uintptr_t)w->sge[i].addr, w->sge[i].length);
		dst += w->sge[i].length;
	}
}

static void exec_send(struct fake_qp *q, const struct fake_wr *w)
{
	struct fake_qp *p = q->peer;
	struct fake_wr *r;
	uint64_t len, room;
	uint8_t *buf;

	if (!sges_ok(q, w, 0, "SEND", &len)) {
		complete_send(q, w, IBV_WC_LOC_PROT_ERR, 0);
		qp_error(q);
		return;
	}
	if (!p->rq.n) {
		violation("RNR: a SEND of %llu bytes from QP %u found no receive posted on QP %u",
			  (unsigned long long)len, q->qp.qp_num, p->qp.qp_num);
		complete_send(q, w, IBV_WC_RNR_RETRY_EXC_ERR, 0);
		qp_error(q);
		return;
	}
	r = wq_pop(&p->rq);
	if (!sges_ok(p, r, IBV_ACCESS_LOCAL_WRITE, "receive", &room)) {
		complete_recv(p, r, IBV_WC_LOC_PROT_ERR, 0);
		qp_error(p);
		complete_send(q, w, IBV_WC_REM_OP_ERR, 0);
		qp_error(q);
		return;
	}
	if (len > room) {
		violation("a SEND of %llu bytes from QP %u into a receive of %llu on QP %u",
			  (unsigned long long)len, q->qp.qp_num, (unsigned long long)room,
			  p->qp.qp_num);
		complete_recv(p, r, IBV_WC_LOC_LEN_ERR, 0);
		qp_error(p);
		complete_send(q, w, IBV_WC_REM_INV_REQ_ERR, 0);
		qp_error(q);
		return;
	}
	buf = malloc(len ? len : 1);
	if (!buf) {
		abort();
	}
	sge_copy_out(w, buf);
	sge_copy_in(r, buf, len);
	free(buf);
	F.st.sends++;
	F.st.send_bytes += len;
	F.st.sends_by[q->fid->role == ROLE_PASSIVE]++;
	q->sends++;
	complete_recv(p, r, IBV_WC_SUCCESS, (uint32_t)len);
	complete_send(q, w, IBV_WC_SUCCESS, (uint32_t)len);
}

static void exec_rdma(struct fake_qp *q, const struct fake_wr *w)
{
	bool read = w->opcode == IBV_WR_RDMA_READ;
	struct fake_qp *p = q->peer;
	uint64_t len;
	uint8_t *buf;

	if (!sges_ok(q, w, read ? IBV_ACCESS_LOCAL_WRITE : 0, read ? "RDMA READ" : "RDMA WRITE",
		     &len)) {
		complete_send(q, w, IBV_WC_LOC_PROT_ERR, 0);
		qp_error(q);
		return;
	}
	if (!mr_find(p->pd, w->rkey, true, w->raddr, len,
		     read ? IBV_ACCESS_REMOTE_READ : IBV_ACCESS_REMOTE_WRITE)) {
		violation("RDMA %s of %llu bytes at %#llx rkey %#x from QP %u: not inside a live "
			  "MR of the peer with remote %s access and that rkey",
			  read ? "READ" : "WRITE", (unsigned long long)len,
			  (unsigned long long)w->raddr, w->rkey, q->qp.qp_num,
			  read ? "read" : "write");
		complete_send(q, w, IBV_WC_REM_ACCESS_ERR, 0);
		qp_error(q);
		return;
	}
	if (read) {
		sge_copy_in(w, (const uint8_t *)(uintptr_t)w->raddr, len);
		F.st.reads++;
		F.st.read_bytes += len;
	} else {
		buf = malloc(len ? len : 1);
		if (!buf) {
			abort();
		}
		sge_copy_out(w, buf);
		memcpy((void *)(uintptr_t)w->raddr, buf, len);
		free(buf);
	}
	complete_send(q, w, IBV_WC_SUCCESS, (uint32_t)len);
}

static bool peer_up(const struct fake_qp *q)
{
	return q->peer && q->peer->o.alive && q->peer->qp.state == IBV_QPS_RTS;
}

static bool qp_runnable(const struct fake_qp *q)
{
	return q->o.alive && q->qp.state == IBV_QPS_RTS && q->sq.n &&
	       (q->fail_next != IBV_WC_SUCCESS || peer_up(q));
}

static void exec_one(struct fake_qp *q)
{
	struct fake_wr *w = wq_pop(&q->sq);

	if (q->fail_next != IBV_WC_SUCCESS) {
		complete_send(q, w, q->fail_next, 0);
		q->fail_next = IBV_WC_SUCCESS;
		qp_error(q);
		return;
	}
	switch (w->opcode) {
	case IBV_WR_SEND:
		exec_send(q, w);
		break;
	case IBV_WR_RDMA_READ:
	case IBV_WR_RDMA_WRITE:
		exec_rdma(q, w);
		break;
	default:
		violation("QP %u: opcode %d not modelled", q->qp.qp_num, (int)w->opcode);
		complete_send(q, w, IBV_WC_LOC_QP_OP_ERR, 0);
		qp_error(q);
		break;
	}
}

unsigned int fake_wire_run(void)
{
	struct fake_qp *ready[64];
	unsigned int done = 0, n;

	lock();
	while (!F.hold) {
		n = 0;
		for (struct fake_obj *o = F.all; o && n < 64; o = o->all_next) {
			if (o->kind == FAKE_QP && qp_runnable((struct fake_qp *)o)) {
				ready[n++] = (struct fake_qp *)o;
			}
		}
		if (!n) {
			break;
		}
		exec_one(ready[rng_next() % n]);
		done++;
	}
	unlock();
	return done;
}

void fake_wire_hold(bool hold)
{
	lock();
	F.hold = hold;
	unlock();
}

bool fake_quiet(void)
{
	bool quiet = true;

	lock();
	for (struct fake_obj *o = F.all; o && quiet; o = o->all_next) {
		if (o->kind == FAKE_QP) {
			quiet = !qp_runnable((struct fake_qp *)o);
		} else if (o->kind == FAKE_CQ && o->alive) {
			quiet = !((struct fake_cq *)o)->n;
		}
	}
	unlock();
	return quiet;
}

void fake_expire_retries(void)
{
	lock();
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		struct fake_qp *q = (struct fake_qp *)o;

		if (o->kind == FAKE_QP && o->alive && q->qp.state == IBV_QPS_RTS && q->sq.n &&
		    !peer_up(q)) {
			complete_send(q, wq_pop(&q->sq), IBV_WC_RETRY_EXC_ERR, 0);
			qp_error(q);
		}
	}
	unlock();
}

/* --- the test's controls --- */

void fake_reset(uint64_t seed)
{
	struct fake_obj *o, *next;

	lock();
	for (o = F.all; o; o = next) {
		next = o->all_next;
		switch (o->kind) {
		case FAKE_ECH:
			if (o->alive) {
				close(((struct fake_ech *)o)->ch.fd);
			}
			break;
		case FAKE_CCH:
			if (o->alive) {
				close(((struct fake_cch *)o)->ch.fd);
			}
			break;
		case FAKE_CQ:
			free(((struct fake_cq *)o)->q);
			break;
		case FAKE_QP:
			free(((struct fake_qp *)o)->sq.w);
			free(((struct fake_qp *)o)->rq.w);
			break;
		default:
			break;
		}
		free(o);
	}
	F.all = NULL;
	memset(F.created, 0, sizeof(F.created));
	memset(F.destroyed, 0, sizeof(F.destroyed));
	memset(F.fail_post, 0, sizeof(F.fail_post));
	F.fail_reg = 0;
	memset(&F.st, 0, sizeof(F.st));
	F.st.connect_rnr_retry = F.st.accept_rnr_retry = -1;
	F.violations = 0;
	F.ndev = 1;
	F.on_addr = F.on_route = F.on_connect = FAKE_NORMAL;
	F.hold = F.hold_established = false;
	F.rng = seed ? seed : 1;
	F.next_key = 0;
	F.next_qpn = 100;
	F.next_port = 40000;
	unlock();
}

unsigned int fake_created(enum fake_kind k)
{
	unsigned int n;

	lock();
	n = F.created[k];
	unlock();
	return n;
}

unsigned int fake_live(enum fake_kind k)
{
	unsigned int n;

	lock();
	n = F.created[k] - F.destroyed[k];
	unlock();
	return n;
}

const char *fake_kind_name(enum fake_kind k)
{
	return kind_names[k];
}

bool fake_all_released(void)
{
	bool all = true;

	lock();
	for (int k = 0; k < FAKE_KINDS; k++) {
		all &= F.created[k] == F.destroyed[k];
	}
	unlock();
	return all;
}

unsigned int fake_violations(void)
{
	unsigned int n;

	lock();
	n = F.violations;
	unlock();
	return n;
}

void fake_get_stats(struct fake_stats *out)
{
	lock();
	*out = F.st;
	unlock();
}

void fake_set_devices(int n)
{
	lock();
	F.ndev = n;
	unlock();
}

void fake_script(int on_addr, int on_route, int on_connect)
{
	lock();
	F.on_addr = on_addr;
	F.on_route = on_route;
	F.on_connect = on_connect;
	unlock();
}

static enum fake_role role_of(enum fake_side side)
{
	return side == FAKE_ACTIVE ? ROLE_ACTIVE : ROLE_PASSIVE;
}

/* The newest live QP of @side (under the lock). */
static struct fake_qp *qp_find(enum fake_side side)
{
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		struct fake_qp *q = (struct fake_qp *)o;

		if (o->kind == FAKE_QP && o->alive && q->fid->role == role_of(side)) {
			return q;
		}
	}
	fprintf(stderr, "fake_verbs: no live QP on the %s side\n",
		side == FAKE_ACTIVE ? "active" : "passive");
	abort();
}

void fake_fail_next_wr(enum fake_side side, enum ibv_wc_status status)
{
	lock();
	qp_find(side)->fail_next = status;
	unlock();
}

void fake_qp_to_error(enum fake_side side)
{
	lock();
	qp_error(qp_find(side));
	unlock();
}

void fake_cq_overrun(enum fake_side side)
{
	struct fake_qp *q;

	lock();
	q = qp_find(side);
	q->scq->overrun = q->rcq->overrun = true;
	unlock();
}

void fake_cq_mute(enum fake_side side, bool mute)
{
	struct fake_cq *cq;

	lock();
	cq = qp_find(side)->rcq;
	cq->mute = mute;
	if (!mute && cq->armed && cq->n && cq->ch) {
		cq->armed = false;
		cch_raise(cq->ch, cq);
	}
	unlock();
}

void fake_cm_event(enum fake_side side, enum rdma_cm_event_type type)
{
	lock();
	ev_queue(qp_find(side)->fid, type, 0, NULL, 0);
	unlock();
}

void fake_fail_post(enum fake_side side, bool send, int err)
{
	lock();
	F.fail_post[side][send] = err;
	unlock();
}

void fake_fail_reg_mr(int err)
{
	lock();
	F.fail_reg = err;
	unlock();
}

unsigned int fake_cm_pending(enum fake_side side)
{
	struct fake_ech *ch;
	unsigned int n = 0;

	lock();
	ch = ech_of(qp_find(side)->fid->id.channel);
	for (struct fake_ev *ev = ch->head; ev; ev = ev->next) {
		n++;
	}
	unlock();
	return n;
}

uint64_t fake_qp_sends(enum fake_side side)
{
	uint64_t n;

	lock();
	n = qp_find(side)->sends;
	unlock();
	return n;
}

unsigned int fake_qp_recvs_posted(enum fake_side side)
{
	unsigned int n;

	lock();
	n = qp_find(side)->rq.n;
	unlock();
	return n;
}

void fake_hold_established(bool hold)
{
	lock();
	F.hold_established = hold;
	unlock();
}

bool fake_passive_migrated(void)
{
	bool moved = false;

	lock();
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		struct fake_id *fid = (struct fake_id *)o;

		if (o->kind == FAKE_ID && o->alive && fid->role == ROLE_PASSIVE) {
			moved = fid->id.channel != fid->listener->id.channel;
			break;
		}
	}
	unlock();
	return moved;
}

static struct fake_id *child_new(struct fake_id *l)
{
	struct fake_id *c = obj_new(sizeof(*c), FAKE_ID, false);

	c->role = ROLE_PASSIVE;
	c->listener = l;
	c->id.verbs = &fake_ctx;
	c->id.channel = l->id.channel;
	c->id.context = l->id.context; /* as the kernel does: inherited */
	c->id.ps = l->id.ps;
	c->id.port_num = 1;
	c->id.qp_type = IBV_QPT_RC;
	c->id.route.addr.src_storage = l->id.route.addr.src_storage;
	return c;
}

void fake_connect_request(const void *pdata, uint8_t len)
{
	struct sockaddr_in *from;
	struct fake_id *c;

	lock();
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		struct fake_id *l = (struct fake_id *)o;

		if (o->kind == FAKE_ID && o->alive && l->role == ROLE_LISTEN) {
			c = child_new(l);
			from = &c->id.route.addr.dst_sin;
			from->sin_family = AF_INET;
			from->sin_addr.s_addr = htonl(FAKE_LOCAL_IP + 1);
			from->sin_port = htons(F.next_port++);
			ev_queue(c, RDMA_CM_EVENT_CONNECT_REQUEST, 0, pdata, len);
			unlock();
			return;
		}
	}
	fprintf(stderr, "fake_verbs: no listener for the connect request\n");
	abort();
}

/* --- libibverbs --- */

struct ibv_device **ibv_get_device_list(int *num_devices)
{
	struct ibv_device **list;

	lock();
	list = calloc((size_t)F.ndev + 1, sizeof(*list));
	if (list) {
		for (int i = 0; i < F.ndev; i++) {
			list[i] = &fake_dev;
		}
		F.created[FAKE_DEVLIST]++;
	}
	if (num_devices) {
		*num_devices = list ? F.ndev : 0;
	}
	unlock();
	if (!list) {
		errno = ENOMEM;
	}
	return list;
}

void ibv_free_device_list(struct ibv_device **list)
{
	lock();
	F.destroyed[FAKE_DEVLIST]++;
	unlock();
	free(list);
}

const char *ibv_wc_status_str(enum ibv_wc_status status)
{
	static const char *const names[] = {
		[IBV_WC_SUCCESS] = "success",
		[IBV_WC_LOC_LEN_ERR] = "local length error",
		[IBV_WC_LOC_QP_OP_ERR] = "local QP operation error",
		[IBV_WC_LOC_PROT_ERR] = "local protection error",
		[IBV_WC_WR_FLUSH_ERR] = "Work Request Flushed Error",
		[IBV_WC_REM_INV_REQ_ERR] = "remote invalid request error",
		[IBV_WC_REM_ACCESS_ERR] = "remote access error",
		[IBV_WC_REM_OP_ERR] = "remote operation error",
		[IBV_WC_RETRY_EXC_ERR] = "transport retry counter exceeded",
		[IBV_WC_RNR_RETRY_EXC_ERR] = "RNR retry counter exceeded",
	};

	if ((unsigned int)status < sizeof(names) / sizeof(names[0]) && names[status]) {
		return names[status];
	}
	return "unknown";
}

struct ibv_pd *ibv_alloc_pd(struct ibv_context *context)
{
	struct fake_pd *pd;

	lock();
	if (context != &fake_ctx) {
		violation("ibv_alloc_pd on a context not from rdma_cm");
		unlock();
		errno = EINVAL;
		return NULL;
	}
	pd = obj_new(sizeof(*pd), FAKE_PD, true);
	pd->pd.context = context;
	pd->pd.handle = key_next();
	unlock();
	return &pd->pd;
}

int ibv_dealloc_pd(struct ibv_pd *ibpd)
{
	struct fake_pd *pd = pd_of(ibpd);

	lock();
	if (!OBJ_OK(pd, FAKE_PD, "ibv_dealloc_pd")) {
		unlock();
		return EINVAL;
	}
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		if (o->alive && ((o->kind == FAKE_MR && ((struct fake_mr *)o)->pd == pd) ||
				 (o->kind == FAKE_QP && ((struct fake_qp *)o)->pd == pd))) {
			violation("ibv_dealloc_pd with a live %s in it", kind_names[o->kind]);
			unlock();
			return EBUSY;
		}
	}
	obj_kill(&pd->o);
	unlock();
	return 0;
}

static struct ibv_mr *mr_reg(struct ibv_pd *ibpd, void *addr, size_t length, uint64_t iova,
			     unsigned int access)
{
	struct fake_pd *pd = pd_of(ibpd);
	struct fake_mr *mr;

	lock();
	if (!OBJ_OK(pd, FAKE_PD, "ibv_reg_mr")) {
		unlock();
		errno = EINVAL;
		return NULL;
	}
	if (F.fail_reg) {
		errno = F.fail_reg;
		F.fail_reg = 0;
		unlock();
		return NULL;
	}
	if (!addr || !length || iova != (uintptr_t)addr) {
		violation("ibv_reg_mr of %zu bytes at %p (iova %#llx)", length, addr,
			  (unsigned long long)iova);
		unlock();
		errno = EINVAL;
		return NULL;
	}
	mr = obj_new(sizeof(*mr), FAKE_MR, true);
	mr->pd = pd;
	mr->access = access;
	mr->mr.context = &fake_ctx;
	mr->mr.pd = ibpd;
	mr->mr.addr = addr;
	mr->mr.length = length;
	mr->mr.lkey = key_next();
	mr->mr.rkey = key_next();
	mr->mr.handle = mr->mr.lkey;
	unlock();
	return &mr->mr;
}

/* verbs.h makes ibv_reg_mr() a macro: the parentheses name the function. */
struct ibv_mr *(ibv_reg_mr)(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	return mr_reg(pd, addr, length, (uintptr_t)addr, (unsigned int)access);
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length, uint64_t iova,
				unsigned int access)
{
	return mr_reg(pd, addr, length, iova, access);
}

struct ibv_mr *(ibv_reg_mr_iova)(struct ibv_pd *pd, void *addr, size_t length, uint64_t iova,
				 int access)
{
	return mr_reg(pd, addr, length, iova, (unsigned int)access);
}

int ibv_dereg_mr(struct ibv_mr *ibmr)
{
	struct fake_mr *mr = OBJ(struct fake_mr, ibmr, mr);

	lock();
	if (!OBJ_OK(mr, FAKE_MR, "ibv_dereg_mr")) {
		unlock();
		return EINVAL;
	}
	obj_kill(&mr->o);
	unlock();
	return 0;
}

struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *context)
{
	struct fake_cch *ch;
	int fd = eventfd(0, EFD_CLOEXEC);

	if (fd < 0) {
		return NULL;
	}
	lock();
	ch = obj_new(sizeof(*ch), FAKE_CCH, true);
	ch->ch.context = context;
	ch->ch.fd = fd;
	ch->ch.refcnt = 0;
	unlock();
	return &ch->ch;
}

int ibv_destroy_comp_channel(struct ibv_comp_channel *channel)
{
	struct fake_cch *ch = cch_of(channel);

	lock();
	if (!OBJ_OK(ch, FAKE_CCH, "ibv_destroy_comp_channel")) {
		unlock();
		return EINVAL;
	}
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		if (o->kind == FAKE_CQ && o->alive && ((struct fake_cq *)o)->ch == ch) {
			violation("ibv_destroy_comp_channel with a live CQ on it");
			unlock();
			return EBUSY;
		}
	}
	close(ch->ch.fd);
	obj_kill(&ch->o);
	unlock();
	return 0;
}

struct ibv_cq *ibv_create_cq(struct ibv_context *context, int cqe, void *cq_context,
			     struct ibv_comp_channel *channel, int comp_vector)
{
	struct fake_cch *ch = cch_of(channel);
	struct fake_cq *cq;

	lock();
	if (context != &fake_ctx || cqe < 1 || comp_vector != 0 ||
	    (ch && !OBJ_OK(ch, FAKE_CCH, "ibv_create_cq"))) {
		violation("ibv_create_cq: bad arguments (%d entries)", cqe);
		unlock();
		errno = EINVAL;
		return NULL;
	}
	cq = obj_new(sizeof(*cq), FAKE_CQ, true);
	cq->q = calloc((size_t)cqe, sizeof(*cq->q));
	if (!cq->q) {
		abort();
	}
	cq->cap = (unsigned int)cqe;
	cq->ch = ch;
	cq->cq.context = context;
	cq->cq.channel = channel;
	cq->cq.cq_context = cq_context;
	cq->cq.cqe = cqe;
	cq->cq.handle = key_next();
	unlock();
	return &cq->cq;
}

int ibv_destroy_cq(struct ibv_cq *ibcq)
{
	struct fake_cq *cq = cq_of(ibcq);

	lock();
	if (!OBJ_OK(cq, FAKE_CQ, "ibv_destroy_cq")) {
		unlock();
		return EINVAL;
	}
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		struct fake_qp *q = (struct fake_qp *)o;

		if (o->kind == FAKE_QP && o->alive && (q->scq == cq || q->rcq == cq)) {
			violation("ibv_destroy_cq with a live QP on it");
			unlock();
			return EBUSY;
		}
	}
	if (cq->unacked) {
		violation("ibv_destroy_cq with %u events taken and not acknowledged (libibverbs "
			  "would wait for them forever)",
			  cq->unacked);
	}
	/* Events not taken yet go with it, as the kernel drops them. */
	if (cq->ch) {
		struct fake_cch *ch = cq->ch;
		unsigned int keep = 0;

		for (unsigned int i = 0; i < ch->evn; i++) {
			struct fake_cq *e = ch->evq[(ch->evh + i) % FAKE_CCH_EVENTS];

			if (e != cq) {
				ch->evq[(ch->evh + keep++) % FAKE_CCH_EVENTS] = e;
			}
		}
		if (ch->evn && !keep) {
			efd_lower(ch->ch.fd);
		}
		ch->evn = keep;
	}
	obj_kill(&cq->o);
	unlock();
	return 0;
}

static int fake_req_notify_cq(struct ibv_cq *ibcq, int solicited_only)
{
	struct fake_cq *cq = cq_of(ibcq);

	lock();
	if (!OBJ_OK(cq, FAKE_CQ, "ibv_req_notify_cq")) {
		unlock();
		return EINVAL;
	}
	if (!cq->ch) {
		violation("ibv_req_notify_cq on a CQ without a completion channel");
	}
	cq->armed = true;
	unlock();
	return 0;
}

static int fake_poll_cq(struct ibv_cq *ibcq, int num, struct ibv_wc *wc)
{
	struct fake_cq *cq = cq_of(ibcq);
	int n = 0;

	lock();
	if (!OBJ_OK(cq, FAKE_CQ, "ibv_poll_cq")) {
		unlock();
		return -1;
	}
	if (cq->overrun) {
		unlock();
		return -1;
	}
	while (n < num && cq->n) {
		struct fake_wc *e = &cq->q[cq->head];

		cq->head = (cq->head + 1) % cq->cap;
		cq->n--;
		wc[n++] = e->wc;
		if (e->qp->o.alive) {
			if (e->sq) {
				e->qp->sq_used--;
			} else {
				e->qp->rq_used--;
			}
		}
	}
	unlock();
	return n;
}

int ibv_get_cq_event(struct ibv_comp_channel *channel, struct ibv_cq **cq, void **cq_context)
{
	struct fake_cch *ch = cch_of(channel);
	struct fake_cq *c;

	lock();
	if (!OBJ_OK(ch, FAKE_CCH, "ibv_get_cq_event")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	if (!ch->evn) {
		if (fd_blocking(ch->ch.fd)) {
			violation("ibv_get_cq_event on an empty blocking channel would block");
		}
		unlock();
		errno = EAGAIN;
		return -1;
	}
	c = ch->evq[ch->evh];
	ch->evh = (ch->evh + 1) % FAKE_CCH_EVENTS;
	if (!--ch->evn) {
		efd_lower(ch->ch.fd);
	}
	c->unacked++;
	*cq = &c->cq;
	*cq_context = c->cq.cq_context;
	unlock();
	return 0;
}

void ibv_ack_cq_events(struct ibv_cq *ibcq, unsigned int nevents)
{
	struct fake_cq *cq = cq_of(ibcq);

	lock();
	if (OBJ_OK(cq, FAKE_CQ, "ibv_ack_cq_events")) {
		if (nevents > cq->unacked) {
			violation("ibv_ack_cq_events(%u) with %u events taken", nevents,
				  cq->unacked);
			nevents = cq->unacked;
		}
		cq->unacked -= nevents;
	}
	unlock();
}

int ibv_modify_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int attr_mask)
{
	struct fake_qp *q = qp_of(ibqp);

	lock();
	if (!OBJ_OK(q, FAKE_QP, "ibv_modify_qp")) {
		unlock();
		return EINVAL;
	}
	if (attr_mask & IBV_QP_STATE) {
		if (attr->qp_state == IBV_QPS_ERR) {
			qp_error(q);
		} else {
			violation("ibv_modify_qp to state %d: rdma_cm does the transitions",
				  (int)attr->qp_state);
		}
	}
	unlock();
	return 0;
}

static int post_check(struct fake_qp *q, bool send, int nsge, const char *what)
{
	struct fake_id *fid;
	int err;

	if (!OBJ_OK(q, FAKE_QP, what)) {
		return EINVAL;
	}
	fid = q->fid;
	err = F.fail_post[fid->role == ROLE_PASSIVE][send];
	if (err) {
		F.fail_post[fid->role == ROLE_PASSIVE][send] = 0;
		return err;
	}
	if (nsge < 0 || (uint32_t)nsge > (send ? q->cap.max_send_sge : q->cap.max_recv_sge)) {
		violation("%s with %d SGEs on QP %u (created for %u)", what, nsge, q->qp.qp_num,
			  send ? q->cap.max_send_sge : q->cap.max_recv_sge);
		return EINVAL;
	}
	if (send && q->qp.state != IBV_QPS_RTS && q->qp.state != IBV_QPS_ERR) {
		violation("%s on QP %u before it is connected", what, q->qp.qp_num);
		return EINVAL;
	}
	if (send ? q->sq_used == q->cap.max_send_wr : q->rq_used == q->cap.max_recv_wr) {
		violation("%s on QP %u: its queue of %u is full", what, q->qp.qp_num,
			  send ? q->cap.max_send_wr : q->cap.max_recv_wr);
		return ENOMEM;
	}
	return 0;
}

static int fake_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct fake_qp *q = qp_of(ibqp);
	int err = 0;

	lock();
	for (; wr; wr = wr->next) {
		struct fake_wr w = {
			.wr_id = wr->wr_id,
			.opcode = wr->opcode,
			.signaled = wr->send_flags & IBV_SEND_SIGNALED,
			.nsge = wr->num_sge,
		};

		err = post_check(q, true, wr->num_sge, "ibv_post_send");
		if (!err && (wr->send_flags & IBV_SEND_INLINE)) {
			violation("ibv_post_send: IBV_SEND_INLINE on QP %u created for %u inline "
				  "bytes",
				  q->qp.qp_num, q->cap.max_inline_data);
			err = EINVAL;
		}
		if (err) {
			*bad = wr;
			break;
		}
		memcpy(w.sge, wr->sg_list, (size_t)wr->num_sge * sizeof(w.sge[0]));
		if (wr->opcode == IBV_WR_RDMA_READ || wr->opcode == IBV_WR_RDMA_WRITE) {
			w.raddr = wr->wr.rdma.remote_addr;
			w.rkey = wr->wr.rdma.rkey;
		}
		q->sq_used++;
		if (q->qp.state == IBV_QPS_ERR) {
			complete_send(q, &w, IBV_WC_WR_FLUSH_ERR, 0);
			F.st.flushed++;
		} else {
			wq_push(&q->sq, &w);
		}
	}
	unlock();
	return err;
}

static int fake_post_recv(struct ibv_qp *ibqp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct fake_qp *q = qp_of(ibqp);
	int err = 0;

	lock();
	for (; wr; wr = wr->next) {
		struct fake_wr w = {.wr_id = wr->wr_id, .nsge = wr->num_sge};

		err = post_check(q, false, wr->num_sge, "ibv_post_recv");
		if (err) {
			*bad = wr;
			break;
		}
		memcpy(w.sge, wr->sg_list, (size_t)wr->num_sge * sizeof(w.sge[0]));
		q->rq_used++;
		if (q->qp.state == IBV_QPS_ERR) {
			complete_recv(q, &w, IBV_WC_WR_FLUSH_ERR, 0);
			F.st.flushed++;
		} else {
			wq_push(&q->rq, &w);
		}
	}
	unlock();
	return err;
}

/* --- librdmacm --- */

const char *rdma_event_str(enum rdma_cm_event_type event)
{
	static const char *const names[] = {
		[RDMA_CM_EVENT_ADDR_RESOLVED] = "RDMA_CM_EVENT_ADDR_RESOLVED",
		[RDMA_CM_EVENT_ADDR_ERROR] = "RDMA_CM_EVENT_ADDR_ERROR",
		[RDMA_CM_EVENT_ROUTE_RESOLVED] = "RDMA_CM_EVENT_ROUTE_RESOLVED",
		[RDMA_CM_EVENT_ROUTE_ERROR] = "RDMA_CM_EVENT_ROUTE_ERROR",
		[RDMA_CM_EVENT_CONNECT_REQUEST] = "RDMA_CM_EVENT_CONNECT_REQUEST",
		[RDMA_CM_EVENT_CONNECT_RESPONSE] = "RDMA_CM_EVENT_CONNECT_RESPONSE",
		[RDMA_CM_EVENT_CONNECT_ERROR] = "RDMA_CM_EVENT_CONNECT_ERROR",
		[RDMA_CM_EVENT_UNREACHABLE] = "RDMA_CM_EVENT_UNREACHABLE",
		[RDMA_CM_EVENT_REJECTED] = "RDMA_CM_EVENT_REJECTED",
		[RDMA_CM_EVENT_ESTABLISHED] = "RDMA_CM_EVENT_ESTABLISHED",
		[RDMA_CM_EVENT_DISCONNECTED] = "RDMA_CM_EVENT_DISCONNECTED",
		[RDMA_CM_EVENT_DEVICE_REMOVAL] = "RDMA_CM_EVENT_DEVICE_REMOVAL",
		[RDMA_CM_EVENT_MULTICAST_JOIN] = "RDMA_CM_EVENT_MULTICAST_JOIN",
		[RDMA_CM_EVENT_MULTICAST_ERROR] = "RDMA_CM_EVENT_MULTICAST_ERROR",
		[RDMA_CM_EVENT_ADDR_CHANGE] = "RDMA_CM_EVENT_ADDR_CHANGE",
		[RDMA_CM_EVENT_TIMEWAIT_EXIT] = "RDMA_CM_EVENT_TIMEWAIT_EXIT",
	};

	if ((unsigned int)event < sizeof(names) / sizeof(names[0])) {
		return names[event];
	}
	return "UNKNOWN EVENT";
}

struct rdma_event_channel *rdma_create_event_channel(void)
{
	struct fake_ech *ch;
	int fd;

	lock();
	if (F.ndev <= 0) {
		/* librdmacm's ucma_init() finds no device */
		unlock();
		errno = ENODEV;
		return NULL;
	}
	fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0) {
		unlock();
		return NULL;
	}
	ch = obj_new(sizeof(*ch), FAKE_ECH, true);
	ch->ch.fd = fd;
	ch->tail = &ch->head;
	unlock();
	return &ch->ch;
}

void rdma_destroy_event_channel(struct rdma_event_channel *channel)
{
	struct fake_ech *ch = ech_of(channel);

	lock();
	if (!OBJ_OK(ch, FAKE_ECH, "rdma_destroy_event_channel")) {
		unlock();
		return;
	}
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		if (o->kind == FAKE_ID && o->alive && o->counted &&
		    ((struct fake_id *)o)->id.channel == channel) {
			violation("rdma_destroy_event_channel with a live id on it");
			break;
		}
	}
	ev_move(ch, ev_any, NULL, NULL);
	close(ch->ch.fd);
	obj_kill(&ch->o);
	unlock();
}

int rdma_create_id(struct rdma_event_channel *channel, struct rdma_cm_id **id, void *context,
		   enum rdma_port_space ps)
{
	struct fake_ech *ch = ech_of(channel);
	struct fake_id *fid;

	lock();
	if (!OBJ_OK(ch, FAKE_ECH, "rdma_create_id")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	fid = obj_new(sizeof(*fid), FAKE_ID, true);
	fid->role = ROLE_ACTIVE;
	fid->id.channel = channel;
	fid->id.context = context;
	fid->id.ps = ps;
	fid->id.qp_type = IBV_QPT_RC;
	*id = &fid->id;
	unlock();
	return 0;
}

int rdma_destroy_id(struct rdma_cm_id *id)
{
	struct fake_id *fid = id_of(id);
	struct fake_ech *ch;

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_destroy_id")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	if (fid->unacked) {
		violation("rdma_destroy_id with %u events taken and not acknowledged (librdmacm "
			  "would wait for them forever)",
			  fid->unacked);
	}
	if (id->qp) {
		violation("rdma_destroy_id with its QP still there");
	}
	ch = ech_of(id->channel);
	if (ch->o.alive) {
		ev_move(ch, ev_of_id, fid, NULL);
		if (fid->role == ROLE_LISTEN) {
			ev_move(ch, ev_request_to, fid, NULL);
		}
	}
	/* Destroying a connected id disconnects it (the kernel sends a DREQ). */
	if (fid->connected && !fid->disconnected) {
		fid->disconnected = true;
		if (fid->peer && fid->peer->o.alive && !fid->peer->disconnected) {
			fid->peer->disconnected = true;
			ev_queue(fid->peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0);
		}
	}
	obj_kill(&fid->o);
	unlock();
	return 0;
}

static socklen_t sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static uint16_t sa_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
					       : ((const struct sockaddr_in *)sa)->sin_port);
}

static void sa_set_port(struct sockaddr *sa, uint16_t port)
{
	if (sa->sa_family == AF_INET6) {
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
	} else {
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	}
}

/* Does a listener bound to @l accept a connection to @dst? */
static bool sa_match(const struct sockaddr *l, const struct sockaddr *dst)
{
	if (l->sa_family != dst->sa_family || sa_port(l) != sa_port(dst)) {
		return false;
	}
	if (l->sa_family == AF_INET) {
		in_addr_t a = ((const struct sockaddr_in *)l)->sin_addr.s_addr;

		return a == INADDR_ANY || a == ((const struct sockaddr_in *)dst)->sin_addr.s_addr;
	}
	return !memcmp(&((const struct sockaddr_in6 *)l)->sin6_addr, &in6addr_any,
		       sizeof(in6addr_any)) ||
	       !memcmp(&((const struct sockaddr_in6 *)l)->sin6_addr,
		       &((const struct sockaddr_in6 *)dst)->sin6_addr, sizeof(in6addr_any));
}

/* The step's event: @normal, or what the script says. */
static void script_step(struct fake_id *fid, int script, enum rdma_cm_event_type normal)
{
	if (script == FAKE_SILENT) {
		return;
	}
	if (script == FAKE_NORMAL) {
		ev_queue(fid, normal, 0, NULL, 0);
	} else {
		ev_queue(fid, (enum rdma_cm_event_type)script, -ETIMEDOUT, NULL, 0);
	}
}

int rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src_addr, struct sockaddr *dst_addr,
		      int timeout_ms)
{
	struct fake_id *fid = id_of(id);
	struct sockaddr *src = &id->route.addr.src_addr;

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_resolve_addr") || !dst_addr ||
	    (dst_addr->sa_family != AF_INET && dst_addr->sa_family != AF_INET6) ||
	    timeout_ms <= 0) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	memcpy(&id->route.addr.dst_storage, dst_addr, sa_len(dst_addr));
	if (src_addr) {
		memcpy(&id->route.addr.src_storage, src_addr, sa_len(src_addr));
	} else if (dst_addr->sa_family == AF_INET) {
		id->route.addr.src_sin.sin_family = AF_INET;
		id->route.addr.src_sin.sin_addr.s_addr = htonl(FAKE_LOCAL_IP);
	} else {
		id->route.addr.src_sin6.sin6_family = AF_INET6;
		id->route.addr.src_sin6.sin6_addr = in6addr_loopback;
	}
	if (!sa_port(src)) {
		sa_set_port(src, F.next_port++);
	}
	id->verbs = &fake_ctx;
	id->port_num = 1;
	script_step(fid, F.on_addr, RDMA_CM_EVENT_ADDR_RESOLVED);
	unlock();
	return 0;
}

int rdma_resolve_route(struct rdma_cm_id *id, int timeout_ms)
{
	struct fake_id *fid = id_of(id);

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_resolve_route") || !id->verbs) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	script_step(fid, F.on_route, RDMA_CM_EVENT_ROUTE_RESOLVED);
	unlock();
	return 0;
}

int rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
	struct fake_id *fid = id_of(id);

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_bind_addr") || !addr ||
	    (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	for (struct fake_obj *o = F.all; o; o = o->all_next) {
		struct fake_id *b = (struct fake_id *)o;

		if (o->kind == FAKE_ID && o->alive && b->bound && sa_port(addr) &&
		    sa_match(&b->id.route.addr.src_addr, addr)) {
			unlock();
			errno = EADDRINUSE;
			return -1;
		}
	}
	memcpy(&id->route.addr.src_storage, addr, sa_len(addr));
	if (!sa_port(addr)) {
		sa_set_port(&id->route.addr.src_addr, F.next_port++);
	}
	fid->bound = true;
	id->verbs = &fake_ctx;
	id->port_num = 1;
	unlock();
	return 0;
}

int rdma_listen(struct rdma_cm_id *id, int backlog)
{
	struct fake_id *fid = id_of(id);

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_listen") || !fid->bound) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	fid->role = ROLE_LISTEN;
	unlock();
	return 0;
}

int rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *ibpd, struct ibv_qp_init_attr *attr)
{
	struct fake_id *fid = id_of(id);
	struct fake_pd *pd = pd_of(ibpd);
	struct fake_cq *scq, *rcq;
	struct fake_qp *q;

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_create_qp") || !OBJ_OK(pd, FAKE_PD, "rdma_create_qp")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	scq = cq_of(attr->send_cq);
	rcq = cq_of(attr->recv_cq);
	if (!id->verbs || id->qp || attr->qp_type != IBV_QPT_RC || attr->srq ||
	    !OBJ_OK(scq, FAKE_CQ, "rdma_create_qp send CQ") ||
	    !OBJ_OK(rcq, FAKE_CQ, "rdma_create_qp receive CQ") || !attr->cap.max_send_wr ||
	    !attr->cap.max_recv_wr || attr->cap.max_send_sge > FAKE_MAX_SGE ||
	    attr->cap.max_recv_sge > FAKE_MAX_SGE) {
		violation("rdma_create_qp: bad arguments");
		unlock();
		errno = EINVAL;
		return -1;
	}
	q = obj_new(sizeof(*q), FAKE_QP, true);
	q->fid = fid;
	q->pd = pd;
	q->scq = scq;
	q->rcq = rcq;
	q->cap = attr->cap;
	q->sq.cap = attr->cap.max_send_wr;
	q->rq.cap = attr->cap.max_recv_wr;
	q->sq.w = calloc(q->sq.cap, sizeof(*q->sq.w));
	q->rq.w = calloc(q->rq.cap, sizeof(*q->rq.w));
	if (!q->sq.w || !q->rq.w) {
		abort();
	}
	q->qp.context = &fake_ctx;
	q->qp.qp_context = attr->qp_context;
	q->qp.pd = ibpd;
	q->qp.send_cq = attr->send_cq;
	q->qp.recv_cq = attr->recv_cq;
	q->qp.qp_num = F.next_qpn++;
	q->qp.qp_type = IBV_QPT_RC;
	q->qp.state = IBV_QPS_INIT;
	id->qp = &q->qp;
	unlock();
	return 0;
}

void rdma_destroy_qp(struct rdma_cm_id *id)
{
	struct fake_id *fid = id_of(id);
	struct fake_qp *q;

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_destroy_qp")) {
		unlock();
		return;
	}
	q = qp_of(id->qp);
	if (!OBJ_OK(q, FAKE_QP, "rdma_destroy_qp")) {
		unlock();
		return;
	}
	/* Work still posted is gone, without completions. */
	q->sq.n = q->rq.n = 0;
	obj_kill(&q->o);
	id->qp = NULL;
	unlock();
}

int rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	struct fake_id *fid = id_of(id), *l = NULL, *c;

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_connect") || !param) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	if (!id->qp || fid->role != ROLE_ACTIVE || param->private_data_len > FAKE_REQ_PDATA) {
		violation("rdma_connect: no QP, not an active id, or %u bytes of private data",
			  param->private_data_len);
		unlock();
		errno = EINVAL;
		return -1;
	}
	F.st.connect_rnr_retry = param->rnr_retry_count;
	if (F.on_connect != FAKE_NORMAL) {
		script_step(fid, F.on_connect, RDMA_CM_EVENT_ESTABLISHED);
		unlock();
		return 0;
	}
	for (struct fake_obj *o = F.all; o && !l; o = o->all_next) {
		struct fake_id *b = (struct fake_id *)o;

		if (o->kind == FAKE_ID && o->alive && b->role == ROLE_LISTEN &&
		    sa_match(&b->id.route.addr.src_addr, &id->route.addr.dst_addr)) {
			l = b;
		}
	}
	if (!l) {
		ev_queue(fid, RDMA_CM_EVENT_REJECTED, FAKE_REJ_INVALID, NULL, 0);
		unlock();
		return 0;
	}
	c = child_new(l);
	memcpy(&c->id.route.addr.dst_storage, &id->route.addr.src_storage,
	       sizeof(c->id.route.addr.dst_storage));
	c->peer = fid;
	fid->peer = c;
	ev_queue(c, RDMA_CM_EVENT_CONNECT_REQUEST, 0, param->private_data, param->private_data_len);
	unlock();
	return 0;
}

/* A passive id its listener's user has taken and neither accepted nor
 * rejected. */
static bool passive_pending(const struct fake_id *fid, const char *what)
{
	if (fid->role != ROLE_PASSIVE || !fid->o.counted || fid->accepted || fid->rejected) {
		violation("%s on an id that is no pending connection request", what);
		return false;
	}
	return true;
}

int rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *param)
{
	struct fake_id *fid = id_of(id), *a;
	struct fake_qp *q, *aq;

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_accept") || !passive_pending(fid, "rdma_accept")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	q = qp_of(id->qp);
	if (!q || !param) {
		violation("rdma_accept without a QP or parameters");
		unlock();
		errno = EINVAL;
		return -1;
	}
	fid->accepted = true;
	F.st.accept_rnr_retry = param->rnr_retry_count;
	a = fid->peer;
	if (a && !(a->o.alive && a->id.qp && !a->disconnected)) {
		/* the active side gave up: no RTU ever comes */
		ev_queue(fid, RDMA_CM_EVENT_CONNECT_ERROR, -ETIMEDOUT, NULL, 0);
		unlock();
		return 0;
	}
	q->qp.state = IBV_QPS_RTS;
	fid->connected = true;
	if (a) {
		aq = qp_of(a->id.qp);
		aq->qp.state = IBV_QPS_RTS;
		aq->peer = q;
		q->peer = aq;
		a->connected = true;
		ev_queue(a, RDMA_CM_EVENT_ESTABLISHED, 0, param->private_data,
			 param->private_data_len);
	}
	if (!F.hold_established) {
		ev_queue(fid, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, 0);
	}
	unlock();
	return 0;
}

int rdma_reject(struct rdma_cm_id *id, const void *private_data, uint8_t private_data_len)
{
	struct fake_id *fid = id_of(id);

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_reject") || !passive_pending(fid, "rdma_reject")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	fid->rejected = true;
	F.st.rejects++;
	if (fid->peer && fid->peer->o.alive) {
		ev_queue(fid->peer, RDMA_CM_EVENT_REJECTED, FAKE_REJ_CONSUMER, private_data,
			 private_data_len);
	}
	unlock();
	return 0;
}

int rdma_disconnect(struct rdma_cm_id *id)
{
	struct fake_id *fid = id_of(id);

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_disconnect")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	/* librdmacm moves the QP to error first (ucma_shutdown()) */
	if (id->qp) {
		qp_error(qp_of(id->qp));
	}
	if (fid->connected && !fid->disconnected) {
		fid->disconnected = true;
		ev_queue(fid, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0);
		if (fid->peer && fid->peer->o.alive && !fid->peer->disconnected) {
			fid->peer->disconnected = true;
			ev_queue(fid->peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0);
		}
	}
	unlock();
	return 0;
}

int rdma_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel)
{
	struct fake_id *fid = id_of(id);
	struct fake_ech *to = ech_of(channel);

	lock();
	if (!OBJ_OK(fid, FAKE_ID, "rdma_migrate_id") || !OBJ_OK(to, FAKE_ECH, "rdma_migrate_id")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	if (fid->unacked) {
		violation("rdma_migrate_id with %u events taken and not acknowledged (librdmacm "
			  "would wait for them forever)",
			  fid->unacked);
	}
	ev_move(ech_of(id->channel), ev_of_id, fid, to);
	id->channel = channel;
	unlock();
	return 0;
}

int rdma_get_cm_event(struct rdma_event_channel *channel, struct rdma_cm_event **event)
{
	struct fake_ech *ch = ech_of(channel);
	struct fake_ev *ev;

	lock();
	if (!OBJ_OK(ch, FAKE_ECH, "rdma_get_cm_event")) {
		unlock();
		errno = EINVAL;
		return -1;
	}
	ev = ch->head;
	if (!ev) {
		if (fd_blocking(ch->ch.fd)) {
			violation("rdma_get_cm_event on an empty blocking channel would block");
		}
		unlock();
		errno = EAGAIN;
		return -1;
	}
	ch->head = ev->next;
	if (!ch->head) {
		ch->tail = &ch->head;
		efd_lower(ch->ch.fd);
	}
	ev->next = NULL;
	ev->got = true;
	obj_count(&ev->o);
	obj_count(&ev->id->o); /* a passive id is the user's from its request on */
	ev->id->unacked++;
	*event = &ev->ev;
	unlock();
	return 0;
}

int rdma_ack_cm_event(struct rdma_cm_event *event)
{
	struct fake_ev *ev = container_of(event, struct fake_ev, ev);

	lock();
	if (!ev->got || ev->acked) {
		violation("rdma_ack_cm_event of an event %s",
			  ev->acked ? "acknowledged twice" : "never taken");
		unlock();
		errno = EINVAL;
		return -1;
	}
	ev->acked = true;
	ev->id->unacked--;
	obj_kill(&ev->o);
	unlock();
	return 0;
}
