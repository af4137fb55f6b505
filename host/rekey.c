/* SPDX-License-Identifier: Apache-2.0 */
/* Deep rekey (Recrypt, deep) of one disk: a new DEK under the same KEK and
 * every sector re-encrypted through the disk's journal, so a rekey cut
 * short, even by kill -9, resumes where it stopped when asked again. A
 * powered-on VM's disk is rekeyed by its server's I/O filter (power.c);
 * a powered-off one by a thread of the agent, so that a large disk does
 * not hold the agent's one request loop. Either way the call answers at
 * once and GET .../rekey follows the rekey to its end. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostd.h"
#include "vc_disk.h"
#include "vc_fileio.h"
#include "vc_log.h"
#include "vm.h"

struct rekey_job {
	pthread_t thread;
	bool joined;
	size_t disk;
	char uuid[VC_UUID_STR_LEN];
	char path[PATH_MAX];
	struct vc_secret *kek;        /* a copy: the cache may drop its own */
	long crash_at;
	volatile bool stop;
	pthread_mutex_t lock;         /* st, resumed */
	struct vc_ctl_status st;
	bool resumed;
};

static void job_set(struct rekey_job *j, enum vc_ctl_state state, const struct vc_disk_info *in,
		    const char *error)
{
	pthread_mutex_lock(&j->lock);
	j->st.state = state;
	if (in) {
		j->st.total = in->virtual_size / in->sector_size;
		j->st.progress = in->rekey_active ? in->rekey_progress : 0;
		j->st.generation = in->slot[0].generation;
	}
	if (error)
		snprintf(j->st.error, sizeof j->st.error, "%s", error);
	if (state == VC_CTL_DONE)
		j->st.progress = j->st.total;
	pthread_mutex_unlock(&j->lock);
}

/* Tests only (as the filter's): hold between two steps while this file
 * exists, so that a test can act at a known point. */
static void test_hold(struct rekey_job *j)
{
	const char *hold = getenv("VMCRYPT_TEST_REKEY_HOLD");

	while (hold && *hold && !j->stop && access(hold, F_OK) == 0)
		pause_ms(10);
}

static void *job_main(void *arg)
{
	struct rekey_job *j = arg;
	struct vc_error err = { 0 };
	struct vc_file f = { .name = j->path, .crash_at = j->crash_at };
	struct vc_disk_io io;
	struct vc_disk_info in;
	struct vc_disk *d = NULL;
	bool done = false;
	int ret = 0;

	f.fd = open(j->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (f.fd < 0)
		ret = vc_error_errno(&err, errno, "cannot open %s", j->path);
	vc_file_io(&f, &io);
	/* Opening writable finishes an interrupted step from the journal. */
	if (ret == 0)
		ret = vc_disk_open(&io, j->kek, NULL, 0, &d, &err);
	if (ret == 0) {
		vc_disk_get_info(d, &in);
		pthread_mutex_lock(&j->lock);
		j->resumed = in.rekey_active;
		pthread_mutex_unlock(&j->lock);
		if (!in.rekey_active)
			ret = vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err);
	}
	for (int steps = 0; ret == 0 && !done && !j->stop; steps++) {
		if (steps > 0)
			test_hold(j);
		ret = vc_disk_rekey_deep_step(d, &done, &err);
		vc_disk_get_info(d, &in);
		job_set(j, VC_CTL_RUNNING, &in, NULL);
	}
	if (d)
		vc_disk_close(d);
	if (f.fd >= 0)
		close(f.fd);
	vc_secret_free(j->kek);
	j->kek = NULL;
	if (ret < 0) {
		vc_log(VC_LOG_WARN, "VM %s: deep rekey of disk %zu failed: %s", j->uuid, j->disk,
		       vc_error_msg(&err));
		job_set(j, VC_CTL_FAILED, NULL, vc_error_msg(&err));
	} else if (done) {
		vc_log(VC_LOG_INFO, "VM %s: disk %zu deep-rekeyed (new data key, generation %llu)%s",
		       j->uuid, j->disk, (unsigned long long)j->st.generation,
		       j->resumed ? ", resumed" : "");
		job_set(j, VC_CTL_DONE, NULL, NULL);
	} else {
		job_set(j, VC_CTL_IDLE, NULL, NULL);   /* stopped: resumable */
	}
	return NULL;
}

static enum vc_ctl_state job_state(struct rekey_job *j)
{
	enum vc_ctl_state s;

	pthread_mutex_lock(&j->lock);
	s = j->st.state;
	pthread_mutex_unlock(&j->lock);
	return s;
}

/* Join a thread that finished; its result stays for GET .../rekey. */
static void job_reap(struct vm *v)
{
	if (v->job && !v->job->joined && job_state(v->job) != VC_CTL_RUNNING) {
		pthread_join(v->job->thread, NULL);
		v->job->joined = true;
	}
}

bool vm_busy(struct hreq *r, struct vm *v)
{
	job_reap(v);
	if (!v->job || v->job->joined)
		return false;
	reply_error(r, 409, "busy", "VM %s is busy: a deep rekey of its disk %zu is running",
		    v->uuid, v->job->disk);
	return true;
}

void rekey_job_end(struct vm *v)
{
	if (!v->job)
		return;
	if (!v->job->joined) {
		v->job->stop = true;
		pthread_join(v->job->thread, NULL);
	}
	vc_secret_free(v->job->kek);
	pthread_mutex_destroy(&v->job->lock);
	free(v->job);
	v->job = NULL;
}

/* The VM and disk a rekey call names; NULL after a reply. */
static struct vm *rekey_target(struct hreq *r, size_t *n)
{
	struct vm *v = path_vm_find(r);
	size_t k;

	if (!v || !path_disk(r, v, &k))
		return NULL;
	if (!v->disks[k].encrypted) {
		reply_error(r, 409, "conflict", "disk %zu of VM %s is not encrypted", k, v->uuid);
		return NULL;
	}
	*n = k;
	job_reap(v);
	return v;
}

static json_t *job_json(struct vm *v)
{
	json_t *j;

	pthread_mutex_lock(&v->job->lock);
	j = rekey_status_json(&v->job->st);
	json_object_set_new(j, "resumed", json_boolean(v->job->resumed));
	pthread_mutex_unlock(&v->job->lock);
	return j;
}

void h_vm_rekey_deep_disk(struct hreq *r)
{
	struct vc_error err = { 0 };
	const struct vc_secret *kek;
	struct rekey_job *j;
	struct vm *v;
	size_t n;
	json_t *out;
	int fd;

	if (!(v = rekey_target(r, &n)))
		return;
	/* In use: its server's I/O filter rekeys it while the guest writes. */
	if (v->powered) {
		power_rekey_deep(r, v, n);
		return;
	}
	if (v->job && !v->job->joined) {
		if (v->job->disk != n) {
			(void)vm_busy(r, v);
			return;
		}
		/* Asked again while it runs: follow the same rekey. */
		out = job_json(v);
	} else {
		j = calloc(1, sizeof *j);
		if (!j) {
			reply_error(r, 500, "internal", "out of memory");
			return;
		}
		j->disk = n;
		snprintf(j->uuid, sizeof j->uuid, "%s", v->uuid);
		vm_path(r->h, v, v->disks[n].file, j->path, sizeof j->path);
		/* Crash tests only (as vmcrypt disk rekey): SIGKILL at that write. */
		j->crash_at = vc_test_crash_point("VMCRYPT_TEST_CRASH_AT_WRITE");
		fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		kek = fd >= 0 ? disk_kek(r->h, fd, j->path, &err) : NULL;
		if (fd < 0)
			vc_error_errno(&err, errno, "cannot open %s", j->path);
		else
			close(fd);
		if (!kek || vc_secret_from_bytes(vc_secret_data(kek), vc_secret_len(kek), &j->kek,
						 &err) < 0) {
			reply_error(r, err.code == -ENOKEY ? 409 : 500,
				    err.code == -ENOKEY ? "key_missing" : "internal", "%s",
				    vc_error_msg(&err));
			free(j);
			return;
		}
		pthread_mutex_init(&j->lock, NULL);
		j->st.state = VC_CTL_RUNNING;
		if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
			vc_secret_free(j->kek);
			pthread_mutex_destroy(&j->lock);
			free(j);
			reply_error(r, 500, "internal", "cannot start the rekey thread");
			return;
		}
		rekey_job_end(v);        /* the previous, finished one */
		v->job = j;
		out = job_json(v);
	}
	json_object_set_new(out, "uuid", json_string(v->uuid));
	json_object_set_new(out, "disk", json_integer((json_int_t)n));
	json_object_set_new(out, "online", json_false());
	reply_json(r, 202, out);
}

/* GET /vms/{uuid}/disks/{n}/rekey */
void h_vm_rekey_status(struct hreq *r)
{
	struct vm *v;
	size_t n;

	if (!(v = rekey_target(r, &n)))
		return;
	if (v->job && v->job->disk == n)
		reply_json(r, 200, job_json(v));
	else if (v->powered)
		power_rekey_status(r, v, n);
	else
		reply_error(r, 409, "conflict", "no deep rekey of disk %zu of VM %s to follow", n,
			    v->uuid);
}
