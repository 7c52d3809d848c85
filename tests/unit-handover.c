/* Unit tests of handover_tree() (src/core/handover.c): the recursive chown of a workspace to
 * a sandbox's uid and back. A hostile tree (symlinks to host files, a setuid file, a FIFO) must
 * not make it touch anything outside. Each test is its own process; asserts print both values. */
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

#include "core/handover.h"


#define UID 1999999001u

static char root[64];

static void mk(const char *rel, int kind)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	int r = 0;
	if (kind == 'd')
		r = mkdir(p, 0755);
	else if (kind == 'f') {
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		r = fd < 0 ? -1 : close(fd);
	} else if (kind == 's') {
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0755);
		r = fd < 0 ? -1 : close(fd);
		if (r == 0)
			r = chmod(p, 04755);
	} else if (kind == 'p')
		r = mkfifo(p, 0644);
	if (r < 0) {
		perror(p);
		exit(2);
	}
}

static void link_to(const char *rel, const char *target)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (symlink(target, p) < 0)
		exit(2);
}

static struct stat lst(const char *rel)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (lstat(p, &st) < 0) {
		perror(p);
		exit(1);
	}
	return st;
}

static void make_tree(void)
{
	snprintf(root, sizeof(root), "/tmp/cordon-unit-handover.XXXXXX");
	if (!mkdtemp(root))
		exit(2);
	mk("a", 'd');
	mk("a/b", 'd');
	mk("a/b/file", 'f');
	mk("top", 'f');
	mk("suid", 's');
	mk("fifo", 'p');
	link_to("passwd", "/etc/passwd");
	link_to("a/etc", "/etc");
	link_to("a/up", "..");
}

static void remove_tree(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		exit(2);
}

static void test_gives_every_entry(void)
{
	make_tree();
	struct stat host_passwd, host_etc;
	ASSERT_EQ_I(stat("/etc/passwd", &host_passwd), 0);
	ASSERT_EQ_I(stat("/etc", &host_etc), 0);
	struct cdn_err err = {0};
	ASSERT_EQ_I(handover_tree(root, UID, UID, &err), 0);
	const char *all[] = {".", "a", "a/b", "a/b/file", "top", "suid", "fifo", "passwd",
			     "a/etc", "a/up"};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct stat st = lst(all[i]);
		ASSERT_EQ_I(st.st_uid, UID);
		ASSERT_EQ_I(st.st_gid, UID);
	}
	/* Symlinks were changed themselves, never their targets. */
	struct stat p2, e2;
	ASSERT_EQ_I(stat("/etc/passwd", &p2), 0);
	ASSERT_EQ_I(stat("/etc", &e2), 0);
	ASSERT_EQ_I(p2.st_uid, host_passwd.st_uid);
	ASSERT_EQ_I(e2.st_uid, host_etc.st_uid);
	ASSERT_EQ_I(p2.st_ctime, host_passwd.st_ctime);
	/* chown cleared the setuid bit: the sandbox gets no setuid file of ours. */
	ASSERT_EQ_I(lst("suid").st_mode & 07000, 0);
	ASSERT_EQ_I(handover_tree(root, 0, 0, &err), 0);
	ASSERT_EQ_I(lst("a/b/file").st_uid, 0);
	ASSERT_EQ_I(lst("a/up").st_uid, 0);
	remove_tree();
}

static void test_single_file(void)
{
	make_tree();
	char p[256];
	snprintf(p, sizeof(p), "%s/top", root);
	struct cdn_err err = {0};
	ASSERT_EQ_I(handover_tree(p, UID, UID, &err), 0);
	ASSERT_EQ_I(lst("top").st_uid, UID);
	ASSERT_EQ_I(lst("a").st_uid, 0);
	remove_tree();
}

static void test_symlink_root_refused(void)
{
	make_tree();
	char p[256];
	snprintf(p, sizeof(p), "%s/a/etc", root);
	struct cdn_err err = {0};
	/* The tree itself given as a symlink: refused (O_NOFOLLOW), /etc untouched. */
	ASSERT_EQ_I(handover_tree(p, UID, UID, &err) < 0, 1);
	struct stat st;
	ASSERT_EQ_I(stat("/etc", &st), 0);
	ASSERT_EQ_I(st.st_uid == UID, 0);
	remove_tree();
}

/* Giving: a file with a second name (a host file hard-linked in) keeps its owner. */
static void test_hardlink_not_given(void)
{
	make_tree();
	char outside[128], inside[128];
	snprintf(outside, sizeof(outside), "%s.host-file", root);
	snprintf(inside, sizeof(inside), "%s/hostlink", root);
	int fd = open(outside, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ASSERT_EQ_I(fd >= 0, 1);
	close(fd);
	ASSERT_EQ_I(link(outside, inside), 0);
	struct cdn_err err = {0};
	ASSERT_EQ_I(handover_tree(root, UID, UID, &err), 0);
	struct stat st;
	ASSERT_EQ_I(stat(outside, &st), 0);
	ASSERT_EQ_I(st.st_uid, 0);
	ASSERT_EQ_I(lst("a/b/file").st_uid, UID);
	unlink(outside);
	remove_tree();
}

/* Past the depth bound the walk goes on elsewhere: the rest of the tree still changes. */
static void test_depth_bound(void)
{
	make_tree();
	char rel[4096] = "a";
	for (int i = 0; i < HANDOVER_MAX_DEPTH + 2; i++) {
		size_t n = strlen(rel);
		if (n + 3 >= sizeof(rel))
			break;
		memcpy(rel + n, "/d", 3);
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", root, rel);
		if (mkdir(p, 0755) < 0)
			exit(2);
	}
	struct cdn_err err = {0};
	ASSERT_EQ_I(handover_tree(root, UID, UID, &err), -ELOOP);
	ASSERT_EQ_I(lst("top").st_uid, UID);
	ASSERT_EQ_I(lst("a/b/file").st_uid, UID);
	remove_tree();
}

static const struct tap_test tests[] = {
	{"every entry changes owner, no symlink target does, setuid cleared", test_gives_every_entry},
	{"a single file", test_single_file},
	{"a symlink as the tree is refused", test_symlink_root_refused},
	{"a hard-linked file is not given away", test_hardlink_not_given},
	{"depth is bounded, the walk goes on past it", test_depth_bound},
};

int main(void)
{
	if (geteuid() != 0) {
		printf("1..0\n# skipped: chown needs root\n0 passed, 0 failed\n");
		return 0;
	}
	return tap_run(tests, sizeof(tests) / sizeof(tests[0]), 30);
}
