"""Every limit of CLI.md gives its own verdict (API.md error codes). Assert verdicts, never
timings: timings belong to bench/. Each test sets the other time limits generously so only the
limit under test can fire, even on a loaded 2-core CI machine."""

import json
import re

import pytest

from conftest import expect

ROOMY = ["-t", "60s", "--cpu-time", "30s"]


# ---- memory -------------------------------------------------------------------------------


def test_memory_bomb(cordon):
    r = cordon.helper("memhog", "1G", opts=["-m", "64M", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_MEMORY_LIMIT")


def test_memory_bomb_slow(cordon):
    r = cordon.helper("memhog", "256M", "--slow", opts=["-m", "32M", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_MEMORY_LIMIT")


def test_memory_bomb_exit_status_137(cordon):
    r = cordon.helper("memhog", "1G", opts=["-m", "64M", *ROOMY], json_=False)
    assert r.rc == 137, r


def test_memory_bomb_in_many_processes(cordon):
    # memhog in a child of a shell: the cgroup, not one process, is what is limited.
    r = cordon.run("--ro", f"{cordon.helper_path}:/helper", "-m", "64M", *ROOMY,
                   cmd=["/bin/sh", "-c", "/helper memhog 40M --slow & /helper memhog 40M --slow"
                        " & wait; exit 1"])
    expect(r, "SANDBOX_MEMORY_LIMIT")


def test_memory_within_limit(cordon):
    r = cordon.helper("memhog", "16M", opts=["-m", "128M", *ROOMY])
    expect(r, None)
    assert r.metrics["memory_peak_bytes"] >= 16 << 20, r


# ---- time ---------------------------------------------------------------------------------


def test_cpu_limit(cordon):
    r = cordon.helper("spin", opts=["--cpu-time", "300ms", "-t", "60s"])
    expect(r, "SANDBOX_CPU_LIMIT")


def test_cpu_limit_counts_all_processes(cordon):
    r = cordon.helper("spin", "3", opts=["--cpu-time", "600ms", "-t", "60s"])
    expect(r, "SANDBOX_CPU_LIMIT")


def test_cpu_limit_exit_status_124(cordon):
    r = cordon.helper("spin", opts=["--cpu-time", "300ms", "-t", "60s"], json_=False)
    assert r.rc == 124, r


def test_sleeping_is_not_cpu(cordon):
    r = cordon.helper("sleep", "1.5", opts=["--cpu-time", "300ms", "-t", "60s"])
    expect(r, None)


def test_cpu_within_limit(cordon):
    r = cordon.helper("cpu-then-exit", "300", opts=["--cpu-time", "10s", "-t", "60s"])
    expect(r, None)
    assert r.metrics["cpu_time_ms"] >= 200, r


def test_wall_timeout(cordon):
    r = cordon.helper("sleep", "60", opts=["-t", "300ms"])
    expect(r, "SANDBOX_TIMEOUT")


def test_wall_timeout_exit_status_124(cordon):
    r = cordon.helper("sleep", "60", opts=["-t", "300ms"], json_=False)
    assert r.rc == 124, r


# ---- processes ------------------------------------------------------------------------------


def test_fork_bomb(cordon):
    r = cordon.helper("forkbomb", opts=["--pids", "16", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_PROCESS_LIMIT")
    assert r.metrics["processes_peak"] <= 16, r


def test_thread_bomb(cordon):
    r = cordon.helper("threads", "64", opts=["--pids", "16", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_PROCESS_LIMIT")


def test_threads_within_limit(cordon):
    expect(cordon.helper("threads", "10", opts=["--pids", "16", *ROOMY]), None)


# ---- output ---------------------------------------------------------------------------------


MiB = 1 << 20


def test_stdout_flood(cordon):
    r = cordon.helper("flood", "1G", opts=["--output", "1M", *ROOMY], timeout=300)
    expect(r, "SANDBOX_OUTPUT_LIMIT")
    assert len(r.stdout) == MiB, f"kept {len(r.stdout)} bytes, cap is {MiB}"
    assert set(r.stdout) == {"x"}, "kept output is not the program's"
    assert r.json["stdout_truncated"] is True, r


def test_stderr_flood(cordon):
    r = cordon.helper("flood", "1G", "--stderr", opts=["--output", "1M", *ROOMY], timeout=300)
    expect(r, "SANDBOX_OUTPUT_LIMIT")
    assert len(r.stdout) + len(r.stderr) == MiB, r
    assert r.json.get("stderr_truncated") is True, r


def test_output_exactly_at_cap_is_fine(cordon):
    r = cordon.helper("flood", "1M", opts=["--output", "1M", *ROOMY])
    expect(r, None)
    assert len(r.stdout) == MiB and r.json["stdout_truncated"] is False, r


def test_output_one_byte_over_cap(cordon):
    r = cordon.helper("flood", str(MiB + 1), opts=["--output", "1M", *ROOMY])
    expect(r, "SANDBOX_OUTPUT_LIMIT")
    assert len(r.stdout) == MiB and r.json["stdout_truncated"] is True, r


def test_output_cap_passthrough(cordon):
    f = cordon.tmp / "result.json"
    r = cordon.helper("flood", "1G", opts=["--output", "1M", "--result-file", f, *ROOMY],
                      json_=False, timeout=300)
    assert len(r.out) <= MiB, f"passed {len(r.out)} bytes through, cap is {MiB}"
    j = json.loads(f.read_text())
    assert j["error"]["code"] == "SANDBOX_OUTPUT_LIMIT", j


# ---- files ----------------------------------------------------------------------------------


def test_file_size_limit(cordon):
    r = cordon.helper("write", "/tmp/big", "100M", opts=["--fsize", "1M", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_FILE_LIMIT")


def test_file_size_within_limit(cordon):
    r = cordon.helper("write", "/tmp/ok", "512K", opts=["--fsize", "1M", *ROOMY])
    expect(r, None)
    assert r.metrics["files_written"] >= 1, r


def test_disk_fill(cordon):
    r = cordon.helper("write", "/tmp/big", "100M",
                      opts=["--disk", "4M", "--fsize", "1G", "-m", "256M", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_FILE_LIMIT")


def test_disk_fill_in_workdir(cordon):
    r = cordon.helper("write", "big", "100M",
                      opts=["--disk", "4M", "--fsize", "1G", "-m", "256M", "-w", "/tmp", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_FILE_LIMIT")


def test_inode_fill(cordon):
    r = cordon.helper("fill-inodes", "/tmp", opts=["--max-files", "100", *ROOMY])
    assert not r.helper_ok, r
    expect(r, "SANDBOX_FILE_LIMIT")
    n = int(re.search(r"after (\d+) files", r.stdout).group(1))
    assert n <= 100, f"created {n} files with --max-files 100\n{r}"


@pytest.mark.parametrize("what", ["disk", "inodes"])
def test_dev_shm_fill(cordon, what):
    """/dev/shm is writable scratch too: filling it must hit a limit, not the host's RAM."""
    probe = cordon.helper("open", "/dev/shm/probe", "w")
    if not probe.helper_ok:
        # Not a writable path: nothing to fill, and the refusal is itself containment.
        assert probe.status == "failed", probe
        return
    args = ["write", "/dev/shm/big", "1G"] if what == "disk" else ["fill-inodes", "/dev/shm"]
    r = cordon.helper(*args, opts=["--disk", "4M", "--max-files", "100", "--fsize", "2G",
                                   "-m", "64M", *ROOMY], timeout=300)
    assert not r.helper_ok, r
    assert r.code in ("SANDBOX_FILE_LIMIT", "SANDBOX_MEMORY_LIMIT"), r


def test_fd_exhaustion(cordon):
    r = cordon.helper("fd-exhaust", opts=["--nofile", "32", *ROOMY])
    assert not r.helper_ok, r
    assert "EMFILE" in r.stdout, r
    assert r.status == "failed", r
    # The supervisor saw the fd table full when the program exited: the open-files limit.
    assert r.code == "SANDBOX_FILE_LIMIT", r
    assert "open files" in r.message, r
    n = int(re.search(r"opened (\d+) fds", r.stdout).group(1))
    assert n <= 32, r
