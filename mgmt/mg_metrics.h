/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mg_metrics: GET /metrics, keel-mgmt's view of the cluster in the
 * Prometheus text exposition format 0.0.4 (docs/api.md, "Metrics"), and the
 * per-attachment I/O counters keel-client reports with its attachment PUT.
 *
 * The I/O counters are keel-client's, cumulative since it opened that
 * attachment (a keel-client restart or a new generation starts again at 0,
 * which Prometheus treats as a counter reset). mgmt keeps the last report
 * of each attachment in memory only: they are exported while the
 * attachment exists (same volume, host and generation) and dropped after.
 *
 * Reactor thread only (the state is mg_cluster's).
 */
#ifndef KEEL_MGMT_MG_METRICS_H
#define KEEL_MGMT_MG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mgmt/mg_cluster.h"

#define MG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Attachments whose I/O counters mgmt keeps at once. */
#define MG_METRICS_IO_MAX 65536u

/* What keel-client reports under "io" (docs/api.md): sums over the
 * attachment's exports (vhost-user-blk and NBD). */
struct mg_io_counters {
	uint64_t read_ops, read_bytes, read_usec;
	uint64_t write_ops, write_bytes, write_usec;
	uint64_t flush_ops, discard_ops, write_zeroes_ops;
	uint64_t errors;
};

/*
 * Parse the "io" member of a report: a JSON object whose known members are
 * non-negative integers at most 2^63 - 1 (members this mgmt does not know
 * are ignored: a newer keel-client may count more). 0 (@out filled, missing
 * members 0), or -EINVAL with @err. Pure; any thread.
 */
int mg_metrics_io_parse(json_t *io, struct mg_io_counters *out, char *err, size_t errlen);

/* Keep @io as the counters of attachment (@volume_id, @host, @generation),
 * replacing the previous report. 0, -ENOSPC (MG_METRICS_IO_MAX attachments
 * kept), -ENOMEM. */
int mg_metrics_io_record(struct mg_cluster *c, uint64_t volume_id, const char *host,
			 uint64_t generation, const struct mg_io_counters *io);

/*
 * The /metrics document: 0 with *out (malloc'd, NUL-terminated, caller
 * frees) and *len, or -EIO (store), -ENOMEM. @auth_failures is the REST
 * requests refused 401 so far (mg_http.c counts them). Drops the I/O
 * counters of attachments that are gone.
 */
int mg_metrics_render(struct mg_cluster *c, uint64_t auth_failures, char **out, size_t *len);

/* Free the I/O counters (mg_cluster_close()). */
void mg_metrics_free(struct mg_cluster *c);

#endif
