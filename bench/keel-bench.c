/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-bench: load generator and end-to-end verifier for one keel-server
 * (like `rbd bench`). One reactor, --conns authenticated connections, each
 * with --iodepth requests in flight from preallocated slots.
 *
 * Verification (--verify): every 4 KiB block written carries a header
 * (magic, inode, span offset, per-block write counter, seed) followed by a
 * pattern derived from those fields. The tool never has two requests on one
 * block in flight at once, so a read must return exactly the last
 * acknowledged write of each block; anything else is a mismatch. Blocks
 * this run never wrote (and that no --state file describes) are not
 * checked. A write that failed leaves its blocks unknown (not checked).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "client/libkeel.h"
#include "common/config.h"
#include "common/crc.h"
#include "common/log.h"
#include "common/reactor.h"
#include "common/xport.h"
#include "proto/auth.h"
#include "proto/conn.h"
#include "proto/frame.h"
#include "proto/keel.pb-c.h"
#include "tests/tools/keel-history.h"

#define BENCH_MAX_DEPTH		128 /* the server's per-connection queue depth */
#define BENCH_MAX_CONNS		64
#define BENCH_MAGIC		0x48434e424c45454bull /* "KEELBNCH" */
#define BENCH_STATE_MAGIC	0x54534c45454b4e42ull
#define BENCH_UNKNOWN		UINT32_MAX /* block state: not known */
#define BENCH_REPORT_MISMATCHES 10

enum bench_rw {
	BENCH_RANDWRITE,
	BENCH_RANDREAD,
	BENCH_RANDRW,
	BENCH_WRITE,
	BENCH_READ,
};

static const char *const bench_rw_names[] = {
	[BENCH_RANDWRITE] = "randwrite", [BENCH_RANDREAD] = "randread", [BENCH_RANDRW] = "randrw",
	[BENCH_WRITE] = "write",	 [BENCH_READ] = "read",
};

enum bench_phase {
	BENCH_PH_CONNECT,
	BENCH_PH_STAT,
	BENCH_PH_FILL,
	BENCH_PH_RUN,
	BENCH_PH_DRAIN,
	BENCH_PH_DONE,
};

/* Log-linear latency histogram (ns): exact below 64, then 32 sub-buckets
 * per power of two (about 3% resolution). */
#define HIST_SUB_BITS 5
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  (64 + (64 - 6) * HIST_SUB)

struct bench_hist {
	uint64_t count, sum, max;
	uint64_t b[HIST_BUCKETS];
};

struct bench_opts {
	const char *server;
	const char *volume;	  /* volume mode (libkeel) when set */
	const char *mgmt_url;
	const char *history_file;
	const char *transport; /* tcp (default) or rdma */
	const struct xport_ops *xops;
	bool size_set;
	const char *key_file;
	const char *state_file;
	enum bench_rw rw;
	uint32_t bs;
	unsigned int iodepth;
	unsigned int conns;
	double runtime;
	uint64_t ios;
	uint64_t size;
	bool verify;
	bool json;
	unsigned int poll_us; /* reactor busy-poll before sleeping */
	uint64_t inode;
	unsigned int rwmixread;
	uint64_t seed;
};

struct bench;
struct bench_conn;

struct bench_io {
	struct bench_conn *conn;
	struct kp_msg msg;
	uint8_t *buf;
	uint32_t *crcs;
	uint64_t req_id;
	uint64_t span_off;
	uint64_t start_ns;
	bool in_flight; /* request sent, reply not yet seen */
	bool send_busy; /* kp_msg owned by the connection */
	bool is_write;
	bool fill;
};

struct bench_conn {
	struct bench *b;
	struct kp_conn *kc;
	unsigned int idx;
	bool ready, dead;
	unsigned int busy;
	struct bench_io *ios;
	struct kp_msg ctl; /* STAT request */
	bool ctl_busy;
};

struct bench {
	struct bench_opts o;
	struct reactor *r;
	struct kp_key key;
	enum bench_phase phase;
	struct bench_conn conns[BENCH_MAX_CONNS];
	unsigned int nready, nalive;
	uint32_t object_size;
	uint64_t nslots;   /* span / bs */
	uint64_t nblocks;  /* span / 4096 */
	uint32_t *blk_ver; /* last acknowledged counter per block (verify) */
	uint8_t *blk_busy; /* request in flight on the block */
	uint64_t seq_next; /* sequential cursor (slots) */
	uint64_t fill_next;
	uint64_t issued, completed;
	uint64_t rng;
	uint64_t t_start, t_end;
	struct reactor_timer timer;
	bool timer_armed;
	struct bench_hist h_read, h_write;
	uint64_t bytes_read, bytes_written;
	uint64_t errors, errors_by_status[KP_S__MAX + 1];
	uint64_t mismatches, verified_blocks, unchecked_blocks, crc_errors;
	uint64_t fill_ios;
	bool fatal;
	const char *fatal_reason;
	uint8_t *expect; /* one 4 KiB scratch block */
};

static struct bench bench;

/* ---- small helpers ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t bench_rand(struct bench *b)
{
	return splitmix64(&b->rng);
}

static unsigned int hist_bucket(uint64_t v)
{
	unsigned int e;

	if (v < 64) {
		return (unsigned int)v;
	}
	e = 63u - (unsigned int)__builtin_clzll(v);
	return 64 + (e - 6) * HIST_SUB +
	       (unsigned int)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* Middle of bucket @i, in ns. */
static double hist_value(unsigned int i)
{
	unsigned int e, sub;
	double lo, width;

	if (i < 64) {
		return i;
	}
	e = (i - 64) / HIST_SUB + 6;
	sub = (i - 64) % HIST_SUB;
	width = ldexp(1.0, (int)(e - HIST_SUB_BITS));
	lo = ldexp(1.0, (int)e) + sub * width;
	return lo + width / 2;
}

static void hist_add(struct bench_hist *h, uint64_t v)
{
	h->count++;
	h->sum += v;
	if (v > h->max) {
		h->max = v;
	}
	h->b[hist_bucket(v)]++;
}

static void hist_merge(struct bench_hist *dst, const struct bench_hist *a,
		       const struct bench_hist *c)
{
	memset(dst, 0, sizeof(*dst));
	dst->count = a->count + c->count;
	dst->sum = a->sum + c->sum;
	dst->max = a->max > c->max ? a->max : c->max;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		dst->b[i] = a->b[i] + c->b[i];
	}
}

/* Percentile @p (0..100) in ns; never above the observed max. */
static double hist_pct(const struct bench_hist *h, double p)
{
	uint64_t want, seen = 0;

	if (!h->count) {
		return 0;
	}
	want = (uint64_t)ceil(h->count * p / 100.0);
	if (want < 1) {
		want = 1;
	}
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			double v = hist_value(i);

			return v > (double)h->max ? (double)h->max : v;
		}
	}
	return (double)h->max;
}

/* ---- verify pattern ---- */

struct bench_blk_hdr {
	uint64_t magic;
	uint64_t inode;
	uint64_t span_off;
	uint64_t counter;
	uint64_t seed;
};

/*
 * Without --verify nothing reads the pattern back: each buffer's body is
 * filled once (bench_alloc_conn) and a write only rewrites the header, as
 * fio fills its buffers once. Generating 4 KiB of pattern per write cost
 * more CPU than the server's own work at QD32 on a shared vCPU.
 */
static void bench_stamp_block(uint8_t *blk, uint64_t inode, uint64_t span_off, uint32_t counter,
			      uint64_t seed)
{
	struct bench_blk_hdr h = {BENCH_MAGIC, inode, span_off, counter, seed};

	memcpy(blk, &h, sizeof(h));
}

/* The header and the pattern derived from it (--verify). */
static void bench_fill_block(uint8_t *blk, uint64_t inode, uint64_t span_off, uint32_t counter,
			     uint64_t seed)
{
	uint64_t x =
		seed ^ (inode * 0x100000001b3ull) ^ (span_off << 1) ^ ((uint64_t)counter << 40);
	uint64_t *w = (uint64_t *)blk;

	for (unsigned int i = sizeof(struct bench_blk_hdr) / 8; i < KEEL_BLOCK_SIZE / 8; i++) {
		w[i] = splitmix64(&x);
	}
	bench_stamp_block(blk, inode, span_off, counter, seed);
}

static bool bench_is_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zero[KEEL_BLOCK_SIZE];

	return !memcmp(p, zero, len);
}

/* Check one block read back from span offset @off. */
static void bench_check_block(struct bench *b, const uint8_t *got, uint64_t off)
{
	uint64_t blk = off / KEEL_BLOCK_SIZE;
	uint32_t want = b->blk_ver[blk];
	struct bench_blk_hdr h;
	bool ok;

	if (want == BENCH_UNKNOWN) {
		b->unchecked_blocks++;
		return;
	}
	if (want == 0) {
		ok = bench_is_zero(got, KEEL_BLOCK_SIZE);
	} else {
		bench_fill_block(b->expect, b->o.inode, off, want, b->o.seed);
		ok = !memcmp(got, b->expect, KEEL_BLOCK_SIZE);
	}
	b->verified_blocks++;
	if (ok) {
		return;
	}
	b->mismatches++;
	if (b->mismatches > BENCH_REPORT_MISMATCHES) {
		return;
	}
	memcpy(&h, got, sizeof(h));
	if (h.magic == BENCH_MAGIC) {
		fprintf(stderr,
			"keel-bench: verify mismatch at span offset %llu: expected write #%u, "
			"found write #%llu (inode %llu, offset %llu, seed %llu)\n",
			(unsigned long long)off, want, (unsigned long long)h.counter,
			(unsigned long long)h.inode, (unsigned long long)h.span_off,
			(unsigned long long)h.seed);
	} else {
		fprintf(stderr,
			"keel-bench: verify mismatch at span offset %llu: expected %s, found "
			"foreign data\n",
			(unsigned long long)off, want ? "a keel-bench block" : "zeroes");
	}
}

/* ---- state file: last acknowledged counter per block ---- */

struct bench_state_hdr {
	uint64_t magic;
	uint64_t seed;
	uint64_t inode;
	uint64_t size;
	uint64_t nblocks;
};

static int bench_state_load(struct bench *b)
{
	struct bench_state_hdr h;
	size_t n;
	FILE *f = fopen(b->o.state_file, "r");

	if (!f) {
		return errno == ENOENT ? 0 : -errno;
	}
	n = fread(&h, sizeof(h), 1, f);
	if (n != 1 || h.magic != BENCH_STATE_MAGIC || h.nblocks != b->nblocks ||
	    h.inode != b->o.inode || h.size != b->o.size) {
		fclose(f);
		fprintf(stderr,
			"keel-bench: state file %s does not match this --inode/--size "
			"(or is corrupt)\n",
			b->o.state_file);
		return -EINVAL;
	}
	if (fread(b->blk_ver, sizeof(uint32_t), b->nblocks, f) != b->nblocks) {
		fclose(f);
		fprintf(stderr, "keel-bench: state file %s is truncated\n", b->o.state_file);
		return -EINVAL;
	}
	fclose(f);
	b->o.seed = h.seed;
	return 1;
}

static int bench_state_save(struct bench *b)
{
	struct bench_state_hdr h = {BENCH_STATE_MAGIC, b->o.seed, b->o.inode, b->o.size,
				    b->nblocks};
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", b->o.state_file);
	f = fopen(tmp, "w");
	if (!f) {
		return -errno;
	}
	if (fwrite(&h, sizeof(h), 1, f) != 1 ||
	    fwrite(b->blk_ver, sizeof(uint32_t), b->nblocks, f) != b->nblocks || fclose(f)) {
		return -EIO;
	}
	if (rename(tmp, b->o.state_file)) {
		return -errno;
	}
	return 0;
}

/* ---- I/O engine ---- */

static void bench_maybe_finish(struct bench *b);
static void bench_kick(struct bench_conn *c);

static bool bench_issue_allowed_at(struct bench *b, uint64_t now)
{
	if (b->fatal) {
		return false;
	}
	if (b->phase == BENCH_PH_FILL) {
		return b->fill_next < b->nslots;
	}
	if (b->phase != BENCH_PH_RUN) {
		return false;
	}
	if (b->o.ios) {
		return b->issued < b->o.ios;
	}
	return now < b->t_end;
}

static bool bench_issue_allowed(struct bench *b)
{
	return bench_issue_allowed_at(b, reactor_now_ns());
}

static bool slot_free(struct bench *b, uint64_t slot)
{
	uint64_t per = b->o.bs / KEEL_BLOCK_SIZE;

	for (uint64_t i = 0; i < per; i++) {
		if (b->blk_busy[slot * per + i]) {
			return false;
		}
	}
	return true;
}

static void slot_mark(struct bench *b, uint64_t slot, uint8_t v)
{
	uint64_t per = b->o.bs / KEEL_BLOCK_SIZE;

	memset(b->blk_busy + slot * per, v, per);
}

/* Pick the next slot; false when every candidate is busy right now. */
static bool bench_pick(struct bench *b, uint64_t *slot)
{
	uint64_t s;

	if (b->phase == BENCH_PH_FILL) {
		s = b->fill_next;
		if (!slot_free(b, s)) {
			return false;
		}
		b->fill_next++;
		*slot = s;
		return true;
	}
	if (b->o.rw == BENCH_WRITE || b->o.rw == BENCH_READ) {
		s = b->seq_next % b->nslots;
		if (!slot_free(b, s)) {
			return false;
		}
		b->seq_next++;
		*slot = s;
		return true;
	}
	s = bench_rand(b) % b->nslots;
	for (unsigned int tries = 0; tries < 64; tries++) {
		if (slot_free(b, s)) {
			*slot = s;
			return true;
		}
		s = (s + 1) % b->nslots;
	}
	return false;
}

static bool bench_pick_write(struct bench *b)
{
	switch (b->o.rw) {
	case BENCH_RANDWRITE:
	case BENCH_WRITE:
		return true;
	case BENCH_RANDREAD:
	case BENCH_READ:
		return false;
	case BENCH_RANDRW:
		return bench_rand(b) % 100 >= b->o.rwmixread;
	}
	return false;
}

static void bench_io_sent(struct kp_msg *m, int res)
{
	struct bench_io *io = m->arg;

	io->send_busy = false;
	if (!io->in_flight) {
		bench_kick(io->conn);
	}
}

static int bench_issue(struct bench_conn *c, struct bench_io *io, uint64_t now)
{
	struct bench *b = c->b;
	uint64_t slot, off;
	struct kp_hdr *h = &io->msg.hdr;
	bool is_write = b->phase == BENCH_PH_FILL || bench_pick_write(b);
	int ret;

	if (!bench_pick(b, &slot)) {
		return -EAGAIN;
	}
	off = slot * b->o.bs;
	io->span_off = off;
	io->is_write = is_write;
	io->fill = b->phase == BENCH_PH_FILL;
	memset(h, 0, sizeof(*h));
	h->version = KP_VERSION;
	h->opcode = is_write ? KP_OP_WRITE : KP_OP_READ;
	h->inode = b->o.inode;
	h->objno = off / b->object_size;
	h->offset = (uint32_t)(off % b->object_size);
	h->length = b->o.bs;
	io->msg.meta = NULL;
	io->msg.data = NULL;
	io->msg.crcs = NULL;
	if (is_write) {
		for (uint32_t i = 0; i < b->o.bs / KEEL_BLOCK_SIZE; i++) {
			uint64_t boff = off + (uint64_t)i * KEEL_BLOCK_SIZE;
			uint64_t blk = boff / KEEL_BLOCK_SIZE;
			uint32_t ctr = b->blk_ver[blk];
			uint8_t *p = io->buf + (size_t)i * KEEL_BLOCK_SIZE;

			/* Counter of this write = last known + 1; unknown blocks
			 * restart high so they never collide with the old one. */
			ctr = ctr == BENCH_UNKNOWN ? 0x80000000u : ctr + 1;
			if (ctr == BENCH_UNKNOWN) {
				ctr = 1;
			}
			if (b->o.verify) {
				bench_fill_block(p, b->o.inode, boff, ctr, b->o.seed);
			} else {
				bench_stamp_block(p, b->o.inode, boff, ctr, b->o.seed);
			}
		}
		crc32c_blocks(io->buf, b->o.bs, io->crcs);
		h->data_len = b->o.bs;
		io->msg.data = io->buf;
		io->msg.crcs = io->crcs;
	}
	io->req_id = ((b->issued + b->fill_ios + 1) << 16) | (uint64_t)(io - c->ios);
	h->req_id = io->req_id;
	io->msg.done = bench_io_sent;
	io->msg.arg = io;
	io->start_ns = now;
	slot_mark(b, slot, 1);
	io->in_flight = true;
	io->send_busy = true;
	ret = kp_conn_send(c->kc, &io->msg);
	if (ret) {
		io->in_flight = false;
		io->send_busy = false;
		slot_mark(b, slot, 0);
		return ret;
	}
	if (io->fill) {
		b->fill_ios++;
	} else {
		b->issued++;
	}
	c->busy++;
	return 0;
}

static void bench_kick(struct bench_conn *c)
{
	struct bench *b = c->b;
	uint64_t now = reactor_now_ns(); /* one clock read per kick, not per slot */

	if (c->dead || !c->ready) {
		return;
	}
	for (unsigned int i = 0; i < b->o.iodepth && bench_issue_allowed_at(b, now); i++) {
		struct bench_io *io = &c->ios[i];

		if (io->in_flight || io->send_busy) {
			continue;
		}
		if (bench_issue(c, io, now)) {
			break;
		}
	}
	bench_maybe_finish(b);
}

static void bench_start_run(struct bench *b);

static void bench_maybe_finish(struct bench *b)
{
	unsigned int busy = 0;

	for (unsigned int i = 0; i < b->o.conns; i++) {
		busy += b->conns[i].busy;
	}
	if (busy) {
		return;
	}
	if (b->phase == BENCH_PH_FILL && !b->fatal && b->fill_next >= b->nslots) {
		bench_start_run(b);
		return;
	}
	if ((b->phase == BENCH_PH_RUN || b->phase == BENCH_PH_FILL) &&
	    (b->fatal || !bench_issue_allowed(b))) {
		b->phase = BENCH_PH_DONE;
		b->t_end = reactor_now_ns();
		reactor_stop(b->r);
	}
}

/* Every block of @io's extent: update the model after a reply. */
static void bench_io_done(struct bench_conn *c, struct bench_io *io, const struct kp_hdr *h,
			  const uint8_t *data, const uint32_t *crcs)
{
	struct bench *b = c->b;
	uint64_t lat = reactor_now_ns() - io->start_ns;
	uint32_t per = b->o.bs / KEEL_BLOCK_SIZE;
	uint64_t blk0 = io->span_off / KEEL_BLOCK_SIZE;
	int st = h->status;

	io->in_flight = false;
	c->busy--;
	if (st != KP_S_OK) {
		b->errors++;
		b->errors_by_status[st >= 0 && st < KP_S__MAX ? st : KP_S__MAX]++;
		if (b->errors <= BENCH_REPORT_MISMATCHES) {
			fprintf(stderr, "keel-bench: %s inode %llu objno %llu offset %u: %s\n",
				io->is_write ? "write" : "read", (unsigned long long)h->inode,
				(unsigned long long)h->objno, h->offset,
				strerror(-kp_status_to_errno(st)));
		}
		if (io->is_write) {
			for (uint32_t i = 0; i < per; i++) {
				b->blk_ver[blk0 + i] = BENCH_UNKNOWN;
			}
		}
	} else if (io->is_write) {
		for (uint32_t i = 0; i < per; i++) {
			uint32_t v = b->blk_ver[blk0 + i];

			v = v == BENCH_UNKNOWN ? 0x80000000u : v + 1;
			b->blk_ver[blk0 + i] = v == BENCH_UNKNOWN ? 1 : v;
		}
		if (!io->fill) {
			b->bytes_written += b->o.bs;
			hist_add(&b->h_write, lat);
		}
	} else {
		if (!data || h->data_len != b->o.bs || !kp_data_verify(data, b->o.bs, crcs)) {
			b->crc_errors++;
			b->errors++;
		} else if (b->o.verify) {
			for (uint32_t i = 0; i < per; i++) {
				bench_check_block(b, data + (size_t)i * KEEL_BLOCK_SIZE,
						  io->span_off + (uint64_t)i * KEEL_BLOCK_SIZE);
			}
		}
		b->bytes_read += b->o.bs;
		hist_add(&b->h_read, lat);
	}
	slot_mark(b, io->span_off / b->o.bs, 0);
	if (!io->fill) {
		b->completed++;
	}
	if (!io->send_busy) {
		bench_kick(c);
	} else {
		bench_maybe_finish(b);
	}
}

static void bench_stat_sent(struct kp_msg *m, int res)
{
	struct bench_conn *c = m->arg;

	c->ctl_busy = false;
}

static void bench_fail(struct bench *b, const char *why)
{
	if (!b->fatal) {
		b->fatal = true;
		b->fatal_reason = why;
	}
	if (b->phase < BENCH_PH_FILL) {
		b->phase = BENCH_PH_DONE;
		reactor_stop(b->r);
	}
	bench_maybe_finish(b);
}

static void bench_start_run(struct bench *b)
{
	b->phase = BENCH_PH_RUN;
	b->t_start = reactor_now_ns();
	b->t_end = b->t_start + (uint64_t)(b->o.runtime * 1e9);
	for (unsigned int i = 0; i < b->o.conns; i++) {
		bench_kick(&b->conns[i]);
	}
}

static void bench_timer_fired(struct reactor_timer *t)
{
	struct bench *b = container_of(t, struct bench, timer);

	b->timer_armed = false;
	if (b->phase == BENCH_PH_RUN) {
		/* Time is up: stop issuing; completions finish the run. */
		bench_maybe_finish(b);
		if (b->phase == BENCH_PH_RUN) {
			b->timer_armed = true;
			reactor_timer_start(b->r, t, 100 * 1000 * 1000, bench_timer_fired);
		}
		return;
	}
	if (b->phase < BENCH_PH_FILL) {
		bench_fail(b, "timed out connecting to the server");
	}
}

static void bench_setup(struct bench *b, const uint8_t *meta, uint32_t meta_len)
{
	Keel__StoreStat *st = keel__store_stat__unpack(NULL, meta_len, meta);
	int ret;

	if (!st) {
		bench_fail(b, "cannot parse the server's StoreStat");
		return;
	}
	b->object_size = st->object_size;
	keel__store_stat__free_unpacked(st, NULL);
	if (!b->object_size || b->object_size % b->o.bs) {
		fprintf(stderr, "keel-bench: --bs %u does not divide the object size %u\n", b->o.bs,
			b->object_size);
		bench_fail(b, "bad --bs for this server");
		return;
	}
	b->nslots = b->o.size / b->o.bs;
	b->nblocks = b->o.size / KEEL_BLOCK_SIZE;
	b->blk_ver = calloc(b->nblocks, sizeof(uint32_t));
	b->blk_busy = calloc(b->nblocks, 1);
	if (!b->blk_ver || !b->blk_busy) {
		bench_fail(b, "out of memory for the block map");
		return;
	}
	if (!b->o.verify) {
		/* Without --verify every block is unknown: reads check crcs only. */
		memset(b->blk_ver, 0xff, b->nblocks * sizeof(uint32_t));
	}
	ret = 0;
	if (b->o.state_file && b->o.verify) {
		ret = bench_state_load(b);
		if (ret < 0) {
			bench_fail(b, "bad state file");
			return;
		}
	}
	if (b->o.verify && !ret) {
		/* Fresh model: what is on the server is unknown. */
		memset(b->blk_ver, 0xff, b->nblocks * sizeof(uint32_t));
	}
	if (b->o.verify && !ret && (b->o.rw == BENCH_RANDREAD || b->o.rw == BENCH_READ)) {
		b->phase = BENCH_PH_FILL;
		for (unsigned int i = 0; i < b->o.conns; i++) {
			bench_kick(&b->conns[i]);
		}
		return;
	}
	bench_start_run(b);
}

static void bench_on_ready(struct kp_conn *kc)
{
	struct bench_conn *c = kp_conn_arg(kc);
	struct bench *b = c->b;
	int ret;

	c->ready = true;
	if (++b->nready < b->o.conns) {
		return;
	}
	/* Learn the object size from the store. */
	b->phase = BENCH_PH_STAT;
	c = &b->conns[0];
	memset(&c->ctl, 0, sizeof(c->ctl));
	c->ctl.hdr.version = KP_VERSION;
	c->ctl.hdr.opcode = KP_OP_STAT;
	c->ctl.hdr.req_id = UINT64_MAX;
	c->ctl.done = bench_stat_sent;
	c->ctl.arg = c;
	c->ctl_busy = true;
	ret = kp_conn_send(c->kc, &c->ctl);
	if (ret) {
		c->ctl_busy = false;
		bench_fail(b, "cannot send STAT");
	}
}

static void bench_on_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
			 const uint8_t *data, const uint32_t *crcs)
{
	struct bench_conn *c = kp_conn_arg(kc);
	struct bench *b = c->b;
	uint64_t idx = h->req_id & 0xffff;
	struct bench_io *io;

	if (!(h->flags & KP_F_REPLY)) {
		kp_conn_close(kc, -EPROTO, "request frame from the server");
		return;
	}
	if (h->req_id == UINT64_MAX && h->opcode == KP_OP_STAT && b->phase == BENCH_PH_STAT) {
		if (h->status != KP_S_OK) {
			fprintf(stderr, "keel-bench: STAT failed: %s\n",
				strerror(-kp_status_to_errno(h->status)));
			bench_fail(b, "STAT failed");
			return;
		}
		bench_setup(b, meta, h->meta_len);
		return;
	}
	if (idx >= b->o.iodepth || !c->ios[idx].in_flight || c->ios[idx].req_id != h->req_id) {
		kp_conn_close(kc, -EPROTO, "reply to no request in flight");
		return;
	}
	io = &c->ios[idx];
	bench_io_done(c, io, h, data, crcs);
}

static void bench_on_close(struct kp_conn *kc, int err, const char *reason)
{
	struct bench_conn *c = kp_conn_arg(kc);
	struct bench *b = c->b;

	c->dead = true;
	c->kc = NULL;
	b->nalive--;
	if (b->phase == BENCH_PH_DONE && !c->busy) {
		return;
	}
	fprintf(stderr, "keel-bench: connection %u closed: %s\n", c->idx,
		reason ? reason : (err ? strerror(-err) : "server closed"));
	/* Requests in flight on it are lost: count them as errors. */
	for (unsigned int i = 0; i < b->o.iodepth; i++) {
		struct bench_io *io = &c->ios[i];

		if (io->in_flight) {
			io->in_flight = false;
			b->errors++;
			if (io->is_write) {
				uint64_t blk0 = io->span_off / KEEL_BLOCK_SIZE;

				for (uint32_t k = 0; k < b->o.bs / KEEL_BLOCK_SIZE; k++) {
					b->blk_ver[blk0 + k] = BENCH_UNKNOWN;
				}
			}
			if (b->blk_busy) {
				slot_mark(b, io->span_off / b->o.bs, 0);
			}
		}
		io->send_busy = false;
	}
	c->busy = 0;
	bench_fail(b, "connection lost");
}

static const struct kp_conn_cbs bench_cbs = {
	.on_ready = bench_on_ready,
	.on_msg = bench_on_msg,
	.on_close = bench_on_close,
};

/* ---- output ---- */

static void print_hist_text(const char *name, const struct bench_hist *h, double secs,
			    uint64_t bytes)
{
	if (!h->count) {
		return;
	}
	printf("%-6s %10.0f IOPS %9.2f MiB/s  lat us: mean %.1f p50 %.1f p99 %.1f "
	       "p99.9 %.1f max %.1f\n",
	       name, h->count / secs, bytes / secs / 1048576.0, h->sum / (double)h->count / 1e3,
	       hist_pct(h, 50) / 1e3, hist_pct(h, 99) / 1e3, hist_pct(h, 99.9) / 1e3, h->max / 1e3);
}

static void print_hist_json(const char *name, const struct bench_hist *h, double secs,
			    uint64_t bytes, bool comma)
{
	double mean = h->count ? h->sum / (double)h->count / 1e3 : 0;

	printf("\"%s\":{\"ios\":%llu,\"iops\":%.1f,\"mib_s\":%.3f,\"lat_us\":{\"mean\":%.2f,"
	       "\"p50\":%.2f,\"p99\":%.2f,\"p99_9\":%.2f,\"max\":%.2f}}%s",
	       name, (unsigned long long)h->count, h->count / secs, bytes / secs / 1048576.0, mean,
	       hist_pct(h, 50) / 1e3, hist_pct(h, 99) / 1e3, hist_pct(h, 99.9) / 1e3, h->max / 1e3,
	       comma ? "," : "");
}

static void bench_report(struct bench *b)
{
	double secs = (b->t_end - b->t_start) / 1e9;
	struct bench_hist all;

	if (secs <= 0) {
		secs = 1e-9;
	}
	hist_merge(&all, &b->h_read, &b->h_write);
	if (b->o.json) {
		printf("{\"rw\":\"%s\",\"bs\":%u,\"iodepth\":%u,\"conns\":%u,\"size\":%llu,"
		       "\"object_size\":%u,\"runtime_s\":%.3f,",
		       bench_rw_names[b->o.rw], b->o.bs, b->o.iodepth, b->o.conns,
		       (unsigned long long)b->o.size, b->object_size, secs);
		print_hist_json("total", &all, secs, b->bytes_read + b->bytes_written, true);
		print_hist_json("read", &b->h_read, secs, b->bytes_read, true);
		print_hist_json("write", &b->h_write, secs, b->bytes_written, true);
		printf("\"errors\":%llu,\"crc_errors\":%llu,\"verify\":%s,"
		       "\"verified_blocks\":%llu,\"unchecked_blocks\":%llu,"
		       "\"verify_mismatches\":%llu,\"fill_ios\":%llu,\"ok\":%s}\n",
		       (unsigned long long)b->errors, (unsigned long long)b->crc_errors,
		       b->o.verify ? "true" : "false", (unsigned long long)b->verified_blocks,
		       (unsigned long long)b->unchecked_blocks, (unsigned long long)b->mismatches,
		       (unsigned long long)b->fill_ios,
		       (b->errors || b->mismatches || b->fatal) ? "false" : "true");
		return;
	}
	printf("keel-bench: %s bs=%u iodepth=%u conns=%u size=%llu object_size=%u, %.2f s\n",
	       bench_rw_names[b->o.rw], b->o.bs, b->o.iodepth, b->o.conns,
	       (unsigned long long)b->o.size, b->object_size, secs);
	print_hist_text("read", &b->h_read, secs, b->bytes_read);
	print_hist_text("write", &b->h_write, secs, b->bytes_written);
	print_hist_text("total", &all, secs, b->bytes_read + b->bytes_written);
	printf("errors: %llu (crc %llu)", (unsigned long long)b->errors,
	       (unsigned long long)b->crc_errors);
	for (int s = 1; s <= KP_S__MAX; s++) {
		if (b->errors_by_status[s]) {
			printf(" %s=%llu",
			       s < KP_S__MAX ? strerror(-kp_status_to_errno(s)) : "bad status",
			       (unsigned long long)b->errors_by_status[s]);
		}
	}
	printf("\n");
	if (b->o.verify) {
		printf("verify: %llu blocks checked, %llu mismatches, %llu not checked "
		       "(unknown), %llu fill writes\n",
		       (unsigned long long)b->verified_blocks, (unsigned long long)b->mismatches,
		       (unsigned long long)b->unchecked_blocks, (unsigned long long)b->fill_ios);
	}
}

/* ---- command line ---- */

static const char bench_help[] =
	"NAME\n"
	"    keel-bench - load generator and end-to-end verifier for keel-server\n"
	"\n"
	"SYNOPSIS\n"
	"    keel-bench --server HOST:PORT --key FILE [--rw MODE] [--bs SIZE]\n"
	"               [--iodepth N] [--conns N] (--runtime SECONDS | --ios N)\n"
	"               [--size SIZE] [--inode N] [--rwmixread PCT] [--seed S]\n"
	"               [--verify [--state FILE]] [--json]\n"
	"    keel-bench --volume NAME [--mgmt URL] [--key FILE] [--rw MODE] [--bs SIZE]\n"
	"               [--iodepth N] (--runtime SECONDS | --ios N) [--size SIZE]\n"
	"               [--rwmixread PCT] [--seed S] [--verify] [--history FILE] [--json]\n"
	"\n"
	"DESCRIPTION\n"
	"    Connects to one keel-server (mutual HMAC authentication), learns the\n"
	"    object size with STAT, and keeps --iodepth requests in flight on each of\n"
	"    --conns connections over a --size byte address space of layer --inode,\n"
	"    mapped onto consecutive objects (span offset / object size = objno).\n"
	"    Every write carries a crc32c per 4 KiB block; every read's data is\n"
	"    checked against the crcs the blockstore stored (end-to-end).\n"
	"\n"
	"    --verify writes self-describing blocks (inode, offset, a per-block write\n"
	"    counter and the seed in a header, then a pattern) and checks that every\n"
	"    read returns exactly the last acknowledged write of each block; no two\n"
	"    requests on one block are ever in flight together. Blocks this run never\n"
	"    wrote are not checked, unless --state FILE describes them: the state\n"
	"    file (the last acknowledged counter of every block and the seed) is\n"
	"    loaded at start if it exists and saved at exit, so a later run, e.g.\n"
	"    after a server restart, verifies everything written before. A\n"
	"    --rw read/randread --verify run without a state file first fills the\n"
	"    whole span sequentially (not timed), then reads. Without --verify a\n"
	"    write rewrites only the header of a body filled once, as fio reuses\n"
	"    its buffers, so the load generator takes less of the CPU it shares.\n"
	"\n"
	"    Volume mode (--volume) runs the same load through libkeel against a\n"
	"    cluster: mgmt from --mgmt, else $KEEL_MGMT_URL, else\n"
	"    http://127.0.0.1:8776; key from --key, else $KEEL_KEY_FILE, else\n"
	"    /etc/keel/keel.key; mgmt's API token from $KEEL_TOKEN, else\n"
	"    $KEEL_TOKEN_FILE, else /etc/keel/api.token when it exists.\n"
	"    Requests may overlap on a block. Every block\n"
	"    written carries (inode, block, write id, body crc); --verify accepts a\n"
	"    read that returns the last write completed before the read started\n"
	"    or any write concurrent with it, and flags stale, lost, torn and\n"
	"    misplaced blocks (without --verify or --history the body is filled\n"
	"    once and only the header changes). --history FILE logs every block of\n"
	"    every I/O for keel-histcheck. The report adds libkeel's retries, reconnects, stale\n"
	"    epochs and the longest failover stall. --size defaults to the volume.\n"
	"\n"
	"OPTIONS\n"
	"    --server HOST:PORT  server address (required)\n"
	"    --key FILE          cluster key file (required, mode 0600)\n"
	"    --rw MODE           randwrite (default), randread, randrw, write, read\n"
	"    --bs SIZE           request size, 4K multiple, divides the object size\n"
	"                        (default 4K, at most 1M)\n"
	"    --iodepth N         requests in flight per connection, 1..128 (default 32)\n"
	"    --conns N           connections, 1..64 (default 1)\n"
	"    --runtime SECONDS   time-based run (default 10)\n"
	"    --ios N             stop after N requests instead of a time\n"
	"    --size SIZE         span of the address space (default 1G)\n"
	"    --inode N           layer id to use, nonzero (default 1)\n"
	"    --rwmixread PCT     randrw: percentage of reads (default 70)\n"
	"    --seed S            pattern and offset seed (default: from the clock)\n"
	"    --poll-us N         busy-poll completions up to N us before sleeping\n"
	"    --transport T       tcp (default) or rdma, as the servers' server.transport;\n"
	"                        the per-transport byte counters go to stderr at the end\n"
	"                        (default 0: lower QD1 latency for one more busy core)\n"
	"    --verify            check data as described above\n"
	"    --state FILE        with --verify: load/save the per-block model\n"
	"    --json              print one JSON object instead of text\n"
	"\n"
	"OUTPUT\n"
	"    IOPS, MiB/s and latency (mean, p50, p99, p99.9, max in microseconds,\n"
	"    from a log-linear histogram, ~3% resolution) for reads, writes and\n"
	"    both; errors by status; verified blocks and mismatches.\n"
	"\n"
	"FILES\n"
	"    The --state file, written atomically (FILE.tmp, then rename).\n"
	"\n"
	"EXIT STATUS\n"
	"    0 no I/O error and no verify mismatch; 1 any I/O error, crc error,\n"
	"    verify mismatch, lost connection, or (volume mode) requests still\n"
	"    outstanding 60 s after a time-based run ends (an I/O hang); 2 usage\n"
	"    error or cannot connect.\n"
	"\n"
	"EXAMPLES\n"
	"    keel-bench --server 127.0.0.1:7400 --key k --rw randwrite --bs 4k \\\n"
	"        --iodepth 32 --runtime 10\n"
	"    keel-bench --server 127.0.0.1:7400 --key k --rw randwrite --verify \\\n"
	"        --state /tmp/s --size 64M --ios 20000\n"
	"    keel-bench --server 127.0.0.1:7400 --key k --rw randread --verify \\\n"
	"        --state /tmp/s --size 64M --ios 20000 --json\n";

static int bench_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "keel-bench: %s%s%s\nTry 'keel-bench --help'.\n", msg, arg ? ": " : "",
		arg ? arg : "");
	return 2;
}

static int bench_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 'S'},
		{"key", required_argument, NULL, 'k'},
		{"rw", required_argument, NULL, 'w'},
		{"bs", required_argument, NULL, 'b'},
		{"iodepth", required_argument, NULL, 'q'},
		{"conns", required_argument, NULL, 'c'},
		{"runtime", required_argument, NULL, 't'},
		{"ios", required_argument, NULL, 'n'},
		{"size", required_argument, NULL, 's'},
		{"verify", no_argument, NULL, 'V'},
		{"json", no_argument, NULL, 'j'},
		{"inode", required_argument, NULL, 'i'},
		{"rwmixread", required_argument, NULL, 'm'},
		{"seed", required_argument, NULL, 'e'},
		{"state", required_argument, NULL, 'f'},
		{"volume", required_argument, NULL, 'v'},
		{"mgmt", required_argument, NULL, 'M'},
		{"history", required_argument, NULL, 'H'},
		{"poll-us", required_argument, NULL, 'P'},
		{"transport", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v;
	char *end;
	int c;

	memset(o, 0, sizeof(*o));
	o->rw = BENCH_RANDWRITE;
	o->bs = 4096;
	o->iodepth = 32;
	o->conns = 1;
	o->runtime = 10;
	o->size = 1ull << 30;
	o->inode = 1;
	o->rwmixread = 70;
	o->seed = reactor_now_ns() ^ ((uint64_t)getpid() << 32);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			o->server = optarg;
			break;
		case 'k':
			o->key_file = optarg;
			break;
		case 'w': {
			unsigned int i;

			for (i = 0; i <= BENCH_READ; i++) {
				if (!strcmp(optarg, bench_rw_names[i])) {
					break;
				}
			}
			if (i > BENCH_READ) {
				return bench_usage("--rw expects randwrite, randread, randrw, "
						   "write or read",
						   optarg);
			}
			o->rw = (enum bench_rw)i;
			break;
		}
		case 'b':
			if (cfg_parse_size(optarg, &v) || !v || v % KEEL_BLOCK_SIZE ||
			    v > KP_MAX_DATA) {
				return bench_usage("--bs expects a 4K multiple up to 1M", optarg);
			}
			o->bs = (uint32_t)v;
			break;
		case 'q':
			if (cfg_parse_u64(optarg, &v) || !v || v > BENCH_MAX_DEPTH) {
				return bench_usage("--iodepth expects 1..128", optarg);
			}
			o->iodepth = (unsigned int)v;
			break;
		case 'c':
			if (cfg_parse_u64(optarg, &v) || !v || v > BENCH_MAX_CONNS) {
				return bench_usage("--conns expects 1..64", optarg);
			}
			o->conns = (unsigned int)v;
			break;
		case 't':
			o->runtime = strtod(optarg, &end);
			if (*end || !(o->runtime > 0) || o->runtime > 1e6) {
				return bench_usage("--runtime expects seconds > 0", optarg);
			}
			break;
		case 'n':
			if (cfg_parse_u64(optarg, &v) || !v) {
				return bench_usage("--ios expects a count > 0", optarg);
			}
			o->ios = v;
			break;
		case 's':
			if (cfg_parse_size(optarg, &v) || !v) {
				return bench_usage("--size expects a size such as 1G", optarg);
			}
			o->size = v;
			o->size_set = true;
			break;
		case 'V':
			o->verify = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'i':
			if (cfg_parse_u64(optarg, &v) || !v) {
				return bench_usage("--inode expects a nonzero layer id", optarg);
			}
			o->inode = v;
			break;
		case 'm':
			if (cfg_parse_u64(optarg, &v) || v > 100) {
				return bench_usage("--rwmixread expects 0..100", optarg);
			}
			o->rwmixread = (unsigned int)v;
			break;
		case 'e':
			if (cfg_parse_u64(optarg, &v)) {
				return bench_usage("--seed expects a number", optarg);
			}
			o->seed = v;
			break;
		case 'f':
			o->state_file = optarg;
			break;
		case 'v':
			o->volume = optarg;
			break;
		case 'M':
			o->mgmt_url = optarg;
			break;
		case 'H':
			o->history_file = optarg;
			break;
		case 'P':
			if (cfg_parse_u64(optarg, &v) || v > 1000000) {
				return bench_usage("--poll-us expects 0..1000000", optarg);
			}
			o->poll_us = (unsigned int)v;
			break;
		case 'T':
			o->transport = optarg;
			break;
		case 'h':
			fputs(bench_help, stdout);
			return -1;
		default:
			return bench_usage("bad option", NULL);
		}
	}
	if (optind < argc) {
		return bench_usage("unexpected argument", argv[optind]);
	}
	if (o->volume) {
		if (o->server || o->state_file) {
			return bench_usage("--volume excludes --server and --state", NULL);
		}
		if (o->size % o->bs) {
			return bench_usage("--size must be a multiple of --bs", NULL);
		}
		return 0;
	}
	if (o->history_file) {
		return bench_usage("--history needs --volume", NULL);
	}
	if (!o->server || !o->key_file) {
		return bench_usage("--server and --key are required", NULL);
	}
	if (o->size % o->bs || o->size < o->bs) {
		return bench_usage("--size must be a multiple of --bs", NULL);
	}
	if (o->state_file && !o->verify) {
		return bench_usage("--state needs --verify", NULL);
	}
	return 0;
}

static int bench_alloc_conn(struct bench *b, struct bench_conn *c, unsigned int idx)
{
	c->b = b;
	c->idx = idx;
	c->ios = calloc(b->o.iodepth, sizeof(*c->ios));
	if (!c->ios) {
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < b->o.iodepth; i++) {
		struct bench_io *io = &c->ios[i];

		io->conn = c;
		io->buf = aligned_alloc(KEEL_BLOCK_SIZE, b->o.bs);
		io->crcs = calloc(b->o.bs / KEEL_BLOCK_SIZE, sizeof(uint32_t));
		if (!io->buf || !io->crcs) {
			return -ENOMEM;
		}
		/* The body bench_stamp_block() leaves in place. */
		for (uint32_t k = 0; k < b->o.bs / KEEL_BLOCK_SIZE; k++) {
			bench_fill_block(io->buf + (size_t)k * KEEL_BLOCK_SIZE, b->o.inode,
					 (uint64_t)k * KEEL_BLOCK_SIZE, idx * BENCH_MAX_DEPTH + i,
					 b->o.seed);
		}
	}
	return 0;
}

/* ---- volume mode: the same load through libkeel against a cluster ---- */

#define VB_WID_BITS   40
#define VB_WID_MASK   ((1ull << VB_WID_BITS) - 1)
#define VB_CHAIN_WALK 4096 /* older writes of one slot examined per read */
#define VB_HANG_GRACE_NS (60ull * 1000 * 1000 * 1000) /* outstanding I/O after the run */
#define VB_HIST_BATCH 4096

/* One write of this run, indexed by the low bits of its id. */
struct vb_write {
	uint64_t start, end; /* end 0: not completed */
	uint32_t prev;	     /* previous write of the same slot (0: none) */
	bool ok;
};

struct vb_io {
	struct vbench *vb;
	uint8_t *buf;
	struct iovec iov;
	uint64_t off, start_ns;
	uint32_t widx;
	bool is_write, busy;
};

struct vbench {
	struct bench_opts *o;
	struct reactor *r;
	struct keel_cluster *c;
	struct keel_volume *v;
	int open_res;
	bool opened;
	uint64_t inode, nslots, run_id;
	struct vb_io *ios;
	unsigned int busy;
	uint64_t issued, rng, seq_next;
	uint64_t t_start, t_end;
	bool stopping, done;
	struct reactor_timer timer;
	bool timer_armed;
	/* verify model */
	struct vb_write *wtab;
	uint32_t nw, wcap;
	uint32_t *slot_last;
	/* history */
	FILE *hist;
	struct kh_rec *hbuf;
	unsigned int hn;
	/* results */
	struct bench_hist h_read, h_write;
	uint64_t bytes_read, bytes_written, errors, mismatches, verified, concurrent;
	uint64_t torn, misplaced, garbage, stale, future;
	const char *fatal;
	char hang_msg[128];
	/* Neither --verify nor --history: nothing reads the blocks' content,
	 * so writes stamp a header on a body filled once (body_crc). */
	bool plain;
	uint32_t body_crc;
};

static uint32_t vb_body_crc(const uint8_t *blk)
{
	return crc32c(0, blk + sizeof(struct kh_block_hdr),
		      KEEL_BLOCK_SIZE - sizeof(struct kh_block_hdr));
}

/* Write @blk's header over a body whose crc is @body_crc. */
static void vb_stamp_block(uint8_t *blk, uint64_t inode, uint64_t block, uint64_t wid,
			   uint32_t body_crc)
{
	struct kh_block_hdr h = {KH_BLOCK_MAGIC, inode, block, wid, body_crc, 0};

	memcpy(blk, &h, sizeof(h));
}

/* A body derived from the header's fields, then the header. */
static void vb_fill_block(uint8_t *blk, uint64_t inode, uint64_t block, uint64_t wid)
{
	uint64_t x = wid ^ (block * 0x9e3779b97f4a7c15ull) ^ inode;
	uint64_t *w = (uint64_t *)blk;

	for (unsigned int i = sizeof(struct kh_block_hdr) / 8; i < KEEL_BLOCK_SIZE / 8; i++) {
		w[i] = splitmix64(&x);
	}
	vb_stamp_block(blk, inode, block, wid, vb_body_crc(blk));
}

/* Classify a block read back from @block. */
static enum kh_found vb_parse_block(const struct vbench *vb, const uint8_t *blk, uint64_t block,
				    uint64_t *wid)
{
	struct kh_block_hdr h;

	*wid = 0;
	if (bench_is_zero(blk, KEEL_BLOCK_SIZE)) {
		return KH_FOUND_ZERO;
	}
	memcpy(&h, blk, sizeof(h));
	if (h.magic != KH_BLOCK_MAGIC) {
		return KH_FOUND_GARBAGE;
	}
	*wid = h.wid;
	if (h.inode != vb->inode || h.block != block) {
		return KH_FOUND_MISPLACED;
	}
	if (vb_body_crc(blk) != h.body_crc) {
		return KH_FOUND_TORN;
	}
	return KH_FOUND_DATA;
}

static void vb_hist_flush(struct vbench *vb)
{
	if (vb->hist && vb->hn) {
		if (fwrite(vb->hbuf, sizeof(*vb->hbuf), vb->hn, vb->hist) != vb->hn) {
			vb->fatal = "cannot write the history file";
		}
	}
	vb->hn = 0;
}

static void vb_hist_add(struct vbench *vb, const struct vb_io *io, uint64_t block, uint64_t wid,
			enum kh_found found, int res, uint64_t end)
{
	struct kh_rec *r;

	if (!vb->hist) {
		return;
	}
	if (vb->hn == VB_HIST_BATCH) {
		vb_hist_flush(vb);
	}
	r = &vb->hbuf[vb->hn++];
	memset(r, 0, sizeof(*r));
	r->start_ns = io->start_ns;
	r->end_ns = end;
	r->block = block;
	r->wid = wid;
	r->op = io->is_write ? KH_OP_WRITE : KH_OP_READ;
	r->found = (uint8_t)found;
	r->result = (int16_t)res;
}

/*
 * Verify one block of a read of slot @slot over [start, end]: the value
 * must be a write concurrent with the read, or a completed one not
 * superseded before the read started, or the initial content when no
 * write completed before it (the same rule as keel-histcheck).
 */
static void vb_check(struct vbench *vb, uint64_t slot, uint64_t block, enum kh_found found,
		     uint64_t wid, uint64_t start, uint64_t end)
{
	const struct vb_write *x = NULL;
	uint64_t s_max = 0;
	bool done_before = false;
	const char *bad = NULL;
	uint32_t i = vb->slot_last[slot];

	vb->verified++;
	switch (found) {
	case KH_FOUND_TORN:
		vb->torn++;
		bad = "torn block (body does not match its header)";
		goto out_bad;
	case KH_FOUND_MISPLACED:
		vb->misplaced++;
		bad = "misplaced block (other inode or offset)";
		goto out_bad;
	case KH_FOUND_GARBAGE:
		vb->garbage++;
		bad = "foreign data";
		goto out_bad;
	default:
		break;
	}
	/* Newest completed-before write: writes are chained in issue order,
	 * so the first one found has the largest start. */
	for (unsigned int n = 0; i && n < VB_CHAIN_WALK; n++, i = vb->wtab[i].prev) {
		const struct vb_write *w = &vb->wtab[i];

		if (w->ok && w->end && w->end < start) {
			done_before = true;
			s_max = w->start;
			break;
		}
	}
	if (found == KH_FOUND_DATA && (wid >> VB_WID_BITS) == vb->run_id &&
	    (wid & VB_WID_MASK) < vb->nw && (wid & VB_WID_MASK)) {
		x = &vb->wtab[wid & VB_WID_MASK];
	}
	if (!x) {
		if (!done_before) {
			return; /* zeroes or an older run's data: initial content */
		}
		vb->stale++;
		bad = "stale or lost: initial content after a completed write";
		goto out_bad;
	}
	if (x->start > end) {
		vb->future++;
		bad = "value of a write issued after the read completed";
		goto out_bad;
	}
	if (!x->end || !x->ok || x->end >= start) {
		vb->concurrent++;
		return;
	}
	if (!done_before || x->end >= s_max) {
		return;
	}
	vb->stale++;
	bad = "stale or lost: an older write than the last completed one";
out_bad:
	vb->mismatches++;
	if (vb->mismatches <= BENCH_REPORT_MISMATCHES) {
		fprintf(stderr, "keel-bench: verify: block %llu: %s (found wid %#llx)\n",
			(unsigned long long)block, bad, (unsigned long long)wid);
	}
}

static void vb_kick(struct vbench *vb);

static void vb_io_done(void *arg, int res)
{
	struct vb_io *io = arg;
	struct vbench *vb = io->vb;
	uint64_t now = reactor_now_ns();
	uint64_t lat = now - io->start_ns;
	uint32_t per = vb->o->bs / KEEL_BLOCK_SIZE;
	uint64_t blk0 = io->off / KEEL_BLOCK_SIZE;
	uint64_t slot = io->off / vb->o->bs;

	io->busy = false;
	vb->busy--;
	if (res) {
		vb->errors++;
		if (vb->errors <= BENCH_REPORT_MISMATCHES) {
			fprintf(stderr, "keel-bench: %s at %llu: %s\n",
				io->is_write ? "write" : "read", (unsigned long long)io->off,
				strerror(-res));
		}
	}
	if (io->is_write) {
		uint64_t wid = (vb->run_id << VB_WID_BITS) | io->widx;

		vb->wtab[io->widx].end = now;
		vb->wtab[io->widx].ok = !res;
		for (uint32_t i = 0; i < per; i++) {
			vb_hist_add(vb, io, blk0 + i, wid, 0, res, now);
		}
		if (!res) {
			vb->bytes_written += vb->o->bs;
			hist_add(&vb->h_write, lat);
		}
	} else {
		for (uint32_t i = 0; i < per; i++) {
			enum kh_found found = KH_FOUND_ZERO;
			uint64_t wid = 0;

			if (!res && !vb->plain) {
				found = vb_parse_block(vb, io->buf + (size_t)i * KEEL_BLOCK_SIZE,
						       blk0 + i, &wid);
				if (vb->o->verify) {
					vb_check(vb, slot, blk0 + i, found, wid, io->start_ns, now);
				}
			}
			vb_hist_add(vb, io, blk0 + i, wid, found, res, now);
		}
		if (!res) {
			vb->bytes_read += vb->o->bs;
			hist_add(&vb->h_read, lat);
		}
	}
	vb_kick(vb);
}

static bool vb_may_issue_at(struct vbench *vb, uint64_t now)
{
	if (vb->stopping || vb->fatal) {
		return false;
	}
	if (vb->o->ios) {
		return vb->issued < vb->o->ios;
	}
	return now < vb->t_end;
}

static int vb_grow_wtab(struct vbench *vb)
{
	struct vb_write *n;
	uint32_t cap;

	if (vb->nw < vb->wcap) {
		return 0;
	}
	/* Amortized doubling: a few reallocs per run, not per I/O. */
	cap = vb->wcap ? vb->wcap * 2 : 65536;
	if (cap < vb->wcap) { /* 2^32 writes: far beyond any run */
		return -ENOSPC;
	}
	n = realloc(vb->wtab, (size_t)cap * sizeof(*n));
	if (!n) {
		return -ENOMEM;
	}
	vb->wtab = n;
	vb->wcap = cap;
	return 0;
}

static int vb_issue(struct vbench *vb, struct vb_io *io, uint64_t now)
{
	struct bench_opts *o = vb->o;
	uint64_t slot;
	int ret;

	if (o->rw == BENCH_WRITE || o->rw == BENCH_READ) {
		slot = vb->seq_next++ % vb->nslots;
	} else {
		slot = splitmix64(&vb->rng) % vb->nslots;
	}
	io->off = slot * o->bs;
	io->is_write = o->rw == BENCH_RANDWRITE || o->rw == BENCH_WRITE ||
		       (o->rw == BENCH_RANDRW && splitmix64(&vb->rng) % 100 >= o->rwmixread);
	io->iov.iov_base = io->buf;
	io->iov.iov_len = o->bs;
	io->start_ns = now;
	if (io->is_write) {
		struct vb_write *w;

		ret = vb_grow_wtab(vb);
		if (ret) {
			vb->fatal = "too many writes for the verify model";
			return ret;
		}
		io->widx = vb->nw++;
		w = &vb->wtab[io->widx];
		w->start = io->start_ns;
		w->end = 0;
		w->ok = false;
		w->prev = vb->slot_last[slot];
		vb->slot_last[slot] = io->widx;
		for (uint32_t i = 0; i < o->bs / KEEL_BLOCK_SIZE; i++) {
			uint8_t *p = io->buf + (size_t)i * KEEL_BLOCK_SIZE;
			uint64_t wid = (vb->run_id << VB_WID_BITS) | io->widx;

			if (vb->plain) {
				vb_stamp_block(p, vb->inode, io->off / KEEL_BLOCK_SIZE + i, wid,
					       vb->body_crc);
			} else {
				vb_fill_block(p, vb->inode, io->off / KEEL_BLOCK_SIZE + i, wid);
			}
		}
		ret = keel_writev(vb->v, &io->iov, 1, io->off, vb_io_done, io);
	} else {
		ret = keel_readv(vb->v, &io->iov, 1, io->off, vb_io_done, io);
	}
	if (ret) {
		if (io->is_write) {
			vb->wtab[io->widx].end = io->start_ns; /* never sent: harmless */
		}
		return ret;
	}
	io->busy = true;
	vb->busy++;
	vb->issued++;
	return 0;
}

static void vb_kick(struct vbench *vb)
{
	uint64_t now = reactor_now_ns(); /* one clock read per kick, not per slot */

	for (unsigned int i = 0; i < vb->o->iodepth && vb_may_issue_at(vb, now); i++) {
		if (vb->ios[i].busy) {
			continue;
		}
		if (vb_issue(vb, &vb->ios[i], now)) {
			break;
		}
	}
	if (!vb->busy && !vb_may_issue_at(vb, now)) {
		vb->done = true;
		if (!vb->t_end || vb->o->ios || reactor_now_ns() < vb->t_end) {
			vb->t_end = reactor_now_ns();
		}
	}
}

static void vb_timer(struct reactor_timer *t)
{
	struct vbench *vb = container_of(t, struct vbench, timer);

	vb->timer_armed = false;
	vb_kick(vb);
	/*
	 * A time-based run ends at t_end; requests still outstanding long
	 * after it are an I/O hang (libkeel retries failover forever): report
	 * it and stop rather than wait forever.
	 */
	if (!vb->done && !vb->o->ios && vb->busy &&
	    reactor_now_ns() > vb->t_end + VB_HANG_GRACE_NS) {
		snprintf(vb->hang_msg, sizeof(vb->hang_msg),
			 "%u requests still outstanding %llu s after the end of the run (I/O hang)",
			 vb->busy, (unsigned long long)(VB_HANG_GRACE_NS / 1000000000ull));
		vb->fatal = vb->hang_msg;
		vb->done = true;
	}
	if (!vb->done) {
		vb->timer_armed = true;
		reactor_timer_start(vb->r, t, 100ull * 1000 * 1000, vb_timer);
	}
}

static void vb_cluster_cb(struct keel_cluster *c, int res, void *arg)
{
	struct vbench *vb = arg;

	vb->open_res = res;
	vb->opened = true;
}

static void vb_volume_cb(struct keel_volume *v, int res, void *arg)
{
	struct vbench *vb = arg;

	vb->open_res = res;
	vb->opened = true;
}

static int vb_wait_open(struct vbench *vb)
{
	uint64_t deadline = reactor_now_ns() + 30ull * 1000 * 1000 * 1000;

	while (!vb->opened && reactor_now_ns() < deadline) {
		if (reactor_poll(vb->r, true) < 0) {
			return -EIO;
		}
	}
	if (!vb->opened) {
		return -ETIMEDOUT;
	}
	vb->opened = false;
	return vb->open_res;
}

/* CPU (user + system, every thread) this process has used so far. */
static double process_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru)) {
		return 0;
	}
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void vb_report(struct vbench *vb)
{
	struct bench_opts *o = vb->o;
	double secs = (vb->t_end - vb->t_start) / 1e9;
	double cpu;
	struct keel_volume_stats st;
	struct bench_hist all;
	bool ok = !vb->errors && !vb->mismatches && !vb->fatal;

	if (secs <= 0) {
		secs = 1e-9;
	}
	keel_volume_stats(vb->v, &st);
	hist_merge(&all, &vb->h_read, &vb->h_write);
	cpu = process_cpu_s();
	if (o->json) {
		printf("{\"mode\":\"volume\",\"volume\":\"%s\",\"rw\":\"%s\",\"bs\":%u,"
		       "\"iodepth\":%u,\"size\":%llu,\"object_size\":%u,\"runtime_s\":%.3f,"
		       "\"cpu_s\":%.3f,",
		       o->volume, bench_rw_names[o->rw], o->bs, o->iodepth,
		       (unsigned long long)o->size, keel_volume_info(vb->v)->object_size, secs,
		       cpu);
		print_hist_json("total", &all, secs, vb->bytes_read + vb->bytes_written, true);
		print_hist_json("read", &vb->h_read, secs, vb->bytes_read, true);
		print_hist_json("write", &vb->h_write, secs, vb->bytes_written, true);
		printf("\"errors\":%llu,\"retries\":%llu,\"reconnects\":%llu,\"stale_epochs\":%llu,"
		       "\"max_stall_ms\":%.3f,\"verify\":%s,\"verified_blocks\":%llu,"
		       "\"concurrent_reads\":%llu,\"verify_mismatches\":%llu,\"stale_or_lost\":%llu,"
		       "\"torn\":%llu,\"misplaced\":%llu,\"foreign\":%llu,\"future\":%llu,"
		       "\"epoch\":%llu,\"ok\":%s}\n",
		       (unsigned long long)vb->errors, (unsigned long long)st.retries,
		       (unsigned long long)st.reconnects, (unsigned long long)st.stale_epochs,
		       st.max_stall_ns / 1e6, o->verify ? "true" : "false",
		       (unsigned long long)vb->verified, (unsigned long long)vb->concurrent,
		       (unsigned long long)vb->mismatches, (unsigned long long)vb->stale,
		       (unsigned long long)vb->torn, (unsigned long long)vb->misplaced,
		       (unsigned long long)vb->garbage, (unsigned long long)vb->future,
		       (unsigned long long)keel_cluster_epoch(vb->c), ok ? "true" : "false");
		return;
	}
	printf("keel-bench: volume %s %s bs=%u iodepth=%u size=%llu object_size=%u, %.2f s, "
	       "client CPU %.2f s\n",
	       o->volume, bench_rw_names[o->rw], o->bs, o->iodepth, (unsigned long long)o->size,
	       keel_volume_info(vb->v)->object_size, secs, cpu);
	print_hist_text("read", &vb->h_read, secs, vb->bytes_read);
	print_hist_text("write", &vb->h_write, secs, vb->bytes_written);
	print_hist_text("total", &all, secs, vb->bytes_read + vb->bytes_written);
	printf("errors: %llu  retries: %llu  reconnects: %llu  stale epochs: %llu  "
	       "longest stall: %.1f ms  map epoch: %llu\n",
	       (unsigned long long)vb->errors, (unsigned long long)st.retries,
	       (unsigned long long)st.reconnects, (unsigned long long)st.stale_epochs,
	       st.max_stall_ns / 1e6, (unsigned long long)keel_cluster_epoch(vb->c));
	if (o->verify) {
		printf("verify: %llu blocks checked (%llu saw a concurrent write), %llu mismatches "
		       "(stale/lost %llu, torn %llu, misplaced %llu, foreign %llu, future %llu)\n",
		       (unsigned long long)vb->verified, (unsigned long long)vb->concurrent,
		       (unsigned long long)vb->mismatches, (unsigned long long)vb->stale,
		       (unsigned long long)vb->torn, (unsigned long long)vb->misplaced,
		       (unsigned long long)vb->garbage, (unsigned long long)vb->future);
	}
}

static int vbench_main(struct bench_opts *o)
{
	struct keel_cluster_opts copts = {0};
	struct vbench vbs = {0}, *vb = &vbs;
	const struct keel_volume_info *vi;
	uint64_t deadline;
	uint8_t *arena;
	int ret, status;

	klog_set_ident("keel-bench");
	klog_set_level(KLOG_ERROR);
	vb->o = o;
	vb->rng = o->seed;
	vb->run_id = (splitmix64(&vb->rng) & 0xffffff) | 1;
	copts.mgmt_url = o->mgmt_url;
	copts.key_file = o->key_file;
	copts.name = "keel-bench";
	copts.transport = o->transport;
	ret = reactor_create(1024, &vb->r);
	if (!ret) {
		reactor_set_poll_us(vb->r, o->poll_us);
	}
	if (ret) {
		fprintf(stderr, "keel-bench: cannot create reactor: %s\n", strerror(-ret));
		return 2;
	}
	ret = keel_cluster_open(vb->r, &copts, vb_cluster_cb, vb, &vb->c);
	if (!ret) {
		ret = vb_wait_open(vb);
		if (ret) {
			vb->c = NULL; /* a failed open closes itself */
		}
	}
	if (ret) {
		fprintf(stderr, "keel-bench: cannot open the cluster: %s\n", strerror(-ret));
		return 2;
	}
	ret = keel_volume_open(vb->c, o->volume, vb_volume_cb, vb, &vb->v);
	if (!ret) {
		ret = vb_wait_open(vb);
	}
	if (ret) {
		fprintf(stderr, "keel-bench: cannot open volume %s: %s\n", o->volume,
			strerror(-ret));
		return 2;
	}
	vi = keel_volume_info(vb->v);
	vb->inode = vi->inode;
	if (!o->size_set || o->size > vi->size) {
		o->size = vi->size / o->bs * o->bs;
	}
	vb->nslots = o->size / o->bs;
	vb->ios = calloc(o->iodepth, sizeof(*vb->ios));
	vb->slot_last = calloc(vb->nslots ? vb->nslots : 1, sizeof(uint32_t));
	if (!vb->nslots || !vb->ios || !vb->slot_last || vb_grow_wtab(vb)) {
		fprintf(stderr, "keel-bench: volume too small for --bs, or out of memory\n");
		return 2;
	}
	vb->nw = 1; /* index 0 means "no write" */
	arena = aligned_alloc(KEEL_BLOCK_SIZE, (size_t)o->iodepth * o->bs);
	if (!arena) {
		fprintf(stderr, "keel-bench: out of memory\n");
		return 2;
	}
	/* One range for every I/O buffer: on RDMA the servers read the
	 * payloads in place (a failure only means copies). */
	keel_mem_register(arena, (size_t)o->iodepth * o->bs);
	vb->plain = !o->verify && !o->history_file;
	for (unsigned int i = 0; i < o->iodepth; i++) {
		vb->ios[i].vb = vb;
		vb->ios[i].buf = arena + (size_t)i * o->bs;
	}
	/* Every block gets the same body; plain writes keep it. */
	for (size_t k = 0; k < (size_t)o->iodepth * o->bs / KEEL_BLOCK_SIZE; k++) {
		vb_fill_block(arena + k * KEEL_BLOCK_SIZE, vb->inode, 0, 0);
	}
	vb->body_crc = vb_body_crc(arena);
	if (o->history_file) {
		struct kh_file_hdr fh = {KH_FILE_MAGIC, KH_VERSION, sizeof(struct kh_rec),
					 vb->inode, o->size / KEEL_BLOCK_SIZE,
					 vb->run_id};

		vb->hist = fopen(o->history_file, "w");
		vb->hbuf = calloc(VB_HIST_BATCH, sizeof(*vb->hbuf));
		if (!vb->hist || !vb->hbuf || fwrite(&fh, sizeof(fh), 1, vb->hist) != 1) {
			fprintf(stderr, "keel-bench: cannot write %s\n", o->history_file);
			return 2;
		}
	}
	vb->t_start = reactor_now_ns();
	vb->t_end = vb->t_start + (uint64_t)(o->runtime * 1e9);
	vb->timer_armed = true;
	reactor_timer_start(vb->r, &vb->timer, 100ull * 1000 * 1000, vb_timer);
	vb_kick(vb);
	while (!vb->done) {
		ret = reactor_poll(vb->r, true);
		if (ret < 0) {
			vb->fatal = "reactor failed";
			break;
		}
	}
	vb_hist_flush(vb);
	if (vb->hist && fclose(vb->hist)) {
		vb->fatal = "cannot write the history file";
	}
	vb_report(vb);
	if (vb->fatal) {
		fprintf(stderr, "keel-bench: %s\n", vb->fatal);
	}
	status = (vb->errors || vb->mismatches || vb->fatal) ? 1 : 0;
	keel_volume_close(vb->v);
	keel_cluster_close(vb->c);
	/* Let the closes reach the servers; the process exits right after, so
	 * the reactor is not destroyed under the library's last timers. */
	deadline = reactor_now_ns() + 300ull * 1000 * 1000;
	while (reactor_now_ns() < deadline) {
		if (reactor_poll(vb->r, false) < 0) {
			break;
		}
		usleep(1000);
	}
	return status;
}

/* One stderr line per transport that carried anything (tests read it). */
static void bench_print_xport_stats(void)
{
	static const char *const names[] = {"tcp", "rdma"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct xport_ops *x = xport_find(names[i]);
		const struct xport_stats *st = x ? x->stats : NULL;

		if (!st || (!st->conns && !st->bytes_in && !st->bytes_out)) {
			continue;
		}
		fprintf(stderr,
			"keel-bench: transport %s: conns %llu, in %llu bytes / %llu msgs, out %llu "
			"bytes / %llu msgs, rdma_read %llu bytes, zero_copy %llu bytes\n",
			names[i], (unsigned long long)st->conns, (unsigned long long)st->bytes_in,
			(unsigned long long)st->msgs_in, (unsigned long long)st->bytes_out,
			(unsigned long long)st->msgs_out, (unsigned long long)st->rdma_read_bytes,
			(unsigned long long)st->zero_copy_bytes);
	}
}

int main(int argc, char **argv)
{
	struct bench *b = &bench;
	char err[256];
	int ret, status;

	ret = bench_parse(argc, argv, &b->o);
	if (ret) {
		return ret < 0 ? 0 : ret;
	}
	if (xport_select(b->o.transport ? b->o.transport : "tcp", &b->o.xops, err, sizeof(err))) {
		fprintf(stderr, "keel-bench: --transport: %s\n", err);
		return 2;
	}
	if (b->o.volume) {
		status = vbench_main(&b->o);
		bench_print_xport_stats();
		return status;
	}
	b->rng = b->o.seed;
	klog_set_ident("keel-bench");
	klog_set_level(KLOG_ERROR);
	ret = kp_key_load(b->o.key_file, &b->key, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "keel-bench: %s\n", err);
		return 2;
	}
	b->expect = aligned_alloc(KEEL_BLOCK_SIZE, KEEL_BLOCK_SIZE);
	ret = reactor_create(1024, &b->r);
	if (!ret) {
		reactor_set_poll_us(b->r, b->o.poll_us);
	}
	if (ret || !b->expect) {
		fprintf(stderr, "keel-bench: cannot create reactor: %s\n", strerror(-ret));
		return 2;
	}
	for (unsigned int i = 0; i < b->o.conns; i++) {
		struct bench_conn *c = &b->conns[i];
		struct xport_conn *xc;

		ret = bench_alloc_conn(b, c, i);
		if (ret) {
			fprintf(stderr, "keel-bench: out of memory\n");
			return 2;
		}
		ret = b->o.xops->connect(b->r, b->o.server, &xc);
		if (ret) {
			fprintf(stderr, "keel-bench: cannot connect to %s: %s\n", b->o.server,
				strerror(-ret));
			return 2;
		}
		ret = kp_conn_client(xc, &b->key, "keel-bench", &bench_cbs, c, &c->kc);
		if (ret) {
			fprintf(stderr, "keel-bench: cannot start connection: %s\n",
				strerror(-ret));
			return 2;
		}
		b->nalive++;
	}
	b->timer_armed = true;
	reactor_timer_start(b->r, &b->timer, 10ull * 1000 * 1000 * 1000, bench_timer_fired);
	b->phase = BENCH_PH_CONNECT;
	ret = reactor_run(b->r);
	if (ret) {
		fprintf(stderr, "keel-bench: reactor failed: %s\n", strerror(-ret));
		b->fatal = true;
	}
	if (b->o.verify && b->o.state_file && b->blk_ver) {
		ret = bench_state_save(b);
		if (ret) {
			fprintf(stderr, "keel-bench: cannot save state %s: %s\n", b->o.state_file,
				strerror(-ret));
			b->fatal = true;
		}
	}
	if (b->fatal && !b->t_start) {
		fprintf(stderr, "keel-bench: %s\n", b->fatal_reason ? b->fatal_reason : "failed");
		return 2;
	}
	bench_report(b);
	if (b->fatal) {
		fprintf(stderr, "keel-bench: %s\n", b->fatal_reason ? b->fatal_reason : "failed");
	}
	status = (b->errors || b->mismatches || b->fatal) ? 1 : 0;
	/* Close connections politely, then let the reactor deliver on_close. */
	if (b->timer_armed) {
		reactor_timer_cancel(b->r, &b->timer);
	}
	for (unsigned int i = 0; i < b->o.conns; i++) {
		if (b->conns[i].kc) {
			kp_conn_close(b->conns[i].kc, 0, "benchmark done");
		}
	}
	for (int spins = 0; spins < 1000 && b->nalive; spins++) {
		reactor_poll(b->r, true);
	}
	bench_print_xport_stats();
	return status;
}
