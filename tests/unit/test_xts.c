/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_xts: IEEE 1619 vectors, cross-checks, limits, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vc_crypto.h"
#include "vc_encode.h"
#include "vc_xts.h"

/* IEEE Std 1619-2007 annex B, XTS-AES-256 vectors 10 to 14: Key1 || Key2
 * (e and pi), one 512-byte data unit of 00 01 .. ff 00 01 .. ff, data unit
 * sequence numbers 0xff .. 0xffffffffff, as carried in OpenSSL's
 * test/recipes/30-test_evp_data/evpciph_aes_common.txt. */
static const char p1619_key[] =
	"2718281828459045235360287471352662497757247093699959574966967627"
	"3141592653589793238462643383279502884197169399375105820974944592";

static const struct {
	int number;
	uint64_t dusn;
	const char *ct;
} p1619[] = {
	{ 10, 0xff,
	  "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
	  "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
	  "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
	  "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
	  "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
	  "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
	  "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
	  "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
	  "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
	  "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
	  "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
	  "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
	  "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
	  "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
	  "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
	  "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151" },
	{ 11, 0xffff,
	  "77a31251618a15e6b92d1d66dffe7b50b50bad552305ba0217a610688eff7e11"
	  "e1d0225438e093242d6db274fde801d4cae06f2092c728b2478559df58e837c2"
	  "469ee4a4fa794e4bbc7f39bc026e3cb72c33b0888f25b4acf56a2a9804f1ce6d"
	  "3d6e1dc6ca181d4b546179d55544aa7760c40d06741539c7e3cd9d2f6650b201"
	  "3fd0eeb8c2b8e3d8d240ccae2d4c98320a7442e1c8d75a42d6e6cfa4c2eca179"
	  "8d158c7aecdf82490f24bb9b38e108bcda12c3faf9a21141c3613b58367f922a"
	  "aa26cd22f23d708dae699ad7cb40a8ad0b6e2784973dcb605684c08b8d6998c6"
	  "9aac049921871ebb65301a4619ca80ecb485a31d744223ce8ddc2394828d6a80"
	  "470c092f5ba413c3378fa6054255c6f9df4495862bbb3287681f931b687c888a"
	  "bf844dfc8fc28331e579928cd12bd2390ae123cf03818d14dedde5c0c24c8ab0"
	  "18bfca75ca096f2d531f3d1619e785f1ada437cab92e980558b3dce1474afb75"
	  "bfedbf8ff54cb2618e0244c9ac0d3c66fb51598cd2db11f9be39791abe447c63"
	  "094f7c453b7ff87cb5bb36b7c79efb0872d17058b83b15ab0866ad8a58656c5a"
	  "7e20dbdf308b2461d97c0ec0024a2715055249cf3b478ddd4740de654f75ca68"
	  "6e0d7345c69ed50cdc2a8b332b1f8824108ac937eb050585608ee734097fc090"
	  "54fbff89eeaeea791f4a7ab1f9868294a4f9e27b42af8100cb9d59cef9645803" },
	{ 12, 0xffffff,
	  "e387aaa58ba483afa7e8eb469778317ecf4cf573aa9d4eac23f2cdf914e4e200"
	  "a8b490e42ee646802dc6ee2b471b278195d60918ececb44bf79966f83faba049"
	  "9298ebc699c0c8634715a320bb4f075d622e74c8c932004f25b41e361025b5a8"
	  "7815391f6108fc4afa6a05d9303c6ba68a128a55705d415985832fdeaae6c8e1"
	  "9110e84d1b1f199a2692119edc96132658f09da7c623efcec712537a3d94c0bf"
	  "5d7e352ec94ae5797fdb377dc1551150721adf15bd26a8efc2fcaad56881fa9e"
	  "62462c28f30ae1ceaca93c345cf243b73f542e2074a705bd2643bb9f7cc79bb6"
	  "e7091ea6e232df0f9ad0d6cf502327876d82207abf2115cdacf6d5a48f6c1879"
	  "a65b115f0f8b3cb3c59d15dd8c769bc014795a1837f3901b5845eb491adfefe0"
	  "97b1fa30a12fc1f65ba22905031539971a10f2f36c321bb51331cdefb39e3964"
	  "c7ef079994f5b69b2edd83a71ef549971ee93f44eac3938fcdd61d01fa71799d"
	  "a3a8091c4c48aa9ed263ff0749df95d44fef6a0bb578ec69456aa5408ae32c7a"
	  "f08ad7ba8921287e3bbee31b767be06a0e705c864a769137df28292283ea81a2"
	  "480241b44d9921cdbec1bc28dc1fda114bd8e5217ac9d8ebafa720e9da4f9ace"
	  "231cc949e5b96fe76ffc21063fddc83a6b8679c00d35e09576a875305bed5f36"
	  "ed242c8900dd1fa965bc950dfce09b132263a1eef52dd6888c309f5a7d712826" },
	{ 13, 0xffffffff,
	  "bf53d2dade78e822a4d949a9bc6766b01b06a8ef70d26748c6a7fc36d80ae4c5"
	  "520f7c4ab0ac8544424fa405162fef5a6b7f229498063618d39f0003cb5fb8d1"
	  "c86b643497da1ff945c8d3bedeca4f479702a7a735f043ddb1d6aaade3c4a0ac"
	  "7ca7f3fa5279bef56f82cd7a2f38672e824814e10700300a055e1630b8f1cb0e"
	  "919f5e942010a416e2bf48cb46993d3cb6a51c19bacf864785a00bc2ecff15d3"
	  "50875b246ed53e68be6f55bd7e05cfc2b2ed6432198a6444b6d8c247fab941f5"
	  "69768b5c429366f1d3f00f0345b96123d56204c01c63b22ce78baf116e525ed9"
	  "0fdea39fa469494d3866c31e05f295ff21fea8d4e6e13d67e47ce722e9698a1c"
	  "1048d68ebcde76b86fcf976eab8aa9790268b7068e017a8b9b749409514f1053"
	  "027fd16c3786ea1bac5f15cb79711ee2abe82f5cf8b13ae73030ef5b9e4457e7"
	  "5d1304f988d62dd6fc4b94ed38ba831da4b7634971b6cd8ec325d9c61c00f1df"
	  "73627ed3745a5e8489f3a95c69639c32cd6e1d537a85f75cc844726e8a72fc00"
	  "77ad22000f1d5078f6b866318c668f1ad03d5a5fced5219f2eabbd0aa5c0f460"
	  "d183f04404a0d6f469558e81fab24a167905ab4c7878502ad3e38fdbe62a4155"
	  "6cec37325759533ce8f25f367c87bb5578d667ae93f9e2fd99bcbc5f2fbba88c"
	  "f6516139420fcff3b7361d86322c4bd84c82f335abb152c4a93411373aaa8220" },
	{ 14, 0xffffffffff,
	  "64497e5a831e4a932c09be3e5393376daa599548b816031d224bbf50a818ed23"
	  "50eae7e96087c8a0db51ad290bd00c1ac1620857635bf246c176ab463be30b80"
	  "8da548081ac847b158e1264be25bb0910bbc92647108089415d45fab1b3d2604"
	  "e8a8eff1ae4020cfa39936b66827b23f371b92200be90251e6d73c5f86de5fd4"
	  "a950781933d79a28272b782a2ec313efdfcc0628f43d744c2dc2ff3dcb66999b"
	  "50c7ca895b0c64791eeaa5f29499fb1c026f84ce5b5c72ba1083cddb5ce45434"
	  "631665c333b60b11593fb253c5179a2c8db813782a004856a1653011e93fb6d8"
	  "76c18366dd8683f53412c0c180f9c848592d593f8609ca736317d356e13e2bff"
	  "3a9f59cd9aeb19cd482593d8c46128bb32423b37a9adfb482b99453fbe25a41b"
	  "f6feb4aa0bef5ed24bf73c762978025482c13115e4015aac992e5613a3b5c2f6"
	  "85b84795cb6e9b2656d8c88157e52c42f978d8634c43d06fea928f2822e465aa"
	  "6576e9bf419384506cc3ce3c54ac1a6f67dc66f3b30191e698380bc999b05abc"
	  "e19dc0c6dcc2dd001ec535ba18deb2df1a101023108318c75dc98611a09dc48a"
	  "0acdec676fabdf222f07e026f059b672b56e5cbc8e1d21bbd867dd9272120546"
	  "81d70ea737134cdfce93b6f82ae22423274e58a0821cc5502e2d0ab4585e94de"
	  "6975be5e0b4efce51cd3e70c25a1fbbbd609d273ad5b0d59631c531f6a0a57b9" },
};

#define DU 512 /* data unit size of the vectors */

static const enum vc_xts_impl impls[] = { VC_XTS_PROVIDER, VC_XTS_EVP };
static const char *const impl_names[] = { "provider", "evp" };

static void unhex(const char *hex, uint8_t *out, size_t len)
{
	size_t got;

	assert_int_equal(strlen(hex), 2 * len);
	assert_int_equal(vc_hex_decode(hex, 2 * len, out, len, &got), 0);
	assert_int_equal(got, len);
}

static struct vc_secret *p1619_secret(void)
{
	struct vc_secret *key;

	assert_int_equal(vc_secret_new(VC_XTS_KEY_LEN, &key, NULL), 0);
	unhex(p1619_key, vc_secret_data(key), VC_XTS_KEY_LEN);
	return key;
}

static struct vc_xts *new_xts(const struct vc_secret *key, size_t impl)
{
	struct vc_xts *x = NULL;
	struct vc_error err = { 0 };
	int r = vc_xts_new(key, impls[impl], &x, &err);

	if (r != 0)
		fail_msg("vc_xts_new(%s): %d %s", impl_names[impl], r, err.msg);
	assert_string_equal(vc_xts_impl_name(x), impl_names[impl]);
	return x;
}

static void p1619_plaintext(uint8_t pt[DU])
{
	for (int i = 0; i < DU; i++)
		pt[i] = (uint8_t)i;
}

/* Plain OpenSSL EVP, one init per sector: the reference the library's
 * two paths are held to where no published vector exists. */
static void ref_xts(int enc, const uint8_t key[VC_XTS_KEY_LEN], uint64_t first,
		    size_t ss, const uint8_t *in, uint8_t *out, size_t len)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	assert_non_null(ctx);
	for (size_t off = 0; off < len; off += ss) {
		uint8_t iv[16] = { 0 };
		uint64_t sector = first + off / ss;
		int outl;

		for (int i = 0; i < 8; i++)
			iv[i] = (uint8_t)(sector >> (8 * i));
		assert_int_equal(EVP_CipherInit_ex(ctx, EVP_aes_256_xts(), NULL, key, iv, enc), 1);
		assert_int_equal(EVP_CipherUpdate(ctx, out + off, &outl, in + off, (int)ss), 1);
		assert_int_equal(outl, (int)ss);
	}
	EVP_CIPHER_CTX_free(ctx);
}

static void test_p1619_encrypt(void **state)
{
	struct vc_secret *key = p1619_secret();
	uint8_t pt[DU], ct[DU], out[DU], buf[DU];

	(void)state;
	p1619_plaintext(pt);
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);

		for (size_t v = 0; v < VC_ARRAY_SIZE(p1619); v++) {
			unhex(p1619[v].ct, ct, DU);
			memset(out, 0, sizeof out);
			assert_int_equal(vc_xts_encrypt(x, p1619[v].dusn, DU, pt, out, DU, NULL), 0);
			if (memcmp(out, ct, DU) != 0)
				fail_msg("%s: vector %d encrypt mismatch", impl_names[m], p1619[v].number);

			memcpy(buf, pt, DU);
			assert_int_equal(vc_xts_encrypt(x, p1619[v].dusn, DU, buf, buf, DU, NULL), 0);
			if (memcmp(buf, ct, DU) != 0)
				fail_msg("%s: vector %d in-place encrypt mismatch", impl_names[m],
					 p1619[v].number);
		}
		vc_xts_free(x);
	}
	vc_secret_free(key);
}

static void test_p1619_decrypt(void **state)
{
	struct vc_secret *key = p1619_secret();
	uint8_t pt[DU], ct[DU], out[DU], buf[DU];

	(void)state;
	p1619_plaintext(pt);
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);

		for (size_t v = 0; v < VC_ARRAY_SIZE(p1619); v++) {
			unhex(p1619[v].ct, ct, DU);
			memset(out, 0, sizeof out);
			assert_int_equal(vc_xts_decrypt(x, p1619[v].dusn, DU, ct, out, DU, NULL), 0);
			if (memcmp(out, pt, DU) != 0)
				fail_msg("%s: vector %d decrypt mismatch", impl_names[m], p1619[v].number);

			memcpy(buf, ct, DU);
			assert_int_equal(vc_xts_decrypt(x, p1619[v].dusn, DU, buf, buf, DU, NULL), 0);
			if (memcmp(buf, pt, DU) != 0)
				fail_msg("%s: vector %d in-place decrypt mismatch", impl_names[m],
					 p1619[v].number);
		}
		vc_xts_free(x);
	}
	vc_secret_free(key);
}

/* Without ciphertext stealing the first n blocks of an XTS data unit
 * depend only on the first n plaintext blocks, so every prefix of a vector
 * is itself a vector for a smaller sector size. */
static void test_p1619_prefix_sector_sizes(void **state)
{
	static const size_t sizes[] = { 16, 32, 48, 64, 128, 256 };
	struct vc_secret *key = p1619_secret();
	uint8_t pt[DU], ct[DU], out[DU];

	(void)state;
	p1619_plaintext(pt);
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);

		for (size_t v = 0; v < VC_ARRAY_SIZE(p1619); v++) {
			unhex(p1619[v].ct, ct, DU);
			for (size_t s = 0; s < VC_ARRAY_SIZE(sizes); s++) {
				assert_int_equal(vc_xts_encrypt(x, p1619[v].dusn, sizes[s], pt, out,
								sizes[s], NULL), 0);
				if (memcmp(out, ct, sizes[s]) != 0)
					fail_msg("%s: vector %d, %zu-byte prefix", impl_names[m],
						 p1619[v].number, sizes[s]);
				assert_int_equal(vc_xts_decrypt(x, p1619[v].dusn, sizes[s], ct, out,
								sizes[s], NULL), 0);
				assert_memory_equal(out, pt, sizes[s]);
			}
		}
		vc_xts_free(x);
	}
	vc_secret_free(key);
}

/* In a multi-sector call the sector number advances by one per sector:
 * the vector's data unit is found in the middle of three. */
static void test_p1619_multi_sector(void **state)
{
	struct vc_secret *key = p1619_secret();
	uint8_t pt[3 * DU], ct[DU], out[3 * DU];

	(void)state;
	for (int i = 0; i < 3; i++)
		p1619_plaintext(pt + i * DU);
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);

		for (size_t v = 0; v < VC_ARRAY_SIZE(p1619); v++) {
			unhex(p1619[v].ct, ct, DU);
			assert_int_equal(vc_xts_encrypt(x, p1619[v].dusn - 1, DU, pt, out,
							sizeof pt, NULL), 0);
			if (memcmp(out + DU, ct, DU) != 0)
				fail_msg("%s: vector %d not at the second of three sectors",
					 impl_names[m], p1619[v].number);
			/* Same plaintext, other sector numbers, other ciphertext. */
			assert_memory_not_equal(out, ct, DU);
			assert_memory_not_equal(out + 2 * DU, ct, DU);
			assert_int_equal(vc_xts_decrypt(x, p1619[v].dusn - 1, DU, out, out,
							sizeof out, NULL), 0);
			assert_memory_equal(out, pt, sizeof pt);
		}
		vc_xts_free(x);
	}
	vc_secret_free(key);
}

static void test_auto_impl(void **state)
{
	struct vc_secret *key = p1619_secret();
	struct vc_xts *x = NULL;
	uint8_t pt[DU], ct[DU], out[DU];
	const char *name;

	(void)state;
	assert_int_equal(vc_xts_new(key, VC_XTS_AUTO, &x, NULL), 0);
	name = vc_xts_impl_name(x);
	assert_true(strcmp(name, "provider") == 0 || strcmp(name, "evp") == 0);
	p1619_plaintext(pt);
	unhex(p1619[0].ct, ct, DU);
	assert_int_equal(vc_xts_encrypt(x, p1619[0].dusn, DU, pt, out, DU, NULL), 0);
	assert_memory_equal(out, ct, DU);
	vc_xts_free(x);
	vc_xts_free(NULL);
	vc_secret_free(key);
}

/* The context keeps its own copy of the key: freeing (and so wiping) the
 * caller's secret must not change the cipher. */
static void test_key_is_copied(void **state)
{
	uint8_t pt[DU], ct[DU], out[DU];

	(void)state;
	p1619_plaintext(pt);
	unhex(p1619[4].ct, ct, DU);
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_secret *key = p1619_secret();
		struct vc_xts *x = new_xts(key, m);

		vc_secret_free(key);
		assert_int_equal(vc_xts_encrypt(x, p1619[4].dusn, DU, pt, out, DU, NULL), 0);
		assert_memory_equal(out, ct, DU);
		vc_xts_free(x);
	}
}

static struct vc_secret *random_xts_key(void)
{
	struct vc_secret *key;

	assert_int_equal(vc_random_secret(VC_XTS_KEY_LEN, &key, NULL), 0);
	/* Equal halves are rejected; 2^-256 odds, but be exact. */
	vc_secret_data(key)[0] = (uint8_t)~vc_secret_data(key)[32];
	return key;
}

#define CROSS_LEN (1u << 20)

/* Both implementations against each other and against plain EVP, over
 * 1 MiB of random data, at sector numbers just below 2^64. */
static void test_cross_check(void **state)
{
	static const size_t sizes[] = { 512, 4096 };
	struct vc_secret *key = random_xts_key();
	struct vc_xts *prov = new_xts(key, 0), *evp = new_xts(key, 1);
	uint8_t *pt = malloc(CROSS_LEN), *a = malloc(CROSS_LEN), *b = malloc(CROSS_LEN);
	uint8_t *ref = malloc(CROSS_LEN);

	(void)state;
	assert_non_null(pt);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(ref);
	assert_int_equal(vc_random_bytes(pt, CROSS_LEN, NULL), 0);
	for (size_t s = 0; s < VC_ARRAY_SIZE(sizes); s++) {
		size_t ss = sizes[s], count = CROSS_LEN / ss;
		/* The last sector is 2^64 - 2; the carry out of the low 32
		 * bits and the top byte are both exercised. */
		uint64_t firsts[] = { UINT64_MAX - count, 0, 0xfffffffful - count / 2 };

		for (size_t f = 0; f < VC_ARRAY_SIZE(firsts); f++) {
			uint64_t first = firsts[f];

			assert_int_equal(vc_xts_encrypt(prov, first, ss, pt, a, CROSS_LEN, NULL), 0);
			assert_int_equal(vc_xts_encrypt(evp, first, ss, pt, b, CROSS_LEN, NULL), 0);
			ref_xts(1, vc_secret_data(key), first, ss, pt, ref, CROSS_LEN);
			if (memcmp(a, b, CROSS_LEN) != 0)
				fail_msg("provider and evp differ, %zu-byte sectors from %llu", ss,
					 (unsigned long long)first);
			if (memcmp(a, ref, CROSS_LEN) != 0)
				fail_msg("library differs from EVP reference, %zu-byte sectors from %llu",
					 ss, (unsigned long long)first);

			/* Encrypting in pieces gives the same bytes as in one call. */
			for (size_t off = 0; off < CROSS_LEN; off += 7 * ss) {
				size_t len = CROSS_LEN - off < 7 * ss ? CROSS_LEN - off : 7 * ss;

				assert_int_equal(vc_xts_encrypt(prov, first + off / ss, ss, pt + off,
								b + off, len, NULL), 0);
			}
			assert_memory_equal(a, b, CROSS_LEN);

			/* Each decrypts the other's output, in place. */
			assert_int_equal(vc_xts_decrypt(evp, first, ss, a, a, CROSS_LEN, NULL), 0);
			assert_memory_equal(a, pt, CROSS_LEN);
			assert_int_equal(vc_xts_decrypt(prov, first, ss, b, b, CROSS_LEN, NULL), 0);
			assert_memory_equal(b, pt, CROSS_LEN);
		}
	}
	free(pt);
	free(a);
	free(b);
	free(ref);
	vc_xts_free(prov);
	vc_xts_free(evp);
	vc_secret_free(key);
}

static void test_bad_keys(void **state)
{
	static const size_t lens[] = { 0, 16, 32, 48, 63, 65, 128 };

	(void)state;
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_secret *key;
		struct vc_xts *x;
		struct vc_error err = { 0 };

		/* Equal halves (IEEE 1619 allows, we do not). */
		assert_int_equal(vc_secret_new(VC_XTS_KEY_LEN, &key, NULL), 0);
		unhex(p1619_key, vc_secret_data(key), VC_XTS_KEY_LEN);
		memcpy(vc_secret_data(key) + 32, vc_secret_data(key), 32);
		x = (struct vc_xts *)(uintptr_t)1;
		assert_int_equal(vc_xts_new(key, impls[m], &x, &err), -EINVAL);
		assert_null(x);
		assert_int_equal(err.code, -EINVAL);
		/* One bit apart is enough to be accepted. */
		vc_secret_data(key)[63] ^= 1;
		assert_int_equal(vc_xts_new(key, impls[m], &x, NULL), 0);
		vc_xts_free(x);
		vc_secret_free(key);

		for (size_t i = 0; i < VC_ARRAY_SIZE(lens); i++) {
			if (lens[i] == 0)
				continue; /* no zero-length secrets exist */
			assert_int_equal(vc_random_secret(lens[i], &key, NULL), 0);
			x = (struct vc_xts *)(uintptr_t)1;
			vc_error_clear(&err);
			if (vc_xts_new(key, impls[m], &x, &err) != -EINVAL)
				fail_msg("%s: %zu-byte key accepted", impl_names[m], lens[i]);
			assert_null(x);
			assert_int_equal(err.code, -EINVAL);
			vc_secret_free(key);
		}
	}
}

/* A rejected request leaves the output untouched. */
static void expect_refused(struct vc_xts *x, uint64_t first, size_t ss, size_t len,
			   const char *what)
{
	static uint8_t in[8192], out[8192];
	struct vc_error err = { 0 };
	int r;

	assert_true(len <= sizeof in);
	for (int enc = 0; enc < 2; enc++) {
		memset(out, 0x3c, sizeof out);
		vc_error_clear(&err);
		r = enc ? vc_xts_encrypt(x, first, ss, in, out, len, &err)
			: vc_xts_decrypt(x, first, ss, in, out, len, &err);
		if (r >= 0)
			fail_msg("%s %s accepted (first %llu, ss %zu, len %zu)",
				 enc ? "encrypt" : "decrypt", what, (unsigned long long)first, ss, len);
		assert_int_equal(err.code, r);
		for (size_t i = 0; i < len; i++)
			if (out[i] != 0x3c)
				fail_msg("%s: output written at %zu", what, i);
	}
}

static void test_bad_requests(void **state)
{
	struct vc_secret *key = p1619_secret();

	(void)state;
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);

		/* Length not a multiple of the sector size. */
		expect_refused(x, 0, 512, 513, "partial sector");
		expect_refused(x, 0, 512, 1000, "partial sector");
		expect_refused(x, 0, 512, 511, "partial sector");
		expect_refused(x, 0, 4096, 4096 + 512, "partial sector");
		expect_refused(x, 0, 16, 24, "partial block");
		/* Sector sizes that are zero, too small, or not whole blocks. */
		expect_refused(x, 0, 0, 64, "sector size 0");
		expect_refused(x, 0, 0, 0, "sector size 0");
		expect_refused(x, 0, 8, 16, "sector size 8");
		expect_refused(x, 0, 15, 30, "sector size 15");
		expect_refused(x, 0, 24, 48, "sector size 24");
		expect_refused(x, 0, 520, 1040, "sector size 520");
		expect_refused(x, 0, 4100, 4100, "sector size 4100");
		vc_xts_free(x);
	}
	vc_secret_free(key);
}

/* Sector numbers are 64-bit: a request running past 2^64 - 1 would wrap
 * to sector 0 and reuse its tweak. */
static void test_sector_overflow(void **state)
{
	struct vc_secret *key = p1619_secret();

	(void)state;
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);
		uint8_t buf[64 * 16];

		expect_refused(x, UINT64_MAX, 16, 32, "overflow");
		expect_refused(x, UINT64_MAX, 512, 1024, "overflow");
		expect_refused(x, UINT64_MAX - 1, 16, 48, "overflow");
		expect_refused(x, UINT64_MAX - 2, 16, 64 * 16, "overflow");
		expect_refused(x, UINT64_MAX - 62, 16, 64 * 16, "overflow");
		/* Ending one short of the last sector number is fine. */
		memset(buf, 0, sizeof buf);
		assert_int_equal(vc_xts_encrypt(x, UINT64_MAX - 64, 16, buf, buf, sizeof buf, NULL), 0);
		assert_int_equal(vc_xts_decrypt(x, UINT64_MAX - 64, 16, buf, buf, sizeof buf, NULL), 0);
		vc_xts_free(x);
	}
	vc_secret_free(key);
}

/* Sector 2^64 - 1 exists: a request ending exactly there (first + count
 * == 2^64) does not overflow and must work. */
static void test_last_sector_number(void **state)
{
	struct vc_secret *key = p1619_secret();
	uint8_t pt[4 * DU], want[4 * DU], out[4 * DU];

	(void)state;
	p1619_plaintext(pt);
	memcpy(pt + DU, pt, DU);
	memcpy(pt + 2 * DU, pt, 2 * DU);
	ref_xts(1, vc_secret_data(key), UINT64_MAX - 3, DU, pt, want, sizeof pt);
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);
		struct vc_error err = { 0 };
		int r1, r4, ok1, ok4;

		memset(out, 0, sizeof out);
		r1 = vc_xts_encrypt(x, UINT64_MAX, DU, pt, out, DU, &err);
		ok1 = r1 == 0 && memcmp(out, want + 3 * DU, DU) == 0;
		memset(out, 0, sizeof out);
		r4 = vc_xts_encrypt(x, UINT64_MAX - 3, DU, pt, out, sizeof pt, &err);
		ok4 = r4 == 0 && memcmp(out, want, sizeof want) == 0;
		vc_xts_free(x);
		if (!ok1 || !ok4) {
			vc_secret_free(key);
			fail_msg("%s: sector 2^64-1 alone: %d%s; sectors 2^64-4 .. 2^64-1: %d%s (%s)",
				 impl_names[m], r1, r1 == 0 && !ok1 ? " wrong output" : "",
				 r4, r4 == 0 && !ok4 ? " wrong output" : "", err.msg);
		}
	}
	vc_secret_free(key);
}

#define NTHREADS 4
#define THREAD_LEN (128u * 1024)
#define ROUNDS 16

struct worker {
	struct vc_xts *x;
	pthread_barrier_t *start;
	uint64_t first;
	size_t ss;
	const uint8_t *pt, *want;
	uint8_t *buf;
	int failures;
};

/* One pass over the region in requests of 1 to 5 sectors: many short
 * calls, so the threads contend for the context pool as often as
 * possible. enc selects the direction; the result is checked by the
 * caller. */
static int worker_pass(struct worker *w, int enc, const uint8_t *in)
{
	size_t off = 0, n = 0;

	while (off < THREAD_LEN) {
		size_t len = (1 + n++ % 5) * w->ss;
		int r;

		if (len > THREAD_LEN - off)
			len = THREAD_LEN - off;
		r = enc ? vc_xts_encrypt(w->x, w->first + off / w->ss, w->ss, in + off,
					 w->buf + off, len, NULL)
			: vc_xts_decrypt(w->x, w->first + off / w->ss, w->ss, in + off,
					 w->buf + off, len, NULL);
		if (r != 0)
			return r;
		off += len;
	}
	return 0;
}

/* No cmocka asserts off the main thread: count and report. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	for (int round = 0; round < ROUNDS; round++) {
		memset(w->buf, 0, THREAD_LEN);
		if (worker_pass(w, 1, w->pt) != 0 || memcmp(w->buf, w->want, THREAD_LEN) != 0)
			w->failures++;
		/* In place, back to the plaintext. */
		if (worker_pass(w, 0, w->buf) != 0 || memcmp(w->buf, w->pt, THREAD_LEN) != 0)
			w->failures++;
	}
	return NULL;
}

/* Four threads share one context; each must get exactly the ciphertext a
 * single thread computed beforehand. */
static void test_concurrent(void **state)
{
	struct vc_secret *key = random_xts_key();

	(void)state;
	for (size_t m = 0; m < VC_ARRAY_SIZE(impls); m++) {
		struct vc_xts *x = new_xts(key, m);
		struct worker w[NTHREADS];
		pthread_t t[NTHREADS];
		pthread_barrier_t start;

		assert_int_equal(pthread_barrier_init(&start, NULL, NTHREADS), 0);
		for (int i = 0; i < NTHREADS; i++) {
			uint8_t *pt = malloc(THREAD_LEN), *want = malloc(THREAD_LEN);

			assert_non_null(pt);
			assert_non_null(want);
			assert_int_equal(vc_random_bytes(pt, THREAD_LEN, NULL), 0);
			w[i] = (struct worker){
				.x = x,
				.start = &start,
				.first = (uint64_t)i * 1000003u + 17,
				.ss = i % 2 ? 4096 : 512,
				.pt = pt,
				.want = want,
				.buf = malloc(THREAD_LEN),
			};
			assert_non_null(w[i].buf);
			assert_int_equal(vc_xts_encrypt(x, w[i].first, w[i].ss, pt, want,
							THREAD_LEN, NULL), 0);
		}
		for (int i = 0; i < NTHREADS; i++)
			assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
		for (int i = 0; i < NTHREADS; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		pthread_barrier_destroy(&start);
		for (int i = 0; i < NTHREADS; i++) {
			uint8_t *ref = malloc(THREAD_LEN);

			if (w[i].failures)
				fail_msg("%s: thread %d: %d wrong results", impl_names[m], i,
					 w[i].failures);
			/* The single-threaded reference is itself right. */
			assert_non_null(ref);
			ref_xts(1, vc_secret_data(key), w[i].first, w[i].ss, w[i].pt, ref, THREAD_LEN);
			assert_memory_equal(ref, w[i].want, THREAD_LEN);
			free(ref);
			free((void *)(uintptr_t)w[i].pt);
			free((void *)(uintptr_t)w[i].want);
			free(w[i].buf);
		}
		vc_xts_free(x);
	}
	vc_secret_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_p1619_encrypt),
		cmocka_unit_test(test_p1619_decrypt),
		cmocka_unit_test(test_p1619_prefix_sector_sizes),
		cmocka_unit_test(test_p1619_multi_sector),
		cmocka_unit_test(test_auto_impl),
		cmocka_unit_test(test_key_is_copied),
		cmocka_unit_test(test_cross_check),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_sector_overflow),
		cmocka_unit_test(test_last_sector_number),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
