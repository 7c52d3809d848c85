/* handover_tree(): an fd-based recursive chown (handover.h). Runs in the supervisor before
 * the clone (to the sandbox uid) and after the sandbox is gone (back), so no process of the
 * sandbox can race the walk; the O_NOFOLLOW discipline still holds against a tree prepared by
 * an earlier hostile run. */
#include "handover.h"

#include <dirent.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct handover {
	uid_t uid;
	gid_t gid;
	dev_t dev;
	bool giving;          /* to a sandbox uid (not back to ourselves) */
	unsigned long entries;
	int first_err;        /* the walk goes on past errors: as much as possible changes */
	struct cdn_err *err;
};

static void handover_err(struct handover *h, int e, const char *what, const char *name)
{
	if (h->first_err)
		return;
	h->first_err = -e;
	err_set(h->err, e, "handing over %s\"%s\"", what, name);
}

static void handover_dir(struct handover *h, int dirfd, int depth)
{
	if (depth > HANDOVER_MAX_DEPTH) {
		handover_err(h, ELOOP, "a workspace deeper than the limit ", "");
		return;
	}
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		handover_err(h, errno, "a directory ", "");
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (++h->entries > HANDOVER_MAX_ENTRIES) {
			handover_err(h, E2BIG, "a workspace with too many entries ", "");
			break;
		}
		struct stat st;
		if (fstatat(dirfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				handover_err(h, errno, "", n);
			continue;
		}
		if (st.st_dev != h->dev)
			continue; /* a mount point inside: not ours to change */
		/* A second name of an inode may be a host file hard-linked in from outside (a host
		 * tool, protected_hardlinks off): giving it away would give the host file. */
		if (h->giving && !S_ISDIR(st.st_mode) && st.st_nlink > 1)
			continue;
		if (fchownat(dirfd, n, h->uid, h->gid, AT_SYMLINK_NOFOLLOW) < 0) {
			handover_err(h, errno, "", n);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				handover_err(h, errno, "", n);
				continue;
			}
			handover_dir(h, sub, depth + 1);
			close(sub);
		}
	}
	if (errno != 0)
		handover_err(h, errno, "a directory ", "");
	closedir(d);
}

int handover_tree(const char *path, uid_t uid, gid_t gid, struct cdn_err *err)
{
	if (path[0] != '/' || !path[1])
		return err_set(err, EINVAL, "handing over \"%s\": not an absolute path below /",
			       path);
	/* O_PATH: a FIFO or device given as the tree is neither opened nor blocked on. */
	_cleanup_close_ int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "handing over \"%s\"", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "handing over \"%s\"", path);
	if (S_ISLNK(st.st_mode)) /* O_PATH|O_NOFOLLOW opened the link itself */
		return err_set(err, ELOOP, "handing over \"%s\": a symlink", path);
	bool giving = uid != geteuid();
	if (giving && !S_ISDIR(st.st_mode) && st.st_nlink > 1)
		return err_set(err, EMLINK, "handing over \"%s\": it has other names", path);
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		return err_set(err, errno, "handing over \"%s\"", path);
	if (!S_ISDIR(st.st_mode))
		return 0;
	_cleanup_close_ int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(err, errno, "handing over \"%s\"", path);
	struct handover h = {.uid = uid, .gid = gid, .dev = st.st_dev, .giving = giving,
			     .err = err};
	handover_dir(&h, dfd, 0);
	return h.first_err;
}
