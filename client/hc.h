/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-client internals: the host daemon that serves the volumes attached
 * to its host as vhost-user-blk sockets and NBD exports.
 *
 * Threads: the reactor thread owns everything (libkeel, exports,
 * attachments); one mgmt worker thread (hc_mgmt.c) does the blocking REST
 * calls and hands results to the reactor with reactor_post().
 */
#ifndef KEEL_CLIENT_HC_H
#define KEEL_CLIENT_HC_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "client/blk_dev.h"
#include "client/libkeel.h"
#include "common/reactor.h"
#include "common/rsignal.h"
#include "proto/auth.h"

#define HC_NAME_LEN 64
#define HC_PATH_LEN 256

struct hc_settings {
	char mgmt_url[HC_PATH_LEN];
	char host[HC_NAME_LEN];
	char run_dir[HC_PATH_LEN];
	char key_file[HC_PATH_LEN];
	uint32_t poll_ms;
	uint32_t num_queues;
	uint32_t io_timeout_ms;
	char transport[16]; /* to the servers: tcp or rdma */
	uint32_t retry_ms;
	char vhost_user[HC_NAME_LEN];
	char vhost_group[HC_NAME_LEN];
	int log_level; /* enum klog_level */
	char token_file[HC_PATH_LEN]; /* REST API token; "" = rest_token_resolve()'s default */
	uint32_t stats_ms;	      /* I/O counters to mgmt this often; 0 = never */
};

/* A blk_dev over an open libkeel volume (blk_keel.c). The volume must
 * outlive the device. 0 or -ENOMEM. */
int blk_keel_create(struct keel_volume *v, bool read_only, struct blk_dev **out);

/* ---- mgmt worker (hc_mgmt.c) ---- */

struct hc_mgmt;

/* Start the worker: every @poll_ms (and right after a report) it GETs
 * /v1/hosts/{host}/attachments and calls @on_list on the reactor thread
 * with the JSON array (owned by the callee) or NULL and a message when mgmt
 * could not be asked. Every call sends @token (copied; "" = none) as
 * X-Auth-Token. 0 or -errno (thread creation). */
int hc_mgmt_start(struct reactor *r, const struct hc_settings *set, const char *token,
		  void (*on_list)(void *arg, json_t *list, const char *err), void *arg,
		  struct hc_mgmt **out);
/* Queue a PUT /v1/hosts/{host}/attachments/{volume} of @body (taken). */
void hc_mgmt_report(struct hc_mgmt *m, const char *volume, json_t *body);
/* False once mgmt refused a report's "io" member (a keel-mgmt older than
 * the I/O counters): reports go without it from then on. Any thread. */
bool hc_mgmt_takes_io(struct hc_mgmt *m);
/* Ask for a poll now (after a detach finished, say). */
void hc_mgmt_kick(struct hc_mgmt *m);
/* Stop and join the worker; lists it posted but the reactor has not run
 * yet are dropped by the daemon (it checks its stopping flag). */
void hc_mgmt_stop(struct hc_mgmt *m);

/* ---- attachments (hc_attach.c) ---- */

enum hc_attach_state {
	HC_A_OPENING,  /* volume open in flight */
	HC_A_ACTIVE,   /* exports up, reported attached */
	HC_A_FAILED,   /* reported error; retried after retry_ms */
	HC_A_CLOSING,  /* exports closing, then the volume */
};

struct hc_daemon;

struct hc_attach {
	struct hc_attach *next;
	struct hc_daemon *d;
	enum hc_attach_state state;
	char volume[HC_NAME_LEN];
	uint64_t generation;
	bool read_only;
	bool nbd;
	char nbd_tcp[HC_NAME_LEN]; /* "host:port" of the NBD export over TCP, or "" */
	uint64_t qos_iops;	   /* limits from mgmt's last list; 0 = unlimited */
	uint64_t qos_bps;
	bool seen;	      /* listed by the last poll */
	bool shrink_warned;   /* logged that a shrink waits for the next attach */
	unsigned int closing; /* exports not yet closed */
	uint64_t retry_at_ns;
	uint64_t stats_at_ns; /* next report of the I/O counters (ACTIVE) */
	struct keel_volume *vol;
	struct blk_dev *dev; /* blk_qos in front of blk_keel: what the exports see */
	struct vhost_blk *vb;
	struct nbd_server *nbd_srv;
	char vhost_path[HC_PATH_LEN + HC_NAME_LEN + 8];
	char nbd_path[HC_PATH_LEN + HC_NAME_LEN + 8];
	char nbd_uri[2 * HC_PATH_LEN + 32];
	char error[256];
};

struct hc_daemon {
	struct hc_settings set;
	struct reactor *r;
	struct rsignal sig;
	struct hc_mgmt *mgmt;
	struct keel_cluster *cluster;
	bool cluster_ready;
	bool cluster_opening;
	bool cluster_warned; /* joining failed: logged once, not every retry */
	struct reactor_timer cluster_retry;
	struct hc_attach *attaches;
	bool stopping;
	bool mgmt_warned; /* mgmt unreachable: logged once per outage */
	struct reactor_defer reap_defer;
	bool reap_queued;
	uid_t allow_uid;
	gid_t allow_gid;
	char token[KP_TOKEN_MAX + 1]; /* REST API token; "" = none */
};

/* Converge on mgmt's list of this host's attachments (@list: JSON array,
 * borrowed). Not while stopping (the caller checks). */
void hc_attach_sync(struct hc_daemon *d, json_t *list);
/* Close every attachment (shutdown); the last one to go calls
 * hc_daemon_maybe_exit(). */
void hc_attach_close_all(struct hc_daemon *d);
/* Log every attachment's state and its exports' counters (SIGHUP). */
void hc_attach_log_all(const struct hc_daemon *d);
/* The cluster session became ready: open what waits for it. */
void hc_attach_cluster_ready(struct hc_daemon *d);
/* Called by hc_attach.c when the last attachment closed during shutdown. */
void hc_daemon_maybe_exit(struct hc_daemon *d);

#endif
