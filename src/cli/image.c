/* `cordon image ls | import NAME TARBALL | rm NAME | build NAME`: the named root filesystems
 * under <state>/images. An image appears and disappears with one rename, so a run never sees
 * a half-imported or half-removed tree: work happens in ".NAME.tmp-PID" / ".NAME.rm-PID",
 * names that can never be an image name (they start with a dot). */
#include <dirent.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "cli.h"
#include "extract.h"
#include "rmtree.h"

static const char image_usage[] =
	"usage: cordon image ls\n"
	"       cordon image import NAME TARBALL   a rootfs tarball (tar, tar.gz, tar.xz,\n"
	"                                          tar.zst...; - reads stdin)\n"
	"       cordon image rm NAME\n"
	"       cordon image build NAME            (not implemented yet)\n"
	"\n"
	"NAME: [a-z0-9][a-z0-9._-]{0,63}. The image `host` is built in.\n";

struct image_args {
	const char *state_dir;
	const char *pos[3];
	size_t n_pos;
};

static int image_name_check(const char *name)
{
	if (streq(name, "host")) {
		cli_error("the image \"host\" is built in");
		return -1;
	}
	if (!state_image_name_valid(name)) {
		cli_error("invalid image name \"%s\": expected [a-z0-9][a-z0-9._-]{0,63}", name);
		return -1;
	}
	return 0;
}

/* Open <state>/images; NULL state means "do not create anything". */
static int image_open_dir(const char *state_opt, bool create, struct cdn_err *err)
{
	_cleanup_free_ char *state = NULL, *dir = NULL;
	int r = state_dir_resolve(state_opt, create, &state, err);
	if (r < 0)
		return r;
	r = state_images_dir(state, create, &dir, err);
	if (r < 0)
		return r;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? err_set(err, errno, "opening \"%s\"", dir) : fd;
}

static int image_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool image_exists(int imgfd, const char *name)
{
	_cleanup_free_ char *rootfs = strprintf("%s/rootfs", name);
	struct stat st;
	return rootfs && fstatat(imgfd, rootfs, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

static int image_ls(const struct image_args *a)
{
	struct cdn_err err = {0};
	int imgfd = image_open_dir(a->state_dir, false, &err);
	if (imgfd == -ENOENT) {
		puts("host"); /* no state yet: only the built-in image */
		return 0;
	}
	if (imgfd < 0) {
		cli_error("%s", err.msg);
		return EXIT_CORDON;
	}
	DIR *d = fdopendir(imgfd);
	if (!d) {
		cli_error("listing images: %m");
		close(imgfd);
		return EXIT_CORDON;
	}
	char **names = NULL;
	size_t n = 0;
	int status = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (streq(e->d_name, "host") || !state_image_name_valid(e->d_name) ||
		    !image_exists(dirfd(d), e->d_name))
			continue;
		char **grown = reallocarray(names, n + 1, sizeof(*names));
		char *copy = strdup(e->d_name);
		if (!grown || !copy) {
			free(copy);
			names = grown ? grown : names;
			cli_error("listing images: out of memory");
			status = EXIT_CORDON;
			break;
		}
		names = grown;
		names[n++] = copy;
	}
	closedir(d);
	if (status == 0) {
		if (n)
			qsort(names, n, sizeof(*names), image_cmp);
		puts("host");
		for (size_t i = 0; i < n; i++)
			puts(names[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return status;
}

/* A work directory is locked (flock) by the cordon working in it for as long as it works; a
 * lock we can take belongs to a cordon that died. Works across pid namespaces, unlike pids. */
static int image_lock_workdir(int imgfd, const char *name, bool wait)
{
	int fd = openat(imgfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Remove work directories of imports or removals whose cordon died (kill -9, power loss). */
static void image_sweep(int imgfd)
{
	int fd = openat(imgfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] != '.' || (!strstr(e->d_name, ".tmp-") && !strstr(e->d_name, ".rm-")))
			continue;
		_cleanup_close_ int lock = image_lock_workdir(imgfd, e->d_name, false);
		if (lock >= 0)
			(void)rmtree_at(imgfd, e->d_name);
	}
	closedir(d);
}

static int image_open_tarball(const char *path)
{
	if (streq(path, "-"))
		return fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		errno = EISDIR;
		return -1;
	}
	return fd;
}

/* Extract into the work directory `work`, then publish it as `name` with one rename. */
static int image_extract(int imgfd, int tarfd, const char *work, const char *name,
			 struct extract_stats *st, struct cdn_err *err)
{
	if (mkdirat(imgfd, work, 0700) < 0)
		return err_set(err, errno, "creating \"%s\"", work);
	_cleanup_close_ int lock = image_lock_workdir(imgfd, work, true);
	if (lock < 0)
		return err_set(err, lock, "locking \"%s\"", work);
	/* rootfs 0755: the sandbox's unprivileged uid must traverse its own root. */
	if (mkdirat(lock, "rootfs", 0755) < 0)
		return err_set(err, errno, "creating \"%s/rootfs\"", work);
	_cleanup_close_ int rootfd =
		openat(lock, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return err_set(err, errno, "opening \"%s/rootfs\"", work);
	int r = extract_tar(tarfd, rootfd, st, err);
	if (r < 0)
		return r;
	/* RENAME_NOREPLACE: a concurrent import of the same name loses cleanly, never merges. */
	if (renameat2(imgfd, work, imgfd, name, RENAME_NOREPLACE) < 0)
		return err_set(err, errno, "publishing the image");
	return 0;
}

static int image_import(const char *state_dir, const char *name, const char *tarball)
{
	if (image_name_check(name) < 0)
		return EXIT_CORDON;
	_cleanup_close_ int tarfd = image_open_tarball(tarball);
	if (tarfd < 0) {
		cli_error("opening \"%s\": %m", tarball);
		return EXIT_CORDON;
	}
	struct cdn_err err = {0};
	_cleanup_close_ int imgfd = image_open_dir(state_dir, true, &err);
	if (imgfd < 0) {
		cli_error("%s", err.msg);
		return EXIT_CORDON;
	}
	image_sweep(imgfd);
	struct stat sb;
	if (fstatat(imgfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		cli_error("image \"%s\" already exists (cordon image rm %s)", name, name);
		return EXIT_CORDON;
	}
	_cleanup_free_ char *work = strprintf(".%s.tmp-%d", name, (int)getpid());
	if (!work) {
		cli_error("out of memory");
		return EXIT_CORDON;
	}
	/* Names in pax headers are UTF-8: let libarchive keep them as they are. Implicit parent
	 * directories get 0755 whatever the caller's umask. */
	setlocale(LC_CTYPE, "C.UTF-8");
	umask(022);
	struct extract_stats st;
	if (image_extract(imgfd, tarfd, work, name, &st, &err) < 0) {
		(void)rmtree_at(imgfd, work);
		if (err.errnum == EEXIST)
			cli_error("image \"%s\" already exists (cordon image rm %s)", name, name);
		else
			cli_error("importing image \"%s\": %s", name, err.msg);
		return EXIT_CORDON;
	}
	if (st.skipped)
		cli_error("image \"%s\": skipped %llu device nodes, FIFOs or sockets", name,
			  (unsigned long long)st.skipped);
	printf("imported image \"%s\": %llu entries, %llu bytes\n", name,
	       (unsigned long long)st.entries, (unsigned long long)st.bytes);
	return 0;
}

static int image_rm(const char *state_dir, const char *name)
{
	if (image_name_check(name) < 0)
		return EXIT_CORDON;
	struct cdn_err err = {0};
	_cleanup_close_ int imgfd = image_open_dir(state_dir, false, &err);
	struct stat sb;
	if (imgfd == -ENOENT ||
	    (imgfd >= 0 && fstatat(imgfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)) {
		cli_error("unknown image \"%s\" (cordon image ls)", name);
		return EXIT_CORDON;
	}
	if (imgfd < 0) {
		cli_error("%s", err.msg);
		return EXIT_CORDON;
	}
	_cleanup_free_ char *work = strprintf(".%s.rm-%d", name, (int)getpid());
	if (!work) {
		cli_error("out of memory");
		return EXIT_CORDON;
	}
	/* First make the image disappear in one step, then delete at leisure. */
	if (renameat2(imgfd, name, imgfd, work, RENAME_NOREPLACE) < 0) {
		cli_error("removing image \"%s\": %m", name);
		return EXIT_CORDON;
	}
	_cleanup_close_ int lock = image_lock_workdir(imgfd, work, true);
	int r = rmtree_at(imgfd, work);
	if (r < 0) {
		cli_error("removing image \"%s\": %s (what is left is in \"%s\")", name,
			  strerror(-r), work);
		return EXIT_CORDON;
	}
	return 0;
}

/* Options (only the hidden --state-dir) may stand anywhere; the rest are positional. */
static int image_parse(int argc, char **argv, struct image_args *a)
{
	bool options = true;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (options && streq(arg, "--state-dir")) {
			if (i + 1 >= argc) {
				cli_error("option \"--state-dir\" needs a value");
				return -1;
			}
			a->state_dir = argv[++i];
		} else if (options && !strncmp(arg, "--state-dir=", 12)) {
			a->state_dir = arg + 12;
		} else if (options && (streq(arg, "-h") || streq(arg, "--help"))) {
			fputs(image_usage, stdout);
			return 1;
		} else if (options && streq(arg, "--")) {
			options = false;
		} else if (options && arg[0] == '-' && arg[1]) {
			cli_error("unknown option \"%s\" (cordon image --help)", arg);
			return -1;
		} else if (a->n_pos >= ARRAY_SIZE(a->pos)) {
			cli_error("unexpected argument \"%s\" (cordon image --help)", arg);
			return -1;
		} else {
			a->pos[a->n_pos++] = arg;
		}
	}
	return 0;
}

int image_main(int argc, char **argv)
{
	struct image_args a = {0};
	int r = image_parse(argc, argv, &a);
	if (r != 0)
		return r > 0 ? 0 : EXIT_CORDON;
	const char *cmd = a.n_pos ? a.pos[0] : NULL;
	if (streq(cmd, "build")) {
		cli_error("image build is not implemented yet (use image import)");
		return EXIT_CORDON;
	}
	if (streq(cmd, "ls") && a.n_pos == 1)
		return image_ls(&a);
	if (streq(cmd, "import") && a.n_pos == 3)
		return image_import(a.state_dir, a.pos[1], a.pos[2]);
	if (streq(cmd, "rm") && a.n_pos == 2)
		return image_rm(a.state_dir, a.pos[1]);
	if (!cmd || streq(cmd, "ls") || streq(cmd, "import") || streq(cmd, "rm"))
		fputs(image_usage, stderr);
	else
		cli_error("unknown image command \"%s\" (cordon image --help)", cmd);
	return EXIT_CORDON;
}
