/* SPDX-License-Identifier: Apache-2.0 */
/* keel-server settings: the [server] schema for common/config.h. */
#include "server/srv.h"

#include <errno.h>
#include <stddef.h>

#include "common/config.h"

static const char *const srv_flush_modes[] = {
	[BS_FLUSH_AUTO] = "auto",
	[BS_FLUSH_ALWAYS] = "always",
	[BS_FLUSH_NONE] = "none",
	NULL,
};

static const char *const srv_log_levels[] = {
	[SRV_LOG_ERROR] = "error",
	[SRV_LOG_WARN] = "warn",
	[SRV_LOG_INFO] = "info",
	[SRV_LOG_DEBUG] = "debug",
	NULL,
};

#define SRV_OPT(name_, type_, field_, min_, max_, def_, vals_, help_)                              \
	{                                                                                          \
		.section = "server", .name = name_, .type = type_,                                 \
		.offset = offsetof(struct srv_settings, field_),                                   \
		.size = sizeof(((struct srv_settings *)0)->field_), .min = min_, .max = max_,      \
		.def = def_, .enum_vals = vals_, .help = help_,                                    \
	}

#define FAULT_OPT(name_, field_, max_, help_)                                                      \
	{                                                                                          \
		.section = "fault", .name = name_, .type = CFG_U32,                                \
		.offset = offsetof(struct srv_settings, field_),                                   \
		.size = sizeof(((struct srv_settings *)0)->field_), .min = 0, .max = max_,         \
		.def = "0", .enum_vals = NULL, .help = help_,                                      \
	}

static const struct cfg_opt srv_opts[] = {
	SRV_OPT("listen", CFG_STR, listen, 0, 0, "127.0.0.1:7400", NULL,
		"address to listen on, host:port or [v6]:port"),
	SRV_OPT("transport", CFG_STR, transport, 0, 0, "tcp", NULL,
		"data-path transport for clients and peers: tcp or rdma (docs/rdma.md); "
		"mgmt is always reached over tcp"),
	SRV_OPT("device", CFG_STR, device, 0, 0, "", NULL,
		"drive holding the blockstore (file or block device)"),
	SRV_OPT("backend", CFG_STR, backend, 0, 0, "uring", NULL,
		"io backend: uring (production), ram or sim (tests)"),
	SRV_OPT("key_file", CFG_STR, key_file, 0, 0, "", NULL,
		"cluster key file (hex, mode 0600), see keel-server keygen"),
	SRV_OPT("flush_mode", CFG_ENUM, flush_mode, 0, 0, "auto", srv_flush_modes,
		"auto (flush if the drive has a volatile cache), always, none"),
	SRV_OPT("meta_cache_mb", CFG_U32, meta_cache_mb, 0, 65536, "0", NULL,
		"block-metadata cache in MiB; 0 = blockstore default"),
	SRV_OPT("apply_batch", CFG_U32, apply_batch, 1, 256, "16", NULL,
		"acknowledged writes copied from the journal to their place together, "
		"one device submission for up to this many (1: each on its own); "
		"not used when the journal is flushed (flush_mode always, or auto on a "
		"drive with a volatile cache): then those held since one journal write "
		"go right after the next"),
	SRV_OPT("apply_delay_us", CFG_U32, apply_delay_us, 1, 1000000, "10000", NULL,
		"an acknowledged write's copy to its place waits at most this long for "
		"others (plus up to 100 ms when the server is idle); reads, discards and "
		"checkpoints never wait for it"),
	SRV_OPT("log_level", CFG_ENUM, log_level, 0, 0, "info", srv_log_levels,
		"error, warn, info or debug"),
	SRV_OPT("max_connections", CFG_U32, max_connections, 1, 65536, "1024", NULL,
		"connections served at once; more are refused"),
	SRV_OPT("poll_us", CFG_U32, poll_us, 0, 1000000, "0", NULL,
		"busy-poll completions this many microseconds before sleeping (0: never)"),
	SRV_OPT("auth_timeout_ms", CFG_U32, auth_timeout_ms, 100, 600000, "10000", NULL,
		"a connection that has not authenticated within this is closed"),
	SRV_OPT("slow_request_ms", CFG_U32, slow_request_ms, 0, 3600000, "2000", NULL,
		"a request in flight this long is logged once, with what it waits for (0: off)"),
	SRV_OPT("mgmt", CFG_STR, mgmt, 0, 0, "", NULL,
		"keel-mgmt cluster address host:port; empty = single-server mode"),
	SRV_OPT("host", CFG_STR, host, 0, 0, "", NULL,
		"failure-domain host name (default: the hostname)"),
	SRV_OPT("rack", CFG_STR, rack, 0, 0, "default", NULL, "failure-domain rack name"),
	SRV_OPT("weight", CFG_U32, weight, 0, 1000000, "0", NULL,
		"placement weight; 0 = GiB of object space (at least 1)"),
	SRV_OPT("advertise", CFG_STR, advertise, 0, 0, "", NULL,
		"data address announced to mgmt and peers (default: the listen address)"),
	SRV_OPT("recovery_max_active", CFG_U32, recovery_max_active, 1, 1024, "4", NULL,
		"recovery object pushes in flight per server"),
	SRV_OPT("recovery_client_ops", CFG_U32, recovery_client_ops, 1, 65536, "16", NULL,
		"recovery starts no new object push while this many client ops are in flight"),
	SRV_OPT("replica_timeout_ms", CFG_U32, replica_timeout_ms, 100, 600000, "2000", NULL,
		"a replica request unanswered this long closes the peer connection (resent)"),
	FAULT_OPT("msg_drop_every", fault_msg_drop_every, 1000000000,
		  "TESTS ONLY: discard every Nth data-path frame received (0: off)"),
	FAULT_OPT("msg_corrupt_every", fault_msg_corrupt_every, 1000000000,
		  "TESTS ONLY: flip a byte of every Nth data-path frame received (0: off)"),
	FAULT_OPT("msg_delay_every", fault_msg_delay_every, 1000000000,
		  "TESTS ONLY: hold a connection's output at every Nth frame sent (0: off)"),
	FAULT_OPT("msg_delay_ms", fault_msg_delay_ms, 60000,
		  "TESTS ONLY: how long msg_delay_every holds the output"),
	FAULT_OPT("recovery_hold_ms", fault_recovery_hold_ms, 600000,
		  "TESTS ONLY: a PG recovery copies no object until this long after it "
		  "started (0: off)"),
};

#define SRV_NOPTS (sizeof(srv_opts) / sizeof(srv_opts[0]))

int srv_settings_defaults(struct srv_settings *s, char *err, size_t errlen)
{
	return cfg_defaults(srv_opts, SRV_NOPTS, s, err, errlen);
}

int srv_settings_load(struct srv_settings *s, const char *path, char *err, size_t errlen)
{
	return cfg_load_file(srv_opts, SRV_NOPTS, s, path, err, errlen);
}

int srv_settings_set(struct srv_settings *s, const char *key, const char *value, char *err,
		     size_t errlen)
{
	return cfg_set(srv_opts, SRV_NOPTS, s, key, value, err, errlen);
}

void srv_settings_help(FILE *f)
{
	cfg_print_help(srv_opts, SRV_NOPTS, f);
}

const char *srv_flush_mode_name(int mode)
{
	if (mode < 0 || mode > BS_FLUSH_NONE) {
		return "?";
	}
	return srv_flush_modes[mode];
}
