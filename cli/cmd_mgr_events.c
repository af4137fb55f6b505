/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt events: list and export the manager's event log, and verify its
 * hash chain here, so that a tampered server cannot vouch for itself. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "mgr_client.h"
#include "vc_encode.h"
#include "vc_event.h"

#define EVENTS_FILE_MAX (1024ull << 20)

/* ---- list, export ---------------------------------------------------------- */

static int events_path(struct mgr *m, const struct margs *a, const char *format, char *path,
		       size_t len)
{
	static const struct {
		enum mgr_opt opt;
		const char *key;
	} filters[] = {
		{ O_FROM, "from" },     { O_TO, "to" },
		{ O_USER, "user" },     { O_OBJECT, "object" },
		{ O_OPERATION, "operation" },
	};
	int r = 0;

	snprintf(path, len, "/events");
	for (size_t i = 0; i < VC_ARRAY_SIZE(filters) && r == 0; i++)
		r = mgr_query(m, path, len, filters[i].key, mgr_opt(a, filters[i].opt));
	return r < 0 ? r : mgr_query(m, path, len, "format", format);
}

static int print_events(struct mgr *m, const json_t *j)
{
	char seq[24], when[32];
	struct mgr_table t;
	json_t *e;
	size_t i;

	mgr_table_init(&t, 9);
	mgr_table_row(&t, "SEQ", "TIME", "USER", "OPERATION", "OBJECT", "PROVIDER", "KEY ID",
		      "RESULT", "MESSAGE");
	json_array_foreach(json_object_get(j, "events"), i, e) {
		snprintf(seq, sizeof seq, "%lld", (long long)mgr_int(e, "seq"));
		mgr_table_row(&t, seq, mgr_time(mgr_int(e, "time_us") / 1000000, when, sizeof when),
			      mgr_str(e, "user"), mgr_str(e, "operation"), mgr_str(e, "object"),
			      mgr_str(e, "provider"), mgr_str(e, "key_id"), mgr_str(e, "result"),
			      mgr_str(e, "message"));
	}
	return mgr_table_print(m, &t);
}

static bool is_raw_format(const char *format)
{
	return format && (!strcmp(format, "jsonl") || !strcmp(format, "csv"));
}

static int events_list(struct mgr *m, const struct margs *a)
{
	const char *format = mgr_opt(a, O_FORMAT_LIST);
	char path[MGR_PATH_MAX];
	int r;

	if (is_raw_format(format)) {
		r = events_path(m, a, format, path, sizeof path);
		return r < 0 ? r : mgr_stream(m, path, STDOUT_FILENO, "stdout");
	}
	if (format && !strcmp(format, "json"))
		m->json = true;
	r = events_path(m, a, "json", path, sizeof path);
	return r < 0 ? r : mgr_show(m, path, print_events);
}

static const char *list_check(const struct margs *a)
{
	if (mgr_has(a, O_JSON) && is_raw_format(mgr_opt(a, O_FORMAT_LIST)))
		return "--json and --format jsonl|csv exclude each other";
	return NULL;
}

static int export_to_file(struct mgr *m, const char *path, const char *out)
{
	int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r;

	if (fd < 0)
		return vc_error_errno(&m->err, errno, "%s: cannot create the export file", out);
	r = mgr_stream(m, path, fd, out);
	if (r == 0 && fsync(fd) < 0)
		r = vc_error_errno(&m->err, errno, "%s: cannot sync", out);
	if (close(fd) < 0 && r == 0)
		r = vc_error_errno(&m->err, errno, "%s: cannot close", out);
	if (r < 0)
		unlink(out);
	return r;
}

static int events_export(struct mgr *m, const struct margs *a)
{
	const char *out = mgr_opt(a, O_OUT);
	char path[MGR_PATH_MAX];
	int r = events_path(m, a, mgr_opt(a, O_FORMAT_EXPORT), path, sizeof path);

	if (r < 0)
		return r;
	if (!out || !strcmp(out, "-"))
		return mgr_stream(m, path, STDOUT_FILENO, "stdout");
	/* Connect first: a refused session must not leave an empty file. */
	if ((r = mgr_connect(m)) < 0)
		return r;
	return export_to_file(m, path, out);
}

/* ---- verify ---------------------------------------------------------------- */

/* The parsed log: the events borrow their strings from the JSON values
 * kept in lines. */
struct chain {
	json_t *lines;
	struct vc_event *evs;
	size_t n, cap;
};

static int get_hash(struct mgr *m, const json_t *o, const char *key, uint8_t *out,
		    size_t lineno)
{
	const char *hex = mgr_str(o, key);
	size_t got = 0;

	if (strlen(hex) != 2 * VC_SHA256_LEN ||
	    vc_hex_decode(hex, 2 * VC_SHA256_LEN, out, VC_SHA256_LEN, &got) < 0)
		return mgr_error(m, EXIT_FAIL, "line %zu: %s must be 64 hex digits", lineno, key);
	return 0;
}

static int parse_event(struct mgr *m, const json_t *o, size_t lineno, struct vc_event *ev)
{
	static const char *const names[] = { "user",   "operation", "object", "provider",
					     "key_id", "result",    "message" };
	const char **fields[] = { &ev->user,   &ev->operation, &ev->object, &ev->provider,
				  &ev->key_id, &ev->result,    &ev->message };
	int r;

	memset(ev, 0, sizeof *ev);
	if (!json_is_integer(json_object_get(o, "seq")) ||
	    !json_is_integer(json_object_get(o, "time_us")))
		return mgr_error(m, EXIT_FAIL, "line %zu: seq and time_us must be integers", lineno);
	ev->seq = mgr_int(o, "seq");
	ev->time_us = mgr_int(o, "time_us");
	for (size_t i = 0; i < VC_ARRAY_SIZE(names); i++) {
		const char *s = json_string_value(json_object_get(o, names[i]));

		if (!s)
			return mgr_error(m, EXIT_FAIL, "line %zu: %s must be a string", lineno,
					 names[i]);
		*fields[i] = s;
	}
	if ((r = get_hash(m, o, "prev_hash", ev->prev_hash, lineno)) < 0)
		return r;
	return get_hash(m, o, "hash", ev->hash, lineno);
}

static int add_event(struct mgr *m, struct chain *c, const char *p, size_t n, size_t lineno)
{
	json_error_t jerr;
	json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	int r;

	if (!o)
		return mgr_error(m, EXIT_FAIL, "line %zu: not JSON: %s", lineno, jerr.text);
	if (json_array_append_new(c->lines, o) < 0)
		return mgr_error(m, EXIT_FAIL, "out of memory");
	if (c->n == c->cap) {
		struct vc_event *evs = reallocarray(c->evs, c->cap * 2 + 64, sizeof *evs);

		if (!evs)
			return mgr_error(m, EXIT_FAIL, "out of memory");
		c->evs = evs;
		c->cap = c->cap * 2 + 64;
	}
	if ((r = parse_event(m, o, lineno, &c->evs[c->n])) == 0)
		c->n++;
	return r;
}

/* JSON Lines: one event per line; blank lines and CRLF endings are fine. */
static int parse_lines(struct mgr *m, const char *text, size_t len, struct chain *c)
{
	const char *p = text, *end = text + len;
	size_t lineno = 0;
	int r = 0;

	while (p < end && r == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		lineno++;
		if (n && p[n - 1] == '\r')
			n--;
		if (n)
			r = add_event(m, c, p, n, lineno);
		p = nl ? nl + 1 : end;
	}
	return r;
}

static int chain_broken(struct mgr *m, const struct chain *c, const struct vc_event *ev,
			const char *msg)
{
	char when[32];

	if (m->json) {
		json_t *j = json_pack("{s:b, s:I, s:I, s:s}", "ok", 0, "count", (json_int_t)c->n,
				      "seq", (json_int_t)ev->seq, "message", msg);

		mgr_print_json(j);
		json_decref(j);
	}
	return mgr_error(m, EXIT_FAIL, "%s, operation %s at %s by %s", msg, ev->operation,
			 mgr_time(ev->time_us / 1000000, when, sizeof when), ev->user);
}

static int chain_intact(struct mgr *m, const struct chain *c)
{
	char hex[2 * VC_SHA256_LEN + 1] = "";
	int64_t seq = c->n ? c->evs[c->n - 1].seq : 0;

	if (c->n)
		vc_hex_encode(c->evs[c->n - 1].hash, VC_SHA256_LEN, hex);
	if (m->json) {
		json_t *j = json_pack("{s:b, s:I, s:I, s:s}", "ok", 1, "count", (json_int_t)c->n,
				      "last_seq", (json_int_t)seq, "last_hash", hex);

		mgr_print_json(j);
		json_decref(j);
	} else if (c->n) {
		printf("%zu events, chain intact (last seq %lld, hash %s)\n", c->n, (long long)seq,
		       hex);
	} else {
		printf("0 events, chain intact (the log is empty)\n");
	}
	return 0;
}

static int verify_chain(struct mgr *m, const struct chain *c)
{
	static const uint8_t genesis[VC_SHA256_LEN];
	struct vc_error err = { 0 };
	size_t bad = 0;
	int r = vc_event_verify_chain(c->evs, c->n, genesis, NULL, 0, &bad, &err);

	if (r == -EBADMSG)
		return chain_broken(m, c, &c->evs[bad], err.msg);
	if (r < 0)
		return mgr_error(m, EXIT_FAIL, "%s", err.msg);
	return chain_intact(m, c);
}

static int verify_text(struct mgr *m, const char *text, size_t len)
{
	struct chain c = { .lines = json_array() };
	int r;

	if (!c.lines)
		return mgr_error(m, EXIT_FAIL, "out of memory");
	r = parse_lines(m, text, len, &c);
	if (r == 0)
		r = verify_chain(m, &c);
	free(c.evs);
	json_decref(c.lines);
	return r;
}

static int read_all(struct mgr *m, int fd, const char *path, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	size_t have = 0;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > EVENTS_FILE_MAX)
		return mgr_error(m, EXIT_FAIL, "%s: not a regular file of at most 1 GiB", path);
	if (!(buf = malloc((size_t)st.st_size + 1)))
		return mgr_error(m, EXIT_FAIL, "out of memory");
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return vc_error_errno(&m->err, n < 0 ? errno : EIO, "%s: cannot read", path);
		}
		have += (size_t)n;
	}
	buf[have] = '\0';
	*out = buf;
	*len = have;
	return 0;
}

static int events_verify(struct mgr *m, const struct margs *a)
{
	const char *file = mgr_opt(a, O_FILE);
	char *text = NULL;
	size_t len = 0;
	int r, fd;

	if (!file) {
		r = mgr_get_text(m, "/events?format=jsonl", &text, &len);
	} else if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		r = vc_error_errno(&m->err, errno, "%s: cannot open", file);
	} else {
		r = read_all(m, fd, file, &text, &len);
		close(fd);
	}
	if (r == 0)
		r = verify_text(m, text, len);
	free(text);
	return r;
}

/* ---- table ----------------------------------------------------------------- */

#define FILTERS (OPT(O_FROM) | OPT(O_TO) | OPT(O_USER) | OPT(O_OBJECT) | OPT(O_OPERATION))

static const struct mgr_sub events_subs[] = {
	{ "list", 0, FILTERS | OPT(O_FORMAT_LIST), 0, 0, events_list,
	  "[--from T] [--to T] [--user U] [--object ID] [--operation OP]\n"
	  "        [--format table|json|jsonl|csv]   (T: Unix seconds or 2026-11-23T10:00:00Z)",
	  list_check },
	{ "export", 0, FILTERS | OPT(O_FORMAT_EXPORT) | OPT(O_OUT), OPT(O_FORMAT_EXPORT), 0,
	  events_export,
	  "--format jsonl|csv [--out FILE] [the filters of list]   (FILE: new, 0600)", NULL },
	{ "verify", 0, OPT(O_FILE), 0, 0, events_verify,
	  "[--file FILE]   (check the hash chain here: of the server's log, or of a\n"
	  "        JSON Lines export; exit status 1 names the first bad event)",
	  NULL },
};

int cmd_events(int argc, char **argv)
{
	return mgr_dispatch("events", "The manager's tamper-evident event log.", events_subs,
			    VC_ARRAY_SIZE(events_subs), argc, argv);
}
