/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_gc: frees the objects of layers the map lists as deleting
 * (docs/volumes.md "Deleting a layer", docs/cluster.md "Layers on the
 * server"), on every server and for every role: each server frees its own
 * copies (primary and replica alike), so the pushes of recovery never need
 * to, and recovery leaves deleting layers alone (layer_filter_todo()).
 *
 * The walk goes through the deleting layers of the current map in inode
 * order, one layer at a time: list a page of its objects from the in-memory
 * index (bs_list()), free each one (whole-object push of version 0, the
 * local path of REPLICA_DELETE) with at most SRV_GC_ACTIVE frees in flight,
 * and move to the next layer once a listing comes back empty with nothing
 * in flight. A layer in which it freed objects triggers a usage report at
 * once (mgmt drops the layer when every server reports none left).
 *
 * Each free takes the object exclusively (srv_obj), like a write: reads
 * and pushes of the object on a primary finish first, and the layer's
 * state is checked again under the hold, so only layers deleting in the
 * map of that moment are ever touched. A map that changes the deleting
 * list restarts the walk (frees in flight finish, their results are
 * ignored). Objects that appear again later (pushed by a primary still on
 * an older map) are found by the usage walk, which restarts an idle GC.
 */
#include "server/srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define SRV_GC_PAGE 512u

struct srv_gc_op {
	struct srv_gc *gc;
	bool busy;
	uint32_t gen; /* walk generation it was started for */
	uint64_t inode, objno;
	struct srv_obj *obj;
	struct srv_obj_waiter ow;
	struct bs_push_req push;
};

struct srv_gc {
	struct srv_cluster *cl;
	uint32_t gen;	       /* +1 whenever the walk restarts */
	uint64_t *layers;      /* the map's deleting layers, ascending */
	uint32_t nlayers, cur; /* walk position: layers[cur]; cur == nlayers: idle */
	bool first;	       /* bs_list() cursor within layers[cur] */
	uint64_t ci, co;
	struct bs_obj_stat page[SRV_GC_PAGE];
	unsigned int npage, pos;
	unsigned int inflight;
	bool kicking;
	uint64_t freed_layer; /* objects freed in layers[cur] */
	uint64_t freed_total;
	uint64_t *zero_vers; /* one object's block versions, all 0 (read only) */
	struct srv_gc_op ops[SRV_GC_ACTIVE];
};

int srv_gc_init(struct srv_cluster *cl)
{
	uint32_t bpo = bs_object_size(cl->srv->bs) / BS_BLOCK, i;
	struct srv_gc *gc = calloc(1, sizeof(*gc));

	if (!gc) {
		return -ENOMEM;
	}
	gc->zero_vers = calloc(bpo, sizeof(uint64_t));
	if (!gc->zero_vers) {
		free(gc);
		return -ENOMEM;
	}
	gc->cl = cl;
	for (i = 0; i < SRV_GC_ACTIVE; i++) {
		gc->ops[i].gc = gc;
	}
	cl->gc = gc;
	return 0;
}

void srv_gc_fini(struct srv_cluster *cl)
{
	struct srv_gc *gc = cl->gc;

	if (!gc) {
		return;
	}
	free(gc->zero_vers);
	free(gc->layers);
	free(gc);
	cl->gc = NULL;
}

static void gc_layer_start(struct srv_gc *gc)
{
	gc->first = true;
	gc->ci = gc->co = 0;
	gc->npage = gc->pos = 0;
	gc->freed_layer = 0;
}

/* Restart the walk over @m's deleting layers. */
static void gc_restart(struct srv_gc *gc, const struct cmap *m)
{
	uint32_t i, n = 0;

	for (i = 0; i < m->nlayers; i++) {
		n += m->layers[i].state == CMAP_LAYER_DELETING;
	}
	free(gc->layers);
	gc->layers = NULL;
	gc->nlayers = 0;
	if (n) {
		gc->layers = malloc(n * sizeof(*gc->layers));
		if (!gc->layers) {
			log_error("gc: out of memory for %u deleting layers; retried with the "
				  "next usage walk",
				  n);
			n = 0;
		}
	}
	for (i = 0; i < m->nlayers && n; i++) {
		if (m->layers[i].state == CMAP_LAYER_DELETING) {
			gc->layers[gc->nlayers++] = m->layers[i].inode; /* sorted in the map */
		}
	}
	gc->gen++;
	gc->cur = 0;
	gc_layer_start(gc);
	if (gc->nlayers) {
		log_info("gc: %u deleting layers (map epoch %llu)", gc->nlayers,
			 (unsigned long long)m->epoch);
	}
}

static bool gc_lists_differ(const struct srv_gc *gc, const struct cmap *m)
{
	uint32_t i, k = 0;

	for (i = 0; i < m->nlayers; i++) {
		if (m->layers[i].state != CMAP_LAYER_DELETING) {
			continue;
		}
		if (k >= gc->nlayers || gc->layers[k] != m->layers[i].inode) {
			return true;
		}
		k++;
	}
	return k != gc->nlayers;
}

void srv_gc_map_changed(struct srv_cluster *cl)
{
	struct srv_gc *gc = cl->gc;

	if (gc && cl->map && gc_lists_differ(gc, cl->map)) {
		gc_restart(gc, cl->map);
		srv_gc_kick(cl);
	}
}

void srv_gc_rescan(struct srv_cluster *cl)
{
	struct srv_gc *gc = cl->gc;

	if (gc && cl->map && gc->cur >= gc->nlayers && !gc->inflight) {
		gc_restart(gc, cl->map);
		srv_gc_kick(cl);
	}
}

static void gc_op_end(struct srv_gc_op *op, int res)
{
	struct srv_gc *gc = op->gc;
	struct srv_cluster *cl = gc->cl;

	if (op->obj) {
		srv_obj_unlock(cl, op->obj, true);
		op->obj = NULL;
	}
	op->busy = false;
	kassert(gc->inflight > 0);
	gc->inflight--;
	if (res == 1 && op->gen == gc->gen) {
		gc->freed_layer++;
		gc->freed_total++;
	} else if (res < 0) {
		log_warn("gc: freeing %llu:%llu failed: %s", (unsigned long long)op->inode,
			 (unsigned long long)op->objno, strerror(-res));
	}
	srv_gc_kick(cl);
}

static void gc_push_done(struct bs_push_req *p, int res)
{
	struct srv_gc_op *op = container_of(p, struct srv_gc_op, push);

	gc_op_end(op, res ? res : 1);
}

/* The object is ours: free it if its layer is (still) deleting. */
static void gc_locked(struct srv_gc_op *op)
{
	struct srv_cluster *cl = op->gc->cl;
	struct bs *bs = cl->srv->bs;
	struct bs_obj_stat st;
	int ret;

	if (cl->stopping || cmap_layer_state(cl->map, op->inode) != CMAP_LAYER_DELETING ||
	    bs_stat_object(bs, op->inode, op->objno, &st)) {
		gc_op_end(op, 0);
		return;
	}
	memset(&op->push, 0, sizeof(op->push));
	op->push.inode = op->inode;
	op->push.objno = op->objno;
	op->push.offset = 0;
	op->push.length = bs_object_size(bs);
	op->push.versions = op->gc->zero_vers;
	op->push.cb = gc_push_done;
	ret = bs_push(bs, &op->push);
	if (ret) {
		gc_op_end(op, ret);
	}
}

static void gc_granted(struct srv_obj_waiter *w)
{
	gc_locked(container_of(w, struct srv_gc_op, ow));
}

/* Start freeing @inode:@objno on a free op slot. false: no slot or no
 * srv_obj entry left (the tick retries). */
static bool gc_start(struct srv_gc *gc, uint64_t inode, uint64_t objno)
{
	struct srv_cluster *cl = gc->cl;
	struct srv_gc_op *op = NULL;
	struct srv_obj *o;
	unsigned int i;

	for (i = 0; i < SRV_GC_ACTIVE; i++) {
		if (!gc->ops[i].busy) {
			op = &gc->ops[i];
			break;
		}
	}
	if (!op) {
		return false;
	}
	o = srv_obj_get(cl, inode, objno);
	if (!o) {
		return false;
	}
	op->busy = true;
	op->gen = gc->gen;
	op->inode = inode;
	op->objno = objno;
	op->obj = o;
	op->ow.writer = true;
	op->ow.grant = gc_granted;
	gc->inflight++;
	if (srv_obj_lock(cl, o, &op->ow)) {
		gc_locked(op);
	}
	return true;
}

void srv_gc_kick(struct srv_cluster *cl)
{
	struct srv_gc *gc = cl->gc;

	if (!gc || !cl->map || cl->stopping || gc->kicking) {
		return;
	}
	gc->kicking = true; /* frees that end at once call back in here */
	while (gc->cur < gc->nlayers && gc->inflight < SRV_GC_ACTIVE) {
		uint64_t inode = gc->layers[gc->cur];

		if (gc->pos < gc->npage) {
			if (!gc_start(gc, inode, gc->page[gc->pos].objno)) {
				break;
			}
			gc->pos++;
			continue;
		}
		gc->npage = bs_list(cl->srv->bs, inode, &gc->first, &gc->ci, &gc->co, gc->page,
				    SRV_GC_PAGE);
		gc->pos = 0;
		if (gc->npage) {
			continue;
		}
		if (gc->inflight) {
			break; /* the layer is done when its last frees are */
		}
		if (gc->freed_layer) {
			log_info("gc: layer %llu: %llu objects freed, none left",
				 (unsigned long long)inode, (unsigned long long)gc->freed_layer);
			srv_cluster_usage_now(cl);
		}
		gc->cur++;
		gc_layer_start(gc);
	}
	gc->kicking = false;
}
