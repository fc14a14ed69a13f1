/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xrdma_core: the RDMA transport's logic without a single verbs call.
 *
 * One core per connection turns the xport byte stream into RDMA messages and
 * back: credit-based flow control, receive/send slot accounting, large-payload
 * buffers and the framing of a stream across SEND messages and RDMA READs.
 * common/xport_rdma.c drives it with real verbs; tests drive two cores
 * against each other through a fake struct xrdma_verbs.
 *
 * Wire (inside one RC connection; little-endian, docs/rdma.md):
 *
 *   every SEND = 8-byte header { u8 type, u8 version, u16 credits, u32 len }
 *                followed by len bytes of body
 *   DATA       body = the next len bytes of the stream
 *   READ_REQ   body = { u64 addr, u32 rkey, u32 len, u32 id }: the next len
 *              bytes of the stream are in the sender's buffer id (a large
 *              send buffer, or with id >= XRDMA_ZC_ID0 the sender's caller's
 *              own memory: zero copy); the receiver RDMA READs them (in
 *              pieces as its rx buffer frees up) and answers READ_DONE
 *   READ_DONE  body = { u32 id }: buffer id may be reused
 *   CREDIT     no body
 *
 * `credits` in every header returns that many receive slots to the peer.
 * A SEND is only posted against a credit, so the receiver never runs out of
 * posted receives (no RNR). The last credit is kept for CREDIT messages,
 * which only go out when they return something: credits cannot deadlock.
 *
 * Everything here runs on the connection's reactor thread. Functions return
 * 0 or -errno; a core that returned an error must be stopped by its owner.
 */
#ifndef KEEL_COMMON_XRDMA_CORE_H
#define KEEL_COMMON_XRDMA_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/xport.h"

#define XRDMA_VERSION	     1
#define XRDMA_HDR_SIZE	     8
#define XRDMA_READ_REQ_BODY  20
#define XRDMA_READ_DONE_BODY 4
#define XRDMA_MAX_SLOTS	     256
#define XRDMA_MAX_BIG	     32
#define XRDMA_MAX_BIG_SIZE   (4u << 20)
#define XRDMA_MIN_SLOT_SIZE  256
#define XRDMA_MAX_SLOT_SIZE  (1u << 20)
/* READ_REQ ids from XRDMA_ZC_ID0: the piece is read from the caller's
 * memory (zero copy); at most XRDMA_MAX_ZC of them in flight. */
#define XRDMA_ZC_ID0 0x10000u
#define XRDMA_MAX_ZC 32
/* READ_REQs one side may have in flight: READ_DONEs it can be owed. */
#define XRDMA_MAX_READS (XRDMA_MAX_BIG + XRDMA_MAX_ZC)

/* rdma_cm private data of the connect request and the accept. */
#define XRDMA_CM_MAGIC 0x4d44524bu /* "KRDM" */
#define XRDMA_CM_SIZE  12

enum xrdma_msg_type {
	XRDMA_MSG_DATA = 1,
	XRDMA_MSG_READ_REQ = 2,
	XRDMA_MSG_READ_DONE = 3,
	XRDMA_MSG_CREDIT = 4,
};

/* Sizes of one connection. Both sides announce slots and slot_size in the
 * rdma_cm private data; a sender never exceeds the peer's. */
struct xrdma_geom {
	uint32_t slots;	    /* receive slots posted = credits the peer starts with; also tx slots */
	uint32_t slot_size; /* bytes per slot, header included */
	uint32_t big_count; /* large send buffers (RDMA READ sources) */
	uint32_t big_size;  /* bytes per large buffer */
	uint32_t read_min;  /* an iovec remainder this large goes by RDMA READ */
	size_t rx_size;	    /* the stream receive buffer (the owner's rx_size) */
};

/* The production sizes (docs/rdma.md). */
void xrdma_geom_default(struct xrdma_geom *g, size_t rx_size);
/* 0 or -EINVAL naming nothing: sizes out of range or inconsistent. */
int xrdma_geom_check(const struct xrdma_geom *g);

/* The connection parameters exchanged through rdma_cm private data. */
struct xrdma_cm_params {
	uint16_t version;
	uint16_t slots;
	uint32_t slot_size;
};
void xrdma_cm_encode(const struct xrdma_cm_params *p, uint8_t out[XRDMA_CM_SIZE]);
/* -EPROTO: bad magic, short, slots < 2 or > XRDMA_MAX_SLOTS, slot size out of
 * range; -EPROTONOSUPPORT: another version. */
int xrdma_cm_decode(const uint8_t *buf, size_t len, struct xrdma_cm_params *p);

struct xrdma_core;

/* What the core asks of the verbs layer. Each returns 0 (the matching
 * xrdma_core_*_done() call follows exactly once, unless the connection
 * fails first) or -errno (nothing was posted). */
struct xrdma_verbs {
	/* Post rx slot @slot (k->rx_slots + slot * slot_size) as a receive. */
	int (*post_recv)(struct xrdma_core *k, uint32_t slot);
	/* SEND @len bytes of tx slot @slot. */
	int (*post_send)(struct xrdma_core *k, uint32_t slot, uint32_t len);
	/* RDMA READ @len bytes at the peer's @raddr/@rkey into k->rx_buf + @rx_off. */
	int (*post_read)(struct xrdma_core *k, uint64_t raddr, uint32_t rkey, uint32_t len,
			 size_t rx_off);
	/* Stream bytes arrived (the owner's on_recv); return bytes consumed or
	 * -errno. May call xrdma_core_send() or stop the core. */
	ssize_t (*deliver)(struct xrdma_core *k, const uint8_t *data, size_t len);
	/* Optional (zero copy): may the peer RDMA READ [addr, addr + len)
	 * directly? 0 and its *rkey, or -errno (the bytes are copied into a
	 * large buffer instead). */
	int (*mem_key)(struct xrdma_core *k, const void *addr, size_t len, uint32_t *rkey);
};

struct xrdma_stats {
	uint64_t msgs_out, msgs_in;    /* SENDs posted / received */
	uint64_t bytes_out, bytes_in;  /* stream bytes */
	uint64_t inline_bytes_out;     /* stream bytes carried in DATA */
	uint64_t read_bytes_out;       /* stream bytes the peer RDMA READ */
	uint64_t zc_bytes_out;	       /* of those, from the caller's memory */
	uint64_t zc_exhausted;	       /* copied: every zero-copy id was in use */
	uint64_t reads, read_bytes_in; /* RDMA READs done here */
	uint64_t credit_msgs_out;      /* CREDIT-only messages */
	uint64_t credit_stalls;	       /* output waited for credits */
};

struct xrdma_core {
	const struct xrdma_verbs *verbs;
	void *ctx; /* the verbs layer's */
	struct xrdma_geom g;
	uint32_t peer_slots, peer_slot_size;

	/* Memory, allocated by xrdma_core_init(); the verbs layer registers it. */
	uint8_t *rx_slots; /* g.slots x g.slot_size */
	uint8_t *tx_slots; /* g.slots x g.slot_size */
	uint8_t *big;	   /* g.big_count x g.big_size */
	uint8_t *rx_buf;   /* g.rx_size: the stream as the owner sees it */
	uint32_t big_rkey; /* set by the verbs layer: the rkey of big */

	/* Credits. */
	uint32_t peer_credits;	/* SENDs we may post */
	uint32_t grant_pending; /* receives reposted, not yet announced */

	/* Receive slots: posted, or holding a message in rxq (in arrival order). */
	uint32_t rx_posted;
	uint32_t *rx_len; /* per slot: body length of the message it holds */
	uint8_t *rx_type; /* per slot */
	uint32_t *rxq;	  /* FIFO of slots holding DATA / READ_REQ */
	uint32_t rxq_head, rxq_count;
	uint32_t rx_data_off; /* bytes of the head DATA already copied */
	/* The head READ_REQ being read. */
	bool rd_inflight;
	uint32_t rd_done, rd_len; /* bytes read so far, in flight */

	/* The stream receive buffer: unconsumed bytes are [rx_start, rx_end). */
	size_t rx_start, rx_end;
	bool rx_fresh; /* bytes arrived since the owner last saw the buffer */

	/* Send side. */
	uint32_t *tx_free; /* stack of free tx slots */
	uint32_t tx_nfree;
	/*
	 * A send completes (its callback, releasing the caller's memory) when
	 * the peer has everything: the SEND carrying its last byte completed
	 * (tx_sends of that slot), and every large piece of it, copied or in
	 * place, was read (READ_DONE of its id). xport_send.held counts what
	 * is still awaited.
	 */
	uint32_t big_busy; /* bitmask of large buffers the peer still reads */
	uint32_t zc_busy;  /* bitmask of zero-copy ids the peer still reads */
	struct xport_send *big_send[XRDMA_MAX_BIG]; /* per large buffer: its send */
	struct xport_send *zc_send[XRDMA_MAX_ZC];   /* per zero-copy id: its send */
	struct xport_send **tx_sends;		/* per tx slot: sends whose last byte it carries */
	struct xport_send *ready, **ready_tail; /* nothing awaited: callbacks due */
	uint32_t done_ids[XRDMA_MAX_READS];
	uint32_t done_count; /* READ_DONEs owed to the peer */
	struct xport_send *sq_head, **sq_tail;

	bool tx_hold; /* fault injection (xport_send.delay_ms): stream output waits */
	bool stopped;
	bool in_process;
	bool again;
	struct xrdma_stats st;
};

/*
 * Set up @k with geometry @g (checked) and the peer's @peer parameters,
 * allocating its memory. -EINVAL, -ENOMEM. Posts nothing.
 */
int xrdma_core_init(struct xrdma_core *k, const struct xrdma_geom *g,
		    const struct xrdma_verbs *verbs, void *ctx);
/* The peer's parameters from rdma_cm: start with peer->slots credits. */
void xrdma_core_set_peer(struct xrdma_core *k, const struct xrdma_cm_params *peer);
/* Post every receive slot. 0 or the first post_recv error. */
int xrdma_core_post_all_recvs(struct xrdma_core *k);
/* Free the memory. Pending sends must have been cancelled. */
void xrdma_core_fini(struct xrdma_core *k);

/* Queue a send (validated as xport_ops.send). 0, -EINVAL, -EPIPE (stopped).
 * Its callback fires once the peer has all its bytes: the SEND with its
 * last byte completed and its large pieces were read (so the owner may
 * close right after, as conn.c does after an error reply), or with the
 * error of stop. */
int xrdma_core_send(struct xrdma_core *k, struct xport_send *s);

/* Completions from the verbs layer. Each returns 0 or -errno (protocol
 * violation or a failed post): the connection must then be closed. */
int xrdma_core_recv_done(struct xrdma_core *k, uint32_t slot, uint32_t byte_len);
int xrdma_core_send_done(struct xrdma_core *k, uint32_t slot);
int xrdma_core_read_done(struct xrdma_core *k);

/* Run until nothing more can move: copy/read queued messages into the stream
 * buffer, deliver, build and post outgoing messages. 0 or -errno. */
int xrdma_core_process(struct xrdma_core *k);

/* No more posts or deliveries; fire every queued send's callback with @err. */
void xrdma_core_stop(struct xrdma_core *k, int err);

#endif
