/* SPDX-License-Identifier: Apache-2.0 */
/* Privilege table, predefined roles and vSphere permission inheritance. */
#include "vc_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(VC_PRIV_COUNT <= 64, "struct vc_privset holds 64 privileges");

static const char *const priv_names[VC_PRIV_COUNT] = {
	[VC_PRIV_CRYPTO_ENCRYPT] = "Cryptographer.Encrypt",
	[VC_PRIV_CRYPTO_ENCRYPT_NEW] = "Cryptographer.EncryptNew",
	[VC_PRIV_CRYPTO_DECRYPT] = "Cryptographer.Decrypt",
	[VC_PRIV_CRYPTO_CLONE] = "Cryptographer.Clone",
	[VC_PRIV_CRYPTO_MIGRATE] = "Cryptographer.Migrate",
	[VC_PRIV_CRYPTO_RECRYPT] = "Cryptographer.Recrypt",
	[VC_PRIV_CRYPTO_ADD_DISK] = "Cryptographer.AddDisk",
	[VC_PRIV_CRYPTO_REGISTER_HOST] = "Cryptographer.RegisterHost",
	[VC_PRIV_CRYPTO_REGISTER_VM] = "Cryptographer.RegisterVM",
	[VC_PRIV_CRYPTO_MANAGE_KEYS] = "Cryptographer.ManageKeys",
	[VC_PRIV_CRYPTO_MANAGE_KEY_SERVERS] = "Cryptographer.ManageKeyServers",
	[VC_PRIV_CRYPTO_MANAGE_POLICY] = "Cryptographer.ManageEncryptionPolicy",
	[VC_PRIV_CRYPTO_READ_KEY_SERVERS] = "Cryptographer.ReadKeyServersInfo",
	[VC_PRIV_CRYPTO_ACCESS] = "Cryptographer.Access",
	[VC_PRIV_SYSTEM_VIEW] = "System.View",
	[VC_PRIV_SYSTEM_READ] = "System.Read",
	[VC_PRIV_GLOBAL_DIAGNOSTICS] = "Global.Diagnostics",
	[VC_PRIV_GLOBAL_CANCEL_TASK] = "Global.CancelTask",
	[VC_PRIV_VM_POWER_ON] = "VirtualMachine.Interact.PowerOn",
	[VC_PRIV_VM_POWER_OFF] = "VirtualMachine.Interact.PowerOff",
	[VC_PRIV_VM_RESET] = "VirtualMachine.Interact.Reset",
	[VC_PRIV_VM_SUSPEND] = "VirtualMachine.Interact.Suspend",
	[VC_PRIV_VM_CONSOLE] = "VirtualMachine.Interact.ConsoleInteract",
	[VC_PRIV_VM_RENAME] = "VirtualMachine.Config.Rename",
	[VC_PRIV_VM_SETTINGS] = "VirtualMachine.Config.Settings",
	[VC_PRIV_VM_ADD_NEW_DISK] = "VirtualMachine.Config.AddNewDisk",
	[VC_PRIV_VM_REMOVE_DISK] = "VirtualMachine.Config.RemoveDisk",
	[VC_PRIV_VM_CREATE] = "VirtualMachine.Inventory.Create",
	[VC_PRIV_VM_REGISTER] = "VirtualMachine.Inventory.Register",
	[VC_PRIV_VM_UNREGISTER] = "VirtualMachine.Inventory.Unregister",
	[VC_PRIV_VM_DELETE] = "VirtualMachine.Inventory.Delete",
	[VC_PRIV_VM_MOVE] = "VirtualMachine.Inventory.Move",
	[VC_PRIV_VM_HOT_MIGRATE] = "Resource.HotMigrateVM",
	[VC_PRIV_VM_COLD_MIGRATE] = "Resource.ColdMigrate",
	[VC_PRIV_HOST_SETTINGS] = "Host.Config.Settings",
	[VC_PRIV_HOST_MAINTENANCE] = "Host.Config.Maintenance",
	[VC_PRIV_HOST_ADD] = "Host.Inventory.AddHost",
	[VC_PRIV_HOST_REMOVE] = "Host.Inventory.RemoveHost",
	[VC_PRIV_FOLDER_CREATE] = "Folder.Create",
	[VC_PRIV_FOLDER_DELETE] = "Folder.Delete",
	[VC_PRIV_FOLDER_RENAME] = "Folder.Rename",
	[VC_PRIV_CLUSTER_CREATE] = "Host.Inventory.CreateCluster",
	[VC_PRIV_CLUSTER_DELETE] = "Host.Inventory.DeleteCluster",
	[VC_PRIV_SESSIONS_TERMINATE] = "Sessions.TerminateSession",
	[VC_PRIV_SESSIONS_VALIDATE] = "Sessions.ValidateSession",
	[VC_PRIV_AUTH_MODIFY_ROLES] = "Authorization.ModifyRoles",
	[VC_PRIV_AUTH_MODIFY_PERMISSIONS] = "Authorization.ModifyPermissions",
};

static bool in_range(enum vc_priv p)
{
	return (unsigned)p < VC_PRIV_COUNT;
}

static uint64_t bit(enum vc_priv p)
{
	return UINT64_C(1) << (unsigned)p;
}

const char *vc_priv_name(enum vc_priv p)
{
	return in_range(p) ? priv_names[p] : NULL;
}

bool vc_priv_is_crypto(enum vc_priv p)
{
	return in_range(p) && p <= VC_PRIV_CRYPTO_ACCESS;
}

/* Shared by lookup and parse, which see ids that are not NUL-terminated. */
static int lookup_n(const char *name, size_t len, enum vc_priv *out)
{
	for (unsigned i = 0; i < VC_PRIV_COUNT; i++) {
		if (strlen(priv_names[i]) == len && memcmp(priv_names[i], name, len) == 0) {
			*out = (enum vc_priv)i;
			return 0;
		}
	}
	return -EINVAL;
}

int vc_priv_lookup(const char *name, enum vc_priv *out, struct vc_error *err)
{
	if (!name || lookup_n(name, strlen(name), out) < 0)
		return vc_error_set(err, -EINVAL, "unknown privilege '%s'",
				   name ? name : "(null)");
	return 0;
}

struct vc_privset vc_privset_none(void)
{
	return (struct vc_privset){ 0 };
}

struct vc_privset vc_privset_all(void)
{
	/* Shift in two steps: a shift by 64 would be undefined. */
	uint64_t all = ((UINT64_C(1) << (VC_PRIV_COUNT - 1)) << 1) - 1;

	return (struct vc_privset){ all };
}

void vc_privset_add(struct vc_privset *s, enum vc_priv p)
{
	if (in_range(p))
		s->bits |= bit(p);
}

bool vc_privset_has(const struct vc_privset *s, enum vc_priv p)
{
	return in_range(p) && (s->bits & bit(p)) != 0;
}

void vc_privset_union(struct vc_privset *s, const struct vc_privset *other)
{
	s->bits |= other->bits;
}

bool vc_privset_equal(const struct vc_privset *a, const struct vc_privset *b)
{
	return a->bits == b->bits;
}

size_t vc_privset_count(const struct vc_privset *s)
{
	return (size_t)__builtin_popcountll(s->bits);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int vc_privset_parse(const char *list, struct vc_privset *out, struct vc_error *err)
{
	struct vc_privset s = vc_privset_none();
	const char *p = list;

	if (!list)
		return vc_error_set(err, -EINVAL, "privilege list is missing");
	while (is_blank(*p))
		p++;
	if (*p == '\0') {
		*out = s;
		return 0;
	}
	for (;;) {
		const char *start, *end, *comma = strchr(p, ',');
		enum vc_priv priv;

		end = comma ? comma : p + strlen(p);
		start = p;
		while (start < end && is_blank(*start))
			start++;
		while (end > start && is_blank(end[-1]))
			end--;
		if (start == end)
			return vc_error_set(err, -EINVAL, "empty privilege id in list '%s'", list);
		if (lookup_n(start, (size_t)(end - start), &priv) < 0)
			return vc_error_set(err, -EINVAL, "unknown privilege '%.*s'",
					    (int)(end - start), start);
		vc_privset_add(&s, priv);
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = s;
	return 0;
}

int vc_privset_format(const struct vc_privset *s, char *buf, size_t len,
		      struct vc_error *err)
{
	size_t used = 0;

	if (len == 0)
		return vc_error_set(err, -ERANGE, "privilege list buffer is empty");
	buf[0] = '\0';
	for (unsigned i = 0; i < VC_PRIV_COUNT; i++) {
		size_t n;

		if (!vc_privset_has(s, (enum vc_priv)i))
			continue;
		n = strlen(priv_names[i]) + (used ? 1 : 0);
		if (n >= len - used) {
			buf[0] = '\0';
			return vc_error_set(err, -ERANGE,
					    "privilege list does not fit in %zu bytes", len);
		}
		if (used)
			buf[used++] = ',';
		memcpy(buf + used, priv_names[i], strlen(priv_names[i]) + 1);
		used += strlen(priv_names[i]);
	}
	return 0;
}

struct vc_privset vc_role_admin(void)
{
	return vc_privset_all();
}

struct vc_privset vc_role_no_crypto_admin(void)
{
	struct vc_privset s = vc_privset_none();

	for (unsigned i = 0; i < VC_PRIV_COUNT; i++)
		if (!vc_priv_is_crypto((enum vc_priv)i))
			vc_privset_add(&s, (enum vc_priv)i);
	return s;
}

struct vc_privset vc_role_read_only(void)
{
	struct vc_privset s = vc_privset_none();

	vc_privset_add(&s, VC_PRIV_SYSTEM_VIEW);
	vc_privset_add(&s, VC_PRIV_SYSTEM_READ);
	return s;
}

int vc_role_predefined(const char *id, struct vc_privset *out)
{
	if (!id)
		return -ENOENT;
	if (strcmp(id, VC_ROLE_ADMIN_ID) == 0)
		*out = vc_role_admin();
	else if (strcmp(id, VC_ROLE_NO_CRYPTO_ADMIN_ID) == 0)
		*out = vc_role_no_crypto_admin();
	else if (strcmp(id, VC_ROLE_READ_ONLY_ID) == 0)
		*out = vc_role_read_only();
	else
		return -ENOENT;
	return 0;
}

/* The node with this id. Scans the whole array so that a duplicate id,
 * which would make inheritance ambiguous, is refused rather than resolved
 * by array order. */
static int find_node(const struct vc_inv_node *nodes, size_t nnodes, const char *id,
		     const struct vc_inv_node **out, struct vc_error *err)
{
	const struct vc_inv_node *found = NULL;

	for (size_t i = 0; i < nnodes; i++) {
		if (!nodes[i].id || strcmp(nodes[i].id, id) != 0)
			continue;
		if (found)
			return vc_error_set(err, -EINVAL, "duplicate inventory object '%s'", id);
		found = &nodes[i];
	}
	if (!found)
		return vc_error_set(err, -EINVAL, "unknown inventory object '%s'", id);
	*out = found;
	return 0;
}

/* Validate the path from id to the root; with visit set, call it for each
 * node on the way (the object first), stopping early if it returns true.
 * A path longer than the node count must revisit a node: a cycle. */
static int walk_up(const struct vc_inv_node *nodes, size_t nnodes, const char *id,
		   bool (*visit)(const struct vc_inv_node *n, size_t depth, void *ctx),
		   void *ctx, struct vc_error *err)
{
	const struct vc_inv_node *n;
	size_t depth = 0;
	int r;

	if (!id)
		return vc_error_set(err, -EINVAL, "inventory object id is missing");
	r = find_node(nodes, nnodes, id, &n, err);
	if (r < 0)
		return r;
	for (;;) {
		if (visit && visit(n, depth, ctx))
			return 0;
		if (!n->parent)
			return 0;
		if (++depth >= nnodes)
			return vc_error_set(err, -EINVAL,
					    "inventory cycle above object '%s'", id);
		r = find_node(nodes, nnodes, n->parent, &n, err);
		if (r < 0) {
			vc_error_prefix(err, "parent of '%s'", n->id);
			return r;
		}
	}
}

int vc_inv_validate(const struct vc_inv_node *nodes, size_t nnodes, struct vc_error *err)
{
	for (size_t i = 0; i < nnodes; i++) {
		int r = walk_up(nodes, nnodes, nodes[i].id, NULL, NULL, err);

		if (r < 0)
			return r;
	}
	return 0;
}

struct resolve {
	const struct vc_authz *az;
	const struct vc_principal *who;
	struct vc_privset privs;
};

static bool in_groups(const struct vc_principal *who, const char *name)
{
	for (size_t i = 0; i < who->ngroups; i++)
		if (who->groups[i] && strcmp(who->groups[i], name) == 0)
			return true;
	return false;
}

/* Decide at node n if any permission there applies; true stops the walk. */
static bool resolve_level(const struct vc_inv_node *n, size_t depth, void *ctx)
{
	struct resolve *rs = ctx;
	const struct vc_authz *az = rs->az;
	struct vc_privset user = vc_privset_none(), group = vc_privset_none();
	bool have_user = false, have_group = false;

	for (size_t i = 0; i < az->nperms; i++) {
		const struct vc_perm *p = &az->perms[i];

		if (!p->object || !p->principal || strcmp(p->object, n->id) != 0)
			continue;
		if (depth > 0 && !p->propagate)
			continue;
		if (p->is_group) {
			if (in_groups(rs->who, p->principal)) {
				vc_privset_union(&group, &p->privs);
				have_group = true;
			}
		} else if (rs->who->user && strcmp(p->principal, rs->who->user) == 0) {
			vc_privset_union(&user, &p->privs);
			have_user = true;
		}
	}
	if (have_user)
		rs->privs = user;
	else if (have_group)
		rs->privs = group;
	return have_user || have_group;
}

int vc_priv_effective(const struct vc_authz *az, const struct vc_principal *who,
		      const char *object, struct vc_privset *out, struct vc_error *err)
{
	struct resolve rs = { .az = az, .who = who, .privs = vc_privset_none() };
	int r;

	/* Validate the whole path first: the resolving walk stops at the
	 * deciding level and would not see a cycle or dangling parent above. */
	r = walk_up(az->nodes, az->nnodes, object, NULL, NULL, err);
	if (r < 0)
		return r;
	r = walk_up(az->nodes, az->nnodes, object, resolve_level, &rs, err);
	if (r < 0)
		return r;
	*out = rs.privs;
	return 0;
}

/* FNV-1a, for the id -> index table of vc_priv_effective_all. */
static size_t id_hash(const char *s)
{
	size_t h = 1469598103934665603ULL & SIZE_MAX;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * (1099511628211ULL & SIZE_MAX);
	return h;
}

int vc_priv_effective_all(const struct vc_authz *az, const struct vc_principal *who,
			  struct vc_privset *out, struct vc_error *err)
{
	size_t n = az->nnodes, cap = 16, *slot = NULL;
	struct vc_privset *inh = NULL;
	int r = 0;

	while (cap < 2 * n)
		cap *= 2;
	slot = malloc(cap * sizeof *slot);
	inh = malloc((n ? n : 1) * sizeof *inh);
	if (!slot || !inh) {
		r = vc_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cap; i++)
		slot[i] = SIZE_MAX;
	for (size_t i = 0; r == 0 && i < n; i++) {
		const struct vc_inv_node *nd = &az->nodes[i];
		struct resolve rs = { .az = az, .who = who, .privs = vc_privset_none() };
		size_t h, parent = SIZE_MAX;

		if (!nd->id) {
			r = vc_error_set(err, -EINVAL, "inventory object id is missing");
			break;
		}
		/* Its parent must already be in the table: parents first. */
		if (nd->parent) {
			for (h = id_hash(nd->parent) & (cap - 1); slot[h] != SIZE_MAX;
			     h = (h + 1) & (cap - 1))
				if (strcmp(az->nodes[slot[h]].id, nd->parent) == 0) {
					parent = slot[h];
					break;
				}
			if (parent == SIZE_MAX) {
				r = vc_error_set(err, -EINVAL, "the parent of '%s' does not come before "
						 "it (or is unknown)", nd->id);
				break;
			}
		} else if (i != 0) {
			r = vc_error_set(err, -EINVAL, "'%s' is a second root", nd->id);
			break;
		}
		for (h = id_hash(nd->id) & (cap - 1); slot[h] != SIZE_MAX; h = (h + 1) & (cap - 1))
			if (strcmp(az->nodes[slot[h]].id, nd->id) == 0) {
				r = vc_error_set(err, -EINVAL, "duplicate inventory object '%s'", nd->id);
				break;
			}
		if (r < 0)
			break;
		slot[h] = i;
		/* Here, every permission on the object counts (depth 0); for the
		 * objects below, only propagating ones (depth 1). The nearest
		 * deciding level wins, else what the parent passes down. */
		if (resolve_level(nd, 0, &rs))
			out[i] = rs.privs;
		else
			out[i] = parent == SIZE_MAX ? vc_privset_none() : inh[parent];
		rs.privs = vc_privset_none();
		if (resolve_level(nd, 1, &rs))
			inh[i] = rs.privs;
		else
			inh[i] = parent == SIZE_MAX ? vc_privset_none() : inh[parent];
	}
out:
	free(slot);
	free(inh);
	return r;
}

int vc_priv_check(const struct vc_authz *az, const struct vc_principal *who,
		  const char *object, enum vc_priv need, struct vc_error *err)
{
	struct vc_privset have;
	int r;

	if (!in_range(need))
		return vc_error_set(err, -EINVAL, "unknown privilege number %d", (int)need);
	r = vc_priv_effective(az, who, object, &have, err);
	if (r < 0)
		return r;
	if (!vc_privset_has(&have, need))
		return vc_error_set(err, -EACCES,
				    "permission denied: user '%s' lacks privilege %s on object '%s'",
				    who->user ? who->user : "(none)", priv_names[need], object);
	return 0;
}
