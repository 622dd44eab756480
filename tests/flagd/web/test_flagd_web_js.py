"""flagd-web.js on its own: tests/browser/flagd-web.test.js in node's test runner, with a fake fetch.

Batching, the bounded queue, retries after 429/5xx and network failures, refusals told to onError, nothing
thrown into the app, UUIDv7 ids. Without node the test skips with a message, and fails under CI (CI=true).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import missing

TESTS = Path(__file__).resolve().parents[3] / "tests" / "browser" / "flagd-web.test.js"


def test_flagd_web_js_passes_its_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        message = "node is missing: install Node.js 20 or later to run tests/browser/flagd-web.test.js"
        missing(message)
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(TESTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
