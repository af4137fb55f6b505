/* SPDX-License-Identifier: Apache-2.0 */
/* Encrypted VM files: header, per-file key, STREAM chunks (FORMAT.md V1-V6). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "vc_common.h"
#include "vc_crypto.h"
#include "vc_vmfile.h"

#define INFO_LABEL "vmcrypt-vmfile-v1"
#define NONCE_LEN 12

/* One direction of the stream: the file key inside an EVP context (set
 * once; each chunk only changes the nonce), the header as AD, a counter. */
struct stream {
	EVP_CIPHER_CTX *ctx;
	uint8_t hdr[VC_VMFILE_HDR_LEN];
	size_t chunk_size;
	uint64_t next;
	bool done;     /* final chunk handled */
	bool failed;
};

struct vc_vmfile_writer {
	struct stream s;
};

struct vc_vmfile_reader {
	struct stream s;
};

bool vc_vmfile_purpose_valid(const char *p)
{
	size_t n = p ? strlen(p) : 0;

	if (n < 1 || n > VC_VMFILE_PURPOSE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') ||
		      p[i] == '.' || p[i] == '_' || p[i] == '-'))
			return false;
	return true;
}

int vc_vmfile_header_parse(const uint8_t hdr[VC_VMFILE_HDR_LEN], struct vc_vmfile_info *out,
			   struct vc_error *err)
{
	unsigned plen = hdr[11];

	memset(out, 0, sizeof *out);
	if (memcmp(hdr, VC_VMFILE_MAGIC, 8) != 0)
		return vc_error_set(err, -EBADMSG, "not a vmcrypt VM file (bad magic)");
	if (vc_get_le16(hdr + 8) != 1)
		return vc_error_set(err, -ENOTSUP, "VM file version %u is not supported (1 is)",
				    vc_get_le16(hdr + 8));
	if (hdr[10] < VC_VMFILE_SHIFT_MIN || hdr[10] > VC_VMFILE_SHIFT_MAX)
		return vc_error_set(err, -EBADMSG, "VM file header: chunk size 2^%u is out of "
				    "range (2^%d to 2^%d)", hdr[10], VC_VMFILE_SHIFT_MIN,
				    VC_VMFILE_SHIFT_MAX);
	if (plen < 1 || plen > VC_VMFILE_PURPOSE_MAX)
		return vc_error_set(err, -EBADMSG, "VM file header: purpose length %u is out "
				    "of range (1 to %d)", plen, VC_VMFILE_PURPOSE_MAX);
	if (!vc_is_zero(hdr + 12, 4))
		return vc_error_set(err, -EBADMSG, "VM file header: reserved bytes are not zero");
	if (!vc_is_zero(hdr + 32 + plen, VC_VMFILE_PURPOSE_MAX - plen))
		return vc_error_set(err, -EBADMSG, "VM file header: purpose padding is not zero");
	memcpy(out->purpose, hdr + 32, plen);
	/* Every one of the plen bytes, a NUL included, must be allowed. */
	if (strlen(out->purpose) != plen || !vc_vmfile_purpose_valid(out->purpose))
		return vc_error_set(err, -EBADMSG, "VM file header: bad purpose characters");
	out->chunk_shift = hdr[10];
	out->chunk_size = (size_t)1 << hdr[10];
	memcpy(out->salt, hdr + 16, VC_VMFILE_SALT_LEN);
	return 0;
}

/* Derive the file key from the header and set up the cipher. */
static int stream_init(struct stream *s, const struct vc_secret *key, int enc,
		       const uint8_t hdr[VC_VMFILE_HDR_LEN], size_t chunk_size,
		       struct vc_error *err)
{
	uint8_t info[sizeof INFO_LABEL + VC_VMFILE_PURPOSE_MAX];
	struct vc_secret *fk = NULL;
	size_t plen = hdr[11];
	int ret;

	if (!key || vc_secret_len(key) != VC_VMFILE_KEY_LEN)
		return vc_error_set(err, -EINVAL, "a VM file key has %d bytes",
				    VC_VMFILE_KEY_LEN);
	memcpy(info, INFO_LABEL, sizeof INFO_LABEL); /* with its NUL: the 0x00 separator */
	memcpy(info + sizeof INFO_LABEL, hdr + 32, plen);
	ret = vc_secret_new(VC_VMFILE_KEY_LEN, &fk, err);
	if (ret == 0)
		ret = vc_hkdf_sha256(vc_secret_data(key), VC_VMFILE_KEY_LEN, hdr + 16,
				     VC_VMFILE_SALT_LEN, info, sizeof INFO_LABEL + plen,
				     vc_secret_data(fk), VC_VMFILE_KEY_LEN, err);
	if (ret == 0) {
		s->ctx = EVP_CIPHER_CTX_new();
		if (!s->ctx ||
		    EVP_CipherInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
		    EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
		    EVP_CipherInit_ex(s->ctx, NULL, NULL, vc_secret_data(fk), NULL, enc) != 1)
			ret = vc_error_ssl(err, -EIO, "AES-256-GCM set-up");
	}
	vc_secret_free(fk);
	memcpy(s->hdr, hdr, VC_VMFILE_HDR_LEN);
	s->chunk_size = chunk_size;
	return ret;
}

static void nonce_of(uint8_t nonce[NONCE_LEN], uint64_t i, bool final)
{
	nonce[0] = final ? 1 : 0;
	nonce[1] = nonce[2] = nonce[3] = 0;
	for (int b = 0; b < 8; b++)
		nonce[4 + b] = (uint8_t)(i >> (56 - 8 * b));
}

/* One chunk through GCM; tag is written (enc) or checked (dec). */
static int stream_chunk(struct stream *s, int enc, const uint8_t *in, size_t len, bool final,
			uint8_t *out, uint8_t *tag)
{
	uint8_t nonce[NONCE_LEN];
	int outl = 0, ok;

	nonce_of(nonce, s->next, final);
	ok = EVP_CipherInit_ex(s->ctx, NULL, NULL, NULL, nonce, enc) == 1 &&
	     EVP_CipherUpdate(s->ctx, NULL, &outl, s->hdr, VC_VMFILE_HDR_LEN) == 1 &&
	     (len == 0 || EVP_CipherUpdate(s->ctx, out, &outl, in, (int)len) == 1);
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_SET_TAG, VC_VMFILE_TAG_LEN,
					 tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(s->ctx, out + (len ? (size_t)outl : 0), &outl) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_GCM_GET_TAG, VC_VMFILE_TAG_LEN,
					 tag) == 1;
	return ok ? 0 : -EBADMSG;
}

static int stream_check(struct stream *s, size_t len, bool final, struct vc_error *err)
{
	if (s->done || s->failed)
		return vc_error_set(err, -EINVAL, "VM file stream already %s",
				    s->failed ? "failed" : "ended");
	if (s->next >= VC_VMFILE_MAX_CHUNKS)
		return vc_error_set(err, -EFBIG, "VM file has too many chunks");
	if (final ? len > s->chunk_size : len != s->chunk_size)
		return vc_error_set(err, -EINVAL, "VM file chunk %llu: %zu bytes (a %s chunk "
				    "holds %s%zu)", (unsigned long long)s->next, len,
				    final ? "final" : "non-final", final ? "at most " : "",
				    s->chunk_size);
	return 0;
}

static void stream_free(struct stream *s)
{
	/* Frees (and cleanses) the key schedule. */
	EVP_CIPHER_CTX_free(s->ctx);
	vc_wipe(s, sizeof *s);
}

int vc_vmfile_writer_new(const struct vc_secret *key, const char *purpose, unsigned chunk_shift,
			 uint8_t header[VC_VMFILE_HDR_LEN], struct vc_vmfile_writer **out,
			 struct vc_error *err)
{
	struct vc_vmfile_writer *w;
	int ret;

	*out = NULL;
	if (!chunk_shift)
		chunk_shift = VC_VMFILE_SHIFT_DEFAULT;
	if (chunk_shift < VC_VMFILE_SHIFT_MIN || chunk_shift > VC_VMFILE_SHIFT_MAX)
		return vc_error_set(err, -EINVAL, "VM file chunk size 2^%u is out of range",
				    chunk_shift);
	if (!vc_vmfile_purpose_valid(purpose))
		return vc_error_set(err, -EINVAL, "bad VM file purpose (1-%d of a-z 0-9 . _ -)",
				    VC_VMFILE_PURPOSE_MAX);
	memset(header, 0, VC_VMFILE_HDR_LEN);
	memcpy(header, VC_VMFILE_MAGIC, 8);
	vc_put_le16(header + 8, 1);
	header[10] = (uint8_t)chunk_shift;
	header[11] = (uint8_t)strlen(purpose);
	memcpy(header + 32, purpose, strlen(purpose));
	ret = vc_random_bytes(header + 16, VC_VMFILE_SALT_LEN, err);
	if (ret < 0)
		return ret;
	w = calloc(1, sizeof *w);
	if (!w)
		return vc_error_set(err, -ENOMEM, "out of memory");
	ret = stream_init(&w->s, key, 1, header, (size_t)1 << chunk_shift, err);
	if (ret < 0) {
		vc_vmfile_writer_free(w);
		return ret;
	}
	*out = w;
	return 0;
}

int vc_vmfile_writer_chunk(struct vc_vmfile_writer *w, const uint8_t *pt, size_t len,
			   bool final, uint8_t *out, struct vc_error *err)
{
	int ret = stream_check(&w->s, len, final, err);

	if (ret < 0)
		return ret;
	ret = stream_chunk(&w->s, 1, pt, len, final, out, out + len);
	if (ret < 0) {
		w->s.failed = true;
		return vc_error_ssl(err, -EIO, "VM file chunk encryption");
	}
	w->s.next++;
	w->s.done = final;
	return 0;
}

void vc_vmfile_writer_free(struct vc_vmfile_writer *w)
{
	if (!w)
		return;
	stream_free(&w->s);
	free(w);
}

int vc_vmfile_reader_new(const struct vc_secret *key, const char *purpose,
			 const uint8_t hdr[VC_VMFILE_HDR_LEN], struct vc_vmfile_info *info,
			 struct vc_vmfile_reader **out, struct vc_error *err)
{
	struct vc_vmfile_info in;
	struct vc_vmfile_reader *r;
	int ret = vc_vmfile_header_parse(hdr, &in, err);

	*out = NULL;
	if (ret < 0)
		return ret;
	if (!purpose || strcmp(purpose, in.purpose) != 0)
		return vc_error_set(err, -EBADMSG, "this VM file holds '%s', not '%s'",
				    in.purpose, purpose ? purpose : "");
	r = calloc(1, sizeof *r);
	if (!r)
		return vc_error_set(err, -ENOMEM, "out of memory");
	ret = stream_init(&r->s, key, 0, hdr, in.chunk_size, err);
	if (ret < 0) {
		vc_vmfile_reader_free(r);
		return ret;
	}
	if (info)
		*info = in;
	*out = r;
	return 0;
}

int vc_vmfile_reader_chunk(struct vc_vmfile_reader *r, const uint8_t *in, size_t inlen,
			   bool final, uint8_t *out, size_t *outlen, struct vc_error *err)
{
	size_t len;
	int ret;

	*outlen = 0;
	if (inlen < VC_VMFILE_TAG_LEN)
		return vc_error_set(err, -EBADMSG, "VM file chunk %llu is shorter than its tag "
				    "(the file is truncated)", (unsigned long long)r->s.next);
	len = inlen - VC_VMFILE_TAG_LEN;
	ret = stream_check(&r->s, len, final, err);
	if (ret == -EINVAL && !r->s.done && !r->s.failed)
		ret = vc_error_set(err, -EBADMSG, "VM file chunk %llu has a wrong length (the "
				   "file is damaged or truncated)", (unsigned long long)r->s.next);
	if (ret < 0)
		return ret;
	/* The tag is read from a copy: in may be read-only. */
	{
		uint8_t tag[VC_VMFILE_TAG_LEN];

		memcpy(tag, in + len, sizeof tag);
		ret = stream_chunk(&r->s, 0, in, len, final, out, tag);
	}
	if (ret < 0) {
		r->s.failed = true;
		vc_wipe(out, len);
		return vc_error_set(err, -EBADMSG, "VM file chunk %llu does not authenticate: "
				    "the file is damaged, altered or truncated, or the key is "
				    "wrong", (unsigned long long)r->s.next);
	}
	r->s.next++;
	r->s.done = final;
	*outlen = len;
	return 0;
}

bool vc_vmfile_reader_done(const struct vc_vmfile_reader *r)
{
	return r->s.done;
}

void vc_vmfile_reader_free(struct vc_vmfile_reader *r)
{
	if (!r)
		return;
	stream_free(&r->s);
	free(r);
}

/* ---- descriptors ---- */

/* Read up to len bytes (less only at EOF). */
static ssize_t read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int write_full(int fd, const uint8_t *buf, size_t len, struct vc_error *err)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vc_error_errno(err, errno, "cannot write the VM file");
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int vc_vmfile_seal_fd(const struct vc_secret *key, const char *purpose, unsigned chunk_shift,
		      int in_fd, int out_fd, uint64_t *written, struct vc_error *err)
{
	uint8_t hdr[VC_VMFILE_HDR_LEN];
	struct vc_vmfile_writer *w = NULL;
	uint8_t *pt = NULL, *ct = NULL, *next = NULL;
	size_t cs;
	ssize_t n, m;
	uint64_t total = 0;
	int ret = vc_vmfile_writer_new(key, purpose, chunk_shift, hdr, &w, err);

	if (ret < 0)
		return ret;
	cs = w->s.chunk_size;
	pt = malloc(cs);
	next = malloc(cs);
	ct = malloc(cs + VC_VMFILE_TAG_LEN);
	if (!pt || !ct || !next) {
		ret = vc_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = write_full(out_fd, hdr, sizeof hdr, err);
	total = sizeof hdr;
	/* A chunk is final when nothing follows it: read one ahead. */
	n = ret == 0 ? read_full(in_fd, pt, cs) : 0;
	while (ret == 0) {
		bool final;

		if (n < 0) {
			ret = vc_error_errno(err, errno, "cannot read the plaintext");
			break;
		}
		m = (size_t)n == cs ? read_full(in_fd, next, cs) : 0;
		if (m < 0) {
			ret = vc_error_errno(err, errno, "cannot read the plaintext");
			break;
		}
		final = m == 0;
		ret = vc_vmfile_writer_chunk(w, pt, (size_t)n, final, ct, err);
		if (ret == 0)
			ret = write_full(out_fd, ct, (size_t)n + VC_VMFILE_TAG_LEN, err);
		total += (size_t)n + VC_VMFILE_TAG_LEN;
		if (final)
			break;
		{
			uint8_t *t = pt;

			pt = next;
			next = t;
		}
		n = m;
	}
	if (ret == 0 && written)
		*written = total;
out:
	if (pt)
		vc_wipe(pt, cs);
	if (next)
		vc_wipe(next, cs);
	free(pt);
	free(next);
	free(ct);
	vc_vmfile_writer_free(w);
	return ret;
}

int vc_vmfile_open_fd(const struct vc_secret *key, const char *purpose, int in_fd, int out_fd,
		      uint64_t *plain_len, struct vc_error *err)
{
	uint8_t hdr[VC_VMFILE_HDR_LEN];
	struct vc_vmfile_reader *r = NULL;
	uint8_t *cur = NULL, *nxt = NULL, *pt = NULL;
	size_t cs, full;
	ssize_t n, m;
	uint64_t total = 0;
	int ret;

	n = read_full(in_fd, hdr, sizeof hdr);
	if (n < 0)
		return vc_error_errno(err, errno, "cannot read the VM file");
	if ((size_t)n < sizeof hdr)
		return vc_error_set(err, -EBADMSG, "VM file is shorter than its header");
	ret = vc_vmfile_reader_new(key, purpose, hdr, NULL, &r, err);
	if (ret < 0)
		return ret;
	cs = r->s.chunk_size;
	full = cs + VC_VMFILE_TAG_LEN;
	cur = malloc(full);
	nxt = malloc(full);
	pt = malloc(cs);
	if (!cur || !nxt || !pt) {
		ret = vc_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	n = read_full(in_fd, cur, full);
	while (ret == 0) {
		size_t len = 0;
		bool final;

		if (n < 0) {
			ret = vc_error_errno(err, errno, "cannot read the VM file");
			break;
		}
		m = (size_t)n == full ? read_full(in_fd, nxt, full) : 0;
		if (m < 0) {
			ret = vc_error_errno(err, errno, "cannot read the VM file");
			break;
		}
		final = m == 0;
		ret = vc_vmfile_reader_chunk(r, cur, (size_t)n, final, pt, &len, err);
		if (ret == 0)
			ret = write_full(out_fd, pt, len, err);
		total += len;
		if (final || ret < 0)
			break;
		{
			uint8_t *t = cur;

			cur = nxt;
			nxt = t;
		}
		n = m;
	}
	if (ret == 0 && plain_len)
		*plain_len = total;
out:
	if (pt)
		vc_wipe(pt, cs);
	free(cur);
	free(nxt);
	free(pt);
	vc_vmfile_reader_free(r);
	return ret;
}
