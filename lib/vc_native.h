/* SPDX-License-Identifier: Apache-2.0 */
/* The native key provider: an embedded key provider that needs no KMIP
 * server. A random 256-bit provider master key, sealed at rest, from which
 * every KEK is derived by key id (HKDF-SHA-256), so no per-key storage is
 * needed; password-protected backup and restore (scrypt + AES-256-GCM).
 * File formats, sealing and derivation are documented in docs/KEYS.md
 * ("Native key provider").
 *
 * A provider lives in one directory (created 0700 when missing):
 *   native-provider.state  the provider's state and its sealed master key
 *   sealing.key            the host sealing key (default sealer only)
 * Every file is written atomically with mode 0600; files readable or
 * writable by group or others are refused on load. One process owns a
 * provider directory at a time. */
#ifndef VC_NATIVE_H
#define VC_NATIVE_H

#include <stdbool.h>

#include "vc_error.h"
#include "vc_secmem.h"
#include "vc_uuid.h"

#define VC_NATIVE_KEK_LEN 32
#define VC_NATIVE_STATE_FILE "native-provider.state"
#define VC_NATIVE_SEALING_KEY_FILE "sealing.key"

/* Sealers: how the master key is protected at rest. The state file
 * records the sealer's type and refuses to be opened by another one. */
enum vc_sealer_type {
	VC_SEALER_HOST_KEY = 1, /* AES-256-GCM under a 32-byte key file */
	VC_SEALER_TPM2 = 2,     /* reserved: sealed to a TPM 2.0 */
};

#define VC_SEALED_MAX 4096 /* largest sealed blob a state file holds */

/* A sealer binds a secret to this host. seal() and unseal() must bind the
 * blob to aad (associated data naming the provider and the purpose): a
 * blob unsealed with different aad must fail. Implementations without
 * native associated data (a TPM) seal a hash of aad with the secret and
 * compare it after unsealing. unseal() returns -EBADMSG for a blob that
 * does not authenticate and -ENOKEY when the sealing secret itself is
 * missing. The struct is embedded as the first member of an
 * implementation's own struct. */
struct vc_sealer {
	const char *name;     /* for messages: "host-key", "tpm2" */
	uint32_t type;        /* enum vc_sealer_type */
	/* Seal secret into out (outcap is VC_SEALED_MAX); *outlen gets the
	 * blob's length. */
	int (*seal)(struct vc_sealer *s, const void *aad, size_t aadlen,
		    const struct vc_secret *secret, uint8_t *out, size_t outcap,
		    size_t *outlen, struct vc_error *err);
	/* Unseal a blob into a new secret. */
	int (*unseal)(struct vc_sealer *s, const void *aad, size_t aadlen,
		      const uint8_t *blob, size_t bloblen,
		      struct vc_secret **out, struct vc_error *err);
	void (*free)(struct vc_sealer *s);
};

/* The host-key sealer: AES-256-GCM under 32 random bytes kept in the file
 * at path (raw, mode 0600, owned by the caller: checked as
 * vc_secret_read_file does). seal() creates the file when it is missing;
 * unseal() never does, and fails with -ENOKEY when it is missing. path is
 * copied. */
VC_MUST_CHECK int vc_sealer_host_key_new(const char *path,
					 struct vc_sealer **out,
					 struct vc_error *err);

/* Release a sealer. NULL is a no-op. */
void vc_sealer_free(struct vc_sealer *s);

struct vc_native;

/* Flags for vc_native_open(). */
#define VC_NATIVE_CREATE 0x1u          /* create the directory and provider if missing */
#define VC_NATIVE_ALLOW_NO_BACKUP 0x2u /* hand out keys before any backup was taken */

/* Open the provider in dir. Without VC_NATIVE_CREATE a missing provider
 * is -ENOENT. With it, a missing directory is created (mode 0700, its
 * parent must exist) and a missing provider is created: a new provider id,
 * a new random master key, sealed and written.
 *
 * sealer: NULL for the host-key sealer on <dir>/sealing.key (owned by the
 * provider), or one of the caller's, which must outlive the provider.
 *
 * Errors: -ENOENT (no provider), -EPERM (directory writable by others,
 * files accessible by group or others, or not ours), -EBADMSG (state file
 * damaged or altered, or sealed by another sealing key), -ENOKEY (sealing
 * key missing: restore the provider from its backup), -ENOTSUP (unknown
 * version or another sealer type). */
VC_MUST_CHECK int vc_native_open(const char *dir, struct vc_sealer *sealer,
				 unsigned flags, struct vc_native **out,
				 struct vc_error *err);

/* Wipe the master key and free. NULL is a no-op. */
void vc_native_close(struct vc_native *p);

/* A new key id (a random UUID, lower case) into key_id and, if kek is not
 * NULL, its KEK (VC_NATIVE_KEK_LEN bytes, the caller frees it). Nothing is
 * stored: the id is all it takes to get the KEK again. */
VC_MUST_CHECK int vc_native_create_key(struct vc_native *p,
				       char key_id[VC_UUID_STR_LEN],
				       struct vc_secret **kek,
				       struct vc_error *err);

/* The KEK of key_id (a UUID string, either case: the same UUID in upper
 * case gives the same KEK). Any other key id is -EINVAL, as is the nil
 * UUID. Safe to call from several threads at once.
 *
 * create_key and get_key fail with -EPERM ("no backup has been taken")
 * until a backup was exported, unless the provider was opened with
 * VC_NATIVE_ALLOW_NO_BACKUP. */
VC_MUST_CHECK int vc_native_get_key(struct vc_native *p, const char *key_id,
				    struct vc_secret **kek,
				    struct vc_error *err);

/* scrypt cost of a backup: N = 2^log2_n, r, p (RFC 7914). Accepted:
 * 1 <= log2_n <= 30, r >= 1, 1 <= p <= 64, 128 * r * N <= 1 GiB. */
struct vc_native_scrypt {
	uint8_t log2_n;
	uint32_t r;
	uint32_t p;
};

/* Defaults: N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s). */
#define VC_NATIVE_SCRYPT_DEFAULT ((struct vc_native_scrypt){ 15, 8, 1 })

#define VC_NATIVE_BACKUP_LEN 196          /* every version-1 envelope */
#define VC_NATIVE_PASSWORD_MIN 8          /* for new backups, in bytes */
#define VC_NATIVE_PASSWORD_MAX 1024

/* Export the provider as a password-protected envelope (docs/KEYS.md)
 * into out[VC_NATIVE_BACKUP_LEN] and record, in the state file, that a
 * backup was taken. The caller keeps the envelope safe: from then on keys
 * are handed out. params NULL means VC_NATIVE_SCRYPT_DEFAULT. The
 * password (VC_NATIVE_PASSWORD_MIN..MAX bytes) is not retained. */
VC_MUST_CHECK int vc_native_backup(struct vc_native *p,
				   const struct vc_secret *password,
				   const struct vc_native_scrypt *params,
				   uint8_t out[VC_NATIVE_BACKUP_LEN],
				   struct vc_error *err);

/* Flags for vc_native_restore(). */
#define VC_NATIVE_REPLACE 0x1u /* overwrite another provider's state in dir */

/* Restore a provider from an envelope into dir (created 0700 if missing),
 * sealing its master key anew with sealer (NULL: the host-key sealer on
 * <dir>/sealing.key, created if missing). The restored provider has the
 * same id, creation time and KEKs, and counts as backed up. A directory
 * that already holds the same provider is overwritten (this is how a
 * provider whose sealing key was lost is recovered); one that holds
 * another provider, or an unreadable state file, is -EEXIST unless flags
 * has VC_NATIVE_REPLACE.
 *
 * Errors: -EKEYREJECTED wrong password; -EBADMSG envelope damaged,
 * truncated, overlong or altered; -ENOTSUP unknown envelope version. */
VC_MUST_CHECK int vc_native_restore(const char *dir, struct vc_sealer *sealer,
				    const uint8_t *envelope, size_t len,
				    const struct vc_secret *password,
				    unsigned flags, struct vc_error *err);

/* Read a password from fd to EOF (at most VC_NATIVE_PASSWORD_MAX bytes,
 * one trailing "\n" or "\r\n" dropped) into locked memory. Empty is
 * -EINVAL. what names the source in messages ("--password-fd 3"). The fd
 * is not closed. */
VC_MUST_CHECK int vc_native_password_read_fd(int fd, const char *what,
					     struct vc_secret **out,
					     struct vc_error *err);

struct vc_native_info {
	char provider_id[VC_UUID_STR_LEN];
	uint64_t created;      /* Unix seconds */
	bool backup_taken;
	uint64_t backup_time;  /* Unix seconds of the last export, 0 if none */
	bool allow_no_backup;  /* opened with VC_NATIVE_ALLOW_NO_BACKUP */
	char sealer[16];       /* the sealer's name */
};

void vc_native_info(struct vc_native *p, struct vc_native_info *out);

#endif
