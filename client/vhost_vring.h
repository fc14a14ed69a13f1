/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_vring: the frontend's memory table as we map it, split virtqueues
 * in that memory (descriptor-chain walking with full validation, used-ring
 * updates, notification suppression with or without EVENT_IDX), and the
 * split-ring inflight region of VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD.
 *
 * Nothing here maps, allocates or does I/O: the caller (vhost_blk.c, the
 * unit tests) fills struct vhost_mem with host pointers and gives ring
 * pointers. Everything read from guest memory is copied once, then checked.
 * Single-threaded (the reactor's); the guest runs concurrently, hence the
 * barriers around the ring indexes.
 */
#ifndef KEEL_CLIENT_VHOST_VRING_H
#define KEEL_CLIENT_VHOST_VRING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define VHOST_MEM_MAX_REGIONS	 8u
#define VHOST_VRING_MAX_IOV	 128u  /* iovecs per request (seg_max + 2 plus region splits) */
#define VHOST_VRING_MAX_INDIRECT 1024u /* entries in one indirect table */

#define VRING_DESC_F_NEXT	   1u
#define VRING_DESC_F_WRITE	   2u
#define VRING_DESC_F_INDIRECT	   4u
#define VRING_USED_F_NO_NOTIFY	   1u
#define VRING_AVAIL_F_NO_INTERRUPT 1u

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vring_desc) == 16, "vring_desc");

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* num entries, then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* num entries, then avail_event */
};

/* Ring sizes in bytes for @num entries (with the event-index fields). */
#define VRING_DESC_SIZE(num)  ((uint64_t)(num)*16u)
#define VRING_AVAIL_SIZE(num) (6u + (uint64_t)(num)*2u)
#define VRING_USED_SIZE(num)  (6u + (uint64_t)(num)*8u)

struct vhost_mem_region {
	uint64_t gpa, size, uva;
	uint8_t *host;	/* host address of gpa */
	void *map_base; /* what the owner unmaps (NULL: not ours to unmap) */
	size_t map_len;
	bool zero_copy; /* in the transports' registry (xport_mem_register) */
};

struct vhost_mem {
	unsigned int refs; /* owner's business (vhost_blk.c refcounts tables) */
	unsigned int nregions;
	struct vhost_mem_region r[VHOST_MEM_MAX_REGIONS];
};

/* Host pointer for [addr, addr+len) inside one region, or NULL. */
void *vhost_mem_gpa_to_host(const struct vhost_mem *m, uint64_t gpa, uint64_t len);
void *vhost_mem_uva_to_host(const struct vhost_mem *m, uint64_t uva, uint64_t len);

/*
 * Append iovecs for guest range [gpa, gpa+len) to @iov (which holds *@n of
 * @max), one per region it crosses. 0, -EFAULT (some byte outside guest
 * memory, or gpa+len overflows), -E2BIG (more than @max entries).
 */
int vhost_mem_gpa_to_iov(const struct vhost_mem *m, uint64_t gpa, uint64_t len, struct iovec *iov,
			 unsigned int *n, unsigned int max);

/* Split-ring inflight state (vhost-user spec, "Inflight I/O tracking"). */
struct vhost_inflight_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};
_Static_assert(sizeof(struct vhost_inflight_desc) == 16, "inflight desc");

struct vhost_inflight_queue {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct vhost_inflight_desc desc[];
};
_Static_assert(sizeof(struct vhost_inflight_queue) == 16, "inflight queue");

#define VHOST_INFLIGHT_VERSION 1u
/* Bytes one queue's region takes in the shared inflight file. */
uint64_t vhost_inflight_queue_size(uint16_t queue_size);

struct vhost_vring {
	uint16_t num; /* power of two, 1..VHOST_BLK_MAX_QUEUE_SIZE */
	bool event_idx;
	bool indirect;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;   /* our copy of used->idx */
	uint16_t signalled_used;
	bool signalled_valid;
	struct vhost_inflight_queue *inflight; /* NULL: not negotiated */
	uint64_t inflight_counter;
};

/*
 * Take the next head from the avail ring. 1 with *@head set, 0 when the
 * ring is empty, -EIO when the guest's avail index ran more than @num ahead
 * or a head index is out of range (the ring is broken: stop it). Marks the
 * head in the inflight region when there is one.
 */
int vhost_vring_pop(struct vhost_vring *vq, uint16_t *head);

/*
 * Walk the descriptor chain at @head: every address inside guest memory,
 * no address+length overflow, no loop, no chain longer than the ring (or
 * the indirect table), indirect tables a non-zero multiple of 16 bytes
 * inside one region, no nested indirect, INDIRECT never with NEXT, no
 * device-readable buffer after a device-writable one. Fills @iov with the
 * readable buffers (*@out_num) then the writable ones (*@in_num).
 * 0, -EINVAL (malformed chain), -EFAULT (outside guest memory), -E2BIG
 * (more than @max iovecs).
 */
int vhost_vring_walk(const struct vhost_vring *vq, const struct vhost_mem *m, uint16_t head,
		     struct iovec *iov, unsigned int max, unsigned int *out_num,
		     unsigned int *in_num);

/* Put @head with @len written bytes on the used ring (and clear it in the
 * inflight region, in the order the spec asks so a crash between the
 * steps is repaired by vhost_vring_inflight_recover()). */
void vhost_vring_push(struct vhost_vring *vq, uint16_t head, uint32_t len);

/* Whether the guest wants an interrupt for what was pushed since the last
 * signal (EVENT_IDX: used_event; otherwise NO_INTERRUPT). Records the
 * signal as sent when true. */
bool vhost_vring_need_signal(struct vhost_vring *vq);

/* Before sleeping: ask the guest to kick for the next avail entry. Returns
 * true when entries arrived meanwhile (process again instead of sleeping). */
bool vhost_vring_enable_notify(struct vhost_vring *vq);
/* While processing: tell the guest kicks are not needed. */
void vhost_vring_disable_notify(struct vhost_vring *vq);

/*
 * At ring start with an inflight region: initialise a fresh region, or
 * repair the last batch and collect the heads still in flight, oldest
 * first, into @heads (room for vq->num). Sets vq->last_avail to the entry
 * after them and the counter past theirs. Returns the count, or -EINVAL
 * when the region does not match the ring (desc_num differs).
 */
int vhost_vring_inflight_recover(struct vhost_vring *vq, uint16_t *heads);

#endif
