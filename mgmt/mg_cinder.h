/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_cinder: a subset of the OpenStack Block Storage (Cinder) v3 API on
 * keel-mgmt's REST port, mapped onto Keel's volume model (docs/api.md,
 * "OpenStack Block Storage v3"). The stock cinder and openstack clients
 * work against it with OS_AUTH_TYPE=noauth.
 *
 * Paths: "/" (versions document), "/v3", "/v3/{project_id}/..." and
 * "/v3/..." (a path whose first segment after /v3 is a collection name has
 * no project id). Keel is single-tenant: the project id is accepted and
 * echoed. Ids are UUIDs (mg_store's uuid columns); sizes are GiB.
 *
 * Threads, like mg_api: mg_cinder_path(), mg_cinder_route(),
 * mg_cinder_header(), mg_cinder_query() and mg_cinder_reply_version() are
 * pure and run on the HTTP thread before the request is posted;
 * mg_cinder_handle() runs on the reactor thread. Errors have Cinder's
 * shape, {"badRequest": {"code": 400, "message": "..."}}, built by
 * mg_cinder_error(), the errno -> status mapping of this edge.
 */
#ifndef KEEL_MGMT_MG_CINDER_H
#define KEEL_MGMT_MG_CINDER_H

#include <stdbool.h>
#include <stddef.h>

#include "mgmt/mg_api.h"

/* Microversions served: 3.0 up to MG_CINDER_MAX_MINOR. */
#define MG_CINDER_MAX_MINOR 70

/* True when @path belongs to this API ("/", "/v3", "/v3/..."). */
bool mg_cinder_path(const char *path);

/*
 * Match @method and @path; allocates req->os (freed by mg_cinder_free()),
 * also on failure, so that errors take Cinder's shape. 0; -ENOENT (no such
 * resource); -EOPNOTSUPP (*allow lists the methods); -ENOMEM.
 */
int mg_cinder_route(const char *method, const char *path, struct mg_api_req *req,
		    const char **allow);

/* One request header (any; unknown ones are ignored). Records a bad
 * OpenStack-API-Version for mg_cinder_check(). */
void mg_cinder_header(struct mg_api_req *req, const char *name, const char *value);
/* One query argument. Records an unknown or bad one for mg_cinder_check(). */
void mg_cinder_query(struct mg_api_req *req, const char *key, const char *value);
/* After every header and query argument was seen: 0, or -EINVAL (bad query
 * argument) / -EPROTONOSUPPORT (microversion not served, 406) with @err. */
int mg_cinder_check(struct mg_api_req *req, char *err, size_t errlen);

/* The OpenStack-API-Version reply header ("volume 3.x"), or NULL. */
const char *mg_cinder_reply_version(const struct mg_api_req *req);

/* Run the request (reactor thread); sets req->status and req->reply. */
void mg_cinder_handle(struct mg_cluster *c, struct mg_api_req *req);

/* Set req->status/reply to Cinder's error body for @err (negative errno). */
void mg_cinder_error(struct mg_api_req *req, int err, const char *msg);

void mg_cinder_free(struct mg_api_req *req);

#endif
