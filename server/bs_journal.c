/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The write-ahead journal: prepared mutations are built into records in the
 * RAM mirror of the ring, written as one batch (group commit; written
 * through with a volatile cache), then acknowledged; checkpoints make the
 * applied state durable and free the ring. Sequence and crash reasoning:
 * docs/on-disk-format.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/log.h"
#include "server/bs_int.h"

void bs_jrec_seal(struct bs_jrec *h)
{
	h->crc = 0;
	h->crc = crc32c(0, h, sizeof(*h));
}

bool bs_jrec_check(const struct bs_jrec *h)
{
	struct bs_jrec tmp;

	if (h->magic != BS_JREC_MAGIC) {
		return false;
	}
	memcpy(&tmp, h, sizeof(tmp));
	tmp.crc = 0;
	return crc32c(0, &tmp, sizeof(tmp)) == h->crc;
}

uint32_t bs_jent_bytes(uint32_t type, uint32_t length)
{
	uint32_t ncrc = type == BS_JREC_WRITE ? length / BS_BLOCK : 0;

	return (uint32_t)sizeof(struct bs_jent) + ((ncrc * 4u + 7u) & ~7u);
}

static uint32_t op_ent_bytes(const struct bs_ctx *op)
{
	return bs_jent_bytes(op->kind == BS_OP_WRITE ? BS_JREC_WRITE : BS_JREC_UNMAP,
			     op->nblk * BS_BLOCK);
}

static uint64_t op_data_bytes(const struct bs_ctx *op)
{
	return op->kind == BS_OP_WRITE ? (uint64_t)op->nblk * BS_BLOCK : 0;
}

static struct bs_jgrp *grp_open(struct bs *bs, uint64_t pos, uint64_t seq)
{
	struct bs_jgrp *g = (struct bs_jgrp *)(bs->jm + pos);

	memset(g, 0, BS_BLOCK);
	g->magic = BS_JREC_MAGIC;
	g->seq = seq;
	g->type = BS_JREC_GROUP;
	g->bytes = sizeof(*g);
	return g;
}

static void grp_seal(struct bs_jgrp *g)
{
	g->crc = 0;
	g->crc = crc32c(0, g, g->bytes);
}

/* Bytes free at @pos without wrapping. */
static uint64_t ring_contig(const struct bs *bs, uint64_t pos, uint64_t used)
{
	if (used >= bs->jsize) {
		return 0;
	}
	if (!used || pos > bs->jtail) {
		return bs->jsize - pos;
	}
	return bs->jtail - pos;
}

static bool ring_can_wrap(const struct bs *bs, uint64_t pos, uint64_t used)
{
	return used < bs->jsize && (!used || pos > bs->jtail);
}

/*
 * The version @op gives its object (whose slot is @cur, or BS_NONE before its
 * first write), or -ESTALE (logged) when the caller asked for one that is not
 * above the object's.
 */
static int op_version(struct bs *bs, const struct bs_ctx *op, uint32_t cur, uint64_t *ver)
{
	uint64_t curver = cur == BS_NONE ? 0 : bs->slots[op->slot].version;
	uint64_t want = op->req->version;

	kassert(cur == BS_NONE || cur == op->slot);
	if (!want) {
		*ver = curver + 1;
		return 0;
	}
	if (want <= curver) {
		log_warn("bs: %s of %llu:%llu refused: version %llx not above the object's %llx",
			 op->kind == BS_OP_WRITE ? "write" : "unmap", (unsigned long long)op->inode,
			 (unsigned long long)op->objno, (unsigned long long)want,
			 (unsigned long long)curver);
		return -ESTALE;
	}
	*ver = want;
	return 0;
}

/*
 * Apply @op (object slot @cur, as for op_version()), at version @ver, to the
 * in-RAM state (slot entry, meta entries), append its entry to group @g and
 * copy its data to ring offset @dpos of the mirror. Runs only while no
 * checkpoint is writing.
 */
static void op_build(struct bs *bs, struct bs_ctx *op, uint32_t cur, struct bs_jgrp *g,
		     uint64_t dpos, uint64_t ver)
{
	struct bs_jent *e = (struct bs_jent *)((uint8_t *)g + g->bytes);
	uint32_t mapped = cur == BS_NONE ? 0 : bs->slots[op->slot].mapped;
	uint32_t b, flags = 0;

	g->bytes += op_ent_bytes(op);
	kassert(g->bytes <= BS_BLOCK);
	g->count++;
	if (op->kind == BS_OP_WRITE) {
		if (cur == BS_NONE) {
			bs_slot_set(bs, op->slot, op->inode, op->objno, ver, 1);
			bs_index_insert(bs, op->slot);
			kassert(op->ao->rslot == op->slot);
			op->ao->rslot = BS_NONE;
		}
		for (b = 0; b < op->nblk; b++) {
			struct bs_bmeta *m = bs_mc_entry(op, b);

			if (bs_bmeta_zero(m)) {
				mapped++;
			}
			bs_bmeta_set(m, ver, op->req->crcs[b]);
			e->data_crcs[b] = op->req->crcs[b];
		}
		op->jcrcs = e->data_crcs;
		memcpy(bs->jm + dpos, op->req->buf, (size_t)op->nblk * BS_BLOCK);
		e->type = BS_JREC_WRITE;
	} else {
		kassert(cur != BS_NONE);
		for (b = 0; b < op->nblk; b++) {
			struct bs_bmeta *m = bs_mc_entry(op, b);

			if (!bs_bmeta_zero(m)) {
				kassert(mapped > 0);
				mapped--;
				bs_bmeta_set(m, 0, 0);
			}
		}
		e->type = BS_JREC_UNMAP;
		if (!mapped) {
			flags |= BS_JREC_F_FREE_SLOT;
			bs_index_remove(bs, op->slot);
			bs_slot_push_free(bs, op->slot);
		}
	}
	for (b = 0; b < op->nmc; b++) {
		bs_mc_mark_dirty(bs, op->mc[b]);
	}
	bs_slot_set(bs, op->slot, op->inode, op->objno, ver, mapped);
	op->version = ver;
	op->jpos = dpos;
	e->flags = (uint16_t)flags;
	e->inode = op->inode;
	e->objno = op->objno;
	e->version = ver;
	e->slot = op->slot;
	e->offset = op->blk * BS_BLOCK;
	e->length = op->nblk * BS_BLOCK;
	e->mapped = mapped;
}

/* Ack (or fail) the records of the oldest batch, which is fully written. */
static void batch_durable(struct bs *bs, struct bs_batch *b)
{
	struct bs_ctx *op = b->head;
	int err = b->err;

	b->head = b->tail = NULL;
	bs->b_first = (bs->b_first + 1) % BS_BATCHES;
	bs->b_count--;
	if (err) {
		bs_fail(bs, err, "journal write");
	} else {
		/* replay stops at the first record that did not make it, so
		 * nothing written after a failed batch may be acked either */
		err = bs->failed;
	}
	while (op) {
		struct bs_ctx *next = op->qnext;

		bs_mc_release(op);
		if (err) {
			if (op->kind == BS_OP_WRITE) {
				op->req->version = op->version;
			}
			bs_op_finish(op, -EIO);
		} else if (op->kind == BS_OP_WRITE) {
			bs->applies++;
			bs_op_ack(op);
			op->state = BS_OPS_APPLY_WAIT;
			bs_kick(op);
			if (op->onext) {
				/* reads waiting for it: the mirror has it now */
				bs_ao_wake(op->ao);
			}
		} else {
			op->req->version = op->version;
			bs_op_finish(op, 0);
		}
		op = next;
	}
	/* Dirty meta blocks stay pinned until a checkpoint: they only threaten
	 * to starve the cache when it cannot hold the whole metadata area. */
	if (bs->jused > bs->jsize / 2 ||
	    (bs->mc_cap < bs->sb.meta_blocks && bs->mc_ndirty > bs->mc_cap / 2) ||
	    bs->nslot_dirty > bs->sb.slot_blocks / 2 + BS_CKPT_WINDOW) {
		bs->ck_want = true;
	}
}

static void batch_step(struct bs_batch *b, int res)
{
	struct bs *bs = b->bs;
	bool acked = false;

	bs_io_done(bs);
	if (res < 0 && !b->err) {
		b->err = res;
	}
	kassert(b->pending > 0);
	if (--b->pending) {
		return;
	}
	b->written = true;
	while (bs->b_count && bs->batch[bs->b_first].written) {
		batch_durable(bs, &bs->batch[bs->b_first]);
		acked = true;
	}
	/* The acks queued their replies for the next reactor turn (the
	 * transport batches sends per turn); run the applies and the next batch
	 * from that turn too, after the replies, so the sendmsgs come first in
	 * the one io_uring_enter that submits them all. */
	if (acked) {
		bs_run_later(bs);
	}
}

static void batch_write_done(struct bs_io *io, int res)
{
	batch_step(container_of(io, struct bs_batch, io), res);
}

static void batch_wrap_done(struct bs_io *io, int res)
{
	batch_step(container_of(io, struct bs_batch, wrap_io), res);
}

static void fail_jqueue(struct bs *bs)
{
	while (bs->jq_head) {
		struct bs_ctx *op = bs->jq_head;

		bs->jq_head = op->qnext;
		bs_mc_release(op);
		bs_op_finish(op, bs->failed);
	}
	bs->jq_tail = NULL;
}

static void write_wrap_marker(struct bs *bs, uint64_t pos, uint64_t seq)
{
	struct bs_jrec *h = (struct bs_jrec *)(bs->jm + pos);

	memset(h, 0, BS_BLOCK);
	h->magic = BS_JREC_MAGIC;
	h->seq = seq;
	h->type = BS_JREC_WRAP;
	bs_jrec_seal(h);
}

/*
 * Start a batch with the queued mutations while fewer than BS_BATCHES are in
 * flight: build them into group records (as many entries as fit one header
 * block each) while they fit contiguously in the ring (a batch never
 * straddles the ring end; a WRAP record sends replay back to offset 0).
 * Batches in flight together are written concurrently and acked in ring
 * order, so an ack never depends on a record after a hole. Returns true if
 * it did work.
 */
bool bs_journal_pump(struct bs *bs)
{
	uint64_t pos = bs->jhead, used = bs->jused, start = bs->jhead, len = 0, wrap_pos = 0;
	struct bs_jgrp *g = NULL;
	bool wrap = false, did = false;
	struct bs_batch *b;
	struct bs_ctx *op;
	int kind;

	if (bs->b_count == BS_BATCHES || !bs->jq_head || bs->ck != BS_CK_IDLE) {
		return false;
	}
	if (bs->failed) {
		fail_jqueue(bs);
		return true;
	}
	if (bs->ck_want) {
		return false;
	}
	b = &bs->batch[(bs->b_first + bs->b_count) % BS_BATCHES];
	kassert(!b->head);
	while ((op = bs->jq_head)) {
		bool new_grp = !g || g->bytes + op_ent_bytes(op) > BS_BLOCK;
		uint64_t dl = op_data_bytes(op), rl = dl + (new_grp ? BS_BLOCK : 0), ver;
		uint32_t cur;

		if (!len && !wrap && rl > ring_contig(bs, pos, used)) {
			if (!ring_can_wrap(bs, pos, used) || rl > bs->jtail) {
				bs->ck_want = true;
				break;
			}
			wrap = true;
			wrap_pos = pos;
			write_wrap_marker(bs, pos, bs->next_seq++);
			bs->st_wraps++;
			used += bs->jsize - pos;
			pos = 0;
			start = 0;
		} else if (rl > ring_contig(bs, pos, used) || len + rl > BS_BATCH_MAX) {
			break;
		}
		bs->jq_head = op->qnext;
		if (!bs->jq_head) {
			bs->jq_tail = NULL;
		}
		cur = bs_index_lookup(bs, op->inode, op->objno);
		if (op_version(bs, op, cur, &ver) < 0) {
			bs_mc_release(op);
			bs_op_finish(op, -ESTALE);
			did = true;
			continue;
		}
		if (new_grp) {
			if (g) {
				grp_seal(g);
			}
			g = grp_open(bs, pos, bs->next_seq++);
			bs->st_groups++;
			pos += BS_BLOCK;
			used += BS_BLOCK;
			len += BS_BLOCK;
		}
		op_build(bs, op, cur, g, pos, ver);
		bs->st_entries++;
		op->state = BS_OPS_JOURNAL;
		op->qnext = NULL;
		if (b->tail) {
			b->tail->qnext = op;
		} else {
			b->head = op;
		}
		b->tail = op;
		pos += dl;
		used += dl;
		len += dl;
		if (pos == bs->jsize) {
			pos = 0;
			break;
		}
	}
	if (g) {
		grp_seal(g);
	}
	if (!len && !wrap) {
		return did;
	}
	bs->jhead = pos;
	bs->jused = used;
	if (++bs->b_count > bs->st_batches_max) {
		bs->st_batches_max = bs->b_count;
	}
	b->bs = bs;
	b->written = false;
	b->err = 0;
	b->pending = (len ? 1 : 0) + (wrap ? 1 : 0);
	/* With a volatile cache each batch is written through (RWF_DSYNC):
	 * durable when it completes, without a flush round trip after it. */
	kind = bs->flush_always ? BS_IO_WRITE_DSYNC : BS_IO_WRITE;
	if (wrap) {
		bs_dev_submit(bs, kind, bs->jm + wrap_pos, BS_BLOCK, bs->sb.journal_off + wrap_pos,
			      &b->wrap_io, batch_wrap_done);
	}
	if (len) {
		bs_dev_submit(bs, kind, bs->jm + start, len, bs->sb.journal_off + start, &b->io,
			      batch_write_done);
	}
	if (bs->flush_always && bs->nheld) {
		/* the journal write reaches the device first (apply_start) */
		bs_dev_kick(bs->dev);
		bs_apply_release(bs);
	}
	return true;
}

/* ---- checkpoint ---- */

static void ck_step(struct bs *bs);

static void ck_done_io(struct bs *bs, int res)
{
	bs_io_done(bs);
	if (res < 0 && !bs->ck_err) {
		bs->ck_err = res;
	}
	kassert(bs->ck_pending > 0);
	bs->ck_pending--;
	ck_step(bs);
	bs_run(bs);
}

static void ck_slot_done(struct bs_io *io, int res)
{
	struct bs_ckio *c = container_of(io, struct bs_ckio, io);
	struct bs *bs = c->bs;

	bs->ck_io_free[bs->ck_nio_free++] = (uint32_t)(c - bs->ck_io);
	ck_done_io(bs, res);
}

static void ck_run_done(struct bs_io *io, int res)
{
	struct bs_ckrun *run = container_of(io, struct bs_ckrun, io);
	struct bs *bs = run->bs;
	uint32_t i;

	/* Only now may the blocks become clean (evictable): a reload before the
	 * write completed would read the old contents. */
	if (res >= 0) {
		for (i = 0; i < run->n; i++) {
			bs_mc_written(bs, bs->ck_mcs[run->first + i]);
		}
	}
	bs->ck_run_free[bs->ck_nrun_free++] = (uint32_t)(run - bs->ck_runs);
	ck_done_io(bs, res);
}

/*
 * Issue meta-block writes up to the window, in block order, each a run of up
 * to BS_CK_RUN_MAX consecutive blocks: the dirty ones plus clean cached
 * blocks between them (their cached image is what is on disk, so rewriting
 * it changes nothing), so a checkpoint of a densely dirty area is a few large
 * sequential writes instead of one random write per block. The blocks are
 * copied: records are not built during a checkpoint, so the copies are the
 * state the jsb will point after.
 */
static void ck_issue_meta(struct bs *bs)
{
	while (bs->ck_nrun_free && bs->ck_mpos < bs->ck_nmc) {
		struct bs_ckrun *run = &bs->ck_runs[bs->ck_run_free[--bs->ck_nrun_free]];
		uint64_t first = bs->ck_mcs[bs->ck_mpos]->blkno;
		uint32_t len = 0, j = bs->ck_mpos;

		while (len < BS_CK_RUN_MAX) {
			uint64_t b = first + len;
			const struct bs_mc *mc = NULL;

			if (j < bs->ck_nmc && bs->ck_mcs[j]->blkno == b) {
				mc = bs->ck_mcs[j++];
			} else if (j < bs->ck_nmc && bs->ck_mcs[j]->blkno < first + BS_CK_RUN_MAX) {
				mc = bs_mc_lookup(bs, b);
				if (mc && (mc->state != BS_MC_VALID || mc->dirty)) {
					mc = NULL;
				}
			}
			if (!mc) {
				break;
			}
			memcpy(run->buf + (size_t)len * BS_BLOCK, mc->ent, BS_BLOCK);
			len++;
		}
		/* trailing clean blocks: only when the next dirty one did not fit */
		while (bs->ck_mcs[j - 1]->blkno != first + len - 1) {
			len--;
		}
		run->first = bs->ck_mpos;
		run->n = j - bs->ck_mpos;
		bs->ck_mpos = j;
		bs->ck_pending++;
		bs_dev_submit(bs, BS_IO_WRITE, run->buf, (size_t)len * BS_BLOCK,
			      bs->sb.meta_off + first * BS_BLOCK, &run->io, ck_run_done);
	}
}

static int ck_mc_cmp(const void *a, const void *b)
{
	const struct bs_mc *x = *(struct bs_mc *const *)a, *y = *(struct bs_mc *const *)b;

	return x->blkno < y->blkno ? -1 : x->blkno > y->blkno;
}

static void ck_flush_done(struct bs_io *io, int res)
{
	ck_done_io(container_of(io, struct bs, ck_flush_io), res);
}

static void ck_jsb_done(struct bs_io *io, int res)
{
	ck_done_io(container_of(io, struct bs, ck_jsb_io), res);
}

/* Issue slot-table block writes up to the window. */
static void ck_issue_slots(struct bs *bs)
{
	while (bs->ck_nio_free && bs->ck_cursor < bs->sb.slot_blocks) {
		uint64_t b = bs->ck_cursor++;
		struct bs_ckio *c;

		if (!bs->slot_dirty[b]) {
			continue;
		}
		bs->slot_dirty[b] = 0;
		bs->nslot_dirty--;
		c = &bs->ck_io[bs->ck_io_free[--bs->ck_nio_free]];
		bs->ck_pending++;
		bs_dev_submit(bs, BS_IO_WRITE, (uint8_t *)bs->slots + b * BS_BLOCK, BS_BLOCK,
			      bs->sb.slot_off + b * BS_BLOCK, &c->io, ck_slot_done);
	}
}

static void ck_finish(struct bs *bs)
{
	bs->ck = BS_CK_IDLE;
	if (bs->ck_err) {
		bs_fail(bs, bs->ck_err, "checkpoint");
		return;
	}
	bs->jtail = bs->jhead = bs->ck_tail;
	bs->jused = 0;
	bs->tail_seq = bs->ck_seq;
	bs->ck_want = false;
	bs->ck_count++;
	log_debug("bs: checkpoint %lu: tail %lu seq %lu", (unsigned long)bs->ck_count,
		  (unsigned long)bs->ck_tail, (unsigned long)bs->ck_seq);
}

static void ck_step(struct bs *bs)
{
	struct bs_jsb *j;

	if (bs->ck == BS_CK_WRITE) {
		if (!bs->ck_err) {
			ck_issue_meta(bs);
			ck_issue_slots(bs);
		}
		if (bs->ck_pending) {
			return;
		}
		if (bs->ck_err) {
			ck_finish(bs);
			return;
		}
		bs->ck = BS_CK_FLUSH1;
		if (bs->flush_always) {
			bs->ck_pending++;
			bs_dev_submit(bs, BS_IO_FLUSH, NULL, 0, 0, &bs->ck_flush_io, ck_flush_done);
			return;
		}
	}
	if (bs->ck == BS_CK_FLUSH1) {
		if (bs->ck_pending) {
			return;
		}
		if (bs->ck_err) {
			ck_finish(bs);
			return;
		}
		bs->ck = BS_CK_JSB;
		j = bs->ck_jsb_buf;
		memset(j, 0, BS_BLOCK);
		j->magic = BS_JSB_MAGIC;
		j->gen = ++bs->jsb_gen;
		j->tail_pos = bs->ck_tail;
		j->tail_seq = bs->ck_seq;
		j->crc = crc32c(0, j, offsetof(struct bs_jsb, crc));
		bs->ck_pending++;
		bs_dev_submit(bs, BS_IO_WRITE, j, BS_BLOCK,
			      bs->sb.jsb_off + (j->gen & 1) * BS_BLOCK, &bs->ck_jsb_io,
			      ck_jsb_done);
		return;
	}
	if (bs->ck == BS_CK_JSB) {
		if (bs->ck_pending) {
			return;
		}
		if (bs->ck_err) {
			ck_finish(bs);
			return;
		}
		bs->ck = BS_CK_FLUSH2;
		if (bs->flush_always) {
			bs->ck_pending++;
			bs_dev_submit(bs, BS_IO_FLUSH, NULL, 0, 0, &bs->ck_flush_io, ck_flush_done);
			return;
		}
	}
	if (bs->ck == BS_CK_FLUSH2 && !bs->ck_pending) {
		ck_finish(bs);
	}
}

/*
 * Start a checkpoint once one is wanted and the journal is quiet: no batch
 * in flight and every acknowledged write applied in place. The new tail is
 * the head, or offset 0 when the largest record would fit neither after the
 * head nor before it.
 */
bool bs_ckpt_pump(struct bs *bs)
{
	uint64_t i;

	if (bs->ck_want && bs->nheld) {
		bs_apply_release(bs); /* the checkpoint waits for every apply */
	}
	if (bs->ck != BS_CK_IDLE || !bs->ck_want || bs->b_count || bs->applies || bs->failed) {
		return false;
	}
	bs->ck = BS_CK_WRITE;
	bs->ck_err = 0;
	bs->ck_pending = 0;
	bs->ck_cursor = 0;
	bs->ck_seq = bs->next_seq;
	bs->ck_tail = bs->jhead;
	if (bs->jsize - bs->jhead < BS_REC_MAX && bs->jhead < BS_REC_MAX) {
		bs->ck_tail = 0;
	}
	bs->ck_nio_free = BS_CKPT_WINDOW;
	for (i = 0; i < BS_CKPT_WINDOW; i++) {
		bs->ck_io[i].bs = bs;
		bs->ck_io_free[i] = (uint32_t)i;
	}
	bs->ck_nrun_free = BS_CK_RUNS;
	for (i = 0; i < BS_CK_RUNS; i++) {
		bs->ck_runs[i].bs = bs;
		bs->ck_runs[i].buf = bs->ck_stage + i * BS_CK_RUN_MAX * BS_BLOCK;
		bs->ck_run_free[i] = (uint32_t)i;
	}
	bs->ck_nmc = 0;
	bs->ck_mpos = 0;
	while (bs->mc_dirty) {
		struct bs_mc *mc = bs->mc_dirty;

		bs->mc_dirty = mc->dnext;
		bs->mc_ndirty--;
		kassert(bs->ck_nmc < bs->mc_cap);
		bs->ck_mcs[bs->ck_nmc++] = mc;
	}
	qsort(bs->ck_mcs, bs->ck_nmc, sizeof(*bs->ck_mcs), ck_mc_cmp);
	ck_step(bs);
	return true;
}
