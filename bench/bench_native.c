/* SPDX-License-Identifier: Apache-2.0 */
/* Native key provider: KEK derivations per second through
 * vc_native_get_key, against the bare HKDF it is built on, measured in
 * the same run; and the cost of one backup at the default scrypt cost. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "vc_crypto.h"
#include "vc_native.h"

#define MAX_REPS 50
#define NKEYS 16

struct bench {
	struct vc_native *p;
	char ids[NKEYS][VC_UUID_STR_LEN];
	uint8_t ikm[32], salt[16];
	EVP_KDF_CTX *kdf; /* fetched and set up once, for the raw pass */
};

struct measurement {
	const char *name;
	int (*op)(struct bench *b, unsigned i);
	double rate[MAX_REPS]; /* operations per second, one per round */
};

static void die(const char *what, const struct vc_error *err)
{
	fprintf(stderr, "bench_native: %s%s%s\n", what, err ? ": " : "",
		err ? vc_error_msg(err) : "");
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What the provider does per request: validate the id, derive into locked
 * memory, wipe and free. */
static int op_get_key(struct bench *b, unsigned i)
{
	struct vc_secret *k = NULL;
	int r = vc_native_get_key(b->p, b->ids[i % NKEYS], &k, NULL);

	vc_secret_free(k);
	return r;
}

/* The same HKDF through the library's wrapper into plain memory. */
static int op_hkdf(struct bench *b, unsigned i)
{
	char info[21 + VC_UUID_STR_LEN];
	uint8_t out[32];
	int r;

	memcpy(info, "vmcrypt-native-kek/1:", 21);
	memcpy(info + 21, b->ids[i % NKEYS], VC_UUID_STR_LEN);
	r = vc_hkdf_sha256(b->ikm, sizeof b->ikm, b->salt, sizeof b->salt, info,
			   sizeof info - 1, out, sizeof out, NULL);
	OPENSSL_cleanse(out, sizeof out);
	return r;
}

/* Raw OpenSSL: the KDF fetched and keyed once, only the info changes. */
static int op_raw(struct bench *b, unsigned i)
{
	char info[21 + VC_UUID_STR_LEN];
	OSSL_PARAM params[2];
	uint8_t out[32];
	int ok;

	memcpy(info, "vmcrypt-native-kek/1:", 21);
	memcpy(info + 21, b->ids[i % NKEYS], VC_UUID_STR_LEN);
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
						      sizeof info - 1);
	params[1] = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(b->kdf, out, sizeof out, params);
	OPENSSL_cleanse(out, sizeof out);
	return ok == 1 ? 0 : -EIO;
}

/* Run op for about `seconds`; operations per second. */
static double run(struct bench *b, int (*op)(struct bench *, unsigned), double seconds)
{
	double t0 = now(), t;
	unsigned n = 0;

	do {
		for (int j = 0; j < 64; j++, n++)
			if (op(b, n) < 0)
				die("derivation failed", NULL);
		t = now() - t0;
	} while (t < seconds);
	return (double)n / t;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, c = *(const double *)y;

	return a < c ? -1 : a > c;
}

static double median(const double *v, int n)
{
	double t[MAX_REPS];

	memcpy(t, v, (size_t)n * sizeof *t);
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static double best(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

/* The smoke test's check: the paths agree, keys differ per id. */
static void check(struct bench *b)
{
	struct vc_secret *k0 = NULL, *k0b = NULL, *k1 = NULL;
	char info[21 + VC_UUID_STR_LEN];
	uint8_t out[32];

	if (vc_native_get_key(b->p, b->ids[0], &k0, NULL) < 0 ||
	    vc_native_get_key(b->p, b->ids[0], &k0b, NULL) < 0 ||
	    vc_native_get_key(b->p, b->ids[1], &k1, NULL) < 0)
		die("get_key failed", NULL);
	if (memcmp(vc_secret_data(k0), vc_secret_data(k0b), 32) != 0)
		die("the same key id gave two different KEKs", NULL);
	if (memcmp(vc_secret_data(k0), vc_secret_data(k1), 32) == 0)
		die("two key ids gave the same KEK", NULL);
	/* Both baselines compute a KEK of their own key; they must agree. */
	memcpy(info, "vmcrypt-native-kek/1:", 21);
	memcpy(info + 21, b->ids[0], VC_UUID_STR_LEN);
	{
		OSSL_PARAM params[2] = {
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
							  sizeof info - 1),
			OSSL_PARAM_construct_end(),
		};
		uint8_t out2[32];

		if (vc_hkdf_sha256(b->ikm, sizeof b->ikm, b->salt, sizeof b->salt, info,
				   sizeof info - 1, out, sizeof out, NULL) < 0 ||
		    EVP_KDF_derive(b->kdf, out2, sizeof out2, params) != 1 ||
		    memcmp(out, out2, sizeof out) != 0)
			die("the HKDF baselines disagree", NULL);
	}
	vc_secret_free(k0);
	vc_secret_free(k0b);
	vc_secret_free(k1);
}

static EVP_KDF_CTX *raw_kdf(struct bench *b)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	char digest[] = "SHA256";
	OSSL_PARAM params[4] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, b->ikm, sizeof b->ikm),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, b->salt, sizeof b->salt),
		OSSL_PARAM_construct_end(),
	};

	EVP_KDF_free(kdf);
	if (!ctx || EVP_KDF_CTX_set_params(ctx, params) != 1)
		die("HKDF setup failed", NULL);
	return ctx;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--quick] [--seconds S] [--reps N]\n"
		"  --seconds S  total time per measurement (default 1)\n"
		"  --reps N     rounds it is split into, best and median reported (default 5)\n"
		"  --quick      0.05 s, 2 rounds, no backup timing: a smoke test\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	struct measurement ms[] = {
		{ "vc_native_get_key", op_get_key, { 0 } },
		{ "vc_hkdf_sha256 (plain memory)", op_hkdf, { 0 } },
		{ "raw EVP HKDF (context reused)", op_raw, { 0 } },
	};
	const int nms = (int)(sizeof ms / sizeof ms[0]);
	double seconds = 1.0;
	int reps = 5;
	bool quick = false;
	struct vc_error err = { 0 };
	struct bench b = { 0 };
	char tmpl[] = "/tmp/vc-bench-native-XXXXXX";
	char *dir;
	double raw_med;

	for (int i = 1; i < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
			seconds = 0.05;
			reps = 2;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			errno = 0;
			seconds = strtod(argv[++i], &end);
			if (errno || *end || !(seconds > 0 && seconds <= 600))
				usage(argv[0]);
		} else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			long v = strtol(argv[++i], &end, 10);

			if (*end || v < 1 || v > MAX_REPS)
				usage(argv[0]);
			reps = (int)v;
		} else {
			usage(argv[0]);
		}
	}

	dir = mkdtemp(tmpl);
	if (!dir)
		die("cannot create a temporary directory", NULL);
	if (vc_native_open(dir, NULL, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP, &b.p,
			   &err) < 0)
		die("open provider", &err);
	for (int i = 0; i < NKEYS; i++)
		if (vc_native_create_key(b.p, b.ids[i], NULL, &err) < 0)
			die("create key", &err);
	if (vc_random_bytes(b.ikm, sizeof b.ikm, &err) < 0 ||
	    vc_random_bytes(b.salt, sizeof b.salt, &err) < 0)
		die("random", &err);
	b.kdf = raw_kdf(&b);
	check(&b);

	printf("bench_native: %d key ids, single thread, %d rounds of %.2f s; %s\n", NKEYS,
	       reps, seconds / reps, OpenSSL_version(OPENSSL_VERSION));
	/* Round-robin, so a slow phase of the machine hits every path. */
	for (int i = 0; i < nms; i++)
		(void)run(&b, ms[i].op, 0.01);
	for (int r = 0; r < reps; r++)
		for (int i = 0; i < nms; i++)
			ms[i].rate[r] = run(&b, ms[i].op, seconds / reps);

	raw_med = median(ms[nms - 1].rate, reps);
	printf("%-32s %14s %12s %8s\n", "measurement", "derivs/s best", "median", "vs raw");
	for (int i = 0; i < nms; i++)
		printf("%-32s %14.0f %12.0f %8.2f\n", ms[i].name, best(ms[i].rate, reps),
		       median(ms[i].rate, reps), median(ms[i].rate, reps) / raw_med);
	printf("native provider: %.0f key derivations/s\n", median(ms[0].rate, reps));

	if (!quick) {
		struct vc_secret *pw = NULL;
		uint8_t env[VC_NATIVE_BACKUP_LEN];
		double t0;

		if (vc_secret_from_bytes("benchmark password", 18, &pw, &err) < 0)
			die("password", &err);
		t0 = now();
		if (vc_native_backup(b.p, pw, NULL, env, &err) < 0)
			die("backup", &err);
		printf("one backup at the default scrypt cost (N=2^15, r=8, p=1): %.1f ms\n",
		       (now() - t0) * 1e3);
		vc_secret_free(pw);
	}

	EVP_KDF_CTX_free(b.kdf);
	OPENSSL_cleanse(b.ikm, sizeof b.ikm);
	vc_native_close(b.p);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
