/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-client attachments: converge on what mgmt lists for this host.
 *
 * Each attachment is a small state machine (enum hc_attach_state):
 *
 *   (listed) -> OPENING --volume open--> ACTIVE --(unlisted)--> CLOSING -> freed
 *                  |                                               ^
 *                  +--error--> FAILED --retry_ms--> OPENING        |
 *                                 +-------------(unlisted)---------+
 *
 * mgmt is told the outcome (attached with the socket paths, or error) and
 * is told again whenever a poll shows it something else, so a lost report,
 * a mgmt restart or a keel-client restart all converge. A generation that
 * changes under a name (detach + attach between two polls) closes the old
 * attachment first; the next poll opens the new one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/blk_qos.h"
#include "client/hc.h"
#include "client/nbd_server.h"
#include "client/vhost_blk.h"
#include "common/log.h"

#define HC_SUN_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */

static void hc_attach_open(struct hc_attach *a);
static void hc_attach_start_close(struct hc_attach *a);
static void hc_attach_schedule_reap(struct hc_daemon *d);
static void hc_attach_reap(struct hc_daemon *d);

static const char *const hc_state_names[] = {
	[HC_A_OPENING] = "opening",
	[HC_A_ACTIVE] = "active",
	[HC_A_FAILED] = "failed",
	[HC_A_CLOSING] = "closing",
};

static void hc_attach_set_state(struct hc_attach *a, enum hc_attach_state s)
{
	log_debug("volume %s gen %llu: %s -> %s", a->volume, (unsigned long long)a->generation,
		  hc_state_names[a->state], hc_state_names[s]);
	a->state = s;
}

/* The exports' counters, summed, as mgmt's "io" member (docs/api.md). */
static json_t *hc_attach_io_json(const struct hc_attach *a)
{
	struct vhost_blk_stats vs = {0};
	struct nbd_server_stats ns = {0};

	if (a->vb) {
		vhost_blk_get_stats(a->vb, &vs);
	}
	if (a->nbd_srv) {
		nbd_server_get_stats(a->nbd_srv, &ns);
	}
	/* JSON integers are signed 64-bit: counters stay far below 2^63. */
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "read_ops",
			 (json_int_t)(vs.reads + ns.reads), "read_bytes",
			 (json_int_t)(vs.bytes_read + ns.bytes_read), "read_usec",
			 (json_int_t)((vs.read_ns + ns.read_ns) / 1000), "write_ops",
			 (json_int_t)(vs.writes + ns.writes), "write_bytes",
			 (json_int_t)(vs.bytes_written + ns.bytes_written), "write_usec",
			 (json_int_t)((vs.write_ns + ns.write_ns) / 1000), "flush_ops",
			 (json_int_t)(vs.flushes + ns.flushes), "discard_ops",
			 (json_int_t)(vs.discards + ns.trims), "write_zeroes_ops",
			 (json_int_t)(vs.write_zeroes + ns.write_zeroes), "errors",
			 (json_int_t)(vs.io_errors + ns.io_errors));
}

static void hc_attach_report(struct hc_attach *a)
{
	struct hc_daemon *d = a->d;
	json_t *body;

	if (a->state == HC_A_ACTIVE) {
		body = json_pack("{s:I,s:s,s:s,s:s}", "generation", (json_int_t)a->generation,
				 "state", "attached", "vhost_socket", a->vhost_path, "nbd_uri",
				 a->nbd_uri);
		if (body && d->set.stats_ms && d->mgmt && hc_mgmt_takes_io(d->mgmt)) {
			json_object_set_new(body, "io", hc_attach_io_json(a));
			a->stats_at_ns = reactor_now_ns() + (uint64_t)d->set.stats_ms * 1000000ull;
		}
	} else {
		body = json_pack("{s:I,s:s,s:s}", "generation", (json_int_t)a->generation, "state",
				 "error", "error", a->error);
	}
	if (body) {
		hc_mgmt_report(d->mgmt, a->volume, body);
	}
}

static void hc_attach_fail(struct hc_attach *a, const char *fmt, int err)
{
	snprintf(a->error, sizeof(a->error), fmt, strerror(-err));
	log_error("volume %s: %s (retrying every %u ms)", a->volume, a->error, a->d->set.retry_ms);
	hc_attach_set_state(a, HC_A_FAILED);
	a->retry_at_ns = reactor_now_ns() + (uint64_t)a->d->set.retry_ms * 1000000ull;
	hc_attach_report(a);
}

/* Undo a partly built attachment (OPENING that failed midway). Only called
 * before anything was exported, so nothing can be in flight. */
static void hc_attach_release(struct hc_attach *a)
{
	if (a->dev) {
		a->dev->ops->destroy(a->dev);
		a->dev = NULL;
	}
	if (a->vol) {
		keel_volume_close(a->vol);
		a->vol = NULL;
	}
}

static void hc_attach_export(struct hc_attach *a)
{
	struct hc_daemon *d = a->d;
	struct vhost_blk_opts vo = {
		.socket_path = a->vhost_path,
		.num_queues = d->set.num_queues,
		.allow_uid = d->allow_uid,
		.allow_gid = d->allow_gid,
	};
	char fmt[sizeof(a->vhost_path) + 32];
	struct blk_dev *inner;
	int rc;

	if (strlen(a->vhost_path) >= HC_SUN_PATH_MAX || strlen(a->nbd_path) >= HC_SUN_PATH_MAX) {
		hc_attach_release(a);
		hc_attach_fail(a, "socket path over 107 bytes: use a shorter run_dir (%s)",
			       -ENAMETOOLONG);
		return;
	}

	rc = blk_keel_create(a->vol, a->read_only, &inner);
	if (!rc) {
		/* Every export of the volume shares this one limiter. */
		rc = blk_qos_create(d->r, inner, &a->dev);
		if (rc) {
			inner->ops->destroy(inner);
		}
	}
	if (rc) {
		hc_attach_release(a);
		hc_attach_fail(a, "cannot create the block device: %s", rc);
		return;
	}
	blk_qos_set_limits(a->dev, a->qos_iops, a->qos_bps);
	rc = vhost_blk_create(d->r, a->dev, &vo, &a->vb);
	if (rc) {
		hc_attach_release(a);
		snprintf(fmt, sizeof(fmt), "vhost-user socket %s: %%s", a->vhost_path);
		hc_attach_fail(a, fmt, rc);
		return;
	}
	if (a->nbd) {
		struct nbd_server_opts no = {
			.unix_path = a->nbd_path,
			.tcp_addr = a->nbd_tcp[0] ? a->nbd_tcp : NULL,
		};

		rc = nbd_server_create(d->r, a->dev, &no, &a->nbd_srv);
		if (rc) {
			/* The vhost export is up and a frontend may be on it:
			 * close it properly; the next poll starts over. */
			snprintf(fmt, sizeof(fmt), "NBD socket %s: %%s", a->nbd_path);
			hc_attach_fail(a, fmt, rc);
			hc_attach_start_close(a);
			return;
		}
	}
	a->error[0] = '\0';
	hc_attach_set_state(a, HC_A_ACTIVE);
	log_info("volume %s (%s, generation %llu) served on %s%s%s%s%s; QoS %llu IOPS, %llu "
		 "bytes/s (0 = unlimited)",
		 a->volume, a->read_only ? "read-only" : "read-write",
		 (unsigned long long)a->generation, a->vhost_path, a->nbd ? " and " : "",
		 a->nbd ? a->nbd_uri : "", a->nbd_tcp[0] ? " and tcp " : "", a->nbd_tcp,
		 (unsigned long long)a->qos_iops, (unsigned long long)a->qos_bps);
	hc_attach_report(a);
}

static void hc_attach_opened(struct keel_volume *v, int res, void *arg)
{
	struct hc_attach *a = arg;

	(void)v;
	if (a->state != HC_A_OPENING) {
		/* Unlisted while opening: hc_attach_finish_close() waits for us. */
		if (!res) {
			keel_volume_close(a->vol);
		}
		a->vol = NULL;
		if (--a->closing == 0) {
			hc_attach_schedule_reap(a->d);
		}
		return;
	}
	if (res) {
		a->vol = NULL;
		hc_attach_fail(a, res == -ENOENT ? "volume not found in the cluster map (%s)"
						 : "cannot open the volume: %s",
			       res);
		return;
	}
	/* Its writes carry the attachment's generation: once mgmt detaches
	 * this host (or hands the volume to another one), servers refuse
	 * them even if this daemon has not heard of it yet. */
	keel_volume_set_generation(a->vol, a->generation);
	hc_attach_export(a);
}

static void hc_attach_open(struct hc_attach *a)
{
	struct hc_daemon *d = a->d;
	int rc;

	hc_attach_set_state(a, HC_A_OPENING);
	if (!d->cluster_ready) {
		return; /* hc_attach_cluster_ready() resumes */
	}
	rc = keel_volume_open(d->cluster, a->volume, hc_attach_opened, a, &a->vol);
	if (rc) {
		a->vol = NULL;
		hc_attach_fail(a, "cannot open the volume: %s", rc);
	}
}

void hc_attach_cluster_ready(struct hc_daemon *d)
{
	for (struct hc_attach *a = d->attaches; a; a = a->next) {
		if (a->state == HC_A_OPENING && !a->vol) {
			hc_attach_open(a);
		}
	}
}

static void hc_attach_export_closed(void *arg)
{
	struct hc_attach *a = arg;

	if (--a->closing == 0) {
		hc_attach_schedule_reap(a->d);
	}
}

/* What the exports served, for the log when they close. */
static void hc_attach_log_stats(const struct hc_attach *a)
{
	char line[512];

	if (a->vb) {
		struct vhost_blk_stats st;

		vhost_blk_get_stats(a->vb, &st);
		vhost_blk_format_stats(&st, line, sizeof(line));
		log_info("volume %s vhost-user: %s", a->volume, line);
	}
	if (a->nbd_srv) {
		struct nbd_server_stats st;

		nbd_server_get_stats(a->nbd_srv, &st);
		nbd_server_format_stats(&st, line, sizeof(line));
		log_info("volume %s NBD: %s", a->volume, line);
	}
}

static void hc_attach_start_close(struct hc_attach *a)
{
	enum hc_attach_state was = a->state;

	hc_attach_set_state(a, HC_A_CLOSING);
	log_info("volume %s (generation %llu): closing its exports", a->volume,
		 (unsigned long long)a->generation);
	hc_attach_log_stats(a);
	if (a->dev) {
		/* Requests waiting for the limiter go now: the exports close
		 * once they completed. */
		blk_qos_set_limits(a->dev, 0, 0);
	}
	a->closing = 1; /* held while the closes are issued */
	if (was == HC_A_OPENING && a->vol) {
		a->closing++; /* hc_attach_opened() still to come */
	}
	if (a->vb) {
		a->closing++;
		vhost_blk_close(a->vb, hc_attach_export_closed, a);
		a->vb = NULL;
	}
	if (a->nbd_srv) {
		a->closing++;
		nbd_server_close(a->nbd_srv, hc_attach_export_closed, a);
		a->nbd_srv = NULL;
	}
	hc_attach_export_closed(a);
}

static void hc_attach_reap_deferred(struct reactor_defer *df)
{
	struct hc_daemon *d = container_of(df, struct hc_daemon, reap_defer);

	d->reap_queued = false;
	hc_attach_reap(d);
}

/* Reaping frees attachments: never from inside a walk of the list or a
 * callback that still holds one, always on the next loop turn. */
static void hc_attach_schedule_reap(struct hc_daemon *d)
{
	if (!d->reap_queued) {
		d->reap_queued = true;
		d->reap_defer.fn = hc_attach_reap_deferred;
		reactor_defer(d->r, &d->reap_defer);
	}
}

/* Free CLOSING attachments whose exports have all closed. */
static void hc_attach_reap(struct hc_daemon *d)
{
	struct hc_attach **pp = &d->attaches;

	while (*pp) {
		struct hc_attach *a = *pp;

		if (a->state != HC_A_CLOSING || a->closing) {
			pp = &a->next;
			continue;
		}
		hc_attach_release(a);
		log_info("volume %s (generation %llu) detached", a->volume,
			 (unsigned long long)a->generation);
		*pp = a->next;
		free(a);
		if (d->mgmt && !d->stopping) {
			hc_mgmt_kick(d->mgmt); /* a re-attach may be waiting */
		}
	}
	if (d->stopping && !d->attaches) {
		hc_daemon_maybe_exit(d);
	}
}

static struct hc_attach *hc_attach_find(struct hc_daemon *d, const char *volume)
{
	for (struct hc_attach *a = d->attaches; a; a = a->next) {
		if (!strcmp(a->volume, volume)) {
			return a;
		}
	}
	return NULL;
}

static struct hc_attach *hc_attach_new(struct hc_daemon *d, const char *volume, uint64_t gen,
				       bool ro, bool nbd, const char *nbd_tcp)
{
	struct hc_attach *a = calloc(1, sizeof(*a));

	if (!a) {
		log_error("volume %s: out of memory", volume);
		return NULL;
	}
	a->d = d;
	snprintf(a->volume, sizeof(a->volume), "%s", volume);
	a->generation = gen;
	a->read_only = ro;
	a->nbd = nbd || nbd_tcp[0];
	snprintf(a->nbd_tcp, sizeof(a->nbd_tcp), "%s", nbd_tcp);
	snprintf(a->vhost_path, sizeof(a->vhost_path), "%s/%s.vhost", d->set.run_dir, volume);
	if (a->nbd) {
		snprintf(a->nbd_path, sizeof(a->nbd_path), "%s/%s.nbd", d->set.run_dir, volume);
		snprintf(a->nbd_uri, sizeof(a->nbd_uri), "nbd+unix:///%s?socket=%s", volume,
			 a->nbd_path);
	}
	a->next = d->attaches;
	d->attaches = a;
	log_info("volume %s attached here (%s%s%s%s, generation %llu): opening", volume,
		 ro ? "read-only" : "read-write", a->nbd ? ", nbd" : "",
		 nbd_tcp[0] ? " and nbd on tcp " : "", nbd_tcp, (unsigned long long)gen);
	return a;
}

/* The volume grew (keelctl volume resize): serve the new size and tell
 * the guest (a virtio config change; NBD clients see it when they
 * reconnect). A shrink applies at the next attach: cutting a disk under a
 * running guest is not something to do behind its back. */
static void hc_attach_resize(struct hc_attach *a, json_int_t size)
{
	uint64_t old = a->dev->size;

	if (size <= 0 || (uint64_t)size == old) {
		return;
	}
	if ((uint64_t)size < old) {
		if (!a->shrink_warned) {
			log_warn("volume %s shrank to %lld bytes: still serving %llu until it is "
				 "attached again",
				 a->volume, (long long)size, (unsigned long long)old);
			a->shrink_warned = true;
		}
		return;
	}
	if (keel_volume_set_size(a->vol, (uint64_t)size)) {
		return;
	}
	blk_qos_set_size(a->dev, (uint64_t)size);
	if (a->vb) {
		vhost_blk_resize(a->vb);
	}
	if (a->nbd_srv) {
		nbd_server_resize(a->nbd_srv);
	}
	log_info("volume %s grew from %llu to %lld bytes", a->volume, (unsigned long long)old,
		 (long long)size);
}

/* The limits of a list entry: integers >= 0, absent (an older keel-mgmt)
 * = unlimited. -EINVAL for anything else (then nothing changes). */
static int hc_attach_qos_parse(json_t *e, uint64_t *iops, uint64_t *bps)
{
	json_t *ji = json_object_get(e, "qos_iops");
	json_t *jb = json_object_get(e, "qos_bps");

	if ((ji && (!json_is_integer(ji) || json_integer_value(ji) < 0)) ||
	    (jb && (!json_is_integer(jb) || json_integer_value(jb) < 0))) {
		return -EINVAL;
	}
	*iops = ji ? (uint64_t)json_integer_value(ji) : 0;
	*bps = jb ? (uint64_t)json_integer_value(jb) : 0;
	return 0;
}

/* mgmt changed the volume's limits: they apply from now on. */
static void hc_attach_qos(struct hc_attach *a, json_t *e)
{
	uint64_t iops, bps;

	if (hc_attach_qos_parse(e, &iops, &bps)) {
		log_warn("volume %s: ignoring malformed QoS limits from mgmt", a->volume);
		return;
	}
	if (iops == a->qos_iops && bps == a->qos_bps) {
		return;
	}
	log_info("volume %s: QoS limits %llu -> %llu IOPS, %llu -> %llu bytes/s (0 = unlimited)",
		 a->volume, (unsigned long long)a->qos_iops, (unsigned long long)iops,
		 (unsigned long long)a->qos_bps, (unsigned long long)bps);
	a->qos_iops = iops;
	a->qos_bps = bps;
	if (a->dev && a->state == HC_A_ACTIVE) {
		blk_qos_set_limits(a->dev, iops, bps);
	}
}

/* One entry of mgmt's list. Names were validated by mgmt; check again
 * anyway: they become file names here. */
static void hc_attach_sync_one(struct hc_daemon *d, json_t *e)
{
	const char *volume = json_string_value(json_object_get(e, "volume"));
	const char *state = json_string_value(json_object_get(e, "state"));
	json_t *gen = json_object_get(e, "generation");
	bool ro = json_is_true(json_object_get(e, "read_only"));
	bool nbd = json_is_true(json_object_get(e, "nbd"));
	const char *tcp = json_string_value(json_object_get(e, "nbd_tcp"));
	struct hc_attach *a;

	if (!volume || !volume[0] || strlen(volume) >= HC_NAME_LEN || strchr(volume, '/') ||
	    volume[0] == '.' || !json_is_integer(gen) || !state ||
	    (tcp && strlen(tcp) >= HC_NAME_LEN)) {
		log_warn("ignoring a malformed attachment from mgmt");
		return;
	}
	a = hc_attach_find(d, volume);
	if (a && a->generation != (uint64_t)json_integer_value(gen)) {
		if (a->state != HC_A_CLOSING) {
			log_info("volume %s: attachment generation %llu replaced by %lld",
				 volume, (unsigned long long)a->generation,
				 (long long)json_integer_value(gen));
			hc_attach_start_close(a);
		}
		return; /* opened by a later poll, once closed */
	}
	if (!a) {
		a = hc_attach_new(d, volume, (uint64_t)json_integer_value(gen), ro, nbd,
				  tcp ? tcp : "");
		if (!a) {
			return;
		}
		a->seen = true;
		if (hc_attach_qos_parse(e, &a->qos_iops, &a->qos_bps)) {
			log_warn("volume %s: malformed QoS limits from mgmt: unlimited until the "
				 "next list",
				 volume);
			a->qos_iops = a->qos_bps = 0;
		}
		hc_attach_open(a);
		return;
	}
	a->seen = true;
	if (a->state != HC_A_CLOSING) {
		hc_attach_qos(a, e);
	}
	if (a->state == HC_A_ACTIVE) {
		hc_attach_resize(a, json_integer_value(json_object_get(e, "size")));
	}
	if (a->state == HC_A_ACTIVE && strcmp(state, "attached")) {
		hc_attach_report(a);
	} else if (a->state == HC_A_ACTIVE && d->set.stats_ms && hc_mgmt_takes_io(d->mgmt) &&
		   reactor_now_ns() >= a->stats_at_ns) {
		hc_attach_report(a); /* the I/O counters, every stats_ms */
	} else if (a->state == HC_A_FAILED) {
		if (reactor_now_ns() >= a->retry_at_ns) {
			hc_attach_open(a);
		} else if (strcmp(state, "error")) {
			hc_attach_report(a);
		}
	}
}

void hc_attach_sync(struct hc_daemon *d, json_t *list)
{
	struct hc_attach *a;
	size_t i;
	json_t *e;

	for (a = d->attaches; a; a = a->next) {
		a->seen = false;
	}
	json_array_foreach(list, i, e)
	{
		hc_attach_sync_one(d, e);
	}
	for (a = d->attaches; a; a = a->next) {
		if (!a->seen && a->state != HC_A_CLOSING) {
			log_info("volume %s: detached at mgmt", a->volume);
			hc_attach_start_close(a);
		}
	}
}

void hc_attach_close_all(struct hc_daemon *d)
{
	for (struct hc_attach *a = d->attaches; a; a = a->next) {
		if (a->state != HC_A_CLOSING) {
			hc_attach_start_close(a);
		}
	}
	hc_attach_schedule_reap(d);
}

void hc_attach_log_all(const struct hc_daemon *d)
{
	for (const struct hc_attach *a = d->attaches; a; a = a->next) {
		log_info("volume %s (generation %llu): %s%s%s; QoS %llu IOPS, %llu bytes/s (0 = "
			 "unlimited)",
			 a->volume, (unsigned long long)a->generation, hc_state_names[a->state],
			 a->error[0] ? ": " : "", a->error, (unsigned long long)a->qos_iops,
			 (unsigned long long)a->qos_bps);
		hc_attach_log_stats(a);
	}
}

