/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd: the manager. Configuration, start-up, the event loop and a
 * clean stop on SIGTERM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "api.h"
#include "hostclient.h"
#include "server.h"
#include "vc_tlscert.h"
#include "vc_json.h"
#include "vc_log.h"
#include "vc_passwd.h"
#include "vc_secmem.h"
#include "vc_crypto.h"

#ifndef VMCRYPT_VERSION
#define VMCRYPT_VERSION "unknown"
#endif

#define DEFAULT_DATA_DIR "/var/lib/vmcrypt"
#define DEFAULT_LISTEN "127.0.0.1:8443"
#define DEFAULT_TOKEN_TTL 3600

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmcryptd [OPTIONS]\n"
		"  --config FILE               read 'name = value' settings (the options below\n"
		"                              without '--'); options given here win\n"
		"  --data-dir DIR              state directory (default " DEFAULT_DATA_DIR ")\n"
		"  --listen ADDR:PORT          HTTPS address (default " DEFAULT_LISTEN "; port 0\n"
		"                              picks one, printed when ready)\n"
		"  --tls-cert FILE --tls-key FILE\n"
		"                              certificate and key (default: self-signed, made\n"
		"                              on first start in DIR/tls)\n"
		"  --admin-password-file FILE  first start: the admin's password (0600 file);\n"
		"                              without it a one-time password is printed\n"
		"  --admin-password-fd N       the same, read from an inherited descriptor\n"
		"  --token-ttl SECONDS         session lifetime (default 3600)\n"
		"  --native-provider NAME      with no key provider configured, create this\n"
		"                              native provider as the default\n"
		"  --print-routes              print the API routes and privileges as JSON\n"
		"  --print-privileges          print docs/PRIVILEGES.md's table\n"
		"  --version, --help\n");
}

static int set_opt(struct mgr_config *c, const char *name, const char *val,
		   struct vc_error *err)
{
	char **slot = NULL;

	if (!strcmp(name, "data-dir"))
		slot = &c->data_dir;
	else if (!strcmp(name, "listen"))
		slot = &c->listen;
	else if (!strcmp(name, "tls-cert"))
		slot = &c->tls_cert;
	else if (!strcmp(name, "tls-key"))
		slot = &c->tls_key;
	else if (!strcmp(name, "admin-password-file"))
		slot = &c->admin_password_file;
	else if (!strcmp(name, "native-provider"))
		slot = &c->native_provider;
	else if (!strcmp(name, "token-ttl")) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(val, &end, 10);
		if (errno || *end || end == val || v < 1 || v > 30LL * 24 * 3600)
			return vc_error_set(err, -EINVAL, "token-ttl: '%s' is not a number of "
					    "seconds from 1 to 2592000", val);
		c->token_ttl = v;
		return 0;
	} else {
		return vc_error_set(err, -EINVAL, "unknown setting '%s'", name);
	}
	free(*slot);
	*slot = strdup(val);
	return *slot ? 0 : vc_error_set(err, -ENOMEM, "out of memory");
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Settings from the file that the command line did not give. */
static int read_config(const char *path, struct mgr_config *c, const struct mgr_config *cli,
		       struct vc_error *err)
{
	FILE *f = fopen(path, "re");
	char line[4096];
	int lineno = 0, ret = 0;

	if (!f)
		return vc_error_errno(err, errno, "cannot read config %s", path);
	while (ret == 0 && fgets(line, sizeof line, f)) {
		char *eq, *name, *val;

		lineno++;
		name = trim(line);
		if (!*name || *name == '#')
			continue;
		eq = strchr(name, '=');
		if (!eq) {
			ret = vc_error_set(err, -EINVAL, "%s:%d: expected 'name = value'", path,
					   lineno);
			break;
		}
		*eq = '\0';
		val = trim(eq + 1);
		name = trim(name);
		ret = set_opt(c, name, val, err);
		if (ret < 0)
			vc_error_prefix(err, "%s:%d", path, lineno);
	}
	fclose(f);
	(void)cli;
	return ret;
}

static void print_routes(bool markdown)
{
	json_t *arr = json_array();

	if (markdown)
		printf("| method | path | privilege | checked on |\n|---|---|---|---|\n");
	for (size_t i = 0; i < mgr_nroutes; i++) {
		const struct route *rt = &mgr_routes[i];
		static const char *const objs[] = { "root", "{id}", "body.parent", "body.object",
						    "query.object" };
		const char *obj = rt->obj == OBJ_PARAM ? (strstr(rt->pattern, "{id}") ? "{id}"
										: "{name}")
						       : objs[rt->obj];
		json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "method",
				      route_method_name(rt->method), "path", rt->pattern,
				      "object", obj, "note", rt->note);

		if (rt->priv >= 0)
			json_object_set_new(j, "privilege",
					    json_string(vc_priv_name((enum vc_priv)rt->priv)));
		else if (rt->priv == PRIV_NONE)
			json_object_set_new(j, "privilege", json_string("none"));
		else if (rt->priv == PRIV_ANY)
			json_object_set_new(j, "privilege", json_null());
		else {
			int which = rt->method == EVHTTP_REQ_POST ? 0
				    : rt->method == EVHTTP_REQ_PATCH ? 1 : 2;

			json_object_set_new(j, "privilege", json_string("by-kind"));
			json_object_set_new(j, "by_kind", inventory_by_kind_json(which));
		}
		if (markdown) {
			json_t *bk = json_object_get(j, "by_kind");
			const char *p = json_string_value(json_object_get(j, "privilege"));
			char pv[512] = "";

			if (bk) {
				const char *k;
				json_t *v;
				size_t o = 0;

				json_object_foreach(bk, k, v) {
					o += (size_t)snprintf(pv + o, sizeof pv - o, "%s%s: %s",
							      o ? "<br>" : "", k, json_string_value(v));
					if (o >= sizeof pv)
						break;
				}
			} else {
				snprintf(pv, sizeof pv, "%s", !p ? "(any logged-in user)"
							: !strcmp(p, "none") ? "(none: login)" : p);
			}
			printf("| %s | `%s` | %s | %s |\n", route_method_name(rt->method),
			       rt->pattern, pv, rt->priv == PRIV_NONE || rt->priv == PRIV_ANY ? "-"
											 : obj);
		}
		json_array_append_new(arr, j);
	}
	if (!markdown) {
		char *s = json_dumps(arr, JSON_INDENT(1));

		if (s)
			printf("%s\n", s);
		vc_json_free_dump(s);
	}
	json_decref(arr);
}

static int parse_args(int argc, char **argv, struct mgr_config *c, int *action,
		      struct vc_error *err)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "admin-password-file", required_argument, NULL, 'a' },
		{ "token-ttl", required_argument, NULL, 't' },
		{ "native-provider", required_argument, NULL, 'n' },
		{ "admin-password-fd", required_argument, NULL, 'F' },
		{ "print-routes", no_argument, NULL, 'r' },
		{ "print-privileges", no_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mgr_config cli = { 0 };
	const char *config = NULL;
	int o, ret = 0;

	*action = 0;
	opterr = 0;
	while (ret == 0 && (o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'r':
		case 'p':
		case 'V':
		case 'h':
			*action = o;
			break;
		case 'F': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 3 || v > 1000000)
				return vc_error_set(err, -EINVAL, "--admin-password-fd: '%s' is not a "
						    "descriptor number (3 or more)", optarg);
			c->admin_password_fd = (int)v;
			break;
		}
		case '?':
			return vc_error_set(err, -EINVAL, "unknown or incomplete option '%s' "
					    "(see --help)", argv[optind - 1]);
		default:
			for (const struct option *op = opts; op->name; op++)
				if (op->val == o)
					ret = set_opt(&cli, op->name, optarg, err);
		}
	}
	if (ret == 0 && optind < argc)
		ret = vc_error_set(err, -EINVAL, "unexpected argument '%s'", argv[optind]);
	if (ret == 0 && config)
		ret = read_config(config, c, &cli, err);
	/* The command line wins over the file. */
	if (ret == 0) {
		char **dst[] = { &c->data_dir, &c->listen, &c->tls_cert, &c->tls_key,
				 &c->admin_password_file, &c->native_provider };
		char **src[] = { &cli.data_dir, &cli.listen, &cli.tls_cert, &cli.tls_key,
				 &cli.admin_password_file, &cli.native_provider };

		for (size_t i = 0; i < 6; i++) {
			if (*src[i]) {
				free(*dst[i]);
				*dst[i] = *src[i];
				*src[i] = NULL;
			}
		}
		if (cli.token_ttl)
			c->token_ttl = cli.token_ttl;
	}
	free(cli.data_dir);
	free(cli.listen);
	free(cli.tls_cert);
	free(cli.tls_key);
	free(cli.admin_password_file);
	free(cli.native_provider);
	return ret;
}

static int set_default(char **slot, const char *v)
{
	if (*slot)
		return 0;
	*slot = strdup(v);
	return *slot ? 0 : -ENOMEM;
}

static int prepare_dirs(struct mgr *m, struct vc_error *err)
{
	char path[PATH_MAX];
	struct stat sb;

	if (mkdir(m->cfg.data_dir, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "cannot create data directory %s",
				      m->cfg.data_dir);
	if (stat(m->cfg.data_dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return vc_error_set(err, -ENOTDIR, "%s is not a directory", m->cfg.data_dir);
	if (sb.st_uid != geteuid() || (sb.st_mode & 077))
		return vc_error_set(err, -EPERM, "data directory %s must belong to this user and "
				    "be 0700 (it is %03o)", m->cfg.data_dir,
				    (unsigned)(sb.st_mode & 0777));
	snprintf(path, sizeof path, "%s/tls", m->cfg.data_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "cannot create %s", path);
	return 0;
}

/* Only one manager per data directory: a second one would fight over
 * the same database, tasks and provider files. */
static int lock_data_dir(struct mgr *m, int *fd, struct vc_error *err)
{
	char path[PATH_MAX];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	snprintf(path, sizeof path, "%s/vmcryptd.lock", m->cfg.data_dir);
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0)
		return vc_error_errno(err, errno, "cannot open %s", path);
	if (fcntl(*fd, F_SETLK, &fl) < 0)
		return vc_error_set(err, -EBUSY, "another vmcryptd is running on %s",
				    m->cfg.data_dir);
	return 0;
}

static int setup_tls(struct mgr *m, SSL_CTX **ctx, char fp[VC_TLS_FP_LEN], struct vc_error *err)
{
	char cert[PATH_MAX], key[PATH_MAX], host[256] = "";
	int ret;

	if (!m->cfg.tls_cert != !m->cfg.tls_key)
		return vc_error_set(err, -EINVAL, "give both tls-cert and tls-key, or neither");
	if (m->cfg.tls_cert) {
		snprintf(m->cert_path, sizeof m->cert_path, "%s", m->cfg.tls_cert);
		snprintf(m->key_path, sizeof m->key_path, "%s", m->cfg.tls_key);
		return vc_tls_server_ctx(m->cfg.tls_cert, m->cfg.tls_key, ctx, fp, err);
	}
	snprintf(cert, sizeof cert, "%s/tls/manager.crt", m->cfg.data_dir);
	snprintf(key, sizeof key, "%s/tls/manager.key", m->cfg.data_dir);
	if (access(cert, F_OK) < 0 && access(key, F_OK) < 0) {
		gethostname(host, sizeof host - 1);
		ret = vc_tls_make_self_signed(cert, key, "vmcryptd", host, err);
		if (ret < 0)
			return ret;
		vc_log(VC_LOG_INFO, "made a self-signed certificate in %s", cert);
	}
	snprintf(m->cert_path, sizeof m->cert_path, "%s", cert);
	snprintf(m->key_path, sizeof m->key_path, "%s", key);
	return vc_tls_server_ctx(cert, key, ctx, fp, err);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static int run(struct mgr *m, struct vc_error *err)
{
	char fp[VC_TLS_FP_LEN], bound[300], db[PATH_MAX];
	struct event *sigterm = NULL, *sigint = NULL;
	struct evhttp *http = NULL;
	SSL_CTX *ctx = NULL;
	int lockfd = -1, ret;

	ret = prepare_dirs(m, err);
	if (ret == 0)
		ret = lock_data_dir(m, &lockfd, err);
	snprintf(db, sizeof db, "%s/vmcryptd.db", m->cfg.data_dir);
	if (ret == 0)
		ret = vc_store_open_sqlite(db, &m->st, err);
	if (ret == 0)
		ret = mgr_first_start(m, err);
	if (ret == 0) {
		struct vc_secret *decoy = NULL;

		ret = vc_random_secret(24, &decoy, err);
		if (ret == 0)
			ret = vc_passwd_hash(decoy, NULL, &m->decoy_hash, err);
		vc_secret_free(decoy);
	}
	if (ret == 0)
		ret = tasks_recover(m, err);
	if (ret == 0)
		ret = setup_tls(m, &ctx, fp, err);
	if (ret == 0)
		ret = prov_load_all(m, err);
	if (ret == 0 && m->cfg.native_provider)
		ret = prov_ensure_native(m, m->cfg.native_provider, err);
	if (ret == 0)
		ret = tasks_start(m, err);
	if (ret == 0 && evthread_use_pthreads() < 0)
		ret = vc_error_set(err, -ENOMEM, "cannot enable libevent's threads");
	if (ret == 0) {
		m->base = event_base_new();
		ret = m->base ? 0 : vc_error_set(err, -ENOMEM, "cannot create the event loop");
	}
	if (ret == 0)
		ret = server_start(m, ctx, &http, bound, sizeof bound, err);
	if (ret == 0) {
		sigterm = evsignal_new(m->base, SIGTERM, on_signal, m->base);
		sigint = evsignal_new(m->base, SIGINT, on_signal, m->base);
		if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 ||
		    evsignal_add(sigint, NULL) < 0)
			ret = vc_error_set(err, -ENOMEM, "cannot handle signals");
	}
	if (ret == 0) {
		fprintf(stderr, "vmcryptd: certificate SHA-256 %s\n", fp);
		fprintf(stderr, "vmcryptd: listening on https://%s\n", bound);
		fflush(stderr);
		event_base_dispatch(m->base);
		fprintf(stderr, "vmcryptd: stopping\n");
	}
	if (http)
		evhttp_free(http);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	tasks_stop(m);
	key_issues_free(m);
	prov_free_all(m);
	authz_invalidate(m);
	if (m->base)
		event_base_free(m->base);
	SSL_CTX_free(ctx);
	vc_store_close(m->st);
	free(m->decoy_hash);
	if (lockfd >= 0)
		close(lockfd);
	return ret;
}

int main(int argc, char **argv)
{
	struct mgr m = { .cfg.admin_password_fd = -1 };
	struct vc_error err = { 0 };
	int action = 0, ret;

	vc_log_init("vmcryptd", VC_LOG_INFO);
	vc_json_use_wiping_alloc();
	ret = parse_args(argc, argv, &m.cfg, &action, &err);
	if (ret < 0) {
		fprintf(stderr, "vmcryptd: error: %s\n", vc_error_msg(&err));
		return 2;
	}
	switch (action) {
	case 'h':
		usage(stdout);
		return 0;
	case 'V':
		printf("vmcryptd %s\n", VMCRYPT_VERSION);
		return 0;
	case 'r':
		print_routes(false);
		return 0;
	case 'p':
		print_routes(true);
		return 0;
	}
	if (set_default(&m.cfg.data_dir, DEFAULT_DATA_DIR) < 0 ||
	    set_default(&m.cfg.listen, DEFAULT_LISTEN) < 0) {
		fprintf(stderr, "vmcryptd: error: out of memory\n");
		return 1;
	}
	if (!m.cfg.token_ttl)
		m.cfg.token_ttl = DEFAULT_TOKEN_TTL;
	signal(SIGPIPE, SIG_IGN);
	if (vc_secmem_harden_process(&err) < 0) {
		fprintf(stderr, "vmcryptd: error: %s\n", vc_error_msg(&err));
		return 1;
	}
	if (err.msg[0])
		vc_log(VC_LOG_WARN, "%s", vc_error_msg(&err));
	err = (struct vc_error){ 0 };
	pthread_mutex_init(&m.lock, NULL);
	ret = hostclient_init(&err);
	if (ret == 0)
		ret = run(&m, &err);
	hostclient_cleanup();
	if (ret < 0)
		fprintf(stderr, "vmcryptd: error: %s\n", vc_error_msg(&err));
	else
		fprintf(stderr, "vmcryptd: stopped\n");
	free(m.cfg.data_dir);
	free(m.cfg.listen);
	free(m.cfg.tls_cert);
	free(m.cfg.tls_key);
	free(m.cfg.admin_password_file);
	free(m.cfg.native_provider);
	return ret < 0 ? 1 : 0;
}
