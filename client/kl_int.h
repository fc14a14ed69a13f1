/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libkeel internals: the cluster, volume, request and data-connection
 * structures shared by the kl_*.c files, and the pure helpers (splitter,
 * router, retry verdicts, iovec copies) the unit tests call directly.
 *
 * Request model. A user request (struct kl_req, preallocated per volume)
 * is cut into parts (struct kl_sub, preallocated per cluster, one object
 * extent of at most KP_MAX_DATA each, or one SYNC per server). Each part
 * is an enum state machine driven by kl_sub_process():
 *
 *   ROUTE ──send──► SENT ──reply OK / permanent error──► DONE ──► FREE
 *     │  ▲           │
 *     │  │           └─ESTALE, EAGAIN, EBUSY, conn lost, timeout─┐
 *     │  └──── newer map or backoff expiry ◄── PARKED ◄─────────┘
 *     └─conn not ready─► CONNWAIT ──ready──► ROUTE (conn lost: PARKED)
 *
 * A part whose kp_msg is still owned by the connection (msg_busy) never
 * leaves ROUTE or DONE until the send callback released it: the message and
 * the data it points at are reused by the next attempt.
 *
 * Everything here runs on the cluster's reactor thread.
 */
#ifndef KEEL_CLIENT_KL_INT_H
#define KEEL_CLIENT_KL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "client/libkeel.h"
#include "common/reactor.h"
#include "proto/auth.h"
#include "proto/cmap.h"
#include "proto/conn.h"
#include "proto/frame.h"

#define KL_MAX_SUBS	    1024u /* parts in flight per cluster (req_id low 16 bits) */
#define KL_MAX_REQS	    1024u /* user requests in flight per volume */
#define KL_REQ_IOV_MAX	    64	  /* iovec entries copied per request */
#define KL_BOUNCE_COUNT	    16u	  /* 1 MiB write bounce buffers per cluster */
#define KL_SRV_MAX_INFLIGHT 128u  /* the server's per-connection queue depth */
#define KL_BACKOFF_MIN_NS   (5ull * 1000 * 1000)
#define KL_BACKOFF_MAX_NS   (200ull * 1000 * 1000)
#define KL_CONNECT_RETRY_NS (50ull * 1000 * 1000) /* between connects to one server */
#define KL_MG_RETRY_NS	    (500ull * 1000 * 1000) /* between mgmt reconnects */
#define KL_DEFAULT_TIMEOUT_MS 5000u
#define KL_MAX_SERVER_ID    65535u
#define KL_CHAIN_META_MAX   (KEEL_MAX_PARENTS * 10 + 8) /* packed ReadChain */

_Static_assert(KL_MAX_SUBS <= 65536, "sub index lives in the low 16 bits of req_id");

/* ---- intrusive doubly linked list (a detached node points at itself) ---- */

struct kl_list {
	struct kl_list *next, *prev;
};

static inline void kl_list_init(struct kl_list *h)
{
	h->next = h;
	h->prev = h;
}

static inline bool kl_list_empty(const struct kl_list *h)
{
	return h->next == h;
}

static inline void kl_list_add_tail(struct kl_list *h, struct kl_list *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

/* Insert @n first: a free list used as a stack hands out the entry freed
 * last, still in cache. */
static inline void kl_list_add(struct kl_list *h, struct kl_list *n)
{
	kl_list_add_tail(h->next, n);
}

static inline void kl_list_del(struct kl_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	kl_list_init(n);
}

/* Move every entry of @from to the tail of @to (which may be non-empty). */
static inline void kl_list_splice(struct kl_list *from, struct kl_list *to)
{
	if (kl_list_empty(from)) {
		return;
	}
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	kl_list_init(from);
}

#define kl_list_first(h, type, member) container_of((h)->next, type, member)

/* ---- pure helpers (kl_route.c) ---- */

/* One piece of a volume extent: part of one object. */
struct kl_extent {
	uint64_t objno;
	uint32_t obj_off;
	uint32_t len;
};

/*
 * The next piece of [off, end) of a volume with @object_size (a nonzero
 * multiple of 4096): it stops at the object boundary and at KP_MAX_DATA.
 * Caller guarantees off < end.
 */
void kl_split_next(uint64_t off, uint64_t end, uint32_t object_size, struct kl_extent *out);

/* Where one object goes under map @m. */
struct kl_route {
	uint32_t server; /* primary's id */
	uint32_t pgid;	 /* KP_PGID(pool, pg) */
	const char *addr; /* primary's data address, owned by @m */
};

/*
 * Resolve object @objno of layer @inode in @pool: pg = cmap_object_pg(),
 * then the PG's primary and its address. 0, -ENOENT (no map, pool not in
 * the map) or -EAGAIN (PG inactive: primary 0, or the primary is not a
 * server of the map or has no address). out->pgid is set whenever the pool
 * is known.
 */
int kl_route_object(const struct cmap *m, uint32_t pool, uint64_t inode, uint64_t objno,
		    struct kl_route *out);

enum kl_verdict {
	KL_V_OK,	    /* done, success */
	KL_V_FAIL,	    /* done, surface the error */
	KL_V_RETRY_MAP,	    /* stale epoch: retry on a newer map or after backoff */
	KL_V_RETRY_BACKOFF, /* transient: retry after backoff */
	KL_V_REOPEN,	    /* layer no longer writable: ask mgmt for the volume, retry */
};

/*
 * What to do with a reply of @opcode carrying @err (0 or -errno from
 * kp_status_to_errno()). On KL_V_FAIL *surface is the errno to report:
 * EINVAL/ERANGE/EIO/ENOSPC/EPERM as they are, anything unexpected as -EIO.
 * ENOENT on DISCARD/WRITE_ZEROES/SYNC is success (nothing to drop).
 */
enum kl_verdict kl_classify(uint16_t opcode, int err, int *surface);

/* Next backoff after @cur (0: first failure): 5 ms doubling to 200 ms. */
uint64_t kl_backoff_next(uint64_t cur);

/* Copy @len bytes between a buffer and the iovec view starting @off bytes
 * into @iov. Caller guarantees the iovec covers off + len. */
void kl_iov_to_buf(const struct iovec *iov, int iovcnt, uint64_t off, void *buf, size_t len);
void kl_iov_from_buf(const struct iovec *iov, int iovcnt, uint64_t off, const void *buf,
		     size_t len);
/* Pointer to @len contiguous bytes at @off when one iovec entry holds them
 * all, else NULL. */
const void *kl_iov_contig(const struct iovec *iov, int iovcnt, uint64_t off, size_t len);
/* Total bytes of @iov, or UINT64_MAX when it overflows. */
uint64_t kl_iov_len(const struct iovec *iov, int iovcnt);

/* ---- data connections (kl_srv.c) ---- */

enum kl_srv_state {
	KL_SRV_DOWN,	   /* no connection */
	KL_SRV_CONNECTING, /* handshake running */
	KL_SRV_READY,
	KL_SRV_CLOSING,	   /* close requested, waiting for on_close */
};

struct kl_srv {
	struct keel_cluster *c;
	uint32_t id;
	char addr[CMAP_ADDR_LEN];
	enum kl_srv_state state;
	void *conn;		  /* the transport's handle (a kp_conn) */
	struct kl_list waitq;	  /* parts waiting for READY or a free slot */
	struct kl_list sent;	  /* parts on the wire */
	uint32_t nsent;
	bool lost;		  /* the last connection died: next connect is a reconnect */
	uint64_t retry_after_ns;  /* no connect attempt before this */
};

/*
 * The data transport, an ops table so the unit tests can run the request
 * machinery against a fake cluster. The transport reports back through
 * kl_srv_on_ready / kl_srv_on_msg / kl_srv_on_close.
 */
struct kl_net_ops {
	/* Start connecting @s to s->addr: 0 (on_ready or on_close follows)
	 * or -errno (nothing follows). May block (TCP connect). */
	int (*connect)(struct kl_srv *s);
	/* kp_conn_send() semantics. */
	int (*send)(struct kl_srv *s, struct kp_msg *m);
	/* Close; on_close follows (deferred). Idempotent. */
	void (*close)(struct kl_srv *s, int err, const char *why);
};

extern const struct kl_net_ops kl_net_kp;

void kl_srv_on_ready(struct kl_srv *s);
void kl_srv_on_msg(struct kl_srv *s, const struct kp_hdr *h, const uint8_t *data,
		   const uint32_t *crcs);
void kl_srv_on_close(struct kl_srv *s, int err, const char *why);

/* The server record for @id (created on first use). NULL on ENOMEM. */
struct kl_srv *kl_srv_get(struct keel_cluster *c, uint32_t id);
/* Close the data connection of @s (parts on it are retried). */
void kl_srv_close(struct kl_srv *s, int err, const char *why);

/* ---- requests (kl_io.c) ---- */

enum kl_op {
	KL_OP_READ,
	KL_OP_WRITE,
	KL_OP_DISCARD,
	KL_OP_WRITE_ZEROES,
	KL_OP_FLUSH,
};

struct kl_req {
	struct keel_volume *v;
	enum kl_op op;
	struct iovec iov[KL_REQ_IOV_MAX];
	int iovcnt;
	uint64_t off, end; /* volume byte range */
	uint64_t next;	   /* next byte to split off (flush: next server index) */
	unsigned int parts_out;
	int res;
	bool in_use, cancelled, queued;
	uint64_t first_fail_ns;
	keel_io_cb cb;
	void *arg;
	struct kl_list subs; /* parts not yet finished */
	struct kl_list link; /* volume free list, or the cluster's resource wait queue */
	struct reactor_defer defer;
};

enum kl_sub_state {
	KL_SUB_FREE,
	KL_SUB_ROUTE,	 /* resolve the primary and send */
	KL_SUB_CONNWAIT, /* queued on a server that is connecting or full */
	KL_SUB_SENT,	 /* waiting for the reply */
	KL_SUB_PARKED,	 /* waiting for a newer map or the backoff */
	KL_SUB_DONE,	 /* result known, waiting for the send to release the msg */
};

struct kl_sub {
	struct keel_cluster *c;
	struct kl_req *req; /* NULL: orphan (its request was cancelled) */
	enum kl_sub_state state;
	uint32_t idx;
	uint16_t opcode;
	uint32_t pool;
	uint64_t inode, objno;
	uint32_t obj_off, len;
	uint64_t rel;	 /* offset of this part within the request's data */
	uint32_t target; /* SYNC: the server; else 0 (routed) */
	const void *data; /* WRITE payload: caller memory or the bounce buffer */
	void *bounce;
	struct kl_srv *srv; /* server of the current attempt */
	struct kp_msg msg;
	bool msg_busy;
	uint64_t req_id;
	uint64_t epoch; /* map epoch of the current attempt */
	uint32_t attempts;
	uint64_t deadline_ns, wake_ns, backoff_ns;
	int res;
	struct kl_list link;	 /* cluster: free, parked or inflight list */
	struct kl_list srv_link; /* server: waitq or sent */
	struct kl_list req_link; /* request's parts */
	uint32_t crcs[KP_MAX_DATA / KP_BLOCK];
	uint8_t chain[KL_CHAIN_META_MAX]; /* READ: packed ReadChain of this attempt */
};

void kl_sub_process(struct kl_sub *s);
/* The reply to @s's current attempt (already matched by kl_srv_on_msg). */
void kl_sub_on_reply(struct kl_sub *s, const struct kp_hdr *h, const uint8_t *data,
		     const uint32_t *crcs);
/* @s's attempt failed without a reply (conn lost, send refused, timeout):
 * park it for a retry. */
void kl_sub_retry_later(struct kl_sub *s, int err);
/* Backoff timer: wake the parts whose backoff expired by @now. */
void kl_cluster_wake_due(struct keel_cluster *c, uint64_t now);
/* Set up the request slots of a new volume (v->reqs allocated). */
void kl_volume_init_reqs(struct keel_volume *v);
/* Wake every parked part (a newer map arrived). */
void kl_cluster_wake_parked(struct keel_cluster *c);
/* Parts whose deadline passed: close their connection. */
void kl_cluster_check_timeouts(struct keel_cluster *c, uint64_t now);
/* Run requests waiting for a part slot or a bounce buffer. */
void kl_cluster_run_waiters(struct keel_cluster *c);
/* Cancel every request of @v (-ECANCELED); @v is freed once none is left. */
void kl_volume_cancel_all(struct keel_volume *v);
void kl_volume_maybe_free(struct keel_volume *v);

/* ---- cluster and volume (kl_cluster.c) ---- */

struct kl_ctl;

struct keel_volume {
	struct keel_cluster *c;
	struct keel_volume_info info;
	struct keel_volume_stats stats;
	uint64_t gen; /* attachment generation its requests carry (0: none) */
	bool opened, closing;
	bool refreshing; /* an MG_VOLUME_OPEN for new layer info is out */
	int gone;	 /* mgmt no longer knows the volume: the error to surface */
	unsigned int nactive; /* requests in use */
	struct kl_req *reqs;
	struct kl_list free_reqs;
	struct kl_list link; /* cluster's volumes */
	void (*open_cb)(struct keel_volume *v, int res, void *arg);
	void *open_arg;
};

struct keel_cluster {
	struct reactor *r;
	const struct kl_net_ops *net;
	const struct xport_ops *xops; /* to the servers */
	struct kp_key key;
	char name[65];
	uint64_t io_timeout_ns;
	struct cmap *map;

	/* mgmt session (absent in unit tests) */
	char mg_addr[256];
	struct kp_conn *mg;
	bool mg_ready;
	uint64_t mg_retry_ns;
	uint64_t mg_seq;
	struct kl_list mg_ctls; /* control requests waiting for replies */
	void (*open_cb)(struct keel_cluster *c, int res, void *arg);
	void *open_arg;

	/* data path */
	struct kl_srv **srv_by_id;   /* KL_MAX_SERVER_ID + 1 entries */
	uint32_t *srv_ids;	     /* ids of the records that exist, ascending */
	uint32_t nsrv;
	unsigned int nconns;	     /* data connections not yet closed */
	struct kl_sub *subs;
	struct kl_list free_subs;
	struct kl_list parked;
	struct kl_list inflight;     /* SENT parts, in deadline order */
	struct kl_list res_waitq;    /* requests waiting for a part or bounce buffer */
	struct bufpool *bounce;
	void *zeroes;	      /* KP_MAX_DATA of zeroes: discard on a layered volume */
	uint32_t zero_crc;    /* crc32c of a zero 4 KiB block */
	uint64_t seq;
	struct kl_list volumes;

	struct reactor_timer backoff_timer, watch_timer;
	bool backoff_armed, watch_armed;
	bool closing;
	bool free_pending;
	struct reactor_defer free_defer;
	bool *freed_flag; /* set true when the cluster is freed (sync wrapper) */
};

/* Test and internal entry points. kl_cluster_create() builds a cluster with
 * no mgmt session on @net (the unit tests' fake transport); maps then come
 * from kl_cluster_set_map(). */
int kl_cluster_create(struct reactor *r, const struct keel_cluster_opts *opts,
		      const struct kl_net_ops *net, struct keel_cluster **out);
/* Install @m if its epoch is newer (takes ownership either way); true when
 * installed. Parked parts are woken. */
bool kl_cluster_set_map(struct keel_cluster *c, struct cmap *m);
/* A volume from known info, without asking mgmt. -EINVAL for bad info. */
int kl_volume_create(struct keel_cluster *c, const struct keel_volume_info *info,
		     struct keel_volume **out);
/* Validate volume info from the network. */
int kl_volume_info_check(const struct keel_volume_info *vi);
/* Ask mgmt for @v's info again (its top layer changed); parked parts are
 * woken when it arrives. No-op while one is out. */
void kl_volume_refresh(struct keel_volume *v);
/* Free the cluster if it is closing and nothing is left in flight. */
void kl_cluster_maybe_free(struct keel_cluster *c);
/* Ensure the periodic timers run. */
void kl_cluster_arm_backoff(struct keel_cluster *c);
void kl_cluster_arm_watch(struct keel_cluster *c);

#endif
