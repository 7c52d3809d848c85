"""--secret K=V: the value reaches the program as an environment variable and never comes back
in captured output, even split across writes or dug out of cordon's own process."""

import pytest

from conftest import HOST_LEAK_VALUE, expect

SECRET = "s3cr3tvalue"
OPT = ["--secret", f"TOKEN={SECRET}"]


def no_secret(r):
    raw = r.out.decode(errors="replace") + r.err.decode(errors="replace")
    assert SECRET not in raw, f"the secret value appears in cordon's output\n{r}"


def test_secret_printed_whole(cordon):
    r = cordon.helper("printenv", "TOKEN", opts=OPT)
    expect(r, None)
    assert r.stdout == "[REDACTED]\n", r
    no_secret(r)


def test_secret_repeated_and_embedded(cordon):
    r = cordon.helper("echo", f"a{SECRET}b", SECRET, SECRET + SECRET, opts=OPT)
    expect(r, None)
    assert r.stdout == "a[REDACTED]b [REDACTED] [REDACTED][REDACTED]\n", r
    no_secret(r)


def test_secret_split_across_writes_shell(cordon):
    r = cordon.run(*OPT, cmd=["/bin/sh", "-c", "printf s3cr; sleep 0.1; printf 3tvalue"])
    expect(r, None)
    assert r.stdout == "[REDACTED]", r
    no_secret(r)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
@pytest.mark.parametrize("cut", [1, 4, 10])
def test_secret_split_across_writes(cordon, stream, cut):
    args = ["print-split", "<" + SECRET[:cut], SECRET[cut:] + ">", "100"]
    if stream == "stderr":
        args.append("--stderr")
    r = cordon.helper(*args, opts=OPT)
    expect(r, None)
    assert getattr(r, stream) == "<[REDACTED]>", r
    no_secret(r)


def test_secret_redacted_in_error_result(cordon):
    r = cordon.run(*OPT, cmd=["/bin/sh", "-c", 'echo "$TOKEN"; echo "$TOKEN" >&2; exit 3'])
    expect(r, "SANDBOX_RUNTIME_ERROR")
    assert r.stdout == "[REDACTED]\n" and r.stderr == "[REDACTED]\n", r
    no_secret(r)


def test_secret_redacted_when_output_capped(cordon):
    # The cap cuts the stream right after the secret: what is kept must still be redacted.
    r = cordon.run(*OPT, "--output", "20", cmd=["/bin/sh", "-c",
                                                'printf "%s" "$TOKEN"; yes | head -c 100000'])
    assert r.code == "SANDBOX_OUTPUT_LIMIT", r
    no_secret(r)
    assert SECRET[:6] not in r.stdout, r


@pytest.mark.parametrize("path", ["/proc/1/cmdline", "/proc/1/environ"])
def test_secret_not_in_cordon_init(cordon, path):
    """PID 1 is cordon's init (SECURITY.md layer 3), perhaps a fork of the `cordon run` process,
    whose argv holds `--secret TOKEN=...` and whose environment is the caller's. The helper
    hex-encodes what it reads, so output redaction cannot hide a leak."""
    r = cordon.helper("cat-hex", path, opts=OPT)
    if r.stdout.startswith("denied"):
        return
    expect(r, None)
    data = bytes.fromhex(r.stdout.strip())
    assert SECRET.encode() not in data, f"{path} reveals the secret: {data[:400]!r}"
    assert HOST_LEAK_VALUE.encode() not in data, \
        f"{path} reveals the caller's environment: {data[:400]!r}"
