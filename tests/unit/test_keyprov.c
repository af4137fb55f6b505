/* SPDX-License-Identifier: Apache-2.0 */
/* The key-provider interface over the native provider, and its KMIP
 * configuration checks (KMIP operations run against PyKMIP in the
 * integration tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_keyprov.h"

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/vc-keyprov-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static void rmrf(const char *d)
{
	char cmd[600];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

static void test_native_roundtrip(void **state)
{
	struct vc_error err = { 0 };
	struct vc_kmip_health h[2];
	struct vc_keyprov *p;
	struct vc_secret *k1, *k2;
	char id[VC_KEYPROV_ID_MAX], dir[600];
	char *base = tmpdir();

	(void)state;
	snprintf(dir, sizeof dir, "%s/prov", base);
	/* Without a backup and without permission, no keys. */
	assert_int_equal(vc_keyprov_new_native("np", dir, VC_NATIVE_CREATE, &p, &err), 0);
	assert_int_equal(vc_keyprov_kind(p), VC_KEYPROV_NATIVE);
	assert_string_equal(vc_keyprov_name(p), "np");
	assert_int_equal(vc_keyprov_health(p, h, 2), 1);
	assert_non_null(strstr(h[0].last_error, "backup"));
	assert_true(vc_keyprov_create_key(p, NULL, id, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "backup"));
	vc_keyprov_free(p);

	assert_int_equal(vc_keyprov_new_native("np", dir, VC_NATIVE_ALLOW_NO_BACKUP, &p, &err), 0);
	assert_int_equal(vc_keyprov_health(p, h, 2), 1);
	assert_string_equal(h[0].last_error, "");
	assert_int_equal(vc_keyprov_create_key(p, "label", id, &k1, &err), 0);
	assert_int_equal(vc_secret_len(k1), 32);
	assert_int_equal(vc_keyprov_get_key(p, id, &k2, &err), 0);
	assert_memory_equal(vc_secret_data(k1), vc_secret_data(k2), 32);
	vc_secret_free(k2);
	assert_int_equal(vc_keyprov_destroy_key(p, id, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "cannot be destroyed"));
	assert_non_null(vc_keyprov_native(p));
	vc_keyprov_free(p);

	/* Reopened: the same id gives the same KEK. */
	assert_int_equal(vc_keyprov_new_native("np", dir, VC_NATIVE_ALLOW_NO_BACKUP, &p, &err), 0);
	assert_int_equal(vc_keyprov_get_key(p, id, &k2, &err), 0);
	assert_memory_equal(vc_secret_data(k1), vc_secret_data(k2), 32);
	vc_secret_free(k1);
	vc_secret_free(k2);
	vc_keyprov_free(p);
	rmrf(base);
	free(base);
}

static void test_native_missing(void **state)
{
	struct vc_error err = { 0 };
	struct vc_keyprov *p = NULL;

	(void)state;
	assert_true(vc_keyprov_new_native("np", "/nonexistent/vc-keyprov", 0, &p, &err) < 0);
	assert_null(p);
	assert_non_null(strstr(err.msg, "native key provider 'np'"));
}

static void test_kmip_config(void **state)
{
	struct vc_kmip_cluster_cfg cfg = { .name = "kms" };
	struct vc_error err = { 0 };
	struct vc_keyprov *p = NULL;

	(void)state;
	assert_true(vc_keyprov_new_kmip(&cfg, &p, &err) < 0); /* no servers */
	cfg.servers[0] = "127.0.0.1:notaport";
	cfg.nservers = 1;
	assert_true(vc_keyprov_new_kmip(&cfg, &p, &err) < 0);
	assert_non_null(strstr(err.msg, "port"));
	cfg.servers[0] = "[::1]:5696";
	assert_int_equal(vc_keyprov_new_kmip(&cfg, &p, &err), 0);
	assert_int_equal(vc_keyprov_kind(p), VC_KEYPROV_KMIP);
	vc_keyprov_free(p);
}

static void test_parse_server(void **state)
{
	struct vc_error err = { 0 };
	char host[64];
	uint16_t port;

	(void)state;
	assert_int_equal(vc_kmip_parse_server("kms.example:15696", host, sizeof host, &port, &err), 0);
	assert_string_equal(host, "kms.example");
	assert_int_equal(port, 15696);
	assert_int_equal(vc_kmip_parse_server("10.0.0.1", host, sizeof host, &port, &err), 0);
	assert_int_equal(port, 5696);
	assert_int_equal(vc_kmip_parse_server("[fe80::1]:99", host, sizeof host, &port, &err), 0);
	assert_string_equal(host, "fe80::1");
	assert_int_equal(port, 99);
	assert_true(vc_kmip_parse_server("host:0", host, sizeof host, &port, &err) < 0);
	assert_true(vc_kmip_parse_server("host:70000", host, sizeof host, &port, &err) < 0);
	assert_true(vc_kmip_parse_server(":5696", host, sizeof host, &port, &err) < 0);
	assert_true(vc_kmip_parse_server("[::1", host, sizeof host, &port, &err) < 0);
	assert_true(vc_kmip_parse_server("host:", host, sizeof host, &port, &err) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_native_roundtrip),
		cmocka_unit_test(test_native_missing),
		cmocka_unit_test(test_kmip_config),
		cmocka_unit_test(test_parse_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
