/* SPDX-License-Identifier: Apache-2.0 */
/* REST over libmicrohttpd: HTTP threads parse, the reactor thread decides. */
#include "mgmt/mg_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "common/log.h"
#include "mgmt/mg_api.h"
#include "mgmt/mg_cinder.h"
#include "mgmt/mg_metrics.h"
#include "mgmt/mg_valid.h"

#define MG_HTTP_TIMEOUT_S 30

struct mg_http {
	struct MHD_Daemon *d;
	struct reactor *r;
	struct mg_cluster *c;
	const struct mg_auth *auth;
	uint64_t auth_failures; /* atomic: HTTP threads count, the reactor reads */
};

/* One request, from its first byte to its reply. Lives on the HTTP thread;
 * the reactor sees it only between reactor_post() and done = true. */
struct mg_http_req {
	struct mg_http *h;
	char *body;
	size_t len;
	bool too_big;
	int auth_err;		  /* mg_auth_check() of the request's headers */
	bool metrics;		  /* GET /metrics */
	const char *content_type; /* of api.reply; NULL: JSON */
	struct mg_api_req api;
	struct reactor_msg msg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void mg_http_finished(struct mg_api_req *api)
{
	struct mg_http_req *hr = container_of(api, struct mg_http_req, api);

	pthread_mutex_lock(&hr->lock);
	hr->done = true;
	pthread_cond_signal(&hr->cond);
	pthread_mutex_unlock(&hr->lock);
}

static void mg_http_on_reactor(struct reactor_msg *m)
{
	struct mg_http_req *hr = container_of(m, struct mg_http_req, msg);

	hr->api.finished = mg_http_finished;
	mg_api_handle(hr->h->c, &hr->api);
	/* A deferred request is finished later (mg_api_finish()), never from
	 * inside mg_api_handle(): once finished, @hr may be gone. */
	if (!hr->api.pending) {
		mg_http_finished(&hr->api);
	}
}

/* GET /metrics on the reactor: the text goes into api.reply. */
static void mg_http_on_reactor_metrics(struct reactor_msg *m)
{
	struct mg_http_req *hr = container_of(m, struct mg_http_req, msg);
	uint64_t failures = __atomic_load_n(&hr->h->auth_failures, __ATOMIC_RELAXED);
	size_t len;
	int ret;

	if (hr->h->c->stopping) {
		ret = -ESHUTDOWN;
	} else {
		ret = mg_metrics_render(hr->h->c, failures, &hr->api.reply, &len);
	}
	if (ret) {
		mg_api_error(&hr->api, ret, "cannot render the metrics");
	} else {
		hr->api.status = 200;
		hr->content_type = MG_METRICS_CONTENT_TYPE;
	}
	mg_http_finished(&hr->api);
}

static enum MHD_Result mg_http_send(struct MHD_Connection *conn, const struct mg_api_req *api,
				    const char *allow)
{
	struct mg_http_req *hr = container_of(api, struct mg_http_req, api);
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *body = api->reply ? api->reply : "";

	resp = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp) {
		return MHD_NO;
	}
	if (api->reply) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					hr->content_type ? hr->content_type : "application/json");
	}
	if (allow) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	}
	if (mg_cinder_reply_version(api)) {
		MHD_add_response_header(resp, "OpenStack-API-Version",
					mg_cinder_reply_version(api));
		MHD_add_response_header(resp, "Vary", "OpenStack-API-Version");
	}
	if (api->status == 401) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"keel-mgmt\"");
	}
	ret = MHD_queue_response(conn, (unsigned int)api->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result mg_http_error(struct MHD_Connection *conn, struct mg_api_req *api, int err,
				     const char *msg, const char *allow)
{
	mg_api_error(api, err, msg);
	return mg_http_send(conn, api, allow);
}

static enum MHD_Result mg_http_header(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	mg_cinder_header(cls, key, value ? value : "");
	return MHD_YES;
}

static enum MHD_Result mg_http_query(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	mg_cinder_query(cls, key, value ? value : "");
	return MHD_YES;
}

/* /v1 is the native API, "/" and /v3 the Cinder one (which also reads
 * headers and query arguments). */
static int mg_http_route(struct MHD_Connection *conn, const char *method, const char *url,
			 struct mg_api_req *api, const char **allow, char *err, size_t errlen)
{
	int ret;

	if (!mg_cinder_path(url)) {
		return mg_api_route(method, url, api, allow);
	}
	ret = mg_cinder_route(method, url, api, allow);
	if (ret) {
		return ret;
	}
	MHD_get_connection_values(conn, MHD_HEADER_KIND, mg_http_header, api);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, mg_http_query, api);
	return mg_cinder_check(api, err, errlen);
}

/* Hand @hr to the reactor (hr->msg.fn set), wait for it, send the reply. */
static enum MHD_Result mg_http_post_wait(struct MHD_Connection *conn, struct mg_http_req *hr)
{
	reactor_post(hr->h->r, &hr->msg);
	pthread_mutex_lock(&hr->lock);
	while (!hr->done) {
		pthread_cond_wait(&hr->cond, &hr->lock);
	}
	pthread_mutex_unlock(&hr->lock);
	return mg_http_send(conn, &hr->api, NULL);
}

static enum MHD_Result mg_http_access(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version, const char *upload,
				      size_t *upload_size, void **con_cls)
{
	struct mg_http *h = cls;
	struct mg_http_req *hr = *con_cls;
	char err[MG_API_ERR_LEN];
	const char *allow = NULL;
	int ret;

	if (!hr) {
		hr = calloc(1, sizeof(*hr));
		if (!hr) {
			return MHD_NO;
		}
		hr->h = h;
		pthread_mutex_init(&hr->lock, NULL);
		pthread_cond_init(&hr->cond, NULL);
		*con_cls = hr;
		/* Headers are complete at the first call: decide before any
		 * body is read. */
		hr->auth_err = mg_auth_check(
			h->auth, method, url,
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Auth-Token"),
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION));
		return MHD_YES;
	}
	if (*upload_size) {
		if (hr->auth_err) {
			/* Not kept: whoever sent it gets a 401 at the end. */
		} else if (hr->len + *upload_size > MG_API_BODY_MAX) {
			hr->too_big = true;
		} else {
			char *n = realloc(hr->body, hr->len + *upload_size + 1);

			if (!n) {
				return MHD_NO;
			}
			hr->body = n;
			memcpy(hr->body + hr->len, upload, *upload_size);
			hr->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (hr->auth_err) {
		__atomic_add_fetch(&h->auth_failures, 1, __ATOMIC_RELAXED);
		log_debug("REST %s %.128s refused: %s", method, url,
			  hr->auth_err == -ENOKEY ? "no token" : "wrong token");
		return mg_http_error(conn, &hr->api, hr->auth_err,
				     hr->auth_err == -ENOKEY
					     ? "authentication required: send X-Auth-Token: TOKEN "
					       "or Authorization: Bearer TOKEN (a token of "
					       "keel-mgmt's token_file)"
					     : "invalid token",
				     NULL);
	}
	if (!strcmp(url, "/metrics")) {
		if (strcmp(method, "GET")) {
			snprintf(err, sizeof(err),
				 "method %s not allowed on /metrics (allowed: GET)", method);
			return mg_http_error(conn, &hr->api, -EOPNOTSUPP, err, "GET");
		}
		hr->msg.fn = mg_http_on_reactor_metrics;
		return mg_http_post_wait(conn, hr);
	}
	err[0] = '\0';
	ret = mg_http_route(conn, method, url, &hr->api, &allow, err, sizeof(err));
	if (ret == -ENOENT) {
		snprintf(err, sizeof(err), "no such resource: %s %.128s", method, url);
		return mg_http_error(conn, &hr->api, ret, err, NULL);
	}
	if (ret == -EOPNOTSUPP) {
		snprintf(err, sizeof(err), "method %s not allowed on %.128s (allowed: %s)", method,
			 url, allow);
		return mg_http_error(conn, &hr->api, ret, err, allow);
	}
	if (ret) {
		return mg_http_error(conn, &hr->api, ret, err, NULL);
	}
	if (hr->too_big) {
		snprintf(err, sizeof(err), "request body over %d bytes", MG_API_BODY_MAX);
		return mg_http_error(conn, &hr->api, -EFBIG, err, NULL);
	}
	if (hr->api.method == MG_M_POST || hr->api.method == MG_M_PUT) {
		const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_TYPE);

		if (!mg_json_content_type(ct)) {
			snprintf(err, sizeof(err),
				 "unsupported Content-Type '%.64s': send application/json", ct);
			return mg_http_error(conn, &hr->api, -EMEDIUMTYPE, err, NULL);
		}
		ret = mg_api_parse_body(hr->body, hr->len, &hr->api, err, sizeof(err));
		if (ret) {
			return mg_http_error(conn, &hr->api, ret, err, NULL);
		}
	}
	hr->msg.fn = mg_http_on_reactor;
	return mg_http_post_wait(conn, hr);
}

static void mg_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct mg_http_req *hr = *con_cls;

	if (!hr) {
		return;
	}
	/* A request handed to the reactor always waited for done above. */
	json_decref(hr->api.body);
	mg_cinder_free(&hr->api);
	free(hr->api.reply);
	free(hr->body);
	pthread_cond_destroy(&hr->cond);
	pthread_mutex_destroy(&hr->lock);
	free(hr);
	*con_cls = NULL;
}

static size_t mg_http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	return mg_unescape(s);
}

static void mg_http_log(void *cls, const char *fmt, va_list ap)
{
	char buf[256];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_warn("http: %s", buf);
}

static int mg_http_resolve(const char *addr, struct sockaddr_storage *ss)
{
	char host[128], port[16];
	struct addrinfo hints, *res;

	if (xport_parse_addr(addr, host, sizeof(host), port, sizeof(port))) {
		return -EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) {
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static void mg_http_log_bound(struct mg_http *h)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned int port = 0;

	if (info && !getsockname(info->listen_fd, (struct sockaddr *)&ss, &len)) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			port = ntohs(sin6->sin6_port);
		}
	}
	/* Tests read the bound port from this line. */
	log_info("REST API listening on http://%s%s%s:%u", strchr(ip, ':') ? "[" : "", ip,
		 strchr(ip, ':') ? "]" : "", port);
}

int mg_http_start(struct reactor *r, struct mg_cluster *c, const struct mg_auth *auth,
		  const char *addr, struct mg_http **out)
{
	struct sockaddr_storage ss;
	unsigned int flags =
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	struct mg_http *h;
	int ret;

	ret = mg_http_resolve(addr, &ss);
	if (ret) {
		log_error("bad REST API address %s: expected host:port", addr);
		return ret;
	}
	if (ss.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		return -ENOMEM;
	}
	h->r = r;
	h->c = c;
	h->auth = auth;
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, mg_http_access, h, MHD_OPTION_EXTERNAL_LOGGER,
				mg_http_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_NOTIFY_COMPLETED, mg_http_completed, h,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)MG_HTTP_TIMEOUT_S,
				MHD_OPTION_UNESCAPE_CALLBACK, mg_http_unescape, h, MHD_OPTION_END);
	if (!h->d) {
		log_error("cannot serve the REST API on %s (address in use?)", addr);
		free(h);
		return -EADDRINUSE;
	}
	mg_http_log_bound(h);
	*out = h;
	return 0;
}

void mg_http_stop(struct mg_http *h)
{
	if (!h) {
		return;
	}
	MHD_stop_daemon(h->d);
	free(h);
}
