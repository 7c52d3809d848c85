/* Unit tests of the runner (src/server/runner*.c): queue bound, events in order, cancel of a
 * queued and of a running execution, SIGKILL of a spawner that ignores SIGTERM, a spawner
 * that fails, redaction of secrets the spawner let through, the tenant cap, a failed first
 * save, and shutdown with a grace period.
 *
 * The spawner is this very program: run as `unit-runner __spawn ...` it plays `cordon
 * __spawn` (SPAWN-PROTOCOL.md) by the request's "command"[0]. Prints TAP-like lines and a last
 * line "N passed, N failed". */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/runner.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			printf("not ok %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	CHECK((a) && (b) && strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a) ? (a) : "(null)",       \
	      (b) ? (b) : "(null)")

/* ---- the fake spawner --------------------------------------------------------------------- */

static volatile sig_atomic_t got_term;
static void on_term(int sig) { got_term = sig; }

static void emit(json_t *ev)
{
	char *s = json_dumps(ev, JSON_COMPACT);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(ev);
}

static void emit_result(const char *status, const char *code, const char *out)
{
	emit(json_pack("{s:s,s:{s:s,s:i,s:n,s:s,s:s,s:o,s:{s:i}}}", "type", "result", "execution",
		       "status", status, "exit_code", 0, "signal", "stdout", out, "stderr", "",
		       "error",
		       code ? json_pack("{s:s,s:s,s:n,s:n}", "code", code, "message", "fake",
					"stack", "source_location")
			    : json_null(),
		       "metrics", "wall_time_ms", 1));
}

static int fake_spawn_req(json_t *req);

static int fake_spawn(void)
{
	signal(SIGTERM, on_term);
	json_error_t jerr;
	json_t *req = json_loadf(stdin, 0, &jerr);
	int rc = fake_spawn_req(req); /* the ASan build checks leaks of the fake too */
	json_decref(req);
	return rc;
}

static int fake_spawn_req(json_t *req)
{
	const char *what = json_string_value(json_array_get(json_object_get(req, "command"), 0));
	if (!what) {
		fprintf(stderr, "cordon: bad request\n");
		return 125;
	}
	if (strcmp(what, "die") == 0) {
		fprintf(stderr, "cordon: fake failure\n");
		return 125;
	}
	emit(json_pack("{s:s,s:s,s:s}", "type", "status", "status", "running", "started_at",
		       "2026-01-01T00:00:00.000Z"));
	if (strcmp(what, "echo") == 0 || strcmp(what, "secret") == 0) {
		const char *text = json_string_value(json_object_get(req, "stdin"));
		if (strcmp(what, "secret") == 0) /* a spawner bug: the value itself */
			text = json_string_value(json_object_get(json_object_get(req, "secrets"), "T"));
		emit(json_pack("{s:s,s:s}", "type", "stdout", "data", text));
		emit_result("succeeded", NULL, text);
		return 0;
	}
	if (strcmp(what, "stubborn") == 0)
		signal(SIGTERM, SIG_IGN);
	while (!got_term)
		pause();
	emit_result("cancelled", "SANDBOX_CANCELLED", "");
	return 0;
}

/* ---- the test side ------------------------------------------------------------------------ */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int saves[3];
static bool fail_queued_save;
static char last_final[4096];

static int hook_save(void *ud, struct run_job *job, const json_t *record, enum run_final what,
		     struct cdn_err *err)
{
	if (what == RUN_SAVE_QUEUED && fail_queued_save)
		return err_set(err, EIO, "store says no");
	pthread_mutex_lock(&lock);
	saves[what]++;
	if (what == RUN_SAVE_FINAL) {
		char *s = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
		snprintf(last_final, sizeof(last_final), "%s", s ? s : "");
		free(s);
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

static void wake(void *ud)
{
	(void)ud;
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Wait (bounded: 30 s) until the job ended. */
static bool wait_done(struct run_job *j)
{
	struct run_watch *w;
	if (run_job_watch(j, wake, NULL, &w) < 0)
		return false;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 30;
	pthread_mutex_lock(&lock);
	while (!run_job_done(j))
		if (pthread_cond_timedwait(&cond, &lock, &dl) != 0)
			break;
	pthread_mutex_unlock(&lock);
	run_job_unwatch(j, w);
	return run_job_done(j);
}

static int submit(struct runner *r, const char *id, const char *what, const char *tenant,
		  unsigned cap, struct run_job **ret)
{
	const char *secrets[] = {"hunter2-secret"};
	struct run_submit s = {
		.id = id,
		.tenant = tenant,
		.tenant_max_active = cap,
		.record = json_pack("{s:s,s:{s:s}}", "id", id, "metadata", "note",
				    "contains hunter2-secret"),
		.spawn_request = json_pack("{s:[s],s:s,s:{s:s}}", "command", what, "stdin",
					   "hello", "secrets", "T", "hunter2-secret"),
		.secrets = secrets,
		.n_secrets = 1,
	};
	struct cdn_err err = {0};
	return runner_submit(r, &s, ret, &err);
}

static const char *rec_str(json_t *rec, const char *a, const char *b)
{
	json_t *v = json_object_get(rec, a);
	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

/* Wait (bounded: 30 s) until the spawner said "running". */
static bool wait_running(struct run_job *j)
{
	for (int i = 0; i < 300; i++) {
		json_t *rec = run_job_record(j);
		const char *st = rec_str(rec, "status", NULL);
		bool running = st && strcmp(st, "running") == 0;
		json_decref(rec);
		if (running)
			return true;
		usleep(100000);
	}
	return false;
}

static struct runner *start(const char *self, unsigned workers, unsigned queue)
{
	struct runner_config cfg = {
		.cordon_path = self,
		.state_dir = "/tmp",
		.workers = workers,
		.queue_max = queue,
		.hooks = {.save = hook_save},
	};
	struct runner *r = NULL;
	struct cdn_err err = {0};
	int rc = runner_new(&cfg, &r, &err);
	CHECK(rc == 0, "runner_new: %s", err.msg);
	return r;
}

static void test_echo_events(const char *self)
{
	struct runner *r = start(self, 2, 4);
	struct run_job *j = NULL;
	CHECK(submit(r, "ex_echo", "echo", "t1", 0, &j) == 0, "submit");
	CHECK(j && wait_done(j), "echo ended");
	json_t *rec = run_job_record(j);
	CHECK_STR(rec_str(rec, "status", NULL), "succeeded");
	CHECK_STR(rec_str(rec, "stdout", NULL), "hello");
	CHECK(json_is_integer(json_object_get(json_object_get(rec, "metrics"), "queue_ms")),
	      "queue_ms set");
	json_decref(rec);
	const char *want[] = {"status", "status", "stdout", "status", "end"};
	size_t cur = 0, n = 0;
	char *type, *data;
	while (run_job_next_event(j, &cur, &type, &data) == 1) {
		if (n < ARRAY_SIZE(want))
			CHECK_STR(type, want[n]);
		if (n == 2)
			CHECK(strstr(data, "hello") != NULL, "%s", data);
		n++;
		free(type);
		free(data);
	}
	CHECK(n == ARRAY_SIZE(want), "%zu events", n);
	run_job_unref(j);
	runner_shutdown(r, 1000);
	runner_free(r);
}

static void test_queue_and_cancel(const char *self)
{
	struct runner *r = start(self, 1, 1);
	struct run_job *a = NULL, *b = NULL;
	CHECK(submit(r, "ex_a", "sleep", "t1", 0, &a) == 0, "a");
	CHECK(submit(r, "ex_b", "sleep", "t1", 0, &b) == 0, "b");
	CHECK(submit(r, "ex_c", "sleep", "t1", 0, NULL) == -EAGAIN, "c refused: queue full");
	struct run_job *found = runner_find(r, "ex_b");
	CHECK(found == b, "find b");
	run_job_unref(found);
	/* b waits: cancelled at once, never run. */
	CHECK(run_job_cancel(b, "cancelled through the API") == 0, "cancel b");
	CHECK(run_job_done(b), "b done at once");
	json_t *rec = run_job_record(b);
	CHECK_STR(rec_str(rec, "status", NULL), "cancelled");
	CHECK_STR(rec_str(rec, "error", "code"), "SANDBOX_CANCELLED");
	json_decref(rec);
	CHECK(run_job_cancel(b, "again") == -EALREADY, "second cancel");
	/* a runs: SIGTERM, its result says cancelled, with our reason. Wait until it runs. */
	CHECK(wait_running(a), "a runs");
	CHECK(run_job_cancel(a, "cancelled through the API") == 0, "cancel a");
	CHECK(wait_done(a), "a ended");
	rec = run_job_record(a);
	CHECK_STR(rec_str(rec, "status", NULL), "cancelled");
	CHECK_STR(rec_str(rec, "error", "message"), "cancelled through the API");
	json_decref(rec);
	run_job_unref(a);
	run_job_unref(b);
	runner_shutdown(r, 1000);
	runner_free(r);
}

static void test_stubborn_killed(const char *self)
{
	struct runner *r = start(self, 1, 0);
	struct run_job *j = NULL;
	CHECK(submit(r, "ex_st", "stubborn", "t1", 0, &j) == 0, "submit");
	CHECK(wait_running(j), "runs");
	CHECK(run_job_cancel(j, "stop") == 0, "cancel");
	CHECK(wait_done(j), "ended after SIGKILL");
	json_t *rec = run_job_record(j);
	CHECK_STR(rec_str(rec, "status", NULL), "cancelled");
	json_decref(rec);
	run_job_unref(j);
	runner_shutdown(r, 0);
	runner_free(r);
}

static void test_die_and_secret(const char *self)
{
	struct runner *r = start(self, 2, 2);
	struct run_job *d = NULL, *s = NULL;
	CHECK(submit(r, "ex_die", "die", "t1", 0, &d) == 0, "die");
	CHECK(submit(r, "ex_sec", "secret", "t1", 0, &s) == 0, "secret");
	CHECK(wait_done(d) && wait_done(s), "both ended");
	json_t *rec = run_job_record(d);
	CHECK_STR(rec_str(rec, "status", NULL), "failed");
	CHECK_STR(rec_str(rec, "error", "code"), "SANDBOX_INTERNAL");
	CHECK_STR(rec_str(rec, "error", "message"), "cordon: fake failure");
	json_decref(rec);
	rec = run_job_record(s);
	char *text = json_dumps(rec, JSON_COMPACT);
	CHECK(text && !strstr(text, "hunter2-secret"), "record: %s", text ? text : "(null)");
	CHECK(text && strstr(text, "[REDACTED]"), "record: %s", text ? text : "(null)");
	free(text);
	json_decref(rec);
	size_t cur = 0;
	char *type, *data;
	while (run_job_next_event(s, &cur, &type, &data) == 1) {
		CHECK(!strstr(data, "hunter2-secret"), "event %s: %s", type, data);
		free(type);
		free(data);
	}
	pthread_mutex_lock(&lock);
	CHECK(!strstr(last_final, "hunter2-secret"), "saved: %s", last_final);
	pthread_mutex_unlock(&lock);
	run_job_unref(d);
	run_job_unref(s);
	runner_shutdown(r, 1000);
	runner_free(r);
}

static void test_tenant_cap_and_save_failure(const char *self)
{
	struct runner *r = start(self, 2, 2);
	struct run_job *a = NULL;
	CHECK(submit(r, "ex_t1", "sleep", "ten", 1, &a) == 0, "first");
	CHECK(submit(r, "ex_t2", "sleep", "ten", 1, NULL) == -EDQUOT, "second over the cap");
	CHECK(submit(r, "ex_t3", "echo", "other", 1, NULL) == 0, "another tenant");
	fail_queued_save = true;
	CHECK(submit(r, "ex_t4", "echo", "other2", 0, NULL) == -EIO, "no record, no run");
	fail_queued_save = false;
	CHECK(runner_find(r, "ex_t4") == NULL, "not in flight");
	/* Shutdown: a keeps sleeping through the grace period, then is cancelled, recorded. */
	CHECK(wait_running(a), "a runs");
	pthread_mutex_lock(&lock);
	int finals = saves[RUN_SAVE_FINAL];
	pthread_mutex_unlock(&lock);
	runner_shutdown(r, 300);
	CHECK(run_job_done(a), "a recorded");
	json_t *rec = run_job_record(a);
	CHECK_STR(rec_str(rec, "status", NULL), "cancelled");
	const char *msg = rec_str(rec, "error", "message");
	CHECK(msg && strstr(msg, "grace period of 300 ms"), "%s", msg ? msg : "(null)");
	json_decref(rec);
	pthread_mutex_lock(&lock);
	CHECK(saves[RUN_SAVE_FINAL] > finals, "final saved");
	pthread_mutex_unlock(&lock);
	CHECK(submit(r, "ex_t5", "echo", "t", 0, NULL) == -ESHUTDOWN, "refused after shutdown");
	run_job_unref(a);
	runner_free(r);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "__spawn") == 0)
		return fake_spawn();
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return 1;
	self[n] = 0;
	alarm(120);
	test_echo_events(self);
	test_queue_and_cancel(self);
	test_stubborn_killed(self);
	test_die_and_secret(self);
	test_tenant_cap_and_save_failure(self);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
