/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cluster map: hashing, placement (determinism, failure domains, weights,
 * tags, undersized PGs, minimal movement over random shapes), primaries and
 * in-sync bits, wire validation and round trips.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/cmap.h"
#include "proto/keel.pb-c.h"

/* ---- helpers ---- */

/* Test-local PRNG (splitmix64): fixed seeds, same shapes on every run. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in lo..hi inclusive. */
static uint32_t rng_range(uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(rng_next() % (hi - lo + 1));
}

static struct cmap_server mk_server(uint32_t id, uint32_t host, uint32_t rack, uint32_t weight)
{
	struct cmap_server s;

	memset(&s, 0, sizeof(s));
	s.id = id;
	snprintf(s.addr, sizeof(s.addr), "10.0.%u.%u:7000", id / 256, id % 256);
	snprintf(s.host, sizeof(s.host), "host%u", host);
	snprintf(s.rack, sizeof(s.rack), "rack%u", rack);
	s.weight = weight;
	s.up = true;
	s.in = true;
	return s;
}

static struct cmap_pool mk_pool(uint32_t id, uint32_t replicas, enum cmap_fd fd, uint32_t pg_count)
{
	struct cmap_pool p;

	memset(&p, 0, sizeof(p));
	p.id = id;
	snprintf(p.name, sizeof(p.name), "pool%u", id);
	p.replicas = replicas;
	p.min_replicas = 1;
	p.failure_domain = fd;
	p.pg_count = pg_count;
	return p;
}

static void add_server(struct cmap *m, uint32_t id, uint32_t host, uint32_t rack, uint32_t weight)
{
	struct cmap_server s = mk_server(id, host, rack, weight);

	assert_int_equal(cmap_add_server(m, &s), 0);
}

static void add_pool(struct cmap *m, uint32_t id, uint32_t replicas, enum cmap_fd fd,
		     uint32_t pg_count)
{
	struct cmap_pool p = mk_pool(id, replicas, fd, pg_count);

	assert_int_equal(cmap_add_pool(m, &p), 0);
}

static bool domain_eq(const struct cmap_server *a, const struct cmap_server *b, enum cmap_fd fd)
{
	switch (fd) {
	case CMAP_FD_HOST:
		return strcmp(a->host, b->host) == 0;
	case CMAP_FD_RACK:
		return strcmp(a->rack, b->rack) == 0;
	default:
		return a->id == b->id;
	}
}

/* Distinct failure domains among the `in` servers of @m. */
static uint32_t count_domains(const struct cmap *m, enum cmap_fd fd)
{
	uint32_t i, j, n = 0;

	for (i = 0; i < m->nservers; i++) {
		if (!m->servers[i].in) {
			continue;
		}
		for (j = 0; j < i; j++) {
			if (m->servers[j].in && domain_eq(&m->servers[i], &m->servers[j], fd)) {
				break;
			}
		}
		if (j == i) {
			n++;
		}
	}
	return n;
}

/* ---- hashing and object -> PG ---- */

static void test_hash(void **state)
{
	uint32_t hits[64] = {0};
	uint64_t fam;
	uint32_t i, used = 0;

	/* Pinned values: placement must never change under a rebuild, a new
	 * compiler or another architecture (integer-only mixing). */
	assert_true(cmap_hash64(0, 0, 0) == 0xfc0d969f7abd24c9ull);
	assert_true(cmap_hash64(1, 2, 3) == 0x0b1e3f23e3ed4b93ull);
	assert_true(cmap_hash64(1, 2, 3) != cmap_hash64(3, 2, 1));
	assert_true(cmap_hash64(1, 2, 3) != cmap_hash64(1, 3, 2));
	assert_true(cmap_hash64(7, 0, 0) != cmap_hash64(0, 7, 0));

	/* Object 0 of different volumes spreads over the PGs. */
	for (fam = 1; fam <= 1024; fam++) {
		hits[cmap_object_pg(fam << 16, 0, 64)]++;
	}
	for (i = 0; i < 64; i++) {
		used += hits[i] != 0;
		assert_true(hits[i] < 40); /* mean 16 */
	}
	assert_int_equal(used, 64);

	/* All layers of one object share its PG; objects spread. */
	for (fam = 1; fam < 100; fam++) {
		uint32_t pg = cmap_object_pg(fam << 16, 12345, 1000);

		assert_true(pg < 1000);
		for (i = 1; i < 8; i++) {
			assert_int_equal(cmap_object_pg(fam << 16 | i, 12345, 1000), pg);
		}
	}
	assert_int_not_equal(cmap_object_pg(5 << 16, 1, 1 << 20),
			     cmap_object_pg(5 << 16, 2, 1 << 20));
	assert_int_equal(cmap_object_pg(5 << 16, 1, 1), 0);
}

/* ---- building and lookup ---- */

static void test_build_lookup(void **state)
{
	static const uint32_t ids[] = {50, 3, 900, 7, 65535, 1, 400};
	struct cmap *m = cmap_new(9), *d;
	struct cmap_server s;
	struct cmap_pool p;
	uint32_t i;

	assert_non_null(m);
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		add_server(m, ids[i], i, 0, 1);
	}
	for (i = 1; i < m->nservers; i++) {
		assert_true(m->servers[i - 1].id < m->servers[i].id);
	}
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		assert_non_null(cmap_server(m, ids[i]));
		assert_int_equal(cmap_server(m, ids[i])->id, ids[i]);
	}
	assert_null(cmap_server(m, 2));
	assert_null(cmap_server(m, 0));
	assert_null(cmap_server(m, 70000));

	s = mk_server(7, 0, 0, 1);
	assert_int_equal(cmap_add_server(m, &s), -EEXIST);
	s = mk_server(0, 0, 0, 1);
	assert_int_equal(cmap_add_server(m, &s), -EINVAL);
	s = mk_server(65536, 0, 0, 1);
	assert_int_equal(cmap_add_server(m, &s), -EINVAL);
	s = mk_server(8, 0, 0, 0);
	assert_int_equal(cmap_add_server(m, &s), -EINVAL);
	s = mk_server(8, 0, 0, 1);
	memset(s.host, 'x', sizeof(s.host)); /* no terminator */
	assert_int_equal(cmap_add_server(m, &s), -EINVAL);
	s = mk_server(8, 0, 0, 1);
	s.ntags = CMAP_MAX_TAGS + 1;
	assert_int_equal(cmap_add_server(m, &s), -EINVAL);

	add_pool(m, 30, 3, CMAP_FD_SERVER, 16);
	add_pool(m, 2, 2, CMAP_FD_HOST, 8);
	add_pool(m, 4095, 1, CMAP_FD_RACK, 1);
	assert_int_equal(m->pools[0].id, 2);
	assert_int_equal(m->pools[1].id, 30);
	assert_int_equal(m->pools[2].id, 4095);
	assert_non_null(cmap_pool(m, 30));
	assert_null(cmap_pool(m, 31));
	assert_non_null(cmap_pg(m, 30, 15));
	assert_int_equal(cmap_pg(m, 30, 15)->pool, 30);
	assert_int_equal(cmap_pg(m, 30, 15)->pg, 15);
	assert_null(cmap_pg(m, 30, 16));
	assert_null(cmap_pg(m, 31, 0));

	p = mk_pool(30, 3, CMAP_FD_SERVER, 16);
	assert_int_equal(cmap_add_pool(m, &p), -EEXIST);
	p = mk_pool(5, 0, CMAP_FD_SERVER, 16);
	assert_int_equal(cmap_add_pool(m, &p), -EINVAL);
	p = mk_pool(5, 6, CMAP_FD_SERVER, 16);
	assert_int_equal(cmap_add_pool(m, &p), -EINVAL);
	p = mk_pool(5, 3, CMAP_FD_SERVER, 16);
	p.min_replicas = 4;
	assert_int_equal(cmap_add_pool(m, &p), -EINVAL);
	p = mk_pool(5, 3, CMAP_FD_SERVER, 0);
	assert_int_equal(cmap_add_pool(m, &p), -EINVAL);
	p = mk_pool(5, 3, CMAP_FD_SERVER, CMAP_MAX_PGS + 1);
	assert_int_equal(cmap_add_pool(m, &p), -EINVAL);
	p = mk_pool(4096, 3, CMAP_FD_SERVER, 16);
	assert_int_equal(cmap_add_pool(m, &p), -EINVAL);
	p = mk_pool(5, 3, (enum cmap_fd)3, 16);
	assert_int_equal(cmap_add_pool(m, &p), -EINVAL);

	cmap_place(m);
	d = cmap_dup(m);
	assert_non_null(d);
	assert_int_equal(d->epoch, 9);
	assert_int_equal(d->nservers, m->nservers);
	assert_memory_equal(d->servers, m->servers, m->nservers * sizeof(*m->servers));
	assert_int_equal(d->npools, 3);
	for (i = 0; i < 3; i++) {
		assert_true(d->pools[i].pgs != m->pools[i].pgs);
		assert_memory_equal(d->pools[i].pgs, m->pools[i].pgs,
				    m->pools[i].pg_count * sizeof(struct cmap_pg));
	}
	cmap_free(d);
	cmap_free(m);
}

/* ---- placement ---- */

/* A random cluster: servers on random hosts, hosts in random racks. */
static struct cmap *random_cluster(uint32_t nservers, uint32_t first_id)
{
	struct cmap *m = cmap_new(1);
	uint32_t nhosts = rng_range(1, nservers), nracks = rng_range(1, nhosts < 8 ? nhosts : 8);
	uint32_t i;

	assert_non_null(m);
	for (i = 0; i < nservers; i++) {
		uint32_t host = rng_range(0, nhosts - 1);

		add_server(m, first_id + i, host, host % nracks, rng_range(1, 10));
	}
	return m;
}

static void check_members_valid(const struct cmap *m, const struct cmap_pool *p)
{
	uint32_t pg, i, j, want = count_domains(m, p->failure_domain);

	if (want > p->replicas) {
		want = p->replicas;
	}
	for (pg = 0; pg < p->pg_count; pg++) {
		const struct cmap_pg *g = &p->pgs[pg];

		assert_int_equal(g->nmembers, want);
		for (i = 0; i < g->nmembers; i++) {
			const struct cmap_server *a = cmap_server(m, g->members[i]);

			assert_non_null(a);
			assert_true(a->in);
			for (j = 0; j < i; j++) {
				const struct cmap_server *b = cmap_server(m, g->members[j]);

				assert_false(domain_eq(a, b, p->failure_domain));
			}
		}
		for (; i < CMAP_MAX_REPLICAS; i++) {
			assert_int_equal(g->members[i], 0);
		}
	}
}

static void test_place_deterministic(void **state)
{
	struct cmap *a = cmap_new(1), *b = cmap_new(1);
	uint32_t members[CMAP_MAX_REPLICAS];
	uint32_t i, pg, n;

	/* Same servers inserted in opposite orders. */
	for (i = 1; i <= 12; i++) {
		add_server(a, i, i % 5, i % 3, 1 + i % 4);
	}
	for (i = 12; i >= 1; i--) {
		add_server(b, i, i % 5, i % 3, 1 + i % 4);
	}
	add_pool(a, 3, 3, CMAP_FD_HOST, 512);
	add_pool(b, 3, 3, CMAP_FD_HOST, 512);
	cmap_place(a);
	cmap_place(b);
	cmap_place(b);
	for (pg = 0; pg < 512; pg++) {
		const struct cmap_pg *x = cmap_pg(a, 3, pg), *y = cmap_pg(b, 3, pg);

		assert_int_equal(x->nmembers, 3);
		assert_memory_equal(x->members, y->members, sizeof(x->members));
		n = cmap_place_pg(a, cmap_pool(a, 3), pg, members);
		assert_int_equal(n, 3);
		assert_memory_equal(members, x->members, sizeof(members));
	}
	/* Pinned: placement of a given layout never changes across builds. */
	assert_int_equal(cmap_pg(a, 3, 0)->members[0], 7);
	assert_int_equal(cmap_pg(a, 3, 0)->members[1], 11);
	assert_int_equal(cmap_pg(a, 3, 0)->members[2], 10);
	cmap_free(a);
	cmap_free(b);
}

static void test_place_domains(void **state)
{
	uint32_t shape;

	rng_state = 42;
	for (shape = 0; shape < 150; shape++) {
		struct cmap *m = random_cluster(rng_range(1, 40), rng_range(1, 60000));
		enum cmap_fd fd;

		for (fd = CMAP_FD_SERVER; fd <= CMAP_FD_RACK; fd++) {
			add_pool(m, 1 + fd, rng_range(1, 5), fd, 64);
		}
		/* Some servers out: never placed. */
		m->servers[rng_range(0, m->nservers - 1)].in = false;
		cmap_place(m);
		for (fd = CMAP_FD_SERVER; fd <= CMAP_FD_RACK; fd++) {
			check_members_valid(m, cmap_pool(m, 1 + fd));
		}
		cmap_free(m);
	}
}

static void test_place_undersized(void **state)
{
	struct cmap *m = cmap_new(1);
	uint32_t i, pg;

	/* 9 servers on 3 hosts in 2 racks. */
	for (i = 1; i <= 9; i++) {
		add_server(m, i, i % 3, (i % 3) == 0 ? 0 : 1, 1);
	}
	add_pool(m, 1, 5, CMAP_FD_HOST, 128);
	add_pool(m, 2, 3, CMAP_FD_RACK, 128);
	add_pool(m, 3, 5, CMAP_FD_SERVER, 128);
	cmap_place(m);
	for (pg = 0; pg < 128; pg++) {
		assert_int_equal(cmap_pg(m, 1, pg)->nmembers, 3);
		assert_int_equal(cmap_pg(m, 2, pg)->nmembers, 2);
		assert_int_equal(cmap_pg(m, 3, pg)->nmembers, 5);
	}
	check_members_valid(m, cmap_pool(m, 1));
	check_members_valid(m, cmap_pool(m, 2));
	check_members_valid(m, cmap_pool(m, 3));

	/* No server in: empty PGs. */
	for (i = 0; i < m->nservers; i++) {
		m->servers[i].in = false;
	}
	cmap_place(m);
	assert_int_equal(cmap_pg(m, 1, 0)->nmembers, 0);
	assert_int_equal(cmap_pg(m, 1, 0)->members[0], 0);
	cmap_free(m);
}

/* Slots per server over all PGs of pool 1, indexed by server id (1..n). */
static void count_slots(const struct cmap *m, uint32_t *slots, uint32_t nslots)
{
	const struct cmap_pool *p = cmap_pool(m, 1);
	uint32_t pg, i;

	memset(slots, 0, nslots * sizeof(*slots));
	for (pg = 0; pg < p->pg_count; pg++) {
		for (i = 0; i < p->pgs[pg].nmembers; i++) {
			assert_true(p->pgs[pg].members[i] < nslots);
			slots[p->pgs[pg].members[i]]++;
		}
	}
}

static void test_place_weights(void **state)
{
	struct cmap *m = cmap_new(1);
	uint32_t slots[10], i, light = 0;
	double expect;

	/* Server 1 weight 2, servers 2..9 weight 1, one copy per PG: the exact
	 * share of a weighted HRW winner is weight / total = 2/10 and 1/10. */
	add_server(m, 1, 1, 0, 2);
	for (i = 2; i <= 9; i++) {
		add_server(m, i, i, 0, 1);
	}
	add_pool(m, 1, 1, CMAP_FD_SERVER, 4096);
	cmap_place(m);
	count_slots(m, slots, 10);
	/* Binomial sd of the heavy count: sqrt(4096 * .2 * .8) ~ 26; allow 4 sd. */
	expect = 4096 * 0.2;
	assert_true(fabs(slots[1] - expect) < 4 * 26);
	for (i = 2; i <= 9; i++) {
		assert_true(fabs(slots[i] - 409.6) < 4 * 19.2);
		light += slots[i];
	}
	/* Heavy vs mean light: 2x within 15%. */
	assert_true(slots[1] / (light / 8.0) > 1.7);
	assert_true(slots[1] / (light / 8.0) < 2.3);

	/* Three copies, mild skew: still close to 3 * weight / total. */
	cmap_free(m);
	m = cmap_new(1);
	add_server(m, 1, 1, 0, 2);
	for (i = 2; i <= 9; i++) {
		add_server(m, i, i, 0, 1);
	}
	add_pool(m, 1, 3, CMAP_FD_SERVER, 4096);
	cmap_place(m);
	count_slots(m, slots, 10);
	light = 0;
	for (i = 2; i <= 9; i++) {
		light += slots[i];
	}
	print_message("replicas 3: heavy %u, mean light %.1f, ratio %.3f\n", slots[1], light / 8.0,
		      slots[1] / (light / 8.0));
	assert_true(slots[1] / (light / 8.0) > 1.6);
	assert_true(slots[1] / (light / 8.0) < 2.2);
	cmap_free(m);
}

static void test_place_tags(void **state)
{
	struct cmap *m = cmap_new(1);
	struct cmap_server s;
	struct cmap_pool p;
	uint32_t i, pg, k;

	for (i = 1; i <= 12; i++) {
		s = mk_server(i, i, 0, 1 + i % 3);
		if (i % 3 == 0) {
			strcpy(s.tags[0], "hdd");
			strcpy(s.tags[1], "ssd");
			s.ntags = 2;
		} else {
			strcpy(s.tags[0], "hdd");
			s.ntags = 1;
		}
		assert_int_equal(cmap_add_server(m, &s), 0);
	}
	p = mk_pool(1, 3, CMAP_FD_SERVER, 256);
	strcpy(p.tag, "ssd");
	assert_int_equal(cmap_add_pool(m, &p), 0);
	p = mk_pool(2, 3, CMAP_FD_SERVER, 256);
	strcpy(p.tag, "nvme");
	assert_int_equal(cmap_add_pool(m, &p), 0);
	add_pool(m, 3, 3, CMAP_FD_SERVER, 256);
	cmap_place(m);
	for (pg = 0; pg < 256; pg++) {
		const struct cmap_pg *g = cmap_pg(m, 1, pg);

		assert_int_equal(g->nmembers, 3);
		for (k = 0; k < g->nmembers; k++) {
			assert_int_equal(g->members[k] % 3, 0);
		}
		assert_int_equal(cmap_pg(m, 2, pg)->nmembers, 0);
		assert_int_equal(cmap_pg(m, 3, pg)->nmembers, 3);
	}
	cmap_free(m);
}

/*
 * THE PROPERTY TEST: minimal movement over random cluster shapes (3..40
 * servers, weights 1..10, random hosts and racks, replicas 1..5, failure
 * domain server/host/rack, 256..1024 PGs), adding or removing one server.
 *
 * Moved slots of a change = sum over PGs of |members_after \ members_before|
 * (copies that must be created; reordering within a PG moves no data).
 *
 * Ideal for removing server s: the slots s held (each needs a new home).
 *
 * Ideal for adding server s (domain d): its fair share of the slots. With D
 * domains among the `in` servers a PG has R = min(replicas, D) slots, at most
 * one per domain. Domain d's fair share is f_d = min(1, c * W_d) copies per
 * PG with c such that sum f_d = R (W_d = sum of its servers' weights; "water
 * filling": a domain whose weight share exceeds 1/R is capped at one copy per
 * PG and the others share the rest in proportion to weight). Within its
 * domain s gets w_s / W_d of the domain's slots:
 *	ideal = pg_count * f_d * w_s / W_d.
 *
 * Asserted on every shape, exactly: moved == the slots the new server took
 * (add) and moved <= the slots the removed server held (remove; < only when
 * its domain disappears and no spare domain is left). Ratio: remove 1.0.
 *
 * Asserted on the sum over all shapes: moved <= 1.25 * ideal (add).
 *
 * Asserted per shape: moved <= 1.25 * ideal + 3 * sqrt(ideal) (add) when
 *  - ideal >= MOVE_MIN_IDEAL slots, and
 *  - D <= R (every domain in every PG: HRW is exact) or D >= 4 * R.
 * The sqrt term is sampling noise, not slack for the algorithm: the count is
 * binomial with sd ~ sqrt(ideal), 10% at 100 slots, so over hundreds of
 * shapes a bare 1.25x is breached by chance (seen: 146 slots for an ideal of
 * 114 where HRW's expectation is exactly 114). The raw maximum ratio is
 * printed.
 * The second condition is the documented limit of weighted HRW (and of
 * CRUSH straw2) with several copies: the later picks of a PG are drawn among
 * the domains the earlier picks left, so domains lighter than average get
 * more than their weight share and heavy ones less. With weights 1..10 the
 * excess stays around 15% once D >= 4R but reaches ~45% when R < D < 2R
 * (e.g. 3 domains of weight 34, 29, 27 and a new one of 24, replicas 2).
 * Those shapes are still checked for exact minimality and count in the total
 * and the reported maximum. See docs/cluster.md, "Placement".
 */
#define MOVE_SHAPES    1500
#define MOVE_BOUND     1.25
#define MOVE_MIN_IDEAL 100.0
#define MOVE_MIN_RATIO 4 /* D >= 4R */

struct dom {
	char key[CMAP_NAME_LEN];
	double w;
};

/* Domains of the `in` servers with their weights; returns the count. */
static uint32_t domains(const struct cmap *m, enum cmap_fd fd, struct dom *d)
{
	uint32_t i, j, n = 0;

	for (i = 0; i < m->nservers; i++) {
		const struct cmap_server *s = &m->servers[i];
		char key[CMAP_NAME_LEN];

		if (!s->in) {
			continue;
		}
		if (fd == CMAP_FD_HOST) {
			strcpy(key, s->host);
		} else if (fd == CMAP_FD_RACK) {
			strcpy(key, s->rack);
		} else {
			snprintf(key, sizeof(key), "#%u", s->id);
		}
		for (j = 0; j < n; j++) {
			if (strcmp(d[j].key, key) == 0) {
				break;
			}
		}
		if (j == n) {
			strcpy(d[n].key, key);
			d[n++].w = 0;
		}
		d[j].w += s->weight;
	}
	return n;
}

static int cmp_dom_desc(const void *a, const void *b)
{
	const struct dom *x = a, *y = b;

	return (x->w < y->w) - (x->w > y->w);
}

/* Water-filled fair share (copies per PG) of a domain of weight @w. */
static double fair_share(struct dom *d, uint32_t n, uint32_t replicas, double w)
{
	double r = replicas < n ? replicas : n, wsum = 0;
	uint32_t i, ncapped;

	qsort(d, n, sizeof(*d), cmp_dom_desc);
	for (i = 0; i < n; i++) {
		wsum += d[i].w;
	}
	/* The capped domains are a prefix of the heaviest ones: peel them off. */
	for (ncapped = 0; ncapped < n; ncapped++) {
		if (r * d[ncapped].w / wsum < 1.0) {
			break;
		}
		r -= 1.0;
		wsum -= d[ncapped].w;
	}
	if (ncapped > 0 && w >= d[ncapped - 1].w) {
		return 1.0;
	}
	return r * w / wsum;
}

static uint32_t moved_slots(const struct cmap *a, const struct cmap *b, uint32_t pool)
{
	const struct cmap_pool *pa = cmap_pool(a, pool), *pb = cmap_pool(b, pool);
	uint32_t pg, i, moved = 0;

	for (pg = 0; pg < pa->pg_count; pg++) {
		for (i = 0; i < pb->pgs[pg].nmembers; i++) {
			if (cmap_pg_member_index(&pa->pgs[pg], pb->pgs[pg].members[i]) < 0) {
				moved++;
			}
		}
	}
	return moved;
}

static uint32_t server_slots(const struct cmap *m, uint32_t pool, uint32_t id)
{
	const struct cmap_pool *p = cmap_pool(m, pool);
	uint32_t pg, n = 0;

	for (pg = 0; pg < p->pg_count; pg++) {
		n += cmap_pg_member_index(&p->pgs[pg], id) >= 0;
	}
	return n;
}

static void test_place_movement(void **state)
{
	struct dom dom[64];
	double add_moved = 0, add_ideal = 0, max_ratio = 0, max_checked = 0;
	uint32_t shape, checked = 0;

	rng_state = getenv("CMAP_SEED") ? strtoull(getenv("CMAP_SEED"), NULL, 0) : 20240611;
	for (shape = 0; shape < MOVE_SHAPES; shape++) {
		uint32_t nservers = rng_range(3, 40), replicas = rng_range(1, 5);
		enum cmap_fd fd = (enum cmap_fd)rng_range(0, 2);
		uint32_t pg_count = rng_range(256, 1024), pool_id = rng_range(1, 4095);
		struct cmap *before = random_cluster(nservers, 1), *after;
		struct cmap_server s;
		const struct cmap_server *ns;
		uint32_t victim, moved, held, nd, r_eff, i;
		double ideal, ratio, dw = 0;

		add_pool(before, pool_id, replicas, fd, pg_count);
		cmap_place(before);

		/* Add one server: on a new host half the time, else an existing one. */
		after = cmap_dup(before);
		assert_non_null(after);
		if (rng_next() & 1) {
			s = mk_server(nservers + 1, 1000 + shape, rng_range(0, 8),
				      rng_range(1, 10));
		} else {
			const struct cmap_server *o = &before->servers[rng_range(0, nservers - 1)];

			s = mk_server(nservers + 1, 0, 0, rng_range(1, 10));
			strcpy(s.host, o->host);
			strcpy(s.rack, o->rack);
		}
		assert_int_equal(cmap_add_server(after, &s), 0);
		cmap_place(after);
		check_members_valid(after, cmap_pool(after, pool_id));

		moved = moved_slots(before, after, pool_id);
		/* Minimality: every moved slot went to the new server. */
		assert_int_equal(moved, server_slots(after, pool_id, s.id));

		ns = cmap_server(after, s.id);
		nd = domains(after, fd, dom);
		r_eff = replicas < nd ? replicas : nd;
		for (i = 0; i < nd; i++) {
			if ((fd == CMAP_FD_SERVER && (uint32_t)atoi(dom[i].key + 1) == ns->id) ||
			    (fd == CMAP_FD_HOST && strcmp(dom[i].key, ns->host) == 0) ||
			    (fd == CMAP_FD_RACK && strcmp(dom[i].key, ns->rack) == 0)) {
				dw = dom[i].w;
			}
		}
		assert_true(dw >= ns->weight);
		ideal = pg_count * fair_share(dom, nd, replicas, dw) * ns->weight / dw;
		ratio = moved / ideal;
		add_moved += moved;
		add_ideal += ideal;
		if (ideal >= MOVE_MIN_IDEAL && ratio > max_ratio) {
			max_ratio = ratio;
		}
		if (ideal >= MOVE_MIN_IDEAL && (r_eff == nd || nd >= MOVE_MIN_RATIO * r_eff)) {
			checked++;
			if (ratio > max_checked) {
				max_checked = ratio;
			}
			if (moved > MOVE_BOUND * ideal + 3 * sqrt(ideal)) {
				print_message(
					"shape %u: %u servers, %u domains, replicas %u, fd %d, "
					"weight %u in domain %g: moved %u ideal %.1f\n",
					shape, nservers, nd, replicas, fd, ns->weight, dw, moved,
					ideal);
			}
			assert_true(moved <= MOVE_BOUND * ideal + 3 * sqrt(ideal));
		}
		cmap_free(after);

		/* Remove one server (mark it out): only the slots it held move. */
		after = cmap_dup(before);
		assert_non_null(after);
		victim = rng_range(0, nservers - 1);
		after->servers[victim].in = false;
		cmap_place(after);
		check_members_valid(after, cmap_pool(after, pool_id));
		moved = moved_slots(before, after, pool_id);
		held = server_slots(before, pool_id, before->servers[victim].id);
		assert_true(moved <= held);
		assert_true(moved <= MOVE_BOUND * held);
		cmap_free(after);
		cmap_free(before);
	}
	print_message("movement over %u shapes: add total %.3f x ideal; max per-shape %.3f "
		      "(ideal >= %.0f, any D/R); max asserted %.3f over %u shapes; remove 1.000\n",
		      MOVE_SHAPES, add_moved / add_ideal, max_ratio, MOVE_MIN_IDEAL, max_checked,
		      checked);
	assert_true(checked >= 200);
	assert_true(add_moved <= MOVE_BOUND * add_ideal);
}

/* ---- primaries and in-sync members ---- */

/* One pool (id 1, one PG, 3 replicas) with members set by hand. */
static struct cmap *pg_map(uint64_t epoch, const uint32_t *members, uint32_t n)
{
	struct cmap *m = cmap_new(epoch);
	uint32_t i;

	for (i = 1; i <= 5; i++) {
		add_server(m, i, i, 0, 1);
	}
	add_pool(m, 1, 3, CMAP_FD_SERVER, 1);
	m->pools[0].pgs[0].nmembers = n;
	memcpy(m->pools[0].pgs[0].members, members, n * sizeof(*members));
	return m;
}

static struct cmap *next_map(const struct cmap *prev, const uint32_t *members, uint32_t n)
{
	struct cmap *m = cmap_dup(prev);

	assert_non_null(m);
	m->epoch = prev->epoch + 1;
	if (members) {
		m->pools[0].pgs[0].nmembers = n;
		memset(m->pools[0].pgs[0].members, 0, sizeof(m->pools[0].pgs[0].members));
		memcpy(m->pools[0].pgs[0].members, members, n * sizeof(*members));
	}
	return m;
}

static void set_up(struct cmap *m, uint32_t id, bool up)
{
	struct cmap_server *s = (struct cmap_server *)cmap_server(m, id);

	assert_non_null(s);
	s->up = up;
}

static void test_update_pgs(void **state)
{
	static const uint32_t m123[] = {1, 2, 3}, m321[] = {3, 2, 1}, m423[] = {4, 2, 3};
	struct cmap *e1, *e2, *e3, *e4, *e5, *e6, *e7, *e8;
	const struct cmap_pg *g;

	/* Brand-new cluster: everyone in sync, primary = first member. */
	e1 = pg_map(1, m123, 3);
	cmap_update_pgs(e1, NULL);
	g = cmap_pg(e1, 1, 0);
	assert_int_equal(g->in_sync, 0x7);
	assert_int_equal(g->primary, 1);
	assert_int_equal(g->interval, 1);
	assert_int_equal(cmap_pg_up_count(e1, g, true), 3);

	/* 1 goes down: loses in_sync, 2 becomes primary, new interval. */
	e2 = next_map(e1, NULL, 0);
	set_up(e2, 1, false);
	cmap_update_pgs(e2, e1);
	g = cmap_pg(e2, 1, 0);
	assert_int_equal(g->in_sync, 0x6);
	assert_int_equal(g->primary, 2);
	assert_int_equal(g->interval, 2);
	assert_int_equal(cmap_pg_up_count(e2, g, false), 2);

	/* 1 comes back up but stays out of sync (recovery has not reported
	 * it); same primary, but the up set changed: a new interval, so a
	 * report made before the bounce cannot mark 1 in sync. */
	e3 = next_map(e2, NULL, 0);
	set_up(e3, 1, true);
	cmap_update_pgs(e3, e2);
	g = cmap_pg(e3, 1, 0);
	assert_int_equal(g->in_sync, 0x6);
	assert_int_equal(g->primary, 2);
	assert_int_equal(g->interval, 3);
	assert_int_equal(cmap_pg_up_count(e3, g, false), 3);
	assert_int_equal(cmap_pg_up_count(e3, g, true), 2);

	/* Reordered members: bits follow server ids, not indexes; 3 now leads. */
	e4 = next_map(e3, m321, 3);
	cmap_update_pgs(e4, e3);
	g = cmap_pg(e4, 1, 0);
	assert_int_equal(g->in_sync, 0x3); /* 3 (idx 0) and 2 (idx 1) */
	assert_int_equal(g->primary, 3);
	assert_int_equal(g->interval, 4);

	/* Member replaced: 4 is new, not in sync; 2 and 3 keep their bits. */
	e5 = next_map(e4, m423, 3);
	cmap_update_pgs(e5, e4);
	g = cmap_pg(e5, 1, 0);
	assert_int_equal(g->in_sync, 0x6);
	assert_int_equal(g->primary, 2);
	assert_int_equal(g->interval, 5);
	assert_int_equal(cmap_pg_member_index(g, 4), 0);
	assert_int_equal(cmap_pg_member_index(g, 1), -1);

	/* Every in-sync member down: inactive, 4 (up) is NOT made in sync, and
	 * 2 and 3 keep their bits: they hold the newest data. */
	e6 = next_map(e5, NULL, 0);
	set_up(e6, 2, false);
	set_up(e6, 3, false);
	cmap_update_pgs(e6, e5);
	g = cmap_pg(e6, 1, 0);
	assert_int_equal(g->primary, 0);
	assert_int_equal(g->in_sync, 0x6);
	assert_int_equal(g->interval, 6);
	assert_int_equal(cmap_pg_up_count(e6, g, true), 0);

	/* 3 returns: primary again; 2, still down, now loses its bit. */
	e7 = next_map(e6, NULL, 0);
	set_up(e7, 3, true);
	cmap_update_pgs(e7, e6);
	g = cmap_pg(e7, 1, 0);
	assert_int_equal(g->primary, 3);
	assert_int_equal(g->in_sync, 0x4);
	assert_int_equal(g->interval, 7);

	/* Nothing changes: the interval is carried over. */
	{
		struct cmap *same = next_map(e7, NULL, 0);

		cmap_update_pgs(same, e7);
		assert_int_equal(cmap_pg(same, 1, 0)->interval, 7);
		cmap_free(same);
	}

	/* Recovery reported 4 in sync (mgmt sets the bit): primary is the first
	 * up in-sync member in placement order, and the interval moves. */
	e8 = next_map(e7, NULL, 0);
	e8->pools[0].pgs[0].in_sync |= 0x1;
	cmap_update_pgs(e8, e8);
	g = cmap_pg(e8, 1, 0);
	assert_int_equal(g->primary, 4);
	assert_int_equal(g->in_sync, 0x5);

	cmap_free(e8);
	cmap_free(e7);
	cmap_free(e6);
	cmap_free(e5);
	cmap_free(e4);
	cmap_free(e3);
	cmap_free(e2);
	cmap_free(e1);
}

static void test_update_pgs_new(void **state)
{
	static const uint32_t m123[] = {1, 2, 3};
	struct cmap *m, *n;
	const struct cmap_pg *g;
	uint32_t k;

	/* New cluster with member 1 already down: it misses writes from the start. */
	m = pg_map(1, m123, 3);
	set_up(m, 1, false);
	cmap_update_pgs(m, NULL);
	g = cmap_pg(m, 1, 0);
	assert_int_equal(g->in_sync, 0x6);
	assert_int_equal(g->primary, 2);

	/* A pool that prev lacks is new too: all up members in sync. */
	n = next_map(m, NULL, 0);
	add_pool(n, 2, 2, CMAP_FD_SERVER, 4);
	cmap_place(n);
	cmap_update_pgs(n, m);
	g = cmap_pg(n, 2, 3);
	assert_int_equal(g->nmembers, 2);
	assert_int_equal(g->interval, 2);
	assert_true(g->primary != 0);
	/* Server 1 is down: every member but it is in sync. */
	for (k = 0; k < g->nmembers; k++) {
		assert_int_equal((g->in_sync >> k) & 1, g->members[k] != 1);
	}
	assert_int_equal(g->primary, g->members[0] == 1 ? g->members[1] : g->members[0]);
	cmap_free(n);

	/* Empty PG (no servers in): inactive, no bits. */
	n = next_map(m, NULL, 0);
	n->pools[0].pgs[0].nmembers = 0;
	memset(n->pools[0].pgs[0].members, 0, sizeof(n->pools[0].pgs[0].members));
	cmap_update_pgs(n, m);
	g = cmap_pg(n, 1, 0);
	assert_int_equal(g->primary, 0);
	assert_int_equal(g->in_sync, 0);
	assert_int_equal(g->interval, 2);
	cmap_free(n);
	cmap_free(m);
}

/* ---- wire ---- */

/* A valid hand-built ClusterMap: 4 servers, pool 7 (3 replicas, host domain,
 * 4 PGs listed in reverse order). Each case breaks one thing. */
struct pbfix {
	Keel__ClusterMap map;
	Keel__MapServer srv[4];
	Keel__MapServer *srvp[4];
	char *tags[2];
	Keel__MapPool pool[2];
	Keel__MapPool *poolp[2];
	Keel__MapPg pg[5];
	Keel__MapPg *pgp[5];
	uint32_t members[5][CMAP_MAX_REPLICAS + 1];
};

static char str63[CMAP_NAME_LEN];
static char str64[CMAP_NAME_LEN + 1];
static char hosts[4][8] = {"h1", "h2", "h3", "h4"};
static char addr[] = "10.0.0.1:7000";
static char rack[] = "r1";
static char tag_ssd[] = "ssd";
static char pool_name[] = "rbd";

static void fix_init(struct pbfix *f)
{
	uint32_t i, k;

	memset(f, 0, sizeof(*f));
	keel__cluster_map__init(&f->map);
	f->map.epoch = 42;
	f->tags[0] = tag_ssd;
	for (i = 0; i < 4; i++) {
		keel__map_server__init(&f->srv[i]);
		f->srv[i].id = 10 + i;
		f->srv[i].addr = addr;
		f->srv[i].host = hosts[i];
		f->srv[i].rack = rack;
		f->srv[i].weight = 1 + i;
		f->srv[i].up = true;
		f->srv[i].in = true;
		f->srvp[i] = &f->srv[i];
	}
	f->srv[2].n_tags = 1;
	f->srv[2].tags = f->tags;
	f->map.n_servers = 4;
	f->map.servers = f->srvp;
	keel__map_pool__init(&f->pool[0]);
	f->pool[0].id = 7;
	f->pool[0].name = pool_name;
	f->pool[0].replicas = 3;
	f->pool[0].min_replicas = 2;
	f->pool[0].failure_domain = KEEL__FAILURE_DOMAIN__FD_HOST;
	f->pool[0].pg_count = 4;
	f->poolp[0] = &f->pool[0];
	f->map.n_pools = 1;
	f->map.pools = f->poolp;
	for (i = 0; i < 5; i++) {
		keel__map_pg__init(&f->pg[i]);
		f->pg[i].pool = 7;
		f->pg[i].pg = 3 - i; /* any order; pg[4] is a spare */
		for (k = 0; k < 3; k++) {
			f->members[i][k] = 10 + (i + k) % 4;
		}
		f->pg[i].n_members = 3;
		f->pg[i].members = f->members[i];
		f->pg[i].in_sync = 0x7;
		f->pg[i].primary = f->members[i][0];
		f->pg[i].interval = 40;
		f->pgp[i] = &f->pg[i];
	}
	f->map.n_pgs = 4;
	f->map.pgs = f->pgp;
}

static void expect_reject(const struct pbfix *f, const char *what)
{
	struct cmap *m = (struct cmap *)0x1;
	char err[128] = "";

	assert_int_equal(cmap_from_pb(&f->map, &m, err, sizeof(err)), -EINVAL);
	assert_null(m);
	if (!strstr(err, what)) {
		print_message("error \"%s\" lacks \"%s\"\n", err, what);
		fail();
	}
}

static void expect_accept(const struct pbfix *f)
{
	struct cmap *m = NULL;
	char err[128] = "";
	int ret;

	ret = cmap_from_pb(&f->map, &m, err, sizeof(err));
	if (ret) {
		print_message("rejected: %s\n", err);
	}
	assert_int_equal(ret, 0);
	assert_non_null(m);
	cmap_free(m);
}

static void test_from_pb_valid(void **state)
{
	struct pbfix f;
	struct cmap *m = NULL;
	const struct cmap_pg *g;
	char err[128];

	fix_init(&f);
	assert_int_equal(cmap_from_pb(&f.map, &m, err, sizeof(err)), 0);
	assert_int_equal(m->epoch, 42);
	assert_int_equal(m->nservers, 4);
	assert_int_equal(cmap_server(m, 12)->ntags, 1);
	assert_string_equal(cmap_server(m, 12)->tags[0], "ssd");
	assert_string_equal(cmap_server(m, 13)->host, "h4");
	assert_int_equal(cmap_server(m, 13)->weight, 4);
	assert_int_equal(cmap_pool(m, 7)->failure_domain, CMAP_FD_HOST);
	assert_int_equal(cmap_pool(m, 7)->min_replicas, 2);
	/* Stored by pg number although listed in reverse. */
	g = cmap_pg(m, 7, 3);
	assert_int_equal(g->pg, 3);
	assert_int_equal(g->members[0], 10);
	assert_int_equal(cmap_pg(m, 7, 0)->members[0], 13);
	assert_int_equal(g->interval, 40);
	cmap_free(m);

	/* Boundaries that must pass: 63-byte strings, 5 replicas, an empty PG,
	 * servers and pools listed unsorted, primary 0. */
	fix_init(&f);
	f.srv[0].host = str63;
	f.pool[0].name = str63;
	f.pool[0].replicas = 5;
	f.pg[1].n_members = 0;
	f.pg[1].in_sync = 0;
	f.pg[1].primary = 0;
	f.srvp[0] = &f.srv[3];
	f.srvp[3] = &f.srv[0];
	expect_accept(&f);

	/* An empty map is valid. */
	fix_init(&f);
	f.map.n_servers = 0;
	f.map.n_pools = 0;
	f.map.n_pgs = 0;
	expect_accept(&f);
}

static void test_from_pb_reject(void **state)
{
	struct pbfix f;

	fix_init(&f);
	f.pg[0].members[1] = 99;
	expect_reject(&f, "not a known server");

	fix_init(&f);
	f.srv[1].id = 10;
	expect_reject(&f, "duplicate server id");

	fix_init(&f);
	f.srv[1].id = 0;
	expect_reject(&f, "server id 0");

	fix_init(&f);
	f.srv[1].id = 65536;
	expect_reject(&f, "out of range");

	fix_init(&f);
	f.srv[1].weight = 0;
	expect_reject(&f, "weight");

	fix_init(&f);
	f.map.n_pgs = 3; /* pg 0 missing */
	expect_reject(&f, "missing");

	fix_init(&f);
	f.pg[4].pg = 2; /* five entries, pg 2 twice */
	f.map.n_pgs = 5;
	expect_reject(&f, "twice");

	fix_init(&f);
	f.pool[0].pg_count = 5;
	expect_reject(&f, "missing");

	fix_init(&f);
	f.pool[0].pg_count = 3;
	expect_reject(&f, "beyond pg_count");

	fix_init(&f);
	f.pg[2].pool = 8;
	expect_reject(&f, "unknown pool");

	fix_init(&f);
	f.pg[0].in_sync = 0x8;
	expect_reject(&f, "in_sync");

	fix_init(&f);
	f.pg[0].n_members = 2;
	f.pg[0].in_sync = 0x7;
	f.pg[0].primary = f.members[0][0];
	expect_reject(&f, "in_sync");

	fix_init(&f);
	f.pg[0].primary = 10 + (0 + 3) % 4; /* server 13: known, not a member */
	expect_reject(&f, "primary");

	fix_init(&f);
	f.pg[0].members[1] = f.pg[0].members[0];
	expect_reject(&f, "listed twice");

	fix_init(&f);
	f.members[0][3] = 13;
	f.pg[0].n_members = 4; /* more than replicas */
	expect_reject(&f, "members");

	fix_init(&f);
	f.srv[0].host = str64;
	expect_reject(&f, "host longer");

	fix_init(&f);
	f.srv[0].addr = str64;
	expect_reject(&f, "addr longer");

	fix_init(&f);
	f.srv[0].rack = str64;
	expect_reject(&f, "rack longer");

	fix_init(&f);
	f.tags[0] = str64;
	expect_reject(&f, "tag 0 longer");

	fix_init(&f);
	f.srv[2].n_tags = CMAP_MAX_TAGS + 1;
	expect_reject(&f, "tags");

	fix_init(&f);
	f.pool[0].name = str64;
	expect_reject(&f, "name longer");

	fix_init(&f);
	f.pool[0].tag = str64;
	expect_reject(&f, "tag longer");

	fix_init(&f);
	f.pool[0].replicas = 0;
	expect_reject(&f, "replicas 0");

	fix_init(&f);
	f.pool[0].replicas = 6;
	expect_reject(&f, "replicas 6");

	fix_init(&f);
	f.pool[0].min_replicas = 0;
	expect_reject(&f, "min_replicas");

	fix_init(&f);
	f.pool[0].min_replicas = 4;
	expect_reject(&f, "min_replicas");

	fix_init(&f);
	f.pool[0].failure_domain = (Keel__FailureDomain)3;
	expect_reject(&f, "failure domain");

	fix_init(&f);
	f.pool[0].pg_count = 0;
	expect_reject(&f, "pg_count 0");

	fix_init(&f);
	f.pool[0].pg_count = CMAP_MAX_PGS + 1;
	expect_reject(&f, "pg_count");

	fix_init(&f);
	f.pool[0].id = 4096;
	expect_reject(&f, "pool id");

	fix_init(&f);
	f.pool[0].id = 0;
	expect_reject(&f, "pool id");

	fix_init(&f);
	keel__map_pool__init(&f.pool[1]);
	f.pool[1] = f.pool[0];
	f.poolp[1] = &f.pool[1];
	f.map.n_pools = 2;
	expect_reject(&f, "duplicate pool id");

	fix_init(&f);
	f.map.n_servers = CMAP_MAX_SERVERS + 1;
	expect_reject(&f, "servers");

	fix_init(&f);
	f.map.n_pools = CMAP_MAX_POOLS + 1;
	expect_reject(&f, "pools");

	fix_init(&f);
	f.srvp[1] = NULL;
	expect_reject(&f, "missing");

	/* Sanity: the fixture itself is accepted, so each rejection above is
	 * due to its one change. */
	fix_init(&f);
	expect_accept(&f);
}

static void assert_maps_equal(const struct cmap *a, const struct cmap *b)
{
	uint32_t i, k;

	assert_int_equal(a->epoch, b->epoch);
	assert_int_equal(a->nservers, b->nservers);
	for (i = 0; i < a->nservers; i++) {
		const struct cmap_server *x = &a->servers[i], *y = &b->servers[i];

		assert_int_equal(x->id, y->id);
		assert_string_equal(x->addr, y->addr);
		assert_string_equal(x->host, y->host);
		assert_string_equal(x->rack, y->rack);
		assert_int_equal(x->weight, y->weight);
		assert_int_equal(x->up, y->up);
		assert_int_equal(x->in, y->in);
		assert_int_equal(x->ntags, y->ntags);
		for (k = 0; k < x->ntags; k++) {
			assert_string_equal(x->tags[k], y->tags[k]);
		}
	}
	assert_int_equal(a->npools, b->npools);
	for (i = 0; i < a->npools; i++) {
		const struct cmap_pool *x = &a->pools[i], *y = &b->pools[i];

		assert_int_equal(x->id, y->id);
		assert_string_equal(x->name, y->name);
		assert_string_equal(x->tag, y->tag);
		assert_int_equal(x->replicas, y->replicas);
		assert_int_equal(x->min_replicas, y->min_replicas);
		assert_int_equal(x->failure_domain, y->failure_domain);
		assert_int_equal(x->pg_count, y->pg_count);
		/* struct cmap_pg has no padding holes; unused member slots are 0. */
		assert_memory_equal(x->pgs, y->pgs, x->pg_count * sizeof(struct cmap_pg));
	}
	assert_int_equal(a->nlayers, b->nlayers);
	for (i = 0; i < a->nlayers; i++) {
		assert_int_equal(a->layers[i].inode, b->layers[i].inode);
		assert_int_equal(a->layers[i].state, b->layers[i].state);
		assert_int_equal(a->layers[i].merge_into, b->layers[i].merge_into);
		assert_int_equal(a->layers[i].merge_pool, b->layers[i].merge_pool);
	}
}

static void test_pack_roundtrip(void **state)
{
	struct cmap *m, *prev, *back = NULL;
	struct cmap_server s;
	struct cmap_pool p;
	uint8_t *buf = NULL, junk[64];
	size_t len = 0;
	char err[128];
	uint32_t i;

	rng_state = 7;
	prev = random_cluster(20, 100);
	for (i = 0; i < prev->nservers; i += 3) {
		strcpy(prev->servers[i].tags[0], "ssd");
		strcpy(prev->servers[i].tags[1], "fast");
		prev->servers[i].ntags = 2;
	}
	p = mk_pool(9, 3, CMAP_FD_HOST, 300);
	p.min_replicas = 2;
	assert_int_equal(cmap_add_pool(prev, &p), 0);
	p = mk_pool(2, 2, CMAP_FD_SERVER, 17);
	strcpy(p.tag, "ssd");
	assert_int_equal(cmap_add_pool(prev, &p), 0);
	cmap_place(prev);
	cmap_update_pgs(prev, NULL);
	m = cmap_dup(prev);
	m->epoch = 77;
	m->servers[4].up = false;
	m->servers[5].in = false;
	s = mk_server(5000, 77, 1, 9);
	assert_int_equal(cmap_add_server(m, &s), 0);
	cmap_place(m);
	cmap_update_pgs(m, prev);
	{
		const struct cmap_layer l[] = {
			{.inode = 7ull << 16 | 3, .state = CMAP_LAYER_DELETING},
			{.inode = 7ull << 16 | 1,
			 .state = CMAP_LAYER_RO,
			 .merge_into = 7ull << 16 | 2,
			 .merge_pool = 1},
			{.inode = 2ull << 16, .state = CMAP_LAYER_RO},
		};
		struct cmap_layer bad[] = {{.inode = 5, .state = CMAP_LAYER_RO},
					   {.inode = 5, .state = CMAP_LAYER_DELETING}};
		struct cmap_layer badm[] = {
			{.inode = 7ull << 16 | 3, .state = CMAP_LAYER_DELETING},
			{.inode = 7ull << 16 | 1,
			 .state = CMAP_LAYER_RO,
			 .merge_into = 7ull << 16 | 3,
			 .merge_pool = 1},
		};

		assert_int_equal(cmap_set_layers(m, l, 3), 0);
		assert_int_equal(cmap_layer_state(m, 7ull << 16 | 1), CMAP_LAYER_RO);
		assert_int_equal(cmap_layer_state(m, 7ull << 16 | 3), CMAP_LAYER_DELETING);
		assert_int_equal(cmap_layer_state(m, 7ull << 16 | 2), CMAP_LAYER_WRITABLE);
		assert_int_equal(cmap_layer_state(m, 1), CMAP_LAYER_WRITABLE);
		assert_int_equal(cmap_set_layers(m, bad, 2), -EINVAL);
		bad[1].inode = 0;
		assert_int_equal(cmap_set_layers(m, bad, 2), -EINVAL);
		bad[1] = (struct cmap_layer){.inode = 6, .state = CMAP_LAYER_WRITABLE};
		assert_int_equal(cmap_set_layers(m, bad, 2), -EINVAL);
		/* merges: never into a deleting layer, itself, another family,
		 * without a pool, or from a layer that is not read-only */
		assert_int_equal(cmap_set_layers(m, badm, 2), -EINVAL);
		badm[1].merge_into = 7ull << 16 | 1;
		assert_int_equal(cmap_set_layers(m, badm, 2), -EINVAL);
		badm[1].merge_into = 8ull << 16 | 2;
		assert_int_equal(cmap_set_layers(m, badm, 2), -EINVAL);
		badm[1].merge_into = 7ull << 16 | 2;
		badm[1].merge_pool = 0;
		assert_int_equal(cmap_set_layers(m, badm, 2), -EINVAL);
		badm[1].merge_pool = 1;
		badm[0].merge_into = 7ull << 16 | 2;
		badm[0].merge_pool = 1;
		assert_int_equal(cmap_set_layers(m, badm, 2), -EINVAL);
		assert_int_equal(m->nlayers, 3); /* unchanged by the failures */
		assert_int_equal(cmap_layer_merge_into(m, 7ull << 16 | 1), 7ull << 16 | 2);
		assert_int_equal(cmap_layer_merge_into(m, 7ull << 16 | 2), 0);
		assert_int_equal(cmap_layer_merge_into(m, 2ull << 16), 0);
	}

	assert_int_equal(cmap_pack(m, &buf, &len), 0);
	assert_non_null(buf);
	assert_true(len > 0);
	assert_int_equal(cmap_unpack(buf, len, &back, err, sizeof(err)), 0);
	assert_maps_equal(m, back);
	cmap_free(back);
	free(buf);

	/* Empty map round trip. */
	cmap_free(m);
	m = cmap_new(3);
	assert_int_equal(cmap_pack(m, &buf, &len), 0);
	assert_int_equal(cmap_unpack(buf, len, &back, err, sizeof(err)), 0);
	assert_maps_equal(m, back);
	cmap_free(back);
	free(buf);

	/* Garbage is not a map. */
	memset(junk, 0xff, sizeof(junk));
	back = (struct cmap *)0x1;
	assert_int_equal(cmap_unpack(junk, sizeof(junk), &back, err, sizeof(err)), -EINVAL);
	assert_null(back);
	assert_true(strlen(err) > 0);

	cmap_free(m);
	cmap_free(prev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_build_lookup),
		cmocka_unit_test(test_place_deterministic),
		cmocka_unit_test(test_place_domains),
		cmocka_unit_test(test_place_undersized),
		cmocka_unit_test(test_place_weights),
		cmocka_unit_test(test_place_tags),
		cmocka_unit_test(test_place_movement),
		cmocka_unit_test(test_update_pgs),
		cmocka_unit_test(test_update_pgs_new),
		cmocka_unit_test(test_from_pb_valid),
		cmocka_unit_test(test_from_pb_reject),
		cmocka_unit_test(test_pack_roundtrip),
	};

	memset(str63, 'a', sizeof(str63) - 1);
	memset(str64, 'b', sizeof(str64) - 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
