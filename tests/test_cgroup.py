"""Where a sandbox's processes live: every one of them, from the first instruction, in the
run's own cgroup below cordon's parent and its trust level's subtree (v1: in the memory, pids and cpuacct hierarchies; v2: one
cgroup, entered at clone time with CLONE_INTO_CGROUP), and the program sees only the root of its
cgroup namespace. The counters of that cgroup give the verdicts (test_limits.py); teardown
removes it (every test, through the autouse host_untouched fixture)."""

import subprocess

from conftest import CORDON, expect, pure_v2, sandbox_processes, wait_until

V1_CONTROLLERS = ("memory", "pids", "cpuacct")


def cgroup_lines(pid):
    """{hierarchy: path} from /proc/PID/cgroup; the v2 line's hierarchy is ""."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def test_every_sandbox_process_is_in_its_run_cgroup(cordon):
    p = subprocess.Popen([CORDON, "run", "--state-dir", cordon.state_dir, "--json", "-t", "120s",
                          "--ro", f"{cordon.helper_path}:/helper", "--", "/bin/sh", "-c",
                          "/helper sleep 30 & /helper sleep 30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env)
    try:
        # init, the shell and its two sleeps
        procs = wait_until(lambda: len(sandbox_processes()) >= 4 and sandbox_processes(), 60)
        assert p.poll() is None, f"cordon exited early: {p.communicate()}"
        assert procs, f"the sandbox's processes never appeared: {sandbox_processes()}"
        paths = set()
        for pid, _, cmd in procs:
            lines = cgroup_lines(pid)
            if pure_v2():
                where = [lines[""]]
            else:
                where = [lines[c] for c in V1_CONTROLLERS]
            for path in where:
                parts = path.strip("/").split("/")
                # /cordon/<level>/<slot> (root), or <delegated>/cordon/<level>/<slot> (a
                # rootless caller); the default trust level is low
                assert parts[-3:-1] == ["cordon", "low"] and parts[-1].startswith("low-"), \
                    f"sandbox process {pid} ({cmd}) is outside its run's cgroup: {lines}"
                paths.add(path)
        assert len(paths) == 1, f"one run's processes are in different cgroups: {paths}"
    finally:
        p.terminate()  # cordon cancels the run and removes its cgroup
        p.communicate(timeout=60)


def test_program_sees_only_its_cgroup_namespace_root(cordon):
    r = cordon.helper("cat", "/proc/self/cgroup")
    expect(r, None)
    lines = [ln for ln in r.stdout.splitlines() if ln]
    assert lines, r
    for ln in lines:
        hierarchy, _, path = ln.split(":", 2)
        if pure_v2() or hierarchy.split(",")[0] in V1_CONTROLLERS + ("",):
            assert path == "/", f"the host's cgroup path shows inside the sandbox: {ln}\n{r}"
