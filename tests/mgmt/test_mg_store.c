/* SPDX-License-Identifier: Apache-2.0 */
/* mg_store: schema, rows, transactions and rollback. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/log.h"
#include "mgmt/mg_store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct mg_store *st;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	klog_set_level(KLOG_FATAL);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_mg_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/mgmt.db", f->dir);
	assert_int_equal(mg_store_open(f->path, &f->st, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	mg_store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	char err[256];

	mg_store_close(f->st);
	assert_int_equal(mg_store_open(f->path, &f->st, err, sizeof(err)), 0);
}

static int raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW) {
		v = sqlite3_column_int(s, 0);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static struct mg_volume_rec vol(uint64_t id, const char *name)
{
	struct mg_volume_rec v;

	memset(&v, 0, sizeof(v));
	v.id = id;
	snprintf(v.name, sizeof(v.name), "%s", name);
	v.size = 1 << 30;
	v.pool = 1;
	v.object_size = 4 << 20;
	v.created_at = 1700000000;
	snprintf(v.uuid, sizeof(v.uuid), "00000000-0000-4000-8000-%012llu", (unsigned long long)id);
	v.top = id << 16;
	v.qos_iops = v.qos_bps = MG_QOS_POOL;
	return v;
}

static void add_pool(struct mg_store *st, uint32_t id, const char *name)
{
	struct mg_pool_rec p;

	memset(&p, 0, sizeof(p));
	p.id = id;
	snprintf(p.name, sizeof(p.name), "%s", name);
	p.replicas = 3;
	p.min_replicas = 2;
	p.failure_domain = 1;
	p.pg_count = 8;
	assert_int_equal(mg_store_begin(st), 0);
	assert_int_equal(mg_store_put_pool(st, &p), 0);
	assert_int_equal(mg_store_commit(st), 0);
}

static void test_schema(void **state)
{
	struct fixture *f = *state;
	struct mg_meta m;

	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), MG_STORE_SCHEMA);
	assert_int_equal(raw_int(f->path, "PRAGMA journal_mode = WAL") >= 0 ? 1 : 0, 1);
	assert_int_equal(mg_store_get_meta(f->st, &m), 0);
	assert_int_equal(m.epoch, 0);
	assert_int_equal(m.next_server_id, 1);
	assert_int_equal(m.next_pool_id, 1);
	assert_int_equal(m.next_volume_id, 1);
	/* Opening again does not recreate (or fail on) the schema. */
	reopen(f);
	assert_int_equal(mg_store_get_meta(f->st, &m), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM meta"), 1);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct mg_store *st;
	char err[256] = "";
	sqlite3 *db;

	mg_store_close(f->st);
	f->st = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(mg_store_open(f->path, &st, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "newer"));
	/* teardown closes f->st: give it a fresh store elsewhere */
	snprintf(f->path, sizeof(f->path), "%s/other.db", f->dir);
	assert_int_equal(mg_store_open(f->path, &f->st, err, sizeof(err)), 0);
}

static int count_volumes(void *arg, const struct mg_volume_rec *v)
{
	(*(int *)arg)++;
	return 0;
}

static void test_volumes(void **state)
{
	struct fixture *f = *state;
	struct mg_volume_rec v = vol(7, "alpha"), got;
	int n = 0;

	add_pool(f->st, 1, "default");
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_add_volume(f->st, &v), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	reopen(f);
	assert_int_equal(mg_store_get_volume(f->st, "alpha", &got), 0);
	assert_int_equal(got.id, 7);
	assert_int_equal(got.size, 1 << 30);
	assert_int_equal(got.object_size, 4 << 20);
	assert_int_equal(got.created_at, 1700000000);
	assert_int_equal(mg_store_get_volume(f->st, "beta", &got), -ENOENT);
	/* Duplicate name, duplicate id. */
	assert_int_equal(mg_store_begin(f->st), 0);
	v.id = 8;
	assert_int_equal(mg_store_add_volume(f->st, &v), -EEXIST);
	mg_store_rollback(f->st);
	assert_int_equal(mg_store_begin(f->st), 0);
	v = vol(7, "beta");
	assert_int_equal(mg_store_add_volume(f->st, &v), -EEXIST);
	mg_store_rollback(f->st);
	assert_int_equal(mg_store_each_volume(f->st, count_volumes, &n), 0);
	assert_int_equal(n, 1);
	/* Delete. */
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_delete_volume(f->st, "alpha"), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_delete_volume(f->st, "alpha"), -ENOENT);
	mg_store_rollback(f->st);
	assert_int_equal(mg_store_get_volume(f->st, "alpha", &got), -ENOENT);
}

static int collect_attach(void *arg, const struct mg_attach_rec *a)
{
	struct mg_attach_rec *out = arg;

	out[out[0].generation == 0 ? 0 : 1] = *a;
	return 0;
}

static void test_attachments(void **state)
{
	struct fixture *f = *state;
	struct mg_volume_rec v = vol(7, "alpha");
	struct mg_attach_rec a, got, list[2];
	struct mg_meta m;

	add_pool(f->st, 1, "default");
	memset(&a, 0, sizeof(a));
	a.volume_id = 7;
	snprintf(a.host, sizeof(a.host), "hv1");
	a.generation = 5;
	a.nbd = true;
	a.state = MG_ATTACH_ATTACHED;
	snprintf(a.vhost_socket, sizeof(a.vhost_socket), "/run/keel/alpha.vhost");
	snprintf(a.nbd_tcp, sizeof(a.nbd_tcp), "10.0.0.5:10809");
	assert_int_equal(mg_store_begin(f->st), 0);
	/* The volume must exist (foreign key). */
	assert_int_not_equal(mg_store_put_attach(f->st, &a), 0);
	mg_store_rollback(f->st);
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_add_volume(f->st, &v), 0);
	assert_int_equal(mg_store_put_attach(f->st, &a), 0);
	assert_int_equal(mg_store_get_meta(f->st, &m), 0);
	assert_int_equal(m.next_attach_gen, 1);
	m.next_attach_gen = 6;
	assert_int_equal(mg_store_put_meta(f->st, &m), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	reopen(f);
	assert_int_equal(mg_store_get_attach(f->st, 7, "hv1", &got), 0);
	assert_string_equal(got.volume, "alpha");
	assert_int_equal(got.generation, 5);
	assert_true(got.nbd && !got.read_only);
	assert_int_equal(got.state, MG_ATTACH_ATTACHED);
	assert_string_equal(got.vhost_socket, "/run/keel/alpha.vhost");
	assert_string_equal(got.nbd_tcp, "10.0.0.5:10809");
	/* A new row got a uuid (written back); a replaced row keeps it. */
	assert_int_equal(strlen(a.uuid), MG_UUID_LEN - 1);
	assert_string_equal(got.uuid, a.uuid);
	assert_string_equal(got.volume_uuid, v.uuid);
	snprintf(got.instance, sizeof(got.instance), "%s", v.uuid);
	got.state = MG_ATTACH_ERROR;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_put_attach(f->st, &got), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	assert_int_equal(mg_store_get_attach_uuid(f->st, a.uuid, &got), 0);
	assert_string_equal(got.host, "hv1");
	assert_string_equal(got.instance, v.uuid);
	assert_int_equal(got.state, MG_ATTACH_ERROR);
	assert_int_equal(mg_store_get_attach_uuid(f->st, v.uuid, &got), -ENOENT);
	assert_int_equal(mg_store_get_meta(f->st, &m), 0);
	assert_int_equal(m.next_attach_gen, 6);
	assert_int_equal(mg_store_get_attach(f->st, 7, "hv2", &got), -ENOENT);
	/* A second host (a new row: no uuid yet); filters by volume and by
	 * host. */
	snprintf(a.host, sizeof(a.host), "hv2");
	a.uuid[0] = '\0';
	a.generation = 6;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_put_attach(f->st, &a), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	memset(list, 0, sizeof(list));
	assert_int_equal(mg_store_each_attach(f->st, 7, NULL, collect_attach, list), 0);
	assert_string_equal(list[0].host, "hv1");
	assert_string_equal(list[1].host, "hv2");
	memset(list, 0, sizeof(list));
	assert_int_equal(mg_store_each_attach(f->st, 0, "hv2", collect_attach, list), 0);
	assert_int_equal(list[0].generation, 6);
	assert_int_equal(list[1].generation, 0);
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_delete_attach(f->st, 7, "hv1"), 0);
	assert_int_equal(mg_store_delete_attach(f->st, 7, "hv1"), -ENOENT);
	assert_int_equal(mg_store_commit(f->st), 0);
	assert_int_equal(mg_store_get_attach(f->st, 7, "hv1", &got), -ENOENT);
}

/* A version 1 database (before attachments) is migrated in place to the
 * current version and keeps its rows. The v1 schema is frozen, so it is
 * spelled out here. */
static void test_migrate_v1(void **state)
{
	static const char v1[] =
		"CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT "
		"NULL, next_server_id INTEGER NOT NULL, next_pool_id INTEGER NOT NULL, "
		"next_volume_id INTEGER NOT NULL);"
		"INSERT INTO meta VALUES (1, 42, 3, 2, 9);"
		"CREATE TABLE servers (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, addr TEXT "
		"NOT NULL, host TEXT NOT NULL, rack TEXT NOT NULL, weight INTEGER NOT NULL, tags "
		"TEXT NOT NULL, in_flag INTEGER NOT NULL, down_since INTEGER NOT NULL, "
		"capacity_bytes INTEGER NOT NULL, used_bytes INTEGER NOT NULL);"
		"CREATE TABLE pools (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, replicas "
		"INTEGER NOT NULL, min_replicas INTEGER NOT NULL, failure_domain INTEGER NOT NULL, "
		"pg_count INTEGER NOT NULL, tag TEXT NOT NULL, has_data INTEGER NOT NULL);"
		"INSERT INTO pools VALUES (1, 'default', 3, 2, 1, 8, '', 1);"
		"CREATE TABLE pgs (pool INTEGER NOT NULL REFERENCES pools(id), pg INTEGER NOT NULL, "
		"members TEXT NOT NULL, in_sync INTEGER NOT NULL, interval INTEGER NOT NULL, "
		"\"primary\" INTEGER NOT NULL, PRIMARY KEY (pool, pg));"
		"CREATE TABLE volumes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size "
		"INTEGER NOT NULL, pool INTEGER NOT NULL REFERENCES pools(id), object_size INTEGER "
		"NOT NULL, created_at INTEGER NOT NULL);"
		"INSERT INTO volumes VALUES (8, 'old', 4096, 1, 4194304, 1700000000);"
		"PRAGMA user_version = 1;";
	struct fixture *f = *state;
	struct mg_volume_rec v;
	struct mg_attach_rec a;
	struct mg_meta m;
	char err[256];
	sqlite3 *db;

	mg_store_close(f->st);
	snprintf(f->path, sizeof(f->path), "%s/v1.db", f->dir);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(mg_store_open(f->path, &f->st, err, sizeof(err)), 0);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), MG_STORE_SCHEMA);
	assert_int_equal(mg_store_get_meta(f->st, &m), 0);
	assert_int_equal(m.epoch, 42);
	assert_int_equal(m.next_volume_id, 9);
	assert_int_equal(m.next_attach_gen, 1);
	assert_int_equal(mg_store_get_volume(f->st, "old", &v), 0);
	assert_int_equal(v.id, 8);
	/* v4: the volume is a family of one writable layer, with a uuid. */
	assert_int_equal(v.top, 8ull << 16);
	assert_int_equal(strlen(v.uuid), 36);
	assert_int_equal(v.uuid[14], '4');
	{
		struct mg_volume_rec byuuid;
		uint32_t next = 0;

		assert_int_equal(mg_store_get_volume(f->st, v.uuid, &byuuid), 0);
		assert_int_equal(byuuid.id, 8);
		assert_int_equal(mg_store_get_family(f->st, 8, &next), 0);
		assert_int_equal(next, 1);
		assert_int_equal(m.next_snapshot_id, 1);
	}
	/* v7: no limits anywhere; the volume follows its pool. */
	assert_int_equal(v.qos_iops, MG_QOS_POOL);
	assert_int_equal(v.qos_bps, MG_QOS_POOL);
	assert_int_equal(raw_int(f->path, "SELECT qos_iops + qos_bps FROM pools WHERE id = 1"), 0);
	memset(&a, 0, sizeof(a));
	a.volume_id = 8;
	snprintf(a.host, sizeof(a.host), "hv1");
	a.generation = 1;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_put_attach(f->st, &a), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	assert_int_equal(mg_store_get_attach(f->st, 8, "hv1", &a), 0);
	assert_int_equal(a.qos_iops, 0);
	assert_int_equal(a.qos_bps, 0);
}

static int find_pool(void *arg, const struct mg_pool_rec *p)
{
	struct mg_pool_rec *out = arg;

	if (p->id == out->id) {
		*out = *p;
	}
	return 0;
}

/* QoS (schema v7): a pool's limits are its volumes' defaults; a volume's
 * own (NULL = none) wins, 0 included; attachments carry the effective
 * ones. */
static void test_qos(void **state)
{
	struct fixture *f = *state;
	struct mg_volume_rec v = vol(7, "alpha"), w = vol(9, "beta"), got;
	struct mg_pool_rec p = {.id = 1};
	struct mg_attach_rec a, ga;

	add_pool(f->st, 1, "default");
	assert_int_equal(mg_store_each_pool(f->st, find_pool, &p), 0);
	assert_int_equal(p.qos_iops, 0);
	p.qos_iops = 400;
	p.qos_bps = 8 << 20;
	w.qos_iops = 0;	     /* explicitly unlimited */
	w.qos_bps = 1000000; /* its own */
	memset(&a, 0, sizeof(a));
	a.volume_id = 7;
	snprintf(a.host, sizeof(a.host), "hv1");
	a.generation = 1;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_put_pool(f->st, &p), 0);
	assert_int_equal(mg_store_add_volume(f->st, &v), 0);
	assert_int_equal(mg_store_add_volume(f->st, &w), 0);
	assert_int_equal(mg_store_put_attach(f->st, &a), 0);
	a.volume_id = 9;
	a.uuid[0] = '\0';
	assert_int_equal(mg_store_put_attach(f->st, &a), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	reopen(f);
	memset(&p, 0, sizeof(p));
	p.id = 1;
	assert_int_equal(mg_store_each_pool(f->st, find_pool, &p), 0);
	assert_int_equal(p.qos_iops, 400);
	assert_int_equal(p.qos_bps, 8 << 20);
	assert_int_equal(mg_store_get_volume(f->st, "alpha", &got), 0);
	assert_int_equal(got.qos_iops, MG_QOS_POOL);
	assert_int_equal(got.qos_bps, MG_QOS_POOL);
	assert_int_equal(raw_int(f->path, "SELECT qos_iops IS NULL FROM volumes WHERE id = 7"), 1);
	assert_int_equal(mg_store_get_volume(f->st, "beta", &got), 0);
	assert_int_equal(got.qos_iops, 0);
	assert_int_equal(got.qos_bps, 1000000);
	assert_int_equal(mg_store_get_attach(f->st, 7, "hv1", &ga), 0);
	assert_int_equal(ga.qos_iops, 400);
	assert_int_equal(ga.qos_bps, 8 << 20);
	assert_int_equal(mg_store_get_attach(f->st, 9, "hv1", &ga), 0);
	assert_int_equal(ga.qos_iops, 0);
	assert_int_equal(ga.qos_bps, 1000000);
	/* A change of the volume's own limits; back to the pool's. */
	got.qos_iops = 50;
	got.qos_bps = MG_QOS_POOL;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_update_volume(f->st, &got), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	assert_int_equal(mg_store_get_attach(f->st, 9, "hv1", &ga), 0);
	assert_int_equal(ga.qos_iops, 50);
	assert_int_equal(ga.qos_bps, 8 << 20);
}

static int count_layers(void *arg, const struct mg_layer_rec *l)
{
	(*(int *)arg)++;
	(void)l;
	return 0;
}

/* Layers, families and snapshots (schema v4). */
static void test_layers_snapshots(void **state)
{
	struct fixture *f = *state;
	struct mg_volume_rec a = vol(1, "a"), got;
	struct mg_layer_rec l0 = {1 << 16, 0, 1, 5}, l1 = {1 << 16 | 1, 1 << 16, 0, 6};
	struct mg_snap_rec sn, back;
	uint32_t next = 0;
	int n = 0;

	add_pool(f->st, 1, "default");
	memset(&sn, 0, sizeof(sn));
	sn.id = 1;
	snprintf(sn.uuid, sizeof(sn.uuid), "11111111-1111-4111-8111-111111111111");
	snprintf(sn.name, sizeof(sn.name), "s1");
	sn.volume_id = 1;
	sn.inode = 1 << 16;
	sn.size = 1 << 30;
	a.top = l1.inode;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_add_volume(f->st, &a), 0);
	assert_int_equal(mg_store_put_layer(f->st, &l0), 0);
	assert_int_equal(mg_store_put_layer(f->st, &l1), 0);
	assert_int_equal(mg_store_put_family(f->st, 1, 2), 0);
	assert_int_equal(mg_store_add_snap(f->st, &sn), 0);
	sn.id = 2;
	sn.uuid[0] = '2';
	assert_int_equal(mg_store_add_snap(f->st, &sn), -EEXIST); /* same name, same volume */
	assert_int_equal(mg_store_commit(f->st), 0);

	assert_int_equal(mg_store_get_family(f->st, 1, &next), 0);
	assert_int_equal(next, 2);
	assert_int_equal(mg_store_get_family(f->st, 2, &next), -ENOENT);
	assert_int_equal(mg_store_each_layer(f->st, count_layers, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(mg_store_get_snap(f->st, 1, "s1", &back), 0);
	assert_string_equal(back.volume, "a");
	assert_int_equal(back.inode, 1 << 16);
	assert_int_equal(mg_store_get_snap(f->st, 0, "11111111-1111-4111-8111-111111111111", &back), 0);
	assert_int_equal(mg_store_get_snap(f->st, 0, "s1", &back), -ENOENT);
	assert_int_equal(mg_store_get_volume(f->st, a.uuid, &got), 0);
	assert_int_equal(got.top, l1.inode);

	got.size *= 2;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_update_volume(f->st, &got), 0);
	assert_int_equal(mg_store_delete_snap(f->st, 1), 0);
	assert_int_equal(mg_store_delete_snap(f->st, 1), -ENOENT);
	assert_int_equal(mg_store_delete_layer(f->st, l0.inode), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	assert_int_equal(mg_store_get_volume_id(f->st, 1, &got), 0);
	assert_int_equal(got.size, 2ull << 30);
	n = 0;
	assert_int_equal(mg_store_each_layer(f->st, count_layers, &n), 0);
	assert_int_equal(n, 1);
}

/* A change that fails half-way leaves nothing behind, not even the parts
 * that succeeded before the failure. */
static void test_rollback(void **state)
{
	struct fixture *f = *state;
	struct mg_volume_rec a = vol(1, "a"), b = vol(2, "b"), dup = vol(3, "a"), got;
	struct mg_meta m, m2;
	int n = 0;

	add_pool(f->st, 1, "default");
	assert_int_equal(mg_store_get_meta(f->st, &m), 0);
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_true(mg_store_in_transaction(f->st));
	assert_int_equal(mg_store_add_volume(f->st, &a), 0);
	m2 = m;
	m2.next_volume_id = 4;
	m2.epoch = 99;
	assert_int_equal(mg_store_put_meta(f->st, &m2), 0);
	assert_int_equal(mg_store_add_volume(f->st, &b), 0);
	assert_int_equal(mg_store_add_volume(f->st, &dup), -EEXIST);
	mg_store_rollback(f->st);
	assert_false(mg_store_in_transaction(f->st));
	assert_int_equal(mg_store_get_volume(f->st, "a", &got), -ENOENT);
	assert_int_equal(mg_store_get_volume(f->st, "b", &got), -ENOENT);
	assert_int_equal(mg_store_get_meta(f->st, &m2), 0);
	assert_int_equal(m2.epoch, m.epoch);
	assert_int_equal(m2.next_volume_id, m.next_volume_id);
	/* Nothing reached the file either. */
	reopen(f);
	assert_int_equal(mg_store_each_volume(f->st, count_volumes, &n), 0);
	assert_int_equal(n, 0);
	/* A foreign key violation (no such pool) is an error, not a row. */
	b.pool = 42;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_add_volume(f->st, &b), -EIO);
	mg_store_rollback(f->st);
	assert_int_equal(mg_store_get_volume(f->st, "b", &got), -ENOENT);
}

static int collect_server(void *arg, const struct mg_server_rec *s)
{
	*(struct mg_server_rec *)arg = *s;
	return 0;
}

static void test_servers(void **state)
{
	struct fixture *f = *state;
	struct mg_server_rec s, got;

	memset(&s, 0, sizeof(s));
	s.id = 3;
	snprintf(s.uuid, sizeof(s.uuid), "00112233-4455-6677-8899-aabbccddeeff");
	snprintf(s.addr, sizeof(s.addr), "10.0.0.3:7400");
	snprintf(s.host, sizeof(s.host), "h3");
	snprintf(s.rack, sizeof(s.rack), "r1");
	snprintf(s.tags, sizeof(s.tags), "nvme,fast");
	s.weight = 100;
	s.in = true;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_put_server(f->st, &s), 0);
	/* Upsert by id. */
	s.down_since_ms = 12345;
	s.in = false;
	assert_int_equal(mg_store_put_server(f->st, &s), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	reopen(f);
	memset(&got, 0, sizeof(got));
	assert_int_equal(mg_store_each_server(f->st, collect_server, &got), 0);
	assert_int_equal(got.id, 3);
	assert_string_equal(got.uuid, s.uuid);
	assert_string_equal(got.tags, "nvme,fast");
	assert_false(got.in);
	assert_int_equal(got.down_since_ms, 12345);
	/* Another id with the same uuid is refused. */
	s.id = 4;
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_put_server(f->st, &s), -EEXIST);
	mg_store_rollback(f->st);
}

static int collect_pg(void *arg, const struct mg_pg_rec *pg)
{
	*(struct mg_pg_rec *)arg = *pg;
	return 0;
}

static int stop_at_first(void *arg, const struct mg_pg_rec *pg)
{
	return -ECANCELED;
}

static void test_pgs(void **state)
{
	struct fixture *f = *state;
	struct mg_pg_rec pg = {.pool = 1,
			       .pg = 5,
			       .nmembers = 3,
			       .members = {4, 1, 9},
			       .primary = 1,
			       .in_sync = 6,
			       .interval = 17};
	struct mg_pg_rec got;
	sqlite3 *db;

	add_pool(f->st, 1, "default");
	assert_int_equal(mg_store_begin(f->st), 0);
	assert_int_equal(mg_store_put_pg(f->st, &pg), 0);
	assert_int_equal(mg_store_commit(f->st), 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(mg_store_each_pg(f->st, collect_pg, &got), 0);
	assert_memory_equal(&got, &pg, sizeof(pg));
	assert_int_equal(mg_store_each_pg(f->st, stop_at_first, NULL), -ECANCELED);
	/* A damaged member list is an error, never an overflow. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db, "UPDATE pgs SET members = '1,2,3,4,5,6'", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(mg_store_each_pg(f->st, collect_pg, &got), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pgs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attachments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layers_snapshots, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
