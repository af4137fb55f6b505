/* SPDX-License-Identifier: Apache-2.0 */
/* stderr logger. */
#include "vc_log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *log_prog = "vmcrypt";
static enum vc_log_level log_level = VC_LOG_WARN;

void vc_log_init(const char *prog, enum vc_log_level level)
{
	if (prog)
		log_prog = prog;
	log_level = level;
}

void vc_log_set_level(enum vc_log_level level) { log_level = level; }

void vc_log(enum vc_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One fprintf per line so concurrent threads do not interleave. */
	fprintf(stderr, "%s: %s: %s\n", log_prog, names[level], line);
}
