/* SPDX-License-Identifier: Apache-2.0 */
/* HTTPS connections for evhttp servers (vmcryptd, vmcrypt-hostd). */
#include <stdlib.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#include "https.h"
#include "vc_log.h"

struct bufferevent *https_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);
	struct bufferevent *bev;

	/* Returning NULL would make libevent fall back to plain text: a
	 * server that cannot set up TLS must not serve at all. */
	if (!ssl) {
		vc_log(VC_LOG_ERROR, "cannot allocate a TLS session; stopping");
		abort();
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		vc_log(VC_LOG_ERROR, "cannot allocate a TLS connection; stopping");
		abort();
	}
	return bev;
}
