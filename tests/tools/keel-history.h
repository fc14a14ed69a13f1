/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Block-history log: what keel-bench --history writes and keel-histcheck
 * reads. Also the layout of the self-identifying 4 KiB blocks keel-bench
 * writes in volume mode.
 *
 * File: one struct kh_file_hdr, then struct kh_rec records, one per 4 KiB
 * block per I/O, in completion order, little-endian (host order; Keel is
 * little-endian only).
 *
 * Block: struct kh_block_hdr at offset 0, then a pattern derived from
 * (inode, block, wid); body_crc is the crc32c of bytes [sizeof(hdr), 4096).
 * A block is torn when the header parses but the body does not match its
 * crc; misplaced when inode or block differ from where it was read.
 */
#ifndef KEEL_TESTS_TOOLS_KEEL_HISTORY_H
#define KEEL_TESTS_TOOLS_KEEL_HISTORY_H

#include <stdint.h>

#define KH_FILE_MAGIC  0x314f5453484c454bull /* "KELHSTO1" */
#define KH_BLOCK_MAGIC 0x4b4c4256454c454bull /* "KELEVBLK" */
#define KH_VERSION     1

struct kh_file_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t rec_size; /* sizeof(struct kh_rec) */
	uint64_t inode;
	uint64_t nblocks;  /* blocks of the span the run used */
	uint64_t run_id;   /* high bits of this run's write ids */
};

enum kh_op {
	KH_OP_WRITE = 1,
	KH_OP_READ = 2,
};

/* What a read found in one block. */
enum kh_found {
	KH_FOUND_DATA = 0,    /* a valid block: wid is its write id */
	KH_FOUND_ZERO = 1,    /* all zeroes (never written, discarded) */
	KH_FOUND_TORN = 2,    /* header ok, body crc mismatch */
	KH_FOUND_MISPLACED = 3, /* valid block of another inode or offset */
	KH_FOUND_GARBAGE = 4, /* neither zero nor a keel-bench block */
};

struct kh_rec {
	uint64_t start_ns; /* issue time (CLOCK_MONOTONIC) */
	uint64_t end_ns;   /* completion time */
	uint64_t block;	   /* volume offset / 4096 */
	uint64_t wid;	   /* write: its id; read: the id found (KH_FOUND_DATA/TORN) */
	uint8_t op;	   /* enum kh_op */
	uint8_t found;	   /* read: enum kh_found */
	int16_t result;	   /* 0 or -errno of the I/O */
	uint32_t pad;
};
_Static_assert(sizeof(struct kh_rec) == 40, "history record size");

struct kh_block_hdr {
	uint64_t magic;
	uint64_t inode;
	uint64_t block;
	uint64_t wid;
	uint32_t body_crc;
	uint32_t pad;
};
_Static_assert(sizeof(struct kh_block_hdr) == 40, "block header size");

#endif
