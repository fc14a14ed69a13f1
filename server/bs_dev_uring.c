/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "uring" backend: a file or block device opened O_DIRECT, driven through the
 * owning reactor's io_uring. The fd is registered as fixed file 0 of the ring
 * when the ring has no file table yet; otherwise I/O uses the plain fd.
 *
 * Buffers inside a region registered with the reactor (reactor_buf_add():
 * the blockstore's journal mirror, keel-server's request buffers) go as
 * READ_FIXED / WRITE_FIXED, so the kernel does not pin their pages per
 * request.
 *
 * A read or write that the kernel completes short (0 < res < remaining) is
 * resubmitted for the remainder from the completion; the caller only ever
 * sees the full length or an error. io->res counts the bytes done so far.
 *
 * Files are grown with fallocate(), which leaves unwritten extents: the first
 * write into each one converts it, and that metadata change is only durable
 * after the journal commit an fdatasync forces. Flushes here always issue
 * IORING_FSYNC_DATASYNC (even without a volatile cache) so such writes do
 * become durable, and bs format writes the blockstore's metadata regions
 * once so that the hot metadata path never pays for extent conversion.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "server/bs_dev.h"

#define URING_LOCK_WAIT_MS 5000u /* how long open waits for the drive lock */

struct uring_dev {
	struct bs_dev dev;
	int fd;
	int sqe_fd;	   /* fixed-file index or fd */
	uint8_t sqe_flags; /* IOSQE_FIXED_FILE when registered */
};

static struct uring_dev *to_uring(struct bs_dev *dev)
{
	return container_of(dev, struct uring_dev, dev);
}

static void uring_read_done(struct reactor_op *op, int res);
static void uring_write_done(struct reactor_op *op, int res);

static void uring_queue_rw(struct bs_io *io, bool is_write)
{
	struct uring_dev *ud = to_uring(io->dev);
	uint32_t done = (uint32_t)io->res;
	uint8_t *buf = (uint8_t *)io->buf + done;
	int idx = reactor_buf_find(ud->dev.r, buf, io->len - done);
	struct io_uring_sqe *sqe;

	sqe = reactor_sqe(ud->dev.r);
	if (idx >= 0 && is_write) {
		io_uring_prep_write_fixed(sqe, ud->sqe_fd, buf, io->len - done, io->off + done,
					  idx);
	} else if (idx >= 0) {
		io_uring_prep_read_fixed(sqe, ud->sqe_fd, buf, io->len - done, io->off + done, idx);
	} else if (is_write) {
		io_uring_prep_write(sqe, ud->sqe_fd, buf, io->len - done, io->off + done);
	} else {
		io_uring_prep_read(sqe, ud->sqe_fd, buf, io->len - done, io->off + done);
	}
	sqe->flags |= ud->sqe_flags;
	if (is_write && io->dsync) {
		sqe->rw_flags = RWF_DSYNC;
	}
	reactor_sqe_set_op(sqe, &io->op, is_write ? uring_write_done : uring_read_done);
}

static void uring_rw_done(struct bs_io *io, int res, bool is_write)
{
	if (res < 0) {
		io->cb(io, res);
		return;
	}
	if (res == 0 || (uint32_t)res > io->len - (uint32_t)io->res) {
		/* No progress (e.g. the file shrank under us) or nonsense. */
		log_error("uring %s: %s at %llu made no progress (%d)", io->dev->path,
			  is_write ? "write" : "read", (unsigned long long)io->off, res);
		io->cb(io, -EIO);
		return;
	}
	io->res += res;
	if ((uint32_t)io->res < io->len) {
		log_debug("uring %s: short %s, %d of %u bytes, resubmitting", io->dev->path,
			  is_write ? "write" : "read", io->res, io->len);
		uring_queue_rw(io, is_write);
		return;
	}
	io->cb(io, io->res);
}

static void uring_read_done(struct reactor_op *op, int res)
{
	uring_rw_done(container_of(op, struct bs_io, op), res, false);
}

static void uring_write_done(struct reactor_op *op, int res)
{
	uring_rw_done(container_of(op, struct bs_io, op), res, true);
}

static int uring_submit_rw(struct bs_dev *dev, void *buf, size_t len, uint64_t off,
			   struct bs_io *io, bool is_write)
{
	int ret;

	ret = bs_dev_check_io(dev, buf, len, off);
	if (ret) {
		return ret;
	}
	io->dev = dev;
	io->buf = buf;
	io->len = (uint32_t)len;
	io->off = off;
	io->res = 0;
	uring_queue_rw(io, is_write);
	return 0;
}

static int uring_read(struct bs_dev *dev, void *buf, size_t len, uint64_t off, struct bs_io *io)
{
	return uring_submit_rw(dev, buf, len, off, io, false);
}

static int uring_write(struct bs_dev *dev, const void *buf, size_t len, uint64_t off,
		       struct bs_io *io)
{
	/* The kernel only reads from buf; the cast is for the shared path. */
	return uring_submit_rw(dev, (void *)buf, len, off, io, true);
}

static void uring_flush_done(struct reactor_op *op, int res)
{
	struct bs_io *io = container_of(op, struct bs_io, op);

	io->cb(io, res < 0 ? res : 0);
}

static int uring_flush(struct bs_dev *dev, struct bs_io *io)
{
	struct uring_dev *ud = to_uring(dev);
	struct io_uring_sqe *sqe;

	io->dev = dev;
	sqe = reactor_sqe(dev->r);
	io_uring_prep_fsync(sqe, ud->sqe_fd, IORING_FSYNC_DATASYNC);
	sqe->flags |= ud->sqe_flags;
	reactor_sqe_set_op(sqe, &io->op, uring_flush_done);
	return 0;
}

/*
 * The caller must have drained its I/O. The ring's file table holds the file
 * too: unregister it, so that the close releases the drive (lock and O_EXCL
 * claim) now, and a stop followed at once by a mkfs or a new server works.
 */
static void uring_close(struct bs_dev *dev)
{
	struct uring_dev *ud = to_uring(dev);

	if (ud->sqe_flags & IOSQE_FIXED_FILE) {
		reactor_unregister_files(dev->r);
	}
	/* Redundant when the unregister worked; if it failed, the ring still
	 * holds the file, and this at least drops the lock. */
	flock(ud->fd, LOCK_UN);
	close(ud->fd);
	free(ud);
}

/* One io_uring_enter for the SQEs queued so far (a failure is the next
 * turn's to see: those SQEs stay queued). */
static void uring_kick(struct bs_dev *dev)
{
	(void)reactor_submit(dev->r);
}

static const struct bs_dev_ops uring_ops = {
	.name = "uring",
	.read = uring_read,
	.write = uring_write,
	.flush = uring_flush,
	.kick = uring_kick,
	.close = uring_close,
};

/*
 * Does the device under @st have a volatile write cache? Files use the
 * device they live on (st_dev), block devices themselves (st_rdev). A
 * partition has no queue/ of its own: its sysfs node sits inside the whole
 * disk's, hence "../queue". Anything unreadable counts as volatile.
 */
static bool uring_volatile_cache(const struct stat *st)
{
	dev_t d = S_ISBLK(st->st_mode) ? st->st_rdev : st->st_dev;
	static const char *const fmt[] = {
		"/sys/dev/block/%u:%u/queue/write_cache",
		"/sys/dev/block/%u:%u/../queue/write_cache",
	};
	char path[128], val[32];
	size_t i;

	for (i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		FILE *f;
		bool ok;

		snprintf(path, sizeof(path), fmt[i], major(d), minor(d));
		f = fopen(path, "re");
		if (!f) {
			continue;
		}
		ok = fgets(val, sizeof(val), f) != NULL;
		fclose(f);
		if (!ok) {
			continue;
		}
		if (!strncmp(val, "write through", 13)) {
			return false;
		}
		return true; /* "write back" or anything unexpected */
	}
	return true;
}

/* Work out the device size and grow a regular file to @size if asked. */
static int uring_size(int fd, const struct stat *st, uint64_t size, uint64_t *out)
{
	uint64_t have;

	if (S_ISBLK(st->st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &have) < 0) {
			return -errno;
		}
		have &= ~(uint64_t)(BS_DEV_BLOCK - 1);
		if (size > have) {
			return -EINVAL;
		}
	} else if (S_ISREG(st->st_mode)) {
		have = (uint64_t)st->st_size & ~(uint64_t)(BS_DEV_BLOCK - 1);
		if (size > (uint64_t)st->st_size) {
			int ret = posix_fallocate(fd, 0, (off_t)size);

			if (ret == EOPNOTSUPP || ret == EINVAL) {
				ret = ftruncate(fd, (off_t)size) < 0 ? errno : 0;
			}
			if (ret) {
				/* give back what a partial grow took (ENOSPC) */
				if (ftruncate(fd, st->st_size) < 0) {
					log_warn("uring: cannot shrink back to %lld bytes: %s",
						 (long long)st->st_size, strerror(errno));
				}
				return -ret;
			}
			have = size;
		}
	} else {
		return -EINVAL;
	}
	*out = size ? size : have;
	return *out ? 0 : -EINVAL;
}

/*
 * Open @path for one opener only: a second keel-server, or a format under a
 * running one, would overwrite its journal and metadata. An exclusive flock
 * covers files and block devices (advisory: other tools can still write);
 * block devices are also opened O_EXCL, which the kernel enforces against
 * mounts and other exclusive openers (mkfs, partitioning tools). Both belong
 * to the open file, which the io_uring of a killed server keeps until the
 * kernel has finished that ring's I/O, so a restart right after a kill waits
 * for them for a while: this also keeps a dying predecessor's last writes
 * from landing under the new server. Size 0 means "use what is there": only
 * a size creates a missing file.
 */
static int uring_open_excl(const char *path, uint64_t size, int *fdp, struct stat *st)
{
	int flags = O_RDWR | O_DIRECT | O_CLOEXEC | (size ? O_CREAT : 0);
	unsigned int waited_ms = 0;
	struct stat pst;
	int fd, err;

	if (!stat(path, &pst) && S_ISBLK(pst.st_mode)) {
		flags = O_RDWR | O_DIRECT | O_CLOEXEC | O_EXCL;
	}
	for (;;) {
		fd = open(path, flags, 0600);
		if (fd < 0) {
			err = -errno;
		} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			close(fd);
		} else if (fstat(fd, st) < 0) {
			err = -errno;
			close(fd);
		} else {
			*fdp = fd;
			return 0;
		}
		if (err != -EBUSY) {
			return err;
		}
		if (waited_ms >= URING_LOCK_WAIT_MS) {
			log_error("uring %s: in use: another process (a keel-server? a mount?) "
				  "has it open",
				  path);
			return -EBUSY;
		}
		if (!waited_ms) {
			log_warn("uring %s: in use by another process, waiting up to %u s", path,
				 URING_LOCK_WAIT_MS / 1000);
		}
		usleep(50 * 1000);
		waited_ms += 50;
	}
}

int bs_dev_uring_open(struct reactor *r, const char *path, uint64_t size, struct bs_dev **out)
{
	struct uring_dev *ud;
	struct stat st;
	int ret;

	ud = calloc(1, sizeof(*ud));
	if (!ud) {
		return -ENOMEM;
	}
	ret = uring_open_excl(path, size, &ud->fd, &st);
	if (ret) {
		goto out_free;
	}
	ret = uring_size(ud->fd, &st, size, &ud->dev.size);
	if (ret) {
		goto out_close_fd;
	}
	ud->dev.ops = &uring_ops;
	ud->dev.r = r;
	ud->dev.volatile_cache = uring_volatile_cache(&st);
	ud->dev.fixed_bufs = true;
	snprintf(ud->dev.path, sizeof(ud->dev.path), "%s", path);

	ud->sqe_fd = ud->fd;
	if (!reactor_register_files(r, &ud->fd, 1)) {
		ud->sqe_fd = 0;
		ud->sqe_flags = IOSQE_FIXED_FILE;
	}
	log_debug("uring %s: %llu bytes, volatile cache %d, fixed file %d", ud->dev.path,
		  (unsigned long long)ud->dev.size, ud->dev.volatile_cache, ud->sqe_flags != 0);
	*out = &ud->dev;
	return 0;

out_close_fd:
	close(ud->fd);
out_free:
	free(ud);
	return ret;
}
