/* SPDX-License-Identifier: Apache-2.0 */
/* Frame header codec: round trips, every validation rule, crc coverage. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/crc.h"
#include "proto/frame.h"

#define OFF_PGID 80
#define OFF_HDR_CRC  84

static struct kp_hdr hdr_of(uint16_t opcode, uint32_t flags)
{
	struct kp_hdr h = {
		.version = KP_VERSION,
		.opcode = opcode,
		.flags = flags,
	};

	return h;
}

/* Recompute the header crc independently of frame.c (field zeroed). */
static void rewrite_crc(uint8_t *w)
{
	uint32_t crc;

	memset(w + OFF_HDR_CRC, 0, 4);
	crc = crc32c(0, w, KP_HDR_SIZE);
	w[OFF_HDR_CRC] = (uint8_t)crc;
	w[OFF_HDR_CRC + 1] = (uint8_t)(crc >> 8);
	w[OFF_HDR_CRC + 2] = (uint8_t)(crc >> 16);
	w[OFF_HDR_CRC + 3] = (uint8_t)(crc >> 24);
}

static int decode_wire(const uint8_t *w)
{
	const char *reason = NULL;
	struct kp_hdr out;
	int ret;

	ret = kp_hdr_decode(w, &out, &reason);
	if (ret) {
		assert_non_null(reason);
		assert_true(reason[0] != '\0');
	}
	/* A NULL reason pointer is allowed and must give the same verdict. */
	assert_int_equal(kp_hdr_decode(w, &out, NULL), ret);
	return ret;
}

static int decode(const struct kp_hdr *h)
{
	uint8_t w[KP_HDR_SIZE];

	kp_hdr_encode(h, w);
	return decode_wire(w);
}

static void test_roundtrip_every_field(void **state)
{
	struct kp_hdr h = {
		.version = KP_VERSION,
		.opcode = KP_OP_READ,
		.flags = KP_F_REPLY | KP_F_FUA,
		.status = KP_S_OK,
		.req_id = 0x0102030405060708ull,
		.epoch = 0x1112131415161718ull,
		.inode = 0x2122232425262728ull,
		.objno = 0x3132333435363738ull,
		.obj_ver = 0x4142434445464748ull,
		.gen = 0x5152535455565758ull,
		.offset = 0x00fff000u,
		.length = 0x00010000u,
		.meta_len = KP_MAX_META,
		.data_len = 0x00010000u,
	};
	uint8_t w[KP_HDR_SIZE];
	struct kp_hdr out;
	const char *reason = NULL;

	kp_hdr_encode(&h, w);
	assert_int_equal(kp_hdr_decode(w, &out, &reason), 0);
	assert_int_equal(out.version, h.version);
	assert_int_equal(out.opcode, h.opcode);
	assert_int_equal(out.flags, h.flags);
	assert_int_equal(out.status, h.status);
	assert_true(out.req_id == h.req_id);
	assert_true(out.epoch == h.epoch);
	assert_true(out.inode == h.inode);
	assert_true(out.objno == h.objno);
	assert_true(out.obj_ver == h.obj_ver);
	assert_true(out.gen == h.gen);
	assert_int_equal(out.offset, h.offset);
	assert_int_equal(out.length, h.length);
	assert_int_equal(out.meta_len, h.meta_len);
	assert_int_equal(out.data_len, h.data_len);

	/* Error replies round-trip their status too. */
	for (int s = 1; s < KP_S__MAX; s++) {
		h = hdr_of(KP_OP_WRITE, KP_F_REPLY);
		h.status = s;
		kp_hdr_encode(&h, w);
		assert_int_equal(kp_hdr_decode(w, &out, NULL), 0);
		assert_int_equal(out.status, s);
	}
}

static void test_wire_layout_little_endian(void **state)
{
	struct kp_hdr h = hdr_of(KP_OP_PING, 0);
	uint8_t w[KP_HDR_SIZE];

	h.req_id = 0x0102030405060708ull;
	h.offset = 0x11223000u;
	kp_hdr_encode(&h, w);
	assert_memory_equal(w, "KEEL", 4);
	assert_int_equal(w[4], KP_VERSION);
	assert_int_equal(w[5], 0);
	assert_int_equal(w[6], KP_OP_PING);
	assert_int_equal(w[16], 0x08);
	assert_int_equal(w[23], 0x01);
	assert_int_equal(w[64], 0x00);
	assert_int_equal(w[65], 0x30);
	assert_int_equal(w[67], 0x11);
	assert_int_equal(offsetof(struct kp_wire_hdr, pgid), OFF_PGID);
	assert_int_equal(offsetof(struct kp_wire_hdr, hdr_crc), OFF_HDR_CRC);
	/* The crc field is crc32c of the header with the field zeroed. */
	{
		uint8_t copy[KP_HDR_SIZE];

		memcpy(copy, w, sizeof(copy));
		rewrite_crc(copy);
		assert_memory_equal(copy, w, KP_HDR_SIZE);
	}
}

static void test_bad_magic(void **state)
{
	struct kp_hdr h = hdr_of(KP_OP_PING, 0);
	uint8_t w[KP_HDR_SIZE];

	kp_hdr_encode(&h, w);
	w[0] = 'X';
	assert_int_equal(decode_wire(w), -EBADMSG);
	rewrite_crc(w); /* a valid crc does not rescue a wrong magic */
	assert_int_equal(decode_wire(w), -EBADMSG);
}

static void test_wrong_versions(void **state)
{
	static const uint16_t bad[] = {0, KP_VERSION + 1, 2, 3, 0x0100, 0x7fff, 0xffff};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kp_hdr h = hdr_of(KP_OP_PING, 0);

		h.version = bad[i];
		assert_int_equal(decode(&h), -EPROTONOSUPPORT);
	}
}

static void test_bad_hdr_crc(void **state)
{
	struct kp_hdr h = hdr_of(KP_OP_PING, 0);
	uint8_t w[KP_HDR_SIZE];

	kp_hdr_encode(&h, w);
	w[OFF_HDR_CRC] ^= 1;
	assert_int_equal(decode_wire(w), -EBADMSG);
	kp_hdr_encode(&h, w);
	w[16] ^= 0x80; /* req_id changed, crc left alone */
	assert_int_equal(decode_wire(w), -EBADMSG);
}

static bool opcode_known(unsigned int op)
{
	return op == KP_OP_HELLO || op == KP_OP_AUTH || (op >= KP_OP_READ && op < KP_OP__MAX);
}

static void test_unknown_opcodes(void **state)
{
	for (unsigned int op = 0; op <= 0xffff; op++) {
		struct kp_hdr h = hdr_of((uint16_t)op, 0);

		if (opcode_known(op)) {
			continue;
		}
		assert_int_equal(decode(&h), -EPROTO);
		assert_string_equal(kp_opcode_name((uint16_t)op), "UNKNOWN");
	}
	assert_string_equal(kp_opcode_name(KP_OP_WRITE), "WRITE");
	assert_string_equal(kp_opcode_name(KP_OP_HELLO), "HELLO");
	assert_string_equal(kp_opcode_name(KP_OP_WRITE_ZEROES), "WRITE_ZEROES");
}

static void test_unknown_flags(void **state)
{
	for (int bit = 0; bit < 32; bit++) {
		struct kp_hdr h = hdr_of(KP_OP_PING, 1u << bit);
		int want = ((1u << bit) & KP_F__ALL) ? 0 : -EPROTO;

		assert_int_equal(decode(&h), want);
	}
}

static void test_pgid_roundtrip(void **state)
{
	struct kp_hdr h = hdr_of(KP_OP_READ, 0), out;
	uint8_t w[KP_HDR_SIZE];

	h.length = KP_BLOCK;
	h.pgid = KP_PGID(4095, 0xfffff);
	kp_hdr_encode(&h, w);
	assert_int_equal(w[OFF_PGID + 3], 0xff);
	assert_int_equal(kp_hdr_decode(w, &out, NULL), 0);
	assert_int_equal(out.pgid, h.pgid);
	assert_int_equal(KP_PGID_POOL(out.pgid), 4095);
	assert_int_equal(KP_PGID_PG(out.pgid), 0xfffff);
}

static void test_status_rules(void **state)
{
	static const int32_t out_of_range[] = {KP_S__MAX, KP_S__MAX + 1, -1, INT32_MIN, INT32_MAX};
	struct kp_hdr h;

	/* A request never carries a status. */
	for (int s = 1; s < KP_S__MAX; s++) {
		h = hdr_of(KP_OP_PING, 0);
		h.status = s;
		assert_int_equal(decode(&h), -EPROTO);
	}
	for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
		h = hdr_of(KP_OP_PING, KP_F_REPLY);
		h.status = out_of_range[i];
		assert_int_equal(decode(&h), -EPROTO);
		h.flags = 0;
		assert_int_equal(decode(&h), -EPROTO);
	}
}

static void test_size_limits(void **state)
{
	struct kp_hdr h;

	h = hdr_of(KP_OP_LIST, 0);
	h.meta_len = KP_MAX_META;
	assert_int_equal(decode(&h), 0);
	h.meta_len = KP_MAX_META + 1;
	assert_int_equal(decode(&h), -EMSGSIZE);
	h.meta_len = UINT32_MAX;
	assert_int_equal(decode(&h), -EMSGSIZE);

	h = hdr_of(KP_OP_WRITE, 0);
	h.length = KP_MAX_DATA;
	h.data_len = KP_MAX_DATA;
	assert_int_equal(decode(&h), 0);
	h.length = KP_MAX_DATA + KP_BLOCK;
	h.data_len = KP_MAX_DATA + KP_BLOCK;
	assert_int_equal(decode(&h), -EMSGSIZE);
	/* 4 GiB - 1 of data is refused from the header alone. */
	h.length = 0;
	h.data_len = UINT32_MAX;
	assert_int_equal(decode(&h), -EMSGSIZE);
	h.length = 4096;
	h.data_len = 4095;
	assert_int_equal(decode(&h), -EMSGSIZE);
	h.data_len = 4097;
	assert_int_equal(decode(&h), -EMSGSIZE);
}

static void test_alignment_and_overflow(void **state)
{
	static const uint32_t bad[] = {1, 512, 4095, 4097, 0xfffff001u};
	struct kp_hdr h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = hdr_of(KP_OP_DISCARD, 0);
		h.offset = bad[i];
		h.length = KP_BLOCK;
		assert_int_equal(decode(&h), -EINVAL);
		h.offset = 0;
		h.length = bad[i];
		assert_int_equal(decode(&h), -EINVAL);
	}
	h = hdr_of(KP_OP_DISCARD, 0);
	h.offset = 0xfffff000u;
	h.length = 0x2000u;
	assert_int_equal(decode(&h), -EINVAL);
	h.offset = 0xffffe000u;
	h.length = 0x1000u;
	assert_int_equal(decode(&h), 0); /* ends exactly at 4 GiB - 4 KiB */
	h.offset = 0;
	h.length = 0xfffff000u;
	assert_int_equal(decode(&h), 0);
}

static struct kp_hdr extent(uint16_t op, uint32_t flags, uint32_t length, uint32_t data_len)
{
	struct kp_hdr h = hdr_of(op, flags);

	h.length = length;
	h.data_len = data_len;
	return h;
}

static int decode_extent(uint16_t op, uint32_t flags, uint32_t length, uint32_t data_len)
{
	struct kp_hdr h = extent(op, flags, length, data_len);

	return decode(&h);
}

static void test_read_rules(void **state)
{
	struct kp_hdr h;

	assert_int_equal(decode_extent(KP_OP_READ, 0, 8192, 0), 0);
	assert_int_equal(decode_extent(KP_OP_READ, 0, 0, 0), -EINVAL);
	assert_int_equal(decode_extent(KP_OP_READ, 0, 8192, 8192), -EINVAL);
	assert_int_equal(decode_extent(KP_OP_READ, 0, KP_MAX_DATA + 4096, 0), -EINVAL);
	/* OK reply: data_len == length */
	assert_int_equal(decode_extent(KP_OP_READ, KP_F_REPLY, 8192, 8192), 0);
	assert_int_equal(decode_extent(KP_OP_READ, KP_F_REPLY, 8192, 4096), -EINVAL);
	assert_int_equal(decode_extent(KP_OP_READ, KP_F_REPLY, 8192, 0), -EINVAL);
	/* error reply: no data */
	h = extent(KP_OP_READ, KP_F_REPLY, 8192, 8192);
	h.status = KP_S_EIO;
	assert_int_equal(decode(&h), -EINVAL);
	h.data_len = 0;
	assert_int_equal(decode(&h), 0);
}

static void test_write_rules(void **state)
{
	assert_int_equal(decode_extent(KP_OP_WRITE, 0, 8192, 8192), 0);
	assert_int_equal(decode_extent(KP_OP_WRITE, KP_F_FUA, 4096, 4096), 0);
	assert_int_equal(decode_extent(KP_OP_WRITE, 0, 8192, 4096), -EINVAL);
	assert_int_equal(decode_extent(KP_OP_WRITE, 0, 4096, 8192), -EINVAL);
	assert_int_equal(decode_extent(KP_OP_WRITE, 0, 8192, 0), -EINVAL);
	assert_int_equal(decode_extent(KP_OP_WRITE, 0, 0, 0), -EINVAL);
	assert_int_equal(decode_extent(KP_OP_WRITE, KP_F_REPLY, 8192, 0), 0);
	assert_int_equal(decode_extent(KP_OP_WRITE, KP_F_REPLY, 8192, 8192), -EINVAL);
}

static void test_extent_only_rules(void **state)
{
	static const uint16_t ops[] = {KP_OP_DISCARD, KP_OP_WRITE_ZEROES};

	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(decode_extent(ops[i], 0, 4096, 0), 0);
		assert_int_equal(decode_extent(ops[i], 0, 0xfffff000u, 0), 0);
		assert_int_equal(decode_extent(ops[i], 0, 0, 0), -EINVAL);
		assert_int_equal(decode_extent(ops[i], 0, 4096, 4096), -EINVAL);
		assert_int_equal(decode_extent(ops[i], KP_F_REPLY, 4096, 0), 0);
		assert_int_equal(decode_extent(ops[i], KP_F_REPLY, 4096, 4096), -EINVAL);
	}
}

static void test_no_data_rules(void **state)
{
	static const uint16_t ops[] = {KP_OP_SYNC, KP_OP_PING,	KP_OP_LIST,
				       KP_OP_STAT, KP_OP_HELLO, KP_OP_AUTH};
	struct kp_hdr h;

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		h = extent(ops[i], 0, 0, 0);
		h.meta_len = 100;
		assert_int_equal(decode(&h), 0);
		assert_int_equal(decode_extent(ops[i], 0, 4096, 4096), -EINVAL);
		assert_int_equal(decode_extent(ops[i], KP_F_REPLY, 0, 0), 0);
		assert_int_equal(decode_extent(ops[i], KP_F_REPLY, 4096, 4096), -EINVAL);
	}
}

/* Every single-bit error anywhere in a valid header is caught. */
static void test_every_bit_flip_rejected(void **state)
{
	struct kp_hdr samples[3];
	uint8_t w[KP_HDR_SIZE];

	samples[0] = extent(KP_OP_WRITE, KP_F_FUA, 8192, 8192);
	samples[0].req_id = 77;
	samples[0].inode = 5;
	samples[1] = extent(KP_OP_READ, KP_F_REPLY, 4096, 4096);
	samples[2] = hdr_of(KP_OP_PING, 0);
	for (size_t s = 0; s < 3; s++) {
		assert_int_equal(decode(&samples[s]), 0);
		for (int byte = 0; byte < KP_HDR_SIZE; byte++) {
			for (int bit = 0; bit < 8; bit++) {
				kp_hdr_encode(&samples[s], w);
				w[byte] ^= (uint8_t)(1u << bit);
				assert_int_not_equal(decode_wire(w), 0);
			}
		}
	}
}

static void test_data_verify(void **state)
{
	enum { NBLK = 3 };
	uint8_t *data = malloc(NBLK * KP_BLOCK);
	uint32_t crcs[NBLK];

	assert_non_null(data);
	for (size_t i = 0; i < NBLK * KP_BLOCK; i++) {
		data[i] = (uint8_t)(i * 31 + 7);
	}
	crc32c_blocks(data, NBLK * KP_BLOCK, crcs);
	for (int i = 0; i < NBLK; i++) {
		crcs[i] = htole32(crcs[i]);
	}
	assert_true(kp_data_verify(data, NBLK * KP_BLOCK, crcs));
	assert_true(kp_data_verify(data, 0, crcs));
	assert_false(kp_data_verify(data, KP_BLOCK + 1, crcs));
	for (int blk = 0; blk < NBLK; blk++) {
		size_t at = (size_t)blk * KP_BLOCK + 1234;

		data[at] ^= 0x10;
		assert_false(kp_data_verify(data, NBLK * KP_BLOCK, crcs));
		data[at] ^= 0x10;
		crcs[blk] ^= 1;
		assert_false(kp_data_verify(data, NBLK * KP_BLOCK, crcs));
		crcs[blk] ^= 1;
	}
	assert_true(kp_data_verify(data, NBLK * KP_BLOCK, crcs));
	free(data);
}

static void test_status_errno(void **state)
{
	assert_int_equal(kp_status_from_errno(0), KP_S_OK);
	assert_int_equal(kp_status_to_errno(KP_S_OK), 0);
	for (int s = 1; s < KP_S__MAX; s++) {
		int e = kp_status_to_errno(s);

		assert_true(e < 0);
		assert_int_equal(kp_status_from_errno(e), s);
	}
	assert_int_equal(kp_status_from_errno(-ENOSPC), KP_S_ENOSPC);
	assert_int_equal(kp_status_from_errno(-ESTALE), KP_S_ESTALE);
	assert_int_equal(kp_status_from_errno(-EBADMSG), KP_S_EBADMSG);
	assert_int_equal(kp_status_from_errno(-ETIMEDOUT), KP_S_ETIMEDOUT);
	assert_int_equal(kp_status_from_errno(-EWOULDBLOCK), KP_S_EAGAIN);
	assert_int_equal(kp_status_from_errno(-EOPNOTSUPP), KP_S_ENOTSUP);
	assert_int_equal(kp_status_from_errno(-EXDEV), KP_S_EIO);
	assert_int_equal(kp_status_from_errno(-ENOMEM), KP_S_EIO);
	assert_int_equal(kp_status_from_errno(-4095), KP_S_EIO);
	assert_int_equal(kp_status_to_errno(KP_S_EPERM), -EPERM);
	assert_int_equal(kp_status_to_errno(KP_S__MAX), -EPROTO);
	assert_int_equal(kp_status_to_errno(-1), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_every_field),
		cmocka_unit_test(test_wire_layout_little_endian),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_wrong_versions),
		cmocka_unit_test(test_bad_hdr_crc),
		cmocka_unit_test(test_unknown_opcodes),
		cmocka_unit_test(test_unknown_flags),
		cmocka_unit_test(test_pgid_roundtrip),
		cmocka_unit_test(test_status_rules),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_alignment_and_overflow),
		cmocka_unit_test(test_read_rules),
		cmocka_unit_test(test_write_rules),
		cmocka_unit_test(test_extent_only_rules),
		cmocka_unit_test(test_no_data_rules),
		cmocka_unit_test(test_every_bit_flip_rejected),
		cmocka_unit_test(test_data_verify),
		cmocka_unit_test(test_status_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
