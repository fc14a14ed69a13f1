/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libkeel I/O: user requests cut into per-object parts, each part a state
 * machine that routes to the PG primary and retries across failover.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/kl_int.h"
#include "common/bufpool.h"
#include "common/crc.h"
#include "common/log.h"
#include "proto/keel.pb-c.h"

static const char *const kl_sub_state_names[] = {
	[KL_SUB_FREE] = "FREE",	    [KL_SUB_ROUTE] = "ROUTE",	[KL_SUB_CONNWAIT] = "CONNWAIT",
	[KL_SUB_SENT] = "SENT",	    [KL_SUB_PARKED] = "PARKED", [KL_SUB_DONE] = "DONE",
};

static void sub_set_state(struct kl_sub *s, enum kl_sub_state st)
{
	log_debug("part %u op %s objno %llu: %s -> %s", s->idx, kp_opcode_name(s->opcode),
		  (unsigned long long)s->objno, kl_sub_state_names[s->state],
		  kl_sub_state_names[st]);
	s->state = st;
}

static uint16_t kl_op_opcode(enum kl_op op)
{
	switch (op) {
	case KL_OP_READ:
		return KP_OP_READ;
	case KL_OP_WRITE:
		return KP_OP_WRITE;
	case KL_OP_DISCARD:
		return KP_OP_DISCARD;
	case KL_OP_WRITE_ZEROES:
		return KP_OP_WRITE_ZEROES;
	case KL_OP_FLUSH:
		return KP_OP_SYNC;
	}
	return KP_OP_PING;
}

/* ---- user requests ---- */

static void req_complete(struct kl_req *q)
{
	struct keel_volume *v = q->v;
	keel_io_cb cb = q->cb;
	void *arg = q->arg;
	int res = q->cancelled ? -ECANCELED : q->res;

	if (q->first_fail_ns) {
		uint64_t stall = reactor_now_ns() - q->first_fail_ns;

		if (stall > v->stats.max_stall_ns) {
			v->stats.max_stall_ns = stall;
		}
	}
	if (q->op == KL_OP_READ) {
		v->stats.reads++;
	} else if (q->op == KL_OP_WRITE) {
		v->stats.writes++;
	}
	if (q->queued) {
		kl_list_del(&q->link);
		q->queued = false;
	}
	q->in_use = false;
	/* The slot goes back only after the callback: a callback that
	 * submits again must not get this slot while its caller (a split loop
	 * or a cancel walk) may still look at it. */
	cb(arg, res);
	kl_list_add(&v->free_reqs, &q->link);
	v->nactive--;
	kl_volume_maybe_free(v);
}

static bool req_all_split(const struct kl_req *q)
{
	if (q->cancelled) {
		return true;
	}
	if (q->op == KL_OP_FLUSH) {
		return q->next >= q->v->c->nsrv;
	}
	return q->next >= q->end;
}

static void req_maybe_complete(struct kl_req *q)
{
	if (q->in_use && !q->parts_out && req_all_split(q)) {
		req_complete(q);
	}
}

/* Take a free part, or NULL. */
static struct kl_sub *sub_alloc(struct keel_cluster *c, struct kl_req *q)
{
	struct kl_sub *s;

	if (kl_list_empty(&c->free_subs)) {
		return NULL;
	}
	s = kl_list_first(&c->free_subs, struct kl_sub, link);
	kl_list_del(&s->link);
	s->req = q;
	s->attempts = 0;
	s->backoff_ns = 0;
	s->res = 0;
	s->srv = NULL;
	s->target = 0;
	s->data = NULL;
	s->bounce = NULL;
	s->inode = 0;
	s->objno = 0;
	s->obj_off = 0;
	s->len = 0;
	s->pool = q->v->info.pool;
	s->opcode = kl_op_opcode(q->op);
	kl_list_add_tail(&q->subs, &s->req_link);
	q->parts_out++;
	return s;
}

static void sub_free(struct kl_sub *s)
{
	struct keel_cluster *c = s->c;

	kassert(!s->msg_busy);
	kl_list_del(&s->link);
	kl_list_del(&s->srv_link);
	kl_list_del(&s->req_link);
	if (s->bounce) {
		bufpool_put(c->bounce, s->bounce);
		s->bounce = NULL;
	}
	s->req = NULL;
	sub_set_state(s, KL_SUB_FREE);
	kl_list_add(&c->free_subs, &s->link);
	/* Resources freed: let waiting requests go on (not from inside a
	 * request's own split loop, which checks the queue itself). */
	if (!kl_list_empty(&c->res_waitq)) {
		kl_cluster_run_waiters(c);
	}
}

/* Prepare the next part of @q into @s: extent, data, crcs. false when a
 * bounce buffer is needed and none is free (the part is given back). */
static bool req_fill_part(struct kl_req *q, struct kl_sub *s)
{
	struct keel_cluster *c = q->v->c;
	struct kl_extent e;

	if (q->op == KL_OP_FLUSH) {
		s->target = c->srv_ids[q->next++];
		return true;
	}
	kl_split_next(q->next, q->end, q->v->info.object_size, &e);
	s->inode = q->v->info.inode;
	s->objno = e.objno;
	s->obj_off = e.obj_off;
	s->len = e.len;
	s->rel = q->next - q->off;
	if (q->op == KL_OP_WRITE) {
		const void *p = kl_iov_contig(q->iov, q->iovcnt, s->rel, e.len);

		if (!p) {
			s->bounce = bufpool_get(c->bounce);
			if (!s->bounce) {
				return false;
			}
			kl_iov_to_buf(q->iov, q->iovcnt, s->rel, s->bounce, e.len);
			p = s->bounce;
		}
		s->data = p;
		crc32c_blocks(p, e.len, s->crcs);
	}
	q->next += e.len;
	return true;
}

/* Split off and start as many parts as resources allow. */
static void req_process(struct kl_req *q)
{
	struct keel_cluster *c = q->v->c;

	while (!req_all_split(q)) {
		struct kl_sub *s = sub_alloc(c, q);

		if (!s) {
			goto wait;
		}
		if (!req_fill_part(q, s)) {
			q->parts_out--;
			kl_list_del(&s->req_link);
			s->req = NULL;
			sub_set_state(s, KL_SUB_FREE);
			kl_list_add(&c->free_subs, &s->link);
			goto wait;
		}
		sub_set_state(s, KL_SUB_ROUTE);
		kl_sub_process(s);
	}
	req_maybe_complete(q);
	return;
wait:
	if (!q->queued) {
		q->queued = true;
		kl_list_add_tail(&c->res_waitq, &q->link);
	}
}

void kl_cluster_run_waiters(struct keel_cluster *c)
{
	/* One pass over what is queued now; requests that still cannot get
	 * resources re-queue themselves at the tail. */
	struct kl_list todo;

	kl_list_init(&todo);
	kl_list_splice(&c->res_waitq, &todo);
	while (!kl_list_empty(&todo)) {
		struct kl_req *q = kl_list_first(&todo, struct kl_req, link);

		kl_list_del(&q->link);
		q->queued = false;
		req_process(q);
		if (q->queued && kl_list_empty(&c->free_subs)) {
			break;
		}
	}
	kl_list_splice(&todo, &c->res_waitq);
}

/* ---- parts ---- */

static void sub_report(struct kl_sub *s)
{
	struct kl_req *q = s->req;

	if (!q) {
		sub_free(s);
		return;
	}
	if (s->res && !q->res) {
		q->res = s->res;
	}
	q->parts_out--;
	sub_free(s);
	req_maybe_complete(q);
}

static void sub_note_failure(struct kl_sub *s)
{
	if (s->req && !s->req->first_fail_ns) {
		s->req->first_fail_ns = reactor_now_ns();
	}
}

static void sub_park(struct kl_sub *s, int err)
{
	struct keel_cluster *c = s->c;

	kl_list_del(&s->link);
	kl_list_del(&s->srv_link);
	sub_note_failure(s);
	s->backoff_ns = kl_backoff_next(s->backoff_ns);
	s->wake_ns = reactor_now_ns() + s->backoff_ns;
	log_debug("part %u objno %llu: retry in %llu us (%d)", s->idx,
		  (unsigned long long)s->objno, (unsigned long long)s->backoff_ns / 1000, err);
	sub_set_state(s, KL_SUB_PARKED);
	kl_list_add_tail(&c->parked, &s->link);
	kl_cluster_arm_backoff(c);
}

void kl_sub_retry_later(struct kl_sub *s, int err)
{
	if (s->target) {
		/*
		 * A SYNC whose server went away: every write it acknowledged
		 * was durable on all in-sync members before the ack
		 * (docs/cluster.md), so there is nothing left to flush there.
		 */
		kl_list_del(&s->link);
		kl_list_del(&s->srv_link);
		s->res = 0;
		sub_set_state(s, KL_SUB_DONE);
		kl_sub_process(s);
		return;
	}
	sub_park(s, err);
	/* The part may still own its msg (timeout/close before the send
	 * completed): kl_sub_process() waits for it in ROUTE after wake-up. */
}

static void sub_wake(struct kl_sub *s)
{
	kl_list_del(&s->link);
	if (!s->req) {
		sub_free(s);
		return;
	}
	s->req->v->stats.retries++;
	sub_set_state(s, KL_SUB_ROUTE);
	kl_sub_process(s);
}

void kl_cluster_wake_parked(struct keel_cluster *c)
{
	struct kl_list todo;

	kl_list_init(&todo);
	kl_list_splice(&c->parked, &todo);
	while (!kl_list_empty(&todo)) {
		sub_wake(kl_list_first(&todo, struct kl_sub, link));
	}
}

void kl_cluster_wake_due(struct keel_cluster *c, uint64_t now)
{
	struct kl_list todo, *n, *next;

	kl_list_init(&todo);
	for (n = c->parked.next; n != &c->parked; n = next) {
		struct kl_sub *s = container_of(n, struct kl_sub, link);

		next = n->next;
		if (s->wake_ns <= now) {
			kl_list_del(n);
			kl_list_add_tail(&todo, n);
		}
	}
	while (!kl_list_empty(&todo)) {
		sub_wake(kl_list_first(&todo, struct kl_sub, link));
	}
}

void kl_cluster_check_timeouts(struct keel_cluster *c, uint64_t now)
{
	/* inflight is in send order and the timeout is fixed, so it is in
	 * deadline order: stop at the first part still in time. Closing the
	 * connection moves its parts off the list, so restart from the head. */
	while (!kl_list_empty(&c->inflight)) {
		struct kl_sub *s = kl_list_first(&c->inflight, struct kl_sub, link);

		if (s->deadline_ns > now) {
			break;
		}
		log_warn("%s to server %u timed out: closing its connection",
			 kp_opcode_name(s->opcode), s->srv ? s->srv->id : 0);
		kl_list_del(&s->link);
		if (s->srv) {
			kl_srv_close(s->srv, -ETIMEDOUT, "request timed out");
		}
	}
}

static void sub_sent(struct kp_msg *m, int res)
{
	struct kl_sub *s = m->arg;

	s->msg_busy = false;
	if (s->req && s->req->cancelled && s->state != KL_SUB_DONE) {
		/* Its request was cancelled while the send held caller memory:
		 * now that the memory is released, detach; a late reply or the
		 * connection close frees the part. */
		struct kl_req *q = s->req;

		kl_list_del(&s->req_link);
		s->req = NULL;
		q->parts_out--;
		if (s->state != KL_SUB_SENT) {
			sub_free(s);
		}
		req_maybe_complete(q);
		return;
	}
	if (s->state == KL_SUB_ROUTE || s->state == KL_SUB_DONE) {
		kl_sub_process(s);
	}
}

/* READ of a layered volume: the parents, for the primary to read
 * through (docs/volumes.md). */
static void sub_set_chain(struct kl_sub *s, const struct keel_volume_info *vi)
{
	Keel__ReadChain rc = KEEL__READ_CHAIN__INIT;
	size_t len;

	rc.n_parents = vi->nparents;
	rc.parents = (uint64_t *)vi->parents;
	len = keel__read_chain__get_packed_size(&rc);
	kassert(len <= sizeof(s->chain));
	keel__read_chain__pack(&rc, s->chain);
	s->msg.meta = s->chain;
	s->msg.hdr.meta_len = (uint32_t)len;
}

/* Build the frame of the next attempt of @s. */
static void sub_build_msg(struct kl_sub *s, uint32_t pgid)
{
	struct keel_cluster *c = s->c;
	struct kp_hdr *h = &s->msg.hdr;
	const struct keel_volume_info *vi = s->req ? &s->req->v->info : NULL;

	memset(h, 0, sizeof(*h));
	h->opcode = s->opcode;
	h->req_id = (++c->seq << 16) | s->idx;
	h->epoch = c->map ? c->map->epoch : 0;
	if (!s->target) {
		h->inode = s->inode;
		h->objno = s->objno;
		h->offset = s->obj_off;
		h->length = s->len;
		h->pgid = pgid;
		h->gen = s->req ? s->req->v->gen : 0;
	}
	s->msg.meta = NULL;
	s->msg.data = NULL;
	s->msg.crcs = NULL;
	if (s->opcode == KP_OP_WRITE) {
		h->data_len = s->len;
		s->msg.data = s->data;
		s->msg.crcs = s->crcs;
	} else if (vi && vi->nparents && s->opcode == KP_OP_READ) {
		sub_set_chain(s, vi);
	}
	if (vi && vi->read_only && s->opcode == KP_OP_READ) {
		h->flags |= KP_F_SNAP; /* a snapshot view reads a read-only layer */
	} else if (vi && vi->nparents &&
		   (s->opcode == KP_OP_DISCARD || s->opcode == KP_OP_WRITE_ZEROES)) {
		/* Unmapping in a layer with parents would show their data:
		 * store zeroes. Decided per attempt, on the current chain (a
		 * snapshot may have given the volume parents meanwhile). */
		h->opcode = KP_OP_WRITE;
		h->data_len = s->len;
		for (uint32_t i = 0; i < s->len / KP_BLOCK; i++) {
			s->crcs[i] = c->zero_crc;
		}
		s->msg.data = c->zeroes;
		s->msg.crcs = s->crcs;
	}
	s->msg.done = sub_sent;
	s->msg.arg = s;
	s->epoch = h->epoch;
	s->req_id = h->req_id;
}

/* ROUTE: pick the server, make sure it is connected, send. */
static void sub_route(struct kl_sub *s)
{
	struct keel_cluster *c = s->c;
	struct kl_route rt;
	struct kl_srv *srv;
	uint64_t now;
	int ret;

	if (s->target) {
		srv = c->srv_by_id[s->target];
		if (!srv || srv->state == KL_SRV_DOWN || srv->state == KL_SRV_CLOSING) {
			s->res = 0; /* see kl_sub_retry_later() */
			sub_set_state(s, KL_SUB_DONE);
			return;
		}
		rt.pgid = 0;
	} else {
		if (s->req) {
			struct keel_volume *v = s->req->v;

			if (v->gone) {
				s->res = v->gone;
				sub_set_state(s, KL_SUB_DONE);
				return;
			}
			/* The top may have changed since the last attempt. */
			s->inode = v->info.inode;
		}
		ret = kl_route_object(c->map, s->pool, s->inode, s->objno, &rt);
		if (ret) {
			sub_park(s, ret);
			return;
		}
		srv = kl_srv_get(c, rt.server);
		if (!srv) {
			sub_park(s, -ENOMEM);
			return;
		}
		if (srv->state != KL_SRV_DOWN && strcmp(srv->addr, rt.addr)) {
			/* The server moved: drop the old connection. */
			kl_srv_close(srv, -ESTALE, "server address changed");
		}
		if (srv->state == KL_SRV_DOWN) {
			snprintf(srv->addr, sizeof(srv->addr), "%s", rt.addr);
		}
	}
	if (srv->state == KL_SRV_CLOSING) {
		sub_park(s, -ENOTCONN);
		return;
	}
	if (srv->state == KL_SRV_DOWN) {
		now = reactor_now_ns();
		if (now < srv->retry_after_ns) {
			sub_park(s, -ENOTCONN);
			return;
		}
		if (srv->lost && s->req) {
			s->req->v->stats.reconnects++;
			srv->lost = false;
		}
		ret = c->net->connect(srv);
		if (ret) {
			log_warn("cannot connect to server %u at %s: %s", srv->id, srv->addr,
				 strerror(-ret));
			srv->retry_after_ns = now + KL_CONNECT_RETRY_NS;
			srv->lost = true;
			sub_park(s, ret);
			return;
		}
		srv->state = KL_SRV_CONNECTING;
		c->nconns++;
	}
	if (srv->state == KL_SRV_CONNECTING || srv->nsent >= KL_SRV_MAX_INFLIGHT) {
		s->srv = srv;
		sub_set_state(s, KL_SUB_CONNWAIT);
		kl_list_add_tail(&srv->waitq, &s->srv_link);
		return;
	}
	s->srv = srv;
	sub_build_msg(s, rt.pgid);
	s->attempts++;
	s->msg_busy = true;
	ret = c->net->send(srv, &s->msg);
	if (ret) {
		s->msg_busy = false;
		log_warn("send to server %u failed: %s", srv->id, strerror(-ret));
		sub_park(s, ret);
		return;
	}
	sub_set_state(s, KL_SUB_SENT);
	s->deadline_ns = reactor_now_ns() + c->io_timeout_ns;
	kl_list_add_tail(&c->inflight, &s->link);
	kl_list_add_tail(&srv->sent, &s->srv_link);
	srv->nsent++;
	kl_cluster_arm_watch(c);
}

void kl_sub_process(struct kl_sub *s)
{
	for (;;) {
		switch (s->state) {
		case KL_SUB_ROUTE:
			if (s->msg_busy) {
				return; /* sub_sent() drives us again */
			}
			if (s->req && s->req->cancelled) {
				sub_report(s);
				return;
			}
			sub_route(s);
			if (s->state != KL_SUB_DONE) {
				return;
			}
			break;
		case KL_SUB_DONE:
			if (s->msg_busy) {
				return;
			}
			sub_report(s);
			return;
		default:
			return;
		}
	}
}

void kl_sub_on_reply(struct kl_sub *s, const struct kp_hdr *h, const uint8_t *data,
		     const uint32_t *crcs)
{
	struct kl_srv *srv = s->srv;
	int err = kp_status_to_errno(h->status);
	int surface;

	kl_list_del(&s->link);
	kl_list_del(&s->srv_link);
	srv->nsent--;
	if (!s->req) {
		/* Orphan: the request is gone. Nothing to deliver. */
		if (!s->msg_busy) {
			sub_free(s);
		} else {
			sub_set_state(s, KL_SUB_DONE);
		}
		return;
	}
	if (err == -ENOSPC && s->c->map && !s->c->map->full_fail) {
		/* full_policy wait: the write goes once space returns. */
		if (s->req->v->stats.full_waits++ % 1000 == 0) {
			log_warn("volume %s: %s objno %llu: pool full, waiting for space (%llu "
				 "writes waited so far)",
				 s->req->v->info.name, kp_opcode_name(s->opcode),
				 (unsigned long long)s->objno,
				 (unsigned long long)s->req->v->stats.full_waits);
		}
		sub_park(s, err);
		return;
	}
	switch (kl_classify(h->opcode, err, &surface)) {
	case KL_V_OK:
		if (s->opcode == KP_OP_READ) {
			/* kp_conn checked the crcs in transit; they are the crcs the
			 * store kept with the data, so this is the end-to-end check
			 * against what the writer computed. */
			if (!data || h->data_len != s->len || !kp_data_verify(data, s->len, crcs)) {
				log_warn("READ reply from server %u: bad data or crcs", srv->id);
				kl_srv_close(srv, -EPROTO, "bad read reply");
				sub_park(s, -EPROTO);
				return;
			}
			kl_iov_from_buf(s->req->iov, s->req->iovcnt, s->rel, data, s->len);
		}
		s->res = 0;
		sub_set_state(s, KL_SUB_DONE);
		break;
	case KL_V_FAIL:
		log_warn("%s objno %llu on server %u: %s", kp_opcode_name(s->opcode),
			 (unsigned long long)s->objno, srv->id, strerror(-surface));
		s->res = surface;
		sub_set_state(s, KL_SUB_DONE);
		break;
	case KL_V_RETRY_MAP:
		s->req->v->stats.stale_epochs++;
		sub_park(s, err);
		return;
	case KL_V_RETRY_BACKOFF:
		sub_park(s, err);
		return;
	case KL_V_REOPEN:
		/* A snapshot view whose own layer is deleting is gone; one that
		 * read through a deleting parent (a merged snapshot's layer,
		 * docs/volumes.md) asks mgmt for its chain again, like a top. */
		if (s->req->v->info.read_only &&
		    cmap_layer_state(s->c->map, s->req->v->info.inode) == CMAP_LAYER_DELETING) {
			s->res = -EROFS;
			sub_set_state(s, KL_SUB_DONE);
			break;
		}
		kl_volume_refresh(s->req->v);
		sub_park(s, err);
		return;
	}
	kl_sub_process(s);
}

/* ---- volumes ---- */

void kl_volume_cancel_all(struct keel_volume *v)
{
	/* Hold @v while completing its requests: the last completion would
	 * otherwise free it under this loop. */
	v->nactive++;
	for (unsigned int i = 0; i < KL_MAX_REQS; i++) {
		struct kl_req *q = &v->reqs[i];
		struct kl_list *n, *next;

		if (!q->in_use || q->cancelled) {
			continue;
		}
		q->cancelled = true;
		if (q->queued) {
			kl_list_del(&q->link);
			q->queued = false;
		}
		for (n = q->subs.next; n != &q->subs; n = next) {
			struct kl_sub *s = container_of(n, struct kl_sub, req_link);

			next = n->next;
			if (s->msg_busy) {
				/* The connection still reads caller memory: the
				 * request completes when the send lets go. */
				continue;
			}
			kl_list_del(&s->req_link);
			s->req = NULL;
			q->parts_out--;
			if (s->state != KL_SUB_SENT) {
				/* Parked, waiting for a connection, or done:
				 * nothing on the wire to wait for. A SENT part
				 * stays as an orphan until its reply or close. */
				sub_free(s);
			}
		}
		if (!q->parts_out) {
			req_complete(q);
		}
	}
	v->nactive--;
}

void kl_volume_maybe_free(struct keel_volume *v)
{
	struct keel_cluster *c = v->c;

	if (!v->closing || v->nactive || v->open_cb) {
		return;
	}
	kl_list_del(&v->link);
	free(v->reqs);
	free(v);
	kl_cluster_maybe_free(c);
}

/* ---- public I/O entry points ---- */

static int io_submit(struct keel_volume *v, enum kl_op op, const struct iovec *iov, int iovcnt,
		     uint64_t offset, uint64_t length, keel_io_cb cb, void *arg)
{
	struct kl_req *q;

	if (!v || !cb || !v->opened || v->closing || v->c->closing) {
		return -EINVAL;
	}
	if (v->info.read_only && op != KL_OP_READ && op != KL_OP_FLUSH) {
		return -EROFS;
	}
	if (op != KL_OP_FLUSH) {
		if (!length || offset % KP_BLOCK || length % KP_BLOCK) {
			return -EINVAL;
		}
		if (offset > v->info.size || length > v->info.size - offset) {
			return -ERANGE;
		}
	}
	if (iov) {
		if (iovcnt <= 0 || iovcnt > KL_REQ_IOV_MAX || kl_iov_len(iov, iovcnt) != length) {
			return -EINVAL;
		}
	}
	if (kl_list_empty(&v->free_reqs)) {
		return -EAGAIN;
	}
	q = kl_list_first(&v->free_reqs, struct kl_req, link);
	kl_list_del(&q->link);
	q->op = op;
	q->iovcnt = iov ? iovcnt : 0;
	if (iov) {
		memcpy(q->iov, iov, sizeof(*iov) * (size_t)iovcnt);
	}
	q->off = offset;
	q->end = offset + length;
	q->next = op == KL_OP_FLUSH ? 0 : offset;
	q->parts_out = 0;
	q->res = 0;
	q->in_use = true;
	q->cancelled = false;
	q->queued = false;
	q->first_fail_ns = 0;
	q->cb = cb;
	q->arg = arg;
	kl_list_init(&q->subs);
	v->nactive++;
	if (op == KL_OP_FLUSH && !v->c->nsrv) {
		/* Nothing to flush; the callback must still come later. */
		reactor_defer(v->c->r, &q->defer);
		return 0;
	}
	req_process(q);
	return 0;
}

/* A request with no parts (flush, no servers): complete on the next turn. */
static void req_deferred(struct reactor_defer *d)
{
	struct kl_req *q = container_of(d, struct kl_req, defer);

	req_maybe_complete(q);
}

void kl_volume_init_reqs(struct keel_volume *v)
{
	kl_list_init(&v->free_reqs);
	for (unsigned int i = 0; i < KL_MAX_REQS; i++) {
		struct kl_req *q = &v->reqs[i];

		q->v = v;
		q->defer.fn = req_deferred;
		kl_list_init(&q->subs);
		kl_list_add_tail(&v->free_reqs, &q->link);
	}
}

int keel_readv(struct keel_volume *v, const struct iovec *iov, int iovcnt, uint64_t offset,
	       keel_io_cb cb, void *arg)
{
	uint64_t len = iov && iovcnt > 0 ? kl_iov_len(iov, iovcnt) : 0;

	if (!iov) {
		return -EINVAL;
	}
	return io_submit(v, KL_OP_READ, iov, iovcnt, offset, len, cb, arg);
}

int keel_writev(struct keel_volume *v, const struct iovec *iov, int iovcnt, uint64_t offset,
		keel_io_cb cb, void *arg)
{
	uint64_t len = iov && iovcnt > 0 ? kl_iov_len(iov, iovcnt) : 0;

	if (!iov) {
		return -EINVAL;
	}
	return io_submit(v, KL_OP_WRITE, iov, iovcnt, offset, len, cb, arg);
}

int keel_flush(struct keel_volume *v, keel_io_cb cb, void *arg)
{
	return io_submit(v, KL_OP_FLUSH, NULL, 0, 0, 0, cb, arg);
}

int keel_discard(struct keel_volume *v, uint64_t offset, uint64_t length, keel_io_cb cb,
		 void *arg)
{
	return io_submit(v, KL_OP_DISCARD, NULL, 0, offset, length, cb, arg);
}

int keel_write_zeroes(struct keel_volume *v, uint64_t offset, uint64_t length, keel_io_cb cb,
		      void *arg)
{
	return io_submit(v, KL_OP_WRITE_ZEROES, NULL, 0, offset, length, cb, arg);
}

void keel_volume_stats(const struct keel_volume *v, struct keel_volume_stats *out)
{
	*out = v->stats;
}
