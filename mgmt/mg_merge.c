/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_merge: merges of deleted snapshots into their only child, as
 * background jobs (docs/volumes.md "Merging a deleted snapshot").
 *
 * Which layers merge is derived from the layer table alone
 * (mg_merge_plan()), so a restarted mgmt finds the same merges again and
 * servers, whose walks are idempotent, go on (or redo them). The merges
 * travel in the map (cmap_layer.merge_into); servers report progress in
 * MG_USAGE; once every PG primary of the pool reported a merge done under
 * the current map, mg_volume_merge_complete() re-parents the child and
 * deletes the merged layer in one transaction and map.
 *
 * Jobs (c->jobs) are the REST view of that: in memory, one per merge
 * started since mgmt started (finished ones kept, MG_JOBS_KEPT at most).
 * A job's id is "merge-" and the merged layer's inode in hex: layer
 * numbers are never reused, so ids stay valid across mgmt restarts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mgmt/mg_api.h"
#include "mgmt/mg_cluster.h"

/* ---- planning (pure) ---- */

static bool mg_hidden(const struct mg_layer *l)
{
	return l->state == CMAP_LAYER_RO && !l->top && !l->nsnaps;
}

/* Live (not deleting) children of @inode; *only: the last one seen. */
static uint32_t mg_live_children(const struct mg_layers *t, uint64_t inode, uint64_t *only)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].parent == inode && t->v[i].state != CMAP_LAYER_DELETING) {
			*only = t->v[i].inode;
			n++;
		}
	}
	return n;
}

static bool mg_merging_into(const struct mg_layers *t, uint64_t inode)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].merge_into == inode) {
			return true;
		}
	}
	return false;
}

/* Would @l merge into its only child (ignoring what else merges)? */
static uint64_t mg_mergeable(const struct mg_layers *t, const struct mg_layer *l)
{
	uint64_t child = 0;

	if (!mg_hidden(l) || mg_live_children(t, l->inode, &child) != 1) {
		return 0;
	}
	return child;
}

/* Is @l's merge a step of its child's online flatten? */
static bool mg_flatten_step(struct mg_layers *t, const struct mg_layer *l)
{
	const struct mg_layer *ch = l->merge_into ? mg_layer_find(t, l->merge_into) : NULL;

	return ch && ch->flattening && ch->parent == l->inode && ch->state != CMAP_LAYER_DELETING &&
	       l->state != CMAP_LAYER_DELETING;
}

static void mg_merge_start(struct mg_layer *l, uint64_t into, uint32_t pool, uint64_t epoch)
{
	l->merge_into = into;
	l->merge_pool = pool;
	l->merge_epoch = epoch;
	l->merge_done = l->merge_total = 0;
}

uint32_t mg_merge_plan(struct mg_layers *t, uint32_t (*pool_of)(void *arg, uint64_t family),
		       void *arg, uint64_t epoch)
{
	uint32_t changed = 0;

	/* online flattens that ended */
	for (uint32_t i = 0; i < t->n; i++) {
		struct mg_layer *l = &t->v[i];

		if (l->flattening && (!l->parent || l->state == CMAP_LAYER_DELETING)) {
			l->flattening = false;
			changed++;
		}
	}
	/* merges that no longer hold */
	for (uint32_t i = 0; i < t->n; i++) {
		struct mg_layer *l = &t->v[i];

		if (l->merge_into && !mg_flatten_step(t, l) &&
		    mg_mergeable(t, l) != l->merge_into) {
			l->merge_into = 0;
			l->merge_pool = 0;
			l->merge_epoch = 0;
			changed++;
		}
	}
	/* flatten steps: the parent of a flattening layer merges into it,
	 * unless it merges already or something merges into it (its blocks
	 * would be missed: the child reads past it afterwards) */
	for (uint32_t i = 0; i < t->n; i++) {
		struct mg_layer *l = &t->v[i], *p;
		uint32_t pool;

		if (!l->flattening) {
			continue;
		}
		p = mg_layer_find(t, l->parent);
		if (!p || p->merge_into || p->state == CMAP_LAYER_DELETING ||
		    mg_merging_into(t, p->inode)) {
			continue;
		}
		pool = pool_of(arg, l->inode >> 16);
		if (pool) {
			mg_merge_start(p, l->inode, pool, epoch);
			changed++;
		}
	}
	/* new ones */
	for (uint32_t i = 0; i < t->n; i++) {
		struct mg_layer *l = &t->v[i];
		struct mg_layer *cl;
		uint64_t child;
		uint32_t pool;

		if (l->merge_into) {
			continue;
		}
		child = mg_mergeable(t, l);
		cl = child ? mg_layer_find(t, child) : NULL;
		if (!cl || cl->merge_into || mg_mergeable(t, cl) || mg_merging_into(t, l->inode)) {
			continue;
		}
		pool = pool_of(arg, l->inode >> 16);
		if (!pool) {
			continue;
		}
		mg_merge_start(l, child, pool, epoch);
		changed++;
	}
	return changed;
}

struct mg_pool_find {
	uint64_t family;
	uint32_t pool;
};

static int mg_pool_find_cb(void *arg, const struct mg_volume_rec *v)
{
	struct mg_pool_find *f = arg;

	if (v->top >> 16 == f->family) {
		f->pool = v->pool;
		return 1; /* stop */
	}
	return 0;
}

uint32_t mg_merge_family_pool(void *arg, uint64_t family)
{
	struct mg_cluster *c = arg;
	struct mg_pool_find f = {.family = family};

	if (mg_store_each_volume(c->st, mg_pool_find_cb, &f) < 0) {
		return 0;
	}
	return f.pool;
}

static int mg_volume_find_cb(void *arg, const struct mg_volume_rec *v)
{
	struct mg_job *j = arg;

	if (v->top >> 16 == j->layer >> 16) {
		snprintf(j->volume, sizeof(j->volume), "%s", v->name);
		return 1;
	}
	return 0;
}

/* ---- jobs ---- */

static struct mg_job *mg_job_find(struct mg_cluster *c, enum mg_job_type type, uint64_t layer)
{
	for (uint32_t i = c->jobs.n; i-- > 0;) {
		if (c->jobs.v[i].type == type && c->jobs.v[i].layer == layer) {
			return &c->jobs.v[i];
		}
	}
	return NULL;
}

struct mg_job *mg_merge_job_find(struct mg_cluster *c, uint64_t layer)
{
	return mg_job_find(c, MG_JOB_MERGE, layer);
}

struct mg_job *mg_flatten_job_find(struct mg_cluster *c, uint64_t top)
{
	return mg_job_find(c, MG_JOB_FLATTEN, top);
}

static bool mg_job_active(const struct mg_job *j)
{
	return j->state == MG_JOB_QUEUED || j->state == MG_JOB_RUNNING;
}

static struct mg_job *mg_job_add(struct mg_cluster *c)
{
	struct mg_jobs *js = &c->jobs;

	if (js->n >= MG_JOBS_KEPT) {
		/* forget the oldest finished one */
		for (uint32_t i = 0; i < js->n; i++) {
			if (!mg_job_active(&js->v[i])) {
				memmove(&js->v[i], &js->v[i + 1], (js->n - i - 1) * sizeof(*js->v));
				js->n--;
				break;
			}
		}
	}
	if (js->n == js->cap) {
		uint32_t cap = js->cap ? js->cap * 2 : 16;
		struct mg_job *v = realloc(js->v, cap * sizeof(*v));

		if (!v) {
			return NULL;
		}
		js->v = v;
		js->cap = cap;
	}
	memset(&js->v[js->n], 0, sizeof(js->v[0]));
	return &js->v[js->n++];
}

void mg_jobs_free(struct mg_jobs *j)
{
	free(j->v);
	memset(j, 0, sizeof(*j));
}

void mg_merge_jobs_sync(struct mg_cluster *c, const char *why)
{
	for (uint32_t i = 0; i < c->jobs.n; i++) {
		struct mg_job *j = &c->jobs.v[i];
		struct mg_layer *l;

		if (!mg_job_active(j)) {
			continue;
		}
		l = mg_layer_find(&c->layers, j->layer);
		if (j->type == MG_JOB_FLATTEN) {
			if (l && l->flattening) {
				continue;
			}
			j->finished_ms = mg_wall_ms();
			if (l && !l->parent && l->state != CMAP_LAYER_DELETING) {
				j->state = MG_JOB_DONE;
				log_info("online flatten of layer %#" PRIx64 " done", j->layer);
			} else {
				j->state = MG_JOB_FAILED;
				snprintf(j->error, sizeof(j->error), "cancelled: %s", why);
			}
			continue;
		}
		if (l && l->merge_into == j->into) {
			continue;
		}
		j->state = MG_JOB_FAILED;
		j->finished_ms = mg_wall_ms();
		snprintf(j->error, sizeof(j->error), "cancelled: %s", why);
		log_info("merge of layer %#" PRIx64 " into %#" PRIx64 " cancelled: %s", j->layer,
			 j->into, why);
	}
	for (uint32_t i = 0; i < c->layers.n; i++) {
		const struct mg_layer *l = &c->layers.v[i];
		struct mg_job *j;

		if (l->flattening) {
			j = mg_flatten_job_find(c, l->inode);
			if (!j || !mg_job_active(j)) {
				j = mg_job_add(c);
				if (j) {
					j->type = MG_JOB_FLATTEN;
					j->layer = l->inode;
					j->state = MG_JOB_RUNNING;
					j->started_ms = mg_wall_ms();
					mg_store_each_volume(c->st, mg_volume_find_cb, j);
				}
			}
		}
		if (!l->merge_into || mg_flatten_step(&c->layers, l)) {
			continue; /* a flatten step shows in the flatten's job */
		}
		j = mg_merge_job_find(c, l->inode);
		if (j && mg_job_active(j) && j->into == l->merge_into) {
			continue;
		}
		j = mg_job_add(c);
		if (!j) {
			log_error("merge of layer %#" PRIx64 ": out of memory for its job",
				  l->inode);
			continue;
		}
		j->layer = l->inode;
		j->into = l->merge_into;
		j->pool = l->merge_pool;
		j->state = MG_JOB_QUEUED;
		j->started_ms = mg_wall_ms();
		mg_store_each_volume(c->st, mg_volume_find_cb, j);
		log_info("merge of layer %#" PRIx64 " into %#" PRIx64 " (volume '%s') started",
			 l->inode, l->merge_into, j->volume);
	}
}

void mg_merge_job_name(struct mg_cluster *c, uint64_t layer, const char *volume,
		       const char *snapshot)
{
	struct mg_job *j = mg_merge_job_find(c, layer);

	if (j && mg_job_active(j)) {
		snprintf(j->volume, sizeof(j->volume), "%s", volume);
		snprintf(j->snapshot, sizeof(j->snapshot), "%s", snapshot);
	}
}

/* ---- progress and completion ---- */

static const struct mg_merge_rep *mg_rep_find(const struct mg_server *s, uint64_t layer)
{
	for (uint32_t i = 0; i < s->nmerges; i++) {
		if (s->merges[i].layer == layer) {
			return &s->merges[i];
		}
	}
	return NULL;
}

/* Has every primary of the merge's pool reported it done under the
 * current map? (A PG without a primary cannot have been walked.) */
static bool mg_merge_finished(struct mg_cluster *c, const struct mg_layer *l)
{
	const struct cmap *m = c->map;
	const struct cmap_pool *p = m ? cmap_pool(m, l->merge_pool) : NULL;

	if (!p || l->merge_epoch > m->epoch) {
		return false;
	}
	for (uint32_t k = 0; k < p->pg_count; k++) {
		const struct mg_server *s;
		const struct mg_merge_rep *r;

		if (!p->pgs[k].primary) {
			return false;
		}
		s = mg_cluster_server(c, p->pgs[k].primary);
		if (!s || s->usage_epoch < m->epoch) {
			return false;
		}
		r = mg_rep_find(s, l->inode);
		if (!r || r->into != l->merge_into || !r->complete) {
			return false;
		}
	}
	return true;
}

void mg_merge_check(struct mg_cluster *c)
{
	uint64_t done_layers[16];
	uint32_t ndone = 0;

	for (uint32_t i = 0; i < c->layers.n; i++) {
		struct mg_layer *l = &c->layers.v[i];
		struct mg_job *j;

		if (!l->merge_into) {
			continue;
		}
		l->merge_done = l->merge_total = 0;
		for (uint32_t k = 0; k < c->nservers; k++) {
			const struct mg_merge_rep *r = mg_rep_find(&c->servers[k], l->inode);

			if (r && r->into == l->merge_into && c->servers[k].up) {
				l->merge_done += r->done;
				l->merge_total += r->total;
			}
		}
		j = mg_flatten_step(&c->layers, l) ? mg_flatten_job_find(c, l->merge_into)
						   : mg_merge_job_find(c, l->inode);
		if (j && mg_job_active(j)) {
			j->done = l->merge_done;
			j->total = l->merge_total;
			if (j->state == MG_JOB_QUEUED && (l->merge_total || l->merge_done)) {
				j->state = MG_JOB_RUNNING;
			}
		}
		if (mg_merge_finished(c, l) && ndone < 16) {
			done_layers[ndone++] = l->inode;
		}
	}
	for (uint32_t i = 0; i < ndone; i++) {
		struct mg_layer *l = mg_layer_find(&c->layers, done_layers[i]);
		struct mg_job *j, *fj = NULL;
		enum mg_job_state was;
		int ret;

		if (l && mg_flatten_step(&c->layers, l)) {
			fj = mg_flatten_job_find(c, l->merge_into);
			ret = mg_volume_merge_complete(c, done_layers[i]);
			if (ret) {
				log_warn("flatten step of layer %#" PRIx64
					 ": cannot complete it: %s "
					 "(retried)",
					 done_layers[i], strerror(-ret));
			} else if (fj) {
				fj->steps_done++;
			}
			continue;
		}
		j = mg_merge_job_find(c, done_layers[i]);
		was = j ? j->state : MG_JOB_QUEUED;

		/* done before the change: the jobs' sync after it must not
		 * take the merge's end for a cancellation */
		if (j && mg_job_active(j)) {
			j->state = MG_JOB_DONE;
			j->finished_ms = mg_wall_ms();
		}
		ret = mg_volume_merge_complete(c, done_layers[i]);
		if (ret) {
			log_warn("merge of layer %#" PRIx64 ": cannot complete it: %s (retried)",
				 done_layers[i], strerror(-ret));
			j = mg_merge_job_find(c, done_layers[i]);
			if (j && j->state == MG_JOB_DONE) {
				j->state = was;
				j->finished_ms = 0;
			}
		}
	}
}

/* ---- REST ---- */

static const char *const mg_job_states[] = {"queued", "running", "done", "failed"};

json_t *mg_job_json(const struct mg_job *j)
{
	char id[32];
	json_t *o;
	double pct = j->state == MG_JOB_DONE ? 100.0
		     : j->total		     ? 100.0 * (double)j->done / (double)j->total
					     : 0.0;

	snprintf(id, sizeof(id), "%s-%" PRIx64, j->type == MG_JOB_FLATTEN ? "flatten" : "merge",
		 j->layer);
	o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:I,s:I,s:f,s:I}", "id", id, "type",
		      j->type == MG_JOB_FLATTEN ? "flatten" : "merge", "volume", j->volume,
		      "snapshot", j->snapshot, "layer", (json_int_t)j->layer, "into",
		      (json_int_t)j->into, "pool", (json_int_t)j->pool, "state",
		      mg_job_states[j->state], "objects_done", (json_int_t)j->done, "objects_total",
		      (json_int_t)j->total, "percent", pct, "started_at",
		      (json_int_t)(j->started_ms / 1000));
	if (!o) {
		return NULL;
	}
	json_object_set_new(o, "finished_at",
			    j->finished_ms ? json_integer(j->finished_ms / 1000) : json_null());
	json_object_set_new(o, "error", j->error[0] ? json_string(j->error) : json_null());
	if (j->type == MG_JOB_FLATTEN) {
		json_object_set_new(o, "steps_done", json_integer(j->steps_done));
	}
	return o;
}

void mg_jobs_handle(struct mg_cluster *c, struct mg_api_req *req)
{
	json_t *a;

	if (req->route == MG_R_JOB) {
		bool flat = !strncmp(req->arg, "flatten-", 8);
		const char *hex = flat ? req->arg + 8 : req->arg + 6;
		struct mg_job *j = NULL;
		uint64_t layer;
		char *end;

		if (flat || !strncmp(req->arg, "merge-", 6)) {
			layer = strtoull(hex, &end, 16);
			if (!*end && layer && end != hex) {
				j = flat ? mg_flatten_job_find(c, layer)
					 : mg_merge_job_find(c, layer);
			}
		}
		if (!j) {
			mg_api_error(req, -ENOENT, "no such job");
			return;
		}
		mg_api_reply(req, 200, mg_job_json(j));
		return;
	}
	a = json_array();
	for (uint32_t i = 0; i < c->jobs.n; i++) {
		json_array_append_new(a, mg_job_json(&c->jobs.v[i]));
	}
	mg_api_reply(req, 200, a);
}
