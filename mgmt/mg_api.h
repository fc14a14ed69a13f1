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

#include <stddef.h>

#include <jansson.h>

#include "mgmt/mg_cluster.h"

#define MG_API_ARG_LEN	128
#define MG_API_ERR_LEN	256
#define MG_API_BODY_MAX (64 * 1024)

enum mg_route {
	MG_R_NONE = 0,
	MG_R_INFO,    /* GET /v1/cluster/info */
	MG_R_STATUS,  /* GET /v1/cluster/status */
	MG_R_SERVERS, /* GET /v1/servers */
	MG_R_SERVER,  /* GET /v1/servers/{id} */
	MG_R_POOLS,   /* GET, POST /v1/pools */
	MG_R_PGS,     /* GET /v1/pgs */
	MG_R_VOLUMES, /* GET, POST /v1/volumes */
	MG_R_VOLUME,  /* GET, DELETE /v1/volumes/{name} */
};

enum mg_method {
	MG_M_GET = 0,
	MG_M_POST,
	MG_M_DELETE,
	MG_M_OTHER,
};

struct mg_api_req {
	/* in */
	enum mg_route route;
	enum mg_method method;
	char arg[MG_API_ARG_LEN]; /* {id} or {name}, already URL-decoded */
	json_t *body;		  /* POST: a JSON object (owned) */
	/* out */
	int status;  /* HTTP status */
	char *reply; /* JSON text (malloc'd), NULL for no body */
};

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

/* Set req->status/reply to the error body for @err (negative errno). */
void mg_api_error(struct mg_api_req *req, int err, const char *msg);

/* The one errno -> HTTP status mapping. */
int mg_api_http_status(int err);

#endif
