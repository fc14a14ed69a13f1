/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nbd_server: one blk_dev served over the NBD protocol (fixed newstyle
 * handshake, NBD_OPT_GO / INFO / EXPORT_NAME / LIST / ABORT, structured
 * replies not required; commands READ, WRITE, FLUSH, TRIM, WRITE_ZEROES,
 * DISC) on a unix socket and/or TCP, for fio's nbd engine, qemu-img,
 * qemu-io, nbdinfo and nbd-client. Multi-conn safe
 * (NBD_FLAG_CAN_MULTI_CONN: a FLUSH on any connection covers writes
 * completed on all of them, which blk_dev's flush guarantees).
 *
 * Every byte a client sends is validated (option lengths, export names,
 * command flags, offsets and lengths against the size and block size): a
 * bad command gets an error reply (EINVAL, ENOSPC for past-the-end,
 * EPERM for writes to a read-only export), a framing violation closes that
 * connection only. Never an abort.
 *
 * Threading: one reactor; every call from its thread.
 */
#ifndef KEEL_CLIENT_NBD_SERVER_H
#define KEEL_CLIENT_NBD_SERVER_H

#include <stdint.h>

#include "client/blk_dev.h"
#include "common/reactor.h"

struct nbd_server;

struct nbd_server_opts {
	const char *unix_path; /* unlinked if present, created mode 0660; NULL: none */
	const char *tcp_addr;  /* "host:port" to listen on; NULL: none */
	unsigned int max_conns; /* concurrent connections (default 16) */
};

struct nbd_server_stats {
	uint64_t reads, writes, flushes, trims, write_zeroes;
	uint64_t bytes_read, bytes_written;
	uint64_t bad_requests, io_errors, connections;
	/* Connections closed for a framing violation (bad magic, unknown client
	 * flags, oversized option or WRITE payload, too many options). */
	uint64_t protocol_errors;
	/* Requests that waited for a device slot (-EAGAIN), started later. */
	uint64_t parked;
	/* Time successful reads/writes took, from their header being read to
	 * their completion (time parked included, the reply's send not). */
	uint64_t read_ns, write_ns;
};

/* Listen and serve @dev under the export name dev->name. 0, or -errno from
 * socket/bind/listen, -EINVAL (neither address given, bad tcp_addr),
 * -ENOMEM. @dev must outlive the server. */
int nbd_server_create(struct reactor *r, struct blk_dev *dev, const struct nbd_server_opts *opts,
		      struct nbd_server **out);

/* Close listeners (unlinking the unix socket) and connections; @cb fires
 * once every request in flight on @dev has completed, then the server is
 * freed. @cb always fires (later). */
/* The device grew: connections made from now on see its new size (NBD has
 * no notification; clients reconnect to see it). */
void nbd_server_resize(struct nbd_server *s);

void nbd_server_close(struct nbd_server *s, void (*cb)(void *arg), void *arg);

void nbd_server_get_stats(const struct nbd_server *s, struct nbd_server_stats *out);

/* @st as "connections N reads N ... bytes_written N" (one line of key/value
 * pairs, the field names above). Returns what snprintf() returns. */
int nbd_server_format_stats(const struct nbd_server_stats *st, char *buf, size_t len);

#endif
