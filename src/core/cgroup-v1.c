/* cgroup v1 backend (hybrid hosts): the sandbox gets a cgroup of the same name in the memory,
 * pids and cpuacct hierarchies, each below cordon's own parent "cordon". A new process can only
 * enter a v1 cgroup by migration (writing its pid to cgroup.procs); that is done once, for the
 * sandbox's init, before it runs anything, and everything it starts is born inside. */
#include "cgroup.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>


enum { H_MEMORY, H_PIDS, H_CPUACCT, H__COUNT };
static const char *const hier_names[H__COUNT] = {"memory", "pids", "cpuacct"};

/* Parent directory fds ("<mount>/cordon"), opened once per process. */
static int parent_fd[H__COUNT] = {-1, -1, -1};

static int open_parents(struct cdn_err *err)
{
	for (int h = 0; h < H__COUNT; h++) {
		if (parent_fd[h] >= 0)
			continue;
		char mnt[4096], path[4200];
		if (cg_find_mount("cgroup", hier_names[h], mnt, sizeof(mnt)) < 0)
			return err_set(err, ENOENT,
				       "the v1 %s controller is not mounted (mount it on "
				       "/sys/fs/cgroup/%s)",
				       hier_names[h], hier_names[h]);
		snprintf(path, sizeof(path), "%s/" CG_PARENT, mnt);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return err_set(err, errno, "creating \"%s\" (run as root or delegate a subtree)",
				       path);
		parent_fd[h] = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (parent_fd[h] < 0)
			return err_set(err, errno, "opening \"%s\"", path);
	}
	return 0;
}

int cg_v1_usable(struct cdn_err *err)
{
	return open_parents(err);
}

static int v1_create(struct cg *cg, const char *name, struct cdn_err *err)
{
	int r = open_parents(err);
	if (r < 0)
		return r;
	char level[16];
	cg_level_path(name, cg->name, sizeof(cg->name), level, sizeof(level));
	name = cg->name; /* "low/low-17": below its level's subtree */
	for (int h = 0; h < H__COUNT; h++) {
		if (cg_mkdir_leveled(parent_fd[h], level, name, false) < 0) {
			if (errno != EEXIST)
				return err_set(err, errno, "creating %s cgroup \"%s\"", hier_names[h],
					       name);
			/* A stale cgroup of our slot (we hold its lock): empty it, start afresh. */
			cg_remove_child(parent_fd[h], name);
			if (mkdirat(parent_fd[h], name, 0755) < 0)
				return err_set(err, errno, "recreating %s cgroup \"%s\"",
					       hier_names[h], name);
		}
		cg->dirfd[h] = openat(parent_fd[h], name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (cg->dirfd[h] < 0)
			return err_set(err, errno, "opening %s cgroup \"%s\"", hier_names[h], name);
		cg->n_dirs = h + 1;
	}
	cg->memfile_fd = openat(cg->dirfd[H_CPUACCT], "cpuacct.usage", O_RDONLY | O_CLOEXEC);
	if (cg->memfile_fd < 0)
		return err_set(err, errno, "opening cpuacct.usage of \"%s\"", name);
	return 0;
}

static int v1_set_limits(struct cg *cg, const struct sbx_limits *l, struct cdn_err *err)
{
	char val[32];
	snprintf(val, sizeof(val), "%llu", (unsigned long long)l->memory_bytes);
	int mem = cg->dirfd[H_MEMORY];
	/* memsw must stay >= limit_in_bytes: when lowering, set the memory limit first; when
	 * raising, set memsw first. Trying both orders covers either case. */
	int r = write_file_at(mem, "memory.limit_in_bytes", val);
	int rs = write_file_at(mem, "memory.memsw.limit_in_bytes", val);
	if (r < 0)
		r = write_file_at(mem, "memory.limit_in_bytes", val);
	if (r < 0)
		return err_set(err, -r, "setting memory.limit_in_bytes of \"%s\"", cg->name);
	/* No swap: memsw == limit when swap accounting exists; swappiness 0 otherwise. */
	if (rs < 0 && rs != -ENOENT)
		return err_set(err, -rs, "setting memory.memsw.limit_in_bytes of \"%s\"",
			       cg->name);
	if (rs == -ENOENT)
		write_file_at(mem, "memory.swappiness", "0");
	snprintf(val, sizeof(val), "%llu", (unsigned long long)l->pids);
	r = write_file_at(cg->dirfd[H_PIDS], "pids.max", val);
	if (r < 0)
		return err_set(err, -r, "setting pids.max of \"%s\"", cg->name);
	return 0;
}

static int v1_clone_fd(struct cg *cg)
{
	return -1;
}

static int v1_attach(struct cg *cg, pid_t pid, struct cdn_err *err)
{
	char val[32];
	snprintf(val, sizeof(val), "%d", (int)pid);
	for (int h = 0; h < H__COUNT; h++) {
		int r = write_file_at(cg->dirfd[h], "cgroup.procs", val);
		if (r < 0)
			return err_set(err, -r, "moving the sandbox into %s cgroup \"%s\"",
				       hier_names[h], cg->name);
	}
	return 0;
}

static int v1_self_attach_fds(struct cg *cg, int *ret_fds, size_t max, struct cdn_err *err)
{
	if (max < H__COUNT)
		return err_set(err, E2BIG, "too many cgroup hierarchies");
	for (int h = 0; h < H__COUNT; h++) {
		ret_fds[h] = openat(cg->dirfd[h], "tasks", O_WRONLY | O_CLOEXEC);
		if (ret_fds[h] < 0) {
			int e = errno;
			while (h-- > 0)
				close(ret_fds[h]);
			return err_set(err, e, "opening the tasks file of %s cgroup \"%s\"",
				       hier_names[h < 0 ? 0 : h], cg->name);
		}
	}
	return H__COUNT;
}

static int v1_cpu_ns(struct cg *cg, uint64_t *ret)
{
	char buf[32];
	ssize_t n = pread(cg->memfile_fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return parse_u64(buf, ret);
}

static int v1_stats(struct cg *cg, struct cg_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	v1_cpu_ns(cg, &ret->cpu_ns);
	int mem = cg->dirfd[H_MEMORY], pids = cg->dirfd[H_PIDS];
	cg_read_u64(mem, "memory.max_usage_in_bytes", &ret->memory_peak);
	cg_read_u64(mem, "memory.usage_in_bytes", &ret->memory_current);
	cg_read_key(mem, "memory.oom_control", "oom_kill", &ret->oom_kills);
	cg_read_u64(pids, "pids.current", &ret->pids_current);
	if (cg->mem_peak_stale)
		ret->memory_peak = 0;
	if (cg->pids_peak_stale || cg_read_u64(pids, "pids.peak", &ret->pids_peak) < 0)
		ret->pids_peak = 0;
	cg_read_key(pids, "pids.events", "max", &ret->pids_refused);
	return 0;
}

static void v1_reset_peak(struct cg *cg)
{
	if (write_file_at(cg->dirfd[H_MEMORY], "memory.max_usage_in_bytes", "0") < 0)
		cg->mem_peak_stale = true;
	cg->pids_peak_stale = true; /* pids.peak has no reset: a compile step's would count */
}

static int v1_destroy(struct cg *cg)
{
	int r = 0;
	if (cg->memfile_fd >= 0)
		close(cg->memfile_fd);
	cg->memfile_fd = -1;
	for (int h = 0; h < cg->n_dirs; h++) {
		if (cg->dirfd[h] < 0)
			continue;
		close(cg->dirfd[h]);
		cg->dirfd[h] = -1;
		int rr = cg_remove_child(parent_fd[h], cg->name);
		if (rr < 0 && r == 0)
			r = rr;
	}
	cg->n_dirs = 0;
	return r;
}

static int v1_sweep(struct cdn_err *err)
{
	int r = open_parents(err);
	for (int h = 0; r >= 0 && h < H__COUNT; h++)
		if ((r = cg_sweep_parent(parent_fd[h])) < 0)
			err_set(err, -r, "sweeping stale %s cgroups", hier_names[h]);
	return r;
}

const struct cg_ops cg_v1_ops = {
	.name = "v1",
	.create = v1_create,
	.set_limits = v1_set_limits,
	.clone_fd = v1_clone_fd,
	.attach = v1_attach,
	.self_attach_fds = v1_self_attach_fds,
	.cpu_ns = v1_cpu_ns,
	.stats = v1_stats,
	.reset_peak = v1_reset_peak,
	.destroy = v1_destroy,
	.sweep = v1_sweep,
};
