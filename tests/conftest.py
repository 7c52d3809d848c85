"""Integration suite: drives the real `cordon` binary with the static attacker helper.

Run: /usr/bin/python3 -m pytest tests/ -q   (as root: cordon needs cgroups and user namespaces)

Environment:
  CORDON         the binary under test (default build/cordon; the ASan lane sets build-san/cordon)
  CORDON_HELPER  the static helper (default build/cordon-test-helper)

Every test gets its own state dir and, through the autouse `host_untouched` fixture, is checked
afterwards for what a sandbox must never leave behind: a dead host canary, cgroups under a
`cordon` parent, processes running with a sandbox uid (>= 1000000000), new mounts.
"""

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


# ---------------------------------------------------------------------------------------------
# Host state: what must be left as it was found


def cgroup_parents():
    """The `cordon` parent cgroups: /sys/fs/cgroup/<controller>/cordon on v1 (and the v2
    hierarchy mounted at unified/ on hybrid hosts), /sys/fs/cgroup/cordon on v2."""
    return [p for p in glob.glob("/sys/fs/cgroup/*/cordon") + ["/sys/fs/cgroup/cordon"]
            if os.path.isdir(p)]


def leftover_cgroups():
    found = []
    for parent in cgroup_parents():
        for dirpath, dirnames, _ in os.walk(parent):
            found.extend(os.path.join(dirpath, d) for d in dirnames)
    return sorted(found, key=lambda p: -p.count("/"))  # deepest first, for rmdir


def proc_uids(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return [int(x) for x in line.split()[1:]]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return None


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def sandbox_processes(exclude=()):
    """(pid, uids, cmdline) of every live host process running with a sandbox uid. Zombies
    are left out: a dead sandbox init whose supervisor was SIGKILLed is reparented to the
    host's init, which reaps it in its own time; it runs nothing and holds nothing."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in exclude:
            continue
        if proc_state(d) in ("Z", "X", None):
            continue
        uids = proc_uids(d)
        if uids and any(SANDBOX_UID_MIN <= u <= SANDBOX_UID_MAX for u in uids):
            found.append((int(d), uids, proc_cmdline(d)))
    return found


def mounts():
    """The host's mount table, without ids (they change on remount)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.add((fields[4], fields[3], fields[sep + 1], fields[sep + 2]))
    return out


def leftovers(mounts_before, exclude_pids=()):
    problems = []
    for cg in leftover_cgroups():
        problems.append(f"leftover cgroup {cg}")
    for pid, uids, cmd in sandbox_processes(exclude_pids):
        problems.append(f"leftover sandbox-uid process {pid} uids={uids}: {cmd}")
    for m in sorted(mounts() - mounts_before):
        problems.append(f"leftover mount {m[0]} ({m[2]} {m[3]}, root {m[1]})")
    return problems


def clean_leftovers(mounts_before, exclude_pids=()):
    """After a failure has been reported: remove what was left so later tests start clean."""
    for pid, _, _ in sandbox_processes(exclude_pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    for cg in leftover_cgroups():
        try:
            os.rmdir(cg)
        except OSError:
            pass
    for m in sorted(mounts() - mounts_before, key=lambda m: -len(m[0])):
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
    before = mounts()
    request.node.exclude_pids = set()
    yield
    exclude = request.node.exclude_pids | {c.proc.pid for c in canaries.values()}
    clean = wait_until(lambda: not leftovers(before, exclude), TEARDOWN_GRACE)
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
