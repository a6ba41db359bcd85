"""The shipped (or built) mouth models on disk: which file serves which character, and loading them.

Models load from ``lipsync/weights/neural/*.safetensors`` (float16 weights, float32 at run time):
a file serves the characters its metadata lists (the shipped ``cast.safetensors`` serves the whole
built-in cast), see ``weights_index``. Loading errors are ``CheckpointError``s naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from lipsync.neural.checkpoint import CheckpointError, load_checkpoint, read_extra
from lipsync.neural.model import FaceGen

logger = logging.getLogger(__name__)


def default_weights_dir() -> Path:
    """Where the shipped per-character models live."""
    return Path(__file__).resolve().parent.parent / "weights" / "neural"


def load_student(path: str | Path) -> FaceGen:
    """A student model from ``path`` (eval, float32, CPU); ``CheckpointError`` when missing,
    truncated, not a student, or the wrong shape. Quantizing is the caller's choice
    (``accel.quantize.quantize_int8``): for the shipped model, eager int8 measured slower than
    float at batch 1 on the 2-core machine (see ``talkie bench model``)."""
    ckpt = load_checkpoint(path, expect_kind="student")
    return ckpt.model.float().eval()


def weights_index(weights_dir: str | Path | None = None) -> dict[str, Path]:
    """Which student file serves which character: ``{UPPER NAME: path}``.

    A file lists its characters in ``extra["characters"]`` (a cast model serves several); older
    files name one character by their stem. A file named after a character wins over a cast
    file that also lists it. ``*.teacher.safetensors`` files are not students and are skipped,
    and so are models built from a person's video (they are driven by the mouth's shape, not visemes).
    A directory that does not exist is a ``CheckpointError`` (a typo must not silently fall back).
    """
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if not root.is_dir():
        raise CheckpointError(
            f"neural weights directory {root} does not exist; run `talkie avatar build` first"
        )
    index: dict[str, Path] = {}
    for path in sorted(root.glob("*.safetensors")):
        if "." in path.stem:
            continue
        extra = read_extra(path)
        if extra.get("source") == "video":  # a person's own video model: `talkie avatar animate`
            continue
        names = extra.get("characters") or [path.stem]
        for name in (str(n).upper() for n in names):
            if name not in index or path.stem.upper() == name:
                index[name] = path
    return index


class NotOfferedError(ValueError):
    """``--backend neural`` asked for with models that draw worse mouths than the rig."""


def offered_models(weights_dir: str | Path | None = None) -> dict[str, Path]:
    """``weights_index`` for ``--backend neural``, or ``NotOfferedError`` naming why not.

    A model built from rig renders is offered only when its build recorded that it draws every
    character's mouth at least as well as the rig (``extra["cast_check"]["all_pass"]``, written by
    ``talkie avatar build`` from ``avatar.neural.cast_check``). The shipped cast model does not:
    measured on held-out lines its mouths score below the rig's own (README, "Neural mouths").
    """
    index = weights_index(weights_dir)
    failing: dict[Path, str] = {}
    for path in set(index.values()):
        check = read_extra(path).get("cast_check")
        if not isinstance(check, dict) or check.get("all_pass") is not True:
            failing[path] = (
                f"mouth PSNR {check.get('mean_psnr_mouth_db')} dB against the rig's own"
                if isinstance(check, dict)
                else "no rig comparison recorded"
            )
    if failing:
        detail = "; ".join(f"{p.name}: {why}" for p, why in sorted(failing.items()))
        raise NotOfferedError(
            "--backend neural is not offered for the built-in (rig) characters: their trained "
            "mouth model draws worse mouths than the rig it imitates (the shipped one: 33.3-34.8 "
            "dB mouth PSNR against the rig on held-out lines, below the 35 dB bar, softer teeth "
            f"and tongue; README, 'Neural mouths'). Use the rig (the default). ({detail})"
        )
    return index


def _load_shared(paths: Mapping[str, Path]) -> dict[str, FaceGen]:
    """Load each file once; characters served by one file share one model object."""
    loaded: dict[Path, FaceGen] = {}
    models: dict[str, FaceGen] = {}
    for name, path in paths.items():
        if path not in loaded:
            loaded[path] = load_student(path)
        models[name] = loaded[path]
    return models


def load_cast_models(
    names: Sequence[str], *, weights_dir: str | Path | None = None
) -> dict[str, FaceGen]:
    """Models for the characters in ``names`` that have one in ``weights_dir``; others are left out."""
    index = weights_index(weights_dir)
    wanted: dict[str, Path] = {}
    for name in names:
        if name.upper() in index:
            wanted[name] = index[name.upper()]
        else:
            logger.warning("neural backend: no model for %s, it falls back to the rig", name)
    return _load_shared(wanted)


def load_weights_dir(weights_dir: str | Path | None = None) -> dict[str, FaceGen]:
    """Every character with a student in ``weights_dir`` (default: shipped), keyed by upper-case name."""
    return _load_shared(weights_index(weights_dir))
