/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the vhost-user message checks on a stream of
 * messages. Input: repeated [1 byte descriptor count][12-byte header]
 * [payload, as long as the header says (clipped to the input)]. Messages
 * that pass are held to what the handlers rely on: sizes inside the
 * payload union, vring indexes in range, memory tables whose regions do
 * not overflow or overlap (then probed through the translation functions
 * with fake host addresses, never dereferenced).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/vhost_user.h"
#include "client/vhost_vring.h"

#define FZ_NQ 4u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(int ok)
{
	if (!ok) {
		abort();
	}
}

static void fz_mem(const struct vhost_user_mem *um, const uint8_t *probe, size_t plen)
{
	struct vhost_mem m = {.nregions = um->nregions};
	struct iovec iov[8];

	fz_check(um->nregions >= 1 && um->nregions <= VHOST_USER_MAX_REGIONS);
	for (uint32_t i = 0; i < um->nregions; i++) {
		const struct vhost_user_region *r = &um->regions[i];

		fz_check(r->size && r->gpa + r->size > r->gpa && r->uva + r->size > r->uva);
		m.r[i] = (struct vhost_mem_region){
			.gpa = r->gpa,
			.size = r->size,
			.uva = r->uva,
			.host = (uint8_t *)(uintptr_t)(0x1000u * (i + 1))};
	}
	for (size_t p = 0; p + 16 <= plen; p += 16) {
		uint64_t a, l;
		unsigned int n = 0;

		memcpy(&a, probe + p, 8);
		memcpy(&l, probe + p + 8, 8);
		(void)vhost_mem_gpa_to_host(&m, a, l);
		(void)vhost_mem_uva_to_host(&m, a, l);
		if (!vhost_mem_gpa_to_iov(&m, a, l, iov, &n, 8)) {
			uint64_t t = 0;

			for (unsigned int i = 0; i < n; i++) {
				t += iov[i].iov_len;
			}
			fz_check(t == l);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;

	while (pos + 1 + VHOST_USER_HDR_SIZE <= size) {
		struct vhost_user_msg m;
		unsigned int nfds = data[pos] % 10;
		size_t take;

		memset(&m, 0, sizeof(m));
		memcpy(&m.hdr, data + pos + 1, VHOST_USER_HDR_SIZE);
		pos += 1 + VHOST_USER_HDR_SIZE;
		if (vhost_user_check_hdr(&m.hdr)) {
			continue;
		}
		fz_check(m.hdr.size <= sizeof(m.p));
		take = size - pos < m.hdr.size ? size - pos : m.hdr.size;
		memcpy(&m.p, data + pos, take);
		pos += take;
		if (vhost_user_check_msg(&m, nfds, FZ_NQ)) {
			continue;
		}
		switch (m.hdr.request) {
		case VHOST_USER_SET_MEM_TABLE:
			fz_check(nfds == m.p.mem.nregions);
			fz_mem(&m.p.mem, data + pos, size - pos);
			break;
		case VHOST_USER_SET_VRING_NUM:
			fz_check(m.p.state.index < FZ_NQ && m.p.state.num &&
				 m.p.state.num <= 1024 && !(m.p.state.num & (m.p.state.num - 1)));
			break;
		case VHOST_USER_SET_VRING_KICK:
		case VHOST_USER_SET_VRING_CALL:
		case VHOST_USER_SET_VRING_ERR:
			fz_check((m.p.u64 & VHOST_USER_VRING_IDX_MASK) < FZ_NQ);
			break;
		case VHOST_USER_GET_CONFIG:
		case VHOST_USER_SET_CONFIG:
			fz_check(m.p.config.offset + (uint64_t)m.p.config.size <=
				 VHOST_USER_CONFIG_MAX);
			break;
		default:
			break;
		}
	}
	return 0;
}
