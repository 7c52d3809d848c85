/* daiv-sandbox compatibility: POST /api/v1/run/commands/ {run_id, base_image, archive,
 * commands} -> {"results": [{command, output, exit_code}], "archive": base64 tar.gz | null}.
 *
 * The archive is extracted into a workspace (workspace.h: a bounded tmpfs, extract_tar_at:
 * nothing written outside it, hard links refused, devices skipped, symlinks never followed),
 * then each command runs as one execution of the tenant (same limits, records, usage and
 * quotas as POST /v1/executions) with the workspace bound read-write at /workspace as its
 * working directory, in order. What the commands created or changed (content, mode, symlink
 * target) comes back as a tar.gz; null when nothing changed.
 *
 * The request is served by its own thread (the HTTP thread defers the reply): extraction and
 * packing take time and the commands run one after the other. At most DAIV_MAX_ACTIVE at once
 * (503 beyond). */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "server/exec.h"
#include "server/http.h"
#include "server/log.h"
#include "server/server.h"
#include "server/tenants.h"
#include "server/validate.h"
#include "server/workspace.h"

#define DAIV_MAX_ACTIVE 16
#define DAIV_MAX_COMMANDS 64
#define DAIV_MAX_RUN_ID 128
#define DAIV_WORKDIR "/workspace"

struct daiv_req {
	struct http_deferred *d;
	struct tenant tenant;
	char *run_id, *image;
	json_t *commands;
	void *tar;
	size_t tar_len;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static pthread_mutex_t daiv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t daiv_idle = PTHREAD_COND_INITIALIZER;
static unsigned daiv_active;
static bool daiv_closed;

/* ---- images ------------------------------------------------------------------------------- */

static bool image_installed(const char *state_dir, const char *name)
{
	if (!strcmp(name, "host"))
		return true;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '.'))
			return false;
	if (name[0] == '.' || strlen(name) > 64)
		return false;
	char path[4200];
	snprintf(path, sizeof(path), "%s/images/%s/rootfs", state_dir, name);
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *images_known(const char *state_dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/images", state_dir);
	size_t cap = 64, len = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	len = (size_t)snprintf(out, cap, "host");
	DIR *d = opendir(path);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.' || !image_installed(state_dir, e->d_name))
			continue;
		size_t need = len + strlen(e->d_name) + 3;
		if (need > cap) {
			char *n = realloc(out, need * 2);
			if (!n)
				break;
			out = n;
			cap = need * 2;
		}
		len += (size_t)snprintf(out + len, cap - len, ", %s", e->d_name);
	}
	if (d)
		closedir(d);
	return out;
}

/* daiv names Docker images ("python:3.12"). A cordon image of that name, or of its
 * repository part ("python"), is used; the repositories of the stock language images whose
 * tools the `host` image has (python, node, bash, debian, ubuntu) run on `host`. */
static char *image_resolve(const char *state_dir, const char *base)
{
	if (image_installed(state_dir, base))
		return strdup(base);
	char repo[128];
	const char *slash = strrchr(base, '/');
	snprintf(repo, sizeof(repo), "%s", slash ? slash + 1 : base);
	repo[strcspn(repo, ":@")] = 0;
	if (repo[0] && image_installed(state_dir, repo))
		return strdup(repo);
	static const char *const on_host[] = {"python", "node", "bash", "debian", "ubuntu"};
	for (size_t i = 0; i < ARRAY_SIZE(on_host); i++)
		if (!strcmp(repo, on_host[i]))
			return strdup("host");
	return NULL;
}

/* ---- one request -------------------------------------------------------------------------- */

static void daiv_req_free(struct daiv_req *q)
{
	free(q->run_id);
	free(q->image);
	json_decref(q->commands);
	free(q->tar);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

static void daiv_wake(void *ud)
{
	struct daiv_req *q = ud;
	pthread_mutex_lock(&q->lock);
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Run one command in the workspace; its combined output and exit code into *ret. */
static int daiv_command(struct daiv_req *q, struct workspace *ws, size_t i, json_t **ret,
			unsigned *ret_status, struct cdn_err *err)
{
	const char *cmd = json_string_value(json_array_get(q->commands, i));
	_cleanup_free_ char *script = NULL;
	/* stderr into stdout, as daiv returns one output; the root of the archive is the
	 * working directory. */
	if (asprintf(&script, "exec 2>&1\ncd " DAIV_WORKDIR " || exit 1\n%s", cmd) < 0)
		return err_set(err, ENOMEM, "script");
	json_t *body = json_pack("{s:[s,s,s],s:s}", "command", "/bin/sh", "-c", script, "image",
				 q->image);
	json_t *spawn = NULL, *extra = NULL;
	struct val_err ve = {0};
	int rc = val_execution(body, &q->tenant, &spawn, &extra, &ve);
	json_decref(body);
	json_decref(extra);
	if (rc < 0) {
		*ret_status = ve.status;
		return err_set(err, 0, "commands[%zu]: %s", i, ve.msg);
	}
	json_object_set_new(spawn, "workspace",
			    json_pack("{s:s,s:s}", "host_dir", ws->path, "path", DAIV_WORKDIR));
	json_t *meta = json_pack("{s:{s:s,s:i}}", "metadata", "daiv_run_id", q->run_id,
				 "daiv_command", (int)i);
	struct run_job *j = NULL;
	rc = exec_submit(&q->tenant, spawn, meta, &j, err);
	json_decref(meta);
	if (rc < 0) {
		*ret_status = rc == -EDQUOT ? 429 : rc == -EAGAIN || rc == -ESHUTDOWN ? 503 : 500;
		return rc;
	}
	struct run_watch *w = NULL;
	run_job_watch(j, daiv_wake, q, &w);
	pthread_mutex_lock(&q->lock);
	while (!run_job_done(j))
		pthread_cond_wait(&q->cond, &q->lock);
	pthread_mutex_unlock(&q->lock);
	run_job_unwatch(j, w);
	json_t *rec = run_job_record(j);
	run_job_unref(j);
	if (!rec)
		return err_set(err, ENOMEM, "record");
	const char *out = json_string_value(json_object_get(rec, "stdout")) ?: "";
	const char *errs = json_string_value(json_object_get(rec, "stderr")) ?: "";
	json_t *error = json_object_get(rec, "error");
	const char *code = json_string_value(json_object_get(error, "code"));
	const char *msg = json_string_value(json_object_get(error, "message"));
	/* A limit or cordon failure is not the program's output, but daiv has no other place
	 * for it: it is appended, marked. */
	_cleanup_free_ char *output = NULL;
	bool note = code && strcmp(code, "SANDBOX_RUNTIME_ERROR") != 0;
	if (asprintf(&output, "%s%s%s%s%s%s", out, errs, note ? "\n[cordon: " : "",
		     note ? code : "", note && msg ? ": " : "", note ? (msg ? msg : "") : "") < 0) {
		json_decref(rec);
		return err_set(err, ENOMEM, "output");
	}
	if (note) {
		char *o2 = NULL;
		if (asprintf(&o2, "%s]", output) >= 0) {
			free(output);
			output = o2;
		}
	}
	json_t *ec = json_object_get(rec, "exit_code");
	json_t *sig = json_object_get(rec, "signal");
	json_int_t exit_code = json_is_integer(ec)    ? json_integer_value(ec)
			       : json_is_integer(sig) ? 128 + json_integer_value(sig)
						      : 125;
	*ret = json_pack("{s:s,s:s,s:I}", "command", cmd, "output", output, "exit_code", exit_code);
	json_decref(rec);
	return 0;
}

static void *daiv_main(void *arg)
{
	struct daiv_req *q = arg;
	struct workspace ws = {.fd = -1};
	struct ws_snapshot *before = NULL;
	struct cdn_err err = {0};
	json_t *results = json_array();
	char name[STORE_ID_MAX + 8];
	char idbuf[STORE_ID_MAX];
	store_id_new("ws_", idbuf);
	snprintf(name, sizeof(name), "%s", idbuf);
	unsigned status = 500;
	int rc = ws_create(srv_global->cfg.state_dir, name, 256ULL << 20, 100000, &ws, &err);
	if (rc == 0 && q->tar_len) {
		rc = ws_extract(&ws, q->tar, q->tar_len, &err);
		if (rc < 0) {
			status = 422;
			err_wrap(&err, "archive refused");
		}
	}
	if (rc == 0)
		rc = ws_snapshot_take(&ws, &before, &err);
	for (size_t i = 0; rc == 0 && i < json_array_size(q->commands); i++) {
		json_t *one = NULL;
		rc = daiv_command(q, &ws, i, &one, &status, &err);
		if (rc == 0)
			json_array_append_new(results, one);
	}
	void *tar = NULL;
	size_t tar_len = 0;
	if (rc == 0)
		rc = ws_changed_tar(&ws, before, &tar, &tar_len, &err);
	if (rc < 0) {
		const char *code = status == 422   ? "validation_failed"
				   : status == 429 ? "quota_exceeded"
				   : status == 503 ? "overloaded"
						   : "internal";
		if (status == 429 || status == 503)
			http_deferred_add_header(q->d, "Retry-After", "1");
		http_deferred_error(q->d, status, code, status == 422 ? "archive" : NULL, "%s",
				    err.msg);
		json_decref(results);
	} else {
		char *b64 = tar ? ws_b64_encode(tar, tar_len) : NULL;
		http_deferred_json(q->d, 200,
				   json_pack("{s:o,s:s?}", "results", results, "archive", b64));
		free(b64);
	}
	free(tar);
	ws_snapshot_free(before);
	ws_destroy(&ws);
	daiv_req_free(q);
	pthread_mutex_lock(&daiv_lock);
	daiv_active--;
	pthread_cond_broadcast(&daiv_idle);
	pthread_mutex_unlock(&daiv_lock);
	return NULL;
}

/* ---- the endpoint ------------------------------------------------------------------------- */

static void h_daiv(struct http_req *r)
{
	if (!exec_available(r))
		return;
	static const struct val_field fields[] = {
		{"run_id", VT_STRING, true},
		{"base_image", VT_STRING, true},
		{"archive", VT_STRING | VT_NULL, true},
		{"commands", VT_ARRAY, true},
	};
	struct val_err ve = {0};
	if (val_object(r->body, "", fields, ARRAY_SIZE(fields), &ve) < 0) {
		http_reply_error(r, ve.status, ve.code, ve.field[0] ? ve.field : NULL, "%s", ve.msg);
		return;
	}
	const char *run_id = json_string_value(json_object_get(r->body, "run_id"));
	const char *base = json_string_value(json_object_get(r->body, "base_image"));
	json_t *cmds = json_object_get(r->body, "commands");
	if (strlen(run_id) > DAIV_MAX_RUN_ID) {
		http_reply_error(r, 422, "validation_failed", "run_id", "run_id is over %d bytes",
				 DAIV_MAX_RUN_ID);
		return;
	}
	if (json_array_size(cmds) == 0 || json_array_size(cmds) > DAIV_MAX_COMMANDS) {
		http_reply_error(r, 422, "validation_failed", "commands",
				 "commands must hold 1 to %d strings", DAIV_MAX_COMMANDS);
		return;
	}
	for (size_t i = 0; i < json_array_size(cmds); i++) {
		json_t *c = json_array_get(cmds, i);
		if (!json_is_string(c) || json_string_length(c) == 0 ||
		    json_string_length(c) > srv_limit("max_arg_bytes") ||
		    strlen(json_string_value(c)) != json_string_length(c)) {
			char field[32];
			snprintf(field, sizeof(field), "commands[%zu]", i);
			http_reply_error(r, 422, "validation_failed", field,
					 "%s must be a non-empty string without NUL bytes", field);
			return;
		}
	}
	char *image = image_resolve(srv_global->cfg.state_dir, base);
	if (!image) {
		_cleanup_free_ char *known = images_known(srv_global->cfg.state_dir);
		http_reply_error(r, 422, "validation_failed", "base_image",
				 "unknown image \"%.100s\"; known images: %s", base,
				 known ? known : "host");
		return;
	}
	json_t *arch = json_object_get(r->body, "archive");
	void *tar = NULL;
	size_t tar_len = 0;
	if (json_is_string(arch) && json_string_length(arch) > 0 &&
	    ws_b64_decode(json_string_value(arch), json_string_length(arch), &tar, &tar_len) < 0) {
		free(image);
		http_reply_error(r, 422, "validation_failed", "archive",
				 "archive is not valid base64");
		return;
	}
	if (atomic_load(&r->srv->draining) || !exec_quota_check(r)) {
		if (atomic_load(&r->srv->draining))
			http_reply_error(r, 503, "overloaded", NULL, "the daemon is shutting down");
		free(image);
		free(tar);
		return;
	}
	struct daiv_req *q = calloc(1, sizeof(*q));
	if (!q || !(q->run_id = strdup(run_id))) {
		free(q);
		free(image);
		free(tar);
		http_reply_error(r, 500, "internal", NULL, "out of memory");
		return;
	}
	q->tenant = *r->tenant;
	q->image = image;
	q->commands = json_incref(cmds);
	q->tar = tar;
	q->tar_len = tar_len;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);

	pthread_mutex_lock(&daiv_lock);
	bool full = daiv_closed || daiv_active >= DAIV_MAX_ACTIVE;
	if (!full)
		daiv_active++;
	pthread_mutex_unlock(&daiv_lock);
	if (full) {
		daiv_req_free(q);
		http_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "overloaded", NULL, "%d daiv runs in progress",
				 DAIV_MAX_ACTIVE);
		return;
	}
	q->d = http_defer(r);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, daiv_main, q) != 0) {
		http_deferred_error(q->d, 500, "internal", NULL, "starting a thread failed");
		daiv_req_free(q);
		pthread_mutex_lock(&daiv_lock);
		daiv_active--;
		pthread_mutex_unlock(&daiv_lock);
	}
	pthread_attr_destroy(&attr);
}

void daiv_drain(void)
{
	pthread_mutex_lock(&daiv_lock);
	daiv_closed = true;
	pthread_mutex_unlock(&daiv_lock);
}

void daiv_wait_idle(void)
{
	pthread_mutex_lock(&daiv_lock);
	while (daiv_active > 0)
		pthread_cond_wait(&daiv_idle, &daiv_lock);
	pthread_mutex_unlock(&daiv_lock);
}

void daiv_register(void)
{
	http_route_add(HTTP_POST, "/api/v1/run/commands/", HTTP_ROUTE_JSON | HTTP_ROUTE_RATED,
		       h_daiv);
}
