/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_user: header and message validation, one case per rule.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/vhost_blk.h"
#include "client/vhost_user.h"

#define NQ 4u

static struct vhost_user_msg M;

static void msg(uint32_t req, uint32_t size)
{
	memset(&M, 0, sizeof(M));
	M.hdr.request = req;
	M.hdr.flags = VHOST_USER_VERSION;
	M.hdr.size = size;
}

static int check(unsigned int nfds)
{
	return vhost_user_check_msg(&M, nfds, NQ);
}

static void test_header(void **state)
{
	msg(VHOST_USER_GET_FEATURES, 0);
	assert_int_equal(vhost_user_check_hdr(&M.hdr), 0);
	M.hdr.flags = 0; /* version 0 */
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EPROTO);
	M.hdr.flags = 2;
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EPROTO);
	M.hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK; /* a reply is not a request */
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EPROTO);
	M.hdr.flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY;
	assert_int_equal(vhost_user_check_hdr(&M.hdr), 0);
	M.hdr.size = VHOST_USER_MAX_PAYLOAD + 1;
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EMSGSIZE);
	M.hdr.size = UINT32_MAX;
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EMSGSIZE);
	M.hdr.size = 16; /* bigger than GET_FEATURES takes */
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EPROTO);
	/* unknown and unsupported requests */
	static const uint32_t bad[] = {0,  6,  7,  19, 20, 22, 23,   26,
				       30, 33, 36, 37, 40, 41, 1000, UINT32_MAX};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg(bad[i], 0);
		assert_int_equal(vhost_user_check_hdr(&M.hdr), -EOPNOTSUPP);
	}
	msg(VHOST_USER_SET_FEATURES, 4); /* too short */
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EPROTO);
	assert_string_equal(vhost_user_req_name(VHOST_USER_SET_MEM_TABLE), "SET_MEM_TABLE");
	assert_string_equal(vhost_user_req_name(99), "UNKNOWN");
	assert_true(vhost_user_has_reply(VHOST_USER_GET_VRING_BASE));
	assert_false(vhost_user_has_reply(VHOST_USER_SET_VRING_BASE));
}

static void test_fds(void **state)
{
	msg(VHOST_USER_GET_FEATURES, 0);
	assert_int_equal(check(0), 0);
	assert_int_equal(check(1), -EPROTO); /* stray descriptor */
	msg(VHOST_USER_SET_VRING_KICK, 8);
	M.p.u64 = 1;
	assert_int_equal(check(1), 0);
	assert_int_equal(check(0), -EPROTO);
	M.p.u64 = 1 | VHOST_USER_VRING_NOFD;
	assert_int_equal(check(0), 0);
	assert_int_equal(check(1), -EPROTO);
	M.p.u64 = NQ; /* index out of range */
	assert_int_equal(check(1), -EINVAL);
	M.p.u64 = 1ull << 9; /* unknown bits */
	assert_int_equal(check(1), -EINVAL);
	msg(VHOST_USER_SET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	M.p.inflight =
		(struct vhost_user_inflight){.mmap_size = 4096, .num_queues = 1, .queue_size = 128};
	assert_int_equal(check(1), 0);
	assert_int_equal(check(0), -EPROTO);
	assert_int_equal(check(2), -EPROTO);
	msg(VHOST_USER_SET_BACKEND_REQ_FD, 0);
	assert_int_equal(check(1), 0);
	assert_int_equal(check(0), -EPROTO);
}

static void mem_msg(uint32_t n)
{
	msg(VHOST_USER_SET_MEM_TABLE, 8 + n * sizeof(struct vhost_user_region));
	M.p.mem.nregions = n;
	for (uint32_t i = 0; i < n; i++) {
		M.p.mem.regions[i] =
			(struct vhost_user_region){.gpa = i * 0x100000ull,
						   .size = 0x100000,
						   .uva = 0x7f0000000000 + i * 0x100000ull};
	}
}

static void test_mem_table(void **state)
{
	mem_msg(1);
	assert_int_equal(check(1), 0);
	mem_msg(VHOST_USER_MAX_REGIONS);
	assert_int_equal(check(VHOST_USER_MAX_REGIONS), 0);
	assert_int_equal(check(VHOST_USER_MAX_REGIONS - 1), -EPROTO);
	mem_msg(2);
	M.p.mem.nregions = 3; /* count and size disagree */
	assert_int_equal(check(3), -EPROTO);
	mem_msg(2);
	M.p.mem.nregions = 0;
	M.hdr.size = 8;
	assert_int_equal(vhost_user_check_hdr(&M.hdr), -EPROTO); /* no region at all */
	mem_msg(2);
	M.p.mem.regions[1].size = 0;
	assert_int_equal(check(2), -EINVAL);
	mem_msg(2);
	M.p.mem.regions[1].gpa = 0x80000; /* overlaps region 0 in guest space */
	assert_int_equal(check(2), -EINVAL);
	mem_msg(2);
	M.p.mem.regions[1].uva = M.p.mem.regions[0].uva + 0xfffff; /* in frontend space */
	assert_int_equal(check(2), -EINVAL);
	mem_msg(2);
	M.p.mem.regions[1].gpa = UINT64_MAX - 0x1000;
	assert_int_equal(check(2), -EINVAL);
	mem_msg(2);
	M.p.mem.regions[1].uva = UINT64_MAX - 0x1000;
	assert_int_equal(check(2), -EINVAL);
	mem_msg(2);
	M.p.mem.regions[1].mmap_offset = UINT64_MAX - 0x1000;
	assert_int_equal(check(2), -EINVAL);
	mem_msg(1);
	M.p.mem.regions[0].gpa = UINT64_MAX - 0xfffff; /* ends exactly at 2^64: overflow */
	assert_int_equal(check(1), -EINVAL);
	mem_msg(1);
	M.p.mem.regions[0].gpa = UINT64_MAX - 0x100000; /* ends at 2^64 - 1 */
	assert_int_equal(check(1), 0);
}

static void test_vring_msgs(void **state)
{
	msg(VHOST_USER_SET_VRING_NUM, 8);
	for (uint32_t n = 0; n <= 2048; n++) {
		bool ok = n && n <= VHOST_BLK_MAX_QUEUE_SIZE && !(n & (n - 1));

		M.p.state = (struct vhost_user_vring_state){.index = 1, .num = n};
		assert_int_equal(check(0), ok ? 0 : -EINVAL);
	}
	M.p.state = (struct vhost_user_vring_state){.index = NQ, .num = 128};
	assert_int_equal(check(0), -EINVAL);
	msg(VHOST_USER_SET_VRING_BASE, 8);
	M.p.state.num = 65535;
	assert_int_equal(check(0), 0);
	M.p.state.num = 65536;
	assert_int_equal(check(0), -EINVAL);
	msg(VHOST_USER_SET_VRING_ENABLE, 8);
	M.p.state.num = 2;
	assert_int_equal(check(0), -EINVAL);
	msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr));
	assert_int_equal(check(0), 0);
	M.p.addr.flags = 1; /* dirty logging: not offered */
	assert_int_equal(check(0), -EINVAL);
	M.p.addr.flags = 0;
	M.p.addr.index = NQ;
	assert_int_equal(check(0), -EINVAL);
	msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_user_vring_addr) - 8);
	assert_int_equal(check(0), -EPROTO);
	msg(VHOST_USER_GET_VRING_BASE, 4);
	assert_int_equal(check(0), -EPROTO);
}

static void test_config_and_inflight(void **state)
{
	msg(VHOST_USER_GET_CONFIG, 12 + 60);
	M.p.config.size = 60;
	assert_int_equal(check(0), 0);
	M.p.config.size = 61; /* disagrees with the message size */
	assert_int_equal(check(0), -EPROTO);
	msg(VHOST_USER_GET_CONFIG, 12 + 256);
	M.p.config.size = 256;
	assert_int_equal(check(0), 0);
	M.p.config.offset = 1; /* past the config space */
	assert_int_equal(check(0), -EINVAL);
	M.p.config.offset = 0;
	M.p.config.size = UINT32_MAX;
	assert_int_equal(check(0), -EINVAL);
	msg(VHOST_USER_GET_CONFIG, 12 + 8);
	M.p.config = (struct vhost_user_config){.offset = UINT32_MAX - 3, .size = 8};
	assert_int_equal(check(0), -EINVAL);

	msg(VHOST_USER_GET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	M.p.inflight = (struct vhost_user_inflight){.num_queues = 2, .queue_size = 256};
	assert_int_equal(check(0), 0);
	M.p.inflight.num_queues = 0;
	assert_int_equal(check(0), -EINVAL);
	M.p.inflight.num_queues = NQ + 1;
	assert_int_equal(check(0), -EINVAL);
	M.p.inflight.num_queues = 1;
	M.p.inflight.queue_size = 100;
	assert_int_equal(check(0), -EINVAL);
	M.p.inflight.queue_size = 2048;
	assert_int_equal(check(0), -EINVAL);
	msg(VHOST_USER_SET_INFLIGHT_FD, sizeof(struct vhost_user_inflight));
	M.p.inflight =
		(struct vhost_user_inflight){.mmap_size = 0, .num_queues = 1, .queue_size = 128};
	assert_int_equal(check(1), -EINVAL);
	M.p.inflight.mmap_size = 4096;
	M.p.inflight.mmap_offset = UINT64_MAX - 100;
	assert_int_equal(check(1), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_fds),
		cmocka_unit_test(test_mem_table),
		cmocka_unit_test(test_vring_msgs),
		cmocka_unit_test(test_config_and_inflight),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
