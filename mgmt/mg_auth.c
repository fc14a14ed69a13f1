/* SPDX-License-Identifier: Apache-2.0 */
/* REST API tokens: loading, presenting, constant-time checking (mg_auth.h). */
#include "mgmt/mg_auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/log.h"

static void mg_auth_digest(const char *tok, size_t len, uint8_t out[MG_AUTH_DIGEST_LEN])
{
	unsigned int n = 0;

	/* SHA-256 of an in-memory buffer fails only with a broken libcrypto;
	 * an unset digest would be a token nobody knows, but say so loudly. */
	if (!EVP_Digest(tok, len, out, &n, EVP_sha256(), NULL) || n != MG_AUTH_DIGEST_LEN) {
		log_fatal("SHA-256 failed");
	}
}

void mg_auth_set_tokens(struct mg_auth *a, const struct kp_tokens *t)
{
	kassert(t->n <= KP_TOKENS_MAX);
	OPENSSL_cleanse(a->digest, sizeof(a->digest));
	for (unsigned int i = 0; i < t->n; i++) {
		mg_auth_digest(t->tok[i], strlen(t->tok[i]), a->digest[i]);
	}
	a->ntokens = t->n;
}

int mg_auth_init(struct mg_auth *a, const struct mg_settings *s, char *err, size_t errlen)
{
	struct kp_tokens t;
	int ret;

	memset(a, 0, sizeof(*a));
	a->mode = s->auth;
	a->metrics_open = !s->metrics_auth;
	if (a->mode == MG_AUTH_NOAUTH) {
		return 0;
	}
	if (!s->token_file[0]) {
		snprintf(err, errlen,
			 "mgmt.auth = token needs mgmt.token_file (a file of mode 0600 with one "
			 "token a line, e.g. from 'keel-server keygen FILE'), or mgmt.auth = "
			 "noauth");
		return -EINVAL;
	}
	ret = kp_tokens_load(s->token_file, &t, err, errlen);
	if (ret) {
		return ret;
	}
	mg_auth_set_tokens(a, &t);
	OPENSSL_cleanse(&t, sizeof(t));
	return 0;
}

static bool mg_auth_blank(char c)
{
	return c == ' ' || c == '\t';
}

const char *mg_auth_presented(const char *x_auth_token, const char *authorization, size_t *len)
{
	const char *p = x_auth_token;

	if (!p) {
		p = authorization;
		if (!p) {
			return NULL;
		}
		while (mg_auth_blank(*p)) {
			p++;
		}
		if (strncasecmp(p, "Bearer", 6) || !mg_auth_blank(p[6])) {
			return NULL;
		}
		p += 6;
	}
	while (mg_auth_blank(*p)) {
		p++;
	}
	*len = strlen(p);
	while (*len && mg_auth_blank(p[*len - 1])) {
		(*len)--;
	}
	return *len ? p : NULL;
}

/* @path equals @want, give or take one trailing slash. */
static bool mg_auth_path_is(const char *path, const char *want)
{
	size_t n = strlen(want);

	return !strncmp(path, want, n) && (!path[n] || (path[n] == '/' && !path[n + 1]));
}

bool mg_auth_open_path(const struct mg_auth *a, const char *method, const char *path)
{
	if (a->mode == MG_AUTH_NOAUTH) {
		return true;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		return false;
	}
	if (!strcmp(path, "/") || mg_auth_path_is(path, "/v3")) {
		return true;
	}
	return a->metrics_open && mg_auth_path_is(path, "/metrics");
}

int mg_auth_check(const struct mg_auth *a, const char *method, const char *path,
		  const char *x_auth_token, const char *authorization)
{
	uint8_t d[MG_AUTH_DIGEST_LEN];
	const char *tok;
	size_t len = 0;
	int match = 0;

	if (mg_auth_open_path(a, method, path)) {
		return 0;
	}
	tok = mg_auth_presented(x_auth_token, authorization, &len);
	if (!tok) {
		return -ENOKEY;
	}
	if (len > KP_TOKEN_MAX) {
		return -EKEYREJECTED; /* no token of ours is that long */
	}
	mg_auth_digest(tok, len, d);
	for (unsigned int i = 0; i < a->ntokens; i++) {
		match |= !CRYPTO_memcmp(d, a->digest[i], MG_AUTH_DIGEST_LEN);
	}
	OPENSSL_cleanse(d, sizeof(d));
	return match ? 0 : -EKEYREJECTED;
}
