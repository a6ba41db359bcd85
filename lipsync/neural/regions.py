"""Face regions: the square of a frame around a mouth, cut to a model's crop and pasted back.

Training and inference cut and paste exactly the same pixels through these functions. A region
is found from a mouth box (``FaceRegion.around``); crops are float tensors in [-1, 1]; pasting
blends a generated crop in with a soft mask and leaves every pixel outside it bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lipsync.neural.model import feather_mask

Box = tuple[int, int, int, int]

# The face region's side as a multiple of the mouth box's larger side: room for the feathered
# edge and enough cheek and chin around the mouth for the model to match.
REGION_SCALE = 1.3


@dataclass(frozen=True)
class FaceRegion:
    """A square face region of a frame: frame pixels ``[y0, y0+side) x [x0, x0+side)``, and its
    mouth mask (crop_px, crop_px) float32, 1 inside the mouth box."""

    x0: int
    y0: int
    side: int
    mask: np.ndarray

    @classmethod
    def around(cls, mouth_box: Box, *, frame_w: int, frame_h: int, crop_px: int) -> FaceRegion:
        """The region centred on ``mouth_box`` (shifted to stay inside the frame)."""
        bx0, by0, bx1, by1 = mouth_box
        side = round(REGION_SCALE * max(bx1 - bx0, by1 - by0))
        side = min(side, frame_w, frame_h)
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        x0 = min(max(0, round(cx - side / 2)), frame_w - side)
        y0 = min(max(0, round(cy - side / 2)), frame_h - side)
        s = crop_px / side  # frame px -> crop px
        mask = np.zeros((crop_px, crop_px), np.float32)
        mx0, my0 = max(0, int((bx0 - x0) * s)), max(0, int((by0 - y0) * s))
        mx1, my1 = (
            min(crop_px, int(np.ceil((bx1 - x0) * s))),
            min(crop_px, int(np.ceil((by1 - y0) * s))),
        )
        mask[my0:my1, mx0:mx1] = 1.0
        return cls(x0=x0, y0=y0, side=side, mask=mask)


def crop_regions(frame: np.ndarray, regions: Sequence[FaceRegion], *, crop_px: int) -> torch.Tensor:
    """Face crops of ``frame`` (H, W, 3) uint8 -> (B, 3, crop_px, crop_px) float in [-1, 1]."""
    out = []
    for r in regions:
        patch = torch.from_numpy(frame[r.y0 : r.y0 + r.side, r.x0 : r.x0 + r.side].copy())
        x = patch.permute(2, 0, 1)[None].float() / 127.5 - 1.0  # (1, 3, side, side)
        if r.side != crop_px:
            x = F.interpolate(
                x, size=(crop_px, crop_px), mode="bilinear", antialias=True, align_corners=False
            )
        out.append(x)
    return torch.cat(out)  # (B, 3, crop, crop)


def region_masks(regions: Sequence[FaceRegion]) -> torch.Tensor:
    """(B, 1, crop_px, crop_px) hard mouth masks."""
    return torch.from_numpy(np.stack([r.mask for r in regions]))[:, None]


def paste_regions(
    frame: np.ndarray, regions: Sequence[FaceRegion], crops: torch.Tensor, soft: torch.Tensor
) -> None:
    """Blend ``crops`` (B, 3, c, c) in [-1, 1] into ``frame`` in place with paint masks ``soft``
    (B, 1, c, c). Pixels whose resized mask is 0 are left exactly as they were."""
    for r, crop, m in zip(regions, crops, soft, strict=True):
        if crop.shape[-1] != r.side:
            crop = F.interpolate(
                crop[None], size=(r.side, r.side), mode="bicubic", align_corners=False
            )[0]
            m = F.interpolate(m[None], size=(r.side, r.side), mode="bilinear", align_corners=False)[
                0
            ]
        view = frame[r.y0 : r.y0 + r.side, r.x0 : r.x0 + r.side]
        rows, cols = torch.nonzero(m[0] > 0, as_tuple=True)
        if rows.numel() == 0:
            continue
        ys, ye, xs, xe = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        old = torch.from_numpy(view[ys:ye, xs:xe].astype(np.float32))  # (h, w, 3) 0..255
        new = ((crop[:, ys:ye, xs:xe].permute(1, 2, 0).float() + 1.0) * 127.5).clamp(0, 255)
        w = m[0, ys:ye, xs:xe, None].float()
        blended = old + w * (new - old)
        # Where the weight is 0 the old pixel is kept bit for bit (no rounding round trip).
        keep = (w == 0).expand_as(old)
        out = torch.where(keep, old, blended.round())
        view[ys:ye, xs:xe] = out.to(torch.uint8).numpy()


def to_u8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


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
