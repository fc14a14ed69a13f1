/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk_dev: the block device that keel-client's exports (vhost-user-blk,
 * NBD) serve. An export never knows what is behind it: a Keel volume through
 * libkeel (blk_keel.c) in the product, a local file (blk_file.c) in tests
 * and tools. Every implementation fills one const struct blk_dev_ops.
 *
 * Geometry: every offset and length is a multiple of block_size (4096) and
 * inside [0, size); the export checks this before calling (a request that
 * breaks it is the export's bug, answered -EINVAL / -ERANGE here, never
 * data damage).
 *
 * Threading: a blk_dev lives on one reactor; every call and callback runs on
 * that reactor's thread.
 *
 * Async rule (every op): 0 means @cb fires exactly once, later, never from
 * inside the call; -errno means it never fires. -EAGAIN means the device is
 * at its queue depth: the caller holds the request and retries after any
 * callback of this device has fired (a completion frees a slot). res in the
 * callback is 0 or -errno: -EIO (no good copy), -ENOSPC, -EPERM (fenced:
 * this host's attachment was revoked), -EROFS (write to a read-only
 * device), -ECANCELED (device closing). Exports turn these into their own
 * status codes in one function each.
 */
#ifndef KEEL_CLIENT_BLK_DEV_H
#define KEEL_CLIENT_BLK_DEV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLK_DEV_BLOCK	 4096u
#define BLK_DEV_IOV_MAX	 64 /* iovec entries per readv/writev */
#define BLK_DEV_ID_LEN	 20 /* virtio-blk serial length (GET_ID), not NUL-terminated there */

struct blk_dev;

typedef void (*blk_io_cb)(void *arg, int res);

struct blk_dev_ops {
	/* @iov: up to BLK_DEV_IOV_MAX entries, any alignment, total a multiple
	 * of block_size; buffers stay valid until @cb. */
	int (*readv)(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		     blk_io_cb cb, void *arg);
	int (*writev)(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		      blk_io_cb cb, void *arg);
	/* Every write completed before the call is durable when @cb fires. */
	int (*flush)(struct blk_dev *d, blk_io_cb cb, void *arg);
	/* Discard may leave the range reading as zeroes or as old data;
	 * write_zeroes always reads back as zeroes (and may free space). */
	int (*discard)(struct blk_dev *d, uint64_t offset, uint64_t length, blk_io_cb cb,
		       void *arg);
	int (*write_zeroes)(struct blk_dev *d, uint64_t offset, uint64_t length, blk_io_cb cb,
			    void *arg);
	/* Release the device. Only when no request is in flight (the export
	 * waits for its callbacks first). */
	void (*destroy)(struct blk_dev *d);
};

/* Filled by the implementation's constructor; read-only for exports. */
struct blk_dev {
	const struct blk_dev_ops *ops;
	uint64_t size;		  /* bytes, a multiple of block_size */
	uint32_t block_size;	  /* BLK_DEV_BLOCK */
	uint32_t queue_depth;	  /* requests in flight before -EAGAIN (advisory) */
	bool read_only;		  /* writes, discards, write-zeroes answer -EROFS */
	char name[64];		  /* volume name: NBD export name */
	char serial[BLK_DEV_ID_LEN + 1]; /* NUL-terminated; virtio GET_ID */
};

/* Validate a request against @d's geometry: 0, -EINVAL (unaligned, zero
 * length) or -ERANGE (past the end, or offset + length overflows). */
int blk_dev_check_range(const struct blk_dev *d, uint64_t offset, uint64_t length);

/*
 * A local file as a blk_dev (tests, tools, reference runs), through the
 * reactor's io_uring (buffered I/O: guest buffers need no alignment).
 * Discard and write-zeroes punch holes. @size 0 takes the file's size
 * (rounded down to 4096); a larger @size extends the file. Returns 0, or
 * -errno from open/ftruncate, -EINVAL (size 0 and an empty file), -ENOMEM.
 */
struct reactor;
int blk_file_open(struct reactor *r, const char *path, uint64_t size, bool read_only,
		  struct blk_dev **out);

#endif
