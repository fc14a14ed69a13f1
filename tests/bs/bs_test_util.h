/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the blockstore's cmocka tests (header-only). */
#ifndef KEEL_TESTS_BS_UTIL_H
#define KEEL_TESTS_BS_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "common/log.h"
#include "common/reactor.h"
#include "server/bs.h"
#include "server/bs_test.h"

struct tenv {
	const char *backend;
	struct reactor *r;
	struct bs_dev *dev;
	struct bs *bs;
	uint64_t dev_size;
	struct bs_format_opts fo;
	uint8_t *buf; /* 1 MiB, aligned */
	uint32_t crcs[256];
};

struct treq {
	struct bs_req req;
	bool done;
	int res;
};

static inline void treq_cb(struct bs_req *req, int res)
{
	struct treq *t = container_of(req, struct treq, req);

	t->done = true;
	t->res = res;
}

/* Poll the reactor until @done (bounded: a stuck store fails the test). */
static inline int tenv_poll_until(struct tenv *e, const bool *done)
{
	unsigned long idle = 0;

	while (!*done) {
		if (reactor_poll(e->r, false) > 0) {
			idle = 0;
		} else if (++idle > 1000000) {
			return -ETIMEDOUT;
		}
	}
	return 0;
}

/* Submit and wait. *version in/out. Returns the submit error or the result. */
static inline int tenv_io(struct tenv *e, enum bs_op op, uint64_t inode, uint64_t objno,
			  uint32_t off, uint32_t len, void *buf, uint32_t *crcs, uint64_t *version)
{
	struct treq t;
	int ret;

	memset(&t, 0, sizeof(t));
	t.req.op = op;
	t.req.inode = inode;
	t.req.objno = objno;
	t.req.offset = off;
	t.req.length = len;
	t.req.buf = buf;
	t.req.crcs = crcs;
	t.req.version = version ? *version : 0;
	t.req.cb = treq_cb;
	ret = bs_submit(e->bs, &t.req);
	if (ret < 0) {
		return ret;
	}
	ret = tenv_poll_until(e, &t.done);
	if (ret < 0) {
		return ret;
	}
	if (version) {
		*version = t.req.version;
	}
	return t.res;
}

/* Fill @len bytes of e->buf with a pattern from @tag and compute crcs. */
static inline void tenv_fill(struct tenv *e, uint64_t tag, uint32_t len)
{
	uint64_t *w = (uint64_t *)e->buf, s = tag * 0x9e3779b97f4a7c15ull + 1;
	uint32_t i;

	for (i = 0; i < len / 8; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		w[i] = s ^ tag;
	}
	crc32c_blocks(e->buf, len, e->crcs);
}

static inline int tenv_write(struct tenv *e, uint64_t inode, uint64_t objno, uint32_t off,
			     uint32_t len, uint64_t tag)
{
	tenv_fill(e, tag, len);
	return tenv_io(e, BS_OP_WRITE, inode, objno, off, len, e->buf, e->crcs, NULL);
}

/* Read and compare with the pattern @tag (0: zeroes). Returns 0, 1 on a data
 * mismatch, or the read's -errno. */
static inline int tenv_check(struct tenv *e, uint64_t inode, uint64_t objno, uint32_t off,
			     uint32_t len, uint64_t tag)
{
	static uint8_t *want;
	uint32_t crcs[256];
	int ret;

	if (!want && posix_memalign((void **)&want, 4096, 1u << 20)) {
		return -ENOMEM;
	}
	if (tag) {
		tenv_fill(e, tag, len);
		memcpy(want, e->buf, len);
	} else {
		memset(want, 0, len);
	}
	memset(e->buf, 0xee, len);
	ret = tenv_io(e, BS_OP_READ, inode, objno, off, len, e->buf, crcs, NULL);
	if (ret < 0) {
		return ret;
	}
	if (memcmp(want, e->buf, len)) {
		return 1;
	}
	for (uint32_t b = 0; b < len / 4096; b++) {
		if (crcs[b] != crc32c(0, e->buf + (size_t)b * 4096, 4096)) {
			return 2;
		}
	}
	return 0;
}

static inline int tenv_setup(struct tenv *e, const char *backend, uint64_t dev_size,
			     uint32_t object_size, uint64_t journal_size)
{
	int ret;

	memset(e, 0, sizeof(*e));
	e->backend = backend;
	e->dev_size = dev_size;
	e->fo.object_size = object_size;
	e->fo.journal_size = journal_size;
	if (!getenv("BS_TEST_LOG")) {
		klog_set_level(KLOG_FATAL);
	}
	ret = reactor_create(64, &e->r);
	if (ret < 0) {
		return ret;
	}
	if (posix_memalign((void **)&e->buf, 4096, 1u << 20)) {
		return -ENOMEM;
	}
	ret = bs_dev_open(e->r, backend, "test", dev_size, &e->dev);
	if (ret < 0) {
		return ret;
	}
	if (!strcmp(backend, "sim")) {
		bs_sim_seed(e->dev, 42);
	}
	ret = bs_format(e->dev, &e->fo);
	if (ret < 0) {
		return ret;
	}
	return bs_open(e->dev, NULL, &e->bs);
}

static inline int tenv_reopen(struct tenv *e)
{
	bs_close(e->bs);
	e->bs = NULL;
	return bs_open(e->dev, NULL, &e->bs);
}

static inline void tenv_teardown(struct tenv *e)
{
	if (e->bs) {
		bs_close(e->bs);
	}
	bs_dev_close(e->dev);
	reactor_destroy(e->r);
	free(e->buf);
}

#endif
