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

from conftest import ERROR_CODES, HOST_LEAK_VALUE, RUN_TIMEOUT, sandbox_processes, wait_until

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
    ws = cordon.mkdir("ws", 0o755)
    (ws / "in.txt").write_text("hello")
    os.chmod(ws / "in.txt", 0o644)
    s = spawn(cordon, {"command": ["sh", "-c", "pwd; cat in.txt; echo made > out.txt"],
                       "workspace": {"host_dir": str(ws), "path": "/workspace"}})
    expect(s, None)
    assert s.result["stdout"] == "/workspace\nhello", s
    assert (ws / "out.txt").read_text() == "made\n"
    # Handed to the sandbox's uid for the run, ours again afterwards.
    assert os.stat(ws / "out.txt").st_uid == os.getuid() and os.stat(ws).st_uid == os.getuid()


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


# ---------------------------------------------------------------------------------------------
# Function-shaped code, captured console, uncaught errors

def test_python_function_gets_input_and_returns_result(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "input": {"xs": [1, 2, 3]},
                       "code": "def main(input):\n    return {'sum': sum(input['xs']), 'n': None}\n"
                               "if __name__ == '__main__':\n    print('must not run')\n"})
    expect(s, None)
    assert s.result["result"] == {"sum": 6, "n": None}, s
    assert s.result["stdout"] == "", s


def test_python_async_main(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "input": 20,
                       "code": "import asyncio\nasync def main(n):\n    await asyncio.sleep(0)\n"
                               "    return [n, n * 2]\n"})
    expect(s, None)
    assert s.result["result"] == [20, 40], s


def test_python_plain_script_runs_as_main(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "args": ["a1"],
                       "code": "import sys\ndef main():\n    print('once', __name__, sys.argv[1:])\n"
                               "if __name__ == '__main__':\n    main()\n"})
    expect(s, None)
    assert s.result["stdout"] == "once __main__ ['a1']\n" and s.result["result"] is None, s


def test_python_result_must_be_json(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "code": "def main(x):\n    return {1, 2}\n"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert "not JSON" in s.result["error"]["message"] and s.result["result"] is None, s


def test_python_capture_console_levels_in_order(cordon):
    need("python3")
    code = ("import logging, sys\nprint('one', 1)\nlogging.warning('two %d', 2)\n"
            "print('three', file=sys.stderr)\nlogging.getLogger().setLevel(logging.DEBUG)\n"
            "logging.debug('four')\nlogging.info('five')\nlogging.error('six')\n")
    s = spawn(cordon, {"runtime": "python", "code": code, "capture_console": True})
    expect(s, None)
    logs = s.result["logs"]
    assert [(l["level"], l["message"]) for l in logs] == [
        ("log", "one 1"), ("warn", "two 2"), ("error", "three"), ("debug", "four"),
        ("info", "five"), ("error", "six")], s
    assert all(l["timestamp"].endswith("Z") and "T" in l["timestamp"] for l in logs), s
    assert [(e["level"], e["message"]) for e in s.of_type("log")] == \
        [(l["level"], l["message"]) for l in logs], s
    # The output still goes where it would have gone, without the records.
    assert s.result["stdout"] == "one 1\n", s
    assert "\x1e" not in s.result["stdout"] + s.result["stderr"], s


def test_python_console_not_captured_by_default(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "code": "print('x')\nimport logging\nlogging.warning('w')"})
    expect(s, None)
    assert s.result["logs"] == [] and s.of_type("log") == [] and s.result["stdout"] == "x\n", s


def test_python_uncaught_error_has_stack_and_location(cordon):
    need("python3")
    code = "import os\ndef f():\n    return 1 / 0\n\nf()\n"
    s = spawn(cordon, {"runtime": "python", "code": code})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    e = s.result["error"]
    assert e["message"] == "ZeroDivisionError: division by zero", s
    assert e["source_location"] == {"file": "main.py", "line": 3, "column": 12}, s
    assert 'main.py", line 5' in e["stack"] and 'line 3' in e["stack"], s
    assert "harness" not in e["stack"] and ".cordon" not in e["stack"], s
    assert "ZeroDivisionError" in s.result["stderr"], s
    assert s.result["exit_code"] == 1, s


def test_python_syntax_error_location(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "files": [
        {"path": "pkg/app.py", "content": "x = 1\ny = (2 +\n"}]})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    loc = s.result["error"]["source_location"]
    assert loc["file"] == "pkg/app.py" and loc["line"] == 2, s
    assert s.result["error"]["message"].startswith("SyntaxError"), s


def test_python_sys_exit_is_plain_exit(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "code": "import sys\nprint('bye')\nsys.exit(3)"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert s.result["exit_code"] == 3 and s.result["error"]["stack"] is None, s


def test_node_function_gets_input_and_returns_result(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "node", "input": {"a": 21},
                       "code": "module.exports = async function (input) {\n"
                               "  await new Promise((r) => setTimeout(r, 10));\n"
                               "  return { doubled: input.a * 2, list: [true, null] };\n};\n"})
    expect(s, None)
    assert s.result["result"] == {"doubled": 42, "list": [True, None]}, s


def test_node_plain_script_is_main_module(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "node", "args": ["x"],
                       "code": "if (require.main === module) console.log('main', process.argv.slice(2));"})
    expect(s, None)
    assert s.result["stdout"] == "main [ 'x' ]\n" and s.result["result"] is None, s


def test_node_capture_console_levels_in_order(cordon):
    need("node")
    code = ("console.log('one', 1); console.info('two'); console.warn('three', {a: 1});\n"
            "console.error('four'); console.debug('five'); process.stdout.write('raw\\n');\n")
    s = spawn(cordon, {"runtime": "node", "code": code, "capture_console": True})
    expect(s, None)
    assert [(l["level"], l["message"]) for l in s.result["logs"]] == [
        ("log", "one 1"), ("info", "two"), ("warn", "three { a: 1 }"), ("error", "four"),
        ("debug", "five")], s
    assert s.result["stdout"] == "one 1\ntwo\nfive\nraw\n", s


def test_node_uncaught_error_has_stack_and_location(cordon):
    need("node")
    code = "function f() {\n  throw new Error('boom');\n}\nf();\n"
    s = spawn(cordon, {"runtime": "node", "code": code})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    e = s.result["error"]
    assert e["message"] == "Error: boom", s
    assert e["source_location"] == {"file": "main.js", "line": 2, "column": 9}, s
    assert "node:internal" not in e["stack"] and "harness" not in e["stack"], s


def test_node_rejected_function_is_an_error(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "node",
                       "code": "module.exports = async (x) => {\n  await null;\n  throw new TypeError('bad ' + x);\n};",
                       "input": "in"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert s.result["error"]["message"] == "TypeError: bad in", s
    assert s.result["error"]["source_location"]["line"] == 3, s


def test_node_syntax_error_location(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "node", "code": "const a = 1;\nconst b = ;\n"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert s.result["error"]["source_location"]["line"] == 2, s
    assert s.result["error"]["message"].startswith("SyntaxError"), s


# ---------------------------------------------------------------------------------------------
# Edge

def node_major():
    out = subprocess.run(["node", "--version"], stdout=subprocess.PIPE, text=True).stdout
    return int(out.strip().lstrip("v").split(".")[0])


EDGE_ECHO = """export default {
  async fetch(request, env, ctx) {
    const body = request.method === 'POST' ? await request.text() : '';
    ctx.waitUntil(Promise.resolve());
    return new Response(`${request.method} ${new URL(request.url).pathname}` +
      `${new URL(request.url).search} ${env.NAME} [${body}] ${request.headers.get('x-in')}`,
      { status: 201, headers: { 'x-out': 'yes' } });
  }
};
"""


def test_edge_get_of_root_by_default(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "edge", "code": EDGE_ECHO, "env": {"NAME": "v"}})
    expect(s, None)
    res = s.result["result"]
    assert res["status"] == 201 and res["headers"]["x-out"] == "yes", s
    assert res["body"] == "GET / v [] null" and res["body_encoding"] == "utf8", s


def test_edge_request_from_input(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "edge", "code": EDGE_ECHO, "env": {"NAME": "v"},
                       "input": {"method": "POST", "url": "/p?q=1", "body": "data",
                                 "headers": {"x-in": "h"}}})
    expect(s, None)
    assert s.result["result"]["body"] == "POST /p?q=1 v [data] h", s


def test_edge_json_input_is_posted(cordon):
    need("node")
    code = ("export default { async fetch(r) { return Response.json({ got: await r.json(), "
            "ct: r.headers.get('content-type') }); } };")
    s = spawn(cordon, {"runtime": "edge", "code": code, "input": [1, 2]})
    expect(s, None)
    assert json.loads(s.result["result"]["body"]) == {"got": [1, 2], "ct": "application/json"}, s


def test_edge_binary_body_is_base64(cordon):
    need("node")
    code = "export default { fetch() { return new Response(new Uint8Array([0, 255, 1])); } };"
    s = spawn(cordon, {"runtime": "edge", "code": code})
    expect(s, None)
    r = s.result["result"]
    assert r["body_encoding"] == "base64" and base64.b64decode(r["body"]) == b"\x00\xff\x01", s


def test_edge_has_no_node_globals(cordon):
    need("node")
    code = ("export default { fetch() { return new Response([typeof process, typeof require, "
            "typeof Buffer, typeof globalThis.fetch, typeof crypto.subtle].join(' ')); } };")
    s = spawn(cordon, {"runtime": "edge", "code": code})
    expect(s, None)
    assert s.result["result"]["body"] == "undefined undefined undefined function object", s


@pytest.mark.parametrize("imp", ["import fs from 'node:fs';", "import cp from 'child_process';",
                                 "import x from './other.mjs';", "import net from 'node:net';"])
def test_edge_static_import_is_refused(cordon, imp):
    need("node")
    s = spawn(cordon, {"runtime": "edge",
                       "code": imp + "\nexport default { fetch() { return new Response('x'); } };"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert "not available in the edge runtime" in s.result["error"]["message"], s
    assert s.result["result"] is None, s


def test_edge_dynamic_import_and_fetch_are_refused(cordon):
    need("node")
    code = """export default { async fetch() {
  const out = [];
  try { await import('node:fs'); out.push('imported'); } catch (e) { out.push('import refused'); }
  try { await fetch('http://127.0.0.1:1/'); out.push('fetched'); } catch (e) { out.push(e.message); }
  return new Response(out.join('|'));
} };"""
    s = spawn(cordon, {"runtime": "edge", "code": code})
    expect(s, None)
    assert s.result["result"]["body"] == "import refused|fetch: the edge runtime has no network access", s


def test_edge_escaped_module_has_no_filesystem_on_node_20(cordon):
    """A module that climbs out of the vm context to node's own process object. With node's
    permission model (node >= 20) it still cannot read or write files or start processes."""
    need("node")
    if node_major() < 20:
        pytest.skip("node < 20 has no permission model: an escaped edge module is confined by "
                    "the sandbox only (edge.mjs says so)")
    code = """export default { async fetch() {
  const proc = Request.constructor.constructor('return process')();
  const out = [typeof proc];
  for (const f of [() => proc.binding('fs'), () => proc.binding('spawn_sync'),
                   () => proc.dlopen({}, '/x.node')]) {
    try { f(); out.push('ALLOWED'); } catch (e) { out.push(e.code || e.message); }
  }
  return new Response(out.join(' '));
} };"""
    s = spawn(cordon, {"runtime": "edge", "code": code})
    expect(s, None)
    body = s.result["result"]["body"]
    assert body.startswith("object ") and "ALLOWED" not in body, s
    assert body.split()[1:3] == ["ERR_ACCESS_DENIED", "ERR_ACCESS_DENIED"], s




def test_edge_console_and_error_location(cordon):
    need("node")
    code = ("export default {\n  async fetch(request) {\n    console.log('hi', 1);\n"
            "    console.error('bad');\n    throw new RangeError('nope');\n  }\n};\n")
    s = spawn(cordon, {"runtime": "edge", "code": code, "capture_console": True})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert [(l["level"], l["message"]) for l in s.result["logs"]] == [("log", "hi 1"), ("error", "bad")], s
    e = s.result["error"]
    assert e["message"] == "RangeError: nope", s
    assert e["source_location"] == {"file": "main.mjs", "line": 5, "column": 11}, s


def test_edge_syntax_error_location(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "edge",
                       "code": "export default {\n  fetch() { return new Response('x'); },\n  oops oops\n};"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert s.result["error"]["source_location"] == {"file": "main.mjs", "line": 3, "column": 8}, s


def test_edge_wrong_shape(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "edge", "code": "export default { nofetch: 1 };"})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert "fetch(request, env, ctx)" in s.result["error"]["message"], s


# ---------------------------------------------------------------------------------------------
# Test cases

FIB_C = r"""#include <stdio.h>
#warning compiled-here
int main(void) {
    int n;
    if (scanf("%d", &n) != 1) { for (;;) ; }
    long a = 0, b = 1;
    for (int i = 0; i < n; i++) { long t = a + b; a = b; b = t; }
    printf("%ld\n", a);
    FILE *f = fopen("/cordon-build/a.out", "w");
    fprintf(stderr, "%s\n", f ? "binary WRITABLE" : "binary read-only");
    return 0;
}
"""


def test_tests_compile_once_and_judge_each_case(cordon):
    need("gcc")
    s = spawn(cordon, {"runtime": "c", "code": FIB_C, "limits": {"timeout_ms": 2000}, "tests": [
        {"name": "t1", "stdin": "10\n", "expected_output": "55\n"},
        {"name": "t2", "stdin": "1\n", "expected_output": "2\n"},
        {"name": "t3", "stdin": "x", "expected_output": "0\n"},
        {"name": "t4", "stdin": "20", "expected_output": "6765   \n\n"},
    ]})
    ex = s.result
    assert ex["status"] == "failed" and ex["all_tests_passed"] is False, s
    t = {c["name"]: c for c in ex["tests"]}
    assert t["t1"]["passed"] is True and t["t1"]["stdout"] == "55\n", s
    assert t["t2"]["passed"] is False and t["t2"]["error"] is None, s
    assert t["t2"]["failure"] == "its output differs from expected_output", s
    assert t["t3"]["passed"] is False and t["t3"]["error"]["code"] == "SANDBOX_TIMEOUT", s
    assert t["t4"]["passed"] is True, s  # trailing whitespace and blank lines do not count
    for c in ex["tests"]:
        assert c["metrics"]["wall_time_ms"] >= 0 and "memory_peak_bytes" in c["metrics"], c
    # Compiled once: the #warning shows once in the compile output and its events.
    assert ex["compile_output"].count("warning: #warning compiled-here") == 1, s
    compile_events = "".join(e["data"] for e in s.of_type("stderr") if e.get("compile"))
    assert compile_events.count("warning: #warning compiled-here") == 1, s
    # A case cannot change the binary for the next one.
    assert all(c["stderr"] == "binary read-only\n" for c in ex["tests"] if c["name"] != "t3"), s
    # Output events say which case they belong to.
    assert s.stream("stdout", test=0) == "55\n" and s.stream("stdout", test=3) == "6765\n", s
    assert ex["error"]["message"].startswith("test 1 (\"t2\") failed"), s


def test_tests_all_pass(cordon):
    need("g++")
    code = "#include <iostream>\nint main() { int a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }"
    s = spawn(cordon, {"runtime": "cpp", "code": code, "tests": [
        {"name": "a", "stdin": "1 2", "expected_output": "3\n"},
        {"name": "b", "stdin": "40 2", "expected_output": "42\n"}]})
    expect(s, None)
    assert s.result["all_tests_passed"] is True and len(s.result["tests"]) == 2, s


def test_tests_compile_error(cordon):
    need("gcc")
    s = spawn(cordon, {"runtime": "c", "code": "int main( {", "tests": [
        {"name": "a", "stdin": "1", "expected_output": "1"}]})
    expect(s, "SANDBOX_COMPILE_ERROR")
    assert s.result["all_tests_passed"] is False and s.result["tests"][0]["passed"] is False, s
    assert "error" in s.result["compile_output"], s


def test_tests_function_input_expected_and_isolation(cordon):
    need("python3")
    code = ("import os\ndef main(args):\n    seen = os.path.exists('/tmp/mark')\n"
            "    open('/tmp/mark', 'w').close()\n    a, b = 0, 1\n    for _ in range(args[0]):\n"
            "        a, b = b, a + b\n    return {'fib': a, 'seen': seen}\n")
    s = spawn(cordon, {"runtime": "python", "code": code, "tests": [
        {"name": "t1", "input": [10], "expected": {"fib": 55, "seen": False}},
        {"name": "t2", "input": [20], "expected": {"fib": 6765, "seen": False}},
        {"name": "t3", "input": [3], "expected": {"fib": 3, "seen": False}}]})
    t = s.result["tests"]
    assert [c["passed"] for c in t] == [True, True, False], s
    assert t[2]["result"] == {"fib": 2, "seen": False}, s  # a fresh /tmp for each case
    assert t[2]["failure"] == "its result differs from expected", s


def test_tests_node_and_edge(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "node", "code": "module.exports = (x) => x * 2;", "tests": [
        {"input": 2, "expected": 4}, {"input": 5, "expected": 10}]})
    expect(s, None)
    s = spawn(cordon, {"runtime": "edge", "code": "export default { async fetch(r) { "
                       "return new Response(await r.text()); } };", "tests": [
        {"name": "e", "input": {"method": "POST", "body": "ping"},
         "expected": {"status": 200, "headers": {"content-type": "text/plain;charset=UTF-8"},
                      "body": "ping", "body_encoding": "utf8"}}]})
    expect(s, None)


# ---------------------------------------------------------------------------------------------
# Secrets everywhere, hostile programs forging records

SECRET_PY = f"""import os, sys, logging, json
T = os.environ['TOKEN']
def main(input):
    print('out', T)
    print('err', T, file=sys.stderr)
    logging.warning('log %s', T)
    # Split across writes, and escaped the way JSON escapes it.
    os.write(1, T[:3].encode()); sys.stdout.flush(); os.write(1, T[3:].encode() + b'\\n')
    print(json.dumps(T))
    if input == 'raise':
        raise ValueError('bad ' + T)
    return {{T: [T, 'x' + T]}}
"""


@pytest.mark.parametrize("mode", ["return", "raise"])
def test_secrets_never_in_any_line(cordon, mode):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "code": SECRET_PY, "input": mode,
                       "capture_console": True, "secrets": {"TOKEN": SECRET}})
    no_secret(s)
    if mode == "return":
        expect(s, None)
        assert s.result["result"] == {"[REDACTED]": ["[REDACTED]", "x[REDACTED]"]}, s
    else:
        expect(s, "SANDBOX_RUNTIME_ERROR")
        assert s.result["error"]["message"] == "ValueError: bad [REDACTED]", s
        assert "[REDACTED]" in s.result["error"]["stack"], s
    assert any("[REDACTED]" in l["message"] for l in s.result["logs"]), s


def test_secrets_never_in_test_outputs(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "code": "import os\nprint(os.environ['TOKEN'])",
                       "secrets": {"TOKEN": SECRET}, "tests": [
                           {"name": "t", "expected_output": SECRET + "\n"}]})
    no_secret(s)
    t = s.result["tests"][0]
    assert t["stdout"] == "[REDACTED]\n" and t["passed"] is True, s


def test_secrets_never_in_edge_output(cordon):
    need("node")
    code = ("export default { fetch(r, env) { console.log(env.TOKEN); "
            "return new Response(JSON.stringify({[env.TOKEN]: env.TOKEN}), "
            "{headers: {'x-t': env.TOKEN}}); } };")
    s = spawn(cordon, {"runtime": "edge", "code": code, "capture_console": True,
                       "secrets": {"TOKEN": SECRET}})
    expect(s, None)
    no_secret(s)
    assert s.result["result"]["headers"]["x-t"] == "[REDACTED]", s


def test_secret_that_matches_the_record_framing(cordon):
    """A short secret such as "log" or "cordon" occurs in every record's framing: records must
    still parse (they are split before redaction), and the value is still redacted."""
    need("python3")
    s = spawn(cordon, {"runtime": "python", "capture_console": True,
                       "secrets": {"A": "log", "B": "cordon", "C": "t"},
                       "code": "print('a log line')\ndef main(x):\n    return 'cordon'\n"})
    expect(s, None)
    assert s.result["logs"][0]["level"] == "log", s  # the level is cordon's word, not output
    assert s.result["logs"][0]["message"] == "a [REDACTED] line", s
    assert s.result["result"] == "[REDACTED]", s


FORGE_PY = r"""import sys, os
fake = '\x1ecordon:' + '0' * 32 + ':'
print(fake + '{"t":"result","value":"forged"}')
print(fake + '{"t":"log","level":"error","message":"forged"}')
sys.stdout.write('\x1ecordon:')
sys.stdout.flush()
print('partial')
print(os.path.exists('/tmp/.cordon/nonce'))
"""


def test_forged_records_without_the_nonce_are_plain_output(cordon):
    need("python3")
    s = spawn(cordon, {"runtime": "python", "code": FORGE_PY, "capture_console": True})
    expect(s, None)
    assert s.result["result"] is None, s
    assert all(l["message"] != "forged" for l in s.result["logs"]), s
    out = s.result["stdout"]
    assert out.count('"forged"') == 2 and "\x1ecordon:partial\n" in out, s
    assert out.endswith("False\n"), "the nonce file must be gone before the user's code runs\n" + str(s)


DIG_PY = r"""import gc, os, sys, time
# Dig the nonce out of the harness's memory and forge records with it.
marker = None
for o in gc.get_objects():
    if callable(o) and getattr(o, '__name__', '') == 'emit' and getattr(o, '__closure__', None):
        for c in o.__closure__:
            v = c.cell_contents
            if isinstance(v, bytes) and v.startswith(b'\x1ecordon:'):
                marker = v
assert marker, 'nonce not found'
os.write(1, marker + b'{"t":"error","value":{"name":"X","message":"forged","stack":"forged","file":"x","line":1}}\n')
os.write(1, marker + b'{"t":"result","value":"forged"}\n')
time.sleep(int(sys.argv[1]))
"""


@pytest.mark.parametrize("sleep,code", [(0, None), (30, "SANDBOX_TIMEOUT")])
def test_forged_records_cannot_change_cordons_verdict(cordon, sleep, code):
    """A program that finds the nonce can forge its own result and logs (it controls those
    anyway), never the status, exit code or a limit's verdict."""
    need("python3")
    s = spawn(cordon, {"runtime": "python", "code": DIG_PY, "args": [str(sleep)],
                       "limits": {"timeout_ms": 1500}})
    expect(s, code)
    assert s.result["result"] == "forged", s  # it could have returned it as well
    if code is None:
        assert s.result["error"] is None and s.result["exit_code"] == 0, s
    else:
        assert s.result["error"]["stack"] is None and s.result["error"]["message"] != "forged", s


def test_signal_cancels_a_test_run(cordon, request):
    """SIGTERM while test cases run: the case in progress is killed, no later case starts."""
    p = subprocess.Popen([cordon.bin, "__spawn", "--state-dir", cordon.state_dir],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=cordon.env)
    request.node.exclude_pids.add(p.pid)
    p.stdin.write(json.dumps({"runtime": "sh", "code": 'echo "ready $(cat)"; exec sleep 60',
                              "tests": [{"name": "a", "stdin": "a"}, {"name": "b", "stdin": "b"},
                                        {"name": "c", "stdin": "c"}]}).encode())
    p.stdin.close()
    p.stdin = None
    _, rest = read_events_until(p, lambda e: e["type"] == "stdout" and "ready a" in e["data"])
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    request.node.exclude_pids.discard(p.pid)
    assert p.returncode == 0, (p.returncode, err)
    events = [json.loads(line) for line in (rest + out).decode().splitlines()]
    ex = events[-1]["execution"]
    assert ex["status"] == "cancelled" and ex["error"]["code"] == "SANDBOX_CANCELLED", ex
    assert len(ex["tests"]) == 1 and ex["tests"][0]["error"]["code"] == "SANDBOX_CANCELLED", ex
    assert ex["all_tests_passed"] is False, ex
    assert not any(e.get("test") == 1 for e in events), events


def test_request_fuzz_corpus_is_refused_or_accepted_cleanly(cordon):
    """Every file of the request fuzz corpus gets either a result or exit 125 with one line."""
    corpus = os.path.join(os.path.dirname(__file__), "fuzz", "corpus", "spawn-req")
    for name in sorted(os.listdir(corpus)):
        data = open(os.path.join(corpus, name), "rb").read()
        argv = [cordon.bin, "__spawn", "--state-dir", cordon.state_dir]
        p = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=cordon.env, timeout=RUN_TIMEOUT)
        if p.returncode == 125:
            assert p.stdout == b"" or p.stdout.count(b"\n") >= 1, name
            assert len(p.stderr.decode().splitlines()) == 1, (name, p.stderr)
        else:
            assert p.returncode == 0, (name, p.returncode, p.stderr)
            assert json.loads(p.stdout.splitlines()[-1])["type"] == "result", name


def test_node_es_module_entrypoint(cordon):
    need("node")
    s = spawn(cordon, {"runtime": "node", "input": 4, "files": [
        {"path": "main.mjs", "content": "import { sq } from './lib.mjs';\n"
                                        "export default async (x) => ({ sq: sq(x) });\n"},
        {"path": "lib.mjs", "content": "export const sq = (x) => x * x;\n"}],
        "entrypoint": "main.mjs"})
    expect(s, None)
    assert s.result["result"] == {"sq": 16}, s
    s = spawn(cordon, {"runtime": "node", "files": [
        {"path": "main.mjs", "content": "const f = () => {\n  throw new Error('esm');\n};\nf();\n"}]})
    expect(s, "SANDBOX_RUNTIME_ERROR")
    assert s.result["error"]["source_location"] == {"file": "main.mjs", "line": 2, "column": 9}, s


# ---------------------------------------------------------------------------------------------
# --parent-pid: __spawn dies with the daemon

MIDDLE = r"""
import os, subprocess, sys
# Stands in for the daemon: starts __spawn tied to itself, tells its pid, waits.
p = subprocess.Popen([sys.argv[1], "__spawn", "--state-dir", sys.argv[2],
                      "--parent-pid", str(os.getpid())], stdin=subprocess.PIPE)
p.stdin.write(sys.argv[3].encode())
p.stdin.close()
sys.stderr.write(f"{p.pid}\n")
sys.stderr.flush()
p.wait()
"""


def test_parent_pid_sigkill_of_the_daemon_takes_spawn_and_sandbox_down(cordon, request):
    req = json.dumps({"command": ["sh", "-c", "echo ready; exec sleep 60"],
                      "limits": {"timeout_ms": 120000}})
    m = subprocess.Popen(["/usr/bin/python3", "-c", MIDDLE, cordon.bin, cordon.state_dir, req],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env)
    spawn_pid = int(m.stderr.readline())
    read_events_until(m, lambda e: e["type"] == "stdout" and "ready" in e["data"])
    m.kill()
    m.wait()

    def gone():
        try:
            with open(f"/proc/{spawn_pid}/stat") as f:
                return f.read().split(")")[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    assert wait_until(gone, 30), "__spawn outlived its parent"
    assert wait_until(lambda: not sandbox_processes(), 30), \
        f"sandbox processes outlived __spawn: {sandbox_processes()}"
    # What the killed __spawn could not remove (its cgroup), the next run sweeps.
    expect(spawn(cordon, {"command": ["true"]}), None)
    m.stdout.close()
    m.stderr.close()


def test_parent_pid_must_be_the_parent(cordon):
    for arg in ["1", "nope", "0", "-5"]:
        p = subprocess.run([cordon.bin, "__spawn", "--parent-pid", arg, "--runtimes"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cordon.env,
                           timeout=RUN_TIMEOUT)
        assert p.returncode == 125 and p.stdout == b"", (arg, p)
        assert len(p.stderr.decode().splitlines()) == 1, (arg, p.stderr)
    p = subprocess.run(["/usr/bin/python3", "-c",
                        "import os, subprocess, sys; sys.exit(subprocess.run([sys.argv[1], "
                        "'__spawn', '--parent-pid', str(os.getpid()), '--runtimes'], "
                        "stdout=subprocess.DEVNULL).returncode)", cordon.bin],
                       env=cordon.env, timeout=RUN_TIMEOUT)
    assert p.returncode == 0
