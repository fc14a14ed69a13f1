/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-fsx: a model-based random test of volumes, snapshots and clones
 * (issue "Volume management", docs/testing.md), in the spirit of fsx.
 *
 * One seeded stream of operations runs against a live cluster (libkeel for
 * data, the REST API for snapshots and clones, keelctl for flatten) and,
 * in lockstep, against an in-memory model: every volume and every
 * snapshot is a byte array. Every read (of a volume or of a snapshot view)
 * is compared with the model; the first difference stops the run with the
 * operation log. With --cluster-dir, a random server is SIGKILLed every
 * --kill-every operations and restarted --kill-every/3 operations later.
 *
 * Exit 0: every read matched; 1: a divergence or an operation failed;
 * 2: usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "client/libkeel.h"
#include "common/log.h"
#include "proto/rest.h"

#define FSX_MAX_VOLS	 4
#define FSX_MAX_SNAPS	 6 /* per volume */
#define FSX_MAX_IO	 (256u * 1024)
#define FSX_OBJECT_SIZE	 (256u * 1024)
#define FSX_BLOCK	 4096u
#define FSX_LOG		 32 /* operations remembered for a failure report */

struct fsx_snap {
	char name[32];
	uint64_t size;
	uint8_t *data;
	struct keel_sync *view; /* VOLUME@SNAP, opened on first read */
};

struct fsx_vol {
	bool live;
	char name[48];
	uint64_t size;
	uint8_t *data;
	struct keel_sync *s;
	struct fsx_snap snaps[FSX_MAX_SNAPS];
	unsigned int nsnaps;
	bool has_parent; /* a clone (or has snapshots): flatten has work */
};

struct fsx {
	const char *url, *key_file, *keelctl, *cluster_dir, *lc, *prefix;
	uint64_t seed, rng;
	uint64_t ops, op;
	uint64_t kill_every;
	unsigned int nservers;
	int killed; /* server id down, 0 = none */
	uint64_t restart_at;
	struct fsx_vol vols[FSX_MAX_VOLS];
	unsigned int nvol_created, nsnap_created;
	uint8_t *buf;
	char oplog[FSX_LOG][160];
	uint64_t counts[16];
	bool verbose;
	unsigned int max_chain; /* longest chain seen after a snapshot */
	unsigned int max_chain_limit; /* --max-chain: fail above it (0: no limit) */
	uint64_t deep_refusals; /* snapshots refused at the chain limit */
	char token[256]; /* API token ($KEEL_TOKEN, $KEEL_TOKEN_FILE, ...) */
};

enum fsx_opk {
	OP_WRITE, OP_READ, OP_DISCARD, OP_ZERO, OP_FLUSH, OP_RESIZE, OP_SNAP, OP_CLONE,
	OP_REVERT, OP_SNAPDEL, OP_FLATTEN, OP_SNAPREAD, OP_VOLDEL, OP__N
};

static const char *const fsx_op_names[OP__N] = {
	"write", "read", "discard", "write_zeroes", "flush", "resize", "snapshot",
	"clone", "revert", "delete_snapshot", "flatten", "read_snapshot", "delete_volume",
};

/* Weights per 1000 operations. */
static const unsigned int fsx_weights[OP__N] = {
	[OP_WRITE] = 363, [OP_READ] = 300,   [OP_DISCARD] = 50, [OP_ZERO] = 50,
	[OP_FLUSH] = 40,  [OP_RESIZE] = 8,   [OP_SNAP] = 30,	[OP_CLONE] = 12,
	[OP_REVERT] = 12, [OP_SNAPDEL] = 25, [OP_FLATTEN] = 2,	[OP_SNAPREAD] = 60,
	[OP_VOLDEL] = 8,
};

static uint64_t rnd(struct fsx *f)
{
	/* xorshift64* */
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 2685821657736338717ull;
}

static uint64_t rnd_below(struct fsx *f, uint64_t n)
{
	return n ? rnd(f) % n : 0;
}

static void oplog(struct fsx *f, const char *fmt, ...)
{
	char *line = f->oplog[f->op % FSX_LOG];
	int n = snprintf(line, sizeof(f->oplog[0]), "#%" PRIu64 " ", f->op);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(f->oplog[0]) - (size_t)n, fmt, ap);
	va_end(ap);
	if (f->verbose) {
		printf("%s\n", line);
		fflush(stdout);
	}
}

static void __attribute__((noreturn)) fsx_fail(struct fsx *f, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "keel-fsx: FAIL at operation %" PRIu64 " (seed %" PRIu64 "): ", f->op,
		f->seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nlast operations:\n");
	for (uint64_t i = f->op >= FSX_LOG ? f->op - FSX_LOG + 1 : 0; i <= f->op; i++) {
		fprintf(stderr, "  %s\n", f->oplog[i % FSX_LOG]);
	}
	exit(1);
}

/* ---- REST ---- */

/* A snapshot delete answers 202 (a merge job started, docs/volumes.md
 * "Merging a deleted snapshot") or 204: @want FSX_HTTP_GONE takes both. */
#define FSX_HTTP_GONE 1

/* @want: the HTTP status expected; with @deep set, a 400 "layers deep"
 * refusal (the 64-layer chain limit) is expected too: *deep = true. */
static json_t *api_deep(struct fsx *f, const char *method, const char *path, json_t *body,
			int want, bool *deep)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct rest_resp r;
	char err[256];
	json_t *out;

	json_decref(body);
	if (rest_call(f->url, f->token, method, path, text, &r, err, sizeof(err))) {
		free(text);
		fsx_fail(f, "%s %s: %s", method, path, err);
	}
	free(text);
	if (deep) {
		*deep = r.status == 400 && r.text && strstr(r.text, "layers deep");
		if (*deep) {
			rest_resp_free(&r);
			return NULL;
		}
	}
	if (r.status != want && !(want == FSX_HTTP_GONE && (r.status == 202 || r.status == 204))) {
		fsx_fail(f, "%s %s: HTTP %ld (want %d): %s", method, path, r.status, want,
			 r.text ? r.text : "");
	}
	out = r.json ? json_incref(r.json) : NULL;
	rest_resp_free(&r);
	return out;
}

static json_t *api(struct fsx *f, const char *method, const char *path, json_t *body, int want)
{
	return api_deep(f, method, path, body, want, NULL);
}

/* ---- cluster faults ---- */

static void lc(struct fsx *f, const char *cmd, int id)
{
	char line[1024];

	snprintf(line, sizeof(line), "%s %s %d --dir %s%s >/dev/null 2>&1", f->lc, cmd, id,
		 f->cluster_dir, strcmp(cmd, "stop-server") ? "" : " --signal KILL");
	if (system(line)) {
		fsx_fail(f, "%s failed", line);
	}
}

static void faults(struct fsx *f)
{
	if (!f->cluster_dir || !f->kill_every) {
		return;
	}
	if (f->killed && f->op >= f->restart_at) {
		oplog(f, "restart server %d", f->killed);
		lc(f, "start-server", f->killed);
		printf("op %" PRIu64 ": server %d restarted\n", f->op, f->killed);
		f->killed = 0;
	} else if (!f->killed && f->op && f->op % f->kill_every == 0) {
		f->killed = 1 + (int)rnd_below(f, f->nservers);
		oplog(f, "SIGKILL server %d", f->killed);
		lc(f, "stop-server", f->killed);
		printf("op %" PRIu64 ": server %d killed\n", f->op, f->killed);
		f->restart_at = f->op + f->kill_every / 3;
	}
}

/* ---- volumes ---- */

static struct keel_sync *vol_open(struct fsx *f, const char *name)
{
	struct keel_cluster_opts o = {
		.mgmt_url = f->url, .key_file = f->key_file, .name = "fsx", .api_token = f->token};
	struct keel_sync *s;
	int ret = keel_sync_open(&o, name, &s);

	if (ret) {
		fsx_fail(f, "open %s: %s", name, strerror(-ret));
	}
	return s;
}

static void vol_reopen(struct fsx *f, struct fsx_vol *v)
{
	keel_sync_close(v->s);
	v->s = vol_open(f, v->name);
	if (keel_sync_info(v->s)->size != v->size) {
		fsx_fail(f, "%s: size %" PRIu64 " after reopen, model %" PRIu64, v->name,
			 keel_sync_info(v->s)->size, v->size);
	}
}

static struct fsx_vol *vol_slot(struct fsx *f)
{
	for (unsigned int i = 0; i < FSX_MAX_VOLS; i++) {
		if (!f->vols[i].live) {
			return &f->vols[i];
		}
	}
	return NULL;
}

static struct fsx_vol *vol_pick(struct fsx *f)
{
	unsigned int n = 0, k;

	for (unsigned int i = 0; i < FSX_MAX_VOLS; i++) {
		n += f->vols[i].live;
	}
	k = (unsigned int)rnd_below(f, n);
	for (unsigned int i = 0; i < FSX_MAX_VOLS; i++) {
		if (f->vols[i].live && !k--) {
			return &f->vols[i];
		}
	}
	return NULL;
}

static void vol_create(struct fsx *f, struct fsx_vol *v, uint64_t size)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s-v%u", f->prefix, f->nvol_created++);
	api(f, "POST", "/v1/volumes",
	    json_pack("{s:s,s:I,s:I}", "name", v->name, "size", (json_int_t)size, "object_size",
		      (json_int_t)FSX_OBJECT_SIZE),
	    201);
	v->size = size;
	v->data = calloc(1, size);
	v->live = true;
	v->s = vol_open(f, v->name);
}

static void vol_free_model(struct fsx_vol *v)
{
	for (unsigned int i = 0; i < v->nsnaps; i++) {
		keel_sync_close(v->snaps[i].view);
		free(v->snaps[i].data);
	}
	free(v->data);
	memset(v, 0, sizeof(*v));
}

/* A random 4 KiB-aligned extent inside @size. */
static void extent(struct fsx *f, uint64_t size, uint64_t *off, uint64_t *len)
{
	uint64_t blocks = size / FSX_BLOCK;
	uint64_t maxb = FSX_MAX_IO / FSX_BLOCK;

	*off = rnd_below(f, blocks) * FSX_BLOCK;
	*len = (1 + rnd_below(f, maxb)) * FSX_BLOCK;
	if (rnd_below(f, 4) == 0) {
		*len = FSX_BLOCK; /* many small ones */
	}
	if (*off + *len > size) {
		*len = size - *off;
	}
}

static void compare(struct fsx *f, const char *what, const uint8_t *got, const uint8_t *want,
		    uint64_t off, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++) {
		if (got[i] != want[i]) {
			fsx_fail(f, "%s: byte %" PRIu64 " reads %#x, model %#x (extent %" PRIu64
				 "+%" PRIu64 ")",
				 what, off + i, got[i], want[i], off, len);
		}
	}
}

static void op_write(struct fsx *f, struct fsx_vol *v)
{
	uint64_t off, len, tag = rnd(f);
	int ret;

	extent(f, v->size, &off, &len);
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t w = tag ^ ((off + i) * 0x9e3779b97f4a7c15ull);

		memcpy(f->buf + i, &w, 8);
	}
	oplog(f, "write %s %" PRIu64 "+%" PRIu64, v->name, off, len);
	ret = keel_sync_pwrite(v->s, f->buf, len, off);
	if (ret) {
		fsx_fail(f, "write %s: %s", v->name, strerror(-ret));
	}
	memcpy(v->data + off, f->buf, len);
}

static void op_read(struct fsx *f, struct fsx_vol *v)
{
	uint64_t off, len;
	int ret;

	extent(f, v->size, &off, &len);
	oplog(f, "read %s %" PRIu64 "+%" PRIu64, v->name, off, len);
	ret = keel_sync_pread(v->s, f->buf, len, off);
	if (ret) {
		fsx_fail(f, "read %s: %s", v->name, strerror(-ret));
	}
	compare(f, v->name, f->buf, v->data + off, off, len);
}

static void op_unmap(struct fsx *f, struct fsx_vol *v, bool zeroes)
{
	uint64_t off, len;
	int ret;

	extent(f, v->size, &off, &len);
	if (rnd_below(f, 3) == 0) {
		/* whole objects too: the path that frees space */
		off = off / FSX_OBJECT_SIZE * FSX_OBJECT_SIZE;
		len = FSX_OBJECT_SIZE;
		if (off + len > v->size) {
			len = v->size - off;
		}
	}
	oplog(f, "%s %s %" PRIu64 "+%" PRIu64, zeroes ? "write_zeroes" : "discard", v->name, off,
	      len);
	if (zeroes) {
		ret = keel_sync_write_zeroes(v->s, off, len);
	} else {
		ret = keel_sync_discard(v->s, off, len);
	}
	if (ret) {
		fsx_fail(f, "discard %s: %s", v->name, strerror(-ret));
	}
	memset(v->data + off, 0, len);
}

static void op_resize(struct fsx *f, struct fsx_vol *v)
{
	uint64_t size = v->size + (1 + rnd_below(f, 16)) * FSX_OBJECT_SIZE / 4;
	char path[128];

	if (size > 16ull << 20) {
		return;
	}
	oplog(f, "resize %s %" PRIu64, v->name, size);
	snprintf(path, sizeof(path), "/v1/volumes/%s/resize", v->name);
	json_decref(api(f, "POST", path, json_pack("{s:I}", "size", (json_int_t)size), 200));
	v->data = realloc(v->data, size);
	memset(v->data + v->size, 0, size - v->size);
	v->size = size;
	vol_reopen(f, v);
}

static void op_flatten(struct fsx *f, struct fsx_vol *v);

/* The volume's chain length now (parents of its top): the largest seen is
 * reported; with merges it stays near the live snapshots' count. */
static void chain_note(struct fsx *f, struct fsx_vol *v)
{
	char path[128];
	json_t *j, *p;

	snprintf(path, sizeof(path), "/v1/volumes/%s", v->name);
	j = api(f, "GET", path, NULL, 200);
	p = json_object_get(j, "parents");
	if (json_is_array(p) && json_array_size(p) > f->max_chain) {
		f->max_chain = (unsigned int)json_array_size(p);
	}
	json_decref(j);
}

static void op_snapshot(struct fsx *f, struct fsx_vol *v)
{
	struct fsx_snap *sn;
	char path[128];
	bool deep;

	if (v->nsnaps == FSX_MAX_SNAPS) {
		return;
	}
	sn = &v->snaps[v->nsnaps];
	snprintf(sn->name, sizeof(sn->name), "s%u", f->nsnap_created++);
	oplog(f, "snapshot %s@%s", v->name, sn->name);
	snprintf(path, sizeof(path), "/v1/volumes/%s/snapshots", v->name);
	json_decref(api_deep(f, "POST", path, json_pack("{s:s}", "name", sn->name), 201, &deep));
	if (deep) {
		/* The chain limit: what an operator does, flatten, then again.
		 * Merges of deleted snapshots keep rotation from getting here. */
		f->deep_refusals++;
		v->has_parent = true;
		op_flatten(f, v);
		oplog(f, "snapshot %s@%s (after flatten)", v->name, sn->name);
		json_decref(api(f, "POST", path, json_pack("{s:s}", "name", sn->name), 201));
	}
	sn->size = v->size;
	sn->view = NULL;
	sn->data = malloc(v->size);
	memcpy(sn->data, v->data, v->size);
	v->nsnaps++;
	v->has_parent = true;
	chain_note(f, v);
}

static void op_snapread(struct fsx *f, struct fsx_vol *v)
{
	struct fsx_snap *sn;
	struct keel_sync *s;
	char full[96];
	uint64_t off, len;
	int ret;

	if (!v->nsnaps) {
		return;
	}
	sn = &v->snaps[rnd_below(f, v->nsnaps)];
	snprintf(full, sizeof(full), "%s@%s", v->name, sn->name);
	extent(f, sn->size, &off, &len);
	oplog(f, "read %s %" PRIu64 "+%" PRIu64, full, off, len);
	if (!sn->view) {
		sn->view = vol_open(f, full);
	}
	s = sn->view;
	ret = keel_sync_pread(s, f->buf, len, off);
	if (!ret && keel_sync_pwrite(s, f->buf, FSX_BLOCK, 0) != -EROFS) {
		fsx_fail(f, "%s: a snapshot view accepted a write", full);
	}
	if (ret) {
		fsx_fail(f, "read %s: %s", full, strerror(-ret));
	}
	compare(f, full, f->buf, sn->data + off, off, len);
}

static void op_clone(struct fsx *f, struct fsx_vol *v)
{
	struct fsx_vol *c = vol_slot(f);
	bool from_snap = v->nsnaps && rnd_below(f, 3);
	struct fsx_snap *sn = from_snap ? &v->snaps[rnd_below(f, v->nsnaps)] : NULL;
	char origin[96];
	bool deep;

	if (!c) {
		return;
	}
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s-v%u", f->prefix, f->nvol_created++);
	if (sn) {
		snprintf(origin, sizeof(origin), "%s@%s", v->name, sn->name);
	} else {
		snprintf(origin, sizeof(origin), "%s", v->name);
	}
	oplog(f, "clone %s -> %s", origin, c->name);
	json_decref(api_deep(f, "POST", "/v1/volumes",
			     json_pack("{s:s,s:s}", "name", c->name, sn ? "snapshot" : "source_volume",
				       origin),
			     201, &deep));
	if (deep) {
		/* A snapshot 64 layers deep cannot be cloned until its chain
		 * is shortened; a live volume can be flattened first. */
		if (sn) {
			oplog(f, "clone %s refused: 64 layers deep", origin);
			memset(c, 0, sizeof(*c));
			f->nvol_created--;
			return;
		}
		v->has_parent = true;
		op_flatten(f, v);
		oplog(f, "clone %s -> %s (after flatten)", origin, c->name);
		json_decref(api(f, "POST", "/v1/volumes",
				json_pack("{s:s,s:s}", "name", c->name, "source_volume", origin), 201));
	}
	c->size = sn ? sn->size : v->size;
	c->data = malloc(c->size);
	memcpy(c->data, sn ? sn->data : v->data, c->size);
	c->live = true;
	c->has_parent = true;
	c->s = vol_open(f, c->name);
	if (!sn) {
		v->has_parent = true;
	}
}

static void op_revert(struct fsx *f, struct fsx_vol *v)
{
	struct fsx_snap *sn;
	char path[128];
	bool resized;

	if (!v->nsnaps) {
		return;
	}
	sn = &v->snaps[rnd_below(f, v->nsnaps)];
	oplog(f, "revert %s to %s", v->name, sn->name);
	snprintf(path, sizeof(path), "/v1/volumes/%s/revert", v->name);
	json_decref(api(f, "POST", path, json_pack("{s:s}", "snapshot", sn->name), 200));
	resized = sn->size != v->size;
	v->data = realloc(v->data, sn->size);
	memcpy(v->data, sn->data, sn->size);
	v->size = sn->size;
	if (resized || rnd_below(f, 2)) {
		/* else the open handle finds the new top by itself (EROFS) */
		vol_reopen(f, v);
	}
}

static void op_snapdel(struct fsx *f, struct fsx_vol *v)
{
	unsigned int i;
	char path[160];

	if (!v->nsnaps) {
		return;
	}
	i = (unsigned int)rnd_below(f, v->nsnaps);
	oplog(f, "delete snapshot %s@%s", v->name, v->snaps[i].name);
	snprintf(path, sizeof(path), "/v1/snapshots/%s@%s", v->name, v->snaps[i].name);
	json_decref(api(f, "DELETE", path, NULL, FSX_HTTP_GONE));
	keel_sync_close(v->snaps[i].view);
	free(v->snaps[i].data);
	v->snaps[i] = v->snaps[--v->nsnaps];
}

static void op_flatten(struct fsx *f, struct fsx_vol *v)
{
	char line[1024];
	bool online;

	if (!v->has_parent || !f->keelctl) {
		return;
	}
	/* half of them online: the servers merge the parents into the top
	 * while this process keeps its handle (and its old chain) open */
	online = rnd_below(f, 2);
	oplog(f, "flatten %s%s", v->name, online ? " (online)" : "");
	snprintf(line, sizeof(line), "%s --mgmt %s volume flatten %s%s --key-file %s >/dev/null",
		 f->keelctl, f->url, v->name, online ? " --online" : "", f->key_file);
	if (system(line)) {
		fsx_fail(f, "%s failed", line);
	}
	v->has_parent = v->nsnaps > 0;
}

static void op_voldel(struct fsx *f, struct fsx_vol *v)
{
	char path[128];
	unsigned int n = 0;

	for (unsigned int i = 0; i < FSX_MAX_VOLS; i++) {
		n += f->vols[i].live;
	}
	if (n < 2) {
		return;
	}
	/* Snapshots first (a volume with snapshots cannot be deleted). */
	while (v->nsnaps) {
		op_snapdel(f, v);
	}
	oplog(f, "delete volume %s", v->name);
	keel_sync_close(v->s);
	snprintf(path, sizeof(path), "/v1/volumes/%s", v->name);
	json_decref(api(f, "DELETE", path, NULL, 204));
	vol_free_model(v);
}

/* A full compare of every live volume (start, end, after restarts). */
static void verify_all(struct fsx *f, const char *when)
{
	for (unsigned int i = 0; i < FSX_MAX_VOLS; i++) {
		struct fsx_vol *v = &f->vols[i];

		if (!v->live) {
			continue;
		}
		for (uint64_t off = 0; off < v->size; off += FSX_MAX_IO) {
			uint64_t len = v->size - off < FSX_MAX_IO ? v->size - off : FSX_MAX_IO;
			int ret;

			oplog(f, "verify (%s) %s %" PRIu64 "+%" PRIu64, when, v->name, off, len);
			ret = keel_sync_pread(v->s, f->buf, len, off);
			if (ret) {
				fsx_fail(f, "read %s: %s", v->name, strerror(-ret));
			}
			compare(f, v->name, f->buf, v->data + off, off, len);
		}
	}
}

static enum fsx_opk pick_op(struct fsx *f)
{
	unsigned int x = (unsigned int)rnd_below(f, 1000), acc = 0;

	for (int k = 0; k < OP__N; k++) {
		acc += fsx_weights[k];
		if (x < acc) {
			return (enum fsx_opk)k;
		}
	}
	return OP_READ;
}

static void run(struct fsx *f)
{
	time_t t0 = time(NULL);

	vol_create(f, &f->vols[0], 8ull << 20);
	for (f->op = 1; f->op <= f->ops; f->op++) {
		struct fsx_vol *v = vol_pick(f);
		enum fsx_opk k = pick_op(f);

		faults(f);
		f->counts[k]++;
		snprintf(f->oplog[f->op % FSX_LOG], sizeof(f->oplog[0]), "#%" PRIu64 " (%s: nothing to do)",
			 f->op, fsx_op_names[k]);
		switch (k) {
		case OP_WRITE:
			op_write(f, v);
			break;
		case OP_READ:
			op_read(f, v);
			break;
		case OP_DISCARD:
			op_unmap(f, v, false);
			break;
		case OP_ZERO:
			op_unmap(f, v, true);
			break;
		case OP_FLUSH:
			oplog(f, "flush %s", v->name);
			if (keel_sync_flush(v->s)) {
				fsx_fail(f, "flush %s failed", v->name);
			}
			break;
		case OP_RESIZE:
			op_resize(f, v);
			break;
		case OP_SNAP:
			op_snapshot(f, v);
			break;
		case OP_CLONE:
			op_clone(f, v);
			break;
		case OP_REVERT:
			op_revert(f, v);
			break;
		case OP_SNAPDEL:
			op_snapdel(f, v);
			break;
		case OP_FLATTEN:
			op_flatten(f, v);
			break;
		case OP_SNAPREAD:
			op_snapread(f, v);
			break;
		case OP_VOLDEL:
			op_voldel(f, v);
			break;
		case OP__N:
			break;
		}
		if (f->op % 10000 == 0) {
			printf("op %" PRIu64 ": %lds\n", f->op, (long)(time(NULL) - t0));
			fflush(stdout);
		}
	}
	f->op = f->ops;
	if (f->killed) {
		lc(f, "start-server", f->killed);
		f->killed = 0;
	}
	verify_all(f, "end");
	printf("keel-fsx: seed %" PRIu64 ": %" PRIu64 " operations, 0 divergences, %lds\n",
	       f->seed, f->ops, (long)(time(NULL) - t0));
	printf("  longest chain %u layers, %" PRIu64 " snapshots refused at the chain limit\n",
	       f->max_chain, f->deep_refusals);
	if (f->max_chain_limit && f->max_chain > f->max_chain_limit) {
		fsx_fail(f, "a chain of %u layers (--max-chain %u): deleted snapshots are not merged",
			 f->max_chain, f->max_chain_limit);
	}
	if (f->deep_refusals) {
		fsx_fail(f,
			 "%" PRIu64 " snapshots refused at the %d-layer chain limit: deleted "
			 "snapshots are not merged",
			 f->deep_refusals, 64);
	}
	for (int k = 0; k < OP__N; k++) {
		printf("  %-16s %" PRIu64 "\n", fsx_op_names[k], f->counts[k]);
	}
}

static const char fsx_usage[] =
	"usage: keel-fsx --mgmt URL --key-file PATH [--seed N] [--ops N] [--prefix NAME] [-v]\n"
	"                [--keelctl PATH] [--cluster-dir DIR --local-cluster PATH\n"
	"                 --servers N --kill-every N] [--max-chain N]\n";

int main(int argc, char **argv)
{
	struct fsx f = {.seed = 1, .ops = 100000, .prefix = "fsx", .nservers = 3,
			.kill_every = 3000};

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			f.verbose = true;
			continue;
		}
		if (!val) {
			fputs(fsx_usage, stderr);
			return 2;
		}
		i++;
		if (!strcmp(a, "--mgmt")) {
			f.url = val;
		} else if (!strcmp(a, "--key-file")) {
			f.key_file = val;
		} else if (!strcmp(a, "--seed")) {
			f.seed = strtoull(val, NULL, 0);
		} else if (!strcmp(a, "--ops")) {
			f.ops = strtoull(val, NULL, 0);
		} else if (!strcmp(a, "--prefix")) {
			f.prefix = val;
		} else if (!strcmp(a, "--keelctl")) {
			f.keelctl = val;
		} else if (!strcmp(a, "--cluster-dir")) {
			f.cluster_dir = val;
		} else if (!strcmp(a, "--local-cluster")) {
			f.lc = val;
		} else if (!strcmp(a, "--servers")) {
			f.nservers = (unsigned int)strtoul(val, NULL, 0);
		} else if (!strcmp(a, "--kill-every")) {
			f.kill_every = strtoull(val, NULL, 0);
		} else if (!strcmp(a, "--max-chain")) {
			f.max_chain_limit = (unsigned int)strtoul(val, NULL, 0);
		} else {
			fputs(fsx_usage, stderr);
			return 2;
		}
	}
	if (!f.url || !f.key_file || (f.cluster_dir && (!f.lc || !f.nservers))) {
		fputs(fsx_usage, stderr);
		return 2;
	}
	{
		char err[256];

		if (rest_token_resolve(NULL, NULL, f.token, sizeof(f.token), err, sizeof(err))) {
			fprintf(stderr, "keel-fsx: %s\n", err);
			return 2;
		}
	}
	f.rng = f.seed * 0x9e3779b97f4a7c15ull + 1;
	f.buf = aligned_alloc(4096, FSX_MAX_IO);
	klog_set_level(KLOG_WARN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	run(&f);
	curl_global_cleanup();
	return 0;
}
