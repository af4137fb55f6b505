/* SPDX-License-Identifier: Apache-2.0 */
/* Daemon TLS identities: self-signed certificates, server contexts and
 * certificate fingerprints (no sockets here). */
#ifndef VC_TLSCERT_H
#define VC_TLSCERT_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "vc_error.h"

/* "AA:BB:..." of a SHA-256, NUL included. */
#define VC_TLS_FP_LEN (32 * 3)

/* A new EC P-256 key (0600) and a self-signed certificate valid 825 days
 * for localhost, 127.0.0.1, ::1 and host. Neither file may exist. */
VC_MUST_CHECK int vc_tls_make_self_signed(const char *cert_path, const char *key_path,
					  const char *cn, const char *host,
					  struct vc_error *err);

/* A server context (TLS 1.2+) with that certificate and key, and the
 * certificate's SHA-256 fingerprint. The key file must not be accessible
 * by group or others. */
VC_MUST_CHECK int vc_tls_server_ctx(const char *cert_path, const char *key_path, SSL_CTX **out,
				 char fingerprint[VC_TLS_FP_LEN], struct vc_error *err);

/* SHA-256 of a certificate's DER encoding (its thumbprint). */
VC_MUST_CHECK int vc_tls_fingerprint(X509 *x, uint8_t out[32]);

#endif
