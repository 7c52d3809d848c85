/* Host probes (probe.h): kernel, container, user namespaces and the mounts a sandbox makes,
 * seccomp and its user notification, Landlock, close_range and openat2. The cgroup, clone3 and
 * pidfd probes are in probe-cgroup.c. Each probe runs the mechanism in a child of ours where it
 * changes process state, with the same calls and flags as sandbox.c and child.c. */
#include "probe.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "filter.h"
#include "landlock.h"
#include "probe-int.h"

/* ---- report ---- */

struct probe_check *probe_add(struct probe_report *rep, const char *name, enum probe_status status,
			      enum probe_impact impact, const char *fix, const char *fmt, ...)
{
	if (rep->n >= PROBE_MAX_CHECKS)
		return NULL;
	struct probe_check *c = &rep->checks[rep->n++];
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->status = status;
	c->impact = status == PROBE_FAIL ? impact : PROBE_NONE;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
	return c;
}

const char *probe_status_name(enum probe_status s)
{
	return s == PROBE_OK ? "ok" : s == PROBE_WARN ? "warn" : "fail";
}

const char *probe_impact_name(enum probe_impact i)
{
	return i == PROBE_LAYER_MISSING ? "layer_missing" : i == PROBE_RUN_BROKEN ? "run_broken"
										   : "none";
}

/* ---- children ---- */

int probe_read_ints(int fd, int *out, size_t n, uint64_t deadline)
{
	size_t want = n * sizeof(int), got = 0;
	char *p = (char *)out;
	while (got < want) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t k = read(fd, p + got, want - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break; /* the child died before sending everything */
		got += (size_t)k;
	}
	return (int)(got / sizeof(int));
}

int probe_reap(pid_t pid, bool kill_first)
{
	if (kill_first)
		kill(pid, SIGKILL);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return status;
}

int probe_in_child(void (*fn)(void *ud, int fd), void *ud, int *out, size_t n, int *ret_status)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		close(p[0]);
		fn(ud, p[1]);
		_exit(0);
	}
	close(p[1]);
	int r = probe_read_ints(p[0], out, n, now_ns() + PROBE_TIMEOUT_MS * 1000000ULL);
	close(p[0]);
	int st = probe_reap(pid, r == -ETIMEDOUT);
	if (ret_status)
		*ret_status = st;
	return r;
}

void probe_send(int fd, int v)
{
	write_all(fd, &v, sizeof(v));
}

/* ---- kernel and container ---- */

static void probe_kernel(struct probe_report *rep)
{
	struct utsname u;
	if (uname(&u) < 0) {
		probe_add(rep, "kernel", PROBE_WARN, PROBE_NONE, NULL, "uname: %s", strerror(errno));
		return;
	}
	/* "6.18.44-..." -> 6, 18: the leading digits of the first two fields. */
	char field[2][8] = {"", ""};
	const char *p = u.release;
	for (int i = 0; i < 2; i++) {
		size_t n = strspn(p, "0123456789");
		if (n == 0 || n >= sizeof(field[i]))
			break;
		memcpy(field[i], p, n);
		p += n + (p[n] == '.');
	}
	uint64_t major = 0, minor = 0;
	if (parse_u64(field[0], &major) < 0 || parse_u64(field[1], &minor) < 0) {
		probe_add(rep, "kernel", PROBE_WARN, PROBE_NONE, NULL,
			  "cannot read the version of linux \"%s\"", u.release);
		return;
	}
	if (major < 5 || (major == 5 && minor < 10))
		probe_add(rep, "kernel", PROBE_WARN, PROBE_NONE, "upgrade to linux >= 5.10",
			  "linux %s on %s: older than 5.10, the oldest cordon is meant for (the "
			  "lines below say what works)",
			  u.release, u.machine);
	else
		probe_add(rep, "kernel", PROBE_OK, PROBE_NONE, NULL, "linux %s on %s", u.release,
			  u.machine);
}

/* Markers container engines leave: files, pid 1's environment, pid 1's cgroup path. */
static void probe_container(struct probe_report *rep)
{
	const char *what = NULL;
	char buf[8192];
	if (access("/.dockerenv", F_OK) == 0)
		what = "docker";
	else if (access("/run/.containerenv", F_OK) == 0)
		what = "podman";
	ssize_t n = read_file_at(AT_FDCWD, "/run/systemd/container", buf, sizeof(buf));
	if (!what && n > 0) {
		buf[strcspn(buf, "\n")] = 0;
		what = buf[0] ? strdupa(buf) : NULL;
	}
	n = read_file_at(AT_FDCWD, "/proc/1/environ", buf, sizeof(buf));
	for (ssize_t i = 0; !what && n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (!strncmp(buf + i, "container=", 10) && buf[i + 10])
			what = strdupa(buf + i + 10);
	n = read_file_at(AT_FDCWD, "/proc/1/cgroup", buf, sizeof(buf));
	if (!what && n > 0 && (strstr(buf, "/docker") || strstr(buf, "/kubepods") ||
			       strstr(buf, "/lxc") || strstr(buf, "/libpod")))
		what = "a container cgroup";
	if (!what) {
		probe_add(rep, "container", PROBE_OK, PROBE_NONE, NULL,
			  "not inside a container (no marker found)");
		return;
	}
	probe_add(rep, "container", PROBE_WARN, PROBE_NONE,
		  "run cordon on the host, or give the container user namespaces, mounts and "
		  "seccomp; the other lines say which are missing",
		  "inside a container (%s): its runtime may deny what sandboxes need", what);
}

/* ---- user namespaces and mounts ---- */

/* Results the namespace child sends, in this order (0 or a positive errno each). */
enum { U_IDS, U_PRIVATE, U_TMPFS, U_PROC, U_MOVE_MOUNT, U_TREE_RDONLY, U_OVERLAY, U_TREE,
       U_SETATTR, U__COUNT };

struct ns_child {
	int go_fd;            /* read end: the parent has written the id maps */
	int tree_fd;          /* detached mount made by the parent, or -1 */
	const char *tree_dir; /* rootless: the child makes the detached mount of this itself */
};

static int err_of(int r)
{
	return r < 0 ? errno : 0;
}

/* What init does in child.c, in a scratch mount namespace: private mounts, a tmpfs root on
 * /tmp, /proc of the new pid namespace, a detached mount of the parent's attached, plus an
 * overlayfs that a run does not need yet. */
static void ns_child_main(const struct ns_child *c, int out)
{
	char b;
	if (read(c->go_fd, &b, 1) != 1)
		_exit(1);
	int r[U__COUNT] = {0};
	r[U_IDS] = err_of(setresgid(0, 0, 0));
	if (!r[U_IDS])
		r[U_IDS] = err_of(setresuid(0, 0, 0));
	r[U_PRIVATE] = err_of(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	int tree_fd = c->tree_fd;
	if (c->tree_dir) {
		/* Rootless: child.c's rootless_open_sources, before the tmpfs covers /tmp. */
		tree_fd = open_tree(AT_FDCWD, c->tree_dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		r[U_TREE] = err_of(tree_fd);
		struct mount_attr attr = {
			.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY};
		if (tree_fd >= 0)
			r[U_SETATTR] = err_of(mount_setattr(tree_fd, "", AT_EMPTY_PATH, &attr,
							    sizeof(attr)));
	}
	r[U_TMPFS] = err_of(mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
				  "mode=0755,size=4m,nr_inodes=4096"));
	if (r[U_TMPFS]) {
		r[U_PROC] = r[U_MOVE_MOUNT] = r[U_OVERLAY] = r[U_TMPFS];
		goto send;
	}
	const char *dirs[] = {"/tmp/proc", "/tmp/tree", "/tmp/l", "/tmp/u", "/tmp/w", "/tmp/m"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		mkdir(dirs[i], 0755);
	r[U_PROC] = err_of(mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
				 NULL));
	if (tree_fd >= 0) {
		r[U_MOVE_MOUNT] = err_of(
			move_mount(tree_fd, "", AT_FDCWD, "/tmp/tree", MOVE_MOUNT_F_EMPTY_PATH));
		struct statvfs sv;
		if (!r[U_MOVE_MOUNT] && statvfs("/tmp/tree", &sv) == 0)
			r[U_TREE_RDONLY] = (sv.f_flag & ST_RDONLY) ? 0 : EROFS;
	} else {
		r[U_MOVE_MOUNT] = EBADF;
	}
	r[U_OVERLAY] = err_of(mount("overlay", "/tmp/m", "overlay", MS_NOSUID | MS_NODEV,
				    "lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w"));
send:
	write_all(out, r, sizeof(r));
	_exit(0);
}

static int write_map(pid_t pid, const char *file, const char *text)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	return write_file_at(AT_FDCWD, path, text);
}

static void userns_sysctls(char *buf, size_t size)
{
	static const char *const files[] = {
		"/proc/sys/user/max_user_namespaces",
		"/proc/sys/kernel/unprivileged_userns_clone",
		"/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
	};
	size_t o = 0;
	buf[0] = 0;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char v[32];
		if (read_file_at(AT_FDCWD, files[i], v, sizeof(v)) <= 0)
			continue;
		v[strcspn(v, "\n")] = 0;
		int n = snprintf(buf + o, size - o, "%s%s=%s", o ? ", " : "",
				 strrchr(files[i], '/') + 1, v);
		if (n < 0 || (size_t)n >= size - o)
			break;
		o += (size_t)n;
	}
}

static void report_mounts(struct probe_report *rep, const int *r, int tree_err, int setattr_err)
{
	if (r[U_TMPFS])
		probe_add(rep, "tmpfs", PROBE_FAIL, PROBE_RUN_BROKEN,
			  "check the container's or LSM's mount policy",
			  "mounting a tmpfs in a user namespace failed: %s", strerror(r[U_TMPFS]));
	else
		probe_add(rep, "tmpfs", PROBE_OK, PROBE_NONE, NULL,
			  "tmpfs with size and inode limits mounts in a user namespace");
	if (r[U_PROC])
		probe_add(rep, "proc", PROBE_FAIL, PROBE_RUN_BROKEN,
			  "inside a container: unmask /proc (e.g. docker --security-opt "
			  "systempaths=unconfined)",
			  "mounting /proc of a new pid namespace failed: %s", strerror(r[U_PROC]));
	else
		probe_add(rep, "proc", PROBE_OK, PROBE_NONE, NULL,
			  "/proc of a new pid namespace mounts");
	if (tree_err || r[U_MOVE_MOUNT])
		probe_add(rep, "mount_api", PROBE_FAIL, PROBE_RUN_BROKEN,
			  (tree_err ? tree_err : r[U_MOVE_MOUNT]) == ENOSYS
				  ? "upgrade to linux >= 5.2, or allow open_tree and move_mount in "
				    "the seccomp profile"
				  : "run cordon as root",
			  "%s failed: %s: --image, --ro and --rw are refused",
			  tree_err ? "open_tree" : "move_mount into a user namespace",
			  strerror(tree_err ? tree_err : r[U_MOVE_MOUNT]));
	else
		probe_add(rep, "mount_api", PROBE_OK, PROBE_NONE, NULL,
			  "open_tree + move_mount attach a detached mount inside the sandbox");
	if (tree_err || r[U_MOVE_MOUNT])
		probe_add(rep, "mount_setattr", PROBE_WARN, PROBE_NONE, NULL,
			  "not tried: no detached mount to try it on");
	else if (setattr_err)
		probe_add(rep, "mount_setattr", PROBE_WARN, PROBE_NONE,
			  "linux >= 5.12 makes it one call",
			  "unavailable (%s): binds are made read-only by a remount inside the "
			  "sandbox instead",
			  strerror(setattr_err));
	else if (r[U_TREE_RDONLY])
		probe_add(rep, "mount_setattr", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "a detached mount made read-only arrived writable");
	else
		probe_add(rep, "mount_setattr", PROBE_OK, PROBE_NONE, NULL,
			  "detached mounts are made read-only before they reach the sandbox");
	if (r[U_OVERLAY])
		probe_add(rep, "overlayfs", PROBE_WARN, PROBE_NONE,
			  "linux >= 5.11 mounts overlayfs in user namespaces",
			  "mounting overlayfs in a user namespace failed (%s): not used by cordon "
			  "run yet",
			  strerror(r[U_OVERLAY]));
	else
		probe_add(rep, "overlayfs", PROBE_OK, PROBE_NONE, NULL,
			  "overlayfs mounts in a user namespace");
}

/* The userns probe did not get as far as the mounts: their lines say so (a fixed list). */
static void mounts_not_tried(struct probe_report *rep)
{
	static const char *const names[] = {"tmpfs", "proc", "mount_api", "mount_setattr",
					    "overlayfs"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		probe_add(rep, names[i], PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "not tried: no user namespace (see the userns line)");
}

static void probe_userns(struct probe_report *rep, uid_t map_uid, const char *tree_dir)
{
	char sysctls[256];
	userns_sysctls(sysctls, sizeof(sysctls));
	bool rootless = geteuid() != 0;
	/* The detached mount, as sandbox.c's clone_tree makes one for a bind (as root; rootless
	 * the namespace child makes it). */
	int tree_err = 0, setattr_err = 0;
	_cleanup_close_ int tree =
		rootless ? -1 : open_tree(AT_FDCWD, tree_dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (rootless) {
		/* filled from the child's report below */
	} else if (tree < 0) {
		tree_err = errno;
	} else {
		struct mount_attr attr = {
			.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY};
		if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
			setattr_err = errno;
	}
	int go[2], res[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		goto fail_errno;
	if (pipe2(res, O_CLOEXEC) < 0) {
		close(go[0]);
		close(go[1]);
		goto fail_errno;
	}
	/* The namespaces of a sandbox's init (sandbox.c spawn). */
	unsigned long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
			      CLONE_NEWIPC | CLONE_NEWUTS;
	pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0);
	if (pid == 0) {
		close(go[1]);
		close(res[0]);
		struct ns_child c = {.go_fd = go[0], .tree_fd = tree,
				     .tree_dir = rootless ? tree_dir : NULL};
		ns_child_main(&c, res[1]);
	}
	int clone_err = pid < 0 ? errno : 0;
	close(go[0]);
	close(res[1]);
	if (clone_err) {
		close(go[1]);
		close(res[0]);
		probe_add(rep, "userns", PROBE_FAIL, PROBE_RUN_BROKEN,
			  "sysctl -w user.max_user_namespaces=15000 (and, on Ubuntu as non-root, "
			  "kernel.apparmor_restrict_unprivileged_userns=0)",
			  "creating user, pid, mount, net, ipc and uts namespaces failed: %s (%s)",
			  strerror(clone_err), sysctls[0] ? sysctls : "no userns sysctls found");
		mounts_not_tried(rep);
		return;
	}
	char map[64];
	int mr;
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)map_uid);
	if (geteuid() != 0)
		write_map(pid, "setgroups", "deny"); /* an unprivileged gid_map needs it */
	mr = write_map(pid, "uid_map", map);
	if (mr >= 0) {
		snprintf(map, sizeof(map), "0 %u 1\n", geteuid() == 0 ? (unsigned)map_uid
								      : (unsigned)getegid());
		mr = write_map(pid, "gid_map", map);
	}
	ssize_t w = write(go[1], "G", 1);
	(void)w;
	close(go[1]);
	int r[U__COUNT];
	for (size_t i = 0; i < U__COUNT; i++)
		r[i] = EIO;
	int got = probe_read_ints(res[0], r, U__COUNT, now_ns() + PROBE_TIMEOUT_MS * 1000000ULL);
	close(res[0]);
	probe_reap(pid, got != U__COUNT);
	if (mr < 0 || got != U__COUNT || r[U_IDS]) {
		probe_add(rep, "userns", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "the namespace child %s",
			  mr < 0	      ? "could not be given an id map"
			  : got != U__COUNT ? "did not report (killed or timed out)"
					    : "could not switch to its mapped uid");
		mounts_not_tried(rep);
		return;
	}
	probe_add(rep, "userns", PROBE_OK, PROBE_NONE, NULL,
		  "user, pid, mount, net, ipc and uts namespaces with uid 0 mapped to %u (%s)",
		  (unsigned)map_uid, sysctls[0] ? sysctls : "no userns sysctls found");
	if (rootless) {
		tree_err = r[U_TREE];
		setattr_err = r[U_SETATTR];
	}
	report_mounts(rep, r, tree_err, setattr_err);
	return;
fail_errno:
	probe_add(rep, "userns", PROBE_FAIL, PROBE_RUN_BROKEN, NULL, "creating pipes: %s",
		  strerror(errno));
	mounts_not_tried(rep);
}

/* ---- seccomp ---- */

static void seccomp_child(void *ud, int out)
{
	(void)ud;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		probe_send(out, errno);
		return;
	}
	struct sock_fprog prog;
	filter_default(&prog);
	probe_send(out, -filter_load(&prog));
	/* Denied by the filter (a new user namespace regains capabilities): must kill us. */
	syscall(SYS_unshare, 0);
	probe_send(out, 0);
}

/* The exit_group watch of child.c: a one-rule filter returning SECCOMP_RET_USER_NOTIF whose
 * listener the parent answers with SECCOMP_USER_NOTIF_FLAG_CONTINUE. */
static int notif_listener(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = ARRAY_SIZE(code), .filter = code};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	int fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			      SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	return fd < 0 ? -errno : fd;
}

static void send_fd(int sock, int fd, int val)
{
	struct iovec iov = {.iov_base = &val, .iov_len = sizeof(val)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* 0 when an exit_group stopped in the filter and went on after FLAG_CONTINUE; else errno. */
static int try_user_notif(const char **ret_step)
{
	int sp[2];
	*ret_step = "socketpair";
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sp[0]);
		close(sp[1]);
		return e;
	}
	if (pid == 0) {
		close(sp[0]);
		int fd = notif_listener();
		send_fd(sp[1], fd, fd < 0 ? -fd : 0);
		if (fd >= 0)
			close(fd); /* waiting on our own listener would never end */
		_exit(0);
	}
	close(sp[1]);
	uint64_t deadline = now_ns() + PROBE_TIMEOUT_MS * 1000000ULL;
	int val = EIO, lfd = -1, e = 0;
	struct iovec iov = {.iov_base = &val, .iov_len = sizeof(val)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct pollfd pfd = {.fd = sp[0], .events = POLLIN};
	*ret_step = "installing a filter with a listener";
	if (poll(&pfd, 1, PROBE_TIMEOUT_MS) != 1 || recvmsg(sp[0], &mh, MSG_CMSG_CLOEXEC) <= 0) {
		e = ETIMEDOUT;
		goto out;
	}
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&lfd, CMSG_DATA(c), sizeof(int));
	if (lfd < 0) {
		e = val ? val : EIO;
		goto out;
	}
	*ret_step = "receiving the notification";
	pfd.fd = lfd;
	uint64_t now = now_ns();
	if (poll(&pfd, 1, now < deadline ? (int)((deadline - now) / 1000000) + 1 : 0) != 1) {
		e = ETIMEDOUT;
		goto out;
	}
	struct seccomp_notif req;
	memset(&req, 0, sizeof(req));
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
		e = errno;
		goto out;
	}
	*ret_step = "letting the call continue (SECCOMP_USER_NOTIF_FLAG_CONTINUE)";
	struct seccomp_notif_resp resp;
	memset(&resp, 0, sizeof(resp));
	resp.id = req.id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	if (req.data.nr != __NR_exit_group)
		e = EINVAL;
	else if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
		e = errno;
out:
	if (lfd >= 0)
		close(lfd);
	close(sp[0]);
	int st = probe_reap(pid, e != 0);
	if (!e && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		e = ECHILD;
	return e;
}

static void probe_seccomp(struct probe_report *rep)
{
	int r[2] = {EIO, EIO}, st = 0;
	int n = probe_in_child(seccomp_child, NULL, r, 2, &st);
	if (n < 1 || r[0])
		probe_add(rep, "seccomp", PROBE_FAIL, PROBE_RUN_BROKEN,
			  "a kernel with CONFIG_SECCOMP_FILTER (and, in a container, a runtime "
			  "that lets it stack filters)",
			  "loading cordon's filter failed: %s",
			  n < 0 ? strerror(-n) : strerror(n < 1 ? EIO : r[0]));
	else if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS))
		probe_add(rep, "seccomp", PROBE_FAIL, PROBE_LAYER_MISSING, NULL,
			  "cordon's filter loaded but a denied call (unshare) did not kill");
	else
		probe_add(rep, "seccomp", PROBE_OK, PROBE_NONE, NULL,
			  "cordon's filter loads and kills a denied call with SIGSYS");

	const char *step = "";
	int e = try_user_notif(&step);
	if (e)
		probe_add(rep, "seccomp_user_notif", PROBE_WARN, PROBE_NONE,
			  "linux >= 5.5 has SECCOMP_RET_USER_NOTIF with FLAG_CONTINUE",
			  "%s failed: %s: an open-files death is reported as SANDBOX_RUNTIME_ERROR, "
			  "not SANDBOX_FILE_LIMIT",
			  step, strerror(e));
	else
		probe_add(rep, "seccomp_user_notif", PROBE_OK, PROBE_NONE, NULL,
			  "exit_group stops in a user-notification filter and continues");
}

/* ---- Landlock ---- */

struct ll_dirs {
	char allow[256], deny[256];
};

static void landlock_child(void *ud, int out)
{
	const struct ll_dirs *d = ud;
	char p[300];
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		probe_send(out, errno);
		return;
	}
	const char *w[] = {d->allow};
	probe_send(out, -landlock_apply(w, 1, false));
	snprintf(p, sizeof(p), "%s/x", d->deny);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	probe_send(out, fd < 0 ? errno : 0);
	snprintf(p, sizeof(p), "%s/x", d->allow);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	probe_send(out, fd < 0 ? errno : 0);
}

static void probe_landlock(struct probe_report *rep, const char *tmp)
{
	static const char fix[] = "linux >= 5.13 with CONFIG_SECURITY_LANDLOCK and landlock in "
				  "the lsm= boot parameter";
	int abi = landlock_abi();
	if (abi <= 0) {
		probe_add(rep, "landlock", PROBE_FAIL, PROBE_LAYER_MISSING, fix,
			  "%s: cordon run goes on without this layer",
			  abi == 0 ? "the kernel has no Landlock (or it is not enabled)"
				   : "the Landlock ABI query was denied");
		return;
	}
	struct ll_dirs d;
	snprintf(d.allow, sizeof(d.allow), "%s/allow", tmp);
	snprintf(d.deny, sizeof(d.deny), "%s/deny", tmp);
	if (mkdir(d.allow, 0700) < 0 || mkdir(d.deny, 0700) < 0) {
		probe_add(rep, "landlock", PROBE_FAIL, PROBE_LAYER_MISSING, NULL,
			  "abi %d, but the probe's directories could not be made: %s", abi,
			  strerror(errno));
		return;
	}
	int r[3] = {EIO, EIO, EIO};
	int n = probe_in_child(landlock_child, &d, r, 3, NULL);
	char p[300];
	snprintf(p, sizeof(p), "%s/x", d.allow);
	unlink(p);
	snprintf(p, sizeof(p), "%s/x", d.deny);
	bool escaped = unlink(p) == 0;
	rmdir(d.allow);
	rmdir(d.deny);
	if (n != 3 || r[0])
		probe_add(rep, "landlock", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "abi %d, but applying a ruleset failed: %s (cordon run refuses)", abi,
			  strerror(n < 1 ? EIO : r[0]));
	else if (escaped || r[1] != EACCES || r[2])
		probe_add(rep, "landlock", PROBE_FAIL, PROBE_LAYER_MISSING, NULL,
			  "abi %d, but the ruleset did not hold (write outside: %s, inside: %s)",
			  abi, r[1] ? strerror(r[1]) : "allowed", r[2] ? strerror(r[2]) : "allowed");
	else
		probe_add(rep, "landlock", PROBE_OK, PROBE_NONE, NULL,
			  "abi %d%s: a write outside the writable paths is denied", abi,
			  abi < 4 ? " (< 4: no TCP rules; the empty network namespace remains)"
				  : "");
}

/* ---- close_range, openat2 ---- */

static void probe_close_range(struct probe_report *rep)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		probe_add(rep, "close_range", PROBE_WARN, PROBE_NONE, NULL, "opening /dev/null: %s",
			  strerror(errno));
		return;
	}
	if (syscall(SYS_close_range, fd, fd, 0) < 0) {
		int e = errno;
		close(fd);
		probe_add(rep, "close_range", PROBE_WARN, PROBE_NONE,
			  "linux >= 5.9 closes them in one call",
			  "unavailable (%s): the program's fds are closed one by one", strerror(e));
		return;
	}
	if (fcntl(fd, F_GETFD) >= 0) {
		close(fd);
		probe_add(rep, "close_range", PROBE_FAIL, PROBE_LAYER_MISSING, NULL,
			  "close_range returned 0 but left the fd open");
		return;
	}
	probe_add(rep, "close_range", PROBE_OK, PROBE_NONE, NULL, "closes inherited fds at once");
}

static void probe_openat2(struct probe_report *rep)
{
	_cleanup_close_ int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct open_how how = {.flags = O_PATH | O_CLOEXEC,
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	long fd = root < 0 ? -1 : syscall(SYS_openat2, root, "/proc/self/root", &how, sizeof(how));
	if (fd >= 0) {
		close((int)fd);
		probe_add(rep, "openat2", PROBE_WARN, PROBE_NONE, NULL,
			  "RESOLVE_NO_MAGICLINKS did not refuse /proc/self/root: runtimes in "
			  "images are looked up as if openat2 were missing");
		return;
	}
	if (errno != ELOOP && errno != EXDEV) {
		probe_add(rep, "openat2", PROBE_WARN, PROBE_NONE,
			  "linux >= 5.6 resolves paths inside an image in one call",
			  "unavailable (%s): runtimes in images are looked up in a chrooted child "
			  "instead",
			  strerror(errno));
		return;
	}
	probe_add(rep, "openat2", PROBE_OK, PROBE_NONE, NULL,
		  "paths in images resolve with RESOLVE_IN_ROOT");
}

/* ---- all ---- */

void probe_host(struct probe_report *rep, const char *state_dir)
{
	memset(rep, 0, sizeof(*rep));
	probe_kernel(rep);
	probe_container(rep);

	char tmp[64];
	snprintf(tmp, sizeof(tmp), "/tmp/cordon-doctor.%d.XXXXXX", (int)getpid());
	bool have_tmp = mkdtemp(tmp) != NULL;
	struct slot slot;
	probe_cgroup(rep, state_dir, &slot);
	if (have_tmp)
		probe_userns(rep, slot.uid, tmp);
	else
		probe_add(rep, "userns", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "creating a directory in /tmp: %s", strerror(errno));
	if (!have_tmp)
		mounts_not_tried(rep);
	probe_seccomp(rep);
	if (have_tmp)
		probe_landlock(rep, tmp);
	else
		probe_add(rep, "landlock", PROBE_FAIL, PROBE_LAYER_MISSING, NULL,
			  "not tried: no directory in /tmp");
	probe_close_range(rep);
	probe_openat2(rep);
	probe_slot_release(&slot);
	if (have_tmp)
		rmdir(tmp);
}
