/* SPDX-License-Identifier: Apache-2.0 */
/* Powered-on VMs: each disk served over NBD on a Unix socket by its own
 * nbdkit (with the vmcrypt I/O filter when encrypted, the KEK handed over
 * a pipe), for the VM's QEMU or any NBD client. The servers run in their
 * own sessions: a crashed agent leaves them serving and adopts them when
 * it starts again; a clean agent stop powers the VMs off. An online deep
 * rekey runs inside the filter, which the agent drives on its control
 * socket (lib/vc_ctl.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "hostd.h"
#include "vc_ctl.h"
#include "vc_disk.h"
#include "vc_fileio.h"
#include "vc_log.h"
#include "vm.h"

#define START_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 30000
#define CTL_TIMEOUT_MS 5000

void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* run/<uuid>.<n>.<ext> for disk n, run/<uuid>.tpm.<ext> for the vTPM
 * (n == VM_TPM); -ENAMETOOLONG when a socket path would not fit. */
int run_file(struct hostd *h, const struct vm *v, size_t n, const char *ext, char *out,
	     size_t len, struct vc_error *err)
{
	char path[PATH_MAX], unit[24];
	int k;

	if (n == VM_TPM)
		snprintf(unit, sizeof unit, "tpm");
	else
		snprintf(unit, sizeof unit, "%zu", n);
	k = snprintf(path, sizeof path, "%s/%s.%s.%s", h->run_dir, v->uuid, unit, ext);
	if (k < 0 || (size_t)k >= len || (size_t)k >= sizeof path)
		return vc_error_set(err, -ENAMETOOLONG, "run directory %s: path of %s too long for "
				    "a socket (start the agent with a shorter --run-dir)",
				    h->run_dir, ext);
	memcpy(out, path, (size_t)k + 1);
	return 0;
}

int srv_paths(struct hostd *h, const struct vm *v, size_t n, const char *sock_ext, bool ctl,
	      struct vm_srv *s, char pidf[PATH_MAX], char logf[PATH_MAX], struct vc_error *err)
{
	int ret;

	memset(s, 0, sizeof *s);
	ret = run_file(h, v, n, sock_ext, s->sock, sizeof s->sock, err);
	if (ret == 0 && ctl)
		ret = run_file(h, v, n, "ctl", s->ctl, sizeof s->ctl, err);
	if (ret == 0)
		ret = run_file(h, v, n, "pid", pidf, PATH_MAX, err);
	if (ret == 0)
		ret = run_file(h, v, n, "log", logf, PATH_MAX, err);
	return ret;
}

void remove_run_files(struct hostd *h, const struct vm *v, size_t n)
{
	static const char *const ext[] = { "nbd", "sock", "ctl", "pid", "log" };
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
		if (run_file(h, v, n, ext[i], path, sizeof path, NULL) == 0)
			(void)unlink(path);
}

/* The start of a small file (a pid file, /proc), NUL-terminated; its
 * length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? n : -1;
}

/* A zombie is dead: nobody may reap the daemon quickly in a container. */
static bool is_zombie(pid_t pid)
{
	char path[64], buf[256], *p;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if (read_small(path, buf, sizeof buf) < 0)
		return true;
	p = strrchr(buf, ')');
	return !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
}

/* Whether the server still runs. */
bool srv_alive(struct vm_srv *s)
{
	if (s->pid <= 0)
		return false;
	if ((kill(s->pid, 0) == 0 || errno == EPERM) && !is_zombie(s->pid))
		return true;
	s->pid = -s->pid;     /* exited: keep the number for messages */
	return false;
}

/* The last line nbdkit wrote to its log: why it failed to start. */
static void log_tail(const char *path, char *out, size_t len)
{
	char buf[1024];
	ssize_t got = 0;
	int fd;

	snprintf(out, len, "no message");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size > 0)
		got = pread(fd, buf, sizeof buf - 1, size > (off_t)sizeof buf - 1
			    ? size - (off_t)sizeof buf + 1 : 0);
	close(fd);
	if (got <= 0)
		return;
	buf[got] = '\0';
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		buf[--got] = '\0';
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	snprintf(out, len, "%.*s", (int)(len - 1), line);
}

/* The pid a daemon wrote to its pid file, or 0. */
pid_t read_pid(const char *path)
{
	char buf[32], *end;
	long pid;

	if (read_small(path, buf, sizeof buf) < 0)
		return 0;
	pid = strtol(buf, &end, 10);
	return pid > 1 && pid < INT_MAX && (*end == '\0' || *end == '\n') ? (pid_t)pid : 0;
}

void child_exec(const char *const *argv, int out, int keyfd)
{
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* exec wants mutable strings; this child only execs. */
	char *args[32];
	int i;

	umask(077);
	signal(SIGPIPE, SIG_DFL);
	if (out < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 ||
	    (keyfd >= 0 && dup2(keyfd, 3) < 0))
		_exit(126);
	for (i = 0; argv[i] && i < 31; i++)
		args[i] = strdup(argv[i]);
	args[i] = NULL;
	execvp(args[0], args);
	dprintf(2, "vmcrypt-hostd: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int child_wait(pid_t pid, long long deadline, int *status)
{
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return -ETIMEDOUT;
		}
		pause_ms(10);
	}
}

int daemon_start(const char *const *argv, const struct vc_secret *key, const char *pidf,
		 const char *logf, bool (*ready)(void *), void *arg, struct vm_srv *s,
		 struct vc_error *err)
{
	long long deadline = now_ms() + START_TIMEOUT_MS;
	int kp[2] = { -1, -1 }, ret = 0, st = 0;
	pid_t pid, daemon = 0;
	char why[300];

	s->pid = 0;
	if (key && pipe2(kp, O_CLOEXEC) < 0)
		return vc_error_errno(err, errno, "pipe");
	pid = fork();
	if (pid < 0) {
		ret = vc_error_errno(err, errno, "fork");
		goto out;
	}
	if (pid == 0) {
		setsid();
		child_exec(argv, open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
				      0600), kp[0]);
	}
	if (key) {
		ssize_t w;

		close(kp[0]);
		kp[0] = -1;
		w = write(kp[1], vc_secret_data(key), vc_secret_len(key));
		close(kp[1]);
		kp[1] = -1;
		if (w != (ssize_t)vc_secret_len(key)) {
			ret = vc_error_errno(err, errno, "cannot hand the key to %s", argv[0]);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			goto out;
		}
	}
	/* The first process exits once it forked its daemon. */
	ret = child_wait(pid, deadline, &st);
	if (ret < 0) {
		ret = vc_error_set(err, ret, "%s did not start within %d s: %s", argv[0],
				   START_TIMEOUT_MS / 1000, strerror(-ret));
		goto out;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		log_tail(logf, why, sizeof why);
		ret = vc_error_set(err, -EIO, "%s failed: %s", argv[0], why);
		goto out;
	}
	for (;;) {
		if (!daemon && (daemon = read_pid(pidf)) != 0)
			s->pid = daemon;
		if (daemon && !srv_alive(s)) {
			log_tail(logf, why, sizeof why);
			ret = vc_error_set(err, -EIO, "%s exited: %s", argv[0], why);
			goto out;
		}
		if (daemon && ready(arg))
			break;
		if (now_ms() > deadline) {
			if (daemon)
				kill(daemon, SIGKILL);
			ret = vc_error_set(err, -ETIMEDOUT, "%s did not serve within %d s", argv[0],
					   START_TIMEOUT_MS / 1000);
			goto out;
		}
		pause_ms(20);
	}
	return 0;
out:
	if (kp[0] >= 0)
		close(kp[0]);
	if (kp[1] >= 0)
		close(kp[1]);
	s->pid = 0;
	return ret;
}

/* Encrypted disks: the control socket answers, which the filter opens
 * only once the disk opened. Plain ones: the NBD socket is there. */
static bool disk_ready(void *arg)
{
	const struct vm_srv *s = arg;
	struct vc_ctl_status cs;
	struct stat sb;

	return s->ctl[0] ? vc_ctl_request(s->ctl, VC_CTL_STATUS, 1000, &cs, NULL) == 0
			 : stat(s->sock, &sb) == 0;
}

/* Start disk n's server and wait until it serves. nbdkit daemonizes: its
 * daemon is nobody's child but init's, so it outlives the agent (nbdkit's
 * first process asks to die with its parent). */
static int srv_start(struct hostd *h, struct vm *v, size_t n, struct vc_error *err)
{
	struct vm_srv *s = &v->srv[n];
	char disk[PATH_MAX], pidf[PATH_MAX], logf[PATH_MAX], filter[PATH_MAX + 16];
	char file_arg[PATH_MAX + 8], ctl_arg[PATH_MAX + 16];
	const struct vc_secret *kek = NULL;
	bool enc = v->disks[n].encrypted, resume = false;
	const char *argv[20];
	int ret = 0, a = 0;

	ret = srv_paths(h, v, n, "nbd", enc, s, pidf, logf, err);
	if (ret < 0)
		return ret;
	vm_path(h, v, v->disks[n].file, disk, sizeof disk);
	if (enc) {
		/* The disk names its KEK; an interrupted deep rekey resumes. */
		struct vc_file f = { .name = disk, .fd = open(disk, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) };
		struct vc_disk_io io;
		struct vc_disk_info in;

		if (f.fd < 0)
			return vc_error_errno(err, errno, "cannot open %s", disk);
		vc_file_io(&f, &io);
		ret = vc_disk_inspect(&io, &in, err);
		close(f.fd);
		if (ret < 0)
			return ret;
		kek = cached(h, in.slot[0].provider, in.slot[0].key_id, err);
		if (!kek)
			return -ENOKEY;
		resume = in.rekey_active;
		if (!h->filter_path)
			return vc_error_set(err, -ENOENT, "no vmcrypt I/O filter: start the agent with "
					    "--nbdkit-filter PATH");
	}
	remove_run_files(h, v, n);
	argv[a++] = "nbdkit";
	argv[a++] = "--log=stderr";
	argv[a++] = "--unix";
	argv[a++] = s->sock;
	argv[a++] = "--pidfile";
	argv[a++] = pidf;
	if (enc) {
		snprintf(filter, sizeof filter, "--filter=%s", h->filter_path);
		argv[a++] = filter;
	}
	argv[a++] = "file";
	snprintf(file_arg, sizeof file_arg, "file=%s", disk);
	argv[a++] = file_arg;
	if (enc) {
		argv[a++] = "kek-fd=3";
		snprintf(ctl_arg, sizeof ctl_arg, "control=%s", s->ctl);
		argv[a++] = ctl_arg;
		if (resume)
			argv[a++] = "rekey=deep";
	}
	argv[a] = NULL;
	ret = daemon_start(argv, kek, pidf, logf, disk_ready, s, s, err);
	if (ret < 0) {
		char why[VC_ERROR_MSG_MAX];

		snprintf(why, sizeof why, "%s", vc_error_msg(err));
		return vc_error_set(err, ret, "disk %zu: %.200s", n, why);
	}
	vc_log(VC_LOG_INFO, "VM %s: disk %zu served on %s (pid %ld)%s", v->uuid, n, s->sock,
	       (long)s->pid, resume ? ", resuming its deep rekey" : "");
	return 0;
}

/* SIGTERM (nbdkit finishes the requests under way, the filter stops a
 * rekey between two steps; swtpm saves its state), then SIGKILL if it
 * does not go. */
void daemon_stop(struct vm_srv *s, const char *what)
{
	long long deadline = now_ms() + STOP_TIMEOUT_MS;
	bool killed = false;

	if (srv_alive(s)) {
		kill(s->pid, SIGTERM);
		while (srv_alive(s)) {
			if (!killed && now_ms() > deadline) {
				vc_log(VC_LOG_WARN, "%s (pid %ld) ignores SIGTERM: killed", what,
				       (long)s->pid);
				kill(s->pid, SIGKILL);
				killed = true;
			}
			pause_ms(10);
		}
	}
}

static void srv_stop(struct hostd *h, struct vm *v, size_t n)
{
	char what[80];

	snprintf(what, sizeof what, "the server of disk %zu", n);
	daemon_stop(&v->srv[n], what);
	remove_run_files(h, v, n);
	memset(&v->srv[n], 0, sizeof v->srv[n]);
}

/* The vTPM first: its state must be sealed back, which needs the VM
 * key; without it nothing stops (the manager brings the key soon). */
static int power_off(struct hostd *h, struct vm *v, struct vc_error *err)
{
	int ret = vtpm_stop(h, v, err);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < v->ndisks; i++)
		srv_stop(h, v, i);
	v->powered = false;
	return 0;
}

bool power_refuse_on(struct hreq *r, const struct vm *v)
{
	if (!v->powered)
		return false;
	reply_error(r, 409, "powered_on", "VM %s is powered on: power it off first", v->uuid);
	return true;
}

void h_vm_power_on(struct hreq *r)
{
	struct vm *v = path_vm_any(r);
	struct vc_error err = { 0 };
	int ret = 0;

	if (!v)
		return;
	if (needs_key(v) && !r->h->encryption_mode) {
		reply_error(r, 409, "conflict", "an encrypted VM cannot run on a host whose "
			    "encryption mode is off");
		return;
	}
	if (needs_key(v) && !keys_present(r->h, v, &err)) {
		reply_error(r, 409, "key_missing", "VM %s is locked: %s", v->uuid, vc_error_msg(&err));
		return;
	}
	if (mkdir(r->h->run_dir, 0700) < 0 && errno != EEXIST) {
		reply_error(r, 500, "internal", "cannot create %s: %s", r->h->run_dir,
			    strerror(errno));
		return;
	}
	/* Powering on a VM that is on starts the servers that stopped. */
	for (size_t i = 0; i < v->ndisks && ret == 0; i++)
		if (!srv_alive(&v->srv[i]))
			ret = srv_start(r->h, v, i, &err);
	if (ret == 0 && v->vtpm[0] && !vtpm_alive(v))
		ret = vtpm_start(r->h, v, &err);
	if (ret < 0) {
		struct vc_error e2 = { 0 };

		(void)power_off(r->h, v, &e2);
		reply_error(r, ret == -ENOKEY ? 409 : 500, ret == -ENOKEY ? "key_missing" : "internal",
			    "cannot power VM %s on: %s", v->uuid, vc_error_msg(&err));
		return;
	}
	v->powered = true;
	vc_log(VC_LOG_INFO, "VM %s powered on (%zu disks served%s)", v->uuid, v->ndisks,
	       v->vtpm[0] ? ", vTPM" : "");
	reply_json(r, 200, vm_json(r->h, v));
}

void h_vm_power_off(struct hreq *r)
{
	struct vm *v = path_vm_any(r);
	struct vc_error err = { 0 };
	int ret;

	if (!v)
		return;
	if (v->powered) {
		ret = power_off(r->h, v, &err);
		if (ret < 0) {
			reply_error(r, ret == -ENOKEY ? 409 : 500,
				    ret == -ENOKEY ? "key_missing" : "internal",
				    "cannot power VM %s off: %s", v->uuid, vc_error_msg(&err));
			return;
		}
		vc_log(VC_LOG_INFO, "VM %s powered off", v->uuid);
	}
	reply_json(r, 200, vm_json(r->h, v));
}

void power_stop_all(struct hostd *h)
{
	for (struct vm *v = h->vms; v; v = v->next)
		if (v->powered) {
			struct vc_error err = { 0 };

			if (power_off(h, v, &err) < 0)
				vc_log(VC_LOG_WARN, "VM %s left on (the next start adopts it): %s",
				       v->uuid, vc_error_msg(&err));
			else
				vc_log(VC_LOG_INFO, "VM %s powered off (the agent stops)", v->uuid);
		}
}

json_t *rekey_status_json(const struct vc_ctl_status *st)
{
	json_t *j = json_pack("{s:s,s:I,s:I,s:I}", "state", vc_ctl_state_name(st->state),
			      "progress", (json_int_t)st->progress, "total",
			      (json_int_t)st->total, "generation", (json_int_t)st->generation);

	if (st->state == VC_CTL_FAILED)
		json_object_set_new(j, "error", json_string(st->error));
	return j;
}

void power_json(struct hostd *h, struct vm *v, json_t *j, bool detail)
{
	json_t *disks = json_object_get(j, "disks");

	json_object_set_new(j, "power", json_string(v->powered ? "on" : "off"));
	if (!v->powered)
		return;
	if (v->vtpm[0]) {
		bool up = vtpm_alive(v);

		json_object_set_new(j, "tpm", up ? json_pack("{s:b,s:s,s:s,s:I}", "serving", 1,
							      "socket", v->tpm.sock, "control",
							      v->tpm.ctl, "pid",
							      (json_int_t)v->tpm.pid)
						 : json_pack("{s:b}", "serving", 0));
	}
	for (size_t i = 0; i < v->ndisks; i++) {
		json_t *d = json_array_get(disks, i);
		struct vm_srv *s = &v->srv[i];
		char uri[sizeof s->sock + 32], why[300];

		if (!d)
			continue;
		if (!srv_alive(s)) {
			char logf[PATH_MAX];

			why[0] = '\0';
			if (run_file(h, v, i, "log", logf, sizeof logf, NULL) == 0)
				log_tail(logf, why, sizeof why);
			json_object_set_new(d, "serving", json_false());
			json_object_set_new(d, "reason", json_pack("s+", "the disk server exited (power "
								   "the VM on again): ", why));
			continue;
		}
		snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", s->sock);
		json_object_set_new(d, "serving", json_true());
		json_object_set_new(d, "nbd", json_string(uri));
		json_object_set_new(d, "pid", json_integer(s->pid));
		if (detail && v->disks[i].encrypted) {
			struct vc_ctl_status st;
			struct vc_error err = { 0 };

			if (vc_ctl_request(s->ctl, VC_CTL_STATUS, CTL_TIMEOUT_MS, &st, &err) == 0)
				json_object_set_new(d, "rekey", rekey_status_json(&st));
			else
				json_object_set_new(d, "reason", json_string(vc_error_msg(&err)));
		}
	}
}

static struct vm_srv *served_disk(struct hreq *r, struct vm *v, size_t n)
{
	if (!v->powered) {
		reply_error(r, 409, "conflict", "VM %s is powered off", v->uuid);
		return NULL;
	}
	if (!srv_alive(&v->srv[n])) {
		reply_error(r, 409, "conflict", "the server of disk %zu of VM %s is not running: "
			    "power the VM on again (an interrupted rekey resumes)", n, v->uuid);
		return NULL;
	}
	return &v->srv[n];
}

void power_rekey_deep(struct hreq *r, struct vm *v, size_t n)
{
	struct vm_srv *s = served_disk(r, v, n);
	struct vc_ctl_status st;
	struct vc_error err = { 0 };
	json_t *j;

	if (!s)
		return;
	if (vc_ctl_request(s->ctl, VC_CTL_REKEY_DEEP, CTL_TIMEOUT_MS, &st, &err) < 0) {
		reply_error(r, 500, "internal", "disk %zu: %s", n, vc_error_msg(&err));
		return;
	}
	vc_log(VC_LOG_INFO, "VM %s: disk %zu deep rekey while in use: %s (%llu/%llu sectors)",
	       v->uuid, n, vc_ctl_state_name(st.state), (unsigned long long)st.progress,
	       (unsigned long long)st.total);
	j = rekey_status_json(&st);
	json_object_set_new(j, "uuid", json_string(v->uuid));
	json_object_set_new(j, "disk", json_integer((json_int_t)n));
	json_object_set_new(j, "online", json_true());
	reply_json(r, 202, j);
}

int power_rekey_shallow(struct vm *v, size_t n, const struct vc_secret *kek, const char *np,
			const char *nk, struct vc_error *err)
{
	struct vc_ctl_shallow sh = { 0 };
	struct vc_ctl_status st;
	int ret;

	if (vc_secret_len(kek) != sizeof sh.kek || strlen(np) >= sizeof sh.provider ||
	    strlen(nk) >= sizeof sh.key_id)
		return vc_error_set(err, -EINVAL, "disk %zu: key %s of %s cannot go to its server", n,
				    nk, np);
	memcpy(sh.provider, np, strlen(np) + 1);
	memcpy(sh.key_id, nk, strlen(nk) + 1);
	memcpy(sh.kek, vc_secret_data(kek), sizeof sh.kek);
	ret = vc_ctl_rekey_shallow(v->srv[n].ctl, &sh, CTL_TIMEOUT_MS, &st, err);
	vc_wipe(&sh, sizeof sh);
	return ret;
}

/* The state of a served disk's online rekey (its filter's). */
void power_rekey_status(struct hreq *r, struct vm *v, size_t n)
{
	struct vm_srv *s = served_disk(r, v, n);
	struct vc_ctl_status st;
	struct vc_error err = { 0 };

	if (!s)
		return;
	if (vc_ctl_request(s->ctl, VC_CTL_STATUS, CTL_TIMEOUT_MS, &st, &err) < 0) {
		reply_error(r, 500, "internal", "disk %zu: %s", n, vc_error_msg(&err));
		return;
	}
	reply_json(r, 200, rekey_status_json(&st));
}

bool daemon_adopt(struct vm_srv *s, const char *pidf, const char *comm,
		  bool (*ready)(void *), void *arg)
{
	char proc[64], buf[64];
	pid_t pid = read_pid(pidf);

	if (!pid)
		return false;
	snprintf(proc, sizeof proc, "/proc/%ld/comm", (long)pid);
	if (read_small(proc, buf, sizeof buf) < 0 || strncmp(buf, comm, strlen(comm)) != 0 ||
	    !ready(arg))
		return false;
	s->pid = pid;
	return srv_alive(s);
}

static bool adopt_one(struct hostd *h, struct vm *v, size_t n)
{
	struct vm_srv *s = &v->srv[n];
	char pidf[PATH_MAX];

	if (run_file(h, v, n, "pid", pidf, sizeof pidf, NULL) < 0 ||
	    run_file(h, v, n, "nbd", s->sock, sizeof s->sock, NULL) < 0 ||
	    (v->disks[n].encrypted && run_file(h, v, n, "ctl", s->ctl, sizeof s->ctl, NULL) < 0))
		return false;
	return daemon_adopt(s, pidf, "nbdkit", disk_ready, s);
}

void power_adopt(struct hostd *h)
{
	for (struct vm *v = h->vms; v; v = v->next) {
		size_t adopted = 0;

		if (v->error[0])
			continue;
		for (size_t i = 0; i < v->ndisks; i++) {
			if (adopt_one(h, v, i)) {
				adopted++;
			} else {
				memset(&v->srv[i], 0, sizeof v->srv[i]);
				remove_run_files(h, v, i);
			}
		}
		if (vtpm_adopt(h, v)) {
			adopted++;
		} else if (v->vtpm[0]) {
			memset(&v->tpm, 0, sizeof v->tpm);
			remove_run_files(h, v, VM_TPM);
		}
		if (adopted) {
			v->powered = true;
			vc_log(VC_LOG_INFO, "VM %s: %zu running servers adopted", v->uuid, adopted);
		}
	}
}
