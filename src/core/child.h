/* The sandbox side of sandbox_run(): the code that runs in the cloned child, first as the
 * sandbox's init (PID 1 of the new pid namespace), then, in a fork of it, as the program until
 * execve. Async-signal-safe only: raw system calls on memory prepared by the parent. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>

#include "sandbox.h"

#define CHILD_MAX_BINDS 64

/* Everything the child needs, prepared by the parent before clone; the child only reads it. */
struct child_ctx {
	const struct sbx_spec *spec;
	int go_fd;                       /* read end: parent -> init commands */
	int rep_fd;                      /* write end: init -> parent messages */
	int out_w[SBX_MAX_STEPS];        /* stdout write ends, one pipe per step */
	int err_w[SBX_MAX_STEPS];        /* stderr write ends (-1: merged into stdout) */
	int image_fd;                    /* detached mount (open_tree) of a named image, or -1 */
	bool image_attr_done;            /* the parent made it ro/nosuid/nodev (mount_setattr) */
	int bind_fd[CHILD_MAX_BINDS];    /* detached mounts of the bind sources */
	bool bind_is_dir[CHILD_MAX_BINDS];
	bool bind_attr_done[CHILD_MAX_BINDS];
	const struct sock_fprog *filter; /* seccomp BPF built by the parent */
	int landlock_abi;                /* 0: the kernel has no Landlock */
	int cap_last;                    /* /proc/sys/kernel/cap_last_cap */
	bool unshare_cgroupns;           /* v1: enter a cgroup namespace after the move */
	int cg_self_fd[3];               /* v1: "tasks" files init writes "0" to (moves itself) */
	int n_cg_self;
	bool cgroup_pids;                /* pids.max enforces the process limit */
	bool rootless;                   /* the caller is not root: init opens the bind sources
					  * itself (image_fd/bind_fd are -1) and keeps the
					  * caller's groups (setgroups is denied) */
	char scratch_opts[96];           /* tmpfs options of /tmp: size, nr_inodes */
	char shm_opts[64];
	const char *writable[CHILD_MAX_BINDS + 2]; /* Landlock write paths inside the sandbox */
	size_t n_writable;
};

/* Commands on go_fd. */
#define CHILD_CMD_MAPPED 'M' /* ids are mapped: build the root filesystem */
#define CHILD_CMD_GO 'G'   /* the cgroup is joined: run step 0 */
#define CHILD_CMD_NEXT 'N' /* run the next step */

enum child_msg_type {
	MSG_FAIL = 1, /* setup failed: step = setup step, err = errno, arg = index (bind #) */
	MSG_EXEC,     /* step `step` is running (execve succeeded) */
	MSG_EXECFAIL, /* step `step`: execve failed with err */
	MSG_EXIT,     /* step `step` ended: status = wait status, arg = processes it left behind,
		       * files/flags = scratch stats */
};

/* Scratch stats flags in MSG_EXIT. */
#define SCRATCH_FULL_BLOCKS 1u
#define SCRATCH_FULL_INODES 2u

struct child_msg {
	int32_t type;
	int32_t step;
	int32_t err;
	int32_t status;
	int32_t arg;
	uint32_t flags;
	uint64_t files;
	uint64_t cpu_ns; /* MSG_EXIT: CPU time of every process init has reaped so far, all steps */
};

/* Setup steps of the child, for messages ("setup step \"mount /proc\" failed: ..."). */
enum child_setup {
	CS_READ_GO = 1,
	CS_IDS,
	CS_CGROUPNS,
	CS_HOSTNAME,
	CS_PRIVATE,
	CS_ROOT_TMPFS,
	CS_IMAGE,
	CS_ETC,
	CS_SCRATCH,
	CS_PROC,
	CS_PROC_MASK,
	CS_DEV,
	CS_BIND,
	CS_FILES,
	CS_ROOT_RO,
	CS_PIVOT,
	CS_FORK,
	CS_STDIO,
	CS_CLOSE_FDS,
	CS_WORKDIR,
	CS_RLIMIT,
	CS_CAPS,
	CS_NNP,
	CS_LANDLOCK,
	CS_SECCOMP,
};

const char *child_setup_name(enum child_setup step);

/* Entry point of the cloned child; never returns. */
__attribute__((noreturn)) void child_main(const struct child_ctx *ctx);
