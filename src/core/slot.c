#include "slot.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "limits.h"

/* As root, slot locks are global to the host, not per state dir: two cordon processes with
 * different state dirs must still never share a uid or a cgroup name. /run is a tmpfs, so a
 * reboot starts with no locks, as it starts with no sandboxes. */
#define SLOT_DIR_ROOT "/run/cordon/slots"

static char slot_dir[PATH_MAX] = SLOT_DIR_ROOT;
static bool slot_rootless;

int slot_init(bool rootless, const char *state_dir, struct cdn_err *err)
{
	slot_rootless = rootless;
	if (!rootless) {
		snprintf(slot_dir, sizeof(slot_dir), "%s", SLOT_DIR_ROOT);
		return 0;
	}
	/* Rootless: the caller cannot write /run/cordon. Its state dir is private to it (0700,
	 * its own), so nobody else can plant or hold its locks. The locks then only order the
	 * runs that use this state dir: runs of one user that share a delegated cgroup must share
	 * the state dir too (the default one does). */
	if (!state_dir || state_dir[0] != '/')
		return err_set(err, EINVAL, "rootless runs keep their slot locks in the state dir, "
					    "which must be an absolute path");
	int n = snprintf(slot_dir, sizeof(slot_dir), "%s/slots", state_dir);
	if (n < 0 || (size_t)n >= sizeof(slot_dir))
		return err_set(err, ENAMETOOLONG, "slot directory below \"%s\"", state_dir);
	return 0;
}

static int slot_path(const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s.lock", slot_dir, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int slot_try_lock_name(const char *name)
{
	char path[PATH_MAX + 64];
	int r = slot_path(name, path, sizeof(path));
	if (r < 0)
		return r;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int slot_make_dir(struct cdn_err *err)
{
	if (!slot_rootless && mkdir("/run/cordon", 0755) < 0 && errno != EEXIST)
		return err_set(err, errno, "creating slot directory \"%s\"", slot_dir);
	if (mkdir(slot_dir, 0700) < 0 && errno != EEXIST)
		return err_set(err, errno, "creating slot directory \"%s\"", slot_dir);
	struct stat st;
	/* A symlink or a directory of someone else there would hand our locks to them. */
	if (lstat(slot_dir, &st) < 0)
		return err_set(err, errno, "slot directory \"%s\"", slot_dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return err_set(err, EPERM,
			       "slot directory \"%s\" must be a directory of uid %u writable by it "
			       "alone",
			       slot_dir, (unsigned)geteuid());
	return 0;
}

int slot_acquire(enum trust_level trust, struct slot *ret, struct cdn_err *err)
{
	int r = slot_make_dir(err);
	if (r < 0)
		return r;

	/* Lowest free slot first: keeps the number of lock files (and uids in use) small. */
	for (unsigned idx = 0; idx < SLOT_MAX; idx++) {
		char name[32];
		snprintf(name, sizeof(name), "%s-%u", trust_name(trust), idx);
		int fd = slot_try_lock_name(name);
		if (fd == -EBUSY)
			continue;
		if (fd < 0)
			return err_set(err, -fd, "locking slot \"%s\" in \"%s\"", name, slot_dir);
		ret->lock_fd = fd;
		ret->index = idx;
		ret->trust = trust;
		/* Rootless: the caller's own uid is the only one it may map (see slot.h). */
		ret->uid = slot_rootless ? geteuid()
					 : SLOT_UID_BASE + (unsigned)trust * SLOT_UID_RANGE + idx;
		memcpy(ret->name, name, sizeof(name));
		return 0;
	}
	return err_set(err, EAGAIN, "all %u sandbox slots of level %s are in use", SLOT_MAX,
		       trust_name(trust));
}

void slot_release(struct slot *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
}
