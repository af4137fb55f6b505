/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr with a program name and a level. Never log secrets. */
#ifndef VC_LOG_H
#define VC_LOG_H

#include "vc_common.h"

enum vc_log_level { VC_LOG_ERROR, VC_LOG_WARN, VC_LOG_INFO, VC_LOG_DEBUG };

/* prog is borrowed, not copied: pass a string that outlives the process. */
void vc_log_init(const char *prog, enum vc_log_level level);
void vc_log_set_level(enum vc_log_level level);
void vc_log(enum vc_log_level level, const char *fmt, ...) VC_PRINTF(2, 3);

#define vc_err(...) vc_log(VC_LOG_ERROR, __VA_ARGS__)
#define vc_warn(...) vc_log(VC_LOG_WARN, __VA_ARGS__)
#define vc_info(...) vc_log(VC_LOG_INFO, __VA_ARGS__)
#define vc_debug(...) vc_log(VC_LOG_DEBUG, __VA_ARGS__)

#endif
