/* cordon-enosys: run a command as if the kernel lacked some system calls.
 *
 *   cordon-enosys [--errno=ENOSYS|EPERM] SYSCALL[,SYSCALL...] -- COMMAND [ARG...]
 *
 * Installs a seccomp filter that makes each named system call fail with ENOSYS (what an old
 * kernel returns; EPERM is what a container runtime's seccomp profile often returns instead),
 * then execs COMMAND. The filter is inherited by everything COMMAND starts, across fork and
 * execve, and cannot be removed: cordon's supervisor, its sandbox's init and the sandboxed
 * program all see the same "old kernel". The test suite runs cordon under this to exercise its
 * fallbacks for newer interfaces (crun tests its no-openat2 path the same way).
 *
 * Written with hand BPF so that the tool is static and has no dependency. x86_64 only: on
 * another architecture it refuses rather than install a filter that checks nothing. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "cordon-enosys knows the system call numbers of x86_64 only"
#endif

/* x86_64 numbers of the interfaces cordon has fallbacks or refusals for. Spelled out rather
 * than taken from <sys/syscall.h>, whose age decides which of them it knows. */
static const struct {
	const char *name;
	int nr;
} known[] = {
	{"pidfd_send_signal", 424},
	{"io_uring_setup", 425},
	{"open_tree", 428},
	{"move_mount", 429},
	{"fsopen", 430},
	{"fsconfig", 431},
	{"fsmount", 432},
	{"fspick", 433},
	{"pidfd_open", 434},
	{"clone3", 435},
	{"close_range", 436},
	{"openat2", 437},
	{"pidfd_getfd", 438},
	{"faccessat2", 439},
	{"mount_setattr", 442},
	{"landlock_create_ruleset", 444},
	{"landlock_add_rule", 445},
	{"landlock_restrict_self", 446},
	{"memfd_secret", 447},
	{"statx", 332},
	{"seccomp", 317},
};

#define MAX_BLOCKED 64

static int lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(known[i].name, name))
			return known[i].nr;
	return -1;
}

static void usage(void)
{
	fputs("usage: cordon-enosys [--errno=ENOSYS|EPERM] SYSCALL[,SYSCALL...] -- COMMAND "
	      "[ARG...]\n",
	      stderr);
	exit(125);
}

int main(int argc, char **argv)
{
	int err = ENOSYS, i = 1;
	if (i < argc && !strncmp(argv[i], "--errno=", 8)) {
		if (!strcmp(argv[i] + 8, "ENOSYS"))
			err = ENOSYS;
		else if (!strcmp(argv[i] + 8, "EPERM"))
			err = EPERM;
		else
			usage();
		i++;
	}
	if (i + 2 >= argc || strcmp(argv[i + 1], "--"))
		usage();

	int nrs[MAX_BLOCKED];
	size_t n = 0;
	char list[4096];
	if (strlen(argv[i]) >= sizeof(list))
		usage();
	memcpy(list, argv[i], strlen(argv[i]) + 1);
	for (char *p = list; p && *p;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = 0;
		int nr = lookup(p);
		if (nr < 0) {
			fprintf(stderr, "cordon-enosys: unknown system call \"%s\"\n", p);
			return 125;
		}
		if (n == MAX_BLOCKED)
			usage();
		nrs[n++] = nr;
		p = comma ? comma + 1 : NULL;
	}

	/* arch check, load nr, one JEQ per blocked call, allow. A foreign ABI (i386 via int 0x80,
	 * x32) passes untouched: cordon itself only makes native calls. */
	struct sock_filter code[4 + 2 * MAX_BLOCKED + 1];
	size_t k = 0;
	code[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, arch));
	code[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	code[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, nr));
	for (size_t j = 0; j < n; j++) {
		code[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[j],
							 0, 1);
		code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
							 SECCOMP_RET_ERRNO | (unsigned)err);
	}
	code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = (unsigned short)k, .filter = code};

	/* Root may install a filter without no_new_privs, and must: cordon relies on setuid-free
	 * privilege it already has, and a sandbox test may check that no_new_privs is cordon's
	 * doing. Anyone else needs no_new_privs first. */
	if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		perror("cordon-enosys: prctl(PR_SET_NO_NEW_PRIVS)");
		return 125;
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
		perror("cordon-enosys: seccomp");
		return 125;
	}
	execvp(argv[i + 2], argv + i + 2);
	fprintf(stderr, "cordon-enosys: running \"%s\": %s\n", argv[i + 2], strerror(errno));
	return 127;
}
