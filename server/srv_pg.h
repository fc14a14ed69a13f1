/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_pg: what one keel-server knows about each placement group it is a
 * member of, and the pure decisions the data path takes from it (epoch
 * checks, fencing, version assignment, when a replicated write may be
 * acknowledged, which blocks recovery pushes). docs/cluster.md.
 *
 * No I/O, no allocation except pg_table_build(); unit-tested in
 * tests/cluster/. Reactor thread only (like the rest of the server).
 */
#ifndef KEEL_SERVER_SRV_PG_H
#define KEEL_SERVER_SRV_PG_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/cmap.h"

enum srv_pg_role {
	SRV_PG_NONE = 0,
	SRV_PG_PRIMARY,
	SRV_PG_REPLICA,
};

struct srv_req;
struct srv_rec;

/* One PG of the current map where this server is a member. */
struct srv_pg {
	uint32_t pool, pg;
	uint32_t pg_count; /* of the pool: object -> PG check */
	enum srv_pg_role role;
	uint64_t interval;
	uint32_t primary; /* server id, 0 = inactive */
	uint32_t nmembers;
	uint32_t members[CMAP_MAX_REPLICAS];
	uint32_t in_sync; /* bit i: members[i] */
	uint32_t up;	  /* bit i: members[i] is up in the map */
	uint32_t min_replicas;
	int self; /* our index in members */

	/* primary: versions and requests (srv_repl.c) */
	uint64_t last_ver;	   /* highest version assigned by us */
	uint64_t acked_interval;   /* last interval we acknowledged a write in */
	uint32_t gen;		   /* +1 whenever the map changed this PG */
	uint32_t inflight_cur;	   /* mutations started under the current gen */
	uint32_t inflight_prev;	   /* mutations started before it */
	struct srv_req *active;	   /* mutations in flight (list via pnext) */
	struct srv_req *wait_head; /* mutations queued below min_replicas */
	struct srv_req *wait_tail;
	/* recovery (srv_recovery.c) */
	struct srv_rec *rec;
	uint32_t synced_member; /* server id recovered, to report until the map has it */
	uint64_t synced_epoch;	/* map epoch it was recovered under */
	uint64_t bytes_copied;
	uint64_t objects_left, bytes_left;
	bool recovering;
	bool present; /* scratch for map application */
};

/* Lookups in a cmap without its helpers (maps are validated by cmap_from_pb). */
const struct cmap_server *pg_map_server(const struct cmap *m, uint32_t id);

/*
 * Fill the map-derived fields of @pg from map PG @cpg of @pool for server
 * @self. Returns false (and leaves @pg alone) when @self is not a member.
 * Runtime fields (versions, queues, recovery) are not touched.
 */
bool pg_view_update(struct srv_pg *pg, const struct cmap *m, const struct cmap_pool *pool,
		    const struct cmap_pg *cpg, uint32_t self);

/* Did the acting set or role change between @old and @pg (same PG)? */
bool pg_view_changed(const struct srv_pg *old, const struct srv_pg *pg);

/*
 * A client data op for this PG: 0, or -ESTALE when we are not the primary
 * (@pg NULL: not a member), when @req_epoch is older than the PG interval,
 * or newer than our map (@map_epoch: the client retries shortly).
 */
int pg_check_client(const struct srv_pg *pg, uint64_t map_epoch, uint64_t req_epoch);

/*
 * A REPLICA_* op from server @sender: -EAGAIN when @req_epoch is newer than
 * our map (the primary retries, we are about to get the map), -ESTALE when
 * we are not a member (@pg NULL), @req_epoch is older than the interval
 * (fencing an old primary) or @sender is not the primary in our map.
 */
int pg_check_replica(const struct srv_pg *pg, uint64_t map_epoch, uint64_t req_epoch,
		     uint32_t sender);

/*
 * Version for a new mutation: interval << 32 | counter, strictly greater
 * than both the object's current version @cur and every version this PG
 * handed out (@last), so a freed and re-created object never repeats one.
 */
uint64_t pg_next_version(uint64_t last, uint64_t interval, uint64_t cur);

/* Up members that are in sync (bitmask over members). */
uint32_t pg_up_in_sync(const struct srv_pg *pg);

/*
 * May mutations start: we are the (in-sync) primary and at least
 * min_replicas members are up. Up members that are recovering count: they
 * acknowledge a mutation only once their copy of that object equals ours
 * (the previous-version check of REPLICA_WRITE, else an object push comes
 * first), so an acknowledged write exists on min_replicas complete copies
 * of its object (Ceph's min_size over the acting set).
 */
bool pg_writable(const struct srv_pg *pg);

/*
 * May a mutation be acknowledged? @sent/@done list the server ids it was
 * sent to / that made it durable (@nsent entries, done[i] for sent[i]; id
 * 0: dropped); @local_done: our own copy is durable. Every up member of
 * the current map that was sent the write must have it (members the map
 * removed no longer count), and the copies (us plus those members) must
 * be >= min_replicas. @behind (may be NULL): members that are not in sync
 * and lack the object's previous state, left to recovery: not waited for
 * and not counted, unless the map shows them in sync by now.
 */
bool pg_write_complete(const struct srv_pg *pg, const uint32_t *sent, const bool *done,
		       const bool *behind, unsigned int nsent, bool local_done);

/* Is @id a member of @pg marked in sync? */
bool pg_member_in_sync(const struct srv_pg *pg, uint32_t id);

/* Is server @id an up member of @pg (other than us)? */
bool pg_member_up(const struct srv_pg *pg, uint32_t id);

/* Recovery: one extent of an object to push. */
struct pg_run {
	uint32_t blk, nblk;
};

/*
 * Blocks where the primary's versions @pv differ from the member's @rv
 * (@nblk each), as runs of at most @max_run blocks. Returns the number of
 * runs written to @out (at most @max; the caller passes nblk for max).
 */
unsigned int pg_diff_runs(const uint64_t *pv, const uint64_t *rv, uint32_t nblk, uint32_t max_run,
			  struct pg_run *out, unsigned int max);

/* Recovery listing merge: what to do with one object. */
enum pg_obj_action {
	PG_OBJ_SAME = 0, /* same object version on both sides */
	PG_OBJ_PUSH,	 /* primary has it, member lacks it or differs */
	PG_OBJ_DELETE,	 /* only the member has it */
};

struct pg_obj_ent {
	uint64_t inode, objno, version;
	uint32_t blocks;
};

struct pg_obj_todo {
	uint64_t inode, objno;
	enum pg_obj_action action;
	uint32_t blocks; /* primary's mapped blocks (estimate of bytes to copy) */
};

/*
 * Merge two ascending (inode, objno) listings, both complete up to and
 * including the key (@bound_inode, @bound_objno) (or to the end with
 * @bound_all), into the objects that differ. Entries beyond the bound are
 * ignored. Returns the count written to @out (at most @max; listings hold
 * at most @max entries together, so nothing is lost when max >= nl + nr).
 */
unsigned int pg_list_diff(const struct pg_obj_ent *local, unsigned int nl,
			  const struct pg_obj_ent *remote, unsigned int nr, bool bound_all,
			  uint64_t bound_inode, uint64_t bound_objno, struct pg_obj_todo *out,
			  unsigned int max);

#endif
