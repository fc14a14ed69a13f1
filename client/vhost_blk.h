/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_blk: one blk_dev served as a vhost-user-blk device on a unix
 * socket (keel-client's export to KVM guests). Our own implementation of
 * the vhost-user backend protocol (docs/vhost-user.md): feature and
 * protocol-feature negotiation, the frontend's memory table (memfd
 * regions, mmap'ed), split virtqueues, kick/call eventfds on the reactor,
 * multiqueue, config space, GET_ID, inflight tracking
 * (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) so that a keel-client restart
 * under a running guest resubmits what was in flight.
 *
 * The backend listens; the frontend (QEMU, or tests/tools' test frontend)
 * connects. One frontend at a time; a second connection is refused while
 * one is active. When the frontend disconnects, in-flight requests finish
 * against the device and their completions are dropped (the frontend
 * resubmits them from the inflight region on reconnect); the socket keeps
 * listening for the next connection.
 *
 * Everything the frontend sends (messages, memory regions, descriptors,
 * request headers) is validated: a bad request completes with
 * VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP and harms nothing else; a
 * protocol violation closes that connection only. Never an abort.
 *
 * Threading: one reactor; every call from its thread.
 */
#ifndef KEEL_CLIENT_VHOST_BLK_H
#define KEEL_CLIENT_VHOST_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/blk_dev.h"
#include "common/reactor.h"

#define VHOST_BLK_MAX_QUEUES	 16u
#define VHOST_BLK_MAX_QUEUE_SIZE 1024u

struct vhost_blk;

struct vhost_blk_opts {
	const char *socket_path; /* unlinked if present, created mode 0660 */
	unsigned int num_queues; /* queues offered (1..VHOST_BLK_MAX_QUEUES, default 1) */
	/* SO_PEERCRED check on accept: a peer is accepted when its uid is 0,
	 * equals the daemon's uid or @allow_uid, or its gid equals @allow_gid
	 * (-1: unset). The socket file (mode 0660) is chown'ed to the ones
	 * set, so that such a peer may connect to it at all. */
	uid_t allow_uid;
	gid_t allow_gid;
};

struct vhost_blk_stats {
	uint64_t reads, writes, flushes, discards, write_zeroes, get_ids;
	uint64_t bytes_read, bytes_written;
	uint64_t bad_requests;	 /* completed with IOERR/UNSUPP for bad input */
	uint64_t io_errors;	 /* completed with IOERR because the device failed */
	uint64_t protocol_errors; /* connections closed for protocol violations */
	uint64_t connections, resubmitted; /* inflight descriptors replayed */
	/* Time successful reads/writes took, from being taken off the ring to
	 * completion (the latency keel-client adds included). */
	uint64_t read_ns, write_ns;
};

/* Create the export and start listening. 0, or -errno from socket/bind
 * (-EADDRINUSE never: a stale socket file is replaced), -EINVAL (bad opts),
 * -ENOMEM. @dev stays owned by the caller and must outlive the export. */
int vhost_blk_create(struct reactor *r, struct blk_dev *dev, const struct vhost_blk_opts *opts,
		     struct vhost_blk **out);

/* Stop: close the listening socket (unlinking it) and the connection; @cb
 * fires once every request in flight on @dev has completed, after which
 * the export is freed. Returns nothing; @cb always fires (later). */
void vhost_blk_close(struct vhost_blk *vb, void (*cb)(void *arg), void *arg);

/* Tell a connected frontend that the capacity changed (config-change
 * notification, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG when negotiated). */
void vhost_blk_resize(struct vhost_blk *vb);

void vhost_blk_get_stats(const struct vhost_blk *vb, struct vhost_blk_stats *out);

/* @s as "connections N reads N ... bytes_written N" (one line of key/value
 * pairs, the field names above; logs and tools parse it). Returns what
 * snprintf() returns. */
int vhost_blk_format_stats(const struct vhost_blk_stats *s, char *buf, size_t len);

#endif
