/* SPDX-License-Identifier: Apache-2.0 */
/* kp_conn: framing, handshake state machine and zero-copy sends over an xport. */
#include "proto/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

#define KP_CONN_ROUND_UP(x, a) (((x) + (a)-1) / (a) * (a))
/* One largest frame must fit in the transport's rx buffer. */
#define KP_CONN_RX_SIZE                                                                            \
	KP_CONN_ROUND_UP(KP_HDR_SIZE + KP_MAX_META + KP_MAX_DATA + KP_MAX_DATA / KP_BLOCK * 4, 4096)
#define KP_HS_META_MAX	 256  /* packed handshake message or ErrorInfo */
#define KP_HS_META_LIMIT 1024 /* largest meta accepted before authentication */
#define KP_NAME_MAX	 64
#define KP_PEER_MAX	 80
#define KP_HELLO_REQ_ID	 1
#define KP_AUTH_REQ_ID	 2

enum kp_conn_state {
	KP_CS_WAIT_HELLO,     /* server: nothing received yet */
	KP_CS_WAIT_AUTH,      /* server: challenge sent, waiting for the proof */
	KP_CS_WAIT_CHALLENGE, /* client: HELLO sent */
	KP_CS_WAIT_AUTH_OK,   /* client: proof sent, waiting for the verdict */
	KP_CS_READY,
	KP_CS_DRAINING, /* a final error reply is on its way; then close */
	KP_CS_CLOSED,	/* xport close requested; waiting for its on_close */
};

/* The conn's own messages. Each slot is used at most once per connection:
 * server HELLO reply / AUTH reply, client HELLO / AUTH. */
enum kp_hs_slot_id {
	KP_SLOT_HELLO,
	KP_SLOT_AUTH,
	KP_SLOT__MAX,
};

struct kp_hs_slot {
	struct kp_msg m;
	struct kp_conn *c;
	uint8_t meta[KP_HS_META_MAX];
};

struct kp_conn {
	struct xport_conn *xc;
	struct kp_conn_cbs cbs;
	void *arg;
	struct kp_key key;
	enum kp_conn_state state;
	uint64_t created_ns;
	bool in_recv;
	size_t rx_buffered; /* bytes of an incomplete frame left in the xport */
	int close_err;
	const char *close_reason;
	uint8_t client_nonce[KP_NONCE_LEN];
	uint8_t server_nonce[KP_NONCE_LEN];
	char peer[KP_PEER_MAX];
	char name[KP_NAME_MAX + 1];
	struct kp_hs_slot slots[KP_SLOT__MAX];
	struct kp_fault *fault;
	/* Aligned copy of the received crcs handed to on_msg (wire order). */
	uint32_t rx_crcs[KP_MAX_DATA / KP_BLOCK];
};

static const char *const kp_state_names[] = {
	[KP_CS_WAIT_HELLO] = "WAIT_HELLO",
	[KP_CS_WAIT_AUTH] = "WAIT_AUTH",
	[KP_CS_WAIT_CHALLENGE] = "WAIT_CHALLENGE",
	[KP_CS_WAIT_AUTH_OK] = "WAIT_AUTH_OK",
	[KP_CS_READY] = "READY",
	[KP_CS_DRAINING] = "DRAINING",
	[KP_CS_CLOSED] = "CLOSED",
};

static void conn_set_state(struct kp_conn *c, enum kp_conn_state s)
{
	log_debug("conn %s: %s -> %s", c->peer, kp_state_names[c->state], kp_state_names[s]);
	c->state = s;
}

static bool conn_closing(const struct kp_conn *c)
{
	return c->state == KP_CS_DRAINING || c->state == KP_CS_CLOSED;
}

/* Close with a reason; @opname (log line only) is appended when non-NULL. */
static void conn_fail(struct kp_conn *c, int err, const char *reason, const char *opname)
{
	if (c->state == KP_CS_CLOSED) {
		return;
	}
	log_warn("closing %s: %s%s%s", c->peer, reason, opname ? " " : "", opname ? opname : "");
	conn_set_state(c, KP_CS_CLOSED);
	c->close_err = err;
	c->close_reason = reason;
	c->xc->ops->close(c->xc, err);
}

void kp_conn_close(struct kp_conn *c, int err, const char *reason)
{
	if (c->state == KP_CS_CLOSED) {
		return;
	}
	if (err) {
		conn_fail(c, err, reason ? reason : "closed", NULL);
		return;
	}
	log_info("closing %s: %s", c->peer, reason ? reason : "closed");
	conn_set_state(c, KP_CS_CLOSED);
	c->close_err = 0;
	c->close_reason = reason;
	c->xc->ops->close(c->xc, 0);
}

/* ---- sending ---- */

static void conn_send_done(struct xport_send *s, int res)
{
	struct kp_msg *m = container_of(s, struct kp_msg, send);

	m->done(m, res < 0 ? res : 0);
}

static void iov_add(struct xport_send *s, const void *base, size_t len)
{
	if (!len) {
		return;
	}
	s->iov[s->iovcnt].iov_base = (void *)base;
	s->iov[s->iovcnt].iov_len = len;
	s->iovcnt++;
}

/* Encode and queue @m, whose header is known to be valid. */
static int conn_queue(struct kp_conn *c, struct kp_msg *m, uint32_t delay_ms)
{
	struct xport_send *s = &m->send;

	kp_hdr_encode(&m->hdr, m->hdr_buf);
	memset(s, 0, sizeof(*s));
	s->delay_ms = delay_ms;
	iov_add(s, m->hdr_buf, KP_HDR_SIZE);
	iov_add(s, m->meta, m->hdr.meta_len);
	iov_add(s, m->data, m->hdr.data_len);
	iov_add(s, m->crcs, (size_t)(m->hdr.data_len / KP_BLOCK) * 4);
	s->cb = conn_send_done;
	return c->xc->ops->send(c->xc, s);
}

static bool msg_valid(struct kp_msg *m)
{
	struct kp_hdr check;
	const char *why;

	if (!m->done || (m->hdr.meta_len && !m->meta) ||
	    (m->hdr.data_len && (!m->data || !m->crcs))) {
		return false;
	}
	/* The handshake belongs to the conn. */
	if (m->hdr.opcode == KP_OP_HELLO || m->hdr.opcode == KP_OP_AUTH) {
		return false;
	}
	kp_hdr_encode(&m->hdr, m->hdr_buf);
	if (kp_hdr_decode(m->hdr_buf, &check, &why)) {
		log_debug("refusing to send %s: %s", kp_opcode_name(m->hdr.opcode), why);
		return false;
	}
	return true;
}

int kp_conn_send(struct kp_conn *c, struct kp_msg *m)
{
	struct kp_fault *f = c->fault;
	uint32_t delay_ms = 0;
	int ret;

	if (c->state != KP_CS_READY) {
		return -ENOTCONN;
	}
	m->hdr.version = KP_VERSION;
	if (!msg_valid(m)) {
		return -EINVAL;
	}
	if (f && f->delay_every && ++f->tx_frames % f->delay_every == 0) {
		f->delayed++;
		delay_ms = f->delay_ms;
		log_debug("fault: holding output to %s for %u ms at %s", c->peer, delay_ms,
			  kp_opcode_name(m->hdr.opcode));
	}
	ret = conn_queue(c, m, delay_ms);
	/* the transport is closing under us (peer reset): on_close follows */
	return ret == -EPIPE ? -ENOTCONN : ret;
}

static void slot_done(struct kp_msg *m, int res)
{
	struct kp_hs_slot *slot = container_of(m, struct kp_hs_slot, m);
	struct kp_conn *c = slot->c;

	/* Draining: the reason to close is the one being reported, whether or
	 * not the report made it out. */
	if (c->state == KP_CS_DRAINING) {
		conn_fail(c, c->close_err, c->close_reason, NULL);
		return;
	}
	if (res) {
		conn_fail(c, res, "handshake send failed", NULL);
	}
}

/* Send a handshake frame whose meta is already packed into the slot. */
static int slot_send(struct kp_conn *c, enum kp_hs_slot_id id, const struct kp_hdr *h)
{
	struct kp_hs_slot *slot = &c->slots[id];

	slot->c = c;
	slot->m.hdr = *h;
	slot->m.hdr.version = KP_VERSION;
	slot->m.meta = slot->meta;
	slot->m.data = NULL;
	slot->m.crcs = NULL;
	slot->m.done = slot_done;
	return conn_queue(c, &slot->m, 0);
}

static struct kp_hdr reply_hdr(const struct kp_hdr *req, int status, uint32_t meta_len)
{
	struct kp_hdr h = {
		.opcode = req->opcode,
		.flags = KP_F_REPLY,
		.status = status,
		.req_id = req->req_id,
		.meta_len = meta_len,
	};

	return h;
}

/* Answer @req with an error status (and ErrorInfo), then close once it is
 * on the wire, so the peer learns why. Input that arrives meanwhile is
 * dropped. */
static void conn_reject(struct kp_conn *c, enum kp_hs_slot_id id, const struct kp_hdr *req, int err,
			const char *reason)
{
	Keel__ErrorInfo info = KEEL__ERROR_INFO__INIT;
	struct kp_hdr h;
	size_t len;

	info.message = (char *)reason;
	len = keel__error_info__get_packed_size(&info);
	kassert(len <= KP_HS_META_MAX);
	keel__error_info__pack(&info, c->slots[id].meta);
	h = reply_hdr(req, kp_status_from_errno(err), (uint32_t)len);
	if (slot_send(c, id, &h)) {
		conn_fail(c, err, reason, NULL);
		return;
	}
	conn_set_state(c, KP_CS_DRAINING);
	c->close_err = err;
	c->close_reason = reason;
}

/* ---- handshake: server side ---- */

static void copy_name(char *dst, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i < KP_NAME_MAX; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	dst[i] = '\0';
}

static int server_send_challenge(struct kp_conn *c, const struct kp_hdr *req)
{
	Keel__AuthChallenge ch = KEEL__AUTH_CHALLENGE__INIT;
	uint8_t proof[KP_MAC_LEN];
	struct kp_hdr h;
	size_t len;
	int ret;

	ret = kp_nonce(c->server_nonce);
	if (ret) {
		return ret;
	}
	kp_auth_proof(&c->key, KP_AUTH_SERVER, c->client_nonce, c->server_nonce, proof);
	ch.server_nonce.data = c->server_nonce;
	ch.server_nonce.len = KP_NONCE_LEN;
	ch.server_proof.data = proof;
	ch.server_proof.len = KP_MAC_LEN;
	len = keel__auth_challenge__get_packed_size(&ch);
	kassert(len <= KP_HS_META_MAX);
	keel__auth_challenge__pack(&ch, c->slots[KP_SLOT_HELLO].meta);
	h = reply_hdr(req, KP_S_OK, (uint32_t)len);
	return slot_send(c, KP_SLOT_HELLO, &h);
}

static void server_on_hello(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__AuthHello *hello;
	uint32_t version;
	int ret;

	hello = keel__auth_hello__unpack(NULL, h->meta_len, meta);
	if (!hello || hello->client_nonce.len != KP_NONCE_LEN) {
		if (hello) {
			keel__auth_hello__free_unpacked(hello, NULL);
		}
		conn_fail(c, -EPROTO, "malformed HELLO", NULL);
		return;
	}
	memcpy(c->client_nonce, hello->client_nonce.data, KP_NONCE_LEN);
	copy_name(c->name, hello->name);
	version = hello->proto_version;
	keel__auth_hello__free_unpacked(hello, NULL);

	if (version != KP_VERSION) {
		conn_reject(c, KP_SLOT_HELLO, h, -EPROTO, "unsupported protocol version");
		return;
	}
	ret = server_send_challenge(c, h);
	if (ret) {
		conn_fail(c, ret, "cannot send challenge", NULL);
		return;
	}
	conn_set_state(c, KP_CS_WAIT_AUTH);
}

static bool server_proof_ok(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__AuthProof *ap;
	bool ok;

	ap = keel__auth_proof__unpack(NULL, h->meta_len, meta);
	if (!ap) {
		return false;
	}
	ok = kp_auth_verify(&c->key, KP_AUTH_CLIENT, c->client_nonce, c->server_nonce,
			    ap->client_proof.data, ap->client_proof.len);
	keel__auth_proof__free_unpacked(ap, NULL);
	return ok;
}

static void server_on_auth(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta)
{
	struct kp_hdr reply;

	if (!server_proof_ok(c, h, meta)) {
		conn_reject(c, KP_SLOT_AUTH, h, -EPERM, "client failed authentication");
		return;
	}
	/* READY before the reply: a client may pipeline right behind it. */
	conn_set_state(c, KP_CS_READY);
	reply = reply_hdr(h, KP_S_OK, 0);
	if (slot_send(c, KP_SLOT_AUTH, &reply)) {
		conn_fail(c, -EIO, "cannot send AUTH reply", NULL);
		return;
	}
	log_info("authenticated client '%s' from %s", c->name, c->peer);
	if (c->cbs.on_ready) {
		c->cbs.on_ready(c);
	}
}

/* ---- handshake: client side ---- */

static int client_send_hello(struct kp_conn *c, const char *name)
{
	Keel__AuthHello hello = KEEL__AUTH_HELLO__INIT;
	struct kp_hdr h = {
		.opcode = KP_OP_HELLO,
		.req_id = KP_HELLO_REQ_ID,
	};
	size_t len;

	copy_name(c->name, name);
	hello.client_nonce.data = c->client_nonce;
	hello.client_nonce.len = KP_NONCE_LEN;
	hello.name = c->name;
	hello.proto_version = KP_VERSION;
	len = keel__auth_hello__get_packed_size(&hello);
	kassert(len <= KP_HS_META_MAX);
	keel__auth_hello__pack(&hello, c->slots[KP_SLOT_HELLO].meta);
	h.meta_len = (uint32_t)len;
	return slot_send(c, KP_SLOT_HELLO, &h);
}

static int client_send_proof(struct kp_conn *c)
{
	Keel__AuthProof ap = KEEL__AUTH_PROOF__INIT;
	uint8_t proof[KP_MAC_LEN];
	struct kp_hdr h = {
		.opcode = KP_OP_AUTH,
		.req_id = KP_AUTH_REQ_ID,
	};
	size_t len;

	kp_auth_proof(&c->key, KP_AUTH_CLIENT, c->client_nonce, c->server_nonce, proof);
	ap.client_proof.data = proof;
	ap.client_proof.len = KP_MAC_LEN;
	len = keel__auth_proof__get_packed_size(&ap);
	kassert(len <= KP_HS_META_MAX);
	keel__auth_proof__pack(&ap, c->slots[KP_SLOT_AUTH].meta);
	h.meta_len = (uint32_t)len;
	return slot_send(c, KP_SLOT_AUTH, &h);
}

/* The client must never talk to an impostor: check the server's proof
 * before sending anything derived from the key. */
static bool client_challenge_ok(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__AuthChallenge *ch;
	bool ok = false;

	ch = keel__auth_challenge__unpack(NULL, h->meta_len, meta);
	if (!ch) {
		return false;
	}
	if (ch->server_nonce.len == KP_NONCE_LEN) {
		memcpy(c->server_nonce, ch->server_nonce.data, KP_NONCE_LEN);
		ok = kp_auth_verify(&c->key, KP_AUTH_SERVER, c->client_nonce, c->server_nonce,
				    ch->server_proof.data, ch->server_proof.len);
	}
	keel__auth_challenge__free_unpacked(ch, NULL);
	return ok;
}

static void client_on_challenge(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta)
{
	if (h->status != KP_S_OK) {
		conn_fail(c, kp_status_to_errno(h->status), "server refused HELLO", NULL);
		return;
	}
	if (!client_challenge_ok(c, h, meta)) {
		conn_fail(c, -EPERM, "server failed authentication", NULL);
		return;
	}
	if (client_send_proof(c)) {
		conn_fail(c, -EIO, "cannot send AUTH", NULL);
		return;
	}
	conn_set_state(c, KP_CS_WAIT_AUTH_OK);
}

static void client_on_auth_reply(struct kp_conn *c, const struct kp_hdr *h)
{
	if (h->status != KP_S_OK) {
		conn_fail(c, kp_status_to_errno(h->status), "server rejected authentication", NULL);
		return;
	}
	conn_set_state(c, KP_CS_READY);
	log_debug("authenticated to %s", c->peer);
	if (c->cbs.on_ready) {
		c->cbs.on_ready(c);
	}
}

/* ---- receiving ---- */

/*
 * Is @h acceptable in the current state? Checked as soon as the header is
 * in, so an unauthenticated peer cannot make us wait for (or buffer) a
 * payload it has no right to send.
 */
static const char *state_refuses(const struct kp_conn *c, const struct kp_hdr *h)
{
	bool reply = h->flags & KP_F_REPLY;
	bool handshake = h->opcode == KP_OP_HELLO || h->opcode == KP_OP_AUTH;

	/* Reasons read well followed by the opcode name in the log. */
	switch (c->state) {
	case KP_CS_WAIT_HELLO:
		if (h->opcode != KP_OP_HELLO || reply) {
			return "unauthenticated opcode";
		}
		break;
	case KP_CS_WAIT_AUTH:
		if (h->opcode == KP_OP_HELLO) {
			return "repeated handshake opcode";
		}
		if (h->opcode != KP_OP_AUTH || reply) {
			return "unauthenticated opcode";
		}
		break;
	case KP_CS_WAIT_CHALLENGE:
		if (h->opcode != KP_OP_HELLO || !reply || h->req_id != KP_HELLO_REQ_ID) {
			return "unexpected handshake opcode";
		}
		break;
	case KP_CS_WAIT_AUTH_OK:
		if (h->opcode != KP_OP_AUTH || !reply || h->req_id != KP_AUTH_REQ_ID) {
			return "unexpected handshake opcode";
		}
		break;
	case KP_CS_READY:
		return handshake ? "repeated handshake opcode" : NULL;
	case KP_CS_DRAINING:
	case KP_CS_CLOSED:
		return NULL;
	}
	if (h->meta_len > KP_HS_META_LIMIT) {
		return "oversized meta in handshake opcode";
	}
	return NULL;
}

static void conn_dispatch(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta,
			  const uint8_t *data, const uint32_t *crcs)
{
	switch (c->state) {
	case KP_CS_WAIT_HELLO:
		server_on_hello(c, h, meta);
		break;
	case KP_CS_WAIT_AUTH:
		server_on_auth(c, h, meta);
		break;
	case KP_CS_WAIT_CHALLENGE:
		client_on_challenge(c, h, meta);
		break;
	case KP_CS_WAIT_AUTH_OK:
		client_on_auth_reply(c, h);
		break;
	case KP_CS_READY:
		c->cbs.on_msg(c, h, h->meta_len ? meta : NULL, data, crcs);
		break;
	case KP_CS_DRAINING:
	case KP_CS_CLOSED:
		break;
	}
}

/* ---- fault injection (tests) ---- */

struct kp_conn_stats kp_conn_stats;

enum kp_fault_action {
	KP_FAULT_NONE,
	KP_FAULT_DROP,
	KP_FAULT_CORRUPT,
};

/*
 * Apply the receive faults to the complete frame at @p (header @h). The
 * frame is in the transport's receive buffer, which is ours until
 * on_recv returns: a corrupted byte is flipped in place.
 */
static enum kp_fault_action fault_rx(struct kp_conn *c, uint8_t *p, const struct kp_hdr *h)
{
	struct kp_fault *f = c->fault;
	uint64_t n = ++f->rx_frames;

	if (f->drop_every && n % f->drop_every == 0) {
		f->dropped++;
		log_debug("fault: dropping %s%s from %s", kp_opcode_name(h->opcode),
			  h->flags & KP_F_REPLY ? " reply" : "", c->peer);
		return KP_FAULT_DROP;
	}
	if (f->corrupt_every && n % f->corrupt_every == 0) {
		size_t at;

		f->corrupted++;
		if (h->data_len) {
			/* a byte of the data, which its crc covers */
			at = KP_HDR_SIZE + h->meta_len + (size_t)(n % h->data_len);
		} else {
			/* a byte of the req_id, which the header crc covers */
			at = 16 + (size_t)(n % 8);
		}
		log_debug("fault: corrupting byte %zu of %s%s from %s", at,
			  kp_opcode_name(h->opcode), h->flags & KP_F_REPLY ? " reply" : "",
			  c->peer);
		p[at] ^= 0x5a;
		return KP_FAULT_CORRUPT;
	}
	return KP_FAULT_NONE;
}

void kp_conn_set_fault(struct kp_conn *c, struct kp_fault *f)
{
	c->fault = f;
}

/*
 * Take one frame from @p. Returns its size, 0 when it is not complete yet,
 * or a negative errno after closing the connection.
 */
static ssize_t conn_take_frame(struct kp_conn *c, const uint8_t *p, size_t avail)
{
	const uint8_t *meta, *data = NULL;
	const uint32_t *crcs = NULL;
	const char *why;
	struct kp_hdr h;
	size_t total, ncrc;
	int ret;

	if (avail < KP_HDR_SIZE) {
		return 0;
	}
	ret = kp_hdr_decode(p, &h, &why);
	if (ret) {
		if (ret == -EBADMSG) {
			kp_conn_stats.hdr_crc_errors++;
		}
		conn_fail(c, ret, why, NULL);
		return ret;
	}
	why = state_refuses(c, &h);
	if (why) {
		conn_fail(c, -EPROTO, why, kp_opcode_name(h.opcode));
		return -EPROTO;
	}
	total = KP_HDR_SIZE + kp_payload_len(&h);
	if (avail < total) {
		return 0;
	}
	if (c->fault && c->state == KP_CS_READY) {
		switch (fault_rx(c, (uint8_t *)p, &h)) {
		case KP_FAULT_DROP:
			return (ssize_t)total;
		case KP_FAULT_CORRUPT:
			ret = kp_hdr_decode(p, &h, &why);
			if (ret) {
				kp_conn_stats.hdr_crc_errors++;
				conn_fail(c, ret, why, NULL);
				return ret;
			}
			break;
		default:
			break;
		}
	}
	meta = p + KP_HDR_SIZE;
	if (h.data_len) {
		data = meta + h.meta_len;
		ncrc = h.data_len / KP_BLOCK;
		memcpy(c->rx_crcs, data + h.data_len, ncrc * 4);
		crcs = c->rx_crcs;
		if (!kp_data_verify(data, h.data_len, crcs)) {
			kp_conn_stats.data_crc_errors++;
			conn_fail(c, -EBADMSG, "payload crc mismatch", NULL);
			return -EBADMSG;
		}
	}
	conn_dispatch(c, &h, meta, data, crcs);
	return (ssize_t)total;
}

static ssize_t conn_on_recv(struct xport_conn *xc, const uint8_t *data, size_t len)
{
	struct kp_conn *c = xc->arg;
	size_t used = 0;

	c->in_recv = true;
	/* The owner may close from on_msg/on_ready: stop at once, the conn
	 * itself lives until the transport's deferred on_close. */
	while (!conn_closing(c)) {
		ssize_t n = conn_take_frame(c, data + used, len - used);

		if (n <= 0) {
			break;
		}
		used += (size_t)n;
	}
	c->in_recv = false;
	if (conn_closing(c)) {
		/* Nothing more is parsed from a closing conn. */
		c->rx_buffered = 0;
		return (ssize_t)len;
	}
	c->rx_buffered = len - used;
	return (ssize_t)used;
}

static void conn_free(struct kp_conn *c)
{
	OPENSSL_cleanse(&c->key, sizeof(c->key));
	free(c);
}

/* Why did the transport close under us? (Not called for our own closes.) */
static const char *peer_close_reason(struct kp_conn *c, int *err)
{
	if (*err == 0 && c->rx_buffered) {
		*err = -EPROTO;
		return "truncated frame at EOF";
	}
	if (*err == 0 && c->state != KP_CS_READY) {
		*err = -ECONNRESET;
		return "peer closed during handshake";
	}
	return *err ? "connection error" : "peer closed";
}

static void conn_on_xport_close(struct xport_conn *xc, int err)
{
	struct kp_conn *c = xc->arg;

	kassert(!c->in_recv); /* xport_ops.close defers on_close */
	if (c->state != KP_CS_CLOSED) {
		const char *reason = peer_close_reason(c, &err);

		if (err) {
			log_warn("closing %s: %s (%s)", c->peer, reason, strerror(-err));
		} else {
			log_info("closing %s: %s", c->peer, reason);
		}
		c->close_err = err;
		c->close_reason = reason;
		conn_set_state(c, KP_CS_CLOSED);
	}
	if (c->cbs.on_close) {
		c->cbs.on_close(c, c->close_err, c->close_reason);
	}
	conn_free(c);
}

static const struct xport_conn_cbs kp_conn_xport_cbs = {
	.on_recv = conn_on_recv,
	.on_close = conn_on_xport_close,
};

/* ---- setup ---- */

static int conn_new(struct xport_conn *xc, const struct kp_key *key, const struct kp_conn_cbs *cbs,
		    void *arg, struct kp_conn **out)
{
	struct kp_conn *c;
	const char *peer;

	if (!cbs || !cbs->on_msg || !key || key->len < KP_KEY_MIN || key->len > KP_KEY_MAX) {
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		return -ENOMEM;
	}
	c->xc = xc;
	c->cbs = *cbs;
	c->arg = arg;
	c->key = *key;
	c->created_ns = reactor_now_ns();
	peer = xc->ops->peer(xc);
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "?");
	*out = c;
	return 0;
}

int kp_conn_server(struct xport_conn *xc, const struct kp_key *key, const struct kp_conn_cbs *cbs,
		   void *arg, struct kp_conn **out)
{
	struct kp_conn *c;
	int ret;

	ret = conn_new(xc, key, cbs, arg, &c);
	if (ret) {
		return ret;
	}
	c->state = KP_CS_WAIT_HELLO;
	ret = xc->ops->start(xc, &kp_conn_xport_cbs, KP_CONN_RX_SIZE, c);
	if (ret) {
		conn_free(c);
		return ret;
	}
	*out = c;
	return 0;
}

int kp_conn_client(struct xport_conn *xc, const struct kp_key *key, const char *name,
		   const struct kp_conn_cbs *cbs, void *arg, struct kp_conn **out)
{
	struct kp_conn *c;
	int ret;

	ret = conn_new(xc, key, cbs, arg, &c);
	if (ret) {
		return ret;
	}
	c->state = KP_CS_WAIT_CHALLENGE;
	ret = kp_nonce(c->client_nonce);
	if (ret) {
		goto out_free;
	}
	ret = xc->ops->start(xc, &kp_conn_xport_cbs, KP_CONN_RX_SIZE, c);
	if (ret) {
		goto out_free;
	}
	/* Started: from here on failures are reported through on_close. */
	*out = c;
	ret = client_send_hello(c, name);
	if (ret) {
		conn_fail(c, ret, "cannot send HELLO", NULL);
	}
	return 0;

out_free:
	conn_free(c);
	return ret;
}

void *kp_conn_arg(const struct kp_conn *c)
{
	return c->arg;
}

const char *kp_conn_peer(const struct kp_conn *c)
{
	return c->peer;
}

bool kp_conn_ready(const struct kp_conn *c)
{
	return c->state == KP_CS_READY;
}

bool kp_conn_check_auth_timeout(struct kp_conn *c, uint64_t now_ns, uint64_t timeout_ns)
{
	bool handshaking = c->state != KP_CS_READY && c->state != KP_CS_DRAINING &&
			   c->state != KP_CS_CLOSED;

	if (!handshaking || now_ns - c->created_ns <= timeout_ns) {
		return false;
	}
	kp_conn_close(c, -ETIMEDOUT, "authentication timeout");
	return true;
}
