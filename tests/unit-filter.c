/* Unit tests of the seccomp filter (filter.c) and Landlock (landlock.c). Each case runs in its
 * own forked child with a 10 s alarm; the parent checks how the child ended. Build (root of
 * the repository):
 *   gcc -D_GNU_SOURCE -Isrc -o build/unit-filter tests/unit-filter.c src/core/filter.c \
 *       src/core/landlock.c src/core/util.c $(pkg-config --cflags --libs libseccomp)
 * To also compare the BPF embedded at build time, `make build/filter-bpf.inc` first and add
 * -DCORDON_FILTER_DEFAULT -Ibuild src/core/filter-default.c to that line.
 * Output is TAP-like; the last line is "N passed, N failed"; exit status 1 on failures. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/filter.h"
#include "core/landlock.h"

#define SKIP 77 /* child exit code: the host lacks what the case needs */

enum expect { ALIVE, SIGSYS_DEATH };
enum layers { L_SECCOMP = 1, L_LANDLOCK = 2, L_NET = 4 /* landlock with net_allowed */ };

static struct sock_fprog prog;
static int abi, n_case, n_pass, n_fail;
static char wdir[64] = "/tmp/cordon-unit-XXXXXX", wfile[128], outside[64];
static uint16_t tcp_port;
static char abstract_name[64];

/* In the child: fail the case with both values when a call does not fail with errno want. */
#define CHECK_ERRNO(call, want)                                                                    \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(call);                                                            \
		int e_ = errno;                                                                    \
		if (r_ != -1 || e_ != (want)) {                                                    \
			printf("#   %s: expected -1 %s, got %ld %s\n", #call,                      \
			       strerrorname_np(want), r_, e_ ? strerrorname_np(e_) : "");          \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)
#define CHECK_OK(call)                                                                             \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(call);                                                            \
		if (r_ < 0) {                                                                      \
			printf("#   %s: expected >= 0, got %ld %s\n", #call, r_,                   \
			       strerrorname_np(errno));                                            \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

/* Run fn in a forked child under the given layers and check how it ended. What the child
 * prints comes back through a pipe and is shown after the verdict (the reason of a skip, the
 * two values of a failed check). */
static void run(const char *name, unsigned layers, enum expect want, void (*fn)(void))
{
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0 || fcntl(out[0], F_SETFL, O_NONBLOCK) < 0) {
		perror("pipe");
		exit(2);
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		alarm(10);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(100);
		if (layers & L_LANDLOCK) {
			const char *w[] = { "/nonexistent-cordon-path", wdir, wfile };
			int r = landlock_apply(w, 3, layers & L_NET);
			if (r < 0) {
				printf("#   landlock_apply: expected 0, got %s\n",
				       strerrorname_np(-r));
				_exit(101);
			}
		}
		if (layers & L_SECCOMP) {
			int r = filter_load(&prog);
			if (r < 0) {
				printf("#   filter_load: expected 0, got %s\n",
				       strerrorname_np(-r));
				_exit(102);
			}
		}
		fn();
		_exit(0);
	}
	close(out[1]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char msg[2048];
	ssize_t n = read(out[0], msg, sizeof(msg) - 1); /* after exit: whatever it wrote */
	msg[n > 0 ? n : 0] = 0;
	close(out[0]);

	n_case++;
	if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP) {
		msg[strcspn(msg, "\n")] = 0;
		printf("ok %d - %s # SKIP %s\n", n_case, name, msg);
		n_pass++;
		return;
	}
	bool ok = want == SIGSYS_DEATH ? WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS
				       : WIFEXITED(st) && WEXITSTATUS(st) == 0;
	printf("%s %d - %s\n%s", ok ? "ok" : "not ok", n_case, name, msg);
	if (ok) {
		n_pass++;
		return;
	}
	n_fail++;
	if (WIFSIGNALED(st))
		printf("#   expected %s, got signal %s\n",
		       want == SIGSYS_DEATH ? "signal SYS" : "exit 0", sigabbrev_np(WTERMSIG(st)));
	else
		printf("#   expected %s, got exit %d\n",
		       want == SIGSYS_DEATH ? "signal SYS" : "exit 0", WEXITSTATUS(st));
}

/* --- seccomp: forbidden (the child must die of SIGSYS before reaching _exit) --- */

/* Arguments chosen to be harmless should a rule be missing (fd -1, a missing mount point). */
static void t_mount(void) { mount("none", "/nonexistent-cordon", "tmpfs", 0, NULL); }
static void t_unshare_user(void) { unshare(CLONE_NEWUSER); }
static void t_clone_newuser(void) { syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); }
static void t_clone_newns(void) { syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0); }
static void t_af_packet(void) { socket(AF_PACKET, SOCK_RAW, 0); }
static void t_raw_inet(void) { socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP); }
static void t_raw_inet6(void) { socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMPV6); }
static void t_packet_inet(void) { socket(AF_INET, SOCK_PACKET, 0); }
static void t_vsock(void) { socket(AF_VSOCK, SOCK_STREAM, 0); }
static void t_af_max(void) { socket(AF_MAX + 3, SOCK_STREAM, 0); }
static void t_af_junk(void) { syscall(SYS_socket, (1UL << 32) | AF_INET, SOCK_STREAM, 0); }
static void t_socketpair_packet(void)
{
	int sv[2];
	socketpair(AF_PACKET, SOCK_DGRAM, 0, sv);
}
static void t_tiocsti(void) { ioctl(-1, TIOCSTI, "x"); }
static void t_tiocsti_junk(void) { syscall(SYS_ioctl, -1, (1UL << 32) | TIOCSTI, "x"); }
static void t_tioclinux(void) { ioctl(-1, TIOCLINUX, "\6"); }
static void t_x32_getpid(void) { syscall(0x40000000 | 39); }
static void t_i386_getpid(void)
{
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
	(void)ret;
}
/* Whether this host runs i386 system calls at all (some VMs fault on int 0x80). */
static bool int80_works(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		dup2(null, STDERR_FILENO); /* a sanitizer build reports the expected SIGSEGV */
		t_i386_getpid();
		_exit(0);
	}
	int st;
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
static void t_persona_exec(void) { personality(READ_IMPLIES_EXEC); }
static void t_persona_zero_page(void) { personality(MMAP_PAGE_ZERO); }
static void t_persona_uname26(void) { personality(UNAME26); }
static void t_persona_top(void) { personality(0xfffffffe); }

/* Calls the policy denies whatever their arguments (SECURITY.md layer 7). */
/* clang-format off */
static const char *const denied[] = {
	"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
	"fsmount", "fspick", "mount_setattr", "unshare", "setns", "ptrace", "process_vm_readv",
	"process_vm_writev", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
	"userfaultfd", "kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module", "io_uring_setup", "io_uring_enter", "io_uring_register", "settimeofday",
	"clock_settime", "clock_adjtime", "adjtimex", "swapon", "swapoff", "reboot", "acct",
	"quotactl", "quotactl_fd", "open_by_handle_at", "lookup_dcookie", "syslog", "iopl",
	"ioperm", "vhangup", "nfsservctl", "_sysctl", "uselib",
};
/* clang-format on */
static long zero_arg_nr; /* each of denied[], called with all-zero arguments */
static void t_zero_arg(void) { syscall(zero_arg_nr, 0, 0, 0, 0, 0, 0); }

/* --- the exported BPF, run in a small classic-BPF interpreter against the policy: covers
 * argument values the live cases cannot (junk upper halves, every bit, i386 where the host
 * lacks int 0x80) and catches libseccomp mis-merging rules --- */

/* Run a seccomp BPF program on d. Knows the instructions libseccomp emits (load of a data
 * word, AND, conditional and plain jumps, return); anything else returns 0xdead, a failure. */
static uint32_t bpf_run(const struct sock_fprog *p, const struct seccomp_data *d)
{
	uint32_t A = 0;
	for (unsigned pc = 0; pc < p->len; pc++) {
		const struct sock_filter *f = &p->filter[pc];
		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			if (f->k > sizeof(*d) - 4 || f->k % 4)
				return 0xdead;
			memcpy(&A, (const char *)d + f->k, 4);
			break;
		case BPF_ALU | BPF_AND | BPF_K: A &= f->k; break;
		case BPF_JMP | BPF_JA: pc += f->k; break;
		case BPF_JMP | BPF_JEQ | BPF_K: pc += A == f->k ? f->jt : f->jf; break;
		case BPF_JMP | BPF_JGT | BPF_K: pc += A > f->k ? f->jt : f->jf; break;
		case BPF_JMP | BPF_JGE | BPF_K: pc += A >= f->k ? f->jt : f->jf; break;
		case BPF_JMP | BPF_JSET | BPF_K: pc += A & f->k ? f->jt : f->jf; break;
		case BPF_RET | BPF_K: return f->k;
		default: return 0xdead;
		}
	}
	return 0xdead;
}

#define KILL SECCOMP_RET_KILL_PROCESS
#define ALLOW SECCOMP_RET_ALLOW

static bool af_ok(uint64_t af)
{
	return af == AF_UNIX || af == AF_INET || af == AF_INET6 || af == AF_NETLINK;
}

/* The policy of SECURITY.md layer 7, written independently of filter.c. */
static uint32_t policy(long nr, const __u64 *a)
{
	uint64_t newns = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
			 CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | 0x80 /* CLONE_NEWTIME */;
	uint32_t lo;
	switch (nr) {
	case SYS_socket:
		if (!af_ok(a[0]))
			return KILL;
		if (a[0] != AF_NETLINK && ((a[1] & 0xf) == SOCK_RAW || (a[1] & 0xf) == SOCK_PACKET))
			return KILL;
		return ALLOW;
	case SYS_socketpair: return af_ok(a[0]) ? ALLOW : KILL;
	case SYS_ioctl: lo = (uint32_t)a[1]; return lo == TIOCSTI || lo == TIOCLINUX ? KILL : ALLOW;
	case SYS_personality:
		lo = (uint32_t)a[0];
		return lo == 0 || lo == 8 || lo == 0x40000 || lo == 0x40008 || lo == 0xffffffff
			       ? ALLOW
			       : KILL;
	case SYS_clone: return a[0] & newns ? KILL : ALLOW;
	case SYS_clone3: return SECCOMP_RET_ERRNO | ENOSYS;
	}
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (seccomp_syscall_resolve_name(denied[i]) == nr)
			return KILL;
	return ALLOW;
}

/* Interesting argument values: small numbers, every single bit, flag-like sums, junk in the
 * upper half, and a fixed pseudo-random spread. */
static size_t arg_values(uint64_t *v, size_t max)
{
	size_t n = 0;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (uint64_t i = 0; i < 64 && n < max; i++)
		v[n++] = i;
	for (int b = 0; b < 64 && n + 3 < max; b++) {
		v[n++] = 1ULL << b;
		v[n++] = (1ULL << b) | SOCK_RAW;
		v[n++] = (1ULL << b) | AF_INET;
	}
	static const uint64_t special[] = {
		0xffffffff,
		~0ULL,
		0xfffffffe,
		0x100000000ULL | AF_INET,
		0x40008,
		0x40000,
		0x80000000,
		TIOCSTI,
		TIOCLINUX,
		0xdeadbeef00000000ULL | TIOCSTI,
		SOCK_RAW | SOCK_CLOEXEC,
		SOCK_PACKET | SOCK_NONBLOCK,
		SOCK_STREAM | SOCK_CLOEXEC,
	};
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]) && n < max; i++)
		v[n++] = special[i];
	while (n < max) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		v[n] = n & 1 ? x : x & 0xffffffff;
		n++;
	}
	return n;
}

static void t_bpf_model(void)
{
	static uint64_t v[400];
	size_t nv = arg_values(v, sizeof(v) / sizeof(v[0])), bad = 0;
	for (long nr = 0; nr < 500; nr++) {
		size_t n0 = nr == SYS_socket ? nv : 40,
		       n1 = nr == SYS_socket || nr == SYS_ioctl ? nv : 1;
		if (nr == SYS_personality || nr == SYS_clone || nr == SYS_socketpair)
			n0 = nv;
		for (size_t i = 0; i < n0; i++) {
			for (size_t j = 0; j < n1; j++) {
				struct seccomp_data d = { .nr = (int)nr,
							  .arch = AUDIT_ARCH_X86_64 };
				d.args[0] = v[i], d.args[1] = v[j];
				uint32_t got = bpf_run(&prog, &d), want = policy(nr, d.args);
				if (got != want && bad++ < 5)
					printf("#   nr %ld args %#llx %#llx: expected %#x, got "
					       "%#x\n",
					       nr, (unsigned long long)v[i],
					       (unsigned long long)v[j], want, got);
			}
		}
	}
	/* Other ABIs: i386 numbers mean other calls; x32 is nr | 0x40000000. */
	struct seccomp_data d = { .nr = 20 /* i386 getpid */, .arch = AUDIT_ARCH_I386 };
	if (bpf_run(&prog, &d) != KILL && bad++ < 5)
		printf("#   i386 getpid: expected KILL_PROCESS, got %#x\n", bpf_run(&prog, &d));
	d = (struct seccomp_data){ .nr = 0x40000000 | SYS_getpid, .arch = AUDIT_ARCH_X86_64 };
	if (bpf_run(&prog, &d) != KILL && bad++ < 5)
		printf("#   x32 getpid: expected KILL_PROCESS, got %#x\n", bpf_run(&prog, &d));
	if (bad)
		_exit(1);
}

/* --- seccomp: allowed --- */

static void t_clone3_enosys(void) { CHECK_ERRNO(syscall(SYS_clone3, NULL, 0), ENOSYS); }
static void t_getpid(void) { CHECK_OK(getpid()); }
static void t_sockets(void)
{
	int sv[2];
	CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0));
	CHECK_OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
	CHECK_OK(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
}
static void t_fork(void)
{
	pid_t pid = fork();
	CHECK_OK(pid);
	if (pid == 0)
		_exit(7);
	int st;
	CHECK_OK(waitpid(pid, &st, 0));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) {
		printf("#   fork child: expected exit 7, got status 0x%x\n", st);
		_exit(1);
	}
}
static void *thread_fn(void *arg) { return arg; }
static void t_pthread(void)
{
	pthread_t t;
	void *ret = NULL;
	int r = pthread_create(&t, NULL, thread_fn, (void *)42);
	if (r != 0) {
		printf("#   pthread_create: expected 0, got %s\n", strerrorname_np(r));
		_exit(1);
	}
	pthread_join(t, &ret);
	if (ret != (void *)42)
		_exit(1);
}
static void t_spawn_true(void)
{
	pid_t pid;
	char *argv[] = { (char *)"true", NULL };
	int r = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, NULL);
	if (r != 0) {
		printf("#   posix_spawn: expected 0, got %s\n", strerrorname_np(r));
		_exit(1);
	}
	int st;
	CHECK_OK(waitpid(pid, &st, 0));
	if (st != 0)
		_exit(1);
}
static void t_persona_ok(void)
{
	CHECK_OK(personality(0xffffffff));
	CHECK_OK(personality(PER_LINUX32));
	CHECK_OK(personality(ADDR_NO_RANDOMIZE));
	CHECK_OK(personality(PER_LINUX32 | ADDR_NO_RANDOMIZE));
	CHECK_OK(personality(PER_LINUX));
}
static void t_ioctl_ok(void)
{
	int n, p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(ioctl(p[0], FIONREAD, &n));
}

/* --- landlock --- */

static void t_ll_write_inside(void)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/made-inside", wdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK_OK(fd);
	CHECK_OK(write(fd, "hello", 5));
	CHECK_OK(mkdir(strcat(path, ".d"), 0700));
	CHECK_OK(rmdir(path));
	CHECK_OK(open(wfile, O_WRONLY | O_CLOEXEC)); /* a writable path that is a file */
}
static void t_ll_write_outside(void)
{
	CHECK_ERRNO(open(outside, O_WRONLY | O_CLOEXEC), EACCES);
	CHECK_ERRNO(open("/var/tmp/cordon-unit-new", O_WRONLY | O_CREAT | O_CLOEXEC, 0600), EACCES);
	CHECK_ERRNO(mkdir("/var/tmp/cordon-unit-dir", 0700), EACCES);
	CHECK_ERRNO(unlink(outside), EACCES);
	CHECK_ERRNO(open("/dev/cordon-unit-new", O_WRONLY | O_CREAT | O_CLOEXEC, 0600), EACCES);
}
static void t_ll_read_exec(void)
{
	CHECK_OK(open(outside, O_RDONLY | O_CLOEXEC));
	CHECK_OK(open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	CHECK_OK(open("/dev/null", O_WRONLY | O_TRUNC | O_CLOEXEC));
	t_spawn_true();
}
static void t_ll_tcp_denied(void)
{
	if (abi < 4) {
		printf("Landlock ABI %d < 4 has no network rules\n", abi);
		_exit(SKIP);
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(tcp_port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_OK(fd);
	CHECK_ERRNO(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), EACCES);
	sa.sin_port = 0;
	CHECK_ERRNO(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), EACCES);
}
static void t_ll_tcp_allowed(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(tcp_port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_OK(fd);
	CHECK_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
}
static void t_ll_scoped(void)
{
	if (abi < 6) {
		printf("Landlock ABI %d < 6 has no scopes\n", abi);
		_exit(SKIP);
	}
	CHECK_ERRNO(kill(getppid(), 0), EPERM);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(abstract_name + 1) + 1;
	memcpy(sa.sun_path, abstract_name, len);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK_OK(fd);
	CHECK_ERRNO(
		connect(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + len),
		EPERM);
}

static int setup_fixtures(void)
{
	if (!mkdtemp(wdir))
		return -errno;
	snprintf(wfile, sizeof(wfile), "%s.file", wdir);
	snprintf(outside, sizeof(outside), "/var/tmp/cordon-unit-XXXXXX");
	int fd = mkstemp(outside);
	if (fd < 0 || close(fd) < 0)
		return -errno;
	fd = open(wfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || close(fd) < 0)
		return -errno;

	/* A TCP listener that a connect would reach without Landlock. */
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 16) < 0 ||
	    getsockname(s, (struct sockaddr *)&sa, &sl) < 0)
		return -errno;
	tcp_port = ntohs(sa.sin_port);

	/* An abstract unix listener outside the child's Landlock domain. */
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	snprintf(abstract_name + 1, sizeof(abstract_name) - 1, "cordon-unit-%d", (int)getpid());
	size_t len = strlen(abstract_name + 1) + 1;
	memcpy(su.sun_path, abstract_name, len);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 ||
	    bind(s, (struct sockaddr *)&su, offsetof(struct sockaddr_un, sun_path) + len) < 0 ||
	    listen(s, 16) < 0)
		return -errno;
	return 0;
}

static void cleanup_fixtures(void)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/made-inside", wdir);
	unlink(path);
	rmdir(wdir);
	unlink(wfile);
	unlink(outside);
}

int main(void)
{
	struct cdn_err err = { 0 };
	setvbuf(stdout, NULL, _IONBF, 0); /* children print, then _exit; keeps order */
	int r = filter_build(&prog, &err);
	if (r < 0) {
		printf("Bail out! filter_build: %s\n", err.msg);
		return 1;
	}
	printf("# filter: %u BPF instructions\n", prog.len);
	r = setup_fixtures();
	if (r < 0) {
		printf("Bail out! fixtures: %s\n", strerror(-r));
		return 1;
	}

	run("seccomp: mount", L_SECCOMP, SIGSYS_DEATH, t_mount);
	run("seccomp: unshare(CLONE_NEWUSER)", L_SECCOMP, SIGSYS_DEATH, t_unshare_user);
	run("seccomp: clone(CLONE_NEWUSER)", L_SECCOMP, SIGSYS_DEATH, t_clone_newuser);
	run("seccomp: clone(CLONE_NEWNS)", L_SECCOMP, SIGSYS_DEATH, t_clone_newns);
	run("seccomp: socket(AF_PACKET)", L_SECCOMP, SIGSYS_DEATH, t_af_packet);
	run("seccomp: socket(AF_INET, SOCK_RAW|SOCK_CLOEXEC)", L_SECCOMP, SIGSYS_DEATH, t_raw_inet);
	run("seccomp: socket(AF_INET6, SOCK_RAW|SOCK_NONBLOCK)", L_SECCOMP, SIGSYS_DEATH,
	    t_raw_inet6);
	run("seccomp: socket(AF_INET, SOCK_PACKET)", L_SECCOMP, SIGSYS_DEATH, t_packet_inet);
	run("seccomp: socket(AF_VSOCK)", L_SECCOMP, SIGSYS_DEATH, t_vsock);
	run("seccomp: socket(AF_MAX + 3)", L_SECCOMP, SIGSYS_DEATH, t_af_max);
	run("seccomp: socket(AF_INET with high junk)", L_SECCOMP, SIGSYS_DEATH, t_af_junk);
	run("seccomp: socketpair(AF_PACKET)", L_SECCOMP, SIGSYS_DEATH, t_socketpair_packet);
	run("seccomp: ioctl(TIOCSTI)", L_SECCOMP, SIGSYS_DEATH, t_tiocsti);
	run("seccomp: ioctl(TIOCSTI with high junk)", L_SECCOMP, SIGSYS_DEATH, t_tiocsti_junk);
	run("seccomp: ioctl(TIOCLINUX)", L_SECCOMP, SIGSYS_DEATH, t_tioclinux);
	run("seccomp: x32 getpid", L_SECCOMP, SIGSYS_DEATH, t_x32_getpid);
	if (int80_works())
		run("seccomp: i386 int 0x80 getpid", L_SECCOMP, SIGSYS_DEATH, t_i386_getpid);
	else
		printf("ok %d - seccomp: i386 int 0x80 getpid # SKIP int 0x80 faults here even "
		       "without a filter (no IA32 emulation); the BPF model covers i386\n",
		       ++n_case),
			n_pass++;
	run("seccomp: personality(READ_IMPLIES_EXEC)", L_SECCOMP, SIGSYS_DEATH, t_persona_exec);
	run("seccomp: personality(MMAP_PAGE_ZERO)", L_SECCOMP, SIGSYS_DEATH, t_persona_zero_page);
	run("seccomp: personality(UNAME26)", L_SECCOMP, SIGSYS_DEATH, t_persona_uname26);
	run("seccomp: personality(0xfffffffe)", L_SECCOMP, SIGSYS_DEATH, t_persona_top);
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "seccomp: %s", denied[i]);
		zero_arg_nr = seccomp_syscall_resolve_name(denied[i]);
		if (zero_arg_nr >= 0)
			run(name, L_SECCOMP, SIGSYS_DEATH, t_zero_arg);
	}
	run("seccomp BPF matches the policy model", 0, ALIVE, t_bpf_model);
#ifdef CORDON_FILTER_DEFAULT
	/* The BPF embedded at build time (filter-default.c) must be what filter_build() makes. */
	struct sock_fprog def;
	filter_default(&def);
	bool same = def.len == prog.len &&
		    !memcmp(def.filter, prog.filter, prog.len * sizeof(prog.filter[0]));
	printf("%s %d - embedded filter_default() equals filter_build()\n", same ? "ok" : "not ok",
	       ++n_case);
	if (!same)
		printf("#   expected %u identical instructions, got %u (stale build?)\n", prog.len,
		       def.len);
	same ? n_pass++ : n_fail++;
#else
	printf("ok %d - embedded filter_default() # SKIP built without -DCORDON_FILTER_DEFAULT\n",
	       ++n_case);
	n_pass++;
#endif
	run("seccomp: clone3 fails ENOSYS", L_SECCOMP, ALIVE, t_clone3_enosys);
	run("seccomp: getpid", L_SECCOMP, ALIVE, t_getpid);
	run("seccomp: inet, inet6, unix, netlink sockets", L_SECCOMP, ALIVE, t_sockets);
	run("seccomp: fork", L_SECCOMP, ALIVE, t_fork);
	run("seccomp: pthread_create (clone3 fallback)", L_SECCOMP, ALIVE, t_pthread);
	run("seccomp: posix_spawn /bin/true", L_SECCOMP, ALIVE, t_spawn_true);
	run("seccomp: personality query, LINUX32, ADDR_NO_RANDOMIZE", L_SECCOMP, ALIVE,
	    t_persona_ok);
	run("seccomp: ioctl(FIONREAD)", L_SECCOMP, ALIVE, t_ioctl_ok);

	abi = landlock_abi();
	printf("# landlock: ABI %d\n", abi);
	if (landlock_abi_mask_fs(1) != 0x1fff || landlock_abi_mask_fs(3) != 0x7fff ||
	    landlock_abi_mask_fs(LANDLOCK_ABI_KNOWN + 5) != 0xffff || landlock_abi_mask_fs(0)) {
		printf("not ok %d - landlock_abi_mask_fs\n", ++n_case);
		n_fail++;
	} else {
		printf("ok %d - landlock_abi_mask_fs\n", ++n_case);
		n_pass++;
	}
	if (abi <= 0) {
		printf("ok %d - landlock # SKIP no Landlock on this kernel (landlock_abi() = %d)\n",
		       ++n_case, abi);
		n_pass++;
	} else {
		run("landlock: write inside writable paths", L_LANDLOCK, ALIVE, t_ll_write_inside);
		run("landlock: write outside denied", L_LANDLOCK, ALIVE, t_ll_write_outside);
		run("landlock: read, exec, /dev/null", L_LANDLOCK, ALIVE, t_ll_read_exec);
		run("landlock: TCP connect/bind denied", L_LANDLOCK, ALIVE, t_ll_tcp_denied);
		run("landlock: TCP connect with network on", L_LANDLOCK | L_NET, ALIVE,
		    t_ll_tcp_allowed);
		run("landlock: signals and abstract sockets scoped", L_LANDLOCK, ALIVE,
		    t_ll_scoped);
		run("landlock+seccomp: write outside denied", L_LANDLOCK | L_SECCOMP, ALIVE,
		    t_ll_write_outside);
		run("landlock+seccomp: mount", L_LANDLOCK | L_SECCOMP, SIGSYS_DEATH, t_mount);
	}

	cleanup_fixtures();
	filter_free(&prog);
	filter_free(&prog);
	printf("1..%d\n%d passed, %d failed\n", n_case, n_pass, n_fail);
	return n_fail ? 1 : 0;
}
