/* SPDX-License-Identifier: Apache-2.0 */
/* The key providers vmcryptd has open (providers.c). Callers hold m->lock. */
#ifndef VC_MGR_PROVIDERS_H
#define VC_MGR_PROVIDERS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "vc_keyprov.h"

struct mgr;
struct mgr_provider;

/* Provider names become directory names: [A-Za-z0-9._-], 1..64, not
 * starting with '.' or '-'. */
bool prov_name_valid(const char *name);
/* <data>/providers/<name>[/file] and <data>/native/<name>. */
void prov_path(struct mgr *m, const char *name, const char *file, char *out, size_t len);
void prov_native_dir(struct mgr *m, const char *name, char *out, size_t len);
/* Open a provider from its stored configuration. */
int prov_open(struct mgr *m, const char *name, const char *kind, json_t *config,
	      struct vc_keyprov **out, struct vc_error *err);
/* Add an open provider (kp may be NULL: listed as broken) to the list;
 * the list takes kp and a reference to config. */
int prov_register(struct mgr *m, const char *name, const char *kind, json_t *config,
		  struct vc_keyprov *kp, struct mgr_provider **out);
int prov_load_all(struct mgr *m, struct vc_error *err);
struct mgr_provider *prov_find(struct mgr *m, const char *name);
/* Drop a reference; the last one closes the provider. */
void prov_put(struct mgr *m, struct mgr_provider *p);
/* Take p off the list (dropping the list's reference). */
void prov_unlink(struct mgr *m, struct mgr_provider *p);
void prov_free_all(struct mgr *m);
void prov_remove_dir(const char *dir);
/* With no provider configured at all, create native provider name as the
 * default (the embedded setup). */
int prov_ensure_native(struct mgr *m, const char *name, struct vc_error *err);
json_t *prov_json(struct mgr *m, struct mgr_provider *p, bool is_default);

#endif
