/* SPDX-License-Identifier: Apache-2.0 */
/* Error lines, size parsing, key options and progress bars for the CLI. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "vc_wrap.h"

void cli_error(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One line, whatever the message holds. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "vmcrypt: %s\n", line);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	cli_error("%s (see 'vmcrypt %s --help')", line, cmd);
	return EXIT_USAGE;
}

int cli_fail(const struct vc_error *err)
{
	cli_error("%s", vc_error_msg(err));
	return EXIT_FAIL;
}

int cli_write_all(int fd, const void *buf, size_t len, const char *name,
		  struct vc_error *err)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: write failed", name);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },    { "B", 0 },    { "K", 10 },   { "KiB", 10 }, { "M", 20 },
		{ "MiB", 20 }, { "G", 30 },  { "GiB", 30 }, { "T", 40 },   { "TiB", 40 },
		{ "P", 50 },  { "PiB", 50 },
	};
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	for (size_t i = 0; i < VC_ARRAY_SIZE(units); i++) {
		if (strcasecmp(end, units[i].suffix) != 0)
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		*out = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

int cli_parse_int(const char *s, int *out)
{
	long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end || errno || v > INT_MAX)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

const char *cli_human_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t i = 0;

	while (v >= 1024.0 && i + 1 < VC_ARRAY_SIZE(names)) {
		v /= 1024.0;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, names[i]);
	return buf;
}

bool cli_key_given(const struct cli_key_opt *k)
{
	return k->file || k->fd >= 0;
}

int cli_key_load(const struct cli_key_opt *k, struct vc_secret **out,
		 struct vc_error *err)
{
	char what[64];

	if (k->file)
		return vc_secret_read_file(k->file, VC_KEK_LEN, out, err);
	snprintf(what, sizeof what, "%s-fd %d", k->name, k->fd);
	return vc_secret_read_fd(k->fd, VC_KEK_LEN, what, out, err);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* mode: 1 = forced on, 0 = forced off, -1 = on when stderr is a terminal. */
void cli_progress_init(struct cli_progress *p, int mode, const char *label,
		       uint64_t total)
{
	p->enabled = mode > 0 || (mode < 0 && isatty(STDERR_FILENO));
	p->label = label;
	p->total = total;
	p->percent_only = false;
	p->start = now();
	p->last = 0;
}

static void draw(struct cli_progress *p, uint64_t done, double t)
{
	const int width = 30;
	double frac = p->total ? (double)done / (double)p->total : 1.0;
	int fill = (int)(frac * width);
	double rate = t > p->start ? (double)done / (t - p->start) : 0;
	char bar[64], a[32], b[32];

	if (frac > 1.0)
		frac = 1.0;
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	if (p->percent_only) {
		fprintf(stderr, "\r%s [%s] %3d%% ", p->label, bar, (int)(frac * 100));
		return;
	}
	fprintf(stderr, "\r%s [%s] %3d%% %s/%s %s/s ", p->label, bar, (int)(frac * 100),
		cli_human_size(done, a, sizeof a), cli_human_size(p->total, b, sizeof b),
		cli_human_size((uint64_t)rate, a, sizeof a));
}

void cli_progress_update(struct cli_progress *p, uint64_t done)
{
	double t;

	if (!p->enabled)
		return;
	t = now();
	if (t - p->last < 0.1)
		return;
	p->last = t;
	draw(p, done, t);
}

void cli_progress_done(struct cli_progress *p)
{
	if (!p->enabled)
		return;
	draw(p, p->total, now());
	fputc('\n', stderr);
}
