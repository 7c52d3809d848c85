"""--runtime NAME in the default `host` image: interpreters run code, c/cpp compile then run,
and a compile failure is SANDBOX_COMPILE_ERROR with the diagnostics."""

import os
import shutil

import pytest

from conftest import expect

PROGRAMS = {
    "python": ("python3", "print(6 * 7)"),
    "node": ("node", "console.log(6 * 7)"),
    "bash": ("bash", "echo $((6 * 7))"),
    "sh": ("sh", "echo $((6 * 7))"),
    "c": ("gcc", '#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n'),
    # <cstdio>, not <iostream>: the compile step's fixed budget (20 s CPU) must hold under
    # emulation too (the VM lane), and iostream alone takes most of it there.
    "cpp": ("g++", "#include <cstdio>\ntemplate <typename T> T mul(T a, T b) { return a * b; }\n"
                   "int main() { std::printf(\"%d\\n\", mul(6, 7)); }\n"),
}


def need(tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed on this host, so the host image has no {tool}")


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_runtime_prints(cordon, name):
    tool, code = PROGRAMS[name]
    need(tool)
    # --cpu-time: node's start alone takes more than the default 5 s under emulation.
    r = cordon.runtime(name, "-t", "60s", "--cpu-time", "60s", code=code)
    expect(r, None)
    assert r.stdout == "42\n", r


@pytest.mark.parametrize("name", ["python", "c"])
def test_runtime_from_file(cordon, name):
    tool, code = PROGRAMS[name]
    need(tool)
    f = cordon.tmp / ("main.py" if name == "python" else "main.c")
    f.write_text(code)
    os.chmod(f, 0o644)
    r = cordon.runtime(name, "-t", "60s", file=str(f))
    expect(r, None)
    assert r.stdout == "42\n", r


def test_runtime_stdin(cordon):
    need("python3")
    f = cordon.tmp / "in.txt"
    f.write_text("20\n")
    os.chmod(f, 0o644)
    r = cordon.runtime("python", "--stdin", str(f), code="print(int(input()) + 22)")
    expect(r, None)
    assert r.stdout == "42\n", r


def test_python_exception_is_runtime_error(cordon):
    need("python3")
    r = cordon.runtime("python", code="raise SystemExit(3)")
    expect(r, "SANDBOX_RUNTIME_ERROR")
    assert r.exit_code == 3, r
    r = cordon.runtime("python", code="1/0")
    expect(r, "SANDBOX_RUNTIME_ERROR")
    assert "ZeroDivisionError" in r.stderr, r


def test_python_memory_bomb(cordon):
    need("python3")
    r = cordon.runtime("python", "-m", "64M", "-t", "60s", "--cpu-time", "30s",
                       code="x = []\nwhile True: x.append(bytearray(1 << 20))")
    expect(r, "SANDBOX_MEMORY_LIMIT")


@pytest.mark.parametrize("name", ["c", "cpp"])
def test_compile_error(cordon, name):
    need("gcc" if name == "c" else "g++")
    r = cordon.runtime(name, "-t", "60s", code="int main(void) { return undeclared_thing; }\n")
    expect(r, "SANDBOX_COMPILE_ERROR")
    out = r.json.get("compile_output") or ""
    assert "undeclared_thing" in out and "error" in out, f"no diagnostics\n{r}"


def test_c_program_limits_still_apply(cordon):
    need("gcc")
    r = cordon.runtime("c", "--pids", "8", "-t", "60s", code=(
        "#include <unistd.h>\n#include <stdio.h>\n"
        "int main(void) { for (;;) if (fork() < 0) { perror(\"fork\"); return 1; } }\n"))
    expect(r, "SANDBOX_PROCESS_LIMIT")


def test_program_peak_is_its_own_not_the_compilers(cordon):
    # The compile step runs the gcc driver, cc1, as, collect2 and ld (3 or more processes at
    # once, with init); the program below never forks. Its processes_peak must be its own
    # step's: the kernel's pids.peak cannot be reset between the steps, so it must not be
    # reported as the program's.
    need("gcc")
    r = cordon.runtime("c", "-t", "60s", code="int main(void) { return 0; }\n")
    expect(r, None)
    assert 1 <= r.metrics["processes_peak"] <= 2, f"the compile step's peak leaked\n{r}"
