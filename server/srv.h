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
#include "common/xport.h"
#include "proto/auth.h"
#include "proto/conn.h"
#include "proto/frame.h"
#include "server/bs.h"

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
	char device[256];
	char backend[16];
	char key_file[256];
	int flush_mode; /* enum bs_flush_mode: auto, always, none */
	uint32_t meta_cache_mb;
	int log_level; /* enum srv_log_level */
	uint32_t max_connections;
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

/* Per-opcode counters, exposed through STAT. */
struct srv_counters {
	uint64_t ops[KP_OP__MAX];
	uint64_t errors[KP_OP__MAX];
	uint64_t bytes_read, bytes_written;
	uint64_t busy_rejects;
	uint64_t conns_accepted, conns_closed, conns_refused;
};

enum srv_req_state {
	SRV_REQ_FREE = 0,
	SRV_REQ_BS,	  /* blockstore request in flight */
	SRV_REQ_REPLYING, /* reply queued on the connection */
};

/* One preallocated request slot. */
struct srv_req {
	struct srv_conn *conn;
	enum srv_req_state state;
	struct kp_hdr hdr; /* the request as received */
	struct bs_req bs;
	struct kp_msg reply;
	void *buf;	      /* pool buffer or NULL */
	struct bufpool *pool; /* where buf came from */
	uint32_t crcs[BS_MAX_IO / BS_BLOCK];
	struct srv_req *next_free;
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
	bool stopping;
	uint64_t drain_deadline;
	struct reactor_timer drain_timer;
	struct srv_counters ctr;
	uint64_t started_ns;
};

/* Allocate pools and start listening on @addr. 0 or -errno (logged). */
int srv_start(struct srv *s, struct reactor *r, struct bs *bs, const struct kp_key *key,
	      const char *addr, uint32_t max_connections);
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

/* ---- signals (srv_signal.c) ---- */

struct srv_signal {
	struct reactor *r;
	int fd;
	struct reactor_op op;
	struct signalfd_siginfo info;
	void (*on_signal)(struct srv_signal *sig, int signo);
	bool armed;
};

/* Block SIGTERM/SIGINT/SIGHUP (ignore SIGPIPE) and read them via a signalfd
 * on @r. Call before any thread starts. 0 or -errno. */
int srv_signal_start(struct srv_signal *sig, struct reactor *r,
		     void (*on_signal)(struct srv_signal *sig, int signo));
void srv_signal_stop(struct srv_signal *sig);

#endif
