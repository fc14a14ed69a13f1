/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libkeel cluster session: the mgmt connection (map subscription, map
 * pushes, volume lookup), the cluster's timers, volume open/close.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "client/kl_int.h"
#include "common/bufpool.h"
#include "common/crc.h"
#include "common/log.h"
#include "common/xport.h"
#include "proto/keel.pb-c.h"
#include "proto/rest.h"

#define KL_DEFAULT_MGMT_URL "http://127.0.0.1:8776"
#define KL_DEFAULT_KEY_FILE "/etc/keel/keel.key"
#define KL_REST_TIMEOUT_S   5L
#define KL_REST_MAX_BODY    (64 * 1024)

/* One control request or reply on the mgmt connection (control path:
 * malloc'd, freed when sent and, for requests, answered). */
struct kl_ctl {
	struct keel_cluster *c;
	struct kp_msg msg;
	uint8_t *meta;
	bool sent, answered;
	struct keel_volume *v; /* MG_VOLUME_OPEN */
	struct kl_list link;
};

static int mg_connect(struct keel_cluster *c);

/* ---- timers ---- */

static void backoff_fired(struct reactor_timer *t)
{
	struct keel_cluster *c = container_of(t, struct keel_cluster, backoff_timer);

	c->backoff_armed = false;
	if (c->closing) {
		kl_cluster_maybe_free(c);
		return;
	}
	kl_cluster_wake_due(c, reactor_now_ns());
	if (!kl_list_empty(&c->parked)) {
		kl_cluster_arm_backoff(c);
	}
}

void kl_cluster_arm_backoff(struct keel_cluster *c)
{
	if (c->backoff_armed || c->closing) {
		return;
	}
	c->backoff_armed = true;
	reactor_timer_start(c->r, &c->backoff_timer, KL_BACKOFF_MIN_NS, backoff_fired);
}

static uint64_t watch_period(const struct keel_cluster *c)
{
	uint64_t p = c->io_timeout_ns / 4;

	if (p < 10ull * 1000 * 1000) {
		p = 10ull * 1000 * 1000;
	}
	if (p > 250ull * 1000 * 1000) {
		p = 250ull * 1000 * 1000;
	}
	return p;
}

static void watch_fired(struct reactor_timer *t)
{
	struct keel_cluster *c = container_of(t, struct keel_cluster, watch_timer);
	uint64_t now = reactor_now_ns();

	c->watch_armed = false;
	if (c->closing) {
		kl_cluster_maybe_free(c);
		return;
	}
	kl_cluster_check_timeouts(c, now);
	if (c->mg_addr[0] && !c->mg && now >= c->mg_retry_ns) {
		mg_connect(c); /* failure: retried on a later tick */
	}
	if (!kl_list_empty(&c->inflight) || (c->mg_addr[0] && !c->mg)) {
		kl_cluster_arm_watch(c);
	}
}

void kl_cluster_arm_watch(struct keel_cluster *c)
{
	if (c->watch_armed || c->closing) {
		return;
	}
	c->watch_armed = true;
	reactor_timer_start(c->r, &c->watch_timer, watch_period(c), watch_fired);
}

/* ---- map ---- */

/* Open volumes ask mgmt for their top again: with @all every one (after
 * an mgmt reconnect: a layer may have been freed and dropped from the map
 * meanwhile, beyond what the next map can tell), else those whose top the
 * map lists as read-only or deleting (a snapshot, a revert, a delete).
 * Servers refuse writes there anyway (EROFS), but a layer mgmt has freed
 * and dropped from the map is no longer listed at all. */
static void kl_cluster_refresh_volumes(struct keel_cluster *c, bool all)
{
	struct kl_list *n;

	for (n = c->volumes.next; n != &c->volumes; n = n->next) {
		struct keel_volume *v = container_of(n, struct keel_volume, link);

		if (v->opened &&
		    (all || (!v->info.read_only &&
			     cmap_layer_state(c->map, v->info.inode) != CMAP_LAYER_WRITABLE))) {
			kl_volume_refresh(v); /* no-op while closing or already asking */
		}
	}
}

bool kl_cluster_set_map(struct keel_cluster *c, struct cmap *m)
{
	if (c->map && m->epoch <= c->map->epoch) {
		cmap_free(m);
		return false;
	}
	log_info("cluster map epoch %llu -> %llu",
		 (unsigned long long)(c->map ? c->map->epoch : 0), (unsigned long long)m->epoch);
	cmap_free(c->map);
	c->map = m;
	kl_cluster_refresh_volumes(c, false);
	kl_cluster_wake_parked(c);
	return true;
}

/* ---- mgmt control messages ---- */

static void ctl_free(struct kl_ctl *x)
{
	kl_list_del(&x->link);
	free(x->meta);
	free(x);
}

/* Freed once sent (or failed) and answered (replies count as answered). */
static void ctl_sent(struct kp_msg *m, int res)
{
	struct kl_ctl *x = m->arg;

	x->sent = true;
	if (x->answered) {
		ctl_free(x);
	}
}

/* Send @opcode with @msg packed as meta; @reply_to: a reply (req_id and
 * status), else a request expecting an answer (listed in mg_ctls). */
static int ctl_send(struct keel_cluster *c, uint16_t opcode, const ProtobufCMessage *msg,
		    const struct kp_hdr *reply_to, int status, struct keel_volume *v)
{
	struct kl_ctl *x = calloc(1, sizeof(*x));
	size_t len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	int ret;

	if (!x || len > KP_MAX_META) {
		free(x);
		return -ENOMEM;
	}
	kl_list_init(&x->link);
	x->c = c;
	x->v = v;
	if (len) {
		x->meta = malloc(len);
		if (!x->meta) {
			free(x);
			return -ENOMEM;
		}
		protobuf_c_message_pack(msg, x->meta);
	}
	x->msg.hdr.opcode = opcode;
	x->msg.hdr.meta_len = (uint32_t)len;
	x->msg.hdr.epoch = c->map ? c->map->epoch : 0;
	x->msg.meta = x->meta;
	x->msg.done = ctl_sent;
	x->msg.arg = x;
	if (reply_to) {
		x->msg.hdr.flags = KP_F_REPLY;
		x->msg.hdr.req_id = reply_to->req_id;
		x->msg.hdr.status = status;
		x->answered = true;
	} else {
		x->msg.hdr.req_id = ++c->mg_seq;
		kl_list_add_tail(&c->mg_ctls, &x->link);
	}
	ret = kp_conn_send(c->mg, &x->msg);
	if (ret) {
		ctl_free(x);
	}
	return ret;
}

static struct kl_ctl *ctl_find(struct keel_cluster *c, uint64_t req_id)
{
	struct kl_list *n;

	for (n = c->mg_ctls.next; n != &c->mg_ctls; n = n->next) {
		struct kl_ctl *x = container_of(n, struct kl_ctl, link);

		if (x->msg.hdr.req_id == req_id) {
			return x;
		}
	}
	return NULL;
}

static void ctl_answered(struct kl_ctl *x)
{
	kl_list_del(&x->link);
	x->answered = true;
	if (x->sent) {
		ctl_free(x);
	}
}

static void cluster_open_done(struct keel_cluster *c, int res)
{
	void (*cb)(struct keel_cluster *, int, void *) = c->open_cb;

	if (!cb) {
		return;
	}
	c->open_cb = NULL;
	cb(c, res, c->open_arg);
	if (res) {
		/* A failed open is closed here; the caller never closes it. */
		keel_cluster_close(c);
	}
}

/* A ClusterMap in @meta (SUBSCRIBE reply or MG_MAP push). 0 or -EINVAL. */
static int mg_apply_map(struct keel_cluster *c, const uint8_t *meta, uint32_t len)
{
	struct cmap *m;
	char err[128] = "";
	int ret;

	ret = cmap_unpack(meta, len, &m, err, sizeof(err));
	if (ret) {
		log_warn("bad cluster map from mgmt: %s", err[0] ? err : strerror(-ret));
		return ret;
	}
	kl_cluster_set_map(c, m);
	return 0;
}

static void volume_open_done(struct keel_volume *v, int res)
{
	void (*cb)(struct keel_volume *, int, void *) = v->open_cb;

	v->open_cb = NULL;
	if (!res) {
		v->opened = true;
	}
	cb(v, res, v->open_arg);
	if (res) {
		v->closing = true;
		kl_volume_maybe_free(v);
	}
}

static void mg_volume_reply(struct keel_cluster *c, struct kl_ctl *x, const struct kp_hdr *h,
			    const uint8_t *meta)
{
	struct keel_volume *v = x->v;
	Keel__VolumeInfo *vi;
	int res = kp_status_to_errno(h->status);

	struct keel_volume_info info;

	ctl_answered(x);
	if (!v) {
		return; /* closed before the answer */
	}
	if (!res) {
		vi = keel__volume_info__unpack(NULL, h->meta_len, meta);
		if (!vi) {
			res = -EPROTO;
		} else {
			memset(&info, 0, sizeof(info));
			info.id = vi->id;
			info.inode = vi->inode;
			info.size = vi->size;
			info.object_size = vi->object_size;
			info.pool = vi->pool;
			info.read_only = vi->read_only;
			snprintf(info.name, sizeof(info.name), "%s", vi->name ? vi->name : "");
			snprintf(info.uuid, sizeof(info.uuid), "%s", vi->uuid ? vi->uuid : "");
			if (vi->n_parents > KEEL_MAX_PARENTS) {
				res = -EPROTO;
			} else {
				info.nparents = (uint32_t)vi->n_parents;
				if (info.nparents) { /* parents is NULL without any */
					memcpy(info.parents, vi->parents,
					       vi->n_parents * sizeof(uint64_t));
				}
			}
			keel__volume_info__free_unpacked(vi, NULL);
			if (!res) {
				res = kl_volume_info_check(&info);
			}
			if (res) {
				log_warn("mgmt sent unusable info for volume %s", info.name);
				res = -EPROTO;
			}
		}
	}
	if (v->opened) {
		/* A refresh after EROFS: a new top layer (and chain). The
		 * size and shape are the ones the volume was opened with. */
		v->refreshing = false;
		if (!res && (info.object_size != v->info.object_size || info.pool != v->info.pool)) {
			res = -EPROTO;
		}
		if (!res) {
			if (info.inode != v->info.inode) {
				log_info("volume %s: top layer %#llx -> %#llx (%u parents)",
					 v->info.name, (unsigned long long)v->info.inode,
					 (unsigned long long)info.inode, info.nparents);
			}
			v->info.inode = info.inode;
			v->info.nparents = info.nparents;
			memcpy(v->info.parents, info.parents, sizeof(info.parents));
			v->info.read_only = info.read_only;
		} else if (res == -ENOENT) {
			log_warn("volume %s no longer exists", v->info.name);
			v->gone = -ENOENT;
		} else {
			log_warn("volume %s: cannot refresh its layers: %s", v->info.name,
				 strerror(-res));
		}
		kl_cluster_wake_parked(c);
		return;
	}
	if (!res) {
		v->info = info;
	}
	volume_open_done(v, res);
}

void kl_volume_refresh(struct keel_volume *v)
{
	Keel__VolumeOpenRequest rq = KEEL__VOLUME_OPEN_REQUEST__INIT;
	struct keel_cluster *c = v->c;

	if (v->refreshing || v->closing || !c->mg || !c->mg_ready) {
		return; /* parked parts retry on their backoff and ask again */
	}
	/* By uuid: a rename must not lose the volume. Snapshot views keep
	 * their name (they have no uuid of their own). */
	rq.name = v->info.uuid[0] && !v->info.read_only ? v->info.uuid : v->info.name;
	v->stats.reopens++;
	if (!ctl_send(c, KP_OP_MG_VOLUME_OPEN, &rq.base, NULL, 0, v)) {
		v->refreshing = true;
	}
}

static void mg_on_ready(struct kp_conn *kc)
{
	struct keel_cluster *c = kp_conn_arg(kc);
	Keel__Subscribe sub = KEEL__SUBSCRIBE__INIT;
	int ret;

	log_info("mgmt session to %s ready", c->mg_addr);
	c->mg_ready = true;
	sub.name = c->name;
	sub.have_epoch = c->map ? c->map->epoch : 0;
	ret = ctl_send(c, KP_OP_MG_SUBSCRIBE, &sub.base, NULL, 0, NULL);
	if (ret) {
		kp_conn_close(kc, ret, "cannot subscribe");
		return;
	}
	kl_cluster_refresh_volumes(c, true);
}

static void mg_on_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
		      const uint8_t *data, const uint32_t *crcs)
{
	struct keel_cluster *c = kp_conn_arg(kc);
	struct kl_ctl *x;
	int ret;

	if (!(h->flags & KP_F_REPLY)) {
		if (h->opcode != KP_OP_MG_MAP) {
			ctl_send(c, h->opcode, NULL, h, KP_S_ENOTSUP, NULL);
			return;
		}
		ret = mg_apply_map(c, meta, h->meta_len);
		ctl_send(c, KP_OP_MG_MAP, NULL, h, kp_status_from_errno(ret), NULL);
		return;
	}
	x = ctl_find(c, h->req_id);
	if (!x || x->msg.hdr.opcode != h->opcode) {
		kp_conn_close(kc, -EPROTO, "mgmt reply to no request");
		return;
	}
	switch (h->opcode) {
	case KP_OP_MG_SUBSCRIBE:
		ctl_answered(x);
		ret = kp_status_to_errno(h->status);
		if (!ret) {
			ret = mg_apply_map(c, meta, h->meta_len);
		}
		if (ret) {
			log_warn("map subscription refused: %s", strerror(-ret));
			kp_conn_close(kc, ret, "subscription failed");
			return;
		}
		cluster_open_done(c, 0);
		break;
	case KP_OP_MG_VOLUME_OPEN:
		mg_volume_reply(c, x, h, meta);
		break;
	default:
		ctl_answered(x);
		break;
	}
}

static void mg_on_close(struct kp_conn *kc, int err, const char *why)
{
	struct keel_cluster *c = kp_conn_arg(kc);

	c->mg = NULL;
	c->mg_ready = false;
	if (!c->closing) {
		log_warn("mgmt session to %s closed: %s", c->mg_addr,
			 why ? why : (err ? strerror(-err) : "by mgmt"));
	}
	/* Pending control requests die with the session. */
	while (!kl_list_empty(&c->mg_ctls)) {
		struct kl_ctl *x = kl_list_first(&c->mg_ctls, struct kl_ctl, link);
		struct keel_volume *v = x->v;

		x->v = NULL;
		ctl_answered(x);
		if (v && v->opened) {
			v->refreshing = false; /* asked again once the session is back */
		} else if (v) {
			volume_open_done(v, -ENOTCONN);
		}
	}
	if (c->open_cb) {
		cluster_open_done(c, err == -EPERM ? -EPERM : -ECONNREFUSED);
	}
	c->mg_retry_ns = reactor_now_ns() + KL_MG_RETRY_NS;
	kl_cluster_arm_watch(c);
	kl_cluster_maybe_free(c);
}

static const struct kp_conn_cbs kl_mg_cbs = {
	.on_ready = mg_on_ready,
	.on_msg = mg_on_msg,
	.on_close = mg_on_close,
};

/* Connect (blocking TCP connect) and start the handshake. 0 or -errno;
 * after open, the watch timer retries. */
static int mg_connect(struct keel_cluster *c)
{
	struct xport_conn *xc;
	int ret;

	c->mg_retry_ns = reactor_now_ns() + KL_MG_RETRY_NS;
	ret = xport_tcp_ops.connect(c->r, c->mg_addr, &xc);
	if (ret) {
		log_warn("cannot connect to mgmt at %s: %s", c->mg_addr, strerror(-ret));
		return ret;
	}
	ret = kp_conn_client(xc, &c->key, c->name, &kl_mg_cbs, c, &c->mg);
	if (ret) {
		c->mg = NULL;
		xc->ops->close(xc, ret);
		return ret;
	}
	return 0;
}

/* ---- REST lookup of the cluster port ---- */

struct kl_body {
	char *buf;
	size_t len;
};

static size_t rest_write(char *p, size_t size, size_t n, void *arg)
{
	struct kl_body *b = arg;
	size_t len = size * n;
	char *nb;

	if (b->len + len > KL_REST_MAX_BODY) {
		return 0;
	}
	nb = realloc(b->buf, b->len + len + 1);
	if (!nb) {
		return 0;
	}
	memcpy(nb + b->len, p, len);
	b->buf = nb;
	b->len += len;
	b->buf[b->len] = 0;
	return len;
}

/* Host part of an http URL ("http://host:port/..." -> "host"). */
static void url_host(const char *url, char *host, size_t len)
{
	const char *p = strstr(url, "://");
	size_t n;

	p = p ? p + 3 : url;
	if (*p == '[') {
		n = strcspn(p, "]");
		n = p[n] ? n + 1 : n;
	} else {
		n = strcspn(p, ":/");
	}
	if (n >= len) {
		n = len - 1;
	}
	memcpy(host, p, n);
	host[n] = 0;
}

static int rest_cluster_addr(const char *base, const char *token, char *out, size_t outlen)
{
	struct kl_body body = {NULL, 0};
	char url[512], host[128], h2[128], port[32], auth[KP_TOKEN_MAX + 32];
	struct curl_slist *hdrs = NULL;
	json_error_t jerr;
	json_t *root = NULL, *addr;
	long code = 0;
	CURLcode cc;
	CURL *cu;
	int ret = -EIO;

	snprintf(url, sizeof(url), "%s/v1/cluster/info", base);
	cu = curl_easy_init();
	if (!cu) {
		return -ENOMEM;
	}
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, KL_REST_TIMEOUT_S);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, rest_write);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &body);
	if (token[0]) {
		snprintf(auth, sizeof(auth), "X-Auth-Token: %s", token);
		hdrs = curl_slist_append(NULL, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
		curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);
	}
	cc = curl_easy_perform(cu);
	if (cc != CURLE_OK) {
		log_error("GET %s: %s", url, curl_easy_strerror(cc));
		ret = cc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
		goto out_cleanup;
	}
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &code);
	if (code == 401) {
		log_error("GET %s: HTTP 401: keel-mgmt refused the API token (%s)", url,
			  token[0] ? "wrong token" : "none given: set $KEEL_TOKEN_FILE");
		ret = -EACCES;
		goto out_cleanup;
	}
	if (code != 200 || !body.buf) {
		log_error("GET %s: HTTP %ld", url, code);
		goto out_cleanup;
	}
	root = json_loads(body.buf, 0, &jerr);
	addr = root ? json_object_get(root, "cluster_addr") : NULL;
	if (!json_is_string(addr) ||
	    xport_parse_addr(json_string_value(addr), h2, sizeof(h2), port, sizeof(port))) {
		log_error("GET %s: no usable cluster_addr in the reply", url);
		goto out_cleanup;
	}
	/* mgmt bound to a wildcard: reach it at the host of the REST URL. */
	if (!h2[0] || !strcmp(h2, "0.0.0.0") || !strcmp(h2, "::")) {
		url_host(base, host, sizeof(host));
		snprintf(out, outlen, "%s:%s", host, port);
	} else {
		snprintf(out, outlen, "%s", json_string_value(addr));
	}
	ret = 0;
out_cleanup:
	json_decref(root);
	free(body.buf);
	curl_easy_cleanup(cu);
	curl_slist_free_all(hdrs);
	return ret;
}

/* ---- cluster ---- */

int kl_cluster_create(struct reactor *r, const struct keel_cluster_opts *opts,
		      const struct kl_net_ops *net, struct keel_cluster **out)
{
	struct keel_cluster *c;
	int ret = -ENOMEM;

	c = calloc(1, sizeof(*c));
	if (!c) {
		return -ENOMEM;
	}
	c->r = r;
	c->net = net;
	snprintf(c->name, sizeof(c->name), "%s", opts && opts->name ? opts->name : "libkeel");
	c->io_timeout_ns = (uint64_t)(opts && opts->io_timeout_ms ? opts->io_timeout_ms :
								   KL_DEFAULT_TIMEOUT_MS) *
			   1000000ull;
	kl_list_init(&c->mg_ctls);
	kl_list_init(&c->free_subs);
	kl_list_init(&c->parked);
	kl_list_init(&c->inflight);
	kl_list_init(&c->res_waitq);
	kl_list_init(&c->volumes);
	c->srv_by_id = calloc(KL_MAX_SERVER_ID + 1, sizeof(*c->srv_by_id));
	c->subs = calloc(KL_MAX_SUBS, sizeof(*c->subs));
	if (!c->srv_by_id || !c->subs) {
		goto out_free;
	}
	ret = bufpool_create(KP_MAX_DATA, KL_BOUNCE_COUNT, &c->bounce);
	if (ret) {
		goto out_free;
	}
	c->zeroes = aligned_alloc(KP_BLOCK, KP_MAX_DATA);
	if (!c->zeroes) {
		bufpool_destroy(c->bounce);
		ret = -ENOMEM;
		goto out_free;
	}
	memset(c->zeroes, 0, KP_MAX_DATA);
	c->zero_crc = crc32c(0, c->zeroes, KP_BLOCK);
	/* Bounce buffers and the zero block are sent from: zero copy on RDMA. */
	bufpool_zero_copy(c->bounce);
	xport_mem_register(c->zeroes, KP_MAX_DATA);
	for (uint32_t i = 0; i < KL_MAX_SUBS; i++) {
		struct kl_sub *s = &c->subs[i];

		s->c = c;
		s->idx = i;
		kl_list_init(&s->srv_link);
		kl_list_init(&s->req_link);
		kl_list_add_tail(&c->free_subs, &s->link);
	}
	*out = c;
	return 0;
out_free:
	free(c->subs);
	free(c->srv_by_id);
	free(c);
	return ret;
}

static void cluster_free(struct keel_cluster *c)
{
	for (uint32_t i = 0; i < c->nsrv; i++) {
		free(c->srv_by_id[c->srv_ids[i]]);
	}
	if (c->freed_flag) {
		*c->freed_flag = true;
	}
	free(c->srv_ids);
	free(c->srv_by_id);
	free(c->subs);
	bufpool_destroy(c->bounce);
	xport_mem_unregister(c->zeroes);
	free(c->zeroes);
	cmap_free(c->map);
	free(c);
}

static bool cluster_idle(const struct keel_cluster *c)
{
	return c->closing && !c->nconns && !c->mg && !c->backoff_armed && !c->watch_armed &&
	       kl_list_empty(&c->volumes);
}

static void cluster_free_deferred(struct reactor_defer *d)
{
	struct keel_cluster *c = container_of(d, struct keel_cluster, free_defer);

	c->free_pending = false;
	if (cluster_idle(c)) {
		cluster_free(c);
	}
}

/* Callers may be deep in a walk over the cluster's lists: free on the next
 * loop turn, never from here. */
void kl_cluster_maybe_free(struct keel_cluster *c)
{
	if (!cluster_idle(c) || c->free_pending) {
		return;
	}
	c->free_pending = true;
	c->free_defer.fn = cluster_free_deferred;
	reactor_defer(c->r, &c->free_defer);
}

int keel_cluster_open(struct reactor *r, const struct keel_cluster_opts *opts,
		      void (*cb)(struct keel_cluster *c, int res, void *arg), void *arg,
		      struct keel_cluster **out)
{
	const char *url, *key_file, *transport;
	struct keel_cluster *c;
	char err[256];
	int ret;

	if (!r || !cb || !out) {
		return -EINVAL;
	}
	ret = kl_cluster_create(r, opts, &kl_net_kp, &c);
	if (ret) {
		return ret;
	}
	transport = opts && opts->transport ? opts->transport : getenv("KEEL_TRANSPORT");
	ret = xport_select(transport && transport[0] ? transport : "tcp", &c->xops, err,
			   sizeof(err));
	if (ret) {
		log_error("%s", err);
		goto out_free;
	}
	key_file = opts && opts->key_file ? opts->key_file : getenv("KEEL_KEY_FILE");
	if (!key_file || !key_file[0]) {
		key_file = KL_DEFAULT_KEY_FILE;
	}
	ret = kp_key_load(key_file, &c->key, err, sizeof(err));
	if (ret) {
		log_error("key %s: %s", key_file, err);
		goto out_free;
	}
	if (opts && opts->mgmt_addr && opts->mgmt_addr[0]) {
		snprintf(c->mg_addr, sizeof(c->mg_addr), "%s", opts->mgmt_addr);
	} else {
		url = opts && opts->mgmt_url ? opts->mgmt_url : getenv("KEEL_MGMT_URL");
		if (!url || !url[0]) {
			url = KL_DEFAULT_MGMT_URL;
		}
		char token[KP_TOKEN_MAX + 1];

		ret = rest_token_resolve(opts ? opts->api_token : NULL, NULL, token, sizeof(token),
					 err, sizeof(err));
		if (ret) {
			log_error("%s", err);
			goto out_free;
		}
		ret = rest_cluster_addr(url, token, c->mg_addr, sizeof(c->mg_addr));
		OPENSSL_cleanse(token, sizeof(token));
		if (ret) {
			goto out_free;
		}
	}
	ret = mg_connect(c);
	if (ret) {
		goto out_free;
	}
	c->open_cb = cb;
	c->open_arg = arg;
	*out = c;
	return 0;
out_free:
	cluster_free(c); /* nothing armed, nothing connected */
	return ret;
}

void keel_cluster_close(struct keel_cluster *c)
{
	struct kl_list *n, *next;

	if (!c || c->closing) {
		return;
	}
	for (n = c->volumes.next; n != &c->volumes; n = next) {
		next = n->next;
		keel_volume_close(container_of(n, struct keel_volume, link));
	}
	c->closing = true;
	c->open_cb = NULL;
	for (uint32_t i = 0; i < c->nsrv; i++) {
		kl_srv_close(c->srv_by_id[c->srv_ids[i]], 0, "client closing");
	}
	if (c->mg) {
		kp_conn_close(c->mg, 0, "client closing");
	}
	kl_cluster_maybe_free(c);
}

uint64_t keel_cluster_epoch(const struct keel_cluster *c)
{
	return c->map ? c->map->epoch : 0;
}

/* ---- volumes ---- */

int kl_volume_info_check(const struct keel_volume_info *vi)
{
	if (!vi->inode || !vi->pool || !vi->size || vi->size % KP_BLOCK) {
		return -EINVAL;
	}
	if (vi->object_size < KP_BLOCK || vi->object_size % KP_BLOCK) {
		return -EINVAL;
	}
	return 0;
}

static struct keel_volume *volume_alloc(struct keel_cluster *c)
{
	struct keel_volume *v = calloc(1, sizeof(*v));

	if (!v) {
		return NULL;
	}
	v->reqs = calloc(KL_MAX_REQS, sizeof(*v->reqs));
	if (!v->reqs) {
		free(v);
		return NULL;
	}
	v->c = c;
	kl_volume_init_reqs(v);
	kl_list_add_tail(&c->volumes, &v->link);
	return v;
}

int kl_volume_create(struct keel_cluster *c, const struct keel_volume_info *info,
		     struct keel_volume **out)
{
	struct keel_volume *v;

	if (kl_volume_info_check(info)) {
		return -EINVAL;
	}
	v = volume_alloc(c);
	if (!v) {
		return -ENOMEM;
	}
	v->info = *info;
	v->opened = true;
	*out = v;
	return 0;
}

int keel_volume_open(struct keel_cluster *c, const char *name,
		     void (*cb)(struct keel_volume *v, int res, void *arg), void *arg,
		     struct keel_volume **out)
{
	Keel__VolumeOpenRequest rq = KEEL__VOLUME_OPEN_REQUEST__INIT;
	struct keel_volume *v;
	int ret;

	if (!c || !name || !name[0] || strlen(name) >= sizeof(v->info.name) || !cb || !out ||
	    c->closing) {
		return -EINVAL;
	}
	if (!c->mg || !c->mg_ready) {
		return -ENOTCONN;
	}
	v = volume_alloc(c);
	if (!v) {
		return -ENOMEM;
	}
	snprintf(v->info.name, sizeof(v->info.name), "%s", name);
	v->open_cb = cb;
	v->open_arg = arg;
	rq.name = v->info.name;
	ret = ctl_send(c, KP_OP_MG_VOLUME_OPEN, &rq.base, NULL, 0, v);
	if (ret) {
		kl_list_del(&v->link);
		free(v->reqs);
		free(v);
		return ret;
	}
	*out = v;
	return 0;
}

void keel_volume_close(struct keel_volume *v)
{
	struct keel_cluster *c;
	struct kl_list *n;

	if (!v || v->closing) {
		return;
	}
	c = v->c;
	v->closing = true;
	/* An open still waiting for mgmt: forget the volume there. */
	for (n = c->mg_ctls.next; n != &c->mg_ctls; n = n->next) {
		struct kl_ctl *x = container_of(n, struct kl_ctl, link);

		if (x->v == v) {
			x->v = NULL;
		}
	}
	if (v->open_cb) {
		volume_open_done(v, -ECANCELED); /* frees @v */
		return;
	}
	kl_volume_cancel_all(v);
	kl_volume_maybe_free(v);
}

int keel_volume_set_size(struct keel_volume *v, uint64_t size)
{
	if (!size || size % KP_BLOCK) {
		return -EINVAL;
	}
	v->info.size = size;
	return 0;
}

void keel_volume_set_generation(struct keel_volume *v, uint64_t gen)
{
	v->gen = gen;
}

int keel_mem_register(void *addr, size_t len)
{
	return xport_mem_register(addr, len);
}

void keel_mem_unregister(void *addr)
{
	xport_mem_unregister(addr);
}

const struct keel_volume_info *keel_volume_info(const struct keel_volume *v)
{
	return &v->info;
}
