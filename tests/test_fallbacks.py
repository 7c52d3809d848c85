"""Kernel fallbacks: cordon on a kernel (or under a seccomp profile) without the newer system
calls it prefers. Each test hides calls with build/cordon-enosys (tests/enosys.c), which makes
them fail with ENOSYS for cordon and everything it starts, and checks that the run still holds
every limit, or that cordon refuses in one line naming what is missing and the kernel needed.
scripts/test also runs the whole suite under this wrapper (the kernel-fallback lane)."""

import io
import os
import tarfile

import pytest

from conftest import ENOSYS_TOOL, expect, expect_contained

# What the lane hides; pidfd_send_signal as well here (its fallback is kill()).
OLD_KERNEL = ("clone3,close_range,landlock_create_ruleset,landlock_add_rule,"
              "landlock_restrict_self,openat2,mount_setattr,pidfd_open,pidfd_send_signal")

LANDLOCK_VERSION = ("import ctypes, os\n"
                    "libc = ctypes.CDLL(None, use_errno=True)\n"
                    "libc.syscall.restype = ctypes.c_long\n"
                    "v = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))\n"
                    "print(v if v >= 0 else os.strerror(ctypes.get_errno()))\n")


@pytest.fixture
def enosys():
    if not os.access(ENOSYS_TOOL, os.X_OK):
        pytest.fail(f"{ENOSYS_TOOL} is not built: run `make`")

    def wrap(calls, errno=None):
        return [ENOSYS_TOOL, *([f"--errno={errno}"] if errno else []), calls, "--"]
    return wrap


def one_line_refusal(r):
    assert r.rc == 125, f"expected cordon to refuse (125)\n{r}"
    lines = r.err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cordon: "), f"not one line\n{r}"
    return lines[0]


def test_wrapper_reaches_the_sandboxed_program(cordon, enosys):
    # Positive control for the lane: the filter is inherited down to the program. Landlock's
    # version query is not denied by cordon's own filter, so only the wrapper can fail it.
    # --cpu-time: python with ctypes takes more than the default 5 s under emulation (VM lane).
    cpu = ("--cpu-time", "60s", "-t", "60s")
    if cordon.runtime("python", *cpu, code=LANDLOCK_VERSION).stdout.strip() == \
            "Function not implemented":
        pytest.skip("landlock_create_ruleset fails with ENOSYS here even without the wrapper")
    r = cordon.runtime("python", *cpu, code=LANDLOCK_VERSION, wrap=enosys("landlock_create_ruleset"))
    expect(r, None)
    assert r.stdout.strip() == "Function not implemented", r


def test_old_kernel_run_holds_its_limits(cordon, enosys):
    w = enosys(OLD_KERNEL)
    r = cordon.helper("echo", "hi", wrap=w)
    expect(r, None)
    assert r.stdout == "hi\n", r
    # init is killed without pidfd_send_signal (kill() on our own unreaped child).
    r = cordon.run("-t", "500ms", cmd=["sleep", "30"], wrap=w)
    expect(r, "SANDBOX_TIMEOUT")
    r = cordon.helper("forkbomb", opts=["--pids", "16", "-t", "20s"], wrap=w)
    expect(r, "SANDBOX_PROCESS_LIMIT")
    # Without clone3 (so without CLONE_INTO_CGROUP on v2) init still ends up in its cgroup.
    r = cordon.helper("memhog", "1G", opts=["-m", "64M", "-t", "60s", "--cpu-time", "30s"],
                      wrap=w)
    expect(r, "SANDBOX_MEMORY_LIMIT")


def test_no_mount_setattr_binds_stay_restricted(cordon, enosys):
    # The detached mounts cannot be made read-only in the supervisor: the child remounts them.
    d = cordon.mkdir("rw", 0o777)
    w = enosys("mount_setattr")
    r = cordon.helper("open", "/helper", "w", wrap=w)
    expect_contained(r)
    r = cordon.helper("open", "/out/x", "w", opts=["--rw", f"{d}:/out"], wrap=w)
    expect(r, None)
    assert (d / "x").exists(), "positive control: the --rw bind was not writable"


@pytest.mark.parametrize("errno", ["ENOSYS", "EPERM"])
def test_no_landlock_run_goes_on(cordon, enosys, errno):
    # A kernel without Landlock (ENOSYS) or a container profile denying it (EPERM): the layer
    # is skipped, the other layers still hold (the host image stays read-only).
    w = enosys("landlock_create_ruleset,landlock_add_rule,landlock_restrict_self", errno)
    expect_contained(cordon.helper("open", "/etc/cordon-landlock-test", "w", wrap=w))
    expect(cordon.helper("open", "/tmp/x", "w", wrap=w), None)


@pytest.mark.parametrize("call", ["open_tree", "move_mount"])
def test_no_detached_mounts_refuses_binds_in_one_line(cordon, enosys, call):
    # Binds and named images need open_tree + move_mount (linux >= 5.2): no fallback, so a
    # clear refusal naming the call and the kernel.
    r = cordon.cmd("run", "--state-dir", cordon.state_dir, "--ro", f"{cordon.helper_path}:/helper",
                   "--", "/helper", "echo", "hi", wrap=enosys(call))
    line = one_line_refusal(r)
    assert call in line and "linux >= 5.2" in line, line
    # Without a bind the same kernel runs fine.
    expect(cordon.run(cmd=["true"], wrap=enosys(call)), None)


def make_image(cordon, name, python_link, real=None):
    """Import an image whose /usr/bin/python3 is a symlink to python_link (and, if `real`,
    with an executable file at that path inside the image)."""
    tb = cordon.tmp / f"{name}.tar"
    with tarfile.open(tb, "w") as tar:
        for d in ("tmp", "proc", "dev", "etc", "usr", "usr/bin", "opt"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(ti)
        ti = tarfile.TarInfo("usr/bin/python3")
        ti.type, ti.linkname = tarfile.SYMTYPE, python_link
        tar.addfile(ti)
        if real:
            data = open(cordon.helper_path, "rb").read()
            ti = tarfile.TarInfo(real.lstrip("/"))
            ti.size, ti.mode = len(data), 0o755
            tar.addfile(ti, io.BytesIO(data))
    r = cordon.cmd("image", "import", name, tb)
    assert r.rc == 0, r


@pytest.mark.parametrize("hide", [None, "openat2"])
def test_runtime_lookup_resolves_inside_the_image(cordon, enosys, hide):
    # An absolute symlink in an image points into the image, never to the host: the host's
    # /usr/bin/env exists, the image's does not, so python is missing there. Without openat2
    # (RESOLVE_IN_ROOT) the lookup runs in a child chrooted into the image instead.
    assert os.access("/usr/bin/env", os.X_OK)
    w = enosys(hide) if hide else ()
    make_image(cordon, "nopy", "/usr/bin/env")
    r = cordon.cmd("run", "--state-dir", cordon.state_dir, "--image", "nopy", "--runtime",
                   "python", "-c", "print(1)", wrap=w)
    line = one_line_refusal(r)
    assert "runtime python needs python3 in image" in line, line
    # A symlink to a file that is in the image counts as present (the run goes ahead).
    make_image(cordon, "somepy", "/opt/py", real="/opt/py")
    r = cordon.cmd("run", "--state-dir", cordon.state_dir, "--json", "--image", "somepy",
                   "--runtime", "python", "-c", "print(1)", wrap=w)
    assert r.rc == 0, f"a runtime present in the image was refused\n{r}"
