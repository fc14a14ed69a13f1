/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bs_format: the blockstore's on-disk structures (little-endian hosts only;
 * the layout and the reasons behind it are in docs/on-disk-format.md).
 *
 * Every structure here is read back from a disk that may hold anything, so
 * each carries a crc32c and every field is range-checked before use.
 */
#ifndef KEEL_SERVER_BS_FORMAT_H
#define KEEL_SERVER_BS_FORMAT_H

#include <stdint.h>

#define BS_FMT_MAGIC "KEELBS01"
/* 2: journal group records (version 1 stores open and are upgraded; a
 * Keel that knows only version 1 refuses a version 2 store instead of
 * stopping replay at the first group record). */
#define BS_FMT_VERSION	   2u
#define BS_FMT_SB_BLOCKS   2u /* superblock in block 0, copy in block 1 */
#define BS_FMT_JSB_BLOCKS  2u /* journal superblock pair, blocks 2 and 3 */
#define BS_FMT_MIN_JOURNAL (2ull * 1024 * 1024)

/* Superblock (block 0 and block 1, the rest of each block is zero). */
struct bs_sb {
	char magic[8];	       /* 0: "KEELBS01" */
	uint32_t version;      /* 8: BS_FMT_VERSION */
	uint32_t block_size;   /* 12: 4096 */
	uint8_t uuid[16];      /* 16 */
	uint64_t dev_size;     /* 32: bytes the format covers */
	uint32_t object_size;  /* 40 */
	uint32_t pad0;	       /* 44 */
	uint64_t jsb_off;      /* 48: journal superblock pair, bytes */
	uint64_t journal_off;  /* 56 */
	uint64_t journal_size; /* 64 */
	uint64_t slot_off;     /* 72: slot table */
	uint64_t slot_blocks;  /* 80 */
	uint64_t meta_off;     /* 88: block-metadata area */
	uint64_t meta_blocks;  /* 96 */
	uint64_t data_off;     /* 104: data area */
	uint64_t nslots;       /* 112: object slots */
	uint32_t pad1;	       /* 120 */
	uint32_t crc;	       /* 124: crc32c of bytes 0..127 with crc = 0 */
};
_Static_assert(sizeof(struct bs_sb) == 128, "bs_sb is on disk");

#define BS_JSB_MAGIC 0x4253534a4c45454bull /* "KEELJSSB" */

/* Journal superblock (blocks 2 and 3, written alternately). */
struct bs_jsb {
	uint64_t magic;	   /* 0: BS_JSB_MAGIC */
	uint64_t gen;	   /* 8: write generation; the valid copy with the
			    *    larger gen is current */
	uint64_t tail_pos; /* 16: byte offset of the first live record in the ring */
	uint64_t tail_seq; /* 24: sequence number expected there */
	uint32_t pad;	   /* 32 */
	uint32_t crc;	   /* 36: crc32c of bytes 0..39 with crc = 0 */
};
_Static_assert(sizeof(struct bs_jsb) == 40, "bs_jsb is on disk");

/* Slot table entry: 32 bytes, 128 per block. All zero: free slot. */
struct bs_slot {
	uint64_t inode;	  /* 0 */
	uint64_t objno;	  /* 8 */
	uint64_t version; /* 16: object version */
	uint32_t mapped;  /* 24: blocks holding data (> 0 for a used slot) */
	uint32_t crc;	  /* 28: crc32c of bytes 0..27 */
};
_Static_assert(sizeof(struct bs_slot) == 32, "bs_slot is on disk");
#define BS_SLOTS_PER_BLOCK (4096u / sizeof(struct bs_slot))

/* Block metadata entry: 16 bytes per 4 KiB data block, 256 per block.
 * All zero: unmapped (reads as zeroes). */
struct bs_bmeta {
	uint64_t version;  /* 0: version of the write that stored the block, > 0 */
	uint32_t data_crc; /* 8: crc32c of the 4 KiB block */
	uint32_t crc;	   /* 12: crc32c of bytes 0..11 */
};
_Static_assert(sizeof(struct bs_bmeta) == 16, "bs_bmeta is on disk");
#define BS_BMETA_PER_BLOCK (4096u / sizeof(struct bs_bmeta))

#define BS_JREC_MAGIC	   0x4345524a4c45454bull /* "KEELJREC" */
#define BS_JREC_MAX_BLOCKS 256u			 /* BS_MAX_IO / 4096 */

enum bs_jrec_type {
	BS_JREC_WRITE = 1, /* header + length/4096 data blocks (read, no longer written) */
	BS_JREC_UNMAP = 2, /* discard / write-zeroes: header only (idem) */
	BS_JREC_WRAP = 3,  /* header only: the next record is at ring offset 0 */
	BS_JREC_GROUP = 4, /* header block of entries + the entries' data blocks */
};

#define BS_JREC_F_FREE_SLOT 1u /* UNMAP left the object empty: slot is free */

/*
 * Journal record header: one 4 KiB block; data blocks follow for WRITE.
 * Keel writes WRAP records in this form, and WRITE / UNMAP as entries of a
 * group record; replay still reads single WRITE / UNMAP records, which
 * journals written before group records hold.
 */
struct bs_jrec {
	uint64_t magic;	  /* 0: BS_JREC_MAGIC */
	uint64_t seq;	  /* 8: ring sequence number, +1 per record */
	uint32_t type;	  /* 16: enum bs_jrec_type */
	uint32_t flags;	  /* 20: BS_JREC_F_* */
	uint64_t inode;	  /* 24 */
	uint64_t objno;	  /* 32 */
	uint64_t version; /* 40: object version after this record */
	uint32_t slot;	  /* 48 */
	uint32_t offset;  /* 52: bytes within the object */
	uint32_t length;  /* 56: bytes */
	uint32_t mapped;  /* 60: object's mapped block count after this record */
	uint32_t pad;	  /* 64 */
	uint32_t crc;	  /* 68: crc32c of the whole header (1096 bytes), crc = 0 */
	uint32_t data_crcs[BS_JREC_MAX_BLOCKS]; /* 72: WRITE: crc32c of each data block */
};
_Static_assert(sizeof(struct bs_jrec) == 1096, "bs_jrec is on disk");

/*
 * Group record: one header block holding struct bs_jgrp and @count entries,
 * each a struct bs_jent followed, for a WRITE, by the crc32c of each of its
 * data blocks; then the data blocks of the WRITE entries, in entry order.
 * The group is one unit: valid only if its header and every data block
 * check out. The first 20 bytes line up with struct bs_jrec's.
 */
struct bs_jgrp {
	uint64_t magic; /* 0: BS_JREC_MAGIC */
	uint64_t seq;	/* 8: ring sequence number, +1 per record */
	uint32_t type;	/* 16: BS_JREC_GROUP */
	uint32_t count; /* 20: entries, >= 1 */
	uint32_t bytes; /* 24: header bytes in use: this struct and the entries */
	uint32_t crc;	/* 28: crc32c of those bytes with crc = 0 */
};
_Static_assert(sizeof(struct bs_jgrp) == 32, "bs_jgrp is on disk");

/* One mutation of a group: the fields of struct bs_jrec, same meaning. */
struct bs_jent {
	uint64_t inode;	      /* 0 */
	uint64_t objno;	      /* 8 */
	uint64_t version;     /* 16: object version after this entry */
	uint32_t slot;	      /* 24 */
	uint32_t offset;      /* 28: bytes within the object */
	uint32_t length;      /* 32: bytes */
	uint32_t mapped;      /* 36: object's mapped block count after this entry */
	uint16_t type;	      /* 40: BS_JREC_WRITE or BS_JREC_UNMAP */
	uint16_t flags;	      /* 42: BS_JREC_F_* */
	uint32_t pad;	      /* 44 */
	uint32_t data_crcs[]; /* 48: WRITE: length / 4096 entries */
};
_Static_assert(sizeof(struct bs_jent) == 48, "bs_jent is on disk");

#endif
