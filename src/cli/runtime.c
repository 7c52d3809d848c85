/* The runtime table. Adding a language is one row here: its program, where the code goes and,
 * for compiled languages, the compile command (run with limits_compile(), output merged). */
#include "runtime.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "core/limits.h"
#include "core/probe.h"

static const struct runtime runtimes[] = {
	{.name = "python", .interp = "python3", .host_path = "/usr/bin/python3",
	 .package = "python3", .code_flag = "-c", .src_path = "/tmp/main.py"},
	{.name = "node", .interp = "node", .host_path = "/usr/bin/node", .package = "nodejs",
	 .code_flag = "-e", .src_path = "/tmp/main.js"},
	{.name = "bash", .interp = "bash", .host_path = "/usr/bin/bash", .package = "bash",
	 .code_flag = "-c", .src_path = "/tmp/main.sh"},
	{.name = "sh", .interp = "sh", .host_path = "/usr/bin/sh", .package = "dash",
	 .code_flag = "-c", .src_path = "/tmp/main.sh"},
	{.name = "c", .interp = "gcc", .host_path = "/usr/bin/gcc", .package = "gcc",
	 .src_path = "/tmp/main.c", .compiled = true, .src_exts = ".c", .link_flag = "-lm",
	 .binary = "/tmp/a.out"},
	{.name = "cpp", .interp = "g++", .host_path = "/usr/bin/g++", .package = "g++",
	 .src_path = "/tmp/main.cpp", .compiled = true, .src_exts = ".cpp .cc .cxx",
	 .binary = "/tmp/a.out"},
	/* Workers-shaped JavaScript, run by node under cordon's edge harness (spawn-plan.c). */
	{.name = "edge", .interp = "node", .host_path = "/usr/bin/node", .package = "nodejs",
	 .src_path = "/tmp/main.mjs", .api_only = true},
};

const struct runtime *runtime_find_api(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(runtimes); i++)
		if (streq(name, runtimes[i].name))
			return &runtimes[i];
	return NULL;
}

const struct runtime *runtime_find(const char *name)
{
	const struct runtime *rt = runtime_find_api(name);
	return rt && !rt->api_only ? rt : NULL;
}

const struct runtime *runtime_at(size_t i)
{
	return i < ARRAY_SIZE(runtimes) ? &runtimes[i] : NULL;
}

int runtime_compile_argv(const struct runtime *rt, const char *out, const char *const *srcs,
			 size_t n_srcs, const char **ret, size_t max)
{
	if (n_srcs > SIZE_MAX - 7 || 4 + n_srcs + 2 > max)
		return -E2BIG;
	size_t n = 0;
	ret[n++] = rt->interp;
	ret[n++] = "-O2";
	ret[n++] = "-o";
	ret[n++] = out;
	for (size_t i = 0; i < n_srcs; i++)
		ret[n++] = srcs[i];
	if (rt->link_flag)
		ret[n++] = rt->link_flag;
	ret[n] = NULL;
	return 0;
}

void runtime_compile_limits(const struct sbx_limits *run, const struct sbx_limits *given,
			    struct sbx_limits *ret)
{
	if (given)
		*ret = *given;
	else
		limits_compile(ret);
	ret->disk_bytes = run->disk_bytes;
	ret->max_files = run->max_files;
}

bool runtime_is_source(const struct runtime *rt, const char *path)
{
	size_t plen = strlen(path);
	for (const char *e = rt->src_exts; e && *e;) {
		size_t n = strcspn(e, " ");
		if (n && plen > n && !memcmp(path + plen - n, e, n))
			return true;
		e += n + (e[n] == ' ');
	}
	return false;
}

const char *runtime_names(void)
{
	return "python, node, bash, sh, c, cpp";
}

/* Open path (relative to rootfd) the way the sandbox will see it: RESOLVE_IN_ROOT makes
 * absolute symlinks of an image (/usr/bin/python3 -> /etc/alternatives/...) resolve inside the
 * image, never on the host. */
int runtime_open_in_root(int rootfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
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
struct locate_args {
	const char *root, *interp;
};

static void locate_child(void *ud, int fd)
{
	const struct locate_args *a = ud;
	int r = -ENOENT;
	if (geteuid() != 0 && unshare(CLONE_NEWUSER) < 0)
		r = -errno;
	else if (chroot(a->root ? a->root : "/") < 0 || chdir("/") < 0)
		r = -errno;
	int idx = 0;
	for (const char *dirs = RUNTIME_PATH; r == -ENOENT && *dirs; idx++) {
		char path[512];
		size_t n = strcspn(dirs, ":");
		snprintf(path, sizeof(path), "%.*s/%s", (int)n, dirs, a->interp);
		dirs += n + (dirs[n] == ':');
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
			r = idx;
	}
	probe_send(fd, r);
}

static int locate_chrooted(const char *root, const char *interp)
{
	struct locate_args a = {.root = root, .interp = interp};
	int r = -EIO;
	int n = probe_in_child(locate_child, &a, &r, 1, NULL);
	return n == 1 ? r : -EIO;
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
		_cleanup_close_ int fd = runtime_open_in_root(rootfd, ret_path, O_PATH);
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
		if (rt->api_only)
			continue;
		if (runtime_locate(rt, root, path, sizeof(path)) >= 0)
			fprintf(out, "%-8s %s\n", rt->name, path);
		else
			fprintf(out, "%-8s missing: %s (apt-get install %s)\n", rt->name,
				rt->interp, rt->package);
	}
}

void runtime_plan(const struct runtime *rt, const char *code, size_t len, bool from_file,
		  struct runtime_plan *ret)
{
	memset(ret, 0, sizeof(*ret));
	/* Compiled sources always go through a file; interpreters take a FILE the same way, so
	 * its bytes (NULs included) reach the program unchanged. */
	if (rt->compiled || from_file) {
		ret->has_file = true;
		ret->file = (struct sbx_file){
			.path = rt->src_path, .data = code, .len = len, .mode = 0644,
		};
	}
	if (rt->compiled) {
		ret->compiled = true;
		ret->n_steps = 2;
		const char *src = rt->src_path;
		/* 4 + 1 source + 1 link flag + NULL always fits RUNTIME_MAX_ARGS. */
		(void)runtime_compile_argv(rt, rt->binary, &src, 1, ret->argv[0], RUNTIME_MAX_ARGS);
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
