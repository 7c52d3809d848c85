/* sandbox_run(): the supervisor side of a sandbox.
 *
 * Theory of operation. Three kinds of process take part in a run:
 *
 *   supervisor (this code; host root, host namespaces, single-threaded: the `cordon` CLI or the
 *     daemon's spawner process — never a threaded process)
 *     | clone3(NEWUSER|NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS [|NEWCGROUP|INTO_CGROUP on v2])
 *     v
 *   init (child.c; PID 1 of the sandbox, uid 0 of its user namespace = the slot's unprivileged
 *     host uid, all capabilities in that namespace only, non-dumpable)
 *     | fork, one per step (compile, run)
 *     v
 *   program (no capabilities, no_new_privs, Landlock, seccomp, new session, fds 0-2 only)
 *
 * Pipes, all created here before the clone, all O_CLOEXEC:
 *   go      supervisor -> init: 'G' once ids are mapped and the cgroup joined, 'N' per step
 *   report  init -> supervisor: struct child_msg (setup failure, exec'd, exec failed, exited)
 *   stdout/stderr, one pair per step: program -> supervisor, read with a byte cap
 *
 * The supervisor waits in one epoll loop on: init's pidfd, the report pipe, the output pipes,
 * a wall-clock timerfd (armed at execve) and a CPU timerfd whose next expiry is the earliest
 * moment the cgroup could reach its CPU limit (remaining budget / CPUs), so limits are enforced
 * within a scheduler tick without polling. A kill is SIGKILL to init: the kernel then kills
 * every process of the pid namespace. The cgroup is removed afterwards; nothing of the run is
 * left on the host: its mounts lived in its own mount namespace, its scratch space in a tmpfs
 * there. The slot lock (slot.c) lets the next run clean up after a supervisor killed by -9. */
#include "sandbox.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "child.h"
#include "filter.h"
#include "handover.h"
#include "landlock.h"
#include "redact.h"
#include "slot.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* How long init may take from clone to the first execve before we call it a failure. */
#define SETUP_TIMEOUT_MS 30000

static int cancel_pipe[2] = {-1, -1};
/* Set by sandbox_cancel() even before the pipe exists, so an early cancel is not lost. */
static volatile sig_atomic_t cancel_requested;

static const char *const code_names[SBX__COUNT] = {
	[SBX_OK] = NULL,
	[SBX_TIMEOUT] = "SANDBOX_TIMEOUT",
	[SBX_CPU_LIMIT] = "SANDBOX_CPU_LIMIT",
	[SBX_MEMORY_LIMIT] = "SANDBOX_MEMORY_LIMIT",
	[SBX_PROCESS_LIMIT] = "SANDBOX_PROCESS_LIMIT",
	[SBX_OUTPUT_LIMIT] = "SANDBOX_OUTPUT_LIMIT",
	[SBX_FILE_LIMIT] = "SANDBOX_FILE_LIMIT",
	[SBX_NETWORK_BLOCKED] = "SANDBOX_NETWORK_BLOCKED",
	[SBX_SECURITY_VIOLATION] = "SANDBOX_SECURITY_VIOLATION",
	[SBX_COMPILE_ERROR] = "SANDBOX_COMPILE_ERROR",
	[SBX_RUNTIME_ERROR] = "SANDBOX_RUNTIME_ERROR",
	[SBX_CANCELLED] = "SANDBOX_CANCELLED",
	[SBX_INTERNAL] = "SANDBOX_INTERNAL",
};

const char *sbx_code_name(enum sbx_code code)
{
	return code < SBX__COUNT ? code_names[code] : "SANDBOX_INTERNAL";
}

void sandbox_cancel(void)
{
	cancel_requested = 1;
	if (cancel_pipe[1] >= 0) {
		char c = 'c';
		ssize_t n = write(cancel_pipe[1], &c, 1);
		(void)n;
	}
}

/* Per-process state built once: the seccomp program, the cgroup backend, host facts. */
struct host_state {
	bool ready;
	struct sock_fprog filter;
	const struct cg_ops *cg;
	bool rootless;          /* not root: own uid only, delegated v2 cgroup or none */
	int landlock_abi;
	int cap_last;
	long ncpu;
};
static struct host_state host;

/* The cgroup backend: as root the host's (cg_detect); rootless only the v2 backend inside a
 * cgroup delegated to the caller, else a refusal that names the fix (fail closed). */
static int host_cgroup(struct cdn_err *err)
{
	if (host.cg)
		return 0;
	if (!host.rootless)
		return cg_detect(&host.cg, err);
	int r = cg_deleg_detect(err);
	if (r < 0)
		return r;
	host.cg = &cg_v2_ops;
	return 0;
}

static int host_init(bool need_cgroup, struct cdn_err *err)
{
	host.rootless = geteuid() != 0;
	if (need_cgroup) {
		int r = host_cgroup(err);
		if (r < 0)
			return r;
	}
	if (host.ready)
		return 0;
	filter_default(&host.filter);
	host.landlock_abi = landlock_abi();
	char buf[32];
	uint64_t v = 40;
	if (read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", buf, sizeof(buf)) > 0) {
		buf[strcspn(buf, "\n")] = 0;
		parse_u64(buf, &v);
	}
	host.cap_last = (int)v;
	host.ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (host.ncpu < 1)
		host.ncpu = 1;
	if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return err_set(err, errno, "creating the cancel pipe");
	host.ready = true;
	return 0;
}

int sandbox_sweep(const char *state_dir, struct cdn_err *err)
{
	int r = host_init(true, err);
	if (r >= 0)
		r = slot_init(host.rootless, state_dir, err);
	if (r < 0)
		return r;
	if (!host.rootless)
		return host.cg->sweep(err);
	r = cg_deleg_enter(err);
	if (r >= 0)
		r = host.cg->sweep(err);
	cg_deleg_leave();
	return r;
}

/* ---- one run ---- */

struct run;

struct stream {
	int fd;                 /* read end, -1 once at EOF */
	int step;
	enum sbx_stream which;
	struct redactor red;
	struct run *run;
};

struct run {
	const struct sbx_spec *spec;
	struct sbx_result *res;
	struct cg cg;
	bool have_cg;
	bool need_attach;        /* v2 without clone3: move init into the cgroup after clone */
	struct slot slot;
	int pidfd, go_w, rep_r, ep, tfd_wall, tfd_cpu;
	pid_t pid;
	struct stream streams[SBX_MAX_STEPS * 2];
	size_t n_streams;
	int cur;                 /* step in progress */
	bool exec_seen;          /* current step exec'd */
	bool step_exited;        /* current step's MSG_EXIT arrived */
	bool init_gone;
	enum sbx_code kill_code; /* why we killed the sandbox; SBX_OK if we did not */
	uint64_t kept;           /* output bytes kept for the current step */
	uint64_t t_start, t_clone, t_exec, t_end;
	uint64_t cpu_base, oom_base, pids_base, pids_peak_sampled, mem_peak_sampled;
	uint64_t reaped_cpu_base; /* no cgroup: init's reaped CPU time when the step began */
	bool failed_setup;
	struct child_msg fail_msg, exit_msg;
	bool exec_failed;
	int32_t exec_err;
	int notif_fd[SBX_MAX_STEPS]; /* seccomp listeners: exit_group of each program process */
	size_t n_given;          /* binds (the first n with .give) handed to the sandbox's uid */
	size_t n_notif;
	bool nofile_full;        /* a process exited with its fd table full (RLIMIT_NOFILE) */
};

/* epoll tags: which source an event came from. */
enum { TAG_PIDFD = 1, TAG_REPORT, TAG_WALL, TAG_CPU, TAG_CANCEL, TAG_CONTROL, TAG_NOTIF,
       TAG_STREAM = 16 };

static int watch(struct run *r, int fd, uint32_t tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
	return epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void emit_output(void *ud, const char *buf, size_t len)
{
	struct stream *s = ud;
	const struct sbx_spec *spec = s->run->spec;
	if (spec->on_output && len)
		spec->on_output(spec->userdata, s->step, s->which, buf, len);
}

/* SIGKILL to init through its pidfd; plain kill() where pidfd_send_signal (linux >= 5.1) is
 * missing or hidden: init is our unreaped child, so its pid cannot have been reused. */
static void kill_init(struct run *r)
{
	if (syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0) < 0 && errno == ENOSYS &&
	    r->pid > 0)
		kill(r->pid, SIGKILL);
}

static void kill_sandbox(struct run *r, enum sbx_code why)
{
	if (r->kill_code == SBX_OK)
		r->kill_code = why;
	if (!r->init_gone)
		kill_init(r);
}

static void arm_timer(int tfd, uint64_t ns_from_now)
{
	struct itimerspec its = {0};
	if (ns_from_now == 0)
		ns_from_now = 1;
	its.it_value.tv_sec = (time_t)(ns_from_now / 1000000000ULL);
	its.it_value.tv_nsec = (long)(ns_from_now % 1000000000ULL);
	timerfd_settime(tfd, 0, &its, NULL);
}

static void disarm_timer(int tfd)
{
	struct itimerspec its = {0};
	timerfd_settime(tfd, 0, &its, NULL);
}

static const struct sbx_limits *cur_limits(struct run *r)
{
	return &r->spec->steps[r->cur].limits;
}

/* Next CPU check: the earliest moment the step could have used its whole budget. */
static void schedule_cpu_check(struct run *r, uint64_t used_ns)
{
	uint64_t limit = cur_limits(r)->cpu_ms * 1000000ULL;
	uint64_t par = (uint64_t)host.ncpu;
	if (cur_limits(r)->pids < par)
		par = cur_limits(r)->pids;
	uint64_t wait = used_ns >= limit ? 0 : (limit - used_ns) / (par ? par : 1);
	if (wait < 1000000ULL)
		wait = 1000000ULL; /* at most one check per millisecond near the limit */
	arm_timer(r->tfd_cpu, wait);
}

static void sample(struct run *r)
{
	struct cg_stats st;
	if (!r->have_cg || r->cg.ops->stats(&r->cg, &st) < 0)
		return;
	if (st.pids_current > r->pids_peak_sampled)
		r->pids_peak_sampled = st.pids_current;
	if (st.memory_current > r->mem_peak_sampled)
		r->mem_peak_sampled = st.memory_current;
}

static void on_cpu_timer(struct run *r)
{
	uint64_t exp;
	if (read(r->tfd_cpu, &exp, sizeof(exp)) < 0 || !r->have_cg || !r->exec_seen ||
	    r->step_exited)
		return;
	uint64_t now = 0;
	if (r->cg.ops->cpu_ns(&r->cg, &now) < 0)
		return;
	uint64_t used = now > r->cpu_base ? now - r->cpu_base : 0;
	if (used >= cur_limits(r)->cpu_ms * 1000000ULL) {
		kill_sandbox(r, SBX_CPU_LIMIT);
		return;
	}
	sample(r);
	schedule_cpu_check(r, used);
}

static void on_wall_timer(struct run *r)
{
	uint64_t exp;
	if (read(r->tfd_wall, &exp, sizeof(exp)) < 0)
		return;
	/* Before the first execve this is the setup watchdog. */
	kill_sandbox(r, r->exec_seen ? SBX_TIMEOUT : SBX_INTERNAL);
}

static void step_started(struct run *r, int step, bool ran);

static void on_output(struct run *r, struct stream *s)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(s->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			n = 0; /* treat an error as EOF */
		}
		if (n == 0) {
			redact_flush(&s->red, emit_output, s);
			epoll_ctl(r->ep, EPOLL_CTL_DEL, s->fd, NULL);
			close(s->fd);
			s->fd = -1;
			return;
		}
		/* Only the program writes to its step's pipes, so it has exec'd even if init's
		 * MSG_EXEC is not read yet: a flood can reach the output cap (and get init
		 * killed) before init runs again to send it. */
		if (s->step == r->cur && !r->exec_seen)
			step_started(r, s->step, true);
		struct sbx_step_result *sr = &r->res->steps[s->step];
		sr->metrics.output_bytes += (uint64_t)n;
		uint64_t cap = r->spec->steps[s->step].limits.output_bytes;
		size_t keep = (size_t)n;
		if (r->kept + keep > cap) {
			keep = r->kept >= cap ? 0 : (size_t)(cap - r->kept);
			if (s->which == SBX_STDOUT)
				sr->stdout_truncated = true;
			else
				sr->stderr_truncated = true;
			/* Over the cap: keep what fits and stop the run; reading on drains the pipe
			 * so the program can never block us (or itself) on a full pipe. */
			kill_sandbox(r, SBX_OUTPUT_LIMIT);
		}
		r->kept += keep;
		if (keep)
			redact_feed(&s->red, buf, keep, emit_output, s);
	}
}

/* The program sent the listener fd of its exit_group filter (child.c watch_exits). */
static void on_control(struct run *r)
{
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(r->go_w, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			epoll_ctl(r->ep, EPOLL_CTL_DEL, r->go_w, NULL);
		return;
	}
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (r->n_notif >= SBX_MAX_STEPS || watch(r, fd, TAG_NOTIF + (uint32_t)r->n_notif) < 0) {
		close(fd); /* with no listener left, the program's exits just proceed */
		return;
	}
	r->notif_fd[r->n_notif++] = fd;
}

static uint64_t count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	uint64_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* A program process is in exit_group: note whether its fd table is full, let it go on. */
static void on_notif(struct run *r, int fd)
{
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	memset(&req, 0, sizeof(req));
	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
		if (errno != EINTR && errno != ENOENT) {
			epoll_ctl(r->ep, EPOLL_CTL_DEL, fd, NULL);
		}
		return;
	}
	/* The pid cannot be reused while its owner waits on us; ID_VALID double-checks. */
	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) == 0 &&
	    count_fds((pid_t)req.pid) >= cur_limits(r)->nofile)
		r->nofile_full = true;
	memset(&resp, 0, sizeof(resp));
	resp.id = req.id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

static void begin_step_accounting(struct run *r, bool read_counters)
{
	struct cg_stats st = {0};
	if (r->have_cg && read_counters)
		r->cg.ops->stats(&r->cg, &st);
	r->cpu_base = st.cpu_ns;
	r->oom_base = st.oom_kills;
	r->pids_base = st.pids_refused;
	r->pids_peak_sampled = 0;
	r->mem_peak_sampled = 0;
	r->nofile_full = false;
	r->kept = 0;
}

/* The program of `step` has exec'd (ran) or failed to (!ran): its clocks start. */
static void step_started(struct run *r, int step, bool ran)
{
	r->t_exec = now_ns();
	if (step == 0 && !r->res->setup.total_ns) {
		r->res->setup.child_ns = r->t_exec - r->t_clone;
		r->res->setup.total_ns = r->t_exec - r->t_start;
	}
	r->exec_seen = true;
	r->res->steps[step].ran = ran;
	/* CPU time counts from execve: init's setup work is cordon's, not the program's. */
	if (r->have_cg)
		r->cg.ops->cpu_ns(&r->cg, &r->cpu_base);
	arm_timer(r->tfd_wall, cur_limits(r)->wall_ms * 1000000ULL);
	if (r->have_cg)
		schedule_cpu_check(r, 0);
}

static void on_report(struct run *r)
{
	struct child_msg m;
	ssize_t n = read(r->rep_r, &m, sizeof(m));
	if (n != (ssize_t)sizeof(m)) {
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			epoll_ctl(r->ep, EPOLL_CTL_DEL, r->rep_r, NULL);
			close(r->rep_r);
			r->rep_r = -1;
		}
		return;
	}
	switch (m.type) {
	case MSG_FAIL:
		r->failed_setup = true;
		r->fail_msg = m;
		break;
	case MSG_EXECFAIL:
		r->exec_failed = true;
		r->exec_err = m.err;
		__attribute__((fallthrough)); /* the step's clock starts either way */
	case MSG_EXEC:
		if (!r->exec_seen) /* else output already told us (on_output) */
			step_started(r, m.step, m.type == MSG_EXEC);
		break;
	case MSG_EXIT:
		r->exit_msg = m;
		r->step_exited = true;
		r->t_end = now_ns();
		disarm_timer(r->tfd_wall);
		disarm_timer(r->tfd_cpu);
		break;
	}
}

static bool step_streams_open(struct run *r, int step)
{
	for (size_t i = 0; i < r->n_streams; i++)
		if (r->streams[i].step == step && r->streams[i].fd >= 0)
			return true;
	return false;
}

static void fmt_size(char *buf, size_t size, uint64_t bytes)
{
	if (bytes % (1024 * 1024) == 0)
		snprintf(buf, size, "%llu MB", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
}

/* Decide the verdict of the step that just ended, from our own kill reason, the cgroup's
 * counters, the wait status and the scratch space stats. Order matters: a limit that killed
 * the program explains its signal, not the other way round. */
static void judge_step(struct run *r, int step)
{
	struct sbx_step_result *sr = &r->res->steps[step];
	const struct sbx_limits *l = &r->spec->steps[step].limits;
	bool compile = r->spec->n_steps > 1 && step == 0;
	struct cg_stats st = {0};
	if (r->have_cg)
		r->cg.ops->stats(&r->cg, &st);
	int status = r->step_exited ? r->exit_msg.status : (SIGKILL & 0x7f);
	sr->exited = WIFEXITED(status);
	sr->exit_code = sr->exited ? WEXITSTATUS(status) : 0;
	sr->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	uint64_t end = r->t_end ? r->t_end : now_ns();
	sr->metrics.wall_ns = r->t_exec && end > r->t_exec ? end - r->t_exec : 0;
	sr->metrics.cpu_ns = st.cpu_ns > r->cpu_base ? st.cpu_ns - r->cpu_base : 0;
	if (!r->have_cg && r->step_exited) {
		/* No cgroup: what init reaped during this step (measured at its end only). */
		uint64_t reaped = r->exit_msg.cpu_ns;
		sr->metrics.cpu_ns = reaped > r->reaped_cpu_base ? reaped - r->reaped_cpu_base : 0;
		r->reaped_cpu_base = reaped;
	}
	sr->metrics.memory_peak_bytes = st.memory_peak ? st.memory_peak : r->mem_peak_sampled;
	sr->metrics.processes_peak = st.pids_peak ? st.pids_peak : r->pids_peak_sampled;
	if (sr->ran && sr->metrics.processes_peak == 0)
		sr->metrics.processes_peak = 1;
	sr->metrics.files_written = r->step_exited ? r->exit_msg.files : 0;
	bool failed = !(sr->exited && sr->exit_code == 0);
	bool oom = st.oom_kills > r->oom_base;
	bool pids_hit = st.pids_refused > r->pids_base;
	uint32_t scratch = r->step_exited ? r->exit_msg.flags : 0;
	char sz[32];
	enum sbx_code c = SBX_OK;
	const char *msg = "";
	char buf[256];

	if (r->kill_code == SBX_TIMEOUT) {
		c = SBX_TIMEOUT;
		snprintf(buf, sizeof(buf), "wall time limit of %llu ms exceeded",
			 (unsigned long long)l->wall_ms);
	} else if (r->kill_code == SBX_CPU_LIMIT ||
		   (failed && (sr->signal == SIGXCPU ||
			       (sr->signal == SIGKILL &&
				sr->metrics.cpu_ns >= l->cpu_ms * 1000000ULL)))) {
		c = SBX_CPU_LIMIT;
		/* Without a cgroup only RLIMIT_CPU holds: per process, in whole seconds. */
		snprintf(buf, sizeof(buf), "cpu time limit of %llu ms exceeded%s",
			 (unsigned long long)l->cpu_ms,
			 r->have_cg ? "" : " (no cgroup: by one process, in whole seconds)");
	} else if (r->kill_code == SBX_OUTPUT_LIMIT) {
		c = SBX_OUTPUT_LIMIT;
		snprintf(buf, sizeof(buf), "output limit of %llu bytes exceeded",
			 (unsigned long long)l->output_bytes);
	} else if (r->kill_code == SBX_CANCELLED) {
		c = SBX_CANCELLED;
		snprintf(buf, sizeof(buf), "cancelled");
	} else if (failed && oom) {
		c = SBX_MEMORY_LIMIT;
		fmt_size(sz, sizeof(sz), l->memory_bytes);
		snprintf(buf, sizeof(buf), "memory limit of %s exceeded", sz);
	} else if (failed && sr->signal == SIGSYS) {
		c = SBX_SECURITY_VIOLATION;
		snprintf(buf, sizeof(buf), "killed by the seccomp filter (a forbidden system call)");
	} else if (failed && sr->signal == SIGXFSZ) {
		c = SBX_FILE_LIMIT;
		fmt_size(sz, sizeof(sz), l->fsize_bytes);
		snprintf(buf, sizeof(buf), "file size limit of %s exceeded", sz);
	} else if (pids_hit && (failed || (r->step_exited && r->exit_msg.arg > 0))) {
		/* The pids limit refused a fork and the program failed, or it exited while its
		 * children were still forking (a fork bomb whose first process returns at once). */
		c = SBX_PROCESS_LIMIT;
		snprintf(buf, sizeof(buf), "process limit of %llu reached",
			 (unsigned long long)l->pids);
		failed = true;
	} else if (failed && r->nofile_full) {
		c = SBX_FILE_LIMIT;
		snprintf(buf, sizeof(buf), "open files limit of %llu reached",
			 (unsigned long long)l->nofile);
	} else if (failed && (scratch & SCRATCH_FULL_INODES)) {
		c = SBX_FILE_LIMIT;
		snprintf(buf, sizeof(buf), "file count limit of %llu reached",
			 (unsigned long long)l->max_files);
	} else if (failed && (scratch & SCRATCH_FULL_BLOCKS)) {
		c = SBX_FILE_LIMIT;
		fmt_size(sz, sizeof(sz), l->disk_bytes);
		snprintf(buf, sizeof(buf), "disk limit of %s reached", sz);
	} else if (r->exec_failed) {
		c = compile ? SBX_COMPILE_ERROR : SBX_RUNTIME_ERROR;
		sr->exited = true;
		sr->exit_code = 127;
		snprintf(buf, sizeof(buf), "cannot execute \"%s\": %s",
			 r->spec->steps[step].argv[0], strerror(r->exec_err));
	} else if (failed) {
		c = compile ? SBX_COMPILE_ERROR : SBX_RUNTIME_ERROR;
		if (sr->exited)
			snprintf(buf, sizeof(buf), "%s with code %d",
				 compile ? "compilation failed" : "exited", sr->exit_code);
		else
			snprintf(buf, sizeof(buf), "killed by signal %d (%s)", sr->signal,
				 strsignal(sr->signal));
	} else {
		buf[0] = 0;
	}
	msg = buf;
	sr->code = c;
	snprintf(sr->message, sizeof(sr->message), "%s", msg);
}

static int setup_failure(struct run *r, struct cdn_err *err)
{
	const struct child_msg *m = &r->fail_msg;
	const char *name = child_setup_name((enum child_setup)m->step);
	/* Binds and named images are attached with move_mount: no fallback, say what is needed. */
	const char *need = m->err == ENOSYS && (m->step == CS_BIND || m->step == CS_IMAGE)
				   ? " (the kernel lacks move_mount: needs linux >= 5.2)"
				   : "";
	if (m->step == CS_BIND && m->arg >= 0 && (size_t)m->arg < r->spec->n_binds)
		return err_set(err, m->err, "sandbox setup: bind mount of \"%s\" on \"%s\"%s",
			       r->spec->binds[m->arg].src, r->spec->binds[m->arg].dest, need);
	if (m->step == CS_LANDLOCK)
		return err_set(err, m->err,
			       "sandbox setup: landlock is available (abi %d) but could not be "
			       "applied",
			       host.landlock_abi);
	return err_set(err, m->err, "sandbox setup step \"%s\" failed%s", name, need);
}

/* ---- setup and teardown ---- */


static int validate(const struct sbx_spec *spec, struct cdn_err *err)
{
	if (spec->n_steps < 1 || spec->n_steps > SBX_MAX_STEPS)
		return err_set(err, EINVAL, "a run needs 1 to %d steps", SBX_MAX_STEPS);
	for (size_t i = 0; i < spec->n_steps; i++)
		if (!spec->steps[i].argv || !spec->steps[i].argv[0])
			return err_set(err, EINVAL, "step %zu has no command", i);
	if (spec->n_binds > CHILD_MAX_BINDS)
		return err_set(err, E2BIG, "at most %d binds", CHILD_MAX_BINDS);
	for (size_t i = 0; i < spec->n_binds; i++) {
		const char *d = spec->binds[i].dest;
		if (!d || d[0] != '/' || strstr(d, "/..") || strlen(d) > 1024 || !strcmp(d, "/"))
			return err_set(err, EINVAL, "bind destination \"%s\" must be an absolute path "
						    "other than / without \"..\"",
				       d ? d : "");
		if (spec->binds[i].give && !spec->binds[i].writable)
			return err_set(err, EINVAL, "bind \"%s\" is given to the sandbox but "
						    "read-only", d);
	}
	for (size_t i = 0; i < spec->n_files; i++) {
		const char *p = spec->files[i].path;
		if (!p || strncmp(p, "/tmp/", 5) || strstr(p, "/..") || strlen(p) > 1024)
			return err_set(err, EINVAL, "program file \"%s\" must be under /tmp",
				       p ? p : "");
	}
	return 0;
}

static int write_id_maps(pid_t pid, uid_t uid, struct cdn_err *err)
{
	char path[64], map[64];
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
	/* As root setgroups stays "allow": init drops the supplementary groups it inherited from
	 * cordon (host root's) with setgroups(0, NULL); it has no way to add a host group.
	 * Rootless, the kernel lets an unprivileged caller write a gid_map only after denying
	 * setgroups, so the caller's own supplementary groups stay with the sandbox (README). */
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	int r = write_file_at(AT_FDCWD, path, map);
	if (r < 0)
		return err_set(err, -r, "writing the sandbox's uid_map");
	if (host.rootless) {
		snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
		r = write_file_at(AT_FDCWD, path, "deny");
		if (r < 0)
			return err_set(err, -r, "writing the sandbox's setgroups");
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)getegid());
	}
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	r = write_file_at(AT_FDCWD, path, map);
	if (r < 0)
		return err_set(err, -r, "writing the sandbox's gid_map");
	return 0;
}


/* clone3 into the cgroup where the kernel allows it (v2); clone + pidfd_open otherwise. */
static pid_t spawn(struct run *r, struct child_ctx *ctx, struct cdn_err *err)
{
	uint64_t flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
			 CLONE_NEWUTS;
	int cgfd = r->have_cg ? r->cg.ops->clone_fd(&r->cg) : -1;
	int pidfd = -1;
	struct clone_args args = {
		.flags = flags | CLONE_PIDFD | (cgfd >= 0 ? CLONE_NEWCGROUP | CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = cgfd >= 0 ? (uint64_t)cgfd : 0,
	};
	ctx->unshare_cgroupns = cgfd < 0;
	r->need_attach = r->have_cg && cgfd < 0 && ctx->n_cg_self == 0;
	pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0 && (errno == ENOSYS || errno == E2BIG || (errno == EINVAL && cgfd >= 0))) {
		/* Old kernel, or a seccomp profile hiding clone3: classic clone, then migrate. */
		ctx->unshare_cgroupns = true;
		r->need_attach = r->have_cg && ctx->n_cg_self == 0;
		/* clone's CLONE_PIDFD (linux >= 5.2) stores the pidfd at parent_tid: no need for
		 * pidfd_open, which a profile hiding clone3 may hide as well. */
		pidfd = -1;
		pid = (pid_t)syscall(SYS_clone, (unsigned long)(flags | CLONE_PIDFD) | SIGCHLD, 0,
				     &pidfd, NULL, 0);
		if (pid < 0 && errno == EINVAL)
			return err_set(err, errno,
				       "the kernel lacks clone3 and clone's CLONE_PIDFD (needs "
				       "linux >= 5.2)");
	}
	if (pid == 0)
		child_main(ctx);
	if (pid < 0) {
		int e = errno;
		if (e == EPERM || e == ENOSPC || e == EUSERS)
			return err_set(err, e,
				       "cannot create user namespaces (check "
				       "/proc/sys/user/max_user_namespaces and "
				       "kernel.unprivileged_userns_clone / apparmor_restrict_"
				       "unprivileged_userns)");
		return err_set(err, e, "clone of the sandbox");
	}
	r->pidfd = pidfd;
	return pid;
}

/* A detached copy of the mount at `path` (open_tree OPEN_TREE_CLONE, not recursive: the
 * source's submounts stay behind), already nosuid, nodev and, unless writable, read-only. The
 * child attaches it with move_mount: a plain bind from a path the parent resolved would fail,
 * since the source mount belongs to the parent's mount namespace. */
static int clone_tree(const char *path, bool writable, bool *ret_is_dir, bool *ret_attr_done,
		      struct cdn_err *err)
{
	int fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOSYS)
			return err_set(err, errno,
				       "\"%s\": the kernel lacks open_tree (needs linux >= 5.2)", path);
		return err_set(err, errno, "\"%s\"", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return err_set(err, e, "\"%s\"", path);
	}
	*ret_is_dir = S_ISDIR(st.st_mode);
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (writable ? 0 : MOUNT_ATTR_RDONLY),
	};
	/* Without mount_setattr (linux < 5.12) the child remounts after attaching. */
	*ret_attr_done = mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0;
	return fd;
}

static int open_sources(const struct sbx_spec *spec, struct child_ctx *ctx, struct cdn_err *err)
{
	ctx->image_fd = -1;
	for (size_t i = 0; i < CHILD_MAX_BINDS; i++)
		ctx->bind_fd[i] = -1;
	/* Rootless, open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN over the host's mount
	 * namespace, which the caller lacks: init clones the sources itself in its own mount
	 * namespace (child.c). Its uid there is the caller's, so it resolves them with exactly
	 * the caller's rights, as the supervisor would. */
	if (host.rootless)
		return 0;
	/* The supervisor resolves every host path with its own credentials; the child only gets
	 * detached mounts, so it never walks a host path as the sandbox uid. */
	if (spec->image_root) {
		bool dir;
		int fd = clone_tree(spec->image_root, false, &dir, &ctx->image_attr_done, err);
		if (fd < 0)
			return err_wrap(err, "image root");
		ctx->image_fd = fd;
		if (!dir)
			return err_set(err, ENOTDIR, "image root \"%s\"", spec->image_root);
	}
	for (size_t i = 0; i < spec->n_binds; i++) {
		int fd = clone_tree(spec->binds[i].src, spec->binds[i].writable, &ctx->bind_is_dir[i],
				    &ctx->bind_attr_done[i], err);
		if (fd < 0)
			return err_wrap(err, "bind source");
		ctx->bind_fd[i] = fd;
	}
	return 0;
}

static void close_sources(struct child_ctx *ctx)
{
	if (ctx->image_fd >= 0)
		close(ctx->image_fd);
	for (size_t i = 0; i < CHILD_MAX_BINDS; i++)
		if (ctx->bind_fd[i] >= 0)
			close(ctx->bind_fd[i]);
}

static int make_pipes(struct run *r, struct child_ctx *ctx, struct cdn_err *err)
{
	const struct sbx_spec *spec = r->spec;
	for (size_t i = 0; i < spec->n_steps; i++) {
		int p[2];
		for (int k = 0; k < 2; k++) {
			if (k == 1 && spec->steps[i].merge_output) {
				ctx->err_w[i] = -1;
				continue;
			}
			if (pipe2(p, O_CLOEXEC) < 0)
				return err_set(err, errno, "creating output pipes");
			fcntl(p[0], F_SETFL, O_NONBLOCK);
			struct stream *s = &r->streams[r->n_streams++];
			s->fd = p[0];
			s->step = (int)i;
			s->which = k == 0 ? SBX_STDOUT : SBX_STDERR;
			s->run = r;
			int rr = redact_init(&s->red, spec->secrets, spec->n_secrets);
			if (rr < 0)
				return err_set(err, -rr, "redaction buffers");
			if (k == 0)
				ctx->out_w[i] = p[1];
			else
				ctx->err_w[i] = p[1];
		}
	}
	return 0;
}

static void fill_ctx(struct run *r, struct child_ctx *ctx)
{
	const struct sbx_spec *spec = r->spec;
	const struct sbx_limits *l0 = &spec->steps[0].limits;
	ctx->spec = spec;
	ctx->filter = &host.filter;
	ctx->landlock_abi = host.landlock_abi;
	ctx->cap_last = host.cap_last;
	ctx->cgroup_pids = r->have_cg;
	ctx->rootless = host.rootless;
	/* nr_inodes counts the root directory of the tmpfs too. */
	snprintf(ctx->scratch_opts, sizeof(ctx->scratch_opts), "mode=1777,size=%llu,nr_inodes=%llu",
		 (unsigned long long)l0->disk_bytes, (unsigned long long)l0->max_files + 1);
	uint64_t shm = l0->disk_bytes < (64ULL << 20) ? l0->disk_bytes : (64ULL << 20);
	snprintf(ctx->shm_opts, sizeof(ctx->shm_opts), "mode=1777,size=%llu,nr_inodes=1024",
		 (unsigned long long)shm);
	ctx->n_writable = 0;
	ctx->writable[ctx->n_writable++] = "/tmp";
	ctx->writable[ctx->n_writable++] = "/dev/shm";
	for (size_t i = 0; i < spec->n_binds; i++)
		if (spec->binds[i].writable)
			ctx->writable[ctx->n_writable++] = spec->binds[i].dest;
}

static void next_step(struct run *r)
{
	r->cur++;
	r->exec_seen = r->step_exited = r->exec_failed = false;
	r->t_exec = r->t_end = 0;
	if (r->have_cg) {
		struct cdn_err e;
		r->cg.ops->set_limits(&r->cg, &r->spec->steps[r->cur].limits, &e);
		r->cg.ops->reset_peak(&r->cg);
	}
	begin_step_accounting(r, true);
	arm_timer(r->tfd_wall, SETUP_TIMEOUT_MS * 1000000ULL);
	char c = CHILD_CMD_NEXT;
	if (send(r->go_w, &c, 1, MSG_NOSIGNAL) != 1)
		kill_sandbox(r, SBX_INTERNAL);
}

/* A listener reports EPOLLHUP, level-triggered, once no process uses its filter any more:
 * drop it then, or epoll_wait would return at once for it until the run ends. */
static void on_notif_event(struct run *r, size_t i, uint32_t events)
{
	int fd = r->notif_fd[i];
	if (fd < 0)
		return;
	if (events & EPOLLIN)
		on_notif(r, fd);
	else if (events & (EPOLLHUP | EPOLLERR)) {
		epoll_ctl(r->ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
		r->notif_fd[i] = -1;
	}
}

static void dispatch(struct run *r, uint32_t tag, uint32_t events)
{
	if (tag == TAG_PIDFD) {
		siginfo_t si;
		waitid((idtype_t)P_PIDFD, (id_t)r->pidfd, &si, WEXITED);
		r->init_gone = true;
		epoll_ctl(r->ep, EPOLL_CTL_DEL, r->pidfd, NULL);
		while (r->rep_r >= 0)
			on_report(r); /* messages written just before init exited */
	} else if (tag == TAG_REPORT) {
		on_report(r);
	} else if (tag == TAG_WALL) {
		on_wall_timer(r);
	} else if (tag == TAG_CPU) {
		on_cpu_timer(r);
	} else if (tag == TAG_CANCEL) {
		char buf[16];
		while (read(cancel_pipe[0], buf, sizeof(buf)) > 0)
			;
		kill_sandbox(r, SBX_CANCELLED);
	} else if (tag == TAG_CONTROL) {
		on_control(r);
	} else if (tag >= TAG_NOTIF && tag - TAG_NOTIF < r->n_notif) {
		on_notif_event(r, tag - TAG_NOTIF, events);
	} else if (tag >= TAG_STREAM && tag - TAG_STREAM < r->n_streams) {
		on_output(r, &r->streams[tag - TAG_STREAM]);
	}
}

static bool any_stream_open(struct run *r)
{
	for (size_t i = 0; i < r->n_streams; i++)
		if (r->streams[i].fd >= 0)
			return true;
	return false;
}

/* The epoll loop: until init is gone and every output pipe is at EOF. */
static void supervise(struct run *r)
{
	bool judged[SBX_MAX_STEPS] = {false};
	while (!r->init_gone || any_stream_open(r)) {
		struct epoll_event evs[16];
		int n = epoll_wait(r->ep, evs, 16, -1);
		if (n < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++)
			dispatch(r, evs[i].data.u32, evs[i].events);
		if (r->failed_setup)
			kill_sandbox(r, SBX_INTERNAL);
		/* A step is over when init said so (or died) and its output is fully read. */
		bool over = r->step_exited || r->init_gone;
		if (!over || judged[r->cur] || step_streams_open(r, r->cur) || r->failed_setup)
			continue;
		if (!r->exec_seen && !r->step_exited)
			continue; /* died during setup: reported as a setup failure */
		judged[r->cur] = true;
		judge_step(r, r->cur);
		r->res->n_steps = (size_t)r->cur + 1;
		bool ok = r->res->steps[r->cur].code == SBX_OK && r->kill_code == SBX_OK;
		if (ok && (size_t)r->cur + 1 < r->spec->n_steps && !r->init_gone)
			next_step(r);
		else if (r->go_w >= 0) {
			close(r->go_w); /* init reads EOF and exits */
			r->go_w = -1;
		}
	}
}

static void teardown(struct run *r, struct child_ctx *ctx)
{
	if (r->pidfd >= 0) {
		if (!r->init_gone) {
			kill_init(r);
			siginfo_t si;
			waitid((idtype_t)P_PIDFD, (id_t)r->pidfd, &si, WEXITED);
		}
		close(r->pidfd);
	}
	int fds[] = {r->go_w, r->rep_r, r->ep, r->tfd_wall, r->tfd_cpu};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (size_t i = 0; i < r->n_notif; i++)
		if (r->notif_fd[i] >= 0)
			close(r->notif_fd[i]);
	for (size_t i = 0; i < r->n_streams; i++) {
		if (r->streams[i].fd >= 0)
			close(r->streams[i].fd);
		redact_release(&r->streams[i].red);
	}
	for (size_t i = 0; i < SBX_MAX_STEPS; i++) {
		if (ctx->out_w[i] >= 0)
			close(ctx->out_w[i]);
		if (ctx->err_w[i] >= 0)
			close(ctx->err_w[i]);
	}
	if (ctx->go_fd >= 0)
		close(ctx->go_fd);
	if (ctx->rep_fd >= 0)
		close(ctx->rep_fd);
	for (int i = 0; i < ctx->n_cg_self; i++)
		close(ctx->cg_self_fd[i]);
	close_sources(ctx);
	if (r->have_cg && r->cg.ops)
		r->cg.ops->destroy(&r->cg);
	/* Best effort: what a sandbox nested beyond the walk's bounds stays its uid's (see
	 * handover.h: the caller removes or re-gives the tree). */
	for (size_t i = 0; i < r->n_given; i++) {
		struct cdn_err e2;
		if (r->spec->binds[i].give)
			(void)handover_tree(r->spec->binds[i].src, geteuid(), getegid(), &e2);
	}
	slot_release(&r->slot);
}

static void close_child_ends(struct child_ctx *ctx)
{
	for (size_t i = 0; i < SBX_MAX_STEPS; i++) {
		if (ctx->out_w[i] >= 0)
			close(ctx->out_w[i]);
		if (ctx->err_w[i] >= 0)
			close(ctx->err_w[i]);
		ctx->out_w[i] = ctx->err_w[i] = -1;
	}
	close(ctx->go_fd);
	close(ctx->rep_fd);
	ctx->go_fd = ctx->rep_fd = -1;
	for (int i = 0; i < ctx->n_cg_self; i++)
		close(ctx->cg_self_fd[i]);
	ctx->n_cg_self = 0;
	close_sources(ctx);
	ctx->image_fd = -1;
	for (size_t i = 0; i < CHILD_MAX_BINDS; i++)
		ctx->bind_fd[i] = -1;
}

static int prepare(struct run *r, struct child_ctx *ctx, struct cdn_err *err)
{
	const struct sbx_spec *spec = r->spec;
	int rr = slot_init(host.rootless, spec->state_dir, err);
	if (rr >= 0)
		rr = slot_acquire(spec->trust, &r->slot, err);
	if (rr < 0)
		return rr;
	r->res->host_uid = r->slot.uid;
	/* Workspaces: the sandbox's uid must own them to write in them (gid: init maps the same
	 * number). Done before the clone; given back in teardown once the sandbox is gone. */
	for (size_t i = 0; i < spec->n_binds && !host.rootless; i++) {
		if (!spec->binds[i].give)
			continue;
		rr = handover_tree(spec->binds[i].src, r->slot.uid, (gid_t)r->slot.uid, err);
		r->n_given = i + 1;
		if (rr < 0)
			return rr;
	}
	if (r->have_cg) {
		cg_init(&r->cg, host.cg);
		rr = host.cg->create(&r->cg, r->slot.name, err);
		if (rr >= 0)
			rr = host.cg->set_limits(&r->cg, &spec->steps[0].limits, err);
		if (rr >= 0)
			rr = host.cg->self_attach_fds(&r->cg, ctx->cg_self_fd,
						      ARRAY_SIZE(ctx->cg_self_fd), err);
		if (rr < 0)
			return err_wrap(err, "cgroup");
		ctx->n_cg_self = rr;
	}
	rr = open_sources(spec, ctx, err);
	if (rr < 0)
		return rr;
	int go[2], rep[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) < 0)
		return err_set(err, errno, "creating the control socket");
	ctx->go_fd = go[0];
	r->go_w = go[1];
	if (pipe2(rep, O_CLOEXEC) < 0)
		return err_set(err, errno, "creating the report pipe");
	ctx->rep_fd = rep[1];
	r->rep_r = rep[0];
	fcntl(r->rep_r, F_SETFL, O_NONBLOCK);
	rr = make_pipes(r, ctx, err);
	if (rr < 0)
		return rr;
	fill_ctx(r, ctx);
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	r->tfd_wall = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	r->tfd_cpu = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (r->ep < 0 || r->tfd_wall < 0 || r->tfd_cpu < 0)
		return err_set(err, errno, "creating epoll and timers");
	if (watch(r, r->rep_r, TAG_REPORT) < 0 || watch(r, r->tfd_wall, TAG_WALL) < 0 ||
	    watch(r, r->tfd_cpu, TAG_CPU) < 0 || watch(r, cancel_pipe[0], TAG_CANCEL) < 0 ||
	    watch(r, r->go_w, TAG_CONTROL) < 0)
		return err_set(err, errno, "epoll_ctl");
	for (size_t i = 0; i < r->n_streams; i++)
		if (watch(r, r->streams[i].fd, TAG_STREAM + (uint32_t)i) < 0)
			return err_set(err, errno, "epoll_ctl");
	return 0;
}

int sandbox_run(const struct sbx_spec *spec, struct sbx_result *ret_result, struct cdn_err *err)
{
	struct run r = {.spec = spec, .res = ret_result, .pidfd = -1, .go_w = -1, .rep_r = -1,
			.ep = -1, .tfd_wall = -1, .tfd_cpu = -1, .slot = {.lock_fd = -1}};
	struct child_ctx ctx;
	memset(&ctx, 0, sizeof(ctx));
	ctx.go_fd = ctx.rep_fd = ctx.image_fd = -1;
	for (size_t i = 0; i < SBX_MAX_STEPS; i++)
		ctx.out_w[i] = ctx.err_w[i] = -1;
	for (size_t i = 0; i < CHILD_MAX_BINDS; i++)
		ctx.bind_fd[i] = -1;
	memset(ret_result, 0, sizeof(*ret_result));
	r.t_start = now_ns();

	int rr = validate(spec, err);
	if (rr < 0)
		return rr;
	rr = host_init(!spec->no_cgroup, err);
	if (rr < 0)
		return rr;
	r.have_cg = !spec->no_cgroup;
	ret_result->cgroup_limits = r.have_cg;
	/* Rootless with limits: into the caller's delegated cgroup first (cgroup-deleg.c). */
	if (r.have_cg && host.rootless && (rr = cg_deleg_enter(err)) < 0) {
		cg_deleg_leave();
		return rr;
	}
	rr = prepare(&r, &ctx, err);
	if (rr < 0)
		goto out;
	/* A new cgroup's counters are zero: nothing to read as the first step's baseline (the
	 * CPU baseline is taken at execve anyway). */
	begin_step_accounting(&r, false);
	uint64_t t_prep = now_ns();
	ret_result->setup.prepare_ns = t_prep - r.t_start;

	r.pid = spawn(&r, &ctx, err);
	if (r.pid < 0) {
		rr = -1;
		goto out;
	}
	close_child_ends(&ctx);
	rr = write_id_maps(r.pid, r.slot.uid, err);
	if (rr < 0)
		goto out;
	rr = watch(&r, r.pidfd, TAG_PIDFD);
	if (rr < 0) {
		rr = err_set(err, errno, "epoll_ctl");
		goto out;
	}
	/* On v1 init has moved itself into its cgroups (cgroup-v1.c). Only v2 without clone3
	 * needs a move from here, done while init builds its root. */
	char cmd = CHILD_CMD_MAPPED;
	if (send(r.go_w, &cmd, 1, MSG_NOSIGNAL) != 1) {
		rr = err_set(err, errno, "starting the sandbox's init");
		goto out;
	}
	if (r.need_attach && (rr = r.cg.ops->attach(&r.cg, r.pid, err)) < 0)
		goto out;
	/* Leftovers of supervisors killed by -9 (best effort), swept while init builds its root
	 * on another CPU, and before GO: however long it takes, no program runs unmetered
	 * meanwhile. Our own slot is locked, so skipped. */
	if (r.have_cg) {
		struct cdn_err se;
		host.cg->sweep(&se);
	}
	cmd = CHILD_CMD_GO;
	/* EPIPE: init already failed while building its root (say, move_mount missing) and
	 * exited; supervise() reads why from the report pipe. */
	if (send(r.go_w, &cmd, 1, MSG_NOSIGNAL) != 1 && errno != EPIPE && errno != ECONNRESET) {
		rr = err_set(err, errno, "starting the sandbox's init");
		goto out;
	}
	r.t_clone = now_ns();
	ret_result->setup.clone_ns = r.t_clone - t_prep;
	arm_timer(r.tfd_wall, SETUP_TIMEOUT_MS * 1000000ULL);
	if (cancel_requested)
		kill_sandbox(&r, SBX_CANCELLED);
	supervise(&r);

	if (r.failed_setup) {
		rr = setup_failure(&r, err);
		goto out;
	}
	if (!r.exec_seen && ret_result->n_steps == 0) {
		rr = r.kill_code == SBX_INTERNAL
			     ? err_set(err, ETIMEDOUT, "sandbox setup did not finish in %d ms",
				       SETUP_TIMEOUT_MS)
		     : r.kill_code == SBX_CANCELLED
			     ? err_set(err, ECANCELED, "cancelled during sandbox setup")
			     : err_set(err, ECHILD, "the sandbox's init died during setup");
		goto out;
	}
	ret_result->code = SBX_OK;
	for (size_t i = 0; i < ret_result->n_steps; i++)
		if (ret_result->steps[i].code != SBX_OK) {
			ret_result->code = ret_result->steps[i].code;
			break;
		}
	rr = 0;
out:
	teardown(&r, &ctx);
	if (r.have_cg && host.rootless)
		cg_deleg_leave(); /* the caller's cgroup as it was found */
	return rr < 0 ? (err && err->errnum ? -err->errnum : -EIO) : 0;
}
