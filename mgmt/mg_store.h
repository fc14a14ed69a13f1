/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_store: keel-mgmt's durable state in one SQLite database.
 *
 * Tables (schema version in PRAGMA user_version, MG_STORE_SCHEMA):
 *   meta(id = 1, epoch, next_server_id, next_pool_id, next_volume_id)
 *   servers(id, uuid UNIQUE, addr, host, rack, weight, tags, in_flag, down_since,
 *           capacity_bytes, used_bytes)
 *   pools(id, name UNIQUE, replicas, min_replicas, failure_domain, pg_count, tag, has_data,
 *         qos_iops, qos_bps, max_overcommit_pct)
 *   pgs(pool, pg, members, in_sync, interval, "primary")   PRIMARY KEY (pool, pg)
 *   volumes(id, name UNIQUE, size, pool, object_size, created_at, uuid UNIQUE,
 *           description, top, origin, qos_iops, qos_bps)
 *   families(id, next_layer)        layers(inode, parent, state, created_at)
 *   snapshots(id, uuid UNIQUE, name, volume, inode, size, created_at, description)
 *           UNIQUE (volume, name)
 *   attachments(volume, host, read_only, nbd, generation, created_at, state,
 *               vhost_socket, nbd_uri, error, nbd_tcp, uuid UNIQUE, instance)
 *               PRIMARY KEY (volume, host)
 *   (version 2 added attachments and meta.next_attach_gen, 3 nbd_tcp,
 *   4 layers: families, layers, snapshots, volume uuid/description/top/origin,
 *   meta.next_snapshot_id; docs/volumes.md; 5 attachments.uuid and instance;
 *   6 attach_fences(volume PRIMARY KEY, since_ms): fenced volumes, mg_attach.c;
 *   7 pools.qos_iops/qos_bps (0 = unlimited) and volumes.qos_iops/qos_bps
 *   (NULL = the pool's); 8 pools.max_overcommit_pct (0 = no limit))
 *
 * The database runs in WAL mode with synchronous=FULL: every commit is on
 * stable storage before mg_store_commit() returns. Metadata changes are rare
 * (an epoch or a volume create), and losing an acknowledged one after a power
 * cut would hand out an epoch number twice with different maps, or forget a
 * volume a client was told exists; one fsync per change is cheap for that.
 *
 * Every change is one transaction: mg_store_begin(), any number of put/add/
 * delete calls, then mg_store_commit() or mg_store_rollback(). The put/add/
 * delete functions may be called only inside a transaction (an internal
 * invariant, asserted). A failed call leaves the transaction open: the caller
 * rolls back, and nothing of it reaches the database.
 *
 * Errors: -EIO (SQLite error, logged with its message), -EEXIST (a UNIQUE
 * name or uuid already taken), -ENOENT (no such row), -ENOMEM.
 *
 * Single-threaded: the owning thread only (keel-mgmt's reactor thread).
 */
#ifndef KEEL_MGMT_MG_STORE_H
#define KEEL_MGMT_MG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cmap.h"

#define MG_STORE_SCHEMA 8
#define MG_UUID_LEN	37 /* 36 characters and NUL */
#define MG_TAGS_LEN	(CMAP_MAX_TAGS * CMAP_NAME_LEN)

struct mg_store;

struct mg_meta {
	uint64_t epoch;
	uint32_t next_server_id;
	uint32_t next_pool_id;
	uint64_t next_volume_id;
	uint64_t next_attach_gen; /* generation of the next attachment */
	uint64_t next_snapshot_id;
};

struct mg_server_rec {
	uint32_t id;
	char uuid[MG_UUID_LEN];
	char addr[CMAP_ADDR_LEN];
	char host[CMAP_NAME_LEN];
	char rack[CMAP_NAME_LEN];
	uint32_t weight;
	char tags[MG_TAGS_LEN]; /* comma-separated */
	bool in;
	int64_t down_since_ms; /* wall clock (ms since 1970) it went down; 0 = up */
	uint64_t capacity_bytes;
	uint64_t used_bytes;
};

struct mg_pool_rec {
	uint32_t id;
	char name[CMAP_NAME_LEN];
	uint32_t replicas;
	uint32_t min_replicas;
	int failure_domain; /* enum cmap_fd */
	uint32_t pg_count;
	char tag[CMAP_NAME_LEN];
	bool has_data; /* a volume was ever created in it */
	uint64_t qos_iops; /* its volumes' default limits; 0 = unlimited */
	uint64_t qos_bps;
	/* the volumes' sizes may add up to this percent of its usable space;
	 * 0 = no limit (mg_space.c) */
	uint32_t max_overcommit_pct;
};

struct mg_pg_rec {
	uint32_t pool;
	uint32_t pg;
	uint32_t nmembers;
	uint32_t members[CMAP_MAX_REPLICAS];
	uint32_t primary;
	uint32_t in_sync;
	uint64_t interval;
};

#define MG_DESC_LEN 256
#define MG_QOS_POOL (-1) /* a volume without its own limit: the pool's applies */

struct mg_volume_rec {
	uint64_t id;
	char name[CMAP_NAME_LEN];
	uint64_t size;
	uint32_t pool;
	uint32_t object_size;
	int64_t created_at; /* seconds since 1970 */
	char uuid[MG_UUID_LEN];
	char description[MG_DESC_LEN];
	uint64_t top;		     /* inode of the writable top layer */
	char origin[MG_UUID_LEN];    /* snapshot uuid it was cloned from, or "" */
	int64_t qos_iops;	     /* its own limit (0 = unlimited), or MG_QOS_POOL */
	int64_t qos_bps;
};

/* A layer (docs/volumes.md): state is enum cmap_layer_state. */
struct mg_layer_rec {
	uint64_t inode;
	uint64_t parent; /* inode, 0 = none */
	uint32_t state;
	int64_t created_at;
};

struct mg_snap_rec {
	uint64_t id;
	char uuid[MG_UUID_LEN];
	char name[CMAP_NAME_LEN];
	uint64_t volume_id;
	char volume[CMAP_NAME_LEN]; /* read only (joined from volumes) */
	uint64_t inode;		    /* its read-only layer */
	uint64_t size;		    /* the volume's size when taken */
	int64_t created_at;
	char description[MG_DESC_LEN];
};

#define MG_PATH_LEN 256

/* Where an attachment is: mgmt records it (ATTACHING); the host's
 * keel-client reports the export up (ATTACHED) or failed (ERROR). */
enum mg_attach_state {
	MG_ATTACH_ATTACHING = 0,
	MG_ATTACH_ATTACHED = 1,
	MG_ATTACH_ERROR = 2,
};

struct mg_attach_rec {
	uint64_t volume_id;
	char volume[CMAP_NAME_LEN]; /* read only (joined from volumes) */
	char host[CMAP_NAME_LEN];
	bool read_only;
	bool nbd;
	uint64_t generation; /* unique per attach, never reused */
	int64_t created_at;  /* seconds since 1970 */
	enum mg_attach_state state;
	char vhost_socket[MG_PATH_LEN];
	char nbd_uri[MG_PATH_LEN + 64];
	char error[MG_PATH_LEN];
	char nbd_tcp[CMAP_ADDR_LEN];   /* "host:port" of an NBD export over TCP, or "" */
	uint64_t size;		       /* read only: the volume's size (online resize) */
	char uuid[MG_UUID_LEN];	       /* set by mg_store_put_attach() if "" (new row) */
	char instance[MG_UUID_LEN];    /* what it was made for (a VM's UUID), or "" */
	char volume_uuid[MG_UUID_LEN]; /* read only (joined from volumes) */
	uint64_t qos_iops;	       /* read only: the volume's effective limits */
	uint64_t qos_bps;	       /* (its own, else its pool's); 0 = unlimited */
};

/* Open or create the database at @path and bring the schema to
 * MG_STORE_SCHEMA. -EIO (cannot open, corrupt), -EPROTONOSUPPORT (written by
 * a newer keel-mgmt), -ENOMEM; @err says which. */
int mg_store_open(const char *path, struct mg_store **out, char *err, size_t errlen);
void mg_store_close(struct mg_store *st);

/* 0 or -EIO. Nested transactions are a bug (asserted). */
int mg_store_begin(struct mg_store *st);
/* 0, or -EIO after which the transaction has been rolled back. */
int mg_store_commit(struct mg_store *st);
/* Undo everything since mg_store_begin(). Never fails visibly. */
void mg_store_rollback(struct mg_store *st);
bool mg_store_in_transaction(const struct mg_store *st);

int mg_store_get_meta(struct mg_store *st, struct mg_meta *m);
int mg_store_put_meta(struct mg_store *st, const struct mg_meta *m);

/* Insert or replace by id. -EEXIST when another id has the uuid / name. */
int mg_store_put_server(struct mg_store *st, const struct mg_server_rec *s);
int mg_store_put_pool(struct mg_store *st, const struct mg_pool_rec *p);
int mg_store_put_pg(struct mg_store *st, const struct mg_pg_rec *pg);

/* Insert a volume. -EEXIST if the name or id exists. */
int mg_store_add_volume(struct mg_store *st, const struct mg_volume_rec *v);
/* Update by id (every column). -ENOENT, -EEXIST (name taken). */
int mg_store_update_volume(struct mg_store *st, const struct mg_volume_rec *v);
/* By name or uuid. -ENOENT if there is no such volume. */
int mg_store_get_volume(struct mg_store *st, const char *name, struct mg_volume_rec *v);
int mg_store_get_volume_id(struct mg_store *st, uint64_t id, struct mg_volume_rec *v);
int mg_store_delete_volume(struct mg_store *st, const char *name);

/* Layer numbers of a family are handed out from next_layer, never reused. */
int mg_store_get_family(struct mg_store *st, uint64_t id, uint32_t *next_layer);
int mg_store_put_family(struct mg_store *st, uint64_t id, uint32_t next_layer);
/* Insert or replace by inode. */
int mg_store_put_layer(struct mg_store *st, const struct mg_layer_rec *l);
int mg_store_delete_layer(struct mg_store *st, uint64_t inode);
/* Insert; -EEXIST when the volume has a snapshot of that name. */
int mg_store_add_snap(struct mg_store *st, const struct mg_snap_rec *sn);
int mg_store_delete_snap(struct mg_store *st, uint64_t id);
/* Snapshot @name of volume @volume_id, or with @volume_id 0 the snapshot
 * whose uuid is @name. -ENOENT. */
int mg_store_get_snap(struct mg_store *st, uint64_t volume_id, const char *name,
		      struct mg_snap_rec *sn);

/* Insert or replace the attachment of (volume_id, host). A new row with an
 * empty a->uuid gets a new one (written back); a replaced row keeps its. */
int mg_store_put_attach(struct mg_store *st, struct mg_attach_rec *a);
/* -ENOENT if the volume is not attached to @host. */
int mg_store_get_attach(struct mg_store *st, uint64_t volume_id, const char *host,
			struct mg_attach_rec *a);
/* -ENOENT if no attachment has @uuid. */
int mg_store_get_attach_uuid(struct mg_store *st, const char *uuid, struct mg_attach_rec *a);

/* A new random UUID, lower-case text. Any thread. */
void mg_uuid_new(char out[MG_UUID_LEN]);
int mg_store_delete_attach(struct mg_store *st, uint64_t volume_id, const char *host);

/*
 * Visit every row in id order ((pool, pg) order for PGs). @cb returns 0 to
 * go on or a negative errno, which stops the walk and is returned. Other
 * errors: -EIO. The record passed to @cb is valid during the call only.
 */
int mg_store_each_server(struct mg_store *st, int (*cb)(void *arg, const struct mg_server_rec *s),
			 void *arg);
int mg_store_each_pool(struct mg_store *st, int (*cb)(void *arg, const struct mg_pool_rec *p),
		       void *arg);
int mg_store_each_pg(struct mg_store *st, int (*cb)(void *arg, const struct mg_pg_rec *pg),
		     void *arg);
int mg_store_each_volume(struct mg_store *st, int (*cb)(void *arg, const struct mg_volume_rec *v),
			 void *arg);
int mg_store_each_layer(struct mg_store *st, int (*cb)(void *arg, const struct mg_layer_rec *l),
			void *arg);
/* Snapshots in id order, of @volume_id only (0: all). */
int mg_store_each_snap(struct mg_store *st, uint64_t volume_id,
		       int (*cb)(void *arg, const struct mg_snap_rec *sn), void *arg);
/* Attachments in (volume, host) order, only of @volume_id (0: all) and
 * only to @host (NULL: all). */
/* Attachment fences (docs/volumes.md "Attachments and fencing"): insert or
 * replace; delete (0 also when there was none); every row by volume. */
int mg_store_put_fence(struct mg_store *st, uint64_t volume_id, int64_t since_ms);
int mg_store_delete_fence(struct mg_store *st, uint64_t volume_id);
int mg_store_each_fence(struct mg_store *st,
			int (*cb)(void *arg, uint64_t volume_id, int64_t since_ms), void *arg);
int mg_store_each_attach(struct mg_store *st, uint64_t volume_id, const char *host,
			 int (*cb)(void *arg, const struct mg_attach_rec *a), void *arg);

#endif
