/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_vring: split virtqueues in frontend memory (see vhost_vring.h).
 *
 * Ordering with the guest: the avail index is read with acquire before the
 * ring entries it covers; used entries are written before the used index
 * is stored with release; a full fence separates our index/flag stores
 * from the reads that decide whether to sleep or to interrupt (the guest
 * does the mirror image), otherwise a kick or an interrupt can be lost.
 */
#include <errno.h>
#include <string.h>

#include "client/vhost_vring.h"

static const struct vhost_mem_region *gpa_region(const struct vhost_mem *m, uint64_t gpa)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct vhost_mem_region *r = &m->r[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			return r;
		}
	}
	return NULL;
}

void *vhost_mem_gpa_to_host(const struct vhost_mem *m, uint64_t gpa, uint64_t len)
{
	const struct vhost_mem_region *r = gpa_region(m, gpa);

	if (!r || len > r->size - (gpa - r->gpa)) {
		return NULL;
	}
	return r->host + (gpa - r->gpa);
}

void *vhost_mem_uva_to_host(const struct vhost_mem *m, uint64_t uva, uint64_t len)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct vhost_mem_region *r = &m->r[i];

		if (uva >= r->uva && uva - r->uva < r->size) {
			if (len > r->size - (uva - r->uva)) {
				return NULL;
			}
			return r->host + (uva - r->uva);
		}
	}
	return NULL;
}

int vhost_mem_gpa_to_iov(const struct vhost_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov,
			 unsigned int *n, unsigned int max)
{
	if (gpa > UINT64_MAX - len) {
		return -EFAULT;
	}
	while (len) {
		const struct vhost_mem_region *r = gpa_region(m, gpa);
		uint64_t off, k;

		if (!r) {
			return -EFAULT;
		}
		if (*n >= max) {
			return -E2BIG;
		}
		off = gpa - r->gpa;
		k = r->size - off < len ? r->size - off : len;
		iov[*n].iov_base = r->host + off;
		iov[*n].iov_len = (size_t)k;
		(*n)++;
		gpa += k;
		len -= k;
	}
	return 0;
}

uint64_t vhost_inflight_queue_size(uint16_t queue_size)
{
	uint64_t b = sizeof(struct vhost_inflight_queue) +
		     (uint64_t)queue_size * sizeof(struct vhost_inflight_desc);

	return (b + 63) & ~(uint64_t)63;
}

int vhost_vring_pop(struct vhost_vring *vq, uint16_t *head)
{
	uint16_t avail_idx = __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
	uint16_t h;

	if (pending > vq->num) {
		return -EIO;
	}
	if (!pending) {
		return 0;
	}
	h = __atomic_load_n(&vq->avail->ring[vq->last_avail & (vq->num - 1)], __ATOMIC_RELAXED);
	if (h >= vq->num) {
		return -EIO;
	}
	vq->last_avail++;
	if (vq->inflight) {
		vq->inflight->desc[h].counter = vq->inflight_counter++;
		__atomic_store_n(&vq->inflight->desc[h].inflight, 1, __ATOMIC_RELEASE);
	}
	*head = h;
	return 1;
}

int vhost_vring_walk(const struct vhost_vring *vq, const struct vhost_mem *m, uint16_t head,
		     struct iovec *iov, unsigned int max, unsigned int *out_num,
		     unsigned int *in_num)
{
	const struct vring_desc *table = vq->desc;
	uint32_t tsize = vq->num, count = 0;
	unsigned int n = 0, nin = 0;
	bool indirect = false, seen_write = false;
	uint16_t i = head;

	for (;;) {
		struct vring_desc d;
		unsigned int before = n;
		int rc;

		if (i >= tsize || ++count > tsize) {
			return -EINVAL; /* out of the table, or a loop / overlong chain */
		}
		memcpy(&d, (const void *)&table[i], sizeof(d));
		__atomic_signal_fence(__ATOMIC_SEQ_CST); /* d is a snapshot from here on */
		if (d.flags & ~(VRING_DESC_F_NEXT | VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT)) {
			return -EINVAL;
		}
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect || indirect || (d.flags & VRING_DESC_F_NEXT)) {
				return -EINVAL;
			}
			if (!d.len || d.len % sizeof(struct vring_desc) ||
			    d.len / sizeof(struct vring_desc) > VHOST_VRING_MAX_INDIRECT) {
				return -EINVAL;
			}
			table = vhost_mem_gpa_to_host(m, d.addr, d.len);
			if (!table) {
				return -EFAULT;
			}
			if ((uintptr_t)table % _Alignof(struct vring_desc)) {
				return -EINVAL;
			}
			tsize = d.len / sizeof(struct vring_desc);
			count = 0;
			i = 0;
			indirect = true;
			continue;
		}
		if (d.flags & VRING_DESC_F_WRITE) {
			seen_write = true;
		} else if (seen_write) {
			return -EINVAL;
		}
		rc = vhost_mem_gpa_to_iov(m, d.addr, d.len, iov, &n, max);
		if (rc) {
			return rc;
		}
		if (d.flags & VRING_DESC_F_WRITE) {
			nin += n - before;
		}
		if (!(d.flags & VRING_DESC_F_NEXT)) {
			break;
		}
		i = d.next;
	}
	*out_num = n - nin;
	*in_num = nin;
	return 0;
}

static uint16_t *used_event(struct vhost_vring *vq)
{
	return &vq->avail->ring[vq->num];
}

static uint16_t *avail_event(struct vhost_vring *vq)
{
	return (uint16_t *)&vq->used->ring[vq->num];
}

void vhost_vring_push(struct vhost_vring *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx & (vq->num - 1)];
	struct vhost_inflight_queue *q = vq->inflight;
	uint16_t next = (uint16_t)(vq->used_idx + 1);

	__atomic_store_n(&e->id, head, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
	if (q) {
		q->desc[head].next = q->last_batch_head;
		q->last_batch_head = head;
	}
	__atomic_store_n(&vq->used->idx, next, __ATOMIC_RELEASE);
	vq->used_idx = next;
	if (q) {
		__atomic_store_n(&q->desc[head].inflight, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&q->used_idx, next, __ATOMIC_RELEASE);
	}
}

bool vhost_vring_need_signal(struct vhost_vring *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_idx, ev;
	bool valid = vq->signalled_valid;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx) {
		return !(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED) &
			 VRING_AVAIL_F_NO_INTERRUPT);
	}
	vq->signalled_used = now;
	vq->signalled_valid = true;
	if (!valid) {
		return true;
	}
	ev = __atomic_load_n(used_event(vq), __ATOMIC_RELAXED);
	/* Interrupt when used_event lies in (old, now]: the spec's vring_need_event. */
	return (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
}

bool vhost_vring_enable_notify(struct vhost_vring *vq)
{
	if (vq->event_idx) {
		__atomic_store_n(avail_event(vq), vq->last_avail, __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&vq->used->flags, 0, __ATOMIC_RELAXED);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE) != vq->last_avail;
}

void vhost_vring_disable_notify(struct vhost_vring *vq)
{
	if (!vq->event_idx) {
		__atomic_store_n(&vq->used->flags, VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
	}
}

int vhost_vring_inflight_recover(struct vhost_vring *vq, uint16_t *heads)
{
	struct vhost_inflight_queue *q = vq->inflight;
	uint16_t used = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
	unsigned int n = 0;
	uint64_t max_counter = 0;

	if (q->desc_num != vq->num) {
		return -EINVAL;
	}
	vq->used_idx = used;
	if (!q->version) {
		memset(q->desc, 0, (size_t)vq->num * sizeof(q->desc[0]));
		q->last_batch_head = 0;
		q->used_idx = used;
		q->version = VHOST_INFLIGHT_VERSION;
		vq->inflight_counter = 1;
		return 0;
	}
	if (q->used_idx != used) {
		/* We died between updating the used ring and the region: the
		 * last batch (pushed but maybe still marked) is done. */
		uint16_t batch = (uint16_t)(used - q->used_idx), h = q->last_batch_head;

		for (uint16_t k = 0; k < batch && k < vq->num && h < vq->num; k++) {
			q->desc[h].inflight = 0;
			h = q->desc[h].next;
		}
		q->used_idx = used;
	}
	for (uint16_t i = 0; i < vq->num; i++) {
		struct vhost_inflight_desc *d = &q->desc[i];
		unsigned int j;

		if (d->inflight != 1) {
			d->inflight = 0;
			continue;
		}
		/* Insertion by counter: submission order (n <= num, once per start). */
		for (j = n; j > 0 && q->desc[heads[j - 1]].counter > d->counter; j--) {
			heads[j] = heads[j - 1];
		}
		heads[j] = i;
		n++;
		if (d->counter > max_counter) {
			max_counter = d->counter;
		}
	}
	vq->inflight_counter = max_counter + 1;
	vq->last_avail = (uint16_t)(used + n);
	return (int)n;
}
