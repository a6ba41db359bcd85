"""Chunked synthesis for live lines: the same samples and mouth as the whole-line path, sooner."""

from __future__ import annotations

import threading

import numpy as np

from lipsync.speech import SpeechEngine
from lipsync.streaming import StreamingUtterance
from lipsync.timebase import SAMPLES_PER_FRAME
from lipsync.voices import VoiceSpec

TEXT = "Where were you last night? I waited for hours, Maya. " * 4


def test_streamed_line_matches_the_whole_line(speech: SpeechEngine) -> None:
    whole = speech.say(TEXT, VoiceSpec())
    utt = StreamingUtterance(text=TEXT, voice=VoiceSpec())
    first_chunk = 5 * SAMPLES_PER_FRAME
    seen_before_done: list[int] = []

    def watch() -> None:
        utt.ready.wait()
        seen_before_done.append(utt.n_samples)

    watcher = threading.Thread(target=watch)
    watcher.start()
    utt.synthesize(speech, first_chunk_samples=first_chunk)
    watcher.join()
    assert utt.done and utt.error is None
    assert seen_before_done[0] >= first_chunk
    assert utt.n_samples == whole.n_samples
    # Block-by-block resampling can differ from the one-shot resampler by rounding only.
    diff = np.abs(utt.audio(0, utt.n_samples).astype(np.int32) - whole.pcm.astype(np.int32))
    assert diff.max() <= 2
    rows = np.stack([utt.mouth_row(j) for j in range(utt.n_frames)])
    np.testing.assert_allclose(rows, whole.mouth, atol=1e-6)


def test_rows_wait_for_lookahead_until_done(speech: SpeechEngine) -> None:
    utt = StreamingUtterance(text="Hello there, friend.", voice=VoiceSpec())
    assert utt.mouth_row(0) is None  # nothing synthesised yet
    utt.synthesize(speech, first_chunk_samples=SAMPLES_PER_FRAME)
    assert utt.mouth_row(utt.n_frames - 1) is not None
    assert np.all(utt.audio(utt.n_samples, 100) == 0)


def test_cancel_stops_synthesis_early(speech: SpeechEngine) -> None:
    utt = StreamingUtterance(text=TEXT * 5, voice=VoiceSpec())
    utt.cancel()
    utt.synthesize(speech, first_chunk_samples=SAMPLES_PER_FRAME)
    assert utt.done
    assert utt.n_samples < speech.say(TEXT, VoiceSpec()).n_samples
