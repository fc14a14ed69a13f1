/* SPDX-License-Identifier: Apache-2.0 */
/* keel-mgmt settings: the [mgmt] schema for common/config.h. */
#include "mgmt/mg_settings.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#include "common/config.h"
#include "mgmt/mg_valid.h"

static const char *const mg_log_levels[] = {
	[MG_LOG_ERROR] = "error",
	[MG_LOG_WARN] = "warn",
	[MG_LOG_INFO] = "info",
	[MG_LOG_DEBUG] = "debug",
	NULL,
};

static const char *const mg_auth_modes[] = {
	[MG_AUTH_TOKEN] = "token",
	[MG_AUTH_NOAUTH] = "noauth",
	NULL,
};

static const char *const mg_full_policies[] = {
	[MG_FULL_WAIT] = "wait",
	[MG_FULL_FAIL] = "fail",
	NULL,
};

#define MG_OPT(name_, type_, field_, min_, max_, def_, vals_, help_)                               \
	{                                                                                          \
		.section = "mgmt", .name = name_, .type = type_,                                   \
		.offset = offsetof(struct mg_settings, field_),                                    \
		.size = sizeof(((struct mg_settings *)0)->field_), .min = min_, .max = max_,       \
		.def = def_, .enum_vals = vals_, .help = help_,                                    \
	}

static const struct cfg_opt mg_opts[] = {
	MG_OPT("db", CFG_STR, db, 0, 0, "", NULL, "SQLite database file (created if missing)"),
	MG_OPT("listen_api", CFG_STR, listen_api, 0, 0, "127.0.0.1:8776", NULL,
	       "REST API address, host:port"),
	MG_OPT("listen_cluster", CFG_STR, listen_cluster, 0, 0, "127.0.0.1:7000", NULL,
	       "cluster port (servers and clients, Keel wire protocol), host:port"),
	MG_OPT("key_file", CFG_STR, key_file, 0, 0, "", NULL,
	       "cluster key file (hex, mode 0600), the same as the servers'"),
	MG_OPT("heartbeat_timeout_ms", CFG_U32, heartbeat_timeout_ms, 200, 600000, "3000", NULL,
	       "a server silent this long is marked down"),
	MG_OPT("down_out_interval_s", CFG_U32, down_out_interval_s, 1, 31536000, "600", NULL,
	       "a server down this long is marked out and its PGs are re-placed"),
	MG_OPT("layer_drop_grace_s", CFG_U32, layer_drop_grace_s, 0, 86400, "60", NULL,
	       "a deleted layer stays listed (refused by servers) this long after every "
	       "server freed it, so clients still holding it learn it is gone"),
	MG_OPT("nearfull_percent", CFG_U32, nearfull_percent, 1, 100, "85", NULL,
	       "a server whose object space is this full (percent) makes the cluster "
	       "HEALTH_WARN"),
	MG_OPT("full_percent", CFG_U32, full_percent, 1, 100, "95", NULL,
	       "a server this full (percent) makes every pool with a PG on it full: "
	       "writes that need new space wait or fail (full_policy); overwrites, "
	       "reads, discards and deletes go on"),
	MG_OPT("full_policy", CFG_ENUM, full_policy, 0, 0, "wait", mg_full_policies,
	       "writes to a full pool: wait (clients retry until space is freed; the guest "
	       "sees a stall) or fail (ENOSPC to the guest)"),
	MG_OPT("attach_fence_ttl_s", CFG_U32, attach_fence_ttl_s, 60, 31536000, "3600", NULL,
	       "after a volume is detached from a host, servers refuse writes of that "
	       "attachment's generation for this long (the map lists the volume meanwhile)"),
	MG_OPT("default_replicas", CFG_U32, default_replicas, 1, MG_MAX_REPLICAS, "3", NULL,
	       "replicas of the pool 'default' created on first start"),
	MG_OPT("default_min_replicas", CFG_U32, default_min_replicas, 1, MG_MAX_REPLICAS, "2", NULL,
	       "min_replicas of the pool 'default'"),
	MG_OPT("default_failure_domain", CFG_ENUM, default_failure_domain, 0, 0, "host",
	       mg_failure_domains, "failure domain of the pool 'default'"),
	MG_OPT("default_pg_count", CFG_U32, default_pg_count, 1, MG_MAX_PG_COUNT, "128", NULL,
	       "PGs of the pool 'default'"),
	MG_OPT("log_level", CFG_ENUM, log_level, 0, 0, "info", mg_log_levels,
	       "error, warn, info or debug"),
	MG_OPT("auth", CFG_ENUM, auth, 0, 0, "token", mg_auth_modes,
	       "REST API: token (requests carry a token of token_file) or noauth (open)"),
	MG_OPT("token_file", CFG_STR, token_file, 0, 0, "", NULL,
	       "REST API tokens, one a line, mode 0600 (required with auth = token)"),
	MG_OPT("metrics_auth", CFG_BOOL, metrics_auth, 0, 0, "true", NULL,
	       "GET /metrics needs a token too (false: open, for scrapers without one)"),
};

#define MG_NOPTS (sizeof(mg_opts) / sizeof(mg_opts[0]))

int mg_settings_defaults(struct mg_settings *s, char *err, size_t errlen)
{
	return cfg_defaults(mg_opts, MG_NOPTS, s, err, errlen);
}

int mg_settings_load(struct mg_settings *s, const char *path, char *err, size_t errlen)
{
	return cfg_load_file(mg_opts, MG_NOPTS, s, path, err, errlen);
}

int mg_settings_set(struct mg_settings *s, const char *key, const char *value, char *err,
		    size_t errlen)
{
	return cfg_set(mg_opts, MG_NOPTS, s, key, value, err, errlen);
}

int mg_settings_check(const struct mg_settings *s, char *err, size_t errlen)
{
	if (!s->db[0]) {
		snprintf(err, errlen, "no database: give --db or mgmt.db");
		return -EINVAL;
	}
	if (!s->key_file[0]) {
		snprintf(err, errlen, "no key: give --key or mgmt.key_file");
		return -EINVAL;
	}
	if (s->auth == MG_AUTH_TOKEN && !s->token_file[0]) {
		snprintf(err, errlen,
			 "no API token file: give --token-file or mgmt.token_file (mode 0600, one "
			 "token a line), or set mgmt.auth=noauth");
		return -EINVAL;
	}
	if (s->default_min_replicas > s->default_replicas) {
		snprintf(err, errlen,
			 "mgmt.default_min_replicas (%u) exceeds default_replicas (%u)",
			 s->default_min_replicas, s->default_replicas);
		return -EINVAL;
	}
	if (s->nearfull_percent > s->full_percent) {
		snprintf(err, errlen, "mgmt.nearfull_percent (%u) exceeds full_percent (%u)",
			 s->nearfull_percent, s->full_percent);
		return -EINVAL;
	}
	return 0;
}

void mg_settings_help(FILE *f)
{
	cfg_print_help(mg_opts, MG_NOPTS, f);
}
