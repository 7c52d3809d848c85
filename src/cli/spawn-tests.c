/* `tests` of a request: compile once, then one sandbox per case.
 *
 * Compiled runtimes: the compile step runs in its own sandbox with a fresh host directory
 * (<state>/spawn-XXXXXX/out, inside our 0700 state dir, so no other host user reaches it) bound
 * writable at /cordon-build and handed to the sandbox's uid for that run; gcc writes /cordon-build/a.out there. The host's exposure is that
 * one file, bounded by compile_limits.file_size_bytes. Once the compile sandbox is gone (all
 * its processes died with it), the binary is checked to be a regular file (not a symlink the
 * compiler step could have planted), made root-owned and read-only, and bound read-only at
 * /cordon-build/a.out into each case's sandbox. Interpreted runtimes run each case from the
 * source files directly.
 *
 * Each case is a fresh sandbox: one case cannot leave state for the next, and its verdict and
 * metrics are its own. A case passes when it ran to a clean exit (no limit, exit 0) and its
 * output matches: stdout against expected_output (exactly, or after removing trailing
 * whitespace of each line and trailing empty lines), the result of function-shaped code
 * against expected (JSON equality). The execution succeeds when every case passed. */
#include "spawn.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "rmtree.h"

#define BUILD_DEST "/cordon-build"
#define BUILD_BINARY "/cordon-build/a.out"

/* Length of s without trailing whitespace on each line and without trailing empty lines,
 * written compacted into out (room for len bytes). */
static size_t normalize(const char *s, size_t len, char *out)
{
	size_t o = 0, line_start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '\n') {
			size_t end = i;
			while (end > line_start && (s[end - 1] == ' ' || s[end - 1] == '\t' ||
						    s[end - 1] == '\r'))
				end--;
			memcpy(out + o, s + line_start, end - line_start);
			o += end - line_start;
			if (i < len)
				out[o++] = '\n';
			line_start = i + 1;
		}
	}
	while (o > 0 && out[o - 1] == '\n')
		o--;
	return o;
}

static bool outputs_match(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen == blen && !memcmp(a, b, alen))
		return true;
	_cleanup_free_ char *na = malloc(alen + 1), *nb = malloc(blen + 1);
	if (!na || !nb)
		return false;
	size_t la = normalize(a, alen, na), lb = normalize(b, blen, nb);
	return la == lb && !memcmp(na, nb, la);
}

/* The compile sandbox's output directory, and what to remove afterwards. */
struct build_dir {
	int statefd;
	char name[64];     /* "spawn-XXXXXX" under the state dir */
	char *out;         /* absolute path of <name>/out */
	char *binary;      /* absolute path of <name>/out/a.out */
};

static void build_dir_release(struct build_dir *b)
{
	if (b->statefd >= 0 && b->name[0])
		(void)rmtree_at(b->statefd, b->name);
	if (b->statefd >= 0)
		close(b->statefd);
	free(b->out);
	free(b->binary);
}

static int build_dir_make(struct build_dir *b, struct cdn_err *err)
{
	b->statefd = open(spawn_state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (b->statefd < 0)
		return err_set(err, errno, "opening the state dir \"%s\"", spawn_state_dir);
	char tmpl[4200];
	snprintf(tmpl, sizeof(tmpl), "%s/spawn-XXXXXX", spawn_state_dir);
	if (!mkdtemp(tmpl))
		return err_set(err, errno, "creating a build directory under \"%s\"",
			       spawn_state_dir);
	snprintf(b->name, sizeof(b->name), "%s", strrchr(tmpl, '/') + 1);
	b->out = strprintf("%s/out", tmpl);
	b->binary = strprintf("%s/out/a.out", tmpl);
	if (!b->out || !b->binary)
		return err_set(err, ENOMEM, "build directory");
	/* Handed to the compile sandbox's uid for its run (the bind's give), ours again after;
	 * the 0700 parent keeps every other host user out meanwhile. */
	if (mkdir(b->out, 0700) < 0)
		return err_set(err, errno, "creating \"%s\"", b->out);
	return 0;
}

/* After the compile sandbox: the binary must be a regular file the compiler wrote; make it
 * ours and read-only so no case can change it for the next. */
static int build_dir_seal(struct build_dir *b, struct cdn_err *err)
{
	_cleanup_close_ int fd = open(b->binary, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return err_set(err, errno, "the compile step left no binary");
	if (!S_ISREG(st.st_mode))
		return err_set(err, 0, "the compile step's binary is not a regular file");
	if (fchown(fd, 0, 0) < 0 || fchmod(fd, 0555) < 0)
		return err_set(err, errno, "sealing the compiled binary");
	/* The directory too: nothing may be added or swapped in it any more. */
	if (chmod(b->out, 0555) < 0)
		return err_set(err, errno, "sealing the build directory");
	return 0;
}

/* Program output as a JSON string: made valid UTF-8 first (json_stringn refuses otherwise). */
static json_t *json_text(const struct result_buf *b)
{
	size_t n;
	_cleanup_free_ char *clean = result_utf8_sanitize(b->data ? b->data : "", b->len, &n);
	return clean ? json_stringn(clean, n) : NULL;
}

/* The metrics object of result.c for one run (the program step's). */
static json_t *case_metrics(const struct result_info *info, const struct sbx_result *r,
			    struct spawn_out *out)
{
	json_t *ex = result_json(info, r, &out->cap, NULL);
	json_t *m = ex ? json_incref(json_object_get(ex, "metrics")) : NULL;
	json_decref(ex);
	return m;
}

static void add_metrics(struct sbx_metrics *sum, const struct sbx_result *r)
{
	if (!r->n_steps)
		return;
	const struct sbx_metrics *m = &r->steps[r->n_steps - 1].metrics;
	sum->wall_ns += m->wall_ns;
	sum->cpu_ns += m->cpu_ns;
	sum->output_bytes += m->output_bytes;
	if (m->memory_peak_bytes > sum->memory_peak_bytes)
		sum->memory_peak_bytes = m->memory_peak_bytes;
	if (m->processes_peak > sum->processes_peak)
		sum->processes_peak = m->processes_peak;
	if (m->files_written > sum->files_written)
		sum->files_written = m->files_written;
}

struct tests_state {
	const struct spawn_req *req;
	json_t *tests, *logs;
	struct sbx_metrics sum;
	uint64_t setup_ns;
	bool all_passed, cancelled;
	json_t *first_error;       /* of the first failing case */
	enum sbx_code first_code;
};

/* One case: run it, judge it, append its entry. Returns -errno when cordon failed. */
static int run_case(struct tests_state *st, size_t i, const char *binary,
		    const struct spawn_run_extra *extra, struct cdn_err *err)
{
	const struct spawn_req *req = st->req;
	const struct spawn_test *t = &req->tests[i];
	json_t *input = t->input && !json_is_null(t->input) ? t->input : req->input;
	struct spawn_plan plan;
	struct spawn_out out;
	int r = spawn_begin(req, NULL, binary, input, &plan, &out, err);
	if (r < 0)
		return r;
	out.test = (int)i;
	struct result_info info = {
		.runtime = req->rt ? req->rt->name : NULL, .image = req->image, .trust = req->trust,
	};
	struct spawn_req_view {
		const char *data;
		size_t len;
	} in = {t->stdin_data ? t->stdin_data : req->stdin_data,
		t->stdin_data ? t->stdin_len : req->stdin_len};
	struct sbx_result res;
	/* The edge harness reads its input from the request: hand it the case's. */
	struct spawn_req tweaked;
	const struct spawn_req *rq = req;
	if (plan.edge_stdin) {
		memcpy(&tweaked, req, sizeof(tweaked));
		tweaked.input = input;
		rq = &tweaked;
	}
	r = spawn_run_once(rq, &plan, in.data, in.len, extra, &out, &res, err);
	if (r < 0 && spawn_cancelled()) {
		res = (struct sbx_result){.code = SBX_CANCELLED};
		r = 0;
	}
	if (r == 0) {
		size_t n;
		const struct result_buf *so = &out.cap.out[0][0], *se = &out.cap.out[0][1];
		enum sbx_code code = res.code;
		bool passed = code == SBX_OK;
		const char *why = NULL;
		if (passed && t->expected_output) {
			_cleanup_free_ char *exp = spawn_redact_buf(
				t->expected_output, t->expected_output_len, req->secrets,
				req->n_secrets, &n);
			passed = exp && outputs_match(so->data ? so->data : "", so->len, exp, n);
			if (!passed)
				why = "its output differs from expected_output";
		}
		if (passed && t->expected) {
			passed = out.rec_out.result && json_equal(out.rec_out.result, t->expected);
			if (!passed)
				why = "its result differs from expected";
		}
		json_t *entry = json_pack(
			"{s:s?, s:b, s:o, s:o, s:o, s:o, s:b, s:o, s:O, s:o, s:o}", "name", t->name,
			"passed", passed, "exit_code",
			res.n_steps && res.steps[0].exited ? json_integer(res.steps[0].exit_code)
							   : json_null(),
			"signal",
			res.n_steps && res.steps[0].signal ? json_integer(res.steps[0].signal)
							   : json_null(),
			"stdout", json_text(so), "stderr", json_text(se), "stdout_truncated",
			res.n_steps && res.steps[0].stdout_truncated, "result",
			out.rec_out.result ? json_incref(out.rec_out.result) : json_null(), "logs",
			out.rec_out.logs, "error", spawn_error_json(&info, &res, &out.rec_out, req),
			"metrics", case_metrics(&info, &res, &out));
		if (entry && t->expected_output)
			json_object_set_new(entry, "expected_output",
					    json_stringn(t->expected_output, t->expected_output_len));
		if (entry && t->expected)
			json_object_set(entry, "expected", t->expected);
		if (entry && why)
			json_object_set_new(entry, "failure", json_string(why));
		for (size_t k = 0; entry && k < json_array_size(out.rec_out.logs); k++) {
			json_t *l = json_deep_copy(json_array_get(out.rec_out.logs, k));
			json_object_set_new(l, "test", json_integer((json_int_t)i));
			json_array_append_new(st->logs, l);
		}
		if (!entry || json_array_append_new(st->tests, entry) < 0)
			r = err_set(err, ENOMEM, "building the test results");
		add_metrics(&st->sum, &res);
		st->setup_ns += res.setup.total_ns;
		if (code == SBX_CANCELLED)
			st->cancelled = true;
		if (!passed && st->all_passed) {
			st->all_passed = false;
			st->first_code = code != SBX_OK ? code : SBX_RUNTIME_ERROR;
			char msg[600];
			snprintf(msg, sizeof(msg), "test %zu%s%s%s failed: %s", i,
				 t->name ? " (\"" : "", t->name ? t->name : "", t->name ? "\")" : "",
				 why ? why : "it did not run to a clean exit");
			json_t *e = json_deep_copy(json_object_get(entry, "error"));
			if (!json_is_object(e)) {
				json_decref(e);
				e = json_pack("{s:s, s:s, s:n, s:n}", "code", "SANDBOX_RUNTIME_ERROR",
					      "message", msg, "stack", "source_location");
			} else {
				json_object_set_new(e, "message", json_string(msg));
			}
			st->first_error = e;
		}
	}
	spawn_end(&plan, &out);
	return r;
}

/* The compile sandbox. Returns 1 when it compiled, 0 when the compile failed (*ret holds the
 * failed execution), -errno when cordon failed. */
static int compile_once(const struct spawn_req *req, struct build_dir *b, json_t **ret,
			json_t **ret_output, struct cdn_err *err)
{
	struct spawn_plan plan;
	struct spawn_out out;
	int r = spawn_begin(req, BUILD_BINARY, NULL, NULL, &plan, &out, err);
	if (r < 0)
		return r;
	struct sbx_bind bind = {b->out, BUILD_DEST, true, true};
	struct spawn_run_extra extra = {&bind, 1};
	struct sbx_result res;
	r = spawn_run_once(req, &plan, NULL, 0, &extra, &out, &res, err);
	if (r < 0 && spawn_cancelled()) {
		res = (struct sbx_result){.code = SBX_CANCELLED};
		r = 0;
	}
	if (r == 0) {
		struct result_info info = {
			.runtime = req->rt->name, .image = req->image, .trust = req->trust,
			.compiled = true, .program_step = 0,
		};
		*ret_output = json_text(&out.cap.out[0][0]);
		if (res.code == SBX_OK) {
			r = 1;
		} else {
			*ret = result_json(&info, &res, &out.cap, NULL);
			if (*ret)
				json_object_set_new(*ret, "error",
						    spawn_error_json(&info, &res, NULL, req));
		}
		if (!*ret_output || (r == 0 && !*ret))
			r = err_set(err, ENOMEM, "building the result");
	}
	spawn_end(&plan, &out);
	return r;
}

json_t *spawn_tests_run(const struct spawn_req *req, struct cdn_err *err)
{
	struct build_dir b __attribute__((cleanup(build_dir_release))) = {.statefd = -1};
	struct tests_state st = {
		.req = req, .tests = json_array(), .logs = json_array(), .all_passed = true,
	};
	json_t *compile_output = json_null(), *ex = NULL;
	const char *binary = NULL;
	struct sbx_bind bind;
	struct spawn_run_extra extra = {NULL, 0};
	int r = 0;
	if (!st.tests || !st.logs) {
		r = err_set(err, ENOMEM, "test results");
		goto out;
	}
	if (req->rt && req->rt->compiled) {
		json_t *failed = NULL;
		if ((r = build_dir_make(&b, err)) < 0 ||
		    (r = compile_once(req, &b, &failed, &compile_output, err)) < 0)
			goto out;
		if (r == 0) {
			/* Nothing ran: every case fails with the compile step's verdict. */
			ex = failed;
			json_object_set(ex, "compile_output", compile_output);
			json_object_set_new(ex, "stdout", json_string(""));
			json_object_set_new(ex, "stderr", json_string(""));
			for (size_t i = 0; i < req->n_tests; i++)
				json_array_append_new(
					st.tests, json_pack("{s:s?, s:b, s:o, s:O}", "name",
							    req->tests[i].name, "passed", false,
							    "metrics", json_object(), "error",
							    json_object_get(ex, "error")));
			st.all_passed = false;
			goto finish;
		}
		if ((r = build_dir_seal(&b, err)) < 0)
			goto out;
		bind = (struct sbx_bind){b.binary, BUILD_BINARY, false, false};
		extra = (struct spawn_run_extra){&bind, 1};
		binary = BUILD_BINARY;
	}
	for (size_t i = 0; i < req->n_tests && !spawn_cancelled(); i++)
		if ((r = run_case(&st, i, binary, &extra, err)) < 0)
			goto out;
	if (spawn_cancelled())
		st.cancelled = true;
	{
		/* The execution: its metrics are the cases' together (times summed, peaks max). */
		struct sbx_result agg = {.n_steps = 1};
		agg.steps[0] = (struct sbx_step_result){.ran = true, .metrics = st.sum};
		agg.setup.total_ns = st.setup_ns;
		agg.code = st.cancelled ? SBX_CANCELLED : st.all_passed ? SBX_OK : st.first_code;
		agg.cgroup_limits = true;
		struct result_capture none = {0};
		struct result_info info = {
			.runtime = req->rt ? req->rt->name : NULL, .image = req->image,
			.trust = req->trust,
		};
		ex = result_json(&info, &agg, &none, st.cancelled ? "cancelled" : NULL);
		if (!ex) {
			r = err_set(err, ENOMEM, "building the result");
			goto out;
		}
		if (!st.cancelled && !st.all_passed && st.first_error)
			json_object_set(ex, "error", st.first_error);
		json_object_set(ex, "compile_output", compile_output);
	}
finish:
	json_object_set_new(ex, "exit_code", json_null());
	json_object_set_new(ex, "signal", json_null());
	json_object_set_new(ex, "result", json_null());
	json_object_set(ex, "logs", st.logs);
	json_object_set(ex, "tests", st.tests);
	json_object_set_new(ex, "all_tests_passed", json_boolean(st.all_passed && !st.cancelled));
out:
	json_decref(st.tests);
	json_decref(st.logs);
	json_decref(st.first_error);
	json_decref(compile_output);
	if (r < 0) {
		json_decref(ex);
		return NULL;
	}
	return ex;
}
