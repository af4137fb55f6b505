/* SPDX-License-Identifier: Apache-2.0 */
/* Event log records: canonical encoding, hash chain and text export. */
#include "vc_event.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vc_encode.h"
#include "vc_secmem.h"

#define LABEL_LEN (sizeof VC_EVENT_LABEL - 1)
#define NSTRINGS 7

static void event_strings(const struct vc_event *ev, const char *s[NSTRINGS])
{
	s[0] = ev->user;
	s[1] = ev->operation;
	s[2] = ev->object;
	s[3] = ev->provider;
	s[4] = ev->key_id;
	s[5] = ev->result;
	s[6] = ev->message;
}

static const char *const field_names[NSTRINGS] = {
	"user", "operation", "object", "provider", "key_id", "result", "message",
};

static void put_be(uint8_t *p, uint64_t v, size_t width)
{
	for (size_t i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
}

int vc_event_encode(const struct vc_event *ev, uint8_t **out, size_t *outlen,
		    struct vc_error *err)
{
	const char *s[NSTRINGS];
	size_t lens[NSTRINGS];
	size_t total = LABEL_LEN + 8 + 8 + VC_SHA256_LEN;
	uint8_t *buf, *p;

	event_strings(ev, s);
	for (size_t i = 0; i < NSTRINGS; i++) {
		lens[i] = s[i] ? strlen(s[i]) : 0;
		if (lens[i] > UINT32_MAX)
			return vc_error_set(err, -EOVERFLOW,
					    "event %" PRId64 ": %s is too long",
					    ev->seq, field_names[i]);
		if (__builtin_add_overflow(total, 4 + lens[i], &total))
			return vc_error_set(err, -EOVERFLOW,
					    "event %" PRId64 " is too large", ev->seq);
	}
	buf = malloc(total);
	if (!buf)
		return vc_error_set(err, -ENOMEM, "out of memory encoding an event");
	p = buf;
	memcpy(p, VC_EVENT_LABEL, LABEL_LEN);
	p += LABEL_LEN;
	put_be(p, (uint64_t)ev->seq, 8);
	p += 8;
	put_be(p, (uint64_t)ev->time_us, 8);
	p += 8;
	for (size_t i = 0; i < NSTRINGS; i++) {
		put_be(p, lens[i], 4);
		p += 4;
		if (lens[i])
			memcpy(p, s[i], lens[i]);
		p += lens[i];
	}
	memcpy(p, ev->prev_hash, VC_SHA256_LEN);
	*out = buf;
	*outlen = total;
	return 0;
}

int vc_event_hash(const struct vc_event *ev, const void *key, size_t keylen,
		  uint8_t out[VC_SHA256_LEN], struct vc_error *err)
{
	VC_CLEANUP_FREE uint8_t *enc = NULL;
	size_t enclen;
	int r;

	/* A non-NULL empty key would silently mean "unkeyed" to a reader of
	 * the caller's code; refuse the ambiguity. */
	if ((key == NULL) != (keylen == 0))
		return vc_error_set(err, -EINVAL,
				    "event log key: key and key length disagree");
	r = vc_event_encode(ev, &enc, &enclen, err);
	if (r < 0)
		return r;
	if (key)
		return vc_hmac_sha256(key, keylen, enc, enclen, out, err);
	return vc_sha256(enc, enclen, out, err);
}

int vc_event_seal(struct vc_event *ev, const uint8_t prev_hash[VC_SHA256_LEN],
		  const void *key, size_t keylen, struct vc_error *err)
{
	uint8_t h[VC_SHA256_LEN];
	int r;

	memcpy(ev->prev_hash, prev_hash, VC_SHA256_LEN);
	r = vc_event_hash(ev, key, keylen, h, err);
	if (r < 0)
		return r;
	memcpy(ev->hash, h, VC_SHA256_LEN);
	return 0;
}

static bool seq_appears_later(const struct vc_event *evs, size_t from,
			      size_t n, int64_t seq)
{
	for (size_t j = from; j < n; j++)
		if (evs[j].seq == seq)
			return true;
	return false;
}

int vc_event_verify_chain(const struct vc_event *evs, size_t n,
			  const uint8_t genesis[VC_SHA256_LEN],
			  const void *key, size_t keylen, size_t *bad_index,
			  struct vc_error *err)
{
	uint8_t h[VC_SHA256_LEN];
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct vc_event *ev = &evs[i];

		if (bad_index)
			*bad_index = i;
		r = vc_event_hash(ev, key, keylen, h, err);
		if (r < 0)
			return r;
		if (!vc_ct_equal(h, ev->hash, VC_SHA256_LEN))
			return vc_error_set(err, -EBADMSG,
					    "event %" PRId64 ": hash does not match its contents (edited?)",
					    ev->seq);
		if (i == 0) {
			if (!vc_ct_equal(ev->prev_hash, genesis, VC_SHA256_LEN))
				return vc_error_set(err, -EBADMSG,
						    "event %" PRId64 ": does not chain to the genesis hash (earlier events deleted, or another log?)",
						    ev->seq);
			continue;
		}

		const struct vc_event *pv = &evs[i - 1];
		int64_t want;

		if (__builtin_add_overflow(pv->seq, 1, &want) || ev->seq < want ||
		    (ev->seq > want && seq_appears_later(evs, i + 1, n, want)))
			return vc_error_set(err, -EBADMSG,
					    "event %" PRId64 ": out of order after %" PRId64 " (reordered?)",
					    ev->seq, pv->seq);
		if (ev->seq > want)
			return vc_error_set(err, -EBADMSG,
					    "event %" PRId64 ": sequence gap after %" PRId64 " (deleted?)",
					    ev->seq, pv->seq);
		if (!vc_ct_equal(ev->prev_hash, pv->hash, VC_SHA256_LEN))
			return vc_error_set(err, -EBADMSG,
					    "event %" PRId64 ": does not chain to event %" PRId64 " (deleted or reordered?)",
					    ev->seq, pv->seq);
	}
	vc_error_clear(err);
	return 0;
}

/* A growable NUL-terminated string; a failed append poisons it so that
 * callers check once at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	size_t need;

	if (b->failed)
		return;
	if (__builtin_add_overflow(b->len, n + 1, &need)) {
		b->failed = true;
		return;
	}
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < need) {
			if (__builtin_mul_overflow(cap, 2, &cap)) {
				b->failed = true;
				return;
			}
		}
		np = realloc(b->p, cap);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int sb_finish(struct sbuf *b, char **out)
{
	if (b->failed) {
		free(b->p);
		return -ENOMEM;
	}
	*out = b->p;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if the bytes there are not
 * one. */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
		unsigned char hi = c == 0xed ? 0x9f : 0xbf;

		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;

		if (s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

static void json_string(struct sbuf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");

	sb_add(b, "\"", 1);
	while (*s) {
		unsigned char c = *s;
		char esc[8];
		size_t n;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sb_add(b, esc, 2);
			s++;
			continue;
		}
		if (c < 0x20) {
			switch (c) {
			case '\b': sb_add(b, "\\b", 2); break;
			case '\f': sb_add(b, "\\f", 2); break;
			case '\n': sb_add(b, "\\n", 2); break;
			case '\r': sb_add(b, "\\r", 2); break;
			case '\t': sb_add(b, "\\t", 2); break;
			default:
				snprintf(esc, sizeof esc, "\\u%04x", c);
				sb_add(b, esc, 6);
				break;
			}
			s++;
			continue;
		}
		/* The NUL terminator fails every continuation-byte test, so
		 * utf8_seq_len never reads past it. */
		n = utf8_seq_len(s);
		if (n == 0) {
			sb_add(b, "\\ufffd", 6);
			s++;
			continue;
		}
		sb_add(b, (const char *)s, n);
		s += n;
	}
	sb_add(b, "\"", 1);
}

static void hex_field(struct sbuf *b, const uint8_t h[VC_SHA256_LEN])
{
	char hex[2 * VC_SHA256_LEN + 1];

	vc_hex_encode(h, VC_SHA256_LEN, hex);
	sb_add(b, hex, 2 * VC_SHA256_LEN);
}

int vc_event_to_json_line(const struct vc_event *ev, char **out)
{
	struct sbuf b = { 0 };
	const char *s[NSTRINGS];
	char num[64];

	event_strings(ev, s);
	snprintf(num, sizeof num, "{\"seq\":%" PRId64 ",\"time_us\":%" PRId64,
		 ev->seq, ev->time_us);
	sb_str(&b, num);
	for (size_t i = 0; i < NSTRINGS; i++) {
		sb_str(&b, ",\"");
		sb_str(&b, field_names[i]);
		sb_str(&b, "\":");
		json_string(&b, s[i]);
	}
	sb_str(&b, ",\"prev_hash\":\"");
	hex_field(&b, ev->prev_hash);
	sb_str(&b, "\",\"hash\":\"");
	hex_field(&b, ev->hash);
	sb_str(&b, "\"}\n");
	return sb_finish(&b, out);
}

const char *vc_event_csv_header(void)
{
	return "seq,time_us,user,operation,object,provider,key_id,result,"
	       "message,prev_hash,hash\r\n";
}

static void csv_field(struct sbuf *b, const char *str)
{
	const char *s = str ? str : "";

	if (!strpbrk(s, "\",\r\n")) {
		sb_str(b, s);
		return;
	}
	sb_add(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"')
			sb_add(b, "\"\"", 2);
		else
			sb_add(b, s, 1);
	}
	sb_add(b, "\"", 1);
}

int vc_event_to_csv_line(const struct vc_event *ev, char **out)
{
	struct sbuf b = { 0 };
	const char *s[NSTRINGS];
	char num[64];

	event_strings(ev, s);
	snprintf(num, sizeof num, "%" PRId64 ",%" PRId64, ev->seq, ev->time_us);
	sb_str(&b, num);
	for (size_t i = 0; i < NSTRINGS; i++) {
		sb_add(&b, ",", 1);
		csv_field(&b, s[i]);
	}
	sb_add(&b, ",", 1);
	hex_field(&b, ev->prev_hash);
	sb_add(&b, ",", 1);
	hex_field(&b, ev->hash);
	sb_str(&b, "\r\n");
	return sb_finish(&b, out);
}
