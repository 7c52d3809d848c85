/* The runner: executions in flight in the daemon.
 *
 * A bounded FIFO queue feeds a fixed set of worker threads. A worker runs one execution at a
 * time as its own `cordon __spawn` process (posix_spawn: exec'd at once, so no sandbox is ever
 * cloned from this threaded process; SPAWN-PROTOCOL.md): the spawn request goes to its stdin,
 * its stdout is a stream of JSON event lines that the worker turns into the execution's
 * record and into events for subscribers (SSE streams, waiters of sync requests and long
 * polls). Cancel is SIGTERM to that process through its pidfd (no pid reuse race).
 *
 * Nothing here speaks HTTP or SQL: persistence goes through struct runner_hooks (the API
 * layer stores the record, accounts usage and fires callbacks), waiting through plain
 * callbacks. No function here blocks on a running sandbox except the worker threads. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define RUNNER_MAX_WORKERS 256
#define RUNNER_MAX_QUEUE 100000
#define RUNNER_MAX_LINE (64u << 20)         /* one __spawn event line (the result is big) */
#define RUNNER_MAX_EVENT_BYTES (16u << 20)  /* events kept per execution for subscribers */
#define RUNNER_KILL_AFTER_MS 5000           /* SIGKILL a __spawn that ignores SIGTERM so long */

struct runner;
struct run_job;
struct run_watch;

enum run_final {
	RUN_SAVE_QUEUED,  /* the record was created (status queued) */
	RUN_SAVE_RUNNING, /* the sandbox started (status running, started_at) */
	RUN_SAVE_FINAL,   /* the run ended: status succeeded | failed | cancelled */
};

/* Persistence of records, called with no runner lock held (from the submitting thread for
 * RUN_SAVE_QUEUED, else from a worker). A failure of RUN_SAVE_QUEUED fails the submission
 * (nothing runs that has no record); a later failure is the hook's to log: the run goes on
 * and the record stays in memory until it ends. */
struct runner_hooks {
	int (*save)(void *ud, struct run_job *job, const json_t *record, enum run_final what,
		    struct cdn_err *err);
	/* Optional: a log line of the runner itself ("spawner for ex_.. died: signal 9"). */
	void (*log)(void *ud, const char *level, const char *msg);
	void *ud;
};

struct runner_config {
	const char *cordon_path; /* the cordon binary, re-executed as `cordon __spawn` */
	const char *state_dir;
	unsigned workers;        /* sandboxes at once, 1..RUNNER_MAX_WORKERS */
	unsigned queue_max;      /* executions waiting for a worker, 0..RUNNER_MAX_QUEUE */
	bool parent_pid_arg;     /* pass --parent-pid (the spawner dies with the daemon) */
	/* Else, if set: a program run as `W --pdeathsig KILL -- cordon __spawn ...` (setpriv). */
	const char *pdeathsig_wrapper;
	struct runner_hooks hooks;
};

/* What one submission carries. record is the execution object as API.md answers it, status
 * "queued" (the runner fills status, outputs, error, metrics, started_at, finished_at);
 * spawn_request is the SPAWN-PROTOCOL request. Both are taken over (stolen) by the call,
 * also on failure. secrets are the values to redact from everything the runner records or
 * forwards (copied). */
struct run_submit {
	const char *id;
	const char *tenant;
	unsigned tenant_max_active; /* 0: no cap; else queued + running of this tenant */
	json_t *record;
	json_t *spawn_request;
	const char *const *secrets;
	size_t n_secrets;
	void *userdata;               /* the API layer's, for its hooks; freed by ... */
	void (*userdata_free)(void *); /* ... this, when the job is freed (also on failure) */
};

int runner_new(const struct runner_config *cfg, struct runner **ret, struct cdn_err *err);
/* Stop: refuse new submissions at once, cancel what is queued (recorded cancelled), let the
 * running executions finish for up to grace_ms, then cancel them (recorded cancelled with the
 * reason) and wait for every worker to record its run. Returns when every record is saved. */
void runner_shutdown(struct runner *r, uint64_t grace_ms);
void runner_free(struct runner *r);

/* Queue an execution. ret (may be NULL) gets a reference. -EAGAIN: queue full; -ESHUTDOWN:
 * shutting down; -EDQUOT: the tenant has tenant_max_active executions in flight. */
int runner_submit(struct runner *r, struct run_submit *s, struct run_job **ret,
		  struct cdn_err *err);
/* The execution id if it is in flight (queued or running, or ending and not yet saved):
 * a new reference, or NULL. A finished execution is in the store only. */
struct run_job *runner_find(struct runner *r, const char *id);

struct runner_stats {
	unsigned queued, running, workers, queue_max;
	uint64_t spawned, spawn_failures;
};
void runner_stats(struct runner *r, struct runner_stats *ret);
/* Executions of one tenant in flight (queued + running). */
unsigned runner_tenant_active(struct runner *r, const char *tenant);

void run_job_ref(struct run_job *j);
void run_job_unref(struct run_job *j);
const char *run_job_id(const struct run_job *j);
const char *run_job_tenant(const struct run_job *j);
void *run_job_userdata(const struct run_job *j);
/* Copy of the record as it is now (final once run_job_done()). */
json_t *run_job_record(struct run_job *j);
bool run_job_done(struct run_job *j);

/* Cancel. 0: done (a queued run is cancelled at once; a running one gets SIGTERM and its
 * record says cancelled when it ends: wait for run_job_done()). -EALREADY: it had ended. */
int run_job_cancel(struct run_job *j, const char *reason);

/* Events, in order, for subscribers. *cursor starts at 0. Returns 1 with a new event (type
 * and data, a JSON object text, both malloc'd), 0 when there is none yet, -ENOMEM. Once
 * run_job_done() and nothing is left, the stream is over (its last event is "end"). */
int run_job_next_event(struct run_job *j, size_t *cursor, char **ret_type, char **ret_data);

/* Call fn(ud) after each new event and when the run ends, on a runner thread (or the one that
 * cancelled a queued run), with no runner lock held: fn may call run_job_* functions, but it
 * must be quick and must not call run_job_unwatch(). After run_job_unwatch() returns, fn is
 * never called again (it waits for a call in progress). If the job has already ended, fn is
 * called once from inside run_job_watch(). */
int run_job_watch(struct run_job *j, void (*fn)(void *ud), void *ud, struct run_watch **ret);
void run_job_unwatch(struct run_job *j, struct run_watch *w);

/* Helpers shared with the API layer. */
/* "2026-01-02T03:04:05.678Z" of a CLOCK_REALTIME time in ns into buf (>= 32 bytes). */
void runner_rfc3339(uint64_t realtime_ns, char *buf, size_t size);
uint64_t runner_realtime_ns(void);
/* Replace every secret value in every string of v (keys too) with "[REDACTED]". */
int runner_redact_json(json_t *v, const char *const *secrets, size_t n);
/* Same for one string: a new malloc'd string (NULL: out of memory). */
char *runner_redact_str(const char *s, const char *const *secrets, size_t n);
