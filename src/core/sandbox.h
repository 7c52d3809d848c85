/* The sandbox: run one or two programs (e.g. compile, then run) in a fresh set of namespaces
 * with every isolation layer of SECURITY.md and the limits of API.md, and report a verdict.
 *
 * The caller is a single-threaded process (the `cordon` CLI, or the daemon's spawner process):
 * sandbox_run() forks, so it must never be called from a multi-threaded process. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

enum trust_level {
	TRUST_HIGH = 0,
	TRUST_MEDIUM,
	TRUST_LOW,
	TRUST_UNTRUSTED,
	TRUST__COUNT,
};

/* Why a run ended. NONE means the program exited 0. */
enum sbx_code {
	SBX_OK = 0,
	SBX_TIMEOUT,           /* wall-clock limit */
	SBX_CPU_LIMIT,         /* CPU-time limit */
	SBX_MEMORY_LIMIT,      /* OOM kill in the run's cgroup */
	SBX_PROCESS_LIMIT,     /* pids limit refused a fork and the program failed */
	SBX_OUTPUT_LIMIT,      /* stdout+stderr over the cap */
	SBX_FILE_LIMIT,        /* file size, file count or disk limit */
	SBX_NETWORK_BLOCKED,   /* egress policy (later) */
	SBX_SECURITY_VIOLATION,/* killed by seccomp or another layer */
	SBX_COMPILE_ERROR,     /* compile step failed */
	SBX_RUNTIME_ERROR,     /* non-zero exit or own signal */
	SBX_CANCELLED,         /* cancelled by the caller */
	SBX_INTERNAL,          /* cordon failed; message names the step */
	SBX__COUNT,
};

/* "SANDBOX_TIMEOUT" etc.; NULL for SBX_OK. */
const char *sbx_code_name(enum sbx_code code);

struct sbx_limits {
	uint64_t wall_ms;      /* wall-clock limit of the step */
	uint64_t cpu_ms;       /* CPU time of all processes of the step together */
	uint64_t memory_bytes; /* cgroup memory limit, swap 0 */
	uint64_t pids;         /* processes + threads (cgroup pids.max) */
	uint64_t nofile;       /* RLIMIT_NOFILE */
	uint64_t fsize_bytes;  /* RLIMIT_FSIZE */
	uint64_t max_files;    /* inodes of the scratch tmpfs */
	uint64_t disk_bytes;   /* bytes of the scratch tmpfs */
	uint64_t output_bytes; /* stdout + stderr cap */
};

/* A host path bound into the sandbox. dest is absolute inside the sandbox. */
struct sbx_bind {
	const char *src;
	const char *dest;
	bool writable;
	/* A host tree the sandbox works in (a workspace): chowned to the sandbox's host uid for
	 * the run, so its files are writable inside, and back to the caller's uid afterwards
	 * (handover.h). Needs writable; ignored rootless (the sandbox is the caller's uid). */
	bool give;
};

/* A file the sandbox's init writes into the scratch space before the first step (the program
 * source, for instance). path is absolute inside the sandbox and must be under /tmp. */
struct sbx_file {
	const char *path;
	const void *data;
	size_t len;
	mode_t mode;
};

/* One program run inside the sandbox. Steps run in order in the same sandbox (same scratch
 * space); a later step runs only if the earlier ones exited 0. */
struct sbx_step {
	char *const *argv;        /* argv[0] is resolved against PATH inside the sandbox */
	struct sbx_limits limits; /* max_files/disk_bytes are taken from step 0 (one scratch) */
	bool merge_output;        /* stderr goes to the stdout stream (compile diagnostics) */
	int stdin_fd;             /* readable fd to give as stdin, or -1 for /dev/null */
};

enum sbx_stream { SBX_STDOUT = 1, SBX_STDERR = 2 };

/* Called by sandbox_run() with each chunk of program output, already redacted and capped. */
typedef void (*sbx_output_fn)(void *userdata, int step, enum sbx_stream stream,
			      const char *buf, size_t len);

#define SBX_MAX_STEPS 2

struct sbx_spec {
	const char *state_dir;  /* slot locks live under it; must exist */
	const char *image_root; /* root filesystem directory, or NULL for the `host` image */
	enum trust_level trust;
	struct sbx_step steps[SBX_MAX_STEPS];
	size_t n_steps;
	char *const *envp;      /* complete environment of the program (clean; no host vars) */
	const char *workdir;    /* inside the sandbox; default /tmp */
	const struct sbx_bind *binds;
	size_t n_binds;
	const struct sbx_file *files;
	size_t n_files;
	const char *const *secrets; /* values to replace with "[REDACTED]" in output */
	size_t n_secrets;
	bool no_cgroup;         /* explicit opt-out: run without cgroup limits (rootless) */
	sbx_output_fn on_output;
	void *userdata;
};

struct sbx_metrics {
	uint64_t wall_ns;
	uint64_t cpu_ns;
	uint64_t memory_peak_bytes;
	uint64_t processes_peak;
	uint64_t output_bytes;   /* bytes the program wrote (before the cap) */
	uint64_t files_written;  /* regular files in the scratch space when the step ended */
};

struct sbx_step_result {
	bool ran;               /* the program was exec'd */
	bool exited;            /* exited normally: exit_code valid */
	int exit_code;
	int signal;             /* the signal that killed it, 0 if none */
	enum sbx_code code;
	char message[256];      /* "wall time limit of 1000 ms exceeded", or "" */
	bool stdout_truncated, stderr_truncated;
	struct sbx_metrics metrics;
};

/* Setup time split into the steps of sandbox_run(), in nanoseconds, for the benchmark. */
struct sbx_setup_times {
	uint64_t prepare_ns;    /* slot, cgroup creation and limits, pipes */
	uint64_t clone_ns;      /* clone until the child is in its cgroup with id maps */
	uint64_t child_ns;      /* mounts, pivot_root, privileges, until execve */
	uint64_t total_ns;      /* sandbox_run() entry until the first execve */
};

struct sbx_result {
	struct sbx_step_result steps[SBX_MAX_STEPS];
	size_t n_steps;         /* steps that were attempted */
	enum sbx_code code;     /* verdict of the whole run (first failing step) */
	struct sbx_setup_times setup;
	uid_t host_uid;         /* the unprivileged host uid the sandbox ran as */
	bool cgroup_limits;     /* false when run with no_cgroup */
};

/* Run the spec. Returns 0 when the sandbox ran (the verdict, even a failing one, is in
 * ret_result), or -errno when cordon itself could not set up the sandbox: then err says which
 * step failed and why (and a host lacking a feature says which one and the fix). */
int sandbox_run(const struct sbx_spec *spec, struct sbx_result *ret_result, struct cdn_err *err);

/* Stop the run in progress from a signal handler (SIGINT/SIGTERM): the sandbox is killed and
 * sandbox_run() returns with code SBX_CANCELLED. Async-signal-safe. */
void sandbox_cancel(void);

/* Remove leftovers (cgroups, processes) of runs whose supervisor died (kill -9). Also done at
 * the start of every sandbox_run(). */
int sandbox_sweep(const char *state_dir, struct cdn_err *err);
