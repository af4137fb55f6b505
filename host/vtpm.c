/* SPDX-License-Identifier: Apache-2.0 */
/* The vTPM of an encrypted VM: swtpm's TPM 2.0 state, sealed under the VM
 * key as the VM file vtpm.vcf (FORMAT.md part 2, purpose "vtpm"). As in
 * vSphere, only an encrypted VM can have one and it cannot be decrypted
 * while it does. While the VM is on, the state is unsealed into a private
 * tmpfs directory (memory, like the guest's own) where swtpm serves it on
 * two Unix sockets of the run directory: control (for QEMU) and data (for
 * TPM clients); powering off seals it back and wipes the tmpfs copy. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostd.h"
#include "vc_crypto.h"
#include "vc_log.h"
#include "vc_vmfile.h"
#include "vm.h"

#define VTPM_FILE "vtpm.vcf"
#define VTPM_PURPOSE "vtpm"
#define STATE_FILE "tpm2-00.permall"
#define TMPFS "/dev/shm"
#define SETUP_TIMEOUT_MS 60000

bool vtpm_refuse_decrypt(struct hreq *r, const struct vm *v)
{
	if (!v->vtpm[0])
		return false;
	reply_error(r, 409, "conflict", "VM %s has a vTPM: its state is never stored in the "
		    "clear, so the VM cannot be decrypted", v->uuid);
	return true;
}

/* Overwrite every file of dir with zeros, remove them and dir. */
static void wipe_dir(const char *dir)
{
	static const uint8_t zero[4096];
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		struct stat sb;
		int fd;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
			for (off_t off = 0; off < sb.st_size; off += (off_t)sizeof zero)
				if (pwrite(fd, zero, sizeof zero, off) < 0)
					break;
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* Run a command to its end (swtpm_setup); its output into a memory file
 * whose last line explains a failure. */
static int run_tool(const char *const *argv, struct vc_error *err)
{
	int out = memfd_create("vmcrypt-tool", MFD_CLOEXEC), st = 0, w;
	long long deadline = now_ms() + SETUP_TIMEOUT_MS;
	pid_t pid;

	if (out < 0)
		return vc_error_errno(err, errno, "memfd_create");
	pid = fork();
	if (pid < 0) {
		close(out);
		return vc_error_errno(err, errno, "fork");
	}
	if (pid == 0)
		child_exec(argv, out, -1);
	w = child_wait(pid, deadline, &st);
	if (w < 0) {
		close(out);
		return vc_error_set(err, w, "%s: %s", argv[0],
				    w == -ETIMEDOUT ? "no result within a minute (killed)" : strerror(-w));
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char buf[1024], *line;
		ssize_t n = pread(out, buf, sizeof buf - 1, 0);

		buf[n > 0 ? n : 0] = '\0';
		while (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
		line = strrchr(buf, '\n');
		close(out);
		return vc_error_set(err, -EIO, "%s failed (%s %d): %.200s", argv[0],
				    WIFEXITED(st) ? "exit status" : "signal",
				    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
				    line ? line + 1 : buf[0] ? buf : "no message");
	}
	close(out);
	return 0;
}

/* Seal dir/tpm2-00.permall as v's vtpm.vcf under its VM key. */
static int seal_state(struct hostd *h, struct vm *v, const char *dir, struct vc_error *err)
{
	struct vc_secret *vmkey = NULL;
	char path[PATH_MAX];
	int in, ret = vm_key_get(h, v, &vmkey, err);

	snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
	in = ret == 0 ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (ret == 0 && in < 0)
		ret = vc_error_errno(err, errno, "vTPM state %s", path);
	if (ret == 0)
		ret = vm_file_seal(h, v, vmkey, VTPM_PURPOSE, in, VTPM_FILE, err);
	if (in >= 0)
		close(in);
	vc_secret_free(vmkey);
	return ret;
}

int vtpm_create(struct hostd *h, struct vm *v, struct vc_error *err)
{
	char dir[] = TMPFS "/vmcrypt-vtpm-setup-XXXXXX", state[80];
	const char *argv[] = { "swtpm_setup", "--tpm2", "--tpm-state", dir, "--createek",
			       "--decryption", "--overwrite", NULL };
	int ret;

	if (!mkdtemp(dir))
		return vc_error_errno(err, errno, "cannot create a directory in %s", TMPFS);
	snprintf(state, sizeof state, "dir://%s", dir);
	argv[3] = state;
	ret = run_tool(argv, err);
	if (ret == 0)
		ret = seal_state(h, v, dir, err);
	wipe_dir(dir);
	if (ret == 0)
		snprintf(v->vtpm, sizeof v->vtpm, VTPM_FILE);
	return ret;
}

int vtpm_copy(struct hostd *h, const struct vm *src, struct vm *dst, struct vc_error *err)
{
	struct vc_secret *dkey = NULL;
	/* The plaintext goes through memory only. */
	int mem = memfd_create("vmcrypt-vtpm", MFD_CLOEXEC), ret;

	ret = mem < 0 ? vc_error_errno(err, errno, "memfd_create")
		      : vm_file_unseal(h, src, VTPM_PURPOSE, src->vtpm, mem, err);
	if (ret == 0 && lseek(mem, 0, SEEK_SET) < 0)
		ret = vc_error_errno(err, errno, "vTPM copy");
	if (ret == 0)
		ret = vm_key_get(h, dst, &dkey, err);
	if (ret == 0)
		ret = vm_file_seal(h, dst, dkey, VTPM_PURPOSE, mem, VTPM_FILE, err);
	if (mem >= 0)
		close(mem);
	vc_secret_free(dkey);
	if (ret == 0)
		snprintf(dst->vtpm, sizeof dst->vtpm, VTPM_FILE);
	return ret;
}

/* The tmpfs directory of a running vTPM (the host id keeps two agents on
 * one machine apart). */
static void state_dir(struct hostd *h, const struct vm *v, char *out, size_t len)
{
	snprintf(out, len, TMPFS "/vmcrypt-vtpm-%.8s-%s", h->host_id, v->uuid);
}

static bool tpm_ready(void *arg)
{
	const struct vm_srv *s = arg;
	struct stat sb;

	return stat(s->sock, &sb) == 0 && stat(s->ctl, &sb) == 0;
}

bool vtpm_alive(struct vm *v)
{
	return srv_alive(&v->tpm);
}

int vtpm_start(struct hostd *h, struct vm *v, struct vc_error *err)
{
	struct vm_srv *s = &v->tpm;
	char dir[PATH_MAX], state[PATH_MAX + 16], pidf[PATH_MAX], logf[PATH_MAX];
	char st_arg[PATH_MAX + 16], srv_arg[PATH_MAX + 32], ctl_arg[PATH_MAX + 32];
	char pid_arg[PATH_MAX + 16], log_arg[PATH_MAX + 16];
	const char *argv[] = { "swtpm", "socket", "--tpm2", "--tpmstate", st_arg, "--server",
			       srv_arg, "--ctrl", ctl_arg, "--pid", pid_arg, "--log", log_arg,
			       "--flags", "not-need-init,startup-clear", "--daemon", NULL };
	struct stat sb;
	int ret;

	ret = srv_paths(h, v, VM_TPM, "sock", true, s, pidf, logf, err);
	if (ret < 0)
		return ret;
	state_dir(h, v, dir, sizeof dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "cannot create %s", dir);
	if (lstat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077))
		return vc_error_set(err, -EPERM, "%s is not a private directory of this user", dir);
	snprintf(state, sizeof state, "%s/%s", dir, STATE_FILE);
	/* A state left by a swtpm that died while the VM was on is newer
	 * than the sealed one: keep it. */
	if (access(state, F_OK) < 0) {
		int out = open(state, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

		ret = out < 0 ? vc_error_errno(err, errno, "cannot write %s", state)
			      : vm_file_unseal(h, v, VTPM_PURPOSE, v->vtpm, out, err);
		if (out >= 0)
			close(out);
		if (ret < 0) {
			wipe_dir(dir);
			return ret;
		}
	}
	remove_run_files(h, v, VM_TPM);
	snprintf(st_arg, sizeof st_arg, "dir=%s", dir);
	snprintf(srv_arg, sizeof srv_arg, "type=unixio,path=%s", s->sock);
	snprintf(ctl_arg, sizeof ctl_arg, "type=unixio,path=%s", s->ctl);
	snprintf(pid_arg, sizeof pid_arg, "file=%s", pidf);
	snprintf(log_arg, sizeof log_arg, "file=%s", logf);
	ret = daemon_start(argv, NULL, pidf, logf, tpm_ready, s, s, err);
	if (ret == 0)
		vc_log(VC_LOG_INFO, "VM %s: vTPM served on %s (pid %ld)", v->uuid, s->sock,
		       (long)s->pid);
	return ret;
}

int vtpm_stop(struct hostd *h, struct vm *v, struct vc_error *err)
{
	struct vc_secret *vmkey = NULL;
	char dir[PATH_MAX], state[PATH_MAX + 16];
	int ret;

	if (!v->vtpm[0])
		return 0;
	/* Without the VM key the state could not be sealed back: keep it
	 * running (the manager brings the key within seconds). */
	ret = vm_key_get(h, v, &vmkey, err);
	vc_secret_free(vmkey);
	if (ret < 0)
		return ret;
	daemon_stop(&v->tpm, "swtpm");
	state_dir(h, v, dir, sizeof dir);
	snprintf(state, sizeof state, "%s/%s", dir, STATE_FILE);
	if (access(state, F_OK) == 0) {
		ret = seal_state(h, v, dir, err);
		if (ret < 0)
			return ret;      /* the tmpfs copy stays: the next power-on uses it */
	}
	wipe_dir(dir);
	remove_run_files(h, v, VM_TPM);
	memset(&v->tpm, 0, sizeof v->tpm);
	return 0;
}

bool vtpm_adopt(struct hostd *h, struct vm *v)
{
	struct vm_srv *s = &v->tpm;
	char pidf[PATH_MAX];

	return v->vtpm[0] && run_file(h, v, VM_TPM, "pid", pidf, sizeof pidf, NULL) == 0 &&
	       run_file(h, v, VM_TPM, "sock", s->sock, sizeof s->sock, NULL) == 0 &&
	       run_file(h, v, VM_TPM, "ctl", s->ctl, sizeof s->ctl, NULL) == 0 &&
	       daemon_adopt(s, pidf, "swtpm", tpm_ready, s);
}
