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
#include "vc_ctl.h"

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
	char vtpm[32];                        /* "vtpm.vcf", or "" without a vTPM */
	struct vm_disk disks[DISKS_MAX];
	size_t ndisks;
	char error[VC_ERROR_MSG_MAX];         /* a folder that could not be read */
	bool powered;                         /* volatile: its disks are served */
	struct vm_srv srv[DISKS_MAX];
	struct vm_srv tpm;                    /* swtpm of the vTPM while on */
	struct rekey_job *job;                /* the last offline deep rekey */
	struct vm *next;
};

/* vmconf.c: vm.json. Parse into v (zeroed by the caller): -EBADMSG for
 * anything but a valid configuration; and the JSON of v. */
int vmconf_parse(json_t *j, struct vm *v);
json_t *vmconf_json(const struct vm *v);

/* vms.c */
struct vm *vm_find(struct hostd *h, const char *uuid);
/* The VM a call names (r->param[0]); NULL after a reply. _find: as long
 * as its folder could be read; _any: and no deep rekey is running on it
 * (any power state). */
struct vm *path_vm_find(struct hreq *r);
struct vm *path_vm_any(struct hreq *r);
/* Its disk r->param[1] into *n; false after a 404. */
bool path_disk(struct hreq *r, const struct vm *v, size_t *n);
void vm_path(struct hostd *h, const struct vm *v, const char *file, char *out, size_t len);
bool needs_key(const struct vm *v);
const struct vc_secret *cached(struct hostd *h, const char *prov, const char *id,
			       struct vc_error *err);
bool keys_present(struct hostd *h, const struct vm *v, struct vc_error *err);
/* The KEK a disk's own header names, from the cache. */
const struct vc_secret *disk_kek(struct hostd *h, int fd, const char *path,
				 struct vc_error *err);
json_t *vm_json(struct hostd *h, struct vm *v);
/* The VM key, unwrapped by the VM's KEK from the cache. */
int vm_key_get(struct hostd *h, const struct vm *v, struct vc_secret **vmkey,
	       struct vc_error *err);
/* Seal the plaintext read from in (offset to EOF) for purpose into the
 * VM's file name, replacing it atomically (a temporary file, fsync,
 * rename). */
int vm_file_seal(struct hostd *h, const struct vm *v, const struct vc_secret *vmkey,
		 const char *purpose, int in, const char *name, struct vc_error *err);

/* Unseal the VM's file name (sealed for purpose under its VM key) into
 * out. */
int vm_file_unseal(struct hostd *h, const struct vm *v, const char *purpose, const char *name,
		   int out, struct vc_error *err);

/* vtpm.c: the vTPM's state is swtpm's, sealed as the VM file vtpm.vcf
 * under the VM key; while the VM is on it lives in a private tmpfs
 * directory and swtpm serves it. */
/* Manufacture a new vTPM (swtpm_setup: TPM 2.0 with its EKs) for v. */
int vtpm_create(struct hostd *h, struct vm *v, struct vc_error *err);
/* Give dst (a clone) a copy of src's vTPM state under dst's VM key. */
int vtpm_copy(struct hostd *h, const struct vm *src, struct vm *dst, struct vc_error *err);
/* Start the VM's swtpm (power on); its state unsealed into tmpfs. */
int vtpm_start(struct hostd *h, struct vm *v, struct vc_error *err);
/* Stop it and seal its state back (power off); needs the VM key. */
int vtpm_stop(struct hostd *h, struct vm *v, struct vc_error *err);
/* After an agent restart: the VM's running swtpm, if any. */
bool vtpm_adopt(struct hostd *h, struct vm *v);
bool vtpm_alive(struct vm *v);
/* 409 and true when v has a vTPM: its state is never stored in the clear. */
bool vtpm_refuse_decrypt(struct hreq *r, const struct vm *v);

/* power.c */
#define VM_TPM ((size_t)-1)   /* run_file's unit of the vTPM */
int run_file(struct hostd *h, const struct vm *v, size_t n, const char *ext, char *out,
	     size_t len, struct vc_error *err);
void remove_run_files(struct hostd *h, const struct vm *v, size_t n);
/* A server's paths in the run directory (zeroing s first): its socket
 * (sock_ext), its control socket if ctl, its pid file and log. */
int srv_paths(struct hostd *h, const struct vm *v, size_t n, const char *sock_ext, bool ctl,
	      struct vm_srv *s, char pidf[PATH_MAX], char logf[PATH_MAX], struct vc_error *err);
bool srv_alive(struct vm_srv *s);
pid_t read_pid(const char *path);
/* Run argv, a program that daemonizes and writes pidf, its output
 * appended to logf and key (if any) readable on fd 3; wait until its
 * first process exited 0 and ready(arg) says the daemon serves; the
 * daemon's pid into s->pid. */
int daemon_start(const char *const *argv, const struct vc_secret *key, const char *pidf,
		 const char *logf, bool (*ready)(void *), void *arg, struct vm_srv *s,
		 struct vc_error *err);
void daemon_stop(struct vm_srv *s, const char *what);
/* In a forked child: stdin /dev/null, stdout and stderr to out, keyfd (if
 * >= 0) as fd 3, then exec argv. Does not return. */
void child_exec(const char *const *argv, int out, int keyfd) __attribute__((noreturn));
/* Wait for child pid until deadline (now_ms() time), its status into
 * *status; -ETIMEDOUT after killing it. */
int child_wait(pid_t pid, long long deadline, int *status);
/* A daemon left by an earlier agent: its pid file names a live process
 * called comm for which ready(arg) holds. */
bool daemon_adopt(struct vm_srv *s, const char *pidf, const char *comm,
		  bool (*ready)(void *), void *arg);
void pause_ms(long ms);
long long now_ms(void);
/* Disk servers left running by an earlier agent: adopted, or their stale
 * files removed. */
void power_adopt(struct hostd *h);
/* Stop every disk server (the agent's clean stop). */
void power_stop_all(struct hostd *h);
/* 409 and true when v is powered on (for calls that change its files). */
bool power_refuse_on(struct hreq *r, const struct vm *v);
/* Its "power" field and each disk's serving state into j (vm_json). */
void power_json(struct hostd *h, struct vm *v, json_t *j, bool detail);
/* The online deep rekey of a served disk (h_vm_rekey_deep_disk), and its
 * state. */
void power_rekey_deep(struct hreq *r, struct vm *v, size_t n);
void power_rekey_status(struct hreq *r, struct vm *v, size_t n);
/* Shallow rekey of a served disk by its filter: its data key rewrapped
 * under kek (known as key nk of provider np). */
int power_rekey_shallow(struct vm *v, size_t n, const struct vc_secret *kek, const char *np,
			const char *nk, struct vc_error *err);
json_t *rekey_status_json(const struct vc_ctl_status *st);

/* rekey.c: the deep rekey of a powered-off VM's disk runs on a thread of
 * its own, so that the agent keeps answering; the VM is busy meanwhile. */
struct rekey_job;
/* 409 and true while v has a deep rekey running (a finished one is
 * reaped first). */
bool vm_busy(struct hreq *r, struct vm *v);
/* Stop (between two steps: resumable) and free v's job. */
void rekey_job_end(struct vm *v);

#endif
