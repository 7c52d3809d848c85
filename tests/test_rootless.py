"""`cordon run` as an unprivileged user (rootless mode).

The suite runs as root; these tests run a copy of the real binary as ROOTLESS_UID, a uid with
no passwd entry and no groups (setpriv --reuid/--regid --clear-groups). They check:

- without a delegated cgroup v2 subtree the run is refused with one line, exit 125 (fail
  closed), and --no-cgroup runs it with every isolation layer and says so in the result;
- the hostile basics stay contained as that user: root-only files, writes outside, seccomp,
  network, kill -9 -1 against a host process of the same uid, fork bombs;
- where the host's cgroup v2 hierarchy has the memory, pids and cpu controllers (the v2 VM
  lane), a delegated subtree made for the user (mkdir + chown, as an administrator or
  systemd's Delegate=yes would) gives real memory, pids and CPU limits, and is left as found.

ROOTLESS_UID is inside conftest's sandbox uid range, so the autouse leftover check also
catches any process of a rootless run that outlives it.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import uuid

import pytest

from conftest import (CORDON_BINARY, ENOSYS_TOOL, HIDDEN_SYSCALLS, RUN_TIMEOUT, Canary, Result,
                      expect, expect_contained, wait_until)

ROOTLESS_UID = 2_100_000_000
NEEDED = ("memory", "pids", "cpu")
NOT_ENFORCED = ["memory", "pids", "cpu_time"]


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                return fields[4]
    return None


def own_cgroup2_path():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def controllers(path):
    try:
        with open(os.path.join(path, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []


def subtree_control(path):
    with open(os.path.join(path, "cgroup.subtree_control")) as f:
        return f.read().split()


def refusal(why, fix):
    return (f"cordon: memory and pids limits need a cgroup, and uid {ROOTLESS_UID} has no "
            f"delegated cgroup v2 subtree: {why} ({fix})")


FIX_V1 = "run cordon as root, or pass --no-cgroup to run without memory and pids limits"
FIX_V2 = ("start cordon in a delegated cgroup (systemd-run --user --scope -p Delegate=yes "
          "cordon run ...), run it as root, or pass --no-cgroup to run without memory and "
          "pids limits")


def expected_refusal():
    """The refusal a caller in this process's cgroup gets (cgroup-deleg.c's checks, in order)."""
    mnt = cgroup2_mount()
    own = own_cgroup2_path()
    if not mnt or own is None:
        return refusal("this host has no cgroup v2 hierarchy", FIX_V1)
    path = mnt + ("" if own == "/" else own)
    for c in NEEDED:
        if c not in controllers(path):
            if c not in controllers(mnt):
                return refusal("the memory, pids and cpu controllers are on cgroup v1, which "
                               "cannot be delegated", FIX_V1)
            return refusal(f'controller {c} is not available in "{path}" (this process\'s '
                           f"cgroup; its parent must enable it)", FIX_V2)
    return refusal(f'"{path}" (this process\'s cgroup) is not writable by it', FIX_V2)


class Rootless:
    """Runs a private copy of cordon as ROOTLESS_UID with its own state dir."""

    def __init__(self, cordon, base):
        self.cordon = cordon
        self.base = base
        # Copies the user can read and run (the build tree may be private to root). In the
        # kernel-fallback lane the user's cordon runs under the same ENOSYS wrapper.
        self.bin = str(base / "cordon")
        self.helper_path = str(base / "helper")
        shutil.copy2(CORDON_BINARY, self.bin)
        shutil.copy2(cordon.helper_path, self.helper_path)
        self.prefix = []
        if HIDDEN_SYSCALLS:
            shutil.copy2(ENOSYS_TOOL, base / "enosys")
            os.chmod(base / "enosys", 0o755)
            self.prefix = [str(base / "enosys"), ",".join(sorted(HIDDEN_SYSCALLS)), "--"]
        for p in (self.bin, self.helper_path):
            os.chmod(p, 0o755)
        self.state = base / "state"
        self.state.mkdir(mode=0o700)
        os.chown(self.state, ROOTLESS_UID, ROOTLESS_UID)
        self.env = {k: v for k, v in cordon.env.items() if k != "HOME"}

    def argv(self, args, cgroup=None):
        drop = ["setpriv", f"--reuid={ROOTLESS_UID}", f"--regid={ROOTLESS_UID}",
                "--clear-groups", "--"]
        # As root, put the shell we start (and so cordon, which it becomes) into the delegated
        # cgroup, then drop to the user: the way a login manager or systemd starts it there.
        enter = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] if cgroup else []
        return [*enter, *drop, *self.prefix, self.bin, *map(str, args)]

    def cmd(self, *args, cgroup=None, timeout=RUN_TIMEOUT):
        argv = self.argv(args, cgroup)
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rootless cordon did not finish within {timeout} s: {argv}")
        return p

    def run(self, *opts, cmd, cgroup=None, no_cgroup=True):
        """`cordon run --json` as the user; returns conftest's Result."""
        args = ["run", "--state-dir", self.state, "--json",
                *(["--no-cgroup"] if no_cgroup else []), *opts, "--", *cmd]
        p = self.cmd(*args, cgroup=cgroup)
        r = Result(self.argv(args, cgroup), p.returncode, p.stdout, p.stderr)
        assert r.rc == 0, f"rootless cordon run --json failed itself (exit {r.rc})\n{r}"
        r.json = json.loads(r.out)
        return r

    def helper(self, *args, opts=(), **kw):
        return self.run("--ro", f"{self.helper_path}:/helper", *opts, cmd=["/helper", *args],
                        **kw)

    def state_leftovers(self):
        """What a run may leave in its state dir: the slots dir with lock files only (and an
        images dir, empty once the test removed its image)."""
        extra = []
        for p in self.state.rglob("*"):
            rel = p.relative_to(self.state)
            ok = (str(rel) in ("slots", "images") and p.is_dir()) or (
                rel.parent == pathlib.Path("slots") and p.name.endswith(".lock")
                and p.is_file() and p.stat().st_size == 0)
            if not ok:
                extra.append(str(rel))
        return extra


@pytest.fixture
def rootless(cordon):
    base = cordon.mkdir("rootless", 0o755)
    rl = Rootless(cordon, base)
    yield rl
    left = rl.state_leftovers()
    assert not left, f"a rootless run left files in its state dir: {left}"


# ---------------------------------------------------------------------------------------------
# Failing closed, and the explicit opt-out


def test_refused_without_a_delegated_cgroup(rootless):
    p = rootless.cmd("run", "--state-dir", rootless.state, "--", "true")
    assert p.returncode == 125, p
    lines = p.stderr.decode().splitlines()
    assert lines == [expected_refusal()], p.stderr.decode()
    assert p.stdout == b"", p


def test_refused_with_json_still_answers(rootless):
    p = rootless.cmd("run", "--state-dir", rootless.state, "--json", "--", "true")
    assert p.returncode == 125, p
    assert p.stderr.decode().splitlines() == [expected_refusal()], p.stderr.decode()
    j = json.loads(p.stdout)
    assert j["error"]["code"] == "SANDBOX_INTERNAL", j
    assert j["error"]["message"] == expected_refusal()[len("cordon: "):], j


def test_no_cgroup_runs_and_says_so(rootless):
    r = rootless.helper("echo", "hello")
    expect(r, None)
    assert r.stdout == "hello\n", r
    assert r.json["cgroup_limits"] is False, r
    assert r.json["limits_not_enforced"] == NOT_ENFORCED, r
    note = r.json["limits_note"]
    assert "memory is not limited" in note and "RLIMIT_NPROC" in note and "RLIMIT_CPU" in note, r
    assert r.metrics["memory_peak_bytes"] == 0, r


def test_root_no_cgroup_says_so(cordon):
    """--no-cgroup is an explicit opt-out for root too: no cgroup, and the result says so."""
    r = cordon.helper("echo", "x", opts=["--no-cgroup"])
    expect(r, None)
    assert r.json["cgroup_limits"] is False and r.json["limits_not_enforced"] == NOT_ENFORCED, r


def test_root_run_reports_cgroup_limits(cordon):
    r = cordon.helper("echo", "x")
    expect(r, None)
    assert r.json["cgroup_limits"] is True, r
    assert r.json["limits_not_enforced"] == [] and r.json["limits_note"] is None, r


def test_default_state_dir_of_a_user(rootless, cordon):
    """Without --state-dir a user's state lives in $XDG_STATE_HOME/cordon, not /var/lib."""
    xdg = rootless.base / "xdg"
    xdg.mkdir(mode=0o700)
    os.chown(xdg, ROOTLESS_UID, ROOTLESS_UID)
    env = dict(rootless.env, XDG_STATE_HOME=str(xdg))
    env.pop("CORDON_STATE_DIR", None)
    argv = rootless.argv(["run", "--no-cgroup", "--json", "--", "true"])
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                       timeout=RUN_TIMEOUT)
    assert p.returncode == 0, p
    assert json.loads(p.stdout)["status"] == "succeeded", p
    st = (xdg / "cordon").stat()
    assert st.st_uid == ROOTLESS_UID and st.st_mode & 0o077 == 0, oct(st.st_mode)
    assert (xdg / "cordon" / "slots").is_dir()
    shutil.rmtree(xdg)


def test_no_home_no_state_dir(rootless):
    env = {k: v for k, v in rootless.env.items() if k != "CORDON_STATE_DIR"}
    p = subprocess.run(rootless.argv(["run", "--no-cgroup", "--", "true"]),
                       stdin=subprocess.DEVNULL, capture_output=True, env=env,
                       timeout=RUN_TIMEOUT)
    assert p.returncode == 125, p
    assert p.stderr.decode().splitlines() == [
        f"cordon: no state dir for uid {ROOTLESS_UID}: $XDG_STATE_HOME and $HOME are unset "
        "(pass --state-dir or set CORDON_STATE_DIR)"], p.stderr


# ---------------------------------------------------------------------------------------------
# Every layer, as the user


def test_identity_and_privileges(rootless):
    r = rootless.helper("whoami")
    expect(r, None)
    f = dict(kv.split("=", 1) for kv in r.stdout.split())
    assert f["Uid"].split(",")[0] == "0", r  # root of its own user namespace
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(f[cap], 16) == 0, (cap, r)
    assert f["NoNewPrivs"] == "1" and f["Seccomp"] == "2", r
    r = rootless.run("--ro", f"{rootless.helper_path}:/helper",
                     cmd=["/helper", "cat", "/proc/self/uid_map"])
    expect(r, None)
    assert r.stdout.split() == ["0", str(ROOTLESS_UID), "1"], r  # the caller's own uid only


def test_own_uts_and_ipc_namespaces(rootless):
    r = rootless.helper("hostname")
    expect(r, None)
    assert r.stdout == "sandbox\n", r
    # A SysV segment of the caller's own uid (mode 0600) is out of reach: another namespace.
    p = subprocess.run(["setpriv", f"--reuid={ROOTLESS_UID}", f"--regid={ROOTLESS_UID}",
                        "--clear-groups", "--", "ipcmk", "-M", "4096", "-p", "0600"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"ipcmk could not create a SysV segment as the user: {p.stderr.strip()}")
    shmid = re.search(r"(\d+)\s*$", p.stdout).group(1)
    try:
        expect_contained(rootless.helper("shm-attach", shmid))
    finally:
        subprocess.run(["ipcrm", "-m", shmid])


@pytest.mark.parametrize("runtime,code,out", [
    ("python", "print(6 * 7)", "42\n"),
    ("c", '#include <stdio.h>\nint main(void) { puts("c ok"); return 0; }\n', "c ok\n"),
])
def test_runtimes_as_user(rootless, runtime, code, out):
    p = rootless.cmd("run", "--state-dir", rootless.state, "--no-cgroup", "--json",
                     "--runtime", runtime, "-c", code)
    assert p.returncode == 0, p
    j = json.loads(p.stdout)
    assert j["status"] == "succeeded" and j["stdout"] == out, j


def test_image_import_and_run_as_user(rootless, cordon):
    """A user's own image: imported into its state dir, cloned by the sandbox's init."""
    import io
    import tarfile
    tb = rootless.base / "rootfs.tar.gz"
    with tarfile.open(tb, "w:gz") as tar:
        for d in ("tmp", "proc", "dev", "etc", "bin"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(ti)
        for name, data, mode in (("etc/motd", b"imported image\n", 0o644),
                                 ("bin/helper", open(rootless.helper_path, "rb").read(), 0o755)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            tar.addfile(ti, io.BytesIO(data))
    os.chmod(tb, 0o644)
    shutil.copy2(os.path.join(os.path.dirname(CORDON_BINARY), "cordon-image"),
                 rootless.base / "cordon-image")
    p = rootless.cmd("image", "--state-dir", rootless.state, "import", "userimg", tb)
    assert p.returncode == 0, p
    r = rootless.run("--image", "userimg", cmd=["/bin/helper", "cat", "/etc/motd"])
    expect(r, None)
    assert r.stdout == "imported image\n", r
    r = rootless.run("--image", "userimg", cmd=["/bin/helper", "stat", "/usr/bin/python3"])
    assert not r.helper_ok, f"the user's image shows the host's /usr\n{r}"
    p = rootless.cmd("image", "--state-dir", rootless.state, "rm", "userimg")
    assert p.returncode == 0, p


def test_root_only_file_unreadable(rootless, cordon):
    d = cordon.mkdir("secret-dir", 0o755)
    secret = d / "secret"
    secret.write_text("root only\n")
    os.chmod(secret, 0o600)
    r = rootless.helper("read", "/secret", opts=["--ro", f"{secret}:/secret"])
    expect_contained(r)
    assert "EACCES" in r.stdout, r


def test_bind_of_a_path_the_user_cannot_reach_fails_closed(rootless, cordon):
    d = cordon.mkdir("private-dir", 0o700)
    (d / "f").write_text("x")
    p = rootless.cmd("run", "--state-dir", rootless.state, "--no-cgroup", "--ro",
                     f"{d}/f:/f", "--", "true")
    assert p.returncode == 125, p
    lines = p.stderr.decode().splitlines()
    assert lines == [f'cordon: --ro: host path "{d}/f": Permission denied'], p


@pytest.mark.parametrize("path", ["/usr/cordon-escape", "/etc/cordon-escape", "/ro/escape",
                                  "/cordon-escape"])
def test_writes_outside_fail(rootless, cordon, path):
    ro = cordon.mkdir("ro-bind", 0o777)
    os.chown(ro, ROOTLESS_UID, ROOTLESS_UID)  # the user's own directory: still read-only inside
    r = rootless.helper("write", path, "1", opts=["--ro", f"{ro}:/ro"])
    expect_contained(r)
    assert list(ro.iterdir()) == [], "a write reached the read-only bind's host directory"
    assert not os.path.exists("/usr/cordon-escape") and not os.path.exists("/cordon-escape")


def test_scratch_and_rw_bind_writable(rootless, cordon):
    rw = cordon.mkdir("rw-bind", 0o755)
    os.chown(rw, ROOTLESS_UID, ROOTLESS_UID)
    r = rootless.run("--ro", f"{rootless.helper_path}:/helper", "--rw", f"{rw}:/rw",
                     cmd=["/bin/sh", "-c", "/helper write /tmp/a 10 && /helper write /rw/b 10"])
    expect(r, None)
    assert (rw / "b").stat().st_size == 10 and (rw / "b").stat().st_uid == ROOTLESS_UID


@pytest.mark.parametrize("name", ["mount", "unshare-user", "keyctl", "bpf", "ptrace-pid1"])
def test_seccomp_as_user(rootless, name):
    r = rootless.helper("try-syscall", name)
    assert not r.helper_ok, f"{name} SUCCEEDED in a rootless sandbox\n{r}"
    if name == "ptrace-pid1":
        expect_contained(r)
    else:
        expect(r, "SANDBOX_SECURITY_VIOLATION")


def test_no_network(rootless):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        port = srv.getsockname()[1]
        r = rootless.helper("connect", "127.0.0.1", str(port))
        expect_contained(r, ("SANDBOX_SECURITY_VIOLATION", "SANDBOX_RUNTIME_ERROR",
                             "SANDBOX_NETWORK_BLOCKED"))
        srv.setblocking(False)
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()


def test_kill_all_spares_the_callers_own_processes(rootless, cordon, request):
    """Rootless, the sandbox's host uid is the caller's: only the pid namespace keeps its
    kill -9 -1 away from the caller's other processes."""
    canary = Canary(ROOTLESS_UID)
    request.node.exclude_pids.add(canary.proc.pid)
    try:
        r = rootless.helper("kill-all")
        assert r.status in ("succeeded", "failed"), r
        assert canary.alive(), "kill -9 -1 in a rootless sandbox killed a process of its user"
    finally:
        canary.stop()


def test_fork_bomb_held_by_rlimit(rootless):
    r = rootless.helper("forkbomb", opts=["--pids", "16", "-t", "60s"])
    expect(r, "SANDBOX_RUNTIME_ERROR")
    assert r.stdout.startswith("failed forkbomb fork after "), r
    assert int(r.stdout.split()[4]) <= 16 and "EAGAIN" in r.stdout, r


def test_wall_and_cpu_limits_without_cgroup(rootless):
    r = rootless.helper("sleep", "30", opts=["-t", "500ms"])
    expect(r, "SANDBOX_TIMEOUT")
    r = rootless.helper("spin", opts=["--cpu-time", "300ms", "-t", "60s"])
    expect(r, "SANDBOX_CPU_LIMIT")
    assert r.message == ("cpu time limit of 300 ms exceeded (no cgroup: by one process, in "
                         "whole seconds)"), r
    assert r.metrics["cpu_time_ms"] >= 300, r


def test_cpu_time_measured_without_cgroup(rootless):
    """Without a cgroup the CPU metric comes from what init reaped: a shell's two children
    that spin 200 ms each (one of them orphaned to init) add up."""
    r = rootless.run("--ro", f"{rootless.helper_path}:/helper", "--cpu-time", "10s",
                     cmd=["/bin/sh", "-c", "( (/helper cpu-then-exit 200; touch /tmp/done) & ); "
                          "/helper cpu-then-exit 200; "
                          "while [ ! -e /tmp/done ]; do sleep 0.05; done"])
    expect(r, None)
    assert r.metrics["cpu_time_ms"] >= 400, r


def test_concurrent_runs_of_one_user_are_apart(rootless, cordon):
    """Two live rootless runs share a host uid; their scratch spaces stay private."""
    d = cordon.mkdir("conc", 0o777)
    first = subprocess.Popen(
        rootless.argv(["run", "--state-dir", rootless.state, "--no-cgroup", "--json", "-t",
                       "60s", "--ro", f"{rootless.helper_path}:/helper", "--rw", f"{d}:/c",
                       "--", "/bin/sh", "-c",
                       "echo mine > /tmp/private && touch /c/ready && "
                       "while [ ! -e /c/done ]; do sleep 0.05; done"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=rootless.env)
    try:
        assert wait_until(lambda: (d / "ready").exists(), 60), "first run never started"
        r = rootless.helper("read", "/tmp/private")
        expect_contained(r)
        (d / "done").touch()
        out, err = first.communicate(timeout=RUN_TIMEOUT)
        assert first.returncode == 0 and json.loads(out)["status"] == "succeeded", (out, err)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


# ---------------------------------------------------------------------------------------------
# A delegated cgroup v2 subtree (the v2 VM lane)


def v2_delegation_skip_reason():
    mnt = cgroup2_mount()
    if not mnt:
        return "no cgroup v2 hierarchy on this host"
    have = controllers(mnt)
    missing = [c for c in NEEDED if c not in have]
    if missing:
        return (f"the cgroup v2 hierarchy at {mnt} has no {', '.join(missing)} controller "
                "(they are on cgroup v1 here): nothing can be delegated")
    sub = subtree_control(mnt)
    missing = [c for c in NEEDED if c not in sub]
    if missing:
        # Enabling them would change the root cgroup, which these tests did not create.
        return (f"{mnt}/cgroup.subtree_control does not enable {', '.join(missing)}: a child "
                "cgroup to delegate would not get them")
    return None


@pytest.fixture
def delegated():
    """A cgroup delegated to ROOTLESS_UID: made and chowned here, removed afterwards."""
    reason = v2_delegation_skip_reason()
    if reason:
        pytest.skip(reason)
    path = pathlib.Path(cgroup2_mount()) / f"cordon-rootless-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        for f in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(path / f if f else path, ROOTLESS_UID, ROOTLESS_UID)
        yield path
        # As found: no children, no controllers enabled, no process (the run has exited).
        assert [p.name for p in path.iterdir() if p.is_dir()] == [], \
            "the rootless run left cgroups in its delegated cgroup"
        assert subtree_control(path) == [], "controllers left enabled in the delegated cgroup"
    finally:
        for dirpath, dirnames, _ in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def test_delegated_memory_limit(rootless, delegated):
    r = rootless.helper("memhog", "1G", opts=["-m", "64M", "-t", "60s"], cgroup=delegated,
                        no_cgroup=False)
    expect(r, "SANDBOX_MEMORY_LIMIT")
    assert r.json["cgroup_limits"] is True and r.json["limits_not_enforced"] == [], r


def test_delegated_pids_limit(rootless, delegated):
    r = rootless.helper("forkbomb", opts=["--pids", "16", "-t", "60s"], cgroup=delegated,
                        no_cgroup=False)
    expect(r, "SANDBOX_PROCESS_LIMIT")


def test_delegated_cpu_limit(rootless, delegated):
    r = rootless.helper("spin", "2", opts=["--cpu-time", "300ms", "-t", "60s"],
                        cgroup=delegated, no_cgroup=False)
    expect(r, "SANDBOX_CPU_LIMIT")
    assert r.message == "cpu time limit of 300 ms exceeded", r
    assert r.metrics["cpu_time_ms"] >= 300, r


def test_delegated_cgroup_with_other_processes_refused(rootless, delegated):
    """cgroup v2 allows no process beside child cgroups with controllers: with another
    process in the delegated cgroup, cordon refuses rather than move it."""
    other = subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec sleep 600',
                              str(delegated)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        procs = delegated / "cgroup.procs"
        assert wait_until(lambda: str(other.pid) in procs.read_text().split(), 30), \
            "the other process never entered the delegated cgroup"
        p = rootless.cmd("run", "--state-dir", rootless.state, "--", "true", cgroup=delegated)
    finally:
        other.kill()
        other.wait()
    assert p.returncode == 125, p
    assert p.stderr.decode().splitlines() == [refusal(
        f'"{delegated}" (this process\'s cgroup) also holds other processes, and cgroup v2 '
        "allows no processes beside cgroups with controllers",
        "start cordon alone in its delegated cgroup: systemd-run --user --scope -p "
        "Delegate=yes cordon run ..., or pass --no-cgroup to run without memory and pids "
        "limits")], p.stderr.decode()


def test_undelegated_subtree_control_refused(rootless, delegated):
    os.chown(delegated / "cgroup.subtree_control", 0, 0)
    p = rootless.cmd("run", "--state-dir", rootless.state, "--", "true", cgroup=delegated)
    assert p.returncode == 125, p
    assert p.stderr.decode().splitlines() == [refusal(
        f'"{delegated}/cgroup.subtree_control" (this process\'s cgroup) is not writable by it',
        FIX_V2)], p.stderr.decode()


def test_delegated_supervisor_killed(rootless, delegated):
    """A rootless supervisor killed by SIGKILL mid-run: its sandbox dies with it (init has
    PDEATHSIG; the pid namespace goes with init), and what stays in the delegated cgroup is
    empty cgroups only, nothing running."""
    args = ["run", "--state-dir", rootless.state, "--json", "-t", "120s", "--ro",
            f"{rootless.helper_path}:/helper", "--", "/helper", "sleep", "100"]
    p = subprocess.Popen(rootless.argv(args, delegated), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=rootless.env)
    sandbox_cg = delegated / "cordon" / "low" / "low-0"
    try:
        def sandbox_running():
            try:
                return (sandbox_cg / "cgroup.procs").read_text().split()
            except OSError:
                return []
        assert wait_until(sandbox_running, 60), "the sandbox never started in its cgroup"
        p.kill()
        p.wait()
        assert wait_until(lambda: not sandbox_running(), 30), \
            f"the sandbox outlived its SIGKILLed supervisor: {sandbox_running()}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    left = sorted(str(pathlib.Path(d).relative_to(delegated))
                  for d, _, _ in os.walk(delegated) if pathlib.Path(d) != delegated)
    assert set(left) == {"cordon", "cordon/low", "cordon/low/low-0", "cordon-supervisor"}, left
    for d in left:
        assert (delegated / d / "cgroup.procs").read_text() == "", (d, "still has processes")
    # The administrator's cleanup (cordon cannot do it: the next process cannot even enter a
    # cgroup whose controllers are enabled): remove the empty cgroups, disable controllers.
    for d in sorted(left, key=lambda x: -x.count("/")):
        os.rmdir(delegated / d)
    for c in reversed(subtree_control(delegated)):
        (delegated / "cgroup.subtree_control").write_text(f"-{c}")


def test_delegated_runs_started_in_the_supervisor_leaf(rootless, delegated):
    """cordon started inside the leaf another cordon made (a daemon's spawner, say) uses the
    delegated cgroup above it as set up, and leaves that layout alone; two such runs at once
    both get their limits."""
    leaf = delegated / "cordon-supervisor"
    leaf.mkdir()
    for f in ("", "cgroup.procs"):
        os.chown(leaf / f if f else leaf, ROOTLESS_UID, ROOTLESS_UID)
    for c in NEEDED:  # what the first cordon did; allowed as D itself holds no process
        (delegated / "cgroup.subtree_control").write_text(f"+{c}")
    # Runs that start and end at different moments: one's teardown must never take the
    # parent cgroup from under another (the shared flock on D).
    def args(*cmd):
        return ["run", "--state-dir", rootless.state, "--json", "-m", "64M", "-t", "60s",
                "--ro", f"{rootless.helper_path}:/helper", "--", "/helper", *cmd]
    cmds = [("memhog", "1G"), ("memhog", "1G")] + [("echo", str(i)) for i in range(4)]
    runs = [(cmd, subprocess.Popen(rootless.argv(args(*cmd), leaf), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=rootless.env))
            for cmd in cmds]
    try:
        for cmd, p in runs:
            out, err = p.communicate(timeout=RUN_TIMEOUT)
            assert p.returncode == 0, (cmd, out, err)
            j = json.loads(out)
            want = "SANDBOX_MEMORY_LIMIT" if cmd[0] == "memhog" else None
            assert (j["error"] or {}).get("code") == want and j["cgroup_limits"], (cmd, j)
    finally:
        for _, p in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.name for p in delegated.iterdir() if p.is_dir()] == ["cordon-supervisor"]
    assert sorted(subtree_control(delegated)) == sorted(NEEDED)
    # Undo what this test set up, so the fixture finds the cgroup as it made it.
    leaf.rmdir()
    for c in NEEDED:
        (delegated / "cgroup.subtree_control").write_text(f"-{c}")
