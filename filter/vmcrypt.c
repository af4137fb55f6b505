/* SPDX-License-Identifier: Apache-2.0 */
/* nbdkit-vmcrypt-filter: serves the plaintext of a vmcrypt disk held by
 * the underlying plugin; every byte is encrypted and decrypted here. */
#define _GNU_SOURCE
#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vc_ctl.h"
#include "vc_disk.h"
#include "vc_fileio.h"
#include "vc_secmem.h"
#include "vc_wrap.h"

/* Configuration. The keys are read at .config_complete, before nbdkit
 * forks or drops privileges, and live in locked memory. */
static const char *kek_file, *new_kek_file;
static int kek_fd = -1, new_kek_fd = -1;
static struct vc_secret *kek, *new_kek;

/* One disk and one background plugin context shared by every connection,
 * so that read-modify-write of partial sectors is serialised across
 * connections too (which makes multi-conn safe). */
static nbdkit_next *shared_next;
static struct vc_disk *disk;
/* The plugin context cannot write (read-only file). */
static bool plugin_rdonly;
/* The disk is opened read-only at start-up, so that `nbdkit -r` never
 * writes (not even to finish an interrupted rekey step or repair a header
 * copy), and turned writable when the first writable connection opens. */
static pthread_mutex_t writable_lock = PTHREAD_MUTEX_INITIALIZER;
static bool disk_writable;
static bool online_rekey;      /* rekey=deep */
static const char *control_path; /* control=PATH */

static void vmcrypt_unload(void)
{
	vc_secret_free(kek);
	vc_secret_free(new_kek);
	kek = new_kek = NULL;
}

static int parse_fd(const char *key, const char *value, int *fd)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (*value < '0' || *value > '9' || *end || errno || v > INT_MAX) {
		nbdkit_error("vmcrypt: %s: not a file descriptor number: %s", key, value);
		return -1;
	}
	*fd = (int)v;
	return 0;
}

static int vmcrypt_config(nbdkit_next_config *next, nbdkit_backend *nxdata,
			  const char *key, const char *value)
{
	if (strcmp(key, "kek-file") == 0) {
		kek_file = value;
		return 0;
	}
	if (strcmp(key, "new-kek-file") == 0) {
		new_kek_file = value;
		return 0;
	}
	if (strcmp(key, "kek-fd") == 0)
		return parse_fd(key, value, &kek_fd);
	if (strcmp(key, "new-kek-fd") == 0)
		return parse_fd(key, value, &new_kek_fd);
	if (strcmp(key, "control") == 0) {
		control_path = value;
		return 0;
	}
	if (strcmp(key, "rekey") == 0) {
		if (strcmp(value, "deep") != 0) {
			nbdkit_error("vmcrypt: rekey=deep is the only online rekey");
			return -1;
		}
		online_rekey = true;
		return 0;
	}
	if (strcmp(key, "kek") == 0 || strcmp(key, "key") == 0 || strcmp(key, "passphrase") == 0) {
		nbdkit_error("vmcrypt: keys are never taken on the command line: use kek-fd=N or kek-file=PATH");
		return -1;
	}
	return next(nxdata, key, value);
}

static int load_key(const char *file, int fd, const char *what,
		    struct vc_secret **out)
{
	struct vc_error err = { 0 };
	char name[64];
	int r;

	if (file) {
		r = vc_secret_read_file(file, VC_KEK_LEN, out, &err);
	} else {
		snprintf(name, sizeof name, "%s-fd=%d", what, fd);
		r = vc_secret_read_fd(fd, VC_KEK_LEN, name, out, &err);
	}
	if (r < 0) {
		nbdkit_error("vmcrypt: %s", vc_error_msg(&err));
		return -1;
	}
	return 0;
}

static int vmcrypt_config_complete(nbdkit_next_config_complete *next,
				   nbdkit_backend *nxdata)
{
	struct vc_error err = { 0 };

	if ((kek_file != NULL) == (kek_fd >= 0)) {
		nbdkit_error("vmcrypt: give exactly one of kek-fd=N or kek-file=PATH");
		return -1;
	}
	if (new_kek_file && new_kek_fd >= 0) {
		nbdkit_error("vmcrypt: give at most one of new-kek-fd=N or new-kek-file=PATH");
		return -1;
	}
	/* No core dumps of a process that holds keys; lock its memory when
	 * allowed (OpenSSL keeps key schedules in the heap). */
	if (vc_secmem_harden_process(&err) < 0) {
		nbdkit_error("vmcrypt: %s", vc_error_msg(&err));
		return -1;
	}
	if (err.msg[0])
		nbdkit_debug("vmcrypt: %s", err.msg);
	if (load_key(kek_file, kek_fd, "kek", &kek) < 0)
		return -1;
	if ((new_kek_file || new_kek_fd >= 0) &&
	    load_key(new_kek_file, new_kek_fd, "new-kek", &new_kek) < 0)
		return -1;
	return next(nxdata);
}

#define vmcrypt_config_help \
	"rekey=deep             Give the disk a new data key and re-encrypt it while\n" \
	"                       serving (resumes an interrupted one); clients keep\n" \
	"                       reading and writing meanwhile.\n" \
	"control=<SOCKET>       Listen there (mode 0600) for the host agent's\n" \
	"                       \"status\" and \"rekey-deep\" requests.\n" \
	"kek-fd=<FD>            Read the 32-byte key-encryption key from FD.\n" \
	"kek-file=<FILE>        Read it from FILE (mode 0600, owned by the user).\n" \
	"new-kek-fd=<FD>|new-kek-file=<FILE>\n" \
	"                       Key of an interrupted deep rekey to another KEK."

static int vmcrypt_thread_model(void)
{
	return NBDKIT_THREAD_MODEL_PARALLEL;
}

/* ---- storage callbacks over the shared plugin context -------------------- */

static int set_err(struct vc_error *err, int e, const char *what)
{
	return vc_error_set(err, e ? -e : -EIO, "underlying plugin: %s failed: %s",
			    what, strerror(e ? e : EIO));
}

static int io_pread(void *opaque, void *buf, size_t count, uint64_t offset,
		    struct vc_error *err)
{
	nbdkit_next *next = opaque;
	uint8_t *p = buf;
	int e = 0;

	while (count > 0) {
		uint32_t n = count > (1u << 30) ? (1u << 30) : (uint32_t)count;

		if (next->pread(next, p, n, offset, 0, &e) == -1)
			return set_err(err, e, "read");
		p += n;
		offset += n;
		count -= n;
	}
	return 0;
}

static int io_pwrite(void *opaque, const void *buf, size_t count,
		     uint64_t offset, struct vc_error *err)
{
	nbdkit_next *next = opaque;
	const uint8_t *p = buf;
	int e = 0;

	while (count > 0) {
		uint32_t n = count > (1u << 30) ? (1u << 30) : (uint32_t)count;

		if (next->pwrite(next, p, n, offset, 0, &e) == -1)
			return set_err(err, e, "write");
		p += n;
		offset += n;
		count -= n;
	}
	return 0;
}

static int io_flush(void *opaque, struct vc_error *err)
{
	nbdkit_next *next = opaque;
	int e = 0;

	if (next->can_flush(next) != 1)
		return 0;
	if (next->flush(next, 0, &e) == -1)
		return set_err(err, e, "flush");
	return 0;
}

static int io_size(void *opaque, uint64_t *size, struct vc_error *err)
{
	nbdkit_next *next = opaque;
	int64_t s = next->get_size(next);

	if (s < 0)
		return vc_error_set(err, -EIO, "underlying plugin: cannot get size");
	*size = (uint64_t)s;
	return 0;
}

/* Zeroing through the plugin, allowed to punch holes: the library only
 * needs the bytes to read back as zeros. */
static int io_punch(void *opaque, uint64_t offset, uint64_t count,
		    struct vc_error *err)
{
	nbdkit_next *next = opaque;
	int e = 0;

	if (next->can_zero(next) <= NBDKIT_ZERO_NONE)
		return -ENOTSUP;
	while (count > 0) {
		uint32_t n = count > (1u << 30) ? (1u << 30) : (uint32_t)count;

		if (next->zero(next, n, offset, NBDKIT_FLAG_MAY_TRIM, &e) == -1) {
			if (e == ENOTSUP || e == EOPNOTSUPP)
				return -ENOTSUP;
			return set_err(err, e, "zero");
		}
		offset += n;
		count -= n;
	}
	return 0;
}

static struct vc_disk_io shared_io = {
	.pread = io_pread,
	.pwrite = io_pwrite,
	.flush = io_flush,
	.get_size = io_size,
	.punch = io_punch,
};

/* ---- online deep rekey --------------------------------------------------- */

/* A thread re-encrypts the disk one journal-sized step at a time while
 * connections read and write (the disk's lock orders each step against
 * their I/O). Every step is crash-safe: a process killed in the middle
 * resumes from the journal when started again with rekey=deep. It starts
 * with rekey=deep, or when the host agent asks on the control socket. */
static pthread_mutex_t rekey_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t rekey_thread;
static bool rekey_joinable;
static enum vc_ctl_state rekey_state = VC_CTL_IDLE;
static char rekey_error[256];
static volatile bool rekey_stop;

/* Tests only: hold the rekey between two steps while this file exists,
 * so that a test can act (kill the agent, the server) at a known point. */
static void test_hold(void)
{
	const char *hold = getenv("VMCRYPT_TEST_REKEY_HOLD");
	const struct timespec ts = { 0, 10 * 1000 * 1000 };

	while (hold && *hold && !rekey_stop && access(hold, F_OK) == 0)
		nanosleep(&ts, NULL);
}

/* Clients first: after each step, while a client request is in flight or
 * one began less than IO_GAP_NS ago, the rekey waits (up to YIELD_MAX_NS
 * per step), so a guest writing all the time keeps most of the disk's
 * time and an idle disk is rekeyed at full speed. */
#define IO_GAP_NS (1000 * 1000)
#define YIELD_MAX_NS (5 * 1000 * 1000)
static atomic_int io_inflight;
static atomic_uint_fast64_t io_last_ns;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void io_begin(void)
{
	atomic_fetch_add(&io_inflight, 1);
	atomic_store(&io_last_ns, mono_ns());
}

static void io_end(void)
{
	atomic_fetch_sub(&io_inflight, 1);
}

static void rekey_yield(void)
{
	const struct timespec nap = { 0, 100 * 1000 };
	uint64_t start = mono_ns(), now = start;

	while (!rekey_stop && now - start < YIELD_MAX_NS &&
	       (atomic_load(&io_inflight) > 0 || now - atomic_load(&io_last_ns) < IO_GAP_NS)) {
		nanosleep(&nap, NULL);
		now = mono_ns();
	}
}

static void *rekey_main(void *arg)
{
	struct vc_error err = { 0 };
	long steps = 0, crash_at = vc_test_crash_point("VMCRYPT_TEST_CRASH_AT_STEP");
	bool done = false;
	int r = 0;

	(void)arg;
	if (!vc_disk_rekey_active(disk))
		r = vc_disk_rekey_deep_start(disk, NULL, NULL, NULL, &err);
	else
		nbdkit_debug("vmcrypt: resuming an interrupted deep rekey");
	while (r == 0 && !done && !rekey_stop) {
		if (steps > 0) {
			rekey_yield();
			test_hold();
		}
		r = vc_disk_rekey_deep_step(disk, &done, &err);
		/* Crash tests only: a kill -9 between two steps. */
		if (++steps == crash_at)
			raise(SIGKILL);
	}
	pthread_mutex_lock(&rekey_lock);
	if (r < 0) {
		nbdkit_error("vmcrypt: online deep rekey: %s", vc_error_msg(&err));
		snprintf(rekey_error, sizeof rekey_error, "%s", vc_error_msg(&err));
		rekey_state = VC_CTL_FAILED;
	} else if (done) {
		nbdkit_debug("vmcrypt: online deep rekey done");
		rekey_state = VC_CTL_DONE;
	} else {
		rekey_state = VC_CTL_IDLE;   /* stopped between two steps */
	}
	pthread_mutex_unlock(&rekey_lock);
	return NULL;
}

static int ensure_writable(struct vc_error *err)
{
	if (plugin_rdonly)
		return vc_error_set(err, -EROFS, "a rekey needs a writable container");
	pthread_mutex_lock(&writable_lock);
	if (!disk_writable && vc_disk_set_writable(disk, err) == 0)
		disk_writable = true;
	pthread_mutex_unlock(&writable_lock);
	return disk_writable ? 0 : err->code ? err->code : -EIO;
}

/* Called with rekey_lock held. */
static int start_online_rekey(struct vc_error *err)
{
	int r;

	if (rekey_state == VC_CTL_RUNNING)
		return 0;
	r = ensure_writable(err);
	if (r < 0)
		return r;
	if (rekey_joinable) {
		pthread_join(rekey_thread, NULL);
		rekey_joinable = false;
	}
	rekey_state = VC_CTL_RUNNING;
	rekey_error[0] = '\0';
	if (pthread_create(&rekey_thread, NULL, rekey_main, NULL) != 0) {
		rekey_state = VC_CTL_FAILED;
		return vc_error_set(err, -EAGAIN, "cannot start the rekey thread");
	}
	rekey_joinable = true;
	return 0;
}

static void stop_online_rekey(void)
{
	/* Stop between two steps: the next start resumes. */
	rekey_stop = true;
	if (rekey_joinable)
		pthread_join(rekey_thread, NULL);
	rekey_joinable = false;
}

/* ---- control socket ------------------------------------------------------- */

/* control=PATH: a Unix socket (mode 0600) on which the host agent asks
 * "status" and "rekey-deep" (lib/vc_ctl.h). It exists once the disk is
 * open, so its appearance also tells the agent the server is ready. */
static int control_fd = -1;
static int control_stop[2] = { -1, -1 };
static pthread_t control_thread;
static bool control_running;

/* Shallow rekey while serving: the data key rewrapped under a new KEK
 * (one header update; done already if the disk names that KEK). */
static int online_shallow(const struct vc_ctl_shallow *sh, struct vc_error *err)
{
	struct vc_secret *k = NULL;
	struct vc_disk_info in;
	int r;

	pthread_mutex_lock(&rekey_lock);
	if (rekey_state == VC_CTL_RUNNING) {
		r = vc_error_set(err, -EBUSY, "a deep rekey is running: a shallow one waits for it");
	} else {
		r = ensure_writable(err);
		vc_disk_get_info(disk, &in);
		if (r == 0 && (strcmp(in.slot[0].provider, sh->provider) ||
			       strcmp(in.slot[0].key_id, sh->key_id))) {
			r = vc_secret_from_bytes(sh->kek, sizeof sh->kek, &k, err);
			if (r == 0)
				r = vc_disk_rekey_shallow(disk, k, sh->provider, sh->key_id, err);
			vc_secret_free(k);
		}
	}
	pthread_mutex_unlock(&rekey_lock);
	if (r == 0)
		nbdkit_debug("vmcrypt: data key rewrapped under key %s of %s", sh->key_id,
			     sh->provider);
	return r;
}

static void control_status(struct vc_ctl_status *st)
{
	struct vc_disk_info in;

	vc_disk_get_info(disk, &in);
	memset(st, 0, sizeof *st);
	pthread_mutex_lock(&rekey_lock);
	st->state = rekey_state;
	snprintf(st->error, sizeof st->error, "%s", rekey_error);
	pthread_mutex_unlock(&rekey_lock);
	st->total = in.virtual_size / in.sector_size;
	st->progress = in.rekey_active ? in.rekey_progress : st->state == VC_CTL_DONE ? st->total : 0;
	if (st->progress > st->total)
		st->progress = st->total;
	st->generation = in.slot[0].generation;
}

static void control_one(int fd)
{
	char line[VC_CTL_LINE_MAX], reply[VC_CTL_LINE_MAX + 16];
	struct vc_error err = { 0 };
	struct vc_ctl_status st;
	enum vc_ctl_cmd cmd;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0, len;
	int r = 0;

	/* One short line; a client that says nothing is dropped. */
	while (got < sizeof line && (got == 0 || line[got - 1] != '\n')) {
		ssize_t n;

		if (poll(&pfd, 1, 5000) <= 0)
			return;
		n = recv(fd, line + got, sizeof line - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
	}
	if (vc_ctl_parse_cmd(line, got, &cmd) < 0) {
		len = (size_t)snprintf(reply, sizeof reply, "error unknown command\n");
	} else {
		if (cmd == VC_CTL_REKEY_DEEP) {
			pthread_mutex_lock(&rekey_lock);
			r = start_online_rekey(&err);
			pthread_mutex_unlock(&rekey_lock);
		} else if (cmd == VC_CTL_REKEY_SHALLOW) {
			struct vc_ctl_shallow sh;

			r = vc_ctl_parse_shallow(line, got, &sh);
			if (r == 0)
				r = online_shallow(&sh, &err);
			else
				vc_error_set(&err, r, "malformed rekey-shallow");
			vc_wipe(&sh, sizeof sh);
		}
		if (r < 0) {
			len = (size_t)snprintf(reply, sizeof reply, "error %s\n", vc_error_msg(&err));
		} else {
			control_status(&st);
			len = vc_ctl_format_status(&st, reply);
		}
	}
	(void)send(fd, reply, len, MSG_NOSIGNAL);
	vc_wipe(line, sizeof line);     /* a shallow rekey's key */
}

static void *control_main(void *arg)
{
	struct pollfd pfd[2] = { { .fd = control_fd, .events = POLLIN },
				 { .fd = control_stop[0], .events = POLLIN } };

	(void)arg;
	for (;;) {
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		fd = accept4(control_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors, say: do not spin on it. */
			const struct timespec ts = { 0, 10 * 1000 * 1000 };

			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				nanosleep(&ts, NULL);
			continue;
		}
		control_one(fd);
		close(fd);
	}
	return NULL;
}

static int start_control(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;

	if (strlen(control_path) >= sizeof sa.sun_path) {
		nbdkit_error("vmcrypt: control=%s: path too long", control_path);
		return -1;
	}
	memcpy(sa.sun_path, control_path, strlen(control_path) + 1);
	control_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (control_fd < 0 || pipe2(control_stop, O_CLOEXEC) < 0) {
		nbdkit_error("vmcrypt: control socket: %m");
		return -1;
	}
	(void)unlink(control_path);
	old = umask(077);
	if (bind(control_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(control_fd, 8) < 0) {
		umask(old);
		nbdkit_error("vmcrypt: control=%s: %m", control_path);
		return -1;
	}
	umask(old);
	if (pthread_create(&control_thread, NULL, control_main, NULL) != 0) {
		nbdkit_error("vmcrypt: cannot start the control thread");
		return -1;
	}
	control_running = true;
	return 0;
}

static void stop_control(void)
{
	if (control_running) {
		(void)!write(control_stop[1], "x", 1);
		pthread_join(control_thread, NULL);
		control_running = false;
	}
	if (control_fd >= 0) {
		close(control_fd);
		(void)unlink(control_path);
	}
	if (control_stop[0] >= 0) {
		close(control_stop[0]);
		close(control_stop[1]);
	}
	control_fd = control_stop[0] = control_stop[1] = -1;
}

/* ---- start-up: open and check the disk before serving anyone ------------ */

static int vmcrypt_after_fork(nbdkit_backend *backend)
{
	struct vc_error err = { 0 };
	int r;

	/* nbdkit may have forked into the background since the keys were
	 * read: locks are not inherited, so lock this process again. */
	if (vc_secmem_harden_process(&err) < 0) {
		nbdkit_error("vmcrypt: %s", vc_error_msg(&err));
		return -1;
	}
	vc_error_clear(&err);
	plugin_rdonly = false;
	shared_next = nbdkit_next_context_open(backend, 0, "", 1);
	if (!shared_next) {
		/* A container we may not write (file permissions). */
		plugin_rdonly = true;
		shared_next = nbdkit_next_context_open(backend, 1, "", 1);
	}
	if (!shared_next) {
		nbdkit_error("vmcrypt: cannot open the underlying plugin");
		return -1;
	}
	if (shared_next->prepare(shared_next) == -1) {
		nbdkit_error("vmcrypt: cannot prepare the underlying plugin");
		return -1;
	}
	/* nbdkit requires each capability to be queried before use. */
	if (shared_next->can_write(shared_next) != 1)
		plugin_rdonly = true;
	(void)shared_next->can_flush(shared_next);
	(void)shared_next->can_zero(shared_next);
	(void)shared_next->can_trim(shared_next);
	(void)shared_next->can_fua(shared_next);
	(void)shared_next->can_extents(shared_next);
	(void)shared_next->can_fast_zero(shared_next);

	shared_io.opaque = shared_next;
	r = vc_disk_open(&shared_io, kek, new_kek, VC_DISK_RDONLY, &disk, &err);
	vc_secret_free(kek);
	vc_secret_free(new_kek);
	kek = new_kek = NULL;
	if (r < 0) {
		nbdkit_error("vmcrypt: %s", vc_error_msg(&err));
		return -1;
	}
	nbdkit_debug("vmcrypt: disk open, %" PRIu64 " bytes, %u-byte sectors%s",
		     vc_disk_size(disk), vc_disk_sector_size(disk),
		     plugin_rdonly ? ", read-only container" : "");
	if (online_rekey) {
		pthread_mutex_lock(&rekey_lock);
		r = start_online_rekey(&err);
		pthread_mutex_unlock(&rekey_lock);
		if (r < 0) {
			nbdkit_error("vmcrypt: %s", vc_error_msg(&err));
			return -1;
		}
	}
	return control_path ? start_control() : 0;
}

static void vmcrypt_cleanup(nbdkit_backend *backend)
{
	(void)backend;
	stop_control();
	stop_online_rekey();
	vc_disk_close(disk);
	disk = NULL;
	if (shared_next) {
		shared_next->finalize(shared_next);
		nbdkit_next_context_close(shared_next);
		shared_next = NULL;
	}
}

/* ---- per connection ------------------------------------------------------- */

static void *vmcrypt_open(nbdkit_next_open *next, nbdkit_context *context,
			  int readonly, const char *exportname, int is_tls)
{
	struct vc_error err = { 0 };
	int r = 0;

	(void)is_tls;
	if (next(context, readonly, exportname) == -1)
		return NULL;
	if (readonly || plugin_rdonly)
		return NBDKIT_HANDLE_NOT_NEEDED;
	pthread_mutex_lock(&writable_lock);
	if (!disk_writable) {
		r = vc_disk_set_writable(disk, &err);
		disk_writable = r == 0;
	}
	pthread_mutex_unlock(&writable_lock);
	if (r < 0) {
		nbdkit_error("vmcrypt: %s", vc_error_msg(&err));
		return NULL;
	}
	return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t vmcrypt_get_size(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	return (int64_t)vc_disk_size(disk);
}

static int vmcrypt_block_size(nbdkit_next *next, void *handle, uint32_t *minimum,
			      uint32_t *preferred, uint32_t *maximum)
{
	(void)next;
	(void)handle;
	*minimum = 1;
	*preferred = vc_disk_sector_size(disk) > 4096 ? vc_disk_sector_size(disk) : 4096;
	*maximum = 0xffffffff;
	return 0;
}

static int vmcrypt_can_write(nbdkit_next *next, void *handle)
{
	(void)handle;
	if (plugin_rdonly)
		return 0;
	return next->can_write(next);
}

static int vmcrypt_can_flush(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	return 1;
}

static int vmcrypt_can_trim(nbdkit_next *next, void *handle)
{
	return vmcrypt_can_write(next, handle);
}

static int vmcrypt_can_zero(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	return NBDKIT_ZERO_NATIVE;
}

static int vmcrypt_can_fast_zero(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	return 0;
}

static int vmcrypt_can_fua(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	return NBDKIT_FUA_NATIVE;
}

static int vmcrypt_can_extents(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	return shared_next->can_extents(shared_next);
}

static int vmcrypt_can_multi_conn(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	/* One disk object and one plugin context serve every connection,
	 * with no cache: a flush on any connection covers all writes. */
	return 1;
}

static int vmcrypt_can_cache(nbdkit_next *next, void *handle)
{
	(void)next;
	(void)handle;
	return NBDKIT_CACHE_NONE;
}

static int fail(const struct vc_error *err, int *errp)
{
	nbdkit_error("vmcrypt: %s", vc_error_msg(err));
	switch (-err->code) {
	case ERANGE:
		*errp = ERANGE;
		break;
	case EROFS:
		*errp = EROFS;
		break;
	case ENOMEM:
		*errp = ENOMEM;
		break;
	case ENOSPC:
		*errp = ENOSPC;
		break;
	default:
		*errp = EIO;
	}
	return -1;
}

static int vmcrypt_pread(nbdkit_next *next, void *handle, void *buf,
			 uint32_t count, uint64_t offset, uint32_t flags, int *errp)
{
	struct vc_error err = { 0 };

	int r;

	(void)next;
	(void)handle;
	(void)flags;
	io_begin();
	r = vc_disk_read(disk, buf, count, offset, &err);
	io_end();
	return r < 0 ? fail(&err, errp) : 0;
}

static int vmcrypt_pwrite(nbdkit_next *next, void *handle, const void *buf,
			  uint32_t count, uint64_t offset, uint32_t flags, int *errp)
{
	struct vc_error err = { 0 };

	int r;

	(void)next;
	(void)handle;
	io_begin();
	r = vc_disk_write(disk, buf, count, offset, &err);
	if (r == 0 && (flags & NBDKIT_FLAG_FUA))
		r = vc_disk_flush(disk, &err);
	io_end();
	return r < 0 ? fail(&err, errp) : 0;
}

static int vmcrypt_flush(nbdkit_next *next, void *handle, uint32_t flags,
			 int *errp)
{
	struct vc_error err = { 0 };

	(void)next;
	(void)handle;
	(void)flags;
	if (vc_disk_flush(disk, &err) < 0)
		return fail(&err, errp);
	return 0;
}

static int zero_range(uint32_t count, uint64_t offset, uint32_t flags, int *errp)
{
	struct vc_error err = { 0 };
	int r;

	io_begin();
	r = vc_disk_zero(disk, offset, count, &err);
	if (r == 0 && (flags & NBDKIT_FLAG_FUA))
		r = vc_disk_flush(disk, &err);
	io_end();
	return r < 0 ? fail(&err, errp) : 0;
}

static int vmcrypt_trim(nbdkit_next *next, void *handle, uint32_t count,
			uint64_t offset, uint32_t flags, int *errp)
{
	(void)next;
	(void)handle;
	/* Trimmed ranges read back as zeros: a hole in this format. */
	return zero_range(count, offset, flags, errp);
}

static int vmcrypt_zero(nbdkit_next *next, void *handle, uint32_t count,
			uint64_t offset, uint32_t flags, int *errp)
{
	(void)next;
	(void)handle;
	if (flags & NBDKIT_FLAG_FAST_ZERO) {
		*errp = ENOTSUP;
		return -1;
	}
	return zero_range(count, offset, flags, errp);
}

/* Holes of the container are holes of the disk: translate the plugin's
 * extents from container to disk offsets. Allocated ranges may still hold
 * zero sectors; extents are hints, so they are reported as data. */
static int vmcrypt_extents(nbdkit_next *next, void *handle, uint32_t count,
			   uint64_t offset, uint32_t flags,
			   struct nbdkit_extents *extents, int *errp)
{
	struct vc_disk_info info;
	struct nbdkit_extents *inner;
	uint64_t base, end;

	(void)next;
	(void)handle;
	vc_disk_get_info(disk, &info);
	base = info.payload_offset;
	end = base + info.virtual_size;
	inner = nbdkit_extents_new(base + offset, end);
	if (!inner) {
		*errp = errno ? errno : ENOMEM;
		return -1;
	}
	if (shared_next->extents(shared_next, count, base + offset, flags, inner, errp) == -1) {
		nbdkit_extents_free(inner);
		return -1;
	}
	for (size_t i = 0; i < nbdkit_extents_count(inner); i++) {
		struct nbdkit_extent e = nbdkit_get_extent(inner, i);

		if (nbdkit_add_extent(extents, e.offset - base, e.length, e.type) == -1) {
			*errp = errno ? errno : EIO;
			nbdkit_extents_free(inner);
			return -1;
		}
	}
	nbdkit_extents_free(inner);
	return 0;
}

static struct nbdkit_filter filter = {
	.name = "vmcrypt",
	.longname = "nbdkit vmcrypt filter",
	.description = "serve the plaintext of a vmcrypt encrypted disk",
	.unload = vmcrypt_unload,
	.config = vmcrypt_config,
	.config_complete = vmcrypt_config_complete,
	.config_help = vmcrypt_config_help,
	.thread_model = vmcrypt_thread_model,
	.after_fork = vmcrypt_after_fork,
	.cleanup = vmcrypt_cleanup,
	.open = vmcrypt_open,
	.get_size = vmcrypt_get_size,
	.block_size = vmcrypt_block_size,
	.can_write = vmcrypt_can_write,
	.can_flush = vmcrypt_can_flush,
	.can_trim = vmcrypt_can_trim,
	.can_zero = vmcrypt_can_zero,
	.can_fast_zero = vmcrypt_can_fast_zero,
	.can_fua = vmcrypt_can_fua,
	.can_extents = vmcrypt_can_extents,
	.can_multi_conn = vmcrypt_can_multi_conn,
	.can_cache = vmcrypt_can_cache,
	.pread = vmcrypt_pread,
	.pwrite = vmcrypt_pwrite,
	.flush = vmcrypt_flush,
	.trim = vmcrypt_trim,
	.zero = vmcrypt_zero,
	.extents = vmcrypt_extents,
};

/* The entry point NBDKIT_REGISTER_FILTER defines (no header declares it). */
NBDKIT_DLL_PUBLIC struct nbdkit_filter *filter_init(void);

NBDKIT_REGISTER_FILTER(filter)
