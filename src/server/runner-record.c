/* From __spawn's event lines and exit status to the execution's record and events.
 *
 * Every string that reaches a record, an event or a hook passes through the secret redaction
 * here, although __spawn already redacts what it writes: defence in depth, and the daemon's
 * own texts (error messages with a spawner's stderr line, metadata) get the same treatment. */
#include "server/runner-job.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#define SECRETS(j) (const char *const *)(j)->secrets, (j)->n_secrets

static json_t *error_object(const char *code, const char *message)
{
	return json_pack("{s:s,s:s,s:n,s:n}", "code", code, "message", message, "stack",
			 "source_location");
}

/* Fields a result line may not overwrite: they are the daemon's. */
static bool daemon_field(const char *key)
{
	static const char *const keys[] = {"id", "metadata", "created_at", "cordon", "tenant_id"};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

static uint64_t queue_ms(struct run_job *j)
{
	uint64_t end = j->claim_ns ? j->claim_ns : now_ns();
	return end > j->submit_ns ? (end - j->submit_ns) / 1000000ULL : 0;
}

/* Install the final record: saved first, then subscribers see status + end. */
static void job_finish(struct run_job *j, json_t *rec)
{
	char now[40];
	runner_rfc3339(runner_realtime_ns(), now, sizeof(now));
	if (!json_is_string(json_object_get(rec, "finished_at")))
		json_object_set_new(rec, "finished_at", json_string(now));
	json_t *metrics = json_object_get(rec, "metrics");
	if (!json_is_object(metrics)) {
		metrics = json_object();
		json_object_set_new(rec, "metrics", metrics);
	}
	pthread_mutex_lock(&j->lock);
	json_object_set_new(metrics, "queue_ms", json_integer((json_int_t)queue_ms(j)));
	pthread_mutex_unlock(&j->lock);
	runner_redact_json(rec, SECRETS(j));

	pthread_mutex_lock(&j->lock);
	json_decref(j->record);
	j->record = rec;
	pthread_mutex_unlock(&j->lock);
	job_save(j, RUN_SAVE_FINAL, NULL);

	pthread_mutex_lock(&j->lock);
	j->state = JOB_DONE;
	const char *status = json_string_value(json_object_get(rec, "status"));
	job_push_event_locked(j, "status", json_pack("{s:s}", "status", status ? status : "failed"));
	json_t *end = json_pack("{s:s,s:O?,s:O?,s:O?,s:O?,s:O?}", "id", j->id, "status",
				json_object_get(rec, "status"), "exit_code",
				json_object_get(rec, "exit_code"), "signal",
				json_object_get(rec, "signal"), "error", json_object_get(rec, "error"),
				"metrics", json_object_get(rec, "metrics"));
	job_push_event_locked(j, "end", end);
	pthread_mutex_unlock(&j->lock);
	job_notify(j);
}

static json_t *job_record_copy(struct run_job *j)
{
	json_t *rec = run_job_record(j);
	return rec ? rec : json_object();
}

static void job_finish_error(struct run_job *j, const char *status, const char *code,
			     const char *msg)
{
	json_t *rec = job_record_copy(j);
	json_object_set_new(rec, "status", json_string(status));
	json_object_set_new(rec, "error", error_object(code, msg));
	job_finish(j, rec);
}

void job_finish_unstarted(struct run_job *j, const char *reason)
{
	job_finish_error(j, "cancelled", "SANDBOX_CANCELLED", reason);
}

void job_finish_internal(struct run_job *j, const char *msg)
{
	job_finish_error(j, "failed", "SANDBOX_INTERNAL", msg);
}

void job_finish_spawned(struct run_job *j, int wait_status, const char *errline)
{
	json_t *result = TAKE_PTR(j->result);
	pthread_mutex_lock(&j->lock);
	bool cancelled = j->cancel_requested;
	char reason[sizeof(j->cancel_reason)];
	memcpy(reason, j->cancel_reason, sizeof(reason));
	pthread_mutex_unlock(&j->lock);

	if (result) {
		json_t *rec = job_record_copy(j);
		const char *key;
		json_t *val;
		json_object_foreach(result, key, val)
		{
			if (!daemon_field(key))
				json_object_set(rec, key, val);
		}
		json_decref(result);
		/* The reason of an API or shutdown cancel is ours, not __spawn's generic one. */
		json_t *err = json_object_get(rec, "error");
		const char *status = json_string_value(json_object_get(rec, "status"));
		if (cancelled && status && strcmp(status, "cancelled") == 0 && json_is_object(err))
			json_object_set_new(err, "message", json_string(reason));
		if (!json_is_string(json_object_get(rec, "status")))
			json_object_set_new(rec, "status", json_string("failed"));
		job_finish(j, rec);
		return;
	}
	if (cancelled) {
		/* Ended by our SIGTERM (or SIGKILL) before it could write a result. */
		job_finish_unstarted(j, reason);
		return;
	}
	char msg[1200];
	if (WIFEXITED(wait_status) && errline[0])
		snprintf(msg, sizeof(msg), "%s", errline);
	else if (WIFEXITED(wait_status))
		snprintf(msg, sizeof(msg), "the spawner exited with status %d and no result",
			 WEXITSTATUS(wait_status));
	else if (WIFSIGNALED(wait_status))
		snprintf(msg, sizeof(msg), "the spawner was killed by signal %d%s%s",
			 WTERMSIG(wait_status), errline[0] ? ": " : "", errline);
	else
		snprintf(msg, sizeof(msg), "the spawner ended with no result");
	job_finish_internal(j, msg);
}

/* One line of __spawn's stdout. */
void job_event(struct run_job *j, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *ev = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(ev)) {
		json_decref(ev);
		return; /* not ours to interpret; a missing result line is what counts */
	}
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (!type) {
		json_decref(ev);
		return;
	}
	if (strcmp(type, "result") == 0) {
		json_t *ex = json_object_get(ev, "execution");
		if (json_is_object(ex)) {
			json_decref(j->result);
			j->result = json_incref(ex);
		}
		json_decref(ev);
		return;
	}
	if (strcmp(type, "status") == 0) {
		const char *status = json_string_value(json_object_get(ev, "status"));
		if (!status || strcmp(status, "running") != 0) {
			json_decref(ev);
			return; /* the final status comes from the result line */
		}
		json_t *started = json_object_get(ev, "started_at");
		pthread_mutex_lock(&j->lock);
		json_object_set_new(j->record, "status", json_string("running"));
		if (json_is_string(started))
			json_object_set(j->record, "started_at", started);
		job_push_event_locked(j, "status",
				      json_pack("{s:s,s:O?}", "status", "running", "started_at",
						json_is_string(started) ? started : NULL));
		pthread_mutex_unlock(&j->lock);
		job_notify(j);
		json_decref(ev);
		job_save(j, RUN_SAVE_RUNNING, NULL);
		return;
	}
	if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0 ||
	    strcmp(type, "log") == 0) {
		char name[8];
		snprintf(name, sizeof(name), "%s", type); /* type points into ev */
		json_object_del(ev, "type");
		runner_redact_json(ev, SECRETS(j));
		pthread_mutex_lock(&j->lock);
		job_push_event_locked(j, name, ev); /* steals ev */
		pthread_mutex_unlock(&j->lock);
		job_notify(j);
		return;
	}
	json_decref(ev);
}
