/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs_test: hooks for the blockstore's tests (bit-rot injection needs to know
 * where a block lives). Not for production code.
 */
#ifndef KEEL_SERVER_BS_TEST_H
#define KEEL_SERVER_BS_TEST_H

#include <stdint.h>

#include "server/bs.h"

/*
 * Device byte offsets of block @blk of object (@inode, @objno): its data in
 * the data area and its 16-byte metadata entry. 0, -ENOENT (object has no
 * slot) or -ERANGE (@blk beyond the object).
 */
int bs_test_block_offsets(struct bs *bs, uint64_t inode, uint64_t objno, uint32_t blk,
			  uint64_t *data_off, uint64_t *meta_off);

struct bs_test_journal {
	uint64_t journal_off;  /* device offset of the ring */
	uint64_t journal_size;
	uint64_t head;         /* ring offset where the next record goes */
	uint64_t tail;
	uint64_t wraps;        /* WRAP records written since open */
	uint64_t checkpoints;  /* checkpoints completed since open */
};

/* Journal position and counters, for tests that corrupt or count records. */
void bs_test_journal_info(struct bs *bs, struct bs_test_journal *out);

#endif
