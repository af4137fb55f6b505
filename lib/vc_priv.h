/* SPDX-License-Identifier: Apache-2.0 */
/* vSphere-style privileges, predefined roles and inherited permissions. */
#ifndef VC_PRIV_H
#define VC_PRIV_H

/*
 * Pure logic for the manager's authorisation: no storage, no I/O. The
 * manager loads the inventory tree and the permissions (from its database)
 * into plain arrays and asks this module whether a user may do something.
 *
 * Privileges: a fixed table, identified by their vSphere names
 * ("Cryptographer.Encrypt", "VirtualMachine.Interact.PowerOn", ...). A
 * role is just a set of privileges (struct vc_privset); custom roles are
 * named privsets the manager stores, the predefined ones come from
 * vc_role_*() below.
 *
 * Permissions: (principal, is_group, role's privset, object, propagate).
 * The effective privileges of a user on an object follow vSphere's rules:
 *   - walk from the object up to the root;
 *   - a permission on the object itself always applies; one on an ancestor
 *     applies only if its propagate flag is set;
 *   - the nearest object carrying at least one applicable permission for
 *     the user (directly or through one of its groups) decides alone, so a
 *     closer ReadOnly overrides an Administrator further up;
 *   - at that object, permissions naming the user override those naming
 *     its groups; several group permissions there are united;
 *   - no applicable permission anywhere means no privileges.
 * Principal and object ids are compared exactly (case-sensitive).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vc_error.h"

/* Order is the table order used by vc_privset_format(). The
 * Cryptographer.* privileges come first and are contiguous. */
enum vc_priv {
	VC_PRIV_CRYPTO_ENCRYPT,            /* Cryptographer.Encrypt */
	VC_PRIV_CRYPTO_ENCRYPT_NEW,        /* Cryptographer.EncryptNew */
	VC_PRIV_CRYPTO_DECRYPT,            /* Cryptographer.Decrypt */
	VC_PRIV_CRYPTO_CLONE,              /* Cryptographer.Clone */
	VC_PRIV_CRYPTO_MIGRATE,            /* Cryptographer.Migrate */
	VC_PRIV_CRYPTO_RECRYPT,            /* Cryptographer.Recrypt */
	VC_PRIV_CRYPTO_ADD_DISK,           /* Cryptographer.AddDisk */
	VC_PRIV_CRYPTO_REGISTER_HOST,      /* Cryptographer.RegisterHost */
	VC_PRIV_CRYPTO_REGISTER_VM,        /* Cryptographer.RegisterVM */
	VC_PRIV_CRYPTO_MANAGE_KEYS,        /* Cryptographer.ManageKeys */
	VC_PRIV_CRYPTO_MANAGE_KEY_SERVERS, /* Cryptographer.ManageKeyServers */
	VC_PRIV_CRYPTO_MANAGE_POLICY,      /* Cryptographer.ManageEncryptionPolicy */
	VC_PRIV_CRYPTO_READ_KEY_SERVERS,   /* Cryptographer.ReadKeyServersInfo */
	VC_PRIV_CRYPTO_ACCESS,             /* Cryptographer.Access (direct access, console) */

	VC_PRIV_SYSTEM_VIEW,               /* System.View */
	VC_PRIV_SYSTEM_READ,               /* System.Read */
	VC_PRIV_GLOBAL_DIAGNOSTICS,        /* Global.Diagnostics */
	VC_PRIV_GLOBAL_CANCEL_TASK,        /* Global.CancelTask */
	VC_PRIV_VM_POWER_ON,               /* VirtualMachine.Interact.PowerOn */
	VC_PRIV_VM_POWER_OFF,              /* VirtualMachine.Interact.PowerOff */
	VC_PRIV_VM_RESET,                  /* VirtualMachine.Interact.Reset */
	VC_PRIV_VM_SUSPEND,                /* VirtualMachine.Interact.Suspend */
	VC_PRIV_VM_CONSOLE,                /* VirtualMachine.Interact.ConsoleInteract */
	VC_PRIV_VM_RENAME,                 /* VirtualMachine.Config.Rename */
	VC_PRIV_VM_SETTINGS,               /* VirtualMachine.Config.Settings */
	VC_PRIV_VM_ADD_NEW_DISK,           /* VirtualMachine.Config.AddNewDisk */
	VC_PRIV_VM_REMOVE_DISK,            /* VirtualMachine.Config.RemoveDisk */
	VC_PRIV_VM_CREATE,                 /* VirtualMachine.Inventory.Create */
	VC_PRIV_VM_REGISTER,               /* VirtualMachine.Inventory.Register */
	VC_PRIV_VM_UNREGISTER,             /* VirtualMachine.Inventory.Unregister */
	VC_PRIV_VM_DELETE,                 /* VirtualMachine.Inventory.Delete */
	VC_PRIV_VM_MOVE,                   /* VirtualMachine.Inventory.Move */
	VC_PRIV_VM_HOT_MIGRATE,            /* Resource.HotMigrateVM */
	VC_PRIV_VM_COLD_MIGRATE,           /* Resource.ColdMigrate */
	VC_PRIV_HOST_SETTINGS,             /* Host.Config.Settings */
	VC_PRIV_HOST_MAINTENANCE,          /* Host.Config.Maintenance */
	VC_PRIV_HOST_ADD,                  /* Host.Inventory.AddHost */
	VC_PRIV_HOST_REMOVE,               /* Host.Inventory.RemoveHost */
	VC_PRIV_FOLDER_CREATE,             /* Folder.Create */
	VC_PRIV_FOLDER_DELETE,             /* Folder.Delete */
	VC_PRIV_FOLDER_RENAME,             /* Folder.Rename */
	VC_PRIV_CLUSTER_CREATE,            /* Host.Inventory.CreateCluster */
	VC_PRIV_CLUSTER_DELETE,            /* Host.Inventory.DeleteCluster */
	VC_PRIV_SESSIONS_TERMINATE,        /* Sessions.TerminateSession */
	VC_PRIV_SESSIONS_VALIDATE,         /* Sessions.ValidateSession */
	VC_PRIV_AUTH_MODIFY_ROLES,         /* Authorization.ModifyRoles */
	VC_PRIV_AUTH_MODIFY_PERMISSIONS,   /* Authorization.ModifyPermissions */
	VC_PRIV_COUNT
};

/* A set of privileges, i.e. the content of a role. Plain value type:
 * copy and compare it freely. */
struct vc_privset {
	uint64_t bits;
};

/* The privilege's vSphere id, or NULL if p is out of range. */
const char *vc_priv_name(enum vc_priv p);
/* Look up a privilege by exact id. -EINVAL (message names it) if unknown. */
VC_MUST_CHECK int vc_priv_lookup(const char *name, enum vc_priv *out,
				 struct vc_error *err);
/* True for the Cryptographer.* privileges. */
bool vc_priv_is_crypto(enum vc_priv p);

struct vc_privset vc_privset_none(void);
struct vc_privset vc_privset_all(void);
/* Out-of-range privileges are ignored by add and never "had". */
void vc_privset_add(struct vc_privset *s, enum vc_priv p);
bool vc_privset_has(const struct vc_privset *s, enum vc_priv p);
void vc_privset_union(struct vc_privset *s, const struct vc_privset *other);
bool vc_privset_equal(const struct vc_privset *a, const struct vc_privset *b);
size_t vc_privset_count(const struct vc_privset *s);

/* Parse a comma-separated list of privilege ids ("System.View,
 * System.Read"); blanks around ids are ignored, duplicates are harmless,
 * "" is the empty set. -EINVAL (message names the culprit) on an unknown
 * or empty id; *out is untouched on failure. */
VC_MUST_CHECK int vc_privset_parse(const char *list, struct vc_privset *out,
				   struct vc_error *err);

/* Big enough for vc_privset_format() of any set, NUL included. */
#define VC_PRIVSET_STR_MAX 2048
/* Comma-separated ids (no blanks) in table order into buf[len]; "" for the
 * empty set. -ERANGE if it does not fit (buf then holds ""). */
VC_MUST_CHECK int vc_privset_format(const struct vc_privset *s, char *buf,
				    size_t len, struct vc_error *err);

/* Predefined roles, with the ids and labels the manager shows. */
#define VC_ROLE_ADMIN_ID "Admin"
#define VC_ROLE_ADMIN_LABEL "Administrator"
#define VC_ROLE_NO_CRYPTO_ADMIN_ID "NoCryptoAdmin"
#define VC_ROLE_NO_CRYPTO_ADMIN_LABEL "No Cryptography Administrator"
#define VC_ROLE_READ_ONLY_ID "ReadOnly"
#define VC_ROLE_READ_ONLY_LABEL "Read-only"

/* Every privilege. */
struct vc_privset vc_role_admin(void);
/* Every privilege except Cryptographer.*. */
struct vc_privset vc_role_no_crypto_admin(void);
/* System.View and System.Read. */
struct vc_privset vc_role_read_only(void);
/* A predefined role by id (exact). -ENOENT if it is not predefined (then
 * it may be a custom role the caller knows). */
VC_MUST_CHECK int vc_role_predefined(const char *id, struct vc_privset *out);

/* One inventory object. parent is NULL for the root. Ids must be unique. */
struct vc_inv_node {
	const char *id;
	const char *parent;
};

/* One permission. privs is a copy of the role's privileges; objects not
 * in the tree simply never match. */
struct vc_perm {
	const char *principal; /* user or group name */
	bool is_group;
	struct vc_privset privs;
	const char *object;
	bool propagate;
};

/* Everything a decision needs; the module only reads these arrays, the
 * caller owns them. */
struct vc_authz {
	const struct vc_inv_node *nodes;
	size_t nnodes;
	const struct vc_perm *perms;
	size_t nperms;
};

/* The user asking, and the groups it belongs to. */
struct vc_principal {
	const char *user;
	const char *const *groups;
	size_t ngroups;
};

/* Check the whole tree: unique ids, every parent known, no cycles.
 * -EINVAL with a message naming the object otherwise. */
VC_MUST_CHECK int vc_inv_validate(const struct vc_inv_node *nodes, size_t nnodes,
				  struct vc_error *err);

/* Effective privileges of who on object (rules at the top of this file).
 * -EINVAL if the object is unknown, or if its path to the root meets an
 * unknown parent, a duplicate id or a cycle. */
VC_MUST_CHECK int vc_priv_effective(const struct vc_authz *az,
				    const struct vc_principal *who,
				    const char *object, struct vc_privset *out,
				    struct vc_error *err);

/* Effective privileges of who on every node at once, into out[nnodes], in
 * O(nodes * permissions): the same answers as vc_priv_effective for each
 * node. The nodes must come parents first (the root first); -EINVAL with
 * a message otherwise, and for duplicate ids. */
VC_MUST_CHECK int vc_priv_effective_all(const struct vc_authz *az,
					const struct vc_principal *who,
					struct vc_privset *out, struct vc_error *err);

/* 0 if who holds need on object. -EACCES with "permission denied: user
 * 'bob' lacks privilege Cryptographer.Encrypt on object 'vm-42'"
 * otherwise; -EINVAL as for vc_priv_effective(). */
VC_MUST_CHECK int vc_priv_check(const struct vc_authz *az,
				const struct vc_principal *who,
				const char *object, enum vc_priv need,
				struct vc_error *err);

#endif
