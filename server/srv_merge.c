/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_merge: merges deleted snapshots into their only child
 * (docs/volumes.md "Merging a deleted snapshot", docs/cluster.md "Layers
 * on the server"). The map lists each merge as a read-only layer S with
 * merge_into C and the pool of their volume.
 *
 * For the PGs this server is primary of, the walk goes through the merges
 * of the current map one at a time, listing S's local objects (bs_list())
 * and keeping those whose PG (in the merge's pool) we are primary of. Per
 * object, extent by extent (BS_MAX_IO): read S's extent and its bitmap,
 * then for each run of blocks S holds, submit a copy-up: an internal
 * WRITE of that run into C (struct srv_copyup, srv_repl.c) that takes C's
 * object exclusively like a client write, reads C's bitmap under the hold
 * and writes only the first run of blocks C lacks, as an ordinary
 * replicated mutation (the primary's version, sent to every member).
 * The copy-up says how many blocks it dealt with; the next one starts
 * after them. Blocks C holds (written by clients before or during the
 * merge, or copied by an earlier walk) are never touched, so a walk is
 * idempotent: a map that changes the merges or any of our PGs restarts it
 * from the start (only a change of the set of PGs we are primary of
 * counts), a failed object makes the walk run again a second later, and a
 * new primary simply walks again.
 *
 * Progress goes to mgmt in MG_USAGE (MergeProgress: objects done / total
 * of this walk, done once every object of the walk was copied under the
 * current map); mgmt completes the merge once every primary of the pool
 * reported it done.
 */
#include "server/srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

#define SRV_MERGE_PAGE	   256u
#define SRV_MERGE_RETRY_NS (1000ull * 1000 * 1000)

struct srv_merge_job {
	uint64_t layer, into;
	uint32_t pool;
	uint64_t done, total;
	uint32_t failed; /* objects that failed in this walk */
	bool complete;
};

struct srv_merge_op {
	struct srv_merge *mg;
	bool busy;
	uint32_t gen;
	uint32_t job;
	uint64_t objno;
	uint32_t pgid;
	uint32_t off, len; /* the extent of the object being copied */
	uint32_t blk;	   /* next block of the extent to look at */
	uint32_t run;	   /* first block of the copy-up in flight */
	void *sbuf;	   /* S's extent */
	uint32_t scrcs[BS_MAX_IO / BS_BLOCK];
	uint64_t spresent[BS_PRESENT_WORDS(BS_MAX_IO)];
	struct bs_req sbs;
	struct srv_req *req; /* internal request slot */
	struct srv_copyup cu;
};

struct srv_merge {
	struct srv_cluster *cl;
	uint32_t gen;
	struct srv_merge_job *jobs;
	uint32_t njobs, cur;
	bool first;
	uint64_t ci, co;
	struct bs_obj_stat page[SRV_MERGE_PAGE];
	unsigned int npage, pos;
	unsigned int inflight;
	bool kicking;
	uint64_t retry_ns; /* a walk with failures runs again from then */
	uint64_t sig;	   /* merge_primaries_sig() the walk started with */
	struct srv_conn *conn;
	struct srv_merge_op ops[SRV_MERGE_ACTIVE];
};

static void merge_req_done(struct srv_req *req, int res);

int srv_merge_init(struct srv_cluster *cl)
{
	struct srv_merge *mg = calloc(1, sizeof(*mg));
	unsigned int i;

	if (!mg) {
		return -ENOMEM;
	}
	mg->cl = cl;
	cl->merge = mg;
	mg->conn = calloc(1, sizeof(*mg->conn));
	if (!mg->conn) {
		goto out_fini;
	}
	mg->conn->srv = cl->srv;
	mg->conn->refs = 1;
	mg->conn->internal_done = merge_req_done;
	snprintf(mg->conn->peer, sizeof(mg->conn->peer), "merge");
	for (i = 0; i < SRV_MERGE_ACTIVE; i++) {
		struct srv_merge_op *op = &mg->ops[i];

		op->mg = mg;
		op->req = &mg->conn->reqs[i];
		op->req->conn = mg->conn;
		op->sbuf = aligned_alloc(BS_BLOCK, BS_MAX_IO);
		op->cu.cbuf = aligned_alloc(BS_BLOCK, BS_MAX_IO);
		op->req->buf = aligned_alloc(BS_BLOCK, BS_MAX_IO);
		if (!op->sbuf || !op->cu.cbuf || !op->req->buf) {
			goto out_fini;
		}
	}
	return 0;

out_fini:
	srv_merge_fini(cl);
	return -ENOMEM;
}

void srv_merge_fini(struct srv_cluster *cl)
{
	struct srv_merge *mg = cl->merge;
	unsigned int i;

	if (!mg) {
		return;
	}
	for (i = 0; i < SRV_MERGE_ACTIVE; i++) {
		free(mg->ops[i].sbuf);
		free(mg->ops[i].cu.cbuf);
		if (mg->conn) {
			free(mg->conn->reqs[i].buf);
		}
	}
	free(mg->conn);
	free(mg->jobs);
	free(mg);
	cl->merge = NULL;
}

/* The PG of @objno of @inode in @pool if we are its primary, else NULL. */
static struct srv_pg *merge_primary_pg(struct srv_cluster *cl, uint32_t pool, uint64_t inode,
				       uint64_t objno)
{
	const struct cmap_pool *p = cmap_pool(cl->map, pool);
	struct srv_pg *pg;

	if (!p) {
		return NULL;
	}
	pg = srv_cluster_pg(cl, KP_PGID(pool, cmap_object_pg(inode, objno, p->pg_count)));
	return pg && pg->role == SRV_PG_PRIMARY ? pg : NULL;
}

static uint64_t merge_count(struct srv_cluster *cl, const struct srv_merge_job *j)
{
	struct bs_obj_stat page[64];
	uint64_t ci = 0, co = 0, n = 0;
	bool first = true;
	unsigned int k, got;

	do {
		got = bs_list(cl->srv->bs, j->layer, &first, &ci, &co, page, 64);
		for (k = 0; k < got; k++) {
			n += merge_primary_pg(cl, j->pool, j->layer, page[k].objno) != NULL;
		}
	} while (got);
	return n;
}

static void merge_layer_start(struct srv_merge *mg)
{
	mg->first = true;
	mg->ci = mg->co = 0;
	mg->npage = mg->pos = 0;
}

/* Restart the walk over the current map's merges. */
static void merge_restart(struct srv_merge *mg)
{
	struct srv_cluster *cl = mg->cl;
	const struct cmap *m = cl->map;
	uint32_t i, n = 0;

	for (i = 0; i < m->nlayers; i++) {
		n += m->layers[i].merge_into != 0;
	}
	free(mg->jobs);
	mg->jobs = NULL;
	mg->njobs = 0;
	if (n) {
		mg->jobs = calloc(n, sizeof(*mg->jobs));
		if (!mg->jobs) {
			log_error("merge: out of memory for %u merges; retried with the next map",
				  n);
			n = 0;
		}
	}
	for (i = 0; i < m->nlayers && n; i++) {
		struct srv_merge_job *j;

		if (!m->layers[i].merge_into) {
			continue;
		}
		j = &mg->jobs[mg->njobs++];
		j->layer = m->layers[i].inode;
		j->into = m->layers[i].merge_into;
		j->pool = m->layers[i].merge_pool;
		j->total = merge_count(cl, j);
		log_info("merge: layer %llu into %llu: %llu objects here as primary (map epoch "
			 "%llu)",
			 (unsigned long long)j->layer, (unsigned long long)j->into,
			 (unsigned long long)j->total, (unsigned long long)m->epoch);
	}
	mg->gen++;
	mg->cur = 0;
	mg->retry_ns = 0;
	merge_layer_start(mg);
}

static bool merge_lists_differ(const struct srv_merge *mg, const struct cmap *m)
{
	uint32_t i, k = 0;

	for (i = 0; i < m->nlayers; i++) {
		if (!m->layers[i].merge_into) {
			continue;
		}
		if (k >= mg->njobs || mg->jobs[k].layer != m->layers[i].inode ||
		    mg->jobs[k].into != m->layers[i].merge_into ||
		    mg->jobs[k].pool != m->layers[i].merge_pool) {
			return true;
		}
		k++;
	}
	return k != mg->njobs;
}

/* Which PGs of the merges' pools we are primary of, as one hash: a walk
 * covers exactly those, so only a change of that set restarts it (maps
 * that change other PGs, or members of ours, come often during recovery). */
static uint64_t merge_primaries_sig(struct srv_cluster *cl, const struct srv_merge *mg)
{
	uint64_t sig = 0;

	for (uint32_t i = 0; i < mg->njobs; i++) {
		const struct cmap_pool *p = cmap_pool(cl->map, mg->jobs[i].pool);
		bool seen = false;

		for (uint32_t k = 0; k < i; k++) {
			seen |= mg->jobs[k].pool == mg->jobs[i].pool;
		}
		for (uint32_t g = 0; p && !seen && g < p->pg_count; g++) {
			struct srv_pg *pg = srv_cluster_pg(cl, KP_PGID(p->id, g));

			if (pg && pg->role == SRV_PG_PRIMARY) {
				uint64_t h = ((uint64_t)p->id << 32 | g) * 0x9e3779b97f4a7c15ull;

				sig += h ^ (h >> 31);
			}
		}
	}
	return sig;
}

void srv_merge_map_changed(struct srv_cluster *cl, bool pgs)
{
	struct srv_merge *mg = cl->merge;
	uint64_t sig;

	if (!mg || !cl->map) {
		return;
	}
	if (merge_lists_differ(mg, cl->map)) {
		merge_restart(mg);
		mg->sig = merge_primaries_sig(cl, mg);
		srv_merge_kick(cl);
		return;
	}
	if (!pgs || !mg->njobs) {
		return;
	}
	sig = merge_primaries_sig(cl, mg);
	if (sig != mg->sig) {
		merge_restart(mg);
		mg->sig = sig;
		srv_merge_kick(cl);
	}
}

unsigned int srv_merge_progress(struct srv_cluster *cl, struct Keel__MergeProgress *out,
				unsigned int max)
{
	struct srv_merge *mg = cl->merge;
	unsigned int i, n = 0;

	for (i = 0; mg && i < mg->njobs && n < max; i++) {
		const struct srv_merge_job *j = &mg->jobs[i];

		keel__merge_progress__init(&out[n]);
		out[n].layer = j->layer;
		out[n].into = j->into;
		out[n].objects_done = j->done;
		out[n].objects_total = j->total;
		out[n].done = j->complete;
		n++;
	}
	return n;
}

static void merge_op_end(struct srv_merge_op *op, int res)
{
	struct srv_merge *mg = op->mg;

	op->busy = false;
	kassert(mg->inflight > 0);
	mg->inflight--;
	if (op->gen == mg->gen && op->job < mg->njobs) {
		struct srv_merge_job *j = &mg->jobs[op->job];

		if (!res) {
			j->done++;
		} else {
			j->failed++;
			if (res != -ESTALE && res != -ECANCELED && res != -EAGAIN) {
				log_warn("merge: object %llu of layer %llu into %llu: %s",
					 (unsigned long long)op->objno,
					 (unsigned long long)j->layer, (unsigned long long)j->into,
					 strerror(-res));
			}
		}
	}
	srv_merge_kick(mg->cl);
}

static void merge_extent(struct srv_merge_op *op);

/* Copy up the next run of blocks S holds in the current extent, or move on. */
static void merge_next_run(struct srv_merge_op *op)
{
	struct srv_cluster *cl = op->mg->cl;
	struct srv_req *req = op->req;
	uint32_t nblk = op->len / BS_BLOCK, i = op->blk, j;
	int ret;

	if (op->gen != op->mg->gen || cl->stopping) {
		merge_op_end(op, -ECANCELED);
		return;
	}
	while (i < nblk && !(op->spresent[i / 64] >> (i % 64) & 1)) {
		i++;
	}
	if (i == nblk) {
		op->off += op->len;
		if (op->off >= bs_object_size(cl->srv->bs)) {
			merge_op_end(op, 0);
			return;
		}
		merge_extent(op);
		return;
	}
	j = i;
	while (j < nblk && op->spresent[j / 64] >> (j % 64) & 1) {
		j++;
	}
	op->run = i;
	memset(&req->hdr, 0, sizeof(req->hdr));
	req->hdr.version = KP_VERSION;
	req->hdr.opcode = KP_OP_WRITE;
	req->hdr.epoch = cl->epoch;
	req->hdr.pgid = op->pgid;
	req->hdr.inode = op->mg->jobs[op->job].into;
	req->hdr.objno = op->objno;
	req->hdr.offset = op->off + i * BS_BLOCK;
	req->hdr.length = (j - i) * BS_BLOCK;
	req->hdr.data_len = req->hdr.length;
	memcpy(req->buf, (uint8_t *)op->sbuf + (size_t)i * BS_BLOCK, req->hdr.length);
	memcpy(req->crcs, op->scrcs + i, (j - i) * sizeof(*req->crcs));
	op->cu.from = op->mg->jobs[op->job].layer;
	op->cu.consumed = 0;
	op->cu.wrote = false;
	req->r.cu = &op->cu;
	req->start_ns = reactor_now_ns();
	req->slow_logged = false;
	ret = srv_cluster_check_client(cl, req);
	if (ret) {
		merge_op_end(op, ret);
		return;
	}
	srv_repl_client(req);
}

static void merge_req_done(struct srv_req *req, int res)
{
	struct srv_merge_op *op = NULL;
	unsigned int i;

	for (i = 0; i < SRV_MERGE_ACTIVE; i++) {
		if (req->conn->srv->cl->merge->ops[i].req == req) {
			op = &req->conn->srv->cl->merge->ops[i];
		}
	}
	kassert(op && op->busy);
	req->state = SRV_REQ_FREE;
	if (res) {
		merge_op_end(op, res);
		return;
	}
	if (!op->cu.consumed) {
		merge_op_end(op, -EIO); /* cannot happen: a copy-up always deals with a block */
		return;
	}
	op->blk = op->run + op->cu.consumed;
	merge_next_run(op);
}

static void merge_sread_done(struct bs_req *b, int res)
{
	struct srv_merge_op *op = b->arg;

	if (res) {
		merge_op_end(op, res);
		return;
	}
	op->blk = 0;
	merge_next_run(op);
}

/* Read S's extent at op->off (S is read-only: no hold needed; the map
 * fences its writers before it can be merged). */
static void merge_extent(struct srv_merge_op *op)
{
	struct srv_cluster *cl = op->mg->cl;
	uint32_t osz = bs_object_size(cl->srv->bs);
	int ret;

	op->len = osz - op->off < BS_MAX_IO ? osz - op->off : BS_MAX_IO;
	memset(&op->sbs, 0, sizeof(op->sbs));
	op->sbs.op = BS_OP_READ;
	op->sbs.inode = op->mg->jobs[op->job].layer;
	op->sbs.objno = op->objno;
	op->sbs.offset = op->off;
	op->sbs.length = op->len;
	op->sbs.buf = op->sbuf;
	op->sbs.crcs = op->scrcs;
	op->sbs.present = op->spresent;
	op->sbs.cb = merge_sread_done;
	op->sbs.arg = op;
	ret = bs_submit(cl->srv->bs, &op->sbs);
	if (ret) {
		merge_op_end(op, ret);
	}
}

/* Start one object on a free slot; false: none free. */
static bool merge_start(struct srv_merge *mg, uint64_t objno)
{
	struct srv_merge_job *j = &mg->jobs[mg->cur];
	struct srv_merge_op *op = NULL;
	struct srv_pg *pg;
	unsigned int i;

	pg = merge_primary_pg(mg->cl, j->pool, j->layer, objno);
	if (!pg) {
		return true; /* another server's to merge */
	}
	for (i = 0; i < SRV_MERGE_ACTIVE; i++) {
		if (!mg->ops[i].busy) {
			op = &mg->ops[i];
			break;
		}
	}
	if (!op) {
		return false;
	}
	op->busy = true;
	op->gen = mg->gen;
	op->job = mg->cur;
	op->objno = objno;
	op->pgid = KP_PGID(pg->pool, pg->pg);
	op->off = 0;
	mg->inflight++;
	merge_extent(op);
	return true;
}

void srv_merge_kick(struct srv_cluster *cl)
{
	struct srv_merge *mg = cl->merge;

	if (!mg || !cl->map || cl->stopping || mg->kicking) {
		return;
	}
	mg->kicking = true;
	if (mg->cur >= mg->njobs && mg->retry_ns && !mg->inflight &&
	    reactor_now_ns() >= mg->retry_ns) {
		merge_restart(mg);
	}
	while (mg->cur < mg->njobs && mg->inflight < SRV_MERGE_ACTIVE) {
		struct srv_merge_job *j = &mg->jobs[mg->cur];

		if (mg->pos < mg->npage) {
			if (!merge_start(mg, mg->page[mg->pos].objno)) {
				break;
			}
			mg->pos++;
			continue;
		}
		mg->npage = bs_list(cl->srv->bs, j->layer, &mg->first, &mg->ci, &mg->co, mg->page,
				    SRV_MERGE_PAGE);
		mg->pos = 0;
		if (mg->npage) {
			continue;
		}
		if (mg->inflight) {
			break; /* the merge's walk is done when its last objects are */
		}
		j->complete = !j->failed;
		if (j->failed) {
			mg->retry_ns = reactor_now_ns() + SRV_MERGE_RETRY_NS;
		}
		log_info("merge: layer %llu into %llu: walk %s (%llu of %llu objects, %u failed)",
			 (unsigned long long)j->layer, (unsigned long long)j->into,
			 j->complete ? "complete" : "incomplete", (unsigned long long)j->done,
			 (unsigned long long)j->total, j->failed);
		srv_cluster_usage_now(cl);
		mg->cur++;
		merge_layer_start(mg);
	}
	mg->kicking = false;
}
