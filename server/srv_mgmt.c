/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_mgmt: cluster mode. One authenticated kp_conn to keel-mgmt's cluster
 * port: MG_REGISTER (blockstore uuid, data address, failure domains,
 * weight), MG_HEARTBEAT every 250 ms, MG_MAP pushes (validated by
 * cmap_unpack(), applied only when newer), MG_PG_REPORT for recovery
 * progress and members brought in sync. A lost connection is retried with
 * backoff; the data path keeps running on the last map meanwhile.
 *
 * Applying a map rebuilds the PG view (srv_pg.h) of every PG we are a
 * member of. srv_pg structs are kept for the life of the process (requests
 * point at them); a PG we left has role SRV_PG_NONE.
 */
#include "server/srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/keel.pb-c.h"

#define SRV_MGMT_BACKOFF_MIN_NS (100ull * 1000 * 1000)
#define SRV_MGMT_BACKOFF_MAX_NS (500ull * 1000 * 1000) /* the lease waits on it */

struct srv_pg *srv_cluster_pg(struct srv_cluster *cl, uint32_t pgid)
{
	uint32_t pool = KP_PGID_POOL(pgid), pg = KP_PGID_PG(pgid);
	struct srv_pg **tab;

	if (!pool || pool >= 4096 || pg >= CMAP_MAX_PGS) {
		return NULL;
	}
	tab = cl->pool_pgs[pool];
	return tab ? tab[pg] : NULL;
}

int srv_cluster_check_client(struct srv_cluster *cl, struct srv_req *req)
{
	const struct kp_hdr *h = &req->hdr;
	const struct cmap_pool *pool;
	struct srv_pg *pg;
	uint32_t pgno;

	if (h->opcode == KP_OP_SYNC) {
		/* A SYNC names no PG: libkeel sends one to every server it
		 * wrote through, and srv_op_sync() answers it at once (an
		 * acknowledged write is already durable on every copy). */
		return 0;
	}
	if (!h->pgid) {
		return -EINVAL; /* cluster mode: every data op names its PG */
	}
	if (!cl->map || h->epoch > cl->epoch) {
		return -ESTALE; /* the client is ahead of us: it retries shortly */
	}
	if (!srv_cluster_lease_valid(cl)) {
		return -ESTALE; /* mgmt may have given our PGs to others by now */
	}
	pool = cmap_pool(cl->map, KP_PGID_POOL(h->pgid));
	pgno = KP_PGID_PG(h->pgid);
	if (!pool || pgno >= pool->pg_count) {
		return -EINVAL;
	}
	if (cmap_object_pg(h->inode, h->objno, pool->pg_count) != pgno) {
		return -EINVAL;
	}
	pg = srv_cluster_pg(cl, h->pgid);
	if (pg && pg->role == SRV_PG_NONE) {
		pg = NULL;
	}
	req->r.pg = pg;
	return pg_check_client(pg, cl->epoch, h->epoch);
}

/* ---- map application ---- */

static bool pg_needs_recovery(const struct srv_pg *pg)
{
	uint32_t i;

	if (pg->role != SRV_PG_PRIMARY) {
		return pg->rec != NULL;
	}
	if (pg->rec || pg->synced_member) {
		return true;
	}
	for (i = 0; i < pg->nmembers; i++) {
		if ((int)i != pg->self && (pg->up & (1u << i)) && !(pg->in_sync & (1u << i))) {
			return true;
		}
	}
	return false;
}

/* Forget a reported sync once the map shows it (or moved on). */
static void pg_clear_synced(struct srv_pg *pg, const struct srv_pg *prev)
{
	uint32_t i;

	if (!pg->synced_member) {
		return;
	}
	if (pg->interval != prev->interval || pg->role != SRV_PG_PRIMARY) {
		pg->synced_member = 0;
		return;
	}
	for (i = 0; i < pg->nmembers; i++) {
		if (pg->members[i] == pg->synced_member) {
			if ((pg->in_sync & (1u << i)) || !(pg->up & (1u << i))) {
				pg->synced_member = 0;
			}
			return;
		}
	}
	pg->synced_member = 0;
}

/* The PGs a new map changed (or took from us: @gone), in map order. */
struct pg_changes {
	struct {
		struct srv_pg *pg;
		bool gone;
	} *v;
	unsigned int n, cap;
};

static void pg_changes_add(struct pg_changes *ch, struct srv_pg *pg, bool gone)
{
	if (ch->n == ch->cap) {
		ch->cap = ch->cap ? ch->cap * 2 : 64;
		ch->v = realloc(ch->v, ch->cap * sizeof(*ch->v));
		if (!ch->v) {
			log_fatal("out of memory applying map");
		}
	}
	ch->v[ch->n].pg = pg;
	ch->v[ch->n++].gone = gone;
}

static void cluster_apply_map(struct srv_cluster *cl, struct cmap *m)
{
	struct pg_changes ch = {0};
	unsigned int nrec = 0;
	struct cmap *old = cl->map;
	uint32_t p, i;

	if (old && m->epoch <= old->epoch) {
		cmap_free(m);
		return;
	}
	cl->map = m;
	cl->epoch = m->epoch;
	if (!layer_lists_equal(old, m) || !cmap_fences_equal(old, m)) {
		/* Mutations started so far ran under the old layer or fence
		 * list: map replies wait for them (docs/volumes.md "Fencing
		 * writers"), so a snapshot or a detach is complete only once no
		 * write admitted before it is still in flight. */
		cl->layers_gen++;
		cl->mut_old += cl->mut_cur;
		cl->mut_cur = 0;
		log_info("map epoch %llu: %u read-only or deleting layers, %u fenced volumes; %llu "
			 "client mutations of earlier lists in flight",
			 (unsigned long long)m->epoch, m->nlayers, m->nfences,
			 (unsigned long long)cl->mut_old);
	}
	/* everything we know is "not present" until the new map says so */
	for (p = 1; p < 4096; p++) {
		if (!cl->pool_pgs[p]) {
			continue;
		}
		for (i = 0; i < CMAP_MAX_PGS; i++) {
			if (cl->pool_pgs[p][i]) {
				cl->pool_pgs[p][i]->present = false;
			}
		}
	}
	for (p = 0; p < m->npools; p++) {
		const struct cmap_pool *pool = &m->pools[p];

		if (!pool->id || pool->id >= 4096) {
			continue;
		}
		if (!cl->pool_pgs[pool->id]) {
			cl->pool_pgs[pool->id] = calloc(CMAP_MAX_PGS, sizeof(struct srv_pg *));
			if (!cl->pool_pgs[pool->id]) {
				log_fatal("out of memory for pool %u", pool->id);
			}
		}
		for (i = 0; i < pool->pg_count && i < CMAP_MAX_PGS; i++) {
			struct srv_pg **slot = &cl->pool_pgs[pool->id][i];
			struct srv_pg view, prev;

			memset(&view, 0, sizeof(view));
			if (!pg_view_update(&view, m, pool, &pool->pgs[i], cl->self)) {
				continue;
			}
			if (!*slot) {
				*slot = calloc(1, sizeof(**slot));
				if (!*slot) {
					log_fatal("out of memory for pg %u.%u", pool->id, i);
				}
			}
			prev = **slot;
			pg_view_update(*slot, m, pool, &pool->pgs[i], cl->self);
			(*slot)->present = true;
			pg_clear_synced(*slot, &prev);
			if (prev.role == SRV_PG_NONE || pg_view_changed(&prev, *slot)) {
				struct srv_pg *pg = *slot;

				if (prev.role != SRV_PG_NONE) {
					pg->gen++;
					pg->inflight_prev += pg->inflight_cur;
					pg->inflight_cur = 0;
				}
				if (pg->role == SRV_PG_PRIMARY && prev.role != SRV_PG_PRIMARY) {
					log_debug("pg %u.%u: primary (interval %llu, %u/%u members "
						  "up in sync)",
						  pg->pool, pg->pg,
						  (unsigned long long)pg->interval,
						  __builtin_popcount(pg_up_in_sync(pg)),
						  pg->nmembers);
				} else if (pg->role != SRV_PG_PRIMARY &&
					   prev.role == SRV_PG_PRIMARY) {
					log_debug("pg %u.%u: no longer primary (primary %u)",
						  pg->pool, pg->pg, pg->primary);
				}
				pg_changes_add(&ch, pg, false);
			}
		}
	}
	/* PGs we were a member of and no longer are */
	for (p = 1; p < 4096; p++) {
		if (!cl->pool_pgs[p]) {
			continue;
		}
		for (i = 0; i < CMAP_MAX_PGS; i++) {
			struct srv_pg *pg = cl->pool_pgs[p][i];

			if (!pg || pg->present || pg->role == SRV_PG_NONE) {
				continue;
			}
			log_info("pg %u.%u: no longer a member", pg->pool, pg->pg);
			pg->role = SRV_PG_NONE;
			pg->gen++;
			pg->inflight_prev += pg->inflight_cur;
			pg->inflight_cur = 0;
			pg->synced_member = 0;
			pg_changes_add(&ch, pg, true);
		}
	}
	/* the recovery list: primaries with work, and recoveries to wind down */
	free(cl->rec_list);
	cl->rec_list = NULL;
	cl->nrec = 0;
	for (p = 1; p < 4096; p++) {
		if (!cl->pool_pgs[p]) {
			continue;
		}
		for (i = 0; i < CMAP_MAX_PGS; i++) {
			struct srv_pg *pg = cl->pool_pgs[p][i];

			if (pg && pg_needs_recovery(pg)) {
				nrec++;
			}
		}
	}
	if (nrec) {
		cl->rec_list = calloc(nrec, sizeof(*cl->rec_list));
		if (!cl->rec_list) {
			log_fatal("out of memory applying map");
		}
		for (p = 1; p < 4096; p++) {
			if (!cl->pool_pgs[p]) {
				continue;
			}
			for (i = 0; i < CMAP_MAX_PGS; i++) {
				struct srv_pg *pg = cl->pool_pgs[p][i];

				if (pg && pg_needs_recovery(pg)) {
					cl->rec_list[cl->nrec++] = pg;
				}
			}
		}
	}
	log_info("map epoch %llu applied: %u servers, %u pools, %u PGs changed, %u to recover",
		 (unsigned long long)m->epoch, m->nservers, m->npools, ch.n, cl->nrec);
	srv_peer_map_changed(cl);
	for (i = 0; i < ch.n; i++) {
		srv_repl_pg_changed(cl, ch.v[i].pg, ch.v[i].gone);
		srv_recovery_pg_changed(cl, ch.v[i].pg, ch.v[i].gone);
	}
	if (old) {
		cmap_free(old);
	}
	srv_gc_map_changed(cl);
	srv_merge_map_changed(cl, ch.n > 0);
	free(ch.v);
	srv_recovery_kick(cl);
}

/* ---- mgmt session ---- */

static void mgmt_schedule_reconnect(struct srv_cluster *cl)
{
	cl->mbackoff_ns = cl->mbackoff_ns ? cl->mbackoff_ns * 2 : SRV_MGMT_BACKOFF_MIN_NS;
	if (cl->mbackoff_ns > SRV_MGMT_BACKOFF_MAX_NS) {
		cl->mbackoff_ns = SRV_MGMT_BACKOFF_MAX_NS;
	}
	cl->mretry_ns = reactor_now_ns() + cl->mbackoff_ns;
}

/* Our own requests to mgmt: one message each, its buffer guarded by a
 * busy flag (m->arg) until the send completes. */
static void mgmt_req_done(struct kp_msg *m, int res)
{
	*(bool *)m->arg = false;
}

static int mgmt_send_req(struct srv_cluster *cl, struct kp_msg *m, bool *busy, uint16_t opcode,
			 uint64_t req_id, const uint8_t *meta, size_t len)
{
	int ret;

	memset(m, 0, sizeof(*m));
	m->hdr.opcode = opcode;
	m->hdr.req_id = req_id;
	m->hdr.epoch = cl->epoch;
	m->hdr.meta_len = (uint32_t)len;
	m->meta = meta;
	m->done = mgmt_req_done;
	m->arg = busy;
	*busy = true;
	ret = kp_conn_send(cl->mkc, m);
	if (ret) {
		*busy = false;
	}
	return ret;
}

static void mgmt_map_reply_done(struct kp_msg *m, int res)
{
	struct srv_cluster *cl = m->arg;

	cl->mmap_reply_busy &= ~(1u << (unsigned int)(m - cl->mmap_reply));
}

static void mgmt_send_register(struct srv_cluster *cl)
{
	struct srv *s = cl->srv;
	Keel__RegisterRequest rr = KEEL__REGISTER_REQUEST__INIT;
	Keel__ServerInfo si = KEEL__SERVER_INFO__INIT;
	struct bs_stat st;
	uint8_t uuid[16];
	char host[64], addr[128];
	size_t len;
	int ret;

	if (cl->mreg_busy) {
		return;
	}
	bs_stat(s->bs, &st);
	bs_uuid(s->bs, uuid);
	if (cl->set.advertise[0]) {
		snprintf(addr, sizeof(addr), "%s", cl->set.advertise);
	} else {
		const char *la = s->listener && s->xops->listen_addr
					 ? s->xops->listen_addr(s->listener)
					 : cl->set.listen;

		snprintf(addr, sizeof(addr), "%s", la);
	}
	if (cl->set.host[0]) {
		snprintf(host, sizeof(host), "%s", cl->set.host);
	} else if (gethostname(host, sizeof(host))) {
		snprintf(host, sizeof(host), "localhost");
	}
	host[sizeof(host) - 1] = '\0';
	si.uuid.data = uuid;
	si.uuid.len = sizeof(uuid);
	si.addr = addr;
	si.host = host;
	si.rack = cl->set.rack;
	si.capacity_bytes = st.objects_total * st.object_size;
	si.object_size = st.object_size;
	si.used_bytes = st.objects_used * st.object_size;
	si.weight = cl->set.weight ? cl->set.weight : (uint32_t)(si.capacity_bytes >> 30);
	if (!si.weight) {
		si.weight = 1;
	}
	rr.info = &si;
	len = keel__register_request__get_packed_size(&rr);
	if (len > sizeof(cl->mreg_buf)) {
		log_error("register message too large (%zu bytes)", len);
		return;
	}
	keel__register_request__pack(&rr, cl->mreg_buf);
	ret = mgmt_send_req(cl, &cl->mreg, &cl->mreg_busy, KP_OP_MG_REGISTER, 1, cl->mreg_buf,
			    len);
	if (ret) {
		log_error("mgmt: cannot send MG_REGISTER: %s", strerror(-ret));
		return;
	}
	log_info("mgmt: registering as %s (host %s, rack %s, weight %u)", addr, host, si.rack,
		 si.weight);
}

static void mgmt_send_heartbeat(struct srv_cluster *cl)
{
	struct srv *s = cl->srv;
	Keel__Heartbeat hb = KEEL__HEARTBEAT__INIT;
	struct bs_stat st;
	uint64_t ops = 0;
	size_t len;
	unsigned int i;

	if (cl->mhb_busy || !cl->registered || !cl->mkc) {
		return;
	}
	bs_stat(s->bs, &st);
	for (i = 0; i < KP_OP__MAX; i++) {
		ops += s->ctr.ops[i];
	}
	hb.server_id = cl->self;
	hb.epoch = cl->epoch;
	hb.used_bytes = st.objects_used * st.object_size;
	hb.ops = ops;
	len = keel__heartbeat__pack(&hb, cl->mhb_buf);
	cl->hb_seq++;
	cl->hb_sent_ns[cl->hb_seq % 8] = reactor_now_ns();
	mgmt_send_req(cl, &cl->mhb, &cl->mhb_busy, KP_OP_MG_HEARTBEAT,
		      SRV_HB_REQID_BASE + cl->hb_seq, cl->mhb_buf, len);
}

static const char *pg_state_name(const struct srv_pg *pg)
{
	if (pg->rec) {
		return "recovering";
	}
	if ((uint32_t)__builtin_popcount(pg_up_in_sync(pg)) < pg->nmembers) {
		return "degraded";
	}
	return "active";
}

static void mgmt_send_report(struct srv_cluster *cl)
{
	Keel__PgReportBatch b = KEEL__PG_REPORT_BATCH__INIT;
	Keel__PgReport *reps, **ptrs;
	uint32_t *synced;
	unsigned int i, n = 0;
	size_t len;

	if (cl->mrep_busy || !cl->registered || !cl->mkc || !cl->nrec) {
		return;
	}
	reps = calloc(cl->nrec, sizeof(*reps));
	ptrs = calloc(cl->nrec, sizeof(*ptrs));
	synced = calloc(cl->nrec, sizeof(*synced));
	if (!reps || !ptrs || !synced) {
		goto out_free;
	}
	for (i = 0; i < cl->nrec; i++) {
		struct srv_pg *pg = cl->rec_list[i];

		if (pg->role != SRV_PG_PRIMARY) {
			continue;
		}
		keel__pg_report__init(&reps[n]);
		reps[n].pool = pg->pool;
		reps[n].pg = pg->pg;
		/* mgmt takes a report only for the PG's current interval
		 * (same primary and members as when we recovered) */
		reps[n].epoch = pg->interval;
		if (pg->synced_member) {
			synced[n] = pg->synced_member;
			reps[n].synced = &synced[n];
			reps[n].n_synced = 1;
		}
		reps[n].state = (char *)pg_state_name(pg);
		reps[n].objects_left = pg->objects_left;
		reps[n].bytes_left = pg->bytes_left;
		reps[n].bytes_copied = pg->bytes_copied;
		ptrs[n] = &reps[n];
		n++;
	}
	if (!n) {
		goto out_free;
	}
	b.n_pgs = n;
	b.pgs = ptrs;
	len = keel__pg_report_batch__get_packed_size(&b);
	if (len > KP_MAX_META) {
		log_warn("pg report of %zu bytes truncated", len);
		b.n_pgs = n = (unsigned int)((uint64_t)n * KP_MAX_META / len / 2);
		len = keel__pg_report_batch__get_packed_size(&b);
	}
	if (len > cl->mrep_cap) {
		free(cl->mrep_buf);
		cl->mrep_buf = malloc(len);
		cl->mrep_cap = cl->mrep_buf ? len : 0;
		if (!cl->mrep_buf) {
			goto out_free;
		}
	}
	keel__pg_report_batch__pack(&b, cl->mrep_buf);
	mgmt_send_req(cl, &cl->mrep, &cl->mrep_busy, KP_OP_MG_PG_REPORT, 3, cl->mrep_buf, len);
out_free:
	free(synced);
	free(ptrs);
	free(reps);
}

/* ---- usage reports (MG_USAGE) ---- */

struct usage_walk {
	struct layer_usage_tab tab;
	int err;
};

static void usage_walk_obj(const struct bs_obj_stat *st, void *arg)
{
	struct usage_walk *w = arg;

	if (!w->err) {
		w->err = layer_usage_add(&w->tab, st->inode, st->blocks_mapped);
	}
}

/*
 * Objects and bytes per layer from the in-memory index (one pass over it,
 * no I/O), under the current map's epoch. What fits in one meta (about
 * 3000 layers, layer_usage_select()): deleting layers first, then the
 * largest. Returns true when a report went out.
 */
static bool mgmt_send_usage(struct srv_cluster *cl)
{
	Keel__UsageReport ur = KEEL__USAGE_REPORT__INIT;
	Keel__LayerUsage *ents = NULL, **ptrs = NULL;
	Keel__MergeProgress merges[SRV_USAGE_MERGES], *mptrs[SRV_USAGE_MERGES];
	struct usage_walk w;
	unsigned int n, i;
	bool deleting_left = false, sent = false;
	size_t len;

	if (cl->musage_busy || !cl->registered || !cl->mkc || !cl->map) {
		return false;
	}
	memset(&w, 0, sizeof(w));
	bs_walk(cl->srv->bs, usage_walk_obj, &w);
	if (w.err) {
		log_warn("usage report: %s", strerror(-w.err));
		goto out_free;
	}
	layer_usage_compact(&w.tab);
	/* room for server_id and epoch (at most 6 + 11 bytes) and the merges
	 * (at most 48 bytes each) */
	n = layer_usage_select(cl->map, w.tab.v, w.tab.n, KP_MAX_META - 32 - 48 * SRV_USAGE_MERGES);
	if (n < w.tab.n) {
		log_debug("usage report: %u of %u layers (one meta holds no more)", n, w.tab.n);
	}
	ents = calloc(n + 1, sizeof(*ents));
	ptrs = calloc(n + 1, sizeof(*ptrs));
	if (!ents || !ptrs) {
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		keel__layer_usage__init(&ents[i]);
		ents[i].inode = w.tab.v[i].inode;
		ents[i].objects = w.tab.v[i].objects;
		ents[i].bytes = w.tab.v[i].blocks * BS_BLOCK;
		ptrs[i] = &ents[i];
		if (cmap_layer_state(cl->map, ents[i].inode) == CMAP_LAYER_DELETING) {
			deleting_left = true;
		}
	}
	ur.server_id = cl->self;
	ur.epoch = cl->epoch;
	ur.n_layers = n;
	ur.layers = ptrs;
	ur.n_merges = srv_merge_progress(cl, merges, SRV_USAGE_MERGES);
	for (i = 0; i < ur.n_merges; i++) {
		mptrs[i] = &merges[i];
	}
	ur.merges = mptrs;
	len = keel__usage_report__get_packed_size(&ur);
	kassert(len <= KP_MAX_META);
	if (len > cl->musage_cap) {
		free(cl->musage_buf);
		cl->musage_buf = malloc(len ? len : 1);
		cl->musage_cap = cl->musage_buf ? len : 0;
		if (!cl->musage_buf) {
			goto out_free;
		}
	}
	keel__usage_report__pack(&ur, cl->musage_buf);
	sent = !mgmt_send_req(cl, &cl->musage, &cl->musage_busy, KP_OP_MG_USAGE, 4, cl->musage_buf,
			      len);
	if (deleting_left) {
		srv_gc_rescan(cl); /* objects that came back (a push from an old map) */
	}
out_free:
	free(ptrs);
	free(ents);
	layer_usage_free(&w.tab);
	return sent;
}

void srv_cluster_usage_now(struct srv_cluster *cl)
{
	cl->next_usage_ns = 0;
}

void srv_cluster_report_now(struct srv_cluster *cl)
{
	cl->next_report_ns = 0;
}

static void mgmt_reply_status(struct srv_cluster *cl, const struct kp_hdr *h, int res)
{
	struct kp_msg *m;
	unsigned int i;

	for (i = 0; i < 4; i++) {
		if (!(cl->mmap_reply_busy & (1u << i))) {
			break;
		}
	}
	if (i == 4) {
		log_warn("mgmt: too many map replies in flight, dropping one");
		return;
	}
	m = &cl->mmap_reply[i];
	memset(m, 0, sizeof(*m));
	m->hdr.opcode = h->opcode;
	m->hdr.flags = KP_F_REPLY;
	m->hdr.status = kp_status_from_errno(res);
	m->hdr.req_id = h->req_id;
	m->hdr.epoch = cl->epoch;
	m->done = mgmt_map_reply_done;
	m->arg = cl;
	cl->mmap_reply_busy |= 1u << i;
	if (kp_conn_send(cl->mkc, m)) {
		cl->mmap_reply_busy &= ~(1u << i);
	}
}

static void mgmt_reply_held(struct srv_cluster *cl, int res)
{
	struct kp_hdr h;
	unsigned int i;

	memset(&h, 0, sizeof(h));
	h.opcode = KP_OP_MG_MAP;
	for (i = 0; i < cl->nheld; i++) {
		h.req_id = cl->held_map_reqs[i];
		mgmt_reply_status(cl, &h, res);
	}
	cl->nheld = 0;
}

/*
 * Answer a map push once no client mutation started under an earlier layer
 * list is in flight: mgmt counts a snapshot complete when every server
 * answered the map that froze it, so none may still be writing to it then.
 * Replies stay in order: while a drain runs every push waits for it.
 */
static void mgmt_reply_map(struct srv_cluster *cl, const struct kp_hdr *h)
{
	if (!cl->mut_old) {
		mgmt_reply_status(cl, h, 0);
		return;
	}
	if (cl->nheld == SRV_MAP_HELD) {
		/* mgmt has at most MG_PUSH_AWAIT (4) pushes awaiting a reply */
		struct kp_hdr o = *h;

		log_warn("mgmt: %u map replies held, answering the oldest ETIMEDOUT", cl->nheld);
		o.req_id = cl->held_map_reqs[0];
		mgmt_reply_status(cl, &o, -ETIMEDOUT);
		memmove(cl->held_map_reqs, cl->held_map_reqs + 1,
			(SRV_MAP_HELD - 1) * sizeof(cl->held_map_reqs[0]));
		cl->nheld--;
	}
	if (!cl->nheld) {
		cl->drain_deadline_ns = reactor_now_ns() + SRV_MAP_DRAIN_TIMEOUT_NS;
	}
	cl->held_map_reqs[cl->nheld++] = h->req_id;
	log_debug("mgmt: map epoch %llu: reply held until %llu mutations of earlier layer lists "
		  "complete",
		  (unsigned long long)cl->epoch, (unsigned long long)cl->mut_old);
}

void srv_cluster_drained(struct srv_cluster *cl)
{
	if (cl->nheld) {
		log_debug("mgmt: mutations of earlier layer lists done: %u map replies sent",
			  cl->nheld);
		mgmt_reply_held(cl, 0);
	}
}

/* Held too long: mutations that wait for a later map (a replica that
 * failed, to be removed by mgmt) cannot finish before mgmt gets our
 * reply, since it pushes one map at a time. ETIMEDOUT: the map is
 * applied, the drain is not done (a later push is answered OK once it is). */
static void mgmt_drain_check(struct srv_cluster *cl, uint64_t now)
{
	if (!cl->nheld || now < cl->drain_deadline_ns) {
		return;
	}
	log_warn("mgmt: map epoch %llu: %llu client mutations of earlier layer lists still in "
		 "flight after %llu ms: answering the map push ETIMEDOUT",
		 (unsigned long long)cl->epoch, (unsigned long long)cl->mut_old,
		 (unsigned long long)(SRV_MAP_DRAIN_TIMEOUT_NS / 1000000));
	mgmt_reply_held(cl, -ETIMEDOUT);
}

/* mgmt acknowledged heartbeat @req_id: the lease runs from its send time. */
static void mgmt_lease_renew(struct srv_cluster *cl, uint64_t req_id)
{
	uint64_t seq = req_id - SRV_HB_REQID_BASE, until;

	if (req_id <= SRV_HB_REQID_BASE || seq > cl->hb_seq || cl->hb_seq - seq >= 8) {
		return; /* not one of ours, or too old to know when it left */
	}
	until = cl->hb_sent_ns[seq % 8] + (uint64_t)cl->lease_ms * 1000000ull;
	if (until > cl->lease_until_ns) {
		if (cl->lease_lost_logged) {
			log_info("mgmt: primary lease renewed");
			cl->lease_lost_logged = false;
		}
		cl->lease_until_ns = until;
	}
}

bool srv_cluster_lease_valid(struct srv_cluster *cl)
{
	if (!cl->lease_ms || reactor_now_ns() < cl->lease_until_ns) {
		return true;
	}
	if (!cl->lease_lost_logged) {
		log_warn("mgmt: no heartbeat acknowledged for %u ms: primary lease expired, "
			 "client I/O refused (ESTALE) until mgmt answers again",
			 cl->lease_ms);
		cl->lease_lost_logged = true;
	}
	return false;
}

static void mgmt_on_register_reply(struct srv_cluster *cl, const struct kp_hdr *h,
				   const uint8_t *meta)
{
	Keel__RegisterReply *rr;
	struct cmap *m = NULL;
	char err[256];
	int ret;

	if (h->status != KP_S_OK) {
		log_error("mgmt: registration refused: %s",
			  strerror(-kp_status_to_errno(h->status)));
		kp_conn_close(cl->mkc, -EPERM, "registration refused");
		return;
	}
	rr = meta ? keel__register_reply__unpack(NULL, h->meta_len, meta) : NULL;
	if (!rr || !rr->server_id || rr->server_id > 65535 ||
	    (cl->self && rr->server_id != cl->self)) {
		log_error("mgmt: bad registration reply");
		if (rr) {
			keel__register_reply__free_unpacked(rr, NULL);
		}
		kp_conn_close(cl->mkc, -EPROTO, "bad registration reply");
		return;
	}
	if (!cl->self) {
		log_info("mgmt: registered as server %u", rr->server_id);
	}
	cl->self = rr->server_id;
	cl->registered = true;
	if (rr->lease_ms != cl->lease_ms) {
		log_info("mgmt: primary lease %u ms", rr->lease_ms);
		cl->lease_ms = rr->lease_ms;
	}
	cl->mbackoff_ns = 0;
	if (rr->map) {
		ret = cmap_from_pb(rr->map, &m, err, sizeof(err));
		if (ret) {
			log_error("mgmt: map in registration reply refused: %s", err);
		} else {
			cluster_apply_map(cl, m);
		}
	}
	keel__register_reply__free_unpacked(rr, NULL);
	mgmt_send_heartbeat(cl);
}

static void mgmt_on_msg(struct kp_conn *kc, const struct kp_hdr *h, const uint8_t *meta,
			const uint8_t *data, const uint32_t *crcs)
{
	struct srv_cluster *cl = kp_conn_arg(kc);
	struct cmap *m;
	char err[256];
	int ret;

	if (h->flags & KP_F_REPLY) {
		switch (h->opcode) {
		case KP_OP_MG_REGISTER:
			mgmt_on_register_reply(cl, h, meta);
			break;
		case KP_OP_MG_HEARTBEAT:
			if (h->status != KP_S_OK) {
				log_warn("mgmt: heartbeat refused: %s; registering again",
					 strerror(-kp_status_to_errno(h->status)));
				cl->registered = false;
				mgmt_send_register(cl);
				break;
			}
			mgmt_lease_renew(cl, h->req_id);
			break;
		case KP_OP_MG_PG_REPORT:
			if (h->status != KP_S_OK) {
				log_warn("mgmt: PG report refused: %s",
					 strerror(-kp_status_to_errno(h->status)));
			}
			break;
		case KP_OP_MG_USAGE:
			/* every 2 s: say it once (an mgmt without MG_USAGE
			 * answers ENOTSUP to each), again after an OK */
			if (h->status == KP_S_OK) {
				cl->usage_enotsup_logged = false;
			} else if (!cl->usage_enotsup_logged) {
				log_warn("mgmt: usage report refused: %s (reports continue, "
					 "logged again only after one is accepted)",
					 strerror(-kp_status_to_errno(h->status)));
				cl->usage_enotsup_logged = true;
			}
			break;
		default:
			break;
		}
		return;
	}
	if (h->opcode != KP_OP_MG_MAP) {
		mgmt_reply_status(cl, h, -ENOTSUP);
		return;
	}
	ret = cmap_unpack(meta, h->meta_len, &m, err, sizeof(err));
	if (ret) {
		log_error("mgmt: map refused: %s", ret == -EINVAL ? err : strerror(-ret));
		mgmt_reply_status(cl, h, ret);
		return;
	}
	if (!cl->self) {
		/* not registered yet: the registration reply carries the map */
		cmap_free(m);
		mgmt_reply_status(cl, h, 0);
		return;
	}
	cluster_apply_map(cl, m);
	mgmt_reply_map(cl, h);
}

static void mgmt_on_ready(struct kp_conn *kc)
{
	struct srv_cluster *cl = kp_conn_arg(kc);

	cl->mready = true;
	cl->mconnect_failing = false;
	log_info("mgmt: connected to %s", cl->set.mgmt);
	mgmt_send_register(cl);
}

static void mgmt_on_close(struct kp_conn *kc, int err, const char *reason)
{
	struct srv_cluster *cl = kp_conn_arg(kc);

	cl->mkc = NULL;
	cl->mready = false;
	cl->registered = false;
	cl->mreg_busy = cl->mhb_busy = cl->mrep_busy = cl->musage_busy = false;
	cl->mmap_reply_busy = 0;
	cl->nheld = 0; /* those pushes died with the connection */
	if (cl->stopping) {
		return;
	}
	mgmt_schedule_reconnect(cl);
	log_warn("mgmt: connection lost (%s); data path continues on map epoch %llu until "
		 "the primary lease runs out, reconnecting in %llu ms",
		 reason ? reason : "closed", (unsigned long long)cl->epoch,
		 (unsigned long long)(cl->mbackoff_ns / 1000000));
}

static const struct kp_conn_cbs mgmt_cbs = {
	.on_ready = mgmt_on_ready,
	.on_msg = mgmt_on_msg,
	.on_close = mgmt_on_close,
};

static void mgmt_connect(struct srv_cluster *cl)
{
	struct xport_conn *xc;
	int ret;

	ret = xport_tcp_ops.connect(cl->r, cl->set.mgmt, &xc);
	if (!ret) {
		ret = kp_conn_client(xc, cl->key, "keel-server", &mgmt_cbs, cl, &cl->mkc);
		if (ret) {
			xc->ops->close(xc, ret);
		}
	}
	if (ret) {
		if (!cl->mconnect_failing) {
			log_warn("mgmt: cannot connect to %s: %s; retrying every %llu ms at most",
				 cl->set.mgmt, strerror(-ret),
				 (unsigned long long)(SRV_MGMT_BACKOFF_MAX_NS / 1000000));
			cl->mconnect_failing = true;
		}
		cl->mkc = NULL;
		mgmt_schedule_reconnect(cl);
	}
}

/* ---- the tick: heartbeats, reports, peers, recovery ---- */

static void cluster_tick(struct reactor_timer *t)
{
	struct srv_cluster *cl = container_of(t, struct srv_cluster, tick);
	uint64_t now = reactor_now_ns();

	if (cl->stopping) {
		return;
	}
	if (!cl->mkc && now >= cl->mretry_ns) {
		mgmt_connect(cl);
	}
	if (cl->registered && now >= cl->next_hb_ns) {
		cl->next_hb_ns = now + SRV_HEARTBEAT_NS;
		mgmt_send_heartbeat(cl);
	}
	if (cl->lease_until_ns) {
		srv_cluster_lease_valid(cl); /* logs the expiry when it happens */
	}
	if (cl->nwrote && now >= cl->next_wrote_ns) {
		cl->next_wrote_ns = now + 1000000000ull;
		srv_repl_log_writers(cl);
	}
	if (cl->registered && now >= cl->next_report_ns) {
		cl->next_report_ns = now + SRV_REPORT_NS;
		mgmt_send_report(cl);
	}
	if (cl->registered && now >= cl->next_usage_ns && mgmt_send_usage(cl)) {
		cl->next_usage_ns = now + SRV_USAGE_NS;
	}
	mgmt_drain_check(cl, now);
	srv_gc_kick(cl);
	srv_merge_kick(cl);
	srv_peer_tick(cl, now);
	srv_recovery_kick(cl);
	reactor_timer_start(cl->r, &cl->tick, SRV_TICK_NS, cluster_tick);
}

int srv_cluster_start(struct srv *s, const struct srv_settings *set)
{
	struct srv_cluster *cl;
	uint32_t i;
	int ret;

	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		return -ENOMEM;
	}
	cl->srv = s;
	cl->r = s->r;
	cl->key = s->key;
	cl->set = *set;
	cl->objs = calloc(SRV_OBJS, sizeof(*cl->objs));
	cl->obj_hmask = SRV_OBJS * 2 - 1;
	cl->obj_hash = calloc(SRV_OBJS * 2, sizeof(*cl->obj_hash));
	if (!cl->objs || !cl->obj_hash) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (i = SRV_OBJS; i-- > 0;) {
		cl->objs[i].hnext = cl->obj_free;
		cl->obj_free = &cl->objs[i];
	}
	ret = srv_recovery_init(cl);
	if (ret) {
		goto out_fini_recovery;
	}
	ret = srv_gc_init(cl);
	if (ret) {
		goto out_fini_recovery;
	}
	ret = srv_merge_init(cl);
	if (ret) {
		goto out_fini_recovery;
	}
	s->cl = cl;
	log_info("cluster mode: mgmt %s, recovery_max_active %u, replica timeout %u ms", set->mgmt,
		 set->recovery_max_active, set->replica_timeout_ms);
	mgmt_connect(cl);
	reactor_timer_start(cl->r, &cl->tick, SRV_TICK_NS, cluster_tick);
	return 0;

out_fini_recovery:
	srv_merge_fini(cl);
	srv_gc_fini(cl);
	srv_recovery_fini(cl);
out_free:
	free(cl->obj_hash);
	free(cl->objs);
	free(cl);
	return ret;
}

void srv_cluster_stop(struct srv *s)
{
	struct srv_cluster *cl = s->cl;

	if (!cl || cl->stopping) {
		return;
	}
	cl->stopping = true;
	reactor_timer_cancel(cl->r, &cl->tick);
	srv_repl_log_writers(cl);
	/* Requests still waiting (replicas, min_replicas) hold their
	 * connections open: answer them now, the client retries elsewhere. */
	for (uint32_t p = 1; p < 4096; p++) {
		if (!cl->pool_pgs[p]) {
			continue;
		}
		for (uint32_t i = 0; i < CMAP_MAX_PGS; i++) {
			struct srv_pg *pg = cl->pool_pgs[p][i];

			if (pg && (pg->active || pg->wait_head)) {
				srv_repl_pg_changed(cl, pg, true);
			}
		}
	}
	if (cl->mkc) {
		kp_conn_close(cl->mkc, 0, "server shutting down");
	}
	srv_peer_close_all(cl);
}
