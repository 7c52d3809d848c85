/* Internals of the runner shared by runner.c (queue, workers, processes) and runner-job.c
 * (one execution: its record, events, watchers, cancel). Not for other modules. */
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include "server/runner.h"

struct run_event {
	char *type;
	char *data; /* JSON object text */
};

struct run_watch {
	struct run_watch *next;
	void (*fn)(void *ud);
	void *ud;
};

enum job_state { JOB_QUEUED, JOB_CLAIMED, JOB_DONE };

struct run_job {
	struct runner *runner;
	int refs; /* atomic */
	char *id, *tenant;
	void *userdata;
	void (*userdata_free)(void *);
	struct run_job *next_inflight; /* runner->lock */

	pthread_mutex_t lock; /* everything below */
	enum job_state state;
	json_t *record;
	json_t *request;       /* until a worker takes it */
	char **secrets;
	size_t n_secrets;
	struct run_event *events;
	size_t n_events, cap_events, event_bytes;
	bool events_dropped;
	struct run_watch *watches;
	unsigned notifying;      /* job_notify() calls in progress */
	pthread_cond_t notified; /* signalled when notifying drops to 0 */
	pid_t pid;             /* of __spawn while it runs, else 0 */
	int pidfd;
	bool cancel_requested, killed;
	char cancel_reason[200];
	uint64_t cancel_at_ns, submit_ns, claim_ns;

	json_t *result;        /* the result line's execution: worker thread only */
};

struct runner {
	struct runner_config cfg;
	char *cordon_path, *state_dir, *wrapper;
	pthread_mutex_t lock;
	pthread_cond_t cond_work, cond_idle;
	struct run_job **queue; /* ring of cap entries */
	size_t cap, q_head, q_len, reserved;
	struct run_job *inflight;
	size_t n_inflight;
	unsigned running;
	bool shutting_down, stop;
	pthread_t *threads;
	size_t n_threads;
	uint64_t spawned, spawn_failures;
};

struct run_job *job_new(struct runner *r, struct run_submit *s);
int job_save(struct run_job *j, enum run_final what, struct cdn_err *err);
void job_retire(struct runner *r, struct run_job *j);
void job_mark_started(struct run_job *j);
char *job_take_request(struct run_job *j);
void job_set_process(struct run_job *j, pid_t pid);
void job_clear_process(struct run_job *j);
void job_kill(struct run_job *j, int sig);
void job_check_kill(struct run_job *j);
int job_signal_cancel(struct run_job *j, const char *reason);
void job_push_event_locked(struct run_job *j, const char *type, json_t *data);
void job_notify(struct run_job *j);
void job_event(struct run_job *j, const char *line, size_t len);
void job_finish_unstarted(struct run_job *j, const char *reason);
void job_finish_internal(struct run_job *j, const char *msg);
void job_finish_spawned(struct run_job *j, int wait_status, const char *errline);
