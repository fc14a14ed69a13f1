/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vf_blk: virtio-blk requests (virtio 1.1, 5.2.6) on slots preallocated in
 * guest memory, as a guest driver would issue them: a device-readable
 * 16-byte header, the data, a device-writable status byte. Completions are
 * reaped from the used rings after poll() on the call eventfds.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/vfront/vf.h"

/* Per slot, in guest memory: header + status + indirect table share one
 * 4 KiB block; the data buffer is separate and 4 KiB aligned. */
#define VF_SLOT_META	 4096u
#define VF_SLOT_INDIRECT 128u /* descriptors in a slot's indirect table */

int vf_blk_init(struct vf_blk *b, struct vf_dev *d, unsigned int depth, uint32_t data_cap,
		bool indirect)
{
	unsigned int nq = d->num_queues;

	memset(b, 0, sizeof(*b));
	b->dev = d;
	b->depth = depth;
	b->data_cap = data_cap;
	b->indirect = indirect;
	if (nq == 0 || depth == 0) {
		return -EINVAL;
	}
	if (indirect && !vf_has_feature(d, VF_F_RING_INDIRECT_DESC)) {
		return -EOPNOTSUPP;
	}
	b->ios = calloc((size_t)nq * depth, sizeof(*b->ios));
	b->free_list = calloc(nq, sizeof(*b->free_list));
	if (!b->ios || !b->free_list) {
		vf_blk_destroy(b);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < nq * depth; i++) {
		struct vf_io *io = &b->ios[i];
		uint8_t *meta = vf_mem_alloc(&d->mem, i, VF_SLOT_META, 4096);

		io->data = vf_mem_alloc(&d->mem, i + 1, data_cap ? data_cap : 1, 4096);
		if (!meta || !io->data) {
			vf_blk_destroy(b);
			return -ENOMEM;
		}
		io->hdr = (struct vf_blk_req_hdr *)meta;
		io->status = meta + 64;
		io->indirect = (struct vf_desc *)(meta + 2048);
		io->data_cap = data_cap;
		io->queue = i / depth;
		io->next_free = b->free_list[io->queue];
		b->free_list[io->queue] = io;
	}
	return 0;
}

void vf_blk_destroy(struct vf_blk *b)
{
	/* Slot buffers are guest memory, released with it. */
	free(b->ios);
	free(b->free_list);
	b->ios = NULL;
	b->free_list = NULL;
}

struct vf_io *vf_blk_get(struct vf_blk *b, unsigned int queue)
{
	struct vf_io *io = b->free_list[queue];

	if (io) {
		b->free_list[queue] = io->next_free;
		io->next_free = NULL;
	}
	return io;
}

void vf_blk_put(struct vf_blk *b, struct vf_io *io)
{
	io->busy = false;
	io->next_free = b->free_list[io->queue];
	b->free_list[io->queue] = io;
}

static bool vf_blk_data_in(uint32_t type)
{
	return type == VF_BLK_T_IN || type == VF_BLK_T_GET_ID;
}

/* Fill @out with the request's descriptors (at most @max); returns how many. */
static unsigned int vf_blk_build(struct vf_blk *b, struct vf_io *io, struct vf_desc *out,
				 unsigned int max)
{
	const struct vf_mem *m = &b->dev->mem;
	uint16_t dflags = vf_blk_data_in(io->type) ? VF_DESC_F_WRITE : 0;
	uint32_t seg = b->seg_bytes ? b->seg_bytes : io->len;
	unsigned int n = 0;

	out[n++] = (struct vf_desc){.addr = vf_mem_gpa(m, io->hdr), .len = sizeof(*io->hdr)};
	for (uint32_t off = 0; off < io->len && n + 1 < max; off += seg) {
		uint32_t len = io->len - off < seg ? io->len - off : seg;

		out[n++] = (struct vf_desc){
			.addr = vf_mem_gpa(m, io->data + off), .len = len, .flags = dflags};
	}
	out[n++] = (struct vf_desc){
		.addr = vf_mem_gpa(m, io->status), .len = 1, .flags = VF_DESC_F_WRITE};
	return n;
}

int vf_blk_submit(struct vf_blk *b, struct vf_io *io, vf_io_done done, void *arg)
{
	struct vf_vq *vq = &b->dev->vq[io->queue];
	struct vf_desc chain[VF_SLOT_INDIRECT];
	uint16_t ids[VF_SLOT_INDIRECT];
	unsigned int n;
	int ret;

	if (io->len > io->data_cap) {
		return -EINVAL;
	}
	if (b->seg_bytes && io->len / b->seg_bytes + 3 > VF_SLOT_INDIRECT) {
		return -EINVAL;
	}
	io->hdr->type = io->type;
	io->hdr->ioprio = 0;
	io->hdr->sector = io->sector;
	*io->status = VF_BLK_S_NONE;
	io->done = done;
	io->arg = arg;
	io->used_len = 0;
	n = vf_blk_build(b, io, chain, VF_SLOT_INDIRECT);
	if (b->indirect) {
		for (unsigned int i = 0; i < n; i++) {
			io->indirect[i] = chain[i];
			if (i + 1 < n) {
				io->indirect[i].flags |= VF_DESC_F_NEXT;
				io->indirect[i].next = (uint16_t)(i + 1);
			}
		}
		ret = vf_vq_alloc(vq, 1, ids);
		if (ret) {
			return ret;
		}
		vq->desc[ids[0]] = (struct vf_desc){.addr = vf_mem_gpa(&b->dev->mem, io->indirect),
						    .len = n * sizeof(struct vf_desc),
						    .flags = VF_DESC_F_INDIRECT};
	} else {
		ret = vf_vq_alloc(vq, n, ids);
		if (ret) {
			return ret;
		}
		for (unsigned int i = 0; i < n; i++) {
			vq->desc[ids[i]] = chain[i];
			if (i + 1 < n) {
				vq->desc[ids[i]].flags |= VF_DESC_F_NEXT;
				vq->desc[ids[i]].next = ids[i + 1];
			}
		}
	}
	io->busy = true;
	io->t_submit_ns = vf_now_ns();
	b->inflight++;
	vf_vq_publish(vq, ids[0], io);
	return vf_vq_kick(vq);
}

/* Reap every used entry of @vq; returns how many completed. */
static int vf_blk_reap(struct vf_blk *b, struct vf_vq *vq)
{
	int done = 0;

	for (;;) {
		void *token;
		uint32_t len;
		struct vf_io *io;
		int ret = vf_vq_reap(vq, &token, &len);

		if (ret == 0) {
			break;
		}
		if (ret < 0) {
			b->protocol_errors++;
			fprintf(stderr, "keel-vfront: queue %u: bad used-ring entry\n", vq->index);
			continue;
		}
		io = token;
		io->busy = false;
		io->used_len = len;
		io->result = __atomic_load_n(io->status, __ATOMIC_RELAXED);
		b->inflight--;
		done++;
		if (io->done) {
			io->done(io, io->arg);
		}
		if (!io->busy) {
			vf_blk_put(b, io);
		}
	}
	return done;
}

/* Ask every queue for a notification at its next completion. */
static bool vf_blk_arm(struct vf_blk *b)
{
	bool pending = false;

	for (unsigned int q = 0; q < b->dev->num_queues; q++) {
		pending |= vf_vq_arm(&b->dev->vq[q]);
	}
	return pending;
}

int vf_blk_poll(struct vf_blk *b, int timeout_ms)
{
	struct vf_dev *d = b->dev;
	struct pollfd pfd[VF_MAX_QUEUES + 1];
	uint64_t deadline = vf_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
	int total = 0;

	for (;;) {
		uint64_t now;
		int ret;

		for (unsigned int q = 0; q < d->num_queues; q++) {
			if (!b->spin) {
				vf_vq_clear_call(&d->vq[q]);
			}
			total += vf_blk_reap(b, &d->vq[q]);
		}
		if (total || !b->inflight) {
			return total;
		}
		now = vf_now_ns();
		if (timeout_ms <= 0 || now >= deadline) {
			return timeout_ms <= 0 ? 0 : -ETIMEDOUT;
		}
		if (vf_blk_arm(b)) {
			continue; /* completions arrived while arming */
		}
		for (unsigned int q = 0; q < d->num_queues; q++) {
			pfd[q] = (struct pollfd){.fd = d->vq[q].call_fd, .events = POLLIN};
		}
		pfd[d->num_queues] = (struct pollfd){.fd = d->sock, .events = POLLRDHUP};
		/* Spinning still looks at the socket (timeout 0) to see a close. */
		ret = poll(pfd, d->num_queues + 1,
			   b->spin ? 0 : (int)((deadline - now + 999999) / 1000000));
		if (ret < 0 && errno != EINTR) {
			return -errno;
		}
		if (ret > 0 && pfd[d->num_queues].revents) {
			/* Completions written before the close still count. */
			for (unsigned int q = 0; q < d->num_queues; q++) {
				total += vf_blk_reap(b, &d->vq[q]);
			}
			return total ? total : -ECONNRESET;
		}
	}
}

int vf_blk_sync(struct vf_blk *b, unsigned int queue, uint32_t type, uint64_t sector, void *buf,
		uint32_t len)
{
	struct vf_io *io = vf_blk_get(b, queue);
	int ret;

	if (!io) {
		return -EBUSY;
	}
	if (len > io->data_cap) {
		vf_blk_put(b, io);
		return -EINVAL;
	}
	io->type = type;
	io->sector = sector;
	io->len = len;
	if (len) {
		memcpy(io->data, buf, len); /* for reads: the caller's poison */
	}
	ret = vf_blk_submit(b, io, NULL, NULL);
	if (ret) {
		vf_blk_put(b, io);
		return ret;
	}
	/* Other requests may be in flight: wait for this one. */
	while (io->busy) {
		ret = vf_blk_poll(b, b->dev->timeout_ms);
		if (ret < 0) {
			return ret;
		}
	}
	if (vf_blk_data_in(type) && len) {
		memcpy(buf, io->data, len);
	}
	return io->result;
}
