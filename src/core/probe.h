/* Host probes for `cordon doctor`: each one tries the mechanism a run uses, the way the run uses
 * it, and says what it found. Not reading configuration: a user namespace is created, a
 * cgroup is made below cordon's parent and a process born into it, a seccomp filter is loaded
 * in a forked child, tmpfs and overlayfs are mounted in a child's private mount namespace.
 *
 * Everything a probe starts is a child of the caller that is killed and reaped before the
 * probe returns (bounded by PROBE_TIMEOUT_MS); the one cgroup it creates is its own slot's,
 * below cordon's parent, and is removed again. The caller must be single-threaded (probes
 * fork). Nothing here prints: results are filled into struct probe_check for the CLI. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define PROBE_TIMEOUT_MS 10000

enum probe_status { PROBE_OK, PROBE_WARN, PROBE_FAIL };

/* How a failed check affects `cordon run`. */
enum probe_impact {
	PROBE_NONE,          /* ok or warn: a fallback or a lesser feature */
	PROBE_LAYER_MISSING, /* `cordon run` works, without one isolation layer */
	PROBE_RUN_BROKEN,    /* `cordon run` refuses, or some of its options do */
};

struct probe_check {
	const char *name; /* stable id: "kernel", "userns", "cgroup", "landlock", ... */
	enum probe_status status;
	enum probe_impact impact;
	char detail[640];  /* what was found, lower case, no final period */
	char fix[256];     /* what to do about a warn or fail; empty when nothing */
};

#define PROBE_MAX_CHECKS 32

struct probe_report {
	struct probe_check checks[PROBE_MAX_CHECKS];
	size_t n;
};

/* Run every probe of the host and fill ret (checks in a fixed order; see probe.c for the list
 * and what each one does). Never fails as a whole: a probe that cannot run is a check with
 * status PROBE_FAIL saying why. As root the probes do what a root run does; otherwise what a
 * rootless run does (slots in <state_dir>/slots, a delegated cgroup v2 subtree, detached
 * mounts made inside the user namespace). state_dir: the resolved state directory, or NULL
 * when there is none (rootless probes that need it then fail saying so). */
void probe_host(struct probe_report *ret, const char *state_dir);

/* Append one check (the CLI adds its own, e.g. the state directory). Returns it, or NULL
 * when the report is full. */
struct probe_check *probe_add(struct probe_report *rep, const char *name, enum probe_status status,
			      enum probe_impact impact, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

const char *probe_status_name(enum probe_status s);
const char *probe_impact_name(enum probe_impact i);

/* fork; the child runs fn(ud, fd) and sends ints on fd with probe_send; the parent reads up to
 * n of them into out within PROBE_TIMEOUT_MS, then reaps (killing a child that timed out).
 * Returns how many ints arrived or -errno; *ret_status (if not NULL) is the wait status. Also
 * the CLI's way to look into an image from a chrooted child (runtime.c). */
int probe_in_child(void (*fn)(void *ud, int fd), void *ud, int *out, size_t n, int *ret_status);
void probe_send(int fd, int v);
