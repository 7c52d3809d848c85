"""Graceful shutdown of `cordon serve` with executions in flight, the 503 of a draining daemon,
and plan quotas, through the executions API."""

import signal
import time

from api_daemon import daemon, start_daemon  # noqa: F401 (fixtures)

# Long enough that the daemon is still draining when the test sends its request on the old
# connection (the test does not time anything; it only needs the run to outlast two requests).
SLEEP_CMD = {"command": ["sh", "-c", "sleep 10; echo done"], "limits": {"timeout_ms": 60000}}


def wait_status(d, ex_id, want, key="admin", timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        r = d.request("GET", f"/v1/executions/{ex_id}", key=key)
        if r.status == 200 and r.json["status"] in want:
            return r.json
        assert time.monotonic() < deadline, r
        time.sleep(0.05)


def test_sigterm_lets_a_running_execution_finish(start_daemon):
    d = start_daemon("--limit", "shutdown_grace_ms=120s")
    r = d.request("POST", "/v1/executions", dict(SLEEP_CMD, **{"async": True}))
    assert r.status == 202, r
    ex = r.json["id"]
    wait_status(d, ex, {"running"})
    # A keep-alive connection opened before the signal: a new request on it while the daemon
    # drains is answered 503, retryable.
    early = d.connect()
    assert d.request("GET", "/v1/tenant", conn=early).status == 200
    d.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    while "shutting down" not in d.log_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = d.request("GET", "/v1/tenant", conn=early)
    early.close()
    assert r.status == 503 and r.error["code"] == "overloaded" and r.error["retryable"], r
    assert d.proc.wait(180) == 0
    # After a restart the execution is there, finished normally, not cancelled.
    d2 = start_daemon(state_dir=d.state_dir)
    e = d2.request("GET", f"/v1/executions/{ex}", key=d.admin_key).json
    assert e["status"] == "succeeded" and e["stdout"] == "done\n", e
    # The log stayed JSON lines throughout, executions and spawners included.
    lines = d.log_lines()
    assert lines[-1]["msg"] == "stopped", lines[-3:]


def test_sigterm_cancels_what_outlives_the_grace_period(start_daemon):
    d = start_daemon("--limit", "shutdown_grace_ms=200ms")
    r = d.request("POST", "/v1/executions",
                  {"command": ["sleep", "60"], "async": True, "limits": {"timeout_ms": 60000}})
    assert r.status == 202, r
    ex = r.json["id"]
    wait_status(d, ex, {"running"})
    assert d.stop(signal.SIGTERM) == 0
    d2 = start_daemon(state_dir=d.state_dir)
    e = d2.request("GET", f"/v1/executions/{ex}", key=d.admin_key).json
    assert e["status"] == "cancelled", e
    assert e["error"]["code"] == "SANDBOX_CANCELLED", e


def test_concurrency_quota_is_429(daemon):
    d = daemon
    t = d.request("POST", "/v1/tenants",
                  {"name": "one", "plan": {"max_concurrent_executions": 1}}).json
    key = d.request("POST", f"/v1/tenants/{t['id']}/keys").json["key"]
    r = d.request("POST", "/v1/executions", dict(SLEEP_CMD, **{"async": True}), key=key)
    assert r.status == 202, r
    r2 = d.request("POST", "/v1/executions", dict(SLEEP_CMD, **{"async": True}), key=key)
    assert r2.status == 429 and r2.error["code"] == "quota_exceeded", r2
    assert int(r2.headers["retry-after"]) >= 1
    # Another tenant is not held by this one's cap.
    assert d.request("POST", "/v1/executions", {"command": ["true"]}).status == 200
    wait_status(d, r.json["id"], {"succeeded", "failed"}, key=key)


def test_monthly_seconds_quota_is_429(daemon):
    d = daemon
    t = d.request("POST", "/v1/tenants",
                  {"name": "tiny", "plan": {"monthly_execution_seconds": 1}}).json
    key = d.request("POST", f"/v1/tenants/{t['id']}/keys").json["key"]
    r = d.request("POST", "/v1/executions", {"command": ["sleep", "1.2"]}, key=key)
    assert r.status == 200 and r.json["status"] == "succeeded", r
    r = d.request("POST", "/v1/executions", {"command": ["true"]}, key=key)
    assert r.status == 429 and r.error["code"] == "quota_exceeded", r
    assert int(r.headers["retry-after"]) >= 1
    m = d.request("GET", "/metrics", key=None).body.decode()
    assert "cordon_quota_exceeded_total 1" in m
    u = d.request("GET", f"/v1/usage?tenant_id={t['id']}").json["data"]
    assert u and u[0]["execution_seconds"] >= 1.0 and u[0]["executions"] == 1, u


def test_trust_level_above_the_plan_is_403(daemon):
    d = daemon
    t = d.request("POST", "/v1/tenants",
                  {"name": "low", "plan": {"max_trust_level": "low"}}).json
    key = d.request("POST", f"/v1/tenants/{t['id']}/keys").json["key"]
    r = d.request("POST", "/v1/executions", {"command": ["true"], "trust_level": "medium"},
                  key=key)
    assert r.status == 403 and r.error["field"] == "trust_level", r
    r = d.request("POST", "/v1/executions", {"command": ["true"]}, key=key)
    assert r.status == 200 and r.json["trust_level"] == "low", r


def test_another_tenants_execution_is_404(daemon):
    d = daemon
    keys = []
    for name in ("a", "b"):
        t = d.request("POST", "/v1/tenants", {"name": name}).json
        keys.append(d.request("POST", f"/v1/tenants/{t['id']}/keys").json["key"])
    r = d.request("POST", "/v1/executions", {"command": ["true"]}, key=keys[0])
    assert r.status == 200, r
    ex = r.json["id"]
    for method, path in [("GET", f"/v1/executions/{ex}"),
                         ("POST", f"/v1/executions/{ex}/cancel"),
                         ("DELETE", f"/v1/executions/{ex}")]:
        r = d.request(method, path, key=keys[1])
        assert r.status == 404 and r.error["code"] == "not_found", (method, r)
    assert d.request("GET", f"/v1/executions/{ex}", key=keys[0]).status == 200
