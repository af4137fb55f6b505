/* SPDX-License-Identifier: Apache-2.0 */
/* A KMIP 1.x client over mutual TLS: one persistent connection to one key
 * server, protocol version negotiation, and the operations vmcrypt needs.
 * Errors name the server and the KMIP result reason, e.g.
 * "key server 127.0.0.1:5696: Item Not Found: Could not locate object: 42". */
#ifndef VC_KMIP_H
#define VC_KMIP_H

#include <stdbool.h>

#include "vc_error.h"
#include "vc_secmem.h"

/* How to reach and trust one server. Strings are borrowed for the call
 * that takes them (vc_kmip_connect copies what it keeps). */
struct vc_kmip_tls {
	const char *ca_file;        /* PEM CA bundle the server must chain to */
	const char *pinned_sha256;  /* or: the server certificate's SHA-256 (hex, ':' allowed) */
	const char *cert_file;      /* client certificate (PEM) */
	const char *key_file;       /* its private key (PEM, mode 0600) */
	const char *server_name;    /* name or IP to check; NULL: the host itself */
	int timeout_ms;             /* connect, handshake and each response; 0: 10000 */
};

struct vc_kmip_conn;

/* Connect, handshake (TLS 1.2 or newer, client certificate), verify the
 * server (CA + name/IP, or pin) and negotiate the protocol version with
 * Discover Versions (1.4 down to 1.0). */
VC_MUST_CHECK int vc_kmip_connect(const char *host, uint16_t port,
				  const struct vc_kmip_tls *tls,
				  struct vc_kmip_conn **out, struct vc_error *err);
void vc_kmip_close(struct vc_kmip_conn *c);

/* The negotiated protocol version. */
void vc_kmip_version(const struct vc_kmip_conn *c, int *major, int *minor);

/* Versions the server supports, newest first (at most max entries). */
VC_MUST_CHECK int vc_kmip_discover_versions(struct vc_kmip_conn *c, int (*versions)[2],
					    size_t max, size_t *n,
					    struct vc_error *err);

/* Create an AES-256 symmetric key usable for Encrypt|Decrypt|WrapKey|
 * UnwrapKey, named name (may be NULL). *uid is malloc'ed. */
VC_MUST_CHECK int vc_kmip_create_aes256(struct vc_kmip_conn *c, const char *name,
					char **uid, struct vc_error *err);

/* Create an AES-256 key and get its material in one round trip (a batch
 * of Create and Get with the ID Placeholder, KMIP 1.4 section 7.2). */
VC_MUST_CHECK int vc_kmip_create_get_aes256(struct vc_kmip_conn *c, const char *name,
					    char **uid, struct vc_secret **key,
					    struct vc_error *err);

/* Register existing AES key bytes (16, 24 or 32) as a symmetric key. */
VC_MUST_CHECK int vc_kmip_register_aes(struct vc_kmip_conn *c, const struct vc_secret *key,
				       const char *name, char **uid,
				       struct vc_error *err);

/* The raw key material of a symmetric key, in locked memory. */
VC_MUST_CHECK int vc_kmip_get(struct vc_kmip_conn *c, const char *uid,
			      struct vc_secret **key, struct vc_error *err);

VC_MUST_CHECK int vc_kmip_activate(struct vc_kmip_conn *c, const char *uid,
				   struct vc_error *err);

/* Revoke with reason Cessation Of Operation (or Key Compromise when
 * compromised), then objects can be destroyed. */
VC_MUST_CHECK int vc_kmip_revoke(struct vc_kmip_conn *c, const char *uid,
				 bool compromised, struct vc_error *err);
VC_MUST_CHECK int vc_kmip_destroy(struct vc_kmip_conn *c, const char *uid,
				  struct vc_error *err);

/* Unique identifiers of objects with this name (and, if algorithm is
 * non-zero, that Cryptographic Algorithm), at most max. Each uids[i] is
 * malloc'ed. */
VC_MUST_CHECK int vc_kmip_locate(struct vc_kmip_conn *c, const char *name,
				 uint32_t algorithm, char **uids, size_t max,
				 size_t *n, struct vc_error *err);

/* Attributes of an object as "Name: value" lines (malloc'ed text), for
 * diagnostics; and the few vmcrypt reads. */
struct vc_kmip_attrs {
	char name[256];
	uint32_t state;      /* 1 pre-active, 2 active, 3 deactivated, ... */
	uint32_t algorithm;  /* 3 = AES */
	int32_t length;      /* bits */
	char *text;          /* every attribute, one per line */
};
VC_MUST_CHECK int vc_kmip_get_attributes(struct vc_kmip_conn *c, const char *uid,
					 struct vc_kmip_attrs *out,
					 struct vc_error *err);
void vc_kmip_attrs_clear(struct vc_kmip_attrs *a);

/* Add or modify a custom text attribute ("x-..." names). */
VC_MUST_CHECK int vc_kmip_add_attribute(struct vc_kmip_conn *c, const char *uid,
					const char *attr, const char *value,
					struct vc_error *err);
VC_MUST_CHECK int vc_kmip_modify_attribute(struct vc_kmip_conn *c, const char *uid,
					   const char *attr, const char *value,
					   struct vc_error *err);

/* Query: vendor identification and supported operations. */
VC_MUST_CHECK int vc_kmip_query(struct vc_kmip_conn *c, char **vendor,
				uint32_t *ops, size_t max_ops, size_t *n_ops,
				struct vc_error *err);

#endif
