"""scripts/demo, the README's first command, without its setup step: it starts `cordon serve`,
prints the admin key and the curl examples, and stops the daemon again (--once)."""

import re
import subprocess

from api_daemon import ROOT, free_port


def test_demo_starts_the_daemon_and_prints_the_key(workbase):
    state = workbase / "demo-state"
    port = free_port()
    p = subprocess.run([str(ROOT / "scripts" / "demo"), "--no-setup", "--once", "--port",
                        str(port), "--state-dir", str(state)], cwd=ROOT,
                       capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    m = re.search(r"^  (ck_[a-z2-7]{32})$", out, re.M)
    assert m, out
    assert (state / "admin.key").read_text().strip() == m.group(1)
    assert "printed once by this first start" in out
    assert f"curl -s http://127.0.0.1:{port}/v1/" in out
    assert '"id":"tn_admin"' in out, out
    # The example execution ran in a sandbox through the API.
    assert '"stdout": "hello from the sandbox\\n"' in out, out
    assert '"status": "succeeded"' in out, out
    assert out.rstrip().endswith("demo: done"), out
    # The daemon is gone again.
    assert subprocess.run(["curl", "-fsS", f"http://127.0.0.1:{port}/healthz"],
                          capture_output=True).returncode != 0
    # A second run finds the key in admin.key instead of printing a new one.
    p2 = subprocess.run([str(ROOT / "scripts" / "demo"), "--no-setup", "--once", "--port",
                         str(port), "--state-dir", str(state)], cwd=ROOT,
                        capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    out2 = p2.stdout.decode(errors="replace")
    assert p2.returncode == 0, out2
    assert "created at an earlier start" in out2 and m.group(1) in out2
