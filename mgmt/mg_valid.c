/* SPDX-License-Identifier: Apache-2.0 */
/* Operator-input validation: names, sizes, pool shapes. */
#include "mgmt/mg_valid.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const mg_failure_domains[] = {"server", "host", "rack", NULL};

static int mg_invalid(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int mg_invalid(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool mg_name_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
		return true;
	}
	return !first && (c == '.' || c == '_' || c == '-');
}

int mg_check_name(const char *what, const char *name, char *err, size_t errlen)
{
	size_t len = strlen(name);

	if (!len || len > MG_NAME_MAX) {
		return mg_invalid(err, errlen, "%s name must be 1-%d characters (got %zu)", what,
				  MG_NAME_MAX, len);
	}
	for (size_t i = 0; i < len; i++) {
		if (!mg_name_char(name[i], i == 0)) {
			/* Never echo the raw byte: it may be anything. */
			return mg_invalid(err, errlen,
					  "%s name: character %zu is not allowed (use A-Z a-z 0-9 "
					  ". _ -, starting with a letter or digit)",
					  what, i + 1);
		}
	}
	return 0;
}

int mg_check_volume_size(uint64_t size, char *err, size_t errlen)
{
	if (!size) {
		return mg_invalid(err, errlen, "size must be greater than 0");
	}
	if (size % MG_VOLUME_SIZE_ALIGN) {
		return mg_invalid(err, errlen, "size %llu is not a multiple of 4096",
				  (unsigned long long)size);
	}
	if (size > MG_VOLUME_SIZE_MAX) {
		return mg_invalid(err, errlen,
				  "size %llu exceeds the maximum of 2^50 bytes (1 PiB)",
				  (unsigned long long)size);
	}
	return 0;
}

int mg_check_object_size(uint64_t object_size, char *err, size_t errlen)
{
	if (object_size < MG_OBJECT_SIZE_MIN || object_size > MG_OBJECT_SIZE_MAX ||
	    (object_size & (object_size - 1))) {
		return mg_invalid(err, errlen,
				  "object_size %llu must be a power of two from 65536 (64K) to "
				  "67108864 (64M)",
				  (unsigned long long)object_size);
	}
	return 0;
}

int mg_check_pool_shape(uint64_t replicas, uint64_t min_replicas, uint64_t pg_count, char *err,
			size_t errlen)
{
	if (replicas < 1 || replicas > MG_MAX_REPLICAS) {
		return mg_invalid(err, errlen, "replicas must be 1..%d (got %llu)", MG_MAX_REPLICAS,
				  (unsigned long long)replicas);
	}
	if (min_replicas < 1 || min_replicas > replicas) {
		return mg_invalid(err, errlen, "min_replicas must be 1..replicas (%llu), got %llu",
				  (unsigned long long)replicas, (unsigned long long)min_replicas);
	}
	if (pg_count < 1 || pg_count > MG_MAX_PG_COUNT) {
		return mg_invalid(err, errlen, "pg_count must be 1..%d (got %llu)", MG_MAX_PG_COUNT,
				  (unsigned long long)pg_count);
	}
	return 0;
}

int mg_parse_failure_domain(const char *s, char *err, size_t errlen)
{
	for (int i = 0; mg_failure_domains[i]; i++) {
		if (!strcmp(s, mg_failure_domains[i])) {
			return i;
		}
	}
	return mg_invalid(err, errlen, "failure_domain must be server, host or rack");
}

int mg_check_qos(const char *field, bool bytes, uint64_t v, char *err, size_t errlen)
{
	if (bytes && v && (v < MG_QOS_BPS_MIN || v > MG_QOS_BPS_MAX)) {
		return mg_invalid(
			err, errlen,
			"%s must be 0 (unlimited) or %llu..%llu bytes a second (got %llu)", field,
			(unsigned long long)MG_QOS_BPS_MIN, (unsigned long long)MG_QOS_BPS_MAX,
			(unsigned long long)v);
	}
	if (!bytes && v > MG_QOS_IOPS_MAX) {
		return mg_invalid(err, errlen, "%s must be 0 (unlimited) or 1..%llu (got %llu)",
				  field, (unsigned long long)MG_QOS_IOPS_MAX,
				  (unsigned long long)v);
	}
	return 0;
}

int mg_check_overcommit(uint64_t pct, char *err, size_t errlen)
{
	if (pct && (pct < 10 || pct > MG_OVERCOMMIT_MAX)) {
		snprintf(err, errlen,
			 "max_overcommit_percent must be 0 (no limit) or 10..%u, not %llu",
			 MG_OVERCOMMIT_MAX, (unsigned long long)pct);
		return -EINVAL;
	}
	return 0;
}

bool mg_json_content_type(const char *ct)
{
	size_t n;

	if (!ct) {
		return true;
	}
	while (*ct == ' ' || *ct == '\t') {
		ct++;
	}
	n = strcspn(ct, ";");
	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
		n--;
	}
	if (!n) {
		return true;
	}
	if (n == 16 && !strncasecmp(ct, "application/json", 16)) {
		return true;
	}
	/* application/vnd.openstack.volume+json and the like */
	return n > 17 && !strncasecmp(ct, "application/", 12) &&
	       !strncasecmp(ct + n - 5, "+json", 5) && !memchr(ct + 12, '/', n - 12);
}

static int mg_hex(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

size_t mg_unescape(char *s)
{
	char *out = s;

	for (const char *in = s; *in;) {
		int hi = in[0] == '%' ? mg_hex(in[1]) : -1;
		int lo = hi >= 0 ? mg_hex(in[2]) : -1;
		int c = lo >= 0 ? hi << 4 | lo : -1; /* lo >= 0 implies hi >= 0 */

		if (lo < 0 || c == 0 || c == '/') {
			*out++ = *in++;
			continue;
		}
		*out++ = (char)c;
		in += 3;
	}
	*out = '\0';
	return (size_t)(out - s);
}
