"""``talkie bench audio``: live audio → mouth figures, and the test publisher (a WHIP client).

Figures (JSON):

- ``latency``: a live input fed 20 ms packets on the wall clock while a producer takes a frame
  every 40 ms, as in a session. For each speech onset: from the packet carrying it arriving to
  the frame that opens the mouth being produced (``mouth_ms``, what "beyond the network" means
  here), and the input's constant voice delay (``voice_ms``: every sample, mouth and voice alike).
  ``end_to_end_ms`` is the same onset through a real loopback WHIP publisher and a viewer: it
  adds Opus and VP8 coding and both peers' jitter buffers.
- ``recordings``: per real recording (every audio or video file in ../shared/testdata),
  correlation of mouth opening with the speech envelope (frame RMS) and the best-matching lag in
  frames, for each estimator; and ``rig``: what the rig shows for that voice (the default
  estimator): how many distinct mouth drawings and pixel-measured mouth heights, and the
  pixel-measured opening's correlation with the envelope.
- ``crosstalk``: two microphones in one room, each hearing the other voice at -20 and -15 dB
  (``stream.tools.bench_crosstalk``): ``leakage_pct`` with the session's room and without it,
  on two espeak-ng voices and on a conversation cut from the real recordings. With
  ``--conversation TALK.wav --rttm TALK.rttm``: only these figures, for that recording.
- ``cpu``: worker-thread CPU per second of live audio per input, and the share of one core.
"""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lipsync.audio import resample
from lipsync.audio_mouth import ESTIMATORS, AudioMouthConfig, jaw_of, track_mouth
from lipsync.conversation import speaker_tracks
from lipsync.timebase import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from stream.live.inputs.audio_input import AudioInput, AudioModels, InputConfig, decode_audio
from stream.tools.bench_crosstalk import (
    bleed_figures,
    conversation_figures,
    cut_testdata_conversation,
    espeak_figures,
)

PACKET_SAMPLES = 960  # 20 ms
TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata"
MEDIA_SUFFIXES = (".wav", ".mp3", ".ogg", ".opus", ".flac", ".m4a", ".mpg", ".mp4", ".webm")
RIG_HEIGHT_PX = 512


def recordings(testdata: Path = TESTDATA) -> list[Path]:
    """Every audio or video file of the real test material (none when it is absent)."""
    if not testdata.is_dir():
        return []
    return sorted(p for p in testdata.iterdir() if p.suffix.lower() in MEDIA_SUFFIXES)


class PcmTrack(MediaStreamTrack):
    """An audio track playing mono 48 kHz int16 PCM in real time (20 ms frames), then silence.

    ``sent_at[i]`` is the monotonic time frame i left ``recv``.
    """

    kind = "audio"

    def __init__(self, pcm: np.ndarray, *, loop_silence: bool = True) -> None:
        super().__init__()
        self._pcm = pcm.astype(np.int16)
        self._i = 0
        self._t0: float | None = None
        self._loop_silence = loop_silence
        self.sent_at: list[float] = []

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        wait = self._t0 + self._i * PACKET_SAMPLES / SAMPLE_RATE_HZ - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        start = self._i * PACKET_SAMPLES
        chunk = self._pcm[start : start + PACKET_SAMPLES]
        if chunk.shape[0] < PACKET_SAMPLES:
            if not self._loop_silence and chunk.shape[0] == 0:
                self.stop()
                raise MediaStreamError
            chunk = np.pad(chunk, (0, PACKET_SAMPLES - chunk.shape[0]))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = start
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
        self._i += 1
        self.sent_at.append(time.monotonic())
        return frame


class WhipPublisher:
    """A WHIP client (aiortc): publishes one audio track to ``POST /whip/{session}?character=``."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.pc = RTCPeerConnection()
        self.pc.addTransceiver(track, direction="sendonly")
        self.location: str | None = None

    async def publish(
        self, base_url: str, session_id: str, character: str, *, token: str | None = None, secret: str | None = None
    ) -> httpx.Response:
        """POST the offer to ``/whip/{session_id}``; ``secret`` is the session's own credential."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if secret:
            headers["X-Talkie-Secret"] = secret
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
            response = await http.post(
                f"/whip/{session_id}", params={"character": character},
                content=self.pc.localDescription.sdp.encode(), headers=headers,
            )
        if response.status_code == 201:
            self.location = response.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=response.text, type="answer"))
        return response

    async def stop(self, base_url: str | None = None) -> None:
        if base_url is not None and self.location is not None:
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
                await http.delete(self.location)
        await self.pc.close()


def bursts(*, n: int = 8, off_s: float = 0.9, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Test signal: ``n`` short espeak-ng phrases in silence, at random sub-frame offsets;
    returns (48 kHz int16 PCM, the first loud sample of each phrase)."""
    from lipsync.speech import SpeechEngine
    from lipsync.voices import VoiceSpec

    rng = np.random.default_rng(seed)
    engine = SpeechEngine()
    phrases = ("Hello there.", "Come on!", "Morning.", "Why not?", "Ah, I see.", "Go away.", "Yes, please.", "Amazing.")
    parts, onsets, pos = [], [], 0
    for i in range(n):
        voice = VoiceSpec(variant=("m3", "f2", "m1", "f4")[i % 4])
        pcm = engine.synthesize(phrases[i % len(phrases)], voice).pcm
        gap = int(off_s * SAMPLE_RATE_HZ) + int(rng.integers(0, SAMPLES_PER_FRAME))
        loud = int(np.argmax(np.abs(pcm.astype(np.int32)) > 1000))
        parts += [np.zeros(gap, np.int16), pcm]
        onsets.append(pos + gap + loud)
        pos += gap + pcm.shape[0]
    parts.append(np.zeros(int(off_s * SAMPLE_RATE_HZ), np.int16))
    return np.concatenate(parts), onsets


def bench_latency(models: AudioModels) -> dict[str, Any]:
    """A live input fed on the wall clock, a producer on a 40 ms tick, as in a session.

    Per speech onset, from the packet carrying its first loud sample arriving: ``voice_ms`` until
    that sample is played (its frame produced, plus its place in the frame), ``mouth_ms`` until
    the first frame with an open mouth is produced, and ``mouth_after_voice_frames`` between the
    frame carrying the onset and that frame (0: the mouth opens in the frame the voice starts).
    """
    pcm, onsets = bursts()
    source = AudioInput(input_id="bench", kind="mic", character="MAYA", models=models)
    fed_at: list[float] = []

    def feeder() -> None:
        t0 = time.monotonic()
        for i in range(0, pcm.shape[0], PACKET_SAMPLES):
            time.sleep(max(0.0, t0 + (i + PACKET_SAMPLES) / SAMPLE_RATE_HZ - time.monotonic()))
            source.feed(pcm[i : i + PACKET_SAMPLES])  # the packet is complete: it arrives now
            fed_at.append(time.monotonic())
        source.finish()

    thread = threading.Thread(target=feeder, name="talkie-bench-feeder")
    thread.start()
    produced: list[tuple[float, np.ndarray, bool]] = []  # (time, audio, mouth open)
    t0, k = time.monotonic(), 0
    while not source.ended:
        time.sleep(max(0.0, t0 + k * 0.040 - time.monotonic()))
        audio, weights = source.frame(k)
        produced.append((time.monotonic(), audio, jaw_of(weights) > 0.0))
        k += 1
    thread.join()
    voice_ms, mouth_ms, late = [], [], []
    start = 0
    for onset in onsets:
        arrived = fed_at[onset // PACKET_SAMPLES]
        loud = [i for i in range(start, len(produced)) if np.abs(produced[i][1].astype(np.int32)).max() > 1000]
        opened = [i for i in range(start, len(produced)) if produced[i][2]]
        if not loud or not opened:
            continue
        v, m = loud[0], opened[0]
        offset = int(np.argmax(np.abs(produced[v][1].astype(np.int32)) > 1000)) / SAMPLE_RATE_HZ
        voice_ms.append(1000 * (produced[v][0] + offset - arrived))
        mouth_ms.append(1000 * (produced[m][0] - arrived))
        late.append(m - v)
        start = max(v, m) + 20  # past this phrase (each lasts well over 0.8 s)
    return {
        "voice_ms": _summary(voice_ms),
        "mouth_ms": _summary(mouth_ms),
        "mouth_after_voice_frames": {str(n): late.count(n) for n in sorted(set(late))},
        "onsets": len(onsets),
        "underflows": source.stats.underflows,
    }


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = np.array(values)
    return {"p50": round(float(np.median(v)), 1), "p95": round(float(np.percentile(v, 95)), 1), "max": round(float(v.max()), 1)}


def lag_correlation(a: np.ndarray, b: np.ndarray, *, max_lag: int = 5) -> dict[int, float]:
    """Pearson correlation of a[t + lag] with b[t] for each lag in frames."""
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        u, v = (a[lag:], b[: b.shape[0] - lag]) if lag >= 0 else (a[:lag], b[-lag:])
        out[lag] = float(np.corrcoef(u, v)[0, 1])
    return out


def recording_figures(path: Path, models: AudioModels) -> dict[str, Any]:
    """Mouth opening vs speech envelope on one real recording, for every estimator."""
    pcm = decode_audio(path, config=models.config, name=path.name)
    out: dict[str, Any] = {"seconds": round(pcm.shape[0] / SAMPLE_RATE_HZ, 2)}
    for estimator in ESTIMATORS:
        frames = track_mouth(pcm, vad=models.vad, shape=models.shape, config=AudioMouthConfig(estimator=estimator))
        played = np.concatenate([np.zeros(48, np.float32), pcm.astype(np.float32) / 32768])  # the analysis filter delay
        n = len(frames)
        played = np.pad(played, (0, max(0, n * SAMPLES_PER_FRAME - played.shape[0])))[: n * SAMPLES_PER_FRAME]
        envelope = np.sqrt((played.reshape(n, SAMPLES_PER_FRAME) ** 2).mean(axis=1))
        jaw = np.array([jaw_of(f.weights) for f in frames])
        lags = lag_correlation(jaw, envelope)
        best = max(lags, key=lambda lag: lags[lag])
        out[estimator] = {"correlation": round(lags[0], 3), "best_lag_frames": best, "best_correlation": round(lags[best], 3)}
        if estimator == models.config.mouth.estimator:
            out["rig"] = rig_figures([f.weights for f in frames], envelope)
    return out


def rig_figures(weights: list[np.ndarray | None], envelope: np.ndarray) -> dict[str, Any]:
    """What the rig shows for these mouth frames (a built-in character, sprite ``RIG_HEIGHT_PX``
    high): distinct mouth drawings, distinct pixel-measured openings, and how the measured
    opening follows the speech envelope."""
    from avatar.measure import mouth_opening
    from avatar.pose import Pose, pose_mouth_from_weights
    from avatar.rig import RigCharacter
    from avatar.spec import Cast

    rig = RigCharacter(Cast.builtin().resolve("MAYA"), height_px=RIG_HEIGHT_PX)
    box = rig.mouth_box()
    poses = [Pose(mouth=pose_mouth_from_weights(w)) if w is not None else Pose() for w in weights]
    opening = np.array([mouth_opening(np.ascontiguousarray(rig.render(p)[..., :3]), box) for p in poses])
    keys = {p.mouth_key() for p in poses}
    r = float(np.corrcoef(opening, envelope)[0, 1]) if opening.std() > 0 else 0.0
    return {
        "distinct_mouth_drawings": len(keys),
        "distinct_mouth_heights_px": len(np.unique(np.round(opening * (box[3] - box[1])).astype(int))),
        "pixel_correlation": round(r, 3),
    }


def bench_cpu(models: AudioModels, pcm: np.ndarray) -> dict[str, float]:
    source = AudioInput(input_id="cpu", kind="mic", character="MAYA", models=models)
    for i in range(0, pcm.shape[0], PACKET_SAMPLES):
        source.feed(pcm[i : i + PACKET_SAMPLES])
    t0 = time.thread_time()
    k = 0
    while source.margin_samples() >= 0:
        source.frame(k)
        k += 1
    produce_ms = 1000 * (time.thread_time() - t0) / max(1, k)
    per_s = float(source.stats.as_dict()["cpu_ms_per_s"] or 0.0)
    return {
        "feed_cpu_ms_per_audio_s": per_s,
        "core_share_per_input": round(per_s / 1000, 4),
        "frame_call_ms": round(produce_ms, 3),
    }


async def _end_to_end(models: AudioModels) -> dict[str, Any]:
    import uvicorn

    from avatar.measure import mouth_opening
    from stream.live.config import LiveConfig, ServerConfig
    from stream.live.engine import Engine
    from stream.tools.client import ScenePeer
    from stream.web.app import create_app

    config = ServerConfig(live=LiveConfig(width_px=256, height_px=256, voice="espeak"))
    engine = Engine(config)
    app = create_app(config, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        viewer = ScenePeer()
        assert (await viewer.connect(url, cast=["MAYA"])).status_code == 200
        await viewer.event("hello")
        await viewer.wait_for(lambda: len(viewer.video) >= 10)
        arrivals: list[float] = []  # when each decoded frame reached the viewer (2 ms polling)
        pcm, onsets = bursts(n=6)
        track = PcmTrack(pcm)
        publisher = WhipPublisher(track)
        assert (await publisher.publish(url, viewer.session_id or "", "MAYA", secret=viewer.secret)).status_code == 201
        seen = len(viewer.video)
        while len(track.sent_at) * PACKET_SAMPLES < pcm.shape[0]:
            while len(viewer.video) > seen:
                arrivals.append(time.monotonic())
                seen += 1
            await asyncio.sleep(0.002)
        frames = viewer.video[-len(arrivals):]
        box = app.state.sessions.sessions[viewer.session_id].scene.view.compositor.mouth_boxes()[0]
        opened = [(t, mouth_opening(f, box) > 0) for t, (_, f) in zip(arrivals, frames, strict=True) if f is not None]
        delays = []
        for onset in onsets:
            sent = track.sent_at[onset // PACKET_SAMPLES]
            hit = next((t for t, o in opened if o and t > sent), None)
            if hit is not None:
                delays.append(1000 * (hit - sent))
                opened = [(t, o) for t, o in opened if t > hit + 0.3]
        await publisher.stop(url)
        await viewer.close()
        return {"end_to_end_ms": _summary(delays), "onsets_detected": len(delays), "onsets": len(onsets)}
    finally:
        server.should_exit = True
        await task
        engine.close()


def bench_audio(
    *, end_to_end: bool = True, conversation: Path | None = None, rttm: Path | None = None
) -> dict[str, Any]:
    models = AudioModels.load(config=InputConfig())
    if conversation is not None or rttm is not None:
        if conversation is None or rttm is None:
            raise ValueError("a conversation needs both the recording and its RTTM file")
        return conversation_figures(conversation, rttm, models)
    report: dict[str, Any] = {
        "estimator": models.config.mouth.estimator,
        "input_delay_ms": round(models.config.delay_ms, 1),
        "latency": bench_latency(models),
    }
    if end_to_end:
        report["latency"]["loopback_whip"] = asyncio.run(_end_to_end(models))
    files = recordings()
    report["recordings"] = {path.name: recording_figures(path, models) for path in files} or "absent"
    talk = cut_testdata_conversation(TESTDATA, models)
    report["crosstalk"] = {
        "espeak_two_voices": espeak_figures(models),
        "testdata_conversation": (
            bleed_figures(speaker_tracks(talk[0], talk[1]), talk[1], models) if talk is not None else "absent"
        ),
    }
    speech = next((p for p in files if p.suffix == ".wav"), None)
    pcm = decode_audio(speech, config=models.config) if speech else resample(bursts()[0], from_hz=SAMPLE_RATE_HZ)
    report["cpu"] = bench_cpu(models, pcm)
    return report
