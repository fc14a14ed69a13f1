/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum klog_level klog_level = KLOG_INFO;
static char klog_ident[32] = "keel";

static const char *const klog_names[] = {
	[KLOG_FATAL] = "fatal", [KLOG_ERROR] = "error", [KLOG_WARN] = "warn",
	[KLOG_INFO] = "info",	[KLOG_DEBUG] = "debug",
};

void klog_set_level(enum klog_level level)
{
	klog_level = level;
}

enum klog_level klog_get_level(void)
{
	return klog_level;
}

void klog_set_ident(const char *ident)
{
	snprintf(klog_ident, sizeof(klog_ident), "%s", ident);
}

int klog_parse_level(const char *s, enum klog_level *out)
{
	for (unsigned int i = KLOG_ERROR; i <= KLOG_DEBUG; i++) {
		if (!strcmp(s, klog_names[i])) {
			*out = (enum klog_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void klog_v(enum klog_level level, const char *file, int line, const char *fmt,
		   va_list ap)
{
	char buf[1024];
	struct timespec ts;
	struct tm tm;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s[%d] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000, klog_ident, (int)getpid(), klog_names[level]);
	if (n < 0 || n >= (int)sizeof(buf))
		n = 0;
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(buf) - 64)
		n = (int)sizeof(buf) - 64;
	if (klog_level >= KLOG_DEBUG || level == KLOG_FATAL) {
		const char *base = strrchr(file, '/');

		n += snprintf(buf + n, sizeof(buf) - (size_t)n, " (%s:%d)", base ? base + 1 : file,
			      line);
	}
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

void klog(enum klog_level level, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (level > klog_level)
		return;
	va_start(ap, fmt);
	klog_v(level, file, line, fmt, ap);
	va_end(ap);
}

void klog_fatal(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	klog_v(KLOG_FATAL, file, line, fmt, ap);
	va_end(ap);
	abort();
}
