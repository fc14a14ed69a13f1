/* SPDX-License-Identifier: Apache-2.0 */
/* keelctl's shared helpers (keelctl.c) and its command files (kc_*.c). */
#ifndef KEEL_MGMT_KC_H
#define KEEL_MGMT_KC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto/auth.h"
#include "proto/rest.h"

enum {
	KC_EXIT_OK = 0,
	KC_EXIT_ERR = 1,   /* the request failed: mgmt said no, or is unreachable */
	KC_EXIT_USAGE = 2, /* bad command line */
};

#define KC_DEFAULT_URL "http://127.0.0.1:8776"

struct kc_ctx {
	const char *url;
	bool json;		      /* -f json */
	const char *token_arg;	      /* --token */
	const char *token_file;	      /* --token-file */
	char token[KP_TOKEN_MAX + 1]; /* resolved (rest_token_resolve()); "" = none */
};

/* Print "keelctl: <fmt % arg>" and the help hint; KC_EXIT_USAGE. */
int kc_usage(const char *fmt, const char *arg);
/* Print "keelctl: msg"; KC_EXIT_ERR. */
int kc_fail(const char *msg);
/* Run a request; KC_EXIT_OK with *out the reply (rest_resp_free() it), or
 * the error printed and KC_EXIT_ERR (HTTP status >= 300 or unreachable). */
int kc_call(const struct kc_ctx *k, const char *method, const char *path, json_t *body,
	    struct rest_resp *out);
void kc_print_json(const struct rest_resp *r);
/* One object of a reply: as JSON with -f json, else as a one-row @table.
 * Frees @r; KC_EXIT_OK. */
int kc_print_one(const struct kc_ctx *k, struct rest_resp *r, int (*table)(json_t *list));
/* A string member or "-". */
const char *kc_str(json_t *o, const char *key);
uint64_t kc_u64(json_t *o, const char *key);
/* @v bytes as "512 B", "1.5 GiB" (4 significant digits) into @buf. */
const char *kc_bytes(uint64_t v, char *buf, size_t len);
/* @prefix followed by @name URL-escaped. 0 or KC_EXIT_ERR. */
int kc_name_path(const char *prefix, const char *name, char *buf, size_t len);

/* kc_attach.c */
extern const char kc_help_attach[];
int kc_volume_attach(const struct kc_ctx *k, int argc, char **argv);
int kc_volume_detach(const struct kc_ctx *k, int argc, char **argv);
int kc_attachment(const struct kc_ctx *k, int argc, char **argv);

/* kc_job.c */
extern const char kc_help_job[];
int kc_job(const struct kc_ctx *k, int argc, char **argv);
/* Poll job @id until it is done (KC_EXIT_OK) or failed (KC_EXIT_ERR, the
 * error printed), with a progress line named @what on a terminal. */
int kc_job_wait(const struct kc_ctx *k, const char *id, const char *what);

/* kc_volume.c */
extern const char kc_help_snapshot[];
int kc_snapshot(const struct kc_ctx *k, int argc, char **argv);
/* volume clone/copy/revert/flatten/resize/rename/import/export; -1 when
 * argv[0] is none of them. @table prints a list of volumes. */
int kc_volume_ops(const struct kc_ctx *k, int argc, char **argv, int (*table)(json_t *list));

#endif
