/* SPDX-License-Identifier: Apache-2.0 */
/* Handlers that do nothing, so fuzz_api_request can link the daemon's
 * real route table (manager/routes.c). A handler added there without a
 * stub here fails the link, which keeps the two in step. */
#include "api.h"

#define STUB(name)                        \
	void name(struct req *r)          \
	{                                 \
		(void)r;                  \
	}

STUB(api_login)
STUB(api_session_get)
STUB(api_logout)
STUB(api_password_change)
STUB(api_users_list)
STUB(api_user_create)
STUB(api_user_delete)
STUB(api_user_password)
STUB(api_privileges_list)
STUB(api_roles_list)
STUB(api_role_get)
STUB(api_role_create)
STUB(api_role_delete)
STUB(api_perms_list)
STUB(api_perm_add)
STUB(api_perm_delete)
STUB(api_inventory_list)
STUB(api_inventory_get)
STUB(api_inventory_create)
STUB(api_inventory_rename)
STUB(api_inventory_delete)
STUB(api_providers_list)
STUB(api_provider_get)
STUB(api_provider_add)
STUB(api_provider_delete)
STUB(api_provider_default)
STUB(api_provider_check)
STUB(api_provider_backup)
STUB(api_key_create)
STUB(api_key_get)
STUB(api_policies_list)
STUB(api_policy_get)
STUB(api_policy_create)
STUB(api_policy_delete)
STUB(api_tasks_list)
STUB(api_task_get)
STUB(api_events_list)
STUB(api_events_verify)
STUB(api_hosts_list)
STUB(api_host_add)
STUB(api_host_get)
STUB(api_host_mode)
STUB(api_vms_list)
STUB(api_vm_create)
STUB(api_vm_get)
STUB(api_vm_encrypt)
STUB(api_vm_rekey)
STUB(api_vm_add_disk)
STUB(api_vm_decrypt)
STUB(api_vm_delete)
STUB(api_vm_move)
STUB(api_vm_clone)
