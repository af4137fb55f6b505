/* SPDX-License-Identifier: Apache-2.0 */
/* VMs through the manager: create (encrypted from the start with an
 * encryption policy: EncryptNew), encrypt a plaintext VM (Encrypt), their
 * live state, and the worker's reconciliation that brings hosts the keys
 * of their locked VMs. Keys travel from the provider to the host's key
 * cache over the pinned channel; the manager keeps key ids only. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "hostclient.h"
#include "vc_encode.h"
#include "vc_log.h"
#include "vc_uuid.h"

#define PUSH_BATCH 256

static const char *key_issue_get(struct mgr *m, const char *key_id);
struct host_ref;
static void fetch_one(struct mgr *m, struct host_ref *h, const char *prov, const char *kid,
		      json_t *batch, char *ids, size_t idslen);

/* ---- helpers ---- */
/* The message of a JSON error reply, or fallback. */
static const char *error_msg(json_t *resp, const char *fallback)
{
	const char *s = json_string_value(json_object_get(json_object_get(resp, "error"),
							  "message"));

	return s ? s : fallback;
}

static int default_provider(const struct vc_store_provider *p, void *ctx)
{
	if (p->is_default)
		snprintf(ctx, VC_REQ_NAME_MAX + 1, "%s", p->name);
	return 0;
}

/* A policy's encryption: *encrypt, and the provider to use into prov. */
static int policy_of(struct mgr *m, const char *name, bool *encrypt,
		     char prov[VC_REQ_NAME_MAX + 1], struct vc_error *err)
{
	struct vc_store_policy p;
	int ret = vc_store_policy_get(m->st, name, &p, err);

	if (ret < 0)
		return ret;
	*encrypt = p.encrypt;
	prov[0] = '\0';
	if (p.provider)
		snprintf(prov, VC_REQ_NAME_MAX + 1, "%s", p.provider);
	free(p.mem);
	if (*encrypt && !prov[0]) {
		ret = vc_store_provider_list(m->st, default_provider, prov, err);
		if (ret == 0 && !prov[0])
			ret = vc_error_set(err, -ENOENT, "policy '%s' uses the default key provider, "
					   "and there is none", name);
	}
	return ret;
}

/* A KEK as the host's key cache takes it. */
static json_t *key_entry(const char *prov, const char *key_id, const struct vc_secret *kek)
{
	char b64[64];
	json_t *j;

	vc_base64_encode(vc_secret_data(kek), vc_secret_len(kek), b64);
	j = json_pack("{s:s,s:s,s:s}", "provider", prov, "key_id", key_id, "key", b64);
	vc_wipe(b64, sizeof b64);
	return j;
}

static int push_keys(struct mgr *m, const char *address, const char *pin, json_t *keys,
		     struct vc_error *err)
{
	struct host_call c = { .address = address, .pin = pin, .method = "PUT",
			       .path = "/api/v1/keys" };
	int ret;

	c.body = json_pack("{s:O}", "keys", keys);
	ret = c.body ? host_call(m, &c, err) : vc_error_set(err, -ENOMEM, "out of memory");
	json_decref(c.body);
	if (ret == 0 && c.status != 200)
		ret = vc_error_set(err, -EIO, "host %s refused the keys: %s", address,
				   error_msg(c.resp, "?"));
	json_decref(c.resp);
	return ret;
}

/* Call the host; a non-2xx answer becomes an error with its message.
 * timeout_ms 0: two minutes. */
static int host_do_t(struct mgr *m, const char *address, const char *pin, const char *method,
		     const char *path, json_t *body, int timeout_ms, json_t **resp,
		     struct vc_error *err)
{
	struct host_call c = { .address = address, .pin = pin, .method = method, .path = path,
			       .body = body, .timeout_ms = timeout_ms ? timeout_ms : 120000 };
	int ret = host_call(m, &c, err);

	json_decref(body);
	if (ret == 0 && (c.status < 200 || c.status > 299))
		ret = vc_error_set(err, -EIO, "host %s: %s", address,
				   error_msg(c.resp, "refused"));
	if (ret == 0 && resp)
		*resp = c.resp;
	else
		json_decref(c.resp);
	return ret;
}

static int host_do(struct mgr *m, const char *address, const char *pin, const char *method,
		   const char *path, json_t *body, json_t **resp, struct vc_error *err)
{
	return host_do_t(m, address, pin, method, path, body, 0, resp, err);
}

/* A whole disk copied by the host (encrypt, decrypt, clone): at 50 MB/s,
 * the largest disk (1 TiB) takes six hours. */
#define COPY_TIMEOUT_MS (8 * 3600 * 1000)

/* A copy of what a task needs of a host, read under the lock. */
struct host_ref {
	char id[INV_ID_LEN];
	char address[300];
	char pin[65];
	bool mode;
};

static int host_ref(struct mgr *m, const char *id, struct host_ref *h, struct vc_error *err)
{
	struct vc_store_host sh;
	int ret = vc_store_host_get(m->st, id, &sh, err);

	if (ret < 0)
		return ret;
	snprintf(h->id, sizeof h->id, "%s", sh.id);
	snprintf(h->address, sizeof h->address, "%s", sh.address);
	snprintf(h->pin, sizeof h->pin, "%s", sh.thumbprint);
	h->mode = sh.encryption_mode;
	free(sh.mem);
	return 0;
}

/* What a task needs of a VM, copied under m->lock (the caller holds it):
 * the store's record may change once the lock is released. */
struct vm_ref {
	char uuid[VC_UUID_STR_LEN];
	char key_id[VC_KEYPROV_ID_MAX];       /* "" for a plaintext VM */
	char provider[VC_REQ_NAME_MAX + 1];
	struct host_ref host;
};

static int vm_ref_get(struct mgr *m, const char *id, struct vm_ref *out, struct vc_error *err)
{
	struct vc_store_vm v;
	int ret = vc_store_vm_get(m->st, id, &v, err);

	memset(out, 0, sizeof *out);
	if (ret < 0)
		return ret;
	snprintf(out->uuid, sizeof out->uuid, "%s", v.uuid);
	snprintf(out->key_id, sizeof out->key_id, "%s", v.key_id ? v.key_id : "");
	snprintf(out->provider, sizeof out->provider, "%s", v.provider ? v.provider : "");
	ret = host_ref(m, v.host, &out->host, err);
	free(v.mem);
	return ret;
}

/* Host encryption mode on, as vSphere does when a user allowed to
 * (Cryptographer.RegisterHost, checked at the request) first puts an
 * encrypted VM there. */
static int ensure_mode(struct mgr *m, struct mgr_task *t, struct host_ref *h,
		       struct vc_error *err)
{
	int ret;

	if (h->mode)
		return 0;
	ret = host_do(m, h->address, h->pin, "PUT", "/api/v1/host/encryption-mode",
		      json_pack("{s:b}", "enabled", 1), NULL, err);
	pthread_mutex_lock(&m->lock);
	if (ret == 0)
		ret = vc_store_host_set_encryption_mode(m->st, h->id, true, err);
	ev_log(m, t->user, "host.encryption-mode", h->id, NULL, NULL, ret == 0 ? EV_OK : EV_FAIL,
	       "enable host encryption mode on %s for an encrypted VM", h->address);
	pthread_mutex_unlock(&m->lock);
	h->mode = ret == 0;
	return ret;
}

/* A new KEK in the provider, pushed to the host's cache. */
static int new_kek(struct mgr *m, struct mgr_task *t, struct host_ref *h, const char *label,
		   char key_id[VC_KEYPROV_ID_MAX], struct vc_error *err)
{
	struct vc_secret *kek = NULL;
	json_t *keys;
	int ret = vc_keyprov_create_key(t->prov->kp, label, key_id, &kek, err);

	pthread_mutex_lock(&m->lock);
	ev_log(m, t->user, "key.create", NULL, t->prov->name, ret == 0 ? key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "%s", ret == 0 ? "created a KEK for a VM"
							  : vc_error_msg(err));
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		return ret;
	keys = json_array();
	json_array_append_new(keys, key_entry(t->prov->name, key_id, kek));
	vc_secret_free(kek);
	ret = push_keys(m, h->address, h->pin, keys, err);
	json_decref(keys);
	return ret;
}

static json_t *vm_json(const struct vc_store_vm *v, const char *name)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:b,s:o,s:o}", "id", v->id, "name", name, "host",
			 v->host, "uuid", v->uuid, "encrypted", v->encrypted, "provider",
			 jstr_or_null(v->provider), "key_id", jstr_or_null(v->key_id));
}

/* ---- create ---- */
static void run_create(struct mgr *m, struct mgr_task *t)
{
	json_t *a = t->arg, *resp = NULL, *body;
	const char *name = json_string_value(json_object_get(a, "name"));
	const char *parent = json_string_value(json_object_get(a, "parent"));
	bool encrypt = t->prov != NULL;
	struct vc_error err = { 0 };
	struct host_ref h;
	char key_id[VC_KEYPROV_ID_MAX] = "", uuid[VC_UUID_STR_LEN], id[INV_ID_LEN];
	struct vc_uuid u;
	int ret;

	task_progress(m, t, 5);
	pthread_mutex_lock(&m->lock);
	ret = host_ref(m, json_string_value(json_object_get(a, "host")), &h, &err);
	pthread_mutex_unlock(&m->lock);
	if (ret == 0)
		ret = vc_uuid_generate(&u, &err);
	vc_uuid_format(&u, uuid);
	if (ret == 0 && encrypt)
		ret = ensure_mode(m, t, &h, &err);
	if (ret == 0 && encrypt) {
		task_progress(m, t, 20);
		ret = new_kek(m, t, &h, name, key_id, &err);
	}
	if (ret == 0) {
		task_progress(m, t, 40);
		body = json_pack("{s:s,s:s,s:O}", "uuid", uuid, "name", name, "disks",
				 json_object_get(a, "disks"));
		if (body && encrypt)
			json_object_set_new(body, "encryption", json_pack("{s:s,s:s}", "provider",
									  t->prov->name, "key_id",
									  key_id));
		if (body && json_is_true(json_object_get(a, "vtpm")))
			json_object_set_new(body, "vtpm", json_true());
		ret = host_do(m, h.address, h.pin, "POST", "/api/v1/vms", body, &resp, &err);
	}
	pthread_mutex_lock(&m->lock);
	if (ret == 0) {
		struct req r = { .m = m };

		ret = vc_store_begin(m->st, &err);
		if (ret == 0)
			ret = inv_add(&r, parent, "vm", name, id, &err);
		if (ret == 0)
			ret = vc_store_vm_add(m->st, &(struct vc_store_vm){
				.id = id, .host = h.id, .uuid = uuid, .encrypted = encrypt,
				.provider = encrypt ? t->prov->name : NULL,
				.key_id = encrypt ? key_id : NULL }, &err);
		ret = vc_store_end(m->st, ret, &err);
		authz_invalidate(m);
	}
	ev_log(m, t->user, "vm.create", ret == 0 ? id : NULL, encrypt ? t->prov->name : NULL,
	       key_id[0] ? key_id : NULL, ret == 0 ? EV_OK : EV_FAIL, "%s VM '%s'%s on %s%s%s",
	       encrypt ? "created encrypted" : "created", name,
	       json_is_true(json_object_get(a, "vtpm")) ? " with a vTPM" : "", h.address,
	       ret ? ": " : "",
	       ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	json_decref(resp);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s,s:s,s:o}", "vm", id, "uuid", uuid, "key_id",
					    key_id[0] ? json_string(key_id) : json_null()), NULL);
}

/* The policy of a request: its provider (a reference for the task) when it
 * encrypts. Replies and returns < 0 on failure. */
static int request_policy(struct req *r, const char *policy, struct mgr_provider **prov,
			  const char *parent, enum vc_priv crypto_priv, const char *host_id)
{
	char pname[VC_REQ_NAME_MAX + 1];
	struct vc_store_host sh;
	struct vc_error err = { 0 };
	bool encrypt = false;
	int ret;

	*prov = NULL;
	if (!policy)
		return 0;
	ret = policy_of(r->m, policy, &encrypt, pname, &err);
	if (ret < 0) {
		reply_errno(r, ret == -ENOENT ? -EINVAL : ret, &err);
		return ret;
	}
	if (!encrypt)
		return 0;
	if (need_priv(r, crypto_priv, parent) < 0)
		return -EACCES;
	*prov = prov_find(r->m, pname);
	if (!*prov || !(*prov)->kp) {
		reply_error(r, 409, "conflict", "key provider '%s' is not available", pname);
		return -ENOENT;
	}
	ret = vc_store_host_get(r->m->st, host_id, &sh, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return ret;
	}
	ret = sh.encryption_mode ? 0 : need_priv(r, VC_PRIV_CRYPTO_REGISTER_HOST, host_id);
	free(sh.mem);
	return ret;
}

void api_vm_create(struct req *r)
{
	const char *parent = json_string_value(json_object_get(r->body, "parent"));
	const char *host = json_string_value(json_object_get(r->body, "host"));
	const char *policy = json_string_value(json_object_get(r->body, "policy"));
	struct mgr_provider *prov = NULL;
	struct vc_store_host sh;
	struct vc_error err = { 0 };
	char id[40];
	int ret;

	if (inv_check_place(r, parent, "vm") < 0)
		return;
	ret = vc_store_host_get(r->m->st, host, &sh, &err);
	if (ret < 0) {
		reply_error(r, 400, "bad_request", "no host '%s'", host);
		return;
	}
	free(sh.mem);
	if (request_policy(r, policy, &prov, parent, VC_PRIV_CRYPTO_ENCRYPT_NEW, host) < 0)
		return;
	/* vSphere's rule: a vTPM's state is kept only in an encrypted VM. */
	if (json_is_true(json_object_get(r->body, "vtpm")) && !prov) {
		reply_error(r, 400, "bad_request", "a vTPM needs an encrypted VM: give an "
			    "encrypting policy");
		return;
	}
	ret = task_queue(r->m, r->user, "vm.create", run_create, json_incref(r->body), prov, id,
			 &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 202, json_pack("{s:s}", "task", id));
}

/* ---- encrypt ---- */
static void run_encrypt(struct mgr *m, struct mgr_task *t)
{
	json_t *a = t->arg, *vm = NULL, *disks;
	const char *vm_id = json_string_value(json_object_get(a, "vm"));
	struct vc_error err = { 0 };
	struct vm_ref vr;
	char key_id[VC_KEYPROV_ID_MAX], path[200], name[140];
	size_t n = 0;
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vm_ref_get(m, vm_id, &vr, &err);
	/* A task cut short resumes with the key it had made. */
	memcpy(key_id, vr.key_id, sizeof key_id);
	snprintf(name, sizeof name, "%s", json_string_value(json_object_get(a, "name")));
	pthread_mutex_unlock(&m->lock);
	if (ret == 0)
		ret = ensure_mode(m, t, &vr.host, &err);
	if (ret == 0 && !key_id[0]) {
		ret = new_kek(m, t, &vr.host, name, key_id, &err);
		pthread_mutex_lock(&m->lock);
		if (ret == 0)
			ret = vc_store_vm_set_key(m->st, vm_id, false, t->prov->name, key_id, &err);
		pthread_mutex_unlock(&m->lock);
	}
	snprintf(path, sizeof path, "/api/v1/vms/%s", vr.uuid);
	if (ret == 0)
		ret = host_do(m, vr.host.address, vr.host.pin, "GET", path, NULL, &vm, &err);
	disks = json_object_get(vm, "disks");
	n = json_array_size(disks);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		task_progress(m, t, 10 + (int)(80 * i / (n ? n : 1)));
		snprintf(path, sizeof path, "/api/v1/vms/%s/disks/%zu/encrypt", vr.uuid, i);
		ret = host_do_t(m, vr.host.address, vr.host.pin, "POST", path,
				json_pack("{s:s,s:s}", "provider", t->prov->name, "key_id", key_id),
				COPY_TIMEOUT_MS, NULL, &err);
	}
	if (ret == 0) {
		task_progress(m, t, 95);
		snprintf(path, sizeof path, "/api/v1/vms/%s/encrypt", vr.uuid);
		ret = host_do(m, vr.host.address, vr.host.pin, "POST", path,
			      json_pack("{s:s,s:s}", "provider", t->prov->name, "key_id", key_id),
			      NULL, &err);
	}
	json_decref(vm);
	pthread_mutex_lock(&m->lock);
	if (ret == 0)
		ret = vc_store_vm_set_key(m->st, vm_id, true, t->prov->name, key_id, &err);
	ev_log(m, t->user, "vm.encrypt", vm_id, t->prov->name, key_id[0] ? key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "%s VM %s (%zu disks, nvram)%s%s",
	       ret == 0 ? "encrypted" : "failed to encrypt", vm_id, n, ret ? ": " : "",
	       ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s,s:s}", "vm", vm_id, "key_id", key_id), NULL);
}

void api_vm_encrypt(struct req *r)
{
	const char *policy = json_string_value(json_object_get(r->body, "policy"));
	struct mgr_provider *prov = NULL;
	struct vc_store_vm v;
	struct vc_store_object o;
	struct vc_error err = { 0 };
	char id[40];
	json_t *arg;
	int ret = vc_store_vm_get(r->m->st, r->param[0], &v, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	if (v.encrypted) {
		free(v.mem);
		reply_error(r, 409, "conflict", "VM %s is already encrypted", r->param[0]);
		return;
	}
	ret = request_policy(r, policy, &prov, r->param[0], VC_PRIV_CRYPTO_ENCRYPT, v.host);
	free(v.mem);
	if (ret < 0)
		return;
	if (!prov) {
		reply_error(r, 400, "bad_request", "policy '%s' does not encrypt", policy);
		return;
	}
	ret = vc_store_object_get(r->m->st, r->param[0], &o, &err);
	arg = ret == 0 ? json_pack("{s:s,s:s}", "vm", r->param[0], "name", o.name) : NULL;
	if (ret == 0)
		free(o.mem);
	ret = ret == 0 ? task_queue(r->m, r->user, "vm.encrypt", run_encrypt, arg, prov, id, &err)
		       : ret;
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 202, json_pack("{s:s}", "task", id));
}

/* ---- delete ---- */
struct del_job {
	struct vm_ref vr;
	char path[120], vm_id[INV_ID_LEN], name[VC_REQ_NAME_MAX + 1];
	int ret;
	struct vc_error err;
};

static void del_work(struct req *r, void *arg)
{
	struct del_job *j = arg;

	j->ret = host_do(r->m, j->vr.host.address, j->vr.host.pin, "DELETE", j->path, NULL, NULL,
			 &j->err);
}

static void del_done(struct req *r, void *arg)
{
	struct del_job *j = arg;
	struct vc_error err = { 0 };
	int ret = j->ret;

	/* Already gone from the host (deleted there before): still remove it
	 * here. */
	if (ret < 0 && strstr(vc_error_msg(&j->err), "no VM"))
		ret = 0;
	if (ret == 0)
		ret = vc_store_object_delete(r->m->st, j->vm_id, &err);
	else
		err = j->err;
	authz_invalidate(r->m);
	ev_log(r->m, r->user, "vm.delete", j->vm_id, NULL, j->vr.key_id[0] ? j->vr.key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "deleted VM '%s' and its files%s%s", j->name,
	       ret ? ": " : "", ret ? vc_error_msg(&err) : "");
	if (ret < 0)
		reply_error(r, 502, "host_error", "%s", vc_error_msg(&err));
	else
		reply_empty(r, 204);
	free(j);
}

void api_vm_delete(struct req *r)
{
	struct vc_store_object o;
	struct vc_error err = { 0 };
	struct del_job *j = calloc(1, sizeof *j);
	int ret = j ? vm_ref_get(r->m, r->param[0], &j->vr, &err)
		    : vc_error_set(&err, -ENOMEM, "out of memory");

	if (ret == 0) {
		snprintf(j->path, sizeof j->path, "/api/v1/vms/%s", j->vr.uuid);
		snprintf(j->vm_id, sizeof j->vm_id, "%s", r->param[0]);
		if (vc_store_object_get(r->m->st, r->param[0], &o, &err) == 0) {
			snprintf(j->name, sizeof j->name, "%s", o.name);
			free(o.mem);
		}
	}
	if (ret == 0 && defer_call(r, del_work, del_done, j) < 0)
		ret = vc_error_set(&err, -ENOMEM, "cannot start the call to the host");
	if (ret < 0) {
		free(j);
		reply_errno(r, ret, &err);
	}
}

/* ---- move to another host of the same datastore (RegisterVM) ---- */
static void run_move(struct mgr *m, struct mgr_task *t)
{
	const char *vm_id = json_string_value(json_object_get(t->arg, "vm"));
	const char *to = json_string_value(json_object_get(t->arg, "host"));
	struct vc_error err = { 0 };
	struct vm_ref vr;
	struct host_ref dst;
	char path[120], ids[400] = "";
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vm_ref_get(m, vm_id, &vr, &err);
	if (ret == 0)
		ret = host_ref(m, to, &dst, &err);
	pthread_mutex_unlock(&m->lock);
	if (ret == 0 && vr.key_id[0]) {
		json_t *batch = json_array();

		ret = ensure_mode(m, t, &dst, &err);
		/* Its key first, so that it is not locked on arrival. */
		if (ret == 0) {
			fetch_one(m, &dst, vr.provider, vr.key_id, batch, ids, sizeof ids);
			ret = json_array_size(batch) ? push_keys(m, dst.address, dst.pin, batch, &err)
						    : vc_error_set(&err, -ENOKEY, "cannot fetch key %s "
								   "from provider %s", vr.key_id, vr.provider);
		}
		json_decref(batch);
	}
	task_progress(m, t, 40);
	snprintf(path, sizeof path, "/api/v1/vms/%s/unregister", vr.uuid);
	if (ret == 0)
		ret = host_do(m, vr.host.address, vr.host.pin, "POST", path, NULL, NULL, &err);
	task_progress(m, t, 70);
	if (ret == 0) {
		ret = host_do(m, dst.address, dst.pin, "POST", "/api/v1/vms/register",
			      json_pack("{s:s}", "uuid", vr.uuid), NULL, &err);
		if (ret < 0) {
			/* Give it back to the host it came from. */
			struct vc_error e2 = { 0 };

			if (host_do(m, vr.host.address, vr.host.pin, "POST", "/api/v1/vms/register",
				    json_pack("{s:s}", "uuid", vr.uuid), NULL, &e2) < 0)
				vc_error_prefix(&err, "and it could not be registered back on %s: %s",
						vr.host.address, vc_error_msg(&e2));
		}
	}
	pthread_mutex_lock(&m->lock);
	if (ret == 0)
		ret = vc_store_vm_set_host(m->st, vm_id, dst.id, &err);
	ev_log(m, t->user, "vm.register", vm_id, vr.provider[0] ? vr.provider : NULL,
	       vr.key_id[0] ? vr.key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "moved VM %s to host %s%s%s", vm_id, to,
	       ret ? ": " : "", ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s,s:s}", "vm", vm_id, "host", to), NULL);
}

void api_vm_move(struct req *r)
{
	const char *to = json_string_value(json_object_get(r->body, "host"));
	struct vc_store_vm v;
	struct vc_store_host sh;
	struct vc_error err = { 0 };
	char id[40];
	int ret = vc_store_vm_get(r->m->st, r->param[0], &v, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	if (vc_store_host_get(r->m->st, to, &sh, &err) < 0) {
		free(v.mem);
		reply_error(r, 400, "bad_request", "no host '%s'", to);
		return;
	}
	/* As in vSphere: register on the target, and for an encrypted VM
	 * Cryptographer.RegisterVM there (and RegisterHost if its encryption
	 * mode is off). */
	ret = need_priv(r, VC_PRIV_VM_REGISTER, to);
	if (ret == 0 && v.key_id)
		ret = need_priv(r, VC_PRIV_CRYPTO_REGISTER_VM, to);
	if (ret == 0 && v.key_id && !sh.encryption_mode)
		ret = need_priv(r, VC_PRIV_CRYPTO_REGISTER_HOST, to);
	if (ret == 0 && !strcmp(v.host, to)) {
		reply_error(r, 409, "conflict", "VM %s is already on host %s", r->param[0], to);
		ret = -EEXIST;
	}
	free(v.mem);
	free(sh.mem);
	if (ret < 0)
		return;
	ret = task_queue(r->m, r->user, "vm.register", run_move,
			 json_pack("{s:s,s:s}", "vm", r->param[0], "host", to), NULL, id, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 202, json_pack("{s:s}", "task", id));
}

/* ---- clone (Clone): the clone gets its own keys ---- */
static void run_clone(struct mgr *m, struct mgr_task *t)
{
	json_t *a = t->arg, *body;
	const char *src_id = json_string_value(json_object_get(a, "vm"));
	const char *name = json_string_value(json_object_get(a, "name"));
	const char *parent = json_string_value(json_object_get(a, "parent"));
	struct vc_error err = { 0 };
	struct vm_ref src;
	char uuid[VC_UUID_STR_LEN], id[INV_ID_LEN] = "";
	char key_id[VC_KEYPROV_ID_MAX] = "", path[120];
	struct vc_uuid u;
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vm_ref_get(m, src_id, &src, &err);
	pthread_mutex_unlock(&m->lock);
	if (ret == 0)
		ret = vc_uuid_generate(&u, &err);
	vc_uuid_format(&u, uuid);
	task_progress(m, t, 10);
	if (ret == 0 && t->prov) {
		ret = ensure_mode(m, t, &src.host, &err);
		if (ret == 0)
			ret = new_kek(m, t, &src.host, name, key_id, &err);
	}
	task_progress(m, t, 30);
	if (ret == 0) {
		body = json_pack("{s:s,s:s}", "uuid", uuid, "name", name);
		if (body && t->prov)
			json_object_set_new(body, "encryption", json_pack("{s:s,s:s}", "provider",
									  t->prov->name, "key_id",
									  key_id));
		snprintf(path, sizeof path, "/api/v1/vms/%s/clone", src.uuid);
		ret = host_do_t(m, src.host.address, src.host.pin, "POST", path, body,
				COPY_TIMEOUT_MS, NULL, &err);
	}
	pthread_mutex_lock(&m->lock);
	if (ret == 0) {
		struct req r = { .m = m };

		ret = vc_store_begin(m->st, &err);
		if (ret == 0)
			ret = inv_add(&r, parent, "vm", name, id, &err);
		if (ret == 0)
			ret = vc_store_vm_add(m->st, &(struct vc_store_vm){
				.id = id, .host = src.host.id, .uuid = uuid, .encrypted = t->prov != NULL,
				.provider = t->prov ? t->prov->name : NULL,
				.key_id = t->prov ? key_id : NULL }, &err);
		ret = vc_store_end(m->st, ret, &err);
		authz_invalidate(m);
	}
	ev_log(m, t->user, "vm.clone", ret == 0 ? id : src_id, t->prov ? t->prov->name : NULL,
	       key_id[0] ? key_id : NULL, ret == 0 ? EV_OK : EV_FAIL,
	       "cloned VM %s (key %s) into '%s'%s%s%s%s", src_id,
	       src.key_id[0] ? src.key_id : "-", name,
	       key_id[0] ? " with its own key " : "", key_id, ret ? ": " : "",
	       ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s,s:s,s:o}", "vm", id, "uuid", uuid, "key_id",
					    key_id[0] ? json_string(key_id) : json_null()), NULL);
}

void api_vm_clone(struct req *r)
{
	const char *policy = json_string_value(json_object_get(r->body, "policy"));
	const char *parent = json_string_value(json_object_get(r->body, "parent"));
	struct mgr_provider *prov = NULL;
	struct vc_store_vm v;
	struct vc_error err = { 0 };
	char id[40];
	json_t *arg;
	int ret;

	if (inv_check_place(r, parent, "vm") < 0)
		return;
	ret = vc_store_vm_get(r->m->st, r->param[0], &v, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	/* Cloning an encrypted VM: Cryptographer.Clone on it; the clone is
	 * encrypted too, with a new key (the policy's provider, or the
	 * source's). */
	if (v.key_id)
		ret = need_priv(r, VC_PRIV_CRYPTO_CLONE, r->param[0]);
	if (ret == 0 && policy)
		ret = request_policy(r, policy, &prov, parent, VC_PRIV_CRYPTO_ENCRYPT_NEW, v.host);
	if (ret == 0 && !prov && v.key_id) {
		prov = prov_find(r->m, v.provider);
		if (!prov || !prov->kp) {
			reply_error(r, 409, "conflict", "key provider '%s' is not available",
				    v.provider);
			ret = -ENOENT;
		}
	}
	free(v.mem);
	if (ret < 0)
		return;
	arg = json_pack("{s:s,s:s,s:s}", "vm", r->param[0], "name",
			json_string_value(json_object_get(r->body, "name")), "parent", parent);
	ret = task_queue(r->m, r->user, "vm.clone", run_clone, arg, prov, id, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 202, json_pack("{s:s}", "task", id));
}

/* ---- decrypt (Decrypt) ---- */
static void run_decrypt(struct mgr *m, struct mgr_task *t)
{
	const char *vm_id = json_string_value(json_object_get(t->arg, "vm"));
	struct vc_error err = { 0 };
	struct vm_ref vr;
	char path[200];
	json_t *vm = NULL;
	size_t n = 0;
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vm_ref_get(m, vm_id, &vr, &err);
	pthread_mutex_unlock(&m->lock);
	snprintf(path, sizeof path, "/api/v1/vms/%s", vr.uuid);
	if (ret == 0)
		ret = host_do(m, vr.host.address, vr.host.pin, "GET", path, NULL, &vm, &err);
	n = json_array_size(json_object_get(vm, "disks"));
	json_decref(vm);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		task_progress(m, t, 5 + (int)(85 * i / (n ? n : 1)));
		snprintf(path, sizeof path, "/api/v1/vms/%s/disks/%zu/decrypt", vr.uuid, i);
		ret = host_do_t(m, vr.host.address, vr.host.pin, "POST", path, NULL,
				COPY_TIMEOUT_MS, NULL, &err);
	}
	if (ret == 0) {
		task_progress(m, t, 95);
		snprintf(path, sizeof path, "/api/v1/vms/%s/decrypt", vr.uuid);
		ret = host_do(m, vr.host.address, vr.host.pin, "POST", path, NULL, NULL, &err);
	}
	pthread_mutex_lock(&m->lock);
	if (ret == 0)
		ret = vc_store_vm_set_key(m->st, vm_id, false, NULL, NULL, &err);
	ev_log(m, t->user, "vm.decrypt", vm_id, vr.provider[0] ? vr.provider : NULL,
	       vr.key_id[0] ? vr.key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "%s VM %s (%zu disks, nvram)%s%s",
	       ret == 0 ? "decrypted" : "failed to decrypt", vm_id, n, ret ? ": " : "",
	       ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s}", "vm", vm_id), NULL);
}

void api_vm_decrypt(struct req *r)
{
	struct vc_store_vm v;
	struct vc_error err = { 0 };
	char id[40];
	int ret = vc_store_vm_get(r->m->st, r->param[0], &v, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	if (!v.key_id) {
		free(v.mem);
		reply_error(r, 409, "conflict", "VM %s is not encrypted", r->param[0]);
		return;
	}
	free(v.mem);
	ret = task_queue(r->m, r->user, "vm.decrypt", run_decrypt,
			 json_pack("{s:s}", "vm", r->param[0]), NULL, id, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 202, json_pack("{s:s}", "task", id));
}

/* ---- rekey (Recrypt, shallow) ---- */
static void run_rekey(struct mgr *m, struct mgr_task *t)
{
	const char *vm_id = json_string_value(json_object_get(t->arg, "vm"));
	struct vc_error err = { 0 };
	struct vm_ref vr;
	char key_id[VC_KEYPROV_ID_MAX] = "", path[120];
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vm_ref_get(m, vm_id, &vr, &err);
	pthread_mutex_unlock(&m->lock);
	task_progress(m, t, 10);
	if (ret == 0)
		ret = new_kek(m, t, &vr.host, json_string_value(json_object_get(t->arg, "name")), key_id,
			      &err);
	task_progress(m, t, 40);
	snprintf(path, sizeof path, "/api/v1/vms/%s/rekey", vr.uuid);
	if (ret == 0)
		ret = host_do(m, vr.host.address, vr.host.pin, "POST", path,
			      json_pack("{s:s,s:s}", "provider", t->prov->name, "key_id", key_id),
			      NULL, &err);
	pthread_mutex_lock(&m->lock);
	if (ret == 0)
		ret = vc_store_vm_set_key(m->st, vm_id, true, t->prov->name, key_id, &err);
	ev_log(m, t->user, "vm.rekey", vm_id, t->prov->name, key_id[0] ? key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "shallow rekey of VM %s from key %s to %s%s%s", vm_id,
	       vr.key_id, key_id[0] ? key_id : "-", ret ? ": " : "", ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s,s:s,s:s}", "vm", vm_id, "key_id", key_id,
					    "old_key_id", vr.key_id), NULL);
}

/* Deep: a new DEK for every disk under the same KEK, data re-encrypted.
 * The host answers at once and the task follows its progress to the end:
 * a disk in use (the VM powered on) is rekeyed by its server's I/O filter
 * while the guest writes, another one by a thread of the agent. */
static int rekey_wait(struct mgr *m, struct mgr_task *t, const struct vm_ref *vr, size_t i,
			     size_t n, json_t *st, struct vc_error *err)
{
	const struct timespec poll_every = { 0, 250 * 1000 * 1000 };
	char path[200];
	int ret = 0;

	snprintf(path, sizeof path, "/api/v1/vms/%s/disks/%zu/rekey", vr->uuid, i);
	json_incref(st);
	for (;;) {
		const char *state = json_string_value(json_object_get(st, "state"));
		json_int_t done = json_integer_value(json_object_get(st, "progress"));
		json_int_t total = json_integer_value(json_object_get(st, "total"));

		if (!state) {
			ret = vc_error_set(err, -EPROTO, "host %s: no rekey state", vr->host.address);
			break;
		}
		if (!strcmp(state, "done"))
			break;
		if (!strcmp(state, "failed")) {
			ret = vc_error_set(err, -EIO, "disk %zu: deep rekey failed: %s", i,
					   json_string_value(json_object_get(st, "error")));
			break;
		}
		if (strcmp(state, "running")) {
			ret = vc_error_set(err, -EINTR, "disk %zu: the deep rekey stopped (its server "
					   "or host stopped): run the rekey again to resume it", i);
			break;
		}
		if (total > 0)
			task_progress(m, t, 5 + (int)((90 * (json_int_t)i + 90 * done / total) /
						      (json_int_t)(n ? n : 1)));
		nanosleep(&poll_every, NULL);
		json_decref(st);
		st = NULL;
		ret = host_do(m, vr->host.address, vr->host.pin, "GET", path, NULL, &st, err);
		if (ret < 0)
			break;
	}
	json_decref(st);
	return ret;
}

static void run_rekey_deep(struct mgr *m, struct mgr_task *t)
{
	const char *vm_id = json_string_value(json_object_get(t->arg, "vm"));
	struct vc_error err = { 0 };
	struct vm_ref vr;
	char path[200];
	json_t *vm = NULL, *d, *resp;
	size_t i, n, done = 0, online = 0;
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vm_ref_get(m, vm_id, &vr, &err);
	pthread_mutex_unlock(&m->lock);
	snprintf(path, sizeof path, "/api/v1/vms/%s", vr.uuid);
	if (ret == 0)
		ret = host_do(m, vr.host.address, vr.host.pin, "GET", path, NULL, &vm, &err);
	n = json_array_size(json_object_get(vm, "disks"));
	json_array_foreach(json_object_get(vm, "disks"), i, d) {
		if (ret < 0)
			break;
		if (!json_is_true(json_object_get(d, "encrypted")))
			continue;
		task_progress(m, t, 5 + (int)(90 * i / (n ? n : 1)));
		snprintf(path, sizeof path, "/api/v1/vms/%s/disks/%zu/rekey-deep", vr.uuid, i);
		resp = NULL;
		ret = host_do(m, vr.host.address, vr.host.pin, "POST", path, NULL, &resp, &err);
		if (ret == 0 && json_is_true(json_object_get(resp, "online")))
			online++;
		if (ret == 0 && json_object_get(resp, "state"))
			ret = rekey_wait(m, t, &vr, i, n, resp, &err);
		json_decref(resp);
		done += ret == 0;
	}
	json_decref(vm);
	pthread_mutex_lock(&m->lock);
	ev_log(m, t->user, "vm.rekey", vm_id, vr.provider[0] ? vr.provider : NULL,
	       vr.key_id[0] ? vr.key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "deep rekey of VM %s: new data keys for %zu disks "
	       "(%zu in use) under key %s%s%s", vm_id, done, online, vr.key_id, ret ? ": " : "",
	       ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s,s:s,s:b,s:I,s:I}", "vm", vm_id, "key_id", vr.key_id,
					    "deep", 1, "disks", (json_int_t)done, "online",
					    (json_int_t)online), NULL);
}

/* ---- power on, power off ---- */
/* The host serves the VM's disks (through the I/O filter when encrypted);
 * an encrypted VM needs its keys in the host's cache, which the
 * reconciliation keeps filled. */
static void run_power(struct mgr *m, struct mgr_task *t)
{
	const char *vm_id = json_string_value(json_object_get(t->arg, "vm"));
	bool on = json_is_true(json_object_get(t->arg, "on"));
	struct vc_error err = { 0 };
	struct vm_ref vr;
	char path[200];
	json_t *live = NULL;
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vm_ref_get(m, vm_id, &vr, &err);
	pthread_mutex_unlock(&m->lock);
	task_progress(m, t, 10);
	snprintf(path, sizeof path, "/api/v1/vms/%s/power-%s", vr.uuid, on ? "on" : "off");
	if (ret == 0)
		ret = host_do(m, vr.host.address, vr.host.pin, "POST", path, NULL, &live, &err);
	pthread_mutex_lock(&m->lock);
	ev_log(m, t->user, on ? "vm.power-on" : "vm.power-off", vm_id,
	       vr.provider[0] ? vr.provider : NULL, vr.key_id[0] ? vr.key_id : NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "%s VM %s%s%s", ret == 0 ? (on ? "powered on" :
	       "powered off") : (on ? "failed to power on" : "failed to power off"), vm_id,
	       ret ? ": " : "", ret ? vc_error_msg(&err) : "");
	pthread_mutex_unlock(&m->lock);
	if (ret < 0)
		task_finish(m, t, NULL, vc_error_msg(&err));
	else
		task_finish(m, t, json_pack("{s:s,s:O}", "vm", vm_id, "live", live), NULL);
	json_decref(live);
}

static void vm_power(struct req *r, bool on)
{
	struct vc_store_vm v;
	struct vc_error err = { 0 };
	char id[40];
	int ret = vc_store_vm_get(r->m->st, r->param[0], &v, &err);

	if (ret == 0) {
		free(v.mem);
		ret = task_queue(r->m, r->user, on ? "vm.power-on" : "vm.power-off", run_power,
				 json_pack("{s:s,s:b}", "vm", r->param[0], "on", on), NULL, id, &err);
	}
	if (ret < 0)
		reply_errno(r, ret, &err);
	else
		reply_json(r, 202, json_pack("{s:s}", "task", id));
}

void api_vm_power_on(struct req *r)
{
	vm_power(r, true);
}

void api_vm_power_off(struct req *r)
{
	vm_power(r, false);
}

void api_vm_rekey(struct req *r)
{
	const char *policy = json_string_value(json_object_get(r->body, "policy"));
	struct mgr_provider *prov = NULL;
	struct vc_store_vm v;
	struct vc_store_object o;
	struct vc_error err = { 0 };
	char id[40];
	json_t *arg = NULL;
	int ret = vc_store_vm_get(r->m->st, r->param[0], &v, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	if (!v.encrypted || !v.provider) {
		free(v.mem);
		reply_error(r, 409, "conflict", "VM %s is not encrypted", r->param[0]);
		return;
	}
	if (json_is_true(json_object_get(r->body, "deep"))) {
		free(v.mem);
		if (policy) {
			reply_error(r, 400, "bad_request", "a deep rekey keeps the VM's key: no policy");
			return;
		}
		ret = task_queue(r->m, r->user, "vm.rekey", run_rekey_deep,
				 json_pack("{s:s}", "vm", r->param[0]), NULL, id, &err);
		if (ret < 0)
			reply_errno(r, ret, &err);
		else
			reply_json(r, 202, json_pack("{s:s}", "task", id));
		return;
	}
	/* The policy's provider, or the one the VM uses now. */
	if (policy)
		ret = request_policy(r, policy, &prov, r->param[0], VC_PRIV_CRYPTO_RECRYPT, v.host);
	else
		prov = prov_find(r->m, v.provider);
	free(v.mem);
	if (ret < 0)
		return;
	if (!prov || !prov->kp) {
		reply_error(r, 409, "conflict", "the key provider for the new key is not available");
		return;
	}
	ret = vc_store_object_get(r->m->st, r->param[0], &o, &err);
	if (ret == 0) {
		arg = json_pack("{s:s,s:s}", "vm", r->param[0], "name", o.name);
		free(o.mem);
		ret = task_queue(r->m, r->user, "vm.rekey", run_rekey, arg, prov, id, &err);
	}
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 202, json_pack("{s:s}", "task", id));
}

/* ---- add a disk (AddDisk on an encrypted VM) ---- */
struct disk_job {
	struct vm_ref vr;
	char path[120];
	char vm_id[INV_ID_LEN];
	json_int_t size;
	json_t *live;
	int ret;
	struct vc_error err;
};

static void disk_work(struct req *r, void *arg)
{
	struct disk_job *j = arg;

	j->ret = host_do(r->m, j->vr.host.address, j->vr.host.pin, "POST", j->path,
			 json_pack("{s:I}", "size", j->size), &j->live, &j->err);
}

static void disk_done(struct req *r, void *arg)
{
	struct disk_job *j = arg;

	ev_log(r->m, r->user, "vm.add-disk", j->vm_id, j->vr.provider[0] ? j->vr.provider : NULL,
	       j->vr.key_id[0] ? j->vr.key_id : NULL, j->ret == 0 ? EV_OK : EV_FAIL,
	       "added a %lld-byte %s disk to VM %s%s%s", (long long)j->size,
	       j->vr.key_id[0] ? "encrypted" : "plaintext", j->vm_id, j->ret ? ": " : "",
	       j->ret ? vc_error_msg(&j->err) : "");
	if (j->ret < 0)
		reply_error(r, 502, "host_error", "%s", vc_error_msg(&j->err));
	else
		reply_json(r, 201, json_incref(j->live));
	json_decref(j->live);
	free(j);
}

void api_vm_add_disk(struct req *r)
{
	struct vc_error err = { 0 };
	struct disk_job *j = calloc(1, sizeof *j);
	int ret = j ? vm_ref_get(r->m, r->param[0], &j->vr, &err)
		    : vc_error_set(&err, -ENOMEM, "out of memory");

	/* A disk of an encrypted VM is encrypted: Cryptographer.AddDisk. */
	if (ret == 0 && j->vr.key_id[0] && need_priv(r, VC_PRIV_CRYPTO_ADD_DISK, r->param[0]) < 0) {
		free(j);
		return;
	}
	if (ret == 0) {
		snprintf(j->path, sizeof j->path, "/api/v1/vms/%s/disks", j->vr.uuid);
		snprintf(j->vm_id, sizeof j->vm_id, "%s", r->param[0]);
		j->size = json_integer_value(json_object_get(r->body, "size"));
	}
	if (ret == 0 && defer_call(r, disk_work, disk_done, j) < 0)
		ret = vc_error_set(&err, -ENOMEM, "cannot start the call to the host");
	if (ret < 0) {
		free(j);
		reply_errno(r, ret, &err);
	}
}

/* ---- reading ---- */
struct list_ctx {
	struct mgr *m;
	json_t *arr;
};

static int vm_item(const struct vc_store_vm *v, void *ctx)
{
	struct list_ctx *c = ctx;
	struct vc_store_object o;
	struct vc_error err = { 0 };

	if (vc_store_object_get(c->m->st, v->id, &o, &err) < 0)
		return 0;
	json_array_append_new(c->arr, vm_json(v, o.name));
	free(o.mem);
	return 0;
}

void api_vms_list(struct req *r)
{
	struct list_ctx c = { r->m, json_array() };
	struct vc_error err = { 0 };
	int ret = vc_store_vm_list(r->m->st, NULL, vm_item, &c, &err);

	if (ret < 0) {
		json_decref(c.arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "vms", c.arr));
}

struct get_job {
	struct host_ref h;
	char path[120];
	json_t *vm;        /* what the store says */
	char key_id[VC_KEYPROV_ID_MAX];
	json_t *live;
	int ret;
	struct vc_error err;
};

static void get_work(struct req *r, void *arg)
{
	struct get_job *j = arg;

	j->ret = host_do(r->m, j->h.address, j->h.pin, "GET", j->path, NULL, &j->live, &j->err);
}

static void get_done(struct req *r, void *arg)
{
	struct get_job *j = arg;
	json_t *out = j->vm, *live = j->live;

	if (j->ret == 0) {
		json_object_set_new(out, "state", json_incref(json_object_get(live, "state")));
		json_object_set_new(out, "disks", json_incref(json_object_get(live, "disks")));
		static const char *const copy[] = { "power", "vtpm", "tpm" };

		for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++)
			if (json_object_get(live, copy[i]))
				json_object_set_new(out, copy[i],
						    json_incref(json_object_get(live, copy[i])));
		if (json_object_get(live, "reason")) {
			const char *why = j->key_id[0] ? key_issue_get(r->m, j->key_id) : NULL;
			char msg[1024];

			/* The host knows the key is missing; the manager knows why. */
			snprintf(msg, sizeof msg, "%s%s%s",
				 json_string_value(json_object_get(live, "reason")),
				 why ? "; cannot fetch it: " : "", why ? why : "");
			json_object_set_new(out, "reason", json_string(msg));
		}
	} else {
		json_object_set_new(out, "state", json_string("unknown"));
		json_object_set_new(out, "reason", json_string(vc_error_msg(&j->err)));
	}
	reply_json(r, 200, out);
	json_decref(live);
	free(j);
}

void api_vm_get(struct req *r)
{
	struct vc_store_vm v;
	struct vc_store_object o;
	struct vc_error err = { 0 };
	struct get_job *j = calloc(1, sizeof *j);
	int ret = j ? vc_store_vm_get(r->m->st, r->param[0], &v, &err)
		    : vc_error_set(&err, -ENOMEM, "out of memory");

	if (ret < 0) {
		free(j);
		reply_errno(r, ret, &err);
		return;
	}
	ret = vc_store_object_get(r->m->st, v.id, &o, &err);
	if (ret == 0) {
		ret = host_ref(r->m, v.host, &j->h, &err);
		j->vm = vm_json(&v, o.name);
		free(o.mem);
	}
	if (ret == 0) {
		snprintf(j->path, sizeof j->path, "/api/v1/vms/%s", v.uuid);
		if (v.key_id)
			snprintf(j->key_id, sizeof j->key_id, "%s", v.key_id);
	}
	free(v.mem);
	if (ret == 0 && defer_call(r, get_work, get_done, j) < 0)
		ret = vc_error_set(&err, -ENOMEM, "cannot start the call to the host");
	if (ret < 0) {
		json_decref(j->vm);
		free(j);
		reply_errno(r, ret, &err);
	}
}

/* ---- reconciliation (worker thread, no lock held on entry) ---- */
/* Record (msg) or clear (msg NULL) why key_id could not be pushed; caller
 * holds m->lock. */
static void key_issue_set(struct mgr *m, const char *key_id, const char *msg)
{
	struct key_issue **pp = &m->key_issues, *k;

	while (*pp && strcmp((*pp)->key_id, key_id))
		pp = &(*pp)->next;
	if (!msg) {
		if ((k = *pp)) {
			*pp = k->next;
			free(k);
		}
		return;
	}
	if (!*pp && (*pp = calloc(1, sizeof **pp)))
		snprintf((*pp)->key_id, sizeof (*pp)->key_id, "%s", key_id);
	if (*pp)
		snprintf((*pp)->msg, sizeof (*pp)->msg, "%s", msg);
}

static const char *key_issue_get(struct mgr *m, const char *key_id)
{
	for (struct key_issue *k = m->key_issues; k; k = k->next)
		if (!strcmp(k->key_id, key_id))
			return k->msg;
	return NULL;
}

void key_issues_free(struct mgr *m)
{
	while (m->key_issues) {
		struct key_issue *k = m->key_issues;

		m->key_issues = k->next;
		free(k);
	}
}

struct host_list {
	struct host_ref *h;
	size_t n, cap;
};

static int collect_host(const struct vc_store_host *sh, void *ctx)
{
	struct host_list *l = ctx;

	if (!sh->encryption_mode)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct host_ref *nh = realloc(l->h, cap * sizeof *nh);

		if (!nh)
			return -ENOMEM;
		l->h = nh;
		l->cap = cap;
	}
	snprintf(l->h[l->n].id, sizeof l->h[l->n].id, "%s", sh->id);
	snprintf(l->h[l->n].address, sizeof l->h[l->n].address, "%s", sh->address);
	snprintf(l->h[l->n].pin, sizeof l->h[l->n].pin, "%s", sh->thumbprint);
	l->n++;
	return 0;
}

/* Fetch one key (a reference on its provider meanwhile) into batch. */
static void fetch_one(struct mgr *m, struct host_ref *h, const char *prov, const char *kid,
		      json_t *batch, char *ids, size_t idslen)
{
	struct mgr_provider *p;
	struct vc_secret *kek = NULL;
	struct vc_error err = { 0 };
	int ret;

	pthread_mutex_lock(&m->lock);
	p = prov_find(m, prov);
	if (p)
		p->refs++;
	pthread_mutex_unlock(&m->lock);
	ret = p && p->kp ? vc_keyprov_get_key(p->kp, kid, &kek, &err) : -ENOENT;
	if (ret == 0) {
		size_t l = strlen(ids);

		json_array_append_new(batch, key_entry(prov, kid, kek));
		if (l + strlen(kid) + 2 < idslen)
			snprintf(ids + l, idslen - l, "%s%s", l ? " " : "", kid);
	}
	vc_secret_free(kek);
	pthread_mutex_lock(&m->lock);
	prov_put(m, p);
	if (ret < 0) {
		char msg[512];

		if (p)
			snprintf(msg, sizeof msg, "%s", vc_error_msg(&err));
		else
			snprintf(msg, sizeof msg, "no key provider %s", prov);
		if (!key_issue_get(m, kid) || strcmp(key_issue_get(m, kid), msg))
			vc_log(VC_LOG_WARN, "host %s: key %s for a locked VM: %s", h->address, kid,
			       msg);
		key_issue_set(m, kid, msg);
	} else {
		key_issue_set(m, kid, NULL);
	}
	pthread_mutex_unlock(&m->lock);
}

/* Fetch the KEK of every locked VM of one host and push them in batches. */
static void reconcile_host(struct mgr *m, struct host_ref *h)
{
	json_t *resp = NULL, *v, *batch = json_array();
	struct vc_error err = { 0 };
	size_t i, pushed = 0;
	char ids[400] = "";

	if (host_do(m, h->address, h->pin, "GET", "/api/v1/vms?state=locked", NULL, &resp,
		    &err) < 0) {
		/* Said once per change, not once a second. */
		pthread_mutex_lock(&m->lock);
		if (!key_issue_get(m, h->id) || strcmp(key_issue_get(m, h->id), vc_error_msg(&err)))
			vc_log(VC_LOG_WARN, "host %s: cannot list its locked VMs: %s", h->address,
			       vc_error_msg(&err));
		key_issue_set(m, h->id, vc_error_msg(&err));
		pthread_mutex_unlock(&m->lock);
		json_decref(batch);
		return;
	}
	pthread_mutex_lock(&m->lock);
	key_issue_set(m, h->id, NULL);
	pthread_mutex_unlock(&m->lock);
	json_array_foreach(json_object_get(resp, "vms"), i, v) {
		json_t *need, *k;
		size_t ki;

		if (!json_is_string(json_object_get(v, "state")) ||
		    strcmp(json_string_value(json_object_get(v, "state")), "locked"))
			continue;
		need = json_object_get(v, "keys_needed");
		json_array_foreach(need, ki, k) {
			const char *prov = json_string_value(json_object_get(k, "provider"));
			const char *kid = json_string_value(json_object_get(k, "key_id"));

			if (prov && kid)
				fetch_one(m, h, prov, kid, batch, ids, sizeof ids);
		}
		if (json_array_size(batch) >= PUSH_BATCH - 1) {
			if (push_keys(m, h->address, h->pin, batch, &err) == 0)
				pushed += json_array_size(batch);
			json_array_clear(batch);
		}
	}
	/* The host key's KEK, so that dumps can be written again. */
	json_array_foreach(json_object_get(resp, "host_keys_needed"), i, v) {
		const char *prov = json_string_value(json_object_get(v, "provider"));
		const char *kid = json_string_value(json_object_get(v, "key_id"));

		if (prov && kid && json_array_size(batch) < PUSH_BATCH)
			fetch_one(m, h, prov, kid, batch, ids, sizeof ids);
	}
	if (json_array_size(batch) && push_keys(m, h->address, h->pin, batch, &err) == 0)
		pushed += json_array_size(batch);
	if (pushed) {
		pthread_mutex_lock(&m->lock);
		ev_log(m, NULL, "host.keys", h->id, NULL, pushed == 1 ? ids : NULL, EV_OK,
		       "pushed %zu keys of locked VMs to host %s: %s", pushed, h->address, ids);
		pthread_mutex_unlock(&m->lock);
	}
	json_decref(batch);
	json_decref(resp);
}

void reconcile_hosts(struct mgr *m)
{
	struct host_list l = { 0 };
	struct vc_error err = { 0 };
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = vc_store_host_list(m->st, collect_host, &l, &err);
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; ret == 0 && i < l.n; i++)
		reconcile_host(m, &l.h[i]);
	free(l.h);
}
