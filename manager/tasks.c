/* SPDX-License-Identifier: Apache-2.0 */
/* Tasks: long operations run by one worker thread, their state, progress
 * and result kept in the store so that any client can follow them. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgr.h"
#include "vc_json.h"
#include "vc_log.h"
#include "vc_uuid.h"

#include <time.h>

/* How often the worker, when idle, brings hosts their missing keys. */
#define RECONCILE_MS 1000

json_t *task_json(const struct vc_store_task *t)
{
	json_t *result = t->result ? json_loads(t->result, 0, NULL) : NULL;

	return json_pack("{s:s,s:s,s:s,s:i,s:o,s:o,s:o,s:I,s:I}", "id", t->id, "kind", t->kind,
			 "state", t->state, "progress", t->progress, "result",
			 result ? result : json_null(), "error", jstr_or_null(t->error), "user",
			 jstr_or_null(t->user), "created", (json_int_t)t->created, "updated",
			 (json_int_t)t->updated);
}

/* Store a task's new state (caller holds m->lock). */
void task_set(struct mgr *m, struct mgr_task *t, const char *state, int progress,
		     const char *result, const char *error)
{
	struct vc_store_task st = { .id = t->id, .state = state, .progress = progress,
				    .result = result, .error = error, .updated = now_s() };
	struct vc_error err = { 0 };

	if (vc_store_task_update(m->st, &st, &err) < 0)
		vc_log(VC_LOG_ERROR, "task %s: %s", t->id, vc_error_msg(&err));
}

static void run_check(struct mgr *m, struct mgr_task *t)
{
	struct mgr_provider *p = t->prov;
	struct vc_kmip_health h[VC_KMIP_CLUSTER_MAX];
	size_t n, healthy = 0;
	char *text;
	json_t *res;

	pthread_mutex_lock(&m->lock);
	task_set(m, t, "running", 0, NULL, NULL);
	n = p->kp ? vc_keyprov_health(p->kp, h, VC_KMIP_CLUSTER_MAX) : 0;
	pthread_mutex_unlock(&m->lock);

	for (size_t i = 0; i < n; i++) {
		struct vc_error err = { 0 };
		/* Probes run without the lock: the API stays responsive while
		 * a dead server times out. */
		int ret = vc_keyprov_probe(p->kp, i, &err);

		healthy += ret == 0;
		pthread_mutex_lock(&m->lock);
		task_set(m, t, "running", (int)((i + 1) * 100 / n) - (i + 1 == n), NULL, NULL);
		pthread_mutex_unlock(&m->lock);
	}

	pthread_mutex_lock(&m->lock);
	res = prov_json(m, p, false);
	json_object_del(res, "default");
	text = json_dumps(res, JSON_COMPACT);
	json_decref(res);
	if (!p->kp)
		task_set(m, t, "error", 100, text, "the provider could not be opened");
	else if (healthy == 0)
		task_set(m, t, "error", 100, text, "no server of the provider is healthy");
	else
		task_set(m, t, "success", 100, text, NULL);
	ev_log(m, t->user, "provider.check", NULL, p->name, NULL, healthy ? EV_OK : EV_FAIL,
	       "checked key provider '%s': %zu of %zu healthy", p->name, healthy, n);
	pthread_mutex_unlock(&m->lock);
	vc_json_free_dump(text);
}

static void task_free(struct mgr *m, struct mgr_task *t)
{
	pthread_mutex_lock(&m->lock);
	prov_put(m, t->prov);
	pthread_mutex_unlock(&m->lock);
	json_decref(t->arg);
	free(t);
}

static void *worker(void *arg)
{
	struct mgr *m = arg;
	struct timespec last_reconcile;

	clock_gettime(CLOCK_MONOTONIC, &last_reconcile);

	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct mgr_task *t;

		while (!m->queue && !m->stopping) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)RECONCILE_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			if (pthread_cond_timedwait(&m->task_cond, &m->lock, &ts) != 0 &&
			    !m->queue && !m->stopping) {
				/* Idle: give hosts the keys of their locked VMs. */
				pthread_mutex_unlock(&m->lock);
				reconcile_hosts(m);
				clock_gettime(CLOCK_MONOTONIC, &last_reconcile);
				pthread_mutex_lock(&m->lock);
			}
		}
		if (!m->queue)
			break;
		t = m->queue;
		m->queue = t->next;
		pthread_mutex_unlock(&m->lock);
		t->run(m, t);
		task_free(m, t);
		/* A long batch of tasks must not keep restarted hosts locked. */
		{
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - last_reconcile.tv_sec >= RECONCILE_MS / 1000) {
				reconcile_hosts(m);
				last_reconcile = now;
			}
		}
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int tasks_start(struct mgr *m, struct vc_error *err)
{
	int ret;

	ret = pthread_cond_init(&m->task_cond, NULL);
	if (ret)
		return vc_error_set(err, -ret, "cannot create the task queue");
	ret = pthread_create(&m->worker, NULL, worker, m);
	if (ret)
		return vc_error_set(err, -ret, "cannot start the task worker");
	m->worker_started = true;
	return 0;
}

/* Finish what is queued, then stop. Called without m->lock. */
void tasks_stop(struct mgr *m)
{
	if (!m->worker_started)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_signal(&m->task_cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->worker, NULL);
	m->worker_started = false;
}

/* Tasks left running by a previous process end in error. */
static int mark_stale(const struct vc_store_task *t, void *ctx)
{
	struct mgr *m = ctx;

	if (!strcmp(t->state, "queued") || !strcmp(t->state, "running")) {
		struct mgr_task mt = { 0 };

		snprintf(mt.id, sizeof mt.id, "%s", t->id);
		task_set(m, &mt, "error", t->progress, NULL,
			 "the manager stopped before the task ended");
	}
	return 0;
}

int tasks_recover(struct mgr *m, struct vc_error *err)
{
	return vc_store_task_list(m->st, mark_stale, m, err);
}

int task_queue(struct mgr *m, const char *user, const char *kind,
	       void (*run)(struct mgr *m, struct mgr_task *t), json_t *arg,
	       struct mgr_provider *prov, char id[37], struct vc_error *err)
{
	struct mgr_task *t = calloc(1, sizeof *t), **tail;
	struct vc_uuid u;
	int64_t now = now_s();
	int ret;

	if (!t) {
		json_decref(arg);
		return vc_error_set(err, -ENOMEM, "out of memory");
	}
	ret = vc_uuid_generate(&u, err);
	if (ret < 0) {
		json_decref(arg);
		free(t);
		return ret;
	}
	vc_uuid_format(&u, t->id);
	snprintf(t->user, sizeof t->user, "%s", user);
	ret = vc_store_task_add(m->st, &(struct vc_store_task){
		.id = t->id, .kind = kind, .state = "queued", .user = user,
		.created = now, .updated = now }, err);
	if (ret < 0) {
		json_decref(arg);
		free(t);
		return ret;
	}
	t->run = run;
	t->arg = arg;
	if (prov)
		prov->refs++;
	t->prov = prov;
	for (tail = &m->queue; *tail; tail = &(*tail)->next)
		;
	*tail = t;
	pthread_cond_signal(&m->task_cond);
	memcpy(id, t->id, VC_UUID_STR_LEN);
	return 0;
}

int task_queue_check(struct mgr *m, const char *user, const char *provider, char id[37],
		     struct vc_error *err)
{
	struct mgr_provider *p = prov_find(m, provider);

	if (!p)
		return vc_error_set(err, -ENOENT, "no key provider '%s'", provider);
	return task_queue(m, user, "provider.check", run_check, NULL, p, id, err);
}

void task_progress(struct mgr *m, struct mgr_task *t, int pct)
{
	pthread_mutex_lock(&m->lock);
	task_set(m, t, "running", pct > 99 ? 99 : pct, NULL, NULL);
	pthread_mutex_unlock(&m->lock);
}

void task_finish(struct mgr *m, struct mgr_task *t, json_t *result, const char *error)
{
	char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;

	json_decref(result);
	pthread_mutex_lock(&m->lock);
	task_set(m, t, error ? "error" : "success", 100, text, error);
	pthread_mutex_unlock(&m->lock);
	vc_json_free_dump(text);
}
