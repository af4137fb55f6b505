/* SPDX-License-Identifier: Apache-2.0 */
/* The I/O filter's control channel (see vc_ctl.h): its two line formats
 * and the agent's side of one exchange. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vc_ctl.h"
#include "vc_encode.h"
#include "vc_secmem.h"

static const char *const state_names[] = {
	[VC_CTL_IDLE] = "idle",
	[VC_CTL_RUNNING] = "running",
	[VC_CTL_DONE] = "done",
	[VC_CTL_FAILED] = "failed",
};

const char *vc_ctl_state_name(enum vc_ctl_state s)
{
	return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "?";
}

/* The line without its one trailing "\n"; a line may hold nothing else. */
static bool line_body(const char *line, size_t *len)
{
	if (*len > 0 && line[*len - 1] == '\n')
		(*len)--;
	return memchr(line, '\n', *len) == NULL && memchr(line, '\0', *len) == NULL;
}

#define SHALLOW "rekey-shallow "

static bool provider_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* The next space-separated word of [*p, end) into out (cap bytes with its
 * NUL): 1..cap-1 bytes, each accepted by ok (NULL: printable, no space). */
static int take_word(const char **p, const char *end, char *out, size_t cap, bool (*ok)(char))
{
	const char *q = *p;
	size_t n;

	while (q < end && *q != ' ')
		q++;
	n = (size_t)(q - *p);
	if (n == 0 || n >= cap)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = (*p)[i];

		if (ok ? !ok(c) : (c <= 0x20 || c >= 0x7f))
			return -EINVAL;
	}
	memcpy(out, *p, n);
	out[n] = '\0';
	*p = q < end ? q + 1 : q;
	return q < end ? 1 : 0;      /* 1: a space followed */
}

int vc_ctl_parse_shallow(const char *line, size_t len, struct vc_ctl_shallow *out)
{
	const char *p = line, *end;
	size_t klen = 0;
	int r;

	memset(out, 0, sizeof *out);
	if (!line_body(line, &len) || len < strlen(SHALLOW) || memcmp(line, SHALLOW, strlen(SHALLOW)))
		return -EINVAL;
	end = line + len;
	p += strlen(SHALLOW);
	r = take_word(&p, end, out->provider, sizeof out->provider, provider_char);
	if (r == 1)
		r = take_word(&p, end, out->key_id, sizeof out->key_id, NULL);
	if (r == 1 && end - p == 2 * VC_CTL_KEK_LEN &&
	    vc_hex_decode(p, 2 * VC_CTL_KEK_LEN, out->kek, sizeof out->kek, &klen) == 0 &&
	    klen == VC_CTL_KEK_LEN)
		return 0;
	vc_wipe(out, sizeof *out);
	return -EINVAL;
}

size_t vc_ctl_format_shallow(const struct vc_ctl_shallow *sh, char *buf)
{
	char hex[2 * VC_CTL_KEK_LEN + 1];
	struct vc_ctl_shallow check;
	int n;

	vc_hex_encode(sh->kek, sizeof sh->kek, hex);
	n = snprintf(buf, VC_CTL_LINE_MAX, SHALLOW "%.63s %.127s %s\n", sh->provider, sh->key_id,
		     hex);
	vc_wipe(hex, sizeof hex);
	/* Only what the other end will accept. */
	if (n <= 0 || n >= VC_CTL_LINE_MAX || vc_ctl_parse_shallow(buf, (size_t)n, &check) < 0 ||
	    strcmp(check.provider, sh->provider) || strcmp(check.key_id, sh->key_id)) {
		vc_wipe(buf, VC_CTL_LINE_MAX);
		vc_wipe(&check, sizeof check);
		return 0;
	}
	vc_wipe(&check, sizeof check);
	return (size_t)n;
}

int vc_ctl_parse_cmd(const char *line, size_t len, enum vc_ctl_cmd *cmd)
{
	struct vc_ctl_shallow sh;
	size_t body = len;

	if (!line_body(line, &body))
		return -EINVAL;
	if (body == 6 && !memcmp(line, "status", 6)) {
		*cmd = VC_CTL_STATUS;
	} else if (body == 10 && !memcmp(line, "rekey-deep", 10)) {
		*cmd = VC_CTL_REKEY_DEEP;
	} else if (vc_ctl_parse_shallow(line, len, &sh) == 0) {
		vc_wipe(&sh, sizeof sh);
		*cmd = VC_CTL_REKEY_SHALLOW;
	} else {
		return -EINVAL;
	}
	return 0;
}

size_t vc_ctl_format_status(const struct vc_ctl_status *st, char *buf)
{
	int n = snprintf(buf, VC_CTL_LINE_MAX, "ok state=%s progress=%" PRIu64 " total=%" PRIu64
			 " generation=%" PRIu64, vc_ctl_state_name(st->state), st->progress,
			 st->total, st->generation);
	size_t len = n > 0 ? (size_t)n : 0;

	if (st->state == VC_CTL_FAILED) {
		const char *e = st->error;

		len += (size_t)snprintf(buf + len, VC_CTL_LINE_MAX - len, " error=");
		for (size_t i = 0; i < sizeof st->error && e[i] && len < VC_CTL_LINE_MAX - 2; i++)
			buf[len++] = e[i] >= 0x20 && e[i] < 0x7f ? e[i] : '?';
	}
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

/* "name=" followed by a decimal number and a space or the end. */
static int take_u64(const char **p, const char *end, const char *name, uint64_t *out)
{
	size_t nl = strlen(name);
	uint64_t v = 0;
	const char *q;

	if ((size_t)(end - *p) <= nl || memcmp(*p, name, nl))
		return -EPROTO;
	q = *p + nl;
	if (q == end || *q < '0' || *q > '9')
		return -EPROTO;
	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		if (v > (UINT64_MAX - (uint64_t)(*q - '0')) / 10)
			return -EPROTO;
		v = v * 10 + (uint64_t)(*q - '0');
	}
	/* One space before the next field; none after the last. */
	if (q < end && (*q != ' ' || q + 1 == end))
		return -EPROTO;
	*out = v;
	*p = q < end ? q + 1 : q;
	return 0;
}

int vc_ctl_parse_status(const char *line, size_t len, struct vc_ctl_status *st,
			struct vc_error *err)
{
	const char *p = line, *end;
	size_t i;

	memset(st, 0, sizeof *st);
	if (!line_body(line, &len) || len >= VC_CTL_LINE_MAX)
		return vc_error_set(err, -EPROTO, "disk server: malformed reply");
	end = line + len;
	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
			return vc_error_set(err, -EPROTO, "disk server: malformed reply");
	if (len >= 6 && !memcmp(p, "error ", 6))
		return vc_error_set(err, -EPROTO, "disk server: %.*s", (int)(len - 6), p + 6);
	if (len < 9 || memcmp(p, "ok state=", 9))
		return vc_error_set(err, -EPROTO, "disk server: malformed reply");
	p += 9;
	for (i = 0; i < sizeof state_names / sizeof state_names[0]; i++) {
		size_t n = strlen(state_names[i]);

		if ((size_t)(end - p) > n && !memcmp(p, state_names[i], n) && p[n] == ' ') {
			st->state = (enum vc_ctl_state)i;
			p += n + 1;
			break;
		}
	}
	if (i == sizeof state_names / sizeof state_names[0] ||
	    take_u64(&p, end, "progress=", &st->progress) < 0 ||
	    take_u64(&p, end, "total=", &st->total) < 0 ||
	    take_u64(&p, end, "generation=", &st->generation) < 0 || st->progress > st->total)
		return vc_error_set(err, -EPROTO, "disk server: malformed reply");
	if (st->state == VC_CTL_FAILED) {
		if ((size_t)(end - p) < 6 || memcmp(p, "error=", 6))
			return vc_error_set(err, -EPROTO, "disk server: malformed reply");
		p += 6;
		snprintf(st->error, sizeof st->error, "%.*s", (int)(end - p), p);
	} else if (p != end) {
		return vc_error_set(err, -EPROTO, "disk server: malformed reply");
	}
	return 0;
}

static int ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline->tv_sec - now.tv_sec) * 1000LL + (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

static int exchange(const char *path, const char *line, int timeout_ms,
		    struct vc_ctl_status *st, struct vc_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[VC_CTL_LINE_MAX + 1];
	struct timespec deadline;
	struct timeval tv;
	size_t got = 0;
	int fd, ret = 0;

	if (strlen(path) >= sizeof sa.sun_path)
		return vc_error_set(err, -ENAMETOOLONG, "%s: socket path too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vc_error_errno(err, errno, "socket");
	/* A Unix connect blocks while the listener's backlog is full (a hung
	 * server): bound it by the same deadline. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_usec = 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
		ret = vc_error_errno(err, errno, "setsockopt");
	if (ret == 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		ret = errno == EAGAIN || errno == EINPROGRESS
			? vc_error_set(err, -ETIMEDOUT, "disk server control %s: no answer", path)
			: vc_error_errno(err, errno, "disk server control %s", path);
	if (ret == 0 && send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line))
		ret = vc_error_errno(err, errno, "disk server control %s: send", path);
	while (ret == 0 && (got == 0 || buf[got - 1] != '\n')) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int pr = poll(&pfd, 1, ms_left(&deadline));

		if (pr == 0) {
			ret = vc_error_set(err, -ETIMEDOUT, "disk server control %s: no reply", path);
			break;
		}
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			ret = vc_error_errno(err, errno, "disk server control %s: poll", path);
			break;
		}
		n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = vc_error_set(err, -EPROTO, "disk server control %s: connection closed",
					   path);
			break;
		}
		got += (size_t)n;
		if (got == sizeof buf - 1 && buf[got - 1] != '\n')
			ret = vc_error_set(err, -EPROTO, "disk server: reply too long");
	}
	close(fd);
	if (ret == 0)
		ret = vc_ctl_parse_status(buf, got, st, err);
	return ret;
}

int vc_ctl_request(const char *path, enum vc_ctl_cmd cmd, int timeout_ms,
		   struct vc_ctl_status *st, struct vc_error *err)
{
	if (cmd == VC_CTL_REKEY_SHALLOW)
		return vc_error_set(err, -EINVAL, "a shallow rekey needs its key: vc_ctl_rekey_shallow");
	return exchange(path, cmd == VC_CTL_REKEY_DEEP ? "rekey-deep\n" : "status\n", timeout_ms,
			st, err);
}

int vc_ctl_rekey_shallow(const char *path, const struct vc_ctl_shallow *sh, int timeout_ms,
			 struct vc_ctl_status *st, struct vc_error *err)
{
	char line[VC_CTL_LINE_MAX];
	int ret;

	if (vc_ctl_format_shallow(sh, line) == 0)
		return vc_error_set(err, -EINVAL, "bad provider name or key id for a shallow rekey");
	ret = exchange(path, line, timeout_ms, st, err);
	vc_wipe(line, sizeof line);
	return ret;
}
