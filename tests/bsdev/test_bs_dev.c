/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs_dev backends: the common contract on "ram", "sim" and "uring", the
 * simulator's crash/fault model, and the uring backend against a real file.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/reactor.h"
#include "server/bs_dev.h"

#define BLK	  4096u
#define MAX_TURNS 100000

struct tio {
	struct bs_io io;
	int res;
	int done;  /* times the callback fired */
	int order; /* completion rank */
	unsigned int id;
};

static int g_completed;

static void tio_cb(struct bs_io *io, int res)
{
	struct tio *t = container_of(io, struct tio, io);

	t->res = res;
	t->done++;
	t->order = g_completed++;
}

static void tio_init(struct tio *t, unsigned int id)
{
	memset(t, 0, sizeof(*t));
	t->io.cb = tio_cb;
	t->order = -1;
	t->id = id;
}

static void *abuf(size_t len)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, BLK, len), 0);
	memset(p, 0, len);
	return p;
}

/* Fill one 4 KiB block with a pattern unique to (tag, blk). */
static void fill_block(uint8_t *b, uint64_t tag, uint64_t blk)
{
	uint64_t x = tag * 0x9e3779b97f4a7c15ull ^ (blk + 1) * 0xc2b2ae3d27d4eb4full;
	size_t i;

	for (i = 0; i < BLK; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(b + i, &x, 8);
	}
}

static bool block_is(const uint8_t *b, uint64_t tag, uint64_t blk)
{
	uint8_t want[BLK];

	fill_block(want, tag, blk);
	return !memcmp(b, want, BLK);
}

static bool block_zero(const uint8_t *b)
{
	size_t i;

	for (i = 0; i < BLK; i++) {
		if (b[i]) {
			return false;
		}
	}
	return true;
}

/* Run the loop until g_completed reaches @target (fails the test if it never
 * does). Waits in the kernel only for real I/O (@wait). */
static void run_until(struct reactor *r, int target, bool wait)
{
	int turns = 0;

	while (g_completed < target) {
		assert_true(reactor_poll(r, wait) >= 0);
		assert_true(++turns < MAX_TURNS);
	}
	assert_int_equal(g_completed, target);
}

/* Read @len bytes at @off with nothing else in flight and wait for it:
 * returns the completion's result. */
static int read_wait(struct bs_dev *dev, struct reactor *r, void *buf, size_t len, uint64_t off)
{
	struct tio t;

	tio_init(&t, 0);
	assert_int_equal(bs_dev_read(dev, buf, len, off, &t.io), 0);
	run_until(r, g_completed + 1, false);
	assert_int_equal(t.done, 1);
	return t.res;
}

static void spin(struct reactor *r, int turns)
{
	while (turns--) {
		assert_true(reactor_poll(r, false) >= 0);
	}
}

/* ---- per-backend fixture ---- */

struct fix {
	struct reactor *r;
	struct bs_dev *dev;
	const char *backend;
	char dir[64];
	char path[128];
	bool wait;
};

static int fix_open(struct fix *f, const char *backend, uint64_t size)
{
	int ret;

	memset(f, 0, sizeof(*f));
	f->backend = backend;
	g_completed = 0;
	ret = reactor_create(256, &f->r);
	if (ret) {
		return ret;
	}
	if (!strcmp(backend, "uring")) {
		strcpy(f->dir, "/tmp/keel-bsdev-XXXXXX");
		if (!mkdtemp(f->dir)) {
			return -errno;
		}
		snprintf(f->path, sizeof(f->path), "%s/dev.img", f->dir);
		f->wait = true;
	} else {
		snprintf(f->path, sizeof(f->path), "%s-test", backend);
	}
	return bs_dev_open(f->r, backend, f->path, size, &f->dev);
}

static void fix_close(struct fix *f)
{
	bs_dev_close(f->dev);
	f->dev = NULL;
	reactor_destroy(f->r);
	if (f->dir[0]) {
		unlink(f->path);
		rmdir(f->dir);
	}
}

static int setup_ram(void **state)
{
	struct fix *f = malloc(sizeof(*f));

	assert_int_equal(fix_open(f, "ram", 8u << 20), 0);
	*state = f;
	return 0;
}

static int setup_sim(void **state)
{
	struct fix *f = malloc(sizeof(*f));

	assert_int_equal(fix_open(f, "sim", 8u << 20), 0);
	*state = f;
	return 0;
}

/* The fixture, or skip the test when its setup found the backend unusable. */
static struct fix *fix_of(void **state)
{
	if (!*state) {
		skip();
	}
	return *state;
}

/* Can this directory do O_DIRECT at all (tmpfs cannot)? */
static bool dir_has_odirect(const char *dir)
{
	char p[160];
	int fd;

	snprintf(p, sizeof(p), "%s/probe", dir);
	fd = open(p, O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd < 0) {
		return false;
	}
	close(fd);
	unlink(p);
	return true;
}

/* Leaves *state NULL (the tests then skip; never pass) where io_uring or O_DIRECT is unavailable.
 */
static int setup_uring(void **state)
{
	struct fix *f = malloc(sizeof(*f));
	int ret = fix_open(f, "uring", 8u << 20);

	if (ret == -ENOSYS || ret == -EPERM || (ret == -EINVAL && !dir_has_odirect(f->dir))) {
		fprintf(stderr, "uring backend unavailable here (%s): skipped\n", strerror(-ret));
		fix_close(f);
		free(f);
		*state = NULL;
		return 0;
	}
	assert_int_equal(ret, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (!f) {
		return 0;
	}
	fix_close(f);
	free(f);
	return 0;
}

/* ---- common contract ---- */

static void test_roundtrip(void **state)
{
	struct fix *f = fix_of(state);
	size_t len = 64 * BLK;
	uint8_t *w = abuf(len), *rd = abuf(len);
	uint64_t offs[] = {0, 12 * BLK, f->dev->size - len};
	struct tio t;
	size_t i, b;

	assert_string_equal(f->dev->path, f->path);
	assert_int_equal(f->dev->size, 8u << 20);
	for (i = 0; i < 3; i++) {
		for (b = 0; b < len / BLK; b++) {
			fill_block(w + b * BLK, 100 + i, b);
		}
		tio_init(&t, 0);
		assert_int_equal(bs_dev_write(f->dev, w, len, offs[i], &t.io), 0);
		assert_int_equal(t.done, 0); /* never inline */
		run_until(f->r, g_completed + 1, f->wait);
		assert_int_equal(t.done, 1);
		assert_int_equal(t.res, (int)len);

		tio_init(&t, 0);
		assert_int_equal(bs_dev_flush(f->dev, &t.io), 0);
		assert_int_equal(t.done, 0);
		run_until(f->r, g_completed + 1, f->wait);
		assert_int_equal(t.res, 0);

		memset(rd, 0xee, len);
		tio_init(&t, 0);
		assert_int_equal(bs_dev_read(f->dev, rd, len, offs[i], &t.io), 0);
		assert_int_equal(t.done, 0);
		run_until(f->r, g_completed + 1, f->wait);
		assert_int_equal(t.done, 1);
		assert_int_equal(t.res, (int)len);
		assert_memory_equal(rd, w, len);
	}
	free(w);
	free(rd);
}

/* A read after a completed write sees it, flush or not. */
static void test_read_after_write(void **state)
{
	struct fix *f = fix_of(state);
	uint8_t *w = abuf(BLK), *rd = abuf(BLK);
	struct tio t;

	fill_block(w, 7, 7);
	tio_init(&t, 0);
	assert_int_equal(bs_dev_write(f->dev, w, BLK, 5 * BLK, &t.io), 0);
	run_until(f->r, g_completed + 1, f->wait);
	assert_int_equal(t.res, (int)BLK);
	tio_init(&t, 0);
	assert_int_equal(bs_dev_read(f->dev, rd, BLK, 5 * BLK, &t.io), 0);
	run_until(f->r, g_completed + 1, f->wait);
	assert_int_equal(t.res, (int)BLK);
	assert_memory_equal(rd, w, BLK);
	free(w);
	free(rd);
}

static void test_einval(void **state)
{
	struct fix *f = fix_of(state);
	uint8_t *b = abuf(4 * BLK);
	uint64_t size = f->dev->size;
	struct tio t;
	int before;

	tio_init(&t, 0);
	before = g_completed;
	/* misaligned buffer, length, offset; zero length */
	assert_int_equal(bs_dev_read(f->dev, b + 512, BLK, 0, &t.io), -EINVAL);
	assert_int_equal(bs_dev_write(f->dev, b + 1, BLK, 0, &t.io), -EINVAL);
	assert_int_equal(bs_dev_read(f->dev, b, 100, 0, &t.io), -EINVAL);
	assert_int_equal(bs_dev_write(f->dev, b, BLK + 512, 0, &t.io), -EINVAL);
	assert_int_equal(bs_dev_read(f->dev, b, BLK, 512, &t.io), -EINVAL);
	assert_int_equal(bs_dev_write(f->dev, b, BLK, 1, &t.io), -EINVAL);
	assert_int_equal(bs_dev_read(f->dev, b, 0, 0, &t.io), -EINVAL);
	assert_int_equal(bs_dev_write(f->dev, b, 0, 0, &t.io), -EINVAL);
	/* out of range, and offsets that would wrap */
	assert_int_equal(bs_dev_read(f->dev, b, BLK, size, &t.io), -EINVAL);
	assert_int_equal(bs_dev_write(f->dev, b, 2 * BLK, size - BLK, &t.io), -EINVAL);
	assert_int_equal(bs_dev_write(f->dev, b, BLK, UINT64_MAX - BLK + 1, &t.io), -EINVAL);
	assert_int_equal(bs_dev_read(f->dev, b, 2 * BLK, UINT64_MAX - BLK + 1, &t.io), -EINVAL);
	assert_int_equal(bs_dev_read(f->dev, b, (size_t)BS_DEV_MAX_IO + BLK, 0, &t.io), -EINVAL);
	/* the edges themselves are fine */
	assert_int_equal(bs_dev_read(f->dev, b, BLK, size - BLK, &t.io), 0);
	run_until(f->r, before + 1, f->wait);
	spin(f->r, 10);
	assert_int_equal(t.done, 1); /* only the valid one fired */
	assert_int_equal(g_completed, before + 1);
	free(b);
}

/* Many requests in flight at once, each on its own blocks. */
static void test_concurrent(void **state)
{
	struct fix *f = fix_of(state);
	enum { N = 200 };
	uint8_t *w = abuf((size_t)N * 2 * BLK), *rd = abuf((size_t)N * 2 * BLK);
	struct tio *t = calloc(N, sizeof(*t));
	struct tio fl;
	unsigned int i;
	int base;

	for (i = 0; i < N; i++) {
		fill_block(w + (size_t)i * 2 * BLK, 900 + i, 0);
		fill_block(w + (size_t)i * 2 * BLK + BLK, 900 + i, 1);
	}
	base = g_completed;
	for (i = 0; i < N; i++) {
		tio_init(&t[i], i);
		assert_int_equal(bs_dev_write(f->dev, w + (size_t)i * 2 * BLK, 2 * BLK,
					      (uint64_t)i * 2 * BLK, &t[i].io),
				 0);
	}
	run_until(f->r, base + N, f->wait);
	for (i = 0; i < N; i++) {
		assert_int_equal(t[i].done, 1);
		assert_int_equal(t[i].res, (int)(2 * BLK));
	}
	tio_init(&fl, 0);
	assert_int_equal(bs_dev_flush(f->dev, &fl.io), 0);
	run_until(f->r, base + N + 1, f->wait);
	assert_int_equal(fl.res, 0);

	base = g_completed;
	for (i = 0; i < N; i++) {
		tio_init(&t[i], i);
		assert_int_equal(bs_dev_read(f->dev, rd + (size_t)i * 2 * BLK, 2 * BLK,
					     (uint64_t)i * 2 * BLK, &t[i].io),
				 0);
	}
	run_until(f->r, base + N, f->wait);
	for (i = 0; i < N; i++) {
		assert_int_equal(t[i].done, 1);
		assert_int_equal(t[i].res, (int)(2 * BLK));
	}
	assert_memory_equal(rd, w, (size_t)N * 2 * BLK);
	free(t);
	free(w);
	free(rd);
}

static void test_open_errors(void **state)
{
	struct reactor *r;
	struct bs_dev *dev = NULL;

	(void)state;
	assert_int_equal(reactor_create(8, &r), 0);
	assert_int_equal(bs_dev_open(r, "nope", "x", 1u << 20, &dev), -EINVAL);
	assert_int_equal(bs_dev_open(r, "ram", "x", 0, &dev), -EINVAL);
	assert_int_equal(bs_dev_open(r, "ram", "x", 4097, &dev), -EINVAL);
	assert_int_equal(bs_dev_open(r, "sim", "x", 0, &dev), -EINVAL);
	assert_int_equal(bs_dev_open(r, "sim", "x", 1000, &dev), -EINVAL);
	assert_int_equal(bs_dev_open(r, "uring", "/nonexistent-dir/x", 0, &dev), -ENOENT);
	assert_int_equal(bs_dev_open(r, "ram", "ramdev", 1u << 20, &dev), 0);
	assert_false(dev->volatile_cache);
	assert_string_equal(dev->path, "ramdev");
	bs_dev_close(dev);
	assert_int_equal(bs_dev_open(r, "sim", "simdev", 1u << 20, &dev), 0);
	assert_true(dev->volatile_cache);
	bs_dev_close(dev);
	reactor_destroy(r);
}

/* ---- simulator ---- */

/* Same seed, same order; different seeds, different orders; and not FIFO. */
static void sim_order(uint64_t seed, int *order, int n)
{
	struct fix f;
	uint8_t *b = abuf(BLK);
	struct tio *t = calloc((size_t)n, sizeof(*t));
	int i;

	assert_int_equal(fix_open(&f, "sim", 1u << 20), 0);
	bs_sim_seed(f.dev, seed);
	for (i = 0; i < n; i++) {
		tio_init(&t[i], (unsigned int)i);
		if (i % 2) {
			assert_int_equal(bs_dev_read(f.dev, b, BLK, 0, &t[i].io), 0);
		} else {
			assert_int_equal(bs_dev_write(f.dev, b, BLK, (uint64_t)i * BLK, &t[i].io),
					 0);
		}
	}
	run_until(f.r, n, false);
	for (i = 0; i < n; i++) {
		assert_int_equal(t[i].done, 1);
		order[i] = t[i].order;
	}
	fix_close(&f);
	free(t);
	free(b);
}

static void test_sim_order_varies(void **state)
{
	enum { N = 32 };
	int a[N], b[N], c[N], fifo[N];
	uint64_t seed;
	int i, distinct = 0, non_fifo = 0;

	(void)state;
	for (i = 0; i < N; i++) {
		fifo[i] = i;
	}
	sim_order(42, a, N);
	sim_order(42, b, N);
	assert_memory_equal(a, b, sizeof(a)); /* replayable */
	for (seed = 1; seed <= 20; seed++) {
		sim_order(seed, c, N);
		distinct += memcmp(a, c, sizeof(a)) != 0;
		non_fifo += memcmp(fifo, c, sizeof(c)) != 0;
	}
	assert_true(distinct >= 19);
	assert_int_equal(non_fifo, 20);
}

static void test_sim_inject(void **state)
{
	struct fix *f = fix_of(state);
	uint8_t *w = abuf(BLK), *rd = abuf(BLK);
	struct tio t[9];
	int i, base;

	fill_block(w, 1, 1);
	/* every 3rd write fails with EIO and stores nothing */
	bs_sim_inject(f->dev, true, BS_SIM_FAULT_EIO, 3);
	base = g_completed;
	for (i = 0; i < 9; i++) {
		tio_init(&t[i], (unsigned int)i);
		assert_int_equal(bs_dev_write(f->dev, w, BLK, (uint64_t)i * BLK, &t[i].io), 0);
	}
	run_until(f->r, base + 9, false);
	for (i = 0; i < 9; i++) {
		assert_int_equal(t[i].res, i % 3 == 2 ? -EIO : (int)BLK);
	}
	/* ENOSPC on every 2nd write */
	bs_sim_inject(f->dev, true, BS_SIM_FAULT_ENOSPC, 2);
	base = g_completed;
	for (i = 0; i < 4; i++) {
		tio_init(&t[i], (unsigned int)i);
		assert_int_equal(bs_dev_write(f->dev, w, BLK, (uint64_t)(20 + i) * BLK, &t[i].io),
				 0);
	}
	run_until(f->r, base + 4, false);
	for (i = 0; i < 4; i++) {
		assert_int_equal(t[i].res, i % 2 ? -ENOSPC : (int)BLK);
	}
	bs_sim_inject(f->dev, true, BS_SIM_FAULT_NONE, 0);

	/* reads: EIO every 2nd; failed writes left zeroes behind */
	bs_sim_inject(f->dev, false, BS_SIM_FAULT_EIO, 2);
	base = g_completed;
	for (i = 0; i < 9; i++) {
		tio_init(&t[0], 0);
		assert_int_equal(bs_dev_read(f->dev, rd, BLK, (uint64_t)i * BLK, &t[0].io), 0);
		run_until(f->r, ++base, false);
		if (i % 2) {
			assert_int_equal(t[0].res, -EIO);
			continue;
		}
		assert_int_equal(t[0].res, (int)BLK);
		assert_true(i % 3 == 2 ? block_zero(rd) : block_is(rd, 1, 1));
	}
	/* ENOSPC does not apply to reads; 0 disables */
	bs_sim_inject(f->dev, false, BS_SIM_FAULT_ENOSPC, 1);
	tio_init(&t[0], 0);
	assert_int_equal(bs_dev_read(f->dev, rd, BLK, 0, &t[0].io), 0);
	run_until(f->r, ++base, false);
	assert_int_equal(t[0].res, (int)BLK);
	bs_sim_inject(f->dev, false, BS_SIM_FAULT_EIO, 0);
	tio_init(&t[0], 0);
	assert_int_equal(bs_dev_read(f->dev, rd, BLK, 0, &t[0].io), 0);
	run_until(f->r, ++base, false);
	assert_int_equal(t[0].res, (int)BLK);
	free(w);
	free(rd);
}

static void test_sim_flip_bit_and_count(void **state)
{
	struct fix *f = fix_of(state);
	uint8_t *w = abuf(BLK), *rd = abuf(BLK);
	struct tio t;

	assert_int_equal(bs_sim_write_count(f->dev), 0);
	fill_block(w, 3, 3);
	tio_init(&t, 0);
	assert_int_equal(bs_dev_write(f->dev, w, BLK, 8 * BLK, &t.io), 0);
	run_until(f->r, 1, false);
	tio_init(&t, 0);
	assert_int_equal(bs_dev_flush(f->dev, &t.io), 0);
	run_until(f->r, 2, false);
	assert_int_equal(bs_sim_write_count(f->dev), 2);

	bs_sim_flip_bit(f->dev, 8 * BLK + 100, 5);
	assert_int_equal(read_wait(f->dev, f->r, rd, BLK, 8 * BLK), (int)BLK);
	assert_int_equal(rd[100], w[100] ^ (1u << 5));
	rd[100] ^= 1u << 5;
	assert_memory_equal(rd, w, BLK);

	/* the flip is in the durable image too */
	bs_sim_crash(f->dev);
	assert_int_equal(read_wait(f->dev, f->r, rd, BLK, 8 * BLK), (int)BLK);
	assert_int_equal(rd[100], w[100] ^ (1u << 5));
	assert_int_equal(bs_sim_write_count(f->dev), 2); /* reads don't count */
	free(w);
	free(rd);
}

/*
 * The crash property over many seeds. Phase A writes are acknowledged and
 * then flushed: they must survive exactly. Phase B writes (disjoint blocks)
 * are partly completed, partly in flight, with maybe a flush in flight: after
 * the crash each of their blocks holds either the new data or the old zeroes,
 * nothing else; the return value counts the B writes that lost a block; and
 * no callback of a forgotten request ever fires (their structs are poisoned
 * and freed right after the crash).
 */
#define CR_BLOCKS	       512u /* 2 MiB device */
#define CR_SEEDS	       400
#define CR_A		       1 /* written and flushed before the crash */
#define CR_B		       2 /* written (partly in flight) just before the crash */
#define CR_TAG(seed, i, phase) (((seed)*100000 + (i)) * 4 + (phase))

struct cr_stats {
	unsigned int kept, dropped_acked, torn, lost_total;
};

static void crash_one_seed(uint64_t seed, struct cr_stats *st)
{
	struct fix f;
	uint8_t *buf = abuf((size_t)CR_BLOCKS * BLK);
	uint8_t owner_kind[CR_BLOCKS] = {0}; /* 0 or CR_A/CR_B bits */
	uint32_t wr_off[CR_BLOCKS], wr_len[CR_BLOCKS];
	struct tio *t[CR_BLOCKS];
	struct tio fl, *bfl = NULL;
	unsigned int nw = 0, na, i, b, blk = 0, before;
	unsigned int lost_b = 0, affected;
	uint64_t rng = seed * 7919 + 1;

	assert_int_equal(fix_open(&f, "sim", (uint64_t)CR_BLOCKS * BLK), 0);
	bs_sim_seed(f.dev, seed);

	/* Lay out writes of 1..4 blocks with gaps, alternating A/B at random. */
	while (nw < CR_BLOCKS) {
		unsigned int len;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		blk += (unsigned int)(rng % 3);
		len = 1 + (unsigned int)((rng >> 8) % 4);
		if (blk + len > CR_BLOCKS) {
			break;
		}
		wr_off[nw] = blk;
		wr_len[nw] = len;
		for (b = 0; b < len; b++) {
			owner_kind[blk + b] = (uint8_t)(1 + (rng >> 16) % 3);
		}
		blk += len;
		nw++;
	}

	/* Phase A: write, wait, flush, wait. */
	na = 0;
	for (i = 0; i < nw; i++) {
		t[i] = NULL;
		if (!(owner_kind[wr_off[i]] & CR_A)) {
			continue;
		}
		t[i] = malloc(sizeof(struct tio));
		tio_init(t[i], i);
		for (b = 0; b < wr_len[i]; b++) {
			fill_block(buf + (size_t)(wr_off[i] + b) * BLK, CR_TAG(seed, i, CR_A), b);
		}
		assert_int_equal(bs_dev_write(f.dev, buf + (size_t)wr_off[i] * BLK,
					      (size_t)wr_len[i] * BLK, (uint64_t)wr_off[i] * BLK,
					      &t[i]->io),
				 0);
		na++;
	}
	run_until(f.r, (int)na, false);
	tio_init(&fl, 0);
	assert_int_equal(bs_dev_flush(f.dev, &fl.io), 0);
	run_until(f.r, (int)na + 1, false);
	for (i = 0; i < nw; i++) {
		if (t[i]) {
			assert_int_equal(t[i]->res, (int)(wr_len[i] * BLK));
			free(t[i]);
			t[i] = NULL;
		}
	}

	/* Phase B: submit everything, maybe a flush mid-way, run a few turns. */
	for (i = 0; i < nw; i++) {
		if (!(owner_kind[wr_off[i]] & CR_B)) {
			continue;
		}
		t[i] = malloc(sizeof(struct tio));
		tio_init(t[i], i);
		for (b = 0; b < wr_len[i]; b++) {
			fill_block(buf + (size_t)(wr_off[i] + b) * BLK, CR_TAG(seed, i, CR_B), b);
		}
		assert_int_equal(bs_dev_write(f.dev, buf + (size_t)wr_off[i] * BLK,
					      (size_t)wr_len[i] * BLK, (uint64_t)wr_off[i] * BLK,
					      &t[i]->io),
				 0);
		if (i == nw / 2 && (seed & 1)) {
			spin(f.r, 2);
			bfl = malloc(sizeof(*bfl));
			tio_init(bfl, 0);
			assert_int_equal(bs_dev_flush(f.dev, &bfl->io), 0);
		}
	}
	spin(f.r, (int)(seed % 4));

	affected = bs_sim_crash(f.dev);
	before = (unsigned int)g_completed;
	/* Poison and free everything: the device must not touch it again. */
	for (i = 0; i < nw; i++) {
		if (t[i]) {
			memset(t[i], 0x5a, sizeof(*t[i]));
			free(t[i]);
			t[i] = NULL;
		}
	}
	if (bfl) {
		memset(bfl, 0x5a, sizeof(*bfl));
		free(bfl);
	}
	spin(f.r, 5);
	assert_int_equal(g_completed, before);

	/* The device is usable: read everything back through it. */
	memset(buf, 0xee, (size_t)CR_BLOCKS * BLK);
	tio_init(&fl, 0);
	assert_int_equal(bs_dev_read(f.dev, buf, (size_t)CR_BLOCKS * BLK, 0, &fl.io), 0);
	run_until(f.r, (int)before + 1, false);
	assert_int_equal(fl.res, (int)(CR_BLOCKS * BLK));

	for (i = 0; i < nw; i++) {
		unsigned int kind = owner_kind[wr_off[i]], have = 0;

		for (b = 0; b < wr_len[i]; b++) {
			const uint8_t *p = buf + (size_t)(wr_off[i] + b) * BLK;

			if ((kind & CR_B) && block_is(p, CR_TAG(seed, i, CR_B), b)) {
				have++;
			} else if (kind & CR_A) {
				/* flushed data, or the old data under a lost write */
				assert_true(block_is(p, CR_TAG(seed, i, CR_A), b));
			} else {
				assert_true(block_zero(p));
			}
		}
		if (!(kind & CR_B)) {
			continue;
		}
		if (have == wr_len[i]) {
			st->kept++;
		} else {
			lost_b++;
			if (have) {
				st->torn++;
			}
		}
	}
	for (b = 0; b < CR_BLOCKS; b++) {
		if (!owner_kind[b]) {
			assert_true(block_zero(buf + (size_t)b * BLK));
		}
	}
	assert_int_equal(affected, lost_b);
	st->lost_total += lost_b;
	fix_close(&f);
	free(buf);
}

/* An acknowledged but unflushed write can be lost, and a flushed one can not:
 * the simplest case, checked separately so a failure is easy to read. */
static void test_sim_crash_drops_unflushed(void **state)
{
	unsigned int lost = 0, kept = 0;
	uint64_t seed;

	(void)state;
	for (seed = 1; seed <= 64; seed++) {
		struct fix f;
		uint8_t *w = abuf(BLK), *rd = abuf(BLK);
		struct tio t;

		assert_int_equal(fix_open(&f, "sim", 1u << 20), 0);
		bs_sim_seed(f.dev, seed);
		fill_block(w, seed, 0);
		tio_init(&t, 0);
		assert_int_equal(bs_dev_write(f.dev, w, BLK, 0, &t.io), 0);
		run_until(f.r, 1, false);
		assert_int_equal(t.res, (int)BLK);
		assert_int_equal(bs_sim_write_count(f.dev), 1);
		bs_sim_crash(f.dev);
		assert_int_equal(read_wait(f.dev, f.r, rd, BLK, 0), (int)BLK);
		if (block_zero(rd)) {
			lost++;
		} else {
			assert_memory_equal(rd, w, BLK);
			kept++;
		}
		/* now flushed: survives every crash */
		tio_init(&t, 0);
		assert_int_equal(bs_dev_write(f.dev, w, BLK, BLK, &t.io), 0);
		run_until(f.r, 3, false);
		tio_init(&t, 0);
		assert_int_equal(bs_dev_flush(f.dev, &t.io), 0);
		run_until(f.r, 4, false);
		assert_int_equal(bs_sim_crash(f.dev), 0);
		assert_int_equal(read_wait(f.dev, f.r, rd, BLK, BLK), (int)BLK);
		assert_memory_equal(rd, w, BLK);
		fix_close(&f);
		free(w);
		free(rd);
	}
	assert_true(lost > 0);
	assert_true(kept > 0);
}

static void test_sim_crash_property(void **state)
{
	struct cr_stats st = {0};
	uint64_t seed;

	(void)state;
	for (seed = 1; seed <= CR_SEEDS; seed++) {
		crash_one_seed(seed, &st);
	}
	printf("sim crash: %u B writes kept, %u lost (%u torn)\n", st.kept, st.lost_total, st.torn);
	/* The model must actually exercise each outcome. */
	assert_true(st.kept > 0);
	assert_true(st.lost_total > st.torn);
	assert_true(st.torn > 0);
}

/* A flush covers only writes completed before it was submitted. */
static void test_sim_flush_scope(void **state)
{
	unsigned int lost_late = 0, late_first = 0;
	uint64_t seed;

	(void)state;
	for (seed = 1; seed <= 200; seed++) {
		struct fix f;
		uint8_t *w = abuf(BLK), *rd = abuf(BLK);
		struct tio t1, t2, fl;

		assert_int_equal(fix_open(&f, "sim", 1u << 20), 0);
		bs_sim_seed(f.dev, seed);
		fill_block(w, seed, 1);
		tio_init(&t1, 0);
		assert_int_equal(bs_dev_write(f.dev, w, BLK, 0, &t1.io), 0);
		run_until(f.r, 1, false);
		tio_init(&fl, 0);
		assert_int_equal(bs_dev_flush(f.dev, &fl.io), 0);
		tio_init(&t2, 0);
		assert_int_equal(bs_dev_write(f.dev, w, BLK, BLK, &t2.io), 0);
		run_until(f.r, 3, false);
		assert_int_equal(fl.res, 0);
		assert_int_equal(t2.res, (int)BLK);
		late_first += t2.order < fl.order;
		bs_sim_crash(f.dev);
		assert_int_equal(read_wait(f.dev, f.r, rd, BLK, 0), (int)BLK);
		assert_memory_equal(rd, w, BLK);
		assert_int_equal(read_wait(f.dev, f.r, rd, BLK, BLK), (int)BLK);
		/* t2 came after the flush was submitted: never covered by it */
		lost_late += t2.order < fl.order && block_zero(rd);
		fix_close(&f);
		free(w);
		free(rd);
	}
	assert_true(late_first > 0);
	assert_true(lost_late > 0);
}

/* A dsync write is durable once it completes, and so is nothing else but
 * the cached writes it overlaps (it is a FUA write, not a flush): an older
 * write to its block never comes back from under it, a cached write to
 * another block can still be lost. */
static void test_sim_dsync(void **state)
{
	unsigned int lost_other = 0;
	uint64_t seed;

	(void)state;
	for (seed = 1; seed <= 64; seed++) {
		uint8_t *a = abuf(BLK), *b = abuf(BLK), *c = abuf(BLK), *rd = abuf(BLK);
		struct tio t;
		struct fix f;

		assert_int_equal(fix_open(&f, "sim", 1u << 20), 0);
		bs_sim_seed(f.dev, seed);
		fill_block(a, seed, 0);
		fill_block(b, seed, 1);
		fill_block(c, seed, 2);
		/* a cached in block 0, c cached in block 1, then b written
		 * through over a in block 0 */
		tio_init(&t, 0);
		assert_int_equal(bs_dev_write(f.dev, a, BLK, 0, &t.io), 0);
		run_until(f.r, 1, false);
		tio_init(&t, 0);
		assert_int_equal(bs_dev_write(f.dev, c, BLK, BLK, &t.io), 0);
		run_until(f.r, 2, false);
		tio_init(&t, 0);
		t.io.dsync = true;
		assert_int_equal(bs_dev_write(f.dev, b, BLK, 0, &t.io), 0);
		run_until(f.r, 3, false);
		assert_int_equal(t.res, (int)BLK);
		bs_sim_crash(f.dev);
		assert_int_equal(read_wait(f.dev, f.r, rd, BLK, 0), (int)BLK);
		assert_memory_equal(rd, b, BLK);
		assert_int_equal(read_wait(f.dev, f.r, rd, BLK, BLK), (int)BLK);
		if (block_zero(rd)) {
			lost_other++;
		} else {
			assert_memory_equal(rd, c, BLK);
		}
		fix_close(&f);
		free(a);
		free(b);
		free(c);
		free(rd);
	}
	assert_true(lost_other > 0);
}

/* Crash and close from inside a completion callback; close with work
 * pending and the tick queued. Meant for the ASan build as much as here. */
static struct bs_dev *g_cb_dev;
static int g_cb_fired;

static void crash_cb(struct bs_io *io, int res)
{
	(void)io;
	(void)res;
	g_cb_fired++;
	bs_sim_crash(g_cb_dev);
}

static void close_cb(struct bs_io *io, int res)
{
	(void)io;
	(void)res;
	g_cb_fired++;
	bs_dev_close(g_cb_dev);
	g_cb_dev = NULL;
}

static void test_sim_reentrant(void **state)
{
	struct reactor *r;
	uint8_t *b = abuf(BLK);
	struct bs_io io[16];
	int i;

	(void)state;
	assert_int_equal(reactor_create(8, &r), 0);

	assert_int_equal(bs_dev_open(r, "sim", "s", 1u << 20, &g_cb_dev), 0);
	g_cb_fired = 0;
	for (i = 0; i < 16; i++) {
		memset(&io[i], 0, sizeof(io[i]));
		io[i].cb = crash_cb;
		assert_int_equal(bs_dev_write(g_cb_dev, b, BLK, (uint64_t)i * BLK, &io[i]), 0);
	}
	spin(r, 10);
	assert_int_equal(g_cb_fired, 1); /* the first crash forgot the rest */
	bs_dev_close(g_cb_dev);

	assert_int_equal(bs_dev_open(r, "sim", "s", 1u << 20, &g_cb_dev), 0);
	g_cb_fired = 0;
	for (i = 0; i < 16; i++) {
		memset(&io[i], 0, sizeof(io[i]));
		io[i].cb = close_cb;
		assert_int_equal(bs_dev_read(g_cb_dev, b, BLK, 0, &io[i]), 0);
	}
	spin(r, 10);
	assert_int_equal(g_cb_fired, 1);
	assert_null(g_cb_dev);

	/* close with requests pending and the tick queued */
	assert_int_equal(bs_dev_open(r, "sim", "s", 1u << 20, &g_cb_dev), 0);
	g_cb_fired = 0;
	for (i = 0; i < 16; i++) {
		memset(&io[i], 0, sizeof(io[i]));
		io[i].cb = close_cb;
		assert_int_equal(bs_dev_write(g_cb_dev, b, BLK, 0, &io[i]), 0);
	}
	bs_sim_crash(g_cb_dev);
	bs_dev_close(g_cb_dev);
	spin(r, 10);
	assert_int_equal(g_cb_fired, 0);
	reactor_destroy(r);
	free(b);
}

/* ---- uring against a real file ---- */

/* reactor_sqe is wrapped (-Wl,--wrap) so a test can edit the SQE the backend
 * just queued, before the reactor submits it. */
struct io_uring_sqe *__real_reactor_sqe(struct reactor *r);
struct io_uring_sqe *__wrap_reactor_sqe(struct reactor *r);
static struct io_uring_sqe *g_last_sqe;
static unsigned int g_sqe_count;

struct io_uring_sqe *__wrap_reactor_sqe(struct reactor *r)
{
	g_last_sqe = __real_reactor_sqe(r);
	g_sqe_count++;
	return g_last_sqe;
}

/* The data is really in the file: check with pread() on a separate fd. */
static void test_uring_on_file(void **state)
{
	struct fix *f = fix_of(state);
	size_t len = 16 * BLK;
	uint8_t *w = abuf(len), *chk = malloc(len);
	struct tio t;
	struct stat st;
	size_t b;
	int fd;

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 8u << 20);
	for (b = 0; b < len / BLK; b++) {
		fill_block(w + b * BLK, 55, b);
	}
	tio_init(&t, 0);
	assert_int_equal(bs_dev_write(f->dev, w, len, 40 * BLK, &t.io), 0);
	run_until(f->r, 1, true);
	assert_int_equal(t.res, (int)len);
	tio_init(&t, 0);
	assert_int_equal(bs_dev_flush(f->dev, &t.io), 0);
	run_until(f->r, 2, true);
	assert_int_equal(t.res, 0);

	fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, chk, len, 40 * BLK), (ssize_t)len);
	assert_memory_equal(chk, w, len);
	assert_int_equal(pread(fd, chk, BLK, 39 * BLK), (ssize_t)BLK);
	assert_true(block_zero(chk));
	close(fd);
	free(w);
	free(chk);
}

/* Shorten the queued SQE behind the backend's back: the kernel then really
 * transfers less, and the backend must resubmit the rest and report the
 * full length. */
static void short_transfer(struct fix *f, bool is_write, int target)
{
	size_t len = 8 * BLK;
	uint8_t *w = abuf(len), *rd = abuf(len), *chk = malloc(len);
	unsigned int sqes;
	struct tio t;
	size_t b;
	int fd;

	for (b = 0; b < len / BLK; b++) {
		fill_block(w + b * BLK, 77 + is_write, b);
	}
	if (!is_write) {
		fd = open(f->path, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, w, len, 64 * BLK), (ssize_t)len);
		assert_int_equal(fsync(fd), 0);
		close(fd);
	}
	tio_init(&t, 0);
	if (is_write) {
		assert_int_equal(bs_dev_write(f->dev, w, len, 64 * BLK, &t.io), 0);
	} else {
		assert_int_equal(bs_dev_read(f->dev, rd, len, 64 * BLK, &t.io), 0);
	}
	assert_int_equal(g_last_sqe->len, len);
	g_last_sqe->len = 3 * BLK; /* short: 3 of 8 blocks */
	sqes = g_sqe_count;
	run_until(f->r, target, true);
	assert_int_equal(t.done, 1);
	assert_int_equal(t.res, (int)len);
	assert_true(g_sqe_count > sqes); /* the remainder was resubmitted */
	if (is_write) {
		fd = open(f->path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, chk, len, 64 * BLK), (ssize_t)len);
		close(fd);
		assert_memory_equal(chk, w, len);
	} else {
		assert_memory_equal(rd, w, len);
	}
	free(w);
	free(rd);
	free(chk);
}

static void test_uring_short(void **state)
{
	struct fix *f = fix_of(state);

	short_transfer(f, false, 1);
	short_transfer(f, true, 2);
}

/* The answer must match sysfs for the device the file lives on. */
static void test_uring_volatile_cache(void **state)
{
	struct fix *f = fix_of(state);
	char p[128], val[32] = "";
	struct stat st;
	bool want = true;
	FILE *fp;

	assert_int_equal(stat(f->path, &st), 0);
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/queue/write_cache", major(st.st_dev),
		 minor(st.st_dev));
	fp = fopen(p, "r");
	if (!fp) {
		snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/../queue/write_cache",
			 major(st.st_dev), minor(st.st_dev));
		fp = fopen(p, "r");
	}
	if (fp) {
		if (fgets(val, sizeof(val), fp) && !strncmp(val, "write through", 13)) {
			want = false;
		}
		fclose(fp);
	}
	printf("uring: %s -> \"%.*s\", volatile_cache %d\n", p, (int)strcspn(val, "\n"), val,
	       f->dev->volatile_cache);
	assert_int_equal(f->dev->volatile_cache, want);
}

/* Size 0 opens an existing file at its size; a bigger size grows it; a
 * missing file with size 0 is ENOENT; a directory is EINVAL. */
static void test_uring_open_sizes(void **state)
{
	struct fix *f = fix_of(state);
	struct bs_dev *d2;
	char missing[160];
	struct stat st;

	bs_dev_close(f->dev);
	f->dev = NULL;
	assert_int_equal(bs_dev_open(f->r, "uring", f->path, 0, &d2), 0);
	assert_int_equal(d2->size, 8u << 20);
	bs_dev_close(d2);
	assert_int_equal(bs_dev_open(f->r, "uring", f->path, 16u << 20, &d2), 0);
	assert_int_equal(d2->size, 16u << 20);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 16u << 20);
	bs_dev_close(d2);
	/* smaller than the file: use only that much */
	assert_int_equal(bs_dev_open(f->r, "uring", f->path, 1u << 20, &d2), 0);
	assert_int_equal(d2->size, 1u << 20);
	f->dev = d2;
	snprintf(missing, sizeof(missing), "%s/missing", f->dir);
	assert_int_equal(bs_dev_open(f->r, "uring", missing, 0, &d2), -ENOENT);
	assert_int_equal(bs_dev_open(f->r, "uring", f->dir, 0, &d2), -EISDIR);
}

/* A drive has one opener at a time: a second open is EBUSY until the first
 * closes (two blockstores on one drive would destroy each other's data). */
static void test_uring_exclusive(void **state)
{
	struct fix *f = fix_of(state);
	struct bs_dev *d2;

	assert_int_equal(bs_dev_open(f->r, "uring", f->path, 0, &d2), -EBUSY);
	bs_dev_close(f->dev);
	f->dev = NULL;
	assert_int_equal(bs_dev_open(f->r, "uring", f->path, 0, &d2), 0);
	f->dev = d2;
}

/* Exit status for "cannot run here" (ctest SKIP_RETURN_CODE, as liburing). */
#define TEST_SKIP 77

static bool uring_usable(void)
{
	void *state = NULL;

	setup_uring(&state);
	if (!state) {
		return false;
	}
	teardown(&state);
	return true;
}

/* No argument: every backend. "mem": ram and sim. "uring": the uring backend
 * alone, exiting 77 where io_uring or O_DIRECT is unavailable. */
int main(int argc, char **argv)
{
	const struct CMUnitTest mem[] = {
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup_ram, teardown),
		cmocka_unit_test_setup_teardown(test_read_after_write, setup_ram, teardown),
		cmocka_unit_test_setup_teardown(test_einval, setup_ram, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup_ram, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup_sim, teardown),
		cmocka_unit_test_setup_teardown(test_read_after_write, setup_sim, teardown),
		cmocka_unit_test_setup_teardown(test_einval, setup_sim, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup_sim, teardown),
		cmocka_unit_test(test_sim_order_varies),
		cmocka_unit_test_setup_teardown(test_sim_inject, setup_sim, teardown),
		cmocka_unit_test_setup_teardown(test_sim_flip_bit_and_count, setup_sim, teardown),
		cmocka_unit_test(test_sim_crash_drops_unflushed),
		cmocka_unit_test(test_sim_flush_scope),
		cmocka_unit_test(test_sim_dsync),
		cmocka_unit_test(test_sim_crash_property),
		cmocka_unit_test(test_sim_reentrant),
	};
	const struct CMUnitTest uring[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_read_after_write, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_einval, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_uring_on_file, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_uring_short, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_uring_volatile_cache, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_uring_open_sizes, setup_uring, teardown),
		cmocka_unit_test_setup_teardown(test_uring_exclusive, setup_uring, teardown),
	};
	const char *which = argc > 1 ? argv[1] : "all";
	bool all = !strcmp(which, "all");
	int failed = 0;

	if (!all && strcmp(which, "mem") && strcmp(which, "uring")) {
		fprintf(stderr, "usage: %s [all|mem|uring]\n", argv[0]);
		return 2;
	}
	if (all || !strcmp(which, "mem")) {
		failed += cmocka_run_group_tests_name("bs_dev mem", mem, NULL, NULL);
	}
	if (all || !strcmp(which, "uring")) {
		if (!all && !uring_usable()) {
			return TEST_SKIP;
		}
		failed += cmocka_run_group_tests_name("bs_dev uring", uring, NULL, NULL);
	}
	return failed ? 1 : 0;
}
