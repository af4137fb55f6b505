/* SPDX-License-Identifier: Apache-2.0 */
/* Error reporting: functions return 0 or a negative errno-style code and
 * fill an optional struct vc_error with one whole, human-readable message. */
#ifndef VC_ERROR_H
#define VC_ERROR_H

#include "vc_common.h"

#define VC_ERROR_MSG_MAX 512

struct vc_error {
	int code;                    /* negative errno-style code, 0 = none */
	char msg[VC_ERROR_MSG_MAX];  /* one line, no trailing newline */
};

/* Record an error (err may be NULL) and return -|code| so callers can
 * write `return vc_error_set(err, -EINVAL, "...")`. An existing message
 * is replaced. */
int vc_error_set(struct vc_error *err, int code, const char *fmt, ...)
	VC_PRINTF(3, 4);

/* As vc_error_set, then append ": <strerror(errnum)>". */
int vc_error_errno(struct vc_error *err, int errnum, const char *fmt, ...)
	VC_PRINTF(3, 4);

/* As vc_error_set, then append the reason of the newest OpenSSL error (if
 * any) and clear OpenSSL's error queue. */
int vc_error_ssl(struct vc_error *err, int code, const char *fmt, ...)
	VC_PRINTF(3, 4);

/* Prefix an existing message: "<prefix>: <old message>". */
void vc_error_prefix(struct vc_error *err, const char *fmt, ...) VC_PRINTF(2, 3);

void vc_error_clear(struct vc_error *err);

/* The message, or "unknown error" when none was set. Never NULL. */
const char *vc_error_msg(const struct vc_error *err);

#endif
