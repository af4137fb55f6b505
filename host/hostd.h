/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt-hostd internals shared by its files. */
#ifndef VC_HOSTD_H
#define VC_HOSTD_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "request.h"
#include "vc_secmem.h"
#include "vc_tlscert.h"
#include "vc_uuid.h"

struct evhttp_request;
struct vm;

#define KEYS_MAX 65536        /* in the cache */
#define KEYS_PER_CALL 256     /* in one request (bodies stay under 64 KiB) */

struct cached_key {
	char provider[VC_REQ_NAME_MAX + 1];
	char key_id[VC_REQ_PARAM_MAX];
	struct vc_secret *key;
	struct cached_key *next;
};

struct hostd {
	char *data_dir, *listen;
	/* Disk servers: their sockets, pid files and logs; the I/O filter. */
	char *run_dir, *filter_path;
	/* Persistent state (host.json). */
	char host_id[VC_UUID_STR_LEN];
	bool claimed;
	uint8_t manager_fp[32];
	uint8_t token_hash[32];
	bool encryption_mode;
	/* Volatile: keys live only here, in locked memory. */
	struct cached_key *keys;
	size_t nkeys;
	char own_fp[VC_TLS_FP_LEN];
	SSL_CTX *ctx;
	char *datastore;
	struct vm *vms;
	/* The host key, wrapped (hostkey.c); empty until the manager sets it. */
	char hk_provider[VC_REQ_NAME_MAX + 1];
	char hk_key_id[VC_REQ_PARAM_MAX];
	char hk_wrapped[128];
};


struct hreq {
	struct hostd *h;
	struct evhttp_request *er;
	int method;
	struct vc_target t;
	json_t *body;
	const char *param[4];
	uint8_t peer_fp[32];
	bool have_peer;
};

void reply_json(struct hreq *r, int status, json_t *j);
void reply_error(struct hreq *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
struct cached_key *key_find(struct hostd *h, const char *prov, const char *id);
void key_drop(struct hostd *h, const char *prov, const char *id);
int state_save(struct hostd *h, struct vc_error *err);

/* hostkey.c */
extern const struct vc_field host_key_f[];
void h_host_key(struct hreq *r);
void h_host_dump(struct hreq *r);
/* The host key's KEK when it is missing from the cache: [{provider, key_id}]. */
json_t *host_key_needed(struct hostd *h);

/* VMs on the datastore (vms.c). */
int vms_load(struct hostd *h, struct vc_error *err);
void vms_free(struct hostd *h);
/* Whether an encrypted VM can be used: its KEK is in the cache. */
json_t *vms_json(struct hostd *h);
void h_vms_list(struct hreq *r);
void h_vm_create(struct hreq *r);
void h_vm_get(struct hreq *r);
void h_vm_encrypt_disk(struct hreq *r);
void h_vm_encrypt_finish(struct hreq *r);
void h_vm_export_disk(struct hreq *r);
void h_vm_add_disk(struct hreq *r);
void h_vm_rekey(struct hreq *r);
void h_vm_decrypt_disk(struct hreq *r);
void h_vm_decrypt_finish(struct hreq *r);
void h_vm_unregister(struct hreq *r);
void h_vm_register(struct hreq *r);
void h_vm_delete(struct hreq *r);
void h_vm_clone(struct hreq *r);
void h_vm_rekey_deep_disk(struct hreq *r);
/* power.c */
void h_vm_power_on(struct hreq *r);
void h_vm_power_off(struct hreq *r);
void h_vm_rekey_status(struct hreq *r);
extern const struct vc_field vm_create_f[], vm_encrypt_f[], vm_disk_f[], vm_register_f[],
	vm_clone_f[];

#endif
