"""Integration suite: drives the real `cordon` binary with the static attacker helper.

Run: /usr/bin/python3 -m pytest tests/ -q   (as root: cordon needs cgroups and user namespaces)

Environment:
  CORDON         the binary under test (default build/cordon; the ASan lane sets build-san/cordon)
  CORDON_HELPER  the static helper (default build/cordon-test-helper)
  CORDON_BINARY  the cordon executable itself, where CORDON is a wrapper script (default CORDON)
  CORDON_ENOSYS  the ENOSYS wrapper tool (default build/cordon-enosys)
  CORDON_TEST_ENOSYS  comma-separated system calls the kernel-fallback lane hides from cordon
                 (scripts/test wraps CORDON in build/cordon-enosys); tests that need one of them
                 inside the sandbox skip with the reason

Every test gets its own state dir and, through the autouse `host_untouched` fixture, is checked
afterwards for what a sandbox must never leave behind: a dead host canary, cgroups under a
`cordon` parent, processes running with a sandbox uid (>= 1000000000), new mounts.
"""

import ctypes
import dataclasses
import glob
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORDON = os.path.abspath(os.environ.get("CORDON", ROOT / "build" / "cordon"))
CORDON_BINARY = os.path.abspath(os.environ.get("CORDON_BINARY", CORDON))
HIDDEN_SYSCALLS = frozenset(x for x in os.environ.get("CORDON_TEST_ENOSYS", "").split(",") if x)
# The kernel-fallback tool (tests/enosys.c): `cordon-enosys SYSCALL,... -- COMMAND...`.
ENOSYS_TOOL = os.path.abspath(os.environ.get("CORDON_ENOSYS", ROOT / "build" / "cordon-enosys"))
HELPER_SRC = os.path.abspath(os.environ.get("CORDON_HELPER", ROOT / "build" / "cordon-test-helper"))

# The core maps sandbox root to host uids from here up (SECURITY.md layer 1).
SANDBOX_UID_MIN = 1_000_000_000
SANDBOX_UID_MAX = 2**32 - 2

# An environment variable of the caller that must never reach a sandbox (clean environment).
HOST_LEAK_VAR = "CORDON_TEST_HOST_LEAK"
HOST_LEAK_VALUE = "leaked-from-host-" + uuid.uuid4().hex[:8]

RUN_TIMEOUT = 180  # test-side bound on one cordon invocation: generous, 2-core CI under load
TEARDOWN_GRACE = 2.0  # asynchronous teardown allowance for the leftover checks

ERROR_CODES = {
    "SANDBOX_TIMEOUT", "SANDBOX_CPU_LIMIT", "SANDBOX_MEMORY_LIMIT", "SANDBOX_PROCESS_LIMIT",
    "SANDBOX_OUTPUT_LIMIT", "SANDBOX_FILE_LIMIT", "SANDBOX_NETWORK_BLOCKED",
    "SANDBOX_SECURITY_VIOLATION", "SANDBOX_COMPILE_ERROR", "SANDBOX_RUNTIME_ERROR",
    "SANDBOX_CANCELLED", "SANDBOX_INTERNAL",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes several seconds")
    become_subreaper()


# ---------------------------------------------------------------------------------------------
# Host state: what must be left as it was found
#
# The host may be shared: another suite (the ASan lane, a colleague, a benchmark) can run
# cordon at the same time. So only what this pytest process started counts: it is made a
# child subreaper (pytest_configure), so every process of its runs, even one orphaned by a
# SIGKILLed supervisor, stays its descendant; and a cgroup counts only if it appeared during
# the test and holds nobody else's processes. Cleanup after a failure touches only our own.

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def proc_table():
    """pid -> (ppid, state, uids) of every process on the host."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        ppid, state, uids = 0, None, []
        try:
            with open(f"/proc/{d}/status") as f:
                for line in f:
                    if line.startswith("PPid:"):
                        ppid = int(line.split()[1])
                    elif line.startswith("State:"):
                        state = line.split()[1]
                    elif line.startswith("Uid:"):
                        uids = [int(x) for x in line.split()[1:]]
        except OSError:
            continue
        table[int(d)] = (ppid, state, uids)
    return table


def is_mine(pid, table):
    """pid is this pytest process's descendant."""
    me = os.getpid()
    for _ in range(4096):
        if pid == me:
            return True
        if pid <= 1 or pid not in table:
            return False
        pid = table[pid][0]
    return False


def is_sandbox_uid(uids):
    return any(SANDBOX_UID_MIN <= u <= SANDBOX_UID_MAX for u in uids)


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def sandbox_processes(exclude=()):
    """(pid, uids, cmdline) of every live process of our runs running with a sandbox uid.
    Zombies are left out: a dead process runs nothing and holds nothing (reap_adopted() clears
    the ones reparented to us)."""
    table = proc_table()
    return [(pid, uids, proc_cmdline(pid)) for pid, (_, state, uids) in table.items()
            if state not in ("Z", "X") and is_sandbox_uid(uids) and pid not in exclude
            and is_mine(pid, table)]


def reap_adopted(keep=()):
    """Reap zombies that were reparented to us (we are a subreaper); `keep` are Popen
    children whose status their Popen object still has to collect."""
    for pid, (ppid, state, _) in proc_table().items():
        if ppid == os.getpid() and state == "Z" and pid not in keep:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def cgroup_parents():
    """The `cordon` parent cgroups: /sys/fs/cgroup/<controller>/cordon on v1 (and the v2
    hierarchy mounted at unified/ on hybrid hosts), /sys/fs/cgroup/cordon on v2, and
    /sys/fs/cgroup/<delegated>/cordon for a rootless caller's delegated v2 subtree."""
    return [p for p in glob.glob("/sys/fs/cgroup/*/cordon") + ["/sys/fs/cgroup/cordon"]
            if os.path.isdir(p)]


TRUST_LEVELS = ("high", "medium", "low", "untrusted")


# On a pure cgroup v2 host (the VM lane) cordon must create nothing outside its own parent
# and change no cgroup it did not create: the root's subtree_control and its set of children
# stay as they were, and cordon's parent enables only the controllers cordon needs.
CG2_ROOT = "/sys/fs/cgroup"
CORDON_CONTROLLERS = {"memory", "pids", "cpu"}


def pure_v2():
    return os.path.exists(os.path.join(CG2_ROOT, "cgroup.controllers"))


def read_words(path):
    try:
        with open(path) as f:
            return frozenset(f.read().split())
    except OSError:
        return None


def v2_root_state():
    """(root subtree_control, root's child cgroups) on a pure v2 host, else None."""
    if not pure_v2():
        return None
    try:
        children = frozenset(e.name for e in os.scandir(CG2_ROOT) if e.is_dir())
    except OSError:
        children = frozenset()
    return read_words(os.path.join(CG2_ROOT, "cgroup.subtree_control")), children


def v2_root_problems(before):
    """What cordon changed at the v2 root since `before` (v2_root_state())."""
    after = v2_root_state()
    if before is None or after is None:
        return []
    problems = []
    if after[0] != before[0]:
        problems.append(f"{CG2_ROOT}/cgroup.subtree_control changed: "
                        f"{sorted(before[0] or ())} -> {sorted(after[0] or ())}")
    for name in sorted(after[1] - before[1] - {"cordon"}):
        problems.append(f"cgroup {CG2_ROOT}/{name} created outside cordon's parent")
    enabled = read_words(os.path.join(CG2_ROOT, "cordon", "cgroup.subtree_control"))
    if enabled and enabled - CORDON_CONTROLLERS:
        problems.append(f"cordon's parent enables more than it needs: {sorted(enabled)}")
    return problems


def cgroups():
    """{(path, inode)} of every cgroup below a cordon parent (the inode tells a re-created
    cgroup from the one that was there before). The level subtrees (cordon/low, ...) are
    cordon's own and stay, like the parent: not counted."""
    found = set()
    for parent in cgroup_parents():
        for dirpath, dirnames, _ in os.walk(parent):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if dirpath == parent and d in TRUST_LEVELS:
                    continue
                try:
                    found.add((p, os.stat(p).st_ino))
                except OSError:
                    pass
    return found


def cgroup_pids(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def slot_lock_holders(name):
    """pids holding a flock on cordon's slot lock `name` (read from /proc/locks, so looking
    takes no lock). Empty when the file or the lock does not exist."""
    try:
        st = os.stat(f"/run/cordon/slots/{name}.lock")
    except OSError:
        return []
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = []
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "FLOCK" in fields and want in fields:
                holders.append(int(fields[fields.index(want) - 1]))
    return holders


def leftover_cgroups(before=frozenset()):
    """Cgroups created since `before` that are not another live run's, deepest first."""
    table = proc_table()
    found = []
    for path, ino in cgroups() - set(before):
        if any(not is_mine(pid, table) for pid in cgroup_pids(path)):
            continue  # another suite's live sandbox
        if any(not is_mine(pid, table) for pid in slot_lock_holders(os.path.basename(path))):
            continue  # another supervisor holds this slot: its run, being set up or torn down
        found.append(path)
    return sorted(found, key=lambda p: -p.count("/"))


def mounts():
    """The host's mount table, without ids (they change on remount)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.add((fields[4], fields[3], fields[sep + 1], fields[sep + 2]))
    return out


@dataclasses.dataclass
class HostState:
    mounts: set
    cgroups: set
    v2_root: tuple = None


def snapshot():
    return HostState(mounts(), cgroups(), v2_root_state())


def leftovers(before, exclude_pids=()):
    problems = []
    for cg in leftover_cgroups(before.cgroups):
        problems.append(f"leftover cgroup {cg} (procs: {cgroup_pids(cg)})")
    for pid, uids, cmd in sandbox_processes(exclude_pids):
        problems.append(f"leftover sandbox-uid process {pid} uids={uids}: {cmd}")
    for m in sorted(mounts() - before.mounts):
        problems.append(f"leftover mount {m[0]} ({m[2]} {m[3]}, root {m[1]})")
    problems += v2_root_problems(before.v2_root)
    return problems


def clean_leftovers(before, exclude_pids=()):
    """After a failure has been reported: remove what our runs left, so later tests start
    clean. Stale cgroups are left to cordon's own sweep (the next run)."""
    for pid, _, _ in sandbox_processes(exclude_pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    reap_adopted()
    for m in sorted(mounts() - before.mounts, key=lambda m: -len(m[0])):
        subprocess.run(["umount", "-l", m[0]], stderr=subprocess.DEVNULL)


def wait_until(pred, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def workbase():
    """A world-traversable temp dir for state dirs and bind sources, so that a bind works
    whichever process (host root or the sandbox's mapped root) looks the path up. The one test
    about private (0700) bind sources makes its own."""
    base = tempfile.mkdtemp(prefix="cordon-test-", dir="/tmp")
    os.chmod(base, 0o755)
    yield pathlib.Path(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def helper(workbase):
    """A private copy of the helper, so a sandbox that managed to write its own binary could
    not damage the build output (and the write-proc-exe test can hash it)."""
    if not os.access(HELPER_SRC, os.X_OK):
        pytest.fail(f"{HELPER_SRC} is not built: run `make`")
    dst = workbase / "cordon-test-helper"
    shutil.copy2(HELPER_SRC, dst)
    os.chmod(dst, 0o755)
    return str(dst)


class Canary:
    def __init__(self, uid=None):
        def drop():
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
        self.uid = uid
        self.proc = subprocess.Popen(["sleep", "100000"], preexec_fn=drop,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def canaries():
    """Host processes that every sandbox must leave alone: one as root, one as nobody."""
    c = {"root": Canary(), "nobody": Canary(65534)}
    yield c
    for k in c.values():
        k.stop()


@pytest.fixture(autouse=True)
def host_untouched(request, canaries):
    before = snapshot()
    request.node.exclude_pids = set()
    yield
    canary_pids = {c.proc.pid for c in canaries.values()}
    exclude = request.node.exclude_pids | canary_pids

    def clean_now():
        reap_adopted(keep=canary_pids)
        return not leftovers(before, exclude)

    clean = wait_until(clean_now, TEARDOWN_GRACE)
    problems = [] if clean else leftovers(before, exclude)
    for name, c in list(canaries.items()):
        if not c.alive():
            problems.append(f"host canary ({name}, pid {c.proc.pid}) was killed: "
                            f"returncode {c.proc.returncode}")
            canaries[name] = Canary(c.uid)
    if problems:
        clean_leftovers(before, exclude)
        pytest.fail("host not left as found:\n  " + "\n  ".join(problems), pytrace=False)


@dataclasses.dataclass(repr=False)
class Result:
    argv: list
    rc: int
    out: bytes  # cordon's own stdout
    err: bytes  # cordon's own stderr
    json: dict = None

    # Fields of the result object (API.md); only with --json / --result-file.
    @property
    def status(self):
        return self.json["status"]

    @property
    def code(self):
        e = self.json.get("error")
        return e["code"] if e else None

    @property
    def message(self):
        err = self.json.get("error") if self.json else None
        return (err or {}).get("message") or ""

    @property
    def stdout(self):
        return self.json.get("stdout") or ""

    @property
    def stderr(self):
        return self.json.get("stderr") or ""

    @property
    def exit_code(self):
        return self.json.get("exit_code")

    @property
    def metrics(self):
        return self.json.get("metrics") or {}

    @property
    def helper_ok(self):
        """The helper reported that the forbidden thing succeeded (exit 0 and "ok ...")."""
        return self.exit_code == 0 and self.stdout.startswith("ok ")

    def __repr__(self):
        return f"<Result rc={self.rc} code={self.code if self.json else None}>"

    def __str__(self):
        lines = [f"argv: {' '.join(map(str, self.argv))}", f"cordon exit status: {self.rc}"]
        if self.err:
            lines.append(f"cordon stderr: {self.err[-2000:].decode(errors='replace')}")
        if self.json is not None:
            j = dict(self.json)
            for k in ("stdout", "stderr", "compile_output"):
                if isinstance(j.get(k), str) and len(j[k]) > 600:
                    j[k] = j[k][:300] + f"...<{len(j[k])} chars>..." + j[k][-300:]
            lines.append("result: " + json.dumps(j, indent=1))
        elif self.out:
            lines.append(f"cordon stdout: {self.out[:1000].decode(errors='replace')}")
        return "\n".join(lines)


class Cordon:
    """One test's handle on cordon: its state dir, its temp dir, and ways to run."""

    def __init__(self, helper, state_dir, tmp):
        self.bin = CORDON
        self.helper_path = helper
        self.state_dir = str(state_dir)
        self.tmp = tmp
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "CORDON_STATE_DIR": self.state_dir,
            HOST_LEAK_VAR: HOST_LEAK_VALUE,
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]

    def mkdir(self, name, mode=0o755):
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, mode)
        return d

    def cmd(self, *args, timeout=RUN_TIMEOUT, check_rc=None, wrap=(), **kw):
        """Run `cordon ARGS...` and return a Result (no JSON parsing). `wrap` is a command
        prefix that execs cordon (e.g. a shell that sets up extra fds)."""
        argv = [*wrap, self.bin, *map(str, args)]
        kw.setdefault("stdin", subprocess.DEVNULL)
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=self.env, timeout=timeout, **kw)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"cordon did not finish within {timeout} s (hung?): {' '.join(argv)}\n"
                        f"stderr: {(e.stderr or b'')[-2000:].decode(errors='replace')}")
        r = Result(argv, p.returncode, p.stdout, p.stderr)
        if check_rc is not None:
            assert r.rc == check_rc, f"unexpected exit status\n{r}"
        return r

    def run(self, *opts, cmd, json_=True, **kw):
        """`cordon run --state-dir S [--json] OPTS -- CMD...`; with json_, the result object is
        parsed and cordon must have exited 0 (the verdict is in the JSON)."""
        args = ["run", "--state-dir", self.state_dir]
        if json_:
            args.append("--json")
        r = self.cmd(*args, *opts, "--", *cmd, **kw)
        if json_:
            assert r.rc == 0, f"cordon run --json failed itself (exit {r.rc})\n{r}"
            try:
                r.json = json.loads(r.out)
            except ValueError as e:
                pytest.fail(f"--json output is not JSON ({e})\n{r}")
        return r

    def helper(self, *args, opts=(), **kw):
        """Run the helper inside a sandbox: `cordon run ... --ro HELPER:/helper OPTS --
        /helper ARGS...`."""
        return self.run("--ro", f"{self.helper_path}:/helper", *opts,
                        cmd=["/helper", *args], **kw)

    def runtime(self, name, *opts, code=None, file=None, json_=True, **kw):
        args = ["run", "--state-dir", self.state_dir]
        if json_:
            args.append("--json")
        args += ["--runtime", name, *opts]
        args += ["-c", code] if code is not None else [file]
        r = self.cmd(*args, **kw)
        if json_:
            assert r.rc == 0, f"cordon run --json failed itself (exit {r.rc})\n{r}"
            r.json = json.loads(r.out)
        return r


@pytest.fixture
def cordon(helper, workbase, request):
    if not os.access(CORDON, os.X_OK):
        pytest.fail(f"{CORDON} is not built: run `make`")
    tmp = workbase / (request.node.name[:60].replace("/", "_") + "-" + uuid.uuid4().hex[:6])
    tmp.mkdir()
    os.chmod(tmp, 0o755)
    state = tmp / "state"
    state.mkdir()
    return Cordon(helper, state, tmp)


# ---------------------------------------------------------------------------------------------
# Assertions shared by the test files


def expect(r, code):
    """The run ended with error code `code` (None: succeeded)."""
    if code is None:
        assert r.status == "succeeded" and r.code is None, f"expected success\n{r}"
    else:
        assert r.code == code, f"expected {code}, got {r.code}\n{r}"
        assert r.status == "failed", f"a {code} run must have status failed\n{r}"


def expect_contained(r, allowed=("SANDBOX_SECURITY_VIOLATION", "SANDBOX_RUNTIME_ERROR")):
    """A hostile action did not succeed: either the sandbox killed it, or the helper was
    refused and said so."""
    assert not r.helper_ok, f"the forbidden action SUCCEEDED\n{r}"
    assert r.status == "failed", f"the hostile run must not succeed\n{r}"
    assert r.code in allowed, f"unexpected verdict {r.code} (allowed: {allowed})\n{r}"
    if r.code == "SANDBOX_RUNTIME_ERROR":
        assert r.stdout.startswith("denied ") or r.stdout.startswith("failed "), \
            f"the helper exited non-zero without saying it was refused\n{r}"
