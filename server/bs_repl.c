/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs_repl: blockstore support for replication and recovery (bs.h,
 * "replication support"). Built on the public request path plus read-only
 * use of the internals in bs_int.h; no journal record type of its own.
 *
 * Exact versions for pushes: the core only journals WRITE/UNMAP records
 * whose block versions equal the new object version and must exceed the
 * current one. A push therefore journals its data under a temporary version
 * (>= BS_VER_TEMP_BASE, never assigned by a primary) and, in the completion
 * callback, rewrites the block and slot versions in RAM. The callback runs
 * from batch_durable(): the batch's meta blocks are dirty (so cached and
 * pinned) and no checkpoint can be running (the journal pump only starts
 * batches when the checkpoint is idle), so the next checkpoint persists
 * the exact versions. A crash before that replays the temporary versions:
 * the data is right, the versions differ from the primary's, and the next
 * recovery pushes the blocks again.
 *
 * The object version is set only once the push's last run is durable, and
 * only when obj_version != 0: a primary pushing an object in several
 * REPLICA_PUSH messages sends 0 in all but the last, so a push cut short
 * (primary or member crash, map change) leaves a temporary object version,
 * which recovery's listing sees as different. Equal object versions thus
 * keep meaning equal contents.
 */
#include <errno.h>
#include <string.h>

#include "common/crc.h"
#include "common/log.h"
#include "server/bs_int.h"

void bs_uuid(const struct bs *bs, uint8_t out[16])
{
	memcpy(out, bs->sb.uuid, 16);
}

static int key_cmp(uint64_t ai, uint64_t ao, uint64_t bi, uint64_t bo)
{
	if (ai != bi) {
		return ai < bi ? -1 : 1;
	}
	if (ao != bo) {
		return ao < bo ? -1 : 1;
	}
	return 0;
}

unsigned int bs_list_match(struct bs *bs, bool (*match)(uint64_t inode, uint64_t objno, void *arg),
			   void *arg, bool *first, uint64_t *cursor_inode, uint64_t *cursor_objno,
			   struct bs_obj_stat *out, unsigned int max)
{
	unsigned int n = 0, lo, hi, mid;
	uint32_t i;

	if (!max) {
		return 0;
	}
	for (i = 0; i < bs->nslots; i++) {
		const struct bs_slot *s = &bs->slots[i];

		if (!s->mapped || bs_index_lookup(bs, s->inode, s->objno) != i) {
			continue;
		}
		if (!*first && key_cmp(s->inode, s->objno, *cursor_inode, *cursor_objno) <= 0) {
			continue;
		}
		if (n == max &&
		    key_cmp(s->inode, s->objno, out[n - 1].inode, out[n - 1].objno) >= 0) {
			continue;
		}
		if (!match(s->inode, s->objno, arg)) {
			continue;
		}
		lo = 0;
		hi = n;
		while (lo < hi) {
			mid = (lo + hi) / 2;
			if (key_cmp(out[mid].inode, out[mid].objno, s->inode, s->objno) < 0) {
				lo = mid + 1;
			} else {
				hi = mid;
			}
		}
		if (n == max) {
			n--;
		}
		memmove(&out[lo + 1], &out[lo], (n - lo) * sizeof(*out));
		out[lo].inode = s->inode;
		out[lo].objno = s->objno;
		out[lo].version = s->version;
		out[lo].blocks_mapped = s->mapped;
		n++;
	}
	if (n) {
		*first = false;
		*cursor_inode = out[n - 1].inode;
		*cursor_objno = out[n - 1].objno;
	}
	return n;
}

void bs_walk(struct bs *bs, void (*fn)(const struct bs_obj_stat *st, void *arg), void *arg)
{
	struct bs_obj_stat st;
	uint32_t b, i;

	for (b = 0; b <= bs->hmask; b++) {
		for (i = bs->hbuckets[b]; i != BS_NONE; i = bs->hnext[i]) {
			const struct bs_slot *s = &bs->slots[i];

			st.inode = s->inode;
			st.objno = s->objno;
			st.version = s->version;
			st.blocks_mapped = s->mapped;
			fn(&st, arg);
		}
	}
}

/* ---- per-block versions ---- */

static void bvers_step(struct bs_bvers_req *req);

/* Copy the entries of meta block @blkno (from @ent) that belong to the object. */
static int bvers_take(struct bs_bvers_req *req, uint64_t blkno, const struct bs_bmeta *ent)
{
	struct bs *bs = req->bs;
	uint64_t base = (uint64_t)req->slot * bs->bpo;

	while (req->next_blk < bs->bpo) {
		uint64_t idx = base + req->next_blk;
		const struct bs_bmeta *e;

		if (idx / BS_BMETA_PER_BLOCK != blkno) {
			break;
		}
		e = &ent[idx % BS_BMETA_PER_BLOCK];
		if (bs_bmeta_zero(e)) {
			req->versions[req->next_blk] = 0;
		} else if (!bs_bmeta_valid(e)) {
			log_error("bs: corrupt block metadata for %lu:%lu block %u",
				  (unsigned long)req->inode, (unsigned long)req->objno,
				  req->next_blk);
			bs->st_crc_errors++;
			return -EIO;
		} else {
			req->versions[req->next_blk] = e->version;
		}
		req->next_blk++;
	}
	return 0;
}

static void bvers_io_done(struct bs_io *io, int res)
{
	struct bs_bvers_req *req = container_of(io, struct bs_bvers_req, io);
	struct bs *bs = req->bs;
	uint64_t blkno = ((uint64_t)req->slot * bs->bpo + req->next_blk) / BS_BMETA_PER_BLOCK;
	struct bs_mc *mc;

	bs_io_done(bs);
	if (res < 0) {
		req->cb(req, -EIO);
		return;
	}
	/* Entries of this object only change through ops on it, which the
	 * caller keeps out; a dirty cached copy is newer than the disk. */
	mc = bs_mc_lookup(bs, blkno);
	if (mc && mc->state == BS_MC_VALID) {
		res = bvers_take(req, blkno, mc->ent);
	} else {
		res = bvers_take(req, blkno, req->buf);
	}
	if (res) {
		req->cb(req, res);
		return;
	}
	bvers_step(req);
}

static void bvers_step(struct bs_bvers_req *req)
{
	struct bs *bs = req->bs;

	while (req->next_blk < bs->bpo) {
		uint64_t blkno =
			((uint64_t)req->slot * bs->bpo + req->next_blk) / BS_BMETA_PER_BLOCK;
		struct bs_mc *mc = bs_mc_lookup(bs, blkno);
		int ret;

		if (!mc || mc->state != BS_MC_VALID) {
			/* Not cached (or being loaded): the disk copy is current. */
			bs_dev_submit(bs, BS_IO_READ, req->buf, BS_BLOCK,
				      bs->sb.meta_off + blkno * BS_BLOCK, &req->io, bvers_io_done);
			return;
		}
		ret = bvers_take(req, blkno, mc->ent);
		if (ret) {
			req->cb(req, ret);
			return;
		}
	}
	req->cb(req, 0);
}

/* Deferred start, so the callback never runs inside the caller's stack. */
static void bvers_start(struct reactor_defer *d)
{
	struct bs_bvers_req *req = container_of(d, struct bs_bvers_req, defer);
	struct bs *bs = req->bs;
	uint32_t slot = bs_index_lookup(bs, req->inode, req->objno);

	req->next_blk = 0;
	if (slot == BS_NONE) {
		memset(req->versions, 0, (size_t)bs->bpo * sizeof(uint64_t));
		req->obj_version = 0;
		req->cb(req, 0);
		return;
	}
	req->slot = slot;
	req->obj_version = bs->slots[slot].version;
	bvers_step(req);
}

int bs_block_versions(struct bs *bs, struct bs_bvers_req *req)
{
	if (!req || !req->versions || !req->buf || !req->cb || ((uintptr_t)req->buf % BS_BLOCK)) {
		return -EINVAL;
	}
	if (bs->bpo > BS_BVERS_MAX_BLOCKS) {
		return -EINVAL;
	}
	if (bs->failed) {
		return bs->failed;
	}
	req->bs = bs;
	req->defer.fn = bvers_start;
	reactor_defer(bs->r, &req->defer);
	return 0;
}

/* ---- push ---- */

static void push_next(struct bs_push_req *req);

static void push_finish(struct reactor_defer *d)
{
	struct bs_push_req *req = container_of(d, struct bs_push_req, defer);

	req->cb(req, req->res);
}

/* Set the exact versions of the run just made durable (see the top). */
static void push_patch(struct bs_push_req *req)
{
	struct bs *bs = req->bs;
	uint32_t slot = bs_index_lookup(bs, req->inode, req->objno);
	uint32_t b;

	if (slot == BS_NONE) {
		return; /* the run freed the object */
	}
	if (req->run_mapped) {
		for (b = 0; b < req->run_nblk; b++) {
			uint64_t idx = (uint64_t)slot * bs->bpo + req->offset / BS_BLOCK +
				       req->run_blk + b;
			struct bs_mc *mc = bs_mc_lookup(bs, idx / BS_BMETA_PER_BLOCK);
			struct bs_bmeta *e;

			if (!mc || mc->state != BS_MC_VALID || !mc->dirty) {
				/* Cannot happen (see the top); the temporary
				 * version stays, which only costs a re-push. */
				log_warn("bs: push of %lu:%lu: meta block not cached",
					 (unsigned long)req->inode, (unsigned long)req->objno);
				continue;
			}
			e = &mc->ent[idx % BS_BMETA_PER_BLOCK];
			bs_bmeta_set(e, req->versions[req->run_blk + b], e->data_crc);
		}
	}
	/* The object version stays temporary until the whole push is durable
	 * (push_next): an object version equal to the primary's must mean
	 * every block is the primary's, also after a crash that follows a
	 * checkpoint taken between two runs. */
}

/* The last run is durable: set the object version (0: the sender has more
 * runs of this object to push, keep the temporary one). Same context as
 * push_patch() (batch_durable(), or the deferred start). */
static void push_set_objver(struct bs_push_req *req)
{
	struct bs *bs = req->bs;
	uint32_t slot = bs_index_lookup(bs, req->inode, req->objno);

	if (slot == BS_NONE || !req->obj_version) {
		return;
	}
	bs_slot_set(bs, slot, req->inode, req->objno, req->obj_version, bs->slots[slot].mapped);
}

static void push_sub_done(struct bs_req *sub, int res)
{
	struct bs_push_req *req = sub->arg;

	if (res < 0) {
		req->res = res;
		req->cb(req, res);
		return;
	}
	push_patch(req);
	req->pos = req->run_blk + req->run_nblk;
	push_next(req);
}

static void push_next(struct bs_push_req *req)
{
	struct bs *bs = req->bs;
	uint32_t nblk = req->length / BS_BLOCK, start = req->pos, end;
	uint64_t curver;
	struct bs_req *sub = &req->sub;
	uint32_t slot;
	bool mapped;
	int ret;

	if (start >= nblk) {
		push_set_objver(req);
		req->cb(req, 0);
		return;
	}
	mapped = req->versions[start] != 0;
	end = start + 1;
	while (end < nblk && (req->versions[end] != 0) == mapped &&
	       (end - start) < BS_MAX_IO / BS_BLOCK) {
		end++;
	}
	req->run_blk = start;
	req->run_nblk = end - start;
	req->run_mapped = mapped;
	slot = bs_index_lookup(bs, req->inode, req->objno);
	if (!mapped && slot == BS_NONE) {
		/* nothing to unmap in an absent object */
		req->pos = end;
		push_next(req);
		return;
	}
	memset(sub, 0, sizeof(*sub));
	sub->op = mapped ? BS_OP_WRITE : BS_OP_DISCARD;
	sub->inode = req->inode;
	sub->objno = req->objno;
	sub->offset = req->offset + start * BS_BLOCK;
	sub->length = req->run_nblk * BS_BLOCK;
	if (mapped) {
		sub->buf = (uint8_t *)req->buf + (size_t)start * BS_BLOCK;
		sub->crcs = req->crcs + start;
	}
	curver = slot == BS_NONE ? 0 : bs->slots[slot].version;
	sub->version = (curver >= BS_VER_TEMP_BASE ? curver : BS_VER_TEMP_BASE) + 1;
	sub->cb = push_sub_done;
	sub->arg = req;
	ret = bs_submit(bs, sub);
	if (ret < 0) {
		req->res = ret;
		req->defer.fn = push_finish;
		reactor_defer(bs->r, &req->defer);
	}
}

static void push_start(struct reactor_defer *d)
{
	push_next(container_of(d, struct bs_push_req, defer));
}

int bs_push(struct bs *bs, struct bs_push_req *req)
{
	uint32_t b, nblk;
	bool any_mapped = false;

	if (!req || !req->cb || !req->versions || req->offset % BS_BLOCK ||
	    req->length % BS_BLOCK || !req->length) {
		return -EINVAL;
	}
	if ((uint64_t)req->offset + req->length > bs->sb.object_size) {
		return -ERANGE;
	}
	nblk = req->length / BS_BLOCK;
	for (b = 0; b < nblk; b++) {
		if (req->versions[b] >= BS_VER_TEMP_BASE) {
			return -EINVAL;
		}
		any_mapped |= req->versions[b] != 0;
	}
	if (any_mapped && (!req->buf || !req->crcs || ((uintptr_t)req->buf % BS_BLOCK))) {
		return -EINVAL;
	}
	if (any_mapped) {
		for (b = 0; b < nblk; b++) {
			if (req->versions[b] &&
			    crc32c(0, (uint8_t *)req->buf + (size_t)b * BS_BLOCK, BS_BLOCK) !=
				    req->crcs[b]) {
				return -EBADMSG;
			}
		}
	}
	if (req->obj_version >= BS_VER_TEMP_BASE) {
		return -EINVAL;
	}
	if (bs->failed) {
		return bs->failed;
	}
	req->bs = bs;
	req->pos = 0;
	req->res = 0;
	req->defer.fn = push_start;
	reactor_defer(bs->r, &req->defer);
	return 0;
}
