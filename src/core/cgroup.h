/* cgroups: one per sandbox, below a parent cgroup that cordon creates and owns ("cordon"),
 * in a subtree of its trust level: cordon/<level>/<slot>, e.g. cordon/low/low-17, so that
 * sandboxes of different trust never share a cgroup parent (PRODUCT.md "Trust levels").
 * Two backends behind one ops table: cgroup-v1.c (hybrid hosts: memory, pids and cpuacct
 * hierarchies) and cgroup-v2.c (unified hierarchy). cordon never writes outside its own parent
 * and never moves a process it did not start. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"
#include "util.h"

#define CG_PARENT "cordon"
#define CG_MAX_HIER 3

struct cg_stats {
	uint64_t cpu_ns;
	uint64_t memory_peak;  /* 0 when the kernel keeps no peak (then sampled) */
	uint64_t memory_current;
	uint64_t pids_current;
	uint64_t pids_peak;    /* 0 when the kernel keeps no peak */
	uint64_t oom_kills;    /* cumulative */
	uint64_t pids_refused; /* cumulative: forks refused by pids.max */
};

struct cg;

struct cg_ops {
	const char *name; /* "v1" or "v2" */
	/* Create the sandbox's cgroup `name` (a stale one of the same name is emptied first). */
	int (*create)(struct cg *cg, const char *name, struct cdn_err *err);
	int (*set_limits)(struct cg *cg, const struct sbx_limits *l, struct cdn_err *err);
	/* Directory fd usable with clone3(CLONE_INTO_CGROUP), or -1 (v1). */
	int (*clone_fd)(struct cg *cg);
	/* Move pid (a child we just cloned) into the cgroup: v2 without clone3. */
	int (*attach)(struct cg *cg, pid_t pid, struct cdn_err *err);
	/* v1: open the files through which the child moves itself (writes "0"), up to max;
	 * returns how many (0 when the backend has no such path), or -errno. */
	int (*self_attach_fds)(struct cg *cg, int *ret_fds, size_t max, struct cdn_err *err);
	int (*cpu_ns)(struct cg *cg, uint64_t *ret);
	int (*stats)(struct cg *cg, struct cg_stats *ret);
	/* Forget the memory and pids peaks so the next step measures its own: reset where the
	 * kernel can, else mark them stale (pids.peak can never be reset). */
	void (*reset_peak)(struct cg *cg);
	/* SIGKILL every process left in the cgroup and remove it. */
	int (*destroy)(struct cg *cg);
	/* Remove stale children of the parent whose slot lock is free (supervisor killed). */
	int (*sweep)(struct cdn_err *err);
};

struct cg {
	const struct cg_ops *ops;
	char name[64];
	int dirfd[CG_MAX_HIER]; /* v1: memory, pids, cpuacct; v2: [0] only */
	int n_dirs;
	int memfile_fd;         /* kept open: cpu usage file for fast sampling */
	/* Set by reset_peak when the kernel's peak could not be reset and so still covers the
	 * earlier steps: stats() then reports 0 and the caller's own samples count. */
	bool mem_peak_stale;
	bool pids_peak_stale;
};

/* Pick the backend for this host: v2 when the unified hierarchy has memory, pids and cpu
 * controllers available, else v1 when memory, pids and cpuacct hierarchies are mounted.
 * Fails with a message naming what is missing and the fix. */
int cg_detect(const struct cg_ops **ret, struct cdn_err *err);

void cg_init(struct cg *cg, const struct cg_ops *ops);

/* Shared by both backends. */
int cg_kill_procs(int dirfd);                 /* SIGKILL each pid listed in cgroup.procs */
int cg_rmdir_retry(int parentfd, const char *name); /* rmdir, retrying while tasks exit */
/* Kill what is in the child cgroup `name` of parentfd and remove it. */
int cg_remove_child(int parentfd, const char *name);
/* Remove every sandbox cgroup below parentfd (cordon's parent; in its level subtrees, and
 * directly below it as older versions made them) whose slot lock is free (its supervisor is
 * gone). */
int cg_sweep_parent(int parentfd);
/* A slot name's cgroup path below cordon's parent, "low/low-17" (ret), and its level
 * subtree, "low" (ret_level, "" for a name without a level prefix). */
void cg_level_path(const char *name, char *ret, size_t size, char *ret_level, size_t level_size);
/* Make the level subtree of a path from cg_level_path below parentfd (it stays: it is cordon's
 * like the parent); on v2 with the controllers enabled for its children. */
int cg_make_level(int parentfd, const char *level, bool v2, struct cdn_err *err);
/* mkdirat(parentfd, path) for a path from cg_level_path, making its level first; -1 with
 * errno as mkdirat (EEXIST: a stale cgroup of the slot). A level removed meanwhile by another
 * cordon (rootless teardown of a shared delegated tree) is made again. */
int cg_mkdir_leveled(int parentfd, const char *level, const char *path, bool v2);
/* Remove the (empty) level subtrees below parentfd: before cordon's parent itself goes. */
void cg_remove_levels(int parentfd);
int cg_read_u64(int dirfd, const char *file, uint64_t *ret);
int cg_read_key(int dirfd, const char *file, const char *key, uint64_t *ret);

/* Find a hierarchy's mount point from /proc/self/mountinfo: fstype "cgroup2", or "cgroup" with
 * `controller` among its super options. Returns 0 and the path, or -ENOENT. */
int cg_find_mount(const char *fstype, const char *controller, char *buf, size_t size);

/* Rootless (cgroup-deleg.c): check that this process's own cgroup is a delegated v2 cgroup
 * with memory, pids and cpu available; else fail with the one-line refusal that names the
 * fix. enter moves the supervisor into a leaf of it and enables the controllers, so that the
 * v2 backend can create its parent there; leave undoes all of it (best effort). */
int cg_deleg_detect(struct cdn_err *err);
int cg_deleg_enter(struct cdn_err *err);
void cg_deleg_leave(void);
/* The v2 backend's base: NULL for the cgroup2 mount's root, or an absolute cgroup path under
 * which it creates (and only writes) its parent. Closes the parent it had open. */
void cg_v2_set_base(const char *path);

int cg_v1_usable(struct cdn_err *err);
int cg_v2_usable(struct cdn_err *err);
extern const struct cg_ops cg_v1_ops;
extern const struct cg_ops cg_v2_ops;
