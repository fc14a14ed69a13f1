/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-vfront verify: data integrity through a vhost-user-blk backend.
 *
 * Phase 1: random writes of self-describing blocks and reads (70/30, a
 * flush every ~20 requests) on every queue at --iodepth each; a block
 * range is never written or read while another request on it is in
 * flight, so every read has exactly one right answer. Phase 2 (queue 0):
 * flush, write-zeroes (must read back as zeroes), discard (reads back as
 * zeroes or the old data; rewritten after), GET_ID. Phase 3: every block of
 * the device is read and checked against what we know it must hold.
 *
 * The report carries a digest of the final contents (crc32c over the
 * (block, sequence) pairs of every pattern block, in block order) that
 * tests/vfront/vfcheck.py recomputes from the backend's file.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc.h"
#include "tests/vfront/vf.h"

#define VF_PAT_MAGIC	 0x31304b4c4246564bull /* "KVFBLK01" */
#define VF_PAT_CRC_OFF	 (VF_PAT_BLOCK - 4)
#define VF_EXP_UNKNOWN	 0ull /* never written by us, or discarded */
#define VF_EXP_ZERO	 UINT64_MAX
#define VF_SWEEP_MAX	 (64u << 10)
#define VF_SPECIAL_RANGE 16u /* blocks per discard / write-zeroes range */
#define VF_DEFAULT_SPAN	 (1ull << 30)

/* ---- the block pattern ---- */

void vf_pattern_fill(void *block, uint64_t offset, uint64_t seq, uint64_t seed)
{
	uint64_t *w = block;
	uint64_t rng = seed ^ (offset * 0x9e3779b97f4a7c15ull) ^ (seq << 17);
	uint32_t crc;

	w[0] = VF_PAT_MAGIC;
	w[1] = offset;
	w[2] = seq;
	w[3] = seed;
	for (size_t i = 4; i < VF_PAT_BLOCK / 8; i++) {
		w[i] = vf_rand(&rng);
	}
	crc = crc32c(0, block, VF_PAT_CRC_OFF);
	memcpy((uint8_t *)block + VF_PAT_CRC_OFF, &crc, sizeof(crc));
}

enum vf_pat_result vf_pattern_check(const void *block, uint64_t offset, uint64_t seed,
				    uint64_t *seq)
{
	const uint64_t *w = block;
	uint32_t crc;
	bool zero = true;

	for (size_t i = 0; i < VF_PAT_BLOCK / 8; i++) {
		if (w[i]) {
			zero = false;
			break;
		}
	}
	if (zero) {
		return VF_PAT_ZERO;
	}
	memcpy(&crc, (const uint8_t *)block + VF_PAT_CRC_OFF, sizeof(crc));
	if (w[0] != VF_PAT_MAGIC || crc != crc32c(0, block, VF_PAT_CRC_OFF)) {
		return VF_PAT_CORRUPT;
	}
	if (w[3] != seed) {
		return VF_PAT_OTHER_SEED;
	}
	if (w[1] != offset) {
		return VF_PAT_MISPLACED;
	}
	*seq = w[2];
	return VF_PAT_OK;
}

const char *vf_pat_result_name(enum vf_pat_result r)
{
	switch (r) {
	case VF_PAT_OK:
		return "valid";
	case VF_PAT_ZERO:
		return "zeroes";
	case VF_PAT_CORRUPT:
		return "corrupt (bad magic or crc)";
	case VF_PAT_MISPLACED:
		return "a block written for another offset";
	case VF_PAT_OTHER_SEED:
		return "a block from another run";
	}
	return "?";
}

/* ---- the run ---- */

struct vf_verify {
	const struct vf_cli *cli;
	struct vf_dev dev;
	struct vf_blk blk;
	uint64_t nblocks;
	uint32_t bpb;	  /* blocks per request */
	uint64_t *expect; /* per block: sequence, VF_EXP_ZERO or VF_EXP_UNKNOWN */
	uint8_t *busy;	  /* per block: a request on it is in flight */
	uint64_t *io_seq; /* per slot: the sequence its write carries */
	uint64_t seq;
	uint64_t rng;
	uint64_t deadline_ns;
	uint64_t submitted;
	uint64_t next_reconnect; /* submission count of the next drop */
	uint64_t reconnects;
	uint64_t writes, reads, flushes, discards, write_zeroes, checked;
	bool failed;
	char serial[VF_BLK_ID_BYTES + 1];
};

static void vf_verify_fail(struct vf_verify *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void vf_verify_fail(struct vf_verify *v, const char *fmt, ...)
{
	va_list ap;

	if (v->failed) {
		return; /* the first failure is the one that matters */
	}
	v->failed = true;
	fputs("keel-vfront: verify FAILED: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Read buffers are poisoned before submission: a device that completes a
 * read without writing the buffer must not pass on stale slot contents. */
#define VF_POISON     0xa5
#define VF_POISON_LEN 64u

static void vf_verify_poison(uint8_t *buf, uint32_t len)
{
	for (uint32_t off = 0; off < len; off += VF_PAT_BLOCK) {
		memset(buf + off, VF_POISON, VF_POISON_LEN);
	}
}

static bool vf_verify_poisoned(const uint8_t *block)
{
	for (uint32_t i = 0; i < VF_POISON_LEN; i++) {
		if (block[i] != VF_POISON) {
			return false;
		}
	}
	return true;
}

/* Check @n blocks read at block @first into @buf against what they must hold. */
static void vf_verify_check(struct vf_verify *v, const uint8_t *buf, uint64_t first, uint64_t n)
{
	for (uint64_t i = 0; i < n && !v->failed; i++) {
		uint64_t blk = first + i;
		uint64_t off = blk * VF_PAT_BLOCK;
		uint64_t exp = v->expect[blk];
		uint64_t seq = 0;
		enum vf_pat_result r =
			vf_pattern_check(buf + i * VF_PAT_BLOCK, off, v->cli->seed, &seq);

		v->checked++;
		if (vf_verify_poisoned(buf + i * VF_PAT_BLOCK)) {
			vf_verify_fail(v,
				       "block at offset %llu: the device did not fill the read "
				       "buffer",
				       (unsigned long long)off);
		} else if (exp == VF_EXP_ZERO) {
			if (r != VF_PAT_ZERO) {
				vf_verify_fail(v, "block at offset %llu: expected zeroes, found %s",
					       (unsigned long long)off, vf_pat_result_name(r));
			}
		} else if (exp == VF_EXP_UNKNOWN) {
			/* Old contents, zeroes, or an earlier run's blocks (even
			 * with this seed): anything but a block in the wrong place. */
			if (r == VF_PAT_MISPLACED) {
				vf_verify_fail(v,
					       "block at offset %llu (never written or "
					       "discarded) holds %s",
					       (unsigned long long)off, vf_pat_result_name(r));
			}
		} else if (r != VF_PAT_OK) {
			vf_verify_fail(v, "block at offset %llu: expected write #%llu, found %s",
				       (unsigned long long)off, (unsigned long long)exp,
				       vf_pat_result_name(r));
		} else if (seq != exp) {
			vf_verify_fail(v,
				       "block at offset %llu: expected write #%llu, found "
				       "write #%llu (%s)",
				       (unsigned long long)off, (unsigned long long)exp,
				       (unsigned long long)seq,
				       seq < exp ? "lost write" : "stale map");
		}
	}
}

static const char *vf_status_name(uint8_t s)
{
	switch (s) {
	case VF_BLK_S_OK:
		return "OK";
	case VF_BLK_S_IOERR:
		return "IOERR";
	case VF_BLK_S_UNSUPP:
		return "UNSUPP";
	case VF_BLK_S_NONE:
		return "no status written";
	}
	return "invalid status";
}

static void vf_verify_done(struct vf_io *io, void *arg)
{
	struct vf_verify *v = arg;
	uint64_t first = io->sector * VF_SECTOR / VF_PAT_BLOCK;
	uint64_t n = io->len / VF_PAT_BLOCK;

	if (io->result != VF_BLK_S_OK) {
		vf_verify_fail(v, "request type %u at offset %llu (%u bytes) completed with %s",
			       io->type, (unsigned long long)(io->sector * VF_SECTOR), io->len,
			       vf_status_name(io->result));
	}
	for (uint64_t i = 0; i < n; i++) {
		v->busy[first + i] = 0;
	}
	if (io->type == VF_BLK_T_OUT) {
		for (uint64_t i = 0; i < n; i++) {
			v->expect[first + i] = v->io_seq[io - v->blk.ios];
		}
	} else if (io->type == VF_BLK_T_IN && io->result == VF_BLK_S_OK) {
		vf_verify_check(v, io->data, first, n);
	}
}

static bool vf_verify_want_more(struct vf_verify *v)
{
	if (v->failed) {
		return false;
	}
	if (v->cli->count) {
		return v->submitted < v->cli->count;
	}
	return vf_now_ns() < v->deadline_ns;
}

/* A random request-sized range with nothing in flight, or false. */
static bool vf_verify_pick(struct vf_verify *v, uint64_t *first)
{
	uint64_t slots = v->nblocks / v->bpb;

	for (int tries = 0; tries < 8; tries++) {
		uint64_t b = (vf_rand(&v->rng) % slots) * v->bpb;
		bool free = true;

		for (uint32_t i = 0; i < v->bpb && free; i++) {
			free = !v->busy[b + i];
		}
		if (free) {
			*first = b;
			return true;
		}
	}
	return false;
}

/* Phase 1: keep every queue at --iodepth. */
static int vf_verify_fill(struct vf_verify *v)
{
	struct vf_blk *b = &v->blk;

	for (unsigned int q = 0; q < v->dev.num_queues; q++) {
		struct vf_io *io;

		while (vf_verify_want_more(v) && (io = vf_blk_get(b, q))) {
			unsigned int dice = vf_rand(&v->rng) % 100;
			uint64_t first = 0;
			int ret;

			if (dice < 5 && vf_has_feature(&v->dev, VF_F_BLK_FLUSH)) {
				io->type = VF_BLK_T_FLUSH;
				io->len = 0;
				io->sector = 0;
			} else if (!vf_verify_pick(v, &first)) {
				vf_blk_put(b, io);
				break;
			} else {
				io->type = dice < 70 ? VF_BLK_T_OUT : VF_BLK_T_IN;
				io->sector = first * (VF_PAT_BLOCK / VF_SECTOR);
				io->len = v->bpb * VF_PAT_BLOCK;
			}
			if (io->type == VF_BLK_T_IN) {
				vf_verify_poison(io->data, io->len);
			} else if (io->type == VF_BLK_T_OUT) {
				uint64_t seq = ++v->seq;

				v->io_seq[io - b->ios] = seq;
				for (uint32_t i = 0; i < v->bpb; i++) {
					vf_pattern_fill(io->data + i * VF_PAT_BLOCK,
							(first + i) * VF_PAT_BLOCK, seq,
							v->cli->seed);
				}
			}
			ret = vf_blk_submit(b, io, vf_verify_done, v);
			if (ret == -ENOSPC) {
				vf_blk_put(b, io); /* ring full: retry after completions */
				break;
			}
			if (ret) {
				vf_blk_put(b, io);
				return ret;
			}
			for (uint32_t i = 0; io->len && i < v->bpb; i++) {
				v->busy[first + i] = 1;
			}
			v->submitted++;
			v->writes += io->type == VF_BLK_T_OUT;
			v->reads += io->type == VF_BLK_T_IN;
			v->flushes += io->type == VF_BLK_T_FLUSH;
		}
	}
	return 0;
}

/* Drop the connection with requests in flight and resume it; the backend
 * may refuse while the dropped connection's requests drain: retry until
 * the timeout. */
static int vf_verify_reconnect(struct vf_verify *v)
{
	uint64_t deadline = vf_now_ns() + (uint64_t)v->cli->dev.timeout_ms * 1000000ull;
	int ret;

	for (;;) {
		ret = vf_dev_reconnect(&v->dev, v->cli->dev.socket);
		if (!ret) {
			v->reconnects++;
			return 0;
		}
		if (ret == -EOPNOTSUPP || ret == -EPROTO || vf_now_ns() > deadline) {
			vf_verify_fail(v, "reconnect with %u requests in flight: %s",
				       v->blk.inflight, strerror(-ret));
			return ret;
		}
		usleep(20000);
	}
}

static int vf_verify_wait(struct vf_verify *v)
{
	int ret = vf_blk_poll(&v->blk, v->cli->dev.timeout_ms);

	if (ret == -ETIMEDOUT) {
		vf_verify_fail(v, "no completion within %d ms (%u requests in flight)",
			       v->cli->dev.timeout_ms, v->blk.inflight);
	} else if (ret < 0) {
		vf_verify_fail(v, "waiting for completions: %s", strerror(-ret));
	}
	return ret < 0 ? ret : 0;
}

/* One synchronous request on queue 0; fails the run unless it returns OK. */
static int vf_verify_sync(struct vf_verify *v, uint32_t type, uint64_t sector, void *buf,
			  uint32_t len, const char *what)
{
	int ret = vf_blk_sync(&v->blk, 0, type, sector, buf, len);

	if (ret < 0) {
		vf_verify_fail(v, "%s: %s", what, strerror(-ret));
		return ret;
	}
	if (ret != VF_BLK_S_OK) {
		vf_verify_fail(v, "%s completed with %s", what, vf_status_name((uint8_t)ret));
		return -EIO;
	}
	return 0;
}

/* Read [first, first + n) blocks back synchronously and check them. */
static int vf_verify_readback(struct vf_verify *v, uint64_t first, uint32_t n, uint8_t *buf)
{
	int ret;

	vf_verify_poison(buf, n * VF_PAT_BLOCK);
	ret = vf_verify_sync(v, VF_BLK_T_IN, first * (VF_PAT_BLOCK / VF_SECTOR), buf,
			     n * VF_PAT_BLOCK, "read-back");

	if (!ret) {
		vf_verify_check(v, buf, first, n);
	}
	return v->failed ? -EIO : ret;
}

static int vf_verify_rewrite(struct vf_verify *v, uint64_t first, uint32_t n, uint8_t *buf)
{
	uint64_t seq = ++v->seq;
	int ret;

	for (uint32_t i = 0; i < n; i++) {
		vf_pattern_fill(buf + i * VF_PAT_BLOCK, (first + i) * VF_PAT_BLOCK, seq,
				v->cli->seed);
	}
	ret = vf_verify_sync(v, VF_BLK_T_OUT, first * (VF_PAT_BLOCK / VF_SECTOR), buf,
			     n * VF_PAT_BLOCK, "rewrite");
	if (!ret) {
		for (uint32_t i = 0; i < n; i++) {
			v->expect[first + i] = seq;
		}
		v->writes++;
	}
	return ret;
}

/* Phase 2: flush, write-zeroes, discard, GET_ID, one at a time on queue 0. */
static int vf_verify_special(struct vf_verify *v)
{
	const uint32_t n = VF_SPECIAL_RANGE;
	uint64_t span = v->nblocks / n;
	uint8_t *buf;
	int ret = 0;

	buf = malloc((size_t)n * VF_PAT_BLOCK);
	if (!buf) {
		return -ENOMEM;
	}
	if (vf_has_feature(&v->dev, VF_F_BLK_FLUSH)) {
		ret = vf_verify_sync(v, VF_BLK_T_FLUSH, 0, NULL, 0, "flush");
		if (ret) {
			goto out_free;
		}
		v->flushes++;
	}
	if (vf_has_feature(&v->dev, VF_F_BLK_WRITE_ZEROES)) {
		for (uint32_t flags = 0; flags < 2; flags++) {
			uint64_t first = (vf_rand(&v->rng) % span) * n;
			struct vf_blk_dwz_seg seg = {.sector = first * (VF_PAT_BLOCK / VF_SECTOR),
						     .num_sectors = n * (VF_PAT_BLOCK / VF_SECTOR),
						     .flags = flags};

			ret = vf_verify_sync(v, VF_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg),
					     flags ? "write-zeroes (unmap)" : "write-zeroes");
			if (ret) {
				goto out_free;
			}
			for (uint32_t i = 0; i < n; i++) {
				v->expect[first + i] = VF_EXP_ZERO;
			}
			v->write_zeroes++;
			ret = vf_verify_readback(v, first, n, buf);
			if (ret) {
				goto out_free;
			}
		}
	}
	if (vf_has_feature(&v->dev, VF_F_BLK_DISCARD)) {
		uint64_t first = (vf_rand(&v->rng) % span) * n;
		struct vf_blk_dwz_seg seg = {.sector = first * (VF_PAT_BLOCK / VF_SECTOR),
					     .num_sectors = n * (VF_PAT_BLOCK / VF_SECTOR)};

		ret = vf_verify_rewrite(v, first, n, buf);
		if (ret) {
			goto out_free;
		}
		ret = vf_verify_sync(v, VF_BLK_T_DISCARD, 0, &seg, sizeof(seg), "discard");
		if (ret) {
			goto out_free;
		}
		v->discards++;
		/* Zeroes or the old data: checked as "unknown", then rewritten
		 * so that the final contents are known exactly. */
		for (uint32_t i = 0; i < n; i++) {
			v->expect[first + i] = VF_EXP_UNKNOWN;
		}
		ret = vf_verify_readback(v, first, n, buf);
		if (ret) {
			goto out_free;
		}
		ret = vf_verify_rewrite(v, first, n, buf);
		if (ret) {
			goto out_free;
		}
	}
	memset(buf, 0, VF_BLK_ID_BYTES);
	ret = vf_verify_sync(v, VF_BLK_T_GET_ID, 0, buf, VF_BLK_ID_BYTES, "GET_ID");
	if (ret) {
		goto out_free;
	}
	memcpy(v->serial, buf, VF_BLK_ID_BYTES);
	for (char *p = v->serial; *p; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
			*p = '?';
		}
	}
out_free:
	free(buf);
	return v->failed ? -EIO : ret;
}

/* Phase 3: read the whole device, every queue at --iodepth. */
static int vf_verify_sweep(struct vf_verify *v, uint32_t chunk_blocks)
{
	uint64_t next = 0;

	while (!v->failed && (next < v->nblocks || v->blk.inflight)) {
		for (unsigned int q = 0; q < v->dev.num_queues && next < v->nblocks; q++) {
			struct vf_io *io;

			while (next < v->nblocks && (io = vf_blk_get(&v->blk, q))) {
				uint64_t n = v->nblocks - next < chunk_blocks ? v->nblocks - next
									      : chunk_blocks;
				int ret;

				io->type = VF_BLK_T_IN;
				io->sector = next * (VF_PAT_BLOCK / VF_SECTOR);
				io->len = (uint32_t)n * VF_PAT_BLOCK;
				vf_verify_poison(io->data, io->len);
				ret = vf_blk_submit(&v->blk, io, vf_verify_done, v);
				if (ret == -ENOSPC) {
					vf_blk_put(&v->blk, io);
					break;
				}
				if (ret) {
					vf_blk_put(&v->blk, io);
					vf_verify_fail(v, "submit: %s", strerror(-ret));
					return ret;
				}
				next += n;
				v->reads++;
			}
		}
		if (v->blk.inflight && vf_verify_wait(v)) {
			return -EIO;
		}
	}
	return v->failed ? -EIO : 0;
}

static void vf_verify_report(struct vf_verify *v, double secs)
{
	uint64_t pattern = 0, zero = 0;
	uint32_t digest = 0;

	for (uint64_t blk = 0; blk < v->nblocks; blk++) {
		uint64_t rec[2] = {blk, v->expect[blk]};

		if (v->expect[blk] == VF_EXP_ZERO) {
			zero++;
		} else if (v->expect[blk] != VF_EXP_UNKNOWN) {
			pattern++;
			digest = crc32c(digest, rec, sizeof(rec));
		}
	}
	if (v->cli->json) {
		printf("{\"ok\":%s,\"seed\":%llu,\"size\":%llu,\"bs\":%u,\"queues\":%u,"
		       "\"iodepth\":%u,\"runtime_s\":%.3f,\"writes\":%llu,\"reads\":%llu,"
		       "\"flushes\":%llu,\"discards\":%llu,\"write_zeroes\":%llu,"
		       "\"checked_blocks\":%llu,\"pattern_blocks\":%llu,\"zero_blocks\":%llu,"
		       "\"last_seq\":%llu,\"digest\":%u,\"reconnects\":%llu,\"serial\":\"%s\"}\n",
		       v->failed ? "false" : "true", (unsigned long long)v->cli->seed,
		       (unsigned long long)(v->nblocks * VF_PAT_BLOCK), v->cli->bs,
		       v->dev.num_queues, v->cli->iodepth, secs, (unsigned long long)v->writes,
		       (unsigned long long)v->reads, (unsigned long long)v->flushes,
		       (unsigned long long)v->discards, (unsigned long long)v->write_zeroes,
		       (unsigned long long)v->checked, (unsigned long long)pattern,
		       (unsigned long long)zero, (unsigned long long)v->seq, digest,
		       (unsigned long long)v->reconnects, v->serial);
		return;
	}
	printf("keel-vfront verify: %s, %llu bytes, bs=%u queues=%u iodepth=%u, %.2f s\n",
	       v->failed ? "FAILED" : "ok", (unsigned long long)(v->nblocks * VF_PAT_BLOCK),
	       v->cli->bs, v->dev.num_queues, v->cli->iodepth, secs);
	printf("writes %llu reads %llu flushes %llu discards %llu write_zeroes %llu; "
	       "%llu blocks checked; final: %llu pattern blocks, %llu zero blocks, digest %u; "
	       "%llu reconnects; serial \"%s\"\n",
	       (unsigned long long)v->writes, (unsigned long long)v->reads,
	       (unsigned long long)v->flushes, (unsigned long long)v->discards,
	       (unsigned long long)v->write_zeroes, (unsigned long long)v->checked,
	       (unsigned long long)pattern, (unsigned long long)zero, digest,
	       (unsigned long long)v->reconnects, v->serial);
}

int vf_cmd_verify(const struct vf_cli *cli)
{
	struct vf_verify *v;
	uint32_t chunk_blocks = VF_SWEEP_MAX / VF_PAT_BLOCK;
	uint64_t span;
	uint64_t t0;
	int ret;

	v = calloc(1, sizeof(*v));
	if (!v) {
		return 1;
	}
	v->cli = cli;
	v->rng = cli->seed;
	v->bpb = cli->bs / VF_PAT_BLOCK;
	ret = vf_dev_connect(&v->dev, cli->dev.socket, cli->dev.timeout_ms);
	if (ret) {
		fprintf(stderr, "keel-vfront: cannot connect to %s: %s\n", cli->dev.socket,
			strerror(-ret));
		free(v);
		return 1;
	}
	ret = vf_dev_open(&v->dev, &cli->dev);
	if (ret) {
		vf_verify_fail(v, "setup: %s", strerror(-ret));
		goto out_close;
	}
	if (!v->dev.have_config || vf_has_feature(&v->dev, VF_F_BLK_RO)) {
		vf_verify_fail(v, "the device has no config space or is read-only");
		goto out_close;
	}
	/* The per-block state costs 9 bytes per 4 KiB and the final sweep
	 * reads all of it: big devices are verified over their first GiB
	 * unless --span says otherwise. */
	span = cli->span ? cli->span : VF_DEFAULT_SPAN;
	if (span > vf_capacity(&v->dev)) {
		span = vf_capacity(&v->dev);
	}
	v->nblocks = span / VF_PAT_BLOCK;
	if (v->nblocks < (uint64_t)v->bpb * 4 || v->nblocks < VF_SPECIAL_RANGE * 4) {
		vf_verify_fail(v, "device too small (%llu bytes)",
			       (unsigned long long)vf_capacity(&v->dev));
		goto out_close;
	}
	if (vf_has_feature(&v->dev, VF_F_BLK_SEG_MAX) && v->dev.cfg.seg_max &&
	    chunk_blocks > v->dev.cfg.seg_max) {
		chunk_blocks = v->dev.cfg.seg_max;
	}
	ret = vf_blk_init(&v->blk, &v->dev, cli->iodepth,
			  cli->bs > chunk_blocks * VF_PAT_BLOCK ? cli->bs
								: chunk_blocks * VF_PAT_BLOCK,
			  cli->dev.indirect);
	if (ret) {
		vf_verify_fail(v, "slots: %s", strerror(-ret));
		goto out_close;
	}
	/* One descriptor per 4 KiB when the device takes that many segments:
	 * exercises chains, not just one buffer per request. */
	if (!vf_has_feature(&v->dev, VF_F_BLK_SEG_MAX) || v->dev.cfg.seg_max >= v->bpb) {
		v->blk.seg_bytes = VF_PAT_BLOCK;
	}
	v->blk.spin = cli->spin;
	v->expect = calloc(v->nblocks, sizeof(*v->expect));
	v->busy = calloc(v->nblocks, 1);
	v->io_seq = calloc((size_t)v->dev.num_queues * cli->iodepth, sizeof(*v->io_seq));
	if (!v->expect || !v->busy || !v->io_seq) {
		vf_verify_fail(v, "out of memory");
		goto out_blk;
	}
	t0 = vf_now_ns();
	v->deadline_ns = t0 + (uint64_t)(cli->runtime_s * 1e9);
	v->next_reconnect = cli->reconnect;
	if (cli->reconnect && !v->dev.inflight) {
		vf_verify_fail(
			v, "--reconnect needs INFLIGHT_SHMFD, which the backend does not offer");
		goto out_blk;
	}
	while (!v->failed && (vf_verify_want_more(v) || v->blk.inflight)) {
		ret = vf_verify_fill(v);
		if (ret) {
			vf_verify_fail(v, "submit: %s", strerror(-ret));
			break;
		}
		if (cli->reconnect && v->submitted >= v->next_reconnect && v->blk.inflight) {
			v->next_reconnect = v->submitted + cli->reconnect;
			if (vf_verify_reconnect(v)) {
				break;
			}
		}
		if (v->blk.inflight && vf_verify_wait(v)) {
			break;
		}
	}
	if (!v->failed) {
		vf_verify_special(v);
	}
	if (!v->failed) {
		vf_verify_sweep(v, chunk_blocks);
	}
	if (!v->failed && v->blk.protocol_errors) {
		vf_verify_fail(v, "%llu bad used-ring entries",
			       (unsigned long long)v->blk.protocol_errors);
	}
	vf_verify_report(v, (vf_now_ns() - t0) / 1e9);
out_blk:
	free(v->expect);
	free(v->busy);
	free(v->io_seq);
	vf_blk_destroy(&v->blk);
out_close:
	vf_dev_close(&v->dev);
	ret = v->failed ? 1 : 0;
	free(v);
	return ret;
}
