"""Auth, tenants and keys of `cordon serve`, from the caller's side (and the attacker's)."""

import hashlib
import os
import re
import stat
import subprocess

from api_daemon import CORDON, KEY_RE, daemon, free_port, start_daemon  # noqa: F401 (fixtures)


def new_tenant(d, name="acme", plan=None):
    body = {"name": name}
    if plan is not None:
        body["plan"] = plan
    r = d.request("POST", "/v1/tenants", body)
    assert r.status == 201, r
    return r.json


def new_key(d, tenant_id):
    r = d.request("POST", f"/v1/tenants/{tenant_id}/keys")
    assert r.status == 201, r
    return r.json


def test_first_start_prints_the_admin_key_once_and_stores_only_its_hash(start_daemon):
    d = start_daemon()
    key = d.admin_key
    assert key and KEY_RE.match(key), d.stdout_text()
    path = d.state_dir / "admin.key"
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert path.read_text().strip() == key
    assert d.request("GET", "/v1/usage").status == 200
    d.stop()
    # Nothing in the state dir but admin.key holds the key; the database holds its hash.
    digest = hashlib.sha256(key.encode()).hexdigest().encode()
    found_hash = False
    for f in d.state_dir.iterdir():
        if f.name == "admin.key" or not f.is_file():
            continue
        data = f.read_bytes()
        assert key.encode() not in data, f"the admin key is in {f} in clear"
        found_hash |= digest in data
    assert found_hash, "the key's sha256 is not in the store"

    # A second start with the same state dir prints no key and the old one still works.
    d2 = start_daemon(state_dir=d.state_dir)
    assert not re.search(r"ck_", d2.stdout_text()), d2.stdout_text()
    assert d2.request("GET", "/v1/usage", key=key).status == 200


def test_no_key_bad_key_and_unknown_key_are_401(daemon):
    d = daemon
    for key, headers in [(None, {}),
                         (None, {"Authorization": "Basic YWRtaW46YWRtaW4="}),
                         ("not-a-key", {}),
                         ("ck_" + "a" * 32, {}),  # well-formed, never issued
                         (d.admin_key + "a", {}),
                         (d.admin_key.upper(), {})]:
        r = d.request("GET", "/v1/usage", key=key, headers=headers)
        assert r.status == 401, (key, headers, r)
        assert r.error["code"] == "unauthorized"
        assert r.headers.get("www-authenticate", "").startswith("Bearer")
        assert re.match(r"^req_[0-9a-f]{16}$", r.headers["x-request-id"])


def test_key_headers(daemon):
    d = daemon
    k = d.admin_key
    for headers in [{"Authorization": f"Bearer {k}"}, {"Authorization": f"bearer {k}"},
                    {"X-API-Key": k}, {"X-API-KEY": k}, {"x-api-key": k}]:
        r = d.request("GET", "/v1/usage", key=None, headers=headers)
        assert r.status == 200, (headers, r)


def test_tenant_key_cannot_use_admin_endpoints(daemon):
    d = daemon
    t = new_tenant(d)
    k = new_key(d, t["id"])
    assert KEY_RE.match(k["key"]) and k["tenant_id"] == t["id"] and k["admin"] is False
    for method, path, body in [("POST", "/v1/tenants", {"name": "evil"}),
                               ("POST", f"/v1/tenants/{t['id']}/keys", None),
                               ("GET", f"/v1/tenants/{t['id']}", None),
                               ("DELETE", f"/v1/keys/{k['id']}", None),
                               ("GET", "/v1/usage", None)]:
        r = d.request(method, path, body, key=k["key"])
        assert r.status == 403, (method, path, r)
        assert r.error["code"] == "forbidden"
    # Its own view works and says who it is.
    r = d.request("GET", "/v1/tenant", key=k["key"])
    assert r.status == 200, r
    assert r.json["id"] == t["id"] and r.json["admin"] is False
    # The tenant's key created no tenant.
    r = d.request("GET", "/v1/usage")
    assert r.status == 200


def test_tenant_plan_is_validated_and_returned(daemon):
    d = daemon
    plan = {"max_trust_level": "untrusted", "max_concurrent_executions": 2,
            "monthly_execution_seconds": 60, "limits": {"memory_mb": 64},
            "rate_limit": {"per_second": 3, "burst": 4}}
    t = new_tenant(d, plan=plan)
    assert re.match(r"^tn_[a-z2-7]{26}$", t["id"]), t
    p = t["plan"]
    assert p["max_trust_level"] == "untrusted"
    assert p["default_trust_level"] == "untrusted"  # follows a lowered max
    assert p["limits"]["memory_mb"] == 64
    assert p["max_concurrent_executions"] == 2 and p["monthly_execution_seconds"] == 60
    assert p["rate_limit"] == {"per_second": 3, "burst": 4}
    r = d.request("GET", f"/v1/tenants/{t['id']}")
    assert r.status == 200 and r.json == t
    for bad, field in [({"name": "x", "plan": {"limits": {"memroy_mb": 1}}},
                        "plan.limits.memroy_mb"),
                       ({"name": "x", "plan": {"max_trust_level": "root"}},
                        "plan.max_trust_level"),
                       ({"name": "x", "plan": {"default_trust_level": "high",
                                               "max_trust_level": "low"}},
                        "plan.default_trust_level"),
                       ({"name": "x", "plan": {"limits": {"memory_mb": 0}}},
                        "plan.limits.memory_mb"),
                       ({"name": "x", "colour": "red"}, "colour"),
                       ({"name": ""}, "name"),
                       ({"name": 5}, "name"),
                       ({}, "name")]:
        r = d.request("POST", "/v1/tenants", bad)
        assert r.status == 422, (bad, r)
        assert r.error["code"] == "validation_failed" and r.error["field"] == field, (bad, r)


def test_unknown_tenant_is_404(daemon):
    d = daemon
    for method, path in [("POST", "/v1/tenants/tn_nope/keys"), ("GET", "/v1/tenants/tn_nope"),
                         ("DELETE", "/v1/keys/key_nope")]:
        r = d.request(method, path)
        assert r.status == 404, (method, path, r)
        assert r.error["code"] == "not_found"


def test_revoked_key_stops_working(daemon):
    d = daemon
    t = new_tenant(d)
    k = new_key(d, t["id"])
    assert d.request("GET", "/v1/tenant", key=k["key"]).status == 200
    r = d.request("DELETE", f"/v1/keys/{k['id']}")
    assert r.status == 204, r
    r = d.request("GET", "/v1/tenant", key=k["key"])
    assert r.status == 401, r
    assert d.request("DELETE", f"/v1/keys/{k['id']}").status == 404
    # Another key of the same tenant is untouched.
    k2 = new_key(d, t["id"])
    assert d.request("GET", "/v1/tenant", key=k2["key"]).status == 200


def test_the_last_admin_key_cannot_be_revoked(daemon):
    d = daemon
    r = d.request("GET", "/v1/tenant")
    assert r.status == 200 and r.json["admin"] is True and r.json["id"] == "tn_admin"
    keys = [line for line in d.log_lines() if line.get("msg") == "admin key created"]
    assert len(keys) == 1
    r = d.request("DELETE", f"/v1/keys/{keys[0]['key_id']}")
    assert r.status == 409, r
    assert d.request("GET", "/v1/usage").status == 200


def test_no_auth_is_refused_on_a_non_loopback_listener(workbase):
    # Refused while parsing options: nothing is ever bound.
    p = subprocess.run([CORDON, "serve", "--listen", f"0.0.0.0:{free_port()}", "--no-auth",
                        "--state-dir", str(workbase / "noauth-state")],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 125, p
    assert b"--no-auth is refused" in p.stderr, p.stderr


def test_no_auth_on_loopback_needs_no_key(start_daemon):
    d = start_daemon(auth=False)
    assert not (d.state_dir / "admin.key").exists()
    r = d.request("GET", "/v1/tenant", key=None)
    assert r.status == 200 and r.json["id"] == "default", r
    # The built-in tenant is a row of the store, so its executions' records can refer to it.
    r = d.request("GET", "/v1/tenants", key=None)
    assert [t["id"] for t in r.json["data"]] == ["default"], r


def test_no_auth_refuses_a_host_that_is_not_loopback(start_daemon):
    # DNS rebinding: a web page's script reaches 127.0.0.1 through its own name; the Host
    # header still carries that name.
    d = start_daemon(auth=False)
    for host in ["evil.example", "evil.example:80", "127.0.0.1.evil.example", "10.0.0.1",
                 "localhost.", ""]:
        r = d.request("GET", "/v1/tenant", key=None, headers={"Host": host})
        assert r.status == 403 and r.error["code"] == "forbidden", (host, r)
    for host in ["127.0.0.1", f"127.0.0.1:{d.port}", f"localhost:{d.port}", "LOCALHOST",
                 "[::1]", f"[::1]:{d.port}", "127.1.2.3"]:
        r = d.request("GET", "/v1/tenant", key=None, headers={"Host": host})
        assert r.status == 200, (host, r)


def test_usage_lists_the_month(daemon):
    d = daemon
    r = d.request("GET", "/v1/usage?period=2026-01")
    assert r.status == 200 and r.json == {"period": "2026-01", "data": []}, r
    for bad in ["2026-13", "2026-1", "26-01-01", "x"]:
        r = d.request("GET", f"/v1/usage?period={bad}")
        assert r.status == 422 and r.error["field"] == "query.period", (bad, r)


def test_a_second_daemon_on_the_same_state_dir_is_refused(daemon):
    p = subprocess.run([CORDON, "serve", "--listen", f"127.0.0.1:{free_port()}",
                        "--state-dir", str(daemon.state_dir)],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 125, p
    assert b"another cordon serve is using the state directory" in p.stderr, p.stderr
    assert daemon.request("GET", "/v1/usage").status == 200


def test_the_admin_key_can_be_rotated(daemon):
    d = daemon
    old = [l for l in d.log_lines() if l.get("msg") == "admin key created"][0]["key_id"]
    r = d.request("POST", "/v1/tenants/tn_admin/keys", {"admin": True})
    assert r.status == 201 and r.json["admin"] is True, r
    new = r.json
    assert d.request("DELETE", f"/v1/keys/{old}", key=new["key"]).status == 204
    assert d.request("GET", "/v1/usage", key=d.admin_key).status == 401
    assert d.request("GET", "/v1/usage", key=new["key"]).status == 200
    # Now the new one is the last admin key.
    assert d.request("DELETE", f"/v1/keys/{new['id']}", key=new["key"]).status == 409
    # An admin key for a customer tenant is refused: it would administer everyone.
    t = d.request("POST", "/v1/tenants", {"name": "cust"}, key=new["key"]).json
    r = d.request("POST", f"/v1/tenants/{t['id']}/keys", {"admin": True}, key=new["key"])
    assert r.status == 422 and r.error["field"] == "admin", r


def test_plan_changes_apply_at_once(daemon):
    d = daemon
    t = new_tenant(d, plan={"rate_limit": {"per_second": 1, "burst": 1}})
    k = new_key(d, t["id"])["key"]
    conn = d.connect()
    statuses = [d.request("GET", "/v1/tenant", key=k, conn=conn).status for _ in range(10)]
    assert 429 in statuses, statuses
    r = d.request("PATCH", f"/v1/tenants/{t['id']}",
                  {"plan": {"rate_limit": {"per_second": 0, "burst": 1},
                            "max_trust_level": "high"}})
    assert r.status == 200, r
    assert r.json["plan"]["max_trust_level"] == "high"
    assert r.json["plan"]["rate_limit"]["per_second"] == 0
    statuses = [d.request("GET", "/v1/tenant", key=k, conn=conn).status for _ in range(10)]
    conn.close()
    assert statuses == [200] * 10, statuses
    r = d.request("PATCH", f"/v1/tenants/{t['id']}", {"plan": {"limits": {"cpu_ms": 1}}})
    assert r.status == 422 and r.error["field"] == "plan.limits.cpu_ms", r
    assert d.request("PATCH", "/v1/tenants/tn_nope", {"plan": {}}).status == 404
    listed = d.request("GET", "/v1/tenants").json["data"]
    assert {x["id"] for x in listed} >= {"tn_admin", t["id"]}
    assert [x for x in listed if x["id"] == t["id"]][0]["plan"]["max_trust_level"] == "high"
