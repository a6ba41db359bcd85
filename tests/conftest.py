"""Shared fixtures: one espeak-ng engine per test session (loading it is the slow part)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lipsync.speech import SpeechEngine
from stream.live.config import ServerConfig
from stream.live.engine import Engine, settle_garbage_collector

# Renders speak with espeak-ng unless a test asks for the natural voice (tests/test_voices_natural.py):
# loading Kokoro costs seconds per speech engine and it speaks at ~2x real time on 2 cores.
os.environ.setdefault("TALKIE_VOICE_BACKEND", "espeak")

SHARED_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


@pytest.fixture(scope="session")
def speech() -> SpeechEngine:
    return SpeechEngine()


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The server's shared resources (speech, cast, worker threads), made once for all tests."""
    eng = Engine(ServerConfig())
    yield eng
    eng.close()


@pytest.fixture(scope="module", autouse=True)
def settled_collector() -> None:
    """Each test module starts with what earlier ones left alive moved out of the garbage
    collector's reach (``stream.live.engine.settle_garbage_collector``, as the server does at
    start-up): hundreds of thousands of long-lived objects (torch, models) otherwise make a full
    collection hold the GIL for 100-400 ms, and a live test's session skips frames."""
    settle_garbage_collector()


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """One torch thread for a test: the machine is shared, and OpenMP spin-waits fight other processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def testdata_file(name: str) -> Path:
    """A file of ../shared/testdata, or a clean skip naming it when the folder is absent."""
    path = SHARED_TESTDATA / name
    if not path.is_file():
        pytest.skip(f"real-world test file {path} is absent (../shared/testdata is not beside the repo)")
    return path
