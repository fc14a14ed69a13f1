/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blk_file: a local file as a blk_dev, through the reactor's io_uring.
 * Buffered I/O on purpose: exported buffers (guest memory, NBD receive
 * buffers) have no alignment, and this backend exists for tests and tools,
 * not for speed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/blk_dev.h"
#include "common/log.h"
#include "common/reactor.h"

#define BLK_FILE_DEPTH 256u

struct blk_file;

struct blk_file_req {
	struct reactor_op op;
	struct blk_file *f;
	blk_io_cb cb;
	void *arg;
	int next_free;
};

struct blk_file {
	struct blk_dev dev;
	struct reactor *r;
	int fd;
	int free_head;
	unsigned int inflight;
	struct blk_file_req reqs[BLK_FILE_DEPTH];
};

static struct blk_file_req *req_get(struct blk_file *f, blk_io_cb cb, void *arg)
{
	struct blk_file_req *q;

	if (f->free_head < 0) {
		return NULL;
	}
	q = &f->reqs[f->free_head];
	f->free_head = q->next_free;
	q->cb = cb;
	q->arg = arg;
	f->inflight++;
	return q;
}

static void req_done(struct reactor_op *op, int res)
{
	struct blk_file_req *q = container_of(op, struct blk_file_req, op);
	struct blk_file *f = q->f;
	blk_io_cb cb = q->cb;
	void *arg = q->arg;

	q->next_free = f->free_head;
	f->free_head = (int)(q - f->reqs);
	f->inflight--;
	cb(arg, res < 0 ? res : 0);
}

static int file_rw(struct blk_dev *d, bool write, const struct iovec *iov, int iovcnt,
		   uint64_t offset, blk_io_cb cb, void *arg)
{
	struct blk_file *f = container_of(d, struct blk_file, dev);
	struct io_uring_sqe *sqe;
	struct blk_file_req *q;
	uint64_t len = 0;
	int rc;

	if (iovcnt <= 0 || iovcnt > BLK_DEV_IOV_MAX) {
		return -EINVAL;
	}
	for (int i = 0; i < iovcnt; i++) {
		len += iov[i].iov_len;
	}
	rc = blk_dev_check_range(d, offset, len);
	if (rc) {
		return rc;
	}
	if (write && d->read_only) {
		return -EROFS;
	}
	q = req_get(f, cb, arg);
	if (!q) {
		return -EAGAIN;
	}
	/* A short transfer on a regular file inside its size does not happen
	 * (the file is extended to d->size at open); treat one as EIO. */
	sqe = reactor_sqe(f->r);
	if (write) {
		io_uring_prep_writev(sqe, f->fd, iov, (unsigned int)iovcnt, offset);
	} else {
		io_uring_prep_readv(sqe, f->fd, iov, (unsigned int)iovcnt, offset);
	}
	reactor_sqe_set_op(sqe, &q->op, req_done);
	return 0;
}

static int file_readv(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		      blk_io_cb cb, void *arg)
{
	return file_rw(d, false, iov, iovcnt, offset, cb, arg);
}

static int file_writev(struct blk_dev *d, const struct iovec *iov, int iovcnt, uint64_t offset,
		       blk_io_cb cb, void *arg)
{
	return file_rw(d, true, iov, iovcnt, offset, cb, arg);
}

static int file_flush(struct blk_dev *d, blk_io_cb cb, void *arg)
{
	struct blk_file *f = container_of(d, struct blk_file, dev);
	struct io_uring_sqe *sqe;
	struct blk_file_req *q = req_get(f, cb, arg);

	if (!q) {
		return -EAGAIN;
	}
	sqe = reactor_sqe(f->r);
	io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
	reactor_sqe_set_op(sqe, &q->op, req_done);
	return 0;
}

static int file_punch(struct blk_dev *d, uint64_t offset, uint64_t length, blk_io_cb cb,
		      void *arg)
{
	struct blk_file *f = container_of(d, struct blk_file, dev);
	struct io_uring_sqe *sqe;
	struct blk_file_req *q;
	int rc = blk_dev_check_range(d, offset, length);

	if (rc) {
		return rc;
	}
	if (d->read_only) {
		return -EROFS;
	}
	q = req_get(f, cb, arg);
	if (!q) {
		return -EAGAIN;
	}
	sqe = reactor_sqe(f->r);
	io_uring_prep_fallocate(sqe, f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)offset, (off_t)length);
	reactor_sqe_set_op(sqe, &q->op, req_done);
	return 0;
}

static void file_destroy(struct blk_dev *d)
{
	struct blk_file *f = container_of(d, struct blk_file, dev);

	kassert(f->inflight == 0);
	close(f->fd);
	free(f);
}

static const struct blk_dev_ops blk_file_ops = {
	.readv = file_readv,
	.writev = file_writev,
	.flush = file_flush,
	.discard = file_punch,
	.write_zeroes = file_punch,
	.destroy = file_destroy,
};

int blk_file_open(struct reactor *r, const char *path, uint64_t size, bool read_only,
		  struct blk_dev **out)
{
	struct blk_file *f;
	struct stat st;
	const char *base;
	int rc;

	f = calloc(1, sizeof(*f));
	if (!f) {
		return -ENOMEM;
	}
	f->fd = open(path, (read_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		rc = -errno;
		goto out_free;
	}
	if (fstat(f->fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	if (!size) {
		size = (uint64_t)st.st_size & ~(uint64_t)(BLK_DEV_BLOCK - 1);
		if (!size) {
			rc = -EINVAL;
			goto out_close;
		}
	}
	size &= ~(uint64_t)(BLK_DEV_BLOCK - 1);
	if ((uint64_t)st.st_size < size) {
		if (read_only) {
			rc = -EINVAL;
			goto out_close;
		}
		if (ftruncate(f->fd, (off_t)size) < 0) {
			rc = -errno;
			goto out_close;
		}
	}
	f->r = r;
	f->dev.ops = &blk_file_ops;
	f->dev.size = size;
	f->dev.block_size = BLK_DEV_BLOCK;
	f->dev.queue_depth = BLK_FILE_DEPTH;
	f->dev.read_only = read_only;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	snprintf(f->dev.name, sizeof(f->dev.name), "%s", base);
	snprintf(f->dev.serial, sizeof(f->dev.serial), "%s", base);
	for (unsigned int i = 0; i < BLK_FILE_DEPTH; i++) {
		f->reqs[i].f = f;
		f->reqs[i].next_free = i + 1 < BLK_FILE_DEPTH ? (int)i + 1 : -1;
	}
	f->free_head = 0;
	*out = &f->dev;
	return 0;

out_close:
	close(f->fd);
out_free:
	free(f);
	return rc;
}
