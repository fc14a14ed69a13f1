/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_http: the REST API over HTTP (libmicrohttpd, one thread per
 * connection). Each request is routed and its JSON body parsed on the HTTP
 * thread, then handed to the reactor with reactor_post(); the HTTP thread
 * waits on a condition variable until the reactor has run mg_api_handle()
 * and sends the reply. State is never touched outside the reactor thread.
 *
 * Before anything else a request is authenticated (mg_auth.h): a refused
 * one is answered 401 from the HTTP thread, its body never buffered.
 * GET /metrics (mg_metrics.h) is served here, outside mg_api's routes.
 */
#ifndef KEEL_MGMT_MG_HTTP_H
#define KEEL_MGMT_MG_HTTP_H

#include "common/reactor.h"
#include "mgmt/mg_auth.h"
#include "mgmt/mg_cluster.h"

struct mg_http;

/* Listen on @addr (host:port; port 0 picks one) and serve, letting in the
 * requests @auth accepts (@auth must outlive the server). The bound
 * address is logged ("REST API listening on http://..."). 0, -EINVAL (bad
 * address), -EADDRINUSE/-EIO (cannot listen), -ENOMEM. */
int mg_http_start(struct reactor *r, struct mg_cluster *c, const struct mg_auth *auth,
		  const char *addr, struct mg_http **out);

/* Stop serving and free @h. Blocks until every request thread returned, so
 * it must not run on the reactor thread while requests wait for it. */
void mg_http_stop(struct mg_http *h);

#endif
