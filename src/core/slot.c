#include "slot.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "limits.h"

/* Slot locks are global to the host, not per state dir: two cordon processes with different
 * state dirs must still never share a uid or a cgroup name. /run is a tmpfs, so a reboot
 * starts with no locks, as it starts with no sandboxes. */
#define SLOT_DIR "/run/cordon/slots"

static int slot_path(const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, SLOT_DIR "/%s.lock", name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int slot_try_lock_name(const char *name)
{
	char path[4096];
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

int slot_acquire(enum trust_level trust, struct slot *ret, struct cdn_err *err)
{
	const char *dir = SLOT_DIR;
	if ((mkdir("/run/cordon", 0755) < 0 && errno != EEXIST) ||
	    (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return err_set(err, errno, "creating slot directory \"%s\"%s", dir,
			       errno == EACCES ? " (run cordon as root)" : "");

	/* Lowest free slot first: keeps the number of lock files (and uids in use) small. */
	for (unsigned idx = 0; idx < SLOT_MAX; idx++) {
		char name[32];
		snprintf(name, sizeof(name), "%s-%u", trust_name(trust), idx);
		int fd = slot_try_lock_name(name);
		if (fd == -EBUSY)
			continue;
		if (fd == -EACCES || fd == -EPERM)
			return err_set(err, -fd,
				       "sandbox slots in \"%s\" need root (rootless operation is not "
				       "supported yet: run cordon as root)",
				       dir);
		if (fd < 0)
			return err_set(err, -fd, "locking slot \"%s\" in \"%s\"", name, dir);
		ret->lock_fd = fd;
		ret->index = idx;
		ret->trust = trust;
		ret->uid = SLOT_UID_BASE + (unsigned)trust * SLOT_UID_RANGE + idx;
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
