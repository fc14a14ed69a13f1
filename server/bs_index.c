/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-memory index (slot table image, object -> slot hash, free-slot
 * stack) and the LRU cache of block-metadata blocks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/log.h"
#include "server/bs_int.h"

static uint32_t key_hash(uint64_t inode, uint64_t objno)
{
	uint64_t h = inode * 0x9e3779b97f4a7c15ull ^ (objno + 0x632be59bd9b4e019ull);

	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return (uint32_t)h;
}

static void slot_seal(struct bs_slot *s)
{
	s->crc = crc32c(0, s, offsetof(struct bs_slot, crc));
}

bool bs_slot_entry_valid(const struct bs_slot *s, uint32_t bpo)
{
	return s->mapped > 0 && s->mapped <= bpo &&
	       s->crc == crc32c(0, s, offsetof(struct bs_slot, crc));
}

static void slot_mark_dirty(struct bs *bs, uint32_t slot)
{
	uint32_t blk = slot / BS_SLOTS_PER_BLOCK;

	if (!bs->slot_dirty[blk]) {
		bs->slot_dirty[blk] = 1;
		bs->nslot_dirty++;
	}
}

void bs_slot_set(struct bs *bs, uint32_t slot, uint64_t inode, uint64_t objno, uint64_t version,
		 uint32_t mapped)
{
	struct bs_slot *s = &bs->slots[slot];

	if (!mapped) {
		memset(s, 0, sizeof(*s));
	} else {
		s->inode = inode;
		s->objno = objno;
		s->version = version;
		s->mapped = mapped;
		slot_seal(s);
	}
	slot_mark_dirty(bs, slot);
}

uint32_t bs_index_lookup(const struct bs *bs, uint64_t inode, uint64_t objno)
{
	uint32_t i = bs->hbuckets[key_hash(inode, objno) & bs->hmask];

	while (i != BS_NONE) {
		if (bs->slots[i].inode == inode && bs->slots[i].objno == objno) {
			return i;
		}
		i = bs->hnext[i];
	}
	return BS_NONE;
}

void bs_index_insert(struct bs *bs, uint32_t slot)
{
	uint32_t b = key_hash(bs->slots[slot].inode, bs->slots[slot].objno) & bs->hmask;

	bs->hnext[slot] = bs->hbuckets[b];
	bs->hbuckets[b] = slot;
	bs->used_slots++;
}

void bs_index_remove(struct bs *bs, uint32_t slot)
{
	uint32_t b = key_hash(bs->slots[slot].inode, bs->slots[slot].objno) & bs->hmask;
	uint32_t *p = &bs->hbuckets[b];

	while (*p != BS_NONE) {
		if (*p == slot) {
			*p = bs->hnext[slot];
			bs->hnext[slot] = BS_NONE;
			bs->used_slots--;
			return;
		}
		p = &bs->hnext[*p];
	}
	log_fatal("bs: slot %u not in the index", slot);
}

uint32_t bs_slot_pop_free(struct bs *bs)
{
	if (!bs->nfree) {
		return BS_NONE;
	}
	return bs->freestk[--bs->nfree];
}

void bs_slot_push_free(struct bs *bs, uint32_t slot)
{
	kassert(bs->nfree < bs->nslots);
	bs->freestk[bs->nfree++] = slot;
}

/*
 * Rebuild the hash and the free stack from the slot table image (after
 * load and replay). An entry that fails its check is quarantined: neither
 * free nor indexed, so its space is never handed out again.
 */
int bs_index_build(struct bs *bs)
{
	uint32_t i;

	for (i = 0; i <= bs->hmask; i++) {
		bs->hbuckets[i] = BS_NONE;
	}
	bs->nfree = 0;
	bs->used_slots = 0;
	bs->bad_slots = 0;
	for (i = bs->nslots; i-- > 0;) {
		struct bs_slot *s = &bs->slots[i];
		static const struct bs_slot zero;

		bs->hnext[i] = BS_NONE;
		if (!memcmp(s, &zero, sizeof(zero))) {
			bs->freestk[bs->nfree++] = i;
			continue;
		}
		if (!bs_slot_entry_valid(s, bs->bpo)) {
			log_error("bs: slot table entry %u is corrupt; quarantined", i);
			bs->bad_slots++;
			continue;
		}
		if (bs_index_lookup(bs, s->inode, s->objno) != BS_NONE) {
			log_error("bs: object %lu:%lu in two slots (%u); quarantined",
				  (unsigned long)s->inode, (unsigned long)s->objno, i);
			bs->bad_slots++;
			continue;
		}
		bs_index_insert(bs, i);
	}
	return 0;
}

/* ---- block metadata entries ---- */

bool bs_bmeta_zero(const struct bs_bmeta *e)
{
	return !e->version && !e->data_crc && !e->crc;
}

bool bs_bmeta_valid(const struct bs_bmeta *e)
{
	return bs_bmeta_zero(e) ||
	       (e->version && e->crc == crc32c(0, e, offsetof(struct bs_bmeta, crc)));
}

void bs_bmeta_set(struct bs_bmeta *e, uint64_t version, uint32_t data_crc)
{
	if (!version) {
		memset(e, 0, sizeof(*e));
		return;
	}
	e->version = version;
	e->data_crc = data_crc;
	e->crc = crc32c(0, e, offsetof(struct bs_bmeta, crc));
}

/* ---- meta cache ---- */

static void lru_del(struct bs *bs, struct bs_mc *mc)
{
	if (!mc->on_lru) {
		return;
	}
	mc->prev->next = mc->next;
	mc->next->prev = mc->prev;
	mc->on_lru = false;
	bs->mc_nlru--;
}

static void lru_add(struct bs *bs, struct bs_mc *mc)
{
	kassert(!mc->on_lru && !mc->pin && !mc->dirty && mc->state == BS_MC_VALID);
	mc->next = bs->lru.next;
	mc->prev = &bs->lru;
	bs->lru.next->prev = mc;
	bs->lru.next = mc;
	mc->on_lru = true;
	bs->mc_nlru++;
}

static void hash_del(struct bs *bs, struct bs_mc *mc)
{
	struct bs_mc **p = &bs->mc_hash[mc->blkno & bs->mc_hmask];

	if (!mc->hashed) {
		return;
	}
	while (*p != mc) {
		p = &(*p)->hnext;
	}
	*p = mc->hnext;
	mc->hashed = false;
}

static void free_push(struct bs *bs, struct bs_mc *mc)
{
	mc->state = BS_MC_FREE;
	mc->next = bs->mc_free;
	bs->mc_free = mc;
	bs->mc_nfree++;
}

int bs_mc_init(struct bs *bs, uint32_t cap)
{
	uint32_t i, hs = 1;

	bs->mc_cap = cap;
	bs->mcs = calloc(cap, sizeof(*bs->mcs));
	if (!bs->mcs) {
		return -ENOMEM;
	}
	if (posix_memalign((void **)&bs->mc_bufs, BS_BLOCK, (size_t)cap * BS_BLOCK)) {
		goto out_free_mcs;
	}
	while (hs < cap) {
		hs <<= 1;
	}
	bs->mc_hash = calloc(hs, sizeof(*bs->mc_hash));
	if (!bs->mc_hash) {
		goto out_free_bufs;
	}
	bs->mc_hmask = hs - 1;
	bs->lru.next = bs->lru.prev = &bs->lru;
	for (i = cap; i-- > 0;) {
		struct bs_mc *mc = &bs->mcs[i];

		mc->bs = bs;
		mc->ent = (struct bs_bmeta *)(bs->mc_bufs + (size_t)i * BS_BLOCK);
		free_push(bs, mc);
	}
	return 0;

out_free_bufs:
	free(bs->mc_bufs);
out_free_mcs:
	free(bs->mcs);
	return -ENOMEM;
}

void bs_mc_destroy(struct bs *bs)
{
	free(bs->mc_hash);
	free(bs->mc_bufs);
	free(bs->mcs);
}

struct bs_mc *bs_mc_lookup(struct bs *bs, uint64_t blkno)
{
	struct bs_mc *mc = bs->mc_hash[blkno & bs->mc_hmask];

	while (mc && mc->blkno != blkno) {
		mc = mc->hnext;
	}
	return mc;
}

/* A free entry, evicting the least recently used clean block if needed. */
static struct bs_mc *mc_take(struct bs *bs, uint64_t blkno)
{
	struct bs_mc *mc = bs->mc_free;

	if (mc) {
		bs->mc_free = mc->next;
		bs->mc_nfree--;
	} else {
		mc = bs->lru.prev;
		kassert(mc != &bs->lru);
		lru_del(bs, mc);
		hash_del(bs, mc);
	}
	mc->blkno = blkno;
	mc->pin = 0;
	mc->dirty = false;
	mc->waiters = NULL;
	mc->hnext = bs->mc_hash[blkno & bs->mc_hmask];
	bs->mc_hash[blkno & bs->mc_hmask] = mc;
	mc->hashed = true;
	return mc;
}

static void mc_load_done(struct bs_io *io, int res)
{
	struct bs_mc *mc = container_of(io, struct bs_mc, io);
	struct bs *bs = mc->bs;
	struct bs_mwait *w = mc->waiters;

	bs_io_done(bs);
	mc->waiters = NULL;
	if (res < 0) {
		log_error("bs: meta block %lu read failed: %d", (unsigned long)mc->blkno, res);
		hash_del(bs, mc);
		mc->state = BS_MC_FREE; /* goes to the free list when unpinned */
	} else {
		mc->state = BS_MC_VALID;
	}
	while (w) {
		struct bs_mwait *next = w->next;

		if (res < 0) {
			w->op->res = -EIO;
		}
		kassert(w->op->pending > 0);
		w->op->pending--;
		bs_kick(w->op);
		w = next;
	}
	bs_run(bs);
}

static void mc_blocks(const struct bs_ctx *op, uint64_t *first, uint64_t *last)
{
	uint64_t idx = (uint64_t)op->slot * op->bs->bpo + op->blk;

	*first = idx / BS_BMETA_PER_BLOCK;
	*last = (idx + op->nblk - 1) / BS_BMETA_PER_BLOCK;
}

static void mc_pin(struct bs_ctx *op, struct bs_mc *mc)
{
	lru_del(op->bs, mc);
	mc->pin++;
	op->mc[op->nmc] = mc;
	if (mc->state == BS_MC_LOADING) {
		struct bs_mwait *w = &op->mw[op->nmc];

		w->op = op;
		w->next = mc->waiters;
		mc->waiters = w;
		op->pending++;
	}
	op->nmc++;
}

/*
 * Pin every meta block of @op's extent, all or nothing (so ops can never
 * deadlock holding part of what they need). Loads start for blocks not in
 * the cache; op->pending counts them. -EAGAIN: not enough evictable
 * entries; the op is queued and kicked when entries are released.
 */
int bs_mc_acquire(struct bs_ctx *op)
{
	struct bs *bs = op->bs;
	uint64_t first, last, b;
	uint32_t need = 0;

	mc_blocks(op, &first, &last);
	kassert(last - first < 2);
	/* pin the cached blocks first, so taking entries for the missing ones
	 * cannot evict them */
	op->nmc = 0;
	for (b = first; b <= last; b++) {
		struct bs_mc *mc = bs_mc_lookup(bs, b);

		if (mc) {
			mc_pin(op, mc);
		} else {
			need++;
		}
	}
	if (need > bs->mc_nfree + bs->mc_nlru) {
		uint8_t i;

		/* give back without waking anyone: nothing became free */
		for (i = 0; i < op->nmc; i++) {
			struct bs_mc *mc = op->mc[i];

			mc->pin--;
			if (mc->state == BS_MC_LOADING) {
				struct bs_mwait **p = &mc->waiters;

				while (*p != &op->mw[i]) {
					p = &(*p)->next;
				}
				*p = op->mw[i].next;
				op->pending--;
			} else if (!mc->pin && !mc->dirty && mc->state == BS_MC_VALID) {
				lru_add(bs, mc);
			}
		}
		op->nmc = 0;
		op->qnext = NULL;
		if (bs->mwait_tail) {
			bs->mwait_tail->qnext = op;
		} else {
			bs->mwait_head = op;
		}
		bs->mwait_tail = op;
		if (bs->mc_ndirty) {
			bs->ck_want = true;
		}
		return -EAGAIN;
	}
	for (b = first; b <= last; b++) {
		struct bs_mc *mc;

		if (bs_mc_lookup(bs, b)) {
			continue;
		}
		mc = mc_take(bs, b);
		mc->state = BS_MC_LOADING;
		mc_pin(op, mc);
		bs_dev_submit(bs, BS_IO_READ, mc->ent, BS_BLOCK, bs->sb.meta_off + b * BS_BLOCK,
			      &mc->io, mc_load_done);
	}
	return 0;
}

static void mc_unpinned(struct bs *bs, struct bs_mc *mc)
{
	if (mc->pin || mc->dirty) {
		return;
	}
	if (mc->state == BS_MC_VALID) {
		lru_add(bs, mc);
	} else if (mc->state == BS_MC_FREE) {
		free_push(bs, mc);
	}
	/* wake ops waiting for cache entries */
	while (bs->mwait_head) {
		struct bs_ctx *op = bs->mwait_head;

		bs->mwait_head = op->qnext;
		if (!bs->mwait_head) {
			bs->mwait_tail = NULL;
		}
		bs_kick(op);
	}
}

void bs_mc_release(struct bs_ctx *op)
{
	uint8_t i;

	for (i = 0; i < op->nmc; i++) {
		struct bs_mc *mc = op->mc[i];

		kassert(mc->pin > 0);
		mc->pin--;
		mc_unpinned(op->bs, mc);
	}
	op->nmc = 0;
}

struct bs_bmeta *bs_mc_entry(struct bs_ctx *op, uint32_t b)
{
	uint64_t idx = (uint64_t)op->slot * op->bs->bpo + op->blk + b;
	uint64_t blkno = idx / BS_BMETA_PER_BLOCK;
	uint8_t i;

	for (i = 0; i < op->nmc; i++) {
		if (op->mc[i]->blkno == blkno) {
			return &op->mc[i]->ent[idx % BS_BMETA_PER_BLOCK];
		}
	}
	log_fatal("bs: meta block %lu not pinned", (unsigned long)blkno);
}

void bs_mc_mark_dirty(struct bs *bs, struct bs_mc *mc)
{
	if (mc->dirty) {
		return;
	}
	lru_del(bs, mc);
	mc->dirty = true;
	mc->dnext = bs->mc_dirty;
	bs->mc_dirty = mc;
	bs->mc_ndirty++;
}

/* A checkpoint wrote @mc (already unlinked from the dirty list). */
void bs_mc_written(struct bs *bs, struct bs_mc *mc)
{
	mc->dirty = false;
	mc_unpinned(bs, mc);
}

/* Recovery only: the block, loaded synchronously; when the cache is full of
 * dirty blocks they are written back first (safe: see the format doc). */
struct bs_mc *bs_mc_get_sync(struct bs *bs, uint64_t blkno, int *err)
{
	struct bs_mc *mc = bs_mc_lookup(bs, blkno);
	int ret;

	*err = 0;
	if (mc) {
		return mc;
	}
	if (!bs->mc_nfree && !bs->mc_nlru) {
		while (bs->mc_dirty) {
			mc = bs->mc_dirty;
			ret = bs_sync_io(bs->dev, BS_IO_WRITE, mc->ent, BS_BLOCK,
					 bs->sb.meta_off + mc->blkno * BS_BLOCK);
			if (ret < 0) {
				*err = ret;
				return NULL;
			}
			bs->mc_dirty = mc->dnext;
			bs->mc_ndirty--;
			bs_mc_written(bs, mc);
		}
	}
	mc = mc_take(bs, blkno);
	ret = bs_sync_io(bs->dev, BS_IO_READ, mc->ent, BS_BLOCK,
			 bs->sb.meta_off + blkno * BS_BLOCK);
	if (ret < 0) {
		hash_del(bs, mc);
		free_push(bs, mc);
		*err = ret;
		return NULL;
	}
	mc->state = BS_MC_VALID;
	lru_add(bs, mc);
	return mc;
}
