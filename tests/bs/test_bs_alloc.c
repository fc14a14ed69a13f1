/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Thin allocation, property style: random writes, partial and whole-object
 * discards and write-zeroes on more objects than there are slots, checked
 * after every step against a model of mapped blocks: slots used == objects
 * with a mapped block, each object's mapped count, -ENOSPC exactly when a
 * new object is needed and no slot is free, data intact; with reopens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bs_test_util.h"

#define OBJ  (64u << 10)
#define BPO  (OBJ / 4096)
#define NOBJ 64

struct mobj {
	uint64_t tag[BPO]; /* 0 = unmapped */
};

static uint64_t rng = 1;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

static uint32_t mapped(const struct mobj *m)
{
	uint32_t b, n = 0;

	for (b = 0; b < BPO; b++) {
		n += m->tag[b] != 0;
	}
	return n;
}

static void run_property(const char *backend, uint64_t seed)
{
	struct tenv e;
	struct mobj *model = calloc(NOBJ, sizeof(*model));
	struct bs_stat st;
	uint64_t step, total;
	uint8_t *wbuf = NULL;
	unsigned int nenospc = 0;
	int ret;

	assert_int_equal(posix_memalign((void **)&wbuf, 4096, 4 * 4096), 0);

	rng = seed;
	/* 4 MiB device: a handful of 64 KiB slots, fewer than NOBJ */
	assert_int_equal(tenv_setup(&e, backend, 5ull << 20, OBJ, 2ull << 20), 0);
	bs_stat(e.bs, &st);
	total = st.objects_total;
	assert_true(total > 4 && total < NOBJ);
	for (step = 1; step <= 1500; step++) {
		int o = (int)rnd(NOBJ), k = (int)rnd(10);
		uint32_t blk = (uint32_t)rnd(BPO), n = 1 + (uint32_t)rnd(4), b, used = 0, i;
		struct mobj *m = &model[o];

		if (blk + n > BPO) {
			n = BPO - blk;
		}
		for (i = 0; i < NOBJ; i++) {
			used += mapped(&model[i]) > 0;
		}
		if (k < 6) {
			uint32_t crcs[4];

			for (b = 0; b < n; b++) {
				tenv_fill(&e, step * 64 + blk + b, 4096);
				memcpy(wbuf + b * 4096, e.buf, 4096);
			}
			crc32c_blocks(wbuf, n * 4096, crcs);
			ret = tenv_io(&e, BS_OP_WRITE, 1, (uint64_t)o, blk * 4096, n * 4096, wbuf,
				      crcs, NULL);
			if (!mapped(m) && used == total) {
				assert_int_equal(ret, -ENOSPC);
				nenospc++;
			} else {
				assert_int_equal(ret, 0);
				for (b = 0; b < n; b++) {
					m->tag[blk + b] = step * 64 + blk + b;
				}
			}
		} else if (k < 9) {
			ret = tenv_io(&e, k == 7 ? BS_OP_WRITE_ZEROES : BS_OP_DISCARD, 1,
				      (uint64_t)o, blk * 4096, n * 4096, NULL, NULL, NULL);
			assert_int_equal(ret, 0);
			for (b = 0; b < n; b++) {
				m->tag[blk + b] = 0;
			}
		} else {
			assert_int_equal(tenv_io(&e, BS_OP_DISCARD, 1, (uint64_t)o, 0, OBJ, NULL,
						 NULL, NULL),
					 0);
			memset(m, 0, sizeof(*m));
		}
		if (step % 400 == 0) {
			assert_int_equal(tenv_reopen(&e), 0);
		}
		/* invariants */
		used = 0;
		for (i = 0; i < NOBJ; i++) {
			struct bs_obj_stat os;
			uint32_t mm = mapped(&model[i]);

			used += mm > 0;
			ret = bs_stat_object(e.bs, 1, i, &os);
			if (!mm) {
				assert_int_equal(ret, -ENOENT);
			} else {
				assert_int_equal(ret, 0);
				assert_int_equal(os.blocks_mapped, mm);
			}
		}
		bs_stat(e.bs, &st);
		assert_int_equal(st.objects_used, used);
		if (step % 100 == 0) {
			for (i = 0; i < NOBJ; i++) {
				for (b = 0; b < BPO; b++) {
					assert_int_equal(tenv_check(&e, 1, i, b * 4096, 4096,
								    model[i].tag[b]),
							 0);
				}
			}
		}
	}
	assert_true(nenospc > 0); /* the property covered a full store */
	tenv_teardown(&e);
	free(model);
	free(wbuf);
}

static void test_alloc_ram(void **state)
{
	run_property("ram", 11);
	run_property("ram", 12);
}

static void test_alloc_sim(void **state)
{
	run_property("sim", 13);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_ram),
		cmocka_unit_test(test_alloc_sim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
