"""Lines on the sample clock: queued in the order received, started on frame boundaries, ended
by their speech or by an interrupt.

A line starts at the first frame produced after its first chunk of speech exists, once the
previous line has ended plus ``gap_ms`` (or at once with ``overlap``). Every line carries the
epoch it was said in; an interrupt bumps the epoch, so playing lines end at the next frame and
queued ones never start. ``LineSchedule`` is not thread-safe: the live scene's lock guards it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lipsync.streaming import StreamingUtterance
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, frames_for_samples


@dataclass(eq=False)
class LiveLine:
    """One line from the moment it is received until it ends."""

    id: str
    speaker: str
    text: str
    epoch: int
    received_at: float  # time.monotonic() on receipt: for latency figures only, never for stamps
    utt: StreamingUtterance
    overlap: bool = False
    start_frame: int | None = None
    status: Literal["queued", "playing", "ended", "interrupted"] = "queued"

    @property
    def start_sample(self) -> int:
        assert self.start_frame is not None
        return self.start_frame * SAMPLES_PER_FRAME


@dataclass(frozen=True, slots=True)
class LineNotice:
    """A line started or ended at media sample ``sample``."""

    kind: Literal["started", "ended"]
    line: LiveLine
    sample: int
    interrupted: bool = False


class LineSchedule:
    """The queued and playing lines of one scene, and the epoch that interrupts them."""

    def __init__(self, *, gap_ms: int) -> None:
        self.gap_ms = gap_ms
        self.epoch = 0
        self.queue: list[LiveLine] = []
        self.playing: list[LiveLine] = []
        self.started = 0
        self.interrupted = 0
        self._next_start_frame = 0

    def speakers(self) -> set[str]:
        """Everyone with a line queued or playing."""
        return {line.speaker for line in self.playing + self.queue}

    def pending(self) -> int:
        return len(self.queue) + len(self.playing)

    def interrupt(self) -> int:
        """Cancel every queued and playing line's speech; they end at the next frame. Returns
        the new epoch."""
        self.epoch += 1
        for line in self.queue + self.playing:
            line.utt.cancel()
        return self.epoch

    def advance(self, k: int) -> list[LineNotice]:
        """Update which lines play during frame k, in frame order."""
        notices: list[LineNotice] = []
        frame_start = k * SAMPLES_PER_FRAME
        for line in list(self.playing):
            if line.epoch < self.epoch:
                line.status = "interrupted"
                self.playing.remove(line)
                self.interrupted += 1
                notices.append(LineNotice("ended", line, frame_start, interrupted=True))
            elif line.utt.done and line.start_sample + line.utt.n_samples <= frame_start:
                line.status = "ended"
                self.playing.remove(line)
                end = line.start_sample + line.utt.n_samples
                notices.append(LineNotice("ended", line, end))
                gap = frames_for_samples(end + self.gap_ms * SAMPLE_RATE_HZ // 1000)
                self._next_start_frame = max(self._next_start_frame, gap)
        for line in [q for q in self.queue if q.epoch < self.epoch]:
            line.status = "interrupted"
            self.queue.remove(line)
            self.interrupted += 1
            notices.append(LineNotice("ended", line, frame_start, interrupted=True))
        while self.queue:
            head = self.queue[0]
            free = not self.playing and k >= self._next_start_frame
            if not head.utt.ready.is_set() or not (free or head.overlap):
                break
            self.queue.pop(0)
            if head.utt.error is not None:
                head.status = "interrupted"
                notices.append(LineNotice("ended", head, frame_start, interrupted=True))
                continue
            head.start_frame = k
            head.status = "playing"
            self.playing.append(head)
            self.started += 1
            notices.append(LineNotice("started", head, frame_start))
        return notices
