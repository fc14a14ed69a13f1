/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_recovery: object pushes and PG recovery (docs/cluster.md
 * "Recovery").
 *
 * An object push (srv_rop) brings one member's copy of one object to the
 * primary's exact state: take the object (client mutations wait), compare
 * per-block versions (ours from the blockstore, the member's by
 * REPLICA_BVERS), and send REPLICA_PUSH for each run of differing blocks
 * (data, crcs, exact versions; unmapped blocks unmap), or REPLICA_DELETE
 * when we do not have the object. Writes use the same push when a member
 * lacks an object's previous version (srv_repl.c).
 *
 * PG recovery, per PG we are primary of, one not-in-sync up member at a
 * time: wait until mutations started under an earlier map are done (they
 * were not sent to the member), then page through REPLICA_LIST (by PG) and
 * our own listing, push every object whose version differs, and report the
 * member synced to mgmt (MG_PG_REPORT) once the last page is done. Writes
 * that arrive meanwhile go to the member too; one that hits an object the
 * member does not have in the previous state triggers a push itself.
 *
 * Throttle: at most recovery_max_active recovery pushes in flight per
 * server, and none starts while recovery_client_ops or more client
 * requests are in flight (client I/O first; the 20 ms tick retries).
 */
#include "server/srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

#define SRV_REC_PAGE 512u

enum srv_rec_state {
	SRV_REC_DRAIN = 0, /* waiting for mutations of earlier maps */
	SRV_REC_LIST,	   /* REPLICA_LIST in flight */
	SRV_REC_OBJS,	   /* pushing the page's differing objects */
	SRV_REC_ABORT,	   /* map changed: waiting for in-flight work to end */
};

struct srv_rec {
	struct srv_cluster *cl;
	struct srv_pg *pg;
	enum srv_rec_state state;
	uint32_t gen;
	uint32_t member;
	uint64_t cur_inode, cur_objno;
	bool first, last_page;
	bool list_inflight;
	bool dead; /* freed once its send completes */
	struct srv_rop *rop;
	/* how far the pass has listed: objects up to here are compared */
	bool listed_any, listed_all;
	uint64_t listed_inode, listed_objno;
	struct pg_obj_ent remote[SRV_REC_PAGE], local[SRV_REC_PAGE];
	struct pg_obj_todo todo[2 * SRV_REC_PAGE];
	unsigned int ntodo, next;
	uint64_t objects_copied, bytes_copied;
	uint64_t started_ns;
	struct srv_peer_req pr;
	uint8_t meta[256];
};

/* ---- object push ---- */

static uint32_t rop_bpo(const struct srv_rop *rop)
{
	return bs_object_size(rop->cl->srv->bs) / BS_BLOCK;
}

static bool rop_stale(const struct srv_rop *rop)
{
	return rop->pg->role != SRV_PG_PRIMARY || !pg_member_up(rop->pg, rop->member);
}

static void rop_put(struct srv_rop *rop)
{
	struct srv_cluster *cl = rop->cl;

	rop->state = SRV_ROP_FREE;
	rop->next_free = cl->rop_free;
	cl->rop_free = rop;
}

static void rop_finish(struct srv_rop *rop, int res)
{
	struct srv_cluster *cl = rop->cl;
	void (*done)(struct srv_rop *, int) = rop->done;

	if (rop->pr.sending) {
		/* the payload is still on its way out: finish from idle */
		rop->res = res;
		rop->state = SRV_ROP_DONE;
		return;
	}
	if (!rop->locked_by_owner && rop->obj) {
		srv_obj_unlock(cl, rop->obj, true);
	}
	rop->obj = NULL;
	if (!res && rop->bytes) {
		cl->rec_bytes_copied += rop->bytes;
		cl->rec_objects_copied++;
	}
	rop_put(rop);
	done(rop, res);
}

static void rop_pr_idle(struct srv_peer_req *pr)
{
	struct srv_rop *rop = container_of(pr, struct srv_rop, pr);

	if (rop->state == SRV_ROP_DONE) {
		rop_finish(rop, rop->res);
	}
}

static void rop_send(struct srv_rop *rop, uint16_t opcode)
{
	struct srv_peer_req *pr = &rop->pr;

	pr->state = SRV_PR_IDLE;
	memset(&pr->msg.hdr, 0, sizeof(pr->msg.hdr));
	pr->msg.hdr.opcode = opcode;
	pr->msg.hdr.epoch = rop->cl->epoch;
	pr->msg.hdr.pgid = KP_PGID(rop->pg->pool, rop->pg->pg);
	pr->msg.hdr.inode = rop->inode;
	pr->msg.hdr.objno = rop->objno;
	pr->msg.meta = NULL;
	pr->msg.data = NULL;
	pr->msg.crcs = NULL;
	pr->retry_ns = 0;
	pr->idle = rop_pr_idle;
	srv_peer_send(rop->cl, rop->member, pr);
}

static void rop_next_run(struct srv_rop *rop);

static void rop_push_reply(struct srv_peer_req *pr, int res, const struct kp_hdr *h,
			   const uint8_t *meta)
{
	struct srv_rop *rop = container_of(pr, struct srv_rop, pr);

	if (res) {
		rop_finish(rop, res);
		return;
	}
	rop->bytes += (uint64_t)rop->runs[rop->run].nblk * BS_BLOCK;
	rop->run++;
	rop_next_run(rop);
}

static void rop_send_push(struct srv_rop *rop)
{
	const struct pg_run *run = &rop->runs[rop->run];
	Keel__PushRequest m = KEEL__PUSH_REQUEST__INIT;
	struct srv_peer_req *pr = &rop->pr;
	size_t len;

	/* the object version goes with the last run only: until every run is
	 * on the member, its copy must not claim our version (bs_repl.c) */
	m.object_version = rop->run + 1 == rop->nruns ? rop->obj_version : 0;
	m.n_versions = run->nblk;
	m.versions = rop->pv + run->blk;
	len = keel__push_request__get_packed_size(&m);
	kassert(len <= sizeof(rop->meta));
	keel__push_request__pack(&m, rop->meta);
	rop->state = SRV_ROP_PUSH;
	pr->state = SRV_PR_IDLE;
	memset(&pr->msg.hdr, 0, sizeof(pr->msg.hdr));
	pr->msg.hdr.opcode = KP_OP_REPLICA_PUSH;
	pr->msg.hdr.epoch = rop->cl->epoch;
	pr->msg.hdr.pgid = KP_PGID(rop->pg->pool, rop->pg->pg);
	pr->msg.hdr.inode = rop->inode;
	pr->msg.hdr.objno = rop->objno;
	pr->msg.hdr.offset = run->blk * BS_BLOCK;
	pr->msg.hdr.length = run->nblk * BS_BLOCK;
	pr->msg.hdr.data_len = run->nblk * BS_BLOCK;
	pr->msg.hdr.meta_len = (uint32_t)len;
	pr->msg.hdr.obj_ver = m.object_version;
	pr->msg.meta = rop->meta;
	pr->msg.data = rop->iobuf;
	pr->msg.crcs = rop->crcs;
	pr->retry_ns = 0;
	pr->done = rop_push_reply;
	pr->idle = rop_pr_idle;
	pr->arg = rop;
	srv_peer_send(rop->cl, rop->member, pr);
}

/* A failed step, or a map that no longer makes us the PG's primary with
 * the member up, ends @rop (-ESTALE for the latter): true when it did. */
static bool rop_ended(struct srv_rop *rop, int res)
{
	if (!res && rop_stale(rop)) {
		res = -ESTALE;
	}
	if (res) {
		rop_finish(rop, res);
	}
	return res != 0;
}

static void rop_read_done(struct bs_req *b, int res)
{
	struct srv_rop *rop = b->arg;

	if (rop_ended(rop, res)) {
		return;
	}
	/* unmapped blocks read as zeroes with their crc; the member ignores
	 * their data (version 0 unmaps) */
	rop_send_push(rop);
}

static void rop_next_run(struct srv_rop *rop)
{
	const struct pg_run *run;
	int ret;

	if (rop->run >= rop->nruns) {
		rop_finish(rop, 0);
		return;
	}
	if (rop_ended(rop, 0)) {
		return;
	}
	run = &rop->runs[rop->run];
	rop->state = SRV_ROP_READ;
	memset(&rop->bsr, 0, sizeof(rop->bsr));
	rop->bsr.op = BS_OP_READ;
	rop->bsr.inode = rop->inode;
	rop->bsr.objno = rop->objno;
	rop->bsr.offset = run->blk * BS_BLOCK;
	rop->bsr.length = run->nblk * BS_BLOCK;
	rop->bsr.buf = rop->iobuf;
	rop->bsr.crcs = rop->crcs;
	rop->bsr.cb = rop_read_done;
	rop->bsr.arg = rop;
	ret = bs_submit(rop->cl->srv->bs, &rop->bsr);
	if (ret) {
		rop_finish(rop, ret);
	}
}

static void rop_bvers_reply(struct srv_peer_req *pr, int res, const struct kp_hdr *h,
			    const uint8_t *meta)
{
	struct srv_rop *rop = container_of(pr, struct srv_rop, pr);
	uint32_t bpo = rop_bpo(rop);
	Keel__BlockVersions *bv;
	uint64_t robj;

	if (res) {
		rop_finish(rop, res);
		return;
	}
	bv = keel__block_versions__unpack(NULL, h->meta_len, meta ? meta : (const uint8_t *)"");
	if (!bv || bv->n_versions != bpo) {
		log_warn("member %u: bad BlockVersions for %llu:%llu", rop->member,
			 (unsigned long long)rop->inode, (unsigned long long)rop->objno);
		if (bv) {
			keel__block_versions__free_unpacked(bv, NULL);
		}
		rop_finish(rop, -EPROTO);
		return;
	}
	memcpy(rop->rv, bv->versions, bpo * sizeof(uint64_t));
	robj = bv->object_version;
	keel__block_versions__free_unpacked(bv, NULL);
	rop->nruns = pg_diff_runs(rop->pv, rop->rv, bpo, BS_MAX_IO / BS_BLOCK, rop->runs, bpo);
	if (!rop->nruns && robj != rop->obj_version) {
		/* same blocks, other object version: re-push block 0 to set it */
		rop->runs[0].blk = 0;
		rop->runs[0].nblk = 1;
		rop->nruns = 1;
	}
	rop->run = 0;
	rop_next_run(rop);
}

static void rop_delete_reply(struct srv_peer_req *pr, int res, const struct kp_hdr *h,
			     const uint8_t *meta)
{
	struct srv_rop *rop = container_of(pr, struct srv_rop, pr);

	rop_finish(rop, res);
}

static void rop_local_bvers_done(struct bs_bvers_req *bv, int res)
{
	struct srv_rop *rop = bv->arg;

	if (rop_ended(rop, res)) {
		return;
	}
	rop->obj_version = bv->obj_version;
	rop->pr.done = bv->obj_version ? rop_bvers_reply : rop_delete_reply;
	rop->pr.arg = rop;
	rop->state = bv->obj_version ? SRV_ROP_REMOTE_BVERS : SRV_ROP_DELETE;
	rop_send(rop, bv->obj_version ? KP_OP_REPLICA_BVERS : KP_OP_REPLICA_DELETE);
}

static void rop_locked(struct srv_rop *rop)
{
	int ret;

	if (rop_ended(rop, 0)) {
		return;
	}
	if (cmap_layer_state(rop->cl->map, rop->inode) == CMAP_LAYER_DELETING) {
		/* deleting since it was listed: GC frees every copy, a push
		 * would undo it; the write that asked for it fails (EROFS) */
		rop_finish(rop, rop->locked_by_owner ? -EROFS : 0);
		return;
	}
	/* Always look at our copy now that the object is ours, even for a
	 * delete: the listing that asked for it may predate a write that was
	 * still on its way into our store (the member, listed first, already
	 * had it), and deleting then would drop that write from the member. */
	rop->state = SRV_ROP_LOCAL_BVERS;
	memset(&rop->bv, 0, sizeof(rop->bv));
	rop->bv.inode = rop->inode;
	rop->bv.objno = rop->objno;
	rop->bv.versions = rop->pv;
	rop->bv.buf = (uint8_t *)rop->iobuf;
	rop->bv.cb = rop_local_bvers_done;
	rop->bv.arg = rop;
	ret = bs_block_versions(rop->cl->srv->bs, &rop->bv);
	if (ret) {
		rop_finish(rop, ret);
	}
}

static void rop_granted(struct srv_obj_waiter *w)
{
	rop_locked(container_of(w, struct srv_rop, ow));
}

struct srv_rop *srv_rop_get(struct srv_cluster *cl, bool inline_push)
{
	struct srv_rop *rop = cl->rop_free;

	if (!rop) {
		return NULL;
	}
	/* keep recovery's share for recovery and the rest for writes */
	if (!inline_push && cl->rops_active >= cl->set.recovery_max_active) {
		return NULL;
	}
	cl->rop_free = rop->next_free;
	rop->state = SRV_ROP_LOCK;
	rop->obj = NULL;
	rop->locked_by_owner = false;
	rop->res = 0;
	rop->bytes = 0;
	rop->nruns = 0;
	rop->run = 0;
	memset(&rop->pr, 0, sizeof(rop->pr));
	return rop;
}

void srv_rop_start(struct srv_rop *rop)
{
	struct srv_cluster *cl = rop->cl;

	if (rop->locked_by_owner) {
		rop_locked(rop);
		return;
	}
	rop->obj = srv_obj_get(cl, rop->inode, rop->objno);
	if (!rop->obj) {
		rop_finish(rop, -EBUSY);
		return;
	}
	rop->ow.writer = true;
	rop->ow.grant = rop_granted;
	if (srv_obj_lock(cl, rop->obj, &rop->ow)) {
		rop_locked(rop);
	}
}

int srv_recovery_init(struct srv_cluster *cl)
{
	uint32_t n = cl->set.recovery_max_active + SRV_INLINE_ROPS, i;

	cl->rops = calloc(n, sizeof(*cl->rops));
	if (!cl->rops) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		struct srv_rop *rop = &cl->rops[i];

		rop->cl = cl;
		rop->pv = calloc(BS_BVERS_MAX_BLOCKS, sizeof(uint64_t));
		rop->rv = calloc(BS_BVERS_MAX_BLOCKS, sizeof(uint64_t));
		rop->runs = calloc(BS_BVERS_MAX_BLOCKS, sizeof(struct pg_run));
		rop->crcs = calloc(BS_MAX_IO / BS_BLOCK, sizeof(uint32_t));
		if (posix_memalign(&rop->iobuf, BS_BLOCK, BS_MAX_IO)) {
			rop->iobuf = NULL;
		}
		if (!rop->pv || !rop->rv || !rop->runs || !rop->crcs || !rop->iobuf) {
			return -ENOMEM; /* srv_recovery_fini() frees what was allocated */
		}
		rop->next_free = cl->rop_free;
		cl->rop_free = rop;
	}
	return 0;
}

void srv_recovery_fini(struct srv_cluster *cl)
{
	uint32_t n = cl->set.recovery_max_active + SRV_INLINE_ROPS, i;

	if (!cl->rops) {
		return;
	}
	for (i = 0; i < n; i++) {
		free(cl->rops[i].pv);
		free(cl->rops[i].rv);
		free(cl->rops[i].runs);
		free(cl->rops[i].crcs);
		free(cl->rops[i].iobuf);
	}
	free(cl->rops);
	cl->rops = NULL;
	free(cl->rec_list);
	cl->rec_list = NULL;
	cl->nrec = 0;
}

/* ---- PG recovery ---- */

static uint32_t rec_pick_member(const struct srv_pg *pg)
{
	uint32_t i;

	for (i = 0; i < pg->nmembers; i++) {
		if ((int)i != pg->self && (pg->up & (1u << i)) && !(pg->in_sync & (1u << i)) &&
		    pg->members[i] != pg->synced_member) {
			return pg->members[i];
		}
	}
	return 0;
}

static bool rec_valid(const struct srv_rec *rec)
{
	const struct srv_pg *pg = rec->pg;
	int i;

	if (pg->role != SRV_PG_PRIMARY || pg->gen != rec->gen) {
		return false;
	}
	for (i = 0; i < (int)pg->nmembers; i++) {
		if (pg->members[i] == rec->member) {
			return (pg->up & (1u << i)) && !(pg->in_sync & (1u << i));
		}
	}
	return false;
}

static void rec_free(struct srv_rec *rec)
{
	if (rec->pg->rec == rec) {
		rec->pg->rec = NULL;
		rec->pg->recovering = false;
	}
	if (rec->pr.sending) {
		rec->dead = true; /* kp_conn still holds rec->meta: free from idle */
		return;
	}
	free(rec);
}

static void rec_pr_idle(struct srv_peer_req *pr)
{
	struct srv_rec *rec = container_of(pr, struct srv_rec, pr);

	if (rec->dead) {
		free(rec);
	}
}

static void rec_step(struct srv_rec *rec);

static bool rec_match_pg(uint64_t inode, uint64_t objno, void *arg)
{
	const struct srv_pg *pg = arg;

	return cmap_object_pg(inode, objno, pg->pg_count) == pg->pg;
}

static void rec_list_reply(struct srv_peer_req *pr, int res, const struct kp_hdr *h,
			   const uint8_t *meta)
{
	struct srv_rec *rec = container_of(pr, struct srv_rec, pr);
	struct srv_cluster *cl = rec->cl;
	struct bs_obj_stat st[SRV_REC_PAGE];
	Keel__ObjectList *ol;
	uint64_t bi = 0, bo = 0, ci, co;
	bool ball = true, lf;
	unsigned int nl, i;

	rec->list_inflight = false;
	if (rec->state == SRV_REC_ABORT || !rec_valid(rec)) {
		rec_free(rec);
		return;
	}
	if (res) {
		log_warn("pg %u.%u: REPLICA_LIST on member %u: %s; retrying", rec->pg->pool,
			 rec->pg->pg, rec->member, strerror(-res));
		rec->state = SRV_REC_DRAIN; /* retried from the tick */
		return;
	}
	/* an empty list packs to zero bytes: no meta at all */
	ol = keel__object_list__unpack(NULL, h->meta_len, meta ? meta : (const uint8_t *)"");
	if (!ol || ol->n_objects > SRV_REC_PAGE) {
		if (ol) {
			keel__object_list__free_unpacked(ol, NULL);
		}
		log_warn("pg %u.%u: bad ObjectList from member %u", rec->pg->pool, rec->pg->pg,
			 rec->member);
		rec->state = SRV_REC_DRAIN;
		return;
	}
	for (i = 0; i < ol->n_objects; i++) {
		rec->remote[i].inode = ol->objects[i]->inode;
		rec->remote[i].objno = ol->objects[i]->objno;
		rec->remote[i].version = ol->objects[i]->version;
		rec->remote[i].blocks = ol->objects[i]->blocks_mapped;
		if (i && (rec->remote[i].inode < rec->remote[i - 1].inode ||
			  (rec->remote[i].inode == rec->remote[i - 1].inode &&
			   rec->remote[i].objno <= rec->remote[i - 1].objno))) {
			break; /* not ascending: hostile or broken, use the prefix */
		}
	}
	if (ol->more && i) {
		ball = false;
		bi = rec->remote[i - 1].inode;
		bo = rec->remote[i - 1].objno;
	}
	keel__object_list__free_unpacked(ol, NULL);
	/* our side of the same range */
	lf = rec->first;
	ci = rec->cur_inode;
	co = rec->cur_objno;
	nl = bs_list_match(cl->srv->bs, rec_match_pg, rec->pg, &lf, &ci, &co, st, SRV_REC_PAGE);
	for (unsigned int k = 0; k < nl; k++) {
		rec->local[k].inode = st[k].inode;
		rec->local[k].objno = st[k].objno;
		rec->local[k].version = st[k].version;
		rec->local[k].blocks = st[k].blocks_mapped;
	}
	if (nl == SRV_REC_PAGE) {
		/* our page is full: nothing past its last key is complete */
		if (ball || st[nl - 1].inode < bi ||
		    (st[nl - 1].inode == bi && st[nl - 1].objno < bo)) {
			ball = false;
			bi = st[nl - 1].inode;
			bo = st[nl - 1].objno;
		}
	}
	rec->ntodo = pg_list_diff(rec->local, nl, rec->remote, i, ball, bi, bo, rec->todo,
				  2 * SRV_REC_PAGE);
	/* deleting layers: each server's GC frees its own copies; a push
	 * would undo it */
	rec->ntodo = layer_filter_todo(cl->map, rec->todo, rec->ntodo);
	rec->next = 0;
	rec->last_page = ball;
	rec->listed_any = true;
	rec->listed_all = ball;
	rec->listed_inode = bi;
	rec->listed_objno = bo;
	if (!ball) {
		rec->first = false;
		rec->cur_inode = bi;
		rec->cur_objno = bo;
	}
	rec->pg->objects_left = rec->ntodo;
	rec->pg->bytes_left = 0;
	for (unsigned int k = 0; k < rec->ntodo; k++) {
		rec->pg->bytes_left += (uint64_t)rec->todo[k].blocks * BS_BLOCK;
	}
	rec->state = SRV_REC_OBJS;
	rec_step(rec);
}

static void rec_rop_done(struct srv_rop *rop, int res)
{
	struct srv_rec *rec = rop->arg;
	struct srv_cluster *cl = rec->cl;

	kassert(cl->rops_active > 0);
	cl->rops_active--;
	rec->rop = NULL;
	if (rec->state == SRV_REC_ABORT || !rec_valid(rec)) {
		rec_free(rec);
		return;
	}
	if (res) {
		log_warn("pg %u.%u: push of %llu:%llu to member %u failed: %s; retrying",
			 rec->pg->pool, rec->pg->pg, (unsigned long long)rop->inode,
			 (unsigned long long)rop->objno, rec->member, strerror(-res));
		return; /* the same object again from the tick */
	}
	rec->objects_copied++;
	rec->bytes_copied += rop->bytes;
	rec->pg->bytes_copied += rop->bytes;
	if (rec->pg->objects_left) {
		rec->pg->objects_left--;
	}
	if (rec->pg->bytes_left >= (uint64_t)rec->todo[rec->next].blocks * BS_BLOCK) {
		rec->pg->bytes_left -= (uint64_t)rec->todo[rec->next].blocks * BS_BLOCK;
	}
	rec->next++;
	rec_step(rec);
}

static void rec_send_list(struct srv_rec *rec)
{
	Keel__ListRequest lr = KEEL__LIST_REQUEST__INIT;
	struct srv_peer_req *pr = &rec->pr;
	size_t len;

	lr.by_pg = true;
	lr.pool = rec->pg->pool;
	lr.pg = rec->pg->pg;
	lr.cursor_inode = rec->first ? 0 : rec->cur_inode;
	lr.cursor_objno = rec->first ? 0 : rec->cur_objno;
	lr.max = SRV_REC_PAGE;
	len = keel__list_request__pack(&lr, rec->meta);
	memset(pr, 0, sizeof(*pr));
	pr->msg.hdr.opcode = KP_OP_REPLICA_LIST;
	pr->msg.hdr.epoch = rec->cl->epoch;
	pr->msg.hdr.pgid = KP_PGID(rec->pg->pool, rec->pg->pg);
	pr->msg.hdr.meta_len = (uint32_t)len;
	pr->msg.meta = rec->meta;
	pr->done = rec_list_reply;
	pr->idle = rec_pr_idle;
	pr->arg = rec;
	rec->list_inflight = true;
	rec->state = SRV_REC_LIST;
	srv_peer_send(rec->cl, rec->member, pr);
}

static void rec_synced(struct srv_rec *rec)
{
	struct srv_cluster *cl = rec->cl;
	struct srv_pg *pg = rec->pg;

	pg->synced_member = rec->member;
	pg->synced_epoch = pg->interval;
	pg->objects_left = 0;
	pg->bytes_left = 0;
	log_info("pg %u.%u: member %u recovered in %llu ms: %llu objects, %llu bytes copied "
		 "(epoch %llu)",
		 pg->pool, pg->pg, rec->member,
		 (unsigned long long)((reactor_now_ns() - rec->started_ns) / 1000000),
		 (unsigned long long)rec->objects_copied, (unsigned long long)rec->bytes_copied,
		 (unsigned long long)cl->epoch);
	rec_free(rec);
	srv_cluster_report_now(cl);
}

static void rec_step(struct srv_rec *rec)
{
	struct srv_cluster *cl = rec->cl;
	struct srv_rop *rop;

	if (rec->list_inflight || rec->rop) {
		return;
	}
	if (rec->state == SRV_REC_ABORT || !rec_valid(rec)) {
		rec_free(rec);
		return;
	}
	switch (rec->state) {
	case SRV_REC_DRAIN:
		if (rec->pg->inflight_prev) {
			return;
		}
		rec_send_list(rec);
		return;
	case SRV_REC_LIST:
		return;
	case SRV_REC_OBJS:
		if (rec->next >= rec->ntodo) {
			if (rec->last_page) {
				rec_synced(rec);
				return;
			}
			rec_send_list(rec);
			return;
		}
		if (cl->client_inflight >= cl->set.recovery_client_ops) {
			return; /* client I/O first: the tick retries */
		}
		if (cl->set.fault_recovery_hold_ms &&
		    reactor_now_ns() - rec->started_ns <
			    (uint64_t)cl->set.fault_recovery_hold_ms * 1000000ull) {
			return; /* [fault] recovery_hold_ms: the tick retries */
		}
		rop = srv_rop_get(cl, false);
		if (!rop) {
			return;
		}
		cl->rops_active++;
		rop->pg = rec->pg;
		rop->pg_gen = rec->pg->gen;
		rop->member = rec->member;
		rop->inode = rec->todo[rec->next].inode;
		rop->objno = rec->todo[rec->next].objno;
		rop->done = rec_rop_done;
		rop->arg = rec;
		rec->rop = rop;
		srv_rop_start(rop);
		return;
	case SRV_REC_ABORT:
		return;
	}
}

bool srv_recovery_will_visit(const struct srv_pg *pg, uint32_t member, uint64_t inode,
			     uint64_t objno)
{
	const struct srv_rec *rec = pg->rec;

	if (pg->role != SRV_PG_PRIMARY || pg->synced_member == member) {
		return false; /* its pass is over (reported, not yet in the map) */
	}
	if (!rec || rec->member != member || rec->state == SRV_REC_ABORT) {
		return true; /* a pass for it starts from the beginning later */
	}
	if (!rec->listed_any) {
		return true;
	}
	/* still to push in the current page (the push at rec->next included:
	 * it takes the object after the write that asks) */
	if (rec->state == SRV_REC_OBJS) {
		for (unsigned int k = rec->next; k < rec->ntodo; k++) {
			if (rec->todo[k].inode == inode && rec->todo[k].objno == objno) {
				return rec->todo[k].action == PG_OBJ_PUSH;
			}
		}
	}
	if (rec->listed_all) {
		return false;
	}
	/* beyond every page listed so far */
	return inode > rec->listed_inode ||
	       (inode == rec->listed_inode && objno > rec->listed_objno);
}

void srv_recovery_kick(struct srv_cluster *cl)
{
	unsigned int i;

	for (i = 0; i < cl->nrec; i++) {
		struct srv_pg *pg = cl->rec_list[i];
		struct srv_rec *rec = pg->rec;

		if (!rec) {
			uint32_t member;

			if (pg->role != SRV_PG_PRIMARY) {
				continue;
			}
			member = rec_pick_member(pg);
			if (!member) {
				continue;
			}
			rec = calloc(1, sizeof(*rec)); /* per PG recovery, not per I/O */
			if (!rec) {
				continue;
			}
			rec->cl = cl;
			rec->pg = pg;
			rec->gen = pg->gen;
			rec->member = member;
			rec->first = true;
			rec->started_ns = reactor_now_ns();
			rec->state = SRV_REC_DRAIN;
			pg->rec = rec;
			pg->recovering = true;
			pg->bytes_copied = 0;
			log_info("pg %u.%u: recovering member %u (epoch %llu)", pg->pool, pg->pg,
				 member, (unsigned long long)cl->epoch);
		}
		rec_step(rec);
	}
}

/*
 * Pushes of @pg waiting for an answer from a member the map took down (or
 * of a PG we no longer lead) stop waiting: that answer may only come when
 * the member is back, and meanwhile the push holds its object (and the
 * write that started it). Pushes in a local step check rop_stale() when
 * that step ends.
 */
static void rop_cancel_stale(struct srv_cluster *cl, struct srv_pg *pg)
{
	uint32_t n = cl->set.recovery_max_active + SRV_INLINE_ROPS, i;

	if (!cl->rops) {
		return;
	}
	for (i = 0; i < n; i++) {
		struct srv_rop *rop = &cl->rops[i];

		if (rop->pg != pg || !rop_stale(rop)) {
			continue;
		}
		if (rop->state != SRV_ROP_REMOTE_BVERS && rop->state != SRV_ROP_PUSH &&
		    rop->state != SRV_ROP_DELETE) {
			continue;
		}
		if (rop->pr.state != SRV_PR_QUEUED && rop->pr.state != SRV_PR_SENT) {
			continue;
		}
		srv_peer_cancel(&rop->pr);
		rop_finish(rop, -ESTALE);
	}
}

void srv_recovery_pg_changed(struct srv_cluster *cl, struct srv_pg *pg, bool gone)
{
	struct srv_rec *rec;

	rop_cancel_stale(cl, pg);
	rec = pg->rec;

	if (!rec || rec_valid(rec)) {
		return;
	}
	if (rec->list_inflight || rec->rop) {
		rec->state = SRV_REC_ABORT; /* freed when that completes */
		if (rec->list_inflight) {
			srv_peer_cancel(&rec->pr);
			rec->list_inflight = false;
			if (!rec->rop) {
				rec_free(rec);
			}
		}
		return;
	}
	rec_free(rec);
}
