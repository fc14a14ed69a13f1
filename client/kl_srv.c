/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libkeel data connections: one kp_conn per server id, connected lazily on
 * first use, replies matched to parts by req_id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/kl_int.h"
#include "common/log.h"
#include "common/xport.h"

struct kl_srv *kl_srv_get(struct keel_cluster *c, uint32_t id)
{
	struct kl_srv *s;
	uint32_t *ids;
	uint32_t i;

	if (!id || id > KL_MAX_SERVER_ID) {
		return NULL;
	}
	if (c->srv_by_id[id]) {
		return c->srv_by_id[id];
	}
	/* Once per server for the cluster's lifetime: not the hot path. */
	s = calloc(1, sizeof(*s));
	ids = realloc(c->srv_ids, sizeof(*ids) * (c->nsrv + 1));
	if (!s || !ids) {
		free(s);
		if (ids) {
			c->srv_ids = ids;
		}
		return NULL;
	}
	c->srv_ids = ids;
	s->c = c;
	s->id = id;
	s->state = KL_SRV_DOWN;
	kl_list_init(&s->waitq);
	kl_list_init(&s->sent);
	for (i = c->nsrv; i > 0 && ids[i - 1] > id; i--) {
		ids[i] = ids[i - 1];
	}
	ids[i] = id;
	c->nsrv++;
	c->srv_by_id[id] = s;
	return s;
}

void kl_srv_close(struct kl_srv *s, int err, const char *why)
{
	if (s->state != KL_SRV_CONNECTING && s->state != KL_SRV_READY) {
		return;
	}
	s->state = KL_SRV_CLOSING;
	s->c->net->close(s, err, why);
}

/* Route again the parts waiting on @s (it became ready or has room). */
static void srv_kick(struct kl_srv *s)
{
	while (!kl_list_empty(&s->waitq) && s->state == KL_SRV_READY &&
	       s->nsent < KL_SRV_MAX_INFLIGHT) {
		struct kl_sub *sub = kl_list_first(&s->waitq, struct kl_sub, srv_link);

		kl_list_del(&sub->srv_link);
		sub->state = KL_SUB_ROUTE;
		kl_sub_process(sub);
	}
}

void kl_srv_on_ready(struct kl_srv *s)
{
	log_debug("data connection to server %u (%s) ready", s->id, s->addr);
	if (s->state != KL_SRV_CONNECTING) {
		return;
	}
	s->state = KL_SRV_READY;
	srv_kick(s);
}

void kl_srv_on_msg(struct kl_srv *s, const struct kp_hdr *h, const uint8_t *data,
		   const uint32_t *crcs)
{
	struct keel_cluster *c = s->c;
	uint32_t idx = (uint32_t)(h->req_id & 0xffff);
	struct kl_sub *sub;

	if (!(h->flags & KP_F_REPLY)) {
		kl_srv_close(s, -EPROTO, "request frame from a server");
		return;
	}
	sub = idx < KL_MAX_SUBS ? &c->subs[idx] : NULL;
	if (!sub || sub->state != KL_SUB_SENT || sub->srv != s || sub->req_id != h->req_id ||
	    sub->msg.hdr.opcode != h->opcode) {
		kl_srv_close(s, -EPROTO, "reply to no request in flight");
		return;
	}
	kl_sub_on_reply(sub, h, data, crcs);
	srv_kick(s);
}

void kl_srv_on_close(struct kl_srv *s, int err, const char *why)
{
	struct keel_cluster *c = s->c;
	struct kl_list todo;

	if (!c->closing) {
		log_warn("data connection to server %u (%s) closed: %s", s->id, s->addr,
			 why ? why : (err ? strerror(-err) : "by the server"));
	}
	s->state = KL_SRV_DOWN;
	s->conn = NULL;
	s->lost = true;
	s->nsent = 0;
	c->nconns--;
	/* Everything on it is retried (re-routed: the map may have moved). */
	kl_list_init(&todo);
	kl_list_splice(&s->sent, &todo);
	kl_list_splice(&s->waitq, &todo);
	while (!kl_list_empty(&todo)) {
		struct kl_sub *sub = kl_list_first(&todo, struct kl_sub, srv_link);

		kl_list_del(&sub->srv_link);
		kl_sub_retry_later(sub, err ? err : -ECONNRESET);
	}
	kl_cluster_maybe_free(c);
}

/* ---- the kp_conn transport ---- */

static void kp_on_ready(struct kp_conn *kc)
{
	kl_srv_on_ready(kp_conn_arg(kc));
}

static void kp_on_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
		      const uint8_t *data, const uint32_t *crcs)
{
	kl_srv_on_msg(kp_conn_arg(kc), h, data, crcs);
}

static void kp_on_close(struct kp_conn *kc, int err, const char *why)
{
	kl_srv_on_close(kp_conn_arg(kc), err, why);
}

static const struct kp_conn_cbs kl_kp_cbs = {
	.on_ready = kp_on_ready,
	.on_msg = kp_on_msg,
	.on_close = kp_on_close,
};

static int kp_connect(struct kl_srv *s)
{
	struct keel_cluster *c = s->c;
	struct xport_conn *xc;
	struct kp_conn *kc;
	int ret;

	/* xport connect blocks the reactor for the TCP handshake (setup-time
	 * API today); a refused or unreachable server costs one attempt per
	 * KL_CONNECT_RETRY_NS. */
	ret = c->xops->connect(c->r, s->addr, &xc);
	if (ret) {
		return ret;
	}
	ret = kp_conn_client(xc, &c->key, c->name, &kl_kp_cbs, s, &kc);
	if (ret) {
		goto out_close_xc;
	}
	s->conn = kc;
	return 0;
out_close_xc:
	xc->ops->close(xc, ret);
	return ret;
}

static int kp_send(struct kl_srv *s, struct kp_msg *m)
{
	return kp_conn_send(s->conn, m);
}

static void kp_close(struct kl_srv *s, int err, const char *why)
{
	if (s->conn) {
		kp_conn_close(s->conn, err, why);
	}
}

const struct kl_net_ops kl_net_kp = {
	.connect = kp_connect,
	.send = kp_send,
	.close = kp_close,
};
