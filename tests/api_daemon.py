"""Fixtures for the black-box API tests (import them: `from api_daemon import daemon,
start_daemon`): the real `cordon serve` on a free loopback port with a
temporary state dir, started and stopped by pid (never by name).

    daemon        a running daemon (auth on); .admin_key is the key it printed at first start
    start_daemon  factory: start_daemon(*extra_args, auth=True, state_dir=None) -> Daemon

Daemon.request(method, path, body=None, key=..., headers=None, raw=None) -> Reply with
.status, .headers (lower-case names), .body (bytes), .json (parsed or None).
"""

import http.client
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORDON = os.path.abspath(os.environ.get("CORDON", ROOT / "build" / "cordon"))
# The daemon program beside the binary under test (the ENOSYS lane's CORDON is a wrapper
# script elsewhere, which execs build/cordon).
SERVE = os.path.join(os.path.dirname(CORDON), "cordon-serve")
if not os.path.exists(SERVE):
    SERVE = str(ROOT / "build" / "cordon-serve")
START_TIMEOUT = 60  # test-side bound on a daemon start: generous, CI is slow under load
KEY_RE = re.compile(r"^ck_[a-z2-7]{32}$")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    @property
    def error(self):
        return (self.json or {}).get("error") or {}

    def __repr__(self):
        return f"<Reply {self.status} {self.body[:300]!r}>"


class Daemon:
    def __init__(self, state_dir, args, auth=True):
        self.state_dir = pathlib.Path(state_dir)
        self.port = free_port()
        self.args = args
        self.auth = auth
        self.admin_key = None
        self.proc = None
        self.log_path = self.state_dir.parent / f"daemon-{self.port}.log"
        self.out_path = self.state_dir.parent / f"daemon-{self.port}.out"

    def start(self):
        argv = [CORDON, "serve", "--listen", f"127.0.0.1:{self.port}",
                "--state-dir", str(self.state_dir), *self.args]
        if not self.auth:
            argv.append("--no-auth")
        self.log = open(self.log_path, "ab")
        self.out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cordon serve exited {self.proc.returncode}:\n"
                                     + self.log_text()[-3000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("cordon serve did not listen:\n" + self.log_text()[-3000:])
        m = re.search(r"^(ck_\S+)$", self.stdout_text(), re.M)
        if m and self.admin_key is None:
            self.admin_key = m.group(1)
        return self

    def stdout_text(self):
        if not self.out.closed:
            self.out.flush()
        return self.out_path.read_text(errors="replace")

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def log_lines(self):
        """The log's complete lines, parsed (a line being written by the running daemon, not
        yet ended by its newline, is left for the next call)."""
        text = self.log_text()
        if not text.endswith("\n"):
            text = text[:text.rfind("\n") + 1]
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self, sig=signal.SIGTERM, timeout=START_TIMEOUT):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (getattr(self, "log", None), getattr(self, "out", None)):
            if f:
                f.close()
        return self.proc.returncode

    def connect(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, key="admin", headers=None, raw=None,
                content_type="application/json", conn=None):
        hdrs = dict(headers or {})
        if key == "admin":
            key = self.admin_key
        if key:
            hdrs.setdefault("Authorization", f"Bearer {key}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None and content_type:
            hdrs.setdefault("Content-Type", content_type)
        c = conn or self.connect()
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            return Reply(r.status, r.getheaders(), r.read())
        finally:
            if conn is None:
                c.close()


@pytest.fixture
def start_daemon(workbase):
    started = []

    def start(*args, auth=True, state_dir=None):
        if state_dir is None:
            d = tempfile.mkdtemp(prefix="api-", dir=workbase)
            state_dir = os.path.join(d, "state")
        d = Daemon(state_dir, list(args), auth=auth)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def daemon(start_daemon):
    return start_daemon()
