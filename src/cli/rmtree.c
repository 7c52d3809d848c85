/* Removing a directory tree that came from an archive (an image). The tree is full of symlinks
 * pointing anywhere (/etc/alternatives/..., absolute links to host paths): removal works on
 * directory fds only, never follows a symlink and never leaves the tree's filesystem, so it
 * cannot delete anything outside the tree. */
#include "rmtree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each level holds one fd. A deeper directory (a sandbox can nest a workspace as deep as it
 * likes) is moved up beside the tree's root, renamed "<root>.rmtree-deep-N", and removed from
 * there afterwards: any depth goes with bounded fds and stack. */
#define RMTREE_MAX_DEPTH 128

struct rmtree {
	dev_t dev;
	int topfd;        /* the directory holding the tree */
	const char *root; /* the tree's name in topfd */
	unsigned moved;   /* subtrees moved up so far */
};

static int rmtree_dir(struct rmtree *t, int parentfd, const char *name, unsigned depth);

static int rmtree_entry(struct rmtree *t, int parentfd, const char *name, unsigned depth)
{
	if (unlinkat(parentfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	return rmtree_dir(t, parentfd, name, depth + 1);
}

static void rmtree_moved_name(const struct rmtree *t, unsigned n, char *buf, size_t size)
{
	snprintf(buf, size, "%.200s.rmtree-deep-%u", t->root, n);
}

static int rmtree_open(int parentfd, const char *name)
{
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(parentfd, name, flags);
	/* An archive may hold a directory without read or search permission: we own it, so we
	 * may open it up to empty it. */
	if (fd < 0 && errno == EACCES && fchmodat(parentfd, name, 0700, 0) == 0)
		fd = openat(parentfd, name, flags);
	return fd < 0 ? -errno : fd;
}

static int rmtree_dir(struct rmtree *t, int parentfd, const char *name, unsigned depth)
{
	if (depth > RMTREE_MAX_DEPTH) {
		char moved[256];
		rmtree_moved_name(t, t->moved, moved, sizeof(moved));
		if (renameat(parentfd, name, t->topfd, moved) < 0)
			return -errno;
		t->moved++;
		return 0;
	}
	int fd = rmtree_open(parentfd, name);
	if (fd < 0)
		return fd;
	struct stat st;
	/* A mount point inside the tree is someone else's filesystem: leave it alone. */
	if (fstat(fd, &st) < 0 || st.st_dev != t->dev) {
		close(fd);
		return -EXDEV;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int ret = 0;
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(d);
		if (!e) {
			if (errno && !ret)
				ret = -errno;
			break;
		}
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int r = rmtree_entry(t, dirfd(d), e->d_name, depth);
		if (r < 0 && !ret)
			ret = r;
	}
	closedir(d);
	if (!ret && unlinkat(parentfd, name, AT_REMOVEDIR) < 0)
		ret = -errno;
	return ret;
}

int rmtree_at(int parentfd, const char *name)
{
	struct stat st;
	if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parentfd, name, 0) < 0 ? -errno : 0;
	struct rmtree t = {.dev = st.st_dev, .topfd = parentfd, .root = name};
	int r = rmtree_dir(&t, parentfd, name, 0);
	/* What was moved up, in order; removing one may move up more. */
	for (unsigned i = 0; i < t.moved; i++) {
		char moved[256];
		rmtree_moved_name(&t, i, moved, sizeof(moved));
		int rr = rmtree_dir(&t, parentfd, moved, 0);
		if (rr < 0 && r == 0)
			r = rr;
	}
	return r;
}
