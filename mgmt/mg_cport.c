/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cluster port: authenticated kp_conn connections from servers and
 * clients, one opcode table for MG_* requests, and map pushes.
 */
#include "mgmt/mg_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

#define MG_ERR_LEN 160

/* A reply in flight; owns its packed meta. */
struct mg_reply {
	struct kp_msg m;
	struct mg_peer *p;
	uint8_t *buf;
};

/* ---- blobs ---- */

struct mg_blob *mg_blob_pack(const struct cmap *m)
{
	struct mg_blob *b = calloc(1, sizeof(*b));

	if (!b) {
		return NULL;
	}
	if (cmap_pack(m, &b->data, &b->len)) {
		free(b);
		return NULL;
	}
	if (b->len > KP_MAX_META) {
		log_error("map of epoch %llu packs to %zu bytes, over the %u-byte frame limit",
			  (unsigned long long)m->epoch, b->len, KP_MAX_META);
		free(b->data);
		free(b);
		return NULL;
	}
	b->refs = 1;
	b->epoch = m->epoch;
	return b;
}

void mg_blob_put(struct mg_blob *b)
{
	if (b && !--b->refs) {
		free(b->data);
		free(b);
	}
}

/* ---- peers ---- */

static void mg_peer_put(struct mg_peer *p)
{
	struct mg_cluster *c = p->c;

	kassert(p->refs > 0);
	if (--p->refs) {
		return;
	}
	kassert(!p->kc);
	if (p->prev) {
		p->prev->next = p->next;
	} else {
		c->peers = p->next;
	}
	if (p->next) {
		p->next->prev = p->prev;
	}
	c->npeers--;
	mg_blob_put(p->push_blob);
	free(p);
	if (c->stopping && !c->peers) {
		log_info("cluster port: all connections closed");
	}
}

void mg_cport_close_peer(struct mg_peer *p, const char *reason)
{
	if (p->kc) {
		kp_conn_close(p->kc, 0, reason);
	}
}

/* ---- replies ---- */

static void mg_reply_done(struct kp_msg *m, int res)
{
	struct mg_reply *r = container_of(m, struct mg_reply, m);

	free(r->buf);
	mg_peer_put(r->p);
	free(r);
}

/*
 * Answer @h with @res (0 or -errno). On success the reply carries @buf
 * (@len bytes, ownership taken) as meta; on error an ErrorInfo with @msg.
 * The header echoes the request and carries the current epoch.
 */
static void mg_reply(struct mg_peer *p, const struct kp_hdr *h, int res, uint8_t *buf, size_t len,
		     const char *msg)
{
	struct mg_reply *r;
	int ret;

	if (!p->kc) {
		free(buf);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		free(buf);
		kp_conn_close(p->kc, -ENOMEM, "out of memory for a reply");
		return;
	}
	if (res) {
		free(buf);
		buf = NULL;
		len = 0;
		if (msg && msg[0]) {
			Keel__ErrorInfo ei = KEEL__ERROR_INFO__INIT;

			ei.message = (char *)msg;
			len = keel__error_info__get_packed_size(&ei);
			buf = malloc(len);
			if (buf) {
				keel__error_info__pack(&ei, buf);
			} else {
				len = 0;
			}
		}
	}
	r->p = p;
	r->buf = buf;
	r->m.hdr.opcode = h->opcode;
	r->m.hdr.flags = KP_F_REPLY;
	r->m.hdr.status = kp_status_from_errno(res);
	r->m.hdr.req_id = h->req_id;
	r->m.hdr.epoch = p->c->meta.epoch;
	r->m.hdr.meta_len = (uint32_t)len;
	r->m.meta = buf;
	r->m.done = mg_reply_done;
	p->refs++;
	ret = kp_conn_send(p->kc, &r->m);
	if (ret) {
		log_error("%s: cannot send %s reply: %s", p->name, kp_opcode_name(h->opcode),
			  strerror(-ret));
		p->refs--;
		free(buf);
		free(r);
	}
}

/* Reply with a copy of the current packed map. */
static void mg_reply_map(struct mg_peer *p, const struct kp_hdr *h)
{
	struct mg_blob *b = p->c->map_blob;
	uint8_t *buf;

	if (!b) {
		mg_reply(p, h, -EAGAIN, NULL, 0, "map not available, retry");
		return;
	}
	buf = malloc(b->len);
	if (!buf) {
		mg_reply(p, h, -ENOMEM, NULL, 0, "out of memory");
		return;
	}
	memcpy(buf, b->data, b->len);
	if (b->epoch > p->sent_epoch) {
		p->sent_epoch = b->epoch;
	}
	mg_reply(p, h, 0, buf, b->len, NULL);
}

/* ---- pushes: one sending and a few awaiting replies per peer, newest map
 * wins ---- */

static void mg_push(struct mg_peer *p);

static void mg_push_sent(struct kp_msg *m, int res)
{
	struct mg_peer *p = container_of(m, struct mg_peer, push);

	p->push_sending = false;
	mg_blob_put(p->push_blob);
	p->push_blob = NULL;
	if (res && p->push_nawait) {
		p->push_nawait--; /* never went out: no reply will come */
	}
	mg_push(p);
	mg_peer_put(p);
}

static void mg_push(struct mg_peer *p)
{
	struct mg_blob *b = p->c->map_blob;
	int ret;

	if (!p->kc || (!p->server_id && !p->subscribed) || !b || b->epoch <= p->sent_epoch) {
		return;
	}
	if (p->push_sending || p->push_nawait == MG_PUSH_AWAIT) {
		p->pushes_coalesced++;
		return; /* mg_push() runs again when a slot frees */
	}
	memset(&p->push, 0, sizeof(p->push));
	p->push.hdr.opcode = KP_OP_MG_MAP;
	p->push.hdr.req_id = p->c->next_req_id++;
	p->push_await[p->push_nawait++] =
		(struct mg_push_await){.req_id = p->push.hdr.req_id, .epoch = b->epoch};
	p->push.hdr.epoch = b->epoch;
	p->push.hdr.meta_len = (uint32_t)b->len;
	p->push.meta = b->data;
	p->push.done = mg_push_sent;
	b->refs++;
	p->push_blob = b;
	p->push_sending = true;
	p->refs++;
	ret = kp_conn_send(p->kc, &p->push);
	if (ret) {
		/* A dead peer fails here first; its close follows. */
		if (ret == -EPIPE || ret == -ECONNRESET || ret == -ENOTCONN) {
			log_debug("%s: cannot push epoch %llu: %s", p->name,
				  (unsigned long long)b->epoch, strerror(-ret));
		} else {
			log_warn("%s: cannot push epoch %llu: %s", p->name,
				 (unsigned long long)b->epoch, strerror(-ret));
		}
		p->push_sending = false;
		p->push_nawait--;
		p->push_blob = NULL;
		mg_blob_put(b);
		p->refs--;
		return;
	}
	p->sent_epoch = b->epoch;
	p->pushes_sent++;
}

void mg_cport_push_all(struct mg_cluster *c)
{
	for (struct mg_peer *p = c->peers; p; p = p->next) {
		mg_push(p);
	}
}

static void mg_on_push_reply(struct mg_peer *p, const struct kp_hdr *h)
{
	uint64_t epoch;

	/* Replies come in push order: this one is for the oldest push. */
	if (!p->push_nawait || h->req_id != p->push_await[0].req_id) {
		kp_conn_close(p->kc, -EPROTO, "unexpected MG_MAP reply");
		return;
	}
	epoch = p->push_await[0].epoch;
	memmove(&p->push_await[0], &p->push_await[1],
		(--p->push_nawait) * sizeof(p->push_await[0]));
	if (h->status) {
		log_warn("%s: map push of epoch %llu refused: status %d", p->name,
			 (unsigned long long)epoch, h->status);
	} else if (epoch > p->acked_epoch) {
		p->acked_epoch = epoch;
		mg_fence_check(p->c);
	}
	mg_push(p);
}

/* ---- the opcode table ---- */

typedef void (*mg_op_fn)(struct mg_peer *p, const struct kp_hdr *h, const uint8_t *meta);

static void mg_op_register(struct mg_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__RegisterRequest *req;
	Keel__RegisterReply rep = KEEL__REGISTER_REPLY__INIT;
	Keel__ClusterMap *map;
	char err[MG_ERR_LEN] = "";
	uint32_t id = 0;
	uint8_t *buf;
	size_t len;
	int ret;

	req = keel__register_request__unpack(NULL, h->meta_len, meta);
	if (!req) {
		mg_reply(p, h, -EINVAL, NULL, 0, "malformed RegisterRequest");
		return;
	}
	ret = mg_member_register(p->c, p, req->info, &id, err, sizeof(err));
	if (!ret && mg_cluster_server(p->c, id)) {
		mg_cluster_server(p->c, id)->object_size = req->info->object_size;
	}
	keel__register_request__free_unpacked(req, NULL);
	if (ret) {
		log_warn("%s: registration refused: %s", p->name, err[0] ? err : strerror(-ret));
		mg_reply(p, h, ret, NULL, 0, err[0] ? err : strerror(-ret));
		return;
	}
	/* RegisterReply embeds the map: unpack the packed one (validated by
	 * construction) rather than rebuilding the message by hand. */
	map = keel__cluster_map__unpack(NULL, p->c->map_blob->len, p->c->map_blob->data);
	if (!map) {
		mg_reply(p, h, -ENOMEM, NULL, 0, "out of memory");
		return;
	}
	rep.server_id = id;
	rep.map = map;
	/* mgmt declares a server down no sooner than heartbeat_timeout_ms
	 * after receiving its last heartbeat, i.e. after the server sent it:
	 * a lease shorter by a third leaves room for clock-rate differences
	 * and for the new map to travel */
	rep.lease_ms = p->c->cfg->heartbeat_timeout_ms * 2 / 3;
	len = keel__register_reply__get_packed_size(&rep);
	buf = malloc(len);
	if (!buf || len > KP_MAX_META) {
		free(buf);
		keel__cluster_map__free_unpacked(map, NULL);
		mg_reply(p, h, -ENOMEM, NULL, 0, "map too large");
		return;
	}
	keel__register_reply__pack(&rep, buf);
	keel__cluster_map__free_unpacked(map, NULL);
	p->sent_epoch = p->c->map_blob->epoch;
	/* A server that just registered has no mutation of an older map in
	 * flight that mgmt would not have fenced by marking it down. */
	p->acked_epoch = p->sent_epoch;
	mg_reply(p, h, 0, buf, len, NULL);
	mg_fence_check(p->c);
}

static void mg_op_heartbeat(struct mg_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__Heartbeat *hb;
	int ret;

	hb = keel__heartbeat__unpack(NULL, h->meta_len, meta);
	if (!hb) {
		mg_reply(p, h, -EINVAL, NULL, 0, "malformed Heartbeat");
		return;
	}
	ret = mg_member_heartbeat(p->c, p, hb);
	keel__heartbeat__free_unpacked(hb, NULL);
	mg_reply(p, h, ret, NULL, 0, ret ? "not registered on this connection: register" : NULL);
	/* A server behind the published epoch (a push was lost) gets it again. */
	mg_push(p);
}

static void mg_op_subscribe(struct mg_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__Subscribe *sub;

	sub = keel__subscribe__unpack(NULL, h->meta_len, meta);
	if (!sub) {
		mg_reply(p, h, -EINVAL, NULL, 0, "malformed Subscribe");
		return;
	}
	if (!p->subscribed) {
		log_info("%s: subscribed%s%.64s (has epoch %llu)", p->name,
			 sub->name && sub->name[0] ? " as " : "", sub->name ? sub->name : "",
			 (unsigned long long)sub->have_epoch);
	}
	keel__subscribe__free_unpacked(sub, NULL);
	p->subscribed = true;
	mg_reply_map(p, h);
}

/* The volume @name or, for "VOLUME@SNAPSHOT", a read-only view of that
 * snapshot: its size, its layer and that layer's parents. */
static int mg_volume_view(struct mg_cluster *c, const char *name, Keel__VolumeInfo *vi,
			  struct mg_volume_rec *v, uint64_t *parents, char *err, size_t errlen)
{
	char vol[CMAP_NAME_LEN * 2 + 2];
	const char *at = strchr(name, '@');
	struct mg_snap_rec sn;
	int ret;

	snprintf(vol, sizeof(vol), "%.*s", at ? (int)(at - name) : (int)strlen(name), name);
	ret = mg_check_name("volume", vol, err, errlen);
	if (!ret && at) {
		ret = mg_check_name("snapshot", at + 1, err, errlen);
	}
	if (ret) {
		return ret;
	}
	ret = mg_store_get_volume(c->st, vol, v);
	if (ret) {
		snprintf(err, errlen, "volume '%s' %s", vol,
			 ret == -ENOENT ? "not found" : "cannot be read");
		return ret;
	}
	vi->id = v->id;
	vi->name = (char *)name;
	vi->uuid = v->uuid;
	vi->size = v->size;
	vi->object_size = v->object_size;
	vi->pool = v->pool;
	vi->inode = v->top;
	if (at) {
		ret = mg_store_get_snap(c->st, v->id, at + 1, &sn);
		if (ret) {
			snprintf(err, errlen, "snapshot '%s' %s", name,
				 ret == -ENOENT ? "not found" : "cannot be read");
			return ret;
		}
		vi->size = sn.size;
		vi->inode = sn.inode;
		vi->read_only = true;
	}
	vi->parents = parents;
	vi->n_parents = mg_layer_chain(&c->layers, vi->inode, parents, MG_MAX_CHAIN);
	return 0;
}

static void mg_op_volume_open(struct mg_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__VolumeOpenRequest *req;
	Keel__VolumeInfo vi = KEEL__VOLUME_INFO__INIT;
	uint64_t parents[MG_MAX_CHAIN];
	struct mg_volume_rec v;
	char err[MG_ERR_LEN];
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	req = keel__volume_open_request__unpack(NULL, h->meta_len, meta);
	if (!req) {
		mg_reply(p, h, -EINVAL, NULL, 0, "malformed VolumeOpenRequest");
		return;
	}
	ret = mg_volume_view(p->c, req->name ? req->name : "", &vi, &v, parents, err, sizeof(err));
	if (!ret) {
		len = keel__volume_info__get_packed_size(&vi);
		buf = malloc(len);
		if (buf) {
			keel__volume_info__pack(&vi, buf);
		} else {
			ret = -ENOMEM;
			snprintf(err, sizeof(err), "out of memory");
		}
	}
	keel__volume_open_request__free_unpacked(req, NULL);
	if (ret) {
		mg_reply(p, h, ret, NULL, 0, err);
		return;
	}
	mg_reply(p, h, 0, buf, len, NULL);
}

static void mg_op_usage(struct mg_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__UsageReport *r;
	char err[MG_ERR_LEN] = "";
	int ret;

	r = keel__usage_report__unpack(NULL, h->meta_len, meta);
	if (!r) {
		mg_reply(p, h, -EINVAL, NULL, 0, "malformed UsageReport");
		return;
	}
	ret = mg_layer_usage_report(p->c, p, r, err, sizeof(err));
	keel__usage_report__free_unpacked(r, NULL);
	if (ret) {
		log_warn("%s: usage report refused: %s", p->name, err[0] ? err : strerror(-ret));
	}
	mg_reply(p, h, ret, NULL, 0, err);
}

static void mg_op_pg_report(struct mg_peer *p, const struct kp_hdr *h, const uint8_t *meta)
{
	Keel__PgReportBatch *b;
	char err[MG_ERR_LEN] = "";
	int ret;

	b = keel__pg_report_batch__unpack(NULL, h->meta_len, meta);
	if (!b) {
		mg_reply(p, h, -EINVAL, NULL, 0, "malformed PgReportBatch");
		return;
	}
	ret = mg_member_pg_report(p->c, p, b, err, sizeof(err));
	keel__pg_report_batch__free_unpacked(b, NULL);
	if (ret) {
		log_warn("%s: PG report refused: %s", p->name, err[0] ? err : strerror(-ret));
	}
	mg_reply(p, h, ret, NULL, 0, err);
}

static const mg_op_fn mg_ops[KP_OP__MAX] = {
	[KP_OP_MG_REGISTER] = mg_op_register,	[KP_OP_MG_HEARTBEAT] = mg_op_heartbeat,
	[KP_OP_MG_SUBSCRIBE] = mg_op_subscribe, [KP_OP_MG_VOLUME_OPEN] = mg_op_volume_open,
	[KP_OP_MG_PG_REPORT] = mg_op_pg_report, [KP_OP_MG_USAGE] = mg_op_usage,
};

/* ---- kp_conn callbacks ---- */

static void mg_on_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
		      const uint8_t *data, const uint32_t *crcs)
{
	struct mg_peer *p = kp_conn_arg(kc);

	if (h->flags & KP_F_REPLY) {
		if (h->opcode == KP_OP_MG_MAP) {
			mg_on_push_reply(p, h);
		} else {
			kp_conn_close(kc, -EPROTO, "unexpected reply frame");
		}
		return;
	}
	if (h->data_len) {
		mg_reply(p, h, -EINVAL, NULL, 0, "cluster requests carry no data");
		return;
	}
	if (h->opcode >= KP_OP__MAX || !mg_ops[h->opcode]) {
		mg_reply(p, h, -ENOTSUP, NULL, 0, "not a cluster-port opcode");
		return;
	}
	if (p->c->stopping) {
		mg_reply(p, h, -EAGAIN, NULL, 0, "mgmt shutting down");
		return;
	}
	mg_ops[h->opcode](p, h, meta ? meta : (const uint8_t *)"");
}

static void mg_on_close(struct kp_conn *kc, int err, const char *reason)
{
	struct mg_peer *p = kp_conn_arg(kc);

	p->kc = NULL;
	if (p->server_id) {
		mg_member_peer_closed(p->c, p, err, reason);
	}
	log_debug("%s: closed (%llu pushes, %llu coalesced)", p->name,
		  (unsigned long long)p->pushes_sent, (unsigned long long)p->pushes_coalesced);
	mg_peer_put(p);
}

static const struct kp_conn_cbs mg_conn_cbs = {
	.on_msg = mg_on_msg,
	.on_close = mg_on_close,
};

static void mg_on_accept(struct xport_listener *l, struct xport_conn *xc, void *arg)
{
	struct mg_cluster *c = arg;
	struct mg_peer *p;
	int ret;

	if (c->stopping) {
		xc->ops->close(xc, -ESHUTDOWN);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_error("%s: out of memory for a connection", xc->ops->peer(xc));
		xc->ops->close(xc, -ENOMEM);
		return;
	}
	p->c = c;
	snprintf(p->name, sizeof(p->name), "%s", xc->ops->peer(xc));
	ret = kp_conn_server(xc, c->key, &mg_conn_cbs, p, &p->kc);
	if (ret) {
		log_error("%s: cannot start connection: %s", p->name, strerror(-ret));
		free(p);
		xc->ops->close(xc, ret);
		return;
	}
	p->refs = 1;
	p->next = c->peers;
	if (c->peers) {
		c->peers->prev = p;
	}
	c->peers = p;
	c->npeers++;
	log_debug("%s: cluster connection accepted (%u open)", p->name, c->npeers);
}

void mg_cport_check_auth(struct mg_cluster *c)
{
	uint64_t now = reactor_now_ns();
	struct mg_peer *p, *next;

	/* Closing never frees inline (on_close is deferred), but hold a
	 * reference anyway so the walk never depends on that. */
	for (p = c->peers; p; p = p->next) {
		p->refs++;
	}
	for (p = c->peers; p; p = p->next) {
		if (p->kc) {
			kp_conn_check_auth_timeout(p->kc, now, MG_AUTH_TIMEOUT_NS);
		}
	}
	for (p = c->peers; p; p = next) {
		next = p->next;
		mg_peer_put(p);
	}
}

int mg_cport_start(struct mg_cluster *c, const char *addr)
{
	const struct xport_ops *ops = &xport_tcp_ops;
	int ret;

	ret = ops->listen(c->r, addr, &c->listener);
	if (ret) {
		log_error("cannot listen on cluster port %s: %s", addr, strerror(-ret));
		return ret;
	}
	ret = ops->accept_start(c->listener, mg_on_accept, c);
	if (ret) {
		log_error("cannot accept on cluster port %s: %s", addr, strerror(-ret));
		ops->listen_close(c->listener);
		c->listener = NULL;
		return ret;
	}
	snprintf(c->cluster_addr, sizeof(c->cluster_addr), "%s",
		 ops->listen_addr ? ops->listen_addr(c->listener) : addr);
	/* Tests read the bound port from this line. */
	log_info("cluster port listening on %s", c->cluster_addr);
	return 0;
}

void mg_cport_stop(struct mg_cluster *c)
{
	struct mg_peer *p, *next;

	c->stopping = true;
	if (c->listener) {
		c->listener->ops->listen_close(c->listener);
		c->listener = NULL;
	}
	/* Closing may drop a peer's last reference: hold one each. */
	for (p = c->peers; p; p = p->next) {
		p->refs++;
	}
	for (p = c->peers; p; p = p->next) {
		mg_cport_close_peer(p, "mgmt shutting down");
	}
	for (p = c->peers; p; p = next) {
		next = p->next;
		mg_peer_put(p);
	}
}
