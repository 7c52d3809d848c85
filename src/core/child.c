/* Code between clone and execve. Everything here is async-signal-safe: system calls and our
 * own string handling on memory the parent prepared (struct child_ctx); no malloc, no stdio.
 * A failure is reported to the parent as {step, errno} on ctx->rep_fd and the child exits.
 *
 * The child starts as PID 1 of fresh user, pid, mount, net, ipc, uts (and on v2 cgroup)
 * namespaces, with every capability of its new user namespace but uid 0 unmapped. It waits for
 * the parent to map ids and place it in the cgroup, builds the root filesystem under the
 * host's /tmp (a private mount in its own mount namespace), pivots into it, then for each step
 * forks the program, which drops everything and execs. Init stays: it reaps, forwards signals,
 * and after each step kills what the step left behind. When init exits the kernel kills every
 * process left in the pid namespace. */
#include "child.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/uio.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "filter.h"
#include "landlock.h"

/* The new root is assembled here, on a tmpfs that shadows the host's /tmp only inside the
 * sandbox's private mount namespace. Host paths are reached through fds opened by the parent. */
#define NEWROOT "/tmp"

static const struct child_ctx *g_ctx;
static volatile pid_t g_program = -1;

/* ---- tiny string helpers (no libc formatting in here) ---- */

static size_t scat(char *dst, size_t size, size_t off, const char *s)
{
	while (*s && off + 1 < size)
		dst[off++] = *s++;
	dst[off < size ? off : size - 1] = 0;
	return off;
}

/* Path inside the new root while it is still under NEWROOT. */
static void rootpath(char *buf, size_t size, const char *inside)
{
	size_t o = scat(buf, size, 0, NEWROOT);
	scat(buf, size, o, inside);
}

/* Call fn for each entry of the directory open at fd (not "." or ".."): getdents64 into a
 * stack buffer, no allocation. Stops early when fn returns non-zero and returns that value;
 * returns -errno when reading fails, 0 at the end. */
typedef int (*dirent_fn)(const char *name, unsigned char type, void *ud);

static int for_each_dirent(int fd, dirent_fn fn, void *ud)
{
	char buf[4096];
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		for (long off = 0; off < n;) {
			const struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *de = (const void *)(buf + off);
			off += de->reclen;
			if (!strcmp(de->name, ".") || !strcmp(de->name, ".."))
				continue;
			int r = fn(de->name, de->type, ud);
			if (r)
				return r;
		}
	}
}

/* ---- reporting ---- */

static void send_msg(const struct child_msg *m)
{
	ssize_t r;
	do
		r = write(g_ctx->rep_fd, m, sizeof(*m));
	while (r < 0 && errno == EINTR);
}

__attribute__((noreturn)) static void fail(enum child_setup step, int err, int arg)
{
	struct child_msg m = {.type = MSG_FAIL, .step = (int32_t)step, .err = err, .arg = arg};
	send_msg(&m);
	_exit(125);
}

#define CHECK(expr, step, arg)                                                                     \
	do {                                                                                       \
		if ((expr) < 0)                                                                    \
			fail((step), errno, (arg));                                                \
	} while (0)

/* ---- mounts ---- */

/* Mount flags the kernel locks on a mount we bind from the parent namespace: a remount inside
 * a user namespace must keep them or it fails with EPERM. */
static unsigned long locked_flags(const char *path)
{
	struct statfs st;
	unsigned long f = 0;
	if (statfs(path, &st) < 0)
		return 0;
	if (st.f_flags & ST_NODEV)
		f |= MS_NODEV;
	if (st.f_flags & ST_NOSUID)
		f |= MS_NOSUID;
	if (st.f_flags & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (st.f_flags & ST_NOATIME)
		f |= MS_NOATIME;
	if (st.f_flags & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (st.f_flags & ST_RELATIME)
		f |= MS_RELATIME;
	if (st.f_flags & ST_RDONLY)
		f |= MS_RDONLY;
	return f;
}

/* Bind src on dst (non-recursive: submounts of the source stay hidden), then remount with
 * `flags`: nosuid always, and read-only / nodev as asked. */
static int bind_mount(const char *src, const char *dst, unsigned long flags)
{
	if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
		return -1;
	return mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | flags | locked_flags(dst),
		     NULL);
}

/* Attach a detached mount from the parent at dst; when the parent could not set its flags
 * (no mount_setattr), remount it here with the same restrictions. */
static int attach_tree(int fd, const char *dst, bool attr_done, unsigned long flags)
{
	if (move_mount(fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return -1;
	if (attr_done)
		return 0;
	return mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | flags | locked_flags(dst),
		     NULL);
}

static int make_mountpoint(const char *path, bool dir)
{
	if (dir)
		return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return errno == EISDIR || errno == EEXIST ? 0 : -1;
	close(fd);
	return 0;
}

/* mkdir -p for a path inside the new root (absolute, already below NEWROOT). */
static int mkdir_parents(char *path)
{
	for (char *p = path + strlen(NEWROOT) + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int r = mkdir(path, 0755);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -1;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return close(fd);
}

/* The `host` image: the host's /usr, /bin, /sbin and /lib* read-only; nothing else of it. */
static void setup_host_image(void)
{
	static const char *const dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
					   "/libx32"};
	char dst[256], link[256];
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		struct stat st;
		if (lstat(dirs[i], &st) < 0)
			continue;
		rootpath(dst, sizeof(dst), dirs[i]);
		if (S_ISLNK(st.st_mode)) { /* merged /usr: /bin -> usr/bin */
			ssize_t n = readlink(dirs[i], link, sizeof(link) - 1);
			if (n < 0)
				fail(CS_IMAGE, errno, (int)i);
			link[n] = 0;
			CHECK(symlink(link, dst), CS_IMAGE, (int)i);
		} else if (S_ISDIR(st.st_mode)) {
			CHECK(mkdir(dst, 0755), CS_IMAGE, (int)i);
			CHECK(bind_mount(dirs[i], dst, MS_RDONLY | MS_NODEV), CS_IMAGE, (int)i);
		}
	}
}

/* A named image: every top-level entry of its root directory, read-only, except the ones
 * cordon provides itself (proc, dev, sys, tmp). */
#define IMAGE_STAGE NEWROOT "/.cordon-image"

/* One top-level entry of a named image: a symlink copied, a file or directory bound
 * read-only. cordon provides proc, dev, sys and tmp itself. */
static int image_entry(const char *nm, unsigned char type, void *ud)
{
	int dfd = *(int *)ud;
	char dst[512], src[512], link[512];
	if (!strcmp(nm, "proc") || !strcmp(nm, "dev") || !strcmp(nm, "sys") || !strcmp(nm, "tmp"))
		return 0;
	struct stat st;
	if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
		fail(CS_IMAGE, errno, -1);
	size_t o = scat(dst, sizeof(dst), 0, NEWROOT "/");
	scat(dst, sizeof(dst), o, nm);
	if (S_ISLNK(st.st_mode)) {
		ssize_t ln = readlinkat(dfd, nm, link, sizeof(link) - 1);
		if (ln < 0)
			fail(CS_IMAGE, errno, -1);
		link[ln] = 0;
		CHECK(symlink(link, dst), CS_IMAGE, -1);
	} else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
		CHECK(make_mountpoint(dst, S_ISDIR(st.st_mode)), CS_IMAGE, -1);
		size_t so = scat(src, sizeof(src), 0, IMAGE_STAGE "/");
		scat(src, sizeof(src), so, nm);
		CHECK(bind_mount(src, dst, MS_RDONLY | MS_NODEV), CS_IMAGE, -1);
	}
	return 0;
}

static void setup_named_image(int imgfd)
{
	/* Attach the image where we can bind from it (a mount of our own namespace), take each
	 * entry, then detach it again before the root becomes read-only. */
	CHECK(mkdir(IMAGE_STAGE, 0700), CS_IMAGE, -1);
	CHECK(attach_tree(imgfd, IMAGE_STAGE, g_ctx->image_attr_done, MS_RDONLY | MS_NODEV),
	      CS_IMAGE, -1);
	int dfd = open(IMAGE_STAGE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		fail(CS_IMAGE, errno, -1);
	int r = for_each_dirent(dfd, image_entry, &dfd);
	if (r < 0)
		fail(CS_IMAGE, -r, -1);
	close(dfd);
	CHECK(umount2(IMAGE_STAGE, MNT_DETACH), CS_IMAGE, -1);
	CHECK(rmdir(IMAGE_STAGE), CS_IMAGE, -1);
}

/* The generated /etc of the `host` image: only what programs need to run, nothing that
 * describes the host (no host users, no host names). */
static void setup_host_etc(void)
{
	static const struct {
		const char *name, *text;
	} files[] = {
		{"/etc/passwd", "root:x:0:0:sandbox:/tmp:/bin/sh\n"
				"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
		{"/etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"/etc/hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n"},
		{"/etc/hostname", "sandbox\n"},
		{"/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"},
		{"/etc/resolv.conf", ""},
	};
	static const struct {
		const char *path;
		bool dir;
	} binds[] = {
		{"/etc/ld.so.cache", false},       /* the dynamic loader's library index */
		{"/etc/alternatives", true},       /* Debian's symlink farm for cc, awk, ... */
		{"/etc/ssl/certs", true},          /* CA certificates for TLS clients */
		{"/etc/ssl/openssl.cnf", false},
	};
	char p[256];
	rootpath(p, sizeof(p), "/etc");
	CHECK(mkdir(p, 0755), CS_ETC, -1);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		rootpath(p, sizeof(p), files[i].name);
		CHECK(write_text(p, files[i].text, 0644), CS_ETC, (int)i);
	}
	rootpath(p, sizeof(p), "/etc/ssl");
	CHECK(mkdir(p, 0755), CS_ETC, -1);
	for (size_t i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
		if (access(binds[i].path, F_OK) < 0)
			continue;
		rootpath(p, sizeof(p), binds[i].path);
		CHECK(make_mountpoint(p, binds[i].dir), CS_ETC, (int)i);
		CHECK(bind_mount(binds[i].path, p, MS_RDONLY | MS_NODEV), CS_ETC, (int)i);
	}
}

static void setup_proc(void)
{
	char p[256];
	rootpath(p, sizeof(p), "/proc");
	CHECK(mkdir(p, 0555), CS_PROC, -1);
	/* A fresh proc of the sandbox's pid namespace: no host pids. */
	CHECK(mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), CS_PROC, -1);
	/* Files that reveal or change the host: hidden behind /dev/null or made read-only. The
	 * sandbox's root has no capability over the host's kernel, so these are defence in depth. */
	static const char *const hide[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list",
					   "/proc/sched_debug", "/proc/kallsyms", "/proc/kmsg",
					   "/proc/kpagecount", "/proc/kpageflags", "/proc/latency_stats"};
	static const char *const ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
					 "/proc/bus", "/proc/fs", "/proc/acpi", "/proc/scsi"};
	for (size_t i = 0; i < sizeof(hide) / sizeof(hide[0]); i++) {
		rootpath(p, sizeof(p), hide[i]);
		if (access(p, F_OK) < 0)
			continue;
		/* nodev: opening the mask fails outright instead of reading /dev/null. */
		CHECK(bind_mount("/dev/null", p, MS_RDONLY | MS_NODEV | MS_NOEXEC), CS_PROC_MASK,
		      (int)i);
	}
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		rootpath(p, sizeof(p), ro[i]);
		if (access(p, F_OK) < 0)
			continue;
		CHECK(bind_mount(p, p, MS_RDONLY | MS_NODEV | MS_NOEXEC), CS_PROC_MASK,
		      100 + (int)i);
	}
}

/* /dev: a small tmpfs with only null, zero, full, random, urandom and tty (bound from the
 * host: a user namespace cannot mknod), the usual symlinks and a private /dev/shm. */
static void setup_dev(void)
{
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const links[][2] = {{"fd", "/proc/self/fd"},
					       {"stdin", "/proc/self/fd/0"},
					       {"stdout", "/proc/self/fd/1"},
					       {"stderr", "/proc/self/fd/2"}};
	char p[256], src[64];
	rootpath(p, sizeof(p), "/dev");
	CHECK(mkdir(p, 0755), CS_DEV, -1);
	CHECK(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64"),
	      CS_DEV, -1);
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		size_t o = scat(p, sizeof(p), 0, NEWROOT "/dev/");
		scat(p, sizeof(p), o, nodes[i]);
		o = scat(src, sizeof(src), 0, "/dev/");
		scat(src, sizeof(src), o, nodes[i]);
		CHECK(make_mountpoint(p, false), CS_DEV, (int)i);
		CHECK(bind_mount(src, p, MS_NOEXEC), CS_DEV, (int)i);
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		size_t o = scat(p, sizeof(p), 0, NEWROOT "/dev/");
		scat(p, sizeof(p), o, links[i][0]);
		CHECK(symlink(links[i][1], p), CS_DEV, 10 + (int)i);
	}
	rootpath(p, sizeof(p), "/dev/shm");
	CHECK(mkdir(p, 01777), CS_DEV, 20);
	CHECK(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, g_ctx->shm_opts), CS_DEV,
	      21);
	rootpath(p, sizeof(p), "/dev");
	CHECK(mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL),
	      CS_DEV, 22);
}

static void setup_binds(void)
{
	const struct sbx_spec *spec = g_ctx->spec;
	char dst[4200];
	for (size_t i = 0; i < spec->n_binds; i++) {
		rootpath(dst, sizeof(dst), spec->binds[i].dest);
		CHECK(mkdir_parents(dst), CS_BIND, (int)i);
		CHECK(make_mountpoint(dst, g_ctx->bind_is_dir[i]), CS_BIND, (int)i);
		CHECK(attach_tree(g_ctx->bind_fd[i], dst, g_ctx->bind_attr_done[i],
				  MS_NODEV | (spec->binds[i].writable ? 0 : MS_RDONLY)),
		      CS_BIND, (int)i);
	}
}

static void setup_files(void)
{
	const struct sbx_spec *spec = g_ctx->spec;
	char p[4200];
	for (size_t i = 0; i < spec->n_files; i++) {
		rootpath(p, sizeof(p), spec->files[i].path);
		CHECK(mkdir_parents(p), CS_FILES, (int)i);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			      spec->files[i].mode & 0777);
		if (fd < 0)
			fail(CS_FILES, errno, (int)i);
		const char *d = spec->files[i].data;
		size_t off = 0;
		while (off < spec->files[i].len) {
			ssize_t n = write(fd, d + off, spec->files[i].len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				fail(CS_FILES, n < 0 ? errno : ENOSPC, (int)i);
			off += (size_t)n;
		}
		close(fd);
	}
	const char *wd = spec->workdir ? spec->workdir : "/tmp";
	if (!strncmp(wd, "/tmp/", 5)) {
		size_t len = strlen(wd);
		rootpath(p, sizeof(p), wd);
		if (len > 0 && p[strlen(p) - 1] != '/')
			scat(p, sizeof(p), strlen(p), "/");
		CHECK(mkdir_parents(p), CS_WORKDIR, -1);
	}
}

/* Rootless: the detached mounts the supervisor makes as root (sandbox.c open_sources), made
 * here in init's own mount namespace, where init (uid 0 of its user namespace, the caller's
 * uid on the host) may clone mounts. Runs before the tmpfs covers the host's /tmp, where bind
 * sources often are. Writes init's private copy of the context (clone without CLONE_VM). */
static void rootless_open_sources(void)
{
	struct child_ctx *ctx = (struct child_ctx *)g_ctx;
	const struct sbx_spec *spec = ctx->spec;
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY};
	if (spec->image_root) {
		int fd = open_tree(AT_FDCWD, spec->image_root, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (fd < 0)
			fail(CS_IMAGE, errno, -1);
		ctx->image_fd = fd;
		ctx->image_attr_done = mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0;
	}
	for (size_t i = 0; i < spec->n_binds; i++) {
		int fd = open_tree(AT_FDCWD, spec->binds[i].src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (fd < 0)
			fail(CS_BIND, errno, (int)i);
		struct stat st;
		if (fstat(fd, &st) < 0)
			fail(CS_BIND, errno, (int)i);
		ctx->bind_fd[i] = fd;
		ctx->bind_is_dir[i] = S_ISDIR(st.st_mode);
		attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
				(spec->binds[i].writable ? 0 : MOUNT_ATTR_RDONLY);
		ctx->bind_attr_done[i] = mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0;
	}
}

static void setup_root(void)
{
	char p[256];
	/* Nothing we mount may propagate back to the host. */
	CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), CS_PRIVATE, -1);
	if (g_ctx->rootless)
		rootless_open_sources();
	CHECK(mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV,
		    "mode=0755,size=4m,nr_inodes=4096"),
	      CS_ROOT_TMPFS, -1);
	if (g_ctx->image_fd >= 0) {
		setup_named_image(g_ctx->image_fd);
	} else {
		setup_host_image();
		setup_host_etc();
	}
	/* Scratch space: the only writable place by default, limited in bytes and inodes. */
	rootpath(p, sizeof(p), "/tmp");
	CHECK(mkdir(p, 01777), CS_SCRATCH, -1);
	CHECK(mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, g_ctx->scratch_opts), CS_SCRATCH,
	      -1);
	setup_proc();
	setup_dev();
	setup_binds();
	setup_files();
	/* The root itself read-only: only /tmp, /dev/shm and declared binds are writable. */
	CHECK(mount(NULL, NEWROOT, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
		    NULL),
	      CS_ROOT_RO, -1);
	/* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves the
	 * host's tree unreachable. */
	CHECK(chdir(NEWROOT), CS_PIVOT, -1);
	CHECK(syscall(SYS_pivot_root, ".", "."), CS_PIVOT, -1);
	CHECK(umount2(".", MNT_DETACH), CS_PIVOT, -1);
	CHECK(chdir("/"), CS_PIVOT, -1);
}

/* ---- the program ---- */

static void close_other_fds(int keep)
{
	/* keep is 3 here: close everything above it. */
	if (syscall(SYS_close_range, keep + 1, ~0U, 0) == 0)
		return;
	struct rlimit rl;
	unsigned long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 65536;
	if (max > 1048576)
		max = 1048576;
	for (unsigned long fd = (unsigned long)keep + 1; fd < max; fd++)
		close((int)fd);
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t len = strlen(name);
	for (; envp && *envp; envp++)
		if (!strncmp(*envp, name, len) && (*envp)[len] == '=')
			return *envp + len + 1;
	return NULL;
}

/* execvpe without malloc: search PATH of the program's own environment. */
static int exec_path(char *const *argv, char *const *envp)
{
	const char *file = argv[0];
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return -errno;
	}
	const char *path = env_get(envp, "PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int err = -ENOENT;
	char buf[4096];
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > 0 && n + strlen(file) + 2 < sizeof(buf)) {
			memcpy(buf, p, n);
			buf[n] = '/';
			memcpy(buf + n + 1, file, strlen(file) + 1);
			execve(buf, argv, envp);
			if (errno != ENOENT && errno != ENOTDIR)
				err = -errno;
		}
		if (!end)
			break;
		p = end;
	}
	return err;
}

/* Report a failure of the program's own setup through the exec pipe and exit. */
__attribute__((noreturn)) static void program_fail(int errpipe, enum child_setup step, int err)
{
	int32_t rep[2] = {(int32_t)step, err};
	ssize_t n = write(errpipe, rep, sizeof(rep));
	(void)n;
	_exit(127);
}

/* In init (errpipe < 0) report on the report pipe; in the program, on its exec pipe. */
#define PCHECK(expr, step)                                                                         \
	do {                                                                                       \
		if ((expr) < 0) {                                                                  \
			if (errpipe < 0)                                                           \
				fail((step), errno, -1);                                           \
			program_fail(errpipe, (step), errno);                                      \
		}                                                                                  \
	} while (0)

static void drop_privileges(int errpipe)
{
	/* Bounding set first (needs CAP_SETPCAP, which we still hold), so no later execve can
	 * regain anything; then lock the securebits so uid 0 gets no capabilities on exec, and
	 * clear the effective, permitted and inheritable sets. */
	for (int c = 0; c <= g_ctx->cap_last; c++)
		PCHECK(prctl(PR_CAPBSET_DROP, c, 0, 0, 0), CS_CAPS);
	PCHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), CS_CAPS);
	PCHECK(prctl(PR_SET_SECUREBITS,
		     SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
			     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
			     SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
		     0, 0, 0),
	       CS_CAPS);
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	PCHECK(syscall(SYS_capset, &hdr, data), CS_CAPS);
	/* no_new_privs: setuid files and file capabilities grant nothing; also what lets an
	 * unprivileged process install a seccomp filter and a Landlock domain. */
	PCHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), CS_NNP);
}

static void set_limits(int errpipe, const struct sbx_limits *l)
{
	uint64_t cpu_s = l->cpu_ms / 1000 + 1; /* RLIMIT_CPU: a per-process backstop only */
	uint64_t nproc = g_ctx->cgroup_pids ? 2 * l->pids + 16 : l->pids + 1;
	const struct {
		int res;
		uint64_t soft, hard;
	} rl[] = {
		{RLIMIT_NOFILE, l->nofile, l->nofile},
		{RLIMIT_FSIZE, l->fsize_bytes, l->fsize_bytes},
		{RLIMIT_CORE, 0, 0},
		/* NPROC counts the sandbox uid's tasks: only a backstop when the cgroup's pids.max
		 * enforces the limit (which must hit first, so its counter tells the verdict);
		 * the limit itself without a cgroup (+1: init runs as the same uid). */
		{RLIMIT_NPROC, nproc, nproc},
		{RLIMIT_STACK, 8u << 20, l->memory_bytes},
		{RLIMIT_CPU, cpu_s, cpu_s + 1},
		{RLIMIT_MEMLOCK, 64u << 10, 64u << 10},
	};
	for (size_t i = 0; i < sizeof(rl) / sizeof(rl[0]); i++) {
		/* Only ever lower: raising a hard limit needs a capability the sandbox lacks. */
		struct rlimit cur, r = {.rlim_cur = rl[i].soft, .rlim_max = rl[i].hard};
		PCHECK(getrlimit(rl[i].res, &cur), CS_RLIMIT);
		if (r.rlim_max > cur.rlim_max)
			r.rlim_max = cur.rlim_max;
		if (r.rlim_cur > r.rlim_max)
			r.rlim_cur = r.rlim_max;
		PCHECK(setrlimit(rl[i].res, &r), CS_RLIMIT);
	}
}

/* Ask the supervisor to look at each process of the program as it calls exit_group, while
 * its fd table is still whole: a table full up to RLIMIT_NOFILE explains a failure as the
 * open-files limit (the kernel keeps no counter of EMFILE). A one-rule filter returning
 * SECCOMP_RET_USER_NOTIF; its listener fd goes to the supervisor over the control socket and
 * is closed here at once (a process waiting on its own listener would never exit). Best
 * effort: without user notification the verdict just cannot name this limit. */
static void watch_exits(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
	int fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			      SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0)
		return;
	char byte = 'L';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	sendmsg(g_ctx->go_fd, &mh, MSG_NOSIGNAL);
	close(fd);
}

__attribute__((noreturn)) static void run_program(int step, int errpipe)
{
	const struct sbx_spec *spec = g_ctx->spec;
	const struct sbx_step *st = &spec->steps[step];
	/* A new session: no controlling terminal, so TIOCSTI has no terminal to reach. */
	PCHECK(setsid(), CS_STDIO);
	watch_exits();
	/* Move every fd we keep above 9 first, so placing them on 0-3 cannot clobber one. */
	int in = st->stdin_fd >= 0 ? st->stdin_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = g_ctx->out_w[step];
	int src[4] = {in, out, g_ctx->err_w[step] >= 0 ? g_ctx->err_w[step] : out, errpipe};
	int fds[4];
	for (int i = 0; i < 4; i++)
		PCHECK(fds[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10), CS_STDIO);
	errpipe = fds[3];
	for (int i = 0; i < 3; i++)
		PCHECK(dup2(fds[i], i), CS_STDIO);
	PCHECK(dup3(errpipe, 3, O_CLOEXEC), CS_STDIO);
	errpipe = 3;
	/* Every fd but 0-2 (and the CLOEXEC exec pipe) closed: nothing of the caller leaks in. */
	close_other_fds(3);
	PCHECK(chdir(spec->workdir ? spec->workdir : "/tmp"), CS_WORKDIR);
	set_limits(errpipe, &st->limits);
	/* Default dispositions and an empty mask: nothing inherited from cordon or init. */
	sigset_t none;
	sigemptyset(&none);
	for (int s = 1; s < 65; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (g_ctx->landlock_abi > 0) {
		int r = landlock_apply(g_ctx->writable, g_ctx->n_writable, false);
		if (r < 0)
			program_fail(errpipe, CS_LANDLOCK, -r);
	}
	int r = filter_load(g_ctx->filter);
	if (r < 0)
		program_fail(errpipe, CS_SECCOMP, -r);
	/* The filter is in force: only execve remains. Its failure is the program's, not ours. */
	r = exec_path(st->argv, spec->envp);
	program_fail(errpipe, 0, -r);
}

/* ---- init ---- */

static void forward_signal(int sig)
{
	pid_t p = g_program;
	if (p > 0)
		kill(p, sig);
}

/* Count regular files in the scratch space (bounded walk, no allocation). */
struct count_state {
	const char *dir;
	int depth;
	uint64_t count;
};

static uint64_t count_files(const char *dir, int depth);

static int count_entry(const char *name, unsigned char type, void *ud)
{
	struct count_state *cs = ud;
	if (type == DT_REG) {
		cs->count++;
	} else if (type == DT_DIR) {
		char sub[4096];
		size_t o = scat(sub, sizeof(sub), 0, cs->dir);
		o = scat(sub, sizeof(sub), o, "/");
		scat(sub, sizeof(sub), o, name);
		cs->count += count_files(sub, cs->depth + 1);
	}
	return 0;
}

static uint64_t count_files(const char *dir, int depth)
{
	if (depth > 32)
		return 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	struct count_state cs = {.dir = dir, .depth = depth};
	for_each_dirent(fd, count_entry, &cs);
	close(fd);
	return cs.count;
}

/* Kill whatever the step left (daemons included) and reap it all: kill(-1) from the pid
 * namespace's init reaches every process in it but init. */
static int end_step(void)
{
	int left = 0;
	kill(-1, SIGKILL);
	for (;;) {
		if (waitpid(-1, NULL, __WALL) > 0)
			left++;
		else if (errno != EINTR)
			break;
	}
	return left;
}

struct program_args {
	int step;
	int errpipe;
};

#ifndef __SANITIZE_ADDRESS__
/* The program's stack while it shares init's memory (before its execve). */
static char program_stack[256 * 1024] __attribute__((aligned(16)));
#endif

static int program_entry(void *arg)
{
	const struct program_args *pa = arg;
	run_program(pa->step, pa->errpipe);
}

static int run_step(int step)
{
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		fail(CS_FORK, errno, step);
	/* CLONE_VM|CLONE_VFORK: the program shares init's memory until its execve, so no page
	 * table is copied (posix_spawn's trick). It only touches its own stack and makes system
	 * calls, and init sleeps until it has exec'd or died. */
	struct program_args pa = {.step = step, .errpipe = ep[1]};
#ifdef __SANITIZE_ADDRESS__
	/* ASan cannot follow a switch to program_stack: sanitizer builds use a plain fork. */
	pid_t pid = fork();
	if (pid == 0)
		program_entry(&pa);
#else
	pid_t pid = clone(program_entry, program_stack + sizeof(program_stack),
			  CLONE_VM | CLONE_VFORK | SIGCHLD, &pa);
#endif
	if (pid < 0)
		fail(CS_FORK, errno, step);
	g_program = pid;
	close(ep[1]);
	close(g_ctx->out_w[step]);
	if (g_ctx->err_w[step] >= 0)
		close(g_ctx->err_w[step]);

	int32_t rep[2] = {0, 0};
	ssize_t n;
	do
		n = read(ep[0], rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n > 0 && rep[0] != 0) {
		/* The program's own setup failed before execve: a sandbox failure. */
		end_step();
		fail((enum child_setup)rep[0], rep[1], step);
	}
	struct child_msg m = {.type = n > 0 ? MSG_EXECFAIL : MSG_EXEC, .step = step, .err = rep[1]};
	send_msg(&m);

	int status = 0;
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, __WALL);
		if (w == pid) {
			status = st;
			break;
		}
		if (w < 0 && errno == ECHILD)
			break;
	}
	g_program = -1;
	/* What the program left running (a fork bomb's children, daemons) is killed here. */
	int left = end_step();

	struct child_msg x = {.type = MSG_EXIT, .step = step, .status = status, .arg = left};
	/* The size-limited tmpfs mounts: a full one explains an ENOSPC death. */
	static const char *const scratch[] = {"/tmp", "/dev/shm"};
	for (size_t i = 0; i < sizeof(scratch) / sizeof(scratch[0]); i++) {
		struct statfs sf;
		if (statfs(scratch[i], &sf) < 0)
			continue;
		if (sf.f_bavail == 0)
			x.flags |= SCRATCH_FULL_BLOCKS;
		if (sf.f_ffree == 0)
			x.flags |= SCRATCH_FULL_INODES;
	}
	x.files = count_files("/tmp", 0);
	/* Init reaps every process of the step (orphans come to PID 1): its children's rusage is
	 * their CPU time, which a run without a cgroup has no other way to measure. */
	struct rusage ru;
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
		x.cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ULL +
			   ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ULL;
	send_msg(&x);
	return status;
}

static char read_cmd(void)
{
	char c = 0;
	ssize_t n;
	do
		n = read(g_ctx->go_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? c : 0;
}

static bool keep_fd(const struct child_ctx *ctx, int fd)
{
	if (fd <= 2 || fd == ctx->go_fd || fd == ctx->rep_fd || fd == ctx->image_fd)
		return true;
	for (size_t i = 0; i < SBX_MAX_STEPS; i++)
		if (fd == ctx->out_w[i] || fd == ctx->err_w[i] ||
		    (i < ctx->spec->n_steps && fd == ctx->spec->steps[i].stdin_fd))
			return true;
	for (size_t i = 0; i < ctx->spec->n_binds; i++)
		if (fd == ctx->bind_fd[i])
			return true;
	return false;
}

struct close_state {
	const struct child_ctx *ctx;
	int dirfd;
	int victims[256];
	size_t n;
};

static int close_entry(const char *name, unsigned char type, void *ud)
{
	struct close_state *cs = ud;
	int fd = 0;
	if (*name < '0' || *name > '9')
		return 0;
	for (; *name >= '0' && *name <= '9'; name++)
		fd = fd * 10 + (*name - '0');
	if (fd != cs->dirfd && !keep_fd(cs->ctx, fd))
		cs->victims[cs->n++] = fd;
	return cs->n == sizeof(cs->victims) / sizeof(cs->victims[0]); /* batch full: stop */
}

/* Init inherited every fd of the supervisor (clone without exec): close all it does not
 * need, above all the slot lock, which must die with the supervisor. */
static void close_inherited(const struct child_ctx *ctx)
{
	for (;;) {
		struct close_state cs = {.ctx = ctx, .n = 0};
		cs.dirfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cs.dirfd < 0)
			fail(CS_CLOSE_FDS, errno, -1);
		int r = for_each_dirent(cs.dirfd, close_entry, &cs);
		close(cs.dirfd);
		if (r < 0)
			fail(CS_CLOSE_FDS, -r, -1);
		for (size_t i = 0; i < cs.n; i++)
			close(cs.victims[i]);
		if (r == 0)
			return; /* the whole directory was read */
	}
}

/* Init is a copy of the supervisor: wipe the supervisor's environment strings so nothing of
 * the caller's environment survives in the sandbox's PID 1 (defence in depth: init is also
 * non-dumpable, so the program cannot read /proc/1/environ or its memory anyway). */
static void wipe_environment(void)
{
	extern char **environ;
	for (char **e = environ; e && *e; e++)
		memset(*e, 0, strlen(*e));
}

void child_main(const struct child_ctx *ctx)
{
	g_ctx = ctx;
	/* v1: move into the sandbox's cgroups first, before anything else runs or allocates
	 * (see cgroup-v1.c: a thread moving itself avoids the global rwsem's grace period). */
	for (int i = 0; i < ctx->n_cg_self; i++)
		if (write(ctx->cg_self_fd[i], "0", 1) != 1)
			fail(CS_CGROUPNS, errno, i);
	wipe_environment();
	close_inherited(ctx);
	if (read_cmd() != CHILD_CMD_MAPPED)
		_exit(125); /* parent gone or gave up */

	/* Become the namespace's uid 0 (host: the slot's unprivileged uid) and drop the
	 * supplementary groups inherited from cordon (host root's groups). */
	if (!ctx->rootless) /* rootless: setgroups is denied (sandbox.c write_id_maps) */
		CHECK(setgroups(0, NULL), CS_IDS, 0);
	CHECK(setresgid(0, 0, 0), CS_IDS, 1);
	CHECK(setresuid(0, 0, 0), CS_IDS, 2);
	/* If the supervisor dies (even by SIGKILL), init dies, and with it the whole namespace.
	 * Set after the uid change, which clears it; then make sure the parent did not die
	 * before: its end of the control socket would be closed. */
	CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), CS_IDS, 4);
	/* Hang-up, not a read: the commands it sent just before dying ('G') may still be queued,
	 * and a peek would then see data and carry on without a supervisor (no wall limit). */
	struct pollfd hup = {.fd = ctx->go_fd, .events = POLLRDHUP};
	if (poll(&hup, 1, 0) < 0 || (hup.revents & (POLLHUP | POLLRDHUP)))
		_exit(125);
	/* Not dumpable: the program (same uid, no capabilities) cannot ptrace or read init's
	 * memory through /proc/1. */
	CHECK(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), CS_IDS, 3);
	CHECK(sethostname("sandbox", 7), CS_HOSTNAME, -1);
	CHECK(setdomainname("sandbox", 7), CS_HOSTNAME, -1);
	setup_root();
	/* v1: the supervisor moves us into the cgroup while we build the root (the move can
	 * wait for an RCU grace period); nothing of the program runs before it is done. Only
	 * then enter a cgroup namespace, so its root is the sandbox's own cgroup. */
	if (read_cmd() != CHILD_CMD_GO)
		_exit(125);
	if (ctx->unshare_cgroupns)
		CHECK(unshare(CLONE_NEWCGROUP), CS_CGROUPNS, -1);
	/* Setup is done: init needs no privilege to fork, reap, signal its own uid and read
	 * /tmp, so it drops everything too (and the program inherits empty sets). */
	drop_privileges(-1);

	/* Forward termination signals to the running program. */
	static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++) {
		struct sigaction sa = {.sa_handler = forward_signal};
		sigaction(fwd[i], &sa, NULL);
	}
	for (size_t step = 0; step < ctx->spec->n_steps; step++) {
		if (step > 0 && read_cmd() != CHILD_CMD_NEXT)
			break;
		run_step((int)step);
	}
	_exit(0);
}

const char *child_setup_name(enum child_setup step)
{
	switch (step) {
	case CS_READ_GO: return "wait for the supervisor";
	case CS_IDS: return "switch to the sandbox uid";
	case CS_CGROUPNS: return "cgroup namespace";
	case CS_HOSTNAME: return "set hostname";
	case CS_PRIVATE: return "make mounts private";
	case CS_ROOT_TMPFS: return "mount the root tmpfs";
	case CS_IMAGE: return "mount the image";
	case CS_ETC: return "generate /etc";
	case CS_SCRATCH: return "mount the /tmp scratch space";
	case CS_PROC: return "mount /proc";
	case CS_PROC_MASK: return "mask /proc";
	case CS_DEV: return "populate /dev";
	case CS_BIND: return "bind mount";
	case CS_FILES: return "write program files";
	case CS_ROOT_RO: return "make the root read-only";
	case CS_PIVOT: return "pivot_root";
	case CS_FORK: return "fork the program";
	case CS_STDIO: return "set up stdio";
	case CS_CLOSE_FDS: return "close inherited fds";
	case CS_WORKDIR: return "enter the working directory";
	case CS_RLIMIT: return "set rlimits";
	case CS_CAPS: return "drop capabilities";
	case CS_NNP: return "set no_new_privs";
	case CS_LANDLOCK: return "apply Landlock";
	case CS_SECCOMP: return "load the seccomp filter";
	}
	return "unknown";
}
