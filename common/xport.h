/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xport: byte-stream transports on the reactor, behind one ops table.
 * TCP (io_uring send/recv) is the default; RDMA fills the same table.
 *
 * A connection delivers received bytes through the on_recv callback of its
 * owner (no copy into a caller buffer is requested per read: the transport
 * owns an rx buffer and hands out what arrived). Sends are queued and go out
 * in order; each send's callback fires once all its bytes are on the wire
 * (or the connection failed).
 *
 * Async rule as everywhere: 0 means the callback fires exactly once later;
 * -errno means it never fires. Reactor thread only.
 */
#ifndef KEEL_COMMON_XPORT_H
#define KEEL_COMMON_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/reactor.h"

struct xport_conn;
struct xport_listener;

#define XPORT_MAX_IOV		     8
#define XPORT_TCP_CONNECT_TIMEOUT_MS 200
/* RDMA connection setup is address + route resolution and a CM exchange:
 * slower than a TCP handshake, above all on software RoCE. */
#define XPORT_RDMA_CONNECT_TIMEOUT_MS 1000

/* Per-transport counters of one process (all its reactors), updated with
 * relaxed atomics. "Messages" are what the transport moves as a unit: TCP
 * recv and sendmsg completions, RDMA SEND completions. */
struct xport_stats {
	uint64_t conns;		      /* connections made or accepted */
	uint64_t bytes_in, bytes_out; /* stream bytes delivered / sent */
	uint64_t msgs_in, msgs_out;
	uint64_t rdma_read_bytes; /* RDMA only: stream bytes pulled by RDMA READ */
	uint64_t zero_copy_bytes; /* RDMA only: stream bytes sent that the peers
				   * read straight from our registered memory
				   * (xport_mem_register) */
};

struct xport_send;
typedef void (*xport_send_cb)(struct xport_send *s, int res);

/* One queued send; embed it in the owner's message. The iovecs and the
 * memory they point at must stay valid until cb runs. */
struct xport_send {
	struct iovec iov[XPORT_MAX_IOV];
	int iovcnt;
	xport_send_cb cb;
	/* Fault injection (tests): hold the connection's output, this send
	 * and everything queued with or after it, at least this long. 0 in
	 * normal operation. */
	uint32_t delay_ms;
	/* private */
	struct xport_send *next;
	size_t done;
	size_t total;
	uint32_t held; /* RDMA: completions awaited (last SEND, READ_DONEs) */
};

struct xport_conn_cbs {
	/*
	 * Bytes arrived: @data[0..len). Return how many were consumed (the
	 * rest is kept and presented again, with more data appended, on the
	 * next call). Returning a negative errno closes the connection.
	 * The transport's rx buffer holds at least rx_size bytes.
	 */
	ssize_t (*on_recv)(struct xport_conn *c, const uint8_t *data, size_t len);
	/* The connection is gone (peer closed: 0 or -ECONNRESET; error: -errno).
	 * Fires exactly once; pending send callbacks fire (with -ECANCELED)
	 * before it. After it returns the conn is freed. */
	void (*on_close)(struct xport_conn *c, int err);
};

struct xport_ops {
	const char *name;
	/* addr is "host:port" (IPv4/IPv6 literal or name). */
	int (*listen)(struct reactor *r, const char *addr, struct xport_listener **out);
	/* Accept connections; @cb runs per new connection, which then needs
	 * xport_start() to begin receiving. */
	int (*accept_start)(struct xport_listener *l,
			    void (*cb)(struct xport_listener *l, struct xport_conn *c, void *arg),
			    void *arg);
	void (*listen_close)(struct xport_listener *l);
	/* Blocking connect, bounded by XPORT_TCP_CONNECT_TIMEOUT_MS (-ETIMEDOUT):
	 * callers run it on their reactor thread, so it must never hang. */
	int (*connect)(struct reactor *r, const char *addr, struct xport_conn **out);
	int (*start)(struct xport_conn *c, const struct xport_conn_cbs *cbs, size_t rx_size,
		     void *arg);
	int (*send)(struct xport_conn *c, struct xport_send *s);
	/* Close: no more callbacks except on_close (deferred). Idempotent.
	 * A conn never start()ed is freed without on_close. */
	void (*close)(struct xport_conn *c, int err);
	/* Peer address as text, for logs. */
	const char *(*peer)(const struct xport_conn *c);
	/* The bound address as "ip:port" text (IPv6 as "[ip]:port"), with the
	 * port the kernel chose when listening on port 0. Valid until
	 * listen_close(). */
	const char *(*listen_addr)(const struct xport_listener *l);
	/* This transport's counters (process-wide). */
	struct xport_stats *stats;
};

/* Common head of every transport's connection. */
struct xport_conn {
	const struct xport_ops *ops;
	struct reactor *r;
	void *arg; /* owner's */
	uint64_t bytes_in, bytes_out;
};

struct xport_listener {
	const struct xport_ops *ops;
	struct reactor *r;
};

/* Look up a transport by name ("tcp", "rdma" when built). NULL if unknown. */
const struct xport_ops *xport_find(const char *name);

/*
 * The transport named @name for a daemon's configuration: 0 and *out, or
 * -ENOPROTOOPT with a message in @err: unknown name, or "rdma" in a build
 * without it (WITH_RDMA off). A missing RDMA device is found by listen or
 * connect (-ENODEV, logged).
 */
int xport_select(const char *name, const struct xport_ops **out, char *err, size_t errlen);

/* Log one info line per transport that carried anything: connections,
 * bytes and messages each way (the data-path counters tests read). */
void xport_stats_log(void);

extern const struct xport_ops xport_tcp_ops;
extern const struct xport_ops xport_rdma_ops; /* only in WITH_RDMA builds */

/*
 * Memory that sends may be made from without a copy (zero copy): buffer
 * pools, a vhost-user guest's memory. The registry is process-wide and
 * transport-neutral: TCP ignores it; RDMA registers a region with a
 * connection's protection domain the first time that connection sends
 * 8 KiB or more from it (after the handshake, so only authenticated peers
 * can read it), then announces the caller's own address to the peer, which
 * RDMA READs it. Any thread may call these; lookups (xport_mem_find(),
 * once per large send that misses a connection's cache) take no lock.
 *
 * xport_mem_register(): 0, -EINVAL (empty, wraps, overlaps a registered
 * region) or -ENOSPC (XPORT_MEM_MAX regions). xport_mem_unregister() takes
 * the address given to register; the caller must have no send from the
 * region still in flight (its callback not yet run) and may unmap the
 * memory when it returns: the connections of the calling thread's reactor
 * drop their registration of it before it returns, other threads'
 * connections on their next turn (until then the device keeps the old
 * pages pinned; it never reads whatever is mapped there next).
 */
#define XPORT_MEM_MAX 256
int xport_mem_register(void *addr, size_t len);
void xport_mem_unregister(void *addr);

/* For transports: the registered region holding [addr, addr + len). */
struct xport_mem_region {
	uintptr_t addr;
	size_t len;
	uint64_t id; /* never reused */
};
int xport_mem_find(const void *addr, size_t len, struct xport_mem_region *out);
/* Does @r hold all of [addr, addr + len)? */
static inline bool xport_mem_holds(const struct xport_mem_region *r, uintptr_t addr, size_t len)
{
	return addr >= r->addr && len <= r->len && addr - r->addr <= r->len - len;
}
/* Is region @id still registered? */
bool xport_mem_live(uint64_t id);
/* Changes on every register and unregister. */
uint64_t xport_mem_gen(void);
/* Have @fn called on the unregistering thread after each unregister (a
 * transport drops what that thread's connections hold of the range). 0 (also
 * when already watching) or -ENOSPC. */
int xport_mem_watch(void (*fn)(void));

/* Split "host:port" / "[v6]:port". Returns 0 or -EINVAL. */
int xport_parse_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);

/* For transports. "ip:port", IPv6 in brackets so that xport_parse_addr()
 * reads it back; "?" for NULL or another family. */
struct sockaddr;
struct addrinfo;
void xport_addr_text(const struct sockaddr *sa, char *buf, size_t len);
/* getaddrinfo() of "host:port" for a stream socket (@passive: to listen on).
 * 0 and *res (freeaddrinfo() it), or -errno logged with @who as prefix. */
int xport_resolve(const char *who, const char *addr, bool passive, struct addrinfo **res);

#endif
