/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-vfront bench: an fio-like load straight on the virtqueues (no VM, no
 * guest kernel), so the backend's own cost shows. Every queue is kept at
 * --iodepth; a completion resubmits its slot at once. The JSON report uses
 * keel-bench's field names (total/read/write: ios, iops, mib_s, lat_us
 * {mean, p50, p99, p99_9, max}; errors; ok) so the same scripts read both.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/vfront/vf.h"

/* Log-linear latency histogram: 16 sub-buckets per power of two of ns
 * (relative error under 7 %). */
#define VF_HIST_SUB	16u
#define VF_HIST_BUCKETS (64u * VF_HIST_SUB)

struct vf_hist {
	uint64_t count, sum, max;
	uint64_t b[VF_HIST_BUCKETS];
};

static unsigned int vf_hist_bucket(uint64_t v)
{
	unsigned int msb;

	if (v < VF_HIST_SUB) {
		return (unsigned int)v;
	}
	msb = 63u - (unsigned int)__builtin_clzll(v);
	return (msb - 3) * VF_HIST_SUB + (unsigned int)((v >> (msb - 4)) & (VF_HIST_SUB - 1));
}

/* Upper bound (ns) of bucket @i. */
static double vf_hist_upper(unsigned int i)
{
	unsigned int msb;

	if (i < VF_HIST_SUB) {
		return i;
	}
	msb = i / VF_HIST_SUB + 3;
	return ldexp(1.0, (int)msb) + ldexp((double)(i % VF_HIST_SUB + 1), (int)msb - 4) - 1;
}

static void vf_hist_add(struct vf_hist *h, uint64_t v)
{
	h->count++;
	h->sum += v;
	if (v > h->max) {
		h->max = v;
	}
	h->b[vf_hist_bucket(v)]++;
}

static void vf_hist_merge(struct vf_hist *dst, const struct vf_hist *a, const struct vf_hist *c)
{
	dst->count = a->count + c->count;
	dst->sum = a->sum + c->sum;
	dst->max = a->max > c->max ? a->max : c->max;
	for (unsigned int i = 0; i < VF_HIST_BUCKETS; i++) {
		dst->b[i] = a->b[i] + c->b[i];
	}
}

/* Percentile @p (0..100) in ns, never above the observed max. */
static double vf_hist_pct(const struct vf_hist *h, double p)
{
	uint64_t want, seen = 0;

	if (!h->count) {
		return 0;
	}
	want = (uint64_t)ceil((double)h->count * p / 100.0);
	if (want < 1) {
		want = 1;
	}
	for (unsigned int i = 0; i < VF_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			double u = vf_hist_upper(i);

			return u < (double)h->max ? u : (double)h->max;
		}
	}
	return (double)h->max;
}

struct vf_bench {
	const struct vf_cli *cli;
	struct vf_dev dev;
	struct vf_blk blk;
	uint64_t nslots; /* bs-sized positions on the device */
	uint64_t next_seq;
	uint64_t rng;
	uint64_t t_start, t_end, deadline;
	struct vf_hist h_read, h_write;
	uint64_t bytes_read, bytes_written;
	uint64_t errors;
};

static const char *const vf_rw_names[] = {
	[VF_RW_RANDREAD] = "randread", [VF_RW_RANDWRITE] = "randwrite", [VF_RW_RANDRW] = "randrw",
	[VF_RW_READ] = "read",	       [VF_RW_WRITE] = "write",
};

static void vf_bench_done(struct vf_io *io, void *arg);

static int vf_bench_submit(struct vf_bench *bn, struct vf_io *io)
{
	const struct vf_cli *cli = bn->cli;
	uint64_t slot;
	bool read;

	switch (cli->rw) {
	case VF_RW_RANDREAD:
	case VF_RW_READ:
		read = true;
		break;
	case VF_RW_RANDRW:
		read = vf_rand(&bn->rng) % 100 < cli->rwmixread;
		break;
	default:
		read = false;
		break;
	}
	if (cli->rw == VF_RW_READ || cli->rw == VF_RW_WRITE) {
		slot = bn->next_seq++ % bn->nslots;
	} else {
		slot = vf_rand(&bn->rng) % bn->nslots;
	}
	if (!read && io->type == VF_BLK_T_IN) {
		/* The buffer holds what the last read returned: spoil every
		 * block's first word so that bench never copies a verify
		 * block to another offset (a later verify would call that a
		 * misplaced write). */
		for (uint32_t off = 0; off < cli->bs; off += 4096) {
			*(uint64_t *)(io->data + off) = vf_rand(&bn->rng);
		}
	}
	io->type = read ? VF_BLK_T_IN : VF_BLK_T_OUT;
	io->sector = slot * (cli->bs / VF_SECTOR);
	io->len = cli->bs;
	return vf_blk_submit(&bn->blk, io, vf_bench_done, bn);
}

static void vf_bench_done(struct vf_io *io, void *arg)
{
	struct vf_bench *bn = arg;
	uint64_t now = vf_now_ns();

	if (io->result != VF_BLK_S_OK) {
		bn->errors++;
	} else if (io->type == VF_BLK_T_IN) {
		vf_hist_add(&bn->h_read, now - io->t_submit_ns);
		bn->bytes_read += io->len;
	} else {
		vf_hist_add(&bn->h_write, now - io->t_submit_ns);
		bn->bytes_written += io->len;
	}
	if (now < bn->deadline && vf_bench_submit(bn, io)) {
		bn->errors++;
	}
}

static void vf_bench_print_hist(const char *name, const struct vf_hist *h, double secs,
				uint64_t bytes, bool json)
{
	double mean = h->count ? (double)h->sum / (double)h->count / 1e3 : 0;

	if (json) {
		printf("\"%s\":{\"ios\":%llu,\"iops\":%.1f,\"mib_s\":%.3f,\"lat_us\":{\"mean\":%."
		       "2f,"
		       "\"p50\":%.2f,\"p99\":%.2f,\"p99_9\":%.2f,\"max\":%.2f}},",
		       name, (unsigned long long)h->count, (double)h->count / secs,
		       (double)bytes / secs / 1048576.0, mean, vf_hist_pct(h, 50) / 1e3,
		       vf_hist_pct(h, 99) / 1e3, vf_hist_pct(h, 99.9) / 1e3, (double)h->max / 1e3);
		return;
	}
	if (!h->count) {
		return;
	}
	printf("%-6s %10.0f IOPS %9.2f MiB/s  lat us: mean %.1f p50 %.1f p99 %.1f p99.9 %.1f "
	       "max %.1f\n",
	       name, (double)h->count / secs, (double)bytes / secs / 1048576.0, mean,
	       vf_hist_pct(h, 50) / 1e3, vf_hist_pct(h, 99) / 1e3, vf_hist_pct(h, 99.9) / 1e3,
	       (double)h->max / 1e3);
}

static void vf_bench_report(struct vf_bench *bn, const char *fatal)
{
	const struct vf_cli *cli = bn->cli;
	double secs = (double)(bn->t_end - bn->t_start) / 1e9;
	struct vf_hist *all = calloc(1, sizeof(*all));
	bool ok = !fatal && !bn->errors;

	if (!all) {
		return;
	}
	if (secs <= 0) {
		secs = 1e-9;
	}
	vf_hist_merge(all, &bn->h_read, &bn->h_write);
	if (cli->json) {
		printf("{\"rw\":\"%s\",\"bs\":%u,\"iodepth\":%u,\"queues\":%u,\"size\":%llu,"
		       "\"runtime_s\":%.3f,",
		       vf_rw_names[cli->rw], cli->bs, cli->iodepth, bn->dev.num_queues,
		       (unsigned long long)vf_capacity(&bn->dev), secs);
		vf_bench_print_hist("total", all, secs, bn->bytes_read + bn->bytes_written, true);
		vf_bench_print_hist("read", &bn->h_read, secs, bn->bytes_read, true);
		vf_bench_print_hist("write", &bn->h_write, secs, bn->bytes_written, true);
		printf("\"errors\":%llu,\"ok\":%s}\n", (unsigned long long)bn->errors,
		       ok ? "true" : "false");
	} else {
		printf("keel-vfront bench: %s bs=%u iodepth=%u queues=%u size=%llu, %.2f s\n",
		       vf_rw_names[cli->rw], cli->bs, cli->iodepth, bn->dev.num_queues,
		       (unsigned long long)vf_capacity(&bn->dev), secs);
		vf_bench_print_hist("read", &bn->h_read, secs, bn->bytes_read, false);
		vf_bench_print_hist("write", &bn->h_write, secs, bn->bytes_written, false);
		vf_bench_print_hist("total", all, secs, bn->bytes_read + bn->bytes_written, false);
		printf("errors: %llu\n", (unsigned long long)bn->errors);
	}
	if (fatal) {
		fprintf(stderr, "keel-vfront: bench failed: %s\n", fatal);
	}
	free(all);
}

int vf_cmd_bench(const struct vf_cli *cli)
{
	struct vf_bench *bn;
	const char *fatal = NULL;
	int ret;

	bn = calloc(1, sizeof(*bn));
	if (!bn) {
		return 1;
	}
	bn->cli = cli;
	bn->rng = cli->seed;
	ret = vf_dev_connect(&bn->dev, cli->dev.socket, cli->dev.timeout_ms);
	if (ret) {
		fprintf(stderr, "keel-vfront: cannot connect to %s: %s\n", cli->dev.socket,
			strerror(-ret));
		free(bn);
		return 1;
	}
	ret = vf_dev_open(&bn->dev, &cli->dev);
	if (ret) {
		fprintf(stderr, "keel-vfront: setup failed: %s\n", strerror(-ret));
		goto out_close;
	}
	bn->nslots = vf_capacity(&bn->dev) / cli->bs;
	if (!bn->nslots) {
		fprintf(stderr, "keel-vfront: device smaller than --bs\n");
		ret = -EINVAL;
		goto out_close;
	}
	if (cli->rw != VF_RW_RANDREAD && cli->rw != VF_RW_READ &&
	    vf_has_feature(&bn->dev, VF_F_BLK_RO)) {
		fprintf(stderr, "keel-vfront: the device is read-only\n");
		ret = -EROFS;
		goto out_close;
	}
	if (cli->iodepth * (cli->dev.indirect ? 1u : 3u) > bn->dev.queue_size) {
		fprintf(stderr,
			"keel-vfront: --iodepth %u needs %u descriptors per queue; raise "
			"--queue-size or use --indirect\n",
			cli->iodepth, cli->iodepth * (cli->dev.indirect ? 1u : 3u));
		ret = -EINVAL;
		goto out_close;
	}
	ret = vf_blk_init(&bn->blk, &bn->dev, cli->iodepth, cli->bs, cli->dev.indirect);
	if (ret) {
		fprintf(stderr, "keel-vfront: slots: %s\n", strerror(-ret));
		goto out_close;
	}
	bn->blk.spin = cli->spin;
	/* Incompressible data, written once; bench does not check contents. */
	for (unsigned int i = 0; i < bn->dev.num_queues * cli->iodepth; i++) {
		uint64_t *w = (uint64_t *)bn->blk.ios[i].data;

		for (uint32_t j = 0; j < cli->bs / 8; j++) {
			w[j] = vf_rand(&bn->rng);
		}
	}
	bn->t_start = vf_now_ns();
	bn->deadline = bn->t_start + (uint64_t)(cli->runtime_s * 1e9);
	for (unsigned int q = 0; q < bn->dev.num_queues && !fatal; q++) {
		struct vf_io *io;

		while ((io = vf_blk_get(&bn->blk, q))) {
			ret = vf_bench_submit(bn, io);
			if (ret) {
				vf_blk_put(&bn->blk, io);
				fatal = strerror(-ret);
				break;
			}
		}
	}
	while (!fatal && bn->blk.inflight) {
		ret = vf_blk_poll(&bn->blk, cli->dev.timeout_ms);
		if (ret == -ETIMEDOUT) {
			fatal = "no completion within the timeout";
		} else if (ret < 0) {
			fatal = strerror(-ret);
		}
	}
	bn->t_end = vf_now_ns();
	if (!fatal && bn->blk.protocol_errors) {
		fatal = "bad used-ring entries";
	}
	vf_bench_report(bn, fatal);
	ret = fatal || bn->errors ? -EIO : 0;
	vf_blk_destroy(&bn->blk);
out_close:
	vf_dev_close(&bn->dev);
	free(bn);
	return ret ? 1 : 0;
}
