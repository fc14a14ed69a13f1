/* SPDX-License-Identifier: Apache-2.0 */
/* The registry of memory sends may be made from without a copy (xport.h). */
#include "xport.h"

#include <errno.h>
#include <pthread.h>

/*
 * Writers (register, unregister: setup time) take the lock; readers (every
 * large RDMA send) take none: a sequence count, odd while a writer changes
 * the table, tells them to read again.
 */
static struct {
	pthread_mutex_t lock;
	struct xport_mem_region r[XPORT_MEM_MAX];
	unsigned int n;
	uint64_t next_id;
	uint64_t seq; /* atomic; odd: being changed */
} xport_mem = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_id = 1};

#define XPORT_MEM_WATCHERS 4
static void (*xport_mem_watchers[XPORT_MEM_WATCHERS])(void);

static void xport_mem_write_begin(void)
{
	pthread_mutex_lock(&xport_mem.lock);
	__atomic_add_fetch(&xport_mem.seq, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void xport_mem_write_end(void)
{
	__atomic_add_fetch(&xport_mem.seq, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&xport_mem.lock);
}

/* The fields are read and written with relaxed atomics: a reader racing a
 * writer sees values it then throws away. */
static void xport_mem_set(unsigned int i, uintptr_t addr, size_t len, uint64_t id)
{
	__atomic_store_n(&xport_mem.r[i].addr, addr, __ATOMIC_RELAXED);
	__atomic_store_n(&xport_mem.r[i].len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&xport_mem.r[i].id, id, __ATOMIC_RELAXED);
}

static void xport_mem_get(unsigned int i, struct xport_mem_region *out)
{
	out->addr = __atomic_load_n(&xport_mem.r[i].addr, __ATOMIC_RELAXED);
	out->len = __atomic_load_n(&xport_mem.r[i].len, __ATOMIC_RELAXED);
	out->id = __atomic_load_n(&xport_mem.r[i].id, __ATOMIC_RELAXED);
}

int xport_mem_register(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	int ret = 0;

	if (!addr || !len || a + len < a) {
		return -EINVAL;
	}
	xport_mem_write_begin();
	for (unsigned int i = 0; i < xport_mem.n; i++) {
		const struct xport_mem_region *r = &xport_mem.r[i];

		if (a < r->addr + r->len && r->addr < a + len) {
			ret = -EINVAL;
			goto out;
		}
	}
	if (xport_mem.n == XPORT_MEM_MAX) {
		ret = -ENOSPC;
		goto out;
	}
	xport_mem_set(xport_mem.n, a, len, xport_mem.next_id++);
	__atomic_store_n(&xport_mem.n, xport_mem.n + 1, __ATOMIC_RELAXED);
out:
	xport_mem_write_end();
	return ret;
}

void xport_mem_unregister(void *addr)
{
	bool found = false;

	xport_mem_write_begin();
	for (unsigned int i = 0; i < xport_mem.n; i++) {
		if (xport_mem.r[i].addr == (uintptr_t)addr) {
			const struct xport_mem_region *last = &xport_mem.r[xport_mem.n - 1];

			xport_mem_set(i, last->addr, last->len, last->id);
			__atomic_store_n(&xport_mem.n, xport_mem.n - 1, __ATOMIC_RELAXED);
			found = true;
			break;
		}
	}
	xport_mem_write_end();
	for (unsigned int i = 0; found && i < XPORT_MEM_WATCHERS; i++) {
		void (*fn)(void) = __atomic_load_n(&xport_mem_watchers[i], __ATOMIC_ACQUIRE);

		if (fn) {
			fn();
		}
	}
}

int xport_mem_watch(void (*fn)(void))
{
	for (unsigned int i = 0; i < XPORT_MEM_WATCHERS; i++) {
		void (*none)(void) = NULL;

		if (__atomic_load_n(&xport_mem_watchers[i], __ATOMIC_ACQUIRE) == fn) {
			return 0;
		}
		if (__atomic_compare_exchange_n(&xport_mem_watchers[i], &none, fn, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			return 0;
		}
		if (none == fn) {
			return 0;
		}
	}
	return -ENOSPC;
}

/* Read the table consistently: 0 and the region @match accepts, or -ENOENT. */
static int xport_mem_scan(bool (*match)(const struct xport_mem_region *r, const void *ctx),
			  const void *ctx, struct xport_mem_region *out)
{
	struct xport_mem_region r;
	uint64_t seq;
	int ret;

	do {
		while ((seq = __atomic_load_n(&xport_mem.seq, __ATOMIC_ACQUIRE)) & 1) {
			__builtin_ia32_pause();
		}
		ret = -ENOENT;
		for (unsigned int i = 0, n = __atomic_load_n(&xport_mem.n, __ATOMIC_RELAXED);
		     i < n && i < XPORT_MEM_MAX; i++) {
			xport_mem_get(i, &r);
			if (match(&r, ctx)) {
				*out = r;
				ret = 0;
				break;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&xport_mem.seq, __ATOMIC_RELAXED) != seq);
	return ret;
}

struct xport_mem_range {
	uintptr_t addr;
	size_t len;
};

static bool xport_mem_has_range(const struct xport_mem_region *r, const void *ctx)
{
	const struct xport_mem_range *q = ctx;

	return xport_mem_holds(r, q->addr, q->len);
}

static bool xport_mem_is(const struct xport_mem_region *r, const void *ctx)
{
	return r->id == *(const uint64_t *)ctx;
}

int xport_mem_find(const void *addr, size_t len, struct xport_mem_region *out)
{
	struct xport_mem_range q = {(uintptr_t)addr, len};

	return xport_mem_scan(xport_mem_has_range, &q, out);
}

bool xport_mem_live(uint64_t id)
{
	struct xport_mem_region r;

	return !xport_mem_scan(xport_mem_is, &id, &r);
}

uint64_t xport_mem_gen(void)
{
	return __atomic_load_n(&xport_mem.seq, __ATOMIC_ACQUIRE);
}
