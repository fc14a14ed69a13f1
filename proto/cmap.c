/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster map: building, placement (weighted HRW), primaries, lookup, wire. */
#include "proto/cmap.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keel.pb-c.h"

#define CMAP_MAX_SERVER_ID 65535u
#define CMAP_MAX_POOL_ID   4095u

/* ---- hashing ---- */

/* splitmix64 finalizer: full avalanche, integer-only, so identical everywhere. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint64_t cmap_hash64(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t h;

	/* Chained so that (a, b, c) and any permutation hash differently. */
	h = mix64(a + 0x9e3779b97f4a7c15ull);
	h = mix64(h ^ (b + 0xc2b2ae3d27d4eb4full));
	h = mix64(h ^ (c + 0x165667b19e3779f9ull));
	return h;
}

uint32_t cmap_object_pg(uint64_t inode, uint64_t objno, uint32_t pg_count)
{
	if (pg_count == 0) {
		return 0;
	}
	return (uint32_t)(cmap_hash64(inode >> 16, objno, 0) % pg_count);
}

/* ---- small helpers ---- */

static bool str_fits(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int server_check(const struct cmap_server *s)
{
	unsigned int i;

	if (s->id == 0 || s->id > CMAP_MAX_SERVER_ID || s->weight == 0 ||
	    s->ntags > CMAP_MAX_TAGS) {
		return -EINVAL;
	}
	if (!str_fits(s->addr, sizeof(s->addr)) || !str_fits(s->host, sizeof(s->host)) ||
	    !str_fits(s->rack, sizeof(s->rack))) {
		return -EINVAL;
	}
	for (i = 0; i < s->ntags; i++) {
		if (!str_fits(s->tags[i], sizeof(s->tags[i]))) {
			return -EINVAL;
		}
	}
	return 0;
}

static int pool_check(const struct cmap_pool *p)
{
	if (p->id == 0 || p->id > CMAP_MAX_POOL_ID) {
		return -EINVAL;
	}
	if (p->replicas == 0 || p->replicas > CMAP_MAX_REPLICAS || p->min_replicas == 0 ||
	    p->min_replicas > p->replicas) {
		return -EINVAL;
	}
	if (p->failure_domain != CMAP_FD_SERVER && p->failure_domain != CMAP_FD_HOST &&
	    p->failure_domain != CMAP_FD_RACK) {
		return -EINVAL;
	}
	if (p->pg_count == 0 || p->pg_count > CMAP_MAX_PGS) {
		return -EINVAL;
	}
	if (!str_fits(p->name, sizeof(p->name)) || !str_fits(p->tag, sizeof(p->tag))) {
		return -EINVAL;
	}
	return 0;
}

static struct cmap_pg *pgs_alloc(uint32_t pool_id, uint32_t pg_count)
{
	struct cmap_pg *pgs;
	uint32_t i;

	pgs = calloc(pg_count, sizeof(*pgs));
	if (!pgs) {
		return NULL;
	}
	for (i = 0; i < pg_count; i++) {
		pgs[i].pool = pool_id;
		pgs[i].pg = i;
	}
	return pgs;
}

/* ---- building and freeing ---- */

struct cmap *cmap_new(uint64_t epoch)
{
	struct cmap *m;

	m = calloc(1, sizeof(*m));
	if (!m) {
		return NULL;
	}
	m->epoch = epoch;
	return m;
}

void cmap_free(struct cmap *m)
{
	uint32_t i;

	if (!m) {
		return;
	}
	for (i = 0; i < m->npools; i++) {
		free(m->pools[i].pgs);
	}
	free(m->pools);
	free(m->servers);
	free(m->layers);
	free(m->fences);
	free(m);
}

struct cmap *cmap_dup(const struct cmap *m)
{
	struct cmap *d;
	uint32_t i;

	d = cmap_new(m->epoch);
	if (!d) {
		return NULL;
	}
	d->full_fail = m->full_fail;
	if (m->nservers) {
		d->servers = malloc(m->nservers * sizeof(*d->servers));
		if (!d->servers) {
			goto out_free;
		}
		memcpy(d->servers, m->servers, m->nservers * sizeof(*d->servers));
		d->nservers = m->nservers;
	}
	if (m->npools) {
		d->pools = calloc(m->npools, sizeof(*d->pools));
		if (!d->pools) {
			goto out_free;
		}
		d->npools = m->npools;
		for (i = 0; i < m->npools; i++) {
			d->pools[i] = m->pools[i];
			d->pools[i].pgs = NULL;
			d->pools[i].pgs = malloc(m->pools[i].pg_count * sizeof(struct cmap_pg));
			if (!d->pools[i].pgs) {
				goto out_free;
			}
			memcpy(d->pools[i].pgs, m->pools[i].pgs,
			       m->pools[i].pg_count * sizeof(struct cmap_pg));
		}
	}
	if (m->nlayers && cmap_set_layers(d, m->layers, m->nlayers)) {
		goto out_free;
	}
	if (m->nfences && cmap_set_fences(d, m->fences, m->nfences)) {
		goto out_free;
	}
	return d;

out_free:
	/* Pools not copied yet have NULL pgs (calloc), which cmap_free() skips. */
	cmap_free(d);
	return NULL;
}

/* A malloc'ed copy of @n entries of @size bytes, sorted by @cmp; NULL on
 * ENOMEM. */
static void *sorted_copy(const void *src, uint32_t n, size_t size,
			 int (*cmp)(const void *, const void *))
{
	void *arr = malloc(n * size);

	if (arr) {
		memcpy(arr, src, n * size);
		qsort(arr, n, size, cmp);
	}
	return arr;
}

static int cmp_layer(const void *a, const void *b)
{
	uint64_t x = ((const struct cmap_layer *)a)->inode;
	uint64_t y = ((const struct cmap_layer *)b)->inode;

	return x < y ? -1 : x > y;
}

int cmap_set_layers(struct cmap *m, const struct cmap_layer *l, uint32_t n)
{
	struct cmap_layer *arr = NULL;
	uint32_t i;

	if (n > CMAP_MAX_LAYERS) {
		return -EINVAL;
	}
	if (n && !(arr = sorted_copy(l, n, sizeof(*arr), cmp_layer))) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (!arr[i].inode ||
		    (arr[i].state != CMAP_LAYER_RO && arr[i].state != CMAP_LAYER_DELETING) ||
		    (i && arr[i].inode == arr[i - 1].inode)) {
			free(arr);
			return -EINVAL;
		}
	}
	for (i = 0; i < n; i++) {
		uint64_t into = arr[i].merge_into;
		struct cmap_layer key = {.inode = into}, *t;

		if (!into) {
			continue;
		}
		t = bsearch(&key, arr, n, sizeof(*arr), cmp_layer);
		if (arr[i].state != CMAP_LAYER_RO || into == arr[i].inode || !arr[i].merge_pool ||
		    arr[i].merge_pool >= 4096 || into >> 16 != arr[i].inode >> 16 ||
		    (t && t->state == CMAP_LAYER_DELETING)) {
			free(arr);
			return -EINVAL;
		}
	}
	free(m->layers);
	m->layers = arr;
	m->nlayers = n;
	return 0;
}

const struct cmap_layer *cmap_layer_find(const struct cmap *m, uint64_t inode)
{
	uint32_t lo = 0, hi = m->nlayers;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (m->layers[mid].inode < inode) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo < m->nlayers && m->layers[lo].inode == inode ? &m->layers[lo] : NULL;
}

uint64_t cmap_layer_merge_into(const struct cmap *m, uint64_t inode)
{
	const struct cmap_layer *l = cmap_layer_find(m, inode);

	return l ? l->merge_into : 0;
}

static int cmp_fence(const void *a, const void *b)
{
	uint64_t x = ((const struct cmap_fence *)a)->inode;
	uint64_t y = ((const struct cmap_fence *)b)->inode;

	return x < y ? -1 : x > y;
}

int cmap_set_fences(struct cmap *m, const struct cmap_fence *f, uint32_t n)
{
	struct cmap_fence *arr = NULL;
	uint32_t i, k;

	if (n > CMAP_MAX_FENCES) {
		return -EINVAL;
	}
	if (n && !(arr = sorted_copy(f, n, sizeof(*arr), cmp_fence))) {
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		bool bad = !arr[i].inode || arr[i].nlive > CMAP_FENCE_LIVE ||
			   (i && arr[i].inode == arr[i - 1].inode);

		for (k = 0; !bad && k < arr[i].nlive; k++) {
			bad = !arr[i].live[k];
		}
		if (bad) {
			free(arr);
			return -EINVAL;
		}
	}
	free(m->fences);
	m->fences = arr;
	m->nfences = n;
	return 0;
}

int cmap_fence_check(const struct cmap *m, uint64_t inode, uint64_t gen)
{
	struct cmap_fence key = {.inode = inode};
	const struct cmap_fence *f;

	if (!gen || !m->nfences) {
		return 0;
	}
	f = bsearch(&key, m->fences, m->nfences, sizeof(*f), cmp_fence);
	if (!f) {
		return 0;
	}
	for (uint32_t k = 0; k < f->nlive; k++) {
		if (f->live[k] == gen) {
			return 0;
		}
	}
	return -EPERM;
}

bool cmap_fences_equal(const struct cmap *a, const struct cmap *b)
{
	uint32_t na = a ? a->nfences : 0, nb = b ? b->nfences : 0;

	if (na != nb) {
		return false;
	}
	for (uint32_t i = 0; i < na; i++) {
		const struct cmap_fence *x = &a->fences[i], *y = &b->fences[i];

		if (x->inode != y->inode || x->nlive != y->nlive ||
		    memcmp(x->live, y->live, x->nlive * sizeof(x->live[0]))) {
			return false;
		}
	}
	return true;
}

enum cmap_layer_state cmap_layer_state(const struct cmap *m, uint64_t inode)
{
	uint32_t lo = 0, hi = m->nlayers;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (m->layers[mid].inode < inode) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	if (lo < m->nlayers && m->layers[lo].inode == inode) {
		return m->layers[lo].state;
	}
	return CMAP_LAYER_WRITABLE;
}

/* First index whose id is >= @id (servers and pools are sorted by id). */
static uint32_t server_lower_bound(const struct cmap *m, uint32_t id)
{
	uint32_t lo = 0, hi = m->nservers;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (m->servers[mid].id < id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static uint32_t pool_lower_bound(const struct cmap *m, uint32_t id)
{
	uint32_t lo = 0, hi = m->npools;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (m->pools[mid].id < id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

int cmap_add_server(struct cmap *m, const struct cmap_server *s)
{
	struct cmap_server *arr;
	uint32_t at;

	if (server_check(s) || m->nservers >= CMAP_MAX_SERVERS) {
		return -EINVAL;
	}
	at = server_lower_bound(m, s->id);
	if (at < m->nservers && m->servers[at].id == s->id) {
		return -EEXIST;
	}
	arr = realloc(m->servers, (m->nservers + 1) * sizeof(*arr));
	if (!arr) {
		return -ENOMEM;
	}
	m->servers = arr;
	memmove(&arr[at + 1], &arr[at], (m->nservers - at) * sizeof(*arr));
	arr[at] = *s;
	/* Unused tag slots are zeroed so that maps compare equal with memcmp. */
	memset(arr[at].tags[s->ntags], 0, (CMAP_MAX_TAGS - s->ntags) * sizeof(arr[at].tags[0]));
	m->nservers++;
	return 0;
}

int cmap_add_pool(struct cmap *m, const struct cmap_pool *p)
{
	struct cmap_pool *arr;
	struct cmap_pg *pgs;
	uint32_t at;

	if (pool_check(p) || m->npools >= CMAP_MAX_POOLS) {
		return -EINVAL;
	}
	at = pool_lower_bound(m, p->id);
	if (at < m->npools && m->pools[at].id == p->id) {
		return -EEXIST;
	}
	pgs = pgs_alloc(p->id, p->pg_count);
	if (!pgs) {
		return -ENOMEM;
	}
	arr = realloc(m->pools, (m->npools + 1) * sizeof(*arr));
	if (!arr) {
		free(pgs);
		return -ENOMEM;
	}
	m->pools = arr;
	memmove(&arr[at + 1], &arr[at], (m->npools - at) * sizeof(*arr));
	arr[at] = *p;
	arr[at].pgs = pgs;
	m->npools++;
	return 0;
}

/* ---- placement ---- */

static bool server_has_tag(const struct cmap_server *s, const char *tag)
{
	unsigned int i;

	if (tag[0] == '\0') {
		return true;
	}
	for (i = 0; i < s->ntags && i < CMAP_MAX_TAGS; i++) {
		if (strcmp(s->tags[i], tag) == 0) {
			return true;
		}
	}
	return false;
}

static bool same_domain(const struct cmap_server *a, const struct cmap_server *b, enum cmap_fd fd)
{
	switch (fd) {
	case CMAP_FD_HOST:
		return strcmp(a->host, b->host) == 0;
	case CMAP_FD_RACK:
		return strcmp(a->rack, b->rack) == 0;
	case CMAP_FD_SERVER:
	default:
		return a->id == b->id;
	}
}

/* -ln(u) / weight with u in (0, 1] from 53 hash bits: an exponential variable
 * of rate `weight`, so the lowest score wins with probability weight / sum. */
static double hrw_score(uint32_t pool, uint32_t pg, const struct cmap_server *s)
{
	uint64_t h = cmap_hash64(pool, pg, s->id);
	double u = (double)((h >> 11) + 1) * 0x1p-53;

	return -log(u) / (double)s->weight;
}

struct hrw_cand {
	const struct cmap_server *s;
	double score;
};

uint32_t cmap_place_pg(const struct cmap *m, const struct cmap_pool *pool, uint32_t pg,
		       uint32_t out[CMAP_MAX_REPLICAS])
{
	struct hrw_cand best[CMAP_MAX_REPLICAS];
	uint32_t want = pool->replicas, n = 0, i, j;

	if (want > CMAP_MAX_REPLICAS) {
		want = CMAP_MAX_REPLICAS;
	}
	/*
	 * Taking servers in ascending score and skipping used domains picks, for
	 * each domain, its best-scoring server, and the `want` domains whose best
	 * scores are lowest. So one pass keeping the best server per domain among
	 * the current top `want` domains gives the same result: a domain pushed
	 * out of the top (or never in it) only ever had servers scoring above the
	 * current cut, which can only fall. Equal scores: the lower id wins.
	 */
	for (i = 0; i < m->nservers; i++) {
		const struct cmap_server *s = &m->servers[i];
		double sc;

		if (!s->in || !server_has_tag(s, pool->tag)) {
			continue;
		}
		sc = hrw_score(pool->id, pg, s);
		for (j = 0; j < n; j++) {
			if (same_domain(best[j].s, s, pool->failure_domain)) {
				break;
			}
		}
		if (j < n) {
			if (!(sc < best[j].score)) {
				continue;
			}
		} else if (n < want) {
			j = n++;
		} else if (sc < best[n - 1].score) {
			j = n - 1;
		} else {
			continue;
		}
		/* Slot j is replaced by a better score: move it towards the front. */
		while (j > 0 && sc < best[j - 1].score) {
			best[j] = best[j - 1];
			j--;
		}
		best[j].s = s;
		best[j].score = sc;
	}
	for (i = 0; i < n; i++) {
		out[i] = best[i].s->id;
	}
	for (; i < CMAP_MAX_REPLICAS; i++) {
		out[i] = 0;
	}
	return n;
}

void cmap_place(struct cmap *m)
{
	uint32_t i, pg;

	for (i = 0; i < m->npools; i++) {
		struct cmap_pool *p = &m->pools[i];

		for (pg = 0; pg < p->pg_count; pg++) {
			p->pgs[pg].nmembers = cmap_place_pg(m, p, pg, p->pgs[pg].members);
		}
	}
}

static uint32_t pg_up_mask(const struct cmap *m, const struct cmap_pg *g)
{
	uint32_t i, mask = 0;

	for (i = 0; i < g->nmembers && i < CMAP_MAX_REPLICAS; i++) {
		const struct cmap_server *s = cmap_server(m, g->members[i]);

		if (s && s->up) {
			mask |= 1u << i;
		}
	}
	return mask;
}

static void pg_update(const struct cmap *m, struct cmap_pg *g, const struct cmap *prev,
		      const struct cmap_pg *old)
{
	uint32_t sync = 0, up_sync, primary = 0, i;
	bool changed;
	int j;

	if (!old) {
		/* New cluster or new pool: no data yet, every copy is current. */
		sync = (1u << g->nmembers) - 1;
	} else {
		for (i = 0; i < g->nmembers; i++) {
			j = cmap_pg_member_index(old, g->members[i]);
			if (j >= 0 && (old->in_sync >> j) & 1) {
				sync |= 1u << i;
			}
		}
	}
	up_sync = sync & pg_up_mask(m, g);
	/*
	 * A down member misses writes, so it loses in_sync -- but only while some
	 * in-sync member is up, i.e. while writes can happen at all. When every
	 * in-sync member is down the PG is inactive; their bits are kept because
	 * they hold the newest data and the first of them to return becomes
	 * primary. Nobody else is ever promoted to in sync here.
	 */
	if (up_sync) {
		sync = up_sync;
		for (i = 0; i < g->nmembers; i++) {
			if ((up_sync >> i) & 1) {
				primary = g->members[i];
				break;
			}
		}
	}
	g->in_sync = sync;
	g->primary = primary;
	changed = !old || old->nmembers != g->nmembers || old->primary != primary ||
		  memcmp(old->members, g->members, g->nmembers * sizeof(g->members[0])) != 0;
	/*
	 * A member going down or coming back also starts a new interval, even
	 * with the same primary: a recovery report (or a replica write) made
	 * under the old interval must not count for a member that has since
	 * bounced and missed writes in between.
	 */
	if (!changed && pg_up_mask(m, g) != pg_up_mask(prev, old)) {
		changed = true;
	}
	g->interval = changed ? m->epoch : old->interval;
}

void cmap_update_pgs(struct cmap *m, const struct cmap *prev)
{
	uint32_t i, pg;

	for (i = 0; i < m->npools; i++) {
		struct cmap_pool *p = &m->pools[i];
		const struct cmap_pool *op = prev ? cmap_pool(prev, p->id) : NULL;

		for (pg = 0; pg < p->pg_count; pg++) {
			const struct cmap_pg *old = NULL;

			if (op && pg < op->pg_count) {
				old = &op->pgs[pg];
			}
			pg_update(m, &p->pgs[pg], prev, old);
		}
	}
}

/* ---- lookup ---- */

const struct cmap_server *cmap_server(const struct cmap *m, uint32_t id)
{
	uint32_t at = server_lower_bound(m, id);

	if (at < m->nservers && m->servers[at].id == id) {
		return &m->servers[at];
	}
	return NULL;
}

const struct cmap_pool *cmap_pool(const struct cmap *m, uint32_t id)
{
	uint32_t at = pool_lower_bound(m, id);

	if (at < m->npools && m->pools[at].id == id) {
		return &m->pools[at];
	}
	return NULL;
}

const struct cmap_pg *cmap_pg(const struct cmap *m, uint32_t pool, uint32_t pg)
{
	const struct cmap_pool *p = cmap_pool(m, pool);

	if (!p || pg >= p->pg_count) {
		return NULL;
	}
	return &p->pgs[pg];
}

int cmap_pg_member_index(const struct cmap_pg *pg, uint32_t server_id)
{
	uint32_t i;

	for (i = 0; i < pg->nmembers && i < CMAP_MAX_REPLICAS; i++) {
		if (pg->members[i] == server_id) {
			return (int)i;
		}
	}
	return -1;
}

uint32_t cmap_pg_up_count(const struct cmap *m, const struct cmap_pg *pg, bool in_sync)
{
	uint32_t mask = pg_up_mask(m, pg);

	if (in_sync) {
		mask &= pg->in_sync;
	}
	return (uint32_t)__builtin_popcount(mask);
}

/* ---- wire ---- */

/* Copy a received string into a fixed field; too long is an error, never cut. */
static int copy_str(char *dst, size_t size, const char *src)
{
	size_t len;

	if (!src) {
		src = "";
	}
	len = strlen(src);
	if (len >= size) {
		return -EINVAL;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

static int server_from_pb(const Keel__MapServer *ps, struct cmap_server *s, char *err,
			  size_t errlen)
{
	size_t i;

	if (!ps) {
		set_err(err, errlen, "server entry missing");
		return -EINVAL;
	}
	memset(s, 0, sizeof(*s));
	if (ps->id == 0 || ps->id > CMAP_MAX_SERVER_ID) {
		set_err(err, errlen, "server id %u out of range 1..%u", ps->id, CMAP_MAX_SERVER_ID);
		return -EINVAL;
	}
	s->id = ps->id;
	if (ps->weight == 0) {
		set_err(err, errlen, "server %u: weight 0", ps->id);
		return -EINVAL;
	}
	s->weight = ps->weight;
	s->up = ps->up;
	s->in = ps->in;
	if (copy_str(s->addr, sizeof(s->addr), ps->addr)) {
		set_err(err, errlen, "server %u: addr longer than %d bytes", ps->id,
			CMAP_ADDR_LEN - 1);
		return -EINVAL;
	}
	if (copy_str(s->host, sizeof(s->host), ps->host)) {
		set_err(err, errlen, "server %u: host longer than %d bytes", ps->id,
			CMAP_NAME_LEN - 1);
		return -EINVAL;
	}
	if (copy_str(s->rack, sizeof(s->rack), ps->rack)) {
		set_err(err, errlen, "server %u: rack longer than %d bytes", ps->id,
			CMAP_NAME_LEN - 1);
		return -EINVAL;
	}
	if (ps->n_tags > CMAP_MAX_TAGS || (ps->n_tags && !ps->tags)) {
		set_err(err, errlen, "server %u: %zu tags (max %d)", ps->id, ps->n_tags,
			CMAP_MAX_TAGS);
		return -EINVAL;
	}
	for (i = 0; i < ps->n_tags; i++) {
		if (copy_str(s->tags[i], sizeof(s->tags[i]), ps->tags[i])) {
			set_err(err, errlen, "server %u: tag %zu longer than %d bytes", ps->id, i,
				CMAP_NAME_LEN - 1);
			return -EINVAL;
		}
	}
	s->ntags = (unsigned int)ps->n_tags;
	return 0;
}

static int pool_from_pb(const Keel__MapPool *pp, struct cmap_pool *p, char *err, size_t errlen)
{
	if (!pp) {
		set_err(err, errlen, "pool entry missing");
		return -EINVAL;
	}
	if (pp->id == 0 || pp->id > CMAP_MAX_POOL_ID) {
		set_err(err, errlen, "pool id %u out of range 1..%u", pp->id, CMAP_MAX_POOL_ID);
		return -EINVAL;
	}
	p->id = pp->id;
	if (copy_str(p->name, sizeof(p->name), pp->name)) {
		set_err(err, errlen, "pool %u: name longer than %d bytes", pp->id,
			CMAP_NAME_LEN - 1);
		return -EINVAL;
	}
	if (copy_str(p->tag, sizeof(p->tag), pp->tag)) {
		set_err(err, errlen, "pool %u: tag longer than %d bytes", pp->id,
			CMAP_NAME_LEN - 1);
		return -EINVAL;
	}
	if (pp->replicas == 0 || pp->replicas > CMAP_MAX_REPLICAS) {
		set_err(err, errlen, "pool %u: replicas %u out of range 1..%d", pp->id,
			pp->replicas, CMAP_MAX_REPLICAS);
		return -EINVAL;
	}
	p->replicas = pp->replicas;
	if (pp->min_replicas == 0 || pp->min_replicas > pp->replicas) {
		set_err(err, errlen, "pool %u: min_replicas %u out of range 1..%u", pp->id,
			pp->min_replicas, pp->replicas);
		return -EINVAL;
	}
	p->min_replicas = pp->min_replicas;
	switch (pp->failure_domain) {
	case KEEL__FAILURE_DOMAIN__FD_SERVER:
		p->failure_domain = CMAP_FD_SERVER;
		break;
	case KEEL__FAILURE_DOMAIN__FD_HOST:
		p->failure_domain = CMAP_FD_HOST;
		break;
	case KEEL__FAILURE_DOMAIN__FD_RACK:
		p->failure_domain = CMAP_FD_RACK;
		break;
	default:
		set_err(err, errlen, "pool %u: unknown failure domain %d", pp->id,
			(int)pp->failure_domain);
		return -EINVAL;
	}
	if (pp->pg_count == 0 || pp->pg_count > CMAP_MAX_PGS) {
		set_err(err, errlen, "pool %u: pg_count %u out of range 1..%d", pp->id,
			pp->pg_count, CMAP_MAX_PGS);
		return -EINVAL;
	}
	p->pg_count = pp->pg_count;
	p->full = pp->full;
	return 0;
}

/* Fills one PG; a PG whose pool field is still 0 has not been seen yet. */
static int pg_from_pb(struct cmap *m, const Keel__MapPg *pp, char *err, size_t errlen)
{
	const struct cmap_pool *pool;
	struct cmap_pg *g;
	uint32_t i, k;

	if (!pp) {
		set_err(err, errlen, "pg entry missing");
		return -EINVAL;
	}
	pool = cmap_pool(m, pp->pool);
	if (!pool) {
		set_err(err, errlen, "pg %u.%u: unknown pool", pp->pool, pp->pg);
		return -EINVAL;
	}
	if (pp->pg >= pool->pg_count) {
		set_err(err, errlen, "pg %u.%u: pg number beyond pg_count %u", pp->pool, pp->pg,
			pool->pg_count);
		return -EINVAL;
	}
	g = &pool->pgs[pp->pg];
	if (g->pool != 0) {
		set_err(err, errlen, "pg %u.%u: listed twice", pp->pool, pp->pg);
		return -EINVAL;
	}
	if (pp->n_members > pool->replicas || (pp->n_members && !pp->members)) {
		set_err(err, errlen, "pg %u.%u: %zu members, pool has %u replicas", pp->pool,
			pp->pg, pp->n_members, pool->replicas);
		return -EINVAL;
	}
	for (i = 0; i < pp->n_members; i++) {
		if (!cmap_server(m, pp->members[i])) {
			set_err(err, errlen, "pg %u.%u: member %u is not a known server", pp->pool,
				pp->pg, pp->members[i]);
			return -EINVAL;
		}
		for (k = 0; k < i; k++) {
			if (pp->members[k] == pp->members[i]) {
				set_err(err, errlen, "pg %u.%u: member %u listed twice", pp->pool,
					pp->pg, pp->members[i]);
				return -EINVAL;
			}
		}
		g->members[i] = pp->members[i];
	}
	g->nmembers = (uint32_t)pp->n_members;
	if (pp->in_sync >> g->nmembers) {
		set_err(err, errlen, "pg %u.%u: in_sync 0x%x has bits beyond %u members", pp->pool,
			pp->pg, pp->in_sync, g->nmembers);
		return -EINVAL;
	}
	if (pp->primary != 0 && cmap_pg_member_index(g, pp->primary) < 0) {
		set_err(err, errlen, "pg %u.%u: primary %u is not a member", pp->pool, pp->pg,
			pp->primary);
		return -EINVAL;
	}
	g->pool = pp->pool;
	g->pg = pp->pg;
	g->in_sync = pp->in_sync;
	g->primary = pp->primary;
	g->interval = pp->interval;
	return 0;
}

static int cmp_server(const void *a, const void *b)
{
	const struct cmap_server *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int cmp_pool(const void *a, const void *b)
{
	const struct cmap_pool *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

static int layers_from_pb(struct cmap *m, const struct Keel__ClusterMap *pb, char *err,
			  size_t errlen)
{
	size_t n = pb->n_ro_layers + pb->n_deleting_layers, i, k = 0;
	struct cmap_layer *l;
	int ret;

	if (!n) {
		return 0;
	}
	if (n > CMAP_MAX_LAYERS || (pb->n_ro_layers && !pb->ro_layers) ||
	    (pb->n_deleting_layers && !pb->deleting_layers)) {
		set_err(err, errlen, "%zu layers (max %u)", n, CMAP_MAX_LAYERS);
		return -EINVAL;
	}
	l = malloc(n * sizeof(*l));
	if (!l) {
		return -ENOMEM;
	}
	for (i = 0; i < pb->n_ro_layers; i++) {
		l[k++] = (struct cmap_layer){.inode = pb->ro_layers[i], .state = CMAP_LAYER_RO};
	}
	for (i = 0; i < pb->n_deleting_layers; i++) {
		l[k++] = (struct cmap_layer){.inode = pb->deleting_layers[i],
					     .state = CMAP_LAYER_DELETING};
	}
	if (pb->n_merges % 3 || (pb->n_merges && !pb->merges)) {
		free(l);
		set_err(err, errlen, "merges: %zu entries, not (layer, into, pool) triples",
			pb->n_merges);
		return -EINVAL;
	}
	for (i = 0; i < pb->n_merges; i += 3) {
		k = 0;
		while (k < n && l[k].inode != pb->merges[i]) {
			k++;
		}
		if (k == n || l[k].merge_into) {
			free(l);
			set_err(err, errlen,
				"merges: layer %llu not listed read-only or merged twice",
				(unsigned long long)pb->merges[i]);
			return -EINVAL;
		}
		l[k].merge_into = pb->merges[i + 1];
		l[k].merge_pool = pb->merges[i + 2] < 4096 ? (uint32_t)pb->merges[i + 2] : 0;
		if (!l[k].merge_into) {
			free(l);
			set_err(err, errlen, "merges: layer %llu merges into layer 0",
				(unsigned long long)pb->merges[i]);
			return -EINVAL;
		}
	}
	ret = cmap_set_layers(m, l, (uint32_t)n);
	free(l);
	if (ret == -EINVAL) {
		set_err(err, errlen, "layer list: inode 0, listed twice or a bad merge");
	}
	return ret;
}

static int fences_from_pb(struct cmap *m, const struct Keel__ClusterMap *pb, char *err,
			  size_t errlen)
{
	struct cmap_fence *f;
	size_t i;
	int ret;

	if (!pb->n_fences) {
		return 0;
	}
	if (pb->n_fences > CMAP_MAX_FENCES || !pb->fences) {
		set_err(err, errlen, "%zu fences (max %u)", pb->n_fences, CMAP_MAX_FENCES);
		return -EINVAL;
	}
	f = calloc(pb->n_fences, sizeof(*f));
	if (!f) {
		return -ENOMEM;
	}
	for (i = 0; i < pb->n_fences; i++) {
		const Keel__AttachFence *af = pb->fences[i];

		if (!af || af->n_live > CMAP_FENCE_LIVE || (af->n_live && !af->live)) {
			set_err(err, errlen, "fence %zu: missing, or more than %d live generations",
				i, CMAP_FENCE_LIVE);
			free(f);
			return -EINVAL;
		}
		f[i].inode = af->inode;
		f[i].nlive = (uint32_t)af->n_live;
		if (af->n_live) { /* live is NULL without any */
			memcpy(f[i].live, af->live, af->n_live * sizeof(f[i].live[0]));
		}
	}
	ret = cmap_set_fences(m, f, (uint32_t)pb->n_fences);
	free(f);
	if (ret == -EINVAL) {
		set_err(err, errlen, "fence list: inode 0, listed twice or generation 0");
	}
	return ret;
}

int cmap_from_pb(const struct Keel__ClusterMap *pb, struct cmap **out, char *err, size_t errlen)
{
	struct cmap *m;
	size_t i;
	uint32_t pg;
	int ret;

	*out = NULL;
	set_err(err, errlen, "ok");
	if (!pb) {
		set_err(err, errlen, "no cluster map");
		return -EINVAL;
	}
	if (pb->n_servers > CMAP_MAX_SERVERS || (pb->n_servers && !pb->servers)) {
		set_err(err, errlen, "%zu servers (max %d)", pb->n_servers, CMAP_MAX_SERVERS);
		return -EINVAL;
	}
	if (pb->n_pools > CMAP_MAX_POOLS || (pb->n_pools && !pb->pools)) {
		set_err(err, errlen, "%zu pools (max %d)", pb->n_pools, CMAP_MAX_POOLS);
		return -EINVAL;
	}
	if (pb->n_pgs && !pb->pgs) {
		set_err(err, errlen, "pg list missing");
		return -EINVAL;
	}
	m = cmap_new(pb->epoch);
	if (!m) {
		return -ENOMEM;
	}
	m->full_fail = pb->full_fail;

	/* Bulk build then sort: cmap_add_*() insertion would be quadratic. */
	if (pb->n_servers) {
		m->servers = calloc(pb->n_servers, sizeof(*m->servers));
		if (!m->servers) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	for (i = 0; i < pb->n_servers; i++) {
		ret = server_from_pb(pb->servers[i], &m->servers[i], err, errlen);
		if (ret) {
			goto out_free;
		}
	}
	m->nservers = (uint32_t)pb->n_servers;
	if (m->nservers > 1) {
		qsort(m->servers, m->nservers, sizeof(*m->servers), cmp_server);
	}
	for (i = 1; i < m->nservers; i++) {
		if (m->servers[i].id == m->servers[i - 1].id) {
			set_err(err, errlen, "duplicate server id %u", m->servers[i].id);
			ret = -EINVAL;
			goto out_free;
		}
	}

	if (pb->n_pools) {
		m->pools = calloc(pb->n_pools, sizeof(*m->pools));
		if (!m->pools) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	/* npools counts allocated entries so cmap_free() releases their pgs. */
	m->npools = (uint32_t)pb->n_pools;
	for (i = 0; i < pb->n_pools; i++) {
		ret = pool_from_pb(pb->pools[i], &m->pools[i], err, errlen);
		if (ret) {
			goto out_free;
		}
		/* Zeroed, so pool == 0 marks a PG not yet received. */
		m->pools[i].pgs = calloc(m->pools[i].pg_count, sizeof(struct cmap_pg));
		if (!m->pools[i].pgs) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	if (m->npools > 1) {
		qsort(m->pools, m->npools, sizeof(*m->pools), cmp_pool);
	}
	for (i = 1; i < m->npools; i++) {
		if (m->pools[i].id == m->pools[i - 1].id) {
			set_err(err, errlen, "duplicate pool id %u", m->pools[i].id);
			ret = -EINVAL;
			goto out_free;
		}
	}

	for (i = 0; i < pb->n_pgs; i++) {
		ret = pg_from_pb(m, pb->pgs[i], err, errlen);
		if (ret) {
			goto out_free;
		}
	}
	for (i = 0; i < m->npools; i++) {
		for (pg = 0; pg < m->pools[i].pg_count; pg++) {
			if (m->pools[i].pgs[pg].pool == 0) {
				set_err(err, errlen, "pool %u: pg %u missing (pg_count %u)",
					m->pools[i].id, pg, m->pools[i].pg_count);
				ret = -EINVAL;
				goto out_free;
			}
		}
	}
	ret = layers_from_pb(m, pb, err, errlen);
	if (!ret) {
		ret = fences_from_pb(m, pb, err, errlen);
	}
	if (ret) {
		goto out_free;
	}
	*out = m;
	return 0;

out_free:
	if (ret == -ENOMEM) {
		set_err(err, errlen, "out of memory");
	}
	cmap_free(m);
	return ret;
}

static uint32_t total_pgs(const struct cmap *m)
{
	uint32_t i, n = 0;

	for (i = 0; i < m->npools; i++) {
		n += m->pools[i].pg_count;
	}
	return n;
}

static uint32_t total_tags(const struct cmap *m)
{
	uint32_t i, n = 0;

	for (i = 0; i < m->nservers; i++) {
		n += m->servers[i].ntags;
	}
	return n;
}

int cmap_pack(const struct cmap *m, uint8_t **buf, size_t *len)
{
	Keel__ClusterMap pb = KEEL__CLUSTER_MAP__INIT;
	Keel__MapServer *srv, **srvp;
	Keel__MapPool *pl, **plp;
	Keel__MapPg *pg, **pgp;
	Keel__AttachFence *fe, **fep;
	uint64_t *ro, *del, *mrg;
	uint32_t i, j, k, ntags = 0, npgs = 0;
	char **tagp;
	uint8_t *out;
	size_t size;
	int ret = -ENOMEM;

	/* +1: calloc(0) may return NULL, which would look like a failure. */
	srv = calloc(m->nservers + 1, sizeof(*srv));
	srvp = calloc(m->nservers + 1, sizeof(*srvp));
	tagp = calloc(total_tags(m) + 1, sizeof(*tagp));
	pl = calloc(m->npools + 1, sizeof(*pl));
	plp = calloc(m->npools + 1, sizeof(*plp));
	pg = calloc(total_pgs(m) + 1, sizeof(*pg));
	pgp = calloc(total_pgs(m) + 1, sizeof(*pgp));
	ro = calloc(m->nlayers + 1, sizeof(*ro));
	del = calloc(m->nlayers + 1, sizeof(*del));
	mrg = calloc(3 * m->nlayers + 1, sizeof(*mrg));
	fe = calloc(m->nfences + 1, sizeof(*fe));
	fep = calloc(m->nfences + 1, sizeof(*fep));
	if (!srv || !srvp || !tagp || !pl || !plp || !pg || !pgp || !ro || !del || !mrg || !fe ||
	    !fep) {
		goto out_free;
	}

	/* The message borrows the map's strings and arrays: packing only reads. */
	pb.epoch = m->epoch;
	pb.full_fail = m->full_fail;
	for (i = 0; i < m->nservers; i++) {
		const struct cmap_server *s = &m->servers[i];

		keel__map_server__init(&srv[i]);
		srv[i].id = s->id;
		srv[i].addr = (char *)s->addr;
		srv[i].host = (char *)s->host;
		srv[i].rack = (char *)s->rack;
		srv[i].weight = s->weight;
		srv[i].up = s->up;
		srv[i].in = s->in;
		srv[i].n_tags = s->ntags;
		srv[i].tags = &tagp[ntags];
		for (j = 0; j < s->ntags; j++) {
			tagp[ntags++] = (char *)s->tags[j];
		}
		srvp[i] = &srv[i];
	}
	pb.n_servers = m->nservers;
	pb.servers = srvp;

	for (i = 0; i < m->npools; i++) {
		const struct cmap_pool *p = &m->pools[i];

		keel__map_pool__init(&pl[i]);
		pl[i].id = p->id;
		pl[i].name = (char *)p->name;
		pl[i].replicas = p->replicas;
		pl[i].min_replicas = p->min_replicas;
		pl[i].failure_domain = (Keel__FailureDomain)p->failure_domain;
		pl[i].pg_count = p->pg_count;
		pl[i].tag = (char *)p->tag;
		pl[i].full = p->full;
		plp[i] = &pl[i];
		for (k = 0; k < p->pg_count; k++) {
			const struct cmap_pg *g = &p->pgs[k];
			Keel__MapPg *q = &pg[npgs];

			keel__map_pg__init(q);
			q->pool = p->id;
			q->pg = k;
			q->n_members = g->nmembers;
			q->members = (uint32_t *)g->members;
			q->primary = g->primary;
			q->in_sync = g->in_sync;
			q->interval = g->interval;
			pgp[npgs++] = q;
		}
	}
	pb.n_pools = m->npools;
	pb.pools = plp;
	pb.n_pgs = npgs;
	pb.pgs = pgp;
	for (i = 0; i < m->nlayers; i++) {
		if (m->layers[i].state == CMAP_LAYER_RO) {
			ro[pb.n_ro_layers++] = m->layers[i].inode;
			if (m->layers[i].merge_into) {
				mrg[pb.n_merges++] = m->layers[i].inode;
				mrg[pb.n_merges++] = m->layers[i].merge_into;
				mrg[pb.n_merges++] = m->layers[i].merge_pool;
			}
		} else {
			del[pb.n_deleting_layers++] = m->layers[i].inode;
		}
	}
	pb.ro_layers = ro;
	pb.deleting_layers = del;
	pb.merges = mrg;
	for (i = 0; i < m->nfences; i++) {
		keel__attach_fence__init(&fe[i]);
		fe[i].inode = m->fences[i].inode;
		fe[i].n_live = m->fences[i].nlive;
		fe[i].live = (uint64_t *)m->fences[i].live;
		fep[i] = &fe[i];
	}
	pb.n_fences = m->nfences;
	pb.fences = fep;

	size = keel__cluster_map__get_packed_size(&pb);
	out = malloc(size ? size : 1);
	if (!out) {
		goto out_free;
	}
	keel__cluster_map__pack(&pb, out);
	*buf = out;
	*len = size;
	ret = 0;

out_free:
	free(mrg);
	free(fep);
	free(fe);
	free(del);
	free(ro);
	free(pgp);
	free(pg);
	free(plp);
	free(pl);
	free(tagp);
	free(srvp);
	free(srv);
	return ret;
}

int cmap_unpack(const uint8_t *buf, size_t len, struct cmap **out, char *err, size_t errlen)
{
	Keel__ClusterMap *pb;
	int ret;

	*out = NULL;
	pb = keel__cluster_map__unpack(NULL, len, buf);
	if (!pb) {
		set_err(err, errlen, "malformed ClusterMap message");
		return -EINVAL;
	}
	ret = cmap_from_pb(pb, out, err, errlen);
	keel__cluster_map__free_unpacked(pb, NULL);
	return ret;
}
