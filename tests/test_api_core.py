"""The HTTP core of `cordon serve`: health, routing, request ids, transport errors."""

import re

from api_daemon import start_daemon  # noqa: F401 (fixture)

REQ_ID = re.compile(r"^req_[0-9a-f]{16}$")


def test_healthz_answers_with_a_request_id(start_daemon):
    d = start_daemon(auth=False)
    r = d.request("GET", "/healthz", key=None)
    assert r.status == 200, r
    assert r.json == {"status": "ok"}
    assert REQ_ID.match(r.headers["x-request-id"]), r.headers
    assert r.headers["cache-control"] == "no-store"


def test_request_ids_differ_and_are_logged(start_daemon):
    d = start_daemon(auth=False)
    ids = {d.request("GET", "/healthz", key=None).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    d.stop()
    logged = {line.get("request_id") for line in d.log_lines() if line.get("msg") == "request"}
    assert ids <= logged


def test_unknown_path_is_404_with_error_body(start_daemon):
    d = start_daemon(auth=False)
    r = d.request("GET", "/v1/nothing-here", key=None)
    assert r.status == 404
    assert r.error == {"code": "not_found", "message": "no such endpoint", "field": None,
                       "retryable": False}
    assert REQ_ID.match(r.headers["x-request-id"])


def test_wrong_method_is_405(start_daemon):
    d = start_daemon(auth=False)
    r = d.request("POST", "/healthz", key=None, body={})
    assert r.status == 405, r
    assert r.error["code"] == "method_not_allowed"


def test_log_is_json_lines(start_daemon):
    d = start_daemon(auth=False)
    d.request("GET", "/healthz", key=None)
    d.stop()
    lines = d.log_lines()  # every line parses as JSON, or this raises
    assert any(l["msg"] == "listening" and l["port"] == d.port for l in lines)
    for l in lines:
        assert {"ts", "level", "msg"} <= set(l), l
