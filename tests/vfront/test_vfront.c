/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of keel-vfront's own logic (no backend): guest memory
 * translation, virtqueue bookkeeping and notification suppression, the
 * verify block pattern.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/vfront/vf.h"

#define MIB (1ull << 20)

static void test_mem_init_args(void **state)
{
	struct vf_mem m;

	assert_int_equal(vf_mem_init(&m, 3 * MIB, 1), -EINVAL);
	assert_int_equal(vf_mem_init(&m, 0, 1), -EINVAL);
	assert_int_equal(vf_mem_init(&m, 4 * MIB, 0), -EINVAL);
	assert_int_equal(vf_mem_init(&m, 4 * MIB, 3), -EINVAL);
	vf_mem_destroy(&m);
}

static void test_mem_translate(void **state)
{
	struct vf_mem m;

	assert_int_equal(vf_mem_init(&m, 4 * MIB, 2), 0);
	assert_ptr_equal(vf_mem_ptr(&m, 0, 1), m.base);
	assert_ptr_equal(vf_mem_ptr(&m, 2 * MIB - 1, 1), m.base + 2 * MIB - 1);
	assert_null(vf_mem_ptr(&m, 2 * MIB - 1, 2));	     /* runs off region 0 */
	assert_null(vf_mem_ptr(&m, 2 * MIB, 1));	     /* the gap */
	assert_null(vf_mem_ptr(&m, VF_MEM_GPA_HIGH - 1, 1)); /* still the gap */
	assert_ptr_equal(vf_mem_ptr(&m, VF_MEM_GPA_HIGH, 2 * MIB), m.base + 2 * MIB);
	assert_null(vf_mem_ptr(&m, VF_MEM_GPA_HIGH, 2 * MIB + 1));
	assert_null(vf_mem_ptr(&m, VF_MEM_GPA_HIGH + 2 * MIB, 1));
	assert_null(vf_mem_ptr(&m, UINT64_MAX - 1, 4)); /* wraps */
	assert_null(vf_mem_ptr(&m, 16, UINT64_MAX));
	vf_mem_destroy(&m);
}

static void test_mem_alloc(void **state)
{
	struct vf_mem m;
	uint8_t *a, *b;

	assert_int_equal(vf_mem_init(&m, 4 * MIB, 2), 0);
	a = vf_mem_alloc(&m, 0, 100, 64);
	b = vf_mem_alloc(&m, 1, 100, 4096);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal((uintptr_t)a % 64, 0);
	assert_int_equal((uintptr_t)b % 4096, 0);
	/* Region 0 keeps its first page unused; region 1 starts at 4 GiB. */
	assert_true(vf_mem_gpa(&m, a) >= 4096 && vf_mem_gpa(&m, a) < 2 * MIB);
	assert_int_equal(vf_mem_gpa(&m, b), VF_MEM_GPA_HIGH);
	assert_ptr_equal(vf_mem_ptr(&m, vf_mem_gpa(&m, a), 100), a);
	/* Region numbers wrap; a region that is full says so. */
	assert_non_null(vf_mem_alloc(&m, 3, MIB, 4096));
	assert_null(vf_mem_alloc(&m, 1, MIB, 4096));
	assert_null(vf_mem_alloc(&m, 0, 2 * MIB, 1));
	vf_mem_destroy(&m);
}

struct vq_fixture {
	struct vf_mem mem;
	struct vf_vq vq;
};

static int vq_setup(void **state)
{
	struct vq_fixture *f = calloc(1, sizeof(*f));

	if (!f || vf_mem_init(&f->mem, 2 * MIB, 1) || vf_vq_init(&f->vq, &f->mem, 0, 8)) {
		return -1;
	}
	*state = f;
	return 0;
}

static int vq_teardown(void **state)
{
	struct vq_fixture *f = *state;

	vf_vq_destroy(&f->vq);
	vf_mem_destroy(&f->mem);
	free(f);
	return 0;
}

/* The device side: return @head with @len. */
static void device_use(struct vf_vq *vq, uint32_t head, uint32_t len)
{
	uint16_t idx = vq->used->idx;

	vq->used->ring[idx & (vq->size - 1)] = (struct vf_used_elem){.id = head, .len = len};
	__atomic_store_n(&vq->used->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static uint64_t kicks(struct vf_vq *vq)
{
	uint64_t v = 0;

	if (read(vq->kick_fd, &v, sizeof(v)) != sizeof(v)) {
		return 0;
	}
	return v;
}

static void test_vq_init_args(void **state)
{
	struct vq_fixture *f = *state;
	struct vf_vq vq;

	assert_int_equal(vf_vq_init(&vq, &f->mem, 1, 0), -EINVAL);
	assert_int_equal(vf_vq_init(&vq, &f->mem, 1, 12), -EINVAL);
	vf_vq_destroy(&vq);
}

static void test_vq_chains(void **state)
{
	struct vq_fixture *f = *state;
	struct vf_vq *vq = &f->vq;
	uint16_t a[3], b[5], c[1];
	int tok_a, tok_b;
	void *tok;
	uint32_t len;

	assert_int_equal(vf_vq_alloc(vq, 3, a), 0);
	assert_int_equal(vf_vq_alloc(vq, 5, b), 0);
	assert_int_equal(vf_vq_alloc(vq, 1, c), -ENOSPC);
	assert_int_equal(vf_vq_inflight(vq), 8);
	/* What we wrote into the table does not steer our bookkeeping. */
	for (unsigned int i = 0; i < vq->size; i++) {
		vq->desc[i].next = 0xbeef;
	}
	vf_vq_publish(vq, a[0], &tok_a);
	vf_vq_publish(vq, b[0], &tok_b);
	assert_int_equal(vq->avail->idx, 2);
	assert_int_equal(vq->avail->ring[0], a[0]);
	assert_int_equal(vf_vq_reap(vq, &tok, &len), 0);

	device_use(vq, b[0], 4096); /* out of order */
	device_use(vq, a[0], 1);
	assert_int_equal(vf_vq_reap(vq, &tok, &len), 1);
	assert_ptr_equal(tok, &tok_b);
	assert_int_equal(len, 4096);
	assert_int_equal(vf_vq_inflight(vq), 3);
	assert_int_equal(vf_vq_reap(vq, &tok, &len), 1);
	assert_ptr_equal(tok, &tok_a);
	assert_int_equal(vf_vq_inflight(vq), 0);
	assert_int_equal(vf_vq_reap(vq, &tok, &len), 0);
	/* Every descriptor is free again. */
	{
		uint16_t all[8];

		assert_int_equal(vf_vq_alloc(vq, 8, all), 0);
	}
}

static void test_vq_bad_used(void **state)
{
	struct vq_fixture *f = *state;
	struct vf_vq *vq = &f->vq;
	uint16_t a[2];
	int tok_a;
	void *tok;
	uint32_t len;

	assert_int_equal(vf_vq_alloc(vq, 2, a), 0);
	vf_vq_publish(vq, a[0], &tok_a);
	device_use(vq, 8, 0);	 /* out of range */
	device_use(vq, a[1], 0); /* not a head in flight */
	device_use(vq, a[0], 0);
	device_use(vq, a[0], 0); /* twice */
	assert_int_equal(vf_vq_reap(vq, &tok, &len), -EPROTO);
	assert_int_equal(vf_vq_reap(vq, &tok, &len), -EPROTO);
	assert_int_equal(vf_vq_reap(vq, &tok, &len), 1);
	assert_ptr_equal(tok, &tok_a);
	assert_int_equal(vf_vq_reap(vq, &tok, &len), -EPROTO);
	assert_int_equal(vf_vq_inflight(vq), 0);
}

static void publish_one(struct vf_vq *vq, void *token)
{
	uint16_t id;

	assert_int_equal(vf_vq_alloc(vq, 1, &id), 0);
	vf_vq_publish(vq, id, token);
}

static void test_vq_kick_flags(void **state)
{
	struct vq_fixture *f = *state;
	struct vf_vq *vq = &f->vq;
	int tok;

	assert_int_equal(vf_vq_kick(vq), 0);
	assert_int_equal(kicks(vq), 0); /* nothing published */
	publish_one(vq, &tok);
	assert_int_equal(vf_vq_kick(vq), 0);
	assert_int_equal(kicks(vq), 1);
	assert_int_equal(vf_vq_kick(vq), 0);
	assert_int_equal(kicks(vq), 0); /* nothing new */
	vq->used->flags = VF_USED_F_NO_NOTIFY;
	publish_one(vq, &tok);
	assert_int_equal(vf_vq_kick(vq), 0);
	assert_int_equal(kicks(vq), 0);
	assert_false(vf_vq_arm(vq)); /* no-op without EVENT_IDX */
}

static void test_vq_event_idx(void **state)
{
	struct vq_fixture *f = *state;
	struct vf_vq *vq = &f->vq;
	uint16_t *avail_event = (uint16_t *)&vq->used->ring[vq->size];
	uint16_t *used_event = &vq->avail->ring[vq->size];
	int tok;
	void *t;
	uint32_t len;

	vq->event_idx = true;
	vq->used->flags = VF_USED_F_NO_NOTIFY; /* ignored with EVENT_IDX */
	*avail_event = 0;
	publish_one(vq, &tok); /* 0 -> 1 crosses event 0 */
	assert_int_equal(vf_vq_kick(vq), 0);
	assert_int_equal(kicks(vq), 1);
	publish_one(vq, &tok); /* 1 -> 2: the device waits for entry 0 only */
	assert_int_equal(vf_vq_kick(vq), 0);
	assert_int_equal(kicks(vq), 0);
	*avail_event = 3;
	publish_one(vq, &tok);
	publish_one(vq, &tok); /* 2 -> 4 crosses 3 */
	assert_int_equal(vf_vq_kick(vq), 0);
	assert_int_equal(kicks(vq), 1);

	/* Arming asks for the next used entry and sees races. */
	assert_false(vf_vq_arm(vq));
	assert_int_equal(*used_event, 0);
	device_use(vq, vq->avail->ring[0], 0);
	assert_true(vf_vq_arm(vq));
	assert_int_equal(vf_vq_reap(vq, &t, &len), 1);
	assert_false(vf_vq_arm(vq));
	assert_int_equal(*used_event, 1);
}

static void test_pattern(void **state)
{
	uint8_t *blk = malloc(VF_PAT_BLOCK);
	uint64_t seq = 0;

	assert_non_null(blk);
	memset(blk, 0, VF_PAT_BLOCK);
	assert_int_equal(vf_pattern_check(blk, 0, 7, &seq), VF_PAT_ZERO);
	vf_pattern_fill(blk, 8192, 42, 7);
	assert_int_equal(vf_pattern_check(blk, 8192, 7, &seq), VF_PAT_OK);
	assert_int_equal(seq, 42);
	assert_int_equal(vf_pattern_check(blk, 4096, 7, &seq), VF_PAT_MISPLACED);
	assert_int_equal(vf_pattern_check(blk, 8192, 8, &seq), VF_PAT_OTHER_SEED);
	for (unsigned int off = 8; off < VF_PAT_BLOCK; off += 509) {
		blk[off] ^= 1;
		assert_int_equal(vf_pattern_check(blk, 8192, 7, &seq), VF_PAT_CORRUPT);
		blk[off] ^= 1;
	}
	/* The filler depends on offset, sequence and seed. */
	{
		uint8_t *other = malloc(VF_PAT_BLOCK);

		assert_non_null(other);
		vf_pattern_fill(other, 8192, 43, 7);
		assert_memory_not_equal(blk + 32, other + 32, 64);
		vf_pattern_fill(other, 8192, 42, 7);
		assert_memory_equal(blk, other, VF_PAT_BLOCK);
		free(other);
	}
	free(blk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mem_init_args),
		cmocka_unit_test(test_mem_translate),
		cmocka_unit_test(test_mem_alloc),
		cmocka_unit_test_setup_teardown(test_vq_init_args, vq_setup, vq_teardown),
		cmocka_unit_test_setup_teardown(test_vq_chains, vq_setup, vq_teardown),
		cmocka_unit_test_setup_teardown(test_vq_bad_used, vq_setup, vq_teardown),
		cmocka_unit_test_setup_teardown(test_vq_kick_flags, vq_setup, vq_teardown),
		cmocka_unit_test_setup_teardown(test_vq_event_idx, vq_setup, vq_teardown),
		cmocka_unit_test(test_pattern),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
