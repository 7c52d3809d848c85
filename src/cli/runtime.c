/* The runtime table. Adding a language is one row here: its program, where the code goes and,
 * for compiled languages, the compile command (run with limits_compile(), output merged). */
#include "runtime.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

static const char *const compile_c[] = {"gcc", "-O2", "-o", "/tmp/a.out", "/tmp/main.c", "-lm",
					NULL};
static const char *const compile_cpp[] = {"g++", "-O2", "-o", "/tmp/a.out", "/tmp/main.cpp",
					  NULL};

static const struct runtime runtimes[] = {
	{"python", "python3", "/usr/bin/python3", "python3", "-c", "/tmp/main.py", NULL, NULL},
	{"node", "node", "/usr/bin/node", "nodejs", "-e", "/tmp/main.js", NULL, NULL},
	{"bash", "bash", "/usr/bin/bash", "bash", "-c", "/tmp/main.sh", NULL, NULL},
	{"sh", "sh", "/usr/bin/sh", "dash", "-c", "/tmp/main.sh", NULL, NULL},
	{"c", "gcc", "/usr/bin/gcc", "gcc", NULL, "/tmp/main.c", compile_c, "/tmp/a.out"},
	{"cpp", "g++", "/usr/bin/g++", "g++", NULL, "/tmp/main.cpp", compile_cpp, "/tmp/a.out"},
};

const struct runtime *runtime_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(runtimes); i++)
		if (streq(name, runtimes[i].name))
			return &runtimes[i];
	return NULL;
}

const char *runtime_names(void)
{
	return "python, node, bash, sh, c, cpp";
}

/* Open path (relative to rootfd) the way the sandbox will see it: RESOLVE_IN_ROOT makes
 * absolute symlinks of an image (/usr/bin/python3 -> /etc/alternatives/...) resolve inside the
 * image, never on the host. */
static int open_in_root(int rootfd, const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

static bool is_executable_file(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

/* Without openat2 (linux < 5.6, or hidden by a seccomp profile): look in a child chrooted into
 * the root, where absolute symlinks and ".." resolve inside it as they will in the sandbox. A
 * user without root first takes a user namespace of its own for CAP_SYS_CHROOT. Returns the
 * index of the first directory of RUNTIME_PATH that has an executable interp, -ENOENT, or
 * -errno when the child could not look (then the sandbox will tell). */
static int locate_chrooted(const char *root, const char *interp)
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
		int r = -ENOENT;
		if (geteuid() != 0 && unshare(CLONE_NEWUSER) < 0)
			r = -errno;
		else if (chroot(root ? root : "/") < 0 || chdir("/") < 0)
			r = -errno;
		int idx = 0;
		for (const char *dirs = RUNTIME_PATH; r == -ENOENT && *dirs; idx++) {
			char path[512];
			size_t n = strcspn(dirs, ":");
			snprintf(path, sizeof(path), "%.*s/%s", (int)n, dirs, interp);
			dirs += n + (dirs[n] == ':');
			struct stat st;
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
				r = idx;
		}
		ssize_t w = write(p[1], &r, sizeof(r));
		_exit(w == sizeof(r) ? 0 : 1);
	}
	close(p[1]);
	int r = -EIO;
	ssize_t n;
	do
		n = read(p[0], &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return n == sizeof(r) ? r : -EIO;
}

int runtime_locate(const struct runtime *rt, const char *root, char *ret_path, size_t size)
{
	_cleanup_close_ int rootfd = open(root ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	const char *dirs = RUNTIME_PATH;
	for (int idx = 0; *dirs; idx++) {
		size_t n = strcspn(dirs, ":");
		int len = snprintf(ret_path, size, "%.*s/%s", (int)n, dirs, rt->interp);
		dirs += n + (dirs[n] == ':');
		if (len < 0 || (size_t)len >= size)
			return -ENAMETOOLONG;
		_cleanup_close_ int fd = open_in_root(rootfd, ret_path);
		if (fd == -ENOSYS) {
			int found = locate_chrooted(root, rt->interp);
			if (found == -ENOENT)
				return -ENOENT;
			if (found < 0)
				return 0; /* could not look safely: the sandbox will tell */
			dirs = RUNTIME_PATH;
			for (int i = 0; i < found; i++)
				dirs += strcspn(dirs, ":") + 1;
			snprintf(ret_path, size, "%.*s/%s", (int)strcspn(dirs, ":"), dirs, rt->interp);
			return 0;
		}
		if (fd >= 0 && is_executable_file(fd))
			return 0;
	}
	return -ENOENT;
}

int runtime_check(const struct runtime *rt, const char *root, const char *image,
		  struct cdn_err *err)
{
	char path[512];
	int r = runtime_locate(rt, root, path, sizeof(path));
	if (r >= 0)
		return 0;
	if (!root)
		return err_set(err, 0, "runtime %s needs %s (apt-get install %s)", rt->name,
			       rt->host_path, rt->package);
	return err_set(err, 0, "runtime %s needs %s in image \"%s\" (package %s)", rt->name,
		       rt->interp, image, rt->package);
}

void runtime_print_list(FILE *out, const char *root)
{
	for (size_t i = 0; i < ARRAY_SIZE(runtimes); i++) {
		const struct runtime *rt = &runtimes[i];
		char path[512];
		if (runtime_locate(rt, root, path, sizeof(path)) >= 0)
			fprintf(out, "%-8s %s\n", rt->name, path);
		else
			fprintf(out, "%-8s missing: %s (apt-get install %s)\n", rt->name,
				rt->interp, rt->package);
	}
}

static void argv_copy(const char **dst, const char *const *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < RUNTIME_MAX_ARGS; i++)
		dst[i] = src[i];
	dst[i] = NULL;
}

void runtime_plan(const struct runtime *rt, const char *code, size_t len, bool from_file,
		  struct runtime_plan *ret)
{
	memset(ret, 0, sizeof(*ret));
	/* Compiled sources always go through a file; interpreters take a FILE the same way, so
	 * its bytes (NULs included) reach the program unchanged. */
	if (rt->compile_argv || from_file) {
		ret->has_file = true;
		ret->file = (struct sbx_file){
			.path = rt->src_path, .data = code, .len = len, .mode = 0644,
		};
	}
	if (rt->compile_argv) {
		ret->compiled = true;
		ret->n_steps = 2;
		argv_copy(ret->argv[0], rt->compile_argv);
		ret->argv[1][0] = rt->binary;
		return;
	}
	ret->n_steps = 1;
	const char **argv = ret->argv[0];
	argv[0] = rt->interp;
	if (from_file) {
		argv[1] = rt->src_path;
	} else {
		argv[1] = rt->code_flag;
		argv[2] = code;
	}
}
