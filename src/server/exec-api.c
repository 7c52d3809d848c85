/* The executions endpoints of API.md and their module: submit (sync and async), get with a
 * long poll, list, cancel, delete, the SSE event stream, runtimes and callback attempts.
 * Handlers answer at once or hand the reply to the waiter thread (exec-wait.c); none waits on
 * a sandbox. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "core/redact.h"
#include "core/sandbox.h"
#include "server/callback.h"
#include "server/exec.h"
#include "server/http.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/tenants.h"
#include "server/validate.h"
#include "server/workspace.h"

extern char **environ;

#define EXEC_LIST_DEFAULT 20
#define EXEC_LIST_MAX 100
#define RUNTIMES_MAX_BYTES (1u << 20)
#define SETPRIV "/usr/bin/setpriv"

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds until the next calendar month (UTC): when a monthly quota refills. */
static long seconds_to_next_month(void)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mon += 1;
	time_t next = timegm(&tm);
	return next > now ? (long)(next - now) : 1;
}

static void reply_cdn_err(struct http_req *r, int rc, const struct cdn_err *err,
			  const char *id)
{
	if (rc == -ENOENT)
		http_reply_error(r, 404, "not_found", NULL, "no execution \"%s\"", id);
	else if (rc == -EBUSY)
		http_reply_error(r, 503, "overloaded", NULL, "the store is busy");
	else
		http_reply_error(r, 500, "internal", NULL, "%s", err->msg);
}

/* The in-flight job id of this tenant, or NULL (another tenant's is NULL too: 404). */
static struct run_job *find_mine(struct http_req *r, const char *id)
{
	struct run_job *j = runner_find(exec_ctx.runner, id);
	if (j && (!run_job_tenant(j) || strcmp(run_job_tenant(j), r->tenant->id) != 0)) {
		run_job_unref(j);
		return NULL;
	}
	return j;
}

/* The executions endpoints need the runner (and so the store): 503 without. */
bool exec_available(struct http_req *r)
{
	if (exec_ctx.runner)
		return true;
	http_reply_error(r, 503, "overloaded", NULL, "executions are not available: no store");
	return false;
}

/* ---- submit ------------------------------------------------------------------------------- */

/* The execution object at submission (API.md's answer shape, status queued). */
static json_t *record_new(const char *id, const json_t *spawn, const json_t *extra,
			  int64_t created_ms)
{
	char created[40];
	runner_rfc3339((uint64_t)created_ms * 1000000ULL, created, sizeof(created));
	json_t *meta = json_object_get(extra, "metadata");
	json_t *trust = json_object_get(spawn, "trust_level");
	return json_pack("{s:s,s:s,s:O?,s:O?,s:O?,s:O?,s:n,s:n,s:s,s:s,s:b,s:b,s:n,s:n,s:[],s:n,"
			 "s:n,s:n,s:{},s:o,s:s,s:n,s:n}",
			 "id", id, "status", "queued", "runtime", json_object_get(spawn, "runtime"),
			 "image", json_object_get(spawn, "image"), "trust_level", trust, "cordon",
			 trust, "exit_code", "signal", "stdout", "", "stderr", "",
			 "stdout_truncated", 0, "stderr_truncated", 0, "compile_output", "result",
			 "logs", "error", "tests", "all_tests_passed", "metrics", "metadata",
			 json_is_object(meta) ? json_deep_copy(meta) : json_object(), "created_at",
			 created, "started_at", "finished_at");
}

/* The secrets' values of a spawn request (borrowed from it). */
static size_t secret_values(const json_t *spawn, const char **out, size_t max)
{
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(spawn, "secrets"), k, v)
	{
		if (n < max && json_is_string(v) && json_string_length(v) > 0)
			out[n++] = json_string_value(v);
	}
	return n;
}

int exec_submit(const struct tenant *t, json_t *spawn, const json_t *extra,
		struct run_job **ret, struct cdn_err *err)
{
	char id[STORE_ID_MAX];
	int rc = store_id_new("ex_", id);
	if (rc < 0) {
		json_decref(spawn);
		return err_set(err, -rc, "making an id");
	}
	int64_t created = wall_ms();
	const char *secrets[4096];
	size_t n_secrets = secret_values(spawn, secrets, ARRAY_SIZE(secrets));

	/* What is stored of the request: every secret's value replaced, wherever it appears
	 * (env, args, code): a stored record never holds one. */
	json_t *stored_req = json_deep_copy(spawn);
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(stored_req, "secrets"), k, v)
		json_string_set(v, REDACTED);
	runner_redact_json(stored_req, secrets, n_secrets);
	json_t *record = record_new(id, spawn, extra, created);
	runner_redact_json(record, secrets, n_secrets);
	json_t *stored_extra = extra ? json_deep_copy(extra) : NULL;
	runner_redact_json(stored_extra, secrets, n_secrets);
	json_t *stored = json_pack("{s:O,s:o,s:o?}", "record", record, "request", stored_req,
				   "extra", stored_extra);
	struct exec_job_data *d = calloc(1, sizeof(*d));
	const char *cb = json_string_value(json_object_get(extra, "callback_url"));
	if (d) {
		snprintf(d->tenant_id, sizeof(d->tenant_id), "%s", t->id);
		d->created_ms = created;
		d->request_json = stored ? json_dumps(stored, JSON_COMPACT) : NULL;
		d->callback_url = cb ? strdup(cb) : NULL;
	}
	json_decref(stored);
	if (!d || !d->request_json || (cb && !d->callback_url)) {
		exec_job_data_free(d);
		json_decref(record);
		json_decref(spawn);
		return err_set(err, ENOMEM, "queueing the execution");
	}
	struct run_submit s = {
		.id = id,
		.tenant = t->id,
		.tenant_max_active = t->plan.max_concurrent,
		.record = record,
		.spawn_request = spawn,
		.secrets = secrets,
		.n_secrets = n_secrets,
		.userdata = d,
		.userdata_free = exec_job_data_free,
	};
	return runner_submit(exec_ctx.runner, &s, ret, err);
}

void exec_reply_submit_error(struct http_req *r, int rc, const struct cdn_err *err)
{
	if (rc == -EAGAIN || rc == -ESHUTDOWN) {
		http_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "overloaded", NULL, "%s", err->msg);
	} else if (rc == -EDQUOT) {
		metrics_quota_exceeded();
		http_add_header(r, "Retry-After", "1");
		http_reply_error(r, 429, "quota_exceeded", NULL, "%s", err->msg);
	} else if (rc == -EBUSY) {
		http_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "overloaded", NULL, "the store is busy");
	} else {
		http_reply_error(r, 500, "internal", NULL, "%s", err->msg);
	}
}

bool exec_quota_check(struct http_req *r)
{
	uint64_t cap = r->tenant->plan.monthly_exec_seconds;
	if (!cap)
		return true;
	char period[STORE_PERIOD_MAX];
	store_period_of(wall_ms(), period);
	struct store_usage u = {0};
	struct cdn_err err = {0};
	if (store_usage_get(exec_ctx.store, r->tenant->id, period, &u, &err) < 0) {
		http_reply_error(r, 500, "internal", NULL, "%s", err.msg);
		return false;
	}
	if (u.exec_ms < cap * 1000)
		return true;
	char ra[24];
	snprintf(ra, sizeof(ra), "%ld", seconds_to_next_month());
	http_add_header(r, "Retry-After", ra);
	metrics_quota_exceeded();
	http_reply_error(r, 429, "quota_exceeded", NULL,
			 "the plan's %llu execution seconds of %s are used up",
			 (unsigned long long)cap, period);
	return false;
}

static void h_create(struct http_req *r)
{
	if (!exec_available(r))
		return;
	if (atomic_load(&r->srv->draining)) {
		http_reply_error(r, 503, "overloaded", NULL, "the daemon is shutting down");
		return;
	}
	json_t *spawn = NULL, *extra = NULL;
	struct val_err ve = {0};
	if (val_execution(r->body, r->tenant, &spawn, &extra, &ve) < 0) {
		http_reply_error(r, ve.status, ve.code, ve.field[0] ? ve.field : NULL, "%s", ve.msg);
		return;
	}
	if (!exec_quota_check(r)) {
		json_decref(spawn);
		json_decref(extra);
		return;
	}
	bool async = json_is_true(json_object_get(extra, "async"));
	const char *cb = json_string_value(json_object_get(extra, "callback_url"));
	if (cb && !callbacks_url_ok(cb)) {
		json_decref(spawn);
		json_decref(extra);
		http_reply_error(r, 422, "validation_failed", "callback_url",
				 "callback_url must be an http:// or https:// URL without "
				 "credentials");
		return;
	}
	struct run_job *j = NULL;
	struct cdn_err err = {0};
	int rc = exec_submit(r->tenant, spawn, extra, &j, &err);
	json_decref(extra);
	if (rc < 0) {
		exec_reply_submit_error(r, rc, &err);
		return;
	}
	if (async) {
		char loc[128];
		snprintf(loc, sizeof(loc), "/v1/executions/%s", run_job_id(j));
		http_add_header(r, "Location", loc);
		http_reply_json(r, 202, run_job_record(j));
	} else {
		exec_wait_reply(j, http_defer(r), 0, 200, false);
	}
	run_job_unref(j);
}

/* ---- read, list, cancel, delete ----------------------------------------------------------- */

static void h_get(struct http_req *r)
{
	if (!exec_available(r))
		return;
	const char *id = r->params[0];
	uint64_t wait = 0;
	if (http_query_u64(r, "wait_ms", 0, srv_limit("max_wait_ms"), 0, &wait) < 0)
		return;
	struct run_job *j = wait ? find_mine(r, id) : NULL;
	if (j && !run_job_done(j)) {
		exec_wait_reply(j, http_defer(r), now_ns() + wait * 1000000ULL, 200, false);
		run_job_unref(j);
		return;
	}
	run_job_unref(j);
	json_t *rec = NULL;
	struct cdn_err err = {0};
	int rc = exec_lookup(r->tenant->id, id, &rec, &err);
	if (rc < 0)
		reply_cdn_err(r, rc, &err, id);
	else
		http_reply_json(r, 200, rec);
}

static void h_list(struct http_req *r)
{
	if (!exec_available(r))
		return;
	unsigned mask = 0;
	const char *status = http_query(r, "status");
	if (status && *status) {
		enum store_exec_status st;
		if (store_exec_status_parse(status, &st) < 0) {
			http_reply_error(r, 422, "validation_failed", "query.status",
					 "status must be queued, running, succeeded, failed or "
					 "cancelled");
			return;
		}
		mask = STORE_STATUS_BIT(st);
	}
	uint64_t limit;
	if (http_query_u64(r, "limit", 1, EXEC_LIST_MAX, EXEC_LIST_DEFAULT, &limit) < 0)
		return;
	const char *cursor = http_query(r, "cursor");
	if (cursor && strlen(cursor) >= STORE_CURSOR_MAX) {
		http_reply_error(r, 422, "validation_failed", "query.cursor", "not a cursor");
		return;
	}
	struct store_exec_list l = {0};
	struct cdn_err err = {0};
	int rc = store_exec_list(exec_ctx.store, r->tenant->id, mask, limit, cursor,
				 STORE_WITH_OUTPUTS, &l, &err);
	if (rc == -EINVAL) {
		http_reply_error(r, 422, "validation_failed", "query.cursor", "not a cursor");
		return;
	}
	if (rc < 0) {
		reply_cdn_err(r, rc, &err, "");
		return;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < l.n; i++)
		json_array_append_new(data, exec_from_store(&l.items[i]));
	json_t *body = json_pack("{s:o,s:s?}", "data", data, "next_cursor",
				 l.next_cursor[0] ? l.next_cursor : NULL);
	store_exec_list_release(&l);
	http_reply_json(r, 200, body);
}

/* 409 for a finished execution, 404 for none. */
static void reply_not_in_flight(struct http_req *r, const char *id, const char *what)
{
	struct store_exec e = {0};
	struct cdn_err err = {0};
	int rc = store_exec_get(exec_ctx.store, r->tenant->id, id, 0, &e, &err);
	if (rc < 0) {
		reply_cdn_err(r, rc, &err, id);
		return;
	}
	http_reply_error(r, 409, "conflict", NULL, "cannot %s execution \"%s\": it is %s", what,
			 id, store_exec_status_name(e.status));
	store_exec_release(&e);
}

static void h_cancel(struct http_req *r)
{
	if (!exec_available(r))
		return;
	const char *id = r->params[0];
	struct run_job *j = find_mine(r, id);
	if (!j) {
		reply_not_in_flight(r, id, "cancel");
		return;
	}
	int rc = run_job_cancel(j, "cancelled through the API");
	if (rc == -EALREADY)
		http_reply_error(r, 409, "conflict", NULL,
				 "cannot cancel execution \"%s\": it has ended", id);
	else
		exec_wait_reply(j, http_defer(r), 0, 200, false);
	run_job_unref(j);
}

static void h_delete(struct http_req *r)
{
	if (!exec_available(r))
		return;
	const char *id = r->params[0];
	struct run_job *j = find_mine(r, id);
	if (j) {
		/* In flight: cancel it, then delete its record once it is saved. */
		run_job_cancel(j, "cancelled: the execution was deleted");
		exec_wait_reply(j, http_defer(r), 0, 204, true);
		run_job_unref(j);
		return;
	}
	struct cdn_err err = {0};
	int rc = store_exec_delete(exec_ctx.store, r->tenant->id, id, &err);
	if (rc < 0)
		reply_cdn_err(r, rc, &err, id);
	else
		http_reply_empty(r, 204);
}

/* ---- events ------------------------------------------------------------------------------- */

static void sse_write(struct http_stream *st, size_t *id, const char *type, json_t *data)
{
	char *text = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	char *chunk = NULL;
	int n = text ? asprintf(&chunk, "id: %zu\nevent: %s\ndata: %s\n\n", (*id)++, type, text)
		     : -1;
	if (n > 0)
		http_stream_write(st, chunk, (size_t)n);
	free(chunk);
	free(text);
}

/* A finished execution's stream, told from its record. */
static void sse_from_record(struct http_stream *st, json_t *rec)
{
	size_t id = 0;
	sse_write(st, &id, "status", json_pack("{s:O}", "status", json_object_get(rec, "status")));
	static const char *const streams[] = {"stdout", "stderr"};
	for (size_t i = 0; i < ARRAY_SIZE(streams); i++) {
		json_t *s = json_object_get(rec, streams[i]);
		if (json_string_length(s) > 0)
			sse_write(st, &id, streams[i], json_pack("{s:O}", "data", s));
	}
	size_t k;
	json_t *log;
	json_array_foreach(json_object_get(rec, "logs"), k, log)
		sse_write(st, &id, "log", json_incref(log));
	sse_write(st, &id, "end",
		  json_pack("{s:O,s:O,s:O?,s:O?,s:O?,s:O?}", "id", json_object_get(rec, "id"),
			    "status", json_object_get(rec, "status"), "exit_code",
			    json_object_get(rec, "exit_code"), "signal",
			    json_object_get(rec, "signal"), "error", json_object_get(rec, "error"),
			    "metrics", json_object_get(rec, "metrics")));
	http_stream_close(st);
}

static void h_events(struct http_req *r)
{
	if (!exec_available(r))
		return;
	const char *id = r->params[0];
	size_t from = 0;
	const char *last = http_header(r, "Last-Event-ID");
	uint64_t lid;
	if (last && parse_u64(last, &lid) == 0 && lid < SIZE_MAX)
		from = (size_t)lid + 1;
	struct run_job *j = find_mine(r, id);
	if (j) {
		struct http_stream *st = http_stream_open(r, 200, "text/event-stream");
		if (st)
			exec_wait_stream(j, st, from);
		run_job_unref(j);
		return;
	}
	json_t *rec = NULL;
	struct cdn_err err = {0};
	int rc = exec_lookup(r->tenant->id, id, &rec, &err);
	if (rc < 0) {
		reply_cdn_err(r, rc, &err, id);
		return;
	}
	struct http_stream *st = http_stream_open(r, 200, "text/event-stream");
	if (st)
		sse_from_record(st, rec);
	json_decref(rec);
}

static void h_callbacks(struct http_req *r)
{
	if (!exec_available(r))
		return;
	const char *id = r->params[0];
	struct store_exec e = {0};
	struct cdn_err err = {0};
	int rc = store_exec_get(exec_ctx.store, r->tenant->id, id, 0, &e, &err);
	if (rc < 0) {
		reply_cdn_err(r, rc, &err, id);
		return;
	}
	store_exec_release(&e);
	struct store_callback_list l = {0};
	rc = store_callback_list(exec_ctx.store, id, &l, &err);
	if (rc < 0) {
		reply_cdn_err(r, rc, &err, id);
		return;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < l.n; i++) {
		char at[40];
		runner_rfc3339((uint64_t)l.items[i].at_ms * 1000000ULL, at, sizeof(at));
		json_array_append_new(
			data, json_pack("{s:i,s:s,s:i,s:s?}", "attempt", (int)l.items[i].attempt,
					"at", at, "http_status", l.items[i].http_status, "error",
					l.items[i].error[0] ? l.items[i].error : NULL));
	}
	store_callback_list_release(&l);
	http_reply_json(r, 200, json_pack("{s:o}", "data", data));
}

/* ---- runtimes ----------------------------------------------------------------------------- */

/* `cordon __spawn --runtimes` once at start (before the listener: no HTTP thread waits). */
static json_t *runtimes_load(const char *cordon, const char *state_dir, bool parent_pid,
			     char *errbuf, size_t errsize)
{
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		snprintf(errbuf, errsize, "pipe: %s", strerror(errno));
		return NULL;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	/* Its stderr is not our JSON-lines log: a refusal line goes to /dev/null (the exit
	 * status says it failed; the caller retries without --parent-pid or reports). */
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	char ppid[24];
	snprintf(ppid, sizeof(ppid), "%d", (int)getpid());
	char *argv[] = {(char *)cordon, (char *)"__spawn",     (char *)"--runtimes",
			(char *)"--state-dir", (char *)state_dir,
			parent_pid ? (char *)"--parent-pid" : NULL, ppid, NULL};
	pid_t pid;
	int rc = posix_spawn(&pid, cordon, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	if (rc != 0) {
		close(out[0]);
		snprintf(errbuf, errsize, "starting \"%s\": %s", cordon, strerror(rc));
		return NULL;
	}
	char *buf = malloc(RUNTIMES_MAX_BYTES + 1);
	size_t len = 0;
	while (buf && len < RUNTIMES_MAX_BYTES) {
		ssize_t n = read(out[0], buf + len, RUNTIMES_MAX_BYTES - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	json_t *list = NULL;
	if (buf && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		json_error_t jerr;
		list = json_loadb(buf, len, 0, &jerr);
		if (!json_is_array(list)) {
			snprintf(errbuf, errsize, "`cordon __spawn --runtimes` printed no list");
			json_decref(list);
			list = NULL;
		}
	} else {
		snprintf(errbuf, errsize, "`cordon __spawn --runtimes` failed (status %d)", status);
	}
	free(buf);
	return list;
}

static void h_runtimes(struct http_req *r)
{
	if (!exec_ctx.runtimes) {
		http_reply_error(r, 500, "internal", NULL, "%s", exec_ctx.runtimes_error);
		return;
	}
	json_t *data = json_array();
	size_t i;
	json_t *rt;
	json_array_foreach(exec_ctx.runtimes, i, rt)
	{
		if (!json_is_false(json_object_get(rt, "available")))
			json_array_append(data, rt);
	}
	http_reply_json(r, 200, json_pack("{s:o}", "data", data));
}

/* ---- the module --------------------------------------------------------------------------- */

static int exec_start(struct srv *s)
{
	exec_ctx.srv = s;
	exec_ctx.store = s->store;
	struct cdn_err err = {0};
	if (!s->store) {
		/* Nothing runs that has no record: without a store the endpoints answer 503. */
		log_msg(LOG_WARN, "executions are off: no store", NULL);
		return 0;
	}
	/* What a daemon killed by -9 left: workspaces (its sandboxes' processes died with their
	 * spawners, PDEATHSIG) here; stale cgroups below, once we know it left runs behind. */
	uint64_t n = 0;
	if (ws_sweep(s->cfg.state_dir, &n, &err) < 0)
		log_msg(LOG_WARN, "sweeping workspaces failed", json_pack("{ss}", "error", err.msg));
	else if (n)
		log_msg(LOG_INFO, "stale workspaces removed", json_pack("{sI}", "count", (json_int_t)n));
	if (callbacks_new(s->cfg.state_dir, s->store, exec_hook_log, NULL, &exec_ctx.callbacks,
			  &err) < 0) {
		log_msg(LOG_ERROR, "starting callbacks failed", json_pack("{ss}", "error", err.msg));
		return -EIO;
	}
	int recovered = exec_recover(&err);
	if (recovered < 0) {
		log_msg(LOG_ERROR, "crash recovery failed", json_pack("{ss}", "error", err.msg));
		return -EIO;
	}
	/* Runs were left unfinished: their cgroups may be there (each sandbox_run() sweeps stale
	 * ones too, but the next run may be far). Only then: the sweep creates the cgroup parents
	 * it walks, which a daemon that never ran anything has no business making. */
	if (recovered > 0 && sandbox_sweep(s->cfg.state_dir, &err) < 0)
		log_msg(LOG_WARN, "sweeping stale sandboxes failed", json_pack("{ss}", "error", err.msg));
	/* The spawner dies with the daemon when it takes --parent-pid (PDEATHSIG): asked once
	 * here, with the runtimes; a spawner without it still runs, with a warning. */
	bool parent_pid = true;
	exec_ctx.runtimes = runtimes_load(s->cfg.cordon_bin, s->cfg.state_dir, true,
					  exec_ctx.runtimes_error, sizeof(exec_ctx.runtimes_error));
	if (!exec_ctx.runtimes) {
		exec_ctx.runtimes = runtimes_load(s->cfg.cordon_bin, s->cfg.state_dir, false,
						  exec_ctx.runtimes_error,
						  sizeof(exec_ctx.runtimes_error));
		if (exec_ctx.runtimes) {
			parent_pid = false;
			log_msg(LOG_WARN, "the spawner refuses --parent-pid: it runs under setpriv "
					  "--pdeathsig instead (a daemon killed while it starts one can "
					  "leave that one behind)",
				NULL);
		}
	}
	if (!exec_ctx.runtimes)
		log_msg(LOG_WARN, "runtimes unknown",
			json_pack("{ss}", "error", exec_ctx.runtimes_error));
	struct runner_config cfg = {
		.cordon_path = s->cfg.cordon_bin,
		.state_dir = s->cfg.state_dir,
		.workers = (unsigned)srv_limit("workers"),
		.queue_max = (unsigned)srv_limit("queue_max"),
		.parent_pid_arg = parent_pid,
		/* util-linux's setpriv sets PDEATHSIG, then execs the spawner. */
		.pdeathsig_wrapper = !parent_pid && access(SETPRIV, X_OK) == 0 ? SETPRIV : NULL,
		.hooks = {.save = exec_hook_save, .log = exec_hook_log},
	};
	if (runner_new(&cfg, &exec_ctx.runner, &err) < 0) {
		log_msg(LOG_ERROR, "starting the runner failed", json_pack("{ss}", "error", err.msg));
		return -EIO;
	}
	s->runner = exec_ctx.runner;
	if (exec_wait_start() < 0)
		return -EIO;
	return 0;
}

static void exec_drain(struct srv *s, uint64_t deadline_ns)
{
	(void)s;
	if (!exec_ctx.runner)
		return;
	uint64_t now = now_ns();
	/* Rounded up: the message names the configured period, not 2999 ms. */
	uint64_t grace_ms = deadline_ns > now ? (deadline_ns - now + 999999ULL) / 1000000ULL : 0;
	daiv_drain();
	runner_shutdown(exec_ctx.runner, grace_ms);
	daiv_wait_idle();
	/* Every run is recorded; let the waiter thread hand out the last answers. */
	for (int i = 0; i < 200 && exec_wait_count() > 0; i++)
		usleep(10000);
}

static void exec_stop(struct srv *s)
{
	(void)s;
	if (!exec_ctx.runner)
		return;
	exec_wait_stop();
	callbacks_free(exec_ctx.callbacks, now_ns() / 1000000ULL + 2000);
	exec_ctx.callbacks = NULL;
	runner_free(exec_ctx.runner);
	exec_ctx.runner = NULL;
	s->runner = NULL;
	json_decref(exec_ctx.runtimes);
	exec_ctx.runtimes = NULL;
}

static int exec_ready(struct srv *s, const char **ret_reason)
{
	(void)s;
	if (!exec_ctx.runner) {
		*ret_reason = "the runner is not started";
		return -EAGAIN;
	}
	return 0;
}

static const struct srv_module exec_module = {
	.name = "executions",
	.start = exec_start,
	.drain = exec_drain,
	.stop = exec_stop,
	.ready = exec_ready,
};

void exec_register(void)
{
	http_route_add(HTTP_POST, "/v1/executions", HTTP_ROUTE_JSON | HTTP_ROUTE_RATED, h_create);
	http_route_add(HTTP_GET, "/v1/executions", HTTP_ROUTE_RATED, h_list);
	http_route_add(HTTP_GET, "/v1/executions/{id}", HTTP_ROUTE_RATED, h_get);
	http_route_add(HTTP_DELETE, "/v1/executions/{id}", HTTP_ROUTE_RATED, h_delete);
	http_route_add(HTTP_POST, "/v1/executions/{id}/cancel",
		       HTTP_ROUTE_JSON_OPT | HTTP_ROUTE_RATED, h_cancel);
	http_route_add(HTTP_GET, "/v1/executions/{id}/events", HTTP_ROUTE_RATED, h_events);
	http_route_add(HTTP_GET, "/v1/executions/{id}/callbacks", HTTP_ROUTE_RATED, h_callbacks);
	http_route_add(HTTP_GET, "/v1/runtimes", HTTP_ROUTE_RATED, h_runtimes);
	srv_module_add(&exec_module);
	daiv_register();
}
