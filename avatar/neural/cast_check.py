"""Is a trained mouth model at least as good as the rig it imitates? Figures per built-in character.

For each character, the held-out clips of a rig build (lines the model never saw) are drawn by
the rig; the student repaints every frame's mouth exactly as the neural backend does (the face
crop with the mouth blanked, the closed-mouth reference, the viseme window, one step from the
fixed start noise, pasted with ``paint_mask``). Then, against the rig's own crop of that frame:

- ``psnr_mouth_db``: PSNR over the model's mouth mask (the issue's bar: 35 dB or more);
- ``opening_ratio``: the painted mouth's opening over the rig's, where the opening of a frame is
  the area inside the mask at least ``DARK_BELOW_SKIN`` darker than the closed-mouth reference's
  median there (the mouth's interior; 1.0: as large; the bar: within 5%);
- ``psnr_seam_db``: PSNR over the paste's feathered edge, where a visible rectangle shows.

These decide whether ``--backend neural`` may be offered for rig characters (README, "Neural
mouths"): it is not, while any character misses the bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from accel.metrics import mouth_psnr
from accel.sampler import sample
from avatar.neural.rig_clips import rig_clips
from avatar.spec import CharacterSpec
from lipsync.neural.model import FaceGen
from lipsync.neural.regions import paint_mask

PSNR_BAR_DB = 35.0
OPENING_TOLERANCE = 0.05
DARK_BELOW_SKIN = 0.15  # luma in [0, 1]: lips and skin stay above, the mouth's interior falls below


@dataclass(frozen=True)
class CastFigures:
    """One character's neural-vs-rig figures over its held-out frames."""

    name: str
    frames: int
    psnr_mouth_db: float
    opening_ratio: float
    psnr_seam_db: float

    @property
    def passes(self) -> bool:
        return (
            self.psnr_mouth_db >= PSNR_BAR_DB
            and abs(self.opening_ratio - 1.0) <= OPENING_TOLERANCE
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "frames": self.frames,
            "psnr_mouth_db": round(self.psnr_mouth_db, 2),
            "opening_ratio": round(self.opening_ratio, 3),
            "psnr_seam_db": round(self.psnr_seam_db, 2),
            "passes": self.passes,
        }


def _opening(crops: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) pixels inside ``mask`` darker than the reference's median luma there by ``DARK_BELOW_SKIN``."""
    luma = ((crops + 1.0) * 0.5).mean(dim=1, keepdim=True)  # (N, 1, H, W) in [0, 1]
    ref = ((reference + 1.0) * 0.5).mean(dim=1, keepdim=True)  # (N, 1, H, W)
    inside = mask > 0.5
    skin = torch.stack([r[m].median() for r, m in zip(ref, inside, strict=True)])  # (N,)
    dark = (luma < skin[:, None, None, None] - DARK_BELOW_SKIN) & inside
    return dark.float().sum(dim=(1, 2, 3))


def character_figures(
    model: FaceGen,
    spec: CharacterSpec,
    *,
    n_clips: int,
    held_out_clips: int,
    frame_px: int = 256,
    steps: int = 1,
    seed: int = 0,
) -> CastFigures:
    """Figures for ``spec`` on clips ``n_clips - held_out_clips .. n_clips - 1``."""
    clips = rig_clips(
        spec,
        crop_px=model.cfg.crop_px,
        n_clips=n_clips,
        first=n_clips - held_out_clips,
        frame_px=frame_px,
    )
    psnr, seam, gen_open, rig_open = [], [], [], []
    c = model.cfg.crop_px
    noise1 = torch.randn((1, 3, c, c), generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        for clip in clips:
            fb = clip.dataset.batch(range(len(clip.dataset)))
            n = fb.target.shape[0]
            raw = sample(model, fb.cond, steps=steps, noise=noise1.expand(n, 3, c, c), compose=False)
            soft = paint_mask(fb.mask)  # (N, 1, c, c)
            out = (fb.target + soft * (raw.clamp(-1, 1) - fb.target)).clamp(-1, 1)
            psnr.append(mouth_psnr(out, fb.target, fb.mask))
            ring = ((soft > 0.02) & (soft < 0.98)).float()
            seam.append(mouth_psnr(out, fb.target, ring))
            gen_open.append(_opening(out, fb.reference, fb.mask))
            rig_open.append(_opening(fb.target, fb.reference, fb.mask))
    p, s = torch.cat(psnr), torch.cat(seam)
    g, r = torch.cat(gen_open), torch.cat(rig_open)
    return CastFigures(
        name=spec.name,
        frames=int(p.shape[0]),
        psnr_mouth_db=float(p.mean()),
        opening_ratio=float(g.sum() / r.sum()) if float(r.sum()) > 0 else float("nan"),
        psnr_seam_db=float(s.mean()),
    )


def cast_figures(
    model: FaceGen,
    specs: Sequence[CharacterSpec],
    *,
    n_clips: int,
    held_out_clips: int,
    frame_px: int = 256,
) -> dict[str, Any]:
    """Per-character figures and whether every character meets the bars."""
    rows = [
        character_figures(
            model, spec, n_clips=n_clips, held_out_clips=held_out_clips, frame_px=frame_px
        )
        for spec in specs
    ]
    return {
        "bars": {"psnr_mouth_db": PSNR_BAR_DB, "opening_within": OPENING_TOLERANCE},
        "characters": [r.as_dict() for r in rows],
        "mean_psnr_mouth_db": round(float(np.mean([r.psnr_mouth_db for r in rows])), 2),
        "all_pass": all(r.passes for r in rows),
    }
