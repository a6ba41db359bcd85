"""``talkie bench voice``: the natural voice against espeak-ng, as JSON.

- load: seconds to rebuild, check and load the model (first run included), and the process's
  resident memory before and after;
- real-time factor (compute seconds per second of speech, lower is faster) of each backend at
  1 and 2 threads over the same lines (the natural voice with its convolutions rebuilt as static
  int8, the default, and as shipped, and the ratio of the two), and the fixed cost of one call (a one-phoneme call: its
  compute and the audio the model makes for it, pads included);
- live: line received → first frame with its sound handed on (the frame composed after the line
  started), p50/p95 over lines said one at a time, natural and espeak-ng;
- a pasted 10-line script: the gaps between lines against the scene's own pause, and frames
  whose speech was not made in time (underruns);
- offline speech: the ten lines spoken as a render speaks them (a call per line), one after
  the other and two side by side (what ``stream.record.offline.perform`` does), CPU and wall;
- the offline render of the 60-second two-character scene with natural voices, cold (no cached
  chunk: every line made by the model) and again with the chunk cache holding the script (a
  re-render of an unchanged script: what an edit-and-render loop pays for the unchanged lines).
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from lipsync.espeak import Espeak
from lipsync.kokoro import DURATION_UNIT_SAMPLES, VOCAB, KokoroConfig, KokoroModel
from lipsync.speech import SpeechEngine
from lipsync.timebase import FRAME_MS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from lipsync.voices import VoiceSpec

LINES = (
    "Where were you last night? I waited for hours.",
    "I was at the harbour, watching the boats come in.",
    "All night? You could have called me.",
    "My phone died. I am sorry, I really am.",
    "You always say that, and then you do it again.",
    "This time is different. I found something out there.",
    "What could possibly matter more than keeping a promise?",
    "A letter, addressed to your mother, never delivered.",
    "My mother? That is impossible. Show me.",
    "It is in my bag. Read it, and then tell me I was wrong to stay.",
)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _rtf_natural(threads: int, voice: VoiceSpec, convolutions: str = "static-int8") -> dict[str, Any]:
    """Load, real-time factor and the cost of one call, in wall seconds and in CPU seconds (the
    process's, all threads: what an idle machine would need; this one is shared), with the
    vocoder's convolutions rebuilt as static int8 (the default) or as shipped."""
    from lipsync.g2p import Phonemizer
    from lipsync.natural import NaturalConfig, NaturalVoices

    before = _rss_mb()
    t0 = time.perf_counter()
    model = KokoroModel(KokoroConfig(threads=threads, convolutions=convolutions))
    load_s = time.perf_counter() - t0
    after = _rss_mb()
    voices = NaturalVoices(model=model, phonemizer=Phonemizer(espeak=Espeak()), config=NaturalConfig(cache_audio_s=0))
    wall = cpu = audio = 0.0
    for text in LINES:
        t, c = time.perf_counter(), time.process_time()
        speech = voices.synthesize(text, language="en-us", voice_id=voice.voice_id, speed=voice.speed)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        audio += speech.n_samples / speech.sample_rate_hz
    # Cost against audio made, over calls of 1..160 tokens: cost = fixed + per_audio_s * audio_s.
    phonemes = " ".join(voices.pieces(" ".join(LINES), "en-us"))
    calls = []
    for n in (1, 10, 40, 80, 160):
        tokens = [VOCAB[ch] for ch in phonemes[:n]]
        best_wall = best_cpu = float("inf")
        for _ in range(2):
            t, c = time.perf_counter(), time.process_time()
            pcm, frames = model.infer(tokens, voice_id=voice.voice_id)
            best_wall = min(best_wall, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
        calls.append((n, pcm.shape[0] / 24000, int(frames[0] + frames[-1]) * DURATION_UNIT_SAMPLES / 24000, best_wall, best_cpu))
    audio_s = np.array([c[1] for c in calls])
    cpu_fit = np.polyfit(audio_s, [c[4] for c in calls], 1)  # (per audio second, fixed)
    return {
        "threads": threads,
        "convolutions": model.convolutions,
        "load_s": round(load_s, 2),
        "rss_mb_before_after_load": [round(before), round(after)],
        "realtime_factor_wall": round(wall / audio, 3),
        "realtime_factor_cpu": round(cpu / audio, 3),
        "speech_s": round(audio, 2),
        "calls": [
            {"tokens": n, "audio_s": round(a, 3), "pad_audio_s": round(p, 3), "wall_s": round(w, 3), "cpu_s": round(c, 3)}
            for n, a, p, w, c in calls
        ],
        "cpu_s_fit": {"fixed_s": round(float(cpu_fit[1]), 3), "per_audio_s": round(float(cpu_fit[0]), 3)},
    } | ({"offline_lines": _offline_lines(voices, voice)} if threads == 2 and convolutions == "static-int8" else {})


def _offline_lines(voices: Any, voice: VoiceSpec) -> dict[str, Any]:
    """The ten lines spoken offline (a call per line, no cache), one after the other and two
    side by side; the samples must be the same either way."""

    def say(text: str) -> np.ndarray:
        return voices.synthesize(text, language="en-us", voice_id=voice.voice_id, speed=voice.speed).pcm

    out: dict[str, Any] = {"lines": len(LINES), "calls": sum(len(voices.pieces(t, "en-us", live=False)) for t in LINES)}
    made: dict[str, list[np.ndarray]] = {}
    for mode in ("one_at_a_time", "two_side_by_side"):
        t, c = time.perf_counter(), time.process_time()
        if mode == "one_at_a_time":
            made[mode] = [say(text) for text in LINES]
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:
                made[mode] = list(pool.map(say, LINES))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        audio = sum(p.shape[0] for p in made[mode]) / 24000
        out[mode] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "speech_s": round(audio, 2),
                     "realtime_factor_wall": round(wall / audio, 3), "realtime_factor_cpu": round(cpu / audio, 3)}
    out["same_samples"] = all(
        np.array_equal(a, b) for a, b in zip(made["one_at_a_time"], made["two_side_by_side"], strict=True)
    )
    return out


def _rtf_espeak() -> dict[str, Any]:
    espeak = Espeak()
    wall = cpu = audio = 0.0
    for text in LINES:
        t, c = time.perf_counter(), time.process_time()
        speech = espeak.synthesize(text, VoiceSpec())
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        audio += speech.n_samples / speech.sample_rate_hz
    return {
        "threads": 1,
        "realtime_factor_wall": round(wall / audio, 4),
        "realtime_factor_cpu": round(cpu / audio, 4),
        "speech_s": round(audio, 2),
    }


class _PacedScene:
    """A live scene whose frames are produced and composed at 25 fps by the wall clock, noting
    when each line's first frame was composed (handed on to the encoder)."""

    def __init__(self, speech: SpeechEngine, *, espeak: bool = False) -> None:
        from avatar.spec import Cast
        from stream.live.config import LiveConfig
        from stream.live.scene import LiveScene

        cast = Cast.builtin()
        if espeak:  # every character on espeak-ng, as a session asking for instant replies
            cast = Cast([replace(spec, voice=spec.voice.as_espeak()) for spec in cast])
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="bench-synth")
        self.scene = LiveScene(
            cast=cast,
            speech=speech,
            synth_executor=self.executor,
            # A session whose lines speak with the natural voice unless asked for espeak-ng (the
            # server's own default is espeak-ng: `talkie serve --voice natural` is this).
            config=LiveConfig(voice="espeak" if espeak else "natural"),
            names=("MAYA", "LEO"),
        )
        self.first_frame_at: dict[str, float] = {}
        self.started: dict[str, int] = {}
        self.ended: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            due = t0 + k * FRAME_MS / 1000
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            state = self.scene.produce(k)
            self.scene.compose(state)
            now = time.monotonic()
            for notice in state.notices:
                if notice.kind == "started":
                    self.started[notice.line.id] = notice.sample
                    self.first_frame_at[notice.line.id] = now
                elif not notice.interrupted:
                    self.ended[notice.line.id] = notice.sample
            k += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.executor.shutdown(wait=True, cancel_futures=True)


def _forget_chunks(speech: SpeechEngine) -> None:
    """Empty the natural voice's chunk cache, so every line of a measurement is made by the model."""
    natural = speech.natural()
    if natural is not None:
        natural.cache.clear()


def _live_latency(speech: SpeechEngine, *, espeak: bool, n_lines: int) -> dict[str, Any]:
    paced = _PacedScene(speech, espeak=espeak)
    latencies = []
    try:
        for i in range(n_lines):
            _forget_chunks(speech)  # more lines than LINES repeat them: each is made anew
            received = time.monotonic()
            line = paced.scene.say(("MAYA", "LEO")[i % 2], LINES[i % len(LINES)], received_at=received)
            while line.id not in paced.ended and line.status != "interrupted":
                time.sleep(0.01)
            latencies.append(1000 * (paced.first_frame_at[line.id] - received))
            time.sleep(0.3)
        underruns = paced.scene.stats.synth_underruns
    finally:
        paced.close()
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "lines": len(latencies),
        "underrun_frames": underruns,
    }


def _script(speech: SpeechEngine) -> dict[str, Any]:
    _forget_chunks(speech)  # the live measurement said these lines already
    paced = _PacedScene(speech)
    gap_ms = paced.scene.config.gap_ms
    try:
        received = time.monotonic()
        lines = [
            paced.scene.say(("MAYA", "LEO")[i % 2], LINES[i], received_at=received) for i in range(len(LINES))
        ]
        while not all(line.id in paced.ended for line in lines):
            time.sleep(0.05)
        underruns = paced.scene.stats.synth_underruns
    finally:
        paced.close()
    gaps = [
        (paced.started[b.id] - paced.ended[a.id]) * 1000 / SAMPLE_RATE_HZ for a, b in zip(lines, lines[1:], strict=False)
    ]
    return {
        "lines": len(lines),
        "scene_gap_ms": gap_ms,
        "gap_ms_max": round(max(gaps), 1),
        "gap_ms_mean": round(statistics.mean(gaps), 1),
        "gaps_over_scene_gap_plus_one_frame": sum(g > gap_ms + 1000 * SAMPLES_PER_FRAME / SAMPLE_RATE_HZ for g in gaps),
        "underrun_frames": underruns,
        "first_line_latency_ms": round(1000 * (paced.first_frame_at[lines[0].id] - received), 1),
    }


def bench_voice(*, lines: int = 10, render_seconds: float = 60.0) -> dict[str, Any]:
    """Every figure of the natural voice (see the module docstring); one process, in order."""
    from stream.tools.bench_render import bench_render

    voice = VoiceSpec(backend="kokoro", voice_id="af_heart")
    report: dict[str, Any] = {
        "bench": "voice", "cpu_count": os.cpu_count(), "model": "Kokoro-82M v1.0 int8 ONNX",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    report["espeak"] = _rtf_espeak()
    report["natural"] = [_rtf_natural(t, voice, c) for c in ("static-int8", "shipped") for t in (1, 2)]
    rtf = {(r["convolutions"], r["threads"]): r["realtime_factor_cpu"] for r in report["natural"]}
    report["static_int8_speedup_cpu"] = {
        f"{t}_threads": round(rtf[("shipped", t)] / rtf[("static-int8", t)], 2)
        for t in (1, 2) if ("shipped", t) in rtf and ("static-int8", t) in rtf
    }
    speech = SpeechEngine(voice_backend="natural")
    speech.warm_up()
    report["live_first_frame_natural"] = _live_latency(speech, espeak=False, n_lines=lines)
    report["live_first_frame_espeak"] = _live_latency(speech, espeak=True, n_lines=lines)
    report["pasted_script_natural"] = _script(speech)
    if render_seconds > 0:
        from lipsync.natural import NaturalConfig
        from stream.record.offline import offline_speech

        cold = offline_speech("natural", natural_config=NaturalConfig(cache_audio_s=0))
        report["render_natural"] = bench_render(seconds=render_seconds, speech=cold, voice_backend="natural")
        del cold
        # `speech` keeps spoken chunks: bench_render speaks the script once to size it, so its
        # render finds every line made (a re-render of an unchanged script).
        report["rerender_natural_cached"] = bench_render(seconds=render_seconds, speech=speech, voice_backend="natural")
    report["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report
