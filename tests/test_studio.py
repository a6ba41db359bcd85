"""The studio page in a real headless Chromium with the browser's default WebRTC settings, as a
user's browser has them: no loopback candidates, host addresses hidden behind mDNS names.

Each test runs ``tests/studio_e2e.py`` inside a private network namespace shaped like a user's
machine: loopback plus one LAN interface (a veth pair whose other end is in the same namespace),
with a default route, so Chromium gathers its usual ``<uuid>.local`` host candidate and nothing
can leave. Screenshots of every step are written to ``test-artifacts/studio/<test>/`` (printed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import browser_in_namespace, decode

from lipsync.timebase import SAMPLE_RATE_HZ

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "studio"
# A user's machine in miniature: one LAN interface with an address and a default route.
USER_NETWORK = (
    "ip link set lo up && ip link add talkie0 type veth peer name talkie1 && ip link set talkie1 up"
    " && ip link set talkie0 up && ip addr add 10.203.0.2/24 dev talkie0"
    " && ip route add default via 10.203.0.1 dev talkie0 onlink && exec \"$@\""
)


def run_scenario(name: str) -> tuple[dict[str, Any], Path]:
    chromium = browser_in_namespace(USER_NETWORK)
    out = ARTIFACTS / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    print(f"\nscreenshots of the {name!r} steps: {out}")
    command = [
        "unshare", "-n", "--", "sh", "-c", USER_NETWORK, "sh",
        sys.executable, str(ROOT / "tests" / "studio_e2e.py"), name, str(out), chromium,
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}\n(screenshots in {out})"
    return json.loads((out / "result.json").read_text()), out


def _connected_as_a_user(stats: dict[str, Any]) -> None:
    """The browser offered only mDNS host candidates (its default) and still connected."""
    offered = stats["offerCandidates"]
    assert offered and all(".local " in c for c in offered), offered
    assert stats["pair"] is not None, stats
    assert stats["framesDecoded"] >= 5, stats


def test_studio_records_a_take_and_exports_the_episode_in_chromium() -> None:
    result, out = run_scenario("record")
    _connected_as_a_user(result["connect"])
    assert "REC 0:0" in result["rec_indicator"]
    take = result["take"]
    # The take: complete, the three lines in order, the duration shown in the page and played back.
    assert take["status"] == "complete" and take["cast"] == ["MAYA", "LEO"]
    assert [(ln["speaker"], ln["text"]) for ln in take["lines"]] == [
        ("MAYA", "Where were you last night?"), ("LEO", "Out by the harbour."), ("MAYA", "All night?"),
    ]
    assert all(ln["end_sample"] is not None and not ln["interrupted"] for ln in take["lines"])
    assert take["lines"][-1]["end_sample"] <= take["samples"]
    assert take["frames"] * 1920 == take["samples"]
    assert result["take_row"] == {"id": take["id"], "duration": f"{take['duration_s']:.1f} s", "status": "complete"}
    assert abs(result["player_duration_s"] - take["duration_s"]) < 0.1
    assert result["scene_chosen"] == take["id"]
    assert result["cast_cards"] == ["MAYA", "LEO"]
    # The downloaded MP4 decodes to the take's duration, with the lines' sound in it.
    assert result["export_progress"] == 1 and result["download_name"] == "episode.mp4"
    # The server needed its token: the page carried its own ?token= on calls, media and downloads.
    assert result["without_token"] == 401
    assert "token=studio-token-1234" in result["download_url"] and "token=studio-token-1234" in result["player_src"]
    frames, _, audio = decode(out / "episode.mp4")
    assert len(frames) == take["frames"]
    assert abs(len(audio) / SAMPLE_RATE_HZ - take["duration_s"]) < 0.05
    first = take["lines"][0]
    speech = audio[first["start_sample"]:first["end_sample"]].astype(np.float64)
    assert np.sqrt(np.mean(speech**2)) > 0.01, "the first line's sound is missing from the export"
    pause = audio[first["end_sample"]:take["lines"][1]["start_sample"]].astype(np.float64)  # between the lines
    assert len(pause) >= SAMPLE_RATE_HZ // 10 and np.sqrt(np.mean(pause**2)) < 0.003, "no silence between lines"
    assert len(result["screenshots"]) >= 7


def test_studio_replays_one_edited_line_and_shows_errors_where_they_happen() -> None:
    result, _ = run_scenario("lines")
    _connected_as_a_user(result["connect"])
    assert result["scenes_after_move"] == ["Hall", "Kitchen"] and result["scenes_after_delete"] == ["Kitchen"]
    assert any(d.startswith('Delete scene "Hall"') for d in result["dialogs"])
    errors = result["errors"]
    assert "'/'" in errors["series_name"] or "/" in errors["series_name"]
    assert "no recorded take" in errors["empty_export"]
    assert errors["script"].startswith("line 2:") and errors["script_marked_line"] == "2"
    assert errors["script_after_fix"] == ""
    # Only the edited line played, with its new words, and the script holds them.
    assert len(result["started_after_edit"]) == 1
    assert result["started_after_edit"][0].startswith("▶ LEO: Out walking by the lighthouse.")
    assert "LEO: Out walking by the lighthouse." in result["script_text"].splitlines()
    # Alt+R recorded the line already playing (from the take's start), Escape cut it.
    lines = result["key_take"]["lines"]
    assert len(lines) == 1 and lines[0]["text"].startswith("This line is already playing")
    assert lines[0]["start_sample"] == 0 and lines[0]["interrupted"]
    # The server went away and came back: the page said so, then reconnected and plays again.
    assert result["state_while_down"].startswith("reconnecting")
    assert any(e.startswith("▶ MAYA: Back again.") for e in result["log"])


def test_transparent_view_keys_the_backdrop_out_in_chromium() -> None:
    result, _ = run_scenario("view")
    for mode in ("webgl", "2d"):
        r = result[mode]
        assert r["mode"] == mode and r["width"] == 512
        assert r["page_background"] == ["rgba(0, 0, 0, 0)", "rgba(0, 0, 0, 0)"]
        # Backdrop pixels are fully transparent, the characters' own pixels fully opaque ...
        assert r["bg"] > 50_000 and r["bgClear"] == r["bg"], r
        assert r["fg"] > 50_000 and r["fgOpaque"] == r["fg"], r
        # ... with soft edges between them and no green left in them.
        assert r["partial"] > 200 and r["fringe"] <= r["partial"] // 100, r
