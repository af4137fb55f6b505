/* SPDX-License-Identifier: Apache-2.0 */
/* The vmcrypt encrypted disk format (docs/FORMAT.md): a header written
 * twice, a rekey journal, and an XTS-AES-256 payload in which an all-zero
 * sector is a hole that reads back as zeros.
 *
 * This module does no I/O of its own: callers pass struct vc_disk_io, so
 * the CLI, the nbdkit filter, the tests and the fuzzers share one
 * implementation. */
#ifndef VC_DISK_H
#define VC_DISK_H

#include <stdbool.h>

#include "vc_error.h"
#include "vc_secmem.h"
#include "vc_uuid.h"

#define VC_DISK_MAGIC "VMCRYPT" /* 8 bytes with the NUL */
#define VC_DISK_VERSION 1
#define VC_DISK_HEADER_SIZE 4096
#define VC_DISK_CIPHER_AES256_XTS 1
#define VC_DISK_PROVIDER_MAX 63 /* bytes, without the NUL */
#define VC_DISK_KEY_ID_MAX 127
#define VC_DISK_MAX_SIZE ((uint64_t)1 << 56) /* 64 PiB */
#define VC_DISK_DEK_FORMAT "vmcrypt-disk-dek/1"

/* Storage callbacks. Each returns 0 or a negative errno-style code and
 * fills err. pread and pwrite transfer all count bytes or fail (a short
 * read at end of file is an error). flush makes earlier writes durable.
 * punch may be NULL or return -ENOTSUP: zeros are written instead. */
struct vc_disk_io {
	void *opaque;
	int (*pread)(void *opaque, void *buf, size_t count, uint64_t offset,
		     struct vc_error *err);
	int (*pwrite)(void *opaque, const void *buf, size_t count,
		      uint64_t offset, struct vc_error *err);
	int (*flush)(void *opaque, struct vc_error *err);
	int (*get_size)(void *opaque, uint64_t *size, struct vc_error *err);
	int (*punch)(void *opaque, uint64_t offset, uint64_t count,
		     struct vc_error *err);
};

struct vc_disk_slot_info {
	bool active;
	uint64_t generation;
	char provider[VC_DISK_PROVIDER_MAX + 1];
	char key_id[VC_DISK_KEY_ID_MAX + 1];
};

/* Everything the header says, readable without any key. */
struct vc_disk_info {
	uint16_t version;
	struct vc_uuid uuid;
	uint64_t sequence;
	uint64_t virtual_size;
	uint32_t sector_size;
	uint32_t cipher;
	uint64_t payload_offset;
	uint64_t journal_offset;
	uint64_t journal_size;
	bool rekey_active;
	uint64_t rekey_progress;    /* sectors done (use slot 1's key) */
	bool journal_pending;       /* an interrupted rekey step to redo */
	uint64_t journal_start, journal_count;
	struct vc_disk_slot_info slot[2]; /* [0] current key, [1] rekey target */
	int copy_used;                    /* which header copy was chosen */
	bool copy_ok[2];                  /* checksum and fields valid */
	char copy_problem[2][160];        /* why a copy is not ok */
};

struct vc_disk_params {
	uint64_t virtual_size;    /* bytes, > 0, a multiple of sector_size */
	uint32_t sector_size;     /* 512 or 4096 */
	const char *provider;     /* KEK provider name, 1..63 bytes */
	const char *key_id;       /* KEK id, 1..127 bytes */
	const struct vc_uuid *uuid; /* NULL: a random one */
};

/* Container bytes needed for a disk of this virtual size (header area
 * plus payload). */
VC_MUST_CHECK int vc_disk_container_size(uint64_t virtual_size,
					 uint32_t sector_size, uint64_t *out,
					 struct vc_error *err);

/* Write a new header (both copies) with a fresh random DEK wrapped by kek.
 * The container must already be at least vc_disk_container_size() bytes
 * and read as zeros (a new sparse file). */
VC_MUST_CHECK int vc_disk_format(const struct vc_disk_io *io,
				 const struct vc_disk_params *p,
				 const struct vc_secret *kek,
				 struct vc_uuid *uuid_out,
				 struct vc_error *err);

/* Read and validate the header without any key. Fails with a clear
 * message when no copy is valid. */
VC_MUST_CHECK int vc_disk_inspect(const struct vc_disk_io *io,
				  struct vc_disk_info *info,
				  struct vc_error *err);

struct vc_disk;

#define VC_DISK_RDONLY 1u

/* Open with the KEK of slot 0. next_kek is the KEK of slot 1 during a deep
 * rekey to another KEK (NULL: the same KEK). Authenticates the header (MAC)
 * and unwraps the DEKs. A writable open completes an interrupted rekey
 * step from the journal and rewrites a damaged header copy. The io struct
 * is copied; its opaque must outlive the disk. */
VC_MUST_CHECK int vc_disk_open(const struct vc_disk_io *io,
			       const struct vc_secret *kek,
			       const struct vc_secret *next_kek, unsigned flags,
			       struct vc_disk **out, struct vc_error *err);
void vc_disk_close(struct vc_disk *d);

/* Turn a read-only open into a writable one, doing what a writable open
 * does first (redo an interrupted rekey step, repair a header copy). Lets
 * a server check a disk at start-up without writing and write only once a
 * writer arrives. The io callbacks must be able to write by then. */
VC_MUST_CHECK int vc_disk_set_writable(struct vc_disk *d, struct vc_error *err);

/* The header as currently in force. */
void vc_disk_get_info(struct vc_disk *d, struct vc_disk_info *info);
uint64_t vc_disk_size(const struct vc_disk *d);
uint32_t vc_disk_sector_size(const struct vc_disk *d);

/* Plaintext I/O at any offset and length within the virtual size.
 * Partial sectors are read-modify-written under a lock, so concurrent
 * writers to different bytes of one sector both land. Writing a whole
 * sector of zeros stores a hole. Thread-safe. */
VC_MUST_CHECK int vc_disk_read(struct vc_disk *d, void *buf, size_t count,
			       uint64_t offset, struct vc_error *err);
VC_MUST_CHECK int vc_disk_write(struct vc_disk *d, const void *buf,
				size_t count, uint64_t offset,
				struct vc_error *err);
/* Zero a range: whole sectors become holes (punched when the container
 * supports it), partial sectors are rewritten. */
VC_MUST_CHECK int vc_disk_zero(struct vc_disk *d, uint64_t offset,
			       uint64_t count, struct vc_error *err);
VC_MUST_CHECK int vc_disk_flush(struct vc_disk *d, struct vc_error *err);

/* Re-read both header copies and check each one's checksum, fields,
 * sequence and MAC against the open disk's key: ok[i] is true when copy i
 * is valid, current and authentic; otherwise problem[i] says why. */
VC_MUST_CHECK int vc_disk_check_copies(struct vc_disk *d, bool ok[2],
				       char problem[2][160],
				       struct vc_error *err);

/* True in *hole when the stored sector is all zeros (reads as zeros). */
VC_MUST_CHECK int vc_disk_sector_is_hole(struct vc_disk *d, uint64_t sector,
					 bool *hole, struct vc_error *err);

/* Shallow rekey: rewrap the DEK(s) under new_kek, now known as
 * (provider, key_id). Atomic: one header update. */
VC_MUST_CHECK int vc_disk_rekey_shallow(struct vc_disk *d,
					const struct vc_secret *new_kek,
					const char *provider,
					const char *key_id,
					struct vc_error *err);

/* Deep rekey: start generates a new DEK (wrapped by new_kek, or by the
 * current KEK when new_kek is NULL; provider/key_id NULL keep the current
 * ones) and records it in slot 1. Each step re-encrypts one journal-sized
 * chunk crash-safely; *done is set when the last step has promoted the new
 * key to slot 0. Start fails with -EALREADY when a rekey is in progress:
 * call step to resume it. */
VC_MUST_CHECK int vc_disk_rekey_deep_start(struct vc_disk *d,
					   const struct vc_secret *new_kek,
					   const char *provider,
					   const char *key_id,
					   struct vc_error *err);
VC_MUST_CHECK int vc_disk_rekey_deep_step(struct vc_disk *d, bool *done,
					  struct vc_error *err);
bool vc_disk_rekey_active(struct vc_disk *d);
/* Sectors re-encrypted so far and in all. */
void vc_disk_rekey_progress(struct vc_disk *d, uint64_t *done,
			    uint64_t *total);

#endif
