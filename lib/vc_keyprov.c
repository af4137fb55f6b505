/* SPDX-License-Identifier: Apache-2.0 */
/* Key providers behind one interface. */
#include "vc_keyprov.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct vc_keyprov {
	enum vc_keyprov_kind kind;
	char name[128];
	char dir[512];
	struct vc_kmip_cluster *cluster;
	struct vc_native *native;
};

int vc_keyprov_new_kmip(const struct vc_kmip_cluster_cfg *cfg, struct vc_keyprov **out,
			struct vc_error *err)
{
	struct vc_keyprov *p = calloc(1, sizeof *p);
	int r;

	*out = NULL;
	if (!p)
		return vc_error_set(err, -ENOMEM, "out of memory");
	p->kind = VC_KEYPROV_KMIP;
	snprintf(p->name, sizeof p->name, "%s", cfg->name ? cfg->name : "kmip");
	r = vc_kmip_cluster_new(cfg, &p->cluster, err);
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

int vc_keyprov_new_native(const char *name, const char *dir, unsigned flags,
			  struct vc_keyprov **out, struct vc_error *err)
{
	struct vc_keyprov *p = calloc(1, sizeof *p);
	int r;

	*out = NULL;
	if (!p)
		return vc_error_set(err, -ENOMEM, "out of memory");
	p->kind = VC_KEYPROV_NATIVE;
	snprintf(p->name, sizeof p->name, "%s", name ? name : "native");
	snprintf(p->dir, sizeof p->dir, "%s", dir);
	r = vc_native_open(dir, NULL, flags, &p->native, err);
	if (r < 0) {
		vc_error_prefix(err, "native key provider '%s'", p->name);
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

void vc_keyprov_free(struct vc_keyprov *p)
{
	if (!p)
		return;
	vc_kmip_cluster_free(p->cluster);
	vc_native_close(p->native);
	free(p);
}

enum vc_keyprov_kind vc_keyprov_kind(const struct vc_keyprov *p) { return p->kind; }
const char *vc_keyprov_name(const struct vc_keyprov *p) { return p->name; }
struct vc_native *vc_keyprov_native(struct vc_keyprov *p) { return p->native; }

int vc_keyprov_create_key(struct vc_keyprov *p, const char *label,
			  char key_id[VC_KEYPROV_ID_MAX], struct vc_secret **kek,
			  struct vc_error *err)
{
	char *uid = NULL;
	int r;

	if (kek)
		*kek = NULL;
	if (p->native) {
		char id[VC_UUID_STR_LEN];

		r = vc_native_create_key(p->native, id, kek, err);
		if (r == 0)
			snprintf(key_id, VC_KEYPROV_ID_MAX, "%s", id);
		return r;
	}
	r = kek ? vc_kmip_cluster_create_get_key(p->cluster, label, &uid, kek, err)
		: vc_kmip_cluster_create_key(p->cluster, label, &uid, err);
	if (r < 0)
		return r;
	if (strlen(uid) >= VC_KEYPROV_ID_MAX) {
		r = vc_error_set(err, -EOVERFLOW, "key provider '%s': key id longer than %d bytes",
				 p->name, VC_KEYPROV_ID_MAX - 1);
		if (kek) {
			vc_secret_free(*kek);
			*kek = NULL;
		}
	} else {
		memcpy(key_id, uid, strlen(uid) + 1);
	}
	free(uid);
	return r;
}

int vc_keyprov_get_key(struct vc_keyprov *p, const char *key_id, struct vc_secret **kek,
		       struct vc_error *err)
{
	int r;

	*kek = NULL;
	if (p->native)
		return vc_native_get_key(p->native, key_id, kek, err);
	r = vc_kmip_cluster_get_key(p->cluster, key_id, kek, err);
	if (r == 0 && vc_secret_len(*kek) != 32) {
		vc_secret_free(*kek);
		*kek = NULL;
		r = vc_error_set(err, -EINVAL, "key provider '%s': key '%s' is not an AES-256 key",
				 p->name, key_id);
	}
	return r;
}

int vc_keyprov_destroy_key(struct vc_keyprov *p, const char *key_id, struct vc_error *err)
{
	if (p->native)
		return vc_error_set(err, -ENOTSUP,
				    "native key provider '%s': keys are derived from the provider key and cannot be destroyed one by one",
				    p->name);
	return vc_kmip_cluster_destroy_key(p->cluster, key_id, err);
}

int vc_keyprov_probe(struct vc_keyprov *p, size_t i, struct vc_error *err)
{
	struct vc_native_info in;

	if (!p->native)
		return vc_kmip_cluster_probe(p->cluster, i, err);
	if (i != 0)
		return vc_error_set(err, -EINVAL, "key provider '%s' has one entry", p->name);
	vc_native_info(p->native, &in);
	if (!in.backup_taken && !in.allow_no_backup)
		return vc_error_set(err, -EPERM, "key provider '%s': no backup has been taken: "
				    "keys are not handed out until one is", p->name);
	return 0;
}

size_t vc_keyprov_health(struct vc_keyprov *p, struct vc_kmip_health *out, size_t max)
{
	struct vc_native_info in;

	if (!p->native)
		return vc_kmip_cluster_health(p->cluster, out, max);
	if (max == 0)
		return 0;
	memset(out, 0, sizeof *out);
	vc_native_info(p->native, &in);
	/* The directory may be longer than the field: keep its end. */
	{
		size_t n = strlen(p->dir), room = sizeof out->server - sizeof "native:";
		const char *tail = n > room ? p->dir + (n - room) : p->dir;

		memcpy(out->server, "native:", sizeof "native:" - 1);
		memcpy(out->server + sizeof "native:" - 1, tail, strlen(tail) + 1);
	}
	out->in_use = true;
	out->last_success = (time_t)in.created;
	if (!in.backup_taken && !in.allow_no_backup)
		snprintf(out->last_error, sizeof out->last_error,
			 "no backup has been taken: keys are not handed out until one is");
	return 1;
}
