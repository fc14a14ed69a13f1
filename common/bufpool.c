/* SPDX-License-Identifier: Apache-2.0 */
#include "bufpool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "log.h"
#include "xport.h"

#define BUFPOOL_ALIGN 4096u

struct bufpool {
	uint8_t *arena;
	size_t buf_size;
	unsigned int count;
	unsigned int nfree;
	bool *in_use;	     /* catches double puts, which would hand one buffer out twice */
	bool zero_copy;	     /* arena in the transports' zero-copy registry */
	unsigned int free[]; /* stack of free buffer indices, top at nfree - 1 */
};

int bufpool_create(size_t buf_size, unsigned int count, struct bufpool **out)
{
	struct bufpool *p;
	size_t arena_size;
	void *arena;

	if (!buf_size || !count || buf_size > SIZE_MAX - BUFPOOL_ALIGN) {
		return -EINVAL;
	}
	buf_size = (buf_size + BUFPOOL_ALIGN - 1) & ~(size_t)(BUFPOOL_ALIGN - 1);
	if (__builtin_mul_overflow(buf_size, (size_t)count, &arena_size)) {
		return -ENOMEM;
	}
	p = malloc(sizeof(*p) + (size_t)count * sizeof(p->free[0]));
	if (!p) {
		return -ENOMEM;
	}
	p->in_use = calloc(count, sizeof(p->in_use[0]));
	if (!p->in_use) {
		goto out_free_pool;
	}
	if (posix_memalign(&arena, BUFPOOL_ALIGN, arena_size)) {
		goto out_free_in_use;
	}
	p->arena = arena;
	p->zero_copy = false;
	p->buf_size = buf_size;
	p->count = count;
	p->nfree = count;
	/* Lowest index on top: buffers are handed out in address order. */
	for (unsigned int i = 0; i < count; i++) {
		p->free[i] = count - 1 - i;
	}
	*out = p;
	return 0;

out_free_in_use:
	free(p->in_use);
out_free_pool:
	free(p);
	return -ENOMEM;
}

void bufpool_destroy(struct bufpool *p)
{
	if (!p) {
		return;
	}
	if (p->zero_copy) {
		xport_mem_unregister(p->arena);
	}
	free(p->arena);
	free(p->in_use);
	free(p);
}

int bufpool_register(struct bufpool *p, struct reactor *r)
{
	return reactor_buf_add(r, p->arena, p->buf_size * p->count);
}

int bufpool_zero_copy(struct bufpool *p)
{
	int ret = 0;

	if (!p->zero_copy) {
		ret = xport_mem_register(p->arena, p->buf_size * p->count);
		p->zero_copy = !ret;
	}
	return ret;
}

void *bufpool_get(struct bufpool *p)
{
	unsigned int i;

	if (!p->nfree) {
		return NULL;
	}
	i = p->free[--p->nfree];
	p->in_use[i] = true;
	return p->arena + (size_t)i * p->buf_size;
}

void bufpool_put(struct bufpool *p, void *buf)
{
	size_t i;

	kassert(bufpool_owns(p, buf));
	i = (size_t)((uint8_t *)buf - p->arena) / p->buf_size;
	kassert(p->in_use[i]);
	p->in_use[i] = false;
	p->free[p->nfree++] = (unsigned int)i;
}

size_t bufpool_buf_size(const struct bufpool *p)
{
	return p->buf_size;
}

unsigned int bufpool_free_count(const struct bufpool *p)
{
	return p->nfree;
}

int bufpool_owns(const struct bufpool *p, const void *buf)
{
	uintptr_t a = (uintptr_t)p->arena, b = (uintptr_t)buf;

	return b >= a && b < a + p->buf_size * p->count && (b - a) % p->buf_size == 0;
}
