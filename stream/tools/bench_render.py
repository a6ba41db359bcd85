"""``talkie bench …``: measured figures as JSON (no timed assertions live in the tests)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lipsync.natural import NaturalConfig
from lipsync.script import Script, parse_script
from lipsync.speech import SpeechEngine
from lipsync.timebase import SAMPLE_RATE_HZ, samples_to_seconds
from stream.record.offline import RenderConfig, offline_speech, render_script
from stream.record.stages import StageTimer

_DIALOGUE = (
    ("MAYA", "Where were you last night? I waited for hours."),
    ("LEO", "I was at the harbour, watching the boats come in."),
    ("MAYA", "All night? You could have called me."),
    ("LEO", "My phone died. I am sorry, I really am."),
    ("MAYA", "You always say that, and then you do it again."),
    ("LEO", "This time is different. I found something out there."),
    ("MAYA", "What could possibly matter more than keeping a promise?"),
    ("LEO", "A letter, addressed to your mother, never delivered."),
    ("MAYA", "My mother? That is impossible. Show me."),
    ("LEO", "It is in my bag. Read it, and then tell me I was wrong to stay."),
)


def bench_script(seconds: float, speech: SpeechEngine) -> Script:
    """A two-character scene at least ``seconds`` long (the dialogue repeats)."""
    from lipsync.timeline import TimelineConfig

    cfg = TimelineConfig()
    total = cfg.lead_in_ms / 1000 + cfg.tail_ms / 1000
    lines = []
    i = 0
    while total < seconds:
        who, text = _DIALOGUE[i % len(_DIALOGUE)]
        utt = speech.synthesize(text, _voice(who))
        total += samples_to_seconds(utt.n_samples) + cfg.gap_ms / 1000
        lines.append(f"{who}: {text}")
        i += 1
    return parse_script("\n".join(lines))


def _voice(name: str) -> Any:
    from avatar.spec import Cast

    return Cast.builtin().resolve(name).voice


def bench_render(
    *, seconds: float = 60.0, width_px: int = 512, height_px: int = 512, preset: str = "ultrafast",
    voice_backend: str = "natural", speech: SpeechEngine | None = None, director: bool = True,
) -> dict[str, Any]:
    """Render a two-character scene of ``seconds`` and report wall time per stage.

    ``voice_backend``: "natural" (the cast's Kokoro voices, the render default) or "espeak"."""
    # No chunk cache unless ``speech`` brings one: the scene repeats its dialogue, and a render
    # should pay for every line it speaks (``bench voice`` also times a cached re-render).
    speech = speech or offline_speech(
        "espeak" if voice_backend == "espeak" else "natural", natural_config=NaturalConfig(cache_audio_s=0)
    )
    speech.warm_up()  # the model's load is a once-per-process cost, reported by `bench voice`
    script = bench_script(seconds, speech)
    timer = StageTimer()
    config = RenderConfig(
        width_px=width_px, height_px=height_px, encoding_preset=preset, voice_backend=voice_backend, director=director
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = render_script(script, Path(tmp) / "bench.mp4", config=config, speech=speech, timer=timer)
        wall = time.perf_counter() - t0
        size = (Path(tmp) / "bench.mp4").stat().st_size
    media = result.n_samples / SAMPLE_RATE_HZ
    stages = dict(timer.seconds)
    return {
        "bench": "render",
        "characters": 2,
        "director": director,
        "shots": len(result.shots),
        "size": f"{width_px}x{height_px}",
        "encoding_preset": preset,
        "voice_backend": voice_backend if speech.natural_error is None else f"espeak ({speech.natural_error})",
        "frames": result.n_frames,
        "lines": len(result.events),
        "media_seconds": round(media, 3),
        "wall_seconds": round(wall, 3),
        "realtime_factor": round(media / wall, 2),
        "ms_per_frame": {k: round(1000 * v / result.n_frames, 3) for k, v in stages.items()}
        | {"total": round(1000 * wall / result.n_frames, 3)},
        "mp4_bytes": size,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
