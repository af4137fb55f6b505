/* SPDX-License-Identifier: Apache-2.0 */
/* Error structs with whole messages. */
#include "vc_error.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int normalise(int code)
{
	if (code > 0)
		code = -code;
	return code == 0 ? -EIO : code;
}

static VC_PRINTF(3, 0) void vset(struct vc_error *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

static void append(struct vc_error *err, const char *s)
{
	size_t len = strlen(err->msg);

	if (len + 2 < sizeof err->msg)
		snprintf(err->msg + len, sizeof err->msg - len, ": %s", s);
}

int vc_error_set(struct vc_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	code = normalise(code);
	if (err) {
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
	}
	return code;
}

int vc_error_errno(struct vc_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int code = normalise(errnum);

	if (err) {
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
		append(err, strerror(-code));
	}
	return code;
}

int vc_error_ssl(struct vc_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	unsigned long e = ERR_peek_last_error();

	code = normalise(code);
	if (err) {
		va_start(ap, fmt);
		vset(err, code, fmt, ap);
		va_end(ap);
		if (e != 0) {
			const char *reason = ERR_reason_error_string(e);
			char buf[64];

			if (!reason) {
				snprintf(buf, sizeof buf, "OpenSSL error %lx", e);
				reason = buf;
			}
			append(err, reason);
		}
	}
	ERR_clear_error();
	return code;
}

void vc_error_prefix(struct vc_error *err, const char *fmt, ...)
{
	char joined[2 * VC_ERROR_MSG_MAX + 2];
	va_list ap;
	int n;

	if (!err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(joined, VC_ERROR_MSG_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n >= VC_ERROR_MSG_MAX)
		n = VC_ERROR_MSG_MAX - 1;
	memcpy(joined + n, ": ", 2);
	memcpy(joined + n + 2, err->msg, sizeof err->msg);
	joined[sizeof joined - 1] = '\0';
	memcpy(err->msg, joined, sizeof err->msg - 1);
	err->msg[sizeof err->msg - 1] = '\0';
}

void vc_error_clear(struct vc_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

const char *vc_error_msg(const struct vc_error *err)
{
	if (!err || err->msg[0] == '\0')
		return "unknown error";
	return err->msg;
}
