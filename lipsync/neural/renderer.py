"""The neural backend: repaint each character's mouth in a rig-composed frame with its student.

Frame contract (the rig's): frame k shows the mouth for audio samples of frame k. The rig draws
the whole frame first; then, for every character with a trained model, the face region around its
mouth is cut (rig_data.crop_regions), the mouth box blanked, and the student generates the mouth
from the rest pose, the surrounding face and the drive window centred on frame k, in one forward
pass batched across characters that share a model. The crop is pasted back with the feathered
mask of ``compose_crop``: pixels outside the feathered mouth region keep the rig's values exactly.
Characters without a model keep the rig's mouth (logged once).

Models load from ``lipsync/weights/neural/<name>.safetensors`` (float16 weights, float32 at run
time). Loading errors are ``CheckpointError``s naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from accel.sampler import sample
from avatar.pose import Pose
from avatar.scene import Compositor
from lipsync.neural.checkpoint import CheckpointError, load_checkpoint
from lipsync.neural.data import FaceCond
from lipsync.neural.model import FaceGen, feather_mask
from lipsync.neural.rig_data import crop_regions, paste_regions, region_masks, regions_for

logger = logging.getLogger(__name__)

FEATHER_PX = 2
# The paste stays this far inside the model's mask: next to the hole's edge the generator echoes
# the edge itself (a faint dark line), while the band it leaves is plain skin the rig draws anyway.
PASTE_INSET_PX = 4


def paint_mask(mask: torch.Tensor) -> torch.Tensor:
    """Where to paste generated pixels (B, 1, c, c): the mask shrunk by ``PASTE_INSET_PX`` and
    feathered, so the paste never reaches the hole's border."""
    k = 2 * PASTE_INSET_PX + 1
    inner = 1.0 - torch.nn.functional.max_pool2d(1.0 - mask, kernel_size=k, stride=1, padding=PASTE_INSET_PX)
    return feather_mask(inner, feather_px=FEATHER_PX)


def default_weights_dir() -> Path:
    """Where the shipped per-character models live."""
    return Path(__file__).resolve().parent.parent / "weights" / "neural"


def load_student(path: str | Path, *, int8: bool = False) -> FaceGen:
    """A student model from ``path`` (eval, float32, CPU); ``CheckpointError`` when missing,
    truncated, not a student, or the wrong shape.

    ``int8``: quantize with ``accel.quantize.quantize_int8`` at load time. Off by default: for the
    shipped 64 px model, eager int8 measured slower than float at batch 1 on the 2-core machine
    (torchao's int8 only wins under ``torch.compile``; see ``talkie bench model``).
    """
    ckpt = load_checkpoint(path, expect_kind="student")
    model = ckpt.model.float().eval()
    if int8:
        from accel.quantize import quantize_int8

        quantized, _ = quantize_int8(model, inplace=True)
        assert isinstance(quantized, FaceGen)
        return quantized
    return model


def load_cast_models(
    names: Sequence[str], *, weights_dir: str | Path | None = None
) -> dict[str, FaceGen]:
    """Models for the characters in ``names`` that have one in ``weights_dir``; others are left out.

    A directory that does not exist is a ``CheckpointError`` (a typo must not silently fall back).
    """
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if not root.is_dir():
        raise CheckpointError(
            f"neural weights directory {root} does not exist; run `talkie avatar build` first"
        )
    models: dict[str, FaceGen] = {}
    for name in names:
        path = root / f"{name.lower()}.safetensors"
        if path.exists():
            models[name] = load_student(path)
        else:
            logger.warning(
                "neural backend: no model for %s at %s, it falls back to the rig", name, path
            )
    return models


def load_weights_dir(weights_dir: str | Path | None = None) -> dict[str, FaceGen]:
    """Every student in ``weights_dir`` (default: shipped), keyed by upper-case character name."""
    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if not root.is_dir():
        raise CheckpointError(
            f"neural weights directory {root} does not exist; run `talkie avatar build` first"
        )
    paths = [p for p in sorted(root.glob("*.safetensors")) if "." not in p.stem]
    return {p.stem.upper(): load_student(p) for p in paths}


class NeuralFaceRenderer:
    """Paints mouths into frames of one compositor. Not thread-safe (one per rendering thread)."""

    def __init__(
        self,
        *,
        compositor: Compositor,
        models: Mapping[str, FaceGen],
        steps: int = 1,
        seed: int = 0,
    ) -> None:
        self.steps = steps
        names = [rig.spec.name for rig in compositor.rigs]
        # Characters sharing one model run as one batch: slot indices per model.
        self._groups: list[tuple[FaceGen, list[int]]] = []
        for model in {id(m): m for m in models.values()}.values():
            slots = [i for i, n in enumerate(names) if models.get(n) is model]
            if slots:
                self._groups.append((model, slots))
        self.neural_slots = sorted(i for _, slots in self._groups for i in slots)
        rest = compositor.compose([Pose()] * len(names))
        gen = torch.Generator().manual_seed(seed)
        self._state = []
        for model, slots in self._groups:
            crop_px = model.cfg.crop_px
            regions = [regions_for(compositor, crop_px=crop_px)[i] for i in slots]
            mask = region_masks(regions)  # (B, 1, c, c)
            self._state.append(
                (
                    regions,
                    crop_regions(rest, regions, crop_px=crop_px),  # references (B, 3, c, c)
                    mask,
                    paint_mask(mask),  # (B, 1, c, c)
                    # Fixed noise per character: the same drive gives the same mouth every time.
                    torch.randn((len(slots), 3, crop_px, crop_px), generator=gen),
                )
            )

    def paint(self, frame: np.ndarray, drives: Sequence[np.ndarray]) -> np.ndarray:
        """Repaint mouths in ``frame`` (H, W, 3) uint8, in place; ``drives[i]`` is character i's
        drive window (Cd, Wd) centred on this frame. Returns ``frame``."""
        with torch.inference_mode():
            for (model, slots), (regions, reference, mask, soft, noise) in zip(
                self._groups, self._state, strict=True
            ):
                current = crop_regions(frame, regions, crop_px=model.cfg.crop_px)
                drive = torch.from_numpy(
                    np.stack([np.asarray(drives[i], np.float32) for i in slots])
                )
                cond = FaceCond(
                    reference=reference, masked=current * (1.0 - mask), mask=mask, drive=drive
                )
                out = sample(model, cond, steps=self.steps, noise=noise, compose=False)
                paste_regions(frame, regions, out.clamp(-1.0, 1.0), soft)
        return frame
