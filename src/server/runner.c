/* The runner: bounded queue, worker threads, one `cordon __spawn` process per execution.
 *
 * Theory of operation. Processes and threads:
 *
 *   daemon (threaded: HTTP threads, these workers, callback sender)
 *     | posix_spawn from a worker thread (glibc: CLONE_VM|CLONE_VFORK + execve at once, so the
 *     | threaded daemon never runs code after fork; signal dispositions reset, mask emptied,
 *     | fds 3+ closed, own process group)
 *     v
 *   cordon __spawn (single-threaded; calls sandbox_run(); PDEATHSIG when given --parent-pid)
 *     v
 *   sandbox init, program (src/core/)
 *
 * Pipes per execution: request (worker -> __spawn stdin, one JSON object then EOF), events
 * (__spawn stdout -> worker, JSON lines), diagnostics (__spawn stderr -> worker, one line).
 * PDEATHSIG fires when the *thread* that spawned the process exits, so workers live as long as
 * the runner.
 *
 * Locks: runner->lock (queue, in-flight list, counters) before job->lock (record, events,
 * watchers, pidfd), never the other way round. Hooks are called with no lock held. */
#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "server/runner-job.h"

extern char **environ;

static void runner_log(struct runner *r, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void runner_log(struct runner *r, const char *level, const char *fmt, ...)
{
	if (!r->cfg.hooks.log)
		return;
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->cfg.hooks.log(r->cfg.hooks.ud, level, msg);
}

/* ---- the in-flight list ------------------------------------------------------------------ */

static void inflight_remove(struct runner *r, struct run_job *j)
{
	for (struct run_job **p = &r->inflight; *p; p = &(*p)->next_inflight) {
		if (*p == j) {
			*p = j->next_inflight;
			j->next_inflight = NULL;
			r->n_inflight--;
			return;
		}
	}
}

struct run_job *runner_find(struct runner *r, const char *id)
{
	pthread_mutex_lock(&r->lock);
	struct run_job *found = NULL;
	for (struct run_job *j = r->inflight; j; j = j->next_inflight) {
		if (strcmp(j->id, id) == 0) {
			found = j;
			run_job_ref(j);
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return found;
}

unsigned runner_tenant_active(struct runner *r, const char *tenant)
{
	unsigned n = 0;
	pthread_mutex_lock(&r->lock);
	for (struct run_job *j = r->inflight; j; j = j->next_inflight)
		if (j->tenant && tenant && strcmp(j->tenant, tenant) == 0)
			n++;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void runner_stats(struct runner *r, struct runner_stats *ret)
{
	pthread_mutex_lock(&r->lock);
	*ret = (struct runner_stats){
		.queued = (unsigned)r->q_len,
		.running = r->running,
		.workers = r->cfg.workers,
		.queue_max = r->cfg.queue_max,
		.spawned = r->spawned,
		.spawn_failures = r->spawn_failures,
	};
	pthread_mutex_unlock(&r->lock);
}

/* ---- submit ------------------------------------------------------------------------------- */

int runner_submit(struct runner *r, struct run_submit *s, struct run_job **ret,
		  struct cdn_err *err)
{
	if (ret)
		*ret = NULL;
	struct run_job *j = job_new(r, s);
	if (!j)
		return err_set(err, ENOMEM, "queueing the execution");

	pthread_mutex_lock(&r->lock);
	int rc = 0;
	/* Messages go to API callers as they are: no strerror() suffix (errnum 0). */
	if (r->shutting_down) {
		err_set(err, 0, "the daemon is shutting down");
		rc = -ESHUTDOWN;
	} else if (r->q_len + r->running + r->reserved >= r->cap) {
		err_set(err, 0, "the queue is full (%u executions waiting)", r->cfg.queue_max);
		rc = -EAGAIN;
	} else if (s->tenant_max_active) {
		/* A run that has ended but is still being retired no longer counts. */
		unsigned n = 0;
		for (struct run_job *o = r->inflight; o; o = o->next_inflight) {
			if (!o->tenant || !s->tenant || strcmp(o->tenant, s->tenant) != 0)
				continue;
			pthread_mutex_lock(&o->lock);
			n += o->state != JOB_DONE;
			pthread_mutex_unlock(&o->lock);
		}
		if (n >= s->tenant_max_active) {
			err_set(err, 0, "%u concurrent executions is the plan's maximum",
				s->tenant_max_active);
			rc = -EDQUOT;
		}
	}
	if (rc == 0) {
		j->next_inflight = r->inflight;
		r->inflight = j;
		r->n_inflight++;
		run_job_ref(j); /* the in-flight list's reference */
		r->reserved++;  /* its place in the ring, held while its record is saved */
	}
	pthread_mutex_unlock(&r->lock);
	if (rc < 0) {
		run_job_unref(j);
		return rc;
	}
	/* Saved before a worker can see it: nothing runs that has no record, and the stored
	 * record never goes backwards. */
	rc = job_save(j, RUN_SAVE_QUEUED, err);

	pthread_mutex_lock(&r->lock);
	r->reserved--;
	if (rc < 0) {
		inflight_remove(r, j);
		pthread_mutex_unlock(&r->lock);
		run_job_unref(j); /* the in-flight list's */
		run_job_unref(j);
		return rc;
	}
	if (r->shutting_down) {
		pthread_mutex_unlock(&r->lock);
		job_finish_unstarted(j, "the daemon is shutting down");
		job_retire(r, j);
	} else {
		r->queue[(r->q_head + r->q_len) % r->cap] = j;
		r->q_len++;
		run_job_ref(j); /* the queue's reference */
		pthread_cond_signal(&r->cond_work);
		pthread_mutex_unlock(&r->lock);
	}
	if (ret)
		*ret = j;
	else
		run_job_unref(j);
	return 0;
}

/* Take j out of the queue if it is still there (runner->lock held). */
static bool queue_remove(struct runner *r, struct run_job *j)
{
	for (size_t i = 0; i < r->q_len; i++) {
		size_t at = (r->q_head + i) % r->cap;
		if (r->queue[at] != j)
			continue;
		for (size_t k = i; k + 1 < r->q_len; k++)
			r->queue[(r->q_head + k) % r->cap] =
				r->queue[(r->q_head + k + 1) % r->cap];
		r->q_len--;
		return true;
	}
	return false;
}

/* The job leaves the in-flight list (its final record is saved). */
void job_retire(struct runner *r, struct run_job *j)
{
	pthread_mutex_lock(&r->lock);
	bool was = false;
	for (struct run_job *o = r->inflight; o; o = o->next_inflight)
		was |= o == j;
	if (was)
		inflight_remove(r, j);
	pthread_cond_broadcast(&r->cond_idle);
	pthread_mutex_unlock(&r->lock);
	if (was)
		run_job_unref(j);
}

int run_job_cancel(struct run_job *j, const char *reason)
{
	struct runner *r = j->runner;
	pthread_mutex_lock(&r->lock);
	bool unqueued = queue_remove(r, j);
	pthread_mutex_unlock(&r->lock);
	if (unqueued) {
		job_finish_unstarted(j, reason);
		job_retire(r, j);
		run_job_unref(j); /* the queue's reference */
		return 0;
	}
	return job_signal_cancel(j, reason);
}

/* ---- the worker --------------------------------------------------------------------------- */

static int spawn_process(struct runner *r, int in_fd, int out_fd, int err_fd, pid_t *ret_pid)
{
	char ppid[24];
	snprintf(ppid, sizeof(ppid), "%d", (int)getpid());
	const char *argv[12];
	size_t n = 0;
	if (!r->cfg.parent_pid_arg && r->wrapper) {
		argv[n++] = r->wrapper;
		argv[n++] = "--pdeathsig";
		argv[n++] = "KILL";
		argv[n++] = "--";
	}
	argv[n++] = r->cfg.cordon_path;
	argv[n++] = "__spawn";
	argv[n++] = "--state-dir";
	argv[n++] = r->cfg.state_dir;
	if (r->cfg.parent_pid_arg) {
		argv[n++] = "--parent-pid";
		argv[n++] = ppid;
	}
	argv[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	if (posix_spawn_file_actions_init(&fa) != 0)
		return -ENOMEM;
	if (posix_spawnattr_init(&attr) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -ENOMEM;
	}
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	int rc = posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	rc = rc ?: posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	rc = rc ?: posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	/* Nothing of the daemon (sockets, the store, other runs' pipes) reaches the spawner, even
	 * an fd some library opened without O_CLOEXEC. */
	rc = rc ?: posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* The daemon ignores SIGPIPE and blocks its shutdown signals in threads; the program in
	 * the sandbox must get the usual defaults (a `yes | head` must end). */
	rc = rc ?: posix_spawnattr_setsigdefault(&attr, &all);
	rc = rc ?: posix_spawnattr_setsigmask(&attr, &none);
	/* Own process group: a ^C at the daemon's terminal reaches the daemon only, which then
	 * decides (grace period, cancel). */
	rc = rc ?: posix_spawnattr_setpgroup(&attr, 0);
	rc = rc ?: posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
						   POSIX_SPAWN_SETPGROUP);
	if (rc == 0)
		rc = posix_spawn(ret_pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return -rc;
}

struct line_buf {
	char *buf;
	size_t len, cap;
};

/* Feed bytes from __spawn's stdout; each complete line goes to job_event(). */
static int line_feed(struct run_job *j, struct line_buf *lb, const char *data, size_t n)
{
	if (lb->len + n > RUNNER_MAX_LINE)
		return -E2BIG;
	if (lb->len + n + 1 > lb->cap) {
		size_t cap = lb->cap ? lb->cap : 65536;
		while (cap < lb->len + n + 1)
			cap *= 2;
		char *nb = realloc(lb->buf, cap);
		if (!nb)
			return -ENOMEM;
		lb->buf = nb;
		lb->cap = cap;
	}
	memcpy(lb->buf + lb->len, data, n);
	lb->len += n;
	size_t start = 0;
	for (size_t i = lb->len - n; i < lb->len; i++) {
		if (lb->buf[i] != '\n')
			continue;
		if (i > start)
			job_event(j, lb->buf + start, i - start);
		start = i + 1;
	}
	memmove(lb->buf, lb->buf + start, lb->len - start);
	lb->len -= start;
	return 0;
}

/* Pump __spawn's stdout and stderr until both are closed. */
static void pump(struct run_job *j, int out_fd, int err_fd, char *errbuf, size_t errsize)
{
	struct line_buf lb = {0};
	size_t errlen = 0;
	struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
	char buf[65536];
	bool overflow = false;
	while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
		/* Wakes up once a second so a cancel that SIGTERM did not end gets its SIGKILL. */
		int n = poll(pfd, 2, 1000);
		job_check_kill(j);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			ssize_t got = read(pfd[i].fd, buf, sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				pfd[i].fd = -1;
				continue;
			}
			if (i == 0 && !overflow && line_feed(j, &lb, buf, (size_t)got) < 0) {
				/* A line over the cap is a bug of __spawn; end it, record internal. */
				overflow = true;
				job_kill(j, SIGKILL);
			} else if (i == 1 && errlen + 1 < errsize) {
				size_t take = (size_t)got < errsize - 1 - errlen ? (size_t)got
										   : errsize - 1 - errlen;
				memcpy(errbuf + errlen, buf, take);
				errlen += take;
			}
		}
	}
	errbuf[errlen] = 0;
	char *nl = strchr(errbuf, '\n');
	if (nl)
		*nl = 0;
	free(lb.buf);
}

static void run_one(struct runner *r, struct run_job *j)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
	char *request = job_take_request(j);
	pid_t pid = -1;
	int rc = -ENOMEM;
	if (request && pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
	    pipe2(errp, O_CLOEXEC) == 0)
		rc = spawn_process(r, in[0], out[1], errp[1], &pid);
	else if (request)
		rc = -errno;
	int fds[] = {in[0], out[1], errp[1]};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pthread_mutex_lock(&r->lock);
	if (rc < 0)
		r->spawn_failures++;
	else
		r->spawned++;
	pthread_mutex_unlock(&r->lock);
	if (rc < 0) {
		if (request)
			explicit_bzero(request, strlen(request));
		free(request);
		for (int *p = (int[]){in[1], out[0], errp[0]}, k = 0; k < 3; k++)
			if (p[k] >= 0)
				close(p[k]);
		char msg[200];
		snprintf(msg, sizeof(msg), "starting the spawner \"%s\": %s", r->cfg.cordon_path,
			 strerror(-rc));
		runner_log(r, "error", "%s: %s", j->id, msg);
		job_finish_internal(j, msg);
		return;
	}
	job_set_process(j, pid);
	/* __spawn reads its whole stdin before it writes a line, so this cannot deadlock with
	 * the pump below. A spawner that died early gives EPIPE (SIGPIPE is ignored). */
	(void)write_all(in[1], request, strlen(request));
	close(in[1]);
	/* The request holds the secrets' values: do not leave them in freed memory. */
	explicit_bzero(request, strlen(request));
	free(request);

	char errline[1024];
	pump(j, out[0], errp[0], errline, sizeof(errline));
	close(out[0]);
	close(errp[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	job_clear_process(j);
	job_finish_spawned(j, status, errline);
}

static void *worker_main(void *arg)
{
	struct runner *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->stop && r->q_len == 0)
			pthread_cond_wait(&r->cond_work, &r->lock);
		if (r->q_len == 0)
			break;
		struct run_job *j = r->queue[r->q_head];
		r->q_head = (r->q_head + 1) % r->cap;
		r->q_len--;
		r->running++;
		job_mark_started(j);
		pthread_mutex_unlock(&r->lock);

		run_one(r, j);
		job_retire(r, j);
		run_job_unref(j); /* the queue's reference */

		pthread_mutex_lock(&r->lock);
		r->running--;
		pthread_cond_broadcast(&r->cond_idle);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int runner_new(const struct runner_config *cfg, struct runner **ret, struct cdn_err *err)
{
	*ret = NULL;
	if (cfg->workers < 1 || cfg->workers > RUNNER_MAX_WORKERS)
		return err_set(err, EINVAL, "workers must be 1..%d", RUNNER_MAX_WORKERS);
	if (cfg->queue_max > RUNNER_MAX_QUEUE)
		return err_set(err, EINVAL, "queue must be 0..%d", RUNNER_MAX_QUEUE);
	struct runner *r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(err, ENOMEM, "runner");
	r->cfg = *cfg;
	/* Accepted = running + waiting: the queue bound counts the executions beyond the
	 * workers, and the ring holds both (a worker takes a run off it when it starts). */
	r->cap = (size_t)cfg->workers + cfg->queue_max;
	r->queue = calloc(r->cap, sizeof(*r->queue));
	r->cordon_path = strdup(cfg->cordon_path);
	r->state_dir = strdup(cfg->state_dir);
	r->wrapper = cfg->pdeathsig_wrapper ? strdup(cfg->pdeathsig_wrapper) : NULL;
	r->threads = calloc(cfg->workers, sizeof(*r->threads));
	if (!r->queue || !r->cordon_path || !r->state_dir || !r->threads ||
	    (cfg->pdeathsig_wrapper && !r->wrapper)) {
		runner_free(r);
		return err_set(err, ENOMEM, "runner");
	}
	r->cfg.cordon_path = r->cordon_path;
	r->cfg.state_dir = r->state_dir;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond_work, NULL);
	pthread_cond_init(&r->cond_idle, NULL);
	/* A spawner that dies before reading its request must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < cfg->workers; i++) {
		int e = pthread_create(&r->threads[i], NULL, worker_main, r);
		if (e != 0) {
			r->n_threads = i;
			runner_shutdown(r, 0);
			runner_free(r);
			return err_set(err, e, "starting worker thread %u", i);
		}
	}
	r->n_threads = cfg->workers;
	*ret = r;
	return 0;
}

void runner_shutdown(struct runner *r, uint64_t grace_ms)
{
	pthread_mutex_lock(&r->lock);
	if (r->stop) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	r->shutting_down = true;
	/* Queued runs never started: cancelled at once, recorded. */
	while (r->q_len) {
		struct run_job *j = r->queue[r->q_head];
		r->q_head = (r->q_head + 1) % r->cap;
		r->q_len--;
		pthread_mutex_unlock(&r->lock);
		job_finish_unstarted(j, "the daemon shut down before the execution started");
		job_retire(r, j);
		run_job_unref(j);
		pthread_mutex_lock(&r->lock);
	}
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)(grace_ms / 1000);
	deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L)
		deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
	while (r->running > 0) {
		if (pthread_cond_timedwait(&r->cond_idle, &r->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (r->running > 0) {
		char reason[160];
		snprintf(reason, sizeof(reason),
			 "cancelled: the daemon shut down and the grace period of %llu ms ended",
			 (unsigned long long)grace_ms);
		for (struct run_job *j = r->inflight; j; j = j->next_inflight)
			job_signal_cancel(j, reason);
		while (r->running > 0)
			pthread_cond_wait(&r->cond_idle, &r->lock);
	}
	r->stop = true;
	pthread_cond_broadcast(&r->cond_work);
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < r->n_threads; i++)
		pthread_join(r->threads[i], NULL);
	r->n_threads = 0;
}

void runner_free(struct runner *r)
{
	if (!r)
		return;
	if (r->n_threads)
		runner_shutdown(r, 0);
	while (r->inflight) {
		struct run_job *j = r->inflight;
		r->inflight = j->next_inflight;
		run_job_unref(j);
	}
	free(r->queue);
	free(r->threads);
	free(r->cordon_path);
	free(r->state_dir);
	free(r->wrapper);
	free(r);
}
