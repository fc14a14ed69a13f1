/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-vfront: a vhost-user-blk test frontend. It plays QEMU's part against
 * any vhost-user-blk backend (keel-export, qemu-storage-daemon): "guest
 * memory" is a memfd shared with the backend, the split virtqueues and
 * every request live in it, and the frontend drives them the way a guest's
 * virtio-blk driver would. Used for functional tests (verify), benchmarks
 * without a VM (bench) and the malicious-guest corpus (corpus).
 *
 * Modules (one job each):
 *   vf_proto.c   vhost-user messages: connect, negotiate, memory table,
 *                vring setup (vf_dev_*, vf_msg_*)
 *   vf_mem       guest memory (in vf_proto.c): memfd, regions, translation
 *   vf_ring.c    one split virtqueue in guest memory (vf_vq_*)
 *   vf_blk.c     virtio-blk requests on preallocated slots (vf_blk_*)
 *   vf_verify.c, vf_bench.c, vf_corpus.c, vf_main.c: the subcommands
 *
 * Threading: single-threaded; nothing here is thread-safe. Every function
 * returns 0 or -errno unless it says otherwise. Little-endian host only
 * (virtio 1.x and vhost-user are little-endian; checked at compile time).
 */
#ifndef KEEL_TESTS_VFRONT_VF_H
#define KEEL_TESTS_VFRONT_VF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "keel-vfront assumes a little-endian host");

/* ---- vhost-user wire format (docs/interop/vhost-user.rst) ---- */

#define VF_USER_VERSION	     0x1u
#define VF_FLAG_VERSION_MASK 0x3u
#define VF_FLAG_REPLY	     0x4u
#define VF_FLAG_NEED_REPLY   0x8u

enum vf_req_id {
	VF_GET_FEATURES = 1,
	VF_SET_FEATURES = 2,
	VF_SET_OWNER = 3,
	VF_RESET_OWNER = 4,
	VF_SET_MEM_TABLE = 5,
	VF_SET_VRING_NUM = 8,
	VF_SET_VRING_ADDR = 9,
	VF_SET_VRING_BASE = 10,
	VF_GET_VRING_BASE = 11,
	VF_SET_VRING_KICK = 12,
	VF_SET_VRING_CALL = 13,
	VF_SET_VRING_ERR = 14,
	VF_GET_PROTOCOL_FEATURES = 15,
	VF_SET_PROTOCOL_FEATURES = 16,
	VF_GET_QUEUE_NUM = 17,
	VF_SET_VRING_ENABLE = 18,
	VF_GET_CONFIG = 24,
	VF_SET_CONFIG = 25,
	VF_GET_INFLIGHT_FD = 31,
	VF_SET_INFLIGHT_FD = 32,
	VF_GET_MAX_MEM_SLOTS = 36,
};

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
#define VF_PF_MQ	     0
#define VF_PF_REPLY_ACK	     3
#define VF_PF_CONFIG	     9
#define VF_PF_INFLIGHT_SHMFD 12
/* The protocol features we use; anything else offered is left off. */
#define VF_PF_WANTED                                                                               \
	((1ull << VF_PF_MQ) | (1ull << VF_PF_REPLY_ACK) | (1ull << VF_PF_CONFIG) |                 \
	 (1ull << VF_PF_INFLIGHT_SHMFD))

/* Virtio feature bits (GET/SET_FEATURES). */
#define VF_F_BLK_SIZE_MAX	1
#define VF_F_BLK_SEG_MAX	2
#define VF_F_BLK_RO		5
#define VF_F_BLK_BLK_SIZE	6
#define VF_F_BLK_FLUSH		9
#define VF_F_BLK_TOPOLOGY	10
#define VF_F_BLK_CONFIG_WCE	11
#define VF_F_BLK_MQ		12
#define VF_F_BLK_DISCARD	13
#define VF_F_BLK_WRITE_ZEROES	14
#define VF_F_RING_INDIRECT_DESC 28
#define VF_F_RING_EVENT_IDX	29
#define VF_F_PROTOCOL_FEATURES	30 /* vhost-user: GET/SET_PROTOCOL_FEATURES supported */
#define VF_F_VERSION_1		32

#define VF_MAX_MSG_PAYLOAD 4096u /* our buffer; the corpus sends oversized tables */
#define VF_MAX_REGIONS	   8u	 /* VHOST_MEMORY_BASELINE_NREGIONS */
#define VF_MAX_FDS	   16u
#define VF_MAX_QUEUES	   16u
#define VF_MAX_QUEUE_SIZE  32768u /* split virtqueue limit */
#define VF_VRING_NOFD	   0x100u /* SET_VRING_KICK/CALL: no fd attached */

struct vf_msg_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* payload bytes that follow */
} __attribute__((packed));
_Static_assert(sizeof(struct vf_msg_hdr) == 12, "vhost-user header");

struct vf_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vf_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_uaddr; /* frontend virtual addresses, not guest-physical */
	uint64_t used_uaddr;
	uint64_t avail_uaddr;
	uint64_t log_gpa;
};
_Static_assert(sizeof(struct vf_vring_addr) == 40, "vring address message");

struct vf_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

struct vf_mem_table_hdr {
	uint32_t nregions;
	uint32_t padding;
	/* struct vf_mem_region[nregions] follows */
};

struct vf_config_hdr {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	/* config bytes follow */
};

/* The spec lists 20 bytes of fields; QEMU sends its C struct with the
 * tail padding (24 bytes), and backends expect that. */
struct vf_inflight_msg {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t padding;
};
_Static_assert(sizeof(struct vf_inflight_msg) == 24, "inflight message as QEMU sends it");

/* ---- virtio-blk (virtio 1.1, 5.2) ---- */

struct vf_blk_config {
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
_Static_assert(sizeof(struct vf_blk_config) == 60, "virtio_blk_config up to write zeroes");

#define VF_BLK_T_IN	      0
#define VF_BLK_T_OUT	      1
#define VF_BLK_T_FLUSH	      4
#define VF_BLK_T_GET_ID	      8
#define VF_BLK_T_DISCARD      11
#define VF_BLK_T_WRITE_ZEROES 13

#define VF_BLK_S_OK	0
#define VF_BLK_S_IOERR	1
#define VF_BLK_S_UNSUPP 2
#define VF_BLK_S_NONE	0xffu /* sentinel: the device wrote no status */

#define VF_BLK_ID_BYTES 20
#define VF_SECTOR	512u

struct vf_blk_req_hdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};
_Static_assert(sizeof(struct vf_blk_req_hdr) == 16, "virtio-blk request header");

struct vf_blk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags; /* bit 0: unmap (write-zeroes only) */
};
_Static_assert(sizeof(struct vf_blk_dwz_seg) == 16, "discard/write-zeroes segment");

/* ---- split virtqueue layout (virtio 1.1, 2.6) ---- */

#define VF_DESC_F_NEXT	    1
#define VF_DESC_F_WRITE	    2
#define VF_DESC_F_INDIRECT  4
#define VF_USED_F_NO_NOTIFY 1
/* EVENT_IDX: used_event lives after avail->ring[size], avail_event after
 * used->ring[size]. */

struct vf_desc {
	uint64_t addr; /* guest-physical */
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vf_desc) == 16, "virtq descriptor");

struct vf_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* [size], then used_event */
};

struct vf_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vf_used {
	uint16_t flags;
	uint16_t idx;
	struct vf_used_elem ring[]; /* [size], then avail_event */
};

/* ---- guest memory (vf_proto.c) ---- */

/*
 * One memfd mapped shared in this process. Split into @nregions (1 or 2)
 * regions announced with SET_MEM_TABLE: region 0 at guest-physical 0, region
 * 1 (the second half of the memfd, mmap_offset = half) at guest-physical
 * VF_MEM_GPA_HIGH, so a backend that confuses guest-physical addresses,
 * frontend addresses and file offsets reads the wrong bytes.
 */
#define VF_MEM_GPA_HIGH (4ull << 30)

struct vf_mem {
	int fd;
	uint8_t *base; /* the whole memfd, mapped MAP_SHARED */
	uint64_t size;
	unsigned int nregions;
	struct vf_mem_region region[2];
	uint64_t next_free[2]; /* bump allocator: next offset inside each region */
};

/* Create @size bytes (a multiple of 2 MiB) of guest memory in @nregions
 * (1 or 2). -EINVAL, or -errno from memfd_create/ftruncate/mmap. */
int vf_mem_init(struct vf_mem *m, uint64_t size, unsigned int nregions);
void vf_mem_destroy(struct vf_mem *m);

/* Carve @len bytes aligned to @align (a power of two) from region @region
 * (taken modulo nregions); zeroed. NULL when the region is full. Never
 * freed: allocations live as long as the memory. */
void *vf_mem_alloc(struct vf_mem *m, unsigned int region, uint64_t len, uint64_t align);

/* Guest-physical address of @p (which must come from vf_mem_alloc). */
uint64_t vf_mem_gpa(const struct vf_mem *m, const void *p);

/* Frontend pointer to [gpa, gpa + len), or NULL when not inside one region. */
void *vf_mem_ptr(const struct vf_mem *m, uint64_t gpa, uint64_t len);

/* ---- one split virtqueue (vf_ring.c) ---- */

struct vf_vq {
	unsigned int index;
	uint16_t size; /* power of two */
	struct vf_desc *desc;
	struct vf_avail *avail;
	struct vf_used *used;
	bool event_idx;	     /* VIRTIO_RING_F_EVENT_IDX negotiated */
	uint16_t avail_idx;  /* next avail->idx to publish */
	uint16_t kicked_idx; /* avail_idx at the last notification */
	uint16_t last_used;  /* next used->idx entry to reap */
	uint16_t free_head;
	uint16_t num_free;
	uint16_t *chain_next; /* our own chain/free links, never read from desc */
	uint16_t *chain_len;  /* per in-flight head: descriptors it holds */
	void **token;	      /* per in-flight head: the caller's request */
	int kick_fd;	      /* eventfds, EFD_NONBLOCK */
	int call_fd;
};

/* Lay out a queue of @size (a power of two <= VF_MAX_QUEUE_SIZE) descriptors
 * in @m and create its eventfds. -EINVAL, -ENOMEM, -errno from eventfd. */
int vf_vq_init(struct vf_vq *vq, struct vf_mem *m, unsigned int index, uint16_t size);
void vf_vq_destroy(struct vf_vq *vq);

/* Take @n descriptor ids for one chain; ids[0] is the head. The caller fills
 * vq->desc[ids[i]] itself (vf_vq_chain() does it for ordinary chains).
 * -ENOSPC when fewer than @n are free. */
int vf_vq_alloc(struct vf_vq *vq, unsigned int n, uint16_t *ids);

/* Put @head (from vf_vq_alloc) on the avail ring with @token (non-NULL) and
 * make it visible (release store of avail->idx). Does not notify. */
void vf_vq_publish(struct vf_vq *vq, uint16_t head, void *token);

/* Notify the device of what was published since the last kick, unless it
 * suppressed notifications (VRING_USED_F_NO_NOTIFY, or its avail_event
 * with EVENT_IDX). -errno from write. */
int vf_vq_kick(struct vf_vq *vq);

/* Before sleeping on the call fd: with EVENT_IDX, ask for a notification
 * at the next used entry. Returns true when entries arrived meanwhile
 * (reap again instead of sleeping). Always false without EVENT_IDX. */
bool vf_vq_arm(struct vf_vq *vq);

/* Reap one used entry: 1 with *token and *len set (the chain is freed), 0
 * when none, -EPROTO when the device returned an id that is out of range or
 * not in flight (a backend bug; the entry is skipped). */
int vf_vq_reap(struct vf_vq *vq, void **token, uint32_t *len);

/* Drain the call eventfd (non-blocking). */
void vf_vq_clear_call(struct vf_vq *vq);

/* Descriptors in flight. */
static inline unsigned int vf_vq_inflight(const struct vf_vq *vq)
{
	return (unsigned int)vq->size - vq->num_free;
}

/* ---- the vhost-user connection (vf_proto.c) ---- */

struct vf_dev_opts {
	const char *socket;
	unsigned int queues;	 /* wanted; capped by the backend's GET_QUEUE_NUM */
	unsigned int queue_size; /* power of two */
	uint64_t mem_size;
	unsigned int regions; /* 1 or 2 */
	bool indirect;	      /* negotiate VIRTIO_RING_F_INDIRECT_DESC if offered */
	bool event_idx;	      /* negotiate VIRTIO_RING_F_EVENT_IDX if offered */
	int timeout_ms;	      /* for every reply and completion wait */
};

struct vf_dev {
	int sock;
	int timeout_ms;
	uint64_t dev_features; /* offered by the backend */
	uint64_t features;     /* negotiated */
	uint64_t dev_protocol_features;
	uint64_t protocol_features;
	unsigned int max_queues; /* GET_QUEUE_NUM (1 without MQ) */
	unsigned int num_queues; /* set up */
	uint16_t queue_size;
	bool have_config;
	struct vf_blk_config cfg;
	struct vf_mem mem;
	int inflight_fd;
	void *inflight;
	uint64_t inflight_size;
	uint64_t inflight_offset;
	struct vf_vq vq[VF_MAX_QUEUES];
};

static inline bool vf_has_feature(const struct vf_dev *d, unsigned int bit)
{
	return d->features & (1ull << bit);
}

static inline bool vf_has_pf(const struct vf_dev *d, unsigned int bit)
{
	return d->protocol_features & (1ull << bit);
}

/* Connect to the backend's unix socket (-errno from socket/connect, e.g.
 * -ECONNREFUSED when nothing listens). Everything else zeroed. */
int vf_dev_connect(struct vf_dev *d, const char *path, int timeout_ms);

/* The whole setup a VM start does: vf_dev_negotiate(), guest memory,
 * vf_dev_set_mem_table(), inflight region when negotiated, and
 * vf_dev_start_queue() for min(opts->queues, max_queues) queues. Errors as
 * the steps; a failure leaves @d connected, for vf_dev_close(). */
int vf_dev_open(struct vf_dev *d, const struct vf_dev_opts *opts);

/* SET_OWNER, GET/SET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
 * GET_CONFIG. Device features we take: VERSION_1, PROTOCOL_FEATURES and
 * the blk features we know (flush, discard, write zeroes, MQ, ...), plus
 * those of @ring_features (INDIRECT_DESC, EVENT_IDX bits) the backend
 * offers. -EPROTO when the backend lacks VERSION_1 or PROTOCOL_FEATURES, or
 * sends a malformed reply. */
int vf_dev_negotiate(struct vf_dev *d, uint64_t ring_features);

/* The ring features @o asks for, as vf_dev_negotiate() takes them. */
static inline uint64_t vf_ring_features(const struct vf_dev_opts *o)
{
	return (o->indirect ? 1ull << VF_F_RING_INDIRECT_DESC : 0) |
	       (o->event_idx ? 1ull << VF_F_RING_EVENT_IDX : 0);
}

/* Announce d->mem with SET_MEM_TABLE (one fd per region). */
int vf_dev_set_mem_table(struct vf_dev *d);

/* GET_INFLIGHT_FD + SET_INFLIGHT_FD for @queues queues of d->queue_size;
 * no-op without INFLIGHT_SHMFD. */
int vf_dev_setup_inflight(struct vf_dev *d, unsigned int queues);

/* Lay out queue @q in guest memory and send SET_VRING_NUM/BASE/ADDR/KICK/
 * CALL/ENABLE. */
int vf_dev_start_queue(struct vf_dev *d, unsigned int q);

/* Drop the connection with requests in flight and come back as QEMU does
 * after losing its backend: keep guest memory, rings and the inflight
 * region; negotiate (the same features, or -EPROTO), SET_INFLIGHT_FD with
 * the region, SET_MEM_TABLE, every ring again with base = used->idx, and
 * a kick. The backend resubmits what it had taken and not completed.
 * -EOPNOTSUPP without an inflight region; otherwise errors as the
 * messages (-EREMOTEIO: refused, e.g. while the old requests drain). */
int vf_dev_reconnect(struct vf_dev *d, const char *path);

/* Close the socket, free the queues, the memory and the inflight region. */
void vf_dev_close(struct vf_dev *d);

/* Send one message: header {request, flags, size} and @len payload bytes
 * with @nfds descriptors attached. @size is sent as given, so the corpus
 * can lie about it; ordinary callers pass size == len. -ECONNRESET when
 * the backend has gone, -errno from sendmsg. */
int vf_msg_send_raw(struct vf_dev *d, uint32_t request, uint32_t flags, uint32_t size,
		    const void *payload, uint32_t len, const int *fds, unsigned int nfds);

/* Wait up to d->timeout_ms for a reply to @request: copies up to @cap
 * payload bytes into @payload, sets *len (if not NULL) to the payload size
 * and *fd (if not NULL) to an attached descriptor or -1. -ETIMEDOUT,
 * -ECONNRESET (backend closed), -EPROTO (not a reply to @request, or
 * larger than @cap). */
int vf_msg_recv_reply(struct vf_dev *d, uint32_t request, void *payload, uint32_t cap,
		      uint32_t *len, int *fd);

/* A request that returns a u64 (GET_FEATURES, GET_PROTOCOL_FEATURES,
 * GET_QUEUE_NUM). Errors as vf_msg_recv_reply. */
int vf_msg_get_u64(struct vf_dev *d, uint32_t request, uint64_t *val);

/* A request without a reply. With REPLY_ACK negotiated it sets NEED_REPLY
 * and waits for the ack: -EREMOTEIO when the backend answers non-zero
 * (rejected). Errors as vf_msg_send_raw and vf_msg_recv_reply. */
int vf_msg_set(struct vf_dev *d, uint32_t request, const void *payload, uint32_t len,
	       const int *fds, unsigned int nfds);

/* Is the connection still open? Waits up to @wait_ms for the backend to
 * close it (EOF or reset on the socket). Does not consume messages. */
bool vf_dev_alive(struct vf_dev *d, int wait_ms);

const char *vf_req_name(uint32_t request);

/* ---- virtio-blk requests (vf_blk.c) ---- */

struct vf_io;
typedef void (*vf_io_done)(struct vf_io *io, void *arg);

/* One request slot, preallocated in guest memory at vf_blk_init(). */
struct vf_io {
	unsigned int queue;
	struct vf_blk_req_hdr *hdr;
	uint8_t *status;
	uint8_t *data;
	uint32_t data_cap;
	struct vf_desc *indirect; /* this slot's indirect table */
	/* the request in flight */
	uint32_t type;
	uint64_t sector;
	uint32_t len;	   /* data bytes */
	uint32_t used_len; /* written by the device, as reported in the used ring */
	uint8_t result;	   /* status byte on completion (VF_BLK_S_NONE: none written) */
	bool busy;
	uint64_t t_submit_ns;
	vf_io_done done;
	void *arg;
	uint64_t user; /* free for the caller */
	struct vf_io *next_free;
};

struct vf_blk {
	struct vf_dev *dev;
	struct vf_io *ios;	  /* queues * depth slots */
	struct vf_io **free_list; /* per queue */
	unsigned int depth;	  /* slots per queue */
	uint32_t data_cap;
	uint32_t seg_bytes; /* split the data buffer into descriptors of this size (0: one) */
	bool indirect;	    /* chains through the slot's indirect table */
	bool spin;	    /* vf_blk_poll() busy-polls instead of sleeping in poll() */
	unsigned int inflight;
	uint64_t protocol_errors; /* bad used-ring entries seen */
};

/* Preallocate @depth slots per queue of d->num_queues, each with a data
 * buffer of @data_cap bytes (4 KiB aligned, alternating memory regions).
 * @indirect needs VIRTIO_RING_F_INDIRECT_DESC negotiated (-EOPNOTSUPP).
 * -ENOMEM when guest memory is too small. */
int vf_blk_init(struct vf_blk *b, struct vf_dev *d, unsigned int depth, uint32_t data_cap,
		bool indirect);
void vf_blk_destroy(struct vf_blk *b);

/* A free slot on @queue, or NULL when all @depth are in flight. */
struct vf_io *vf_blk_get(struct vf_blk *b, unsigned int queue);
/* Return a slot that was not submitted (or has completed). */
void vf_blk_put(struct vf_blk *b, struct vf_io *io);

/* Build the chain (header, data, status) for io->type/sector/len and submit
 * it on io->queue; @done fires from vf_blk_poll() (never from here). Data
 * is device-writable for IN and GET_ID, device-readable otherwise, absent
 * when len is 0. -EINVAL (len > data_cap), -ENOSPC (ring full), -errno
 * from the kick. The slot returns to the free list after @done returns,
 * unless @done resubmits it. */
int vf_blk_submit(struct vf_blk *b, struct vf_io *io, vf_io_done done, void *arg);

/* Wait up to @timeout_ms (0: do not block) for completions on every queue
 * and run their callbacks. Returns the number completed, -ETIMEDOUT when
 * requests are in flight and none completed in time, -ECONNRESET when the
 * backend closed the connection. */
int vf_blk_poll(struct vf_blk *b, int timeout_ms);

/* Submit one request on @queue and wait for it: returns the status byte
 * (>= 0) or -errno (as vf_blk_submit / vf_blk_poll; -EBUSY when no slot is
 * free). @buf (len bytes) is copied into the slot before submission (for
 * reads too, so a caller can poison the buffer) and back out after reads. */
int vf_blk_sync(struct vf_blk *b, unsigned int queue, uint32_t type, uint64_t sector, void *buf,
		uint32_t len);

uint64_t vf_now_ns(void);

/* splitmix64: the PRNG of every subcommand (seeded, replayable). */
static inline uint64_t vf_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- subcommands (vf_main.c, vf_verify.c, vf_bench.c, vf_corpus.c) ---- */

enum vf_rw {
	VF_RW_RANDREAD,
	VF_RW_RANDWRITE,
	VF_RW_RANDRW,
	VF_RW_READ,
	VF_RW_WRITE,
};

/* Parsed command line, shared by every subcommand. */
struct vf_cli {
	struct vf_dev_opts dev;
	unsigned int iodepth; /* per queue */
	uint32_t bs;
	uint64_t count; /* requests (verify); 0: use runtime */
	double runtime_s;
	uint64_t seed;
	bool json;
	bool spin; /* busy-poll the used rings instead of sleeping in poll() */
	enum vf_rw rw;
	unsigned int rwmixread; /* percent reads for randrw */
	const char *corpus_case;
	bool list;
	int pid;	    /* backend pid to check after each corpus case (0: none) */
	uint64_t span;	    /* verify: bytes from offset 0 to exercise (0: min(device, 1 GiB)) */
	uint64_t reconnect; /* verify: drop and resume the connection every N requests */
};

/*
 * The self-describing 4 KiB block (vf_verify.c): magic "KVFBLK01", the
 * block's byte offset, the write's sequence number and the run's seed (4
 * little-endian u64s), PRNG filler derived from all three, and the
 * crc32c of bytes 0..4091 in the last 4 bytes. tests/vfront/vflib.py
 * reads the same format from the backing file.
 */
#define VF_PAT_BLOCK 4096u

enum vf_pat_result {
	VF_PAT_OK,	   /* a valid block for this offset and seed */
	VF_PAT_ZERO,	   /* all zeroes */
	VF_PAT_CORRUPT,	   /* bad magic or crc */
	VF_PAT_MISPLACED,  /* valid, but written for another offset */
	VF_PAT_OTHER_SEED, /* valid, but from another run */
};

void vf_pattern_fill(void *block, uint64_t offset, uint64_t seq, uint64_t seed);
/* Classify @block read at @offset; *seq gets the sequence of a valid block. */
enum vf_pat_result vf_pattern_check(const void *block, uint64_t offset, uint64_t seed,
				    uint64_t *seq);
const char *vf_pat_result_name(enum vf_pat_result r);

int vf_cmd_verify(const struct vf_cli *cli);
int vf_cmd_bench(const struct vf_cli *cli);
int vf_cmd_corpus(const struct vf_cli *cli);

/* Capacity in bytes from the config space (0 without CONFIG). */
static inline uint64_t vf_capacity(const struct vf_dev *d)
{
	return d->have_config ? d->cfg.capacity * VF_SECTOR : 0;
}

#endif
