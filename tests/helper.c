/* cordon-test-helper: the attacker. One static program with subcommands that the integration
 * suite runs inside a sandbox (`cordon run --ro HELPER:/helper -- /helper SUBCMD ...`) to try
 * the things SECURITY.md says must be contained, and to drive the limits (crun tests/init.c).
 *
 * Convention (every subcommand):
 *   exit 0  the action SUCCEEDED (for a hostile action: the forbidden thing happened);
 *           the line printed starts with "ok "
 *   exit 1  the action was refused or failed; the line starts with "denied " or "failed " and
 *           ends with the errno name, e.g. "denied mount: EPERM (Operation not permitted)"
 *   exit 2  usage error (unknown subcommand, bad argument)
 * Informational subcommands (whoami, ls-fds, env, echo, cat, ls, ...) exit 0 when they could
 * read what they print. A subcommand killed by the sandbox (seccomp SIGSYS, OOM SIGKILL,
 * SIGXFSZ) prints nothing after the fatal call: the test reads the verdict from cordon.
 * Output is one short line unless the subcommand prints data (cat, env, flood, stdin-cat).
 *
 * Built with -static so it runs in any image, even one without a libc. Plain C, no libraries. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/kexec.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_BLUETOOTH
#define AF_BLUETOOTH 31
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

#define MiB (1024UL * 1024UL)

/* Every subcommand has the same signature; many ignore their arguments. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

static const char *errname(int e)
{
	switch (e) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
	E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV)
	E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG)
	E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENOSYS) E(ENOTEMPTY)
	E(ELOOP) E(ENOKEY) E(ENOTSOCK) E(EDESTADDRREQ) E(EPROTOTYPE) E(ENOPROTOOPT)
	E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EAFNOSUPPORT) E(EADDRINUSE)
	E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ECONNRESET) E(ETIMEDOUT)
	E(ECONNREFUSED) E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS) E(EDQUOT) E(EKEYREJECTED)
	E(EOVERFLOW) E(ENOTCONN) E(ENODATA) E(ENOTBLK)
#undef E
	default: return "E?";
	}
}

/* "ok WHAT" and exit 0. */
__attribute__((format(printf, 1, 2), noreturn)) static void ok(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ok ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	exit(0);
}

/* "denied WHAT: ENAME (text)" and exit 1; e is the errno. */
__attribute__((format(printf, 2, 3), noreturn)) static void denied(int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("denied ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s (%s)\n", errname(e), strerror(e));
	fflush(stdout);
	exit(1);
}

/* A non-hostile action failed: "failed WHAT: ENAME (text)", exit 1. */
__attribute__((format(printf, 2, 3), noreturn)) static void failed(int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("failed ", stdout);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s (%s)\n", errname(e), strerror(e));
	fflush(stdout);
	exit(1);
}

__attribute__((noreturn)) static void usage(const char *msg)
{
	fprintf(stderr, "usage: %s\n", msg);
	exit(2);
}

/* Sizes: 123, 4K, 16M, 1G. */
static unsigned long long parse_size(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		usage("bad size");
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		usage("bad size");
	return v;
}

static long parse_long(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (errno || end == s || *end)
		usage("bad number");
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static long long now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- limits ---------------------------------------------------------------------------- */

static int cmd_memhog(int argc, char **argv)
{
	if (argc < 2)
		usage("memhog SIZE [--slow]");
	unsigned long long size = parse_size(argv[1]);
	int slow = argc > 2 && !strcmp(argv[2], "--slow");
	unsigned long long done = 0;
	long page = sysconf(_SC_PAGESIZE);
	while (done < size) {
		size_t chunk = MiB;
		char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			failed(errno, "memhog after %llu MiB", done / MiB);
		for (size_t i = 0; i < chunk; i += (size_t)page)
			p[i] = (char)(i + 1);
		done += chunk;
		if (slow)
			sleep_ms(10);
	}
	ok("memhog allocated %llu MiB", done / MiB);
}

/* Children pause so they keep holding their pid; the parent dies of the first refused fork,
 * which is what API.md calls "fork refused by the pids limit and the program died of it". */
static int cmd_forkbomb(int argc, char **argv)
{
	long n = 0;
	for (;;) {
		pid_t p = fork();
		if (p < 0)
			failed(errno, "forkbomb fork after %ld children", n);
		if (p == 0) {
			for (;;)
				pause();
		}
		if (++n >= 1000000)
			ok("forkbomb forked %ld children", n);
	}
}

static int cmd_spin(int argc, char **argv)
{
	long procs = argc > 1 ? parse_long(argv[1]) : 1;
	for (long i = 1; i < procs; i++)
		if (fork() == 0)
			break;
	for (volatile unsigned long x = 0;; x++)
		;
	return 0;
}

static int cmd_sleep(int argc, char **argv)
{
	if (argc < 2)
		usage("sleep SECS");
	double s = strtod(argv[1], NULL);
	sleep_ms((long)(s * 1000));
	ok("slept %s s", argv[1]);
}

static int cmd_flood(int argc, char **argv)
{
	if (argc < 2)
		usage("flood BYTES [--stderr]");
	unsigned long long total = parse_size(argv[1]), done = 0;
	int fd = argc > 2 && !strcmp(argv[2], "--stderr") ? 2 : 1;
	static char buf[65536];
	memset(buf, 'x', sizeof(buf));
	while (done < total) {
		size_t n = total - done < sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			fprintf(stderr, "\nfailed flood after %llu bytes: %s\n", done, errname(e));
			exit(1);
		}
		done += (unsigned long long)w;
	}
	exit(0);
}

static int cmd_cpu_then_exit(int argc, char **argv)
{
	if (argc < 2)
		usage("cpu-then-exit MS");
	long long until = parse_long(argv[1]) * 1000000LL;
	while (now_ns(CLOCK_PROCESS_CPUTIME_ID) < until)
		;
	ok("spun %s ms of cpu", argv[1]);
}

static void *thread_sleep(void *arg)
{
	for (;;)
		pause();
	return arg;
}

static int cmd_threads(int argc, char **argv)
{
	if (argc < 2)
		usage("threads N");
	long n = parse_long(argv[1]);
	for (long i = 0; i < n; i++) {
		pthread_t t;
		int e = pthread_create(&t, NULL, thread_sleep, NULL);
		if (e)
			failed(e, "threads create after %ld threads", i);
	}
	ok("threads created %ld", n);
}

static int cmd_fd_exhaust(int argc, char **argv)
{
	long n = 0;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd < 0)
			failed(errno, "fd-exhaust opened %ld fds", n);
		if (++n >= 1000000)
			ok("fd-exhaust opened %ld fds, no limit", n);
	}
}

/* Default SIGXFSZ is kept: a real program dies of it, and cordon must say FILE_LIMIT. */
static int cmd_write(int argc, char **argv)
{
	if (argc < 3)
		usage("write PATH BYTES");
	unsigned long long total = parse_size(argv[2]), done = 0;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		denied(errno, "write open %s", argv[1]);
	static char buf[65536];
	memset(buf, 'w', sizeof(buf));
	while (done < total) {
		size_t n = total - done < sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			denied(errno, "write %s after %llu bytes", argv[1], done);
		}
		done += (unsigned long long)w;
	}
	if (close(fd) < 0)
		denied(errno, "write close %s after %llu bytes", argv[1], done);
	ok("write %s %llu bytes", argv[1], done);
}

static int cmd_fill_inodes(int argc, char **argv)
{
	if (argc < 2)
		usage("fill-inodes DIR");
	char path[PATH_MAX];
	long n;
	for (n = 0; n < 1000000; n++) {
		snprintf(path, sizeof(path), "%s/i%ld", argv[1], n);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			denied(errno, "fill-inodes %s after %ld files", argv[1], n);
		close(fd);
	}
	ok("fill-inodes %s created %ld files, no limit", argv[1], n);
}

/* ---- processes -------------------------------------------------------------------------- */

/* daemon SECS DIR [--keep-stdio]: the classic escape: double fork, setsid, ignore the polite
 * signals, then after SECS write DIR/marker. DIR/started is written at once as a positive
 * control (proves DIR is writable from the sandbox). */
static int cmd_daemon(int argc, char **argv)
{
	if (argc < 3)
		usage("daemon SECS DIR [--keep-stdio]");
	long secs = parse_long(argv[1]);
	const char *dir = argv[2];
	int keep = argc > 3 && !strcmp(argv[3], "--keep-stdio");
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/started", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		failed(errno, "daemon write %s", path);
	close(fd);

	pid_t p = fork();
	if (p < 0)
		failed(errno, "daemon fork");
	if (p == 0) {
		setsid();
		pid_t q = fork();
		if (q != 0)
			_exit(q < 0);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		if (!keep) {
			int nul = open("/dev/null", O_RDWR);
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
		}
		sleep_ms(secs * 1000);
		snprintf(path, sizeof(path), "%s/marker", dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
		if (fd >= 0) {
			write_all(fd, "alive\n", 6);
			close(fd);
		}
		_exit(0);
	}
	int st;
	waitpid(p, &st, 0);
	ok("daemon spawned, marker in %ld s", secs);
}

/* kill-all [UIDFILE GOFILE]: kill(-1, SIGKILL). With files: first write the host uid the
 * sandbox runs as to UIDFILE and wait (up to 30 s) for GOFILE, so the test can start a host
 * process with that very uid, which only the pid namespace protects. */
static unsigned long host_uid(void)
{
	FILE *f = fopen("/proc/self/uid_map", "re");
	unsigned long in = 0, out = (unsigned long)-1, cnt = 0;
	if (f) {
		if (fscanf(f, "%lu %lu %lu", &in, &out, &cnt) != 3)
			out = (unsigned long)-1;
		fclose(f);
	}
	return out;
}

static int cmd_kill_all(int argc, char **argv)
{
	if (argc > 2) {
		int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0)
			failed(errno, "kill-all write %s", argv[1]);
		dprintf(fd, "%lu\n", host_uid());
		close(fd);
		for (int i = 0; i < 3000 && access(argv[2], F_OK) < 0; i++)
			sleep_ms(10);
	}
	if (kill(-1, SIGKILL) < 0)
		denied(errno, "kill -9 -1");
	ok("kill -9 -1");
}

static int cmd_kill_pid(int argc, char **argv)
{
	if (argc < 3)
		usage("kill-pid PID SIG");
	if (kill((pid_t)parse_long(argv[1]), (int)parse_long(argv[2])) < 0)
		denied(errno, "kill %s", argv[1]);
	ok("kill %s", argv[1]);
}

static int cmd_zombies(int argc, char **argv)
{
	if (argc < 2)
		usage("zombies N [SECS]");
	long n = parse_long(argv[1]);
	long stay_ms = argc > 2 ? (long)(strtod(argv[2], NULL) * 1000) : 500;
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0)
			failed(errno, "zombies fork after %ld", i);
		if (p == 0)
			_exit(0);
	}
	sleep_ms(stay_ms);
	ok("zombies created %ld, not reaped", n);
}

static int cmd_exit(int argc, char **argv)
{
	if (argc < 2)
		usage("exit N");
	fflush(stdout);
	exit((int)parse_long(argv[1]));
}

static int cmd_kill_self(int argc, char **argv)
{
	if (argc < 2)
		usage("kill-self SIG");
	int sig = (int)parse_long(argv[1]);
	signal(sig, SIG_DFL);
	struct rlimit rl = {0, 0};
	setrlimit(RLIMIT_CORE, &rl);
	fflush(stdout);
	kill(getpid(), sig);
	sleep_ms(1000);
	failed(0, "kill-self %d survived", sig);
}

/* ---- privileged syscalls ------------------------------------------------------------------ */

static int do_clone_newuser(void)
{
	long r = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, 0);
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r < 0 ? -1 : 0;
}

static int do_clone3(void)
{
	struct clone_args ca;
	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_NEWUSER;
	ca.exit_signal = SIGCHLD;
	long r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, 0);
	return r < 0 ? -1 : 0;
}

static int do_setns(void)
{
	int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	/* Even when no ns file opens, make the call (fd -1) so the filter sees it. */
	return (int)syscall(SYS_setns, fd, 0);
}

static int do_ptrace_pid1(void)
{
	/* SEIZE does not stop the tracee; our exit detaches. */
	return (int)ptrace(PTRACE_SEIZE, 1, NULL, NULL);
}

static int do_bpf(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	return (int)syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
}

static int do_io_uring(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	return (int)syscall(SYS_io_uring_setup, 4, &p);
}

static int do_perf(void)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_SOFTWARE;
	a.size = sizeof(a);
	a.config = PERF_COUNT_SW_CPU_CLOCK;
	a.disabled = 1;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

static int do_init_module(void)
{
	static char image[64] = "\177ELF not a module";
	return (int)syscall(SYS_init_module, image, sizeof(image), "");
}

static int do_finit_module(void)
{
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	return (int)syscall(SYS_finit_module, fd, "", 0);
}

/* Setting the clock to what it already is: harmless even where it succeeds. */
static int do_settimeofday(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int)syscall(SYS_settimeofday, &tv, NULL);
}

static int do_clock_settime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int)syscall(SYS_clock_settime, CLOCK_REALTIME, &ts);
}

static int do_reboot(void)
{
	/* CAD_OFF: the least harmful command; in a child pid namespace it is EINVAL anyway. */
	return (int)syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
			    LINUX_REBOOT_CMD_CAD_OFF, NULL);
}

static int do_personality(void)
{
	/* A real change (READ_IMPLIES_EXEC makes every readable mapping executable); success
	 * means the persona changed. */
	long r = syscall(SYS_personality, READ_IMPLIES_EXEC);
	if (r < 0)
		return -1;
	long now = syscall(SYS_personality, 0xffffffffUL);
	return (now & READ_IMPLIES_EXEC) ? 0 : (errno = EPERM, -1);
}

static int do_x32_getpid(void)
{
	return (int)syscall(__X32_SYSCALL_BIT | SYS_getpid);
}

/* The i386 ABI from a 64-bit process: getpid is 20 there. A filter that forgets to check the
 * architecture lets the 32-bit numbering through. */
static void int80_fault(int sig)
{
	/* No IA32 emulation in this kernel: int 0x80 is a general protection fault, not a
	 * syscall, so nothing reached the kernel's syscall table (or the filter). */
	static const char msg[] = "denied int80-getpid: ENOSYS (no IA32 emulation: SIGSEGV)\n";
	write_all(1, msg, sizeof(msg) - 1);
	_exit(1);
}

static int do_int80_getpid(void)
{
	long r;
	signal(SIGSEGV, int80_fault);
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory", "cc", "r8", "r9", "r10", "r11");
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return 0;
}

static int do_open_by_handle_at(void)
{
	/* "shocker": needs CAP_DAC_READ_SEARCH in the initial namespace. A bogus handle: any
	 * answer but a file descriptor is a refusal. */
	struct {
		unsigned int handle_bytes;
		int handle_type;
		unsigned char f_handle[8];
	} h = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
	return (int)syscall(SYS_open_by_handle_at, AT_FDCWD, &h, O_RDONLY);
}

struct trial {
	const char *name;
	int (*fn)(void);
};

#define T(n, expr) static int try_##n(void) { return (int)(expr); }
T(mount, syscall(SYS_mount, "none", "/tmp", "tmpfs", 0UL, NULL))
T(umount, syscall(SYS_umount2, "/proc", MNT_DETACH))
T(unshare_user, syscall(SYS_unshare, CLONE_NEWUSER))
T(unshare_net, syscall(SYS_unshare, CLONE_NEWNET))
T(unshare_mnt, syscall(SYS_unshare, CLONE_NEWNS))
T(pivot_root, syscall(SYS_pivot_root, "/tmp", "/tmp"))
T(keyctl, syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0))
T(add_key, syscall(SYS_add_key, "user", "cordon-test", "x", 1, KEY_SPEC_PROCESS_KEYRING))
T(request_key, syscall(SYS_request_key, "user", "cordon-test", NULL, 0))
T(userfaultfd, syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY))
T(delete_module, syscall(SYS_delete_module, "cordon_no_such_module", O_NONBLOCK))
T(swapon, syscall(SYS_swapon, "/tmp/cordon-no-swap", 0))
T(acct, syscall(SYS_acct, NULL))
T(kexec_load, syscall(SYS_kexec_load, 0UL, 0UL, NULL, KEXEC_ARCH_DEFAULT))
T(quotactl, syscall(SYS_quotactl, 0, "/dev/null", 0, NULL))
#undef T

static const struct trial trials[] = {
	{"mount", try_mount},
	{"umount", try_umount},
	{"unshare-user", try_unshare_user},
	{"unshare-net", try_unshare_net},
	{"unshare-mnt", try_unshare_mnt},
	{"setns", do_setns},
	{"pivot_root", try_pivot_root},
	{"ptrace-pid1", do_ptrace_pid1},
	{"keyctl", try_keyctl},
	{"add_key", try_add_key},
	{"request_key", try_request_key},
	{"bpf", do_bpf},
	{"io_uring_setup", do_io_uring},
	{"perf_event_open", do_perf},
	{"userfaultfd", try_userfaultfd},
	{"init_module", do_init_module},
	{"finit_module", do_finit_module},
	{"delete_module", try_delete_module},
	{"settimeofday", do_settimeofday},
	{"clock_settime", do_clock_settime},
	{"reboot", do_reboot},
	{"swapon", try_swapon},
	{"acct", try_acct},
	{"kexec_load", try_kexec_load},
	{"quotactl", try_quotactl},
	{"personality", do_personality},
	{"x32-getpid", do_x32_getpid},
	{"int80-getpid", do_int80_getpid},
	{"clone-newuser", do_clone_newuser},
	{"clone3", do_clone3},
	{"open_by_handle_at", do_open_by_handle_at},
};

static int cmd_try_syscall(int argc, char **argv)
{
	if (argc < 2)
		usage("try-syscall NAME");
	for (size_t i = 0; i < sizeof(trials) / sizeof(trials[0]); i++) {
		if (strcmp(argv[1], trials[i].name))
			continue;
		errno = 0;
		if (trials[i].fn() < 0)
			denied(errno, "%s", argv[1]);
		ok("%s", argv[1]);
	}
	usage("try-syscall: unknown syscall name");
}

/* ---- network and ipc ------------------------------------------------------------------------- */

static int cmd_socket(int argc, char **argv)
{
	static const struct {
		const char *name;
		int domain, type, proto;
	} fams[] = {
		{"vsock", AF_VSOCK, SOCK_STREAM, 0},
		{"packet", AF_PACKET, SOCK_RAW, 0x0300 /* htons(ETH_P_ALL) */},
		{"raw", AF_INET, SOCK_RAW, IPPROTO_ICMP},
		{"raw6", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6},
		{"inet", AF_INET, SOCK_STREAM, 0},
		{"inet6", AF_INET6, SOCK_STREAM, 0},
		{"unix", AF_UNIX, SOCK_STREAM, 0},
		{"netlink", AF_NETLINK, SOCK_RAW, 0},
		{"alg", AF_ALG, SOCK_SEQPACKET, 0},
		{"bluetooth", AF_BLUETOOTH, SOCK_RAW, 0},
	};
	if (argc < 2)
		usage("socket FAMILY");
	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		if (strcmp(argv[1], fams[i].name))
			continue;
		int fd = socket(fams[i].domain, fams[i].type | SOCK_CLOEXEC, fams[i].proto);
		if (fd < 0)
			denied(errno, "socket %s", argv[1]);
		ok("socket %s", argv[1]);
	}
	usage("socket: unknown family");
}

/* connect HOST PORT: TCP, bounded by a 5 s poll so the helper never hangs. */
static int cmd_connect(int argc, char **argv)
{
	if (argc < 3)
		usage("connect HOST PORT");
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	int port = (int)parse_long(argv[2]);
	if (inet_pton(AF_INET, argv[1], &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, argv[1], &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		len = sizeof(*s6);
	} else {
		usage("connect: HOST must be a numeric address");
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		denied(errno, "connect %s %d: socket", argv[1], port);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno != EINPROGRESS)
			denied(errno, "connect %s %d", argv[1], port);
		struct pollfd pfd = {fd, POLLOUT, 0};
		int r = poll(&pfd, 1, 5000);
		if (r == 0)
			denied(ETIMEDOUT, "connect %s %d", argv[1], port);
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err)
			denied(err, "connect %s %d", argv[1], port);
	}
	ok("connect %s %d", argv[1], port);
}

/* bind HOST PORT: a TCP listener (Landlock ABI >= 4 denies it when network is off). */
static int cmd_bind(int argc, char **argv)
{
	if (argc < 3)
		usage("bind HOST PORT");
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)parse_long(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1)
		usage("bind: HOST must be a numeric IPv4 address");
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		denied(errno, "bind %s %s: socket", argv[1], argv[2]);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		denied(errno, "bind %s %s", argv[1], argv[2]);
	if (listen(fd, 1) < 0)
		denied(errno, "bind %s %s: listen", argv[1], argv[2]);
	ok("bind %s %s", argv[1], argv[2]);
}

/* connect-unix PATH: "@name" is the abstract name "\0name". */
static int cmd_connect_unix(int argc, char **argv)
{
	if (argc < 2)
		usage("connect-unix PATH|@ABSTRACT");
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	size_t n = strlen(argv[1]);
	if (n >= sizeof(sun.sun_path))
		usage("connect-unix: path too long");
	memcpy(sun.sun_path, argv[1], n);
	if (argv[1][0] == '@')
		sun.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		denied(errno, "connect-unix socket");
	if (connect(fd, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		denied(errno, "connect-unix %s", argv[1]);
	ok("connect-unix %s", argv[1]);
}

static int cmd_shm_attach(int argc, char **argv)
{
	if (argc < 2)
		usage("shm-attach SHMID");
	void *p = shmat((int)parse_long(argv[1]), NULL, SHM_RDONLY);
	if (p == (void *)-1)
		denied(errno, "shm-attach %s", argv[1]);
	ok("shm-attach %s", argv[1]);
}

/* ---- terminal ---------------------------------------------------------------------------------- */

/* Push a command into the terminal's input queue: after the run the user's shell would read
 * it. Tries the controlling terminal and every inherited stdio fd; injects only a harmless
 * marker (no newline), never echoes it. */
static int cmd_tiocsti(int argc, char **argv)
{
	static const char inject[] = "CDNPWN";
	int fds[4], nfd = 0, done = 0, last = ENOTTY;
	int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty >= 0)
		fds[nfd++] = tty;
	else
		last = errno;
	for (int fd = 0; fd <= 2; fd++)
		fds[nfd++] = fd;
	for (int i = 0; i < nfd; i++) {
		int fd_ok = 1;
		for (const char *c = inject; *c; c++)
			if (ioctl(fds[i], TIOCSTI, c) < 0) {
				last = errno;
				fd_ok = 0;
				break;
			}
		done |= fd_ok;
	}
	if (done)
		ok("tiocsti injected");
	denied(last, "tiocsti");
}

/* ---- files ---------------------------------------------------------------------------------------- */

static int cmd_open(int argc, char **argv)
{
	if (argc < 2)
		usage("open PATH [r|w]");
	int w = argc > 2 && argv[2][0] == 'w';
	int fd = open(argv[1], w ? O_WRONLY | O_CREAT | O_CLOEXEC : O_RDONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		denied(errno, "open %s %s", argv[1], w ? "w" : "r");
	if (w && write(fd, "x", 1) != 1)
		denied(errno, "open %s w: write", argv[1]);
	ok("open %s %s", argv[1], w ? "w" : "r");
}

/* read PATH: ok only when at least one byte (or directory entry) came back. */
static int cmd_read(int argc, char **argv)
{
	if (argc < 2)
		usage("read PATH");
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		denied(errno, "read %s", argv[1]);
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		DIR *d = fdopendir(fd);
		struct dirent *de;
		int n = 0;
		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				n++;
		if (!n)
			denied(ENOENT, "read %s: empty directory", argv[1]);
		ok("read %s: directory with %d entries", argv[1], n);
	}
	unsigned char buf[32];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0)
		denied(errno, "read %s", argv[1]);
	if (n == 0)
		denied(ENODATA, "read %s: 0 bytes", argv[1]);
	printf("ok read %s: %zd bytes: ", argv[1], n);
	for (ssize_t i = 0; i < n; i++)
		printf(buf[i] >= 32 && buf[i] < 127 && buf[i] != '\\' ? "%c" : "\\x%02x", buf[i]);
	putchar('\n');
	exit(0);
}

static int cmd_cat(int argc, char **argv)
{
	if (argc < 2)
		usage("cat PATH");
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		denied(errno, "cat %s", argv[1]);
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		write_all(1, buf, (size_t)n);
	if (n < 0)
		denied(errno, "cat %s: read", argv[1]);
	exit(0);
}

/* cat-hex PATH: the whole file as hex on one line, so that nothing in it (a secret, say) is
 * caught by output redaction: the test decodes it. */
static int cmd_cat_hex(int argc, char **argv)
{
	if (argc < 2)
		usage("cat-hex PATH");
	int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		denied(errno, "cat-hex %s", argv[1]);
	unsigned char buf[4096];
	ssize_t n;
	long total = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			printf("%02x", buf[i]);
		total += n;
	}
	if (n < 0)
		denied(errno, "cat-hex %s: read after %ld bytes", argv[1], total);
	putchar('\n');
	exit(0);
}

/* ls DIR: one name per line, then nothing else; a missing dir is "denied ls DIR: ENOENT". */
static int cmd_ls(int argc, char **argv)
{
	if (argc < 2)
		usage("ls DIR");
	DIR *d = opendir(argv[1]);
	if (!d)
		denied(errno, "ls %s", argv[1]);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			printf("%s\n", de->d_name);
	exit(0);
}

/* stat PATH: "ok stat PATH type=chr mode=0666 uid=0 gid=0 rdev=1:3 size=0". */
static int cmd_stat(int argc, char **argv)
{
	if (argc < 2)
		usage("stat PATH");
	struct stat st;
	if (lstat(argv[1], &st) < 0)
		denied(errno, "stat %s", argv[1]);
	const char *t = S_ISREG(st.st_mode) ? "reg" : S_ISDIR(st.st_mode) ? "dir"
		: S_ISLNK(st.st_mode) ? "lnk" : S_ISCHR(st.st_mode) ? "chr"
		: S_ISBLK(st.st_mode) ? "blk" : S_ISFIFO(st.st_mode) ? "fifo" : "sock";
	ok("stat %s type=%s mode=%04o uid=%u gid=%u rdev=%u:%u size=%lld", argv[1], t,
	   (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
	   major(st.st_rdev), minor(st.st_rdev), (long long)st.st_size);
}

/* write-proc-exe: open the binaries behind /proc/self/exe and /proc/1/exe (cordon's init,
 * perhaps the host's cordon binary) for writing, CVE-2019-5736 style. Never writes a byte. */
static int cmd_write_proc_exe(int argc, char **argv)
{
	static const char *const paths[] = {"/proc/self/exe", "/proc/1/exe"};
	int last = 0;
	for (size_t i = 0; i < 2; i++) {
		int fd = open(paths[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			ok("write-proc-exe opened %s for writing", paths[i]);
		last = errno;
		/* The O_PATH reopen trick through /proc/self/fd. */
		fd = open(paths[i], O_PATH | O_CLOEXEC);
		if (fd >= 0) {
			char via[64];
			snprintf(via, sizeof(via), "/proc/self/fd/%d", fd);
			int w = open(via, O_WRONLY | O_CLOEXEC);
			if (w >= 0)
				ok("write-proc-exe reopened %s for writing", paths[i]);
			last = errno;
			close(fd);
		}
	}
	denied(last, "write-proc-exe");
}

/* write-proc-sys: /proc/sys must be read-only. Global sysctls get their current value written
 * back, so even a success changes nothing; hostname gets a new value (it is per-UTS-ns, and
 * the test checks the host's). sysrq-trigger is only opened: a write would act. */
static int cmd_write_proc_sys(int argc, char **argv)
{
	static const char *const rewrite[] = {
		"/proc/sys/kernel/core_pattern", "/proc/sys/vm/panic_on_oom",
		"/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/modprobe",
	};
	char why[1024] = "";
	int last = 0, fd;
#define WHY(path, e) \
	snprintf(why + strlen(why), sizeof(why) - strlen(why), " %s=%s", path, errname(e))
	fd = open("/proc/sys/kernel/hostname", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && write(fd, "cordon-pwned\n", 13) == 13)
		ok("write-proc-sys /proc/sys/kernel/hostname");
	last = errno;
	WHY("hostname", last);
	for (size_t i = 0; i < sizeof(rewrite) / sizeof(rewrite[0]); i++) {
		char cur[512];
		int r = open(rewrite[i], O_RDONLY | O_CLOEXEC);
		ssize_t n = r >= 0 ? read(r, cur, sizeof(cur)) : -1;
		if (r >= 0)
			close(r);
		fd = open(rewrite[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (n > 0 && write(fd, cur, (size_t)n) == n)
				ok("write-proc-sys %s", rewrite[i]);
			close(fd);
		}
		last = errno;
		WHY(strrchr(rewrite[i], '/') + 1, last);
	}
	fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		ok("write-proc-sys opened /proc/sysrq-trigger for writing");
	last = errno;
	WHY("sysrq-trigger", last);
#undef WHY
	denied(last, "write-proc-sys:%s; last", why);
}

static int cmd_write_fd(int argc, char **argv)
{
	if (argc < 2)
		usage("write-fd N");
	int fd = (int)parse_long(argv[1]);
	if (write(fd, "pwned\n", 6) != 6)
		denied(errno, "write-fd %d", fd);
	ok("write-fd %d", fd);
}

/* ---- introspection ------------------------------------------------------------------------------------ */

static int cmd_ls_fds(int argc, char **argv)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		failed(errno, "ls-fds opendir /proc/self/fd");
	int self = dirfd(d);
	int fds[4096], n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < 4096) {
		if (de->d_name[0] == '.')
			continue;
		int fd = atoi(de->d_name);
		if (fd != self)
			fds[n++] = fd;
	}
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];
			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	printf("fds:");
	for (int i = 0; i < n; i++)
		printf(" %d", fds[i]);
	putchar('\n');
	exit(0);
}

/* whoami [SECS]: one line of identity, then optionally stay SECS (concurrency tests). */
static int cmd_whoami(int argc, char **argv)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		failed(errno, "whoami open /proc/self/status");
	char line[512], out[2048] = "";
	static const char *const keys[] = {"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:",
					   "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:",
					   "Seccomp:"};
	while (fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			size_t kl = strlen(keys[i]);
			if (strncmp(line, keys[i], kl))
				continue;
			char *v = line + kl;
			v[strcspn(v, "\n")] = 0;
			for (char *p = v; *p; p++)
				if (*p == '\t')
					*p = ' ';
			while (*v == ' ')
				v++;
			char key[32];
			snprintf(key, sizeof(key), "%.*s", (int)kl - 1, keys[i]);
			for (char *p = v; *p; p++)
				if (*p == ' ')
					*p = ',';
			size_t used = strlen(out);
			snprintf(out + used, sizeof(out) - used, "%s=%s ", key, v);
		}
	}
	fclose(f);
	printf("%shostuid=%lu pid=%d\n", out, host_uid(), (int)getpid());
	fflush(stdout);
	if (argc > 1)
		sleep_ms((long)(strtod(argv[1], NULL) * 1000));
	exit(0);
}

static int cmd_hostname(int argc, char **argv)
{
	struct utsname u;
	if (uname(&u) < 0)
		failed(errno, "hostname");
	printf("%s\n", u.nodename);
	exit(0);
}

static int cmd_pwd(int argc, char **argv)
{
	char buf[PATH_MAX];
	if (!getcwd(buf, sizeof(buf)))
		failed(errno, "pwd");
	printf("%s\n", buf);
	exit(0);
}

static int cmd_env(int argc, char **argv)
{
	extern char **environ;
	for (char **e = environ; *e; e++)
		printf("%s\n", *e);
	exit(0);
}

static int cmd_printenv(int argc, char **argv)
{
	if (argc < 2)
		usage("printenv NAME");
	const char *v = getenv(argv[1]);
	if (!v)
		failed(ENOENT, "printenv %s", argv[1]);
	printf("%s\n", v);
	exit(0);
}

static int cmd_echo(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		printf("%s%s", i > 1 ? " " : "", argv[i]);
	putchar('\n');
	exit(0);
}

/* print-split A B MS [--stderr]: write A, wait MS, write B (two separate write calls). */
static int cmd_print_split(int argc, char **argv)
{
	if (argc < 4)
		usage("print-split A B MS [--stderr]");
	int fd = argc > 4 && !strcmp(argv[4], "--stderr") ? 2 : 1;
	write_all(fd, argv[1], strlen(argv[1]));
	sleep_ms(parse_long(argv[3]));
	write_all(fd, argv[2], strlen(argv[2]));
	exit(0);
}

static int cmd_stdin_cat(int argc, char **argv)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(0, buf, sizeof(buf))) > 0)
		write_all(1, buf, (size_t)n);
	exit(n < 0);
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} cmds[] = {
	{"memhog", cmd_memhog}, {"forkbomb", cmd_forkbomb}, {"spin", cmd_spin},
	{"sleep", cmd_sleep}, {"flood", cmd_flood}, {"cpu-then-exit", cmd_cpu_then_exit},
	{"threads", cmd_threads}, {"fd-exhaust", cmd_fd_exhaust}, {"write", cmd_write},
	{"fill-inodes", cmd_fill_inodes}, {"daemon", cmd_daemon}, {"kill-all", cmd_kill_all},
	{"kill-pid", cmd_kill_pid}, {"zombies", cmd_zombies}, {"exit", cmd_exit},
	{"kill-self", cmd_kill_self}, {"try-syscall", cmd_try_syscall}, {"socket", cmd_socket},
	{"connect", cmd_connect}, {"bind", cmd_bind}, {"cat-hex", cmd_cat_hex},
	{"connect-unix", cmd_connect_unix},
	{"shm-attach", cmd_shm_attach}, {"tiocsti", cmd_tiocsti}, {"open", cmd_open},
	{"read", cmd_read}, {"cat", cmd_cat}, {"ls", cmd_ls}, {"stat", cmd_stat},
	{"write-proc-exe", cmd_write_proc_exe}, {"write-proc-sys", cmd_write_proc_sys},
	{"write-fd", cmd_write_fd}, {"ls-fds", cmd_ls_fds}, {"whoami", cmd_whoami},
	{"hostname", cmd_hostname}, {"pwd", cmd_pwd}, {"env", cmd_env},
	{"printenv", cmd_printenv}, {"echo", cmd_echo}, {"print-split", cmd_print_split},
	{"stdin-cat", cmd_stdin_cat},
};

int main(int argc, char **argv)
{
	if (argc < 2)
		usage("cordon-test-helper SUBCOMMAND [ARG...]");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	usage("unknown subcommand");
}
