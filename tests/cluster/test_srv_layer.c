/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of server/srv_layer.c: ReadChain checks, layer fencing, chain
 * merges, recovery's filter and the usage report's selection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/frame.h"
#include "server/srv_layer.h"

#define F(fam, layer) ((uint64_t)(fam) << 16 | (layer))

/* A map whose layer list is @ro (RO) and @del (DELETING). */
static struct cmap *map_with(const uint64_t *ro, unsigned int nro, const uint64_t *del,
			     unsigned int ndel)
{
	struct cmap *m = cmap_new(3);
	struct cmap_layer l[16];
	unsigned int i, n = 0;

	assert_non_null(m);
	for (i = 0; i < nro; i++) {
		l[n++] = (struct cmap_layer){.inode = ro[i], .state = CMAP_LAYER_RO};
	}
	for (i = 0; i < ndel; i++) {
		l[n++] = (struct cmap_layer){.inode = del[i], .state = CMAP_LAYER_DELETING};
	}
	assert_int_equal(cmap_set_layers(m, l, n), 0);
	return m;
}

static void test_chain_check(void **state)
{
	uint64_t p[KP_READ_CHAIN_MAX + 1];
	unsigned int i;

	for (i = 0; i <= KP_READ_CHAIN_MAX; i++) {
		p[i] = F(7, i + 1);
	}
	assert_int_equal(layer_chain_check(F(7, 99), p, 0), 0);
	assert_int_equal(layer_chain_check(F(7, 99), p, KP_READ_CHAIN_MAX), 0);
	assert_int_equal(layer_chain_check(F(7, 99), p, KP_READ_CHAIN_MAX + 1), -EINVAL);
	p[3] = F(8, 1); /* another family: another PG */
	assert_int_equal(layer_chain_check(F(7, 99), p, 3), 0);
	assert_int_equal(layer_chain_check(F(7, 99), p, 4), -EINVAL);
	p[3] = 0;
	assert_int_equal(layer_chain_check(F(7, 99), p, 4), -EINVAL);
	/* family 0 is a family like any other, but a parent is never inode 0 */
	p[0] = 0;
	assert_int_equal(layer_chain_check(5, p, 1), -EINVAL);
	p[0] = 9;
	assert_int_equal(layer_chain_check(5, p, 1), 0);
	/* the inode itself is no parent */
	p[0] = F(7, 2);
	assert_int_equal(layer_chain_check(F(7, 2), p, 1), -EINVAL);
	/* the top bits are compared too */
	p[0] = F(7, 1) | (1ull << 63);
	assert_int_equal(layer_chain_check(F(7, 2), p, 1), -EINVAL);
}

static void test_fencing(void **state)
{
	uint64_t ro[] = {F(1, 1), F(1, 2)}, del[] = {F(1, 5)};
	uint64_t chain_ok[] = {F(1, 2), F(1, 1)}, chain_del[] = {F(1, 2), F(1, 5)};
	struct cmap *m = map_with(ro, 2, del, 1), *empty = cmap_new(3);

	assert_int_equal(layer_mutation_check(m, F(1, 3)), 0);
	assert_int_equal(layer_mutation_check(m, F(1, 1)), -EROFS);
	assert_int_equal(layer_mutation_check(m, F(1, 5)), -EROFS);
	assert_int_equal(layer_mutation_check(empty, F(1, 5)), 0);
	assert_int_equal(layer_mutation_check(NULL, F(1, 5)), 0);
	/* reads of a snapshot view are fine, of a deleting layer not; a
	 * read of a read-only layer as a volume's top (no KP_F_SNAP) is a
	 * stale top: EROFS, the client reopens */
	assert_int_equal(layer_read_check(m, F(1, 1), NULL, 0, true), 0);
	assert_int_equal(layer_read_check(m, F(1, 1), NULL, 0, false), -EROFS);
	assert_int_equal(layer_read_check(m, F(1, 5), NULL, 0, true), -EROFS);
	assert_int_equal(layer_read_check(m, F(1, 3), chain_ok, 2, false), 0);
	assert_int_equal(layer_read_check(m, F(1, 3), chain_del, 2, false), -EROFS);
	assert_int_equal(layer_read_check(empty, F(1, 3), chain_del, 2, false), 0);
	assert_int_equal(layer_read_check(empty, F(1, 1), NULL, 0, false), 0);
	cmap_free(m);
	cmap_free(empty);
}

static void test_lists_equal(void **state)
{
	uint64_t a[] = {F(1, 1), F(2, 1)}, b[] = {F(2, 1), F(1, 1)}, c[] = {F(1, 1)};
	struct cmap *m1 = map_with(a, 2, NULL, 0), *m2 = map_with(b, 2, NULL, 0);
	struct cmap *m3 = map_with(c, 1, a + 1, 1), *m4 = cmap_new(9);

	assert_true(layer_lists_equal(m1, m2));	 /* sorted by cmap_set_layers() */
	assert_false(layer_lists_equal(m1, m3)); /* same inodes, a state differs */
	assert_false(layer_lists_equal(m1, m4));
	assert_true(layer_lists_equal(NULL, m4));
	assert_false(layer_lists_equal(NULL, m1));
	assert_true(layer_lists_equal(NULL, NULL));
	cmap_free(m1);
	cmap_free(m2);
	cmap_free(m3);
	cmap_free(m4);
}

/* Top, parent and grandparent hold different blocks: the merge resolves
 * each block from the nearest layer holding it, zeroes elsewhere. */
static void test_merge(void **state)
{
	enum { NB = 130 };
	uint8_t *dst = calloc(NB, 4096), *src = calloc(NB, 4096);
	uint32_t dcrc[NB], scrc[NB];
	uint64_t present[3] = {0}, missing[3];
	uint32_t b;

	assert_non_null(dst);
	assert_non_null(src);
	/* top: blocks 0 and 129 (as a bs READ leaves it: zeroes elsewhere) */
	for (b = 0; b < NB; b++) {
		dcrc[b] = 0;
	}
	dst[0] = 'T';
	dst[129 * 4096] = 'T';
	dcrc[0] = dcrc[129] = 1;
	present[0] = 1;
	present[2] = 1ull << 1;
	assert_int_equal(layer_missing_init(missing, present, NB), NB - 2);
	assert_int_equal(missing[2], 1ull); /* bits beyond block 129 stay clear */
	/* parent: blocks 0, 1, 64 */
	memset(present, 0, sizeof(present));
	for (b = 0; b < NB; b++) {
		src[(size_t)b * 4096] = 'P';
		scrc[b] = 2;
	}
	present[0] = 3;
	present[1] = 1;
	assert_int_equal(layer_merge(dst, dcrc, src, scrc, missing, present, NB), NB - 4);
	/* grandparent: every block (also the ones above: must not overwrite) */
	for (b = 0; b < NB; b++) {
		src[(size_t)b * 4096] = 'G';
		scrc[b] = 3;
	}
	present[0] = present[1] = ~0ull;
	present[2] = 0;
	assert_int_equal(layer_merge(dst, dcrc, src, scrc, missing, present, NB), 1);
	assert_int_equal(missing[2], 1ull); /* block 128: nowhere, zeroes */
	assert_int_equal(dst[0], 'T');
	assert_int_equal(dcrc[0], 1);
	assert_int_equal(dst[4096], 'P');
	assert_int_equal(dst[64 * 4096], 'P');
	assert_int_equal(dcrc[64], 2);
	assert_int_equal(dst[2 * 4096], 'G');
	assert_int_equal(dcrc[127], 3);
	assert_int_equal(dst[128 * 4096], 0);
	assert_int_equal(dcrc[128], 0);
	assert_int_equal(dst[129 * 4096], 'T');
	free(dst);
	free(src);
}

static void test_filter_todo(void **state)
{
	uint64_t del[] = {F(1, 5), F(2, 0)};
	struct cmap *m = map_with(NULL, 0, del, 2);
	struct pg_obj_todo t[] = {
		{F(1, 1), 0, PG_OBJ_PUSH, 1},	{F(1, 5), 0, PG_OBJ_PUSH, 1},
		{F(1, 5), 1, PG_OBJ_DELETE, 0}, {F(2, 0), 9, PG_OBJ_PUSH, 1},
		{F(2, 1), 9, PG_OBJ_DELETE, 0},
	};

	assert_int_equal(layer_filter_todo(m, t, 5), 2);
	assert_true(t[0].inode == F(1, 1) && t[0].action == PG_OBJ_PUSH);
	assert_true(t[1].inode == F(2, 1) && t[1].action == PG_OBJ_DELETE);
	assert_int_equal(layer_filter_todo(NULL, t, 2), 2);
	cmap_free(m);
}

static void test_usage_tab(void **state)
{
	struct layer_usage_tab t;
	uint64_t i, objs = 0, blocks = 0;

	memset(&t, 0, sizeof(t));
	layer_usage_compact(&t); /* empty: no table yet */
	assert_int_equal(t.n, 0);
	/* 5000 layers, inode i has (i % 7) + 1 objects of i % 3 blocks each */
	for (i = 1; i <= 5000; i++) {
		for (uint64_t k = 0; k <= i % 7; k++) {
			assert_int_equal(layer_usage_add(&t, i << 16, i % 3), 0);
		}
	}
	assert_int_equal(layer_usage_add(&t, 0, 5), 0); /* ignored */
	assert_int_equal(t.n, 5000);
	layer_usage_compact(&t);
	for (i = 0; i < t.n; i++) {
		uint64_t in = t.v[i].inode >> 16;

		assert_int_equal(t.v[i].objects, in % 7 + 1);
		assert_int_equal(t.v[i].blocks, (in % 7 + 1) * (in % 3));
		objs += t.v[i].objects;
		blocks += t.v[i].blocks;
	}
	assert_true(objs > 5000 && blocks > 0);
	layer_usage_free(&t);
}

static void test_usage_select(void **state)
{
	uint64_t del[] = {F(3, 1)};
	struct cmap *m = map_with(NULL, 0, del, 1);
	struct layer_usage u[] = {
		{F(1, 1), 10, 100},
		{F(2, 1), 1, 5000},
		{F(3, 1), 1, 1},
		{F(4, 1), 3, 100},
	};
	size_t one = layer_usage_packed_size(&u[2]);
	size_t all = 0;

	/* F(3,1): tag, len, inode (1 + 3), objects (1 + 1), bytes 4096 (1 + 2) */
	assert_int_equal(one, 2 + 4 + 2 + 3);
	for (unsigned int i = 0; i < 4; i++) {
		all += layer_usage_packed_size(&u[i]);
	}
	assert_int_equal(layer_usage_select(m, u, 4, all), 4);
	/* deleting first, then by bytes, inode order on ties */
	assert_true(u[0].inode == F(3, 1));
	assert_true(u[1].inode == F(2, 1));
	assert_true(u[2].inode == F(1, 1));
	assert_true(u[3].inode == F(4, 1));
	/* a budget for the deleting layer only */
	assert_int_equal(layer_usage_select(m, u, 4, one), 1);
	assert_true(u[0].inode == F(3, 1));
	assert_int_equal(layer_usage_select(m, u, 4, one - 1), 0);
	/* an empty index (a new server): nothing to sort */
	assert_int_equal(layer_usage_select(m, NULL, 0, all), 0);
	/* without a map: by bytes only */
	assert_int_equal(layer_usage_select(NULL, u, 4, all), 4);
	assert_true(u[0].inode == F(2, 1) && u[3].inode == F(3, 1));
	cmap_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_check),  cmocka_unit_test(test_fencing),
		cmocka_unit_test(test_lists_equal),  cmocka_unit_test(test_merge),
		cmocka_unit_test(test_filter_todo),  cmocka_unit_test(test_usage_tab),
		cmocka_unit_test(test_usage_select),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
