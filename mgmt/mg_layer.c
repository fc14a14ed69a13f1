/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_layer: keel-mgmt's layer table in memory (docs/volumes.md): which
 * layers exist, their parents and states, what keeps each alive; the
 * non-writable ones go into every published map. Also the two things
 * that follow layer changes: waiting until servers fenced a frozen layer,
 * and dropping deleting layers once every server reported them empty.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mgmt/mg_cluster.h"
#include "proto/keel.pb-c.h"

#define MG_FENCE_TIMEOUT_NS (30ull * 1000 * 1000 * 1000)
/* A deleting layer stays listed (servers refuse I/O to it) for
 * layer_drop_grace_s even once every server freed it: a client still
 * holding it as its top learns from a map that lists it (libkeel refreshes
 * its volume then); a layer dropped from the map looks writable to servers. */

/* ---- the table ---- */

static uint32_t mg_layer_pos(const struct mg_layers *t, uint64_t inode)
{
	uint32_t lo = 0, hi = t->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (t->v[mid].inode < inode) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

struct mg_layer *mg_layer_find(struct mg_layers *t, uint64_t inode)
{
	uint32_t i = mg_layer_pos(t, inode);

	return i < t->n && t->v[i].inode == inode ? &t->v[i] : NULL;
}

int mg_layer_add(struct mg_layers *t, const struct mg_layer *l)
{
	uint32_t i = mg_layer_pos(t, l->inode);

	if (i < t->n && t->v[i].inode == l->inode) {
		return -EEXIST;
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 64;
		struct mg_layer *v = realloc(t->v, cap * sizeof(*v));

		if (!v) {
			return -ENOMEM;
		}
		t->v = v;
		t->cap = cap;
	}
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
	t->v[i] = *l;
	t->n++;
	return 0;
}

void mg_layer_remove(struct mg_layers *t, uint64_t inode)
{
	uint32_t i = mg_layer_pos(t, inode);

	if (i < t->n && t->v[i].inode == inode) {
		memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
		t->n--;
	}
}

int mg_layers_copy(struct mg_layers *dst, const struct mg_layers *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->n) {
		return 0;
	}
	dst->v = malloc(src->n * sizeof(*dst->v));
	if (!dst->v) {
		return -ENOMEM;
	}
	memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	dst->n = dst->cap = src->n;
	return 0;
}

void mg_layers_free(struct mg_layers *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static bool mg_layer_has_child(const struct mg_layers *t, uint64_t inode)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].parent == inode && t->v[i].state != CMAP_LAYER_DELETING) {
			return true;
		}
	}
	return false;
}

uint32_t mg_layer_cascade(struct mg_layers *t, uint64_t inode, uint64_t *changed, uint32_t max)
{
	uint32_t n = 0;

	while (inode) {
		struct mg_layer *l = mg_layer_find(t, inode);

		if (!l || l->state == CMAP_LAYER_DELETING || l->top || l->nsnaps ||
		    mg_layer_has_child(t, inode) || n == max) {
			break;
		}
		l->state = CMAP_LAYER_DELETING;
		changed[n++] = inode;
		inode = l->parent;
	}
	return n;
}

uint32_t mg_layer_chain(struct mg_layers *t, uint64_t inode, uint64_t *out, uint32_t max)
{
	struct mg_layer *l = mg_layer_find(t, inode);
	uint32_t n = 0;

	while (l && l->parent && n < max) {
		if (out) {
			out[n] = l->parent;
		}
		n++;
		l = mg_layer_find(t, l->parent);
	}
	return n;
}

int mg_layers_to_map(const struct mg_layers *t, struct cmap *m)
{
	struct cmap_layer *l;
	uint32_t n = 0;
	int ret;

	l = malloc((t->n + 1) * sizeof(*l));
	if (!l) {
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].state != CMAP_LAYER_WRITABLE) {
			l[n++] = (struct cmap_layer){.inode = t->v[i].inode,
						     .state = t->v[i].state,
						     .merge_into = t->v[i].merge_into,
						     .merge_pool = t->v[i].merge_pool};
		}
	}
	ret = cmap_set_layers(m, l, n);
	free(l);
	return ret;
}

/* ---- loading ---- */

static int mg_load_layer(void *arg, const struct mg_layer_rec *r)
{
	struct mg_layer l = {
		.inode = r->inode,
		.parent = r->parent,
		.state = r->state,
		.created_at = r->created_at,
	};

	if (r->state > CMAP_LAYER_DELETING) {
		log_error("database: layer %#" PRIx64 " has state %u", r->inode, r->state);
		return -EIO;
	}
	return mg_layer_add(arg, &l);
}

static int mg_load_top(void *arg, const struct mg_volume_rec *v)
{
	struct mg_layer *l = mg_layer_find(arg, v->top);

	if (!l) {
		log_error("database: volume '%s' has no top layer %#" PRIx64, v->name, v->top);
		return -EIO;
	}
	l->top = true;
	return 0;
}

static int mg_load_snap(void *arg, const struct mg_snap_rec *sn)
{
	struct mg_layer *l = mg_layer_find(arg, sn->inode);

	if (!l) {
		log_error("database: snapshot '%s' has no layer %#" PRIx64, sn->name, sn->inode);
		return -EIO;
	}
	l->nsnaps++;
	return 0;
}

int mg_layers_load(struct mg_cluster *c)
{
	int ret;

	ret = mg_store_each_layer(c->st, mg_load_layer, &c->layers);
	if (!ret) {
		ret = mg_store_each_volume(c->st, mg_load_top, &c->layers);
	}
	if (!ret) {
		ret = mg_store_each_snap(c->st, 0, mg_load_snap, &c->layers);
	}
	return ret;
}

/* ---- fencing: wait until servers applied a map ---- */

/* Every server up in the published map has answered a push of @epoch or
 * newer (a server answers only after draining mutations started under
 * older maps, docs/volumes.md). Down servers cannot serve: not waited for. */
static bool mg_fenced(struct mg_cluster *c, uint64_t epoch)
{
	for (uint32_t i = 0; i < c->nservers; i++) {
		const struct mg_server *s = &c->servers[i];

		if (s->up && s->rec.in && (!s->peer || s->peer->acked_epoch < epoch)) {
			return false;
		}
	}
	return true;
}

void mg_fence_check(struct mg_cluster *c)
{
	struct mg_fence **pp = &c->fences;
	uint64_t now = reactor_now_ns();

	while (*pp) {
		struct mg_fence *f = *pp;
		int res;

		if (mg_fenced(c, f->epoch)) {
			res = 0;
		} else if (now >= f->deadline || c->stopping) {
			res = -ETIMEDOUT;
		} else {
			pp = &f->next;
			continue;
		}
		*pp = f->next;
		f->cb(c, f->arg, res);
		free(f);
	}
}

static void mg_fence_deferred(struct reactor_defer *d)
{
	struct mg_cluster *c = container_of(d, struct mg_cluster, fence_defer);

	c->fence_defer_armed = false;
	mg_fence_check(c);
}

int mg_fence_wait(struct mg_cluster *c, uint64_t epoch, void (*cb)(struct mg_cluster *c, void *arg,
								    int res),
		  void *arg)
{
	struct mg_fence *f = calloc(1, sizeof(*f));

	if (!f) {
		return -ENOMEM;
	}
	f->epoch = epoch;
	f->deadline = reactor_now_ns() + MG_FENCE_TIMEOUT_NS;
	f->cb = cb;
	f->arg = arg;
	f->next = c->fences;
	c->fences = f;
	/* Never call back from here: the caller's request must be fully
	 * deferred before it can complete. */
	if (!c->fence_defer_armed) {
		c->fence_defer_armed = true;
		c->fence_defer.fn = mg_fence_deferred;
		reactor_defer(c->r, &c->fence_defer);
	}
	return 0;
}

/* ---- usage reports and garbage collection ---- */

static int cmp_usage(const void *a, const void *b)
{
	uint64_t x = ((const struct mg_usage *)a)->inode;
	uint64_t y = ((const struct mg_usage *)b)->inode;

	return x < y ? -1 : x > y;
}

static const struct mg_usage *mg_usage_find(const struct mg_server *s, uint64_t inode)
{
	struct mg_usage key = {.inode = inode};

	if (!s->nusage) {
		return NULL;
	}
	return bsearch(&key, s->usage, s->nusage, sizeof(*s->usage), cmp_usage);
}

static void mg_layers_sum(struct mg_cluster *c)
{
	for (uint32_t i = 0; i < c->layers.n; i++) {
		struct mg_layer *l = &c->layers.v[i];

		l->objects = l->bytes = 0;
		for (uint32_t k = 0; k < c->nservers; k++) {
			const struct mg_usage *u = mg_usage_find(&c->servers[k], l->inode);

			if (u) {
				l->objects += u->objects;
				l->bytes += u->bytes;
			}
		}
	}
}

/* A deleting layer is gone when every server that is in the cluster has
 * reported, under a map listing it as deleting, that it holds nothing of
 * it. Servers that are down must report first (they may hold objects). */
static bool mg_layer_collected(struct mg_cluster *c, const struct mg_layer *l)
{
	for (uint32_t k = 0; k < c->nservers; k++) {
		const struct mg_server *s = &c->servers[k];

		if (!s->rec.in) {
			continue;
		}
		if (s->usage_epoch < l->deleting_epoch || mg_usage_find(s, l->inode)) {
			return false;
		}
	}
	return true;
}

static int mg_save_dropped(struct mg_cluster *c, void *arg)
{
	const struct mg_layers *gone = arg;
	int ret;

	for (uint32_t i = 0; i < gone->n; i++) {
		ret = mg_store_delete_layer(c->st, gone->v[i].inode);
		if (ret) {
			return ret;
		}
	}
	return 0;
}

/* Drop collected layers from the table and the map (one publish). */
static void mg_layers_gc(struct mg_cluster *c)
{
	struct mg_layers old, gone = {0};
	char reason[96];
	int ret;

	for (uint32_t i = 0; i < c->layers.n; i++) {
		const struct mg_layer *l = &c->layers.v[i];

		if (l->state == CMAP_LAYER_DELETING && l->deleting_epoch &&
		    l->deleting_epoch <= c->meta.epoch &&
		    reactor_now_ns() - l->deleting_ns >=
			    (uint64_t)c->cfg->layer_drop_grace_s * 1000000000ull &&
		    mg_layer_collected(c, l) && mg_layer_add(&gone, l)) {
			break;
		}
	}
	if (!gone.n) {
		return;
	}
	if (mg_layers_copy(&old, &c->layers)) {
		mg_layers_free(&gone);
		return;
	}
	for (uint32_t i = 0; i < gone.n; i++) {
		mg_layer_remove(&c->layers, gone.v[i].inode);
	}
	snprintf(reason, sizeof(reason), "%u deleted layer%s freed on every server", gone.n,
		 gone.n == 1 ? "" : "s");
	ret = mg_cluster_publish(c, NULL, reason, mg_save_dropped, &gone);
	if (ret) {
		mg_layers_free(&c->layers);
		c->layers = old;
	} else {
		mg_layers_free(&old);
		for (uint32_t i = 0; i < gone.n; i++) {
			log_info("layer %#" PRIx64 " freed on every server", gone.v[i].inode);
		}
	}
	mg_layers_free(&gone);
}

int mg_layer_usage_report(struct mg_cluster *c, struct mg_peer *p,
			  const struct Keel__UsageReport *r, char *err, size_t errlen)
{
	struct mg_server *s;
	struct mg_usage *u = NULL;
	struct mg_merge_rep *mr = NULL;
	size_t n = r->n_layers;

	if (!p->server_id || p->server_id != r->server_id) {
		snprintf(err, errlen, "usage report from a connection not registered as server %u",
			 r->server_id);
		return -EPERM;
	}
	s = mg_cluster_server(c, p->server_id);
	if (!s) {
		snprintf(err, errlen, "unknown server %u", r->server_id);
		return -EPERM;
	}
	if (n > MG_USAGE_MAX || (n && !r->layers)) {
		snprintf(err, errlen, "%zu layers in a usage report (max %u)", n, MG_USAGE_MAX);
		return -EINVAL;
	}
	if (n) {
		u = malloc(n * sizeof(*u));
		if (!u) {
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!r->layers[i] || !r->layers[i]->inode) {
			free(u);
			snprintf(err, errlen, "usage report: layer %zu has no inode", i);
			return -EINVAL;
		}
		u[i].inode = r->layers[i]->inode;
		u[i].objects = r->layers[i]->objects;
		u[i].bytes = r->layers[i]->bytes;
	}
	if (n > 1) {
		qsort(u, n, sizeof(*u), cmp_usage);
	}
	if (r->n_merges > MG_USAGE_MAX || (r->n_merges && !r->merges)) {
		free(u);
		snprintf(err, errlen, "%zu merges in a usage report", r->n_merges);
		return -EINVAL;
	}
	if (r->n_merges) {
		mr = calloc(r->n_merges, sizeof(*mr));
		if (!mr) {
			free(u);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < r->n_merges; i++) {
		const Keel__MergeProgress *g = r->merges[i];

		if (!g || !g->layer || !g->into) {
			free(u);
			free(mr);
			snprintf(err, errlen, "usage report: merge %zu is malformed", i);
			return -EINVAL;
		}
		mr[i] = (struct mg_merge_rep){.layer = g->layer,
					      .into = g->into,
					      .done = g->objects_done,
					      .total = g->objects_total > g->objects_done
							       ? g->objects_total
							       : g->objects_done,
					      .complete = g->done};
	}
	/* Reports of an older map than one already taken are stale. */
	if (r->epoch < s->usage_epoch) {
		free(u);
		free(mr);
		return 0;
	}
	free(s->usage);
	s->usage = u;
	s->nusage = (uint32_t)n;
	free(s->merges);
	s->merges = mr;
	s->nmerges = (uint32_t)r->n_merges;
	s->usage_epoch = r->epoch;
	mg_layers_sum(c);
	mg_layers_gc(c);
	mg_merge_check(c);
	return 0;
}

/* Plan merges on the table as it is (after a load, or a change whose own
 * planning could not publish) and publish them. */
static void mg_merge_replan(struct mg_cluster *c)
{
	struct mg_layers old;

	if (mg_layers_copy(&old, &c->layers)) {
		return;
	}
	if (!mg_merge_plan(&c->layers, mg_merge_family_pool, c, c->meta.epoch + 1)) {
		mg_layers_free(&old);
		c->merge_replan = false;
		return;
	}
	if (mg_cluster_publish(c, NULL, "merges of deleted snapshots", NULL, NULL)) {
		mg_layers_free(&c->layers);
		c->layers = old;
		return;
	}
	mg_layers_free(&old);
	c->merge_replan = false;
	mg_merge_jobs_sync(c, "the layers changed");
}

void mg_layers_tick(struct mg_cluster *c)
{
	mg_fence_check(c);
	if (++c->layers_gc_ticks >= 10) { /* once a second: the grace may have run out */
		c->layers_gc_ticks = 0;
		mg_layers_gc(c);
		if (c->merge_replan && c->map && !c->stopping) {
			mg_merge_replan(c);
		}
	}
}
