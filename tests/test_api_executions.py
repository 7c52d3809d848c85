"""The executions API of `cordon serve` (API.md "Executions"), black box: sync and async runs,
long polls, list with cursor and status filter, cancel, delete, live SSE events, runtimes,
secrets absent from every answer, event, stored byte and callback, signed callbacks with
retries, the queue bound, graceful shutdown and crash recovery (kill -9, restart).

Every test runs its own daemon on a free loopback port with a temporary state dir; the autouse
`host_untouched` fixture (conftest.py) then checks no sandbox process, cgroup or mount is left.
"""

import hashlib
import hmac
import http.server
import json
import os
import signal
import threading
import time

import pytest

from api_daemon import daemon, start_daemon  # noqa: F401 (fixtures)
from conftest import proc_cmdline, proc_table, wait_until

RUN_WAIT = 120  # test-side bound on one execution (2-core CI under load)


def run(d, body, key="admin", **kw):
    return d.request("POST", "/v1/executions", body=body, key=key, **kw)


def wait_status(d, ex_id, statuses, key="admin", timeout=RUN_WAIT):
    """Poll until the execution's status is one of statuses; returns the record."""
    last = {}

    def ok():
        nonlocal last
        r = d.request("GET", f"/v1/executions/{ex_id}", key=key)
        last = r.json
        return r.status == 200 and r.json["status"] in statuses

    assert wait_until(ok, timeout), last
    return last


def spawners(state_dir):
    """Live `cordon __spawn` processes started for this daemon's state dir."""
    out = []
    for pid, (_, state, _) in proc_table().items():
        if state in ("Z", "X"):
            continue
        cmd = proc_cmdline(pid)
        if "__spawn" in cmd and str(state_dir) in cmd:
            out.append((pid, cmd))
    return out


# ---- sync, async, long poll ---------------------------------------------------------------


def test_sync_execution_answers_the_finished_record(daemon):
    r = run(daemon, {"runtime": "bash", "code": "echo hi; echo err >&2; exit 3"})
    assert r.status == 200, r
    ex = r.json
    assert ex["id"].startswith("ex_")
    assert ex["status"] == "failed"
    assert ex["exit_code"] == 3
    assert ex["error"]["code"] == "SANDBOX_RUNTIME_ERROR"
    assert ex["stdout"] == "hi\n" and ex["stderr"] == "err\n"
    for k in ("created_at", "started_at", "finished_at"):
        assert ex[k] and ex[k].endswith("Z"), (k, ex)
    assert ex["metrics"]["queue_ms"] >= 0
    # The stored record is the same object.
    g = daemon.request("GET", f"/v1/executions/{ex['id']}")
    assert g.status == 200
    assert {k: g.json[k] for k in ("status", "exit_code", "stdout", "stderr", "error")} == \
        {k: ex[k] for k in ("status", "exit_code", "stdout", "stderr", "error")}


def test_async_answers_202_then_long_poll_waits_for_the_end(daemon):
    r = run(daemon, {"runtime": "bash", "code": "sleep 1; echo done", "async": True})
    assert r.status == 202, r
    ex_id = r.json["id"]
    assert r.json["status"] in ("queued", "running")
    assert r.headers["location"] == f"/v1/executions/{ex_id}"
    g = daemon.request("GET", f"/v1/executions/{ex_id}?wait_ms=60000")
    assert g.status == 200, g
    assert g.json["status"] == "succeeded", g.json
    assert g.json["stdout"] == "done\n"


def test_long_poll_times_out_with_the_running_record(daemon):
    r = run(daemon, {"runtime": "bash", "code": "sleep 30", "async": True})
    ex_id = r.json["id"]
    wait_status(daemon, ex_id, ("running",))
    g = daemon.request("GET", f"/v1/executions/{ex_id}?wait_ms=300")
    assert g.status == 200 and g.json["status"] == "running", g
    assert daemon.request("POST", f"/v1/executions/{ex_id}/cancel").status == 200


def test_wait_ms_out_of_range_is_422(daemon):
    r = run(daemon, {"runtime": "bash", "code": "true"})
    g = daemon.request("GET", f"/v1/executions/{r.json['id']}?wait_ms=99999999999")
    assert g.status == 422 and g.error["field"] == "query.wait_ms", g


def test_unknown_execution_is_404(daemon):
    for method, path in (("GET", "/v1/executions/ex_nope"),
                         ("POST", "/v1/executions/ex_nope/cancel"),
                         ("DELETE", "/v1/executions/ex_nope"),
                         ("GET", "/v1/executions/ex_nope/events")):
        r = daemon.request(method, path)
        assert r.status == 404 and r.error["code"] == "not_found", (method, path, r)


# ---- list ---------------------------------------------------------------------------------


def test_list_pages_with_a_cursor_and_filters_by_status(daemon):
    ids = []
    for code in ("true", "true", "exit 4", "true"):
        r = run(daemon, {"runtime": "bash", "code": code})
        assert r.status == 200, r
        ids.append(r.json["id"])
    seen = []
    cursor = None
    pages = 0
    while True:
        path = "/v1/executions?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = daemon.request("GET", path)
        assert r.status == 200, r
        assert len(r.json["data"]) <= 2
        seen += [e["id"] for e in r.json["data"]]
        pages += 1
        cursor = r.json["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert pages >= 2
    assert seen == list(reversed(ids)), "newest first, each once"
    r = daemon.request("GET", "/v1/executions?status=failed")
    assert [e["id"] for e in r.json["data"]] == [ids[2]]
    assert r.json["data"][0]["exit_code"] == 4
    r = daemon.request("GET", "/v1/executions?status=bogus")
    assert r.status == 422 and r.error["field"] == "query.status", r
    r = daemon.request("GET", "/v1/executions?cursor=not-a-cursor")
    assert r.status == 422 and r.error["field"] == "query.cursor", r


# ---- cancel, delete -----------------------------------------------------------------------


def test_cancel_a_running_execution(daemon):
    r = run(daemon, {"runtime": "bash", "code": "sleep 60", "async": True})
    ex_id = r.json["id"]
    wait_status(daemon, ex_id, ("running",))
    c = daemon.request("POST", f"/v1/executions/{ex_id}/cancel")
    assert c.status == 200, c
    assert c.json["status"] == "cancelled"
    assert c.json["error"]["code"] == "SANDBOX_CANCELLED"
    assert daemon.request("GET", f"/v1/executions/{ex_id}").json["status"] == "cancelled"
    again = daemon.request("POST", f"/v1/executions/{ex_id}/cancel")
    assert again.status == 409 and again.error["code"] == "conflict", again


def test_cancel_a_finished_execution_is_409(daemon):
    r = run(daemon, {"runtime": "bash", "code": "true"})
    c = daemon.request("POST", f"/v1/executions/{r.json['id']}/cancel")
    assert c.status == 409, c


def test_delete_removes_the_record(daemon):
    r = run(daemon, {"runtime": "bash", "code": "echo x"})
    ex_id = r.json["id"]
    d = daemon.request("DELETE", f"/v1/executions/{ex_id}")
    assert d.status == 204 and d.body == b"", d
    assert daemon.request("GET", f"/v1/executions/{ex_id}").status == 404
    assert daemon.request("DELETE", f"/v1/executions/{ex_id}").status == 404
    assert ex_id not in [e["id"] for e in daemon.request("GET", "/v1/executions").json["data"]]


def test_delete_a_running_execution_cancels_and_removes_it(daemon):
    r = run(daemon, {"runtime": "bash", "code": "sleep 60", "async": True})
    ex_id = r.json["id"]
    wait_status(daemon, ex_id, ("running",))
    d = daemon.request("DELETE", f"/v1/executions/{ex_id}")
    assert d.status == 204, d
    assert daemon.request("GET", f"/v1/executions/{ex_id}").status == 404
    assert wait_until(lambda: not spawners(daemon.state_dir), 30), spawners(daemon.state_dir)


# ---- SSE ----------------------------------------------------------------------------------


def sse_events(resp):
    """Yield (event, data) from a text/event-stream response as lines arrive."""
    ev, data = None, []
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line == "":
            if ev:
                yield ev, json.loads("\n".join(data))
            ev, data = None, []
        elif line.startswith("event: "):
            ev = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


def open_events(d, ex_id, key="admin"):
    c = d.connect(timeout=RUN_WAIT)
    c.request("GET", f"/v1/executions/{ex_id}/events",
              headers={"Authorization": f"Bearer {d.admin_key if key == 'admin' else key}"})
    resp = c.getresponse()
    return c, resp


def test_events_stream_live_while_the_run_goes_on(daemon):
    # The program prints "one" and then runs for a minute: seeing "one" on the stream while
    # GET still says running shows the event came live, not replayed after the end.
    r = run(daemon, {"runtime": "bash", "async": True,
                     "code": "echo one; for i in $(seq 600); do sleep 0.1; done; echo two"})
    ex_id = r.json["id"]
    c, resp = open_events(daemon, ex_id)
    assert resp.status == 200
    assert resp.getheader("content-type").startswith("text/event-stream")
    got = []
    for ev, data in sse_events(resp):
        got.append((ev, data))
        if ev == "stdout" and "one" in data["data"]:
            st = daemon.request("GET", f"/v1/executions/{ex_id}").json["status"]
            assert st == "running", "the stdout event came before the end"
            assert daemon.request("POST", f"/v1/executions/{ex_id}/cancel").status == 200
        if ev == "end":
            break
    c.close()
    types = [e for e, _ in got]
    assert types[0] == "status" and types[-1] == "end", types
    statuses = [d["status"] for e, d in got if e == "status"]
    assert statuses == ["queued", "running", "cancelled"], got
    assert types.index("stdout") > 1, "stdout after the running status"
    assert got[-1][1]["status"] == "cancelled"
    assert "two" not in "".join(d.get("data", "") for e, d in got if e == "stdout")


def test_events_of_a_finished_execution_are_replayed(daemon):
    r = run(daemon, {"runtime": "bash", "code": "echo out; echo err >&2"})
    c, resp = open_events(daemon, r.json["id"])
    got = list(sse_events(resp))
    c.close()
    types = [e for e, _ in got]
    assert types[0] == "status" and types[-1] == "end", got
    assert ("stdout", {"data": "out\n"}) in got
    assert ("stderr", {"data": "err\n"}) in got
    assert got[-1][1]["status"] == "succeeded" and got[-1][1]["exit_code"] == 0


def test_python_logs_come_as_log_events(daemon):
    r = run(daemon, {"runtime": "python", "capture_console": True, "async": True,
                     "code": "import logging\nlogging.warning('careful')\nprint('x')"})
    assert r.status == 202, r
    c, resp = open_events(daemon, r.json["id"])
    got = list(sse_events(resp))
    c.close()
    logs = [d for e, d in got if e == "log"]
    assert any(l.get("level") == "warn" and "careful" in l.get("message", "") for l in logs), got


# ---- runtimes -----------------------------------------------------------------------------


def test_runtimes_lists_what_is_present(daemon):
    r = daemon.request("GET", "/v1/runtimes")
    assert r.status == 200, r
    names = {rt["name"] for rt in r.json["data"]}
    assert {"bash", "sh", "python"} <= names, names
    for rt in r.json["data"]:
        assert rt["version"] and rt["image"], rt
        assert rt["default_limits"]["timeout_ms"] > 0, rt


# ---- secrets ------------------------------------------------------------------------------


SECRET = "s3cr3t-" + os.urandom(6).hex()


def files_holding(state_dir, needle):
    """{path: context} of every file below state_dir that holds needle (bytes)."""
    found = {}
    for root, _, files in os.walk(state_dir):
        for f in files:
            p = os.path.join(root, f)
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            i = data.find(needle)
            if i >= 0:
                found[p] = data[max(0, i - 200):i + 40]
    return found


class Receiver:
    """A callback receiver on 127.0.0.1: answers the statuses in `plan` in turn (then 200)."""

    def __init__(self, plan=()):
        self.plan = list(plan)
        self.calls = []
        self.cond = threading.Condition()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                with outer.cond:
                    status = outer.plan.pop(0) if outer.plan else 200
                    outer.calls.append((dict(self.headers), body, status))
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def wait_calls(self, n, timeout=RUN_WAIT):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.calls) >= n, timeout)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(plan=()):
        rv = Receiver(plan)
        made.append(rv)
        return rv

    yield make
    for rv in made:
        rv.close()


def test_secrets_never_appear_anywhere(daemon, receiver):
    rv = receiver()
    code = ("import os, sys, logging\n"
            "v = os.environ['TOKEN']\n"
            "print('out', v)\n"
            "print('err', v, file=sys.stderr)\n"
            "logging.warning('log %s', v)\n")
    body = {"runtime": "python", "code": code, "secrets": {"TOKEN": SECRET},
            "env": {"ALSO": "x" + SECRET}, "metadata": {"note": SECRET},
            "capture_console": True, "callback_url": rv.url, "async": True}
    r = run(daemon, body)
    assert r.status == 202, r
    ex_id = r.json["id"]
    c, resp = open_events(daemon, ex_id)
    raw_events = []
    for ev, data in sse_events(resp):
        raw_events.append(json.dumps(data))
        if ev == "end":
            break
    c.close()
    final = daemon.request("GET", f"/v1/executions/{ex_id}")
    assert final.json["status"] == "succeeded", final.json
    # The program did print it: redacted, not missing.
    assert "[REDACTED]" in final.json["stdout"] and "[REDACTED]" in final.json["stderr"]
    assert rv.wait_calls(1)
    listing = daemon.request("GET", "/v1/executions")
    texts = {"answer": r.body, "record": final.body, "list": listing.body,
             "events": "\n".join(raw_events).encode(), "callback": rv.calls[0][1]}
    for name, text in texts.items():
        assert SECRET.encode() not in text, name
    daemon.stop()
    assert files_holding(daemon.state_dir, SECRET.encode()) == {}, "stored bytes"
    assert SECRET not in daemon.log_text()


# ---- callbacks ----------------------------------------------------------------------------


def verify_signature(state_dir, headers, body):
    key = (state_dir / "callback.key").read_bytes()
    sig = headers.get("X-Cordon-Signature")
    assert sig, headers
    parts = dict(p.split("=", 1) for p in sig.split(","))
    mac = hmac.new(key, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


def test_callback_is_signed_and_retried_and_attempts_are_recorded(daemon, receiver):
    rv = receiver(plan=[500])
    r = run(daemon, {"runtime": "bash", "code": "echo cb", "callback_url": rv.url})
    assert r.status == 200, r
    ex_id = r.json["id"]
    assert rv.wait_calls(2), rv.calls
    for headers, body, _ in rv.calls:
        assert verify_signature(daemon.state_dir, headers, body), headers
        sent = json.loads(body)
        assert sent["id"] == ex_id and sent["status"] == "succeeded"
        assert sent["stdout"] == "cb\n"
    # A forged body does not verify.
    assert not verify_signature(daemon.state_dir, rv.calls[0][0], rv.calls[0][1] + b" ")
    assert rv.calls[0][0]["X-Cordon-Delivery"] == f"{ex_id}/1"

    def recorded():
        a = daemon.request("GET", f"/v1/executions/{ex_id}/callbacks").json["data"]
        return len(a) >= 2 and a

    attempts = wait_until(recorded, 30) and recorded()
    assert attempts, daemon.request("GET", f"/v1/executions/{ex_id}/callbacks")
    assert [a["http_status"] for a in attempts] == [500, 200]
    assert attempts[0]["error"] and attempts[1]["error"] is None


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/",
                                 "http://[::ffff:169.254.169.254]/", "http://0.0.0.0:9/",
                                 "http://[fe80::1]/"])
def test_callback_never_reaches_link_local_or_unspecified(daemon, url):
    """SSRF guard: whatever the URL names, a link-local (cloud metadata), unspecified or
    multicast address is never connected to; the attempt is recorded as refused."""
    r = run(daemon, {"runtime": "bash", "code": "true", "callback_url": url})
    assert r.status == 200, r
    ex_id = r.json["id"]

    def recorded():
        a = daemon.request("GET", f"/v1/executions/{ex_id}/callbacks").json["data"]
        return a or None

    attempts = wait_until(recorded, 60)
    assert attempts, "no delivery attempt was recorded"
    assert attempts[0]["http_status"] in (0, None), attempts
    assert "destination address not allowed" in attempts[0]["error"], attempts


def test_callback_url_must_be_http(daemon):
    r = run(daemon, {"runtime": "bash", "code": "true", "callback_url": "file:///etc/passwd"})
    assert r.status == 422 and r.error["field"] == "callback_url", r


# ---- queue bound, shutdown, crash -----------------------------------------------------------


def test_queue_full_is_503_with_retry_after(start_daemon):
    d = start_daemon("--limit", "workers=1", "--limit", "queue_max=1")
    a = run(d, {"runtime": "bash", "code": "sleep 60", "async": True})
    b = run(d, {"runtime": "bash", "code": "sleep 60", "async": True})
    assert a.status == 202 and b.status == 202, (a, b)
    c = run(d, {"runtime": "bash", "code": "true", "async": True})
    assert c.status == 503, c
    assert c.error["code"] == "overloaded" and c.error["retryable"] is True
    assert int(c.headers["retry-after"]) >= 1
    # The queued one is cancelled without running; then there is room again.
    cb = d.request("POST", f"/v1/executions/{b.json['id']}/cancel")
    assert cb.status == 200 and cb.json["status"] == "cancelled", cb
    assert cb.json["started_at"] is None
    assert run(d, {"runtime": "bash", "code": "true", "async": True}).status == 202
    assert d.request("POST", f"/v1/executions/{a.json['id']}/cancel").status == 200


def test_sigterm_lets_short_runs_finish_and_cancels_long_ones(start_daemon):
    d = start_daemon("--limit", "shutdown_grace_ms=3000")
    short = run(d, {"runtime": "bash", "code": "sleep 1; echo made-it", "async": True})
    long = run(d, {"runtime": "bash", "code": "sleep 120", "async": True})
    wait_status(d, short.json["id"], ("running",))
    wait_status(d, long.json["id"], ("running",))
    assert d.stop(signal.SIGTERM) == 0
    assert not spawners(d.state_dir)
    d2 = start_daemon(state_dir=str(d.state_dir))
    d2.admin_key = d.admin_key
    s = d2.request("GET", f"/v1/executions/{short.json['id']}").json
    assert s["status"] == "succeeded" and s["stdout"] == "made-it\n", s
    g = d2.request("GET", f"/v1/executions/{long.json['id']}").json
    assert g["status"] == "cancelled", g
    assert g["error"]["code"] == "SANDBOX_CANCELLED"
    assert "grace period of 3000 ms" in g["error"]["message"], g


def test_kill_9_then_restart_marks_running_failed_and_leaves_nothing(start_daemon):
    d = start_daemon()
    r = run(d, {"runtime": "bash", "code": "sleep 300", "async": True,
                "limits": {"timeout_ms": 60000}})
    assert r.status == 202, r
    ex_id = r.json["id"]
    wait_status(d, ex_id, ("running",))
    pids = [pid for pid, _ in spawners(d.state_dir)]
    assert pids, "a spawner runs the sandbox"
    d.stop(signal.SIGKILL)
    # pytest is a child subreaper, so the orphaned spawner is now our child: it must die of
    # SIGKILL with the daemon (PDEATHSIG), not live on until its 60 s run ends. Its sandbox's
    # init dies with it the same way (host_untouched checks no sandbox process is left).
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    d2 = start_daemon(state_dir=str(d.state_dir))
    d2.admin_key = d.admin_key
    g = d2.request("GET", f"/v1/executions/{ex_id}")
    assert g.status == 200, g
    assert g.json["status"] == "failed", g.json
    assert g.json["error"]["code"] == "SANDBOX_INTERNAL"
    assert g.json["error"]["message"] == "daemon restarted"
    assert g.json["finished_at"]
    work = d.state_dir / "work"
    assert not work.exists() or not os.listdir(work)
    # The restarted daemon works.
    assert run(d2, {"runtime": "bash", "code": "true"}).json["status"] == "succeeded"


# ---- tenants: isolation, quotas, usage --------------------------------------------------------


def tenant_key(d, name, plan=None):
    body = {"name": name}
    if plan is not None:
        body["plan"] = plan
    t = d.request("POST", "/v1/tenants", body)
    assert t.status == 201, t
    k = d.request("POST", f"/v1/tenants/{t.json['id']}/keys")
    assert k.status == 201, k
    return t.json["id"], k.json["key"]


def test_another_tenants_execution_is_404_everywhere(daemon):
    _, ka = tenant_key(daemon, "a")
    _, kb = tenant_key(daemon, "b")
    done = run(daemon, {"runtime": "bash", "code": "echo mine"}, key=ka)
    live = run(daemon, {"runtime": "bash", "code": "sleep 60", "async": True}, key=ka)
    assert done.status == 200 and live.status == 202, (done, live)
    wait_status(daemon, live.json["id"], ("running",), key=ka)
    for ex_id in (done.json["id"], live.json["id"]):
        for method, path in (("GET", f"/v1/executions/{ex_id}"),
                             ("GET", f"/v1/executions/{ex_id}?wait_ms=100"),
                             ("POST", f"/v1/executions/{ex_id}/cancel"),
                             ("DELETE", f"/v1/executions/{ex_id}"),
                             ("GET", f"/v1/executions/{ex_id}/events"),
                             ("GET", f"/v1/executions/{ex_id}/callbacks")):
            r = daemon.request(method, path, key=kb)
            assert r.status == 404 and r.error["code"] == "not_found", (method, path, r)
    assert daemon.request("GET", "/v1/executions", key=kb).json["data"] == []
    # Still there and still running for its owner.
    assert daemon.request("GET", f"/v1/executions/{live.json['id']}",
                          key=ka).json["status"] == "running"
    assert daemon.request("POST", f"/v1/executions/{live.json['id']}/cancel",
                          key=ka).status == 200


def test_concurrent_executions_over_the_plan_are_429(daemon):
    _, k = tenant_key(daemon, "one-at-a-time", plan={"max_concurrent_executions": 1})
    a = run(daemon, {"runtime": "bash", "code": "sleep 60", "async": True}, key=k)
    assert a.status == 202, a
    b = run(daemon, {"runtime": "bash", "code": "true"}, key=k)
    assert b.status == 429 and b.error["code"] == "quota_exceeded", b
    assert int(b.headers["retry-after"]) >= 1
    assert daemon.request("POST", f"/v1/executions/{a.json['id']}/cancel", key=k).status == 200
    assert run(daemon, {"runtime": "bash", "code": "true"}, key=k).status == 200


def test_monthly_execution_seconds_are_counted_and_enforced(daemon):
    tid, k = tenant_key(daemon, "frugal", plan={"monthly_execution_seconds": 1})
    r = run(daemon, {"runtime": "bash", "code": "sleep 1.2"}, key=k)
    assert r.status == 200 and r.json["status"] == "succeeded", r
    u = daemon.request("GET", f"/v1/usage?tenant_id={tid}")
    assert u.status == 200, u
    row = [x for x in u.json["data"] if x["tenant_id"] == tid]
    assert row and row[0]["executions"] == 1 and row[0]["execution_seconds"] >= 1.0, u.json
    over = run(daemon, {"runtime": "bash", "code": "true"}, key=k)
    assert over.status == 429 and over.error["code"] == "quota_exceeded", over
    assert int(over.headers["retry-after"]) >= 1
