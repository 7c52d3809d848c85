/* Fuzz target: src/cli/extract.c, the extraction of untrusted tar archives (`cordon image
 * import` with extract_tar, and the daemon's daiv workspaces with extract_tar_at).
 *
 * Each input is extracted into a fresh directory two levels below an otherwise empty work
 * directory. Beyond the sanitizers' own checks it asserts the extractor's promises: nothing
 * appears next to the target (a "../" escape), and nothing inside it is a device node, a FIFO,
 * a socket, or setuid/setgid. Absolute-path escapes are refused by name (extract_clean_path)
 * and by libarchive's SECURE flags; a file outside the work tree cannot be noticed here.
 *
 * Built two ways (Makefile): with clang's libFuzzer for `make fuzz` (coverage-guided runs),
 * and as build{,-san}/unit-fuzz-extract, which replays the committed corpus in CI. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/extract.h"
#include "cli/rmtree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char workdir[64];
static int work_fd = -1;

static void fuzz_cleanup(void);

/* The work tree goes before the abort (which skips atexit), escaped entries with it. */
__attribute__((noreturn)) static void fuzz_fail(const char *what, const char *name)
{
	fprintf(stderr, "fuzz-extract: invariant broken: %s: \"%s\"\n", what, name);
	if (work_fd >= 0)
		fuzz_cleanup();
	abort();
}

static void fuzz_cleanup(void)
{
	int tmp = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tmp >= 0 && rmtree_at(tmp, workdir + strlen("/tmp/")) < 0)
		fprintf(stderr, "fuzz-extract: could not remove \"%s\"\n", workdir);
	if (tmp >= 0)
		close(tmp);
}

static void fuzz_setup(void)
{
	if (work_fd >= 0)
		return;
	snprintf(workdir, sizeof(workdir), "/tmp/cordon-fuzz-extract.XXXXXX");
	if (!mkdtemp(workdir))
		fuzz_fail("mkdtemp", workdir);
	work_fd = open(workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (work_fd < 0 || mkdirat(work_fd, "outer", 0700) < 0)
		fuzz_fail("work directory", workdir);
	atexit(fuzz_cleanup);
}

/* dirfd must hold exactly one entry, named only. */
static void fuzz_check_alone(int dirfd, const char *only)
{
	DIR *d = fdopendir(dup(dirfd));
	if (!d)
		fuzz_fail("opendir", only);
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, only))
			fuzz_fail("an entry escaped the target", de->d_name);
	closedir(d);
}

/* No device, FIFO, socket or setuid/setgid file anywhere below dirfd. */
static void fuzz_check_tree(int dirfd, int depth)
{
	if (depth > 300)
		fuzz_fail("tree deeper than the extractor allows", "");
	DIR *d = fdopendir(dup(dirfd));
	if (!d)
		fuzz_fail("opendir", "tree");
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			fuzz_fail("fstatat", de->d_name);
		if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) ||
		    S_ISSOCK(st.st_mode))
			fuzz_fail("special file extracted", de->d_name);
		if (st.st_mode & (S_ISUID | S_ISGID))
			fuzz_fail("setuid/setgid bit kept", de->d_name);
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
								 O_CLOEXEC);
			if (sub < 0)
				fuzz_fail("open directory", de->d_name);
			fuzz_check_tree(sub, depth + 1);
			close(sub);
		}
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup();
	int outer = openat(work_fd, "outer", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (outer < 0 || mkdirat(outer, "root", 0700) < 0)
		fuzz_fail("target directory", "outer/root");
	int root = openat(outer, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int in = memfd_create("fuzz-input", MFD_CLOEXEC);
	if (root < 0 || in < 0)
		fuzz_fail("open", "root or memfd");
	for (size_t off = 0; off < size;) {
		ssize_t n = write(in, data + off, size - off);
		if (n <= 0)
			fuzz_fail("write", "memfd");
		off += (size_t)n;
	}
	lseek(in, 0, SEEK_SET);

	struct extract_stats st;
	struct cdn_err err = {0};
	(void)extract_tar(in, root, &st, &err); /* refusing an input is fine; escaping is not */

	fuzz_check_alone(work_fd, "outer");
	fuzz_check_alone(outer, "root");
	fuzz_check_tree(root, 0);
	close(root);
	if (rmtree_at(outer, "root") < 0)
		fuzz_fail("rmtree", "outer/root");

	/* The same input through the daemon's chdir-free extractor (daiv workspaces), with the
	 * same promises. */
	if (mkdirat(outer, "root", 0700) < 0 || (root = openat(outer, "root", O_RDONLY |
							       O_DIRECTORY | O_CLOEXEC)) < 0)
		fuzz_fail("target directory", "outer/root (at)");
	lseek(in, 0, SEEK_SET);
	(void)extract_tar_at(in, root, NULL, &st, &err);
	fuzz_check_alone(work_fd, "outer");
	fuzz_check_alone(outer, "root");
	fuzz_check_tree(root, 0);
	close(root);
	close(in);
	if (rmtree_at(outer, "root") < 0)
		fuzz_fail("rmtree", "outer/root (at)");
	close(outer);
	return 0;
}

#ifndef FUZZ_WITH_LIBFUZZER
/* The replay driver of CI: every file of the corpus directory (argv[1], default the committed
 * one) through the target, one line each; abort() on a broken invariant fails the program. */
#include "replay.h"
#endif
