/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libkeel: volume I/O against a Keel cluster.
 *
 * A keel_cluster is a session with mgmt (cluster port: map subscription and
 * volume lookup) plus a pool of authenticated data connections to servers.
 * It runs on the caller's reactor and never owns the event loop: every
 * callback fires on that reactor's thread, and the async functions must be
 * called from it. The sync wrappers (keel_sync_*) drive a private reactor
 * and may be called from any one thread that does not run another reactor.
 *
 * I/O: offsets and lengths are multiples of 4096; a request may span
 * objects (it is split and completes when every part has). Writes carry a
 * crc32c per 4 KiB block computed here; reads are checked against the
 * crcs the server returns (end-to-end). Requests are retried across
 * failover (stale epoch, lost connection, timeout) until they succeed or
 * the cluster reports a permanent error: the caller sees an error only for
 * EINVAL/ERANGE (bad request), EIO (every copy is bad), ENOSPC, EPERM
 * (fenced), EROFS (a write to a snapshot view), ENOENT (the volume was
 * deleted), or ECANCELED (keel_volume_close / keel_cluster_close).
 *
 * Layers (docs/volumes.md): reads resolve through the volume's parents on
 * the server; discard and write-zeroes on a volume with parents write zero
 * blocks (unmapping would expose the parent's data). When a snapshot,
 * clone or revert changes the volume's top layer, servers refuse the old
 * one (EROFS); libkeel then asks mgmt for the volume again and retries on
 * the new top, invisibly to the caller.
 *
 * A volume name "VOLUME@SNAPSHOT" opens a read-only view of a snapshot.
 *
 * Async rule: 0 means the callback fires exactly once later; -errno means
 * it never fires.
 */
#ifndef KEEL_CLIENT_LIBKEEL_H
#define KEEL_CLIENT_LIBKEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/reactor.h"

struct keel_cluster;
struct keel_volume;

struct keel_cluster_opts {
	/* mgmt REST URL (default $KEEL_MGMT_URL, else http://127.0.0.1:8776):
	 * keel_cluster_open() asks it (blocking, libcurl, setup time only) for
	 * the cluster port via GET /v1/cluster/info. */
	const char *mgmt_url;
	const char *mgmt_addr; /* cluster port host:port: skips the REST lookup */
	/* API token for that lookup (X-Auth-Token); NULL: rest_token_resolve()'s
	 * defaults ($KEEL_TOKEN, $KEEL_TOKEN_FILE, /etc/keel/api.token). */
	const char *api_token;
	const char *key_file;  /* shared key, mode 0600 (default $KEEL_KEY_FILE,
				* else /etc/keel/keel.key) */
	const char *name;      /* client name in logs (default "libkeel") */
	uint32_t io_timeout_ms; /* per attempt before reconnect+retry (default 5000) */
	/* Transport to the servers, "tcp" or "rdma" (default $KEEL_TRANSPORT,
	 * else "tcp"); must match the servers' server.transport. mgmt is
	 * always reached over TCP. keel_cluster_open() fails with
	 * -ENOPROTOOPT for an unknown or unbuilt transport. */
	const char *transport;
};

#define KEEL_MAX_PARENTS 64

struct keel_volume_info {
	uint64_t id;
	uint64_t inode; /* the writable top layer (or the snapshot's layer) */
	uint64_t size;
	uint32_t object_size;
	uint32_t pool;
	char name[64];	      /* "VOLUME" or, for a snapshot view, "VOLUME@SNAPSHOT" */
	char uuid[40];
	bool read_only;	      /* a snapshot view: writes fail with -EROFS */
	uint32_t nparents;    /* layers below inode (docs/volumes.md) */
	uint64_t parents[KEEL_MAX_PARENTS];
};

/* Connect to mgmt and subscribe to the map; @cb fires once the first map is
 * in (res 0) or connecting failed (-ECONNREFUSED, -EPERM: wrong key, ...).
 * *out is valid immediately but usable only after the callback. */
int keel_cluster_open(struct reactor *r, const struct keel_cluster_opts *opts,
		      void (*cb)(struct keel_cluster *c, int res, void *arg), void *arg,
		      struct keel_cluster **out);

/* Close: outstanding requests complete with -ECANCELED first. */
void keel_cluster_close(struct keel_cluster *c);

/* Current map epoch (0 before the first map). */
uint64_t keel_cluster_epoch(const struct keel_cluster *c);

/* Open a volume by name: @cb with 0, or -ENOENT (no such volume). */
int keel_volume_open(struct keel_cluster *c, const char *name,
		     void (*cb)(struct keel_volume *v, int res, void *arg), void *arg,
		     struct keel_volume **out);
void keel_volume_close(struct keel_volume *v);
const struct keel_volume_info *keel_volume_info(const struct keel_volume *v);
/* The volume was resized (mgmt says so): requests are checked against
 * @size from now on. 0 or -EINVAL (0, not a multiple of 4096). */
int keel_volume_set_size(struct keel_volume *v, uint64_t size);

/* The attachment generation (mgmt's attachments, docs/volumes.md
 * "Attachments and fencing") this handle's requests carry from now on.
 * Servers refuse writes of a generation mgmt has fenced (a detached host)
 * with EPERM. 0 (the default): not an attachment (tools). */
void keel_volume_set_generation(struct keel_volume *v, uint64_t gen);

typedef void (*keel_io_cb)(void *arg, int res);

/* Vectored I/O. @iov buffers need no alignment; they must stay valid until
 * the callback. res is 0 or -errno. */
int keel_readv(struct keel_volume *v, const struct iovec *iov, int iovcnt, uint64_t offset,
	       keel_io_cb cb, void *arg);
int keel_writev(struct keel_volume *v, const struct iovec *iov, int iovcnt, uint64_t offset,
		keel_io_cb cb, void *arg);
int keel_flush(struct keel_volume *v, keel_io_cb cb, void *arg);
int keel_discard(struct keel_volume *v, uint64_t offset, uint64_t length, keel_io_cb cb,
		 void *arg);
int keel_write_zeroes(struct keel_volume *v, uint64_t offset, uint64_t length, keel_io_cb cb,
		      void *arg);

/*
 * Memory the caller will do I/O from (its buffer pool, a guest's RAM):
 * with transport rdma, write payloads of 8 KiB or more in it are read by the
 * servers in place instead of being copied into the connection's buffers.
 * Optional; any thread. keel_mem_register(): 0, -EINVAL (empty or overlaps
 * a registered range), -ENOSPC (256 ranges per process). Unregister only
 * when no I/O from the range is in flight; the memory may be freed right
 * after.
 */
int keel_mem_register(void *addr, size_t len);
void keel_mem_unregister(void *addr);

/* Counters for tools and tests. */
struct keel_volume_stats {
	uint64_t reads, writes, retries, reconnects, stale_epochs;
	uint64_t reopens; /* the top layer changed under us (snapshot, clone) */
	uint64_t max_stall_ns; /* longest time one request waited on failover */
	uint64_t full_waits;   /* writes retried because their pool was full */
};
void keel_volume_stats(const struct keel_volume *v, struct keel_volume_stats *out);

/* ---- synchronous wrappers (own reactor; one thread) ---- */

struct keel_sync;
int keel_sync_open(const struct keel_cluster_opts *opts, const char *volume,
		   struct keel_sync **out);
void keel_sync_close(struct keel_sync *s);
const struct keel_volume_info *keel_sync_info(const struct keel_sync *s);
int keel_sync_pread(struct keel_sync *s, void *buf, size_t len, uint64_t offset);
int keel_sync_pwrite(struct keel_sync *s, const void *buf, size_t len, uint64_t offset);
int keel_sync_flush(struct keel_sync *s);
int keel_sync_discard(struct keel_sync *s, uint64_t offset, uint64_t length);
int keel_sync_write_zeroes(struct keel_sync *s, uint64_t offset, uint64_t length);

#endif
