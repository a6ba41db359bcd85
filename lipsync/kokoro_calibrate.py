"""Measure the fixed activation ranges of Kokoro's static-int8 convolutions, and check the result.

    python -m lipsync.kokoro_calibrate --out lipsync/weights/kokoro_int8_calibration.safetensors
    python -m lipsync.kokoro_calibrate --check      # held-out lines: quality and speed, JSON

Calibration runs the shipped model with every convolution rebuilt in float on twelve lines of
this project's own (American and British English, Mandarin), each in two voices, and records for
each static convolution (``lipsync.kokoro_graph.STATIC_CONVS``):

- its input's range: the largest 99.9th percentile of |x| over the calls, capped at the observed
  minimum and maximum (clipping the rarest 0.1% gave a closer spectrum than the full range);
  for the decoder's 40-80 Hz blocks, instead, each input channel's typical size (as below), the
  scaled input's range being [-1, 1];
- each output channel's typical size: the largest 99.99th percentile of that channel's |y|.

``--check`` speaks five other lines in three voices each (none used above), with the model in
float, as shipped, and rebuilt (``lipsync.kokoro_graph.rewrite`` and ``streamline``), and prints
the mean log-mel distance of each to its float twin (dB over the bins within 60 dB of the line's
loudest; ``CHECK_PAIRS``), whether the durations are identical, and seconds per second of audio
on one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from lipsync.kokoro_graph import (
    DEFAULT_CALIBRATION,
    ConvRanges,
    KokoroCalibration,
    add_outputs,
    find_chains,
    rewrite,
    streamline,
)

CALIBRATION_LINES: tuple[tuple[str, str], ...] = (
    ("en-us", "Well, I never thought I'd see the day you came back home."),
    ("en-us", "Put the kettle on, we have a lot to talk about tonight!"),
    ("en-us", "Seventy-three boxes arrived at the station on Tuesday morning."),
    ("en-us", "Why would anyone leave the door wide open in this weather?"),
    ("en", "The rain in the valley kept falling until the river rose."),
    ("en", "Honestly, darling, you worry far too much about nothing."),
    ("cmn", "今天天气很好，我们去公园散步吧。"),
    ("cmn", "你为什么这么晚才回来？"),
    ("en-us", "Stop! Don't touch that switch, it's connected to the main power line."),
    ("en-us", "Hmm... maybe. I'm not sure, to be honest with you."),
    ("en", "Shh, quiet now; the baby's finally asleep."),
    ("en-us", "Zebras, jaguars and six yellow wolves jumped over the fence."),
)
CHECK_LINES: tuple[tuple[str, str], ...] = (
    ("en-us", "The quick brown fox jumps over the lazy dog, and then it runs away fast."),
    ("en", "I shall meet you by the old bridge at half past nine."),
    ("cmn", "我明天早上八点在车站等你。"),
    ("en-us", "Oh really? That's absolutely wonderful news, congratulations!"),
    ("en-us", "Sixty thousand people watched the final match last night."),
)
X_QUANTILE = 0.999
Y_QUANTILE = 0.9999


def _voices(language: str) -> list[str]:
    from lipsync.kokoro import VOICE_SHA256
    from lipsync.voices import NATURAL_ACCENTS

    return sorted(v for v in VOICE_SHA256 if v[0] == NATURAL_ACCENTS[language])


def _token_lines(lines: tuple[tuple[str, str], ...]) -> list[tuple[str, list[int]]]:
    from lipsync.espeak import Espeak
    from lipsync.g2p import Phonemizer
    from lipsync.kokoro import VOCAB

    phonemizer = Phonemizer(espeak=Espeak())
    out = []
    for language, text in lines:
        phonemes = " ".join(c.phonemes for c in phonemizer.clauses(text, language))
        out.append((language, [VOCAB[ch] for ch in phonemes if ch in VOCAB]))
    return out


def _session(model, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])


def _feeds(tokens: list[int], voice: str, voices_dir: Path) -> dict[str, np.ndarray]:
    from lipsync.kokoro import read_voice

    style = read_voice(voices_dir, voice)[len(tokens) - 1].reshape(1, -1)
    return {
        "tokens": np.array([[0, *tokens, 0]], np.int64),
        "style": style,
        "speed": np.array([1.0], np.float32),
    }


def calibrate(blob: bytes, voices_dir: Path, *, threads: int = 2) -> KokoroCalibration:
    import onnx

    model = onnx.load_from_string(blob)
    chains = [c for c in find_chains(model) if c.static]
    rewrite(model, None)
    probes = sorted({c.x for c in chains} | {c.y for c in chains})
    add_outputs(model, probes)
    session = _session(model, threads)
    names = [o.name for o in session.get_outputs()]
    lo = {n: 0.0 for n in probes}
    hi = {n: 0.0 for n in probes}
    x_abs = {n: 0.0 for n in probes}
    y_channel: dict[str, np.ndarray] = {}
    for i, (language, tokens) in enumerate(_token_lines(CALIBRATION_LINES)):
        voices = _voices(language)
        for voice in (voices[i % len(voices)], voices[(i * 7 + 3) % len(voices)]):
            for name, value in zip(names, session.run(None, _feeds(tokens, voice, voices_dir)), strict=True):
                if name not in lo:
                    continue
                lo[name] = min(lo[name], float(value.min()))
                hi[name] = max(hi[name], float(value.max()))
                flat = np.abs(value.reshape(value.shape[1], -1))
                x_abs[name] = max(x_abs[name], float(np.quantile(flat, X_QUANTILE)))
                per_channel = np.quantile(flat, Y_QUANTILE, axis=1)
                y_channel[name] = np.maximum(y_channel.get(name, per_channel), per_channel)
        print(f"calibration line {i + 1}/{len(CALIBRATION_LINES)}", file=sys.stderr, flush=True)
    convs = {
        c.name: ConvRanges(
            x_lo=-1.0 if c.scales_inputs else max(lo[c.x], -x_abs[c.x]),
            x_hi=1.0 if c.scales_inputs else min(hi[c.x], x_abs[c.x]),
            y_channel=np.maximum(y_channel[c.y], 1e-6).astype(np.float32),
            x_channel=np.maximum(y_channel[c.x], 1e-6).astype(np.float32) if c.scales_inputs else None,
        )
        for c in chains
    }
    return KokoroCalibration(model_sha256=hashlib.sha256(blob).hexdigest(), convs=convs)


def log_mel(audio: np.ndarray, rate: int = 24_000, n_fft: int = 1024, hop: int = 256, bands: int = 80) -> np.ndarray:
    """(bands, frames) power in dB on a mel scale from 40 Hz to 11 kHz."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(40), mel(11_000), bands + 2) / 2595) - 1)
    bank = np.zeros((bands, freqs.size))
    for b in range(bands):
        left, centre, right = edges[b : b + 3]
        bank[b] = np.clip(np.minimum((freqs - left) / (centre - left), (right - freqs) / (right - centre)), 0, None)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, n_fft // 2), n_fft)[::hop] * np.hanning(n_fft)
    return 10 * np.log10(bank @ (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T + 1e-8)


# (graph, reference): each graph's log-mel distance is measured to its reference's output.
CHECK_PAIRS = (
    ("shipped", "float"),
    ("static_int8", "float_streamlined"),  # the int8 rounding alone
    ("static_int8", "float"),
    ("float_streamlined", "float"),  # the STFT's rounding-noise phase signs alone
)


def check(blob: bytes, voices_dir: Path, calibration: KokoroCalibration) -> dict:
    """Float, shipped and rebuilt graphs on the held-out lines: spectrum distance, durations, speed.

    "float" is the shipped graph with every convolution in float; "float_streamlined" that graph
    after ``streamline`` too, the float twin of the rebuilt one."""
    import onnx

    from lipsync.kokoro import _DURATIONS_TENSOR

    graphs = {}
    for kind in ("float", "float_streamlined", "shipped", "static_int8"):
        model = onnx.load_from_string(blob)
        if kind != "shipped":
            rewrite(model, calibration if kind == "static_int8" else None)
        if kind in ("float_streamlined", "static_int8"):
            streamline(model)
        add_outputs(model, [_DURATIONS_TENSOR])
        graphs[kind] = _session(model, 1)
    distance: dict[str, list[float]] = {f"{a}_to_{b}": [] for a, b in CHECK_PAIRS}
    same_durations = {k: 0 for k in graphs}
    seconds = {k: 0.0 for k in graphs}
    audio_s = 0.0
    calls = 0
    for i, (language, tokens) in enumerate(_token_lines(CHECK_LINES)):
        for voice in _voices(language)[i % 3 :: 5][:3]:
            feeds = _feeds(tokens, voice, voices_dir)
            outs = {}
            for kind, session in graphs.items():
                started = time.perf_counter()
                outs[kind] = session.run(None, feeds)
                seconds[kind] += time.perf_counter() - started
            spectra = {kind: log_mel(audio.reshape(-1)) for kind, (audio, _) in outs.items()}
            for kind, reference in CHECK_PAIRS:
                a, b = spectra[kind], spectra[reference]
                loud = b > b.max() - 60
                distance[f"{kind}_to_{reference}"].append(
                    float(np.abs(a - b)[loud].mean()) if a.shape == b.shape else float("inf")
                )
            for kind, (_, durations) in outs.items():
                same_durations[kind] += int(np.array_equal(np.rint(durations), np.rint(outs["float"][1])))
            audio_s += outs["float"][0].size / 24_000
            calls += 1
    return {
        "calls": calls,
        "audio_s": round(audio_s, 2),
        "log_mel_distance_db": {k: round(float(np.mean(v)), 3) for k, v in distance.items()},
        "log_mel_distance_db_max": {k: round(float(np.max(v)), 3) for k, v in distance.items()},
        "durations_identical_to_float": {k: f"{v}/{calls}" for k, v in same_durations.items()},
        "seconds_per_audio_second_1_thread": {k: round(v / audio_s, 3) for k, v in seconds.items()},
    }


def main(argv: list[str] | None = None) -> None:
    from lipsync.kokoro import KokoroConfig, read_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the calibration here")
    parser.add_argument("--check", action="store_true", help="compare float, shipped and rebuilt graphs (JSON)")
    args = parser.parse_args(argv)
    config = KokoroConfig()
    blob = read_model(config)
    if args.out is not None:
        calibration = calibrate(blob, config.voices_path)
        calibration.save(args.out)
        print(f"wrote {args.out} ({len(calibration.convs)} convolutions)", file=sys.stderr)
    if args.check:
        calibration = KokoroCalibration.load(args.out or DEFAULT_CALIBRATION)
        print(json.dumps(check(blob, config.voices_path, calibration), indent=1))


if __name__ == "__main__":
    main()
