/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vf_ring: the driver side of one split virtqueue (virtio 1.1, 2.6) in
 * guest memory. Chains and the free list are tracked in our own arrays,
 * never by reading desc[].next back: the corpus writes deliberately broken
 * descriptors, and a backend must not be able to corrupt our bookkeeping.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tests/vfront/vf.h"

int vf_vq_init(struct vf_vq *vq, struct vf_mem *m, unsigned int index, uint16_t size)
{
	size_t avail_len = sizeof(struct vf_avail) + sizeof(uint16_t) * ((size_t)size + 1);
	size_t used_len = sizeof(struct vf_used) + sizeof(struct vf_used_elem) * size + 2;
	int ret;

	memset(vq, 0, sizeof(*vq));
	vq->kick_fd = -1;
	vq->call_fd = -1;
	if (size == 0 || (size & (size - 1))) {
		return -EINVAL;
	}
	vq->index = index;
	vq->size = size;
	/* Rings always in region 0, page aligned (more than the 16/2/4 bytes
	 * the spec asks for). */
	vq->desc = vf_mem_alloc(m, 0, sizeof(struct vf_desc) * size, 4096);
	vq->avail = vf_mem_alloc(m, 0, avail_len, 4096);
	vq->used = vf_mem_alloc(m, 0, used_len, 4096);
	if (!vq->desc || !vq->avail || !vq->used) {
		return -ENOMEM;
	}
	vq->chain_next = calloc(size, sizeof(*vq->chain_next));
	vq->chain_len = calloc(size, sizeof(*vq->chain_len));
	vq->token = calloc(size, sizeof(*vq->token));
	if (!vq->chain_next || !vq->chain_len || !vq->token) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (uint16_t i = 0; i < size; i++) {
		vq->chain_next[i] = (uint16_t)(i + 1);
	}
	vq->free_head = 0;
	vq->num_free = size;
	vq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	vq->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vq->kick_fd < 0 || vq->call_fd < 0) {
		ret = -errno;
		goto out_free;
	}
	return 0;

out_free:
	vf_vq_destroy(vq);
	return ret;
}

void vf_vq_destroy(struct vf_vq *vq)
{
	if (vq->kick_fd >= 0) {
		close(vq->kick_fd);
	}
	if (vq->call_fd >= 0) {
		close(vq->call_fd);
	}
	free(vq->chain_next);
	free(vq->chain_len);
	free(vq->token);
	/* The rings themselves are guest memory, released with it. */
	memset(vq, 0, sizeof(*vq));
	vq->kick_fd = -1;
	vq->call_fd = -1;
}

int vf_vq_alloc(struct vf_vq *vq, unsigned int n, uint16_t *ids)
{
	if (n == 0 || n > vq->num_free) {
		return -ENOSPC;
	}
	for (unsigned int i = 0; i < n; i++) {
		ids[i] = vq->free_head;
		vq->free_head = vq->chain_next[ids[i]];
	}
	for (unsigned int i = 0; i + 1 < n; i++) {
		vq->chain_next[ids[i]] = ids[i + 1];
	}
	vq->num_free -= (uint16_t)n;
	vq->chain_len[ids[0]] = (uint16_t)n;
	return 0;
}

static void vf_vq_free_chain(struct vf_vq *vq, uint16_t head)
{
	uint16_t id = head;
	uint16_t n = vq->chain_len[head];

	for (uint16_t i = 0; i < n; i++) {
		uint16_t next = vq->chain_next[id];

		vq->chain_next[id] = vq->free_head;
		vq->free_head = id;
		id = next;
	}
	vq->num_free += n;
	vq->chain_len[head] = 0;
	vq->token[head] = NULL;
}

void vf_vq_publish(struct vf_vq *vq, uint16_t head, void *token)
{
	vq->token[head] = token;
	vq->avail->ring[vq->avail_idx & (vq->size - 1)] = head;
	vq->avail_idx++;
	/* Descriptors and the ring entry before the index. */
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
}

/* virtio 1.1, 2.6.7.2: notify when @event lies in (old, new]. */
static bool vf_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

int vf_vq_kick(struct vf_vq *vq)
{
	uint16_t old = vq->kicked_idx;
	uint64_t one = 1;
	bool notify;

	if (old == vq->avail_idx) {
		return 0;
	}
	vq->kicked_idx = vq->avail_idx;
	/* The index store must be visible before we read the device's
	 * suppression state (store-load ordering: a full fence). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->event_idx) {
		uint16_t event =
			__atomic_load_n((uint16_t *)&vq->used->ring[vq->size], __ATOMIC_RELAXED);

		notify = vf_need_event(event, vq->avail_idx, old);
	} else {
		notify = !(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED) &
			   VF_USED_F_NO_NOTIFY);
	}
	if (notify && write(vq->kick_fd, &one, sizeof(one)) != sizeof(one)) {
		return -errno;
	}
	return 0;
}

bool vf_vq_arm(struct vf_vq *vq)
{
	if (!vq->event_idx) {
		return false;
	}
	__atomic_store_n(&vq->avail->ring[vq->size], vq->last_used, __ATOMIC_RELAXED);
	/* used_event before the re-check of used->idx (store-load). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) != vq->last_used;
}

int vf_vq_reap(struct vf_vq *vq, void **token, uint32_t *len)
{
	uint16_t used_idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
	struct vf_used_elem e;

	if (used_idx == vq->last_used) {
		return 0;
	}
	e = vq->used->ring[vq->last_used & (vq->size - 1)];
	vq->last_used++;
	if (e.id >= vq->size || !vq->token[e.id]) {
		return -EPROTO;
	}
	*token = vq->token[e.id];
	*len = e.len;
	vf_vq_free_chain(vq, (uint16_t)e.id);
	return 1;
}

void vf_vq_clear_call(struct vf_vq *vq)
{
	uint64_t v;

	while (read(vq->call_fd, &v, sizeof(v)) == sizeof(v)) {
	}
}
