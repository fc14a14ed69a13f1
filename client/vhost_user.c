/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_user: message table and validation (see vhost_user.h). One row per
 * request we take; anything else is refused before a handler sees it.
 */
#include <errno.h>
#include <stddef.h>

#include "client/vhost_blk.h"
#include "client/vhost_user.h"

enum vu_fds {
	VU_FDS_NONE = 0,
	VU_FDS_ONE,	/* exactly one */
	VU_FDS_VRING,	/* one unless the NOFD bit is set */
	VU_FDS_REGIONS, /* one per memory region */
};

struct vu_msg_desc {
	const char *name;
	uint32_t min_size, max_size;
	enum vu_fds fds;
	bool reply; /* has its own reply (otherwise REPLY_ACK may ask for one) */
	bool vring; /* payload starts with a vring index */
};

#define VU_U64	 sizeof(uint64_t)
#define VU_STATE sizeof(struct vhost_user_vring_state)
#define VU_INFL	 offsetof(struct vhost_user_inflight, queue_size) + sizeof(uint16_t)

static const struct vu_msg_desc vu_msgs[VHOST_USER_REQ_MAX] = {
	[VHOST_USER_GET_FEATURES] = {"GET_FEATURES", 0, VU_U64, VU_FDS_NONE, true, false},
	[VHOST_USER_SET_FEATURES] = {"SET_FEATURES", VU_U64, VU_U64, VU_FDS_NONE, false, false},
	[VHOST_USER_SET_OWNER] = {"SET_OWNER", 0, VU_U64, VU_FDS_NONE, false, false},
	[VHOST_USER_RESET_OWNER] = {"RESET_OWNER", 0, VU_U64, VU_FDS_NONE, false, false},
	[VHOST_USER_SET_MEM_TABLE] = {"SET_MEM_TABLE", 8 + sizeof(struct vhost_user_region),
				      sizeof(struct vhost_user_mem), VU_FDS_REGIONS, false, false},
	[VHOST_USER_SET_VRING_NUM] = {"SET_VRING_NUM", VU_STATE, VU_STATE, VU_FDS_NONE, false,
				      true},
	[VHOST_USER_SET_VRING_ADDR] = {"SET_VRING_ADDR", sizeof(struct vhost_user_vring_addr),
				       sizeof(struct vhost_user_vring_addr), VU_FDS_NONE, false,
				       true},
	[VHOST_USER_SET_VRING_BASE] = {"SET_VRING_BASE", VU_STATE, VU_STATE, VU_FDS_NONE, false,
				       true},
	[VHOST_USER_GET_VRING_BASE] = {"GET_VRING_BASE", VU_STATE, VU_STATE, VU_FDS_NONE, true,
				       true},
	[VHOST_USER_SET_VRING_KICK] = {"SET_VRING_KICK", VU_U64, VU_U64, VU_FDS_VRING, false, true},
	[VHOST_USER_SET_VRING_CALL] = {"SET_VRING_CALL", VU_U64, VU_U64, VU_FDS_VRING, false, true},
	[VHOST_USER_SET_VRING_ERR] = {"SET_VRING_ERR", VU_U64, VU_U64, VU_FDS_VRING, false, true},
	[VHOST_USER_GET_PROTOCOL_FEATURES] = {"GET_PROTOCOL_FEATURES", 0, VU_U64, VU_FDS_NONE, true,
					      false},
	[VHOST_USER_SET_PROTOCOL_FEATURES] = {"SET_PROTOCOL_FEATURES", VU_U64, VU_U64, VU_FDS_NONE,
					      false, false},
	[VHOST_USER_GET_QUEUE_NUM] = {"GET_QUEUE_NUM", 0, VU_U64, VU_FDS_NONE, true, false},
	[VHOST_USER_SET_VRING_ENABLE] = {"SET_VRING_ENABLE", VU_STATE, VU_STATE, VU_FDS_NONE, false,
					 true},
	[VHOST_USER_SET_BACKEND_REQ_FD] = {"SET_BACKEND_REQ_FD", 0, VU_U64, VU_FDS_ONE, false,
					   false},
	[VHOST_USER_GET_CONFIG] = {"GET_CONFIG", 12, sizeof(struct vhost_user_config), VU_FDS_NONE,
				   true, false},
	[VHOST_USER_SET_CONFIG] = {"SET_CONFIG", 12, sizeof(struct vhost_user_config), VU_FDS_NONE,
				   false, false},
	[VHOST_USER_GET_INFLIGHT_FD] = {"GET_INFLIGHT_FD", VU_INFL,
					sizeof(struct vhost_user_inflight), VU_FDS_NONE, true,
					false},
	[VHOST_USER_SET_INFLIGHT_FD] = {"SET_INFLIGHT_FD", VU_INFL,
					sizeof(struct vhost_user_inflight), VU_FDS_ONE, false,
					false},
};

static const struct vu_msg_desc *vu_desc(uint32_t request)
{
	if (request >= VHOST_USER_REQ_MAX || !vu_msgs[request].name) {
		return NULL;
	}
	return &vu_msgs[request];
}

const char *vhost_user_req_name(uint32_t request)
{
	const struct vu_msg_desc *d = vu_desc(request);

	return d ? d->name : "UNKNOWN";
}

bool vhost_user_has_reply(uint32_t request)
{
	const struct vu_msg_desc *d = vu_desc(request);

	return d && d->reply;
}

int vhost_user_check_hdr(const struct vhost_user_hdr *h)
{
	const struct vu_msg_desc *d;

	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
	    (h->flags & VHOST_USER_REPLY_MASK)) {
		return -EPROTO;
	}
	if (h->size > VHOST_USER_MAX_PAYLOAD) {
		return -EMSGSIZE;
	}
	d = vu_desc(h->request);
	if (!d) {
		return -EOPNOTSUPP;
	}
	if (h->size < d->min_size || h->size > d->max_size) {
		return -EPROTO;
	}
	return 0;
}

static bool pow2_in(uint64_t v, uint64_t max)
{
	return v && v <= max && !(v & (v - 1));
}

static bool span_ok(uint64_t start, uint64_t len)
{
	return len && start <= UINT64_MAX - len;
}

static bool spans_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int vhost_user_check_mem(const struct vhost_user_mem *mem)
{
	if (!mem->nregions || mem->nregions > VHOST_USER_MAX_REGIONS) {
		return -EINVAL;
	}
	for (uint32_t i = 0; i < mem->nregions; i++) {
		const struct vhost_user_region *r = &mem->regions[i];

		if (!span_ok(r->gpa, r->size) || !span_ok(r->uva, r->size) ||
		    !span_ok(r->mmap_offset, r->size) || r->size > SIZE_MAX) {
			return -EINVAL;
		}
		for (uint32_t j = 0; j < i; j++) {
			const struct vhost_user_region *o = &mem->regions[j];

			if (spans_overlap(r->gpa, r->size, o->gpa, o->size) ||
			    spans_overlap(r->uva, r->size, o->uva, o->size)) {
				return -EINVAL;
			}
		}
	}
	return 0;
}

static int check_vring_fd(uint64_t v, unsigned int nfds)
{
	if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD)) {
		return -EINVAL;
	}
	return nfds == ((v & VHOST_USER_VRING_NOFD) ? 0u : 1u) ? 0 : -EPROTO;
}

static int check_config(const struct vhost_user_msg *m)
{
	const struct vhost_user_config *c = &m->p.config;

	if (c->size > VHOST_USER_CONFIG_MAX || c->offset > VHOST_USER_CONFIG_MAX - c->size) {
		return -EINVAL;
	}
	return m->hdr.size == 12 + c->size ? 0 : -EPROTO;
}

int vhost_user_check_msg(const struct vhost_user_msg *m, unsigned int nfds, unsigned int num_queues)
{
	const struct vu_msg_desc *d;
	int rc = vhost_user_check_hdr(&m->hdr);

	if (rc) {
		return rc;
	}
	d = vu_desc(m->hdr.request);
	if (d->vring) {
		/* Kick/call/err carry the index in the low byte of a u64. */
		uint64_t idx = d->fds == VU_FDS_VRING ? m->p.u64 & VHOST_USER_VRING_IDX_MASK
						      : m->p.state.index;

		if (idx >= num_queues) {
			return -EINVAL;
		}
	}
	switch (d->fds) {
	case VU_FDS_NONE:
		if (nfds) {
			return -EPROTO;
		}
		break;
	case VU_FDS_ONE:
		if (nfds != 1) {
			return -EPROTO;
		}
		break;
	case VU_FDS_VRING:
		rc = check_vring_fd(m->p.u64, nfds);
		if (rc) {
			return rc;
		}
		break;
	case VU_FDS_REGIONS:
		if (m->hdr.size != 8 + m->p.mem.nregions * sizeof(struct vhost_user_region) ||
		    nfds != m->p.mem.nregions) {
			return -EPROTO;
		}
		return vhost_user_check_mem(&m->p.mem);
	}
	switch (m->hdr.request) {
	case VHOST_USER_SET_VRING_NUM:
		return pow2_in(m->p.state.num, VHOST_BLK_MAX_QUEUE_SIZE) ? 0 : -EINVAL;
	case VHOST_USER_SET_VRING_BASE:
		return m->p.state.num <= UINT16_MAX ? 0 : -EINVAL;
	case VHOST_USER_SET_VRING_ENABLE:
		return m->p.state.num <= 1 ? 0 : -EINVAL;
	case VHOST_USER_SET_VRING_ADDR:
		return m->p.addr.flags ? -EINVAL : 0; /* no dirty logging offered */
	case VHOST_USER_GET_CONFIG:
	case VHOST_USER_SET_CONFIG:
		return check_config(m);
	case VHOST_USER_GET_INFLIGHT_FD:
	case VHOST_USER_SET_INFLIGHT_FD: {
		const struct vhost_user_inflight *in = &m->p.inflight;

		if (!in->num_queues || in->num_queues > num_queues ||
		    !pow2_in(in->queue_size, VHOST_BLK_MAX_QUEUE_SIZE)) {
			return -EINVAL;
		}
		if (m->hdr.request == VHOST_USER_SET_INFLIGHT_FD &&
		    (!span_ok(in->mmap_offset, in->mmap_size) || in->mmap_size > SIZE_MAX)) {
			return -EINVAL;
		}
		return 0;
	}
	default:
		return 0;
	}
}
