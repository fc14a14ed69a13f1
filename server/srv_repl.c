/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_repl: the replicated data path (docs/cluster.md "Data path and
 * versions").
 *
 * Primary side: client ops take their object (srv_obj: readers share,
 * mutations and pushes are exclusive, FIFO), so one mutation per object is
 * in flight and a read never returns data that is not on every copy yet.
 * A mutation gets version pg_next_version(), is written locally and sent
 * as REPLICA_WRITE / REPLICA_DISCARD to every other up member in parallel
 * (hdr.obj_ver = new version, hdr.gen = the object's previous version), and
 * is acknowledged when pg_write_complete() says so. A member that holds a
 * different previous version answers ENOENT: its copy of the object is not
 * the primary's, so the primary pushes the whole object state to it (an
 * inline object push, srv_recovery.c) before counting it. Below
 * min_replicas mutations queue on the PG; a replica that fails keeps the
 * mutation waiting (re-sent) until a map removes it; a map that takes the
 * PG from us fails everything with ESTALE.
 *
 * Replica side: REPLICA_* ops are fenced by pg_check_replica() and applied
 * with the primary's version; a version already present answers OK.
 */
#include "server/srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

#define SRV_REPL_RETRY_NS (100ull * 1000 * 1000)

/* ---- objects ---- */

static uint32_t obj_hash(const struct srv_cluster *cl, uint64_t inode, uint64_t objno)
{
	uint64_t h = (inode * 0x9e3779b97f4a7c15ull) ^ (objno * 0xc2b2ae3d27d4eb4full);

	return (uint32_t)(h ^ (h >> 29)) & cl->obj_hmask;
}

struct srv_obj *srv_obj_get(struct srv_cluster *cl, uint64_t inode, uint64_t objno)
{
	uint32_t h = obj_hash(cl, inode, objno);
	struct srv_obj *o;

	for (o = cl->obj_hash[h]; o; o = o->hnext) {
		if (o->inode == inode && o->objno == objno) {
			return o;
		}
	}
	o = cl->obj_free;
	if (!o) {
		return NULL;
	}
	cl->obj_free = o->hnext;
	memset(o, 0, sizeof(*o));
	o->inode = inode;
	o->objno = objno;
	o->hashed = true;
	o->hnext = cl->obj_hash[h];
	cl->obj_hash[h] = o;
	return o;
}

static void obj_put_if_unused(struct srv_cluster *cl, struct srv_obj *o)
{
	struct srv_obj **pp;

	if (!o->hashed || o->readers || o->writer || o->wait_head || o->pins) {
		return;
	}
	o->hashed = false;
	pp = &cl->obj_hash[obj_hash(cl, o->inode, o->objno)];
	while (*pp != o) {
		pp = &(*pp)->hnext;
	}
	*pp = o->hnext;
	o->hnext = cl->obj_free;
	cl->obj_free = o;
}

static bool obj_can_grant(const struct srv_obj *o, bool writer)
{
	return writer ? !o->writer && !o->readers : !o->writer;
}

bool srv_obj_lock(struct srv_cluster *cl, struct srv_obj *o, struct srv_obj_waiter *w)
{
	w->obj = o;
	if (!o->wait_head && obj_can_grant(o, w->writer)) {
		if (w->writer) {
			o->writer = true;
		} else {
			o->readers++;
		}
		return true;
	}
	w->next = NULL;
	if (o->wait_tail) {
		o->wait_tail->next = w;
	} else {
		o->wait_head = w;
	}
	o->wait_tail = w;
	return false;
}

/* Take the first waiter off @o's queue. */
static struct srv_obj_waiter *obj_pop_waiter(struct srv_obj *o)
{
	struct srv_obj_waiter *w = o->wait_head;

	o->wait_head = w->next;
	if (!o->wait_head) {
		o->wait_tail = NULL;
	}
	return w;
}

/* Grants run requests that may unlock @o again (re-entering here): the pin
 * keeps @o from being freed and reused under this loop. */
static void obj_wake(struct srv_cluster *cl, struct srv_obj *o)
{
	o->pins++;
	while (o->wait_head && obj_can_grant(o, o->wait_head->writer)) {
		struct srv_obj_waiter *w = obj_pop_waiter(o);

		if (w->writer) {
			o->writer = true;
		} else {
			o->readers++;
		}
		w->grant(w);
	}
	o->pins--;
}

void srv_obj_unlock(struct srv_cluster *cl, struct srv_obj *o, bool writer)
{
	if (writer) {
		kassert(o->writer);
		o->writer = false;
	} else {
		kassert(o->readers > 0);
		o->readers--;
	}
	obj_wake(cl, o);
	obj_put_if_unused(cl, o);
}

void srv_obj_unqueue(struct srv_cluster *cl, struct srv_obj *o, struct srv_obj_waiter *w)
{
	struct srv_obj_waiter **pp = &o->wait_head, *prev = NULL;

	while (*pp && *pp != w) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp) {
		*pp = w->next;
		if (o->wait_tail == w) {
			o->wait_tail = prev;
		}
	}
	obj_wake(cl, o);
	obj_put_if_unused(cl, o);
}

/* ---- primary: client requests ---- */

static bool req_is_mutation(const struct srv_req *req)
{
	return req->hdr.opcode != KP_OP_READ;
}

static struct srv_cluster *req_cl(const struct srv_req *req)
{
	return req->conn->srv->cl;
}

static void repl_check(struct srv_req *req);

/*
 * A callback that finds its request in a state it cannot come from is a
 * late one for an earlier use of the request slot: log it and drop it
 * (acting on it would complete the new request early, or twice).
 */
static bool repl_stale_cb(const struct srv_req *req, const char *what, bool ok)
{
	if (ok) {
		return false;
	}
	log_error("%s: late %s for %s of %llu:%llu in state %d (ignored)", req->conn->peer, what,
		  kp_opcode_name(req->hdr.opcode), (unsigned long long)req->hdr.inode,
		  (unsigned long long)req->hdr.objno, req->r.state);
	return true;
}

static bool repl_in_flight(const struct srv_req *req)
{
	return req->r.state == SRV_RS_RUNNING || req->r.state == SRV_RS_PUSHING ||
	       req->r.state == SRV_RS_FINISHING;
}

static bool repl_subs_sending(const struct srv_req *req)
{
	unsigned int k;

	for (k = 0; k < req->r.nsubs; k++) {
		if (req->r.subs[k].sending) {
			return true;
		}
	}
	return false;
}

static void pg_active_del(struct srv_req *req)
{
	struct srv_pg *pg = req->r.pg;

	if (req->r.pprev) {
		req->r.pprev->r.pnext = req->r.pnext;
	} else if (pg->active == req) {
		pg->active = req->r.pnext;
	}
	if (req->r.pnext) {
		req->r.pnext->r.pprev = req->r.pprev;
	}
	req->r.pnext = req->r.pprev = NULL;
	if (req->r.pg_gen == pg->gen) {
		kassert(pg->inflight_cur > 0);
		pg->inflight_cur--;
	} else {
		kassert(pg->inflight_prev > 0);
		pg->inflight_prev--;
	}
}

/* We acknowledge a write as primary of @pg in @interval: record the pair
 * (once per pair) for srv_repl_log_writers(). */
static void repl_note_writer(struct srv_cluster *cl, struct srv_pg *pg, uint64_t interval)
{
	struct srv_wrote *w;

	if (!pg || pg->acked_interval == interval) {
		return;
	}
	if (cl->nwrote == sizeof(cl->wrote) / sizeof(cl->wrote[0])) {
		srv_repl_log_writers(cl);
	}
	pg->acked_interval = interval;
	w = &cl->wrote[cl->nwrote++];
	w->pool = pg->pool;
	w->pg = pg->pg;
	w->interval = interval;
}

void srv_repl_log_writers(struct srv_cluster *cl)
{
	char line[512];
	unsigned int i = 0;

	while (i < cl->nwrote) {
		size_t n = 0;

		for (; i < cl->nwrote && n + 48 < sizeof(line); i++) {
			n += (size_t)snprintf(line + n, sizeof(line) - n, " %u.%u@%llu",
					      cl->wrote[i].pool, cl->wrote[i].pg,
					      (unsigned long long)cl->wrote[i].interval);
		}
		log_info("primary writes acknowledged (pg@interval):%s", line);
	}
	cl->nwrote = 0;
}

/* A mutation started (it is in pg->active): count it under the current
 * layer list, for the drain before map replies (srv_cluster_drained()). */
static void repl_layers_get(struct srv_cluster *cl, struct srv_req *req)
{
	req->r.layers_gen = cl->layers_gen;
	cl->mut_cur++;
}

static void repl_layers_put(struct srv_cluster *cl, struct srv_req *req)
{
	if (req->r.layers_gen == cl->layers_gen) {
		kassert(cl->mut_cur > 0);
		cl->mut_cur--;
		return;
	}
	kassert(cl->mut_old > 0);
	if (!--cl->mut_old) {
		srv_cluster_drained(cl);
	}
}

/* EROFS for a client op the current map's layer list refuses (a read of
 * a deleting layer or through one, a mutation of a snapshot or a deleting
 * layer); 0 otherwise. The no-layer map costs one test. */
static int repl_layer_check(const struct srv_cluster *cl, const struct srv_req *req)
{
	if (req->r.cu) {
		/* a merge's own copy-up: allowed into a read-only target, only
		 * while the map still lists this merge */
		const struct cmap_layer *l = cmap_layer_find(cl->map, req->r.cu->from);

		return l && l->merge_into == req->hdr.inode &&
				       cmap_layer_state(cl->map, req->hdr.inode) !=
					       CMAP_LAYER_DELETING
			       ? 0
			       : -ECANCELED;
	}
	if (!cl->map->nlayers) {
		return 0;
	}
	if (req_is_mutation(req)) {
		return layer_mutation_check(cl->map, req->hdr.inode);
	}
	return layer_read_check(cl->map, req->hdr.inode, req->r.chain ? req->x.chain.parents : NULL,
				req->r.chain ? req->x.chain.nparents : 0,
				req->hdr.flags & KP_F_SNAP);
}

/* EPERM for a client mutation from an attachment generation the map
 * fences (docs/volumes.md "Attachments and fencing"): a host that was
 * detached (or lost its attachment to another host) never writes again. */
static int repl_fence_check(struct srv_cluster *cl, const struct srv_req *req)
{
	if (!cmap_fence_check(cl->map, req->hdr.inode, req->hdr.gen)) {
		return 0;
	}
	if (cl->fenced_refused++ % 1000 == 0) {
		log_warn("%s of %llx:%llu from fenced attachment generation %llu refused (%llu "
			 "so far)",
			 kp_opcode_name(req->hdr.opcode), (unsigned long long)req->hdr.inode,
			 (unsigned long long)req->hdr.objno, (unsigned long long)req->hdr.gen,
			 (unsigned long long)cl->fenced_refused);
	}
	return -EPERM;
}

/*
 * ENOSPC for a client write that needs a new object while the map says
 * the object's pool is full (docs/operations.md "When the cluster
 * fills"); 0 otherwise. Overwrites of objects the primary holds, reads,
 * discards and deletes go on, so guests keep running on what they have
 * and space can be freed. Checked under the object's hold, so a write
 * queued behind the one that allocated the object passes.
 */
static int repl_full_check(struct srv_cluster *cl, const struct srv_req *req)
{
	const struct cmap_pool *pool;
	struct bs_obj_stat st;

	if (req->hdr.opcode != KP_OP_WRITE && req->hdr.opcode != KP_OP_WRITE_ZEROES) {
		return 0;
	}
	if (req->r.cu) {
		/* A merge's copy-up: the merged layer's objects are freed once
		 * it is done, so merging (deleting a snapshot) is how a full
		 * pool gets space back. A drive that really runs out still
		 * refuses it (ENOSPC; the merge retries the object later). */
		return 0;
	}
	pool = cmap_pool(cl->map, KP_PGID_POOL(req->hdr.pgid));
	if (!pool || !pool->full) {
		return 0;
	}
	if (bs_stat_object(cl->srv->bs, req->hdr.inode, req->hdr.objno, &st) != -ENOENT) {
		return 0;
	}
	if (cl->full_refused++ % 10000 == 0) {
		log_warn("pool %u is full: refusing writes that need a new object (%llu so far)",
			 pool->id, (unsigned long long)cl->full_refused);
	}
	return -ENOSPC;
}

/* The last step of every client request in cluster mode. */
static void repl_complete(struct srv_req *req)
{
	struct srv_cluster *cl = req_cl(req);
	struct srv_req *merged, *f, *next;
	uint64_t version = req->r.version;
	int res = req->r.final_res;

	if (req->r.state == SRV_RS_NONE) {
		/* Already completed: a late send-done or push end must not
		 * finish the request (or its reused slot) a second time. */
		log_error("%s: %s of %llu:%llu completed twice (ignored)", req->conn->peer,
			  kp_opcode_name(req->hdr.opcode), (unsigned long long)req->hdr.inode,
			  (unsigned long long)req->hdr.objno);
		return;
	}
	if (repl_subs_sending(req) || req->r.rop || !req->r.local_done) {
		/* a send-done, the push's end or the local op's completion
		 * calls us again: none may outlive the request */
		return;
	}
	if (req->r.state == SRV_RS_RUNNING || req->r.state == SRV_RS_PUSHING ||
	    req->r.state == SRV_RS_FINISHING) {
		if (req_is_mutation(req) && req->r.version) {
			pg_active_del(req);
			repl_layers_put(cl, req);
		}
	}
	req->r.state = SRV_RS_NONE;
	if (req->r.locked) {
		req->r.locked = false;
		srv_obj_unlock(cl, req->r.obj, req->r.ow.writer);
	}
	req->r.obj = NULL;
	kassert(cl->client_inflight > 0);
	cl->client_inflight--;
	if (!res && req_is_mutation(req)) {
		req->reply.hdr.obj_ver = req->r.version;
		repl_note_writer(cl, req->r.pg, req->r.interval);
	}
	merged = req->r.merged;
	if (merged) {
		req->r.merged = NULL;
		req->hdr.length = req->r.own_length;
	}
	srv_req_finish(req, res);
	for (f = merged; f; f = next) {
		next = f->r.mnext;
		kassert(f->r.state == SRV_RS_MERGED);
		f->r.state = SRV_RS_NONE;
		kassert(cl->client_inflight > 0);
		cl->client_inflight--;
		if (!res) {
			f->reply.hdr.obj_ver = version;
		}
		srv_req_finish(f, res);
	}
}

static void repl_sub_idle(struct srv_peer_req *pr)
{
	struct srv_req *req = pr->arg;

	if (repl_stale_cb(req, "send-done", repl_in_flight(req))) {
		return;
	}
	if (req->r.state == SRV_RS_FINISHING) {
		repl_complete(req);
	}
}

/* Finish with @res once the local op is done and no send holds req->buf. */
static void repl_finish(struct srv_req *req, int res)
{
	unsigned int k;

	if (req->r.state == SRV_RS_FINISHING) {
		return;
	}
	for (k = 0; k < req->r.nsubs; k++) {
		srv_peer_cancel(&req->r.subs[k]);
	}
	req->r.final_res = res;
	if (req->r.state == SRV_RS_RUNNING && !req->r.local_done) {
		/* the local op still uses req->buf: its completion finishes */
		req->r.state = SRV_RS_FINISHING;
		return;
	}
	req->r.state = SRV_RS_FINISHING;
	repl_complete(req);
}

/* ---- primary: reads through a layer chain ---- */

static void chain_next(struct srv_req *req);

/* A read is over: unless it failed, the reply carries req->buf with the
 * object version @version. */
static void read_finish(struct srv_req *req, int res, uint64_t version)
{
	if (!res) {
		req->reply.data = req->buf;
		req->reply.crcs = req->crcs;
		req->reply.hdr.data_len = req->hdr.length;
		req->reply.hdr.obj_ver = version;
	}
	req->r.state = SRV_RS_FINISHING;
	req->r.final_res = res;
	repl_complete(req);
}

/* End of a chain read: the reply is the merged extent with the top's
 * object version. */
static void chain_done(struct srv_req *req, int res)
{
	struct srv_chain *c = &req->x.chain;

	if (c->pbuf) {
		bufpool_put(req->pool, c->pbuf);
		c->pbuf = NULL;
	}
	read_finish(req, res, c->top_version);
}

static void chain_read_done(struct bs_req *b, int res)
{
	struct srv_req *req = b->arg;
	struct srv_chain *c = &req->x.chain;

	if (repl_stale_cb(req, "parent read",
			  !req->r.local_done && req->r.state == SRV_RS_RUNNING && c->pobj)) {
		return;
	}
	req->r.local_done = true;
	srv_obj_unlock(req_cl(req), c->pobj, false);
	c->pobj = NULL;
	if (res) {
		chain_done(req, res);
		return;
	}
	c->level++;
	if (!layer_merge(req->buf, req->crcs, c->pbuf, c->pcrcs, c->missing, c->present,
			 req->hdr.length / BS_BLOCK)) {
		chain_done(req, 0);
		return;
	}
	chain_next(req);
}

/* The parent's object is held (shared): read the same extent of it. */
static void chain_read(struct srv_req *req)
{
	struct srv_chain *c = &req->x.chain;
	int ret;

	memset(&req->bs, 0, sizeof(req->bs));
	req->bs.op = BS_OP_READ;
	req->bs.inode = c->parents[c->level];
	req->bs.objno = req->hdr.objno;
	req->bs.offset = req->hdr.offset;
	req->bs.length = req->hdr.length;
	req->bs.buf = c->pbuf;
	req->bs.crcs = c->pcrcs;
	req->bs.present = c->present;
	req->bs.cb = chain_read_done;
	req->bs.arg = req;
	req->r.local_done = false;
	ret = bs_submit(req_cl(req)->srv->bs, &req->bs);
	if (ret) {
		req->r.local_done = true;
		srv_obj_unlock(req_cl(req), c->pobj, false);
		c->pobj = NULL;
		chain_done(req, ret);
	}
}

static void chain_granted(struct srv_obj_waiter *w)
{
	struct srv_req *req = container_of(w, struct srv_req, x.chain.pw);

	if (repl_stale_cb(req, "parent grant",
			  req->r.state == SRV_RS_RUNNING && req->x.chain.pobj == w->obj)) {
		srv_obj_unlock(req_cl(req), w->obj, false);
		return;
	}
	chain_read(req);
}

/*
 * Shared hold of a parent's object for a chain read, which already holds
 * its top object: granted at once unless a writer holds it (a parent is a
 * snapshot, so only a mutation still draining or a push can). Queued
 * writers are not waited for: a writer holds one object only, so waiting
 * just for holders can never close a cycle, while FIFO order behind a
 * queued writer could (two hostile chains naming each other's tops).
 */
static bool chain_lock_parent(struct srv_cluster *cl, struct srv_obj *o, struct srv_obj_waiter *w)
{
	if (!o->writer) {
		w->obj = o;
		o->readers++;
		return true;
	}
	return srv_obj_lock(cl, o, w);
}

/* Read the next parent for the blocks still missing, or finish. */
static void chain_next(struct srv_req *req)
{
	struct srv_cluster *cl = req_cl(req);
	struct srv_chain *c = &req->x.chain;
	struct srv_obj *o;

	if (c->level >= c->nparents) {
		chain_done(req, 0); /* blocks no layer holds: zeroes from the top's read */
		return;
	}
	o = srv_obj_get(cl, c->parents[c->level], req->hdr.objno);
	if (!o) {
		chain_done(req, -EBUSY);
		return;
	}
	c->pobj = o;
	c->pw.writer = false;
	c->pw.grant = chain_granted;
	if (chain_lock_parent(cl, o, &c->pw)) {
		chain_read(req);
	}
}

/* The top's extent is in req->buf (unmapped blocks as zeroes) and its
 * bitmap in c->present. */
static void chain_start(struct srv_req *req)
{
	struct srv_chain *c = &req->x.chain;

	c->top_version = req->bs.version;
	c->level = 0;
	c->pobj = NULL;
	c->pbuf = NULL;
	if (!layer_missing_init(c->missing, c->present, req->hdr.length / BS_BLOCK)) {
		chain_done(req, 0);
		return;
	}
	c->pbuf = bufpool_get(req->pool);
	if (!c->pbuf) {
		req->conn->srv->ctr.busy_rejects++;
		chain_done(req, -EBUSY);
		return;
	}
	chain_next(req);
}

static void repl_local_done(struct bs_req *b, int res)
{
	struct srv_req *req = b->arg;

	if (repl_stale_cb(req, "local completion",
			  !req->r.local_done &&
				  (req->r.state == SRV_RS_RUNNING ||
				   req->r.state == SRV_RS_FINISHING))) {
		return;
	}
	req->r.local_done = true;
	req->r.local_res = res;
	if (req->r.state == SRV_RS_FINISHING) {
		repl_complete(req);
		return;
	}
	if (!req_is_mutation(req)) {
		if (!res && req->r.chain) {
			chain_start(req);
			return;
		}
		read_finish(req, res, b->version);
		return;
	}
	if (res) {
		/* Replicas may have applied it: their next previous-version
		 * check finds the difference and the object gets pushed. */
		log_error("%s: local %s of %llu:%llu failed: %s (version %llx, previous %llx, "
			  "pg %u.%u interval %llu)",
			  req->conn->peer, kp_opcode_name(req->hdr.opcode),
			  (unsigned long long)req->hdr.inode, (unsigned long long)req->hdr.objno,
			  strerror(-res), (unsigned long long)req->r.version,
			  (unsigned long long)req->r.prev_version, req->r.pg->pool, req->r.pg->pg,
			  (unsigned long long)req->r.pg->interval);
		repl_finish(req, res);
		return;
	}
	repl_check(req);
}

static void repl_sub_done(struct srv_peer_req *pr, int res, const struct kp_hdr *h,
			  const uint8_t *meta);

static void repl_sub_send(struct srv_req *req, unsigned int k)
{
	struct srv_cluster *cl = req_cl(req);
	struct srv_peer_req *pr = &req->r.subs[k];
	struct kp_msg *m = &pr->msg;

	memset(&m->hdr, 0, sizeof(m->hdr));
	m->hdr.opcode =
		req->hdr.opcode == KP_OP_WRITE ? KP_OP_REPLICA_WRITE : KP_OP_REPLICA_DISCARD;
	m->hdr.epoch = cl->epoch;
	m->hdr.pgid = req->hdr.pgid;
	m->hdr.inode = req->hdr.inode;
	m->hdr.objno = req->hdr.objno;
	m->hdr.offset = req->hdr.offset;
	m->hdr.length = req->hdr.length;
	m->hdr.obj_ver = req->r.version;
	m->hdr.gen = req->r.prev_version;
	if (req->hdr.opcode == KP_OP_WRITE) {
		m->hdr.data_len = req->hdr.length;
		m->data = req->buf;
		m->crcs = req->crcs;
	} else {
		m->data = NULL;
		m->crcs = NULL;
	}
	m->meta = NULL;
	pr->done = repl_sub_done;
	pr->idle = repl_sub_idle;
	pr->arg = req;
	srv_peer_send(cl, req->r.sent[k], pr);
}

static void repl_push_done(struct srv_rop *rop, int res)
{
	struct srv_req *req = rop->arg;
	unsigned int k;

	if (repl_stale_cb(req, "push end", req->r.rop == rop && repl_in_flight(req))) {
		return;
	}
	req->r.rop = NULL;
	for (k = 0; k < req->r.nsubs; k++) {
		if (req->r.sent[k] == rop->member) {
			break;
		}
	}
	if (req->r.state == SRV_RS_FINISHING) {
		repl_complete(req);
		return;
	}
	req->r.state = SRV_RS_RUNNING;
	if (res == -EROFS) {
		repl_finish(req, -EROFS); /* the layer is being deleted meanwhile */
		return;
	}
	if (res == -ENOSPC) {
		repl_finish(req, -ENOSPC); /* see repl_sub_done() */
		return;
	}
	if (k < req->r.nsubs) {
		req->r.need_push[k] = false;
		if (!res) {
			/* the member now holds our whole object, this write included */
			req->r.done[k] = true;
		} else if (pg_member_up(req->r.pg, rop->member)) {
			/* try again: the write, then (on ENOENT) another push */
			req->r.subs[k].retry_ns = 0;
			repl_sub_send(req, k);
		}
	}
	repl_check(req);
}

/* Push the object to members that refused the previous version. */
static void repl_start_push(struct srv_req *req)
{
	struct srv_cluster *cl = req_cl(req);
	struct srv_rop *rop;
	unsigned int k;

	if (req->r.rop || !req->r.local_done) {
		return;
	}
	for (k = 0; k < req->r.nsubs; k++) {
		if (req->r.need_push[k] && pg_member_up(req->r.pg, req->r.sent[k])) {
			break;
		}
	}
	if (k == req->r.nsubs) {
		return;
	}
	rop = srv_rop_get(cl, true);
	if (!rop) {
		/* all push slots busy: resend the write later, it will ask again */
		req->r.need_push[k] = false;
		req->r.subs[k].retry_ns = reactor_now_ns() + SRV_REPL_RETRY_NS;
		repl_sub_send(req, k);
		return;
	}
	rop->pg = req->r.pg;
	rop->pg_gen = req->r.pg->gen;
	rop->member = req->r.sent[k];
	rop->inode = req->hdr.inode;
	rop->objno = req->hdr.objno;
	rop->locked_by_owner = true;
	rop->obj = req->r.obj;
	rop->done = repl_push_done;
	rop->arg = req;
	req->r.rop = rop;
	req->r.state = SRV_RS_PUSHING;
	srv_rop_start(rop);
}

/*
 * May the write go on without member @k, leaving its copy of the object to
 * recovery? Only if the other copies can still make min_replicas: else the
 * write would wait for a recovery that waits for the write's object.
 */
static bool repl_can_leave_behind(const struct srv_req *req, unsigned int k)
{
	const struct srv_pg *pg = req->r.pg;
	unsigned int j, copies = 1;

	if (pg_member_in_sync(pg, req->r.sent[k]) ||
	    !srv_recovery_will_visit(pg, req->r.sent[k], req->hdr.inode, req->hdr.objno)) {
		return false;
	}
	for (j = 0; j < req->r.nsubs; j++) {
		if (j != k && req->r.sent[j] && !req->r.behind[j] &&
		    pg_member_up(pg, req->r.sent[j])) {
			copies++;
		}
	}
	return copies >= pg->min_replicas;
}

static void repl_sub_done(struct srv_peer_req *pr, int res, const struct kp_hdr *h,
			  const uint8_t *meta)
{
	struct srv_req *req = pr->arg;
	unsigned int k = (unsigned int)(pr - req->r.subs);

	if (repl_stale_cb(req, "replica reply", repl_in_flight(req) && k < req->r.nsubs)) {
		return;
	}
	if (req->r.state == SRV_RS_FINISHING) {
		return;
	}
	if (!res) {
		req->r.done[k] = true;
		repl_check(req);
		return;
	}
	if (res == -ENOENT && repl_can_leave_behind(req, k)) {
		/* A recovering member whose copy recovery has not reached:
		 * recovery copies the object (this write included) before the
		 * member counts as in sync; the write does not wait for it. */
		log_debug("member %u lacks version %llx of %llu:%llu: left to recovery",
			  req->r.sent[k], (unsigned long long)req->r.prev_version,
			  (unsigned long long)req->hdr.inode, (unsigned long long)req->hdr.objno);
		req->r.behind[k] = true;
		repl_check(req);
		return;
	}
	if (res == -ENOENT) {
		log_debug("member %u lacks version %llx of %llu:%llu: pushing the object",
			  req->r.sent[k], (unsigned long long)req->r.prev_version,
			  (unsigned long long)req->hdr.inode, (unsigned long long)req->hdr.objno);
		req->r.need_push[k] = true;
		repl_start_push(req);
		return;
	}
	if (res == -ENOSPC) {
		/*
		 * The member has no room for the object. Retrying here would
		 * hold the object (and every later op on it) until space
		 * returns; the client decides instead (full_policy: it retries
		 * or fails). The write is not acknowledged, so copies that
		 * applied it may differ from this member's: the next write's
		 * previous-version check finds that and pushes the object.
		 */
		if (req_cl(req)->member_nospc++ % 1000 == 0) {
			log_warn("member %u: no space for %llu:%llu: write failed with ENOSPC "
				 "(%llu so far)",
				 req->r.sent[k], (unsigned long long)req->hdr.inode,
				 (unsigned long long)req->hdr.objno,
				 (unsigned long long)req_cl(req)->member_nospc);
		}
		repl_finish(req, -ENOSPC);
		return;
	}
	/* Fenced (our map is old), or the member failed: keep the write
	 * waiting, re-sent now and then, until a map decides. */
	log_debug("member %u: %s of %llu:%llu: %s, retrying", req->r.sent[k],
		  kp_opcode_name(pr->msg.hdr.opcode), (unsigned long long)req->hdr.inode,
		  (unsigned long long)req->hdr.objno, strerror(-res));
	if (pg_member_up(req->r.pg, req->r.sent[k])) {
		/* rebuilt with our current epoch: a member whose PG interval
		 * moved past the epoch it was first sent with (ESTALE) would
		 * refuse the same frame forever */
		pr->retry_ns = reactor_now_ns() + SRV_REPL_RETRY_NS;
		repl_sub_send(req, k);
	}
}

static void repl_check(struct srv_req *req)
{
	struct srv_pg *pg = req->r.pg;

	if (req->r.state != SRV_RS_RUNNING) {
		return;
	}
	if (pg->role != SRV_PG_PRIMARY) {
		repl_finish(req, -ESTALE);
		return;
	}
	if (!req->r.local_done) {
		return;
	}
	repl_start_push(req);
	if (req->r.state != SRV_RS_RUNNING) {
		return;
	}
	if (pg_write_complete(pg, req->r.sent, req->r.done, req->r.behind, req->r.nsubs, true)) {
		repl_finish(req, 0);
	}
}

/* Start a mutation that holds its object and may write (pg_writable). */
static void repl_mutation_start(struct srv_req *req)
{
	struct srv_cluster *cl = req_cl(req);
	struct srv_pg *pg = req->r.pg;
	struct bs_obj_stat st;
	enum bs_op op;
	uint32_t i;
	int ret;

	req->r.prev_version =
		bs_stat_object(cl->srv->bs, req->hdr.inode, req->hdr.objno, &st) ? 0 : st.version;
	req->r.version = pg_next_version(pg->last_ver, pg->interval, req->r.prev_version);
	req->r.interval = pg->interval;
	pg->last_ver = req->r.version;
	req->r.pg_gen = pg->gen;
	pg->inflight_cur++;
	repl_layers_get(cl, req);
	req->r.pprev = NULL;
	req->r.pnext = pg->active;
	if (pg->active) {
		pg->active->r.pprev = req;
	}
	pg->active = req;
	req->r.state = SRV_RS_RUNNING;
	req->r.local_done = false;
	req->r.nsubs = 0;
	for (i = 0; i < pg->nmembers; i++) {
		if ((int)i == pg->self || !(pg->up & (1u << i))) {
			continue;
		}
		req->r.sent[req->r.nsubs] = pg->members[i];
		req->r.done[req->r.nsubs] = false;
		req->r.need_push[req->r.nsubs] = false;
		req->r.behind[req->r.nsubs] = false;
		memset(&req->r.subs[req->r.nsubs], 0, sizeof(req->r.subs[0]));
		req->r.nsubs++;
	}
	op = req->hdr.opcode == KP_OP_WRITE ? BS_OP_WRITE : BS_OP_DISCARD;
	memset(&req->bs, 0, sizeof(req->bs));
	req->bs.op = op;
	req->bs.inode = req->hdr.inode;
	req->bs.objno = req->hdr.objno;
	req->bs.offset = req->hdr.offset;
	req->bs.length = req->hdr.length;
	req->bs.buf = op == BS_OP_WRITE ? req->buf : NULL;
	req->bs.crcs = op == BS_OP_WRITE ? req->crcs : NULL;
	req->bs.version = req->r.version;
	req->bs.cb = repl_local_done;
	req->bs.arg = req;
	ret = bs_submit(cl->srv->bs, &req->bs);
	if (ret) {
		req->r.local_done = true;
		req->r.local_res = ret;
		req->r.nsubs = 0;
		repl_finish(req, ret);
		return;
	}
	for (i = 0; i < req->r.nsubs; i++) {
		repl_sub_send(req, i);
	}
}

static void repl_pg_enqueue(struct srv_req *req);

/* ---- primary: merge copy-ups (struct srv_copyup) ---- */

static void copyup_end(struct srv_req *req, int res)
{
	req->r.state = SRV_RS_FINISHING;
	req->r.final_res = res;
	repl_complete(req);
}

static bool copyup_bit(const uint64_t *bm, uint32_t i)
{
	return bm[i / 64] >> (i % 64) & 1;
}

/* The target's extent bitmap is in cu->cpresent, read under the object's
 * exclusive hold: write the first run of blocks it lacks, nothing else
 * (a block the target holds, written by a client before or during the
 * merge, is never overwritten). */
static void copyup_read_done(struct bs_req *b, int res)
{
	struct srv_req *req = b->arg;
	struct srv_cluster *cl = req_cl(req);
	struct srv_copyup *cu = req->r.cu;
	uint32_t nblk = req->hdr.length / BS_BLOCK, i = 0, j;

	if (repl_stale_cb(req, "copy-up read",
			  !req->r.local_done && req->r.state == SRV_RS_RUNNING)) {
		return;
	}
	req->r.local_done = true;
	if (!res && (req->r.pg->role != SRV_PG_PRIMARY || cl->stopping)) {
		res = cl->stopping ? -EAGAIN : -ESTALE;
	}
	if (!res) {
		res = repl_layer_check(cl, req); /* the map may have moved on meanwhile */
	}
	if (res) {
		copyup_end(req, res);
		return;
	}
	while (i < nblk && copyup_bit(cu->cpresent, i)) {
		i++;
	}
	if (i == nblk) {
		cu->consumed = nblk;
		copyup_end(req, 0);
		return;
	}
	j = i;
	while (j < nblk && !copyup_bit(cu->cpresent, j)) {
		j++;
	}
	if (i) {
		memmove(req->buf, (uint8_t *)req->buf + (size_t)i * BS_BLOCK,
			(size_t)(j - i) * BS_BLOCK);
		memmove(req->crcs, req->crcs + i, (j - i) * sizeof(*req->crcs));
	}
	req->hdr.offset += i * BS_BLOCK;
	req->hdr.length = (j - i) * BS_BLOCK;
	cu->consumed = j;
	cu->wrote = true;
	if (!pg_writable(req->r.pg)) {
		repl_pg_enqueue(req);
		return;
	}
	repl_mutation_start(req);
}

/* Read the request's extent of its object here into @buf / @crcs (and the
 * extent bitmap into @present, if any); @cb completes. 0 or the submit's
 * -errno (nothing in flight then). */
static int repl_local_read(struct srv_req *req, void *buf, uint32_t *crcs, uint64_t *present,
			   bs_req_cb cb)
{
	int ret;

	req->r.state = SRV_RS_RUNNING;
	memset(&req->bs, 0, sizeof(req->bs));
	req->bs.op = BS_OP_READ;
	req->bs.inode = req->hdr.inode;
	req->bs.objno = req->hdr.objno;
	req->bs.offset = req->hdr.offset;
	req->bs.length = req->hdr.length;
	req->bs.buf = buf;
	req->bs.crcs = crcs;
	req->bs.present = present;
	req->bs.cb = cb;
	req->bs.arg = req;
	req->r.local_done = false;
	ret = bs_submit(req_cl(req)->srv->bs, &req->bs);
	if (ret) {
		req->r.local_done = true;
	}
	return ret;
}

static void copyup_start(struct srv_req *req)
{
	struct srv_copyup *cu = req->r.cu;
	int ret;

	ret = repl_local_read(req, cu->cbuf, cu->ccrcs, cu->cpresent, copyup_read_done);
	if (ret) {
		copyup_end(req, ret);
	}
}

static void repl_pg_enqueue(struct srv_req *req)
{
	struct srv_pg *pg = req->r.pg;

	req->r.state = SRV_RS_PG_WAIT;
	req->r.wnext = NULL;
	if (pg->wait_tail) {
		pg->wait_tail->r.wnext = req;
	} else {
		pg->wait_head = req;
	}
	pg->wait_tail = req;
}

/*
 * Write coalescing (docs/cluster.md). A client write holds its object
 * until every member has it, so writes to one object go one at a time:
 * without this, a sequential stream at queue depth N would wait N round
 * trips to the replicas. When a WRITE gets its object, the client WRITEs
 * queued right behind it that continue its extent join it: they share its
 * version, its journal record on each member and its replica messages,
 * and each gets its own reply with the shared result. Only a run of
 * adjacent writes at the head of the queue joins (nothing overtakes a
 * waiter), from the same attachment generation (the fence check is the
 * same), up to SRV_SMALL_BUF: the leader's pool buffer, and the buffer
 * each replica takes for it.
 */
static void repl_granted(struct srv_obj_waiter *w);

static struct srv_req *repl_follower(const struct srv_req *lead, const struct srv_obj_waiter *w,
				     uint32_t end)
{
	struct srv_req *f;

	if (!w || w->grant != repl_granted || !w->writer) {
		return NULL;
	}
	f = container_of(w, struct srv_req, r.ow);
	if (f->hdr.opcode != KP_OP_WRITE || f->conn->internal_done ||
	    f->r.state != SRV_RS_OBJ_WAIT || f->hdr.pgid != lead->hdr.pgid ||
	    f->hdr.gen != lead->hdr.gen || f->hdr.flags != lead->hdr.flags ||
	    f->hdr.offset != end || f->hdr.length > SRV_SMALL_BUF - (end - lead->hdr.offset)) {
		return NULL;
	}
	return f;
}

static void repl_coalesce(struct srv_req *req)
{
	struct srv *s = req->conn->srv;
	struct srv_obj *o = req->r.obj;
	struct srv_req *f, **tail = &req->r.merged;
	uint32_t len = req->hdr.length;

	if (req->hdr.opcode != KP_OP_WRITE || req->conn->internal_done || req->pool != s->small) {
		return;
	}
	while ((f = repl_follower(req, o->wait_head, req->hdr.offset + len))) {
		obj_pop_waiter(o);
		memcpy((uint8_t *)req->buf + len, f->buf, f->hdr.length);
		memcpy(req->crcs + len / BS_BLOCK, f->crcs,
		       (f->hdr.length / BS_BLOCK) * sizeof(uint32_t));
		len += f->hdr.length;
		bufpool_put(f->pool, f->buf);
		f->buf = NULL;
		f->pool = NULL;
		f->r.state = SRV_RS_MERGED;
		f->r.obj = NULL;
		f->r.mnext = NULL;
		*tail = f;
		tail = &f->r.mnext;
		s->ctr.writes_coalesced++;
	}
	if (req->r.merged) {
		req->r.own_length = req->hdr.length;
		req->hdr.length = len;
	}
}

/* The object is ours: run the op. */
static void repl_run(struct srv_req *req)
{
	struct srv_cluster *cl = req_cl(req);
	struct srv_pg *pg = req->r.pg;
	int ret;

	req->r.locked = true;
	if (pg->role != SRV_PG_PRIMARY || cl->stopping) {
		req->r.state = SRV_RS_FINISHING;
		req->r.final_res = cl->stopping ? -EAGAIN : -ESTALE;
		repl_complete(req);
		return;
	}
	/* Under the object's hold, with the map as it is now: a mutation
	 * that waited for its object behind others must not start on a layer
	 * frozen meanwhile, nor a read see a layer GC has started to free. */
	ret = repl_layer_check(cl, req);
	if (!ret && req_is_mutation(req)) {
		ret = repl_fence_check(cl, req);
	}
	if (!ret && req_is_mutation(req)) {
		ret = repl_full_check(cl, req);
	}
	if (ret) {
		req->r.state = SRV_RS_FINISHING;
		req->r.final_res = ret;
		repl_complete(req);
		return;
	}
	if (req->r.cu) {
		copyup_start(req);
		return;
	}
	if (!req_is_mutation(req)) {
		ret = repl_local_read(req, req->buf, req->crcs,
				      req->r.chain ? req->x.chain.present : NULL, repl_local_done);
		if (ret) {
			req->r.state = SRV_RS_FINISHING;
			req->r.final_res = ret;
			repl_complete(req);
		}
		return;
	}
	repl_coalesce(req);
	if (!pg_writable(pg)) {
		log_debug("pg %u.%u: %u up members < min_replicas %u: write queued", pg->pool,
			  pg->pg, __builtin_popcount(pg->up), pg->min_replicas);
		repl_pg_enqueue(req);
		return;
	}
	repl_mutation_start(req);
}

static void repl_granted(struct srv_obj_waiter *w)
{
	struct srv_req *req = container_of(w, struct srv_req, r.ow);

	if (repl_stale_cb(req, "object grant",
			  req->r.state == SRV_RS_OBJ_WAIT && req->r.obj == w->obj)) {
		/* nobody will release what was just granted */
		srv_obj_unlock(req_cl(req), w->obj, w->writer);
		return;
	}
	repl_run(req);
}

void srv_repl_client(struct srv_req *req)
{
	struct srv_cluster *cl = req_cl(req);
	struct srv_obj *o;

	req->state = SRV_REQ_CLUSTER;
	req->r.state = SRV_RS_OBJ_WAIT;
	req->r.version = 0;
	req->r.nsubs = 0;
	req->r.rop = NULL;
	req->r.locked = false;
	req->r.final_res = 0;
	req->r.local_done = true;
	req->r.merged = NULL;
	if (req_is_mutation(req)) {
		req->r.chain = false; /* srv_op_read() sets it for reads */
	}
	if (!req->conn->internal_done) {
		req->r.cu = NULL; /* only srv_merge.c's requests copy up */
	}
	cl->client_inflight++;
	o = srv_obj_get(cl, req->hdr.inode, req->hdr.objno);
	if (!o) {
		req->r.state = SRV_RS_FINISHING;
		req->r.final_res = -EBUSY;
		repl_complete(req);
		return;
	}
	req->r.obj = o;
	req->r.ow.writer = req_is_mutation(req);
	req->r.ow.grant = repl_granted;
	if (srv_obj_lock(cl, o, &req->r.ow)) {
		repl_run(req);
	}
}

void srv_repl_describe(const struct srv_req *req, char *buf, size_t len)
{
	const struct srv_pg *pg = req->r.pg;
	size_t n = 0;
	unsigned int k;

	if (req->hdr.opcode >= KP_OP_REPLICA_WRITE) {
		snprintf(buf, len, "replica op in the blockstore");
		return;
	}
	switch (req->r.state) {
	case SRV_RS_OBJ_WAIT:
		snprintf(buf, len, "waiting for its object (an earlier op or a push holds it)");
		return;
	case SRV_RS_MERGED:
		snprintf(buf, len, "coalesced into an earlier write of its object");
		return;
	case SRV_RS_PG_WAIT:
		snprintf(buf, len, "queued: pg %u.%u has %u up members, min_replicas %u",
			 pg ? pg->pool : 0, pg ? pg->pg : 0, pg ? __builtin_popcount(pg->up) : 0,
			 pg ? pg->min_replicas : 0);
		return;
	case SRV_RS_PUSHING:
		snprintf(buf, len, "pushing the object to member %u",
			 req->r.rop ? req->r.rop->member : 0);
		return;
	case SRV_RS_FINISHING:
		snprintf(buf, len, "finishing (result %d, local %s, sends in flight)",
			 req->r.final_res, req->r.local_done ? "done" : "pending");
		return;
	case SRV_RS_RUNNING:
		n = (size_t)snprintf(buf, len, "local %s, waiting for members:",
				     req->r.local_done ? "done" : "pending");
		for (k = 0; k < req->r.nsubs && n < len; k++) {
			if (req->r.sent[k] && !req->r.done[k] && !req->r.behind[k]) {
				n += (size_t)snprintf(buf + n, len - n, " %u", req->r.sent[k]);
			}
		}
		return;
	default:
		snprintf(buf, len, "state %d", req->r.state);
		return;
	}
}

/*
 * A member was left behind (its copy left to recovery) while the others
 * could make min_replicas without it. A send in flight to it decides by its
 * reply (repl_sub_done()). If the map has since taken enough of the others
 * away, the write can only complete with that member's copy, and recovery
 * will not make one while the write holds the object: push the object to it
 * instead (repl_check() starts the push). Returns whether it did.
 */
static bool repl_recheck_behind(struct srv_req *req)
{
	bool pushed = false;
	unsigned int k;

	for (k = 0; k < req->r.nsubs; k++) {
		if (req->r.sent[k] && req->r.behind[k] && !req->r.done[k] &&
		    !req->r.subs[k].sending && pg_member_up(req->r.pg, req->r.sent[k]) &&
		    !repl_can_leave_behind(req, k)) {
			req->r.behind[k] = false;
			req->r.need_push[k] = true;
			pushed = true;
		}
	}
	return pushed;
}

/* Members up in the new map that this mutation was not sent to (back from
 * a failure, or new): send it to them too, the write completes with them. */
static void repl_add_members(struct srv_req *req)
{
	struct srv_pg *pg = req->r.pg;
	uint32_t i;
	unsigned int k;

	if (req->r.state != SRV_RS_RUNNING && req->r.state != SRV_RS_PUSHING) {
		return;
	}
	for (i = 0; i < pg->nmembers; i++) {
		uint32_t id = pg->members[i];
		unsigned int slot = CMAP_MAX_REPLICAS;

		if ((int)i == pg->self || !(pg->up & (1u << i))) {
			continue;
		}
		for (k = 0; k < req->r.nsubs; k++) {
			if (req->r.sent[k] == id) {
				break;
			}
			if (!req->r.sent[k] && !req->r.subs[k].sending &&
			    slot == CMAP_MAX_REPLICAS) {
				slot = k;
			}
		}
		if (k < req->r.nsubs) {
			continue;
		}
		if (slot == CMAP_MAX_REPLICAS) {
			if (req->r.nsubs == CMAP_MAX_REPLICAS) {
				continue;
			}
			slot = req->r.nsubs++;
		}
		memset(&req->r.subs[slot], 0, sizeof(req->r.subs[slot]));
		req->r.sent[slot] = id;
		req->r.done[slot] = false;
		req->r.need_push[slot] = false;
		req->r.behind[slot] = false;
		repl_sub_send(req, slot);
	}
}

/* A new map changed @pg (or took it from us: @gone / not primary). */
void srv_repl_pg_changed(struct srv_cluster *cl, struct srv_pg *pg, bool gone)
{
	struct srv_req *req, *next;
	unsigned int npush = 0;

	if (gone || pg->role != SRV_PG_PRIMARY) {
		/* queued mutations: ESTALE, the client retries at the new primary */
		while ((req = pg->wait_head)) {
			pg->wait_head = req->r.wnext;
			if (!pg->wait_head) {
				pg->wait_tail = NULL;
			}
			req->r.state = SRV_RS_FINISHING;
			req->r.final_res = -ESTALE;
			repl_complete(req);
		}
		for (req = pg->active; req; req = next) {
			next = req->r.pnext;
			repl_finish(req, -ESTALE);
		}
		return;
	}
	for (req = pg->active; req; req = next) {
		unsigned int k;

		next = req->r.pnext;
		for (k = 0; k < req->r.nsubs; k++) {
			if (req->r.sent[k] && !req->r.done[k] &&
			    !pg_member_up(pg, req->r.sent[k])) {
				/* the map removed it: out of this write for good,
				 * even if it comes back (then recovery, which waits
				 * for this write, brings it up to date) */
				srv_peer_cancel(&req->r.subs[k]);
				req->r.sent[k] = 0;
				req->r.need_push[k] = false;
			} else if (req->r.behind[k] && pg_member_in_sync(pg, req->r.sent[k]) &&
				   !req->r.subs[k].sending) {
				/* in sync by now: it must have this write after all */
				req->r.behind[k] = false;
				req->r.subs[k].retry_ns = 0;
				repl_sub_send(req, k);
			}
		}
		npush += repl_recheck_behind(req);
		repl_add_members(req);
		repl_check(req);
	}
	if (npush) {
		log_info("pg %u.%u: %u writes in flight now need the copy of a member they left "
			 "to recovery (too few other members): pushing their objects",
			 pg->pool, pg->pg, npush);
	}
	if (pg_writable(pg)) {
		struct srv_req *q = pg->wait_head;

		pg->wait_head = pg->wait_tail = NULL;
		for (req = q; req; req = next) {
			int ret = repl_layer_check(cl, req);

			next = req->r.wnext;
			if (ret) {
				/* frozen while it waited for min_replicas */
				req->r.state = SRV_RS_FINISHING;
				req->r.final_res = ret;
				repl_complete(req);
				continue;
			}
			repl_mutation_start(req);
		}
	}
}

/* ---- replica side ---- */

static bool list_match_pg(uint64_t inode, uint64_t objno, void *arg)
{
	const struct srv_pg *pg = arg;

	return cmap_object_pg(inode, objno, pg->pg_count) == pg->pg;
}

static int replica_list(struct srv_req *req, struct srv_pg *pg, const uint8_t *meta)
{
	Keel__ListRequest *lr;
	uint64_t ci, co;
	unsigned int max;
	bool ok;

	lr = keel__list_request__unpack(NULL, req->hdr.meta_len, meta ? meta : (const uint8_t *)"");
	if (!lr) {
		return -EINVAL;
	}
	ok = lr->by_pg && KP_PGID(lr->pool, lr->pg) == req->hdr.pgid;
	ci = lr->cursor_inode;
	co = lr->cursor_objno;
	max = lr->max;
	keel__list_request__free_unpacked(lr, NULL);
	if (!ok) {
		return -EINVAL;
	}
	return srv_req_reply_object_page(req, list_match_pg, pg, ci, co, max);
}

static void replica_bvers_done(struct bs_bvers_req *bv, int res)
{
	struct srv_req *req = bv->arg;
	Keel__BlockVersions m = KEEL__BLOCK_VERSIONS__INIT;
	uint32_t bpo = bs_object_size(req->conn->srv->bs) / BS_BLOCK;
	size_t len;

	if (res) {
		srv_req_finish(req, res);
		return;
	}
	m.object_version = bv->obj_version;
	m.n_versions = bpo;
	m.versions = bv->versions;
	len = keel__block_versions__get_packed_size(&m);
	if (len > KP_MAX_META || len > SRV_LARGE_BUF / 2) {
		srv_req_finish(req, -EINVAL);
		return;
	}
	/* versions live in the first half of the buffer, the reply in the second */
	keel__block_versions__pack(&m, (uint8_t *)req->buf + SRV_LARGE_BUF / 2);
	req->reply.meta = (uint8_t *)req->buf + SRV_LARGE_BUF / 2;
	req->reply.hdr.meta_len = (uint32_t)len;
	req->reply.hdr.obj_ver = bv->obj_version;
	srv_req_finish(req, 0);
}

static int replica_bvers(struct srv_req *req)
{
	struct srv *s = req->conn->srv;
	uint32_t bpo = bs_object_size(s->bs) / BS_BLOCK;
	struct bs_bvers_req *bv = &req->x.bvers;
	int ret;

	if (bpo > BS_BVERS_MAX_BLOCKS) {
		return -EINVAL;
	}
	ret = srv_req_get_buf(req, SRV_LARGE_BUF);
	if (ret) {
		return ret;
	}
	memset(bv, 0, sizeof(*bv));
	bv->inode = req->hdr.inode;
	bv->objno = req->hdr.objno;
	bv->versions = req->buf;
	bv->buf = (uint8_t *)req->buf + BS_BVERS_MAX_BLOCKS * sizeof(uint64_t);
	bv->cb = replica_bvers_done;
	bv->arg = req;
	return bs_block_versions(s->bs, bv);
}

static void replica_push_done(struct bs_push_req *p, int res)
{
	struct srv_req *req = p->arg;

	srv_req_finish(req, res);
}

static int replica_push(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
			const uint32_t *crcs)
{
	struct srv *s = req->conn->srv;
	uint32_t nblk = req->hdr.length / BS_BLOCK;
	struct bs_push_req *p = &req->x.push;
	Keel__PushRequest *pm;
	uint64_t objver;
	int ret;

	pm = keel__push_request__unpack(NULL, req->hdr.meta_len, meta ? meta : (const uint8_t *)"");
	if (!pm) {
		return -EINVAL;
	}
	if (pm->n_versions != nblk || nblk > BS_MAX_IO / BS_BLOCK) {
		keel__push_request__free_unpacked(pm, NULL);
		return -EINVAL;
	}
	if (nblk) { /* versions is NULL without any */
		memcpy(req->vers, pm->versions, nblk * sizeof(uint64_t));
	}
	objver = pm->object_version;
	keel__push_request__free_unpacked(pm, NULL);
	ret = srv_req_get_buf(req, req->hdr.length);
	if (ret) {
		return ret;
	}
	memcpy(req->buf, data, req->hdr.length);
	memcpy(req->crcs, crcs, nblk * sizeof(uint32_t));
	memset(p, 0, sizeof(*p));
	p->inode = req->hdr.inode;
	p->objno = req->hdr.objno;
	p->offset = req->hdr.offset;
	p->length = req->hdr.length;
	p->buf = req->buf;
	p->crcs = req->crcs;
	p->versions = req->vers;
	p->obj_version = objver;
	p->cb = replica_push_done;
	p->arg = req;
	return bs_push(s->bs, p);
}

static int replica_delete(struct srv_req *req)
{
	struct srv *s = req->conn->srv;
	struct bs_push_req *p = &req->x.push;
	uint32_t osize = bs_object_size(s->bs);
	struct bs_obj_stat st;
	int ret;

	if (bs_stat_object(s->bs, req->hdr.inode, req->hdr.objno, &st)) {
		srv_req_finish(req, 0); /* already absent */
		return 0;
	}
	if ((osize / BS_BLOCK) * sizeof(uint64_t) > SRV_LARGE_BUF) {
		return -EINVAL;
	}
	ret = srv_req_get_buf(req, SRV_LARGE_BUF);
	if (ret) {
		return ret;
	}
	memset(req->buf, 0, (osize / BS_BLOCK) * sizeof(uint64_t));
	memset(p, 0, sizeof(*p));
	p->inode = req->hdr.inode;
	p->objno = req->hdr.objno;
	p->offset = 0;
	p->length = osize;
	p->versions = req->buf;
	p->cb = replica_push_done;
	p->arg = req;
	return bs_push(s->bs, p);
}

static void replica_mut_done(struct bs_req *b, int res)
{
	struct srv_req *req = b->arg;
	struct bs_obj_stat st;
	uint64_t cur;

	req->state = SRV_REQ_CLUSTER;
	cur = bs_stat_object(req->conn->srv->bs, req->hdr.inode, req->hdr.objno, &st) ? 0
										      : st.version;
	if (res == -ESTALE && cur == req->hdr.obj_ver) {
		res = 0; /* a re-sent copy of a write we applied meanwhile */
	}
	req->reply.hdr.obj_ver = res ? cur : req->hdr.obj_ver;
	srv_req_finish(req, res);
}

static int replica_mutation(struct srv_req *req, const uint8_t *data, const uint32_t *crcs)
{
	struct srv *s = req->conn->srv;
	struct bs_obj_stat st;
	uint64_t cur;
	int ret;

	if (!req->hdr.obj_ver || req->hdr.obj_ver >= BS_VER_TEMP_BASE) {
		return -EINVAL;
	}
	cur = bs_stat_object(s->bs, req->hdr.inode, req->hdr.objno, &st) ? 0 : st.version;
	if (cur == req->hdr.obj_ver) {
		req->reply.hdr.obj_ver = cur;
		srv_req_finish(req, 0); /* duplicate: already applied */
		return 0;
	}
	if (cur != req->hdr.gen) {
		/* our copy is not the primary's previous state: it pushes */
		req->reply.hdr.obj_ver = cur;
		srv_req_finish(req, -ENOENT);
		return 0;
	}
	if (req->hdr.opcode == KP_OP_REPLICA_WRITE) {
		ret = srv_req_get_buf(req, req->hdr.length);
		if (ret) {
			return ret;
		}
		memcpy(req->buf, data, req->hdr.length);
		memcpy(req->crcs, crcs, (req->hdr.length / BS_BLOCK) * sizeof(uint32_t));
	}
	memset(&req->bs, 0, sizeof(req->bs));
	req->bs.op = req->hdr.opcode == KP_OP_REPLICA_WRITE ? BS_OP_WRITE : BS_OP_DISCARD;
	req->bs.inode = req->hdr.inode;
	req->bs.objno = req->hdr.objno;
	req->bs.offset = req->hdr.offset;
	req->bs.length = req->hdr.length;
	req->bs.buf = req->bs.op == BS_OP_WRITE ? req->buf : NULL;
	req->bs.crcs = req->bs.op == BS_OP_WRITE ? req->crcs : NULL;
	req->bs.version = req->hdr.obj_ver;
	req->bs.cb = replica_mut_done;
	req->bs.arg = req;
	return bs_submit(s->bs, &req->bs);
}

void srv_repl_replica(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		      const uint32_t *crcs)
{
	struct srv_cluster *cl = req->conn->srv->cl;
	const struct kp_hdr *h = &req->hdr;
	struct srv_pg *pg = srv_cluster_pg(cl, h->pgid);
	int ret;

	req->state = SRV_REQ_CLUSTER;
	ret = pg_check_replica(pg && pg->role != SRV_PG_NONE ? pg : NULL, cl->epoch, h->epoch,
			       SRV_REQID_SENDER(h->req_id));
	if (ret) {
		log_debug("%s: %s pg %u.%u epoch %llu (ours %llu, interval %llu): %s",
			  req->conn->peer, kp_opcode_name(h->opcode), KP_PGID_POOL(h->pgid),
			  KP_PGID_PG(h->pgid), (unsigned long long)h->epoch,
			  (unsigned long long)cl->epoch,
			  (unsigned long long)(pg ? pg->interval : 0), strerror(-ret));
		srv_req_finish(req, ret);
		return;
	}
	if (h->opcode != KP_OP_REPLICA_LIST &&
	    (!h->inode || cmap_object_pg(h->inode, h->objno, pg->pg_count) != pg->pg)) {
		srv_req_finish(req, -EINVAL);
		return;
	}
	switch (h->opcode) {
	case KP_OP_REPLICA_WRITE:
	case KP_OP_REPLICA_DISCARD:
		ret = replica_mutation(req, data, crcs);
		break;
	case KP_OP_REPLICA_LIST:
		ret = replica_list(req, pg, meta);
		break;
	case KP_OP_REPLICA_BVERS:
		ret = replica_bvers(req);
		break;
	case KP_OP_REPLICA_PUSH:
		ret = replica_push(req, meta, data, crcs);
		break;
	case KP_OP_REPLICA_DELETE:
		ret = replica_delete(req);
		break;
	default:
		ret = -EPROTO;
		break;
	}
	if (ret) {
		srv_req_finish(req, ret);
	}
}
