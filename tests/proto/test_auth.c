/* SPDX-License-Identifier: Apache-2.0 */
/* Shared-key files and HMAC proofs. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/auth.h"

static char tmpdir[] = "/tmp/keel-test-auth-XXXXXX";

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int load_text(const char *text, mode_t mode, struct kp_key *key, char *err, size_t errlen)
{
	char path[256];

	path_in_tmp(path, sizeof(path), "key");
	write_file(path, text, mode);
	return kp_key_load(path, key, err, errlen);
}

static void fill_key(struct kp_key *k, uint8_t seed)
{
	k->len = 32;
	for (size_t i = 0; i < k->len; i++) {
		k->bytes[i] = (uint8_t)(seed + i);
	}
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++) {
		p[i] = (uint8_t)(seed * 7 + i);
	}
}

static void test_proof_matches_spec(void **state)
{
	uint8_t cn[KP_NONCE_LEN], sn[KP_NONCE_LEN], out[KP_MAC_LEN], want[KP_MAC_LEN];
	uint8_t msg[8 + 2 * KP_NONCE_LEN];
	unsigned int len = 0;
	struct kp_key k;

	fill_key(&k, 1);
	fill(cn, sizeof(cn), 2);
	fill(sn, sizeof(sn), 3);
	/* docs/wire-format.md: server proof = HMAC(key, "keel-srv" | cn | sn) */
	memcpy(msg, "keel-srv", 8);
	memcpy(msg + 8, cn, KP_NONCE_LEN);
	memcpy(msg + 8 + KP_NONCE_LEN, sn, KP_NONCE_LEN);
	assert_non_null(HMAC(EVP_sha256(), k.bytes, (int)k.len, msg, sizeof(msg), want, &len));
	kp_auth_proof(&k, KP_AUTH_SERVER, cn, sn, out);
	assert_memory_equal(out, want, KP_MAC_LEN);
	/* client proof = HMAC(key, "keel-cli" | sn | cn) */
	memcpy(msg, "keel-cli", 8);
	memcpy(msg + 8, sn, KP_NONCE_LEN);
	memcpy(msg + 8 + KP_NONCE_LEN, cn, KP_NONCE_LEN);
	assert_non_null(HMAC(EVP_sha256(), k.bytes, (int)k.len, msg, sizeof(msg), want, &len));
	kp_auth_proof(&k, KP_AUTH_CLIENT, cn, sn, out);
	assert_memory_equal(out, want, KP_MAC_LEN);
}

static void test_proofs_differ(void **state)
{
	uint8_t cn[KP_NONCE_LEN], sn[KP_NONCE_LEN], cn2[KP_NONCE_LEN], sn2[KP_NONCE_LEN];
	uint8_t srv[KP_MAC_LEN], cli[KP_MAC_LEN], other[KP_MAC_LEN];
	struct kp_key k;

	fill_key(&k, 9);
	fill(cn, sizeof(cn), 1);
	fill(sn, sizeof(sn), 2);
	memcpy(cn2, cn, sizeof(cn));
	cn2[31] ^= 1;
	memcpy(sn2, sn, sizeof(sn));
	sn2[0] ^= 1;
	kp_auth_proof(&k, KP_AUTH_SERVER, cn, sn, srv);
	kp_auth_proof(&k, KP_AUTH_CLIENT, cn, sn, cli);
	assert_memory_not_equal(srv, cli, KP_MAC_LEN);
	/* Same nonces in swapped roles must not collide either (reflection). */
	kp_auth_proof(&k, KP_AUTH_CLIENT, sn, cn, other);
	assert_memory_not_equal(srv, other, KP_MAC_LEN);
	kp_auth_proof(&k, KP_AUTH_SERVER, cn2, sn, other);
	assert_memory_not_equal(srv, other, KP_MAC_LEN);
	kp_auth_proof(&k, KP_AUTH_SERVER, cn, sn2, other);
	assert_memory_not_equal(srv, other, KP_MAC_LEN);
	kp_auth_proof(&k, KP_AUTH_CLIENT, cn, sn2, other);
	assert_memory_not_equal(cli, other, KP_MAC_LEN);
}

static void test_verify(void **state)
{
	uint8_t cn[KP_NONCE_LEN], sn[KP_NONCE_LEN], p[KP_MAC_LEN + 1];
	struct kp_key k, wrong;

	fill_key(&k, 5);
	fill_key(&wrong, 6);
	assert_int_equal(kp_nonce(cn), 0);
	assert_int_equal(kp_nonce(sn), 0);
	assert_memory_not_equal(cn, sn, KP_NONCE_LEN);
	kp_auth_proof(&k, KP_AUTH_CLIENT, cn, sn, p);
	assert_true(kp_auth_verify(&k, KP_AUTH_CLIENT, cn, sn, p, KP_MAC_LEN));
	assert_false(kp_auth_verify(&wrong, KP_AUTH_CLIENT, cn, sn, p, KP_MAC_LEN));
	assert_false(kp_auth_verify(&k, KP_AUTH_SERVER, cn, sn, p, KP_MAC_LEN));
	assert_false(kp_auth_verify(&k, KP_AUTH_CLIENT, sn, cn, p, KP_MAC_LEN));
	assert_false(kp_auth_verify(&k, KP_AUTH_CLIENT, cn, sn, p, KP_MAC_LEN - 1));
	assert_false(kp_auth_verify(&k, KP_AUTH_CLIENT, cn, sn, p, KP_MAC_LEN + 1));
	assert_false(kp_auth_verify(&k, KP_AUTH_CLIENT, cn, sn, p, 0));
	assert_false(kp_auth_verify(&k, KP_AUTH_CLIENT, cn, sn, NULL, KP_MAC_LEN));
	for (int i = 0; i < KP_MAC_LEN * 8; i++) {
		p[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_false(kp_auth_verify(&k, KP_AUTH_CLIENT, cn, sn, p, KP_MAC_LEN));
		p[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* A key differing only in length is a different key. */
	wrong = k;
	wrong.len = 31;
	assert_false(kp_auth_verify(&wrong, KP_AUTH_CLIENT, cn, sn, p, KP_MAC_LEN));
}

#define HEX32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void test_key_mode_refused(void **state)
{
	static const mode_t bad[] = {0644, 0640, 0604, 0660, 0601, 0610};
	char err[512], want[512], path[128];
	struct kp_key k;

	path_in_tmp(path, sizeof(path), "key");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(load_text(HEX32 "\n", bad[i], &k, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "must not be readable by group or others"));
	}
	assert_int_equal(load_text(HEX32 "\n", 0644, &k, err, sizeof(err)), -EPERM);
	snprintf(want, sizeof(want),
		 "key file %s has mode 0644; it must not be readable by group or others "
		 "(chmod 600)",
		 path);
	assert_string_equal(err, want);
}

static void test_key_load_ok(void **state)
{
	char err[256] = "";
	struct kp_key k;

	assert_int_equal(load_text(HEX32 "\n", 0600, &k, err, sizeof(err)), 0);
	assert_int_equal(k.len, 32);
	for (int i = 0; i < 32; i++) {
		assert_int_equal(k.bytes[i], i);
	}
	/* no newline, upper case, owner read-only */
	assert_int_equal(load_text("00010203040506070809AABBCCDDEEFF", 0400, &k, err, sizeof(err)),
			 0);
	assert_int_equal(k.len, 16);
	assert_int_equal(k.bytes[15], 0xff);
}

static void test_key_bad_content(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"000102030405060708090a0b0c0d0e",   /* 15 bytes: too short */
		"000102030405060708090a0b0c0d0e0",  /* odd digit count */
		HEX32 "0g\n",			    /* not hex */
		" " HEX32 "\n",			    /* leading space */
		HEX32 " \n",			    /* trailing space */
		HEX32 "\n\n",			    /* two newlines */
		HEX32 "\r\n",			    /* CRLF */
		HEX32 HEX32 HEX32 HEX32 HEX32 "\n", /* 160 bytes: too long */
	};
	char err[256];
	struct kp_key k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(load_text(bad[i], 0600, &k, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
	}
	/* exactly KP_KEY_MAX bytes is fine */
	assert_int_equal(load_text(HEX32 HEX32 HEX32 HEX32 "\n", 0600, &k, err, sizeof(err)), 0);
	assert_int_equal(k.len, KP_KEY_MAX);
}

static void test_key_not_a_file(void **state)
{
	char err[256], path[256];
	struct kp_key k;

	path_in_tmp(path, sizeof(path), "missing");
	assert_int_equal(kp_key_load(path, &k, err, sizeof(err)), -ENOENT);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(kp_key_load(path, &k, err, sizeof(err)), -EPERM);
	rmdir(path);
}

static void test_generate_then_load(void **state)
{
	char err[256], path[256], text[80];
	struct kp_key a, b;
	struct stat st;
	int fd;

	path_in_tmp(path, sizeof(path), "generated");
	unlink(path);
	assert_int_equal(kp_key_generate(path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 65);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, text, sizeof(text)), 65);
	close(fd);
	assert_int_equal(text[64], '\n');
	assert_int_equal(strspn(text, "0123456789abcdef"), 64);
	assert_int_equal(kp_key_load(path, &a, err, sizeof(err)), 0);
	assert_int_equal(a.len, 32);
	assert_int_equal(kp_key_generate(path), -EEXIST);
	unlink(path);
	assert_int_equal(kp_key_generate(path), 0);
	assert_int_equal(kp_key_load(path, &b, err, sizeof(err)), 0);
	assert_memory_not_equal(a.bytes, b.bytes, 32);
	unlink(path);
}

static int group_setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char path[256];

	path_in_tmp(path, sizeof(path), "key");
	unlink(path);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proof_matches_spec),
		cmocka_unit_test(test_proofs_differ),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_key_mode_refused),
		cmocka_unit_test(test_key_load_ok),
		cmocka_unit_test(test_key_bad_content),
		cmocka_unit_test(test_key_not_a_file),
		cmocka_unit_test(test_generate_then_load),
	};

	umask(022);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
