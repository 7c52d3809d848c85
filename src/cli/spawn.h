/* `cordon __spawn`: the daemon's single-threaded spawner (SPAWN-PROTOCOL.md). One JSON request
 * on stdin, JSON-lines events on stdout. The parts:
 *
 *   spawn.c        main, the theory of operation, one sandbox run, the result line
 *   spawn-req.c    the request: parsed and checked, every quantity bounded (SPAWN_MAX_*)
 *   spawn-out.c    what comes out of a run: record splitting, redaction, UTF-8, events
 *   spawn-plan.c   how a runtime runs a request: files, harness, argv of each step
 *   spawn-tests.c  `tests`: compile once, one sandbox per case, verdicts
 *   spawn-info.c   `--runtimes`: what each runtime is and whether it is there
 *
 * Shared declarations only; each file's contracts are here. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/redact.h"
#include "core/sandbox.h"
#include "result.h"
#include "runtime.h"

/* Bounds on what the request controls. */
#define SPAWN_MAX_REQUEST (64u << 20)  /* the request's JSON text */
#define SPAWN_MAX_FILES 256
#define SPAWN_MAX_PATH 255              /* a file's path as given */
#define SPAWN_MAX_ARGS 256              /* command + args */
#define SPAWN_MAX_ENV 256               /* env + secrets */
#define SPAWN_MAX_SECRETS 64
#define SPAWN_MAX_TESTS 256
#define SPAWN_MAX_STR (16u << 20)       /* code, a file's content, stdin, an expected output */

/* Where the harness and its inputs live inside the sandbox; user files may not go there. */
#define SPAWN_HARNESS_DIR "/tmp/.cordon"

struct spawn_file {
	char *path;  /* "/tmp/<path as given>" */
	char *rel;   /* the path as given ("main.py"), inside path */
	char *data;
	size_t len;
};

struct spawn_test {
	const char *name;
	const char *stdin_data; /* NULL: the request's stdin */
	size_t stdin_len;
	json_t *input;          /* borrowed; NULL: the request's input */
	const char *expected_output; /* NULL: not compared */
	size_t expected_output_len;
	json_t *expected;       /* borrowed; NULL: not compared */
};

struct spawn_req {
	json_t *root;                  /* owns every borrowed string below */
	const struct runtime *rt;      /* NULL: a raw command */
	const char *image;             /* "host" or a named image */
	struct spawn_file files[SPAWN_MAX_FILES + 1]; /* code, when given, is files[0] */
	size_t n_files;
	const char *entrypoint;        /* rel path of the file to run; NULL for compiled/command */
	const char *argv[SPAWN_MAX_ARGS + 1]; /* command, NULL-terminated */
	size_t n_argv;
	const char *args[SPAWN_MAX_ARGS + 1];
	size_t n_args;
	const char *stdin_data;
	size_t stdin_len;
	char *env[3 + SPAWN_MAX_ENV + 1]; /* "K=V", ours, NULL-terminated */
	size_t n_env;
	const char *secrets[SPAWN_MAX_SECRETS]; /* values, inside env */
	size_t n_secrets;
	json_t *input;                 /* borrowed; NULL when null */
	enum trust_level trust;
	struct sbx_limits limits;
	struct sbx_limits compile_limits;
	struct spawn_test *tests;      /* NULL when "tests" is null */
	size_t n_tests;
	bool capture_console;
	const char *ws_host, *ws_path; /* workspace bind, or NULL */
};

/* Parse and check the request text. On failure err names the field ("limits.memory_mb: ..."). */
int spawn_req_parse(const char *text, size_t len, struct spawn_req *ret, struct cdn_err *err);
void spawn_req_release(struct spawn_req *req);

/* ---- spawn-out.c ---- */

/* Write one event object as a line on stdout (consumes obj; NULL is out of memory). A dead
 * reader cancels the run. Returns 0 or -errno. */
int spawn_emit(json_t *obj);
/* RFC 3339 UTC with milliseconds, of the realtime clock. */
void spawn_timestamp(char *buf, size_t size);
/* Replace every secret in every string (and object key) of v, in place. */
int spawn_redact_json(json_t *v, const char *const *secrets, size_t n);
/* Redact the value of obj[key] (a string, or every string inside it); absent is fine. */
int spawn_redact_field(json_t *obj, const char *key, const char *const *secrets, size_t n);
/* One-shot redaction of a buffer: a malloc'd copy (NULL when out of memory). */
char *spawn_redact_buf(const char *s, size_t len, const char *const *secrets, size_t n,
		       size_t *ret_len);

/* What the harness reports on its record channel (spawn-out.c parses, spawn.c uses). */
struct spawn_records {
	json_t *logs;          /* array of {level, message, timestamp} */
	json_t *result;        /* function-shaped code's return value, or NULL */
	json_t *error;         /* {name, message, stack, file, line, column}, or NULL */
	bool result_seen, error_seen;
};

/* The output of one sandbox run: per step and stream a redactor (and for the harness's stdout
 * a record splitter); the redacted text goes to capture and, as events, to stdout. */
struct spawn_out {
	const char *const *secrets;
	size_t n_secrets;
	int test;                  /* index of the test case, -1 when not a test run */
	int compile_step;          /* the step that compiles (its output is compile output), -1 */
	int record_step;           /* the step whose stdout carries harness records, -1 */
	char marker[64];           /* "\x1e" "cordon:" nonce ":" */
	size_t marker_len;
	struct redactor red[SBX_MAX_STEPS][2];
	bool red_ok[SBX_MAX_STEPS][2];
	char hold[64];             /* tail of the record step's stdout that may begin a marker */
	size_t n_hold;
	struct result_buf rec;     /* the record being read */
	bool in_record, rec_overflow;
	char carry[SBX_MAX_STEPS][2][4]; /* incomplete UTF-8 sequence held for the next event */
	size_t n_carry[SBX_MAX_STEPS][2];
	uint64_t cap_limit[SBX_MAX_STEPS];
	struct result_capture cap;
	struct spawn_records rec_out;
	bool oom;
};

int spawn_out_init(struct spawn_out *o, const char *const *secrets, size_t n, const char *nonce);
void spawn_out_release(struct spawn_out *o);
/* sbx_output_fn of the sandbox. */
void spawn_out_feed(void *userdata, int step, enum sbx_stream stream, const char *buf,
		    size_t len);
/* The run is over: emit what is held back. */
void spawn_out_flush(struct spawn_out *o);

/* ---- spawn-plan.c ---- */

#define SPAWN_PLAN_MAX_FILES (SPAWN_MAX_FILES + 8)
#define SPAWN_PLAN_MAX_ARGV (SPAWN_MAX_ARGS + SPAWN_MAX_FILES + 16)

/* How one request runs: the argv of each step and every file of the scratch space. */
struct spawn_plan {
	const char *argv[SBX_MAX_STEPS][SPAWN_PLAN_MAX_ARGV + 1];
	size_t n_steps;
	bool compiled;               /* step 0 compiles, step 1 runs */
	bool harness;                /* the program step's stdout carries records */
	char nonce[33];              /* hex; the record marker of this run */
	struct sbx_file files[SPAWN_PLAN_MAX_FILES];
	size_t n_files;
	char *owned[8];              /* strings the plan allocated (conf files) */
	size_t n_owned;
	bool edge_stdin;             /* edge: the harness takes its input on stdin */
};

/* Plan req. With compile_out (tests mode), a compiled runtime gets only the compile step,
 * writing its binary to compile_out; run_binary (tests mode, cases) makes the run step execute
 * that binary instead. input is the value the harness hands to function-shaped code. */
int spawn_plan_make(const struct spawn_req *req, const char *compile_out, const char *run_binary,
		    json_t *input, struct spawn_plan *ret, struct cdn_err *err);
void spawn_plan_release(struct spawn_plan *p);
/* For edge: the stdin text the harness reads (nonce, code, input, env), malloc'd. */
char *spawn_plan_edge_stdin(const struct spawn_req *req, const struct spawn_plan *p,
			    json_t *input, size_t *ret_len);

/* ---- spawn.c, used by spawn-tests.c ---- */

/* The plan of one sandbox run and its output collector (the record marker set when the plan
 * has a harness); spawn_end releases both. */
int spawn_begin(const struct spawn_req *req, const char *compile_out, const char *run_binary,
		json_t *input, struct spawn_plan *plan, struct spawn_out *out, struct cdn_err *err);
void spawn_end(struct spawn_plan *plan, struct spawn_out *out);

/* One sandbox run of plan with the given stdin; out collects its output. Returns 0 when the
 * sandbox ran (the verdict in ret), -errno when cordon failed (err says why). */
struct spawn_run_extra {
	const struct sbx_bind *binds;
	size_t n_binds;
};
int spawn_run_once(const struct spawn_req *req, const struct spawn_plan *plan,
		   const char *stdin_data, size_t stdin_len, const struct spawn_run_extra *extra,
		   struct spawn_out *out, struct sbx_result *ret, struct cdn_err *err);
/* The state dir and image root of this __spawn (resolved once). */
extern char *spawn_state_dir;
extern char *spawn_image_root;
/* The run was cancelled by a signal. */
bool spawn_cancelled(void);

/* The error object of a run: the sandbox's verdict, or the harness's uncaught error. */
json_t *spawn_error_json(const struct result_info *info, const struct sbx_result *r,
			 const struct spawn_records *rec, const struct spawn_req *req);

/* ---- spawn-tests.c ---- */

/* Run req->tests; fills the result object's tests, all_tests_passed, status and error. Returns
 * the result object (NULL: cordon failed, err says why). */
json_t *spawn_tests_run(const struct spawn_req *req, struct cdn_err *err);

/* ---- spawn-info.c ---- */

int spawn_runtimes_main(const char *state_dir);
/* Upstream version of a Debian package in the image (dpkg status), e.g. "3.11.2"; 0 or
 * -ENOENT. */
int spawn_pkg_version(const char *root, const char *package, char *buf, size_t size);
