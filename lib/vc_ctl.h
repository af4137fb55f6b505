/* SPDX-License-Identifier: Apache-2.0 */
/* The I/O filter's control channel: a Unix socket on which the host agent
 * asks a running disk server for its online rekey state, starts an online
 * deep rekey, and has it rewrap its data key under a new KEK (shallow
 * rekey: the one request that carries a key). One request line, one
 * reply line. The wire format is in docs/FORMAT.md, part 3. */
#ifndef VC_CTL_H
#define VC_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "vc_common.h"
#include "vc_error.h"

#define VC_CTL_LINE_MAX 512       /* request or reply, with its newline */

enum vc_ctl_cmd {
	VC_CTL_STATUS,            /* "status" */
	VC_CTL_REKEY_DEEP,        /* "rekey-deep": start one unless running */
	VC_CTL_REKEY_SHALLOW,     /* "rekey-shallow PROVIDER KEY-ID HEX-KEK" */
};

#define VC_CTL_KEK_LEN 32

/* The arguments of a shallow rekey. Holds a key: wipe it after use. */
struct vc_ctl_shallow {
	char provider[64];        /* 1..63 of [A-Za-z0-9._-] */
	char key_id[128];         /* 1..127 printable, no space */
	uint8_t kek[VC_CTL_KEK_LEN];
};

enum vc_ctl_state {
	VC_CTL_IDLE,              /* no rekey since the server started */
	VC_CTL_RUNNING,
	VC_CTL_DONE,              /* the last one completed */
	VC_CTL_FAILED,            /* the last one stopped with an error */
};

struct vc_ctl_status {
	enum vc_ctl_state state;
	uint64_t progress;        /* sectors re-encrypted by the rekey under way */
	uint64_t total;           /* sectors of the disk */
	uint64_t generation;      /* of the data key in use (slot 0) */
	char error[256];          /* FAILED: why (printable ASCII) */
};

/* One request line (without or with its "\n"): -EINVAL when it is not a
 * known, well-formed command. */
VC_MUST_CHECK int vc_ctl_parse_cmd(const char *line, size_t len, enum vc_ctl_cmd *cmd);

/* The reply line for st, "\n" included, into buf (VC_CTL_LINE_MAX bytes);
 * error text is cut and non-printable bytes replaced. Returns its length. */
size_t vc_ctl_format_status(const struct vc_ctl_status *st, char *buf);

/* A reply line: "ok state=... progress=N total=N generation=N[ error=TEXT]"
 * or "error TEXT" (which becomes -EPROTO with TEXT in err). */
VC_MUST_CHECK int vc_ctl_parse_status(const char *line, size_t len, struct vc_ctl_status *st,
				      struct vc_error *err);

const char *vc_ctl_state_name(enum vc_ctl_state s);

/* A "rekey-shallow" request line: its arguments into out (-EINVAL, and
 * out wiped, unless well formed). */
VC_MUST_CHECK int vc_ctl_parse_shallow(const char *line, size_t len, struct vc_ctl_shallow *out);

/* The request line for sh, "\n" included, into buf (VC_CTL_LINE_MAX
 * bytes; it holds the key in hex: wipe it). Returns its length, or 0
 * when sh's fields are not valid. */
size_t vc_ctl_format_shallow(const struct vc_ctl_shallow *sh, char *buf);

/* Client: connect to the socket at path, send cmd, read and parse the
 * reply, all within timeout_ms. -ECONNREFUSED/-ENOENT when nobody listens. */
VC_MUST_CHECK int vc_ctl_request(const char *path, enum vc_ctl_cmd cmd, int timeout_ms,
				 struct vc_ctl_status *st, struct vc_error *err);

/* The same for a shallow rekey to sh's KEK (the request line wiped). */
VC_MUST_CHECK int vc_ctl_rekey_shallow(const char *path, const struct vc_ctl_shallow *sh,
				       int timeout_ms, struct vc_ctl_status *st,
				       struct vc_error *err);

#endif
