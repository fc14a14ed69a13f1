/* SPDX-License-Identifier: Apache-2.0 */
/* mg_valid: names, sizes, object sizes, pool shapes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mgmt/mg_valid.h"

static void test_names(void **state)
{
	static const char *const good[] = {"a",		"Z",	  "0",	    "vol-1",
					   "vol_1.img", "9lives", "A.b-C_d"};
	static const char *const bad[] = {"",	  "-x", ".x",	"_x",	 "a b",	      "a/b",
					  "a%2f", "é",	"a\nb", "x\x01", "name;drop", "../etc"};
	char err[256], n63[64], n64[65];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(mg_check_name("volume", good[i], err, sizeof(err)), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(mg_check_name("volume", bad[i], err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "volume name"));
	}
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';
	assert_int_equal(mg_check_name("pool", n63, err, sizeof(err)), 0);
	assert_int_equal(mg_check_name("pool", n64, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1-63"));
	/* A NULL err is allowed. */
	assert_int_equal(mg_check_name("volume", "-", NULL, 0), -EINVAL);
}

static void test_content_type(void **state)
{
	static const char *const good[] = {NULL,
					   "",
					   "application/json",
					   "Application/JSON",
					   "application/json; charset=utf-8",
					   " application/json ;charset=UTF-8",
					   "application/vnd.openstack.volume+json",
					   "; charset=utf-8"};
	static const char *const bad[] = {
		"text/plain",		"application/x-www-form-urlencoded",
		"application/xml",	"multipart/form-data; boundary=x",
		"application/jsonx",	"application/json-patch",
		"text/json+xml",	"application/+json",
		"application/a/b+json", "json"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_true(mg_json_content_type(good[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(mg_json_content_type(bad[i]));
	}
}

static void test_unescape(void **state)
{
	static const char *const cases[][2] = {
		{"/v1/volumes/a", "/v1/volumes/a"},
		{"/v1/volumes/a%2Db", "/v1/volumes/a-b"},
		{"/v1/volumes/a%2db", "/v1/volumes/a-b"},
		{"/v1/volumes/b%00x", "/v1/volumes/b%00x"},
		{"/v1/volumes/b%00", "/v1/volumes/b%00"},
		{"/v1/volumes/a%2Fresize", "/v1/volumes/a%2Fresize"},
		{"/v1/volumes/a%2fresize", "/v1/volumes/a%2fresize"},
		{"%", "%"},
		{"%4", "%4"},
		{"%zz%41", "%zzA"},
		{"%C3%A9", "\xc3\xa9"},
		{"100%25", "100%"},
		{"%2525", "%25"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[64];

		snprintf(buf, sizeof(buf), "%s", cases[i][0]);
		assert_int_equal(mg_unescape(buf), strlen(cases[i][1]));
		assert_string_equal(buf, cases[i][1]);
	}
}

static void test_sizes(void **state)
{
	char err[256];

	assert_int_equal(mg_check_volume_size(0, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_volume_size(1, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_volume_size(4095, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "4096"));
	assert_int_equal(mg_check_volume_size(4096, err, sizeof(err)), 0);
	assert_int_equal(mg_check_volume_size(10ull << 30, err, sizeof(err)), 0);
	assert_int_equal(mg_check_volume_size(1ull << 50, err, sizeof(err)), 0);
	assert_int_equal(mg_check_volume_size((1ull << 50) + 4096, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_volume_size(UINT64_MAX - 4095, err, sizeof(err)), -EINVAL);
}

static void test_object_sizes(void **state)
{
	char err[256];

	for (uint64_t s = 64 << 10; s <= 64 << 20; s <<= 1) {
		assert_int_equal(mg_check_object_size(s, err, sizeof(err)), 0);
	}
	assert_int_equal(mg_check_object_size(0, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_object_size(32 << 10, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_object_size(128ull << 20, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_object_size(3 << 20, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_object_size((4 << 20) + 4096, err, sizeof(err)), -EINVAL);
}

static void test_pool_shape(void **state)
{
	char err[256];

	assert_int_equal(mg_check_pool_shape(3, 2, 128, err, sizeof(err)), 0);
	assert_int_equal(mg_check_pool_shape(1, 1, 1, err, sizeof(err)), 0);
	assert_int_equal(mg_check_pool_shape(5, 5, 4096, err, sizeof(err)), 0);
	assert_int_equal(mg_check_pool_shape(0, 0, 128, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_pool_shape(6, 2, 128, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_pool_shape(3, 4, 128, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_pool_shape(3, 0, 128, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_pool_shape(3, 2, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_pool_shape(3, 2, 4097, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_parse_failure_domain("server", err, sizeof(err)), 0);
	assert_int_equal(mg_parse_failure_domain("host", err, sizeof(err)), 1);
	assert_int_equal(mg_parse_failure_domain("rack", err, sizeof(err)), 2);
	assert_int_equal(mg_parse_failure_domain("Host", err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_parse_failure_domain("", err, sizeof(err)), -EINVAL);
}

static void test_qos(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(mg_check_qos("iops", false, 0, err, sizeof(err)), 0);
	assert_int_equal(mg_check_qos("iops", false, 1, err, sizeof(err)), 0);
	assert_int_equal(mg_check_qos("iops", false, MG_QOS_IOPS_MAX, err, sizeof(err)), 0);
	assert_int_equal(mg_check_qos("iops", false, MG_QOS_IOPS_MAX + 1, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "iops"));
	assert_int_equal(mg_check_qos("bps", true, 0, err, sizeof(err)), 0);
	assert_int_equal(mg_check_qos("bps", true, 4095, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_qos("bps", true, 4096, err, sizeof(err)), 0);
	assert_int_equal(mg_check_qos("bps", true, MG_QOS_BPS_MAX, err, sizeof(err)), 0);
	assert_int_equal(mg_check_qos("bps", true, MG_QOS_BPS_MAX + 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(mg_check_qos("bps", true, UINT64_MAX, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_object_sizes),
		cmocka_unit_test(test_pool_shape),
		cmocka_unit_test(test_qos),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
