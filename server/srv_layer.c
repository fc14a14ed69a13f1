/* SPDX-License-Identifier: Apache-2.0 */
/* srv_layer: layer decisions of keel-server (srv_layer.h). */
#include "server/srv_layer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int layer_chain_check(uint64_t inode, const uint64_t *parents, size_t n)
{
	size_t i;

	if (n > KP_READ_CHAIN_MAX) {
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (!parents[i] || parents[i] == inode || (parents[i] >> 16) != (inode >> 16)) {
			return -EINVAL;
		}
	}
	return 0;
}

int layer_read_check(const struct cmap *m, uint64_t inode, const uint64_t *parents, size_t n,
		     bool snap)
{
	enum cmap_layer_state st;
	size_t i;

	if (!m || !m->nlayers) {
		return 0;
	}
	st = cmap_layer_state(m, inode);
	if (st == CMAP_LAYER_DELETING || (st == CMAP_LAYER_RO && !snap)) {
		return -EROFS;
	}
	for (i = 0; i < n; i++) {
		if (cmap_layer_state(m, parents[i]) == CMAP_LAYER_DELETING) {
			return -EROFS;
		}
	}
	return 0;
}

int layer_mutation_check(const struct cmap *m, uint64_t inode)
{
	if (!m || !m->nlayers) {
		return 0;
	}
	return cmap_layer_state(m, inode) == CMAP_LAYER_WRITABLE ? 0 : -EROFS;
}

bool layer_lists_equal(const struct cmap *a, const struct cmap *b)
{
	uint32_t na = a ? a->nlayers : 0, nb = b ? b->nlayers : 0, i;

	if (na != nb) {
		return false;
	}
	for (i = 0; i < na; i++) {
		if (a->layers[i].inode != b->layers[i].inode ||
		    a->layers[i].state != b->layers[i].state ||
		    a->layers[i].merge_into != b->layers[i].merge_into) {
			return false;
		}
	}
	return true;
}

uint32_t layer_merge(void *dst, uint32_t *dst_crcs, const void *src, const uint32_t *src_crcs,
		     uint64_t *missing, const uint64_t *present, uint32_t nblk)
{
	uint32_t w, left = 0;

	for (w = 0; w < (nblk + 63) / 64; w++) {
		uint64_t take = missing[w] & present[w];

		while (take) {
			uint32_t b = w * 64 + (uint32_t)__builtin_ctzll(take);

			take &= take - 1;
			if (b >= nblk) {
				break;
			}
			memcpy((uint8_t *)dst + (size_t)b * KP_BLOCK,
			       (const uint8_t *)src + (size_t)b * KP_BLOCK, KP_BLOCK);
			dst_crcs[b] = src_crcs[b];
			missing[w] &= ~(1ull << (b % 64));
		}
		left += (uint32_t)__builtin_popcountll(missing[w]);
	}
	return left;
}

uint32_t layer_missing_init(uint64_t *missing, const uint64_t *present, uint32_t nblk)
{
	uint32_t w, nw = (nblk + 63) / 64, left = 0;

	for (w = 0; w < nw; w++) {
		missing[w] = ~present[w];
		if (w == nw - 1 && nblk % 64) {
			missing[w] &= (1ull << (nblk % 64)) - 1;
		}
		left += (uint32_t)__builtin_popcountll(missing[w]);
	}
	return left;
}

unsigned int layer_filter_todo(const struct cmap *m, struct pg_obj_todo *todo, unsigned int n)
{
	unsigned int i, k = 0;

	if (!m || !m->nlayers) {
		return n;
	}
	for (i = 0; i < n; i++) {
		if (cmap_layer_state(m, todo[i].inode) == CMAP_LAYER_DELETING) {
			continue;
		}
		todo[k++] = todo[i];
	}
	return k;
}

/* ---- usage ---- */

static uint32_t usage_slot(uint64_t inode, uint32_t mask)
{
	uint64_t h = inode * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(h ^ (h >> 32)) & mask;
}

static int usage_grow(struct layer_usage_tab *t)
{
	uint32_t cap = t->cap ? t->cap * 2 : 256, i;
	struct layer_usage *v = calloc(cap, sizeof(*v));

	if (!v) {
		return -ENOMEM;
	}
	for (i = 0; i < t->cap; i++) {
		uint32_t s;

		if (!t->v[i].inode) {
			continue;
		}
		s = usage_slot(t->v[i].inode, cap - 1);
		while (v[s].inode) {
			s = (s + 1) & (cap - 1);
		}
		v[s] = t->v[i];
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	return 0;
}

int layer_usage_add(struct layer_usage_tab *t, uint64_t inode, uint64_t blocks)
{
	uint32_t s;

	if (!inode) {
		return 0;
	}
	if ((t->n + 1) * 2 > t->cap && usage_grow(t)) {
		return -ENOMEM;
	}
	s = usage_slot(inode, t->cap - 1);
	while (t->v[s].inode && t->v[s].inode != inode) {
		s = (s + 1) & (t->cap - 1);
	}
	if (!t->v[s].inode) {
		t->v[s].inode = inode;
		t->n++;
	}
	t->v[s].objects++;
	t->v[s].blocks += blocks;
	return 0;
}

void layer_usage_compact(struct layer_usage_tab *t)
{
	uint32_t i, k = 0;

	for (i = 0; i < t->cap; i++) {
		if (t->v[i].inode) {
			t->v[k++] = t->v[i];
		}
	}
}

void layer_usage_free(struct layer_usage_tab *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t layer_usage_packed_size(const struct layer_usage *u)
{
	size_t body = 0;
	uint64_t bytes = u->blocks * KP_BLOCK;

	if (u->inode) {
		body += 1 + varint_size(u->inode);
	}
	if (u->objects) {
		body += 1 + varint_size(u->objects);
	}
	if (bytes) {
		body += 1 + varint_size(bytes);
	}
	return 1 + varint_size(body) + body;
}

static int usage_cmp(const void *a, const void *b)
{
	const struct layer_usage *x = a, *y = b;

	if (x->blocks != y->blocks) {
		return x->blocks > y->blocks ? -1 : 1;
	}
	return (x->inode > y->inode) - (x->inode < y->inode);
}

unsigned int layer_usage_select(const struct cmap *m, struct layer_usage *u, unsigned int n,
				size_t budget)
{
	unsigned int i, ndel = 0;
	size_t used = 0;

	for (i = 0; m && m->nlayers && i < n; i++) {
		if (cmap_layer_state(m, u[i].inode) == CMAP_LAYER_DELETING) {
			struct layer_usage t = u[ndel];

			u[ndel++] = u[i];
			u[i] = t;
		}
	}
	if (ndel > 1) {
		qsort(u, ndel, sizeof(*u), usage_cmp);
	}
	if (n - ndel > 1) {
		qsort(u + ndel, n - ndel, sizeof(*u), usage_cmp);
	}
	for (i = 0; i < n; i++) {
		size_t sz = layer_usage_packed_size(&u[i]);

		if (used + sz > budget) {
			break;
		}
		used += sz;
	}
	return i;
}
