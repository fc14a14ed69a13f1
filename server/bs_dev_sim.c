/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "sim" backend: a drive with a volatile write cache, for crash tests; or,
 * after bs_sim_set_plp(), one whose cache is power-loss protected.
 *
 * State:
 *  - cur:     what reads see;
 *  - durable: what survives power loss;
 *  - pending: every submitted request that has not completed (unordered set);
 *  - dirty:   completed writes not yet durable, in completion order.
 *
 * Model (every choice comes from one seeded splitmix64 stream, so a seed and
 * the same sequence of calls replay exactly):
 *
 *  - Submission validates and copies write data, puts the request in pending
 *    and makes sure the device "tick" is queued with reactor_defer(). Nothing
 *    completes inside a submit call.
 *  - Each tick (one per reactor turn while anything is pending) completes a
 *    random non-empty subset of the requests pending when it started, in
 *    random order; requests submitted from those callbacks wait for the next
 *    tick. Completion is where a request takes effect:
 *      read:  copies from cur at completion, so it sees every write that
 *             completed before it;
 *      write: its data lands in cur at completion (not at submission) and it
 *             joins the tail of dirty;
 *      dsync write (io->dsync, or any write with power-loss protection):
 *             lands in cur and in durable at completion;
 *             dirty writes it overlaps move to durable just before it (a
 *             drive's cache holds the newest data of a block); the others
 *             stay dirty (a FUA write, not a flush);
 *      flush: moves to durable, in completion order, every dirty write that
 *             had completed when the flush was *submitted*; writes completing
 *             while the flush is in flight are not covered.
 *  - Injected faults (bs_sim_inject) are decided at submission by counting
 *    accepted reads / writes; a faulted request completes with the error and
 *    changes nothing. ENOSPC applies to writes only (ignored for reads).
 *
 * bs_sim_crash() (power loss), precisely:
 *  1. The unflushed writes are, in this order: dirty (completion order), then
 *     in-flight writes (submission order); faulted writes are not included.
 *  2. Each one, in that order, is applied to durable according to one random
 *     draw: keep (all blocks, 1/3), drop (none, 1/3) or tear (1/3: each
 *     4 KiB block independently kept with probability 1/2). Blocks are
 *     never partially written.
 *  3. Every pending request (read, write, flush) is forgotten: its callback
 *     never fires. The device only ever touches a caller's bs_io to call
 *     io->cb; the deferred tick is the device's own allocation, so the
 *     caller may free its requests right after the crash.
 *  4. cur = durable (only the regions of the writes above can differ).
 *  The return value is the number of those writes that lost at least one
 *  block (dropped, or torn with a block missing): 0 means the durable image
 *  equals what a reader saw before the crash plus every in-flight write.
 *  The device stays open and usable, as a drive that just powered up; the
 *  write counter and the random stream continue.
 *
 * bs_sim_flip_bit() flips the bit in cur and durable; a dirty write covering
 * that byte still carries its own (unflipped) data and overwrites it when it
 * becomes durable, as a drive's cache would.
 *
 * Closing with requests pending forgets them like a crash does (no callbacks).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"
#include "server/bs_dev.h"

#define SIM_DEFAULT_SEED 1

enum sim_kind {
	SIM_READ,
	SIM_WRITE,
	SIM_FLUSH,
};

struct sim_req {
	struct sim_req *next; /* dirty list */
	struct bs_io *io;
	enum sim_kind kind;
	int fault; /* 0 or -errno to complete with */
	uint64_t off;
	uint32_t len;
	void *buf;	     /* read: caller's buffer */
	uint8_t *data;	     /* write: private copy */
	uint64_t seq;	     /* submission order (in flight) / completion order (dirty) */
	uint64_t flush_upto; /* flush: covers dirty writes with seq <= this */
	bool dsync;	     /* write: durable at completion */
};

/* Lives apart from the device so that a close while it is queued in the
 * reactor leaves it harmless: it sees dev == NULL and frees itself. */
struct sim_tick {
	struct reactor_defer defer;
	struct sim_dev *dev;
	bool queued;
};

struct sim_fault_cfg {
	enum bs_sim_fault fault;
	unsigned int every_n;
	uint64_t count;
};

struct sim_dev {
	struct bs_dev dev;
	uint8_t *cur;
	uint8_t *durable;
	uint64_t rng;

	struct sim_req **pend;
	size_t npend;
	size_t pend_cap;	/* also the capacity of batch */
	struct sim_req **batch; /* chosen by the running tick: [batch_pos, nbatch) */
	size_t nbatch;
	size_t batch_pos;

	struct sim_req *dirty_head;
	struct sim_req **dirty_tail;

	uint64_t sub_seq;
	uint64_t done_seq;
	uint64_t write_count;
	struct sim_fault_cfg inject[2]; /* [0] reads, [1] writes */

	struct sim_tick *tick;
	bool in_tick;
	bool close_pending;
	bool plp; /* every write durable at completion (bs_sim_set_plp) */
};

static const struct bs_dev_ops sim_ops;

/*
 * Images are anonymous mappings, zero and unbacked until written. Crash tests
 * open, fill and drop many large devices and page faults dominate their
 * cost, so ask for transparent huge pages (best effort; "madvise" mode is
 * common) and reserve no swap for untouched space.
 */
static uint8_t *img_alloc(uint64_t size)
{
	void *p;

	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		return NULL;
	}
	(void)madvise(p, (size_t)size, MADV_HUGEPAGE);
	return p;
}

static struct sim_dev *to_sim(const struct bs_dev *dev)
{
	kassert(dev && dev->ops == &sim_ops);
	return container_of(dev, struct sim_dev, dev);
}

static uint64_t sim_rand(struct sim_dev *sd)
{
	uint64_t z = (sd->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t sim_rand_below(struct sim_dev *sd, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)sim_rand(sd) * n) >> 64);
}

static void sim_req_free(struct sim_req *req)
{
	free(req->data);
	free(req);
}

static void sim_tick_fn(struct reactor_defer *d);

static void sim_kick(struct sim_dev *sd)
{
	if (sd->tick->queued || sd->in_tick) {
		return; /* a running tick re-queues itself if work is left */
	}
	sd->tick->queued = true;
	sd->tick->defer.fn = sim_tick_fn;
	reactor_defer(sd->dev.r, &sd->tick->defer);
}

static int sim_submit(struct sim_dev *sd, struct sim_req *req)
{
	if (sd->npend == sd->pend_cap) {
		size_t cap = sd->pend_cap ? sd->pend_cap * 2 : 64;
		struct sim_req **p;

		p = realloc(sd->batch, cap * sizeof(*p));
		if (!p) {
			return -ENOMEM;
		}
		sd->batch = p;
		p = realloc(sd->pend, cap * sizeof(*p));
		if (!p) {
			return -ENOMEM;
		}
		sd->pend = p;
		sd->pend_cap = cap;
	}
	req->seq = ++sd->sub_seq;
	sd->pend[sd->npend++] = req;
	sim_kick(sd);
	return 0;
}

static int sim_fault_for(struct sim_dev *sd, bool is_write)
{
	struct sim_fault_cfg *c = &sd->inject[is_write];

	c->count++;
	if (!c->every_n || c->count % c->every_n) {
		return 0;
	}
	switch (c->fault) {
	case BS_SIM_FAULT_EIO:
		return -EIO;
	case BS_SIM_FAULT_ENOSPC:
		return is_write ? -ENOSPC : 0;
	case BS_SIM_FAULT_NONE:
		break;
	}
	return 0;
}

static int sim_read(struct bs_dev *dev, void *buf, size_t len, uint64_t off, struct bs_io *io)
{
	struct sim_dev *sd = to_sim(dev);
	struct sim_req *req;
	int ret;

	ret = bs_dev_check_io(dev, buf, len, off);
	if (ret) {
		return ret;
	}
	req = calloc(1, sizeof(*req));
	if (!req) {
		return -ENOMEM;
	}
	req->io = io;
	req->kind = SIM_READ;
	req->off = off;
	req->len = (uint32_t)len;
	req->buf = buf;
	ret = sim_submit(sd, req);
	if (ret) {
		goto out_free_req;
	}
	req->fault = sim_fault_for(sd, false);
	return 0;

out_free_req:
	sim_req_free(req);
	return ret;
}

static int sim_write(struct bs_dev *dev, const void *buf, size_t len, uint64_t off,
		     struct bs_io *io)
{
	struct sim_dev *sd = to_sim(dev);
	struct sim_req *req;
	int ret;

	ret = bs_dev_check_io(dev, buf, len, off);
	if (ret) {
		return ret;
	}
	req = calloc(1, sizeof(*req));
	if (!req) {
		return -ENOMEM;
	}
	req->data = malloc(len);
	if (!req->data) {
		ret = -ENOMEM;
		goto out_free_req;
	}
	memcpy(req->data, buf, len);
	req->io = io;
	req->kind = SIM_WRITE;
	req->dsync = io->dsync || sd->plp;
	req->off = off;
	req->len = (uint32_t)len;
	ret = sim_submit(sd, req);
	if (ret) {
		goto out_free_req;
	}
	req->fault = sim_fault_for(sd, true);
	sd->write_count++;
	return 0;

out_free_req:
	sim_req_free(req);
	return ret;
}

static int sim_flush(struct bs_dev *dev, struct bs_io *io)
{
	struct sim_dev *sd = to_sim(dev);
	struct sim_req *req;
	int ret;

	req = calloc(1, sizeof(*req));
	if (!req) {
		return -ENOMEM;
	}
	req->io = io;
	req->kind = SIM_FLUSH;
	req->flush_upto = sd->done_seq;
	ret = sim_submit(sd, req);
	if (ret) {
		sim_req_free(req);
		return ret;
	}
	sd->write_count++;
	return 0;
}

/* A dsync write completes: the dirty writes it overlaps become durable
 * first, in completion order, then it does. */
static void sim_write_through(struct sim_dev *sd, struct sim_req *req)
{
	struct sim_req **pw = &sd->dirty_head, *w;

	sd->dirty_tail = &sd->dirty_head;
	while ((w = *pw)) {
		if (w->off < req->off + req->len && req->off < w->off + w->len) {
			memcpy(sd->durable + w->off, w->data, w->len);
			*pw = w->next;
			sim_req_free(w);
			continue;
		}
		sd->dirty_tail = &w->next;
		pw = &w->next;
	}
	memcpy(sd->durable + req->off, req->data, req->len);
}

/* Apply one request's effect; returns the callback result. Consumes @req
 * except for a successful write, which moves to the dirty list. */
static int sim_complete(struct sim_dev *sd, struct sim_req *req)
{
	int res;

	if (req->fault) {
		res = req->fault;
		sim_req_free(req);
		return res;
	}
	switch (req->kind) {
	case SIM_READ:
		memcpy(req->buf, sd->cur + req->off, req->len);
		res = (int)req->len;
		sim_req_free(req);
		return res;
	case SIM_WRITE:
		memcpy(sd->cur + req->off, req->data, req->len);
		if (req->dsync) {
			sim_write_through(sd, req);
			res = (int)req->len;
			sim_req_free(req);
			return res;
		}
		req->seq = ++sd->done_seq;
		req->next = NULL;
		*sd->dirty_tail = req;
		sd->dirty_tail = &req->next;
		return (int)req->len;
	case SIM_FLUSH:
		while (sd->dirty_head && sd->dirty_head->seq <= req->flush_upto) {
			struct sim_req *w = sd->dirty_head;

			memcpy(sd->durable + w->off, w->data, w->len);
			sd->dirty_head = w->next;
			sim_req_free(w);
		}
		if (!sd->dirty_head) {
			sd->dirty_tail = &sd->dirty_head;
		}
		sim_req_free(req);
		return 0;
	}
	log_fatal("sim: bad request kind %d", (int)req->kind);
}

static void sim_free(struct sim_dev *sd);

static void sim_tick_fn(struct reactor_defer *d)
{
	struct sim_tick *tick = container_of(d, struct sim_tick, defer);
	struct sim_dev *sd = tick->dev;
	size_t i;

	tick->queued = false;
	if (!sd) {
		free(tick); /* the device was closed while we were queued */
		return;
	}
	if (!sd->npend) {
		return;
	}
	/* Choose a random non-empty subset of what is pending now... */
	sd->nbatch = 0;
	sd->batch_pos = 0;
	for (i = 0; i < sd->npend;) {
		if (sim_rand(sd) & 1) {
			i++;
			continue;
		}
		sd->batch[sd->nbatch++] = sd->pend[i];
		sd->pend[i] = sd->pend[--sd->npend];
	}
	if (!sd->nbatch) {
		i = (size_t)sim_rand_below(sd, sd->npend);
		sd->batch[sd->nbatch++] = sd->pend[i];
		sd->pend[i] = sd->pend[--sd->npend];
	}
	/* ... and complete it in a random order. */
	for (i = sd->nbatch - 1; i > 0; i--) {
		size_t j = (size_t)sim_rand_below(sd, i + 1);
		struct sim_req *t = sd->batch[i];

		sd->batch[i] = sd->batch[j];
		sd->batch[j] = t;
	}

	sd->in_tick = true;
	while (sd->batch_pos < sd->nbatch) {
		struct sim_req *req = sd->batch[sd->batch_pos++];
		struct bs_io *io = req->io;
		int res;

		res = sim_complete(sd, req);
		/* The callback may submit, crash, or even close the device. */
		io->cb(io, res);
		if (sd->close_pending) {
			sd->in_tick = false;
			sim_free(sd);
			return;
		}
	}
	sd->in_tick = false;
	sd->nbatch = 0;
	sd->batch_pos = 0;
	if (sd->npend) {
		sim_kick(sd);
	}
}

static void sim_forget_pending(struct sim_dev *sd)
{
	size_t i;

	for (i = 0; i < sd->npend; i++) {
		sim_req_free(sd->pend[i]);
	}
	sd->npend = 0;
	for (i = sd->batch_pos; i < sd->nbatch; i++) {
		sim_req_free(sd->batch[i]);
	}
	sd->nbatch = 0;
	sd->batch_pos = 0;
}

static int sim_cmp_seq(const void *a, const void *b)
{
	const struct sim_req *x = *(struct sim_req *const *)a;
	const struct sim_req *y = *(struct sim_req *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Apply @w to durable per one random draw; true if a block was lost. */
static bool sim_crash_one(struct sim_dev *sd, const struct sim_req *w)
{
	uint32_t nblk = w->len / BS_DEV_BLOCK, b;
	bool lost = false;

	switch (sim_rand_below(sd, 3)) {
	case 0: /* keep */
		memcpy(sd->durable + w->off, w->data, w->len);
		return false;
	case 1: /* drop */
		return true;
	default: /* tear */
		for (b = 0; b < nblk; b++) {
			size_t o = (size_t)b * BS_DEV_BLOCK;

			if (sim_rand(sd) & 1) {
				memcpy(sd->durable + w->off + o, w->data + o, BS_DEV_BLOCK);
			} else {
				lost = true;
			}
		}
		return lost;
	}
}

unsigned int bs_sim_crash(struct bs_dev *dev)
{
	struct sim_dev *sd = to_sim(dev);
	struct sim_req **inflight, *w;
	size_t i, n = 0;
	unsigned int affected = 0;

	/* In-flight writes: still pending, or chosen by the running tick. */
	inflight = malloc((sd->npend + sd->nbatch + 1) * sizeof(*inflight));
	if (!inflight) {
		log_fatal("sim: out of memory in crash");
	}
	for (i = 0; i < sd->npend; i++) {
		w = sd->pend[i];
		if (w->kind == SIM_WRITE && !w->fault) {
			inflight[n++] = w;
		}
	}
	for (i = sd->batch_pos; i < sd->nbatch; i++) {
		w = sd->batch[i];
		if (w->kind == SIM_WRITE && !w->fault) {
			inflight[n++] = w;
		}
	}
	qsort(inflight, n, sizeof(*inflight), sim_cmp_seq);

	for (w = sd->dirty_head; w; w = w->next) {
		affected += sim_crash_one(sd, w);
	}
	for (i = 0; i < n; i++) {
		affected += sim_crash_one(sd, inflight[i]);
	}
	/* cur differs from durable only where these writes landed. */
	for (w = sd->dirty_head; w; w = w->next) {
		memcpy(sd->cur + w->off, sd->durable + w->off, w->len);
	}
	for (i = 0; i < n; i++) {
		memcpy(sd->cur + inflight[i]->off, sd->durable + inflight[i]->off,
		       inflight[i]->len);
	}
	free(inflight);

	while ((w = sd->dirty_head)) {
		sd->dirty_head = w->next;
		sim_req_free(w);
	}
	sd->dirty_tail = &sd->dirty_head;
	sim_forget_pending(sd);
	log_debug("sim %s: crash, %u unflushed writes lost data", sd->dev.path, affected);
	return affected;
}

static void sim_free(struct sim_dev *sd)
{
	struct sim_req *w;

	sim_forget_pending(sd);
	while ((w = sd->dirty_head)) {
		sd->dirty_head = w->next;
		sim_req_free(w);
	}
	if (sd->tick->queued) {
		sd->tick->dev = NULL; /* frees itself when the reactor runs it */
	} else {
		free(sd->tick);
	}
	free(sd->pend);
	free(sd->batch);
	munmap(sd->cur, (size_t)sd->dev.size);
	munmap(sd->durable, (size_t)sd->dev.size);
	free(sd);
}

static void sim_close(struct bs_dev *dev)
{
	struct sim_dev *sd = to_sim(dev);

	if (sd->in_tick) {
		sd->close_pending = true; /* closed from a callback: the tick frees */
		sim_forget_pending(sd);
		return;
	}
	sim_free(sd);
}

void bs_sim_seed(struct bs_dev *dev, uint64_t seed)
{
	to_sim(dev)->rng = seed;
}

void bs_sim_set_plp(struct bs_dev *dev, bool plp)
{
	struct sim_dev *sd = to_sim(dev);

	sd->plp = plp;
	sd->dev.volatile_cache = !plp;
}

void bs_sim_inject(struct bs_dev *dev, bool is_write, enum bs_sim_fault fault, unsigned int every_n)
{
	struct sim_fault_cfg *c = &to_sim(dev)->inject[is_write];

	c->fault = fault;
	c->every_n = fault == BS_SIM_FAULT_NONE ? 0 : every_n;
	c->count = 0;
}

void bs_sim_flip_bit(struct bs_dev *dev, uint64_t off, unsigned int bit)
{
	struct sim_dev *sd = to_sim(dev);

	if (off >= dev->size || bit >= 8) {
		log_error("sim %s: flip_bit out of range (off %llu bit %u)", dev->path,
			  (unsigned long long)off, bit);
		return;
	}
	sd->cur[off] ^= (uint8_t)(1u << bit);
	sd->durable[off] ^= (uint8_t)(1u << bit);
}

uint64_t bs_sim_write_count(const struct bs_dev *dev)
{
	return to_sim(dev)->write_count;
}

static const struct bs_dev_ops sim_ops = {
	.name = "sim",
	.read = sim_read,
	.write = sim_write,
	.flush = sim_flush,
	.close = sim_close,
};

int bs_dev_sim_open(struct reactor *r, const char *path, uint64_t size, struct bs_dev **out)
{
	struct sim_dev *sd;
	int ret = -ENOMEM;

	if (!size || size > SIZE_MAX) {
		return -EINVAL;
	}
	sd = calloc(1, sizeof(*sd));
	if (!sd) {
		return -ENOMEM;
	}
	sd->cur = img_alloc(size);
	if (!sd->cur) {
		goto out_free_sd;
	}
	sd->durable = img_alloc(size);
	if (!sd->durable) {
		goto out_unmap_cur;
	}
	sd->tick = calloc(1, sizeof(*sd->tick));
	if (!sd->tick) {
		goto out_unmap_durable;
	}
	sd->tick->dev = sd;
	sd->dirty_tail = &sd->dirty_head;
	sd->rng = SIM_DEFAULT_SEED;
	sd->dev.ops = &sim_ops;
	sd->dev.r = r;
	sd->dev.size = size;
	sd->dev.volatile_cache = true;
	snprintf(sd->dev.path, sizeof(sd->dev.path), "%s", path);
	*out = &sd->dev;
	return 0;

out_unmap_durable:
	munmap(sd->durable, (size_t)size);
out_unmap_cur:
	munmap(sd->cur, (size_t)size);
out_free_sd:
	free(sd);
	return ret;
}
