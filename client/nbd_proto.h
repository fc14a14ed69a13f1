/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nbd_proto: NBD wire constants and structures (fixed newstyle handshake,
 * simple replies), as the NBD protocol document defines them. Every
 * multi-byte field is big-endian on the wire; the structs below are the
 * exact wire layout (packed, sizes asserted) and hold raw wire values: use
 * be16toh()/be32toh()/be64toh() to read them. Request handles are opaque
 * and echoed byte for byte.
 */
#ifndef KEEL_CLIENT_NBD_PROTO_H
#define KEEL_CLIENT_NBD_PROTO_H

#include <stdint.h>

/* Handshake magics ("NBDMAGIC", "IHAVEOPT") and the option reply magic. */
#define NBD_INIT_MAGIC 0x4e42444d41474943ull
#define NBD_OPTS_MAGIC 0x49484156454f5054ull
#define NBD_REP_MAGIC  0x0003e889045565a9ull

/* Handshake flags (server, 16 bits) and client flags (32 bits). */
#define NBD_FLAG_FIXED_NEWSTYLE	  (1u << 0)
#define NBD_FLAG_NO_ZEROES	  (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES	  (1u << 1)

/* Options. */
#define NBD_OPT_EXPORT_NAME	  1u
#define NBD_OPT_ABORT		  2u
#define NBD_OPT_LIST		  3u
#define NBD_OPT_STARTTLS	  5u
#define NBD_OPT_INFO		  6u
#define NBD_OPT_GO		  7u
#define NBD_OPT_STRUCTURED_REPLY  8u
#define NBD_OPT_LIST_META_CONTEXT 9u
#define NBD_OPT_SET_META_CONTEXT  10u

/* Option reply types; errors have bit 31 set. */
#define NBD_REP_ACK		    1u
#define NBD_REP_SERVER		    2u
#define NBD_REP_INFO		    3u
#define NBD_REP_FLAG_ERROR	    (1u << 31)
#define NBD_REP_ERR_UNSUP	    (NBD_REP_FLAG_ERROR | 1u)
#define NBD_REP_ERR_POLICY	    (NBD_REP_FLAG_ERROR | 2u)
#define NBD_REP_ERR_INVALID	    (NBD_REP_FLAG_ERROR | 3u)
#define NBD_REP_ERR_PLATFORM	    (NBD_REP_FLAG_ERROR | 4u)
#define NBD_REP_ERR_TLS_REQD	    (NBD_REP_FLAG_ERROR | 5u)
#define NBD_REP_ERR_UNKNOWN	    (NBD_REP_FLAG_ERROR | 6u)
#define NBD_REP_ERR_SHUTDOWN	    (NBD_REP_FLAG_ERROR | 7u)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8u)
#define NBD_REP_ERR_TOO_BIG	    (NBD_REP_FLAG_ERROR | 9u)

/* NBD_REP_INFO payload types (first 16 bits of the payload). */
#define NBD_INFO_EXPORT	     0u
#define NBD_INFO_NAME	     1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE  3u

/* Transmission flags (16 bits). */
#define NBD_FLAG_HAS_FLAGS	   (1u << 0)
#define NBD_FLAG_READ_ONLY	   (1u << 1)
#define NBD_FLAG_SEND_FLUSH	   (1u << 2)
#define NBD_FLAG_SEND_FUA	   (1u << 3)
#define NBD_FLAG_ROTATIONAL	   (1u << 4)
#define NBD_FLAG_SEND_TRIM	   (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF	   (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN	   (1u << 8)

/* Transmission magics, commands and command flags. */
#define NBD_REQUEST_MAGIC      0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u

#define NBD_CMD_READ	     0u
#define NBD_CMD_WRITE	     1u
#define NBD_CMD_DISC	     2u
#define NBD_CMD_FLUSH	     3u
#define NBD_CMD_TRIM	     4u
#define NBD_CMD_CACHE	     5u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_BLOCK_STATUS 7u

#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)
#define NBD_CMD_FLAG_DF	       (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE   (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* Error values in simple replies (Linux errno numbers, fixed by the spec). */
#define NBD_EPERM     1u
#define NBD_EIO	      5u
#define NBD_ENOMEM    12u
#define NBD_EINVAL    22u
#define NBD_ENOSPC    28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP   95u
#define NBD_ESHUTDOWN 108u

/* Export-name replies without NBD_FLAG_C_NO_ZEROES end in this many zeroes. */
#define NBD_EXPORT_NAME_PAD 124u

/* S: greeting, right after accept. */
struct nbd_greeting {
	uint64_t init_magic; /* NBD_INIT_MAGIC */
	uint64_t opts_magic; /* NBD_OPTS_MAGIC */
	uint16_t hs_flags;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_greeting) == 18, "nbd_greeting wire size");

/* C: one option header; @length bytes of data follow. */
struct nbd_opt_hdr {
	uint64_t magic; /* NBD_OPTS_MAGIC */
	uint32_t option;
	uint32_t length;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_opt_hdr) == 16, "nbd_opt_hdr wire size");

/* S: one option reply header; @length bytes of data follow. */
struct nbd_opt_reply {
	uint64_t magic; /* NBD_REP_MAGIC */
	uint32_t option;
	uint32_t type;
	uint32_t length;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_opt_reply) == 20, "nbd_opt_reply wire size");

/* S: the answer to NBD_OPT_EXPORT_NAME (the pad only without NO_ZEROES). */
struct nbd_export_name_reply {
	uint64_t size;
	uint16_t flags;
	uint8_t pad[NBD_EXPORT_NAME_PAD];
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_export_name_reply) == 134, "nbd_export_name_reply wire size");

/* NBD_REP_INFO payloads. */
struct nbd_info_export {
	uint16_t type; /* NBD_INFO_EXPORT */
	uint64_t size;
	uint16_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_info_export) == 12, "nbd_info_export wire size");

struct nbd_info_block_size {
	uint16_t type; /* NBD_INFO_BLOCK_SIZE */
	uint32_t min_block;
	uint32_t pref_block;
	uint32_t max_block;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_info_block_size) == 14, "nbd_info_block_size wire size");

/* C: one transmission request; WRITE is followed by @length bytes. */
struct nbd_request {
	uint32_t magic; /* NBD_REQUEST_MAGIC */
	uint16_t flags;
	uint16_t type;
	uint64_t handle; /* opaque, echoed */
	uint64_t offset;
	uint32_t length;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_request) == 28, "nbd_request wire size");

/* S: simple reply; a successful READ's data follows. */
struct nbd_simple_reply {
	uint32_t magic; /* NBD_SIMPLE_REPLY_MAGIC */
	uint32_t error;
	uint64_t handle;
} __attribute__((packed));
_Static_assert(sizeof(struct nbd_simple_reply) == 16, "nbd_simple_reply wire size");

#endif
