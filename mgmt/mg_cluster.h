/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_cluster: keel-mgmt's cluster state and the one place it changes.
 *
 * The state: servers (persistent record + runtime up/heartbeat), pools,
 * per-PG recovery reports, and the published cluster map (struct cmap,
 * immutable, epoch-numbered). It is owned by the reactor thread: every
 * function here runs there, and REST requests reach it via reactor_post()
 * (mg_http.c). Docs: docs/cluster.md, docs/api.md.
 *
 * Every map change goes through mg_cluster_publish(): build the next map
 * (epoch + 1, placement, cmap_update_pgs() against the previous map), write
 * it to the store in one transaction with whatever the caller changed, then
 * install it and push it to every connected server and subscriber. If the
 * store refuses, nothing is installed; membership changes the caller already
 * made in memory are retried by the 100 ms tick (mg_cluster.dirty).
 *
 * Membership (mg_member.c): MG_REGISTER/MG_HEARTBEAT from servers; a
 * registered server's connection closing marks it down at once, a server
 * silent for heartbeat_timeout_ms is marked down (and its connection
 * closed) by the tick, and one down for down_out_interval_s is marked out.
 *
 * Cluster port (mg_cport.c): accepts kp_conn connections, dispatches the
 * MG_* opcodes through one table, pushes maps (at most one push in flight
 * per connection; a slow peer only ever gets the newest map).
 */
#ifndef KEEL_MGMT_MG_CLUSTER_H
#define KEEL_MGMT_MG_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/reactor.h"
#include "common/xport.h"
#include "mgmt/mg_settings.h"
#include "mgmt/mg_store.h"
#include "mgmt/mg_valid.h"
#include "proto/auth.h"
#include "proto/cmap.h"
#include "proto/conn.h"

#define MG_TICK_NS	   (100ull * 1000 * 1000)
#define MG_AUTH_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)
#define MG_PEER_NAME_LEN   80
#define MG_PG_STATE_LEN	   16
#define MG_STOP_TIMEOUT_NS (2ull * 1000 * 1000 * 1000)

struct mg_cluster;

/* A packed ClusterMap shared by every push of one epoch. */
struct mg_blob {
	unsigned int refs;
	uint64_t epoch;
	size_t len;
	uint8_t *data;
};

#define MG_PUSH_AWAIT 4 /* map pushes awaiting a reply, per peer (< SRV_MAP_HELD) */

/* One connection on the cluster port (a server, a client, or both). */
struct mg_peer {
	struct mg_cluster *c;
	struct kp_conn *kc; /* NULL once the connection closed */
	unsigned int refs;  /* the open connection + each message in flight */
	char name[MG_PEER_NAME_LEN];
	uint32_t server_id;  /* registered as this server; 0 = not a server */
	bool subscribed;     /* MG_SUBSCRIBE: wants map pushes */
	uint64_t sent_epoch; /* newest map this peer was sent */
	/* One push is sent at a time (push_sending: bytes not yet out); up to
	 * MG_PUSH_AWAIT sent ones may await the peer's reply (a server holds
	 * its reply while writes admitted under the previous layer list
	 * drain, and those writes may need the next map to finish: a member
	 * died). Newer maps coalesce behind a full window. Replies come in
	 * order. */
	bool push_sending;
	unsigned int push_nawait;
	struct mg_push_await {
		uint64_t req_id, epoch;
	} push_await[MG_PUSH_AWAIT];
	uint64_t acked_epoch; /* newest map it answered (or got at registration) */
	struct mg_blob *push_blob;
	struct kp_msg push;
	uint64_t pushes_sent, pushes_coalesced;
	struct mg_peer *prev, *next;
};

struct mg_server {
	struct mg_server_rec rec;
	bool up;
	uint64_t last_hb_ns; /* monotonic time of the last register/heartbeat */
	bool hb_seen;	     /* heard from it since this mgmt started */
	uint64_t hb_epoch;   /* map epoch it says it applied */
	uint64_t ops;
	struct mg_peer *peer; /* its registered connection, or NULL */
	uint32_t object_size; /* its blockstore's, from registration; 0 = unknown */
	bool nearfull;	      /* past nearfull_percent (mg_space.c) */
	/* its last MG_USAGE report, sorted by inode */
	uint64_t usage_epoch;
	struct mg_usage *usage;
	uint32_t nusage;
	struct mg_merge_rep *merges; /* its merge progress in that report */
	uint32_t nmerges;
};

/* One server's walk of one merge (MG_USAGE MergeProgress). */
struct mg_merge_rep {
	uint64_t layer, into, done, total;
	bool complete;
};

/* One layer's objects on one server (MG_USAGE). */
struct mg_usage {
	uint64_t inode, objects, bytes;
};
#define MG_USAGE_MAX 65536u
#define MG_MAX_CHAIN 64 /* parents of one layer (ReadChain limit) */

/* A layer in memory (docs/volumes.md); mg_layer.c. */
struct mg_layer {
	uint64_t inode, parent; /* parent 0: none */
	uint32_t state;		/* enum cmap_layer_state */
	uint32_t nsnaps;	/* snapshots naming it */
	bool top;		/* a volume's writable top */
	int64_t created_at;
	uint64_t deleting_epoch; /* first map listing it as deleting */
	uint64_t deleting_ns;	 /* monotonic time it became deleting */
	uint64_t objects, bytes; /* sum of the servers' last reports */
	/* merge job (docs/volumes.md "Merging a deleted snapshot"): this
	 * hidden snapshot is being merged into its only child merge_into */
	uint64_t merge_into;
	uint32_t merge_pool;
	uint64_t merge_epoch;		  /* first map listing the merge */
	uint64_t merge_done, merge_total; /* objects, sum of the servers' reports */
	/* online flatten of this layer (a volume's top): its parents are
	 * merged into it one at a time, nearest first (not stored) */
	bool flattening;
};

struct mg_layers {
	struct mg_layer *v; /* sorted by inode */
	uint32_t n, cap;
};

/* A background job (docs/api.md "Jobs"); mg_merge.c. Only merges today. */
enum mg_job_state {
	MG_JOB_QUEUED = 0, /* listed in a map, no server reported progress yet */
	MG_JOB_RUNNING,
	MG_JOB_DONE,
	MG_JOB_FAILED, /* cancelled: the layers changed under it (error says how) */
};

enum mg_job_type {
	MG_JOB_MERGE = 0,
	MG_JOB_FLATTEN,
};

struct mg_job {
	enum mg_job_type type;
	/* merge: the deleted snapshot's layer and its child; flatten: the
	 * volume's top, into 0 */
	uint64_t layer, into;
	uint32_t pool;
	char volume[CMAP_NAME_LEN];   /* the volume of the family (may be renamed) */
	char snapshot[CMAP_NAME_LEN]; /* the deleted snapshot, "" when not known */
	enum mg_job_state state;
	uint64_t done, total; /* objects (flatten: of the current step) */
	uint32_t steps_done;  /* flatten: parents merged so far */
	int64_t started_ms, finished_ms;
	char error[128];
};

#define MG_JOBS_KEPT 256u /* finished jobs remembered (oldest go first) */

struct mg_jobs {
	struct mg_job *v; /* oldest first */
	uint32_t n, cap;
};

/* A volume whose attachments the map fences (docs/volumes.md
 * "Attachments and fencing"): since its last detach. */
struct mg_afence {
	uint64_t volume_id;
	int64_t since_ms;
	uint64_t top; /* the volume's writable layer, as the next map has it */
};

/* mg_attach.c: load the fences; add them to map @m (each volume's top
 * layer and the generations of its read-write attachments); drop those
 * older than attach_fence_ttl_s (the tick; publishes when it drops any). */
int mg_attach_fences_load(struct mg_cluster *c);
int mg_attach_fences_to_map(struct mg_cluster *c, struct cmap *m);
void mg_attach_fences_tick(struct mg_cluster *c);
/* Volume @volume_id's top layer becomes @top in the next map (a snapshot,
 * revert, clone...; before the publish). Returns the previous top (0: not
 * fenced), to put back if the change fails. */
uint64_t mg_attach_fence_top(struct mg_cluster *c, uint64_t volume_id, uint64_t top);

/* Someone waiting until every up server applied map @epoch. */
struct mg_fence {
	uint64_t epoch, deadline;
	void (*cb)(struct mg_cluster *c, void *arg, int res);
	void *arg;
	struct mg_fence *next;
};

/* What a PG's primary last reported (docs/cluster.md, recovery). */
struct mg_pg_stat {
	uint64_t interval; /* the PG interval the report is about; 0 = none */
	char state[MG_PG_STATE_LEN];
	uint64_t objects_left, bytes_left, bytes_copied;
};

struct mg_pool {
	struct mg_pool_rec rec;
	struct mg_pg_stat *stats; /* rec.pg_count entries */
	bool full;		  /* mg_space.c: published in the map */
};

struct mg_pg_counts {
	uint32_t total, active, degraded, recovering, peering, inactive;
	uint64_t objects_left, bytes_left, bytes_copied;
};

struct mg_cluster {
	struct reactor *r;
	struct mg_store *st;
	const struct mg_settings *cfg;
	const struct kp_key *key;
	struct mg_meta meta;
	struct mg_server *servers; /* ascending id */
	uint32_t nservers, servers_cap;
	struct mg_pool pools[MG_MAX_POOLS]; /* ascending id */
	uint32_t npools;
	struct mg_layers layers;
	struct mg_jobs jobs;
	bool merge_replan;	   /* plan merges at the next tick (set at load) */
	struct mg_afence *afences; /* fenced volumes, ascending id (mg_attach.c) */
	uint32_t nafences, afences_cap;
	struct mg_fence *fences;
	unsigned int layers_gc_ticks;
	struct reactor_defer fence_defer;
	bool fence_defer_armed;
	struct cmap *map;	  /* the published map */
	struct mg_blob *map_blob; /* the published map, packed */
	bool dirty;		  /* a publish failed to persist: retry */
	struct reactor_timer tick;
	bool tick_stopped;
	/* cluster port */
	struct xport_listener *listener;
	char cluster_addr[128];
	struct mg_peer *peers;
	unsigned int npeers;
	uint64_t next_req_id;
	/* shutdown */
	bool stopping;
	uint64_t stop_deadline;
	void (*on_tick)(struct mg_cluster *c); /* owner's hook, every tick */
	struct mg_metrics *metrics;	       /* keel-client's I/O counters (mg_metrics.c) */
};

/* ---- lifecycle (mg_cluster.c) ---- */

/*
 * Load the state from @st; on a new database create the pool "default" from
 * @cfg and publish epoch 1. Servers that were up when mgmt stopped stay up,
 * with a fresh heartbeat_timeout_ms grace period to reconnect. Starts the
 * 100 ms tick. 0, -EIO (store; logged), -ENOMEM.
 */
int mg_cluster_open(struct mg_cluster *c, struct reactor *r, struct mg_store *st,
		    const struct mg_settings *cfg, const struct kp_key *key);
/* Free everything (after the reactor stopped). */
void mg_cluster_close(struct mg_cluster *c);

/*
 * Publish the next epoch built from the current servers and pools, with
 * in-sync bits carried over from @base (the current map, or a copy of it
 * the caller modified; NULL = c->map). @save, if given, runs inside the
 * same transaction (the caller's own rows). 0 or -EIO/-ENOMEM: then
 * nothing changed in the store or in the map.
 */
int mg_cluster_publish(struct mg_cluster *c, const struct cmap *base, const char *reason,
		       int (*save)(struct mg_cluster *c, void *arg), void *arg);

/* Create a pool (validated by the caller) and publish. 0, -EEXIST (name),
 * -ENOSPC (too many pools), -EIO, -ENOMEM. *out points into c->pools. */
int mg_cluster_add_pool(struct mg_cluster *c, const struct mg_pool_rec *p,
			const struct mg_pool **out);

struct mg_server *mg_cluster_server(struct mg_cluster *c, uint32_t id);
struct mg_pool *mg_cluster_pool(struct mg_cluster *c, uint32_t id);
struct mg_pool *mg_cluster_pool_by_name(struct mg_cluster *c, const char *name);

/* "active", "degraded", "recovering", "peering" or "inactive" (docs/api.md). */
const char *mg_pg_state(const struct mg_cluster *c, const struct mg_pool *pool,
			const struct cmap_pg *pg);
/* 0 HEALTH_OK, 1 HEALTH_WARN, 2 HEALTH_ERR (docs/api.md "Health"), with
 * @n filled as mg_pg_counts() does. */
int mg_cluster_health(struct mg_cluster *c, struct mg_pg_counts *n);
void mg_pg_counts(const struct mg_cluster *c, struct mg_pg_counts *out);

/* Wall clock in ms since 1970. */
int64_t mg_wall_ms(void);

/* ---- membership (mg_member.c) ---- */

struct Keel__ServerInfo;
struct Keel__Heartbeat;
struct Keel__PgReportBatch;

/* MG_REGISTER from @p. 0 (*id set) or -EINVAL (bad info, @err says why),
 * -ENOSPC (no server ids left), -EIO, -ENOMEM. */
int mg_member_register(struct mg_cluster *c, struct mg_peer *p, const struct Keel__ServerInfo *info,
		       uint32_t *id, char *err, size_t errlen);
/* MG_HEARTBEAT from @p. 0, or -ENOENT when @p is not registered as that
 * server (it must register again). */
int mg_member_heartbeat(struct mg_cluster *c, struct mg_peer *p, const struct Keel__Heartbeat *hb);
/* MG_PG_REPORT from @p. Reports about an older interval are ignored.
 * 0, -EINVAL (unknown pool/PG, bad state, not the primary; nothing
 * applied), -EPERM (not a registered server), -EIO, -ENOMEM. */
int mg_member_pg_report(struct mg_cluster *c, struct mg_peer *p,
			const struct Keel__PgReportBatch *b, char *err, size_t errlen);
/* @p closed while registered: its server goes down at once. */
void mg_member_peer_closed(struct mg_cluster *c, struct mg_peer *p, int err, const char *reason);
/* The tick: heartbeat timeouts, down -> out, retry of a failed publish. */
void mg_member_tick(struct mg_cluster *c);

/* ---- layers (mg_layer.c, docs/volumes.md) ---- */

struct Keel__UsageReport;

struct mg_layer *mg_layer_find(struct mg_layers *t, uint64_t inode);
/* Insert (sorted). -EEXIST, -ENOMEM. */
int mg_layer_add(struct mg_layers *t, const struct mg_layer *l);
void mg_layer_remove(struct mg_layers *t, uint64_t inode);
int mg_layers_copy(struct mg_layers *dst, const struct mg_layers *src);
void mg_layers_free(struct mg_layers *t);
/* Starting at @inode, mark each layer nothing keeps alive (no volume top,
 * no snapshot, no live child) DELETING, and go on with its parent. Writes
 * the inodes changed to @changed (at most @max). Returns the count. */
uint32_t mg_layer_cascade(struct mg_layers *t, uint64_t inode, uint64_t *changed, uint32_t max);
/* Parents of @inode, nearest first (at most @max; @out NULL: count only).
 * Returns the count. */
uint32_t mg_layer_chain(struct mg_layers *t, uint64_t inode, uint64_t *out, uint32_t max);
/* Put the non-writable layers into @m. 0 or -ENOMEM/-EINVAL. */
int mg_layers_to_map(const struct mg_layers *t, struct cmap *m);
/* Load layers, volume tops and snapshot counts from the store. */
int mg_layers_load(struct mg_cluster *c);
/* Call @cb(c, arg, 0) once every up server answered a push of @epoch or
 * newer, or with -ETIMEDOUT after 30 s. 0 or -ENOMEM. */
int mg_fence_wait(struct mg_cluster *c, uint64_t epoch,
		  void (*cb)(struct mg_cluster *c, void *arg, int res), void *arg);
/* Re-evaluate the waits (after a push reply, a server going down). */
void mg_fence_check(struct mg_cluster *c);
/* MG_USAGE from @p: store it, drop deleting layers every server emptied.
 * 0, -EPERM (not a registered server), -EINVAL (@err), -ENOMEM. */
int mg_layer_usage_report(struct mg_cluster *c, struct mg_peer *p,
			  const struct Keel__UsageReport *r, char *err, size_t errlen);
void mg_layers_tick(struct mg_cluster *c);

/* ---- merges of deleted snapshots (mg_merge.c, docs/volumes.md) ---- */

/*
 * Plan merges on @t (pure). Online flattens first: a flattening layer T
 * whose parent P does not merge and is not merged into gets P merging
 * into T (a "flatten step", whatever else reads through P); a flattening
 * layer with no parent left (or deleting) stops flattening. Then: clear
 * merge_into of layers whose merge no
 * longer holds (the layer is no longer hidden -- a read-only layer with
 * no volume top and no snapshot -- or its only live child changed), and
 * start merges of hidden layers with exactly one live child C, unless C
 * itself is hidden with one live child and not merging (C merges first,
 * the one nearest the top goes first), C is merging, or another layer is
 * merging into the layer. @pool_of gives a family's pool (0: unknown, no
 * merge). Started merges get merge_into, merge_pool and merge_epoch
 * @epoch. Returns how many layers changed.
 */
uint32_t mg_merge_plan(struct mg_layers *t, uint32_t (*pool_of)(void *arg, uint64_t family),
		       void *arg, uint64_t epoch);
/* The pool of @family's volumes in @c's store (pool_of for mg_merge_plan). */
uint32_t mg_merge_family_pool(void *c, uint64_t family);
/* Bring c->jobs in line with c->layers after a change: a job per merging
 * layer (new ones queued), running jobs whose merge went away failed
 * with @why. */
void mg_merge_jobs_sync(struct mg_cluster *c, const char *why);
/* Name the job of @layer's merge (after a snapshot delete started it). */
void mg_merge_job_name(struct mg_cluster *c, uint64_t layer, const char *volume,
		       const char *snapshot);
struct mg_job *mg_merge_job_find(struct mg_cluster *c, uint64_t layer);
struct mg_job *mg_flatten_job_find(struct mg_cluster *c, uint64_t top);
/* Sum the servers' progress; complete merges every primary of the pool
 * reported done under the current map (mg_volume_merge_complete()). */
void mg_merge_check(struct mg_cluster *c);
/* The job as JSON (docs/api.md). */
struct json_t;
struct json_t *mg_job_json(const struct mg_job *j);
void mg_jobs_free(struct mg_jobs *j);
/* GET /v1/jobs, /v1/jobs/{id} */
struct mg_api_req;
void mg_jobs_handle(struct mg_cluster *c, struct mg_api_req *req);

/* mg_volume.c: end merge @layer: its child takes its parent, the layer
 * becomes deleting (a flatten step: unless something else keeps it), one
 * transaction and map. 0 or -errno. */
int mg_volume_merge_complete(struct mg_cluster *c, uint64_t layer);

/* ---- cluster port (mg_cport.c) ---- */

/* Listen on @addr and accept kp_conn connections. 0 or -errno (logged). */
int mg_cport_start(struct mg_cluster *c, const char *addr);
/* Stop accepting and close every connection. */
void mg_cport_stop(struct mg_cluster *c);
/* Send the current map to every server and subscriber that lacks it. */
void mg_cport_push_all(struct mg_cluster *c);
void mg_cport_close_peer(struct mg_peer *p, const char *reason);
/* Close connections that have not authenticated within MG_AUTH_TIMEOUT_NS
 * (run from the tick). */
void mg_cport_check_auth(struct mg_cluster *c);

/* Blob refcounting (mg_cport.c). */
struct mg_blob *mg_blob_pack(const struct cmap *m);
void mg_blob_put(struct mg_blob *b);

#endif
