"""The natural voice: lines spoken by Kokoro chunk by chunk, with phoneme events from its durations.

A line is cut into clauses (``lipsync.g2p``). The first model call speaks the first clause
alone (its first words when it is long), so the line can start early; each later call joins
as many clauses as can be made before the audio already made has played, so calls grow and
the line plays on without a hole (``NaturalConfig``). Offline, a call speaks a whole line
(as many clauses as fit), so the line pays the model's start pad once. Every call returns one
duration per phoneme token, so every phoneme gets an exact start sample in the audio that
comes with it. Marks that are not sounds of their own (stress before a vowel, length,
aspiration and tone after one) are folded into their phoneme; spaces, punctuation and the pads
are pauses.

The start pad is given 14-19 frames of near silence by the model; all but ``lead_frames`` of
it are cut, so lines start on their first sound and chunks follow each other with the pause
their punctuation earned, not 0.4 s more.

Live calls are made one at a time in the order lines asked (``Turns``): a line keeps its turn
number across its chunks, so the line playing now is always finished before the lines queued
behind it, which are made next, while it plays. Offline calls take no turn: a render speaks
two lines side by side (``stream.record.offline.perform``), which keeps both cores busy. A
chunk said before (the same phonemes, voice and speed) comes from ``lipsync.chunk_cache`` with
the same samples, without a call.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from lipsync.audio import to_int16
from lipsync.chunk_cache import ChunkCache
from lipsync.espeak import PhonemeEvent, Speech, WordEvent
from lipsync.g2p import Clause, Phonemizer
from lipsync.kokoro import DURATION_UNIT_SAMPLES, KOKORO_SAMPLE_RATE_HZ, VOCAB, KokoroModel

# Marks that belong to the phoneme after them (stress) or before them (length, aspiration,
# palatalisation, nasalisation, Mandarin tones): never a mouth shape of their own.
_PREFIX_MARKS = frozenset("ˈˌ")
_SUFFIX_MARKS = frozenset("ːʰʲ\u0303ᵝ↓→↗↘")
_PAUSES = frozenset(" ;:,.!?—…\"()“”")
# Kokoro's one-letter symbols for diphthongs, affricates and the flap → the IPA that
# ``lipsync.phonemes`` maps to visemes (events carry IPA whichever voice made them).
_KOKORO_TO_IPA = {
    "A": "eɪ", "I": "aɪ", "O": "oʊ", "W": "aʊ", "Y": "ɔɪ", "Q": "əʊ", "T": "ɾ", "ᵊ": "ə",
    "ʤ": "dʒ", "ʧ": "tʃ", "ʦ": "ts", "ʣ": "dz", "ʨ": "tɕ", "ʥ": "dʑ", "\uab67": "tʂ",
}

ChunkSink = Callable[[np.ndarray, list[PhonemeEvent], list[WordEvent]], bool]
"""Receives (int16 PCM at 24 kHz, phonemes starting in it, words); returns True to stop."""


@dataclass(frozen=True, slots=True)
class NaturalConfig:
    """How a line is cut into model calls (the same cut live and offline, so the same samples).

    first_chunk_tokens: live, the first call speaks at most this many phoneme tokens (its first
        clause, cut at a word if longer: two or three words), so the line's first audio comes
        early; a call's cost follows the audio it makes, pads included (``lipsync.kokoro``).
        12 against 24: live first frame p50/p95 297/418 ms against 371/499 over 30 lines, no
        frame late (``talkie bench voice``'s live figures, static-int8 convolutions).
    max_chunk_tokens: one call speaks at most this many tokens.
    lead_frames: frames (25 ms) of the start pad kept before a call's first phoneme.
    timing_shift_frames: the sound of a token starts this many frames before its duration says
        (Kokoro's own pipeline moves its word times by 3; here the mouth's opening follows the
        audio's energy best at 3: correlation 0.13-0.62 → 0.33-0.64 on six lines).
    The planner keeps each next call small enough to be made before the audio already made
    has played, reckoning ``assumed_rtf`` seconds of compute per second of audio plus
    ``call_overhead_s`` a call (the pads), and ``audio_s_per_token`` of speech per token.
    cache_audio_s: seconds of spoken chunks kept in memory (``lipsync.chunk_cache``); 0: none.
    """

    first_chunk_tokens: int = 12
    max_chunk_tokens: int = 240
    lead_frames: int = 4
    timing_shift_frames: int = 3
    assumed_rtf: float = 0.6
    call_overhead_s: float = 0.25
    audio_s_per_token: float = 0.075
    cache_audio_s: float = 600.0

    def __post_init__(self) -> None:
        if not 0 <= self.cache_audio_s <= 36_000:
            raise ValueError(f"cache_audio_s must be 0..36000 seconds, got {self.cache_audio_s}")
        if not 0 <= self.lead_frames <= 8:
            raise ValueError(f"lead_frames must be 0..8, got {self.lead_frames}")
        if not 8 <= self.first_chunk_tokens <= self.max_chunk_tokens <= 500:
            raise ValueError(
                f"need 8 <= first_chunk_tokens ({self.first_chunk_tokens}) <= max_chunk_tokens "
                f"({self.max_chunk_tokens}) <= 500"
            )

    def compute_s(self, n_tokens: int) -> float:
        """The compute one call of ``n_tokens`` is reckoned to take."""
        return self.call_overhead_s + self.assumed_rtf * n_tokens * self.audio_s_per_token


class Turns:
    """One model call at a time; of the callers waiting, the one with the lowest ticket goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: list[int] = []
        self._busy = False

    def ticket(self) -> int:
        with self._cond:
            return next(self._tickets)

    @contextlib.contextmanager
    def turn(self, ticket: int) -> Iterator[None]:
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while self._busy or self._waiting[0] != ticket:
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


def pieces(clauses: list[Clause], *, first_tokens: int, max_tokens: int) -> list[str]:
    """The clauses' phonemes as pieces a call may join: the first at most ``first_tokens``
    long, the rest of the first clause in pieces no longer (so the second call costs no more
    than the first and is made while the first plays; the planner joins them as the audio made
    runs ahead), every other at most ``max_tokens`` (longer clauses are cut at words)."""
    out: list[str] = []
    for i, clause in enumerate(clauses):
        if i == 0 and len(clause.phonemes) > first_tokens:
            head = _split_long(clause.phonemes, first_tokens)[0]
            out.append(head)
            out += _split_long(clause.phonemes[len(head) :].strip(), first_tokens)
        else:
            out += _split_long(clause.phonemes, max_tokens)
    return [p for p in out if p]


def line_calls(clauses: list[Clause], *, max_tokens: int) -> list[str]:
    """The clauses' phonemes packed into as few calls of at most ``max_tokens`` as they fit
    (a call ends where the next clause would not fit): the offline cut. A line is usually one
    call, so it pays the model's start pad once and the model makes its own pauses between
    its sentences, as Kokoro's own pipeline joins them (15% fewer CPU-seconds than a call per
    sentence over the bench's ten lines)."""
    out: list[str] = []
    current = ""
    for clause in clauses:
        for piece in _split_long(clause.phonemes, max_tokens):
            if current and len(current) + 1 + len(piece) > max_tokens:
                out.append(current)
                current = ""
            current = f"{current} {piece}" if current else piece
    if current:
        out.append(current)
    return out


def _split_long(phonemes: str, max_tokens: int) -> list[str]:
    """A clause longer than ``max_tokens`` cut at word boundaries (at any point if it must)."""
    out: list[str] = []
    rest = phonemes
    while len(rest) > max_tokens:
        cut = rest.rfind(" ", 0, max_tokens)
        cut = cut if cut > 0 else max_tokens
        out.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        out.append(rest)
    return out


def phoneme_events(phonemes: str, frames: np.ndarray, *, trim_samples: int) -> list[PhonemeEvent]:
    """Events (24 kHz samples, counted after cutting ``trim_samples``) for one call's tokens.

    ``frames``: the model's durations for [pad, *phonemes, pad]."""
    assert frames.shape[0] == len(phonemes) + 2
    starts = np.concatenate([[0], np.cumsum(frames)]) * DURATION_UNIT_SAMPLES - trim_samples  # (n + 3,)
    events: list[PhonemeEvent] = [PhonemeEvent("", 0)]
    pending_prefix: tuple[str, int] | None = None
    for i, symbol in enumerate(phonemes):
        start = max(0, int(starts[i + 1]))
        if symbol in _PREFIX_MARKS:
            pending_prefix = pending_prefix or (symbol, start)
            continue
        if symbol in _SUFFIX_MARKS and events[-1].phoneme:
            events[-1] = PhonemeEvent(events[-1].phoneme + symbol, events[-1].start_sample)
            continue
        label = "" if symbol in _PAUSES else _KOKORO_TO_IPA.get(symbol, symbol)
        if pending_prefix is not None:
            label, start = (pending_prefix[0] + label if label else ""), pending_prefix[1]
            pending_prefix = None
        events.append(PhonemeEvent(label, start))
    events.append(PhonemeEvent("", max(0, int(starts[len(phonemes) + 1]))))  # the end pad
    return events


def pause_in_silence(
    events: list[PhonemeEvent], pcm: np.ndarray, *, min_frames: int = 4, quiet: float = 0.02
) -> list[PhonemeEvent]:
    """Events with a pause where a long phoneme's sound has ended before the next event.

    The model gives a sentence's last phoneme the silence after it (a final "t" held 175 ms,
    silent for most of it); the mouth should rest there, not hold the "t"."""
    unit = DURATION_UNIT_SAMPLES
    n = pcm.shape[0] // unit
    if n == 0:
        return events
    rms = np.sqrt(np.mean(pcm[: n * unit].astype(np.float32).reshape(n, unit) ** 2, axis=1))  # (n,)
    silent = rms < quiet * max(float(rms.max()), 1.0)
    out: list[PhonemeEvent] = []
    for i, event in enumerate(events):
        out.append(event)
        end = events[i + 1].start_sample if i + 1 < len(events) else pcm.shape[0]
        f0, f1 = -(-event.start_sample // unit), min(n, end // unit)
        if not event.phoneme or f1 - f0 < min_frames:
            continue
        cut = f1
        while cut > f0 + 1 and silent[cut - 1]:
            cut -= 1
        if f1 - cut >= 2:  # at least 50 ms of silence before the next event
            out.append(PhonemeEvent("", cut * unit))
    return out


def _cut_trailing_silence(pcm: np.ndarray, *, keep_frames: int, quiet: float = 0.02) -> np.ndarray:
    """``pcm`` without the silence at its end beyond ``keep_frames`` frames (25 ms each)."""
    unit = DURATION_UNIT_SAMPLES
    n = pcm.shape[0] // unit
    if n == 0:
        return pcm
    rms = np.sqrt(np.mean(pcm[: n * unit].astype(np.float32).reshape(n, unit) ** 2, axis=1))  # (n,)
    loud = np.flatnonzero(rms >= quiet * max(float(rms.max()), 1.0))
    end = (int(loud[-1]) + 1 + keep_frames) * unit if loud.size else pcm.shape[0]
    return pcm[: min(end, pcm.shape[0])]


class NaturalVoices:
    """Kokoro voices speaking English and Mandarin lines, with phoneme events; thread-safe."""

    sample_rate_hz = KOKORO_SAMPLE_RATE_HZ

    def __init__(self, *, model: KokoroModel, phonemizer: Phonemizer, config: NaturalConfig | None = None) -> None:
        self.model = model
        self.phonemizer = phonemizer
        self.config = config or NaturalConfig()
        self.turns = Turns()
        self.cache = ChunkCache(max_samples=int(self.config.cache_audio_s * KOKORO_SAMPLE_RATE_HZ))

    def pieces(self, text: str, language: str, *, live: bool = True) -> list[str]:
        """The phoneme pieces of ``text``: live, the pieces calls join (``pieces``); offline,
        one per call (``line_calls``)."""
        clauses = self.phonemizer.clauses(text, language)
        if not live:
            return line_calls(clauses, max_tokens=self.config.max_chunk_tokens)
        return pieces(clauses, first_tokens=self.config.first_chunk_tokens, max_tokens=self.config.max_chunk_tokens)

    def speak_chunk(self, phonemes: str, *, voice_id: str, speed: float) -> tuple[np.ndarray, list[PhonemeEvent]]:
        """One model call: int16 PCM at 24 kHz (start pad cut) and its phoneme events; a chunk
        made before comes from the cache (the same samples, no call)."""
        key = (phonemes, voice_id, float(speed))
        cached = self.cache.get(key) if self.cache.max_samples else None
        if cached is not None:
            return cached.pcm, list(cached.events)
        pcm, events = self._call(phonemes, voice_id=voice_id, speed=speed)
        if self.cache.max_samples:
            pcm = self.cache.put(key, pcm, events).pcm
        return pcm, events

    def _call(self, phonemes: str, *, voice_id: str, speed: float) -> tuple[np.ndarray, list[PhonemeEvent]]:
        tokens = [VOCAB[ch] for ch in phonemes]
        audio, frames = self.model.infer(tokens, voice_id=voice_id, speed=speed)
        trim = max(0, int(frames[0]) - self.config.lead_frames) * DURATION_UNIT_SAMPLES
        pcm = to_int16(audio[trim:])
        shift = self.config.timing_shift_frames * DURATION_UNIT_SAMPLES
        events = phoneme_events(phonemes, frames, trim_samples=trim + shift)
        if phonemes[-1] not in _PAUSES:
            # Cut inside a clause (live, the first words): the model ends it as if the line
            # ended, with up to 0.4 s of silence, which would be a pause in mid-sentence.
            pcm = _cut_trailing_silence(pcm, keep_frames=2)
            events = [e for e in events if e.start_sample < pcm.shape[0]]
        return pcm, pause_in_silence(events, pcm)

    def stream(
        self, text: str, *, language: str, voice_id: str, speed: float, sink: ChunkSink, live: bool = True
    ) -> None:
        """Speak ``text`` call by call into ``sink`` (blocking; run it in a worker thread).

        Live, the first call speaks the first words (up to ``first_chunk_tokens``, the first
        clause when it is short); each later call joins as many pieces as can be made, by the
        config's reckoning, before the audio made so far has played. Offline (``live=False``),
        each call speaks a whole line (as many clauses as fit a call). Either cut depends only on the text and the model's
        durations, so the same line gives the same samples. Event positions count from the start
        of the line. ``sink`` is asked first with an empty block before each call, so a
        cancelled line stops before its next call."""
        todo = self.pieces(text, language, live=live)
        ticket = self.turns.ticket()
        offset = 0
        ahead_s = 0.0  # audio made but (by the reckoning) not yet played when the next call starts
        cfg = self.config
        while todo:
            chunk = todo.pop(0)
            while live and todo and len(chunk) + 1 + len(todo[0]) <= cfg.max_chunk_tokens and (
                cfg.compute_s(len(chunk) + 1 + len(todo[0])) <= ahead_s
            ):
                chunk = f"{chunk} {todo.pop(0)}"
            with self.turns.turn(ticket) if live else contextlib.nullcontext():
                if sink(np.zeros(0, np.int16), [], []):
                    return
                pcm, events = self.speak_chunk(chunk, voice_id=voice_id, speed=speed)
            audio_s = pcm.shape[0] / self.sample_rate_hz
            ahead_s = max(0.0, ahead_s - cfg.compute_s(len(chunk))) + audio_s if offset else audio_s
            shifted = [PhonemeEvent(e.phoneme, e.start_sample + offset) for e in events]
            offset += pcm.shape[0]
            if sink(pcm, shifted, []):
                return

    def synthesize(self, text: str, *, language: str, voice_id: str, speed: float, live: bool = False) -> Speech:
        """All of ``text`` at 24 kHz with its phoneme events (no word events); ``live``: cut as
        a live line is (see ``stream``)."""
        blocks: list[np.ndarray] = []
        phonemes: list[PhonemeEvent] = []

        def sink(block: np.ndarray, events: list[PhonemeEvent], _words: list[WordEvent]) -> bool:
            blocks.append(block)
            phonemes.extend(events)
            return False

        self.stream(text, language=language, voice_id=voice_id, speed=speed, sink=sink, live=live)
        pcm = np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
        return Speech(pcm=pcm, sample_rate_hz=self.sample_rate_hz, phonemes=tuple(phonemes), words=())
