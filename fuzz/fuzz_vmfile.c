/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz harness for encrypted VM files: the input is a file (header +
 * chunks) read under the fixed fuzz key as purpose "nvram", and also the
 * plaintext of a file written and read back. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fuzz.h"
#include "vc_crypto.h"
#include "vc_vmfile.h"

/* A few chunks of the smallest size, or one of the largest: enough to
 * reach every path; more only makes runs slower. */
#define FUZZ_MAX_INPUT (256 * 1024)
#define PURPOSE "nvram"
#define HDR VC_VMFILE_HDR_LEN
#define TAG VC_VMFILE_TAG_LEN
/* docs/FORMAT.md V2 and V3, for the harness's own reading of files. */
#define OFF_VERSION 8
#define OFF_SHIFT 10
#define OFF_PURPOSE_LEN 11
#define OFF_RESERVED 12
#define OFF_SALT 16
#define OFF_PURPOSE 32
#define KDF_INFO "vmcrypt-vmfile-v1"

static const struct vc_secret *fuzz_key(void)
{
	static struct vc_secret *key;

	if (!key) {
		uint8_t b[FUZZ_KEK_LEN];

		_Static_assert(FUZZ_KEK_LEN == VC_VMFILE_KEY_LEN, "key length");
		fuzz_kek_fill(b);
		if (vc_secret_from_bytes(b, sizeof b, &key, NULL) < 0)
			abort();
	}
	return key;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

static void check_failure(int r, const struct vc_error *err, const char *what)
{
	FUZZ_CHECK(r < 0, "%s returned %d", what, r);
	FUZZ_CHECK(err->msg[0] != '\0', "%s failed (%d) without a message", what, r);
	FUZZ_CHECK(!strchr(err->msg, '\n'), "%s: message of more than one line: %s", what,
		   err->msg);
}

/* ---- the harness's own reading of the format ---- */

static bool purpose_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

/* What V2 says of a header: 0, -ENOTSUP (another version) or -EBADMSG. */
static int spec_header(const uint8_t *h)
{
	const unsigned plen = h[OFF_PURPOSE_LEN];

	if (memcmp(h, VC_VMFILE_MAGIC, 8) != 0)
		return -EBADMSG;
	if (h[OFF_VERSION] != 1 || h[OFF_VERSION + 1] != 0)
		return -ENOTSUP;
	if (h[OFF_SHIFT] < VC_VMFILE_SHIFT_MIN || h[OFF_SHIFT] > VC_VMFILE_SHIFT_MAX)
		return -EBADMSG;
	if (plen < 1 || plen > VC_VMFILE_PURPOSE_MAX)
		return -EBADMSG;
	for (unsigned i = 0; i < 4; i++)
		if (h[OFF_RESERVED + i])
			return -EBADMSG;
	for (unsigned i = 0; i < VC_VMFILE_PURPOSE_MAX; i++) {
		const uint8_t c = h[OFF_PURPOSE + i];

		if (i < plen ? !purpose_char(c) : c != 0)
			return -EBADMSG;
	}
	return 0;
}

/* V5 step 2: the number of chunks of a body, or 0 if no file has it. */
static size_t spec_chunks(size_t body, size_t c, size_t *last)
{
	const size_t full = c + TAG;
	size_t n;

	if (body < TAG)
		return 0;
	n = (body + full - 1) / full;
	*last = body - (n - 1) * full;
	return *last >= TAG ? n : 0;
}

/* V3 and V4 with OpenSSL directly, not through the library's reader or
 * writer, so that the two are checked against a second implementation. */
static void spec_file_key(const uint8_t *hdr, uint8_t out[32])
{
	const unsigned plen = hdr[OFF_PURPOSE_LEN];
	uint8_t info[sizeof KDF_INFO + VC_VMFILE_PURPOSE_MAX];
	const struct vc_secret *key = fuzz_key();

	memcpy(info, KDF_INFO, sizeof KDF_INFO); /* with its NUL */
	memcpy(info + sizeof KDF_INFO, hdr + OFF_PURPOSE, plen);
	if (vc_hkdf_sha256(vc_secret_data(key), vc_secret_len(key), hdr + OFF_SALT,
			   VC_VMFILE_SALT_LEN, info, sizeof KDF_INFO + plen, out, 32, NULL) < 0)
		abort();
}

/* Encrypt (tag written after the ciphertext) or decrypt-and-verify chunk
 * i of a file with this header. Returns false when a tag fails. */
static bool spec_chunk(bool enc, const uint8_t fkey[32], const uint8_t *hdr, uint64_t i,
		       bool final, const uint8_t *in, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t nonce[12] = { final ? 1 : 0 };
	uint8_t tag[TAG];
	int n = 0;
	bool ok;

	for (int b = 0; b < 8; b++)
		nonce[4 + b] = (uint8_t)(i >> (56 - 8 * b));
	if (!ctx || len > (size_t)1 << 20)
		abort();
	if (enc) {
		ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, fkey, nonce) == 1 &&
		     EVP_EncryptUpdate(ctx, NULL, &n, hdr, HDR) == 1 &&
		     EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
		     EVP_EncryptFinal_ex(ctx, out + n, &n) == 1 &&
		     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, out + len) == 1;
		if (!ok)
			abort();
	} else {
		memcpy(tag, in + len, TAG);
		if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, fkey, nonce) != 1 ||
		    EVP_DecryptUpdate(ctx, NULL, &n, hdr, HDR) != 1 ||
		    EVP_DecryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, tag) != 1)
			abort();
		ok = EVP_DecryptFinal_ex(ctx, out + n, &n) == 1;
	}
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/* ---- the library's readers ---- */

struct result {
	int r;          /* 0 or the refusal */
	uint8_t *pt;    /* plaintext handed out (all of it, or the chunks before a failure) */
	size_t ptlen;
};

/* The chunk reader over a whole file, cutting it as V5 says. */
static struct result read_chunks(const uint8_t *data, size_t size, const char *purpose)
{
	struct result res = { .pt = xmalloc(size) };
	struct vc_vmfile_reader *rd = NULL;
	struct vc_vmfile_info info;
	struct vc_error err = { 0 };
	size_t n, last = 0, body;
	int spec;

	if (size < HDR) {
		res.r = -EBADMSG;
		return res;
	}
	spec = spec_header(data);
	res.r = vc_vmfile_reader_new(fuzz_key(), purpose, data, &info, &rd, &err);
	if (res.r < 0) {
		check_failure(res.r, &err, "vc_vmfile_reader_new");
		FUZZ_CHECK(rd == NULL, "a failed reader_new returned a reader");
		FUZZ_CHECK(res.r == (spec ? spec : -EBADMSG),
			   "reader_new returned %d where V2 says %d (%s)", res.r, spec, err.msg);
		FUZZ_CHECK(spec || memcmp(data + OFF_PURPOSE, purpose, strlen(purpose)) != 0 ||
				   (size_t)data[OFF_PURPOSE_LEN] != strlen(purpose),
			   "reader_new refused a good header of purpose %s: %s", purpose, err.msg);
		return res;
	}
	FUZZ_CHECK(spec == 0, "reader_new accepted a header V2 refuses (%d)", spec);
	FUZZ_CHECK(strcmp(info.purpose, purpose) == 0, "reader_new accepted purpose %s for %s",
		   info.purpose, purpose);
	body = size - HDR;
	n = spec_chunks(body, info.chunk_size, &last);
	if (n == 0) {
		res.r = -EBADMSG;
		vc_vmfile_reader_free(rd);
		return res;
	}
	for (size_t i = 0; i < n; i++) {
		const size_t inlen = i < n - 1 ? info.chunk_size + TAG : last;
		size_t got = (size_t)-1;
		int r;

		FUZZ_CHECK(!vc_vmfile_reader_done(rd), "reader done before chunk %zu of %zu", i, n);
		r = vc_vmfile_reader_chunk(rd, data + HDR + i * (info.chunk_size + TAG), inlen,
					   i == n - 1, res.pt + res.ptlen, &got, &err);
		if (r < 0) {
			check_failure(r, &err, "vc_vmfile_reader_chunk");
			FUZZ_CHECK(r == -EBADMSG, "reader_chunk returned %d (%s)", r, err.msg);
			FUZZ_CHECK(!vc_vmfile_reader_done(rd), "reader done after a failure");
			/* A failed reader refuses everything after. */
			r = vc_vmfile_reader_chunk(rd, data + HDR + i * (info.chunk_size + TAG),
						   inlen, i == n - 1, res.pt + res.ptlen, &got,
						   &err);
			FUZZ_CHECK(r < 0, "a failed reader accepted chunk %zu again", i);
			res.r = -EBADMSG;
			vc_vmfile_reader_free(rd);
			return res;
		}
		FUZZ_CHECK(got == inlen - TAG, "chunk %zu of %zu bytes gave %zu bytes", i, inlen,
			   got);
		res.ptlen += got;
	}
	FUZZ_CHECK(vc_vmfile_reader_done(rd), "reader not done after the final chunk");
	/* V4: the plaintext is the body less one tag per chunk. */
	FUZZ_CHECK(res.ptlen == body - n * TAG, "plaintext of %zu bytes from a %zu-byte body",
		   res.ptlen, body);
	vc_vmfile_reader_free(rd);
	res.r = 0;
	return res;
}

static int memfd_with(const uint8_t *data, size_t len)
{
	int fd = memfd_create("fuzz-vmfile", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		abort();
	while (done < len) {
		ssize_t w = write(fd, data + done, len - done);

		if (w <= 0)
			abort();
		done += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

static uint8_t *memfd_contents(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *b;

	if (end < 0)
		abort();
	b = xmalloc((size_t)end);
	if (pread(fd, b, (size_t)end, 0) != end)
		abort();
	*len = (size_t)end;
	return b;
}

/* The plaintext of the leading chunks of a file that are whole and
 * authenticate as non-final chunks under the harness's own reading: all a
 * streaming reader may have written when it finds a later chunk bad. */
static uint8_t *spec_good_prefix(const uint8_t *data, size_t size, const char *purpose,
				 size_t *len)
{
	uint8_t *pt = xmalloc(size), fkey[32];
	size_t c;

	*len = 0;
	if (size < HDR || spec_header(data) != 0 ||
	    (size_t)data[OFF_PURPOSE_LEN] != strlen(purpose) ||
	    memcmp(data + OFF_PURPOSE, purpose, strlen(purpose)) != 0)
		return pt;
	c = (size_t)1 << data[OFF_SHIFT];
	spec_file_key(data, fkey);
	for (uint64_t i = 0; HDR + (i + 1) * (c + TAG) <= size; i++) {
		if (!spec_chunk(false, fkey, data, i, false, data + HDR + i * (c + TAG), c,
				pt + *len))
			break;
		*len += c;
	}
	vc_wipe(fkey, sizeof fkey);
	return pt;
}

/* The descriptor reader must decide as the chunk reader did. It reads
 * ahead by one chunk rather than cutting the file as V5 step 2 does up
 * front, so on a refusal it may already have written chunks that
 * authenticated; nothing else. */
static void read_fd_agrees(const uint8_t *data, size_t size, const char *purpose,
			   const struct result *want)
{
	struct vc_error err = { 0 };
	int in = memfd_with(data, size), out = memfd_with(NULL, 0);
	uint64_t plain = 0;
	size_t len;
	uint8_t *got;
	int r = vc_vmfile_open_fd(fuzz_key(), purpose, in, out, &plain, &err);

	got = memfd_contents(out, &len);
	if (want->r == 0) {
		FUZZ_CHECK(r == 0, "open_fd refused (%d: %s) what the chunk reader accepted", r,
			   err.msg);
		FUZZ_CHECK(plain == len && len == want->ptlen &&
				   memcmp(got, want->pt, len) == 0,
			   "open_fd gave %zu bytes (said %llu), the chunk reader %zu", len,
			   (unsigned long long)plain, want->ptlen);
	} else {
		size_t glen;
		uint8_t *good = spec_good_prefix(data, size, purpose, &glen);

		check_failure(r, &err, "vc_vmfile_open_fd");
		FUZZ_CHECK(r == want->r, "open_fd returned %d, the chunk reader %d (%s)", r,
			   want->r, err.msg);
		FUZZ_CHECK(len <= glen && memcmp(got, good, len) == 0 &&
				   (len == 0 || len % ((size_t)1 << data[OFF_SHIFT]) == 0),
			   "open_fd wrote %zu bytes on a failure; the first %zu are whole chunks"
			   " that authenticate", len, glen);
		free(good);
	}
	free(got);
	close(in);
	close(out);
}

/* ---- the input as a file ---- */

static long opened, refused;

static void as_file(const uint8_t *data, size_t size)
{
	struct vc_vmfile_info info;
	struct vc_error err = { 0 };
	struct result res;
	uint8_t *fixed, fkey[32];
	size_t n, last = 0;
	int r;

	if (size >= HDR) {
		const int spec = spec_header(data);

		r = vc_vmfile_header_parse(data, &info, &err);
		FUZZ_CHECK(r == spec, "header_parse returned %d where V2 says %d (%s)", r, spec,
			   err.msg);
		if (r < 0) {
			check_failure(r, &err, "vc_vmfile_header_parse");
		} else {
			FUZZ_CHECK(info.chunk_shift == (unsigned)data[OFF_SHIFT] &&
					   info.chunk_size == (size_t)1 << info.chunk_shift &&
					   strlen(info.purpose) == (size_t)data[OFF_PURPOSE_LEN] &&
					   memcmp(info.purpose, data + OFF_PURPOSE,
						  data[OFF_PURPOSE_LEN]) == 0 &&
					   memcmp(info.salt, data + OFF_SALT, 16) == 0,
				   "header_parse filled info with other values than the header's");
			FUZZ_CHECK(vc_vmfile_purpose_valid(info.purpose),
				   "header_parse accepted purpose %s", info.purpose);
		}
	}

	res = read_chunks(data, size, PURPOSE);
	if (res.r == 0)
		opened++;
	else
		refused++;
	read_fd_agrees(data, size, PURPOSE, &res);
	free(res.pt);

	/* A mutated file almost never authenticates, so the success paths
	 * would only see the seeds: seal its chunks again here, as a writer
	 * holding the key would (treating the stored bytes as plaintext),
	 * and both readers must then return exactly those bytes. */
	if (size < HDR || spec_header(data) != 0)
		return;
	n = spec_chunks(size - HDR, (size_t)1 << data[OFF_SHIFT], &last);
	if (n == 0)
		return;
	fixed = xmalloc(size);
	memcpy(fixed, data, HDR);
	spec_file_key(data, fkey);
	{
		const size_t c = (size_t)1 << data[OFF_SHIFT];
		uint8_t *want = xmalloc(size);
		size_t wlen = 0;
		char purpose[VC_VMFILE_PURPOSE_MAX + 1] = { 0 };

		for (size_t i = 0; i < n; i++) {
			const size_t len = (i < n - 1 ? c + TAG : last) - TAG;
			const uint8_t *src = data + HDR + i * (c + TAG);

			spec_chunk(true, fkey, data, i, i == n - 1, src, len,
				   fixed + HDR + i * (c + TAG));
			memcpy(want + wlen, src, len);
			wlen += len;
		}
		memcpy(purpose, data + OFF_PURPOSE, data[OFF_PURPOSE_LEN]);
		res = read_chunks(fixed, size, purpose);
		FUZZ_CHECK(res.r == 0, "a file sealed by the harness as V3/V4 say was refused");
		FUZZ_CHECK(res.ptlen == wlen && memcmp(res.pt, want, wlen) == 0,
			   "a file sealed by the harness read back other bytes");
		read_fd_agrees(fixed, size, purpose, &res);
		free(res.pt);
		free(want);
	}
	vc_wipe(fkey, sizeof fkey);
	free(fixed);
}

/* ---- the input as plaintext ---- */

static void as_plaintext(const uint8_t *data, size_t size)
{
	const unsigned shift = VC_VMFILE_SHIFT_MIN + (size ? data[0] % 9u : 0);
	const size_t c = (size_t)1 << shift;
	const size_t n = size ? (size + c - 1) / c : 1;
	const size_t flen = HDR + size + n * TAG;
	struct vc_vmfile_writer *w = NULL;
	struct vc_error err = { 0 };
	struct result res;
	uint8_t *f = xmalloc(flen), *dec, fkey[32];
	uint64_t written = 0;
	size_t at = HDR, len;
	int r, in, out;

	r = vc_vmfile_writer_new(fuzz_key(), PURPOSE, shift, f, &w, &err);
	FUZZ_CHECK(r == 0, "writer_new: %s", err.msg);
	FUZZ_CHECK(spec_header(f) == 0 && f[OFF_SHIFT] == shift,
		   "the writer made a header V2 refuses");
	for (size_t i = 0; i < n; i++) {
		const size_t clen = i < n - 1 ? c : size - i * c;

		r = vc_vmfile_writer_chunk(w, data + i * c, clen, i == n - 1, f + at, &err);
		FUZZ_CHECK(r == 0, "writer_chunk %zu: %s", i, err.msg);
		at += clen + TAG;
	}
	r = vc_vmfile_writer_chunk(w, data, 0, true, f + HDR, &err);
	FUZZ_CHECK(r == -EINVAL, "the writer took a chunk after the final one (%d)", r);
	vc_vmfile_writer_free(w);

	/* Back through the library's readers... */
	res = read_chunks(f, flen, PURPOSE);
	FUZZ_CHECK(res.r == 0 && res.ptlen == size && memcmp(res.pt, data, size) == 0,
		   "a written file of %zu bytes does not read back (%d)", size, res.r);
	read_fd_agrees(f, flen, PURPOSE, &res);
	free(res.pt);
	/* ...and through the harness's own reading of V3/V4. */
	dec = xmalloc(size);
	spec_file_key(f, fkey);
	for (size_t i = 0; i < n; i++) {
		const size_t clen = i < n - 1 ? c : size - i * c;

		FUZZ_CHECK(spec_chunk(false, fkey, f, i, i == n - 1, f + HDR + i * (c + TAG), clen,
				      dec + i * c),
			   "chunk %zu of the writer's file does not authenticate as V4 says", i);
	}
	FUZZ_CHECK(memcmp(dec, data, size) == 0, "the writer's file decrypts to other bytes");
	vc_wipe(fkey, sizeof fkey);
	free(dec);
	free(f);

	/* The descriptor writer, back through the descriptor reader. */
	in = memfd_with(data, size);
	out = memfd_with(NULL, 0);
	r = vc_vmfile_seal_fd(fuzz_key(), PURPOSE, shift, in, out, &written, &err);
	FUZZ_CHECK(r == 0, "seal_fd: %s", err.msg);
	close(in);
	f = memfd_contents(out, &len);
	close(out);
	FUZZ_CHECK(len == flen && written == len, "seal_fd wrote %zu bytes (said %llu), not %zu",
		   len, (unsigned long long)written, flen);
	res = read_chunks(f, len, PURPOSE);
	FUZZ_CHECK(res.r == 0 && res.ptlen == size && memcmp(res.pt, data, size) == 0,
		   "seal_fd's file does not read back (%d)", res.r);
	read_fd_agrees(f, len, PURPOSE, &res);
	free(res.pt);
	free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_MAX_INPUT)
		size = FUZZ_MAX_INPUT;
	as_file(data, size);
	as_plaintext(data, size);
	return 0;
}

int fuzz_replay_done(long inputs)
{
	/* The seeds hold valid files and broken ones: if none opens, the
	 * format changed under them; if none is refused, the broken ones are
	 * not broken. */
	if (opened == 0 || refused == 0) {
		fprintf(stderr, "fuzz_vmfile: of %ld inputs %ld opened and %ld were refused: the seed"
			" corpus is stale; regenerate it with"
			" tests/integration/vc_pyvmfile.py make-corpus fuzz/corpus/vmfile\n",
			inputs, opened, refused);
		return 1;
	}
	return 0;
}
