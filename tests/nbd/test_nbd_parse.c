/* SPDX-License-Identifier: Apache-2.0 */
/* nbd_parse: handshake, option haggling, request validation, errno mapping. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/nbd_parse.h"

#define GIB (1ull << 30)

static const struct nbd_export rw_export = {
	.name = "vol",
	.description = "a test volume",
	.size = GIB,
	.read_only = false,
};

static const struct nbd_export ro_export = {
	.name = "vol",
	.size = GIB,
	.read_only = true,
};

/* One option reply as found in an obuf. */
struct reply {
	uint32_t option, type, len;
	const uint8_t *data;
};

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return be16toh(v);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

/* Split @o into replies; fails the test on a malformed sequence. */
static int split_replies(const struct nbd_obuf *o, struct reply *out, int max)
{
	size_t off = 0;
	int n = 0;

	while (off < o->len) {
		assert_true(o->len - off >= sizeof(struct nbd_opt_reply));
		assert_true(n < max);
		assert_int_equal(rd64(o->buf + off), NBD_REP_MAGIC);
		out[n].option = rd32(o->buf + off + 8);
		out[n].type = rd32(o->buf + off + 12);
		out[n].len = rd32(o->buf + off + 16);
		off += sizeof(struct nbd_opt_reply);
		assert_true(o->len - off >= out[n].len);
		out[n].data = o->buf + off;
		off += out[n].len;
		n++;
	}
	return n;
}

/* NBD_OPT_GO / INFO data: name, then the info types. */
static uint32_t go_data(uint8_t *buf, const char *name, const uint16_t *info, uint16_t n_info)
{
	uint32_t nl = (uint32_t)strlen(name), off = 0;
	uint32_t be32 = htobe32(nl);
	uint16_t be16 = htobe16(n_info);

	memcpy(buf, &be32, 4);
	off += 4;
	memcpy(buf + off, name, nl);
	off += nl;
	memcpy(buf + off, &be16, 2);
	off += 2;
	for (uint16_t i = 0; i < n_info; i++) {
		be16 = htobe16(info[i]);
		memcpy(buf + off, &be16, 2);
		off += 2;
	}
	return off;
}

static void test_greeting_and_client_flags(void **state)
{
	struct nbd_greeting g;
	uint8_t w[4];
	bool nz = true;

	nbd_build_greeting(&g);
	assert_memory_equal(&g, "NBDMAGICIHAVEOPT\x00\x03", sizeof(g));

	memcpy(w, "\0\0\0\x01", 4);
	assert_int_equal(nbd_parse_client_flags(w, &nz), 0);
	assert_false(nz);
	memcpy(w, "\0\0\0\x03", 4);
	assert_int_equal(nbd_parse_client_flags(w, &nz), 0);
	assert_true(nz);
	memcpy(w, "\0\0\0\0", 4); /* not fixed newstyle: served anyway */
	assert_int_equal(nbd_parse_client_flags(w, &nz), 0);
	memcpy(w, "\0\0\0\x04", 4);
	assert_int_equal(nbd_parse_client_flags(w, &nz), -EPROTO);
	memcpy(w, "\x80\0\0\x01", 4);
	assert_int_equal(nbd_parse_client_flags(w, &nz), -EPROTO);
	/* A client that skips the handshake and sends a request magic. */
	memcpy(w, "\x25\x60\x95\x13", 4);
	assert_int_equal(nbd_parse_client_flags(w, &nz), -EPROTO);
}

static void test_opt_hdr(void **state)
{
	uint8_t w[16] = "IHAVEOPT\0\0\0\x07\0\0\x10\x01";
	uint32_t opt, len;

	assert_int_equal(nbd_parse_opt_hdr(w, &opt, &len), 0);
	assert_int_equal(opt, NBD_OPT_GO);
	assert_int_equal(len, 4097);
	w[0] = 'X';
	assert_int_equal(nbd_parse_opt_hdr(w, &opt, &len), -EPROTO);
}

static void test_export_flags(void **state)
{
	uint16_t f = nbd_export_flags(&rw_export);

	assert_true(f & NBD_FLAG_HAS_FLAGS);
	assert_true(f & NBD_FLAG_SEND_FLUSH);
	assert_true(f & NBD_FLAG_SEND_FUA);
	assert_true(f & NBD_FLAG_SEND_TRIM);
	assert_true(f & NBD_FLAG_SEND_WRITE_ZEROES);
	assert_true(f & NBD_FLAG_CAN_MULTI_CONN);
	assert_false(f & NBD_FLAG_READ_ONLY);
	assert_false(f & NBD_FLAG_SEND_DF); /* no structured replies */
	assert_true(nbd_export_flags(&ro_export) & NBD_FLAG_READ_ONLY);
}

static void test_export_name(void **state)
{
	uint8_t buf[NBD_OBUF_SIZE];
	struct nbd_obuf o = {.buf = buf, .cap = sizeof(buf)};

	assert_int_equal(nbd_opt_handle(&rw_export, false, NBD_OPT_EXPORT_NAME,
					(const uint8_t *)"vol", 3, &o),
			 NBD_OPT_ACT_TRANSMIT);
	assert_int_equal(o.len, 134);
	assert_int_equal(rd64(buf), GIB);
	assert_int_equal(rd16(buf + 8), nbd_export_flags(&rw_export));
	for (int i = 10; i < 134; i++) {
		assert_int_equal(buf[i], 0);
	}

	o.len = 0;
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_EXPORT_NAME,
					(const uint8_t *)"vol", 3, &o),
			 NBD_OPT_ACT_TRANSMIT);
	assert_int_equal(o.len, 10);

	o.len = 0; /* the empty name is the default export */
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_EXPORT_NAME, NULL, 0, &o),
			 NBD_OPT_ACT_TRANSMIT);

	o.len = 0; /* unknown: nothing to say but hang up */
	assert_int_equal(
		nbd_opt_handle(&rw_export, true, NBD_OPT_EXPORT_NAME, (const uint8_t *)"vo", 2, &o),
		NBD_OPT_ACT_CLOSE);
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_EXPORT_NAME,
					(const uint8_t *)"vol\0", 4, &o),
			 NBD_OPT_ACT_CLOSE);
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_EXPORT_NAME,
					(const uint8_t *)"volume", 6, &o),
			 NBD_OPT_ACT_CLOSE);
	assert_int_equal(o.len, 0);
}

static void test_go_and_info(void **state)
{
	static const uint16_t want[] = {NBD_INFO_NAME, NBD_INFO_DESCRIPTION, 999,
					NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME};
	uint8_t data[256], buf[NBD_OBUF_SIZE];
	struct nbd_obuf o = {.buf = buf, .cap = sizeof(buf)};
	struct reply r[16];
	uint32_t len;
	int n;

	/* No information asked: EXPORT and BLOCK_SIZE anyway, then ACK. */
	len = go_data(data, "vol", NULL, 0);
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_GO, data, len, &o),
			 NBD_OPT_ACT_TRANSMIT);
	n = split_replies(&o, r, 16);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].type, NBD_REP_INFO);
	assert_int_equal(r[0].option, NBD_OPT_GO);
	assert_int_equal(r[0].len, 12);
	assert_int_equal(rd16(r[0].data), NBD_INFO_EXPORT);
	assert_int_equal(rd64(r[0].data + 2), GIB);
	assert_int_equal(rd16(r[0].data + 10), nbd_export_flags(&rw_export));
	assert_int_equal(r[1].len, 14);
	assert_int_equal(rd16(r[1].data), NBD_INFO_BLOCK_SIZE);
	assert_int_equal(rd32(r[1].data + 2), 4096);
	assert_int_equal(rd32(r[1].data + 6), 4096);
	assert_int_equal(rd32(r[1].data + 10), NBD_MAX_PAYLOAD);
	assert_int_equal(r[2].type, NBD_REP_ACK);
	assert_int_equal(r[2].len, 0);

	/* INFO with NAME and DESCRIPTION (asked twice, once each answered;
	 * unknown types ignored); INFO stays in option haggling. */
	o.len = 0;
	len = go_data(data, "vol", want, 5);
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_INFO, data, len, &o),
			 NBD_OPT_ACT_NEXT);
	n = split_replies(&o, r, 16);
	assert_int_equal(n, 5);
	assert_int_equal(rd16(r[2].data), NBD_INFO_NAME);
	assert_int_equal(r[2].len, 2 + 3);
	assert_memory_equal(r[2].data + 2, "vol", 3);
	assert_int_equal(rd16(r[3].data), NBD_INFO_DESCRIPTION);
	assert_memory_equal(r[3].data + 2, "a test volume", 13);
	assert_int_equal(r[4].type, NBD_REP_ACK);

	/* The default export. */
	o.len = 0;
	len = go_data(data, "", NULL, 0);
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_GO, data, len, &o),
			 NBD_OPT_ACT_TRANSMIT);

	/* Unknown export. */
	o.len = 0;
	len = go_data(data, "other", NULL, 0);
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_GO, data, len, &o),
			 NBD_OPT_ACT_NEXT);
	n = split_replies(&o, r, 16);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].type, NBD_REP_ERR_UNKNOWN);
	assert_true(r[0].len > 0); /* a message for the user */
}

static void expect_invalid(const uint8_t *data, uint32_t len)
{
	uint8_t buf[NBD_OBUF_SIZE];
	struct nbd_obuf o = {.buf = buf, .cap = sizeof(buf)};
	struct reply r[4];

	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_GO, data, len, &o),
			 NBD_OPT_ACT_NEXT);
	assert_int_equal(split_replies(&o, r, 4), 1);
	assert_int_equal(r[0].type, NBD_REP_ERR_INVALID);
}

static void test_go_malformed(void **state)
{
	static const uint16_t want[] = {NBD_INFO_NAME};
	uint8_t data[64] = {0};
	uint32_t len;

	expect_invalid(data, 0);
	expect_invalid((const uint8_t *)"\0\0\0\0\0", 5);
	/* Name length past the data. */
	memcpy(data, "\xff\xff\xff\xff\0\0", 6);
	expect_invalid(data, 6);
	memcpy(data, "\0\0\0\x04vol\0\0", 9);
	expect_invalid(data, 9);
	/* Info count says more (or fewer) than the data holds. */
	len = go_data(data, "vol", want, 1);
	expect_invalid(data, len - 1);
	expect_invalid(data, len - 2);
	data[len] = 0;
	expect_invalid(data, len + 1);
	memcpy(data + 7, "\xff\xff", 2);
	expect_invalid(data, len);
}

static void test_list_abort_unsupported(void **state)
{
	uint8_t buf[NBD_OBUF_SIZE];
	struct nbd_obuf o = {.buf = buf, .cap = sizeof(buf)};
	struct reply r[4];

	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_LIST, NULL, 0, &o),
			 NBD_OPT_ACT_NEXT);
	assert_int_equal(split_replies(&o, r, 4), 2);
	assert_int_equal(r[0].type, NBD_REP_SERVER);
	assert_int_equal(r[0].len, 4 + 3);
	assert_int_equal(rd32(r[0].data), 3);
	assert_memory_equal(r[0].data + 4, "vol", 3);
	assert_int_equal(r[1].type, NBD_REP_ACK);

	o.len = 0;
	assert_int_equal(
		nbd_opt_handle(&rw_export, true, NBD_OPT_LIST, (const uint8_t *)"x", 1, &o),
		NBD_OPT_ACT_NEXT);
	assert_int_equal(split_replies(&o, r, 4), 1);
	assert_int_equal(r[0].type, NBD_REP_ERR_INVALID);

	o.len = 0;
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_ABORT, NULL, 0, &o),
			 NBD_OPT_ACT_CLOSE_AFTER);
	assert_int_equal(split_replies(&o, r, 4), 1);
	assert_int_equal(r[0].type, NBD_REP_ACK);
	assert_int_equal(r[0].option, NBD_OPT_ABORT);

	static const uint32_t unsup[] = {NBD_OPT_STRUCTURED_REPLY,
					 NBD_OPT_STARTTLS,
					 NBD_OPT_LIST_META_CONTEXT,
					 NBD_OPT_SET_META_CONTEXT,
					 0,
					 4,
					 0x1234,
					 0xffffffffu};
	for (size_t i = 0; i < sizeof(unsup) / sizeof(unsup[0]); i++) {
		o.len = 0;
		assert_int_equal(nbd_opt_handle(&rw_export, true, unsup[i], NULL, 0, &o),
				 NBD_OPT_ACT_NEXT);
		assert_int_equal(split_replies(&o, r, 4), 1);
		assert_int_equal(r[0].type, NBD_REP_ERR_UNSUP);
		assert_int_equal(r[0].option, unsup[i]);
	}
}

static void test_too_big_and_overflow(void **state)
{
	uint8_t buf[NBD_OBUF_SIZE], small[24];
	struct nbd_obuf o = {.buf = buf, .cap = sizeof(buf)};
	struct reply r[4];

	assert_int_equal(nbd_opt_too_big(NBD_OPT_GO, &o), NBD_OPT_ACT_CLOSE_AFTER);
	assert_int_equal(split_replies(&o, r, 4), 1);
	assert_int_equal(r[0].type, NBD_REP_ERR_TOO_BIG);
	o.len = 0;
	assert_int_equal(nbd_opt_too_big(NBD_OPT_EXPORT_NAME, &o), NBD_OPT_ACT_CLOSE);
	assert_int_equal(o.len, 0);
	/* nbd_opt_handle refuses lengths it was not meant to get. */
	assert_int_equal(
		nbd_opt_handle(&rw_export, true, NBD_OPT_LIST, buf, NBD_OPT_MAX_LEN + 1, &o),
		NBD_OPT_ACT_CLOSE_AFTER);

	/* A reply that does not fit is a close, never a partial write. */
	o = (struct nbd_obuf){.buf = small, .cap = sizeof(small)};
	assert_int_equal(nbd_opt_handle(&rw_export, true, NBD_OPT_LIST, NULL, 0, &o),
			 NBD_OPT_ACT_CLOSE);
	assert_true(o.len <= sizeof(small));
}

/* Random option data never makes a malformed reply sequence (and under
 * ASan never reads past @len). */
static void test_opt_random(void **state)
{
	uint8_t *data = malloc(NBD_OPT_MAX_LEN), buf[NBD_OBUF_SIZE];
	struct reply r[16];

	assert_non_null(data);
	srandom(42);
	for (int iter = 0; iter < 20000; iter++) {
		struct nbd_obuf o = {.buf = buf, .cap = sizeof(buf)};
		uint32_t len = (uint32_t)random() % (iter % 3 ? 32 : NBD_OPT_MAX_LEN + 1);
		uint32_t opt = (uint32_t)random() % 12;
		enum nbd_opt_action act;
		uint8_t *p;

		for (uint32_t i = 0; i < len; i++) {
			data[i] = (uint8_t)random();
		}
		if (len >= 4 && iter % 2) { /* plausible name lengths */
			uint32_t nl = htobe32((uint32_t)random() % len);

			memcpy(data, &nl, 4);
		}
		/* Exactly @len readable bytes: copy to the end of a buffer. */
		p = malloc(len ? len : 1);
		assert_non_null(p);
		memcpy(p, data, len);
		act = nbd_opt_handle(&rw_export, iter & 1, opt, p, len, &o);
		free(p);
		if (opt != NBD_OPT_EXPORT_NAME) {
			assert_true(split_replies(&o, r, 16) >= 1);
			assert_int_not_equal(act, NBD_OPT_ACT_CLOSE);
		}
	}
	free(data);
}

static struct nbd_req_hdr req(uint16_t type, uint16_t flags, uint64_t off, uint32_t len)
{
	return (struct nbd_req_hdr){.type = type, .flags = flags, .offset = off, .length = len};
}

static int check(const struct nbd_export *x, struct nbd_req_hdr h, uint32_t *payload)
{
	return nbd_check_request(x, &h, payload);
}

static void test_parse_request(void **state)
{
	uint8_t w[28];
	struct nbd_req_hdr h;

	memcpy(w,
	       "\x25\x60\x95\x13\x00\x01\x00\x01"
	       "ABCDEFGH"
	       "\0\0\0\0\0\x10\0\0"
	       "\0\0\x10\0",
	       28);
	assert_int_equal(nbd_parse_request(w, &h), 0);
	assert_int_equal(h.flags, NBD_CMD_FLAG_FUA);
	assert_int_equal(h.type, NBD_CMD_WRITE);
	assert_memory_equal(&h.handle, "ABCDEFGH", 8);
	assert_int_equal(h.offset, 0x100000);
	assert_int_equal(h.length, 4096);
	w[3] = 0x14;
	assert_int_equal(nbd_parse_request(w, &h), -EPROTO);
	/* An option magic in transmission is a framing error too. */
	memcpy(w, "IHAVEOPT", 8);
	assert_int_equal(nbd_parse_request(w, &h), -EPROTO);
}

static void test_check_request(void **state)
{
	uint32_t pl;

	/* Good requests. */
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, 0, 4096), &pl), 0);
	assert_int_equal(pl, 0);
	assert_int_equal(
		check(&rw_export, req(NBD_CMD_READ, NBD_CMD_FLAG_FUA, GIB - 4096, 4096), &pl), 0);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, 0, 8192, 65536), &pl), 0);
	assert_int_equal(pl, 65536);
	assert_int_equal(
		check(&rw_export, req(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, NBD_MAX_PAYLOAD), &pl),
		0);
	assert_int_equal(check(&rw_export, req(NBD_CMD_FLUSH, 0, 0, 0), &pl), 0);
	assert_int_equal(check(&rw_export, req(NBD_CMD_TRIM, 0, 0, (uint32_t)(GIB - 4096)), &pl),
			 0);
	assert_int_equal(check(&rw_export,
			       req(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA,
				   4096, 1u << 30 >> 1),
			       &pl),
			 0);
	assert_int_equal(check(&rw_export, req(NBD_CMD_DISC, 0, 0, 0), &pl), 0);

	/* Unknown commands and flags. */
	for (uint16_t t = 5; t < 40; t++) {
		if (t != NBD_CMD_WRITE_ZEROES) {
			assert_int_equal(check(&rw_export, req(t, 0, 0, 4096), &pl), -EINVAL);
		}
	}
	assert_int_equal(check(&rw_export, req(0xffff, 0, 0, 4096), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 4096), &pl),
			 -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 4096), &pl),
			 -EINVAL);
	assert_int_equal(pl, 4096); /* rejected, but the payload is still read */
	assert_int_equal(
		check(&rw_export, req(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, 4096), &pl),
		-EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_TRIM, 0x8000, 0, 4096), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_FLUSH, 0, 4096, 0), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_FLUSH, 0, 0, 4096), &pl), -EINVAL);

	/* Alignment and zero length. */
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, 512, 4096), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, 0, 512), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, 0, 0), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, 0, 1, 4096), &pl), -EINVAL);
	assert_int_equal(pl, 4096);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, 0, 0, 100), &pl), -EINVAL);
	assert_int_equal(pl, 100);
	assert_int_equal(check(&rw_export, req(NBD_CMD_TRIM, 0, 4096, 1), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE_ZEROES, 0, 2048, 4096), &pl), -EINVAL);

	/* Past the end: ENOSPC for writes, EINVAL for reads and trims. */
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, GIB, 4096), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, GIB - 4096, 8192), &pl), -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, UINT64_MAX - 4095, 4096), &pl),
			 -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, 0, GIB, 4096), &pl), -ENOSPC);
	assert_int_equal(pl, 4096);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, 0, UINT64_MAX - 4095, 8192), &pl),
			 -ENOSPC);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE_ZEROES, 0, GIB - 4096, 8192), &pl),
			 -ENOSPC);
	assert_int_equal(check(&rw_export, req(NBD_CMD_TRIM, 0, GIB, 4096), &pl), -EINVAL);

	/* Payload limits: a READ over the maximum is an error reply, a WRITE
	 * over it cannot be skipped and closes the connection. */
	assert_int_equal(check(&rw_export, req(NBD_CMD_READ, 0, 0, NBD_MAX_PAYLOAD + 4096), &pl),
			 -EINVAL);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, 0, 0, NBD_MAX_PAYLOAD + 4096), &pl),
			 -EMSGSIZE);
	assert_int_equal(pl, 0);
	assert_int_equal(check(&rw_export, req(NBD_CMD_WRITE, 0, 0, UINT32_MAX), &pl), -EMSGSIZE);
	assert_int_equal(check(&ro_export, req(NBD_CMD_WRITE, 0, 0, UINT32_MAX), &pl), -EMSGSIZE);

	/* Read-only. */
	assert_int_equal(check(&ro_export, req(NBD_CMD_READ, 0, 0, 4096), &pl), 0);
	assert_int_equal(check(&ro_export, req(NBD_CMD_FLUSH, 0, 0, 0), &pl), 0);
	assert_int_equal(check(&ro_export, req(NBD_CMD_WRITE, 0, 0, 4096), &pl), -EPERM);
	assert_int_equal(pl, 4096);
	assert_int_equal(check(&ro_export, req(NBD_CMD_TRIM, 0, 0, 4096), &pl), -EPERM);
	assert_int_equal(check(&ro_export, req(NBD_CMD_WRITE_ZEROES, 0, 0, 4096), &pl), -EPERM);
}

/* Property: a request passes only when it is a known command with known
 * flags inside the export, aligned, within the payload limit. */
static void test_check_random(void **state)
{
	srandom(7);
	for (int i = 0; i < 200000; i++) {
		const struct nbd_export *x = i & 1 ? &ro_export : &rw_export;
		struct nbd_req_hdr h = {
			.type = (uint16_t)(random() % 9),
			.flags = (uint16_t)(random() % 4 ? 0 : random() % 32),
			.offset = random() % 3 ? (uint64_t)(random() % 300000) * 4096
					       : ((uint64_t)random() << 33) ^ (uint64_t)random(),
			.length = random() % 3 ? (uint32_t)(random() % 10000) * 4096
					       : (uint32_t)random(),
		};
		uint32_t pl;
		int rc = nbd_check_request(x, &h, &pl);

		if (h.type == NBD_CMD_FLUSH || h.type == NBD_CMD_DISC) {
			continue;
		}
		if (rc == 0) {
			assert_true(h.type == NBD_CMD_READ || h.type == NBD_CMD_WRITE ||
				    h.type == NBD_CMD_TRIM || h.type == NBD_CMD_WRITE_ZEROES);
			assert_true(h.length > 0);
			assert_int_equal(h.offset % 4096, 0);
			assert_int_equal(h.length % 4096, 0);
			assert_true(h.offset + h.length <= x->size);
			assert_true(h.offset < x->size);
			if (h.type != NBD_CMD_READ) {
				assert_false(x->read_only);
			}
			if (h.type == NBD_CMD_READ || h.type == NBD_CMD_WRITE) {
				assert_true(h.length <= NBD_MAX_PAYLOAD);
			}
		}
		if (h.type == NBD_CMD_WRITE && rc != -EMSGSIZE) {
			assert_int_equal(pl, h.length);
			assert_true(pl <= NBD_MAX_PAYLOAD);
		} else {
			assert_int_equal(pl, 0);
		}
	}
}

static void test_errno_to_wire(void **state)
{
	assert_int_equal(nbd_errno_to_wire(0), 0);
	assert_int_equal(nbd_errno_to_wire(-EIO), NBD_EIO);
	assert_int_equal(nbd_errno_to_wire(-ENOSPC), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_wire(-EPERM), NBD_EPERM);
	assert_int_equal(nbd_errno_to_wire(-EROFS), NBD_EPERM);
	assert_int_equal(nbd_errno_to_wire(-EINVAL), NBD_EINVAL);
	assert_int_equal(nbd_errno_to_wire(-ERANGE), NBD_EINVAL);
	assert_int_equal(nbd_errno_to_wire(-ECANCELED), NBD_ESHUTDOWN);
	assert_int_equal(nbd_errno_to_wire(-ESHUTDOWN), NBD_ESHUTDOWN);
	assert_int_equal(nbd_errno_to_wire(-ENOMEM), NBD_ENOMEM);
	assert_int_equal(nbd_errno_to_wire(-ETIMEDOUT), NBD_EIO);
	assert_int_equal(nbd_errno_to_wire(-EAGAIN), NBD_EIO);
	/* The wire values are the spec's, whatever this platform's errno. */
	assert_int_equal(NBD_EPERM, 1);
	assert_int_equal(NBD_EIO, 5);
	assert_int_equal(NBD_EINVAL, 22);
	assert_int_equal(NBD_ENOSPC, 28);
	assert_int_equal(NBD_ESHUTDOWN, 108);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_and_client_flags),
		cmocka_unit_test(test_opt_hdr),
		cmocka_unit_test(test_export_flags),
		cmocka_unit_test(test_export_name),
		cmocka_unit_test(test_go_and_info),
		cmocka_unit_test(test_go_malformed),
		cmocka_unit_test(test_list_abort_unsupported),
		cmocka_unit_test(test_too_big_and_overflow),
		cmocka_unit_test(test_opt_random),
		cmocka_unit_test(test_parse_request),
		cmocka_unit_test(test_check_request),
		cmocka_unit_test(test_check_random),
		cmocka_unit_test(test_errno_to_wire),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
