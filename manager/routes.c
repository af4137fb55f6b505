/* SPDX-License-Identifier: Apache-2.0 */
/* The API: every route, the privilege it needs and where, and its body.
 * Data only (the fuzzer links it with stub handlers). */
#include <event2/http.h>

#include "api.h"

const char *const inventory_kinds[] = { "folder", "cluster", "host", "vm", NULL };
const char *const migration_modes[] = { "disabled", "opportunistic", "required", NULL };

#define NAME(n, req) { n, VC_F_NAME, req, 0, 0, NULL, NULL }
#define STR(n, req, lo, hi) { n, VC_F_STRING, req, lo, hi, NULL, NULL }
#define PASSWORD(n) STR(n, true, 8, 1024)
#define BOOL(n) { n, VC_F_BOOL, false, 0, 0, NULL, NULL }
#define END { 0 }

static const struct vc_field login_f[] = { NAME("user", true), STR("password", true, 1, 1024),
					   END };
static const struct vc_field passwd_f[] = { STR("old_password", true, 1, 1024),
					    PASSWORD("new_password"), END };
static const struct vc_field user_f[] = { NAME("name", true), PASSWORD("password"),
					  { "groups", VC_F_NAMES, false, 0, 8, NULL, NULL }, END };
static const struct vc_field reset_f[] = { PASSWORD("password"), END };
static const struct vc_field role_f[] = {
	NAME("name", true), { "privileges", VC_F_NAMES, true, 0, VC_PRIV_COUNT, NULL, NULL }, END };
static const struct vc_field perm_f[] = { NAME("principal", true), BOOL("group"),
					  NAME("role", true), NAME("object", true),
					  BOOL("propagate"), END };
static const struct vc_field inv_f[] = {
	NAME("parent", true), { "kind", VC_F_NAME, true, 0, 0, NULL, inventory_kinds },
	NAME("name", true), END };
static const struct vc_field rename_f[] = { NAME("name", true), END };
static const struct vc_field restore_f[] = { STR("backup", true, 1, 1024),
					     STR("password", true, 1, 1024), END };
static const char *const prov_kinds[] = { "kmip", "native", NULL };
static const struct vc_field prov_f[] = {
	NAME("name", true),
	{ "kind", VC_F_NAME, true, 0, 0, NULL, prov_kinds },
	{ "servers", VC_F_STRINGS, false, 1, 16, NULL, NULL },
	STR("ca_pem", false, 1, 16384),
	STR("client_cert_pem", false, 1, 16384),
	STR("client_key_pem", false, 1, 16384),
	NAME("server_name", false),
	{ "timeout_ms", VC_F_INT, false, 100, 60000, NULL, NULL },
	BOOL("default"),
	{ "restore", VC_F_OBJECT, false, 0, 0, restore_f, NULL },
	END };
static const struct vc_field backup_f[] = { PASSWORD("password"), END };
static const struct vc_field key_f[] = { STR("label", false, 1, 128), END };
static const struct vc_field policy_f[] = {
	NAME("name", true),
	{ "encrypt", VC_F_BOOL, true, 0, 0, NULL, NULL },
	{ "migration", VC_F_NAME, false, 0, 0, NULL, migration_modes },
	{ "provider", VC_F_NAME_OR_NULL, false, 0, 0, NULL, NULL },
	END };

static const struct vc_field host_f[] = {
	STR("address", true, 3, 280), STR("join_token", true, 1, 1024), NAME("parent", true),
	NAME("name", true), STR("thumbprint", false, 64, 95), END };
static const struct vc_field dump_f[] = { STR("dump", true, 1, 60000), END };
static const struct vc_field mode_f[] = { { "enabled", VC_F_BOOL, true, 0, 0, NULL, NULL },
					  END };

static const struct vc_field disk_f[] = {
	{ "size", VC_F_INT, true, 4096, (int64_t)1 << 40, NULL, NULL }, END };
static const struct vc_field vm_f[] = {
	NAME("name", true), NAME("host", true), NAME("parent", true),
	{ "disks", VC_F_OBJECTS, true, 0, 16, disk_f, NULL }, NAME("policy", false),
	BOOL("vtpm"), END };
static const struct vc_field vm_enc_f[] = { NAME("policy", true), END };
static const struct vc_field vm_rekey_f[] = { NAME("policy", false), BOOL("deep"), END };
static const struct vc_field vm_move_f[] = { NAME("host", true), END };
static const struct vc_field vm_clone_f[] = { NAME("name", true), NAME("parent", true),
					      NAME("policy", false), END };

static const char *const q_object[] = { "object", NULL };
static const char *const q_perm_del[] = { "principal", "object", "group", NULL };
static const char *const q_events[] = { "from", "to", "user", "object", "operation", "format",
					NULL };

#define GET EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST
#define PUT EVHTTP_REQ_PUT
#define PATCH EVHTTP_REQ_PATCH
#define DEL EVHTTP_REQ_DELETE
#define P(x) VC_PRIV_##x

const struct route mgr_routes[] = {
	{ POST, "/api/v1/session", PRIV_NONE, OBJ_ROOT, login_f, NULL, api_login,
	  "log in: a bearer token" },
	{ GET, "/api/v1/session", PRIV_ANY, OBJ_ROOT, NULL, NULL, api_session_get,
	  "who am I, and my privileges on root" },
	{ DEL, "/api/v1/session", PRIV_ANY, OBJ_ROOT, NULL, NULL, api_logout, "log out" },
	{ POST, "/api/v1/session/password", PRIV_ANY, OBJ_ROOT, passwd_f, NULL,
	  api_password_change, "change my password" },
	{ GET, "/api/v1/users", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_users_list,
	  "list users" },
	{ POST, "/api/v1/users", P(AUTH_MODIFY_PERMISSIONS), OBJ_ROOT, user_f, NULL,
	  api_user_create, "create a user" },
	{ DEL, "/api/v1/users/{name}", P(AUTH_MODIFY_PERMISSIONS), OBJ_ROOT, NULL, NULL,
	  api_user_delete, "delete a user" },
	{ PUT, "/api/v1/users/{name}/password", P(AUTH_MODIFY_PERMISSIONS), OBJ_ROOT, reset_f,
	  NULL, api_user_password, "reset a user's password" },
	{ GET, "/api/v1/privileges", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_privileges_list,
	  "list privileges" },
	{ GET, "/api/v1/roles", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_roles_list,
	  "list roles" },
	{ GET, "/api/v1/roles/{name}", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_role_get,
	  "show a role" },
	{ POST, "/api/v1/roles", P(AUTH_MODIFY_ROLES), OBJ_ROOT, role_f, NULL, api_role_create,
	  "create a custom role" },
	{ DEL, "/api/v1/roles/{name}", P(AUTH_MODIFY_ROLES), OBJ_ROOT, NULL, NULL,
	  api_role_delete, "delete a custom role" },
	{ GET, "/api/v1/permissions", P(SYSTEM_READ), OBJ_QUERY_OBJECT, NULL, q_object,
	  api_perms_list, "list permissions (on the object, or all on root)" },
	{ POST, "/api/v1/permissions", P(AUTH_MODIFY_PERMISSIONS), OBJ_BODY_OBJECT, perm_f,
	  NULL, api_perm_add, "give a user or group a role on an object" },
	{ DEL, "/api/v1/permissions", P(AUTH_MODIFY_PERMISSIONS), OBJ_QUERY_OBJECT, NULL,
	  q_perm_del, api_perm_delete, "remove a permission" },
	{ GET, "/api/v1/inventory", PRIV_ANY, OBJ_ROOT, NULL, NULL, api_inventory_list,
	  "list the objects on which the caller has System.View" },
	{ GET, "/api/v1/inventory/{id}", P(SYSTEM_VIEW), OBJ_PARAM, NULL, NULL,
	  api_inventory_get, "show an object" },
	{ POST, "/api/v1/inventory", PRIV_BY_KIND, OBJ_BODY_PARENT, inv_f, NULL,
	  api_inventory_create, "create an object (privilege by kind, on the parent)" },
	{ PATCH, "/api/v1/inventory/{id}", PRIV_BY_KIND, OBJ_PARAM, rename_f, NULL,
	  api_inventory_rename, "rename an object (privilege by kind)" },
	{ DEL, "/api/v1/inventory/{id}", PRIV_BY_KIND, OBJ_PARAM, NULL, NULL,
	  api_inventory_delete, "delete an empty object (privilege by kind)" },
	{ GET, "/api/v1/hosts", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_hosts_list,
	  "list host agents" },
	{ POST, "/api/v1/hosts", P(HOST_ADD), OBJ_BODY_PARENT, host_f, NULL, api_host_add,
	  "add a host agent (confirm its thumbprint; both sides pin)" },
	{ GET, "/api/v1/hosts/{id}", P(SYSTEM_VIEW), OBJ_PARAM, NULL, NULL, api_host_get,
	  "a host and its agent's live state" },
	{ PUT, "/api/v1/hosts/{id}/encryption-mode", P(CRYPTO_REGISTER_HOST), OBJ_PARAM, mode_f,
	  NULL, api_host_mode, "enable or disable host encryption mode" },
	{ POST, "/api/v1/hosts/{id}/dump", P(GLOBAL_DIAGNOSTICS), OBJ_PARAM, NULL, NULL,
	  api_host_dump, "an encrypted state dump of the host agent (its host key is made on "
	  "the first, wrapped by a KEK of the default provider)" },
	{ POST, "/api/v1/hosts/{id}/dumps/decrypt", P(CRYPTO_ACCESS), OBJ_PARAM, dump_f, NULL,
	  api_host_dump_decrypt, "open an encrypted dump of the host" },
	{ GET, "/api/v1/vms", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_vms_list, "list VMs" },
	{ POST, "/api/v1/vms", P(VM_CREATE), OBJ_BODY_PARENT, vm_f, NULL, api_vm_create,
	  "create a VM on a host (a task; an encrypting policy also needs "
	  "Cryptographer.EncryptNew, and Cryptographer.RegisterHost if the host's "
	  "encryption mode is off)" },
	{ GET, "/api/v1/vms/{id}", P(SYSTEM_VIEW), OBJ_PARAM, NULL, NULL, api_vm_get,
	  "a VM and its state on its host (ready, locked)" },
	{ POST, "/api/v1/vms/{id}/encrypt", P(CRYPTO_ENCRYPT), OBJ_PARAM, vm_enc_f, NULL,
	  api_vm_encrypt, "encrypt a plaintext VM with a policy (a task)" },
	{ DEL, "/api/v1/vms/{id}", P(VM_DELETE), OBJ_PARAM, NULL, NULL, api_vm_delete,
	  "delete a VM and its files" },
	{ POST, "/api/v1/vms/{id}/move", P(VM_UNREGISTER), OBJ_PARAM, vm_move_f, NULL,
	  api_vm_move, "unregister a VM and register it on another host of the same datastore "
	  "(a task; VirtualMachine.Inventory.Register on the target, and "
	  "Cryptographer.RegisterVM there for an encrypted VM)" },
	{ POST, "/api/v1/vms/{id}/clone", P(VM_CREATE), OBJ_BODY_PARENT, vm_clone_f, NULL,
	  api_vm_clone, "clone a VM on its host (a task; an encrypted VM also needs "
	  "Cryptographer.Clone on it: the clone is encrypted with its own new key)" },
	{ POST, "/api/v1/vms/{id}/decrypt", P(CRYPTO_DECRYPT), OBJ_PARAM, NULL, NULL,
	  api_vm_decrypt, "decrypt a VM: every disk and the nvram back to plaintext (a task)" },
	{ POST, "/api/v1/vms/{id}/rekey", P(CRYPTO_RECRYPT), OBJ_PARAM, vm_rekey_f, NULL,
	  api_vm_rekey, "shallow rekey: a new KEK rewraps every DEK and the VM key; with "
	  "deep, new DEKs and every sector re-encrypted, by the I/O filter while the VM is "
	  "powered on (a task)" },
	{ POST, "/api/v1/vms/{id}/power-on", P(VM_POWER_ON), OBJ_PARAM, NULL, NULL,
	  api_vm_power_on, "power a VM on: its host serves each disk over NBD, through the "
	  "I/O filter when encrypted (a task)" },
	{ POST, "/api/v1/vms/{id}/power-off", P(VM_POWER_OFF), OBJ_PARAM, NULL, NULL,
	  api_vm_power_off, "power a VM off: its disk servers stop (a task)" },
	{ POST, "/api/v1/vms/{id}/disks", P(VM_ADD_NEW_DISK), OBJ_PARAM, disk_f, NULL,
	  api_vm_add_disk, "add a disk (on an encrypted VM also Cryptographer.AddDisk: it "
	  "gets its own DEK wrapped by the VM's KEK)" },
	{ GET, "/api/v1/key-providers", P(CRYPTO_READ_KEY_SERVERS), OBJ_ROOT, NULL, NULL,
	  api_providers_list, "list key providers and their health" },
	{ GET, "/api/v1/key-providers/{name}", P(CRYPTO_READ_KEY_SERVERS), OBJ_ROOT, NULL, NULL,
	  api_provider_get, "show a key provider" },
	{ POST, "/api/v1/key-providers", P(CRYPTO_MANAGE_KEY_SERVERS), OBJ_ROOT, prov_f, NULL,
	  api_provider_add, "add a standard or native provider, or restore a native one" },
	{ DEL, "/api/v1/key-providers/{name}", P(CRYPTO_MANAGE_KEY_SERVERS), OBJ_ROOT, NULL,
	  NULL, api_provider_delete, "remove a key provider" },
	{ POST, "/api/v1/key-providers/{name}/default", P(CRYPTO_MANAGE_KEY_SERVERS), OBJ_ROOT,
	  NULL, NULL, api_provider_default, "make a provider the default" },
	{ POST, "/api/v1/key-providers/{name}/check", P(CRYPTO_READ_KEY_SERVERS), OBJ_ROOT,
	  NULL, NULL, api_provider_check, "check every server now (a task)" },
	{ POST, "/api/v1/key-providers/{name}/backup", P(CRYPTO_MANAGE_KEY_SERVERS), OBJ_ROOT,
	  backup_f, NULL, api_provider_backup, "back up a native provider" },
	{ POST, "/api/v1/key-providers/{name}/keys", P(CRYPTO_MANAGE_KEYS), OBJ_ROOT, key_f,
	  NULL, api_key_create, "create a key-encryption key" },
	{ GET, "/api/v1/key-providers/{name}/keys/{key_id}", P(CRYPTO_MANAGE_KEYS), OBJ_ROOT,
	  NULL, NULL, api_key_get, "fetch a key: its check value" },
	{ GET, "/api/v1/policies", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_policies_list,
	  "list encryption policies" },
	{ GET, "/api/v1/policies/{name}", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_policy_get,
	  "show an encryption policy" },
	{ POST, "/api/v1/policies", P(CRYPTO_MANAGE_POLICY), OBJ_ROOT, policy_f, NULL,
	  api_policy_create, "create an encryption policy" },
	{ DEL, "/api/v1/policies/{name}", P(CRYPTO_MANAGE_POLICY), OBJ_ROOT, NULL, NULL,
	  api_policy_delete, "delete an encryption policy" },
	{ GET, "/api/v1/tasks", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_tasks_list,
	  "list tasks" },
	{ GET, "/api/v1/tasks/{id}", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_task_get,
	  "show a task" },
	{ GET, "/api/v1/events", P(SYSTEM_READ), OBJ_ROOT, NULL, q_events, api_events_list,
	  "list or export events" },
	{ GET, "/api/v1/events/verify", P(SYSTEM_READ), OBJ_ROOT, NULL, NULL, api_events_verify,
	  "verify the event hash chain on the server" },
};

const size_t mgr_nroutes = sizeof mgr_routes / sizeof mgr_routes[0];

const char *route_method_name(int m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return "?";
	}
}
