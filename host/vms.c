/* SPDX-License-Identifier: Apache-2.0 */
/* VMs on the host's datastore: one folder per VM with vm.json (plaintext
 * but for its wrapped VM key), disks in the vmcrypt format (or raw while
 * plaintext), nvram as an encrypted VM file (or raw). Every change to a
 * folder ends with an atomic replace of vm.json, so a VM is always in one
 * consistent state; a crash leaves at most a stray temporary file. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "hostd.h"
#include "vm.h"
#include "vc_crypto.h"
#include "vc_disk.h"
#include "vc_encode.h"
#include "vc_fileio.h"
#include "vc_json.h"
#include "vc_log.h"
#include "vc_vmfile.h"
#include "vc_wrap.h"

#define EXPORT_MAX ((uint64_t)256 << 20)
#define COPY_CHUNK ((size_t)1 << 20)
#define VM_KEY_FORMAT "vmcrypt-vm-key/1"

static void vm_dir(struct hostd *h, const struct vm *v, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", h->datastore, v->uuid);
}

void vm_path(struct hostd *h, const struct vm *v, const char *file, char *out,
		    size_t len)
{
	snprintf(out, len, "%s/%s/%s", h->datastore, v->uuid, file);
}

bool needs_key(const struct vm *v)
{
	if (v->encrypted)
		return true;
	for (size_t i = 0; i < v->ndisks; i++)
		if (v->disks[i].encrypted)
			return true;
	return false;
}

const struct vc_secret *cached(struct hostd *h, const char *prov, const char *id,
				      struct vc_error *err)
{
	struct cached_key *k = prov[0] ? key_find(h, prov, id) : NULL;

	if (!k) {
		vc_error_set(err, -ENOKEY, "key %s of provider %s is not in the host's key cache "
			     "(the manager pushes it when the provider can be reached)", id, prov);
		return NULL;
	}
	return k->key;
}

/* The VM's KEK from the cache, or NULL with the reason in err. */
static const struct vc_secret *vm_kek(struct hostd *h, const struct vm *v, struct vc_error *err)
{
	return cached(h, v->provider, v->key_id, err);
}

int vm_key_get(struct hostd *h, const struct vm *v, struct vc_secret **vmkey,
	       struct vc_error *err)
{
	struct vc_uuid u;
	struct vc_binding b = { .format = VM_KEY_FORMAT, .provider = v->provider,
				.key_id = v->key_id };
	const struct vc_secret *kek = vm_kek(h, v, err);
	uint8_t wrapped[128];
	size_t wlen = 0;

	*vmkey = NULL;
	if (!kek)
		return -ENOKEY;
	if (vc_uuid_parse(v->uuid, &u) < 0 ||
	    vc_base64_decode(v->wrapped_key, strlen(v->wrapped_key), wrapped, sizeof wrapped,
			     &wlen) < 0)
		return vc_error_set(err, -EBADMSG, "VM %s: damaged wrapped VM key", v->uuid);
	b.object = u.b;
	return vc_unwrap_key(kek, &b, wrapped, wlen, vmkey, err);
}

/* Every key the VM needs: its KEK and, during a rekey, the next one. */
bool keys_present(struct hostd *h, const struct vm *v, struct vc_error *err)
{
	if (!vm_kek(h, v, err))
		return false;
	return !v->next_key_id[0] || cached(h, v->next_provider, v->next_key_id, err);
}

/* The KEK a disk's own header names (disks are self-describing, so a
 * rekey cut short leaves each disk readable with the key it names). */
const struct vc_secret *disk_kek(struct hostd *h, int fd, const char *path,
					struct vc_error *err)
{
	struct vc_file f = { .fd = fd, .name = path };
	struct vc_disk_io io;
	struct vc_disk_info in;

	vc_file_io(&f, &io);
	if (vc_disk_inspect(&io, &in, err) < 0)
		return NULL;
	return cached(h, in.slot[0].provider, in.slot[0].key_id, err);
}

static json_t *vm_json_full(struct hostd *h, struct vm *v, bool detail)
{
	struct vc_error err = { 0 };
	json_t *disks = json_array(), *j;
	const char *state = "ready";

	if (v->error[0])
		state = "error";
	else if (needs_key(v) && !keys_present(h, v, &err))
		state = "locked";
	for (size_t i = 0; i < v->ndisks; i++)
		json_array_append_new(disks, json_pack("{s:I,s:s,s:I,s:b}", "index", (json_int_t)i,
						       "file", v->disks[i].file, "size",
						       (json_int_t)v->disks[i].size, "encrypted",
						       v->disks[i].encrypted));
	j = json_pack("{s:s,s:s,s:b,s:o,s:o,s:s,s:o,s:s}", "uuid", v->uuid, "name", v->name,
		      "encrypted", v->encrypted, "provider", v->provider[0] ? json_string(v->provider)
									   : json_null(),
		      "key_id", v->key_id[0] ? json_string(v->key_id) : json_null(), "state", state,
		      "disks", disks, "nvram", v->nvram);
	json_object_set_new(j, "vtpm", json_boolean(v->vtpm[0]));
	if (needs_key(v)) {
		json_t *need = json_array();

		json_array_append_new(need, json_pack("{s:s,s:s}", "provider", v->provider,
						      "key_id", v->key_id));
		if (v->next_key_id[0])
			json_array_append_new(need, json_pack("{s:s,s:s}", "provider",
							      v->next_provider, "key_id",
							      v->next_key_id));
		json_object_set_new(j, "keys_needed", need);
	}
	if (v->error[0])
		json_object_set_new(j, "reason", json_string(v->error));
	else if (!strcmp(state, "locked"))
		json_object_set_new(j, "reason", json_string(vc_error_msg(&err)));
	power_json(h, v, j, detail);
	return j;
}

json_t *vm_json(struct hostd *h, struct vm *v)
{
	return vm_json_full(h, v, false);
}

json_t *vms_json(struct hostd *h)
{
	json_t *arr = json_array();

	for (struct vm *v = h->vms; v; v = v->next)
		json_array_append_new(arr, vm_json(h, v));
	return arr;
}

/* ---- vm.json ---- */
static int write_file_atomic(const char *path, const void *data, size_t len,
			     struct vc_error *err)
{
	char tmp[PATH_MAX + 8];
	int fd, ret = 0;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return vc_error_errno(err, errno, "cannot write %s", tmp);
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0)
		ret = vc_error_errno(err, errno, "cannot write %s", tmp);
	if (close(fd) < 0 && ret == 0)
		ret = vc_error_errno(err, errno, "cannot write %s", tmp);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = vc_error_errno(err, errno, "cannot replace %s", path);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int vm_file_seal(struct hostd *h, const struct vm *v, const struct vc_secret *vmkey,
		 const char *purpose, int in, const char *name, struct vc_error *err)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], dir[PATH_MAX];
	int out, dfd, ret;

	vm_path(h, v, name, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0)
		return vc_error_errno(err, errno, "cannot write %s", tmp);
	ret = vc_vmfile_seal_fd(vmkey, purpose, 0, in, out, NULL, err);
	if (ret == 0 && fsync(out) < 0)
		ret = vc_error_errno(err, errno, "cannot sync %s", tmp);
	close(out);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = vc_error_errno(err, errno, "cannot replace %s", path);
	if (ret < 0) {
		unlink(tmp);
		return ret;
	}
	vm_dir(h, v, dir, sizeof dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) < 0)
			ret = vc_error_errno(err, errno, "cannot sync %s", dir);
		close(dfd);
	}
	return ret;
}

int vm_file_unseal(struct hostd *h, const struct vm *v, const char *purpose, const char *name,
		   int out, struct vc_error *err)
{
	struct vc_secret *vmkey = NULL;
	char path[PATH_MAX];
	int in = -1, ret = vm_key_get(h, v, &vmkey, err);

	vm_path(h, v, name, path, sizeof path);
	if (ret == 0) {
		in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (in < 0)
			ret = vc_error_errno(err, errno, "cannot read %s", path);
	}
	if (ret == 0)
		ret = vc_vmfile_open_fd(vmkey, purpose, in, out, NULL, err);
	if (ret == 0 && fsync(out) < 0 && errno != EINVAL)
		ret = vc_error_errno(err, errno, "cannot sync the plaintext of %s", path);
	if (in >= 0)
		close(in);
	vc_secret_free(vmkey);
	return ret;
}

static int vm_save(struct hostd *h, const struct vm *v, struct vc_error *err)
{
	char path[PATH_MAX], dir[PATH_MAX];
	json_t *j;
	char *s;
	int ret, dfd;

	j = vmconf_json(v);
	s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (!s)
		return vc_error_set(err, -ENOMEM, "out of memory");
	vm_path(h, v, "vm.json", path, sizeof path);
	ret = write_file_atomic(path, s, strlen(s), err);
	vc_json_free_dump(s);
	/* The rename is durable once the directory is. */
	vm_dir(h, v, dir, sizeof dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) < 0 && ret == 0)
			ret = vc_error_errno(err, errno, "cannot sync %s", dir);
		close(dfd);
	}
	return ret;
}

struct vm *vm_find(struct hostd *h, const char *uuid)
{
	for (struct vm *v = h->vms; v; v = v->next)
		if (!strcmp(v->uuid, uuid))
			return v;
	return NULL;
}

static void vm_load_one(struct hostd *h, const char *name)
{
	char path[PATH_MAX];
	struct vm *v = calloc(1, sizeof *v);
	json_error_t je;
	json_t *j;

	if (!v)
		return;
	snprintf(path, sizeof path, "%s/%s/vm.json", h->datastore, name);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j || vmconf_parse(j, v) < 0 || strcmp(v->uuid, name) != 0) {
		memset(v, 0, sizeof *v);
		snprintf(v->uuid, sizeof v->uuid, "%.36s", name);
		snprintf(v->name, sizeof v->name, "%.36s", name);
		snprintf(v->nvram, sizeof v->nvram, "-");
		snprintf(v->error, sizeof v->error, "%.36s/vm.json: %.200s", name,
			 j ? "not a valid VM configuration (fields)" : je.text);
		vc_log(VC_LOG_WARN, "datastore: %s", v->error);
	}
	json_decref(j);
	v->next = h->vms;
	h->vms = v;
}

int vms_load(struct hostd *h, struct vc_error *err)
{
	DIR *d;
	struct dirent *e;

	if (mkdir(h->datastore, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "cannot create datastore %s", h->datastore);
	d = opendir(h->datastore);
	if (!d)
		return vc_error_errno(err, errno, "cannot read datastore %s", h->datastore);
	while ((e = readdir(d))) {
		struct vc_uuid u;

		/* Folders named by a UUID are VMs; anything else is not ours. */
		if (strlen(e->d_name) == VC_UUID_STR_LEN - 1 && vc_uuid_parse(e->d_name, &u) == 0)
			vm_load_one(h, e->d_name);
	}
	closedir(d);
	return 0;
}

void vms_free(struct hostd *h)
{
	while (h->vms) {
		struct vm *v = h->vms;

		h->vms = v->next;
		rekey_job_end(v);
		free(v);
	}
}

/* ---- files ---- */
static int create_sparse(const char *path, uint64_t size, int *fd, struct vc_error *err)
{
	*fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd < 0)
		return vc_error_errno(err, errno, "cannot create %s", path);
	if (ftruncate(*fd, (off_t)size) < 0) {
		int e = errno;

		close(*fd);
		*fd = -1;
		unlink(path);
		return vc_error_errno(err, e, "cannot size %s", path);
	}
	return 0;
}

/* A new encrypted disk (sparse, all zeros) at path. */
static int make_encrypted_disk(const char *path, uint64_t size, const struct vm *v,
			       const struct vc_secret *kek, int *fd_out, struct vc_error *err)
{
	struct vc_disk_params p = { .virtual_size = size, .sector_size = 4096,
				    .provider = v->provider, .key_id = v->key_id };
	struct vc_file f = { .name = path };
	struct vc_disk_io io;
	uint64_t container;
	int fd, ret = vc_disk_container_size(size, 4096, &container, err);

	if (ret == 0)
		ret = create_sparse(path, container, &fd, err);
	if (ret < 0)
		return ret;
	f.fd = fd;
	vc_file_io(&f, &io);
	ret = vc_disk_format(&io, &p, kek, NULL, err);
	if (ret == 0 && fsync(fd) < 0)
		ret = vc_error_errno(err, errno, "cannot sync %s", path);
	if (ret < 0 || !fd_out) {
		close(fd);
		if (ret < 0)
			unlink(path);
	} else {
		*fd_out = fd;
	}
	return ret;
}

/* Copy a raw disk into a new encrypted one at path, all-zero chunks left
 * as holes. */
static int encrypt_copy(const char *raw, const char *path, uint64_t size, const struct vm *v,
			const struct vc_secret *kek, struct vc_error *err)
{
	struct vc_file f = { .name = path };
	struct vc_disk_io io;
	struct vc_disk *d = NULL;
	uint8_t *buf = malloc(COPY_CHUNK);
	int in = open(raw, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), fd = -1, ret;

	if (!buf || in < 0) {
		ret = !buf ? vc_error_set(err, -ENOMEM, "out of memory")
			   : vc_error_errno(err, errno, "cannot open %s", raw);
		goto out;
	}
	ret = make_encrypted_disk(path, size, v, kek, &fd, err);
	if (ret < 0)
		goto out;
	f.fd = fd;
	vc_file_io(&f, &io);
	ret = vc_disk_open(&io, kek, NULL, 0, &d, err);
	for (uint64_t off = 0; ret == 0 && off < size; off += COPY_CHUNK) {
		size_t n = size - off < COPY_CHUNK ? (size_t)(size - off) : COPY_CHUNK;
		ssize_t got = pread(in, buf, n, (off_t)off);

		if (got != (ssize_t)n) {
			ret = vc_error_set(err, -EIO, "%s is shorter than its %llu bytes", raw,
					   (unsigned long long)size);
			break;
		}
		if (!vc_is_zero(buf, n))
			ret = vc_disk_write(d, buf, n, off, err);
	}
	if (ret == 0)
		ret = vc_disk_flush(d, err);
	vc_disk_close(d);
	if (ret == 0 && fsync(fd) < 0)
		ret = vc_error_errno(err, errno, "cannot sync %s", path);
	if (ret < 0)
		unlink(path);
out:
	if (buf) {
		vc_wipe(buf, COPY_CHUNK);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	if (in >= 0)
		close(in);
	return ret;
}

/* Remove a VM's folder and every file in it (no subfolders there). */
static void remove_vm_files(struct hostd *h, const struct vm *v)
{
	char dir[PATH_MAX], path[PATH_MAX];
	DIR *d;
	struct dirent *e;

	vm_dir(h, v, dir, sizeof dir);
	d = opendir(dir);
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			vm_path(h, v, e->d_name, path, sizeof path);
			unlink(path);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* ---- handlers ---- */
struct vm *path_vm_find(struct hreq *r)
{
	struct vm *v = vm_find(r->h, r->param[0]);

	if (!v)
		reply_error(r, 404, "not_found", "no VM %s on this host", r->param[0]);
	else if (v->error[0]) {
		reply_error(r, 409, "conflict", "%s", v->error);
		v = NULL;
	}
	return v;
}

/* The VM a call names, in any power state; NULL after a reply. */
struct vm *path_vm_any(struct hreq *r)
{
	struct vm *v = path_vm_find(r);

	return v && vm_busy(r, v) ? NULL : v;
}

bool path_disk(struct hreq *r, const struct vm *v, size_t *n)
{
	char *end;
	unsigned long k = strtoul(r->param[1], &end, 10);

	if (*end || k >= v->ndisks) {
		reply_error(r, 404, "not_found", "VM %s has no disk %s", v->uuid, r->param[1]);
		return false;
	}
	*n = k;
	return true;
}

/* The VM a call that changes its files names: it must be off. */
static struct vm *path_vm(struct hreq *r)
{
	struct vm *v = path_vm_any(r);

	return v && power_refuse_on(r, v) ? NULL : v;
}

void h_vms_list(struct hreq *r)
{
	const char *state = vc_target_query(&r->t, "state");
	json_t *all = vms_json(r->h), *v, *out;
	size_t i;

	if (!state) {
		reply_json(r, 200, json_pack("{s:o}", "vms", all));
		return;
	}
	/* ?state=locked: what the manager's reconciliation needs, and only
	 * that, so the answer stays small on a host with many VMs. */
	out = json_array();
	json_array_foreach(all, i, v)
		if (!strcmp(json_string_value(json_object_get(v, "state")), state))
			json_array_append(out, v);
	json_decref(all);
	reply_json(r, 200, json_pack("{s:o,s:o}", "vms", out, "host_keys_needed",
				     host_key_needed(r->h)));
}

void h_vm_get(struct hreq *r)
{
	struct vm *v = vm_find(r->h, r->param[0]);

	if (!v)
		reply_error(r, 404, "not_found", "no VM %s on this host", r->param[0]);
	else
		reply_json(r, 200, vm_json_full(r->h, v, true));
}

static const struct vc_field enc_f[] = {
	{ "provider", VC_F_NAME, true, 0, 0, NULL, NULL },
	{ "key_id", VC_F_STRING, true, 1, 127, NULL, NULL },
	{ 0 },
};
const struct vc_field vm_create_f[] = {
	{ "uuid", VC_F_STRING, true, 36, 36, NULL, NULL },
	{ "name", VC_F_NAME, true, 0, 0, NULL, NULL },
	{ "disks", VC_F_OBJECTS, true, 0, DISKS_MAX, (const struct vc_field[]){
		{ "size", VC_F_INT, true, 4096, (int64_t)DISK_MAX_BYTES, NULL, NULL }, { 0 } },
	  NULL },
	{ "encryption", VC_F_OBJECT, false, 0, 0, enc_f, NULL },
	{ "vtpm", VC_F_BOOL, false, 0, 0, NULL, NULL },
	{ 0 },
};
const struct vc_field vm_encrypt_f[] = {
	{ "provider", VC_F_NAME, true, 0, 0, NULL, NULL },
	{ "key_id", VC_F_STRING, true, 1, 127, NULL, NULL },
	{ 0 },
};

/* Set v's KEK and check it can be used here; replies if not. */
static const struct vc_secret *take_kek(struct hreq *r, struct vm *v, json_t *enc)
{
	struct vc_error err = { 0 };
	const struct vc_secret *kek;

	if (!r->h->encryption_mode) {
		reply_error(r, 409, "conflict", "host encryption mode is off: enable it first");
		return NULL;
	}
	snprintf(v->provider, sizeof v->provider, "%s",
		 json_string_value(json_object_get(enc, "provider")));
	snprintf(v->key_id, sizeof v->key_id, "%s", json_string_value(json_object_get(enc, "key_id")));
	if (strlen(v->provider) > VC_DISK_PROVIDER_MAX) {
		reply_error(r, 400, "bad_request", "provider names on disks hold at most %d bytes",
			    VC_DISK_PROVIDER_MAX);
		return NULL;
	}
	kek = vm_kek(r->h, v, &err);
	if (!kek)
		reply_error(r, 409, "key_missing", "%s", vc_error_msg(&err));
	return kek;
}

/* Seal or write the nvram file and the VM key for an encrypted VM. */
/* nvram_fd: the plaintext nvram to seal (read from its offset to EOF,
 * not closed), or -1 for a new VM's zeros. */
static int seal_vm(struct hostd *h, struct vm *v, const struct vc_secret *kek, int nvram_fd,
		   struct vc_error *err)
{
	struct vc_uuid u;
	struct vc_binding b = { .format = VM_KEY_FORMAT, .provider = v->provider,
				.key_id = v->key_id };
	struct vc_secret *vmkey = NULL;
	uint8_t wrapped[32 + VC_WRAP_OVERHEAD];
	char path[PATH_MAX], zero[PATH_MAX];
	size_t wlen = 0;
	int in = -1, out = -1, ret = vc_uuid_parse(v->uuid, &u) == 0 ? 0 : -EINVAL;

	b.object = u.b;
	if (ret == 0)
		ret = vc_random_secret(32, &vmkey, err);
	if (ret == 0)
		ret = vc_wrap_key(kek, &b, vmkey, wrapped, sizeof wrapped, &wlen, err);
	if (ret == 0 && nvram_fd < 0) {
		/* A new VM: its nvram starts as NVRAM_BYTES of zeros. */
		vm_path(h, v, "nvram.new", zero, sizeof zero);
		ret = create_sparse(zero, NVRAM_BYTES, &in, err);
		if (ret == 0)
			unlink(zero);
	}
	if (ret == 0) {
		vm_path(h, v, "nvram.vcf", path, sizeof path);
		out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (out < 0)
			ret = vc_error_errno(err, errno, "cannot write %s", path);
	}
	if (ret == 0)
		ret = vc_vmfile_seal_fd(vmkey, "nvram", 0, nvram_fd >= 0 ? nvram_fd : in, out, NULL,
					err);
	if (ret == 0 && fsync(out) < 0)
		ret = vc_error_errno(err, errno, "cannot sync %s", path);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (ret == 0) {
		vc_base64_encode(wrapped, wlen, v->wrapped_key);
		snprintf(v->nvram, sizeof v->nvram, "nvram.vcf");
		v->encrypted = true;
	}
	vc_secret_free(vmkey);
	return ret;
}

/* The start of a new VM (create, clone): its UUID and name from the body,
 * its KEK when the body asks for encryption, its folder. NULL after a
 * reply. */
static struct vm *vm_begin(struct hreq *r, const struct vc_secret **kek)
{
	json_t *enc = json_object_get(r->body, "encryption");
	struct vm *v = calloc(1, sizeof *v);
	struct vc_uuid u;
	char dir[PATH_MAX];

	*kek = NULL;
	if (!v) {
		reply_error(r, 500, "internal", "out of memory");
		return NULL;
	}
	snprintf(v->uuid, sizeof v->uuid, "%s", json_string_value(json_object_get(r->body, "uuid")));
	snprintf(v->name, sizeof v->name, "%s", json_string_value(json_object_get(r->body, "name")));
	if (vc_uuid_parse(v->uuid, &u) < 0 || vm_find(r->h, v->uuid)) {
		reply_error(r, vm_find(r->h, v->uuid) ? 409 : 400, vm_find(r->h, v->uuid) ? "conflict"
			    : "bad_request", "VM %s: bad or existing UUID", v->uuid);
		free(v);
		return NULL;
	}
	if (enc && !(*kek = take_kek(r, v, enc))) {
		free(v);
		return NULL;
	}
	vm_dir(r->h, v, dir, sizeof dir);
	if (mkdir(dir, 0700) < 0) {
		reply_error(r, 409, "conflict", "cannot create %s: %s", dir, strerror(errno));
		free(v);
		return NULL;
	}
	return v;
}

/* The end of a new VM: saved and listed, or, after a failure (ret), its
 * folder removed so that nothing of a half-made VM stays behind. */
static void vm_end(struct hreq *r, struct vm *v, int ret, struct vc_error *err,
		   const char *done)
{
	if (ret == 0)
		ret = vm_save(r->h, v, err);
	if (ret < 0) {
		remove_vm_files(r->h, v);
		free(v);
		reply_error(r, ret == -EINVAL ? 400 : ret == -ENOKEY ? 409 : 500,
			    ret == -EINVAL ? "bad_request" : ret == -ENOKEY ? "key_missing" : "internal",
			    "%s", vc_error_msg(err));
		return;
	}
	v->next = r->h->vms;
	r->h->vms = v;
	vc_log(VC_LOG_INFO, "%s VM %s (%s)%s", done, v->name, v->uuid,
	       v->provider[0] ? ", encrypted" : "");
	reply_json(r, 201, vm_json(r->h, v));
}

void h_vm_create(struct hreq *r)
{
	struct hostd *h = r->h;
	json_t *d;
	const struct vc_secret *kek;
	struct vm *v = vm_begin(r, &kek);
	struct vc_error err = { 0 };
	char path[PATH_MAX];
	size_t i;
	int ret = 0;

	if (!v)
		return;
	json_array_foreach(json_object_get(r->body, "disks"), i, d) {
		struct vm_disk *vd = &v->disks[v->ndisks];
		uint64_t size = (uint64_t)json_integer_value(json_object_get(d, "size"));
		int fd = -1;

		if (size % 4096) {
			ret = vc_error_set(&err, -EINVAL, "disk %zu: size is not a multiple of 4096", i);
			break;
		}
		vd->size = size;
		vd->encrypted = kek != NULL;
		snprintf(vd->file, sizeof vd->file, kek ? "disk%zu.vcd" : "disk%zu.raw", i);
		vm_path(h, v, vd->file, path, sizeof path);
		ret = kek ? make_encrypted_disk(path, size, v, kek, NULL, &err)
			  : create_sparse(path, size, &fd, &err);
		if (fd >= 0)
			close(fd);
		if (ret < 0)
			break;
		v->ndisks++;
	}
	if (ret == 0 && kek)
		ret = seal_vm(h, v, kek, -1, &err);
	if (ret == 0 && json_is_true(json_object_get(r->body, "vtpm")))
		ret = kek ? vtpm_create(h, v, &err)
			  : vc_error_set(&err, -EINVAL, "a vTPM needs an encrypted VM");
	if (ret == 0 && !kek) {
		int fd = -1;

		snprintf(v->nvram, sizeof v->nvram, "nvram.raw");
		vm_path(h, v, v->nvram, path, sizeof path);
		ret = create_sparse(path, NVRAM_BYTES, &fd, &err);
		if (fd >= 0)
			close(fd);
	}
	vm_end(r, v, ret, &err, "created");
}

/* Encrypt one disk of a plaintext VM: a new encrypted copy, then vm.json
 * switched to it, then the plaintext file removed. Idempotent. */
/* Disk n's converted copy tmp becomes fin (named file in the folder) and
 * vm.json names it; after a failure vm.json still names the original. */
static int disk_switch(struct hostd *h, struct vm *v, size_t n, const char *tmp, const char *fin,
		       const char *file, bool encrypted, struct vc_error *err)
{
	struct vm_disk old = v->disks[n];
	int ret = 0;

	if (rename(tmp, fin) < 0)
		return vc_error_errno(err, errno, "cannot rename %s", tmp);
	snprintf(v->disks[n].file, sizeof v->disks[n].file, "%s", file);
	v->disks[n].encrypted = encrypted;
	ret = vm_save(h, v, err);
	if (ret < 0)
		v->disks[n] = old;
	return ret;
}

void h_vm_encrypt_disk(struct hreq *r)
{
	struct vm *v = path_vm(r);
	struct vc_error err = { 0 };
	const struct vc_secret *kek;
	char raw[PATH_MAX], tmp[PATH_MAX + 8], fin[PATH_MAX], file[32];
	size_t n;
	int ret;

	if (!v)
		return;
	if (!path_disk(r, v, &n))
		return;
	if (v->provider[0] && (strcmp(v->provider,
				      json_string_value(json_object_get(r->body, "provider"))) ||
			       strcmp(v->key_id, json_string_value(json_object_get(r->body, "key_id"))))) {
		reply_error(r, 409, "conflict", "VM %s is already being encrypted with key %s",
			    v->uuid, v->key_id);
		return;
	}
	if (!(kek = take_kek(r, v, r->body)))
		return;
	if (v->disks[n].encrypted) {
		reply_json(r, 200, vm_json(r->h, v));
		return;
	}
	snprintf(file, sizeof file, "disk%zu.vcd", n);
	vm_path(r->h, v, v->disks[n].file, raw, sizeof raw);
	vm_path(r->h, v, file, fin, sizeof fin);
	snprintf(tmp, sizeof tmp, "%s.tmp", fin);
	ret = encrypt_copy(raw, tmp, v->disks[n].size, v, kek, &err);
	if (ret == 0)
		ret = disk_switch(r->h, v, n, tmp, fin, file, true, &err);
	if (ret < 0) {
		unlink(tmp);
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	/* Only now that vm.json names the encrypted copy. (Deleting a file
	 * does not erase its blocks from the device: docs/SECURITY.md.) */
	unlink(raw);
	vc_log(VC_LOG_INFO, "VM %s: disk %zu encrypted with key %s of %s", v->uuid, n, v->key_id,
	       v->provider);
	reply_json(r, 200, vm_json(r->h, v));
}

/* The last step of encrypting a VM: the VM key and the sealed nvram. */
void h_vm_encrypt_finish(struct hreq *r)
{
	struct vm *v = path_vm(r);
	struct vc_error err = { 0 };
	const struct vc_secret *kek;
	char raw[PATH_MAX];
	struct vm keep;
	int ret;

	if (!v)
		return;
	if (v->encrypted) {
		reply_json(r, 200, vm_json(r->h, v));
		return;
	}
	if (v->provider[0] && strcmp(v->key_id, json_string_value(json_object_get(r->body, "key_id")))) {
		reply_error(r, 409, "conflict", "VM %s is being encrypted with another key", v->uuid);
		return;
	}
	if (!(kek = take_kek(r, v, r->body)))
		return;
	for (size_t i = 0; i < v->ndisks; i++)
		if (!v->disks[i].encrypted) {
			reply_error(r, 409, "conflict", "disk %zu of VM %s is not encrypted yet", i,
				    v->uuid);
			return;
		}
	keep = *v;
	vm_path(r->h, v, v->nvram, raw, sizeof raw);
	{
		int in = open(raw, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

		ret = in < 0 ? vc_error_errno(&err, errno, "cannot open %s", raw)
			     : seal_vm(r->h, v, kek, in, &err);
		if (in >= 0)
			close(in);
	}
	if (ret == 0)
		ret = vm_save(r->h, v, &err);
	if (ret < 0) {
		keep.next = v->next;
		*v = keep;
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	unlink(raw);
	vc_log(VC_LOG_INFO, "VM %s encrypted (VM key wrapped by %s of %s)", v->uuid, v->key_id,
	       v->provider);
	reply_json(r, 200, vm_json(r->h, v));
}

/* The plaintext of a disk, for checks and copies out (small disks). */
void h_vm_export_disk(struct hreq *r)
{
	struct vm *v = path_vm(r);
	struct vc_error err = { 0 };
	struct evbuffer *b = NULL;
	char path[PATH_MAX];
	size_t n;
	int fd = -1, ret = 0;

	if (!v)
		return;
	if (!path_disk(r, v, &n))
		return;
	if (v->disks[n].size > EXPORT_MAX) {
		reply_error(r, 413, "payload_too_large", "disks over 256 MiB are not exported here");
		return;
	}
	vm_path(r->h, v, v->disks[n].file, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	b = evbuffer_new();
	if (fd < 0 || !b) {
		ret = vc_error_errno(&err, fd < 0 ? errno : ENOMEM, "cannot open %s", path);
	} else if (!v->disks[n].encrypted) {
		/* Read, not map: a file shorter than its size (damaged, or cut
		 * while we read) must be an error, not a SIGBUS. */
		struct evbuffer_iovec iov;
		struct stat sb;
		uint64_t size = v->disks[n].size;

		if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size < size)
			ret = vc_error_set(&err, -EBADMSG, "%s is %lld bytes, shorter than the "
					   "disk's %llu", path, (long long)sb.st_size,
					   (unsigned long long)size);
		else if (evbuffer_reserve_space(b, (ev_ssize_t)size, &iov, 1) < 1)
			ret = vc_error_set(&err, -ENOMEM, "out of memory");
		else if (pread(fd, iov.iov_base, size, 0) != (ssize_t)size)
			ret = vc_error_set(&err, -EBADMSG, "cannot read %s whole", path);
		else {
			iov.iov_len = size;
			evbuffer_commit_space(b, &iov, 1);
		}
	} else {
		const struct vc_secret *kek = disk_kek(r->h, fd, path, &err);
		struct vc_file f = { .fd = fd, .name = path };
		struct vc_disk_io io;
		struct vc_disk *d = NULL;
		struct evbuffer_iovec iov;

		vc_file_io(&f, &io);
		ret = kek ? vc_disk_open(&io, kek, NULL, VC_DISK_RDONLY, &d, &err)
			  : (err.code ? err.code : -ENOKEY);
		if (ret < 0 && ret != -ENOKEY)
			vc_error_prefix(&err, "%s", path);
		if (ret == 0 && evbuffer_reserve_space(b, (ev_ssize_t)v->disks[n].size, &iov, 1) < 1)
			ret = vc_error_set(&err, -ENOMEM, "out of memory");
		if (ret == 0)
			ret = vc_disk_read(d, iov.iov_base, v->disks[n].size, 0, &err);
		if (ret == 0) {
			iov.iov_len = v->disks[n].size;
			evbuffer_commit_space(b, &iov, 1);
		}
		vc_disk_close(d);
	}
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		if (b)
			evbuffer_free(b);
		bool damaged = ret == -EBADMSG || ret == -EINVAL || ret == -ENOTSUP;

		reply_error(r, ret == -ENOKEY ? 409 : 500,
			    ret == -ENOKEY ? "locked" : damaged ? "damaged" : "internal", "%s",
			    vc_error_msg(&err));
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(r->er), "Content-Type",
			  "application/octet-stream");
	evhttp_send_reply(r->er, 200, NULL, b);
	evbuffer_free(b);
}

/* AddDisk: a new disk; on an encrypted VM it is encrypted, with its own
 * DEK wrapped by the VM's KEK. */
const struct vc_field vm_disk_f[] = {
	{ "size", VC_F_INT, true, 4096, (int64_t)DISK_MAX_BYTES, NULL, NULL },
	{ 0 },
};

void h_vm_add_disk(struct hreq *r)
{
	struct vm *v = path_vm(r);
	uint64_t size = (uint64_t)json_integer_value(json_object_get(r->body, "size"));
	const struct vc_secret *kek = NULL;
	struct vc_error err = { 0 };
	char path[PATH_MAX];
	struct vm_disk *vd;
	int fd = -1, ret;

	if (!v)
		return;
	if (v->ndisks == DISKS_MAX || size % 4096) {
		reply_error(r, 400, "bad_request", v->ndisks == DISKS_MAX
			    ? "a VM has at most 16 disks" : "the size is not a multiple of 4096");
		return;
	}
	if (needs_key(v) && !(kek = vm_kek(r->h, v, &err))) {
		reply_error(r, 409, "key_missing", "%s", vc_error_msg(&err));
		return;
	}
	vd = &v->disks[v->ndisks];
	memset(vd, 0, sizeof *vd);
	vd->size = size;
	vd->encrypted = kek != NULL;
	snprintf(vd->file, sizeof vd->file, kek ? "disk%zu.vcd" : "disk%zu.raw", v->ndisks);
	vm_path(r->h, v, vd->file, path, sizeof path);
	ret = kek ? make_encrypted_disk(path, size, v, kek, NULL, &err)
		  : create_sparse(path, size, &fd, &err);
	if (fd >= 0)
		close(fd);
	if (ret == 0) {
		v->ndisks++;
		ret = vm_save(r->h, v, &err);
		if (ret < 0) {
			v->ndisks--;
			unlink(path);
		}
	}
	if (ret < 0) {
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	vc_log(VC_LOG_INFO, "VM %s: added disk %zu (%s)", v->uuid, v->ndisks - 1,
	       kek ? "encrypted" : "plaintext");
	reply_json(r, 201, vm_json(r->h, v));
}

/* Rewrap the VM key from one KEK to another. */
static int rewrap_vm_key(struct vm *v, const struct vc_secret *old, const struct vc_secret *nk,
			 struct vc_error *err)
{
	struct vc_uuid u;
	struct vc_binding ob = { .format = VM_KEY_FORMAT, .provider = v->provider,
				 .key_id = v->key_id };
	struct vc_binding nb = { .format = VM_KEY_FORMAT, .provider = v->next_provider,
				 .key_id = v->next_key_id };
	uint8_t in[128], out[32 + VC_WRAP_OVERHEAD];
	struct vc_secret *vmkey = NULL;
	size_t inlen = 0, outlen = 0;
	int ret;

	if (vc_uuid_parse(v->uuid, &u) < 0 ||
	    vc_base64_decode(v->wrapped_key, strlen(v->wrapped_key), in, sizeof in, &inlen) < 0)
		return vc_error_set(err, -EBADMSG, "VM %s: damaged wrapped VM key", v->uuid);
	ob.object = nb.object = u.b;
	ret = vc_unwrap_key(old, &ob, in, inlen, &vmkey, err);
	if (ret == 0)
		ret = vc_wrap_key(nk, &nb, vmkey, out, sizeof out, &outlen, err);
	if (ret == 0)
		vc_base64_encode(out, outlen, v->wrapped_key);
	vc_secret_free(vmkey);
	return ret;
}

/* Shallow rekey (Recrypt): every DEK and the VM key rewrapped under a new
 * KEK. The new key is recorded first; each disk's header names the key it
 * is under, so a rekey cut short is finished by running it again. */
void h_vm_rekey(struct hreq *r)
{
	/* Powered on too: served disks are rewrapped by their filter. */
	struct vm *v = path_vm_any(r);
	const char *np = json_string_value(json_object_get(r->body, "provider"));
	const char *nk = json_string_value(json_object_get(r->body, "key_id"));
	const struct vc_secret *old, *new;
	struct vc_error err = { 0 };
	struct vm keep;
	bool saved_next;
	int ret = 0;

	if (!v)
		return;
	if (!needs_key(v)) {
		reply_error(r, 409, "conflict", "VM %s is not encrypted", v->uuid);
		return;
	}
	if (strlen(np) > VC_DISK_PROVIDER_MAX) {
		reply_error(r, 400, "bad_request", "provider names on disks hold at most %d bytes",
			    VC_DISK_PROVIDER_MAX);
		return;
	}
	if (v->next_key_id[0] && (strcmp(v->next_key_id, nk) || strcmp(v->next_provider, np))) {
		reply_error(r, 409, "conflict", "VM %s is being rekeyed to key %s: finish that first",
			    v->uuid, v->next_key_id);
		return;
	}
	if (!(old = vm_kek(r->h, v, &err)) || !(new = cached(r->h, np, nk, &err))) {
		reply_error(r, 409, "key_missing", "%s", vc_error_msg(&err));
		return;
	}
	keep = *v;
	snprintf(v->next_provider, sizeof v->next_provider, "%s", np);
	snprintf(v->next_key_id, sizeof v->next_key_id, "%s", nk);
	ret = vm_save(r->h, v, &err);
	saved_next = ret == 0;
	for (size_t i = 0; ret == 0 && i < v->ndisks; i++) {
		char path[PATH_MAX];
		struct vc_file f = { .name = path };
		struct vc_disk_io io;
		struct vc_disk_info in;
		struct vc_disk *d = NULL;

		if (!v->disks[i].encrypted)
			continue;
		if (v->powered && srv_alive(&v->srv[i])) {
			ret = power_rekey_shallow(v, i, new, np, nk, &err);
			continue;
		}
		vm_path(r->h, v, v->disks[i].file, path, sizeof path);
		f.fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (f.fd < 0) {
			ret = vc_error_errno(&err, errno, "cannot open %s", path);
			break;
		}
		vc_file_io(&f, &io);
		ret = vc_disk_inspect(&io, &in, &err);
		/* Already under the new key: done before a crash. */
		if (ret == 0 && strcmp(in.slot[0].key_id, nk))
			ret = vc_disk_open(&io, old, NULL, 0, &d, &err);
		if (ret == 0 && d)
			ret = vc_disk_rekey_shallow(d, new, np, nk, &err);
		vc_disk_close(d);
		close(f.fd);
	}
	if (ret == 0 && v->encrypted)
		ret = rewrap_vm_key(v, old, new, &err);
	if (ret == 0) {
		snprintf(v->provider, sizeof v->provider, "%s", np);
		snprintf(v->key_id, sizeof v->key_id, "%s", nk);
		v->next_provider[0] = v->next_key_id[0] = '\0';
		ret = vm_save(r->h, v, &err);
	}
	if (ret < 0) {
		/* Back to what vm.json says: the old key, and the next one if it
		 * was recorded (running the rekey again then finishes it). */
		keep.next = v->next;
		*v = keep;
		if (saved_next) {
			snprintf(v->next_provider, sizeof v->next_provider, "%s", np);
			snprintf(v->next_key_id, sizeof v->next_key_id, "%s", nk);
		}
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	vc_log(VC_LOG_INFO, "VM %s rekeyed (shallow) from %s to %s", v->uuid, keep.key_id, nk);
	/* A retired key leaves the host unless another VM still uses it. */
	{
		bool used = false;

		for (struct vm *o = r->h->vms; o && !used; o = o->next)
			used = (!strcmp(o->provider, keep.provider) && !strcmp(o->key_id, keep.key_id)) ||
			       (!strcmp(o->next_provider, keep.provider) &&
				!strcmp(o->next_key_id, keep.key_id));
		if (!used)
			key_drop(r->h, keep.provider, keep.key_id);
	}
	reply_json(r, 200, vm_json(r->h, v));
}

/* ---- decrypt (Decrypt) ---- */
/* Copy an encrypted disk into a new raw file (zero chunks left as holes). */
static int decrypt_copy(struct hostd *h, const char *src, const char *dst, uint64_t size,
			struct vc_error *err)
{
	struct vc_file f = { .name = src };
	struct vc_disk_io io;
	struct vc_disk *d = NULL;
	const struct vc_secret *kek;
	uint8_t *buf = malloc(COPY_CHUNK);
	int out = -1, ret;

	f.fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (!buf || f.fd < 0) {
		ret = !buf ? vc_error_set(err, -ENOMEM, "out of memory")
			   : vc_error_errno(err, errno, "cannot open %s", src);
		goto out;
	}
	kek = disk_kek(h, f.fd, src, err);
	ret = kek ? 0 : (err->code ? err->code : -ENOKEY);
	vc_file_io(&f, &io);
	if (ret == 0)
		ret = vc_disk_open(&io, kek, NULL, VC_DISK_RDONLY, &d, err);
	if (ret == 0)
		ret = create_sparse(dst, size, &out, err);
	for (uint64_t off = 0; ret == 0 && off < size; off += COPY_CHUNK) {
		size_t n = size - off < COPY_CHUNK ? (size_t)(size - off) : COPY_CHUNK;

		ret = vc_disk_read(d, buf, n, off, err);
		if (ret == 0 && !vc_is_zero(buf, n) && pwrite(out, buf, n, (off_t)off) != (ssize_t)n)
			ret = vc_error_errno(err, errno, "cannot write %s", dst);
	}
	if (ret == 0 && fsync(out) < 0)
		ret = vc_error_errno(err, errno, "cannot sync %s", dst);
	if (ret < 0 && out >= 0)
		unlink(dst);
	vc_disk_close(d);
out:
	if (buf) {
		vc_wipe(buf, COPY_CHUNK);
		free(buf);
	}
	if (out >= 0)
		close(out);
	if (f.fd >= 0)
		close(f.fd);
	return ret;
}

void h_vm_decrypt_disk(struct hreq *r)
{
	struct vm *v = path_vm(r);
	struct vc_error err = { 0 };
	char src[PATH_MAX], tmp[PATH_MAX + 8], fin[PATH_MAX], file[32];
	size_t n;
	int ret;

	if (!v || vtpm_refuse_decrypt(r, v))
		return;
	if (!path_disk(r, v, &n))
		return;
	if (!v->disks[n].encrypted) {
		reply_json(r, 200, vm_json(r->h, v));
		return;
	}
	snprintf(file, sizeof file, "disk%zu.raw", n);
	vm_path(r->h, v, v->disks[n].file, src, sizeof src);
	vm_path(r->h, v, file, fin, sizeof fin);
	snprintf(tmp, sizeof tmp, "%s.tmp", fin);
	ret = decrypt_copy(r->h, src, tmp, v->disks[n].size, &err);
	if (ret == 0)
		ret = disk_switch(r->h, v, n, tmp, fin, file, false, &err);
	if (ret < 0) {
		unlink(tmp);
		reply_error(r, ret == -ENOKEY ? 409 : 500, ret == -ENOKEY ? "key_missing" : "internal",
			    "%s", vc_error_msg(&err));
		return;
	}
	unlink(src);
	vc_log(VC_LOG_INFO, "VM %s: disk %zu decrypted", v->uuid, n);
	reply_json(r, 200, vm_json(r->h, v));
}

/* The last step of decrypting a VM: nvram back to a raw file, the VM key
 * and the key ids dropped. */
void h_vm_decrypt_finish(struct hreq *r)
{
	struct vm *v = path_vm(r);
	struct vc_error err = { 0 };
	char src[PATH_MAX], dst[PATH_MAX];
	struct vm keep;
	int out = -1, ret = 0;

	if (!v || vtpm_refuse_decrypt(r, v))
		return;
	for (size_t i = 0; i < v->ndisks; i++)
		if (v->disks[i].encrypted) {
			reply_error(r, 409, "conflict", "disk %zu of VM %s is still encrypted", i,
				    v->uuid);
			return;
		}
	if (v->encrypted) {
		vm_path(r->h, v, v->nvram, src, sizeof src);
		vm_path(r->h, v, "nvram.raw", dst, sizeof dst);
		out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		ret = out < 0 ? vc_error_errno(&err, errno, "cannot write %s", dst)
			      : vm_file_unseal(r->h, v, "nvram", v->nvram, out, &err);
		if (out >= 0)
			close(out);
		if (ret < 0) {
			unlink(dst);
			reply_error(r, ret == -ENOKEY ? 409 : 500,
				    ret == -ENOKEY ? "key_missing" : "internal", "%s",
				    vc_error_msg(&err));
			return;
		}
	}
	keep = *v;
	v->encrypted = false;
	v->provider[0] = v->key_id[0] = v->wrapped_key[0] = '\0';
	v->next_provider[0] = v->next_key_id[0] = '\0';
	snprintf(v->nvram, sizeof v->nvram, "nvram.raw");
	ret = vm_save(r->h, v, &err);
	if (ret < 0) {
		keep.next = v->next;
		*v = keep;
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	if (keep.encrypted && strcmp(keep.nvram, "nvram.raw"))
		unlink(src);
	vc_log(VC_LOG_INFO, "VM %s decrypted", v->uuid);
	reply_json(r, 200, vm_json(r->h, v));
}

/* ---- unregister, register (a shared datastore), delete ---- */
static void vm_unlink(struct hostd *h, struct vm *v)
{
	for (struct vm **pp = &h->vms; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			rekey_job_end(v);
			free(v);
			return;
		}
}

/* Forget a VM without touching its folder (another host takes it). */
void h_vm_unregister(struct hreq *r)
{
	struct vm *v = vm_find(r->h, r->param[0]);

	if (!v) {
		reply_error(r, 404, "not_found", "no VM %s on this host", r->param[0]);
		return;
	}
	if (power_refuse_on(r, v) || vm_busy(r, v))
		return;
	vc_log(VC_LOG_INFO, "VM %s unregistered", v->uuid);
	vm_unlink(r->h, v);
	evhttp_send_reply(r->er, 204, NULL, NULL);
}

/* Take a VM folder of the datastore (one another host unregistered). An
 * encrypted VM needs encryption mode; its keys come from the manager. */
const struct vc_field vm_register_f[] = {
	{ "uuid", VC_F_STRING, true, 36, 36, NULL, NULL },
	{ 0 },
};

void h_vm_register(struct hreq *r)
{
	const char *uuid = json_string_value(json_object_get(r->body, "uuid"));
	struct vc_uuid u;
	struct vm *v;

	if (vc_uuid_parse(uuid, &u) < 0) {
		reply_error(r, 400, "bad_request", "'%s' is not a UUID", uuid);
		return;
	}
	if (vm_find(r->h, uuid)) {
		reply_error(r, 409, "conflict", "VM %s is already registered here", uuid);
		return;
	}
	vm_load_one(r->h, uuid);
	v = vm_find(r->h, uuid);
	if (!v || v->error[0]) {
		reply_error(r, 400, "bad_request", "%s", v ? v->error : "cannot load the VM");
		if (v)
			vm_unlink(r->h, v);
		return;
	}
	if (needs_key(v) && !r->h->encryption_mode) {
		vm_unlink(r->h, v);
		reply_error(r, 409, "conflict", "an encrypted VM cannot be registered on a host "
			    "whose encryption mode is off");
		return;
	}
	vc_log(VC_LOG_INFO, "VM %s registered", uuid);
	reply_json(r, 201, vm_json(r->h, v));
}

void h_vm_delete(struct hreq *r)
{
	struct vm *v = vm_find(r->h, r->param[0]);
	char path[PATH_MAX];

	if (!v) {
		reply_error(r, 404, "not_found", "no VM %s on this host", r->param[0]);
		return;
	}
	if (power_refuse_on(r, v) || vm_busy(r, v))
		return;
	/* vm.json first: a crash halfway leaves no VM, only stray files. */
	vm_path(r->h, v, "vm.json", path, sizeof path);
	if (unlink(path) < 0 && errno != ENOENT) {
		reply_error(r, 500, "internal", "cannot remove %s: %s", path, strerror(errno));
		return;
	}
	remove_vm_files(r->h, v);
	vc_log(VC_LOG_INFO, "VM %s deleted", v->uuid);
	vm_unlink(r->h, v);
	evhttp_send_reply(r->er, 204, NULL, NULL);
}

/* ---- clone (Clone): a new VM with its own keys ---- */
/* Open a source disk for reading: raw (fd only) or encrypted (*d). */
static int open_source(struct hostd *h, const char *path, bool encrypted, struct vc_file *f,
		       struct vc_disk **d, struct vc_error *err)
{
	struct vc_disk_io io;
	const struct vc_secret *kek;

	f->name = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (f->fd < 0)
		return vc_error_errno(err, errno, "cannot open %s", path);
	if (!encrypted)
		return 0;
	kek = disk_kek(h, f->fd, path, err);
	if (!kek)
		return err->code ? err->code : -ENOKEY;
	vc_file_io(f, &io);
	return vc_disk_open(&io, kek, NULL, VC_DISK_RDONLY, d, err);
}

/* Copy one disk's plaintext into a new disk at dst: encrypted under kek
 * (with a new DEK) or raw when kek is NULL. */
static int clone_disk(struct hostd *h, const char *src, bool src_enc, const char *dst,
		      uint64_t size, const struct vm *nv, const struct vc_secret *kek,
		      struct vc_error *err)
{
	struct vc_file sf = { .fd = -1 }, df = { .name = dst };
	struct vc_disk *sd = NULL, *dd = NULL;
	struct vc_disk_io io;
	uint8_t *buf = malloc(COPY_CHUNK);
	int out = -1, ret = buf ? 0 : vc_error_set(err, -ENOMEM, "out of memory");

	if (ret == 0)
		ret = open_source(h, src, src_enc, &sf, &sd, err);
	if (ret == 0)
		ret = kek ? make_encrypted_disk(dst, size, nv, kek, &out, err)
			  : create_sparse(dst, size, &out, err);
	if (ret == 0 && kek) {
		df.fd = out;
		vc_file_io(&df, &io);
		ret = vc_disk_open(&io, kek, NULL, 0, &dd, err);
	}
	for (uint64_t off = 0; ret == 0 && off < size; off += COPY_CHUNK) {
		size_t n = size - off < COPY_CHUNK ? (size_t)(size - off) : COPY_CHUNK;

		if (sd)
			ret = vc_disk_read(sd, buf, n, off, err);
		else if (pread(sf.fd, buf, n, (off_t)off) != (ssize_t)n)
			ret = vc_error_set(err, -EIO, "%s is shorter than its size", src);
		if (ret == 0 && !vc_is_zero(buf, n))
			ret = dd ? vc_disk_write(dd, buf, n, off, err)
				 : (pwrite(out, buf, n, (off_t)off) == (ssize_t)n ? 0
				    : vc_error_errno(err, errno, "cannot write %s", dst));
	}
	if (ret == 0 && dd)
		ret = vc_disk_flush(dd, err);
	if (ret == 0 && fsync(out) < 0)
		ret = vc_error_errno(err, errno, "cannot sync %s", dst);
	vc_disk_close(dd);
	vc_disk_close(sd);
	if (buf) {
		vc_wipe(buf, COPY_CHUNK);
		free(buf);
	}
	if (out >= 0)
		close(out);
	if (sf.fd >= 0)
		close(sf.fd);
	if (ret < 0)
		unlink(dst);
	return ret;
}

/* Copy in to out from their offsets to in's end; what names it in errors. */
static int copy_fd(int in, int out, const char *what, struct vc_error *err)
{
	char buf[16384];
	ssize_t n;
	int ret = 0;

	while (ret == 0 && (n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write(out, buf, (size_t)n) != n)
			ret = vc_error_errno(err, errno, "cannot copy %s", what);
	}
	vc_wipe(buf, sizeof buf);
	return ret;
}

/* The source VM's nvram plaintext into a memory-only file (never on disk). */
static int nvram_plain(struct hostd *h, const struct vm *v, int *memfd, struct vc_error *err)
{
	char path[PATH_MAX];
	int in, ret;

	*memfd = memfd_create("vmcrypt-nvram", MFD_CLOEXEC);
	if (*memfd < 0)
		return vc_error_errno(err, errno, "memfd_create");
	if (v->encrypted) {
		ret = vm_file_unseal(h, v, "nvram", v->nvram, *memfd, err);
	} else {
		vm_path(h, v, v->nvram, path, sizeof path);
		in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		ret = in < 0 ? vc_error_errno(err, errno, "cannot open the nvram of VM %s", v->uuid)
			     : copy_fd(in, *memfd, "the nvram", err);
		if (in >= 0)
			close(in);
	}
	if (ret == 0 && lseek(*memfd, 0, SEEK_SET) < 0)
		ret = vc_error_errno(err, errno, "nvram");
	return ret;
}

const struct vc_field vm_clone_f[] = {
	{ "uuid", VC_F_STRING, true, 36, 36, NULL, NULL },
	{ "name", VC_F_NAME, true, 0, 0, NULL, NULL },
	{ "encryption", VC_F_OBJECT, false, 0, 0, enc_f, NULL },
	{ 0 },
};

void h_vm_clone(struct hreq *r)
{
	struct hostd *h = r->h;
	struct vm *src = path_vm(r), *v;
	const struct vc_secret *kek;
	struct vc_error err = { 0 };
	char path[PATH_MAX], spath[PATH_MAX];
	int memfd = -1, ret = 0;

	if (!src)
		return;
	if (needs_key(src) && !json_object_get(r->body, "encryption")) {
		reply_error(r, 400, "bad_request", "the clone of an encrypted VM is encrypted: give "
			    "it a key ('encryption')");
		return;
	}
	if (!(v = vm_begin(r, &kek)))
		return;
	for (size_t i = 0; ret == 0 && i < src->ndisks; i++) {
		struct vm_disk *vd = &v->disks[i];

		vd->size = src->disks[i].size;
		vd->encrypted = kek != NULL;
		snprintf(vd->file, sizeof vd->file, kek ? "disk%zu.vcd" : "disk%zu.raw", i);
		vm_path(h, src, src->disks[i].file, spath, sizeof spath);
		vm_path(h, v, vd->file, path, sizeof path);
		ret = clone_disk(h, spath, src->disks[i].encrypted, path, vd->size, v, kek, &err);
		if (ret == 0)
			v->ndisks++;
	}
	if (ret == 0)
		ret = nvram_plain(h, src, &memfd, &err);
	if (ret == 0 && kek) {
		ret = seal_vm(h, v, kek, memfd, &err);
		if (ret == 0 && src->vtpm[0])
			ret = vtpm_copy(h, src, v, &err);
	} else if (ret == 0) {
		int out;

		snprintf(v->nvram, sizeof v->nvram, "nvram.raw");
		vm_path(h, v, v->nvram, path, sizeof path);
		out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (out < 0) {
			ret = vc_error_errno(&err, errno, "cannot write %s", path);
		} else {
			ret = copy_fd(memfd, out, path, &err);
			if (ret == 0 && fsync(out) < 0)
				ret = vc_error_errno(&err, errno, "cannot sync %s", path);
			close(out);
		}
	}
	if (memfd >= 0)
		close(memfd);
	vm_end(r, v, ret, &err, "cloned into");
}

