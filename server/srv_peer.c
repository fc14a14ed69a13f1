/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_peer: connections from this server to the other servers of the
 * cluster (replication and recovery requests). One kp_conn per peer, opened
 * lazily, reconnected with backoff; requests sit in preallocated slots while
 * on the wire and are re-sent after a reconnect (replica ops are
 * idempotent: a replica answers OK to a version it already holds). A
 * request unanswered for replica_timeout_ms closes the connection: a hung
 * peer is treated like a dead one until mgmt's map says otherwise.
 */
#include "server/srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define SRV_PEER_BACKOFF_MIN_NS (50ull * 1000 * 1000)
#define SRV_PEER_BACKOFF_MAX_NS (1000ull * 1000 * 1000)

struct srv_peer {
	struct srv_cluster *cl;
	uint32_t id;
	char addr[CMAP_ADDR_LEN];
	struct kp_conn *kc;
	bool ready;
	bool connect_failing; /* reported; quiet until a connect succeeds */
	uint64_t retry_ns, backoff_ns;
	uint32_t seq, next_slot, nslots_used;
	struct srv_peer_req *slots[SRV_PEER_SLOTS];
	struct srv_peer_req *q_head, *q_tail;
	struct srv_peer *next;
};

static void peer_enqueue(struct srv_peer *p, struct srv_peer_req *pr, bool front)
{
	pr->state = SRV_PR_QUEUED;
	pr->qnext = NULL;
	if (front) {
		pr->qnext = p->q_head;
		p->q_head = pr;
		if (!p->q_tail) {
			p->q_tail = pr;
		}
		return;
	}
	if (p->q_tail) {
		p->q_tail->qnext = pr;
	} else {
		p->q_head = pr;
	}
	p->q_tail = pr;
}

static void peer_dequeue(struct srv_peer *p, struct srv_peer_req *pr)
{
	struct srv_peer_req **pp = &p->q_head, *prev = NULL;

	while (*pp && *pp != pr) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (!*pp) {
		return;
	}
	*pp = pr->qnext;
	if (p->q_tail == pr) {
		p->q_tail = prev;
	}
	pr->qnext = NULL;
}

static void peer_send_done(struct kp_msg *m, int res)
{
	struct srv_peer_req *pr = container_of(m, struct srv_peer_req, msg);

	pr->sending = false;
	if (pr->idle) {
		pr->idle(pr);
	}
}

static void peer_slot_free(struct srv_peer *p, struct srv_peer_req *pr)
{
	if (pr->slot < SRV_PEER_SLOTS && p->slots[pr->slot] == pr) {
		p->slots[pr->slot] = NULL;
		p->nslots_used--;
	}
	pr->slot = UINT32_MAX;
}

/* Put @pr on the wire. False when it must stay queued. */
static bool peer_transmit(struct srv_peer *p, struct srv_peer_req *pr, uint64_t now)
{
	struct srv_cluster *cl = p->cl;
	uint32_t i, slot = UINT32_MAX;
	int ret;

	if (pr->sending || p->nslots_used >= SRV_PEER_SLOTS) {
		return false;
	}
	for (i = 0; i < SRV_PEER_SLOTS; i++) {
		uint32_t s = (p->next_slot + i) % SRV_PEER_SLOTS;

		if (!p->slots[s]) {
			slot = s;
			break;
		}
	}
	if (slot == UINT32_MAX) {
		return false;
	}
	p->next_slot = (slot + 1) % SRV_PEER_SLOTS;
	p->seq++;
	pr->msg.hdr.req_id = (uint64_t)cl->self << 48 | (uint64_t)p->seq << 16 | slot;
	pr->msg.hdr.flags = 0;
	pr->msg.hdr.status = 0;
	pr->msg.done = peer_send_done;
	pr->msg.arg = pr;
	pr->sending = true;
	ret = kp_conn_send(p->kc, &pr->msg);
	if (ret) {
		pr->sending = false;
		if (ret != -ENOTCONN) {
			log_error("peer %u: cannot send %s: %s", p->id,
				  kp_opcode_name(pr->msg.hdr.opcode), strerror(-ret));
		}
		return false;
	}
	p->slots[slot] = pr;
	p->nslots_used++;
	pr->slot = slot;
	pr->state = SRV_PR_SENT;
	pr->deadline_ns = now + (uint64_t)cl->set.replica_timeout_ms * 1000000ull;
	return true;
}

static void peer_flush(struct srv_peer *p, uint64_t now)
{
	struct srv_peer_req *pr = p->q_head, *next, *keep_head = NULL, *keep_tail = NULL;

	if (!p->ready) {
		return;
	}
	p->q_head = p->q_tail = NULL;
	for (; pr; pr = next) {
		next = pr->qnext;
		pr->qnext = NULL;
		if (pr->retry_ns <= now && peer_transmit(p, pr, now)) {
			continue;
		}
		if (keep_tail) {
			keep_tail->qnext = pr;
		} else {
			keep_head = pr;
		}
		keep_tail = pr;
	}
	/* anything enqueued by callbacks meanwhile goes after the kept ones */
	if (keep_tail) {
		keep_tail->qnext = p->q_head;
		if (!p->q_head) {
			p->q_tail = keep_tail;
		}
		p->q_head = keep_head;
	}
}

static void peer_on_ready(struct kp_conn *kc)
{
	struct srv_peer *p = kp_conn_arg(kc);

	p->ready = true;
	p->backoff_ns = 0;
	p->connect_failing = false;
	log_info("peer %u (%s): connected", p->id, p->addr);
	peer_flush(p, reactor_now_ns());
}

static void peer_on_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
			const uint8_t *data, const uint32_t *crcs)
{
	struct srv_peer *p = kp_conn_arg(kc);
	uint32_t slot = (uint32_t)(h->req_id & 0xffff);
	struct srv_peer_req *pr;

	if (!(h->flags & KP_F_REPLY)) {
		kp_conn_close(kc, -EPROTO, "request on a peer client connection");
		return;
	}
	pr = slot < SRV_PEER_SLOTS ? p->slots[slot] : NULL;
	if (!pr || pr->msg.hdr.req_id != h->req_id || pr->msg.hdr.opcode != h->opcode) {
		/* a reply to a cancelled request: drop it */
		return;
	}
	peer_slot_free(p, pr);
	if (h->status == KP_S_EAGAIN) {
		/* the peer's map is behind ours: it will get it shortly */
		pr->retry_ns = reactor_now_ns() + SRV_EAGAIN_RETRY_NS;
		peer_enqueue(p, pr, false);
		return;
	}
	pr->state = SRV_PR_DONE;
	pr->done(pr, kp_status_to_errno(h->status), h, meta);
}

static void peer_on_close(struct kp_conn *kc, int err, const char *reason)
{
	struct srv_peer *p = kp_conn_arg(kc);
	uint64_t now = reactor_now_ns();
	uint32_t i;

	p->kc = NULL;
	p->ready = false;
	if (p->cl->stopping) {
		/* shutting down: nothing will be re-sent, fail it all */
		for (i = 0; i < SRV_PEER_SLOTS; i++) {
			struct srv_peer_req *pr = p->slots[i];

			if (pr) {
				peer_slot_free(p, pr);
				peer_enqueue(p, pr, false);
			}
		}
		while (p->q_head) {
			struct srv_peer_req *pr = p->q_head;

			peer_dequeue(p, pr);
			pr->state = SRV_PR_DONE;
			pr->done(pr, -ESHUTDOWN, NULL, NULL);
		}
		return;
	}
	/* everything on the wire goes back to the front of the queue, in
	 * slot order (per-object order is kept by the owners: one mutation
	 * per object in flight) */
	for (i = SRV_PEER_SLOTS; i-- > 0;) {
		struct srv_peer_req *pr = p->slots[i];

		if (!pr) {
			continue;
		}
		peer_slot_free(p, pr);
		pr->retry_ns = 0;
		peer_enqueue(p, pr, true);
	}
	p->backoff_ns = p->backoff_ns ? p->backoff_ns * 2 : SRV_PEER_BACKOFF_MIN_NS;
	if (p->backoff_ns > SRV_PEER_BACKOFF_MAX_NS) {
		p->backoff_ns = SRV_PEER_BACKOFF_MAX_NS;
	}
	p->retry_ns = now + p->backoff_ns;
	if (!p->cl->stopping) {
		log_info("peer %u (%s): connection closed (%s), retry in %llu ms", p->id, p->addr,
			 reason ? reason : "no reason",
			 (unsigned long long)(p->backoff_ns / 1000000));
	}
}

static const struct kp_conn_cbs peer_cbs = {
	.on_ready = peer_on_ready,
	.on_msg = peer_on_msg,
	.on_close = peer_on_close,
};

static void peer_connect(struct srv_peer *p, uint64_t now)
{
	struct srv_cluster *cl = p->cl;
	struct xport_conn *xc;
	char name[64];
	int ret;

	if (p->kc || now < p->retry_ns || !p->addr[0] || cl->stopping) {
		return;
	}
	/* Blocking connect: peers are on the local network, and a refused
	 * connection fails at once. */
	ret = cl->srv->xops->connect(cl->r, p->addr, &xc);
	if (!ret) {
		snprintf(name, sizeof(name), "keel-server-%u", cl->self);
		ret = kp_conn_client(xc, cl->key, name, &peer_cbs, p, &p->kc);
		if (ret) {
			xc->ops->close(xc, ret);
		} else {
			kp_conn_set_fault(p->kc, cl->srv->fault);
		}
	}
	if (ret) {
		if (!p->connect_failing) {
			log_warn("peer %u (%s): cannot connect: %s; retrying", p->id, p->addr,
				 strerror(-ret));
			p->connect_failing = true;
		}
		p->kc = NULL;
		p->backoff_ns = p->backoff_ns ? p->backoff_ns * 2 : SRV_PEER_BACKOFF_MIN_NS;
		if (p->backoff_ns > SRV_PEER_BACKOFF_MAX_NS) {
			p->backoff_ns = SRV_PEER_BACKOFF_MAX_NS;
		}
		p->retry_ns = now + p->backoff_ns;
	}
}

static struct srv_peer *peer_get(struct srv_cluster *cl, uint32_t id)
{
	struct srv_peer *p;
	const struct cmap_server *ms;

	for (p = cl->peers; p; p = p->next) {
		if (p->id == id) {
			return p;
		}
	}
	/* once per peer server, not per request */
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_fatal("out of memory for peer %u", id);
	}
	p->cl = cl;
	p->id = id;
	ms = cl->map ? pg_map_server(cl->map, id) : NULL;
	if (ms) {
		snprintf(p->addr, sizeof(p->addr), "%s", ms->addr);
	}
	p->next = cl->peers;
	cl->peers = p;
	return p;
}

void srv_peer_send(struct srv_cluster *cl, uint32_t server_id, struct srv_peer_req *pr)
{
	struct srv_peer *p = peer_get(cl, server_id);
	uint64_t now = reactor_now_ns();

	kassert(pr->state == SRV_PR_IDLE || pr->state == SRV_PR_DONE);
	pr->peer = p;
	pr->slot = UINT32_MAX;
	if (p->ready && !p->q_head && pr->retry_ns <= now && peer_transmit(p, pr, now)) {
		return;
	}
	peer_enqueue(p, pr, false);
	if (!p->kc) {
		peer_connect(p, now);
	}
}

void srv_peer_cancel(struct srv_peer_req *pr)
{
	struct srv_peer *p = pr->peer;

	if (!p) {
		return;
	}
	if (pr->state == SRV_PR_QUEUED) {
		peer_dequeue(p, pr);
	} else if (pr->state == SRV_PR_SENT) {
		peer_slot_free(p, pr);
	}
	pr->state = SRV_PR_IDLE;
	pr->peer = NULL;
}

void srv_peer_tick(struct srv_cluster *cl, uint64_t now)
{
	struct srv_peer *p;

	for (p = cl->peers; p; p = p->next) {
		if (p->kc && p->ready && p->nslots_used) {
			uint32_t i;

			for (i = 0; i < SRV_PEER_SLOTS; i++) {
				if (p->slots[i] && p->slots[i]->deadline_ns < now) {
					log_warn("peer %u (%s): %s unanswered for %u ms", p->id,
						 p->addr,
						 kp_opcode_name(p->slots[i]->msg.hdr.opcode),
						 cl->set.replica_timeout_ms);
					kp_conn_close(p->kc, -ETIMEDOUT,
						      "replica request timed out");
					break;
				}
			}
		}
		if (!p->q_head) {
			continue;
		}
		if (!p->kc) {
			peer_connect(p, now);
		} else {
			peer_flush(p, now);
		}
	}
}

void srv_peer_map_changed(struct srv_cluster *cl)
{
	struct srv_peer *p;

	for (p = cl->peers; p; p = p->next) {
		const struct cmap_server *ms = pg_map_server(cl->map, p->id);
		const char *addr = ms ? ms->addr : "";

		if (strcmp(addr, p->addr)) {
			snprintf(p->addr, sizeof(p->addr), "%s", addr);
			if (p->kc) {
				kp_conn_close(p->kc, 0, "peer address changed");
			}
		} else if (ms && !ms->up && p->kc) {
			/* It may come back as a new process, or across a partition
			 * that left this connection half-open: requests sent on it
			 * then wait out replica_timeout_ms (a 2 s stall seen after
			 * a link came back up). Connect afresh when it is up. */
			kp_conn_close(p->kc, 0, "peer marked down");
		}
		/* A peer that came back up deserves a prompt reconnect. */
		if (ms && ms->up && !p->kc) {
			p->retry_ns = 0;
			p->backoff_ns = 0;
		}
	}
}

void srv_peer_close_all(struct srv_cluster *cl)
{
	struct srv_peer *p;

	for (p = cl->peers; p; p = p->next) {
		if (p->kc) {
			kp_conn_close(p->kc, 0, "server shutting down");
		}
	}
}
