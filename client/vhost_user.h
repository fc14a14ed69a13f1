/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_user: the vhost-user wire protocol as the backend sees it
 * (message numbers, feature bits, payload layouts) and the validation of
 * every message a frontend sends before vhost_blk.c acts on it. Pure
 * functions on caller memory (fuzzed by tests/vhost/fuzz_vhost_user.c).
 *
 * Framing: a 12-byte header (request, flags, size) followed by @size
 * payload bytes; file descriptors travel as SCM_RIGHTS with the header.
 */
#ifndef KEEL_CLIENT_VHOST_USER_H
#define KEEL_CLIENT_VHOST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vhost_user_req {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_REQ_MAX = 41, /* exclusive bound of the message table */
};

/* Backend-to-frontend requests (on the BACKEND_REQ channel). */
#define VHOST_USER_BACKEND_CONFIG_CHANGE_MSG 2u

#define VHOST_USER_VERSION	  0x1u
#define VHOST_USER_VERSION_MASK	  0x3u
#define VHOST_USER_REPLY_MASK	  (1u << 2)
#define VHOST_USER_NEED_REPLY	  (1u << 3)
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD	  (1u << 8)

/* Virtio / vhost-user feature bits. */
#define VIRTIO_RING_F_INDIRECT_DESC    28u
#define VIRTIO_RING_F_EVENT_IDX	       29u
#define VHOST_USER_F_PROTOCOL_FEATURES 30u
#define VIRTIO_F_VERSION_1	       32u

/* Protocol feature bits. */
#define VHOST_USER_PROTOCOL_F_MQ	     0u
#define VHOST_USER_PROTOCOL_F_REPLY_ACK	     3u
#define VHOST_USER_PROTOCOL_F_BACKEND_REQ    5u
#define VHOST_USER_PROTOCOL_F_CONFIG	     9u
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD 12u

#define VHOST_USER_MAX_REGIONS 8u
#define VHOST_USER_MAX_FDS     8u
#define VHOST_USER_CONFIG_MAX  256u
#define VHOST_USER_HDR_SIZE    12u

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));
_Static_assert(sizeof(struct vhost_user_hdr) == VHOST_USER_HDR_SIZE, "vhost_user_hdr");

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags; /* bit 0: log (refused: no LOG_ALL) */
	uint64_t desc_uva, used_uva, avail_uva, log_gpa;
};
_Static_assert(sizeof(struct vhost_user_vring_addr) == 40, "vhost_user_vring_addr");

struct vhost_user_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint64_t mmap_offset;
};

struct vhost_user_mem {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_region regions[VHOST_USER_MAX_REGIONS];
};
_Static_assert(sizeof(struct vhost_user_mem) == 8 + 32 * VHOST_USER_MAX_REGIONS, "mem");

struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[VHOST_USER_CONFIG_MAX];
};

struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

union vhost_user_payload {
	uint64_t u64;
	struct vhost_user_vring_state state;
	struct vhost_user_vring_addr addr;
	struct vhost_user_mem mem;
	struct vhost_user_config config;
	struct vhost_user_inflight inflight;
};

#define VHOST_USER_MAX_PAYLOAD sizeof(union vhost_user_payload)

/* In memory (not on the wire: the payload follows the header there at
 * offset 12; we keep it aligned and copy when sending). */
struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union vhost_user_payload p;
};

/*
 * First look at a header: version, a message we know, a payload size
 * within bounds. 0, or -EPROTO (wrong version, reply flag on a request),
 * -EMSGSIZE (payload larger than any message we take), -EOPNOTSUPP
 * (unknown or unsupported request).
 */
int vhost_user_check_hdr(const struct vhost_user_hdr *h);

/*
 * Full check of one message with its payload and @nfds received file
 * descriptors, before any handler runs: payload size for the request,
 * descriptor count, vring indexes < @num_queues, memory-table and config
 * and inflight field sanity. 0 or -EPROTO / -EINVAL / -EOPNOTSUPP.
 */
int vhost_user_check_msg(const struct vhost_user_msg *m, unsigned int nfds,
			 unsigned int num_queues);

/* The memory table: 1..8 regions, non-empty, no address overflow in guest
 * physical, frontend virtual or file offset space, no two regions
 * overlapping in guest physical or frontend virtual space. 0 or -EINVAL. */
int vhost_user_check_mem(const struct vhost_user_mem *mem);

/* Whether the frontend expects a reply to @m (own reply or REPLY_ACK). */
bool vhost_user_has_reply(uint32_t request);

const char *vhost_user_req_name(uint32_t request);

#endif
