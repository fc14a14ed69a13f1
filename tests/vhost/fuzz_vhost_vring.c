/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the descriptor-chain walker on arbitrary guest memory.
 * The input is guest memory (two regions, the second right after the
 * first, at other host addresses); the descriptor table sits at its start.
 * Every head is walked; whatever comes back must lie inside the regions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/vhost_vring.h"

#define FZ_REG 0x2000u
#define FZ_GPA 0x10000u
#define FZ_NUM 16u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check(int ok)
{
	if (!ok) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t a[FZ_REG] __attribute__((aligned(16))), b[FZ_REG];
	struct vhost_mem m = {.nregions = 2};
	struct vhost_vring vr = {.num = FZ_NUM, .indirect = true};
	struct iovec iov[VHOST_VRING_MAX_IOV];

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memcpy(a, data, size < FZ_REG ? size : FZ_REG);
	if (size > FZ_REG) {
		memcpy(b, data + FZ_REG, size - FZ_REG < FZ_REG ? size - FZ_REG : FZ_REG);
	}
	m.r[0] = (struct vhost_mem_region){.gpa = FZ_GPA, .size = FZ_REG, .uva = 1, .host = a};
	m.r[1] = (struct vhost_mem_region){
		.gpa = FZ_GPA + FZ_REG, .size = FZ_REG, .uva = 1 << 20, .host = b};
	vr.desc = (struct vring_desc *)a;
	for (uint16_t h = 0; h <= FZ_NUM; h++) {
		unsigned int out, in;

		if (vhost_vring_walk(&vr, &m, h, iov, VHOST_VRING_MAX_IOV, &out, &in)) {
			continue;
		}
		fz_check(h < FZ_NUM && out + in <= VHOST_VRING_MAX_IOV);
		for (unsigned int i = 0; i < out + in; i++) {
			const uint8_t *p = iov[i].iov_base;

			fz_check((p >= a && p + iov[i].iov_len <= a + FZ_REG) ||
				 (p >= b && p + iov[i].iov_len <= b + FZ_REG));
		}
	}
	return 0;
}
