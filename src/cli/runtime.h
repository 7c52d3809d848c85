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
	const char *const *compile_argv; /* compile step; NULL for interpreters */
	const char *binary;    /* what the compile step produces (run as step 1) */
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

/* NULL for an unknown name. */
const struct runtime *runtime_find(const char *name);
/* "python, node, bash, sh, c, cpp" for messages. */
const char *runtime_names(void);
/* Find rt's interpreter (or compiler) in RUNTIME_PATH inside root (NULL: the host). Symlinks
 * are resolved inside root, as the sandbox will. Fills ret_path (path inside root) or returns
 * -ENOENT. */
int runtime_locate(const struct runtime *rt, const char *root, char *ret_path, size_t size);
/* Fail (with the fix in the message) when the image lacks what rt needs. */
int runtime_check(const struct runtime *rt, const char *root, const char *image,
		  struct cdn_err *err);
/* `cordon run --runtime list`: each runtime and where its program is, or how to get it. */
void runtime_print_list(FILE *out, const char *root);
/* Plan the steps for code (inline with -c when !from_file, else the contents of a FILE). */
void runtime_plan(const struct runtime *rt, const char *code, size_t len, bool from_file,
		  struct runtime_plan *ret);
