/* SPDX-License-Identifier: Apache-2.0 */
/* Key providers: standard (KMIP clusters) and native; keys by id only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "vc_crypto.h"
#include "vc_encode.h"
#include "vc_json.h"
#include "vc_secmem.h"

/* KMIP and native errors: the provider's own message, with a status that
 * says whose fault it is. */
static void reply_prov_err(struct req *r, int ret, const struct vc_error *err)
{
	switch (ret) {
	case -ENOENT:
		reply_error(r, 404, "not_found", "%s", vc_error_msg(err));
		break;
	case -EINVAL:
		reply_error(r, 400, "bad_request", "%s", vc_error_msg(err));
		break;
	case -EPERM:
	case -ENOTSUP:
	case -EEXIST:
		reply_error(r, 409, "conflict", "%s", vc_error_msg(err));
		break;
	case -EKEYREJECTED:
		reply_error(r, 400, "bad_request", "%s", vc_error_msg(err));
		break;
	case -ENOMEM:
		reply_error(r, 500, "internal", "%s", vc_error_msg(err));
		break;
	default:
		reply_error(r, 502, "key_server", "%s", vc_error_msg(err));
	}
}

/* The provider named by the path, or a 404 reply. */
static struct mgr_provider *path_provider(struct req *r, bool *is_default)
{
	struct mgr_provider *p = prov_find(r->m, r->param[0]);
	struct vc_store_provider sp;
	struct vc_error err = { 0 };

	if (!p) {
		reply_error(r, 404, "not_found", "no key provider '%s'", r->param[0]);
		return NULL;
	}
	if (is_default) {
		*is_default = false;
		if (vc_store_provider_get(r->m->st, p->name, &sp, &err) == 0) {
			*is_default = sp.is_default;
			free(sp.mem);
		}
	}
	return p;
}

struct list_ctx {
	struct mgr *m;
	json_t *arr;
};

static int prov_item(const struct vc_store_provider *sp, void *ctx)
{
	struct list_ctx *c = ctx;
	struct mgr_provider *p = prov_find(c->m, sp->name);

	return p ? json_array_append_new(c->arr, prov_json(c->m, p, sp->is_default)) : 0;
}

void api_providers_list(struct req *r)
{
	struct list_ctx c = { r->m, json_array() };
	struct vc_error err = { 0 };
	int ret = vc_store_provider_list(r->m->st, prov_item, &c, &err);

	if (ret < 0) {
		json_decref(c.arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "providers", c.arr));
}

void api_provider_get(struct req *r)
{
	bool dflt;
	struct mgr_provider *p = path_provider(r, &dflt);

	if (p)
		reply_json(r, 200, prov_json(r->m, p, dflt));
}

static int write_private(const char *path, const char *data, size_t len,
			 struct vc_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	ssize_t n;

	if (fd < 0)
		return vc_error_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
	n = write(fd, data, len);
	if (n != (ssize_t)len || fsync(fd) < 0) {
		close(fd);
		unlink(path);
		return vc_error_set(err, -EIO, "cannot write %s", path);
	}
	return close(fd) == 0 ? 0 : vc_error_set(err, -EIO, "cannot write %s", path);
}

static int mkdir_private(const char *path, struct vc_error *err)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return vc_error_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
	return 0;
}

/* Write the three PEMs of a KMIP provider into its directory. */
static int save_kmip_files(struct req *r, const char *name, struct vc_error *err)
{
	static const char *const fields[] = { "ca_pem", "client_cert_pem", "client_key_pem" };
	static const char *const files[] = { "ca.pem", "client.crt", "client.key" };
	char path[4096];
	int ret;

	snprintf(path, sizeof path, "%s/providers", r->m->cfg.data_dir);
	ret = mkdir_private(path, err);
	prov_path(r->m, name, NULL, path, sizeof path);
	if (ret == 0)
		ret = mkdir_private(path, err);
	for (size_t i = 0; ret == 0 && i < 3; i++) {
		json_t *v = json_object_get(r->body, fields[i]);

		if (strncmp(json_string_value(v), "-----BEGIN ", 11) != 0) {
			ret = vc_error_set(err, -EINVAL, "field '%s' is not PEM", fields[i]);
			break;
		}
		prov_path(r->m, name, files[i], path, sizeof path);
		ret = write_private(path, json_string_value(v), json_string_length(v), err);
	}
	return ret;
}

static int add_kmip(struct req *r, const char *name, json_t **config, struct vc_keyprov **kp,
		    struct vc_error *err)
{
	json_t *servers = json_object_get(r->body, "servers");
	json_t *sn = json_object_get(r->body, "server_name");
	json_t *to = json_object_get(r->body, "timeout_ms");
	size_t n = json_array_size(servers), ok = 0;
	struct vc_error first = { 0 };
	int ret;

	for (size_t i = 0; i < n; i++) {
		char host[256];
		uint16_t port;

		ret = vc_kmip_parse_server(json_string_value(json_array_get(servers, i)), host,
					   sizeof host, &port, err);
		if (ret < 0)
			return ret;
	}
	*config = json_pack("{s:O,s:O,s:I}", "servers", servers, "server_name",
			    sn ? sn : json_null(), "timeout_ms",
			    (json_int_t)(to ? json_integer_value(to) : 10000));
	if (!*config)
		return vc_error_set(err, -ENOMEM, "out of memory");
	ret = save_kmip_files(r, name, err);
	if (ret == 0)
		ret = prov_open(r->m, name, "kmip", *config, kp, err);
	if (ret < 0)
		return ret;
	/* Trust is established now, with the administrator watching: at
	 * least one server must accept our certificate and present one our
	 * CA vouches for. */
	for (size_t i = 0; i < n; i++) {
		struct vc_error e = { 0 };

		if (vc_keyprov_probe(*kp, i, &e) == 0)
			ok++;
		else if (!first.msg[0])
			first = e;
	}
	if (ok == 0)
		return vc_error_set(err, -EHOSTUNREACH, "no key server of provider '%s' could "
				    "be reached: %s", name, vc_error_msg(&first));
	return 0;
}

static int add_native(struct req *r, const char *name, json_t **config, struct vc_keyprov **kp,
		      struct vc_error *err)
{
	json_t *restore = json_object_get(r->body, "restore");
	char dir[4096];
	struct stat sb;
	int ret;

	snprintf(dir, sizeof dir, "%s/native", r->m->cfg.data_dir);
	ret = mkdir_private(dir, err);
	if (ret < 0)
		return ret;
	prov_native_dir(r->m, name, dir, sizeof dir);
	if (restore) {
		const char *b64 = json_string_value(json_object_get(restore, "backup"));
		json_t *pwv = json_object_get(restore, "password");
		uint8_t env[512];
		size_t envlen = 0;
		struct vc_secret *pw = NULL;

		if (vc_base64_decode(b64, strlen(b64), env, sizeof env, &envlen) < 0)
			return vc_error_set(err, -EINVAL, "field 'restore.backup' is not base64");
		ret = vc_secret_from_bytes(json_string_value(pwv), json_string_length(pwv), &pw,
					   err);
		if (ret == 0)
			ret = vc_native_restore(dir, NULL, env, envlen, pw, 0, err);
		vc_secret_free(pw);
		/* A damaged envelope is the caller's input, not the provider's
		 * failure. */
		if (ret == -EBADMSG || ret == -ENOTSUP)
			ret = vc_error_set(err, -EINVAL, "%s", vc_error_msg(err));
		if (ret < 0)
			return ret;
		ret = vc_keyprov_new_native(name, dir, 0, kp, err);
	} else {
		if (stat(dir, &sb) == 0)
			return vc_error_set(err, -EEXIST, "%s exists: a native provider of that "
					    "name was not removed cleanly", dir);
		ret = vc_keyprov_new_native(name, dir, VC_NATIVE_CREATE, kp, err);
	}
	if (ret < 0)
		return ret;
	*config = json_pack("{s:s}", "dir", name);
	return *config ? 0 : vc_error_set(err, -ENOMEM, "out of memory");
}

static void remove_files(struct mgr *m, const char *name, const char *kind)
{
	char dir[4096];

	if (!strcmp(kind, "native"))
		prov_native_dir(m, name, dir, sizeof dir);
	else
		prov_path(m, name, NULL, dir, sizeof dir);
	prov_remove_dir(dir);
}

static int count_provider(const struct vc_store_provider *sp, void *ctx)
{
	(void)sp;
	(*(int *)ctx)++;
	return 0;
}

void api_provider_add(struct req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	const char *kind = json_string_value(json_object_get(r->body, "kind"));
	json_t *dflt = json_object_get(r->body, "default");
	struct vc_keyprov *kp = NULL;
	struct mgr_provider *p = NULL;
	json_t *config = NULL;
	struct vc_error err = { 0 };
	char *text = NULL;
	bool restore = json_object_get(r->body, "restore") != NULL;
	bool kmip = !strcmp(kind, "kmip");
	int count = 0, ret;
	bool existed;

	if (!prov_name_valid(name)) {
		reply_error(r, 400, "bad_request", "bad key provider name '%s' (letters, digits, "
			    "'.', '_', '-'; at most 64; not starting with '.' or '-')", name);
		return;
	}
	if (kmip != (json_object_get(r->body, "servers") != NULL) ||
	    (kmip && (!json_object_get(r->body, "ca_pem") ||
		      !json_object_get(r->body, "client_cert_pem") ||
		      !json_object_get(r->body, "client_key_pem"))) ||
	    (kmip && restore) ||
	    (!kmip && (json_object_get(r->body, "ca_pem") || json_object_get(r->body, "timeout_ms") ||
		       json_object_get(r->body, "client_cert_pem") || json_object_get(r->body, "server_name") ||
		       json_object_get(r->body, "client_key_pem")))) {
		reply_error(r, 400, "bad_request", "a kmip provider takes servers, ca_pem, "
			    "client_cert_pem, client_key_pem (and server_name, timeout_ms); a "
			    "native one takes only default and restore");
		return;
	}
	if (prov_find(r->m, name)) {
		reply_error(r, 409, "conflict", "key provider '%s' already exists", name);
		return;
	}
	{
		char dir[4096];
		struct stat sb;

		if (kmip)
			prov_path(r->m, name, NULL, dir, sizeof dir);
		else
			prov_native_dir(r->m, name, dir, sizeof dir);
		existed = stat(dir, &sb) == 0;
	}
	ret = kmip ? add_kmip(r, name, &config, &kp, &err) : add_native(r, name, &config, &kp, &err);
	if (ret == 0)
		ret = vc_store_provider_list(r->m->st, count_provider, &count, &err);
	if (ret == 0) {
		text = json_dumps(config, JSON_COMPACT);
		ret = text ? 0 : vc_error_set(&err, -ENOMEM, "out of memory");
	}
	if (ret == 0)
		ret = vc_store_provider_add(r->m->st, &(struct vc_store_provider){
			.name = name, .kind = kind, .config = text,
			.is_default = count == 0 || json_is_true(dflt) }, &err);
	if (ret == 0)
		ret = prov_register(r->m, name, kind, config, kp, &p);
	vc_json_free_dump(text);
	if (ret < 0) {
		vc_keyprov_free(kp);
		json_decref(config);
		/* Never remove what this call did not create. */
		if (!existed)
			remove_files(r->m, name, kind);
		ev_log(r->m, r->user, restore ? "provider.restore" : "provider.add", NULL, name,
		       NULL, EV_FAIL, "%s", vc_error_msg(&err));
		reply_prov_err(r, ret, &err);
		return;
	}
	json_decref(config);
	ev_log(r->m, r->user, restore ? "provider.restore" : "provider.add", NULL, name, NULL,
	       EV_OK, "%s %s key provider '%s'%s", restore ? "restored" : "added", kind, name,
	       count == 0 || json_is_true(dflt) ? " (default)" : "");
	reply_json(r, 201, prov_json(r->m, p, count == 0 || json_is_true(dflt)));
}

void api_provider_delete(struct req *r)
{
	struct mgr_provider *p = path_provider(r, NULL);
	struct vc_error err = { 0 };
	char kind[8];
	int ret;

	if (!p)
		return;
	ret = vc_store_provider_delete(r->m->st, p->name, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	snprintf(kind, sizeof kind, "%s", p->kind == VC_KEYPROV_NATIVE ? "native" : "kmip");
	ev_log(r->m, r->user, "provider.remove", NULL, p->name, NULL, EV_OK,
	       "removed %s key provider '%s'", kind, p->name);
	remove_files(r->m, r->param[0], kind);
	prov_unlink(r->m, p);
	reply_empty(r, 204);
}

void api_provider_default(struct req *r)
{
	struct mgr_provider *p = path_provider(r, NULL);
	struct vc_error err = { 0 };
	int ret;

	if (!p)
		return;
	ret = vc_store_provider_set_default(r->m->st, p->name, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "provider.default", NULL, p->name, NULL, EV_OK,
	       "key provider '%s' is the default", p->name);
	reply_json(r, 200, prov_json(r->m, p, true));
}

void api_provider_check(struct req *r)
{
	struct mgr_provider *p = path_provider(r, NULL);
	struct vc_error err = { 0 };
	char id[40];
	int ret;

	if (!p)
		return;
	ret = task_queue_check(r->m, r->user, p->name, id, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 202, json_pack("{s:s}", "task", id));
}

void api_provider_backup(struct req *r)
{
	struct mgr_provider *p = path_provider(r, NULL);
	json_t *pwv = json_object_get(r->body, "password");
	struct vc_native *n = p && p->kp ? vc_keyprov_native(p->kp) : NULL;
	struct vc_secret *pw = NULL;
	struct vc_error err = { 0 };
	uint8_t env[VC_NATIVE_BACKUP_LEN];
	char b64[VC_NATIVE_BACKUP_LEN * 2];
	int ret;

	if (!p)
		return;
	if (!n) {
		reply_error(r, 409, "conflict", "key provider '%s' is not a native provider "
			    "(KMIP servers are backed up by their own tools)", p->name);
		return;
	}
	ret = vc_secret_from_bytes(json_string_value(pwv), json_string_length(pwv), &pw, &err);
	if (ret == 0)
		ret = vc_native_backup(n, pw, NULL, env, &err);
	vc_secret_free(pw);
	if (ret < 0) {
		ev_log(r->m, r->user, "provider.backup", NULL, p->name, NULL, EV_FAIL, "%s",
		       vc_error_msg(&err));
		reply_prov_err(r, ret, &err);
		return;
	}
	vc_base64_encode(env, sizeof env, b64);
	ev_log(r->m, r->user, "provider.backup", NULL, p->name, NULL, EV_OK,
	       "exported a password-protected backup of native key provider '%s'", p->name);
	reply_json(r, 200, json_pack("{s:s}", "backup", b64));
}

#define KCV_LABEL "vmcrypt key check value"

static int check_value(const struct vc_secret *kek, char out[17], struct vc_error *err)
{
	uint8_t mac[VC_SHA256_LEN];
	int ret = vc_hmac_sha256(vc_secret_data(kek), vc_secret_len(kek), KCV_LABEL,
				 sizeof KCV_LABEL - 1, mac, err);

	if (ret == 0)
		vc_hex_encode(mac, 8, out);
	vc_wipe(mac, sizeof mac);
	return ret;
}

static void key_reply(struct req *r, struct mgr_provider *p, int status, const char *op,
		      const char *key_id, struct vc_secret *kek, int ret, struct vc_error *err)
{
	char kcv[17];

	if (ret == 0)
		ret = check_value(kek, kcv, err);
	vc_secret_free(kek);
	if (ret < 0) {
		ev_log(r->m, r->user, op, NULL, p->name, key_id, EV_FAIL, "%s", vc_error_msg(err));
		reply_prov_err(r, ret, err);
		return;
	}
	ev_log(r->m, r->user, op, NULL, p->name, key_id, EV_OK, "%s key '%s' of provider '%s'",
	       status == 201 ? "created" : "fetched", key_id, p->name);
	reply_json(r, status, json_pack("{s:s,s:s,s:s}", "key_id", key_id, "provider",
					p->name, "check_value", kcv));
}

/* Key calls wait on the provider (a KMIP server): on a worker. */
struct key_job {
	struct mgr_provider *p;      /* a reference */
	bool create;
	char id[VC_KEYPROV_ID_MAX];
	char label[VC_REQ_NAME_MAX + 1];
	struct vc_secret *kek;
	int ret;
	struct vc_error err;
};

static void key_work(struct req *r, void *arg)
{
	struct key_job *j = arg;

	(void)r;
	if (!j->p->kp)
		j->ret = vc_error_set(&j->err, -EIO, "key provider '%s' is not open", j->p->name);
	else if (j->create)
		j->ret = vc_keyprov_create_key(j->p->kp, j->label, j->id, &j->kek, &j->err);
	else
		j->ret = vc_keyprov_get_key(j->p->kp, j->id, &j->kek, &j->err);
}

static void key_done(struct req *r, void *arg)
{
	struct key_job *j = arg;

	key_reply(r, j->p, j->create ? 201 : 200, j->create ? "key.create" : "key.get",
		  j->id[0] ? j->id : NULL, j->kek, j->ret, &j->err);
	prov_put(r->m, j->p);
	free(j);
}

static void key_start(struct req *r, bool create, const char *id, const char *label)
{
	struct mgr_provider *p = path_provider(r, NULL);
	struct key_job *j;

	if (!p)
		return;
	j = calloc(1, sizeof *j);
	if (!j) {
		reply_error(r, 500, "internal", "out of memory");
		return;
	}
	j->p = p;
	p->refs++;
	j->create = create;
	snprintf(j->id, sizeof j->id, "%s", id ? id : "");
	snprintf(j->label, sizeof j->label, "%s", label ? label : "vmcrypt-kek");
	if (defer_call(r, key_work, key_done, j) < 0) {
		prov_put(r->m, p);
		free(j);
		reply_error(r, 500, "internal", "cannot start the call to the key provider");
	}
}

void api_key_create(struct req *r)
{
	key_start(r, true, NULL, json_string_value(json_object_get(r->body, "label")));
}

void api_key_get(struct req *r)
{
	key_start(r, false, r->param[1], NULL);
}
