/* SPDX-License-Identifier: Apache-2.0 */
/* Tasks: long operations run by a few worker threads (those on one VM one
 * at a time, in order), their state, progress and result kept in the
 * store so that any client can follow them. */
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

/* How often the reconciler brings hosts their missing keys. */
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

/* The oldest queued task whose VM no worker is busy with, unlinked. */
static struct mgr_task *take_runnable(struct mgr *m)
{
	for (struct mgr_task **pp = &m->queue; *pp; pp = &(*pp)->next) {
		struct mgr_task *t = *pp;
		bool taken = false;

		for (size_t i = 0; t->obj[0] && i < m->nworkers && !taken; i++)
			taken = m->busy[i] && !strcmp(m->busy[i], t->obj);
		if (!taken) {
			*pp = t->next;
			return t;
		}
	}
	return NULL;
}

struct worker_arg {
	struct mgr *m;
	size_t index;
};

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct mgr *m = wa->m;
	size_t me = wa->index;

	free(wa);
	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct mgr_task *t;

		while (!(t = take_runnable(m)) && !(m->stopping && !m->queue))
			pthread_cond_wait(&m->task_cond, &m->lock);
		if (!t)
			break;
		m->busy[me] = t->obj;
		pthread_mutex_unlock(&m->lock);
		t->run(m, t);
		pthread_mutex_lock(&m->lock);
		m->busy[me] = NULL;
		/* A task of the same VM may be waiting for this one. */
		pthread_cond_broadcast(&m->task_cond);
		pthread_mutex_unlock(&m->lock);
		task_free(m, t);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Once a second: give hosts the keys of their locked VMs (after an agent
 * restart its key cache is empty), however long the tasks run. */
static void *reconciler(void *arg)
{
	struct mgr *m = arg;

	pthread_mutex_lock(&m->lock);
	while (!m->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)RECONCILE_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (pthread_cond_timedwait(&m->recon_cond, &m->lock, &ts) != 0 && !m->stopping) {
			pthread_mutex_unlock(&m->lock);
			reconcile_hosts(m);
			pthread_mutex_lock(&m->lock);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int tasks_start(struct mgr *m, struct vc_error *err)
{
	int ret;

	ret = pthread_cond_init(&m->task_cond, NULL);
	if (ret == 0)
		ret = pthread_cond_init(&m->recon_cond, NULL);
	if (ret)
		return vc_error_set(err, -ret, "cannot create the task queue");
	for (size_t i = 0; i < TASK_WORKERS; i++) {
		struct worker_arg *wa = malloc(sizeof *wa);

		if (!wa)
			return vc_error_set(err, -ENOMEM, "out of memory");
		*wa = (struct worker_arg){ .m = m, .index = i };
		ret = pthread_create(&m->workers[i], NULL, worker, wa);
		if (ret) {
			free(wa);
			return vc_error_set(err, -ret, "cannot start the task workers");
		}
		m->nworkers++;
	}
	ret = pthread_create(&m->reconciler, NULL, reconciler, m);
	if (ret)
		return vc_error_set(err, -ret, "cannot start the key reconciler");
	m->reconciler_started = true;
	return 0;
}

/* Finish what is queued, then stop. Called without m->lock. */
void tasks_stop(struct mgr *m)
{
	if (!m->nworkers && !m->reconciler_started)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_broadcast(&m->task_cond);
	pthread_cond_broadcast(&m->recon_cond);
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < m->nworkers; i++)
		pthread_join(m->workers[i], NULL);
	m->nworkers = 0;
	if (m->reconciler_started)
		pthread_join(m->reconciler, NULL);
	m->reconciler_started = false;
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
	/* Tasks on one VM (its inventory id) run one at a time, in order. */
	snprintf(t->obj, sizeof t->obj, "%s",
		 json_string_value(json_object_get(arg, "vm")) ? json_string_value(
			 json_object_get(arg, "vm")) : "");
	if (prov)
		prov->refs++;
	t->prov = prov;
	for (tail = &m->queue; *tail; tail = &(*tail)->next)
		;
	*tail = t;
	pthread_cond_broadcast(&m->task_cond);
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
