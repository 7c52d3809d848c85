/* seccomp, layer 7 of SECURITY.md: deny the system calls that the namespaces do not cover.
 *
 * The filter is a deny list on top of ALLOW: the namespaces, the dropped capabilities and
 * Landlock already confine what the program may touch; seccomp removes kernel attack surface
 * (mount API, new namespaces, ptrace, keyrings, bpf, io_uring, raw and exotic sockets,
 * module loading, clock setting, ...) and every non-native system call ABI (i386 `int 0x80`,
 * x32). A denied call kills the whole process with SIGSYS (SECCOMP_RET_KILL_PROCESS), which
 * sandbox_run() reports as SANDBOX_SECURITY_VIOLATION. The one exception is clone3, which
 * fails with ENOSYS so that glibc falls back to clone, whose flags the filter can read.
 *
 * Lifecycle: the parent builds the BPF once with libseccomp (filter_build, which allocates);
 * the child only loads the finished program (filter_load, async-signal-safe). */
#pragma once

#include <linux/filter.h>

#include "util.h"

/* Build the default filter for the native architecture (x86_64) and hand back the BPF
 * program in ret_prog: ret_prog->filter is malloc'd and owned by the caller (filter_free).
 * The libseccomp context is released before returning. Syscall names that libseccomp does
 * not know on this architecture (nfsservctl, _sysctl, uselib on newer arches) are skipped.
 * Returns 0, or -errno with err saying which rule or step failed:
 * "seccomp: adding rule for \"mount\": ...". Not async-signal-safe: call it in the parent. */
int filter_build(struct sock_fprog *ret_prog, struct cdn_err *err);

/* Free the program of filter_build and reset *prog to {0, NULL}. NULL and an empty prog are
 * fine. */
void filter_free(struct sock_fprog *prog);

/* Load prog into the calling thread with seccomp(SECCOMP_SET_MODE_FILTER). Async-signal-safe
 * (one raw system call, no allocation): meant for the child between clone and execve.
 *
 * The caller must have set no_new_privs (prctl(PR_SET_NO_NEW_PRIVS, 1)) first: without it an
 * unprivileged caller gets -EACCES. Load the filter last, just before execve, after Landlock
 * and every mount: from here on mount/unshare/... kill the caller too. No TSYNC: the child is
 * single-threaded. Returns 0 or -errno (-EINVAL for a NULL or empty prog). */
int filter_load(const struct sock_fprog *prog);

/* The default filter compiled at build time (tools/gen-filter.c): a static program, not to be
 * freed. What sandbox_run() loads, so no launch pays libseccomp's compile time. */
void filter_default(struct sock_fprog *ret);
