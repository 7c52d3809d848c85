/* The runner's hooks for the daemon: each state of an execution goes to the store (the
 * record survives a crash), a finished one also to usage, metrics and its callback. And the
 * way back: a stored execution as the API object. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/callback.h"
#include "server/exec.h"
#include "server/log.h"
#include "server/metrics.h"

struct exec_ctx exec_ctx;

void exec_job_data_free(void *p)
{
	struct exec_job_data *d = p;
	if (!d)
		return;
	free(d->callback_url);
	free(d->request_json);
	free(d);
}

void exec_hook_log(void *ud, const char *level, const char *msg)
{
	(void)ud;
	enum log_level l = !strcmp(level, "error") ? LOG_ERROR
			   : !strcmp(level, "warn") ? LOG_WARN
						     : LOG_INFO;
	log_msg(l, msg, NULL);
}

int64_t exec_parse_time_ms(const char *s)
{
	if (!s)
		return 0;
	struct tm tm = {0};
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return 0;
	int64_t ms = (int64_t)timegm(&tm) * 1000;
	if (rest[0] == '.') {
		int64_t frac = 0, scale = 100;
		for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
			if (scale > 0)
				frac += (*rest - '0') * scale;
		ms += frac;
	}
	return ms;
}

static json_t *time_or_null(int64_t ms)
{
	if (ms <= 0)
		return json_null();
	char buf[40];
	runner_rfc3339((uint64_t)ms * 1000000ULL, buf, sizeof(buf));
	return json_string(buf);
}

static enum store_exec_status status_of(const json_t *record)
{
	enum store_exec_status st = STORE_EXEC_FAILED;
	const char *s = json_string_value(json_object_get(record, "status"));
	if (s)
		store_exec_status_parse(s, &st);
	return st;
}

/* What of the record goes to result_json: everything but what has its own column. */
static char *result_text(const json_t *record)
{
	json_t *res = json_deep_copy(record);
	static const char *const own[] = {"id", "status", "stdout", "stderr", "logs",
					  "created_at", "started_at", "finished_at", "metadata"};
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		json_object_del(res, own[i]);
	char *text = json_dumps(res, JSON_COMPACT);
	json_decref(res);
	return text;
}

/* An error message that fits the column (cut on a UTF-8 boundary). */
static void message_fit(const char *in, char *out, size_t size)
{
	size_t n = strlen(in);
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)in[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(out, in, n);
	out[n] = 0;
}

static void update_gauges(void)
{
	struct runner_stats st;
	if (!exec_ctx.runner)
		return;
	runner_stats(exec_ctx.runner, &st);
	metrics_queue_depth(st.queued);
	metrics_running(st.running);
}

static void finished(struct run_job *job, const json_t *record, struct exec_job_data *d)
{
	const json_t *metrics = json_object_get(record, "metrics");
	json_int_t wall = json_integer_value(json_object_get(metrics, "wall_time_ms"));
	const char *status = json_string_value(json_object_get(record, "status"));
	const char *code = json_string_value(json_object_get(json_object_get(record, "error"),
							      "code"));
	metrics_execution_done(status ? status : "failed", code, wall > 0 ? (uint64_t)wall : 0);
	char period[STORE_PERIOD_MAX];
	store_period_of(d->created_ms, period);
	struct cdn_err err = {0};
	/* Usage counts the month the execution was created in: a run straddling midnight of
	 * the 1st is one month's, once. */
	if (store_usage_add(exec_ctx.store, d->tenant_id, period, wall > 0 ? (uint64_t)wall : 0,
			    1, &err) < 0)
		log_msg(LOG_ERROR, "recording usage failed",
			json_pack("{ss ss}", "execution", run_job_id(job), "error", err.msg));
	if (d->callback_url && exec_ctx.callbacks) {
		char *body = json_dumps(record, JSON_COMPACT);
		if (body)
			callbacks_enqueue(exec_ctx.callbacks, run_job_id(job), d->callback_url, body);
		free(body);
	}
}

int exec_hook_save(void *ud, struct run_job *job, const json_t *record, enum run_final what,
		   struct cdn_err *err)
{
	(void)ud;
	struct exec_job_data *d = run_job_userdata(job);
	int rc = 0;
	if (what == RUN_SAVE_QUEUED) {
		struct store_exec_new n = {
			.id = run_job_id(job),
			.tenant_id = d->tenant_id,
			.status = STORE_EXEC_QUEUED,
			.created_at_ms = d->created_ms,
			.request_json = d->request_json,
			.callback_url = d->callback_url,
		};
		rc = store_exec_insert(exec_ctx.store, &n, err);
		update_gauges();
		return rc;
	}
	struct cdn_err serr = {0};
	if (what == RUN_SAVE_RUNNING) {
		struct store_exec_update u = {
			.set = STORE_SET_STATUS | STORE_SET_STARTED,
			.expect_status = STORE_STATUS_BIT(STORE_EXEC_QUEUED),
			.status = STORE_EXEC_RUNNING,
			.started_at_ms = exec_parse_time_ms(
				json_string_value(json_object_get(record, "started_at"))),
		};
		rc = store_exec_update(exec_ctx.store, NULL, run_job_id(job), &u, &serr);
	} else {
		const json_t *error = json_object_get(record, "error");
		const char *code = json_string_value(json_object_get(error, "code"));
		char msg[STORE_MESSAGE_MAX];
		message_fit(json_string_value(json_object_get(error, "message"))
				    ?: (code ? code : ""),
			    msg, sizeof(msg));
		_cleanup_free_ char *result = result_text(record);
		_cleanup_free_ char *logs = json_dumps(json_object_get(record, "logs") ?: json_null(),
						       JSON_COMPACT | JSON_ENCODE_ANY);
		const char *out = json_string_value(json_object_get(record, "stdout")) ?: "";
		const char *errs = json_string_value(json_object_get(record, "stderr")) ?: "";
		int64_t started = exec_parse_time_ms(
			json_string_value(json_object_get(record, "started_at")));
		struct store_exec_update u = {
			.set = STORE_SET_STATUS | STORE_SET_FINISHED | STORE_SET_ERROR |
			       STORE_SET_RESULT | STORE_SET_OUTPUTS | STORE_SET_LOGS |
			       (started ? STORE_SET_STARTED : 0),
			.expect_status = STORE_STATUS_UNFINISHED,
			.status = status_of(record),
			.started_at_ms = started,
			.finished_at_ms = exec_parse_time_ms(
				json_string_value(json_object_get(record, "finished_at"))),
			.error_code = code,
			.error_message = code ? msg : NULL,
			.result_json = result,
			.logs_json = logs,
			.stdout_data = out,
			.stdout_len = strlen(out),
			.stderr_data = errs,
			.stderr_len = strlen(errs),
		};
		if (!result || !logs)
			rc = err_set(&serr, ENOMEM, "serializing the record");
		else
			rc = store_exec_update(exec_ctx.store, NULL, run_job_id(job), &u, &serr);
		finished(job, record, d);
	}
	if (rc < 0)
		log_msg(LOG_ERROR, "saving an execution failed",
			json_pack("{ss ss}", "execution", run_job_id(job), "error", serr.msg));
	update_gauges();
	return 0;
}

json_t *exec_from_store(const struct store_exec *e)
{
	json_error_t jerr;
	json_t *req = json_loads(e->request_json, 0, &jerr);
	json_t *obj = json_deep_copy(json_object_get(req, "record"));
	json_decref(req);
	if (!json_is_object(obj)) {
		json_decref(obj);
		obj = json_object();
	}
	json_t *res = e->result_json ? json_loads(e->result_json, 0, &jerr) : NULL;
	if (json_is_object(res))
		json_object_update(obj, res);
	json_object_set_new(obj, "id", json_string(e->id));
	json_object_set_new(obj, "status", json_string(store_exec_status_name(e->status)));
	/* The columns are authoritative (crash recovery writes them without a result). */
	if (e->error_code[0]) {
		json_t *old = json_object_get(res, "error");
		const char *oc = json_string_value(json_object_get(old, "code"));
		json_t *err = oc && !strcmp(oc, e->error_code)
				      ? json_deep_copy(old)
				      : json_pack("{s:s,s:n,s:n}", "code", e->error_code, "stack",
						  "source_location");
		json_object_set_new(err, "message", json_string(e->error_message));
		json_object_set_new(obj, "error", err);
	} else {
		json_object_set_new(obj, "error", json_null());
	}
	json_decref(res);
	if (e->stdout_data)
		json_object_set_new(obj, "stdout", json_stringn(e->stdout_data, e->stdout_len));
	if (e->stderr_data)
		json_object_set_new(obj, "stderr", json_stringn(e->stderr_data, e->stderr_len));
	json_t *logs = e->logs_json ? json_loads(e->logs_json, JSON_DECODE_ANY, &jerr) : NULL;
	json_object_set_new(obj, "logs", json_is_array(logs) ? logs : json_array());
	if (!json_is_array(logs))
		json_decref(logs);
	json_object_set_new(obj, "created_at", time_or_null(e->created_at_ms));
	json_object_set_new(obj, "started_at", time_or_null(e->started_at_ms));
	json_object_set_new(obj, "finished_at", time_or_null(e->finished_at_ms));
	return obj;
}

int exec_lookup(const char *tenant_id, const char *id, json_t **ret, struct cdn_err *err)
{
	*ret = NULL;
	struct run_job *j = runner_find(exec_ctx.runner, id);
	if (j) {
		const char *owner = run_job_tenant(j);
		bool mine = owner && tenant_id && !strcmp(owner, tenant_id);
		if (mine)
			*ret = run_job_record(j);
		run_job_unref(j);
		if (!mine)
			return err_set(err, ENOENT, "no execution \"%s\"", id);
		return *ret ? 0 : err_set(err, ENOMEM, "copying the record");
	}
	struct store_exec e = {0};
	int rc = store_exec_get(exec_ctx.store, tenant_id, id, STORE_WITH_OUTPUTS, &e, err);
	if (rc < 0)
		return rc;
	*ret = exec_from_store(&e);
	store_exec_release(&e);
	return *ret ? 0 : err_set(err, ENOMEM, "building the record");
}

/* ---- crash recovery ----------------------------------------------------------------------- */

struct recovered {
	char (*ids)[STORE_ID_MAX];
	size_t n, cap;
};

static void recovered_add(void *ud, const char *tenant_id, const char *id)
{
	(void)tenant_id;
	struct recovered *rv = ud;
	if (rv->n == rv->cap) {
		size_t cap = rv->cap ? rv->cap * 2 : 16;
		void *p = realloc(rv->ids, cap * sizeof(*rv->ids));
		if (!p)
			return; /* the record is failed already; only its callback is lost */
		rv->ids = p;
		rv->cap = cap;
	}
	snprintf(rv->ids[rv->n++], STORE_ID_MAX, "%s", id);
}

int exec_recover(struct cdn_err *err)
{
	struct recovered rv = {0};
	uint64_t n = 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int rc = store_exec_fail_unfinished(exec_ctx.store, now, "daemon restarted", recovered_add,
					    &rv, &n, err);
	if (rc < 0) {
		free(rv.ids);
		return rc;
	}
	if (n)
		log_msg(LOG_WARN, "executions left unfinished by a previous daemon marked failed",
			json_pack("{sI}", "count", (json_int_t)n));
	/* Their callbacks: the record as it is now (failed, SANDBOX_INTERNAL). */
	for (size_t i = 0; i < rv.n && exec_ctx.callbacks; i++) {
		struct store_exec e = {0};
		if (store_exec_get(exec_ctx.store, NULL, rv.ids[i], STORE_WITH_OUTPUTS, &e, NULL) < 0)
			continue;
		if (e.callback_url) {
			json_t *obj = exec_from_store(&e);
			char *body = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
			if (body)
				callbacks_enqueue(exec_ctx.callbacks, e.id, e.callback_url, body);
			free(body);
			json_decref(obj);
		}
		store_exec_release(&e);
	}
	free(rv.ids);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}
