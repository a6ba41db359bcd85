"""The neural backend: repaint each character's mouth in a rig-composed frame with its student.

Frame contract (the rig's): frame k shows the mouth for audio samples of frame k. The rig draws
the whole frame first; then, for every character with a trained model, the face region around its
mouth is cut (``lipsync.neural.regions``), the mouth box blanked, and the student generates the
mouth from the rest pose, the surrounding face and the drive window centred on frame k, in one
forward pass batched across characters that share a model. The crop is pasted back with a
feathered mask kept inside the model's mask and limited to the character's own pixels
(``foreground``): pixels outside it, the set behind a chin included, keep the rig's values exactly.
Characters without a model keep the rig's mouth (logged once). Models come from
``lipsync.neural.weights``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from accel.face_batches import FaceJob, facegen_runner
from avatar.neural.rig_clips import regions_for
from avatar.pose import Pose
from avatar.scene import Compositor
from lipsync.neural.data import FaceCond
from lipsync.neural.model import FaceGen
from lipsync.neural.regions import (
    FaceRegion,
    crop_regions,
    foreground,
    paint_mask,
    paste_regions,
    region_masks,
)

logger = logging.getLogger(__name__)


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
