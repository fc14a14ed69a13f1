/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Format, open (superblock, slot table, journal replay = recovery), close
 * and abandon. These run synchronously by driving the device's reactor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/crc.h"
#include "common/log.h"
#include "server/bs_int.h"
#include "server/bs_test.h"

#define BS_FMT_CHUNK (1u << 20)

struct bs_sync {
	struct bs_io io;
	int res;
	bool done;
};

static void sync_cb(struct bs_io *io, int res)
{
	struct bs_sync *s = container_of(io, struct bs_sync, io);

	s->res = res;
	s->done = true;
}

int bs_sync_io(struct bs_dev *dev, int kind, void *buf, size_t len, uint64_t off)
{
	struct bs_sync s;
	int ret;

	memset(&s, 0, sizeof(s));
	s.io.cb = sync_cb;
	if (kind == BS_IO_READ) {
		ret = bs_dev_read(dev, buf, len, off, &s.io);
	} else if (kind == BS_IO_WRITE) {
		ret = bs_dev_write(dev, buf, len, off, &s.io);
	} else {
		ret = bs_dev_flush(dev, &s.io);
	}
	if (ret < 0) {
		return ret;
	}
	while (!s.done) {
		ret = reactor_poll(dev->r, true);
		if (ret < 0) {
			return ret;
		}
	}
	return s.res < 0 ? s.res : 0;
}

/* ---- layout ---- */

/*
 * Compute the layout for a device of @dev_size bytes. Slots: the largest
 * count whose slot table, block metadata and data fit after the journal.
 * The data area starts aligned to min(object size, 1 MiB).
 */
static int layout(uint64_t dev_size, uint32_t object_size, uint64_t journal_size, struct bs_sb *sb)
{
	uint64_t blocks = dev_size / BS_BLOCK, bpo = object_size / BS_BLOCK, align, n, lo, hi;
	uint64_t jblk = journal_size / BS_BLOCK, base;

	if (object_size < BS_MIN_OBJECT_SIZE || object_size > BS_MAX_OBJECT_SIZE ||
	    (object_size & (object_size - 1))) {
		return -EINVAL;
	}
	if (journal_size < BS_FMT_MIN_JOURNAL || journal_size % BS_BLOCK ||
	    journal_size > (1ull << 40)) {
		return -EINVAL;
	}
	align = (object_size < (1u << 20) ? object_size : (1u << 20)) / BS_BLOCK;
	base = BS_FMT_SB_BLOCKS + BS_FMT_JSB_BLOCKS + jblk;
	if (blocks <= base) {
		return -EINVAL;
	}
	/* binary search the largest n that fits */
	lo = 0;
	hi = (blocks - base) / bpo + 1;
	while (lo < hi) {
		uint64_t slot_b, meta_b, data_start;

		n = (lo + hi + 1) / 2;
		slot_b = (n + BS_SLOTS_PER_BLOCK - 1) / BS_SLOTS_PER_BLOCK;
		meta_b = (n * bpo + BS_BMETA_PER_BLOCK - 1) / BS_BMETA_PER_BLOCK;
		data_start = (base + slot_b + meta_b + align - 1) / align * align;
		if (data_start + n * bpo <= blocks) {
			lo = n;
		} else {
			hi = n - 1;
		}
	}
	n = lo;
	if (!n || n > UINT32_MAX - 1) {
		return -EINVAL;
	}
	memset(sb, 0, sizeof(*sb));
	memcpy(sb->magic, BS_FMT_MAGIC, 8);
	sb->version = BS_FMT_VERSION;
	sb->block_size = BS_BLOCK;
	sb->dev_size = blocks * BS_BLOCK;
	sb->object_size = object_size;
	sb->jsb_off = BS_FMT_SB_BLOCKS * BS_BLOCK;
	sb->journal_off = (BS_FMT_SB_BLOCKS + BS_FMT_JSB_BLOCKS) * BS_BLOCK;
	sb->journal_size = journal_size;
	sb->slot_off = base * BS_BLOCK;
	sb->slot_blocks = (n + BS_SLOTS_PER_BLOCK - 1) / BS_SLOTS_PER_BLOCK;
	sb->meta_off = sb->slot_off + sb->slot_blocks * BS_BLOCK;
	sb->meta_blocks = (n * bpo + BS_BMETA_PER_BLOCK - 1) / BS_BMETA_PER_BLOCK;
	sb->data_off =
		(base + sb->slot_blocks + sb->meta_blocks + align - 1) / align * align * BS_BLOCK;
	sb->nslots = n;
	return 0;
}

static void sb_seal(struct bs_sb *sb)
{
	sb->crc = 0;
	sb->crc = crc32c(0, sb, sizeof(*sb));
}

/*
 * Write @sb (sealed) as both superblock copies, copy 0 first, then flush.
 * @buf: one aligned block of scratch.
 */
static int sb_write(struct bs_dev *dev, const struct bs_sb *sb, uint8_t *buf)
{
	int ret;

	memset(buf, 0, BS_BLOCK);
	memcpy(buf, sb, sizeof(*sb));
	ret = bs_sync_io(dev, BS_IO_WRITE, buf, BS_BLOCK, 0);
	if (!ret) {
		ret = bs_sync_io(dev, BS_IO_WRITE, buf, BS_BLOCK, BS_BLOCK);
	}
	if (!ret) {
		ret = bs_sync_io(dev, BS_IO_FLUSH, NULL, 0, 0);
	}
	return ret;
}

/*
 * Mark a store of an earlier format version as this version, once its
 * journal is empty and before any record of this version is written. A
 * crash between the two copies leaves copy 0 new and copy 1 old, and
 * either is a correct description of an empty journal.
 */
static int sb_upgrade(struct bs *bs)
{
	uint32_t from = bs->sb.version;
	uint8_t *buf;
	int ret;

	if (posix_memalign((void **)&buf, BS_BLOCK, BS_BLOCK)) {
		return -ENOMEM;
	}
	bs->sb.version = BS_FMT_VERSION;
	sb_seal(&bs->sb);
	ret = sb_write(bs->dev, &bs->sb, buf);
	free(buf);
	if (ret < 0) {
		log_error("bs: upgrading %s from format version %u failed: %s", bs->dev->path, from,
			  strerror(-ret));
		return ret;
	}
	log_info("bs: %s upgraded from format version %u to %u", bs->dev->path, from,
		 BS_FMT_VERSION);
	return 0;
}

static bool sb_crc_ok(const struct bs_sb *sb)
{
	struct bs_sb tmp = *sb;

	tmp.crc = 0;
	return crc32c(0, &tmp, sizeof(tmp)) == sb->crc;
}

int bs_format(struct bs_dev *dev, const struct bs_format_opts *opts)
{
	struct bs_sb sb;
	uint64_t off;
	uint8_t *buf;
	int ret;

	if (!dev || !opts) {
		return -EINVAL;
	}
	ret = layout(dev->size, opts->object_size, opts->journal_size, &sb);
	if (ret < 0) {
		return ret;
	}
	if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != sizeof(sb.uuid)) {
		memset(sb.uuid, 0x5a, sizeof(sb.uuid));
	}
	sb_seal(&sb);
	if (posix_memalign((void **)&buf, BS_BLOCK, BS_FMT_CHUNK)) {
		return -ENOMEM;
	}
	memset(buf, 0, BS_FMT_CHUNK);
	/* Superblocks first (zeroed: an interrupted format is not a store),
	 * then every metadata region, then the journal superblock and the
	 * superblocks, each step flushed. */
	for (off = 0; off < sb.data_off; off += BS_FMT_CHUNK) {
		uint64_t len = sb.data_off - off < BS_FMT_CHUNK ? sb.data_off - off : BS_FMT_CHUNK;

		ret = bs_sync_io(dev, BS_IO_WRITE, buf, len, off);
		if (ret < 0) {
			goto out_free_buf;
		}
	}
	ret = bs_sync_io(dev, BS_IO_FLUSH, NULL, 0, 0);
	if (ret < 0) {
		goto out_free_buf;
	}
	{
		struct bs_jsb *j = (struct bs_jsb *)buf;

		j->magic = BS_JSB_MAGIC;
		j->gen = 1;
		j->tail_pos = 0;
		j->tail_seq = 1;
		j->crc = crc32c(0, j, offsetof(struct bs_jsb, crc));
		ret = bs_sync_io(dev, BS_IO_WRITE, buf, BS_BLOCK, sb.jsb_off + BS_BLOCK);
		if (ret < 0) {
			goto out_free_buf;
		}
	}
	ret = bs_sync_io(dev, BS_IO_FLUSH, NULL, 0, 0);
	if (ret < 0) {
		goto out_free_buf;
	}
	ret = sb_write(dev, &sb, buf);
	if (!ret) {
		log_info("bs: formatted %s: %lu objects of %u KiB, journal %lu MiB", dev->path,
			 (unsigned long)sb.nslots, sb.object_size / 1024,
			 (unsigned long)(sb.journal_size >> 20));
	}
out_free_buf:
	free(buf);
	return ret;
}

/* ---- open ---- */

static int read_sb(struct bs_dev *dev, struct bs_sb *out)
{
	struct bs_sb want;
	uint8_t *buf;
	int i, ret, found = -EUCLEAN;

	if (posix_memalign((void **)&buf, BS_BLOCK, BS_BLOCK)) {
		return -ENOMEM;
	}
	for (i = 0; i < 2 && found < 0; i++) {
		struct bs_sb sb;

		ret = bs_sync_io(dev, BS_IO_READ, buf, BS_BLOCK, (uint64_t)i * BS_BLOCK);
		if (ret < 0) {
			found = found == -EUCLEAN ? ret : found;
			continue;
		}
		memcpy(&sb, buf, sizeof(sb));
		if (memcmp(sb.magic, BS_FMT_MAGIC, 8) || !sb_crc_ok(&sb)) {
			continue;
		}
		if (sb.version > BS_FMT_VERSION) {
			found = -EPROTONOSUPPORT;
			break;
		}
		/* every field must be exactly what the layout rule gives */
		if (sb.block_size != BS_BLOCK || sb.dev_size > dev->size ||
		    layout(sb.dev_size, sb.object_size, sb.journal_size, &want) < 0 ||
		    want.jsb_off != sb.jsb_off || want.journal_off != sb.journal_off ||
		    want.slot_off != sb.slot_off || want.slot_blocks != sb.slot_blocks ||
		    want.meta_off != sb.meta_off || want.meta_blocks != sb.meta_blocks ||
		    want.data_off != sb.data_off || want.nslots != sb.nslots) {
			log_error("bs: superblock copy %d on %s is inconsistent", i, dev->path);
			continue;
		}
		*out = sb;
		found = 0;
	}
	free(buf);
	return found;
}

static void bs_free(struct bs *bs)
{
	reactor_buf_remove(bs->r, bs->jm_buf);
	reactor_buf_remove(bs->r, bs->ck_buf);
	free(bs->ck_jsb_buf);
	free(bs->ck_stage);
	free(bs->ck_mcs);
	free(bs->jm);
	free(bs->aobjs);
	free(bs->ao_hash);
	free(bs->ops);
	bs_mc_destroy(bs);
	free(bs->slot_dirty);
	free(bs->freestk);
	free(bs->hbuckets);
	free(bs->hnext);
	free(bs->slots);
	if (bs->rd) {
		if (bs->rd->armed) {
			bs->rd->bs = NULL; /* freed by its callback */
		} else {
			free(bs->rd);
		}
	}
	free(bs);
}

static int bs_alloc(struct bs *bs, const struct bs_opts *opts)
{
	uint64_t mc_cap, i;
	uint32_t hs = 1;

	bs->slots = NULL;
	if (posix_memalign((void **)&bs->slots, BS_BLOCK, bs->sb.slot_blocks * BS_BLOCK)) {
		return -ENOMEM;
	}
	while (hs < bs->nslots) {
		hs <<= 1;
	}
	bs->hmask = hs - 1;
	bs->hnext = calloc(bs->nslots, sizeof(*bs->hnext));
	bs->hbuckets = calloc(hs, sizeof(*bs->hbuckets));
	bs->freestk = calloc(bs->nslots, sizeof(*bs->freestk));
	bs->slot_dirty = calloc(bs->sb.slot_blocks, 1);
	bs->ops = calloc(BS_OPS_MAX, sizeof(*bs->ops));
	bs->aobjs = calloc(BS_OPS_MAX, sizeof(*bs->aobjs));
	bs->ao_hash = calloc(BS_OPS_MAX * 2, sizeof(*bs->ao_hash));
	bs->rd = calloc(1, sizeof(*bs->rd));
	if (!bs->hnext || !bs->hbuckets || !bs->freestk || !bs->slot_dirty || !bs->ops ||
	    !bs->aobjs || !bs->ao_hash || !bs->rd) {
		return -ENOMEM;
	}
	bs->rd->bs = bs;
	bs->apply_batch = opts && opts->apply_batch > 1 ? opts->apply_batch : 1;
	if (bs->apply_batch > BS_APPLY_BATCH_MAX) {
		bs->apply_batch = BS_APPLY_BATCH_MAX;
	}
	bs->apply_delay = opts ? opts->apply_delay_us * 1000ull : 0;
	bs->ao_hmask = BS_OPS_MAX * 2 - 1;
	for (i = BS_OPS_MAX; i-- > 0;) {
		bs->ops[i].qnext = bs->op_free;
		bs->op_free = &bs->ops[i];
		bs->aobjs[i].hnext = bs->ao_free;
		bs->ao_free = &bs->aobjs[i];
	}
	if (posix_memalign((void **)&bs->jm, BS_BLOCK, bs->jsize) ||
	    posix_memalign(&bs->ck_jsb_buf, BS_BLOCK, BS_BLOCK) ||
	    posix_memalign((void **)&bs->ck_stage, BS_BLOCK,
			   (size_t)BS_CK_RUNS * BS_CK_RUN_MAX * BS_BLOCK)) {
		return -ENOMEM;
	}
	/* Fault the mirror in now: a first touch on the write path costs a page
	 * fault per 4 KiB record block (expensive in a VM). */
	memset(bs->jm, 0, bs->jsize);
	/* Journal writes and in-place applies come from the mirror, checkpoint
	 * writes from the staging buffer: registered, the kernel pins their
	 * pages once instead of per request. Optional (RLIMIT_MEMLOCK). */
	if (bs->dev->fixed_bufs) {
		bs->jm_buf = reactor_buf_add(bs->r, bs->jm, bs->jsize);
		bs->ck_buf = reactor_buf_add(bs->r, bs->ck_stage,
					     (size_t)BS_CK_RUNS * BS_CK_RUN_MAX * BS_BLOCK);
		if (bs->jm_buf < 0 || bs->ck_buf < 0) {
			log_info("bs: %s: buffers not registered with io_uring (%s): the kernel "
				 "pins pages per request",
				 bs->dev->path,
				 strerror(-(bs->jm_buf < 0 ? bs->jm_buf : bs->ck_buf)));
		}
	}
	mc_cap = (uint64_t)(opts && opts->meta_cache_mb ? opts->meta_cache_mb : 64) << 8;
	if (mc_cap > bs->sb.meta_blocks + BS_MC_MIN) {
		mc_cap = bs->sb.meta_blocks + BS_MC_MIN;
	}
	if (mc_cap < BS_MC_MIN) {
		mc_cap = BS_MC_MIN;
	}
	bs->ck_mcs = calloc(mc_cap, sizeof(*bs->ck_mcs));
	if (!bs->ck_mcs) {
		return -ENOMEM;
	}
	return bs_mc_init(bs, (uint32_t)mc_cap);
}

static int load_slots(struct bs *bs)
{
	uint64_t off, total = bs->sb.slot_blocks * BS_BLOCK;
	int ret;

	for (off = 0; off < total; off += BS_FMT_CHUNK) {
		uint64_t len = total - off < BS_FMT_CHUNK ? total - off : BS_FMT_CHUNK;

		ret = bs_sync_io(bs->dev, BS_IO_READ, (uint8_t *)bs->slots + off, len,
				 bs->sb.slot_off + off);
		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

static int read_jsb(struct bs *bs, struct bs_jsb *out)
{
	struct bs_jsb *j = bs->ck_jsb_buf;
	bool found = false;
	int i, ret;

	for (i = 0; i < 2; i++) {
		ret = bs_sync_io(bs->dev, BS_IO_READ, j, BS_BLOCK, bs->sb.jsb_off + i * BS_BLOCK);
		if (ret < 0) {
			return ret;
		}
		if (j->magic != BS_JSB_MAGIC ||
		    j->crc != crc32c(0, j, offsetof(struct bs_jsb, crc)) ||
		    j->tail_pos >= bs->jsize || j->tail_pos % BS_BLOCK) {
			continue;
		}
		if (!found || j->gen > out->gen) {
			*out = *j;
			found = true;
		}
	}
	return found ? 0 : -EUCLEAN;
}

/* The range checks of one mutation, a single record or a group entry. */
static bool ent_valid(const struct bs *bs, const struct bs_jent *e)
{
	if (e->type != BS_JREC_WRITE && e->type != BS_JREC_UNMAP) {
		return false;
	}
	if (e->slot >= bs->nslots || !e->length || e->offset % BS_BLOCK || e->length % BS_BLOCK ||
	    e->length > BS_MAX_IO || (uint64_t)e->offset + e->length > bs->sb.object_size ||
	    e->mapped > bs->bpo || !e->version) {
		return false;
	}
	if (e->type == BS_JREC_WRITE && (!e->mapped || e->flags)) {
		return false;
	}
	if (e->type == BS_JREC_UNMAP && (!!(e->flags & BS_JREC_F_FREE_SLOT) != !e->mapped ||
					 (e->flags & ~BS_JREC_F_FREE_SLOT))) {
		return false;
	}
	return true;
}

/* The mutation of a single (pre-group) WRITE / UNMAP record, as an entry. */
static void jrec_ent(const struct bs_jrec *h, struct bs_jent *e)
{
	memset(e, 0, sizeof(*e));
	e->inode = h->inode;
	e->objno = h->objno;
	e->version = h->version;
	e->slot = h->slot;
	e->offset = h->offset;
	e->length = h->length;
	e->mapped = h->mapped;
	e->type = h->type <= UINT16_MAX ? (uint16_t)h->type : 0;
	e->flags = h->flags <= UINT16_MAX ? (uint16_t)h->flags : UINT16_MAX;
}

/*
 * Is the record header at @pos (already read) a valid next record? Sets
 * *dlen to the bytes of data that follow the header block.
 */
static bool rec_valid(const struct bs *bs, const struct bs_jrec *h, uint64_t pos, uint64_t seq,
		      uint64_t *dlen)
{
	const struct bs_jgrp *g = (const struct bs_jgrp *)h;
	static const uint32_t zero;
	uint32_t off, i, crc;
	struct bs_jent e;

	*dlen = 0;
	if (h->magic != BS_JREC_MAGIC || h->seq != seq) {
		return false;
	}
	if (h->type == BS_JREC_GROUP) {
		if (g->bytes < sizeof(*g) + sizeof(struct bs_jent) || g->bytes > BS_BLOCK ||
		    g->bytes % 8 || !g->count) {
			return false;
		}
		crc = crc32c(0, g, offsetof(struct bs_jgrp, crc));
		crc = crc32c(crc, &zero, sizeof(zero));
		crc = crc32c(crc, (const uint8_t *)g + sizeof(*g), g->bytes - sizeof(*g));
		if (crc != g->crc) {
			return false;
		}
		for (i = 0, off = sizeof(*g); i < g->count; i++) {
			const struct bs_jent *ge =
				(const struct bs_jent *)((const uint8_t *)g + off);

			if (off + sizeof(*ge) > g->bytes || !ent_valid(bs, ge) ||
			    off + bs_jent_bytes(ge->type, ge->length) > g->bytes) {
				return false;
			}
			off += bs_jent_bytes(ge->type, ge->length);
			if (ge->type == BS_JREC_WRITE) {
				*dlen += ge->length;
			}
		}
		return off == g->bytes && pos + BS_BLOCK + *dlen <= bs->jsize;
	}
	if (!bs_jrec_check(h)) {
		return false;
	}
	if (h->type == BS_JREC_WRAP) {
		return true;
	}
	jrec_ent(h, &e);
	if (!ent_valid(bs, &e)) {
		return false;
	}
	if (e.type == BS_JREC_WRITE) {
		*dlen = e.length;
	}
	return pos + BS_BLOCK + *dlen <= bs->jsize;
}

/*
 * Set the state a mutation describes (absolute values: replay is
 * idempotent). @crcs: a WRITE's data block crcs.
 */
static int replay_apply(struct bs *bs, const struct bs_jent *e, const uint32_t *crcs)
{
	uint32_t b, nblk = e->length / BS_BLOCK, blk = e->offset / BS_BLOCK;
	int err;

	for (b = 0; b < nblk; b++) {
		uint64_t idx = (uint64_t)e->slot * bs->bpo + blk + b;
		struct bs_mc *mc = bs_mc_get_sync(bs, idx / BS_BMETA_PER_BLOCK, &err);

		if (!mc) {
			return err;
		}
		if (e->type == BS_JREC_WRITE) {
			bs_bmeta_set(&mc->ent[idx % BS_BMETA_PER_BLOCK], e->version, crcs[b]);
		} else {
			bs_bmeta_set(&mc->ent[idx % BS_BMETA_PER_BLOCK], 0, 0);
		}
		bs_mc_mark_dirty(bs, mc);
	}
	bs_slot_set(bs, e->slot, e->inode, e->objno, e->version, e->mapped);
	return 0;
}

/*
 * Call @fn for each mutation of the valid record at @h (a group's entries in
 * order, or a single WRITE / UNMAP) with the ring offset of its data.
 * Returns the bytes of data after the header block, or @fn's -errno.
 */
static int64_t rec_for_each(struct bs *bs, const struct bs_jrec *h, uint64_t pos,
			    int (*fn)(struct bs *bs, const struct bs_jent *e, const uint32_t *crcs,
				      uint64_t dpos, void *arg),
			    void *arg)
{
	uint64_t dpos = pos + BS_BLOCK;
	struct bs_jent e;
	uint32_t i, off;
	int ret;

	if (h->type == BS_JREC_GROUP) {
		const struct bs_jgrp *g = (const struct bs_jgrp *)h;

		for (i = 0, off = sizeof(*g); i < g->count; i++) {
			const struct bs_jent *ge =
				(const struct bs_jent *)((const uint8_t *)g + off);

			ret = fn(bs, ge, ge->data_crcs, dpos, arg);
			if (ret < 0) {
				return ret;
			}
			off += bs_jent_bytes(ge->type, ge->length);
			if (ge->type == BS_JREC_WRITE) {
				dpos += ge->length;
			}
		}
		return (int64_t)(dpos - pos - BS_BLOCK);
	}
	if (h->type == BS_JREC_WRAP) {
		return 0;
	}
	jrec_ent(h, &e);
	ret = fn(bs, &e, h->data_crcs, dpos, arg);
	if (ret < 0) {
		return ret;
	}
	return e.type == BS_JREC_WRITE ? (int64_t)e.length : 0;
}

/* Do the data blocks of every WRITE match their crcs? */
static int ent_data_ok(struct bs *bs, const struct bs_jent *e, const uint32_t *crcs, uint64_t dpos,
		       void *arg)
{
	uint32_t got[BS_JREC_MAX_BLOCKS], b, nblk = e->length / BS_BLOCK;

	(void)arg;
	if (e->type != BS_JREC_WRITE) {
		return 0;
	}
	crc32c_blocks(bs->jm + dpos, e->length, got);
	for (b = 0; b < nblk; b++) {
		if (got[b] != crcs[b]) {
			return -EBADMSG;
		}
	}
	return 0;
}

static int ent_replay(struct bs *bs, const struct bs_jent *e, const uint32_t *crcs, uint64_t dpos,
		      void *arg)
{
	uint64_t *nwrites = arg;

	(void)dpos;
	if (e->type == BS_JREC_WRITE) {
		(*nwrites)++;
	}
	return replay_apply(bs, e, crcs);
}

static int ent_write_data(struct bs *bs, const struct bs_jent *e, const uint32_t *crcs,
			  uint64_t dpos, void *arg)
{
	(void)crcs;
	(void)arg;
	if (e->type != BS_JREC_WRITE) {
		return 0;
	}
	return bs_sync_io(bs->dev, BS_IO_WRITE, bs->jm + dpos, e->length,
			  bs_data_off(bs, e->slot, e->offset / BS_BLOCK));
}

/*
 * Replay the journal from the tail: a record counts if its magic, sequence
 * number and crc (header and every data block) are right; the first one
 * that is not ends the journal. Then apply the replayed writes in place,
 * in order. Returns the number of records replayed or -errno.
 */
/* Replay reads the journal into its mirror in chunks this big. */
#define BS_REPLAY_CHUNK (4ull << 20)

/*
 * Make jm[pos, pos + len) hold the journal's bytes on disk: a miss reads a
 * whole chunk from @pos on (replay walks the ring forward, so one read
 * serves many records). Reading a range again only rewrites the mirror
 * with the same bytes.
 */
static int replay_load(struct bs *bs, uint64_t *lo, uint64_t *hi, uint64_t pos, uint64_t len)
{
	uint64_t n = BS_REPLAY_CHUNK;
	int ret;

	if (pos >= *lo && pos + len <= *hi) {
		return 0;
	}
	if (n < len) {
		n = len;
	}
	if (pos + n > bs->jsize) {
		n = bs->jsize - pos;
	}
	ret = bs_sync_io(bs->dev, BS_IO_READ, bs->jm + pos, n, bs->sb.journal_off + pos);
	if (ret < 0) {
		return ret;
	}
	*lo = pos;
	*hi = pos + n;
	return 0;
}

static int replay(struct bs *bs, const struct bs_jsb *jsb, uint64_t *nwrites)
{
	uint64_t pos = jsb->tail_pos, seq = jsb->tail_seq, used = 0, n = 0;
	uint64_t lo = 0, hi = 0;
	int ret;

	*nwrites = 0;
	for (;;) {
		struct bs_jrec *h = (struct bs_jrec *)(bs->jm + pos);
		int64_t applied;
		uint64_t dlen;

		if (used + BS_BLOCK > bs->jsize) {
			break;
		}
		ret = replay_load(bs, &lo, &hi, pos, BS_BLOCK);
		if (ret < 0) {
			return ret;
		}
		if (!rec_valid(bs, h, pos, seq, &dlen)) {
			break;
		}
		if (h->type == BS_JREC_WRAP) {
			used += bs->jsize - pos;
			pos = 0;
			seq++;
			n++;
			continue;
		}
		if (used + BS_BLOCK + dlen > bs->jsize) {
			break;
		}
		if (dlen) {
			ret = replay_load(bs, &lo, &hi, pos + BS_BLOCK, dlen);
			if (ret < 0) {
				return ret;
			}
			/* a torn record was never acknowledged: the journal ends here */
			if (rec_for_each(bs, h, pos, ent_data_ok, NULL) < 0) {
				break;
			}
		}
		applied = rec_for_each(bs, h, pos, ent_replay, nwrites);
		if (applied < 0) {
			return (int)applied;
		}
		n++;
		seq++;
		used += BS_BLOCK + dlen;
		pos += BS_BLOCK + dlen;
		if (pos == bs->jsize) {
			pos = 0;
		}
	}
	bs->jtail = jsb->tail_pos;
	bs->jhead = pos;
	bs->jused = used;
	bs->tail_seq = jsb->tail_seq;
	bs->next_seq = seq;
	bs->jsb_gen = jsb->gen;
	return (int)n;
}

/* Write the replayed records' data to their places, in journal order. */
static int replay_data(struct bs *bs, uint64_t nrec)
{
	uint64_t pos = bs->jtail, i;
	int64_t dlen;

	for (i = 0; i < nrec; i++) {
		const struct bs_jrec *h = (const struct bs_jrec *)(bs->jm + pos);

		if (h->type == BS_JREC_WRAP) {
			pos = 0;
			continue;
		}
		dlen = rec_for_each(bs, h, pos, ent_write_data, NULL);
		if (dlen < 0) {
			return (int)dlen;
		}
		pos += BS_BLOCK + (uint64_t)dlen;
		if (pos == bs->jsize) {
			pos = 0;
		}
	}
	return 0;
}

/* Drive the reactor until the blockstore has nothing in flight. */
static int drive(struct bs *bs, bool (*done)(struct bs *bs))
{
	int ret;

	bs_run(bs);
	while (!done(bs)) {
		if (!bs->dev_inflight && !bs->rd->armed) {
			bs_run(bs);
			if (!done(bs) && !bs->dev_inflight && !bs->rd->armed) {
				log_fatal("bs: stuck: ops %u batches %u applies %u ck %d",
					  bs->ops_used, bs->b_count, bs->applies, bs->ck);
			}
			continue;
		}
		ret = reactor_poll(bs->r, true);
		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

static bool ckpt_done(struct bs *bs)
{
	/* a failed checkpoint still waits for its own I/O (ck returns to idle
	 * only when nothing is in flight), so freeing afterwards is safe */
	return bs->ck == BS_CK_IDLE && (bs->failed || !bs->ck_want);
}

static bool idle_done(struct bs *bs)
{
	return !bs->ops_used && !bs->cw_head && !bs->b_count && bs->ck == BS_CK_IDLE &&
	       !bs->rd->armed;
}

int bs_open(struct bs_dev *dev, const struct bs_opts *opts, struct bs **out)
{
	struct bs_jsb jsb = {0};
	uint64_t nwrites;
	struct bs *bs;
	int ret, nrec;

	if (!dev || !out) {
		return -EINVAL;
	}
	bs = calloc(1, sizeof(*bs));
	if (!bs) {
		return -ENOMEM;
	}
	bs->dev = dev;
	bs->r = dev->r;
	bs->jm_buf = bs->ck_buf = -1;
	ret = read_sb(dev, &bs->sb);
	if (ret < 0) {
		goto out_free;
	}
	bs->bpo = bs->sb.object_size / BS_BLOCK;
	bs->nslots = (uint32_t)bs->sb.nslots;
	bs->jsize = bs->sb.journal_size;
	switch (opts ? opts->flush_mode : BS_FLUSH_AUTO) {
	case BS_FLUSH_ALWAYS:
		bs->flush_always = true;
		break;
	case BS_FLUSH_NONE:
		bs->flush_always = false;
		break;
	default:
		bs->flush_always = dev->volatile_cache;
		break;
	}
	ret = bs_alloc(bs, opts);
	if (ret < 0) {
		goto out_free;
	}
	ret = load_slots(bs);
	if (ret < 0) {
		goto out_free;
	}
	ret = read_jsb(bs, &jsb);
	if (ret < 0) {
		log_error("bs: no valid journal superblock on %s", dev->path);
		goto out_free;
	}
	nrec = replay(bs, &jsb, &nwrites);
	if (nrec < 0) {
		ret = nrec;
		goto out_free;
	}
	ret = bs_index_build(bs);
	if (ret < 0) {
		goto out_free;
	}
	ret = replay_data(bs, (uint64_t)nrec);
	if (ret < 0) {
		goto out_free;
	}
	/* Records the replay stopped at (torn, or from an older lap) may be
	 * followed by intact ones with the next sequence numbers; jump past
	 * anything the ring can hold so they can never be taken for new ones. */
	bs->next_seq += bs->jsize / BS_BLOCK + 1;
	bs->ck_want = true;
	ret = drive(bs, ckpt_done);
	if (!ret && bs->failed) {
		ret = bs->failed;
	}
	if (!ret && bs->sb.version < BS_FMT_VERSION) {
		ret = sb_upgrade(bs); /* the journal is empty: no group record yet */
	}
	if (ret < 0) {
		goto out_free;
	}
	log_info("bs: opened %s: %lu/%u objects used, replayed %d journal records (%lu writes)",
		 dev->path, (unsigned long)bs->used_slots, bs->nslots, nrec,
		 (unsigned long)nwrites);
	*out = bs;
	return 0;

out_free:
	bs_free(bs);
	return ret;
}

int bs_probe(struct bs_dev *dev)
{
	struct bs_sb sb;
	int ret;

	if (!dev) {
		return -EINVAL;
	}
	ret = read_sb(dev, &sb);
	return ret == -EPROTONOSUPPORT ? 0 : ret;
}

void bs_close(struct bs *bs)
{
	if (!bs) {
		return;
	}
	bs->closing = true;
	bs_apply_release(bs);
	drive(bs, idle_done);
	if (!bs->failed) {
		bs->ck_want = true;
		drive(bs, ckpt_done);
	}
	bs_free(bs);
}

void bs_abandon(struct bs *bs)
{
	if (bs) {
		bs_free(bs);
	}
}

int bs_test_block_offsets(struct bs *bs, uint64_t inode, uint64_t objno, uint32_t blk,
			  uint64_t *data_off, uint64_t *meta_off)
{
	uint32_t slot = bs_index_lookup(bs, inode, objno);
	uint64_t idx;

	if (slot == BS_NONE) {
		return -ENOENT;
	}
	if (blk >= bs->bpo) {
		return -ERANGE;
	}
	idx = (uint64_t)slot * bs->bpo + blk;
	*data_off = bs_data_off(bs, slot, blk);
	*meta_off = bs->sb.meta_off + idx * sizeof(struct bs_bmeta);
	return 0;
}

void bs_test_journal_info(struct bs *bs, struct bs_test_journal *out)
{
	out->journal_off = bs->sb.journal_off;
	out->journal_size = bs->jsize;
	out->head = bs->jhead;
	out->tail = bs->jtail;
	out->wraps = bs->st_wraps;
	out->checkpoints = bs->ck_count;
	out->batches_max = bs->st_batches_max;
	out->groups = bs->st_groups;
	out->entries = bs->st_entries;
}

int bs_test_dev_io(struct bs_dev *dev, int kind, void *buf, size_t len, uint64_t off)
{
	return bs_sync_io(dev, kind, buf, len, off);
}

int bs_test_mirror_flip(struct bs *bs, uint32_t byte, uint8_t mask)
{
	const struct bs_ctx *op = bs->held_tail;

	if (!op) {
		return -ENOENT;
	}
	if (byte >= op->nblk * BS_BLOCK) {
		return -ERANGE;
	}
	bs->jm[op->jpos + byte] ^= mask;
	return 0;
}
