/* Safe recursive removal (image rm, and cleanup of a failed import). */
#pragma once

/* Remove name (relative to parentfd) and everything below it, without following symlinks or
 * crossing into another filesystem. 0 if it is gone (or was never there), else -errno. */
int rmtree_at(int parentfd, const char *name);
