/* The options of `cordon run` (CLI.md), parsed and checked, before anything touches the host. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/sandbox.h"
#include "runtime.h"

/* Bounds on what the caller controls. */
#define RUN_MAX_BINDS 64
#define RUN_MAX_ENV 256         /* -e and --secret together */
#define RUN_MAX_SECRETS 64
#define RUN_MAX_ENV_LEN (32 * 1024) /* one "K=V" */
#define RUN_BASE_ENV 3          /* PATH, HOME, LANG */

#define RUN_N_LIMITS (sizeof(struct sbx_limits) / sizeof(uint64_t))

struct run_opts {
	const struct runtime *runtime; /* NULL: a raw command after "--" */
	bool runtime_list;             /* --runtime list */
	const char *code;              /* -c CODE */
	const char *file;              /* FILE */
	char **command;                /* after "--", NULL-terminated (argv's own) */
	const char *image;             /* "host" by default */
	enum trust_level trust;
	struct sbx_limits limit_value; /* explicit limit options... */
	bool limit_set[RUN_N_LIMITS];  /* ...and which were given (index: offset / 8) */
	const char *domain_option;     /* first --allow-domain/--block-domain seen */
	struct sbx_bind binds[RUN_MAX_BINDS]; /* src and dest are ours (malloc'd) */
	size_t n_binds;
	char *workdir;                 /* normalized, ours */
	const char *env[RUN_BASE_ENV + RUN_MAX_ENV + 1]; /* "K=V", NULL-terminated */
	size_t n_env;
	const char *secrets[RUN_MAX_SECRETS]; /* values, inside secret_env */
	char *secret_env[RUN_MAX_SECRETS];    /* "K=V" of each --secret, ours */
	size_t n_secrets;
	const char *stdin_path;
	bool json;
	const char *result_file;
	const char *state_dir;         /* --state-dir, NULL for the default */
	bool no_cgroup;
};

void run_opts_init(struct run_opts *o);
void run_opts_release(struct run_opts *o);
/* Parse argv (argv[0] = "run"). Prints the error and returns -1 on bad input; 1 when done
 * (--help); 0 to run. */
int run_opts_parse(int argc, char **argv, struct run_opts *o);
/* The limits of the run: the trust level's defaults, then every explicit option on top,
 * whatever the order they were given in; checked against the limit table. */
int run_opts_limits(const struct run_opts *o, struct sbx_limits *ret, struct cdn_err *err);
