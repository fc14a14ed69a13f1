/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Membership: registration, heartbeats, failure detection (connection
 * loss, heartbeat timeout), down -> out, and PG reports from primaries.
 */
#include "mgmt/mg_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

#define MG_MS_NS 1000000ull

static const char *const mg_pg_report_states[] = {
	"", "active", "degraded", "recovering", "peering", "inactive", NULL,
};

static void mg_uuid_text(const uint8_t *u, char out[MG_UUID_LEN])
{
	snprintf(out, MG_UUID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		 u[15]);
}

/* Validate what a server says about itself into @r (hostile input). */
static int mg_info_check(const Keel__ServerInfo *info, struct mg_server_rec *r, char *err,
			 size_t errlen)
{
	char host[CMAP_NAME_LEN], port[16];
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	if (!info) {
		snprintf(err, errlen, "RegisterRequest without info");
		return -EINVAL;
	}
	if (info->uuid.len != 16) {
		snprintf(err, errlen, "uuid must be 16 bytes (got %zu)", info->uuid.len);
		return -EINVAL;
	}
	mg_uuid_text(info->uuid.data, r->uuid);
	if (!info->addr || !info->addr[0] || strlen(info->addr) >= CMAP_ADDR_LEN ||
	    xport_parse_addr(info->addr, host, sizeof(host), port, sizeof(port))) {
		snprintf(err, errlen, "addr must be host:port, under %d bytes", CMAP_ADDR_LEN);
		return -EINVAL;
	}
	snprintf(r->addr, sizeof(r->addr), "%s", info->addr);
	/* Failure domains default to the address's host and rack "default". */
	snprintf(r->host, sizeof(r->host), "%s", info->host && info->host[0] ? info->host : host);
	snprintf(r->rack, sizeof(r->rack), "%s",
		 info->rack && info->rack[0] ? info->rack : "default");
	if (mg_check_name("host", r->host, err, errlen) ||
	    mg_check_name("rack", r->rack, err, errlen)) {
		return -EINVAL;
	}
	r->weight = info->weight ? info->weight : 1;
	if (info->n_tags > CMAP_MAX_TAGS) {
		snprintf(err, errlen, "at most %d tags", CMAP_MAX_TAGS);
		return -EINVAL;
	}
	for (size_t i = 0; i < info->n_tags; i++) {
		if (mg_check_name("tag", info->tags[i], err, errlen)) {
			return -EINVAL;
		}
		off += (size_t)snprintf(r->tags + off, sizeof(r->tags) - off, "%s%s", i ? "," : "",
					info->tags[i]);
	}
	r->capacity_bytes = info->capacity_bytes;
	r->used_bytes = info->used_bytes;
	r->in = true;
	return 0;
}

static bool mg_info_changed(const struct mg_server_rec *a, const struct mg_server_rec *b)
{
	return strcmp(a->addr, b->addr) || strcmp(a->host, b->host) || strcmp(a->rack, b->rack) ||
	       a->weight != b->weight || strcmp(a->tags, b->tags);
}

static struct mg_server *mg_server_by_uuid(struct mg_cluster *c, const char *uuid)
{
	for (uint32_t i = 0; i < c->nservers; i++) {
		if (!strcmp(c->servers[i].rec.uuid, uuid)) {
			return &c->servers[i];
		}
	}
	return NULL;
}

static int mg_server_append(struct mg_cluster *c, const struct mg_server_rec *r)
{
	if (c->nservers == c->servers_cap) {
		uint32_t cap = c->servers_cap ? c->servers_cap * 2 : 16;
		struct mg_server *n = realloc(c->servers, cap * sizeof(*n));

		if (!n) {
			return -ENOMEM;
		}
		c->servers = n;
		c->servers_cap = cap;
	}
	memset(&c->servers[c->nservers], 0, sizeof(c->servers[0]));
	c->servers[c->nservers].rec = *r;
	c->nservers++;
	return 0;
}

static void mg_server_attach(struct mg_server *s, struct mg_peer *p)
{
	s->peer = p;
	p->server_id = s->rec.id;
	s->last_hb_ns = reactor_now_ns();
	s->hb_seen = true;
}

static int mg_register_new(struct mg_cluster *c, struct mg_peer *p, struct mg_server_rec *r)
{
	char reason[320];
	int ret;

	if (c->meta.next_server_id > 65535 || c->nservers >= CMAP_MAX_SERVERS) {
		return -ENOSPC;
	}
	r->id = c->meta.next_server_id;
	ret = mg_server_append(c, r);
	if (ret) {
		return ret;
	}
	c->servers[c->nservers - 1].up = true;
	c->meta.next_server_id++;
	snprintf(reason, sizeof(reason),
		 "server %u registered: %s at %.63s (host %.40s, rack %.40s)", r->id, r->uuid,
		 r->addr, r->host, r->rack);
	ret = mg_cluster_publish(c, NULL, reason, NULL, NULL);
	if (ret) {
		/* The id was not persisted: forget it, the server retries. */
		c->nservers--;
		c->meta.next_server_id--;
		return ret;
	}
	mg_server_attach(&c->servers[c->nservers - 1], p);
	return 0;
}

int mg_member_register(struct mg_cluster *c, struct mg_peer *p, const Keel__ServerInfo *info,
		       uint32_t *id, char *err, size_t errlen)
{
	struct mg_server_rec r;
	struct mg_server *s;
	char reason[320];
	bool changed;
	int ret;

	ret = mg_info_check(info, &r, err, errlen);
	if (ret) {
		return ret;
	}
	s = mg_server_by_uuid(c, r.uuid);
	if (p->server_id && (!s || p->server_id != s->rec.id)) {
		snprintf(err, errlen, "connection already registered as server %u", p->server_id);
		return -EINVAL;
	}
	if (!s) {
		ret = mg_register_new(c, p, &r);
		if (!ret) {
			*id = r.id;
		}
		return ret;
	}
	if (s->peer && s->peer != p) {
		struct mg_peer *old = s->peer;

		/* The server reconnected before its old connection died. */
		old->server_id = 0;
		s->peer = NULL;
		mg_cport_close_peer(old, "superseded by a new registration");
	}
	changed = !s->up || !s->rec.in || mg_info_changed(&s->rec, &r);
	if (!s->up) {
		snprintf(reason, sizeof(reason),
			 "server %u up: registered again after %.1f s down%s", s->rec.id,
			 (double)(mg_wall_ms() - s->rec.down_since_ms) / 1000.0,
			 s->rec.in ? "" : ", back in");
	} else {
		snprintf(reason, sizeof(reason), "server %u registered again with new %s",
			 s->rec.id, s->rec.in ? "address or failure domain" : "in flag");
	}
	r.id = s->rec.id;
	s->rec = r;
	s->up = true;
	mg_server_attach(s, p);
	*id = s->rec.id;
	if (!changed) {
		log_info("server %u (%s) registered again from %s: no change", s->rec.id,
			 s->rec.uuid, p->name);
		return 0;
	}
	return mg_cluster_publish(c, NULL, reason, NULL, NULL);
}

int mg_member_heartbeat(struct mg_cluster *c, struct mg_peer *p, const Keel__Heartbeat *hb)
{
	struct mg_server *s = p->server_id ? mg_cluster_server(c, p->server_id) : NULL;

	if (!s || s->peer != p || hb->server_id != s->rec.id) {
		return -ENOENT;
	}
	s->last_hb_ns = reactor_now_ns();
	s->hb_epoch = hb->epoch;
	s->rec.used_bytes = hb->used_bytes;
	s->ops = hb->ops;
	return 0;
}

/* Mark @s down; the caller publishes. */
static void mg_server_down(struct mg_server *s, const char *why, bool close_conn, char *reason,
			   size_t reasonlen)
{
	uint64_t now = reactor_now_ns();
	struct mg_peer *p = s->peer;
	double after_ms = (double)(now - s->last_hb_ns) / 1e6;

	s->up = false;
	s->rec.down_since_ms = mg_wall_ms();
	s->peer = NULL;
	log_warn("server %u down: %s (%.1f ms after last heartbeat)", s->rec.id, why, after_ms);
	snprintf(reason, reasonlen, "server %u down: %s", s->rec.id, why);
	if (p) {
		p->server_id = 0;
		if (close_conn) {
			mg_cport_close_peer(p, "heartbeat timeout");
		}
	}
}

void mg_member_peer_closed(struct mg_cluster *c, struct mg_peer *p, int err, const char *reason)
{
	struct mg_server *s = mg_cluster_server(c, p->server_id);
	char why[128], msg[160];

	p->server_id = 0;
	if (!s || s->peer != p) {
		return;
	}
	if (!err) {
		snprintf(why, sizeof(why), "connection closed%s%s", reason ? ": " : "",
			 reason ? reason : "");
	} else if (err == -ECONNRESET) {
		snprintf(why, sizeof(why), "connection reset");
	} else {
		snprintf(why, sizeof(why), "connection lost: %s", reason ? reason : strerror(-err));
	}
	if (!s->up) {
		s->peer = NULL;
		return;
	}
	mg_server_down(s, why, false, msg, sizeof(msg));
	if (!c->stopping) {
		mg_cluster_publish(c, NULL, msg, NULL, NULL);
	}
}

void mg_member_tick(struct mg_cluster *c)
{
	uint64_t now = reactor_now_ns();
	uint64_t timeout = (uint64_t)c->cfg->heartbeat_timeout_ms * MG_MS_NS;
	int64_t wall = mg_wall_ms();
	char reason[160] = "", one[160];
	unsigned int changes = 0;

	if (c->stopping) {
		return;
	}
	for (uint32_t i = 0; i < c->nservers; i++) {
		struct mg_server *s = &c->servers[i];
		char why[64];

		if (s->up && now - s->last_hb_ns > timeout) {
			snprintf(why, sizeof(why), "no heartbeat for %u ms%s",
				 c->cfg->heartbeat_timeout_ms,
				 s->hb_seen ? "" : " (not back after mgmt restart)");
			mg_server_down(s, why, true, one, sizeof(one));
		} else if (!s->up && s->rec.in &&
			   wall - s->rec.down_since_ms >=
				   (int64_t)c->cfg->down_out_interval_s * 1000) {
			s->rec.in = false;
			log_warn("server %u out: down for %.1f s (down_out_interval %u s); its PGs "
				 "move to other servers",
				 s->rec.id, (double)(wall - s->rec.down_since_ms) / 1000.0,
				 c->cfg->down_out_interval_s);
			snprintf(one, sizeof(one), "server %u out", s->rec.id);
		} else {
			continue;
		}
		if (!changes++) {
			snprintf(reason, sizeof(reason), "%s", one);
		}
	}
	if (changes > 1) {
		size_t len = strlen(reason);

		snprintf(reason + len, sizeof(reason) - len, " and %u more changes", changes - 1);
	}
	if (changes) {
		mg_cluster_publish(c, NULL, reason, NULL, NULL);
	} else if (c->dirty) {
		mg_cluster_publish(c, NULL, "retry after a store error", NULL, NULL);
	}
}

/* ---- PG reports ---- */

static bool mg_report_state_valid(const char *s)
{
	for (int i = 0; mg_pg_report_states[i]; i++) {
		if (!strcmp(s, mg_pg_report_states[i])) {
			return true;
		}
	}
	return false;
}

/* Check one report; *stale when it is about an older interval. */
static int mg_report_check(struct mg_cluster *c, struct mg_peer *p, const Keel__PgReport *r,
			   bool *stale, char *err, size_t errlen)
{
	const struct cmap_pg *pg = cmap_pg(c->map, r->pool, r->pg);

	if (!pg || !mg_cluster_pool(c, r->pool)) {
		snprintf(err, errlen, "no PG %u.%u", r->pool, r->pg);
		return -EINVAL;
	}
	if (!r->state || !mg_report_state_valid(r->state)) {
		snprintf(err, errlen, "PG %u.%u: unknown state", r->pool, r->pg);
		return -EINVAL;
	}
	if (r->n_synced > CMAP_MAX_REPLICAS) {
		snprintf(err, errlen, "PG %u.%u: too many synced members", r->pool, r->pg);
		return -EINVAL;
	}
	*stale = r->epoch != pg->interval;
	if (*stale) {
		return 0;
	}
	if (pg->primary != p->server_id) {
		snprintf(err, errlen, "PG %u.%u: server %u is not its primary in epoch %llu",
			 r->pool, r->pg, p->server_id, (unsigned long long)r->epoch);
		return -EINVAL;
	}
	for (size_t i = 0; i < r->n_synced; i++) {
		if (cmap_pg_member_index(pg, r->synced[i]) < 0) {
			snprintf(err, errlen, "PG %u.%u: server %u is not a member", r->pool, r->pg,
				 r->synced[i]);
			return -EINVAL;
		}
	}
	return 0;
}

int mg_member_pg_report(struct mg_cluster *c, struct mg_peer *p, const Keel__PgReportBatch *b,
			char *err, size_t errlen)
{
	struct cmap *base = NULL;
	char reason[160] = "";
	unsigned int synced = 0, stale_count = 0;
	bool stale;
	int ret;

	if (!p->server_id) {
		snprintf(err, errlen, "PG reports come from registered servers only");
		return -EPERM;
	}
	for (size_t i = 0; i < b->n_pgs; i++) {
		ret = mg_report_check(c, p, b->pgs[i], &stale, err, errlen);
		if (ret) {
			return ret;
		}
	}
	for (size_t i = 0; i < b->n_pgs; i++) {
		const Keel__PgReport *r = b->pgs[i];
		struct mg_pool *pool = mg_cluster_pool(c, r->pool);
		const struct cmap_pg *pg = cmap_pg(c->map, r->pool, r->pg);
		struct mg_pg_stat *st = &pool->stats[r->pg];

		if (r->epoch != pg->interval) {
			stale_count++;
			continue;
		}
		st->interval = r->epoch;
		snprintf(st->state, sizeof(st->state), "%s", r->state);
		st->objects_left = r->objects_left;
		st->bytes_left = r->bytes_left;
		st->bytes_copied = r->bytes_copied;
		for (size_t j = 0; j < r->n_synced; j++) {
			int idx = cmap_pg_member_index(pg, r->synced[j]);
			const struct cmap_server *ms = cmap_server(c->map, r->synced[j]);
			struct cmap_pg *bpg;

			if ((pg->in_sync & (1u << idx)) || !ms || !ms->up) {
				continue; /* already in sync, or went down meanwhile */
			}
			if (!base) {
				base = cmap_dup(c->map);
				if (!base) {
					return -ENOMEM;
				}
			}
			bpg = (struct cmap_pg *)cmap_pg(base, r->pool, r->pg);
			bpg->in_sync |= 1u << idx;
			if (!synced++) {
				snprintf(reason, sizeof(reason), "PG %u.%u: server %u in sync",
					 r->pool, r->pg, r->synced[j]);
			}
		}
	}
	if (stale_count) {
		log_debug("server %u: ignored %u stale PG reports", p->server_id, stale_count);
	}
	if (!base) {
		return 0;
	}
	if (synced > 1) {
		size_t len = strlen(reason);

		snprintf(reason + len, sizeof(reason) - len, " and %u more", synced - 1);
	}
	ret = mg_cluster_publish(c, base, reason, NULL, NULL);
	cmap_free(base);
	return ret;
}
