/* SPDX-License-Identifier: Apache-2.0 */
/* vm.json, a VM's configuration in its datastore folder: parsed strictly
 * (it may come from another host sharing the datastore, or be damaged)
 * and written back. Fuzzed by fuzz/fuzz_vmconf.c. */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "vm.h"

enum { MAY_BE_EMPTY = 1, FILE_NAME = 2 };

static int copy_str(char *dst, size_t cap, json_t *v, unsigned flags)
{
	const char *s = json_string_value(v);

	if (!s || strlen(s) >= cap || (!(flags & MAY_BE_EMPTY) && !s[0]) ||
	    ((flags & FILE_NAME) && (strchr(s, '/') || s[0] == '.')))
		return -EBADMSG;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

int vmconf_parse(json_t *j, struct vm *v)
{
	json_t *disks = json_object_get(j, "disks"), *d;
	size_t i;

	if (json_integer_value(json_object_get(j, "version")) != 1 ||
	    copy_str(v->uuid, sizeof v->uuid, json_object_get(j, "uuid"), FILE_NAME) ||
	    copy_str(v->name, sizeof v->name, json_object_get(j, "name"), 0) ||
	    copy_str(v->provider, sizeof v->provider, json_object_get(j, "provider"), MAY_BE_EMPTY) ||
	    copy_str(v->key_id, sizeof v->key_id, json_object_get(j, "key_id"), MAY_BE_EMPTY) ||
	    copy_str(v->next_provider, sizeof v->next_provider, json_object_get(j, "next_provider"),
		     MAY_BE_EMPTY) ||
	    copy_str(v->next_key_id, sizeof v->next_key_id, json_object_get(j, "next_key_id"),
		     MAY_BE_EMPTY) ||
	    copy_str(v->wrapped_key, sizeof v->wrapped_key, json_object_get(j, "wrapped_vm_key"),
		     MAY_BE_EMPTY) ||
	    copy_str(v->nvram, sizeof v->nvram, json_object_get(j, "nvram"), FILE_NAME) ||
	    !json_is_boolean(json_object_get(j, "encrypted")) || !json_is_array(disks) ||
	    json_array_size(disks) > DISKS_MAX)
		return -EBADMSG;
	/* Optional (older folders have none); a vTPM needs the VM key. */
	if (json_object_get(j, "vtpm") &&
	    (copy_str(v->vtpm, sizeof v->vtpm, json_object_get(j, "vtpm"),
		      MAY_BE_EMPTY | FILE_NAME) ||
	     (v->vtpm[0] && !json_is_true(json_object_get(j, "encrypted")))))
		return -EBADMSG;
	v->encrypted = json_is_true(json_object_get(j, "encrypted"));
	json_array_foreach(disks, i, d) {
		json_int_t size = json_integer_value(json_object_get(d, "size"));

		if (copy_str(v->disks[i].file, sizeof v->disks[i].file, json_object_get(d, "file"),
			     FILE_NAME) ||
		    !json_is_boolean(json_object_get(d, "encrypted")) || size <= 0 ||
		    (uint64_t)size > DISK_MAX_BYTES)
			return -EBADMSG;
		v->disks[i].size = (uint64_t)size;
		v->disks[i].encrypted = json_is_true(json_object_get(d, "encrypted"));
	}
	v->ndisks = json_array_size(disks);
	return 0;
}

json_t *vmconf_json(const struct vm *v)
{
	json_t *disks = json_array();

	for (size_t i = 0; disks && i < v->ndisks; i++)
		json_array_append_new(disks, json_pack("{s:s,s:I,s:b}", "file", v->disks[i].file,
						       "size", (json_int_t)v->disks[i].size,
						       "encrypted", v->disks[i].encrypted));
	return json_pack("{s:i,s:s,s:s,s:b,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "version", 1, "uuid",
			 v->uuid, "name", v->name, "encrypted", v->encrypted, "provider",
			 v->provider, "key_id", v->key_id, "next_provider", v->next_provider,
			 "next_key_id", v->next_key_id, "wrapped_vm_key", v->wrapped_key, "nvram",
			 v->nvram, "vtpm", v->vtpm, "disks", disks);
}
