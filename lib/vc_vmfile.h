/* SPDX-License-Identifier: Apache-2.0 */
/* Encrypted VM files (nvram, vTPM state, memory images, dumps): a 64-byte
 * header and a chunked AES-256-GCM stream with a counter and a final-chunk
 * flag in each nonce. The format is docs/FORMAT.md, second part. */
#ifndef VC_VMFILE_H
#define VC_VMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vc_error.h"
#include "vc_secmem.h"

#define VC_VMFILE_HDR_LEN 64
#define VC_VMFILE_TAG_LEN 16
#define VC_VMFILE_KEY_LEN 32
#define VC_VMFILE_SALT_LEN 16
#define VC_VMFILE_PURPOSE_MAX 32
#define VC_VMFILE_SHIFT_MIN 12
#define VC_VMFILE_SHIFT_MAX 20
#define VC_VMFILE_SHIFT_DEFAULT 16
#define VC_VMFILE_MAGIC "VCVMFILE"
#define VC_VMFILE_MAX_CHUNKS ((uint64_t)1 << 32)

/* What a header says (no key needed to read it). */
struct vc_vmfile_info {
	unsigned chunk_shift;
	size_t chunk_size;                       /* 2^chunk_shift */
	char purpose[VC_VMFILE_PURPOSE_MAX + 1]; /* NUL-terminated */
	uint8_t salt[VC_VMFILE_SALT_LEN];
};

/* Check a header (docs/FORMAT.md V2). -EBADMSG with a message naming the
 * field for anything a reader must refuse, -ENOTSUP for another version. */
VC_MUST_CHECK int vc_vmfile_header_parse(const uint8_t hdr[VC_VMFILE_HDR_LEN],
					 struct vc_vmfile_info *out, struct vc_error *err);

/* A purpose as the format allows it: 1..32 bytes of [a-z0-9._-]. */
bool vc_vmfile_purpose_valid(const char *purpose);

/* ---- writing ---- */
struct vc_vmfile_writer;

/* A writer for a new file under key (VC_VMFILE_KEY_LEN bytes), with a
 * fresh random salt; chunk_shift 0 means VC_VMFILE_SHIFT_DEFAULT. The
 * header to store first goes to header. */
VC_MUST_CHECK int vc_vmfile_writer_new(const struct vc_secret *key, const char *purpose,
				       unsigned chunk_shift,
				       uint8_t header[VC_VMFILE_HDR_LEN],
				       struct vc_vmfile_writer **out, struct vc_error *err);

/* Encrypt the next chunk: len is exactly the chunk size unless final (then
 * 0..chunk size). out receives len + VC_VMFILE_TAG_LEN bytes. After the
 * final chunk the writer refuses more (-EINVAL). */
VC_MUST_CHECK int vc_vmfile_writer_chunk(struct vc_vmfile_writer *w, const uint8_t *pt,
					 size_t len, bool final, uint8_t *out,
					 struct vc_error *err);

/* Wipes the file key. NULL is a no-op. */
void vc_vmfile_writer_free(struct vc_vmfile_writer *w);

/* ---- reading ---- */
struct vc_vmfile_reader;

/* A reader for the file whose header is hdr, which must be a file of
 * purpose (-EBADMSG naming both otherwise). info (may be NULL) gets the
 * header's fields. */
VC_MUST_CHECK int vc_vmfile_reader_new(const struct vc_secret *key, const char *purpose,
				       const uint8_t hdr[VC_VMFILE_HDR_LEN],
				       struct vc_vmfile_info *info,
				       struct vc_vmfile_reader **out, struct vc_error *err);

/* Decrypt the next stored chunk (in, inlen bytes: chunk size + 16 unless
 * final, 16..chunk size + 16 if final) into out (inlen - 16 bytes).
 * The caller says whether it is the last chunk of the file (it is when
 * nothing follows it). -EBADMSG ("chunk 7 does not authenticate: the file
 * is damaged, altered or truncated") on a tag failure, after which out
 * holds nothing and the reader refuses more. */
VC_MUST_CHECK int vc_vmfile_reader_chunk(struct vc_vmfile_reader *r, const uint8_t *in,
					 size_t inlen, bool final, uint8_t *out,
					 size_t *outlen, struct vc_error *err);

/* True once a final chunk authenticated (a reader that stops before that
 * has read a truncated file). */
bool vc_vmfile_reader_done(const struct vc_vmfile_reader *r);

void vc_vmfile_reader_free(struct vc_vmfile_reader *r);

/* ---- whole files over descriptors ---- */
/* Read in_fd to EOF and write header + chunks to out_fd. *written (may be
 * NULL) gets the bytes written. */
VC_MUST_CHECK int vc_vmfile_seal_fd(const struct vc_secret *key, const char *purpose,
				    unsigned chunk_shift, int in_fd, int out_fd,
				    uint64_t *written, struct vc_error *err);

/* Read a whole encrypted file from in_fd (any descriptor: pipes too) and
 * write its plaintext to out_fd, chunk by chunk as each authenticates. On
 * failure out_fd may already hold the plaintext of the chunks before the
 * bad one: callers writing to a file remove it. Errors: -EBADMSG
 * (damaged, altered, truncated, extended, another purpose), -ENOTSUP,
 * -EIO. */
VC_MUST_CHECK int vc_vmfile_open_fd(const struct vc_secret *key, const char *purpose,
				    int in_fd, int out_fd, uint64_t *plain_len,
				    struct vc_error *err);

#endif
