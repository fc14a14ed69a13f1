/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kc_http: keelctl's one HTTP call to keel-mgmt's REST API (libcurl,
 * blocking). Single-threaded tool; not thread-safe.
 */
#ifndef KEEL_MGMT_KC_HTTP_H
#define KEEL_MGMT_KC_HTTP_H

#include <stddef.h>

#include <jansson.h>

struct kc_resp {
	long status;  /* HTTP status */
	char *text;   /* body as received (NUL-terminated, malloc'd) */
	json_t *json; /* parsed body, NULL if empty or not JSON */
};

/*
 * @method @base@path with @body (JSON text or NULL). 0 with *resp filled
 * (any HTTP status), or -EIO when mgmt could not be reached (@err says
 * why), -ENOMEM. kc_resp_free() after a 0 return.
 */
int kc_http(const char *base, const char *method, const char *path, const char *body,
	    struct kc_resp *resp, char *err, size_t errlen);
void kc_resp_free(struct kc_resp *resp);

/* The error message of an error reply ({"error": {"message"}}), else a
 * generic "HTTP <status>". Valid while @resp is. */
const char *kc_resp_error(const struct kc_resp *resp, char *buf, size_t len);

#endif
