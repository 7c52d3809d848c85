/* Slots: a per-sandbox identity (host uid and cgroup name) held by a lock file for the life of
 * the run. The lock is an flock(2) on <slot dir>/<level>-<n>.lock, so it is released by the
 * kernel when the supervisor dies, even by SIGKILL: a free lock with a cgroup still present
 * marks a stale run that the next run sweeps.
 *
 * As root the slot dir is /run/cordon/slots, global to the host, and concurrent runs never
 * share a uid or a cgroup. Rootless (slot_init with rootless set) it is <state dir>/slots and
 * every slot's uid is the caller's own: an unprivileged user can map only its own uid into a
 * user namespace, so concurrent rootless runs of one user share a host uid (their namespaces
 * still keep them apart). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "sandbox.h"

/* Host uids of sandboxes: level L, slot n -> SLOT_UID_BASE + L * SLOT_UID_RANGE + n. Far above
 * any uid a distribution hands out, and never 0. */
#define SLOT_UID_BASE 1000000000u
#define SLOT_UID_RANGE 1000000u
#define SLOT_MAX 65536u

struct slot {
	int lock_fd;
	unsigned index;
	enum trust_level trust;
	uid_t uid;
	char name[32]; /* "low-17": also the cgroup name */
};

/* Choose the slot dir: /run/cordon/slots, or rootless <state_dir>/slots (state_dir must be the
 * caller's own private directory; the CLI checks it). Called before any other slot function;
 * cheap to call again. */
int slot_init(bool rootless, const char *state_dir, struct cdn_err *err);
int slot_acquire(enum trust_level trust, struct slot *ret, struct cdn_err *err);
void slot_release(struct slot *s);
/* Try to take the lock of the slot called `name` without waiting: returns the lock fd (the
 * slot is stale: its run is gone), -EBUSY when a live run holds it, or another -errno. */
int slot_try_lock_name(const char *name);
