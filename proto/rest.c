/* SPDX-License-Identifier: Apache-2.0 */
/* rest: HTTP requests to keel-mgmt over libcurl (see rest.h). */
#include "proto/rest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "proto/auth.h"

#define REST_MAX_REPLY (64u << 20)

struct rest_buf {
	char *data;
	size_t len;
	bool too_big;
};

static size_t rest_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct rest_buf *b = arg;
	size_t n = size * nmemb;
	char *d;

	if (b->len + n > REST_MAX_REPLY) {
		b->too_big = true;
		return 0;
	}
	d = realloc(b->data, b->len + n + 1);
	if (!d) {
		return 0;
	}
	memcpy(d + b->len, ptr, n);
	b->data = d;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* A token fit for a header line: 1..KP_TOKEN_MAX of '!'..'~'. */
static bool rest_token_ok(const char *t)
{
	size_t n = strlen(t);

	if (!n || n > KP_TOKEN_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (t[i] <= ' ' || t[i] > '~') {
			return false;
		}
	}
	return true;
}

static int rest_token_from_file(const char *path, bool optional, char *out, size_t outlen,
				char *err, size_t errlen)
{
	struct kp_tokens t;
	int ret;

	ret = kp_tokens_load(path, &t, err, errlen);
	if (ret) {
		if (optional && (ret == -ENOENT || ret == -EACCES)) {
			return 0;
		}
		return ret;
	}
	snprintf(out, outlen, "%s", t.tok[0]);
	OPENSSL_cleanse(&t, sizeof(t));
	return 0;
}

int rest_token_resolve(const char *token, const char *token_file, char *out, size_t outlen,
		       char *err, size_t errlen)
{
	const char *env;

	out[0] = '\0';
	if (!token || !token[0]) {
		env = getenv("KEEL_TOKEN");
		if (!token_file || !token_file[0]) {
			token = env;
		}
	}
	if (token && token[0]) {
		if (!rest_token_ok(token) || strlen(token) >= outlen) {
			snprintf(err, errlen,
				 "the API token must be 1..%d printable characters without spaces",
				 KP_TOKEN_MAX);
			return -EINVAL;
		}
		snprintf(out, outlen, "%s", token);
		return 0;
	}
	if (token_file && token_file[0]) {
		return rest_token_from_file(token_file, false, out, outlen, err, errlen);
	}
	env = getenv("KEEL_TOKEN_FILE");
	if (env && env[0]) {
		return rest_token_from_file(env, false, out, outlen, err, errlen);
	}
	return rest_token_from_file(REST_TOKEN_FILE_DEFAULT, true, out, outlen, err, errlen);
}

int rest_call(const char *base, const char *token, const char *method, const char *path,
	      const char *body, struct rest_resp *resp, char *err, size_t errlen)
{
	char url[1024], curl_err[CURL_ERROR_SIZE] = "";
	char auth[KP_TOKEN_MAX + 32];
	struct curl_slist *hdrs = NULL;
	struct rest_buf b = {0};
	CURLcode rc;
	CURL *h;
	size_t blen = strlen(base);

	memset(resp, 0, sizeof(*resp));
	if (token && token[0] && !rest_token_ok(token)) {
		snprintf(err, errlen, "the API token cannot be sent in a header");
		return -EINVAL;
	}
	while (blen && base[blen - 1] == '/') {
		blen--;
	}
	snprintf(url, sizeof(url), "%.*s%s", (int)blen, base, path);
	h = curl_easy_init();
	if (!h) {
		snprintf(err, errlen, "cannot initialize libcurl");
		return -ENOMEM;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rest_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (token && token[0]) {
		snprintf(auth, sizeof(auth), "X-Auth-Token: %s", token);
		hdrs = curl_slist_append(hdrs, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
	}
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "cannot reach keel-mgmt at %.*s: %s", (int)blen, base,
			 b.too_big     ? "reply too large"
			 : curl_err[0] ? curl_err
				       : curl_easy_strerror(rc));
		free(b.data);
		curl_slist_free_all(hdrs);
		curl_easy_cleanup(h);
		return -EIO;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	resp->text = b.data ? b.data : strdup("");
	if (b.len) {
		resp->json = json_loadb(b.data, b.len, 0, NULL);
	}
	return 0;
}

void rest_resp_free(struct rest_resp *resp)
{
	json_decref(resp->json);
	free(resp->text);
	memset(resp, 0, sizeof(*resp));
}

const char *rest_resp_error(const struct rest_resp *resp, char *buf, size_t len)
{
	json_t *msg = json_object_get(json_object_get(resp->json, "error"), "message");

	if (json_is_string(msg)) {
		return json_string_value(msg);
	}
	snprintf(buf, len, "keel-mgmt answered HTTP %ld", resp->status);
	return buf;
}
