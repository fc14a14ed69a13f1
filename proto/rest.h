/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rest: one blocking HTTP call to keel-mgmt's REST API (libcurl), for
 * keelctl and for keel-client's mgmt worker thread. Each call uses its own
 * curl handle: calls from different threads are safe once the process has
 * called curl_global_init() (before starting threads).
 */
#ifndef KEEL_PROTO_REST_H
#define KEEL_PROTO_REST_H

#include <stddef.h>

#include <jansson.h>

struct rest_resp {
	long status;  /* HTTP status */
	char *text;   /* body as received (NUL-terminated, malloc'd) */
	json_t *json; /* parsed body, NULL if empty or not JSON */
};

/*
 * @method @base@path with @body (JSON text or NULL). 0 with *resp filled
 * (any HTTP status), or -EIO when mgmt could not be reached (@err says
 * why), -ENOMEM. rest_resp_free() after a 0 return.
 */
int rest_call(const char *base, const char *method, const char *path, const char *body,
	    struct rest_resp *resp, char *err, size_t errlen);
void rest_resp_free(struct rest_resp *resp);

/* The error message of an error reply ({"error": {"message"}}), else a
 * generic "HTTP <status>". Valid while @resp is. */
const char *rest_resp_error(const struct rest_resp *resp, char *buf, size_t len);

#endif
