/* SPDX-License-Identifier: Apache-2.0 */
/* One key-provider interface over the standard provider (a KMIP cluster)
 * and the native provider, for the manager: create a KEK and get its id,
 * get a KEK by id, destroy, health. The manager keeps only the ids. */
#ifndef VC_KEYPROV_H
#define VC_KEYPROV_H

#include "vc_kmip_cluster.h"
#include "vc_native.h"

enum vc_keyprov_kind { VC_KEYPROV_KMIP, VC_KEYPROV_NATIVE };

#define VC_KEYPROV_ID_MAX 128 /* key ids fit the disk header's 127 bytes */

struct vc_keyprov;

/* A standard provider over a KMIP cluster (configuration copied). */
VC_MUST_CHECK int vc_keyprov_new_kmip(const struct vc_kmip_cluster_cfg *cfg,
				      struct vc_keyprov **out, struct vc_error *err);
/* The native provider in dir (flags of vc_native_open). name is its
 * provider name in key references (copied). */
VC_MUST_CHECK int vc_keyprov_new_native(const char *name, const char *dir,
					unsigned flags, struct vc_keyprov **out,
					struct vc_error *err);
void vc_keyprov_free(struct vc_keyprov *p);

enum vc_keyprov_kind vc_keyprov_kind(const struct vc_keyprov *p);
const char *vc_keyprov_name(const struct vc_keyprov *p);

/* A new AES-256 KEK; its id (at most VC_KEYPROV_ID_MAX - 1 bytes) into
 * key_id. label names it where the provider stores names (KMIP: the Name
 * attribute; may be NULL). If kek is not NULL it receives the key too. */
VC_MUST_CHECK int vc_keyprov_create_key(struct vc_keyprov *p, const char *label,
					char key_id[VC_KEYPROV_ID_MAX],
					struct vc_secret **kek, struct vc_error *err);
VC_MUST_CHECK int vc_keyprov_get_key(struct vc_keyprov *p, const char *key_id,
				     struct vc_secret **kek, struct vc_error *err);
/* KMIP: revoke and destroy. Native keys are derived and cannot be
 * destroyed one by one: -ENOTSUP with a message saying so. */
VC_MUST_CHECK int vc_keyprov_destroy_key(struct vc_keyprov *p, const char *key_id,
					 struct vc_error *err);

/* KMIP: one entry per server. Native: one entry, the provider directory,
 * whose last_error says whether a backup is missing. */
size_t vc_keyprov_health(struct vc_keyprov *p, struct vc_kmip_health *out, size_t max);

/* Check entry i of the health list now: KMIP connects to server i
 * (vc_kmip_cluster_probe); native checks that keys can be handed out. */
VC_MUST_CHECK int vc_keyprov_probe(struct vc_keyprov *p, size_t i, struct vc_error *err);

/* The native provider underneath (backup and restore), or NULL. */
struct vc_native *vc_keyprov_native(struct vc_keyprov *p);

#endif
