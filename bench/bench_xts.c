/* SPDX-License-Identifier: Apache-2.0 */
/* XTS throughput: the library's per-sector paths and its disk layer
 * against raw EVP XTS-AES-256 and memcpy, measured in the same run. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "memio.h"
#include "vc_disk.h"
#include "vc_xts.h"

#define MIB ((size_t)1 << 20)
/* Bytes per library call and per raw EVP data unit: big batches, so that
 * what is measured is the per-sector cost, not the per-call cost. */
#define UNIT MIB
#define MAX_REPS 100

struct bench {
	uint8_t *src, *dst;
	size_t size;
	struct vc_xts *xts[2]; /* VC_XTS_AUTO, VC_XTS_EVP */
	EVP_CIPHER_CTX *evp;   /* keyed once, for the raw pass */
	struct vc_disk *disk;  /* for the disk passes */
};

/* One thing measured: a pass over the whole buffer. */
struct measurement {
	const char *name;
	int (*pass)(struct bench *b, struct vc_xts *x, size_t ss);
	int impl;  /* index into bench.xts */
	size_t ss; /* sector size */
	double t[MAX_REPS];
};

static void die(const char *what, const struct vc_error *err)
{
	fprintf(stderr, "bench_xts: %s%s%s\n", what, err ? ": " : "",
		err ? vc_error_msg(err) : "");
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* A cheap digest, to check that paths that must agree do. */
static uint64_t digest(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603u;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		h = (h ^ w) * 1099511628211u;
	}
	return h;
}

static int pass_memcpy(struct bench *b, struct vc_xts *x, size_t ss)
{
	(void)x;
	(void)ss;
	memcpy(b->dst, b->src, b->size);
	return 0;
}

/* The cipher ceiling: one IV setup per 1 MiB data unit, then one
 * EVP_CipherUpdate over all of it. */
static int pass_evp_raw(struct bench *b, struct vc_xts *x, size_t ss)
{
	unsigned char iv[16] = { 0 };

	(void)x;
	(void)ss;
	for (size_t off = 0; off < b->size; off += UNIT) {
		int outl;

		vc_put_le64(iv, off / UNIT);
		if (EVP_CipherInit_ex(b->evp, NULL, NULL, NULL, iv, 1) != 1 ||
		    EVP_CipherUpdate(b->evp, b->dst + off, &outl, b->src + off, (int)UNIT) != 1 ||
		    (size_t)outl != UNIT)
			return -EIO;
	}
	return 0;
}

static int pass_xts_encrypt(struct bench *b, struct vc_xts *x, size_t ss)
{
	struct vc_error err = { 0 };

	for (size_t off = 0; off < b->size; off += UNIT)
		if (vc_xts_encrypt(x, off / ss, ss, b->src + off, b->dst + off, UNIT, &err) < 0)
			die("vc_xts_encrypt", &err);
	return 0;
}

/* Runs right after the encryption with the same key and sector size, so
 * dst holds the ciphertext of src: decrypting it into src leaves src as it
 * was (checked in the first round). */
static int pass_xts_decrypt(struct bench *b, struct vc_xts *x, size_t ss)
{
	struct vc_error err = { 0 };

	for (size_t off = 0; off < b->size; off += UNIT)
		if (vc_xts_decrypt(x, off / ss, ss, b->dst + off, b->src + off, UNIT, &err) < 0)
			die("vc_xts_decrypt", &err);
	return 0;
}

static int pass_disk_write(struct bench *b, struct vc_xts *x, size_t ss)
{
	struct vc_error err = { 0 };

	(void)x;
	(void)ss;
	for (size_t off = 0; off < b->size; off += UNIT)
		if (vc_disk_write(b->disk, b->src + off, UNIT, off, &err) < 0)
			die("vc_disk_write", &err);
	return 0;
}

static int pass_disk_read(struct bench *b, struct vc_xts *x, size_t ss)
{
	struct vc_error err = { 0 };

	(void)x;
	(void)ss;
	for (size_t off = 0; off < b->size; off += UNIT)
		if (vc_disk_read(b->disk, b->dst + off, UNIT, off, &err) < 0)
			die("vc_disk_read", &err);
	return 0;
}

/* In this order, round after round: each decrypt follows the encrypt it
 * undoes, the disk read follows the write. */
enum {
	M_MEMCPY,
	M_RAW,
	M_ENC4096,
	M_DEC4096,
	M_EVP4096,
	M_ENC512,
	M_DEC512,
	M_EVP512,
	M_DISK_WRITE,
	M_DISK_READ,
	M_COUNT
};

static struct measurement ms[M_COUNT] = {
	[M_MEMCPY] = { "memcpy", pass_memcpy, 0, 0, { 0 } },
	[M_RAW] = { "evp-xts raw (1 MiB data units)", pass_evp_raw, 0, 0, { 0 } },
	[M_ENC4096] = { "vc_xts encrypt 4096 (auto)", pass_xts_encrypt, 0, 4096, { 0 } },
	[M_DEC4096] = { "vc_xts decrypt 4096 (auto)", pass_xts_decrypt, 0, 4096, { 0 } },
	[M_EVP4096] = { "vc_xts encrypt 4096 (evp, naive)", pass_xts_encrypt, 1, 4096, { 0 } },
	[M_ENC512] = { "vc_xts encrypt 512 (auto)", pass_xts_encrypt, 0, 512, { 0 } },
	[M_DEC512] = { "vc_xts decrypt 512 (auto)", pass_xts_decrypt, 0, 512, { 0 } },
	[M_EVP512] = { "vc_xts encrypt 512 (evp, naive)", pass_xts_encrypt, 1, 512, { 0 } },
	[M_DISK_WRITE] = { "vc_disk_write 4096 (1 MiB chunks)", pass_disk_write, 0, 4096, { 0 } },
	[M_DISK_READ] = { "vc_disk_read 4096 (1 MiB chunks)", pass_disk_read, 0, 4096, { 0 } },
};

static double run_pass(struct bench *b, int i)
{
	const struct measurement *m = &ms[i];
	double t0 = now();

	if (m->pass(b, b->xts[m->impl], m->ss) < 0)
		die(m->name, NULL);
	return now() - t0;
}

/* An untimed first round (page faults, context pools) that also checks
 * that the paths agree: decryption gives back the plaintext, the EVP and
 * auto implementations give the same ciphertext, the disk reads back. */
static void warm_up(struct bench *b)
{
	const uint64_t plain = digest(b->src, b->size);
	uint64_t ct = 0;

	for (int i = 0; i < M_COUNT; i++) {
		(void)run_pass(b, i);
		switch (i) {
		case M_ENC4096:
		case M_ENC512:
			ct = digest(b->dst, b->size);
			break;
		case M_DEC4096:
		case M_DEC512:
			if (digest(b->src, b->size) != plain)
				die("decryption did not give back the plaintext", NULL);
			break;
		case M_EVP4096:
		case M_EVP512:
			if (digest(b->dst, b->size) != ct)
				die("the EVP and auto implementations disagree", NULL);
			break;
		case M_DISK_READ:
			if (memcmp(b->src, b->dst, b->size) != 0)
				die("the disk did not read back what was written", NULL);
			break;
		default:
			break;
		}
	}
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof v[0], cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double min_time(const double *t, int n)
{
	double m = t[0];

	for (int i = 1; i < n; i++)
		m = t[i] < m ? t[i] : m;
	return m;
}

/* Speed of m relative to raw EVP: best against best, and the median of
 * the ratios within each round, which a noisy machine disturbs less. */
static void ratios(const struct measurement *m, int reps, double *best, double *per_round)
{
	double r[MAX_REPS];

	for (int i = 0; i < reps; i++)
		r[i] = ms[M_RAW].t[i] / m->t[i];
	*best = min_time(ms[M_RAW].t, reps) / min_time(m->t, reps);
	*per_round = median(r, reps);
}

static struct vc_xts *new_xts(const struct vc_secret *key, enum vc_xts_impl impl)
{
	struct vc_error err = { 0 };
	struct vc_xts *x;

	if (vc_xts_new(key, impl, &x, &err) < 0)
		die("vc_xts_new", &err);
	return x;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--quick] [--size MIB] [--reps N]\n"
		"  --size MIB  buffer size in MiB (default 256)\n"
		"  --reps N    timed rounds, best and median reported (default 5)\n"
		"  --quick     16 MiB, 2 rounds: a smoke test\n",
		argv0);
	exit(2);
}

static long parse_num(const char *s, long lo, long hi, const char *argv0)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		usage(argv0);
	return v;
}

int main(int argc, char **argv)
{
	size_t size = 256 * MIB;
	int reps = 5;
	struct vc_error err = { 0 };
	struct vc_secret *key, *kek;
	struct bench b = { 0 };
	uint8_t k[VC_XTS_KEY_LEN], kekbytes[32];
	double best4096, round4096, best512, round512;
	struct memio *m;
	struct vc_disk_io io;
	struct vc_disk_params p = { 0 };
	uint64_t container;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			size = 16 * MIB;
			reps = 2;
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			size = (size_t)parse_num(argv[++i], 1, 64 * 1024, argv[0]) * MIB;
		} else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			reps = (int)parse_num(argv[++i], 1, MAX_REPS, argv[0]);
		} else {
			usage(argv[0]);
		}
	}

	b.size = size;
	b.src = aligned_alloc(4096, size);
	b.dst = aligned_alloc(4096, size);
	if (!b.src || !b.dst)
		die("out of memory", NULL);
	for (size_t off = 0; off < size; off += UNIT)
		if (RAND_bytes(b.src + off, (int)UNIT) != 1)
			die("RAND_bytes failed", NULL);
	memset(b.dst, 0, size);

	do {
		if (RAND_bytes(k, sizeof k) != 1)
			die("RAND_bytes failed", NULL);
	} while (memcmp(k, k + 32, 32) == 0);
	if (vc_secret_from_bytes(k, sizeof k, &key, &err) < 0)
		die("key", &err);
	b.evp = EVP_CIPHER_CTX_new();
	if (!b.evp || EVP_CipherInit_ex(b.evp, EVP_aes_256_xts(), NULL, k, NULL, 1) != 1)
		die("EVP AES-256-XTS setup failed", NULL);
	OPENSSL_cleanse(k, sizeof k);
	b.xts[0] = new_xts(key, VC_XTS_AUTO);
	b.xts[1] = new_xts(key, VC_XTS_EVP);

	/* The format layer on an in-memory container: hole checks, bounce
	 * buffer and the storage callbacks on top of the cipher. */
	if (vc_disk_container_size(size, 4096, &container, &err) < 0)
		die("container size", &err);
	m = memio_new(container);
	memio_io(m, &io);
	for (size_t i = 0; i < sizeof kekbytes; i++)
		kekbytes[i] = (uint8_t)i;
	if (vc_secret_from_bytes(kekbytes, sizeof kekbytes, &kek, &err) < 0)
		die("KEK", &err);
	p.virtual_size = size;
	p.sector_size = 4096;
	p.provider = "bench";
	p.key_id = "bench-kek";
	if (vc_disk_format(&io, &p, kek, NULL, &err) < 0 ||
	    vc_disk_open(&io, kek, NULL, 0, &b.disk, &err) < 0)
		die("disk", &err);

	printf("bench_xts: %zu MiB buffer, out of place, single thread, %d rounds;"
	       " %s; VC_XTS_AUTO is '%s'\n",
	       size / MIB, reps, OpenSSL_version(OPENSSL_VERSION), vc_xts_impl_name(b.xts[0]));
	/* Round-robin: a slow phase of the machine hits every measurement,
	 * not just the one that happened to be running. */
	warm_up(&b);
	for (int r = 0; r < reps; r++)
		for (int i = 0; i < M_COUNT; i++)
			ms[i].t[r] = run_pass(&b, i);

	printf("%-34s %9s %9s %8s %10s\n", "measurement", "GB/s best", "median", "vs raw",
	       "(per round)");
	for (int i = 0; i < M_COUNT; i++) {
		double t[MAX_REPS], best, per_round;

		ratios(&ms[i], reps, &best, &per_round);
		memcpy(t, ms[i].t, sizeof t);
		printf("%-34s %9.2f %9.2f %8.2f %10.2f\n", ms[i].name,
		       (double)size / min_time(ms[i].t, reps) / 1e9,
		       (double)size / median(t, reps) / 1e9, best, per_round);
	}
	ratios(&ms[M_ENC4096], reps, &best4096, &round4096);
	ratios(&ms[M_ENC512], reps, &best512, &round512);
	printf("4096-byte sectors: %.2f of raw EVP (target >= 0.90)\n", best4096);
	printf("512-byte sectors: %.2f of raw EVP\n", best512);
	printf("(median of per-round ratios: 4096-byte %.2f, 512-byte %.2f)\n", round4096,
	       round512);

	vc_disk_close(b.disk);
	memio_free(m);
	vc_secret_free(kek);
	vc_xts_free(b.xts[0]);
	vc_xts_free(b.xts[1]);
	vc_secret_free(key);
	EVP_CIPHER_CTX_free(b.evp);
	free(b.src);
	free(b.dst);
	return 0;
}
