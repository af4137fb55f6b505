/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP TTLV (Tag-Type-Length-Value) encoding as a tree (KMIP 1.x spec,
 * section 9.1): build a message, encode it, decode a received one with
 * every length checked, and look items up by tag. */
#ifndef VC_TTLV_H
#define VC_TTLV_H

#include <stdbool.h>
#include <stdio.h>

#include "vc_error.h"

/* KMIP 1.4 section 9.1.1.2 Item Type. */
enum vc_ttlv_type {
	VC_TTLV_STRUCTURE = 0x01,
	VC_TTLV_INTEGER = 0x02,
	VC_TTLV_LONG_INTEGER = 0x03,
	VC_TTLV_BIG_INTEGER = 0x04,
	VC_TTLV_ENUMERATION = 0x05,
	VC_TTLV_BOOLEAN = 0x06,
	VC_TTLV_TEXT_STRING = 0x07,
	VC_TTLV_BYTE_STRING = 0x08,
	VC_TTLV_DATE_TIME = 0x09,
	VC_TTLV_INTERVAL = 0x0A,
};

#define VC_TTLV_MAX_DEPTH 16          /* nesting accepted by the decoder */
#define VC_TTLV_MAX_MESSAGE (1u << 20) /* largest message we encode or accept */
#define VC_TTLV_MAX_ITEMS 4096        /* items per decoded message */

/* One item. Children of a structure are a singly linked list in wire
 * order. Byte strings flagged secret (key material) are wiped on free. */
struct vc_ttlv {
	uint32_t tag;      /* 24-bit tag, e.g. 0x420094 */
	uint8_t type;      /* enum vc_ttlv_type */
	bool secret;
	bool failed;       /* an allocation under this node failed */
	union {
		int32_t i32;       /* INTEGER */
		uint32_t u32;      /* ENUMERATION, INTERVAL */
		int64_t i64;       /* LONG_INTEGER, DATE_TIME */
		bool boolean;      /* BOOLEAN */
		struct {           /* TEXT_STRING, BYTE_STRING, BIG_INTEGER */
			uint8_t *data; /* NUL-terminated for TEXT_STRING */
			size_t len;
		} bytes;
	} v;
	struct vc_ttlv *child, *last_child; /* STRUCTURE */
	struct vc_ttlv *next;               /* sibling */
};

/* Building. Each add returns the new item, or NULL on allocation failure
 * (then the parent is marked failed and vc_ttlv_encode fails with
 * -ENOMEM), or when parent is NULL; so calls can be chained without a
 * check after each one. */
struct vc_ttlv *vc_ttlv_new_structure(uint32_t tag);
struct vc_ttlv *vc_ttlv_add_structure(struct vc_ttlv *parent, uint32_t tag);
struct vc_ttlv *vc_ttlv_add_integer(struct vc_ttlv *parent, uint32_t tag, int32_t v);
struct vc_ttlv *vc_ttlv_add_long(struct vc_ttlv *parent, uint32_t tag, int64_t v);
struct vc_ttlv *vc_ttlv_add_enum(struct vc_ttlv *parent, uint32_t tag, uint32_t v);
struct vc_ttlv *vc_ttlv_add_bool(struct vc_ttlv *parent, uint32_t tag, bool v);
struct vc_ttlv *vc_ttlv_add_text(struct vc_ttlv *parent, uint32_t tag, const char *s);
struct vc_ttlv *vc_ttlv_add_bytes(struct vc_ttlv *parent, uint32_t tag,
				  const void *data, size_t len);
/* A byte string holding key material: wiped when freed. */
struct vc_ttlv *vc_ttlv_add_secret(struct vc_ttlv *parent, uint32_t tag,
				   const void *data, size_t len);
struct vc_ttlv *vc_ttlv_add_datetime(struct vc_ttlv *parent, uint32_t tag, int64_t t);
struct vc_ttlv *vc_ttlv_add_interval(struct vc_ttlv *parent, uint32_t tag, uint32_t v);

/* Free an item and everything under it (not its siblings). NULL is a
 * no-op. */
void vc_ttlv_free(struct vc_ttlv *item);

/* Encode item (and its children) into a new buffer *out of *len bytes
 * (caller frees; if the tree holds secrets, wipe before free). */
VC_MUST_CHECK int vc_ttlv_encode(const struct vc_ttlv *item, uint8_t **out,
				 size_t *len, struct vc_error *err);

/* Decode exactly one item filling all len bytes. Every length, padding,
 * type and the nesting depth is checked; -EBADMSG with a message naming
 * the offset on malformed input. Byte strings under tag KEY_MATERIAL
 * (0x420043) are flagged secret. */
VC_MUST_CHECK int vc_ttlv_decode(const uint8_t *buf, size_t len,
				 struct vc_ttlv **out, struct vc_error *err);

/* From the first 8 bytes of a message, the total length of the message
 * (header included): lets a reader know how much to read. -EBADMSG if the
 * header is not a structure or the length exceeds VC_TTLV_MAX_MESSAGE. */
VC_MUST_CHECK int vc_ttlv_frame_length(const uint8_t hdr[8], size_t *total,
				       struct vc_error *err);

/* Lookup: the first child of parent with this tag, or NULL; the next
 * sibling after item with the same tag, or NULL. */
const struct vc_ttlv *vc_ttlv_find(const struct vc_ttlv *parent, uint32_t tag);
const struct vc_ttlv *vc_ttlv_find_next(const struct vc_ttlv *item);

/* Typed getters for a child of parent: -ENOENT if absent, -EBADMSG if it
 * has another type; err names the tag. Strings point into the tree. */
VC_MUST_CHECK int vc_ttlv_get_integer(const struct vc_ttlv *parent, uint32_t tag,
				      int32_t *v, struct vc_error *err);
VC_MUST_CHECK int vc_ttlv_get_enum(const struct vc_ttlv *parent, uint32_t tag,
				   uint32_t *v, struct vc_error *err);
VC_MUST_CHECK int vc_ttlv_get_text(const struct vc_ttlv *parent, uint32_t tag,
				   const char **s, struct vc_error *err);
VC_MUST_CHECK int vc_ttlv_get_bytes(const struct vc_ttlv *parent, uint32_t tag,
				    const uint8_t **data, size_t *len,
				    struct vc_error *err);
VC_MUST_CHECK int vc_ttlv_get_structure(const struct vc_ttlv *parent, uint32_t tag,
					const struct vc_ttlv **s,
					struct vc_error *err);

/* A human-readable dump (tag, type, value; secrets shown as <n bytes>)
 * for diagnostics, one item per line, indented. */
void vc_ttlv_dump(const struct vc_ttlv *item, FILE *f);

#endif
