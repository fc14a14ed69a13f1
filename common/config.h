/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Table-driven configuration: an INI file (inih) plus command-line
 * overrides, validated against a schema with clear errors.
 *
 * A program describes its settings as an array of struct cfg_opt, each
 * naming a field of its own settings struct (by offset). Loading order:
 * cfg_defaults(), then cfg_load_file(), then cfg_set() per command-line
 * override; later wins. Every error message names the source (file:line or
 * "command line"), the key, the bad value and what was expected, e.g.
 *   keel.conf:7: [server] journal_size = "12Q": expected a size such as 64M
 *
 * Not thread-safe (setup time only).
 */
#ifndef KEEL_COMMON_CONFIG_H
#define KEEL_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
	CFG_STR,  /* char[size] field; value must fit */
	CFG_U64,  /* uint64_t, decimal or 0x hex, within [min, max] */
	CFG_U32,  /* uint32_t, within [min, max] */
	CFG_SIZE, /* uint64_t bytes; suffixes K M G T (powers of 1024), within [min, max] */
	CFG_BOOL, /* bool: true/false/yes/no/on/off/1/0 */
	CFG_ENUM, /* int index into enum_vals */
};

struct cfg_opt {
	const char *section; /* INI section, e.g. "server" */
	const char *name;    /* key, e.g. "listen" */
	enum cfg_type type;
	size_t offset;       /* offsetof(settings struct, field) */
	size_t size;         /* CFG_STR: buffer size */
	uint64_t min, max;   /* numeric bounds (inclusive) */
	const char *def;     /* default as text (parsed like any value); NULL = none */
	const char *const *enum_vals; /* CFG_ENUM: NULL-terminated */
	const char *help;    /* one line, used by cfg_print_help() */
};

#define CFG_ERR_LEN 256

/* Apply every default. Returns 0, or -EINVAL with @err (a default that does
 * not parse: a bug in the schema). */
int cfg_defaults(const struct cfg_opt *opts, size_t n, void *obj, char *err, size_t errlen);

/* Load an INI file. Unknown sections or keys, bad values and syntax errors
 * are errors (-EINVAL, with file:line in @err); -ENOENT/-EACCES if it cannot
 * be opened. */
int cfg_load_file(const struct cfg_opt *opts, size_t n, void *obj, const char *path, char *err,
		  size_t errlen);

/* Split a command-line "KEY=VALUE" (--set): @key gets KEY (NUL-terminated,
 * at most @keylen - 1 bytes), *@value points into @arg. -EINVAL when there
 * is no '=', KEY is empty or too long. */
int cfg_split_assignment(const char *arg, char *key, size_t keylen, const char **value);

/* Set "section.name" (or bare "name" when unique) to @value, as from the
 * command line. -EINVAL (unknown key, bad value) with @err. */
int cfg_set(const struct cfg_opt *opts, size_t n, void *obj, const char *key, const char *value,
	    char *err, size_t errlen);

/* Parse helpers, shared with command-line parsing. 0 or -EINVAL / -ERANGE. */
int cfg_parse_size(const char *s, uint64_t *out);
int cfg_parse_u64(const char *s, uint64_t *out);
int cfg_parse_bool(const char *s, bool *out);

/* Print "  section.name = default\n      help" for every option. */
void cfg_print_help(const struct cfg_opt *opts, size_t n, FILE *f);

#endif
