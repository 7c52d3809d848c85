/* Landlock ruleset of SECURITY.md layer 8, built and applied in the child with raw system
 * calls. The policy is allow-listed: read and execute everywhere, write to existing device
 * files, full access only under the writable paths; the kernel denies the rest. */
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* The same numbers on every architecture (the unified syscall table of Linux 5.13). */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif

/* ABI 1 rights are all in every <linux/landlock.h>; later ones are defined here when the
 * installed header predates them (values from the kernel's uapi header). */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13) /* ABI 2 */
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0) /* ABI 4 */
#endif
#ifndef LANDLOCK_ACCESS_NET_CONNECT_TCP
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1) /* ABI 4 */
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1) /* ABI 6 */
#endif
/* ABI 7 adds only audit-logging flags of landlock_restrict_self: no new rights to handle. */

/* ABI 1: EXECUTE (bit 0) through MAKE_SYM (bit 12). */
#define ACCESS_FS_V1 ((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)

/* Rights that apply to a file itself; the others only make sense on a directory, and the
 * kernel rejects them (EINVAL) in a rule whose parent_fd is not a directory. */
#define ACCESS_FS_FILE                                                                       \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                          \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                          \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* Granted under "/": the image is read-only anyway; this is what a program needs to run. */
#define ACCESS_FS_READ_EXEC                                                                  \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_EXECUTE)

/* The kernel's struct landlock_ruleset_attr as of ABI 6; the installed header may only have
 * the first field. The kernel takes any prefix that ends after handled_access_fs. */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

int landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (v < 0) {
		if (errno == ENOSYS || errno == EOPNOTSUPP)
			return 0;
		return -errno;
	}
	return (int)v;
}

uint64_t landlock_abi_mask_fs(int abi)
{
	if (abi <= 0)
		return 0;
	uint64_t mask = ACCESS_FS_V1;
	if (abi >= 2)
		mask |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		mask |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		mask |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return mask;
}

/* Grant access (already limited to the handled rights) beneath path. A missing path is not
 * an error: a writable path whose mount was not asked for simply gets no rule. */
static int add_path_rule(int ruleset_fd, const char *path, uint64_t access)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;

	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		access &= ACCESS_FS_FILE;
	if (access == 0)
		return 0;

	struct landlock_path_beneath_attr rule = {
		.allowed_access = access,
		.parent_fd = fd,
	};
	if (syscall(SYS_landlock_add_rule, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
		return -errno;
	return 0;
}

int landlock_apply(const char *const *writable, size_t n_writable, bool net_allowed)
{
	if (n_writable && !writable)
		return -EINVAL;

	int abi = landlock_abi();
	if (abi < 0)
		return abi;
	if (abi == 0)
		return -EOPNOTSUPP;
	if (abi > LANDLOCK_ABI_KNOWN)
		abi = LANDLOCK_ABI_KNOWN;

	uint64_t fs = landlock_abi_mask_fs(abi);
	struct ruleset_attr attr = { .handled_access_fs = fs };
	size_t attr_size = offsetof(struct ruleset_attr, handled_access_net);
	if (abi >= 4) {
		/* Handled with no net rule at all: every TCP bind and connect is denied. With
		 * network on, not handled, so the netns and egress policy alone decide. */
		if (!net_allowed)
			attr.handled_access_net =
				LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
		attr_size = offsetof(struct ruleset_attr, scoped);
	}
	if (abi >= 6) {
		/* The netns already hides the host's abstract sockets; the scope also cuts off
		 * cordon's init and anything else outside the domain, for sockets and signals. */
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}

	_cleanup_close_ int ruleset_fd =
		(int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset_fd < 0)
		return -errno;

	int r = add_path_rule(ruleset_fd, "/", ACCESS_FS_READ_EXEC & fs);
	if (r < 0)
		return r;
	/* Opening /dev/null, /dev/tty... for writing; creating, truncating (device files are
	 * never truncated anyway) and device ioctls stay denied. */
	r = add_path_rule(ruleset_fd, "/dev", LANDLOCK_ACCESS_FS_WRITE_FILE);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_writable; i++) {
		r = add_path_rule(ruleset_fd, writable[i], fs);
		if (r < 0)
			return r;
	}

	/* flags 0: on ABI 7 this keeps the kernel's default audit logging of denials. */
	if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) < 0)
		return -errno;
	return 0;
}
