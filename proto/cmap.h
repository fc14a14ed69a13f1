/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmap: the cluster map in C, object -> PG -> primary lookup, and placement
 * (weighted rendezvous hashing with failure domains). See docs/cluster.md.
 *
 * A struct cmap is immutable once built: a new epoch is a new cmap (readers
 * swap a pointer). Built either by mgmt (cmap_place()) or from a received
 * ClusterMap message (cmap_from_pb(), which validates everything: the map
 * comes from the network).
 *
 * Pure logic, no I/O; any thread may read a cmap it holds.
 */
#ifndef KEEL_PROTO_CMAP_H
#define KEEL_PROTO_CMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMAP_MAX_REPLICAS 5
#define CMAP_MAX_SERVERS 4096
#define CMAP_MAX_POOLS 64
#define CMAP_MAX_PGS 4096 /* per pool */
#define CMAP_NAME_LEN 64
#define CMAP_ADDR_LEN 64
#define CMAP_MAX_TAGS 8
#define CMAP_MAX_LAYERS (1u << 20) /* non-writable layers listed in one map */

enum cmap_fd {
	CMAP_FD_SERVER = 0,
	CMAP_FD_HOST = 1,
	CMAP_FD_RACK = 2,
};

struct cmap_server {
	uint32_t id; /* 1..65535 */
	char addr[CMAP_ADDR_LEN];
	char host[CMAP_NAME_LEN];
	char rack[CMAP_NAME_LEN];
	uint32_t weight; /* >= 1 */
	bool up;
	bool in;
	unsigned int ntags;
	char tags[CMAP_MAX_TAGS][CMAP_NAME_LEN];
};

struct cmap_pool {
	uint32_t id; /* 1..4095 */
	char name[CMAP_NAME_LEN];
	uint32_t replicas;     /* 1..CMAP_MAX_REPLICAS */
	uint32_t min_replicas; /* 1..replicas */
	enum cmap_fd failure_domain;
	uint32_t pg_count; /* 1..CMAP_MAX_PGS */
	char tag[CMAP_NAME_LEN];
	bool full;	     /* writes needing new space get ENOSPC */
	struct cmap_pg *pgs; /* pg_count entries, indexed by pg number */
};

struct cmap_pg {
	uint32_t pool;
	uint32_t pg;
	uint32_t nmembers; /* <= replicas; fewer when too few failure domains */
	uint32_t members[CMAP_MAX_REPLICAS];
	uint32_t primary;  /* server id, 0 = inactive */
	uint32_t in_sync;  /* bit i: members[i] */
	uint64_t interval;
};

/* A layer's state (docs/volumes.md). Layers a map does not list are writable. */
enum cmap_layer_state {
	CMAP_LAYER_WRITABLE = 0,
	CMAP_LAYER_RO = 1,	 /* a snapshot: reads only */
	CMAP_LAYER_DELETING = 2, /* being freed: no I/O at all */
};

struct cmap_layer {
	uint64_t inode; /* family << 16 | layer, != 0 */
	enum cmap_layer_state state; /* RO or DELETING */
	/* RO only: a deleted snapshot whose blocks are being merged into
	 * this layer, its only child (docs/volumes.md "Merging a deleted
	 * snapshot"); 0: not merging. Same family, != inode. */
	uint64_t merge_into;
	uint32_t merge_pool; /* with merge_into: the pool of the layers' volume */
};

/* Attachment fencing of one volume (ClusterMap.fences). */
#define CMAP_FENCE_LIVE 8 /* read-write attachments of one volume */
struct cmap_fence {
	uint64_t inode; /* the volume's writable top layer */
	uint32_t nlive;
	uint64_t live[CMAP_FENCE_LIVE]; /* generations that may write */
};
#define CMAP_MAX_FENCES (1u << 20)

struct cmap {
	uint64_t epoch;
	uint32_t nservers;
	struct cmap_server *servers; /* sorted by id */
	uint32_t npools;
	struct cmap_pool *pools;     /* sorted by id */
	uint32_t nlayers;
	struct cmap_layer *layers;   /* sorted by inode */
	bool full_fail;		     /* ENOSPC: clients fail (true) or retry */
	uint32_t nfences;
	struct cmap_fence *fences;   /* sorted by inode */
};

/* ---- building and freeing ---- */

/* Allocate an empty map. NULL on ENOMEM. */
struct cmap *cmap_new(uint64_t epoch);
void cmap_free(struct cmap *m);
/* Deep copy. NULL on ENOMEM. */
struct cmap *cmap_dup(const struct cmap *m);

/* Add a server / pool (copied). The pool's PGs are allocated empty.
 * -EEXIST (duplicate id), -EINVAL (out-of-range field, unterminated string,
 * or already CMAP_MAX_SERVERS / CMAP_MAX_POOLS entries), -ENOMEM. */
int cmap_add_server(struct cmap *m, const struct cmap_server *s);
int cmap_add_pool(struct cmap *m, const struct cmap_pool *p);

/* Replace the map's layer list with a sorted copy of @l (@n entries).
 * -EINVAL (inode 0, duplicate, state not RO/DELETING, more than
 * CMAP_MAX_LAYERS, merge_into set on a layer that is not RO, equal to the
 * layer, of another family, or naming a layer listed DELETING), -ENOMEM;
 * the map is unchanged on error. */
int cmap_set_layers(struct cmap *m, const struct cmap_layer *l, uint32_t n);

/* Replace the map's fence list with a sorted copy of @f (@n entries).
 * -EINVAL (inode 0, duplicate, nlive > CMAP_FENCE_LIVE, a generation 0,
 * more than CMAP_MAX_FENCES), -ENOMEM; the map is unchanged on error. */
int cmap_set_fences(struct cmap *m, const struct cmap_fence *f, uint32_t n);

/* May a client mutation of layer @inode carrying attachment generation
 * @gen go on? 0, or -EPERM: the layer's volume is listed and @gen is not
 * one of its live generations. @gen 0 (no attachment: tools) always may. */
int cmap_fence_check(const struct cmap *m, uint64_t inode, uint64_t gen);

/* Same fence lists (entry by entry)? NULL is an empty map. */
bool cmap_fences_equal(const struct cmap *a, const struct cmap *b);

/* ---- placement (mgmt) ---- */

/*
 * Compute the ordered member list of every PG of every pool from the `in`
 * servers (weights, failure domains, pool tag). Deterministic: the same
 * servers and pools always give the same result. Does not touch primary,
 * in_sync or interval (see cmap_update_pgs()).
 */
void cmap_place(struct cmap *m);

/* Members of one PG, computed as cmap_place() would. Returns the count. */
uint32_t cmap_place_pg(const struct cmap *m, const struct cmap_pool *pool, uint32_t pg,
		       uint32_t out[CMAP_MAX_REPLICAS]);

/*
 * After placement or an up/down change: carry over in_sync bits from @prev
 * for members that stay (matched by server id; a member new to a PG starts
 * not in sync; a member that is down is cleared: it will miss writes), choose
 * each primary (the first up, in-sync member), and set interval = m->epoch
 * for every PG whose members (set or order) or primary changed, else keep
 * prev's interval. With @prev NULL (a brand-new cluster), and for PGs @prev
 * lacks (a new pool), every member starts in sync. If no in-sync member is
 * up the PG is inactive (primary 0): nobody can write, so the down in-sync
 * members keep their bits and no other member is marked in sync.
 */
void cmap_update_pgs(struct cmap *m, const struct cmap *prev);

/* ---- lookup (everyone) ---- */

const struct cmap_server *cmap_server(const struct cmap *m, uint32_t id);
const struct cmap_pool *cmap_pool(const struct cmap *m, uint32_t id);
const struct cmap_pg *cmap_pg(const struct cmap *m, uint32_t pool, uint32_t pg);

/* PG number of object @objno of layer @inode in a pool with @pg_count PGs:
 * hash of (inode >> 16, objno), so all layers of one object share a PG. */
uint32_t cmap_object_pg(uint64_t inode, uint64_t objno, uint32_t pg_count);

/* State of layer @inode (binary search; WRITABLE when not listed). */
enum cmap_layer_state cmap_layer_state(const struct cmap *m, uint64_t inode);
/* The layer @inode merges into (cmap_layer.merge_into), 0 when none. */
uint64_t cmap_layer_merge_into(const struct cmap *m, uint64_t inode);
/* The layer entry of @inode, NULL when the map does not list it. */
const struct cmap_layer *cmap_layer_find(const struct cmap *m, uint64_t inode);

/* Index of @server_id in pg->members, or -1. */
int cmap_pg_member_index(const struct cmap_pg *pg, uint32_t server_id);

/* Number of members of @pg that are up in @m (and in sync when @in_sync). */
uint32_t cmap_pg_up_count(const struct cmap *m, const struct cmap_pg *pg, bool in_sync);

/* 64-bit mixing hash used by placement (exposed for tests). */
uint64_t cmap_hash64(uint64_t a, uint64_t b, uint64_t c);

/* ---- wire (protobuf ClusterMap) ---- */

/* protobuf-c (>= 1.3) names the generated struct Keel__ClusterMap. */
struct Keel__ClusterMap;

/* Build a cmap from a received message, validating every field (ids and
 * counts in range, members are known servers, no duplicates, bitmasks within
 * nmembers, strings fit). 0 or -EINVAL with a reason in @err, -ENOMEM. */
int cmap_from_pb(const struct Keel__ClusterMap *pb, struct cmap **out, char *err,
		 size_t errlen);

/* Pack @m into a newly malloc'd buffer (*buf, *len). 0 or -ENOMEM. */
int cmap_pack(const struct cmap *m, uint8_t **buf, size_t *len);

/* Unpack + cmap_from_pb(). */
int cmap_unpack(const uint8_t *buf, size_t len, struct cmap **out, char *err, size_t errlen);

#endif
