/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Block devices under the blockstore: an ops table with three
 * implementations, chosen by name (bs_dev_open()):
 *
 *   "uring" - a file or block device, O_DIRECT, I/O through the reactor's
 *             io_uring (registered file). The production backend.
 *   "ram"   - memory; completions are deferred to the next reactor turn.
 *   "sim"   - memory with a fault-injecting model of a drive with a volatile
 *             write cache: writes complete in random order, are volatile
 *             until a flush completes, and bs_sim_crash() drops (or tears at
 *             4 KiB granularity) every write not yet flushed. It can also
 *             fail I/O with EIO/ENOSPC and flip bits in stored data. Seeded,
 *             so every run is replayable.
 *
 * All offsets and lengths are multiples of 4096 and buffers are 4096-aligned
 * (the uring backend relies on it for O_DIRECT; the others check it too).
 * read/write return -EINVAL, and never call back, when buf, len or off is
 * misaligned, len is 0 or above BS_DEV_MAX_IO, or off + len exceeds the
 * device; -ENOMEM from "sim" only. Close only with nothing in flight (the
 * "sim" backend alone tolerates it: pending requests are forgotten).
 *
 * Async rule: a submit function that returns 0 calls io->cb exactly once,
 * later, from the reactor loop (never inline); a negative errno means the
 * callback never fires. Reactor thread only.
 */
#ifndef KEEL_SERVER_BS_DEV_H
#define KEEL_SERVER_BS_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/reactor.h"

struct bs_dev;
struct bs_io;

typedef void (*bs_io_cb)(struct bs_io *io, int res);

/* One device request; embed it in the caller's request. res is the number of
 * bytes transferred (always the full length) or -errno. */
struct bs_io {
	struct reactor_op op;    /* backend private */
	struct reactor_defer defer; /* backend private */
	struct bs_io *next;      /* backend private */
	bs_io_cb cb;
	int res;                 /* backend private */
	struct bs_dev *dev;      /* backend private */
	void *buf;               /* backend private */
	uint64_t off;            /* backend private */
	uint32_t len;            /* backend private */
	/* This write is durable when it completes, as if a flush of it
	 * followed ("uring": RWF_DSYNC; "sim": written through). Set by the
	 * caller before each submit; every backend honours it. */
	bool dsync;
};

struct bs_dev_ops {
	const char *name;
	int (*read)(struct bs_dev *dev, void *buf, size_t len, uint64_t off, struct bs_io *io);
	int (*write)(struct bs_dev *dev, const void *buf, size_t len, uint64_t off,
		     struct bs_io *io);
	/* Make every write completed before this call durable. */
	int (*flush)(struct bs_dev *dev, struct bs_io *io);
	/* Optional: hand the requests submitted so far to the device now,
	 * instead of at the end of the reactor turn ("uring"). */
	void (*kick)(struct bs_dev *dev);
	void (*close)(struct bs_dev *dev);
};

struct bs_dev {
	const struct bs_dev_ops *ops;
	struct reactor *r;
	uint64_t size;          /* bytes, multiple of 4096 */
	bool volatile_cache;    /* writes need a flush to become durable */
	bool fixed_bufs;        /* I/O on registered buffers skips page pinning:
				 * worth reactor_buf_add() for long-lived ones */
	char path[256];
};

/*
 * Open @path with backend @backend ("uring", "ram", "sim"). For "uring",
 * @path is an existing file or block device; @size 0 means its whole size,
 * otherwise the file is created/extended to @size bytes. For "ram" and "sim",
 * @path is only a label and @size is required. Returns 0 and *out, or
 * -EINVAL (unknown backend, bad size), -ENOENT, -EACCES, -ENOMEM, or the
 * open(2)/ioctl(2) errno. volatile_cache is read from sysfs for "uring"
 * (queue/write_cache), true for "sim", false for "ram".
 */
int bs_dev_open(struct reactor *r, const char *backend, const char *path, uint64_t size,
		struct bs_dev **out);

/*
 * Put what was submitted so far on the device before anything submitted
 * after this call: a request that should overtake later ones (the journal
 * write ahead of the applies it lets go) is kicked. A no-op for backends
 * without a submission queue.
 */
static inline void bs_dev_kick(struct bs_dev *dev)
{
	if (dev->ops->kick) {
		dev->ops->kick(dev);
	}
}

/* ---- for backends only ---- */

#define BS_DEV_BLOCK 4096u
#define BS_DEV_MAX_IO (1u << 30) /* largest single read/write, bytes */

/* 0 if @buf, @len, @off are 4096-aligned, 0 < len <= BS_DEV_MAX_IO and
 * off + len <= dev->size (no overflow); else -EINVAL. */
int bs_dev_check_io(const struct bs_dev *dev, const void *buf, size_t len, uint64_t off);

/* Backend constructors, listed in bs_dev.c's table; callers use bs_dev_open(),
 * which has already checked path != NULL and size % 4096 == 0. */
int bs_dev_ram_open(struct reactor *r, const char *path, uint64_t size, struct bs_dev **out);
int bs_dev_sim_open(struct reactor *r, const char *path, uint64_t size, struct bs_dev **out);
int bs_dev_uring_open(struct reactor *r, const char *path, uint64_t size, struct bs_dev **out);

static inline int bs_dev_read(struct bs_dev *d, void *buf, size_t len, uint64_t off,
			      struct bs_io *io)
{
	return d->ops->read(d, buf, len, off, io);
}

static inline int bs_dev_write(struct bs_dev *d, const void *buf, size_t len, uint64_t off,
			       struct bs_io *io)
{
	return d->ops->write(d, buf, len, off, io);
}

static inline int bs_dev_flush(struct bs_dev *d, struct bs_io *io)
{
	return d->ops->flush(d, io);
}

static inline void bs_dev_close(struct bs_dev *d)
{
	if (d)
		d->ops->close(d);
}

/* ---- simulator controls (backend "sim" only) ---- */

enum bs_sim_fault {
	BS_SIM_FAULT_NONE = 0,
	BS_SIM_FAULT_EIO,    /* fail the matching I/O with -EIO */
	BS_SIM_FAULT_ENOSPC, /* fail the matching write with -ENOSPC */
};

/* Seed the simulator's random choices (completion order, crash outcome). */
void bs_sim_seed(struct bs_dev *dev, uint64_t seed);

/* Power-loss protection (@plp true): writes submitted from now on are
 * durable when they complete, as on a drive whose cache survives power
 * loss, and the device reports no volatile cache (a blockstore opened on it
 * with flush_mode auto then flushes nothing). A crash still drops or tears
 * the writes in flight. */
void bs_sim_set_plp(struct bs_dev *dev, bool plp);

/* Fail every @every_n-th read (is_write false) or write with @fault, counting
 * from this call; the failed request changes nothing. every_n 0 or
 * BS_SIM_FAULT_NONE disables. ENOSPC applies to writes only (reads ignore it). */
void bs_sim_inject(struct bs_dev *dev, bool is_write, enum bs_sim_fault fault,
		   unsigned int every_n);

/*
 * Power loss: every write not covered by a completed flush is kept, dropped,
 * or torn (a random subset of its 4 KiB blocks kept), at random. In-flight
 * requests are forgotten: their callbacks never fire. Afterwards the device
 * holds only the durable image and can be handed to a new blockstore.
 * Returns the number of unflushed writes that were affected: dropped, or torn
 * with at least one block lost (0: nothing acknowledged was lost). Exact
 * ordering rules are in bs_dev_sim.c.
 */
unsigned int bs_sim_crash(struct bs_dev *dev);

/* Flip bit @bit (0-7) of the stored (durable and volatile) image at byte
 * @off; out-of-range arguments are logged and ignored. */
void bs_sim_flip_bit(struct bs_dev *dev, uint64_t off, unsigned int bit);

/* Number of writes / flushes submitted so far (for choosing crash points). */
uint64_t bs_sim_write_count(const struct bs_dev *dev);

#endif
