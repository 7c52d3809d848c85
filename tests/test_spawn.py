"""`cordon __spawn` (SPAWN-PROTOCOL.md), driven directly: one JSON request on stdin, JSON-lines
events on stdout, the result last; exit 125 with one stderr line when cordon itself fails.

Covers the runtimes (python, node, bash, sh, c, cpp, edge), function-shaped code, captured
console logs, uncaught errors with their source location, test cases, secrets (never in any
line __spawn writes), cancellation by SIGTERM, malformed requests, `--runtimes`, and hostile
programs that forge the harness's structured output."""

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ERROR_CODES, HOST_LEAK_VALUE, RUN_TIMEOUT

SECRET = "s3cr3t-Val\"ue\\x"  # a quote and a backslash: JSON escapes them


def need(tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed on this host, so the host image has no {tool}")


class Spawn:
    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.lines = out.decode().splitlines() if out else []
        self.events = [json.loads(line) for line in self.lines]

    @property
    def result(self):
        assert self.events and self.events[-1]["type"] == "result", f"no result line\n{self}"
        return self.events[-1]["execution"]

    @property
    def code(self):
        e = self.result["error"]
        return e["code"] if e else None

    def of_type(self, t):
        return [e for e in self.events if e["type"] == t]

    def stream(self, name, test=None):
        return "".join(e["data"] for e in self.of_type(name)
                       if e.get("test") == test and not e.get("compile"))

    def __str__(self):
        return (f"exit {self.rc}\nstderr: {self.err.decode(errors='replace')[-3000:]}\n"
                f"stdout:\n" + "\n".join(line[:1500] for line in self.lines[-30:]))

    __repr__ = __str__


def spawn(cordon, req, rc=0, timeout=RUN_TIMEOUT):
    """Run `cordon __spawn` with req (a dict, or raw bytes) and check the protocol's shape."""
    argv = [cordon.bin, "__spawn", "--state-dir", cordon.state_dir]
    data = req if isinstance(req, bytes) else json.dumps(req).encode()
    p = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=cordon.env, timeout=timeout)
    s = Spawn(argv, p.returncode, p.stdout, p.stderr)
    assert s.rc == rc, f"unexpected exit status (want {rc})\n{s}"
    if rc == 0:
        assert s.events[0]["type"] == "status" and s.events[0]["status"] == "running", s
        assert [e["type"] for e in s.events].count("result") == 1, s
        ex = s.result
        for key in ("status", "exit_code", "signal", "stdout", "stderr", "stdout_truncated",
                    "stderr_truncated", "compile_output", "result", "logs", "error", "tests",
                    "all_tests_passed", "metrics", "runtime", "image", "trust_level",
                    "started_at", "finished_at"):
            assert key in ex, f"result has no {key}\n{s}"
        assert ex["status"] in ("succeeded", "failed", "cancelled"), s
        if ex["error"]:
            assert ex["error"]["code"] in ERROR_CODES, s
        assert s.err == b"", f"stderr must be empty when the result was written\n{s}"
    return s


def expect(s, code):
    if code is None:
        assert s.result["status"] == "succeeded" and s.code is None, f"expected success\n{s}"
    else:
        assert s.code == code, f"expected {code}, got {s.code}\n{s}"


def no_secret(s, secret=SECRET):
    """The secret appears in no line, raw or once the JSON is decoded."""
    raw = s.out.decode(errors="replace") + s.err.decode(errors="replace")
    assert secret not in raw, f"the secret appears in a line\n{s}"
    for e in s.events:
        assert secret not in json.dumps(e, ensure_ascii=False), f"secret in {e}"

        def walk(v):
            if isinstance(v, str):
                assert secret not in v, f"secret in a decoded string of {e}"
            elif isinstance(v, dict):
                for k, x in v.items():
                    walk(k)
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(e)


# ---------------------------------------------------------------------------------------------
# Plain runtimes and commands

PLAIN = {
    "python": ("python3", "import sys\nprint(6 * 7)\nprint('err', file=sys.stderr)"),
    "node": ("node", "console.log(6 * 7); console.error('err')"),
    "bash": ("bash", "echo $((6 * 7)); echo err >&2"),
    "sh": ("sh", "echo $((6 * 7)); echo err >&2"),
    "c": ("gcc", '#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); '
                 'fprintf(stderr, "err\\n"); return 0; }\n'),
    "cpp": ("g++", "#include <iostream>\nint main() { std::cout << 6 * 7 << std::endl; "
                   "std::cerr << \"err\" << std::endl; }\n"),
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_plain_runtime(cordon, name):
    tool, code = PLAIN[name]
    need(tool)
    s = spawn(cordon, {"runtime": name, "code": code, "limits": {"timeout_ms": 60000}})
    expect(s, None)
    ex = s.result
    assert ex["stdout"] == "42\n" and ex["stderr"] == "err\n", s
    assert ex["exit_code"] == 0 and ex["runtime"] == name and ex["image"] == "host", s
    # The events carry the same output as the result, as it came.
    assert s.stream("stdout") == "42\n" and s.stream("stderr") == "err\n", s
    assert ex["metrics"]["wall_time_ms"] >= 0 and ex["metrics"]["memory_peak_bytes"] > 0, s
    if name in ("c", "cpp"):
        assert ex["compile_output"] == "", s
    else:
        assert ex["compile_output"] is None, s


@pytest.mark.parametrize("name", ["c", "cpp"])
def test_compile_error(cordon, name):
    need(PLAIN[name][0])
    s = spawn(cordon, {"runtime": name, "code": "int main( { nope }"})
    expect(s, "SANDBOX_COMPILE_ERROR")
    assert "error" in s.result["compile_output"], s
    assert s.result["stdout"] == "", s
    assert any(e.get("compile") for e in s.of_type("stderr")), "no compile output event\n" + str(s)


def test_compile_limits_apply_to_the_compile_step(cordon):
    need("gcc")
    # A 1 ms CPU limit for the compile step: gcc cannot finish, the program never runs.
    s = spawn(cordon, {"runtime": "c", "code": "int main(void) { return 0; }",
                       "compile_limits": {"cpu_time_ms": 1}})
    expect(s, "SANDBOX_CPU_LIMIT")


def test_command_with_args_env_and_stdin(cordon):
    s = spawn(cordon, {"command": ["/bin/sh", "-c", 'echo "$0|$1|$FOO|$(cat)"'],
                       "args": ["a b", "c"], "env": {"FOO": "bar"}, "stdin": "from stdin"})
    expect(s, None)
    assert s.result["stdout"] == "a b|c|bar|from stdin\n", s
    assert s.result["runtime"] is None, s


def test_clean_environment(cordon):
    s = spawn(cordon, {"command": ["/usr/bin/env"]})
    expect(s, None)
    assert HOST_LEAK_VALUE not in s.out.decode(), s
    names = sorted(line.split("=")[0] for line in s.result["stdout"].splitlines())
    assert names == ["HOME", "LANG", "PATH"], s


def test_files_base64_and_entrypoint(cordon):
    need("python3")
    blob = bytes(range(256))
    s = spawn(cordon, {"runtime": "python", "entrypoint": "app/run.py", "files": [
        {"path": "app/run.py", "content": "import lib, sys\nprint(lib.f(open('/tmp/data.bin','rb').read()))"},
        {"path": "app/lib.py", "content": "def f(b): return len(b), b == bytes(range(256))"},
        {"path": "data.bin", "content": base64.b64encode(blob).decode(), "encoding": "base64"},
    ]})
    expect(s, None)
    assert s.result["stdout"] == "(256, True)\n", s


def test_c_with_several_files_and_args(cordon):
    need("gcc")
    s = spawn(cordon, {"runtime": "c", "args": ["x", "yz"], "files": [
        {"path": "main.c", "content": '#include <stdio.h>\n#include "util.h"\n'
                                      'int main(int c, char **v) { printf("%d %s\\n", twice(c), v[2]); }'},
        {"path": "util.c", "content": "int twice(int x) { return 2 * x; }"},
        {"path": "util.h", "content": "int twice(int x);"},
    ]})
    expect(s, None)
    assert s.result["stdout"] == "6 yz\n", s


def test_runtime_error_exit_code(cordon):
    s = spawn(cordon, {"runtime": "bash", "code": "echo out; exit 3"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert s.result["exit_code"] == 3 and s.result["status"] == "failed", s


def test_timeout_limit(cordon):
    s = spawn(cordon, {"command": ["sleep", "30"], "limits": {"timeout_ms": 300}})
    expect(s, "SANDBOX_TIMEOUT")


def test_output_limit_and_truncation(cordon):
    s = spawn(cordon, {"command": ["sh", "-c", "yes"], "limits": {"output_bytes": 10000}})
    expect(s, "SANDBOX_OUTPUT_LIMIT")
    assert s.result["stdout_truncated"] is True, s
    assert len(s.result["stdout"]) <= 10000 and len(s.stream("stdout")) <= 10000, s


def test_trust_level_defaults(cordon):
    s = spawn(cordon, {"command": ["sh", "-c", "ulimit -n"], "trust_level": "high"})
    expect(s, None)
    assert s.result["stdout"] == "1024\n" and s.result["trust_level"] == "high", s


def test_utf8_split_across_writes_is_one_character(cordon):
    need("python3")
    code = ("import os, time\nos.write(1, b'caf\\xc3')\ntime.sleep(0.3)\nos.write(1, b'\\xa9!')\n"
            "os.write(1, b'bad \\xff end')")
    s = spawn(cordon, {"runtime": "python", "code": code})
    expect(s, None)
    assert s.stream("stdout") == "café!bad \ufffd end", s
    assert s.result["stdout"] == "café!bad \ufffd end", s


def test_workspace_is_bound_writable(cordon):
    ws = cordon.mkdir("ws", 0o777)
    (ws / "in.txt").write_text("hello")
    os.chmod(ws / "in.txt", 0o644)
    s = spawn(cordon, {"command": ["sh", "-c", "pwd; cat in.txt; echo made > out.txt"],
                       "workspace": {"host_dir": str(ws), "path": "/workspace"}})
    expect(s, None)
    assert s.result["stdout"] == "/workspace\nhello", s
    assert (ws / "out.txt").read_text() == "made\n"


# ---------------------------------------------------------------------------------------------
# Protocol: malformed requests, cancellation, --runtimes

BAD_REQUESTS = {
    "not json": b"{nope",
    "not an object": b"[1]",
    "empty": b"",
    "unknown field": {"runtime": "python", "code": "1", "bogus": 1},
    "unknown limit": {"command": ["true"], "limits": {"memroy_mb": 1}},
    "limit out of range": {"command": ["true"], "limits": {"memory_mb": 1}},
    "limit wrong type": {"command": ["true"], "limits": {"timeout_ms": "10"}},
    "negative limit": {"command": ["true"], "limits": {"timeout_ms": -1}},
    "duplicate key": b'{"command": ["true"], "limits": {"timeout_ms": 1, "timeout_ms": 99}}',
    "unknown runtime": {"runtime": "cobol", "code": "x"},
    "no program": {"runtime": "python"},
    "runtime and command": {"runtime": "python", "code": "1", "command": ["true"]},
    "neither": {"stdin": "x"},
    "path traversal": {"runtime": "python", "files": [{"path": "../x.py", "content": "1"}]},
    "absolute path": {"runtime": "python", "files": [{"path": "/etc/x.py", "content": "1"}]},
    "harness dir": {"runtime": "python", "files": [{"path": ".cordon/nonce", "content": "1"}]},
    "bad base64": {"runtime": "python",
                   "files": [{"path": "a.py", "content": "!!!", "encoding": "base64"}]},
    "bad encoding": {"runtime": "python",
                     "files": [{"path": "a.py", "content": "1", "encoding": "rot13"}]},
    "several files, no entrypoint": {"runtime": "python", "files": [
        {"path": "a.py", "content": "1"}, {"path": "b.py", "content": "2"}]},
    "bad env name": {"command": ["true"], "env": {"A=B": "x"}},
    "empty secret": {"command": ["true"], "secrets": {"T": ""}},
    "NUL in argv": {"command": ["tr\u0000ue"]},
    "bad trust": {"command": ["true"], "trust_level": "root"},
    "network on": {"command": ["true"], "limits": {"network": {"enabled": True}}},
    "bad workspace": {"command": ["true"], "workspace": {"host_dir": "rel/dir"}},
    "unknown image": {"command": ["true"], "image": "nosuchimage"},
    "tests not an array": {"runtime": "python", "code": "1", "tests": {"a": 1}},
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_request_exits_125_with_one_line(cordon, name):
    s = spawn(cordon, BAD_REQUESTS[name], rc=125)
    assert s.out == b"", f"nothing may be written on stdout\n{s}"
    lines = s.err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cordon: "), s


def test_oversized_request_is_refused(cordon):
    big = b'{"command": ["true"], "stdin": "' + b"x" * (65 * 1024 * 1024) + b'"}'
    s = spawn(cordon, big, rc=125)
    assert len(s.err.decode().splitlines()) == 1, s


def read_events_until(p, pred, timeout=60):
    """Read p's stdout lines until pred(event) is true; returns the events read."""
    events, buf = [], b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if not r:
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            events.append(json.loads(line))
            if pred(events[-1]):
                return events, buf
    pytest.fail(f"the awaited event did not come; events: {events}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cancels_the_run(cordon, sig, request):
    p = subprocess.Popen([cordon.bin, "__spawn", "--state-dir", cordon.state_dir],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=cordon.env)
    request.node.exclude_pids.add(p.pid)
    p.stdin.write(json.dumps({"command": ["sh", "-c", "echo ready; exec sleep 60"]}).encode())
    p.stdin.close()
    _, rest = read_events_until(p, lambda e: e["type"] == "stdout" and "ready" in e["data"])
    p.send_signal(sig)
    p.stdin = None
    out, err = p.communicate(timeout=60)
    out = rest + out
    request.node.exclude_pids.discard(p.pid)
    assert p.returncode == 0, (p.returncode, err)
    last = json.loads(out.decode().splitlines()[-1])
    assert last["type"] == "result", out
    ex = last["execution"]
    assert ex["status"] == "cancelled" and ex["error"]["code"] == "SANDBOX_CANCELLED", ex


def test_closed_stdout_cancels_the_run(cordon, request):
    """The daemon died: our stdout reader is gone; the run stops instead of running on."""
    p = subprocess.Popen([cordon.bin, "__spawn", "--state-dir", cordon.state_dir],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=cordon.env)
    p.stdin.write(json.dumps({"command": ["sh", "-c", "while :; do echo x; sleep 0.05; done"],
                              "limits": {"timeout_ms": 120000}}).encode())
    p.stdin.close()
    read_events_until(p, lambda e: e["type"] == "stdout")
    p.stdout.close()
    p.stdin = None
    p.wait(timeout=100)  # a run that went on would reach its 120 s wall limit
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.returncode == 125 and err.startswith("cordon: writing the result"), (p.returncode, err)


def test_runtimes_list(cordon):
    p = subprocess.run([cordon.bin, "__spawn", "--runtimes", "--state-dir", cordon.state_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env,
                       timeout=RUN_TIMEOUT)
    assert p.returncode == 0, p.stderr
    rts = {r["name"]: r for r in json.loads(p.stdout)}
    assert set(rts) == {"python", "node", "bash", "sh", "c", "cpp", "edge"}, rts
    for name, r in rts.items():
        assert r["image"] == "host" and isinstance(r["available"], bool), r
        assert set(r["default_limits"]) == {
            "timeout_ms", "cpu_time_ms", "memory_mb", "processes", "open_files",
            "file_size_bytes", "max_files", "disk_mb", "output_bytes"}, r
        assert r["default_limits"]["timeout_ms"] == 10000, r  # trust level low
    assert rts["bash"]["available"] is True
    bash = subprocess.run(["bash", "-c", "echo $BASH_VERSION"], stdout=subprocess.PIPE, text=True)
    assert bash.stdout.startswith(rts["bash"]["version"]), (rts["bash"], bash.stdout)
    if shutil.which("python3") and os.path.exists("/usr/bin/python3"):
        v = subprocess.run(["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
                           stdout=subprocess.PIPE, text=True).stdout.strip()
        assert rts["python"]["version"] == v and rts["python"]["available"], rts["python"]


# ---------------------------------------------------------------------------------------------
# Secrets


def test_secret_in_every_stream_is_redacted(cordon):
    code = ('printf "%s\\n" "$TOKEN"; printf "%s" "$TOKEN" >&2; '
            'printf "%s" "$TOKEN" | cut -c1-4 | tr -d "\\n"; sleep 0.2; '
            'printf "%s\\n" "$TOKEN" | cut -c5-')
    s = spawn(cordon, {"runtime": "bash", "code": code, "secrets": {"TOKEN": SECRET}})
    expect(s, None)
    assert s.result["stdout"] == "[REDACTED]\n[REDACTED]\n", s
    assert s.result["stderr"] == "[REDACTED]", s
    no_secret(s)
