/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs_test: hooks for the blockstore's tests (bit-rot injection needs to know
 * where a block lives). Not for production code.
 */
#ifndef KEEL_SERVER_BS_TEST_H
#define KEEL_SERVER_BS_TEST_H

#include <stddef.h>
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
	uint64_t journal_off; /* device offset of the ring */
	uint64_t journal_size;
	uint64_t head; /* ring offset where the next record goes */
	uint64_t tail;
	uint64_t wraps;	      /* WRAP records written since open */
	uint64_t checkpoints; /* checkpoints completed since open */
	uint32_t batches_max; /* most journal batches in flight at once */
	uint64_t groups;      /* group records written since open */
	uint64_t entries;     /* mutations in them */
};

/* Journal position and counters, for tests that corrupt or count records. */
void bs_test_journal_info(struct bs *bs, struct bs_test_journal *out);

/* Synchronous raw device I/O (drives the reactor), for tests that damage
 * the media behind the blockstore's back. 0 or -errno. */
#define BS_TEST_IO_READ	 0
#define BS_TEST_IO_WRITE 1
#define BS_TEST_IO_FLUSH 2
int bs_test_dev_io(struct bs_dev *dev, int kind, void *buf, size_t len, uint64_t off);

/* XOR @mask into byte @byte of the data of the last held apply, in the
 * journal mirror (RAM damage under an acknowledged write). 0, -ENOENT (no
 * apply held) or -ERANGE (@byte beyond its data). */
int bs_test_mirror_flip(struct bs *bs, uint32_t byte, uint8_t mask);

#endif
