/* SPDX-License-Identifier: Apache-2.0 */
/* A VM of the host's datastore, shared by vms.c (its files) and power.c
 * (its disk servers while it is powered on). */
#ifndef VC_HOSTD_VM_H
#define VC_HOSTD_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "hostd.h"

#define DISKS_MAX 16
#define DISK_MAX_BYTES ((uint64_t)1 << 40)
#define NVRAM_BYTES (128 * 1024)

struct vm_disk {
	char file[32];
	uint64_t size;
	bool encrypted;
};

/* One disk's server (nbdkit, with the I/O filter when encrypted) while
 * the VM is on. nbdkit daemonizes, so it outlives a crashed agent,
 * which adopts it again at start (pid file, control socket). */
struct vm_srv {
	pid_t pid;                            /* 0: none */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];   /* NBD */
	char ctl[sizeof(((struct sockaddr_un *)0)->sun_path)];    /* control */
};

struct vm {
	char uuid[VC_UUID_STR_LEN];
	char name[VC_REQ_NAME_MAX + 1];
	bool encrypted;                       /* VM key made, nvram sealed */
	char provider[VC_REQ_NAME_MAX + 1];   /* its KEK, once it has one */
	char key_id[VC_REQ_PARAM_MAX];
	char wrapped_key[128];                /* base64 of the wrapped VM key */
	char next_provider[VC_REQ_NAME_MAX + 1]; /* a shallow rekey under way */
	char next_key_id[VC_REQ_PARAM_MAX];
	char nvram[32];
	struct vm_disk disks[DISKS_MAX];
	size_t ndisks;
	char error[VC_ERROR_MSG_MAX];         /* a folder that could not be read */
	bool powered;                         /* volatile: its disks are served */
	struct vm_srv srv[DISKS_MAX];
	struct vm *next;
};

/* vms.c */
struct vm *vm_find(struct hostd *h, const char *uuid);
/* The VM a call names (r->param[0]), in any power state; NULL after a reply. */
struct vm *path_vm_any(struct hreq *r);
void vm_path(struct hostd *h, const struct vm *v, const char *file, char *out, size_t len);
bool needs_key(const struct vm *v);
const struct vc_secret *cached(struct hostd *h, const char *prov, const char *id,
			       struct vc_error *err);
bool keys_present(struct hostd *h, const struct vm *v, struct vc_error *err);
json_t *vm_json(struct hostd *h, struct vm *v);

/* power.c */
/* Disk servers left running by an earlier agent: adopted, or their stale
 * files removed. */
void power_adopt(struct hostd *h);
/* Stop every disk server (the agent's clean stop). */
void power_stop_all(struct hostd *h);
/* 409 and true when v is powered on (for calls that change its files). */
bool power_refuse_on(struct hreq *r, const struct vm *v);
/* Its "power" field and each disk's serving state into j (vm_json). */
void power_json(struct hostd *h, struct vm *v, json_t *j, bool detail);
/* The online deep rekey of a served disk (h_vm_rekey_deep_disk). */
void power_rekey_deep(struct hreq *r, struct vm *v, size_t n);

#endif
