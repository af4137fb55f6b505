/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the manager's request parsing: targets, routes, bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "request.h"

static void test_target_ok(void **state)
{
	struct vc_target t;
	struct vc_error err = { 0 };

	(void)state;
	assert_int_equal(vc_target_parse("/api/v1/roles/a%20b?object=vm-1&x=a+b%26c", &t, &err), 0);
	assert_int_equal(t.nseg, 4);
	assert_string_equal(t.seg[3], "a b");
	assert_int_equal(t.nq, 2);
	assert_string_equal(vc_target_query(&t, "object"), "vm-1");
	assert_string_equal(vc_target_query(&t, "x"), "a b&c");
	assert_null(vc_target_query(&t, "y"));
	/* One trailing slash is the same path. */
	assert_int_equal(vc_target_parse("/api/v1/roles/", &t, &err), 0);
	assert_int_equal(t.nseg, 3);
	/* A key without '=' has an empty value. */
	assert_int_equal(vc_target_parse("/a?flag", &t, &err), 0);
	assert_string_equal(vc_target_query(&t, "flag"), "");
}

static void test_target_bad(void **state)
{
	static const char *const bad[] = {
		"", "api/v1", "//api", "/a//b", "/a/./b", "/a/../b", "/a/%2e%2e/b", "/a/%2F",
		"/a/%00", "/a/%0a", "/a/%", "/a/%4", "/a/%zz", "/a#frag", "/a?x=1&x=2", "/a?&",
		"/a?=v", "/1/2/3/4/5/6/7/8/9", "/a?k=%00",
	};
	struct vc_target t;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct vc_error err = { 0 };

		if (vc_target_parse(bad[i], &t, &err) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(err.msg[0] != '\0');
		assert_null(strchr(err.msg, '\n'));
	}
	{
		char longseg[400] = "/";
		struct vc_error err = { 0 };

		memset(longseg + 1, 'a', 300);
		assert_int_equal(vc_target_parse(longseg, &t, &err), -EINVAL);
	}
}

static void test_query_allowed(void **state)
{
	static const char *const allowed[] = { "object", NULL };
	struct vc_target t;
	struct vc_error err = { 0 };

	(void)state;
	assert_int_equal(vc_target_parse("/p?object=root", &t, &err), 0);
	assert_int_equal(vc_target_check_query(&t, allowed, &err), 0);
	assert_int_equal(vc_target_parse("/p?object=root&evil=1", &t, &err), 0);
	assert_int_equal(vc_target_check_query(&t, allowed, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "evil"));
	assert_int_equal(vc_target_check_query(&t, NULL, &err), -EINVAL);
}

static void test_route_match(void **state)
{
	struct vc_target t;
	size_t p[4], np = 9;

	(void)state;
	assert_int_equal(vc_target_parse("/api/v1/key-providers/kms/keys/k1", &t, NULL), 0);
	assert_true(vc_route_match("/api/v1/key-providers/{name}/keys/{key_id}", &t, p, &np));
	assert_int_equal(np, 2);
	assert_string_equal(t.seg[p[0]], "kms");
	assert_string_equal(t.seg[p[1]], "k1");
	assert_false(vc_route_match("/api/v1/key-providers/{name}", &t, p, &np));
	assert_false(vc_route_match("/api/v1/key-providers/{name}/keys/{key_id}/x", &t, p, &np));
	assert_false(vc_route_match("/api/v1/key-providers/{name}/key/{key_id}", &t, p, &np));
	assert_int_equal(vc_target_parse("/api/v1/session", &t, NULL), 0);
	assert_true(vc_route_match("/api/v1/session", &t, p, &np));
	assert_int_equal(np, 0);
	assert_false(vc_route_match("/api/v1/sessions", &t, p, &np));
}

static const char *const kinds[] = { "kmip", "native", NULL };
static const struct vc_field sub[] = {
	{ "backup", VC_F_STRING, true, 1, 16, NULL, NULL },
	{ 0 },
};
static const struct vc_field spec[] = {
	{ "name", VC_F_NAME, true, 0, 0, NULL, NULL },
	{ "kind", VC_F_NAME, true, 0, 0, NULL, kinds },
	{ "n", VC_F_INT, false, 1, 10, NULL, NULL },
	{ "on", VC_F_BOOL, false, 0, 0, NULL, NULL },
	{ "servers", VC_F_STRINGS, false, 1, 2, NULL, NULL },
	{ "groups", VC_F_NAMES, false, 0, 2, NULL, NULL },
	{ "provider", VC_F_NAME_OR_NULL, false, 0, 0, NULL, NULL },
	{ "restore", VC_F_OBJECT, false, 0, 0, sub, NULL },
	{ "pw", VC_F_STRING, false, 8, 12, NULL, NULL },
	{ 0 },
};

static void body_ok(const char *s)
{
	struct vc_error err = { 0 };
	json_t *j = NULL;

	if (vc_body_parse(s, strlen(s), spec, &j, &err) != 0)
		fail_msg("refused %s: %s", s, err.msg);
	assert_true(json_is_object(j));
	json_decref(j);
}

static void body_bad(const char *s, const char *want)
{
	struct vc_error err = { 0 };
	json_t *j = NULL;

	if (vc_body_parse(s, strlen(s), spec, &j, &err) != -EINVAL)
		fail_msg("accepted %s", s);
	assert_null(j);
	if (!strstr(err.msg, want))
		fail_msg("%s: message '%s' does not name '%s'", s, err.msg, want);
	assert_null(strchr(err.msg, '\n'));
}

static void test_body(void **state)
{
	(void)state;
	body_ok("{\"name\":\"a\",\"kind\":\"kmip\"}");
	body_ok("{\"name\":\"a\",\"kind\":\"native\",\"n\":10,\"on\":false,\"servers\":[\"h:1\"],"
		"\"groups\":[],\"provider\":null,\"restore\":{\"backup\":\"x\"},\"pw\":\"12345678\"}");
	body_ok("{\"name\":\"a\",\"kind\":\"kmip\",\"provider\":\"p\"}");
	body_bad("", "missing field 'name'");
	body_bad("[]", "JSON object");
	body_bad("{\"name\":\"a\"", "malformed JSON");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"x\":1}", "unknown field 'x'");
	body_bad("{\"name\":\"a\",\"name\":\"b\",\"kind\":\"kmip\"}", "malformed JSON");
	body_bad("{\"name\":1,\"kind\":\"kmip\"}", "field 'name'");
	body_bad("{\"name\":\"a b\",\"kind\":\"kmip\"}", "field 'name'");
	body_bad("{\"name\":\"a/b\",\"kind\":\"kmip\"}", "field 'name'");
	body_bad("{\"name\":\"a\\u0000b\",\"kind\":\"kmip\"}", "malformed JSON");
	body_bad("{\"name\":\"a\",\"kind\":\"tpm\"}", "field 'kind'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"n\":11}", "field 'n'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"n\":1.5}", "field 'n'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"on\":1}", "field 'on'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"servers\":[]}", "field 'servers'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"servers\":[\"a\",\"b\",\"c\"]}", "field 'servers'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"servers\":[1]}", "field 'servers'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"groups\":[\"a b\"]}", "field 'groups'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"provider\":false}", "field 'provider'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"restore\":{}}", "missing field 'restore.backup'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"restore\":{\"backup\":\"x\",\"y\":1}}",
		 "unknown field 'restore.y'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"pw\":\"1234567\"}", "field 'pw'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"pw\":\"1234567890123\"}", "field 'pw'");
	body_bad("{\"name\":\"a\",\"kind\":\"kmip\",\"pw\":\"\xff\xfe\"}", "malformed JSON");
}

static void test_body_size(void **state)
{
	static char big[VC_REQ_BODY_MAX + 2];
	struct vc_error err = { 0 };
	json_t *j = NULL;

	(void)state;
	memset(big, ' ', sizeof big);
	assert_int_equal(vc_body_parse(big, sizeof big, spec, &j, &err), -EMSGSIZE);
	assert_null(j);
}

static void test_time(void **state)
{
	struct vc_error err = { 0 };
	int64_t t = 0;

	(void)state;
	assert_int_equal(vc_time_parse("1795447605", &t, &err), 0);
	assert_int_equal(t, 1795447605);
	/* 2026-11-23T10:00:00Z, computed independently: 20780 days + 10 h. */
	assert_int_equal(vc_time_parse("2026-11-23T10:00:00Z", &t, &err), 0);
	assert_int_equal(t, 20780LL * 86400 + 36000);
	assert_int_equal(vc_time_parse("2026-11-23T10:00:00", &t, &err), -EINVAL);
	assert_int_equal(vc_time_parse("2026-11-23T10:00:00+01:00", &t, &err), -EINVAL);
	assert_int_equal(vc_time_parse("-5", &t, &err), -EINVAL);
	assert_int_equal(vc_time_parse("12x", &t, &err), -EINVAL);
	assert_int_equal(vc_time_parse("99999999999999999999", &t, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target_ok),
		cmocka_unit_test(test_target_bad),
		cmocka_unit_test(test_query_allowed),
		cmocka_unit_test(test_route_match),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_body_size),
		cmocka_unit_test(test_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
