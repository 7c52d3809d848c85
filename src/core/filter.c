/* The seccomp deny list of SECURITY.md layer 7, compiled with libseccomp in the parent and
 * loaded raw in the child. Every rule has its reason beside it; the general idea: a uid-0
 * process in its own user namespace holds (until the capability drop) or can regain (via a
 * fresh user namespace) capabilities over kernel code written for real root, so anything the
 * namespaces do not isolate, or that gives a new way into the kernel, is denied. */
#include "filter.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

struct deny {
	const char *name;
	bool optional; /* may be unknown on some architectures: skipped then, not an error */
};

/* Killed whatever their arguments. */
static const struct deny deny_always[] = {
	{ "mount", false },             /* the mount tree is final once pivot_root is done */
	{ "umount2", false },           /* would uncover what the masking mounts hide (/proc) */
	{ "pivot_root", false },        /* the root is final */
	{ "move_mount", false },        /* new mount API: same power as mount */
	{ "open_tree", false },         /* clones mount trees: same power as mount */
	{ "fsopen", false },            /* new superblocks: filesystem parsers as attack surface */
	{ "fsconfig", false },          /* configures fsopen/fspick superblocks */
	{ "fsmount", false },           /* turns an fsopen superblock into a mount */
	{ "fspick", false },            /* reconfigures live superblocks (remount read-write) */
	{ "mount_setattr", false },     /* would clear rdonly/nosuid/noexec of sandbox mounts */
	{ "unshare", false },           /* a new user ns regains every capability inside it */
	{ "setns", false },             /* joining other namespaces, through inherited fds */
	{ "ptrace", false },            /* PID 1 (cordon's init) runs unfiltered: no injection */
	{ "process_vm_readv", false },  /* reads another process's memory: ptrace by the back */
	{ "process_vm_writev", false }, /* writes another process's memory: ditto */
	{ "keyctl", false },            /* keyrings are not namespaced: shared per host uid */
	{ "add_key", false },           /* ditto */
	{ "request_key", false },       /* ditto, and upcalls into host userspace */
	{ "bpf", false },               /* verifier and JIT: a long list of kernel exploits */
	{ "perf_event_open", false },   /* side channels, host-wide events, many CVEs */
	{ "userfaultfd", false },       /* stalls kernel page faults: makes kernel races winnable */
	{ "kexec_load", false },        /* replaces the running kernel */
	{ "kexec_file_load", true },    /* ditto */
	{ "init_module", false },       /* kernel code: modules are host-global */
	{ "finit_module", false },      /* ditto */
	{ "delete_module", false },     /* ditto */
	{ "io_uring_setup", false },    /* io_uring ops bypass seccomp; frequent kernel CVEs */
	{ "io_uring_enter", false },    /* ditto */
	{ "io_uring_register", false }, /* ditto */
	{ "settimeofday", false },      /* the wall clock is host-global */
	{ "clock_settime", false },     /* ditto */
	{ "clock_adjtime", false },     /* ditto (slews the host clock) */
	{ "adjtimex", false },          /* ditto */
	{ "swapon", false },            /* host memory management */
	{ "swapoff", false },           /* ditto */
	{ "reboot", false },            /* the host, or the pid namespace: no business either way */
	{ "acct", false },              /* process accounting writes host-wide records */
	{ "quotactl", false },          /* quotas of host filesystems */
	{ "quotactl_fd", false },       /* ditto */
	{ "open_by_handle_at", false }, /* "shocker": opens inodes past the mount confinement */
	{ "lookup_dcookie", true },     /* leaks host kernel paths (oprofile interface) */
	{ "syslog", false },            /* the kernel log is host-global and leaks addresses */
	{ "iopl", true },               /* raw port I/O */
	{ "ioperm", true },             /* ditto */
	{ "vhangup", false },           /* hangs up the terminal of whoever shares it */
	{ "nfsservctl", true },         /* removed from the kernel: no legitimate caller */
	{ "_sysctl", true },            /* removed binary sysctl: no legitimate caller */
	{ "uselib", true },             /* a.out library loader: dead code in the kernel */
};

/* clone(2) flags that create namespaces, one masked rule each on arg0 (x86_64: flags). */
static const uint64_t clone_new_flags[] = {
	CLONE_NEWNS,     /* a private mount tree in which mount would be allowed again */
	CLONE_NEWCGROUP, /* re-roots the cgroup view */
	CLONE_NEWUTS,    /* nothing to gain, only surface */
	CLONE_NEWIPC,    /* ditto */
	CLONE_NEWUSER,   /* a fresh user ns: full capabilities inside, the root of most escapes */
	CLONE_NEWPID,    /* would hide processes from cordon's init */
	CLONE_NEWNET,    /* CAP_NET_ADMIN over a fresh netns: netfilter exploits */
	CLONE_NEWTIME,   /* shares bits with CSIGNAL, never a valid signal (> 64) */
};

/* Socket families that the sandbox may create: all are namespaced (loopback-only netns). */
static bool af_allowed(int af)
{
	return af == AF_UNIX || af == AF_INET || af == AF_INET6 || af == AF_NETLINK;
}

/* personality(2) values that are not killed, besides the 0xffffffff query (sanitizers ask
 * it): PER_LINUX; PER_LINUX32 (only changes uname's machine, for `linux32` builds); and
 * ADDR_NO_RANDOMIZE, which TSan/MSan and debuggers set to re-exec themselves, and which only
 * weakens the program's own ASLR (the kernel clears it on setuid exec, and no_new_privs
 * makes setuid bits inert anyway). Killed: READ_IMPLIES_EXEC (executable heap and stack),
 * MMAP_PAGE_ZERO (a page at address 0 for null-deref exploits), UNAME26 (CVE-2012-0957),
 * the other compatibility flags and personalities, unused bits. */
#define PERSONA_ALLOWED_BITS ((uint64_t)(PER_LINUX32 | ADDR_NO_RANDOMIZE))
#define PERSONA_TOP_BIT (1ULL << 31)

/* Comparisons of a whole 64-bit argument (libseccomp compares both halves). */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, uint64_t value)
{
	return (struct scmp_arg_cmp){ .arg = arg, .op = op, .datum_a = value };
}
static struct scmp_arg_cmp arg_masked(unsigned arg, uint64_t mask, uint64_t value)
{
	return (struct scmp_arg_cmp){
		.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value
	};
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, bool optional,
		    unsigned n_cmp, const struct scmp_arg_cmp *cmp, struct cdn_err *err)
{
	/* Negative: unknown, or a libseccomp pseudo-number for a call this arch lacks. */
	int nr = seccomp_syscall_resolve_name(name);
	if (nr < 0) {
		if (optional)
			return 0;
		return err_set(err, ENOSYS, "seccomp: resolving system call \"%s\"", name);
	}
	/* _exact: fail rather than let libseccomp rewrite the rule (e.g. into socketcall). */
	int r = seccomp_rule_add_exact_array(ctx, action, nr, n_cmp, cmp);
	if (r < 0)
		return err_set(err, -r, "seccomp: adding rule for \"%s\"", name);
	return 0;
}

static int kill1(scmp_filter_ctx ctx, const char *name, struct scmp_arg_cmp cmp,
		 struct cdn_err *err)
{
	return add_rule(ctx, SCMP_ACT_KILL_PROCESS, name, false, 1, &cmp, err);
}

/* socket/socketpair: kill every family but the namespaced ones. The kernel reads an int, but
 * the compare is on all 64 bits: junk in the upper half makes the value >= AF_MAX, killed. */
static int add_socket_family_rules(scmp_filter_ctx ctx, const char *name, struct cdn_err *err)
{
	int r;
	for (int af = 0; af < AF_MAX; af++) {
		if (af_allowed(af))
			continue;
		r = kill1(ctx, name, arg_cmp(0, SCMP_CMP_EQ, (uint64_t)af), err);
		if (r < 0)
			return r;
	}
	/* Families newer than our headers: unknown to this policy, so denied. */
	return kill1(ctx, name, arg_cmp(0, SCMP_CMP_GE, AF_MAX), err);
}

static int add_rules(scmp_filter_ctx ctx, struct cdn_err *err)
{
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(deny_always); i++) {
		r = add_rule(ctx, SCMP_ACT_KILL_PROCESS, deny_always[i].name,
			     deny_always[i].optional, 0, NULL, err);
		if (r < 0)
			return r;
	}

	for (size_t i = 0; i < ARRAY_SIZE(clone_new_flags); i++) {
		uint64_t f = clone_new_flags[i];
		r = kill1(ctx, "clone", arg_masked(0, f, f), err);
		if (r < 0)
			return r;
	}
	/* clone3 passes its flags in memory, which BPF cannot read: fail it so that glibc (fork,
	 * pthread_create, posix_spawn) falls back to clone, whose flags the rules above see. */
	r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", false, 0, NULL, err);
	if (r < 0)
		return r;

	r = add_socket_family_rules(ctx, "socket", err);
	if (r < 0)
		return r;
	r = add_socket_family_rules(ctx, "socketpair", err);
	if (r < 0)
		return r;
	/* Raw IP sockets and SOCK_PACKET (which AF_INET maps to AF_PACKET) forge packets and
	 * sniff; the type is the low 4 bits, SOCK_CLOEXEC/SOCK_NONBLOCK are ORed above them.
	 * AF_NETLINK is exempt: glibc's getaddrinfo(AI_ADDRCONFIG) and getifaddrs open
	 * NETLINK_ROUTE as SOCK_RAW, which is a message socket, not a raw packet one. Spelled
	 * per family with EQ: libseccomp 2.5.4 mis-merges an "a0 != AF_NETLINK" rule with the
	 * family rules above (it then killed every type >= SOCK_RAW; unit-tested). */
	static const int raw_families[] = { AF_UNIX, AF_INET, AF_INET6 };
	static const int raw_types[] = { SOCK_RAW, SOCK_PACKET };
	for (size_t i = 0; i < ARRAY_SIZE(raw_families); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(raw_types); j++) {
			struct scmp_arg_cmp cmp[2] = {
				arg_cmp(0, SCMP_CMP_EQ, (uint64_t)raw_families[i]),
				arg_masked(1, 0xf, (uint64_t)raw_types[j]),
			};
			r = add_rule(ctx, SCMP_ACT_KILL_PROCESS, "socket", false, 2, cmp, err);
			if (r < 0)
				return r;
		}
	}

	/* TIOCSTI pushes input into a terminal (CVE-2017-5226: commands typed into the caller's
	 * shell); TIOCLINUX can do the same on a virtual console. The kernel reads cmd as an
	 * unsigned int, so only the low 32 bits are compared. */
	static const unsigned long tty_cmds[] = { TIOCSTI, TIOCLINUX };
	for (size_t i = 0; i < ARRAY_SIZE(tty_cmds); i++) {
		r = kill1(ctx, "ioctl", arg_masked(1, 0xffffffffULL, tty_cmds[i]), err);
		if (r < 0)
			return r;
	}

	/* personality: libseccomp allows one comparison per argument, so "not an allowed value
	 * and not 0xffffffff" is spelled with single-bit masks on the low 32 bits (the kernel
	 * reads an unsigned int). Top bit clear: killed when any bit outside the allowed ones is
	 * set. Top bit set: only 0xffffffff may pass, so killed when any other bit is clear. */
	for (int bit = 0; bit < 31; bit++) {
		uint64_t b = 1ULL << bit;
		if (!(b & PERSONA_ALLOWED_BITS)) {
			r = kill1(ctx, "personality", arg_masked(0, PERSONA_TOP_BIT | b, b), err);
			if (r < 0)
				return r;
		}
		r = kill1(ctx, "personality", arg_masked(0, PERSONA_TOP_BIT | b, PERSONA_TOP_BIT),
			  err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* seccomp_export_bpf only writes to an fd: export into a memfd and read it back. */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *ret_prog, struct cdn_err *err)
{
	_cleanup_close_ int fd = memfd_create("cordon-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno, "seccomp: creating memfd for the filter");
	int r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return err_set(err, -r, "seccomp: exporting the filter");

	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, errno, "seccomp: measuring the exported filter");
	size_t size = (size_t)st.st_size;
	size_t n = size / sizeof(struct sock_filter);
	if (size % sizeof(struct sock_filter) || n == 0 || n > BPF_MAXINSNS)
		return err_set(err, E2BIG, "seccomp: exported filter has a bad size (%zu bytes)",
			       size);

	_cleanup_free_ struct sock_filter *insns = malloc(size);
	if (!insns)
		return err_set(err, ENOMEM, "seccomp: allocating %zu bytes for the filter", size);
	for (size_t off = 0; off < size;) {
		ssize_t got = pread(fd, (char *)insns + off, size - off, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return err_set(err, errno, "seccomp: reading the exported filter");
		if (got == 0)
			return err_set(err, EIO, "seccomp: exported filter is short");
		off += (size_t)got;
	}
	ret_prog->len = (unsigned short)n;
	ret_prog->filter = TAKE_PTR(insns);
	return 0;
}

int filter_build(struct sock_fprog *ret_prog, struct cdn_err *err)
{
	ret_prog->len = 0;
	ret_prog->filter = NULL;

	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return err_set(err, ENOMEM, "seccomp: initializing the filter context");

	/* The context holds the native arch (x86_64) only, so an i386 `int 0x80` call, whose
	 * numbers mean different calls, takes the bad-arch action: kill. libseccomp also sends
	 * x32 numbers (nr | 0x40000000) there when x32 is not in the context (unit-tested). */
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0) {
		r = err_set(err, -r, "seccomp: setting the bad-arch action");
		goto out;
	}
	/* A binary tree of syscall numbers: allowed calls (nearly all) pay O(log n) compares. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r < 0) {
		r = err_set(err, -r, "seccomp: enabling the binary-tree optimization");
		goto out;
	}
	r = add_rules(ctx, err);
	if (r < 0)
		goto out;
	r = export_bpf(ctx, ret_prog, err);
out:
	seccomp_release(ctx);
	return r;
}

void filter_free(struct sock_fprog *prog)
{
	if (!prog)
		return;
	free(prog->filter);
	prog->filter = NULL;
	prog->len = 0;
}

