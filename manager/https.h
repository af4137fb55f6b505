/* SPDX-License-Identifier: Apache-2.0 */
/* What vmcryptd and vmcrypt-hostd share to serve HTTPS with libevent. */
#ifndef VC_HTTPS_H
#define VC_HTTPS_H

struct bufferevent;
struct event_base;

/* evhttp's bufferevent callback: every connection accepted over TLS with
 * the SSL_CTX in arg. Aborts rather than return NULL, which would make
 * libevent serve plain text. */
struct bufferevent *https_bev(struct event_base *base, void *arg);

#endif
