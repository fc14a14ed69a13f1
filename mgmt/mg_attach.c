/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attachments: which host's keel-client serves which volume (docs/api.md,
 * docs/host-client.md). mgmt only records the wish (ATTACHING) and what the
 * host reports back (ATTACHED with its socket paths, or ERROR); keel-client
 * polls GET /v1/hosts/{host}/attachments and converges on it.
 *
 * Every attach gets a new generation from meta.next_attach_gen (never
 * reused, survives restarts): a report carries the generation it is about,
 * so a late report for an attachment that was detached and attached again
 * is refused instead of marking the new one attached.
 *
 * Fencing (docs/volumes.md "Attachments and fencing"): keel-client's writes
 * carry the generation. Detaching a host records the volume as fenced
 * (attach_fences), and from then on, for attach_fence_ttl_s after its last
 * detach, the cluster map lists the volume's top layer with the generations
 * of its read-write attachments: servers refuse writes of any other. The
 * detach is answered once every up server applied that map and finished
 * the writes it had admitted before, so a detached host (hung, partitioned,
 * or simply not told yet) can never write after it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xport.h"
#include "mgmt/mg_api.h"
#include "mgmt/mg_metrics.h"
#include "mgmt/mg_valid.h"

static const char *const mg_attach_state_names[] = {"attaching", "attached", "error"};

static json_t *mg_attach_json(const struct mg_attach_rec *a)
{
	char tcp_uri[sizeof(a->nbd_tcp) + CMAP_NAME_LEN + 16] = "";

	if (a->nbd_tcp[0]) {
		snprintf(tcp_uri, sizeof(tcp_uri), "nbd://%s/%s", a->nbd_tcp, a->volume);
	}
	return json_pack(
		"{s:s,s:I,s:I,s:s,s:b,s:b,s:I,s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:o,s:I,s:I}", "volume",
		a->volume, "volume_id", (json_int_t)a->volume_id, "size", (json_int_t)a->size,
		"host", a->host, "read_only", a->read_only, "nbd", a->nbd, "generation",
		(json_int_t)a->generation, "state", mg_attach_state_names[a->state], "vhost_socket",
		a->vhost_socket[0] ? a->vhost_socket : NULL, "nbd_uri",
		a->nbd_uri[0] ? a->nbd_uri : NULL, "nbd_tcp", a->nbd_tcp[0] ? a->nbd_tcp : NULL,
		"nbd_tcp_uri", a->nbd_tcp[0] && a->state == MG_ATTACH_ATTACHED ? tcp_uri : NULL,
		"error", a->error[0] ? a->error : NULL, "created_at",
		mg_api_iso_time(a->created_at * 1000), "qos_iops", (json_int_t)a->qos_iops,
		"qos_bps", (json_int_t)a->qos_bps);
}

/* "host:port" with a numeric port 1..65535 and a host of [A-Za-z0-9.:-]
 * (an address or a name; keel-client resolves it when it listens). */
static int mg_check_tcp_addr(const char *addr, char *err, size_t errlen)
{
	char host[CMAP_ADDR_LEN], port[16], *end;
	unsigned long p;

	if (strlen(addr) >= CMAP_ADDR_LEN || xport_parse_addr(addr, host, sizeof(host), port,
							      sizeof(port))) {
		goto bad;
	}
	p = strtoul(port, &end, 10);
	if (!host[0] || *end || !port[0] || p < 1 || p > 65535) {
		goto bad;
	}
	for (const char *c = host; *c; c++) {
		if (!isalnum((unsigned char)*c) && !strchr(".:-", *c)) {
			goto bad;
		}
	}
	return 0;
bad:
	snprintf(err, errlen, "nbd_tcp must be HOST:PORT (port 1-65535), not '%.64s'", addr);
	return -EINVAL;
}

static int mg_attach_collect(void *arg, const struct mg_attach_rec *a)
{
	json_t *j = mg_attach_json(a);

	return j ? json_array_append_new(arg, j) ? -ENOMEM : 0 : -ENOMEM;
}

static int mg_attach_counter(void *arg, const struct mg_attach_rec *a)
{
	(void)a;
	(*(unsigned int *)arg)++;
	return 0;
}

int mg_attach_count(struct mg_cluster *c, uint64_t volume_id, unsigned int *out)
{
	*out = 0;
	return mg_store_each_attach(c->st, volume_id, NULL, mg_attach_counter, out);
}

/* The volume named by the path, or an error reply. */
static int mg_attach_volume(struct mg_cluster *c, struct mg_api_req *req, const char *name,
			    struct mg_volume_rec *v)
{
	char msg[MG_API_ERR_LEN];
	int ret = -ENOENT;

	if (!mg_check_name("volume", name, NULL, 0)) {
		ret = mg_store_get_volume(c->st, name, v);
	}
	if (ret) {
		snprintf(msg, sizeof(msg), "volume '%.64s' %s", name,
			 ret == -ENOENT ? "not found" : "cannot be read");
		mg_api_error(req, ret, msg);
	}
	return ret;
}

static void mg_attach_list(struct mg_cluster *c, struct mg_api_req *req, uint64_t volume_id,
			   const char *host)
{
	json_t *a = json_array();
	int ret;

	ret = a ? mg_store_each_attach(c->st, volume_id, host, mg_attach_collect, a) : -ENOMEM;
	if (ret) {
		json_decref(a);
		mg_api_error(req, ret, "cannot read attachments");
		return;
	}
	mg_api_reply(req, 200, a);
}

/* ---- fencing ---- */

static int mg_afence_index(const struct mg_cluster *c, uint64_t volume_id, bool *found)
{
	uint32_t lo = 0, hi = c->nafences;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->afences[mid].volume_id == volume_id) {
			*found = true;
			return (int)mid;
		}
		if (c->afences[mid].volume_id < volume_id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	*found = false;
	return (int)lo;
}

static bool mg_afenced(const struct mg_cluster *c, uint64_t volume_id)
{
	bool found;

	mg_afence_index(c, volume_id, &found);
	return found;
}

static int mg_afence_set(struct mg_cluster *c, uint64_t volume_id, int64_t since_ms,
			 uint64_t top)
{
	bool found;
	int i = mg_afence_index(c, volume_id, &found);

	if (found) {
		c->afences[i].since_ms = since_ms;
		c->afences[i].top = top;
		return 0;
	}
	if (c->nafences == c->afences_cap) {
		uint32_t cap = c->afences_cap ? c->afences_cap * 2 : 16;
		struct mg_afence *n = realloc(c->afences, cap * sizeof(*n));

		if (!n) {
			return -ENOMEM;
		}
		c->afences = n;
		c->afences_cap = cap;
	}
	memmove(&c->afences[i + 1], &c->afences[i], (c->nafences - (uint32_t)i) * sizeof(c->afences[0]));
	c->afences[i] = (struct mg_afence){volume_id, since_ms, top};
	c->nafences++;
	return 0;
}

static void mg_afence_del(struct mg_cluster *c, uint64_t volume_id)
{
	bool found;
	int i = mg_afence_index(c, volume_id, &found);

	if (found) {
		memmove(&c->afences[i], &c->afences[i + 1],
			(c->nafences - (uint32_t)i - 1) * sizeof(c->afences[0]));
		c->nafences--;
	}
}

static int mg_afence_load_one(void *arg, uint64_t volume_id, int64_t since_ms)
{
	struct mg_cluster *c = arg;
	struct mg_volume_rec v;

	/* A volume deleted since: listed nowhere (top 0) until it expires. */
	return mg_afence_set(c, volume_id, since_ms,
			     mg_store_get_volume_id(c->st, volume_id, &v) ? 0 : v.top);
}

uint64_t mg_attach_fence_top(struct mg_cluster *c, uint64_t volume_id, uint64_t top)
{
	bool found;
	int i = mg_afence_index(c, volume_id, &found);
	uint64_t old;

	if (!found) {
		return 0;
	}
	old = c->afences[i].top;
	c->afences[i].top = top;
	return old;
}

int mg_attach_fences_load(struct mg_cluster *c)
{
	return mg_store_each_fence(c->st, mg_afence_load_one, c);
}

struct mg_live_walk {
	struct cmap_fence *f;
	uint32_t skipped;
};

static int mg_collect_live(void *arg, const struct mg_attach_rec *a)
{
	struct mg_live_walk *w = arg;

	if (a->read_only) {
		return 0; /* writes of a read-only attachment are refused too */
	}
	if (w->f->nlive == CMAP_FENCE_LIVE) {
		w->skipped++;
		return 0;
	}
	w->f->live[w->f->nlive++] = a->generation;
	return 0;
}

int mg_attach_fences_to_map(struct mg_cluster *c, struct cmap *m)
{
	int64_t horizon = mg_wall_ms() - (int64_t)c->cfg->attach_fence_ttl_s * 1000;
	struct cmap_fence *f;
	uint32_t n = 0;
	int ret = 0;

	if (!c->nafences) {
		return cmap_set_fences(m, NULL, 0);
	}
	f = calloc(c->nafences, sizeof(*f));
	if (!f) {
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < c->nafences; i++) {
		struct mg_live_walk w = {.f = &f[n]};
		const struct mg_afence *a = &c->afences[i];

		if (a->since_ms < horizon || !a->top) {
			continue; /* expired (the tick drops it), or the volume is gone */
		}
		memset(&f[n], 0, sizeof(f[n]));
		f[n].inode = a->top;
		ret = mg_store_each_attach(c->st, a->volume_id, NULL, mg_collect_live, &w);
		if (ret) {
			goto out;
		}
		if (w.skipped) {
			log_error("volume %llu: more than %d read-write attachments: %u not listed "
				  "as live (their writes are refused)",
				  (unsigned long long)a->volume_id, CMAP_FENCE_LIVE, w.skipped);
		}
		n++;
	}
	ret = cmap_set_fences(m, f, n);
out:
	free(f);
	return ret;
}

void mg_attach_fences_tick(struct mg_cluster *c)
{
	int64_t horizon = mg_wall_ms() - (int64_t)c->cfg->attach_fence_ttl_s * 1000;
	uint32_t dropped = 0;

	for (uint32_t i = 0; i < c->nafences;) {
		uint64_t id = c->afences[i].volume_id;

		if (c->afences[i].since_ms >= horizon) {
			i++;
			continue;
		}
		if (mg_store_begin(c->st)) {
			return;
		}
		if (mg_store_delete_fence(c->st, id)) {
			mg_store_rollback(c->st);
			return; /* the next tick tries again */
		}
		if (mg_store_commit(c->st)) {
			return;
		}
		mg_afence_del(c, id);
		dropped++;
	}
	if (dropped) {
		char reason[96];

		snprintf(reason, sizeof(reason), "%u attachment fences expired", dropped);
		mg_cluster_publish(c, NULL, reason, NULL, NULL);
	}
}

/* After an attachment change of a fenced volume: a map with its live
 * generations. 0, or the publish error. */
static int mg_afence_publish(struct mg_cluster *c, const struct mg_volume_rec *v,
			     const char *what, const char *host)
{
	char reason[CMAP_NAME_LEN * 2 + 64];

	snprintf(reason, sizeof(reason), "volume '%s' %s host '%s': fences", v->name, what,
		 host);
	return mg_cluster_publish(c, NULL, reason, NULL, NULL);
}

/* One transaction: the attachment row and the generation counter. */
static int mg_attach_insert(struct mg_cluster *c, struct mg_attach_rec *a)
{
	struct mg_meta meta = c->meta;
	int ret;

	a->generation = meta.next_attach_gen++;
	ret = mg_store_begin(c->st);
	if (ret) {
		return ret;
	}
	ret = mg_store_put_attach(c->st, a);
	if (!ret) {
		ret = mg_store_put_meta(c->st, &meta);
	}
	if (ret) {
		mg_store_rollback(c->st);
		return ret;
	}
	ret = mg_store_commit(c->st);
	if (!ret) {
		c->meta.next_attach_gen = meta.next_attach_gen;
	}
	return ret;
}

int mg_attach_add(struct mg_cluster *c, const struct mg_volume_rec *v, struct mg_attach_rec *a,
		  char *err, size_t errlen)
{
	struct mg_attach_rec old;
	int ret;

	ret = mg_check_name("host", a->host, err, errlen);
	if (!ret && a->nbd_tcp[0]) {
		ret = mg_check_tcp_addr(a->nbd_tcp, err, errlen);
		a->nbd = true; /* a TCP export is an NBD export */
	}
	if (ret) {
		return ret;
	}
	ret = mg_store_get_attach(c->st, v->id, a->host, &old);
	if (!ret) {
		if (old.read_only == a->read_only && old.nbd == a->nbd &&
		    !strcmp(old.nbd_tcp, a->nbd_tcp) && !strcmp(old.instance, a->instance)) {
			/* The same request again: idempotent. */
			*a = old;
			return 1;
		}
		snprintf(err, errlen,
			 "volume '%s' is already attached to host '%s' (%s%s%s%s%s%s): detach it "
			 "first",
			 v->name, a->host, old.read_only ? "read-only" : "read-write",
			 old.nbd ? ", nbd" : "", old.nbd_tcp[0] ? " on " : "", old.nbd_tcp,
			 old.instance[0] ? ", instance " : "", old.instance);
		return -EEXIST;
	}
	if (ret != -ENOENT) {
		snprintf(err, errlen, "cannot read attachments");
		return ret;
	}
	a->volume_id = v->id;
	snprintf(a->volume, sizeof(a->volume), "%s", v->name);
	snprintf(a->volume_uuid, sizeof(a->volume_uuid), "%s", v->uuid);
	a->size = v->size;
	a->uuid[0] = '\0';
	a->created_at = mg_wall_ms() / 1000;
	a->state = MG_ATTACH_ATTACHING;
	ret = mg_attach_insert(c, a);
	if (ret) {
		snprintf(err, errlen, "attachment not recorded");
		return ret;
	}
	/* The joined columns (effective QoS limits) as a read shows them. */
	if (mg_store_get_attach(c->st, v->id, a->host, &old) == 0) {
		*a = old;
	}
	log_info("volume '%s' attached to host '%s' (%s%s, generation %llu)", v->name, a->host,
		 a->read_only ? "read-only" : "read-write", a->nbd ? ", nbd" : "",
		 (unsigned long long)a->generation);
	if (!a->read_only && mg_afenced(c, v->id)) {
		/* The map must list the new generation as live before its
		 * writes arrive; the caller answers once servers have it. */
		ret = mg_afence_publish(c, v, "attached to", a->host);
		if (ret) {
			snprintf(err, errlen,
				 "attached, but the map naming the new attachment was not "
				 "published (%s); keel-mgmt retries",
				 strerror(-ret));
			return ret;
		}
		return 2;
	}
	return 0;
}

int mg_attach_remove(struct mg_cluster *c, const struct mg_volume_rec *v, const char *host,
		     char *err, size_t errlen)
{
	int64_t now = mg_wall_ms();
	int ret = -ENOENT;

	if (!mg_check_name("host", host, NULL, 0)) {
		ret = mg_store_begin(c->st);
		if (!ret) {
			ret = mg_store_delete_attach(c->st, v->id, host);
			if (!ret) {
				ret = mg_store_put_fence(c->st, v->id, now);
			}
			ret = ret ? (mg_store_rollback(c->st), ret) : mg_store_commit(c->st);
		}
	}
	if (!ret) {
		ret = mg_afence_set(c, v->id, now, v->top);
		if (!ret) {
			ret = mg_afence_publish(c, v, "detached from", host);
		}
		if (ret) {
			snprintf(err, errlen,
				 "detached, but the map fencing host '%.64s' was not published "
				 "(%s); keel-mgmt retries",
				 host, strerror(-ret));
			return ret;
		}
	}
	if (ret) {
		if (ret == -ENOENT) {
			snprintf(err, errlen, "volume '%s' is not attached to host '%.64s'", v->name,
				 host);
		} else {
			snprintf(err, errlen, "attachment not removed");
		}
		return ret;
	}
	log_info("volume '%s' detached from host '%s'", v->name, host);
	return 0;
}

static void mg_attach_create(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"host", "read_only", "nbd", "nbd_tcp", NULL};
	char err[MG_API_ERR_LEN];
	struct mg_attach_rec a;
	struct mg_volume_rec v;
	const char *host = NULL, *tcp = "";
	bool ro = false, nbd = false;
	int ret;

	if (mg_attach_volume(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_str(req->body, "host", true, &host, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_bool(req->body, "read_only", &ro, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_bool(req->body, "nbd", &nbd, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "nbd_tcp", false, &tcp, err, sizeof(err));
	}
	/* Checked before they are copied into the record's buffers. */
	if (!ret) {
		ret = mg_check_name("host", host, err, sizeof(err));
	}
	if (!ret && tcp[0]) {
		ret = mg_check_tcp_addr(tcp, err, sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	memset(&a, 0, sizeof(a));
	snprintf(a.host, sizeof(a.host), "%s", host);
	snprintf(a.nbd_tcp, sizeof(a.nbd_tcp), "%s", tcp);
	a.read_only = ro;
	a.nbd = nbd;
	ret = mg_attach_add(c, &v, &a, err, sizeof(err));
	if (ret < 0) {
		mg_api_error(req, ret, err);
		return;
	}
	if (ret == 2) {
		mg_reply_fenced(c, req, 201, mg_attach_json(&a), "attach");
		return;
	}
	mg_api_reply(req, ret ? 200 : 201, mg_attach_json(&a));
}

static void mg_attach_get(struct mg_cluster *c, struct mg_api_req *req)
{
	char msg[MG_API_ERR_LEN];
	struct mg_attach_rec a;
	struct mg_volume_rec v;
	int ret = -ENOENT;

	if (mg_attach_volume(c, req, req->arg, &v)) {
		return;
	}
	if (!mg_check_name("host", req->arg2, NULL, 0)) {
		ret = mg_store_get_attach(c->st, v.id, req->arg2, &a);
	}
	if (ret) {
		snprintf(msg, sizeof(msg), "volume '%s' is not attached to host '%.64s'", v.name,
			 req->arg2);
		mg_api_error(req, ret, ret == -ENOENT ? msg : "cannot read attachments");
		return;
	}
	mg_api_reply(req, 200, mg_attach_json(&a));
}

static void mg_attach_delete(struct mg_cluster *c, struct mg_api_req *req)
{
	char err[MG_API_ERR_LEN];
	struct mg_volume_rec v;
	int ret;

	if (mg_attach_volume(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_attach_remove(c, &v, req->arg2, err, sizeof(err));
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	mg_reply_fenced(c, req, 204, NULL, "detach");
}

/* keel-client's report: PUT /v1/hosts/{host}/attachments/{volume}. It
 * comes again every stats_ms with the I/O counters ("io", optional: older
 * keel-clients send none); a report that changes nothing but the counters
 * is not written to the store. */
static void mg_attach_report(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {
		"generation", "state", "vhost_socket", "nbd_uri", "error", "io", NULL};
	const char *state = NULL, *sock = "", *uri = "", *error = "";
	char err[MG_API_ERR_LEN];
	struct mg_io_counters io;
	json_t *io_json = json_object_get(req->body, "io");
	struct mg_attach_rec a, was;
	struct mg_volume_rec v;
	uint64_t gen = 0;
	int ret;

	if (mg_attach_volume(c, req, req->arg2, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_u64(req->body, "generation", true, &gen, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "state", true, &state, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "vhost_socket", false, &sock, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "nbd_uri", false, &uri, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "error", false, &error, err, sizeof(err));
	}
	if (!ret && strcmp(state, "attached") && strcmp(state, "error")) {
		snprintf(err, sizeof(err), "state must be 'attached' or 'error'");
		ret = -EINVAL;
	}
	if (!ret && (strlen(sock) >= sizeof(a.vhost_socket) || strlen(uri) >= sizeof(a.nbd_uri))) {
		snprintf(err, sizeof(err), "socket path or URI too long");
		ret = -EINVAL;
	}
	if (!ret && io_json) {
		ret = mg_metrics_io_parse(io_json, &io, err, sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	ret = mg_check_name("host", req->arg, NULL, 0);
	if (!ret) {
		ret = mg_store_get_attach(c->st, v.id, req->arg, &a);
	}
	if (ret || a.generation != gen) {
		/* Detached, or detached and attached again: the host must drop
		 * what it reports on. */
		snprintf(err, sizeof(err),
			 "volume '%s' has no attachment generation %llu on host '%.64s'", v.name,
			 (unsigned long long)gen, req->arg);
		mg_api_error(req, ret == -ENOENT || !ret ? -ESTALE : ret, err);
		return;
	}
	if (io_json && mg_metrics_io_record(c, v.id, a.host, a.generation, &io)) {
		log_debug("I/O counters of volume '%s' on host '%s' not kept", v.name, a.host);
	}
	was = a;
	a.state = strcmp(state, "attached") ? MG_ATTACH_ERROR : MG_ATTACH_ATTACHED;
	snprintf(a.vhost_socket, sizeof(a.vhost_socket), "%s", sock);
	snprintf(a.nbd_uri, sizeof(a.nbd_uri), "%s", uri);
	snprintf(a.error, sizeof(a.error), "%.*s", (int)sizeof(a.error) - 1, error);
	if (was.state == a.state && !strcmp(was.vhost_socket, a.vhost_socket) &&
	    !strcmp(was.nbd_uri, a.nbd_uri) && !strcmp(was.error, a.error)) {
		mg_api_reply(req, 200, mg_attach_json(&a)); /* the periodic report */
		return;
	}
	ret = mg_store_begin(c->st);
	if (!ret) {
		ret = mg_store_put_attach(c->st, &a);
		ret = ret ? (mg_store_rollback(c->st), ret) : mg_store_commit(c->st);
	}
	if (ret) {
		mg_api_error(req, ret, "attachment state not recorded");
		return;
	}
	if (a.state == MG_ATTACH_ERROR) {
		log_warn("host '%s' failed to attach volume '%s': %s", a.host, a.volume, a.error);
	} else {
		log_info("host '%s' serves volume '%s' on %s%s%s", a.host, a.volume, a.vhost_socket,
			 a.nbd_uri[0] ? " and " : "", a.nbd_uri);
	}
	mg_api_reply(req, 200, mg_attach_json(&a));
}

void mg_attach_handle(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_volume_rec v;

	switch (req->route) {
	case MG_R_VOLUME_ATTACHMENTS:
		if (req->method == MG_M_POST) {
			mg_attach_create(c, req);
		} else if (!mg_attach_volume(c, req, req->arg, &v)) {
			mg_attach_list(c, req, v.id, NULL);
		}
		break;
	case MG_R_VOLUME_ATTACHMENT:
		if (req->method == MG_M_DELETE) {
			mg_attach_delete(c, req);
		} else {
			mg_attach_get(c, req);
		}
		break;
	case MG_R_ATTACHMENTS:
		mg_attach_list(c, req, 0, NULL);
		break;
	case MG_R_HOST_ATTACHMENTS:
		if (mg_check_name("host", req->arg, NULL, 0)) {
			mg_api_error(req, -EINVAL, "bad host name");
			return;
		}
		mg_attach_list(c, req, 0, req->arg);
		break;
	case MG_R_HOST_ATTACHMENT:
		mg_attach_report(c, req);
		break;
	default:
		mg_api_error(req, -ENOENT, "no such resource");
		break;
	}
}
