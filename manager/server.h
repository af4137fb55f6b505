/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd's HTTPS listener. */
#ifndef VC_MGR_SERVER_H
#define VC_MGR_SERVER_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "mgr.h"

struct evhttp;

/* Listen on m->cfg.listen with TLS context ctx; the address really bound
 * (the port chosen when 0 was asked) into bound. */
VC_MUST_CHECK int server_start(struct mgr *m, SSL_CTX *ctx, struct evhttp **out,
			       char *bound, size_t boundlen, struct vc_error *err);

#endif
