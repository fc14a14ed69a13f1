/* SPDX-License-Identifier: Apache-2.0 */
/* mg_merge_plan(): which deleted snapshots merge into their child, which
 * wait, and which merges are cancelled (docs/volumes.md "Merging a
 * deleted snapshot"). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "mgmt/mg_cluster.h"

#define F(x) (7ull << 16 | (x))

static unsigned int pool_calls;

static uint32_t pool_of(void *arg, uint64_t family)
{
	pool_calls++;
	return family == 7 ? *(uint32_t *)arg : 0;
}

/* A layer: @snap snapshots name it, @top is a volume's top. */
static void add(struct mg_layers *t, uint64_t inode, uint64_t parent, uint32_t state,
		uint32_t nsnaps, bool top)
{
	struct mg_layer l = {
		.inode = inode, .parent = parent, .state = state, .nsnaps = nsnaps, .top = top};

	assert_int_equal(mg_layer_add(t, &l), 0);
}

static uint64_t into(struct mg_layers *t, uint64_t inode)
{
	return mg_layer_find(t, inode)->merge_into;
}

/* base (snapshot) <- S (deleted) <- C (snapshot) <- top */
static void test_plan_one(void **state)
{
	struct mg_layers t = {0};
	uint32_t pool = 3;

	(void)state;
	add(&t, F(1), 0, CMAP_LAYER_RO, 1, false);
	add(&t, F(2), F(1), CMAP_LAYER_RO, 0, false);
	add(&t, F(3), F(2), CMAP_LAYER_RO, 1, false);
	add(&t, F(4), F(3), CMAP_LAYER_WRITABLE, 0, true);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 42), 1);
	assert_int_equal(into(&t, F(2)), F(3));
	assert_int_equal(mg_layer_find(&t, F(2))->merge_pool, 3);
	assert_int_equal(mg_layer_find(&t, F(2))->merge_epoch, 42);
	assert_int_equal(into(&t, F(1)), 0);
	assert_int_equal(into(&t, F(3)), 0);
	/* planning again changes nothing */
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 43), 0);
	assert_int_equal(mg_layer_find(&t, F(2))->merge_epoch, 42);
	/* the child deleted (a revert released it): the merge is cancelled */
	mg_layer_find(&t, F(3))->state = CMAP_LAYER_DELETING;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 44), 1);
	assert_int_equal(into(&t, F(2)), 0);
	mg_layers_free(&t);
}

/* A deleted snapshot with two live children (a clone) is kept, not
 * merged; a deleting child does not count. The top of a volume, a
 * snapshot and a layer of an unknown pool never merge. */
static void test_plan_kept(void **state)
{
	struct mg_layers t = {0};
	uint32_t pool = 1;

	(void)state;
	add(&t, F(1), 0, CMAP_LAYER_RO, 0, false);
	add(&t, F(2), F(1), CMAP_LAYER_WRITABLE, 0, true);
	add(&t, F(3), F(1), CMAP_LAYER_WRITABLE, 0, true);
	add(&t, F(4), F(2), CMAP_LAYER_DELETING, 0, false);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 1), 0);
	mg_layer_find(&t, F(3))->state = CMAP_LAYER_DELETING;
	mg_layer_find(&t, F(3))->top = false;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 2), 1);
	assert_int_equal(into(&t, F(1)), F(2));
	mg_layers_free(&t);

	/* family 8: pool_of knows no volume of it */
	memset(&t, 0, sizeof(t));
	add(&t, 8ull << 16 | 1, 0, CMAP_LAYER_RO, 0, false);
	add(&t, 8ull << 16 | 2, 8ull << 16 | 1, CMAP_LAYER_WRITABLE, 0, true);
	pool_calls = 0;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 1), 0);
	assert_int_equal(pool_calls, 1);
	assert_int_equal(mg_layer_find(&t, 8ull << 16 | 1)->merge_into, 0);
	mg_layers_free(&t);
}

/* Deleted snapshots one above the other: the one nearest the top merges
 * first, the one below waits for it, then merges into the same child. */
static void test_plan_stacked(void **state)
{
	struct mg_layers t = {0};
	uint32_t pool = 1;
	struct mg_layer *b;

	(void)state;
	add(&t, F(1), 0, CMAP_LAYER_RO, 0, false);    /* A: deleted */
	add(&t, F(2), F(1), CMAP_LAYER_RO, 0, false); /* B: deleted */
	add(&t, F(3), F(2), CMAP_LAYER_RO, 1, false); /* C: snapshot */
	add(&t, F(4), F(3), CMAP_LAYER_WRITABLE, 0, true);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 1), 1);
	assert_int_equal(into(&t, F(2)), F(3));
	assert_int_equal(into(&t, F(1)), 0);
	/* C's snapshot deleted meanwhile: C is hidden with one child, but a
	 * merge into it runs, so it waits too */
	mg_layer_find(&t, F(3))->nsnaps = 0;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 2), 0);
	assert_int_equal(into(&t, F(3)), 0);
	mg_layer_find(&t, F(3))->nsnaps = 1;
	/* B's merge completes (mg_volume_merge_complete): C reads through A */
	b = mg_layer_find(&t, F(2));
	b->merge_into = 0;
	b->state = CMAP_LAYER_DELETING;
	mg_layer_find(&t, F(3))->parent = F(1);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 3), 1);
	assert_int_equal(into(&t, F(1)), F(3));
	mg_layers_free(&t);
}

/* A running merge whose child itself becomes mergeable keeps going. */
static void test_plan_keeps_running(void **state)
{
	struct mg_layers t = {0};
	uint32_t pool = 1;

	(void)state;
	add(&t, F(1), 0, CMAP_LAYER_RO, 0, false);
	add(&t, F(2), F(1), CMAP_LAYER_RO, 1, false);
	add(&t, F(3), F(2), CMAP_LAYER_WRITABLE, 0, true);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 1), 1);
	assert_int_equal(into(&t, F(1)), F(2));
	mg_layer_find(&t, F(2))->nsnaps = 0; /* its snapshot deleted too */
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 2), 0);
	assert_int_equal(into(&t, F(1)), F(2));
	assert_int_equal(into(&t, F(2)), 0);
	/* a second child of the merging layer (cannot be made through the
	 * API: the layer has no snapshot to clone) cancels it */
	add(&t, F(5), F(1), CMAP_LAYER_WRITABLE, 0, true);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 3), 2);
	assert_int_equal(into(&t, F(1)), 0);
	assert_int_equal(into(&t, F(2)), F(3));
	mg_layers_free(&t);
}

/* Online flatten: the nearest parent merges into the flattening top
 * (even a live snapshot with other children), one at a time; a deleted
 * snapshot's own merge into the top counts as the step; the flatten ends
 * when no parent is left or the top goes. */
static void test_plan_flatten(void **state)
{
	struct mg_layers t = {0};
	uint32_t pool = 2;

	(void)state;
	add(&t, F(1), 0, CMAP_LAYER_RO, 1, false);    /* snapshot, clone origin */
	add(&t, F(2), F(1), CMAP_LAYER_RO, 1, false); /* snapshot */
	add(&t, F(3), F(2), CMAP_LAYER_WRITABLE, 0, true);
	add(&t, F(4), F(1), CMAP_LAYER_WRITABLE, 0, true); /* a clone of F(1) */
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 1), 0);
	mg_layer_find(&t, F(3))->flattening = true;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 2), 1);
	assert_int_equal(into(&t, F(2)), F(3));
	assert_int_equal(into(&t, F(1)), 0);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 3), 0);
	/* step done (mg_volume_merge_complete): F(3) reads through F(1) */
	mg_layer_find(&t, F(2))->merge_into = 0;
	mg_layer_find(&t, F(3))->parent = F(1);
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 4), 1);
	assert_int_equal(into(&t, F(1)), F(3)); /* although F(4) reads through it */
	mg_layer_find(&t, F(1))->merge_into = 0;
	mg_layer_find(&t, F(3))->parent = 0;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 5), 1);
	assert_false(mg_layer_find(&t, F(3))->flattening);
	/* a revert deletes the flattening top: step and flatten cancelled */
	mg_layer_find(&t, F(4))->flattening = true;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 6), 1);
	assert_int_equal(into(&t, F(1)), F(4));
	mg_layer_find(&t, F(4))->state = CMAP_LAYER_DELETING;
	mg_layer_find(&t, F(4))->top = false;
	assert_int_equal(mg_merge_plan(&t, pool_of, &pool, 7), 2);
	assert_int_equal(into(&t, F(1)), 0);
	assert_false(mg_layer_find(&t, F(4))->flattening);
	mg_layers_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_one),
		cmocka_unit_test(test_plan_kept),
		cmocka_unit_test(test_plan_stacked),
		cmocka_unit_test(test_plan_keeps_running),
		cmocka_unit_test(test_plan_flatten),
	};

	klog_set_level(KLOG_FATAL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
