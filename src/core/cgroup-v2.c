/* cgroup v2 backend: the sandbox's cgroup is "<cgroup2 mount>/cordon/<slot>". The child is born
 * in it with clone3(CLONE_INTO_CGROUP), so no process is ever migrated; cgroup.kill empties it
 * in one write at teardown. */
#include "cgroup.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>


static int parent_fd = -1;
static const char *const needed[] = {"memory", "pids", "cpu"};
/* Where cordon's parent lives: "" for the cgroup2 mount's root (cordon runs as root), or the
 * delegated cgroup of a rootless caller (cgroup-deleg.c). */
static char base_path[4096];

void cg_v2_set_base(const char *path)
{
	if (parent_fd >= 0)
		close(parent_fd);
	parent_fd = -1;
	snprintf(base_path, sizeof(base_path), "%s", path ? path : "");
}

static bool word_in(const char *list, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += len)
		if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\n' || !p[len]))
			return true;
	return false;
}

static int open_parent(struct cdn_err *err)
{
	if (parent_fd >= 0)
		return 0;
	char mnt[4096], path[4200], buf[512];
	if (base_path[0])
		snprintf(mnt, sizeof(mnt), "%s", base_path);
	else if (cg_find_mount("cgroup2", NULL, mnt, sizeof(mnt)) < 0)
		return err_set(err, ENOENT, "no cgroup2 mount");
	_cleanup_close_ int root = open(mnt, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (root < 0)
		return err_set(err, errno, "opening \"%s\"", mnt);
	/* The controllers must be enabled for the root's children, where cordon's parent lives;
	 * cordon does not change a cgroup it did not create. */
	if (read_file_at(root, "cgroup.subtree_control", buf, sizeof(buf)) < 0)
		buf[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(needed); i++)
		if (!word_in(buf, needed[i]))
			return err_set(err, 0,
				       "controller %s is not enabled in \"%s/cgroup.subtree_control\" "
				       "(echo +%s > that file)",
				       needed[i], mnt, needed[i]);
	snprintf(path, sizeof(path), "%s/" CG_PARENT, mnt);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "creating \"%s\" (run as root or delegate a subtree)", path);
	int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "opening \"%s\"", path);
	if (write_file_at(fd, "cgroup.subtree_control", "+memory +pids +cpu") < 0) {
		int e = errno;
		close(fd);
		return err_set(err, e, "enabling controllers in \"%s\"", path);
	}
	parent_fd = fd;
	return 0;
}

int cg_v2_usable(struct cdn_err *err)
{
	return open_parent(err);
}

static int v2_create(struct cg *cg, const char *name, struct cdn_err *err)
{
	int r = open_parent(err);
	if (r < 0)
		return r;
	char level[16];
	cg_level_path(name, cg->name, sizeof(cg->name), level, sizeof(level));
	name = cg->name; /* "low/low-17": below its level's subtree */
	if (cg_mkdir_leveled(parent_fd, level, name, true) < 0) {
		if (errno != EEXIST)
			return err_set(err, errno, "creating cgroup \"%s\"", name);
		/* Stale cgroup of our own slot (we hold the lock): empty it and start afresh. */
		cg_remove_child(parent_fd, name);
		if (mkdirat(parent_fd, name, 0755) < 0)
			return err_set(err, errno, "recreating cgroup \"%s\"", name);
	}
	cg->dirfd[0] = openat(parent_fd, name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (cg->dirfd[0] < 0)
		return err_set(err, errno, "opening cgroup \"%s\"", name);
	cg->n_dirs = 1;
	cg->memfile_fd = openat(cg->dirfd[0], "cpu.stat", O_RDONLY | O_CLOEXEC);
	if (cg->memfile_fd < 0)
		return err_set(err, errno, "opening cpu.stat of \"%s\"", name);
	return 0;
}

static int v2_set_limits(struct cg *cg, const struct sbx_limits *l, struct cdn_err *err)
{
	char val[32];
	int fd = cg->dirfd[0];
	snprintf(val, sizeof(val), "%llu", (unsigned long long)l->memory_bytes);
	int r = write_file_at(fd, "memory.max", val);
	if (r < 0)
		return err_set(err, -r, "setting memory.max of \"%s\"", cg->name);
	/* No swap: a sandbox must not push the host into swapping to dodge its limit. */
	r = write_file_at(fd, "memory.swap.max", "0");
	if (r < 0 && r != -ENOENT)
		return err_set(err, -r, "setting memory.swap.max of \"%s\"", cg->name);
	snprintf(val, sizeof(val), "%llu", (unsigned long long)l->pids);
	r = write_file_at(fd, "pids.max", val);
	if (r < 0)
		return err_set(err, -r, "setting pids.max of \"%s\"", cg->name);
	return 0;
}

static int v2_clone_fd(struct cg *cg)
{
	return cg->dirfd[0];
}

static int v2_attach(struct cg *cg, pid_t pid, struct cdn_err *err)
{
	char val[32];
	snprintf(val, sizeof(val), "%d", (int)pid);
	int r = write_file_at(cg->dirfd[0], "cgroup.procs", val);
	if (r < 0)
		return err_set(err, -r, "moving the sandbox into cgroup \"%s\"", cg->name);
	return 0;
}

static int v2_self_attach_fds(struct cg *cg, int *ret_fds, size_t max, struct cdn_err *err)
{
	return 0; /* born inside with CLONE_INTO_CGROUP; attach() without clone3 */
}

static int v2_cpu_ns(struct cg *cg, uint64_t *ret)
{
	char buf[1024];
	ssize_t n = pread(cg->memfile_fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (strncmp(buf, "usage_usec ", 11))
		return -EIO;
	buf[11 + strcspn(buf + 11, "\n")] = 0;
	uint64_t us;
	int r = parse_u64(buf + 11, &us);
	if (r < 0)
		return r;
	*ret = us * 1000;
	return 0;
}

static int v2_stats(struct cg *cg, struct cg_stats *ret)
{
	int fd = cg->dirfd[0];
	memset(ret, 0, sizeof(*ret));
	v2_cpu_ns(cg, &ret->cpu_ns);
	cg_read_u64(fd, "memory.peak", &ret->memory_peak);
	cg_read_u64(fd, "memory.current", &ret->memory_current);
	cg_read_key(fd, "memory.events", "oom_kill", &ret->oom_kills);
	cg_read_u64(fd, "pids.current", &ret->pids_current);
	if (cg->mem_peak_stale)
		ret->memory_peak = 0;
	if (cg->pids_peak_stale || cg_read_u64(fd, "pids.peak", &ret->pids_peak) < 0)
		ret->pids_peak = 0;
	cg_read_key(fd, "pids.events", "max", &ret->pids_refused);
	return 0;
}

static void v2_reset_peak(struct cg *cg)
{
	/* Linux >= 6.12 resets memory.peak on write; older kernels keep the whole-run peak
	 * (a compile step's would be reported as the program's). pids.peak has no reset. */
	if (write_file_at(cg->dirfd[0], "memory.peak", "reset") < 0)
		cg->mem_peak_stale = true;
	cg->pids_peak_stale = true;
}

static int v2_destroy(struct cg *cg)
{
	if (cg->memfile_fd >= 0)
		close(cg->memfile_fd);
	cg->memfile_fd = -1;
	if (cg->dirfd[0] < 0)
		return 0;
	close(cg->dirfd[0]);
	cg->dirfd[0] = -1;
	cg->n_dirs = 0;
	return cg_remove_child(parent_fd, cg->name);
}

static int v2_sweep(struct cdn_err *err)
{
	int r = open_parent(err);
	if (r >= 0 && (r = cg_sweep_parent(parent_fd)) < 0)
		err_set(err, -r, "sweeping stale cgroups");
	return r;
}

const struct cg_ops cg_v2_ops = {
	.name = "v2",
	.create = v2_create,
	.set_limits = v2_set_limits,
	.clone_fd = v2_clone_fd,
	.attach = v2_attach,
	.self_attach_fds = v2_self_attach_fds,
	.cpu_ns = v2_cpu_ns,
	.stats = v2_stats,
	.reset_peak = v2_reset_peak,
	.destroy = v2_destroy,
	.sweep = v2_sweep,
};
