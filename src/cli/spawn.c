/* `cordon __spawn`: the daemon's spawner (SPAWN-PROTOCOL.md).
 *
 * Theory of operation. The daemon is multi-threaded, and a sandbox must never be cloned from
 * a threaded process (STYLE.md): for each execution it posix_spawns `cordon __spawn`, which is
 * exec'd at once and therefore safe to start from a thread. The processes:
 *
 *   daemon (threads) --posix_spawn--> __spawn (host root, host namespaces, ONE thread)
 *       stdin:  one JSON request, then EOF           stdout: JSON-lines events, result last
 *       stderr: one line, only when cordon failed    SIGTERM/SIGINT: cancel the run
 *       --parent-pid: SIGKILLed when the daemon dies (PDEATHSIG), and the core's init dies
 *       with us, so a kill -9 of the daemon leaves no sandbox behind
 *   __spawn --sandbox_run()--> init + program (src/core: every layer of SECURITY.md)
 *
 * __spawn reads and checks the request (spawn-req.c) before anything touches the host, resolves
 * the image and the runtime, then runs one sandbox (or, with `tests`, one compile sandbox and
 * one sandbox per case: spawn-tests.c) with sandbox_run(). The program's output arrives through
 * the core's output callback, is split from the harness's records, redacted and written as
 * events as it comes (spawn-out.c). The last line is the result. Exit status: 0 when the result
 * line was written, whatever the verdict; 125 with one line on stderr when cordon itself failed
 * (bad request, missing runtime, a sandbox setup step).
 *
 * Secrets are redacted by this process, never by the program's cooperation: every stream on
 * its way out, every string of a record after its JSON is decoded, and finally every
 * program-derived field of the result (spawn_redact_json). */
#include "spawn.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "cli.h"
#include "core/limits.h"

char *spawn_state_dir;
char *spawn_image_root;

static volatile sig_atomic_t spawn_signal;

static void spawn_on_signal(int sig)
{
	spawn_signal = sig;
	sandbox_cancel();
}

bool spawn_cancelled(void)
{
	return spawn_signal != 0;
}

static void spawn_install_signals(void)
{
	struct sigaction sa = {.sa_handler = spawn_on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A daemon that went away shows as EPIPE on our stdout (spawn_emit cancels); the core
	 * resets every disposition in the sandbox, so the program still gets SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
}

/* The request: all of stdin, at most SPAWN_MAX_REQUEST bytes. */
static int spawn_read_request(char **ret, size_t *ret_len)
{
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap > SPAWN_MAX_REQUEST) {
				free(buf);
				return -EFBIG;
			}
			char *p = realloc(buf, cap * 2);
			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
			cap *= 2;
		}
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > SPAWN_MAX_REQUEST) {
		free(buf);
		return -EFBIG;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* A readable fd holding data, for a step's stdin (-1 with no data: /dev/null). */
static int spawn_stdin_fd(const char *data, size_t len)
{
	if (!data || !len)
		return -1;
	int fd = memfd_create("cordon-stdin", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, data, len);
	if (r < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		r = r < 0 ? r : -errno;
		close(fd);
		return r;
	}
	return fd;
}

int spawn_run_once(const struct spawn_req *req, const struct spawn_plan *plan,
		   const char *stdin_data, size_t stdin_len, const struct spawn_run_extra *extra,
		   struct spawn_out *out, struct sbx_result *ret, struct cdn_err *err)
{
	_cleanup_free_ char *edge_in = NULL;
	if (plan->edge_stdin) {
		edge_in = spawn_plan_edge_stdin(req, plan, req->input, &stdin_len);
		if (!edge_in)
			return err_set(err, ENOMEM, "preparing the edge harness's input");
		stdin_data = edge_in;
	}
	_cleanup_close_ int in_fd = spawn_stdin_fd(stdin_data, stdin_len);
	if (in_fd < -1)
		return err_set(err, -in_fd, "preparing stdin");

	struct sbx_bind binds[8];
	size_t n_binds = 0;
	if (req->ws_host)
		/* give: the workspace belongs to the sandbox's uid for the run, so its files are
		 * writable inside, and comes back to us afterwards (core/handover.h). */
		binds[n_binds++] = (struct sbx_bind){req->ws_host, req->ws_path, true, true};
	for (size_t i = 0; extra && i < extra->n_binds && n_binds < ARRAY_SIZE(binds); i++)
		binds[n_binds++] = extra->binds[i];

	struct sbx_spec spec = {
		.state_dir = spawn_state_dir,
		.image_root = spawn_image_root,
		.trust = req->trust,
		.n_steps = plan->n_steps,
		/* never written through: execve() takes char *const[] for historical reasons */
		.envp = (char *const *)req->env,
		.workdir = req->ws_host ? req->ws_path : NULL,
		.binds = binds,
		.n_binds = n_binds,
		.files = plan->files,
		.n_files = plan->n_files,
		/* No secrets for the core: this process redacts (spawn-out.c says why). */
		.on_output = spawn_out_feed,
		.userdata = out,
	};
	for (size_t i = 0; i < plan->n_steps; i++) {
		struct sbx_step *s = &spec.steps[i];
		s->argv = (char *const *)plan->argv[i];
		s->limits = req->limits;
		s->stdin_fd = -1;
		out->cap_limit[i] = req->limits.output_bytes;
	}
	if (plan->compiled) {
		spec.steps[0].limits = req->compile_limits;
		spec.steps[0].merge_output = true;
		out->cap_limit[0] = req->compile_limits.output_bytes;
		out->compile_step = 0;
	}
	spec.steps[plan->n_steps - 1].stdin_fd = in_fd;
	if (plan->edge_stdin) {
		/* Edge: an empty writable area, as small as the limit table allows; the module
		 * has nothing to write and, escaped from its vm context, little room to. */
		struct sbx_limits *l = &spec.steps[0].limits;
		l->disk_bytes = 1u << 20;
		l->max_files = 16;
	}
	if (plan->harness)
		out->record_step = (int)plan->n_steps - 1;
	memset(ret, 0, sizeof(*ret));
	int r = sandbox_run(&spec, ret, err);
	spawn_out_flush(out);
	return r;
}

/* Redaction of the result object, field by field: what the program produced is redacted, the
 * words of the protocol (a status, an error code, a log level) never are, so a short secret such
 * as "log" cannot garble the answer. */
static int redact_fields(json_t *o, const char *const *keys, size_t n_keys,
			 const struct spawn_req *req)
{
	for (size_t i = 0; i < n_keys; i++)
		if (spawn_redact_field(o, keys[i], req->secrets, req->n_secrets) < 0)
			return -ENOMEM;
	return 0;
}

static int redact_error(json_t *e, const struct spawn_req *req)
{
	static const char *const keys[] = {"message", "stack"};
	if (!json_is_object(e))
		return 0;
	json_t *loc = json_object_get(e, "source_location");
	if (json_is_object(loc) && spawn_redact_field(loc, "file", req->secrets, req->n_secrets))
		return -ENOMEM;
	return redact_fields(e, keys, ARRAY_SIZE(keys), req);
}

static int redact_logs(json_t *logs, const struct spawn_req *req)
{
	for (size_t i = 0; i < json_array_size(logs); i++)
		if (spawn_redact_field(json_array_get(logs, i), "message", req->secrets,
				       req->n_secrets) < 0)
			return -ENOMEM;
	return 0;
}

static int spawn_redact_execution(json_t *ex, const struct spawn_req *req)
{
	static const char *const keys[] = {"stdout", "stderr", "compile_output", "result"};
	static const char *const test_keys[] = {"name", "stdout", "stderr", "expected_output",
						"result", "expected"};
	if (req->n_secrets == 0)
		return 0;
	if (redact_fields(ex, keys, ARRAY_SIZE(keys), req) < 0 ||
	    redact_error(json_object_get(ex, "error"), req) < 0 ||
	    redact_logs(json_object_get(ex, "logs"), req) < 0)
		return -ENOMEM;
	json_t *tests = json_object_get(ex, "tests");
	for (size_t i = 0; i < json_array_size(tests); i++) {
		json_t *t = json_array_get(tests, i);
		if (redact_fields(t, test_keys, ARRAY_SIZE(test_keys), req) < 0 ||
		    redact_error(json_object_get(t, "error"), req) < 0 ||
		    redact_logs(json_object_get(t, "logs"), req) < 0)
			return -ENOMEM;
	}
	return 0;
}

json_t *spawn_error_json(const struct result_info *info, const struct sbx_result *r,
			 const struct spawn_records *rec, const struct spawn_req *req)
{
	enum sbx_code code = result_verdict(info, r);
	if (code == SBX_OK)
		return json_null();
	char buf[512];
	const char *name = sbx_code_name(code);
	json_t *e = json_pack("{s:s, s:s, s:n, s:n}", "code", name ? name : "SANDBOX_INTERNAL",
			      "message", result_message(info, r, buf, sizeof(buf)), "stack",
			      "source_location");
	/* An uncaught error the harness reported explains a runtime error better than "exited
	 * with code 1"; it never replaces a verdict of cordon's own (a limit, a kill). */
	json_t *he = rec ? rec->error : NULL;
	if (e && he && code == SBX_RUNTIME_ERROR) {
		json_t *msg = json_object_get(he, "message");
		json_t *stack = json_object_get(he, "stack");
		json_t *file = json_object_get(he, "file");
		json_t *line = json_object_get(he, "line");
		json_t *col = json_object_get(he, "column");
		if (json_is_string(msg))
			json_object_set(e, "message", msg);
		if (json_is_string(stack))
			json_object_set(e, "stack", stack);
		if (json_is_string(file) && json_is_integer(line))
			json_object_set_new(e, "source_location",
					    json_pack("{s:O, s:O, s:O}", "file", file, "line", line,
						      "column", json_is_integer(col) ? col
										     : json_null()));
	}
	(void)req;
	return e;
}

/* The execution object of one run, from the sandbox's result and what the output said. */
static json_t *spawn_execution(const struct spawn_req *req, const struct result_info *info,
			       const struct sbx_result *res, struct spawn_out *out,
			       const char *errmsg)
{
	json_t *ex = result_json(info, res, &out->cap, errmsg);
	if (!ex)
		return NULL;
	struct spawn_records *rec = &out->rec_out;
	bool ok = json_object_set_new(ex, "result", rec->result ? json_incref(rec->result)
								 : json_null()) == 0;
	ok = ok && json_object_set(ex, "logs", rec->logs) == 0;
	if (!errmsg)
		ok = ok && json_object_set_new(ex, "error",
					       spawn_error_json(info, res, rec, req)) == 0;
	ok = ok && json_object_set_new(ex, "tests", json_null()) == 0;
	ok = ok && json_object_set_new(ex, "all_tests_passed", json_null()) == 0;
	if (!ok) {
		json_decref(ex);
		return NULL;
	}
	return ex;
}

int spawn_begin(const struct spawn_req *req, const char *compile_out, const char *run_binary,
		json_t *input, struct spawn_plan *plan, struct spawn_out *out, struct cdn_err *err)
{
	int r = spawn_plan_make(req, compile_out, run_binary, input, plan, err);
	if (r < 0)
		return r;
	if (spawn_out_init(out, req->secrets, req->n_secrets, plan->harness ? plan->nonce : NULL)) {
		spawn_out_release(out);
		spawn_plan_release(plan);
		return err_set(err, ENOMEM, "output buffers");
	}
	return 0;
}

void spawn_end(struct spawn_plan *plan, struct spawn_out *out)
{
	spawn_out_release(out);
	spawn_plan_release(plan);
}

static int spawn_single(const struct spawn_req *req, json_t **ret, struct cdn_err *err)
{
	struct spawn_plan plan;
	struct spawn_out out;
	int r = spawn_begin(req, NULL, NULL, req->input, &plan, &out, err);
	if (r < 0)
		return r;
	struct result_info info = {
		.runtime = req->rt ? req->rt->name : NULL,
		.image = req->image,
		.trust = req->trust,
		.compiled = plan.compiled,
		.program_step = plan.n_steps - 1,
	};
	struct sbx_result res;
	r = spawn_run_once(req, &plan, req->stdin_data, req->stdin_len, NULL, &out, &res, err);
	const char *errmsg = NULL;
	if (r < 0 && spawn_cancelled()) {
		/* Cancelled while the sandbox was being set up: still a cancelled run. */
		res = (struct sbx_result){.code = SBX_CANCELLED};
		errmsg = "cancelled";
		r = 0;
	}
	if (r == 0 && out.oom)
		r = err_set(err, ENOMEM, "capturing the program's output: out of memory");
	if (r == 0) {
		*ret = spawn_execution(req, &info, &res, &out, errmsg);
		if (!*ret)
			r = err_set(err, ENOMEM, "building the result: out of memory");
	}
	spawn_end(&plan, &out);
	return r;
}

static int spawn_prepare(const char *state_dir, const struct spawn_req *req, struct cdn_err *err)
{
	int r = state_dir_resolve(state_dir, true, &spawn_state_dir, err);
	if (r < 0)
		return r;
	if (!streq(req->image, "host") &&
	    state_image_rootfs(spawn_state_dir, req->image, &spawn_image_root, err) < 0)
		return err_set(err, 0, "unknown image \"%s\"", req->image);
	if (req->rt)
		return runtime_check(req->rt, spawn_image_root, req->image, err);
	return 0;
}

static int spawn_execute(const char *state_dir)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = spawn_read_request(&text, &len);
	if (r < 0) {
		cli_error("reading the request: %s", r == -EFBIG ? "over 64M" : strerror(-r));
		return EXIT_CORDON;
	}
	struct spawn_req req __attribute__((cleanup(spawn_req_release)));
	struct cdn_err err = {0};
	if (spawn_req_parse(text, len, &req, &err) < 0 || spawn_prepare(state_dir, &req, &err) < 0) {
		cli_error("%s", err.msg);
		return EXIT_CORDON;
	}
	char started[40], finished[40];
	spawn_timestamp(started, sizeof(started));
	spawn_emit(json_pack("{s:s, s:s, s:s}", "type", "status", "status", "running", "started_at",
			     started));
	json_t *ex = NULL;
	if (req.tests)
		ex = spawn_tests_run(&req, &err);
	else if (spawn_single(&req, &ex, &err) < 0)
		ex = NULL;
	if (!ex) {
		cli_error("%s", err.msg[0] ? err.msg : "run failed");
		return EXIT_CORDON;
	}
	spawn_timestamp(finished, sizeof(finished));
	json_object_set_new(ex, "started_at", json_string(started));
	json_object_set_new(ex, "finished_at", json_string(finished));
	if (spawn_redact_execution(ex, &req) < 0) {
		json_decref(ex);
		cli_error("redacting the result: out of memory");
		return EXIT_CORDON;
	}
	r = spawn_emit(json_pack("{s:s, s:o}", "type", "result", "execution", ex));
	if (r < 0) {
		cli_error("writing the result: %s", strerror(-r));
		return EXIT_CORDON;
	}
	return 0;
}

/* --parent-pid PID: die with the daemon. PDEATHSIG first, then the check: a daemon that died
 * before the prctl would otherwise leave us running (and our sandbox until its limits). The
 * signal comes when the thread that spawned us exits, so the daemon spawns from long-lived
 * threads. */
static int spawn_tie_to_parent(const char *arg)
{
	uint64_t pid = 0;
	if (parse_u64(arg, &pid) < 0 || pid < 1 || pid > INT32_MAX) {
		cli_error("__spawn: --parent-pid \"%s\" is not a process id", arg);
		return -EINVAL;
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		cli_error("__spawn: prctl(PR_SET_PDEATHSIG): %m");
		return -errno;
	}
	if (getppid() != (pid_t)pid) {
		cli_error("__spawn: the parent process %llu is gone", (unsigned long long)pid);
		return -ESRCH;
	}
	return 0;
}

int spawn_main(int argc, char **argv)
{
	const char *state_dir = NULL, *parent = NULL;
	bool runtimes = false;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--state-dir") && i + 1 < argc) {
			state_dir = argv[++i];
		} else if (streq(argv[i], "--parent-pid") && i + 1 < argc) {
			parent = argv[++i];
		} else if (streq(argv[i], "--runtimes")) {
			runtimes = true;
		} else {
			cli_error("__spawn: unknown option \"%s\"", argv[i]);
			return EXIT_CORDON;
		}
	}
	if (parent && spawn_tie_to_parent(parent) < 0)
		return EXIT_CORDON;
	if (runtimes)
		return spawn_runtimes_main(state_dir);
	spawn_install_signals();
	int status = spawn_execute(state_dir);
	free(spawn_state_dir);
	free(spawn_image_root);
	return status;
}
