/* Rootless cgroups: a delegated cgroup v2 subtree.
 *
 * An unprivileged caller may use cgroup limits only where the cgroup it was started in (its
 * line "0::PATH" in /proc/self/cgroup) has been delegated to it: the directory, its
 * cgroup.procs and cgroup.subtree_control writable by the caller, and the memory, pids and cpu
 * controllers available in it (cgroup.controllers). That is what `systemd-run --user --scope
 * -p Delegate=yes` gives, or an administrator's `mkdir` + `chown` (kernel cgroup-v2.rst,
 * "Delegation"). cgroup v1 has no safe delegation, so on a v1 or hybrid host a rootless run
 * with cgroup limits is refused.
 *
 * cgroup v2 forbids processes in a cgroup whose children have controllers enabled, and the
 * supervisor itself starts in the delegated cgroup D. So for each run (cg_deleg_enter):
 *
 *   D/                        the delegated cgroup: +memory +pids +cpu in its subtree_control
 *   D/cordon-supervisor/      the supervisor moves itself here first (a leaf)
 *   D/cordon/<slot>/          the sandboxes (cgroup-v2.c, with D as its base)
 *
 * and after it (cg_deleg_leave) everything is undone: the parent removed, the controllers we
 * enabled disabled again, the supervisor moved back to D and its leaf removed, so the caller's
 * cgroup is left as it was found. cordon writes nothing outside D and moves only itself.
 *
 * Runs that share D (started in its leaf, see cg_deleg_detect) hold a shared flock on D's
 * directory from enter to leave; only a run that gets it exclusively at leave (no other run
 * between its enter and its leave) tears anything down, so no run loses its parent cgroup to
 * another's teardown. The lock is on the cgroup's own inode: it binds every cordon that uses
 * D, whatever its state dir. */
#include "cgroup.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define DELEG_LEAF "cordon-supervisor"

static const char *const deleg_needed[] = {"memory", "pids", "cpu"};

static char deleg_path[4096]; /* absolute path of D, once found */
static unsigned deleg_enabled; /* bit i: we enabled deleg_needed[i] in D */
static bool deleg_in_leaf;  /* the supervisor is in D/cordon-supervisor */
static bool deleg_born_in_leaf; /* it started there: another cordon set D up, and undoes it */
static int deleg_lock_fd = -1;  /* D's directory, flock()ed shared for the run */

static bool deleg_word_in(const char *list, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += len)
		if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\n' || !p[len]))
			return true;
	return false;
}

/* The fix a caller can apply, appended to every refusal. */
#define DELEG_FIX_V2                                                                             \
	"start cordon in a delegated cgroup (systemd-run --user --scope -p Delegate=yes cordon "  \
	"run ...), run it as root, or pass --no-cgroup to run without memory and pids limits"
#define DELEG_FIX_V1 "run cordon as root, or pass --no-cgroup to run without memory and pids limits"

/* The refusal: one line, the reason and the fix, no strerror tail (the reason says it). */
static int deleg_refuse(struct cdn_err *err, int errnum, const char *why, const char *fix)
{
	err_set(err, 0,
		"memory and pids limits need a cgroup, and uid %u has no delegated cgroup v2 "
		"subtree: %s (%s)",
		(unsigned)geteuid(), why, fix);
	if (err)
		err->errnum = errnum;
	return -errnum;
}

/* This process's cgroup v2 path ("/user.slice/..."), from /proc/self/cgroup. */
static int deleg_own_cgroup(char *buf, size_t size)
{
	char text[8192];
	ssize_t n = read_file_at(AT_FDCWD, "/proc/self/cgroup", text, sizeof(text));
	if (n < 0)
		return (int)n;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (!strncmp(line, "0::", 3)) {
			if ((size_t)snprintf(buf, size, "%s", line + 3) >= size)
				return -ENAMETOOLONG;
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

int cg_deleg_detect(struct cdn_err *err)
{
	char mnt[2048], own[2048], why[6144], buf[512];
	if (cg_find_mount("cgroup2", NULL, mnt, sizeof(mnt)) < 0 || deleg_own_cgroup(own, sizeof(own)) < 0)
		return deleg_refuse(err, ENOENT, "this host has no cgroup v2 hierarchy", DELEG_FIX_V1);
	/* Started in the leaf of an earlier cordon (a child of a rootless supervisor, e.g. a
	 * daemon's spawner): D is its parent, already set up, and stays as that cordon left it. */
	size_t olen = strlen(own), llen = strlen("/" DELEG_LEAF);
	deleg_born_in_leaf = olen > llen && !strcmp(own + olen - llen, "/" DELEG_LEAF);
	if (deleg_born_in_leaf)
		own[olen - llen] = 0;
	deleg_in_leaf = deleg_born_in_leaf;
	int n = snprintf(deleg_path, sizeof(deleg_path), "%s%s", mnt,
			 strcmp(own, "/") && own[0] ? own : "");
	if (n < 0 || (size_t)n >= sizeof(deleg_path))
		return err_set(err, ENAMETOOLONG, "cgroup path of this process");
	_cleanup_close_ int fd = open(deleg_path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, sizeof(why), "opening \"%s\" (this process's cgroup): %s", deleg_path,
			 strerror(errno));
		return deleg_refuse(err, errno, why, DELEG_FIX_V2);
	}
	if (read_file_at(fd, "cgroup.controllers", buf, sizeof(buf)) < 0)
		buf[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(deleg_needed); i++) {
		if (deleg_word_in(buf, deleg_needed[i]))
			continue;
		/* The root's cgroup.controllers lists every controller v2 can use: one missing
		 * there is bound to a v1 hierarchy (a hybrid host), and nothing can delegate it. */
		char rootbuf[512];
		_cleanup_close_ int root = open(mnt, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (root < 0 || read_file_at(root, "cgroup.controllers", rootbuf, sizeof(rootbuf)) < 0)
			rootbuf[0] = 0;
		if (!deleg_word_in(rootbuf, deleg_needed[i]))
			return deleg_refuse(err, ENOTSUP,
					    "the memory, pids and cpu controllers are on cgroup v1, "
					    "which cannot be delegated",
					    DELEG_FIX_V1);
		snprintf(why, sizeof(why),
			 "controller %s is not available in \"%s\" (this process's cgroup; its "
			 "parent must enable it)",
			 deleg_needed[i], deleg_path);
		return deleg_refuse(err, ENOTSUP, why, DELEG_FIX_V2);
	}
	/* Delegated means ours to write: the directory (children), cgroup.procs (moving our own
	 * processes within it) and cgroup.subtree_control (controllers for the children). */
	static const char *const files[] = {".", "cgroup.procs", "cgroup.subtree_control"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (faccessat(fd, files[i], W_OK, AT_EACCESS) == 0)
			continue;
		int e = errno;
		if (i == 0)
			snprintf(why, sizeof(why), "\"%s\" (this process's cgroup) is not writable by it",
				 deleg_path);
		else
			snprintf(why, sizeof(why),
				 "\"%s/%s\" (this process's cgroup) is not writable by it", deleg_path,
				 files[i]);
		return deleg_refuse(err, e, why, DELEG_FIX_V2);
	}
	return 0;
}

int cg_deleg_enter(struct cdn_err *err)
{
	char why[6144], buf[512];
	_cleanup_close_ int fd = open(deleg_path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "opening delegated cgroup \"%s\"", deleg_path);
	int r;
	if (deleg_lock_fd < 0) {
		int lfd = open(deleg_path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (lfd < 0)
			return err_set(err, errno, "opening delegated cgroup \"%s\"", deleg_path);
		while ((r = flock(lfd, LOCK_SH)) < 0 && errno == EINTR)
			;
		if (r < 0) {
			int e = errno;
			close(lfd);
			return err_set(err, e, "locking delegated cgroup \"%s\"", deleg_path);
		}
		deleg_lock_fd = lfd;
	}
	if (!deleg_in_leaf) {
		if (mkdirat(fd, DELEG_LEAF, 0755) < 0 && errno != EEXIST)
			return err_set(err, errno, "creating \"%s/" DELEG_LEAF "\"", deleg_path);
		/* The supervisor is the one process cordon moves, and it moves only itself. */
		r = write_file_at(fd, DELEG_LEAF "/cgroup.procs", "0");
		if (r < 0) {
			unlinkat(fd, DELEG_LEAF, AT_REMOVEDIR);
			return err_set(err, -r, "moving cordon into \"%s/" DELEG_LEAF "\"",
				       deleg_path);
		}
		deleg_in_leaf = true;
	}
	if (read_file_at(fd, "cgroup.subtree_control", buf, sizeof(buf)) < 0)
		buf[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(deleg_needed); i++) {
		if (deleg_word_in(buf, deleg_needed[i]))
			continue;
		char val[32];
		snprintf(val, sizeof(val), "+%s", deleg_needed[i]);
		r = write_file_at(fd, "cgroup.subtree_control", val);
		if (r == -EBUSY) {
			cg_deleg_leave();
			snprintf(why, sizeof(why),
				 "\"%s\" (this process's cgroup) also holds other processes, and "
				 "cgroup v2 allows no processes beside cgroups with controllers",
				 deleg_path);
			return deleg_refuse(err, EBUSY, why,
					    "start cordon alone in its delegated cgroup: systemd-run "
					    "--user --scope -p Delegate=yes cordon run ..., or pass "
					    "--no-cgroup to run without memory and pids limits");
		}
		if (r < 0) {
			cg_deleg_leave();
			return err_set(err, -r, "enabling %s in \"%s/cgroup.subtree_control\"",
				       deleg_needed[i], deleg_path);
		}
		if (!deleg_born_in_leaf)
			deleg_enabled |= 1u << i; /* ours to disable again */
	}
	cg_v2_set_base(deleg_path);
	return 0;
}

/* Teardown, only with D locked exclusively (see the top of the file). */
static void deleg_teardown(void)
{
	if (!deleg_in_leaf)
		return;
	_cleanup_close_ int fd = open(deleg_path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* Best effort, in the order the kernel allows: cordon's parent (empty now: every sandbox
	 * cgroup is gone), then the controllers, which a cgroup holding a process cannot have,
	 * then the move back. A step that fails leaves the rest in place, still only in D. */
	int pfd = openat(fd, CG_PARENT, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (pfd >= 0) {
		cg_remove_levels(pfd);
		close(pfd);
	}
	/* One try: the parent is busy only while another run's sandbox cgroup is in it. */
	if (unlinkat(fd, CG_PARENT, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return;
	if (deleg_born_in_leaf)
		return; /* D, its controllers and our leaf belong to the cordon that made them */
	for (size_t i = ARRAY_SIZE(deleg_needed); i-- > 0;) {
		if (!(deleg_enabled & (1u << i)))
			continue;
		char val[32];
		snprintf(val, sizeof(val), "-%s", deleg_needed[i]);
		if (write_file_at(fd, "cgroup.subtree_control", val) < 0)
			return;
		deleg_enabled &= ~(1u << i);
	}
	if (write_file_at(fd, "cgroup.procs", "0") < 0)
		return;
	deleg_in_leaf = false;
	cg_rmdir_retry(fd, DELEG_LEAF);
}

void cg_deleg_leave(void)
{
	cg_v2_set_base(NULL);
	if (deleg_lock_fd < 0)
		return;
	/* Not atomic (flock drops the shared lock first), which does not matter: we are done. */
	if (flock(deleg_lock_fd, LOCK_EX | LOCK_NB) == 0)
		deleg_teardown();
	close(deleg_lock_fd);
	deleg_lock_fd = -1;
}
