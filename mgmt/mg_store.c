/* SPDX-License-Identifier: Apache-2.0 */
/* mg_store: SQLite schema, transactions and rows of keel-mgmt's state. */
#include "mgmt/mg_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <uuid/uuid.h>

#include "common/log.h"

struct mg_store {
	sqlite3 *db;
	bool in_tx;
};

/* Schema version 1. Later versions append migrations; never edit this. */
static const char mg_schema_v1[] =
	"CREATE TABLE meta ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  epoch INTEGER NOT NULL,"
	"  next_server_id INTEGER NOT NULL,"
	"  next_pool_id INTEGER NOT NULL,"
	"  next_volume_id INTEGER NOT NULL);"
	"INSERT INTO meta VALUES (1, 0, 1, 1, 1);"
	"CREATE TABLE servers ("
	"  id INTEGER PRIMARY KEY,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  addr TEXT NOT NULL, host TEXT NOT NULL, rack TEXT NOT NULL,"
	"  weight INTEGER NOT NULL, tags TEXT NOT NULL,"
	"  in_flag INTEGER NOT NULL, down_since INTEGER NOT NULL,"
	"  capacity_bytes INTEGER NOT NULL, used_bytes INTEGER NOT NULL);"
	"CREATE TABLE pools ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  replicas INTEGER NOT NULL, min_replicas INTEGER NOT NULL,"
	"  failure_domain INTEGER NOT NULL, pg_count INTEGER NOT NULL,"
	"  tag TEXT NOT NULL, has_data INTEGER NOT NULL);"
	"CREATE TABLE pgs ("
	"  pool INTEGER NOT NULL REFERENCES pools(id),"
	"  pg INTEGER NOT NULL,"
	"  members TEXT NOT NULL, in_sync INTEGER NOT NULL,"
	"  interval INTEGER NOT NULL, \"primary\" INTEGER NOT NULL,"
	"  PRIMARY KEY (pool, pg));"
	"CREATE TABLE volumes ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  size INTEGER NOT NULL,"
	"  pool INTEGER NOT NULL REFERENCES pools(id),"
	"  object_size INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL);";

/* Version 2: volume attachments to hosts (keel-client), and the attachment
 * generation counter. */
static const char mg_schema_v2[] =
	"ALTER TABLE meta ADD COLUMN next_attach_gen INTEGER NOT NULL DEFAULT 1;"
	"CREATE TABLE attachments ("
	"  volume INTEGER NOT NULL REFERENCES volumes(id),"
	"  host TEXT NOT NULL,"
	"  read_only INTEGER NOT NULL, nbd INTEGER NOT NULL,"
	"  generation INTEGER NOT NULL, created_at INTEGER NOT NULL,"
	"  state INTEGER NOT NULL,"
	"  vhost_socket TEXT NOT NULL, nbd_uri TEXT NOT NULL, error TEXT NOT NULL,"
	"  PRIMARY KEY (volume, host));";

/* Version 3: an attachment's NBD export over TCP ("host:port", "" for none). */
static const char mg_schema_v3[] =
	"ALTER TABLE attachments ADD COLUMN nbd_tcp TEXT NOT NULL DEFAULT '';";

/* A random version 4 uuid, in SQL (for rows that predate uuids). */
#define MG_SQL_UUID                                                                                \
	"lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || "                       \
	"substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || " \
	"substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"

/* Version 4: layers, snapshots and clones (docs/volumes.md). Every volume
 * so far is a family of one layer (inode id << 16). */
static const char mg_schema_v4[] =
	"ALTER TABLE meta ADD COLUMN next_snapshot_id INTEGER NOT NULL DEFAULT 1;"
	"ALTER TABLE volumes ADD COLUMN uuid TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE volumes ADD COLUMN description TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE volumes ADD COLUMN top INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE volumes ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
	"UPDATE volumes SET top = id << 16, uuid = " MG_SQL_UUID ";"
	"CREATE UNIQUE INDEX volumes_uuid ON volumes(uuid);"
	"CREATE TABLE families (id INTEGER PRIMARY KEY, next_layer INTEGER NOT NULL);"
	"INSERT INTO families SELECT id, 1 FROM volumes;"
	"CREATE TABLE layers ("
	"  inode INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
	"  state INTEGER NOT NULL, created_at INTEGER NOT NULL);"
	"INSERT INTO layers SELECT id << 16, 0, 0, created_at FROM volumes;"
	"CREATE TABLE snapshots ("
	"  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
	"  volume INTEGER NOT NULL REFERENCES volumes(id), inode INTEGER NOT NULL,"
	"  size INTEGER NOT NULL, created_at INTEGER NOT NULL, description TEXT NOT NULL,"
	"  UNIQUE (volume, name));";

/* Version 5: attachments get a uuid (the id of an OpenStack Block Storage
 * attachment, mg_cinder.c; random for existing rows) and the instance they
 * were made for. */
static const char mg_schema_v5[] =
	"ALTER TABLE attachments ADD COLUMN uuid TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE attachments ADD COLUMN instance TEXT NOT NULL DEFAULT '';"
	"UPDATE attachments SET uuid = " MG_SQL_UUID ";"
	"CREATE UNIQUE INDEX attachments_uuid ON attachments(uuid);";

/* Version 6: volumes whose attachments are fenced (a host was detached):
 * the cluster map lists them with their live generations until
 * attach_fence_ttl_s after the last detach (mg_attach.c). */
static const char mg_schema_v6[] =
	"CREATE TABLE attach_fences (volume INTEGER PRIMARY KEY, since_ms INTEGER NOT NULL);";

/* Version 7: QoS limits (docs/operations.md). A pool's are its volumes'
 * default (0 = unlimited); a volume's NULL means "the pool's". */
static const char mg_schema_v7[] =
	"ALTER TABLE pools ADD COLUMN qos_iops INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE pools ADD COLUMN qos_bps INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE volumes ADD COLUMN qos_iops INTEGER;"
	"ALTER TABLE volumes ADD COLUMN qos_bps INTEGER;";

/* Version 8: a pool's overcommit limit (percent of its usable space the
 * volumes' sizes may add up to; 0 = none). mg_space.c. */
static const char mg_schema_v8[] =
	"ALTER TABLE pools ADD COLUMN max_overcommit_pct INTEGER NOT NULL DEFAULT 0;";

/* mg_schemas[i] takes the database from version i to i + 1. */
static const char *const mg_schemas[MG_STORE_SCHEMA] = {mg_schema_v1, mg_schema_v2, mg_schema_v3,
							mg_schema_v4, mg_schema_v5, mg_schema_v6,
							mg_schema_v7, mg_schema_v8};

void mg_uuid_new(char out[MG_UUID_LEN])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

static int mg_sql_err(struct mg_store *st, const char *what)
{
	log_error("sqlite: %s: %s", what, sqlite3_errmsg(st->db));
	return -EIO;
}

static int mg_exec(struct mg_store *st, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("sqlite: %s: %s", sql, msg ? msg : "error");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int mg_user_version(struct mg_store *st, int *out)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) {
		return mg_sql_err(st, "user_version");
	}
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	return *out < 0 ? -EIO : 0;
}

static int mg_store_migrate(struct mg_store *st, char *err, size_t errlen)
{
	char sql[64];
	int ver, ret;

	ret = mg_user_version(st, &ver);
	if (ret) {
		snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(st->db));
		return ret;
	}
	if (ver > MG_STORE_SCHEMA) {
		snprintf(err, errlen, "database schema %d is newer than this keel-mgmt (%d)", ver,
			 MG_STORE_SCHEMA);
		return -EPROTONOSUPPORT;
	}
	if (ver == MG_STORE_SCHEMA) {
		return 0;
	}
	/* Every step and its version bump are one transaction: a crash leaves
	 * the database at the old version or the new one, never between. */
	ret = mg_store_begin(st);
	if (ret) {
		goto out_err;
	}
	for (int v = ver; v < MG_STORE_SCHEMA; v++) {
		ret = mg_exec(st, mg_schemas[v]);
		if (ret) {
			goto out_rollback;
		}
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", MG_STORE_SCHEMA);
	ret = mg_exec(st, sql);
	if (ret) {
		goto out_rollback;
	}
	ret = mg_store_commit(st);
	if (ret) {
		goto out_err;
	}
	log_info("database schema version %d -> %d", ver, MG_STORE_SCHEMA);
	return 0;

out_rollback:
	mg_store_rollback(st);
out_err:
	snprintf(err, errlen, "cannot bring the schema from version %d to %d: %s", ver,
		 MG_STORE_SCHEMA, sqlite3_errmsg(st->db));
	return ret;
}

int mg_store_open(const char *path, struct mg_store **out, char *err, size_t errlen)
{
	struct mg_store *st;
	int ret;

	st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : "out of memory");
		ret = -EIO;
		goto out_close_db;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 5000);
	/* WAL + FULL: see the header for why FULL. */
	if (mg_exec(st, "PRAGMA journal_mode = WAL") || mg_exec(st, "PRAGMA synchronous = FULL") ||
	    mg_exec(st, "PRAGMA foreign_keys = ON")) {
		snprintf(err, errlen, "cannot configure database %s: %s", path,
			 sqlite3_errmsg(st->db));
		ret = -EIO;
		goto out_close_db;
	}
	ret = mg_store_migrate(st, err, errlen);
	if (ret) {
		goto out_close_db;
	}
	*out = st;
	return 0;

out_close_db:
	sqlite3_close(st->db);
	free(st);
	return ret;
}

void mg_store_close(struct mg_store *st)
{
	if (!st) {
		return;
	}
	if (st->in_tx) {
		mg_store_rollback(st);
	}
	sqlite3_close(st->db);
	free(st);
}

/* ---- transactions ---- */

int mg_store_begin(struct mg_store *st)
{
	int ret;

	kassert(!st->in_tx);
	ret = mg_exec(st, "BEGIN IMMEDIATE");
	if (!ret) {
		st->in_tx = true;
	}
	return ret;
}

int mg_store_commit(struct mg_store *st)
{
	kassert(st->in_tx);
	if (mg_exec(st, "COMMIT")) {
		mg_store_rollback(st);
		return -EIO;
	}
	st->in_tx = false;
	return 0;
}

void mg_store_rollback(struct mg_store *st)
{
	kassert(st->in_tx);
	/* A failed COMMIT may already have rolled back: then this fails
	 * harmlessly ("no transaction is active"). */
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->in_tx = false;
}

bool mg_store_in_transaction(const struct mg_store *st)
{
	return st->in_tx;
}

/* ---- statement helpers ---- */

static int mg_prepare(struct mg_store *st, const char *sql, sqlite3_stmt **s)
{
	if (sqlite3_prepare_v2(st->db, sql, -1, s, NULL) != SQLITE_OK) {
		return mg_sql_err(st, sql);
	}
	return 0;
}

/* Run a statement that returns no rows; finalizes it. */
static int mg_step_done(struct mg_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	int ret = 0;

	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		ret = -EEXIST;
	} else if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, what);
	}
	sqlite3_finalize(s);
	return ret;
}

static void mg_col_text(sqlite3_stmt *s, int col, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	snprintf(dst, len, "%s", t ? (const char *)t : "");
}

/* ---- meta ---- */

int mg_store_get_meta(struct mg_store *st, struct mg_meta *m)
{
	sqlite3_stmt *s;
	int ret;

	ret = mg_prepare(st,
			 "SELECT epoch, next_server_id, next_pool_id, next_volume_id, "
			 "next_attach_gen, next_snapshot_id FROM meta WHERE id = 1",
			 &s);
	if (ret) {
		return ret;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		ret = mg_sql_err(st, "read meta");
		goto out_finalize;
	}
	m->epoch = (uint64_t)sqlite3_column_int64(s, 0);
	m->next_server_id = (uint32_t)sqlite3_column_int64(s, 1);
	m->next_pool_id = (uint32_t)sqlite3_column_int64(s, 2);
	m->next_volume_id = (uint64_t)sqlite3_column_int64(s, 3);
	m->next_attach_gen = (uint64_t)sqlite3_column_int64(s, 4);
	m->next_snapshot_id = (uint64_t)sqlite3_column_int64(s, 5);
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

int mg_store_put_meta(struct mg_store *st, const struct mg_meta *m)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st,
			 "UPDATE meta SET epoch = ?, next_server_id = ?, next_pool_id = ?, "
			 "next_volume_id = ?, next_attach_gen = ?, next_snapshot_id = ? WHERE id = 1",
			 &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)m->epoch);
	sqlite3_bind_int64(s, 2, m->next_server_id);
	sqlite3_bind_int64(s, 3, m->next_pool_id);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)m->next_volume_id);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)m->next_attach_gen);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)m->next_snapshot_id);
	return mg_step_done(st, s, "write meta");
}

/* ---- servers ---- */

int mg_store_put_server(struct mg_store *st, const struct mg_server_rec *r)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(
		st,
		"INSERT INTO servers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
		"ON CONFLICT(id) DO UPDATE SET uuid = excluded.uuid, addr = excluded.addr, "
		"host = excluded.host, rack = excluded.rack, weight = excluded.weight, "
		"tags = excluded.tags, in_flag = excluded.in_flag, "
		"down_since = excluded.down_since, capacity_bytes = excluded.capacity_bytes, "
		"used_bytes = excluded.used_bytes",
		&s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_text(s, 2, r->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, r->addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, r->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, r->rack, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, r->weight);
	sqlite3_bind_text(s, 7, r->tags, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 8, r->in);
	sqlite3_bind_int64(s, 9, r->down_since_ms);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)r->capacity_bytes);
	sqlite3_bind_int64(s, 11, (sqlite3_int64)r->used_bytes);
	return mg_step_done(st, s, "write server");
}

int mg_store_each_server(struct mg_store *st, int (*cb)(void *arg, const struct mg_server_rec *r),
			 void *arg)
{
	struct mg_server_rec r;
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st,
			 "SELECT id, uuid, addr, host, rack, weight, tags, in_flag, down_since, "
			 "capacity_bytes, used_bytes FROM servers ORDER BY id",
			 &s);
	if (ret) {
		return ret;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		r.id = (uint32_t)sqlite3_column_int64(s, 0);
		mg_col_text(s, 1, r.uuid, sizeof(r.uuid));
		mg_col_text(s, 2, r.addr, sizeof(r.addr));
		mg_col_text(s, 3, r.host, sizeof(r.host));
		mg_col_text(s, 4, r.rack, sizeof(r.rack));
		r.weight = (uint32_t)sqlite3_column_int64(s, 5);
		mg_col_text(s, 6, r.tags, sizeof(r.tags));
		r.in = sqlite3_column_int(s, 7) != 0;
		r.down_since_ms = sqlite3_column_int64(s, 8);
		r.capacity_bytes = (uint64_t)sqlite3_column_int64(s, 9);
		r.used_bytes = (uint64_t)sqlite3_column_int64(s, 10);
		ret = cb(arg, &r);
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read servers");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

/* ---- pools ---- */

int mg_store_put_pool(struct mg_store *st, const struct mg_pool_rec *p)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st,
			 "INSERT INTO pools (id, name, replicas, min_replicas, failure_domain, "
			 "pg_count, tag, has_data, qos_iops, qos_bps, max_overcommit_pct) "
			 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
			 "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
			 "replicas = excluded.replicas, min_replicas = excluded.min_replicas, "
			 "failure_domain = excluded.failure_domain, pg_count = excluded.pg_count, "
			 "tag = excluded.tag, has_data = excluded.has_data, "
			 "qos_iops = excluded.qos_iops, qos_bps = excluded.qos_bps, "
			 "max_overcommit_pct = excluded.max_overcommit_pct",
			 &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, p->id);
	sqlite3_bind_text(s, 2, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, p->replicas);
	sqlite3_bind_int64(s, 4, p->min_replicas);
	sqlite3_bind_int(s, 5, p->failure_domain);
	sqlite3_bind_int64(s, 6, p->pg_count);
	sqlite3_bind_text(s, 7, p->tag, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 8, p->has_data);
	sqlite3_bind_int64(s, 9, (sqlite3_int64)p->qos_iops);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)p->qos_bps);
	sqlite3_bind_int64(s, 11, (sqlite3_int64)p->max_overcommit_pct);
	return mg_step_done(st, s, "write pool");
}

int mg_store_each_pool(struct mg_store *st, int (*cb)(void *arg, const struct mg_pool_rec *p),
		       void *arg)
{
	struct mg_pool_rec p;
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st,
			 "SELECT id, name, replicas, min_replicas, failure_domain, pg_count, tag, "
			 "has_data, qos_iops, qos_bps, max_overcommit_pct FROM pools ORDER BY id",
			 &s);
	if (ret) {
		return ret;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&p, 0, sizeof(p));
		p.id = (uint32_t)sqlite3_column_int64(s, 0);
		mg_col_text(s, 1, p.name, sizeof(p.name));
		p.replicas = (uint32_t)sqlite3_column_int64(s, 2);
		p.min_replicas = (uint32_t)sqlite3_column_int64(s, 3);
		p.failure_domain = sqlite3_column_int(s, 4);
		p.pg_count = (uint32_t)sqlite3_column_int64(s, 5);
		mg_col_text(s, 6, p.tag, sizeof(p.tag));
		p.has_data = sqlite3_column_int(s, 7) != 0;
		p.qos_iops = (uint64_t)sqlite3_column_int64(s, 8);
		p.qos_bps = (uint64_t)sqlite3_column_int64(s, 9);
		p.max_overcommit_pct = (uint32_t)sqlite3_column_int64(s, 10);
		ret = cb(arg, &p);
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read pools");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

/* ---- PGs: members stored as "3,1,7" ---- */

int mg_store_put_pg(struct mg_store *st, const struct mg_pg_rec *pg)
{
	char members[CMAP_MAX_REPLICAS * 12] = "";
	size_t off = 0;
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx && pg->nmembers <= CMAP_MAX_REPLICAS);
	for (uint32_t i = 0; i < pg->nmembers; i++) {
		off += (size_t)snprintf(members + off, sizeof(members) - off, "%s%u", i ? "," : "",
					pg->members[i]);
	}
	ret = mg_prepare(st, "INSERT OR REPLACE INTO pgs VALUES (?, ?, ?, ?, ?, ?)", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, pg->pool);
	sqlite3_bind_int64(s, 2, pg->pg);
	sqlite3_bind_text(s, 3, members, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 4, pg->in_sync);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)pg->interval);
	sqlite3_bind_int64(s, 6, pg->primary);
	return mg_step_done(st, s, "write pg");
}

/* The database is ours, but a damaged one must not overflow members[]. */
static int mg_parse_members(const char *text, struct mg_pg_rec *pg)
{
	const char *p = text;
	char *end;

	pg->nmembers = 0;
	while (*p) {
		unsigned long v = strtoul(p, &end, 10);

		if (end == p || v == 0 || v > 65535 || pg->nmembers == CMAP_MAX_REPLICAS) {
			return -EIO;
		}
		pg->members[pg->nmembers++] = (uint32_t)v;
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',') {
			return -EIO;
		}
	}
	return 0;
}

int mg_store_each_pg(struct mg_store *st, int (*cb)(void *arg, const struct mg_pg_rec *pg),
		     void *arg)
{
	struct mg_pg_rec pg;
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st,
			 "SELECT pool, pg, members, in_sync, interval, \"primary\" FROM pgs "
			 "ORDER BY pool, pg",
			 &s);
	if (ret) {
		return ret;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *members = sqlite3_column_text(s, 2);

		memset(&pg, 0, sizeof(pg));
		pg.pool = (uint32_t)sqlite3_column_int64(s, 0);
		pg.pg = (uint32_t)sqlite3_column_int64(s, 1);
		if (mg_parse_members(members ? (const char *)members : "", &pg)) {
			log_error("sqlite: pg %u.%u: bad member list", pg.pool, pg.pg);
			ret = -EIO;
			goto out_finalize;
		}
		pg.in_sync = (uint32_t)sqlite3_column_int64(s, 3);
		pg.interval = (uint64_t)sqlite3_column_int64(s, 4);
		pg.primary = (uint32_t)sqlite3_column_int64(s, 5);
		ret = cb(arg, &pg);
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read pgs");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

/* ---- volumes ---- */

#define MG_VOLUME_COLS                                                                             \
	"id, name, size, pool, object_size, created_at, uuid, description, top, origin, "          \
	"qos_iops, qos_bps"

/* A volume's own limit: NULL (MG_QOS_POOL) or a value. */
static void mg_bind_qos(sqlite3_stmt *s, int col, int64_t v)
{
	if (v < 0) {
		sqlite3_bind_null(s, col);
	} else {
		sqlite3_bind_int64(s, col, v);
	}
}

static int64_t mg_col_qos(sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) == SQLITE_NULL) {
		return MG_QOS_POOL;
	}
	return sqlite3_column_int64(s, col) < 0 ? MG_QOS_POOL : sqlite3_column_int64(s, col);
}

static void mg_volume_bind(sqlite3_stmt *s, const struct mg_volume_rec *v)
{
	sqlite3_bind_int64(s, 1, (sqlite3_int64)v->id);
	sqlite3_bind_text(s, 2, v->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)v->size);
	sqlite3_bind_int64(s, 4, v->pool);
	sqlite3_bind_int64(s, 5, v->object_size);
	sqlite3_bind_int64(s, 6, v->created_at);
	sqlite3_bind_text(s, 7, v->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, v->description, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 9, (sqlite3_int64)v->top);
	sqlite3_bind_text(s, 10, v->origin, -1, SQLITE_STATIC);
	mg_bind_qos(s, 11, v->qos_iops);
	mg_bind_qos(s, 12, v->qos_bps);
}

int mg_store_add_volume(struct mg_store *st, const struct mg_volume_rec *v)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st,
			 "INSERT INTO volumes (" MG_VOLUME_COLS
			 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			 &s);
	if (ret) {
		return ret;
	}
	mg_volume_bind(s, v);
	return mg_step_done(st, s, "add volume");
}

int mg_store_update_volume(struct mg_store *st, const struct mg_volume_rec *v)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(
		st,
		"UPDATE volumes SET id = ?1, name = ?2, size = ?3, pool = ?4, "
		"object_size = ?5, created_at = ?6, uuid = ?7, description = ?8, top = ?9, "
		"origin = ?10, qos_iops = ?11, qos_bps = ?12 WHERE id = ?1",
		&s);
	if (ret) {
		return ret;
	}
	mg_volume_bind(s, v);
	ret = mg_step_done(st, s, "update volume");
	if (!ret && sqlite3_changes(st->db) == 0) {
		ret = -ENOENT;
	}
	return ret;
}

static void mg_volume_from_row(sqlite3_stmt *s, struct mg_volume_rec *v)
{
	memset(v, 0, sizeof(*v));
	v->id = (uint64_t)sqlite3_column_int64(s, 0);
	mg_col_text(s, 1, v->name, sizeof(v->name));
	v->size = (uint64_t)sqlite3_column_int64(s, 2);
	v->pool = (uint32_t)sqlite3_column_int64(s, 3);
	v->object_size = (uint32_t)sqlite3_column_int64(s, 4);
	v->created_at = sqlite3_column_int64(s, 5);
	mg_col_text(s, 6, v->uuid, sizeof(v->uuid));
	mg_col_text(s, 7, v->description, sizeof(v->description));
	v->top = (uint64_t)sqlite3_column_int64(s, 8);
	mg_col_text(s, 9, v->origin, sizeof(v->origin));
	v->qos_iops = mg_col_qos(s, 10);
	v->qos_bps = mg_col_qos(s, 11);
}

/* One row by a text or integer key: 0, -ENOENT, -EIO. */
static int mg_get_row(struct mg_store *st, const char *sql, const char *text, int64_t num,
		      void (*from_row)(sqlite3_stmt *s, void *out), void *out, const char *what)
{
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st, sql, &s);
	if (ret) {
		return ret;
	}
	if (text) {
		sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_int64(s, 1, num);
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		from_row(s, out);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = mg_sql_err(st, what);
	}
	sqlite3_finalize(s);
	return ret;
}

static void mg_volume_row(sqlite3_stmt *s, void *out)
{
	mg_volume_from_row(s, out);
}

int mg_store_get_volume(struct mg_store *st, const char *name, struct mg_volume_rec *v)
{
	return mg_get_row(st, "SELECT " MG_VOLUME_COLS " FROM volumes WHERE name = ?1 OR uuid = ?1",
			  name, 0, mg_volume_row, v, "read volume");
}

int mg_store_get_volume_id(struct mg_store *st, uint64_t id, struct mg_volume_rec *v)
{
	return mg_get_row(st, "SELECT " MG_VOLUME_COLS " FROM volumes WHERE id = ?", NULL,
			  (int64_t)id, mg_volume_row, v, "read volume");
}

int mg_store_delete_volume(struct mg_store *st, const char *name)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "DELETE FROM volumes WHERE name = ?", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	ret = mg_step_done(st, s, "delete volume");
	if (!ret && sqlite3_changes(st->db) == 0) {
		ret = -ENOENT;
	}
	return ret;
}

int mg_store_each_volume(struct mg_store *st, int (*cb)(void *arg, const struct mg_volume_rec *v),
			 void *arg)
{
	struct mg_volume_rec v;
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st, "SELECT " MG_VOLUME_COLS " FROM volumes ORDER BY id", &s);
	if (ret) {
		return ret;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		mg_volume_from_row(s, &v);
		ret = cb(arg, &v);
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read volumes");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

/* ---- families, layers, snapshots ---- */

int mg_store_get_family(struct mg_store *st, uint64_t id, uint32_t *next_layer)
{
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st, "SELECT next_layer FROM families WHERE id = ?", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*next_layer = (uint32_t)sqlite3_column_int64(s, 0);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = mg_sql_err(st, "read family");
	}
	sqlite3_finalize(s);
	return ret;
}

int mg_store_put_family(struct mg_store *st, uint64_t id, uint32_t next_layer)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "INSERT OR REPLACE INTO families VALUES (?, ?)", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	sqlite3_bind_int64(s, 2, next_layer);
	return mg_step_done(st, s, "write family");
}

int mg_store_put_layer(struct mg_store *st, const struct mg_layer_rec *l)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "INSERT OR REPLACE INTO layers VALUES (?, ?, ?, ?)", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)l->inode);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)l->parent);
	sqlite3_bind_int64(s, 3, l->state);
	sqlite3_bind_int64(s, 4, l->created_at);
	return mg_step_done(st, s, "write layer");
}

int mg_store_delete_layer(struct mg_store *st, uint64_t inode)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "DELETE FROM layers WHERE inode = ?", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)inode);
	return mg_step_done(st, s, "delete layer");
}

int mg_store_each_layer(struct mg_store *st, int (*cb)(void *arg, const struct mg_layer_rec *l),
			void *arg)
{
	struct mg_layer_rec l;
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st, "SELECT inode, parent, state, created_at FROM layers ORDER BY inode",
			 &s);
	if (ret) {
		return ret;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l.inode = (uint64_t)sqlite3_column_int64(s, 0);
		l.parent = (uint64_t)sqlite3_column_int64(s, 1);
		l.state = (uint32_t)sqlite3_column_int64(s, 2);
		l.created_at = sqlite3_column_int64(s, 3);
		ret = cb(arg, &l);
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read layers");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

#define MG_SNAP_COLS                                                                               \
	"s.id, s.uuid, s.name, s.volume, s.inode, s.size, s.created_at, s.description, v.name"

static void mg_snap_from_row(sqlite3_stmt *s, void *out)
{
	struct mg_snap_rec *sn = out;

	memset(sn, 0, sizeof(*sn));
	sn->id = (uint64_t)sqlite3_column_int64(s, 0);
	mg_col_text(s, 1, sn->uuid, sizeof(sn->uuid));
	mg_col_text(s, 2, sn->name, sizeof(sn->name));
	sn->volume_id = (uint64_t)sqlite3_column_int64(s, 3);
	sn->inode = (uint64_t)sqlite3_column_int64(s, 4);
	sn->size = (uint64_t)sqlite3_column_int64(s, 5);
	sn->created_at = sqlite3_column_int64(s, 6);
	mg_col_text(s, 7, sn->description, sizeof(sn->description));
	mg_col_text(s, 8, sn->volume, sizeof(sn->volume));
}

int mg_store_add_snap(struct mg_store *st, const struct mg_snap_rec *sn)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)sn->id);
	sqlite3_bind_text(s, 2, sn->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, sn->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)sn->volume_id);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)sn->inode);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)sn->size);
	sqlite3_bind_int64(s, 7, sn->created_at);
	sqlite3_bind_text(s, 8, sn->description, -1, SQLITE_STATIC);
	return mg_step_done(st, s, "add snapshot");
}

int mg_store_delete_snap(struct mg_store *st, uint64_t id)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "DELETE FROM snapshots WHERE id = ?", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	ret = mg_step_done(st, s, "delete snapshot");
	if (!ret && sqlite3_changes(st->db) == 0) {
		ret = -ENOENT;
	}
	return ret;
}

int mg_store_get_snap(struct mg_store *st, uint64_t volume_id, const char *name,
		      struct mg_snap_rec *sn)
{
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st,
			 "SELECT " MG_SNAP_COLS " FROM snapshots s JOIN volumes v ON v.id = s.volume "
			 "WHERE (s.volume = ?1 AND s.name = ?2) OR (?1 = 0 AND s.uuid = ?2)",
			 &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)volume_id);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		mg_snap_from_row(s, sn);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = mg_sql_err(st, "read snapshot");
	}
	sqlite3_finalize(s);
	return ret;
}

int mg_store_each_snap(struct mg_store *st, uint64_t volume_id,
		       int (*cb)(void *arg, const struct mg_snap_rec *sn), void *arg)
{
	struct mg_snap_rec sn;
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st,
			 "SELECT " MG_SNAP_COLS " FROM snapshots s JOIN volumes v ON v.id = s.volume "
			 "WHERE ?1 = 0 OR s.volume = ?1 ORDER BY s.id",
			 &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)volume_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		mg_snap_from_row(s, &sn);
		ret = cb(arg, &sn);
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read snapshots");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

/* ---- attachments ---- */

#define MG_ATTACH_COLS                                                                             \
	"a.volume, v.name, a.host, a.read_only, a.nbd, a.generation, a.created_at, a.state, "      \
	"a.vhost_socket, a.nbd_uri, a.error, a.nbd_tcp, v.size, a.uuid, a.instance, v.uuid, "      \
	"COALESCE(v.qos_iops, p.qos_iops), COALESCE(v.qos_bps, p.qos_bps)"
/* The volume's row for its name, size and uuid; its pool's for the
 * QoS limits the volume does not set itself. */
#define MG_ATTACH_FROM                                                                             \
	" FROM attachments a JOIN volumes v ON v.id = a.volume JOIN pools p ON p.id = v.pool "

int mg_store_put_attach(struct mg_store *st, struct mg_attach_rec *a)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	if (!a->uuid[0]) {
		mg_uuid_new(a->uuid);
	}
	/* A replaced row keeps the uuid it was created with. */
	ret = mg_prepare(st,
			 "INSERT INTO attachments (volume, host, read_only, nbd, generation, "
			 "created_at, state, vhost_socket, nbd_uri, error, nbd_tcp, uuid, instance) "
			 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
			 "ON CONFLICT(volume, host) DO UPDATE SET read_only = excluded.read_only, "
			 "nbd = excluded.nbd, generation = excluded.generation, "
			 "created_at = excluded.created_at, state = excluded.state, "
			 "vhost_socket = excluded.vhost_socket, nbd_uri = excluded.nbd_uri, "
			 "error = excluded.error, nbd_tcp = excluded.nbd_tcp, "
			 "instance = excluded.instance",
			 &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)a->volume_id);
	sqlite3_bind_text(s, 2, a->host, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, a->read_only);
	sqlite3_bind_int(s, 4, a->nbd);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)a->generation);
	sqlite3_bind_int64(s, 6, a->created_at);
	sqlite3_bind_int(s, 7, (int)a->state);
	sqlite3_bind_text(s, 8, a->vhost_socket, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 9, a->nbd_uri, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 10, a->error, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 11, a->nbd_tcp, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 12, a->uuid, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 13, a->instance, -1, SQLITE_STATIC);
	return mg_step_done(st, s, "write attachment");
}

static void mg_attach_from_row(sqlite3_stmt *s, struct mg_attach_rec *a)
{
	int state = sqlite3_column_int(s, 7);

	memset(a, 0, sizeof(*a));
	a->volume_id = (uint64_t)sqlite3_column_int64(s, 0);
	mg_col_text(s, 1, a->volume, sizeof(a->volume));
	mg_col_text(s, 2, a->host, sizeof(a->host));
	a->read_only = sqlite3_column_int(s, 3) != 0;
	a->nbd = sqlite3_column_int(s, 4) != 0;
	a->generation = (uint64_t)sqlite3_column_int64(s, 5);
	a->created_at = sqlite3_column_int64(s, 6);
	a->state = state >= 0 && state <= MG_ATTACH_ERROR ? (enum mg_attach_state)state
							   : MG_ATTACH_ERROR;
	mg_col_text(s, 8, a->vhost_socket, sizeof(a->vhost_socket));
	mg_col_text(s, 9, a->nbd_uri, sizeof(a->nbd_uri));
	mg_col_text(s, 10, a->error, sizeof(a->error));
	mg_col_text(s, 11, a->nbd_tcp, sizeof(a->nbd_tcp));
	a->size = (uint64_t)sqlite3_column_int64(s, 12);
	mg_col_text(s, 13, a->uuid, sizeof(a->uuid));
	mg_col_text(s, 14, a->instance, sizeof(a->instance));
	mg_col_text(s, 15, a->volume_uuid, sizeof(a->volume_uuid));
	a->qos_iops = (uint64_t)sqlite3_column_int64(s, 16);
	a->qos_bps = (uint64_t)sqlite3_column_int64(s, 17);
}

int mg_store_get_attach(struct mg_store *st, uint64_t volume_id, const char *host,
			struct mg_attach_rec *a)
{
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(
		st, "SELECT " MG_ATTACH_COLS MG_ATTACH_FROM "WHERE a.volume = ? AND a.host = ?",
		&s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)volume_id);
	sqlite3_bind_text(s, 2, host, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		mg_attach_from_row(s, a);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = mg_sql_err(st, "read attachment");
	}
	sqlite3_finalize(s);
	return ret;
}

int mg_store_get_attach_uuid(struct mg_store *st, const char *uuid, struct mg_attach_rec *a)
{
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st, "SELECT " MG_ATTACH_COLS MG_ATTACH_FROM "WHERE a.uuid = ?", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_text(s, 1, uuid, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		mg_attach_from_row(s, a);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = mg_sql_err(st, "read attachment");
	}
	sqlite3_finalize(s);
	return ret;
}

int mg_store_delete_attach(struct mg_store *st, uint64_t volume_id, const char *host)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "DELETE FROM attachments WHERE volume = ? AND host = ?", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)volume_id);
	sqlite3_bind_text(s, 2, host, -1, SQLITE_STATIC);
	ret = mg_step_done(st, s, "delete attachment");
	if (!ret && sqlite3_changes(st->db) == 0) {
		ret = -ENOENT;
	}
	return ret;
}

int mg_store_put_fence(struct mg_store *st, uint64_t volume_id, int64_t since_ms)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "INSERT OR REPLACE INTO attach_fences VALUES (?, ?)", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)volume_id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)since_ms);
	return mg_step_done(st, s, "write attachment fence");
}

int mg_store_delete_fence(struct mg_store *st, uint64_t volume_id)
{
	sqlite3_stmt *s;
	int ret;

	kassert(st->in_tx);
	ret = mg_prepare(st, "DELETE FROM attach_fences WHERE volume = ?", &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)volume_id);
	return mg_step_done(st, s, "delete attachment fence");
}

int mg_store_each_fence(struct mg_store *st,
			int (*cb)(void *arg, uint64_t volume_id, int64_t since_ms), void *arg)
{
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st, "SELECT volume, since_ms FROM attach_fences ORDER BY volume", &s);
	if (ret) {
		return ret;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ret = cb(arg, (uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read attachment fences");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}

int mg_store_each_attach(struct mg_store *st, uint64_t volume_id, const char *host,
			 int (*cb)(void *arg, const struct mg_attach_rec *a), void *arg)
{
	struct mg_attach_rec a;
	sqlite3_stmt *s;
	int rc, ret;

	ret = mg_prepare(st,
			 "SELECT " MG_ATTACH_COLS MG_ATTACH_FROM
			 "WHERE (?1 = 0 OR a.volume = ?1) AND "
			 "(?2 IS NULL OR a.host = ?2) ORDER BY a.volume, a.host",
			 &s);
	if (ret) {
		return ret;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)volume_id);
	if (host) {
		sqlite3_bind_text(s, 2, host, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_null(s, 2);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		mg_attach_from_row(s, &a);
		ret = cb(arg, &a);
		if (ret) {
			goto out_finalize;
		}
	}
	if (rc != SQLITE_DONE) {
		ret = mg_sql_err(st, "read attachments");
	}
out_finalize:
	sqlite3_finalize(s);
	return ret;
}
