/* Waiters: replies that wait for an execution (sync POST, ?wait_ms= long polls, cancel and
 * delete of a running one) and SSE streams of its events. No HTTP thread waits: the handler
 * defers its reply or opens a stream, registers a waiter here and returns. One thread serves
 * every waiter:
 *
 *   runner thread --(watch fn: set `kicked`, signal; job lock held)--> waiter thread
 *   waiter thread: for each kicked or expired waiter, reads the job (job lock), answers or
 *                  writes SSE chunks (http.h, any thread), frees finished waiters.
 *
 * Lock order: job lock -> waiters lock (the watch fn). The waiter thread never holds the
 * waiters lock while it calls into the runner or http.h. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/exec.h"
#include "server/http.h"
#include "server/log.h"

#define SSE_KEEPALIVE_NS (15ULL * 1000000000ULL) /* a comment line, to notice gone clients */

enum waiter_kind { W_REPLY, W_STREAM };

struct waiter {
	struct waiter *next;
	enum waiter_kind kind;
	struct run_job *job;
	struct run_watch *watch;
	bool kicked;
	/* W_REPLY */
	struct http_deferred *d;
	uint64_t deadline_ns; /* 0: none */
	unsigned status;
	bool delete_after;
	/* W_STREAM */
	struct http_stream *st;
	size_t cursor;
	uint64_t last_write_ns;
};

static pthread_mutex_t w_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cond;
static struct waiter *w_all;
static unsigned w_count;
static bool w_stop, w_started;
static pthread_t w_thread;

static void waiter_kick(void *ud)
{
	struct waiter *w = ud;
	pthread_mutex_lock(&w_lock);
	w->kicked = true;
	pthread_cond_signal(&w_cond);
	pthread_mutex_unlock(&w_lock);
}

static int waiter_add(struct waiter *w)
{
	/* Watch first: the kick of an end that comes meanwhile only sets `kicked` on a waiter
	 * nobody else sees yet; then list it, marked to be looked at once in any case. */
	if (run_job_watch(w->job, waiter_kick, w, &w->watch) < 0)
		w->watch = NULL; /* the deadline and keepalive polling still serve it */
	pthread_mutex_lock(&w_lock);
	if (w_stop) {
		pthread_mutex_unlock(&w_lock);
		run_job_unwatch(w->job, w->watch);
		return -ESHUTDOWN;
	}
	w->next = w_all;
	w_all = w;
	w_count++;
	w->kicked = true;
	pthread_cond_signal(&w_cond);
	pthread_mutex_unlock(&w_lock);
	return 0;
}

unsigned exec_wait_count(void)
{
	pthread_mutex_lock(&w_lock);
	unsigned n = w_count;
	pthread_mutex_unlock(&w_lock);
	return n;
}

/* Unlist and free (waiter thread only). */
static void waiter_free(struct waiter *w)
{
	pthread_mutex_lock(&w_lock);
	for (struct waiter **p = &w_all; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			w_count--;
			break;
		}
	}
	pthread_mutex_unlock(&w_lock);
	run_job_unwatch(w->job, w->watch);
	run_job_unref(w->job);
	free(w);
}

/* Serve one waiter; true when it is finished (answered, stream ended). */
static bool waiter_serve(struct waiter *w, uint64_t now, bool stopping)
{
	if (w->kind == W_REPLY) {
		bool done = run_job_done(w->job);
		if (!done && !stopping && (!w->deadline_ns || now < w->deadline_ns))
			return false;
		if (done && w->delete_after) {
			struct cdn_err err = {0};
			int rc = store_exec_delete(exec_ctx.store, run_job_tenant(w->job),
						   run_job_id(w->job), &err);
			if (rc < 0 && rc != -ENOENT)
				http_deferred_error(w->d, 500, "internal", NULL, "%s", err.msg);
			else
				http_deferred_empty(w->d, 204);
			return true;
		}
		if (!done && stopping) {
			http_deferred_error(w->d, 503, "overloaded", NULL, "the daemon is shutting down");
			return true;
		}
		json_t *rec = run_job_record(w->job);
		if (rec)
			http_deferred_json(w->d, w->status, rec);
		else
			http_deferred_error(w->d, 500, "internal", NULL, "out of memory");
		return true;
	}
	/* W_STREAM: everything new, then the end. */
	for (;;) {
		char *type = NULL, *data = NULL;
		size_t idx = w->cursor;
		int rc = run_job_next_event(w->job, &w->cursor, &type, &data);
		if (rc <= 0)
			break;
		char *chunk = NULL;
		int n = asprintf(&chunk, "id: %zu\nevent: %s\ndata: %s\n\n", idx, type, data);
		bool end = strcmp(type, "end") == 0;
		free(type);
		free(data);
		if (n < 0)
			return true;
		rc = http_stream_write(w->st, chunk, (size_t)n);
		free(chunk);
		w->last_write_ns = now;
		if (rc == -EPIPE)
			return true;
		if (end)
			return true;
	}
	if (stopping)
		return true;
	if (now - w->last_write_ns > SSE_KEEPALIVE_NS) {
		w->last_write_ns = now;
		if (http_stream_write(w->st, ": keepalive\n\n", 13) == -EPIPE)
			return true;
	}
	return false;
}

static void waiter_finish(struct waiter *w)
{
	if (w->kind == W_STREAM)
		http_stream_close(w->st);
	waiter_free(w);
}

static void *wait_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&w_lock);
	for (;;) {
		uint64_t now = now_ns();
		bool stopping = w_stop;
		if (stopping && !w_all)
			break;
		/* The first waiter with something to do. */
		struct waiter *todo = NULL;
		uint64_t next = now + SSE_KEEPALIVE_NS;
		for (struct waiter *w = w_all; w; w = w->next) {
			uint64_t due = w->kind == W_REPLY ? w->deadline_ns
							  : w->last_write_ns + SSE_KEEPALIVE_NS;
			if (w->kicked || stopping || (due && due <= now)) {
				todo = w;
				break;
			}
			if (due && due < next)
				next = due;
		}
		if (!todo) {
			struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ULL),
					      .tv_nsec = (long)(next % 1000000000ULL)};
			pthread_cond_timedwait(&w_cond, &w_lock, &ts);
			continue;
		}
		todo->kicked = false;
		pthread_mutex_unlock(&w_lock);
		if (waiter_serve(todo, now, stopping))
			waiter_finish(todo);
		pthread_mutex_lock(&w_lock);
	}
	pthread_mutex_unlock(&w_lock);
	return NULL;
}

int exec_wait_start(void)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	/* now_ns() is CLOCK_MONOTONIC: deadlines are in that clock. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w_cond, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&w_thread, NULL, wait_main, NULL);
	if (rc != 0)
		return -rc;
	w_started = true;
	return 0;
}

void exec_wait_stop(void)
{
	if (!w_started)
		return;
	pthread_mutex_lock(&w_lock);
	w_stop = true;
	pthread_cond_signal(&w_cond);
	pthread_mutex_unlock(&w_lock);
	pthread_join(w_thread, NULL);
	w_started = false;
}

int exec_wait_reply(struct run_job *j, struct http_deferred *d, uint64_t deadline_ns,
		    unsigned status, bool delete_after)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		http_deferred_error(d, 500, "internal", NULL, "out of memory");
		return -ENOMEM;
	}
	run_job_ref(j);
	*w = (struct waiter){.kind = W_REPLY, .job = j, .d = d, .deadline_ns = deadline_ns,
			     .status = status, .delete_after = delete_after};
	int rc = waiter_add(w);
	if (rc < 0) {
		http_deferred_error(d, 503, "overloaded", NULL, "the daemon is shutting down");
		run_job_unref(j);
		free(w);
	}
	return rc;
}

int exec_wait_stream(struct run_job *j, struct http_stream *st, size_t from)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		http_stream_close(st);
		return -ENOMEM;
	}
	run_job_ref(j);
	*w = (struct waiter){.kind = W_STREAM, .job = j, .st = st, .cursor = from,
			     .last_write_ns = now_ns()};
	int rc = waiter_add(w);
	if (rc < 0) {
		http_stream_close(st);
		run_job_unref(j);
		free(w);
	}
	return rc;
}
