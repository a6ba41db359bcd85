"""Training the audio → mouth shape network on espeak-ng speech whose visemes are known.

Data: random sentences in seven languages (English, Mandarin, Korean, Japanese, Spanish,
French, German), many espeak-ng voices (variants m1-m7 / f1-f5, pitch, range, rate); each
utterance gets silence around it, a random spectral tilt and gain, reverberation (synthetic
room responses, RT60 0.15-0.8 s) and noise (white, pink, brown, mains hum; 0-40 dB SNR).
Targets: the phoneme → viseme track (``lipsync.mouth_track``) at 10 ms hops, aligned with the
audio sample for sample. Inputs: exactly what ``MouthTracker`` computes live (``analyse``).

Deterministic (seeded numpy and torch generators, one thread); a minute or two on a CPU::

    python -m lipsync.audio_mouth_train --out lipsync/weights/audio_mouth.safetensors
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

from lipsync.audio_mouth import AudioMouthConfig, analyse, ladder_weights, shaped_weights
from lipsync.audio_mouth_net import DEFAULT_WEIGHTS, ShapeNet, ShapeNetConfig
from lipsync.features import HOP_SAMPLES, Decimator
from lipsync.mouth_track import MouthTrackConfig, mouth_track
from lipsync.speech import SpeechEngine
from lipsync.vad import SileroVad
from lipsync.visemes import JAW_OPEN, MOUTH_SHAPES, N_VISEMES, SIL, VISEMES
from lipsync.voices import FEMALE_VARIANTS, MALE_VARIANTS, VoiceSpec

logger = logging.getLogger(__name__)

_EN_TEXT = (
    "the a where were you last night i waited for hours by harbour boats people move slowly "
    "open window bright morning coffee cold tea warm rain over city she told him never again "
    "we should go home now quick brown fox jumps lazy dog my father works in old shop today "
    "tomorrow maybe yes no please thank very much how about that really think so because "
    "music plays loud room full of friends laughing eating bread cheese apples oranges blue "
    "green river mountain valley school teacher children book pen paper table chair window "
    "phone call mother brother sister fish bird cat mouse cheap jump wave pull push bubble"
)
_EN_WORDS = _EN_TEXT.split()
_HANZI = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
    "对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头"
    "面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向"
    "广州市房地产中介协会分析"
)
_KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわん"
_LATIN_TEXT = {
    "es": "hola como estas amigo donde vamos ahora mismo quiero comer pan con queso gracias buenos dias",
    "fr": "bonjour mon ami ou allons nous maintenant je veux manger du pain avec fromage merci beaucoup",
    "de": "guten tag mein freund wohin gehen wir jetzt ich will brot mit kaese essen danke sehr schoen",
}
_LATIN = {language: text.split() for language, text in _LATIN_TEXT.items()}
LANGUAGES = ("en-us", "cmn", "ko", "ja", "es", "fr", "de")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    seed: int = 1234
    n_utterances: int = 420
    n_eval_utterances: int = 60
    epochs: int = 8
    batch_size: int = 512
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    clean_share: float = 0.2
    reverb_share: float = 0.5
    snr_db: tuple[float, float] = (0.0, 40.0)
    rt60_s: tuple[float, float] = (0.15, 0.8)
    gain_db: tuple[float, float] = (-30.0, 0.0)
    net: ShapeNetConfig = ShapeNetConfig()


# -- data ----------------------------------------------------------------------------------------


def random_text(rng: np.random.Generator, language: str) -> str:
    if language == "en-us":
        words = [str(rng.choice(_EN_WORDS)) for _ in range(int(rng.integers(4, 14)))]
        return " ".join(words).capitalize() + str(rng.choice([".", "?", "!", ","]))
    if language == "cmn":
        return "".join(str(rng.choice(list(_HANZI))) for _ in range(int(rng.integers(5, 16)))) + "。"
    if language == "ja":
        return "".join(str(rng.choice(list(_KANA))) for _ in range(int(rng.integers(6, 18)))) + "。"
    if language == "ko":
        words = []
        for _ in range(int(rng.integers(3, 8))):
            syl = [chr(0xAC00 + (int(rng.integers(19)) * 21 + int(rng.integers(21))) * 28 + int(rng.choice([0, 0, 4, 8, 16])))
                   for _ in range(int(rng.integers(1, 4)))]
            words.append("".join(syl))
        return " ".join(words) + "."
    words = [str(rng.choice(_LATIN[language])) for _ in range(int(rng.integers(4, 12)))]
    return " ".join(words) + "."


def random_voice(rng: np.random.Generator, language: str) -> VoiceSpec:
    female = bool(rng.integers(2))
    variants = FEMALE_VARIANTS if female else MALE_VARIANTS
    return VoiceSpec(
        language=language,
        variant=str(rng.choice(variants)),
        pitch=int(rng.integers(55, 90) if female else rng.integers(15, 60)),
        pitch_range=int(rng.integers(15, 90)),
        rate_wpm=int(rng.integers(110, 280)),
    )


def _room_response(rng: np.random.Generator, rt60_s: float, rate_hz: int = 16_000) -> np.ndarray:
    n = int(rt60_s * rate_hz)
    t = np.arange(n) / rate_hz
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    ir[0] = 0.0
    direct = np.zeros(n)
    direct[0] = 1.0
    wet = rng.uniform(0.2, 0.8)
    return (direct + wet * ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


def _noise(rng: np.random.Generator, n: int, rate_hz: int = 16_000) -> np.ndarray:
    kind = rng.choice(["white", "pink", "brown", "hum"])
    if kind == "hum":
        t = np.arange(n) / rate_hz
        f0 = float(rng.choice([50.0, 60.0]))
        x = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in (1, 2, 3, 5))
        return np.asarray(x + 0.05 * rng.standard_normal(n), np.float32)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / rate_hz), 20.0)
    slope = {"white": 0.0, "pink": 0.5, "brown": 1.0}[str(kind)]
    return np.fft.irfft(spec / f**slope, n).astype(np.float32)


def _fft_filter(x: np.ndarray, gain: np.ndarray) -> np.ndarray:
    return np.fft.irfft(np.fft.rfft(x) * gain, x.shape[0]).astype(np.float32)


def make_example(
    speech: SpeechEngine, rng: np.random.Generator, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented utterance: (16 kHz float32 audio, per-hop viseme targets (n_hops, 15))."""
    language = str(rng.choice(LANGUAGES))
    utt = speech.synthesize(random_text(rng, language), random_voice(rng, language))
    lead = int(rng.uniform(0.1, 0.7) * 48_000) // HOP_SAMPLES * HOP_SAMPLES
    tail = int(rng.uniform(0.2, 0.7) * 48_000)
    pcm = np.concatenate([np.zeros(lead, np.float32), utt.pcm.astype(np.float32) / 32768.0, np.zeros(tail, np.float32)])
    decimator = Decimator()
    x = decimator.push(pcm)
    # Analysis hop h covers 48 kHz samples [480 h - delay, 480 h + 480 - delay): shift the events.
    shift = lead + decimator.delay_samples_48k
    hops = x.shape[0] // HOP_SAMPLES
    phonemes = [(p.phoneme, p.start_sample + shift) for p in utt.phonemes]
    targets = mouth_track(phonemes, hops * HOP_SAMPLES * 3, config=MouthTrackConfig(frame_samples=HOP_SAMPLES * 3))
    f = np.fft.rfftfreq(x.shape[0], 1 / 16_000)
    tilt = rng.uniform(-0.6, 0.6)
    x = _fft_filter(x, (np.maximum(f, 100.0) / 1000.0) ** tilt)
    if rng.random() < config.reverb_share:
        x = np.convolve(x, _room_response(rng, rng.uniform(*config.rt60_s)))[: x.shape[0]].astype(np.float32)
    x *= 10 ** (rng.uniform(*config.gain_db) / 20) * 0.3 / max(1e-4, float(np.sqrt(np.mean(x**2))))
    if rng.random() >= config.clean_share:
        noise = _noise(rng, x.shape[0])
        speech_rms = float(np.sqrt(np.mean(x**2)))
        noise *= speech_rms / max(1e-9, float(np.sqrt(np.mean(noise**2)))) * 10 ** (-rng.uniform(*config.snr_db) / 20)
        x = x + noise
    return np.clip(x, -1.0, 1.0).astype(np.float32), targets[:hops].astype(np.float32)


def windows(feats: np.ndarray, net: ShapeNetConfig) -> np.ndarray:
    """(n, d) per-hop inputs → (n, window * d): zeros before the start, as the live tracker pads;
    the end is padded by repeating silence-like zeros too."""
    d = feats.shape[1]
    padded = np.concatenate([np.zeros((net.context_hops, d), np.float32), feats, np.zeros((net.lookahead_hops, d), np.float32)])
    idx = np.arange(feats.shape[0])[:, None] + np.arange(net.window_hops)[None, :]
    return padded[idx].reshape(feats.shape[0], net.window_hops * d)


def build_set(
    speech: SpeechEngine, vad: SileroVad, n: int, rng: np.random.Generator, config: TrainConfig
) -> dict[str, np.ndarray]:
    xs, ys, opens, gates, utt = [], [], [], [], []
    for i in range(n):
        x, y = make_example(speech, rng, config)
        feats, openness, gate = analyse(x, vad=vad, config=AudioMouthConfig())
        m = min(feats.shape[0], y.shape[0])
        xs.append(windows(feats[:m], config.net))
        ys.append(y[:m])
        opens.append(openness[:m])
        gates.append(gate[:m])
        utt.append(np.full(m, i))
    return {
        "x": np.concatenate(xs), "y": np.concatenate(ys), "openness": np.concatenate(opens),
        "gate": np.concatenate(gates), "utt": np.concatenate(utt),
    }


# -- model ---------------------------------------------------------------------------------------


class ShapeMLP(torch.nn.Module):
    """The training twin of ``ShapeNet`` (same layers, same names in the weights file)."""

    def __init__(self, config: ShapeNetConfig) -> None:
        super().__init__()
        sizes = [config.n_inputs, *config.hidden, N_VISEMES]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_inputs) → (B, 15) logits
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def train(config: TrainConfig, *, speech: SpeechEngine | None = None, vad: SileroVad | None = None) -> tuple[ShapeMLP, dict[str, float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic and kind to a shared machine; restored below
    try:
        speech = speech or SpeechEngine()
        vad = vad or SileroVad.load()
        rng = np.random.default_rng(config.seed)
        t0 = time.perf_counter()
        data = build_set(speech, vad, config.n_utterances, rng, config)
        held = build_set(speech, vad, config.n_eval_utterances, np.random.default_rng(config.seed + 1), config)
        logger.info("data: %d train hops, %d eval hops in %.1f s", data["x"].shape[0], held["x"].shape[0], time.perf_counter() - t0)
        torch.manual_seed(config.seed)
        model = ShapeMLP(config.net)
        opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
        gen = torch.Generator().manual_seed(config.seed)
        steps = config.epochs * (x.shape[0] // config.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.learning_rate, total_steps=steps)
        model.train()
        step = 0
        for epoch in range(config.epochs):
            order = torch.randperm(x.shape[0], generator=gen)
            total = 0.0
            for b in range(x.shape[0] // config.batch_size):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                logits = model(x[idx])
                loss = -(y[idx] * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
                step += 1
            logger.info("epoch %d: loss %.3f", epoch, total / max(1, x.shape[0] // config.batch_size))
        model.eval()
        with torch.no_grad():
            probs = torch.softmax(model(torch.from_numpy(held["x"])), dim=1).numpy()
        metrics = evaluate(probs, held)
        metrics["train_s"] = round(time.perf_counter() - t0, 1)
        metrics["train_hops"] = int(x.shape[0])
        return model, metrics
    finally:
        torch.set_num_threads(threads)


def evaluate(probs: np.ndarray, held: dict[str, np.ndarray]) -> dict[str, float]:
    """On held-out augmented espeak speech, per 40 ms frame, how well each candidate follows the
    true mouth: jaw opening, lip rounding and mouth width (correlations with the viseme track),
    and how often the network knows the lips are closed (rest or p/b/m) while speaking."""
    y = held["y"]
    speech = y[:, SIL] < 0.5
    gate = held["gate"][:, None]
    weights = {
        "signal": np.stack([ladder_weights(o) for o in held["openness"]]) * gate,
        "network": probs * gate,
        "hybrid": np.stack([shaped_weights(o, p) for o, p in zip(held["openness"], probs, strict=True)]) * gate,
    }
    traits = {
        "jaw": np.asarray(JAW_OPEN, np.float32),
        "round": np.array([MOUTH_SHAPES[v].round for v in VISEMES], np.float32),
        "width": np.array([MOUTH_SHAPES[v].width for v in VISEMES], np.float32),
    }
    n = (y.shape[0] // 4) * 4
    out = {"viseme_accuracy_speech": round(float((probs.argmax(1) == y.argmax(1))[speech].mean()), 3)}
    for trait, values in traits.items():
        truth = (y[:n] @ values).reshape(-1, 4).mean(1)
        for name, w in weights.items():
            guess = (w[:n] @ values).reshape(-1, 4).mean(1)
            r = np.corrcoef(guess, truth)[0, 1] if guess.std() > 1e-6 else 0.0
            out[f"{trait}_corr_{name}"] = round(float(r), 3)
    closed = ((y[:, SIL] + y[:, 1]) > 0.5) & speech
    out["closed_recall_network"] = round(float(((probs[:, SIL] + probs[:, 1]) > 0.5)[closed].mean()), 3)
    return out


def evaluate_weights(path: Path, config: TrainConfig) -> dict[str, float]:
    """``evaluate`` for a weights file, on the held-out set of ``config``'s seed."""
    net = ShapeNet.load(path)
    held = build_set(SpeechEngine(), SileroVad.load(), config.n_eval_utterances, np.random.default_rng(config.seed + 1), config)
    return evaluate(net(held["x"]), held)


def save(model: ShapeMLP, config: TrainConfig, metrics: dict[str, float], path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    meta = ShapeNet.metadata(config.net)
    meta["training"] = json.dumps({**{k: v for k, v in asdict(config).items() if k != "net"}, "metrics": metrics})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--utterances", type=int, default=defaults.n_utterances)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--evaluate", action="store_true", help="only measure the weights at --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig(seed=args.seed, n_utterances=args.utterances, epochs=args.epochs)
    if args.evaluate:
        print(json.dumps({"weights": str(args.out), **evaluate_weights(args.out, config)}, indent=2))
        return 0
    model, metrics = train(config)
    save(model, config, metrics, args.out)
    print(json.dumps({"weights": str(args.out), **metrics}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
