/* Shared by the probe files (probe.c, probe-cgroup.c); not part of the core's interface. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "probe.h"
#include "slot.h"

/* Read n ints from fd until deadline (now_ns() clock). Returns how many arrived (fewer when
 * the writer died first) or -ETIMEDOUT / -errno. */
int probe_read_ints(int fd, int *out, size_t n, uint64_t deadline);
/* Wait for our child pid (SIGKILL first when asked); returns its wait status or -errno. */
int probe_reap(pid_t pid, bool kill_first);

/* Take a sandbox slot (its uid and cgroup name, as a run does), then probe the cgroup
 * backend, each controller, clone3 / CLONE_INTO_CGROUP and pidfds, with a child born into
 * (or moved into) the slot's cgroup. The cgroup is removed again; the slot stays held for the
 * user namespace probe (ret_slot->uid) until probe_slot_release. Rootless (not root): slots
 * in <state_dir>/slots and only a delegated cgroup v2 subtree, as sandbox.c does. */
void probe_cgroup(struct probe_report *rep, const char *state_dir, struct slot *ret_slot);
void probe_slot_release(struct slot *slot);
