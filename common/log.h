/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leveled logging to stderr (one line per record, with time, level, ident,
 * and source location at debug level). Thread-safe: each record is written
 * with a single write(2).
 */
#ifndef KEEL_COMMON_LOG_H
#define KEEL_COMMON_LOG_H

#include <stdbool.h>

enum klog_level {
	KLOG_FATAL = 0,
	KLOG_ERROR,
	KLOG_WARN,
	KLOG_INFO,
	KLOG_DEBUG,
};

/* Set the minimum level printed (default KLOG_INFO) and the process ident. */
void klog_set_level(enum klog_level level);
enum klog_level klog_get_level(void);
void klog_set_ident(const char *ident);

/* Parse "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int klog_parse_level(const char *s, enum klog_level *out);

static inline bool klog_enabled(enum klog_level level)
{
	return level <= klog_get_level();
}

void klog(enum klog_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Log and abort(): for broken internal invariants only, never for input. */
void klog_fatal(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define log_fatal(...) klog_fatal(__FILE__, __LINE__, __VA_ARGS__)
#define log_error(...) klog(KLOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) klog(KLOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) klog(KLOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (klog_enabled(KLOG_DEBUG))                                                      \
			klog(KLOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__);                         \
	} while (0)

/* Internal invariant check that stays on in release builds. */
#define kassert(cond)                                                                              \
	do {                                                                                       \
		if (__builtin_expect(!(cond), 0))                                                  \
			klog_fatal(__FILE__, __LINE__, "assertion failed: %s", #cond);             \
	} while (0)

#endif
