/* SPDX-License-Identifier: Apache-2.0 */
/* srv_pg: PG view and the data path's pure decisions (srv_pg.h). */
#include "server/srv_pg.h"

#include <errno.h>
#include <string.h>

const struct cmap_server *pg_map_server(const struct cmap *m, uint32_t id)
{
	uint32_t lo = 0, hi = m->nservers;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (m->servers[mid].id == id) {
			return &m->servers[mid];
		}
		if (m->servers[mid].id < id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return NULL;
}

bool pg_view_update(struct srv_pg *pg, const struct cmap *m, const struct cmap_pool *pool,
		    const struct cmap_pg *cpg, uint32_t self)
{
	int idx = -1;
	uint32_t i, up = 0;

	for (i = 0; i < cpg->nmembers && i < CMAP_MAX_REPLICAS; i++) {
		const struct cmap_server *s = pg_map_server(m, cpg->members[i]);

		if (cpg->members[i] == self) {
			idx = (int)i;
		}
		if (s && s->up) {
			up |= 1u << i;
		}
	}
	if (idx < 0) {
		return false;
	}
	pg->pool = pool->id;
	pg->pg = cpg->pg;
	pg->pg_count = pool->pg_count;
	pg->interval = cpg->interval;
	pg->primary = cpg->primary;
	pg->nmembers = cpg->nmembers;
	memcpy(pg->members, cpg->members, sizeof(pg->members));
	pg->in_sync = cpg->in_sync;
	pg->up = up;
	pg->min_replicas = pool->min_replicas;
	pg->self = idx;
	pg->role = cpg->primary == self ? SRV_PG_PRIMARY : SRV_PG_REPLICA;
	return true;
}

bool pg_view_changed(const struct srv_pg *old, const struct srv_pg *pg)
{
	return old->role != pg->role || old->interval != pg->interval ||
	       old->primary != pg->primary || old->nmembers != pg->nmembers ||
	       memcmp(old->members, pg->members, sizeof(pg->members)) ||
	       old->in_sync != pg->in_sync || old->up != pg->up ||
	       old->min_replicas != pg->min_replicas;
}

int pg_check_client(const struct srv_pg *pg, uint64_t map_epoch, uint64_t req_epoch)
{
	if (req_epoch > map_epoch) {
		return -ESTALE;
	}
	if (!pg || pg->role != SRV_PG_PRIMARY) {
		return -ESTALE;
	}
	if (req_epoch < pg->interval) {
		return -ESTALE;
	}
	return 0;
}

int pg_check_replica(const struct srv_pg *pg, uint64_t map_epoch, uint64_t req_epoch,
		     uint32_t sender)
{
	if (req_epoch > map_epoch) {
		return -EAGAIN;
	}
	if (!pg) {
		return -ESTALE;
	}
	if (req_epoch < pg->interval) {
		return -ESTALE;
	}
	/* req_epoch >= interval: the primary has not changed since the
	 * sender's map, so it must be the sender. */
	if (!sender || pg->primary != sender) {
		return -ESTALE;
	}
	return 0;
}

uint64_t pg_next_version(uint64_t last, uint64_t interval, uint64_t cur)
{
	uint64_t v = interval << 32;

	if (last > v) {
		v = last;
	}
	if (cur > v) {
		v = cur;
	}
	return v + 1;
}

uint32_t pg_up_in_sync(const struct srv_pg *pg)
{
	return pg->up & pg->in_sync;
}

bool pg_writable(const struct srv_pg *pg)
{
	/* up members, recovering ones included: a recovering member takes a
	 * write only when its copy of the object equals ours (previous-
	 * version check, else the object is pushed first) */
	return pg->role == SRV_PG_PRIMARY &&
	       (uint32_t)__builtin_popcount(pg->up) >= pg->min_replicas &&
	       (pg->self >= 0 && (pg->in_sync & (1u << pg->self)));
}

static int pg_index(const struct srv_pg *pg, uint32_t id)
{
	uint32_t i;

	for (i = 0; i < pg->nmembers; i++) {
		if (pg->members[i] == id) {
			return (int)i;
		}
	}
	return -1;
}

bool pg_member_up(const struct srv_pg *pg, uint32_t id)
{
	int i = pg_index(pg, id);

	return i >= 0 && i != pg->self && (pg->up & (1u << i));
}

bool pg_member_in_sync(const struct srv_pg *pg, uint32_t id)
{
	int i = pg_index(pg, id);

	return i >= 0 && (pg->in_sync & (1u << i));
}

bool pg_write_complete(const struct srv_pg *pg, const uint32_t *sent, const bool *done,
		       const bool *behind, unsigned int nsent, bool local_done)
{
	uint32_t have = 0, need;
	unsigned int k;

	if (!local_done || pg->self < 0) {
		return false;
	}
	have |= 1u << pg->self;
	for (k = 0; k < nsent; k++) {
		int i = pg_index(pg, sent[k]);

		if (i < 0 || i == pg->self || !(pg->up & (1u << i))) {
			continue; /* the map removed it (or it is down): not waited for */
		}
		if (behind && behind[k] && !done[k]) {
			if (pg->in_sync & (1u << i)) {
				return false; /* in sync meanwhile: it must have it */
			}
			continue;
		}
		if (!done[k]) {
			return false;
		}
		have |= 1u << i;
	}
	need = pg->min_replicas;
	return (uint32_t)__builtin_popcount(have) >= need;
}

unsigned int pg_diff_runs(const uint64_t *pv, const uint64_t *rv, uint32_t nblk, uint32_t max_run,
			  struct pg_run *out, unsigned int max)
{
	unsigned int n = 0;
	uint32_t b = 0;

	if (!max_run) {
		return 0;
	}
	while (b < nblk && n < max) {
		uint32_t e;

		if (pv[b] == rv[b]) {
			b++;
			continue;
		}
		e = b + 1;
		while (e < nblk && pv[e] != rv[e] && e - b < max_run) {
			e++;
		}
		out[n].blk = b;
		out[n].nblk = e - b;
		n++;
		b = e;
	}
	return n;
}

static int ent_cmp(uint64_t ai, uint64_t ao, uint64_t bi, uint64_t bo)
{
	if (ai != bi) {
		return ai < bi ? -1 : 1;
	}
	if (ao != bo) {
		return ao < bo ? -1 : 1;
	}
	return 0;
}

static bool within(const struct pg_obj_ent *e, bool all, uint64_t bi, uint64_t bo)
{
	return all || ent_cmp(e->inode, e->objno, bi, bo) <= 0;
}

unsigned int pg_list_diff(const struct pg_obj_ent *local, unsigned int nl,
			  const struct pg_obj_ent *remote, unsigned int nr, bool bound_all,
			  uint64_t bound_inode, uint64_t bound_objno, struct pg_obj_todo *out,
			  unsigned int max)
{
	unsigned int i = 0, j = 0, n = 0;

	while (n < max) {
		bool li = i < nl && within(&local[i], bound_all, bound_inode, bound_objno);
		bool rj = j < nr && within(&remote[j], bound_all, bound_inode, bound_objno);
		int c;

		if (!li && !rj) {
			break;
		}
		if (li && rj) {
			c = ent_cmp(local[i].inode, local[i].objno, remote[j].inode,
				    remote[j].objno);
		} else {
			c = li ? -1 : 1;
		}
		if (c == 0) {
			if (local[i].version != remote[j].version) {
				out[n++] = (struct pg_obj_todo){local[i].inode, local[i].objno,
								PG_OBJ_PUSH, local[i].blocks};
			}
			i++;
			j++;
		} else if (c < 0) {
			out[n++] = (struct pg_obj_todo){local[i].inode, local[i].objno, PG_OBJ_PUSH,
							local[i].blocks};
			i++;
		} else {
			out[n++] = (struct pg_obj_todo){remote[j].inode, remote[j].objno,
							PG_OBJ_DELETE, 0};
			j++;
		}
	}
	return n;
}
