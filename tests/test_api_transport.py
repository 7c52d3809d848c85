"""Transport-level behaviour of `cordon serve`: error statuses of API.md, body and JSON limits,
rate limits, metrics, health, graceful shutdown."""

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import time

from api_daemon import SERVE, Daemon, daemon, free_port, start_daemon  # noqa: F401 (fixtures)

REQ_ID = re.compile(r"^req_[0-9a-f]{16}$")


def assert_error(r, status, code, field=None):
    assert r.status == status, r
    assert r.json and set(r.json) == {"error"}, r
    e = r.error
    assert set(e) == {"code", "message", "field", "retryable"}, e
    assert e["code"] == code and e["field"] == field, e
    assert e["retryable"] == (status in (429, 503)), e
    assert REQ_ID.match(r.headers["x-request-id"]), r.headers


def test_invalid_json_is_400(daemon):
    d = daemon
    for raw in [b"{bad", b"", b"[1, 2", b'{"name": "a", "name": "b"}', b"\xff\xfe"]:
        r = d.request("POST", "/v1/tenants", raw=raw)
        assert_error(r, 400, "invalid_json")


def test_json_that_is_not_an_object_is_422(daemon):
    r = daemon.request("POST", "/v1/tenants", raw=b"[1, 2, 3]")
    assert_error(r, 422, "validation_failed")


def test_wrong_content_type_is_415(daemon):
    d = daemon
    for ct in ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None]:
        r = d.request("POST", "/v1/tenants", raw=b'{"name": "a"}', content_type=ct)
        assert_error(r, 415, "unsupported_media_type")
    r = d.request("POST", "/v1/tenants", raw=b'{"name": "a"}',
                  content_type="application/json; charset=utf-8")
    assert r.status == 201, r


def test_body_over_the_maximum_is_413(start_daemon):
    # An idle connection would be closed after idle_timeout_ms: far beyond this test's wait.
    d = start_daemon("--limit", "max_body_bytes=1K", "--limit", "idle_timeout_ms=1h")
    body = {"name": "x" * 2000}
    r = d.request("POST", "/v1/tenants", body)  # Content-Length says so: refused unread
    assert_error(r, 413, "payload_too_large")
    # Chunked, so the size is only known while reading: once over the cap the daemon stops
    # reading at once (a 413 if libmicrohttpd can still answer, else it closes the
    # connection). 4 times the cap, never terminated: a daemon that kept reading would wait
    # for the rest and this recv would time out.
    sock = socket.create_connection(("127.0.0.1", d.port), timeout=60)
    sock.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + d.admin_key.encode() + b"\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(4):
            sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
    except OSError:
        pass  # already closed by the daemon
    try:
        answer = sock.recv(4096)
    except ConnectionResetError:
        answer = b""
    sock.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Under the cap it works.
    assert d.request("POST", "/v1/tenants", {"name": "small"}).status == 201


def test_json_nested_too_deep_is_422(start_daemon):
    d = start_daemon("--limit", "max_json_depth=4")
    deep = {"name": "x", "plan": {"limits": {"a": {"b": {}}}}}
    r = d.request("POST", "/v1/tenants", deep)
    assert_error(r, 422, "validation_failed")
    assert "deeper than 4" in r.error["message"]


def test_unknown_field_is_422_with_its_path(daemon):
    r = daemon.request("POST", "/v1/tenants",
                       {"name": "x", "plan": {"rate_limit": {"per_second": 1, "brust": 3}}})
    assert_error(r, 422, "validation_failed", "plan.rate_limit.brust")


def test_rate_limit_is_429_with_headers(daemon):
    d = daemon
    t = d.request("POST", "/v1/tenants",
                  {"name": "slow", "plan": {"rate_limit": {"per_second": 1, "burst": 2}}}).json
    key = d.request("POST", f"/v1/tenants/{t['id']}/keys").json["key"]
    conn = d.connect()
    replies = [d.request("GET", "/v1/tenant", key=key, conn=conn) for _ in range(20)]
    conn.close()
    ok = [r for r in replies if r.status == 200]
    limited = [r for r in replies if r.status == 429]
    assert ok and limited, [r.status for r in replies]
    assert replies[0].status == 200
    assert ok[0].headers["ratelimit-limit"] == "2"
    r = limited[0]
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-limit"] == "2"
    assert r.headers["ratelimit-remaining"] == "0"
    assert int(r.headers["ratelimit-reset"]) >= 1
    # Another tenant is not slowed down by this one.
    assert d.request("GET", "/v1/tenant").status == 200
    m = d.request("GET", "/metrics", key=None).body.decode()
    n = re.search(r"^cordon_rate_limited_total (\d+)$", m, re.M)
    assert n and int(n.group(1)) == len(limited), m


def test_metrics_are_prometheus_text(daemon):
    d = daemon
    d.request("GET", "/v1/nothing")
    r = d.request("GET", "/metrics", key=None)
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+]+$')
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ ", line), line
        else:
            assert sample.match(line), line
    for name in ["cordon_executions_total", "cordon_execution_duration_seconds_bucket",
                 "cordon_queue_depth", "cordon_executions_running", "cordon_rate_limited_total",
                 "cordon_quota_exceeded_total", "cordon_http_requests_total"]:
        assert re.search(rf"^{name}[{{ ]", text, re.M), name
    assert 'cordon_executions_total{status="succeeded",error_code=""} 0' in text
    assert 'cordon_execution_duration_seconds_bucket{le="+Inf"} 0' in text
    assert re.search(r'^cordon_http_requests_total\{code="404"\} [1-9]', text, re.M), text


def test_health_and_readiness(daemon):
    d = daemon
    for path, want in [("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})]:
        r = d.request("GET", path, key=None)
        assert r.status == 200 and r.json == want, (path, r)


def test_readyz_is_503_when_sandboxes_cannot_start(start_daemon, workbase):
    # A copy of cordon-serve with no `cordon` beside it cannot start any sandbox.
    lonely = workbase / "lonely"
    lonely.mkdir()
    shutil.copy2(SERVE, lonely / "cordon-serve")
    port = free_port()
    p = subprocess.Popen([str(lonely / "cordon-serve"), "--listen", f"127.0.0.1:{port}",
                          "--no-auth", "--state-dir", str(lonely / "state")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        d = Daemon.__new__(Daemon)
        d.port = port
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert p.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert d.request("GET", "/healthz", key=None).status == 200
        r = d.request("GET", "/readyz", key=None)
        assert_error(r, 503, "overloaded")
        assert "sandbox is not ready" in r.error["message"], r
    finally:
        p.terminate()
        p.wait(60)


def test_every_answer_has_a_request_id(daemon):
    d = daemon
    seen = set()
    for method, path, kw in [("GET", "/healthz", {"key": None}), ("GET", "/nope", {}),
                             ("GET", "/v1/usage", {"key": None}),
                             ("POST", "/v1/tenants", {"raw": b"{"}),
                             ("POST", "/v1/tenants", {"body": {"name": "ok"}}),
                             ("HEAD", "/healthz", {"key": None})]:
        r = d.request(method, path, **kw)
        rid = r.headers.get("x-request-id", "")
        assert REQ_ID.match(rid), (method, path, r.headers)
        seen.add(rid)
    assert len(seen) == 6


def test_sigterm_stops_accepting_and_exits_cleanly(daemon):
    d = daemon
    assert d.request("GET", "/healthz", key=None).status == 200
    rc = d.stop(signal.SIGTERM)
    assert rc == 0, d.log_text()[-2000:]
    msgs = [line["msg"] for line in d.log_lines()]
    assert "shutting down" in msgs and msgs[-1] == "stopped", msgs
    try:
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    assert refused, "the port still accepts connections after shutdown"


def test_a_client_that_hangs_up_does_not_kill_the_daemon(daemon):
    d = daemon
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                  b"Content-Type: application/json\r\nAuthorization: Bearer "
                  + d.admin_key.encode() + b"\r\n\r\n{\"na")
        s.close()
    assert d.request("GET", "/healthz", key=None).status == 200
    assert d.proc.poll() is None


def test_concurrent_requests_are_all_answered(daemon):
    # Several clients at once over keep-alive connections, mixing routes and errors: every
    # answer is the right one and the daemon survives (the ASan lane catches races here).
    import threading
    d = daemon
    t = d.request("POST", "/v1/tenants", {"name": "busy"}).json
    key = d.request("POST", f"/v1/tenants/{t['id']}/keys").json["key"]
    cases = [("GET", "/healthz", None, None, 200), ("GET", "/v1/tenant", None, "admin", 200),
             ("GET", "/v1/tenant", None, key, 200), ("GET", "/v1/usage", None, key, 403),
             ("GET", "/nope", None, None, 404), ("POST", "/v1/tenants", b"{", "admin", 400),
             ("GET", "/metrics", None, None, 200)]
    errors = []

    def client(n):
        conn = d.connect()
        try:
            for i in range(40):
                method, path, raw, k, want = cases[(n + i) % len(cases)]
                r = d.request(method, path, raw=raw, key=k, conn=conn)
                if r.status != want and not (r.status == 429 and k == key):
                    errors.append((method, path, r.status, want))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:10]
    assert d.proc.poll() is None


def test_one_client_cannot_take_every_connection(start_daemon):
    d = start_daemon("--limit", "max_connections_per_ip=2", "--limit", "idle_timeout_ms=1h")

    def try_connection():
        s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
        return s, answer

    # Open connections and keep them: by the third at the latest, one is closed unanswered
    # (the fixture's own probe connection may still count while the daemon reaps it).
    held, refused = [], False
    for _ in range(3):
        s, answer = try_connection()
        if answer == b"":
            s.close()
            refused = True
            break
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        held.append(s)
    assert refused and 1 <= len(held) <= 2, len(held)
    for s in held:
        s.close()
    # Slots are free again once the daemon notices the closes (asynchronously: retry).
    deadline = time.monotonic() + 60
    while True:
        try:
            r = d.request("GET", "/healthz", key=None)
            if r.status == 200:
                break
        except (ConnectionError, http.client.HTTPException):
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)
