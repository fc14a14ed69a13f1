/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio_blk: the virtio-blk request parser, independent of the transport
 * (vhost-user today). Given one request's buffers as iovecs (the
 * device-readable ones first, then the device-writable ones, as a
 * virtqueue delivers them) it validates everything the guest wrote (the
 * 16-byte header, the status byte, the type, sector ranges against the
 * capacity with overflow checks, 4096-byte alignment, discard and
 * write-zeroes segment arrays) and produces a parsed request the transport
 * glue runs on a blk_dev, or a status to answer at once.
 *
 * Pure functions on caller memory: no allocation, no I/O, any thread.
 * The iovecs point into guest memory that the guest may change at any
 * time: every multi-byte field is copied out once before it is checked.
 */
#ifndef KEEL_CLIENT_VIRTIO_BLK_H
#define KEEL_CLIENT_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "client/blk_dev.h"

/* Request types (virtio 1.2, 5.2.6). */
#define VIRTIO_BLK_T_IN		  0u
#define VIRTIO_BLK_T_OUT	  1u
#define VIRTIO_BLK_T_FLUSH	  4u
#define VIRTIO_BLK_T_GET_ID	  8u
#define VIRTIO_BLK_T_DISCARD	  11u
#define VIRTIO_BLK_T_WRITE_ZEROES 13u

/* Status byte values. */
#define VIRTIO_BLK_S_OK	    0u
#define VIRTIO_BLK_S_IOERR  1u
#define VIRTIO_BLK_S_UNSUPP 2u

/* Feature bits (device-specific part). */
#define VIRTIO_BLK_F_SIZE_MAX	  1u
#define VIRTIO_BLK_F_SEG_MAX	  2u
#define VIRTIO_BLK_F_RO		  5u
#define VIRTIO_BLK_F_BLK_SIZE	  6u
#define VIRTIO_BLK_F_FLUSH	  9u
#define VIRTIO_BLK_F_TOPOLOGY	  10u
#define VIRTIO_BLK_F_MQ		  12u
#define VIRTIO_BLK_F_DISCARD	  13u
#define VIRTIO_BLK_F_WRITE_ZEROES 14u

#define VIRTIO_BLK_SECTOR	   512u
#define VIRTIO_BLK_WZ_F_UNMAP	   1u
#define VIRTIO_BLK_MAX_DWZ_SEGS	   16u	      /* discard / write-zeroes segments per request */
#define VIRTIO_BLK_MAX_DWZ_SECTORS (1u << 22) /* 2 GiB per segment */
/* Data buffers per read/write: blk_dev takes BLK_DEV_IOV_MAX; we advertise
 * seg_max so that a conforming driver (header + data + status) fits. */
#define VIRTIO_BLK_SEG_MAX  (BLK_DEV_IOV_MAX - 2)
#define VIRTIO_BLK_SIZE_MAX (1u << 20) /* advertised per-segment byte limit */

/* Wire structures, little-endian (x86 only: no byte swapping). */
struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};
_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio_blk_outhdr");

struct virtio_blk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};
_Static_assert(sizeof(struct virtio_blk_dwz_seg) == 16, "virtio_blk_dwz_seg");

/* Device configuration space (virtio 1.2, 5.2.4), the part we fill. */
struct virtio_blk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_config) == 60, "virtio_blk_config");

/* What the parser checks requests against. */
struct virtio_blk_geom {
	uint64_t capacity; /* bytes, a multiple of BLK_DEV_BLOCK */
	bool read_only;
	bool flush, discard, write_zeroes; /* types offered (others: UNSUPP) */
};

enum virtio_blk_op {
	VIRTIO_BLK_OP_NONE = 0, /* answer @status at once, no I/O */
	VIRTIO_BLK_OP_READ,
	VIRTIO_BLK_OP_WRITE,
	VIRTIO_BLK_OP_FLUSH,
	VIRTIO_BLK_OP_GET_ID,
	VIRTIO_BLK_OP_DISCARD,
	VIRTIO_BLK_OP_WRITE_ZEROES,
};

struct virtio_blk_seg {
	uint64_t offset, length; /* bytes, checked against the geometry */
};

struct virtio_blk_req {
	enum virtio_blk_op op;
	uint8_t status;	     /* for OP_NONE: VIRTIO_BLK_S_IOERR or _UNSUPP */
	uint8_t *status_ptr; /* the status byte in guest memory */
	uint64_t offset;     /* READ/WRITE: bytes */
	uint64_t length;     /* READ/WRITE: bytes; GET_ID: buffer bytes */
	struct iovec *data;  /* READ/WRITE/GET_ID: points into the caller's iovecs */
	int ndata;	     /* 1..BLK_DEV_IOV_MAX */
	uint32_t nsegs;	     /* DISCARD/WRITE_ZEROES */
	struct virtio_blk_seg segs[VIRTIO_BLK_MAX_DWZ_SEGS];
	uint32_t in_len; /* bytes the device writes on success (used.len) */
};

/*
 * Parse one request. @iov holds @out_num device-readable entries followed
 * by @in_num device-writable ones; the parser trims entries in place (the
 * header and the status byte) and points req->data into @iov.
 * Returns 0 with req->op set (OP_NONE + status for a request to refuse:
 * bad sector range or alignment -> IOERR, unknown type or flag -> UNSUPP,
 * write to a read-only device -> IOERR), or -EINVAL when the request is so
 * malformed that no status byte can be located (no device-writable byte):
 * the caller completes it with used.len 0.
 */
int virtio_blk_parse(const struct virtio_blk_geom *g, struct iovec *iov, unsigned int out_num,
		     unsigned int in_num, struct virtio_blk_req *req);

/* GET_ID: copy @serial (BLK_DEV_ID_LEN bytes, NUL-padded) into req->data,
 * at most req->length bytes. Returns the bytes copied. */
uint32_t virtio_blk_fill_id(struct virtio_blk_req *req, const char *serial);

/* Fill the configuration space for @g with @num_queues queues. */
void virtio_blk_fill_config(const struct virtio_blk_geom *g, unsigned int num_queues,
			    struct virtio_blk_config *cfg);

/* The one place a blk_dev result becomes a virtio status. */
uint8_t virtio_blk_status(int res);

#endif
