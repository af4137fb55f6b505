/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd's TLS certificate and server context. */
#ifndef VC_MGR_TLS_H
#define VC_MGR_TLS_H

#include <openssl/ssl.h>

#include "vc_error.h"

/* "AA:BB:..." of a SHA-256, NUL included. */
#define TLS_FP_LEN (32 * 3)

/* A new EC P-256 key (0600) and a self-signed certificate valid 825 days
 * for localhost, 127.0.0.1, ::1 and host. Neither file may exist. */
VC_MUST_CHECK int tls_make_self_signed(const char *cert_path, const char *key_path,
				       const char *host, struct vc_error *err);

/* A server context (TLS 1.2+) with that certificate and key, and the
 * certificate's SHA-256 fingerprint. The key file must not be accessible
 * by group or others. */
VC_MUST_CHECK int tls_server_ctx(const char *cert_path, const char *key_path, SSL_CTX **out,
				 char fingerprint[TLS_FP_LEN], struct vc_error *err);

#endif
