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

/* Where tools look for the API token when nothing else names one. */
#define REST_TOKEN_FILE_DEFAULT "/etc/keel/api.token"

/*
 * @method @base@path with @body (JSON text or NULL), sending @token (NULL
 * or "": none) as X-Auth-Token. 0 with *resp filled (any HTTP status; 401:
 * the token is missing or wrong), or -EIO when mgmt could not be reached
 * (@err says why), -EINVAL (a token with characters a header cannot carry),
 * -ENOMEM. rest_resp_free() after a 0 return.
 */
int rest_call(const char *base, const char *token, const char *method, const char *path,
	      const char *body, struct rest_resp *resp, char *err, size_t errlen);

/*
 * The API token a tool sends, into @out (@outlen > KP_TOKEN_MAX): @token if
 * given (non-NULL, non-empty), else the first token of @token_file if given,
 * else $KEEL_TOKEN, else the first token of $KEEL_TOKEN_FILE, else of
 * REST_TOKEN_FILE_DEFAULT if that file exists and is readable. *@out = ""
 * when none (a keel-mgmt with auth = noauth needs none). 0, or -EINVAL (a
 * token that is not 1..KP_TOKEN_MAX printable characters), or
 * kp_tokens_load()'s errors for a named file (-ENOENT, -EACCES, -EPERM: mode
 * looser than 0600, -EINVAL, -EFBIG), with @err naming the source. Setup
 * time (reads the environment).
 */
int rest_token_resolve(const char *token, const char *token_file, char *out, size_t outlen,
		       char *err, size_t errlen);
void rest_resp_free(struct rest_resp *resp);

/* The error message of an error reply ({"error": {"message"}}), else a
 * generic "HTTP <status>". Valid while @resp is. */
const char *rest_resp_error(const struct rest_resp *resp, char *buf, size_t len);

#endif
