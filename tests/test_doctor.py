"""`cordon doctor`: one line per check (ok / warn / fail, the fix), --json, the exit status, and
checks that cannot lie: each is compared with what cordon run really does here, and with the
host seen independently, and turns to warn/fail when build/cordon-enosys hides the system call
it is about."""

import ctypes
import glob
import json
import os
import re
import subprocess

import pytest

from conftest import CORDON_BINARY, ENOSYS_TOOL, HIDDEN_SYSCALLS, expect

CHECKS = ["kernel", "container", "slots", "cgroup", "clone3", "clone_into_cgroup",
          "cgroup_memory", "cgroup_pids", "cgroup_cpu", "pidfd", "userns", "tmpfs", "proc",
          "mount_api", "mount_setattr", "overlayfs", "seccomp", "seccomp_user_notif", "landlock",
          "close_range", "openat2", "state_dir"]
LINE = re.compile(r"^(ok|warn|fail) +(\S+) +(\S.*)$")
LANDLOCK = "landlock_create_ruleset,landlock_add_rule,landlock_restrict_self"


def doctor(cordon, *args, wrap=(), json_=False):
    r = cordon.cmd("doctor", "--state-dir", cordon.state_dir, *(["--json"] if json_ else []),
                   *args, wrap=wrap)
    assert r.rc in (0, 1), f"doctor itself failed\n{r}"
    if json_:
        r.json = json.loads(r.out)
    return r


def parse_text(r):
    lines = r.out.decode().splitlines()
    assert len(lines) == len(CHECKS) + 1, f"one line per check and a summary expected\n{r}"
    checks = {}
    for line in lines[:-1]:
        m = LINE.match(line)
        assert m, f"malformed line {line!r}\n{r}"
        checks[m.group(2)] = (m.group(1), m.group(3))
    assert list(checks) == CHECKS, r
    return checks, lines[-1]


def statuses(j):
    return {c["name"]: c["status"] for c in j["checks"]}


def host_landlock_abi():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))


def test_text_lines_summary_and_exit_status(cordon):
    r = doctor(cordon)
    checks, summary = parse_text(r)
    fails = [n for n, (s, _) in checks.items() if s == "fail"]
    assert r.rc == (1 if fails else 0), r
    if fails:
        assert "failed" in summary or "without" in summary, summary
    else:
        assert summary.startswith("cordon run can work here with all layers"), summary
    for name, (status, detail) in checks.items():
        if status != "ok":
            assert "(fix: " in detail or name in ("mount_setattr", "clone_into_cgroup"), \
                f"{name} is {status} without a fix: {detail}"
    assert r.err == b"", r


def test_json_schema_matches_the_text(cordon):
    j = doctor(cordon, json_=True).json
    assert set(j) == {"cordon_version", "ok", "run_works", "all_layers", "counts", "checks"}, j
    assert [c["name"] for c in j["checks"]] == CHECKS
    for c in j["checks"]:
        assert set(c) == {"name", "status", "impact", "detail", "fix"}, c
        assert c["status"] in ("ok", "warn", "fail"), c
        assert c["impact"] in ("none", "layer_missing", "run_broken"), c
        assert (c["impact"] != "none") == (c["status"] == "fail"), c
        assert isinstance(c["detail"], str) and c["detail"] and "\n" not in c["detail"], c
        assert c["fix"] is None or (isinstance(c["fix"], str) and c["fix"]), c
    st = list(statuses(j).values())
    assert j["counts"] == {k: st.count(k) for k in ("ok", "warn", "fail")}, j
    assert j["ok"] == j["all_layers"] == (j["counts"]["fail"] == 0), j
    assert j["run_works"] == all(c["impact"] != "run_broken" for c in j["checks"]), j
    text, _ = parse_text(doctor(cordon))
    assert {n: s for n, (s, _) in text.items()} == statuses(j)


def test_checks_agree_with_the_host_and_with_cordon_run(cordon):
    j = doctor(cordon, json_=True).json
    by = {c["name"]: c for c in j["checks"]}
    assert os.uname().release in by["kernel"]["detail"], by["kernel"]
    # Landlock as the kernel answers this process (unless the lane hides it from cordon).
    abi = host_landlock_abi()
    if abi >= 1 and "landlock_create_ruleset" not in HIDDEN_SYSCALLS:
        assert by["landlock"]["status"] == "ok" and f"abi {abi}" in by["landlock"]["detail"]
    else:
        assert by["landlock"]["status"] == "fail" and by["landlock"]["impact"] == "layer_missing"
    # The suite runs cordon here with every layer it has: the doctor must say a run works,
    # and a run with a bind (the mount API) and the default limits (cgroup) must work.
    r = cordon.helper("echo", "hi")
    expect(r, None)
    assert j["run_works"], f"doctor says cordon run cannot work, but it did\n{json.dumps(j)}"
    for name in ("slots", "cgroup", "cgroup_memory", "cgroup_pids", "cgroup_cpu", "userns",
                 "tmpfs", "proc", "mount_api", "seccomp", "pidfd"):
        assert by[name]["status"] != "fail", by[name]
    version = by["cgroup"]["detail"].split(":")[0].split(" ")[0]
    assert version in ("v1", "v2"), by["cgroup"]
    # The backend named is the one runs use: its parent cgroup is where they live.
    if version == "v1":
        assert all(os.path.isdir(f"/sys/fs/cgroup/{c}/cordon") for c in ("memory", "pids")), \
            by["cgroup"]
    else:
        assert any(os.path.isfile(os.path.join(p, "cgroup.subtree_control"))
                   for p in glob.glob("/sys/fs/cgroup/cordon") +
                   glob.glob("/sys/fs/cgroup/unified/cordon")), by["cgroup"]
    # A docker container leaves /.dockerenv; the doctor must not call that a bare host.
    if os.path.exists("/.dockerenv"):
        assert by["container"]["status"] == "warn" and "docker" in by["container"]["detail"]


# (hidden calls, --errno, {check: status it must turn to}). Every other check keeps the status
# it has without the wrapper. pidfd_open: cordon does not need it, so nothing may change.
HIDE = [
    ("clone3", None, {"clone3": "warn"}),
    ("close_range", None, {"close_range": "warn"}),
    ("openat2", None, {"openat2": "warn"}),
    ("mount_setattr", None, {"mount_setattr": "warn"}),
    ("pidfd_send_signal", None, {"pidfd": "warn"}),
    (LANDLOCK, None, {"landlock": "fail"}),
    (LANDLOCK, "EPERM", {"landlock": "fail"}),
    ("open_tree", None, {"mount_api": "fail", "mount_setattr": "warn"}),
    ("move_mount", None, {"mount_api": "fail", "mount_setattr": "warn"}),
    ("seccomp", None, {"seccomp": "fail", "seccomp_user_notif": "warn"}),
    ("pidfd_open", None, {}),
]


@pytest.mark.parametrize("calls,errno,turns", HIDE, ids=[f"{h[0].split(',')[0]}-{h[1] or 'ENOSYS'}"
                                                       for h in HIDE])
def test_hidden_syscall_turns_its_line(cordon, calls, errno, turns):
    # Both runs use the cordon binary itself, under the kernel-fallback lane's list when this
    # suite runs in that lane, so that the wrapper hiding `calls` is installed last (it may
    # hide seccomp itself).
    lane = [ENOSYS_TOOL, ",".join(sorted(HIDDEN_SYSCALLS)), "--"] if HIDDEN_SYSCALLS else []
    cordon.bin = CORDON_BINARY
    base = doctor(cordon, json_=True, wrap=lane)
    before = statuses(base.json)
    for name in turns:
        if before[name] != "ok":
            pytest.skip(f"{name} is already {before[name]} before hiding {calls}: "
                        f"{[c['detail'] for c in base.json['checks'] if c['name'] == name][0]}")
    by = {c["name"]: c for c in base.json["checks"]}
    if "clone3" in calls.split(",") and "born in its cgroup" in by["clone_into_cgroup"]["detail"]:
        turns = {**turns, "clone_into_cgroup": "warn"}  # v2: CLONE_INTO_CGROUP needs clone3
    wrap = lane + [ENOSYS_TOOL, *([f"--errno={errno}"] if errno else []), calls, "--"]
    r = doctor(cordon, json_=True, wrap=wrap)
    after = statuses(r.json)
    assert after == {**before, **turns}, \
        f"hiding {calls}: expected {turns}, changed: " \
        f"{ {n: (before[n], s) for n, s in after.items() if s != before[n]} }"
    assert r.rc == (1 if "fail" in after.values() else 0), r
    for c in r.json["checks"]:
        if c["name"] in turns:
            assert c["fix"] or c["name"] == "mount_setattr", c


def test_bad_state_dir_fails_with_the_fix(cordon):
    os.chmod(cordon.state_dir, 0o777)
    try:
        r = doctor(cordon)
    finally:
        os.chmod(cordon.state_dir, 0o700)
    checks, _ = parse_text(r)
    status, detail = checks["state_dir"]
    assert status == "fail" and "writable by other users" in detail and "(fix: " in detail, r
    assert r.rc == 1, r
    # A state dir that does not exist yet is fine: cordon run creates it.
    r = cordon.cmd("doctor", "--state-dir", str(cordon.tmp / "new-state"))
    checks, _ = parse_text(r)
    assert checks["state_dir"][0] == "ok" and "creates it" in checks["state_dir"][1], r
    assert not (cordon.tmp / "new-state").exists(), "doctor created the state dir"


def test_unprivileged_user_gets_every_line_and_fails(tmp_path):
    exe = tmp_path / "cordon"
    exe.write_bytes(open(CORDON_BINARY, "rb").read())
    os.chmod(exe, 0o755)
    os.chmod(tmp_path, 0o755)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        str(exe), "doctor", "--json", "--state-dir", str(tmp_path / "state")],
                       capture_output=True, timeout=120)
    assert r.returncode == 1, r
    j = json.loads(r.stdout)
    st = statuses(j)
    assert list(st) == CHECKS
    assert st["slots"] == "fail" and st["cgroup"] == "fail" and not j["run_works"], j


def test_usage_errors_are_one_line_125(cordon):
    for args in (["--bogus"], ["extra"], ["--state-dir"]):
        r = cordon.cmd("doctor", *args)
        assert r.rc == 125, r
        lines = r.err.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cordon: "), r
    r = cordon.cmd("doctor", "--help")
    assert r.rc == 0 and b"--json" in r.out, r


def test_leaves_no_probe_directory(cordon):
    p = subprocess.Popen([cordon.bin, "doctor", "--state-dir", cordon.state_dir],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cordon.env)
    assert p.wait(timeout=120) in (0, 1)
    # The probe directory is /tmp/cordon-doctor.<pid>.XXXXXX (other doctors may run meanwhile).
    assert glob.glob(f"/tmp/cordon-doctor.{p.pid}.*") == [], "a probe directory was left"


def test_rootless_doctor_agrees_with_rootless_runs(cordon):
    from test_rootless import Rootless
    rl = Rootless(cordon, cordon.mkdir("rootless", 0o755))
    p = rl.cmd("doctor", "--json", "--state-dir", rl.state)
    assert p.returncode in (0, 1), p
    j = json.loads(p.stdout)
    by = {c["name"]: c for c in j["checks"]}
    assert list(by) == CHECKS
    assert by["slots"]["status"] == "ok" and "state dir" in by["slots"]["detail"], by["slots"]
    # The cgroup line says what a run with limits does: refused (125) or run.
    r = rl.cmd("run", "--state-dir", rl.state, "--", "true")
    if r.returncode == 0:
        assert by["cgroup"]["status"] == "ok", (by["cgroup"], r)
    else:
        assert r.returncode == 125, r
        assert by["cgroup"]["status"] == "fail" and by["cgroup"]["impact"] == "layer_missing", \
            (by["cgroup"], r)
    # Rootless binds are detached mounts made inside the user namespace: they work here, so
    # the mount API line must not say they are refused.
    expect(rl.helper("echo", "hi"), None)
    assert by["mount_api"]["status"] == "ok", by["mount_api"]
    assert not rl.state_leftovers(), rl.state_leftovers()
