/* Host probes of cgroups, clone3 / CLONE_INTO_CGROUP and pidfds (probe-int.h). The probe takes
 * a sandbox slot like a run, creates the slot's cgroup below cordon's parent with the cgroup
 * backend cordon would pick, sets the default limits, and starts one child the way sandbox.c
 * starts init: clone3 with CLONE_PIDFD (and CLONE_INTO_CGROUP on v2), or clone with
 * CLONE_PIDFD; on v1 the child moves itself in through the tasks files. It then reads the
 * controllers' counters with the child inside, kills it through its pidfd, reaps it with
 * waitid(P_PIDFD) and removes the cgroup. Only this cgroup and this child are touched. */
#include "probe-int.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "limits.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Directory indices of the backends' struct cg: v1 keeps memory, pids, cpuacct in this order
 * (cgroup-v1.c), v2 one directory for all. */
enum { V1_MEMORY = 0, V1_PIDS = 1 };

struct born {
	pid_t pid;
	int pidfd;
	int clone3_err;  /* 0: clone3 worked */
	int into_err;    /* 0: born in the cgroup with CLONE_INTO_CGROUP (v2) */
	int clone_err;   /* neither clone3 nor clone gave a child */
	int attach_err;  /* moving into the cgroup (v1 self-attach, v2 fallback) */
	int go_w;        /* closing it lets the child exit */
};

/* The child: moves itself into its v1 cgroups (what init does first), reports, then waits. */
__attribute__((noreturn)) static void born_child(const int *self_fds, int n_self, int rep_w,
						  int go_r)
{
	int e = 0;
	for (int i = 0; i < n_self && !e; i++)
		if (write(self_fds[i], "0", 1) != 1)
			e = errno;
	probe_send(rep_w, e);
	char b;
	ssize_t n = read(go_r, &b, 1);
	(void)n;
	_exit(0);
}

static void spawn_probe(struct cg *cg, struct born *b)
{
	memset(b, 0, sizeof(*b));
	b->pid = -1;
	b->pidfd = -1;
	b->go_w = -1;
	int self_fds[CG_MAX_HIER], n_self = 0;
	struct cdn_err err = {0};
	if (cg) {
		n_self = cg->ops->self_attach_fds(cg, self_fds, CG_MAX_HIER, &err);
		if (n_self < 0) {
			b->attach_err = -n_self;
			n_self = 0;
		}
	}
	int cgfd = cg ? cg->ops->clone_fd(cg) : -1;
	int go[2], rep[2];
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		b->clone_err = errno;
		return;
	}
	struct clone_args args = {
		.flags = CLONE_PIDFD | (cgfd >= 0 ? CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)&b->pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = cgfd >= 0 ? (uint64_t)cgfd : 0,
	};
	b->into_err = cgfd >= 0 ? 0 : EOPNOTSUPP;
	pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0 && cgfd >= 0 && errno != ENOSYS && errno != E2BIG) {
		b->into_err = errno;
		args.flags &= ~(uint64_t)CLONE_INTO_CGROUP;
		args.cgroup = 0;
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	}
	if (pid < 0) {
		b->clone3_err = errno;
		if (b->into_err == 0)
			b->into_err = errno;
		/* sandbox.c's fallback: clone with CLONE_PIDFD (the pidfd at parent_tid). */
		pid = (pid_t)syscall(SYS_clone, (unsigned long)CLONE_PIDFD | SIGCHLD, 0, &b->pidfd,
				     NULL, 0);
	}
	if (pid == 0) {
		close(go[1]);
		close(rep[0]);
		born_child(self_fds, n_self, rep[1], go[0]);
	}
	if (pid < 0)
		b->clone_err = errno;
	for (int i = 0; i < n_self; i++)
		close(self_fds[i]);
	close(go[0]);
	close(rep[1]);
	b->go_w = go[1];
	b->pid = pid;
	if (pid > 0) {
		int e = EIO;
		if (probe_read_ints(rep[0], &e, 1, now_ns() + PROBE_TIMEOUT_MS * 1000000ULL) != 1)
			e = ETIMEDOUT;
		if (e && !b->attach_err)
			b->attach_err = e;
		/* v2 without CLONE_INTO_CGROUP: sandbox.c moves init in from outside. */
		if (cg && cgfd >= 0 && b->into_err && !b->attach_err)
			b->attach_err = -cg->ops->attach(cg, pid, &err);
	}
	close(rep[0]);
}

/* Kill and reap the child through its pidfd as sandbox.c does; report what worked. */
static void end_probe(struct probe_report *rep, struct born *b)
{
	if (b->pid <= 0) {
		probe_add(rep, "pidfd", PROBE_FAIL, PROBE_RUN_BROKEN,
			  "linux >= 5.2 (clone with CLONE_PIDFD)",
			  "no child with a pidfd: clone3 %s, clone with CLONE_PIDFD %s",
			  strerror(b->clone3_err), strerror(b->clone_err));
		if (b->go_w >= 0)
			close(b->go_w);
		return;
	}
	const char *bad = NULL;
	struct pollfd pfd = {.fd = b->pidfd, .events = POLLIN};
	if (b->pidfd < 0)
		bad = "clone returned no pidfd";
	else if (poll(&pfd, 1, 0) != 0)
		bad = "the pidfd of a live child polls readable";
	bool send_ok = b->pidfd >= 0 &&
		       syscall(SYS_pidfd_send_signal, b->pidfd, SIGKILL, NULL, 0) == 0;
	int send_err = send_ok ? 0 : errno;
	if (!send_ok)
		kill(b->pid, SIGKILL); /* sandbox.c's fallback; our unreaped child */
	close(b->go_w);
	if (!bad && poll(&pfd, 1, PROBE_TIMEOUT_MS) != 1)
		bad = "the pidfd did not poll readable when the child died";
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (b->pidfd >= 0 && waitid((idtype_t)P_PIDFD, (id_t)b->pidfd, &si, WEXITED) == 0) {
		if (!bad && !(si.si_code == CLD_KILLED && si.si_status == SIGKILL))
			bad = "waitid(P_PIDFD) did not see the SIGKILL";
	} else {
		if (!bad)
			bad = "waitid(P_PIDFD) failed (needs linux >= 5.4)";
		probe_reap(b->pid, true);
	}
	if (b->pidfd >= 0)
		close(b->pidfd);
	if (bad)
		probe_add(rep, "pidfd", PROBE_FAIL, PROBE_RUN_BROKEN, "linux >= 5.4", "%s", bad);
	else if (!send_ok)
		probe_add(rep, "pidfd", PROBE_WARN, PROBE_NONE, "linux >= 5.1 has pidfd_send_signal",
			  "pidfd_send_signal unavailable (%s): init is killed with kill(), safe as "
			  "it is an unreaped child",
			  strerror(send_err));
	else
		probe_add(rep, "pidfd", PROBE_OK, PROBE_NONE, NULL,
			  "CLONE_PIDFD, poll, pidfd_send_signal and waitid(P_PIDFD) work");
}

static void report_clone(struct probe_report *rep, const struct born *b, const struct cg *cg)
{
	if (b->pid <= 0)
		probe_add(rep, "clone3", b->clone3_err == ENOSYS ? PROBE_WARN : PROBE_FAIL,
			  PROBE_RUN_BROKEN, NULL, "clone3 failed: %s", strerror(b->clone3_err));
	else if (b->clone3_err)
		probe_add(rep, "clone3", PROBE_WARN, PROBE_NONE,
			  "linux >= 5.3, or a seccomp profile that allows clone3",
			  "unavailable (%s): cordon uses clone with CLONE_PIDFD", strerror(b->clone3_err));
	else
		probe_add(rep, "clone3", PROBE_OK, PROBE_NONE, NULL, "clone3 with CLONE_PIDFD");

	bool v2 = cg && cg->ops->clone_fd((struct cg *)cg) >= 0;
	if (!cg)
		probe_add(rep, "clone_into_cgroup", PROBE_WARN, PROBE_NONE, NULL,
			  "not tried: no cgroup");
	else if (b->pid > 0 && b->attach_err)
		probe_add(rep, "clone_into_cgroup", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "a new process could not %s: %s",
			  v2 ? "be moved into its cgroup" : "move itself into its v1 cgroups",
			  strerror(b->attach_err));
	else if (!v2)
		probe_add(rep, "clone_into_cgroup", PROBE_OK, PROBE_NONE, NULL,
			  "not used on cgroup v1: init moves itself in through the tasks files");
	else if (b->into_err)
		probe_add(rep, "clone_into_cgroup", PROBE_WARN, PROBE_NONE,
			  "linux >= 5.7 has CLONE_INTO_CGROUP",
			  "unavailable (%s): init is moved into its cgroup after clone",
			  strerror(b->into_err));
	else
		probe_add(rep, "clone_into_cgroup", PROBE_OK, PROBE_NONE, NULL,
			  "init is born in its cgroup (no migration)");
}

static bool has_file(int dirfd, const char *name)
{
	return faccessat(dirfd, name, F_OK, 0) == 0;
}

static void report_controllers(struct probe_report *rep, struct cg *cg,
			       const struct sbx_limits *l, bool child_inside)
{
	bool v1 = !strcmp(cg->ops->name, "v1");
	int mem = cg->dirfd[v1 ? V1_MEMORY : 0], pids = cg->dirfd[v1 ? V1_PIDS : 0];
	struct cg_stats st;
	cg->ops->stats(cg, &st);

	uint64_t v = 0;
	bool swap = has_file(mem, v1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max");
	if (cg_read_u64(mem, v1 ? "memory.limit_in_bytes" : "memory.max", &v) < 0 ||
	    v != l->memory_bytes)
		probe_add(rep, "cgroup_memory", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "the memory limit did not take (wrote %llu, read %llu)",
			  (unsigned long long)l->memory_bytes, (unsigned long long)v);
	else if (!swap)
		probe_add(rep, "cgroup_memory", PROBE_WARN, PROBE_NONE,
			  v1 ? "boot with swapaccount=1" : "enable swap accounting",
			  "limit set, but no swap accounting: swappiness 0 instead, so a run may "
			  "still swap");
	else
		probe_add(rep, "cgroup_memory", PROBE_OK, PROBE_NONE, NULL,
			  "limit set, swap accounted%s",
			  st.memory_peak ? ", peak kept by the kernel"
					 : "; no peak counter: the peak is sampled");

	uint64_t p = 0;
	if (cg_read_u64(pids, "pids.max", &p) < 0 || p != l->pids)
		probe_add(rep, "cgroup_pids", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "the process limit did not take (wrote %llu, read %llu)",
			  (unsigned long long)l->pids, (unsigned long long)p);
	else if (child_inside && st.pids_current < 1)
		probe_add(rep, "cgroup_pids", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "a process in the cgroup is not counted (pids.current 0)");
	else
		probe_add(rep, "cgroup_pids", PROBE_OK, PROBE_NONE, NULL,
			  "limit set, %llu process counted%s", (unsigned long long)st.pids_current,
			  has_file(pids, "pids.events") ? ", refused forks counted" : "");

	uint64_t ns = 0;
	int r = cg->ops->cpu_ns(cg, &ns);
	if (r < 0)
		probe_add(rep, "cgroup_cpu", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "reading the cgroup's CPU time failed: %s", strerror(-r));
	else
		probe_add(rep, "cgroup_cpu", PROBE_OK, PROBE_NONE, NULL,
			  "CPU time readable (%s)", v1 ? "cpuacct.usage" : "cpu.stat");
}

/* No cgroup to probe: the child and pidfd probes still run, the controllers are not tried. */
static void probe_without_cgroup(struct probe_report *rep, enum probe_impact impact)
{
	struct born b;
	spawn_probe(NULL, &b);
	report_clone(rep, &b, NULL);
	static const char *const names[] = {"cgroup_memory", "cgroup_pids", "cgroup_cpu"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		probe_add(rep, names[i], PROBE_FAIL, impact, NULL,
			  "not tried: no cgroup (see the cgroup line)");
	end_probe(rep, &b);
}

void probe_slot_release(struct slot *slot)
{
	slot_release(slot);
}

/* Rootless: the delegated v2 subtree sandbox.c would use, or a refusal. */
static int rootless_cgroup(struct probe_report *rep, const struct cg_ops **ret)
{
	struct cdn_err err = {0};
	if (cg_deleg_detect(&err) < 0 || cg_deleg_enter(&err) < 0) {
		probe_add(rep, "cgroup", PROBE_FAIL, PROBE_LAYER_MISSING,
			  "run cordon as root, or in a delegated cgroup v2 subtree (systemd-run "
			  "--user --scope -p Delegate=yes); --no-cgroup runs without those limits",
			  "rootless: %s", err.msg);
		return -1;
	}
	*ret = &cg_v2_ops;
	return 0;
}

void probe_cgroup(struct probe_report *rep, const char *state_dir, struct slot *slot)
{
	memset(slot, 0, sizeof(*slot));
	slot->lock_fd = -1;
	struct cdn_err err = {0};
	bool rootless = geteuid() != 0;
	int r = rootless && !state_dir ? err_set(&err, 0, "no usable state dir (see state_dir)")
				       : slot_init(rootless, state_dir, &err);
	if (r >= 0)
		r = slot_acquire(TRUST_LOW, slot, &err);
	struct born b;
	if (r < 0) {
		slot->lock_fd = -1;
		slot->uid = geteuid();
		probe_add(rep, "slots", PROBE_FAIL, PROBE_RUN_BROKEN,
			  rootless ? "give cordon a private state dir (--state-dir)" : NULL, "%s",
			  err.msg);
		probe_add(rep, "cgroup", PROBE_FAIL, PROBE_RUN_BROKEN, NULL,
			  "not tried: no sandbox slot");
		probe_without_cgroup(rep, PROBE_RUN_BROKEN);
		return;
	}
	probe_add(rep, "slots", PROBE_OK, PROBE_NONE, NULL,
		  "a sandbox slot lock was taken (%s, in %s)", slot->name,
		  rootless ? "the state dir" : "/run/cordon/slots");

	const struct cg_ops *ops;
	if (rootless) {
		if (rootless_cgroup(rep, &ops) < 0) {
			probe_without_cgroup(rep, PROBE_LAYER_MISSING);
			return;
		}
	} else if ((r = cg_detect(&ops, &err)) < 0) {
		probe_add(rep, "cgroup", PROBE_FAIL, PROBE_RUN_BROKEN,
			  "mount cgroup v2 with memory, pids and cpu enabled for cordon's parent, or "
			  "the v1 memory, pids and cpuacct hierarchies",
			  "%s", err.msg);
		probe_without_cgroup(rep, PROBE_RUN_BROKEN);
		return;
	}
	struct sbx_limits l;
	limits_default(TRUST_LOW, &l);
	struct cg cg;
	cg_init(&cg, ops);
	r = ops->create(&cg, slot->name, &err);
	if (r >= 0)
		r = ops->set_limits(&cg, &l, &err);
	if (r < 0) {
		probe_add(rep, "cgroup", PROBE_FAIL, PROBE_RUN_BROKEN,
			  "run as root, or delegate a cgroup subtree to this user", "%s %s",
			  ops->name, err.msg);
		ops->destroy(&cg);
		if (rootless)
			cg_deleg_leave();
		probe_without_cgroup(rep, PROBE_RUN_BROKEN);
		return;
	}
	struct cdn_err e2 = {0};
	if (!strcmp(ops->name, "v1") && cg_v2_usable(&e2) < 0)
		probe_add(rep, "cgroup", PROBE_OK, PROBE_NONE, NULL,
			  "v1 (memory, pids, cpuacct): cgroup \"cordon/%s\" created and limited; v2 "
			  "not usable: %s",
			  cg.name, e2.msg);
	else
		probe_add(rep, "cgroup", PROBE_OK, PROBE_NONE, NULL,
			  "%s: cgroup \"cordon/%s\" created and limited", ops->name, cg.name);
	spawn_probe(&cg, &b);
	report_clone(rep, &b, &cg);
	report_controllers(rep, &cg, &l, b.pid > 0 && !b.attach_err);
	end_probe(rep, &b);
	ops->destroy(&cg);
	if (rootless)
		cg_deleg_leave(); /* the caller's cgroup as it was found */
}
