/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of server/srv_pg.c: epoch checks, fencing, versions, write
 * completion and the recovery diffs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/srv_pg.h"

/* A map with servers 1..5 (up unless listed in @down) and one pool of 3
 * replicas, min 2, with PG 0 = members {1, 2, 3}, primary 1, all in sync. */
struct fixture {
	struct cmap m;
	struct cmap_server servers[5];
	struct cmap_pool pool;
	struct cmap_pg pgs[1];
};

static void fixture_init(struct fixture *f, uint32_t down_mask)
{
	memset(f, 0, sizeof(*f));
	for (uint32_t i = 0; i < 5; i++) {
		f->servers[i].id = i + 1;
		f->servers[i].up = !(down_mask & (1u << (i + 1)));
		f->servers[i].in = true;
		f->servers[i].weight = 1;
	}
	f->pool.id = 1;
	f->pool.replicas = 3;
	f->pool.min_replicas = 2;
	f->pool.pg_count = 1;
	f->pool.pgs = f->pgs;
	f->pgs[0].pool = 1;
	f->pgs[0].pg = 0;
	f->pgs[0].nmembers = 3;
	f->pgs[0].members[0] = 1;
	f->pgs[0].members[1] = 2;
	f->pgs[0].members[2] = 3;
	f->pgs[0].primary = 1;
	f->pgs[0].in_sync = 7;
	f->pgs[0].interval = 5;
	f->m.epoch = 7;
	f->m.nservers = 5;
	f->m.servers = f->servers;
	f->m.npools = 1;
	f->m.pools = &f->pool;
}

static void test_view(void **state)
{
	struct fixture f;
	struct srv_pg pg, pg2;

	fixture_init(&f, 1u << 3);
	memset(&pg, 0, sizeof(pg));
	assert_true(pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1));
	assert_int_equal(pg.role, SRV_PG_PRIMARY);
	assert_int_equal(pg.self, 0);
	assert_int_equal(pg.up, 3); /* server 3 is down */
	memset(&pg2, 0, sizeof(pg2));
	assert_true(pg_view_update(&pg2, &f.m, &f.pool, &f.pgs[0], 2));
	assert_int_equal(pg2.role, SRV_PG_REPLICA);
	assert_false(pg_view_update(&pg2, &f.m, &f.pool, &f.pgs[0], 4));
	assert_null(pg_map_server(&f.m, 9));
	assert_non_null(pg_map_server(&f.m, 5));
	pg2 = pg;
	assert_false(pg_view_changed(&pg, &pg2));
	pg2.in_sync = 3;
	assert_true(pg_view_changed(&pg, &pg2));
}

static void test_client_check(void **state)
{
	struct fixture f;
	struct srv_pg pg, rep;

	fixture_init(&f, 0);
	memset(&pg, 0, sizeof(pg));
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	memset(&rep, 0, sizeof(rep));
	pg_view_update(&rep, &f.m, &f.pool, &f.pgs[0], 2);
	assert_int_equal(pg_check_client(&pg, 7, 7), 0);
	assert_int_equal(pg_check_client(&pg, 7, 5), 0);	/* == interval */
	assert_int_equal(pg_check_client(&pg, 7, 4), -ESTALE);	/* before the interval */
	assert_int_equal(pg_check_client(&pg, 7, 8), -ESTALE);	/* ahead of our map */
	assert_int_equal(pg_check_client(&rep, 7, 7), -ESTALE); /* not primary */
	assert_int_equal(pg_check_client(NULL, 7, 7), -ESTALE); /* not a member */
}

static void test_replica_fencing(void **state)
{
	struct fixture f;
	struct srv_pg rep;

	fixture_init(&f, 0);
	memset(&rep, 0, sizeof(rep));
	pg_view_update(&rep, &f.m, &f.pool, &f.pgs[0], 2);
	assert_int_equal(pg_check_replica(&rep, 7, 7, 1), 0);
	assert_int_equal(pg_check_replica(&rep, 7, 5, 1), 0);
	/* an old primary from before the interval is fenced */
	assert_int_equal(pg_check_replica(&rep, 7, 4, 1), -ESTALE);
	/* a server that is not the primary is refused */
	assert_int_equal(pg_check_replica(&rep, 7, 7, 3), -ESTALE);
	assert_int_equal(pg_check_replica(&rep, 7, 7, 0), -ESTALE);
	/* the sender has a newer map: it retries after we get it */
	assert_int_equal(pg_check_replica(&rep, 7, 9, 3), -EAGAIN);
	assert_int_equal(pg_check_replica(NULL, 7, 7, 1), -ESTALE);
	assert_int_equal(pg_check_replica(NULL, 7, 8, 1), -EAGAIN);
}

static void test_versions(void **state)
{
	uint64_t base = 5ull << 32, v;

	assert_int_equal(pg_next_version(0, 5, 0), base + 1);
	/* strictly above the object's version even from an older interval */
	assert_int_equal(pg_next_version(0, 5, (3ull << 32) | 99), base + 1);
	assert_int_equal(pg_next_version(base + 7, 5, base + 3), base + 8);
	assert_int_equal(pg_next_version(base + 7, 5, base + 9), base + 10);
	/* monotonic over a sequence, and a re-created object never repeats */
	v = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t n = pg_next_version(v, 5, i % 3 ? v : 0);

		assert_true(n > v);
		v = n;
	}
	/* a later interval is above everything of an earlier one */
	assert_true(pg_next_version(0, 6, 0) > pg_next_version(base | 0xfffffffe, 5, 0));
}

static void test_write_complete(void **state)
{
	struct fixture f;
	struct srv_pg pg;
	uint32_t sent[2] = {2, 3};
	bool done[2] = {false, false};

	fixture_init(&f, 0);
	memset(&pg, 0, sizeof(pg));
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	assert_true(pg_writable(&pg));
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, false));
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, true));
	done[0] = true;
	/* never ack on fewer than the acting set */
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, true));
	done[1] = true;
	assert_true(pg_write_complete(&pg, sent, done, NULL, 2, true));
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, false));

	/* member 3 fails: the write waits until the map removes it ... */
	done[1] = false;
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, true));
	fixture_init(&f, 1u << 3);
	f.pgs[0].in_sync = 3;
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	/* ... then completes on the rest (2 >= min_replicas) */
	assert_true(pg_write_complete(&pg, sent, done, NULL, 2, true));
	assert_true(pg_writable(&pg));

	/* below min_replicas: not writable, never complete */
	fixture_init(&f, (1u << 3) | (1u << 2));
	f.pgs[0].in_sync = 1;
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	assert_false(pg_writable(&pg));
	done[0] = done[1] = true;
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, true));

	/* a recovering member (up, not in sync) must have it, but does not count */
	fixture_init(&f, 0);
	f.pgs[0].in_sync = 3;
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	done[0] = true;
	done[1] = false;
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, true));
	done[1] = true;
	assert_true(pg_write_complete(&pg, sent, done, NULL, 2, true));
	/* ... unless it lacks the object's previous state and recovery will
	 * copy it: then it is neither waited for nor counted */
	{
		bool behind[2] = {false, true};

		done[1] = false;
		assert_true(pg_write_complete(&pg, sent, done, behind, 2, true));
		done[0] = false; /* only our copy: below min_replicas */
		assert_false(pg_write_complete(&pg, sent, done, behind, 2, true));
		done[0] = true;
		/* a map that shows it in sync: it must have the write after all */
		fixture_init(&f, 0);
		f.pgs[0].in_sync = 7;
		pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
		assert_false(pg_write_complete(&pg, sent, done, behind, 2, true));
		assert_true(pg_member_in_sync(&pg, 3));
		fixture_init(&f, 0);
		f.pgs[0].in_sync = 3;
		pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
		assert_false(pg_member_in_sync(&pg, 3));
		assert_true(pg_member_in_sync(&pg, 2));
		done[1] = true;
	}
	/* recovering members that acknowledged count toward min_replicas:
	 * they only acknowledge with a complete copy of the object */
	fixture_init(&f, 1u << 3);
	f.pgs[0].in_sync = 1;
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	assert_true(pg_writable(&pg));
	done[0] = false;
	done[1] = false;
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, true));
	done[0] = true;
	assert_true(pg_write_complete(&pg, sent, done, NULL, 2, true));
	/* a dropped member (id 0) is not waited for */
	sent[0] = 0;
	assert_false(pg_write_complete(&pg, sent, done, NULL, 2, true));
	sent[0] = 2;
	/* a primary that is not in sync never writes */
	f.pgs[0].in_sync = 2;
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	assert_false(pg_writable(&pg));
	fixture_init(&f, 0);
	f.pgs[0].in_sync = 3;
	pg_view_update(&pg, &f.m, &f.pool, &f.pgs[0], 1);
	assert_true(pg_member_up(&pg, 3));
	assert_false(pg_member_up(&pg, 1)); /* self */
	assert_false(pg_member_up(&pg, 4)); /* not a member */
}

static void test_diff_runs(void **state)
{
	uint64_t pv[16] = {0}, rv[16] = {0};
	struct pg_run runs[16];
	unsigned int n;

	assert_int_equal(pg_diff_runs(pv, rv, 16, 4, runs, 16), 0);
	pv[1] = 5;
	pv[2] = 5;
	rv[3] = 4; /* member has a block we unmapped */
	pv[7] = 9;
	rv[7] = 8;
	for (int i = 10; i < 16; i++) {
		pv[i] = 11;
	}
	n = pg_diff_runs(pv, rv, 16, 4, runs, 16);
	assert_int_equal(n, 4);
	assert_int_equal(runs[0].blk, 1);
	assert_int_equal(runs[0].nblk, 3);
	assert_int_equal(runs[1].blk, 7);
	assert_int_equal(runs[1].nblk, 1);
	assert_int_equal(runs[2].blk, 10);
	assert_int_equal(runs[2].nblk, 4); /* split at max_run */
	assert_int_equal(runs[3].blk, 14);
	assert_int_equal(runs[3].nblk, 2);
	/* every differing block is covered exactly once, nothing else */
	{
		int cover[16] = {0};

		for (unsigned int r = 0; r < n; r++) {
			for (uint32_t b = runs[r].blk; b < runs[r].blk + runs[r].nblk; b++) {
				cover[b]++;
			}
		}
		for (int b = 0; b < 16; b++) {
			assert_int_equal(cover[b], pv[b] != rv[b] ? 1 : 0);
		}
	}
	assert_int_equal(pg_diff_runs(pv, rv, 16, 4, runs, 2), 2);
}

static void test_list_diff(void **state)
{
	struct pg_obj_ent local[] = {{1, 0, 10, 1}, {1, 1, 11, 1}, {1, 3, 13, 1}, {2, 0, 5, 2}};
	struct pg_obj_ent remote[] = {
		{1, 0, 10, 1}, {1, 1, 9, 1}, {1, 2, 7, 1}, {2, 0, 5, 2}, {3, 0, 1, 1}};
	struct pg_obj_todo out[16];
	unsigned int n;

	n = pg_list_diff(local, 4, remote, 5, true, 0, 0, out, 16);
	assert_int_equal(n, 4);
	assert_int_equal(out[0].objno, 1);
	assert_int_equal(out[0].action, PG_OBJ_PUSH); /* differs */
	assert_int_equal(out[1].objno, 2);
	assert_int_equal(out[1].action, PG_OBJ_DELETE); /* only on the member */
	assert_int_equal(out[2].objno, 3);
	assert_int_equal(out[2].action, PG_OBJ_PUSH); /* member lacks it */
	assert_int_equal(out[3].inode, 3);
	assert_int_equal(out[3].action, PG_OBJ_DELETE);
	/* bounded: nothing past (1, 2) */
	n = pg_list_diff(local, 4, remote, 5, false, 1, 2, out, 16);
	assert_int_equal(n, 2);
	assert_int_equal(out[1].action, PG_OBJ_DELETE);
	/* identical lists: nothing to do */
	n = pg_list_diff(local, 4, local, 4, true, 0, 0, out, 16);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view),
		cmocka_unit_test(test_client_check),
		cmocka_unit_test(test_replica_fencing),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_write_complete),
		cmocka_unit_test(test_diff_runs),
		cmocka_unit_test(test_list_diff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
