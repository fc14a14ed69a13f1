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

#endif
