/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nbd_parse: the NBD protocol decisions without sockets (handshake flags,
 * option haggling, request validation, errno mapping), so that unit tests
 * drive them byte for byte. nbd_server.c owns the sockets and buffers and
 * calls these; nothing here allocates, blocks or keeps state.
 *
 * Every input is hostile: each function validates lengths and values and
 * never reads past the @len it is given.
 *
 * Threading: pure functions, any thread.
 */
#ifndef KEEL_CLIENT_NBD_PARSE_H
#define KEEL_CLIENT_NBD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/nbd_proto.h"

/* Block sizes advertised in NBD_INFO_BLOCK_SIZE and enforced on requests:
 * offsets and lengths are multiples of NBD_BLOCK_MIN; READ and WRITE carry
 * at most NBD_MAX_PAYLOAD bytes (TRIM and WRITE_ZEROES carry no payload
 * and may be longer, up to the export size). */
#define NBD_BLOCK_MIN	4096u
#define NBD_BLOCK_PREF	4096u
#define NBD_MAX_PAYLOAD (32u << 20)

/* Longest option data read; a longer option gets NBD_REP_ERR_TOO_BIG and
 * the connection is closed (its data is never read). */
#define NBD_OPT_MAX_LEN 4096u

/* Room an option reply buffer needs for any reply nbd_opt_handle() makes
 * for an export whose name and description are shorter than 256 bytes. */
#define NBD_OBUF_SIZE 2048u

/* The one export a server offers. */
struct nbd_export {
	const char *name;	 /* NUL-terminated; "" also selects it (default export) */
	const char *description; /* NULL: none */
	uint64_t size;		 /* bytes, a multiple of NBD_BLOCK_MIN */
	bool read_only;
};

/* Option replies are appended here; overflow sets @overflow. */
struct nbd_obuf {
	uint8_t *buf;
	size_t cap;
	size_t len;
	bool overflow;
};

/* What the connection does after sending what nbd_opt_handle() wrote. */
enum nbd_opt_action {
	NBD_OPT_ACT_NEXT,	 /* read the next option */
	NBD_OPT_ACT_TRANSMIT,	 /* enter the transmission phase */
	NBD_OPT_ACT_CLOSE_AFTER, /* close the connection */
	NBD_OPT_ACT_CLOSE,	 /* close without sending (nothing was written) */
};

/* A transmission request header in host order (handle kept raw). */
struct nbd_req_hdr {
	uint16_t flags;
	uint16_t type;
	uint64_t handle; /* as on the wire: echoed unchanged */
	uint64_t offset;
	uint32_t length;
};

/* Handshake flags the server sends and transmission flags for @x. */
uint16_t nbd_handshake_flags(void);
uint16_t nbd_export_flags(const struct nbd_export *x);

/* Fill the 18-byte greeting. */
void nbd_build_greeting(struct nbd_greeting *g);

/* The 4 client-flag bytes: 0 and *no_zeroes, or -EPROTO for a flag the
 * server did not offer (the spec says: drop the connection). A client
 * without NBD_FLAG_C_FIXED_NEWSTYLE is served as fixed newstyle anyway. */
int nbd_parse_client_flags(const uint8_t wire[4], bool *no_zeroes);

/* The 16-byte option header: 0, or -EPROTO (bad magic: close). */
int nbd_parse_opt_hdr(const uint8_t wire[16], uint32_t *option, uint32_t *length);

/*
 * Answer option @option whose @len data bytes (@len <= NBD_OPT_MAX_LEN)
 * are @data: append the replies to @out and say what comes next.
 * EXPORT_NAME for an unknown name returns CLOSE (the option cannot fail
 * otherwise); GO/INFO answer NBD_REP_INFO (EXPORT, BLOCK_SIZE always, NAME
 * and DESCRIPTION when asked) + ACK, or ERR_UNKNOWN / ERR_INVALID; LIST
 * one SERVER + ACK; ABORT ACK then CLOSE_AFTER; STRUCTURED_REPLY, STARTTLS,
 * META_CONTEXT and unknown options ERR_UNSUP. An @out overflow is CLOSE.
 */
enum nbd_opt_action nbd_opt_handle(const struct nbd_export *x, bool no_zeroes, uint32_t option,
				   const uint8_t *data, uint32_t len, struct nbd_obuf *out);

/* An option longer than NBD_OPT_MAX_LEN: ERR_TOO_BIG then CLOSE_AFTER
 * (EXPORT_NAME: CLOSE). */
enum nbd_opt_action nbd_opt_too_big(uint32_t option, struct nbd_obuf *out);

/* The 28-byte request header: 0, or -EPROTO (bad magic: close). */
int nbd_parse_request(const uint8_t wire[28], struct nbd_req_hdr *out);

/*
 * Validate @h against @x. *payload is set to the bytes that follow the
 * header on the wire (a WRITE's length), which the server must read even
 * when it rejects the request, to stay in step. Returns:
 *   0         serve it;
 *   -EINVAL   unknown command or flag, unaligned, zero length, READ past
 *             the end or over NBD_MAX_PAYLOAD, TRIM past the end, FLUSH
 *             with an offset or length;
 *   -ENOSPC   WRITE / WRITE_ZEROES past the end (or overflowing);
 *   -EPERM    WRITE / TRIM / WRITE_ZEROES on a read-only export;
 *   -EMSGSIZE a WRITE over NBD_MAX_PAYLOAD: its payload is not read, the
 *             connection must close (*payload is 0).
 */
int nbd_check_request(const struct nbd_export *x, const struct nbd_req_hdr *h, uint32_t *payload);

/* The one errno -> NBD error mapping (reply error field, host order):
 * 0 -> 0; -EPERM, -EROFS, -EACCES -> EPERM; -EINVAL, -ERANGE -> EINVAL;
 * -ENOSPC, -EDQUOT -> ENOSPC; -ENOMEM -> ENOMEM; -ECANCELED, -ESHUTDOWN
 * -> ESHUTDOWN; -EOVERFLOW -> EOVERFLOW; -ENOTSUP -> ENOTSUP; anything
 * else (-EIO included) -> EIO. */
uint32_t nbd_errno_to_wire(int err);

#endif
