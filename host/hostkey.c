/* SPDX-License-Identifier: Apache-2.0 */
/* The host key (per host, wrapped by a KEK of the manager's default
 * provider) and the agent's encrypted state dumps (support bundles).
 *
 * A dump file: "VCDUMP1\n", one JSON line {"host_id", "provider",
 * "key_id", "wrapped_host_key"} and "\n", then an encrypted VM file
 * (docs/FORMAT.md, purpose "dump") under the host key. Only someone who
 * can get that KEK from the provider can read it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>

#include "hostd.h"
#include "vc_crypto.h"
#include "vc_encode.h"
#include "vc_json.h"
#include "vc_log.h"
#include "vc_vmfile.h"
#include "vc_wrap.h"

#define HOST_KEY_FORMAT "vmcrypt-host-key/1"
#define DUMP_MAGIC "VCDUMP1\n"

static struct vc_binding binding(struct hostd *h, struct vc_uuid *u)
{
	struct vc_binding b = { .format = HOST_KEY_FORMAT, .provider = h->hk_provider,
				.key_id = h->hk_key_id };

	if (vc_uuid_parse(h->host_id, u) == 0)
		b.object = u->b;
	return b;
}

const struct vc_field host_key_f[] = {
	{ "provider", VC_F_NAME, true, 0, 0, NULL, NULL },
	{ "key_id", VC_F_STRING, true, 1, 127, NULL, NULL },
	{ 0 },
};

/* PUT /api/v1/host/key: make the host key, wrapped by the given KEK
 * (which must be in the cache). Once made it stays. */
void h_host_key(struct hreq *r)
{
	struct hostd *h = r->h;
	const char *prov = json_string_value(json_object_get(r->body, "provider"));
	const char *id = json_string_value(json_object_get(r->body, "key_id"));
	struct cached_key *k = key_find(h, prov, id);
	struct vc_secret *hk = NULL;
	struct vc_error err = { 0 };
	uint8_t wrapped[32 + VC_WRAP_OVERHEAD];
	size_t wlen = 0;
	struct vc_uuid u;
	struct vc_binding b;
	int ret;

	if (h->hk_key_id[0]) {
		if (!strcmp(h->hk_provider, prov) && !strcmp(h->hk_key_id, id))
			reply_json(r, 200, json_pack("{s:s,s:s}", "provider", prov, "key_id", id));
		else
			reply_error(r, 409, "conflict", "this host already has a host key (wrapped "
				    "by key %s of %s)", h->hk_key_id, h->hk_provider);
		return;
	}
	if (!k) {
		reply_error(r, 409, "key_missing", "key %s of provider %s is not in the key cache",
			    id, prov);
		return;
	}
	snprintf(h->hk_provider, sizeof h->hk_provider, "%s", prov);
	snprintf(h->hk_key_id, sizeof h->hk_key_id, "%s", id);
	b = binding(h, &u);
	ret = vc_random_secret(32, &hk, &err);
	if (ret == 0)
		ret = vc_wrap_key(k->key, &b, hk, wrapped, sizeof wrapped, &wlen, &err);
	vc_secret_free(hk);
	if (ret == 0) {
		vc_base64_encode(wrapped, wlen, h->hk_wrapped);
		ret = state_save(h, &err);
	}
	if (ret < 0) {
		h->hk_provider[0] = h->hk_key_id[0] = h->hk_wrapped[0] = '\0';
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	vc_log(VC_LOG_INFO, "host key made, wrapped by key %s of %s", id, prov);
	reply_json(r, 201, json_pack("{s:s,s:s}", "provider", prov, "key_id", id));
}

/* The host key, unwrapped with the cached KEK. */
static int host_key(struct hostd *h, struct vc_secret **out, struct vc_error *err)
{
	struct cached_key *k = key_find(h, h->hk_provider, h->hk_key_id);
	uint8_t wrapped[128];
	size_t wlen = 0;
	struct vc_uuid u;
	struct vc_binding b = binding(h, &u);

	if (!h->hk_key_id[0])
		return vc_error_set(err, -ENOENT, "this host has no host key yet");
	if (!k)
		return vc_error_set(err, -ENOKEY, "key %s of provider %s (it wraps the host key) is "
				    "not in the key cache", h->hk_key_id, h->hk_provider);
	if (vc_base64_decode(h->hk_wrapped, strlen(h->hk_wrapped), wrapped, sizeof wrapped,
			     &wlen) < 0)
		return vc_error_set(err, -EBADMSG, "damaged wrapped host key");
	return vc_unwrap_key(k->key, &b, wrapped, wlen, out, err);
}

/* POST /api/v1/host/dump: the agent's state, sealed under the host key,
 * kept in <data>/dumps/ and returned (base64). */
void h_host_dump(struct hreq *r)
{
	struct hostd *h = r->h;
	struct vc_secret *hk = NULL;
	struct vc_error err = { 0 };
	json_t *state, *hdr;
	char *text = NULL, *line = NULL, dir[PATH_MAX], path[PATH_MAX + 64], *b64 = NULL;
	int in = -1, out = -1, ret = host_key(h, &hk, &err);
	struct stat sb;
	uint8_t *all = NULL;

	if (ret < 0) {
		reply_error(r, ret == -ENOENT || ret == -ENOKEY ? 409 : 500,
			    ret == -ENOENT ? "no_host_key" : ret == -ENOKEY ? "key_missing" : "internal",
			    "%s", vc_error_msg(&err));
		return;
	}
	/* The state: what support needs, no key (ids only). */
	state = json_pack("{s:s,s:s,s:I,s:b,s:I,s:o}", "host_id", h->host_id, "version",
			  VMCRYPT_VERSION, "time", (json_int_t)time(NULL), "encryption_mode",
			  h->encryption_mode, "cached_keys", (json_int_t)h->nkeys, "vms",
			  vms_json(h));
	text = state ? json_dumps(state, JSON_INDENT(1)) : NULL;
	json_decref(state);
	hdr = json_pack("{s:s,s:s,s:s,s:s}", "host_id", h->host_id, "provider", h->hk_provider,
			"key_id", h->hk_key_id, "wrapped_host_key", h->hk_wrapped);
	line = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
	json_decref(hdr);
	snprintf(dir, sizeof dir, "%s/dumps", h->data_dir);
	snprintf(path, sizeof path, "%s/dump-%lld.vcdump", dir, (long long)time(NULL));
	if (!text || !line)
		ret = vc_error_set(&err, -ENOMEM, "out of memory");
	if (ret == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
		ret = vc_error_errno(&err, errno, "cannot create %s", dir);
	if (ret == 0) {
		in = memfd_create("vmcrypt-dump", MFD_CLOEXEC);
		out = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (in < 0 || out < 0 || write(in, text, strlen(text)) != (ssize_t)strlen(text) ||
		    lseek(in, 0, SEEK_SET) < 0 ||
		    write(out, DUMP_MAGIC, strlen(DUMP_MAGIC)) != (ssize_t)strlen(DUMP_MAGIC) ||
		    write(out, line, strlen(line)) != (ssize_t)strlen(line) || write(out, "\n", 1) != 1)
			ret = vc_error_errno(&err, errno, "cannot write %s", path);
	}
	if (ret == 0)
		ret = vc_vmfile_seal_fd(hk, "dump", 12, in, out, NULL, &err);
	if (ret == 0 && (fsync(out) < 0 || fstat(out, &sb) < 0 || sb.st_size > (1 << 24)))
		ret = vc_error_set(&err, -EIO, "cannot finish %s", path);
	if (ret == 0) {
		all = malloc((size_t)sb.st_size);
		b64 = malloc(vc_base64_encoded_len((size_t)sb.st_size));
		if (!all || !b64 || pread(out, all, (size_t)sb.st_size, 0) != sb.st_size)
			ret = vc_error_set(&err, -ENOMEM, "cannot read back %s", path);
	}
	if (ret == 0)
		vc_base64_encode(all, (size_t)sb.st_size, b64);
	vc_secret_free(hk);
	if (text) {
		vc_wipe(text, strlen(text));
		vc_json_free_dump(text);
	}
	vc_json_free_dump(line);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (ret < 0) {
		unlink(path);
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
	} else {
		vc_log(VC_LOG_INFO, "wrote an encrypted state dump: %s", path);
		reply_json(r, 201, json_pack("{s:s,s:s}", "file", strrchr(path, '/') + 1, "dump",
					     b64));
	}
	free(all);
	free(b64);
}

json_t *host_key_needed(struct hostd *h)
{
	if (!h->hk_key_id[0] || key_find(h, h->hk_provider, h->hk_key_id))
		return json_array();
	return json_pack("[{s:s,s:s}]", "provider", h->hk_provider, "key_id", h->hk_key_id);
}
