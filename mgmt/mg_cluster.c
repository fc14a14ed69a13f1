/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_cluster: loading the state, building and publishing maps, pools.
 * Membership events are in mg_member.c, connections in mg_cport.c.
 */
#include "mgmt/mg_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "mgmt/mg_metrics.h"
#include "mgmt/mg_space.h"

int64_t mg_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct mg_server *mg_cluster_server(struct mg_cluster *c, uint32_t id)
{
	uint32_t lo = 0, hi = c->nservers;

	/* c->servers is in ascending id order. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->servers[mid].rec.id == id) {
			return &c->servers[mid];
		}
		if (c->servers[mid].rec.id < id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return NULL;
}

struct mg_pool *mg_cluster_pool(struct mg_cluster *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->npools; i++) {
		if (c->pools[i].rec.id == id) {
			return &c->pools[i];
		}
	}
	return NULL;
}

struct mg_pool *mg_cluster_pool_by_name(struct mg_cluster *c, const char *name)
{
	for (uint32_t i = 0; i < c->npools; i++) {
		if (!strcmp(c->pools[i].rec.name, name)) {
			return &c->pools[i];
		}
	}
	return NULL;
}

/* ---- building a map ---- */

static void mg_split_tags(const char *tags, struct cmap_server *cs)
{
	const char *p = tags;

	cs->ntags = 0;
	while (*p && cs->ntags < CMAP_MAX_TAGS) {
		size_t n = strcspn(p, ",");

		if (n && n < CMAP_NAME_LEN) {
			memcpy(cs->tags[cs->ntags], p, n);
			cs->tags[cs->ntags][n] = '\0';
			cs->ntags++;
		}
		p += n;
		if (*p == ',') {
			p++;
		}
	}
}

static int mg_map_add_members(struct mg_cluster *c, struct cmap *m)
{
	int ret;

	for (uint32_t i = 0; i < c->nservers; i++) {
		const struct mg_server *s = &c->servers[i];
		struct cmap_server cs;

		memset(&cs, 0, sizeof(cs));
		cs.id = s->rec.id;
		snprintf(cs.addr, sizeof(cs.addr), "%s", s->rec.addr);
		snprintf(cs.host, sizeof(cs.host), "%s", s->rec.host);
		snprintf(cs.rack, sizeof(cs.rack), "%s", s->rec.rack);
		cs.weight = s->rec.weight ? s->rec.weight : 1;
		cs.up = s->up;
		cs.in = s->rec.in;
		mg_split_tags(s->rec.tags, &cs);
		ret = cmap_add_server(m, &cs);
		if (ret) {
			log_error("map: cannot add server %u: %s", cs.id, strerror(-ret));
			return ret;
		}
	}
	for (uint32_t i = 0; i < c->npools; i++) {
		const struct mg_pool_rec *p = &c->pools[i].rec;
		struct cmap_pool cp;

		memset(&cp, 0, sizeof(cp));
		cp.id = p->id;
		snprintf(cp.name, sizeof(cp.name), "%s", p->name);
		cp.replicas = p->replicas;
		cp.min_replicas = p->min_replicas;
		cp.failure_domain = (enum cmap_fd)p->failure_domain;
		cp.pg_count = p->pg_count;
		snprintf(cp.tag, sizeof(cp.tag), "%s", p->tag);
		cp.full = c->pools[i].full;
		ret = cmap_add_pool(m, &cp);
		if (ret) {
			log_error("map: cannot add pool %u: %s", cp.id, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static struct cmap_pool *mg_map_pool(struct cmap *m, uint32_t id)
{
	for (uint32_t i = 0; i < m->npools; i++) {
		if (m->pools[i].id == id) {
			return &m->pools[i];
		}
	}
	return NULL;
}

static bool mg_pg_same_shape(const struct cmap_pg *a, const struct cmap_pg *b)
{
	return a->nmembers == b->nmembers && a->primary == b->primary &&
	       !memcmp(a->members, b->members, a->nmembers * sizeof(a->members[0]));
}

/*
 * Where there can be no data there is nothing to recover: every member is
 * in sync, as cmap_update_pgs(m, NULL) does for a brand-new cluster. That
 * holds per pool (a pool that never held a volume, so a pool created after
 * the first volume is not born inactive) and per PG (one that never had a
 * member: volumes created before any server joined). The interval moves
 * only when members or primary really changed.
 */
static int mg_map_fresh_where_no_data(struct mg_cluster *c, struct cmap *m, const struct cmap *base)
{
	struct cmap *fresh = NULL;

	for (uint32_t i = 0; i < c->npools; i++) {
		const struct mg_pool_rec *pr = &c->pools[i].rec;
		struct cmap_pool *mp, *fp;

		if (!fresh) {
			fresh = cmap_dup(m);
			if (!fresh) {
				return -ENOMEM;
			}
			cmap_update_pgs(fresh, NULL);
		}
		mp = mg_map_pool(m, pr->id);
		fp = mg_map_pool(fresh, pr->id);
		kassert(mp && fp);
		for (uint32_t pg = 0; pg < mp->pg_count; pg++) {
			const struct cmap_pg *old = base ? cmap_pg(base, pr->id, pg) : NULL;

			if (pr->has_data && old && old->nmembers) {
				continue;
			}
			mp->pgs[pg] = fp->pgs[pg];
			mp->pgs[pg].interval = old && mg_pg_same_shape(old, &fp->pgs[pg])
						       ? old->interval
						       : m->epoch;
		}
	}
	cmap_free(fresh);
	return 0;
}

static struct cmap *mg_map_build(struct mg_cluster *c, const struct cmap *base)
{
	struct cmap *m;

	m = cmap_new(c->meta.epoch + 1);
	if (!m) {
		return NULL;
	}
	m->full_fail = c->cfg->full_policy == MG_FULL_FAIL;
	if (mg_map_add_members(c, m)) {
		goto out_free;
	}
	cmap_place(m);
	cmap_update_pgs(m, base);
	if (mg_map_fresh_where_no_data(c, m, base) || mg_layers_to_map(&c->layers, m) ||
	    mg_attach_fences_to_map(c, m)) {
		goto out_free;
	}
	return m;

out_free:
	cmap_free(m);
	return NULL;
}

/* Inside a transaction: every server row, the PGs that differ from the
 * published map, and the epoch. */
static int mg_map_save(struct mg_cluster *c, const struct cmap *m)
{
	struct mg_meta meta = c->meta;
	int ret;

	for (uint32_t i = 0; i < c->nservers; i++) {
		ret = mg_store_put_server(c->st, &c->servers[i].rec);
		if (ret) {
			return ret;
		}
	}
	for (uint32_t i = 0; i < m->npools; i++) {
		const struct cmap_pool *p = &m->pools[i];

		for (uint32_t pg = 0; pg < p->pg_count; pg++) {
			const struct cmap_pg *n = &p->pgs[pg];
			const struct cmap_pg *o = c->map ? cmap_pg(c->map, p->id, pg) : NULL;
			struct mg_pg_rec r;

			if (o && mg_pg_same_shape(o, n) && o->in_sync == n->in_sync &&
			    o->interval == n->interval) {
				continue;
			}
			memset(&r, 0, sizeof(r));
			r.pool = p->id;
			r.pg = pg;
			r.nmembers = n->nmembers;
			memcpy(r.members, n->members, sizeof(r.members));
			r.primary = n->primary;
			r.in_sync = n->in_sync;
			r.interval = n->interval;
			ret = mg_store_put_pg(c->st, &r);
			if (ret) {
				return ret;
			}
		}
	}
	meta.epoch = m->epoch;
	return mg_store_put_meta(c->st, &meta);
}

static void mg_map_install(struct mg_cluster *c, struct cmap *m, const char *reason,
			   uint64_t build_ns, uint64_t store_ns)
{
	struct mg_blob *blob = mg_blob_pack(m);
	uint32_t moved = 0, inactive = 0;

	for (uint32_t i = 0; i < m->npools; i++) {
		for (uint32_t pg = 0; pg < m->pools[i].pg_count; pg++) {
			const struct cmap_pg *n = &m->pools[i].pgs[pg];

			moved += n->interval == m->epoch;
			inactive += !n->primary;
		}
	}
	log_info("epoch %llu: %s (%u PGs new interval, %u inactive; built in %.1f ms, "
		 "stored in %.1f ms)",
		 (unsigned long long)m->epoch, reason, moved, inactive, (double)build_ns / 1e6,
		 (double)store_ns / 1e6);
	cmap_free(c->map);
	c->map = m;
	c->meta.epoch = m->epoch;
	if (blob) {
		mg_blob_put(c->map_blob);
		c->map_blob = blob;
	} else {
		/* Peers get this epoch with the next one that packs. */
		log_error("epoch %llu: cannot pack the map for pushes: out of memory",
			  (unsigned long long)m->epoch);
	}
	mg_cport_push_all(c);
}

int mg_cluster_publish(struct mg_cluster *c, const struct cmap *base, const char *reason,
		       int (*save)(struct mg_cluster *c, void *arg), void *arg)
{
	uint64_t t0 = reactor_now_ns(), t1;
	struct cmap *m;
	int ret;

	m = mg_map_build(c, base ? base : c->map);
	t1 = reactor_now_ns();
	if (!m) {
		log_error("epoch %llu (%s): cannot build the map",
			  (unsigned long long)(c->meta.epoch + 1), reason);
		c->dirty = true;
		return -ENOMEM;
	}
	ret = mg_store_begin(c->st);
	if (ret) {
		goto out_free;
	}
	/* The caller's rows first: PG rows refer to pools. */
	if (save) {
		ret = save(c, arg);
	}
	if (!ret) {
		ret = mg_map_save(c, m);
	}
	if (ret) {
		mg_store_rollback(c->st);
		goto out_free;
	}
	ret = mg_store_commit(c->st);
	if (ret) {
		goto out_free;
	}
	c->dirty = false;
	mg_map_install(c, m, reason, t1 - t0, reactor_now_ns() - t1);
	return 0;

out_free:
	log_error("epoch %llu (%s): not published: %s", (unsigned long long)m->epoch, reason,
		  strerror(-ret));
	/* Membership the caller already changed in memory is retried by the
	 * tick; a caller that undid its change makes the retry a no-op epoch. */
	c->dirty = true;
	cmap_free(m);
	return ret;
}

/* ---- pools ---- */

static int mg_pool_alloc_stats(struct mg_pool *p)
{
	p->stats = calloc(p->rec.pg_count, sizeof(*p->stats));
	return p->stats ? 0 : -ENOMEM;
}

static int mg_save_new_pool(struct mg_cluster *c, void *arg)
{
	return mg_store_put_pool(c->st, &c->pools[c->npools - 1].rec);
}

int mg_cluster_add_pool(struct mg_cluster *c, const struct mg_pool_rec *rec,
			const struct mg_pool **out)
{
	struct mg_pool *p;
	char reason[128];
	int ret;

	if (mg_cluster_pool_by_name(c, rec->name)) {
		return -EEXIST;
	}
	if (c->npools == MG_MAX_POOLS || c->meta.next_pool_id > 4095) {
		return -ENOSPC;
	}
	p = &c->pools[c->npools];
	memset(p, 0, sizeof(*p));
	p->rec = *rec;
	p->rec.id = c->meta.next_pool_id++; /* written by mg_map_save() */
	p->rec.has_data = false;
	ret = mg_pool_alloc_stats(p);
	if (ret) {
		return ret;
	}
	c->npools++;
	snprintf(reason, sizeof(reason), "pool %u '%s' created", p->rec.id, p->rec.name);
	ret = mg_cluster_publish(c, NULL, reason, mg_save_new_pool, NULL);
	if (ret) {
		c->meta.next_pool_id--;
		c->npools--;
		free(p->stats);
		p->stats = NULL;
		return ret;
	}
	*out = p;
	return 0;
}

/* ---- PG state ---- */

const char *mg_pg_state(const struct mg_cluster *c, const struct mg_pool *pool,
			const struct cmap_pg *pg)
{
	const struct mg_pg_stat *st = &pool->stats[pg->pg];

	if (!pg->primary) {
		return "inactive";
	}
	if (st->interval == pg->interval && !strcmp(st->state, "peering")) {
		return "peering";
	}
	for (uint32_t i = 0; i < pg->nmembers; i++) {
		const struct cmap_server *s = cmap_server(c->map, pg->members[i]);

		if (s && s->up && !(pg->in_sync & (1u << i))) {
			return "recovering";
		}
	}
	if (cmap_pg_up_count(c->map, pg, true) < pool->rec.replicas) {
		return "degraded";
	}
	return "active";
}

void mg_pg_counts(const struct mg_cluster *c, struct mg_pg_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (uint32_t i = 0; i < c->npools; i++) {
		const struct mg_pool *pool = &c->pools[i];
		const struct cmap_pool *mp = cmap_pool(c->map, pool->rec.id);

		if (!mp) {
			continue;
		}
		for (uint32_t pg = 0; pg < mp->pg_count; pg++) {
			const struct cmap_pg *p = &mp->pgs[pg];
			const struct mg_pg_stat *st = &pool->stats[pg];
			const char *state = mg_pg_state(c, pool, p);

			out->total++;
			if (!strcmp(state, "active")) {
				out->active++;
			} else if (!strcmp(state, "degraded")) {
				out->degraded++;
			} else if (!strcmp(state, "recovering")) {
				out->recovering++;
			} else if (!strcmp(state, "peering")) {
				out->peering++;
			} else {
				out->inactive++;
			}
			if (st->interval == p->interval) {
				out->objects_left += st->objects_left;
				out->bytes_left += st->bytes_left;
				out->bytes_copied += st->bytes_copied;
			}
		}
	}
}

int mg_cluster_health(struct mg_cluster *c, struct mg_pg_counts *n)
{
	bool nearfull = false, full = false;
	uint32_t down = 0;

	mg_pg_counts(c, n);
	for (uint32_t i = 0; i < c->nservers; i++) {
		down += !c->servers[i].up;
		nearfull |= c->servers[i].nearfull;
	}
	for (uint32_t i = 0; i < c->npools; i++) {
		full |= c->pools[i].full;
	}
	if (n->inactive || full) {
		return 2;
	}
	if (n->degraded || n->recovering || n->peering || down || nearfull) {
		return 1;
	}
	return 0;
}

/* ---- loading ---- */

static int mg_load_server(void *arg, const struct mg_server_rec *r)
{
	struct mg_cluster *c = arg;
	struct mg_server *s;

	if (c->nservers == c->servers_cap) {
		uint32_t cap = c->servers_cap ? c->servers_cap * 2 : 16;
		struct mg_server *n = realloc(c->servers, cap * sizeof(*n));

		if (!n) {
			return -ENOMEM;
		}
		c->servers = n;
		c->servers_cap = cap;
	}
	s = &c->servers[c->nservers++];
	memset(s, 0, sizeof(*s));
	s->rec = *r;
	s->up = r->down_since_ms == 0;
	/* Grace: a server up before the restart gets one heartbeat timeout to
	 * reconnect before it is declared down. */
	s->last_hb_ns = reactor_now_ns();
	return 0;
}

static int mg_load_pool(void *arg, const struct mg_pool_rec *r)
{
	struct mg_cluster *c = arg;
	struct mg_pool *p;

	if (c->npools == MG_MAX_POOLS) {
		log_error("database holds more than %d pools", MG_MAX_POOLS);
		return -EIO;
	}
	p = &c->pools[c->npools];
	memset(p, 0, sizeof(*p));
	p->rec = *r;
	if (mg_pool_alloc_stats(p)) {
		return -ENOMEM;
	}
	c->npools++;
	return 0;
}

static int mg_load_pg(void *arg, const struct mg_pg_rec *r)
{
	struct cmap *m = arg;
	struct cmap_pool *p = mg_map_pool(m, r->pool);
	struct cmap_pg *pg;

	if (!p || r->pg >= p->pg_count) {
		log_warn("database: ignoring PG %u.%u of no pool", r->pool, r->pg);
		return 0;
	}
	pg = &p->pgs[r->pg];
	pg->pool = r->pool;
	pg->pg = r->pg;
	pg->nmembers = r->nmembers;
	memcpy(pg->members, r->members, sizeof(pg->members));
	pg->primary = r->primary;
	pg->in_sync = r->in_sync;
	pg->interval = r->interval;
	return 0;
}

static int mg_save_default_pool(struct mg_cluster *c, void *arg)
{
	return mg_store_put_pool(c->st, &c->pools[0].rec);
}

static int mg_create_default_pool(struct mg_cluster *c)
{
	struct mg_pool *p = &c->pools[0];
	int ret;

	memset(p, 0, sizeof(*p));
	p->rec.id = 1;
	snprintf(p->rec.name, sizeof(p->rec.name), "default");
	p->rec.replicas = c->cfg->default_replicas;
	p->rec.min_replicas = c->cfg->default_min_replicas;
	p->rec.failure_domain = c->cfg->default_failure_domain;
	p->rec.pg_count = c->cfg->default_pg_count;
	ret = mg_pool_alloc_stats(p);
	if (ret) {
		return ret;
	}
	c->npools = 1;
	c->meta.next_pool_id = 2;
	return mg_cluster_publish(c, NULL, "new cluster, pool 1 'default' created",
				  mg_save_default_pool, NULL);
}

static void mg_tick_fn(struct reactor_timer *t)
{
	struct mg_cluster *c = container_of(t, struct mg_cluster, tick);

	mg_member_tick(c);
	mg_cport_check_auth(c);
	mg_layers_tick(c);
	mg_space_tick(c);
	mg_attach_fences_tick(c);
	if (c->on_tick) {
		c->on_tick(c);
	}
	if (!c->tick_stopped) {
		reactor_timer_start(c->r, &c->tick, MG_TICK_NS, mg_tick_fn);
	}
}

int mg_cluster_open(struct mg_cluster *c, struct reactor *r, struct mg_store *st,
		    const struct mg_settings *cfg, const struct kp_key *key)
{
	struct cmap *m;
	int ret;

	memset(c, 0, sizeof(*c));
	c->r = r;
	c->st = st;
	c->cfg = cfg;
	c->key = key;
	c->next_req_id = 1ull << 62; /* mgmt-originated requests: never 0 */
	ret = mg_store_get_meta(st, &c->meta);
	if (ret) {
		return ret;
	}
	ret = mg_store_each_server(st, mg_load_server, c);
	if (ret) {
		goto out_close;
	}
	ret = mg_store_each_pool(st, mg_load_pool, c);
	if (ret) {
		goto out_close;
	}
	ret = mg_layers_load(c);
	if (!ret) {
		ret = mg_attach_fences_load(c);
	}
	if (ret) {
		goto out_close;
	}
	for (uint32_t i = 0; i < c->layers.n; i++) {
		c->layers.v[i].deleting_epoch = c->meta.epoch;
		c->layers.v[i].deleting_ns = reactor_now_ns();
	}
	c->merge_replan = true; /* merges are not stored: found again */
	if (!c->npools) {
		ret = mg_create_default_pool(c);
		if (ret) {
			goto out_close;
		}
	} else {
		m = cmap_new(c->meta.epoch);
		if (!m) {
			ret = -ENOMEM;
			goto out_close;
		}
		ret = mg_map_add_members(c, m);
		if (!ret) {
			ret = mg_store_each_pg(st, mg_load_pg, m);
		}
		if (!ret) {
			ret = mg_layers_to_map(&c->layers, m);
		}
		if (!ret) {
			ret = mg_attach_fences_to_map(c, m);
		}
		if (ret) {
			cmap_free(m);
			goto out_close;
		}
		m->full_fail = cfg->full_policy == MG_FULL_FAIL;
		c->map = m;
		c->map_blob = mg_blob_pack(m);
		log_info("loaded epoch %llu: %u servers, %u pools",
			 (unsigned long long)c->meta.epoch, c->nservers, c->npools);
	}
	reactor_timer_start(r, &c->tick, MG_TICK_NS, mg_tick_fn);
	return 0;

out_close:
	mg_cluster_close(c);
	return ret;
}

void mg_cluster_close(struct mg_cluster *c)
{
	for (uint32_t i = 0; i < c->npools; i++) {
		free(c->pools[i].stats);
		c->pools[i].stats = NULL;
	}
	c->npools = 0;
	for (uint32_t i = 0; i < c->nservers; i++) {
		free(c->servers[i].usage);
		free(c->servers[i].merges);
	}
	free(c->servers);
	c->servers = NULL;
	free(c->afences);
	c->afences = NULL;
	c->nafences = c->afences_cap = 0;
	c->nservers = 0;
	mg_layers_free(&c->layers);
	mg_jobs_free(&c->jobs);
	while (c->fences) {
		struct mg_fence *f = c->fences;

		c->fences = f->next;
		f->cb(c, f->arg, -ESHUTDOWN);
		free(f);
	}
	cmap_free(c->map);
	c->map = NULL;
	mg_blob_put(c->map_blob);
	c->map_blob = NULL;
	mg_metrics_free(c);
}
