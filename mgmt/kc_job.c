/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelctl job: background jobs of keel-mgmt (docs/api.md "Jobs"; today the
 * merges of deleted snapshots into their child), and the wait with a
 * progress line that `snapshot delete --wait` uses.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mgmt/kc.h"
#include "mgmt/kc_table.h"

const char kc_help_job[] =
	"NAME\n"
	"    keelctl job - background jobs (merges of deleted snapshots)\n"
	"\n"
	"SYNOPSIS\n"
	"    keelctl job list\n"
	"    keelctl job show ID\n"
	"    keelctl job wait ID\n"
	"\n"
	"DESCRIPTION\n"
	"    Deleting a snapshot whose layer the volume (or a later snapshot)\n"
	"    still reads through starts a merge: the servers copy the blocks of\n"
	"    the snapshot's layer that its child lacks into the child, then the\n"
	"    child reads past it and the layer is freed, so chains do not grow\n"
	"    with snapshot rotation. A merge is a job: queued, running, done or\n"
	"    failed (cancelled because the layers changed, e.g. the child was\n"
	"    deleted; nothing is lost, the layer is then deleted or merged\n"
	"    again). list shows the jobs mgmt knows since it started, show one\n"
	"    of them, wait follows one until it ends, with a progress line when\n"
	"    stderr is a terminal. `snapshot delete --wait` does the same.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 1 not found, failed, or mgmt unreachable; 2 usage error.\n"
	"\n"
	"EXAMPLES\n"
	"    keelctl job list\n"
	"    keelctl snapshot delete db1@nightly-3 --wait\n";

static int kc_job_table(json_t *list)
{
	static const char *const hdr[] = {"ID",	   "TYPE",     "VOLUME",  "SNAPSHOT",
					  "STATE", "PROGRESS", "STARTED", "ERROR"};
	struct kc_table *t = kc_table_new(8, hdr);
	size_t i;
	json_t *j;

	if (!t) {
		return kc_fail("out of memory");
	}
	json_array_foreach(list, i, j)
	{
		char prog[64], started[32];
		time_t ts = (time_t)kc_u64(j, "started_at");
		struct tm tm;
		const char *row[8] = {kc_str(j, "id"),
				      kc_str(j, "type"),
				      kc_str(j, "volume"),
				      kc_str(j, "snapshot"),
				      kc_str(j, "state"),
				      prog,
				      started,
				      kc_str(j, "error")};

		if (!*row[3]) {
			row[3] = "-"; /* the snapshot's name is not known (mgmt restarted) */
		}
		snprintf(prog, sizeof(prog), "%.0f%% (%" PRIu64 "/%" PRIu64 " objects)",
			 json_number_value(json_object_get(j, "percent")),
			 kc_u64(j, "objects_done"), kc_u64(j, "objects_total"));
		gmtime_r(&ts, &tm);
		strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
		kc_table_add(t, row);
	}
	kc_table_print(t, stdout);
	kc_table_free(t);
	return KC_EXIT_OK;
}

int kc_job_wait(const struct kc_ctx *k, const char *id, const char *what)
{
	bool tty = isatty(2);
	char path[256];
	time_t last = 0;

	if (kc_name_path("/v1/jobs/", id, path, sizeof(path))) {
		return KC_EXIT_ERR;
	}
	for (;;) {
		struct rest_resp r;
		const char *st;
		int ret = kc_call(k, "GET", path, NULL, &r);
		bool end;

		if (ret) {
			return ret;
		}
		st = kc_str(r.json, "state");
		end = !strcmp(st, "done") || !strcmp(st, "failed");
		if (tty && (end || time(NULL) != last)) {
			last = time(NULL);
			fprintf(stderr, "\r%s: %3.0f%% (%" PRIu64 " of %" PRIu64 " objects) %s%s",
				what, json_number_value(json_object_get(r.json, "percent")),
				kc_u64(r.json, "objects_done"), kc_u64(r.json, "objects_total"), st,
				end ? "\n" : "   ");
			fflush(stderr);
		}
		if (end) {
			ret = KC_EXIT_OK;
			if (!strcmp(st, "failed")) {
				fprintf(stderr, "keelctl: %s: %s\n", what, kc_str(r.json, "error"));
				ret = KC_EXIT_ERR;
			}
			rest_resp_free(&r);
			return ret;
		}
		rest_resp_free(&r);
		usleep(250 * 1000);
	}
}

int kc_job(const struct kc_ctx *k, int argc, char **argv)
{
	struct rest_resp r;
	char path[256];
	int ret;

	if (argc < 1) {
		return kc_usage("%s", "job: expected list, show or wait");
	}
	if (!strcmp(argv[0], "list")) {
		if (argc > 1) {
			return kc_usage("job list: unexpected argument '%s'", argv[1]);
		}
		ret = kc_call(k, "GET", "/v1/jobs", NULL, &r);
		if (!ret) {
			k->json ? kc_print_json(&r) : (void)kc_job_table(r.json);
			rest_resp_free(&r);
		}
		return ret;
	}
	if (!strcmp(argv[0], "show") || !strcmp(argv[0], "wait")) {
		if (argc != 2) {
			return kc_usage("job %s: expects exactly one ID", argv[0]);
		}
		if (argv[0][0] == 'w') {
			return kc_job_wait(k, argv[1], argv[1]);
		}
		if (kc_name_path("/v1/jobs/", argv[1], path, sizeof(path))) {
			return KC_EXIT_ERR;
		}
		ret = kc_call(k, "GET", path, NULL, &r);
		if (ret) {
			return ret;
		}
		if (k->json) {
			kc_print_json(&r);
		} else {
			json_t *one = json_array();

			json_array_append(one, r.json);
			kc_job_table(one);
			json_decref(one);
		}
		rest_resp_free(&r);
		return KC_EXIT_OK;
	}
	return kc_usage("job: unknown subcommand '%s'", argv[0]);
}
