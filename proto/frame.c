/* SPDX-License-Identifier: Apache-2.0 */
/* Keel frame header codec and wire status mapping. Spec: docs/wire-format.md. */
#include "proto/frame.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/crc.h"

_Static_assert(KP_BLOCK == KEEL_BLOCK_SIZE, "frame block size is the crc block size");
_Static_assert(offsetof(struct kp_wire_hdr, hdr_crc) == KP_HDR_SIZE - 4, "hdr_crc is last");

/*
 * Little-endian field access at fixed offsets. The wire struct is packed, so
 * we never dereference its members as aligned integers; offsetof() names the
 * layout and memcpy does the (possibly unaligned) access.
 */
#define WOFF(field) offsetof(struct kp_wire_hdr, field)

static void put16(uint8_t *w, size_t off, uint16_t v)
{
	v = htole16(v);
	memcpy(w + off, &v, sizeof(v));
}

static void put32(uint8_t *w, size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(w + off, &v, sizeof(v));
}

static void put64(uint8_t *w, size_t off, uint64_t v)
{
	v = htole64(v);
	memcpy(w + off, &v, sizeof(v));
}

static uint16_t get16(const uint8_t *w, size_t off)
{
	uint16_t v;

	memcpy(&v, w + off, sizeof(v));
	return le16toh(v);
}

static uint32_t get32(const uint8_t *w, size_t off)
{
	uint32_t v;

	memcpy(&v, w + off, sizeof(v));
	return le32toh(v);
}

static uint64_t get64(const uint8_t *w, size_t off)
{
	uint64_t v;

	memcpy(&v, w + off, sizeof(v));
	return le64toh(v);
}

/* crc32c of the header with the hdr_crc field taken as zero. */
static uint32_t hdr_crc(const uint8_t *w)
{
	static const uint8_t zero[4];
	uint32_t crc;

	crc = crc32c(0, w, WOFF(hdr_crc));
	return crc32c(crc, zero, sizeof(zero));
}

void kp_hdr_encode(const struct kp_hdr *h, void *wire)
{
	uint8_t *w = wire;

	put32(w, WOFF(magic), KP_MAGIC);
	put16(w, WOFF(version), h->version);
	put16(w, WOFF(opcode), h->opcode);
	put32(w, WOFF(flags), h->flags);
	put32(w, WOFF(status), (uint32_t)h->status);
	put64(w, WOFF(req_id), h->req_id);
	put64(w, WOFF(epoch), h->epoch);
	put64(w, WOFF(inode), h->inode);
	put64(w, WOFF(objno), h->objno);
	put64(w, WOFF(obj_ver), h->obj_ver);
	put64(w, WOFF(gen), h->gen);
	put32(w, WOFF(offset), h->offset);
	put32(w, WOFF(length), h->length);
	put32(w, WOFF(meta_len), h->meta_len);
	put32(w, WOFF(data_len), h->data_len);
	put32(w, WOFF(pgid), h->pgid);
	put32(w, WOFF(hdr_crc), hdr_crc(w));
}

static void hdr_unpack(const uint8_t *w, struct kp_hdr *h)
{
	h->version = get16(w, WOFF(version));
	h->opcode = get16(w, WOFF(opcode));
	h->flags = get32(w, WOFF(flags));
	h->status = (int32_t)get32(w, WOFF(status));
	h->req_id = get64(w, WOFF(req_id));
	h->epoch = get64(w, WOFF(epoch));
	h->inode = get64(w, WOFF(inode));
	h->objno = get64(w, WOFF(objno));
	h->obj_ver = get64(w, WOFF(obj_ver));
	h->gen = get64(w, WOFF(gen));
	h->offset = get32(w, WOFF(offset));
	h->length = get32(w, WOFF(length));
	h->meta_len = get32(w, WOFF(meta_len));
	h->data_len = get32(w, WOFF(data_len));
	h->pgid = get32(w, WOFF(pgid));
}

/* Opcode table: name and the shape of its data section. */
enum kp_data_rule {
	KP_DATA_NONE,	/* never carries data, no extent needed */
	KP_DATA_EXTENT, /* no data; request needs length > 0 */
	KP_DATA_READ,	/* request: extent, no data; OK reply: data_len == length */
	KP_DATA_WRITE,	/* request: data_len == length > 0; reply: no data */
};

struct kp_opcode_info {
	const char *name;
	enum kp_data_rule rule;
};

static const struct kp_opcode_info kp_opcodes[KP_OP__MAX] = {
	[KP_OP_HELLO] = {"HELLO", KP_DATA_NONE},
	[KP_OP_AUTH] = {"AUTH", KP_DATA_NONE},
	[KP_OP_READ] = {"READ", KP_DATA_READ},
	[KP_OP_WRITE] = {"WRITE", KP_DATA_WRITE},
	[KP_OP_DISCARD] = {"DISCARD", KP_DATA_EXTENT},
	[KP_OP_WRITE_ZEROES] = {"WRITE_ZEROES", KP_DATA_EXTENT},
	[KP_OP_SYNC] = {"SYNC", KP_DATA_NONE},
	[KP_OP_LIST] = {"LIST", KP_DATA_NONE},
	[KP_OP_STAT] = {"STAT", KP_DATA_NONE},
	[KP_OP_PING] = {"PING", KP_DATA_NONE},
	[KP_OP_MG_REGISTER] = {"MG_REGISTER", KP_DATA_NONE},
	[KP_OP_MG_HEARTBEAT] = {"MG_HEARTBEAT", KP_DATA_NONE},
	[KP_OP_MG_SUBSCRIBE] = {"MG_SUBSCRIBE", KP_DATA_NONE},
	[KP_OP_MG_MAP] = {"MG_MAP", KP_DATA_NONE},
	[KP_OP_MG_VOLUME_OPEN] = {"MG_VOLUME_OPEN", KP_DATA_NONE},
	[KP_OP_MG_PG_REPORT] = {"MG_PG_REPORT", KP_DATA_NONE},
	[KP_OP_MG_USAGE] = {"MG_USAGE", KP_DATA_NONE},
	[KP_OP_REPLICA_WRITE] = {"REPLICA_WRITE", KP_DATA_WRITE},
	[KP_OP_REPLICA_DISCARD] = {"REPLICA_DISCARD", KP_DATA_EXTENT},
	[KP_OP_REPLICA_LIST] = {"REPLICA_LIST", KP_DATA_NONE},
	[KP_OP_REPLICA_BVERS] = {"REPLICA_BVERS", KP_DATA_NONE},
	[KP_OP_REPLICA_PUSH] = {"REPLICA_PUSH", KP_DATA_WRITE},
	[KP_OP_REPLICA_DELETE] = {"REPLICA_DELETE", KP_DATA_NONE},
};

static const struct kp_opcode_info *opcode_info(uint16_t opcode)
{
	if (opcode >= KP_OP__MAX || !kp_opcodes[opcode].name) {
		return NULL;
	}
	return &kp_opcodes[opcode];
}

const char *kp_opcode_name(uint16_t opcode)
{
	const struct kp_opcode_info *oi = opcode_info(opcode);

	return oi ? oi->name : "UNKNOWN";
}

static int fail(const char **reason, const char *why, int err)
{
	if (reason) {
		*reason = why;
	}
	return err;
}

/* Fields that must hold whatever the opcode: flags, status. */
static int check_fields(const uint8_t *w, const struct kp_hdr *h, const char **reason)
{
	if (!opcode_info(h->opcode)) {
		return fail(reason, "unknown opcode", -EPROTO);
	}
	if (h->flags & ~(uint32_t)KP_F__ALL) {
		return fail(reason, "unknown flags", -EPROTO);
	}
	if (h->status < 0 || h->status >= KP_S__MAX) {
		return fail(reason, "status out of range", -EPROTO);
	}
	if (!(h->flags & KP_F_REPLY) && h->status != KP_S_OK) {
		return fail(reason, "request carries a status", -EPROTO);
	}
	return 0;
}

static int check_sizes(const struct kp_hdr *h, const char **reason)
{
	if (h->meta_len > KP_MAX_META) {
		return fail(reason, "meta_len exceeds KP_MAX_META", -EMSGSIZE);
	}
	if (h->data_len > KP_MAX_DATA) {
		return fail(reason, "data_len exceeds KP_MAX_DATA", -EMSGSIZE);
	}
	if (h->data_len % KP_BLOCK) {
		return fail(reason, "data_len not a multiple of 4096", -EMSGSIZE);
	}
	if ((h->offset | h->length) % KP_BLOCK) {
		return fail(reason, "offset/length not 4 KiB aligned", -EINVAL);
	}
	if ((uint64_t)h->offset + h->length > UINT32_MAX) {
		return fail(reason, "offset + length overflows", -EINVAL);
	}
	return 0;
}

static int check_request_data(const struct kp_hdr *h, enum kp_data_rule rule, const char **reason)
{
	switch (rule) {
	case KP_DATA_NONE:
		break;
	case KP_DATA_EXTENT:
		if (!h->length) {
			return fail(reason, "request with zero length", -EINVAL);
		}
		break;
	case KP_DATA_READ:
		if (!h->length) {
			return fail(reason, "READ with zero length", -EINVAL);
		}
		if (h->length > KP_MAX_DATA) {
			return fail(reason, "READ length exceeds KP_MAX_DATA", -EINVAL);
		}
		break;
	case KP_DATA_WRITE:
		if (!h->length || h->data_len != h->length) {
			return fail(reason, "WRITE needs data_len == length > 0", -EINVAL);
		}
		return 0;
	}
	if (h->data_len) {
		return fail(reason, "opcode carries no request data", -EINVAL);
	}
	return 0;
}

static int check_reply_data(const struct kp_hdr *h, enum kp_data_rule rule, const char **reason)
{
	if (rule == KP_DATA_READ && h->status == KP_S_OK) {
		if (h->data_len != h->length) {
			return fail(reason, "READ reply needs data_len == length", -EINVAL);
		}
		return 0;
	}
	if (h->data_len) {
		return fail(reason, "reply carries unexpected data", -EINVAL);
	}
	return 0;
}

int kp_hdr_decode(const void *wire, struct kp_hdr *h, const char **reason)
{
	const uint8_t *w = wire;
	enum kp_data_rule rule;
	int ret;

	/* Version before crc: a future version may checksum differently, and
	 * its peer deserves "unsupported version", not "corrupt header". */
	if (get32(w, WOFF(magic)) != KP_MAGIC) {
		return fail(reason, "bad magic", -EBADMSG);
	}
	if (get16(w, WOFF(version)) != KP_VERSION) {
		return fail(reason, "unsupported version", -EPROTONOSUPPORT);
	}
	if (get32(w, WOFF(hdr_crc)) != hdr_crc(w)) {
		return fail(reason, "header crc mismatch", -EBADMSG);
	}
	hdr_unpack(w, h);
	ret = check_fields(w, h, reason);
	if (ret) {
		return ret;
	}
	ret = check_sizes(h, reason);
	if (ret) {
		return ret;
	}
	rule = opcode_info(h->opcode)->rule;
	if (h->flags & KP_F_REPLY) {
		return check_reply_data(h, rule, reason);
	}
	return check_request_data(h, rule, reason);
}

bool kp_data_verify(const void *data, uint32_t data_len, const uint32_t *crcs)
{
	const uint8_t *d = data;
	const uint8_t *c = (const uint8_t *)crcs;

	if (data_len % KP_BLOCK) {
		return false;
	}
	/* crcs may sit at any byte offset of an rx buffer: read them bytewise. */
	for (uint32_t i = 0; i < data_len / KP_BLOCK; i++) {
		uint32_t want;

		memcpy(&want, c + (size_t)i * 4, sizeof(want));
		if (crc32c(0, d + (size_t)i * KP_BLOCK, KP_BLOCK) != le32toh(want)) {
			return false;
		}
	}
	return true;
}

/* The one errno <-> wire status table. First match wins when mapping to a
 * status, so aliases (EWOULDBLOCK, EOPNOTSUPP) follow their canonical row. */
static const struct {
	int status;
	int err;
} kp_status_map[] = {
	{KP_S_EIO, EIO},
	{KP_S_ENOSPC, ENOSPC},
	{KP_S_EINVAL, EINVAL},
	{KP_S_ENOENT, ENOENT},
	{KP_S_ESTALE, ESTALE},
	{KP_S_EPERM, EPERM},
	{KP_S_EBADMSG, EBADMSG},
	{KP_S_EAGAIN, EAGAIN},
	{KP_S_ENOTSUP, ENOTSUP},
	{KP_S_ERANGE, ERANGE},
	{KP_S_EPROTO, EPROTO},
	{KP_S_EBUSY, EBUSY},
	{KP_S_ETIMEDOUT, ETIMEDOUT},
	{KP_S_EROFS, EROFS},
	{KP_S_EAGAIN, EWOULDBLOCK},
	{KP_S_ENOTSUP, EOPNOTSUPP},
	{KP_S_EPERM, EACCES},
};

_Static_assert(KP_S__MAX == 15, "every status needs a row in kp_status_map");

int kp_status_from_errno(int neg_errno)
{
	int e = neg_errno < 0 ? -neg_errno : neg_errno;

	if (!e) {
		return KP_S_OK;
	}
	for (size_t i = 0; i < sizeof(kp_status_map) / sizeof(kp_status_map[0]); i++) {
		if (kp_status_map[i].err == e) {
			return kp_status_map[i].status;
		}
	}
	return KP_S_EIO;
}

int kp_status_to_errno(int status)
{
	if (status == KP_S_OK) {
		return 0;
	}
	for (size_t i = 0; i < sizeof(kp_status_map) / sizeof(kp_status_map[0]); i++) {
		if (kp_status_map[i].status == status) {
			return -kp_status_map[i].err;
		}
	}
	return -EPROTO;
}
