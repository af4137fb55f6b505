/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz harness for vm.json, the configuration the host agent reads from
 * each VM folder of its datastore (host/vmconf.c): any input is parsed;
 * one that is accepted must hold a sane VM, and writing it back and
 * parsing that again must give the same VM. */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "vm.h"

#define FUZZ_MAX_INPUT (64 * 1024)

static long accepted, refused;

/* The seeds must reach both the checks and the refusals. */
int fuzz_replay_done(long inputs)
{
	fprintf(stderr, "fuzz_vmconf: %ld inputs, %ld accepted, %ld refused\n", inputs, accepted,
		refused);
	return accepted > 0 && refused > 0 ? 0 : 1;
}

static void check_name(const char *s, size_t cap, bool file, bool may_be_empty)
{
	size_t n = strnlen(s, cap);

	FUZZ_CHECK(n < cap, "a string fills its whole field");
	FUZZ_CHECK(n > 0 || may_be_empty, "an empty required string");
	if (file)
		FUZZ_CHECK(!strchr(s, '/') && s[0] != '.', "file name '%s' leaves the folder", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm v, again;
	json_t *j, *out;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!j) {
		refused++;
		return 0;
	}
	memset(&v, 0, sizeof v);
	if (vmconf_parse(j, &v) < 0) {
		json_decref(j);
		refused++;
		return 0;
	}
	json_decref(j);
	accepted++;

	check_name(v.uuid, sizeof v.uuid, true, false);
	check_name(v.name, sizeof v.name, false, false);
	check_name(v.nvram, sizeof v.nvram, true, false);
	check_name(v.vtpm, sizeof v.vtpm, true, true);
	FUZZ_CHECK(!v.vtpm[0] || v.encrypted, "a vTPM on a VM without a VM key");
	FUZZ_CHECK(v.ndisks <= DISKS_MAX, "%zu disks", v.ndisks);
	for (size_t i = 0; i < v.ndisks; i++) {
		check_name(v.disks[i].file, sizeof v.disks[i].file, true, false);
		FUZZ_CHECK(v.disks[i].size > 0 && v.disks[i].size <= DISK_MAX_BYTES,
			   "disk %zu of %llu bytes", i, (unsigned long long)v.disks[i].size);
	}

	/* What the agent writes, it reads back the same. */
	out = vmconf_json(&v);
	FUZZ_CHECK(out != NULL, "no JSON for an accepted VM");
	memset(&again, 0, sizeof again);
	FUZZ_CHECK(vmconf_parse(out, &again) == 0, "its own vm.json is refused");
	json_decref(out);
	FUZZ_CHECK(memcmp(&v, &again, sizeof v) == 0, "vm.json does not round-trip");
	return 0;
}
