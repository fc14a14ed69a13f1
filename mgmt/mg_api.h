/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_api: the native REST API (docs/api.md), transport-independent.
 *
 * mg_api_route() and mg_api_parse_body() are pure and run on the HTTP
 * thread; mg_api_handle() runs on the reactor thread (it reads and changes
 * mg_cluster and the store). mg_api_http_status() is the only errno ->
 * HTTP status mapping of keel-mgmt.
 */
#ifndef KEEL_MGMT_MG_API_H
#define KEEL_MGMT_MG_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mgmt/mg_cluster.h"

#define MG_API_ARG_LEN	128
#define MG_API_ERR_LEN	256
#define MG_API_BODY_MAX (64 * 1024)

enum mg_route {
	MG_R_NONE = 0,
	MG_R_INFO,		 /* GET /v1/cluster/info */
	MG_R_STATUS,		 /* GET /v1/cluster/status */
	MG_R_SERVERS,		 /* GET /v1/servers */
	MG_R_SERVER,		 /* GET /v1/servers/{id} */
	MG_R_POOLS,		 /* GET, POST /v1/pools */
	MG_R_POOL_QOS,		 /* POST /v1/pools/{name}/qos */
	MG_R_POOL_OVERCOMMIT,	 /* POST /v1/pools/{name}/overcommit */
	MG_R_PGS,		 /* GET /v1/pgs */
	MG_R_VOLUMES,		 /* GET, POST /v1/volumes */
	MG_R_VOLUME,		 /* GET, DELETE /v1/volumes/{name} */
	MG_R_VOLUME_ATTACHMENTS, /* GET, POST /v1/volumes/{name}/attachments */
	MG_R_VOLUME_ATTACHMENT,	 /* GET, DELETE /v1/volumes/{name}/attachments/{host} */
	MG_R_ATTACHMENTS,	 /* GET /v1/attachments */
	MG_R_HOST_ATTACHMENTS,	 /* GET /v1/hosts/{host}/attachments (keel-client) */
	MG_R_HOST_ATTACHMENT,	 /* PUT /v1/hosts/{host}/attachments/{volume} (keel-client) */
	MG_R_VOLUME_SNAPSHOTS,	 /* GET, POST /v1/volumes/{name}/snapshots */
	MG_R_VOLUME_SNAPSHOT,	 /* GET, DELETE /v1/volumes/{name}/snapshots/{snap} */
	MG_R_VOLUME_RESIZE,	 /* POST /v1/volumes/{name}/resize */
	MG_R_VOLUME_RENAME,	 /* POST /v1/volumes/{name}/rename */
	MG_R_VOLUME_REVERT,	 /* POST /v1/volumes/{name}/revert */
	MG_R_VOLUME_FLATTEN,	 /* POST /v1/volumes/{name}/flatten */
	MG_R_VOLUME_QOS,	 /* POST /v1/volumes/{name}/qos */
	MG_R_SNAPSHOTS,		 /* GET /v1/snapshots */
	MG_R_SNAPSHOT,		 /* GET, DELETE /v1/snapshots/{uuid or volume@snap} */
	MG_R_LAYERS,		 /* GET /v1/layers */
	MG_R_JOBS,		 /* GET /v1/jobs */
	MG_R_JOB,		 /* GET /v1/jobs/{id} */
	MG_R_CINDER,		 /* /, /v3/...: OpenStack Block Storage (mg_cinder.h) */
};

struct mg_cinder_req;

enum mg_method {
	MG_M_GET = 0,
	MG_M_POST,
	MG_M_PUT,
	MG_M_DELETE,
	MG_M_OTHER,
};

struct mg_api_req {
	/* in */
	enum mg_route route;
	enum mg_method method;
	char arg[MG_API_ARG_LEN];  /* first {id} or {name} of the path */
	char arg2[MG_API_ARG_LEN]; /* second one ({host} or {volume}) */
	json_t *body;		   /* POST, PUT: a JSON object (owned) */
	struct mg_cinder_req *os;  /* MG_R_CINDER: set by mg_cinder_route() (owned) */
	/* out */
	int status;  /* HTTP status */
	char *reply; /* JSON text (malloc'd), NULL for no body */
	/* A handler that answers later sets pending (mg_api_defer()) and
	 * calls mg_api_finish() when it has set the reply; the HTTP layer
	 * sets @finished, called then (reactor thread). */
	bool pending;
	void (*finished)(struct mg_api_req *req);
};

/* Answer later: the handler returns, and calls mg_api_finish() (on the
 * reactor thread) once status/reply are set. */
void mg_api_defer(struct mg_api_req *req);
void mg_api_finish(struct mg_api_req *req);

/*
 * Match @method and @path. 0 (route/method/arg set); -ENOENT (no such
 * resource); -EOPNOTSUPP (the resource exists, the method does not: *allow
 * lists the methods, e.g. "GET, POST").
 */
int mg_api_route(const char *method, const char *path, struct mg_api_req *req, const char **allow);

/* Parse a request body into req->body: must be a JSON object. 0 or -EINVAL
 * with a message in @err. */
int mg_api_parse_body(const char *body, size_t len, struct mg_api_req *req, char *err,
		      size_t errlen);

/* Run the request; sets req->status and req->reply. Reactor thread. */
void mg_api_handle(struct mg_cluster *c, struct mg_api_req *req);

/* Set req->status/reply to the error body for @err (negative errno); in
 * Cinder's shape for a Cinder request (req->os), also when a native
 * handler runs on its behalf. */
void mg_api_error(struct mg_api_req *req, int err, const char *msg);

/* @in with every byte that is not printable ASCII replaced by '?', into
 * @out (@len bytes, NUL-terminated): an error message jansson refuses (not
 * UTF-8) still goes out. */
void mg_api_ascii(const char *in, char *out, size_t len);

/* The one errno -> HTTP status mapping. */
int mg_api_http_status(int err);

/* For handler files (mg_attach.c): set the reply (takes @j; NULL: no body). */
void mg_api_reply(struct mg_api_req *req, int status, json_t *j);
/* Body field helpers: 0 or -EINVAL with @err set. A missing optional field
 * leaves *out as it was. */
int mg_api_fields_known(json_t *body, const char *const *known, char *err, size_t errlen);
int mg_api_field_str(json_t *body, const char *key, bool required, const char **out, char *err,
		     size_t errlen);
int mg_api_field_bool(json_t *body, const char *key, bool *out, char *err, size_t errlen);
int mg_api_field_u64(json_t *body, const char *key, bool required, uint64_t *out, char *err,
		     size_t errlen);

/* A QoS limit field (@bytes: a bandwidth limit), checked with
 * mg_check_qos(); with @nullable, null means "the pool's" (*out =
 * MG_QOS_POOL). *present says whether the body has it; absent leaves *out. */
int mg_api_field_qos(json_t *body, const char *key, bool bytes, bool nullable, bool *present,
		     int64_t *out, char *err, size_t errlen);

/* ISO 8601 UTC string for wall-clock ms (JSON null for 0). */
json_t *mg_api_iso_time(int64_t ms);

/* Volume and snapshot handlers (mg_volume.c). */
void mg_volume_handle(struct mg_cluster *c, struct mg_api_req *req);
json_t *mg_volume_json(struct mg_cluster *c, const struct mg_volume_rec *v);

/* Path matching of the route tables: @pattern's "*" segments match one
 * non-empty segment each, captured into req->arg and req->arg2. */
bool mg_api_route_match(const char *pattern, const char *path, size_t len, struct mg_api_req *req);

/* Answer @status/@body (NULL for none) once every up server applied the
 * current map and drained the writes it admitted before (mg_volume.c);
 * @what names the change in a warning when some server did not confirm
 * within 30 s (then the body says "fenced": false). Takes @body. */
void mg_reply_fenced(struct mg_cluster *c, struct mg_api_req *req, int status, json_t *body,
		     const char *what);

/* Attachment handlers (mg_attach.c). */
void mg_attach_handle(struct mg_cluster *c, struct mg_api_req *req);
/*
 * Attach @v to a->host (a->read_only, nbd, nbd_tcp, instance in; the rest
 * is filled in). 0 (recorded, a new generation), 2 (the same, and a map
 * listing it among the volume's fenced generations was published: answer
 * with mg_reply_fenced()), 1 (the same attachment existed: *a is it),
 * -EINVAL (bad host or nbd_tcp), -EEXIST (attached to that host
 * otherwise), -EIO. Reactor thread; @err set on error.
 */
int mg_attach_add(struct mg_cluster *c, const struct mg_volume_rec *v, struct mg_attach_rec *a,
		  char *err, size_t errlen);
/* Detach @v from @host and fence its generation (docs/volumes.md
 * "Attachments and fencing"): 0 (a map was published: answer with
 * mg_reply_fenced()), -ENOENT (not attached there), -EIO. */
int mg_attach_remove(struct mg_cluster *c, const struct mg_volume_rec *v, const char *host,
		     char *err, size_t errlen);
/* True when the volume has an attachment (volume delete refuses). */
int mg_attach_count(struct mg_cluster *c, uint64_t volume_id, unsigned int *out);

#endif
