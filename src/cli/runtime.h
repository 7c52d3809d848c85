/* Runtimes of `cordon run --runtime NAME`: how code in a language becomes the argv of one or
 * two sandbox steps (interpreters run the code directly; c/cpp compile, then run). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/sandbox.h"

/* PATH of every program run by `cordon run` (the environment is clean, CLI.md). */
#define RUNTIME_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#define RUNTIME_MAX_ARGS 8

struct runtime {
	const char *name;
	const char *interp;    /* program looked up in PATH inside the sandbox: "python3" */
	const char *host_path; /* where a Debian host has it (named in error messages) */
	const char *package;   /* Debian package providing it */
	const char *code_flag; /* "-c"/"-e" to pass code inline; NULL for compiled runtimes */
	const char *src_path;  /* where a FILE (always the source, for c/cpp) is written */
	bool compiled;         /* interp is a compiler: compile (runtime_compile_argv), then run */
	const char *src_exts;  /* compiled: the extensions of its sources, " "-separated */
	const char *link_flag; /* compiled: a library flag after the sources, or NULL */
	const char *binary;    /* what the compile step produces (run as step 1) */
	bool api_only;         /* edge: only through the API (`cordon __spawn`), not `cordon run` */
};

/* The steps a runtime makes of a program. argv arrays are NULL-terminated; the file's data
 * points into the code buffer handed to runtime_plan(). */
struct runtime_plan {
	const char *argv[SBX_MAX_STEPS][RUNTIME_MAX_ARGS];
	size_t n_steps;
	bool compiled;         /* step 0 compiles, step 1 runs */
	bool has_file;
	struct sbx_file file;
};

/* NULL for an unknown name (or an API-only runtime). */
const struct runtime *runtime_find(const char *name);
/* Any runtime, the API-only ones included. */
const struct runtime *runtime_find_api(const char *name);
/* The runtimes of the table in order, NULL past the last. */
const struct runtime *runtime_at(size_t i);
/* The compile command: compiler, flags, -o out, the sources, the link flag. NULL-terminated in
 * ret (room for max entries, the NULL included); -E2BIG when it does not fit. */
int runtime_compile_argv(const struct runtime *rt, const char *out, const char *const *srcs,
			 size_t n_srcs, const char **ret, size_t max);
/* Limits of a compile step that shares one scratch space with the run step: given (NULL: the
 * generous defaults of limits_compile()), but the scratch's size is the run's own, so the
 * program's --disk/--max-files hold (the core sizes the scratch from step 0). */
void runtime_compile_limits(const struct sbx_limits *run, const struct sbx_limits *given,
			    struct sbx_limits *ret);
/* path ends with one of rt's source extensions. */
bool runtime_is_source(const struct runtime *rt, const char *path);
/* "python, node, bash, sh, c, cpp" for messages. */
const char *runtime_names(void);
/* Find rt's interpreter (or compiler) in RUNTIME_PATH inside root (NULL: the host). Symlinks
 * are resolved inside root, as the sandbox will. Fills ret_path (path inside root) or returns
 * -ENOENT. */
int runtime_locate(const struct runtime *rt, const char *root, char *ret_path, size_t size);
/* Open path (relative to rootfd, an image's root) the way the sandbox will see it: symlinks
 * resolve inside the image, never on the host. Returns the fd or -errno. */
int runtime_open_in_root(int rootfd, const char *path, int flags);
/* Fail (with the fix in the message) when the image lacks what rt needs. */
int runtime_check(const struct runtime *rt, const char *root, const char *image,
		  struct cdn_err *err);
/* `cordon run --runtime list`: each runtime and where its program is, or how to get it. */
void runtime_print_list(FILE *out, const char *root);
/* Plan the steps for code (inline with -c when !from_file, else the contents of a FILE). */
void runtime_plan(const struct runtime *rt, const char *code, size_t len, bool from_file,
		  struct runtime_plan *ret);
