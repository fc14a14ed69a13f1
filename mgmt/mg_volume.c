/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Volumes and snapshots (docs/volumes.md, docs/api.md): create, clone,
 * snapshot, revert, flatten, resize, rename, delete. Every change is one
 * store transaction together with the in-memory layer table; a change of
 * the non-writable layer set is published as a new map, and a change that
 * froze a layer answers only once every up server fenced its writers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "common/log.h"
#include "mgmt/mg_api.h"
#include "mgmt/mg_space.h"

#define MG_LAYER_MAX 0xffffu /* layer numbers per family */
#define MG_CHANGED_MAX (MG_MAX_CHAIN + 8)

/* ---- one change: rows + the new layer table ---- */

struct mg_vchange {
	struct mg_layers layers; /* the table after the change */
	struct mg_meta meta;
	bool has_meta;
	struct mg_volume_rec vol_add, vol_upd[2];
	bool has_vol_add;
	unsigned int n_vol_upd;
	char vol_del[CMAP_NAME_LEN];
	uint64_t vol_del_id;
	struct mg_snap_rec snap_add;
	bool has_snap_add;
	uint64_t snap_del;
	uint64_t family;
	uint32_t family_next;
	uint64_t changed[MG_CHANGED_MAX]; /* layer rows to write */
	unsigned int nchanged;
	bool publish; /* the non-writable set changed */
	struct mg_pool *pool_has_data; /* set the pool's has_data flag */
};

static int mg_vchange_init(struct mg_cluster *c, struct mg_vchange *ch)
{
	memset(ch, 0, sizeof(*ch));
	ch->meta = c->meta;
	return mg_layers_copy(&ch->layers, &c->layers);
}

static void mg_vchange_touch(struct mg_vchange *ch, uint64_t inode)
{
	for (unsigned int i = 0; i < ch->nchanged; i++) {
		if (ch->changed[i] == inode) {
			return;
		}
	}
	if (ch->nchanged < MG_CHANGED_MAX) {
		ch->changed[ch->nchanged++] = inode;
	}
}

/* Cascade from @inode; the layers it marks deleting change the map. */
static void mg_vchange_cascade(struct mg_cluster *c, struct mg_vchange *ch, uint64_t inode)
{
	uint64_t gone[MG_MAX_CHAIN + 1];
	uint32_t n = mg_layer_cascade(&ch->layers, inode, gone, MG_MAX_CHAIN + 1);

	for (uint32_t i = 0; i < n; i++) {
		struct mg_layer *l = mg_layer_find(&ch->layers, gone[i]);

		l->deleting_epoch = c->meta.epoch + 1;
		l->deleting_ns = reactor_now_ns();
		mg_vchange_touch(ch, gone[i]);
		ch->publish = true;
	}
}

/* A new layer number of @family. -ENOSPC when the family has used all. */
static int mg_vchange_new_layer(struct mg_cluster *c, struct mg_vchange *ch, uint64_t family,
				uint64_t parent, bool top, uint64_t *inode)
{
	struct mg_layer l = {.parent = parent, .top = top, .created_at = mg_wall_ms() / 1000};
	uint32_t next;
	int ret;

	if (ch->family && ch->family != family) {
		return -EINVAL; /* one family per change */
	}
	if (ch->family) {
		next = ch->family_next;
	} else {
		ret = mg_store_get_family(c->st, family, &next);
		if (ret == -ENOENT) {
			next = 0;
		} else if (ret) {
			return ret;
		}
	}
	if (next > MG_LAYER_MAX) {
		return -ENOSPC;
	}
	l.inode = family << 16 | next;
	ret = mg_layer_add(&ch->layers, &l);
	if (ret) {
		return ret;
	}
	ch->family = family;
	ch->family_next = next + 1;
	mg_vchange_touch(ch, l.inode);
	*inode = l.inode;
	return 0;
}

/* Freeze @inode (a volume's top) into a read-only layer. */
static void mg_vchange_freeze(struct mg_vchange *ch, uint64_t inode)
{
	struct mg_layer *l = mg_layer_find(&ch->layers, inode);

	l->state = CMAP_LAYER_RO;
	l->top = false;
	mg_vchange_touch(ch, inode);
	ch->publish = true;
}

static int mg_vchange_save(struct mg_cluster *c, void *arg)
{
	struct mg_vchange *ch = arg;
	int ret = 0;

	if (ch->vol_del[0]) {
		ret = mg_store_delete_volume(c->st, ch->vol_del);
	}
	if (!ret && ch->has_vol_add) {
		ret = mg_store_add_volume(c->st, &ch->vol_add);
	}
	for (unsigned int i = 0; !ret && i < ch->n_vol_upd; i++) {
		ret = mg_store_update_volume(c->st, &ch->vol_upd[i]);
	}
	if (!ret && ch->snap_del) {
		ret = mg_store_delete_snap(c->st, ch->snap_del);
	}
	if (!ret && ch->has_snap_add) {
		ret = mg_store_add_snap(c->st, &ch->snap_add);
	}
	if (!ret && ch->family) {
		ret = mg_store_put_family(c->st, ch->family, ch->family_next);
	}
	for (unsigned int i = 0; !ret && i < ch->nchanged; i++) {
		const struct mg_layer *l = mg_layer_find(&ch->layers, ch->changed[i]);
		struct mg_layer_rec r = {
			.inode = l->inode,
			.parent = l->parent,
			.state = l->state,
			.created_at = l->created_at,
		};

		ret = mg_store_put_layer(c->st, &r);
	}
	if (!ret && ch->pool_has_data) {
		struct mg_pool_rec pr = ch->pool_has_data->rec;

		pr.has_data = true;
		ret = mg_store_put_pool(c->st, &pr);
	}
	if (!ret && ch->has_meta) {
		ret = mg_store_put_meta(c->st, &c->meta);
	}
	return ret;
}

/* Apply @ch: one transaction (with a new map if the layer states changed).
 * Frees ch->layers either way. 0 or a negative errno (nothing changed). */
static int mg_vchange_commit(struct mg_cluster *c, struct mg_vchange *ch, const char *reason)
{
	struct mg_layers old = c->layers;
	struct mg_meta old_meta = c->meta;
	uint64_t old_top[2], old_del_top = 0;
	int ret;

	/* Merges follow every layer change (docs/volumes.md): started or
	 * cancelled in the same map. */
	if (mg_merge_plan(&ch->layers, mg_merge_family_pool, c, c->meta.epoch + 1)) {
		ch->publish = true;
	}
	/* The fences of the next map follow the volumes' new tops. */
	for (unsigned int i = 0; i < ch->n_vol_upd; i++) {
		old_top[i] = mg_attach_fence_top(c, ch->vol_upd[i].id, ch->vol_upd[i].top);
	}
	if (ch->vol_del_id) {
		old_del_top = mg_attach_fence_top(c, ch->vol_del_id, 0);
	}
	/* The counters go into c->meta first: a publish writes c->meta. */
	c->layers = ch->layers;
	c->meta.next_volume_id = ch->meta.next_volume_id;
	c->meta.next_snapshot_id = ch->meta.next_snapshot_id;
	if (ch->publish) {
		ret = mg_cluster_publish(c, NULL, reason, mg_vchange_save, ch);
	} else {
		ret = mg_store_begin(c->st);
		if (!ret) {
			ret = mg_vchange_save(c, ch);
			if (ret) {
				mg_store_rollback(c->st);
			} else {
				ret = mg_store_commit(c->st);
			}
		}
	}
	if (ret) {
		for (unsigned int i = 0; i < ch->n_vol_upd; i++) {
			if (old_top[i]) {
				mg_attach_fence_top(c, ch->vol_upd[i].id, old_top[i]);
			}
		}
		if (old_del_top) {
			mg_attach_fence_top(c, ch->vol_del_id, old_del_top);
		}
		c->layers = old;
		c->meta.next_volume_id = old_meta.next_volume_id;
		c->meta.next_snapshot_id = old_meta.next_snapshot_id;
		mg_layers_free(&ch->layers);
		return ret;
	}
	mg_layers_free(&old);
	memset(&ch->layers, 0, sizeof(ch->layers));
	mg_merge_jobs_sync(c, reason);
	if (ch->pool_has_data) {
		/* From now on new PG members must be recovered, not assumed in
		 * sync (docs/cluster.md). */
		ch->pool_has_data->rec.has_data = true;
	}
	return 0;
}

/* ---- lookups and views ---- */

static void mg_new_uuid(char out[MG_UUID_LEN])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

/* Volume by name or uuid; sets an error reply when absent. */
static int mg_volume_lookup(struct mg_cluster *c, struct mg_api_req *req, const char *key,
			    struct mg_volume_rec *v)
{
	char msg[MG_API_ERR_LEN];
	int ret;

	ret = strlen(key) < MG_UUID_LEN ? mg_store_get_volume(c->st, key, v) : -ENOENT;
	if (ret) {
		snprintf(msg, sizeof(msg), "volume '%.64s' %s", key,
			 ret == -ENOENT ? "not found" : "cannot be read");
		mg_api_error(req, ret, msg);
	}
	return ret;
}

/* Snapshot "VOLUME@NAME", or NAME of volume @v (when @v is given), or a
 * snapshot uuid; with @v, only a snapshot of @v. Sets an error reply when
 * absent. */
static int mg_snap_lookup(struct mg_cluster *c, struct mg_api_req *req,
			  const struct mg_volume_rec *v, const char *key, struct mg_snap_rec *sn)
{
	char msg[MG_API_ERR_LEN], vol[CMAP_NAME_LEN];
	const char *at = strchr(key, '@');
	struct mg_volume_rec vv;
	int ret = -ENOENT;

	if (at && (size_t)(at - key) < sizeof(vol)) {
		snprintf(vol, sizeof(vol), "%.*s", (int)(at - key), key);
		if (!mg_store_get_volume(c->st, vol, &vv) && strlen(at + 1) < CMAP_NAME_LEN) {
			ret = mg_store_get_snap(c->st, vv.id, at + 1, sn);
		}
		/* Under a volume (its path, a revert), VOL@SNAP must name one
		 * of its own snapshots, as a bare name or a uuid must. */
		if (!ret && v && sn->volume_id != v->id) {
			ret = -ENOENT;
		}
	} else if (!at && strlen(key) < MG_UUID_LEN) {
		ret = v ? mg_store_get_snap(c->st, v->id, key, sn) : -ENOENT;
		if (ret == -ENOENT) {
			ret = mg_store_get_snap(c->st, 0, key, sn);
			if (!ret && v && sn->volume_id != v->id) {
				ret = -ENOENT;
			}
		}
	}
	if (ret) {
		snprintf(msg, sizeof(msg), "snapshot '%.64s' %s", key,
			 ret == -ENOENT ? "not found" : "cannot be read");
		mg_api_error(req, ret, msg);
	}
	return ret;
}

static json_t *mg_chain_json(struct mg_cluster *c, uint64_t inode)
{
	uint64_t parents[MG_MAX_CHAIN];
	uint32_t n = mg_layer_chain(&c->layers, inode, parents, MG_MAX_CHAIN);
	json_t *a = json_array();

	for (uint32_t i = 0; i < n; i++) {
		json_array_append_new(a, json_integer((json_int_t)parents[i]));
	}
	return a;
}

/* Logical bytes a layer holds: the servers' copies / replicas. */
static uint64_t mg_layer_allocated(struct mg_cluster *c, uint64_t inode, uint32_t pool_id)
{
	const struct mg_layer *l = mg_layer_find(&c->layers, inode);
	const struct mg_pool *p = mg_cluster_pool(c, pool_id);

	if (!l || !p || !p->rec.replicas) {
		return 0;
	}
	return l->bytes / p->rec.replicas;
}

static json_t *mg_qos_json(int64_t v)
{
	return v < 0 ? json_null() : json_integer((json_int_t)v);
}

/* The limit keel-client enforces: the volume's own, else its pool's. */
static uint64_t mg_qos_effective(int64_t own, uint64_t pool)
{
	return own < 0 ? pool : (uint64_t)own;
}

json_t *mg_volume_json(struct mg_cluster *c, const struct mg_volume_rec *v)
{
	const struct mg_pool *p = mg_cluster_pool(c, v->pool);
	unsigned int nattach = 0;
	json_t *j;

	mg_attach_count(c, v->id, &nattach);
	j = json_pack("{s:I,s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:o,s:s*,s:s,s:s,s:I,s:o}", "id",
		      (json_int_t)v->id, "uuid", v->uuid, "name", v->name, "size",
		      (json_int_t)v->size, "pool", p ? p->rec.name : "?", "pool_id",
		      (json_int_t)v->pool, "object_size", (json_int_t)v->object_size, "inode",
		      (json_int_t)v->top, "parents", mg_chain_json(c, v->top), "origin",
		      v->origin[0] ? v->origin : NULL, "description", v->description, "status",
		      nattach ? "in-use" : "available", "allocated_bytes",
		      (json_int_t)mg_layer_allocated(c, v->top, v->pool), "created_at",
		      mg_api_iso_time(v->created_at * 1000));
	if (j) {
		json_object_set_new(j, "qos_iops", mg_qos_json(v->qos_iops));
		json_object_set_new(j, "qos_bps", mg_qos_json(v->qos_bps));
		json_object_set_new(j, "effective_qos_iops",
				    json_integer((json_int_t)mg_qos_effective(
					    v->qos_iops, p ? p->rec.qos_iops : 0)));
		json_object_set_new(j, "effective_qos_bps",
				    json_integer((json_int_t)mg_qos_effective(
					    v->qos_bps, p ? p->rec.qos_bps : 0)));
	}
	return j;
}

static json_t *mg_snap_json(struct mg_cluster *c, const struct mg_snap_rec *sn)
{
	struct mg_volume_rec v;
	uint64_t alloc = 0;

	if (!mg_store_get_volume_id(c->st, sn->volume_id, &v)) {
		alloc = mg_layer_allocated(c, sn->inode, v.pool);
	}
	return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:I,s:s,s:o}", "id", sn->uuid, "name",
			 sn->name, "full_name", "", "volume", sn->volume, "size",
			 (json_int_t)sn->size, "inode", (json_int_t)sn->inode, "description",
			 sn->description, "allocated_bytes", (json_int_t)alloc, "status",
			 "available", "created_at", mg_api_iso_time(sn->created_at * 1000));
}

static json_t *mg_snap_json_full(struct mg_cluster *c, const struct mg_snap_rec *sn)
{
	json_t *j = mg_snap_json(c, sn);
	char full[CMAP_NAME_LEN * 2 + 2];

	snprintf(full, sizeof(full), "%s@%s", sn->volume, sn->name);
	json_object_set_new(j, "full_name", json_string(full));
	return j;
}

/* ---- answering after the fence ---- */

struct mg_fence_reply {
	struct mg_api_req *req;
	int status;
	json_t *body;
	char what[160];
};

static void mg_fence_done(struct mg_cluster *c, void *arg, int res)
{
	struct mg_fence_reply *fr = arg;

	if (res) {
		/* The change is committed; a server that neither answered nor
		 * was declared down within 30 s may still accept writes to the
		 * frozen layer until it is. Say so rather than pretend. */
		log_warn("%s: not every server confirmed the new map within 30 s (%s)", fr->what,
			 strerror(-res));
		if (fr->body) {
			json_object_set_new(fr->body, "fenced", json_false());
		}
	}
	mg_api_reply(fr->req, fr->status, fr->body);
	mg_api_finish(fr->req);
	free(fr);
	(void)c;
}

void mg_reply_fenced(struct mg_cluster *c, struct mg_api_req *req, int status, json_t *body,
		     const char *what)
{
	struct mg_fence_reply *fr = calloc(1, sizeof(*fr));

	if (!fr) {
		mg_api_reply(req, status, body);
		return;
	}
	fr->req = req;
	fr->status = status;
	fr->body = body;
	snprintf(fr->what, sizeof(fr->what), "%s", what);
	mg_api_defer(req);
	if (mg_fence_wait(c, c->meta.epoch, mg_fence_done, fr)) {
		req->pending = false;
		free(fr);
		mg_api_reply(req, status, body);
	}
}

/* ---- handlers ---- */

static int mg_volume_collect(void *arg, const struct mg_volume_rec *v)
{
	void **ctx = arg;

	json_array_append_new(ctx[1], mg_volume_json(ctx[0], v));
	return 0;
}

static void mg_h_volumes(struct mg_cluster *c, struct mg_api_req *req)
{
	void *ctx[2] = {c, json_array()};
	int ret;

	ret = mg_store_each_volume(c->st, mg_volume_collect, ctx);
	if (ret) {
		json_decref(ctx[1]);
		mg_api_error(req, ret, "cannot read volumes");
		return;
	}
	mg_api_reply(req, 200, ctx[1]);
}

static void mg_h_volume_get(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_volume_rec v;

	if (!mg_volume_lookup(c, req, req->arg, &v)) {
		mg_api_reply(req, 200, mg_volume_json(c, &v));
	}
}

static int mg_check_description(const char *d, char *err, size_t errlen)
{
	if (strlen(d) >= MG_DESC_LEN) {
		snprintf(err, errlen, "description is longer than %d bytes", MG_DESC_LEN - 1);
		return -EINVAL;
	}
	return 0;
}

struct mg_create_args {
	const char *name, *pool, *description, *snapshot, *source;
	uint64_t size, object_size;
	int64_t qos_iops, qos_bps; /* MG_QOS_POOL unless given */
	bool has_size, has_pool, has_object_size;
};

static int mg_create_parse(json_t *body, struct mg_create_args *a, char *err, size_t errlen)
{
	static const char *const known[] = {
		"name",	    "size",	     "pool",	 "object_size", "description",
		"snapshot", "source_volume", "qos_iops", "qos_bps",	NULL};
	bool present;
	int ret;

	memset(a, 0, sizeof(*a));
	a->qos_iops = a->qos_bps = MG_QOS_POOL;
	a->pool = "default";
	a->description = "";
	a->object_size = MG_OBJECT_SIZE_DEFAULT;
	ret = mg_api_fields_known(body, known, err, errlen);
	if (!ret) {
		ret = mg_api_field_str(body, "name", true, &a->name, err, errlen);
	}
	if (!ret) {
		a->has_size = json_object_get(body, "size") != NULL;
		ret = mg_api_field_u64(body, "size", false, &a->size, err, errlen);
	}
	if (!ret) {
		a->has_pool = json_object_get(body, "pool") != NULL;
		ret = mg_api_field_str(body, "pool", false, &a->pool, err, errlen);
	}
	if (!ret) {
		a->has_object_size = json_object_get(body, "object_size") != NULL;
		ret = mg_api_field_u64(body, "object_size", false, &a->object_size, err, errlen);
	}
	if (!ret) {
		ret = mg_api_field_str(body, "description", false, &a->description, err, errlen);
	}
	if (!ret) {
		ret = mg_api_field_str(body, "snapshot", false, &a->snapshot, err, errlen);
	}
	if (!ret) {
		ret = mg_api_field_str(body, "source_volume", false, &a->source, err, errlen);
	}
	if (!ret) {
		ret = mg_api_field_qos(body, "qos_iops", false, true, &present, &a->qos_iops, err,
				       errlen);
	}
	if (!ret) {
		ret = mg_api_field_qos(body, "qos_bps", true, true, &present, &a->qos_bps, err,
				       errlen);
	}
	if (!ret) {
		ret = mg_check_name("volume", a->name, err, errlen);
	}
	if (!ret) {
		ret = mg_check_description(a->description, err, errlen);
	}
	if (!ret && a->snapshot && a->source) {
		snprintf(err, errlen, "give snapshot or source_volume, not both");
		ret = -EINVAL;
	}
	if (!ret && !a->snapshot && !a->source && !a->has_size) {
		snprintf(err, errlen, "size is required");
		ret = -EINVAL;
	}
	if (!ret && a->has_size) {
		ret = mg_check_volume_size(a->size, err, errlen);
	}
	if (!ret && !a->snapshot && !a->source) {
		ret = mg_check_object_size(a->object_size, err, errlen);
	}
	return ret;
}

/* A clone shares its origin's family: same pool, same object size. */
static int mg_clone_shape(const struct mg_create_args *a, const struct mg_volume_rec *src,
			  uint64_t min_size, struct mg_cluster *c, char *err, size_t errlen)
{
	const struct mg_pool *p = mg_cluster_pool(c, src->pool);

	if (a->has_pool && (!p || strcmp(a->pool, p->rec.name))) {
		snprintf(err, errlen, "a clone lives in its origin's pool ('%s')",
			 p ? p->rec.name : "?");
		return -EINVAL;
	}
	if (a->has_object_size && a->object_size != src->object_size) {
		snprintf(err, errlen, "a clone has its origin's object size (%u)", src->object_size);
		return -EINVAL;
	}
	if (a->has_size && a->size < min_size) {
		snprintf(err, errlen, "size %llu is smaller than the origin's %llu bytes",
			 (unsigned long long)a->size, (unsigned long long)min_size);
		return -EINVAL;
	}
	return 0;
}

/* The smallest blockstore object size among the servers in the cluster
 * that registered since mgmt started (keel-server format --object-size),
 * and a server that has it; 0 when none reported one. A volume's objects
 * must fit it. */
static uint32_t mg_servers_object_size(const struct mg_cluster *c, uint32_t *server_id)
{
	uint32_t smallest = 0;

	for (uint32_t i = 0; i < c->nservers; i++) {
		const struct mg_server *s = &c->servers[i];

		if (s->rec.in && s->object_size && (!smallest || s->object_size < smallest)) {
			smallest = s->object_size;
			*server_id = s->rec.id;
		}
	}
	return smallest;
}

static void mg_h_volume_create(struct mg_cluster *c, struct mg_api_req *req)
{
	char err[MG_API_ERR_LEN], reason[160];
	struct mg_create_args a;
	struct mg_volume_rec v, old, src;
	struct mg_snap_rec sn;
	struct mg_vchange ch;
	struct mg_pool *pool = NULL;
	uint64_t family, parent = 0, src_top = 0;
	uint32_t smallest, sid = 0;
	int ret;

	ret = mg_create_parse(req->body, &a, err, sizeof(err));
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	ret = mg_store_get_volume(c->st, a.name, &old);
	if (ret != -ENOENT) {
		snprintf(err, sizeof(err), "volume '%s' %s", a.name,
			 ret ? "cannot be checked" : "already exists");
		mg_api_error(req, ret ? ret : -EEXIST, err);
		return;
	}
	ret = 0;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", a.name);
	snprintf(v.description, sizeof(v.description), "%s", a.description);
	mg_new_uuid(v.uuid);
	v.created_at = mg_wall_ms() / 1000;
	v.qos_iops = a.qos_iops; /* a clone does not inherit its origin's */
	v.qos_bps = a.qos_bps;
	if (a.snapshot) {
		if (mg_snap_lookup(c, req, NULL, a.snapshot, &sn) ||
		    mg_store_get_volume_id(c->st, sn.volume_id, &src)) {
			return;
		}
		ret = mg_clone_shape(&a, &src, sn.size, c, err, sizeof(err));
		parent = sn.inode;
		v.size = a.has_size ? a.size : sn.size;
		snprintf(v.origin, sizeof(v.origin), "%s", sn.uuid);
	} else if (a.source) {
		if (mg_volume_lookup(c, req, a.source, &src)) {
			return;
		}
		ret = mg_clone_shape(&a, &src, src.size, c, err, sizeof(err));
		parent = src_top = src.top;
		v.size = a.has_size ? a.size : src.size;
		snprintf(v.origin, sizeof(v.origin), "%s", src.uuid);
	} else {
		pool = mg_cluster_pool_by_name(c, a.pool);
		if (!pool) {
			snprintf(err, sizeof(err), "pool '%.64s' not found", a.pool);
			ret = -ENOENT;
		}
		v.size = a.size;
		v.object_size = (uint32_t)a.object_size;
		smallest = mg_servers_object_size(c, &sid);
		if (smallest && v.object_size > smallest) {
			if (!a.has_object_size) {
				v.object_size = smallest; /* the default, unless theirs is smaller */
			} else if (!ret) {
				snprintf(err, sizeof(err),
					 "object_size %u is larger than server %u's blockstore objects "
					 "(%u bytes, keel-server format --object-size): use %u or less",
					 v.object_size, sid, smallest, smallest);
				ret = -EINVAL;
			}
		}
	}
	if (!ret && parent &&
	    mg_layer_chain(&c->layers, parent, NULL, MG_MAX_CHAIN) >= MG_MAX_CHAIN - 1) {
		snprintf(err, sizeof(err),
			 "the origin is %d layers deep: flatten it before cloning it again",
			 MG_MAX_CHAIN);
		ret = -ERANGE;
	}
	if (!ret) {
		ret = mg_space_admit(c, pool ? pool->rec.id : src.pool, v.size, err, sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	if (c->meta.next_volume_id > MG_VOLUME_ID_MAX) {
		mg_api_error(req, -ENOSPC, "no volume ids left");
		return;
	}
	ret = mg_vchange_init(c, &ch);
	if (ret) {
		mg_api_error(req, ret, "out of memory");
		return;
	}
	v.id = ch.meta.next_volume_id++;
	ch.has_meta = true;
	if (parent) {
		v.pool = src.pool;
		v.object_size = src.object_size;
		family = parent >> 16;
	} else {
		pool = mg_cluster_pool_by_name(c, a.pool);
		v.pool = pool->rec.id;
		family = v.id;
	}
	if (src_top) {
		/* Clone of a live volume: freeze its top, give it a new one. */
		uint64_t new_top;

		mg_vchange_freeze(&ch, src_top);
		ret = mg_vchange_new_layer(c, &ch, family, src_top, true, &new_top);
		src.top = new_top;
		ch.vol_upd[ch.n_vol_upd++] = src;
	}
	if (!ret) {
		ret = mg_vchange_new_layer(c, &ch, family, parent, true, &v.top);
	}
	if (ret) {
		mg_layers_free(&ch.layers);
		mg_api_error(req, ret,
			     ret == -ENOSPC ? "the volume family has used all 65535 layer numbers"
					    : "cannot create the layer");
		return;
	}
	ch.vol_add = v;
	ch.has_vol_add = true;
	if (!parent && !pool->rec.has_data) {
		ch.pool_has_data = pool;
	}
	snprintf(reason, sizeof(reason), "volume '%s' created%s%s", v.name,
		 parent ? " from " : "", a.snapshot ? a.snapshot : a.source ? a.source : "");
	ret = mg_vchange_commit(c, &ch, reason);
	if (ret) {
		snprintf(err, sizeof(err), "volume '%s' %s", v.name,
			 ret == -EEXIST ? "already exists" : "not created");
		mg_api_error(req, ret, err);
		return;
	}
	log_info("volume %llu '%s' created: %llu bytes, layer %#" PRIx64 "%s%s",
		 (unsigned long long)v.id, v.name, (unsigned long long)v.size, v.top,
		 parent ? ", clone of " : "", a.snapshot ? a.snapshot : a.source ? a.source : "");
	if (src_top) {
		mg_reply_fenced(c, req, 201, mg_volume_json(c, &v), reason);
	} else {
		mg_api_reply(req, 201, mg_volume_json(c, &v));
	}
}

static int mg_snap_counter(void *arg, const struct mg_snap_rec *sn)
{
	(*(unsigned int *)arg)++;
	(void)sn;
	return 0;
}

static void mg_h_volume_delete(struct mg_cluster *c, struct mg_api_req *req)
{
	char msg[MG_API_ERR_LEN], reason[96];
	unsigned int nattach = 0, nsnaps = 0;
	struct mg_volume_rec v;
	struct mg_vchange ch;
	int ret;

	if (mg_volume_lookup(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_attach_count(c, v.id, &nattach);
	if (!ret && nattach) {
		snprintf(msg, sizeof(msg), "volume '%s' is attached to %u host%s: detach it first",
			 v.name, nattach, nattach == 1 ? "" : "s");
		mg_api_error(req, -EBUSY, msg);
		return;
	}
	if (!ret) {
		ret = mg_store_each_snap(c->st, v.id, mg_snap_counter, &nsnaps);
	}
	if (!ret && nsnaps) {
		snprintf(msg, sizeof(msg),
			 "volume '%s' has %u snapshot%s: delete them first (clones of them stay)",
			 v.name, nsnaps, nsnaps == 1 ? "" : "s");
		mg_api_error(req, -EBUSY, msg);
		return;
	}
	if (!ret) {
		ret = mg_vchange_init(c, &ch);
	}
	if (!ret) {
		mg_layer_find(&ch.layers, v.top)->top = false;
		mg_vchange_cascade(c, &ch, v.top);
		snprintf(ch.vol_del, sizeof(ch.vol_del), "%s", v.name);
		ch.vol_del_id = v.id;
		snprintf(reason, sizeof(reason), "volume '%s' deleted", v.name);
		ret = mg_vchange_commit(c, &ch, reason);
	}
	if (ret) {
		snprintf(msg, sizeof(msg), "volume '%s' not deleted", v.name);
		mg_api_error(req, ret, msg);
		return;
	}
	log_info("volume '%s' deleted; its data is freed in the background", v.name);
	mg_reply_fenced(c, req, 204, NULL, reason);
}

static void mg_h_snap_create(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"name", "description", NULL};
	const char *name = NULL, *desc = "";
	char err[MG_API_ERR_LEN], reason[160];
	struct mg_volume_rec v;
	struct mg_snap_rec sn, old;
	struct mg_vchange ch;
	uint64_t frozen;
	int ret;

	if (mg_volume_lookup(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_str(req->body, "name", true, &name, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "description", false, &desc, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_check_name("snapshot", name, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_check_description(desc, err, sizeof(err));
	}
	if (!ret && mg_layer_chain(&c->layers, v.top, NULL, MG_MAX_CHAIN) >= MG_MAX_CHAIN - 1) {
		snprintf(err, sizeof(err),
			 "volume '%s' is %d layers deep: flatten it or delete old snapshots first",
			 v.name, MG_MAX_CHAIN);
		ret = -ERANGE;
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	ret = mg_store_get_snap(c->st, v.id, name, &old);
	if (ret != -ENOENT) {
		snprintf(err, sizeof(err), "volume '%s' %s snapshot '%s'", v.name,
			 ret ? "cannot check for" : "already has", name);
		mg_api_error(req, ret ? ret : -EEXIST, err);
		return;
	}
	ret = mg_vchange_init(c, &ch);
	if (ret) {
		mg_api_error(req, ret, "out of memory");
		return;
	}
	memset(&sn, 0, sizeof(sn));
	sn.id = ch.meta.next_snapshot_id++;
	ch.has_meta = true;
	mg_new_uuid(sn.uuid);
	snprintf(sn.name, sizeof(sn.name), "%s", name);
	snprintf(sn.volume, sizeof(sn.volume), "%s", v.name);
	snprintf(sn.description, sizeof(sn.description), "%s", desc);
	sn.volume_id = v.id;
	sn.inode = frozen = v.top;
	sn.size = v.size;
	sn.created_at = mg_wall_ms() / 1000;
	mg_vchange_freeze(&ch, frozen);
	mg_layer_find(&ch.layers, frozen)->nsnaps++;
	ret = mg_vchange_new_layer(c, &ch, frozen >> 16, frozen, true, &v.top);
	if (ret) {
		mg_layers_free(&ch.layers);
		mg_api_error(req, ret,
			     ret == -ENOSPC ? "the volume family has used all 65535 layer numbers"
					    : "cannot create the layer");
		return;
	}
	ch.vol_upd[ch.n_vol_upd++] = v;
	ch.snap_add = sn;
	ch.has_snap_add = true;
	snprintf(reason, sizeof(reason), "snapshot '%s@%s'", v.name, name);
	ret = mg_vchange_commit(c, &ch, reason);
	if (ret) {
		snprintf(err, sizeof(err), "snapshot '%s@%s' not taken", v.name, name);
		mg_api_error(req, ret, err);
		return;
	}
	log_info("snapshot '%s@%s': layer %#" PRIx64 " frozen, new top %#" PRIx64, v.name, name,
		 frozen, v.top);
	mg_reply_fenced(c, req, 201, mg_snap_json_full(c, &sn), reason);
}

static int mg_snap_collect(void *arg, const struct mg_snap_rec *sn)
{
	void **ctx = arg;

	json_array_append_new(ctx[1], mg_snap_json_full(ctx[0], sn));
	return 0;
}

static void mg_h_snaps(struct mg_cluster *c, struct mg_api_req *req, bool of_volume)
{
	void *ctx[2] = {c, json_array()};
	struct mg_volume_rec v = {.id = 0};
	int ret;

	if (of_volume && mg_volume_lookup(c, req, req->arg, &v)) {
		json_decref(ctx[1]);
		return;
	}
	ret = mg_store_each_snap(c->st, v.id, mg_snap_collect, ctx);
	if (ret) {
		json_decref(ctx[1]);
		mg_api_error(req, ret, "cannot read snapshots");
		return;
	}
	mg_api_reply(req, 200, ctx[1]);
}

/* The snapshot of a /v1/volumes/{v}/snapshots/{s} or /v1/snapshots/{s} path. */
static int mg_snap_of_path(struct mg_cluster *c, struct mg_api_req *req, struct mg_snap_rec *sn)
{
	struct mg_volume_rec v;

	if (req->route == MG_R_VOLUME_SNAPSHOT) {
		if (mg_volume_lookup(c, req, req->arg, &v)) {
			return -ENOENT;
		}
		return mg_snap_lookup(c, req, &v, req->arg2, sn);
	}
	return mg_snap_lookup(c, req, NULL, req->arg, sn);
}

static void mg_h_snap_get(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_snap_rec sn;

	if (!mg_snap_of_path(c, req, &sn)) {
		mg_api_reply(req, 200, mg_snap_json_full(c, &sn));
	}
}

static void mg_h_snap_delete(struct mg_cluster *c, struct mg_api_req *req)
{
	char msg[MG_API_ERR_LEN], reason[160];
	struct mg_layer *layer;
	struct mg_snap_rec sn;
	struct mg_vchange ch;
	bool kept;
	int ret;

	if (mg_snap_of_path(c, req, &sn)) {
		return;
	}
	ret = mg_vchange_init(c, &ch);
	if (!ret) {
		mg_layer_find(&ch.layers, sn.inode)->nsnaps--;
		mg_vchange_cascade(c, &ch, sn.inode);
		kept = mg_layer_find(&ch.layers, sn.inode)->state != CMAP_LAYER_DELETING;
		ch.snap_del = sn.id;
		snprintf(reason, sizeof(reason), "snapshot '%s@%s' deleted", sn.volume, sn.name);
		ret = mg_vchange_commit(c, &ch, reason);
	}
	if (ret) {
		snprintf(msg, sizeof(msg), "snapshot '%s@%s' not deleted", sn.volume, sn.name);
		mg_api_error(req, ret, msg);
		return;
	}
	layer = mg_layer_find(&c->layers, sn.inode);
	if (kept && layer && layer->merge_into) {
		struct mg_job *j;

		mg_merge_job_name(c, sn.inode, sn.volume, sn.name);
		j = mg_merge_job_find(c, sn.inode);
		log_info("snapshot '%s@%s' deleted; its layer merges into %#" PRIx64, sn.volume,
			 sn.name, layer->merge_into);
		mg_reply_fenced(c, req, 202, j ? mg_job_json(j) : NULL, reason);
		return;
	}
	log_info("snapshot '%s@%s' deleted%s", sn.volume, sn.name,
		 kept ? "; its layer stays while volumes depend on it"
		      : "; its data is freed in the background");
	mg_reply_fenced(c, req, 204, NULL, reason);
}

struct mg_top_find {
	uint64_t top;
	struct mg_volume_rec v;
};

static int mg_top_find_cb(void *arg, const struct mg_volume_rec *v)
{
	struct mg_top_find *f = arg;

	if (v->top != f->top) {
		return 0;
	}
	f->v = *v;
	return 1;
}

int mg_volume_merge_complete(struct mg_cluster *c, uint64_t inode)
{
	struct mg_layer *s, *child;
	struct mg_vchange ch;
	char reason[160];
	uint64_t into;
	bool flat;
	int ret;

	ret = mg_vchange_init(c, &ch);
	if (ret) {
		return ret;
	}
	s = mg_layer_find(&ch.layers, inode);
	child = s && s->merge_into ? mg_layer_find(&ch.layers, s->merge_into) : NULL;
	if (!child || child->parent != inode) {
		mg_layers_free(&ch.layers);
		return -ESTALE;
	}
	into = child->inode;
	flat = child->flattening;
	/* The child holds every block it read from the layer now: it reads
	 * through the layer's parent instead, and the layer, with no child
	 * left, is deleted (readers with the old chain get EROFS and reopen;
	 * once it is freed and dropped, a read through it finds nothing
	 * there and the child's own copy of every block comes first). */
	child->parent = s->parent;
	mg_vchange_touch(&ch, into);
	s->merge_into = 0;
	s->merge_pool = 0;
	s->merge_epoch = 0;
	mg_vchange_cascade(c, &ch, inode);
	if (!flat && mg_layer_find(&ch.layers, inode)->state != CMAP_LAYER_DELETING) {
		mg_layers_free(&ch.layers);
		return -EBUSY;
	}
	if (flat && !child->parent) {
		/* the online flatten's last step: the volume is no clone now */
		struct mg_top_find f = {.top = into};

		if (mg_store_each_volume(c->st, mg_top_find_cb, &f) > 0 && f.v.origin[0]) {
			f.v.origin[0] = '\0';
			ch.vol_upd[ch.n_vol_upd++] = f.v;
		}
	}
	ch.publish = true;
	snprintf(reason, sizeof(reason), "layer %#" PRIx64 " merged into %#" PRIx64, inode, into);
	ret = mg_vchange_commit(c, &ch, reason);
	if (!ret) {
		log_info("%s: the child reads through %#" PRIx64 " now", reason,
			 mg_layer_find(&c->layers, into)->parent);
	}
	return ret;
}

static void mg_h_volume_resize(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"size", "allow_shrink", NULL};
	char err[MG_API_ERR_LEN];
	struct mg_volume_rec v;
	struct mg_vchange ch;
	bool shrink = false;
	uint64_t size = 0, old;
	int ret;

	if (mg_volume_lookup(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_u64(req->body, "size", true, &size, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_bool(req->body, "allow_shrink", &shrink, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_check_volume_size(size, err, sizeof(err));
	}
	if (!ret && size < v.size && !shrink) {
		snprintf(err, sizeof(err),
			 "size %llu is smaller than the volume's %llu bytes: data past it would be "
			 "lost; pass allow_shrink to shrink anyway",
			 (unsigned long long)size, (unsigned long long)v.size);
		ret = -EINVAL;
	}
	if (!ret && size > v.size) {
		ret = mg_space_admit(c, v.pool, size - v.size, err, sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	old = v.size;
	v.size = size;
	ret = mg_vchange_init(c, &ch);
	if (!ret) {
		ch.vol_upd[ch.n_vol_upd++] = v;
		ret = mg_vchange_commit(c, &ch, "resize");
	}
	if (ret) {
		mg_api_error(req, ret, "volume not resized");
		return;
	}
	log_info("volume '%s' resized from %llu to %llu bytes", v.name, (unsigned long long)old,
		 (unsigned long long)size);
	mg_api_reply(req, 200, mg_volume_json(c, &v));
}

static void mg_h_volume_rename(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"name", "description", NULL};
	const char *name = NULL, *desc = NULL;
	char err[MG_API_ERR_LEN], old[CMAP_NAME_LEN];
	struct mg_volume_rec v, other;
	struct mg_vchange ch;
	int ret;

	if (mg_volume_lookup(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_str(req->body, "name", false, &name, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "description", false, &desc, err, sizeof(err));
	}
	if (!ret && name) {
		ret = mg_check_name("volume", name, err, sizeof(err));
	}
	if (!ret && desc) {
		ret = mg_check_description(desc, err, sizeof(err));
	}
	if (!ret && name && strcmp(name, v.name) && !mg_store_get_volume(c->st, name, &other)) {
		snprintf(err, sizeof(err), "volume '%s' already exists", name);
		ret = -EEXIST;
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	snprintf(old, sizeof(old), "%s", v.name);
	if (name) {
		snprintf(v.name, sizeof(v.name), "%s", name);
	}
	if (desc) {
		snprintf(v.description, sizeof(v.description), "%s", desc);
	}
	ret = mg_vchange_init(c, &ch);
	if (!ret) {
		ch.vol_upd[ch.n_vol_upd++] = v;
		ret = mg_vchange_commit(c, &ch, "rename");
	}
	if (ret) {
		mg_api_error(req, ret, ret == -EEXIST ? "name taken" : "volume not updated");
		return;
	}
	if (strcmp(old, v.name)) {
		log_info("volume '%s' renamed to '%s'", old, v.name);
	}
	mg_api_reply(req, 200, mg_volume_json(c, &v));
}

/* POST /v1/volumes/{name}/qos {"iops"?, "bps"?}: a number (0 = unlimited)
 * or null (the pool's); an absent one stays. keel-client applies it at its
 * next attachment poll. */
static void mg_h_volume_qos(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"iops", "bps", NULL};
	char err[MG_API_ERR_LEN];
	struct mg_volume_rec v;
	struct mg_vchange ch;
	int64_t iops = MG_QOS_POOL, bps = MG_QOS_POOL;
	bool has_iops = false, has_bps = false;
	int ret;

	if (mg_volume_lookup(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_qos(req->body, "iops", false, true, &has_iops, &iops, err,
				       sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_qos(req->body, "bps", true, true, &has_bps, &bps, err,
				       sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	if (has_iops) {
		v.qos_iops = iops;
	}
	if (has_bps) {
		v.qos_bps = bps;
	}
	ret = mg_vchange_init(c, &ch);
	if (!ret) {
		ch.vol_upd[ch.n_vol_upd++] = v;
		ret = mg_vchange_commit(c, &ch, "qos");
	}
	if (ret) {
		mg_api_error(req, ret, "volume limits not changed");
		return;
	}
	log_info("volume '%s': QoS limits %lld IOPS, %lld bytes/s (-1 = the pool's, 0 = "
		 "unlimited)",
		 v.name, (long long)v.qos_iops, (long long)v.qos_bps);
	mg_api_reply(req, 200, mg_volume_json(c, &v));
}

static void mg_h_volume_revert(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"snapshot", NULL};
	char err[MG_API_ERR_LEN], reason[160];
	unsigned int nattach = 0;
	const char *snap = NULL;
	struct mg_volume_rec v;
	struct mg_snap_rec sn;
	struct mg_vchange ch;
	uint64_t old_top;
	int ret;

	if (mg_volume_lookup(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_str(req->body, "snapshot", true, &snap, err, sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	if (mg_snap_lookup(c, req, &v, snap, &sn)) {
		return;
	}
	ret = mg_attach_count(c, v.id, &nattach);
	if (!ret && nattach) {
		snprintf(err, sizeof(err),
			 "volume '%s' is attached: detach it before reverting it (its guest would "
			 "see its disk change under it)",
			 v.name);
		mg_api_error(req, -EBUSY, err);
		return;
	}
	ret = mg_vchange_init(c, &ch);
	if (ret) {
		mg_api_error(req, ret, "out of memory");
		return;
	}
	old_top = v.top;
	ret = mg_vchange_new_layer(c, &ch, sn.inode >> 16, sn.inode, true, &v.top);
	if (!ret) {
		mg_layer_find(&ch.layers, old_top)->top = false;
		mg_vchange_cascade(c, &ch, old_top);
		v.size = sn.size;
		ch.vol_upd[ch.n_vol_upd++] = v;
		snprintf(reason, sizeof(reason), "volume '%s' reverted to snapshot '%s'", v.name,
			 sn.name);
		ret = mg_vchange_commit(c, &ch, reason);
	} else {
		mg_layers_free(&ch.layers);
	}
	if (ret) {
		mg_api_error(req, ret, "volume not reverted");
		return;
	}
	log_info("%s: new top %#" PRIx64 ", old top %#" PRIx64 " released", reason, v.top,
		 old_top);
	mg_reply_fenced(c, req, 200, mg_volume_json(c, &v), reason);
}

/* The last step of `keelctl volume flatten`, after it copied every block
 * the top reads from its parents into the top: drop the parent link.
 * @parent must name the current parent (a guard against racing changes). */
/* POST .../flatten {"online": true}: merge the top's parents into it on
 * the servers, nearest first, while the volume stays in use (a job). */
static void mg_h_volume_flatten_online(struct mg_cluster *c, struct mg_api_req *req,
				       const struct mg_volume_rec *v)
{
	char err[MG_API_ERR_LEN], reason[160];
	struct mg_vchange ch;
	struct mg_layer *top = mg_layer_find(&c->layers, v->top);
	struct mg_job *j;
	int ret;

	if (!top || !top->parent) {
		snprintf(err, sizeof(err), "volume '%s' has no parent: nothing to flatten",
			 v->name);
		mg_api_error(req, -EINVAL, err);
		return;
	}
	j = mg_flatten_job_find(c, v->top);
	if (top->flattening && j) {
		mg_api_reply(req, 202, mg_job_json(j)); /* already running */
		return;
	}
	ret = mg_vchange_init(c, &ch);
	if (!ret) {
		mg_layer_find(&ch.layers, v->top)->flattening = true;
		snprintf(reason, sizeof(reason), "online flatten of volume '%s'", v->name);
		ret = mg_vchange_commit(c, &ch, reason);
	}
	if (ret) {
		mg_api_error(req, ret, "volume not flattened");
		return;
	}
	log_info("%s started (top %#" PRIx64 ")", reason, v->top);
	j = mg_flatten_job_find(c, v->top);
	mg_api_reply(req, 202, j ? mg_job_json(j) : NULL);
}

static void mg_h_volume_flatten(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"parent", "online", NULL};
	char err[MG_API_ERR_LEN], reason[160];
	struct mg_volume_rec v;
	struct mg_vchange ch;
	struct mg_layer *top;
	uint64_t parent = 0;
	json_t *online;
	int ret;

	if (mg_volume_lookup(c, req, req->arg, &v)) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	online = json_object_get(req->body, "online");
	if (!ret && online && !json_is_boolean(online)) {
		snprintf(err, sizeof(err), "'online' must be true or false");
		ret = -EINVAL;
	}
	if (!ret && json_is_true(online)) {
		mg_h_volume_flatten_online(c, req, &v);
		return;
	}
	if (!ret) {
		ret = mg_api_field_u64(req->body, "parent", true, &parent, err, sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	top = mg_layer_find(&c->layers, v.top);
	if (!top || !top->parent || top->parent != parent) {
		snprintf(err, sizeof(err), "volume '%s' has parent %#" PRIx64 ", not %#" PRIx64,
			 v.name, top ? top->parent : 0, parent);
		mg_api_error(req, -ESTALE, err);
		return;
	}
	ret = mg_vchange_init(c, &ch);
	if (!ret) {
		mg_layer_find(&ch.layers, v.top)->parent = 0;
		mg_vchange_touch(&ch, v.top);
		mg_vchange_cascade(c, &ch, parent);
		v.origin[0] = '\0';
		ch.vol_upd[ch.n_vol_upd++] = v;
		/* Readers with the old chain keep reading correctly (the top
		 * holds every block now); the map change tells them nothing
		 * new, so publish only when a parent became deleting. */
		snprintf(reason, sizeof(reason), "volume '%s' flattened", v.name);
		ret = mg_vchange_commit(c, &ch, reason);
	}
	if (ret) {
		mg_api_error(req, ret, "volume not flattened");
		return;
	}
	log_info("%s (parent %#" PRIx64 " released)", reason, parent);
	mg_reply_fenced(c, req, 200, mg_volume_json(c, &v), reason);
}

static void mg_h_layers(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const states[] = {"writable", "read-only", "deleting"};
	json_t *a = json_array();

	for (uint32_t i = 0; i < c->layers.n; i++) {
		const struct mg_layer *l = &c->layers.v[i];

		json_array_append_new(
			a, json_pack("{s:I,s:I,s:I,s:s,s:b,s:I,s:I,s:I,s:I}", "inode",
				     (json_int_t)l->inode, "family", (json_int_t)(l->inode >> 16),
				     "parent", (json_int_t)l->parent, "state",
				     states[l->state <= 2 ? l->state : 0], "top", l->top,
				     "snapshots", (json_int_t)l->nsnaps, "objects",
				     (json_int_t)l->objects, "stored_bytes", (json_int_t)l->bytes,
				     "merging_into", (json_int_t)l->merge_into));
	}
	mg_api_reply(req, 200, a);
}

void mg_volume_handle(struct mg_cluster *c, struct mg_api_req *req)
{
	bool post = req->method == MG_M_POST;

	switch (req->route) {
	case MG_R_VOLUMES:
		post ? mg_h_volume_create(c, req) : mg_h_volumes(c, req);
		break;
	case MG_R_VOLUME:
		req->method == MG_M_DELETE ? mg_h_volume_delete(c, req) : mg_h_volume_get(c, req);
		break;
	case MG_R_VOLUME_SNAPSHOTS:
		post ? mg_h_snap_create(c, req) : mg_h_snaps(c, req, true);
		break;
	case MG_R_SNAPSHOTS:
		mg_h_snaps(c, req, false);
		break;
	case MG_R_VOLUME_SNAPSHOT:
	case MG_R_SNAPSHOT:
		req->method == MG_M_DELETE ? mg_h_snap_delete(c, req) : mg_h_snap_get(c, req);
		break;
	case MG_R_VOLUME_RESIZE:
		mg_h_volume_resize(c, req);
		break;
	case MG_R_VOLUME_RENAME:
		mg_h_volume_rename(c, req);
		break;
	case MG_R_VOLUME_REVERT:
		mg_h_volume_revert(c, req);
		break;
	case MG_R_VOLUME_FLATTEN:
		mg_h_volume_flatten(c, req);
		break;
	case MG_R_VOLUME_QOS:
		mg_h_volume_qos(c, req);
		break;
	case MG_R_LAYERS:
		mg_h_layers(c, req);
		break;
	default:
		mg_api_error(req, -ENOENT, "no such resource");
		break;
	}
}
