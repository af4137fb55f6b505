/* SPDX-License-Identifier: Apache-2.0 */
/* Manager administration commands: user, privilege, role, permission,
 * inventory, policy and task. */
#include "mgr_client.h"
#include "vc_json.h"

/* ---- user ------------------------------------------------------------------ */

static int print_users(struct mgr *m, const json_t *j)
{
	char created[32], groups[1024];
	struct mgr_table t;
	json_t *u;
	size_t i;

	mgr_table_init(&t, 4);
	mgr_table_row(&t, "NAME", "CREATED", "DISABLED", "GROUPS");
	json_array_foreach(json_object_get(j, "users"), i, u)
		mgr_table_row(&t, mgr_str(u, "name"),
			      mgr_time(mgr_int(u, "created"), created, sizeof created),
			      mgr_yesno(mgr_bool(u, "disabled")),
			      mgr_join(json_object_get(u, "groups"), groups, sizeof groups));
	return mgr_table_print(m, &t);
}

static int user_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/users", print_users);
}

static int read_user_password(struct mgr *m, const struct margs *a, struct vc_secret **pw)
{
	char prompt[256];
	const struct mgr_pw_src src = { mgr_opt(a, O_PW_FILE), mgr_opt(a, O_PW_FD), prompt };
	int r = mgr_connect(m);

	snprintf(prompt, sizeof prompt, "password for %s", a->arg[0]);
	return r < 0 ? r : mgr_password_read(m, &src, true, pw);
}

static int user_add(struct mgr *m, const struct margs *a)
{
	VC_CLEANUP_SECRET struct vc_secret *pw = NULL;
	char done[MGR_PATH_MAX];
	json_t *body, *groups = NULL;
	int r;

	if ((r = read_user_password(m, a, &pw)) < 0)
		return r;
	if (mgr_has(a, O_GROUPS) && !(groups = mgr_opt_array(a, O_GROUPS, false)))
		return mgr_bad_body(m);
	body = json_pack("{s:s, s:s%, s:o*}", "name", a->arg[0], "password", MGR_SECRET(pw),
			 "groups", groups);
	if (!body)
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "added user %s", a->arg[0]);
	return mgr_do(m, "POST", "/users", body, done);
}

static int user_remove(struct mgr *m, const struct margs *a)
{
	return mgr_remove_named(m, "users", "user", a->arg[0]);
}

static int user_set_password(struct mgr *m, const struct margs *a)
{
	VC_CLEANUP_SECRET struct vc_secret *pw = NULL;
	char path[MGR_PATH_MAX], done[MGR_PATH_MAX];
	json_t *body;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/users/%s/password", a->arg[0])) < 0 ||
	    (r = read_user_password(m, a, &pw)) < 0)
		return r;
	if (!(body = json_pack("{s:s%}", "password", MGR_SECRET(pw))))
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "changed the password of %s (its sessions ended)",
		 a->arg[0]);
	return mgr_do(m, "PUT", path, body, done);
}

#define PW_OPTS (OPT(O_PW_FILE) | OPT(O_PW_FD))

static const struct mgr_sub user_subs[] = {
	{ "list", 0, 0, 0, 0, user_list, "", NULL },
	{ "add", 1, OPT(O_GROUPS) | PW_OPTS, 0, OPT(O_PW_FILE), user_add,
	  "NAME [--group G]... (--password-file F | --password-fd N)", NULL },
	{ "remove", 1, 0, 0, 0, user_remove, "NAME", NULL },
	{ "set-password", 1, PW_OPTS, 0, OPT(O_PW_FILE), user_set_password,
	  "NAME (--password-file F | --password-fd N)", NULL },
};

int cmd_user(int argc, char **argv)
{
	return mgr_dispatch("user", "Users of the manager (passwords: a 0600 file, an fd, or\n"
			    "typed twice on a terminal).", user_subs, VC_ARRAY_SIZE(user_subs),
			    argc, argv);
}

/* ---- privilege ------------------------------------------------------------- */

static int print_privileges(struct mgr *m, const json_t *j)
{
	struct mgr_table t;
	json_t *p;
	size_t i;

	mgr_table_init(&t, 2);
	mgr_table_row(&t, "PRIVILEGE", "CRYPTO");
	json_array_foreach(json_object_get(j, "privileges"), i, p)
		mgr_table_row(&t, mgr_str(p, "id"), mgr_yesno(mgr_bool(p, "crypto")));
	return mgr_table_print(m, &t);
}

static int privilege_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/privileges", print_privileges);
}

static const struct mgr_sub privilege_subs[] = {
	{ "list", 0, 0, 0, 0, privilege_list, "", NULL },
};

int cmd_privilege(int argc, char **argv)
{
	return mgr_dispatch("privilege", "The privileges roles are made of.", privilege_subs,
			    VC_ARRAY_SIZE(privilege_subs), argc, argv);
}

/* ---- role ------------------------------------------------------------------ */

static int print_roles(struct mgr *m, const json_t *j)
{
	char count[24];
	struct mgr_table t;
	json_t *r;
	size_t i;

	mgr_table_init(&t, 4);
	mgr_table_row(&t, "NAME", "LABEL", "BUILTIN", "PRIVILEGES");
	json_array_foreach(json_object_get(j, "roles"), i, r) {
		snprintf(count, sizeof count, "%zu",
			 json_array_size(json_object_get(r, "privileges")));
		mgr_table_row(&t, mgr_str(r, "name"), mgr_str(r, "label"),
			      mgr_yesno(mgr_bool(r, "builtin")), count);
	}
	return mgr_table_print(m, &t);
}

static int print_role(struct mgr *m, const json_t *j)
{
	json_t *p;
	size_t i;

	(void)m;
	mgr_kv("name", "%s", mgr_str(j, "name"));
	mgr_kv("label", "%s", mgr_str(j, "label"));
	mgr_kv("builtin", "%s", mgr_yesno(mgr_bool(j, "builtin")));
	mgr_kv("privileges", "%zu", json_array_size(json_object_get(j, "privileges")));
	json_array_foreach(json_object_get(j, "privileges"), i, p)
		printf("  %s\n", json_string_value(p) ? json_string_value(p) : "?");
	return 0;
}

static int role_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/roles", print_roles);
}

static int role_show(struct mgr *m, const struct margs *a)
{
	return mgr_show_named(m, "roles", a->arg[0], print_role);
}

static int role_add(struct mgr *m, const struct margs *a)
{
	char done[MGR_PATH_MAX];
	json_t *body = json_pack("{s:s, s:o}", "name", a->arg[0], "privileges",
				 mgr_opt_array(a, O_PRIVILEGE, true));

	if (!body)
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "added role %s", a->arg[0]);
	return mgr_do(m, "POST", "/roles", body, done);
}

static int role_remove(struct mgr *m, const struct margs *a)
{
	return mgr_remove_named(m, "roles", "role", a->arg[0]);
}

static const struct mgr_sub role_subs[] = {
	{ "list", 0, 0, 0, 0, role_list, "", NULL },
	{ "show", 1, 0, 0, 0, role_show, "NAME", NULL },
	{ "add", 1, OPT(O_PRIVILEGE), OPT(O_PRIVILEGE), 0, role_add,
	  "NAME --privilege ID[,ID...] [--privilege ...]", NULL },
	{ "remove", 1, 0, 0, 0, role_remove, "NAME", NULL },
};

int cmd_role(int argc, char **argv)
{
	return mgr_dispatch("role", "Roles: named sets of privileges.", role_subs,
			    VC_ARRAY_SIZE(role_subs), argc, argv);
}

/* ---- permission ------------------------------------------------------------ */

static int print_permissions(struct mgr *m, const json_t *j)
{
	struct mgr_table t;
	json_t *p;
	size_t i;

	mgr_table_init(&t, 5);
	mgr_table_row(&t, "PRINCIPAL", "GROUP", "ROLE", "OBJECT", "PROPAGATE");
	json_array_foreach(json_object_get(j, "permissions"), i, p)
		mgr_table_row(&t, mgr_str(p, "principal"), mgr_yesno(mgr_bool(p, "group")),
			      mgr_str(p, "role"), mgr_str(p, "object"),
			      mgr_yesno(mgr_bool(p, "propagate")));
	return mgr_table_print(m, &t);
}

static int permission_list(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX] = "/permissions";
	int r = mgr_query(m, path, sizeof path, "object", mgr_opt(a, O_OBJECT));

	return r < 0 ? r : mgr_show(m, path, print_permissions);
}

static int permission_add(struct mgr *m, const struct margs *a)
{
	char done[MGR_PATH_MAX];
	json_t *body = json_pack("{s:s, s:b, s:s, s:s, s:b}", "principal",
				 mgr_opt(a, O_PRINCIPAL), "group", mgr_has(a, O_GROUP), "role",
				 mgr_opt(a, O_ROLE), "object", mgr_opt(a, O_OBJECT), "propagate",
				 !mgr_has(a, O_NO_PROPAGATE));

	if (!body)
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "gave %s %s role %s on %s",
		 mgr_has(a, O_GROUP) ? "group" : "user", mgr_opt(a, O_PRINCIPAL),
		 mgr_opt(a, O_ROLE), mgr_opt(a, O_OBJECT));
	return mgr_do(m, "POST", "/permissions", body, done);
}

static int permission_remove(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX] = "/permissions", done[MGR_PATH_MAX];
	int r;

	if ((r = mgr_query(m, path, sizeof path, "principal", mgr_opt(a, O_PRINCIPAL))) < 0 ||
	    (r = mgr_query(m, path, sizeof path, "object", mgr_opt(a, O_OBJECT))) < 0 ||
	    (r = mgr_query(m, path, sizeof path, "group",
			   mgr_has(a, O_GROUP) ? "true" : NULL)) < 0)
		return r;
	snprintf(done, sizeof done, "removed the permission of %s on %s",
		 mgr_opt(a, O_PRINCIPAL), mgr_opt(a, O_OBJECT));
	return mgr_do(m, "DELETE", path, NULL, done);
}

#define PERM_ID (OPT(O_PRINCIPAL) | OPT(O_OBJECT))

static const struct mgr_sub permission_subs[] = {
	{ "list", 0, OPT(O_OBJECT), 0, 0, permission_list, "[--object ID]", NULL },
	{ "add", 0, PERM_ID | OPT(O_GROUP) | OPT(O_ROLE) | OPT(O_NO_PROPAGATE),
	  PERM_ID | OPT(O_ROLE), 0, permission_add,
	  "--principal NAME [--group] --role ROLE --object ID [--no-propagate]", NULL },
	{ "remove", 0, PERM_ID | OPT(O_GROUP), PERM_ID, 0, permission_remove,
	  "--principal NAME [--group] --object ID", NULL },
};

int cmd_permission(int argc, char **argv)
{
	return mgr_dispatch("permission",
			    "Permissions: a user or group (--group) holds a role on an\n"
			    "inventory object, and by default on everything below it.",
			    permission_subs, VC_ARRAY_SIZE(permission_subs), argc, argv);
}

/* ---- inventory ------------------------------------------------------------- */

static int print_inventory(struct mgr *m, const json_t *j)
{
	struct mgr_table t;
	json_t *o;
	size_t i;

	mgr_table_init(&t, 4);
	mgr_table_row(&t, "ID", "KIND", "NAME", "PARENT");
	json_array_foreach(json_object_get(j, "objects"), i, o)
		mgr_table_row(&t, mgr_str(o, "id"), mgr_str(o, "kind"), mgr_str(o, "name"),
			      mgr_str(o, "parent"));
	return mgr_table_print(m, &t);
}

static int print_object(struct mgr *m, const json_t *j)
{
	(void)m;
	mgr_kv("id", "%s", mgr_str(j, "id"));
	mgr_kv("kind", "%s", mgr_str(j, "kind"));
	mgr_kv("name", "%s", mgr_str(j, "name"));
	mgr_kv("parent", "%s", *mgr_str(j, "parent") ? mgr_str(j, "parent") : "-");
	return 0;
}

static int inventory_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/inventory", print_inventory);
}

static int inventory_show(struct mgr *m, const struct margs *a)
{
	return mgr_show_named(m, "inventory", a->arg[0], print_object);
}

/* The new id alone on stdout, for scripts: id=$(vmcrypt inventory add ...) */
static int inventory_add(struct mgr *m, const struct margs *a)
{
	json_t *resp, *body = json_pack("{s:s, s:s, s:s}", "parent", mgr_opt(a, O_PARENT),
					"kind", mgr_opt(a, O_KIND), "name", mgr_opt(a, O_NAME));
	int r;

	if (!body)
		return mgr_bad_body(m);
	if ((r = mgr_call(m, "POST", "/inventory", body, &resp)) < 0)
		return r;
	if (m->json)
		mgr_print_json(resp);
	else
		printf("%s\n", mgr_str(resp, "id"));
	json_decref(resp);
	return 0;
}

static int inventory_rename(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX], done[MGR_PATH_MAX];
	json_t *body;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/inventory/%s", a->arg[0])) < 0)
		return r;
	if (!(body = json_pack("{s:s}", "name", a->arg[1])))
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "renamed %s to %s", a->arg[0], a->arg[1]);
	return mgr_do(m, "PATCH", path, body, done);
}

static int inventory_remove(struct mgr *m, const struct margs *a)
{
	return mgr_remove_named(m, "inventory", "object", a->arg[0]);
}

static const struct mgr_sub inventory_subs[] = {
	{ "list", 0, 0, 0, 0, inventory_list, "", NULL },
	{ "show", 1, 0, 0, 0, inventory_show, "ID", NULL },
	{ "add", 0, OPT(O_PARENT) | OPT(O_KIND) | OPT(O_NAME),
	  OPT(O_PARENT) | OPT(O_KIND) | OPT(O_NAME), 0, inventory_add,
	  "--parent ID --kind folder|cluster|host|vm --name NAME   (prints the new id)", NULL },
	{ "rename", 2, 0, 0, 0, inventory_rename, "ID NAME", NULL },
	{ "remove", 1, 0, 0, 0, inventory_remove, "ID", NULL },
};

int cmd_inventory(int argc, char **argv)
{
	return mgr_dispatch("inventory", "The inventory: root, folders, clusters, hosts, VMs.",
			    inventory_subs, VC_ARRAY_SIZE(inventory_subs), argc, argv);
}

/* ---- policy ---------------------------------------------------------------- */

static const char *policy_provider(const json_t *p)
{
	return json_is_string(json_object_get(p, "provider")) ? mgr_str(p, "provider")
							       : "(default)";
}

static int print_policies(struct mgr *m, const json_t *j)
{
	struct mgr_table t;
	json_t *p;
	size_t i;

	mgr_table_init(&t, 4);
	mgr_table_row(&t, "NAME", "ENCRYPT", "MIGRATION", "PROVIDER");
	json_array_foreach(json_object_get(j, "policies"), i, p)
		mgr_table_row(&t, mgr_str(p, "name"), mgr_yesno(mgr_bool(p, "encrypt")),
			      mgr_str(p, "migration"), policy_provider(p));
	return mgr_table_print(m, &t);
}

static int print_policy(struct mgr *m, const json_t *j)
{
	(void)m;
	mgr_kv("name", "%s", mgr_str(j, "name"));
	mgr_kv("encrypt", "%s", mgr_yesno(mgr_bool(j, "encrypt")));
	mgr_kv("migration", "%s", mgr_str(j, "migration"));
	mgr_kv("provider", "%s", policy_provider(j));
	return 0;
}

static int policy_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/policies", print_policies);
}

static int policy_show(struct mgr *m, const struct margs *a)
{
	return mgr_show_named(m, "policies", a->arg[0], print_policy);
}

static int policy_add(struct mgr *m, const struct margs *a)
{
	const char *migration = mgr_opt(a, O_MIGRATION);
	char done[MGR_PATH_MAX];
	json_t *body;

	/* As vSphere: encrypted vMotion is opportunistic unless asked. */
	body = json_pack("{s:s, s:b, s:s, s:s*}", "name", a->arg[0], "encrypt",
			 !strcmp(mgr_opt(a, O_ENCRYPT), "yes"), "migration",
			 migration ? migration : "opportunistic", "provider",
			 mgr_opt(a, O_PROVIDER));
	if (!body)
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "added policy %s", a->arg[0]);
	return mgr_do(m, "POST", "/policies", body, done);
}

static int policy_remove(struct mgr *m, const struct margs *a)
{
	return mgr_remove_named(m, "policies", "policy", a->arg[0]);
}

static const struct mgr_sub policy_subs[] = {
	{ "list", 0, 0, 0, 0, policy_list, "", NULL },
	{ "show", 1, 0, 0, 0, policy_show, "NAME", NULL },
	{ "add", 1, OPT(O_ENCRYPT) | OPT(O_MIGRATION) | OPT(O_PROVIDER), OPT(O_ENCRYPT), 0,
	  policy_add,
	  "NAME --encrypt yes|no [--migration disabled|opportunistic|required]\n"
	  "        [--provider NAME]   (migration default: opportunistic; provider\n"
	  "        default: the default key provider)",
	  NULL },
	{ "remove", 1, 0, 0, 0, policy_remove, "NAME", NULL },
};

int cmd_policy(int argc, char **argv)
{
	return mgr_dispatch("policy", "VM encryption policies.", policy_subs,
			    VC_ARRAY_SIZE(policy_subs), argc, argv);
}

/* ---- task ------------------------------------------------------------------ */

static int print_tasks(struct mgr *m, const json_t *j)
{
	char progress[16], created[32];
	struct mgr_table t;
	json_t *k;
	size_t i;

	mgr_table_init(&t, 6);
	mgr_table_row(&t, "ID", "KIND", "STATE", "PROGRESS", "USER", "CREATED");
	json_array_foreach(json_object_get(j, "tasks"), i, k) {
		snprintf(progress, sizeof progress, "%d%%", (int)mgr_int(k, "progress"));
		mgr_table_row(&t, mgr_str(k, "id"), mgr_str(k, "kind"), mgr_str(k, "state"),
			      progress, mgr_str(k, "user"),
			      mgr_time(mgr_int(k, "created"), created, sizeof created));
	}
	return mgr_table_print(m, &t);
}

static int print_task(struct mgr *m, const json_t *j)
{
	json_t *result = json_object_get(j, "result");
	char *text = result && !json_is_null(result)
			     ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	char when[32];

	(void)m;
	mgr_kv("id", "%s", mgr_str(j, "id"));
	mgr_kv("kind", "%s", mgr_str(j, "kind"));
	mgr_kv("state", "%s", mgr_str(j, "state"));
	mgr_kv("progress", "%d%%", (int)mgr_int(j, "progress"));
	mgr_kv("user", "%s", mgr_str(j, "user"));
	mgr_kv("created", "%s", mgr_time(mgr_int(j, "created"), when, sizeof when));
	mgr_kv("updated", "%s", mgr_time(mgr_int(j, "updated"), when, sizeof when));
	mgr_kv("error", "%s", *mgr_str(j, "error") ? mgr_str(j, "error") : "-");
	mgr_kv("result", "%s", text ? text : "-");
	vc_json_free_dump(text);
	return 0;
}

static int task_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/tasks", print_tasks);
}

static int task_show(struct mgr *m, const struct margs *a)
{
	return mgr_show_named(m, "tasks", a->arg[0], print_task);
}

static int task_wait(struct mgr *m, const struct margs *a)
{
	json_t *task;
	int r = mgr_task_wait(m, a->arg[0], &task);

	if (r == 0 && m->json)
		mgr_print_json(task);
	else if (r == 0)
		printf("task %s: %s\n", a->arg[0], mgr_str(task, "state"));
	if (r == 0)
		r = mgr_task_result(m, task);
	json_decref(task);
	return r;
}

static const struct mgr_sub task_subs[] = {
	{ "list", 0, 0, 0, 0, task_list, "", NULL },
	{ "show", 1, 0, 0, 0, task_show, "ID", NULL },
	{ "wait", 1, 0, 0, 0, task_wait, "ID   (exit status 1 if the task failed)", NULL },
};

int cmd_task(int argc, char **argv)
{
	return mgr_dispatch("task", "Long operations of the manager, with their progress.",
			    task_subs, VC_ARRAY_SIZE(task_subs), argc, argv);
}
