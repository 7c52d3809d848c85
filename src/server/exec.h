/* The executions API (API.md "Executions", "Compatibility: daiv-sandbox") on top of the HTTP
 * core (http.h), the store (store.h) and the runner (runner.h). Internal to these files:
 *
 *   exec-api.c    routes, the module (start: recovery; drain: SIGTERM grace; stop)
 *   exec-store.c  the runner's hooks: records into the store, usage, metrics, callbacks;
 *                 records back out of the store as API objects
 *   exec-wait.c   the waiter thread: deferred replies (sync POST, ?wait_ms=, cancel, delete)
 *                 and SSE streams, fed by runner events without holding an HTTP thread
 *   daiv.c        POST /api/v1/run/commands/ */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/runner.h"
#include "store/store.h"

struct srv;
struct http_req;
struct http_deferred;
struct http_stream;
struct callbacks;

/* What the API layer keeps with each job (run_job_userdata). */
struct exec_job_data {
	char tenant_id[STORE_ID_MAX];
	char *callback_url;  /* or NULL */
	char *request_json;  /* the stored request: {"record": ..., "request": ...}, redacted */
	int64_t created_ms;
};
void exec_job_data_free(void *p);

/* The module's state (one daemon, one instance). */
struct exec_ctx {
	struct srv *srv;
	struct store *store;
	struct runner *runner;
	struct callbacks *callbacks;
	json_t *runtimes; /* GET /v1/runtimes, read at start from `cordon __spawn --runtimes` */
	char runtimes_error[256];
};
extern struct exec_ctx exec_ctx;

/* exec-store.c */
int exec_hook_save(void *ud, struct run_job *job, const json_t *record, enum run_final what,
		   struct cdn_err *err);
void exec_hook_log(void *ud, const char *level, const char *msg);
/* The API object of a stored execution. */
json_t *exec_from_store(const struct store_exec *e);
/* The execution as the API answers it now: from the runner while in flight, else from the
 * store. -ENOENT when unknown or another tenant's (404). */
int exec_lookup(const char *tenant_id, const char *id, json_t **ret, struct cdn_err *err);
/* At start: executions a killed daemon left queued/running become failed "daemon restarted";
 * their callbacks are sent. Returns how many, or -errno. */
int exec_recover(struct cdn_err *err);
/* ms since the epoch of an RFC 3339 string we wrote; 0 when NULL or unparsable. */
int64_t exec_parse_time_ms(const char *s);

/* exec-api.c */
struct tenant;
/* Submit a validated __spawn request (stolen) with the daemon's extra fields (metadata,
 * callback_url). 0 with *ret referenced, or runner_submit's errors. */
int exec_submit(const struct tenant *t, json_t *spawn, const json_t *extra,
		struct run_job **ret, struct cdn_err *err);
/* The HTTP answer of a failed exec_submit (503 overloaded, 429 quota_exceeded, 500). */
void exec_reply_submit_error(struct http_req *r, int rc, const struct cdn_err *err);
/* false (and the 429 answered) when the tenant's monthly execution seconds are used up. */
bool exec_quota_check(struct http_req *r);
void exec_register(void);
/* false (and 503 answered) when executions are off (no store). */
bool exec_available(struct http_req *r);

/* exec-wait.c */
int exec_wait_start(void);
void exec_wait_stop(void);
/* Answer d with the record of j when it has ended (then: 200, or 204 after deleting it when
 * delete_after). With deadline_ns (now_ns clock) != 0, answer the record as it is then. */
int exec_wait_reply(struct run_job *j, struct http_deferred *d, uint64_t deadline_ns,
		    unsigned status, bool delete_after);
/* Stream j's events to st as SSE, from event index `from`, until its end event. */
int exec_wait_stream(struct run_job *j, struct http_stream *st, size_t from);
/* Number of waiters (metrics, tests). */
unsigned exec_wait_count(void);

/* daiv.c */
void daiv_register(void);
void daiv_drain(void);      /* refuse new requests */
void daiv_wait_idle(void);  /* after runner_shutdown: the last ones have answered */
