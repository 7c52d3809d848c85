"""Root filesystems: what the default `host` image shows (and hides), and `cordon image import`
of a hostile tarball (SECURITY.md: an archive must never write outside its destination)."""

import hashlib
import io
import os
import stat
import tarfile
import uuid

import pytest

from conftest import expect

# ---- the host image -------------------------------------------------------------------------


def test_python_present(cordon):
    expect(cordon.helper("stat", "/usr/bin/python3"), None)


def test_passwd_is_generated(cordon):
    r = cordon.helper("cat", "/etc/passwd")
    expect(r, None)
    names = {line.split(":")[0] for line in r.stdout.splitlines() if line}
    host = {line.split(":")[0] for line in open("/etc/passwd") if line.strip()}
    leaked = (names & host) - {"root", "nobody"}
    assert not leaked, f"host accounts visible in the sandbox's /etc/passwd: {leaked}\n{r}"
    assert "_apt" not in r.stdout, r


@pytest.mark.parametrize("path", ["/home", "/root", "/etc/shadow", "/etc/machine-id",
                                  "/etc/ssh", "/var/log", "/boot"])
def test_host_paths_absent(cordon, path):
    r = cordon.helper("stat", path)
    assert not r.helper_ok and "ENOENT" in r.stdout, f"{path} exists in the sandbox\n{r}"


def test_sys_absent_or_empty(cordon):
    r = cordon.helper("ls", "/sys")
    if r.stdout.startswith("denied"):
        assert "ENOENT" in r.stdout, r
    else:
        expect(r, None)
        assert r.stdout == "", f"/sys shows host entries\n{r}"


DEV_REQUIRED = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                "urandom": (1, 9), "tty": (5, 0)}
DEV_ALLOWED = set(DEV_REQUIRED) | {"fd", "stdin", "stdout", "stderr", "shm", "pts", "ptmx"}


def test_dev_is_minimal(cordon):
    r = cordon.helper("ls", "/dev")
    expect(r, None)
    entries = set(r.stdout.split())
    assert entries <= DEV_ALLOWED, f"unexpected entries in /dev: {entries - DEV_ALLOWED}"
    assert set(DEV_REQUIRED) <= entries, f"missing from /dev: {set(DEV_REQUIRED) - entries}"
    for name, (major, minor) in DEV_REQUIRED.items():
        r = cordon.helper("stat", f"/dev/{name}")
        expect(r, None)
        assert "type=chr" in r.stdout and f"rdev={major}:{minor}" in r.stdout, r


def test_dev_null_works(cordon):
    expect(cordon.helper("open", "/dev/null", "w"), None)
    r = cordon.helper("read", "/dev/zero")
    expect(r, None)


def test_hostname_is_sandbox(cordon):
    r = cordon.helper("hostname")
    expect(r, None)
    assert r.stdout == "sandbox\n", r
    r = cordon.helper("cat", "/proc/sys/kernel/hostname")
    assert r.stdout == "sandbox\n", r


def test_every_mount_nosuid(cordon):
    r = cordon.helper("cat", "/proc/self/mountinfo")
    expect(r, None)
    bad = []
    for line in r.stdout.splitlines():
        f = line.split()
        if "nosuid" not in f[5].split(","):
            bad.append(f"{f[4]} ({f[5]})")
    assert not bad, "mounts without nosuid: " + ", ".join(bad)


def test_root_is_read_only(cordon):
    r = cordon.helper("cat", "/proc/self/mountinfo")
    expect(r, None)
    for line in r.stdout.splitlines():
        f = line.split()
        if f[4] in ("/", "/usr", "/etc", "/bin", "/lib"):
            assert "ro" in f[5].split(","), f"{f[4]} is mounted writable: {line}"


# ---- image import ---------------------------------------------------------------------------


def add_file(tar, name, data=b"x\n", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    tar.addfile(ti, io.BytesIO(data))


def add_special(tar, name, type_, linkname="", major=0, minor=0, mode=0o777):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.linkname = linkname
    ti.devmajor, ti.devminor = major, minor
    ti.mode = mode
    tar.addfile(ti)


def add_dir(tar, name, mode=0o755):
    add_special(tar, name, tarfile.DIRTYPE, mode=mode)


def test_import_and_run_an_image(cordon, helper):
    tb = cordon.tmp / "rootfs.tar.gz"
    with tarfile.open(tb, "w:gz") as tar:
        for d in ("tmp", "proc", "dev", "etc", "bin"):
            add_dir(tar, d)
        add_file(tar, "etc/motd", b"imported image\n")
        with open(helper, "rb") as f:
            add_file(tar, "bin/helper", f.read(), 0o755)
    r = cordon.cmd("image", "import", "testimg", tb)
    assert r.rc == 0, r
    r = cordon.cmd("image", "ls")
    assert r.rc == 0 and b"testimg" in r.out, r
    r = cordon.run("--image", "testimg", cmd=["/bin/helper", "cat", "/etc/motd"])
    expect(r, None)
    assert r.stdout == "imported image\n", r
    r = cordon.run("--image", "testimg", cmd=["/bin/helper", "stat", "/usr/bin/python3"])
    assert not r.helper_ok, f"the imported image shows the host's /usr\n{r}"
    r = cordon.cmd("image", "rm", "testimg")
    assert r.rc == 0, r
    r = cordon.cmd("image", "ls")
    assert b"testimg" not in r.out, r


def file_ids(root):
    """(dev, ino) of every file under root, and whether any is a device node."""
    ids, devices = set(), []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            ids.add((st.st_dev, st.st_ino))
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                devices.append(p)
    return ids, devices


def test_import_hostile_tarball(cordon):
    tag = uuid.uuid4().hex[:8]
    up = "../" * 16
    outside = cordon.tmp  # the parent of the state dir: nothing may appear here
    symdir = cordon.mkdir(f"symlink-target-{tag}", 0o777)  # a host dir a symlink points to
    targets = [
        f"/tmp/cordon-tar-dotdot-{tag}",
        f"/tmp/cordon-tar-abs-{tag}",
        f"/tmp/cordon-tar-dir-{tag}",
        f"/etc/cordon-tar-etc-{tag}",
        str(outside / f"escape-{tag}"),
        str(symdir / "via-abs-link"),
        str(symdir / "via-rel-link"),
        str(symdir / "via-dir-link"),
    ]
    sensitive = ["/etc/shadow", "/etc/passwd"]
    before = {p: (os.stat(p).st_nlink, hashlib.sha256(open(p, "rb").read()).hexdigest())
              for p in sensitive}
    outside_before = set(os.listdir(outside))

    tb = cordon.tmp / "hostile.tar"
    outside_before.add(tb.name)  # the tarball itself is the test's, not the import's
    with tarfile.open(tb, "w", format=tarfile.GNU_FORMAT) as tar:
        add_dir(tar, "tmp")
        add_file(tar, "benign.txt", b"benign\n")
        # ../ and absolute names
        add_file(tar, f"{up}tmp/cordon-tar-dotdot-{tag}")
        add_file(tar, f"/tmp/cordon-tar-abs-{tag}")
        add_dir(tar, f"{up}tmp/cordon-tar-dir-{tag}")
        add_file(tar, f"sub/../../escape-{tag}")
        add_file(tar, f"{up}{str(outside).lstrip('/')}/escape-{tag}")
        # a symlink pointing outside, then files written through it
        add_special(tar, "abslink", tarfile.SYMTYPE, linkname=str(symdir))
        add_file(tar, "abslink/via-abs-link")
        add_special(tar, "rellink", tarfile.SYMTYPE, linkname=f"{up}{str(symdir).lstrip('/')}")
        add_file(tar, "rellink/via-rel-link")
        add_special(tar, "etclink", tarfile.SYMTYPE, linkname="/etc")
        add_file(tar, f"etclink/cordon-tar-etc-{tag}")
        # a directory symlink, then a directory entry and a file under it
        add_special(tar, "dirlink", tarfile.SYMTYPE, linkname=str(symdir))
        add_dir(tar, "dirlink/")
        add_file(tar, "dirlink/via-dir-link")
        # hard links to host files
        add_special(tar, "shadow-hardlink", tarfile.LNKTYPE, linkname="/etc/shadow")
        add_special(tar, "passwd-hardlink", tarfile.LNKTYPE, linkname=f"{up}etc/passwd")
        # device nodes
        add_special(tar, "dev/mem-copy", tarfile.CHRTYPE, major=1, minor=1, mode=0o666)
        add_special(tar, "dev/sda-copy", tarfile.BLKTYPE, major=8, minor=0, mode=0o666)
        add_file(tar, "after-all-that.txt", b"still here\n")

    names = [m.name for m in tarfile.open(tb).getmembers()]
    assert f"/tmp/cordon-tar-abs-{tag}" in names, "the archive lost its absolute name"

    try:
        r = cordon.cmd("image", "import", "hostile", tb)
        if r.rc != 0:
            msg = r.err.decode(errors="replace")
            assert msg.startswith("cordon: ") and msg.count("\n") == 1, \
                f"a refused import must say why in one line\n{r}"

        escaped = [t for t in targets if os.path.lexists(t)]
        assert not escaped, f"the import wrote outside the state dir: {escaped}\n{r}"
        assert set(os.listdir(outside)) == outside_before, \
            f"new entries next to the state dir: {set(os.listdir(outside)) - outside_before}"
        assert os.listdir(symdir) == [], f"wrote through a symlink: {os.listdir(symdir)}"
        for p, (nlink, h) in before.items():
            st = os.stat(p)
            assert st.st_nlink == nlink, f"{p} got a new hard link (nlink {nlink} -> {st.st_nlink})"
            assert hashlib.sha256(open(p, "rb").read()).hexdigest() == h, f"{p} changed"
        ids, devices = file_ids(cordon.state_dir)
        assert not devices, f"device nodes created by the import: {devices}"
        for p in sensitive:
            st = os.stat(p)
            assert (st.st_dev, st.st_ino) not in ids, f"{p} is hard-linked into the state dir"
    finally:
        for t in targets:
            if os.path.isdir(t) and not os.path.islink(t):
                os.rmdir(t)
            elif os.path.lexists(t):
                os.unlink(t)
