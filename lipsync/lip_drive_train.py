"""Training ``LipNet`` (``lipsync.lip_drive``): speech → lip opening, on speech whose phonemes are timed.

Data (all synthesised here, nothing downloaded):
- Kokoro's natural English voices (``lipsync.kokoro`` via ``SpeechEngine``: American and British,
  female and male, speed 0.85-1.2), random sentences; the phoneme events come from the model's
  own per-token durations. Six voices are held out (never trained on) to measure generalisation
  to voices the network has not heard.
- espeak-ng in seven languages with many voices (``lipsync.audio_mouth_train.make_example``).
Every utterance gets silence around it, a spectral tilt, gain, reverberation and noise as the
shape network's data does. Inputs are exactly what the live trackers compute (``analyse``).

Target per 10 ms hop: the viseme track's lip opening (``lipsync.lip_drive.LIP_OPEN`` of the
track of ``lipsync.mouth_track``, whose habits give
lips closing ahead of p/b/m and no flicker), moved ``target_lead_ms`` earlier (lips lead the
sound they make by 40-100 ms; the lower end, so a live lookahead can see it) and smoothed with
a ``smooth_hops`` Gaussian (coarticulation: the jaw cannot jump). Loss: mean squared error.

Deterministic (seeded generators, one torch thread); the data takes most of the time::

    python -m lipsync.lip_drive_train --out lipsync/weights/lip_drive.safetensors
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lipsync.audio_mouth import AudioMouthConfig, analyse
from lipsync.audio_mouth_net import ShapeNet
from lipsync.audio_mouth_train import _EN_TEXT, _fft_filter, _noise, _room_response, make_example
from lipsync.audio_mouth_train import TrainConfig as ShapeTrainConfig
from lipsync.features import HOP_SAMPLES, Decimator
from lipsync.lip_drive import DEFAULT_LIP_WEIGHTS, LIP_OPEN_BY_INDEX, LipNet, LipNetConfig, windows
from lipsync.mouth_track import MouthTrackConfig, mouth_track
from lipsync.speech import SpeechEngine
from lipsync.vad import SileroVad
from lipsync.voices import VoiceSpec

logger = logging.getLogger(__name__)

# audio_mouth_train's English words, then whole sentences (natural voices read sentences).
_TEXT = _EN_TEXT + (
    " after all it was only a small mistake and nobody noticed until the evening news came on "
    "she bought a pair of shoes at the market and walked back along the beach at sunset "
    "please remember to feed the dog before you leave for work in the morning "
    "the train was late again so we waited on the platform drinking hot chocolate "
    "my grandmother used to bake apple pie every sunday for the whole family "
    "could you tell me the way to the nearest post office or a good restaurant "
    "they are planning a trip to the mountains next summer with all of their cousins "
    "he opened the box slowly and found an old photograph of his parents inside "
    "everybody laughed when the little boy fell asleep in the middle of the party "
    "we talked about politics art weather football food movies and our plans for the future"
)
_WORDS = _TEXT.split()
US_VOICES = (
    "af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole", "af_nova",
    "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam",
    "am_michael", "am_onyx", "am_puck", "am_santa",
)
GB_VOICES = ("bf_alice", "bf_emma", "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis")
HELD_OUT_VOICES = ("af_sky", "af_river", "am_echo", "am_onyx", "bf_lily", "bm_lewis")


@dataclass(frozen=True, slots=True)
class LipTrainConfig:
    seed: int = 4321
    n_kokoro: int = 200
    n_kokoro_eval: int = 42
    n_espeak: int = 160
    epochs: int = 12
    batch_size: int = 512
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    clean_share: float = 0.3
    reverb_share: float = 0.4
    snr_db: tuple[float, float] = (5.0, 40.0)
    rt60_s: tuple[float, float] = (0.15, 0.6)
    gain_db: tuple[float, float] = (-25.0, 0.0)
    smooth_hops: float = 3.0
    net: LipNetConfig = LipNetConfig()


def random_sentence(rng: np.random.Generator) -> str:
    if rng.random() < 0.5:  # a run of a phrase from the text, so real word order is heard too
        start = int(rng.integers(0, len(_WORDS) - 12))
        words = _WORDS[start : start + int(rng.integers(5, 12))]
    else:
        words = [str(rng.choice(_WORDS)) for _ in range(int(rng.integers(4, 11)))]
    return " ".join(words).capitalize() + str(rng.choice([".", "?", "!", ","]))


def augment(x: np.ndarray, rng: np.random.Generator, config: LipTrainConfig) -> np.ndarray:
    """Tilt, reverberation, gain and noise on 16 kHz audio (as ``audio_mouth_train`` does)."""
    f = np.fft.rfftfreq(x.shape[0], 1 / 16_000)
    x = _fft_filter(x, (np.maximum(f, 100.0) / 1000.0) ** rng.uniform(-0.5, 0.5))
    if rng.random() < config.reverb_share:
        x = np.convolve(x, _room_response(rng, rng.uniform(*config.rt60_s)))[: x.shape[0]].astype(np.float32)
    x *= 10 ** (rng.uniform(*config.gain_db) / 20) * 0.3 / max(1e-4, float(np.sqrt(np.mean(x**2))))
    if rng.random() >= config.clean_share:
        noise = _noise(rng, x.shape[0])
        rms = float(np.sqrt(np.mean(x**2)))
        noise *= rms / max(1e-9, float(np.sqrt(np.mean(noise**2)))) * 10 ** (-rng.uniform(*config.snr_db) / 20)
        x = x + noise
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def kokoro_example(
    speech: SpeechEngine, rng: np.random.Generator, voice_id: str, config: LipTrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One natural-voice utterance: (16 kHz audio, per-hop viseme track (n, 15))."""
    language = "en-us" if voice_id[0] == "a" else "en"
    voice = VoiceSpec(language=language, backend="kokoro", voice_id=voice_id, speed=round(float(rng.uniform(0.85, 1.2)), 2))
    utt = speech.synthesize(random_sentence(rng), voice)
    if utt.backend != "kokoro":
        raise RuntimeError(f"the natural voice did not speak ({speech.natural_error}); run ./dev to install it")
    lead = int(rng.uniform(0.1, 0.6) * 48_000) // HOP_SAMPLES * HOP_SAMPLES
    tail = int(rng.uniform(0.2, 0.6) * 48_000)
    pcm = np.concatenate([np.zeros(lead, np.float32), utt.pcm.astype(np.float32) / 32768.0, np.zeros(tail, np.float32)])
    decimator = Decimator()
    x = decimator.push(pcm)
    shift = lead + decimator.delay_samples_48k
    hops = x.shape[0] // HOP_SAMPLES
    events = [(p.phoneme, p.start_sample + shift) for p in utt.phonemes]
    track = mouth_track(events, hops * HOP_SAMPLES * 3, config=MouthTrackConfig(frame_samples=HOP_SAMPLES * 3))
    return augment(x, rng, config), track[:hops].astype(np.float32)


def lip_target(jaw: np.ndarray, config: LipTrainConfig) -> np.ndarray:
    """The raw per-hop lip-opening track → the training target: moved earlier by the lead, smoothed."""
    lead = int(round(config.net.target_lead_ms / 10.0))
    moved = np.concatenate([jaw[lead:], np.full(lead, jaw[-1] if jaw.size else 0.0, np.float32)])
    if config.smooth_hops <= 0:
        return moved
    r = int(np.ceil(3 * config.smooth_hops))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / config.smooth_hops) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(moved, r, mode="edge"), k, mode="valid").astype(np.float32)


def build_data(config: LipTrainConfig, *, speech: SpeechEngine, vad: SileroVad) -> dict[str, list[np.ndarray]]:
    """Per utterance: hop inputs, viseme track, voice gate, loudness openness, which set (0 train, 1 held out)."""
    rng = np.random.default_rng(config.seed)
    train_voices = [v for v in US_VOICES + GB_VOICES if v not in HELD_OUT_VOICES]
    jobs: list[tuple[str, str, int]] = []
    jobs += [("kokoro", train_voices[i % len(train_voices)], 0) for i in range(config.n_kokoro)]
    jobs += [("kokoro", HELD_OUT_VOICES[i % len(HELD_OUT_VOICES)], 1) for i in range(config.n_kokoro_eval)]
    jobs += [("espeak", "", 0) for _ in range(config.n_espeak)]
    shape_cfg = ShapeTrainConfig()
    data: dict[str, list[np.ndarray]] = {"feats": [], "visemes": [], "gate": [], "held": [], "natural": [], "openness": []}
    t0 = time.perf_counter()
    for i, (kind, voice_id, held) in enumerate(jobs):
        if kind == "kokoro":
            x, track = kokoro_example(speech, rng, voice_id, config)
        else:
            x, track = make_example(speech, rng, shape_cfg)
        feats, openness, gate = analyse(x, vad=vad, config=AudioMouthConfig())
        m = min(feats.shape[0], track.shape[0])
        data["feats"].append(feats[:m])
        data["visemes"].append(track[:m])
        data["gate"].append(gate[:m])
        data["openness"].append(openness[:m])
        data["held"].append(np.array(held))
        data["natural"].append(np.array(kind == "kokoro"))
        if (i + 1) % 20 == 0:
            logger.info("data: %d/%d utterances in %.0f s", i + 1, len(jobs), time.perf_counter() - t0)
    return data


def save_data(data: dict[str, list[np.ndarray]], path: Path) -> None:
    arrays = {f"{k}_{i}": v for k, vs in data.items() for i, v in enumerate(vs)}
    np.savez_compressed(path, n=np.array(len(data["feats"])), **arrays)


def load_data(path: Path) -> dict[str, list[np.ndarray]]:
    with np.load(path) as z:
        n = int(z["n"])
        return {k: [z[f"{k}_{i}"] for i in range(n)] for k in ("feats", "visemes", "gate", "held", "natural", "openness")}


def stack(data: dict[str, list[np.ndarray]], config: LipTrainConfig, held: bool) -> dict[str, np.ndarray]:
    net = config.net
    xs, ys, raws, gates, opens, utt = [], [], [], [], [], []
    for i, (f, v, g, h, o) in enumerate(zip(data["feats"], data["visemes"], data["gate"], data["held"], data["openness"], strict=True)):
        if bool(h) != held:
            continue
        j = (v @ LIP_OPEN_BY_INDEX).astype(np.float32)
        xs.append(windows(f, context_hops=net.context_hops, lookahead_hops=net.lookahead_hops))
        ys.append(lip_target(j, config))
        raws.append(j)
        gates.append(g)
        opens.append(o)
        utt.append(np.full(f.shape[0], i))
    return {"x": np.concatenate(xs), "y": np.concatenate(ys), "raw": np.concatenate(raws),
            "gate": np.concatenate(gates), "openness": np.concatenate(opens), "utt": np.concatenate(utt)}


class LipMLP(torch.nn.Module):
    """The training twin of ``LipNet`` (same layers, same names in the weights file)."""

    def __init__(self, config: LipNetConfig) -> None:
        super().__init__()
        sizes = [config.n_inputs, *config.hidden, 1]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_inputs) → (B,) logits
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x[:, 0]


def fit(config: LipTrainConfig, data: dict[str, list[np.ndarray]]) -> tuple[LipMLP, dict[str, float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        train_set = stack(data, config, held=False)
        torch.manual_seed(config.seed)
        model = LipMLP(config.net)
        opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        x, y = torch.from_numpy(train_set["x"]), torch.from_numpy(train_set["y"])
        gen = torch.Generator().manual_seed(config.seed)
        per_epoch = x.shape[0] // config.batch_size
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.learning_rate, total_steps=config.epochs * per_epoch)
        model.train()
        for epoch in range(config.epochs):
            order = torch.randperm(x.shape[0], generator=gen)
            total = 0.0
            for b in range(per_epoch):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                loss = torch.mean((torch.sigmoid(model(x[idx])) - y[idx]) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            logger.info("epoch %d: mse %.4f", epoch, total / max(1, per_epoch))
        model.eval()
        metrics = {"train_hops": int(x.shape[0]), "fit_s": round(time.perf_counter() - t0, 1)}
        return model, metrics
    finally:
        torch.set_num_threads(threads)


def _frames(v: np.ndarray) -> np.ndarray:
    n = v.shape[0] // 4 * 4
    return v[:n].reshape(-1, 4).mean(axis=1)


def _best_lag_r(a: np.ndarray, b: np.ndarray, max_lag: int = 4) -> tuple[float, int]:
    best = (-2.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[: b.size - lag]) if lag >= 0 else (a[:lag], b[-lag:])
        if x.size > 2 and x.std() > 1e-9 and y.std() > 1e-9:
            best = max(best, (float(np.corrcoef(x, y)[0, 1]), lag))
    return round(best[0], 3), best[1]


def evaluate(jaw_pred: np.ndarray, held: dict[str, np.ndarray], shape: ShapeNet | None = None) -> dict[str, object]:
    """On the held-out voices, per 40 ms frame: the predicted opening (gated) against the true
    lip-opening track (raw, without lead or smoothing), Pearson r at the best lag (+ = prediction late),
    next to the shape network's expected opening and the live estimator's loudness openness."""
    gate = held["gate"].astype(np.float32)
    truth = _frames(held["raw"])
    out: dict[str, object] = {}
    out["lip_net_r_lag"] = _best_lag_r(_frames(jaw_pred * gate), truth)
    if shape is not None:
        w = windows_for_shape(held, shape)
        expected = shape(w) @ LIP_OPEN_BY_INDEX
        out["shape_expected_opening_r_lag"] = _best_lag_r(_frames(expected * gate), truth)
    if "openness" in held:
        out["loudness_openness_r_lag"] = _best_lag_r(_frames(held["openness"] * gate), truth)
    return out


def windows_for_shape(held: dict[str, np.ndarray], shape: ShapeNet) -> np.ndarray:
    return windows(held["feats"], context_hops=shape.config.context_hops, lookahead_hops=shape.config.lookahead_hops)


def save(model: LipMLP, config: LipTrainConfig, metrics: dict[str, object], path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    meta = LipNet.metadata(config.net)
    meta["training"] = json.dumps({**{k: v for k, v in asdict(config).items() if k != "net"}, "metrics": metrics})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def main(argv: list[str] | None = None) -> int:
    defaults = LipTrainConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_LIP_WEIGHTS)
    parser.add_argument("--data", type=Path, default=None, help="keep the synthesised data here (npz) and reuse it")
    parser.add_argument("--kokoro", type=int, default=defaults.n_kokoro, help="natural-voice training utterances")
    parser.add_argument("--espeak", type=int, default=defaults.n_espeak, help="espeak-ng training utterances")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = LipTrainConfig(seed=args.seed, n_kokoro=args.kokoro, n_espeak=args.espeak, epochs=args.epochs)
    t0 = time.perf_counter()
    if args.data is not None and args.data.is_file():
        data = load_data(args.data)
    else:
        torch.set_num_threads(1)
        data = build_data(config, speech=SpeechEngine(), vad=SileroVad.load())
        if args.data is not None:
            save_data(data, args.data)
    model, metrics = fit(config, data)
    held = stack(data, config, held=True)
    held["feats"] = np.concatenate([f for f, h in zip(data["feats"], data["held"], strict=True) if bool(h)])
    with torch.no_grad():
        pred = torch.sigmoid(model(torch.from_numpy(held["x"]))).numpy()
    metrics.update(evaluate(pred, held, ShapeNet.load()))
    metrics["total_s"] = round(time.perf_counter() - t0, 1)
    save(model, config, metrics, args.out)
    print(json.dumps({"weights": str(args.out), **metrics}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
