/* One execution in the runner: its record, its events for subscribers, its watchers, cancel,
 * and how a __spawn's event lines and exit become the final record. */
#include "server/runner-job.h"

#include "core/redact.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

/* ---- small helpers ------------------------------------------------------------------------ */

uint64_t runner_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void runner_rfc3339(uint64_t ns, char *buf, size_t size)
{
	time_t s = (time_t)(ns / 1000000000ULL);
	struct tm tm;
	gmtime_r(&s, &tm);
	char day[24];
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03uZ", day, (unsigned)(ns / 1000000ULL % 1000));
}

/* Longest secrets first, so a secret that contains a shorter one is replaced whole. */
static int secret_cmp(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

char *runner_redact_str(const char *s, const char *const *secrets, size_t n)
{
	char *cur = strdup(s);
	for (size_t i = 0; cur && i < n; i++) {
		const char *sec = secrets[i];
		size_t sl = strlen(sec);
		if (sl == 0 || !strstr(cur, sec))
			continue;
		size_t count = 0;
		for (const char *p = cur; (p = strstr(p, sec)); p += sl)
			count++;
		size_t rl = strlen(REDACTED);
		size_t len = strlen(cur) - count * sl + count * rl;
		char *out = malloc(len + 1);
		if (!out) {
			free(cur);
			return NULL;
		}
		char *o = out;
		const char *p = cur;
		for (const char *q; (q = strstr(p, sec)); p = q + sl) {
			memcpy(o, p, (size_t)(q - p));
			o += q - p;
			memcpy(o, REDACTED, rl);
			o += rl;
		}
		memcpy(o, p, strlen(p) + 1);
		explicit_bzero(cur, strlen(cur));
		free(cur);
		cur = out;
	}
	return cur;
}

static bool redact_has(const char *s, const char *const *secrets, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (secrets[i][0] && strstr(s, secrets[i]))
			return true;
	return false;
}

int runner_redact_json(json_t *v, const char *const *secrets, size_t n)
{
	if (n == 0)
		return 0;
	if (json_is_string(v)) {
		if (!redact_has(json_string_value(v), secrets, n))
			return 0;
		_cleanup_free_ char *s = runner_redact_str(json_string_value(v), secrets, n);
		return s && json_string_set(v, s) == 0 ? 0 : -ENOMEM;
	}
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			if (runner_redact_json(json_array_get(v, i), secrets, n) < 0)
				return -ENOMEM;
		return 0;
	}
	if (!json_is_object(v))
		return 0;
	/* Keys too: a secret used as a metadata key must not survive either. */
	const char *key;
	json_t *val;
	void *tmp;
	json_object_foreach_safe(v, tmp, key, val)
	{
		if (runner_redact_json(val, secrets, n) < 0)
			return -ENOMEM;
		if (!redact_has(key, secrets, n))
			continue;
		_cleanup_free_ char *nk = runner_redact_str(key, secrets, n);
		if (!nk || json_object_set(v, nk, val) < 0)
			return -ENOMEM;
		json_object_del(v, key);
	}
	return 0;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

struct run_job *job_new(struct runner *r, struct run_submit *s)
{
	json_t *record = TAKE_PTR(s->record);
	json_t *request = TAKE_PTR(s->spawn_request);
	const char *id = s->id, *tenant = s->tenant;
	const char *const *secrets = s->secrets;
	size_t n_secrets = s->n_secrets;
	struct run_job *j = calloc(1, sizeof(*j));
	if (!j) {
		json_decref(record);
		json_decref(request);
		if (s->userdata_free)
			s->userdata_free(s->userdata);
		return NULL;
	}
	j->userdata = TAKE_PTR(s->userdata);
	j->userdata_free = s->userdata_free;
	j->runner = r;
	j->refs = 1;
	j->pidfd = -1;
	j->record = record;
	j->request = request;
	j->id = strdup(id);
	j->tenant = tenant ? strdup(tenant) : NULL;
	j->secrets = calloc(n_secrets + 1, sizeof(char *));
	bool ok = j->id && (!tenant || j->tenant) && j->secrets && record && request;
	for (size_t i = 0; ok && i < n_secrets; i++) {
		if (!secrets[i][0])
			continue;
		if (!(j->secrets[j->n_secrets] = strdup(secrets[i])))
			ok = false;
		else
			j->n_secrets++;
	}
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->notified, NULL);
	if (!ok) {
		run_job_unref(j);
		return NULL;
	}
	qsort(j->secrets, j->n_secrets, sizeof(char *), secret_cmp);
	j->submit_ns = now_ns();
	runner_redact_json(j->record, (const char *const *)j->secrets, j->n_secrets);
	json_object_set_new(j->record, "status", json_string("queued"));
	job_push_event_locked(j, "status", json_pack("{s:s}", "status", "queued"));
	return j;
}

void run_job_ref(struct run_job *j)
{
	__atomic_add_fetch(&j->refs, 1, __ATOMIC_RELAXED);
}

void run_job_unref(struct run_job *j)
{
	if (!j || __atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < j->n_events; i++) {
		free(j->events[i].type);
		free(j->events[i].data);
	}
	free(j->events);
	for (struct run_watch *w = j->watches, *next; w; w = next) {
		next = w->next;
		free(w);
	}
	for (size_t i = 0; i < j->n_secrets; i++) {
		explicit_bzero(j->secrets[i], strlen(j->secrets[i]));
		free(j->secrets[i]);
	}
	free(j->secrets);
	json_decref(j->record);
	json_decref(j->request);
	json_decref(j->result);
	if (j->pidfd >= 0)
		close(j->pidfd);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->notified);
	if (j->userdata_free)
		j->userdata_free(j->userdata);
	free(j->id);
	free(j->tenant);
	free(j);
}

const char *run_job_id(const struct run_job *j) { return j->id; }
const char *run_job_tenant(const struct run_job *j) { return j->tenant; }
void *run_job_userdata(const struct run_job *j) { return j->userdata; }

json_t *run_job_record(struct run_job *j)
{
	pthread_mutex_lock(&j->lock);
	json_t *copy = json_deep_copy(j->record);
	pthread_mutex_unlock(&j->lock);
	return copy;
}

bool run_job_done(struct run_job *j)
{
	pthread_mutex_lock(&j->lock);
	bool done = j->state == JOB_DONE;
	pthread_mutex_unlock(&j->lock);
	return done;
}

int job_save(struct run_job *j, enum run_final what, struct cdn_err *err)
{
	struct runner *r = j->runner;
	if (!r->cfg.hooks.save)
		return 0;
	json_t *copy = run_job_record(j);
	if (!copy)
		return err_set(err, ENOMEM, "copying the record");
	int rc = r->cfg.hooks.save(r->cfg.hooks.ud, j, copy, what, err);
	json_decref(copy);
	return rc;
}

/* ---- events and watchers ------------------------------------------------------------------ */

/* Call every watcher, with no lock held (a watcher may call run_job_* functions). */
void job_notify(struct run_job *j)
{
	struct run_watch stack[16], *calls = stack;
	pthread_mutex_lock(&j->lock);
	size_t n = 0;
	for (struct run_watch *w = j->watches; w; w = w->next)
		n++;
	if (n > ARRAY_SIZE(stack) && !(calls = malloc(n * sizeof(*calls)))) {
		calls = stack; /* out of memory: the first ones at least */
		n = ARRAY_SIZE(stack);
	}
	size_t i = 0;
	for (struct run_watch *w = j->watches; w && i < n; w = w->next)
		calls[i++] = *w;
	j->notifying++;
	pthread_mutex_unlock(&j->lock);
	for (size_t k = 0; k < i; k++)
		calls[k].fn(calls[k].ud);
	pthread_mutex_lock(&j->lock);
	if (--j->notifying == 0)
		pthread_cond_broadcast(&j->notified);
	pthread_mutex_unlock(&j->lock);
	if (calls != stack)
		free(calls);
}

/* Append an event (data is stolen). stdout/stderr/log events beyond the per-run cap are
 * dropped (the record keeps the output up to output_bytes); status and end always go in. */
void job_push_event_locked(struct run_job *j, const char *type, json_t *data)
{
	if (!data)
		return;
	char *text = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	if (!text)
		return;
	size_t len = strlen(text);
	bool essential = strcmp(type, "status") == 0 || strcmp(type, "end") == 0;
	if (!essential && j->event_bytes + len > RUNNER_MAX_EVENT_BYTES) {
		j->events_dropped = true;
		free(text);
		return;
	}
	if (j->n_events == j->cap_events) {
		size_t cap = j->cap_events ? j->cap_events * 2 : 16;
		struct run_event *ne = realloc(j->events, cap * sizeof(*ne));
		if (!ne) {
			free(text);
			return;
		}
		j->events = ne;
		j->cap_events = cap;
	}
	char *t = strdup(type);
	if (!t) {
		free(text);
		return;
	}
	j->events[j->n_events++] = (struct run_event){.type = t, .data = text};
	j->event_bytes += len;
}

int run_job_next_event(struct run_job *j, size_t *cursor, char **ret_type, char **ret_data)
{
	int rc = 0;
	pthread_mutex_lock(&j->lock);
	if (*cursor < j->n_events) {
		*ret_type = strdup(j->events[*cursor].type);
		*ret_data = strdup(j->events[*cursor].data);
		if (!*ret_type || !*ret_data) {
			free(*ret_type);
			free(*ret_data);
			rc = -ENOMEM;
		} else {
			(*cursor)++;
			rc = 1;
		}
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int run_job_watch(struct run_job *j, void (*fn)(void *ud), void *ud, struct run_watch **ret)
{
	struct run_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->ud = ud;
	pthread_mutex_lock(&j->lock);
	w->next = j->watches;
	j->watches = w;
	bool done = j->state == JOB_DONE;
	pthread_mutex_unlock(&j->lock);
	*ret = w;
	if (done)
		fn(ud);
	return 0;
}

void run_job_unwatch(struct run_job *j, struct run_watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&j->lock);
	for (struct run_watch **p = &j->watches; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	/* A notification that copied w before it left the list may still be calling it. */
	while (j->notifying)
		pthread_cond_wait(&j->notified, &j->lock);
	pthread_mutex_unlock(&j->lock);
	free(w);
}

/* ---- the process -------------------------------------------------------------------------- */

static int job_send_locked(struct run_job *j, int sig)
{
	if (j->pidfd >= 0)
		return syscall(SYS_pidfd_send_signal, j->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
	if (j->pid > 0) /* no pidfd (old kernel): the pid is ours and not reaped yet */
		return kill(j->pid, sig) < 0 ? -errno : 0;
	return -ESRCH;
}

void job_mark_started(struct run_job *j)
{
	pthread_mutex_lock(&j->lock);
	j->state = JOB_CLAIMED;
	j->claim_ns = now_ns();
	pthread_mutex_unlock(&j->lock);
}

char *job_take_request(struct run_job *j)
{
	pthread_mutex_lock(&j->lock);
	json_t *req = TAKE_PTR(j->request);
	pthread_mutex_unlock(&j->lock);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	return text;
}

void job_set_process(struct run_job *j, pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	pthread_mutex_lock(&j->lock);
	j->pid = pid;
	j->pidfd = fd;
	if (j->cancel_requested) /* cancelled between the claim and the spawn */
		job_send_locked(j, SIGTERM);
	pthread_mutex_unlock(&j->lock);
}

void job_clear_process(struct run_job *j)
{
	pthread_mutex_lock(&j->lock);
	if (j->pidfd >= 0)
		close(j->pidfd);
	j->pidfd = -1;
	j->pid = 0;
	pthread_mutex_unlock(&j->lock);
}

void job_kill(struct run_job *j, int sig)
{
	pthread_mutex_lock(&j->lock);
	job_send_locked(j, sig);
	pthread_mutex_unlock(&j->lock);
}

void job_check_kill(struct run_job *j)
{
	pthread_mutex_lock(&j->lock);
	if (j->cancel_requested && !j->killed &&
	    now_ns() - j->cancel_at_ns > RUNNER_KILL_AFTER_MS * 1000000ULL) {
		/* __spawn did not end after SIGTERM; its sandbox's init dies with it (PDEATHSIG)
		 * and the next run sweeps the cgroup its slot left. */
		j->killed = true;
		job_send_locked(j, SIGKILL);
	}
	pthread_mutex_unlock(&j->lock);
}

int job_signal_cancel(struct run_job *j, const char *reason)
{
	pthread_mutex_lock(&j->lock);
	int rc = 0;
	if (j->state == JOB_DONE) {
		rc = -EALREADY;
	} else if (!j->cancel_requested) {
		j->cancel_requested = true;
		j->cancel_at_ns = now_ns();
		snprintf(j->cancel_reason, sizeof(j->cancel_reason), "%s", reason);
		job_send_locked(j, SIGTERM); /* -ESRCH before the spawn: job_set_process sends it */
	}
	pthread_mutex_unlock(&j->lock);
	return rc;
}
