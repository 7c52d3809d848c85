/* Parsing and checking the options of `cordon run`. Every bad input ends here with one line on
 * stderr (the caller exits 125), before any file is opened or any sandbox exists. */
#include "run-opts.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/limits.h"

static const char run_usage[] =
	"usage: cordon run [OPTIONS] -- COMMAND [ARG...]\n"
	"       cordon run [OPTIONS] --runtime NAME (-c CODE | FILE)\n"
	"\n"
	"Run a command, or code with a runtime, in a fresh sandbox.\n"
	"\n"
	"  --runtime NAME       python, node, bash, sh, c, cpp (`--runtime list`)\n"
	"  -c CODE | FILE       the program for the runtime (at most 1M)\n"
	"  --image NAME         root filesystem (default host; cordon image ls)\n"
	"  --trust LEVEL        high, medium, low (default), untrusted: sets the limits'\n"
	"                       defaults; explicit options below override them\n"
	"  -t, --timeout D      wall-clock limit        (D: 1500ms, 2s, 1m)\n"
	"  --cpu-time D         CPU-time limit of all processes together\n"
	"  -m, --memory S       memory limit, no swap   (S: bytes or K, M, G)\n"
	"  --pids N             processes + threads\n"
	"  --nofile N           open files per process\n"
	"  --fsize S            largest file a process may write\n"
	"  --max-files N        inodes of the writable scratch space\n"
	"  --disk S             bytes of the writable scratch space\n"
	"  --output S           stdout+stderr cap\n"
	"  --net none           no network (the default; proxy is not implemented yet)\n"
	"  --ro HOST[:DEST]     bind a host path read-only (DEST defaults to HOST)\n"
	"  --rw HOST[:DEST]     bind a host path writable\n"
	"  -w, --workdir DIR    working directory inside (default /tmp)\n"
	"  -e, --env K=V        set an environment variable (the environment is clean)\n"
	"  --secret K=V         like -e; V is replaced by [REDACTED] in the output\n"
	"  --stdin FILE         feed FILE as stdin (default: empty)\n"
	"  --json               capture the output; print the result object (API.md)\n"
	"  --result-file F      pass the output through; write the result object to F\n"
	"  --no-cgroup          run without a cgroup (a user with no delegated cgroup):\n"
	"                       no memory limit; pids and CPU time only by rlimits\n"
	"\n"
	"Exit status: the program's own; 128+N when it died of signal N; 124 on a time\n"
	"limit; 137 on the memory limit; 159 when the seccomp filter killed it; 125 when\n"
	"cordon itself failed. With --json: 0 unless cordon itself failed.\n";

enum {
	OPT_RUNTIME = 256,
	OPT_IMAGE,
	OPT_CPU_TIME,
	OPT_PIDS,
	OPT_NOFILE,
	OPT_FSIZE,
	OPT_MAX_FILES,
	OPT_DISK,
	OPT_OUTPUT,
	OPT_NET,
	OPT_ALLOW_DOMAIN,
	OPT_BLOCK_DOMAIN,
	OPT_RO,
	OPT_RW,
	OPT_SECRET,
	OPT_STDIN,
	OPT_TRUST,
	OPT_JSON,
	OPT_RESULT_FILE,
	OPT_STATE_DIR,
	OPT_NO_CGROUP,
};

static const struct option run_options[] = {
	{"runtime", required_argument, NULL, OPT_RUNTIME},
	{"image", required_argument, NULL, OPT_IMAGE},
	{"timeout", required_argument, NULL, 't'},
	{"cpu-time", required_argument, NULL, OPT_CPU_TIME},
	{"memory", required_argument, NULL, 'm'},
	{"pids", required_argument, NULL, OPT_PIDS},
	{"nofile", required_argument, NULL, OPT_NOFILE},
	{"fsize", required_argument, NULL, OPT_FSIZE},
	{"max-files", required_argument, NULL, OPT_MAX_FILES},
	{"disk", required_argument, NULL, OPT_DISK},
	{"output", required_argument, NULL, OPT_OUTPUT},
	{"net", required_argument, NULL, OPT_NET},
	{"allow-domain", required_argument, NULL, OPT_ALLOW_DOMAIN},
	{"block-domain", required_argument, NULL, OPT_BLOCK_DOMAIN},
	{"ro", required_argument, NULL, OPT_RO},
	{"rw", required_argument, NULL, OPT_RW},
	{"workdir", required_argument, NULL, 'w'},
	{"env", required_argument, NULL, 'e'},
	{"secret", required_argument, NULL, OPT_SECRET},
	{"stdin", required_argument, NULL, OPT_STDIN},
	{"trust", required_argument, NULL, OPT_TRUST},
	{"json", no_argument, NULL, OPT_JSON},
	{"result-file", required_argument, NULL, OPT_RESULT_FILE},
	{"help", no_argument, NULL, 'h'},
	{"no-cgroup", no_argument, NULL, OPT_NO_CGROUP},
	/* Hidden: for tests, not in the usage text. */
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{NULL, 0, NULL, 0},
};

/* Options that set a limit, by the name the limit table knows them by. */
static const struct {
	int opt;
	const char *name;
} run_limit_options[] = {
	{'t', "--timeout"},         {OPT_CPU_TIME, "--cpu-time"}, {'m', "--memory"},
	{OPT_PIDS, "--pids"},       {OPT_NOFILE, "--nofile"},     {OPT_FSIZE, "--fsize"},
	{OPT_MAX_FILES, "--max-files"}, {OPT_DISK, "--disk"},     {OPT_OUTPUT, "--output"},
};

void run_opts_init(struct run_opts *o)
{
	*o = (struct run_opts){.image = "host", .trust = TRUST_LOW};
	/* The whole environment of the program: nothing of ours leaks in (CLI.md). */
	o->env[o->n_env++] = "PATH=" RUNTIME_PATH;
	o->env[o->n_env++] = "HOME=/tmp";
	o->env[o->n_env++] = "LANG=C.UTF-8";
}

void run_opts_release(struct run_opts *o)
{
	for (size_t i = 0; i < o->n_binds; i++) {
		free((char *)o->binds[i].src);
		free((char *)o->binds[i].dest);
	}
	o->n_binds = 0;
	free(o->workdir);
	o->workdir = NULL;
	for (size_t i = 0; i < o->n_secrets; i++)
		free(o->secret_env[i]);
	o->n_secrets = 0;
}

static int run_set_limit(struct run_opts *o, const char *name, const char *arg)
{
	for (size_t i = 0; i < limit_table_len; i++) {
		const struct limit_def *d = &limit_table[i];
		if (!streq(d->cli_option, name))
			continue;
		uint64_t v;
		int r = d->unit == LIMIT_MS      ? parse_duration_ms(arg, &v)
			: d->unit == LIMIT_BYTES ? parse_size(arg, &v)
						 : parse_u64(arg, &v);
		if (r < 0) {
			cli_error("invalid %s \"%s\": expected %s", name, arg,
				  d->unit == LIMIT_MS      ? "a duration like 1500ms, 2s or 1m"
				  : d->unit == LIMIT_BYTES ? "a size like 256M"
							   : "a number");
			return -1;
		}
		*(uint64_t *)((char *)&o->limit_value + d->offset) = v;
		o->limit_set[d->offset / sizeof(uint64_t)] = true;
		return 0;
	}
	cli_error("%s: no such limit (this is a bug)", name);
	return -1;
}

int run_opts_limits(const struct run_opts *o, struct sbx_limits *ret, struct cdn_err *err)
{
	limits_default(o->trust, ret);
	uint64_t *dst = (uint64_t *)ret;
	const uint64_t *src = (const uint64_t *)&o->limit_value;
	for (size_t i = 0; i < RUN_N_LIMITS; i++)
		if (o->limit_set[i])
			dst[i] = src[i];
	return limits_check(ret, err);
}

/* Binds over the mounts the sandbox builds itself would undo isolation: a host /proc shows
 * host processes, a host /dev hands out devices, /sys exposes host hardware and knobs. */
static bool run_dest_reserved(const char *dest)
{
	static const char *const reserved[] = {"/proc", "/sys", "/dev"};
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
		size_t n = strlen(reserved[i]);
		if (!strncmp(dest, reserved[i], n) && (dest[n] == 0 || dest[n] == '/'))
			return true;
	}
	return false;
}

/* The DEST of --ro/--rw: given, else HOST as written when absolute, else HOST resolved. */
static int run_bind_dest(const char *opt, const char *host, const char *dest, const char *src,
			 char **ret)
{
	if (!dest && host[0] == '/' && path_normalize_abs(host, ret) == 0)
		return 0;
	if (!dest)
		dest = src;
	if (path_normalize_abs(dest, ret) < 0) {
		cli_error("%s: destination \"%s\" must be an absolute path without .. components",
			  opt, dest);
		return -1;
	}
	return 0;
}

static int run_add_bind(struct run_opts *o, const char *arg, bool writable)
{
	const char *opt = writable ? "--rw" : "--ro";
	if (o->n_binds >= RUN_MAX_BINDS) {
		cli_error("%s: at most %d binds", opt, RUN_MAX_BINDS);
		return -1;
	}
	/* HOST[:DEST], split at the first ':' (a HOST with ':' in its name needs a DEST). */
	const char *colon = strchr(arg, ':');
	_cleanup_free_ char *host = colon ? strndup(arg, (size_t)(colon - arg)) : strdup(arg);
	if (!host)
		return -1;
	if (!*host || (colon && !colon[1])) {
		cli_error("%s \"%s\": expected HOST[:DEST]", opt, arg);
		return -1;
	}
	/* Resolve symlinks now: what gets bound is what the caller could see, not what a symlink
	 * swapped in later points to. */
	_cleanup_free_ char *src = realpath(host, NULL);
	if (!src) {
		cli_error("%s: host path \"%s\": %m", opt, host);
		return -1;
	}
	_cleanup_free_ char *dest = NULL;
	if (run_bind_dest(opt, host, colon ? colon + 1 : NULL, src, &dest) < 0)
		return -1;
	if (streq(dest, "/") || run_dest_reserved(dest)) {
		cli_error("%s: cannot bind over \"%s\" (the sandbox builds it)", opt, dest);
		return -1;
	}
	for (size_t i = 0; i < o->n_binds; i++)
		if (streq(o->binds[i].dest, dest)) {
			cli_error("%s: \"%s\" is bound twice", opt, dest);
			return -1;
		}
	o->binds[o->n_binds++] = (struct sbx_bind){
		.src = TAKE_PTR(src), .dest = TAKE_PTR(dest), .writable = writable,
	};
	return 0;
}

static bool run_env_name_valid(const char *s, size_t len)
{
	if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

/* Take a --secret K=V out of our argv: keep a copy, and overwrite the value in argv, which
 * /proc/PID/cmdline shows to every host user (ps) and to anything that reads the memory of a
 * process forked from us. */
static char *run_take_secret(char *arg, size_t klen)
{
	char *copy = strdup(arg);
	if (copy)
		memset(arg + klen + 1, '*', strlen(arg + klen + 1));
	return copy;
}

/* -e K=V and --secret K=V. A later K replaces an earlier one (the defaults included). */
static int run_add_env(struct run_opts *o, char *arg, bool secret)
{
	const char *opt = secret ? "--secret" : "--env";
	const char *eq = strchr(arg, '=');
	size_t klen = eq ? (size_t)(eq - arg) : 0;
	if (!eq || !run_env_name_valid(arg, klen)) {
		cli_error("%s: expected NAME=VALUE with NAME of [A-Za-z_][A-Za-z0-9_]*", opt);
		return -1;
	}
	if (strlen(arg) > RUN_MAX_ENV_LEN) {
		cli_error("%s %.*s: over %d bytes", opt, (int)klen, arg, RUN_MAX_ENV_LEN);
		return -1;
	}
	if (secret) {
		/* An empty secret would "redact" every position of the output. */
		if (!eq[1]) {
			cli_error("--secret %.*s: empty value", (int)klen, arg);
			return -1;
		}
		if (o->n_secrets >= RUN_MAX_SECRETS) {
			cli_error("--secret: at most %d secrets", RUN_MAX_SECRETS);
			return -1;
		}
		char *copy = run_take_secret(arg, klen);
		if (!copy) {
			cli_error("--secret: out of memory");
			return -1;
		}
		o->secret_env[o->n_secrets] = arg = copy;
		o->secrets[o->n_secrets++] = copy + klen + 1;
	}
	for (size_t i = 0; i < o->n_env; i++)
		if (!strncmp(o->env[i], arg, klen + 1)) {
			o->env[i] = arg;
			return 0;
		}
	if (o->n_env >= RUN_BASE_ENV + RUN_MAX_ENV) {
		cli_error("%s: at most %d variables", opt, RUN_MAX_ENV);
		return -1;
	}
	o->env[o->n_env++] = arg;
	return 0;
}

static int run_set_runtime(struct run_opts *o, const char *name)
{
	if (streq(name, "list")) {
		o->runtime_list = true;
		return 0;
	}
	o->runtime = runtime_find(name);
	if (!o->runtime) {
		cli_error("unknown runtime \"%s\" (%s)", name, runtime_names());
		return -1;
	}
	return 0;
}

static int run_set_net(const char *arg)
{
	if (streq(arg, "proxy")) {
		cli_error("--net proxy is not implemented yet");
		return -1;
	}
	if (!streq(arg, "none")) {
		cli_error("invalid --net \"%s\": expected none or proxy", arg);
		return -1;
	}
	return 0;
}

static int run_set_image(struct run_opts *o, const char *name)
{
	if (!streq(name, "host") && !state_image_name_valid(name)) {
		cli_error("invalid image name \"%s\": expected [a-z0-9][a-z0-9._-]{0,63}", name);
		return -1;
	}
	o->image = name;
	return 0;
}

static int run_set_workdir(struct run_opts *o, const char *arg)
{
	free(o->workdir);
	o->workdir = NULL;
	if (path_normalize_abs(arg, &o->workdir) < 0) {
		cli_error("--workdir \"%s\": expected an absolute path without .. components", arg);
		return -1;
	}
	return 0;
}

/* One option; -1 on bad input. */
static int run_opt(struct run_opts *o, int c, char *arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(run_limit_options); i++)
		if (run_limit_options[i].opt == c)
			return run_set_limit(o, run_limit_options[i].name, arg);
	switch (c) {
	case OPT_RUNTIME:
		return run_set_runtime(o, arg);
	case 'c':
		o->code = arg;
		return 0;
	case OPT_IMAGE:
		return run_set_image(o, arg);
	case OPT_NET:
		return run_set_net(arg);
	case OPT_ALLOW_DOMAIN:
	case OPT_BLOCK_DOMAIN:
		if (!o->domain_option)
			o->domain_option = c == OPT_ALLOW_DOMAIN ? "--allow-domain" : "--block-domain";
		return 0;
	case OPT_RO:
	case OPT_RW:
		return run_add_bind(o, arg, c == OPT_RW);
	case 'w':
		return run_set_workdir(o, arg);
	case 'e':
	case OPT_SECRET:
		return run_add_env(o, arg, c == OPT_SECRET);
	case OPT_STDIN:
		o->stdin_path = arg;
		return 0;
	case OPT_TRUST:
		if (trust_parse(arg, &o->trust) < 0) {
			cli_error("unknown trust level \"%s\" (high, medium, low, untrusted)", arg);
			return -1;
		}
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_RESULT_FILE:
		o->result_file = arg;
		return 0;
	case OPT_STATE_DIR:
		o->state_dir = arg;
		return 0;
	case OPT_NO_CGROUP:
		o->no_cgroup = true;
		return 0;
	}
	return -1;
}

/* getopt's own error, as one line of ours. */
static void run_opt_error(int c, char **argv)
{
	const char *arg = argv[optind - 1];
	bool is_long = arg[0] == '-' && arg[1] == '-';
	if (c == ':')
		cli_error("option \"%s\" needs a value", arg);
	else if (!is_long)
		cli_error("unknown option \"-%c\" (cordon run --help)", optopt);
	else if (optopt) /* a known long option given "=VALUE" it does not take */
		cli_error("option \"%.*s\" takes no value", (int)strcspn(arg, "="), arg);
	else
		cli_error("unknown option \"%s\" (cordon run --help)", arg);
}

/* Checks between options, once all are known. */
static int run_opts_validate(const struct run_opts *o)
{
	/* Domains only mean something to the egress proxy, which is not there yet. */
	if (o->domain_option) {
		cli_error("%s needs --net proxy", o->domain_option);
		return -1;
	}
	if (o->runtime_list)
		return 0;
	if (o->runtime && o->command) {
		cli_error("--runtime and -- COMMAND exclude each other");
		return -1;
	}
	if (!o->runtime && o->file) {
		cli_error("unexpected argument \"%s\" (a command goes after --; a FILE needs "
			  "--runtime)", o->file);
		return -1;
	}
	if (!o->runtime && !o->command) {
		cli_error(o->code ? "-c CODE needs --runtime"
				  : "nothing to run: give -- COMMAND or --runtime");
		return -1;
	}
	if (o->runtime && !!o->code == !!o->file) {
		if (o->code)
			cli_error("give -c CODE or FILE, not both");
		else
			cli_error("--runtime %s needs -c CODE or a FILE", o->runtime->name);
		return -1;
	}
	return 0;
}

int run_opts_parse(int argc, char **argv, struct run_opts *o)
{
	/* "+": stop at the first non-option, so nothing after "--" or FILE is permuted into our
	 * options; FILE itself is taken and scanning goes on. */
	opterr = 0;
	optind = 1;
	for (;;) {
		int prev = optind;
		int c = getopt_long(argc, argv, "+:c:t:m:w:e:h", run_options, NULL);
		if (c == -1) {
			if (optind == prev + 1 && streq(argv[prev], "--")) {
				if (optind >= argc) {
					cli_error("-- needs a COMMAND");
					return -1;
				}
				o->command = argv + optind;
				break;
			}
			if (optind >= argc)
				break;
			if (o->file) {
				cli_error("unexpected argument \"%s\" (a command goes after --)",
					  argv[optind]);
				return -1;
			}
			o->file = argv[optind++];
			continue;
		}
		if (c == 'h') {
			fputs(run_usage, stdout);
			return 1;
		}
		if (c == '?' || c == ':') {
			run_opt_error(c, argv);
			return -1;
		}
		if (run_opt(o, c, optarg) < 0)
			return -1;
	}
	o->env[o->n_env] = NULL;
	return run_opts_validate(o);
}
