/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kp_conn: a framed, mutually authenticated Keel connection over an xport.
 *
 * The connection runs the handshake of proto/auth.h before anything else.
 * On the server side, any opcode other than HELLO/AUTH before the handshake
 * completes, any malformed header (kp_hdr_decode), a payload crc mismatch
 * on data, a bad proof, or a second handshake closes the connection with a
 * logged reason (peer address + reason at warn level). Only that connection
 * is affected.
 *
 * After the handshake every complete, validated frame is handed to
 * on_msg(). Payload pointers are valid only during the callback (they point
 * into the rx buffer); data has already been checked against its crcs.
 * A payload crc mismatch means the stream can no longer be trusted: the
 * connection is closed with reason "payload crc mismatch" (on either side;
 * the client's owner fails or retries its outstanding requests).
 *
 * Reactor thread only.
 */
#ifndef KEEL_PROTO_CONN_H
#define KEEL_PROTO_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/xport.h"
#include "proto/auth.h"
#include "proto/frame.h"

struct kp_conn;

struct kp_conn_cbs {
	/* Authenticated both ways; the conn may now send requests. */
	void (*on_ready)(struct kp_conn *c);
	/* A validated frame. @meta is NULL when meta_len == 0, @data/@crcs
	 * when data_len == 0. @crcs is a 4-byte aligned copy of the wire
	 * values (little-endian). The owner may kp_conn_close() from here:
	 * no further frames are delivered and @c stays valid until on_close. */
	void (*on_msg)(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta,
		       const uint8_t *data, const uint32_t *crcs);
	/* Closed, fires once; @reason is static text or NULL. The conn is
	 * freed after this returns. */
	void (*on_close)(struct kp_conn *c, int err, const char *reason);
};

/*
 * A message to send. kp_conn_send() encodes the header into hdr_buf and
 * sends header, meta, data and crcs without copying them: meta/data/crcs
 * must stay valid until @done runs (exactly once, with 0 or -errno, also
 * when the conn closes first).
 */
struct kp_msg {
	struct kp_hdr hdr;
	const void *meta;      /* hdr.meta_len bytes */
	const void *data;      /* hdr.data_len bytes */
	const uint32_t *crcs;  /* hdr.data_len / 4096 values, little-endian */
	void (*done)(struct kp_msg *m, int res);
	void *arg;
	/* private */
	uint8_t hdr_buf[KP_HDR_SIZE];
	struct xport_send send;
};

/* Server side: take ownership of an accepted xport connection. @key is
 * copied. Returns 0 (on_close fires exactly once later) or -EINVAL (no
 * on_msg, bad key length), -ENOMEM, or the error of xport start; on error
 * nothing was started and @xc is still the caller's. */
int kp_conn_server(struct xport_conn *xc, const struct kp_key *key,
		   const struct kp_conn_cbs *cbs, void *arg, struct kp_conn **out);

/* Client side: wrap a connected xport connection and start the handshake;
 * on_ready fires when both sides are authenticated. @name identifies the
 * client in the server's logs (first 64 printable bytes). Returns as
 * kp_conn_server() (also -EIO: no randomness); once it returned 0, every
 * failure, including "server failed authentication" (-EPERM: the server
 * does not know the key) arrives through on_close. */
int kp_conn_client(struct xport_conn *xc, const struct kp_key *key, const char *name,
		   const struct kp_conn_cbs *cbs, void *arg, struct kp_conn **out);

/* Queue @m (hdr.version is set to KP_VERSION). -ENOTCONN if closed or not
 * yet ready, -EINVAL for a header kp_hdr_decode() would refuse, a HELLO or
 * AUTH (the conn runs the handshake itself), a missing done callback or
 * payload pointer; or the error of xport send. On error @done never fires. */
int kp_conn_send(struct kp_conn *c, struct kp_msg *m);

/* Close with @reason (logged); on_close follows. Idempotent. */
void kp_conn_close(struct kp_conn *c, int err, const char *reason);

/*
 * In-process message faults, for tests (keel-server fault_msg_* settings).
 * Counting only frames of authenticated connections (the handshake is never
 * touched), every connection pointing at one kp_fault shares its counters:
 *   drop_every N:    every Nth received frame is discarded unread, as if
 *                    lost (the sender's request timeout must recover);
 *   corrupt_every N: every Nth received frame has one byte flipped before
 *                    it is checked (its payload if it has one, else its
 *                    header): the crc check must catch it and close the
 *                    connection;
 *   delay_every N:   every Nth sent frame holds the connection's output
 *                    for delay_ms.
 * 0 disables a fault. The counters are read by the owner (STAT).
 */
struct kp_fault {
	uint32_t drop_every;
	uint32_t corrupt_every;
	uint32_t delay_every;
	uint32_t delay_ms;
	uint64_t rx_frames, tx_frames;
	uint64_t dropped, corrupted, delayed;
};

/* Subject @c to @f (NULL: no faults). @f must outlive the conn. */
void kp_conn_set_fault(struct kp_conn *c, struct kp_fault *f);

/*
 * Process-wide counts of frames refused for a bad checksum (header crc or
 * payload crc), whoever sent them.
 */
struct kp_conn_stats {
	uint64_t hdr_crc_errors;
	uint64_t data_crc_errors;
};
extern struct kp_conn_stats kp_conn_stats;

void *kp_conn_arg(const struct kp_conn *c);
const char *kp_conn_peer(const struct kp_conn *c);
bool kp_conn_ready(const struct kp_conn *c);

/*
 * A peer that connects and never completes the handshake would hold its
 * connection forever. Owners call this periodically for each connection:
 * if the handshake has not completed @timeout_ns after the conn was
 * created, it is closed with reason "authentication timeout" (on_close
 * follows) and true is returned.
 */
bool kp_conn_check_auth_timeout(struct kp_conn *c, uint64_t now_ns, uint64_t timeout_ns);

#endif
