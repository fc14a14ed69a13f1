/* SPDX-License-Identifier: Apache-2.0 */
/* NBD handshake, option and request decisions; see nbd_parse.h. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "client/nbd_parse.h"

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return be32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

uint16_t nbd_handshake_flags(void)
{
	return NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES;
}

uint16_t nbd_export_flags(const struct nbd_export *x)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		     NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_CAN_MULTI_CONN;

	if (x->read_only) {
		f |= NBD_FLAG_READ_ONLY;
	}
	return f;
}

void nbd_build_greeting(struct nbd_greeting *g)
{
	g->init_magic = htobe64(NBD_INIT_MAGIC);
	g->opts_magic = htobe64(NBD_OPTS_MAGIC);
	g->hs_flags = htobe16(nbd_handshake_flags());
}

int nbd_parse_client_flags(const uint8_t wire[4], bool *no_zeroes)
{
	uint32_t f = get32(wire);

	if (f & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		return -EPROTO;
	}
	*no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
	return 0;
}

int nbd_parse_opt_hdr(const uint8_t wire[16], uint32_t *option, uint32_t *length)
{
	if (get64(wire) != NBD_OPTS_MAGIC) {
		return -EPROTO;
	}
	*option = get32(wire + 8);
	*length = get32(wire + 12);
	return 0;
}

/* --- option replies --- */

static void obuf_put(struct nbd_obuf *o, const void *p, size_t n)
{
	if (o->overflow || n > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void obuf_put16(struct nbd_obuf *o, uint16_t v)
{
	v = htobe16(v);
	obuf_put(o, &v, sizeof(v));
}

static void obuf_put32(struct nbd_obuf *o, uint32_t v)
{
	v = htobe32(v);
	obuf_put(o, &v, sizeof(v));
}

static void opt_reply_hdr(struct nbd_obuf *o, uint32_t option, uint32_t type, uint32_t len)
{
	struct nbd_opt_reply r = {
		.magic = htobe64(NBD_REP_MAGIC),
		.option = htobe32(option),
		.type = htobe32(type),
		.length = htobe32(len),
	};

	obuf_put(o, &r, sizeof(r));
}

/* An error reply carries a message for the human at the client. */
static void opt_reply_err(struct nbd_obuf *o, uint32_t option, uint32_t type, const char *msg)
{
	size_t n = strlen(msg);

	opt_reply_hdr(o, option, type, (uint32_t)n);
	obuf_put(o, msg, n);
}

static bool name_matches(const struct nbd_export *x, const uint8_t *name, uint32_t len)
{
	/* The empty name is the default export, which is ours. */
	return len == 0 || (len == strlen(x->name) && !memcmp(name, x->name, len));
}

static void info_export(const struct nbd_export *x, uint32_t option, struct nbd_obuf *o)
{
	struct nbd_info_export e = {
		.type = htobe16(NBD_INFO_EXPORT),
		.size = htobe64(x->size),
		.flags = htobe16(nbd_export_flags(x)),
	};
	struct nbd_info_block_size b = {
		.type = htobe16(NBD_INFO_BLOCK_SIZE),
		.min_block = htobe32(NBD_BLOCK_MIN),
		.pref_block = htobe32(NBD_BLOCK_PREF),
		.max_block = htobe32(NBD_MAX_PAYLOAD),
	};

	opt_reply_hdr(o, option, NBD_REP_INFO, sizeof(e));
	obuf_put(o, &e, sizeof(e));
	/* Sent even when not asked (the spec allows it): clients that honour
	 * it never send requests we would refuse as unaligned. */
	opt_reply_hdr(o, option, NBD_REP_INFO, sizeof(b));
	obuf_put(o, &b, sizeof(b));
}

static void info_string(uint32_t option, uint16_t type, const char *s, struct nbd_obuf *o)
{
	size_t n = strlen(s);

	opt_reply_hdr(o, option, NBD_REP_INFO, (uint32_t)(2 + n));
	obuf_put16(o, type);
	obuf_put(o, s, n);
}

/*
 * NBD_OPT_INFO / NBD_OPT_GO data: 32-bit name length, name, 16-bit count
 * of information requests, that many 16-bit NBD_INFO_* types; exactly
 * @len bytes.
 */
static enum nbd_opt_action opt_info_go(const struct nbd_export *x, uint32_t option,
				       const uint8_t *data, uint32_t len, struct nbd_obuf *o)
{
	bool want_name = false, want_desc = false;
	uint32_t name_len;
	uint16_t n_info;
	const uint8_t *info;

	if (len < 6) {
		opt_reply_err(o, option, NBD_REP_ERR_INVALID, "option data too short");
		return NBD_OPT_ACT_NEXT;
	}
	name_len = get32(data);
	if (name_len > len - 6) {
		opt_reply_err(o, option, NBD_REP_ERR_INVALID, "export name length out of range");
		return NBD_OPT_ACT_NEXT;
	}
	n_info = get16(data + 4 + name_len);
	if ((uint64_t)name_len + 6 + 2 * (uint64_t)n_info != len) {
		opt_reply_err(o, option, NBD_REP_ERR_INVALID, "information request count mismatch");
		return NBD_OPT_ACT_NEXT;
	}
	if (!name_matches(x, data + 4, name_len)) {
		opt_reply_err(o, option, NBD_REP_ERR_UNKNOWN, "no such export");
		return NBD_OPT_ACT_NEXT;
	}
	info = data + 6 + name_len;
	for (uint16_t i = 0; i < n_info; i++) {
		uint16_t t = get16(info + 2 * i);

		/* Unknown types are ignored, as the spec asks. */
		want_name |= t == NBD_INFO_NAME;
		want_desc |= t == NBD_INFO_DESCRIPTION;
	}
	info_export(x, option, o);
	if (want_name) {
		info_string(option, NBD_INFO_NAME, x->name, o);
	}
	if (want_desc && x->description) {
		info_string(option, NBD_INFO_DESCRIPTION, x->description, o);
	}
	opt_reply_hdr(o, option, NBD_REP_ACK, 0);
	return option == NBD_OPT_GO ? NBD_OPT_ACT_TRANSMIT : NBD_OPT_ACT_NEXT;
}

static enum nbd_opt_action opt_export_name(const struct nbd_export *x, bool no_zeroes,
					   const uint8_t *data, uint32_t len, struct nbd_obuf *o)
{
	struct nbd_export_name_reply r = {
		.size = htobe64(x->size),
		.flags = htobe16(nbd_export_flags(x)),
	};

	if (!name_matches(x, data, len)) {
		return NBD_OPT_ACT_CLOSE;
	}
	obuf_put(o, &r, no_zeroes ? sizeof(r) - NBD_EXPORT_NAME_PAD : sizeof(r));
	return NBD_OPT_ACT_TRANSMIT;
}

enum nbd_opt_action nbd_opt_handle(const struct nbd_export *x, bool no_zeroes, uint32_t option,
				   const uint8_t *data, uint32_t len, struct nbd_obuf *out)
{
	enum nbd_opt_action act = NBD_OPT_ACT_NEXT;
	size_t name_len;

	if (len > NBD_OPT_MAX_LEN) {
		return nbd_opt_too_big(option, out);
	}
	switch (option) {
	case NBD_OPT_EXPORT_NAME:
		act = opt_export_name(x, no_zeroes, data, len, out);
		break;
	case NBD_OPT_ABORT:
		opt_reply_hdr(out, option, NBD_REP_ACK, 0);
		act = NBD_OPT_ACT_CLOSE_AFTER;
		break;
	case NBD_OPT_LIST:
		if (len) {
			opt_reply_err(out, option, NBD_REP_ERR_INVALID, "LIST takes no data");
			break;
		}
		name_len = strlen(x->name);
		opt_reply_hdr(out, option, NBD_REP_SERVER, (uint32_t)(4 + name_len));
		obuf_put32(out, (uint32_t)name_len);
		obuf_put(out, x->name, name_len);
		opt_reply_hdr(out, option, NBD_REP_ACK, 0);
		break;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		act = opt_info_go(x, option, data, len, out);
		break;
	case NBD_OPT_STRUCTURED_REPLY:
		opt_reply_err(out, option, NBD_REP_ERR_UNSUP, "simple replies only");
		break;
	case NBD_OPT_STARTTLS:
		opt_reply_err(out, option, NBD_REP_ERR_UNSUP, "no TLS");
		break;
	default:
		opt_reply_err(out, option, NBD_REP_ERR_UNSUP, "unsupported option");
		break;
	}
	if (out->overflow) {
		return NBD_OPT_ACT_CLOSE;
	}
	return act;
}

enum nbd_opt_action nbd_opt_too_big(uint32_t option, struct nbd_obuf *out)
{
	if (option == NBD_OPT_EXPORT_NAME) {
		return NBD_OPT_ACT_CLOSE;
	}
	opt_reply_err(out, option, NBD_REP_ERR_TOO_BIG, "option data too long");
	return out->overflow ? NBD_OPT_ACT_CLOSE : NBD_OPT_ACT_CLOSE_AFTER;
}

/* --- transmission --- */

int nbd_parse_request(const uint8_t wire[28], struct nbd_req_hdr *out)
{
	if (get32(wire) != NBD_REQUEST_MAGIC) {
		return -EPROTO;
	}
	out->flags = get16(wire + 4);
	out->type = get16(wire + 6);
	memcpy(&out->handle, wire + 8, sizeof(out->handle));
	out->offset = get64(wire + 16);
	out->length = get32(wire + 24);
	return 0;
}

/* Offset and length are aligned, non-zero and inside the export. */
static int check_range(const struct nbd_export *x, const struct nbd_req_hdr *h, int past_end)
{
	if (!h->length || h->offset % NBD_BLOCK_MIN || h->length % NBD_BLOCK_MIN) {
		return -EINVAL;
	}
	if (h->offset > x->size || h->length > x->size - h->offset) {
		return past_end;
	}
	return 0;
}

int nbd_check_request(const struct nbd_export *x, const struct nbd_req_hdr *h, uint32_t *payload)
{
	/* FUA is valid on every command (clients set it on reads too). */
	uint16_t allowed = NBD_CMD_FLAG_FUA;

	*payload = 0;
	switch (h->type) {
	case NBD_CMD_WRITE:
		/* A payload we will not buffer cannot be skipped safely. */
		if (h->length > NBD_MAX_PAYLOAD) {
			return -EMSGSIZE;
		}
		*payload = h->length;
		if (h->flags & ~allowed) {
			return -EINVAL;
		}
		if (x->read_only) {
			return -EPERM;
		}
		return check_range(x, h, -ENOSPC);
	case NBD_CMD_READ:
		if (h->flags & ~allowed || h->length > NBD_MAX_PAYLOAD) {
			return -EINVAL;
		}
		return check_range(x, h, -EINVAL);
	case NBD_CMD_WRITE_ZEROES:
		allowed |= NBD_CMD_FLAG_NO_HOLE;
		if (h->flags & ~allowed) {
			return -EINVAL;
		}
		if (x->read_only) {
			return -EPERM;
		}
		return check_range(x, h, -ENOSPC);
	case NBD_CMD_TRIM:
		if (h->flags & ~allowed) {
			return -EINVAL;
		}
		if (x->read_only) {
			return -EPERM;
		}
		return check_range(x, h, -EINVAL);
	case NBD_CMD_FLUSH:
		if (h->flags & ~allowed || h->offset || h->length) {
			return -EINVAL;
		}
		return 0;
	case NBD_CMD_DISC:
		return 0;
	default:
		return -EINVAL;
	}
}

uint32_t nbd_errno_to_wire(int err)
{
	switch (err) {
	case 0:
		return 0;
	case -EPERM:
	case -EROFS:
	case -EACCES:
		return NBD_EPERM;
	case -EINVAL:
	case -ERANGE:
		return NBD_EINVAL;
	case -ENOSPC:
	case -EDQUOT:
		return NBD_ENOSPC;
	case -ENOMEM:
		return NBD_ENOMEM;
	case -ECANCELED:
	case -ESHUTDOWN:
		return NBD_ESHUTDOWN;
	case -EOVERFLOW:
		return NBD_EOVERFLOW;
	case -ENOTSUP:
		return NBD_ENOTSUP;
	default:
		return NBD_EIO;
	}
}
