/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd's API handlers (api_*.c), listed in routes.c. */
#ifndef VC_MGR_API_H
#define VC_MGR_API_H

#include "mgr.h"

/* identity */
void api_login(struct req *r);
void api_session_get(struct req *r);
void api_logout(struct req *r);
void api_password_change(struct req *r);
void api_users_list(struct req *r);
void api_user_create(struct req *r);
void api_user_delete(struct req *r);
void api_user_password(struct req *r);
void api_privileges_list(struct req *r);
void api_roles_list(struct req *r);
void api_role_get(struct req *r);
void api_role_create(struct req *r);
void api_role_delete(struct req *r);
void api_perms_list(struct req *r);
void api_perm_add(struct req *r);
void api_perm_delete(struct req *r);
/* Hash the password in body field into *hash (malloc'd); replies on error. */
int hash_password(struct req *r, const char *field, char **hash);

/* inventory */
extern const char *const inventory_kinds[];
/* {"folder": priv, ...} for create (0), rename (1) or delete (2). */
json_t *inventory_by_kind_json(int which);
#define INV_ID_LEN 40
/* Whether an object of kind may go under parent and the caller may put it
 * there; replies (404, 400, 403) and returns < 0 if not. */
int inv_check_place(struct req *r, const char *parent, const char *kind);
/* Add it (no reply, no event): a new id into id. */
int inv_add(struct req *r, const char *parent, const char *kind, const char *name,
	    char id[INV_ID_LEN], struct vc_error *err);
void api_inventory_list(struct req *r);
void api_inventory_get(struct req *r);
void api_inventory_create(struct req *r);
void api_inventory_rename(struct req *r);
void api_inventory_delete(struct req *r);

/* key providers */
void api_providers_list(struct req *r);
void api_provider_get(struct req *r);
void api_provider_add(struct req *r);
void api_provider_delete(struct req *r);
void api_provider_default(struct req *r);
void api_provider_check(struct req *r);
void api_provider_backup(struct req *r);
void api_key_create(struct req *r);
void api_key_get(struct req *r);

/* hosts */
void api_hosts_list(struct req *r);
void api_host_add(struct req *r);
void api_host_get(struct req *r);
void api_host_mode(struct req *r);
void api_host_dump(struct req *r);
void api_host_dump_decrypt(struct req *r);

/* VMs */
void api_vms_list(struct req *r);
void api_vm_create(struct req *r);
void api_vm_get(struct req *r);
void api_vm_encrypt(struct req *r);
void api_vm_rekey(struct req *r);
void api_vm_power_on(struct req *r);
void api_vm_power_off(struct req *r);
void api_vm_decrypt(struct req *r);
void api_vm_delete(struct req *r);
void api_vm_move(struct req *r);
void api_vm_clone(struct req *r);
void api_vm_add_disk(struct req *r);

/* policies, tasks, events */
extern const char *const migration_modes[];
void api_policies_list(struct req *r);
void api_policy_get(struct req *r);
void api_policy_create(struct req *r);
void api_policy_delete(struct req *r);
void api_tasks_list(struct req *r);
void api_task_get(struct req *r);
void api_events_list(struct req *r);
void api_events_verify(struct req *r);

#endif
