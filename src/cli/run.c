/* `cordon run`: turn the options of CLI.md into a struct sbx_spec, run it with sandbox_run(),
 * and report the verdict as an exit status (and, with --json/--result-file, the result object
 * of API.md).
 *
 * Everything here is input from the caller: every option is checked, every quantity bounded
 * (RUN_MAX_*), and nothing of the host environment reaches the program. */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/limits.h"
#include "result.h"
#include "run-opts.h"
#include "runtime.h"

#define RUN_MAX_CODE (1024 * 1024) /* -c CODE or FILE */

/* What on_output needs: where output goes and where it is kept. */
struct run_ctx {
	bool passthrough;      /* copy output to our stdout/stderr as it arrives */
	bool capture;          /* keep it for the result object */
	bool compiled;         /* step 0 is a compile step: its output is diagnostics */
	uint64_t cap_limit[SBX_MAX_STEPS];
	bool fd_dead[3];       /* a write to our stdout/stderr failed: stop copying there */
	bool broken_pipe;      /* our stdout reader went away: the run was cancelled */
	struct result_capture cap;
};

/* The signal that asked us to stop (SIGINT/SIGTERM/SIGHUP), 0 if none. */
static volatile sig_atomic_t run_signal;

static void run_on_signal(int sig)
{
	if (!run_signal)
		run_signal = sig;
	sandbox_cancel();
}

/* Kill the run rather than cordon: a dead cordon would leave the sandbox to the next sweep. */
static void run_install_signals(void)
{
	struct sigaction sa = {.sa_handler = run_on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed stdout must surface as EPIPE (run_forward cancels the run), not kill us. SIG_IGN
	 * survives execve: the core resets every disposition in the child, so the program still
	 * gets SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
}

static void run_forward(struct run_ctx *ctx, int fd, const char *buf, size_t len)
{
	while (len > 0 && !ctx->fd_dead[fd]) {
		ssize_t n = write(fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			/* Our stdout may be a non-blocking fd shared with a parent: wait, do not drop. */
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, -1);
		} else {
			ctx->fd_dead[fd] = true;
			/* Like `yes | head`: when nobody reads our stdout any more, stop the program. */
			if (fd == STDOUT_FILENO && n < 0 && errno == EPIPE) {
				ctx->broken_pipe = true;
				sandbox_cancel();
			}
		}
	}
}

static void run_on_output(void *userdata, int step, enum sbx_stream stream, const char *buf,
			  size_t len)
{
	struct run_ctx *ctx = userdata;
	if (ctx->capture && step >= 0 && step < SBX_MAX_STEPS)
		result_capture_add(&ctx->cap, step, stream, buf, len, ctx->cap_limit[step]);
	if (ctx->passthrough) {
		/* Compile diagnostics go to stderr: our stdout carries only the program's output. */
		bool to_err = stream == SBX_STDERR || (ctx->compiled && step == 0);
		run_forward(ctx, to_err ? STDERR_FILENO : STDOUT_FILENO, buf, len);
	}
}

/* Read the FILE of `cordon run --runtime R FILE` (at most RUN_MAX_CODE bytes). */
static int run_read_file(const char *path, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_size > RUN_MAX_CODE)
		return -EFBIG;
	_cleanup_free_ char *buf = malloc(RUN_MAX_CODE + 2);
	if (!buf)
		return -ENOMEM;
	size_t len = 0;
	/* Read to EOF rather than trust st_size: the file may grow while we read. */
	while (len <= RUN_MAX_CODE) {
		ssize_t n = read(fd, buf + len, RUN_MAX_CODE + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > RUN_MAX_CODE)
		return -EFBIG;
	buf[len] = 0;
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* The program's code: -c CODE or the contents of FILE. */
static int run_load_code(const struct run_opts *o, char **ret_owned, const char **ret,
			 size_t *ret_len)
{
	if (o->code) {
		*ret_len = strlen(o->code);
		if (*ret_len > RUN_MAX_CODE) {
			cli_error("-c: code is over %d bytes", RUN_MAX_CODE);
			return -EFBIG;
		}
		*ret = o->code;
		return 0;
	}
	int r = run_read_file(o->file, ret_owned, ret_len);
	if (r == -EFBIG)
		cli_error("\"%s\" is over %d bytes", o->file, RUN_MAX_CODE);
	else if (r == -EINVAL)
		cli_error("\"%s\" is not a regular file", o->file);
	else if (r < 0)
		cli_error("reading \"%s\": %s", o->file, strerror(-r));
	*ret = *ret_owned;
	return r;
}

static int run_open_stdin(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cli_error("--stdin \"%s\": %m", path);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		cli_error("--stdin \"%s\": is a directory", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Open --result-file before the run, so a bad path fails before any code runs. */
static int run_open_result_file(const char *path)
{
	/* O_NOFOLLOW: cordon often runs as root; a symlink planted at the path (say in /tmp) must
	 * not make it truncate a file elsewhere. */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
		      0600);
	if (fd < 0) {
		cli_error("--result-file \"%s\": %m", path);
		return -1;
	}
	struct stat st;
	/* The result holds the program's output: keep an existing file private as well. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid())
		(void)fchmod(fd, 0600);
	return fd;
}

static int run_write_result_file(int fd, const json_t *obj)
{
	struct stat st;
	/* The file may sit in a --rw bind the program could write: start it afresh. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
			return -errno;
	}
	return result_write(obj, fd);
}

/* Exit status of CLI.md for a run that happened (without --json). */
static int run_exit_status(const struct result_info *info, const struct sbx_result *r,
			   const struct run_ctx *ctx)
{
	int v = result_verdict_step(r);
	const struct sbx_step_result *s = v >= 0 ? &r->steps[v] : NULL;
	/* The program's own status: its exit code or 128+signal. A SIGKILL is not its own: the
	 * sandbox sends it when a limit (output, files...) ends the run. */
	int own = -1;
	if (s && s->ran && s->exited)
		own = s->exit_code & 0xff;
	else if (s && s->ran && s->signal && s->signal != SIGKILL)
		own = 128 + s->signal;

	switch (result_verdict(info, r)) {
	case SBX_OK:
		return own > 0 ? own : 0;
	case SBX_TIMEOUT:
	case SBX_CPU_LIMIT:
		return 124;
	case SBX_MEMORY_LIMIT:
		return 137; /* 128 + SIGKILL, as the OOM killer's victim */
	case SBX_SECURITY_VIOLATION:
		return 159; /* 128 + SIGSYS */
	case SBX_COMPILE_ERROR:
		return 1;
	case SBX_INTERNAL:
		return EXIT_CORDON;
	case SBX_CANCELLED:
		if (run_signal)
			return 128 + run_signal;
		if (ctx->broken_pipe)
			return 128 + SIGPIPE;
		break;
	default:
		break;
	}
	/* Output/file/process limits and runtime errors: a failed verdict never exits 0. */
	return own > 0 ? own : 1;
}

/* Without --json, say on stderr why a limit or cordon stopped the program. A program that
 * ran and failed (or a compiler) has told the user itself; one that could not be executed
 * has not. */
static void run_report_verdict(const struct result_info *info, const struct sbx_result *r,
			       const struct run_ctx *ctx)
{
	enum sbx_code code = result_verdict(info, r);
	int v = result_verdict_step(r);
	bool ran = v >= 0 && r->steps[v].ran;
	if (code == SBX_OK || ((code == SBX_RUNTIME_ERROR || code == SBX_COMPILE_ERROR) && ran))
		return;
	if (code == SBX_CANCELLED && ctx->broken_pipe && !run_signal)
		return;
	char buf[512];
	cli_error("%s", result_message(info, r, buf, sizeof(buf)));
}

/* Emit the result object to stdout (--json) and/or the result file. */
static int run_emit_json(const struct run_opts *o, int result_fd, const struct result_info *info,
			 const struct sbx_result *r, const struct run_ctx *ctx, const char *errmsg)
{
	json_t *obj = result_json(info, r, &ctx->cap, errmsg);
	if (!obj) {
		cli_error("building the result object: out of memory");
		return -ENOMEM;
	}
	int ret = 0;
	if (o->json && result_write(obj, STDOUT_FILENO) < 0) {
		cli_error("writing the result to stdout: %m");
		ret = -EIO;
	}
	if (result_fd >= 0) {
		int w = run_write_result_file(result_fd, obj);
		if (w < 0) {
			cli_error("writing --result-file \"%s\": %s", o->result_file, strerror(-w));
			ret = w;
		}
	}
	json_decref(obj);
	return ret;
}

/* The steps of the spec: a raw command, or what the runtime plans for the code. */
static void run_fill_steps(const struct run_opts *o, const struct runtime_plan *plan,
			   const struct sbx_limits *limits, int stdin_fd, struct sbx_spec *spec)
{
	if (!o->runtime) {
		spec->n_steps = 1;
		spec->steps[0].argv = o->command;
	} else {
		spec->n_steps = plan->n_steps;
		/* argv strings are never written through; execve() takes char *const[] only for
		 * historical reasons. */
		for (size_t i = 0; i < plan->n_steps; i++)
			spec->steps[i].argv = (char *const *)plan->argv[i];
		if (plan->has_file) {
			spec->files = &plan->file;
			spec->n_files = 1;
		}
	}
	for (size_t i = 0; i < spec->n_steps; i++) {
		spec->steps[i].limits = *limits;
		spec->steps[i].stdin_fd = -1;
	}
	if (plan && plan->compiled) {
		struct sbx_step *cc = &spec->steps[0];
		runtime_compile_limits(limits, NULL, &cc->limits);
		cc->merge_output = true;
	}
	spec->steps[spec->n_steps - 1].stdin_fd = stdin_fd;
}

/* Everything resolved before the sandbox starts. */
struct run_setup {
	char *state_dir;
	char *image_root;       /* NULL: the host image */
	char *code_owned;
	const char *code;
	size_t code_len;
	struct sbx_limits limits;
	struct runtime_plan plan;
	int stdin_fd, result_fd;
};

static void run_setup_release(struct run_setup *s)
{
	free(s->state_dir);
	free(s->image_root);
	free(s->code_owned);
	if (s->stdin_fd >= 0)
		close(s->stdin_fd);
	if (s->result_fd >= 0)
		close(s->result_fd);
}

/* Resolve the state dir, image, runtime and files. Prints the error; -1 on failure, 1 when
 * done (--runtime list), 0 to go on. */
static int run_prepare(const struct run_opts *o, struct run_setup *s)
{
	struct cdn_err err = {0};
	if (run_opts_limits(o, &s->limits, &err) < 0) {
		cli_error("%s", err.msg);
		return -1;
	}
	bool host = streq(o->image, "host");
	if (!host || !o->runtime_list) {
		if (state_dir_resolve(o->state_dir, true, &s->state_dir, &err) < 0) {
			cli_error("%s", err.msg);
			return -1;
		}
	}
	if (!host && state_image_rootfs(s->state_dir, o->image, &s->image_root, &err) < 0) {
		cli_error("unknown image \"%s\" (cordon image ls)", o->image);
		return -1;
	}
	if (o->runtime_list) {
		runtime_print_list(stdout, s->image_root);
		return 1;
	}
	if (o->runtime) {
		if (runtime_check(o->runtime, s->image_root, o->image, &err) < 0) {
			cli_error("%s", err.msg);
			return -1;
		}
		if (run_load_code(o, &s->code_owned, &s->code, &s->code_len) < 0)
			return -1;
		runtime_plan(o->runtime, s->code, s->code_len, o->file != NULL, &s->plan);
	}
	if (o->stdin_path && (s->stdin_fd = run_open_stdin(o->stdin_path)) < 0)
		return -1;
	if (o->result_file && (s->result_fd = run_open_result_file(o->result_file)) < 0)
		return -1;
	return 0;
}

static int run_execute(const struct run_opts *o)
{
	struct run_setup s __attribute__((cleanup(run_setup_release))) = {
		.stdin_fd = -1, .result_fd = -1,
	};
	int r = run_prepare(o, &s);
	if (r != 0)
		return r > 0 ? 0 : EXIT_CORDON;

	struct run_ctx ctx = {
		.passthrough = !o->json,
		.capture = o->json || o->result_file,
		.compiled = s.plan.compiled,
	};
	struct sbx_spec spec = {
		.state_dir = s.state_dir,
		.image_root = s.image_root,
		.trust = o->trust,
		.envp = (char *const *)o->env, /* never written through, see run_fill_steps */
		.workdir = o->workdir,
		.binds = o->binds,
		.n_binds = o->n_binds,
		.secrets = o->secrets,
		.n_secrets = o->n_secrets,
		.no_cgroup = o->no_cgroup,
		.on_output = run_on_output,
		.userdata = &ctx,
	};
	run_fill_steps(o, o->runtime ? &s.plan : NULL, &s.limits, s.stdin_fd, &spec);
	for (size_t i = 0; i < spec.n_steps; i++)
		ctx.cap_limit[i] = spec.steps[i].limits.output_bytes;
	struct result_info info = {
		.runtime = o->runtime ? o->runtime->name : NULL,
		.image = o->image,
		.trust = o->trust,
		.compiled = s.plan.compiled,
		.program_step = spec.n_steps - 1,
	};

	run_install_signals();
	struct sbx_result res = {0};
	struct cdn_err err = {0};
	r = sandbox_run(&spec, &res, &err);
	int status;
	if (r < 0) {
		/* cordon failed, not the program: say which step, and still give consumers of the
		 * result object an answer they can parse. */
		const char *msg = err.msg[0] ? err.msg : strerror(-r);
		cli_error("%s", msg);
		res = (struct sbx_result){.code = SBX_INTERNAL};
		if (ctx.capture)
			(void)run_emit_json(o, s.result_fd, &info, &res, &ctx, msg);
		status = EXIT_CORDON;
	} else if (ctx.cap.oom) {
		cli_error("capturing the program's output: out of memory");
		status = EXIT_CORDON;
	} else {
		/* With --json the verdict is in the JSON; only cordon's own failure shows in the
		 * exit status (a program may well exit 125 itself). */
		bool internal = result_verdict(&info, &res) == SBX_INTERNAL;
		if (o->json)
			status = internal ? EXIT_CORDON : 0;
		else
			status = run_exit_status(&info, &res, &ctx);
		if (!o->json || internal)
			run_report_verdict(&info, &res, &ctx);
		if (ctx.capture && run_emit_json(o, s.result_fd, &info, &res, &ctx, NULL) < 0)
			status = EXIT_CORDON;
	}
	result_capture_release(&ctx.cap);
	return status;
}

int run_main(int argc, char **argv)
{
	struct run_opts o __attribute__((cleanup(run_opts_release)));
	run_opts_init(&o);
	int r = run_opts_parse(argc, argv, &o);
	if (r != 0)
		return r > 0 ? 0 : EXIT_CORDON;
	return run_execute(&o);
}
