"""daiv-sandbox compatibility: POST /api/v1/run/commands/ as daiv's README documents it, and
hostile archives from the attacker's side (nothing may land outside the workspace)."""

import base64
import io
import os
import tarfile
import uuid

import pytest

from api_daemon import daemon, start_daemon  # noqa: F401 (fixtures)

RUN_ID = "550e8400-e29b-41d4-a716-446655440000"


def targz(entries):
    """entries: (TarInfo kwargs, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            ti = tarfile.TarInfo(info.pop("name"))
            for k, v in info.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def repo_archive():
    return targz([
        ({"name": "django-webhooks-master", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
        ({"name": "django-webhooks-master/README.md", "mode": 0o644}, b"# webhooks\n"),
        ({"name": "django-webhooks-master/app.py", "mode": 0o644}, b"x = 1\n"),
    ])


def daiv(d, archive, commands, base_image="python:3.12", key="admin", **extra):
    body = {"run_id": RUN_ID, "base_image": base_image,
            "archive": base64.b64encode(archive).decode() if archive is not None else None,
            "commands": commands, **extra}
    k = d.admin_key if key == "admin" else key
    headers = {"X-API-KEY": k} if k else {}
    return d.request("POST", "/api/v1/run/commands/", body=body, key=None, headers=headers)


def members(b64):
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(b64)), mode="r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            data = tar.extractfile(m).read() if m.isfile() else None
            out[m.name] = (m, data)
        return out


def test_readme_example_ls(daemon):
    r = daiv(daemon, repo_archive(), ["ls -la"])
    assert r.status == 200, r
    assert list(r.json) == ["results", "archive"] or set(r.json) == {"results", "archive"}
    res = r.json["results"]
    assert len(res) == 1 and res[0]["command"] == "ls -la"
    assert res[0]["exit_code"] == 0, res
    assert "django-webhooks-master" in res[0]["output"]
    assert r.json["archive"] is None, "ls changes nothing"


def test_changed_files_come_back_and_only_them(daemon):
    cmds = ["cd django-webhooks-master && echo 'x = 2' > app.py",
            "echo new > created.txt",
            "mkdir -p deep/er && printf 'z' > deep/er/f",
            "echo to-stderr >&2; exit 7"]
    r = daiv(daemon, repo_archive(), cmds)
    assert r.status == 200, r
    res = r.json["results"]
    assert [x["exit_code"] for x in res] == [0, 0, 0, 7], res
    assert "to-stderr" in res[3]["output"], "stderr is part of the output"
    got = members(r.json["archive"])
    assert set(got) == {"django-webhooks-master/app.py", "created.txt", "deep/er/f"}, got
    assert got["django-webhooks-master/app.py"][1] == b"x = 2\n"
    assert got["created.txt"][1] == b"new\n"


def test_commands_share_the_workspace_in_order(daemon):
    r = daiv(daemon, repo_archive(), ["echo 1 > n", "cat n; echo 2 >> n", "cat n"])
    assert r.status == 200, r
    assert [x["output"] for x in r.json["results"]] == ["", "1\n", "1\n2\n"]


def test_a_symlink_made_by_a_command_is_returned_as_a_link_not_followed(daemon):
    r = daiv(daemon, repo_archive(), ["ln -s /etc/shadow leak; ln -s /etc/passwd leak2"])
    assert r.status == 200, r
    got = members(r.json["archive"])
    for name in ("leak", "leak2"):
        m, data = got[name]
        assert m.issym() and data is None, (name, m.type)
    assert got["leak"][0].linkname == "/etc/shadow"


def test_unknown_base_image_is_422_listing_known_ones(daemon):
    r = daiv(daemon, repo_archive(), ["true"], base_image="no-such-image:1")
    assert r.status == 422, r
    assert r.error["field"] == "base_image"
    assert "host" in r.error["message"]


def test_bad_base64_and_shape_errors(daemon):
    body = {"run_id": RUN_ID, "base_image": "python:3.12", "archive": "!!notbase64",
            "commands": ["true"]}
    r = daemon.request("POST", "/api/v1/run/commands/", body=body)
    assert r.status == 422 and r.error["field"] == "archive", r
    r = daemon.request("POST", "/api/v1/run/commands/",
                       body={**body, "archive": None, "commands": []})
    assert r.status == 422 and r.error["field"] == "commands", r
    r = daemon.request("POST", "/api/v1/run/commands/", body={**body, "extra": 1})
    assert r.status == 422, r


def test_requires_a_key(daemon):
    r = daiv(daemon, repo_archive(), ["true"], key="ck_" + "a" * 32)
    assert r.status == 401, r


@pytest.mark.parametrize("name,entries", [
    ("dotdot", [({"name": "../escaped-{tag}"}, b"pwned")]),
    ("dotdot-deep", [({"name": "a/../../escaped-{tag}"}, b"pwned")]),
    ("absolute", [({"name": "{outside}/escaped-{tag}"}, b"pwned")]),
    ("symlink-then-write", [
        ({"name": "link", "type": tarfile.SYMTYPE, "linkname": "{outside}"}, None),
        ({"name": "link/escaped-{tag}"}, b"pwned")]),
    ("hardlink-to-host", [
        ({"name": "hl", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)]),
    ("hardlink-dotdot", [
        ({"name": "hl", "type": tarfile.LNKTYPE, "linkname": "../../etc/passwd"}, None)]),
])
def test_hostile_archives_are_refused(daemon, workbase, name, entries):
    outside = os.path.join(workbase, "daiv-outside-" + uuid.uuid4().hex[:8])
    os.makedirs(outside)
    tag = uuid.uuid4().hex[:8]
    fixed = []
    for info, data in entries:
        info = {k: (v.format(outside=outside, tag=tag) if isinstance(v, str) else v)
                for k, v in info.items()}
        fixed.append((info, data))
    r = daiv(daemon, targz(fixed), ["ls -la"])
    assert r.status == 422, r
    assert r.error["field"] == "archive" and "refused" in r.error["message"], r
    # Nothing escaped: not next to the state dir, not in the outside dir, not in /.
    for where in (outside, os.path.dirname(str(daemon.state_dir)), "/", "/tmp"):
        assert not os.path.exists(os.path.join(where, f"escaped-{tag}")), where
    assert open("/etc/passwd", "rb").read(4) != b"pwne"


def test_device_nodes_are_neutralised(daemon):
    arch = targz([
        ({"name": "dev-null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None),
        ({"name": "disk", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None),
        ({"name": "fifo", "type": tarfile.FIFOTYPE}, None),
        ({"name": "ok.txt"}, b"fine"),
    ])
    r = daiv(daemon, arch, ["ls -la; cat ok.txt"])
    assert r.status == 200, r
    out = r.json["results"][0]["output"]
    assert "fine" in out
    for n in ("dev-null", "disk", "fifo"):
        assert n not in out, out


def test_setuid_bits_are_dropped(daemon):
    arch = targz([({"name": "suid", "mode": 0o4755}, b"#!/bin/sh\nid -u\n")])
    r = daiv(daemon, arch, ["stat -c %a suid"])
    assert r.status == 200, r
    assert r.json["results"][0]["output"].strip() in ("755", "0755"), r.json
