/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs: request entry, the per-request state machine (bs_op_process()) and
 * per-object ordering. Journal batches and checkpoints: bs_journal.c;
 * index and meta cache: bs_index.c; format/open/recovery: bs_open.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/log.h"
#include "server/bs_int.h"

static void run_defer_fn(struct reactor_defer *d)
{
	struct bs_rundefer *rd = container_of(d, struct bs_rundefer, d);

	rd->armed = false;
	if (!rd->bs) {
		free(rd); /* the blockstore was abandoned while this was queued */
		return;
	}
	bs_run(rd->bs);
}

static void run_arm(struct bs *bs)
{
	if (!bs->rd->armed) {
		bs->rd->armed = true;
		bs->rd->d.fn = run_defer_fn;
		reactor_defer(bs->r, &bs->rd->d);
	}
}

void bs_run_later(struct bs *bs)
{
	run_arm(bs);
}

void bs_kick(struct bs_ctx *op)
{
	struct bs *bs = op->bs;

	if (op->queued) {
		return;
	}
	op->queued = true;
	op->rnext = NULL;
	if (bs->runq_tail) {
		bs->runq_tail->rnext = op;
	} else {
		bs->runq_head = op;
	}
	bs->runq_tail = op;
}

void bs_io_done(struct bs *bs)
{
	kassert(bs->dev_inflight > 0);
	bs->dev_inflight--;
}

int bs_dev_submit(struct bs *bs, int kind, void *buf, size_t len, uint64_t off, struct bs_io *io,
		  bs_io_cb cb)
{
	int ret;

	io->cb = cb;
	io->dsync = kind == BS_IO_WRITE_DSYNC;
	bs->dev_inflight++;
	if (kind == BS_IO_READ) {
		ret = bs_dev_read(bs->dev, buf, len, off, io);
	} else if (kind == BS_IO_WRITE || kind == BS_IO_WRITE_DSYNC) {
		ret = bs_dev_write(bs->dev, buf, len, off, io);
	} else {
		ret = bs_dev_flush(bs->dev, io);
	}
	if (ret < 0) {
		/* the device refused the request: complete it as failed */
		log_error("bs: device %s refused I/O (off %lu len %zu): %d", bs->dev->path,
			  (unsigned long)off, len, ret);
		cb(io, ret);
	}
	return 0;
}

void bs_fail(struct bs *bs, int err, const char *what)
{
	if (bs->failed) {
		return;
	}
	log_error("bs: %s failed (%d): the blockstore on %s is now failed", what, err,
		  bs->dev->path);
	bs->failed = -EIO;
	/* ops waiting for cache entries fail now instead of waiting forever */
	while (bs->mwait_head) {
		struct bs_ctx *op = bs->mwait_head;

		bs->mwait_head = op->qnext;
		bs_kick(op);
	}
	bs->mwait_tail = NULL;
}

/* ---- per-object ordering ---- */

static bool op_is_unmap(const struct bs_ctx *op)
{
	return op->kind == BS_OP_DISCARD || op->kind == BS_OP_WRITE_ZEROES;
}

static bool op_overlap(const struct bs_ctx *a, const struct bs_ctx *b)
{
	return a->blk < b->blk + b->nblk && b->blk < a->blk + a->nblk;
}

static uint32_t ao_hash(const struct bs *bs, uint64_t inode, uint64_t objno)
{
	uint64_t h = (inode * 0x9e3779b97f4a7c15ull) ^ (objno * 0xc2b2ae3d27d4eb4full);

	return (uint32_t)(h ^ (h >> 32)) & bs->ao_hmask;
}

static struct bs_aobj *ao_get(struct bs *bs, uint64_t inode, uint64_t objno)
{
	uint32_t h = ao_hash(bs, inode, objno);
	struct bs_aobj *ao = bs->ao_hash[h];

	while (ao && (ao->inode != inode || ao->objno != objno)) {
		ao = ao->hnext;
	}
	if (ao) {
		return ao;
	}
	ao = bs->ao_free;
	kassert(ao);
	bs->ao_free = ao->hnext;
	ao->inode = inode;
	ao->objno = objno;
	ao->head = ao->tail = NULL;
	ao->rslot = BS_NONE;
	ao->hnext = bs->ao_hash[h];
	bs->ao_hash[h] = ao;
	return ao;
}

static void ao_put(struct bs *bs, struct bs_aobj *ao)
{
	struct bs_aobj **p = &bs->ao_hash[ao_hash(bs, ao->inode, ao->objno)];

	if (ao->head) {
		return;
	}
	while (*p != ao) {
		p = &(*p)->hnext;
	}
	*p = ao->hnext;
	if (ao->rslot != BS_NONE) {
		bs_slot_push_free(bs, ao->rslot);
	}
	ao->hnext = bs->ao_free;
	bs->ao_free = ao;
}

void bs_ao_wake(struct bs_aobj *ao)
{
	struct bs_ctx *o;

	for (o = ao->head; o; o = o->onext) {
		if (o->state == BS_OPS_LOCK || o->state == BS_OPS_APPLY_WAIT) {
			bs_kick(o);
		}
	}
}

/*
 * May @op start? Discard/write-zeroes are barriers in both directions (a
 * discard may free the slot, so nothing else of the object may be using
 * it); a read waits for earlier overlapping writes to be applied in place;
 * a write waits for earlier overlapping reads and for every earlier write
 * to be prepared (writes of one object are built in submission order).
 * Returns the earlier op it waits for, or NULL.
 */
static const struct bs_ctx *op_blocked(const struct bs_ctx *op)
{
	const struct bs_ctx *e;

	for (e = op->oprev; e; e = e->oprev) {
		if (op_is_unmap(e) || op_is_unmap(op)) {
			return e;
		}
		if (op->kind == BS_OP_READ && e->kind == BS_OP_WRITE && op_overlap(op, e)) {
			return e;
		}
		if (op->kind == BS_OP_WRITE) {
			if (e->kind == BS_OP_READ && op_overlap(op, e)) {
				return e;
			}
			if (e->kind == BS_OP_WRITE && !e->prepped) {
				return e;
			}
		}
	}
	return NULL;
}

/* Two in-place writes of one block are never in flight together. Returns
 * the earlier write it waits for, or NULL. */
static const struct bs_ctx *apply_blocked(const struct bs_ctx *op)
{
	const struct bs_ctx *e;

	for (e = op->oprev; e; e = e->oprev) {
		if (e->kind == BS_OP_WRITE && op_overlap(op, e)) {
			return e;
		}
	}
	return NULL;
}

/* ---- contexts ---- */

static void op_start(struct bs *bs, struct bs_req *req);

static void op_release(struct bs *bs, struct bs_ctx *op)
{
	struct bs_aobj *ao = op->ao;

	kassert(!op->queued && !op->nmc && !op->pending);
	if (ao) {
		if (op->oprev) {
			op->oprev->onext = op->onext;
		} else {
			ao->head = op->onext;
		}
		if (op->onext) {
			op->onext->oprev = op->oprev;
		} else {
			ao->tail = op->oprev;
		}
		bs_ao_wake(ao);
		ao_put(bs, ao);
	}
	op->state = BS_OPS_DONE;
	op->qnext = bs->op_free;
	bs->op_free = op;
	bs->ops_used--;
	if (bs->cw_head) {
		struct bs_req *req = bs->cw_head;

		bs->cw_head = req->next;
		if (!bs->cw_head) {
			bs->cw_tail = NULL;
		}
		op_start(bs, req);
	}
}

void bs_op_finish(struct bs_ctx *op, int res)
{
	struct bs *bs = op->bs;
	struct bs_req *req = op->req;

	bs_mc_release(op);
	op_release(bs, op);
	if (req) {
		req->priv = NULL;
		req->res = res;
		req->cb(req, res);
	}
}

void bs_op_ack(struct bs_ctx *op)
{
	struct bs_req *req = op->req;

	op->req = NULL;
	req->priv = NULL;
	req->version = op->version;
	req->res = 0;
	req->cb(req, 0);
}

static void op_start(struct bs *bs, struct bs_req *req)
{
	struct bs_ctx *op = bs->op_free;

	kassert(op);
	bs->op_free = op->qnext;
	bs->ops_used++;
	memset(op, 0, sizeof(*op));
	op->bs = bs;
	op->req = req;
	op->kind = req->op;
	op->inode = req->inode;
	op->objno = req->objno;
	op->blk = req->offset / BS_BLOCK;
	op->nblk = req->length / BS_BLOCK;
	op->slot = BS_NONE;
	op->state = BS_OPS_LOCK;
	req->priv = op;
	if (op->kind != BS_OP_SYNC) {
		struct bs_aobj *ao = ao_get(bs, op->inode, op->objno);

		op->ao = ao;
		op->oprev = ao->tail;
		if (ao->tail) {
			ao->tail->onext = op;
		} else {
			ao->head = op;
		}
		ao->tail = op;
	}
	bs_kick(op);
}

/* ---- reads ---- */

static void read_zero(struct bs_ctx *op)
{
	uint32_t b, zc = crc32c_zero_block();

	memset(op->req->buf, 0, (size_t)op->nblk * BS_BLOCK);
	for (b = 0; b < op->nblk; b++) {
		op->req->crcs[b] = zc;
	}
	if (op->req->present) {
		memset(op->req->present, 0, BS_PRESENT_WORDS(op->req->length) * sizeof(uint64_t));
	}
}

static void op_io_done(struct bs_io *io, int res)
{
	struct bs_ctx *op = container_of(io, struct bs_ctx, io);
	struct bs *bs = op->bs;

	bs_io_done(bs);
	if (res < 0) {
		op->res = res;
	}
	kassert(op->pending > 0);
	op->pending--;
	bs_kick(op);
	bs_run(bs);
}

static bool read_any_mapped(struct bs_ctx *op)
{
	uint32_t b;

	for (b = 0; b < op->nblk; b++) {
		if (!bs_bmeta_zero(bs_mc_entry(op, b))) {
			return true;
		}
	}
	return false;
}

static void read_start_io(struct bs_ctx *op)
{
	op->pending++;
	bs_dev_submit(op->bs, BS_IO_READ, op->req->buf, (size_t)op->nblk * BS_BLOCK,
		      bs_data_off(op->bs, op->slot, op->blk), &op->io, op_io_done);
}

static int read_verify(struct bs_ctx *op)
{
	struct bs *bs = op->bs;
	uint32_t b, zc = crc32c_zero_block();
	uint8_t *buf = op->req->buf;
	uint64_t *present = op->req->present;
	int res = 0;

	if (present) {
		memset(present, 0, BS_PRESENT_WORDS(op->req->length) * sizeof(uint64_t));
	}
	for (b = 0; b < op->nblk; b++) {
		const struct bs_bmeta *e = bs_mc_entry(op, b);
		uint8_t *p = buf + (size_t)b * BS_BLOCK;
		uint32_t c;

		if (bs_bmeta_zero(e)) {
			memset(p, 0, BS_BLOCK);
			op->req->crcs[b] = zc;
			continue;
		}
		if (present) {
			present[b / 64] |= 1ull << (b % 64);
		}
		if (!bs_bmeta_valid(e)) {
			log_error("bs: corrupt block metadata for %lu:%lu block %u (slot %u)",
				  (unsigned long)op->inode, (unsigned long)op->objno, op->blk + b,
				  op->slot);
			bs->st_crc_errors++;
			res = -EIO;
			continue;
		}
		c = crc32c(0, p, BS_BLOCK);
		if (c != e->data_crc) {
			log_error("bs: checksum mismatch in %lu:%lu block %u (slot %u): "
				  "stored %08x, read %08x",
				  (unsigned long)op->inode, (unsigned long)op->objno, op->blk + b,
				  op->slot, e->data_crc, c);
			bs->st_crc_errors++;
			res = -EIO;
			continue;
		}
		op->req->crcs[b] = c;
	}
	if (res < 0) {
		memset(buf, 0, (size_t)op->nblk * BS_BLOCK);
	}
	return res;
}

/*
 * The newest op before @op that writes block @blk, if it is an acknowledged
 * write whose in-place copy is not done (waiting, held or in flight): its
 * data is in the journal mirror at jpos until the op is freed. NULL when
 * the newest such op is anything else, or there is none.
 */
static const struct bs_ctx *mirror_src(const struct bs_ctx *op, uint32_t blk)
{
	const struct bs_ctx *e;

	for (e = op->oprev; e; e = e->oprev) {
		if (e->kind == BS_OP_WRITE && blk >= e->blk && blk < e->blk + e->nblk) {
			break;
		}
	}
	if (e && (e->state == BS_OPS_APPLY_WAIT || e->state == BS_OPS_APPLY_HELD ||
		  e->state == BS_OPS_APPLY)) {
		return e;
	}
	return NULL;
}

/*
 * A read whose every block was last written by such writes needs neither
 * the device nor their applies: copy the blocks from the mirror (durable in
 * the journal, so never data a crash could take back), each checked against
 * the crc its record stores, as a device read is against the block
 * metadata. Anything else (an earlier discard, a block no earlier write
 * covers, a write not yet acknowledged, a block whose copy fails its crc)
 * returns false with nothing decided, and the read takes the normal path.
 * Every block is looked up before any is copied, so a read that falls back
 * (it may be tried again each time it is woken) costs no copies or crcs.
 * A read that found a damaged copy is not tried again: one log line, and
 * it waits for the apply and reads the device (which fails it too).
 * Keeps read-after-write off the device, and a held batch held.
 */
static bool read_from_mirror(struct bs_ctx *op)
{
	struct bs *bs = op->bs;
	uint8_t *buf = op->req->buf, *p;
	const struct bs_ctx *e, *src = NULL;
	uint32_t b, c;

	if (op->no_mirror) {
		return false;
	}
	for (e = op->oprev; e; e = e->oprev) {
		if (op_is_unmap(e)) {
			return false;
		}
	}
	for (b = 0; b < op->nblk; b++) {
		if (!mirror_src(op, op->blk + b)) {
			return false;
		}
	}
	for (b = 0; b < op->nblk; b++) {
		uint32_t blk = op->blk + b;

		src = mirror_src(op, blk);
		p = buf + (size_t)b * BS_BLOCK;
		memcpy(p, bs->jm + src->jpos + (uint64_t)(blk - src->blk) * BS_BLOCK, BS_BLOCK);
		c = crc32c(0, p, BS_BLOCK);
		if (c != src->jcrcs[blk - src->blk]) {
			log_error("bs: journal mirror checksum mismatch in %lu:%lu block %u: "
				  "stored %08x, copy %08x",
				  (unsigned long)op->inode, (unsigned long)op->objno, blk,
				  src->jcrcs[blk - src->blk], c);
			bs->st_crc_errors++;
			op->no_mirror = true;
			return false;
		}
		op->req->crcs[b] = c;
	}
	if (op->req->present) {
		memset(op->req->present, 0, BS_PRESENT_WORDS(op->req->length) * sizeof(uint64_t));
		for (b = 0; b < op->nblk; b++) {
			op->req->present[b / 64] |= 1ull << (b % 64);
		}
	}
	op->req->version = bs->slots[src->slot].version;
	bs->st_jreads++;
	return true;
}

/* ---- in-place applies ---- */

static void apply_submit(struct bs_ctx *op)
{
	struct bs *bs = op->bs;

	op->state = BS_OPS_APPLY;
	op->pending++;
	bs_dev_submit(bs, BS_IO_WRITE, bs->jm + op->jpos, (size_t)op->nblk * BS_BLOCK,
		      bs_data_off(bs, op->slot, op->blk), &op->io, op_io_done);
}

/* Send every held apply to the device, in the order they were held. */
void bs_apply_release(struct bs *bs)
{
	while (bs->held_head) {
		struct bs_ctx *op = bs->held_head;

		bs->held_head = op->qnext;
		bs->nheld--;
		apply_submit(op);
	}
	bs->held_tail = NULL;
}

/*
 * An acknowledged write's data is in the journal (durable) and in its
 * mirror; the in-place copy only has to happen before the checkpoint that
 * moves the tail past the record, and before anything reads the blocks.
 * Each apply sent alone costs a device doorbell, an interrupt and a
 * completion; held and sent together, one of each for the batch (on this
 * VM a doorbell is an exit of ~6.5 us, docs/benchmarks.md, "Held applies").
 * So an apply is held until apply_batch are, or something needs it: an op
 * blocked behind a held write (op_process), a wanted checkpoint
 * (bs_ckpt_pump), bs_close(); or, once apply_delay has passed since the
 * first was held, with the next apply or bs_tick(), whichever comes first.
 * No timer of its own: arming one per batch cost more than it saved (an
 * exit per hrtimer programming on this VM; QD32 3-replica writes -10 %).
 * A write with later ops of its object is never held: they may already
 * wait for it, and only ops that find it held release the batch.
 *
 * With a flush per journal write a batch would land in one write's flush
 * (QD1 durable writes 153 -> 167 us), so apply_batch is not used: the
 * applies held since the last journal write go right after the next one
 * (bs_journal_pump), their doorbell rung while that write is on the device
 * rather than between an ack and the next request (QD1 durable writes on
 * one vCPU 188 -> 175 us, docs/benchmarks.md, "Applies after the next
 * journal write").
 */
static bool hold_expired(const struct bs *bs)
{
	return bs->nheld && bs->apply_delay && reactor_now_ns() - bs->held_since >= bs->apply_delay;
}

static bool hold_full(const struct bs *bs)
{
	return bs->nheld + 1 >= (bs->flush_always ? BS_APPLY_BATCH_MAX : bs->apply_batch);
}

static void apply_start(struct bs_ctx *op)
{
	struct bs *bs = op->bs;

	if (op->onext || hold_full(bs) || bs->ck_want || bs->closing || hold_expired(bs)) {
		bs_apply_release(bs);
		apply_submit(op);
		return;
	}
	op->state = BS_OPS_APPLY_HELD;
	op->qnext = NULL;
	if (bs->held_tail) {
		bs->held_tail->qnext = op;
	} else {
		bs->held_head = op;
	}
	bs->held_tail = op;
	if (!bs->nheld++) {
		bs->held_since = reactor_now_ns();
	}
}

void bs_tick(struct bs *bs)
{
	if (hold_expired(bs)) {
		bs_apply_release(bs);
	}
}

/* @op waits for @e: if @e is a held apply, release the batch now. */
static void unblock_held(struct bs *bs, const struct bs_ctx *e)
{
	if (e->state == BS_OPS_APPLY_HELD) {
		bs_apply_release(bs);
	}
}

/* ---- the state machine ---- */

static void op_process(struct bs_ctx *op)
{
	struct bs *bs = op->bs;
	const struct bs_ctx *blocker;
	uint32_t slot;
	int ret;

	switch (op->state) {
	case BS_OPS_LOCK:
		if (op->kind == BS_OP_SYNC) {
			bs_op_finish(op, bs->failed);
			return;
		}
		if (bs->failed) {
			bs_op_finish(op, bs->failed);
			return;
		}
		if (op->kind == BS_OP_READ && op->oprev && read_from_mirror(op)) {
			bs_op_finish(op, 0);
			return;
		}
		blocker = op_blocked(op);
		if (blocker) {
			unblock_held(bs, blocker);
			return;
		}
		slot = bs_index_lookup(bs, op->inode, op->objno);
		if (slot == BS_NONE) {
			if (op->kind == BS_OP_READ) {
				read_zero(op);
				op->req->version = 0;
				bs_op_finish(op, 0);
				return;
			}
			if (op_is_unmap(op)) {
				op->req->version = 0;
				bs_op_finish(op, 0);
				return;
			}
			if (op->ao->rslot == BS_NONE) {
				op->ao->rslot = bs_slot_pop_free(bs);
				if (op->ao->rslot == BS_NONE) {
					bs_op_finish(op, -ENOSPC);
					return;
				}
			}
			slot = op->ao->rslot;
		}
		op->slot = slot;
		op->state = BS_OPS_META;
		/* fall through */
	case BS_OPS_META:
		if (bs->failed) {
			bs_op_finish(op, bs->failed);
			return;
		}
		if (bs_mc_acquire(op) == -EAGAIN) {
			return;
		}
		if (op->kind == BS_OP_READ) {
			op->state = BS_OPS_READ;
			if (!op->pending && !read_any_mapped(op)) {
				read_zero(op);
				op->req->version = bs->slots[op->slot].version;
				bs_op_finish(op, 0);
				return;
			}
			read_start_io(op);
			return;
		}
		op->state = BS_OPS_MLOAD;
		/* fall through */
	case BS_OPS_MLOAD:
		if (op->pending) {
			return;
		}
		if (op->res < 0) {
			bs_op_finish(op, op->res);
			return;
		}
		op->prepped = true;
		op->state = BS_OPS_JQUEUE;
		op->qnext = NULL;
		if (bs->jq_tail) {
			bs->jq_tail->qnext = op;
		} else {
			bs->jq_head = op;
		}
		bs->jq_tail = op;
		bs_ao_wake(op->ao);
		return;
	case BS_OPS_READ:
		if (op->pending) {
			return;
		}
		if (op->res < 0) {
			if (op->res != -EIO || op->nmc) {
				bs->st_read_errors++;
			}
			log_error("bs: read of %lu:%lu failed: %d", (unsigned long)op->inode,
				  (unsigned long)op->objno, op->res);
			memset(op->req->buf, 0, (size_t)op->nblk * BS_BLOCK);
			bs_op_finish(op, -EIO);
			return;
		}
		ret = read_verify(op);
		op->req->version = bs->slots[op->slot].version;
		bs_op_finish(op, ret);
		return;
	case BS_OPS_APPLY_WAIT:
		blocker = apply_blocked(op);
		if (blocker) {
			unblock_held(bs, blocker);
			return;
		}
		apply_start(op);
		return;
	case BS_OPS_APPLY:
		if (op->pending) {
			return;
		}
		if (op->res < 0) {
			bs_fail(bs, op->res, "in-place write");
		}
		kassert(bs->applies > 0);
		bs->applies--;
		bs_op_finish(op, 0);
		return;
	case BS_OPS_APPLY_HELD:
	case BS_OPS_JQUEUE:
	case BS_OPS_JOURNAL:
	case BS_OPS_DONE:
		return;
	}
}

void bs_run(struct bs *bs)
{
	if (bs->running) {
		return;
	}
	bs->running = true;
	for (;;) {
		struct bs_ctx *op = bs->runq_head;

		if (op) {
			bs->runq_head = op->rnext;
			if (!bs->runq_head) {
				bs->runq_tail = NULL;
			}
			op->queued = false;
			op_process(op);
			continue;
		}
		if (bs_journal_pump(bs)) {
			continue;
		}
		if (bs_ckpt_pump(bs)) {
			continue;
		}
		break;
	}
	bs->running = false;
}

/* ---- public API ---- */

static int req_check(const struct bs *bs, const struct bs_req *req)
{
	if (!req->cb) {
		return -EINVAL;
	}
	switch (req->op) {
	case BS_OP_SYNC:
		return 0;
	case BS_OP_READ:
	case BS_OP_WRITE:
		if (!req->buf || ((uintptr_t)req->buf % BS_BLOCK) || !req->crcs) {
			return -EINVAL;
		}
		break;
	case BS_OP_DISCARD:
	case BS_OP_WRITE_ZEROES:
		break;
	default:
		return -EINVAL;
	}
	if (!req->length || req->offset % BS_BLOCK || req->length % BS_BLOCK) {
		return -EINVAL;
	}
	if (req->length > BS_MAX_IO || (uint64_t)req->offset + req->length > bs->sb.object_size) {
		return -ERANGE;
	}
	return 0;
}

int bs_submit(struct bs *bs, struct bs_req *req)
{
	int ret;

	if (!bs || !req) {
		return -EINVAL;
	}
	ret = req_check(bs, req);
	if (ret < 0) {
		return ret;
	}
	if (bs->failed) {
		return bs->failed;
	}
	if (req->op == BS_OP_WRITE) {
		uint32_t b, n = req->length / BS_BLOCK;

		for (b = 0; b < n; b++) {
			if (crc32c(0, (uint8_t *)req->buf + (size_t)b * BS_BLOCK, BS_BLOCK) !=
			    req->crcs[b]) {
				return -EBADMSG;
			}
		}
		bs->st_writes++;
	} else if (req->op == BS_OP_READ) {
		bs->st_reads++;
	}
	req->res = 0;
	req->next = NULL;
	if (bs->cw_head || !bs->op_free) {
		if (bs->cw_tail) {
			bs->cw_tail->next = req;
		} else {
			bs->cw_head = req;
		}
		bs->cw_tail = req;
	} else {
		op_start(bs, req);
	}
	run_arm(bs);
	return 0;
}

static bool bs_list_inode_match(uint64_t inode, uint64_t objno, void *arg)
{
	const uint64_t *want = arg;

	return *want == UINT64_MAX || inode == *want;
}

unsigned int bs_list(struct bs *bs, uint64_t inode, bool *first, uint64_t *cursor_inode,
		     uint64_t *cursor_objno, struct bs_obj_stat *out, unsigned int max)
{
	/* The general listing (bs_repl.c) with an inode filter. */
	return bs_list_match(bs, bs_list_inode_match, &inode, first, cursor_inode, cursor_objno,
			     out, max);
}

int bs_stat_object(struct bs *bs, uint64_t inode, uint64_t objno, struct bs_obj_stat *out)
{
	uint32_t slot = bs_index_lookup(bs, inode, objno);

	if (slot == BS_NONE) {
		return -ENOENT;
	}
	out->inode = inode;
	out->objno = objno;
	out->version = bs->slots[slot].version;
	out->blocks_mapped = bs->slots[slot].mapped;
	return 0;
}

void bs_stat(struct bs *bs, struct bs_stat *out)
{
	memset(out, 0, sizeof(*out));
	out->object_size = bs->sb.object_size;
	out->objects_total = bs->nslots;
	out->objects_used = bs->used_slots;
	out->journal_size = bs->jsize;
	out->journal_used = bs->jused;
	out->index_bytes = (uint64_t)bs->sb.slot_blocks * BS_BLOCK +
			   (uint64_t)bs->nslots * (sizeof(*bs->hnext) + sizeof(*bs->freestk)) +
			   ((uint64_t)bs->hmask + 1) * sizeof(*bs->hbuckets) + bs->sb.slot_blocks;
	out->meta_cache_bytes = (uint64_t)bs->mc_cap * (BS_BLOCK + sizeof(struct bs_mc));
	out->reads = bs->st_reads;
	out->writes = bs->st_writes;
	out->read_errors = bs->st_read_errors;
	out->crc_errors = bs->st_crc_errors;
	out->reads_journal = bs->st_jreads;
	out->applies_pending = bs->applies;
	out->applies_held = bs->nheld;
	out->apply_batch = bs->apply_batch;
	out->flush_always = bs->flush_always;
}

uint32_t bs_object_size(const struct bs *bs)
{
	return bs->sb.object_size;
}
