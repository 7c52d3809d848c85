"""`cordon run`: the CLI contract (CLI.md) and the result object (API.md)."""

import json
import os
import subprocess

import pytest

from conftest import HOST_LEAK_VAR, HOST_LEAK_VALUE, expect

METRICS = ("wall_time_ms", "cpu_time_ms", "memory_peak_bytes", "processes_peak",
           "output_bytes", "files_written", "setup_ms")


def test_result_object_fields(cordon):
    r = cordon.helper("echo", "hello", "world")
    expect(r, None)
    j = r.json
    assert j["exit_code"] == 0 and j["signal"] is None, r
    assert j["stdout"] == "hello world\n", r
    assert j["stderr"] == "", r
    assert j["stdout_truncated"] is False, r
    assert j["error"] is None, r
    for m in METRICS:
        assert isinstance(j["metrics"].get(m), int) and j["metrics"][m] >= 0, \
            f"metrics.{m} missing or not a non-negative integer\n{r}"
    assert j["metrics"]["output_bytes"] == len("hello world\n"), r
    assert j["metrics"]["processes_peak"] >= 1, r


def test_json_nonzero_exit(cordon):
    r = cordon.helper("exit", "3")
    expect(r, "SANDBOX_RUNTIME_ERROR")
    assert r.exit_code == 3, r
    assert r.json["signal"] is None, r


@pytest.mark.parametrize("sig", [15, 11, 6])
def test_json_own_signal(cordon, sig):
    r = cordon.helper("kill-self", str(sig))
    expect(r, "SANDBOX_RUNTIME_ERROR")
    assert r.json["signal"] == sig, r


@pytest.mark.parametrize("code", [0, 1, 7, 42, 255])
def test_plain_exit_status_is_program_exit_code(cordon, code):
    r = cordon.helper("exit", str(code), json_=False)
    assert r.rc == code, r


@pytest.mark.parametrize("sig", [15, 11, 6])
def test_plain_exit_status_own_signal(cordon, sig):
    r = cordon.helper("kill-self", str(sig), json_=False)
    assert r.rc == 128 + sig, r


def test_plain_passes_stdout_and_stderr_through(cordon):
    r = cordon.helper("echo", "to", "stdout", json_=False)
    assert r.rc == 0 and r.out == b"to stdout\n", r
    assert r.err == b"", f"cordon printed on stderr for a successful run\n{r}"
    r = cordon.helper("print-split", "to ", "stderr", "0", "--stderr", json_=False)
    assert r.rc == 0 and r.err == b"to stderr" and r.out == b"", r


def test_result_file(cordon):
    f = cordon.tmp / "result.json"
    r = cordon.helper("echo", "through", opts=["--result-file", f], json_=False)
    assert r.rc == 0 and r.out == b"through\n", r
    j = json.loads(f.read_text())
    assert j["status"] == "succeeded" and j["exit_code"] == 0, j
    r = cordon.helper("exit", "9", opts=["--result-file", f], json_=False)
    assert r.rc == 9, r
    j = json.loads(f.read_text())
    assert j["status"] == "failed" and j["error"]["code"] == "SANDBOX_RUNTIME_ERROR", j


BAD_OPTIONS = [
    ["--bogus-option"],
    ["-m", "12X"],
    ["-m", "-5M"],
    ["--memory"],
    ["--pids", "0"],
    ["--pids", "many"],
    ["-t", "-5s"],
    ["-t", "5 parsecs"],
    ["--cpu-time", "abc"],
    ["--output", "0"],
    ["--nofile", "99999999999999999999999"],
    ["--trust", "bogus"],
    ["--net", "everything"],
    ["--runtime", "cobol"],
    ["-e", "NOEQUALS"],
]


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["plain", "json"])
@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=lambda b: " ".join(b))
def test_bad_option_exits_125_with_one_line(cordon, bad, json_flag):
    r = cordon.cmd("run", "--state-dir", cordon.state_dir, *json_flag, *bad, "--",
                   "/bin/true")
    assert r.rc == 125, f"a bad option must exit 125\n{r}"
    msg = r.err.decode(errors="replace")
    assert msg.startswith("cordon: "), f"message must start with 'cordon: '\n{r}"
    assert msg.count("\n") == 1 and msg.endswith("\n"), f"message must be one line\n{r}"
    assert not msg[len("cordon: ")].isupper(), f"message must be lower case\n{r}"


def test_missing_command_exits_125(cordon):
    r = cordon.cmd("run", "--state-dir", cordon.state_dir, "--")
    assert r.rc == 125, r
    assert r.err.startswith(b"cordon: ") and r.err.count(b"\n") == 1, r


def test_nonexistent_program_is_not_success(cordon):
    r = cordon.cmd("run", "--state-dir", cordon.state_dir, "--", "/nonexistent/program")
    assert r.rc != 0, r
    assert r.err, f"no message says why the program did not run\n{r}"


@pytest.mark.parametrize("opts", [
    ["-t", "2s"], ["-t", "2000ms"], ["-t", "1m"], ["--timeout", "3s"],
    ["--cpu-time", "1s"], ["-m", "64M"], ["-m", "65536K"], ["--memory", "1G"],
    ["--pids", "10"], ["--nofile", "32"], ["--fsize", "1M"], ["--max-files", "100"],
    ["--disk", "4M"], ["--output", "1K"], ["--trust", "high"], ["--trust", "medium"],
    ["--trust", "low"], ["--trust", "untrusted"], ["--net", "none"],
], ids=lambda o: " ".join(o))
def test_option_forms_accepted(cordon, opts):
    r = cordon.helper("echo", "fine", opts=opts)
    expect(r, None)
    assert r.stdout == "fine\n", r


def test_default_stdin_is_empty(cordon):
    # cordon's own stdin is a pipe that stays open: the program must not see it.
    p = subprocess.Popen([cordon.bin, "run", "--state-dir", cordon.state_dir, "--json",
                          "--ro", f"{cordon.helper_path}:/helper", "--", "/helper",
                          "stdin-cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=cordon.env)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("the program read cordon's own stdin (it must get an empty stdin)")
    finally:
        if p.stdin:
            p.stdin.close()
    assert p.returncode == 0, err
    j = json.loads(out)
    assert j["status"] == "succeeded" and j["stdout"] == "", j


def test_stdin_file(cordon):
    f = cordon.tmp / "input.txt"
    f.write_bytes(b"line one\nline two\n" * 100)
    os.chmod(f, 0o644)
    r = cordon.helper("stdin-cat", opts=["--stdin", f])
    expect(r, None)
    assert r.stdout == "line one\nline two\n" * 100, r


def test_environment_is_clean_and_set(cordon):
    r = cordon.helper("env", opts=["-e", "FOO=bar", "--env", "EMPTY=", "-e", "EQ=a=b"])
    expect(r, None)
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert env.get("FOO") == "bar" and env.get("EMPTY") == "" and env.get("EQ") == "a=b", r
    assert HOST_LEAK_VAR not in env and HOST_LEAK_VALUE not in r.stdout, \
        f"the caller's environment leaked into the sandbox\n{r}"
    assert "CORDON_STATE_DIR" not in env, r


def test_workdir(cordon):
    r = cordon.helper("pwd", opts=["-w", "/tmp"])
    expect(r, None)
    assert r.stdout == "/tmp\n", r
    d = cordon.mkdir("wd")
    r = cordon.helper("pwd", opts=["--rw", f"{d}:/work", "--workdir", "/work"])
    expect(r, None)
    assert r.stdout == "/work\n", r


def test_ro_bind_is_readable_not_writable(cordon):
    d = cordon.mkdir("ro", 0o777)
    (d / "data").write_text("payload\n")
    os.chmod(d / "data", 0o666)
    r = cordon.helper("cat", "/data/data", opts=["--ro", f"{d}:/data"])
    expect(r, None)
    assert r.stdout == "payload\n", r
    for args in (["open", "/data/new", "w"], ["open", "/data/data", "w"]):
        r = cordon.helper(*args, opts=["--ro", f"{d}:/data"])
        assert not r.helper_ok, f"wrote through a --ro bind\n{r}"
    assert sorted(os.listdir(d)) == ["data"] and (d / "data").read_text() == "payload\n"


def test_rw_bind_is_writable(cordon):
    d = cordon.mkdir("rw", 0o777)
    r = cordon.helper("write", "/out/file", "1000", opts=["--rw", f"{d}:/out"])
    expect(r, None)
    assert (d / "file").stat().st_size == 1000


def test_bind_source_under_private_dir(cordon, tmp_path):
    # pytest's tmp_path lives under /tmp/pytest-of-root (mode 0700): a bind source below a
    # private directory must still be bindable (the supervisor resolves it, not the sandbox
    # uid). What is inside the bind keeps its own permissions: the sandbox uid is not root.
    os.chmod(tmp_path, 0o700)
    sub = tmp_path / "pub"
    sub.mkdir(mode=0o755)
    os.chmod(sub, 0o755)
    (sub / "f").write_text("private-ok\n")
    r = cordon.helper("cat", "/p/f", opts=["--ro", f"{sub}:/p"])
    expect(r, None)
    assert r.stdout == "private-ok\n", r


def test_trust_untrusted_defaults_apply(cordon):
    # untrusted: 8 processes (PRODUCT.md); a fork bomb hits it without --pids.
    r = cordon.helper("forkbomb", opts=["--trust", "untrusted"])
    expect(r, "SANDBOX_PROCESS_LIMIT")
    # An explicit option overrides the level's default.
    r = cordon.helper("threads", "20", opts=["--trust", "untrusted", "--pids", "64"])
    expect(r, None)


def test_version(cordon):
    r = cordon.cmd("version")
    assert r.rc == 0 and r.out.strip(), r


def test_runtime_list(cordon):
    r = cordon.cmd("run", "--runtime", "list")
    assert r.rc == 0, r
    text = r.out.decode()
    for name in ("python", "node", "bash", "sh", "c", "cpp"):
        assert any(line.split()[0] == name for line in text.splitlines() if line.split()), \
            f"runtime {name} not listed\n{r}"
