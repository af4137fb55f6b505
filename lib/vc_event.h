/* SPDX-License-Identifier: Apache-2.0 */
/* Tamper-evident event log records: hash chaining, chain verification and
 * JSON Lines / CSV export. Storage-independent: no SQL, no I/O. */
#ifndef VC_EVENT_H
#define VC_EVENT_H

#include "vc_crypto.h"
#include "vc_error.h"

/*
 * One event of the manager's log: every crypto and security operation
 * appends one (security invariant 3).
 *
 * Strings are borrowed (the struct never owns them) and may be NULL, which
 * means the same as "": both encode as length 0, so a row read back from a
 * database that turned NULL into "" (or the reverse) still verifies.
 * Strings are NUL-terminated and must be shorter than 4 GiB.
 *
 * Chaining: event i carries prev_hash = hash of event i-1 (the first event
 * carries a genesis value chosen by the log owner, e.g. 32 zero bytes or a
 * per-installation random value) and hash = H(encoding of event i).
 *
 * Canonical encoding (unambiguous: every variable field is length-prefixed,
 * integers have a fixed width, the field order is fixed):
 *   "vmcrypt-event-v1"          16 bytes, no terminator
 *   seq                         int64, 8 bytes big-endian (two's complement)
 *   time_us                     int64, 8 bytes big-endian (two's complement)
 *   user, operation, object, provider, key_id, result, message
 *                               each: uint32 big-endian length + bytes
 *   prev_hash                   32 bytes
 *
 * H is SHA-256 of the encoding when no key is given, or HMAC-SHA-256 with
 * a log key. Unkeyed, the chain detects editing, deleting and reordering
 * single rows, but someone who can write the whole database can recompute
 * every hash after an edit; keyed, they also need the log key.
 *
 * The chain alone cannot see events removed from the end of the log: a
 * caller that must detect truncation keeps the newest (seq, hash) somewhere
 * the database writer cannot change, and compares it with the last event.
 */
struct vc_event {
	int64_t seq;          /* consecutive: each event is the previous + 1 */
	int64_t time_us;      /* microseconds since the Unix epoch */
	const char *user;
	const char *operation;
	const char *object;
	const char *provider;
	const char *key_id;
	const char *result;
	const char *message;
	uint8_t prev_hash[VC_SHA256_LEN];
	uint8_t hash[VC_SHA256_LEN];
};

#define VC_EVENT_LABEL "vmcrypt-event-v1"

/* The canonical encoding above, in a new malloc'd buffer the caller frees.
 * -EOVERFLOW if a string is 4 GiB or longer, -ENOMEM. */
VC_MUST_CHECK int vc_event_encode(const struct vc_event *ev, uint8_t **out,
				  size_t *outlen, struct vc_error *err);

/* H(encoding of ev) as it is now (ev->prev_hash included; ev->hash is not
 * read). key == NULL (and keylen 0) selects SHA-256; otherwise HMAC-SHA-256
 * with keylen (> 0) bytes of key. -EINVAL for a key/keylen mismatch. */
VC_MUST_CHECK int vc_event_hash(const struct vc_event *ev, const void *key,
				size_t keylen, uint8_t out[VC_SHA256_LEN],
				struct vc_error *err);

/* Chain ev to its predecessor: copy prev_hash (the previous event's hash,
 * or the genesis value for the first event) into ev->prev_hash, then
 * compute ev->hash as vc_event_hash does. */
VC_MUST_CHECK int vc_event_seal(struct vc_event *ev,
				const uint8_t prev_hash[VC_SHA256_LEN],
				const void *key, size_t keylen,
				struct vc_error *err);

/*
 * Check n events given in log order (ascending seq) against genesis (the
 * prev_hash the first event must carry). key/keylen as for vc_event_hash;
 * verifying a keyed chain without its key (or the reverse) fails at the
 * first event. Each event is checked in this order, and the first failure
 * is reported:
 *   1. its hash matches its contents:
 *        "event 17: hash does not match its contents (edited?)"
 *   2. its seq is the previous seq + 1:
 *        "event 20: sequence gap after 18 (deleted?)"
 *        "event 20: out of order after 9 (reordered?)"   (the missing seq
 *            appears later, or seq does not increase)
 *   3. its prev_hash is the previous event's hash (or genesis):
 *        "event 18: does not chain to event 17 (deleted or reordered?)"
 *        "event 5: does not chain to the genesis hash (...)"
 * Returns 0 when all n events are good (n == 0 included), -EBADMSG with
 * the message in err and the array index of the bad event in *bad_index
 * (may be NULL), or another negative code if hashing itself failed.
 * Comparisons of hashes are constant-time.
 */
VC_MUST_CHECK int vc_event_verify_chain(const struct vc_event *evs, size_t n,
					const uint8_t genesis[VC_SHA256_LEN],
					const void *key, size_t keylen,
					size_t *bad_index,
					struct vc_error *err);

/*
 * One JSON object terminated by "\n" (JSON Lines), in a new malloc'd
 * NUL-terminated string the caller frees:
 *   {"seq":1,"time_us":2,"user":"..","operation":"..","object":"..",
 *    "provider":"..","key_id":"..","result":"..","message":"..",
 *    "prev_hash":"<64 hex>","hash":"<64 hex>"}
 * NULL strings are written as "". '"', '\\' and control characters are
 * escaped (\" \\ \b \f \n \r \t, others \u00XX). JSON text must be UTF-8:
 * a byte that is not part of valid UTF-8 is written as U+FFFD, so such an
 * export is lossy (the hash still covers the original bytes).
 * Returns 0, or -ENOMEM.
 */
VC_MUST_CHECK int vc_event_to_json_line(const struct vc_event *ev, char **out);

/* The CSV header line matching vc_event_to_csv_line, with its CRLF. */
const char *vc_event_csv_header(void);

/*
 * One RFC 4180 record terminated by CRLF, same fields and order as the
 * JSON line, in a new malloc'd NUL-terminated string the caller frees.
 * A field containing '"', ',', CR or LF is enclosed in double quotes with
 * each '"' doubled; other bytes are copied as they are. Spreadsheet
 * programs may interpret fields starting with '=', '+', '-' or '@' as
 * formulas; this export does not alter them, so it stays exact.
 * Returns 0, or -ENOMEM.
 */
VC_MUST_CHECK int vc_event_to_csv_line(const struct vc_event *ev, char **out);

#endif
