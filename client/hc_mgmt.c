/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-client's mgmt worker: the only thread besides the reactor. It makes
 * the blocking REST calls (libcurl through proto/rest.h) so the reactor
 * never waits on mgmt: reports queued by the reactor go out first, then
 * the host's attachment list is fetched and posted back to the reactor.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "client/hc.h"
#include "common/log.h"
#include "proto/auth.h"
#include "proto/rest.h"

struct hc_report {
	struct hc_report *next;
	char volume[HC_NAME_LEN];
	char *body; /* JSON text */
	bool has_io; /* carries the I/O counters */
};

/* Carries the callback itself, not the worker: it may run after
 * hc_mgmt_stop() has freed the worker. */
struct hc_list_msg {
	struct reactor_msg m;
	void (*on_list)(void *arg, json_t *list, const char *err);
	void *arg;
	json_t *list;
	char err[512];
};

struct hc_mgmt {
	struct reactor *r;
	const struct hc_settings *set;
	void (*on_list)(void *arg, json_t *list, const char *err);
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct hc_report *reports, **reports_tail; /* FIFO */
	bool kicked;
	bool stop;
	bool no_io; /* atomic: mgmt refused "io" (older keel-mgmt) */
	char token[KP_TOKEN_MAX + 1];
	char *ehost; /* the host name URL-escaped (curl_free) */
	char list_path[HC_PATH_LEN];
};

static void hc_list_deliver(struct reactor_msg *m)
{
	struct hc_list_msg *lm = container_of(m, struct hc_list_msg, m);

	lm->on_list(lm->arg, lm->list, lm->list ? NULL : lm->err);
	free(lm);
}

static void hc_mgmt_send_report(struct hc_mgmt *mg, struct hc_report *rep)
{
	char path[HC_PATH_LEN * 2], err[256], buf[64];
	char *evol = curl_easy_escape(NULL, rep->volume, 0);
	struct rest_resp resp;

	if (!evol) {
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/hosts/%s/attachments/%s", mg->ehost, evol);
	if (rest_call(mg->set->mgmt_url, mg->token, "PUT", path, rep->body, &resp, err,
		      sizeof(err))) {
		/* The next poll shows mgmt without our state: reported again. */
		log_debug("report on %s not delivered: %s", rep->volume, err);
		goto out;
	}
	if (resp.status == 400 && rep->has_io &&
	    strstr(rest_resp_error(&resp, buf, sizeof(buf)), "'io'")) {
		/* An older keel-mgmt: the state goes again without the
		 * counters on the next poll, which shows it unchanged. */
		if (!__atomic_exchange_n(&mg->no_io, true, __ATOMIC_RELAXED)) {
			log_warn("mgmt does not take I/O counters (%s): not reporting them",
				 rest_resp_error(&resp, buf, sizeof(buf)));
		}
	} else if (resp.status == 409) {
		log_info("volume %s: attachment changed at mgmt while reporting (%s)",
			 rep->volume, rest_resp_error(&resp, buf, sizeof(buf)));
	} else if (resp.status >= 300) {
		log_warn("volume %s: mgmt refused the attachment report: %s", rep->volume,
			 rest_resp_error(&resp, buf, sizeof(buf)));
	}
	rest_resp_free(&resp);
out:
	curl_free(evol);
}

static void hc_mgmt_poll(struct hc_mgmt *mg)
{
	struct hc_list_msg *lm = calloc(1, sizeof(*lm));
	struct rest_resp resp;
	char buf[64];

	if (!lm) {
		return;
	}
	lm->on_list = mg->on_list;
	lm->arg = mg->arg;
	lm->m.fn = hc_list_deliver;
	if (rest_call(mg->set->mgmt_url, mg->token, "GET", mg->list_path, NULL, &resp, lm->err,
		      sizeof(lm->err))) {
		reactor_post(mg->r, &lm->m);
		return;
	}
	if (resp.status == 401) {
		snprintf(lm->err, sizeof(lm->err),
			 "GET %s: keel-mgmt refused the API token (%s; client.token_file)",
			 mg->list_path, mg->token[0] ? "wrong token" : "none given");
	} else if (resp.status != 200 || !json_is_array(resp.json)) {
		snprintf(lm->err, sizeof(lm->err), "GET %s: %s", mg->list_path,
			 rest_resp_error(&resp, buf, sizeof(buf)));
	} else {
		lm->list = json_incref(resp.json);
	}
	rest_resp_free(&resp);
	reactor_post(mg->r, &lm->m);
}

static void *hc_mgmt_thread(void *arg)
{
	struct hc_mgmt *mg = arg;

	pthread_mutex_lock(&mg->lock);
	while (!mg->stop) {
		struct hc_report *reps = mg->reports;
		struct timespec until;

		mg->reports = NULL;
		mg->reports_tail = &mg->reports;
		mg->kicked = false;
		pthread_mutex_unlock(&mg->lock);
		while (reps) {
			struct hc_report *next = reps->next;

			hc_mgmt_send_report(mg, reps);
			free(reps->body);
			free(reps);
			reps = next;
		}
		hc_mgmt_poll(mg);
		pthread_mutex_lock(&mg->lock);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += mg->set->poll_ms / 1000;
		until.tv_nsec += (long)(mg->set->poll_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!mg->stop && !mg->kicked && !mg->reports) {
			if (pthread_cond_timedwait(&mg->cond, &mg->lock, &until) == ETIMEDOUT) {
				break;
			}
		}
	}
	pthread_mutex_unlock(&mg->lock);
	return NULL;
}

int hc_mgmt_start(struct reactor *r, const struct hc_settings *set, const char *token,
		  void (*on_list)(void *arg, json_t *list, const char *err), void *arg,
		  struct hc_mgmt **out)
{
	struct hc_mgmt *mg = calloc(1, sizeof(*mg));
	pthread_condattr_t ca;
	int rc;

	if (!mg) {
		return -ENOMEM;
	}
	mg->ehost = curl_easy_escape(NULL, set->host, 0);
	if (!mg->ehost) {
		free(mg);
		return -ENOMEM;
	}
	snprintf(mg->list_path, sizeof(mg->list_path), "/v1/hosts/%s/attachments", mg->ehost);
	mg->r = r;
	mg->set = set;
	snprintf(mg->token, sizeof(mg->token), "%s", token);
	mg->on_list = on_list;
	mg->arg = arg;
	mg->reports_tail = &mg->reports;
	pthread_mutex_init(&mg->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&mg->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&mg->thread, NULL, hc_mgmt_thread, mg);
	if (rc) {
		pthread_cond_destroy(&mg->cond);
		pthread_mutex_destroy(&mg->lock);
		curl_free(mg->ehost);
		free(mg);
		return -rc;
	}
	*out = mg;
	return 0;
}

void hc_mgmt_report(struct hc_mgmt *mg, const char *volume, json_t *body)
{
	struct hc_report *rep = calloc(1, sizeof(*rep));

	if (rep) {
		rep->body = json_dumps(body, JSON_COMPACT);
		rep->has_io = json_object_get(body, "io") != NULL;
	}
	json_decref(body);
	if (!rep || !rep->body) {
		free(rep);
		log_error("volume %s: out of memory for the attachment report", volume);
		return;
	}
	snprintf(rep->volume, sizeof(rep->volume), "%s", volume);
	pthread_mutex_lock(&mg->lock);
	*mg->reports_tail = rep;
	mg->reports_tail = &rep->next;
	pthread_cond_signal(&mg->cond);
	pthread_mutex_unlock(&mg->lock);
}

bool hc_mgmt_takes_io(struct hc_mgmt *mg)
{
	return !__atomic_load_n(&mg->no_io, __ATOMIC_RELAXED);
}

void hc_mgmt_kick(struct hc_mgmt *mg)
{
	pthread_mutex_lock(&mg->lock);
	mg->kicked = true;
	pthread_cond_signal(&mg->cond);
	pthread_mutex_unlock(&mg->lock);
}

void hc_mgmt_stop(struct hc_mgmt *mg)
{
	struct hc_report *rep;

	pthread_mutex_lock(&mg->lock);
	mg->stop = true;
	pthread_cond_signal(&mg->cond);
	pthread_mutex_unlock(&mg->lock);
	pthread_join(mg->thread, NULL);
	while ((rep = mg->reports)) {
		mg->reports = rep->next;
		free(rep->body);
		free(rep);
	}
	pthread_cond_destroy(&mg->cond);
	pthread_mutex_destroy(&mg->lock);
	curl_free(mg->ehost);
	explicit_bzero(mg->token, sizeof(mg->token));
	free(mg);
}
