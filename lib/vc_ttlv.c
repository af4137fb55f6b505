/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP TTLV codec: tree builder, encoder and strict decoder. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "vc_kmip_defs.h"
#include "vc_ttlv.h"

/* KMIP 1.4 section 9.1.1: a 3-byte tag, a 1-byte type and a 4-byte
 * big-endian length precede every value, and every value is padded with
 * zeros to a multiple of 8 bytes. */
#define HDR_LEN 8
#define PAD 8
/* Section 9.1.3.1: tags 0x42xxxx are KMIP's, 0x54xxxx are extensions. */
#define TAG_KMIP 0x42u
#define TAG_EXTENSION 0x54u

static bool tag_ok(uint32_t tag)
{
	return tag <= 0xFFFFFFu && (tag >> 16 == TAG_KMIP || tag >> 16 == TAG_EXTENSION);
}

static bool is_blob(uint8_t type)
{
	return type == VC_TTLV_TEXT_STRING || type == VC_TTLV_BYTE_STRING ||
	       type == VC_TTLV_BIG_INTEGER;
}

/* Only for n <= VC_TTLV_MAX_MESSAGE, so it cannot wrap. */
static size_t padded(size_t n)
{
	return (n + (PAD - 1)) & ~(size_t)(PAD - 1);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get_be24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static const char *type_name(uint8_t type)
{
	switch (type) {
	case VC_TTLV_STRUCTURE: return "Structure";
	case VC_TTLV_INTEGER: return "Integer";
	case VC_TTLV_LONG_INTEGER: return "Long Integer";
	case VC_TTLV_BIG_INTEGER: return "Big Integer";
	case VC_TTLV_ENUMERATION: return "Enumeration";
	case VC_TTLV_BOOLEAN: return "Boolean";
	case VC_TTLV_TEXT_STRING: return "Text String";
	case VC_TTLV_BYTE_STRING: return "Byte String";
	case VC_TTLV_DATE_TIME: return "Date-Time";
	case VC_TTLV_INTERVAL: return "Interval";
	default: return "unknown type";
	}
}

static const char *tag_label(uint32_t tag)
{
	const char *s = vc_kmip_tag_name(tag);

	return s ? s : "item";
}

/* ---- building ---- */

static struct vc_ttlv *add_node(struct vc_ttlv *parent, uint32_t tag, uint8_t type)
{
	struct vc_ttlv *n;

	if (!parent)
		return NULL;
	/* Only structures have children; adding to anything else is a bug
	 * in the caller that must not go unnoticed until the server
	 * complains, so it fails the encode like an allocation failure. */
	if (parent->type != VC_TTLV_STRUCTURE) {
		parent->failed = true;
		return NULL;
	}
	n = calloc(1, sizeof *n);
	if (!n) {
		parent->failed = true;
		return NULL;
	}
	n->tag = tag;
	n->type = type;
	if (parent->last_child)
		parent->last_child->next = n;
	else
		parent->child = n;
	parent->last_child = n;
	return n;
}

static void wipe_free(void *p, size_t len, bool secret)
{
	if (p && secret)
		OPENSSL_cleanse(p, len);
	free(p);
}

static struct vc_ttlv *add_blob(struct vc_ttlv *parent, uint32_t tag, uint8_t type,
				const void *data, size_t len, bool secret)
{
	struct vc_ttlv *n;
	uint8_t *copy;

	if (!parent)
		return NULL;
	if (!data && len > 0) {
		parent->failed = true;
		return NULL;
	}
	/* One byte more than the value: text strings stay NUL-terminated. */
	copy = len < SIZE_MAX ? malloc(len + 1) : NULL;
	if (!copy) {
		parent->failed = true;
		return NULL;
	}
	if (len > 0)
		memcpy(copy, data, len);
	copy[len] = '\0';
	n = add_node(parent, tag, type);
	if (!n) {
		wipe_free(copy, len, secret);
		return NULL;
	}
	n->v.bytes.data = copy;
	n->v.bytes.len = len;
	n->secret = secret;
	return n;
}

struct vc_ttlv *vc_ttlv_new_structure(uint32_t tag)
{
	struct vc_ttlv *n = calloc(1, sizeof *n);

	if (n) {
		n->tag = tag;
		n->type = VC_TTLV_STRUCTURE;
	}
	return n;
}

struct vc_ttlv *vc_ttlv_add_structure(struct vc_ttlv *parent, uint32_t tag)
{
	return add_node(parent, tag, VC_TTLV_STRUCTURE);
}

struct vc_ttlv *vc_ttlv_add_integer(struct vc_ttlv *parent, uint32_t tag, int32_t v)
{
	struct vc_ttlv *n = add_node(parent, tag, VC_TTLV_INTEGER);

	if (n)
		n->v.i32 = v;
	return n;
}

struct vc_ttlv *vc_ttlv_add_long(struct vc_ttlv *parent, uint32_t tag, int64_t v)
{
	struct vc_ttlv *n = add_node(parent, tag, VC_TTLV_LONG_INTEGER);

	if (n)
		n->v.i64 = v;
	return n;
}

struct vc_ttlv *vc_ttlv_add_enum(struct vc_ttlv *parent, uint32_t tag, uint32_t v)
{
	struct vc_ttlv *n = add_node(parent, tag, VC_TTLV_ENUMERATION);

	if (n)
		n->v.u32 = v;
	return n;
}

struct vc_ttlv *vc_ttlv_add_bool(struct vc_ttlv *parent, uint32_t tag, bool v)
{
	struct vc_ttlv *n = add_node(parent, tag, VC_TTLV_BOOLEAN);

	if (n)
		n->v.boolean = v;
	return n;
}

struct vc_ttlv *vc_ttlv_add_text(struct vc_ttlv *parent, uint32_t tag, const char *s)
{
	if (parent && !s) {
		parent->failed = true;
		return NULL;
	}
	return add_blob(parent, tag, VC_TTLV_TEXT_STRING, s, s ? strlen(s) : 0, false);
}

struct vc_ttlv *vc_ttlv_add_bytes(struct vc_ttlv *parent, uint32_t tag,
				  const void *data, size_t len)
{
	return add_blob(parent, tag, VC_TTLV_BYTE_STRING, data, len, false);
}

struct vc_ttlv *vc_ttlv_add_secret(struct vc_ttlv *parent, uint32_t tag,
				   const void *data, size_t len)
{
	return add_blob(parent, tag, VC_TTLV_BYTE_STRING, data, len, true);
}

struct vc_ttlv *vc_ttlv_add_datetime(struct vc_ttlv *parent, uint32_t tag, int64_t t)
{
	struct vc_ttlv *n = add_node(parent, tag, VC_TTLV_DATE_TIME);

	if (n)
		n->v.i64 = t;
	return n;
}

struct vc_ttlv *vc_ttlv_add_interval(struct vc_ttlv *parent, uint32_t tag, uint32_t v)
{
	struct vc_ttlv *n = add_node(parent, tag, VC_TTLV_INTERVAL);

	if (n)
		n->v.u32 = v;
	return n;
}

void vc_ttlv_free(struct vc_ttlv *item)
{
	struct vc_ttlv *c, *next;

	if (!item)
		return;
	for (c = item->child; c; c = next) {
		next = c->next;
		vc_ttlv_free(c);
	}
	if (is_blob(item->type))
		wipe_free(item->v.bytes.data, item->v.bytes.len, item->secret);
	free(item);
}

/* ---- encoding ---- */

/* Adds the encoded size of n to *total, refusing anything the decoder
 * would refuse, so that whatever we send we could also have received. */
static int measure(const struct vc_ttlv *n, unsigned depth, size_t *items,
		   size_t *total, struct vc_error *err)
{
	size_t vlen = 0;
	int r;

	if (n->failed)
		return vc_error_set(err, -ENOMEM,
				    "TTLV: out of memory (or a bad argument) while building %s (0x%06" PRIX32 ")",
				    tag_label(n->tag), n->tag);
	if (!tag_ok(n->tag))
		return vc_error_set(err, -EINVAL,
				    "TTLV: cannot encode tag 0x%" PRIX32 ": not a KMIP (0x42xxxx) or extension (0x54xxxx) tag",
				    n->tag);
	if (depth > VC_TTLV_MAX_DEPTH)
		return vc_error_set(err, -EINVAL, "TTLV: cannot encode items nested deeper than %d",
				    VC_TTLV_MAX_DEPTH);
	if (++*items > VC_TTLV_MAX_ITEMS)
		return vc_error_set(err, -EMSGSIZE, "TTLV: cannot encode more than %d items",
				    VC_TTLV_MAX_ITEMS);
	switch (n->type) {
	case VC_TTLV_STRUCTURE:
		*total += HDR_LEN;
		if (*total > VC_TTLV_MAX_MESSAGE)
			return vc_error_set(err, -EMSGSIZE, "TTLV: message exceeds the %u byte limit",
					    VC_TTLV_MAX_MESSAGE);
		for (const struct vc_ttlv *c = n->child; c; c = c->next) {
			r = measure(c, depth + 1, items, total, err);
			if (r < 0)
				return r;
		}
		return 0;
	case VC_TTLV_INTEGER:
	case VC_TTLV_ENUMERATION:
	case VC_TTLV_INTERVAL:
	case VC_TTLV_LONG_INTEGER:
	case VC_TTLV_DATE_TIME:
	case VC_TTLV_BOOLEAN:
		vlen = 8;
		break;
	case VC_TTLV_TEXT_STRING:
	case VC_TTLV_BYTE_STRING:
	case VC_TTLV_BIG_INTEGER:
		if (n->v.bytes.len > VC_TTLV_MAX_MESSAGE)
			return vc_error_set(err, -EMSGSIZE,
					    "TTLV: %s (0x%06" PRIX32 ") of %zu bytes exceeds the %u byte message limit",
					    tag_label(n->tag), n->tag, n->v.bytes.len, VC_TTLV_MAX_MESSAGE);
		if (!n->v.bytes.data && n->v.bytes.len > 0)
			return vc_error_set(err, -EINVAL, "TTLV: %s (0x%06" PRIX32 ") has no data",
					    tag_label(n->tag), n->tag);
		if (n->type == VC_TTLV_TEXT_STRING && n->v.bytes.len > 0 &&
		    memchr(n->v.bytes.data, '\0', n->v.bytes.len))
			return vc_error_set(err, -EINVAL,
					    "TTLV: text string %s (0x%06" PRIX32 ") contains a NUL byte",
					    tag_label(n->tag), n->tag);
		if (n->type == VC_TTLV_BIG_INTEGER && n->v.bytes.len % PAD != 0)
			return vc_error_set(err, -EINVAL,
					    "TTLV: big integer %s (0x%06" PRIX32 ") is %zu bytes, not a multiple of 8",
					    tag_label(n->tag), n->tag, n->v.bytes.len);
		vlen = padded(n->v.bytes.len);
		break;
	default:
		return vc_error_set(err, -EINVAL, "TTLV: cannot encode %s (0x%06" PRIX32 ") of type 0x%02x",
				    tag_label(n->tag), n->tag, n->type);
	}
	/* Both terms are at most VC_TTLV_MAX_MESSAGE + 8 here. */
	*total += HDR_LEN + vlen;
	if (*total > VC_TTLV_MAX_MESSAGE)
		return vc_error_set(err, -EMSGSIZE, "TTLV: message exceeds the %u byte limit",
				    VC_TTLV_MAX_MESSAGE);
	return 0;
}

/* buf is zeroed and big enough (measure() said so), so padding is
 * already in place. Returns the offset after the item. */
static size_t write_item(const struct vc_ttlv *n, uint8_t *buf, size_t off)
{
	uint8_t *p = buf + off;
	uint32_t len;

	p[0] = (uint8_t)(n->tag >> 16);
	p[1] = (uint8_t)(n->tag >> 8);
	p[2] = (uint8_t)n->tag;
	p[3] = n->type;
	switch (n->type) {
	case VC_TTLV_STRUCTURE: {
		size_t end = off + HDR_LEN;

		for (const struct vc_ttlv *c = n->child; c; c = c->next)
			end = write_item(c, buf, end);
		put_be32(p + 4, (uint32_t)(end - off - HDR_LEN));
		return end;
	}
	case VC_TTLV_INTEGER:
		put_be32(p + 4, 4);
		put_be32(p + HDR_LEN, (uint32_t)n->v.i32);
		return off + HDR_LEN + 8;
	case VC_TTLV_ENUMERATION:
	case VC_TTLV_INTERVAL:
		put_be32(p + 4, 4);
		put_be32(p + HDR_LEN, n->v.u32);
		return off + HDR_LEN + 8;
	case VC_TTLV_LONG_INTEGER:
	case VC_TTLV_DATE_TIME:
		put_be32(p + 4, 8);
		put_be64(p + HDR_LEN, (uint64_t)n->v.i64);
		return off + HDR_LEN + 8;
	case VC_TTLV_BOOLEAN:
		put_be32(p + 4, 8);
		put_be64(p + HDR_LEN, n->v.boolean ? 1 : 0);
		return off + HDR_LEN + 8;
	default: /* a blob: measure() let no other type through */
		len = (uint32_t)n->v.bytes.len;
		put_be32(p + 4, len);
		if (len > 0)
			memcpy(p + HDR_LEN, n->v.bytes.data, len);
		return off + HDR_LEN + padded(len);
	}
}

int vc_ttlv_encode(const struct vc_ttlv *item, uint8_t **out, size_t *len,
		   struct vc_error *err)
{
	size_t total = 0, items = 0, end;
	uint8_t *buf;
	int r;

	if (!out || !len)
		return vc_error_set(err, -EINVAL, "TTLV: encode: no output buffer");
	*out = NULL;
	*len = 0;
	/* A NULL tree is what a failed vc_ttlv_new_structure() leaves. */
	if (!item)
		return vc_error_set(err, -ENOMEM, "TTLV: encode: no message (out of memory?)");
	r = measure(item, 1, &items, &total, err);
	if (r < 0)
		return r;
	buf = calloc(1, total);
	if (!buf)
		return vc_error_set(err, -ENOMEM, "TTLV: out of memory for a %zu byte message", total);
	end = write_item(item, buf, 0);
	if (end != total) {
		OPENSSL_cleanse(buf, total);
		free(buf);
		return vc_error_set(err, -EFAULT, "TTLV: encoder wrote %zu bytes of %zu", end, total);
	}
	*out = buf;
	*len = total;
	return 0;
}

/* ---- decoding ---- */

struct decoder {
	const uint8_t *buf;
	size_t items;
	struct vc_error *err;
};

static int bad(struct decoder *d, size_t off, const char *fmt, ...) VC_PRINTF(3, 4);

static int bad(struct decoder *d, size_t off, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return vc_error_set(d->err, -EBADMSG, "TTLV: malformed message at offset %zu: %s", off,
			    what);
}

static int fixed_len(uint8_t type)
{
	switch (type) {
	case VC_TTLV_INTEGER:
	case VC_TTLV_ENUMERATION:
	case VC_TTLV_INTERVAL:
		return 4;
	case VC_TTLV_LONG_INTEGER:
	case VC_TTLV_DATE_TIME:
	case VC_TTLV_BOOLEAN:
		return 8;
	default:
		return -1;
	}
}

/* Decodes the item at off, which must end by end (the end of the
 * enclosing structure, or of the message when parent is NULL); *next is
 * the offset after it. depth counts the top-level item as 1. Inside Key
 * Material (a structure for the transparent key formats) every string
 * is secret too. */
static int decode_item(struct decoder *d, size_t off, size_t end, unsigned depth,
		       const struct vc_ttlv *parent, bool in_key, struct vc_ttlv **out,
		       size_t *next)
{
	const uint8_t *p;
	size_t avail = end - off, val = off + HDR_LEN, vend, pend;
	struct vc_ttlv *n;
	uint32_t tag, len;
	uint64_t plen;
	uint8_t type;
	int want, r;

	if (avail < HDR_LEN)
		return bad(d, off, "truncated item header (%zu of 8 bytes left in the %s)", avail,
			   parent ? "enclosing structure" : "message");
	p = d->buf + off;
	tag = get_be24(p);
	type = p[3];
	len = get_be32(p + 4);
	if (!tag_ok(tag))
		return bad(d, off, "tag 0x%06" PRIX32 " is not a KMIP (0x42xxxx) or extension (0x54xxxx) tag",
			   tag);
	if (depth > VC_TTLV_MAX_DEPTH)
		return bad(d, off, "items nested deeper than %d", VC_TTLV_MAX_DEPTH);
	if (++d->items > VC_TTLV_MAX_ITEMS)
		return bad(d, off, "more than %d items", VC_TTLV_MAX_ITEMS);
	plen = ((uint64_t)len + (PAD - 1)) & ~(uint64_t)(PAD - 1);
	if (plen > avail - HDR_LEN) {
		if (parent)
			return bad(d, off,
				   "%s (0x%06" PRIX32 ") of length %" PRIu32 " runs past the end of %s (0x%06" PRIX32 ") at offset %zu",
				   tag_label(tag), tag, len, tag_label(parent->tag), parent->tag, end);
		return bad(d, off, "%s (0x%06" PRIX32 ") of length %" PRIu32 " runs past the end of the message (%zu bytes)",
			   tag_label(tag), tag, len, end);
	}
	vend = val + len;
	pend = val + (size_t)plen;

	/* Section 9.1.1.4 and 9.1.2: which lengths each type may have. */
	want = fixed_len(type);
	switch (type) {
	case VC_TTLV_STRUCTURE:
		if (len % PAD != 0)
			return bad(d, off, "structure %s (0x%06" PRIX32 ") has length %" PRIu32 ", not a multiple of 8",
				   tag_label(tag), tag, len);
		break;
	case VC_TTLV_INTEGER:
	case VC_TTLV_ENUMERATION:
	case VC_TTLV_INTERVAL:
	case VC_TTLV_LONG_INTEGER:
	case VC_TTLV_DATE_TIME:
	case VC_TTLV_BOOLEAN:
		if (len != (uint32_t)want)
			return bad(d, off, "%s %s (0x%06" PRIX32 ") has length %" PRIu32 ", not %d",
				   type_name(type), tag_label(tag), tag, len, want);
		break;
	case VC_TTLV_BIG_INTEGER:
		if (len % PAD != 0)
			return bad(d, off, "big integer %s (0x%06" PRIX32 ") has length %" PRIu32 ", not a multiple of 8",
				   tag_label(tag), tag, len);
		break;
	case VC_TTLV_TEXT_STRING:
		if (memchr(d->buf + val, '\0', len))
			return bad(d, off, "text string %s (0x%06" PRIX32 ") contains a NUL byte",
				   tag_label(tag), tag);
		break;
	case VC_TTLV_BYTE_STRING:
		break;
	default:
		/* 0x0B, Date-Time Extended, is KMIP 2.0 only. */
		return bad(d, off, "%s (0x%06" PRIX32 ") has unknown type 0x%02x", tag_label(tag), tag,
			   type);
	}
	if (type != VC_TTLV_STRUCTURE) {
		for (size_t i = vend; i < pend; i++)
			if (d->buf[i] != 0)
				return bad(d, i, "nonzero padding after %s (0x%06" PRIX32 ")",
					   tag_label(tag), tag);
	}
	if (type == VC_TTLV_BOOLEAN && get_be64(d->buf + val) > 1)
		return bad(d, val, "boolean %s (0x%06" PRIX32 ") is neither 0 nor 1", tag_label(tag), tag);

	n = calloc(1, sizeof *n);
	if (!n)
		return vc_error_set(d->err, -ENOMEM, "TTLV: out of memory");
	n->tag = tag;
	n->type = type;
	switch (type) {
	case VC_TTLV_STRUCTURE: {
		size_t c_off = val;
		bool key = in_key || tag == VC_KMIP_TAG_KEY_MATERIAL;

		while (c_off < vend) {
			struct vc_ttlv *c = NULL;

			r = decode_item(d, c_off, vend, depth + 1, n, key, &c, &c_off);
			if (r < 0) {
				vc_ttlv_free(n);
				return r;
			}
			if (n->last_child)
				n->last_child->next = c;
			else
				n->child = c;
			n->last_child = c;
		}
		break;
	}
	case VC_TTLV_INTEGER:
		n->v.i32 = (int32_t)get_be32(d->buf + val);
		break;
	case VC_TTLV_ENUMERATION:
	case VC_TTLV_INTERVAL:
		n->v.u32 = get_be32(d->buf + val);
		break;
	case VC_TTLV_LONG_INTEGER:
	case VC_TTLV_DATE_TIME:
		n->v.i64 = (int64_t)get_be64(d->buf + val);
		break;
	case VC_TTLV_BOOLEAN:
		n->v.boolean = get_be64(d->buf + val) == 1;
		break;
	default: /* text, byte string, big integer */
		n->secret = type != VC_TTLV_TEXT_STRING &&
			    (in_key || tag == VC_KMIP_TAG_KEY_MATERIAL);
		/* len <= VC_TTLV_MAX_MESSAGE, so len + 1 cannot wrap. */
		n->v.bytes.data = malloc((size_t)len + 1);
		if (!n->v.bytes.data) {
			free(n);
			return vc_error_set(d->err, -ENOMEM, "TTLV: out of memory");
		}
		memcpy(n->v.bytes.data, d->buf + val, len);
		n->v.bytes.data[len] = '\0';
		n->v.bytes.len = len;
		break;
	}
	*out = n;
	*next = pend;
	return 0;
}

int vc_ttlv_decode(const uint8_t *buf, size_t len, struct vc_ttlv **out,
		   struct vc_error *err)
{
	struct decoder d = { .buf = buf, .items = 0, .err = err };
	struct vc_ttlv *top = NULL;
	size_t next = 0;
	int r;

	if (!out)
		return vc_error_set(err, -EINVAL, "TTLV: decode: no output");
	*out = NULL;
	if (!buf && len > 0)
		return vc_error_set(err, -EINVAL, "TTLV: decode: no input");
	if (len > VC_TTLV_MAX_MESSAGE)
		return bad(&d, 0, "message of %zu bytes exceeds the %u byte limit", len,
			   VC_TTLV_MAX_MESSAGE);
	r = decode_item(&d, 0, len, 1, NULL, false, &top, &next);
	if (r < 0)
		return r;
	if (next != len) {
		vc_ttlv_free(top);
		return bad(&d, next, "%zu trailing bytes after the message", len - next);
	}
	*out = top;
	return 0;
}

int vc_ttlv_frame_length(const uint8_t hdr[8], size_t *total, struct vc_error *err)
{
	uint32_t tag, len;

	if (!hdr || !total)
		return vc_error_set(err, -EINVAL, "TTLV: frame length: no header");
	tag = get_be24(hdr);
	len = get_be32(hdr + 4);
	if (!tag_ok(tag))
		return vc_error_set(err, -EBADMSG,
				    "TTLV: message tag 0x%06" PRIX32 " is not a KMIP (0x42xxxx) or extension (0x54xxxx) tag",
				    tag);
	if (hdr[3] != VC_TTLV_STRUCTURE)
		return vc_error_set(err, -EBADMSG,
				    "TTLV: message %s (0x%06" PRIX32 ") has type 0x%02x, not a structure",
				    tag_label(tag), tag, hdr[3]);
	if (len % PAD != 0)
		return vc_error_set(err, -EBADMSG,
				    "TTLV: message length %" PRIu32 " is not a multiple of 8", len);
	if ((uint64_t)len + HDR_LEN > VC_TTLV_MAX_MESSAGE)
		return vc_error_set(err, -EBADMSG,
				    "TTLV: message of %" PRIu64 " bytes exceeds the %u byte limit",
				    (uint64_t)len + HDR_LEN, VC_TTLV_MAX_MESSAGE);
	*total = (size_t)len + HDR_LEN;
	return 0;
}

/* ---- lookup ---- */

const struct vc_ttlv *vc_ttlv_find(const struct vc_ttlv *parent, uint32_t tag)
{
	if (!parent || parent->type != VC_TTLV_STRUCTURE)
		return NULL;
	for (const struct vc_ttlv *c = parent->child; c; c = c->next)
		if (c->tag == tag)
			return c;
	return NULL;
}

const struct vc_ttlv *vc_ttlv_find_next(const struct vc_ttlv *item)
{
	if (!item)
		return NULL;
	for (const struct vc_ttlv *c = item->next; c; c = c->next)
		if (c->tag == item->tag)
			return c;
	return NULL;
}

static int get_typed(const struct vc_ttlv *parent, uint32_t tag, uint8_t type,
		     const struct vc_ttlv **item, struct vc_error *err)
{
	const struct vc_ttlv *n = vc_ttlv_find(parent, tag);

	if (!n) {
		if (!parent)
			return vc_error_set(err, -ENOENT, "KMIP: no %s (0x%06" PRIX32 "): no enclosing structure",
					    tag_label(tag), tag);
		return vc_error_set(err, -ENOENT, "KMIP: no %s (0x%06" PRIX32 ") in %s (0x%06" PRIX32 ")",
				    tag_label(tag), tag, tag_label(parent->tag), parent->tag);
	}
	if (n->type != type)
		return vc_error_set(err, -EBADMSG, "KMIP: %s (0x%06" PRIX32 ") is a %s, not a %s",
				    tag_label(tag), tag, type_name(n->type), type_name(type));
	*item = n;
	return 0;
}

int vc_ttlv_get_integer(const struct vc_ttlv *parent, uint32_t tag, int32_t *v,
			struct vc_error *err)
{
	const struct vc_ttlv *n;
	int r = get_typed(parent, tag, VC_TTLV_INTEGER, &n, err);

	if (r == 0)
		*v = n->v.i32;
	return r;
}

int vc_ttlv_get_enum(const struct vc_ttlv *parent, uint32_t tag, uint32_t *v,
		     struct vc_error *err)
{
	const struct vc_ttlv *n;
	int r = get_typed(parent, tag, VC_TTLV_ENUMERATION, &n, err);

	if (r == 0)
		*v = n->v.u32;
	return r;
}

int vc_ttlv_get_text(const struct vc_ttlv *parent, uint32_t tag, const char **s,
		     struct vc_error *err)
{
	const struct vc_ttlv *n;
	int r = get_typed(parent, tag, VC_TTLV_TEXT_STRING, &n, err);

	if (r == 0)
		*s = (const char *)n->v.bytes.data;
	return r;
}

int vc_ttlv_get_bytes(const struct vc_ttlv *parent, uint32_t tag, const uint8_t **data,
		      size_t *len, struct vc_error *err)
{
	const struct vc_ttlv *n;
	int r = get_typed(parent, tag, VC_TTLV_BYTE_STRING, &n, err);

	if (r == 0) {
		*data = n->v.bytes.data;
		*len = n->v.bytes.len;
	}
	return r;
}

int vc_ttlv_get_structure(const struct vc_ttlv *parent, uint32_t tag,
			  const struct vc_ttlv **s, struct vc_error *err)
{
	return get_typed(parent, tag, VC_TTLV_STRUCTURE, s, err);
}

/* ---- dump ---- */

#define DUMP_MAX_BYTES 64

static void dump_text(const uint8_t *s, size_t len, FILE *f)
{
	fputs(" '", f);
	for (size_t i = 0; i < len; i++) {
		/* Server-chosen text goes to a terminal or a log: show
		 * control bytes instead of passing them on. */
		if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\' || s[i] == '\'')
			fprintf(f, "\\x%02x", s[i]);
		else
			fputc(s[i], f);
	}
	fputc('\'', f);
}

static void dump_item(const struct vc_ttlv *n, FILE *f, int depth)
{
	const char *name = vc_kmip_tag_name(n->tag);

	fprintf(f, "%*s%06" PRIX32 " %-28s ", 2 * depth, "", n->tag, name ? name : "?");
	/* Padded to line the values up, but nothing trails a structure. */
	fprintf(f, n->type == VC_TTLV_STRUCTURE ? "%s" : "%-12s", type_name(n->type));
	switch (n->type) {
	case VC_TTLV_STRUCTURE:
		break;
	case VC_TTLV_INTEGER:
		fprintf(f, " %" PRId32, n->v.i32);
		break;
	case VC_TTLV_ENUMERATION:
		fprintf(f, " 0x%08" PRIX32, n->v.u32);
		if (n->tag == VC_KMIP_TAG_OPERATION)
			fprintf(f, " (%s)", vc_kmip_operation_name(n->v.u32));
		else if (n->tag == VC_KMIP_TAG_RESULT_REASON)
			fprintf(f, " (%s)", vc_kmip_reason_name(n->v.u32));
		break;
	case VC_TTLV_INTERVAL:
		fprintf(f, " %" PRIu32 " s", n->v.u32);
		break;
	case VC_TTLV_LONG_INTEGER:
		fprintf(f, " %" PRId64, n->v.i64);
		break;
	case VC_TTLV_DATE_TIME: {
		time_t t = (time_t)n->v.i64;
		struct tm tm;
		char when[64];

		fprintf(f, " %" PRId64, n->v.i64);
		if (gmtime_r(&t, &tm) && strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
			fprintf(f, " (%s)", when);
		break;
	}
	case VC_TTLV_BOOLEAN:
		fputs(n->v.boolean ? " true" : " false", f);
		break;
	case VC_TTLV_TEXT_STRING:
		dump_text(n->v.bytes.data, n->v.bytes.len, f);
		break;
	case VC_TTLV_BYTE_STRING:
	case VC_TTLV_BIG_INTEGER:
		if (n->secret) {
			fprintf(f, " <%zu bytes>", n->v.bytes.len);
			break;
		}
		fputc(' ', f);
		for (size_t i = 0; i < n->v.bytes.len && i < DUMP_MAX_BYTES; i++)
			fprintf(f, "%02x", n->v.bytes.data[i]);
		if (n->v.bytes.len > DUMP_MAX_BYTES)
			fprintf(f, "... (%zu bytes)", n->v.bytes.len);
		break;
	default:
		break;
	}
	fputc('\n', f);
	for (const struct vc_ttlv *c = n->type == VC_TTLV_STRUCTURE ? n->child : NULL; c;
	     c = c->next)
		dump_item(c, f, depth + 1);
}

void vc_ttlv_dump(const struct vc_ttlv *item, FILE *f)
{
	if (item && f)
		dump_item(item, f, 0);
}
