/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs_crash: the blockstore's acceptance crash test.
 *
 * Per seed, on the "sim" device (random completion order, power loss that
 * drops or tears unflushed writes; by seed, a volatile cache, so the
 * journal is flushed and in-place applies follow the next journal write,
 * or a power-loss-protected one, so nothing is flushed and applies go one
 * by one or held in batches of 2, 8 or 32): format, open, run a
 * random workload (writes, discards, write-zeroes, whole-object discards,
 * reads, syncs; overlapping extents; QD 1..32) against a model, crash at a
 * random point, sometimes crash again during recovery, recover, and check
 * every block of every object:
 *   - equals the last acknowledged value, or the value of a mutation that
 *     was in flight at the crash (never a mix inside a block, never a failed
 *     checksum, never an older acknowledged value);
 * and during the run:
 *   - a read returns exactly the value of the last mutation submitted before
 *     it on each block (ordering of overlapping extents);
 *   - mutations of one block complete in submission order.
 *
 * Usage: bs_crash [--seeds N] [--start S] [--verbose] [--no-flush]
 * --no-flush is the negative control (no device flushes): it must fail.
 * Exit: 0 all seeds passed, 1 a seed failed, 77 no io_uring (skip).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crc.h"
#include "common/log.h"
#include "common/reactor.h"
#include "server/bs.h"

#define DEV_SIZE     (32ull << 20)
#define OBJ_SIZE     (256u << 10)
#define OBJ_BLOCKS   (OBJ_SIZE / 4096)
#define JOURNAL_SIZE (2ull << 20)
#define NOBJ	     8
#define MAX_QD	     32
#define MAX_BLKS     16
#define BLK_MAGIC    0x4b45454c43525348ull
#define MAX_OPS	     500

struct model_blk {
	uint64_t acked;	   /* value id of the last acknowledged mutation (0 = zeroes) */
	uint64_t last_sub; /* value id of the last submitted mutation */
};

struct slot {
	struct bs_req req;
	bool busy;
	uint64_t opid;
	uint64_t sub_order;
	int obj;
	uint32_t blk, nblk;
	uint64_t expect[OBJ_BLOCKS]; /* reads: expected value per block */
	void *buf;
	uint32_t crcs[OBJ_BLOCKS];
};

struct run {
	uint64_t seed;
	uint64_t rng;
	struct reactor *r;
	struct bs_dev *dev;
	struct bs *bs;
	struct model_blk m[NOBJ][OBJ_BLOCKS];
	struct slot slots[MAX_QD];
	unsigned int inflight;
	uint64_t completions;
	uint64_t sub_order;
	bool failed;
	bool verbose;
	struct bs_opts opts;
	char why[512];
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct run *rn, uint64_t n)
{
	return n ? splitmix(&rn->rng) % n : 0;
}

static void fail(struct run *rn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct run *rn, const char *fmt, ...)
{
	va_list ap;

	if (rn->failed) {
		return;
	}
	rn->failed = true;
	va_start(ap, fmt);
	vsnprintf(rn->why, sizeof(rn->why), fmt, ap);
	va_end(ap);
}

static uint64_t inode_of(int obj)
{
	return 100 + (uint64_t)(obj % 2);
}

static uint64_t objno_of(int obj)
{
	return (uint64_t)obj * 7;
}

/* The content of block @blk of object @obj written by mutation @opid. */
static void gen_block(uint64_t seed, uint64_t opid, int obj, uint32_t blk, uint64_t *w)
{
	uint64_t s = seed * 0x100000001b3ull ^ opid * 0x9e3779b97f4a7c15ull ^ blk;
	unsigned int i;

	w[0] = BLK_MAGIC ^ seed;
	w[1] = opid;
	w[2] = (uint64_t)obj;
	w[3] = blk;
	for (i = 4; i < 512; i++) {
		w[i] = splitmix(&s);
	}
}

/* Decode a block read back: its value id, or UINT64_MAX for garbage. */
static uint64_t decode_block(struct run *rn, int obj, uint32_t blk, const void *p)
{
	static uint64_t want[512];
	const uint64_t *w = p;
	unsigned int i;

	for (i = 0; i < 512 && !w[i]; i++) {
	}
	if (i == 512) {
		return 0;
	}
	if (w[0] != (BLK_MAGIC ^ rn->seed) || !w[1]) {
		return UINT64_MAX;
	}
	gen_block(rn->seed, w[1], obj, blk, want);
	return memcmp(want, w, 4096) ? UINT64_MAX : w[1];
}

static struct slot *slot_of(struct bs_req *req)
{
	return container_of(req, struct slot, req);
}

static bool is_mutation(enum bs_op op)
{
	return op == BS_OP_WRITE || op == BS_OP_DISCARD || op == BS_OP_WRITE_ZEROES;
}

static void op_done(struct bs_req *req, int res)
{
	struct slot *s = slot_of(req);
	struct run *rn = req->arg;
	uint32_t b;

	rn->completions++;
	rn->inflight--;
	s->busy = false;
	if (res < 0) {
		fail(rn, "op %" PRIu64 " (kind %d obj %d blk %u+%u) failed: %d", s->opid, req->op,
		     s->obj, s->blk, s->nblk, res);
		return;
	}
	if (is_mutation(req->op)) {
		uint64_t val = req->op == BS_OP_WRITE ? s->opid : 0;
		unsigned int i;

		/* every earlier mutation of these blocks must have completed */
		for (i = 0; i < MAX_QD; i++) {
			struct slot *o = &rn->slots[i];

			if (!o->busy || !is_mutation(o->req.op) || o->obj != s->obj ||
			    o->sub_order > s->sub_order) {
				continue;
			}
			if (o->blk < s->blk + s->nblk && s->blk < o->blk + o->nblk) {
				fail(rn,
				     "op %" PRIu64
				     " completed before earlier overlapping op %" PRIu64,
				     s->opid, o->opid);
			}
		}
		for (b = 0; b < s->nblk; b++) {
			rn->m[s->obj][s->blk + b].acked = val;
		}
		return;
	}
	if (req->op == BS_OP_READ) {
		for (b = 0; b < s->nblk; b++) {
			const uint8_t *p = (const uint8_t *)s->buf + (size_t)b * 4096;
			uint64_t got = decode_block(rn, s->obj, s->blk + b, p);

			if (got != s->expect[b]) {
				fail(rn,
				     "read op %" PRIu64 " obj %d block %u: got value %" PRId64
				     ", expected %" PRIu64,
				     s->opid, s->obj, s->blk + b, (int64_t)got, s->expect[b]);
				return;
			}
			if (s->crcs[b] != crc32c(0, p, 4096)) {
				fail(rn, "read op %" PRIu64 " obj %d block %u: returned crc wrong",
				     s->opid, s->obj, s->blk + b);
				return;
			}
		}
	}
}

static void issue(struct run *rn, uint64_t opid)
{
	struct slot *s = NULL;
	unsigned int i, k = (unsigned int)rnd(rn, 100);
	uint32_t b;
	int ret;

	for (i = 0; i < MAX_QD; i++) {
		if (!rn->slots[i].busy) {
			s = &rn->slots[i];
			break;
		}
	}
	if (!s) {
		return;
	}
	memset(&s->req, 0, sizeof(s->req));
	s->opid = opid;
	s->obj = (int)rnd(rn, NOBJ);
	s->blk = (uint32_t)rnd(rn, OBJ_BLOCKS);
	s->nblk = 1 + (uint32_t)rnd(rn, MAX_BLKS);
	if (s->blk + s->nblk > OBJ_BLOCKS) {
		s->nblk = OBJ_BLOCKS - s->blk;
	}
	if (k < 55) {
		s->req.op = BS_OP_WRITE;
	} else if (k < 63) {
		s->req.op = BS_OP_DISCARD;
	} else if (k < 68) {
		s->req.op = BS_OP_WRITE_ZEROES;
	} else if (k < 71) {
		s->req.op = BS_OP_DISCARD;
		s->blk = 0;
		s->nblk = OBJ_BLOCKS;
	} else if (k < 96) {
		s->req.op = BS_OP_READ;
	} else {
		s->req.op = BS_OP_SYNC;
	}
	s->req.inode = inode_of(s->obj);
	s->req.objno = objno_of(s->obj);
	s->req.buf = s->buf;
	s->req.crcs = s->crcs;
	s->req.cb = op_done;
	s->req.arg = rn;
	if (s->req.op != BS_OP_SYNC) {
		s->req.offset = s->blk * 4096;
		s->req.length = s->nblk * 4096;
	} else {
		s->nblk = 0;
	}
	if (s->req.op == BS_OP_WRITE) {
		for (b = 0; b < s->nblk; b++) {
			gen_block(rn->seed, opid, s->obj, s->blk + b,
				  (uint64_t *)((uint8_t *)s->buf + (size_t)b * 4096));
		}
		crc32c_blocks(s->buf, (size_t)s->nblk * 4096, s->crcs);
	}
	s->sub_order = ++rn->sub_order;
	ret = bs_submit(rn->bs, &s->req);
	if (ret < 0) {
		fail(rn, "submit of op %" PRIu64 " failed: %d", opid, ret);
		return;
	}
	s->busy = true;
	rn->inflight++;
	for (b = 0; b < s->nblk; b++) {
		struct model_blk *m = &rn->m[s->obj][s->blk + b];

		if (s->req.op == BS_OP_READ) {
			s->expect[b] = m->last_sub;
		} else if (s->req.op == BS_OP_WRITE) {
			m->last_sub = opid;
		} else {
			m->last_sub = 0;
		}
	}
}

/* Can block @b of @obj hold @val after the crash? */
static bool allowed(struct run *rn, int obj, uint32_t b, uint64_t val)
{
	unsigned int i;

	if (val == rn->m[obj][b].acked) {
		return true;
	}
	for (i = 0; i < MAX_QD; i++) {
		struct slot *s = &rn->slots[i];

		if (!s->busy || !is_mutation(s->req.op) || s->obj != obj || b < s->blk ||
		    b >= s->blk + s->nblk) {
			continue;
		}
		if ((s->req.op == BS_OP_WRITE ? s->opid : 0) == val) {
			return true;
		}
	}
	return false;
}

struct sync_req {
	struct bs_req req;
	bool done;
	int res;
};

static void sync_cb(struct bs_req *req, int res)
{
	struct sync_req *s = container_of(req, struct sync_req, req);

	s->done = true;
	s->res = res;
}

static int poll_until(struct run *rn, bool *done)
{
	unsigned long idle = 0;

	while (!*done) {
		if (reactor_poll(rn->r, false) > 0) {
			idle = 0;
		} else if (++idle > 1000000) {
			return -ETIMEDOUT;
		}
	}
	return 0;
}

static void verify_all(struct run *rn, void *objbuf, uint32_t *crcs)
{
	int obj;
	uint32_t b;

	for (obj = 0; obj < NOBJ && !rn->failed; obj++) {
		struct sync_req s;
		int ret;

		memset(&s, 0, sizeof(s));
		s.req.op = BS_OP_READ;
		s.req.inode = inode_of(obj);
		s.req.objno = objno_of(obj);
		s.req.offset = 0;
		s.req.length = OBJ_SIZE;
		s.req.buf = objbuf;
		s.req.crcs = crcs;
		s.req.cb = sync_cb;
		ret = bs_submit(rn->bs, &s.req);
		if (!ret) {
			ret = poll_until(rn, &s.done);
		}
		if (!ret) {
			ret = s.res;
		}
		if (ret < 0) {
			fail(rn, "recovery read of obj %d failed: %d", obj, ret);
			return;
		}
		for (b = 0; b < OBJ_BLOCKS; b++) {
			const uint8_t *p = (const uint8_t *)objbuf + (size_t)b * 4096;
			uint64_t got = decode_block(rn, obj, b, p);

			if (got == UINT64_MAX) {
				fail(rn,
				     "obj %d block %u: garbage or mixed block after recovery "
				     "(acked %" PRIu64 ")",
				     obj, b, rn->m[obj][b].acked);
				return;
			}
			if (!allowed(rn, obj, b, got)) {
				fail(rn,
				     "obj %d block %u: value %" PRIu64
				     " after recovery; acked %" PRIu64
				     ", not one of the in-flight values",
				     obj, b, got, rn->m[obj][b].acked);
				return;
			}
			if (crcs[b] != crc32c(0, p, 4096)) {
				fail(rn, "obj %d block %u: wrong crc returned", obj, b);
				return;
			}
			rn->m[obj][b].acked = got; /* what a later crash must keep */
		}
	}
}

struct totals {
	uint64_t ops, crashes, double_crashes, clean, lost_writes, plp;
	uint64_t reads, jreads; /* reads done; of them, from the journal mirror */
};

static int run_seed(struct run *rn, void *objbuf, uint32_t *crcs, struct totals *t)
{
	struct bs_format_opts fo = {.object_size = OBJ_SIZE, .journal_size = JOURNAL_SIZE};
	struct bs_stat st;
	uint64_t nops, crash_at_comp = UINT64_MAX, crash_at_write = UINT64_MAX, opid = 0;
	unsigned int qd, i;
	unsigned long idle = 0;
	bool clean, plp;
	int ret;

	rn->rng = rn->seed * 0x2545f4914f6cdd1dull + 1;
	/* half the seeds on a power-loss-protected drive, where in-place
	 * applies go each on its own or held in batches of 2, 8 or 32 (no
	 * timer: the run stays a function of the seed) */
	plp = rn->opts.flush_mode != BS_FLUSH_NONE && rn->seed % 2;
	rn->opts.apply_batch = (const uint32_t[]){1, 2, 8, 32}[rn->seed / 2 % 4];
	memset(rn->m, 0, sizeof(rn->m));
	rn->inflight = 0;
	rn->completions = 0;
	rn->sub_order = 0;
	rn->failed = false;
	for (i = 0; i < MAX_QD; i++) {
		rn->slots[i].busy = false;
	}
	ret = bs_dev_open(rn->r, "sim", "crash", DEV_SIZE, &rn->dev);
	if (ret < 0) {
		fail(rn, "bs_dev_open: %d", ret);
		return -1;
	}
	bs_sim_seed(rn->dev, rn->seed);
	bs_sim_set_plp(rn->dev, plp);
	if (plp) {
		t->plp++;
	}
	ret = bs_format(rn->dev, &fo);
	if (!ret) {
		ret = bs_open(rn->dev, &rn->opts, &rn->bs);
	}
	if (ret < 0) {
		fail(rn, "format/open: %d", ret);
		goto out_close_dev;
	}
	nops = 20 + rnd(rn, MAX_OPS);
	qd = 1 + (unsigned int)rnd(rn, MAX_QD);
	clean = rnd(rn, 20) == 0;
	if (!clean) {
		if (rnd(rn, 2)) {
			crash_at_comp = rnd(rn, nops + 1);
		} else {
			crash_at_write = bs_sim_write_count(rn->dev) + rnd(rn, nops * 2 + 1);
		}
	}
	while (!rn->failed) {
		while (opid < nops && rn->inflight < qd && !rn->failed) {
			issue(rn, ++opid);
		}
		if (rn->completions >= crash_at_comp ||
		    bs_sim_write_count(rn->dev) >= crash_at_write) {
			break;
		}
		if (!rn->inflight && opid >= nops) {
			break;
		}
		if (reactor_poll(rn->r, false) > 0) {
			idle = 0;
		} else if (++idle > 1000000) {
			fail(rn, "workload stuck with %u ops in flight", rn->inflight);
		}
	}
	t->ops += opid;
	bs_stat(rn->bs, &st);
	t->reads += st.reads;
	t->jreads += st.reads_journal;
	if (rn->failed) {
		bs_abandon(rn->bs);
		goto out_close_dev;
	}
	if (clean && !rn->inflight) {
		bs_close(rn->bs);
		t->clean++;
	} else {
		bs_abandon(rn->bs);
		t->lost_writes += bs_sim_crash(rn->dev);
		t->crashes++;
		if (rnd(rn, 4) == 0) {
			/* crash again during recovery: writes start failing after
			 * a few, the open fails or completes, then power is lost */
			bs_sim_inject(rn->dev, true, BS_SIM_FAULT_EIO,
				      1 + (unsigned int)rnd(rn, 40));
			ret = bs_open(rn->dev, &rn->opts, &rn->bs);
			if (!ret) {
				bs_abandon(rn->bs);
			}
			bs_sim_inject(rn->dev, true, BS_SIM_FAULT_NONE, 0);
			bs_sim_crash(rn->dev);
			t->double_crashes++;
		}
	}
	rn->bs = NULL;
	ret = bs_open(rn->dev, &rn->opts, &rn->bs);
	if (ret < 0) {
		fail(rn, "recovery open failed: %d", ret);
		goto out_close_dev;
	}
	verify_all(rn, objbuf, crcs);
	if (!rn->failed && rnd(rn, 4) == 0) {
		/* the recovered store takes new writes and survives a crash */
		struct sync_req s;

		memset(&s, 0, sizeof(s));
		gen_block(rn->seed, ++opid + 1000000, 0, 0, objbuf);
		crc32c_blocks(objbuf, 4096, crcs);
		s.req.op = BS_OP_WRITE;
		s.req.inode = inode_of(0);
		s.req.objno = objno_of(0);
		s.req.length = 4096;
		s.req.buf = objbuf;
		s.req.crcs = crcs;
		s.req.cb = sync_cb;
		ret = bs_submit(rn->bs, &s.req);
		if (!ret) {
			ret = poll_until(rn, &s.done);
		}
		if (ret < 0 || s.res < 0) {
			fail(rn, "write after recovery failed: %d/%d", ret, s.res);
		} else {
			rn->m[0][0].acked = opid + 1000000;
			for (i = 0; i < MAX_QD; i++) {
				rn->slots[i].busy = false;
			}
			bs_abandon(rn->bs);
			bs_sim_crash(rn->dev);
			rn->bs = NULL;
			ret = bs_open(rn->dev, &rn->opts, &rn->bs);
			if (ret < 0) {
				fail(rn, "second recovery open failed: %d", ret);
				goto out_close_dev;
			}
			verify_all(rn, objbuf, crcs);
		}
	}
	bs_close(rn->bs);
out_close_dev:
	bs_dev_close(rn->dev);
	rn->dev = NULL;
	return rn->failed ? -1 : 0;
}

int main(int argc, char **argv)
{
	uint64_t seeds = 2000, start = 1, s, nfail = 0;
	struct totals t = {0};
	struct run *rn;
	void *objbuf;
	uint32_t *crcs;
	time_t t0 = time(NULL);
	bool rn_flush_none = false;
	int i, ret;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			seeds = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--start") && i + 1 < argc) {
			start = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--no-flush")) {
			/* negative control: trust the volatile cache; must fail */
			rn_flush_none = true;
		} else if (!strcmp(argv[i], "--verbose")) {
			klog_set_level(KLOG_DEBUG);
		} else {
			fprintf(stderr, "usage: %s [--seeds N] [--start S] [--verbose]\n", argv[0]);
			return 2;
		}
	}
	if (!getenv("BS_CRASH_LOG")) {
		klog_set_level(KLOG_FATAL);
	}
	rn = calloc(1, sizeof(*rn));
	if (!rn || posix_memalign(&objbuf, 4096, OBJ_SIZE)) {
		return 1;
	}
	rn->opts.flush_mode = rn_flush_none ? BS_FLUSH_NONE : BS_FLUSH_AUTO;
	crcs = calloc(OBJ_BLOCKS, sizeof(*crcs));
	for (i = 0; i < MAX_QD; i++) {
		if (posix_memalign(&rn->slots[i].buf, 4096, OBJ_SIZE)) {
			return 1;
		}
	}
	ret = reactor_create(256, &rn->r);
	if (ret < 0) {
		fprintf(stderr, "bs_crash: no io_uring (%d): skipped\n", ret);
		return 77;
	}
	for (s = start; s < start + seeds; s++) {
		rn->seed = s;
		if (run_seed(rn, objbuf, crcs, &t) < 0) {
			nfail++;
			printf("FAIL seed %" PRIu64 ": %s\n", s, rn->why);
			fflush(stdout);
		}
	}
	printf("bs_crash: seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64 " passed, %" PRIu64
	       " failed (%" PRIu64 " on a power-loss-protected drive); %" PRIu64 " ops, %" PRIu64
	       " crashes (%" PRIu64 " during recovery, %" PRIu64
	       " unflushed writes lost/torn), %" PRIu64 " clean closes; %" PRIu64 " reads, %" PRIu64
	       " of them from the journal mirror; %ld s\n",
	       start, start + seeds - 1, seeds - nfail, nfail, t.plp, t.ops, t.crashes,
	       t.double_crashes, t.lost_writes, t.clean, t.reads, t.jreads,
	       (long)(time(NULL) - t0));
	reactor_destroy(rn->r);
	for (i = 0; i < MAX_QD; i++) {
		free(rn->slots[i].buf);
	}
	free(crcs);
	free(objbuf);
	free(rn);
	return nfail ? 1 : 0;
}
