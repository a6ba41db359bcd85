"""One end-to-end test in a real headless Chromium: the page connects, a line plays."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import browser_in_namespace

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
LOOPBACK_ONLY = 'ip link set lo up && exec "$@"'


def test_page_connects_and_plays_a_line_in_chromium() -> None:
    chromium = browser_in_namespace(LOOPBACK_ONLY)
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / "browser"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        "unshare", "-n", "--", "sh", "-c", LOOPBACK_ONLY, "sh",
        sys.executable, str(ROOT / "tests" / "browser_e2e.py"), str(out), chromium,
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["connected"]
    assert result["frames_after"] > result["frames_before"] > 0, result
    assert result["audio_energy"] > 0, result
    assert any(entry.startswith("▶ MAYA: Hello from a real browser") for entry in result["log"]), result["log"]
    assert result["latency_text"].endswith("ms")
    assert (out / "page.png").stat().st_size > 20_000
