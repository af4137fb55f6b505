/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz harness for the I/O filter's control-channel lines: requests and
 * replies as the peer sent them, and replies formatted from arbitrary
 * status structs; whatever parses must format and parse back the same. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "vc_ctl.h"

static long cmds, statuses, refused;

static bool printable(unsigned char c)
{
	return c >= 0x20 && c < 0x7f;
}

static bool status_equal(const struct vc_ctl_status *a, const struct vc_ctl_status *b)
{
	return a->state == b->state && a->progress == b->progress && a->total == b->total &&
	       a->generation == b->generation && strcmp(a->error, b->error) == 0;
}

/* A formatted reply: one line, its only "\n" at its end, printable,
 * within the buffer with its NUL. */
static void check_line(const char *buf, size_t len)
{
	FUZZ_CHECK(len >= 2 && len < VC_CTL_LINE_MAX, "formatted a line of %zu bytes", len);
	FUZZ_CHECK(strlen(buf) == len, "format returned %zu for a %zu-byte string", len,
		   strlen(buf));
	FUZZ_CHECK(buf[len - 1] == '\n', "formatted line does not end in a newline");
	for (size_t i = 0; i < len - 1; i++)
		FUZZ_CHECK(printable((unsigned char)buf[i]), "formatted byte %zu is 0x%02x", i,
			   (unsigned char)buf[i]);
}

/* st formats to a line that parses back to want, and that line formats
 * to itself again. */
static void check_format(const struct vc_ctl_status *st, const struct vc_ctl_status *want)
{
	char buf[VC_CTL_LINE_MAX], again[VC_CTL_LINE_MAX];
	struct vc_ctl_status back;
	struct vc_error err = { 0 };
	size_t len, len2;
	int r;

	len = vc_ctl_format_status(st, buf);
	check_line(buf, len);
	r = vc_ctl_parse_status(buf, len, &back, &err);
	FUZZ_CHECK(r == 0, "formatted line \"%.*s\" does not parse: %s", (int)len - 1, buf,
		   err.msg);
	FUZZ_CHECK(status_equal(&back, want), "\"%.*s\" parses to another status (%s %s)",
		   (int)len - 1, buf, vc_ctl_state_name(back.state), back.error);
	len2 = vc_ctl_format_status(&back, again);
	FUZZ_CHECK(len2 == len && memcmp(buf, again, len) == 0,
		   "\"%.*s\" formats again as \"%.*s\"", (int)len - 1, buf, (int)len2 - 1, again);
}

static void as_cmd(const uint8_t *data, size_t size)
{
	enum vc_ctl_cmd cmd = (enum vc_ctl_cmd)-1;
	size_t body = size && data[size - 1] == '\n' ? size - 1 : size;
	int r = vc_ctl_parse_cmd((const char *)data, size, &cmd);

	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL, "parse_cmd returned %d", r);
		return;
	}
	FUZZ_CHECK(r == 0, "parse_cmd returned %d", r);
	cmds++;
	/* The harness's own reading of the commands. */
	if (cmd == VC_CTL_STATUS) {
		FUZZ_CHECK(body == 6 && memcmp(data, "status", 6) == 0,
			   "parse_cmd took %zu bytes for \"status\"", size);
	} else if (cmd == VC_CTL_REKEY_SHALLOW) {
		struct vc_ctl_shallow sh, back;
		char line[VC_CTL_LINE_MAX];
		size_t n;

		FUZZ_CHECK(body > 14 && memcmp(data, "rekey-shallow ", 14) == 0,
			   "parse_cmd took %zu bytes as rekey-shallow", size);
		FUZZ_CHECK(vc_ctl_parse_shallow((const char *)data, size, &sh) == 0,
			   "parse_cmd and parse_shallow disagree");
		/* What the agent would send for it is read back the same. */
		n = vc_ctl_format_shallow(&sh, line);
		FUZZ_CHECK(n > 0 && n < VC_CTL_LINE_MAX, "an accepted request cannot be sent");
		FUZZ_CHECK(vc_ctl_parse_shallow(line, n, &back) == 0 &&
				   memcmp(&sh, &back, sizeof sh) == 0,
			   "rekey-shallow does not round-trip");
	} else {
		FUZZ_CHECK(cmd == VC_CTL_REKEY_DEEP && body == 10 &&
				   memcmp(data, "rekey-deep", 10) == 0,
			   "parse_cmd took %zu bytes as command %d", size, (int)cmd);
	}
}

static void as_reply(const uint8_t *data, size_t size)
{
	struct vc_ctl_status st;
	struct vc_error err = { 0 };
	const char *line = (const char *)data;
	int r = vc_ctl_parse_status(line, size, &st, &err);

	if (r < 0) {
		FUZZ_CHECK(r == -EPROTO, "parse_status returned %d", r);
		FUZZ_CHECK(err.code == r && err.msg[0] != '\0', "parse_status failed without a"
			   " message");
		FUZZ_CHECK(!strchr(err.msg, '\n'), "message of more than one line: %s", err.msg);
		for (const char *m = err.msg; *m; m++)
			FUZZ_CHECK(printable((unsigned char)*m), "message with byte 0x%02x",
				   (unsigned char)*m);
		refused++;
		return;
	}
	FUZZ_CHECK(r == 0, "parse_status returned %d", r);
	statuses++;
	FUZZ_CHECK(size >= 9 && memcmp(line, "ok state=", 9) == 0,
		   "parse_status accepted a line not starting \"ok state=\"");
	FUZZ_CHECK(st.state == VC_CTL_IDLE || st.state == VC_CTL_RUNNING ||
			   st.state == VC_CTL_DONE || st.state == VC_CTL_FAILED,
		   "parse_status gave state %d", (int)st.state);
	FUZZ_CHECK(st.progress <= st.total, "progress %llu beyond total %llu",
		   (unsigned long long)st.progress, (unsigned long long)st.total);
	FUZZ_CHECK(memchr(st.error, '\0', sizeof st.error) != NULL, "error text not terminated");
	FUZZ_CHECK(st.state == VC_CTL_FAILED || st.error[0] == '\0',
		   "state %s with an error text", vc_ctl_state_name(st.state));
	for (const char *e = st.error; *e; e++)
		FUZZ_CHECK(printable((unsigned char)*e), "error text with byte 0x%02x",
			   (unsigned char)*e);
	check_format(&st, &st);
}

/* The input as a status: a state byte, three numbers, the rest the error
 * text. Format must cope with any of it (bad bytes become '?'); what
 * parse refuses is only what no server may send. */
static void as_struct(const uint8_t *data, size_t size)
{
	struct vc_ctl_status st = { 0 }, want;
	uint64_t v[3] = { 0 };
	size_t n;

	if (size < 1 + sizeof v)
		return;
	st.state = (enum vc_ctl_state)(data[0] % 5); /* 4 is out of range */
	memcpy(v, data + 1, sizeof v);
	/* Small numbers too, or progress <= total would hardly ever hold. */
	if (data[0] & 0x80) {
		v[0] %= 1000;
		v[1] %= 1000;
	}
	st.progress = v[0];
	st.total = v[1];
	st.generation = v[2];
	n = size - 1 - sizeof v;
	if (n > sizeof st.error - 1)
		n = sizeof st.error - 1;
	memcpy(st.error, data + 1 + sizeof v, n);
	st.error[n] = '\0';

	want = st;
	if (st.state != VC_CTL_FAILED)
		memset(want.error, 0, sizeof want.error);
	for (char *e = want.error; *e; e++)
		if (!printable((unsigned char)*e))
			*e = '?';
	if (st.state <= VC_CTL_FAILED && st.progress <= st.total) {
		check_format(&st, &want);
	} else {
		char buf[VC_CTL_LINE_MAX];
		struct vc_ctl_status back;
		size_t len = vc_ctl_format_status(&st, buf);

		check_line(buf, len);
		FUZZ_CHECK(vc_ctl_parse_status(buf, len, &back, NULL) == -EPROTO,
			   "\"%.*s\" parsed, of a status no server has", (int)len - 1, buf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_cmd(data, size);
	as_reply(data, size);
	as_struct(data, size);
	return 0;
}

/* The seeds hold good and bad commands and replies: if none parses, the
 * format changed under them; if all do, the bad ones are not bad. */
int fuzz_replay_done(long inputs)
{
	if (cmds == 0 || statuses == 0 || refused == 0) {
		fprintf(stderr, "fuzz_ctl: of %ld inputs %ld parsed as commands, %ld as replies and"
			" %ld replies were refused: regenerate the seeds with"
			" build/fuzz/gen_corpus fuzz/corpus ctl\n",
			inputs, cmds, statuses, refused);
		return 1;
	}
	printf("fuzz_ctl: %ld commands, %ld replies round-tripped, %ld replies refused\n", cmds,
	       statuses, refused);
	return 0;
}
