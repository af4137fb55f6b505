/* SPDX-License-Identifier: Apache-2.0 */
/* The first start on an empty store: predefined roles, the inventory
 * root, and the administrator with its password. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgr.h"
#include "vc_native.h"
#include "vc_passwd.h"
#include "vc_secmem.h"

#define ADMIN_USER "admin"

static int add_role(struct vc_store *st, const char *name, struct vc_privset ps,
		    struct vc_error *err)
{
	char text[VC_PRIVSET_STR_MAX];
	int ret = vc_privset_format(&ps, text, sizeof text, err);

	if (ret == 0)
		ret = vc_store_role_add(st, &(struct vc_store_role){ .name = name,
					.privileges = text, .builtin = true }, err);
	return ret;
}

/* The admin's password: the configured file, or a new one-time one. */
static int admin_password(struct mgr *m, struct vc_secret **pw, bool *one_time,
			  struct vc_error *err)
{
	const char *f = m->cfg.admin_password_file;
	char what[32];
	int fd, ret;

	*one_time = f == NULL && m->cfg.admin_password_fd < 0;
	if (*one_time)
		return vc_passwd_generate(VC_PASSWD_GEN_DEFAULT, pw, err);
	if (f) {
		fd = vc_private_file_open(f, "password file", err);
		if (fd < 0)
			return fd;
	} else {
		/* An inherited descriptor: a pipe from a script, never argv. */
		fd = m->cfg.admin_password_fd;
		snprintf(what, sizeof what, "--admin-password-fd %d", fd);
		f = what;
	}
	ret = vc_native_password_read_fd(fd, f, pw, err);
	close(fd);
	if (ret == 0 && vc_secret_len(*pw) < 8) {
		vc_secret_free(*pw);
		*pw = NULL;
		ret = vc_error_set(err, -EINVAL, "%s: the password must have at least 8 bytes", f);
	}
	return ret;
}

int mgr_first_start(struct mgr *m, struct vc_error *err)
{
	struct vc_store_object root;
	struct vc_secret *pw = NULL;
	char *hash = NULL;
	bool one_time = false;
	int ret = vc_store_object_get(m->st, "root", &root, err);

	if (ret == 0) {
		free(root.mem);
		return 0;
	}
	if (ret != -ENOENT)
		return ret;
	ret = admin_password(m, &pw, &one_time, err);
	if (ret == 0)
		ret = vc_passwd_hash(pw, NULL, &hash, err);
	if (ret == 0)
		ret = vc_store_begin(m->st, err);
	if (ret < 0)
		goto out;
	ret = add_role(m->st, VC_ROLE_ADMIN_ID, vc_role_admin(), err);
	if (ret == 0)
		ret = add_role(m->st, VC_ROLE_NO_CRYPTO_ADMIN_ID, vc_role_no_crypto_admin(), err);
	if (ret == 0)
		ret = add_role(m->st, VC_ROLE_READ_ONLY_ID, vc_role_read_only(), err);
	if (ret == 0)
		ret = vc_store_object_add(m->st, &(struct vc_store_object){
			.id = "root", .kind = VC_STORE_ROOT, .name = "vmcrypt" }, err);
	if (ret == 0)
		ret = vc_store_user_add(m->st, &(struct vc_store_user){
			.name = ADMIN_USER, .password_hash = hash, .created = now_s(),
			.must_change = one_time }, err);
	if (ret == 0)
		ret = vc_store_perm_add(m->st, &(struct vc_store_perm){
			.principal = ADMIN_USER, .role = VC_ROLE_ADMIN_ID, .object = "root",
			.propagate = true }, err);
	ret = vc_store_end(m->st, ret, err);
	if (ret == 0) {
		ev_log(m, NULL, "manager.init", "root", NULL, NULL, EV_OK,
		       "first start: created user '%s'%s", ADMIN_USER,
		       one_time ? " with a one-time password" : "");
		if (one_time)
			fprintf(stderr, "vmcryptd: first start: user '%s', one-time password: "
				"%.*s\n", ADMIN_USER, (int)vc_secret_len(pw),
				(const char *)vc_secret_data(pw));
		else
			fprintf(stderr, "vmcryptd: first start: user '%s' with the given "
				"password\n", ADMIN_USER);
	}
out:
	free(hash);
	vc_secret_free(pw);
	return ret;
}
