/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of server/bs_repl.c: block versions, pushes with exact versions
 * (also lower than the current ones: a diverged replica), delete, listing
 * by predicate, and the state after a reopen (checkpointed exact versions). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../bs/bs_test_util.h"

#define OSZ (64u * 1024) /* 16 blocks */
#define NB  (OSZ / 4096)

struct done_flag {
	bool done;
	int res;
};

static void bv_cb(struct bs_bvers_req *r, int res)
{
	struct done_flag *d = r->arg;

	d->done = true;
	d->res = res;
}

static void push_cb(struct bs_push_req *r, int res)
{
	struct done_flag *d = r->arg;

	d->done = true;
	d->res = res;
}

static int get_versions(struct tenv *e, uint64_t inode, uint64_t objno, uint64_t *v,
			uint64_t *objver)
{
	static uint8_t *scratch;
	struct bs_bvers_req r;
	struct done_flag d = {0};
	int ret;

	if (!scratch && posix_memalign((void **)&scratch, 4096, 4096)) {
		return -ENOMEM;
	}
	memset(&r, 0, sizeof(r));
	r.inode = inode;
	r.objno = objno;
	r.versions = v;
	r.buf = scratch;
	r.cb = bv_cb;
	r.arg = &d;
	ret = bs_block_versions(e->bs, &r);
	if (ret) {
		return ret;
	}
	ret = tenv_poll_until(e, &d.done);
	if (ret) {
		return ret;
	}
	*objver = r.obj_version;
	return d.res;
}

static int do_push(struct tenv *e, uint64_t inode, uint64_t objno, uint32_t off, uint32_t len,
		   uint64_t tag, uint64_t *vers, uint64_t objver)
{
	struct bs_push_req p;
	struct done_flag d = {0};
	int ret;

	tenv_fill(e, tag, len);
	memset(&p, 0, sizeof(p));
	p.inode = inode;
	p.objno = objno;
	p.offset = off;
	p.length = len;
	p.buf = e->buf;
	p.crcs = e->crcs;
	p.versions = vers;
	p.obj_version = objver;
	p.cb = push_cb;
	p.arg = &d;
	ret = bs_push(e->bs, &p);
	if (ret) {
		return ret;
	}
	ret = tenv_poll_until(e, &d.done);
	return ret ? ret : d.res;
}

static void test_push_exact(void **state)
{
	struct tenv e;
	uint64_t v[NB], pv[NB], ov;
	struct bs_obj_stat st;
	uint64_t base = 7ull << 32;

	assert_int_equal(tenv_setup(&e, "ram", 64ull << 20, OSZ, 4ull << 20), 0);
	/* absent object: all zero */
	assert_int_equal(get_versions(&e, 5, 1, v, &ov), 0);
	assert_int_equal(ov, 0);
	for (int i = 0; i < (int)NB; i++) {
		assert_int_equal(v[i], 0);
	}
	/* a local write stores its version on its blocks */
	assert_int_equal(tenv_write(&e, 5, 1, 0, 8192, 11), 0);
	assert_int_equal(get_versions(&e, 5, 1, v, &ov), 0);
	assert_int_equal(v[0], ov);
	assert_int_equal(v[1], ov);
	assert_int_equal(v[2], 0);

	/* push blocks 2..5 with mixed versions, 4 unmapped */
	pv[0] = base + 3;
	pv[1] = base + 5;
	pv[2] = 0;
	pv[3] = base + 5;
	assert_int_equal(do_push(&e, 5, 1, 8192, 16384, 22, pv, base + 9), 0);
	assert_int_equal(get_versions(&e, 5, 1, v, &ov), 0);
	assert_int_equal(ov, base + 9);
	assert_int_equal(v[2], base + 3);
	assert_int_equal(v[3], base + 5);
	assert_int_equal(v[4], 0);
	assert_int_equal(v[5], base + 5);
	assert_int_equal(bs_stat_object(e.bs, 5, 1, &st), 0);
	assert_int_equal(st.version, base + 9);
	assert_int_equal(st.blocks_mapped, 5);

	/* a later ordinary write with a larger version still works */
	{
		uint64_t ver = base + 10;

		tenv_fill(&e, 33, 4096);
		assert_int_equal(tenv_io(&e, BS_OP_WRITE, 5, 1, 0, 4096, e.buf, e.crcs, &ver), 0);
	}

	/* a diverged copy is brought down to lower versions */
	pv[0] = base + 1;
	pv[1] = base + 1;
	assert_int_equal(do_push(&e, 5, 1, 0, 8192, 44, pv, base + 2), 0);
	assert_int_equal(get_versions(&e, 5, 1, v, &ov), 0);
	assert_int_equal(ov, base + 2);
	assert_int_equal(v[0], base + 1);
	assert_int_equal(v[1], base + 1);
	assert_int_equal(tenv_check(&e, 5, 1, 0, 8192, 44), 0);

	/* the exact versions survive a clean reopen (checkpoint) */
	assert_int_equal(tenv_reopen(&e), 0);
	assert_int_equal(get_versions(&e, 5, 1, v, &ov), 0);
	assert_int_equal(ov, base + 2);
	assert_int_equal(v[0], base + 1);
	assert_int_equal(v[3], base + 5);

	/* delete: every block unmapped frees the object */
	memset(pv, 0, sizeof(pv));
	{
		struct bs_push_req p;
		struct done_flag d = {0};

		memset(&p, 0, sizeof(p));
		p.inode = 5;
		p.objno = 1;
		p.length = OSZ;
		p.versions = pv;
		p.cb = push_cb;
		p.arg = &d;
		assert_int_equal(bs_push(e.bs, &p), 0);
		assert_int_equal(tenv_poll_until(&e, &d.done), 0);
		assert_int_equal(d.res, 0);
	}
	assert_int_equal(bs_stat_object(e.bs, 5, 1, &st), -ENOENT);
	/* refused: temporary-range versions and bad extents */
	pv[0] = BS_VER_TEMP_BASE;
	assert_int_equal(do_push(&e, 5, 1, 0, 4096, 1, pv, 1), -EINVAL);
	assert_int_equal(do_push(&e, 5, 1, OSZ, 4096, 1, pv, 1), -ERANGE);
	tenv_teardown(&e);
}

static bool odd_objno(uint64_t inode, uint64_t objno, void *arg)
{
	return objno & 1;
}

/* A push in several messages: the object version is set by the last one
 * only (obj_version 0 before it), so a push cut short never leaves a copy
 * that claims the primary's object version without all its blocks. */
static void test_push_partial(void **state)
{
	struct tenv e;
	uint64_t v[NB], pv[NB], ov;
	struct bs_obj_stat st;
	uint64_t base = 9ull << 32;

	assert_int_equal(tenv_setup(&e, "ram", 64ull << 20, OSZ, 4ull << 20), 0);
	assert_int_equal(tenv_write(&e, 6, 2, 0, 16384, 11), 0);
	assert_int_equal(bs_stat_object(e.bs, 6, 2, &st), 0);
	/* first run of two: exact block versions, temporary object version */
	pv[0] = base + 1;
	pv[1] = base + 2;
	assert_int_equal(do_push(&e, 6, 2, 0, 8192, 21, pv, 0), 0);
	assert_int_equal(get_versions(&e, 6, 2, v, &ov), 0);
	assert_true(ov >= BS_VER_TEMP_BASE);
	assert_int_equal(v[0], base + 1);
	assert_int_equal(v[1], base + 2);
	assert_int_equal(bs_stat_object(e.bs, 6, 2, &st), 0);
	assert_true(st.version >= BS_VER_TEMP_BASE);
	/* a crash-free reopen (checkpoint) keeps it temporary */
	assert_int_equal(tenv_reopen(&e), 0);
	assert_int_equal(bs_stat_object(e.bs, 6, 2, &st), 0);
	assert_true(st.version >= BS_VER_TEMP_BASE);
	/* the last run sets the object version */
	pv[0] = base + 3;
	assert_int_equal(do_push(&e, 6, 2, 8192, 4096, 22, pv, base + 3), 0);
	assert_int_equal(get_versions(&e, 6, 2, v, &ov), 0);
	assert_int_equal(ov, base + 3);
	assert_int_equal(v[2], base + 3);
	assert_int_equal(tenv_check(&e, 6, 2, 0, 8192, 21), 0);
	assert_int_equal(tenv_check(&e, 6, 2, 8192, 4096, 22), 0);
	tenv_teardown(&e);
}

static void test_list_match(void **state)
{
	struct tenv e;
	struct bs_obj_stat out[8];
	uint64_t ci = 0, co = 0;
	bool first = true;
	unsigned int n;

	assert_int_equal(tenv_setup(&e, "ram", 64ull << 20, OSZ, 4ull << 20), 0);
	for (uint64_t o = 0; o < 6; o++) {
		assert_int_equal(tenv_write(&e, 9, o, 0, 4096, o + 1), 0);
	}
	n = bs_list_match(e.bs, odd_objno, NULL, &first, &ci, &co, out, 2);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].objno, 1);
	assert_int_equal(out[1].objno, 3);
	n = bs_list_match(e.bs, odd_objno, NULL, &first, &ci, &co, out, 8);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].objno, 5);
	{
		uint8_t u[16], z[16] = {0};

		bs_uuid(e.bs, u);
		assert_memory_not_equal(u, z, 16);
	}
	tenv_teardown(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_exact),
		cmocka_unit_test(test_push_partial),
		cmocka_unit_test(test_list_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
