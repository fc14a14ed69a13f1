/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-snapcheck: snapshots under load hold exactly the writes completed
 * before them (docs/volumes.md "Fencing writers of a snapshot",
 * docs/testing.md).
 *
 * One process, two threads:
 *   - the reactor thread runs a random 4 KiB workload on VOLUME through
 *     libkeel at --iodepth, at most one request in flight per block (so a
 *     block's writes are totally ordered), every block self-describing
 *     (run id, block number, write sequence number, crc32c); a share of
 *     the requests (--read-pct) read a block back and compare it with the
 *     model (the block's last completed write: nothing else can be there);
 *   - the snapshot thread POSTs /v1/volumes/VOLUME/snapshots every
 *     --interval-ms and records each request's start Ts and reply Te.
 * Every write's issue and completion time is kept (CLOCK_MONOTONIC).
 * After --snapshots snapshots the workload drains, and every block of every
 * snapshot view VOLUME@SNAP is read and checked (tests/tools/sc_check.h):
 * zero or one of the block's writes, every write completed before Ts there
 * or superseded by a visible one issued before Te, nothing issued after Te,
 * never older than the previous snapshot showed. Then the live volume is
 * read whole and must equal the model exactly.
 *
 * stdout: one line per snapshot as it completes ("snapshot N ..."; the
 * test wrapper times its server kill from them), then the summary.
 * --fault-pid-file F SIGKILLs the process whose pid F holds (a keel-server)
 * --fault-delay-ms after the request of snapshot --fault-snap started: a
 * server dying inside a snapshot request.
 *
 * --shift-ts-ms N checks as if each request had been made N ms later: the
 * writes completed in those N ms are missing, so a run with it must fail
 * (the test's negative control).
 *
 * Exit 0: no violation; 1: a violation, an I/O error, a failed snapshot
 * request or a hang; 2: usage or setup.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "client/libkeel.h"
#include "common/crc.h"
#include "common/log.h"
#include "common/reactor.h"
#include "proto/rest.h"
#include "tests/tools/sc_check.h"

#define SC_BLOCK	4096u
#define SC_MAGIC	0x31504e534c454b45ull /* "EKELSNP1" */
#define SC_CHUNK_BLOCKS 64u		      /* snapshot reads: 256 KiB */
#define SC_CHECK_QD	8u
#define SC_MAX_REPORTS	20u
#define SC_HANG_NS	(60ull * 1000 * 1000 * 1000)
#define SC_MAX_SNAPS	60u /* a chain is at most 64 layers */
#define NS_PER_MS	1000000ull

struct sc_block_hdr {
	uint64_t magic;
	uint64_t run_id;
	uint64_t block;
	uint64_t seq;
	uint32_t crc; /* crc32c of the block with this field zero */
	uint32_t pad;
};
_Static_assert(sizeof(struct sc_block_hdr) == 40, "block header size");

/* One write of the run; its index in the table is its sequence number. */
struct sc_wrec {
	uint64_t start_ns, end_ns;
	uint64_t block;
};

struct sc_snaprec {
	char name[32];
	uint64_t ts_ns, te_ns;
	uint64_t writes_done_before; /* writes completed before Ts (all blocks) */
};

struct scheck;

struct sc_io {
	struct scheck *sc;
	uint8_t *buf;
	struct iovec iov;
	uint64_t block; /* first block */
	uint32_t nblocks;
	uint64_t seq; /* a write: its sequence number; 0: a read */
	bool busy;
};

struct scheck {
	/* options */
	const char *url, *key_file, *volume, *prefix;
	unsigned int iodepth, nsnaps_want, interval_ms, read_pct;
	uint64_t shift_ts_ns; /* negative control: pretend each Ts was later */
	const char *fault_pid_file; /* SIGKILL this pid --fault-delay-ms into snapshot --fault-snap */
	unsigned int fault_snap, fault_delay_ms;
	uint64_t seed;
	bool verbose;
	char token[256];

	struct reactor *r;
	struct keel_cluster *c;
	struct keel_volume *v;	  /* the live volume */
	struct keel_volume *view; /* the snapshot view being checked */
	bool opened;
	int open_res;
	uint64_t t0, rng, run_id, nblocks;

	/* workload */
	struct sc_io *ios;
	unsigned int busy;
	uint8_t *blk_busy;   /* per block: a request in flight */
	uint64_t *last_done; /* per block: seq of the last completed write, 0 none */
	struct sc_wrec *w;   /* [1..nw] */
	uint64_t nw, wcap, writes_done, reads_verified, io_errors, read_mismatches;
	bool stopping;
	struct reactor_timer timer;
	uint64_t stop_ns;

	/* snapshots (the snapshot thread appends, then sets snaps_done) */
	struct sc_snaprec snaps[SC_MAX_SNAPS];
	atomic_uint nsnaps;
	atomic_bool snaps_done;
	atomic_bool workload_failed; /* tells the snapshot thread to stop */
	char snap_err[512];
	uint64_t max_snap_ns;

	/* check */
	struct sc_write *bw;   /* every write, grouped by block, issue order */
	uint64_t *bw_first;    /* per block: first index into bw; [nblocks] = nw */
	uint32_t *floor;       /* per block: visible index in the previous snapshot */
	unsigned int cur_snap; /* index of the snapshot being checked */
	uint64_t next_chunk, chunks_done, nchunks;
	uint64_t blocks_checked, violations, reported, must_checks, newer_than_must;
	bool live_pass; /* checking the live volume against the model */
	const char *fatal;
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double ms(const struct scheck *sc, uint64_t t)
{
	return ((double)t - (double)sc->t0) / 1e6;
}

/* ---- blocks ---- */

static void sc_fill(uint8_t *blk, uint64_t run_id, uint64_t block, uint64_t seq)
{
	struct sc_block_hdr h = {SC_MAGIC, run_id, block, seq, 0, 0};
	uint64_t x = seq ^ (block * 0x9e3779b97f4a7c15ull) ^ run_id;
	uint64_t *w = (uint64_t *)blk;

	for (unsigned int i = sizeof(h) / 8; i < SC_BLOCK / 8; i++) {
		w[i] = splitmix64(&x);
	}
	memcpy(blk, &h, sizeof(h));
	h.crc = crc32c(0, blk, SC_BLOCK);
	memcpy(blk, &h, sizeof(h));
}

static bool sc_is_zero(const uint8_t *blk)
{
	const uint64_t *w = (const uint64_t *)blk;

	for (unsigned int i = 0; i < SC_BLOCK / 8; i++) {
		if (w[i]) {
			return false;
		}
	}
	return true;
}

static enum sc_found sc_parse(const struct scheck *sc, uint8_t *blk, uint64_t block, uint64_t *seq)
{
	struct sc_block_hdr h, z;

	*seq = 0;
	if (sc_is_zero(blk)) {
		return SC_FOUND_ZERO;
	}
	memcpy(&h, blk, sizeof(h));
	if (h.magic != SC_MAGIC) {
		return SC_FOUND_GARBAGE;
	}
	*seq = h.seq;
	if (h.run_id != sc->run_id || h.block != block) {
		return SC_FOUND_MISPLACED;
	}
	z = h;
	z.crc = 0;
	memcpy(blk, &z, sizeof(z));
	if (crc32c(0, blk, SC_BLOCK) != h.crc) {
		memcpy(blk, &h, sizeof(h));
		return SC_FOUND_TORN;
	}
	memcpy(blk, &h, sizeof(h));
	return SC_FOUND_DATA;
}

/* ---- opening (reactor thread) ---- */

static void sc_cluster_cb(struct keel_cluster *c, int res, void *arg)
{
	struct scheck *sc = arg;

	sc->open_res = res;
	sc->opened = true;
}

static void sc_volume_cb(struct keel_volume *v, int res, void *arg)
{
	struct scheck *sc = arg;

	sc->open_res = res;
	sc->opened = true;
}

static int sc_wait_open(struct scheck *sc)
{
	uint64_t deadline = reactor_now_ns() + 30ull * 1000 * NS_PER_MS;

	while (!sc->opened && reactor_now_ns() < deadline) {
		if (reactor_poll(sc->r, true) < 0) {
			return -EIO;
		}
	}
	if (!sc->opened) {
		return -ETIMEDOUT;
	}
	sc->opened = false;
	return sc->open_res;
}

static int sc_open_volume(struct scheck *sc, const char *name, struct keel_volume **out)
{
	int ret = keel_volume_open(sc->c, name, sc_volume_cb, sc, out);

	if (!ret) {
		ret = sc_wait_open(sc);
	}
	return ret;
}

/* ---- the snapshot thread ---- */

static void sleep_until(uint64_t t);

/* A fault (a server SIGKILL) timed from inside a snapshot request: the
 * snapshot thread is blocked in that request, so this runs on its own. */
static void *sc_fault_thread(void *arg)
{
	struct scheck *sc = arg;
	uint64_t t = reactor_now_ns();
	FILE *f = fopen(sc->fault_pid_file, "r");
	long pid = 0;
	int rc = -1;

	/* Read before the request: the kill itself is one syscall. */
	if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
		pid = 0;
	}
	if (f) {
		fclose(f);
	}
	sleep_until(t + sc->fault_delay_ms * NS_PER_MS);
	t = reactor_now_ns();
	if (pid) {
		rc = kill((pid_t)pid, SIGKILL) ? -errno : 0;
	}
	printf("fault at %.1f ms (%u ms into the request of snapshot %u): SIGKILL pid %ld (%s): "
	       "%s\n",
	       ms(sc, t), sc->fault_delay_ms, sc->fault_snap, pid, sc->fault_pid_file,
	       rc ? strerror(-rc) : "ok");
	fflush(stdout);
	return NULL;
}

static void sleep_until(uint64_t t)
{
	uint64_t now = reactor_now_ns();
	struct timespec ts;

	if (now >= t) {
		return;
	}
	ts.tv_sec = (time_t)((t - now) / 1000000000ull);
	ts.tv_nsec = (long)((t - now) % 1000000000ull);
	nanosleep(&ts, NULL);
}

static void *sc_snap_thread(void *arg)
{
	struct scheck *sc = arg;
	bool fault_started = false;
	pthread_t fault;
	char path[160];

	snprintf(path, sizeof(path), "/v1/volumes/%s/snapshots", sc->volume);
	for (unsigned int i = 0; i < sc->nsnaps_want; i++) {
		struct sc_snaprec *s = &sc->snaps[i];
		struct rest_resp resp;
		char body[96], err[256];
		json_t *fenced;
		int ret;

		sleep_until(sc->t0 + (uint64_t)(i + 1) * sc->interval_ms * NS_PER_MS);
		if (atomic_load(&sc->workload_failed)) {
			break;
		}
		snprintf(s->name, sizeof(s->name), "%s%u", sc->prefix, i + 1);
		snprintf(body, sizeof(body), "{\"name\": \"%s\"}", s->name);
		if (sc->fault_pid_file && i + 1 == sc->fault_snap &&
		    !pthread_create(&fault, NULL, sc_fault_thread, sc)) {
			fault_started = true;
		}
		s->ts_ns = reactor_now_ns();
		ret = rest_call(sc->url, sc->token, "POST", path, body, &resp, err, sizeof(err));
		s->te_ns = reactor_now_ns();
		if (ret) {
			snprintf(sc->snap_err, sizeof(sc->snap_err), "snapshot %s: %s", s->name,
				 err);
			break;
		}
		if (resp.status != 201) {
			snprintf(sc->snap_err, sizeof(sc->snap_err),
				 "snapshot %s: HTTP %ld: %.400s", s->name, resp.status,
				 resp.text ? resp.text : "");
			rest_resp_free(&resp);
			break;
		}
		/* "fenced": false means a server neither answered nor was
		 * declared down: the guarantee does not hold for this one. */
		fenced = resp.json ? json_object_get(resp.json, "fenced") : NULL;
		if (fenced && json_is_false(fenced)) {
			snprintf(sc->snap_err, sizeof(sc->snap_err),
				 "snapshot %s: reply says \"fenced\": false", s->name);
			rest_resp_free(&resp);
			break;
		}
		rest_resp_free(&resp);
		atomic_store(&sc->nsnaps, i + 1);
		printf("snapshot %u %s: request at %.1f ms, %.1f ms\n", i + 1, s->name,
		       ms(sc, s->ts_ns), (double)(s->te_ns - s->ts_ns) / 1e6);
		fflush(stdout);
	}
	if (fault_started) {
		pthread_join(fault, NULL);
	}
	atomic_store(&sc->snaps_done, true);
	return NULL;
}

/* ---- the workload (reactor thread) ---- */

static void sc_kick(struct scheck *sc);

static void sc_fail(struct scheck *sc, const char *why)
{
	if (!sc->fatal) {
		sc->fatal = why;
	}
	atomic_store(&sc->workload_failed, true);
}

static void sc_io_done(void *arg, int res)
{
	struct sc_io *io = arg;
	struct scheck *sc = io->sc;
	uint64_t now = reactor_now_ns();
	uint64_t found_seq, want;
	enum sc_found found;

	io->busy = false;
	sc->busy--;
	sc->blk_busy[io->block] = 0;
	if (io->seq) {
		if (res) {
			fprintf(stderr,
				"keel-snapcheck: write of block %" PRIu64 " (seq %" PRIu64
				"): %s\n",
				io->block, io->seq, strerror(-res));
			sc->io_errors++;
			sc_fail(sc, "a write failed");
		} else {
			sc->w[io->seq].end_ns = now;
			sc->last_done[io->block] = io->seq;
			sc->writes_done++;
		}
	} else if (res) {
		fprintf(stderr, "keel-snapcheck: read of block %" PRIu64 ": %s\n", io->block,
			strerror(-res));
		sc->io_errors++;
		sc_fail(sc, "a read failed");
	} else {
		/* No write of this block was in flight: exactly the last one. */
		found = sc_parse(sc, io->buf, io->block, &found_seq);
		want = sc->last_done[io->block];
		if (want ? found != SC_FOUND_DATA || found_seq != want : found != SC_FOUND_ZERO) {
			fprintf(stderr,
				"keel-snapcheck: workload read of block %" PRIu64
				" at %.3f ms: %s seq %" PRIu64 ", model: seq %" PRIu64 "\n",
				io->block, ms(sc, now), sc_found_name(found), found_seq, want);
			sc->read_mismatches++;
			sc_fail(sc, "a workload read differs from the model");
		}
		sc->reads_verified++;
	}
	sc_kick(sc);
}

static int sc_grow(struct scheck *sc)
{
	struct sc_wrec *n;
	uint64_t cap;

	if (sc->nw + 1 < sc->wcap) {
		return 0;
	}
	cap = sc->wcap ? sc->wcap * 2 : 65536;
	n = realloc(sc->w, cap * sizeof(*n));
	if (!n) {
		return -ENOMEM;
	}
	sc->w = n;
	sc->wcap = cap;
	return 0;
}

static void sc_issue(struct scheck *sc, struct sc_io *io)
{
	uint64_t block = 0;
	bool write;
	int ret;

	/* A block with nothing in flight; at QD 32 over thousands of blocks
	 * the first pick nearly always is. */
	for (int tries = 0; tries < 16; tries++) {
		block = splitmix64(&sc->rng) % sc->nblocks;
		if (!sc->blk_busy[block]) {
			break;
		}
	}
	if (sc->blk_busy[block]) {
		return;
	}
	write = splitmix64(&sc->rng) % 100 >= sc->read_pct;
	io->block = block;
	io->nblocks = 1;
	io->iov.iov_base = io->buf;
	io->iov.iov_len = SC_BLOCK;
	io->seq = 0;
	if (write) {
		if (sc_grow(sc)) {
			sc_fail(sc, "out of memory");
			return;
		}
		io->seq = ++sc->nw;
		sc_fill(io->buf, sc->run_id, block, io->seq);
		sc->w[io->seq] = (struct sc_wrec){reactor_now_ns(), SC_NEVER, block};
		ret = keel_writev(sc->v, &io->iov, 1, block * SC_BLOCK, sc_io_done, io);
	} else {
		ret = keel_readv(sc->v, &io->iov, 1, block * SC_BLOCK, sc_io_done, io);
	}
	if (ret) {
		/* Never sent: a write that never started cannot be anywhere,
		 * but it keeps its slot in the table (issued, never ended). */
		fprintf(stderr, "keel-snapcheck: cannot issue: %s\n", strerror(-ret));
		sc->io_errors++;
		sc_fail(sc, "an I/O could not be issued");
		return;
	}
	io->busy = true;
	sc->busy++;
	sc->blk_busy[block] = 1;
}

static void sc_kick(struct scheck *sc)
{
	if (!sc->stopping && (atomic_load(&sc->snaps_done) || sc->fatal)) {
		sc->stopping = true;
		sc->stop_ns = reactor_now_ns();
	}
	for (unsigned int i = 0; i < sc->iodepth && !sc->stopping; i++) {
		if (!sc->ios[i].busy) {
			sc_issue(sc, &sc->ios[i]);
		}
	}
}

static void sc_timer(struct reactor_timer *t)
{
	struct scheck *sc = container_of(t, struct scheck, timer);

	sc_kick(sc);
	if (sc->stopping && !sc->busy) {
		return;
	}
	if (sc->stopping && reactor_now_ns() > sc->stop_ns + SC_HANG_NS) {
		fprintf(stderr,
			"keel-snapcheck: %u requests still outstanding 60 s after the "
			"end of the workload (I/O hang)\n",
			sc->busy);
		sc->fatal = "I/O hang";
		return;
	}
	reactor_timer_start(sc->r, t, 100 * NS_PER_MS, sc_timer);
}

static int sc_workload(struct scheck *sc)
{
	pthread_t th;

	sc->t0 = reactor_now_ns();
	if (pthread_create(&th, NULL, sc_snap_thread, sc)) {
		fprintf(stderr, "keel-snapcheck: cannot start the snapshot thread\n");
		return -EAGAIN;
	}
	reactor_timer_start(sc->r, &sc->timer, 100 * NS_PER_MS, sc_timer);
	sc_kick(sc);
	while (!(sc->stopping && !sc->busy)) {
		if (sc->fatal && !strcmp(sc->fatal, "I/O hang")) {
			break;
		}
		if (reactor_poll(sc->r, true) < 0) {
			sc_fail(sc, "reactor failed");
			break;
		}
	}
	atomic_store(&sc->workload_failed, true); /* ends the thread early if we did */
	pthread_join(th, NULL);
	if (!reactor_timer_idle(&sc->timer)) {
		reactor_timer_cancel(sc->r, &sc->timer);
		while (!reactor_timer_idle(&sc->timer)) {
			reactor_poll(sc->r, true);
		}
	}
	return 0;
}

/* ---- the check (reactor thread) ---- */

/* Group the writes by block, keeping issue (= sequence) order. */
static int sc_group(struct scheck *sc)
{
	uint64_t *fill;

	sc->bw = calloc(sc->nw ? sc->nw : 1, sizeof(*sc->bw));
	sc->bw_first = calloc(sc->nblocks + 1, sizeof(*sc->bw_first));
	sc->floor = calloc(sc->nblocks, sizeof(*sc->floor));
	fill = calloc(sc->nblocks, sizeof(*fill));
	if (!sc->bw || !sc->bw_first || !sc->floor || !fill) {
		free(fill);
		return -ENOMEM;
	}
	for (uint64_t s = 1; s <= sc->nw; s++) {
		sc->bw_first[sc->w[s].block + 1]++;
	}
	for (uint64_t b = 0; b < sc->nblocks; b++) {
		sc->bw_first[b + 1] += sc->bw_first[b];
	}
	for (uint64_t s = 1; s <= sc->nw; s++) {
		uint64_t b = sc->w[s].block;

		sc->bw[sc->bw_first[b] + fill[b]++] =
			(struct sc_write){s, sc->w[s].start_ns, sc->w[s].end_ns};
	}
	free(fill);
	return 0;
}

static void sc_check_one(struct scheck *sc, uint8_t *blk, uint64_t b)
{
	const struct sc_write *w = sc->bw + sc->bw_first[b];
	size_t n = (size_t)(sc->bw_first[b + 1] - sc->bw_first[b]);
	struct sc_result r;
	enum sc_found found;
	uint64_t seq;

	found = sc_parse(sc, blk, b, &seq);
	sc->blocks_checked++;
	if (sc->live_pass) {
		/* Every write has completed: exactly the last one. */
		uint64_t want = n ? w[n - 1].seq : 0;

		if (want ? found != SC_FOUND_DATA || seq != want : found != SC_FOUND_ZERO) {
			sc->violations++;
			if (sc->reported++ < SC_MAX_REPORTS) {
				printf("VIOLATION (live volume): block %" PRIu64
				       " holds %s seq %" PRIu64
				       ", the last completed write is seq %" PRIu64 "\n",
				       b, sc_found_name(found), seq, want);
			}
		}
		return;
	}
	{
		const struct sc_snaprec *sr = &sc->snaps[sc->cur_snap];
		struct sc_snap s = {sr->ts_ns + sc->shift_ts_ns, sr->te_ns + sc->shift_ts_ns};

		if (sc_check_block(w, n, &s, found, seq, sc->floor[b], &r) != SC_OK) {
			char full[128];

			sc->violations++;
			if (sc->reported++ < SC_MAX_REPORTS) {
				snprintf(full, sizeof(full), "%s@%s", sc->volume, sr->name);
				sc_report(stdout, b, full, &s, w, n, found, seq, &r, sc->t0);
			}
		}
		sc->must_checks += r.must > 0;
		sc->newer_than_must += r.visible > r.must;
		sc->floor[b] = (uint32_t)r.visible;
	}
}

static void sc_chunk_issue(struct scheck *sc, struct sc_io *io);

static void sc_chunk_done(void *arg, int res)
{
	struct sc_io *io = arg;
	struct scheck *sc = io->sc;

	io->busy = false;
	sc->busy--;
	if (res) {
		fprintf(stderr, "keel-snapcheck: read of blocks %" PRIu64 "+%u: %s\n", io->block,
			io->nblocks, strerror(-res));
		sc->io_errors++;
		sc_fail(sc, "a check read failed");
	} else {
		for (uint32_t i = 0; i < io->nblocks; i++) {
			sc_check_one(sc, io->buf + (size_t)i * SC_BLOCK, io->block + i);
		}
	}
	sc->chunks_done++;
	sc_chunk_issue(sc, io);
}

static void sc_chunk_issue(struct scheck *sc, struct sc_io *io)
{
	uint64_t b;
	int ret;

	if (sc->next_chunk >= sc->nchunks || sc->fatal) {
		return;
	}
	b = sc->next_chunk++ * SC_CHUNK_BLOCKS;
	io->block = b;
	io->nblocks =
		(uint32_t)(sc->nblocks - b < SC_CHUNK_BLOCKS ? sc->nblocks - b : SC_CHUNK_BLOCKS);
	io->iov.iov_base = io->buf;
	io->iov.iov_len = (size_t)io->nblocks * SC_BLOCK;
	ret = keel_readv(sc->live_pass ? sc->v : sc->view, &io->iov, 1, b * SC_BLOCK, sc_chunk_done,
			 io);
	if (ret) {
		fprintf(stderr, "keel-snapcheck: cannot issue a check read: %s\n", strerror(-ret));
		sc_fail(sc, "a check read could not be issued");
		return;
	}
	io->busy = true;
	sc->busy++;
}

/* Read every block of the current view (or the live volume) in order of
 * chunks, SC_CHECK_QD at a time. Block order does not matter: the floor of
 * a block only carries from one snapshot to the next. */
static int sc_read_all(struct scheck *sc)
{
	uint64_t deadline = reactor_now_ns() + 600ull * 1000 * NS_PER_MS;

	sc->next_chunk = 0;
	sc->chunks_done = 0;
	sc->nchunks = (sc->nblocks + SC_CHUNK_BLOCKS - 1) / SC_CHUNK_BLOCKS;
	for (unsigned int i = 0; i < SC_CHECK_QD && i < sc->iodepth; i++) {
		sc_chunk_issue(sc, &sc->ios[i]);
	}
	while (sc->busy) {
		if (reactor_poll(sc->r, true) < 0 || reactor_now_ns() > deadline) {
			sc->fatal = "check reads hang";
			return -ETIMEDOUT;
		}
	}
	return sc->fatal ? -EIO : 0;
}

static int sc_check_all(struct scheck *sc)
{
	unsigned int n = atomic_load(&sc->nsnaps);
	uint64_t wi = 1;
	int ret;

	if (sc_group(sc)) {
		fprintf(stderr, "keel-snapcheck: out of memory\n");
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct sc_snaprec *s = &sc->snaps[i];
		char full[128];
		uint64_t v0 = sc->violations, must0 = sc->must_checks, newer0 = sc->newer_than_must;

		/* Writes completed before Ts, over all blocks (for the log). */
		s->writes_done_before = 0;
		for (wi = 1; wi <= sc->nw; wi++) {
			s->writes_done_before +=
				sc->w[wi].end_ns != SC_NEVER && sc->w[wi].end_ns < s->ts_ns;
		}
		snprintf(full, sizeof(full), "%s@%s", sc->volume, s->name);
		ret = sc_open_volume(sc, full, &sc->view);
		if (ret) {
			fprintf(stderr, "keel-snapcheck: cannot open %s: %s\n", full,
				strerror(-ret));
			return ret;
		}
		sc->cur_snap = i;
		ret = sc_read_all(sc);
		keel_volume_close(sc->view);
		sc->view = NULL;
		if (ret) {
			return ret;
		}
		printf("checked %s: %" PRIu64 " blocks, %" PRIu64
		       " writes completed before it, %" PRIu64
		       " blocks had to show a write, %" PRIu64
		       " show one newer than required, %" PRIu64 " violations\n",
		       full, sc->nblocks, s->writes_done_before, sc->must_checks - must0,
		       sc->newer_than_must - newer0, sc->violations - v0);
		fflush(stdout);
	}
	sc->live_pass = true;
	ret = sc_read_all(sc);
	if (!ret) {
		printf("checked the live volume %s against the model: %" PRIu64 " blocks\n",
		       sc->volume, sc->nblocks);
	}
	return ret;
}

/* ---- main ---- */

static const char sc_usage[] =
	"usage: keel-snapcheck --mgmt URL --key-file PATH --volume NAME [--iodepth 32]\n"
	"                      [--snapshots 16] [--interval-ms 1000] [--read-pct 10]\n"
	"                      [--prefix sc] [--seed N] [--shift-ts-ms N]\n"
	"                      [--fault-pid-file F --fault-snap N --fault-delay-ms MS]\n"
	"--fault-pid-file: SIGKILL the pid in F MS ms after snapshot N's request started.\n"
	"--shift-ts-ms: a negative control: check as if every snapshot request had\n"
	"started (and returned) N ms later; writes of those N ms are then missing\n"
	"from the snapshots and must be reported as lost.\n";

static int sc_parse_args(struct scheck *sc, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val) {
			return -EINVAL;
		}
		i++;
		if (!strcmp(a, "--mgmt")) {
			sc->url = val;
		} else if (!strcmp(a, "--key-file")) {
			sc->key_file = val;
		} else if (!strcmp(a, "--volume")) {
			sc->volume = val;
		} else if (!strcmp(a, "--iodepth")) {
			sc->iodepth = (unsigned int)strtoul(val, NULL, 0);
		} else if (!strcmp(a, "--snapshots")) {
			sc->nsnaps_want = (unsigned int)strtoul(val, NULL, 0);
		} else if (!strcmp(a, "--interval-ms")) {
			sc->interval_ms = (unsigned int)strtoul(val, NULL, 0);
		} else if (!strcmp(a, "--read-pct")) {
			sc->read_pct = (unsigned int)strtoul(val, NULL, 0);
		} else if (!strcmp(a, "--prefix")) {
			sc->prefix = val;
		} else if (!strcmp(a, "--shift-ts-ms")) {
			sc->shift_ts_ns = strtoull(val, NULL, 0) * NS_PER_MS;
		} else if (!strcmp(a, "--fault-pid-file")) {
			sc->fault_pid_file = val;
		} else if (!strcmp(a, "--fault-snap")) {
			sc->fault_snap = (unsigned int)strtoul(val, NULL, 0);
		} else if (!strcmp(a, "--fault-delay-ms")) {
			sc->fault_delay_ms = (unsigned int)strtoul(val, NULL, 0);
		} else if (!strcmp(a, "--seed")) {
			sc->seed = strtoull(val, NULL, 0);
		} else {
			return -EINVAL;
		}
	}
	if (!sc->url || !sc->key_file || !sc->volume || !sc->iodepth || sc->iodepth > 256 ||
	    !sc->nsnaps_want || sc->nsnaps_want > SC_MAX_SNAPS || !sc->interval_ms ||
	    sc->read_pct > 100 || strlen(sc->prefix) > 16) {
		return -EINVAL;
	}
	return 0;
}

static int sc_setup(struct scheck *sc)
{
	struct keel_cluster_opts o = {.mgmt_url = sc->url,
				      .key_file = sc->key_file,
				      .name = "keel-snapcheck",
				      .api_token = sc->token};
	const struct keel_volume_info *vi;
	int ret;

	ret = reactor_create(1024, &sc->r);
	if (ret) {
		fprintf(stderr, "keel-snapcheck: cannot create a reactor: %s\n", strerror(-ret));
		return ret;
	}
	ret = keel_cluster_open(sc->r, &o, sc_cluster_cb, sc, &sc->c);
	if (!ret) {
		ret = sc_wait_open(sc);
	}
	if (ret) {
		fprintf(stderr, "keel-snapcheck: cannot open the cluster: %s\n", strerror(-ret));
		sc->c = NULL;
		return ret;
	}
	ret = sc_open_volume(sc, sc->volume, &sc->v);
	if (ret) {
		fprintf(stderr, "keel-snapcheck: cannot open %s: %s\n", sc->volume, strerror(-ret));
		return ret;
	}
	vi = keel_volume_info(sc->v);
	sc->nblocks = vi->size / SC_BLOCK;
	sc->ios = calloc(sc->iodepth, sizeof(*sc->ios));
	sc->blk_busy = calloc(sc->nblocks, 1);
	sc->last_done = calloc(sc->nblocks, sizeof(*sc->last_done));
	if (!sc->nblocks || !sc->ios || !sc->blk_busy || !sc->last_done || sc_grow(sc)) {
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < sc->iodepth; i++) {
		sc->ios[i].sc = sc;
		sc->ios[i].buf = aligned_alloc(SC_BLOCK, (size_t)SC_CHUNK_BLOCKS * SC_BLOCK);
		if (!sc->ios[i].buf) {
			return -ENOMEM;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct scheck scs;
	struct scheck *sc = &scs;
	char err[256];
	uint64_t deadline, t_check;
	int ret;

	*sc = (struct scheck){.iodepth = 32,
			      .nsnaps_want = 16,
			      .interval_ms = 1000,
			      .read_pct = 10,
			      .prefix = "sc"};
	sc->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (sc_parse_args(sc, argc, argv)) {
		fputs(sc_usage, stderr);
		return 2;
	}
	if (rest_token_resolve(NULL, NULL, sc->token, sizeof(sc->token), err, sizeof(err))) {
		fprintf(stderr, "keel-snapcheck: %s\n", err);
		return 2;
	}
	sc->rng = sc->seed;
	sc->run_id = splitmix64(&sc->rng) | 1;
	klog_set_ident("keel-snapcheck");
	klog_set_level(KLOG_ERROR);
	curl_global_init(CURL_GLOBAL_DEFAULT); /* before the snapshot thread */
	if (sc_setup(sc)) {
		return 2;
	}
	printf("keel-snapcheck: volume %s, %" PRIu64 " blocks, iodepth %u, %u snapshots every "
	       "%u ms, %u%% reads, seed %" PRIu64 "\n",
	       sc->volume, sc->nblocks, sc->iodepth, sc->nsnaps_want, sc->interval_ms, sc->read_pct,
	       sc->seed);
	fflush(stdout);
	if (sc_workload(sc)) {
		return 2;
	}
	for (unsigned int i = 0; i < atomic_load(&sc->nsnaps); i++) {
		uint64_t lat = sc->snaps[i].te_ns - sc->snaps[i].ts_ns;

		sc->max_snap_ns = lat > sc->max_snap_ns ? lat : sc->max_snap_ns;
	}
	printf("workload: %" PRIu64 " writes (%" PRIu64 " completed) in %.1f s, %" PRIu64
	       " reads verified against the model, %" PRIu64 " mismatches, %" PRIu64
	       " I/O errors\n",
	       sc->nw, sc->writes_done, (double)(sc->stop_ns - sc->t0) / 1e9, sc->reads_verified,
	       sc->read_mismatches, sc->io_errors);
	fflush(stdout);
	t_check = reactor_now_ns();
	if (!sc->fatal) {
		ret = sc_check_all(sc);
		if (ret && !sc->fatal) {
			sc->fatal = "the check could not run";
		}
	}
	printf("keel-snapcheck: %u snapshots (max latency %.1f ms), %" PRIu64 " writes, %" PRIu64
	       " blocks checked in %.1f s, %" PRIu64 " violations\n",
	       atomic_load(&sc->nsnaps), (double)sc->max_snap_ns / 1e6, sc->nw, sc->blocks_checked,
	       (double)(reactor_now_ns() - t_check) / 1e9, sc->violations);
	if (sc->snap_err[0]) {
		printf("keel-snapcheck: FAIL: %s\n", sc->snap_err);
	}
	if (sc->fatal) {
		printf("keel-snapcheck: FAIL: %s\n", sc->fatal);
	}
	ret = sc->violations || sc->fatal || sc->snap_err[0] ||
			      atomic_load(&sc->nsnaps) != sc->nsnaps_want
		      ? 1
		      : 0;
	printf("%s\n", ret ? "FAILED" : "PASS");
	fflush(stdout);
	keel_volume_close(sc->v);
	keel_cluster_close(sc->c);
	/* Let the closes reach the servers before the process exits. */
	deadline = reactor_now_ns() + 300 * NS_PER_MS;
	while (reactor_now_ns() < deadline) {
		if (reactor_poll(sc->r, false) < 0) {
			break;
		}
	}
	curl_global_cleanup();
	return ret;
}
