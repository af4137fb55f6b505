/* SPDX-License-Identifier: Apache-2.0 */
/* The native key provider: sealed master key, HKDF KEKs, scrypt backups. */
#define _GNU_SOURCE
#include "vc_native.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vc_crypto.h"
#include "vc_encode.h"

#define MASTER_LEN 32
#define GCM_KEY_LEN 32
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16

/* Domain-separation labels (docs/KEYS.md, "Derivation" and "Sealing").
 * Every label is distinct and none is a prefix of another, so no two
 * purposes can ever derive the same bytes. */
#define SEAL_LABEL "vmcrypt-native-master/1"
#define STATE_MAC_LABEL "vmcrypt-native-state-mac/1"
#define KEK_LABEL "vmcrypt-native-kek/1:"

/* State file, version 1 (docs/KEYS.md, "State file"):
 *   0 magic "VCNKPROV" | 8 u16 version | 10 u16 flags | 12 u32 sealer type
 *  16 provider id[16]  | 32 u64 created | 40 u64 backup time
 *  48 u32 sealed length | 52 u32 reserved (0) | 56 sealed blob
 *  then HMAC-SHA-256 over everything before it. */
#define STATE_MAGIC "VCNKPROV"
#define STATE_VERSION 1
#define STATE_HDR_LEN 56
#define STATE_MAC_LEN VC_SHA256_LEN
#define STATE_FLAG_BACKUP 0x1u
#define STATE_MAX (STATE_HDR_LEN + VC_SEALED_MAX + STATE_MAC_LEN)

/* Backup envelope, version 1 (docs/KEYS.md, "Backup envelope"). */
#define BK_MAGIC "VCNKPBAK"
#define BK_VERSION 1
#define BK_KDF_SCRYPT 1
#define BK_OFF_LOG2N 12
#define BK_OFF_R 16
#define BK_OFF_P 20
#define BK_OFF_EXPORTED 24
#define BK_OFF_SALT 32
#define BK_SALT_LEN 32
#define BK_OFF_NONCE 64
#define BK_OFF_CHECK 76
#define BK_CHECK_LEN 16
#define BK_OFF_CT 92
#define BK_PT_LEN (16 + 8 + MASTER_LEN)
#define BK_OFF_TAG (BK_OFF_CT + BK_PT_LEN)
#define BK_OFF_SUM (BK_OFF_TAG + GCM_TAG_LEN)
#define BK_DK_LEN (GCM_KEY_LEN + BK_CHECK_LEN)
_Static_assert(BK_OFF_SALT + BK_SALT_LEN == BK_OFF_NONCE, "envelope layout");
_Static_assert(BK_OFF_NONCE + GCM_NONCE_LEN == BK_OFF_CHECK, "envelope layout");
_Static_assert(BK_OFF_CHECK + BK_CHECK_LEN == BK_OFF_CT, "envelope layout");
_Static_assert(BK_OFF_SUM + VC_SHA256_LEN == VC_NATIVE_BACKUP_LEN, "envelope length");

/* scrypt memory bound: 128 * r * N <= 1 GiB. */
#define SCRYPT_RN_MAX ((uint64_t)1 << 23)

struct vc_native {
	char *dir;
	char *state_path;
	struct vc_sealer *sealer;
	bool own_sealer;
	struct vc_uuid id;
	char id_str[VC_UUID_STR_LEN];
	uint64_t created;
	struct vc_secret *master;  /* immutable while open: read without lock */
	unsigned flags;
	/* The sealed blob as the state file holds it: rewriting the state
	 * (backup taken) must not need the sealer again (a TPM is slow). */
	uint8_t sealed[VC_SEALED_MAX];
	size_t sealed_len;
	pthread_mutex_t lock;      /* state file writes, backup_time */
	atomic_bool backup_taken;  /* read lock-free by get_key */
	uint64_t backup_time;
};

static uint64_t now_seconds(void)
{
	time_t t = time(NULL);

	return t > 0 ? (uint64_t)t : 0;
}

static void *unconst(const void *p)
{
	union {
		const void *c;
		void *v;
	} u = { .c = p };

	return u.v;
}

/* One AES-256-GCM pass (enc: 1 encrypt, 0 decrypt). A tag that does not
 * verify is -EBADMSG with no message: callers know what it means. */
static int gcm(int enc, const uint8_t *key, const uint8_t *nonce,
	       const uint8_t *aad, size_t aadlen, const uint8_t *in,
	       uint8_t *out, size_t len, uint8_t *tag, struct vc_error *err)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl = 0, ok;

	if (!ctx)
		return vc_error_ssl(err, -ENOMEM, "cipher context");
	ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE_LEN, NULL) == 1 &&
	     EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) == 1 &&
	     EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadlen) == 1 &&
	     EVP_CipherUpdate(ctx, out, &outl, in, (int)len) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(ctx, out + outl, &outl) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		if (enc)
			return vc_error_ssl(err, -EIO, "AES-256-GCM encryption failed");
		vc_wipe(out, len);
		ERR_clear_error();
		return -EBADMSG;
	}
	return 0;
}

/* ---- Files ---------------------------------------------------------- */

static char *path_join(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static int fsync_dir_of(const char *path, struct vc_error *err)
{
	VC_CLEANUP_FREE char *dir = strdup(path);
	VC_CLEANUP_CLOSE int fd = -1;
	char *slash;

	if (!dir)
		return vc_error_set(err, -ENOMEM, "out of memory");
	slash = strrchr(dir, '/');
	if (!slash) {
		free(dir);
		dir = strdup(".");
		if (!dir)
			return vc_error_set(err, -ENOMEM, "out of memory");
	} else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return vc_error_errno(err, errno, "%s: cannot sync directory", dir);
	return 0;
}

/* Write path atomically with mode 0600: a temporary file in the same
 * directory, fsync, then rename over path (or, with noreplace, link to
 * path so that an existing file is never replaced: -EEXIST), then fsync
 * the directory. A crash leaves the old file or the new one, never a mix. */
static int write_atomic(const char *path, const void *data, size_t len,
			bool noreplace, struct vc_error *err)
{
	VC_CLEANUP_FREE char *tmp = NULL;
	uint8_t rnd[8];
	char hex[2 * sizeof rnd + 1];
	const uint8_t *p = data;
	int fd, r, e;

	if ((r = vc_random_bytes(rnd, sizeof rnd, err)) < 0)
		return r;
	vc_hex_encode(rnd, sizeof rnd, hex);
	if (asprintf(&tmp, "%s.tmp-%s", path, hex) < 0) {
		tmp = NULL;
		return vc_error_set(err, -ENOMEM, "out of memory");
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return vc_error_errno(err, errno, "%s: cannot create", tmp);
	/* The umask may only have removed bits; make the mode exact. */
	if (fchmod(fd, 0600) < 0) {
		r = vc_error_errno(err, errno, "%s: cannot set mode 0600", tmp);
		goto fail;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = vc_error_errno(err, errno, "%s: write failed", tmp);
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = vc_error_errno(err, errno, "%s: fsync failed", tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = vc_error_errno(err, errno, "%s: close failed", tmp);
		goto fail;
	}
	fd = -1;
	if (noreplace) {
		if (link(tmp, path) < 0) {
			e = errno;
			r = e == EEXIST ? vc_error_set(err, -EEXIST, "%s: already exists", path)
					: vc_error_errno(err, e, "%s: cannot create", path);
			goto fail;
		}
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		r = vc_error_errno(err, errno, "%s: cannot rename into place", path);
		goto fail;
	}
	return fsync_dir_of(path, err);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

/* Read a whole private file: a regular file (not a symlink) owned by us
 * and not accessible by group or others, at most cap bytes. A missing
 * file is -ENOENT. */
static int read_private_file(const char *path, const char *what, uint8_t *buf,
			     size_t cap, size_t *len, struct vc_error *err)
{
	VC_CLEANUP_CLOSE int fd = -1;
	struct stat st;
	size_t have = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			return vc_error_set(err, -EPERM, "%s: %s is a symbolic link; refusing it",
					    path, what);
		return vc_error_errno(err, errno, "%s: cannot open %s", path, what);
	}
	if (fstat(fd, &st) < 0)
		return vc_error_errno(err, errno, "%s: cannot stat %s", path, what);
	if (!S_ISREG(st.st_mode))
		return vc_error_set(err, -EPERM, "%s: %s is not a regular file", path, what);
	if (st.st_uid != geteuid())
		return vc_error_set(err, -EPERM, "%s: %s is not owned by this user", path, what);
	if (st.st_mode & 077)
		return vc_error_set(err, -EPERM,
				    "%s: %s is accessible by group or others (mode %03o); chmod 600 it",
				    path, what, (unsigned)(st.st_mode & 0777));
	for (;;) {
		ssize_t n = read(fd, buf + have, cap - have);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: cannot read %s", path, what);
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have == cap) {
			uint8_t extra;

			n = read(fd, &extra, 1);
			if (n != 0)
				return vc_error_set(err, -EBADMSG, "%s: %s is too large", path, what);
			break;
		}
	}
	*len = have;
	return 0;
}

/* The provider directory: created 0700 if allowed, then it must be a
 * directory of ours that nobody else can write to (else they could swap
 * its files). */
static int check_dir(const char *dir, bool create, struct vc_error *err)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		if (errno != ENOENT || !create)
			return vc_error_errno(err, errno, "%s: native key provider directory", dir);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return vc_error_errno(err, errno, "%s: cannot create directory", dir);
		if (stat(dir, &st) < 0)
			return vc_error_errno(err, errno, "%s: native key provider directory", dir);
	}
	if (!S_ISDIR(st.st_mode))
		return vc_error_set(err, -ENOTDIR, "%s: not a directory", dir);
	if (st.st_uid != geteuid())
		return vc_error_set(err, -EPERM, "%s: directory is not owned by this user", dir);
	if (st.st_mode & 022)
		return vc_error_set(err, -EPERM,
				    "%s: directory is writable by group or others (mode %03o); chmod 700 it",
				    dir, (unsigned)(st.st_mode & 0777));
	return 0;
}

/* ---- The host-key sealer -------------------------------------------- */

struct host_key_sealer {
	struct vc_sealer base; /* first: the vc_sealer * is this struct */
	char *path;
};

static int hk_load(struct host_key_sealer *h, bool create,
		   struct vc_secret **key, struct vc_error *err)
{
	struct vc_secret *fresh = NULL;
	int r = vc_secret_read_file(h->path, GCM_KEY_LEN, key, err);

	if (r != -ENOENT)
		return r;
	if (!create)
		return vc_error_set(err, -ENOKEY,
				    "%s: sealing key is missing, so the provider's master key cannot be unsealed; restore the provider from its backup",
				    h->path);
	if ((r = vc_random_secret(GCM_KEY_LEN, &fresh, err)) < 0)
		return r;
	r = write_atomic(h->path, vc_secret_data(fresh), GCM_KEY_LEN, true, err);
	if (r == -EEXIST) {
		/* Someone else created it first: use theirs. */
		vc_secret_free(fresh);
		return vc_secret_read_file(h->path, GCM_KEY_LEN, key, err);
	}
	if (r < 0) {
		vc_secret_free(fresh);
		return r;
	}
	*key = fresh;
	return 0;
}

/* Blob: nonce (12) || ciphertext || tag (16), AES-256-GCM, aad as given. */
static int hk_seal(struct vc_sealer *s, const void *aad, size_t aadlen,
		   const struct vc_secret *secret, uint8_t *out, size_t outcap,
		   size_t *outlen, struct vc_error *err)
{
	struct host_key_sealer *h = (struct host_key_sealer *)s;
	VC_CLEANUP_SECRET struct vc_secret *key = NULL;
	size_t len = vc_secret_len(secret);
	int r;

	if (outcap < len + GCM_NONCE_LEN + GCM_TAG_LEN)
		return vc_error_set(err, -ENOSPC, "sealed blob buffer too small");
	if ((r = hk_load(h, true, &key, err)) < 0 ||
	    (r = vc_random_bytes(out, GCM_NONCE_LEN, err)) < 0)
		return r;
	r = gcm(1, vc_secret_data(key), out, aad, aadlen, vc_secret_data(secret),
		out + GCM_NONCE_LEN, len, out + GCM_NONCE_LEN + len, err);
	if (r < 0)
		return r;
	*outlen = GCM_NONCE_LEN + len + GCM_TAG_LEN;
	return 0;
}

static int hk_unseal(struct vc_sealer *s, const void *aad, size_t aadlen,
		     const uint8_t *blob, size_t bloblen,
		     struct vc_secret **out, struct vc_error *err)
{
	struct host_key_sealer *h = (struct host_key_sealer *)s;
	VC_CLEANUP_SECRET struct vc_secret *key = NULL;
	struct vc_secret *secret = NULL;
	uint8_t tag[GCM_TAG_LEN];
	size_t len;
	int r;

	*out = NULL;
	if (bloblen <= GCM_NONCE_LEN + GCM_TAG_LEN)
		return vc_error_set(err, -EBADMSG, "sealed blob too short");
	len = bloblen - GCM_NONCE_LEN - GCM_TAG_LEN;
	if ((r = hk_load(h, false, &key, err)) < 0 ||
	    (r = vc_secret_new(len, &secret, err)) < 0)
		return r;
	memcpy(tag, blob + GCM_NONCE_LEN + len, sizeof tag);
	r = gcm(0, vc_secret_data(key), blob, aad, aadlen, blob + GCM_NONCE_LEN,
		vc_secret_data(secret), len, tag, err);
	if (r < 0) {
		vc_secret_free(secret);
		if (r == -EBADMSG)
			return vc_error_set(err, -EBADMSG,
					    "sealed master key does not authenticate under %s (another sealing key, or the state file was altered)",
					    h->path);
		return r;
	}
	*out = secret;
	return 0;
}

static void hk_free(struct vc_sealer *s)
{
	struct host_key_sealer *h = (struct host_key_sealer *)s;

	free(h->path);
	free(h);
}

int vc_sealer_host_key_new(const char *path, struct vc_sealer **out,
			   struct vc_error *err)
{
	struct host_key_sealer *h;

	*out = NULL;
	h = calloc(1, sizeof *h);
	if (!h || !(h->path = strdup(path))) {
		free(h);
		return vc_error_set(err, -ENOMEM, "out of memory");
	}
	h->base.name = "host-key";
	h->base.type = VC_SEALER_HOST_KEY;
	h->base.seal = hk_seal;
	h->base.unseal = hk_unseal;
	h->base.free = hk_free;
	*out = &h->base;
	return 0;
}

void vc_sealer_free(struct vc_sealer *s)
{
	if (s)
		s->free(s);
}

/* ---- Derivation ----------------------------------------------------- */

static int derive(const struct vc_native *p, const char *info, size_t infolen,
		  void *out, size_t outlen, struct vc_error *err)
{
	return vc_hkdf_sha256(vc_secret_data(p->master), MASTER_LEN, p->id.b,
			      sizeof p->id.b, info, infolen, out, outlen, err);
}

/* The sealer's associated data: label || provider id. */
static size_t seal_aad(const struct vc_uuid *id, uint8_t *out)
{
	memcpy(out, SEAL_LABEL, sizeof SEAL_LABEL - 1);
	memcpy(out + sizeof SEAL_LABEL - 1, id->b, sizeof id->b);
	return sizeof SEAL_LABEL - 1 + sizeof id->b;
}

#define SEAL_AAD_LEN (sizeof SEAL_LABEL - 1 + 16)

/* ---- State file ----------------------------------------------------- */

static int state_mac(const struct vc_native *p, const uint8_t *data, size_t len,
		     uint8_t mac[STATE_MAC_LEN], struct vc_error *err)
{
	uint8_t key[VC_SHA256_LEN];
	int r = derive(p, STATE_MAC_LABEL, sizeof STATE_MAC_LABEL - 1, key,
		       sizeof key, err);

	if (r == 0)
		r = vc_hmac_sha256(key, sizeof key, data, len, mac, err);
	vc_wipe(key, sizeof key);
	return r;
}

/* Serialise and write the state; the caller holds the lock (or owns p
 * alone). */
static int write_state(struct vc_native *p, bool backup_taken,
		       uint64_t backup_time, bool noreplace,
		       struct vc_error *err)
{
	uint8_t buf[STATE_MAX];
	size_t len = STATE_HDR_LEN + p->sealed_len;
	int r;

	memset(buf, 0, STATE_HDR_LEN);
	memcpy(buf, STATE_MAGIC, 8);
	vc_put_le16(buf + 8, STATE_VERSION);
	vc_put_le16(buf + 10, backup_taken ? STATE_FLAG_BACKUP : 0);
	vc_put_le32(buf + 12, p->sealer->type);
	memcpy(buf + 16, p->id.b, 16);
	vc_put_le64(buf + 32, p->created);
	vc_put_le64(buf + 40, backup_time);
	vc_put_le32(buf + 48, (uint32_t)p->sealed_len);
	memcpy(buf + STATE_HDR_LEN, p->sealed, p->sealed_len);
	if ((r = state_mac(p, buf, len, buf + len, err)) < 0)
		return r;
	r = write_atomic(p->state_path, buf, len + STATE_MAC_LEN, noreplace, err);
	if (r < 0)
		vc_error_prefix(err, "native key provider %s", p->id_str);
	return r;
}

struct state_hdr {
	uint16_t flags;
	uint32_t sealer_type;
	struct vc_uuid id;
	uint64_t created, backup_time;
	uint32_t sealed_len;
};

/* Structure only: magic, version, lengths, reserved bits. No key needed,
 * so restore can tell which provider a directory holds. */
static int parse_state(const char *path, const uint8_t *buf, size_t len,
		       struct state_hdr *h, struct vc_error *err)
{
	uint16_t version;

	if (len < 8 || memcmp(buf, STATE_MAGIC, 8) != 0)
		return vc_error_set(err, -EBADMSG,
				    "%s: not a native key provider state file", path);
	if (len < STATE_HDR_LEN)
		return vc_error_set(err, -EBADMSG, "%s: state file truncated", path);
	version = vc_get_le16(buf + 8);
	if (version != STATE_VERSION)
		return vc_error_set(err, -ENOTSUP,
				    "%s: state file version %u is not supported (this build reads version %u)",
				    path, version, STATE_VERSION);
	h->flags = vc_get_le16(buf + 10);
	h->sealer_type = vc_get_le32(buf + 12);
	memcpy(h->id.b, buf + 16, 16);
	h->created = vc_get_le64(buf + 32);
	h->backup_time = vc_get_le64(buf + 40);
	h->sealed_len = vc_get_le32(buf + 48);
	if ((h->flags & ~STATE_FLAG_BACKUP) || vc_get_le32(buf + 52) != 0)
		return vc_error_set(err, -EBADMSG, "%s: state file has unknown flags set", path);
	if (h->sealed_len == 0 || h->sealed_len > VC_SEALED_MAX)
		return vc_error_set(err, -EBADMSG, "%s: state file sealed length %u out of range",
				    path, h->sealed_len);
	if (len != STATE_HDR_LEN + h->sealed_len + STATE_MAC_LEN)
		return vc_error_set(err, -EBADMSG,
				    "%s: state file is %zu bytes, its header says %zu (truncated or damaged)",
				    path, len, (size_t)(STATE_HDR_LEN + h->sealed_len + STATE_MAC_LEN));
	if (vc_uuid_is_nil(&h->id))
		return vc_error_set(err, -EBADMSG, "%s: state file has a nil provider id", path);
	return 0;
}

static const char *sealer_type_name(uint32_t type)
{
	switch (type) {
	case VC_SEALER_HOST_KEY:
		return "host-key";
	case VC_SEALER_TPM2:
		return "tpm2";
	default:
		return "unknown";
	}
}

/* Parse, unseal, then authenticate the whole file with the MAC. */
static int load_state(struct vc_native *p, const uint8_t *buf, size_t len,
		      struct vc_error *err)
{
	uint8_t aad[SEAL_AAD_LEN], mac[STATE_MAC_LEN];
	struct state_hdr h;
	size_t maclen_off;
	int r;

	if ((r = parse_state(p->state_path, buf, len, &h, err)) < 0)
		return r;
	if (h.sealer_type != p->sealer->type)
		return vc_error_set(err, -ENOTSUP,
				    "%s: master key is sealed by sealer type %u (%s) but was opened with the '%s' sealer",
				    p->state_path, h.sealer_type,
				    sealer_type_name(h.sealer_type), p->sealer->name);
	p->id = h.id;
	vc_uuid_format(&p->id, p->id_str);
	p->created = h.created;
	memcpy(p->sealed, buf + STATE_HDR_LEN, h.sealed_len);
	p->sealed_len = h.sealed_len;
	r = p->sealer->unseal(p->sealer, aad, seal_aad(&p->id, aad), p->sealed,
			      p->sealed_len, &p->master, err);
	if (r < 0) {
		vc_error_prefix(err, "native key provider %s", p->id_str);
		return r;
	}
	if (vc_secret_len(p->master) != MASTER_LEN)
		return vc_error_set(err, -EBADMSG, "%s: sealed master key has the wrong length",
				    p->state_path);
	maclen_off = STATE_HDR_LEN + h.sealed_len;
	if ((r = state_mac(p, buf, maclen_off, mac, err)) < 0)
		return r;
	if (!vc_ct_equal(mac, buf + maclen_off, STATE_MAC_LEN))
		return vc_error_set(err, -EBADMSG,
				    "%s: state file does not authenticate (it was altered)",
				    p->state_path);
	atomic_store(&p->backup_taken, (h.flags & STATE_FLAG_BACKUP) != 0);
	p->backup_time = h.backup_time;
	return 0;
}

static int seal_master(struct vc_native *p, struct vc_error *err)
{
	uint8_t aad[SEAL_AAD_LEN];
	size_t n = 0;
	int r = p->sealer->seal(p->sealer, aad, seal_aad(&p->id, aad), p->master,
				p->sealed, sizeof p->sealed, &n, err);

	if (r < 0)
		return r;
	if (n == 0 || n > VC_SEALED_MAX)
		return vc_error_set(err, -EIO, "sealer '%s' returned a blob of %zu bytes",
				    p->sealer->name, n);
	p->sealed_len = n;
	return 0;
}

/* ---- Open and close ------------------------------------------------- */

static int native_new(const char *dir, struct vc_sealer *sealer, unsigned flags,
		      struct vc_native **out, struct vc_error *err)
{
	struct vc_native *p = calloc(1, sizeof *p);
	VC_CLEANUP_FREE char *keypath = NULL;
	int r;

	*out = NULL;
	if (!p)
		return vc_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->backup_taken, false);
	p->flags = flags;
	p->dir = strdup(dir);
	p->state_path = path_join(dir, VC_NATIVE_STATE_FILE);
	if (!p->dir || !p->state_path) {
		vc_native_close(p);
		return vc_error_set(err, -ENOMEM, "out of memory");
	}
	if (sealer) {
		p->sealer = sealer;
	} else {
		keypath = path_join(dir, VC_NATIVE_SEALING_KEY_FILE);
		if (!keypath) {
			vc_native_close(p);
			return vc_error_set(err, -ENOMEM, "out of memory");
		}
		if ((r = vc_sealer_host_key_new(keypath, &p->sealer, err)) < 0) {
			vc_native_close(p);
			return r;
		}
		p->own_sealer = true;
	}
	*out = p;
	return 0;
}

static int create_provider(struct vc_native *p, struct vc_error *err)
{
	int r;

	if ((r = vc_uuid_generate(&p->id, err)) < 0 ||
	    (r = vc_random_secret(MASTER_LEN, &p->master, err)) < 0)
		return r;
	vc_uuid_format(&p->id, p->id_str);
	p->created = now_seconds();
	if ((r = seal_master(p, err)) < 0)
		return r;
	/* Never replace: two processes creating at once must not each
	 * believe their master key is the provider's. */
	return write_state(p, false, 0, true, err);
}

int vc_native_open(const char *dir, struct vc_sealer *sealer, unsigned flags,
		   struct vc_native **out, struct vc_error *err)
{
	struct vc_native *p = NULL;
	uint8_t buf[STATE_MAX];
	size_t len = 0;
	int r;

	*out = NULL;
	if (flags & ~(VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP))
		return vc_error_set(err, -EINVAL, "unknown native key provider flags %#x", flags);
	if ((r = check_dir(dir, flags & VC_NATIVE_CREATE, err)) < 0 ||
	    (r = native_new(dir, sealer, flags, &p, err)) < 0)
		return r;
	r = read_private_file(p->state_path, "native key provider state", buf,
			      sizeof buf, &len, err);
	if (r == -ENOENT && (flags & VC_NATIVE_CREATE))
		r = create_provider(p, err);
	else if (r == -ENOENT)
		r = vc_error_set(err, -ENOENT, "%s: no native key provider in this directory",
				 dir);
	else if (r == 0)
		r = load_state(p, buf, len, err);
	if (r < 0) {
		vc_native_close(p);
		return r;
	}
	*out = p;
	return 0;
}

void vc_native_close(struct vc_native *p)
{
	if (!p)
		return;
	vc_secret_free(p->master);
	if (p->own_sealer)
		vc_sealer_free(p->sealer);
	vc_wipe(p->sealed, sizeof p->sealed);
	pthread_mutex_destroy(&p->lock);
	free(p->state_path);
	free(p->dir);
	free(p);
}

/* ---- Keys ----------------------------------------------------------- */

static int check_backup_gate(struct vc_native *p, struct vc_error *err)
{
	if ((p->flags & VC_NATIVE_ALLOW_NO_BACKUP) || atomic_load(&p->backup_taken))
		return 0;
	return vc_error_set(err, -EPERM,
			    "native key provider '%s': no backup has been taken; back it up first (or allow keys without a backup)",
			    p->id_str);
}

static int derive_kek(struct vc_native *p, const struct vc_uuid *key,
		      struct vc_secret **kek, struct vc_error *err)
{
	char info[sizeof KEK_LABEL - 1 + VC_UUID_STR_LEN];
	struct vc_secret *s = NULL;
	int r;

	memcpy(info, KEK_LABEL, sizeof KEK_LABEL - 1);
	/* The canonical (lower-case) form, so either case gives one KEK. */
	vc_uuid_format(key, info + sizeof KEK_LABEL - 1);
	if ((r = vc_secret_new(VC_NATIVE_KEK_LEN, &s, err)) < 0)
		return r;
	r = derive(p, info, sizeof info - 1, vc_secret_data(s), VC_NATIVE_KEK_LEN, err);
	if (r < 0) {
		vc_secret_free(s);
		return r;
	}
	*kek = s;
	return 0;
}

int vc_native_create_key(struct vc_native *p, char key_id[VC_UUID_STR_LEN],
			 struct vc_secret **kek, struct vc_error *err)
{
	struct vc_uuid u;
	int r;

	if (kek)
		*kek = NULL;
	if ((r = check_backup_gate(p, err)) < 0 ||
	    (r = vc_uuid_generate(&u, err)) < 0)
		return r;
	if (kek && (r = derive_kek(p, &u, kek, err)) < 0)
		return r;
	vc_uuid_format(&u, key_id);
	return 0;
}

int vc_native_get_key(struct vc_native *p, const char *key_id,
		      struct vc_secret **kek, struct vc_error *err)
{
	struct vc_uuid u;
	int r;

	*kek = NULL;
	if (!key_id || strnlen(key_id, VC_UUID_STR_LEN) != VC_UUID_STR_LEN - 1 ||
	    vc_uuid_parse(key_id, &u) < 0 || vc_uuid_is_nil(&u)) {
		char shown[41];
		size_t i = 0;

		/* Echo the id for the user, but never raw control bytes. */
		for (; key_id && key_id[i] && i < sizeof shown - 1; i++)
			shown[i] = (key_id[i] >= 0x20 && key_id[i] < 0x7f) ? key_id[i] : '?';
		shown[i] = '\0';
		return vc_error_set(err, -EINVAL,
				    "native key provider '%s': malformed key id '%s%s' (expected a UUID: 8-4-4-4-12 hex digits, not all zero)",
				    p->id_str, shown, key_id && key_id[i] ? "..." : "");
	}
	if ((r = check_backup_gate(p, err)) < 0)
		return r;
	return derive_kek(p, &u, kek, err);
}

void vc_native_info(struct vc_native *p, struct vc_native_info *out)
{
	memset(out, 0, sizeof *out);
	memcpy(out->provider_id, p->id_str, sizeof out->provider_id);
	out->created = p->created;
	pthread_mutex_lock(&p->lock);
	out->backup_taken = atomic_load(&p->backup_taken);
	out->backup_time = p->backup_time;
	pthread_mutex_unlock(&p->lock);
	out->allow_no_backup = (p->flags & VC_NATIVE_ALLOW_NO_BACKUP) != 0;
	snprintf(out->sealer, sizeof out->sealer, "%s", p->sealer->name);
}

/* ---- Backup envelope ------------------------------------------------ */

static int check_scrypt(const struct vc_native_scrypt *c, struct vc_error *err)
{
	if (c->log2_n < 1 || c->log2_n > 30 || c->r < 1 || c->p < 1 || c->p > 64 ||
	    ((uint64_t)c->r << c->log2_n) > SCRYPT_RN_MAX)
		return vc_error_set(err, -EINVAL,
				    "scrypt parameters N=2^%u r=%u p=%u out of range (1 <= log2 N <= 30, r >= 1, 1 <= p <= 64, 128*r*N <= 1 GiB)",
				    c->log2_n, c->r, c->p);
	return 0;
}

/* scrypt (RFC 7914) of the password into out; the parameters are checked. */
static int scrypt_derive(const struct vc_secret *password, const uint8_t *salt,
			 const struct vc_native_scrypt *c, uint8_t *out,
			 size_t outlen, struct vc_error *err)
{
	uint64_t n = (uint64_t)1 << c->log2_n;
	/* OpenSSL's own accounting: 128 * r * (N + 2) + 128 * r * p. */
	uint64_t maxmem = 128 * (uint64_t)c->r * (n + 2 + c->p);
	uint32_t r = c->r, p = c->p;
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[7], *q = params;
	int ok;

	kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	if (!kdf)
		return vc_error_ssl(err, -ENOSYS, "scrypt unavailable");
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!ctx)
		return vc_error_ssl(err, -ENOMEM, "scrypt context");
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
						 vc_secret_data(password),
						 vc_secret_len(password));
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						 unconst(salt), BK_SALT_LEN);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	*q = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(ctx, out, outlen, params);
	EVP_KDF_CTX_free(ctx);
	if (ok != 1)
		return vc_error_ssl(err, -EIO, "scrypt failed (N=2^%u r=%u p=%u)",
				    c->log2_n, c->r, c->p);
	return 0;
}

int vc_native_backup(struct vc_native *p, const struct vc_secret *password,
		     const struct vc_native_scrypt *params,
		     uint8_t out[VC_NATIVE_BACKUP_LEN], struct vc_error *err)
{
	struct vc_native_scrypt c = params ? *params : VC_NATIVE_SCRYPT_DEFAULT;
	VC_CLEANUP_SECRET struct vc_secret *dk = NULL, *pt = NULL;
	uint64_t exported = now_seconds();
	uint8_t *q;
	int r;

	if (vc_secret_len(password) < VC_NATIVE_PASSWORD_MIN ||
	    vc_secret_len(password) > VC_NATIVE_PASSWORD_MAX)
		return vc_error_set(err, -EINVAL,
				    "backup password must be %d to %d bytes long, got %zu",
				    VC_NATIVE_PASSWORD_MIN, VC_NATIVE_PASSWORD_MAX,
				    vc_secret_len(password));
	if ((r = check_scrypt(&c, err)) < 0)
		return r;
	memset(out, 0, VC_NATIVE_BACKUP_LEN);
	memcpy(out, BK_MAGIC, 8);
	vc_put_le16(out + 8, BK_VERSION);
	vc_put_le16(out + 10, BK_KDF_SCRYPT);
	out[BK_OFF_LOG2N] = c.log2_n;
	vc_put_le32(out + BK_OFF_R, c.r);
	vc_put_le32(out + BK_OFF_P, c.p);
	vc_put_le64(out + BK_OFF_EXPORTED, exported);
	if ((r = vc_random_bytes(out + BK_OFF_SALT, BK_SALT_LEN, err)) < 0 ||
	    (r = vc_random_bytes(out + BK_OFF_NONCE, GCM_NONCE_LEN, err)) < 0 ||
	    (r = vc_secret_new(BK_DK_LEN, &dk, err)) < 0 ||
	    (r = vc_secret_new(BK_PT_LEN, &pt, err)) < 0 ||
	    (r = scrypt_derive(password, out + BK_OFF_SALT, &c, vc_secret_data(dk),
			       BK_DK_LEN, err)) < 0)
		goto fail;
	memcpy(out + BK_OFF_CHECK, vc_secret_data(dk) + GCM_KEY_LEN, BK_CHECK_LEN);
	q = vc_secret_data(pt);
	memcpy(q, p->id.b, 16);
	vc_put_le64(q + 16, p->created);
	memcpy(q + 24, vc_secret_data(p->master), MASTER_LEN);
	if ((r = gcm(1, vc_secret_data(dk), out + BK_OFF_NONCE, out, BK_OFF_CT, q,
		     out + BK_OFF_CT, BK_PT_LEN, out + BK_OFF_TAG, err)) < 0 ||
	    (r = vc_sha256(out, BK_OFF_SUM, out + BK_OFF_SUM, err)) < 0)
		goto fail;

	/* Recorded on disk first, then in memory: the gate opens only once
	 * the export is durable. */
	pthread_mutex_lock(&p->lock);
	r = write_state(p, true, exported, false, err);
	if (r == 0) {
		p->backup_time = exported;
		atomic_store(&p->backup_taken, true);
	}
	pthread_mutex_unlock(&p->lock);
	if (r < 0)
		goto fail;
	return 0;
fail:
	/* An envelope whose export was not recorded is not handed out. */
	vc_wipe(out, VC_NATIVE_BACKUP_LEN);
	return r;
}

struct backup_contents {
	struct vc_uuid id;
	uint64_t created, exported;
	struct vc_secret *master;
};

/* Decode an envelope (docs/KEYS.md, "Reading an envelope"): magic and
 * checksum first, so damage is -EBADMSG before any password is tried;
 * then the password check value (-EKEYREJECTED); then the AEAD. */
static int open_envelope(const uint8_t *env, size_t len,
			 const struct vc_secret *password,
			 struct backup_contents *bc, struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *dk = NULL, *pt = NULL;
	struct vc_native_scrypt c;
	struct vc_error why = { 0 };
	uint8_t sum[VC_SHA256_LEN], tag[GCM_TAG_LEN];
	uint16_t version, kdf;
	const uint8_t *q;
	int r;

	bc->master = NULL;
	if (!env || len == 0)
		return vc_error_set(err, -EBADMSG, "native key provider backup is empty");
	if (len < 8 || memcmp(env, BK_MAGIC, 8) != 0)
		return vc_error_set(err, -EBADMSG, len < 8 && memcmp(env, BK_MAGIC, len) == 0
				    ? "native key provider backup is truncated"
				    : "not a native key provider backup (bad magic)");
	/* Every version ends with SHA-256 of all the bytes before it, so
	 * damage and truncation are told apart from a wrong password (and
	 * from an unknown version) before anything else is read. */
	if (len < 10 + VC_SHA256_LEN)
		return vc_error_set(err, -EBADMSG, "native key provider backup is truncated");
	if ((r = vc_sha256(env, len - VC_SHA256_LEN, sum, err)) < 0)
		return r;
	if (!vc_ct_equal(sum, env + len - VC_SHA256_LEN, sizeof sum))
		return vc_error_set(err, -EBADMSG,
				    "native key provider backup is damaged or truncated (checksum mismatch; %zu bytes, a version-%u backup is %d)",
				    len, BK_VERSION, VC_NATIVE_BACKUP_LEN);
	version = vc_get_le16(env + 8);
	if (version != BK_VERSION)
		return vc_error_set(err, -ENOTSUP,
				    "native key provider backup version %u is not supported (this build reads version %u)",
				    version, BK_VERSION);
	if (len != VC_NATIVE_BACKUP_LEN)
		return vc_error_set(err, -EBADMSG,
				    "native key provider backup is %zu bytes, version %u is %d",
				    len, BK_VERSION, VC_NATIVE_BACKUP_LEN);
	kdf = vc_get_le16(env + 10);
	if (kdf != BK_KDF_SCRYPT)
		return vc_error_set(err, -EBADMSG,
				    "native key provider backup names unknown KDF %u", kdf);
	if (env[13] || env[14] || env[15])
		return vc_error_set(err, -EBADMSG,
				    "native key provider backup has non-zero reserved bytes");
	c.log2_n = env[BK_OFF_LOG2N];
	c.r = vc_get_le32(env + BK_OFF_R);
	c.p = vc_get_le32(env + BK_OFF_P);
	if (check_scrypt(&c, &why) < 0)
		return vc_error_set(err, -EBADMSG, "native key provider backup: %s",
				    vc_error_msg(&why));
	if (vc_secret_len(password) < 1 || vc_secret_len(password) > VC_NATIVE_PASSWORD_MAX)
		return vc_error_set(err, -EKEYREJECTED,
				    "wrong password for the native key provider backup (length %zu)",
				    vc_secret_len(password));
	if ((r = vc_secret_new(BK_DK_LEN, &dk, err)) < 0 ||
	    (r = vc_secret_new(BK_PT_LEN, &pt, err)) < 0 ||
	    (r = scrypt_derive(password, env + BK_OFF_SALT, &c, vc_secret_data(dk),
			       BK_DK_LEN, err)) < 0)
		return r;
	if (!vc_ct_equal(vc_secret_data(dk) + GCM_KEY_LEN, env + BK_OFF_CHECK, BK_CHECK_LEN))
		return vc_error_set(err, -EKEYREJECTED,
				    "wrong password for the native key provider backup");
	memcpy(tag, env + BK_OFF_TAG, sizeof tag);
	r = gcm(0, vc_secret_data(dk), env + BK_OFF_NONCE, env, BK_OFF_CT,
		env + BK_OFF_CT, vc_secret_data(pt), BK_PT_LEN, tag, err);
	if (r == -EBADMSG)
		return vc_error_set(err, -EBADMSG,
				    "native key provider backup does not authenticate (it was altered)");
	if (r < 0)
		return r;
	q = vc_secret_data(pt);
	memcpy(bc->id.b, q, 16);
	if (vc_uuid_is_nil(&bc->id))
		return vc_error_set(err, -EBADMSG, "native key provider backup has a nil provider id");
	bc->created = vc_get_le64(q + 16);
	bc->exported = vc_get_le64(env + BK_OFF_EXPORTED);
	return vc_secret_from_bytes(q + 24, MASTER_LEN, &bc->master, err);
}

/* May restoring overwrite what dir holds? Only the same provider, unless
 * the caller said to replace. */
static int check_restore_target(struct vc_native *p, const struct vc_uuid *id,
				unsigned flags, struct vc_error *err)
{
	uint8_t buf[STATE_MAX];
	struct vc_error why = { 0 };
	struct state_hdr h;
	char other[VC_UUID_STR_LEN];
	size_t len = 0;
	int r;

	r = read_private_file(p->state_path, "native key provider state", buf,
			      sizeof buf, &len, &why);
	if (r == -ENOENT || (flags & VC_NATIVE_REPLACE))
		return 0;
	if (r == 0)
		r = parse_state(p->state_path, buf, len, &h, &why);
	if (r < 0)
		return vc_error_set(err, -EEXIST,
				    "%s holds a state file that cannot be read (%s); restoring would replace it (pass replace to overwrite)",
				    p->dir, vc_error_msg(&why));
	if (memcmp(h.id.b, id->b, sizeof id->b) == 0)
		return 0;
	vc_uuid_format(&h.id, other);
	return vc_error_set(err, -EEXIST,
			    "%s holds another native key provider (%s); restoring would destroy its keys (pass replace to overwrite)",
			    p->dir, other);
}

int vc_native_restore(const char *dir, struct vc_sealer *sealer,
		      const uint8_t *envelope, size_t len,
		      const struct vc_secret *password, unsigned flags,
		      struct vc_error *err)
{
	struct backup_contents bc = { 0 };
	struct vc_native *p = NULL;
	int r;

	if (flags & ~VC_NATIVE_REPLACE)
		return vc_error_set(err, -EINVAL, "unknown native key provider restore flags %#x",
				    flags);
	/* The envelope and password first: a wrong password touches nothing. */
	if ((r = open_envelope(envelope, len, password, &bc, err)) < 0)
		return r;
	if ((r = check_dir(dir, true, err)) < 0 ||
	    (r = native_new(dir, sealer, 0, &p, err)) < 0)
		goto out;
	p->id = bc.id;
	vc_uuid_format(&p->id, p->id_str);
	p->created = bc.created;
	p->master = bc.master;
	bc.master = NULL;
	if ((r = check_restore_target(p, &p->id, flags, err)) < 0 ||
	    (r = seal_master(p, err)) < 0)
		goto out;
	/* A restored provider is backed up: the envelope it came from. */
	r = write_state(p, true, bc.exported, false, err);
out:
	vc_secret_free(bc.master);
	vc_native_close(p);
	return r;
}

int vc_native_password_read_fd(int fd, const char *what, struct vc_secret **out,
			       struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *buf = NULL;
	unsigned char *q;
	size_t have = 0;
	int r;

	*out = NULL;
	if ((r = vc_secret_new(VC_NATIVE_PASSWORD_MAX + 3, &buf, err)) < 0)
		return r;
	q = vc_secret_data(buf);
	for (;;) {
		ssize_t n = read(fd, q + have, VC_NATIVE_PASSWORD_MAX + 3 - have);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: cannot read password", what);
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have == VC_NATIVE_PASSWORD_MAX + 3)
			return vc_error_set(err, -EINVAL, "%s: password longer than %d bytes",
					    what, VC_NATIVE_PASSWORD_MAX);
	}
	if (have > 0 && q[have - 1] == '\n') {
		have--;
		if (have > 0 && q[have - 1] == '\r')
			have--;
	}
	if (have > VC_NATIVE_PASSWORD_MAX)
		return vc_error_set(err, -EINVAL, "%s: password longer than %d bytes", what,
				    VC_NATIVE_PASSWORD_MAX);
	if (have == 0)
		return vc_error_set(err, -EINVAL, "%s: password is empty", what);
	return vc_secret_from_bytes(q, have, out, err);
}
