/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kp_conn over real TCP on 127.0.0.1, one process, one reactor: a listener
 * whose connections are kp_conn servers, kp_conn clients, and raw-socket
 * peers that write hand-built (often hostile) frames with write(2).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/crc.h"
#include "common/log.h"
#include "common/reactor.h"
#include "common/xport.h"
#include "proto/conn.h"
#include "proto/keel.pb-c.h"

#define WAIT_NS (5ull * 1000 * 1000 * 1000)
#define TICK_NS (10ull * 1000 * 1000)

/* ---- fixture: reactor, listener, server-side bookkeeping ---- */

struct srv_stats {
	int accepted;
	int ready;
	int closed;
	int msgs;
	int last_err;
	const char *last_reason;
	uint64_t last_req_id;
	uint16_t last_opcode;
	uint32_t last_data_len;
	uint8_t last_data_first;
	uint16_t close_on_opcode; /* owner closes from on_msg on this opcode */
};

static struct reactor *r;
static struct xport_listener *lis;
static char addr[64];
static struct kp_key key, wrong_key;
static struct srv_stats srv;
static struct reactor_timer tick;
static bool ticking;
static struct kp_fault *srv_fault; /* applied to accepted connections */

/* A server reply: header only, freed when sent. */
static void reply_done(struct kp_msg *m, int res)
{
	free(m);
}

static void srv_reply(struct kp_conn *c, const struct kp_hdr *h)
{
	struct kp_msg *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->hdr.opcode = h->opcode;
	m->hdr.flags = KP_F_REPLY;
	m->hdr.req_id = h->req_id;
	m->done = reply_done;
	assert_int_equal(kp_conn_send(c, m), 0);
}

static void srv_on_ready(struct kp_conn *c)
{
	srv.ready++;
}

static void srv_on_msg(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta,
		       const uint8_t *data, const uint32_t *crcs)
{
	srv.msgs++;
	srv.last_req_id = h->req_id;
	srv.last_opcode = h->opcode;
	srv.last_data_len = h->data_len;
	if (data) {
		assert_non_null(crcs);
		assert_true(kp_data_verify(data, h->data_len, crcs));
		srv.last_data_first = data[0];
	}
	if (srv.close_on_opcode && h->opcode == srv.close_on_opcode) {
		kp_conn_close(c, 0, "owner closed from on_msg");
		kp_conn_close(c, -EIO, "idempotent"); /* no effect */
		return;
	}
	srv_reply(c, h);
}

static void srv_on_close(struct kp_conn *c, int err, const char *reason)
{
	srv.closed++;
	srv.last_err = err;
	srv.last_reason = reason;
}

static const struct kp_conn_cbs srv_cbs = {
	.on_ready = srv_on_ready,
	.on_msg = srv_on_msg,
	.on_close = srv_on_close,
};

static void on_accept(struct xport_listener *l, struct xport_conn *xc, void *arg)
{
	struct kp_conn *c;

	srv.accepted++;
	assert_int_equal(kp_conn_server(xc, &key, &srv_cbs, NULL, &c), 0);
	kp_conn_set_fault(c, srv_fault);
}

static void tick_fn(struct reactor_timer *t)
{
	ticking = false;
}

/* Run the reactor until @cond holds (fails the test after WAIT_NS). */
static void pump_until(bool (*cond)(void *), void *arg)
{
	uint64_t deadline = reactor_now_ns() + WAIT_NS;

	while (!cond(arg)) {
		assert_true(reactor_now_ns() < deadline);
		if (!ticking) {
			ticking = true;
			assert_int_equal(reactor_timer_start(r, &tick, TICK_NS, tick_fn), 0);
		}
		assert_true(reactor_poll(r, true) >= 0);
	}
}

static bool srv_closed_n(void *arg)
{
	return srv.closed >= *(int *)arg;
}

static void wait_srv_closed(int n)
{
	pump_until(srv_closed_n, &n);
}

/* ---- kp_conn clients ---- */

struct cli {
	struct kp_conn *c;
	bool ready;
	bool closed;
	int close_err;
	const char *close_reason;
	int replies;
	uint64_t last_req_id;
	int done_calls;
	int done_res;
	int done_at_close; /* done_calls when on_close ran */
};

static void cli_on_ready(struct kp_conn *c)
{
	((struct cli *)kp_conn_arg(c))->ready = true;
}

static void cli_on_msg(struct kp_conn *c, const struct kp_hdr *h, const uint8_t *meta,
		       const uint8_t *data, const uint32_t *crcs)
{
	struct cli *cl = kp_conn_arg(c);

	assert_true(h->flags & KP_F_REPLY);
	cl->replies++;
	cl->last_req_id = h->req_id;
}

static void cli_on_close(struct kp_conn *c, int err, const char *reason)
{
	struct cli *cl = kp_conn_arg(c);

	assert_false(cl->closed);
	cl->closed = true;
	cl->close_err = err;
	cl->close_reason = reason;
	cl->done_at_close = cl->done_calls;
	cl->c = NULL;
}

static const struct kp_conn_cbs cli_cbs = {
	.on_ready = cli_on_ready,
	.on_msg = cli_on_msg,
	.on_close = cli_on_close,
};

static bool cli_settled(void *arg)
{
	struct cli *cl = arg;

	return cl->ready || cl->closed;
}

static bool cli_closed(void *arg)
{
	return ((struct cli *)arg)->closed;
}

static bool cli_has_reply(void *arg)
{
	return ((struct cli *)arg)->replies > 0 || ((struct cli *)arg)->closed;
}

static void cli_start(struct cli *cl, const struct kp_key *k)
{
	struct xport_conn *xc;

	memset(cl, 0, sizeof(*cl));
	assert_int_equal(xport_tcp_ops.connect(r, addr, &xc), 0);
	assert_int_equal(kp_conn_client(xc, k, "test-client", &cli_cbs, cl, &cl->c), 0);
	pump_until(cli_settled, cl);
}

static void cli_msg_done(struct kp_msg *m, int res)
{
	struct cli *cl = m->arg;

	cl->done_calls++;
	cl->done_res = res;
}

static void cli_ping(struct cli *cl, struct kp_msg *m, uint64_t req_id)
{
	memset(m, 0, sizeof(*m));
	m->hdr.opcode = KP_OP_PING;
	m->hdr.req_id = req_id;
	m->done = cli_msg_done;
	m->arg = cl;
	assert_int_equal(kp_conn_send(cl->c, m), 0);
}

/* Close from the client side and wait until the server has seen it too:
 * the next test counts the server's closes from where it starts. */
static void cli_close(struct cli *cl)
{
	int closed = srv.closed;
	bool open = cl->c && !cl->closed;

	if (cl->c) {
		kp_conn_close(cl->c, 0, "test done");
	}
	pump_until(cli_closed, cl);
	if (open) {
		wait_srv_closed(closed + 1);
	}
}

/* ---- raw peers ---- */

struct raw {
	int fd;
	uint8_t buf[8192];
	size_t len;
	bool eof;
	uint8_t cn[KP_NONCE_LEN];
	uint8_t sn[KP_NONCE_LEN];
	uint8_t auth_frame[KP_HDR_SIZE + 64]; /* the AUTH request sent */
	size_t auth_len;
};

static void raw_connect(struct raw *rp)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char *colon = strrchr(addr, ':');

	memset(rp, 0, sizeof(*rp));
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rp->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(rp->fd >= 0);
	/* Non-blocking connect to loopback completes once the listener accepts. */
	if (connect(rp->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		assert_int_equal(errno, EINPROGRESS);
	}
}

static void raw_write(struct raw *rp, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = write(rp->fd, b, len);

		if (n < 0 && errno == EAGAIN) {
			assert_true(reactor_poll(r, false) >= 0);
			continue;
		}
		assert_true(n > 0);
		b += n;
		len -= (size_t)n;
	}
}

static void raw_fill(struct raw *rp)
{
	while (!rp->eof && rp->len < sizeof(rp->buf)) {
		ssize_t n = recv(rp->fd, rp->buf + rp->len, sizeof(rp->buf) - rp->len, 0);

		if (n < 0 && (errno == EAGAIN || errno == ENOTCONN)) {
			return;
		}
		if (n <= 0) {
			rp->eof = true; /* orderly EOF or reset: the peer is gone */
			return;
		}
		rp->len += (size_t)n;
	}
}

static bool raw_frame_or_eof(void *arg)
{
	struct raw *rp = arg;
	struct kp_hdr h;

	raw_fill(rp);
	if (rp->len >= KP_HDR_SIZE && !kp_hdr_decode(rp->buf, &h, NULL)) {
		return rp->len >= KP_HDR_SIZE + kp_payload_len(&h);
	}
	return rp->eof;
}

static bool raw_eof(void *arg)
{
	struct raw *rp = arg;

	raw_fill(rp);
	rp->len = 0; /* discard */
	return rp->eof;
}

/* Wait for one frame; copies its meta out. Returns false on EOF. */
static bool raw_read_frame(struct raw *rp, struct kp_hdr *h, uint8_t *meta, size_t meta_max)
{
	size_t total;

	pump_until(raw_frame_or_eof, rp);
	if (rp->len < KP_HDR_SIZE) {
		return false;
	}
	assert_int_equal(kp_hdr_decode(rp->buf, h, NULL), 0);
	total = KP_HDR_SIZE + kp_payload_len(h);
	assert_true(h->meta_len <= meta_max);
	memcpy(meta, rp->buf + KP_HDR_SIZE, h->meta_len);
	memmove(rp->buf, rp->buf + total, rp->len - total);
	rp->len -= total;
	return true;
}

static size_t frame_build(uint8_t *out, const struct kp_hdr *h, const void *meta, const void *data)
{
	kp_hdr_encode(h, out);
	if (h->meta_len) {
		memcpy(out + KP_HDR_SIZE, meta, h->meta_len);
	}
	if (h->data_len) {
		uint8_t *crcs = out + KP_HDR_SIZE + h->meta_len + h->data_len;

		memcpy(out + KP_HDR_SIZE + h->meta_len, data, h->data_len);
		for (uint32_t i = 0; i < h->data_len / KP_BLOCK; i++) {
			uint32_t crc =
				htole32(crc32c(0, (const uint8_t *)data + i * KP_BLOCK, KP_BLOCK));

			memcpy(crcs + i * 4, &crc, 4);
		}
	}
	return KP_HDR_SIZE + kp_payload_len(h);
}

static void raw_send_frame(struct raw *rp, const struct kp_hdr *h, const void *meta,
			   const void *data)
{
	uint8_t *buf = malloc(KP_HDR_SIZE + kp_payload_len(h));

	assert_non_null(buf);
	raw_write(rp, buf, frame_build(buf, h, meta, data));
	free(buf);
}

static struct kp_hdr req(uint16_t opcode, uint64_t req_id)
{
	struct kp_hdr h = {.version = KP_VERSION, .opcode = opcode, .req_id = req_id};

	return h;
}

static void raw_hello(struct raw *rp)
{
	Keel__AuthHello hello = KEEL__AUTH_HELLO__INIT;
	Keel__AuthChallenge *ch;
	uint8_t meta[256];
	struct kp_hdr h = req(KP_OP_HELLO, 100);

	assert_int_equal(kp_nonce(rp->cn), 0);
	hello.client_nonce.data = rp->cn;
	hello.client_nonce.len = KP_NONCE_LEN;
	hello.name = "raw";
	hello.proto_version = KP_VERSION;
	h.meta_len = (uint32_t)keel__auth_hello__pack(&hello, meta);
	raw_send_frame(rp, &h, meta, NULL);

	assert_true(raw_read_frame(rp, &h, meta, sizeof(meta)));
	assert_int_equal(h.opcode, KP_OP_HELLO);
	assert_true(h.flags & KP_F_REPLY);
	assert_int_equal(h.req_id, 100);
	assert_int_equal(h.status, KP_S_OK);
	ch = keel__auth_challenge__unpack(NULL, h.meta_len, meta);
	assert_non_null(ch);
	assert_int_equal(ch->server_nonce.len, KP_NONCE_LEN);
	memcpy(rp->sn, ch->server_nonce.data, KP_NONCE_LEN);
	assert_true(kp_auth_verify(&key, KP_AUTH_SERVER, rp->cn, rp->sn, ch->server_proof.data,
				   ch->server_proof.len));
	keel__auth_challenge__free_unpacked(ch, NULL);
}

static void raw_auth_frame(struct raw *rp, const struct kp_key *k)
{
	Keel__AuthProof ap = KEEL__AUTH_PROOF__INIT;
	uint8_t proof[KP_MAC_LEN], meta[64];
	struct kp_hdr h = req(KP_OP_AUTH, 101);

	kp_auth_proof(k, KP_AUTH_CLIENT, rp->cn, rp->sn, proof);
	ap.client_proof.data = proof;
	ap.client_proof.len = KP_MAC_LEN;
	h.meta_len = (uint32_t)keel__auth_proof__pack(&ap, meta);
	rp->auth_len = frame_build(rp->auth_frame, &h, meta, NULL);
}

/* Returns the AUTH reply status. */
static int raw_auth_send(struct raw *rp, const uint8_t *frame, size_t len)
{
	struct kp_hdr h;
	uint8_t meta[256];

	raw_write(rp, frame, len);
	assert_true(raw_read_frame(rp, &h, meta, sizeof(meta)));
	assert_int_equal(h.opcode, KP_OP_AUTH);
	assert_int_equal(h.req_id, 101);
	return h.status;
}

static void raw_login(struct raw *rp)
{
	int ready = srv.ready;

	raw_connect(rp);
	raw_hello(rp);
	raw_auth_frame(rp, &key);
	assert_int_equal(raw_auth_send(rp, rp->auth_frame, rp->auth_len), KP_S_OK);
	assert_int_equal(srv.ready, ready + 1);
}

static void raw_expect_closed(struct raw *rp)
{
	pump_until(raw_eof, rp);
	close(rp->fd);
}

/* ---- tests ---- */

static void test_handshake_and_ping(void **state)
{
	struct kp_msg m;
	struct cli cl;
	int ready = srv.ready, closed = srv.closed;

	cli_start(&cl, &key);
	assert_true(cl.ready);
	assert_false(cl.closed);
	assert_true(kp_conn_ready(cl.c));
	assert_non_null(strstr(kp_conn_peer(cl.c), "127.0.0.1:"));
	assert_int_equal(srv.ready, ready + 1);

	cli_ping(&cl, &m, 42);
	pump_until(cli_has_reply, &cl);
	assert_int_equal(cl.replies, 1);
	assert_int_equal(cl.last_req_id, 42);
	assert_int_equal(srv.last_opcode, KP_OP_PING);
	assert_int_equal(cl.done_calls, 1);
	assert_int_equal(cl.done_res, 0);

	cli_close(&cl);
	assert_int_equal(cl.close_err, 0);
	assert_int_equal(cl.done_calls, 1);
	wait_srv_closed(closed + 1);
	assert_string_equal(srv.last_reason, "peer closed");
	assert_int_equal(srv.last_err, 0);
}

static void test_write_with_data(void **state)
{
	static uint8_t data[2 * KP_BLOCK];
	static uint32_t crcs[2];
	struct kp_msg m = {0};
	struct cli cl;

	memset(data, 0xab, sizeof(data));
	crc32c_blocks(data, sizeof(data), crcs);
	cli_start(&cl, &key);
	assert_true(cl.ready);
	m.hdr.opcode = KP_OP_WRITE;
	m.hdr.req_id = 7;
	m.hdr.length = sizeof(data);
	m.hdr.data_len = sizeof(data);
	m.data = data;
	m.crcs = crcs;
	m.done = cli_msg_done;
	m.arg = &cl;
	assert_int_equal(kp_conn_send(cl.c, &m), 0);
	pump_until(cli_has_reply, &cl);
	assert_int_equal(srv.last_opcode, KP_OP_WRITE);
	assert_int_equal(srv.last_data_len, sizeof(data));
	assert_int_equal(srv.last_data_first, 0xab);

	/* invalid messages are refused locally, done never fires */
	m.hdr.data_len = KP_BLOCK;
	assert_int_equal(kp_conn_send(cl.c, &m), -EINVAL);
	m.hdr.opcode = KP_OP_HELLO;
	m.hdr.data_len = 0;
	m.hdr.length = 0;
	assert_int_equal(kp_conn_send(cl.c, &m), -EINVAL);
	assert_int_equal(cl.done_calls, 1);
	cli_close(&cl);
}

static void test_wrong_key(void **state)
{
	struct cli cl;
	int closed = srv.closed, ready = srv.ready;

	cli_start(&cl, &wrong_key);
	assert_true(cl.closed);
	assert_false(cl.ready);
	assert_int_equal(cl.close_err, -EPERM);
	assert_string_equal(cl.close_reason, "server failed authentication");
	wait_srv_closed(closed + 1);
	assert_int_equal(srv.ready, ready);
	assert_int_equal(srv.last_err, -ECONNRESET);
	assert_string_equal(srv.last_reason, "peer closed during handshake");
}

static void test_bad_proof_gets_eperm(void **state)
{
	struct raw rp;
	int closed = srv.closed;

	raw_connect(&rp);
	raw_hello(&rp);
	raw_auth_frame(&rp, &wrong_key);
	assert_int_equal(raw_auth_send(&rp, rp.auth_frame, rp.auth_len), KP_S_EPERM);
	raw_expect_closed(&rp);
	wait_srv_closed(closed + 1);
	assert_int_equal(srv.last_err, -EPERM);
	assert_string_equal(srv.last_reason, "client failed authentication");
}

static void test_unauthenticated_write(void **state)
{
	static uint8_t data[KP_BLOCK];
	struct kp_hdr h = req(KP_OP_WRITE, 1);
	struct raw rp;
	int closed = srv.closed, msgs = srv.msgs;

	raw_connect(&rp);
	h.length = KP_BLOCK;
	h.data_len = KP_BLOCK;
	raw_send_frame(&rp, &h, NULL, data);
	raw_expect_closed(&rp);
	wait_srv_closed(closed + 1);
	assert_int_equal(srv.last_err, -EPROTO);
	assert_string_equal(srv.last_reason, "unauthenticated opcode");
	assert_int_equal(srv.msgs, msgs);
}

static void test_auth_before_hello(void **state)
{
	struct raw rp;
	int closed = srv.closed;

	raw_connect(&rp);
	memset(rp.cn, 1, sizeof(rp.cn));
	raw_auth_frame(&rp, &key);
	raw_write(&rp, rp.auth_frame, rp.auth_len);
	raw_expect_closed(&rp);
	wait_srv_closed(closed + 1);
	assert_string_equal(srv.last_reason, "unauthenticated opcode");
}

static void test_replayed_proof(void **state)
{
	uint8_t recorded[sizeof(((struct raw *)0)->auth_frame)];
	size_t recorded_len;
	struct raw a, b;
	int closed = srv.closed;

	raw_login(&a);
	memcpy(recorded, a.auth_frame, a.auth_len);
	recorded_len = a.auth_len;

	/* New connection, and even the same client nonce: the server's new
	 * nonce makes the old proof worthless. */
	raw_connect(&b);
	raw_hello(&b);
	assert_memory_not_equal(a.sn, b.sn, KP_NONCE_LEN);
	assert_int_equal(raw_auth_send(&b, recorded, recorded_len), KP_S_EPERM);
	raw_expect_closed(&b);
	wait_srv_closed(closed + 1);
	assert_string_equal(srv.last_reason, "client failed authentication");

	close(a.fd);
	wait_srv_closed(closed + 2);
}

static void test_bad_payload_crc(void **state)
{
	static uint8_t frame[KP_HDR_SIZE + KP_BLOCK + 4];
	static uint8_t data[KP_BLOCK];
	struct kp_hdr h = req(KP_OP_WRITE, 9);
	struct kp_msg m;
	struct cli good;
	struct raw rp;
	int closed = srv.closed, msgs = srv.msgs;
	size_t len;

	cli_start(&good, &key);
	assert_true(good.ready);
	raw_login(&rp);
	h.length = KP_BLOCK;
	h.data_len = KP_BLOCK;
	len = frame_build(frame, &h, NULL, data);
	frame[KP_HDR_SIZE + 100] ^= 0x01; /* corrupt data in transit */
	raw_write(&rp, frame, len);
	raw_expect_closed(&rp);
	wait_srv_closed(closed + 1);
	assert_int_equal(srv.last_err, -EBADMSG);
	assert_string_equal(srv.last_reason, "payload crc mismatch");
	assert_int_equal(srv.msgs, msgs);

	/* The other connection is unaffected. */
	cli_ping(&good, &m, 5);
	pump_until(cli_has_reply, &good);
	assert_false(good.closed);
	assert_int_equal(good.last_req_id, 5);
	cli_close(&good);
}

static void test_truncated_frame_at_eof(void **state)
{
	static uint8_t frame[KP_HDR_SIZE + KP_BLOCK + 4];
	static uint8_t data[KP_BLOCK];
	struct kp_hdr h = req(KP_OP_WRITE, 3);
	struct raw rp;
	int closed = srv.closed, msgs = srv.msgs;

	raw_login(&rp);
	h.length = KP_BLOCK;
	h.data_len = KP_BLOCK;
	frame_build(frame, &h, NULL, data);
	raw_write(&rp, frame, KP_HDR_SIZE + 100);
	assert_int_equal(shutdown(rp.fd, SHUT_WR), 0);
	wait_srv_closed(closed + 1);
	assert_int_equal(srv.last_err, -EPROTO);
	assert_string_equal(srv.last_reason, "truncated frame at EOF");
	assert_int_equal(srv.msgs, msgs);
	raw_expect_closed(&rp);
}

static void test_second_hello_after_ready(void **state)
{
	struct kp_hdr h = req(KP_OP_HELLO, 5);
	struct raw rp;
	int closed = srv.closed;

	raw_login(&rp);
	raw_send_frame(&rp, &h, NULL, NULL);
	raw_expect_closed(&rp);
	wait_srv_closed(closed + 1);
	assert_string_equal(srv.last_reason, "repeated handshake opcode");
}

static void test_bad_headers(void **state)
{
	struct kp_hdr h;
	uint8_t w[KP_HDR_SIZE];
	struct raw rp;

	for (int i = 0; i < 4; i++) {
		int closed = srv.closed;
		const char *want;

		raw_login(&rp);
		h = req(KP_OP_WRITE, 1);
		h.length = KP_BLOCK;
		h.data_len = KP_BLOCK;
		switch (i) {
		case 0: /* 4 GiB of data announced: refused from the header */
			h.data_len = UINT32_MAX;
			kp_hdr_encode(&h, w);
			want = "data_len exceeds KP_MAX_DATA";
			break;
		case 1:
			h.meta_len = UINT32_MAX;
			kp_hdr_encode(&h, w);
			want = "meta_len exceeds KP_MAX_META";
			break;
		case 2:
			kp_hdr_encode(&h, w);
			w[0] ^= 0xff;
			want = "bad magic";
			break;
		default:
			kp_hdr_encode(&h, w);
			w[40] ^= 0x01;
			want = "header crc mismatch";
			break;
		}
		raw_write(&rp, w, sizeof(w));
		raw_expect_closed(&rp);
		wait_srv_closed(closed + 1);
		assert_string_equal(srv.last_reason, want);
		assert_true(srv.last_err < 0);
	}
}

/* The largest legal frame (max meta and data) fits and arrives intact
 * although it takes many recvs. */
static void test_max_frame(void **state)
{
	struct kp_hdr h = req(KP_OP_WRITE, 11);
	uint8_t *meta = malloc(KP_MAX_META), *data = malloc(KP_MAX_DATA);
	struct raw rp;
	uint8_t reply_meta[16];
	int msgs = srv.msgs, closed = srv.closed;

	assert_non_null(meta);
	assert_non_null(data);
	memset(meta, 0x5a, KP_MAX_META);
	memset(data, 0xc3, KP_MAX_DATA);
	raw_login(&rp);
	h.meta_len = KP_MAX_META;
	h.length = KP_MAX_DATA;
	h.data_len = KP_MAX_DATA;
	raw_send_frame(&rp, &h, meta, data);
	assert_true(raw_read_frame(&rp, &h, reply_meta, sizeof(reply_meta)));
	assert_int_equal(h.req_id, 11);
	assert_int_equal(srv.msgs, msgs + 1);
	assert_int_equal(srv.last_data_len, KP_MAX_DATA);
	assert_int_equal(srv.last_data_first, 0xc3);
	close(rp.fd);
	wait_srv_closed(closed + 1);
	free(meta);
	free(data);
}

/* A handshake dribbled one byte per loop turn still completes. */
static void test_byte_at_a_time(void **state)
{
	Keel__AuthHello hello = KEEL__AUTH_HELLO__INIT;
	uint8_t frame[KP_HDR_SIZE + 128], meta[128];
	struct kp_hdr h = req(KP_OP_HELLO, 100);
	struct raw rp;
	size_t len;
	int closed = srv.closed;

	raw_connect(&rp);
	assert_int_equal(kp_nonce(rp.cn), 0);
	hello.client_nonce.data = rp.cn;
	hello.client_nonce.len = KP_NONCE_LEN;
	hello.proto_version = KP_VERSION;
	h.meta_len = (uint32_t)keel__auth_hello__pack(&hello, meta);
	len = frame_build(frame, &h, meta, NULL);
	for (size_t i = 0; i < len; i++) {
		raw_write(&rp, frame + i, 1);
		for (int k = 0; k < 3; k++) {
			assert_true(reactor_poll(r, false) >= 0);
		}
	}
	assert_true(raw_read_frame(&rp, &h, meta, sizeof(meta)));
	assert_int_equal(h.opcode, KP_OP_HELLO);
	assert_int_equal(h.status, KP_S_OK);
	close(rp.fd);
	wait_srv_closed(closed + 1);
	assert_string_equal(srv.last_reason, "peer closed during handshake");
}

/* A HELLO for another protocol revision is answered EPROTO, then closed. */
static void test_hello_wrong_proto_version(void **state)
{
	Keel__AuthHello hello = KEEL__AUTH_HELLO__INIT;
	Keel__ErrorInfo *info;
	uint8_t meta[128], nonce[KP_NONCE_LEN] = {0};
	struct kp_hdr h = req(KP_OP_HELLO, 100);
	struct raw rp;
	int closed = srv.closed;

	raw_connect(&rp);
	hello.client_nonce.data = nonce;
	hello.client_nonce.len = KP_NONCE_LEN;
	hello.proto_version = KP_VERSION + 1;
	h.meta_len = (uint32_t)keel__auth_hello__pack(&hello, meta);
	raw_send_frame(&rp, &h, meta, NULL);
	assert_true(raw_read_frame(&rp, &h, meta, sizeof(meta)));
	assert_int_equal(h.status, KP_S_EPROTO);
	info = keel__error_info__unpack(NULL, h.meta_len, meta);
	assert_non_null(info);
	assert_string_equal(info->message, "unsupported protocol version");
	keel__error_info__free_unpacked(info, NULL);
	raw_expect_closed(&rp);
	wait_srv_closed(closed + 1);
	assert_int_equal(srv.last_err, -EPROTO);
}

/* The owner closes from on_msg while more frames sit in the same buffer:
 * nothing more is delivered, nothing is freed too early (ASan). */
static void test_close_from_on_msg(void **state)
{
	uint8_t frames[3 * KP_HDR_SIZE];
	struct kp_hdr h;
	struct raw rp;
	int closed = srv.closed, msgs;

	raw_login(&rp);
	msgs = srv.msgs;
	srv.close_on_opcode = KP_OP_STAT;
	h = req(KP_OP_PING, 1);
	kp_hdr_encode(&h, frames);
	h = req(KP_OP_STAT, 2);
	kp_hdr_encode(&h, frames + KP_HDR_SIZE);
	h = req(KP_OP_PING, 3);
	kp_hdr_encode(&h, frames + 2 * KP_HDR_SIZE);
	raw_write(&rp, frames, sizeof(frames));
	wait_srv_closed(closed + 1);
	srv.close_on_opcode = 0;
	assert_int_equal(srv.msgs, msgs + 2);
	assert_int_equal(srv.last_req_id, 2);
	assert_int_equal(srv.last_err, 0);
	assert_string_equal(srv.last_reason, "owner closed from on_msg");
	raw_expect_closed(&rp);
}

/* done fires exactly once even when the conn closes first, and before
 * on_close. */
static void test_done_before_close(void **state)
{
	struct kp_msg m[4];
	struct cli cl;
	int closed = srv.closed;

	cli_start(&cl, &key);
	assert_true(cl.ready);
	for (int i = 0; i < 4; i++) {
		cli_ping(&cl, &m[i], (uint64_t)i);
	}
	kp_conn_close(cl.c, -ECANCELED, "test abort");
	assert_int_equal(kp_conn_send(cl.c, &m[0]), -ENOTCONN);
	pump_until(cli_closed, &cl);
	assert_int_equal(cl.done_calls, 4);
	assert_int_equal(cl.done_at_close, 4);
	assert_int_equal(cl.close_err, -ECANCELED);
	wait_srv_closed(closed + 1);
}

/* ---- setup ---- */

static void make_key(struct kp_key *k, uint8_t seed)
{
	k->len = 32;
	for (size_t i = 0; i < k->len; i++) {
		k->bytes[i] = (uint8_t)(seed + i * 13);
	}
}

static int group_setup(void **state)
{
	const char *a;

	make_key(&key, 1);
	make_key(&wrong_key, 2);
	if (xport_tcp_ops.listen(r, "127.0.0.1:0", &lis)) {
		return -1;
	}
	a = xport_tcp_ops.listen_addr(lis);
	snprintf(addr, sizeof(addr), "%s", a);
	return xport_tcp_ops.accept_start(lis, on_accept, NULL);
}

/* ---- in-process message faults ---- */

static bool cli_done_n(void *arg)
{
	struct cli *cl = arg;

	return cl->done_calls >= 4 || cl->closed;
}

/* Run the reactor for about @ns. */
static void pump_for(uint64_t ns)
{
	uint64_t until = reactor_now_ns() + ns;

	while (reactor_now_ns() < until) {
		if (!ticking) {
			ticking = true;
			assert_int_equal(reactor_timer_start(r, &tick, TICK_NS, tick_fn), 0);
		}
		assert_true(reactor_poll(r, true) >= 0);
	}
}

static void test_fault_drop_every_nth(void **state)
{
	struct kp_fault f = {.drop_every = 2};
	struct kp_msg m[4];
	struct cli cl;
	int msgs = srv.msgs;

	cli_start(&cl, &key);
	assert_true(cl.ready);
	kp_conn_set_fault(cl.c, &f);
	for (int i = 0; i < 4; i++) {
		cli_ping(&cl, &m[i], 100 + i);
	}
	pump_until(cli_done_n, &cl);
	pump_for(100ull * 1000 * 1000);
	/* the server answered all four; replies 2 and 4 were lost */
	assert_int_equal(srv.msgs, msgs + 4);
	assert_int_equal(cl.replies, 2);
	assert_int_equal(cl.last_req_id, 102);
	assert_int_equal(f.rx_frames, 4);
	assert_int_equal(f.dropped, 2);
	assert_false(cl.closed);
	cli_close(&cl);
}

static void test_fault_corrupt_header(void **state)
{
	struct kp_fault f = {.corrupt_every = 1};
	uint64_t before = kp_conn_stats.hdr_crc_errors;
	struct kp_msg m;
	struct cli cl;

	cli_start(&cl, &key);
	assert_true(cl.ready);
	kp_conn_set_fault(cl.c, &f);
	cli_ping(&cl, &m, 7);
	pump_until(cli_closed, &cl);
	assert_int_equal(cl.replies, 0);
	assert_int_equal(cl.close_err, -EBADMSG);
	assert_string_equal(cl.close_reason, "header crc mismatch");
	assert_int_equal(f.corrupted, 1);
	assert_int_equal(kp_conn_stats.hdr_crc_errors, before + 1);
}

static void test_fault_corrupt_payload(void **state)
{
	static uint8_t data[2 * KP_BLOCK];
	static uint32_t crcs[2];
	struct kp_fault f = {.corrupt_every = 1};
	uint64_t before = kp_conn_stats.data_crc_errors;
	int closed = srv.closed, msgs = srv.msgs;
	struct kp_msg m = {0};
	struct cli cl;

	memset(data, 0x3c, sizeof(data));
	crc32c_blocks(data, sizeof(data), crcs);
	srv_fault = &f; /* the server side of the next connection */
	cli_start(&cl, &key);
	srv_fault = NULL;
	assert_true(cl.ready);
	m.hdr.opcode = KP_OP_WRITE;
	m.hdr.req_id = 8;
	m.hdr.length = sizeof(data);
	m.hdr.data_len = sizeof(data);
	m.data = data;
	m.crcs = crcs;
	m.done = cli_msg_done;
	m.arg = &cl;
	assert_int_equal(kp_conn_send(cl.c, &m), 0);
	pump_until(cli_closed, &cl);
	wait_srv_closed(closed + 1);
	assert_int_equal(srv.msgs, msgs);
	assert_int_equal(srv.last_err, -EBADMSG);
	assert_string_equal(srv.last_reason, "payload crc mismatch");
	assert_int_equal(f.corrupted, 1);
	assert_int_equal(kp_conn_stats.data_crc_errors, before + 1);
	/* the sender's buffer is untouched: only the receiver's copy was hit */
	for (size_t i = 0; i < sizeof(data); i++) {
		assert_int_equal(data[i], 0x3c);
	}
}

static bool srv_msgs_n(void *arg)
{
	return srv.msgs >= *(int *)arg;
}

static void test_fault_delay(void **state)
{
	struct kp_fault f = {.delay_every = 2, .delay_ms = 300};
	struct kp_msg m[4];
	struct cli cl;
	int msgs = srv.msgs, want;
	uint64_t t0;

	cli_start(&cl, &key);
	assert_true(cl.ready);
	kp_conn_set_fault(cl.c, &f);
	t0 = reactor_now_ns();
	cli_ping(&cl, &m[0], 1);
	want = msgs + 1;
	pump_until(srv_msgs_n, &want);
	assert_true(reactor_now_ns() - t0 < 250ull * 1000 * 1000);
	/* the second frame holds the output; the third queues behind it */
	t0 = reactor_now_ns();
	cli_ping(&cl, &m[1], 2);
	cli_ping(&cl, &m[2], 3);
	want = msgs + 3;
	pump_until(srv_msgs_n, &want);
	assert_true(reactor_now_ns() - t0 >= 300ull * 1000 * 1000);
	assert_int_equal(srv.last_req_id, 3); /* order kept */
	assert_int_equal(f.delayed, 1);
	assert_int_equal(f.tx_frames, 3);
	/* closing while output is held: the held send completes (with an
	 * error) and the connection is released once the hold ends */
	cli_ping(&cl, &m[3], 4);
	assert_int_equal(f.delayed, 2);
	cli_close(&cl);
	assert_int_equal(cl.done_at_close, 4);
	assert_int_equal(srv.last_req_id, 3);
}

static bool tick_idle(void *arg)
{
	return reactor_timer_idle(&tick);
}

static int group_teardown(void **state)
{
	xport_tcp_ops.listen_close(lis);
	if (ticking) {
		reactor_timer_cancel(r, &tick);
	}
	for (int i = 0; i < 10; i++) {
		reactor_poll(r, false);
	}
	pump_until(tick_idle, NULL);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_ping),
		cmocka_unit_test(test_write_with_data),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_bad_proof_gets_eperm),
		cmocka_unit_test(test_unauthenticated_write),
		cmocka_unit_test(test_auth_before_hello),
		cmocka_unit_test(test_replayed_proof),
		cmocka_unit_test(test_bad_payload_crc),
		cmocka_unit_test(test_truncated_frame_at_eof),
		cmocka_unit_test(test_second_hello_after_ready),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_max_frame),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_hello_wrong_proto_version),
		cmocka_unit_test(test_close_from_on_msg),
		cmocka_unit_test(test_done_before_close),
		cmocka_unit_test(test_fault_drop_every_nth),
		cmocka_unit_test(test_fault_corrupt_header),
		cmocka_unit_test(test_fault_corrupt_payload),
		cmocka_unit_test(test_fault_delay),
	};
	int ret;

	ret = reactor_create(256, &r);
	if (ret == -ENOSYS || ret == -EPERM) {
		fprintf(stderr, "io_uring unavailable (%s): skipping\n", strerror(-ret));
		return 77;
	}
	if (ret) {
		fprintf(stderr, "reactor_create: %s\n", strerror(-ret));
		return 1;
	}
	ret = cmocka_run_group_tests(tests, group_setup, group_teardown);
	reactor_destroy(r);
	return ret;
}
