/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_priv: privilege table, roles, inherited permissions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vc_priv.h"

/* The list of cryptographic privileges, spelled independently of
 * the library's table so a typo there shows up here. */
static const char *const crypto_ids[] = {
	"Cryptographer.Encrypt", "Cryptographer.EncryptNew", "Cryptographer.Decrypt",
	"Cryptographer.Clone", "Cryptographer.Migrate", "Cryptographer.Recrypt",
	"Cryptographer.AddDisk", "Cryptographer.RegisterHost", "Cryptographer.RegisterVM",
	"Cryptographer.ManageKeys", "Cryptographer.ManageKeyServers",
	"Cryptographer.ManageEncryptionPolicy", "Cryptographer.ReadKeyServersInfo",
	"Cryptographer.Access",
};

static const char *const ordinary_ids[] = {
	"System.View", "System.Read", "VirtualMachine.Interact.PowerOn",
	"VirtualMachine.Interact.PowerOff", "VirtualMachine.Config.Rename",
	"VirtualMachine.Config.Settings", "VirtualMachine.Inventory.Create",
	"VirtualMachine.Inventory.Delete", "Host.Config.Settings",
	"Host.Inventory.AddHost", "Host.Inventory.RemoveHost", "Folder.Create",
	"Folder.Delete", "Sessions.TerminateSession", "Authorization.ModifyRoles",
	"Authorization.ModifyPermissions", "Global.Diagnostics",
};

static enum vc_priv lookup(const char *name)
{
	enum vc_priv p;

	assert_int_equal(vc_priv_lookup(name, &p, NULL), 0);
	assert_string_equal(vc_priv_name(p), name);
	return p;
}

static void test_table_names(void **state)
{
	size_t ncrypto = 0;

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(crypto_ids); i++)
		assert_true(vc_priv_is_crypto(lookup(crypto_ids[i])));
	for (size_t i = 0; i < VC_ARRAY_SIZE(ordinary_ids); i++)
		assert_false(vc_priv_is_crypto(lookup(ordinary_ids[i])));
	/* Every table entry has a distinct name that looks itself up, and
	 * is_crypto agrees with the name's prefix. */
	for (int i = 0; i < VC_PRIV_COUNT; i++) {
		const char *n = vc_priv_name((enum vc_priv)i);

		assert_non_null(n);
		assert_int_equal(lookup(n), i);
		assert_int_equal(vc_priv_is_crypto((enum vc_priv)i),
				 strncmp(n, "Cryptographer.", 14) == 0);
		ncrypto += vc_priv_is_crypto((enum vc_priv)i);
	}
	assert_int_equal(ncrypto, VC_ARRAY_SIZE(crypto_ids));
	assert_null(vc_priv_name(VC_PRIV_COUNT));
	assert_false(vc_priv_is_crypto(VC_PRIV_COUNT));
}

static void test_lookup_unknown(void **state)
{
	struct vc_error err = { 0 };
	enum vc_priv p;

	(void)state;
	assert_int_equal(vc_priv_lookup("Cryptographer.Nope", &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Cryptographer.Nope"));
	/* Exact match only: no prefix, case or blank tolerance. */
	assert_int_equal(vc_priv_lookup("System.Vie", &p, NULL), -EINVAL);
	assert_int_equal(vc_priv_lookup("system.view", &p, NULL), -EINVAL);
	assert_int_equal(vc_priv_lookup("System.View ", &p, NULL), -EINVAL);
	assert_int_equal(vc_priv_lookup("", &p, NULL), -EINVAL);
}

static void test_set_ops(void **state)
{
	struct vc_privset s = vc_privset_none(), t = vc_privset_none();
	struct vc_privset all = vc_privset_all();

	(void)state;
	assert_int_equal(vc_privset_count(&s), 0);
	assert_int_equal(vc_privset_count(&all), VC_PRIV_COUNT);
	for (int i = 0; i < VC_PRIV_COUNT; i++) {
		assert_true(vc_privset_has(&all, (enum vc_priv)i));
		assert_false(vc_privset_has(&s, (enum vc_priv)i));
	}
	assert_false(vc_privset_has(&all, VC_PRIV_COUNT));
	vc_privset_add(&s, VC_PRIV_COUNT);
	assert_int_equal(vc_privset_count(&s), 0);

	vc_privset_add(&s, VC_PRIV_CRYPTO_ENCRYPT);
	vc_privset_add(&s, VC_PRIV_CRYPTO_ENCRYPT);
	vc_privset_add(&t, VC_PRIV_AUTH_MODIFY_PERMISSIONS);
	assert_int_equal(vc_privset_count(&s), 1);
	vc_privset_union(&s, &t);
	assert_int_equal(vc_privset_count(&s), 2);
	assert_true(vc_privset_has(&s, VC_PRIV_CRYPTO_ENCRYPT));
	assert_true(vc_privset_has(&s, VC_PRIV_AUTH_MODIFY_PERMISSIONS));
	assert_false(vc_privset_has(&s, VC_PRIV_SYSTEM_VIEW));
	assert_false(vc_privset_equal(&s, &t));
	vc_privset_union(&t, &s);
	assert_true(vc_privset_equal(&s, &t));
}

static void test_roles(void **state)
{
	struct vc_privset admin = vc_role_admin(), nca = vc_role_no_crypto_admin();
	struct vc_privset ro = vc_role_read_only(), got;

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(crypto_ids); i++) {
		enum vc_priv p = lookup(crypto_ids[i]);

		assert_true(vc_privset_has(&admin, p));
		assert_false(vc_privset_has(&nca, p));
		assert_false(vc_privset_has(&ro, p));
	}
	for (int i = 0; i < VC_PRIV_COUNT; i++) {
		enum vc_priv p = (enum vc_priv)i;

		assert_true(vc_privset_has(&admin, p));
		assert_int_equal(vc_privset_has(&nca, p), !vc_priv_is_crypto(p));
	}
	assert_int_equal(vc_privset_count(&nca) + VC_ARRAY_SIZE(crypto_ids),
			 VC_PRIV_COUNT);

	assert_int_equal(vc_privset_count(&ro), 2);
	assert_true(vc_privset_has(&ro, lookup("System.View")));
	assert_true(vc_privset_has(&ro, lookup("System.Read")));

	assert_int_equal(vc_role_predefined("Admin", &got), 0);
	assert_true(vc_privset_equal(&got, &admin));
	assert_int_equal(vc_role_predefined("NoCryptoAdmin", &got), 0);
	assert_true(vc_privset_equal(&got, &nca));
	assert_int_equal(vc_role_predefined("ReadOnly", &got), 0);
	assert_true(vc_privset_equal(&got, &ro));
	assert_int_equal(vc_role_predefined("VMPowerUser", &got), -ENOENT);
	assert_int_equal(vc_role_predefined(NULL, &got), -ENOENT);
	assert_string_equal(VC_ROLE_NO_CRYPTO_ADMIN_LABEL, "No Cryptography Administrator");
}

static void test_parse_format(void **state)
{
	struct vc_privset s, back, all = vc_privset_all();
	char buf[VC_PRIVSET_STR_MAX];
	struct vc_error err = { 0 };

	(void)state;
	assert_int_equal(vc_privset_parse(" System.Read ,Cryptographer.Encrypt,\tSystem.Read",
					  &s, NULL), 0);
	assert_int_equal(vc_privset_count(&s), 2);
	assert_true(vc_privset_has(&s, lookup("System.Read")));
	assert_true(vc_privset_has(&s, lookup("Cryptographer.Encrypt")));
	/* Table order: Cryptographer.* first. */
	assert_int_equal(vc_privset_format(&s, buf, sizeof buf, NULL), 0);
	assert_string_equal(buf, "Cryptographer.Encrypt,System.Read");

	/* Round trip of every set shape we can cheaply enumerate: each
	 * single privilege, every privilege, none, and each role. */
	for (int i = 0; i < VC_PRIV_COUNT; i++) {
		s = vc_privset_none();
		vc_privset_add(&s, (enum vc_priv)i);
		assert_int_equal(vc_privset_format(&s, buf, sizeof buf, NULL), 0);
		assert_string_equal(buf, vc_priv_name((enum vc_priv)i));
		assert_int_equal(vc_privset_parse(buf, &back, NULL), 0);
		assert_true(vc_privset_equal(&s, &back));
	}
	struct vc_privset sets[] = { vc_privset_none(), all, vc_role_no_crypto_admin(),
				     vc_role_read_only() };
	for (size_t i = 0; i < VC_ARRAY_SIZE(sets); i++) {
		assert_int_equal(vc_privset_format(&sets[i], buf, sizeof buf, NULL), 0);
		assert_int_equal(vc_privset_parse(buf, &back, NULL), 0);
		assert_true(vc_privset_equal(&sets[i], &back));
	}
	assert_int_equal(vc_privset_format(&sets[0], buf, sizeof buf, NULL), 0);
	assert_string_equal(buf, "");

	/* Too small: exactly one byte short of the full list. */
	assert_int_equal(vc_privset_format(&all, buf, sizeof buf, NULL), 0);
	size_t need = strlen(buf) + 1;
	char small[VC_PRIVSET_STR_MAX];
	assert_int_equal(vc_privset_format(&all, small, need, NULL), 0);
	assert_string_equal(small, buf);
	assert_int_equal(vc_privset_format(&all, small, need - 1, &err), -ERANGE);
	assert_string_equal(small, "");
	assert_int_equal(vc_privset_format(&all, small, 0, NULL), -ERANGE);

	/* Unknown and empty ids are refused and leave *out alone. */
	s = vc_role_read_only();
	assert_int_equal(vc_privset_parse("System.View,Cryptographer.Frobnicate", &s, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "'Cryptographer.Frobnicate'"));
	assert_true(vc_privset_equal(&s, &sets[3]));
	assert_int_equal(vc_privset_parse("System.View,,System.Read", &s, NULL), -EINVAL);
	assert_int_equal(vc_privset_parse("System.View,", &s, NULL), -EINVAL);
	assert_int_equal(vc_privset_parse(",", &s, NULL), -EINVAL);
	assert_int_equal(vc_privset_parse("System.View System.Read", &s, NULL), -EINVAL);
	assert_int_equal(vc_privset_parse(NULL, &s, NULL), -EINVAL);
	assert_int_equal(vc_privset_parse("  ", &s, NULL), 0);
	assert_int_equal(vc_privset_count(&s), 0);
}

/* root > dc-folder > f-prod > vm-42, root > cluster-1 > host-1 */
static const struct vc_inv_node tree[] = {
	{ "root", NULL },
	{ "f-dc", "root" },
	{ "f-prod", "f-dc" },
	{ "vm-42", "f-prod" },
	{ "cluster-1", "root" },
	{ "host-1", "cluster-1" },
};

static const char *const bob_groups[] = { "ops", "auditors" };
static const struct vc_principal bob = { "bob", bob_groups, 2 };

static struct vc_privset single(enum vc_priv p)
{
	struct vc_privset s = vc_privset_none();

	vc_privset_add(&s, p);
	return s;
}

static struct vc_privset eff(const struct vc_perm *perms, size_t n,
			     const struct vc_principal *who, const char *obj)
{
	struct vc_authz az = { tree, VC_ARRAY_SIZE(tree), perms, n };
	struct vc_privset s;
	struct vc_error err = { 0 };

	assert_int_equal(vc_priv_effective(&az, who, obj, &s, &err), 0);
	return s;
}

static void test_propagate(void **state)
{
	struct vc_perm p[] = {
		{ "bob", false, vc_role_admin(), "root", true },
	};
	struct vc_privset s, admin = vc_role_admin();

	(void)state;
	s = eff(p, 1, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &admin));
	s = eff(p, 1, &bob, "host-1");
	assert_true(vc_privset_equal(&s, &admin));

	/* Without propagate it holds on the root only. */
	p[0].propagate = false;
	s = eff(p, 1, &bob, "root");
	assert_true(vc_privset_equal(&s, &admin));
	s = eff(p, 1, &bob, "vm-42");
	assert_int_equal(vc_privset_count(&s), 0);
	s = eff(p, 1, &bob, "f-dc");
	assert_int_equal(vc_privset_count(&s), 0);

	/* Other users get nothing. */
	const struct vc_principal alice = { "alice", NULL, 0 };
	p[0].propagate = true;
	s = eff(p, 1, &alice, "vm-42");
	assert_int_equal(vc_privset_count(&s), 0);
	/* A group named like the user is not the user. */
	const char *const g[] = { "bob" };
	const struct vc_principal carol = { "carol", g, 1 };
	s = eff(p, 1, &carol, "vm-42");
	assert_int_equal(vc_privset_count(&s), 0);
}

static void test_closer_overrides(void **state)
{
	struct vc_perm p[] = {
		{ "bob", false, vc_role_admin(), "root", true },
		{ "bob", false, vc_role_read_only(), "f-dc", true },
	};
	struct vc_privset s, ro = vc_role_read_only(), admin = vc_role_admin();

	(void)state;
	s = eff(p, 2, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &ro));
	s = eff(p, 2, &bob, "f-dc");
	assert_true(vc_privset_equal(&s, &ro));
	/* Outside the folder the root permission still decides. */
	s = eff(p, 2, &bob, "host-1");
	assert_true(vc_privset_equal(&s, &admin));

	/* A non-propagating closer permission does not override below it,
	 * but does decide on its own object. */
	p[1].propagate = false;
	s = eff(p, 2, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &admin));
	s = eff(p, 2, &bob, "f-dc");
	assert_true(vc_privset_equal(&s, &ro));

	/* A closer group permission also overrides a farther user one. */
	struct vc_perm q[] = {
		{ "bob", false, vc_role_admin(), "root", true },
		{ "auditors", true, vc_role_read_only(), "f-prod", true },
	};
	s = eff(q, 2, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &ro));

	/* A permission for someone else at a closer level does not stop
	 * the walk. */
	struct vc_perm r[] = {
		{ "bob", false, vc_role_admin(), "root", true },
		{ "alice", false, vc_role_read_only(), "f-prod", true },
		{ "devs", true, vc_role_read_only(), "vm-42", true },
	};
	s = eff(r, 3, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &admin));
}

static void test_user_beats_group(void **state)
{
	struct vc_perm p[] = {
		{ "ops", true, vc_role_admin(), "f-prod", true },
		{ "bob", false, single(VC_PRIV_VM_POWER_ON), "f-prod", true },
		{ "auditors", true, vc_role_read_only(), "f-prod", true },
	};
	struct vc_privset s, exp = single(VC_PRIV_VM_POWER_ON);

	(void)state;
	s = eff(p, 3, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &exp));
	/* Someone else in the same groups gets the groups' union. */
	const struct vc_principal dave = { "dave", bob_groups, 2 };
	s = eff(p, 3, &dave, "vm-42");
	exp = vc_role_admin();
	assert_true(vc_privset_equal(&s, &exp));
	/* The user permission only overrides if it applies: a
	 * non-propagating one on an ancestor leaves the groups in charge. */
	p[1].propagate = false;
	s = eff(p, 3, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &exp));
}

static void test_groups_union(void **state)
{
	struct vc_perm p[] = {
		{ "ops", true, single(VC_PRIV_VM_POWER_ON), "f-dc", true },
		{ "auditors", true, vc_role_read_only(), "f-dc", true },
		{ "strangers", true, vc_role_admin(), "f-dc", true },
	};
	struct vc_privset s, exp = vc_role_read_only();

	(void)state;
	vc_privset_add(&exp, VC_PRIV_VM_POWER_ON);
	s = eff(p, 3, &bob, "vm-42");
	assert_true(vc_privset_equal(&s, &exp));
	/* Only one of the groups. */
	const char *const g[] = { "ops" };
	const struct vc_principal erin = { "erin", g, 1 };
	s = eff(p, 3, &erin, "vm-42");
	exp = single(VC_PRIV_VM_POWER_ON);
	assert_true(vc_privset_equal(&s, &exp));
}

static void test_check_message(void **state)
{
	struct vc_perm p[] = {
		{ "bob", false, vc_role_no_crypto_admin(), "root", true },
	};
	struct vc_authz az = { tree, VC_ARRAY_SIZE(tree), p, 1 };
	struct vc_error err = { 0 };

	(void)state;
	assert_int_equal(vc_priv_check(&az, &bob, "vm-42", VC_PRIV_VM_POWER_ON, &err), 0);
	assert_int_equal(vc_priv_check(&az, &bob, "vm-42", VC_PRIV_CRYPTO_ENCRYPT, &err),
			 -EACCES);
	assert_int_equal(err.code, -EACCES);
	assert_string_equal(err.msg, "permission denied: user 'bob' lacks privilege "
				     "Cryptographer.Encrypt on object 'vm-42'");
	assert_int_equal(vc_priv_check(&az, &bob, "host-1", VC_PRIV_CRYPTO_REGISTER_HOST, &err),
			 -EACCES);
	assert_non_null(strstr(err.msg, "Cryptographer.RegisterHost"));
	assert_non_null(strstr(err.msg, "'host-1'"));
	/* Nobody else has anything. */
	const struct vc_principal frank = { "frank", NULL, 0 };
	assert_int_equal(vc_priv_check(&az, &frank, "root", VC_PRIV_SYSTEM_VIEW, &err), -EACCES);
	assert_non_null(strstr(err.msg, "user 'frank' lacks privilege System.View"));
	assert_int_equal(vc_priv_check(&az, &bob, "vm-42", VC_PRIV_COUNT, NULL), -EINVAL);
}

static void test_unknown_object(void **state)
{
	struct vc_perm p[] = {
		{ "bob", false, vc_role_admin(), "root", true },
	};
	struct vc_authz az = { tree, VC_ARRAY_SIZE(tree), p, 1 };
	struct vc_error err = { 0 };
	struct vc_privset s;

	(void)state;
	assert_int_equal(vc_priv_effective(&az, &bob, "vm-99", &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'vm-99'"));
	assert_int_equal(vc_priv_check(&az, &bob, "vm-99", VC_PRIV_SYSTEM_VIEW, &err), -EINVAL);
	assert_int_equal(vc_priv_check(&az, &bob, NULL, VC_PRIV_SYSTEM_VIEW, NULL), -EINVAL);
	assert_int_equal(vc_inv_validate(tree, VC_ARRAY_SIZE(tree), NULL), 0);

	/* Dangling parent, even with a deciding permission below it. */
	const struct vc_inv_node dangling[] = {
		{ "root", NULL }, { "f", "gone" }, { "vm", "f" },
	};
	struct vc_perm q[] = { { "bob", false, vc_role_admin(), "vm", true } };
	struct vc_authz az2 = { dangling, 3, q, 1 };
	assert_int_equal(vc_priv_effective(&az2, &bob, "vm", &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'gone'"));
	assert_int_equal(vc_inv_validate(dangling, 3, &err), -EINVAL);

	/* Duplicate ids are ambiguous. */
	const struct vc_inv_node dup[] = {
		{ "root", NULL }, { "vm", "root" }, { "vm", NULL },
	};
	struct vc_authz az3 = { dup, 3, q, 1 };
	assert_int_equal(vc_priv_effective(&az3, &bob, "vm", &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "duplicate"));
	assert_int_equal(vc_inv_validate(dup, 3, NULL), -EINVAL);
}

static void test_cycle(void **state)
{
	/* a > b > c > a, with an admin permission on the object itself so a
	 * walk that stopped at the deciding level would miss the cycle. */
	const struct vc_inv_node cyc[] = {
		{ "root", NULL }, { "a", "c" }, { "b", "a" }, { "c", "b" },
		{ "vm", "a" },
	};
	struct vc_perm p[] = { { "bob", false, vc_role_admin(), "vm", true } };
	struct vc_authz az = { cyc, VC_ARRAY_SIZE(cyc), p, 1 };
	struct vc_error err = { 0 };
	struct vc_privset s;

	(void)state;
	assert_int_equal(vc_priv_effective(&az, &bob, "vm", &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cycle"));
	assert_int_equal(vc_priv_check(&az, &bob, "b", VC_PRIV_SYSTEM_VIEW, &err), -EINVAL);
	assert_int_equal(vc_inv_validate(cyc, VC_ARRAY_SIZE(cyc), &err), -EINVAL);
	/* The root alone is fine in that array. */
	assert_int_equal(vc_priv_effective(&az, &bob, "root", &s, &err), 0);
	assert_int_equal(vc_privset_count(&s), 0);

	/* A self-parent, alone and among others. */
	const struct vc_inv_node self[] = { { "x", "x" } };
	struct vc_authz az1 = { self, 1, NULL, 0 };
	assert_int_equal(vc_priv_effective(&az1, &bob, "x", &s, &err), -EINVAL);
	assert_int_equal(vc_inv_validate(self, 1, NULL), -EINVAL);
	const struct vc_inv_node self2[] = { { "root", NULL }, { "x", "x" } };
	assert_int_equal(vc_inv_validate(self2, 2, NULL), -EINVAL);

	/* The longest legal chain is not mistaken for a cycle. */
	const struct vc_inv_node chain[] = {
		{ "n4", "n3" }, { "n3", "n2" }, { "n2", "n1" }, { "n1", "n0" }, { "n0", NULL },
	};
	struct vc_perm q[] = { { "bob", false, vc_role_read_only(), "n0", true } };
	struct vc_authz az5 = { chain, 5, q, 1 };
	struct vc_privset ro = vc_role_read_only();
	assert_int_equal(vc_inv_validate(chain, 5, NULL), 0);
	assert_int_equal(vc_priv_effective(&az5, &bob, "n4", &s, NULL), 0);
	assert_true(vc_privset_equal(&s, &ro));
}

/* vc_priv_effective_all agrees with vc_priv_effective on every node of
 * random trees with random permissions (users, groups, propagating or
 * not), and refuses trees not in parent-first order. */
static uint32_t rnd_state = 12345;

static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 8) % n;
}

static void test_effective_all_matches(void **state)
{
	static char ids[64][16];
	const char *const users[] = { "alice", "bob", "g1", "g2" };
	const char *const groups[] = { "g1", "g2" };

	(void)state;
	for (int round = 0; round < 200; round++) {
		struct vc_inv_node nodes[64];
		struct vc_perm perms[24];
		struct vc_privset all[64];
		size_t nn = 1 + rnd(63), np = rnd(24);
		struct vc_authz az = { nodes, nn, perms, np };
		struct vc_principal who = { .user = "alice", .groups = groups, .ngroups = rnd(3) };
		struct vc_error err = { 0 };

		for (size_t i = 0; i < nn; i++) {
			snprintf(ids[i], sizeof ids[i], "n%zu", i);
			nodes[i].id = ids[i];
			nodes[i].parent = i ? ids[rnd((uint32_t)i)] : NULL;
		}
		for (size_t i = 0; i < np; i++) {
			struct vc_privset ps = vc_privset_none();

			for (int k = 0; k < 4; k++)
				vc_privset_add(&ps, (enum vc_priv)rnd(VC_PRIV_COUNT));
			perms[i] = (struct vc_perm){ .principal = users[rnd(4)], .is_group = rnd(2),
						     .privs = ps, .object = ids[rnd((uint32_t)nn)],
						     .propagate = rnd(3) != 0 };
		}
		assert_int_equal(vc_priv_effective_all(&az, &who, all, &err), 0);
		for (size_t i = 0; i < nn; i++) {
			struct vc_privset one;

			assert_int_equal(vc_priv_effective(&az, &who, ids[i], &one, &err), 0);
			if (!vc_privset_equal(&one, &all[i]))
				fail_msg("round %d node %zu differs", round, i);
		}
	}
	{
		/* A child before its parent, a second root, a duplicate. */
		struct vc_inv_node bad1[] = { { "root", NULL }, { "b", "a" }, { "a", "root" } };
		struct vc_inv_node bad2[] = { { "root", NULL }, { "x", NULL } };
		struct vc_inv_node bad3[] = { { "root", NULL }, { "a", "root" }, { "a", "root" } };
		struct vc_authz a1 = { bad1, 3, NULL, 0 }, a2 = { bad2, 2, NULL, 0 },
				a3 = { bad3, 3, NULL, 0 };
		struct vc_principal who = { .user = "alice" };
		struct vc_privset out[3];
		struct vc_error err = { 0 };

		assert_int_equal(vc_priv_effective_all(&a1, &who, out, &err), -EINVAL);
		assert_int_equal(vc_priv_effective_all(&a2, &who, out, &err), -EINVAL);
		assert_int_equal(vc_priv_effective_all(&a3, &who, out, &err), -EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_names),
		cmocka_unit_test(test_lookup_unknown),
		cmocka_unit_test(test_set_ops),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_propagate),
		cmocka_unit_test(test_closer_overrides),
		cmocka_unit_test(test_user_beats_group),
		cmocka_unit_test(test_groups_union),
		cmocka_unit_test(test_check_message),
		cmocka_unit_test(test_unknown_object),
		cmocka_unit_test(test_cycle),
		cmocka_unit_test(test_effective_all_matches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
