/* SPDX-License-Identifier: Apache-2.0 */
/*
 * REST API tokens: token files (kp_tokens_load), header parsing and the
 * check (mg_auth), and how tools find their token (rest_token_resolve).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mgmt/mg_auth.h"
#include "mgmt/mg_settings.h"
#include "proto/auth.h"
#include "proto/rest.h"

#define TOK_A "0123456789abcdef0123456789abcdef"
#define TOK_B "Zz-_.~!+/=0123456789"

static char tmpdir[] = "/tmp/keel-test-mg-auth-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static const char *write_file(const char *name, const char *text, mode_t mode)
{
	const char *path = tmp_path(name);
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static int load(const char *text, mode_t mode, struct kp_tokens *t, char *err, size_t errlen)
{
	return kp_tokens_load(write_file("tok", text, mode), t, err, errlen);
}

/* ---- token files ---- */

static void test_tokens_load_ok(void **state)
{
	struct kp_tokens t;
	char err[256];

	(void)state;
	assert_int_equal(load(TOK_A "\n", 0600, &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.tok[0], TOK_A);
	/* no final newline, CRLF, comments, blank lines, trailing blanks */
	assert_int_equal(
		load("# api tokens\n\n" TOK_A " \t\r\n\r\n" TOK_B, 0400, &t, err, sizeof(err)), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.tok[0], TOK_A);
	assert_string_equal(t.tok[1], TOK_B);
}

static void test_tokens_mode_refused(void **state)
{
	static const mode_t bad[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601};
	struct kp_tokens t;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load(TOK_A "\n", bad[i], &t, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "chmod 600"));
		assert_int_equal(t.n, 0);
	}
	assert_int_equal(kp_tokens_load(tmpdir, &t, err, sizeof(err)), -EPERM); /* a directory */
	assert_int_equal(kp_tokens_load(tmp_path("nonexistent"), &t, err, sizeof(err)), -ENOENT);
}

static void test_tokens_bad_content(void **state)
{
	static const char *const bad[] = {
		"",			      /* nothing */
		"\n\n# only comments\n",      /* no token */
		"short\n",		      /* under 16 */
		"0123456789abcde\n",	      /* 15 */
		TOK_A " " TOK_A "\n",	      /* a space inside */
		"0123456789abcdef\x01\n",     /* control character */
		"0123456789abcdef\xc3\xa9\n", /* not ASCII */
		TOK_A "\n"
		      "x\n", /* one good, one bad */
	};
	char big[KP_TOKEN_MAX + 3], many[(KP_TOKENS_MAX + 1) * 40];
	struct kp_tokens t;
	char err[256];
	size_t off = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load(bad[i], 0600, &t, err, sizeof(err)), -EINVAL);
		assert_int_equal(t.n, 0);
	}
	memset(big, 'k', KP_TOKEN_MAX);
	big[KP_TOKEN_MAX] = '\n';
	big[KP_TOKEN_MAX + 1] = '\0';
	assert_int_equal(load(big, 0600, &t, err, sizeof(err)), 0); /* 128: the longest */
	memset(big, 'k', KP_TOKEN_MAX + 1);
	big[KP_TOKEN_MAX + 1] = '\n';
	big[KP_TOKEN_MAX + 2] = '\0';
	assert_int_equal(load(big, 0600, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, ":1:"));
	for (int i = 0; i <= KP_TOKENS_MAX; i++) {
		off += (size_t)snprintf(many + off, sizeof(many) - off, "token-number-%04d\n", i);
	}
	assert_int_equal(load(many, 0600, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than"));
	/* a NUL inside a line */
	assert_int_equal(kp_tokens_parse("x", TOK_A "\0" TOK_A "\n", 2 * sizeof(TOK_A), &t, err,
					 sizeof(err)),
			 -EINVAL);
}

static void test_tokens_too_big(void **state)
{
	char *text = malloc(KP_TOKEN_FILE_MAX + 2);
	struct kp_tokens t;
	char err[256];

	(void)state;
	assert_non_null(text);
	memset(text, '\n', KP_TOKEN_FILE_MAX + 1);
	memcpy(text, TOK_A, strlen(TOK_A));
	text[KP_TOKEN_FILE_MAX + 1] = '\0';
	assert_int_equal(load(text, 0600, &t, err, sizeof(err)), -EFBIG);
	text[KP_TOKEN_FILE_MAX] = '\0';
	assert_int_equal(load(text, 0600, &t, err, sizeof(err)), 0);
	free(text);
}

/* ---- headers ---- */

static void test_presented(void **state)
{
	const char *p;
	size_t len = 0;

	(void)state;
	assert_null(mg_auth_presented(NULL, NULL, &len));
	p = mg_auth_presented("abc", NULL, &len);
	assert_true(p && len == 3 && !strncmp(p, "abc", 3));
	p = mg_auth_presented("  abc \t", NULL, &len);
	assert_true(p && len == 3 && !strncmp(p, "abc", 3));
	assert_null(mg_auth_presented("", NULL, &len));
	assert_null(mg_auth_presented("   ", NULL, &len));
	/* X-Auth-Token wins */
	p = mg_auth_presented("xat", "Bearer bea", &len);
	assert_true(p && len == 3 && !strncmp(p, "xat", 3));
	p = mg_auth_presented(NULL, "Bearer bea", &len);
	assert_true(p && len == 3 && !strncmp(p, "bea", 3));
	p = mg_auth_presented(NULL, "  bEaReR\t  bea  ", &len);
	assert_true(p && len == 3 && !strncmp(p, "bea", 3));
	assert_null(mg_auth_presented(NULL, "Bearer", &len));
	assert_null(mg_auth_presented(NULL, "Bearer   ", &len));
	assert_null(mg_auth_presented(NULL, "Bearerbea", &len));
	assert_null(mg_auth_presented(NULL, "Basic dXNlcjpwYXNz", &len));
	assert_null(mg_auth_presented(NULL, "Bear bea", &len));
	assert_null(mg_auth_presented(NULL, "", &len));
}

static void token_auth(struct mg_auth *a, bool metrics_open)
{
	struct kp_tokens t = {.n = 2};

	memset(a, 0, sizeof(*a));
	a->mode = MG_AUTH_TOKEN;
	a->metrics_open = metrics_open;
	snprintf(t.tok[0], sizeof(t.tok[0]), "%s", TOK_A);
	snprintf(t.tok[1], sizeof(t.tok[1]), "%s", TOK_B);
	mg_auth_set_tokens(a, &t);
}

static void test_check(void **state)
{
	struct mg_auth a;
	char tok[sizeof(TOK_A)];

	(void)state;
	token_auth(&a, false);
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/volumes", NULL, NULL), -ENOKEY);
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/volumes", TOK_A, NULL), 0);
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/volumes", TOK_B, NULL), 0);
	assert_int_equal(
		mg_auth_check(&a, "PUT", "/v1/hosts/h/attachments/v", NULL, "Bearer " TOK_B), 0);
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/volumes", "nope", NULL), -EKEYREJECTED);
	/* X-Auth-Token decides even when a good Bearer follows */
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/volumes", "nope", "Bearer " TOK_A),
			 -EKEYREJECTED);
	/* every one-character change, prefix and extension is refused */
	for (size_t i = 0; i < strlen(TOK_A); i++) {
		memcpy(tok, TOK_A, sizeof(tok));
		tok[i] ^= 1;
		assert_int_equal(mg_auth_check(&a, "GET", "/", NULL, NULL), 0);
		assert_int_equal(mg_auth_check(&a, "GET", "/v1/pools", tok, NULL), -EKEYREJECTED);
		memcpy(tok, TOK_A, sizeof(tok));
		tok[i] = '\0';
		assert_int_equal(mg_auth_check(&a, "GET", "/v1/pools", tok[0] ? tok : "x", NULL),
				 -EKEYREJECTED);
	}
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/pools", TOK_A "0", NULL), -EKEYREJECTED);
	/* no token configured at all: nothing matches (all-zero digests) */
	memset(&a, 0, sizeof(a));
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/pools", "", NULL), -ENOKEY);
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/pools", TOK_A, NULL), -EKEYREJECTED);
}

static void test_open_paths(void **state)
{
	struct mg_auth a;

	(void)state;
	token_auth(&a, false);
	assert_true(mg_auth_open_path(&a, "GET", "/"));
	assert_true(mg_auth_open_path(&a, "HEAD", "/"));
	assert_true(mg_auth_open_path(&a, "GET", "/v3"));
	assert_true(mg_auth_open_path(&a, "GET", "/v3/"));
	assert_false(mg_auth_open_path(&a, "POST", "/"));
	assert_false(mg_auth_open_path(&a, "GET", "/v3//"));
	assert_false(mg_auth_open_path(&a, "GET", "/v3/volumes"));
	assert_false(mg_auth_open_path(&a, "GET", "/v3x"));
	assert_false(mg_auth_open_path(&a, "GET", "/v1/cluster/info"));
	assert_false(mg_auth_open_path(&a, "GET", "/metrics"));
	assert_int_equal(mg_auth_check(&a, "GET", "/metrics", NULL, NULL), -ENOKEY);
	token_auth(&a, true);
	assert_true(mg_auth_open_path(&a, "GET", "/metrics"));
	assert_true(mg_auth_open_path(&a, "GET", "/metrics/"));
	assert_false(mg_auth_open_path(&a, "POST", "/metrics"));
	assert_false(mg_auth_open_path(&a, "GET", "/metricsx"));
	assert_int_equal(mg_auth_check(&a, "GET", "/metrics", NULL, NULL), 0);
	assert_int_equal(mg_auth_check(&a, "GET", "/metrics", "wrong", NULL), 0);
	/* noauth: everything, any token */
	memset(&a, 0, sizeof(a));
	a.mode = MG_AUTH_NOAUTH;
	assert_int_equal(mg_auth_check(&a, "DELETE", "/v1/volumes/x", NULL, NULL), 0);
	assert_int_equal(mg_auth_check(&a, "POST", "/v3/p/volumes", "whatever", NULL), 0);
}

static void test_init_from_settings(void **state)
{
	struct mg_settings s;
	struct mg_auth a;
	char err[256];

	(void)state;
	assert_int_equal(mg_settings_defaults(&s, err, sizeof(err)), 0);
	assert_int_equal(s.auth, MG_AUTH_TOKEN);
	assert_true(s.metrics_auth);
	/* token mode without a file */
	assert_int_equal(mg_auth_init(&a, &s, err, sizeof(err)), -EINVAL);
	snprintf(s.db, sizeof(s.db), "x.db");
	snprintf(s.key_file, sizeof(s.key_file), "k");
	assert_int_equal(mg_settings_check(&s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "token"));
	snprintf(s.token_file, sizeof(s.token_file), "%s", write_file("t1", TOK_A "\n", 0644));
	assert_int_equal(mg_auth_init(&a, &s, err, sizeof(err)), -EPERM);
	snprintf(s.token_file, sizeof(s.token_file), "%s", write_file("t1", TOK_A "\n", 0600));
	assert_int_equal(mg_settings_check(&s, err, sizeof(err)), 0);
	assert_int_equal(mg_auth_init(&a, &s, err, sizeof(err)), 0);
	assert_int_equal(a.ntokens, 1);
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/pools", TOK_A, NULL), 0);
	assert_int_equal(mg_auth_check(&a, "GET", "/metrics", NULL, NULL), -ENOKEY);
	assert_int_equal(mg_settings_set(&s, "mgmt.metrics_auth", "false", err, sizeof(err)), 0);
	assert_int_equal(mg_auth_init(&a, &s, err, sizeof(err)), 0);
	assert_int_equal(mg_auth_check(&a, "GET", "/metrics", NULL, NULL), 0);
	/* noauth needs no file at all */
	assert_int_equal(mg_settings_set(&s, "mgmt.auth", "noauth", err, sizeof(err)), 0);
	s.token_file[0] = '\0';
	assert_int_equal(mg_settings_check(&s, err, sizeof(err)), 0);
	assert_int_equal(mg_auth_init(&a, &s, err, sizeof(err)), 0);
	assert_int_equal(mg_auth_check(&a, "GET", "/v1/pools", NULL, NULL), 0);
	assert_int_equal(mg_settings_set(&s, "mgmt.auth", "basic", err, sizeof(err)), -EINVAL);
}

/* ---- tools: rest_token_resolve ---- */

static void test_resolve(void **state)
{
	const char *fa = write_file("ra", TOK_A "\n", 0600);
	char fa_path[256], fb_path[256], out[KP_TOKEN_MAX + 1], err[256];

	(void)state;
	snprintf(fa_path, sizeof(fa_path), "%s", fa);
	snprintf(fb_path, sizeof(fb_path), "%s", write_file("rb", TOK_B "\n", 0600));
	unsetenv("KEEL_TOKEN");
	unsetenv("KEEL_TOKEN_FILE");
	/* explicit token, then file, then $KEEL_TOKEN, then $KEEL_TOKEN_FILE */
	assert_int_equal(
		rest_token_resolve("given-token", fa_path, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "given-token");
	setenv("KEEL_TOKEN", "env-token", 1);
	setenv("KEEL_TOKEN_FILE", fb_path, 1);
	assert_int_equal(rest_token_resolve(NULL, fa_path, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, TOK_A);
	assert_int_equal(rest_token_resolve("", NULL, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "env-token");
	unsetenv("KEEL_TOKEN");
	assert_int_equal(rest_token_resolve(NULL, NULL, out, sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, TOK_B);
	/* a named file must be usable */
	setenv("KEEL_TOKEN_FILE", tmp_path("missing"), 1);
	assert_int_equal(rest_token_resolve(NULL, NULL, out, sizeof(out), err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(rest_token_resolve(NULL, write_file("rc", TOK_A, 0640), out, sizeof(out),
					    err, sizeof(err)),
			 -EPERM);
	unsetenv("KEEL_TOKEN_FILE");
	/* tokens that cannot go in a header */
	assert_int_equal(
		rest_token_resolve("a\r\nX-Evil: 1", NULL, out, sizeof(out), err, sizeof(err)),
		-EINVAL);
	assert_int_equal(rest_token_resolve("a b", NULL, out, sizeof(out), err, sizeof(err)),
			 -EINVAL);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens_load_ok),
		cmocka_unit_test(test_tokens_mode_refused),
		cmocka_unit_test(test_tokens_bad_content),
		cmocka_unit_test(test_tokens_too_big),
		cmocka_unit_test(test_presented),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_open_paths),
		cmocka_unit_test(test_init_from_settings),
		cmocka_unit_test(test_resolve),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
