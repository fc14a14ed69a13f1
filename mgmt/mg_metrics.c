/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /metrics in the Prometheus text format (mg_metrics.h). Every family is
 * written whole (HELP, TYPE, then its samples) as the format requires; the
 * names follow Prometheus' conventions: base units in the name (_bytes,
 * _seconds), _total on counters only, label values escaped.
 */
#include "mgmt/mg_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mgmt/mg_space.h"

struct mg_io_entry {
	uint64_t volume_id;
	uint64_t generation;
	char host[CMAP_NAME_LEN];
	struct mg_io_counters io;
	bool live; /* render scratch: its attachment still exists */
};

struct mg_metrics {
	struct mg_io_entry *e;
	size_t n, cap;
};

/* ---- keel-client's reports ---- */

static const struct {
	const char *name;
	size_t off;
} mg_io_fields[] = {
	{"read_ops", offsetof(struct mg_io_counters, read_ops)},
	{"read_bytes", offsetof(struct mg_io_counters, read_bytes)},
	{"read_usec", offsetof(struct mg_io_counters, read_usec)},
	{"write_ops", offsetof(struct mg_io_counters, write_ops)},
	{"write_bytes", offsetof(struct mg_io_counters, write_bytes)},
	{"write_usec", offsetof(struct mg_io_counters, write_usec)},
	{"flush_ops", offsetof(struct mg_io_counters, flush_ops)},
	{"discard_ops", offsetof(struct mg_io_counters, discard_ops)},
	{"write_zeroes_ops", offsetof(struct mg_io_counters, write_zeroes_ops)},
	{"errors", offsetof(struct mg_io_counters, errors)},
};

#define MG_IO_NFIELDS (sizeof(mg_io_fields) / sizeof(mg_io_fields[0]))

int mg_metrics_io_parse(json_t *io, struct mg_io_counters *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(io)) {
		snprintf(err, errlen, "field 'io' must be an object of counters");
		return -EINVAL;
	}
	for (size_t i = 0; i < MG_IO_NFIELDS; i++) {
		json_t *v = json_object_get(io, mg_io_fields[i].name);

		if (!v) {
			continue;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			snprintf(err, errlen, "field 'io.%s' must be a non-negative integer",
				 mg_io_fields[i].name);
			return -EINVAL;
		}
		*(uint64_t *)((char *)out + mg_io_fields[i].off) = (uint64_t)json_integer_value(v);
	}
	return 0;
}

static struct mg_io_entry *mg_io_find(struct mg_metrics *m, uint64_t volume_id, const char *host)
{
	for (size_t i = 0; m && i < m->n; i++) {
		if (m->e[i].volume_id == volume_id && !strcmp(m->e[i].host, host)) {
			return &m->e[i];
		}
	}
	return NULL;
}

int mg_metrics_io_record(struct mg_cluster *c, uint64_t volume_id, const char *host,
			 uint64_t generation, const struct mg_io_counters *io)
{
	struct mg_metrics *m = c->metrics;
	struct mg_io_entry *e;

	if (strlen(host) >= sizeof(e->host)) {
		return -EINVAL;
	}
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m) {
			return -ENOMEM;
		}
		c->metrics = m;
	}
	e = mg_io_find(m, volume_id, host);
	if (!e) {
		if (m->n == m->cap) {
			size_t cap = m->cap ? m->cap * 2 : 16;
			struct mg_io_entry *ne;

			if (m->cap >= MG_METRICS_IO_MAX) {
				return -ENOSPC;
			}
			ne = realloc(m->e, cap * sizeof(*ne));
			if (!ne) {
				return -ENOMEM;
			}
			m->e = ne;
			m->cap = cap;
		}
		e = &m->e[m->n++];
		memset(e, 0, sizeof(*e));
		e->volume_id = volume_id;
		snprintf(e->host, sizeof(e->host), "%s", host);
	}
	/* A new generation is a new attachment: its counters start over,
	 * whatever the previous one reported. */
	e->generation = generation;
	e->io = *io;
	return 0;
}

void mg_metrics_free(struct mg_cluster *c)
{
	if (c->metrics) {
		free(c->metrics->e);
		free(c->metrics);
		c->metrics = NULL;
	}
}

/* ---- the text format ---- */

static void mg_prom_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void mg_prom_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\') {
			fputs("\\\\", f);
		} else if (*v == '"') {
			fputs("\\\"", f);
		} else if (*v == '\n') {
			fputs("\\n", f);
		} else {
			fputc(*v, f);
		}
	}
}

static void mg_prom_server_labels(FILE *f, const struct mg_server *s)
{
	fprintf(f, "{server=\"%u\",addr=\"", s->rec.id);
	mg_prom_value(f, s->rec.addr);
	fputs("\",host=\"", f);
	mg_prom_value(f, s->rec.host);
	fputs("\"}", f);
}

static void mg_render_servers(FILE *f, const struct mg_cluster *c)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
		{"keel_server_up", "1 if the server is up (registered and heartbeating)"},
		{"keel_server_in", "1 if the server is in (part of placement)"},
		{"keel_server_capacity_bytes", "Capacity of the server's drive"},
		{"keel_server_used_bytes", "Bytes used on the server's drive"},
		{"keel_server_map_epoch", "Cluster map epoch the server last applied"},
	};

	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		mg_prom_family(f, fam[k].name, "gauge", fam[k].help);
		for (uint32_t i = 0; i < c->nservers; i++) {
			const struct mg_server *s = &c->servers[i];
			const uint64_t v[] = {s->up, s->rec.in, s->rec.capacity_bytes,
					      s->rec.used_bytes, s->hb_epoch};

			fputs(fam[k].name, f);
			mg_prom_server_labels(f, s);
			fprintf(f, " %" PRIu64 "\n", v[k]);
		}
	}
}

/* Space per pool (mg_space.c); the same figures as GET /v1/pools. */
static int mg_render_pools(FILE *f, struct mg_cluster *c)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
		{"keel_pool_provisioned_bytes", "Sum of the sizes of the pool's volumes"},
		{"keel_pool_allocated_bytes",
		 "Data the pool's volumes and snapshots hold (counted once, not per replica)"},
		{"keel_pool_snapshot_bytes", "Of the allocated bytes, those in snapshots"},
		{"keel_pool_usable_bytes",
		 "Object space of the servers holding the pool's PGs, divided by replicas"},
		{"keel_pool_full", "1 while the pool is full (writes needing new space wait or fail)"},
	};
	struct mg_space *sp = calloc(MG_MAX_POOLS, sizeof(*sp));
	struct mg_space total;
	int ret;

	ret = sp ? mg_space_collect(c, sp, &total) : -ENOMEM;
	if (ret) {
		free(sp);
		return ret;
	}
	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		mg_prom_family(f, fam[k].name, "gauge", fam[k].help);
		for (uint32_t i = 0; i < c->npools; i++) {
			const uint64_t v[] = {sp[i].provisioned, sp[i].allocated, sp[i].snapshots,
					      sp[i].usable, c->pools[i].full};

			fprintf(f, "%s{pool=\"", fam[k].name);
			mg_prom_value(f, c->pools[i].rec.name);
			fprintf(f, "\"} %" PRIu64 "\n", v[k]);
		}
	}
	free(sp);
	return 0;
}

static void mg_render_pgs(FILE *f, struct mg_cluster *c)
{
	struct mg_pg_counts n;
	int health = mg_cluster_health(c, &n);

	mg_prom_family(f, "keel_cluster_health", "gauge",
		       "Cluster health: 0 HEALTH_OK, 1 HEALTH_WARN, 2 HEALTH_ERR");
	fprintf(f, "keel_cluster_health %d\n", health);
	mg_prom_family(f, "keel_cluster_epoch", "gauge", "Cluster map epoch");
	fprintf(f, "keel_cluster_epoch %" PRIu64 "\n", c->meta.epoch);
	mg_prom_family(f, "keel_servers", "gauge", "Registered servers");
	fprintf(f, "keel_servers %u\n", c->nservers);
	mg_prom_family(f, "keel_pgs", "gauge", "Placement groups by state");
	fprintf(f,
		"keel_pgs{state=\"active\"} %u\nkeel_pgs{state=\"degraded\"} %u\n"
		"keel_pgs{state=\"recovering\"} %u\nkeel_pgs{state=\"peering\"} %u\n"
		"keel_pgs{state=\"inactive\"} %u\n",
		n.active, n.degraded, n.recovering, n.peering, n.inactive);
	mg_prom_family(f, "keel_recovery_remaining_objects", "gauge",
		       "Objects left to recover, from the primaries' last reports");
	fprintf(f, "keel_recovery_remaining_objects %" PRIu64 "\n", n.objects_left);
	mg_prom_family(f, "keel_recovery_remaining_bytes", "gauge",
		       "Bytes left to recover, from the primaries' last reports");
	fprintf(f, "keel_recovery_remaining_bytes %" PRIu64 "\n", n.bytes_left);
	mg_prom_family(f, "keel_recovery_copied_bytes", "gauge",
		       "Bytes copied by recovery in the PGs' current intervals");
	fprintf(f, "keel_recovery_copied_bytes %" PRIu64 "\n", n.bytes_copied);
}

struct mg_vol_walk {
	FILE *f;
	uint64_t n, bytes;
};

static int mg_render_volume(void *arg, const struct mg_volume_rec *v)
{
	struct mg_vol_walk *w = arg;

	w->n++;
	w->bytes += v->size;
	fputs("keel_volume_size_bytes{volume=\"", w->f);
	mg_prom_value(w->f, v->name);
	fprintf(w->f, "\"} %" PRIu64 "\n", v->size);
	return 0;
}

/* One attachment's row, as the render needs it. */
struct mg_att_row {
	char volume[CMAP_NAME_LEN];
	char host[CMAP_NAME_LEN];
	const struct mg_io_entry *io; /* its counters, or NULL */
};

struct mg_att_walk {
	struct mg_metrics *m;
	struct mg_att_row *rows;
	size_t n, cap;
	uint64_t by_state[3];
};

static int mg_collect_attach(void *arg, const struct mg_attach_rec *a)
{
	struct mg_att_walk *w = arg;
	struct mg_io_entry *e = mg_io_find(w->m, a->volume_id, a->host);
	struct mg_att_row *r;

	if ((unsigned int)a->state < 3) {
		w->by_state[a->state]++;
	}
	if (!e || e->generation != a->generation) {
		return 0;
	}
	e->live = true;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct mg_att_row *nr = realloc(w->rows, cap * sizeof(*nr));

		if (!nr) {
			return -ENOMEM;
		}
		w->rows = nr;
		w->cap = cap;
	}
	r = &w->rows[w->n++];
	snprintf(r->volume, sizeof(r->volume), "%s", a->volume);
	snprintf(r->host, sizeof(r->host), "%s", a->host);
	r->io = e;
	return 0;
}

/* Forget the counters of attachments that are gone (detached, or attached
 * again: a new generation reports afresh). */
static void mg_io_prune(struct mg_metrics *m)
{
	size_t j = 0;

	for (size_t i = 0; m && i < m->n; i++) {
		if (m->e[i].live) {
			m->e[j] = m->e[i];
			m->e[j++].live = false;
		}
	}
	if (m) {
		m->n = j;
	}
}

static void mg_render_io(FILE *f, const struct mg_att_walk *w)
{
	static const struct {
		const char *name, *help;
		size_t off;
		bool usec;
	} fam[] = {
		{"keel_volume_read_ops_total", "Reads completed by keel-client for the volume",
		 offsetof(struct mg_io_counters, read_ops), false},
		{"keel_volume_read_bytes_total", "Bytes read by keel-client for the volume",
		 offsetof(struct mg_io_counters, read_bytes), false},
		{"keel_volume_read_time_seconds_total",
		 "Total time reads took, arrival at keel-client to completion",
		 offsetof(struct mg_io_counters, read_usec), true},
		{"keel_volume_write_ops_total", "Writes completed by keel-client for the volume",
		 offsetof(struct mg_io_counters, write_ops), false},
		{"keel_volume_write_bytes_total", "Bytes written by keel-client for the volume",
		 offsetof(struct mg_io_counters, write_bytes), false},
		{"keel_volume_write_time_seconds_total",
		 "Total time writes took, arrival at keel-client to completion",
		 offsetof(struct mg_io_counters, write_usec), true},
		{"keel_volume_flush_ops_total", "Flushes completed by keel-client for the volume",
		 offsetof(struct mg_io_counters, flush_ops), false},
		{"keel_volume_discard_ops_total",
		 "Discards (trims) completed by keel-client for the volume",
		 offsetof(struct mg_io_counters, discard_ops), false},
		{"keel_volume_write_zeroes_ops_total",
		 "Write-zeroes requests completed by keel-client for the volume",
		 offsetof(struct mg_io_counters, write_zeroes_ops), false},
		{"keel_volume_io_errors_total", "Requests keel-client failed with an I/O error",
		 offsetof(struct mg_io_counters, errors), false},
	};

	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		mg_prom_family(f, fam[k].name, "counter", fam[k].help);
		for (size_t i = 0; i < w->n; i++) {
			const struct mg_att_row *r = &w->rows[i];
			uint64_t v = *(const uint64_t *)((const char *)&r->io->io + fam[k].off);

			fprintf(f, "%s{volume=\"", fam[k].name);
			mg_prom_value(f, r->volume);
			fputs("\",host=\"", f);
			mg_prom_value(f, r->host);
			if (fam[k].usec) {
				fprintf(f, "\"} %" PRIu64 ".%06" PRIu64 "\n", v / 1000000,
					v % 1000000);
			} else {
				fprintf(f, "\"} %" PRIu64 "\n", v);
			}
		}
	}
}

int mg_metrics_render(struct mg_cluster *c, uint64_t auth_failures, char **out, size_t *len)
{
	struct mg_vol_walk vw = {0};
	struct mg_att_walk aw = {.m = c->metrics};
	char *text = NULL;
	size_t n = 0;
	FILE *f;
	int ret;

	for (size_t i = 0; c->metrics && i < c->metrics->n; i++) {
		c->metrics->e[i].live = false;
	}
	f = open_memstream(&text, &n);
	if (!f) {
		return -ENOMEM;
	}
	mg_render_pgs(f, c);
	mg_render_servers(f, c);
	ret = mg_render_pools(f, c);
	if (ret) {
		goto out_close;
	}
	vw.f = f;
	mg_prom_family(f, "keel_volume_size_bytes", "gauge", "Provisioned size of the volume");
	ret = mg_store_each_volume(c->st, mg_render_volume, &vw);
	if (ret) {
		goto out_close;
	}
	mg_prom_family(f, "keel_volumes", "gauge", "Volumes");
	fprintf(f, "keel_volumes %" PRIu64 "\n", vw.n);
	mg_prom_family(f, "keel_volumes_provisioned_bytes", "gauge",
		       "Sum of the volumes' provisioned sizes");
	fprintf(f, "keel_volumes_provisioned_bytes %" PRIu64 "\n", vw.bytes);
	ret = mg_store_each_attach(c->st, 0, NULL, mg_collect_attach, &aw);
	if (ret) {
		goto out_close;
	}
	mg_prom_family(f, "keel_attachments", "gauge", "Attachments by state");
	fprintf(f,
		"keel_attachments{state=\"attaching\"} %" PRIu64 "\n"
		"keel_attachments{state=\"attached\"} %" PRIu64 "\n"
		"keel_attachments{state=\"error\"} %" PRIu64 "\n",
		aw.by_state[MG_ATTACH_ATTACHING], aw.by_state[MG_ATTACH_ATTACHED],
		aw.by_state[MG_ATTACH_ERROR]);
	mg_render_io(f, &aw);
	mg_io_prune(c->metrics);
	mg_prom_family(f, "keel_mgmt_api_auth_failures_total", "counter",
		       "REST requests refused for a missing or wrong token");
	fprintf(f, "keel_mgmt_api_auth_failures_total %" PRIu64 "\n", auth_failures);
out_close:
	free(aw.rows);
	if (ferror(f) && !ret) {
		ret = -ENOMEM;
	}
	if (fclose(f) && !ret) {
		ret = -ENOMEM;
	}
	if (ret) {
		free(text);
		return ret;
	}
	*out = text;
	*len = n;
	return 0;
}
