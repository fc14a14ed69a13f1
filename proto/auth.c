/* SPDX-License-Identifier: Apache-2.0 */
/* Shared-key loading and HMAC-SHA256 challenge-response proofs. */
#include "proto/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/log.h"

#define KP_KEY_GEN_LEN 32
#define KP_LABEL_LEN   8

/* Longest valid file: KP_KEY_MAX bytes as hex plus a newline; one more byte
 * tells "too long" from "exactly full". */
#define KP_KEY_FILE_MAX (KP_KEY_MAX * 2 + 2)

static int hex_val(char ch)
{
	if (ch >= '0' && ch <= '9') {
		return ch - '0';
	}
	if (ch >= 'a' && ch <= 'f') {
		return ch - 'a' + 10;
	}
	if (ch >= 'A' && ch <= 'F') {
		return ch - 'A' + 10;
	}
	return -1;
}

/* Parse @len hex digits into @key. -EINVAL with a reason for anything else. */
static int key_parse(const char *path, const char *text, size_t len, struct kp_key *key, char *err,
		     size_t errlen)
{
	if (len && text[len - 1] == '\n') {
		len--;
	}
	if (len < KP_KEY_MIN * 2 || len > KP_KEY_MAX * 2 || len % 2) {
		snprintf(err, errlen,
			 "key file %s must hold %d..%d hex digits (an even count), has %zu", path,
			 KP_KEY_MIN * 2, KP_KEY_MAX * 2, len);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i += 2) {
		int hi = hex_val(text[i]), lo = hex_val(text[i + 1]);

		if (hi < 0 || lo < 0) {
			snprintf(err, errlen, "key file %s: not a hex digit at offset %zu", path,
				 hi < 0 ? i : i + 1);
			OPENSSL_cleanse(key, sizeof(*key));
			return -EINVAL;
		}
		key->bytes[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	key->len = len / 2;
	return 0;
}

/* @what names the file in messages: "key file", "token file". */
static int key_check_mode(const char *what, const char *path, int fd, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int ret = -errno;

		snprintf(err, errlen, "%s %s: stat: %s", what, path, strerror(-ret));
		return ret;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s is not a regular file", what, path);
		return -EPERM;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "%s %s has mode %04o; it must not be readable by group or others "
			 "(chmod 600)",
			 what, path, (unsigned int)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

static ssize_t read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -errno;
		}
		if (n == 0) {
			break;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int kp_key_load(const char *path, struct kp_key *key, char *err, size_t errlen)
{
	char text[KP_KEY_FILE_MAX + 1];
	ssize_t n;
	int fd, ret;

	memset(key, 0, sizeof(*key));
	/* O_NONBLOCK: a FIFO planted at the path must not hang the daemon. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "key file %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = key_check_mode("key file", path, fd, err, errlen);
	if (ret) {
		goto out_close_fd;
	}
	n = read_all(fd, text, sizeof(text));
	if (n < 0) {
		ret = (int)n;
		snprintf(err, errlen, "key file %s: read: %s", path, strerror(-ret));
		goto out_close_fd;
	}
	ret = key_parse(path, text, (size_t)n, key, err, errlen);
	OPENSSL_cleanse(text, sizeof(text));
out_close_fd:
	close(fd);
	return ret;
}

static void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
}

static int key_write_fd(int fd, const char *text, size_t len)
{
	ssize_t n;

	/* The umask can only clear bits; make sure the owner can read it. */
	if (fchmod(fd, 0600) < 0) {
		return -errno;
	}
	n = write(fd, text, len);
	if (n < 0) {
		return -errno;
	}
	if ((size_t)n != len) {
		return -EIO;
	}
	if (fsync(fd) < 0) {
		return -errno;
	}
	return 0;
}

int kp_key_generate(const char *path)
{
	uint8_t raw[KP_KEY_GEN_LEN];
	char text[KP_KEY_GEN_LEN * 2 + 1];
	int fd, ret;

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		return -EIO;
	}
	hex_encode(raw, sizeof(raw), text);
	text[sizeof(text) - 1] = '\n';
	OPENSSL_cleanse(raw, sizeof(raw));

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out_wipe;
	}
	ret = key_write_fd(fd, text, sizeof(text));
	close(fd);
	if (ret) {
		unlink(path);
	}
out_wipe:
	OPENSSL_cleanse(text, sizeof(text));
	return ret;
}

int kp_nonce(uint8_t nonce[KP_NONCE_LEN])
{
	return RAND_bytes(nonce, KP_NONCE_LEN) == 1 ? 0 : -EIO;
}

void kp_auth_proof(const struct kp_key *key, enum kp_auth_role role,
		   const uint8_t client_nonce[KP_NONCE_LEN],
		   const uint8_t server_nonce[KP_NONCE_LEN], uint8_t out[KP_MAC_LEN])
{
	uint8_t msg[KP_LABEL_LEN + 2 * KP_NONCE_LEN];
	const uint8_t *first, *second;
	unsigned int out_len = 0;

	/* Each side proves over the peer's nonce first, its own second. */
	if (role == KP_AUTH_SERVER) {
		memcpy(msg, "keel-srv", KP_LABEL_LEN);
		first = client_nonce;
		second = server_nonce;
	} else {
		memcpy(msg, "keel-cli", KP_LABEL_LEN);
		first = server_nonce;
		second = client_nonce;
	}
	memcpy(msg + KP_LABEL_LEN, first, KP_NONCE_LEN);
	memcpy(msg + KP_LABEL_LEN + KP_NONCE_LEN, second, KP_NONCE_LEN);
	kassert(key->len >= KP_KEY_MIN && key->len <= KP_KEY_MAX);
	/* HMAC-SHA256 over in-memory buffers only fails if libcrypto is broken;
	 * carrying on with an unset proof would be worse than stopping. */
	if (!HMAC(EVP_sha256(), key->bytes, (int)key->len, msg, sizeof(msg), out, &out_len) ||
	    out_len != KP_MAC_LEN) {
		log_fatal("HMAC-SHA256 failed");
	}
}

bool kp_auth_verify(const struct kp_key *key, enum kp_auth_role role,
		    const uint8_t client_nonce[KP_NONCE_LEN],
		    const uint8_t server_nonce[KP_NONCE_LEN], const uint8_t *proof,
		    size_t proof_len)
{
	uint8_t want[KP_MAC_LEN];
	bool ok;

	if (!proof || proof_len != KP_MAC_LEN) {
		return false;
	}
	kp_auth_proof(key, role, client_nonce, server_nonce, want);
	ok = CRYPTO_memcmp(want, proof, KP_MAC_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

/* ---- REST API tokens ---- */

/* One line of a token file (without its newline): a token, or nothing
 * (blank, comment). 1 (token stored), 0 (skipped) or -EINVAL. */
static int token_line(const char *path, unsigned int lineno, const char *line, size_t len,
		      struct kp_tokens *out, char *err, size_t errlen)
{
	if (len && line[len - 1] == '\r') {
		len--;
	}
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t')) {
		len--;
	}
	if (!len || line[0] == '#') {
		return 0;
	}
	if (len < KP_TOKEN_MIN || len > KP_TOKEN_MAX) {
		snprintf(err, errlen,
			 "token file %s:%u: a token is %d..%d characters, this one %zu", path,
			 lineno, KP_TOKEN_MIN, KP_TOKEN_MAX, len);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (line[i] <= ' ' || line[i] > '~') {
			snprintf(err, errlen,
				 "token file %s:%u: a token is printable ASCII without spaces "
				 "(bad character at column %zu)",
				 path, lineno, i + 1);
			return -EINVAL;
		}
	}
	if (out->n == KP_TOKENS_MAX) {
		snprintf(err, errlen, "token file %s:%u: more than %d tokens", path, lineno,
			 KP_TOKENS_MAX);
		return -EINVAL;
	}
	memcpy(out->tok[out->n], line, len);
	out->tok[out->n][len] = '\0';
	out->n++;
	return 1;
}

int kp_tokens_parse(const char *path, const char *text, size_t len, struct kp_tokens *out,
		    char *err, size_t errlen)
{
	unsigned int lineno = 0;
	size_t off = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;

		lineno++;
		if (memchr(text + off, '\0', n)) {
			snprintf(err, errlen, "token file %s:%u: NUL byte", path, lineno);
			ret = -EINVAL;
			goto out_wipe;
		}
		ret = token_line(path, lineno, text + off, n, out, err, errlen);
		if (ret < 0) {
			goto out_wipe;
		}
		off += n + 1;
	}
	if (!out->n) {
		snprintf(err, errlen, "token file %s holds no token", path);
		ret = -EINVAL;
		goto out_wipe;
	}
	return 0;
out_wipe:
	OPENSSL_cleanse(out, sizeof(*out));
	return ret;
}

int kp_tokens_load(const char *path, struct kp_tokens *out, char *err, size_t errlen)
{
	char text[KP_TOKEN_FILE_MAX + 1];
	ssize_t n;
	int fd, ret;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "token file %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = key_check_mode("token file", path, fd, err, errlen);
	if (ret) {
		goto out_close_fd;
	}
	n = read_all(fd, text, sizeof(text));
	if (n < 0) {
		ret = (int)n;
		snprintf(err, errlen, "token file %s: read: %s", path, strerror(-ret));
		goto out_close_fd;
	}
	if ((size_t)n > KP_TOKEN_FILE_MAX) {
		snprintf(err, errlen, "token file %s is over %d bytes", path, KP_TOKEN_FILE_MAX);
		ret = -EFBIG;
		goto out_wipe;
	}
	ret = kp_tokens_parse(path, text, (size_t)n, out, err, errlen);
out_wipe:
	OPENSSL_cleanse(text, sizeof(text));
out_close_fd:
	close(fd);
	return ret;
}
