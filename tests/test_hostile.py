"""Hostile behaviours of SECURITY.md run as the attacker inside `cordon run`: each must be
contained (the forbidden thing fails), get the right verdict, and leave the host untouched
(the autouse fixture checks canaries, cgroups, sandbox-uid processes and mounts)."""

import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import termios
import threading
import time
import tty
import uuid

import pytest

from conftest import (CORDON, CORDON_BINARY, HIDDEN_SYSCALLS, Canary, expect, expect_contained,
                      wait_until)

# ---------------------------------------------------------------------------------------------
# seccomp (SECURITY.md layer 7): "A violation kills the run with SANDBOX_SECURITY_VIOLATION".

KILLED_BY_FILTER = [
    "mount", "umount", "pivot_root",
    "unshare-user", "unshare-net", "unshare-mnt", "setns", "clone-newuser",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "init_module", "finit_module", "delete_module", "kexec_load",
    "settimeofday", "clock_settime",
    "swapon", "reboot", "acct", "quotactl",
    "personality",
    "x32-getpid",
]

# Refused, but not necessarily by a kill:
# - clone3's flags live in memory the filter cannot read, so the usual answer is ENOSYS (glibc
#   then falls back to clone, whose flags the filter does check);
# - ptrace of PID 1 may be refused by the filter or by the kernel (init is not dumpable);
# - open_by_handle_at ("shocker") needs CAP_DAC_READ_SEARCH in the initial namespace.
REFUSED_ANY_WAY = ["clone3", "ptrace-pid1", "open_by_handle_at"]


@pytest.mark.parametrize("name", KILLED_BY_FILTER)
def test_syscall_killed_by_filter(cordon, name):
    r = cordon.helper("try-syscall", name)
    assert not r.helper_ok, f"{name} SUCCEEDED inside the sandbox\n{r}"
    expect(r, "SANDBOX_SECURITY_VIOLATION")


@pytest.mark.parametrize("name", REFUSED_ANY_WAY)
def test_syscall_refused(cordon, name):
    expect_contained(cordon.helper("try-syscall", name))


def host_has_ia32_emulation(helper):
    p = subprocess.run([helper, "try-syscall", "int80-getpid"], capture_output=True)
    return b"no IA32 emulation" not in p.stdout


def test_i386_syscall_killed_by_filter(cordon, helper):
    if not host_has_ia32_emulation(helper):
        pytest.skip("kernel has no IA32 emulation: int 0x80 faults before any syscall, so "
                    "there is no 32-bit syscall for the filter to stop")
    r = cordon.helper("try-syscall", "int80-getpid")
    expect(r, "SANDBOX_SECURITY_VIOLATION")


def test_seccomp_kill_exit_status_159(cordon):
    r = cordon.helper("try-syscall", "mount", json_=False)
    assert r.rc == 159, r


def test_filter_is_loaded_and_privileges_dropped(cordon):
    r = cordon.helper("whoami")
    expect(r, None)
    f = dict(kv.split("=", 1) for kv in r.stdout.split())
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(f[cap], 16) == 0, f"{cap} is not empty\n{r}"
    assert f["NoNewPrivs"] == "1", r
    assert f["Seccomp"] == "2", r
    assert int(f["hostuid"]) >= 1_000_000_000, f"sandbox root maps to a low host uid\n{r}"


# ---------------------------------------------------------------------------------------------
# Sockets and network


def test_vsock_killed_by_filter(cordon):
    r = cordon.helper("socket", "vsock")
    assert not r.helper_ok, r
    expect(r, "SANDBOX_SECURITY_VIOLATION")


@pytest.mark.parametrize("family", ["packet", "raw", "raw6"])
def test_raw_sockets_refused(cordon, family):
    expect_contained(cordon.helper("socket", family))


@pytest.mark.parametrize("family", ["inet", "inet6", "unix"])
def test_ordinary_sockets_still_work(cordon, family):
    # Positive control: the filter is not a blanket socket ban.
    r = cordon.helper("socket", family)
    expect(r, None)


NET_ALLOWED = ("SANDBOX_RUNTIME_ERROR", "SANDBOX_NETWORK_BLOCKED", "SANDBOX_SECURITY_VIOLATION")


@pytest.mark.parametrize("family,addr", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "::1")], ids=["v4", "v6"])
def test_connect_to_host_loopback_fails(cordon, family, addr):
    srv = socket.socket(family, socket.SOCK_STREAM)
    try:
        srv.bind((addr, 0))
    except OSError as e:
        srv.close()
        pytest.skip(f"host has no {addr} to listen on: {e}")
    srv.listen(8)
    port = srv.getsockname()[1]
    try:
        r = cordon.helper("connect", addr, str(port))
        expect_contained(r, NET_ALLOWED)
        srv.setblocking(False)
        with pytest.raises(BlockingIOError):
            conn, peer = srv.accept()
            conn.close()
            pytest.fail(f"the host's loopback server accepted a connection from {peer}")
    finally:
        srv.close()


@pytest.mark.parametrize("addr", ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"])
def test_connect_outside_fails(cordon, addr):
    expect_contained(cordon.helper("connect", addr, "80"), NET_ALLOWED)


def test_only_loopback_interface(cordon):
    r = cordon.helper("cat", "/proc/net/dev")
    expect(r, None)
    ifaces = {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:] if ":" in line}
    assert ifaces == {"lo"}, f"interfaces other than lo: {ifaces}\n{r}"


def test_host_abstract_unix_socket_unreachable(cordon):
    name = "cordon-test-" + uuid.uuid4().hex[:10]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("\0" + name)
    srv.listen(1)
    try:
        expect_contained(cordon.helper("connect-unix", "@" + name), NET_ALLOWED)
    finally:
        srv.close()


def test_host_sysv_shm_unreachable(cordon):
    p = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"ipcmk could not create a SysV segment on the host: {p.stderr.strip()}")
    shmid = re.search(r"(\d+)\s*$", p.stdout).group(1)
    try:
        expect_contained(cordon.helper("shm-attach", shmid))
    finally:
        subprocess.run(["ipcrm", "-m", shmid])


def landlock_abi():
    if "landlock_create_ruleset" in HIDDEN_SYSCALLS:
        return -1, "hidden from cordon by the cordon-enosys lane"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return abi, os.strerror(ctypes.get_errno()) if abi < 0 else ""


def test_landlock_denies_tcp_bind(cordon):
    abi, why = landlock_abi()
    if abi < 4:
        pytest.skip(f"kernel Landlock ABI {abi} < 4 ({why or 'no network rules'}): "
                    "TCP bind/connect cannot be restricted by Landlock here")
    expect_contained(cordon.helper("bind", "127.0.0.1", "8080"), NET_ALLOWED)


# ---------------------------------------------------------------------------------------------
# Reading what is not the sandbox's


def test_read_host_secrets_fails(cordon):
    host_secret = f"/tmp/cordon-host-secret-{uuid.uuid4().hex[:8]}"
    host_shm = f"/dev/shm/cordon-host-secret-{uuid.uuid4().hex[:8]}"
    for p in (host_secret, host_shm):
        with open(p, "w") as f:
            f.write("host secret\n")
    try:
        for path in ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root", "/root/.bashrc",
                     "/home", "/proc/kcore", "/sys/firmware", "/dev/mem", "/dev/kmem",
                     "/dev/port", "/dev/kmsg", "/sys/kernel", "/sys/fs/cgroup", "/boot",
                     "/var/log", "/run/cordon", cordon.state_dir, "/work", host_secret,
                     "/proc/1/root/etc/shadow", "/etc/ssh", host_shm]:
            r = cordon.helper("read", path)
            assert not r.helper_ok, f"could read {path} from inside the sandbox\n{r}"
            assert r.status == "failed" and r.stdout.startswith("denied"), r
    finally:
        os.unlink(host_secret)
        os.unlink(host_shm)


def test_other_sandbox_workspace_invisible(cordon):
    token = uuid.uuid4().hex
    d = cordon.mkdir("a-out", 0o777)
    a = subprocess.Popen([CORDON, "run", "--state-dir", cordon.state_dir, "--json", "-t", "60s",
                          "--rw", f"{d}:/out", "--", "/bin/sh", "-c",
                          f"echo {token} > /tmp/secretA && touch /out/ready && sleep 4"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env)
    try:
        assert wait_until(lambda: (d / "ready").exists() or a.poll() is not None, 30), \
            "sandbox A never started"
        assert a.poll() is None, "sandbox A ended early"
        r = cordon.helper("read", "/tmp/secretA")
        assert not r.helper_ok and token not in r.stdout, f"B read A's workspace\n{r}"
        r = cordon.helper("ls", "/proc")
        expect(r, None)
        pids = [n for n in r.stdout.split() if n.isdigit()]
        assert len(pids) <= 4, f"B sees processes that are not its own: {pids}\n{r}"
    finally:
        out, err = a.communicate(timeout=120)
    assert a.returncode == 0 and b'"succeeded"' in out, (out, err)
    assert not os.path.exists("/tmp/secretA")


def test_host_pids_invisible_and_unkillable(cordon, canaries):
    r = cordon.helper("ls", "/proc")
    expect(r, None)
    pids = [n for n in r.stdout.split() if n.isdigit()]
    assert len(pids) <= 4, f"host processes visible in /proc: {pids}\n{r}"
    for c in canaries.values():
        r = cordon.helper("kill-pid", str(c.proc.pid), "9")
        assert not r.helper_ok, f"signalled host pid {c.proc.pid} from the sandbox\n{r}"
        assert c.alive()


# ---------------------------------------------------------------------------------------------
# Writing outside writable paths


WRITE_DIRS = ["/", "/etc", "/usr", "/usr/bin", "/usr/lib", "/bin", "/lib", "/sbin", "/dev",
              "/proc", "/sys", "/var", "/var/tmp", "/home", "/root", "/run", "/opt", "/boot",
              "/usr/local/bin"]
WRITE_FILES = ["/etc/passwd", "/usr/bin/python3", "/bin/sh", "/proc/sys/kernel/hostname",
               "/proc/sysrq-trigger", "/proc/1/exe"]


def test_write_outside_writable_paths_fails(cordon):
    name = f"cordon-pwned-{uuid.uuid4().hex[:8]}"
    before = {f: hashlib.sha256(open(f, "rb").read()).hexdigest()
              for f in ("/etc/passwd", "/usr/bin/python3", "/bin/sh") if os.path.exists(f)}
    escaped = []
    for d in WRITE_DIRS:
        r = cordon.helper("open", os.path.join(d, name), "w")
        if os.path.exists(os.path.join(d, name)):
            os.unlink(os.path.join(d, name))  # clean the host before failing
            escaped.append(d)
        assert not r.helper_ok, f"created a file in {d}\n{r}"
    assert not escaped, f"files appeared on the host in {escaped}"
    for f in WRITE_FILES:
        r = cordon.helper("open", f, "w")
        assert not r.helper_ok, f"opened {f} for writing\n{r}"
    for f, h in before.items():
        assert hashlib.sha256(open(f, "rb").read()).hexdigest() == h, f"host {f} changed"
    # Positive control: the scratch space is writable.
    expect(cordon.helper("open", f"/tmp/{name}", "w"), None)


def test_write_proc_exe_fails(cordon, helper):
    hashes = {p: hashlib.sha256(open(p, "rb").read()).hexdigest()
              for p in (helper, CORDON, CORDON_BINARY)}
    r = cordon.helper("write-proc-exe")
    expect_contained(r)
    for p, h in hashes.items():
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == h, f"{p} was modified"


def test_write_proc_sys_fails(cordon):
    host = socket.gethostname()
    core = open("/proc/sys/kernel/core_pattern").read()
    r = cordon.helper("write-proc-sys")
    try:
        expect_contained(r)
    finally:
        if socket.gethostname() != host:
            subprocess.run(["hostname", host])
            pytest.fail(f"the sandbox changed the HOST's hostname\n{r}")
    assert open("/proc/sys/kernel/core_pattern").read() == core


# ---------------------------------------------------------------------------------------------
# Processes


def test_kill_all_leaves_host_alone(cordon, canaries):
    r = cordon.helper("kill-all")
    assert r.status in ("succeeded", "failed"), r
    for c in canaries.values():
        assert c.alive(), "kill -9 -1 inside the sandbox killed a host process"


def test_kill_all_spares_host_process_with_the_sandbox_uid(cordon, request):
    """Only the pid namespace protects a host process that happens to run with the sandbox's
    own host uid (permission checks would let the signal through)."""
    d = cordon.mkdir("ka", 0o777)
    p = subprocess.Popen([CORDON, "run", "--state-dir", cordon.state_dir, "--json",
                          "-t", "60s", "--ro", f"{cordon.helper_path}:/helper",
                          "--rw", f"{d}:/ka", "--", "/helper", "kill-all", "/ka/uid", "/ka/go"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env)
    canary = None
    try:
        assert wait_until(lambda: (d / "uid").exists() and (d / "uid").read_text().strip(), 30), \
            "the sandbox never wrote its uid"
        uid = int((d / "uid").read_text())
        assert uid >= 1_000_000_000, uid
        canary = Canary(uid)
        request.node.exclude_pids.add(canary.proc.pid)
        time.sleep(0.1)
        (d / "go").touch()
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (out, err)
        time.sleep(0.2)
        assert canary.alive(), "kill -9 -1 in the sandbox killed a host process of its uid"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if canary:
            canary.stop()


@pytest.mark.parametrize("keep_stdio", [False, True], ids=["closed-stdio", "kept-stdio"])
def test_double_forked_daemon_dies_with_run(cordon, keep_stdio):
    d = cordon.mkdir("daemon", 0o777)
    args = ["daemon", "2", "/out"] + (["--keep-stdio"] if keep_stdio else [])
    r = cordon.helper(*args, opts=["--rw", f"{d}:/out", "-t", "60s"])
    expect(r, None)
    assert (d / "started").exists(), "positive control: the sandbox could not write /out"
    # The daemon writes its marker 2 s after it started; wait well past that.
    time.sleep(3.5)
    assert not (d / "marker").exists(), "a double-forked setsid daemon outlived the run"


def test_inherited_fds_are_closed(cordon):
    f = cordon.tmp / "inherited.txt"
    f.write_text("original\n")
    s1, s2 = socket.socketpair()
    wrap = ["/bin/sh", "-c", 'f=$1; shift; exec "$@" 5<>"$f" 7<"$f"', "sh", str(f)]
    try:
        for json_ in (True, False):
            r = cordon.run("--ro", f"{cordon.helper_path}:/helper", cmd=["/helper", "ls-fds"],
                           wrap=wrap, pass_fds=(s1.fileno(),), json_=json_)
            out = r.stdout if json_ else r.out.decode()
            assert out.strip() == "fds: 0 1 2", f"fds other than 0-2 reached the sandbox\n{r}"
        r = cordon.run("--ro", f"{cordon.helper_path}:/helper", cmd=["/helper", "write-fd", "5"],
                       wrap=wrap, pass_fds=(s1.fileno(),))
        expect_contained(r)
        assert f.read_text() == "original\n"
    finally:
        s1.close()
        s2.close()


def _pty_run(cordon, opts, args):
    """Run cordon with a fresh pty as its stdin/stdout/stderr and controlling terminal. Returns
    (exit status, what the terminal's reader would get next, terminal output)."""
    master, slave = os.openpty()
    tty.setraw(slave)  # injected bytes become readable at once, no line discipline
    out = bytearray()

    def drain():
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:
                return
            if not b:
                return
            out.extend(b)

    t = threading.Thread(target=drain, daemon=True)
    t.start()

    def ctty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        p = subprocess.run([CORDON, "run", "--state-dir", cordon.state_dir, *opts,
                            "--ro", f"{cordon.helper_path}:/helper", "--", "/helper", *args],
                           stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty,
                           env=cordon.env, timeout=120)
        fl = fcntl.fcntl(slave, fcntl.F_GETFL)
        fcntl.fcntl(slave, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        try:
            injected = os.read(slave, 4096)
        except BlockingIOError:
            injected = b""
        return p.returncode, injected, bytes(out)
    finally:
        os.close(slave)
        t.join(2)
        os.close(master)


def test_tiocsti_cannot_inject_into_terminal(cordon):
    res = cordon.tmp / "result.json"
    rc, injected, out = _pty_run(cordon, ["--result-file", str(res)], ["tiocsti"])
    assert injected == b"", f"injected into the caller's terminal: {injected!r}; output {out!r}"
    j = json.loads(res.read_text())
    assert not (j.get("stdout") or "").startswith("ok "), j
    assert j["status"] == "failed" and j["error"]["code"] == "SANDBOX_SECURITY_VIOLATION", \
        f"TIOCSTI must be killed by the filter\n{j}\nterminal output: {out!r}"
    assert b"ok tiocsti" not in out, out


def test_tiocsti_json_mode(cordon):
    rc, injected, out = _pty_run(cordon, ["--json"], ["tiocsti"])
    assert injected == b"", f"injected into the caller's terminal: {injected!r}"
    assert rc == 0, out
    assert b'"SANDBOX_SECURITY_VIOLATION"' in out, out


@pytest.mark.parametrize("mode", [0o4755, 0o6755], ids=["setuid", "setuid+setgid"])
def test_setuid_binary_in_writable_path_gains_nothing(cordon, helper, mode):
    d = cordon.mkdir("suid", 0o755)
    shutil.copy(helper, d / "helper")
    os.chown(d / "helper", 0, 0)
    os.chmod(d / "helper", mode)
    r = cordon.run("--rw", f"{d}:/suid", cmd=["/suid/helper", "whoami"])
    expect(r, None)
    f = dict(kv.split("=", 1) for kv in r.stdout.split())
    uids, gids = f["Uid"].split(","), f["Gid"].split(",")
    assert len(set(uids)) == 1 and len(set(gids)) == 1, f"setuid/setgid took effect\n{r}"
    assert int(f["CapEff"], 16) == 0 and int(f["CapPrm"], 16) == 0, r


def test_zombie_storm(cordon):
    # 60 s of CPU: 1000 forks take more than the default 5 s under emulation (the VM lane).
    r = cordon.helper("zombies", "1000", opts=["--pids", "1100", "-t", "60s", "--cpu-time", "60s"])
    expect(r, None)
    assert "created 1000" in r.stdout, r
