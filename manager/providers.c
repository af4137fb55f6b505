/* SPDX-License-Identifier: Apache-2.0 */
/* The key providers the manager has open, built from their stored
 * configuration: KMIP clusters (credentials in <data>/providers/<name>/)
 * and native providers (<data>/native/<name>/). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgr.h"
#include "providers.h"
#include "vc_json.h"
#include "vc_log.h"

bool prov_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 64 || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

void prov_path(struct mgr *m, const char *name, const char *file, char *out, size_t len)
{
	snprintf(out, len, "%s/providers/%s%s%s", m->cfg.data_dir, name, file ? "/" : "",
		 file ? file : "");
}

void prov_native_dir(struct mgr *m, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/native/%s", m->cfg.data_dir, name);
}

int prov_open(struct mgr *m, const char *name, const char *kind, json_t *config,
	      struct vc_keyprov **out, struct vc_error *err)
{
	char dir[4096];

	if (!strcmp(kind, "native")) {
		prov_native_dir(m, name, dir, sizeof dir);
		return vc_keyprov_new_native(name, dir, 0, out, err);
	}
	if (strcmp(kind, "kmip") != 0)
		return vc_error_set(err, -EINVAL, "key provider '%s' has unknown kind '%s'", name,
				    kind);
	{
		char ca[4096], crt[4096], key[4096];
		struct vc_kmip_cluster_cfg cfg = { .name = name };
		json_t *servers = json_object_get(config, "servers"), *s;
		size_t i;

		prov_path(m, name, "ca.pem", ca, sizeof ca);
		prov_path(m, name, "client.crt", crt, sizeof crt);
		prov_path(m, name, "client.key", key, sizeof key);
		json_array_foreach(servers, i, s) {
			if (i < VC_KMIP_CLUSTER_MAX)
				cfg.servers[cfg.nservers++] = json_string_value(s);
		}
		cfg.tls = (struct vc_kmip_tls){
			.ca_file = ca, .cert_file = crt, .key_file = key,
			.server_name = json_string_value(json_object_get(config, "server_name")),
			.timeout_ms = (int)json_integer_value(json_object_get(config, "timeout_ms")),
		};
		return vc_keyprov_new_kmip(&cfg, out, err);
	}
}

int prov_register(struct mgr *m, const char *name, const char *kind, json_t *config,
		  struct vc_keyprov *kp, struct mgr_provider **out)
{
	struct mgr_provider *p = calloc(1, sizeof *p);

	if (!p)
		return -ENOMEM;
	snprintf(p->name, sizeof p->name, "%s", name);
	p->kind = strcmp(kind, "native") ? VC_KEYPROV_KMIP : VC_KEYPROV_NATIVE;
	p->kp = kp;
	p->config = json_incref(config);
	p->refs = 1;
	p->next = m->providers;
	m->providers = p;
	if (out)
		*out = p;
	return 0;
}

struct load_ctx {
	struct mgr *m;
};

static int load_one(const struct vc_store_provider *sp, void *ctx)
{
	struct load_ctx *c = ctx;
	struct vc_keyprov *kp = NULL;
	struct vc_error err = { 0 };
	json_t *config = json_loads(sp->config, 0, NULL);
	int ret;

	if (!config) {
		vc_log(VC_LOG_ERROR, "key provider '%s': stored configuration is not JSON", sp->name);
		return 0;
	}
	ret = prov_open(c->m, sp->name, sp->kind, config, &kp, &err);
	if (ret < 0) {
		/* One broken provider must not stop the manager: it is listed
		 * with its error and can be removed or restored. */
		vc_log(VC_LOG_ERROR, "key provider '%s': %s", sp->name, vc_error_msg(&err));
		kp = NULL;
	}
	ret = prov_register(c->m, sp->name, sp->kind, config, kp, NULL);
	json_decref(config);
	if (ret < 0)
		vc_keyprov_free(kp);
	return ret;
}

int prov_load_all(struct mgr *m, struct vc_error *err)
{
	struct load_ctx c = { m };

	return vc_store_provider_list(m->st, load_one, &c, err);
}

static void prov_destroy(struct mgr_provider *p)
{
	vc_keyprov_free(p->kp);
	json_decref(p->config);
	free(p);
}

void prov_put(struct mgr *m, struct mgr_provider *p)
{
	(void)m;
	if (p && --p->refs == 0)
		prov_destroy(p);
}

void prov_unlink(struct mgr *m, struct mgr_provider *p)
{
	for (struct mgr_provider **pp = &m->providers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			p->next = NULL;
			prov_put(m, p);
			return;
		}
	}
}

void prov_free_all(struct mgr *m)
{
	while (m->providers)
		prov_unlink(m, m->providers);
}

struct mgr_provider *prov_find(struct mgr *m, const char *name)
{
	for (struct mgr_provider *p = m->providers; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

/* Remove the regular files of dir, then dir (no subdirectories there). */
void prov_remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (unlink(path) < 0)
			vc_log(VC_LOG_ERROR, "cannot remove %s: %s", path, strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		vc_log(VC_LOG_ERROR, "cannot remove %s: %s", dir, strerror(errno));
}

static json_t *health_json(struct mgr_provider *p)
{
	struct vc_kmip_health h[VC_KMIP_CLUSTER_MAX];
	json_t *arr = json_array();
	size_t n = p->kp ? vc_keyprov_health(p->kp, h, VC_KMIP_CLUSTER_MAX) : 0;

	for (size_t i = 0; i < n; i++) {
		/* Times are whole seconds: the flag, not their order, says
		 * which came last. */
		bool healthy = p->kind == VC_KEYPROV_NATIVE ? h[i].last_error[0] == '\0'
							    : h[i].last_ok;

		json_array_append_new(arr, json_pack("{s:s,s:b,s:b,s:I,s:I,s:s,s:f}",
						     "server", h[i].server, "healthy", healthy,
						     "in_use", h[i].in_use, "last_success",
						     (json_int_t)h[i].last_success, "last_failure",
						     (json_int_t)h[i].last_failure, "last_error",
						     h[i].last_error, "latency_ms", h[i].latency_ms));
	}
	return arr;
}

static json_t *native_json(struct mgr_provider *p)
{
	struct vc_native *n = p->kp ? vc_keyprov_native(p->kp) : NULL;
	struct vc_native_info in;

	if (!n)
		return json_null();
	vc_native_info(n, &in);
	return json_pack("{s:s,s:I,s:b,s:I}", "provider_id", in.provider_id, "created",
			 (json_int_t)in.created, "backup_taken", in.backup_taken, "backup_time",
			 (json_int_t)in.backup_time);
}

json_t *prov_json(struct mgr *m, struct mgr_provider *p, bool is_default)
{
	json_t *servers = json_object_get(p->config, "servers");
	json_t *sn = json_object_get(p->config, "server_name");

	(void)m;
	servers = servers ? json_incref(servers) : json_array();
	sn = sn ? json_incref(sn) : json_null();
	return json_pack("{s:s,s:s,s:b,s:o,s:o,s:o,s:o,s:o}", "name", p->name, "kind",
			 p->kind == VC_KEYPROV_NATIVE ? "native" : "kmip", "default", is_default,
			 "servers", servers, "server_name", sn, "health", health_json(p), "native",
			 native_json(p), "error",
			 p->kp ? json_null() : json_string("the provider could not be opened "
							   "at start (see the manager's log)"));
}

static int count_one(const struct vc_store_provider *sp, void *ctx)
{
	(void)sp;
	(*(int *)ctx)++;
	return 0;
}

int prov_ensure_native(struct mgr *m, const char *name, struct vc_error *err)
{
	struct vc_keyprov *kp = NULL;
	json_t *config = NULL;
	char dir[4096], *text = NULL;
	int count = 0, ret;

	if (!prov_name_valid(name))
		return vc_error_set(err, -EINVAL, "native-provider: bad provider name '%s'", name);
	ret = vc_store_provider_list(m->st, count_one, &count, err);
	if (ret < 0 || count > 0)
		return ret;
	snprintf(dir, sizeof dir, "%s/native", m->cfg.data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "cannot create %s", dir);
	prov_native_dir(m, name, dir, sizeof dir);
	ret = vc_keyprov_new_native(name, dir, VC_NATIVE_CREATE, &kp, err);
	if (ret == 0) {
		config = json_pack("{s:s}", "dir", name);
		text = config ? json_dumps(config, JSON_COMPACT) : NULL;
		ret = text ? 0 : vc_error_set(err, -ENOMEM, "out of memory");
	}
	if (ret == 0)
		ret = vc_store_provider_add(m->st, &(struct vc_store_provider){
			.name = name, .kind = "native", .config = text, .is_default = true }, err);
	if (ret == 0) {
		ret = prov_register(m, name, "native", config, kp, NULL);
		if (ret == 0)
			kp = NULL;
		ev_log(m, NULL, "provider.add", NULL, name, NULL, EV_OK,
		       "created native key provider '%s' (the default) at start", name);
	}
	vc_keyprov_free(kp);
	vc_json_free_dump(text);
	json_decref(config);
	return ret;
}
