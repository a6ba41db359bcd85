"""The neural backend: repaint each character's mouth in a rig-composed frame with its student.

Frame contract (the rig's): frame k shows the mouth for audio samples of frame k. The rig draws
the whole frame first; then, for every character with a trained model, the face region around its
mouth is cut (rig_data.crop_regions), the mouth box blanked, and the student generates the mouth
from the rest pose, the surrounding face and the drive window centred on frame k, in one forward
pass batched across characters that share a model. The crop is pasted back with a feathered mask
kept inside the model's mask and limited to the character's own pixels (``foreground``): pixels
outside it, the set behind a chin included, keep the rig's values exactly.
Characters without a model keep the rig's mouth (logged once).

Models load from ``lipsync/weights/neural/*.safetensors`` (float16 weights, float32 at run time):
a file serves the characters its metadata lists (the shipped ``cast.safetensors`` serves the whole
built-in cast), see ``weights_index``. Loading errors are ``CheckpointError``s naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from accel.scheduler import FaceJob, facegen_runner
from avatar.pose import Pose
from avatar.scene import Compositor
from lipsync.neural.checkpoint import CheckpointError, load_checkpoint, read_extra
from lipsync.neural.data import FaceCond
from lipsync.neural.model import FaceGen, feather_mask
from lipsync.neural.rig_data import (
    FaceRegion,
    crop_regions,
    paste_regions,
    region_masks,
    regions_for,
)

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


# A crop pixel belongs to a character where the frame differs from the empty set by more than this
# (in [-1, 1] units, ~6/255): generated pixels are pasted only there, so the set behind a chin
# or a cheek is never repainted (a 64 px model's guess of it shows as a pale patch).
FOREGROUND_THRESHOLD = 6 / 127.5


def foreground(current: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Soft character coverage (B, 1, c, c) of crops ``current`` over the set's ``background``
    crops (B, 3, c, c): holes closed, shrunk 1 px, then softened, so it is 0 on the set."""
    f = torch.nn.functional
    covered = ((current - background).abs().amax(dim=1, keepdim=True) > FOREGROUND_THRESHOLD).float()
    closed = -f.max_pool2d(-f.max_pool2d(covered, 5, stride=1, padding=2), 5, stride=1, padding=2)
    inner = -f.max_pool2d(-closed, 3, stride=1, padding=1)
    return f.avg_pool2d(inner, 3, stride=1, padding=1, count_include_pad=False)


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


def weights_index(weights_dir: str | Path | None = None) -> dict[str, Path]:
    """Which student file serves which character: ``{UPPER NAME: path}``.

    A file lists its characters in ``extra["characters"]`` (a cast model serves several); older
    files name one character by their stem. A file named after a character wins over a cast
    file that also lists it. ``*.teacher.safetensors`` files are not students and are skipped,
    and so are models built from a person's video (they are driven by audio, not visemes).
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


@dataclass(frozen=True)
class FaceSlot:
    """One neural character of a compositor: where its face is and what conditions it."""

    slot: int  # the character's index in the compositor
    model: FaceGen
    region: FaceRegion
    reference: torch.Tensor  # (1, 3, c, c) the rest pose's crop
    mask: torch.Tensor  # (1, 1, c, c) hard mouth mask
    soft: torch.Tensor  # (1, 1, c, c) paint mask
    background: torch.Tensor  # (1, 3, c, c) the empty set behind the crop
    seed: int  # its fixed start noise: the same drive gives the same mouth every time


@dataclass(frozen=True)
class FaceTask:
    """One character's mouth in one frame: the model's job and where its result may be pasted."""

    face: FaceSlot
    job: FaceJob
    soft: torch.Tensor  # (1, 1, c, c) paint mask of this frame: mouth region x character coverage


class NeuralFaceRenderer:
    """Paints mouths into frames of one compositor. Not thread-safe (one per rendering thread).

    ``paint`` runs the models itself (offline rendering). A live session instead asks ``jobs``
    for one ``FaceJob`` per character, lets the shared scheduler batch them with other sessions'
    frames, and ``paste``s what comes back.
    """

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
        rest = compositor.compose([Pose()] * len(names))
        empty = compositor.background()
        self.slots: list[FaceSlot] = []
        for i, name in enumerate(names):
            model = models.get(name)
            if model is None:
                continue
            crop_px = model.cfg.crop_px
            region = regions_for(compositor, crop_px=crop_px)[i]
            mask = region_masks([region])
            self.slots.append(
                FaceSlot(
                    slot=i,
                    model=model,
                    region=region,
                    reference=crop_regions(rest, [region], crop_px=crop_px),
                    mask=mask,
                    soft=paint_mask(mask),
                    background=crop_regions(empty, [region], crop_px=crop_px),
                    seed=seed * 1000 + i,
                )
            )
        self.neural_slots = [f.slot for f in self.slots]

    def jobs(self, frame: np.ndarray, drives: Sequence[np.ndarray]) -> list[FaceTask]:
        """One task per neural character of ``frame``; ``drives[i]`` is character i's drive
        window (Cd, Wd) centred on this frame."""
        out = []
        for face in self.slots:
            current = crop_regions(frame, [face.region], crop_px=face.model.cfg.crop_px)
            drive = torch.from_numpy(np.asarray(drives[face.slot], np.float32)[None])
            cond = FaceCond(
                reference=face.reference, masked=current * (1.0 - face.mask), mask=face.mask,
                drive=drive,
            )
            soft = face.soft * foreground(current, face.background)  # (1, 1, c, c)
            out.append(FaceTask(face=face, job=FaceJob(cond=cond, seed=face.seed), soft=soft))
        return out

    @staticmethod
    def paste(frame: np.ndarray, task: FaceTask, crop: torch.Tensor) -> None:
        """Blend one generated crop (3, c, c) into ``frame`` in place."""
        paste_regions(frame, [task.face.region], crop[None].clamp(-1.0, 1.0), task.soft)

    def paint(self, frame: np.ndarray, drives: Sequence[np.ndarray]) -> np.ndarray:
        """Repaint mouths in ``frame`` (H, W, 3) uint8, in place, characters sharing a model in
        one forward pass. Returns ``frame``."""
        by_model: dict[int, list[FaceTask]] = {}
        for task in self.jobs(frame, drives):
            by_model.setdefault(id(task.face.model), []).append(task)
        for group in by_model.values():
            run = facegen_runner(group[0].face.model, steps=self.steps, compose=False)
            for task, crop in zip(group, run([t.job for t in group]), strict=True):
                self.paste(frame, task, crop)
        return frame
