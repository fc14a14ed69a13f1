/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_space: thin-provisioning accounting and the full state of pools
 * (docs/volumes.md "Space", docs/operations.md "When the cluster fills").
 *
 * Accounting is computed when asked (REST, /metrics), from what mgmt
 * already holds: volume sizes from the store (provisioned), the servers'
 * MG_USAGE reports per layer (allocated: blocks mapped, divided by the
 * pool's replicas) and their heartbeats (raw object space used). A layer
 * belongs to the pool of its family: every volume of a family (the
 * original and its clones) lives in one pool.
 *
 * Full state: every tick, a pool is full while an up, in server that
 * holds one of its PGs is at or past full_percent of its object space
 * (and it stays full until that server is below full_percent - 1, so a
 * server hovering at the line does not make an epoch a heartbeat). A
 * change publishes a map: primaries then refuse client writes that need a
 * new object with ENOSPC, and clients wait or fail by full_policy
 * (ClusterMap.full_fail).
 */
#include "mgmt/mg_space.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mgmt/mg_settings.h"

unsigned int mg_server_fill_percent(const struct mg_server *s)
{
	if (!s->rec.capacity_bytes) {
		return 0;
	}
	return (unsigned int)((s->rec.used_bytes * 100 + s->rec.capacity_bytes - 1) /
			      s->rec.capacity_bytes);
}

/* The servers holding PGs of @pool in the published map, as a bitmap over
 * c->servers indexes. */
static void mg_pool_members(struct mg_cluster *c, uint32_t pool, uint8_t *is_member)
{
	const struct cmap_pool *mp = c->map ? cmap_pool(c->map, pool) : NULL;

	memset(is_member, 0, c->nservers);
	if (!mp) {
		return;
	}
	for (uint32_t pg = 0; pg < mp->pg_count; pg++) {
		const struct cmap_pg *g = &mp->pgs[pg];

		for (uint32_t k = 0; k < g->nmembers; k++) {
			const struct mg_server *s = mg_cluster_server(c, g->members[k]);

			if (s) {
				is_member[s - c->servers] = 1;
			}
		}
	}
}

/* ---- accounting ---- */

struct mg_family_pool {
	uint64_t family;
	uint32_t pool;
};

struct mg_space_walk {
	struct mg_cluster *c;
	struct mg_space *pools;
	struct mg_space *total;
	struct mg_family_pool *fam;
	size_t nfam, capfam;
};

static int mg_space_pool_index(const struct mg_cluster *c, uint32_t pool)
{
	for (uint32_t i = 0; i < c->npools; i++) {
		if (c->pools[i].rec.id == pool) {
			return (int)i;
		}
	}
	return -1;
}

static int mg_space_volume(void *arg, const struct mg_volume_rec *v)
{
	struct mg_space_walk *w = arg;
	int pi = mg_space_pool_index(w->c, v->pool);

	w->total->provisioned += v->size;
	w->total->volumes++;
	if (pi >= 0) {
		w->pools[pi].provisioned += v->size;
		w->pools[pi].volumes++;
	}
	if (w->nfam == w->capfam) {
		size_t cap = w->capfam ? w->capfam * 2 : 64;
		struct mg_family_pool *n = realloc(w->fam, cap * sizeof(*n));

		if (!n) {
			return -ENOMEM;
		}
		w->fam = n;
		w->capfam = cap;
	}
	w->fam[w->nfam++] = (struct mg_family_pool){v->top >> 16, v->pool};
	return 0;
}

static int mg_family_cmp(const void *a, const void *b)
{
	const struct mg_family_pool *x = a, *y = b;

	return x->family < y->family ? -1 : x->family > y->family;
}

int mg_space_collect(struct mg_cluster *c, struct mg_space *pools, struct mg_space *total)
{
	struct mg_space_walk w = {.c = c, .pools = pools, .total = total};
	uint8_t *is_member = NULL;
	int ret;

	memset(pools, 0, c->npools * sizeof(*pools));
	memset(total, 0, sizeof(*total));
	ret = mg_store_each_volume(c->st, mg_space_volume, &w);
	if (ret) {
		goto out;
	}
	if (w.nfam) {
		qsort(w.fam, w.nfam, sizeof(*w.fam), mg_family_cmp);
	}
	for (uint32_t i = 0; i < c->layers.n; i++) {
		const struct mg_layer *l = &c->layers.v[i];
		struct mg_family_pool key = {.family = l->inode >> 16};
		const struct mg_family_pool *f =
			w.nfam ? bsearch(&key, w.fam, w.nfam, sizeof(*w.fam), mg_family_cmp) : NULL;
		int pi = f ? mg_space_pool_index(c, f->pool) : -1;
		uint32_t replicas =
			pi >= 0 && c->pools[pi].rec.replicas ? c->pools[pi].rec.replicas : 1;
		uint64_t bytes = l->bytes / replicas;

		if (l->state == CMAP_LAYER_DELETING || pi < 0) {
			/* A deleted volume's layers: still on the drives until GC. */
			total->deleting += l->bytes;
			if (pi >= 0) {
				pools[pi].deleting += l->bytes;
			}
			continue;
		}
		total->allocated += bytes;
		pools[pi].allocated += bytes;
		if (l->state == CMAP_LAYER_RO) {
			total->snapshots += bytes;
			pools[pi].snapshots += bytes;
		}
	}
	for (uint32_t i = 0; i < c->nservers; i++) {
		const struct mg_server *s = &c->servers[i];

		if (!s->rec.in) {
			continue;
		}
		total->raw_capacity += s->rec.capacity_bytes;
		total->raw_used += s->rec.used_bytes;
	}
	is_member = c->nservers ? malloc(c->nservers) : NULL;
	if (c->nservers && !is_member) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t p = 0; p < c->npools && c->nservers; p++) {
		mg_pool_members(c, c->pools[p].rec.id, is_member);
		for (uint32_t i = 0; i < c->nservers; i++) {
			if (is_member[i]) {
				pools[p].raw_capacity += c->servers[i].rec.capacity_bytes;
				pools[p].raw_used += c->servers[i].rec.used_bytes;
			}
		}
		if (c->pools[p].rec.replicas) {
			pools[p].usable = pools[p].raw_capacity / c->pools[p].rec.replicas;
		}
	}
	/* Cluster-wide usable space as if every pool had the default pool's
	 * replicas would be a guess; the sum of the pools' is what volumes can
	 * use if pools do not share servers, an upper bound otherwise. */
	for (uint32_t p = 0; p < c->npools; p++) {
		total->usable += pools[p].usable;
	}
out:
	free(is_member);
	free(w.fam);
	return ret;
}

int mg_space_admit(struct mg_cluster *c, uint32_t pool_id, uint64_t more, char *err, size_t errlen)
{
	const struct mg_pool *pool = mg_cluster_pool(c, pool_id);
	struct mg_space *sp, total;
	uint64_t limit, after;
	int pi, ret;

	if (!pool || !pool->rec.max_overcommit_pct || !more) {
		return 0;
	}
	sp = calloc(MG_MAX_POOLS, sizeof(*sp));
	if (!sp) {
		return -ENOMEM;
	}
	ret = mg_space_collect(c, sp, &total);
	pi = (int)(pool - c->pools);
	if (!ret) {
		limit = sp[pi].usable / 100 * pool->rec.max_overcommit_pct;
		after = sp[pi].provisioned + more;
		if (after > limit) {
			snprintf(err, errlen,
				 "pool '%s' would be overcommitted: its volumes would provision "
				 "%llu "
				 "bytes, over its limit of %u%% of %llu usable bytes (%llu); add "
				 "servers, delete volumes or raise max_overcommit_percent",
				 pool->rec.name, (unsigned long long)after,
				 pool->rec.max_overcommit_pct, (unsigned long long)sp[pi].usable,
				 (unsigned long long)limit);
			ret = -ENOSPC;
		}
	}
	free(sp);
	return ret;
}

json_t *mg_space_json(const struct mg_space *s)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "volumes", (json_int_t)s->volumes,
			 "provisioned_bytes", (json_int_t)s->provisioned, "allocated_bytes",
			 (json_int_t)s->allocated, "snapshot_bytes", (json_int_t)s->snapshots,
			 "deleting_raw_bytes", (json_int_t)s->deleting, "raw_capacity_bytes",
			 (json_int_t)s->raw_capacity, "raw_used_bytes", (json_int_t)s->raw_used,
			 "usable_bytes", (json_int_t)s->usable);
}

/* ---- full state ---- */

void mg_space_tick(struct mg_cluster *c)
{
	uint8_t *is_member;
	char reason[256];
	size_t off = 0;
	bool changed = false;

	if (!c->map || !c->nservers) {
		return;
	}
	/* Nearfull is a health check only; log each crossing once. */
	for (uint32_t i = 0; i < c->nservers; i++) {
		struct mg_server *s = &c->servers[i];
		unsigned int fill = mg_server_fill_percent(s);
		bool near = s->up && fill >= c->cfg->nearfull_percent;

		if (near != s->nearfull) {
			if (near) {
				log_warn("server %u (%s) is %u%% full (nearfull_percent %u)",
					 s->rec.id, s->rec.addr, fill, c->cfg->nearfull_percent);
			} else {
				log_info("server %u (%s) is %u%% full: no longer nearfull",
					 s->rec.id, s->rec.addr, fill);
			}
			s->nearfull = near;
		}
	}
	is_member = malloc(c->nservers);
	if (!is_member) {
		return;
	}
	reason[0] = '\0';
	for (uint32_t p = 0; p < c->npools; p++) {
		struct mg_pool *pool = &c->pools[p];
		unsigned int worst = 0;
		uint32_t worst_id = 0;
		bool full;

		mg_pool_members(c, pool->rec.id, is_member);
		for (uint32_t i = 0; i < c->nservers; i++) {
			const struct mg_server *s = &c->servers[i];
			unsigned int fill = mg_server_fill_percent(s);

			if (is_member[i] && s->up && s->rec.in && fill >= worst) {
				worst = fill;
				worst_id = s->rec.id;
			}
		}
		full = worst >= c->cfg->full_percent ||
		       (pool->full && worst + 1 >= c->cfg->full_percent);
		if (full == pool->full) {
			continue;
		}
		pool->full = full;
		changed = true;
		if (full) {
			log_error("pool '%s' is full: server %u is %u%% full (full_percent %u); "
				  "writes needing new space %s",
				  pool->rec.name, worst_id, worst, c->cfg->full_percent,
				  c->cfg->full_policy == MG_FULL_FAIL ? "fail with ENOSPC"
								      : "wait");
		} else {
			log_info("pool '%s' is no longer full (fullest server %u%%)",
				 pool->rec.name, worst);
		}
		if (off < sizeof(reason)) {
			int n = snprintf(reason + off, sizeof(reason) - off, "%spool '%s' %s",
					 off ? ", " : "", pool->rec.name,
					 full ? "full" : "not full");

			off += n > 0 ? (size_t)n : 0;
		}
	}
	free(is_member);
	if (changed) {
		mg_cluster_publish(c, NULL, reason, NULL, NULL);
	}
}

void mg_space_checks(struct mg_cluster *c, void (*add)(void *arg, bool error, const char *text),
		     void *arg)
{
	char buf[256];

	for (uint32_t i = 0; i < c->nservers; i++) {
		const struct mg_server *s = &c->servers[i];

		if (s->nearfull) {
			snprintf(buf, sizeof(buf), "server %u (%s) %u%% full (nearfull_percent %u)",
				 s->rec.id, s->rec.addr, mg_server_fill_percent(s),
				 c->cfg->nearfull_percent);
			add(arg, false, buf);
		}
	}
	for (uint32_t p = 0; p < c->npools; p++) {
		if (c->pools[p].full) {
			snprintf(
				buf, sizeof(buf),
				"pool '%s' full (a server past full_percent %u): writes needing "
				"new space %s; free space by deleting volumes or snapshots, or add "
				"servers",
				c->pools[p].rec.name, c->cfg->full_percent,
				c->cfg->full_policy == MG_FULL_FAIL ? "fail" : "wait");
			add(arg, true, buf);
		}
	}
}
