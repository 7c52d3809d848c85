/* Landlock, layer 8 of SECURITY.md: an unprivileged LSM policy that the program cannot drop.
 * It repeats the mount layer's "read-only except the writable paths" in a way that survives a
 * mount-layer mistake, denies TCP bind/connect when the run has no network (ABI >= 4), and
 * keeps abstract unix sockets and signals inside the sandbox (ABI >= 6).
 *
 * Everything here is async-signal-safe (raw system calls on caller memory, no allocation):
 * it runs in the child after pivot_root, before the seccomp filter and execve. The ABI 3-7
 * constants are defined in landlock.c, since Debian 12's <linux/landlock.h> stops at ABI 2. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Highest ABI whose rights this code knows; a newer kernel is used at this level. */
#define LANDLOCK_ABI_KNOWN 7

/* The running kernel's Landlock ABI version: 1..n, 0 when it has none (ENOSYS: not built;
 * EOPNOTSUPP: built but not enabled at boot), or -errno on any other failure. */
int landlock_abi(void);

/* Every filesystem access right that ABI abi can handle (abi above LANDLOCK_ABI_KNOWN counts
 * as LANDLOCK_ABI_KNOWN, 0 or less gives 0):
 *   1: execute, write/read file, read dir, remove dir/file, make char/dir/reg/sock/fifo/
 *      block/sym;  2: + refer (link/rename across dirs);  3: + truncate;  5: + ioctl_dev. */
uint64_t landlock_abi_mask_fs(int abi);

/* Restrict the calling thread (and everything it execs or forks) for good:
 *  - every filesystem right of the running ABI is handled, so whatever is not granted is
 *    denied; granted: read file, read dir and execute under "/"; write (no create, no
 *    truncate, no ioctl) of existing files under "/dev", so /dev/null and friends work;
 *    every handled right under each of writable[0..n_writable) (absolute paths, opened
 *    O_PATH; a path that does not exist is skipped; for a non-directory only the file rights
 *    apply). Paths resolve against the caller's current root: call it after pivot_root.
 *  - ABI >= 4 and !net_allowed: TCP bind and connect are handled with no rule, so denied
 *    (EACCES) everywhere, loopback included. net_allowed: network is not handled at all.
 *  - ABI >= 6: scoped to the sandbox's own domain: connecting to abstract unix sockets
 *    made outside it and signalling processes outside it (cordon's init, the host) fail
 *    with EPERM.
 * The caller must have set no_new_privs first (else -EPERM). Returns 0, or -errno:
 * -EOPNOTSUPP when the kernel has no Landlock (the caller checks landlock_abi() first and
 * skips this layer when it is 0); any other failure must abort the run (fail closed). */
int landlock_apply(const char *const *writable, size_t n_writable, bool net_allowed);
