/* handover_tree(): an fd-based recursive chown (handover.h). Runs in the supervisor before
 * the clone (to the sandbox uid) and after the sandbox is gone (back), so no process of the
 * sandbox can race the walk; the O_NOFOLLOW discipline still holds against a tree prepared by
 * an earlier hostile run. */
#include "handover.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct handover {
	uid_t uid;
	gid_t gid;
	dev_t dev;
	unsigned long entries;
	struct cdn_err *err;
};

static int handover_dir(struct handover *h, int dirfd, int depth)
{
	if (depth > HANDOVER_MAX_DEPTH)
		return err_set(h->err, ELOOP, "handing over a workspace: deeper than %d levels",
			       HANDOVER_MAX_DEPTH);
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return err_set(h->err, e, "handing over a workspace: reading a directory");
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (++h->entries > HANDOVER_MAX_ENTRIES) {
			r = err_set(h->err, E2BIG, "handing over a workspace: over %d entries",
				    HANDOVER_MAX_ENTRIES);
			break;
		}
		struct stat st;
		if (fstatat(dirfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			r = err_set(h->err, errno, "handing over \"%s\"", n);
			break;
		}
		if (st.st_dev != h->dev)
			continue; /* a mount point inside: not ours to change */
		if (fchownat(dirfd, n, h->uid, h->gid, AT_SYMLINK_NOFOLLOW) < 0) {
			r = err_set(h->err, errno, "handing over \"%s\"", n);
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				r = err_set(h->err, errno, "handing over \"%s\"", n);
				break;
			}
			r = handover_dir(h, sub, depth + 1);
			close(sub);
		}
	}
	if (r == 0 && errno != 0)
		r = err_set(h->err, errno, "handing over a workspace: reading a directory");
	closedir(d);
	return r;
}

int handover_tree(const char *path, uid_t uid, gid_t gid, struct cdn_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "handing over \"%s\"", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "handing over \"%s\"", path);
	if (fchown(fd, uid, gid) < 0)
		return err_set(err, errno, "handing over \"%s\"", path);
	if (!S_ISDIR(st.st_mode))
		return 0;
	struct handover h = {.uid = uid, .gid = gid, .dev = st.st_dev, .err = err};
	return handover_dir(&h, fd, 0);
}
