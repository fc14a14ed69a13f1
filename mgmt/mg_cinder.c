/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenStack Block Storage v3 subset (docs/api.md): routing, request
 * checks, Cinder's JSON views of Keel volumes and attachments, handlers.
 *
 * Mapping. A Cinder volume is a Keel volume: its id is the volume's uuid,
 * its name the Keel name (a volume created without one is named
 * "volume-<uuid>"), its size the byte size rounded up to GiB, its
 * volume_type the pool. Status is derived, never stored: "in-use" while
 * attached to a host, "error" when a host reports it cannot serve it,
 * else "available". A Cinder attachment is a Keel attachment: the
 * connector's host is the Keel host, the attachment's uuid its id. A
 * Cinder snapshot is a Keel snapshot (its uuid is the id).
 *
 * Changes run the native handlers of mg_volume.c on the same request
 * (mg_os_native()): their checks, their one transaction, their fencing
 * (a snapshot answers once servers stopped writing to the frozen layer).
 * Their errors come out in Cinder's shape (mg_api_error() sees req->os);
 * a success is translated into Cinder's reply afterwards.
 */
#include "mgmt/mg_cinder.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "mgmt/mg_valid.h"

#define MG_OS_GIB	   (1ull << 30)
#define MG_OS_SIZE_MAX_GIB (MG_VOLUME_SIZE_MAX / MG_OS_GIB)
#define MG_OS_PROJECT_LEN  65
#define MG_OS_HOST_LEN	   256
#define MG_OS_FILTER_LEN   256
#define MG_OS_ZONE	   "nova"
#define MG_OS_UPDATED	   "2024-01-01T00:00:00Z"
#define MG_OS_DEFAULT_PROJ "keel"

enum mg_os_route {
	MG_OS_NONE = 0,
	MG_OS_VERSIONS,		  /* GET / */
	MG_OS_VERSION,		  /* GET /v3 */
	MG_OS_VOLUMES,		  /* GET, POST volumes */
	MG_OS_VOLUMES_DETAIL,	  /* GET volumes/detail */
	MG_OS_VOLUME,		  /* GET, PUT, DELETE volumes/{id} */
	MG_OS_VOLUME_ACTION,	  /* POST volumes/{id}/action */
	MG_OS_SNAPSHOTS,	  /* GET, POST snapshots */
	MG_OS_SNAPSHOTS_DETAIL,	  /* GET snapshots/detail */
	MG_OS_SNAPSHOT,		  /* GET, DELETE snapshots/{id} */
	MG_OS_ATTACHMENTS,	  /* GET, POST attachments (3.27) */
	MG_OS_ATTACHMENTS_DETAIL, /* GET attachments/detail (3.27) */
	MG_OS_ATTACHMENT,	  /* GET, DELETE attachments/{id} (3.27) */
	MG_OS_ATTACHMENT_ACTION,  /* POST attachments/{id}/action (3.44) */
};

/* Query arguments of the list calls. */
enum mg_os_filter {
	MG_OS_F_NAME = 0,
	MG_OS_F_STATUS,
	MG_OS_F_VOLUME_ID,
	MG_OS_F_INSTANCE_ID,
	MG_OS_F_MARKER,
	MG_OS_F_LIMIT,
	MG_OS_F_COUNT,
};

struct mg_cinder_req {
	enum mg_os_route route;
	unsigned int minor; /* microversion 3.minor of this request */
	bool project_in_path;
	char project[MG_OS_PROJECT_LEN];
	char host[MG_OS_HOST_LEN];	  /* the Host header, for links */
	char bad[MG_API_ERR_LEN];	  /* first bad query argument (400) */
	char bad_version[MG_API_ERR_LEN]; /* bad OpenStack-API-Version (400/406) */
	int bad_version_err;
	unsigned int filters; /* bit per enum mg_os_filter given */
	char filter[MG_OS_F_COUNT][MG_OS_FILTER_LEN];
	uint64_t limit;
	char reply_version[24];
	/* A native handler running on this request's behalf (mg_os_native). */
	struct mg_cluster *c;
	void (*done)(struct mg_cluster *c, struct mg_api_req *req);
	void (*outer_finished)(struct mg_api_req *req);
};

/* ---- routing (HTTP thread) ---- */

#define MG_OS_BIT(m) (1u << (m))
#define MG_OS_GET    MG_OS_BIT(MG_M_GET)
#define MG_OS_POST   MG_OS_BIT(MG_M_POST)
#define MG_OS_DEL    MG_OS_BIT(MG_M_DELETE)
#define MG_OS_PUT    MG_OS_BIT(MG_M_PUT)

struct mg_os_route_def {
	const char *pattern; /* below /v3[/{project_id}] */
	enum mg_os_route route;
	unsigned int methods;
	const char *allow;
};

/* "detail" before "*": both match one segment. */
static const struct mg_os_route_def mg_os_routes[] = {
	{"/volumes", MG_OS_VOLUMES, MG_OS_GET | MG_OS_POST, "GET, POST"},
	{"/volumes/detail", MG_OS_VOLUMES_DETAIL, MG_OS_GET, "GET"},
	{"/volumes/*", MG_OS_VOLUME, MG_OS_GET | MG_OS_PUT | MG_OS_DEL, "GET, PUT, DELETE"},
	{"/volumes/*/action", MG_OS_VOLUME_ACTION, MG_OS_POST, "POST"},
	{"/snapshots", MG_OS_SNAPSHOTS, MG_OS_GET | MG_OS_POST, "GET, POST"},
	{"/snapshots/detail", MG_OS_SNAPSHOTS_DETAIL, MG_OS_GET, "GET"},
	{"/snapshots/*", MG_OS_SNAPSHOT, MG_OS_GET | MG_OS_DEL, "GET, DELETE"},
	{"/attachments", MG_OS_ATTACHMENTS, MG_OS_GET | MG_OS_POST, "GET, POST"},
	{"/attachments/detail", MG_OS_ATTACHMENTS_DETAIL, MG_OS_GET, "GET"},
	{"/attachments/*", MG_OS_ATTACHMENT, MG_OS_GET | MG_OS_DEL, "GET, DELETE"},
	{"/attachments/*/action", MG_OS_ATTACHMENT_ACTION, MG_OS_POST, "POST"},
};

/* First path segments that are collections, not project ids. */
static const char *const mg_os_collections[] = {"volumes", "snapshots", "attachments", NULL};

bool mg_cinder_path(const char *path)
{
	return !strcmp(path, "/") || (!strncmp(path, "/v3", 3) && (!path[3] || path[3] == '/'));
}

static bool mg_os_project_ok(const char *p, size_t n)
{
	if (!n || n >= MG_OS_PROJECT_LEN) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '_') {
			return false;
		}
	}
	return true;
}

static enum mg_method mg_os_method(const char *m)
{
	static const char *const names[] = {[MG_M_GET] = "GET",
					    [MG_M_POST] = "POST",
					    [MG_M_PUT] = "PUT",
					    [MG_M_DELETE] = "DELETE"};

	for (unsigned int i = 0; i < MG_M_OTHER; i++) {
		if (!strcmp(m, names[i])) {
			return (enum mg_method)i;
		}
	}
	return MG_M_OTHER;
}

int mg_cinder_route(const char *method, const char *path, struct mg_api_req *req,
		    const char **allow)
{
	struct mg_cinder_req *os;
	const char *rest, *seg_end;
	size_t len, n;

	os = calloc(1, sizeof(*os));
	if (!os) {
		return -ENOMEM;
	}
	req->os = os;
	req->route = MG_R_CINDER;
	req->method = mg_os_method(method);
	snprintf(os->project, sizeof(os->project), "%s", MG_OS_DEFAULT_PROJ);
	if (!strcmp(path, "/") || !strcmp(path, "/v3") || !strcmp(path, "/v3/")) {
		os->route = path[1] ? MG_OS_VERSION : MG_OS_VERSIONS;
		if (req->method != MG_M_GET) {
			*allow = "GET";
			return -EOPNOTSUPP;
		}
		return 0;
	}
	/* "/v3/{first}...": a project id unless it names a collection. */
	rest = path + 3;
	seg_end = strchr(rest + 1, '/');
	n = seg_end ? (size_t)(seg_end - rest - 1) : strlen(rest + 1);
	bool collection = false;

	for (unsigned int i = 0; mg_os_collections[i]; i++) {
		collection |= strlen(mg_os_collections[i]) == n &&
			      !strncmp(rest + 1, mg_os_collections[i], n);
	}
	if (!collection) {
		if (!mg_os_project_ok(rest + 1, n) || !seg_end) {
			return -ENOENT;
		}
		snprintf(os->project, sizeof(os->project), "%.*s", (int)n, rest + 1);
		os->project_in_path = true;
		rest = seg_end;
	}
	len = strlen(rest);
	/* One trailing slash is tolerated, as on /v1. */
	if (len > 1 && rest[len - 1] == '/') {
		len--;
	}
	for (size_t i = 0; i < sizeof(mg_os_routes) / sizeof(mg_os_routes[0]); i++) {
		const struct mg_os_route_def *d = &mg_os_routes[i];

		if (!mg_api_route_match(d->pattern, rest, len, req)) {
			continue;
		}
		if (!(d->methods & MG_OS_BIT(req->method))) {
			*allow = d->allow;
			return -EOPNOTSUPP;
		}
		os->route = d->route;
		return 0;
	}
	return -ENOENT;
}

/* ---- headers and query arguments (HTTP thread) ---- */

/* "volume 3.27", "volume latest", possibly among other services' entries
 * ("compute 2.1, volume 3.27"). */
static void mg_os_parse_version(struct mg_cinder_req *os, const char *value)
{
	const char *p = value;

	while (*p) {
		const char *end = p + strcspn(p, ",");
		char item[64];
		unsigned int major, minor;
		int used = 0;

		snprintf(item, sizeof(item), "%.*s", (int)(end - p), p);
		p = *end ? end + 1 : end;
		char *s = item + strspn(item, " \t");

		if (strncasecmp(s, "volume", 6) || !isspace((unsigned char)s[6])) {
			continue;
		}
		s += 6 + strspn(s + 6, " \t");
		s[strcspn(s, " \t")] = '\0';
		if (!strcasecmp(s, "latest")) {
			os->minor = MG_CINDER_MAX_MINOR;
			return;
		}
		if (sscanf(s, "%u.%u%n", &major, &minor, &used) != 2 || s[used] || major > 99 ||
		    minor > 999 || !isdigit((unsigned char)s[0])) {
			snprintf(os->bad_version, sizeof(os->bad_version),
				 "invalid OpenStack-API-Version '%.64s': expected 'volume 3.N'",
				 value);
			os->bad_version_err = -EINVAL;
			return;
		}
		if (major != 3 || minor > MG_CINDER_MAX_MINOR) {
			snprintf(os->bad_version, sizeof(os->bad_version),
				 "Version %u.%u is not supported by the API. Minimum is 3.0 and "
				 "maximum is 3.%u.",
				 major, minor, MG_CINDER_MAX_MINOR);
			os->bad_version_err = -EPROTONOSUPPORT;
			return;
		}
		os->minor = minor;
		return;
	}
}

void mg_cinder_header(struct mg_api_req *req, const char *name, const char *value)
{
	struct mg_cinder_req *os = req->os;

	if (!strcasecmp(name, "OpenStack-API-Version")) {
		mg_os_parse_version(os, value);
	} else if (!strcasecmp(name, "Host")) {
		/* Echoed in links only: keep it to host[:port] characters. */
		size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789.-:[]");

		snprintf(os->host, sizeof(os->host), "%.*s", (int)n, value);
	} else if (!strcasecmp(name, "X-Project-Id") && !os->project_in_path &&
		   mg_os_project_ok(value, strlen(value))) {
		snprintf(os->project, sizeof(os->project), "%s", value);
	}
}

static const char *const mg_os_filter_names[] = {
	[MG_OS_F_NAME] = "name",
	[MG_OS_F_STATUS] = "status",
	[MG_OS_F_VOLUME_ID] = "volume_id",
	[MG_OS_F_INSTANCE_ID] = "instance_id",
	[MG_OS_F_MARKER] = "marker",
	[MG_OS_F_LIMIT] = "limit",
	[MG_OS_F_COUNT] = NULL,
};

/* Accepted and ignored: Keel is single-tenant and lists in creation order. */
static const char *const mg_os_ignored_args[] = {"all_tenants", "project_id", "sort", "sort_key",
						 "sort_dir",	"with_count", NULL};

void mg_cinder_query(struct mg_api_req *req, const char *key, const char *value)
{
	struct mg_cinder_req *os = req->os;

	if (os->bad[0]) {
		return;
	}
	for (unsigned int i = 0; mg_os_ignored_args[i]; i++) {
		if (!strcmp(key, mg_os_ignored_args[i])) {
			return;
		}
	}
	for (unsigned int i = 0; i < MG_OS_F_COUNT; i++) {
		if (strcmp(key, mg_os_filter_names[i])) {
			continue;
		}
		if (os->filters & (1u << i)) {
			snprintf(os->bad, sizeof(os->bad), "query argument '%s' given twice", key);
			return;
		}
		if (strlen(value) >= MG_OS_FILTER_LEN) {
			snprintf(os->bad, sizeof(os->bad), "query argument '%s' too long", key);
			return;
		}
		if (i == MG_OS_F_LIMIT) {
			char *end;

			errno = 0;
			os->limit = strtoull(value, &end, 10);
			if (!isdigit((unsigned char)value[0]) || *end || errno) {
				snprintf(os->bad, sizeof(os->bad),
					 "limit must be a non-negative integer, not '%.32s'",
					 value);
				return;
			}
		}
		os->filters |= 1u << i;
		snprintf(os->filter[i], sizeof(os->filter[i]), "%s", value);
		return;
	}
	snprintf(os->bad, sizeof(os->bad), "Invalid filters %.64s are provided.", key);
}

int mg_cinder_check(struct mg_api_req *req, char *err, size_t errlen)
{
	struct mg_cinder_req *os = req->os;

	snprintf(os->reply_version, sizeof(os->reply_version), "volume 3.%u", os->minor);
	if (os->bad_version[0]) {
		/* Answered in the newest version, as Cinder does. */
		snprintf(os->reply_version, sizeof(os->reply_version), "volume 3.%u",
			 MG_CINDER_MAX_MINOR);
		snprintf(err, errlen, "%s", os->bad_version);
		return os->bad_version_err;
	}
	if (os->bad[0]) {
		snprintf(err, errlen, "%s", os->bad);
		return -EINVAL;
	}
	return 0;
}

const char *mg_cinder_reply_version(const struct mg_api_req *req)
{
	return req->os && req->os->reply_version[0] ? req->os->reply_version : NULL;
}

void mg_cinder_free(struct mg_api_req *req)
{
	free(req->os);
	req->os = NULL;
}

/* ---- errors ---- */

/* This edge's errno -> HTTP status and Cinder fault name. */
static int mg_os_status(int err, const char **fault)
{
	switch (err) {
	case -EINVAL:
	case -EMSGSIZE:
	case -ERANGE:
	case -EBUSY: /* Cinder answers 400 "Invalid volume" for a busy one */
		*fault = "badRequest";
		return 400;
	case -EPERM:
	case -EACCES:
		*fault = "forbidden";
		return 403;
	case -ENOENT:
		*fault = "itemNotFound";
		return 404;
	case -EOPNOTSUPP:
		*fault = "badMethod";
		return 405;
	case -EPROTONOSUPPORT:
		*fault = "notAcceptable";
		return 406;
	case -EEXIST:
	case -ESTALE:
		*fault = "conflictingRequest";
		return 409;
	case -EFBIG:
		*fault = "overLimit";
		return 413;
	case -EMEDIUMTYPE:
		*fault = "badMediaType";
		return 415;
	case -ENOSYS:
		*fault = "notImplemented";
		return 501;
	case -EAGAIN:
	case -ESHUTDOWN:
		*fault = "serviceUnavailable";
		return 503;
	default:
		*fault = "computeFault";
		return 500;
	}
}

void mg_cinder_error(struct mg_api_req *req, int err, const char *msg)
{
	const char *fault;
	json_t *j;

	req->status = mg_os_status(err, &fault);
	msg = msg && msg[0] ? msg : strerror(-err);
	j = json_pack("{s:{s:i,s:s}}", fault, "code", req->status, "message", msg);
	if (!j) {
		/* Not UTF-8: a message quoting a path's bytes (%FF). */
		char safe[MG_API_ERR_LEN];

		mg_api_ascii(msg, safe, sizeof(safe));
		j = json_pack("{s:{s:i,s:s}}", fault, "code", req->status, "message", safe);
	}
	free(req->reply);
	req->reply = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
}

static void mg_os_errorf(struct mg_api_req *req, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void mg_os_errorf(struct mg_api_req *req, int err, const char *fmt, ...)
{
	char msg[MG_API_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mg_cinder_error(req, err, msg);
}

/* ---- JSON views ---- */

/* Cinder's timestamps: "2024-05-01T12:00:00.000000". */
static json_t *mg_os_time(int64_t s)
{
	time_t t = (time_t)s;
	struct tm tm;
	char buf[40];

	if (!s || !gmtime_r(&t, &tm)) {
		return json_null();
	}
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S.000000", &tm);
	return json_string(buf);
}

static json_t *mg_os_str_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

static json_t *mg_os_links(const struct mg_cinder_req *os, const char *coll, const char *id)
{
	char self[512], book[512];

	snprintf(self, sizeof(self), "http://%s/v3/%s/%s/%s", os->host[0] ? os->host : "localhost",
		 os->project, coll, id);
	snprintf(book, sizeof(book), "http://%s/%s/%s/%s", os->host[0] ? os->host : "localhost",
		 os->project, coll, id);
	return json_pack("[{s:s,s:s},{s:s,s:s}]", "href", self, "rel", "self", "href", book, "rel",
			 "bookmark");
}

static uint64_t mg_os_gib(uint64_t bytes)
{
	return (bytes + MG_OS_GIB - 1) / MG_OS_GIB;
}

static const char *const mg_os_attach_status[] = {
	[MG_ATTACH_ATTACHING] = "attaching",
	[MG_ATTACH_ATTACHED] = "attached",
	[MG_ATTACH_ERROR] = "error_attaching",
};

/* What a volume's attachments say about it. */
struct mg_os_vol_att {
	json_t *list; /* the volume's "attachments" array */
	unsigned int n;
	bool error;
};

static int mg_os_vol_att_collect(void *arg, const struct mg_attach_rec *a)
{
	struct mg_os_vol_att *va = arg;
	json_t *j;

	va->n++;
	va->error |= a->state == MG_ATTACH_ERROR;
	j = json_pack("{s:s,s:s,s:s,s:o,s:s,s:n,s:o}", "id", a->volume_uuid, "attachment_id",
		      a->uuid, "volume_id", a->volume_uuid, "server_id",
		      mg_os_str_or_null(a->instance), "host_name", a->host, "device", "attached_at",
		      mg_os_time(a->created_at));
	return j && !json_array_append_new(va->list, j) ? 0 : -ENOMEM;
}

static const char *mg_os_volume_status(const struct mg_os_vol_att *va)
{
	return va->error ? "error" : va->n ? "in-use" : "available";
}

static int mg_os_volume_atts(struct mg_cluster *c, const struct mg_volume_rec *v,
			     struct mg_os_vol_att *va)
{
	int ret;

	memset(va, 0, sizeof(*va));
	va->list = json_array();
	if (!va->list) {
		return -ENOMEM;
	}
	ret = mg_store_each_attach(c->st, v->id, NULL, mg_os_vol_att_collect, va);
	if (ret) {
		json_decref(va->list);
		va->list = NULL;
	}
	return ret;
}

/* The detailed view; takes va->list. */
static json_t *mg_os_volume_json(struct mg_cluster *c, const struct mg_cinder_req *os,
				 const struct mg_volume_rec *v, struct mg_os_vol_att *va)
{
	const struct mg_pool *p = mg_cluster_pool(c, v->pool);
	const char *type = p ? p->rec.name : "?";
	struct mg_volume_rec src;
	bool from_snap;
	json_t *j;

	/* A clone's origin is the snapshot (maybe deleted since) or the volume
	 * it was made from. */
	from_snap = v->origin[0] && mg_store_get_volume(c->st, v->origin, &src) == -ENOENT;
	j = json_pack("{s:s,s:s,s:o,s:I,s:s,s:s,s:o,s:o,s:o,s:s,s:b,s:b,s:{},s:s,s:o,s:o,s:n,"
		      "s:n,s:s,s:s,s:o}",
		      "id", v->uuid, "name", v->name, "description",
		      mg_os_str_or_null(v->description), "size", (json_int_t)mg_os_gib(v->size),
		      "status", mg_os_volume_status(va), "availability_zone", MG_OS_ZONE,
		      "created_at", mg_os_time(v->created_at), "updated_at", json_null(),
		      "attachments", va->list, "bootable", "false", "encrypted", false,
		      "multiattach", true, "metadata", "volume_type", type, "snapshot_id",
		      mg_os_str_or_null(from_snap ? v->origin : ""), "source_volid",
		      mg_os_str_or_null(from_snap ? "" : v->origin), "consistencygroup_id",
		      "replication_status", "user_id", os->project, "os-vol-tenant-attr:tenant_id",
		      os->project, "links", mg_os_links(os, "volumes", v->uuid));
	va->list = NULL;
	if (j && os->minor >= 13) {
		json_object_set_new(j, "group_id", json_null());
	}
	if (j && os->minor >= 48) {
		json_object_set_new(j, "shared_targets", json_false());
		json_object_set_new(j, "service_uuid", json_null());
	}
	if (j && os->minor >= 63) {
		json_object_set_new(j, "volume_type_id", json_null());
	}
	if (j && os->minor >= 65) {
		json_object_set_new(j, "consumes_quota", json_true());
	}
	return j;
}

static json_t *mg_os_attachment_json(const struct mg_attach_rec *a, bool detail)
{
	json_t *j, *ci;

	j = json_pack("{s:s,s:s,s:o,s:s,s:o,s:n,s:s}", "id", a->uuid, "status",
		      mg_os_attach_status[a->state], "instance", mg_os_str_or_null(a->instance),
		      "volume_id", a->volume_uuid, "attached_at",
		      a->state == MG_ATTACH_ATTACHED ? mg_os_time(a->created_at) : json_null(),
		      "detached_at", "attach_mode", a->read_only ? "ro" : "rw");
	if (!j || !detail) {
		return j;
	}
	/* What a host needs to use the volume: Keel's own connection type. */
	ci = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s?,s:s?}", "driver_volume_type", "keel",
		       "access_mode", a->read_only ? "ro" : "rw", "attachment_id", a->uuid,
		       "volume_id", a->volume_uuid, "volume", a->volume, "host", a->host, "state",
		       mg_os_attach_status[a->state], "vhost_socket",
		       a->vhost_socket[0] ? a->vhost_socket : NULL, "nbd_uri",
		       a->nbd_uri[0] ? a->nbd_uri : NULL, "error", a->error[0] ? a->error : NULL);
	json_object_set_new(j, "connection_info", ci ? ci : json_object());
	return j;
}

static void mg_os_reply(struct mg_api_req *req, int status, const char *key, json_t *v)
{
	json_t *j = v ? json_pack("{s:o}", key, v) : NULL;

	if (!j) {
		mg_cinder_error(req, -ENOMEM, "out of memory");
		return;
	}
	mg_api_reply(req, status, j);
}

/* ---- versions ---- */

static json_t *mg_os_version_json(const struct mg_cinder_req *os)
{
	char href[512], ver[16];

	snprintf(href, sizeof(href), "http://%s/v3/", os->host[0] ? os->host : "localhost");
	snprintf(ver, sizeof(ver), "3.%u", MG_CINDER_MAX_MINOR);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:[{s:s,s:s}],s:[{s:s,s:s}]}", "id", "v3.0",
			 "status", "CURRENT", "version", ver, "min_version", "3.0", "updated",
			 MG_OS_UPDATED, "links", "href", href, "rel", "self", "media-types", "base",
			 "application/json", "type",
			 "application/vnd.openstack.volume+json;version=3");
}

static void mg_os_versions(struct mg_api_req *req)
{
	json_t *v = mg_os_version_json(req->os);

	/* GET / is a choice between versions (there is one). */
	mg_os_reply(req, req->os->route == MG_OS_VERSIONS ? 300 : 200, "versions",
		    v ? json_pack("[o]", v) : NULL);
}

/* ---- input checks ---- */

/* Ids in paths and bodies: a UUID, any case (stored lower-case). */
static bool mg_os_uuid(const char *in, char out[MG_UUID_LEN])
{
	if (strlen(in) != MG_UUID_LEN - 1) {
		return false;
	}
	for (unsigned int i = 0; i < MG_UUID_LEN - 1; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? in[i] != '-' : !isxdigit((unsigned char)in[i])) {
			return false;
		}
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[MG_UUID_LEN - 1] = '\0';
	return true;
}

/* The request body's single top-level object @key ({"volume": {...}}). */
static json_t *mg_os_body(struct mg_api_req *req, const char *key)
{
	json_t *o = json_object_get(req->body, key);

	if (!json_is_object(o)) {
		mg_os_errorf(req, -EINVAL, "request body must be {\"%s\": {...}}", key);
		return NULL;
	}
	return o;
}

/* An optional string field (absent or null: *out = NULL). No NULs inside. */
static int mg_os_opt_str(struct mg_api_req *req, json_t *o, const char *key, size_t max,
			 const char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		return 0;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		mg_os_errorf(req, -EINVAL, "'%s' must be a string", key);
		return -EINVAL;
	}
	if (json_string_length(v) > max) {
		mg_os_errorf(req, -EINVAL, "'%s' is longer than %zu bytes", key, max);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

/* A size in GiB: an integer or a string of digits (as Cinder accepts),
 * 1..MG_OS_SIZE_MAX_GIB. */
static int mg_os_size(struct mg_api_req *req, json_t *o, const char *key, uint64_t *gib)
{
	json_t *v = json_object_get(o, key);
	long long n = -1;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;

		errno = 0;
		n = strtoll(s, &end, 10);
		if (!isdigit((unsigned char)s[0]) || *end || errno ||
		    strlen(s) != json_string_length(v)) {
			n = -2;
		}
	} else {
		n = -2;
	}
	if (!v) {
		mg_os_errorf(req, -EINVAL, "'%s' is required", key);
		return -EINVAL;
	}
	if (n == -2) {
		mg_os_errorf(req, -EINVAL, "'%s' must be an integer number of GiB", key);
		return -EINVAL;
	}
	if (n < 1 || (unsigned long long)n > MG_OS_SIZE_MAX_GIB) {
		mg_os_errorf(req, -EINVAL, "'%s' must be 1 to %llu GiB, not %lld", key,
			     (unsigned long long)MG_OS_SIZE_MAX_GIB, n);
		return -EINVAL;
	}
	*gib = (uint64_t)n;
	return 0;
}

/* Fields a request may carry, only as null (or the given empty value):
 * Cinder features Keel does not have. */
static int mg_os_unsupported(struct mg_api_req *req, json_t *o, const char *const *keys)
{
	for (unsigned int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(o, keys[i]);

		if (v && !json_is_null(v) && !(json_is_object(v) && !json_object_size(v)) &&
		    !json_is_false(v)) {
			mg_os_errorf(req, -EINVAL, "'%s' is not supported by Keel", keys[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int mg_os_known(struct mg_api_req *req, json_t *o, const char *const *known)
{
	char err[MG_API_ERR_LEN];
	int ret = mg_api_fields_known(o, known, err, sizeof(err));

	if (ret) {
		mg_cinder_error(req, ret, err);
	}
	return ret;
}

/* The volume named by an id in the path or a body: 0, or an error reply. */
static int mg_os_find_volume(struct mg_cluster *c, struct mg_api_req *req, const char *id,
			     struct mg_volume_rec *v)
{
	char uuid[MG_UUID_LEN];
	int ret = -ENOENT;

	if (mg_os_uuid(id, uuid)) {
		ret = mg_store_get_volume(c->st, uuid, v);
	}
	if (ret == -ENOENT) {
		mg_os_errorf(req, ret, "Volume %.64s could not be found.", id);
	} else if (ret) {
		mg_os_errorf(req, ret, "volume %.64s cannot be read", id);
	}
	return ret;
}

/* ---- volumes ---- */

struct mg_os_list {
	struct mg_cluster *c;
	struct mg_api_req *req;
	json_t *out;
	bool detail;
	bool past_marker;
	uint64_t n;
};

static bool mg_os_filtered(const struct mg_cinder_req *os, enum mg_os_filter f, const char *val)
{
	return (os->filters & (1u << f)) && strcmp(os->filter[f], val);
}

/* A list walk's callback stops the walk with this when the page is full
 * (mg_store_each_* return it; not an error). */
#define MG_OS_PAGE_FULL (-ECANCELED)

/* Marker and limit: Cinder pages by the last id seen. */
static bool mg_os_page(struct mg_os_list *l, const char *id, bool *stop)
{
	const struct mg_cinder_req *os = l->req->os;

	if ((os->filters & (1u << MG_OS_F_MARKER)) && !l->past_marker) {
		l->past_marker = !strcmp(os->filter[MG_OS_F_MARKER], id);
		return false;
	}
	if ((os->filters & (1u << MG_OS_F_LIMIT)) && l->n >= os->limit) {
		*stop = true;
		return false;
	}
	l->n++;
	return true;
}

static int mg_os_volume_collect(void *arg, const struct mg_volume_rec *v)
{
	struct mg_os_list *l = arg;
	const struct mg_cinder_req *os = l->req->os;
	struct mg_os_vol_att va;
	bool stop = false;
	json_t *j;
	int ret;

	if (mg_os_filtered(os, MG_OS_F_NAME, v->name)) {
		return 0;
	}
	ret = mg_os_volume_atts(l->c, v, &va);
	if (ret) {
		return ret;
	}
	if (mg_os_filtered(os, MG_OS_F_STATUS, mg_os_volume_status(&va)) ||
	    !mg_os_page(l, v->uuid, &stop)) {
		json_decref(va.list);
		return stop ? MG_OS_PAGE_FULL : 0;
	}
	if (l->detail) {
		j = mg_os_volume_json(l->c, os, v, &va);
	} else {
		json_decref(va.list);
		j = json_pack("{s:s,s:s,s:o}", "id", v->uuid, "name", v->name, "links",
			      mg_os_links(os, "volumes", v->uuid));
	}
	return j && !json_array_append_new(l->out, j) ? 0 : -ENOMEM;
}

static void mg_os_volume_list(struct mg_cluster *c, struct mg_api_req *req, bool detail)
{
	struct mg_os_list l = {.c = c, .req = req, .out = json_array(), .detail = detail};
	int ret;

	ret = l.out ? mg_store_each_volume(c->st, mg_os_volume_collect, &l) : -ENOMEM;
	if (ret && ret != MG_OS_PAGE_FULL) {
		json_decref(l.out);
		mg_cinder_error(req, ret, "cannot read volumes");
		return;
	}
	if ((req->os->filters & (1u << MG_OS_F_MARKER)) && !l.past_marker) {
		json_decref(l.out);
		mg_os_errorf(req, -EINVAL, "marker [%s] not found",
			     req->os->filter[MG_OS_F_MARKER]);
		return;
	}
	mg_os_reply(req, 200, "volumes", l.out);
}

static void mg_os_volume_reply(struct mg_cluster *c, struct mg_api_req *req, int status,
			       const struct mg_volume_rec *v)
{
	struct mg_os_vol_att va;
	int ret;

	ret = mg_os_volume_atts(c, v, &va);
	if (ret) {
		mg_cinder_error(req, ret, "cannot read attachments");
		return;
	}
	mg_os_reply(req, status, "volume", mg_os_volume_json(c, req->os, v, &va));
}

static void mg_os_volume_show(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_volume_rec v;

	if (!mg_os_find_volume(c, req, req->arg, &v)) {
		mg_os_volume_reply(c, req, 200, &v);
	}
}

/* ---- native handlers on a Cinder request's behalf ---- */

static void mg_os_native_done(struct mg_api_req *req)
{
	struct mg_cinder_req *os = req->os;

	if (req->status >= 200 && req->status < 300 && os->done) {
		os->done(os->c, req);
	}
}

static void mg_os_native_finished(struct mg_api_req *req)
{
	req->finished = req->os->outer_finished;
	mg_os_native_done(req);
	mg_api_finish(req);
}

/*
 * Run the native handler of @route on volume @arg with @body (taken: it
 * replaces the Cinder body). Its error replies are Cinder's already; on
 * success @done (may be NULL) turns the native reply into Cinder's, now or
 * when a deferred native handler finishes.
 */
static void mg_os_native(struct mg_cluster *c, struct mg_api_req *req, enum mg_route route,
			 enum mg_method method, const char *arg, json_t *body,
			 void (*done)(struct mg_cluster *c, struct mg_api_req *req))
{
	struct mg_cinder_req *os = req->os;

	if (!body) {
		mg_cinder_error(req, -ENOMEM, "out of memory");
		return;
	}
	os->c = c;
	os->done = done;
	os->outer_finished = req->finished;
	json_decref(req->body);
	req->body = body;
	req->route = route;
	req->method = method;
	snprintf(req->arg, sizeof(req->arg), "%s", arg);
	req->finished = mg_os_native_finished;
	mg_volume_handle(c, req);
	if (!req->pending) {
		req->finished = os->outer_finished;
		mg_os_native_done(req);
	}
}

/* The "uuid" or "id" of the native reply's object. */
static bool mg_os_reply_id(const struct mg_api_req *req, const char *key, char out[MG_UUID_LEN])
{
	json_t *j = req->reply ? json_loads(req->reply, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, key));
	bool ok = id && mg_os_uuid(id, out);

	json_decref(j);
	return ok;
}

/* Native 2xx, Cinder 202 with no body (delete, extend, revert). */
static void mg_os_done_accepted(struct mg_cluster *c, struct mg_api_req *req)
{
	mg_api_reply(req, 202, NULL);
}

static void mg_os_done_volume(struct mg_cluster *c, struct mg_api_req *req)
{
	char uuid[MG_UUID_LEN];
	struct mg_volume_rec v;

	if (!mg_os_reply_id(req, "uuid", uuid) || mg_store_get_volume(c->st, uuid, &v)) {
		mg_cinder_error(req, -EIO, "volume created, but it cannot be read back");
		return;
	}
	mg_os_volume_reply(c, req, 202, &v);
}

/* Native 200 (rename): Cinder 200 with the volume. */
static void mg_os_done_updated(struct mg_cluster *c, struct mg_api_req *req)
{
	char uuid[MG_UUID_LEN];
	struct mg_volume_rec v;

	if (!mg_os_reply_id(req, "uuid", uuid) || mg_store_get_volume(c->st, uuid, &v)) {
		mg_cinder_error(req, -EIO, "volume updated, but it cannot be read back");
		return;
	}
	mg_os_volume_reply(c, req, 200, &v);
}

/* ---- volumes: changes ---- */

/* PUT volumes/{id} {"volume": {"name"?, "description"?}} (or the v1
 * display_name/display_description): `cinder rename`, `openstack volume
 * set --name/--description`. Names follow Keel's rules (they name the
 * volume everywhere); metadata is not kept (400). */
static void mg_os_volume_update(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"name",	    "description",	    "metadata",
					    "display_name", "display_description", NULL};
	static const char *const unsupported[] = {"metadata", NULL};
	const char *name = NULL, *desc = NULL, *dname = NULL, *ddesc = NULL;
	char err[MG_API_ERR_LEN];
	struct mg_volume_rec v;
	json_t *o, *body;
	int ret;

	if (mg_os_find_volume(c, req, req->arg, &v)) {
		return;
	}
	o = mg_os_body(req, "volume");
	if (!o || mg_os_known(req, o, known) || mg_os_unsupported(req, o, unsupported) ||
	    mg_os_opt_str(req, o, "name", 255, &name) ||
	    mg_os_opt_str(req, o, "description", MG_DESC_LEN - 1, &desc) ||
	    mg_os_opt_str(req, o, "display_name", 255, &dname) ||
	    mg_os_opt_str(req, o, "display_description", MG_DESC_LEN - 1, &ddesc)) {
		return;
	}
	/* The v1 names, which openstackclient still sends for `volume set`. */
	name = name ? name : dname;
	desc = desc ? desc : ddesc;
	if (!name && !desc) {
		mg_os_errorf(req, -EINVAL, "Invalid input received: give a name or a description");
		return;
	}
	if (name) {
		ret = mg_check_name("volume", name, err, sizeof(err));
		if (ret) {
			mg_cinder_error(req, ret, err);
			return;
		}
	}
	body = json_object();
	if (name && strcmp(name, v.name)) {
		json_object_set_new(body, "name", json_string(name));
	}
	if (desc) {
		json_object_set_new(body, "description", json_string(desc));
	}
	if (!json_object_size(body)) {
		json_decref(body);
		mg_os_volume_reply(c, req, 200, &v); /* nothing to change */
		return;
	}
	mg_os_native(c, req, MG_R_VOLUME_RENAME, MG_M_POST, v.name, body, mg_os_done_updated);
}

static void mg_os_volume_create(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"size",
					    "name",
					    "description",
					    "volume_type",
					    "availability_zone",
					    "metadata",
					    "snapshot_id",
					    "source_volid",
					    "imageRef",
					    "backup_id",
					    "consistencygroup_id",
					    "group_id",
					    "multiattach",
					    "display_name",
					    "display_description",
					    NULL};
	static const char *const unsupported[] = {
		"imageRef", "backup_id",    "consistencygroup_id", "group_id",
		"metadata", "display_name", "display_description", NULL};
	const char *name, *desc, *type, *zone, *snap, *src;
	char err[MG_API_ERR_LEN], uuid[MG_UUID_LEN], vname[CMAP_NAME_LEN];
	struct mg_volume_rec sv;
	struct mg_snap_rec sn;
	uint64_t gib = 0;
	json_t *o, *body, *size;
	int ret;

	o = mg_os_body(req, "volume");
	if (!o || mg_os_known(req, o, known) || mg_os_unsupported(req, o, unsupported) ||
	    mg_os_opt_str(req, o, "name", 255, &name) ||
	    mg_os_opt_str(req, o, "description", MG_DESC_LEN - 1, &desc) ||
	    mg_os_opt_str(req, o, "volume_type", 255, &type) ||
	    mg_os_opt_str(req, o, "availability_zone", 255, &zone) ||
	    mg_os_opt_str(req, o, "snapshot_id", 255, &snap) ||
	    mg_os_opt_str(req, o, "source_volid", 255, &src)) {
		return;
	}
	/* A clone's size defaults to its origin's. */
	size = json_object_get(o, "size");
	if ((!(snap || src) || (size && !json_is_null(size))) && mg_os_size(req, o, "size", &gib)) {
		return;
	}
	if (json_object_get(o, "multiattach") &&
	    !json_is_boolean(json_object_get(o, "multiattach"))) {
		mg_os_errorf(req, -EINVAL, "'multiattach' must be true or false");
		return;
	}
	if (zone && strcmp(zone, MG_OS_ZONE)) {
		mg_os_errorf(req, -EINVAL, "Availability zone '%.64s' is invalid (Keel has '%s')",
			     zone, MG_OS_ZONE);
		return;
	}
	if (snap && src) {
		mg_os_errorf(req, -EINVAL, "give snapshot_id or source_volid, not both");
		return;
	}
	if (type && !mg_cluster_pool_by_name(c, type)) {
		mg_os_errorf(req, -EINVAL,
			     "Volume type '%.64s' could not be found (volume types are Keel pools)",
			     type);
		return;
	}
	if (name && name[0]) {
		ret = mg_check_name("volume", name, err, sizeof(err));
		if (ret) {
			mg_cinder_error(req, ret, err);
			return;
		}
		snprintf(vname, sizeof(vname), "%s", name);
	} else {
		mg_uuid_new(uuid);
		snprintf(vname, sizeof(vname), "volume-%s", uuid);
	}
	/* Origins named in the body: missing ones are bad requests (400),
	 * not missing resources. */
	if (snap && (!mg_os_uuid(snap, uuid) || mg_store_get_snap(c->st, 0, uuid, &sn))) {
		mg_os_errorf(req, -EINVAL, "Invalid input received: snapshot %.64s not found",
			     snap);
		return;
	}
	if (src && (!mg_os_uuid(src, uuid) || mg_store_get_volume(c->st, uuid, &sv))) {
		mg_os_errorf(req, -EINVAL, "Invalid input received: source volume %.64s not found",
			     src);
		return;
	}
	body = json_pack("{s:s,s:s}", "name", vname, "description", desc ? desc : "");
	if (body && gib) {
		json_object_set_new(body, "size", json_integer((json_int_t)(gib * MG_OS_GIB)));
	}
	if (body && type) {
		json_object_set_new(body, "pool", json_string(type));
	}
	if (body && snap) {
		json_object_set_new(body, "snapshot", json_string(uuid));
	}
	if (body && src) {
		json_object_set_new(body, "source_volume", json_string(sv.name));
	}
	mg_os_native(c, req, MG_R_VOLUMES, MG_M_POST, "", body, mg_os_done_volume);
}

static void mg_os_volume_delete(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_volume_rec v;

	if (!mg_os_find_volume(c, req, req->arg, &v)) {
		mg_os_native(c, req, MG_R_VOLUME, MG_M_DELETE, v.name, json_object(),
			     mg_os_done_accepted);
	}
}

static void mg_os_volume_extend(struct mg_cluster *c, struct mg_api_req *req,
				struct mg_volume_rec *v, json_t *args)
{
	static const char *const known[] = {"new_size", NULL};
	unsigned int nattach = 0;
	uint64_t gib;

	if (!json_is_object(args)) {
		mg_os_errorf(req, -EINVAL, "os-extend takes {\"new_size\": GiB}");
		return;
	}
	if (mg_os_known(req, args, known) || mg_os_size(req, args, "new_size", &gib)) {
		return;
	}
	if (gib * MG_OS_GIB <= v->size) {
		mg_os_errorf(req, -EINVAL,
			     "Invalid input received: New size for extend must be greater than "
			     "current size. (current: %llu, extended: %llu).",
			     (unsigned long long)mg_os_gib(v->size), (unsigned long long)gib);
		return;
	}
	if (!mg_attach_count(c, v->id, &nattach) && nattach && req->os->minor < 42) {
		mg_os_errorf(req, -EBUSY,
			     "Invalid volume: Volume status must be available to extend, but "
			     "current status is: in-use (extending an attached volume needs "
			     "microversion 3.42)");
		return;
	}
	mg_os_native(c, req, MG_R_VOLUME_RESIZE, MG_M_POST, v->name,
		     json_pack("{s:I}", "size", (json_int_t)(gib * MG_OS_GIB)),
		     mg_os_done_accepted);
}

static void mg_os_volume_revert(struct mg_cluster *c, struct mg_api_req *req,
				struct mg_volume_rec *v, json_t *args)
{
	static const char *const known[] = {"snapshot_id", NULL};
	char uuid[MG_UUID_LEN];
	struct mg_snap_rec sn;
	const char *snap;

	if (req->os->minor < 40) {
		mg_os_errorf(req, -EINVAL, "revert needs microversion 3.40");
		return;
	}
	if (!json_is_object(args)) {
		mg_os_errorf(req, -EINVAL, "revert takes {\"snapshot_id\": ID}");
		return;
	}
	if (mg_os_known(req, args, known) || mg_os_opt_str(req, args, "snapshot_id", 64, &snap)) {
		return;
	}
	if (!snap || !mg_os_uuid(snap, uuid) || mg_store_get_snap(c->st, 0, uuid, &sn) ||
	    sn.volume_id != v->id) {
		mg_os_errorf(req, -EINVAL,
			     "Invalid input received: snapshot %.64s of volume %s not "
			     "found",
			     snap ? snap : "(none)", v->uuid);
		return;
	}
	mg_os_native(c, req, MG_R_VOLUME_REVERT, MG_M_POST, v->name,
		     json_pack("{s:s}", "snapshot", uuid), mg_os_done_accepted);
}

static void mg_os_volume_action(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_volume_rec v;
	const char *action;
	json_t *args;

	if (mg_os_find_volume(c, req, req->arg, &v)) {
		return;
	}
	if (json_object_size(req->body) != 1) {
		mg_os_errorf(req, -EINVAL, "an action body has exactly one key, the action");
		return;
	}
	json_object_foreach(req->body, action, args)
	{
		if (!strcmp(action, "os-extend")) {
			mg_os_volume_extend(c, req, &v, args);
		} else if (!strcmp(action, "revert")) {
			mg_os_volume_revert(c, req, &v, args);
		} else {
			mg_os_errorf(req, -EINVAL, "There is no such action: %.64s", action);
		}
		/* The native handler may have replaced req->body. */
		break;
	}
}

/* ---- attachments (3.27) ---- */

static int mg_os_find_attachment(struct mg_cluster *c, struct mg_api_req *req, const char *id,
				 struct mg_attach_rec *a)
{
	char uuid[MG_UUID_LEN];
	int ret = -ENOENT;

	if (mg_os_uuid(id, uuid)) {
		ret = mg_store_get_attach_uuid(c->st, uuid, a);
	}
	if (ret == -ENOENT) {
		mg_os_errorf(req, ret, "VolumeAttachment %.64s could not be found.", id);
	} else if (ret) {
		mg_os_errorf(req, ret, "attachment %.64s cannot be read", id);
	}
	return ret;
}

static int mg_os_attach_collect(void *arg, const struct mg_attach_rec *a)
{
	struct mg_os_list *l = arg;
	const struct mg_cinder_req *os = l->req->os;
	bool stop = false;
	json_t *j;

	if (mg_os_filtered(os, MG_OS_F_VOLUME_ID, a->volume_uuid) ||
	    mg_os_filtered(os, MG_OS_F_INSTANCE_ID, a->instance) ||
	    mg_os_filtered(os, MG_OS_F_STATUS, mg_os_attach_status[a->state])) {
		return 0;
	}
	if (!mg_os_page(l, a->uuid, &stop)) {
		return stop ? MG_OS_PAGE_FULL : 0;
	}
	j = mg_os_attachment_json(a, l->detail);
	return j && !json_array_append_new(l->out, j) ? 0 : -ENOMEM;
}

static void mg_os_attach_list(struct mg_cluster *c, struct mg_api_req *req, bool detail)
{
	struct mg_os_list l = {.c = c, .req = req, .out = json_array(), .detail = detail};
	int ret;

	ret = l.out ? mg_store_each_attach(c->st, 0, NULL, mg_os_attach_collect, &l) : -ENOMEM;
	if (ret && ret != MG_OS_PAGE_FULL) {
		json_decref(l.out);
		mg_cinder_error(req, ret, "cannot read attachments");
		return;
	}
	mg_os_reply(req, 200, "attachments", l.out);
}

static void mg_os_attach_create(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {"volume_uuid", "instance_uuid", "connector", "mode",
					    NULL};
	const char *vol, *inst, *mode, *host;
	char err[MG_API_ERR_LEN], iuuid[MG_UUID_LEN] = "";
	struct mg_volume_rec v;
	struct mg_attach_rec a;
	json_t *o, *conn, *h;
	int ret;

	o = mg_os_body(req, "attachment");
	if (!o || mg_os_known(req, o, known) || mg_os_opt_str(req, o, "volume_uuid", 64, &vol) ||
	    mg_os_opt_str(req, o, "instance_uuid", 64, &inst) ||
	    mg_os_opt_str(req, o, "mode", 8, &mode)) {
		return;
	}
	if (!vol) {
		mg_os_errorf(req, -EINVAL, "'volume_uuid' is required");
		return;
	}
	if (inst && !mg_os_uuid(inst, iuuid)) {
		mg_os_errorf(req, -EINVAL, "'instance_uuid' must be a UUID, not '%.64s'", inst);
		return;
	}
	if (mode && strcmp(mode, "rw") && strcmp(mode, "ro")) {
		mg_os_errorf(req, -EINVAL, "'mode' must be 'rw' or 'ro', not '%.8s'", mode);
		return;
	}
	if (mode && req->os->minor < 54) {
		mg_os_errorf(req, -EINVAL, "'mode' needs microversion 3.54");
		return;
	}
	conn = json_object_get(o, "connector");
	h = json_object_get(conn, "host");
	if (!json_is_object(conn) || !json_is_string(h)) {
		/* Keel has no attachment without a host (no reservations). */
		mg_os_errorf(req, -EINVAL, "a connector with the 'host' to attach to is required");
		return;
	}
	host = json_string_value(h);
	if (strlen(host) != json_string_length(h) ||
	    mg_check_name("host", host, err, sizeof(err))) {
		mg_os_errorf(req, -EINVAL, "connector host: %s", err);
		return;
	}
	if (mg_os_find_volume(c, req, vol, &v)) {
		if (req->status == 404) {
			/* A body naming a missing volume is a bad request. */
			mg_os_errorf(req, -EINVAL, "Volume %.64s could not be found.", vol);
		}
		return;
	}
	memset(&a, 0, sizeof(a));
	snprintf(a.host, sizeof(a.host), "%s", host);
	snprintf(a.instance, sizeof(a.instance), "%s", iuuid);
	a.read_only = mode && !strcmp(mode, "ro");
	a.nbd = true; /* hosts get the NBD socket too (docs/api.md) */
	ret = mg_attach_add(c, &v, &a, err, sizeof(err));
	if (ret < 0) {
		mg_cinder_error(req, ret, err);
		return;
	}
	if (ret == 2) {
		mg_reply_fenced(c, req, 200,
				json_pack("{s:o}", "attachment", mg_os_attachment_json(&a, true)),
				"attachment-create");
		return;
	}
	mg_os_reply(req, 200, "attachment", mg_os_attachment_json(&a, true));
}

static void mg_os_attach_delete(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_os_list l = {.c = c, .req = req, .detail = false};
	char err[MG_API_ERR_LEN];
	struct mg_volume_rec v;
	struct mg_attach_rec a;
	int ret;

	if (mg_os_find_attachment(c, req, req->arg, &a)) {
		return;
	}
	ret = mg_store_get_volume(c->st, a.volume_uuid, &v);
	if (!ret) {
		ret = mg_attach_remove(c, &v, a.host, err, sizeof(err));
	} else {
		snprintf(err, sizeof(err), "volume of attachment %s cannot be read", a.uuid);
	}
	if (ret) {
		mg_cinder_error(req, ret, err);
		return;
	}
	/* Cinder answers with the volume's remaining attachments. */
	l.out = json_array();
	ret = l.out ? mg_store_each_attach(c->st, v.id, NULL, mg_os_attach_collect, &l) : -ENOMEM;
	if (ret && ret != MG_OS_PAGE_FULL) {
		json_decref(l.out);
		l.out = json_array();
	}
	/* Once the detached host is fenced (mg_attach_remove()). */
	mg_reply_fenced(c, req, 200, json_pack("{s:o}", "attachments", l.out), "attachment-delete");
}

static void mg_os_attach_action(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_attach_rec a;

	if (mg_os_find_attachment(c, req, req->arg, &a)) {
		return;
	}
	if (json_object_size(req->body) != 1 || !json_object_get(req->body, "os-complete")) {
		mg_os_errorf(req, -EINVAL, "the only attachment action is os-complete");
		return;
	}
	/* The host's keel-client reports the attachment up by itself. */
	mg_api_reply(req, 204, NULL);
}

/* ---- snapshots ---- */

static json_t *mg_os_snapshot_json(const struct mg_cinder_req *os, const struct mg_snap_rec *sn,
				   const char *volume_uuid, bool detail)
{
	json_t *j;

	j = json_pack("{s:s,s:s,s:o,s:s,s:I,s:s,s:o,s:n,s:{}}", "id", sn->uuid, "name", sn->name,
		      "description", mg_os_str_or_null(sn->description), "volume_id", volume_uuid,
		      "size", (json_int_t)mg_os_gib(sn->size), "status", "available", "created_at",
		      mg_os_time(sn->created_at), "updated_at", "metadata");
	if (j && detail) {
		json_object_set_new(j, "os-extended-snapshot-attributes:progress",
				    json_string("100%"));
		json_object_set_new(j, "os-extended-snapshot-attributes:project_id",
				    json_string(os->project));
		if (os->minor >= 14) {
			json_object_set_new(j, "group_snapshot_id", json_null());
		}
		if (os->minor >= 41) {
			json_object_set_new(j, "user_id", json_string(os->project));
		}
		if (os->minor >= 65) {
			json_object_set_new(j, "consumes_quota", json_true());
		}
	}
	return j;
}

static int mg_os_find_snapshot(struct mg_cluster *c, struct mg_api_req *req, const char *id,
			       struct mg_snap_rec *sn, struct mg_volume_rec *v)
{
	char uuid[MG_UUID_LEN];
	int ret = -ENOENT;

	if (mg_os_uuid(id, uuid)) {
		ret = mg_store_get_snap(c->st, 0, uuid, sn);
	}
	if (!ret) {
		ret = mg_store_get_volume_id(c->st, sn->volume_id, v);
	}
	if (ret == -ENOENT) {
		mg_os_errorf(req, ret, "Snapshot %.64s could not be found.", id);
	} else if (ret) {
		mg_os_errorf(req, ret, "snapshot %.64s cannot be read", id);
	}
	return ret;
}

static int mg_os_snap_collect(void *arg, const struct mg_snap_rec *sn)
{
	struct mg_os_list *l = arg;
	const struct mg_cinder_req *os = l->req->os;
	struct mg_volume_rec v;
	bool stop = false;
	json_t *j;

	if (mg_store_get_volume_id(l->c->st, sn->volume_id, &v)) {
		return -EIO;
	}
	if (mg_os_filtered(os, MG_OS_F_NAME, sn->name) ||
	    mg_os_filtered(os, MG_OS_F_VOLUME_ID, v.uuid) ||
	    mg_os_filtered(os, MG_OS_F_STATUS, "available")) {
		return 0;
	}
	if (!mg_os_page(l, sn->uuid, &stop)) {
		return stop ? MG_OS_PAGE_FULL : 0;
	}
	j = mg_os_snapshot_json(os, sn, v.uuid, l->detail);
	return j && !json_array_append_new(l->out, j) ? 0 : -ENOMEM;
}

static void mg_os_snap_list(struct mg_cluster *c, struct mg_api_req *req, bool detail)
{
	struct mg_os_list l = {.c = c, .req = req, .out = json_array(), .detail = detail};
	int ret;

	ret = l.out ? mg_store_each_snap(c->st, 0, mg_os_snap_collect, &l) : -ENOMEM;
	if (ret && ret != MG_OS_PAGE_FULL) {
		json_decref(l.out);
		mg_cinder_error(req, ret, "cannot read snapshots");
		return;
	}
	if ((req->os->filters & (1u << MG_OS_F_MARKER)) && !l.past_marker) {
		json_decref(l.out);
		mg_os_errorf(req, -EINVAL, "marker [%s] not found",
			     req->os->filter[MG_OS_F_MARKER]);
		return;
	}
	mg_os_reply(req, 200, "snapshots", l.out);
}

static void mg_os_done_snapshot(struct mg_cluster *c, struct mg_api_req *req)
{
	char uuid[MG_UUID_LEN];
	struct mg_snap_rec sn;
	struct mg_volume_rec v;

	if (!mg_os_reply_id(req, "id", uuid) || mg_store_get_snap(c->st, 0, uuid, &sn) ||
	    mg_store_get_volume_id(c->st, sn.volume_id, &v)) {
		mg_cinder_error(req, -EIO, "snapshot taken, but it cannot be read back");
		return;
	}
	mg_os_reply(req, 202, "snapshot", mg_os_snapshot_json(req->os, &sn, v.uuid, true));
}

static void mg_os_snap_create(struct mg_cluster *c, struct mg_api_req *req)
{
	static const char *const known[] = {
		"volume_id", "name",	     "description",	    "force",
		"metadata",  "display_name", "display_description", NULL};
	static const char *const unsupported[] = {"metadata", "display_name", "display_description",
						  NULL};
	char err[MG_API_ERR_LEN], uuid[MG_UUID_LEN], sname[CMAP_NAME_LEN];
	const char *vol, *name, *desc;
	struct mg_volume_rec v;
	json_t *o, *force;
	int ret;

	o = mg_os_body(req, "snapshot");
	if (!o || mg_os_known(req, o, known) || mg_os_unsupported(req, o, unsupported) ||
	    mg_os_opt_str(req, o, "volume_id", 64, &vol) ||
	    mg_os_opt_str(req, o, "name", 255, &name) ||
	    mg_os_opt_str(req, o, "description", MG_DESC_LEN - 1, &desc)) {
		return;
	}
	force = json_object_get(o, "force");
	if (force && !json_is_boolean(force) && !json_is_null(force)) {
		/* Keel snapshots attached volumes alike (writers are fenced). */
		mg_os_errorf(req, -EINVAL, "'force' must be true or false");
		return;
	}
	if (!vol) {
		mg_os_errorf(req, -EINVAL, "'volume_id' is required");
		return;
	}
	if (!mg_os_uuid(vol, uuid) || mg_store_get_volume(c->st, uuid, &v)) {
		mg_os_errorf(req, -EINVAL, "Invalid input received: volume %.64s not found", vol);
		return;
	}
	if (name && name[0]) {
		ret = mg_check_name("snapshot", name, err, sizeof(err));
		if (ret) {
			mg_cinder_error(req, ret, err);
			return;
		}
		snprintf(sname, sizeof(sname), "%s", name);
	} else {
		mg_uuid_new(uuid);
		snprintf(sname, sizeof(sname), "snapshot-%s", uuid);
	}
	mg_os_native(c, req, MG_R_VOLUME_SNAPSHOTS, MG_M_POST, v.name,
		     json_pack("{s:s,s:s}", "name", sname, "description", desc ? desc : ""),
		     mg_os_done_snapshot);
}

static void mg_os_snapshots(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_snap_rec sn;
	struct mg_volume_rec v;

	switch (req->os->route) {
	case MG_OS_SNAPSHOTS:
		if (req->method == MG_M_POST) {
			mg_os_snap_create(c, req);
		} else {
			mg_os_snap_list(c, req, false);
		}
		break;
	case MG_OS_SNAPSHOTS_DETAIL:
		mg_os_snap_list(c, req, true);
		break;
	default:
		if (mg_os_find_snapshot(c, req, req->arg, &sn, &v)) {
			return;
		}
		if (req->method == MG_M_DELETE) {
			mg_os_native(c, req, MG_R_SNAPSHOT, MG_M_DELETE, sn.uuid, json_object(),
				     mg_os_done_accepted);
		} else {
			mg_os_reply(req, 200, "snapshot",
				    mg_os_snapshot_json(req->os, &sn, v.uuid, true));
		}
		break;
	}
}

/* ---- dispatch ---- */

void mg_cinder_handle(struct mg_cluster *c, struct mg_api_req *req)
{
	struct mg_cinder_req *os = req->os;
	bool post = req->method == MG_M_POST, del = req->method == MG_M_DELETE;

	if (c->stopping) {
		mg_cinder_error(req, -ESHUTDOWN, "mgmt is shutting down");
		return;
	}
	if (os->route >= MG_OS_ATTACHMENTS && os->minor < 27) {
		mg_os_errorf(req, -ENOENT,
			     "attachments need microversion 3.27 or later (OpenStack-API-Version: "
			     "volume 3.27)");
		return;
	}
	switch (os->route) {
	case MG_OS_VERSIONS:
	case MG_OS_VERSION:
		mg_os_versions(req);
		break;
	case MG_OS_VOLUMES:
		if (post) {
			mg_os_volume_create(c, req);
		} else {
			mg_os_volume_list(c, req, false);
		}
		break;
	case MG_OS_VOLUMES_DETAIL:
		mg_os_volume_list(c, req, true);
		break;
	case MG_OS_VOLUME:
		if (del) {
			mg_os_volume_delete(c, req);
		} else if (req->method == MG_M_PUT) {
			mg_os_volume_update(c, req);
		} else {
			mg_os_volume_show(c, req);
		}
		break;
	case MG_OS_VOLUME_ACTION:
		mg_os_volume_action(c, req);
		break;
	case MG_OS_SNAPSHOTS:
	case MG_OS_SNAPSHOTS_DETAIL:
	case MG_OS_SNAPSHOT:
		mg_os_snapshots(c, req);
		break;
	case MG_OS_ATTACHMENTS:
		if (post) {
			mg_os_attach_create(c, req);
		} else {
			mg_os_attach_list(c, req, false);
		}
		break;
	case MG_OS_ATTACHMENTS_DETAIL:
		mg_os_attach_list(c, req, true);
		break;
	case MG_OS_ATTACHMENT:
		if (del) {
			mg_os_attach_delete(c, req);
		} else {
			struct mg_attach_rec a;

			if (!mg_os_find_attachment(c, req, req->arg, &a)) {
				mg_os_reply(req, 200, "attachment",
					    mg_os_attachment_json(&a, true));
			}
		}
		break;
	case MG_OS_ATTACHMENT_ACTION:
		mg_os_attach_action(c, req);
		break;
	default:
		mg_cinder_error(req, -ENOENT, "no such resource");
		break;
	}
}
