"""Without Chromium the browser test skips with a notice, or fails when CI requires it."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_flow_test(require: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "NASNAV_CHROMIUM": "/nonexistent/chromium"}
    env.pop("NASNAV_REQUIRE_BROWSER", None)
    if require:
        env["NASNAV_REQUIRE_BROWSER"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "tests/e2e/test_browser_flow.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_missing_chromium_skips_with_a_notice_unless_required():
    skipped = run_flow_test(require=False)
    assert skipped.returncode == 0, skipped.stdout
    assert re.search(r"\b\d+ skipped", skipped.stdout) and " passed" not in skipped.stdout, skipped.stdout
    assert "NOTICE: browser end-to-end test skipped" in skipped.stdout
    failed = run_flow_test(require=True)
    assert failed.returncode != 0
    assert "NASNAV_REQUIRE_BROWSER=1" in failed.stdout
