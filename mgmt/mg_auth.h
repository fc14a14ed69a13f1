/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_auth: who may use keel-mgmt's REST API (docs/api.md, "Authentication").
 *
 * auth = token (the default): a request carries one of the tokens of
 * token_file, as `X-Auth-Token: TOKEN` (the OpenStack header) or
 * `Authorization: Bearer TOKEN` (Prometheus, curl); anything else is
 * answered 401 before its route is looked at or its body read. Open without
 * a token: the version documents (GET / and GET /v3: OpenStack clients
 * discover versions before they authenticate) and, with metrics_auth =
 * false, GET /metrics.
 * auth = noauth: every request is accepted (the stock cinder client with
 * OS_AUTH_TYPE=noauth, trusted networks, tests).
 *
 * Tokens are kept only as SHA-256 digests; a presented token is hashed and
 * compared with every digest in constant time (CRYPTO_memcmp, no early
 * exit), so neither the content nor the length of a token leaks through
 * timing.
 *
 * mg_auth_init() at setup (not thread-safe); the rest is pure and read-only
 * on a struct mg_auth, safe from every HTTP thread.
 */
#ifndef KEEL_MGMT_MG_AUTH_H
#define KEEL_MGMT_MG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgmt/mg_settings.h"
#include "proto/auth.h"

#define MG_AUTH_DIGEST_LEN 32

struct mg_auth {
	int mode;	   /* enum mg_auth_mode (mg_settings.h) */
	bool metrics_open; /* GET /metrics without a token */
	unsigned int ntokens;
	uint8_t digest[KP_TOKENS_MAX][MG_AUTH_DIGEST_LEN];
};

/*
 * From @s: mode, metrics_auth, and with auth = token the tokens of
 * s->token_file (kp_tokens_load(): -ENOENT, -EACCES, -EPERM for a file
 * group or others may read, -EINVAL, -EFBIG). -EINVAL when auth = token
 * and no token_file is set. @err says why.
 */
int mg_auth_init(struct mg_auth *a, const struct mg_settings *s, char *err, size_t errlen);

/* Install @t as the accepted tokens (mg_auth_init() and the tests). */
void mg_auth_set_tokens(struct mg_auth *a, const struct kp_tokens *t);

/*
 * The token a request presents: @x_auth_token (the X-Auth-Token header) if
 * given, else the credentials of an @authorization header of scheme Bearer
 * (case-insensitive, then one or more spaces). Surrounding blanks are not
 * part of a token. NULL when there is none; *len its length otherwise.
 * Either header may be NULL (absent).
 */
const char *mg_auth_presented(const char *x_auth_token, const char *authorization, size_t *len);

/* Whether @method @path is served without a token (see above). @path is
 * the URL path without the query. */
bool mg_auth_open_path(const struct mg_auth *a, const char *method, const char *path);

/*
 * Decide a request: 0 (serve it), -ENOKEY (no token presented) or
 * -EKEYREJECTED (a token that is not one of ours). Both mean 401.
 */
int mg_auth_check(const struct mg_auth *a, const char *method, const char *path,
		  const char *x_auth_token, const char *authorization);

#endif
