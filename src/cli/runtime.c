/* The runtime table. Adding a language is one row here: its program, where the code goes and,
 * for compiled languages, the compile command (run with limits_compile(), output merged). */
#include "runtime.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

int runtime_locate(const struct runtime *rt, const char *root, char *ret_path, size_t size)
{
	_cleanup_close_ int rootfd = open(root ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	const char *dirs = RUNTIME_PATH;
	while (*dirs) {
		size_t n = strcspn(dirs, ":");
		int len = snprintf(ret_path, size, "%.*s/%s", (int)n, dirs, rt->interp);
		dirs += n + (dirs[n] == ':');
		if (len < 0 || (size_t)len >= size)
			return -ENAMETOOLONG;
		_cleanup_close_ int fd = open_in_root(rootfd, ret_path);
		if (fd == -ENOSYS)
			return 0; /* kernel < 5.6: cannot look safely; the sandbox will tell */
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
