/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#define CFG_CMDLINE "command line"

/* Where a value came from, for error messages. */
struct cfg_src {
	const char *name; /* file path, CFG_CMDLINE or "default" */
	int line;	  /* 0 when not from a file */
};

struct cfg_file_ctx {
	const struct cfg_opt *opts;
	size_t n;
	void *obj;
	FILE *f;
	struct cfg_src src;
	char *err;
	size_t errlen;
	int err_line; /* line of the first error we reported, 0 if none */
};

static void cfg_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Digits only: strtoull() would accept signs, spaces and wrap "-1". */
static int cfg_parse_digits(const char *s, unsigned int base, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	for (;; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9') {
			d = (unsigned int)(*p - '0');
		} else if (base == 16 && *p >= 'a' && *p <= 'f') {
			d = (unsigned int)(*p - 'a' + 10);
		} else if (base == 16 && *p >= 'A' && *p <= 'F') {
			d = (unsigned int)(*p - 'A' + 10);
		} else {
			break;
		}
		if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) {
			return -ERANGE;
		}
	}
	if (p == s) {
		return -EINVAL;
	}
	*out = v;
	*end = p;
	return 0;
}

int cfg_parse_u64(const char *s, uint64_t *out)
{
	const char *end;
	unsigned int base = 10;
	uint64_t v;
	int ret;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	ret = cfg_parse_digits(s, base, &v, &end);
	if (ret) {
		return ret;
	}
	if (*end) {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMGT";
	const char *end, *sfx = NULL;
	unsigned int shift = 0;
	uint64_t v;
	int ret;

	ret = cfg_parse_digits(s, 10, &v, &end);
	if (ret) {
		return ret;
	}
	if (*end) {
		for (const char *p = suffixes; *p; p++) {
			if (toupper((unsigned char)end[0]) == *p) {
				sfx = p;
			}
		}
		if (!sfx) {
			return -EINVAL;
		}
		if (end[1] && strcasecmp(end + 1, "iB")) {
			return -EINVAL;
		}
		shift = 10 * (unsigned int)(sfx - suffixes + 1);
		if (v > (UINT64_MAX >> shift)) {
			return -ERANGE;
		}
	}
	*out = v << shift;
	return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* max == 0 means "no upper bound": schemas leave both bounds 0 for most options. */
static uint64_t cfg_max(const struct cfg_opt *o)
{
	uint64_t type_max = o->type == CFG_U32 ? UINT32_MAX : UINT64_MAX;

	if (!o->max || o->max > type_max) {
		return type_max;
	}
	return o->max;
}

static void cfg_enum_list(const struct cfg_opt *o, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; o->enum_vals && o->enum_vals[i] && off < len; i++) {
		int m = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", o->enum_vals[i]);

		if (m < 0) {
			break;
		}
		off += (size_t)m;
	}
}

/*
 * Parse @value into @o's field. On failure writes what was expected (without
 * the location prefix) to @why and returns -EINVAL.
 */
static int cfg_apply(const struct cfg_opt *o, void *obj, const char *value, char *why,
		     size_t whylen)
{
	char *field = (char *)obj + o->offset;
	uint64_t v;
	bool b;
	int ret;

	switch (o->type) {
	case CFG_STR:
		if (strlen(value) >= o->size) {
			cfg_err(why, whylen, "too long (at most %zu characters)",
				o->size ? o->size - 1 : 0);
			return -EINVAL;
		}
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case CFG_U64:
	case CFG_U32:
	case CFG_SIZE:
		if (o->type == CFG_SIZE) {
			ret = cfg_parse_size(value, &v);
		} else {
			ret = cfg_parse_u64(value, &v);
		}
		if (ret == -EINVAL) {
			cfg_err(why, whylen, "%s",
				o->type == CFG_SIZE ? "expected a size such as 64M or 1G"
						    : "expected an unsigned integer");
			return -EINVAL;
		}
		if (ret == -ERANGE || v < o->min || v > cfg_max(o)) {
			cfg_err(why, whylen, "must be between %" PRIu64 " and %" PRIu64, o->min,
				cfg_max(o));
			return -EINVAL;
		}
		if (o->type == CFG_U32) {
			*(uint32_t *)field = (uint32_t)v;
		} else {
			*(uint64_t *)field = v;
		}
		return 0;
	case CFG_BOOL:
		if (cfg_parse_bool(value, &b)) {
			cfg_err(why, whylen, "expected true/false, yes/no, on/off or 1/0");
			return -EINVAL;
		}
		*(bool *)field = b;
		return 0;
	case CFG_ENUM:
		for (int i = 0; o->enum_vals && o->enum_vals[i]; i++) {
			if (!strcasecmp(value, o->enum_vals[i])) {
				*(int *)field = i;
				return 0;
			}
		}
		{
			char list[160];

			cfg_enum_list(o, list, sizeof(list));
			cfg_err(why, whylen, "expected one of: %s", list);
		}
		return -EINVAL;
	}
	cfg_err(why, whylen, "bad option type %d in the schema", (int)o->type);
	return -EINVAL;
}

int cfg_defaults(const struct cfg_opt *opts, size_t n, void *obj, char *err, size_t errlen)
{
	char why[CFG_ERR_LEN];

	for (size_t i = 0; i < n; i++) {
		const struct cfg_opt *o = &opts[i];

		if (!o->def) {
			continue;
		}
		if (cfg_apply(o, obj, o->def, why, sizeof(why))) {
			cfg_err(err, errlen, "default [%s] %s = \"%s\": %s", o->section, o->name,
				o->def, why);
			return -EINVAL;
		}
	}
	return 0;
}

static const struct cfg_opt *cfg_find(const struct cfg_opt *opts, size_t n, const char *section,
				      const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(opts[i].section, section) && !strcmp(opts[i].name, name)) {
			return &opts[i];
		}
	}
	return NULL;
}

static bool cfg_has_section(const struct cfg_opt *opts, size_t n, const char *section)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(opts[i].section, section)) {
			return true;
		}
	}
	return false;
}

/* Record only the first error: later ones are often its consequences. */
static int cfg_file_err(struct cfg_file_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int cfg_file_err(struct cfg_file_ctx *ctx, const char *fmt, ...)
{
	char msg[CFG_ERR_LEN];
	va_list ap;

	if (ctx->err_line) {
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->err_line = ctx->src.line;
	cfg_err(ctx->err, ctx->errlen, "%s:%d: %s", ctx->src.name, ctx->src.line, msg);
	return 0;
}

static int cfg_file_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_file_ctx *ctx = user;
	const struct cfg_opt *o;
	char why[CFG_ERR_LEN];

	if (!*section) {
		return cfg_file_err(ctx, "key %s outside any [section]", name);
	}
	if (!cfg_has_section(ctx->opts, ctx->n, section)) {
		return cfg_file_err(ctx, "unknown section [%s] (key %s)", section, name);
	}
	o = cfg_find(ctx->opts, ctx->n, section, name);
	if (!o) {
		return cfg_file_err(ctx, "unknown key [%s] %s", section, name);
	}
	if (cfg_apply(o, ctx->obj, value, why, sizeof(why))) {
		return cfg_file_err(ctx, "[%s] %s = \"%s\": %s", section, name, value, why);
	}
	return 1;
}

/*
 * fgets() for inih that counts lines (inih 55's handler gets no line number),
 * rejects over-long lines instead of splitting them, and drops leading
 * blanks so an indented key is a key, not an inih multi-line continuation.
 */
static char *cfg_read_line(char *str, int num, void *stream)
{
	struct cfg_file_ctx *ctx = stream;
	size_t len = 0, cap = (size_t)num - 1;
	bool leading = true, too_long = false;
	int ch;

	ch = getc(ctx->f);
	if (ch == EOF) {
		return NULL;
	}
	ctx->src.line++;
	for (; ch != EOF && ch != '\n'; ch = getc(ctx->f)) {
		if (leading && (ch == ' ' || ch == '\t')) {
			continue;
		}
		leading = false;
		if (len < cap) {
			str[len++] = (char)ch;
		} else {
			too_long = true;
		}
	}
	if (too_long) {
		cfg_file_err(ctx, "line too long (at most %zu characters)", cap);
		len = 0;
	}
	str[len] = '\0';
	return str;
}

int cfg_load_file(const struct cfg_opt *opts, size_t n, void *obj, const char *path, char *err,
		  size_t errlen)
{
	struct cfg_file_ctx ctx = {
		.opts = opts,
		.n = n,
		.obj = obj,
		.src = {.name = path},
		.err = err,
		.errlen = errlen,
	};
	int ret;

	ctx.f = fopen(path, "r");
	if (!ctx.f) {
		ret = -errno;
		cfg_err(err, errlen, "%s: cannot open: %s", path, strerror(-ret));
		return ret;
	}
	ret = ini_parse_stream(cfg_read_line, &ctx, cfg_file_handler, &ctx);
	if (ferror(ctx.f)) {
		cfg_err(err, errlen, "%s: read error", path);
		ret = -EIO;
		goto out_close;
	}
	/* inih returns the first failing line: ours (handler or reader) or a
	 * syntax error it found on its own. */
	if (ret > 0 && (!ctx.err_line || ret < ctx.err_line)) {
		cfg_err(err, errlen, "%s:%d: syntax error: expected [section] or key = value", path,
			ret);
		ret = -EINVAL;
	} else if (ret || ctx.err_line) {
		ret = -EINVAL;
	}
out_close:
	fclose(ctx.f);
	return ret;
}

int cfg_split_assignment(const char *arg, char *key, size_t keylen, const char **value)
{
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg || (size_t)(eq - arg) >= keylen) {
		return -EINVAL;
	}
	memcpy(key, arg, (size_t)(eq - arg));
	key[eq - arg] = '\0';
	*value = eq + 1;
	return 0;
}

int cfg_set(const struct cfg_opt *opts, size_t n, void *obj, const char *key, const char *value,
	    char *err, size_t errlen)
{
	const struct cfg_opt *o = NULL;
	const char *dot = strchr(key, '.');
	char why[CFG_ERR_LEN];

	if (dot) {
		for (size_t i = 0; i < n; i++) {
			size_t slen = strlen(opts[i].section);

			if (slen == (size_t)(dot - key) && !strncmp(opts[i].section, key, slen) &&
			    !strcmp(opts[i].name, dot + 1)) {
				o = &opts[i];
				break;
			}
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(opts[i].name, key)) {
				continue;
			}
			if (o) {
				cfg_err(err, errlen,
					CFG_CMDLINE ": %s is ambiguous: use %s.%s or %s.%s", key,
					o->section, o->name, opts[i].section, opts[i].name);
				return -EINVAL;
			}
			o = &opts[i];
		}
	}
	if (!o) {
		cfg_err(err, errlen, CFG_CMDLINE ": unknown key %s", key);
		return -EINVAL;
	}
	if (cfg_apply(o, obj, value, why, sizeof(why))) {
		cfg_err(err, errlen, CFG_CMDLINE ": %s = %s: %s", key, value, why);
		return -EINVAL;
	}
	return 0;
}

void cfg_print_help(const struct cfg_opt *opts, size_t n, FILE *f)
{
	for (size_t i = 0; i < n; i++) {
		const struct cfg_opt *o = &opts[i];

		fprintf(f, "  %s.%s = %s\n", o->section, o->name, o->def ? o->def : "(no default)");
		fprintf(f, "      %s", o->help ? o->help : "");
		if (o->type == CFG_ENUM) {
			char list[160];

			cfg_enum_list(o, list, sizeof(list));
			fprintf(f, " [%s]", list);
		} else if ((o->type == CFG_U32 || o->type == CFG_U64 || o->type == CFG_SIZE) &&
			   (o->min || o->max)) {
			fprintf(f, " [%" PRIu64 "..%" PRIu64 "]", o->min, cfg_max(o));
		}
		fputc('\n', f);
	}
}
