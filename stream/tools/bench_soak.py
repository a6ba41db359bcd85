"""``talkie bench soak``: does the server's memory stay flat over many sessions and one long one?

The server runs as a process of its own (``python -m stream.tools.cli serve`` on a free loopback
port, with a fresh data directory), so every figure is the server's alone, never this client's:
RSS (``VmRSS``) and threads from ``/proc/PID/status``, open files from ``/proc/PID/fd``, live
sessions from ``GET /api/health``. The server inherits this process's environment, so
``MALLOC_ARENA_MAX=2 talkie bench soak`` measures the server under that allocator setting.

- **Cycles**: N times, a real aiortc peer connects (offer, answer), receives a few frames, on
  every ``SAY_EVERY``-th cycle says a short line and waits for it to start, then closes its
  peer connection. The server ends a session when its peer's connection closes; a session still
  there after 5 s is deleted by the bench and counted (``sessions_left_by_server``). The server
  is probed after each session has gone, so every sample is of an idle server; the growth per
  100 cycles is the least-squares slope over the samples after the warm-up (50 cycles: worker
  pools and the allocator's arenas grow to their working size).
- **Stream**: one session for M minutes, a line every ``LINE_EVERY_S`` seconds, the server's RSS
  sampled every 10 s. ``mb_per_minute`` is the least-squares slope of RSS over the samples after
  the first minute (the session's tiles and caches filling up).

A/V offset: each frame's lag is its arrival time (monotonic) minus its media time, its pts (RTP
timestamp) counted from its track's first frame; a window's offset is the median video lag
minus the median audio lag: how much later a picture arrives than the sound of the same media
time (negative: earlier). ``av_offset_ms`` times the RTP packets as they reach the peer, so it
is the server's own pacing; ``av_offset_decoded_ms`` times the frames leaving the peer's
decoders, which adds this aiortc client's jitter buffers (audio is held for 4 packets, video
not). The start window is 5-15 s after the first frame, the end window the last 10 s. Both
tracks' first frames are media time 0 (stamped from counts from one start time), so the offset
is absolute unless the server skipped the very first picture; the drift (end minus start)
never depends on that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from lipsync.timebase import SAMPLE_RATE_HZ, TICKS_PER_FRAME
from stream.live.ice import use_loopback_candidates
from stream.tools.bench_stream import LINES
from stream.tools.client import ScenePeer

ROOT = Path(__file__).resolve().parents[2]
SAY_EVERY = 4  # cycles: every 4th cycle says a line
LINE_EVERY_S = 4.0  # stream: a line every 4 s (each takes 1.5-2.5 s to say)
FRAMES_PER_CYCLE = 3  # video frames a cycle's peer receives before anything else
PROBE_EVERY_S = 10.0  # stream: RSS samples
WINDOW_S = 10.0  # A/V offset windows
START_SKIP_S = 5.0  # the start window begins this long after the first frame
VIDEO_CLOCK_HZ = 90_000
SETTLE_S = 1.0  # before the after-warm-up and end probes: threads of the last session wind down


@dataclass(frozen=True, slots=True)
class Probe:
    """The server process at one moment."""

    rss_mb: float
    threads: int
    fds: int
    sessions: int
    cpu_s: float  # user + system CPU time since the server started


class ServerProcess:
    """``talkie serve`` in a process of its own on a free loopback port."""

    def __init__(self, *, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "stream.tools.cli", "serve",
            "--port", str(self.port), "--data-dir", str(data_dir),
            "--voice", "espeak",  # the picture pipeline's memory, as measured before natural became the default
        ]
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.AsyncClient(base_url=self.url, timeout=10)

    async def start(self, *, timeout_s: float = 120.0) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if (await self._http.get("/api/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the server on port {self.port} did not start within {timeout_s:.0f} s:\n{tail}")

    @property
    def pid(self) -> int:
        assert self._proc is not None, "start() the server first"
        return self._proc.pid

    async def sessions(self) -> list[dict[str, Any]]:
        return list((await self._http.get("/api/sessions")).json()["sessions"])

    async def probe(self) -> Probe:
        health = (await self._http.get("/api/health")).json()
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return Probe(
            rss_mb=round(int(fields["VmRSS"].split()[0]) / 1024, 1),
            threads=int(fields["Threads"]),
            fds=len(os.listdir(f"/proc/{self.pid}/fd")),
            sessions=int(health["sessions"]),
            cpu_s=round(_cpu_s(self.pid), 2),
        )

    async def end_session(self, peer: ScenePeer, *, timeout_s: float = 5.0) -> bool:
        """Wait for the server to end the session of a peer that left; True when it did by itself."""
        session_id = peer.session_id
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not any(s["session_id"] == session_id for s in await self.sessions()):
                return True
            await asyncio.sleep(0.05)
        await self._http.delete(f"/sessions/{session_id}", headers=peer.credential)
        return False

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    async def aclose(self) -> None:
        self.stop()
        await self._http.aclose()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/PID/stat`` fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ArrivalClock:
    """Each frame's lag (arrival minus media time), kept for the start and end windows.

    Fed decoded frames (pts from 0) or RTP packets (timestamps from a random origin, wrapping
    at 2**32; a picture's later packets repeat its timestamp and are not counted again)."""

    def __init__(self) -> None:
        self.frames = {"video": 0, "audio": 0}
        self.video_gaps = 0  # pictures missing between received ones (skipped or lost)
        self._first_pts: dict[str, int] = {}
        self._last_video_pts: int | None = None
        self._t_first: float | None = None
        self._start: dict[str, list[float]] = {"video": [], "audio": []}
        self._recent: dict[str, deque[tuple[float, float]]] = {
            "video": deque(maxlen=int(WINDOW_S * 25) + 1), "audio": deque(maxlen=int(WINDOW_S * 50) + 1),
        }

    def add(self, kind: str, arrival_s: float, pts: int) -> None:
        if kind == "video" and pts == self._last_video_pts:
            return
        clock = VIDEO_CLOCK_HZ if kind == "video" else SAMPLE_RATE_HZ
        first = self._first_pts.setdefault(kind, pts)
        if self._t_first is None:
            self._t_first = arrival_s
        lag_s = arrival_s - (pts - first) % 2**32 / clock
        self.frames[kind] += 1
        if kind == "video":
            if self._last_video_pts is not None:
                self.video_gaps += max(0, (pts - self._last_video_pts) % 2**32 // TICKS_PER_FRAME - 1)
            self._last_video_pts = pts
        since = arrival_s - self._t_first
        if START_SKIP_S <= since < START_SKIP_S + WINDOW_S:
            self._start[kind].append(lag_s)
        self._recent[kind].append((arrival_s, lag_s))

    def offset_ms(self, which: str) -> float | None:
        """Median video lag minus median audio lag in the ``start`` or ``end`` window."""
        if which == "start":
            video, audio = self._start["video"], self._start["audio"]
        else:
            last = max((a for q in self._recent.values() for a, _ in q), default=0.0)
            video, audio = ([lag for a, lag in self._recent[k] if a >= last - WINDOW_S] for k in ("video", "audio"))
        if not video or not audio:
            return None
        return round((statistics.median(video) - statistics.median(audio)) * 1000, 1)

    def offsets(self) -> dict[str, float | None]:
        start, end = self.offset_ms("start"), self.offset_ms("end")
        drift = round(end - start, 1) if start is not None and end is not None else None
        return {"start": start, "end": end, "drift": drift}


class CountingPeer(ScenePeer):
    """A ``ScenePeer`` that keeps no frames: it counts them and times their arrival, both as
    RTP packets reach it (``packets``) and as frames leave its decoders (``clock``)."""

    def __init__(self) -> None:
        super().__init__(keep_video=False)
        self.clock = ArrivalClock()
        self.packets = ArrivalClock()
        for transceiver in self.pc.getTransceivers():
            self._tap_packets(transceiver.receiver, transceiver.kind)

    def _tap_packets(self, receiver: RTCRtpReceiver, kind: str) -> None:
        handle = receiver._handle_rtp_packet

        async def tapped(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.packets.add(kind, time.monotonic(), packet.timestamp)
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = tapped  # type: ignore[method-assign]

    async def _pump(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.clock.add(track.kind, time.monotonic(), frame.pts)


async def _cycle(server: ServerProcess, i: int) -> tuple[bool, bool]:
    """One connect/disconnect; returns (a line was said, the server ended the session itself)."""
    peer = CountingPeer()
    said = i % SAY_EVERY == SAY_EVERY - 1
    try:
        (await peer.connect(server.url)).raise_for_status()
        await peer.wait_for(lambda: peer.clock.frames["video"] >= FRAMES_PER_CYCLE)
        if said:
            speaker, text = LINES[(i // SAY_EVERY) % len(LINES)]
            peer.send({"type": "say", "speaker": speaker, "text": text})
            await peer.event("line_started")
    finally:
        await peer.close()
    return said, await server.end_session(peer)


def _mb_per(values: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, MB) points, or None for fewer than two."""
    if len(values) < 2:
        return None
    return statistics.linear_regression([x for x, _ in values], [y for _, y in values]).slope


async def _cycles(server: ServerProcess, n: int, warmup: int) -> dict[str, Any]:
    warmup = min(warmup, n)
    probes = [await server.probe()]
    durations, lines, left = [], 0, 0
    t0 = time.monotonic()
    for i in range(1, n + 1):
        started = time.monotonic()
        said, ended = await _cycle(server, i - 1)
        durations.append(time.monotonic() - started)
        lines += said
        left += not ended
        if i in (warmup, n):
            await asyncio.sleep(SETTLE_S)  # the marks are of a settled idle server
        probes.append(await server.probe())
    after, end = probes[warmup], probes[-1]
    # Least squares over every probe after the warm-up: one probe is as noisy as a gc pass.
    slope = _mb_per([(i, p.rss_mb) for i, p in enumerate(probes) if i >= warmup])
    every = max(1, n // 10)

    def spread(field: str) -> dict[str, Any]:
        values = [getattr(p, field) for p in probes]
        return {"start": values[0], "after_warmup": values[warmup], "end": values[-1], "max": max(values)}

    return {
        "cycles": n,
        "warmup_cycles": warmup,
        "lines_said": lines,
        "seconds": round(time.monotonic() - t0, 1),
        "cycle_ms_p50": round(statistics.median(durations) * 1000, 1) if durations else None,
        "rss_mb": {**spread("rss_mb"), "growth_after_warmup": round(end.rss_mb - after.rss_mb, 1)},
        "growth_mb_per_100_cycles_after_warmup": round(slope * 100, 2) if slope is not None else None,
        "threads": spread("threads"),
        "fds": spread("fds"),
        "sessions": spread("sessions"),
        "sessions_left_by_server": left,
        # [cycle, rss MB, threads, fds], every n/10 cycles
        "samples": [[i, p.rss_mb, p.threads, p.fds] for i, p in enumerate(probes) if i % every == 0 or i == n],
    }


async def _stream(server: ServerProcess, minutes: float) -> dict[str, Any]:
    peer = CountingPeer()
    samples: list[tuple[float, float]] = []
    lines = 0
    try:
        (await peer.connect(server.url)).raise_for_status()
        await peer.event("hello")
        t0 = time.monotonic()
        first = await server.probe()
        samples.append((0.0, first.rss_mb))
        next_line, next_probe = t0, t0 + PROBE_EVERY_S
        while (now := time.monotonic()) < t0 + minutes * 60:
            if now >= next_line:
                speaker, text = LINES[lines % len(LINES)]
                peer.send({"type": "say", "speaker": speaker, "text": text})
                lines += 1
                next_line += LINE_EVERY_S
            if now >= next_probe:
                samples.append(((now - t0) / 60, (await server.probe()).rss_mb))
                next_probe += PROBE_EVERY_S
            await asyncio.sleep(0.1)
        stats = next((s for s in await server.sessions() if s["session_id"] == peer.session_id), {})
        last = await server.probe()
        samples.append(((time.monotonic() - t0) / 60, last.rss_mb))
    finally:
        await peer.close()
    await server.end_session(peer)
    clock, clock_packets = peer.clock, peer.packets
    elapsed_s = max(1e-6, time.monotonic() - t0)
    settled = [s for s in samples if s[0] >= 1.0]  # the session's working set has grown by then
    per_minute = _mb_per(settled)
    return {
        "minutes": round(elapsed_s / 60, 2),
        "lines_said": lines,
        "lines_started": sum(1 for e in peer.events if e["type"] == "line_started"),
        "rss_mb": {
            "start": samples[0][1], "after_first_minute": settled[0][1] if settled else None,
            "end": samples[-1][1], "max": max(r for _, r in samples),
        },
        "growth_mb": round(samples[-1][1] - samples[0][1], 1),
        "growth_after_first_minute_mb": round(samples[-1][1] - settled[0][1], 1) if settled else None,
        "mb_per_minute": round(per_minute, 3) if per_minute is not None else None,
        # Pictures later than the sound of the same media time, in ms (negative: earlier); see
        # the module docstring. As the packets arrive: the server's pacing. As the frames leave
        # this aiortc client's decoders: adds its jitter buffers (audio waits for 4 packets).
        "av_offset_ms": clock_packets.offsets(),
        "av_offset_decoded_ms": clock.offsets(),
        "server_cpu_cores": round((last.cpu_s - first.cpu_s) / elapsed_s, 3),
        "frames_received": dict(clock.frames),
        "received_fps": round(clock.frames["video"] / elapsed_s, 2),
        "frames_skipped": stats.get("frames_skipped"),  # by the server: pictures composed too late
        "video_pts_gaps": clock.video_gaps,  # pictures missing at the viewer (skipped or lost)
        # [minute, rss MB], one a minute
        "samples": [[round(m, 2), r] for m, r in samples[:: max(1, round(60 / PROBE_EVERY_S))]],
    }


async def run_soak(*, cycles: int, minutes: float, warmup_cycles: int = 50) -> dict[str, Any]:
    """Connect/disconnect ``cycles`` times, then stream one session for ``minutes`` (0 skips
    either), against a server process of its own; its memory, threads, files and sessions
    throughout (see the module docstring)."""
    if cycles < 0 or minutes < 0 or warmup_cycles < 0:
        raise ValueError(f"cycles, minutes and warmup_cycles must be >= 0, got {cycles}, {minutes}, {warmup_cycles}")
    use_loopback_candidates()  # the server is on loopback and takes loopback candidates only
    with tempfile.TemporaryDirectory(prefix="talkie-soak-") as tmp:
        server = ServerProcess(data_dir=Path(tmp) / "data", log_path=Path(tmp) / "server.log")
        try:
            await server.start()
            report: dict[str, Any] = {
                "bench": "soak",
                "measured": "the server process alone (`talkie serve` in its own process), not this client",
                "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
                "cpu_count": os.cpu_count(),
                "idle_server": asdict(await server.probe()),
            }
            if cycles > 0:
                report["cycles"] = await _cycles(server, cycles, warmup_cycles)
            if minutes > 0:
                report["stream"] = await _stream(server, minutes)
            report["end"] = asdict(await server.probe())
        finally:
            await server.aclose()
    return report


def bench_soak(*, cycles: int = 1000, minutes: float = 30.0, warmup_cycles: int = 50) -> dict[str, Any]:
    """``run_soak`` on an event loop of its own."""
    return asyncio.run(run_soak(cycles=cycles, minutes=minutes, warmup_cycles=warmup_cycles))
