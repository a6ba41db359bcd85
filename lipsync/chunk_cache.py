"""Spoken chunks kept in memory, so the same phonemes in the same voice cost one model call.

The natural voice is deterministic (the same phonemes, voice and speed give the same samples),
so a chunk said again can be handed back as it was made: a script re-rendered after an edit
speaks only its changed lines, and a line repeated in a scene or a live session is made once.
The cache is bounded by the audio it holds (``max_samples``); the least recently used chunks go
first. At 24 kHz int16, ten minutes of speech is about 29 MB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from lipsync.espeak import PhonemeEvent

ChunkKey = tuple[str, str, float]  # (phonemes, voice id, speed)


@dataclass(frozen=True, slots=True)
class CachedChunk:
    """One model call's result: int16 PCM (read-only) and its phoneme events."""

    pcm: np.ndarray
    events: tuple[PhonemeEvent, ...]


class ChunkCache:
    """A thread-safe LRU of spoken chunks holding at most ``max_samples`` samples (0: off)."""

    def __init__(self, *, max_samples: int) -> None:
        if max_samples < 0:
            raise ValueError(f"max_samples must be >= 0, got {max_samples}")
        self.max_samples = max_samples
        self._chunks: OrderedDict[ChunkKey, CachedChunk] = OrderedDict()
        self._samples = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: ChunkKey) -> CachedChunk | None:
        with self._lock:
            chunk = self._chunks.get(key)
            if chunk is None:
                self.misses += 1
                return None
            self._chunks.move_to_end(key)
            self.hits += 1
            return chunk

    def put(self, key: ChunkKey, pcm: np.ndarray, events: list[PhonemeEvent]) -> CachedChunk:
        """Keep ``pcm`` (copied, read-only) and ``events`` under ``key``; returns what is kept."""
        kept = np.array(pcm, dtype=np.int16, copy=True)
        kept.setflags(write=False)
        chunk = CachedChunk(pcm=kept, events=tuple(events))
        if kept.shape[0] > self.max_samples:
            return chunk
        with self._lock:
            old = self._chunks.pop(key, None)
            if old is not None:
                self._samples -= old.pcm.shape[0]
            self._chunks[key] = chunk
            self._samples += kept.shape[0]
            while self._samples > self.max_samples:
                _, dropped = self._chunks.popitem(last=False)
                self._samples -= dropped.pcm.shape[0]
        return chunk

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._samples = 0

    @property
    def n_samples(self) -> int:
        with self._lock:
            return self._samples

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)
