/* SPDX-License-Identifier: Apache-2.0 */
/* rest: HTTP requests to keel-mgmt over libcurl (see rest.h). */
#include "proto/rest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

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

int rest_call(const char *base, const char *method, const char *path, const char *body,
	    struct rest_resp *resp, char *err, size_t errlen)
{
	char url[1024], curl_err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct rest_buf b = {0};
	CURLcode rc;
	CURL *h;
	size_t blen = strlen(base);

	memset(resp, 0, sizeof(*resp));
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
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
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
