"""Runs side by side and runs that end badly: concurrent sandboxes never share a uid and leave
nothing; a supervisor killed with SIGKILL takes its sandbox with it, and what it could not
clean (its cgroup) is swept by the next run."""

import json
import os
import signal
import subprocess
import threading
import time

from conftest import (CORDON, expect, leftover_cgroups, leftovers, sandbox_processes, snapshot,
                      wait_until)


def whoami_fields(r):
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def test_concurrent_runs(cordon):
    n = 16
    results = [None] * n
    barrier = threading.Barrier(n)
    done = threading.Event()
    shared = []  # (uid, pids) seen at one instant: two live sandboxes with one host uid
    most_at_once = [0]

    def watch():
        # A uid may come back once its run has ended (slots are reused); what must never
        # happen is two live sandboxes on one uid. Each sandbox's program is one process.
        while not done.is_set():
            by_uid = {}
            for pid, uids, cmd in sandbox_processes():
                if cmd.startswith("/helper whoami"):
                    by_uid.setdefault(uids[0], set()).add(pid)
            most_at_once[0] = max(most_at_once[0], sum(len(p) for p in by_uid.values()))
            shared.extend((u, sorted(p)) for u, p in by_uid.items() if len(p) > 1)
            time.sleep(0.05)

    def one(i):
        barrier.wait()
        # 2 s inside: the runs overlap even when launches are slow.
        results[i] = cordon.helper("whoami", "2", opts=["-t", "120s"], timeout=300)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    uids = []
    for r in results:
        assert r is not None, "a run thread failed (see the log above)"
        expect(r, None)
        uids.append(int(whoami_fields(r)["hostuid"]))
    assert not shared, f"live sandboxes shared a host uid (uid, pids): {shared[:5]}"
    assert min(uids) >= 1_000_000_000, sorted(uids)
    # The check above saw runs side by side (else it tested nothing).
    assert most_at_once[0] >= 2, f"no two runs were ever alive at once (uids {sorted(uids)})"


def test_concurrent_runs_with_different_state_dirs(cordon):
    # Two cordon installations on one host must not hand out the same uid either.
    other = cordon.mkdir("other-state")
    procs = []
    for sd in (cordon.state_dir, str(other)):
        procs.append(subprocess.Popen(
            [CORDON, "run", "--state-dir", sd, "--json", "--ro", f"{cordon.helper_path}:/helper",
             "--", "/helper", "whoami", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(cordon.env, CORDON_STATE_DIR=sd)))
    uids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        j = json.loads(out)
        assert j["status"] == "succeeded", j
        uids.append(int(dict(kv.split("=", 1) for kv in j["stdout"].split())["hostuid"]))
    assert uids[0] != uids[1], f"two live sandboxes share host uid {uids[0]}"


def start_sleeper(cordon, secs="30"):
    p = subprocess.Popen([CORDON, "run", "--state-dir", cordon.state_dir, "--json", "-t", "120s",
                          "--ro", f"{cordon.helper_path}:/helper", "--", "/helper", "sleep", secs],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env)
    found = wait_until(lambda: [x for x in sandbox_processes() if "sleep " + secs in x[2]]
                       or p.poll() is not None, 30)
    assert p.poll() is None, f"cordon exited early: {p.communicate()}"
    assert found, "the sandboxed sleep never appeared"
    return p


def test_supervisor_sigkill_takes_sandbox_down(cordon):
    before = snapshot()
    p = start_sleeper(cordon)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    gone = wait_until(lambda: not sandbox_processes(), 1.5)
    assert gone, f"sandbox processes outlived their supervisor: {sandbox_processes()}"
    # What a dead supervisor could not remove (its cgroup) the next run must sweep.
    r = cordon.helper("echo", "next")
    expect(r, None)
    assert wait_until(lambda: not leftovers(before), 2), \
        f"still left after the next run: {leftovers(before)}"


def test_supervisor_sigkill_many_processes(cordon):
    """Same, with a sandbox full of forked, setsid'd processes."""
    d = cordon.mkdir("out", 0o777)
    p = subprocess.Popen([CORDON, "run", "--state-dir", cordon.state_dir, "--json", "-t", "120s",
                          "--ro", f"{cordon.helper_path}:/helper", "--rw", f"{d}:/out", "--",
                          "/bin/sh", "-c",
                          "/helper daemon 3 /out; /helper zombies 20 30 & /helper spin 2 & "
                          "/helper sleep 30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env)
    assert wait_until(lambda: len(sandbox_processes()) >= 5 or p.poll() is not None, 30), \
        "the sandbox never got busy"
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    assert wait_until(lambda: not sandbox_processes(), 1.5), \
        f"sandbox processes outlived their supervisor: {sandbox_processes()}"
    # The next run sweeps the dead run's cgroup (run it at once: a stale cgroup lying around
    # for seconds would also show up in the leftover checks of a concurrent suite).
    expect(cordon.helper("echo", "next"), None)
    time.sleep(3.5)
    assert not (d / "marker").exists(), "the daemon outlived a SIGKILLed supervisor"


def test_sigint_cancels_run(cordon):
    p = start_sleeper(cordon)
    os.kill(p.pid, signal.SIGINT)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("cordon run did not stop on SIGINT")
    assert wait_until(lambda: not sandbox_processes(), 1.5), sandbox_processes()
    if p.returncode == 0 and out:
        j = json.loads(out)
        assert j["status"] in ("cancelled", "failed"), j


def test_nothing_accumulates_in_state_dir(cordon):
    def listing():
        out = set()
        for dirpath, dirnames, filenames in os.walk(cordon.state_dir):
            out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
        return out

    before = snapshot()
    expect(cordon.helper("write", "/tmp/f", "1M"), None)
    first = listing()
    for _ in range(5):
        expect(cordon.helper("write", "/tmp/f", "1M"), None)
        expect(cordon.helper("memhog", "1G", opts=["-m", "32M"]), "SANDBOX_MEMORY_LIMIT")
    assert listing() == first, f"new entries in the state dir: {listing() - first}"
    assert wait_until(lambda: not leftover_cgroups(before.cgroups), 2), \
        leftover_cgroups(before.cgroups)


def test_trust_levels_have_their_own_cgroup_subtrees(cordon):
    """Runs of different trust levels never share a cgroup parent (PRODUCT.md): each sandbox's
    cgroup is cordon/<level>/<slot>, seen from the host while both runs are alive."""
    from conftest import cgroup_parents, cgroup_pids, proc_table, is_mine
    procs = {}
    for level in ("untrusted", "high"):
        procs[level] = subprocess.Popen(
            [CORDON, "run", "--state-dir", cordon.state_dir, "--json", "--trust", level,
             "-t", "60s", "--ro", f"{cordon.helper_path}:/helper", "--", "/helper", "sleep",
             "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env)
    try:
        def placed():
            """{level: cgroup path} of our live sandboxes, found by their processes."""
            table = proc_table()
            out = {}
            for parent in cgroup_parents():
                for dirpath, dirnames, _ in os.walk(parent):
                    if dirpath == parent:
                        continue
                    pids = cgroup_pids(dirpath)
                    if pids and all(is_mine(p, table) for p in pids):
                        rel = os.path.relpath(dirpath, parent)
                        out.setdefault(rel.split("/")[0], set()).add(rel)
            return out if {"untrusted", "high"} <= set(out) else None
        seen = wait_until(placed, 60)
        assert seen, "the two sandboxes never appeared in their level subtrees"
        for level in ("untrusted", "high"):
            for rel in seen[level]:
                parts = rel.split("/")
                assert len(parts) == 2 and parts[1].startswith(level + "-"), rel
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)  # cancel: cordon removes the sandbox and its cgroup
        for p in procs.values():
            p.communicate(timeout=120)
