/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_layer: the server's pure decisions about layers (docs/volumes.md,
 * docs/cluster.md "Layers on the server"): which requests a map's layer
 * list refuses, how a READ's ReadChain is checked, how the blocks of a
 * chain are merged, which objects recovery must leave alone, and which
 * layers a usage report carries when they do not all fit.
 *
 * No I/O; allocation only in layer_usage_add(). Unit-tested in
 * tests/cluster/test_srv_layer.c. Reactor thread only.
 */
#ifndef KEEL_SERVER_SRV_LAYER_H
#define KEEL_SERVER_SRV_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cmap.h"
#include "server/srv_pg.h"

/*
 * A READ's ReadChain as received: 0, or -EINVAL when there are more than
 * KP_READ_CHAIN_MAX parents, a parent is 0 or @inode itself (the read
 * holds @inode's object while it reads the parents), or a parent's family
 * (inode >> 16) differs from @inode's (only one family shares a PG).
 */
int layer_chain_check(uint64_t inode, const uint64_t *parents, size_t n);

/* A client READ of @inode through @parents (@n, may be 0) under map @m:
 * 0, or -EROFS when @inode or any parent is DELETING, or @inode is READ
 * ONLY and the read is not of a snapshot view (@snap: KP_F_SNAP). */
int layer_read_check(const struct cmap *m, uint64_t inode, const uint64_t *parents, size_t n,
		     bool snap);

/* A client WRITE / DISCARD / WRITE_ZEROES of @inode under map @m: 0, or
 * -EROFS when the layer is read only or deleting. */
int layer_mutation_check(const struct cmap *m, uint64_t inode);

/* Do @a and @b list the same layers in the same states? (NULL: no map,
 * which lists none.) */
bool layer_lists_equal(const struct cmap *a, const struct cmap *b);

/*
 * One step of a chain read: for every block i < @nblk whose bit is set in
 * @missing and in @present (the layer just read holds it), copy block i of
 * @src / @src_crcs into @dst / @dst_crcs and clear its @missing bit.
 * Bitmaps are BS_PRESENT_WORDS-style: bit i in word i / 64. Returns the
 * number of blocks still missing.
 */
uint32_t layer_merge(void *dst, uint32_t *dst_crcs, const void *src, const uint32_t *src_crcs,
		     uint64_t *missing, const uint64_t *present, uint32_t nblk);

/* Set @missing to the complement of @present over @nblk blocks (clear
 * bits beyond); returns the number of blocks missing. */
uint32_t layer_missing_init(uint64_t *missing, const uint64_t *present, uint32_t nblk);

/*
 * Recovery must not copy objects of deleting layers (their GC would be
 * undone) nor delete them on the member for recovery's sake (the member's
 * own GC does): drop every entry of a layer DELETING in @m from @todo (in
 * place, order kept). Returns the new count.
 */
unsigned int layer_filter_todo(const struct cmap *m, struct pg_obj_todo *todo, unsigned int n);

/* ---- usage (MG_USAGE) ---- */

struct layer_usage {
	uint64_t inode;
	uint64_t objects;
	uint64_t blocks; /* 4 KiB blocks mapped */
};

/* Per-inode sums, an open-addressing table that grows (zero it first). */
struct layer_usage_tab {
	struct layer_usage *v; /* cap entries, inode 0 = empty */
	uint32_t cap, n;
};

/* Count one object of @inode (!= 0) with @blocks mapped. 0 or -ENOMEM. */
int layer_usage_add(struct layer_usage_tab *t, uint64_t inode, uint64_t blocks);
/* Move the entries to the front of t->v (t->n of them); the table is
 * no longer a table afterwards (only layer_usage_free()). */
void layer_usage_compact(struct layer_usage_tab *t);
void layer_usage_free(struct layer_usage_tab *t);

/* Bytes one LayerUsage takes inside a packed UsageReport (field tag and
 * length prefix included). */
size_t layer_usage_packed_size(const struct layer_usage *u);

/*
 * Order @u (@n entries) for a report that may not hold them all: layers
 * DELETING in @m first (mgmt reads a deleting layer missing from a report
 * as freed here, so those must never be left out), then by bytes,
 * largest first (inode order on ties). Returns how many of the first
 * entries fit in @budget bytes of packed LayerUsage entries.
 */
unsigned int layer_usage_select(const struct cmap *m, struct layer_usage *u, unsigned int n,
				size_t budget);

#endif
