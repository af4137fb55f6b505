/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets: locked, non-dumpable memory that is always wiped before release;
 * constant-time comparison; process hardening for programs holding keys. */
#ifndef VC_SECMEM_H
#define VC_SECMEM_H

#include <stdbool.h>

#include "vc_error.h"

/* A secret buffer of fixed length. Its bytes live in their own mmap'd
 * pages, mlock'ed and excluded from core dumps (MADV_DONTDUMP). The struct
 * itself holds no secret. Release only through vc_secret_free(). */
struct vc_secret;

/* Allocate len (1..1 MiB) zeroed secret bytes. Fails if the pages cannot
 * be locked (RLIMIT_MEMLOCK). */
VC_MUST_CHECK int vc_secret_new(size_t len, struct vc_secret **out,
				struct vc_error *err);

/* A new secret holding a copy of len bytes at src (src is not wiped). */
VC_MUST_CHECK int vc_secret_from_bytes(const void *src, size_t len,
				       struct vc_secret **out,
				       struct vc_error *err);

/* Wipe, unlock and unmap. NULL is a no-op. */
void vc_secret_free(struct vc_secret *s);

unsigned char *vc_secret_data(const struct vc_secret *s);
size_t vc_secret_len(const struct vc_secret *s);

/* Read a key of exactly keylen bytes from an fd (read to EOF). Accepted
 * encodings: keylen raw bytes, or 2*keylen hex digits with an optional
 * trailing newline. The fd is not closed. what names the source in
 * errors ("--kek-fd 3"). */
VC_MUST_CHECK int vc_secret_read_fd(int fd, size_t keylen, const char *what,
				    struct vc_secret **out,
				    struct vc_error *err);

/* As vc_secret_read_fd, from a regular file that must be owned by the
 * caller and not readable or writable by group or others (mode & 077). */
VC_MUST_CHECK int vc_secret_read_file(const char *path, size_t keylen,
				      struct vc_secret **out,
				      struct vc_error *err);

/* Open a file that holds a secret for reading, refusing anything but a
 * regular file owned by the caller with no access for group or others.
 * Returns the fd (the caller closes it) or a negative code; what names
 * the file's role in messages ("key file", "password file"). */
VC_MUST_CHECK int vc_private_file_open(const char *path, const char *what,
				       struct vc_error *err);

/* Wipe memory in a way the compiler cannot drop. */
void vc_wipe(void *p, size_t len);

/* Constant-time equality of two buffers of length len: true if equal. */
bool vc_ct_equal(const void *a, const void *b, size_t len);

/* For programs that hold keys: no core dumps (RLIMIT_CORE 0, not
 * ptrace-attachable, PR_SET_DUMPABLE 0) and, best effort, every page
 * locked as it is touched (mlockall ONFAULT) so that key schedules kept
 * by OpenSSL in the heap are never swapped. Returns a warning message in
 * err (and 0) when locking is not permitted; negative only on failure to
 * disable dumps. Memory locks are not inherited by fork(): a child that
 * keeps secrets must call this again. */
VC_MUST_CHECK int vc_secmem_harden_process(struct vc_error *err);

static inline void vc_secret_freep(struct vc_secret **s) { vc_secret_free(*s); }
#define VC_CLEANUP_SECRET __attribute__((cleanup(vc_secret_freep)))

#endif
