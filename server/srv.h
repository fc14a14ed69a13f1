/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv: the keel-server service. It listens on a transport, authenticates
 * every connection (kp_conn), and serves object requests from one
 * blockstore through one opcode table (srv_ops.c).
 *
 * Requests:
 *  - Each connection preallocates SRV_QUEUE_DEPTH request slots. A request
 *    that arrives with every slot busy gets an EBUSY reply (from a small
 *    separate ring of header-only replies) and is not executed; a client
 *    that keeps more than SRV_QUEUE_DEPTH + SRV_REJECT_SLOTS requests
 *    unanswered is closed ("queue depth exceeded"). Clients must bound
 *    their own queue depth at SRV_QUEUE_DEPTH.
 *  - Data buffers come from two bufpools (64 KiB and 1 MiB, 4096-aligned),
 *    never from malloc. A request that finds its pool empty is answered
 *    EBUSY (retryable) rather than queued: write payloads live in the rx
 *    buffer only during the callback, so they cannot wait.
 *  - A connection is refcounted: one reference while the transport is
 *    open, one per request slot in use. Requests that complete after the
 *    peer went away drop their replies; the connection is freed with its
 *    last reference.
 *
 * Shutdown (srv_shutdown): stop accepting, answer new requests EAGAIN, wait
 * until no blockstore request is in flight (bounded by a timeout), close
 * every connection, then stop the reactor. The caller then bs_close()s.
 *
 * Reactor thread only.
 */
#ifndef KEEL_SERVER_SRV_H
#define KEEL_SERVER_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/signalfd.h>

#include "common/bufpool.h"
#include "common/reactor.h"
#include "common/rsignal.h"
#include "common/xport.h"
#include "proto/auth.h"
#include "proto/conn.h"
#include "proto/frame.h"
#include "server/bs.h"
#include "server/srv_layer.h"
#include "server/srv_pg.h"

#define SRV_QUEUE_DEPTH	     128
#define SRV_REJECT_SLOTS     16
#define SRV_SMALL_BUF	     (64u * 1024)
#define SRV_SMALL_BUFS	     1024
#define SRV_LARGE_BUF	     BS_MAX_IO
#define SRV_LARGE_BUFS	     64
#define SRV_LIST_PAGE_MAX    512u /* objects per LIST reply */
#define SRV_DRAIN_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

/* ---- settings (srv_config.c) ---- */

enum srv_log_level {
	SRV_LOG_ERROR = 0,
	SRV_LOG_WARN,
	SRV_LOG_INFO,
	SRV_LOG_DEBUG,
};

struct srv_settings {
	char listen[128];
	char transport[16]; /* data path: tcp or rdma (common/xport.h) */
	char device[256];
	char backend[16];
	char key_file[256];
	int flush_mode; /* enum bs_flush_mode: auto, always, none */
	uint32_t meta_cache_mb;
	uint32_t apply_batch;
	uint32_t apply_delay_us;
	int log_level; /* enum srv_log_level */
	uint32_t max_connections;
	uint32_t auth_timeout_ms; /* a connection must authenticate within this */
	uint32_t poll_us;	  /* reactor busy-poll before sleeping */
	uint32_t slow_request_ms; /* log requests in flight longer (0: never) */
	/* cluster mode (docs/cluster.md); mgmt empty = single-server mode */
	char mgmt[128];
	char host[64];
	char rack[64];
	uint32_t weight;
	char advertise[128];
	uint32_t recovery_max_active;
	uint32_t recovery_client_ops;
	uint32_t replica_timeout_ms;
	/* [fault]: in-process message faults, tests only (proto/conn.h) */
	uint32_t fault_msg_drop_every;
	uint32_t fault_msg_corrupt_every;
	uint32_t fault_msg_delay_every;
	uint32_t fault_msg_delay_ms;
	uint32_t fault_recovery_hold_ms;
};

/* Fill @s with defaults. 0, or -EINVAL with @err (a schema bug). */
int srv_settings_defaults(struct srv_settings *s, char *err, size_t errlen);
/* Load an INI file into @s. -EINVAL/-ENOENT/-EACCES with @err naming file:line. */
int srv_settings_load(struct srv_settings *s, const char *path, char *err, size_t errlen);
/* Apply "section.key=value" (or "key=value" when unique). -EINVAL with @err. */
int srv_settings_set(struct srv_settings *s, const char *key, const char *value, char *err,
		     size_t errlen);
/* Print every setting with default and help, for --help. */
void srv_settings_help(FILE *f);
const char *srv_flush_mode_name(int mode);

/* ---- service (srv_service.c) ---- */

struct srv;
struct srv_conn;
struct srv_cluster;

/* Per-opcode counters, exposed through STAT. */
struct srv_counters {
	uint64_t ops[KP_OP__MAX];
	uint64_t errors[KP_OP__MAX];
	uint64_t bytes_read, bytes_written;
	uint64_t busy_rejects;
	uint64_t writes_coalesced; /* client WRITEs that rode on an earlier one */
	uint64_t conns_accepted, conns_closed, conns_refused;
};

enum srv_req_state {
	SRV_REQ_FREE = 0,
	SRV_REQ_BS,	  /* blockstore request in flight */
	SRV_REQ_REPLYING, /* reply queued on the connection */
	SRV_REQ_CLUSTER,  /* owned by srv_repl.c (cluster mode) */
};

/* ---- server-to-server requests (srv_peer.c) ---- */

struct srv_peer;
struct srv_peer_req;

enum srv_pr_state {
	SRV_PR_IDLE = 0,
	SRV_PR_QUEUED, /* waiting for the connection (or a retry time) */
	SRV_PR_SENT,   /* on the wire, reply expected */
	SRV_PR_DONE,   /* reply delivered */
};

/*
 * One request to another server. The owner fills msg.hdr (opcode, epoch,
 * pgid, object fields, lengths; not req_id), msg.meta/data/crcs, done and
 * arg, then srv_peer_send(). Connection loss and timeouts re-send it after
 * reconnecting; done fires once with the reply (res = reply status as
 * -errno; @h/@meta valid during the call) unless srv_peer_cancel() first.
 * Payload buffers stay the owner's and must live until srv_peer_idle().
 */
struct srv_peer_req {
	struct srv_peer *peer;
	enum srv_pr_state state;
	bool sending; /* kp_conn still holds the payload */
	uint32_t slot;
	uint64_t deadline_ns, retry_ns;
	struct srv_peer_req *qnext;
	struct kp_msg msg;
	void (*done)(struct srv_peer_req *pr, int res, const struct kp_hdr *h, const uint8_t *meta);
	void (*idle)(struct srv_peer_req *pr); /* optional: sending went false */
	void *arg;
};

/* ---- cluster mode per-request state (srv_repl.c) ---- */

enum srv_repl_state {
	SRV_RS_NONE = 0,
	SRV_RS_OBJ_WAIT,  /* waiting for the object (earlier mutation, push) */
	SRV_RS_PG_WAIT,	  /* mutation queued: below min_replicas */
	SRV_RS_RUNNING,	  /* local op and replica ops in flight */
	SRV_RS_PUSHING,	  /* a member rejected the previous version: object push */
	SRV_RS_FINISHING, /* result known, waiting for sends to release buffers */
	SRV_RS_MERGED,	  /* WRITE coalesced into an earlier one (its r.merged) */
};

struct srv_obj;
struct srv_rop;
struct srv_gc;
struct srv_merge;

/*
 * A merge copy-up (srv_merge.c): a WRITE of req->buf (blocks of the
 * merged layer @from) into req->hdr.inode that, under the object's
 * exclusive hold, first reads which blocks the target holds and then
 * writes only the first run of blocks it lacks (req->hdr.offset/length
 * and req->buf are trimmed to it). @consumed: blocks of the original
 * extent dealt with (the skipped ones and the run written).
 */
struct srv_copyup {
	uint64_t from;
	void *cbuf; /* BS_MAX_IO, 4096-aligned: the target's extent (discarded) */
	uint32_t ccrcs[BS_MAX_IO / BS_BLOCK];
	uint64_t cpresent[BS_PRESENT_WORDS(BS_MAX_IO)];
	uint32_t consumed;
	bool wrote;
};

/* A waiter for an object (srv_obj): a client request or an object push. */
struct srv_obj_waiter {
	struct srv_obj_waiter *next;
	struct srv_obj *obj; /* set by srv_obj_lock() */
	bool writer;
	void (*grant)(struct srv_obj_waiter *w);
};

struct srv_repl {
	struct srv_obj_waiter ow;
	enum srv_repl_state state;
	struct srv_pg *pg;
	struct srv_obj *obj;
	bool locked;		       /* holds the object (as ow.writer says) */
	struct srv_req *wnext;	       /* PG wait queue */
	struct srv_req *pnext, *pprev; /* pg->active */
	uint32_t pg_gen;
	uint64_t version, prev_version;
	uint64_t interval; /* the PG's interval when the mutation started */
	bool local_done;
	int local_res;
	int final_res;
	unsigned int nsubs;
	uint32_t sent[CMAP_MAX_REPLICAS];
	bool done[CMAP_MAX_REPLICAS];
	bool need_push[CMAP_MAX_REPLICAS];
	bool behind[CMAP_MAX_REPLICAS]; /* recovering member, recovery brings it */
	struct srv_peer_req subs[CMAP_MAX_REPLICAS];
	struct srv_rop *rop; /* inline push in progress */
	struct reactor_defer defer;
	bool chain;	       /* READ with a ReadChain: req->x.chain */
	struct srv_copyup *cu; /* merge copy-up (internal WRITE), or NULL */
	uint32_t layers_gen;   /* mutation: srv_cluster.layers_gen when it started */
	/* write coalescing: the WRITEs riding on this one (linked by mnext);
	 * own_length is hdr.length as received, restored for the reply */
	struct srv_req *merged, *mnext;
	uint32_t own_length;
};

/* A client READ through a layer chain (srv_repl.c): the top's extent is
 * read into req->buf, then each parent's into pbuf, and the blocks still
 * missing are taken from it (layer_merge()). */
struct srv_chain {
	uint32_t nparents, level; /* level: the parent being read */
	uint64_t top_version;
	uint64_t parents[KP_READ_CHAIN_MAX];
	uint64_t present[BS_PRESENT_WORDS(BS_MAX_IO)];
	uint64_t missing[BS_PRESENT_WORDS(BS_MAX_IO)];
	void *pbuf;	      /* from req->pool, like req->buf */
	struct srv_obj *pobj; /* the parent's object, held shared while read */
	struct srv_obj_waiter pw;
	uint32_t pcrcs[BS_MAX_IO / BS_BLOCK];
};

/* One preallocated request slot. */
struct srv_req {
	struct srv_conn *conn;
	enum srv_req_state state;
	uint64_t start_ns; /* dispatched at (slow-request warnings) */
	bool slow_logged;
	struct kp_hdr hdr; /* the request as received */
	struct bs_req bs;
	struct kp_msg reply;
	void *buf;	      /* pool buffer or NULL */
	struct bufpool *pool; /* where buf came from */
	uint32_t crcs[BS_MAX_IO / BS_BLOCK];
	struct srv_req *next_free;
	struct srv_repl r; /* cluster mode */
	union {
		struct bs_push_req push;   /* REPLICA_PUSH, REPLICA_DELETE */
		struct bs_bvers_req bvers; /* REPLICA_BVERS */
		struct srv_chain chain;	   /* client READ with a ReadChain */
	} x;
	uint64_t vers[BS_MAX_IO / BS_BLOCK]; /* REPLICA_PUSH block versions */
};

struct srv_conn {
	struct srv *srv;
	struct kp_conn *kc; /* NULL once the transport closed */
	unsigned int refs;
	unsigned int in_use; /* request slots busy */
	bool counted;	     /* counted in srv->nconns */
	char peer[64];
	uint64_t requests;
	struct srv_conn *prev, *next;
	struct srv_req *free_reqs;
	struct kp_msg rejects[SRV_REJECT_SLOTS];
	uint32_t reject_busy; /* bitmap of rejects in use */
	/* internal requests (srv_merge.c): srv_req_finish() calls this
	 * instead of replying; kc stays NULL, the slots are the owner's */
	void (*internal_done)(struct srv_req *req, int res);
	struct srv_req reqs[SRV_QUEUE_DEPTH];
};

struct srv {
	struct reactor *r;
	struct bs *bs;
	const struct kp_key *key;
	const struct xport_ops *xops;
	struct xport_listener *listener;
	uint32_t max_connections;
	unsigned int nconns;
	unsigned int bs_inflight;
	struct srv_conn *conns;
	struct bufpool *small, *large;
	int small_buf, large_buf; /* their registered-buffer indexes, or -errno */
	bool stopping;
	uint64_t drain_deadline;
	struct reactor_timer drain_timer;
	uint64_t auth_timeout_ns;
	struct reactor_timer auth_timer; /* closes connections that never authenticate */
	struct srv_counters ctr;
	uint64_t started_ns;
	struct srv_cluster *cl; /* NULL: single-server mode */
	/* message faults on every data connection (client and peer), or NULL */
	struct kp_fault *fault;
	uint64_t slow_ns;	/* a request in flight this long is logged once */
	uint64_t slow_requests; /* how many were */
	unsigned int ticks;
};

/* Allocate pools and start listening on @addr with transport @xops (replica
 * connections to peers use it too). A connection that has not
 * completed the handshake @auth_timeout_ms after it was accepted is closed
 * ("authentication timeout"). 0 or -errno (logged). */
int srv_start(struct srv *s, struct reactor *r, struct bs *bs, const struct kp_key *key,
	      const struct xport_ops *xops, const char *addr, uint32_t max_connections,
	      uint32_t auth_timeout_ms);
/* Begin a graceful shutdown; reactor_stop() follows once drained. */
void srv_shutdown(struct srv *s);
/* Free pools after the reactor returned (every connection is gone). */
void srv_destroy(struct srv *s);

/* ---- request plumbing shared by srv_service.c and srv_ops.c ---- */

/* Execute the request in @req (req->hdr holds the validated frame header;
 * @meta/@data/@crcs are valid only during the call). srv_req_finish()
 * follows exactly once. */
void srv_dispatch(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		  const uint32_t *crcs);
/*
 * Finish @req: send a reply with status from @res (0 or -errno) and the
 * reply fields the handler set in req->reply (meta, data, crcs, hdr.obj_ver,
 * hdr.data_len, hdr.meta_len). Fires exactly once per dispatched request.
 */
void srv_req_finish(struct srv_req *req, int res);
/* Take a pool buffer of at least @len bytes; -EBUSY when none is free. */
int srv_req_get_buf(struct srv_req *req, uint32_t len);
/* Pack @msg (a ProtobufCMessage) into a pool buffer as the reply meta. */
int srv_req_reply_meta(struct srv_req *req, const void *msg);
/* Reply with one ObjectList page: up to @max objects after the cursor
 * (ci, co; 0/0 = from the start) for which @match is true, with `more` set
 * when others follow; then finish the request. 0, or -errno (the caller
 * finishes with it). */
int srv_req_reply_object_page(struct srv_req *req,
			      bool (*match)(uint64_t inode, uint64_t objno, void *arg), void *arg,
			      uint64_t ci, uint64_t co, unsigned int max);
/* Submit req->bs (filled by the caller) with the generic completion. */
int srv_req_bs_submit(struct srv_req *req, enum bs_op op, uint64_t version);

/* ---- cluster mode (srv_mgmt.c, srv_peer.c, srv_repl.c, srv_recovery.c) ---- */

#define SRV_PEER_SLOTS	    1024u /* requests in flight per peer connection */
#define SRV_OBJS	    8192u /* objects with client ops in flight (cluster mode) */
#define SRV_HEARTBEAT_NS    (250ull * 1000 * 1000)
#define SRV_TICK_NS	    (20ull * 1000 * 1000)
#define SRV_REPORT_NS	    (1000ull * 1000 * 1000)
#define SRV_EAGAIN_RETRY_NS (20ull * 1000 * 1000)
#define SRV_INLINE_ROPS	    8u /* object pushes started by writes (beyond recovery's) */
#define SRV_MAP_HELD	    8u /* MG_MAP replies held while older mutations drain */
/* A map reply held longer than this is answered ETIMEDOUT (mutations that
 * wait for a later map, e.g. one removing a failed replica, would otherwise
 * wait for mgmt, which pushes that map only after our reply). */
#define SRV_MAP_DRAIN_TIMEOUT_NS (3000ull * 1000 * 1000)
#define SRV_USAGE_NS		 (2000ull * 1000 * 1000) /* MG_USAGE period */
#define SRV_GC_ACTIVE		 16u /* objects of deleting layers freed at a time */
#define SRV_MERGE_ACTIVE	 4u  /* objects of merging layers copied up at a time */
#define SRV_USAGE_MERGES	 64u /* merges one MG_USAGE reports on */

/* An object with client ops or a push in flight (primary side). */
struct srv_obj {
	uint64_t inode, objno;
	struct srv_obj *hnext;
	uint32_t readers;
	bool writer;
	bool hashed;   /* in use (in the hash), not on the free list */
	uint32_t pins; /* wake-ups in progress: grants may re-enter unlock */
	struct srv_obj_waiter *wait_head, *wait_tail;
};

/* Object push to one member (recovery and writes' repair), srv_recovery.c. */
enum srv_rop_state {
	SRV_ROP_FREE = 0,
	SRV_ROP_LOCK,	     /* waiting for the object */
	SRV_ROP_LOCAL_BVERS, /* our block versions */
	SRV_ROP_REMOTE_BVERS,
	SRV_ROP_READ,	/* reading one run */
	SRV_ROP_PUSH,	/* REPLICA_PUSH of one run in flight */
	SRV_ROP_DELETE, /* REPLICA_DELETE in flight */
	SRV_ROP_DONE,
};

struct srv_rop {
	struct srv_cluster *cl;
	enum srv_rop_state state;
	struct srv_pg *pg;
	uint32_t pg_gen;
	uint32_t member;
	uint64_t inode, objno;
	bool locked_by_owner; /* a write holds the object for us */
	struct srv_obj *obj;
	struct srv_obj_waiter ow;
	int res;
	uint64_t obj_version;
	uint64_t *pv, *rv; /* bpo entries each */
	void *iobuf;	   /* BS_MAX_IO, 4096-aligned */
	uint32_t *crcs;
	struct pg_run *runs;
	unsigned int nruns, run;
	uint64_t bytes;
	struct bs_bvers_req bv;
	struct bs_req bsr;
	struct srv_peer_req pr;
	uint8_t meta[8192]; /* PushRequest: <= 256 versions */
	void (*done)(struct srv_rop *rop, int res);
	void *arg;
	struct srv_rop *next_free;
};

struct srv_cluster {
	struct srv *srv;
	struct reactor *r;
	const struct kp_key *key;
	struct srv_settings set;
	uint32_t self;	  /* server id from mgmt, 0 until registered */
	struct cmap *map; /* NULL until the first map */
	uint64_t epoch;
	/* PG table: per pool index of map->pools, pg_count pointers */
	struct srv_pg **pool_pgs[4096]; /* by pool id: CMAP_MAX_PGS pointers, kept */
	/* mgmt session */
	struct kp_conn *mkc;
	bool mready, registered;
	bool mconnect_failing; /* reported; quiet until a connect succeeds */
	uint64_t mretry_ns, mbackoff_ns;
	struct kp_msg mreg, mhb, mrep;
	bool mreg_busy, mhb_busy, mrep_busy;
	uint8_t mreg_buf[1024], mhb_buf[128];
	uint8_t *mrep_buf;
	size_t mrep_cap;
	struct kp_msg mmap_reply[4];
	uint32_t mmap_reply_busy;
	uint64_t next_hb_ns, next_report_ns;
	/* primary lease: client I/O as primary only until lease_until_ns
	 * (heartbeat send time + lease_ms once mgmt acknowledged it) */
	uint32_t lease_ms;
	uint64_t lease_until_ns;
	uint64_t hb_seq;
	uint64_t hb_sent_ns[8]; /* by heartbeat seq % 8 */
	bool lease_lost_logged;
	/* peers */
	struct srv_peer *peers;
	/* objects */
	struct srv_obj *objs;
	struct srv_obj *obj_free;
	struct srv_obj **obj_hash;
	uint32_t obj_hmask;
	/* recovery */
	struct srv_rop *rops;
	struct srv_rop *rop_free;
	uint32_t rops_active;	  /* recovery-started pushes in flight */
	struct srv_pg **rec_list; /* PGs we are primary of with an up member not in sync */
	unsigned int nrec;
	uint64_t client_inflight;
	uint64_t full_refused;	 /* client writes refused: pool full (ENOSPC) */
	uint64_t member_nospc;	 /* writes failed: a member had no space */
	uint64_t fenced_refused; /* client mutations refused: fenced generation */
	uint64_t rec_bytes_copied, rec_objects_copied;
	/* (PG, interval) pairs we acknowledged writes in as primary, logged
	 * once a second ("primary writes acknowledged"): tests check that no
	 * two servers ever did for the same pair */
	struct srv_wrote {
		uint32_t pool, pg;
		uint64_t interval;
	} wrote[256];
	unsigned int nwrote;
	uint64_t next_wrote_ns;
	/* layers (docs/cluster.md "Layers on the server") */
	uint32_t layers_gen; /* +1 whenever an applied map changes the layer list */
	uint64_t mut_cur;    /* client mutations in flight started under layers_gen */
	uint64_t mut_old;    /* ... started under an earlier layer list */
	uint64_t held_map_reqs[SRV_MAP_HELD]; /* MG_MAP pushes answered once mut_old is 0 */
	unsigned int nheld;
	uint64_t drain_deadline_ns;
	struct srv_gc *gc;
	struct srv_merge *merge;
	/* MG_USAGE reports */
	struct kp_msg musage;
	bool musage_busy;
	bool usage_enotsup_logged;
	uint8_t *musage_buf;
	size_t musage_cap;
	uint64_t next_usage_ns;
	/* timers */
	struct reactor_timer tick;
	bool stopping;
};

/* srv_mgmt.c: cluster mode start/stop; the mgmt session and map application. */
int srv_cluster_start(struct srv *s, const struct srv_settings *set);
void srv_cluster_stop(struct srv *s);
struct srv_pg *srv_cluster_pg(struct srv_cluster *cl, uint32_t pgid);
void srv_cluster_report_now(struct srv_cluster *cl);
/* Heartbeat request ids: base + sequence number (lease bookkeeping). */
#define SRV_HB_REQID_BASE (1ull << 40)
/* May we serve client I/O as primary (docs/cluster.md "Primary lease")?
 * Logs the first refusal after a renewal. */
bool srv_cluster_lease_valid(struct srv_cluster *cl);

/* srv_peer.c */
void srv_peer_send(struct srv_cluster *cl, uint32_t server_id, struct srv_peer_req *pr);
void srv_peer_cancel(struct srv_peer_req *pr);
void srv_peer_tick(struct srv_cluster *cl, uint64_t now);
void srv_peer_map_changed(struct srv_cluster *cl);
void srv_peer_close_all(struct srv_cluster *cl);
/* Request id high 16 bits: the sender's server id (replica-side fencing). */
#define SRV_REQID_SENDER(id) ((uint32_t)((id) >> 48))

/* srv_repl.c */
/* Cluster-mode checks of a client data op (pgid, primary, epochs); sets
 * req->r.pg. 0 or -EINVAL / -ESTALE for the reply. */
int srv_cluster_check_client(struct srv_cluster *cl, struct srv_req *req);
/* Run a checked client READ/WRITE/DISCARD/WRITE_ZEROES (data already in
 * req->buf); srv_req_finish() follows exactly once. */
void srv_repl_client(struct srv_req *req);
void srv_repl_replica(struct srv_req *req, const uint8_t *meta, const uint8_t *data,
		      const uint32_t *crcs);
void srv_repl_pg_changed(struct srv_cluster *cl, struct srv_pg *pg, bool gone);
/* Find or make the entry of an object; NULL when SRV_OBJS are in use. */
struct srv_obj *srv_obj_get(struct srv_cluster *cl, uint64_t inode, uint64_t objno);
/* Take @o for @w (shared for readers): true when granted now, else @w is
 * queued (FIFO) and w->grant() runs when it is granted. */
bool srv_obj_lock(struct srv_cluster *cl, struct srv_obj *o, struct srv_obj_waiter *w);
/* Drop a granted hold; wakes waiters; frees the entry when unused. */
void srv_obj_unlock(struct srv_cluster *cl, struct srv_obj *o, bool writer);
/* Remove a queued (not granted) waiter; frees the entry when unused. */
void srv_obj_unqueue(struct srv_cluster *cl, struct srv_obj *o, struct srv_obj_waiter *w);

/* Log the (PG, interval) pairs recorded since the last call. */
void srv_repl_log_writers(struct srv_cluster *cl);

/* What a cluster request waits for, for the slow-request warning. */
void srv_repl_describe(const struct srv_req *req, char *buf, size_t len);

/* srv_mgmt.c: every client mutation started under an earlier layer list
 * has completed (cl->mut_old dropped to 0): answer the held map pushes. */
void srv_cluster_drained(struct srv_cluster *cl);
/* Send MG_USAGE at the next tick (GC freed a layer's last object). */
void srv_cluster_usage_now(struct srv_cluster *cl);

/* srv_gc.c: background freeing of deleting layers' objects (every role). */
int srv_gc_init(struct srv_cluster *cl);
void srv_gc_fini(struct srv_cluster *cl);
/* The map changed: restart the walk if the deleting layers changed. */
void srv_gc_map_changed(struct srv_cluster *cl);
/* Start frees up to SRV_GC_ACTIVE (tick and completions). */
void srv_gc_kick(struct srv_cluster *cl);
/* A usage walk found objects of deleting layers: walk again if idle. */
void srv_gc_rescan(struct srv_cluster *cl);

/* srv_merge.c: merges of deleted snapshots into their child (as primary;
 * docs/volumes.md "Merging a deleted snapshot"). */
int srv_merge_init(struct srv_cluster *cl);
void srv_merge_fini(struct srv_cluster *cl);
/* The map changed: restart the walk if the merges changed, or (@pgs) any
 * PG changed (which PGs we are primary of decides what the walk covers). */
void srv_merge_map_changed(struct srv_cluster *cl, bool pgs);
/* Start copy-ups up to SRV_MERGE_ACTIVE (tick and completions). */
void srv_merge_kick(struct srv_cluster *cl);
struct Keel__MergeProgress;
/* This server's progress per merge of the current map, for MG_USAGE:
 * fills up to @max entries of @out (initialized here). Returns the count. */
unsigned int srv_merge_progress(struct srv_cluster *cl, struct Keel__MergeProgress *out,
				unsigned int max);

/* srv_recovery.c */
int srv_recovery_init(struct srv_cluster *cl);
void srv_recovery_fini(struct srv_cluster *cl);
void srv_recovery_kick(struct srv_cluster *cl);
void srv_recovery_pg_changed(struct srv_cluster *cl, struct srv_pg *pg, bool gone);
/*
 * Will recovery still compare @inode:@objno between us and @member (a
 * member of @pg that is not in sync) before it reports the member in sync?
 * True until a recovery pass for the member has listed past the object,
 * and while the object waits in the pass's current page.
 */
bool srv_recovery_will_visit(const struct srv_pg *pg, uint32_t member, uint64_t inode,
			     uint64_t objno);
struct srv_rop *srv_rop_get(struct srv_cluster *cl, bool inline_push);
void srv_rop_start(struct srv_rop *rop);
void srv_rop_obj_ready(struct srv_rop *rop);

#endif
