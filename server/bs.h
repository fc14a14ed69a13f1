/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs: the Keel blockstore. Stores objects of a fixed size (set at format
 * time) on one bs_dev. On-disk format and recovery: docs/on-disk-format.md.
 *
 * Guarantees:
 *  - Objects are thin: space is allocated on the first write, freed when the
 *    whole object is discarded (or every block of it is discarded/zeroed).
 *  - Every 4 KiB block is stored with its crc32c and version; every read
 *    verifies the crc and fails with -EIO on a mismatch (never returns data
 *    that failed its check).
 *  - A write is acknowledged (callback with 0) only when it is durable:
 *    it survives power loss at any later instant (flush_mode "always" writes
 *    each journal batch through, RWF_DSYNC; "none" trusts a device without a
 *    volatile cache). A 4 KiB block is never half-written after recovery.
 *  - Operations on overlapping extents of one object complete in submission
 *    order; a read never observes a write that has not been acknowledged
 *    ... unless it was submitted after that write.
 *
 * Threading: one reactor thread owns a bs; every call comes from it.
 */
#ifndef KEEL_SERVER_BS_H
#define KEEL_SERVER_BS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/reactor.h"
#include "server/bs_dev.h"

#define BS_BLOCK 4096u
#define BS_MIN_OBJECT_SIZE (64u * 1024)
#define BS_MAX_OBJECT_SIZE (64u * 1024 * 1024)
#define BS_DEFAULT_OBJECT_SIZE (4u * 1024 * 1024)
#define BS_DEFAULT_JOURNAL_SIZE (64ull * 1024 * 1024)
#define BS_MAX_IO (1024u * 1024) /* largest read/write extent per request */
/* Words of a bs_req.present bitmap for an extent of @len bytes. */
#define BS_PRESENT_WORDS(len) (((len) / BS_BLOCK + 63) / 64)

struct bs;

struct bs_format_opts {
	uint32_t object_size;  /* power of two, BS_MIN..BS_MAX_OBJECT_SIZE */
	uint64_t journal_size; /* bytes, multiple of 4096, >= 2 MiB (one record of
				* BS_MAX_IO plus its header must fit in either half) */
};

enum bs_flush_mode {
	BS_FLUSH_AUTO = 0, /* "always" if the device reports a volatile cache */
	BS_FLUSH_ALWAYS,
	BS_FLUSH_NONE,
};

struct bs_opts {
	enum bs_flush_mode flush_mode;
	uint32_t meta_cache_mb; /* block-metadata cache size; 0 = default (64) */
	/*
	 * In-place applies of acknowledged writes are held back and sent to
	 * the device together, up to apply_batch at once (0 or 1: each as
	 * soon as its write is acknowledged; at most BS_APPLY_BATCH_MAX).
	 * A batch also goes when something needs its blocks (a read, a
	 * discard, a later write of them), at a checkpoint, at close, and
	 * once apply_delay_us have passed since its first apply was held:
	 * with the next apply, or at the next bs_tick() (0: no time limit).
	 * When every journal write is flushed (bs_stat.flush_always),
	 * apply_batch is not used: applies are held until the next journal
	 * write is on its way and go right after it.
	 */
	uint32_t apply_batch;
	uint32_t apply_delay_us;
};
#define BS_APPLY_BATCH_MAX 256u

enum bs_op {
	BS_OP_READ = 1,
	BS_OP_WRITE,
	BS_OP_DISCARD,
	BS_OP_WRITE_ZEROES,
	BS_OP_SYNC,
};

struct bs_req;
typedef void (*bs_req_cb)(struct bs_req *req, int res);

/*
 * A request, owned by the caller until its callback runs. Fill the public
 * part; the private part is the blockstore's.
 *
 * READ:  fills buf[0..length) and crcs[length/4096] with the stored data and
 *        its checksums (blocks never written read as zeroes with the zero
 *        crc), version = object version. -EIO if any block fails its crc.
 *        present (optional, NULL: not wanted): a bitmap of
 *        BS_PRESENT_WORDS(length) words the caller owns; on success bit i
 *        (word i / 64, bit i % 64) is set iff block i of the extent is
 *        mapped in the object (written, zeroes included), every other bit
 *        of those words is clear. Undefined after an error.
 * WRITE: stores buf[0..length) whose per-block crcs the caller supplies
 *        (end-to-end checksums; the blockstore verifies them before storing
 *        and fails with -EBADMSG on mismatch, returned by bs_submit() with
 *        the callback not called). version: 0 to assign the
 *        next object version, else the caller's (must exceed the current
 *        one, else -ESTALE). Returns the version in version.
 *        -ENOSPC when a new object is needed and none is free.
 *        The version rule applies to DISCARD / WRITE_ZEROES too (an object
 *        that does not exist is left alone: 0, version 0).
 * DISCARD / WRITE_ZEROES: afterwards the extent reads as zeroes; blocks are
 *        unmapped, and an object with no mapped block left frees its space.
 * SYNC:  completes when every write acknowledged before it is durable
 *        (already true for acknowledged writes; kept for the protocol).
 * Extents: offset and length are multiples of 4096, length > 0 (except
 * SYNC), offset + length <= object size, length <= BS_MAX_IO; else -EINVAL
 * (misaligned, zero length, bad buffer, unknown op) or -ERANGE (beyond the
 * object or BS_MAX_IO) from bs_submit() (callback not called). bs_submit()
 * returns -EIO once the store has failed (a journal, apply or checkpoint
 * write failed); requests in flight then complete with -EIO.
 */
struct bs_req {
	enum bs_op op;
	uint64_t inode;
	uint64_t objno;
	uint32_t offset;
	uint32_t length;
	void *buf;        /* 4096-aligned, length bytes */
	uint32_t *crcs;   /* length / 4096 entries */
	uint64_t version;
	uint64_t *present; /* READ: mapped-block bitmap out, or NULL */
	bs_req_cb cb;
	void *arg;

	/* private */
	struct bs_req *next;
	struct bs_req *wait_next;
	void *priv;
	uint32_t state;
	int res;
	uint32_t pending;
	uint64_t seq;
	struct bs_io io;
};

struct bs_obj_stat {
	uint64_t inode;
	uint64_t objno;
	uint64_t version;
	uint32_t blocks_mapped; /* 4 KiB blocks holding data */
};

struct bs_stat {
	uint32_t object_size;
	uint64_t objects_total;  /* object slots on the device */
	uint64_t objects_used;
	uint64_t journal_size;
	uint64_t journal_used;
	uint64_t index_bytes;    /* RAM used by the in-memory index */
	uint64_t meta_cache_bytes;
	uint64_t reads, writes, read_errors, crc_errors;
	uint64_t reads_journal;	  /* of reads, served from the journal mirror */
	uint32_t applies_pending; /* acknowledged writes not yet copied in place */
	uint32_t applies_held;	  /* of those, held (bs_opts.apply_batch) */
	uint32_t apply_batch;	  /* in effect: 1 = each apply on its own; not
				   * used with flush_always */
	bool flush_always;
};

/*
 * Write a fresh, empty blockstore on @dev (synchronously, driving the
 * reactor). Returns 0 or -EINVAL (bad options, device too small: it must
 * hold the metadata, the journal and at least one object), or an I/O errno.
 */
int bs_format(struct bs_dev *dev, const struct bs_format_opts *opts);

/*
 * Open the blockstore on @dev: read the superblock, load the index, replay
 * the journal (recovery). Synchronous (drives the reactor). Returns 0 and
 * *out, or -EUCLEAN (no/corrupt superblock: not formatted, or not Keel),
 * -EPROTONOSUPPORT (newer format version), -ENOMEM, or an I/O errno.
 * On success, logs what recovery replayed.
 */
int bs_open(struct bs_dev *dev, const struct bs_opts *opts, struct bs **out);

/*
 * Housekeeping, for the owner's periodic timer (keel-server: every 100 ms):
 * sends held in-place applies whose bs_opts.apply_delay_us has passed, so
 * an idle store does not keep them back.
 */
void bs_tick(struct bs *bs);

/*
 * Does @dev hold a Keel blockstore (of any format version)? Reads the
 * superblocks only: no replay, no write. 0 if so, -EUCLEAN if not, or an
 * I/O errno.
 */
int bs_probe(struct bs_dev *dev);

/* Submit a request; see struct bs_req. 0: cb fires exactly once, later.
 * -errno: invalid request, cb never fires. */
int bs_submit(struct bs *bs, struct bs_req *req);

/* Object listing, from the in-memory index. Objects of @inode (or of every
 * inode when @inode is UINT64_MAX) in (inode, objno) order, starting after
 * the cursor (*cursor_inode, *cursor_objno; pass 0/0 with *first true).
 * Returns the count written to @out (<= max); updates the cursor. */
unsigned int bs_list(struct bs *bs, uint64_t inode, bool *first, uint64_t *cursor_inode,
		     uint64_t *cursor_objno, struct bs_obj_stat *out, unsigned int max);

/* Stat one object: 0, or -ENOENT when it has no allocated space. */
int bs_stat_object(struct bs *bs, uint64_t inode, uint64_t objno, struct bs_obj_stat *out);

void bs_stat(struct bs *bs, struct bs_stat *out);
uint32_t bs_object_size(const struct bs *bs);

/* Graceful close: waits for in-flight requests, checkpoints the journal,
 * frees everything. Drives the reactor. Does not close @dev. */
void bs_close(struct bs *bs);

/* Test hook: free the blockstore without touching the device (after
 * bs_sim_crash(), in-flight callbacks will never fire). */
void bs_abandon(struct bs *bs);

/* ===================================================================== */
/* ---- replication support (server/bs_repl.c; docs/cluster.md) ---- */
/*
 * Used by keel-server's cluster mode: identity, per-PG listings, per-block
 * versions, and pushes that set exact block versions (recovery).
 */

/* Versions at or above this are never assigned by a PG primary (which uses
 * interval_epoch << 32 | counter with epochs < 2^31): a push marks the
 * blocks it journals with one, then sets the exact versions in RAM. */
#define BS_VER_TEMP_BASE (1ull << 63)
/* Largest object whose block-version vector bs_block_versions() returns. */
#define BS_BVERS_MAX_BLOCKS 4096u

/* The blockstore's uuid (16 bytes, set at format time). */
void bs_uuid(const struct bs *bs, uint8_t out[16]);

/* Like bs_list() over every inode, keeping only objects for which
 * @match(inode, objno, @arg) is true. */
unsigned int bs_list_match(struct bs *bs, bool (*match)(uint64_t inode, uint64_t objno, void *arg),
			   void *arg, bool *first, uint64_t *cursor_inode, uint64_t *cursor_objno,
			   struct bs_obj_stat *out, unsigned int max);

/* Visit every object of the in-memory index once, in no particular order
 * (no I/O; one pass over the index, cheap enough to run every few
 * seconds). @fn must not submit requests or change the store. */
void bs_walk(struct bs *bs, void (*fn)(const struct bs_obj_stat *st, void *arg), void *arg);

struct bs_bvers_req;
typedef void (*bs_bvers_cb)(struct bs_bvers_req *req, int res);

/*
 * Per-block versions of one object: versions[0..bpo) (0 = unmapped) and the
 * object version; an absent object gives all zeroes. Reads the block
 * metadata from the cache or the device (one 4 KiB read at a time into
 * @buf, 4096-aligned, caller's). Callers must keep mutations of the object
 * out while this runs (the versions of blocks being written are undefined).
 * bs_block_versions() returns 0 (cb fires exactly once, later) or -EINVAL
 * (object larger than BS_BVERS_MAX_BLOCKS blocks, no buf/versions/cb),
 * -EIO (store failed). The callback gets 0, -EIO (device error, corrupt
 * metadata entry).
 */
struct bs_bvers_req {
	uint64_t inode, objno;
	uint64_t *versions; /* bs_object_size() / 4096 entries */
	uint64_t obj_version;
	void *buf; /* 4096 bytes, 4096-aligned */
	bs_bvers_cb cb;
	void *arg;
	/* private */
	struct bs *bs;
	uint32_t slot, next_blk;
	struct bs_io io;
	struct reactor_defer defer;
};
int bs_block_versions(struct bs *bs, struct bs_bvers_req *req);

struct bs_push_req;
typedef void (*bs_push_cb)(struct bs_push_req *req, int res);

/*
 * Push: make blocks [offset, offset+length) of an object hold exactly
 * @buf/@crcs with block versions @versions (one per block; 0 = unmap the
 * block, its data is ignored) and set the object version to @obj_version
 * (an object left with no mapped block is freed: absent, version 0).
 * Journaled like writes: each run of mapped blocks is a WRITE, each run of
 * unmapped blocks a DISCARD, with a version >= BS_VER_TEMP_BASE; once
 * durable, the exact versions are set in the cached metadata and reach the
 * disk with the next checkpoint. A crash in between leaves temporary
 * versions, which never equal a primary's, so the next recovery compares
 * unequal and pushes again: data is always exact, versions converge.
 * The extent may be the whole object (length up to the object size; the
 * push is split into pieces of at most BS_MAX_IO). Callers serialize
 * pushes and writes of one object.
 * Returns 0 (cb fires once) or -EINVAL/-ERANGE (extent, buffers), -EIO.
 * Callback: 0, -EIO, -ENOSPC, -EBADMSG (crc mismatch).
 */
struct bs_push_req {
	uint64_t inode, objno;
	uint32_t offset, length;
	void *buf;	    /* length bytes, 4096-aligned; NULL if every version is 0 */
	uint32_t *crcs;	    /* length / 4096 */
	uint64_t *versions; /* length / 4096 */
	uint64_t obj_version;
	bs_push_cb cb;
	void *arg;
	/* private */
	struct bs *bs;
	uint32_t pos, run_blk, run_nblk; /* blocks, relative to offset */
	bool run_mapped;
	int res;
	struct bs_req sub;
	struct reactor_defer defer;
};
int bs_push(struct bs *bs, struct bs_push_req *req);

#endif
