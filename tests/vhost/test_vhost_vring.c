/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vhost_vring: the memory table, the descriptor-chain walker (every way a
 * guest can break a chain), pop/push, notification suppression with and
 * without EVENT_IDX, and inflight recovery. Guest memory is two heap
 * buffers posing as two regions with adjacent guest-physical ranges.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/vhost_vring.h"

#define REG_SIZE 0x10000u
#define GPA_A	 0x100000u	    /* region A: rings and buffers */
#define GPA_B	 (GPA_A + REG_SIZE) /* region B: right after A, other host memory */
#define NUM	 8u

/* Layout inside region A (guest-physical). */
#define DESC_GPA  (GPA_A + 0x0)
#define AVAIL_GPA (GPA_A + 0x1000)
#define USED_GPA  (GPA_A + 0x2000)
#define IND_GPA	  (GPA_A + 0x3000) /* indirect tables */
#define BUF_GPA	  (GPA_A + 0x4000) /* data buffers */

struct t_env {
	uint8_t *a, *b;
	struct vhost_mem mem;
	struct vhost_vring vr;
	struct vhost_inflight_queue *inflight;
	struct iovec iov[VHOST_VRING_MAX_IOV];
	unsigned int out, in;
};

static struct t_env E;

static void *host(uint64_t gpa)
{
	return vhost_mem_gpa_to_host(&E.mem, gpa, 1);
}

static int setup(void **state)
{
	memset(&E, 0, sizeof(E));
	E.a = aligned_alloc(4096, REG_SIZE);
	E.b = aligned_alloc(4096, REG_SIZE);
	memset(E.a, 0, REG_SIZE);
	memset(E.b, 0, REG_SIZE);
	E.mem.nregions = 2;
	E.mem.r[0] = (struct vhost_mem_region){
		.gpa = GPA_A, .size = REG_SIZE, .uva = 0x7f0000000000, .host = E.a};
	E.mem.r[1] = (struct vhost_mem_region){
		.gpa = GPA_B, .size = REG_SIZE, .uva = 0x7f1000000000, .host = E.b};
	E.vr.num = NUM;
	E.vr.indirect = true;
	E.vr.desc = host(DESC_GPA);
	E.vr.avail = host(AVAIL_GPA);
	E.vr.used = host(USED_GPA);
	E.inflight = calloc(1, vhost_inflight_queue_size(NUM));
	E.inflight->desc_num = NUM;
	return 0;
}

static int teardown(void **state)
{
	free(E.a);
	free(E.b);
	free(E.inflight);
	return 0;
}

static void set_desc(struct vring_desc *t, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	t[i] = (struct vring_desc){.addr = addr, .len = len, .flags = flags, .next = next};
}

static void d(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	set_desc(E.vr.desc, i, addr, len, flags, next);
}

static int walk(uint16_t head, unsigned int max)
{
	return vhost_vring_walk(&E.vr, &E.mem, head, E.iov, max, &E.out, &E.in);
}

static void test_mem_translate(void **state)
{
	struct iovec iov[4];
	unsigned int n = 0;

	assert_ptr_equal(vhost_mem_gpa_to_host(&E.mem, GPA_A, REG_SIZE), E.a);
	assert_null(vhost_mem_gpa_to_host(&E.mem, GPA_A, REG_SIZE + 1));
	assert_null(vhost_mem_gpa_to_host(&E.mem, GPA_A - 1, 1));
	assert_ptr_equal(vhost_mem_gpa_to_host(&E.mem, GPA_B + 5, 1), E.b + 5);
	assert_null(vhost_mem_gpa_to_host(&E.mem, GPA_B + REG_SIZE, 1));
	assert_ptr_equal(vhost_mem_uva_to_host(&E.mem, 0x7f1000000010, 16), E.b + 16);
	assert_null(vhost_mem_uva_to_host(&E.mem, 0x7f1000000000 + REG_SIZE - 8, 16));
	assert_null(vhost_mem_uva_to_host(&E.mem, 0x1000, 1));
	/* a range across the A/B boundary splits in two */
	assert_int_equal(vhost_mem_gpa_to_iov(&E.mem, GPA_B - 100, 300, iov, &n, 4), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, E.a + REG_SIZE - 100);
	assert_int_equal(iov[0].iov_len, 100);
	assert_ptr_equal(iov[1].iov_base, E.b);
	assert_int_equal(iov[1].iov_len, 200);
	n = 3;
	assert_int_equal(vhost_mem_gpa_to_iov(&E.mem, GPA_B - 100, 300, iov, &n, 4), -E2BIG);
	n = 0;
	assert_int_equal(vhost_mem_gpa_to_iov(&E.mem, GPA_B + REG_SIZE - 10, 20, iov, &n, 4),
			 -EFAULT);
	n = 0;
	assert_int_equal(vhost_mem_gpa_to_iov(&E.mem, UINT64_MAX - 10, 100, iov, &n, 4), -EFAULT);
	n = 0;
	assert_int_equal(vhost_mem_gpa_to_iov(&E.mem, GPA_A, 0, iov, &n, 4), 0);
	assert_int_equal(n, 0);
}

static void test_walk_simple(void **state)
{
	d(0, BUF_GPA, 16, VRING_DESC_F_NEXT, 3);
	d(3, BUF_GPA + 0x100, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 5);
	d(5, BUF_GPA + 0x2000, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), 0);
	assert_int_equal(E.out, 1);
	assert_int_equal(E.in, 2);
	assert_ptr_equal(E.iov[0].iov_base, host(BUF_GPA));
	assert_int_equal(E.iov[1].iov_len, 4096);
	assert_ptr_equal(E.iov[2].iov_base, host(BUF_GPA + 0x2000));
}

static void test_walk_region_split(void **state)
{
	d(0, GPA_B - 512, 4096, VRING_DESC_F_WRITE, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), 0);
	assert_int_equal(E.in, 2);
	assert_int_equal(E.iov[0].iov_len, 512);
	assert_ptr_equal(E.iov[1].iov_base, E.b);
	assert_int_equal(E.iov[1].iov_len, 3584);
	assert_int_equal(walk(0, 1), -E2BIG);
}

static void test_walk_bad_addresses(void **state)
{
	d(0, 0x1000, 16, 0, 0); /* below guest memory */
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
	d(0, GPA_B + REG_SIZE - 8, 16, 0, 0); /* runs off the end */
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
	d(0, UINT64_MAX - 8, 16, 0, 0); /* address + length overflows */
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
	d(0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	d(1, GPA_A - 4096, 4096, VRING_DESC_F_WRITE, 0); /* second one bad */
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
	/* zero-length descriptors are fine (and produce nothing) */
	d(0, 0, 0, 0, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), 0);
	assert_int_equal(E.out + E.in, 0);
}

static void test_walk_bad_chains(void **state)
{
	/* head and next outside the table */
	assert_int_equal(walk(NUM, VHOST_VRING_MAX_IOV), -EINVAL);
	d(0, BUF_GPA, 16, VRING_DESC_F_NEXT, NUM);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* a loop: 0 -> 1 -> 2 -> 0 */
	d(0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	d(1, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);
	d(2, BUF_GPA, 16, VRING_DESC_F_NEXT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* a self loop */
	d(4, BUF_GPA, 16, VRING_DESC_F_NEXT, 4);
	assert_int_equal(walk(4, VHOST_VRING_MAX_IOV), -EINVAL);
	/* a chain of exactly NUM descriptors is fine */
	for (uint16_t i = 0; i < NUM; i++) {
		d(i, BUF_GPA, 16, i + 1u < NUM ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	}
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), 0);
	assert_int_equal(E.out, NUM);
	/* readable after writable */
	d(0, BUF_GPA, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	d(1, BUF_GPA, 16, 0, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* unknown flag bits */
	d(0, BUF_GPA, 16, 0x80, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
}

static void test_walk_indirect(void **state)
{
	struct vring_desc *t = host(IND_GPA);

	set_desc(t, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	set_desc(t, 1, BUF_GPA + 0x100, 8192, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(t, 2, BUF_GPA + 0x3000, 1, VRING_DESC_F_WRITE, 0);
	d(0, IND_GPA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), 0);
	assert_int_equal(E.out, 1);
	assert_int_equal(E.in, 2);
	/* direct descriptors before the indirect one */
	set_desc(t, 4, BUF_GPA + 0x100, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(t, 5, BUF_GPA + 0x3000, 1, VRING_DESC_F_WRITE, 0);
	d(0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	d(1, IND_GPA + 4 * 16, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), 0);
	assert_int_equal(E.out, 1);
	assert_int_equal(E.in, 2);
	/* feature not negotiated */
	E.vr.indirect = false;
	d(0, IND_GPA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	E.vr.indirect = true;
	/* sizes: not a multiple of 16, empty, too big */
	d(0, IND_GPA, 40, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	d(0, IND_GPA, 0, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	d(0, IND_GPA, (VHOST_VRING_MAX_INDIRECT + 1) * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* table outside memory, across regions, overflowing */
	d(0, 0x1000, 48, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
	d(0, GPA_B - 16, 48, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
	d(0, UINT64_MAX - 15, 48, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
	/* INDIRECT together with NEXT */
	d(0, IND_GPA, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* nested indirect */
	set_desc(t, 2, IND_GPA, 48, VRING_DESC_F_INDIRECT, 0);
	d(0, IND_GPA, 48, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* a loop inside the table, and next past its end */
	set_desc(t, 2, BUF_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	set_desc(t, 2, BUF_GPA, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* readable after writable inside the table */
	set_desc(t, 2, BUF_GPA, 1, 0, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EINVAL);
	/* a bad buffer address inside the table */
	set_desc(t, 2, GPA_B + REG_SIZE, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(walk(0, VHOST_VRING_MAX_IOV), -EFAULT);
}

static void ring_reset(bool event_idx)
{
	memset(E.vr.avail, 0, VRING_AVAIL_SIZE(NUM));
	memset(E.vr.used, 0, VRING_USED_SIZE(NUM));
	E.vr.last_avail = 0;
	E.vr.used_idx = 0;
	E.vr.event_idx = event_idx;
	E.vr.signalled_valid = false;
	E.vr.inflight = NULL;
}

static void avail_add(uint16_t head)
{
	E.vr.avail->ring[E.vr.avail->idx % NUM] = head;
	E.vr.avail->idx++;
}

static void test_pop_push(void **state)
{
	uint16_t head;

	ring_reset(false);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 0);
	avail_add(3);
	avail_add(5);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	assert_int_equal(head, 3);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	assert_int_equal(head, 5);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 0);
	vhost_vring_push(&E.vr, 5, 17);
	assert_int_equal(E.vr.used->idx, 1);
	assert_int_equal(E.vr.used->ring[0].id, 5);
	assert_int_equal(E.vr.used->ring[0].len, 17);
	/* a head out of range breaks the ring */
	avail_add(NUM);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), -EIO);
	/* so does an avail index more than NUM ahead */
	ring_reset(false);
	E.vr.avail->idx = NUM + 1;
	assert_int_equal(vhost_vring_pop(&E.vr, &head), -EIO);
	E.vr.avail->idx = NUM; /* exactly full is fine */
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	/* index wrap-around */
	ring_reset(false);
	E.vr.last_avail = 65534;
	E.vr.avail->idx = 65534;
	avail_add(1);
	avail_add(2);
	avail_add(4);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	assert_int_equal(head, 4);
	assert_int_equal(E.vr.last_avail, 1);
}

static void test_notify_no_event_idx(void **state)
{
	ring_reset(false);
	vhost_vring_disable_notify(&E.vr);
	assert_int_equal(E.vr.used->flags, VRING_USED_F_NO_NOTIFY);
	assert_false(vhost_vring_enable_notify(&E.vr));
	assert_int_equal(E.vr.used->flags, 0);
	avail_add(1);
	assert_true(vhost_vring_enable_notify(&E.vr));
	vhost_vring_push(&E.vr, 1, 1);
	assert_true(vhost_vring_need_signal(&E.vr));
	E.vr.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(vhost_vring_need_signal(&E.vr));
}

static void test_notify_event_idx(void **state)
{
	uint16_t *used_event, *avail_event, head;

	ring_reset(true);
	used_event = &E.vr.avail->ring[NUM];
	avail_event = (uint16_t *)&E.vr.used->ring[NUM];
	avail_add(0);
	avail_add(1);
	avail_add(2);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	}
	assert_false(vhost_vring_enable_notify(&E.vr));
	assert_int_equal(*avail_event, 3);
	/* first signal always goes */
	vhost_vring_push(&E.vr, 0, 1);
	assert_true(vhost_vring_need_signal(&E.vr));
	/* guest wants an interrupt when used idx passes 2 (after entry 2) */
	*used_event = 2;
	vhost_vring_push(&E.vr, 1, 1);
	assert_false(vhost_vring_need_signal(&E.vr)); /* used idx 2: event 2 not crossed */
	vhost_vring_push(&E.vr, 2, 1);
	assert_true(vhost_vring_need_signal(&E.vr));  /* used idx 3 crosses 2 */
	assert_false(vhost_vring_need_signal(&E.vr)); /* nothing new */
}

static void test_inflight(void **state)
{
	uint16_t head, heads[NUM];
	struct vhost_inflight_queue *q = E.inflight;

	ring_reset(false);
	memset(q, 0, vhost_inflight_queue_size(NUM));
	q->desc_num = NUM;
	E.vr.inflight = q;
	/* fresh region: initialised, nothing to resubmit */
	assert_int_equal(vhost_vring_inflight_recover(&E.vr, heads), 0);
	assert_int_equal(q->version, VHOST_INFLIGHT_VERSION);
	avail_add(6);
	avail_add(2);
	avail_add(4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vhost_vring_pop(&E.vr, &head), 1);
	}
	assert_int_equal(q->desc[6].inflight, 1);
	assert_int_equal(q->desc[2].inflight, 1);
	assert_true(q->desc[6].counter < q->desc[2].counter);
	vhost_vring_push(&E.vr, 2, 1); /* 2 done; 6 and 4 still in flight */
	assert_int_equal(q->desc[2].inflight, 0);
	assert_int_equal(q->used_idx, 1);
	/* "restart": the frontend lost our last_avail, recovery finds it */
	E.vr.last_avail = 0;
	assert_int_equal(vhost_vring_inflight_recover(&E.vr, heads), 2);
	assert_int_equal(heads[0], 6);
	assert_int_equal(heads[1], 4);
	assert_int_equal(E.vr.last_avail, 3);
	assert_true(E.vr.inflight_counter > q->desc[4].counter);
	/* a crash between the used-ring update and the region update: the
	 * used index moved but the head is still marked */
	q->desc[6].next = q->last_batch_head;
	q->last_batch_head = 6;
	E.vr.used->ring[1] = (struct vring_used_elem){.id = 6, .len = 1};
	E.vr.used->idx = 2;
	assert_int_equal(vhost_vring_inflight_recover(&E.vr, heads), 1);
	assert_int_equal(heads[0], 4);
	assert_int_equal(q->desc[6].inflight, 0);
	assert_int_equal(q->used_idx, 2);
	assert_int_equal(E.vr.last_avail, 3);
	/* a region for another ring size is refused */
	q->desc_num = NUM * 2;
	assert_int_equal(vhost_vring_inflight_recover(&E.vr, heads), -EINVAL);
	q->desc_num = NUM;
	/* garbage inflight values are not resubmitted */
	q->desc[1].inflight = 7;
	assert_int_equal(vhost_vring_inflight_recover(&E.vr, heads), 1);
	assert_int_equal(q->desc[1].inflight, 0);
	E.vr.inflight = NULL;
	assert_int_equal(vhost_inflight_queue_size(128) % 64, 0);
	assert_true(vhost_inflight_queue_size(128) >= 16 + 128 * 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mem_translate),
		cmocka_unit_test(test_walk_simple),
		cmocka_unit_test(test_walk_region_split),
		cmocka_unit_test(test_walk_bad_addresses),
		cmocka_unit_test(test_walk_bad_chains),
		cmocka_unit_test(test_walk_indirect),
		cmocka_unit_test(test_pop_push),
		cmocka_unit_test(test_notify_no_event_idx),
		cmocka_unit_test(test_notify_event_idx),
		cmocka_unit_test(test_inflight),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
