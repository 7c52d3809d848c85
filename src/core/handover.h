/* Handing a host directory tree to a sandbox's uid for the length of a run (a workspace bound
 * writable: its files must belong to the sandbox's unprivileged host uid to be writable
 * inside), and back afterwards. */
#pragma once

#include <sys/types.h>

#include "util.h"

#define HANDOVER_MAX_DEPTH 256
#define HANDOVER_MAX_ENTRIES 1000000

/* chown path and everything below it to uid:gid. Never follows a symlink (the link itself is
 * chowned), never leaves path's filesystem, never opens a directory by a path a sandbox could
 * have swapped (every step is openat(O_NOFOLLOW) from the parent's fd). The kernel clears
 * setuid/setgid bits on the way. Giving (uid is not ours), files with several names are left
 * alone: one could be a host file hard-linked in. The walk goes on past errors and past the
 * depth and entry bounds (skipping what it cannot reach), so that as much as possible is
 * changed; it returns the first error (-errno, err names the entry) or 0. A sandbox can nest
 * a writable tree deeper than the bound: after giving back, a caller must remove the tree (or
 * treat entries still owned by the sandbox uid as the sandbox's). */
int handover_tree(const char *path, uid_t uid, gid_t gid, struct cdn_err *err);
