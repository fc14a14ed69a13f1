/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"

enum mode { MODE_FAST, MODE_SAFE, MODE_PARANOID };

struct settings {
	char listen[32];
	uint64_t journal_size;
	uint64_t object_size;
	uint64_t id;
	uint32_t workers;
	bool direct;
	int mode;
	char name[8];
};

static const char *const modes[] = {"fast", "safe", "paranoid", NULL};

#define OPT(sec, nm, type_, field, min_, max_, def_, vals)                                         \
	{                                                                                          \
		.section = sec, .name = nm, .type = type_,                                         \
		.offset = offsetof(struct settings, field),                                        \
		.size = sizeof(((struct settings *)0)->field), .min = min_, .max = max_,           \
		.def = def_, .enum_vals = vals, .help = "help for " nm,                            \
	}

static const struct cfg_opt opts[] = {
	OPT("server", "listen", CFG_STR, listen, 0, 0, "0.0.0.0:7400", NULL),
	OPT("server", "journal_size", CFG_SIZE, journal_size, 0, 0, "64M", NULL),
	OPT("server", "object_size", CFG_SIZE, object_size, 65536, 67108864, "4M", NULL),
	OPT("server", "id", CFG_U64, id, 0, 0, NULL, NULL),
	OPT("server", "workers", CFG_U32, workers, 1, 64, "4", NULL),
	OPT("server", "direct", CFG_BOOL, direct, 0, 0, "yes", NULL),
	OPT("server", "mode", CFG_ENUM, mode, 0, 0, "safe", modes),
	OPT("server", "name", CFG_STR, name, 0, 0, NULL, NULL),
	OPT("admin", "listen", CFG_STR, listen, 0, 0, NULL, NULL),
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static char conf_path[64];

static int write_conf(const char *text)
{
	int fd;

	snprintf(conf_path, sizeof(conf_path), "/tmp/keel-conf-XXXXXX");
	fd = mkstemp(conf_path);
	if (fd < 0) {
		return -1;
	}
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Load @text as a file; return the result and leave the message in @err with the
 * random file name replaced by "keel.conf". */
static int load(struct settings *s, const char *text, char *err, size_t errlen)
{
	char raw[CFG_ERR_LEN];
	size_t plen;
	int ret;

	assert_int_equal(write_conf(text), 0);
	raw[0] = '\0';
	ret = cfg_load_file(opts, NOPTS, s, conf_path, raw, sizeof(raw));
	unlink(conf_path);
	plen = strlen(conf_path);
	if (!strncmp(raw, conf_path, plen)) {
		snprintf(err, errlen, "keel.conf%s", raw + plen);
	} else {
		snprintf(err, errlen, "%s", raw);
	}
	return ret;
}

static void defaults(struct settings *s)
{
	char err[CFG_ERR_LEN];

	memset(s, 0, sizeof(*s));
	assert_int_equal(cfg_defaults(opts, NOPTS, s, err, sizeof(err)), 0);
}

static void test_defaults(void **state)
{
	struct settings s;

	defaults(&s);
	assert_string_equal(s.listen, "0.0.0.0:7400");
	assert_int_equal(s.journal_size, 64ull << 20);
	assert_int_equal(s.object_size, 4ull << 20);
	assert_int_equal(s.id, 0);
	assert_int_equal(s.workers, 4);
	assert_true(s.direct);
	assert_int_equal(s.mode, MODE_SAFE);
	assert_string_equal(s.name, "");
}

static void test_bad_default(void **state)
{
	static const struct cfg_opt bad[] = {
		OPT("server", "workers", CFG_U32, workers, 1, 64, "100", NULL),
	};
	struct settings s;
	char err[CFG_ERR_LEN];

	assert_int_equal(cfg_defaults(bad, 1, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "default [server] workers = \"100\": must be between 1 and 64");
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		int ret;
		uint64_t v;
	} cases[] = {
		{"0", 0, 0},
		{"4096", 0, 4096},
		{"1K", 0, 1024},
		{"64k", 0, 65536},
		{"64M", 0, 64ull << 20},
		{"1G", 0, 1ull << 30},
		{"2T", 0, 2ull << 40},
		{"3KiB", 0, 3072},
		{"5MiB", 0, 5ull << 20},
		{"1GiB", 0, 1ull << 30},
		{"1TiB", 0, 1ull << 40},
		{"18446744073709551615", 0, UINT64_MAX},
		{"16777215T", 0, 16777215ull << 40},
		{"18446744073709551616", -ERANGE, 0},
		{"16777216T", -ERANGE, 0},
		{"99999999999999999999G", -ERANGE, 0},
		{"", -EINVAL, 0},
		{"12Q", -EINVAL, 0},
		{"M", -EINVAL, 0},
		{"-1", -EINVAL, 0},
		{"+1", -EINVAL, 0},
		{" 1", -EINVAL, 0},
		{"1 ", -EINVAL, 0},
		{"1KB", -EINVAL, 0},
		{"1Kib ", -EINVAL, 0},
		{"1.5G", -EINVAL, 0},
		{"0x10", -EINVAL, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int ret = cfg_parse_size(cases[i].s, &v);

		if (ret != cases[i].ret) {
			fail_msg("cfg_parse_size(\"%s\") = %d, expected %d", cases[i].s, ret,
				 cases[i].ret);
		}
		if (!ret && v != cases[i].v) {
			fail_msg("cfg_parse_size(\"%s\") gave %llu", cases[i].s,
				 (unsigned long long)v);
		}
	}
}

static void test_parse_u64_bool(void **state)
{
	uint64_t v;
	bool b;

	assert_int_equal(cfg_parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cfg_parse_u64("0x1fF", &v), 0);
	assert_int_equal(v, 0x1ff);
	assert_int_equal(cfg_parse_u64("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(cfg_parse_u64("0xffffffffffffffff", &v), 0);
	assert_int_equal(cfg_parse_u64("0x10000000000000000", &v), -ERANGE);
	assert_int_equal(cfg_parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(cfg_parse_u64("0x", &v), -EINVAL);
	assert_int_equal(cfg_parse_u64("-5", &v), -EINVAL);
	assert_int_equal(cfg_parse_u64("12a", &v), -EINVAL);
	assert_int_equal(cfg_parse_u64("", &v), -EINVAL);

	for (int i = 0; i < 8; i++) {
		static const char *const t[] = {"true", "yes", "on", "1", "TRUE", "Yes", "ON", "1"};
		static const char *const f[] = {"false", "no", "off", "0",
						"False", "NO", "Off", "0"};

		b = false;
		assert_int_equal(cfg_parse_bool(t[i], &b), 0);
		assert_true(b);
		assert_int_equal(cfg_parse_bool(f[i], &b), 0);
		assert_false(b);
	}
	assert_int_equal(cfg_parse_bool("2", &b), -EINVAL);
	assert_int_equal(cfg_parse_bool("", &b), -EINVAL);
	assert_int_equal(cfg_parse_bool("yess", &b), -EINVAL);
}

static void test_file_overrides(void **state)
{
	struct settings s;
	char err[CFG_ERR_LEN];

	defaults(&s);
	assert_int_equal(load(&s,
			      "; comment\n"
			      "# another\n"
			      "[server]\n"
			      "journal_size = 1G\n"
			      "  object_size = 64KiB   ; indented key, inline comment\n"
			      "id = 0xdeadbeef\n"
			      "workers=64\n"
			      "direct = off\r\n"
			      "mode = PARANOID\n"
			      "name = abcdefg\n"
			      "\n"
			      "[admin]\n"
			      "listen = [::1]:9000\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(s.journal_size, 1ull << 30);
	assert_int_equal(s.object_size, 65536);
	assert_int_equal(s.id, 0xdeadbeef);
	assert_int_equal(s.workers, 64);
	assert_false(s.direct);
	assert_int_equal(s.mode, MODE_PARANOID);
	assert_string_equal(s.name, "abcdefg");
	/* Both options share the field: the later line wins. */
	assert_string_equal(s.listen, "[::1]:9000");
}

static void check_file_error(const char *text, const char *expect)
{
	struct settings s;
	char err[CFG_ERR_LEN];

	defaults(&s);
	assert_int_equal(load(&s, text, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, expect);
}

static void test_file_errors(void **state)
{
	check_file_error("[server]\n\n\n\n\n\njournal_size = 12Q\n",
			 "keel.conf:7: [server] journal_size = \"12Q\": expected a size such as "
			 "64M or 1G");
	check_file_error("[server]\nfoo = 1\n", "keel.conf:2: unknown key [server] foo");
	check_file_error("[nope]\nfoo = 1\n", "keel.conf:2: unknown section [nope] (key foo)");
	check_file_error("workers = 3\n", "keel.conf:1: key workers outside any [section]");
	check_file_error("[server]\nworkers = 3\nthis is not ini\n",
			 "keel.conf:3: syntax error: expected [section] or key = value");
	check_file_error("[server\n",
			 "keel.conf:1: syntax error: expected [section] or key = value");
	check_file_error("[server]\nobject_size = 3\n",
			 "keel.conf:2: [server] object_size = \"3\": must be between 65536 and "
			 "67108864");
	check_file_error("[server]\nobject_size = 128M\n",
			 "keel.conf:2: [server] object_size = \"128M\": must be between 65536 "
			 "and 67108864");
	check_file_error("[server]\njournal_size = 16777216T\n",
			 "keel.conf:2: [server] journal_size = \"16777216T\": must be between 0 "
			 "and 18446744073709551615");
	check_file_error("[server]\nworkers = 0\n",
			 "keel.conf:2: [server] workers = \"0\": must be between 1 and 64");
	check_file_error("[server]\nworkers = many\n",
			 "keel.conf:2: [server] workers = \"many\": expected an unsigned integer");
	check_file_error("[server]\ndirect = maybe\n",
			 "keel.conf:2: [server] direct = \"maybe\": expected true/false, yes/no, "
			 "on/off or 1/0");
	check_file_error("[server]\nmode = quick\n",
			 "keel.conf:2: [server] mode = \"quick\": expected one of: fast, safe, "
			 "paranoid");
	check_file_error("[server]\nname = abcdefgh\n",
			 "keel.conf:2: [server] name = \"abcdefgh\": too long (at most 7 "
			 "characters)");
	check_file_error("[server]\nid = 5\nid = -1\n",
			 "keel.conf:3: [server] id = \"-1\": expected an unsigned integer");
	check_file_error("[server]\nid =\n",
			 "keel.conf:2: [server] id = \"\": expected an unsigned integer");
	/* The first error is reported, whichever kind it is. */
	check_file_error("[server]\nfoo = 1\n[bad\n", "keel.conf:2: unknown key [server] foo");
	check_file_error("[server]\n[bad\nfoo = 1\n",
			 "keel.conf:2: syntax error: expected [section] or key = value");
}

static void test_file_long_line(void **state)
{
	char text[1024];

	snprintf(text, sizeof(text), "[server]\nname = %0300d\nworkers = 2\n", 7);
	check_file_error(text, "keel.conf:2: line too long (at most 199 characters)");
}

static void test_file_missing(void **state)
{
	struct settings s;
	char err[CFG_ERR_LEN];

	assert_int_equal(cfg_load_file(opts, NOPTS, &s, "/nonexistent/keel.conf", err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "/nonexistent/keel.conf: cannot open: No such file or directory");
}

static void test_set(void **state)
{
	struct settings s;
	char err[CFG_ERR_LEN];

	defaults(&s);
	assert_int_equal(cfg_set(opts, NOPTS, &s, "server.workers", "8", err, sizeof(err)), 0);
	assert_int_equal(s.workers, 8);
	assert_int_equal(cfg_set(opts, NOPTS, &s, "object_size", "1M", err, sizeof(err)), 0);
	assert_int_equal(s.object_size, 1 << 20);
	assert_int_equal(cfg_set(opts, NOPTS, &s, "mode", "fast", err, sizeof(err)), 0);
	assert_int_equal(s.mode, MODE_FAST);
	assert_int_equal(cfg_set(opts, NOPTS, &s, "admin.listen", "x:1", err, sizeof(err)), 0);
	assert_string_equal(s.listen, "x:1");

	assert_int_equal(cfg_set(opts, NOPTS, &s, "object_size", "3", err, sizeof(err)), -EINVAL);
	assert_string_equal(err,
			    "command line: object_size = 3: must be between 65536 and 67108864");
	assert_int_equal(s.object_size, 1 << 20);
	assert_int_equal(cfg_set(opts, NOPTS, &s, "listen", "y:2", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "command line: listen is ambiguous: use server.listen or "
				 "admin.listen");
	assert_int_equal(cfg_set(opts, NOPTS, &s, "foo", "1", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "command line: unknown key foo");
	assert_int_equal(cfg_set(opts, NOPTS, &s, "admin.workers", "1", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "command line: unknown key admin.workers");
	assert_int_equal(cfg_set(opts, NOPTS, &s, "serve.workers", "1", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg_set(opts, NOPTS, &s, "mode", "slow", err, sizeof(err)), -EINVAL);
	assert_string_equal(err,
			    "command line: mode = slow: expected one of: fast, safe, paranoid");
	assert_int_equal(cfg_set(opts, NOPTS, &s, "server.workers", "4294967296", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "command line: server.workers = 4294967296: must be between 1 "
				 "and 64");
	assert_int_equal(s.workers, 8);
}

static void test_print_help(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	cfg_print_help(opts, NOPTS, f);
	fclose(f);
	assert_non_null(strstr(text, "  server.journal_size = 64M\n      help for journal_size\n"));
	assert_non_null(strstr(text, "  server.object_size = 4M\n      help for object_size "
				     "[65536..67108864]\n"));
	assert_non_null(strstr(text, "  server.mode = safe\n      help for mode [fast, safe, "
				     "paranoid]\n"));
	assert_non_null(strstr(text, "  server.id = (no default)\n"));
	assert_non_null(strstr(text, "  admin.listen = (no default)\n"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bad_default),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_u64_bool),
		cmocka_unit_test(test_file_overrides),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_long_line),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_print_help),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
