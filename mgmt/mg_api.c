/* SPDX-License-Identifier: Apache-2.0 */
/* The native REST API (docs/api.md): routing, validation, handlers. */
#include "mgmt/mg_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "mgmt/mg_cinder.h"
#include "mgmt/mg_space.h"

#define MG_VERSION "0.1.0"

/* ---- errors ---- */

int mg_api_http_status(int err)
{
	switch (err) {
	case 0:
		return 200;
	case -EINVAL:
	case -EMSGSIZE:
	case -ERANGE:
		return 400;
	case -ENOKEY:	    /* no API token (mg_auth.c) */
	case -EKEYREJECTED: /* a wrong one */
		return 401;
	case -EPERM:
	case -EACCES:
		return 403;
	case -ENOENT:
		return 404;
	case -EOPNOTSUPP:
		return 405;
	case -EEXIST:
	case -EBUSY:
	case -ESTALE:
		return 409;
	case -EFBIG:
		return 413;
	case -EMEDIUMTYPE: /* a body that is not JSON (Content-Type) */
		return 415;
	case -ENOSPC:
		return 507;
	case -EAGAIN:
	case -ESHUTDOWN:
		return 503;
	default:
		return 500;
	}
}

void mg_api_ascii(const char *in, char *out, size_t len)
{
	size_t i = 0;

	for (; len && in[i] && i < len - 1; i++) {
		unsigned char ch = (unsigned char)in[i];

		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (len) {
		out[i] = '\0';
	}
}

void mg_api_error(struct mg_api_req *req, int err, const char *msg)
{
	char safe[MG_API_ERR_LEN];
	json_t *j;

	if (req->os) {
		mg_cinder_error(req, err, msg);
		return;
	}
	req->status = mg_api_http_status(err);
	msg = msg && msg[0] ? msg : strerror(-err);
	j = json_pack("{s:{s:i,s:s}}", "error", "code", req->status, "message", msg);
	if (!j) {
		/* Not UTF-8: a message quoting a path's bytes (%FF). */
		mg_api_ascii(msg, safe, sizeof(safe));
		j = json_pack("{s:{s:i,s:s}}", "error", "code", req->status, "message", safe);
	}
	free(req->reply);
	req->reply = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
}

void mg_api_reply(struct mg_api_req *req, int status, json_t *j)
{
	req->status = status;
	free(req->reply);
	req->reply = NULL;
	if (j) {
		req->reply = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (!req->reply) {
			mg_api_error(req, -ENOMEM, "out of memory");
		}
	}
}

void mg_api_defer(struct mg_api_req *req)
{
	req->pending = true;
}

void mg_api_finish(struct mg_api_req *req)
{
	if (req->finished) {
		req->finished(req);
	}
}

/* ---- routing (HTTP thread) ---- */

static enum mg_method mg_method_parse(const char *m)
{
	if (!strcmp(m, "GET")) {
		return MG_M_GET;
	}
	if (!strcmp(m, "POST")) {
		return MG_M_POST;
	}
	if (!strcmp(m, "PUT")) {
		return MG_M_PUT;
	}
	if (!strcmp(m, "DELETE")) {
		return MG_M_DELETE;
	}
	return MG_M_OTHER;
}

struct mg_route_def {
	const char *pattern; /* path; each "*" segment matches one non-empty segment */
	enum mg_route route;
	unsigned int methods; /* bit per enum mg_method */
	const char *allow;
};

#define MG_BIT(m) (1u << (m))
#define MG_GET	  MG_BIT(MG_M_GET)
#define MG_POST	  MG_BIT(MG_M_POST)
#define MG_PUT	  MG_BIT(MG_M_PUT)
#define MG_DEL	  MG_BIT(MG_M_DELETE)

static const struct mg_route_def mg_routes[] = {
	{"/v1/cluster/info", MG_R_INFO, MG_GET, "GET"},
	{"/v1/cluster/status", MG_R_STATUS, MG_GET, "GET"},
	{"/v1/servers", MG_R_SERVERS, MG_GET, "GET"},
	{"/v1/servers/*", MG_R_SERVER, MG_GET, "GET"},
	{"/v1/pools", MG_R_POOLS, MG_GET | MG_POST, "GET, POST"},
	{"/v1/pools/*/qos", MG_R_POOL_QOS, MG_POST, "POST"},
	{"/v1/pools/*/overcommit", MG_R_POOL_OVERCOMMIT, MG_POST, "POST"},
	{"/v1/pgs", MG_R_PGS, MG_GET, "GET"},
	{"/v1/volumes", MG_R_VOLUMES, MG_GET | MG_POST, "GET, POST"},
	{"/v1/volumes/*", MG_R_VOLUME, MG_GET | MG_DEL, "GET, DELETE"},
	{"/v1/volumes/*/snapshots", MG_R_VOLUME_SNAPSHOTS, MG_GET | MG_POST, "GET, POST"},
	{"/v1/volumes/*/snapshots/*", MG_R_VOLUME_SNAPSHOT, MG_GET | MG_DEL, "GET, DELETE"},
	{"/v1/volumes/*/resize", MG_R_VOLUME_RESIZE, MG_POST, "POST"},
	{"/v1/volumes/*/rename", MG_R_VOLUME_RENAME, MG_POST, "POST"},
	{"/v1/volumes/*/revert", MG_R_VOLUME_REVERT, MG_POST, "POST"},
	{"/v1/volumes/*/flatten", MG_R_VOLUME_FLATTEN, MG_POST, "POST"},
	{"/v1/volumes/*/qos", MG_R_VOLUME_QOS, MG_POST, "POST"},
	{"/v1/snapshots", MG_R_SNAPSHOTS, MG_GET, "GET"},
	{"/v1/snapshots/*", MG_R_SNAPSHOT, MG_GET | MG_DEL, "GET, DELETE"},
	{"/v1/layers", MG_R_LAYERS, MG_GET, "GET"},
	{"/v1/jobs", MG_R_JOBS, MG_GET, "GET"},
	{"/v1/jobs/*", MG_R_JOB, MG_GET, "GET"},
	{"/v1/volumes/*/attachments", MG_R_VOLUME_ATTACHMENTS, MG_GET | MG_POST, "GET, POST"},
	{"/v1/volumes/*/attachments/*", MG_R_VOLUME_ATTACHMENT, MG_GET | MG_DEL, "GET, DELETE"},
	{"/v1/attachments", MG_R_ATTACHMENTS, MG_GET, "GET"},
	{"/v1/hosts/*/attachments", MG_R_HOST_ATTACHMENTS, MG_GET, "GET"},
	{"/v1/hosts/*/attachments/*", MG_R_HOST_ATTACHMENT, MG_PUT, "PUT"},
};

/* Match @path (length @len) against @pattern, capturing the "*" segments
 * into req->arg and req->arg2. */
bool mg_api_route_match(const char *pattern, const char *path, size_t len, struct mg_api_req *req)
{
	char *caps[2] = {req->arg, req->arg2};
	const char *end = path + len;
	unsigned int ncap = 0;

	while (*pattern) {
		if (*pattern == '*') {
			const char *seg_end = memchr(path, '/', (size_t)(end - path));
			size_t n;

			seg_end = seg_end ? seg_end : end;
			n = (size_t)(seg_end - path);
			if (!n || n >= MG_API_ARG_LEN || ncap == 2) {
				return false;
			}
			memcpy(caps[ncap], path, n);
			caps[ncap++][n] = '\0';
			path = seg_end;
			pattern++;
			continue;
		}
		if (path == end || *path != *pattern) {
			return false;
		}
		path++;
		pattern++;
	}
	return path == end;
}

int mg_api_route(const char *method, const char *path, struct mg_api_req *req, const char **allow)
{
	size_t len = strlen(path);

	/* One trailing slash is tolerated ("/v1/volumes/"). */
	if (len > 1 && path[len - 1] == '/') {
		len--;
	}
	for (size_t i = 0; i < sizeof(mg_routes) / sizeof(mg_routes[0]); i++) {
		const struct mg_route_def *d = &mg_routes[i];

		if (!mg_api_route_match(d->pattern, path, len, req)) {
			continue;
		}
		req->method = mg_method_parse(method);
		if (!(d->methods & MG_BIT(req->method))) {
			*allow = d->allow;
			return -EOPNOTSUPP;
		}
		req->route = d->route;
		return 0;
	}
	return -ENOENT;
}

int mg_api_parse_body(const char *body, size_t len, struct mg_api_req *req, char *err,
		      size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (!len) {
		snprintf(err, errlen, "request body required: a JSON object");
		return -EINVAL;
	}
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column,
			 je.text);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errlen, "request body must be a JSON object");
		return -EINVAL;
	}
	req->body = j;
	return 0;
}

/* ---- body fields ---- */

int mg_api_fields_known(json_t *body, const char *const *known, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(body, key, v)
	{
		bool ok = false;

		for (size_t i = 0; known[i]; i++) {
			ok |= !strcmp(key, known[i]);
		}
		if (!ok) {
			snprintf(err, errlen, "unknown field '%.64s'", key);
			return -EINVAL;
		}
	}
	return 0;
}

/* A string field; *out keeps @def when absent. */
int mg_api_field_str(json_t *body, const char *key, bool required, const char **out, char *err,
		     size_t errlen)
{
	json_t *v = json_object_get(body, key);

	if (!v) {
		if (required) {
			snprintf(err, errlen, "field '%s' is required", key);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "field '%s' must be a string", key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

/* A non-negative integer field; *out keeps its default when absent. */
int mg_api_field_bool(json_t *body, const char *key, bool *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(body, key);

	if (!v) {
		return 0;
	}
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "field '%s' must be true or false", key);
		return -EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

int mg_api_field_u64(json_t *body, const char *key, bool required, uint64_t *out, char *err,
		     size_t errlen)
{
	json_t *v = json_object_get(body, key);

	if (!v) {
		if (required) {
			snprintf(err, errlen, "field '%s' is required", key);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_integer(v)) {
		snprintf(err, errlen, "field '%s' must be an integer", key);
		return -EINVAL;
	}
	if (json_integer_value(v) < 0) {
		snprintf(err, errlen, "field '%s' must not be negative", key);
		return -EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int mg_api_field_qos(json_t *body, const char *key, bool bytes, bool nullable, bool *present,
		     int64_t *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(body, key);

	*present = v != NULL;
	if (!v) {
		return 0;
	}
	if (json_is_null(v) && nullable) {
		*out = MG_QOS_POOL;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		snprintf(err, errlen, "field '%s' must be a non-negative integer%s", key,
			 nullable ? " or null (the pool's)" : " (0 = unlimited)");
		return -EINVAL;
	}
	*out = json_integer_value(v);
	return mg_check_qos(key, bytes, (uint64_t)*out, err, errlen);
}

/* ---- JSON views ---- */

json_t *mg_api_iso_time(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];

	if (!ms || !gmtime_r(&t, &tm)) {
		return json_null();
	}
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *mg_server_json(struct mg_cluster *c, const struct mg_server *s)
{
	json_t *tags = json_array();
	const char *p = s->rec.tags;
	json_t *last_hb;

	while (*p) {
		size_t n = strcspn(p, ",");

		json_array_append_new(tags, json_stringn(p, n));
		p += n + (p[n] == ',');
	}
	last_hb = s->hb_seen
			  ? json_integer((json_int_t)((reactor_now_ns() - s->last_hb_ns) / 1000000))
			  : json_null();
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:o,s:b,s:b,s:I,s:I,s:o,s:o,s:I}", "id",
			 (json_int_t)s->rec.id, "uuid", s->rec.uuid, "addr", s->rec.addr, "host",
			 s->rec.host, "rack", s->rec.rack, "weight", (json_int_t)s->rec.weight,
			 "tags", tags, "up", s->up, "in", s->rec.in, "capacity_bytes",
			 (json_int_t)s->rec.capacity_bytes, "used_bytes",
			 (json_int_t)s->rec.used_bytes, "last_heartbeat_ms", last_hb, "down_since",
			 mg_api_iso_time(s->up ? 0 : s->rec.down_since_ms), "map_epoch",
			 (json_int_t)s->hb_epoch);
}

/* @space: the pool's accounting, or NULL (omitted). */
static json_t *mg_pool_json(const struct mg_pool *p, const struct mg_space *space)
{
	json_t *j = json_pack(
		"{s:I,s:s,s:I,s:I,s:s,s:I,s:s,s:I,s:I,s:b}", "id", (json_int_t)p->rec.id, "name",
		p->rec.name, "replicas", (json_int_t)p->rec.replicas, "min_replicas",
		(json_int_t)p->rec.min_replicas, "failure_domain",
		mg_failure_domains[p->rec.failure_domain], "pg_count", (json_int_t)p->rec.pg_count,
		"tag", p->rec.tag, "qos_iops", (json_int_t)p->rec.qos_iops, "qos_bps",
		(json_int_t)p->rec.qos_bps, "full", p->full);

	if (j) {
		json_object_set_new(j, "max_overcommit_percent",
				    json_integer(p->rec.max_overcommit_pct));
	}

	if (j && space) {
		json_object_set_new(j, "space", mg_space_json(space));
	}
	return j;
}

static void mg_h_info(struct mg_cluster *c, struct mg_api_req *req)
{
	mg_api_reply(req, 200,
		     json_pack("{s:s,s:I,s:s}", "cluster_addr", c->cluster_addr, "epoch",
			       (json_int_t)c->meta.epoch, "version", MG_VERSION));
}

static void mg_add_check(json_t *checks, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mg_add_check(json_t *checks, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(checks, json_string(buf));
}

static const char *mg_plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static const char *const mg_health_names[] = {"HEALTH_OK", "HEALTH_WARN", "HEALTH_ERR"};

static void mg_add_space_check(void *arg, bool error, const char *text)
{
	(void)error;
	json_array_append_new(arg, json_string(text));
}

static void mg_h_status(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_pg_counts n;
	json_t *checks = json_array();
	struct mg_space *pools = calloc(MG_MAX_POOLS, sizeof(*pools));
	struct mg_space total;
	uint32_t up = 0, in = 0, down = 0;
	const char *health;
	int64_t wall = mg_wall_ms();
	json_t *j;
	int level, ret;

	ret = pools ? mg_space_collect(c, pools, &total) : -ENOMEM;
	free(pools);
	if (ret) {
		json_decref(checks);
		mg_api_error(req, ret, "cannot collect the space accounting");
		return;
	}

	level = mg_cluster_health(c, &n);
	for (uint32_t i = 0; i < c->nservers; i++) {
		const struct mg_server *s = &c->servers[i];

		up += s->up;
		in += s->rec.in;
		if (!s->up) {
			if (down++ < 8) {
				mg_add_check(checks, "server %u (%s) down for %.0f s%s", s->rec.id,
					     s->rec.addr,
					     (double)(wall - s->rec.down_since_ms) / 1000,
					     s->rec.in ? "" : ", out");
			}
		}
	}
	if (down > 8) {
		mg_add_check(checks, "%u more servers down", down - 8);
	}
	if (!c->nservers) {
		mg_add_check(checks, "no servers registered");
	}
	if (n.inactive) {
		mg_add_check(checks, "%u %s inactive (no up in-sync copy: I/O blocked)", n.inactive,
			     mg_plural(n.inactive, "PG", "PGs"));
	}
	if (n.degraded) {
		mg_add_check(checks, "%u %s degraded (fewer in-sync copies than replicas)",
			     n.degraded, mg_plural(n.degraded, "PG", "PGs"));
	}
	if (n.recovering) {
		mg_add_check(checks,
			     "%u %s recovering (%" PRIu64 " objects, %" PRIu64 " bytes left)",
			     n.recovering, mg_plural(n.recovering, "PG", "PGs"), n.objects_left,
			     n.bytes_left);
	}
	if (n.peering) {
		mg_add_check(checks, "%u %s peering", n.peering, mg_plural(n.peering, "PG", "PGs"));
	}
	mg_space_checks(c, mg_add_space_check, checks);
	health = mg_health_names[level];
	j = json_pack("{s:s,s:I,s:{s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I,s:I,s:I},"
		      "s:{s:I,s:I,s:I},s:o}",
		      "health", health, "epoch", (json_int_t)c->meta.epoch, "servers", "total",
		      (json_int_t)c->nservers, "up", (json_int_t)up, "in", (json_int_t)in, "pgs",
		      "total", (json_int_t)n.total, "active", (json_int_t)n.active, "degraded",
		      (json_int_t)n.degraded, "recovering", (json_int_t)n.recovering, "peering",
		      (json_int_t)n.peering, "inactive", (json_int_t)n.inactive, "recovery",
		      "objects_left", (json_int_t)n.objects_left, "bytes_left",
		      (json_int_t)n.bytes_left, "bytes_copied", (json_int_t)n.bytes_copied,
		      "checks", checks);
	if (j) {
		json_object_set_new(j, "space", mg_space_json(&total));
	}
	mg_api_reply(req, 200, j);
}

static void mg_h_servers(struct mg_cluster *c, struct mg_api_req *req)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < c->nservers; i++) {
		json_array_append_new(a, mg_server_json(c, &c->servers[i]));
	}
	mg_api_reply(req, 200, a);
}

static void mg_h_server(struct mg_cluster *c, struct mg_api_req *req)
{
	char *end, msg[MG_API_ERR_LEN];
	unsigned long id = strtoul(req->arg, &end, 10);
	struct mg_server *s = NULL;

	if (*end == '\0' && req->arg[0] >= '1' && req->arg[0] <= '9' && id <= 65535) {
		s = mg_cluster_server(c, (uint32_t)id);
	}
	if (!s) {
		snprintf(msg, sizeof(msg), "server '%.64s' not found", req->arg);
		mg_api_error(req, -ENOENT, msg);
		return;
	}
	mg_api_reply(req, 200, mg_server_json(c, s));
}

static void mg_h_pools(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_space *space = calloc(MG_MAX_POOLS, sizeof(*space));
	struct mg_space total;
	json_t *a;
	int ret;

	ret = space ? mg_space_collect(c, space, &total) : -ENOMEM;
	if (ret) {
		free(space);
		mg_api_error(req, ret, "cannot collect the space accounting");
		return;
	}
	a = json_array();
	for (uint32_t i = 0; i < c->npools; i++) {
		json_array_append_new(a, mg_pool_json(&c->pools[i], &space[i]));
	}
	free(space);
	mg_api_reply(req, 200, a);
}

static void mg_h_pool_create(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {
		"name", "replicas", "min_replicas", "failure_domain",	      "pg_count",
		"tag",	"qos_iops", "qos_bps",	    "max_overcommit_percent", NULL};
	const char *name = NULL, *fd = "host", *tag = "";
	uint64_t replicas = 3, min_replicas = 2, pg_count = 128;
	int64_t qos_iops = 0, qos_bps = 0;
	uint64_t overcommit = 0;
	bool present;
	char err[MG_API_ERR_LEN];
	const struct mg_pool *pool;
	struct mg_pool_rec r;
	int ret, fdi;

	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_str(req->body, "name", true, &name, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_u64(req->body, "replicas", false, &replicas, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_u64(req->body, "min_replicas", false, &min_replicas, err,
				       sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "failure_domain", false, &fd, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_u64(req->body, "pg_count", false, &pg_count, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_str(req->body, "tag", false, &tag, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_qos(req->body, "qos_iops", false, false, &present, &qos_iops,
				       err, sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_qos(req->body, "qos_bps", true, false, &present, &qos_bps, err,
				       sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_u64(req->body, "max_overcommit_percent", false, &overcommit, err,
				       sizeof(err));
	}
	if (!ret) {
		ret = mg_check_overcommit(overcommit, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_check_name("pool", name, err, sizeof(err));
	}
	if (!ret && tag[0]) {
		ret = mg_check_name("tag", tag, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_check_pool_shape(replicas, min_replicas, pg_count, err, sizeof(err));
	}
	if (!ret) {
		fdi = mg_parse_failure_domain(fd, err, sizeof(err));
		ret = fdi < 0 ? fdi : 0;
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", name);
	snprintf(r.tag, sizeof(r.tag), "%s", tag);
	r.replicas = (uint32_t)replicas;
	r.min_replicas = (uint32_t)min_replicas;
	r.pg_count = (uint32_t)pg_count;
	r.failure_domain = fdi;
	r.qos_iops = (uint64_t)qos_iops;
	r.qos_bps = (uint64_t)qos_bps;
	r.max_overcommit_pct = (uint32_t)overcommit;
	ret = mg_cluster_add_pool(c, &r, &pool);
	if (ret == -EEXIST) {
		snprintf(err, sizeof(err), "pool '%s' already exists", name);
	} else if (ret == -ENOSPC) {
		snprintf(err, sizeof(err), "no more pools (at most %d)", MG_MAX_POOLS);
	} else if (ret) {
		snprintf(err, sizeof(err), "cannot create pool '%s': %s", name, strerror(-ret));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	mg_api_reply(req, 201, mg_pool_json(pool, NULL));
}

/* The pool named by the path (/v1/pools/{name}/...), or NULL after a 404. */
static struct mg_pool *mg_pool_of_path(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_pool *pool = NULL;
	char err[MG_API_ERR_LEN];

	if (!mg_check_name("pool", req->arg, NULL, 0)) {
		pool = mg_cluster_pool_by_name(c, req->arg);
	}
	if (!pool) {
		snprintf(err, sizeof(err), "pool '%.64s' not found", req->arg);
		mg_api_error(req, -ENOENT, err);
	}
	return pool;
}

/* Store @r as @pool's row (a setting that is not part of the cluster map:
 * no new epoch) and take it in memory. 0 or a store error. */
static int mg_pool_save(struct mg_cluster *c, struct mg_pool *pool, const struct mg_pool_rec *r)
{
	int ret = mg_store_begin(c->st);

	if (!ret) {
		ret = mg_store_put_pool(c->st, r);
		ret = ret ? (mg_store_rollback(c->st), ret) : mg_store_commit(c->st);
	}
	if (!ret) {
		pool->rec = *r;
	}
	return ret;
}

/* POST /v1/pools/{name}/qos {"iops"?, "bps"?}: the pool's default limits.
 * Not part of the cluster map (keel-client reads them with its
 * attachments), so no new epoch: one row. */
static void mg_h_pool_qos(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"iops", "bps", NULL};
	char err[MG_API_ERR_LEN];
	struct mg_pool *pool = NULL;
	struct mg_pool_rec r;
	int64_t iops = 0, bps = 0;
	bool has_iops = false, has_bps = false;
	int ret;

	pool = mg_pool_of_path(c, req);
	if (!pool) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_qos(req->body, "iops", false, false, &has_iops, &iops, err,
				       sizeof(err));
	}
	if (!ret) {
		ret = mg_api_field_qos(req->body, "bps", true, false, &has_bps, &bps, err,
				       sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	r = pool->rec;
	if (has_iops) {
		r.qos_iops = (uint64_t)iops;
	}
	if (has_bps) {
		r.qos_bps = (uint64_t)bps;
	}
	ret = mg_pool_save(c, pool, &r);
	if (ret) {
		mg_api_error(req, ret, "pool limits not changed");
		return;
	}
	log_info("pool '%s': default QoS limits %llu IOPS, %llu bytes/s (0 = unlimited)", r.name,
		 (unsigned long long)r.qos_iops, (unsigned long long)r.qos_bps);
	mg_api_reply(req, 200, mg_pool_json(pool, NULL));
}

/* POST /v1/pools/{name}/overcommit {"max_percent": N}: the pool's
 * overcommit limit (mg_space_admit()); 0 removes it. Volumes already
 * provisioned stay; only new sizes are checked. */
static void mg_h_pool_overcommit(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"max_percent", NULL};
	char err[MG_API_ERR_LEN];
	struct mg_pool *pool = NULL;
	struct mg_pool_rec r;
	uint64_t pct = 0;
	int ret;

	pool = mg_pool_of_path(c, req);
	if (!pool) {
		return;
	}
	ret = mg_api_fields_known(req->body, known, err, sizeof(err));
	if (!ret) {
		ret = mg_api_field_u64(req->body, "max_percent", true, &pct, err, sizeof(err));
	}
	if (!ret) {
		ret = mg_check_overcommit(pct, err, sizeof(err));
	}
	if (ret) {
		mg_api_error(req, ret, err);
		return;
	}
	r = pool->rec;
	r.max_overcommit_pct = (uint32_t)pct;
	ret = mg_pool_save(c, pool, &r);
	if (ret) {
		mg_api_error(req, ret, "pool overcommit limit not changed");
		return;
	}
	log_info("pool '%s': overcommit limit %u%% of usable space (0 = none)", r.name,
		 r.max_overcommit_pct);
	mg_api_reply(req, 200, mg_pool_json(pool, NULL));
}

static json_t *mg_member_list(const struct cmap_pg *pg, bool only_in_sync)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < pg->nmembers; i++) {
		if (!only_in_sync || (pg->in_sync & (1u << i))) {
			json_array_append_new(a, json_integer(pg->members[i]));
		}
	}
	return a;
}

static void mg_h_pgs(struct mg_cluster *c, struct mg_api_req *req)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < c->npools; i++) {
		const struct mg_pool *pool = &c->pools[i];
		const struct cmap_pool *mp = cmap_pool(c->map, pool->rec.id);

		for (uint32_t pg = 0; mp && pg < mp->pg_count; pg++) {
			const struct cmap_pg *p = &mp->pgs[pg];
			const struct mg_pg_stat *st = &pool->stats[pg];
			bool cur = st->interval == p->interval;

			json_array_append_new(
				a,
				json_pack("{s:I,s:I,s:o,s:I,s:o,s:I,s:s,s:I,s:I}", "pool",
					  (json_int_t)pool->rec.id, "pg", (json_int_t)pg, "members",
					  mg_member_list(p, false), "primary",
					  (json_int_t)p->primary, "in_sync",
					  mg_member_list(p, true), "interval",
					  (json_int_t)p->interval, "state", mg_pg_state(c, pool, p),
					  "objects_left", (json_int_t)(cur ? st->objects_left : 0),
					  "bytes_left", (json_int_t)(cur ? st->bytes_left : 0)));
		}
	}
	mg_api_reply(req, 200, a);
}

void mg_api_handle(struct mg_cluster *c, struct mg_api_req *req)
{
	if (c->stopping) {
		mg_api_error(req, -ESHUTDOWN, "mgmt is shutting down");
		return;
	}
	switch (req->route) {
	case MG_R_INFO:
		mg_h_info(c, req);
		break;
	case MG_R_STATUS:
		mg_h_status(c, req);
		break;
	case MG_R_SERVERS:
		mg_h_servers(c, req);
		break;
	case MG_R_SERVER:
		mg_h_server(c, req);
		break;
	case MG_R_POOLS:
		if (req->method == MG_M_POST) {
			mg_h_pool_create(c, req);
		} else {
			mg_h_pools(c, req);
		}
		break;
	case MG_R_POOL_QOS:
		mg_h_pool_qos(c, req);
		break;
	case MG_R_POOL_OVERCOMMIT:
		mg_h_pool_overcommit(c, req);
		break;
	case MG_R_PGS:
		mg_h_pgs(c, req);
		break;
	case MG_R_VOLUMES:
	case MG_R_VOLUME:
	case MG_R_VOLUME_SNAPSHOTS:
	case MG_R_VOLUME_SNAPSHOT:
	case MG_R_SNAPSHOTS:
	case MG_R_SNAPSHOT:
	case MG_R_VOLUME_RESIZE:
	case MG_R_VOLUME_RENAME:
	case MG_R_VOLUME_REVERT:
	case MG_R_VOLUME_FLATTEN:
	case MG_R_VOLUME_QOS:
	case MG_R_LAYERS:
		mg_volume_handle(c, req);
		break;
	case MG_R_JOBS:
	case MG_R_JOB:
		mg_jobs_handle(c, req);
		break;
	case MG_R_VOLUME_ATTACHMENTS:
	case MG_R_VOLUME_ATTACHMENT:
	case MG_R_ATTACHMENTS:
	case MG_R_HOST_ATTACHMENTS:
	case MG_R_HOST_ATTACHMENT:
		mg_attach_handle(c, req);
		break;
	case MG_R_CINDER:
		mg_cinder_handle(c, req);
		break;
	default:
		mg_api_error(req, -ENOENT, "no such resource");
		break;
	}
}
