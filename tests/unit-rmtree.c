/* Unit tests of rmtree_at() (src/cli/rmtree.c): trees deeper than one walk's fd budget (a
 * sandbox can nest a workspace at will) go completely; symlinks are removed, never followed.
 * Each test is its own process; asserts print both values. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#include "cli/rmtree.h"


static char base[64];
static int basefd;

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/cordon-unit-rmtree.XXXXXX");
	if (!mkdtemp(base))
		exit(2);
	basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (basefd < 0 || mkdirat(basefd, "tree", 0755) < 0)
		exit(2);
}

static int count_entries(int dirfd)
{
	int n = 0;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fdopendir(fd);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* 3,000 levels: far past the walk's depth bound; everything goes, nothing is left beside. */
static void test_very_deep_tree(void)
{
	setup();
	int fd = openat(basefd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < 3000; i++) {
		if (mkdirat(fd, "d", 0755) < 0)
			exit(2);
		int f = openat(fd, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (f >= 0)
			close(f);
		int n = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = n;
	}
	close(fd);
	ASSERT_EQ_I(rmtree_at(basefd, "tree"), 0);
	ASSERT_EQ_I(count_entries(basefd), 0);
	rmdir(base);
}

/* A symlink to a directory outside is removed as a link; its target keeps its files. */
static void test_symlink_not_followed(void)
{
	setup();
	ASSERT_EQ_I(mkdirat(basefd, "outside", 0755), 0);
	int f = openat(basefd, "outside/keep", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ASSERT_EQ_I(f >= 0, 1);
	close(f);
	char target[128];
	snprintf(target, sizeof(target), "%s/outside", base);
	ASSERT_EQ_I(symlinkat(target, basefd, "tree/link"), 0);
	ASSERT_EQ_I(rmtree_at(basefd, "tree"), 0);
	ASSERT_EQ_I(faccessat(basefd, "outside/keep", F_OK, 0), 0);
	ASSERT_EQ_I(faccessat(basefd, "tree", F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT, 1);
	ASSERT_EQ_I(rmtree_at(basefd, "outside"), 0);
	rmdir(base);
}

static const struct tap_test tests[] = {
	{"a tree 3000 levels deep is removed completely", test_very_deep_tree},
	{"symlinks are removed, not followed", test_symlink_not_followed},
};

TAP_MAIN(tests, 60)
