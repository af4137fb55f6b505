/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz harness for the KMIP TTLV decoder: whatever it accepts must
 * re-encode to the very same bytes and decode again. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>

#include "fuzz.h"
#include "vc_kmip_defs.h"
#include "vc_ttlv.h"

static long decoded;

static FILE *devnull(void)
{
	static FILE *f;

	if (!f) {
		f = fopen("/dev/null", "w");
		if (!f)
			abort();
	}
	return f;
}

/* The lookups must stay inside the tree whatever shape it has. */
static void walk(const struct vc_ttlv *s, int depth)
{
	struct vc_error err = { 0 };
	const struct vc_ttlv *sub;
	const uint8_t *data;
	const char *text;
	uint32_t e;
	int32_t i;
	size_t len;
	int r;

	FUZZ_CHECK(depth <= VC_TTLV_MAX_DEPTH, "decoded tree is %d levels deep", depth);
	for (const struct vc_ttlv *c = s->child; c; c = c->next) {
		FUZZ_CHECK(vc_ttlv_find(s, c->tag) != NULL, "find lost tag 0x%06x", (unsigned)c->tag);
		(void)vc_ttlv_find_next(c);
		if (c->type == VC_TTLV_BYTE_STRING && c->tag == VC_KMIP_TAG_KEY_MATERIAL)
			FUZZ_CHECK(c->secret, "key material not flagged secret");
		if (c->type == VC_TTLV_TEXT_STRING)
			FUZZ_CHECK(strlen((const char *)c->v.bytes.data) == c->v.bytes.len,
				   "text string with an inner NUL decoded");
		if (c->type == VC_TTLV_STRUCTURE)
			walk(c, depth + 1);
		r = vc_ttlv_get_integer(s, c->tag, &i, &err);
		FUZZ_CHECK(r == 0 || r == -EBADMSG, "get_integer on a present tag: %d", r);
		r = vc_ttlv_get_enum(s, c->tag, &e, &err);
		FUZZ_CHECK(r == 0 || r == -EBADMSG, "get_enum on a present tag: %d", r);
		r = vc_ttlv_get_text(s, c->tag, &text, &err);
		FUZZ_CHECK(r == 0 || r == -EBADMSG, "get_text on a present tag: %d", r);
		r = vc_ttlv_get_bytes(s, c->tag, &data, &len, &err);
		FUZZ_CHECK(r == 0 || r == -EBADMSG, "get_bytes on a present tag: %d", r);
		r = vc_ttlv_get_structure(s, c->tag, &sub, &err);
		FUZZ_CHECK(r == 0 || r == -EBADMSG, "get_structure on a present tag: %d", r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *tree = NULL, *again = NULL;
	uint8_t *out = NULL;
	size_t len = 0, total = 0;
	bool framed = false;
	int r;

	if (size >= 8) {
		r = vc_ttlv_frame_length(data, &total, &err);
		FUZZ_CHECK(r == 0 || r == -EBADMSG, "frame_length returned %d", r);
		if (r == 0)
			FUZZ_CHECK(total >= 8 && total <= VC_TTLV_MAX_MESSAGE && total % 8 == 0,
				   "frame_length gave %zu", total);
		framed = r == 0;
	}

	r = vc_ttlv_decode(data, size, &tree, &err);
	if (r < 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM, "decode returned %d", r);
		FUZZ_CHECK(tree == NULL, "failed decode returned a tree");
		FUZZ_CHECK(err.msg[0] != '\0', "failed decode (%d) without a message", r);
		return 0;
	}
	decoded++;
	FUZZ_CHECK(tree != NULL, "decode succeeded without a tree");
	/* A reader sizing its read from the header gets exactly this
	 * message. */
	if (tree->type == VC_TTLV_STRUCTURE)
		FUZZ_CHECK(framed && total == size, "frame_length %zu for a %zu byte message", total,
			   size);
	if (tree->type == VC_TTLV_STRUCTURE)
		walk(tree, 1);
	vc_ttlv_dump(tree, devnull());

	r = vc_ttlv_encode(tree, &out, &len, &err);
	FUZZ_CHECK(r == 0, "re-encode failed: %s", err.msg);
	FUZZ_CHECK(len == size && memcmp(out, data, size) == 0,
		   "re-encode gave %zu different bytes for %zu", len, size);
	r = vc_ttlv_decode(out, len, &again, &err);
	FUZZ_CHECK(r == 0 && again != NULL, "re-encoded message does not decode: %s", err.msg);

	OPENSSL_cleanse(out, len);
	free(out);
	vc_ttlv_free(again);
	vc_ttlv_free(tree);
	return 0;
}

/* A corpus in which nothing decodes exercises only the first checks. */
int fuzz_replay_done(long inputs)
{
	if (decoded == 0) {
		fprintf(stderr, "fuzz_ttlv: none of %ld inputs decoded\n", inputs);
		return 1;
	}
	printf("fuzz_ttlv: %ld of %ld inputs decoded and round-tripped\n", decoded, inputs);
	return 0;
}
