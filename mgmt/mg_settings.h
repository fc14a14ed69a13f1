/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-mgmt settings: the [mgmt] section of the configuration file, loaded
 * with common/config.h (defaults, then --config FILE, then --set overrides).
 *
 * Setup time only, not thread-safe.
 */
#ifndef KEEL_MGMT_MG_SETTINGS_H
#define KEEL_MGMT_MG_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum mg_log_level {
	MG_LOG_ERROR = 0,
	MG_LOG_WARN,
	MG_LOG_INFO,
	MG_LOG_DEBUG,
};

enum mg_auth_mode {
	MG_AUTH_TOKEN = 0, /* REST requests carry a token of token_file (mg_auth.h) */
	MG_AUTH_NOAUTH,	   /* REST open to whoever reaches listen_api */
};

/* What a write that needs new space does while its pool is full. */
enum mg_full_policy {
	MG_FULL_WAIT = 0, /* clients retry until space returns (the guest stalls) */
	MG_FULL_FAIL,	  /* clients fail it with ENOSPC */
};

struct mg_settings {
	char db[256];
	char listen_api[128];
	char listen_cluster[128];
	char key_file[256];
	uint32_t heartbeat_timeout_ms;
	uint32_t down_out_interval_s;
	uint32_t layer_drop_grace_s;
	uint32_t default_replicas;
	uint32_t default_min_replicas;
	int default_failure_domain; /* enum cmap_fd */
	uint32_t default_pg_count;
	int log_level; /* enum mg_log_level */
	int auth;      /* enum mg_auth_mode */
	char token_file[256];
	bool metrics_auth; /* GET /metrics needs a token too (auth = token) */
	uint32_t nearfull_percent; /* a server this full: HEALTH_WARN */
	uint32_t full_percent;	   /* a server this full: its pools are full */
	int full_policy;	   /* enum mg_full_policy */
	uint32_t attach_fence_ttl_s; /* a detached host stays fenced this long */
};

/* Fill @s with defaults. 0, or -EINVAL with @err (a schema bug). */
int mg_settings_defaults(struct mg_settings *s, char *err, size_t errlen);
/* Load an INI file. -EINVAL (with file:line in @err), -ENOENT, -EACCES. */
int mg_settings_load(struct mg_settings *s, const char *path, char *err, size_t errlen);
/* Apply "mgmt.key" (or bare "key") = @value. -EINVAL with @err. */
int mg_settings_set(struct mg_settings *s, const char *key, const char *value, char *err,
		    size_t errlen);
/* Cross-field checks (min_replicas <= replicas, required keys present).
 * -EINVAL with @err. */
int mg_settings_check(const struct mg_settings *s, char *err, size_t errlen);
/* Every key with its default and help, for --help. */
void mg_settings_help(FILE *f);

#endif
