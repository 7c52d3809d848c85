/* Backend selection and the helpers both cgroup backends share. */
#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "slot.h"

void cg_init(struct cg *cg, const struct cg_ops *ops)
{
	memset(cg, 0, sizeof(*cg));
	cg->ops = ops;
	for (int i = 0; i < CG_MAX_HIER; i++)
		cg->dirfd[i] = -1;
	cg->memfile_fd = -1;
}

int cg_read_u64(int dirfd, const char *file, uint64_t *ret)
{
	char buf[64];
	ssize_t n = read_file_at(dirfd, file, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	buf[strcspn(buf, "\n")] = 0;
	if (!strcmp(buf, "max")) {
		*ret = UINT64_MAX;
		return 0;
	}
	return parse_u64(buf, ret);
}

int cg_read_key(int dirfd, const char *file, const char *key, uint64_t *ret)
{
	char buf[4096];
	ssize_t n = read_file_at(dirfd, file, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	size_t klen = strlen(key);
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (!strncmp(line, key, klen) && line[klen] == ' ')
			return parse_u64(line + klen + 1, ret);
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

int cg_kill_procs(int dirfd)
{
	/* Only reached for our own sandbox cgroups: every pid listed belongs to a sandbox we
	 * started. Normally empty already (the pid namespace dies with its init). */
	for (int round = 0; round < 100; round++) {
		char buf[8192];
		ssize_t n = read_file_at(dirfd, "cgroup.procs", buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0;
		for (char *p = buf; *p;) {
			char *nl = strchr(p, '\n');
			if (nl)
				*nl = 0;
			uint64_t pid;
			if (parse_u64(p, &pid) == 0 && pid > 1)
				kill((pid_t)pid, SIGKILL);
			if (!nl)
				break;
			p = nl + 1;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return -EBUSY;
}

int cg_remove_child(int parentfd, const char *name)
{
	/* The common case after a run: init is reaped, so the pid namespace and with it the
	 * cgroup are empty already and one rmdir does. Kill and wait only if it is not. */
	if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	if (errno != EBUSY)
		return -errno;
	int fd = openat(parentfd, name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		/* cgroup.kill (v2, linux >= 5.14) kills atomically; otherwise pid by pid. */
		if (write_file_at(fd, "cgroup.kill", "1") < 0)
			cg_kill_procs(fd);
		close(fd);
	}
	return cg_rmdir_retry(parentfd, name);
}

static const char *const cg_levels[] = {"high", "medium", "low", "untrusted"};

static bool cg_is_level(const char *s, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(cg_levels); i++)
		if (strlen(cg_levels[i]) == len && !strncmp(cg_levels[i], s, len))
			return true;
	return false;
}

void cg_level_path(const char *name, char *ret, size_t size, char *ret_level, size_t level_size)
{
	const char *dash = strrchr(name, '-');
	size_t len = dash ? (size_t)(dash - name) : 0;
	if (!dash || !cg_is_level(name, len)) {
		snprintf(ret, size, "%s", name);
		snprintf(ret_level, level_size, "%s", "");
		return;
	}
	snprintf(ret_level, level_size, "%.*s", (int)len, name);
	snprintf(ret, size, "%.*s/%s", (int)len, name, name);
}

int cg_make_level(int parentfd, const char *level, bool v2, struct cdn_err *err)
{
	if (!level[0])
		return 0;
	if (mkdirat(parentfd, level, 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "creating the \"%s\" level cgroup", level);
	if (!v2)
		return 0;
	/* Every run asks again (one small write): a subtree left half made by a supervisor
	 * killed between the mkdir and this write is repaired by the next run. */
	_cleanup_close_ int fd = openat(parentfd, level, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0 || write_file_at(fd, "cgroup.subtree_control", "+memory +pids +cpu") < 0)
		return err_set(err, errno, "enabling controllers in the \"%s\" level cgroup", level);
	return 0;
}

int cg_mkdir_leveled(int parentfd, const char *level, const char *path, bool v2)
{
	for (int i = 0; i < 5; i++) {
		struct cdn_err e;
		if (cg_make_level(parentfd, level, v2, &e) < 0) {
			errno = e.errnum ? e.errnum : EIO;
			return -1;
		}
		if (mkdirat(parentfd, path, 0755) == 0)
			return 0;
		if (errno != ENOENT || !level[0])
			return -1;
	}
	return -1;
}

void cg_remove_levels(int parentfd)
{
	for (size_t i = 0; i < ARRAY_SIZE(cg_levels); i++)
		unlinkat(parentfd, cg_levels[i], AT_REMOVEDIR); /* EBUSY/ENOENT: leave it */
}

/* Stale sandbox cgroups directly below dirfd (a level subtree, or the parent itself). */
static int cg_sweep_dir(int dirfd, bool top)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return -e;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (top && cg_is_level(de->d_name, strlen(de->d_name))) {
			int sub = openat(dirfd, de->d_name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
			if (sub >= 0) {
				cg_sweep_dir(sub, false);
				close(sub);
			}
			continue;
		}
		int lock = slot_try_lock_name(de->d_name);
		if (lock < 0)
			continue; /* a live run holds it, or not one of our slots */
		cg_remove_child(dirfd, de->d_name);
		close(lock);
	}
	closedir(d);
	return 0;
}

int cg_sweep_parent(int parentfd)
{
	return cg_sweep_dir(parentfd, true);
}

int cg_rmdir_retry(int parentfd, const char *name)
{
	/* Killed tasks leave the cgroup asynchronously; rmdir fails with EBUSY until they have.
	 * Bounded: about one second. */
	for (int i = 0; i < 1000; i++) {
		if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return -EBUSY;
}

int cg_detect(const struct cg_ops **ret, struct cdn_err *err)
{
	struct cdn_err e2 = {0};
	if (cg_v2_usable(&e2) == 0) {
		*ret = &cg_v2_ops;
		return 0;
	}
	struct cdn_err e1 = {0};
	if (cg_v1_usable(&e1) == 0) {
		*ret = &cg_v1_ops;
		return 0;
	}
	err_set(err, 0, "no usable cgroup hierarchy (v2: %s; v1: %s)", e2.msg, e1.msg);
	return -ENOENT;
}

/* True when the comma-separated list `opts` contains `word`. */
static bool has_option(const char *opts, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = opts; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == len && !strncmp(p, word, len))
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

/* /proc/self/mountinfo, read once per process: backend detection looks up four mounts. */
static char *mountinfo;

static const char *read_mountinfo(void)
{
	if (mountinfo)
		return mountinfo;
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return NULL;
	size_t len = 0, cap = 0;
	char *buf = NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			if (cap >= (64u << 20))
				break; /* absurd mount table: keep what was read */
			char *nb = realloc(buf, cap ? cap * 2 : 16384);
			if (!nb)
				break;
			buf = nb;
			cap = cap ? cap * 2 : 16384;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, mi);
		if (n == 0)
			break;
		len += n;
	}
	fclose(mi);
	if (buf)
		buf[len] = 0;
	mountinfo = buf;
	return mountinfo;
}

int cg_find_mount(const char *fstype, const char *controller, char *buf, size_t size)
{
	const char *all = read_mountinfo();
	if (!all)
		return -errno;
	char line[4096];
	for (const char *p = all; *p;) {
		size_t n = strcspn(p, "\n");
		size_t take = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
		memcpy(line, p, take);
		line[take] = 0;
		p += n + (p[n] == '\n');
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		char *f[32];
		int nf = 0;
		for (char *q = line; *q && nf < 32;) {
			while (*q == ' ')
				q++;
			if (!*q)
				break;
			f[nf++] = q;
			q += strcspn(q, " ");
			if (*q)
				*q++ = 0;
		}
		int dash = 6;
		while (dash < nf && strcmp(f[dash], "-"))
			dash++;
		if (nf < 5 || dash + 1 >= nf)
			continue;
		const char *mnt = f[4], *fs = f[dash + 1];
		const char *super = dash + 3 < nf ? f[dash + 3] : NULL;
		if (strcmp(fs, fstype))
			continue;
		if (controller && (!super || !has_option(super, controller)))
			continue;
		if ((size_t)snprintf(buf, size, "%s", mnt) >= size)
			continue;
		return 0;
	}
	return -ENOENT;
}
