/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validation of names and numbers that come from operators (REST bodies,
 * configuration). Pure functions, any thread. Each check returns 0 or
 * -EINVAL and, when @err is non-NULL, one human sentence in @err naming the
 * value and what was expected (it becomes the REST error message as is).
 */
#ifndef KEEL_MGMT_MG_VALID_H
#define KEEL_MGMT_MG_VALID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MG_NAME_MAX	       63
#define MG_MAX_REPLICAS	       5    /* CMAP_MAX_REPLICAS */
#define MG_MAX_PG_COUNT	       4096 /* CMAP_MAX_PGS */
#define MG_MAX_POOLS	       64   /* CMAP_MAX_POOLS */
#define MG_VOLUME_SIZE_ALIGN   4096ull
#define MG_VOLUME_SIZE_MAX     (1ull << 50)
#define MG_OBJECT_SIZE_MIN     (64ull << 10)
#define MG_OBJECT_SIZE_MAX     (64ull << 20)
#define MG_OBJECT_SIZE_DEFAULT (4ull << 20)
#define MG_VOLUME_ID_MAX       ((1ull << 48) - 1)
#define MG_QOS_IOPS_MAX	       10000000ull  /* 10 M requests a second */
#define MG_QOS_BPS_MIN	       4096ull	    /* one block a second */
#define MG_QOS_BPS_MAX	       (1ull << 40) /* 1 TiB a second */

/* "server", "host", "rack" indexed by enum cmap_fd; NULL-terminated. */
extern const char *const mg_failure_domains[];

/* 1..63 characters of [A-Za-z0-9._-], the first a letter or digit. @what
 * ("volume", "pool") names the thing in @err. */
int mg_check_name(const char *what, const char *name, char *err, size_t errlen);
/* 0 < size <= 2^50, a multiple of 4096. */
int mg_check_volume_size(uint64_t size, char *err, size_t errlen);
/* A power of two in 64K..64M. */
int mg_check_object_size(uint64_t object_size, char *err, size_t errlen);
/* 1 <= replicas <= 5, 1 <= min_replicas <= replicas, 1 <= pg_count <= 4096. */
int mg_check_pool_shape(uint64_t replicas, uint64_t min_replicas, uint64_t pg_count, char *err,
			size_t errlen);
/* A QoS limit named @field: 0 (unlimited) or, for an IOPS limit (@bytes
 * false), 1..MG_QOS_IOPS_MAX; for a bandwidth limit MG_QOS_BPS_MIN..
 * MG_QOS_BPS_MAX bytes a second. */
int mg_check_qos(const char *field, bool bytes, uint64_t v, char *err, size_t errlen);
/* Index into mg_failure_domains (an enum cmap_fd), or -EINVAL. */
int mg_parse_failure_domain(const char *s, char *err, size_t errlen);

/* A pool's max_overcommit_percent: 0 (no limit) or 10..100000. -EINVAL
 * with @err otherwise. */
#define MG_OVERCOMMIT_MAX 100000u
int mg_check_overcommit(uint64_t pct, char *err, size_t errlen);

/* A request body's Content-Type keel-mgmt reads: none (NULL or ""),
 * application/json or application/<anything>+json, any case, with or
 * without parameters ("; charset=utf-8"). Anything else is a 415. */
bool mg_json_content_type(const char *ct);

/*
 * Percent-decode a request path or query argument in place (%HH, either
 * case) and return its new length. %00 and %2F stay encoded: a decoded
 * NUL would end the path early (DELETE /v1/volumes/b%00x would reach
 * volume b) and a decoded '/' would split a segment (/v1/volumes/a%2Fresize
 * is not /v1/volumes/a/resize). No name may hold either character, so such
 * a request names nothing (404). A '%' without two hex digits stays too.
 */
size_t mg_unescape(char *s);

#endif
