/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs_int: the blockstore's private state, shared by its files:
 *   bs.c         public API, request state machine, per-object ordering
 *   bs_index.c   slot table index (object -> slot) and the meta-block cache
 *   bs_journal.c write-ahead journal batches (group commit) and checkpoints
 *   bs_open.c    format, open, journal replay (recovery), close
 * Not a contract for anyone outside server/bs*.c.
 */
#ifndef KEEL_SERVER_BS_INT_H
#define KEEL_SERVER_BS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "server/bs.h"
#include "server/bs_format.h"

#define BS_NONE	       UINT32_MAX
#define BS_OPS_MAX     2048u	  /* request contexts; more requests queue */
#define BS_CKPT_WINDOW 32u	  /* slot-table writes in flight in a checkpoint */
#define BS_CK_RUNS     8u	  /* meta-block runs in flight in a checkpoint */
#define BS_CK_RUN_MAX  64u	  /* blocks per meta-block run (one device write) */
#define BS_BATCH_MAX   (4u << 20) /* largest journal write (group commit) */
#define BS_BATCHES     4u	  /* journal writes in flight (pipelined group commit) */
#define BS_MC_MIN      16u	  /* smallest meta cache, in blocks */
#define BS_REC_MAX     ((uint64_t)(1 + BS_JREC_MAX_BLOCKS) * BS_BLOCK)

enum bs_op_state {
	BS_OPS_LOCK = 0,   /* waiting for earlier conflicting ops of the object */
	BS_OPS_META,	   /* pinning the meta blocks of the extent */
	BS_OPS_MLOAD,	   /* mutation: meta blocks loading */
	BS_OPS_READ,	   /* read: data and/or meta I/O in flight */
	BS_OPS_JQUEUE,	   /* mutation: prepared, waiting for a journal batch */
	BS_OPS_JOURNAL,	   /* mutation: record in the in-flight batch */
	BS_OPS_APPLY_WAIT, /* write acked; in-place apply waits for earlier applies */
	BS_OPS_APPLY_HELD, /* write acked; in-place apply held for a batch (bs->held) */
	BS_OPS_APPLY,	   /* write: in-place apply in flight */
	BS_OPS_DONE,
};

enum bs_mc_state {
	BS_MC_FREE = 0,
	BS_MC_LOADING,
	BS_MC_VALID,
};

struct bs_ctx;

struct bs_mwait {
	struct bs_ctx *op;
	struct bs_mwait *next;
};

/* One cached 4 KiB block of the block-metadata area. */
struct bs_mc {
	struct bs *bs;
	uint64_t blkno;	      /* index within the meta area */
	struct bs_bmeta *ent; /* BS_BMETA_PER_BLOCK entries, 4096-aligned */
	uint32_t pin;
	uint8_t state; /* enum bs_mc_state */
	bool dirty;    /* pinned until a checkpoint writes it */
	bool hashed;
	bool on_lru;
	struct bs_mc *hnext;
	struct bs_mc *prev, *next; /* LRU (valid, clean, unpinned) or free list */
	struct bs_mc *dnext;	   /* dirty list */
	struct bs_mwait *waiters;
	struct bs_io io;
};

/* Per-object ordering: every unfinished op of one object, in submission order. */
struct bs_aobj {
	uint64_t inode, objno;
	struct bs_aobj *hnext;
	struct bs_ctx *head, *tail;
	uint32_t rslot; /* slot reserved for a not-yet-built first write, or BS_NONE */
};

struct bs_ctx {
	struct bs *bs;
	struct bs_req *req; /* NULL once acknowledged */
	enum bs_op kind;
	enum bs_op_state state;
	uint64_t inode, objno;
	uint32_t blk, nblk; /* extent in 4 KiB blocks within the object */
	uint32_t slot;
	int res;
	uint32_t pending; /* outstanding meta loads + device I/O */
	bool queued;	  /* on the run queue */
	bool prepped;	  /* mutation reached the journal queue */
	bool no_mirror;	  /* read: a mirror copy failed its crc, use the device */
	uint8_t nmc;
	struct bs_mc *mc[2];
	struct bs_mwait mw[2];
	struct bs_aobj *ao;
	struct bs_ctx *oprev, *onext; /* aobj list */
	struct bs_ctx *qnext;	      /* journal queue, batch, meta-wait, held, free list */
	struct bs_ctx *rnext;	      /* run queue */
	uint64_t jpos;		      /* ring offset of the write's data in the journal */
	const uint32_t *jcrcs;	      /* its data crcs in the record, in the mirror */
	uint64_t version;
	struct bs_io io;
};

/* Survives bs_abandon() while queued on the reactor. */
struct bs_rundefer {
	struct reactor_defer d;
	struct bs *bs;
	bool armed;
};

/*
 * One journal write of a group commit: the records of [head .. tail], plus a
 * WRAP marker at the ring end when the batch starts over at offset 0; with
 * flush_mode=always both are written through (BS_IO_WRITE_DSYNC). Batches
 * complete in any order on the device but become durable (acked) in ring
 * order.
 */
struct bs_batch {
	struct bs *bs;
	struct bs_ctx *head, *tail;
	uint32_t pending; /* device I/Os of this batch in flight */
	int err;
	bool written;  /* every I/O of the batch completed */
	struct bs_io io, wrap_io;
};

struct bs_ckio {
	struct bs_io io;
	struct bs *bs;
};

/* One checkpoint write of consecutive meta blocks, copied to a staging
 * buffer: dirty blocks ck_mcs[first .. first + n - 1] plus any clean cached
 * blocks between them. */
struct bs_ckrun {
	struct bs_io io;
	struct bs *bs;
	uint8_t *buf; /* BS_CK_RUN_MAX blocks of bs->ck_stage */
	uint32_t first, n;
};

enum bs_ck_state {
	BS_CK_IDLE = 0,
	BS_CK_WRITE, /* dirty meta and slot-table blocks */
	BS_CK_FLUSH1,
	BS_CK_JSB,
	BS_CK_FLUSH2,
};

struct bs {
	struct bs_dev *dev;
	struct reactor *r;
	struct bs_sb sb;
	uint32_t bpo; /* 4 KiB blocks per object */
	uint32_t nslots;
	bool flush_always;
	int failed; /* -errno once the store has failed */

	/* index: the slot table image plus a hash and a free stack */
	struct bs_slot *slots; /* slot_blocks * 4096 bytes, written as is */
	uint32_t *hnext;
	uint32_t *hbuckets;
	uint32_t hmask;
	uint32_t *freestk;
	uint32_t nfree;
	uint64_t used_slots;
	uint64_t bad_slots;
	uint8_t *slot_dirty; /* one byte per slot-table block */
	uint64_t nslot_dirty;

	/* meta cache */
	struct bs_mc *mcs;
	uint32_t mc_cap;
	uint8_t *mc_bufs;
	struct bs_mc **mc_hash;
	uint32_t mc_hmask;
	struct bs_mc *mc_free;
	uint32_t mc_nfree;
	struct bs_mc lru; /* sentinel; head = most recent */
	uint32_t mc_nlru;
	struct bs_mc *mc_dirty;
	uint32_t mc_ndirty;
	struct bs_ctx *mwait_head, *mwait_tail;

	/* request contexts */
	struct bs_ctx *ops;
	struct bs_ctx *op_free;
	uint32_t ops_used;
	struct bs_aobj *aobjs;
	struct bs_aobj *ao_free;
	struct bs_aobj **ao_hash;
	uint32_t ao_hmask;
	struct bs_req *cw_head, *cw_tail; /* waiting for a context */
	struct bs_ctx *runq_head, *runq_tail;
	bool running;
	struct bs_rundefer *rd;
	uint64_t dev_inflight;

	/* journal */
	uint64_t jsize;
	uint8_t *jm;	    /* RAM mirror of the ring */
	int jm_buf, ck_buf; /* registered-buffer indexes of jm, ck_stage, or -1 */
	uint64_t jtail, jhead, jused;
	uint64_t tail_seq, next_seq;
	uint64_t jsb_gen;
	struct bs_ctx *jq_head, *jq_tail;
	struct bs_batch batch[BS_BATCHES]; /* ring: b_first is the oldest */
	uint32_t b_first, b_count;
	uint32_t applies; /* acked writes not yet applied in place */
	struct bs_ctx *held_head, *held_tail; /* BS_OPS_APPLY_HELD, in ack order */
	uint32_t nheld;
	uint64_t held_since;  /* reactor_now_ns() when the first was held */
	uint32_t apply_batch; /* bs_opts.apply_batch, 1 = no holding */
	uint64_t apply_delay; /* ns, 0 = no time limit */
	bool closing;	      /* bs_close(): hold nothing more */

	/* checkpoint */
	enum bs_ck_state ck;
	bool ck_want;
	uint32_t ck_pending;
	int ck_err;
	uint64_t ck_cursor;
	uint64_t ck_tail, ck_seq;
	uint64_t ck_count;
	struct bs_ckio ck_io[BS_CKPT_WINDOW];
	uint32_t ck_io_free[BS_CKPT_WINDOW];
	uint32_t ck_nio_free;
	struct bs_ckrun ck_runs[BS_CK_RUNS];
	uint32_t ck_run_free[BS_CK_RUNS];
	uint32_t ck_nrun_free;
	uint8_t *ck_stage;     /* BS_CK_RUNS * BS_CK_RUN_MAX blocks */
	struct bs_mc **ck_mcs; /* this checkpoint's dirty blocks, sorted; mc_cap entries */
	uint32_t ck_nmc, ck_mpos;
	struct bs_io ck_flush_io, ck_jsb_io;
	void *ck_jsb_buf;

	/* stats */
	uint64_t st_reads, st_writes, st_read_errors, st_crc_errors, st_wraps;
	uint64_t st_jreads;		/* reads served from the journal mirror */
	uint64_t st_groups, st_entries; /* group records built, mutations in them */
	uint32_t st_batches_max;	/* most journal batches in flight at once */
};

/* bs.c */
void bs_kick(struct bs_ctx *op);
/* Run every op of @ao that waits to start or to apply. */
void bs_ao_wake(struct bs_aobj *ao);
void bs_run(struct bs *bs);
/* bs_run() on the next reactor turn, before that turn submits its SQEs. */
void bs_run_later(struct bs *bs);
void bs_apply_release(struct bs *bs);
void bs_op_finish(struct bs_ctx *op, int res);
void bs_op_ack(struct bs_ctx *op);
void bs_fail(struct bs *bs, int err, const char *what);
int bs_dev_submit(struct bs *bs, int kind, void *buf, size_t len, uint64_t off, struct bs_io *io,
		  bs_io_cb cb);
#define BS_IO_READ     0
#define BS_IO_WRITE    1
#define BS_IO_FLUSH    2
#define BS_IO_WRITE_DSYNC 3 /* a write durable when it completes (struct bs_io, dsync) */
void bs_io_done(struct bs *bs);

/* bs_index.c: slots */
uint32_t bs_index_lookup(const struct bs *bs, uint64_t inode, uint64_t objno);
void bs_index_insert(struct bs *bs, uint32_t slot);
void bs_index_remove(struct bs *bs, uint32_t slot);
void bs_slot_set(struct bs *bs, uint32_t slot, uint64_t inode, uint64_t objno, uint64_t version,
		 uint32_t mapped);
bool bs_slot_entry_valid(const struct bs_slot *s, uint32_t bpo);
uint32_t bs_slot_pop_free(struct bs *bs);
void bs_slot_push_free(struct bs *bs, uint32_t slot);
int bs_index_build(struct bs *bs);

/* bs_index.c: meta cache */
int bs_mc_init(struct bs *bs, uint32_t cap);
void bs_mc_destroy(struct bs *bs);
int bs_mc_acquire(struct bs_ctx *op);
void bs_mc_release(struct bs_ctx *op);
struct bs_bmeta *bs_mc_entry(struct bs_ctx *op, uint32_t b);
void bs_mc_mark_dirty(struct bs *bs, struct bs_mc *mc);
void bs_mc_written(struct bs *bs, struct bs_mc *mc);
struct bs_mc *bs_mc_lookup(struct bs *bs, uint64_t blkno);
struct bs_mc *bs_mc_get_sync(struct bs *bs, uint64_t blkno, int *err);
bool bs_bmeta_zero(const struct bs_bmeta *e);
bool bs_bmeta_valid(const struct bs_bmeta *e);
void bs_bmeta_set(struct bs_bmeta *e, uint64_t version, uint32_t data_crc);

/* bs_journal.c */
bool bs_journal_pump(struct bs *bs);
bool bs_ckpt_pump(struct bs *bs);
void bs_jrec_seal(struct bs_jrec *h);
bool bs_jrec_check(const struct bs_jrec *h);
/* Bytes of a group entry of this type and data length (8-byte aligned). */
uint32_t bs_jent_bytes(uint32_t type, uint32_t length);

/* bs_open.c */
int bs_sync_io(struct bs_dev *dev, int kind, void *buf, size_t len, uint64_t off);

static inline uint64_t bs_data_off(const struct bs *bs, uint32_t slot, uint32_t blk)
{
	return bs->sb.data_off + (uint64_t)slot * bs->sb.object_size + (uint64_t)blk * BS_BLOCK;
}

#endif
